//! `@type logfmt` (parser), as fluent-plugin-parser-logfmt with the `logfmt` gem's state
//! machine: `key=value`, `key="quoted \"value\""`, a bare `key` (or `key=` followed by a
//! space) is `true`, unquoted values that look like integers or floats become numbers. The
//! `time` key is the event time by default.

use super::parser::{Defaults, ParserCommon};
use super::{Parser, ParserError, PluginContext};
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventTime, Record, Value};

crate::parser_config! {
    pub struct LogfmtParserConf {}
}

pub struct LogfmtParser {
    common: ParserCommon,
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Parser>, ConfigError> {
    let conf: LogfmtParserConf = ctx.configure(elem, "logfmt")?;
    let common = ParserCommon::build(&conf.common(), Defaults::TIME_KEY, elem)?;
    Ok(Box::new(LogfmtParser { common }))
}

fn is_integer(s: &[u8]) -> bool {
    let d = match s.first() {
        Some(b'-' | b'+') => &s[1..],
        _ => s,
    };
    !d.is_empty() && d.iter().all(u8::is_ascii_digit)
}

/// `\A[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?\Z`
fn is_numeric(s: &[u8]) -> bool {
    let mut i = 0;
    if matches!(s.first(), Some(b'-' | b'+')) {
        i = 1;
    }
    let a = i;
    while s.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let int_digits = i - a;
    if s.get(i) == Some(&b'.') {
        i += 1;
        let f = i;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == f {
            return false;
        }
    } else if int_digits == 0 {
        return false;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        let e = i;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == e {
            return false;
        }
    }
    i == s.len()
}

/// The gem's conversion of an unquoted value.
fn typed_text(s: &[u8]) -> Value {
    if is_integer(s) {
        // ASCII digits with an optional sign: valid UTF-8.
        let t = std::str::from_utf8(s).unwrap_or("0");
        let t = t.strip_prefix('+').unwrap_or(t);
        match t.parse::<i64>() {
            Ok(i) => Value::Int(i),
            Err(_) => match t.parse::<u64>() {
                Ok(u) => Value::UInt(u),
                Err(_) => {
                    let (neg, digits) = match t.strip_prefix('-') {
                        Some(d) => (true, d),
                        None => (false, t),
                    };
                    let digits = digits.trim_start_matches('0');
                    let digits = if digits.is_empty() { "0" } else { digits };
                    Value::BigInt(if neg && digits != "0" {
                        format!("-{digits}")
                    } else {
                        digits.to_string()
                    })
                }
            },
        }
    } else if is_numeric(s) {
        let f = std::str::from_utf8(s)
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            .unwrap_or(0.0);
        if f.is_finite() {
            Value::Float(f)
        } else {
            Value::Str(s.to_vec())
        }
    } else {
        Value::Str(s.to_vec())
    }
}

/// Length of the character starting at `i` (an invalid byte counts as one character).
fn char_len(s: &[u8], i: usize) -> usize {
    let n = match s[i] {
        0x00..=0x7f => return 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => 1,
    };
    if i + n <= s.len() && std::str::from_utf8(&s[i..i + n]).is_ok() {
        n
    } else {
        1
    }
}

/// A byte that may continue a key (`c > " " && c != '"' && c != '='`). The gem compares
/// characters, but every byte of a multi-byte character is above space, so runs of bytes
/// give the same result.
fn key_byte(b: u8) -> bool {
    b > b' ' && b != b'"' && b != b'='
}

/// The gem's `value` variable: it outlives its key, and `key=` at the very end of a line
/// takes whatever it holds.
enum Leftover {
    /// The text in the scratch buffer (an unquoted value not yet converted, or a quoted one).
    Text,
    Done(Value),
}

/// Sets `key` (keeping the position of an existing one); returns its index.
fn set(out: &mut Record, key: &[u8], v: Value) -> usize {
    let found = out.keys().position(|k| k == key);
    match found {
        Some(i) => {
            set_at(out, i, v);
            i
        }
        None => {
            out.push_unchecked(key.to_vec(), v);
            out.len() - 1
        }
    }
}

fn set_at(out: &mut Record, i: usize, v: Value) {
    if let Some((_, slot)) = out.iter_mut().nth(i) {
        *slot = v;
    }
}

/// The gem's state machine over runs of bytes instead of single characters.
pub fn parse_logfmt(line: &[u8]) -> Record {
    #[derive(PartialEq)]
    enum State {
        Garbage,
        Equal,
        QValue,
    }
    let n = line.len();
    let mut out = Record::with_capacity(16);
    // The current key's index in `out`.
    let mut key = 0usize;
    let mut vbuf: Vec<u8> = Vec::new();
    let mut left = Leftover::Text;
    let mut escaped = false;
    let mut state = State::Garbage;
    let mut i = 0;
    let leftover = |left: &Leftover, vbuf: &[u8]| match left {
        Leftover::Done(v) => v.clone(),
        Leftover::Text => typed_text(vbuf),
    };
    while i < n {
        match state {
            State::Garbage => {
                if !key_byte(line[i]) {
                    i += 1;
                    continue;
                }
                let start = i;
                let mut j = i + 1;
                while j < n && key_byte(line[j]) {
                    j += 1;
                }
                let k = &line[start..j];
                if j == n {
                    // The first character is taken in the garbage state, which never looks at
                    // the end of the line: a one-character key at the very end is dropped.
                    if start + char_len(line, start) < n {
                        set(&mut out, k, Value::Bool(true));
                    }
                    i = n;
                } else {
                    key = set(&mut out, k, Value::Bool(true));
                    if line[j] == b'=' {
                        state = State::Equal;
                    }
                    i = j + 1;
                }
            }
            State::Equal => {
                let c = line[i];
                if key_byte(c) {
                    // An unquoted value runs to a space or a quote (`=` is allowed inside).
                    let mut j = i + 1;
                    while j < n && line[j] > b' ' && line[j] != b'"' {
                        j += 1;
                    }
                    vbuf.clear();
                    vbuf.extend_from_slice(&line[i..j]);
                    let v = typed_text(&vbuf);
                    if j < n {
                        left = Leftover::Done(v.clone());
                    }
                    set_at(&mut out, key, v);
                    state = State::Garbage;
                    i = if j < n { j + 1 } else { n };
                } else if c == b'"' {
                    vbuf.clear();
                    left = Leftover::Text;
                    escaped = false;
                    state = State::QValue;
                    i += 1;
                    if i == n {
                        set_at(&mut out, key, Value::Str(Vec::new()));
                    }
                } else {
                    state = State::Garbage;
                    i += 1;
                    if i == n {
                        let v = leftover(&left, &vbuf);
                        set_at(&mut out, key, v);
                    }
                }
            }
            State::QValue => {
                let Some(off) = memchr::memchr2(b'"', b'\\', &line[i..]) else {
                    if i < n {
                        escaped = false;
                    }
                    vbuf.extend_from_slice(&line[i..]);
                    i = n;
                    continue;
                };
                if off > 0 {
                    escaped = false;
                    vbuf.extend_from_slice(&line[i..i + off]);
                }
                let p = i + off;
                if line[p] == b'\\' {
                    escaped = true;
                    vbuf.push(b'\\');
                } else if escaped {
                    escaped = false;
                    vbuf.pop();
                    vbuf.push(b'"');
                } else {
                    set_at(&mut out, key, Value::Str(vbuf.clone()));
                    left = Leftover::Text;
                    state = State::Garbage;
                }
                i = p + 1;
            }
        }
    }
    out
}

impl Parser for LogfmtParser {
    fn parse(
        &self,
        text: &[u8],
        emit: &mut dyn FnMut(Option<EventTime>, Record),
    ) -> Result<(), ParserError> {
        let (t, r) = self.common.finish(parse_logfmt(text))?;
        emit(t, r);
        Ok(())
    }
}

#[cfg(test)]
mod reference {
    //! The gem's character-at-a-time state machine, kept to check the fast scanner against.
    use super::{is_integer, is_numeric};
    use crate::event::{Record, Value};

