//! `@type record_transformer` (filter): adds or rewrites fields with placeholders.
//!
//! The `<record>` map is compiled once at configure time into templates; an event only looks
//! placeholders up. Placeholder semantics are Fluentd's non-Ruby `PlaceholderExpander`: a match
//! of `${[^}]+}` or `__[A-Z_]+__` is looked up in a table of `${tag}`, `${tag_parts[N]}` (and
//! negative N), `${tag_prefix[N]}`, `${tag_suffix[N]}`, `${hostname}`, `${time}` and
//! `${record["KEY"]}` for every top-level key; anything else is nil. So `${record["a"]["b"]}`
//! and `${record['a']}` are nil, and a value that is exactly one placeholder keeps the
//! placeholder's type (with `auto_typecast`, the default).

use serde::Deserialize;

use super::{Filter, PluginContext};
use crate::config_parser::{ConfigError, Element, Nested, ParamValue};
use crate::event::{EventStream, EventTime, Record, Value};
use crate::record_accessor::RecordAccessor;
use crate::router::ErrorSink;
use crate::ruby::template::{Template as RubyTemplate, Wrap};
use crate::ruby::value::{to_s as ruby_to_s, Time as RubyTime};
use crate::ruby::V;

#[cfg(test)]
mod bench;
mod placeholder;
#[cfg(test)]
mod tests;

use placeholder::{Compiler, Expander, Placeholder, TValue, TagValues, Template};

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
