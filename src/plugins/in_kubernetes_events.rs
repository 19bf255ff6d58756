//! `@type kubernetes_events`: one record per Event, as Fluent Bit's
//! `in_kubernetes_events` emits it (`record_shape bare`, the default: the Event object itself,
//! for ADDED and MODIFIED), as splunk's watch envelope (`envelope`: `{"type", "object"}`,
//! DELETED included), or shaped like the OpenTelemetry k8s events receiver (`otel`: flat
//! `k8s.*` keys, `message`, severity from the event type).
//!
//! Events are read from core/v1 (`/api/v1/events`, as Fluent Bit and the OpenTelemetry receiver
//! do), or with `api_group events.k8s.io` from `/apis/events.k8s.io/v1/events`, whose objects
//! are converted to the core/v1 form first ([`core_from_events_v1`], the API server's own
//! conversion), so every shape is the same whichever API is read.
//!
//! The time is the event's `eventTime`, else `lastTimestamp`, else `firstTimestamp`, else
//! `metadata.creationTimestamp`. Events are list+watched per namespace (all by default), or
//! listed every `interval`; each version of an event is emitted once, across re-lists, and,
//! with a persistent `<storage>`, across restarts.

use std::time::Duration;

use serde::Deserialize;

use super::in_kubernetes_objects::{open_storage, run_jobs};
use super::storage_local::{LocalStorage, StorageConfig};
use super::{Input, InputContext, PluginContext};
use crate::config_parser::types::Time;
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventStream, EventTime, Record, Value};
use crate::kubernetes::runner::{Item, Job};
use crate::kubernetes::watch::{Change, ChangeKind, Target};
use crate::kubernetes::ClientSettings;

#[derive(Debug, Deserialize)]
struct EventsConfig {
    #[serde(default = "default_tag")]
    tag: String,
    /// Namespaces to read; all when empty.
    #[serde(default)]
    namespaces: Vec<String>,
    label_selector: Option<String>,
    field_selector: Option<String>,
    /// List every `interval` instead of watching.
    interval: Option<Time>,
    /// Events older than this (by their time) are not emitted; unset: no limit.
    retention: Option<Time>,
    #[serde(default)]
    record_shape: Shape,
    /// The API group events are read from: empty (core/v1) or `events.k8s.io`.
    #[serde(default)]
    api_group: String,
    /// Server-side timeout of each watch request (reconnected at once after it).
    #[serde(default = "default_watch_timeout")]
    watch_timeout: Time,
    storage: Option<StorageConfig>,
}

