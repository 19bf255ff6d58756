//! Fluentd's parameter types (`config/types.rb`), quirks included: size and time suffixes are
//! found anywhere in the value (`1.5k` is 5 KiB), integers are lenient (`"10abc"` is 10) unless
//! strict, an empty bool is true and an unknown bool word is nil.
//!
//! Plugin config structs use the newtypes here ([`Size`], [`Time`], [`Regexp`]) for the Fluentd
//! types that Rust types cannot express; plain `i64`/`f64`/`bool`/`String`/`Vec`/maps/enums map
//! to integer/float/bool/string/array/hash/enum.

use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// Ruby's `String#to_i`: optional spaces and sign, digits (underscores between digits allowed);
/// anything unparsable is 0.
pub fn ruby_to_i(s: &str) -> i64 {
    let t = s.trim_start();
    let (neg, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut v: i64 = 0;
    let mut prev_digit = false;
    for c in rest.chars() {
        match c {
            '0'..='9' => {
                v = v.saturating_mul(10).saturating_add((c as u8 - b'0') as i64);
                prev_digit = true;
            }
            '_' if prev_digit => prev_digit = false,
            _ => break,
        }
    }
    if neg {
        -v
    } else {
        v
    }
}

/// Ruby's `String#to_f`: the longest numeric prefix, else 0.0.
pub fn ruby_to_f(s: &str) -> f64 {
    let t = s.trim_start();
    let b = t.as_bytes();
    let mut end = 0;
    if end < b.len() && (b[end] == b'-' || b[end] == b'+') {
        end += 1;
    }
    let digits_start = end;
    while end < b.len() && (b[end].is_ascii_digit() || (b[end] == b'_' && end > digits_start)) {
        end += 1;
    }
    if end == digits_start {
        return 0.0;
    }
    if end + 1 < b.len() && b[end] == b'.' && b[end + 1].is_ascii_digit() {
        end += 1;
        while end < b.len() && (b[end].is_ascii_digit() || b[end] == b'_') {
            end += 1;
        }
    }
    if end < b.len() && (b[end] == b'e' || b[end] == b'E') {
        let mut e = end + 1;
        if e < b.len() && (b[e] == b'-' || b[e] == b'+') {
            e += 1;
        }
        if e < b.len() && b[e].is_ascii_digit() {
            while e < b.len() && b[e].is_ascii_digit() {
                e += 1;
            }
            end = e;
        }
    }
    t[..end].replace('_', "").parse().unwrap_or(0.0)
}

fn strict_integer(s: &str) -> Result<i64, String> {
    let t = s.trim().replace('_', "");
    let parsed = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()
    } else {
        t.parse::<i64>().ok()
    };
    parsed.ok_or_else(|| format!("invalid value for Integer(): {s:?}"))
}

pub fn integer(s: &str, strict: bool) -> Result<i64, String> {
    if strict {
        strict_integer(s)
    } else {
        Ok(ruby_to_i(s))
    }
}

pub fn float(s: &str, strict: bool) -> Result<f64, String> {
    if strict {
        s.trim()
            .replace('_', "")
            .parse::<f64>()
            .map_err(|_| format!("invalid value for Float(): {s:?}"))
    } else {
        Ok(ruby_to_f(s))
    }
}

/// The first `<digits><suffix>` anywhere in `s` (case-insensitive for sizes).
fn digits_before(s: &str, suffix: char, ignore_case: bool) -> Option<i64> {
    let b = s.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        let hit = if ignore_case {
            (c as char).eq_ignore_ascii_case(&suffix)
        } else {
            c as char == suffix
        };
        if hit && i > 0 && b[i - 1].is_ascii_digit() {
            let mut start = i - 1;
            while start > 0 && b[start - 1].is_ascii_digit() {
                start -= 1;
            }
            return Some(ruby_to_i(&s[start..i]));
        }
    }
    None
}

pub fn size(s: &str, strict: bool) -> Result<i64, String> {
    for (i, suffix) in ['k', 'm', 'g', 't'].into_iter().enumerate() {
        if let Some(n) = digits_before(s, suffix, true) {
            return Ok(n.saturating_mul(1024i64.pow(i as u32 + 1)));
        }
    }
    integer(s, strict)
}

