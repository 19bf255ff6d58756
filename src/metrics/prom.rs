//! The registry behind `@type prometheus`: metric families declared by the prometheus
//! filter/output `<metric>` sections, and collectors the monitor inputs add while they run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::exposition::Exposition;

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Counter,
    Gauge,
    Summary,
    Histogram(Vec<f64>),
}

impl Kind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
            Kind::Histogram(_) => "histogram",
        }
    }
}

/// The Ruby client's default histogram buckets.
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Default)]
struct Series {
    labels: Vec<(String, String)>,
    value: f64,
    sum: f64,
    count: u64,
    buckets: Vec<u64>,
}

type LabelSet = Vec<(String, String)>;

/// Series by label set, in creation order.
type SeriesTable = (HashMap<LabelSet, usize>, Vec<Series>);

#[derive(Debug)]
pub struct Family {
    pub name: String,
    pub help: String,
    pub kind: Kind,
    series: Mutex<SeriesTable>,
}

impl Family {
    fn with<F: FnOnce(&mut Series)>(&self, labels: Vec<(String, String)>, f: F) {
        let mut g = self.series.lock();
        let (index, list) = &mut *g;
        let i = match index.get(&labels) {
            Some(i) => *i,
            None => {
                let n = match &self.kind {
                    Kind::Histogram(b) => b.len(),
                    _ => 0,
                };
                list.push(Series {
                    labels: labels.clone(),
                    buckets: vec![0; n],
                    ..Default::default()
                });
                index.insert(labels, list.len() - 1);
                list.len() - 1
            }
        };
        f(&mut list[i]);
    }

    /// Counter: `+v` (negative increments are ignored, as the client refuses them).
    pub fn increment(&self, labels: Vec<(String, String)>, v: f64) {
        if v < 0.0 || v.is_nan() {
            return;
        }
        self.with(labels, |s| s.value += v);
    }

    pub fn set(&self, labels: Vec<(String, String)>, v: f64) {
        self.with(labels, |s| s.value = v);
    }

    /// Summary and histogram: one observation.
    pub fn observe(&self, labels: Vec<(String, String)>, v: f64) {
        let bounds = match &self.kind {
            Kind::Histogram(b) => b.clone(),
            _ => Vec::new(),
        };
        self.with(labels, |s| {
            s.sum += v;
            s.count += 1;
            for (i, b) in bounds.iter().enumerate() {
                if v <= *b {
                    s.buckets[i] += 1;
                }
            }
        });
    }

    /// Makes a series exist with zero values (`initialized true`).
    pub fn init(&self, labels: Vec<(String, String)>) {
        self.with(labels, |_| {});
    }

    fn render(&self, e: &mut Exposition) {
        e.family(&self.name, &self.help, self.kind.as_str());
        let g = self.series.lock();
        for s in &g.1 {
            match &self.kind {
                Kind::Counter | Kind::Gauge => e.sample(&self.name, &s.labels, s.value),
                Kind::Summary => {
                    e.sample(&format!("{}_sum", self.name), &s.labels, s.sum);
                    e.sample(&format!("{}_count", self.name), &s.labels, s.count as f64);
                }
                Kind::Histogram(bounds) => {
                    let name = format!("{}_bucket", self.name);
                    for (i, b) in bounds.iter().enumerate() {
                        let mut l = s.labels.clone();
                        let mut le = String::new();
                        super::exposition::format_value(*b, &mut le);
                        l.push(("le".into(), le));
                        e.sample(&name, &l, s.buckets[i] as f64);
                    }
                    let mut l = s.labels.clone();
                    l.push(("le".into(), "+Inf".into()));
                    e.sample(&name, &l, s.count as f64);
                    e.sample(&format!("{}_sum", self.name), &s.labels, s.sum);
                    e.sample(&format!("{}_count", self.name), &s.labels, s.count as f64);
                }
            }
        }
    }
}

static FAMILIES: RwLock<Vec<Arc<Family>>> = RwLock::new(Vec::new());

/// The family `name`, created on first use. A second declaration with another type or help
/// text is refused, as the Ruby client's `AlreadyRegisteredError`.
pub fn family(name: &str, help: &str, kind: Kind) -> Result<Arc<Family>, String> {
    let mut fams = FAMILIES.write();
    if let Some(f) = fams.iter().find(|f| f.name == name) {
        if f.kind.as_str() != kind.as_str() || f.help != help {
            return Err(format!(
                "metric '{name}' is already registered with another type or description"
            ));
        }
        return Ok(f.clone());
    }
    let f = Arc::new(Family {
        name: name.to_string(),
        help: help.to_string(),
        kind,
        series: Mutex::new((HashMap::new(), Vec::new())),
    });
    fams.push(f.clone());
    Ok(f)
}

type Collector = Arc<dyn Fn(&mut Exposition) + Send + Sync>;

static COLLECTORS: Mutex<Vec<(u64, Collector)>> = Mutex::new(Vec::new());
static NEXT_COLLECTOR: AtomicU64 = AtomicU64::new(1);

/// Adds a collector run at every scrape; returns its handle for [`remove_collector`].
pub fn add_collector(c: Collector) -> u64 {
    let id = NEXT_COLLECTOR.fetch_add(1, Ordering::Relaxed);
    COLLECTORS.lock().push((id, c));
    id
}

pub fn remove_collector(id: u64) {
    COLLECTORS.lock().retain(|(i, _)| *i != id);
}

/// Everything registered, in the text format.
pub fn render() -> String {
    let mut e = Exposition::default();
    let collectors: Vec<Collector> = COLLECTORS.lock().iter().map(|(_, c)| c.clone()).collect();
    for c in collectors {
        c(&mut e);
    }
    let fams: Vec<Arc<Family>> = FAMILIES.read().clone();
    for f in fams {
        f.render(&mut e);
    }
    e.out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(v: &str) -> Vec<(String, String)> {
        vec![("tag".to_string(), v.to_string())]
    }

    #[test]
    fn families_render_and_conflicts_are_refused() {
        let c = family("t_prom_counter", "c help", Kind::Counter).unwrap();
        c.increment(l("a"), 1.0);
        c.increment(l("a"), 2.0);
        c.increment(l("b"), 1.0);
        assert!(family("t_prom_counter", "other", Kind::Counter).is_err());
        assert!(family("t_prom_counter", "c help", Kind::Gauge).is_err());
        let h = family("t_prom_hist", "h", Kind::Histogram(vec![1.0, 5.0])).unwrap();
        h.observe(l("a"), 3.0);
        let out = render();
        assert!(out.contains(
            "# HELP t_prom_counter c help\n# TYPE t_prom_counter counter\nt_prom_counter{tag=\"a\"} 3.0\nt_prom_counter{tag=\"b\"} 1.0\n"
        ));
        assert!(out.contains("t_prom_hist_bucket{tag=\"a\",le=\"1.0\"} 0.0\n"));
        assert!(out.contains("t_prom_hist_bucket{tag=\"a\",le=\"5.0\"} 1.0\n"));
        assert!(out.contains("t_prom_hist_bucket{tag=\"a\",le=\"+Inf\"} 1.0\n"));
        assert!(out.contains("t_prom_hist_sum{tag=\"a\"} 3.0\n"));
    }
}
