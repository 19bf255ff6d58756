//! Ruby's `inspect` of event values (`{"k"=>"v"}`, `[1, "b"]`, `nil`, `1.5`): what
//! `Value::to_ruby_s` prints wherever Fluentd calls `to_s` on a non-string, and the hash
//! formatter's output.
//!
//! The output is Ruby 3.1's. Ruby escapes every non-ASCII character of a UTF-8 string as
//! `\uXXXX` because Fluentd runs with a non-Unicode default external encoding; invalid bytes
//! print as `\xNN`. The value model has no string encodings, so `Str` is inspected as UTF-8
//! and `Bin` as ASCII-8BIT.

use crate::event::{Record, Value};
use crate::json::encode::{write_int, write_ruby_float};

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
