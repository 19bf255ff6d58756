//! `@type prometheus_tail_monitor` (fluent-plugin-prometheus): per-file metrics of every
//! in_tail, labelled `plugin_id`, `type`, `path`.

use super::prometheus::{family, with_labels, Monitor, MonitorSettings};
use super::{Input, PluginContext};
use crate::config_parser::{ConfigError, Element};
use crate::metrics::exposition::Exposition;

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Input>, ConfigError> {
    Ok(Box::new(Monitor::configure(
        elem,
        ctx,
        "prometheus_tail_monitor",
        collect,
    )?))
}

type Rows = Vec<(Vec<(String, String)>, f64)>;

pub(crate) fn collect(s: &MonitorSettings, e: &mut Exposition) {
    let mut rows: Vec<Rows> = vec![Vec::new(); 6];
    for p in crate::metrics::plugins() {
        if p.plugin_type != "tail" {
            continue;
        }
        for f in p.tail_files() {
            let l = with_labels(
                &s.base,
                &[
                    ("plugin_id", &p.plugin_id),
                    ("type", &p.plugin_type),
                    ("path", &f.path),
                ],
            );
            let vals = [
                f.position.get(),
                f.inode.get(),
                f.closed.get(),
                f.opened.get(),
                f.rotated.get(),
                f.throttled.get(),
            ];
            for (i, v) in vals.iter().enumerate() {
                rows[i].push((l.clone(), *v as f64));
            }
        }
    }
    let names = [
        ("fluentd_tail_file_position", "Current position of file."),
        ("fluentd_tail_file_inode", "Current inode of file."),
        ("fluentd_tail_file_closed", "Number of files closed."),
        ("fluentd_tail_file_opened", "Number of files opened."),
        ("fluentd_tail_file_rotated", "Number of files rotated."),
        (
            "fluentd_tail_file_throttled",
            "Number of times files got throttled.",
        ),
    ];
    for (i, (name, help)) in names.iter().enumerate() {
        family(e, name, help, "gauge", &rows[i]);
    }
}
