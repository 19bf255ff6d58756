//! A JSON decoder straight into `Value`/`Record`, behaving like the Oj parser Fluentd uses
//! (`mode: :compat`, `bigdecimal_load: :float`):
//!
//! * bytes inside strings are kept as they are, so invalid UTF-8 passes through;
//! * `\uXXXX` escapes (surrogate pairs joined; a lone surrogate is encoded as its 3 bytes);
//! * a duplicated key keeps its first position and takes the last value (Ruby Hash);
//! * integers beyond i64 become `UInt` (up to u64) or `BigInt` (decimal digits);
//! * floats that overflow become infinity (`1e400`), `-0.0` reads as `0.0` as Oj does;
//! * `NaN`, `Infinity` and `-Infinity` literals are accepted.
//!
//! Strings are scanned with `memchr` and copied slice by slice.

use crate::event::{Record, Value};

/// Nesting deeper than this is rejected instead of risking the stack.
const MAX_DEPTH: usize = 512;

/// Parses a JSON object into a `Record`.
pub fn parse_record(input: &[u8]) -> Result<Record, String> {
    match parse_value(input)? {
        Value::Map(m) => Ok(m),
        _ => Err("JSON is not an object".to_string()),
    }
}

/// Parses any JSON document. Leading and trailing whitespace is allowed; anything else after
/// the value is an error.
pub fn parse_value(input: &[u8]) -> Result<Value, String> {
    let mut p = Decoder { buf: input, pos: 0 };
    p.skip_ws();
    if p.pos >= p.buf.len() {
        return Err("empty input".to_string());
    }
    let v = p.value(0)?;
    p.skip_ws();
    if p.pos < p.buf.len() {
        return Err(p.error("unexpected character after the value"));
    }
    Ok(v)
}

struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn error(&self, what: &str) -> String {
        format!("{what} (at byte {})", self.pos)
    }

    #[inline]
    fn skip_ws(&mut self) {
        while let Some(&c) = self.buf.get(self.pos) {
            if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        match self.peek() {
            Some(b'{') => {
                self.pos += 1;
                self.object(depth).map(Value::Map)
            }
            Some(b'[') => {
                self.pos += 1;
                self.array(depth)
            }
            Some(b'"') => {
                self.pos += 1;
                self.string().map(Value::Str)
            }
            Some(b't') => self.literal(b"true", Value::Bool(true)),
            Some(b'f') => self.literal(b"false", Value::Bool(false)),
            Some(b'n') => self.literal(b"null", Value::Nil),
            Some(b'N') => self.literal(b"NaN", Value::Float(f64::NAN)),
            Some(b'I') => self.literal(b"Infinity", Value::Float(f64::INFINITY)),
            Some(b'-') if self.buf[self.pos + 1..].starts_with(b"Infinity") => {
                self.pos += 1;
                self.literal(b"Infinity", Value::Float(f64::NEG_INFINITY))
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("unexpected character")),
            None => Err(self.error("unexpected end of input")),
        }
    }

    fn literal(&mut self, word: &[u8], v: Value) -> Result<Value, String> {
        if self.buf[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(v)
        } else {
            Err(self.error("invalid literal"))
        }
    }

    fn object(&mut self, depth: usize) -> Result<Record, String> {
        let mut rec = Record::with_capacity(8);
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(rec);
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a string key"));
            }
            self.pos += 1;
            let key = self.string()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.error("expected ':'"));
            }
            self.pos += 1;
            self.skip_ws();
            let v = self.value(depth + 1)?;
            if rec.contains_key(&key) {
                rec.insert(key, v);
            } else {
                rec.push_unchecked(key, v);
            }
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(rec);
                }
                _ => return Err(self.error("expected ',' or '}'")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, String> {
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth + 1)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.error("expected ',' or ']'")),
            }
        }
    }

    /// A string body; the opening quote is consumed already.
    fn string(&mut self) -> Result<Vec<u8>, String> {
        let rest = &self.buf[self.pos..];
        // Fast path: no escapes before the closing quote.
        match memchr::memchr2(b'"', b'\\', rest) {
            Some(i) if rest[i] == b'"' => {
                self.pos += i + 1;
                return Ok(rest[..i].to_vec());
            }
            Some(_) => {}
            None => return Err(self.error("unterminated string")),
        }
        let mut out = Vec::with_capacity(rest.len().min(64));
        loop {
            let rest = &self.buf[self.pos..];
            let i = match memchr::memchr2(b'"', b'\\', rest) {
                Some(i) => i,
                None => return Err(self.error("unterminated string")),
            };
            out.extend_from_slice(&rest[..i]);
            self.pos += i + 1;
            if rest[i] == b'"' {
                return Ok(out);
            }
            let esc = match self.peek() {
                Some(c) => c,
                None => return Err(self.error("unterminated string")),
            };
            self.pos += 1;
            match esc {
                b'"' => out.push(b'"'),
                b'\\' => out.push(b'\\'),
                b'/' => out.push(b'/'),
                b'b' => out.push(0x08),
                b'f' => out.push(0x0c),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'u' => {
                    let cp = self.hex4()?;
                    let cp = if (0xD800..0xDC00).contains(&cp)
                        && self.buf[self.pos..].starts_with(b"\\u")
                    {
                        let save = self.pos;
                        self.pos += 2;
                        let lo = self.hex4()?;
                        if (0xDC00..0xE000).contains(&lo) {
                            0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                        } else {
                            self.pos = save;
                            cp
                        }
                    } else {
                        cp
                    };
                    push_code_point(&mut out, cp);
                }
                _ => return Err(self.error("invalid escape")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self
            .buf
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.error("truncated \\u escape"))?;
        let mut v = 0u32;
        for &c in h {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return Err(self.error("invalid \\u escape")),
            };
            v = (v << 4) | d as u32;
        }
        self.pos += 4;
        Ok(v)
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.pos;
        let b = self.buf;
        let mut i = self.pos;
        let neg = b[i] == b'-';
        if neg {
            i += 1;
        }
        let int_start = i;
        let mut acc: u64 = 0;
        let mut overflow = false;
        while let Some(&c) = b.get(i) {
            if !c.is_ascii_digit() {
                break;
            }
            match acc
                .checked_mul(10)
                .and_then(|a| a.checked_add((c - b'0') as u64))
            {
                Some(a) => acc = a,
                None => overflow = true,
            }
            i += 1;
        }
        if i == int_start {
            self.pos = i;
            return Err(self.error("invalid number"));
        }
        let mut is_float = false;
        if b.get(i) == Some(&b'.') {
            let f = i + 1;
            i = f;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == f {
                self.pos = i;
                return Err(self.error("invalid number"));
            }
            is_float = true;
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let e = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == e {
                self.pos = i;
                return Err(self.error("invalid number"));
            }
            is_float = true;
        }
        self.pos = i;
        if is_float {
            // The slice is ASCII by construction.
            let s = std::str::from_utf8(&b[start..i]).map_err(|_| self.error("invalid number"))?;
            let f: f64 = s.parse().map_err(|_| self.error("invalid number"))?;
            // Oj builds zero from an integer mantissa, so -0.0 reads as 0.0.
            return Ok(Value::Float(if f == 0.0 { 0.0 } else { f }));
        }
        if !overflow {
            if !neg {
                return Ok(if acc <= i64::MAX as u64 {
                    Value::Int(acc as i64)
                } else {
                    Value::UInt(acc)
                });
            }
            if acc <= i64::MAX as u64 {
                return Ok(Value::Int(-(acc as i64)));
            }
            if acc == i64::MAX as u64 + 1 {
                return Ok(Value::Int(i64::MIN));
            }
        }
        // Beyond 64 bits: keep the digits (without leading zeros), as a Ruby Bignum prints.
        let digits = &b[int_start..i];
        let nz = digits
            .iter()
            .position(|&c| c != b'0')
            .unwrap_or(digits.len() - 1);
        let mut s = String::with_capacity(digits.len() + 1);
        if neg {
            s.push('-');
        }
        s.extend(digits[nz..].iter().map(|&c| c as char));
        Ok(Value::BigInt(s))
    }
}

