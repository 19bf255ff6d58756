//! The forward protocol against real peers on loopback: the Node `@fluent-org/logger` and
//! `fluent-logger` clients and the Python `fluent-logger` client sending to in_forward,
//! out_forward sending to `@fluent-org/logger`'s FluentServer, and ferrentd to ferrentd with
//! acks, TLS and a shared key. `scripts/test` installs the peers (npm ci in tests/interop, pip).

mod forward_common;

use forward_common::*;

const STDOUT_MATCH: &str =
    "<match fluent.**>\n  @type null\n</match>\n<match **>\n  @type stdout\n</match>\n";

#[test]
fn fluent_org_client_all_modes_with_acks() {
    let port = free_port();
    let fd = Ferrentd::start(&format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n{STDOUT_MATCH}"
    ));
    wait_port(port);
    let modes = [
        "Message",
        "Forward",
        "PackedForward",
        "CompressedPackedForward",
    ];
    for mode in modes {
        let out = node(&["fluent_org_client.js", &port.to_string(), mode]);
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let got = fd.stop();
    let mut expect = Vec::new();
    for mode in modes {
        for i in 0..5 {
            expect.push(format!(
                "2023-11-14 22:13:{}.250000000 +0000 node.ev: {{\"i\":{i},\"mode\":\"{mode}\",\"s\":\"héllo\"}}",
                20 + i
            ));
        }
    }
    assert_eq!(got, expect);
}

#[test]
fn fluent_org_client_shared_key_and_wrong_key() {
    let port = free_port();
    let fd = Ferrentd::start(&format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n  <security>\n    self_hostname ferrentd-in\n    shared_key s3cret\n  </security>\n</source>\n{STDOUT_MATCH}"
    ));
    wait_port(port);
    let bad = node(&[
        "fluent_org_client.js",
        &port.to_string(),
        "Forward",
        "wrong",
    ]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("shared_key mismatch"), "{err}");
    let ok = node(&[
        "fluent_org_client.js",
        &port.to_string(),
        "Forward",
        "s3cret",
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let (got, log) = fd.stop_with_log();
    assert_eq!(
        got.len(),
        5,
        "only the authenticated client's events: {got:?}"
    );
    assert!(got[0].ends_with("node.ev: {\"i\":0,\"mode\":\"Forward\",\"s\":\"héllo\"}"));
    assert!(log.contains("Shared key mismatch"), "{log}");
}

#[test]
fn legacy_node_and_python_clients() {
    let port = free_port();
    let fd = Ferrentd::start(&format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n{STDOUT_MATCH}"
    ));
    wait_port(port);
    let out = node(&["fluent_logger_client.js", &port.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = python(&["python_client.py", &port.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = fd.stop();
    assert_eq!(
        got,
        vec![
            "2023-11-14 22:15:00.000000000 +0000 legacy.ev: {\"i\":0,\"ok\":true}",
            "2023-11-14 22:15:01.000000000 +0000 legacy.ev: {\"i\":1,\"ok\":false}",
            "2023-11-14 22:15:02.000000000 +0000 legacy.ev: {\"i\":2,\"ok\":true}",
            "2023-11-14 22:16:40.000000000 +0000 py.ev: {\"i\":0,\"list\":[1,\"two\",null]}",
            "2023-11-14 22:16:41.000000000 +0000 py.ev: {\"i\":1,\"list\":[1,\"two\",null]}",
            "2023-11-14 22:16:42.000000000 +0000 py.ev: {\"i\":2,\"list\":[1,\"two\",null]}",
        ]
    );
}

#[test]
fn out_forward_to_fluent_org_server_with_ack_and_shared_key() {
    let sport = free_port();
    let server = NodeServer::start(sport, Some("k3y"));
    let port = free_port();
    let fd = Ferrentd::start(&format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n\
         <match fluent.**>\n  @type null\n</match>\n<match **>\n  @type forward\n  require_ack_response true\n  heartbeat_type none\n\
         <security>\n    self_hostname ferrentd-out\n    shared_key k3y\n  </security>\n\
         <server>\n    host 127.0.0.1\n    port {sport}\n  </server>\n\
         <buffer>\n    flush_mode immediate\n  </buffer>\n</match>\n"
    ));
    wait_port(port);
    send_forward(
        port,
        "a.b",
        &[(1700000000, 1, "x"), (1700000001, 2, "y")],
        true,
    );
    let lines = server.wait_lines(2);
    fd.stop();
    assert_eq!(
        lines,
        vec![
            "{\"tag\":\"a.b\",\"time\":[1700000000,1],\"record\":{\"n\":1,\"s\":\"x\"}}",
            "{\"tag\":\"a.b\",\"time\":[1700000001,2],\"record\":{\"n\":2,\"s\":\"y\"}}",
        ]
    );
}

#[test]
fn ferrentd_to_ferrentd_with_ack_tls_and_shared_key() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = write_test_pki(dir.path());
    let bport = free_port();
    let b = Ferrentd::start(&format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {bport}\n\
         <transport tls>\n    cert_path {cert}\n    private_key_path {key}\n  </transport>\n\
         <security>\n    self_hostname ferrentd-b\n    shared_key tls-key\n  </security>\n</source>\n{STDOUT_MATCH}"
    ));
    wait_port(bport);
    let aport = free_port();
    let a = Ferrentd::start(&format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {aport}\n</source>\n\
         <match fluent.**>\n  @type null\n</match>\n<match **>\n  @type forward\n  transport tls\n  tls_cert_path {ca}\n  tls_verify_hostname true\n\
         require_ack_response true\n  heartbeat_type none\n  compress gzip\n\
         <security>\n    self_hostname ferrentd-a\n    shared_key tls-key\n  </security>\n\
         <server>\n    host 127.0.0.1\n    port {bport}\n  </server>\n\
         <buffer>\n    flush_mode immediate\n  </buffer>\n</match>\n"
    ));
    wait_port(aport);
    send_forward(
        aport,
        "t.x",
        &[(1700000300, 1, "a"), (1700000301, 2, "b")],
        true,
    );
    wait_lines(&b, 2);
    a.stop();
    let got = b.stop();
    assert_eq!(
        got,
        vec![
            "2023-11-14 22:18:20.000000001 +0000 t.x: {\"n\":1,\"s\":\"a\"}",
            "2023-11-14 22:18:21.000000002 +0000 t.x: {\"n\":2,\"s\":\"b\"}",
        ]
    );
}

