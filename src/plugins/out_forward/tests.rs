use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

use super::node::DnsCache;
use super::*;
use crate::buffer::Metadata;
use crate::config_parser::{parse_str, ParseOptions};
use crate::event::{EventTime, Record};
use crate::forward::codec::{self, ScanState};

fn matcher(conf: &str) -> Element {
    let root = parse_str(
        &format!("<match **>\n@type forward\n{conf}\n</match>\n"),
        std::path::Path::new("t.conf"),
        &ParseOptions::default(),
    )
    .unwrap();
    let e = root.children("match").next().unwrap().clone();
    e
}

fn err(conf: &str) -> String {
    match create(&matcher(conf), &PluginContext::for_tests()) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn config_errors() {
    assert!(err("").contains("requires at least one node"));
    assert!(err("host 127.0.0.1\n<server>\nhost a\n</server>")
        .contains("'host' parameter is already removed"));
    assert!(
        err("<server>\nhost a\n</server>\n<buffer time>\ntimekey 60\n</buffer>")
            .contains("buffer chunk key must include 'tag' for forward output")
    );
    assert!(
        err("heartbeat_type udp\ndns_round_robin true\n<server>\nhost a\n</server>")
            .contains("dns_round_robin")
    );
    assert!(err("heartbeat_type bogus\n<server>\nhost a\n</server>")
        .contains("valid options are transport,tcp,udp,none but got bogus"));
    assert_eq!(err("<server>\nhost a\n</server>"), "");
}

fn nodes(spec: &[(u64, bool, bool)]) -> Vec<Arc<Node>> {
    spec.iter()
        .enumerate()
        .map(|(i, &(weight, standby, available))| {
            Arc::new(Node {
                name: format!("n{i}"),
                host: "127.0.0.1".into(),
                port: 1,
                weight,
                standby,
                shared_key: String::new(),
                username: String::new(),
                password: String::new(),
                always_available: false,
                available: AtomicBool::new(available),
                failure: Mutex::new(FailureDetector::new(1.0, 60.0, 0.0)),
                phi_threshold: 16.0,
                phi_failure_detector: true,
                recover_sample_size: 10,
                dns: Mutex::new(DnsCache::default()),
                pool: Mutex::new(Vec::new()),
            })
        })
        .collect()
}

fn counts(lb: &LoadBalancer, n: usize) -> Vec<usize> {
    let mut c = vec![0; n];
    for &i in &lb.weight_array {
        c[i] += 1;
    }
    c
}

#[test]
fn weight_array_follows_load_balancer_rb() {
    let mut lb = LoadBalancer {
        weight_array: vec![],
        seed: 7,
        rr: 0,
    };
    // weights 60 and 30: gcd 30 → [a, a, b], replicated to ≥ 6 × nodes = 12 entries.
    let ns = nodes(&[(60, false, true), (30, false, true), (60, true, true)]);
    lb.rebuild(&ns);
    assert_eq!(counts(&lb, 3), vec![8, 4, 0]);
    // A regular node down: the standby joins to cover its weight; the lost node stays in
    // the array (selection skips it), as in Fluentd.
    let ns = nodes(&[(60, false, false), (30, false, true), (60, true, true)]);
    lb.rebuild(&ns);
    assert_eq!(counts(&lb, 3), vec![6, 3, 6]);
    // Weight 0 is never used.
    let ns = nodes(&[(0, false, true), (10, false, true)]);
    lb.rebuild(&ns);
    assert_eq!(counts(&lb, 2), vec![0, 12]);
    let ns = nodes(&[(60, false, false)]);
    lb.rebuild(&ns);
    assert_eq!(counts(&lb, 1), vec![6]);
}

#[test]
fn phi_grows_without_heartbeats_and_recovery_needs_samples() {
    let mut f = FailureDetector::new(1.0, 60.0, 1000.0);
    for i in 1..=5 {
        f.add(1000.0 + i as f64);
    }
    assert_eq!(f.phi(1005.0), 0.0);
    assert_eq!(f.phi(1006.0), 1.0 / 10f64.ln());
    // 40 s of silence with 1 s gaps: phi = 40 / ln 10 ≈ 17.4 > 16.
    assert!(f.phi(1045.0) > 16.0);
    assert!(f.phi(1036.0) < 16.0);
    assert!(f.hard_timeout(1065.5));
    let ns = nodes(&[(60, false, false)]);
    // As after a detach: the window is emptied.
    ns[0].failure.lock().clear();
    for _ in 0..10 {
        assert!(!ns[0].heartbeat(true));
    }
    assert!(ns[0].heartbeat(true), "recovers after more than 10 samples");
    assert!(ns[0].available());
}

fn chunk(tag: &str, n: usize) -> Chunk {
    let mut data = Vec::new();
    for i in 0..n {
        let mut r = Record::new();
        r.insert("i", Value::Int(i as i64));
        crate::event::msgpack::write_entry(&mut data, EventTime::new(1700000000, 5), &r);
    }
    Chunk {
        unique_id: [7; 16],
        metadata: Metadata {
            tag: Some(tag.into()),
            ..Default::default()
        },
        records: n as u64,
        created: 0.0,
        data,
    }
}

/// A one-connection server answering acks with `ack` (None: the right id).
fn fake_server(ack: Option<&'static str>) -> (u16, std::thread::JoinHandle<Vec<u8>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = Vec::new();
        let mut st = ScanState::default();
        let mut b = [0u8; 65536];
        let len = loop {
            let n = s.read(&mut b).unwrap();
            buf.extend_from_slice(&b[..n]);
            if let Some(len) = codec::scan_msgpack(&buf, &mut st).unwrap() {
                break len;
            }
        };
        let raw = codec::RawMessage::from_msgpack(&buf[..len]).unwrap();
        let d = codec::decode_message(raw, &Default::default(), EventTime::now()).unwrap();
        if let Some(mut a) = codec::ack_for(&d.option) {
            if let (Some(fake), Value::Map(m)) = (ack, &mut a) {
                m.insert("ack", Value::str(fake));
            }
            s.write_all(&codec::to_msgpack(&a)).unwrap();
        }
        buf.truncate(len);
        buf
    });
    (port, h)
}

