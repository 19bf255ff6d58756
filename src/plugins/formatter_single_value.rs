//! `@type single_value` (formatter): Ruby's `to_s` of `record[message_key]` (empty when
//! missing), then the newline.

use serde::Deserialize;

use super::formatter_json::{default_true, Newline};
use super::formatter_tsv::push_to_s;
use super::{Formatter, PluginContext};
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventTime, Record};

fn default_message_key() -> String {
    "message".to_string()
}

#[derive(Deserialize)]
struct SingleValueConf {
    #[serde(default = "default_message_key")]
    message_key: String,
    #[serde(default = "default_true")]
    add_newline: bool,
    #[serde(default)]
    newline: Newline,
}

pub struct SingleValueFormatter {
    message_key: Vec<u8>,
    newline: Option<&'static [u8]>,
}

impl Formatter for SingleValueFormatter {
    fn format(&self, _tag: &str, _time: EventTime, record: &Record, out: &mut Vec<u8>) {
        push_to_s(out, record.get(&self.message_key));
        if let Some(nl) = self.newline {
            out.extend_from_slice(nl);
        }
    }
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Formatter>, ConfigError> {
    let c: SingleValueConf = ctx.configure(elem, "single_value")?;
    Ok(Box::new(SingleValueFormatter {
        message_key: c.message_key.into_bytes(),
        newline: c.add_newline.then(|| c.newline.as_bytes()),
    }))
}

#[cfg(test)]
mod tests {
    use super::super::formatter_json::test_util::*;
    use super::*;
    use crate::event::Value;

    #[test]
    fn case_088_message_key() {
        let t = EventTime::new(0, 0);
        let p = [("message_key", "msg")];
        let r = rec(vec![("msg", Value::str("first")), ("x", Value::Int(1))]);
        assert_eq!(run(create, &p, "t", t, &r), b"first\n");
        let r = rec(vec![("x", Value::Int(2))]);
        assert_eq!(run(create, &p, "t", t, &r), b"\n");
        let r = rec(vec![("msg", Value::Int(7))]);
        assert_eq!(run(create, &p, "t", t, &r), b"7\n");
        let r = rec(vec![("message", Value::str("m"))]);
        assert_eq!(run(create, &[("add_newline", "false")], "t", t, &r), b"m");
    }
}
