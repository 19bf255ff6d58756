//! `@type ltsv` (formatter): `label:value` pairs joined by `delimiter`; values are Ruby's `to_s`
//! with every `delimiter` inside them replaced by `replacement` (labels are written as they are).

use serde::Deserialize;

use super::formatter_json::{default_true, Newline};
use super::{Formatter, PluginContext};
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventTime, Record, Value};

fn default_delimiter() -> String {
    "\t".to_string()
}
fn default_label_delimiter() -> String {
    ":".to_string()
}
fn default_replacement() -> String {
    " ".to_string()
}

#[derive(Deserialize)]
struct LtsvConf {
    #[serde(default = "default_delimiter")]
    delimiter: String,
    #[serde(default = "default_label_delimiter")]
    label_delimiter: String,
    #[serde(default = "default_replacement")]
    replacement: String,
    #[serde(default = "default_true")]
    add_newline: bool,
    #[serde(default)]
    newline: Newline,
}

pub struct LtsvFormatter {
    delimiter: Vec<u8>,
    label_delimiter: Vec<u8>,
    replacement: Vec<u8>,
    newline: Option<&'static [u8]>,
}

/// Appends `s` with every occurrence of `pat` replaced (Ruby `gsub` with a string pattern).
pub(crate) fn push_replaced(out: &mut Vec<u8>, s: &[u8], pat: &[u8], rep: &[u8]) {
    if pat.is_empty() {
        out.extend_from_slice(s);
        return;
    }
    let mut start = 0;
    for i in memchr::memmem::find_iter(s, pat) {
        if i < start {
            continue;
        }
        out.extend_from_slice(&s[start..i]);
        out.extend_from_slice(rep);
        start = i + pat.len();
    }
    out.extend_from_slice(&s[start..]);
}

impl Formatter for LtsvFormatter {
    fn format(&self, _tag: &str, _time: EventTime, record: &Record, out: &mut Vec<u8>) {
        for (i, (k, v)) in record.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(&self.delimiter);
            }
            out.extend_from_slice(k);
            out.extend_from_slice(&self.label_delimiter);
            match v {
                Value::Str(s) | Value::Bin(s) => {
                    push_replaced(out, s, &self.delimiter, &self.replacement)
                }
                other => push_replaced(out, &other.to_ruby_s(), &self.delimiter, &self.replacement),
            }
        }
        if let Some(nl) = self.newline {
            out.extend_from_slice(nl);
        }
    }
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Formatter>, ConfigError> {
    let c: LtsvConf = ctx.configure(elem, "ltsv")?;
    Ok(Box::new(LtsvFormatter {
        delimiter: c.delimiter.into_bytes(),
        label_delimiter: c.label_delimiter.into_bytes(),
        replacement: c.replacement.into_bytes(),
        newline: c.add_newline.then(|| c.newline.as_bytes()),
    }))
}

#[cfg(test)]
mod tests {
    use super::super::formatter_json::test_util::*;
    use super::*;

    #[test]
    fn case_083_default_ltsv() {
        let r = rec(vec![
            ("s", Value::str("x")),
            ("n", Value::Int(1)),
            ("a", Value::Array(vec![Value::Int(1), Value::str("b")])),
            ("h", Value::Map(rec(vec![("k", Value::Bool(true))]))),
            ("z", Value::Nil),
        ]);
        assert_eq!(
            run(create, &[], "t", EventTime::new(0, 0), &r),
            b"s:x\tn:1\ta:[1, \"b\"]\th:{\"k\"=>true}\tz:\n"
        );
    }

    #[test]
    fn case_085_custom_delimiters_and_replacement() {
        let r = rec(vec![("a", Value::Int(1)), ("b", Value::str("x y"))]);
        let p = [("delimiter", "|"), ("label_delimiter", "=")];
        assert_eq!(
            run(create, &p, "t", EventTime::new(0, 0), &r),
            b"a=1|b=x y\n"
        );
        let r = rec(vec![("k\tx", Value::str("v\tw\t"))]);
        assert_eq!(
            run(
                create,
                &[("add_newline", "false")],
                "t",
                EventTime::new(0, 0),
                &r
            ),
            b"k\tx:v w "
        );
        let r = rec(vec![("a", Value::str("1|2|3"))]);
        let p = [
            ("delimiter", "|"),
            ("replacement", "--"),
            ("newline", "crlf"),
        ];
        assert_eq!(
            run(create, &p, "t", EventTime::new(0, 0), &r),
            b"a:1--2--3\r\n"
        );
    }
}
