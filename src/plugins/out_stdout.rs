//! `@type stdout` (output): each event formatted by the `<format>` (default `@type stdout`,
//! i.e. `TIME TAG: JSON`), chomped, plus `\n`, written to the process's stdout; one locked
//! write per batch. `<inject>` is applied first. `<buffer>` is accepted; events are written
//! synchronously either way.
//!
//! Also [`format_element`], the `<format>` resolution that outputs taking a formatter share.

use std::io::Write;

use parking_lot::Mutex;
use serde::Deserialize;

use super::formatter_json::{chomp_from, default_true};
use super::inject::Inject;
use super::{Formatter, Output, OutputError, PluginContext};
use crate::config_parser::{ConfigError, Element, Nested};
use crate::event::EventStream;

/// The `<format>` section an output uses, with `@type` defaulting to `default_type`. (v0 flat
/// parameters have become this section in `config_parser::compat`.)
pub fn format_element(owner: &Element, default_type: &str) -> Element {
    let mut e = owner
        .child("format")
        .cloned()
        .unwrap_or_else(|| Element::new("format", "", owner.span.clone()));
    if e.plugin_type().is_none() {
        e.set("@type", default_type);
    }
    e
}

/// out_stdout's parameters.
#[derive(Deserialize)]
#[allow(dead_code)]
struct StdoutConf {
    /// Fluentd writes through its logger, whose output is stdout as well.
    #[serde(default = "default_true")]
    use_logger: bool,
    format: Option<Nested>,
    inject: Option<Nested>,
    buffer: Option<Nested>,
}

pub struct StdoutOutput {
    formatter: Box<dyn Formatter>,
    inject: Option<Inject>,
    /// Reused across batches so that formatting does not allocate per batch.
    buf: Mutex<Vec<u8>>,
}

/// Larger batch buffers are released after the write rather than kept.
const KEEP_BUFFER: usize = 4 << 20;

impl StdoutOutput {
    /// Formats a batch as the lines out_stdout writes.
    fn format_batch(&self, tag: &str, es: &EventStream, buf: &mut Vec<u8>) {
        for ev in es.iter() {
            let start = buf.len();
            self.formatter.format(tag, ev.time, &ev.record, buf);
            chomp_from(buf, start);
            buf.push(b'\n');
        }
    }
}

impl Output for StdoutOutput {
    fn emit(&self, tag: &str, mut es: EventStream) -> Result<(), OutputError> {
        if let Some(inj) = &self.inject {
            inj.apply_stream(tag, &mut es);
        }
        let mut buf = self.buf.lock();
        buf.clear();
        self.format_batch(tag, &es, &mut buf);
        let res = {
            let mut out = std::io::stdout().lock();
            out.write_all(&buf).and_then(|_| out.flush())
        };
        if buf.capacity() > KEEP_BUFFER {
            *buf = Vec::new();
        }
        res.map_err(|e| OutputError::new(format!("failed to write to stdout: {e}")))
    }
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Output>, ConfigError> {
    let _: StdoutConf = ctx.configure(elem, "stdout")?;
    super::check_section_type(elem, "buffer", super::BUFFER_TYPES)?;
    let inject = Inject::from_owner(elem, ctx)?;
    let formatter = super::new_formatter(&format_element(elem, "stdout"), ctx)?;
    Ok(Box::new(StdoutOutput {
        formatter,
        inject,
        buf: Mutex::new(Vec::with_capacity(8192)),
    }))
}

#[cfg(test)]
mod tests {
    use super::super::formatter_json::test_util::*;
    use super::*;
    use crate::event::{EventTime, Value};
    use crate::test_util::directive;

    fn output(owner: &Element) -> StdoutOutput {
        let ctx = PluginContext::for_tests();
        StdoutOutput {
            formatter: super::super::new_formatter(&format_element(owner, "stdout"), &ctx)
                .unwrap_or_else(|e| panic!("{e}")),
            inject: Inject::from_owner(owner, &ctx).unwrap_or_else(|e| panic!("{e}")),
            buf: Mutex::new(Vec::new()),
        }
    }

    fn lines(owner: &Element, es: EventStream) -> String {
        let o = output(owner);
        let mut es = es;
        if let Some(i) = &o.inject {
            i.apply_stream("t", &mut es);
        }
        let mut buf = Vec::new();
        o.format_batch("t", &es, &mut buf);
        String::from_utf8(buf).unwrap()
    }

    fn stream() -> EventStream {
        let mut es = EventStream::new();
        es.push(
            EventTime::new(1_700_000_000, 0),
            rec(vec![("a", Value::Int(1))]),
        );
        es.push(
            EventTime::new(1_700_000_001, 0),
            rec(vec![("a", Value::Int(2))]),
        );
        es
    }

