//! The `<inject>` section: hostname, worker id, tag and time keys added to each record before an
//! output formats it (Fluentd's `plugin_helper/inject.rb`). The v0 flat parameters
//! (`include_time_key`, `tag_key`, ...) become this section in `config_parser::compat`.

use serde::Deserialize;

use super::PluginContext;
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventStream, EventTime, Record, Value};
use crate::timefmt::{TimeFormatter, TimeZoneSpec};

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InjectTimeType {
    #[default]
    Float,
    Unixtime,
    UnixtimeMillis,
    UnixtimeMicros,
    UnixtimeNanos,
    String,
}

#[derive(Deserialize)]
struct InjectConf {
    hostname_key: Option<String>,
    hostname: Option<String>,
    worker_id_key: Option<String>,
    tag_key: Option<String>,
    time_key: Option<String>,
    #[serde(default)]
    time_type: InjectTimeType,
    time_format: Option<String>,
    /// Default true.
    localtime: Option<bool>,
    /// Default false.
    utc: Option<bool>,
    timezone: Option<String>,
    /// Only meaningful for parsing; accepted for parity with Fluentd's time parameters.
    #[serde(default)]
    #[allow(dead_code)]
    time_format_fallbacks: Vec<String>,
}

enum TimeValue {
    Float,
    Unixtime,
    Millis,
    Micros,
    Nanos,
    String(TimeFormatter),
}

/// A configured `<inject>` that adds at least one key.
pub struct Inject {
    hostname: Option<(Vec<u8>, Value)>,
    worker_id: Option<(Vec<u8>, Value)>,
    tag_key: Option<Vec<u8>>,
    time: Option<(Vec<u8>, TimeValue)>,
}

impl std::fmt::Debug for Inject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inject")
            .field("hostname", &self.hostname)
            .field("worker_id", &self.worker_id)
            .field("tag_key", &self.tag_key)
            .field("time_key", &self.time.as_ref().map(|t| &t.0))
            .finish()
    }
}

impl Inject {
    /// Builds from an `<inject>` section; None when there is none or it injects nothing.
    pub fn from_section(
        section: Option<&Element>,
        ctx: &PluginContext,
    ) -> Result<Option<Inject>, ConfigError> {
        let Some(elem) = section else {
            return Ok(None);
        };
        let c: InjectConf = ctx.configure(elem, "inject")?;
        let hostname = c.hostname_key.map(|k| {
            let h = c.hostname.unwrap_or_else(|| {
                tracing::info!(
                    "using hostname for specified field host_key=\"{}\" host_name=\"{}\"",
                    k,
                    ctx.hostname
                );
                ctx.hostname.clone()
            });
            (k.into_bytes(), Value::str(h))
        });
        let worker_id = c
            .worker_id_key
            .map(|k| (k.into_bytes(), Value::Int(ctx.worker_id as i64)));
        let time = match c.time_key {
            None => {
                if c.time_format.is_some() {
                    tracing::warn!("'time_format' specified without 'time_key', will be ignored");
                }
                None
            }
            Some(k) => {
                let v = match c.time_type {
                    InjectTimeType::Float => TimeValue::Float,
                    InjectTimeType::Unixtime => TimeValue::Unixtime,
                    InjectTimeType::UnixtimeMillis => TimeValue::Millis,
                    InjectTimeType::UnixtimeMicros => TimeValue::Micros,
                    InjectTimeType::UnixtimeNanos => TimeValue::Nanos,
                    InjectTimeType::String => {
                        let local = c.localtime.unwrap_or(true) && !c.utc.unwrap_or(false);
                        let zone =
                            TimeZoneSpec::from_params(Some(local), None, c.timezone.as_deref())
                                .map_err(|m| elem.error(m))?;
                        TimeValue::String(TimeFormatter::new(c.time_format.as_deref(), zone))
                    }
                };
                Some((k.into_bytes(), v))
            }
        };
        let tag_key = c.tag_key.map(String::into_bytes);
        if hostname.is_none() && worker_id.is_none() && tag_key.is_none() && time.is_none() {
            return Ok(None);
        }
        Ok(Some(Inject {
            hostname,
            worker_id,
            tag_key,
            time,
        }))
    }

    /// From an output's `<inject>` (the compat pass has turned v0 flat parameters into one).
    pub fn from_owner(owner: &Element, ctx: &PluginContext) -> Result<Option<Inject>, ConfigError> {
        Inject::from_section(owner.child("inject"), ctx)
    }

    /// Adds the keys, in Fluentd's order: hostname, worker id, tag, time.
    pub fn apply(&self, tag: &str, time: EventTime, record: &mut Record) {
        if let Some((k, v)) = &self.hostname {
            record.insert(k.as_slice(), v.clone());
        }
        if let Some((k, v)) = &self.worker_id {
            record.insert(k.as_slice(), v.clone());
        }
        if let Some(k) = &self.tag_key {
            record.insert(k.as_slice(), Value::str(tag));
        }
        if let Some((k, tv)) = &self.time {
            record.insert(k.as_slice(), time_value(tv, time));
        }
    }

    pub fn apply_stream(&self, tag: &str, es: &mut EventStream) {
        for ev in es.events.iter_mut() {
            self.apply(tag, ev.time, &mut ev.record);
        }
    }
}

fn total_nanos(t: EventTime) -> i128 {
    t.sec as i128 * 1_000_000_000 + t.nsec as i128
}

