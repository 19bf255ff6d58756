//! `@type json` (formatter): the record as compact JSON (`Oj.dump`, or `Yajl.dump` when
//! `json_parser` is anything but `oj`), then the newline. Also the `newline` parameter and
//! `chomp` that every formatter shares.

use serde::Deserialize;

use super::{Formatter, PluginContext};
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventTime, Record};
use crate::json::encode::{self, Style};

/// Fluentd's `Newline::Mixin` parameter: `newline lf|crlf`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Newline {
    #[default]
    Lf,
    Crlf,
}

impl Newline {
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            Newline::Lf => b"\n",
            Newline::Crlf => b"\r\n",
        }
    }
}

/// Ruby's `String#chomp` applied to `buf[start..]`: drops one trailing `\r\n`, `\n` or `\r`.
pub fn chomp_from(buf: &mut Vec<u8>, start: usize) {
    if buf.len() <= start {
        return;
    }
    match buf.last() {
        Some(b'\n') => {
            buf.pop();
            if buf.len() > start && buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        Some(b'\r') => {
            buf.pop();
        }
        _ => {}
    }
}

pub(crate) fn default_true() -> bool {
    true
}

fn default_json_parser() -> String {
    "oj".to_string()
}

#[derive(Deserialize)]
struct JsonConf {
    #[serde(default = "default_json_parser")]
    json_parser: String,
    #[serde(default = "default_true")]
    add_newline: bool,
    #[serde(default)]
    newline: Newline,
}

pub struct JsonFormatter {
    style: Style,
    newline: Option<&'static [u8]>,
}

impl JsonFormatter {
    /// Oj output with a newline, as `<format> @type json` with no parameters.
    pub fn new() -> Self {
        JsonFormatter {
            style: Style::Oj,
            newline: Some(b"\n"),
        }
    }
}

impl Default for JsonFormatter {
    fn default() -> Self {
        Self::new()
    }
}

impl Formatter for JsonFormatter {
    fn format(&self, _tag: &str, _time: EventTime, record: &Record, out: &mut Vec<u8>) {
        encode::write_record_styled(out, record, self.style);
        if let Some(nl) = self.newline {
            out.extend_from_slice(nl);
        }
    }
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Formatter>, ConfigError> {
    let c: JsonConf = ctx.configure(elem, "json")?;
    let style = if c.json_parser == "oj" {
        Style::Oj
    } else {
        Style::Yajl
    };
    Ok(Box::new(JsonFormatter {
        style,
        newline: c.add_newline.then(|| c.newline.as_bytes()),
    }))
}

#[cfg(test)]
pub(crate) mod test_util {
    use crate::event::Record;
    pub use crate::test_util::{rec, section};

    /// Runs a formatter built from `params` on one record.
    pub fn run(
        ctor: crate::plugins::FormatterCtor,
        params: &[(&str, &str)],
        tag: &str,
        time: crate::event::EventTime,
        r: &Record,
    ) -> Vec<u8> {
        let f = ctor(
            &section("format", params),
            &crate::plugins::PluginContext::for_tests(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut out = Vec::new();
        f.format(tag, time, r, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use super::*;
    use crate::event::Value;

    #[test]
    fn case_084_record_only_with_newline() {
        let t = EventTime::new(1, 0);
        let r = rec(vec![("a", Value::Int(1))]);
        assert_eq!(
            run(create, &[("@type", "json")], "t", t, &r),
            b"{\"a\":1}\n"
        );
        let r = rec(vec![("b", Value::str("é"))]);
        assert_eq!(run(create, &[], "t", t, &r), "{\"b\":\"é\"}\n".as_bytes());
    }

    #[test]
    fn add_newline_newline_and_parser() {
        let t = EventTime::new(1, 0);
        let r = rec(vec![("f", Value::Float(-0.0)), ("c", Value::str("\u{1f}"))]);
        assert_eq!(
            run(create, &[("add_newline", "false")], "t", t, &r),
            b"{\"f\":0.0,\"c\":\"\\u001f\"}"
        );
        assert_eq!(
            run(create, &[("newline", "crlf")], "t", t, &r),
            b"{\"f\":0.0,\"c\":\"\\u001f\"}\r\n"
        );
        assert_eq!(
            run(create, &[("json_parser", "yajl")], "t", t, &r),
            b"{\"f\":-0.0,\"c\":\"\\u001F\"}\n"
        );
        let f = crate::plugins::new_formatter(
            &section("format", &[("@type", "json"), ("newline", "cr")]),
            &PluginContext::for_tests(),
        );
        assert!(f.is_err());
    }

    #[test]
    fn chomp_like_ruby() {
        let mut b = b"x\r\n".to_vec();
        chomp_from(&mut b, 0);
        assert_eq!(b, b"x");
        let mut b = b"x\n\n".to_vec();
        chomp_from(&mut b, 0);
        assert_eq!(b, b"x\n");
        let mut b = b"ab\r".to_vec();
        chomp_from(&mut b, 0);
        assert_eq!(b, b"ab");
        let mut b = b"ab\n".to_vec();
        chomp_from(&mut b, 3);
        assert_eq!(b, b"ab\n");
    }
}
