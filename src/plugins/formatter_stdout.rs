//! `@type stdout` (formatter): `TIME TAG: OUTPUT\n`, where TIME is `%Y-%m-%d %H:%M:%S.%N %z`
//! (or `time_format`) in local time and OUTPUT the `output_type` formatter's result (chomped),
//! configured from the same section.

use serde::Deserialize;

use super::formatter_json::chomp_from;
use super::{Formatter, PluginContext};
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventTime, Record};
use crate::timefmt::{TimeFormatter, TimeZoneSpec};

pub const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S.%N %z";

fn default_output_type() -> String {
    "json".to_string()
}

#[derive(Deserialize)]
struct StdoutFormatConf {
    #[serde(default = "default_output_type")]
    output_type: String,
    time_format: Option<String>,
}

/// The parameters this formatter reads; the rest of the section belongs to the sub-formatter.
const OWN: &[&str] = &["output_type", "time_format"];

pub struct StdoutFormatter {
    time: TimeFormatter,
    sub: Box<dyn Formatter>,
}

impl Formatter for StdoutFormatter {
    fn format(&self, tag: &str, time: EventTime, record: &Record, out: &mut Vec<u8>) {
        self.time.format_into(time, out);
        out.push(b' ');
        out.extend_from_slice(tag.as_bytes());
        out.extend_from_slice(b": ");
        let start = out.len();
        self.sub.format(tag, time, record, out);
        chomp_from(out, start);
        out.push(b'\n');
    }
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Formatter>, ConfigError> {
    // Both formatters read the one section (as in Fluentd); each is shown only its own keys so
    // that neither warns about the other's.
    let mut own = elem.clone();
    own.params
        .retain(|p| OWN.contains(&p.key.as_str()) || p.key.starts_with('@') || p.key == "type");
    own.elements.clear();
    let c: StdoutFormatConf = ctx.configure(&own, "stdout")?;
    if c.output_type == "stdout" {
        return Err(elem.error("output_type stdout would format recursively"));
    }
    let mut sub = elem.clone();
    // out_file reads time_format too.
    let keep_time_format = c.output_type == "out_file";
    sub.params.retain(|p| {
        p.key != "output_type" && p.key != "type" && (keep_time_format || p.key != "time_format")
    });
    sub.set("@type", &c.output_type);
    let sub = super::new_formatter(&sub, ctx)?;
    Ok(Box::new(StdoutFormatter {
        time: TimeFormatter::new(
            Some(c.time_format.as_deref().unwrap_or(TIME_FORMAT)),
            TimeZoneSpec::Local,
        ),
        sub,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::formatter_json::test_util::*;
    use super::*;
    use crate::event::Value;

    /// The local-time prefix is whatever the test process's zone gives; compare the rest.
    fn body(out: &[u8], t: EventTime) -> Vec<u8> {
        let prefix = crate::timefmt::strftime(t, TIME_FORMAT, &TimeZoneSpec::Local);
        assert!(
            out.starts_with(prefix.as_bytes()),
            "{}",
            String::from_utf8_lossy(out)
        );
        out[prefix.len()..].to_vec()
    }

    #[test]
    fn default_json_line() {
        let t = EventTime::new(1_700_000_000, 5);
        let r = rec(vec![("hello", Value::str("world")), ("n", Value::Int(1))]);
        let out = run(create, &[("@type", "stdout")], "t", t, &r);
        assert_eq!(body(&out, t), b" t: {\"hello\":\"world\",\"n\":1}\n");
        let prefix = crate::timefmt::strftime(t, TIME_FORMAT, &TimeZoneSpec::Local);
        assert!(prefix.contains(".000000005 "), "{prefix}");
    }

    #[test]
    fn case_082_083_output_types() {
        let t = EventTime::new(1_700_000_000, 0);
        let r = rec(vec![
            ("s", Value::str("x")),
            ("a", Value::Array(vec![Value::Int(1), Value::str("b")])),
            ("z", Value::Nil),
        ]);
        let out = run(create, &[("output_type", "hash")], "t", t, &r);
        assert_eq!(
            body(&out, t),
            b" t: {\"s\"=>\"x\", \"a\"=>[1, \"b\"], \"z\"=>nil}\n"
        );
        let out = run(create, &[("output_type", "ltsv")], "t", t, &r);
        assert_eq!(body(&out, t), b" t: s:x\ta:[1, \"b\"]\tz:\n");
        let out = run(
            create,
            &[
                ("output_type", "ltsv"),
                ("delimiter", "|"),
                ("newline", "crlf"),
            ],
            "t",
            t,
            &r,
        );
        assert_eq!(body(&out, t), b" t: s:x|a:[1, \"b\"]|z:\n");
    }

    #[test]
    fn case_091_custom_time_format() {
        let t = EventTime::new(1_700_000_000, 0);
        let r = rec(vec![("a", Value::Int(1))]);
        let out = run(create, &[("time_format", "%s|%3N")], "t", t, &r);
        assert_eq!(out, b"1700000000|000 t: {\"a\":1}\n");
        let expect = format!(
            "{} t: {{\"a\":1}}\n",
            crate::timefmt::strftime(t, "%d/%m/%Y %H:%M", &TimeZoneSpec::Local)
        );
        let out = run(create, &[("time_format", "%d/%m/%Y %H:%M")], "t", t, &r);
        assert_eq!(String::from_utf8(out).unwrap(), expect);
    }

    #[test]
    fn unknown_output_type_is_an_error() {
        let e = section("format", &[("output_type", "nope")]);
        let msg = create(&e, &PluginContext::for_tests())
            .err()
            .map(|e| e.message);
        assert!(msg
            .unwrap_or_default()
            .starts_with("Unknown formatter plugin 'nope'"));
    }
}