fn time_value(tv: &TimeValue, t: EventTime) -> Value {
    match tv {
        // `time.to_r.truncate(6).to_f`: microseconds, truncated toward zero.
        TimeValue::Float => {
            let micros = total_nanos(t) / 1_000;
            Value::Float(micros as f64 / 1e6)
        }
        TimeValue::Unixtime => Value::Int(t.sec),
        TimeValue::Millis => Value::Int(t.sec * 1_000 + (t.nsec / 1_000_000) as i64),
        TimeValue::Micros => Value::Int(t.sec * 1_000_000 + (t.nsec / 1_000) as i64),
        TimeValue::Nanos => Value::Int(t.sec * 1_000_000_000 + t.nsec as i64),
        TimeValue::String(f) => Value::Str(f.format(t).into_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::formatter_json::test_util::*;
    use super::*;
    use crate::json::encode::record_to_vec;

    fn inject(params: &[(&str, &str)]) -> Option<Inject> {
        let mut ctx = PluginContext::for_tests();
        ctx.hostname = "myhost".into();
        ctx.worker_id = 3;
        Inject::from_section(Some(&section("inject", params)), &ctx)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn applied(params: &[(&str, &str)], t: EventTime) -> String {
        let mut r = rec(vec![("a", Value::Int(1))]);
        inject(params).expect("enabled").apply("t", t, &mut r);
        String::from_utf8(record_to_vec(&r)).unwrap()
    }

    const T: EventTime = EventTime::new(1_700_000_000, 0);

    #[test]
    fn case_092_tag_and_float_time() {
        assert_eq!(
            applied(&[("tag_key", "the_tag"), ("time_key", "the_time")], T),
            r#"{"a":1,"the_tag":"t","the_time":1700000000.0}"#
        );
    }

    #[test]
    fn case_093_string_time_with_timezone() {
        let p = [
            ("time_key", "t1"),
            ("time_type", "string"),
            ("time_format", "%Y-%m-%dT%H:%M:%S.%3N%z"),
            ("timezone", "+09:00"),
        ];
        assert_eq!(
            applied(&p, T),
            r#"{"a":1,"t1":"2023-11-15T07:13:20.000+0900"}"#
        );
    }

    #[test]
    fn case_094_unixtime_and_case_187_utc_format() {
        let t = EventTime::new(1_700_000_000, 500_000_000);
        assert_eq!(
            applied(&[("time_key", "tu"), ("time_type", "unixtime")], t),
            r#"{"a":1,"tu":1700000000}"#
        );
        let p = [
            ("time_key", "at"),
            ("time_type", "string"),
            ("time_format", "%Y-%m-%dT%H:%M:%SZ"),
            ("tag_key", "tg"),
            ("utc", "true"),
        ];
        assert_eq!(
            applied(&p, T),
            r#"{"a":1,"tg":"t","at":"2023-11-14T22:13:20Z"}"#
        );
        let p = [
            ("time_key", "at"),
            ("time_type", "string"),
            ("localtime", "false"),
        ];
        assert_eq!(applied(&p, T), r#"{"a":1,"at":"2023-11-14T22:13:20Z"}"#);
    }

    #[test]
    fn case_095_hostname_and_worker_id() {
        assert_eq!(
            applied(&[("hostname_key", "host"), ("worker_id_key", "w")], T),
            r#"{"a":1,"host":"myhost","w":3}"#
        );
        assert_eq!(
            applied(&[("hostname_key", "host"), ("hostname", "given")], T),
            r#"{"a":1,"host":"given"}"#
        );
    }

    #[test]
    fn numeric_time_types() {
        let t = EventTime::new(1_700_000_000, 123_456_789);
        let one = |ty: &str| applied(&[("time_key", "x"), ("time_type", ty)], t);
        assert_eq!(one("float"), r#"{"a":1,"x":1700000000.123456}"#);
        assert_eq!(one("unixtime_millis"), r#"{"a":1,"x":1700000000123}"#);
        assert_eq!(one("unixtime_micros"), r#"{"a":1,"x":1700000000123456}"#);
        assert_eq!(one("unixtime_nanos"), r#"{"a":1,"x":1700000000123456789}"#);
    }

    #[test]
    fn existing_key_keeps_its_position() {
        let mut r = rec(vec![("tag", Value::str("old")), ("b", Value::Int(2))]);
        inject(&[("tag_key", "tag")])
            .expect("enabled")
            .apply("new", T, &mut r);
        assert_eq!(
            String::from_utf8(record_to_vec(&r)).unwrap(),
            r#"{"tag":"new","b":2}"#
        );
    }

    #[test]
    fn nothing_to_inject_is_none_and_bad_values_are_errors() {
        assert!(inject(&[]).is_none());
        assert!(inject(&[("time_format", "%s")]).is_none());
        let ctx = PluginContext::for_tests();
        let e = section("inject", &[("time_key", "t"), ("time_type", "bogus")]);
        assert!(Inject::from_section(Some(&e), &ctx).is_err());
        let e = section(
            "inject",
            &[
                ("time_key", "t"),
                ("time_type", "string"),
                ("timezone", "X"),
            ],
        );
        let msg = Inject::from_section(Some(&e), &ctx)
            .err()
            .map(|e| e.message);
        assert_eq!(msg.as_deref(), Some("Unsupported timezone 'X'"));
    }
}
