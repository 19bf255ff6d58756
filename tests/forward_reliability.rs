//! Delivery guarantees through in_forward → buffer → out_forward: kill -9 with a file buffer
//! loses nothing that was acknowledged, a destination that is down then back gets everything in
//! order, `overflow_action block` slows the sender instead of failing it, and a hostile stream
//! closes only its own connection.

mod forward_common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ferrentd::event::Value;
use forward_common::*;

const DEST: &str =
    "<match fluent.**>\n  @type null\n</match>\n<match **>\n  @type stdout\n</match>\n";

fn dest_conf(port: u16) -> String {
    format!("<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n{DEST}")
}

fn relay_conf(port: u16, dest: u16, buffer: &str) -> String {
    format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n\
         <match fluent.**>\n  @type null\n</match>\n<match **>\n  @type forward\n  require_ack_response true\n  ack_response_timeout 2\n\
         heartbeat_type none\n  <server>\n    host 127.0.0.1\n    port {dest}\n  </server>\n\
         <buffer tag>\n{buffer}\n    flush_mode interval\n    flush_interval 0.2\n\
         retry_wait 0.2\n    retry_max_interval 1\n    retry_forever true\n  </buffer>\n</match>\n"
    )
}

/// The `s` values printed by a destination, per tag, in output order.
fn received(lines: &[String]) -> HashMap<String, Vec<String>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    for l in lines {
        // "2023-… +0000 TAG: {"n":…,"s":"ID"}"
        let Some((head, json)) = l.split_once(": {") else {
            continue;
        };
        let tag = head.rsplit(' ').next().unwrap_or("").to_string();
        let v: serde_json::Value = serde_json::from_str(&format!("{{{json}")).unwrap();
        m.entry(tag)
            .or_default()
            .push(v["s"].as_str().unwrap_or("").to_string());
    }
    m
}

/// Sends `batches` Forward messages of `per` events on one connection, each waiting for its ack;
/// returns the ids acknowledged, per tag.
fn send_acked(
    port: u16,
    tags: &[&str],
    batches: usize,
    per: usize,
) -> HashMap<String, Vec<String>> {
    let mut acked: HashMap<String, Vec<String>> = HashMap::new();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    for b in 0..batches {
        let tag = tags[b % tags.len()];
        let ids: Vec<String> = (0..per).map(|i| format!("{tag}-{b}-{i}")).collect();
        let evs: Vec<(i64, u32, &str)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (1700000000 + b as i64, i as u32, id.as_str()))
            .collect();
        let cid = format!("c{b}");
        s.write_all(&forward_message(tag, &evs, Some(&cid)))
            .unwrap();
        let v = read_value(&mut s).expect("ack");
        assert_eq!(
            v.as_map().and_then(|m| m.get("ack")).cloned(),
            Some(Value::str(cid.as_str()))
        );
        acked.entry(tag.to_string()).or_default().extend(ids);
    }
    acked
}

#[test]
fn kill_9_with_file_buffer_loses_no_acknowledged_event() {
    let bufdir = tempfile::tempdir().unwrap();
    let dest_port = free_port();
    let port = free_port();
    let conf = relay_conf(
        port,
        dest_port,
        &format!(
            "    @type file\n    path {}\n",
            bufdir.path().join("buf").display()
        ),
    );
    // The destination is down: everything acknowledged sits in the file buffer.
    let relay = Ferrentd::start(&conf);
    wait_port(port);
    let acked = send_acked(port, &["r.a", "r.b"], 40, 25);
    let _ = relay.kill9();

    let dest = Ferrentd::start(&dest_conf(dest_port));
    wait_port(dest_port);
    let relay = Ferrentd::start(&conf);
    wait_port(port);
    let total: usize = acked.values().map(Vec::len).sum();
    wait_lines(&dest, total);
    relay.stop();
    let got = received(&dest.stop());
    for (tag, ids) in &acked {
        let g = got.get(tag).cloned().unwrap_or_default();
        let mut missing: Vec<&String> = ids.iter().filter(|i| !g.contains(i)).collect();
        missing.truncate(5);
        assert!(
            missing.is_empty(),
            "{tag}: acknowledged but never delivered: {missing:?}"
        );
        assert!(g.iter().all(|i| ids.contains(i)), "{tag}: invented events");
    }
    assert_eq!(got.len(), acked.len());
}