#[test]
fn out_forward_with_wrong_key_delivers_nothing() {
    let bport = free_port();
    let b = Ferrentd::start(&format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {bport}\n\
         <security>\n    self_hostname ferrentd-b\n    shared_key right\n  </security>\n</source>\n{STDOUT_MATCH}"
    ));
    wait_port(bport);
    let aport = free_port();
    let a = Ferrentd::start(&format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {aport}\n</source>\n\
         <match fluent.**>\n  @type null\n</match>\n<match **>\n  @type forward\n  heartbeat_type none\n\
         <security>\n    self_hostname ferrentd-a\n    shared_key wrong\n  </security>\n\
         <server>\n    host 127.0.0.1\n    port {bport}\n  </server>\n\
         <buffer>\n    flush_mode immediate\n    retry_max_times 1\n    retry_wait 0.1\n  </buffer>\n</match>\n"
    ));
    wait_port(aport);
    send_forward(aport, "t.x", &[(1700000300, 1, "a")], true);
    let alog = a.wait_log("authentication failed: shared_key mismatch");
    let (got, blog) = b.stop_with_log();
    a.stop();
    assert!(got.is_empty(), "{got:?}");
    assert!(blog.contains("Shared key mismatch"), "{blog}");
    assert!(
        alog.contains("authentication failed: shared_key mismatch"),
        "{alog}"
    );
}

#[test]
fn udp_heartbeat_and_json_connection_with_ack() {
    use std::io::{Read, Write};
    let port = free_port();
    let fd = Ferrentd::start(&format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n{STDOUT_MATCH}"
    ));
    wait_port(port);
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(WAIT)).unwrap();
    udp.send_to(b"\0", ("127.0.0.1", port)).unwrap();
    let mut b = [9u8; 8];
    let (n, _) = udp.recv_from(&mut b).unwrap();
    assert_eq!(&b[..n], b"\0");

    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(br#"["json.t", 1700000000, {"a":1,"b":[true,null]}, {"chunk":"j1"}]"#)
        .unwrap();
    let mut resp = Vec::new();
    let mut buf = [0u8; 64];
    while !resp.ends_with(b"}") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed before the ack");
        resp.extend_from_slice(&buf[..n]);
    }
    assert_eq!(resp, br#"{"ack":"j1"}"#.to_vec());
    drop(s);
    assert_eq!(
        fd.stop(),
        vec!["2023-11-14 22:13:20.000000000 +0000 json.t: {\"a\":1,\"b\":[true,null]}"]
    );
}
