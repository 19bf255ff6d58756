//! `@type tsv` (formatter): the values of `keys`, as Ruby's `to_s` (missing → empty), joined by
//! `delimiter`.

use serde::Deserialize;

use super::formatter_json::{default_true, Newline};
use super::{Formatter, PluginContext};
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventTime, Record, Value};

fn default_delimiter() -> String {
    "\t".to_string()
}

#[derive(Deserialize)]
struct TsvConf {
    keys: Vec<String>,
    #[serde(default = "default_delimiter")]
    delimiter: String,
    #[serde(default = "default_true")]
    add_newline: bool,
    #[serde(default)]
    newline: Newline,
}

pub struct TsvFormatter {
    keys: Vec<Vec<u8>>,
    delimiter: Vec<u8>,
    newline: Option<&'static [u8]>,
}

/// Appends Ruby's `to_s` of an optional value (nil and missing are empty).
pub(crate) fn push_to_s(out: &mut Vec<u8>, v: Option<&Value>) {
    match v {
        None | Some(Value::Nil) => {}
        Some(Value::Str(s)) | Some(Value::Bin(s)) => out.extend_from_slice(s),
        Some(other) => super::formatter_hash::write_inspect(out, other),
    }
}

impl Formatter for TsvFormatter {
    fn format(&self, _tag: &str, _time: EventTime, record: &Record, out: &mut Vec<u8>) {
        for (i, k) in self.keys.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(&self.delimiter);
            }
            push_to_s(out, record.get(k));
        }
        if let Some(nl) = self.newline {
            out.extend_from_slice(nl);
        }
    }
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Formatter>, ConfigError> {
    let c: TsvConf = ctx.configure(elem, "tsv")?;
    Ok(Box::new(TsvFormatter {
        keys: c.keys.into_iter().map(String::into_bytes).collect(),
        delimiter: c.delimiter.into_bytes(),
        newline: c.add_newline.then(|| c.newline.as_bytes()),
    }))
}

#[cfg(test)]
mod tests {
    use super::super::formatter_json::test_util::*;
    use super::*;

    #[test]
    fn case_087_keys_in_order() {
        let r = rec(vec![("a", Value::Int(1)), ("b", Value::str("x"))]);
        assert_eq!(
            run(create, &[("keys", "b,a")], "t", EventTime::new(0, 0), &r),
            b"x\t1\n"
        );
        let p = [
            ("keys", "a,missing,b"),
            ("delimiter", ","),
            ("add_newline", "false"),
        ];
        assert_eq!(run(create, &p, "t", EventTime::new(0, 0), &r), b"1,,x");
    }

    #[test]
    fn keys_are_required() {
        let e = section("format", &[]);
        let err = create(&e, &PluginContext::for_tests())
            .err()
            .map(|e| e.message);
        assert_eq!(err.as_deref(), Some("'keys' parameter is required"));
    }
}