#[test]
fn destination_down_then_back_gets_everything_in_order() {
    let dest_port = free_port();
    let port = free_port();
    let relay = Ferrentd::start(&relay_conf(port, dest_port, "    @type memory\n"));
    wait_port(port);
    let acked = send_acked(port, &["o.a", "o.b", "o.c"], 30, 10);
    std::thread::sleep(Duration::from_millis(500)); // a few failed flushes
    let dest = Ferrentd::start(&dest_conf(dest_port));
    wait_port(dest_port);
    let total: usize = acked.values().map(Vec::len).sum();
    wait_lines(&dest, total);
    relay.stop();
    let got = received(&dest.stop());
    for (tag, ids) in &acked {
        let mut g = got.get(tag).cloned().unwrap_or_default();
        // At-least-once: a retried chunk may repeat; drop repeats, keep first arrival order.
        let mut seen = std::collections::HashSet::new();
        g.retain(|i| seen.insert(i.clone()));
        assert_eq!(&g, ids, "{tag}");
    }
}

fn vm_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn overflow_block_slows_the_sender_and_bounds_memory() {
    let dest_port = free_port();
    let port = free_port();
    let relay = Ferrentd::start(&relay_conf(
        port,
        dest_port,
        "    @type memory\n    chunk_limit_size 64k\n    total_limit_size 256k\n    overflow_action block\n",
    ));
    wait_port(port);
    // Each batch is ~20 KiB; 200 batches would need ~4 MiB of buffer.
    let sender = std::thread::spawn(move || {
        let big = "x".repeat(200);
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let mut acks = 0;
        for b in 0..200 {
            let ids: Vec<String> = (0..100).map(|i| format!("{b}-{i}-{big}")).collect();
            let evs: Vec<(i64, u32, &str)> = ids
                .iter()
                .enumerate()
                .map(|(i, id)| (1700000000, i as u32, id.as_str()))
                .collect();
            s.write_all(&forward_message("blk", &evs, Some("c")))
                .unwrap();
            match read_value(&mut s) {
                Some(_) => acks += 1,
                None => break,
            }
        }
        acks
    });
    // The sender stalls: the buffer is full and the destination is down.
    let start = Instant::now();
    let mut rss_peak = 0;
    while start.elapsed() < Duration::from_secs(3) {
        rss_peak = rss_peak.max(vm_rss_kib(relay.pid()));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !sender.is_finished(),
        "the sender should be blocked, not failed"
    );
    assert!(rss_peak < 150 * 1024, "relay RSS grew to {rss_peak} KiB");
    let dest = Ferrentd::start(&dest_conf(dest_port));
    wait_port(dest_port);
    let acks = sender.join().unwrap();
    assert_eq!(
        acks, 200,
        "every batch acknowledged once the destination is back"
    );
    wait_lines(&dest, 200 * 100);
    relay.stop();
    let got = dest.stop();
    assert!(got.len() >= 200 * 100, "{} lines", got.len());
}

#[test]
fn hostile_stream_closes_only_its_connection() {
    let port = free_port();
    let fd = Ferrentd::start(&dest_conf(port));
    wait_port(port);
    // A good connection opened first stays usable after the hostile one is dropped.
    let mut good = TcpStream::connect(("127.0.0.1", port)).unwrap();
    good.set_read_timeout(Some(WAIT)).unwrap();
    let mut bad = TcpStream::connect(("127.0.0.1", port)).unwrap();
    bad.set_read_timeout(Some(WAIT)).unwrap();
    bad.write_all(&[0x93, 0xa1, b't', 0xc1, 0xc1]).unwrap();
    let mut b = [0u8; 16];
    assert_eq!(
        bad.read(&mut b).unwrap_or(0),
        0,
        "the hostile connection is closed"
    );
    good.write_all(&forward_message(
        "ok",
        &[(1700000000, 0, "fine")],
        Some("c1"),
    ))
    .unwrap();
    assert!(read_value(&mut good).is_some());
    let (lines, log) = fd.stop_with_log();
    assert_eq!(
        lines,
        vec!["2023-11-14 22:13:20.000000000 +0000 ok: {\"n\":0,\"s\":\"fine\"}"]
    );
    assert!(log.contains("forward error"), "{log}");
}