    #[derive(PartialEq)]
    enum State {
        Garbage,
        Key,
        Equal,
        IValue,
        QValue,
    }

    #[derive(Clone)]
    enum Val {
        Text(Vec<u8>),
        Done(Value),
    }

    /// The gem's conversion of an unquoted value.
    fn typed(v: &Val) -> Value {
        match v {
            Val::Done(x) => x.clone(),
            Val::Text(s) => {
                if is_integer(s) {
                    let t = String::from_utf8_lossy(s);
                    let t = t.strip_prefix('+').unwrap_or(&t);
                    match t.parse::<i64>() {
                        Ok(i) => Value::Int(i),
                        Err(_) => match t.parse::<u64>() {
                            Ok(u) => Value::UInt(u),
                            Err(_) => {
                                let (neg, digits) = match t.strip_prefix('-') {
                                    Some(d) => (true, d),
                                    None => (false, t),
                                };
                                let digits = digits.trim_start_matches('0');
                                let digits = if digits.is_empty() { "0" } else { digits };
                                Value::BigInt(if neg && digits != "0" {
                                    format!("-{digits}")
                                } else {
                                    digits.to_string()
                                })
                            }
                        },
                    }
                } else if is_numeric(s) {
                    let f = String::from_utf8_lossy(s).parse::<f64>().unwrap_or(0.0);
                    if f.is_finite() {
                        Value::Float(f)
                    } else {
                        Value::Str(s.clone())
                    }
                } else {
                    Value::Str(s.clone())
                }
            }
        }
    }