fn output(conf: &str) -> ForwardOutput {
    build_output(&matcher(conf), &PluginContext::for_tests()).unwrap()
}

#[test]
fn static_service_discovery_adds_servers() {
    let o = output(
        "<server>\nhost 127.0.0.1\nport 1\n</server>\n<service_discovery>\n@type static\n<service>\nhost 127.0.0.2\nport 2\nweight 10\n</service>\n<service>\nhost 127.0.0.3\nstandby true\n</service>\n</service_discovery>",
    );
    let nodes: Vec<_> = o
        .inner
        .nodes()
        .iter()
        .map(|n| (n.name.clone(), n.port, n.weight, n.standby))
        .collect();
    assert_eq!(
        nodes,
        vec![
            ("127.0.0.1:1".to_string(), 1, 60, false),
            ("127.0.0.2:2".to_string(), 2, 10, false),
            ("127.0.0.3:24224".to_string(), 24224, 60, true),
        ]
    );
    assert!(
        err("<service_discovery>\n@type file\npath /nonexistent/x.yaml\n</service_discovery>")
            .contains("not found")
    );
}

fn node_names(o: &ForwardOutput) -> Vec<String> {
    o.inner.nodes().iter().map(|n| n.name.clone()).collect()
}

#[test]
fn file_service_discovery_reloads_when_the_file_changes() {
    let d = tempfile::tempdir().unwrap();
    let y = d.path().join("servers.yaml");
    std::fs::write(&y, "- host: 127.0.0.1\n  port: 24301\n").unwrap();
    let o = output(&format!(
        "heartbeat_type none\n<service_discovery>\n@type file\npath {}\n</service_discovery>",
        y.display()
    ));
    assert_eq!(node_names(&o), vec!["127.0.0.1:24301"]);
    let first = o.inner.nodes()[0].clone();
    std::fs::write(
        &y,
        "- host: 127.0.0.1\n  port: 24301\n- host: 127.0.0.1\n  port: 24302\n  weight: 5\n",
    )
    .unwrap();
    // A later modification time, whatever the clock resolution.
    let f = std::fs::File::options().write(true).open(&y).unwrap();
    f.set_modified(SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    o.inner.refresh_discovery();
    assert_eq!(node_names(&o), vec!["127.0.0.1:24301", "127.0.0.1:24302"]);
    // The server that stayed keeps its node.
    assert!(Arc::ptr_eq(&o.inner.nodes()[0], &first));
    assert_eq!(o.inner.nodes()[1].weight, 5);
    assert!(!o.inner.lb.lock().weight_array.is_empty());
    // Unchanged file: nothing asked again.
    o.inner.refresh_discovery();
    assert_eq!(node_names(&o).len(), 2);
}

#[test]
fn srv_service_discovery_asks_a_dns_server() {
    let dns = service_discovery::tests::fake_dns(
        vec![(10, 20, 24311, "127.0.0.1"), (10, 30, 24312, "127.0.0.1")],
        2,
    );
    let o = output(&format!(
        "heartbeat_type none\n<service_discovery>\n@type srv\nservice fluentd\nhostname example.test\ndns_server_host {dns}\ninterval 1\n</service_discovery>"
    ));
    let nodes: Vec<_> = o
        .inner
        .nodes()
        .iter()
        .map(|n| (n.host.clone(), n.port, n.weight))
        .collect();
    assert_eq!(
        nodes,
        vec![
            ("127.0.0.1".to_string(), 24311, 20),
            ("127.0.0.1".to_string(), 24312, 30)
        ]
    );
    // Asked again: the same answer keeps the nodes.
    let before = o.inner.nodes();
    o.inner.refresh_discovery();
    assert!(Arc::ptr_eq(&before[0], &o.inner.nodes()[0]));
}

#[test]
fn write_sends_one_packed_forward_message_with_ack() {
    let (port, h) = fake_server(None);
    let out = output(&format!(
        "heartbeat_type none\nrequire_ack_response true\n<server>\nhost 127.0.0.1\nport {port}\n</server>"
    ));
    let c = chunk("app.x", 3);
    assert!(out.write(&c).is_ok());
    let msg = h.join().unwrap();
    let mut expect = vec![0x93, 0xa5];
    expect.extend_from_slice(b"app.x");
    expect.push(0xdb);
    expect.extend_from_slice(&(c.data.len() as u32).to_be_bytes());
    expect.extend_from_slice(&c.data);
    expect.extend_from_slice(&[0x83, 0xa4]);
    expect.extend_from_slice(b"size");
    expect.push(3);
    expect.extend_from_slice(&[0xaa]);
    expect.extend_from_slice(b"compressed");
    expect.extend_from_slice(&[0xa4]);
    expect.extend_from_slice(b"text");
    expect.extend_from_slice(&[0xa5]);
    expect.extend_from_slice(b"chunk");
    expect.push(0xb9);
    expect.extend_from_slice(b"BwcHBwcHBwcHBwcHBwcHBw==\n");
    assert_eq!(msg, expect);
}

#[test]
fn ack_mismatch_is_retriable() {
    let (port, h) = fake_server(Some("other"));
    let out = output(&format!(
        "heartbeat_type none\nrequire_ack_response true\n<server>\nhost 127.0.0.1\nport {port}\n</server>"
    ));
    assert!(matches!(
        out.write(&chunk("t", 1)),
        Err(WriteError::Retriable(_))
    ));
    h.join().unwrap();
}

#[test]
fn gzip_and_time_as_integer() {
    let (port, h) = fake_server(None);
    let out = output(&format!(
        "heartbeat_type none\ncompress gzip\ntime_as_integer true\n<server>\nhost 127.0.0.1\nport {port}\n</server>"
    ));
    let mut es = EventStream::new();
    let mut r = Record::new();
    r.insert("k", Value::str("v"));
    es.push(EventTime::new(1700000000, 999), r.clone());
    let mut data = Vec::new();
    out.format("t", &es, &mut data);
    assert_eq!(&data[..6], &[0x92, 0xce, 0x65, 0x53, 0xf1, 0x00]);
    let mut c = chunk("t", 1);
    c.data = data;
    assert!(out.write(&c).is_ok());
    let msg = h.join().unwrap();
    let raw = codec::RawMessage::from_msgpack(&msg).unwrap();
    let d = codec::decode_message(raw, &Default::default(), EventTime::now()).unwrap();
    assert_eq!(d.events, EventStream::one(EventTime::new(1700000000, 0), r));
}

#[test]
fn refused_connection_is_retriable() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let out = output(&format!(
        "heartbeat_type none\n<server>\nhost 127.0.0.1\nport {port}\n</server>"
    ));
    assert!(matches!(
        out.write(&chunk("t", 1)),
        Err(WriteError::Retriable(_))
    ));
}
