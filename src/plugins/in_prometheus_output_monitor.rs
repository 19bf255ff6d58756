//! `@type prometheus_output_monitor` (fluent-plugin-prometheus): buffer and flush metrics of
//! every output, labelled `plugin_id` and `type` (no `plugin_category`).

use super::prometheus::{family, with_labels, Monitor, MonitorSettings};
use super::{Input, PluginContext};
use crate::config_parser::{ConfigError, Element};
use crate::metrics::exposition::Exposition;
use crate::metrics::Category;

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Input>, ConfigError> {
    Ok(Box::new(Monitor::configure(
        elem,
        ctx,
        "prometheus_output_monitor",
        collect,
    )?))
}

type Rows = Vec<(Vec<(String, String)>, f64)>;

/// Name, help, and whether `gauge_all false` makes it a counter.
const FAMILIES: &[(&str, &str, bool)] = &[
    (
        "fluentd_output_status_buffer_total_bytes",
        "Current total size of stage and queue buffers.",
        false,
    ),
    (
        "fluentd_output_status_buffer_stage_length",
        "Current length of stage buffers.",
        false,
    ),
    (
        "fluentd_output_status_buffer_stage_byte_size",
        "Current total size of stage buffers.",
        false,
    ),
    (
        "fluentd_output_status_buffer_queue_length",
        "Current length of queue buffers.",
        false,
    ),
    (
        "fluentd_output_status_buffer_queue_byte_size",
        "Current total size of queue buffers.",
        false,
    ),
    (
        "fluentd_output_status_buffer_available_space_ratio",
        "Ratio of available space in buffer.",
        false,
    ),
    (
        "fluentd_output_status_buffer_newest_timekey",
        "Newest timekey in buffer.",
        false,
    ),
    (
        "fluentd_output_status_buffer_oldest_timekey",
        "Oldest timekey in buffer.",
        false,
    ),
    (
        "fluentd_output_status_retry_count",
        "Current retry counts.",
        true,
    ),
    (
        "fluentd_output_status_num_errors",
        "Current number of errors.",
        true,
    ),
    (
        "fluentd_output_status_emit_count",
        "Current emit counts.",
        true,
    ),
    (
        "fluentd_output_status_emit_records",
        "Current emit records.",
        true,
    ),
    (
        "fluentd_output_status_write_count",
        "Current write counts.",
        true,
    ),
    (
        "fluentd_output_status_rollback_count",
        "Current rollback counts.",
        false,
    ),
    (
        "fluentd_output_status_flush_time_count",
        "Total flush time.",
        true,
    ),
    (
        "fluentd_output_status_slow_flush_count",
        "Current slow flush counts.",
        true,
    ),
    (
        "fluentd_output_status_retry_wait",
        "Current retry wait",
        false,
    ),
];

pub(crate) fn collect(s: &MonitorSettings, e: &mut Exposition) {
    let mut rows: Vec<Rows> = vec![Vec::new(); FAMILIES.len()];
    for p in crate::metrics::plugins() {
        if p.category != Category::Output {
            continue;
        }
        let l = with_labels(
            &s.base,
            &[("plugin_id", &p.plugin_id), ("type", &p.plugin_type)],
        );
        let b = p.buffer();
        let mut put = |i: usize, v: f64| rows[i].push((l.clone(), v));
        if let Some(b) = &b {
            put(0, b.total_queued_size() as f64);
            put(1, b.stage_length as f64);
            put(2, b.stage_byte_size as f64);
            put(3, b.queue_length as f64);
            put(4, b.queue_byte_size as f64);
            put(5, b.available_space_ratio());
            if let (Some(min), Some(max)) = (b.timekeys.iter().min(), b.timekeys.iter().max()) {
                put(6, *max as f64);
                put(7, *min as f64);
            }
        }
        // Since Fluentd 1.14 retry_count is num_errors.
        put(8, p.num_errors.get() as f64);
        put(9, p.num_errors.get() as f64);
        put(10, p.emit_count.get() as f64);
        put(11, p.emit_records.get() as f64);
        put(12, p.write_count.get() as f64);
        put(13, p.rollback_count.get() as f64);
        put(14, p.flush_time_count.get() as f64);
        put(15, p.slow_flush_count.get() as f64);
        let wait = b
            .as_ref()
            .and_then(|b| b.retry)
            .map(|(start, _, next)| next - start)
            .unwrap_or(0.0);
        put(16, wait);
    }
    for (i, (name, help, countable)) in FAMILIES.iter().enumerate() {
        let kind = if *countable && !s.gauge_all {
            "counter"
        } else {
            "gauge"
        };
        family(e, name, help, kind, &rows[i]);
    }
}
