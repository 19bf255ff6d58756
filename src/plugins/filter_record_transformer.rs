//! `@type record_transformer` (filter): adds or rewrites fields with placeholders.
//!
//! The `<record>` map is compiled once at configure time into templates; an event only looks
//! placeholders up. Placeholder semantics are Fluentd's non-Ruby `PlaceholderExpander`: a match
//! of `${[^}]+}` or `__[A-Z_]+__` is looked up in a table of `${tag}`, `${tag_parts[N]}` (and
//! negative N), `${tag_prefix[N]}`, `${tag_suffix[N]}`, `${hostname}`, `${time}` and
//! `${record["KEY"]}` for every top-level key; anything else is nil. So `${record["a"]["b"]}`
//! and `${record['a']}` are nil, and a value that is exactly one placeholder keeps the
//! placeholder's type (with `auto_typecast`, the default).

use std::borrow::Cow;

use chrono::{Local, TimeZone};
use regex::bytes::Regex;
use serde::Deserialize;

use super::{Filter, PluginContext};
use crate::config_parser::{ConfigError, Element, Nested, ParamValue};
use crate::event::{EventStream, EventTime, Record, Value};
use crate::record_accessor::RecordAccessor;
use crate::router::ErrorSink;
use crate::ruby::template::{Template as RubyTemplate, Wrap};
use crate::ruby::value::{to_s as ruby_to_s, Time as RubyTime};
use crate::ruby::V;

fn default_true() -> bool {
    true
}

#[derive(Deserialize)]
struct RecordTransformerConf {
    /// Read from the element directly to keep the parameters' order and raw values.
    #[serde(default)]
    #[allow(dead_code)]
    record: Vec<Nested>,
    remove_keys: Option<Vec<String>>,
    keep_keys: Option<Vec<String>>,
    #[serde(default)]
    renew_record: bool,
    renew_time_key: Option<String>,
    #[serde(default)]
    enable_ruby: bool,
    #[serde(default = "default_true")]
    auto_typecast: bool,
}

/// A placeholder, resolved at configure time to what it looks up.
#[derive(Clone, Debug, PartialEq)]
enum Placeholder {
    Tag,
    TagPart(i64),
    TagPrefix(i64),
    TagSuffix(i64),
    Hostname,
    Time,
    Record(Vec<u8>),
    /// Never in Fluentd's table: expands to nil.
    Unknown,
}

#[derive(Clone, Debug, PartialEq)]
enum Segment {
    Lit(Vec<u8>),
    Ph(Placeholder),
}

/// A string with placeholders.
#[derive(Clone, Debug, PartialEq)]
struct Template {
    segments: Vec<Segment>,
    /// The whole string is one placeholder (its value is used as is, when allowed).
    single: bool,
}

/// A `<record>` value: a template string, or a JSON structure whose strings are templates.
#[derive(Clone, Debug, PartialEq)]
enum TValue {
    Str(Template),
    Map(Vec<(Template, TValue)>),
    Array(Vec<TValue>),
    Const(Value),
}

/// Ruby's canonical `Integer#to_s` form of an index, as the placeholder table spells keys.
fn canonical_index(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let canonical = if digits == "0" {
        s == "0"
    } else {
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
    };
    if canonical {
        s.parse().ok()
    } else {
        None
    }
}

/// What `${INNER}` looks up. `ruby` accepts what a Ruby expression would evaluate the same way.
fn classify(inner: &str, ruby: bool) -> Placeholder {
    let indexed = |name: &str| -> Option<i64> {
        let rest = inner
            .strip_prefix(name)?
            .strip_prefix('[')?
            .strip_suffix(']')?;
        if ruby {
            rest.trim().parse().ok()
        } else {
            canonical_index(rest)
        }
    };
    match inner {
        "tag" => return Placeholder::Tag,
        "hostname" => return Placeholder::Hostname,
        "time" => return Placeholder::Time,
        _ => {}
    }
    if let Some(i) = indexed("tag_parts") {
        return Placeholder::TagPart(i);
    }
    if let Some(i) = indexed("tag_prefix") {
        return Placeholder::TagPrefix(i);
    }
    if let Some(i) = indexed("tag_suffix") {
        return Placeholder::TagSuffix(i);
    }
    if let Some(k) = inner
        .strip_prefix("record[\"")
        .and_then(|r| r.strip_suffix("\"]"))
    {
        // Without Ruby, the key text is looked up verbatim (`a"]["b` for a nested access).
        if !ruby || !k.contains(['"', '\\', '#']) {
            return Placeholder::Record(k.as_bytes().to_vec());
        }
    }
    if ruby {
        if let Some(k) = inner
            .strip_prefix("record['")
            .and_then(|r| r.strip_suffix("']"))
        {
            if !k.contains(['\'', '\\']) {
                return Placeholder::Record(k.as_bytes().to_vec());
            }
        }
    }
    Placeholder::Unknown
}

struct Compiler {
    any: Regex,
    single: Regex,
    ruby: bool,
    /// The placeholders found, for configure-time diagnostics.
    seen: Vec<(String, Placeholder)>,
}

impl Compiler {
    fn new(ruby: bool) -> Result<Compiler, String> {
        // In Ruby mode only `${...}` is special (it becomes `#{...}`).
        let (any, single) = if ruby {
            (r"\$\{(?-u:[^}])+\}", r"\A\$\{(?-u:[^}])+\}\z")
        } else {
            (
                r"\$\{(?-u:[^}])+\}|__[A-Z_]+__",
                r"\A(?:\$\{(?-u:[^}])+\}|__[A-Z_]+__)\z",
            )
        };
        Ok(Compiler {
            any: Regex::new(any).map_err(|e| e.to_string())?,
            single: Regex::new(single).map_err(|e| e.to_string())?,
            ruby,
            seen: Vec::new(),
        })
    }

