//! JSON output as Fluentd writes it. `formatter_json` (and so out_stdout) dumps records with Oj in
//! `:compat` mode, and `formatter_out_file` with Yajl; both are compact, keep key order, write
//! non-ASCII and invalid UTF-8 bytes raw and escape only `"`, `\` and control characters (`/`,
//! DEL and U+2028/U+2029 stay raw).
//!
//! Floats follow Oj's compat `dump_float`: any zero is `0.0` (so `-0.0` prints as `0.0`: that is
//! the encoder, not the decoder, which keeps the sign for Ruby's `inspect`), infinities and NaN
//! are `Infinity`/`-Infinity`/`NaN`, integral values in the `long long` range print as `%.1f`
//! (`1e15` → `1000000000000000.0`), everything else as Ruby's `Float#to_s` (`0.1`, `1.0e+20`,
//! `1.5e-07`). Yajl prints every float with `Float#to_s` (it raises on NaN/Infinity, which would
//! fail the write in Fluentd; here they print as `Float#to_s` too).

use crate::event::{Record, Value};

/// Which Ruby JSON generator to imitate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Style {
    /// `Oj.dump` in compat mode (formatter_json's default `json_parser oj`).
    #[default]
    Oj,
    /// `Yajl.dump` (formatter_out_file, and formatter_json with another `json_parser`).
    Yajl,
}

/// How each byte is written inside a string: 0 = as is, `u` = `\u00XX`, else `\` + that byte.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";
const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Appends `v` as Oj writes it.
pub fn write_value(out: &mut Vec<u8>, v: &Value) {
    write_value_styled(out, v, Style::Oj);
}

/// Appends a record (a JSON object) as Oj writes it.
pub fn write_record(out: &mut Vec<u8>, r: &Record) {
    write_record_styled(out, r, Style::Oj);
}

pub fn to_vec(v: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    write_value(&mut out, v);
    out
}

pub fn record_to_vec(r: &Record) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    write_record(&mut out, r);
    out
}

pub fn write_record_styled(out: &mut Vec<u8>, r: &Record, style: Style) {
    out.push(b'{');
    let mut first = true;
    for (k, v) in r.iter() {
        if !first {
            out.push(b',');
        }
        first = false;
        write_str_styled(out, k, style);
        out.push(b':');
        write_value_styled(out, v, style);
    }
    out.push(b'}');
}

pub fn write_value_styled(out: &mut Vec<u8>, v: &Value, style: Style) {
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => write_int(out, *i),
        Value::UInt(u) => {
            let mut b = itoa::Buffer::new();
            out.extend_from_slice(b.format(*u).as_bytes());
        }
        Value::BigInt(digits) => out.extend_from_slice(digits.as_bytes()),
        Value::Float(f) => match style {
            Style::Oj => write_float_oj(out, *f),
            Style::Yajl => write_ruby_float(out, *f),
        },
        Value::Str(s) | Value::Bin(s) => write_str_styled(out, s, style),
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value_styled(out, x, style);
            }
            out.push(b']');
        }
        Value::Map(m) => write_record_styled(out, m, style),
        // A nested Fluent::EventTime: its `to_json` is its seconds.
        Value::Ext(0, p) if p.len() == 8 => {
            let sec = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
            write_int(out, sec as i64);
        }
        // Other extension values have no JSON form in Fluentd; keep their bytes as a string.
        Value::Ext(_, p) => write_str_styled(out, p, style),
    }
}

/// Appends `s` as a JSON string (Oj escaping).
pub fn write_str(out: &mut Vec<u8>, s: &[u8]) {
    write_str_styled(out, s, Style::Oj);
}

