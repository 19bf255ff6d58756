//! record_transformer's placeholders without Ruby: `<record>` values compiled into templates at
//! configure time, and their expansion per event.

use std::borrow::Cow;

use chrono::{Local, TimeZone};
use regex::bytes::Regex;

use crate::event::{EventTime, Record, Value};

/// A placeholder, resolved at configure time to what it looks up.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Placeholder {
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
pub(super) enum Segment {
    Lit(Vec<u8>),
    Ph(Placeholder),
}

/// A string with placeholders.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Template {
    pub(super) segments: Vec<Segment>,
    /// The whole string is one placeholder (its value is used as is, when allowed).
    pub(super) single: bool,
}

/// A `<record>` value: a template string, or a JSON structure whose strings are templates.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum TValue {
    Str(Template),
    Map(Vec<(Template, TValue)>),
    Array(Vec<TValue>),
    Const(Value),
}

/// Ruby's canonical `Integer#to_s` form of an index, as the placeholder table spells keys.
pub(super) fn canonical_index(s: &str) -> Option<i64> {
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
pub(super) fn classify(inner: &str, ruby: bool) -> Placeholder {
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

pub(super) struct Compiler {
    pub(super) any: Regex,
    pub(super) single: Regex,
    pub(super) ruby: bool,
    /// The placeholders found, for configure-time diagnostics.
    pub(super) seen: Vec<(String, Placeholder)>,
}

impl Compiler {
    pub(super) fn new(ruby: bool) -> Result<Compiler, String> {
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

    pub(super) fn template(&mut self, s: &str) -> Template {
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

    pub(super) fn json(&mut self, v: serde_json::Value) -> TValue {
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
    pub(super) fn value(&mut self, raw: &str) -> TValue {
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
pub(super) fn split_tag(tag: &str) -> Vec<&str> {
    let mut parts: Vec<&str> = tag.split('.').collect();
    while parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    parts
}

pub(super) fn pick(list: &[String], i: i64) -> Option<&str> {
    let len = list.len() as i64;
    let idx = if i < 0 { len + i } else { i };
    if (0..len).contains(&idx) {
        list.get(idx as usize).map(String::as_str)
    } else {
        None
    }
}

/// Per-stream placeholder values.
pub(super) struct TagValues<'a> {
    pub(super) tag: &'a str,
    pub(super) parts: Vec<String>,
    pub(super) prefix: Vec<String>,
    pub(super) suffix: Vec<String>,
}

impl<'a> TagValues<'a> {
    pub(super) fn new(tag: &'a str) -> Self {
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
pub(super) fn ruby_time_to_s(t: EventTime) -> String {
    match Local.timestamp_opt(t.sec, 0).single() {
        Some(dt) => dt.format("%Y-%m-%d %H:%M:%S %z").to_string(),
        None => String::new(),
    }
}

/// One placeholder's value: borrowed text, or a record value.
pub(super) enum Resolved<'a> {
    Text(Cow<'a, [u8]>),
    Val(&'a Value),
    Nil,
}

pub(super) struct Expander<'a> {
    pub(super) tags: &'a TagValues<'a>,
    pub(super) hostname: &'a str,
    pub(super) record: &'a Record,
    pub(super) time: EventTime,
    pub(super) time_s: std::cell::OnceCell<String>,
}

impl<'a> Expander<'a> {
    pub(super) fn resolve(&self, ph: &'a Placeholder) -> Resolved<'_> {
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
    pub(super) fn stringify(&self, t: &'a Template) -> Vec<u8> {
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

    pub(super) fn string_value(&self, t: &'a Template, typecast: bool) -> Value {
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

    pub(super) fn value(&self, v: &'a TValue, typecast: bool) -> Value {
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