    fn template(&mut self, s: &str) -> Template {
        let bytes = s.as_bytes();
        let mut segments = Vec::new();
        let mut last = 0;
        for m in self.any.find_iter(bytes) {
            if m.start() > last {
                segments.push(Segment::Lit(bytes[last..m.start()].to_vec()));
            }
            let text = &s[m.start()..m.end()];
            let ph = match text.strip_prefix("${").and_then(|t| t.strip_suffix('}')) {
                Some(inner) => classify(inner, self.ruby),
                None => Placeholder::Unknown,
            };
            self.seen.push((text.to_string(), ph.clone()));
            segments.push(Segment::Ph(ph));
            last = m.end();
        }
        if last < bytes.len() {
            segments.push(Segment::Lit(bytes[last..].to_vec()));
        }
        let single = if self.ruby {
            // Ruby mode's test: exactly one `${`, at the start, and a final `}`.
            s.matches("${").count() == 1 && self.single.is_match(bytes)
        } else {
            self.single.is_match(bytes)
        };
        Template { segments, single }
    }

    fn json(&mut self, v: serde_json::Value) -> TValue {
        match v {
            serde_json::Value::String(s) => TValue::Str(self.template(&s)),
            serde_json::Value::Array(a) => {
                TValue::Array(a.into_iter().map(|x| self.json(x)).collect())
            }
            serde_json::Value::Object(o) => TValue::Map(
                o.into_iter()
                    .map(|(k, v)| (self.template(&k), self.json(v)))
                    .collect(),
            ),
            other => TValue::Const(crate::util::value_from_json(other)),
        }
    }

    /// Fluentd's `parse_value`: values starting with `{` or `[` are JSON when they parse.
    fn value(&mut self, raw: &str) -> TValue {
        if raw.starts_with('{') || raw.starts_with('[') {
            match serde_json::from_str::<serde_json::Value>(raw) {
                Ok(v) => return self.json(v),
                Err(e) => tracing::warn!(
                    "failed to parse {} as json. Assuming {} is a string error=\"{}\"",
                    raw,
                    raw,
                    e
                ),
            }
        }
        TValue::Str(self.template(raw))
    }
}

/// Ruby's `String#split('.')`: trailing empty fields are dropped.
fn split_tag(tag: &str) -> Vec<&str> {
    let mut parts: Vec<&str> = tag.split('.').collect();
    while parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    parts
}

fn pick(list: &[String], i: i64) -> Option<&str> {
    let len = list.len() as i64;
    let idx = if i < 0 { len + i } else { i };
    if (0..len).contains(&idx) {
        list.get(idx as usize).map(String::as_str)
    } else {
        None
    }
}

/// Per-stream placeholder values.
struct TagValues<'a> {
    tag: &'a str,
    parts: Vec<String>,
    prefix: Vec<String>,
    suffix: Vec<String>,
}

impl<'a> TagValues<'a> {
    fn new(tag: &'a str) -> Self {
        let parts: Vec<String> = split_tag(tag).into_iter().map(str::to_string).collect();
        let mut prefix: Vec<String> = Vec::with_capacity(parts.len());
        for p in &parts {
            let next = match prefix.last() {
                Some(prev) => format!("{prev}.{p}"),
                None => p.clone(),
            };
            prefix.push(next);
        }
        let mut suffix: Vec<String> = Vec::with_capacity(parts.len());
        for p in parts.iter().rev() {
            let next = match suffix.last() {
                Some(prev) => format!("{p}.{prev}"),
                None => p.clone(),
            };
            suffix.push(next);
        }
        suffix.reverse();
        TagValues {
            tag,
            parts,
            prefix,
            suffix,
        }
    }
}

/// Ruby's `Time#to_s` in local time: `2023-11-14 22:13:20 +0000`.
fn ruby_time_to_s(t: EventTime) -> String {
    match Local.timestamp_opt(t.sec, 0).single() {
        Some(dt) => dt.format("%Y-%m-%d %H:%M:%S %z").to_string(),
        None => String::new(),
    }
}

/// One placeholder's value: borrowed text, or a record value.
enum Resolved<'a> {
    Text(Cow<'a, [u8]>),
    Val(&'a Value),
    Nil,
}

struct Expander<'a> {
    tags: &'a TagValues<'a>,
    hostname: &'a str,
    record: &'a Record,
    time: EventTime,
    time_s: std::cell::OnceCell<String>,
}

