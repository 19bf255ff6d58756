//! What every parser shares: the common `<parse>` parameters (time_key, time_format, types,
//! null_value_pattern, ...) and the conversion of parsed fields, as Fluentd's `parser.rb` and
//! `TimeMixin::Parser`.
//!
//! A parser declares its config struct with [`parser_config!`], which adds the common
//! parameters, and builds a [`ParserCommon`] from it with the parser's own defaults. Its `parse`
//! then finishes each record with [`ParserCommon::finish`] (time extraction, then null handling
//! and `types`).
//!
//! Errors: a line the parser cannot read is `ParserError("pattern not matched")` (Fluentd's
//! `yield nil, nil`); a time that does not parse is a `ParserError` with Fluentd's
//! `invalid time format: ...` text (an exception in Fluentd, which in_tail logs as
//! `invalid line found`).

use std::collections::BTreeMap;

use crate::config_parser::types::{Regexp, RubyRegex, Time};
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventTime, Record, Value};
use crate::plugins::ParserError;
use crate::timeparse::{ruby_float_to_s, TimeParser, TimeType};

/// The message of a line a parser did not match.
pub const PATTERN_NOT_MATCHED: &str = "pattern not matched";

/// Is this the "line not matched" error (as opposed to a failure while converting it)?
pub fn is_not_matched(e: &ParserError) -> bool {
    e.0 == PATTERN_NOT_MATCHED
}

pub fn not_matched() -> ParserError {
    ParserError(PATTERN_NOT_MATCHED.to_string())
}

