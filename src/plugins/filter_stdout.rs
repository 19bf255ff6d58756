//! `@type stdout` (filter): writes each event as its `<format>` (default `@type stdout`, i.e.
//! `TIME TAG: JSON`) to stdout, with `<inject>` applied to the printed copy, and passes the
//! events on unchanged. One locked write per batch.

use std::io::Write;

use serde::Deserialize;

use super::inject::Inject;
use super::out_stdout::format_element;
use super::{Filter, Formatter, PluginContext};
use crate::config_parser::{ConfigError, Element, Nested};
use crate::event::EventStream;

/// filter_stdout's parameters.
#[derive(Deserialize)]
#[allow(dead_code)]
struct FilterStdoutConf {
    format: Option<Nested>,
    inject: Option<Nested>,
}

pub struct StdoutFilter {
    formatter: Box<dyn Formatter>,
    inject: Option<Inject>,
}

impl StdoutFilter {
    fn format_batch(&self, tag: &str, es: &EventStream, buf: &mut Vec<u8>) {
        for ev in es.iter() {
            match &self.inject {
                Some(inj) => {
                    let mut r = ev.record.clone();
                    inj.apply(tag, ev.time, &mut r);
                    self.formatter.format(tag, ev.time, &r, buf);
                }
                None => self.formatter.format(tag, ev.time, &ev.record, buf),
            }
        }
    }
}

impl Filter for StdoutFilter {
    fn filter_stream(&self, tag: &str, es: EventStream) -> EventStream {
        let mut buf = Vec::with_capacity(256 * es.len().min(4096));
        self.format_batch(tag, &es, &mut buf);
        let mut out = std::io::stdout().lock();
        if let Err(e) = out.write_all(&buf).and_then(|_| out.flush()) {
            tracing::warn!("filter_stdout failed to write to stdout: {}", e);
        }
        es
    }
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Filter>, ConfigError> {
    let _: FilterStdoutConf = ctx.configure(elem, "stdout")?;
    let inject = Inject::from_owner(elem, ctx)?;
    let formatter = super::new_formatter(&format_element(elem, "stdout"), ctx)?;
    Ok(Box::new(StdoutFilter { formatter, inject }))
}

#[cfg(test)]
mod tests {
    use super::super::formatter_json::test_util::*;
    use super::*;
    use crate::event::{EventTime, Value};

    #[test]
    fn prints_injected_copy_and_passes_events_unchanged() {
        let mut owner = section("filter", &[("@type", "stdout")]);
        owner.elements.push(section("format", &[("@type", "json")]));
        owner.elements.push(section("inject", &[("tag_key", "tg")]));
        let ctx = PluginContext::for_tests();
        let f = StdoutFilter {
            formatter: super::super::new_formatter(&format_element(&owner, "stdout"), &ctx)
                .unwrap_or_else(|e| panic!("{e}")),
            inject: Inject::from_owner(&owner, &ctx).unwrap_or_else(|e| panic!("{e}")),
        };
        let es = EventStream::one(EventTime::new(1, 0), rec(vec![("a", Value::Int(1))]));
        let mut buf = Vec::new();
        f.format_batch("x", &es, &mut buf);
        assert_eq!(buf, b"{\"a\":1,\"tg\":\"x\"}\n");
        assert!(create(&owner, &ctx).is_ok());
        let out = create(&owner, &ctx).map(|f| f.filter_stream("x", es.clone()));
        assert_eq!(out.ok(), Some(es));
    }
}