impl<'a> Expander<'a> {
    fn resolve(&self, ph: &'a Placeholder) -> Resolved<'_> {
        let text = |s: &'a str| Resolved::Text(Cow::Borrowed(s.as_bytes()));
        match ph {
            Placeholder::Tag => text(self.tags.tag),
            Placeholder::Hostname => text(self.hostname),
            Placeholder::Time => Resolved::Text(Cow::Borrowed(
                self.time_s
                    .get_or_init(|| ruby_time_to_s(self.time))
                    .as_bytes(),
            )),
            Placeholder::TagPart(i) => match pick(&self.tags.parts, *i) {
                Some(s) => Resolved::Text(Cow::Borrowed(s.as_bytes())),
                None => Resolved::Nil,
            },
            Placeholder::TagPrefix(i) => match pick(&self.tags.prefix, *i) {
                Some(s) => Resolved::Text(Cow::Borrowed(s.as_bytes())),
                None => Resolved::Nil,
            },
            Placeholder::TagSuffix(i) => match pick(&self.tags.suffix, *i) {
                Some(s) => Resolved::Text(Cow::Borrowed(s.as_bytes())),
                None => Resolved::Nil,
            },
            Placeholder::Record(k) => match self.record.get(k) {
                Some(v) => Resolved::Val(v),
                None => Resolved::Nil,
            },
            Placeholder::Unknown => Resolved::Nil,
        }
    }

    /// `str.gsub(PLACEHOLDER) { placeholders[$1] }`: every value by its `to_s`.
    fn stringify(&self, t: &'a Template) -> Vec<u8> {
        let mut out = Vec::new();
        for seg in &t.segments {
            match seg {
                Segment::Lit(b) => out.extend_from_slice(b),
                Segment::Ph(ph) => match self.resolve(ph) {
                    Resolved::Text(b) => out.extend_from_slice(&b),
                    Resolved::Val(Value::Str(s)) => out.extend_from_slice(s),
                    Resolved::Val(v) => out.extend_from_slice(&v.to_ruby_s()),
                    Resolved::Nil => {}
                },
            }
        }
        out
    }

    fn string_value(&self, t: &'a Template, typecast: bool) -> Value {
        if typecast && t.single {
            if let Some(Segment::Ph(ph)) = t.segments.first() {
                return match self.resolve(ph) {
                    Resolved::Text(b) => Value::Str(b.into_owned()),
                    Resolved::Val(v) => v.clone(),
                    Resolved::Nil => Value::Nil,
                };
            }
        }
        Value::Str(self.stringify(t))
    }

    fn value(&self, v: &'a TValue, typecast: bool) -> Value {
        match v {
            TValue::Str(t) => self.string_value(t, typecast),
            TValue::Const(c) => c.clone(),
            TValue::Array(a) => Value::Array(a.iter().map(|x| self.value(x, typecast)).collect()),
            TValue::Map(m) => {
                let mut r = Record::with_capacity(m.len());
                for (k, v) in m {
                    r.insert(self.stringify(k), self.value(v, typecast));
                }
                Value::Map(r)
            }
        }
    }
}

/// A `<record>` value with `enable_ruby`: Ruby templates, or a JSON structure of them.
#[derive(Debug)]
enum RubyValue {
    Str(RubyTemplate),
    Map(Vec<(RubyTemplate, RubyValue)>),
    Array(Vec<RubyValue>),
    Const(Value),
}

/// The locals of a record_transformer expression, in Fluentd's `CleanroomExpander#expand`
/// order (plus `worker_id`).
const RUBY_LOCALS: &[&str] = &[
    "tag",
    "time",
    "record",
    "tag_parts",
    "tag_prefix",
    "tag_suffix",
    "hostname",
    "worker_id",
];

pub struct RecordTransformer {
    map: Vec<(Template, TValue)>,
    /// With `enable_ruby`: the `<record>` pairs as Ruby expressions.
    ruby: Option<Vec<(RubyTemplate, RubyValue)>>,
    ruby_uses: Vec<bool>,
    ruby_host: crate::ruby::Host,
    remove_keys: Vec<RecordAccessor>,
    keep_keys: Vec<String>,
    renew_record: bool,
    renew_time_key: Option<String>,
    auto_typecast: bool,
    hostname: String,
    errors: ErrorSink,
}

/// Ruby's `to_f` of a value, for `renew_time_key`.
fn value_to_f(v: &Value) -> Result<f64, String> {
    Ok(match v {
        Value::Nil => 0.0,
        Value::Int(i) => *i as f64,
        Value::UInt(u) => *u as f64,
        Value::BigInt(d) => d.parse().unwrap_or(0.0),
        Value::Float(f) => *f,
        Value::Str(s) | Value::Bin(s) => {
            crate::config_parser::types::ruby_to_f(&String::from_utf8_lossy(s))
        }
        other => {
            let class = match other {
                Value::Bool(true) => "true:TrueClass",
                Value::Bool(false) => "false:FalseClass",
                Value::Array(_) => "Array",
                Value::Map(_) => "Hash",
                _ => "Object",
            };
            return Err(format!("undefined method `to_f' for {class}"));
        }
    })
}

/// `EventTime.from_time(Time.at(f))`: Ruby takes the float's exact value and truncates it to
/// nanoseconds.
fn event_time_from_f64(f: f64) -> Result<EventTime, String> {
    if !f.is_finite() {
        return Err(format!("{f} out of Time range"));
    }
    if f == 0.0 {
        return Ok(EventTime::new(0, 0));
    }
    let bits = f.to_bits();
    let neg = bits >> 63 == 1;
    let exp = ((bits >> 52) & 0x7ff) as i64;
    let frac = bits & ((1u64 << 52) - 1);
    let (mant, e) = if exp == 0 {
        (frac, -1074i64)
    } else {
        (frac | (1u64 << 52), exp - 1075)
    };
    let m = if neg { -(mant as i128) } else { mant as i128 };
    if e >= 0 {
        if e > 62 {
            return Err(format!("{f} out of Time range"));
        }
        let sec = m
            .checked_mul(1i128 << e)
            .ok_or_else(|| format!("{f} out of Time range"))?;
        let sec = i64::try_from(sec).map_err(|_| format!("{f} out of Time range"))?;
        return Ok(EventTime::new(sec, 0));
    }
    let shift = -e;
    if shift > 64 {
        // |f| < 2^-11: the second is 0 or -1.
        return Ok(if neg {
            EventTime::new(-1, 999_999_999)
        } else {
            // mant * 10^9 < 2^83, so a larger shift leaves no nanosecond.
            let nsec = if shift >= 84 {
                0
            } else {
                ((mant as u128 * 1_000_000_000) >> shift) as u32
            };
            EventTime::new(0, nsec)
        });
    }
    let sec = m >> shift;
    let rem = m - (sec << shift);
    let nsec = (rem * 1_000_000_000) >> shift;
    let sec = i64::try_from(sec).map_err(|_| format!("{f} out of Time range"))?;
    Ok(EventTime::new(sec, nsec as u32))
}

impl RecordTransformer {
    fn configure(elem: &Element, ctx: &PluginContext) -> Result<Self, ConfigError> {
        let conf: RecordTransformerConf = ctx.configure(elem, "record_transformer")?;
        let mut compiler = Compiler::new(conf.enable_ruby).map_err(|e| elem.error(e))?;

        // Every <record> merged in order; a repeated key keeps its first position.
        let mut map: Vec<(String, Template, TValue)> = Vec::new();
        for section in elem.children("record") {
            for p in &section.params {
                let value = match &p.value {
                    ParamValue::Str(s) => compiler.value(s),
                    ParamValue::Nil | ParamValue::Default => TValue::Const(Value::Nil),
                };
                let key = compiler.template(&p.key);
                match map.iter_mut().find(|(k, _, _)| *k == p.key) {
                    Some(slot) => slot.2 = value,
                    None => map.push((p.key.clone(), key, value)),
                }
            }
        }

        for (text, ph) in &compiler.seen {
            if *ph == Placeholder::Unknown && !conf.enable_ruby {
                tracing::warn!("unknown placeholder `{}` found", text);
            }
        }

        let mut ruby = None;
        let mut ruby_uses = vec![false; RUBY_LOCALS.len()];
        if conf.enable_ruby {
            let mut rmap: Vec<(String, RubyTemplate, RubyValue)> = Vec::new();
            for section in elem.children("record") {
                for p in &section.params {
                    let at = |e: crate::ruby::CompileError, text: &str| {
                        ConfigError::at(
                            format!("{} in `{}` (enable_ruby)", e.message, text),
                            &p.span,
                        )
                    };
                    let value = match &p.value {
                        ParamValue::Str(v) => {
                            ruby_value(v, conf.auto_typecast).map_err(|e| at(e, v))?
                        }
                        ParamValue::Nil | ParamValue::Default => RubyValue::Const(Value::Nil),
                    };
                    let key = RubyTemplate::new(&p.key, Wrap::PercentQ, false, RUBY_LOCALS)
                        .map_err(|e| at(e, &p.key))?;
                    match rmap.iter_mut().find(|(k, _, _)| *k == p.key) {
                        Some(slot) => slot.2 = value,
                        None => rmap.push((p.key.clone(), key, value)),
                    }
                }
            }
            for (_, k, v) in &rmap {
                mark_uses(k, &mut ruby_uses);
                mark_value_uses(v, &mut ruby_uses);
            }
            ruby = Some(rmap.into_iter().map(|(_, k, v)| (k, v)).collect());
        }

        if conf.keep_keys.is_some() && !conf.renew_record {
            let at = elem
                .param("keep_keys")
                .map(|p| &p.span)
                .unwrap_or(&elem.span);
            return Err(ConfigError::at(
                "`renew_record` must be true to use `keep_keys`",
                at,
            ));
        }

        let mut remove_keys = Vec::new();
        for k in conf.remove_keys.unwrap_or_default() {
            remove_keys.push(RecordAccessor::new(&k).map_err(|m| elem.error(m))?);
        }

        Ok(RecordTransformer {
            map: map.into_iter().map(|(_, k, v)| (k, v)).collect(),
            ruby,
            ruby_uses,
            ruby_host: crate::ruby::Host {
                hostname: ctx.hostname.clone(),
                worker_id: ctx.worker_id.to_string(),
                config: false,
            },
            remove_keys,
            keep_keys: conf.keep_keys.unwrap_or_default(),
            renew_record: conf.renew_record,
            renew_time_key: conf.renew_time_key,
            auto_typecast: conf.auto_typecast,
            hostname: ctx.hostname.clone(),
            errors: ctx.errors.clone(),
        })
    }