fn default_tag() -> String {
    "kubernetes.events".into()
}
fn default_watch_timeout() -> Time {
    Time(290.0)
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Shape {
    #[default]
    Bare,
    Envelope,
    Otel,
}

pub struct KubernetesEventsInput {
    settings: ClientSettings,
    tag: String,
    shape: Shape,
    /// Objects come from events.k8s.io/v1 and are converted to core/v1.
    events_v1: bool,
    retention: Option<Duration>,
    jobs: Vec<(Job, Option<String>)>,
    storage: LocalStorage,
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Input>, ConfigError> {
    let (cfg, settings): (EventsConfig, ClientSettings) =
        crate::kubernetes::configure(elem, ctx, "kubernetes_events")?;
    super::check_section_type(elem, "storage", &["local"])?;
    let events_v1 = match cfg.api_group.trim().trim_end_matches("/v1") {
        "" | "core" | "v1" => false,
        "events.k8s.io" => true,
        other => {
            return Err(elem.error(format!(
                "api_group must be empty (core/v1 Events) or events.k8s.io, but got {other}"
            )))
        }
    };
    let namespaces: Vec<Option<String>> = if cfg.namespaces.is_empty() {
        vec![None]
    } else {
        cfg.namespaces.iter().cloned().map(Some).collect()
    };
    let mut jobs = Vec::new();
    for ns in namespaces {
        let mut t = Target::core("Event", "events");
        if events_v1 {
            t.group = "events.k8s.io".into();
        }
        t.namespace = ns.clone();
        t.label_selector = cfg.label_selector.clone().filter(|s| !s.is_empty());
        t.field_selector = cfg.field_selector.clone().filter(|s| !s.is_empty());
        t.timeout_secs = Some(cfg.watch_timeout.0.clamp(1.0, 3600.0) as u32);
        let key = format!("events/{}", ns.as_deref().unwrap_or(""));
        let job = match &cfg.interval {
            Some(i) => Job::Pull {
                target: t,
                interval: i.as_duration().max(Duration::from_secs(1)),
                dedupe: true,
            },
            None => Job::Watch(t),
        };
        jobs.push((job, Some(key)));
    }
    let storage = open_storage(elem, cfg.storage.as_ref(), ctx)?;
    Ok(Box::new(KubernetesEventsInput {
        settings,
        tag: cfg.tag,
        shape: cfg.record_shape,
        events_v1,
        retention: cfg
            .retention
            .map(|t| t.as_duration())
            .filter(|d| !d.is_zero()),
        jobs,
        storage,
    }))
}

impl Input for KubernetesEventsInput {
    /// Where the API server is and the named files are checked here, not at configure time, so
    /// `--dry-run` works off the cluster.
    fn start(&mut self) -> anyhow::Result<()> {
        self.settings.validate().map_err(anyhow::Error::msg)
    }

    fn run(self: Box<Self>, ctx: InputContext) -> anyhow::Result<()> {
        let KubernetesEventsInput {
            settings,
            tag,
            shape,
            events_v1,
            retention,
            jobs,
            mut storage,
        } = *self;
        let router = ctx.router.clone();
        let report = |_: usize, item: Item| {
            let Item::Change(mut c) = item else {
                return;
            };
            if events_v1 {
                c.object = core_from_events_v1(c.object);
            }
            if let Some((time, record)) = shape_event(c, shape, retention, EventTime::now()) {
                router.emit(&tag, EventStream::one(time, record));
            }
        };
        run_jobs(&settings, jobs, &mut storage, &ctx, &report)
    }
}

/// An events.k8s.io/v1 Event as the core/v1 Event the API server serves for it (the
/// conversion in k8s.io/kubernetes pkg/apis/events/v1): `note` → `message`, `regarding` →
/// `involvedObject`, `deprecatedSource` / `deprecatedFirstTimestamp` /
/// `deprecatedLastTimestamp` / `deprecatedCount` → `source` / `firstTimestamp` /
/// `lastTimestamp` / `count`, `reportingController` → `reportingComponent`; `eventTime`,
/// `series`, `reason`, `type`, `action`, `related`, `reportingInstance` keep their names. Keys
/// in core/v1 order; unknown ones follow.
pub fn core_from_events_v1(ev: serde_json::Value) -> serde_json::Value {
    const ORDER: &[(&str, &str)] = &[
        ("metadata", "metadata"),
        ("involvedObject", "regarding"),
        ("reason", "reason"),
        ("message", "note"),
        ("source", "deprecatedSource"),
        ("firstTimestamp", "deprecatedFirstTimestamp"),
        ("lastTimestamp", "deprecatedLastTimestamp"),
        ("count", "deprecatedCount"),
        ("type", "type"),
        ("eventTime", "eventTime"),
        ("series", "series"),
        ("action", "action"),
        ("related", "related"),
        ("reportingComponent", "reportingController"),
        ("reportingInstance", "reportingInstance"),
    ];
    let serde_json::Value::Object(mut m) = ev else {
        return ev;
    };
    let mut out = serde_json::Map::with_capacity(m.len() + 2);
    out.insert("kind".into(), "Event".into());
    out.insert("apiVersion".into(), "v1".into());
    m.remove("kind");
    m.remove("apiVersion");
    for (core, v1) in ORDER {
        if let Some(v) = m.remove(*v1) {
            out.insert((*core).into(), v);
        }
    }
    out.extend(m);
    serde_json::Value::Object(out)
}

/// Parses a Kubernetes timestamp (RFC 3339, `eventTime` has microseconds).
fn parse_time(v: Option<&serde_json::Value>) -> Option<EventTime> {
    let s = v?.as_str()?;
    let t = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    Some(EventTime::new(t.timestamp(), t.timestamp_subsec_nanos()))
}

/// The event's own time: eventTime > lastTimestamp > firstTimestamp > creationTimestamp.
fn event_time(obj: &serde_json::Value) -> Option<EventTime> {
    parse_time(obj.get("eventTime"))
        .or_else(|| parse_time(obj.get("lastTimestamp")))
        .or_else(|| parse_time(obj.get("firstTimestamp")))
        .or_else(|| parse_time(obj.get("metadata").and_then(|m| m.get("creationTimestamp"))))
}

/// The record for a change, or `None` when this shape does not emit it.
fn shape_event(
    c: Change,
    shape: Shape,
    retention: Option<Duration>,
    now: EventTime,
) -> Option<(EventTime, Record)> {
    if c.kind == ChangeKind::Deleted && shape != Shape::Envelope {
        return None;
    }
    let time = event_time(&c.object).unwrap_or(now);
    if let Some(r) = retention {
        if time.sec as f64 + r.as_secs_f64() < now.sec as f64 {
            return None;
        }
    }
    let record = match shape {
        Shape::Bare => match crate::util::value_from_json(c.object) {
            Value::Map(r) => r,
            _ => return None,
        },
        Shape::Envelope => {
            let mut r = Record::with_capacity(2);
            r.insert("type", Value::str(c.kind.as_str()));
            r.insert("object", crate::util::value_from_json(c.object));
            r
        }
        Shape::Otel => otel_record(&c.object),
    };
    Some((time, record))
}

/// The OpenTelemetry k8s events receiver's resource and log attributes, flattened, with the
/// body as `message` and the severity from the event type.
fn otel_record(ev: &serde_json::Value) -> Record {
    let s = |v: Option<&serde_json::Value>| -> Value {
        Value::str(v.and_then(|v| v.as_str()).unwrap_or(""))
    };
    let io = ev.get("involvedObject");
    let iof = |k: &str| s(io.and_then(|o| o.get(k)));
    let meta = ev.get("metadata");
    let mf = |k: &str| meta.and_then(|m| m.get(k));
    let mut r = Record::with_capacity(20);
    r.insert("message", s(ev.get("message")));
    let typ = ev.get("type").and_then(|t| t.as_str()).unwrap_or("");
    let severity = match typ {
        "Normal" => Some("INFO"),
        "Warning" => Some("WARN"),
        "Error" => Some("ERROR"),
        "Critical" => Some("FATAL"),
        _ => None,
    };
    if let Some(sev) = severity {
        r.insert("severity", Value::str(sev));
    }
    r.insert("severity_text", Value::str(typ));
    r.insert(
        "k8s.node.name",
        s(ev.get("source").and_then(|v| v.get("host"))),
    );
    r.insert("k8s.object.kind", iof("kind"));
    r.insert("k8s.object.name", iof("name"));
    r.insert("k8s.object.uid", iof("uid"));
    r.insert("k8s.object.fieldpath", iof("fieldPath"));
    r.insert("k8s.object.api_version", iof("apiVersion"));
    r.insert("k8s.object.resource_version", iof("resourceVersion"));
    r.insert("k8s.event.reason", s(ev.get("reason")));
    r.insert("k8s.event.action", s(ev.get("action")));
    r.insert(
        "k8s.event.start_time",
        Value::str(go_time_string(mf("creationTimestamp"))),
    );
    r.insert("k8s.event.name", s(mf("name")));
    r.insert("k8s.event.uid", s(mf("uid")));
    r.insert("k8s.namespace.name", iof("namespace"));
    if let Some(n) = ev.get("count").and_then(|c| c.as_i64()).filter(|n| *n != 0) {
        r.insert("k8s.event.count", Value::Int(n));
    }
    r
}

/// Go's `time.Time.String()` of a timestamp, as the receiver writes `k8s.event.start_time`
/// (`2024-05-01 10:00:00 +0000 UTC`).
fn go_time_string(v: Option<&serde_json::Value>) -> String {
    let Some(s) = v.and_then(|v| v.as_str()) else {
        return "0001-01-01 00:00:00 +0000 UTC".into();
    };
    match chrono::DateTime::parse_from_rfc3339(s) {
        Ok(t) => {
            let t = t.with_timezone(&chrono::Utc);
            let frac = t.timestamp_subsec_nanos();
            let base = t.format("%Y-%m-%d %H:%M:%S").to_string();
            if frac == 0 {
                format!("{base} +0000 UTC")
            } else {
                let f = format!("{frac:09}");
                format!("{base}.{} +0000 UTC", f.trim_end_matches('0'))
            }
        }
        Err(_) => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev() -> serde_json::Value {
        serde_json::json!({
            "metadata": {"name": "web.17a", "namespace": "default", "uid": "u-1",
                         "resourceVersion": "7", "creationTimestamp": "2024-05-01T10:00:00Z"},
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web",
                               "uid": "p-1", "apiVersion": "v1", "resourceVersion": "42",
                               "fieldPath": "spec.containers{app}"},
            "reason": "BackOff", "message": "Back-off restarting failed container",
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": "2024-05-01T10:00:00Z", "lastTimestamp": "2024-05-01T10:00:05Z",
            "count": 3, "type": "Warning", "eventTime": null
        })
    }

    fn change(kind: ChangeKind) -> Change {
        Change {
            kind,
            object: ev(),
            from_list: false,
        }
    }

    #[test]
    fn time_prefers_event_time_then_last_timestamp() {
        assert_eq!(event_time(&ev()).unwrap().sec, 1714557605);
        let mut e = ev();
        e["eventTime"] = serde_json::json!("2024-05-01T10:00:09.123456Z");
        let t = event_time(&e).unwrap();
        assert_eq!((t.sec, t.nsec), (1714557609, 123456000));
        let mut e = ev();
        e["lastTimestamp"] = serde_json::Value::Null;
        e["firstTimestamp"] = serde_json::Value::Null;
        assert_eq!(event_time(&e).unwrap().sec, 1714557600);
    }

    #[test]
    fn shapes() {
        let now = EventTime::new(1714557700, 0);
        let (t, bare) = shape_event(change(ChangeKind::Added), Shape::Bare, None, now).unwrap();
        assert_eq!(t.sec, 1714557605);
        assert_eq!(bare.get("reason"), Some(&Value::str("BackOff")));
        assert!(shape_event(change(ChangeKind::Deleted), Shape::Bare, None, now).is_none());
        let (_, env) =
            shape_event(change(ChangeKind::Deleted), Shape::Envelope, None, now).unwrap();
        assert_eq!(env.get("type"), Some(&Value::str("DELETED")));
        let (_, o) = shape_event(change(ChangeKind::Modified), Shape::Otel, None, now).unwrap();
        let keys: Vec<&[u8]> = o.keys().collect();
        assert_eq!(
            keys,
            vec![
                &b"message"[..],
                b"severity",
                b"severity_text",
                b"k8s.node.name",
                b"k8s.object.kind",
                b"k8s.object.name",
                b"k8s.object.uid",
                b"k8s.object.fieldpath",
                b"k8s.object.api_version",
                b"k8s.object.resource_version",
                b"k8s.event.reason",
                b"k8s.event.action",
                b"k8s.event.start_time",
                b"k8s.event.name",
                b"k8s.event.uid",
                b"k8s.namespace.name",
                b"k8s.event.count",
            ]
        );
        assert_eq!(o.get("severity"), Some(&Value::str("WARN")));
        assert_eq!(o.get("severity_text"), Some(&Value::str("Warning")));
        assert_eq!(o.get("k8s.node.name"), Some(&Value::str("node-1")));
        assert_eq!(
            o.get("k8s.event.start_time"),
            Some(&Value::str("2024-05-01 10:00:00 +0000 UTC"))
        );
        assert_eq!(o.get("k8s.event.count"), Some(&Value::Int(3)));
    }

    #[test]
    fn events_v1_objects_take_the_core_v1_form() {
        let v1 = serde_json::json!({
            "kind": "Event", "apiVersion": "events.k8s.io/v1",
            "metadata": {"name": "web.17a", "namespace": "default", "uid": "u-1"},
            "eventTime": "2024-05-01T10:00:00.250000Z",
            "series": {"count": 2, "lastObservedTime": "2024-05-01T10:00:07.500000Z"},
            "reportingController": "kubelet", "reportingInstance": "node-1",
            "action": "Pulling", "reason": "Pulling",
            "regarding": {"kind": "Pod", "name": "web"},
            "note": "Pulling image", "type": "Normal",
            "deprecatedSource": {"component": "kubelet", "host": "node-1"},
            "deprecatedFirstTimestamp": "2024-05-01T10:00:00Z",
            "deprecatedLastTimestamp": "2024-05-01T10:00:07Z",
            "deprecatedCount": 2,
            "futureField": 1
        });
        let core = core_from_events_v1(v1);
        assert_eq!(
            core.to_string(),
            serde_json::json!({
                "kind": "Event", "apiVersion": "v1",
                "metadata": {"name": "web.17a", "namespace": "default", "uid": "u-1"},
                "involvedObject": {"kind": "Pod", "name": "web"},
                "reason": "Pulling",
                "message": "Pulling image",
                "source": {"component": "kubelet", "host": "node-1"},
                "firstTimestamp": "2024-05-01T10:00:00Z",
                "lastTimestamp": "2024-05-01T10:00:07Z",
                "count": 2,
                "type": "Normal",
                "eventTime": "2024-05-01T10:00:00.250000Z",
                "series": {"count": 2, "lastObservedTime": "2024-05-01T10:00:07.500000Z"},
                "action": "Pulling",
                "reportingComponent": "kubelet",
                "reportingInstance": "node-1",
                "futureField": 1
            })
            .to_string()
        );
        let o = otel_record(&core);
        assert_eq!(o.get("message"), Some(&Value::str("Pulling image")));
        assert_eq!(o.get("k8s.object.name"), Some(&Value::str("web")));
        assert_eq!(o.get("k8s.node.name"), Some(&Value::str("node-1")));
        assert_eq!(o.get("k8s.event.count"), Some(&Value::Int(2)));
        assert_eq!(o.get("k8s.event.action"), Some(&Value::str("Pulling")));
    }

    #[test]
    fn retention_drops_old_events() {
        let now = EventTime::new(1714557605 + 7200, 0);
        let hour = Some(Duration::from_secs(3600));
        assert!(shape_event(change(ChangeKind::Added), Shape::Bare, hour, now).is_none());
        let now = EventTime::new(1714557605 + 60, 0);
        assert!(shape_event(change(ChangeKind::Added), Shape::Bare, hour, now).is_some());
    }

    #[test]
    fn config() {
        let ctx = PluginContext::for_tests();
        let e = create(
            &crate::test_util::directive(
                "<source>\n@type kubernetes_events\nkubernetes_url http://127.0.0.1:1\nrecord_shape nope\n</source>",
            ),
            &ctx,
        )
        .err()
        .unwrap();
        assert!(
            e.message
                .contains("valid options are bare,envelope,otel but got nope"),
            "{}",
            e.message
        );
        let e = create(
            &crate::test_util::directive(
                "<source>\n@type kubernetes_events\nkubernetes_url http://127.0.0.1:1\napi_group apps\n</source>",
            ),
            &ctx,
        )
        .err()
        .unwrap();
        assert!(
            e.message.contains("api_group must be empty"),
            "{}",
            e.message
        );
        for g in ["events.k8s.io", "events.k8s.io/v1", "core"] {
            assert!(create(
                &crate::test_util::directive(&format!(
                    "<source>\n@type kubernetes_events\nkubernetes_url http://127.0.0.1:1\napi_group {g}\n</source>"
                )),
                &ctx,
            )
            .is_ok());
        }
        assert!(create(
            &crate::test_util::directive(
                "<source>\n@type kubernetes_events\nkubernetes_url http://127.0.0.1:1\nnamespaces a, b\ninterval 30s\nrecord_shape otel\n</source>",
            ),
            &ctx,
        )
        .is_ok());
    }
}