/// Declares a parser's config struct: its own fields plus every common `<parse>` parameter.
#[macro_export]
macro_rules! parser_config {
    (
        $(#[$m:meta])*
        pub struct $name:ident {
            $( $(#[$fm:meta])* pub $f:ident : $t:ty, )*
        }
    ) => {
        $(#[$m])*
        #[derive(Debug, Clone, serde::Deserialize)]
        pub struct $name {
            $( $(#[$fm])* pub $f: $t, )*
            pub types: Option<std::collections::BTreeMap<String, String>>,
            pub time_key: Option<String>,
            #[serde(default)]
            pub keep_time_key: bool,
            pub time_type: Option<$crate::timeparse::TimeType>,
            pub time_format: Option<String>,
            #[serde(default)]
            pub time_format_fallbacks: Vec<String>,
            pub localtime: Option<bool>,
            pub utc: Option<bool>,
            pub timezone: Option<String>,
            pub null_value_pattern: Option<$crate::config_parser::types::Regexp>,
            #[serde(default)]
            pub null_empty_string: bool,
            pub estimate_current_event: Option<bool>,
            pub timeout: Option<$crate::config_parser::types::Time>,
        }

        impl $name {
            pub fn common(&self) -> $crate::plugins::parser::CommonParams {
                $crate::plugins::parser::CommonParams {
                    types: self.types.clone(),
                    time_key: self.time_key.clone(),
                    keep_time_key: self.keep_time_key,
                    time_type: self.time_type,
                    time_format: self.time_format.clone(),
                    time_format_fallbacks: self.time_format_fallbacks.clone(),
                    localtime: self.localtime,
                    utc: self.utc,
                    timezone: self.timezone.clone(),
                    null_value_pattern: self.null_value_pattern.clone(),
                    null_empty_string: self.null_empty_string,
                    estimate_current_event: self.estimate_current_event,
                    timeout: self.timeout,
                }
            }
        }
    };
}

parser_config! {
    /// The common parameters alone (parsers without parameters of their own use this).
    pub struct CommonOnly {}
}

/// The common `<parse>` parameters as written (unset ones are `None`).
#[derive(Debug, Clone, Default)]
pub struct CommonParams {
    pub types: Option<BTreeMap<String, String>>,
    pub time_key: Option<String>,
    pub keep_time_key: bool,
    pub time_type: Option<TimeType>,
    pub time_format: Option<String>,
    pub time_format_fallbacks: Vec<String>,
    pub localtime: Option<bool>,
    pub utc: Option<bool>,
    pub timezone: Option<String>,
    pub null_value_pattern: Option<Regexp>,
    pub null_empty_string: bool,
    pub estimate_current_event: Option<bool>,
    pub timeout: Option<Time>,
}

/// A parser's own defaults for the common parameters (`config_set_default`).
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub time_key: Option<&'static str>,
    pub time_type: TimeType,
    pub time_format: Option<&'static str>,
}

impl Defaults {
    pub const NONE: Defaults = Defaults {
        time_key: None,
        time_type: TimeType::String,
        time_format: None,
    };
    pub const TIME_KEY: Defaults = Defaults {
        time_key: Some("time"),
        time_type: TimeType::String,
        time_format: None,
    };
}

/// One `types` conversion.
pub enum Converter {
    String,
    Integer,
    Float,
    Bool,
    Time(TimeParser),
    Array(String),
}

/// The common parameters, resolved and compiled.
pub struct ParserCommon {
    pub time_key: Option<Vec<u8>>,
    pub keep_time_key: bool,
    pub estimate_current_event: bool,
    pub time_parser: TimeParser,
    pub null_value_pattern: Option<RubyRegex>,
    pub null_empty_string: bool,
    pub types: Vec<(Vec<u8>, Converter)>,
    /// Resolved time settings, for parsers that build extra time parsers (syslog).
    pub localtime: bool,
    pub utc: bool,
    pub timezone: Option<String>,
    pub time_format: Option<String>,
    pub time_type: TimeType,
    pub time_format_fallbacks: Vec<String>,
}

impl ParserCommon {
    pub fn build(
        p: &CommonParams,
        d: Defaults,
        elem: &Element,
    ) -> Result<ParserCommon, ConfigError> {
        if let (Some(l), Some(u)) = (p.localtime, p.utc) {
            if l == u {
                return Err(
                    elem.error("both of utc and localtime are specified, use only one of them")
                );
            }
        }
        let (localtime, utc) = match (p.localtime, p.utc) {
            (Some(l), _) => (l, !l),
            (None, Some(u)) => (!u, u),
            (None, None) => (true, false),
        };
        let time_format = p.time_format.clone().or(d.time_format.map(str::to_string));
        let time_type = match p.time_type {
            Some(t) => t,
            // json: `time_type float` unless a time_format is given.
            None if p.time_format.is_some() => TimeType::String,
            None => d.time_type,
        };
        let time_parser = TimeParser::new(
            time_type,
            time_format.as_deref(),
            localtime,
            utc,
            p.timezone.as_deref(),
            &p.time_format_fallbacks,
        )
        .map_err(|e| elem.error(e))?;
        let mut types = Vec::new();
        if let Some(t) = &p.types {
            for (field, def) in t {
                let conv =
                    build_converter(field, def, localtime, utc).map_err(|e| elem.error(e))?;
                types.push((field.as_bytes().to_vec(), conv));
            }
        }
        Ok(ParserCommon {
            // `time_key "#{use_nil}"` (or an owner's nil default) overrides the parser's own.
            time_key: if explicit_nil(elem, "time_key") {
                None
            } else {
                p.time_key
                    .clone()
                    .or(d.time_key.map(str::to_string))
                    .map(String::into_bytes)
            },
            keep_time_key: p.keep_time_key,
            estimate_current_event: p.estimate_current_event.unwrap_or(true),
            time_parser,
            null_value_pattern: p.null_value_pattern.as_ref().map(|r| r.0.clone()),
            null_empty_string: p.null_empty_string,
            types,
            localtime,
            utc,
            timezone: p.timezone.clone(),
            time_format,
            time_type,
            time_format_fallbacks: p.time_format_fallbacks.clone(),
        })
    }

    /// A time parser with this section's zone settings and another format.
    pub fn time_parser_with_format(&self, format: &str) -> Result<TimeParser, String> {
        TimeParser::new(
            TimeType::String,
            Some(format),
            self.localtime,
            self.utc,
            self.timezone.as_deref(),
            &[],
        )
    }

    /// `parse_time`: takes the time out of the record (unless keep_time_key), or now, or none.
    pub fn parse_time(&self, rec: &mut Record) -> Result<Option<EventTime>, ParserError> {
        if let Some(key) = &self.time_key {
            let v = if self.keep_time_key {
                rec.get(key).cloned()
            } else {
                rec.remove(key)
            };
            if let Some(v) = v {
                return self.time_parser.parse(&v).map(Some).map_err(ParserError);
            }
        }
        Ok(if self.estimate_current_event {
            Some(EventTime::now())
        } else {
            None
        })
    }

    /// `convert_values`: null patterns, then `types`.
    pub fn convert_values(&self, rec: &mut Record) {
        if self.types.is_empty() && self.null_value_pattern.is_none() && !self.null_empty_string {
            return;
        }
        for (key, v) in rec.iter_mut() {
            if v.is_nil() {
                continue;
            }
            if let Value::Str(s) = &*v {
                let empty_null = self.null_empty_string && s.is_empty();
                let pattern_null = self
                    .null_value_pattern
                    .as_ref()
                    .is_some_and(|r| r.is_match(s));
                if empty_null || pattern_null {
                    *v = Value::Nil;
                    continue;
                }
            }
            if let Some((_, conv)) = self.types.iter().find(|(k, _)| k == key) {
                *v = convert(conv, v);
            }
        }
    }

    /// Both steps, in Fluentd's order.
    pub fn finish(&self, mut rec: Record) -> Result<(Option<EventTime>, Record), ParserError> {
        let t = self.parse_time(&mut rec)?;
        self.convert_values(&mut rec);
        Ok((t, rec))
    }
}

fn explicit_nil(elem: &Element, key: &str) -> bool {
    matches!(
        elem.param(key).map(|p| &p.value),
        Some(crate::config_parser::ParamValue::Nil)
    )
}

/// A copy of `elem` with an owner plugin's defaults for parameters it does not set (Fluentd's
/// `config_section :parse do config_set_default ... end`); a `None` value means nil.
pub fn with_defaults(elem: &Element, defaults: &[(&str, Option<&str>)]) -> Element {
    let mut e = elem.clone();
    for (k, v) in defaults {
        if e.has(k) {
            continue;
        }
        match v {
            Some(v) => e.set(k, v),
            None => e.params.push(crate::config_parser::Param {
                key: k.to_string(),
                value: crate::config_parser::ParamValue::Nil,
                span: elem.span.clone(),
            }),
        }
    }
    e
}

/// Runs `parser` over a byte stream (a child process's output) as Fluentd's in_exec and
/// out_exec_filter do: parsers that read streams (json, msgpack) take it whole, others get it
/// line by line without the line end. `on_error` gets each line the parser rejects; a broken
/// stream ends the reading with an error.
pub fn parse_stream(
    parser: &dyn crate::plugins::Parser,
    reader: &mut dyn std::io::Read,
    emit: &mut dyn FnMut(Option<EventTime>, Record),
    on_error: &mut dyn FnMut(&[u8], ParserError),
) -> Result<(), String> {
    if let Some(r) = parser.parse_io(reader, emit) {
        return r.map_err(|e| e.0);
    }
    let mut br = std::io::BufReader::with_capacity(64 * 1024, reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n =
            std::io::BufRead::read_until(&mut br, b'\n', &mut line).map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(());
        }
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        if let Err(e) = parser.parse(&line, emit) {
            on_error(&line, e);
        }
    }
}

const TIME_TYPES: [&str; 4] = ["string", "unixtime", "float", "mixed"];

fn build_converter(
    field: &str,
    def: &str,
    localtime: bool,
    utc: bool,
) -> Result<Converter, String> {
    let (ty, option) = match def.split_once(':') {
        Some((t, o)) => (t, Some(o)),
        None => (def, None),
    };
    Ok(match ty {
        "string" => Converter::String,
        "integer" => Converter::Integer,
        "float" => Converter::Float,
        "bool" => Converter::Bool,
        "array" => Converter::Array(option.unwrap_or(",").to_string()),
        "time" => {
            let (mut tz, mut fmt) = match option {
                Some(o) => match o.split_once(':') {
                    Some((a, b)) => (Some(a), Some(b)),
                    None => (Some(o), None),
                },
                None => (None, None),
            };
            if option.is_some() && tz.is_some_and(|z| crate::timeparse::Zone::parse(z).is_none()) {
                tz = None;
                fmt = option;
            }
            let mut time_type = TimeType::String;
            if let Some(f) = fmt {
                if TIME_TYPES.contains(&f) {
                    time_type = match f {
                        "unixtime" => TimeType::Unixtime,
                        "float" => TimeType::Float,
                        "mixed" => TimeType::Mixed,
                        _ => TimeType::String,
                    };
                    fmt = None;
                }
            }
            Converter::Time(TimeParser::new(time_type, fmt, localtime, utc, tz, &[])?)
        }
        _ => {
            return Err(format!(
                "unknown value conversion for key:'{field}', type:'{ty}'"
            ))
        }
    })
}

/// Ruby's `to_s` of a value, as the `string` and `array` conversions see it.
pub fn ruby_to_s(v: &Value) -> Vec<u8> {
    match v {
        Value::Str(s) | Value::Bin(s) => s.clone(),
        Value::Int(i) => i.to_string().into_bytes(),
        Value::UInt(u) => u.to_string().into_bytes(),
        Value::BigInt(b) => b.clone().into_bytes(),
        Value::Float(f) => ruby_float_to_s(*f).into_bytes(),
        Value::Bool(b) => b.to_string().into_bytes(),
        Value::Nil => Vec::new(),
        other => other.to_ruby_s(),
    }
}

fn convert(conv: &Converter, v: &Value) -> Value {
    use crate::config_parser::types::{ruby_to_f, ruby_to_i};
    match conv {
        Converter::String => Value::Str(ruby_to_s(v)),
        Converter::Integer => Value::Int(match v {
            Value::Int(i) => *i,
            Value::UInt(u) => *u as i64,
            Value::Float(f) if f.is_finite() => f.trunc() as i64,
            other => ruby_to_i(&String::from_utf8_lossy(&ruby_to_s(other))),
        }),
        Converter::Float => Value::Float(match v {
            Value::Int(i) => *i as f64,
            Value::UInt(u) => *u as f64,
            Value::Float(f) => *f,
            other => ruby_to_f(&String::from_utf8_lossy(&ruby_to_s(other))),
        }),
        Converter::Bool => {
            let s = ruby_to_s(v).to_ascii_lowercase();
            Value::Bool(matches!(s.as_slice(), b"true" | b"yes" | b"1"))
        }
        // `timep.parse(v) rescue nil`; an EventTime serializes as its seconds.
        Converter::Time(tp) => match tp.parse(v) {
            Ok(t) => Value::Int(t.sec),
            Err(_) => Value::Nil,
        },
        Converter::Array(delim) => Value::Array(
            ruby_split(&ruby_to_s(v), delim.as_bytes())
                .into_iter()
                .map(Value::Str)
                .collect(),
        ),
    }
}

/// Ruby's `String#split(str)` without limit: `" "` splits on runs of whitespace ignoring
/// leading ones; trailing empty fields are dropped.
pub fn ruby_split(s: &[u8], delim: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    if delim == b" " {
        for part in s.split(|b| b.is_ascii_whitespace() || *b == 0) {
            if !part.is_empty() {
                out.push(part.to_vec());
            }
        }
        return out;
    }
    if delim.is_empty() {
        return s.iter().map(|b| vec![*b]).collect();
    }
    let mut start = 0;
    let finder = memchr::memmem::Finder::new(delim);
    while let Some(i) = finder.find(&s[start..]) {
        out.push(s[start..start + i].to_vec());
        start += i + delim.len();
    }
    out.push(s[start..].to_vec());
    while out.last().is_some_and(|p| p.is_empty()) {
        out.pop();
    }
    out
}

/// Ruby's `String#split(str, limit)` with a positive limit: at most `limit` fields, the last
/// one holding the rest; trailing empty fields are kept.
pub fn ruby_split_limit<'a>(s: &'a [u8], delim: &[u8], limit: usize) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    if delim.is_empty() || limit <= 1 {
        out.push(s);
        return out;
    }
    let mut start = 0;
    let finder = memchr::memmem::Finder::new(delim);
    while out.len() + 1 < limit {
        match finder.find(&s[start..]) {
            Some(i) => {
                out.push(&s[start..start + i]);
                start += i + delim.len();
            }
            None => break,
        }
    }
    out.push(&s[start..]);
    out
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Building `<parse>` sections from text for parser tests.
    use crate::config_parser::Element;
    use crate::event::{EventTime, Record};
    use crate::plugins::{new_parser, Parser, ParserError, PluginContext};

    pub fn section(body: &str) -> Element {
        let text = format!("<parse>\n{body}\n</parse>\n");
        let root = crate::config_parser::parse_str(
            &text,
            std::path::Path::new("test.conf"),
            &Default::default(),
        )
        .expect("config parses");
        root.elements.into_iter().next().expect("one section")
    }

    pub fn parser(body: &str) -> Box<dyn Parser> {
        match new_parser(&section(body), &PluginContext::for_tests()) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    pub fn parse_all(
        p: &dyn Parser,
        line: &str,
    ) -> Result<Vec<(Option<EventTime>, Record)>, ParserError> {
        parse_bytes(p, line.as_bytes())
    }

    pub fn parse_bytes(
        p: &dyn Parser,
        line: &[u8],
    ) -> Result<Vec<(Option<EventTime>, Record)>, ParserError> {
        let mut out = Vec::new();
        p.parse(line, &mut |t, r| out.push((t, r)))?;
        Ok(out)
    }

    /// The record as compact JSON, for comparing with the cases' expected lines.
    pub fn json(r: &Record) -> String {
        serde_json::to_string(&to_json(&crate::event::Value::Map(r.clone()))).unwrap_or_default()
    }

    fn to_json(v: &crate::event::Value) -> serde_json::Value {
        use crate::event::Value;
        match v {
            Value::Nil => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
            Value::UInt(u) => (*u).into(),
            Value::BigInt(b) => serde_json::Value::String(b.clone()),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Str(s) | Value::Bin(s) => String::from_utf8_lossy(s).into_owned().into(),
            Value::Array(a) => a.iter().map(to_json).collect(),
            Value::Map(m) => {
                let mut o = serde_json::Map::new();
                for (k, v) in m.iter() {
                    o.insert(String::from_utf8_lossy(k).into_owned(), to_json(v));
                }
                serde_json::Value::Object(o)
            }
            Value::Ext(_, _) => serde_json::Value::Null,
        }
    }

    pub fn utc(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64, ns: u32) -> EventTime {
        EventTime::new(
            crate::timeparse::days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s,
            ns,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common(body: &str, d: Defaults) -> ParserCommon {
        let e = test_support::section(body);
        let c: CommonOnly = crate::plugins::PluginContext::for_tests()
            .configure(&e, "test")
            .unwrap();
        ParserCommon::build(&c.common(), d, &e).unwrap()
    }

    fn rec(pairs: &[(&str, Value)]) -> Record {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
            .collect()
    }

    #[test]
    fn types_case_131() {
        let c = common(
            "types a:integer,b:float,c:bool,d:string,e:array",
            Defaults::TIME_KEY,
        );
        let mut r = rec(&[
            ("a", Value::str("42")),
            ("b", Value::str("1.5")),
            ("c", Value::str("true")),
            ("d", Value::Int(7)),
            ("e", Value::str("x,y,z")),
        ]);
        c.convert_values(&mut r);
        assert_eq!(
            test_support::json(&r),
            r#"{"a":42,"b":1.5,"c":true,"d":"7","e":["x","y","z"]}"#
        );
        let mut r = rec(&[
            ("a", Value::str("4x")),
            ("b", Value::str("zz")),
            ("c", Value::str("no")),
            ("d", Value::Nil),
            ("e", Value::str("one")),
        ]);
        c.convert_values(&mut r);
        assert_eq!(
            test_support::json(&r),
            r#"{"a":4,"b":0.0,"c":false,"d":null,"e":["one"]}"#
        );
    }

    #[test]
    fn time_type_conversion_case_157() {
        let c = common("types at:time:%Y-%m-%d", Defaults::TIME_KEY);
        let mut r = rec(&[("at", Value::str("2024-01-02")), ("i", Value::Int(1))]);
        c.convert_values(&mut r);
        assert_eq!(test_support::json(&r), r#"{"at":1704153600,"i":1}"#);
        let c = common(
            "types at:time:unixtime, b:time:Asia/Tokyo:%Y-%m-%d %H",
            Defaults::TIME_KEY,
        );
        let mut r = rec(&[
            ("at", Value::str("12")),
            ("b", Value::str("2024-01-02 09")),
            ("c", Value::str("x")),
        ]);
        c.convert_values(&mut r);
        assert_eq!(
            test_support::json(&r),
            r#"{"at":12,"b":1704153600,"c":"x"}"#
        );
    }

    #[test]
    fn null_handling_case_153() {
        let c = common(
            "null_value_pattern /^(-|n\\/a)$/\nnull_empty_string true",
            Defaults::TIME_KEY,
        );
        let mut r = rec(&[
            ("a", Value::str("-")),
            ("b", Value::str("n/a")),
            ("c", Value::str("")),
            ("d", Value::str("ok")),
        ]);
        c.convert_values(&mut r);
        assert_eq!(
            test_support::json(&r),
            r#"{"a":null,"b":null,"c":null,"d":"ok"}"#
        );
    }

    #[test]
    fn time_extraction_and_keep_time_key() {
        let c = common(
            "time_format %Y-%m-%d %H:%M:%S\ntime_key ts\nkeep_time_key true",
            Defaults::TIME_KEY,
        );
        let (t, r) = c
            .finish(rec(&[
                ("ts", Value::str("2024-05-06 07:08:09")),
                ("a", Value::Int(1)),
            ]))
            .unwrap();
        assert_eq!(t, Some(test_support::utc(2024, 5, 6, 7, 8, 9, 0)));
        assert_eq!(
            test_support::json(&r),
            r#"{"ts":"2024-05-06 07:08:09","a":1}"#
        );
        let c = common("estimate_current_event false", Defaults::TIME_KEY);
        let (t, _) = c.finish(rec(&[("i", Value::Int(2))])).unwrap();
        assert_eq!(t, None);
        let c = common("time_format %Y", Defaults::TIME_KEY);
        assert!(c.finish(rec(&[("time", Value::str("garbage"))])).is_err());
    }

    #[test]
    fn config_errors() {
        let e = test_support::section("localtime true\nutc true");
        let c: CommonOnly = crate::plugins::PluginContext::for_tests()
            .configure(&e, "t")
            .unwrap();
        assert!(ParserCommon::build(&c.common(), Defaults::NONE, &e).is_err());
        let e = test_support::section("types a:nope");
        let c: CommonOnly = crate::plugins::PluginContext::for_tests()
            .configure(&e, "t")
            .unwrap();
        let err = ParserCommon::build(&c.common(), Defaults::NONE, &e)
            .err()
            .unwrap();
        assert_eq!(
            err.message,
            "unknown value conversion for key:'a', type:'nope'"
        );
    }

    #[test]
    fn splits() {
        assert_eq!(
            ruby_split(b"a,b,,", b","),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        assert_eq!(ruby_split(b"", b","), Vec::<Vec<u8>>::new());
        assert_eq!(
            ruby_split(b"  a  b ", b" "),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        assert_eq!(
            ruby_split_limit(b"1\t\t", b"\t", 3),
            vec![&b"1"[..], b"", b""]
        );
        assert_eq!(
            ruby_split_limit(b"a\tb\tc\td", b"\t", 3),
            vec![&b"a"[..], b"b", b"c\td"]
        );
    }
}
