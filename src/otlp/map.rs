//! Fluentd records ↔ OTLP LogRecords.
//!
//! [`explode`] turns a request into one event per LogRecord; [`RecordMapping::build_request`]
//! turns ordinary records into a request. Both use the same record keys ([`Keys`]), so an
//! exploded event maps back to the LogRecord it came from.

use std::collections::HashMap;

use super::{
    any_value, AnyValue, ArrayValue, ExportLogsServiceRequest, InstrumentationScope, KeyValue,
    KeyValueList, LogRecord, Resource, ResourceLogs, ScopeLogs,
};
use crate::event::{EventTime, Record, Value};
use crate::record_accessor::RecordAccessor;

/// The record keys of an exploded LogRecord.
pub mod keys {
    pub const BODY: &str = "body";
    pub const SEVERITY_TEXT: &str = "severity_text";
    pub const SEVERITY_NUMBER: &str = "severity_number";
    pub const TRACE_ID: &str = "trace_id";
    pub const SPAN_ID: &str = "span_id";
    pub const FLAGS: &str = "flags";
    pub const EVENT_NAME: &str = "event_name";
    pub const ATTRIBUTES: &str = "attributes";
    pub const RESOURCE: &str = "resource";
    pub const SCOPE: &str = "scope";
}

pub fn any_to_value(v: &AnyValue) -> Value {
    match &v.value {
        None => Value::Nil,
        Some(any_value::Value::StringValue(s)) => Value::Str(s.clone().into_bytes()),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::IntValue(i)) => Value::Int(*i),
        Some(any_value::Value::DoubleValue(f)) => Value::Float(*f),
        Some(any_value::Value::BytesValue(b)) => Value::Bin(b.clone()),
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(any_to_value).collect())
        }
        Some(any_value::Value::KvlistValue(kv)) => Value::Map(attributes_to_record(&kv.values)),
        // An index into a profiles string table; logs carry no such table.
        Some(any_value::Value::StringValueStrindex(_)) => Value::Nil,
    }
}