    /// The `<record>` pairs by Ruby evaluation; an exception is the error event's message.
    /// `lists`: tag_parts, tag_prefix and tag_suffix as event values (read in place).
    fn ruby_expand(
        &self,
        map: &[(RubyTemplate, RubyValue)],
        tags: &TagValues<'_>,
        lists: &[Vec<Value>; 3],
        time: EventTime,
        record: &Record,
    ) -> Result<Vec<(Vec<u8>, Value)>, String> {
        let u = |i: usize| self.ruby_uses[i];
        let locals: [V<'_>; 8] = [
            if u(0) {
                V::str(tags.tag.as_bytes().to_vec())
            } else {
                V::Nil
            },
            V::Time(RubyTime {
                t: EventTime::new(time.sec, time.nsec),
                zone: crate::timefmt::TimeZoneSpec::Local,
            }),
            V::Rec(record),
            V::RArr(&lists[0]),
            V::RArr(&lists[1]),
            V::RArr(&lists[2]),
            if u(6) {
                V::str(self.hostname.as_bytes().to_vec())
            } else {
                V::Nil
            },
            if u(7) {
                V::str(self.ruby_host.worker_id.as_bytes().to_vec())
            } else {
                V::Nil
            },
        ];
        let fail = |t: &RubyTemplate, e: crate::ruby::EvalError| {
            format!("failed to expand `{}` : error = {}", t.code, e.message)
        };
        let run = |t: &RubyTemplate| -> Result<V<'_>, String> {
            t.eval(&self.ruby_host, locals.iter().cloned())
                .map_err(|e| fail(t, e))
        };
        let run_value = |t: &RubyTemplate| -> Result<Value, String> {
            t.eval_value(&self.ruby_host, &locals)
                .map_err(|e| fail(t, e))
        };
        fn value<'a>(
            v: &RubyValue,
            run: &dyn Fn(&RubyTemplate) -> Result<V<'a>, String>,
            run_value: &dyn Fn(&RubyTemplate) -> Result<Value, String>,
        ) -> Result<Value, String> {
            Ok(match v {
                RubyValue::Str(t) => run_value(t)?,
                RubyValue::Const(c) => c.clone(),
                RubyValue::Array(a) => Value::Array(
                    a.iter()
                        .map(|x| value(x, run, run_value))
                        .collect::<Result<_, _>>()?,
                ),
                RubyValue::Map(m) => {
                    let mut r = Record::with_capacity(m.len());
                    for (k, x) in m {
                        r.insert(ruby_to_s(&run(k)?), value(x, run, run_value)?);
                    }
                    Value::Map(r)
                }
            })
        }
        let mut out = Vec::with_capacity(map.len());
        for (k, v) in map {
            let key = match k.constant() {
                Some(c) => c.to_vec(),
                None => ruby_to_s(&run(k)?),
            };
            let v = match v {
                RubyValue::Str(t) => run_value(t)?,
                other => value(other, &run, &run_value)?,
            };
            out.push((key, v));
        }
        Ok(out)
    }

    /// The expanded `<record>` pairs, read from the untouched record.
    fn expand(
        &self,
        tags: &TagValues<'_>,
        time: EventTime,
        record: &Record,
    ) -> Vec<(Vec<u8>, Value)> {
        let ex = Expander {
            tags,
            hostname: &self.hostname,
            record,
            time,
            time_s: std::cell::OnceCell::new(),
        };
        self.map
            .iter()
            .map(|(k, v)| (ex.stringify(k), ex.value(v, self.auto_typecast)))
            .collect()
    }

    /// The new event time when `renew_time_key` is set and present in the new record.
    fn renewed_time(
        &self,
        pairs: &[(Vec<u8>, Value)],
        record: &Record,
    ) -> Result<Option<EventTime>, String> {
        let Some(key) = &self.renew_time_key else {
            return Ok(None);
        };
        let from_pairs = pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key.as_bytes())
            .map(|(_, v)| v);
        let value = match from_pairs {
            Some(v) => Some(v),
            None if !self.renew_record || self.keep_keys.iter().any(|k| k == key) => {
                record.get(key)
            }
            None => None,
        };
        match value {
            Some(v) => event_time_from_f64(value_to_f(v)?).map(Some),
            None => Ok(None),
        }
    }
}

