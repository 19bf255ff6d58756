//! `@type hash` (formatter): Ruby's `Hash#to_s` of the record, Ruby 3.1's output
//! (`{"k"=>"v", "n"=>1}`), the version the conformance corpus was recorded with. The inspect
//! rules live in [`crate::inspect`], below the plugins, since `Value::to_ruby_s` uses them too.

use serde::Deserialize;

use super::formatter_json::{default_true, Newline};
use super::{Formatter, PluginContext};
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventTime, Record};
pub use crate::inspect::{inspect, write_inspect, write_inspect_record, write_inspect_str};

#[derive(Deserialize)]
struct HashConf {
    #[serde(default = "default_true")]
    add_newline: bool,
    #[serde(default)]
    newline: Newline,
}

pub struct HashFormatter {
    newline: Option<&'static [u8]>,
}

impl Formatter for HashFormatter {
    fn format(&self, _tag: &str, _time: EventTime, record: &Record, out: &mut Vec<u8>) {
        write_inspect_record(out, record);
        if let Some(nl) = self.newline {
            out.extend_from_slice(nl);
        }
    }
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Formatter>, ConfigError> {
    let c: HashConf = ctx.configure(elem, "hash")?;
    Ok(Box::new(HashFormatter {
        newline: c.add_newline.then(|| c.newline.as_bytes()),
    }))
}

#[cfg(test)]
mod tests {
    use super::super::formatter_json::test_util::*;
    use super::*;
    use crate::event::Value;

    fn insp(v: &Value) -> String {
        String::from_utf8(inspect(v)).unwrap()
    }

    #[test]
    fn case_082_hash_inspect() {
        let r = rec(vec![
            ("s", Value::str("x")),
            ("n", Value::Int(1)),
            ("f", Value::Float(1.5)),
            ("z", Value::Nil),
            ("a", Value::Array(vec![Value::Int(1), Value::str("b")])),
            ("h", Value::Map(rec(vec![("k", Value::Bool(true))]))),
        ]);
        assert_eq!(
            run(create, &[], "t", EventTime::new(0, 0), &r),
            b"{\"s\"=>\"x\", \"n\"=>1, \"f\"=>1.5, \"z\"=>nil, \"a\"=>[1, \"b\"], \"h\"=>{\"k\"=>true}}\n"
        );
    }

    #[test]
    fn case_089_unicode_escapes() {
        let r = rec(vec![
            ("a", Value::Int(1)),
            ("u", Value::str("日本")),
            ("q", Value::str("x\"y")),
        ]);
        assert_eq!(
            run(
                create,
                &[("add_newline", "false")],
                "t",
                EventTime::new(0, 0),
                &r
            ),
            b"{\"a\"=>1, \"u\"=>\"\\u65E5\\u672C\", \"q\"=>\"x\\\"y\"}"
        );
    }

    #[test]
    fn string_inspect_rules() {
        assert_eq!(
            insp(&Value::str("a\u{1}\u{7f}\n\t\u{1b}\u{7}")),
            r#""a\u0001\u007F\n\t\e\a""#
        );
        assert_eq!(
            insp(&Value::str("#{x} #$y #@z #a")),
            r##""\#{x} \#$y \#@z #a""##
        );
        assert_eq!(insp(&Value::str("😀é")), r#""\u{1F600}\u00E9""#);
        assert_eq!(insp(&Value::Str(b"caf\xe9".to_vec())), r#""caf\xE9""#);
        assert_eq!(
            insp(&Value::Bin(b"\xe6\x97\xa5\x7f".to_vec())),
            r#""\xE6\x97\xA5\x7F""#
        );
        assert_eq!(insp(&Value::str("back\\slash")), r#""back\\slash""#);
    }

    #[test]
    fn scalar_inspect() {
        assert_eq!(insp(&Value::Int(42)), "42");
        assert_eq!(insp(&Value::Float(1.5)), "1.5");
        assert_eq!(insp(&Value::Float(-0.0)), "-0.0");
        assert_eq!(insp(&Value::Float(1e20)), "1.0e+20");
        assert_eq!(insp(&Value::Float(f64::INFINITY)), "Infinity");
        assert_eq!(insp(&Value::Nil), "nil");
        assert_eq!(insp(&Value::UInt(u64::MAX)), "18446744073709551615");
        assert_eq!(insp(&Value::Map(Record::new())), "{}");
        assert_eq!(insp(&Value::Array(vec![])), "[]");
    }

    #[test]
    fn to_ruby_s_uses_inspect_for_non_strings() {
        assert_eq!(Value::Int(500).to_ruby_s(), b"500");
        assert_eq!(Value::Nil.to_ruby_s(), b"");
        assert_eq!(Value::str("x").to_ruby_s(), b"x");
        assert_eq!(
            Value::Array(vec![Value::Int(1), Value::str("b")]).to_ruby_s(),
            b"[1, \"b\"]"
        );
    }
}