pub fn attributes_to_record(kvs: &[KeyValue]) -> Record {
    let mut r = Record::with_capacity(kvs.len());
    for kv in kvs {
        let v = kv.value.as_ref().map(any_to_value).unwrap_or(Value::Nil);
        r.insert(kv.key.clone().into_bytes(), v);
    }
    r
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn value_to_any(v: &Value) -> AnyValue {
    use any_value::Value as A;
    let value = match v {
        Value::Nil => None,
        Value::Bool(b) => Some(A::BoolValue(*b)),
        Value::Int(i) => Some(A::IntValue(*i)),
        Value::UInt(u) => Some(A::StringValue(u.to_string())),
        Value::BigInt(s) => Some(A::StringValue(s.clone())),
        Value::Float(f) => Some(A::DoubleValue(*f)),
        Value::Str(s) => Some(A::StringValue(text(s))),
        Value::Bin(b) => Some(A::BytesValue(b.clone())),
        Value::Ext(_, b) => Some(A::BytesValue(b.clone())),
        Value::Array(a) => Some(A::ArrayValue(ArrayValue {
            values: a.iter().map(value_to_any).collect(),
        })),
        Value::Map(m) => Some(A::KvlistValue(KeyValueList {
            values: record_to_attributes(m),
        })),
    };
    AnyValue { value }
}

pub fn record_to_attributes(r: &Record) -> Vec<KeyValue> {
    r.iter()
        .map(|(k, v)| KeyValue {
            key: text(k),
            value: Some(value_to_any(v)),
            ..Default::default()
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &[u8], len: usize) -> Option<Vec<u8>> {
    if s.len() != len * 2 {
        return None;
    }
    (0..len)
        .map(|i| {
            let d = std::str::from_utf8(&s[i * 2..i * 2 + 2]).ok()?;
            u8::from_str_radix(d, 16).ok()
        })
        .collect()
}

fn nanos(t: EventTime) -> u64 {
    (t.sec.max(0) as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.nsec as u64)
}

fn from_nanos(ns: u64) -> EventTime {
    EventTime::new((ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as u32)
}

/// One event per LogRecord: time from `time_unix_nano`, else `observed_time_unix_nano`, else
/// `now`; the record holds the body, severity, ids, attributes, resource and scope attributes
/// (empty fields left out).
pub fn explode(req: &ExportLogsServiceRequest, now: EventTime) -> Vec<(EventTime, Record)> {
    let mut out = Vec::new();
    for rl in &req.resource_logs {
        let resource = rl
            .resource
            .as_ref()
            .map(|r| attributes_to_record(&r.attributes))
            .unwrap_or_default();
        for sl in &rl.scope_logs {
            let mut scope = Record::new();
            if let Some(s) = &sl.scope {
                if !s.name.is_empty() {
                    scope.insert("name", Value::from(s.name.as_str()));
                }
                if !s.version.is_empty() {
                    scope.insert("version", Value::from(s.version.as_str()));
                }
                if !s.attributes.is_empty() {
                    scope.insert(
                        keys::ATTRIBUTES,
                        Value::Map(attributes_to_record(&s.attributes)),
                    );
                }
            }
            for lr in &sl.log_records {
                let time = match (lr.time_unix_nano, lr.observed_time_unix_nano) {
                    (0, 0) => now,
                    (0, o) => from_nanos(o),
                    (t, _) => from_nanos(t),
                };
                let mut r = Record::with_capacity(10);
                if let Some(b) = &lr.body {
                    r.insert(keys::BODY, any_to_value(b));
                }
                if !lr.severity_text.is_empty() {
                    r.insert(keys::SEVERITY_TEXT, Value::from(lr.severity_text.as_str()));
                }
                if lr.severity_number != 0 {
                    r.insert(keys::SEVERITY_NUMBER, Value::Int(lr.severity_number as i64));
                }
                if !lr.trace_id.is_empty() {
                    r.insert(keys::TRACE_ID, Value::from(hex(&lr.trace_id)));
                }
                if !lr.span_id.is_empty() {
                    r.insert(keys::SPAN_ID, Value::from(hex(&lr.span_id)));
                }
                if lr.flags != 0 {
                    r.insert(keys::FLAGS, Value::Int(lr.flags as i64));
                }
                if !lr.event_name.is_empty() {
                    r.insert(keys::EVENT_NAME, Value::from(lr.event_name.as_str()));
                }
                if !lr.attributes.is_empty() {
                    r.insert(
                        keys::ATTRIBUTES,
                        Value::Map(attributes_to_record(&lr.attributes)),
                    );
                }
                if !resource.is_empty() {
                    r.insert(keys::RESOURCE, Value::Map(resource.clone()));
                }
                if !scope.is_empty() {
                    r.insert(keys::SCOPE, Value::Map(scope.clone()));
                }
                out.push((time, r));
            }
        }
    }
    out
}

/// The severity number OTLP gives a level name (`warn` → 13), for records that name only a
/// level.
pub fn severity_from_text(s: &[u8]) -> i32 {
    match s.to_ascii_lowercase().as_slice() {
        b"trace" => 1,
        b"debug" => 5,
        b"info" | b"information" | b"notice" => 9,
        b"warn" | b"warning" => 13,
        b"error" | b"err" => 17,
        b"fatal" | b"critical" | b"crit" | b"emerg" | b"alert" | b"panic" => 21,
        _ => 0,
    }
}

/// How ordinary records become LogRecords (the output's `convert_records`).
#[derive(Debug, Clone)]
pub struct RecordMapping {
    /// The first of these keys present becomes the body; none: the whole record is the body.
    pub body_keys: Vec<String>,
    pub severity_text_key: String,
    pub severity_number_key: String,
    pub trace_id_key: String,
    pub span_id_key: String,
    pub trace_flags_key: String,
    /// A map merged into the attributes.
    pub attributes_key: String,
    /// A map of resource attributes.
    pub resource_key: String,
    /// A map `{name, version, attributes}` naming the instrumentation scope.
    pub scope_key: String,
    /// Record fields moved into the resource attributes (named by their path, `$.` dropped).
    pub resource_attribute_keys: Vec<RecordAccessor>,
    /// Fixed resource attributes added to every resource.
    pub resource_attributes: Vec<(String, String)>,
    /// Attribute holding the tag; empty: none.
    pub tag_attribute: String,
}

impl Default for RecordMapping {
    fn default() -> Self {
        RecordMapping {
            body_keys: vec![keys::BODY.into(), "message".into(), "log".into()],
            severity_text_key: keys::SEVERITY_TEXT.into(),
            severity_number_key: keys::SEVERITY_NUMBER.into(),
            trace_id_key: keys::TRACE_ID.into(),
            span_id_key: keys::SPAN_ID.into(),
            trace_flags_key: keys::FLAGS.into(),
            attributes_key: keys::ATTRIBUTES.into(),
            resource_key: keys::RESOURCE.into(),
            scope_key: keys::SCOPE.into(),
            resource_attribute_keys: Vec::new(),
            resource_attributes: Vec::new(),
            tag_attribute: "fluent.tag".into(),
        }
    }
}

fn attr_name(acc: &RecordAccessor) -> String {
    let s = acc.source();
    s.strip_prefix("$.").unwrap_or(s).to_string()
}

fn id_bytes(v: &Value, len: usize) -> Option<Vec<u8>> {
    match v {
        Value::Str(s) => unhex(s, len),
        Value::Bin(b) if b.len() == len => Some(b.clone()),
        _ => None,
    }
}

impl RecordMapping {
    /// One LogRecord from a record; its resource and scope go to `resource` / `scope`.
    pub fn to_log_record(
        &self,
        tag: &str,
        time: EventTime,
        observed: EventTime,
        mut record: Record,
    ) -> (Record, Option<InstrumentationScope>, LogRecord) {
        let mut lr = LogRecord {
            time_unix_nano: nanos(time),
            observed_time_unix_nano: nanos(observed),
            ..Default::default()
        };
        let mut resource = match record.remove(&self.resource_key) {
            Some(Value::Map(m)) => m,
            Some(other) => {
                record.insert(self.resource_key.as_bytes(), other);
                Record::new()
            }
            None => Record::new(),
        };
        for acc in &self.resource_attribute_keys {
            if let Some(v) = acc.delete(&mut record) {
                resource.insert(attr_name(acc), v);
            }
        }
        let scope = match record.remove(&self.scope_key) {
            Some(Value::Map(m)) => {
                let s = |k: &str| match m.get(k) {
                    Some(Value::Str(b)) => text(b),
                    _ => String::new(),
                };
                Some(InstrumentationScope {
                    name: s("name"),
                    version: s("version"),
                    attributes: match m.get(keys::ATTRIBUTES) {
                        Some(Value::Map(a)) => record_to_attributes(a),
                        _ => Vec::new(),
                    },
                    dropped_attributes_count: 0,
                })
            }
            Some(other) => {
                record.insert(self.scope_key.as_bytes(), other);
                None
            }
            None => None,
        };
        // A field of the wrong type stays in the record (an attribute), where it was.
        if let Some(Value::Str(s)) = record.get(&self.severity_text_key) {
            lr.severity_text = text(s);
            record.remove(&self.severity_text_key);
        }
        match record.get(&self.severity_number_key) {
            Some(Value::Int(n)) if (0..=24).contains(n) => {
                lr.severity_number = *n as i32;
                record.remove(&self.severity_number_key);
            }
            Some(_) => {}
            None => lr.severity_number = severity_from_text(lr.severity_text.as_bytes()),
        }
        for (key, len, slot) in [
            (&self.trace_id_key, 16, &mut lr.trace_id),
            (&self.span_id_key, 8, &mut lr.span_id),
        ] {
            if let Some(b) = record.get(key).and_then(|v| id_bytes(v, len)) {
                *slot = b;
                record.remove(key);
            }
        }
        if let Some(Value::Int(n)) = record.get(&self.trace_flags_key) {
            if let Ok(f) = u32::try_from(*n) {
                lr.flags = f;
                record.remove(&self.trace_flags_key);
            }
        }
        if let Some(Value::Str(s)) = record.get(keys::EVENT_NAME) {
            lr.event_name = text(s);
            record.remove(keys::EVENT_NAME);
        }
        let mut attributes = match record.remove(&self.attributes_key) {
            Some(Value::Map(m)) => m,
            Some(other) => {
                record.insert(self.attributes_key.as_bytes(), other);
                Record::new()
            }
            None => Record::new(),
        };
        let body_key = self
            .body_keys
            .iter()
            .find(|k| record.contains_key(k.as_bytes()));
        match body_key {
            Some(k) => {
                let body = record.remove(k).unwrap_or(Value::Nil);
                lr.body = Some(value_to_any(&body));
                for (k, v) in record {
                    attributes.insert(k, v);
                }
            }
            None if record.is_empty() => {}
            None => lr.body = Some(value_to_any(&Value::Map(record))),
        }
        if !self.tag_attribute.is_empty() {
            attributes.insert(self.tag_attribute.as_bytes(), Value::from(tag));
        }
        lr.attributes = record_to_attributes(&attributes);
        for (k, v) in &self.resource_attributes {
            if !resource.contains_key(k.as_bytes()) {
                resource.insert(k.as_bytes(), Value::from(v.as_str()));
            }
        }
        (resource, scope, lr)
    }

    /// A request from records: LogRecords grouped by resource, then by scope, in order of
    /// first appearance.
    pub fn build_request(
        &self,
        tag: &str,
        entries: Vec<(EventTime, Record)>,
        observed: EventTime,
    ) -> ExportLogsServiceRequest {
        let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut out: Vec<ResourceLogs> = Vec::new();
        for (time, rec) in entries {
            let (resource, scope, lr) = self.to_log_record(tag, time, observed, rec);
            let mut key = Vec::new();
            crate::event::msgpack::write_record(&mut key, &resource);
            let i = *index.entry(key).or_insert_with(|| {
                out.push(ResourceLogs {
                    resource: (!resource.is_empty()).then(|| Resource {
                        attributes: record_to_attributes(&resource),
                        ..Default::default()
                    }),
                    scope_logs: Vec::new(),
                    schema_url: String::new(),
                });
                out.len() - 1
            });
            let scopes = &mut out[i].scope_logs;
            match scopes.iter_mut().find(|s| s.scope == scope) {
                Some(s) => s.log_records.push(lr),
                None => scopes.push(ScopeLogs {
                    scope,
                    log_records: vec![lr],
                    schema_url: String::new(),
                }),
            }
        }
        ExportLogsServiceRequest { resource_logs: out }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn js(r: &Record) -> String {
        String::from_utf8(crate::json::encode::record_to_vec(r)).unwrap()
    }

    fn rec(json: &str) -> Record {
        crate::json::decode::parse_record(json.as_bytes()).unwrap()
    }

    #[test]
    fn ordinary_record_to_log_record() {
        let m = RecordMapping {
            resource_attribute_keys: vec![RecordAccessor::new("$.k8s.pod").unwrap()],
            resource_attributes: vec![("service.name".into(), "web".into())],
            ..Default::default()
        };
        let (res, scope, lr) = m.to_log_record(
            "app.web",
            EventTime::new(10, 5),
            EventTime::new(11, 0),
            rec(
                r#"{"message":"hi","level":"x","severity_text":"warn","trace_id":"000102030405060708090a0b0c0d0e0f","span_id":"bad","k8s":{"pod":"p1"}}"#,
            ),
        );
        assert_eq!(scope, None);
        assert_eq!(lr.time_unix_nano, 10_000_000_005);
        assert_eq!(lr.observed_time_unix_nano, 11_000_000_000);
        assert_eq!(lr.severity_text, "warn");
        assert_eq!(lr.severity_number, 13);
        assert_eq!(lr.trace_id, (0u8..16).collect::<Vec<_>>());
        assert!(lr.span_id.is_empty());
        assert_eq!(lr.body.as_ref().map(any_to_value), Some(Value::from("hi")));
        let attrs = attributes_to_record(&lr.attributes);
        assert_eq!(
            js(&attrs),
            r#"{"level":"x","span_id":"bad","k8s":{},"fluent.tag":"app.web"}"#
        );
        assert_eq!(js(&res), r#"{"k8s.pod":"p1","service.name":"web"}"#);
    }

    #[test]
    fn record_without_body_key_is_the_body() {
        let m = RecordMapping {
            tag_attribute: String::new(),
            ..Default::default()
        };
        let (_, _, lr) = m.to_log_record(
            "t",
            EventTime::new(1, 0),
            EventTime::new(1, 0),
            rec(r#"{"a":1,"b":[true,null]}"#),
        );
        assert!(lr.attributes.is_empty());
        assert_eq!(
            lr.body.as_ref().map(any_to_value),
            Some(Value::Map(rec(r#"{"a":1,"b":[true,null]}"#)))
        );
    }

    #[test]
    fn explode_then_map_back_is_the_same_request() {
        let body = br#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},"scopeLogs":[{"scope":{"name":"lib","version":"1.0"},"logRecords":[{"timeUnixNano":"1000000001","observedTimeUnixNano":"1000000001","severityNumber":9,"severityText":"INFO","body":{"kvlistValue":{"values":[{"key":"k","value":{"doubleValue":1.5}}]}},"attributes":[{"key":"http.status","value":{"intValue":"200"}}],"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","flags":1}]}]}]}"#;
        let req = crate::otlp::json::decode(body).unwrap();
        let events = explode(&req, EventTime::new(99, 0));
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].0, EventTime::new(1, 1));
        assert_eq!(
            js(&events[0].1),
            r#"{"body":{"k":1.5},"severity_text":"INFO","severity_number":9,"trace_id":"5b8efff798038103d269b633813fc60c","span_id":"eee19b7ec3c1b174","flags":1,"attributes":{"http.status":200},"resource":{"service.name":"svc"},"scope":{"name":"lib","version":"1.0"}}"#
        );
        let m = RecordMapping {
            tag_attribute: String::new(),
            ..Default::default()
        };
        let back = m.build_request("t", events, EventTime::new(1, 1));
        assert_eq!(back, req);
    }

    #[test]
    fn groups_by_resource_and_scope() {
        let m = RecordMapping::default();
        let t = EventTime::new(1, 0);
        let req = m.build_request(
            "t",
            vec![
                (t, rec(r#"{"message":"a","resource":{"r":1}}"#)),
                (t, rec(r#"{"message":"b","resource":{"r":2}}"#)),
                (
                    t,
                    rec(r#"{"message":"c","resource":{"r":1},"scope":{"name":"s"}}"#),
                ),
                (t, rec(r#"{"message":"d","resource":{"r":1}}"#)),
            ],
            t,
        );
        assert_eq!(req.resource_logs.len(), 2);
        assert_eq!(req.resource_logs[0].scope_logs.len(), 2);
        assert_eq!(req.resource_logs[0].scope_logs[0].log_records.len(), 2);
        assert_eq!(crate::otlp::count_log_records(&req), 4);
    }
}