impl Filter for RecordTransformer {
    fn filter_stream(&self, tag: &str, es: EventStream) -> EventStream {
        let tags = TagValues::new(tag);
        let lists = match &self.ruby {
            Some(_) => [&tags.parts, &tags.prefix, &tags.suffix].map(|l| {
                l.iter()
                    .map(|x| Value::Str(x.as_bytes().to_vec()))
                    .collect()
            }),
            None => Default::default(),
        };
        let mut out = EventStream::with_capacity(es.len());
        for ev in es {
            let pairs = match &self.ruby {
                Some(map) => match self.ruby_expand(map, &tags, &lists, ev.time, &ev.record) {
                    Ok(p) => p,
                    Err(e) => {
                        self.errors.emit_error_event(tag, ev.time, ev.record, &e);
                        continue;
                    }
                },
                None => self.expand(&tags, ev.time, &ev.record),
            };
            let time = match self.renewed_time(&pairs, &ev.record) {
                Ok(t) => t.unwrap_or(ev.time),
                Err(e) => {
                    self.errors.emit_error_event(tag, ev.time, ev.record, &e);
                    continue;
                }
            };
            let mut record = if self.renew_record {
                let mut r = Record::with_capacity(self.keep_keys.len() + pairs.len());
                for k in &self.keep_keys {
                    if let Some(v) = ev.record.get(k) {
                        r.insert(k.as_bytes().to_vec(), v.clone());
                    }
                }
                r
            } else {
                ev.record
            };
            for (k, v) in pairs {
                record.insert(k, v);
            }
            for d in &self.remove_keys {
                d.delete(&mut record);
            }
            out.push(time, record);
        }
        out
    }
}

/// Fluentd's `RubyPlaceholderExpander#preprocess_map`: JSON-looking values are structures of
/// templates.
fn ruby_value(raw: &str, typed: bool) -> Result<RubyValue, crate::ruby::CompileError> {
    fn conv(v: serde_json::Value, typed: bool) -> Result<RubyValue, crate::ruby::CompileError> {
        Ok(match v {
            serde_json::Value::String(s) => {
                RubyValue::Str(RubyTemplate::new(&s, Wrap::PercentQ, typed, RUBY_LOCALS)?)
            }
            serde_json::Value::Array(a) => RubyValue::Array(
                a.into_iter()
                    .map(|x| conv(x, typed))
                    .collect::<Result<_, _>>()?,
            ),
            serde_json::Value::Object(o) => {
                let mut m = Vec::new();
                for (k, x) in o {
                    m.push((
                        RubyTemplate::new(&k, Wrap::PercentQ, false, RUBY_LOCALS)?,
                        conv(x, typed)?,
                    ));
                }
                RubyValue::Map(m)
            }
            other => RubyValue::Const(crate::util::value_from_json(other)),
        })
    }
    if raw.starts_with('{') || raw.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(raw) {
            return conv(v, typed);
        }
    }
    Ok(RubyValue::Str(RubyTemplate::new(
        raw,
        Wrap::PercentQ,
        typed,
        RUBY_LOCALS,
    )?))
}

fn mark_uses(t: &RubyTemplate, uses: &mut [bool]) {
    for (i, u) in uses.iter_mut().enumerate() {
        *u |= t.uses(i);
    }
}