/// A time value in seconds.
pub fn time(s: &str, strict: bool) -> Result<f64, String> {
    for (suffix, mul) in [('s', 1.0), ('m', 60.0), ('h', 3600.0), ('d', 86400.0)] {
        if let Some(n) = digits_before(s, suffix, false) {
            return Ok(n as f64 * mul);
        }
    }
    float(s, strict)
}

/// `None` is Ruby's nil: an unknown word when not strict.
pub fn bool(s: &str, strict: bool) -> Result<Option<bool>, String> {
    match s {
        "true" | "yes" | "" => Ok(Some(true)),
        "false" | "no" => Ok(Some(false)),
        _ if s.starts_with('#') => Ok(Some(true)),
        _ if strict => Err(format!("invalid bool value: {s}")),
        _ => Ok(None),
    }
}

/// The array type: a JSON array, or a comma-separated list.
pub fn array(s: &str) -> Result<Vec<String>, String> {
    let t = s.trim();
    if t.starts_with('[') {
        let v: serde_json::Value = serde_json::from_str(t)
            .map_err(|e| format!("got incomplete JSON array configuration: {e}"))?;
        match v {
            serde_json::Value::Array(items) => {
                Ok(items.into_iter().map(json_to_param_string).collect())
            }
            _ => Err("array required".to_string()),
        }
    } else if t.is_empty() {
        Ok(Vec::new())
    } else {
        Ok(t.split(',').map(|p| p.trim().to_string()).collect())
    }
}

/// The hash type: a JSON object, or `k1:v1,k2:v2`.
pub fn hash(s: &str) -> Result<Vec<(String, String)>, String> {
    let t = s.trim();
    if t.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(t)
            .map_err(|e| format!("got incomplete JSON hash configuration: {e}"))?;
        match v {
            serde_json::Value::Object(m) => Ok(m
                .into_iter()
                .map(|(k, v)| (k, json_to_param_string(v)))
                .collect()),
            _ => Err("hash required".to_string()),
        }
    } else if t.is_empty() {
        Ok(Vec::new())
    } else {
        Ok(t.split(',')
            .map(|pair| {
                let pair = pair.trim();
                match pair.split_once(':') {
                    Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
                    None => (pair.to_string(), String::new()),
                }
            })
            .collect())
    }
}

/// JSON elements become strings the way the typed conversion sees them.
pub fn json_to_param_string(v: serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

/// Splits a regexp parameter: `/pattern/flags` (flags `i`, `m`, `x`) or a bare pattern.
pub fn regexp_source(s: &str) -> Result<(String, String), String> {
    if let Some(rest) = s.strip_prefix('/') {
        if let Some(end) = rest.rfind('/') {
            let flags = &rest[end + 1..];
            if flags.len() <= 3 && flags.chars().all(|c| matches!(c, 'i' | 'm' | 'x')) {
                return Ok((rest[..end].to_string(), flags.to_string()));
            }
        }
        return Err(format!("invalid regexp: missing right slash: {s}"));
    }
    Ok((s.to_string(), String::new()))
}

/// Rewrites Ruby regex syntax for the `regex`/`fancy-regex` crates: Ruby's `^`/`$` are always
/// line anchors, `\h` is a hex digit, `\Z` allows a final newline, and `\w`, `\d`, `\s` are
/// ASCII-only in Ruby while they are Unicode-aware in Rust.
pub fn ruby_regex_to_rust(src: &str) -> String {
    let mut out = String::with_capacity(src.len() + 8);
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut in_class = 0usize;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() {
            let n = chars[i + 1];
            let repl: Option<&str> = match (n, in_class > 0) {
                ('h', false) => Some("[0-9a-fA-F]"),
                ('h', true) => Some("0-9a-fA-F"),
                ('H', false) => Some("[^0-9a-fA-F]"),
                ('w', false) => Some("[0-9A-Za-z_]"),
                ('w', true) => Some("0-9A-Za-z_"),
                ('W', false) => Some("[^0-9A-Za-z_]"),
                ('d', false) => Some("[0-9]"),
                ('d', true) => Some("0-9"),
                ('D', false) => Some("[^0-9]"),
                ('s', false) => Some(r"[\t\n\x0B\x0C\r ]"),
                ('s', true) => Some(r"\t\n\x0B\x0C\r "),
                ('S', false) => Some(r"[^\t\n\x0B\x0C\r ]"),
                ('Z', false) => Some(r"(?:\n?\z)"),
                _ => None,
            };
            match repl {
                Some(r) => out.push_str(r),
                None => {
                    out.push(c);
                    out.push(n);
                }
            }
            i += 2;
            continue;
        }
        match c {
            '[' => {
                in_class += 1;
                out.push(c);
                // A literal `]` right after `[` or `[^` belongs to the class.
                if i + 1 < chars.len() && chars[i + 1] == '^' {
                    out.push('^');
                    i += 1;
                }
                if i + 1 < chars.len() && chars[i + 1] == ']' {
                    out.push_str(r"\]");
                    i += 1;
                }
            }
            ']' if in_class > 0 => {
                in_class -= 1;
                out.push(c);
            }
            '(' if in_class == 0
                && src[char_offset(&chars, i)..].starts_with("(?<")
                && !src[char_offset(&chars, i)..].starts_with("(?<=")
                && !src[char_offset(&chars, i)..].starts_with("(?<!") =>
            {
                out.push_str("(?P<");
                i += 3;
                continue;
            }
            _ => out.push(c),
        }
        i += 1;
    }
    format!("(?m){out}")
}