    /// Length of the character starting at `i` (an invalid byte counts as one character).
    fn char_len_ref(s: &[u8], i: usize) -> usize {
        let n = match s[i] {
            0x00..=0x7f => 1,
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => 1,
        };
        if i + n <= s.len() && std::str::from_utf8(&s[i..i + n]).is_ok() {
            n
        } else {
            1
        }
    }

    /// `c > " "` of the gem (Ruby string comparison: any byte above space, multibyte included).
    fn above_space(c: &[u8]) -> bool {
        c[0] > b' '
    }

    pub fn reference(line: &[u8]) -> Record {
        let mut out = Record::with_capacity(8);
        let mut key: Vec<u8> = Vec::new();
        let mut value = Val::Text(Vec::new());
        let mut escaped = false;
        let mut state = State::Garbage;
        let mut i = 0;
        while i < line.len() {
            let n = char_len_ref(line, i);
            let c = &line[i..i + n];
            i += n;
            let last = i >= line.len();
            match state {
                State::Garbage => {
                    if above_space(c) && c != b"\"" && c != b"=" {
                        key = c.to_vec();
                        state = State::Key;
                    }
                }
                State::Key => {
                    if above_space(c) && c != b"\"" && c != b"=" {
                        key.extend_from_slice(c);
                    } else if c == b"=" {
                        out.insert(key.clone(), Value::Bool(true));
                        state = State::Equal;
                    } else {
                        out.insert(key.clone(), Value::Bool(true));
                        state = State::Garbage;
                    }
                    if last {
                        out.insert(key.clone(), Value::Bool(true));
                    }
                }
                State::Equal => {
                    if above_space(c) && c != b"\"" && c != b"=" {
                        value = Val::Text(c.to_vec());
                        state = State::IValue;
                    } else if c == b"\"" {
                        value = Val::Text(Vec::new());
                        escaped = false;
                        state = State::QValue;
                    } else {
                        state = State::Garbage;
                    }
                    if last {
                        // `value || true`: the gem's value here may be left over from an earlier key.
                        out.insert(key.clone(), typed(&value));
                    }
                }
                State::IValue => {
                    if !(above_space(c) && c != b"\"") {
                        let v = typed(&value);
                        value = Val::Done(v.clone());
                        out.insert(key.clone(), v);
                        state = State::Garbage;
                    } else if let Val::Text(t) = &mut value {
                        t.extend_from_slice(c);
                    }
                    if last {
                        let v = typed(&value);
                        value = Val::Done(v.clone());
                        out.insert(key.clone(), v);
                    }
                }
                State::QValue => {
                    if let Val::Text(t) = &mut value {
                        if c == b"\\" {
                            escaped = true;
                            t.push(b'\\');
                        } else if c == b"\"" {
                            if escaped {
                                escaped = false;
                                t.pop();
                                t.push(b'"');
                            } else {
                                out.insert(key.clone(), Value::Str(t.clone()));
                                state = State::Garbage;
                            }
                        } else {
                            escaped = false;
                            t.extend_from_slice(c);
                        }
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::parser::test_support::*;
    use super::parse_logfmt;

    #[test]
    fn case_148() {
        let p = parser("@type logfmt");
        let out = parse_all(&*p, r#"time="2024-02-21T10:31:27.810781647Z" level=info msg="VM started" pid=1234 ratio=0.5 flag"#).unwrap();
        assert_eq!(out[0].0, Some(utc(2024, 2, 21, 10, 31, 27, 810_781_647)));
        assert_eq!(
            json(&out[0].1),
            r#"{"level":"info","msg":"VM started","pid":1234,"ratio":0.5,"flag":true}"#
        );
        let out = parse_all(&*p, r#"level=debug msg="a \"quoted\" word" empty= n=-3"#).unwrap();
        assert_eq!(
            json(&out[0].1),
            r#"{"level":"debug","msg":"a \"quoted\" word","empty":true,"n":-3}"#
        );
    }

    #[test]
    fn kata_lines_case_169() {
        let p = parser("@type logfmt");
        let out = parse_all(&*p, r#"time="2024-02-21T10:31:28.000000001Z" level=warning msg="agent \"slow\" to answer" name=kata-agent source=agent count=3"#).unwrap();
        assert_eq!(out[0].0, Some(utc(2024, 2, 21, 10, 31, 28, 1)));
        assert_eq!(
            json(&out[0].1),
            r#"{"level":"warning","msg":"agent \"slow\" to answer","name":"kata-agent","source":"agent","count":3}"#
        );
        let out = parse_all(&*p, r#"level=debug msg="no time field" source=shim debug"#).unwrap();
        assert!(out[0].0.is_some());
        assert_eq!(
            json(&out[0].1),
            r#"{"level":"debug","msg":"no time field","source":"shim","debug":true}"#
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(3000)
        ))]
        /// The run-based scanner gives exactly what the gem's state machine gives.
        #[test]
        fn scanner_matches_the_gems_state_machine(parts in proptest::collection::vec(
            proptest::sample::select(&[
                "a", "key", "=", "\"", "\\", " ", "\t", "1", "-2", "+3", "1.5", ".5", "1e3", "x",
                "é", "\u{1F600}", "\u{0}", "99999999999999999999999", "\n",
            ][..]),
            0..24,
        ), raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3)) {
            let mut line = parts.concat().into_bytes();
            line.extend_from_slice(&raw);
            proptest::prop_assert_eq!(
                json(&parse_logfmt(&line)),
                json(&super::reference::reference(&line))
            );
        }
    }

    #[test]
    fn gem_quirks() {
        // A quoted value left open: the key stays true.
        assert_eq!(json(&parse_logfmt(br#"a="open"#)), r#"{"a":true}"#);
        // `key= ` at the very end takes the previous value (the gem's leftover variable).
        assert_eq!(json(&parse_logfmt(b"a=1 b= ")), r#"{"a":1,"b":1}"#);
        assert_eq!(
            json(&parse_logfmt(
                b"x=1.5e3 y=.5 z=1. w=+7 big=123456789012345678901234"
            )),
            r#"{"x":1500.0,"y":0.5,"z":"1.","w":7,"big":"123456789012345678901234"}"#
        );
        assert_eq!(
            json(&parse_logfmt(r#"k="a\nb" é=ü"#.as_bytes())),
            r#"{"k":"a\\nb","é":"ü"}"#
        );
        assert_eq!(json(&parse_logfmt(b"a=b\"c")), r#"{"a":"b"}"#);
    }
}