pub fn write_str_styled(out: &mut Vec<u8>, s: &[u8], style: Style) {
    // Oj writes `\u001f`, Yajl `\u001F`.
    let hex = match style {
        Style::Oj => HEX_LOWER,
        Style::Yajl => HEX_UPPER,
    };
    out.reserve(s.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < s.len() {
        // Skip 8 plain bytes at a time.
        if let Some(chunk) = s.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            if !word_needs_escape(u64::from_le_bytes(w)) {
                i += 8;
                continue;
            }
        }
        let b = s[i];
        let e = ESCAPE[b as usize];
        if e == 0 {
            i += 1;
            continue;
        }
        out.extend_from_slice(&s[start..i]);
        if e == b'u' {
            out.extend_from_slice(b"\\u00");
            out.push(hex[(b >> 4) as usize]);
            out.push(hex[(b & 0x0f) as usize]);
        } else {
            out.push(b'\\');
            out.push(e);
        }
        start = i + 1;
        i += 1;
    }
    out.extend_from_slice(&s[start..]);
    out.push(b'"');
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Does any byte of `w` need escaping (< 0x20, `"` or `\`)? Exact, by the SWAR
/// "has byte less than" / "has zero byte" tests.
#[inline]
fn word_needs_escape(w: u64) -> bool {
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS != 0;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGHS != 0;
    below_space || has_zero(w ^ (ONES * b'"' as u64)) || has_zero(w ^ (ONES * b'\\' as u64))
}

pub fn write_int(out: &mut Vec<u8>, i: i64) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(i).as_bytes());
}

/// Oj compat mode's `dump_float`.
pub fn write_float_oj(out: &mut Vec<u8>, f: f64) {
    if f == 0.0 {
        out.extend_from_slice(b"0.0");
    } else if f.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if f.is_infinite() {
        out.extend_from_slice(if f > 0.0 { b"Infinity" } else { b"-Infinity" });
    } else if f.fract() == 0.0 && (i64::MIN as f64..-(i64::MIN as f64)).contains(&f) {
        // `d == (double)(long long)d` → printf("%.1f")
        write_int(out, f as i64);
        out.extend_from_slice(b".0");
    } else {
        write_ruby_float(out, f);
    }
}

/// Ruby's `Float#to_s`: shortest round-trip digits, fixed notation when the decimal exponent
/// is in -4 < decpt <= 16, else `d.ddde+XX`.
pub fn write_ruby_float(out: &mut Vec<u8>, f: f64) {
    if f.is_nan() {
        out.extend_from_slice(b"NaN");
        return;
    }
    if f.is_infinite() {
        out.extend_from_slice(if f > 0.0 { b"Infinity" } else { b"-Infinity" });
        return;
    }
    // Shortest round-trip digits (zmij prints e.g. "-1.5e-7", "1e20", "0.01234", "123.456").
    let mut zb = zmij::Buffer::new();
    let s = zb.format_finite(f).as_bytes();
    let (neg, s) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    let epos = s.iter().position(|&c| c == b'e').unwrap_or(s.len());
    let (mant, exp) = (&s[..epos], &s[(epos + 1).min(s.len())..]);
    // Digits without leading/trailing zeros; `point` = digits before the decimal point.
    let mut digits = [0u8; 40];
    let mut nd = 0;
    let mut point: i32 = 0;
    let mut seen_point = false;
    for &c in mant {
        if c == b'.' {
            seen_point = true;
        } else if c.is_ascii_digit() {
            if !seen_point {
                point += 1;
            }
            if nd == 0 && c == b'0' {
                point -= 1;
            } else if nd < digits.len() {
                digits[nd] = c;
                nd += 1;
            }
        }
    }
    while nd > 1 && digits[nd - 1] == b'0' {
        nd -= 1;
    }
    if nd == 0 {
        digits[0] = b'0';
        nd = 1;
        point = 1;
    }
    let digits = &digits[..nd];
    let decpt = point + parse_exp(exp);
    if neg {
        out.push(b'-');
    }
    if decpt > 0 && decpt <= 16 {
        let decpt = decpt as usize;
        if decpt < nd {
            out.extend_from_slice(&digits[..decpt]);
            out.push(b'.');
            out.extend_from_slice(&digits[decpt..]);
        } else {
            out.extend_from_slice(digits);
            out.resize(out.len() + (decpt - nd), b'0');
            out.extend_from_slice(b".0");
        }
    } else if decpt <= 0 && decpt > -4 {
        out.extend_from_slice(b"0.");
        out.resize(out.len() + (-decpt) as usize, b'0');
        out.extend_from_slice(digits);
    } else {
        out.push(digits[0]);
        out.push(b'.');
        if nd > 1 {
            out.extend_from_slice(&digits[1..]);
        } else {
            out.push(b'0');
        }
        let e = decpt - 1;
        out.push(b'e');
        out.push(if e < 0 { b'-' } else { b'+' });
        let a = e.unsigned_abs();
        if a < 10 {
            out.push(b'0');
        }
        let mut b = itoa::Buffer::new();
        out.extend_from_slice(b.format(a).as_bytes());
    }
}

fn parse_exp(s: &[u8]) -> i32 {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    let mut v: i32 = 0;
    for &c in digits {
        if c.is_ascii_digit() {
            v = v.saturating_mul(10).saturating_add((c - b'0') as i32);
        }
    }
    if neg {
        -v
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(fields: Vec<(&str, Value)>) -> Record {
        fields
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v))
            .collect()
    }

    fn s(v: &Value) -> String {
        String::from_utf8_lossy(&to_vec(v)).into_owned()
    }

    fn ruby_f(f: f64) -> String {
        let mut o = Vec::new();
        write_ruby_float(&mut o, f);
        String::from_utf8(o).unwrap()
    }

    #[test]
    fn case_077_unicode_raw() {
        let r = rec(vec![
            ("fr", Value::str("héllo")),
            ("ja", Value::str("日本語")),
            ("emoji", Value::str("😀")),
            ("esc", Value::str("é")),
        ]);
        assert_eq!(
            String::from_utf8(record_to_vec(&r)).unwrap(),
            r#"{"fr":"héllo","ja":"日本語","emoji":"😀","esc":"é"}"#
        );
    }

    #[test]
    fn case_078_control_chars() {
        let r = rec(vec![
            ("c", Value::str("a\u{1}b\u{8}c\u{c}d\te\nf\rg")),
            ("q", Value::str("\"x\\y")),
            ("s", Value::str("a/b<c>&d")),
            ("del", Value::str("\u{7f}")),
            ("ls", Value::str("\u{2028}\u{2029}")),
        ]);
        assert_eq!(
            String::from_utf8(record_to_vec(&r)).unwrap(),
            "{\"c\":\"a\\u0001b\\bc\\fd\\te\\nf\\rg\",\"q\":\"\\\"x\\\\y\",\"s\":\"a/b<c>&d\",\"del\":\"\u{7f}\",\"ls\":\"\u{2028}\u{2029}\"}"
        );
        assert_eq!(s(&Value::str("\u{1f}")), "\"\\u001f\"");
        let mut o = Vec::new();
        write_str_styled(&mut o, b"\x1f", Style::Yajl);
        assert_eq!(o, b"\"\\u001F\"");
    }

    #[test]
    fn case_079_numbers() {
        let r = rec(vec![
            ("one", Value::Float(1.0)),
            ("tenth", Value::Float(0.1)),
            ("negz", Value::Float(-0.0)),
            ("big", Value::Float(1e20)),
            ("small", Value::Float(1.5e-7)),
            ("u64", Value::BigInt("18446744073709551616".into())),
            ("i64", Value::Int(i64::MIN)),
            ("huge", Value::Float(f64::INFINITY)),
            ("int", Value::Int(42)),
        ]);
        assert_eq!(
            String::from_utf8(record_to_vec(&r)).unwrap(),
            r#"{"one":1.0,"tenth":0.1,"negz":0.0,"big":1.0e+20,"small":1.5e-07,"u64":18446744073709551616,"i64":-9223372036854775808,"huge":Infinity,"int":42}"#
        );
        assert_eq!(s(&Value::UInt(u64::MAX)), "18446744073709551615");
        assert_eq!(s(&Value::Float(f64::NEG_INFINITY)), "-Infinity");
        assert_eq!(s(&Value::Float(f64::NAN)), "NaN");
        assert_eq!(s(&Value::Float(1e15)), "1000000000000000.0");
        assert_eq!(s(&Value::Float(1e16)), "10000000000000000.0");
        assert_eq!(s(&Value::Float(1e19)), "1.0e+19");
        assert_eq!(s(&Value::Float(-2.5)), "-2.5");
        assert_eq!(s(&Value::Float(1700000000.25)), "1700000000.25");
    }

    #[test]
    fn case_080_nested_nil_bool() {
        let r = rec(vec![
            ("n", Value::Nil),
            ("t", Value::Bool(true)),
            ("f", Value::Bool(false)),
            (
                "arr",
                Value::Array(vec![
                    Value::Int(1),
                    Value::str("two"),
                    Value::Nil,
                    Value::Array(vec![Value::Int(3)]),
                ]),
            ),
            (
                "obj",
                Value::Map(rec(vec![(
                    "a",
                    Value::Map(rec(vec![("b", Value::Map(Record::new()))])),
                )])),
            ),
            ("ea", Value::Array(vec![])),
        ]);
        assert_eq!(
            String::from_utf8(record_to_vec(&r)).unwrap(),
            r#"{"n":null,"t":true,"f":false,"arr":[1,"two",null,[3]],"obj":{"a":{"b":{}}},"ea":[]}"#
        );
    }

    #[test]
    fn case_191_invalid_utf8_raw() {
        let r = rec(vec![("message", Value::Str(b"bad \xff\xfe byte".to_vec()))]);
        assert_eq!(
            record_to_vec(&r),
            b"{\"message\":\"bad \xff\xfe byte\"}".to_vec()
        );
    }

    #[test]
    fn ruby_float_to_s() {
        assert_eq!(ruby_f(1.0), "1.0");
        assert_eq!(ruby_f(-0.0), "-0.0");
        assert_eq!(ruby_f(0.0), "0.0");
        assert_eq!(ruby_f(0.1), "0.1");
        assert_eq!(ruby_f(1.5), "1.5");
        assert_eq!(ruby_f(1e20), "1.0e+20");
        assert_eq!(ruby_f(1e16), "1.0e+16");
        assert_eq!(ruby_f(1e15), "1000000000000000.0");
        assert_eq!(ruby_f(1234567.125), "1234567.125");
        assert_eq!(ruby_f(1.5e-7), "1.5e-07");
        assert_eq!(ruby_f(0.0001), "0.0001");
        assert_eq!(ruby_f(0.00001), "1.0e-05");
        assert_eq!(ruby_f(1e100), "1.0e+100");
        assert_eq!(ruby_f(-1.25e-300), "-1.25e-300");
        assert_eq!(ruby_f(f64::INFINITY), "Infinity");
        assert_eq!(ruby_f(123.456), "123.456");
    }

    /// Byte-at-a-time reference for the word-skipping string writer.
    fn reference_str(s: &[u8]) -> Vec<u8> {
        let mut out = vec![b'"'];
        for &b in s {
            match ESCAPE[b as usize] {
                0 => out.push(b),
                b'u' => out.extend_from_slice(format!("\\u{:04x}", b).as_bytes()),
                e => out.extend_from_slice(&[b'\\', e]),
            }
        }
        out.push(b'"');
        out
    }

    proptest::proptest! {
        #[test]
        fn string_escaping_matches_reference(s in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let mut out = Vec::new();
            write_str(&mut out, &s);
            proptest::prop_assert_eq!(out, reference_str(&s));
        }

        #[test]
        fn mostly_plain_strings_match_reference(s in "[a-z0-9 /é\"\\\\\n\t\x01\x1f]{0,80}") {
            let mut out = Vec::new();
            write_str(&mut out, s.as_bytes());
            proptest::prop_assert_eq!(out, reference_str(s.as_bytes()));
        }

        #[test]
        fn ruby_float_round_trips(f in proptest::prelude::any::<f64>()) {
            let mut out = Vec::new();
            write_ruby_float(&mut out, f);
            let text = String::from_utf8(out).unwrap();
            if f.is_finite() {
                let back: f64 = text.parse().unwrap();
                proptest::prop_assert_eq!(back.to_bits(), f.to_bits(), "{}", text);
                proptest::prop_assert!(text.contains('.'), "{}", text);
            }
        }
    }

    #[test]
    fn nested_event_time_is_its_seconds() {
        let v = Value::Ext(0, vec![0x65, 0x53, 0xf1, 0x00, 0, 0, 0, 5]);
        assert_eq!(s(&v), "1700000000");
    }
}