fn char_offset(chars: &[char], i: usize) -> usize {
    chars[..i].iter().map(|c| c.len_utf8()).sum()
}

/// Builds the Rust regex source for a Ruby pattern and its flags.
pub fn ruby_regex_with_flags(pattern: &str, flags: &str) -> String {
    let mut prefix = String::new();
    if flags.contains('i') {
        prefix.push('i');
    }
    if flags.contains('m') {
        prefix.push('s');
    }
    if flags.contains('x') {
        prefix.push('x');
    }
    let body = ruby_regex_to_rust(pattern);
    if prefix.is_empty() {
        body
    } else {
        format!("(?{prefix}){body}")
    }
}

/// A compiled Ruby-syntax regex: the fast `regex` engine when the pattern allows, else
/// `fancy-regex` (lookbehind, backreferences). Matches bytes, so invalid UTF-8 input is fine.
#[derive(Clone)]
pub struct RubyRegex {
    source: Arc<str>,
    engine: RegexEngine,
}

#[derive(Clone)]
enum RegexEngine {
    Fast(regex::bytes::Regex),
    Fancy(fancy_regex::Regex),
}

/// Captures of one match: group name → bytes.
pub struct RubyCaptures<'t> {
    pub names: Vec<(String, Option<&'t [u8]>)>,
    pub groups: Vec<Option<&'t [u8]>>,
}

impl RubyRegex {
    pub fn new(pattern: &str, flags: &str) -> Result<RubyRegex, String> {
        let src = ruby_regex_with_flags(pattern, flags);
        let engine = match regex::bytes::RegexBuilder::new(&src)
            .unicode(true)
            .size_limit(64 << 20)
            .build()
        {
            Ok(r) => RegexEngine::Fast(r),
            Err(fast_err) => match fancy_regex::Regex::new(&src) {
                Ok(r) => RegexEngine::Fancy(r),
                Err(_) => return Err(format!("{fast_err}")),
            },
        };
        Ok(RubyRegex {
            source: pattern.into(),
            engine,
        })
    }

