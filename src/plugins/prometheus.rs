//! Shared by the prometheus filter and output (fluent-plugin-prometheus `prometheus.rb`): the
//! `<metric>` sections, where each event updates one counter, gauge, summary or histogram series.

use std::sync::Arc;

use serde::Deserialize;

use crate::config_parser::{ConfigError, Element, Nested};
use crate::event::{EventStream, Value};
use crate::metrics::labels::Labels;
use crate::metrics::prom::{self, Family, Kind};
use crate::plugins::PluginContext;
use crate::record_accessor::RecordAccessor;

#[derive(Debug, Deserialize)]
struct MetricConf {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    desc: String,
    key: Option<String>,
    buckets: Option<String>,
    #[serde(default)]
    initialized: bool,
    #[allow(dead_code)]
    labels: Option<Nested>,
    #[allow(dead_code)]
    initlabels: Option<Nested>,
}

struct Instrument {
    family: Arc<Family>,
    key: Option<RecordAccessor>,
    labels: Labels,
}

/// Every `<metric>` of one plugin.
pub struct Instruments(Vec<Instrument>);

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::UInt(u) => Some(*u as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

impl Instruments {
    /// Reads `<labels>` (base) and every `<metric>` of `elem`.
    pub fn configure(
        elem: &Element,
        ctx: &PluginContext,
        plugin: &str,
    ) -> Result<Instruments, ConfigError> {
        let base = Labels::parse(
            elem.child("labels"),
            &ctx.hostname,
            ctx.worker_id,
            true,
            plugin,
        )
        .map_err(|m| elem.error(m))?;
        let mut v = Vec::new();
        for me in elem.children("metric") {
            let c: MetricConf = ctx.configure(me, plugin)?;
            if !crate::metrics::exposition::valid_name(&c.name) {
                return Err(me.error(format!("invalid metric name '{}'", c.name)));
            }
            let kind = match c.kind.as_str() {
                "counter" => Kind::Counter,
                "gauge" => Kind::Gauge,
                "summary" => Kind::Summary,
                "histogram" => {
                    let b = match &c.buckets {
                        Some(s) => {
                            let mut b = Vec::new();
                            for p in s.split(',') {
                                b.push(
                                    p.trim()
                                        .parse::<f64>()
                                        .map_err(|_| me.error(format!("invalid buckets '{s}'")))?,
                                );
                            }
                            if b.windows(2).any(|w| w[0] >= w[1]) {
                                return Err(me.error("buckets must be in increasing order"));
                            }
                            b
                        }
                        None => prom::DEFAULT_BUCKETS.to_vec(),
                    };
                    Kind::Histogram(b)
                }
                other => {
                    return Err(me.error(format!(
                        "type option must be 'counter', 'gauge', 'summary' or 'histogram': {other}"
                    )))
                }
            };
            if c.key.is_none() && kind != Kind::Counter {
                return Err(me.error(format!("{} metric requires 'key' option", c.kind)));
            }
            let key = match &c.key {
                Some(k) => Some(RecordAccessor::new(k).map_err(|m| me.error(m))?),
                None => None,
            };
            let own = Labels::parse(
                me.child("labels"),
                &ctx.hostname,
                ctx.worker_id,
                true,
                plugin,
            )
            .map_err(|m| me.error(m))?;
            let labels = base.merged(&own);
            let family = prom::family(&c.name, &c.desc, kind).map_err(|m| me.error(m))?;
            if c.initialized {
                if let Some(init) = me.child("initlabels") {
                    let fixed =
                        Labels::parse(Some(init), &ctx.hostname, ctx.worker_id, false, plugin)
                            .map_err(|m| me.error(m))?;
                    family.init(labels.merged(&fixed).fixed());
                } else if labels.names().next().is_none() {
                    family.init(Vec::new());
                }
            }
            v.push(Instrument {
                family,
                key,
                labels,
            });
        }
        Ok(Instruments(v))
    }

    /// Updates every metric for each event of `es`.
    pub fn instrument(&self, tag: &str, es: &EventStream) {
        for ev in es.iter() {
            for m in &self.0 {
                let value = match &m.key {
                    None => None,
                    Some(k) => match k.get(&ev.record).and_then(number) {
                        Some(v) => Some(v),
                        // Not numeric or absent: the event does not count.
                        None => continue,
                    },
                };
                let labels = m.labels.eval(tag, &ev.record);
                match (&m.family.kind, value) {
                    (Kind::Counter, None) => m.family.increment(labels, 1.0),
                    (Kind::Counter, Some(v)) => m.family.increment(labels, v),
                    (Kind::Gauge, Some(v)) => m.family.set(labels, v),
                    (Kind::Summary | Kind::Histogram(_), Some(v)) => m.family.observe(labels, v),
                    _ => {}
                }
            }
        }
    }
}

/// What the monitor inputs (`prometheus_monitor`, `_output_monitor`, `_tail_monitor`) share:
/// `interval` and static `<labels>`, and a collector registered while the input runs. Values
/// are read from the plugins' counters at each scrape, so they are never older than a scrape.
#[derive(Debug, Deserialize)]
pub(crate) struct MonitorConf {
    #[allow(dead_code)]
    #[serde(default = "five")]
    pub interval: crate::config_parser::types::Time,
    #[serde(default = "yes")]
    pub gauge_all: bool,
    #[allow(dead_code)]
    pub labels: Option<Nested>,
}

fn five() -> crate::config_parser::types::Time {
    crate::config_parser::types::Time(5.0)
}
fn yes() -> bool {
    true
}

pub(crate) type Collect = fn(&MonitorSettings, &mut Exposition);

pub(crate) struct MonitorSettings {
    pub base: Vec<(String, String)>,
    pub gauge_all: bool,
}

pub(crate) struct Monitor {
    settings: Arc<MonitorSettings>,
    collect: Collect,
}

use crate::metrics::exposition::Exposition;

impl Monitor {
    pub fn configure(
        elem: &Element,
        ctx: &PluginContext,
        plugin: &str,
        collect: Collect,
    ) -> Result<Monitor, ConfigError> {
        let c: MonitorConf = ctx.configure(elem, plugin)?;
        if plugin != "prometheus_output_monitor" && elem.has("gauge_all") {
            tracing::warn!("parameter 'gauge_all' in <source> is not used.");
        }
        let base = Labels::parse(
            elem.child("labels"),
            &ctx.hostname,
            ctx.worker_id,
            false,
            plugin,
        )
        .map_err(|m| elem.error(m))?
        .fixed();
        Ok(Monitor {
            settings: Arc::new(MonitorSettings {
                base,
                gauge_all: c.gauge_all,
            }),
            collect,
        })
    }
}

impl super::Input for Monitor {
    fn run(self: Box<Self>, ctx: super::InputContext) -> anyhow::Result<()> {
        let (s, f) = (self.settings.clone(), self.collect);
        let id = prom::add_collector(Arc::new(move |e: &mut Exposition| f(&s, e)));
        while !ctx
            .shutdown
            .wait_timeout(std::time::Duration::from_secs(3600))
        {}
        prom::remove_collector(id);
        Ok(())
    }
}

/// One family with its samples (headers are written even without samples, as the Ruby
/// client does).
pub(crate) fn family(
    e: &mut Exposition,
    name: &str,
    help: &str,
    kind: &str,
    rows: &[(Vec<(String, String)>, f64)],
) {
    e.family(name, help, kind);
    for (l, v) in rows {
        e.sample(name, l, *v);
    }
}

/// `base` then `extra` labels.
pub(crate) fn with_labels(
    base: &[(String, String)],
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut l = base.to_vec();
    for (k, v) in extra {
        match l.iter_mut().find(|(n, _)| n == k) {
            Some(slot) => slot.1 = v.to_string(),
            None => l.push((k.to_string(), v.to_string())),
        }
    }
    l
}