fn push_code_point(out: &mut Vec<u8>, cp: u32) {
    match char::from_u32(cp) {
        Some(c) => {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
        None => {
            // A lone surrogate: its generalized UTF-8 form, as Oj writes it.
            out.push(0xE0 | (cp >> 12) as u8);
            out.push(0x80 | ((cp >> 6) & 0x3F) as u8);
            out.push(0x80 | (cp & 0x3F) as u8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(s: &str) -> Record {
        parse_record(s.as_bytes()).unwrap()
    }

    #[test]
    fn numbers_as_in_case_079() {
        let r = rec(
            r#"{"one":1.0,"tenth":0.1,"negz":-0.0,"big":1e20,"small":1.5e-7,"u64":18446744073709551616,"i64":-9223372036854775808,"huge":1e400,"int":42}"#,
        );
        assert_eq!(r.get("one"), Some(&Value::Float(1.0)));
        assert_eq!(r.get("tenth"), Some(&Value::Float(0.1)));
        match r.get("negz") {
            Some(Value::Float(f)) => assert!(*f == 0.0 && f.is_sign_positive()),
            other => panic!("{other:?}"),
        }
        assert_eq!(r.get("big"), Some(&Value::Float(1e20)));
        assert_eq!(r.get("small"), Some(&Value::Float(1.5e-7)));
        assert_eq!(
            r.get("u64"),
            Some(&Value::BigInt("18446744073709551616".into()))
        );
        assert_eq!(r.get("i64"), Some(&Value::Int(i64::MIN)));
        assert_eq!(r.get("huge"), Some(&Value::Float(f64::INFINITY)));
        assert_eq!(r.get("int"), Some(&Value::Int(42)));
        let r = rec(r#"{"a":18446744073709551615,"b":-9223372036854775809,"c":-5}"#);
        assert_eq!(r.get("a"), Some(&Value::UInt(u64::MAX)));
        assert_eq!(
            r.get("b"),
            Some(&Value::BigInt("-9223372036854775809".into()))
        );
        assert_eq!(r.get("c"), Some(&Value::Int(-5)));
    }

    #[test]
    fn duplicate_keys_keep_first_position_last_value() {
        let r = rec(r#"{"a":1,"b":2,"a":3}"#);
        let keys: Vec<&[u8]> = r.keys().collect();
        assert_eq!(keys, vec![&b"a"[..], &b"b"[..]]);
        assert_eq!(r.get("a"), Some(&Value::Int(3)));
    }

    #[test]
    fn invalid_utf8_is_kept_raw() {
        let r = parse_record(b"{\"s\":\"x\xffy\"}").unwrap();
        assert_eq!(r.get("s"), Some(&Value::Str(b"x\xffy".to_vec())));
    }

    #[test]
    fn escapes_and_surrogates() {
        let r = rec(r#"{"e":"a\"b\\c\/d\n\t\u00e9\ud83d\ude00\u0041","lone":"\ud800x"}"#);
        assert_eq!(r.get("e"), Some(&Value::str("a\"b\\c/d\n\té😀A")));
        assert_eq!(r.get("lone"), Some(&Value::Str(b"\xed\xa0\x80x".to_vec())));
        assert!(parse_value(br#""\q""#).is_err());
        assert!(parse_value(br#""\u12""#).is_err());
    }

    #[test]
    fn nested_and_whitespace() {
        let r = rec(" \t{ \"a\" : [1, {\"b\": null}, true, false, \"x\"] , \"c\":{} }\r\n");
        assert_eq!(
            r.get("a"),
            Some(&Value::Array(vec![
                Value::Int(1),
                Value::Map({
                    let mut m = Record::new();
                    m.insert("b", Value::Nil);
                    m
                }),
                Value::Bool(true),
                Value::Bool(false),
                Value::str("x"),
            ]))
        );
        assert_eq!(r.get("c"), Some(&Value::Map(Record::new())));
    }

    #[test]
    fn nan_and_infinity_literals() {
        let r = rec(r#"{"a":NaN,"b":Infinity,"c":-Infinity}"#);
        assert!(matches!(r.get("a"), Some(Value::Float(f)) if f.is_nan()));
        assert_eq!(r.get("b"), Some(&Value::Float(f64::INFINITY)));
        assert_eq!(r.get("c"), Some(&Value::Float(f64::NEG_INFINITY)));
    }

    #[test]
    fn errors() {
        for bad in [
            "",
            "   ",
            "not json",
            "{",
            "{\"a\":}",
            "{\"a\" 1}",
            "{a:1}",
            "[1,2",
            "{\"a\":1} x",
            "{\"a\":1,}",
            "-",
            "1.",
            "1e",
            "\"abc",
            "tru",
            "{\"a\":01x}",
        ] {
            assert!(parse_value(bad.as_bytes()).is_err(), "{bad:?} should fail");
        }
        assert!(parse_record(b"[1,2]").is_err());
        assert!(parse_record(b"\"str\"").is_err());
        let deep = "[".repeat(100_000);
        assert!(parse_value(deep.as_bytes()).is_err());
    }

    /// Throughput on ~260-byte lines: `cargo test --release --lib json_decode_throughput -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn json_decode_throughput() {
        let line = br#"{"time":"2024-02-21T10:31:27.810781647Z","level":"info","host":"web-01.example.com","method":"GET","path":"/api/v1/users/12345/profile","status":200,"bytes":5120,"latency_ms":12.5,"agent":"Mozilla/5.0 (X11; Linux x86_64)","msg":"request \"ok\""}"#;
        let n = 400_000;
        let start = std::time::Instant::now();
        let mut keys = 0usize;
        for _ in 0..n {
            keys += parse_record(std::hint::black_box(line))
                .map(|r| r.len())
                .unwrap_or(0);
        }
        let secs = start.elapsed().as_secs_f64();
        let mb = (line.len() * n) as f64 / 1e6;
        println!(
            "json decode: {} bytes/line, {:.0} MB/s, {:.0} ns/line ({keys} keys)",
            line.len(),
            mb / secs,
            secs * 1e9 / n as f64
        );
    }
}