    /// From a config value: `/pattern/flags` or a bare pattern.
    pub fn from_param(value: &str) -> Result<RubyRegex, String> {
        let (p, f) = regexp_source(value)?;
        RubyRegex::new(&p, &f)
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn is_match(&self, text: &[u8]) -> bool {
        match &self.engine {
            RegexEngine::Fast(r) => r.is_match(text),
            RegexEngine::Fancy(r) => match std::str::from_utf8(text) {
                Ok(s) => r.is_match(s).unwrap_or(false),
                Err(_) => r.is_match(&String::from_utf8_lossy(text)).unwrap_or(false),
            },
        }
    }

    /// Group names in order (unnamed groups have no name).
    pub fn capture_names(&self) -> Vec<Option<String>> {
        match &self.engine {
            RegexEngine::Fast(r) => r.capture_names().map(|n| n.map(str::to_string)).collect(),
            RegexEngine::Fancy(r) => r.capture_names().map(|n| n.map(str::to_string)).collect(),
        }
    }

    /// Every group's bytes (index 0 = whole match) of the first match, as owned copies.
    pub fn captures_owned(&self, text: &[u8]) -> Option<Vec<Option<Vec<u8>>>> {
        match &self.engine {
            RegexEngine::Fast(r) => {
                let c = r.captures(text)?;
                Some(
                    (0..c.len())
                        .map(|i| c.get(i).map(|m| m.as_bytes().to_vec()))
                        .collect(),
                )
            }
            RegexEngine::Fancy(r) => {
                let s = String::from_utf8_lossy(text);
                let c = r.captures(&s).ok()??;
                Some(
                    (0..c.len())
                        .map(|i| c.get(i).map(|m| m.as_str().as_bytes().to_vec()))
                        .collect(),
                )
            }
        }
    }

    /// Every group's byte range (index 0 = whole match) of the first match at or after `start`.
    /// With the fallback engine, input that is not UTF-8 is matched in its lossy form and
    /// ranges refer to that form, so they are only returned for valid UTF-8.
    pub fn captures_pos(&self, text: &[u8], start: usize) -> Option<Vec<Option<(usize, usize)>>> {
        match &self.engine {
            RegexEngine::Fast(r) => {
                let c = r.captures_at(text, start)?;
                Some(
                    (0..c.len())
                        .map(|i| c.get(i).map(|m| (m.start(), m.end())))
                        .collect(),
                )
            }
            RegexEngine::Fancy(r) => {
                let s = std::str::from_utf8(text).ok()?;
                let c = r.captures_from_pos(s, start).ok()??;
                Some(
                    (0..c.len())
                        .map(|i| c.get(i).map(|m| (m.start(), m.end())))
                        .collect(),
                )
            }
        }
    }

    /// For the fast engine, the underlying regex (parsers use it to avoid copies).
    pub fn as_bytes_regex(&self) -> Option<&regex::bytes::Regex> {
        match &self.engine {
            RegexEngine::Fast(r) => Some(r),
            RegexEngine::Fancy(_) => None,
        }
    }
}

impl fmt::Debug for RubyRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}/", self.source)
    }
}

/// Names the deserializer recognises to apply Fluentd's size/time/regexp conversions.
pub const SIZE_MARKER: &str = "$fluentd::size";
pub const TIME_MARKER: &str = "$fluentd::time";
pub const REGEXP_MARKER: &str = "$fluentd::regexp";

/// A `size` parameter, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub i64);

/// A `time` parameter, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Time(pub f64);

impl Time {
    pub fn as_duration(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.0.max(0.0))
    }
}

/// A `hash` parameter with its key order kept (JSON object or `k1:v1,k2:v2`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderedHash(pub Vec<(String, String)>);

impl<'de> serde::Deserialize<'de> for OrderedHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedHash;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a hash")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, String>()? {
                    out.push((k, v));
                }
                Ok(OrderedHash(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A `regexp` parameter, compiled.
#[derive(Clone, Debug)]
pub struct Regexp(pub RubyRegex);

struct NumVisitor;
impl Visitor<'_> for NumVisitor {
    type Value = f64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        time(v, false).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = i64;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
                Ok(v)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
                Ok(v as i64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
                size(v, false).map_err(E::custom)
            }
        }
        d.deserialize_newtype_struct(SIZE_MARKER, V).map(Size)
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_newtype_struct(TIME_MARKER, NumVisitor)
            .map(Time)
    }
}