fn mark_value_uses(v: &RubyValue, uses: &mut [bool]) {
    match v {
        RubyValue::Str(t) => mark_uses(t, uses),
        RubyValue::Array(a) => a.iter().for_each(|x| mark_value_uses(x, uses)),
        RubyValue::Map(m) => m.iter().for_each(|(k, x)| {
            mark_uses(k, uses);
            mark_value_uses(x, uses);
        }),
        RubyValue::Const(_) => {}
    }
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Filter>, ConfigError> {
    Ok(Box::new(RecordTransformer::configure(elem, ctx)?))
}

/// Compact JSON of a record, as out_stdout's json format prints the conformance cases
/// (for the tests of the filters and outputs that compare with them).
#[cfg(test)]
pub(crate) fn record_to_json(r: &Record) -> String {
    fn conv(v: &Value) -> serde_json::Value {
        match v {
            Value::Nil => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
            Value::UInt(u) => (*u).into(),
            Value::Float(f) => (*f).into(),
            Value::Str(s) | Value::Bin(s) => String::from_utf8_lossy(s).into_owned().into(),
            Value::BigInt(d) => d.clone().into(),
            Value::Array(a) => serde_json::Value::Array(a.iter().map(conv).collect()),
            Value::Map(m) => serde_json::Value::Object(
                m.iter()
                    .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), conv(v)))
                    .collect(),
            ),
            Value::Ext(..) => serde_json::Value::Null,
        }
    }
    conv(&Value::Map(r.clone())).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::Emitter;
    use crate::test_util::directive;

    fn elem(conf: &str) -> Element {
        directive(&format!(
            "<filter **>\n  @type record_transformer\n{conf}\n</filter>\n"
        ))
    }

    fn ctx() -> PluginContext {
        let mut c = PluginContext::for_tests();
        c.hostname = "myhost".to_string();
        c
    }

    fn make(conf: &str) -> Box<dyn Filter> {
        match create(&elem(conf), &ctx()) {
            Ok(f) => f,
            Err(e) => panic!("{e}"),
        }
    }

    fn config_error(conf: &str) -> ConfigError {
        match create(&elem(conf), &ctx()) {
            Ok(_) => panic!("accepted"),
            Err(e) => e,
        }
    }

    fn record(json: &str) -> Record {
        match crate::util::value_from_json(serde_json::from_str(json).unwrap()) {
            Value::Map(m) => m,
            _ => panic!("not an object"),
        }
    }

    const INPUT: &str = r#"{"name": "alice", "n": 5, "nested": {"x": 1}, "drop": "me"}"#;

    fn run_at(f: &dyn Filter, tag: &str, time: EventTime, input: &str) -> Vec<(EventTime, String)> {
        f.filter_stream(tag, EventStream::one(time, record(input)))
            .into_iter()
            .map(|e| (e.time, record_to_json(&e.record)))
            .collect()
    }

    fn run(conf: &str, input: &str) -> String {
        let f = make(conf);
        let out = run_at(&*f, "app.web.prod", EventTime::new(1_700_000_000, 0), input);
        assert_eq!(out.len(), 1);
        out[0].1.clone()
    }

    #[test]
    fn case_104_tag_placeholders() {
        let got = run(
            "<record>\n t \"${tag}\"\n p0 \"${tag_parts[0]}\"\n p2 \"${tag_parts[2]}\"\n pm1 \"${tag_parts[-1]}\"\n pre1 \"${tag_prefix[1]}\"\n suf1 \"${tag_suffix[1]}\"\n</record>",
            INPUT,
        );
        assert_eq!(
            got,
            r#"{"name":"alice","n":5,"nested":{"x":1},"drop":"me","t":"app.web.prod","p0":"app","p2":"prod","pm1":"prod","pre1":"app.web","suf1":"web.prod"}"#
        );
    }

    #[test]
    fn case_105_record_placeholder() {
        let got = run(
            "<record>\n greeting 'hi ${record[\"name\"]}!' \n same_n ${record[\"n\"]}\n nested_x ${record[\"nested\"][\"x\"]}\n missing ${record[\"nope\"]}\n missing_in 'a${record[\"nope\"]}b'\n sq_key \"x${record['name']}x\"\n</record>",
            INPUT,
        );
        assert_eq!(
            got,
            r#"{"name":"alice","n":5,"nested":{"x":1},"drop":"me","greeting":"hi alice!","same_n":5,"nested_x":null,"missing":null,"missing_in":"ab","sq_key":"xx"}"#
        );
    }

    #[test]
    fn case_106_time_placeholder_is_ruby_time_to_s() {
        // The conformance runs use TZ=UTC; the formatting is checked with a fixed offset too.
        let f = make("<record>\n when \"${time}\"\n</record>");
        let out = run_at(&*f, "t", EventTime::new(1_700_000_000, 5), r#"{"a": 1}"#);
        let expected = Local
            .timestamp_opt(1_700_000_000, 0)
            .single()
            .map(|d| d.format("%Y-%m-%d %H:%M:%S %z").to_string())
            .unwrap();
        assert_eq!(out[0].1, format!(r#"{{"a":1,"when":"{expected}"}}"#));
        let utc = chrono::FixedOffset::east_opt(0)
            .and_then(|z| z.timestamp_opt(1_700_000_000, 0).single())
            .map(|d| d.format("%Y-%m-%d %H:%M:%S %z").to_string());
        assert_eq!(utc.as_deref(), Some("2023-11-14 22:13:20 +0000"));
    }

    #[test]
    fn case_107_hostname_placeholder() {
        let got = run("<record>\n h \"${hostname}\"\n</record>", INPUT);
        assert_eq!(
            got,
            r#"{"name":"alice","n":5,"nested":{"x":1},"drop":"me","h":"myhost"}"#
        );
    }

    #[test]
    fn case_108_remove_keys() {
        let got = run(
            "remove_keys drop,nope\n<record>\n added 1\n</record>",
            INPUT,
        );
        assert_eq!(
            got,
            r#"{"name":"alice","n":5,"nested":{"x":1},"added":"1"}"#
        );
    }

    #[test]
    fn remove_keys_accepts_record_accessor_paths() {
        let got = run("remove_keys $.nested.x", INPUT);
        assert_eq!(got, r#"{"name":"alice","n":5,"nested":{},"drop":"me"}"#);
    }

    #[test]
    fn case_109_renew_record_with_keep_keys() {
        let got = run(
            "renew_record true\nkeep_keys name,n\n<record>\n added 1\n</record>",
            INPUT,
        );
        assert_eq!(got, r#"{"name":"alice","n":5,"added":"1"}"#);
    }

    #[test]
    fn case_110_renew_record() {
        let got = run(
            "renew_record true\n<record>\n only '${record[\"name\"]}'\n</record>",
            INPUT,
        );
        assert_eq!(got, r#"{"only":"alice"}"#);
    }

    #[test]
    fn case_111_auto_typecast() {
        let got = run(
            "auto_typecast true\n<record>\n n ${record[\"n\"]}\n h ${record[\"nested\"]}\n lit 42\n lit_true true\n</record>",
            INPUT,
        );
        assert_eq!(
            got,
            r#"{"name":"alice","n":5,"nested":{"x":1},"drop":"me","h":{"x":1},"lit":"42","lit_true":"true"}"#
        );
    }

    #[test]
    fn auto_typecast_false_stringifies() {
        let got = run(
            "auto_typecast false\nrenew_record true\n<record>\n n ${record[\"n\"]}\n m ${record[\"nope\"]}\n</record>",
            INPUT,
        );
        assert_eq!(got, r#"{"n":"5","m":""}"#);
    }

    #[test]
    fn case_112_overwrite_keeps_position() {
        let got = run("<record>\n zz new\n name bob\n</record>", INPUT);
        assert_eq!(
            got,
            r#"{"name":"bob","n":5,"nested":{"x":1},"drop":"me","zz":"new"}"#
        );
    }

    #[test]
    fn case_113_placeholder_in_key() {
        let got = run("<record>\n ${tag_parts[1]}_key \"v\"\n</record>", INPUT);
        assert_eq!(
            got,
            r#"{"name":"alice","n":5,"nested":{"x":1},"drop":"me","web_key":"v"}"#
        );
    }

    #[test]
    fn case_114_json_looking_values() {
        let got = run(
            "<record>\n arr [1, \"x\"]\n obj {\"a\": \"${tag}\", \"n\": [1]}\n</record>",
            INPUT,
        );
        assert_eq!(
            got,
            r#"{"name":"alice","n":5,"nested":{"x":1},"drop":"me","arr":[1,"x"],"obj":{"a":"app.web.prod","n":[1]}}"#
        );
    }

    #[test]
    fn broken_json_stays_a_string_and_values_read_the_original_record() {
        let got = run(
            "renew_record true\n<record>\n name x\n b ${record[\"name\"]}\n c \"[1,\"\n</record>",
            INPUT,
        );
        assert_eq!(got, r#"{"name":"x","b":"alice","c":"[1,"}"#);
    }

    #[test]
    fn several_record_sections_merge_and_unknowns_are_empty() {
        let got = run(
            "renew_record true\n<record>\n a 1\n b x__FOO__y${nope}z\n</record>\n<record>\n a 2\n c ${tag_parts[7]}\n d ${tag_prefix[-1]}\n</record>",
            INPUT,
        );
        assert_eq!(got, r#"{"a":"2","b":"xyz","c":null,"d":"app.web.prod"}"#);
    }

    #[test]
    fn renew_time_key_sets_the_event_time_from_the_new_record() {
        let f = make("renew_time_key t\n<record>\n t 1700000000.123\n</record>");
        let out = run_at(&*f, "t", EventTime::new(5, 0), r#"{"a": 1}"#);
        // Ruby truncates the float's exact value: 1700000000.1229999065...
        assert_eq!(out[0].0, EventTime::new(1_700_000_000, 122_999_906));
        let f = make("renew_time_key a");
        let out = run_at(&*f, "t", EventTime::new(5, 0), r#"{"a": 12}"#);
        assert_eq!(out[0].0, EventTime::new(12, 0));
        let out = run_at(&*f, "t", EventTime::new(5, 0), r#"{"b": 12}"#);
        assert_eq!(out[0].0, EventTime::new(5, 0));
    }

    #[test]
    fn renew_time_key_failure_is_an_error_event() {
        let err = Emitter::collector("@ERROR");
        let mut c = ctx();
        c.errors = ErrorSink::to_label(err.clone());
        let f = create(&elem("renew_time_key a"), &c).unwrap();
        let out = f.filter_stream(
            "t",
            EventStream::one(EventTime::new(5, 0), record(r#"{"a": true}"#)),
        );
        assert!(out.is_empty());
        let got = err.collected();
        assert_eq!(got.len(), 1);
        assert_eq!(record_to_json(&got[0].1.events[0].record), r#"{"a":true}"#);
    }

    #[test]
    fn event_time_from_float_truncates_like_ruby() {
        assert_eq!(event_time_from_f64(1.5), Ok(EventTime::new(1, 500_000_000)));
        assert_eq!(event_time_from_f64(1.1), Ok(EventTime::new(1, 100_000_000)));
        assert_eq!(
            event_time_from_f64(-1.5),
            Ok(EventTime::new(-2, 500_000_000))
        );
        assert_eq!(event_time_from_f64(0.0), Ok(EventTime::new(0, 0)));
        assert_eq!(event_time_from_f64(1e-300), Ok(EventTime::new(0, 0)));
        assert!(event_time_from_f64(f64::NAN).is_err());
        assert!(event_time_from_f64(1e300).is_err());
    }

    #[test]
    fn case_044_keep_keys_without_renew_record_is_a_config_error() {
        let e = config_error("keep_keys a");
        assert_eq!(e.message, "`renew_record` must be true to use `keep_keys`");
        assert_eq!(e.location.map(|l| l.line), Some(3));
    }

    #[test]
    fn enable_ruby_refuses_unknown_methods_at_load_with_the_location() {
        let e = config_error("enable_ruby true\n<record>\n a ${tag.frobnicate}\n</record>");
        assert!(
            e.message.contains("undefined method 'frobnicate'")
                && e.message.contains("tag.frobnicate"),
            "{}",
            e.message
        );
        assert_eq!(e.location.map(|l| l.line), Some(5));
        let e = config_error("enable_ruby true\n<record>\n a ${record[}\n</record>");
        assert!(e.message.contains("syntax error"), "{}", e.message);
    }

    #[test]
    fn enable_ruby_issue_examples() {
        let f = make(
            "enable_ruby true\nrenew_record true\n<record>\n app ${record[\"kubernetes\"][\"labels\"][\"app\"]}\n ns ${record.dig(\"kubernetes\", \"namespace_name\")}\n host ${record[\"host\"] || tag_parts[1]}\n level ${record[\"code\"].to_i >= 500 ? \"error\" : \"ok\"}\n at ${Time.at(time).utc.strftime(\"%Y-%m-%dT%H:%M:%S\")}\n ts ${Time.strptime(record[\"ts\"], \"%Y-%m-%dT%H:%M:%S.%N%z\").iso8601}\n msg ${record[\"msg\"].gsub(/\\s+/, \" \")}\n h2 ${if record['host']; record['host']; elsif tag_parts[1]; \"#{tag_parts[1]}\"; else 'unknown'; end}\n</record>",
        );
        let out = run_at(
            &*f,
            "app.web.prod",
            EventTime::new(1_700_000_000, 0),
            r#"{"kubernetes": {"labels": {"app": "shop"}, "namespace_name": "prod"}, "code": "503", "ts": "2023-11-14T22:13:20.123+0900", "msg": "a  b\t c"}"#,
        );
        assert_eq!(
            out[0].1,
            r#"{"app":"shop","ns":"prod","host":"web","level":"error","at":"2023-11-14T22:13:20","ts":"2023-11-14T22:13:20+09:00","msg":"a b c","h2":"web"}"#
        );
    }

    #[test]
    fn enable_ruby_exception_makes_an_error_event() {
        let err = Emitter::collector("@ERROR");
        let mut c = ctx();
        c.errors = ErrorSink::to_label(err.clone());
        let f = create(
            &elem(
                "enable_ruby true\n<record>\n a ${record[\"a\"].upcase}\n b ${loop {}}\n</record>",
            ),
            &c,
        )
        .unwrap();
        let out = f.filter_stream(
            "t",
            EventStream::one(EventTime::new(5, 0), record(r#"{"a": "x"}"#)),
        );
        assert!(out.is_empty());
        let out = f.filter_stream(
            "t",
            EventStream::one(EventTime::new(5, 0), record(r#"{"z": 1}"#)),
        );
        assert!(out.is_empty());
        assert_eq!(err.collected().len(), 2);
    }

    #[test]
    fn enable_ruby_with_plain_expressions_behaves_as_ruby() {
        let got = run(
            "enable_ruby true\nrenew_record true\n<record>\n a ${record['name']}\n b __TAG__\n c ${tag_parts[-1]}\n</record>",
            INPUT,
        );
        assert_eq!(got, r#"{"a":"alice","b":"__TAG__","c":"prod"}"#);
    }
}

/// Throughput of five `enable_ruby` expressions against five plain placeholders (not a timed
/// assertion: `cargo test --release --lib bench_ruby_vs_plain -- --ignored --nocapture`).
#[cfg(test)]
mod bench {
    use super::*;
    use crate::test_util::directive;

    fn filter(conf: &str) -> Box<dyn Filter> {
        let elem = directive(&format!(
            "<filter **>\n  @type record_transformer\n{conf}\n</filter>\n"
        ));
        match create(&elem, &PluginContext::for_tests()) {
            Ok(f) => f,
            Err(e) => panic!("{e}"),
        }
    }

    fn events_per_sec(f: &dyn Filter, n: usize) -> f64 {
        let rec = match crate::util::value_from_json(
            serde_json::from_str(
                r#"{"host": "web-1", "code": "503", "msg": "GET  /api/v1/users   took 12ms", "kubernetes": {"namespace_name": "prod", "labels": {"app": "shop"}}, "n": 7}"#,
            )
            .unwrap(),
        ) {
            Value::Map(m) => m,
            _ => unreachable!(),
        };
        let batch = 1000;
        let start = std::time::Instant::now();
        let mut done = 0;
        while done < n {
            let mut es = EventStream::with_capacity(batch);
            for _ in 0..batch {
                es.push(EventTime::new(1_700_000_000, 0), rec.clone());
            }
            let out = f.filter_stream("app.web.access", es);
            assert_eq!(out.len(), batch);
            done += batch;
        }
        done as f64 / start.elapsed().as_secs_f64()
    }

    #[test]
    #[ignore]
    fn bench_ruby_vs_plain() {
        let plain = filter(
            "<record>\n a ${record[\"host\"]}\n b ${tag_parts[1]}\n c ${record[\"code\"]}\n d x-${tag}\n e ${hostname}\n</record>",
        );
        let ruby = filter(
            "enable_ruby true\n<record>\n a ${record[\"kubernetes\"][\"labels\"][\"app\"]}\n b ${record[\"host\"] || tag_parts[1]}\n c ${record[\"code\"].to_i >= 500 ? \"error\" : \"ok\"}\n d ${record[\"msg\"].gsub(/\\s+/, \" \")}\n e ${Time.at(time).utc.strftime(\"%Y-%m-%dT%H:%M:%S\")}\n</record>",
        );
        let n = 200_000;
        // Warm up, then measure.
        events_per_sec(&*plain, 10_000);
        events_per_sec(&*ruby, 10_000);
        let p = events_per_sec(&*plain, n);
        let r = events_per_sec(&*ruby, n);
        for e in [
            "${record[\"kubernetes\"][\"labels\"][\"app\"]}",
            "${record[\"host\"] || tag_parts[1]}",
            "${record[\"code\"].to_i >= 500 ? \"error\" : \"ok\"}",
            "${record[\"msg\"].gsub(/\\s+/, \" \")}",
            "${Time.at(time).utc.strftime(\"%Y-%m-%dT%H:%M:%S\")}",
            "${record[\"host\"]}",
        ] {
            let f = filter(&format!("enable_ruby true\n<record>\n a {e}\n</record>"));
            println!("  {e}: {:.0} events/s", events_per_sec(&*f, n));
        }
        println!(
            "record_transformer: plain placeholders {p:.0} events/s, enable_ruby {r:.0} events/s, ratio {:.2}x",
            p / r
        );
    }
}
