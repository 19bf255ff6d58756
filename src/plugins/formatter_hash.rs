//! `@type hash` (formatter): Ruby's `Hash#to_s` of the record, plus the inspect rules that
//! `Value::to_ruby_s` uses wherever Fluentd calls `to_s` on a non-string (grep, ltsv, csv...).
//!
//! The output is Ruby 3.1's (`{"k"=>"v", "n"=>1}`), the version the conformance corpus was
//! recorded with. Ruby escapes every non-ASCII character of a UTF-8 string as `\uXXXX` because
//! Fluentd runs with a non-Unicode default external encoding; invalid bytes print as `\xNN`.
//! The value model has no string encodings, so `Str` is inspected as UTF-8 and `Bin` as
//! ASCII-8BIT.

use serde::Deserialize;

use super::formatter_json::{default_true, Newline};
use super::{Formatter, PluginContext};
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventTime, Record, Value};
use crate::json::encode::{write_int, write_ruby_float};

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

/// Ruby's `inspect` of a value (`{"k"=>"v"}`, `[1, "b"]`, `nil`, `1.5`).
pub fn inspect(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_inspect(&mut out, v);
    out
}

pub fn write_inspect_record(out: &mut Vec<u8>, r: &Record) {
    out.push(b'{');
    for (i, (k, v)) in r.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        write_inspect_str(out, k, true);
        out.extend_from_slice(b"=>");
        write_inspect(out, v);
    }
    out.push(b'}');
}

pub fn write_inspect(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Nil => out.extend_from_slice(b"nil"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => write_int(out, *i),
        Value::UInt(u) => out.extend_from_slice(u.to_string().as_bytes()),
        Value::BigInt(d) => out.extend_from_slice(d.as_bytes()),
        Value::Float(f) => write_ruby_float(out, *f),
        Value::Str(s) => write_inspect_str(out, s, true),
        Value::Bin(s) => write_inspect_str(out, s, false),
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                write_inspect(out, x);
            }
            out.push(b']');
        }
        Value::Map(m) => write_inspect_record(out, m),
        // A nested Fluent::EventTime: its `to_s` (seconds); its inspect shows an address.
        Value::Ext(0, p) if p.len() == 8 => {
            write_int(out, u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as i64)
        }
        Value::Ext(_, p) => write_inspect_str(out, p, false),
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Ruby's `String#inspect`; `utf8` selects UTF-8 (`\uXXXX`) or binary (`\xNN`) escapes.
pub fn write_inspect_str(out: &mut Vec<u8>, s: &[u8], utf8: bool) {
    out.push(b'"');
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b < 0x80 {
            match b {
                b'"' | b'\\' => {
                    out.push(b'\\');
                    out.push(b);
                }
                b'#' if matches!(s.get(i + 1), Some(b'$' | b'@' | b'{')) => {
                    out.extend_from_slice(b"\\#")
                }
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0x0c => out.extend_from_slice(b"\\f"),
                0x0b => out.extend_from_slice(b"\\v"),
                0x08 => out.extend_from_slice(b"\\b"),
                0x07 => out.extend_from_slice(b"\\a"),
                0x1b => out.extend_from_slice(b"\\e"),
                0x20..=0x7e => out.push(b),
                _ if utf8 => {
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[(b >> 4) as usize]);
                    out.push(HEX[(b & 15) as usize]);
                }
                _ => {
                    out.extend_from_slice(b"\\x");
                    out.push(HEX[(b >> 4) as usize]);
                    out.push(HEX[(b & 15) as usize]);
                }
            }
            i += 1;
            continue;
        }
        if utf8 {
            if let Some((c, n)) = decode_utf8(&s[i..]) {
                if c < 0x10000 {
                    out.extend_from_slice(b"\\u");
                    for shift in [12, 8, 4, 0] {
                        out.push(HEX[((c >> shift) & 15) as usize]);
                    }
                } else {
                    out.extend_from_slice(format!("\\u{{{c:X}}}").as_bytes());
                }
                i += n;
                continue;
            }
        }
        out.extend_from_slice(b"\\x");
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
        i += 1;
    }
    out.push(b'"');
}

/// One UTF-8 character at the start of `s` (non-ASCII), or None when the bytes are invalid.
fn decode_utf8(s: &[u8]) -> Option<(u32, usize)> {
    let n = match s.first()? {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return None,
    };
    let ch = std::str::from_utf8(s.get(..n)?).ok()?.chars().next()?;
    Some((ch as u32, n))
}

#[cfg(test)]
mod tests {
    use super::super::formatter_json::test_util::*;
    use super::*;

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