    #[test]
    fn case_084_format_json_section() {
        let mut owner = section("match", &[("@type", "stdout")]);
        owner.elements.push(section("format", &[("@type", "json")]));
        assert_eq!(lines(&owner, stream()), "{\"a\":1}\n{\"a\":2}\n");
    }

    #[test]
    fn case_092_default_line_with_inject() {
        let mut owner = section("match", &[("@type", "stdout")]);
        owner.elements.push(section(
            "inject",
            &[("tag_key", "the_tag"), ("time_key", "the_time")],
        ));
        let out = lines(&owner, stream());
        let z = crate::timefmt::TimeZoneSpec::Local;
        let t1 = crate::timefmt::strftime(
            EventTime::new(1_700_000_000, 0),
            "%Y-%m-%d %H:%M:%S.%N %z",
            &z,
        );
        let t2 = crate::timefmt::strftime(
            EventTime::new(1_700_000_001, 0),
            "%Y-%m-%d %H:%M:%S.%N %z",
            &z,
        );
        assert_eq!(
            out,
            format!(
                "{t1} t: {{\"a\":1,\"the_tag\":\"t\",\"the_time\":1700000000.0}}\n{t2} t: {{\"a\":2,\"the_tag\":\"t\",\"the_time\":1700000001.0}}\n"
            )
        );
    }

    #[test]
    fn case_088_lines_are_chomped_then_terminated() {
        let mut owner = section("match", &[]);
        owner.elements.push(section(
            "format",
            &[("@type", "single_value"), ("message_key", "msg")],
        ));
        let mut es = EventStream::new();
        es.push(
            EventTime::new(0, 0),
            rec(vec![("msg", Value::str("first"))]),
        );
        es.push(EventTime::new(0, 0), rec(vec![("x", Value::Int(2))]));
        es.push(EventTime::new(0, 0), rec(vec![("msg", Value::Int(7))]));
        es.push(
            EventTime::new(0, 0),
            rec(vec![("msg", Value::str("crlf\r\n"))]),
        );
        // Ruby chomps one line ending: "crlf\r\n\n" → "crlf\r\n", then adds "\n".
        assert_eq!(lines(&owner, es), "first\n\n7\ncrlf\r\n\n");
        let mut owner = section("match", &[]);
        owner.elements.push(section(
            "format",
            &[("@type", "json"), ("add_newline", "false")],
        ));
        assert_eq!(lines(&owner, stream()), "{\"a\":1}\n{\"a\":2}\n");
    }

    #[test]
    fn case_093_from_config_text() {
        let owner = directive(
            "<match t>\n  @type stdout\n  <format>\n    @type json\n  </format>\n  <inject>\n    time_key t1\n    time_type string\n    time_format %Y-%m-%dT%H:%M:%S.%3N%z\n    timezone +09:00\n  </inject>\n</match>\n",
        );
        let mut es = EventStream::new();
        es.push(
            EventTime::new(1_700_000_000, 0),
            rec(vec![("a", Value::Int(1))]),
        );
        assert_eq!(
            lines(&owner, es),
            "{\"a\":1,\"t1\":\"2023-11-15T07:13:20.000+0900\"}\n"
        );
        assert!(create(&owner, &PluginContext::for_tests()).is_ok());
    }

    #[test]
    fn case_085_086_087_from_config_text() {
        let r = rec(vec![
            ("a", Value::Int(1)),
            ("b", Value::str("say \"hi\", ok")),
            ("c", Value::str("plain")),
        ]);
        let one = |conf: &str| {
            let owner = directive(conf);
            lines(&owner, EventStream::one(EventTime::new(0, 0), r.clone()))
        };
        assert_eq!(
            one("<match t>\n  @type stdout\n  <format>\n    @type csv\n    fields a,b,missing,c\n  </format>\n</match>\n"),
            "\"1\",\"say \"\"hi\"\", ok\",\"\",\"plain\"\n"
        );
        assert_eq!(
            one("<match t>\n  @type stdout\n  <format>\n    @type tsv\n    keys c,a\n  </format>\n</match>\n"),
            "plain\t1\n"
        );
        assert_eq!(
            one("<match t>\n  @type stdout\n  <format>\n    @type ltsv\n    delimiter |\n    label_delimiter =\n  </format>\n</match>\n"),
            "a=1|b=say \"hi\", ok|c=plain\n"
        );
    }

    #[test]
    fn create_accepts_buffer_and_use_logger() {
        let mut owner = section("match", &[("@type", "stdout"), ("use_logger", "false")]);
        owner
            .elements
            .push(section("buffer", &[("flush_interval", "1s")]));
        assert!(create(&owner, &PluginContext::for_tests()).is_ok());
        let mut owner = section("match", &[("@type", "stdout")]);
        owner
            .elements
            .push(section("format", &[("output_type", "nope")]));
        assert!(create(&owner, &PluginContext::for_tests()).is_err());
    }
}