impl<'de> Deserialize<'de> for Regexp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RubyRegex;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a regexp")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RubyRegex, E> {
                RubyRegex::from_param(v).map_err(E::custom)
            }
        }
        d.deserialize_newtype_struct(REGEXP_MARKER, V).map(Regexp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_is_lenient_unless_strict() {
        assert_eq!(integer("10abc", false), Ok(10));
        assert_eq!(integer("abc", false), Ok(0));
        assert_eq!(integer(" -42", false), Ok(-42));
        assert_eq!(integer("1_000", false), Ok(1000));
        assert!(integer("10abc", true).is_err());
        assert_eq!(integer("17", true), Ok(17));
    }

    #[test]
    fn size_finds_the_digits_before_the_suffix() {
        assert_eq!(size("1.5k", false), Ok(5 * 1024));
        assert_eq!(size("2kb", false), Ok(2048));
        assert_eq!(size("8m", false), Ok(8 << 20));
        assert_eq!(size("1.5m", false), Ok(5 << 20));
        assert_eq!(size("1G", false), Ok(1 << 30));
        assert_eq!(size("2000", false), Ok(2000));
        assert_eq!(size("256MB", false), Ok(256 << 20));
    }

    #[test]
    fn time_finds_the_digits_before_the_suffix() {
        assert_eq!(time("10s", false), Ok(10.0));
        assert_eq!(time("5m", false), Ok(300.0));
        assert_eq!(time("1.5h", false), Ok(5.0 * 3600.0));
        assert_eq!(time("1d", false), Ok(86400.0));
        assert_eq!(time("0.5", false), Ok(0.5));
        assert_eq!(time("soon", false), Ok(0.0));
        assert_eq!(
            time("0.2s", false),
            Ok(2.0),
            "Fluentd reads 0.2s as 2 seconds"
        );
    }

    #[test]
    fn bool_forms() {
        assert_eq!(bool("true", false), Ok(Some(true)));
        assert_eq!(bool("yes", false), Ok(Some(true)));
        assert_eq!(bool("", false), Ok(Some(true)));
        assert_eq!(bool("no", false), Ok(Some(false)));
        assert_eq!(bool("#comment", false), Ok(Some(true)));
        assert_eq!(bool("maybe", false), Ok(None));
        assert!(bool("maybe", true).is_err());
    }

    #[test]
    fn float_forms() {
        assert_eq!(ruby_to_f("1.5e3x"), 1500.0);
        assert_eq!(ruby_to_f("abc"), 0.0);
        assert_eq!(ruby_to_f("-2."), -2.0);
        assert!(float("x", true).is_err());
    }

    #[test]
    fn array_and_hash_forms() {
        assert_eq!(
            array("a, b ,c"),
            Ok(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(array(r#"["a", 1]"#), Ok(vec!["a".into(), "1".into()]));
        assert!(array(r#"["a","#).is_err());
        assert_eq!(
            hash("k1:v1, k2:v2:x"),
            Ok(vec![
                ("k1".into(), "v1".into()),
                ("k2".into(), "v2:x".into())
            ])
        );
        assert_eq!(hash(r#"{"a": 1}"#), Ok(vec![("a".into(), "1".into())]));
    }

    #[test]
    fn regexp_params_and_ruby_syntax() {
        assert_eq!(regexp_source("/ab+/i"), Ok(("ab+".into(), "i".into())));
        assert_eq!(regexp_source("ab+"), Ok(("ab+".into(), String::new())));
        assert!(regexp_source("/ab+").is_err());
        let r = RubyRegex::from_param(r"/^(?<level>\w+) (?<msg>.*)$/").unwrap();
        let caps = r.captures_owned(b"INFO hello").unwrap();
        assert_eq!(caps[1].as_deref(), Some(&b"INFO"[..]));
        assert!(!RubyRegex::from_param(r"^\w+$")
            .unwrap()
            .is_match("é".as_bytes()));
        let ci = RubyRegex::from_param("/hello/i").unwrap();
        assert!(ci.is_match(b"say HELLO"));
        // lookbehind needs the fallback engine
        let lb = RubyRegex::from_param(r"(?<=a)b").unwrap();
        assert!(lb.is_match(b"ab"));
        assert!(!lb.is_match(b"cb"));
        assert!(RubyRegex::from_param("/(unclosed/").is_err());
    }
}
