//! `@type prometheus_monitor` (fluent-plugin-prometheus): buffer and retry gauges for every
//! plugin, labelled `plugin_id`, `plugin_category`, `type`.

use super::prometheus::{family, with_labels, Monitor, MonitorSettings};
use super::{Input, PluginContext};
use crate::config_parser::{ConfigError, Element};
use crate::metrics::exposition::Exposition;

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Input>, ConfigError> {
    Ok(Box::new(Monitor::configure(
        elem,
        ctx,
        "prometheus_monitor",
        collect,
    )?))
}

type Rows = Vec<(Vec<(String, String)>, f64)>;

pub(crate) fn collect(s: &MonitorSettings, e: &mut Exposition) {
    let (mut newest, mut oldest, mut queue, mut total, mut retry): (Rows, Rows, Rows, Rows, Rows) =
        Default::default();
    for p in crate::metrics::plugins() {
        let l = with_labels(
            &s.base,
            &[
                ("plugin_id", &p.plugin_id),
                ("plugin_category", p.category.as_str()),
                ("type", &p.plugin_type),
            ],
        );
        if let Some(b) = p.buffer() {
            queue.push((l.clone(), b.queue_length as f64));
            total.push((l.clone(), b.total_queued_size() as f64));
            if let (Some(min), Some(max)) = (b.timekeys.iter().min(), b.timekeys.iter().max()) {
                newest.push((l.clone(), *max as f64));
                oldest.push((l.clone(), *min as f64));
            }
        }
        if p.category == crate::metrics::Category::Output {
            retry.push((l, p.num_errors.get() as f64));
        }
    }
    family(
        e,
        "fluentd_status_buffer_newest_timekey",
        "Newest timekey in buffer.",
        "gauge",
        &newest,
    );
    family(
        e,
        "fluentd_status_buffer_oldest_timekey",
        "Oldest timekey in buffer.",
        "gauge",
        &oldest,
    );
    family(
        e,
        "fluentd_status_buffer_queue_length",
        "Current buffer queue length.",
        "gauge",
        &queue,
    );
    family(
        e,
        "fluentd_status_buffer_total_bytes",
        "Current total size of queued buffers.",
        "gauge",
        &total,
    );
    family(
        e,
        "fluentd_status_retry_count",
        "Current retry counts.",
        "gauge",
        &retry,
    );
}
