//! Relay messages -> records. Keys are the proto field names; a field at its zero value is left
//! out, as Go's encoding/json does with the `omitempty` tags of KubeArmor's generated structs,
//! except `PPID` and `UID`, whose tags lack `omitempty` (a process of PID 0's child or root's
//! UID 0 are real values), so they are always there. A nested `Owner` / `ExecEvent` is left out
//! only when absent; present, it is a map of its own non-empty fields. Keys are sorted, as Go
//! writes a decoded map. `Timestamp` is not a key: it is the event time.

use super::pb;
use crate::event::{Record, Value};

struct Fields(Vec<(&'static str, Value)>);

impl Fields {
    fn new() -> Self {
        Fields(Vec::with_capacity(40))
    }

    fn s(&mut self, k: &'static str, v: &str) {
        if !v.is_empty() {
            self.0.push((k, Value::Str(v.as_bytes().to_vec())));
        }
    }

    fn i(&mut self, k: &'static str, v: i32) {
        if v != 0 {
            self.0.push((k, Value::Int(i64::from(v))));
        }
    }

    /// An int32 whose Go tag has no `omitempty`.
    fn always(&mut self, k: &'static str, v: i32) {
        self.0.push((k, Value::Int(i64::from(v))));
    }

    fn list(&mut self, k: &'static str, v: &[String]) {
        if !v.is_empty() {
            let items = v
                .iter()
                .map(|s| Value::Str(s.as_bytes().to_vec()))
                .collect();
            self.0.push((k, Value::Array(items)));
        }
    }

    /// A `map<string, string>`: an object with sorted keys (as Go writes a map), left out
    /// when empty.
    fn map(&mut self, k: &'static str, v: &std::collections::HashMap<String, String>) {
        if !v.is_empty() {
            let mut pairs: Vec<_> = v.iter().collect();
            pairs.sort();
            let mut r = Record::with_capacity(pairs.len());
            for (k, v) in pairs {
                r.push_unchecked(k.as_bytes().to_vec(), Value::Str(v.as_bytes().to_vec()));
            }
            self.0.push((k, Value::Map(r)));
        }
    }

    fn nested(&mut self, k: &'static str, v: Option<Fields>) {
        if let Some(f) = v {
            self.0.push((k, Value::Map(f.into_record())));
        }
    }

    fn into_record(mut self) -> Record {
        self.0.sort_by(|a, b| a.0.cmp(b.0));
        let mut r = Record::with_capacity(self.0.len());
        for (k, v) in self.0 {
            r.push_unchecked(k.as_bytes().to_vec(), v);
        }
        r
    }
}

fn owner(o: &Option<pb::Podowner>) -> Option<Fields> {
    o.as_ref().map(|o| {
        let mut f = Fields::new();
        f.s("Ref", &o.r#ref);
        f.s("Name", &o.name);
        f.s("Namespace", &o.namespace);
        f
    })
}

fn exec_event(e: &Option<pb::ExecEvent>) -> Option<Fields> {
    e.as_ref().map(|e| {
        let mut f = Fields::new();
        f.s("ExecID", &e.exec_id);
        f.s("ExecutableName", &e.executable_name);
        f
    })
}

/// The message's `Timestamp` (seconds), `None` when it is 0 (absent on the wire).
fn stamp(t: i64) -> Option<i64> {
    (t != 0).then_some(t)
}

/// The fields Alert and Log share (same names, different messages); keys are sorted at the
/// end, so the order here does not matter.
macro_rules! process_fields {
    ($f:expr, $m:expr) => {{
        let (f, m) = (&mut $f, $m);
        f.s("UpdatedTime", &m.updated_time);
        f.s("ClusterName", &m.cluster_name);
        f.s("HostName", &m.host_name);
        f.s("NamespaceName", &m.namespace_name);
        f.nested("Owner", owner(&m.owner));
        f.s("PodName", &m.pod_name);
        f.s("Labels", &m.labels);
        f.s("ContainerID", &m.container_id);
        f.s("ContainerName", &m.container_name);
        f.s("ContainerImage", &m.container_image);
        f.s("ParentProcessName", &m.parent_process_name);
        f.s("ProcessName", &m.process_name);
        f.i("HostPPID", m.host_ppid);
        f.i("HostPID", m.host_pid);
        f.always("PPID", m.ppid);
        f.i("PID", m.pid);
        f.always("UID", m.uid);
        f.s("Type", &m.r#type);
        f.s("Source", &m.source);
        f.s("Operation", &m.operation);
        f.s("Resource", &m.resource);
        f.s("Data", &m.data);
        f.s("Result", &m.result);
        f.s("Cwd", &m.cwd);
        f.s("TTY", &m.tty);
        f.nested("ExecEvent", exec_event(&m.exec_event));
    }};
}

pub fn alert(a: &pb::Alert) -> (Option<i64>, Record) {
    let mut f = Fields::new();
    process_fields!(f, a);
    f.s("PolicyName", &a.policy_name);
    f.s("Severity", &a.severity);
    f.s("Tags", &a.tags);
    f.list("ATags", &a.a_tags);
    f.s("Message", &a.message);
    f.map("EventData", &a.event_data);
    f.s("Enforcer", &a.enforcer);
    f.s("Action", &a.action);
    f.i("MaxAlertsPerSec", a.max_alerts_per_sec);
    f.i("DroppingAlertsInterval", a.dropping_alerts_interval);
    (stamp(a.timestamp), f.into_record())
}

pub fn log(l: &pb::Log) -> (Option<i64>, Record) {
    let mut f = Fields::new();
    process_fields!(f, l);
    (stamp(l.timestamp), f.into_record())
}

pub fn message(m: &pb::Message) -> (Option<i64>, Record) {
    let mut f = Fields::new();
    f.s("UpdatedTime", &m.updated_time);
    f.s("ClusterName", &m.cluster_name);
    f.s("HostName", &m.host_name);
    f.s("HostIP", &m.host_ip);
    f.s("Type", &m.r#type);
    f.s("Level", &m.level);
    f.s("Message", &m.message);
    (stamp(m.timestamp), f.into_record())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(r: &Record) -> Vec<String> {
        r.keys()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect()
    }

    #[test]
    fn zero_fields_are_left_out_but_ppid_and_uid_stay() {
        let (ts, r) = alert(&pb::Alert {
            host_name: "node-1".into(),
            ..Default::default()
        });
        assert_eq!(ts, None);
        assert_eq!(keys(&r), ["HostName", "PPID", "UID"]);
        assert_eq!(r.get("PPID"), Some(&Value::Int(0)));
    }

    #[test]
    fn nested_and_repeated_fields() {
        let (ts, r) = alert(&pb::Alert {
            timestamp: 1_696_587_116,
            owner: Some(pb::Podowner {
                r#ref: "Deployment".into(),
                name: "nginx".into(),
                namespace: String::new(),
            }),
            exec_event: Some(pb::ExecEvent::default()),
            a_tags: vec!["MITRE".into(), "T1059".into()],
            host_pid: 70701,
            event_data: [("proto", "tcp"), ("dport", "443")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into(),
            ..Default::default()
        });
        assert_eq!(ts, Some(1_696_587_116));
        assert_eq!(
            keys(&r),
            [
                "ATags",
                "EventData",
                "ExecEvent",
                "HostPID",
                "Owner",
                "PPID",
                "UID"
            ]
        );
        let Some(Value::Map(ed)) = r.get("EventData") else {
            panic!("EventData is a map: {r:?}");
        };
        assert_eq!(keys(ed), ["dport", "proto"]);
        assert_eq!(ed.get("proto"), Some(&Value::Str(b"tcp".to_vec())));
        let Some(Value::Map(o)) = r.get("Owner") else {
            panic!("Owner is a map: {r:?}");
        };
        assert_eq!(keys(o), ["Name", "Ref"]);
        assert_eq!(r.get("ExecEvent"), Some(&Value::Map(Record::new())));
        assert_eq!(r.get("HostPID"), Some(&Value::Int(70701)));
    }

    #[test]
    fn message_fields() {
        let (ts, r) = message(&pb::Message {
            timestamp: 5,
            host_ip: "10.0.0.1".into(),
            level: "INFO".into(),
            message: "started".into(),
            ..Default::default()
        });
        assert_eq!(ts, Some(5));
        assert_eq!(keys(&r), ["HostIP", "Level", "Message"]);
    }
}
