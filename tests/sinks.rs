//! The HTTP sinks (loki, elasticsearch) against scripted fake servers on 127.0.0.1: retries on
//! 429/5xx deliver everything once, a 400 never stalls later chunks, ES resends only the failed
//! items, a file buffer survives kill -9 while the sink is down, and bad input gives a clear
//! error or an @ERROR event.

mod forward_common;
mod sink_common;

use std::collections::HashMap;
use std::net::TcpListener;
use std::time::Duration;

use forward_common::*;
use sink_common::*;

fn forward_source(port: u16) -> String {
    format!("<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n")
}

const FAST_BUFFER: &str = "flush_mode interval\n    flush_interval 0.2\n    retry_wait 0.2\n    retry_max_interval 0.5\n    retry_forever true";

fn loki_conf(port: u16, sink: u16, extra: &str, buffer: &str) -> String {
    format!(
        "{}<match **>\n  @type loki\n  url http://127.0.0.1:{sink}\n  line_format json\n{extra}\n  <buffer>\n    {buffer}\n  </buffer>\n</match>\n",
        forward_source(port)
    )
}

fn es_conf(port: u16, sink: u16, extra: &str, buffer: &str) -> String {
    format!(
        "{}<match **>\n  @type elasticsearch\n  host 127.0.0.1\n  port {sink}\n  request_timeout 2s\n{extra}\n  <buffer tag>\n    {buffer}\n  </buffer>\n</match>\n<label @ERROR>\n  <match **>\n    @type stdout\n  </match>\n</label>\n",
        forward_source(port)
    )
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

fn send_ids(port: u16, tag: &str, ids: &[String]) {
    let evs: Vec<(i64, u32, &str)> = ids
        .iter()
        .enumerate()
        .map(|(i, s)| (1700000000, i as u32, s.as_str()))
        .collect();
    send_forward(port, tag, &evs, true);
}

/// `s` values delivered (answered 2xx) to a fake Loki, with their counts.
fn loki_delivered(reqs: &[(Req, bool)]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for (r, ok) in reqs {
        if !ok || r.method != "POST" {
            continue;
        }
        for line in loki_lines(&r.text()) {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            *m.entry(v["s"].as_str().unwrap().to_string()).or_insert(0) += 1;
        }
    }
    m
}

#[test]
fn loki_5xx_and_429_are_retried_until_delivered_once() {
    let sink = FakeSink::start(Box::new(|_r, n| match n {
        0 | 1 => Answer::Status(500, "boom".into()),
        2 => Answer::Status(429, "slow down".into()),
        _ => Answer::Status(204, String::new()),
    }));
    let port = free_port();
    let fd = Ferrentd::start(&loki_conf(port, sink.port, "", FAST_BUFFER));
    wait_port(port);
    let want = ids("a", 50);
    send_ids(port, "app.x", &want);
    let reqs = sink.wait_for("a delivered push", |r| r.iter().any(|(_, ok)| *ok));
    let got = loki_delivered(&reqs);
    assert_eq!(got.len(), want.len());
    assert!(got.values().all(|&c| c == 1), "{got:?}");
    let log = fd.stop_with_log().1;
    assert!(log.contains("500"), "{log}");
}

#[test]
fn loki_400_is_dropped_with_reason_and_does_not_block() {
    let sink = FakeSink::start(Box::new(|r, _n| {
        if r.text().contains("bad-0") {
            Answer::Status(400, "entry out of order for stream".into())
        } else {
            Answer::Status(204, String::new())
        }
    }));
    let port = free_port();
    let fd = Ferrentd::start(&loki_conf(port, sink.port, "", FAST_BUFFER));
    wait_port(port);
    send_ids(port, "app.x", &ids("bad", 3));
    sink.wait_for("the rejected push", |r| !r.is_empty());
    send_ids(port, "app.x", &ids("good", 5));
    let reqs = sink.wait_for("the next push", |r| r.iter().any(|(_, ok)| *ok));
    let got = loki_delivered(&reqs);
    assert_eq!(got.len(), 5, "{got:?}");
    // The rejected chunk was sent once, never retried.
    let rejected = reqs
        .iter()
        .filter(|(r, _)| r.text().contains("bad-0"))
        .count();
    assert_eq!(rejected, 1);
    let log = fd.wait_log("entry out of order");
    assert!(log.contains("3 events dropped"), "{log}");
}

#[test]
fn loki_connection_reset_and_slow_answer_are_retried() {
    let sink = FakeSink::start(Box::new(|_r, n| match n {
        0 => Answer::Reset,
        1 => Answer::Slow(Duration::from_millis(300), 503, String::new()),
        _ => Answer::Status(204, String::new()),
    }));
    let port = free_port();
    let _fd = Ferrentd::start(&loki_conf(port, sink.port, "", FAST_BUFFER));
    wait_port(port);
    let want = ids("r", 10);
    send_ids(port, "app.x", &want);
    let reqs = sink.wait_for("a delivered push", |r| r.iter().any(|(_, ok)| *ok));
    assert_eq!(loki_delivered(&reqs).len(), 10);
}

fn es_script(fail_bulks: usize, item_status: fn(usize, usize) -> u16) -> Box<Script> {
    let count = std::sync::atomic::AtomicUsize::new(0);
    Box::new(move |r, _n| {
        if r.method == "GET" {
            return Answer::Status(200, ES_INFO.into());
        }
        let k = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if k < fail_bulks {
            return Answer::Status(500, "{\"error\":\"boom\"}".into());
        }
        Answer::Status(200, bulk_answer(&r.text(), |i, _| item_status(k, i)))
    })
}

/// Docs indexed (item 2xx) per `s`, from the recorded bulk requests and the script's rule.
fn es_indexed(
    reqs: &[(Req, bool)],
    status: impl Fn(usize, usize) -> u16,
) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    let mut k = 0;
    for (r, ok) in reqs {
        if r.method != "POST" {
            continue;
        }
        let this = k;
        k += 1;
        if !ok {
            continue;
        }
        for (i, d) in bulk_docs(&r.text()).iter().enumerate() {
            if (200..300).contains(&status(this, i)) {
                *m.entry(d["s"].as_str().unwrap().to_string()).or_insert(0) += 1;
            }
        }
    }
    m
}

#[test]
fn es_retries_only_failed_items_and_whole_request_failures() {
    // Bulk 0 and 1: HTTP 500; bulk 2: every odd item 429 (es_rejected_execution_exception),
    // item 4 a 503; then all 201.
    fn rule(k: usize, i: usize) -> u16 {
        if k == 2 && i % 2 == 1 {
            429
        } else if k == 2 && i == 4 {
            503
        } else {
            201
        }
    }
    let sink = FakeSink::start(es_script(2, rule));
    let port = free_port();
    let fd = Ferrentd::start(&es_conf(port, sink.port, "  index_name t", FAST_BUFFER));
    wait_port(port);
    let want = ids("e", 20);
    send_ids(port, "app.x", &want);
    let reqs = sink.wait_for("the retry of the failed items", |r| {
        r.iter().filter(|(q, ok)| q.method == "POST" && *ok).count() >= 2
    });
    let posts: Vec<&Req> = reqs
        .iter()
        .filter(|(q, _)| q.method == "POST")
        .map(|(q, _)| q)
        .collect();
    // The resend carries exactly the 11 failed items.
    assert_eq!(bulk_docs(&posts[3].text()).len(), 11);
    let got = es_indexed(&reqs, |k, i| if k < 2 { 500 } else { rule(k, i) });
    assert_eq!(got.len(), 20, "{got:?}");
    assert!(got.values().all(|&c| c == 1), "{got:?}");
    assert!(fd.stop().is_empty(), "no @ERROR events expected");
}

#[test]
fn es_item_400_goes_to_error_label_and_later_chunks_flow() {
    let sink = FakeSink::start(Box::new(|r, _| {
        if r.method == "GET" {
            return Answer::Status(200, ES_INFO.into());
        }
        Answer::Status(
            200,
            bulk_answer(&r.text(), |_, d| {
                if d["s"].as_str().unwrap_or("").starts_with("bad") {
                    400
                } else {
                    201
                }
            }),
        )
    }));
    let port = free_port();
    let fd = Ferrentd::start(&es_conf(
        port,
        sink.port,
        "  log_es_400_reason true",
        FAST_BUFFER,
    ));
    wait_port(port);
    send_ids(port, "app.x", &["bad-1".to_string(), "ok-1".to_string()]);
    sink.wait_for("first bulk", |r| r.iter().any(|(q, _)| q.method == "POST"));
    send_ids(port, "app.x", &ids("later", 3));
    sink.wait_for("second bulk", |r| {
        r.iter().filter(|(q, _)| q.method == "POST").count() >= 2
    });
    let lines = wait_lines(&fd, 1);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("\"s\":\"bad-1\""), "{lines:?}");
    let log = fd.stop_with_log().1;
    assert!(log.contains("mapper_parsing_exception"), "{log}");
}

#[test]
fn es_invalid_utf8_value_goes_to_error_label() {
    let sink = FakeSink::start(Box::new(|r, _| {
        if r.method == "GET" {
            return Answer::Status(200, ES_INFO.into());
        }
        Answer::Status(200, bulk_answer(&r.text(), |_, _| 201))
    }));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.log"), b"good line\nbad \xff\xfe line\n").unwrap();
    let conf = format!(
        "<source>\n  @type tail\n  path ./in.log\n  tag app.x\n  read_from_head true\n  <parse>\n    @type none\n  </parse>\n</source>\n\
         <match app.**>\n  @type elasticsearch\n  host 127.0.0.1\n  port {}\n  <buffer>\n    {FAST_BUFFER}\n  </buffer>\n</match>\n\
         <label @ERROR>\n  <match **>\n    @type stdout\n  </match>\n</label>\n",
        sink.port
    );
    let fd = Ferrentd::start_in(dir, &conf);
    let reqs = sink.wait_for("a bulk", |r| r.iter().any(|(q, _)| q.method == "POST"));
    fd.wait_log("send an error event to @ERROR");
    let out = fd.dir.path().join("stdout");
    let start = std::time::Instant::now();
    let mut raw = Vec::new();
    while raw.is_empty() && start.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(50));
        raw = std::fs::read(&out).unwrap_or_default();
    }
    let (_, log) = fd.stop_with_log();
    // The record is printed with its bytes as they are (not valid UTF-8).
    let lines: Vec<&[u8]> = raw
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let post = reqs.iter().find(|(q, _)| q.method == "POST").unwrap();
    let docs = bulk_docs(&post.0.text());
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["message"], "good line");
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].windows(4).any(|w| w == b"\xff\xfe l"), "{log}");
    assert!(log.contains("invalid UTF-8"), "{log}");
}

#[test]
fn es_unreachable_at_start_then_reachable() {
    // Reserve a port, start ferrentd while nothing listens there, then open the sink.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let sink_port = l.local_addr().unwrap().port();
    drop(l);
    let port = free_port();
    let fd = Ferrentd::start(&es_conf(port, sink_port, "", FAST_BUFFER));
    wait_port(port);
    send_ids(port, "app.x", &ids("late", 4));
    let log = fd.wait_log("Could not connect Elasticsearch");
    assert!(log.contains("Could not connect Elasticsearch"), "{log}");
    let l = TcpListener::bind(("127.0.0.1", sink_port)).unwrap();
    let sink = FakeSink::start_on(
        l,
        Box::new(|r, _| {
            if r.method == "GET" {
                return Answer::Status(200, ES_INFO.into());
            }
            Answer::Status(200, bulk_answer(&r.text(), |_, _| 201))
        }),
    );
    let reqs = sink.wait_for("the bulk", |r| r.iter().any(|(q, _)| q.method == "POST"));
    let post = reqs.iter().find(|(q, _)| q.method == "POST").unwrap();
    assert_eq!(bulk_docs(&post.0.text()).len(), 4);
    drop(fd);
}

#[test]
fn file_buffer_survives_kill9_while_sink_is_down() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let sink_port = l.local_addr().unwrap().port();
    drop(l);
    let port = free_port();
    let buffer = format!("@type file\n    path ./buf\n    {FAST_BUFFER}");
    let conf = loki_conf(port, sink_port, "", &buffer);
    let fd = Ferrentd::start(&conf);
    wait_port(port);
    let want = ids("k", 30);
    send_ids(port, "app.x", &want[..15]);
    send_ids(port, "app.y", &want[15..]);
    // Wait until a flush was attempted (so the chunks are on disk and queued), then kill.
    fd.wait_log("failed to write post");
    let dir = fd.kill9();
    let sink = FakeSink::start_on(
        TcpListener::bind(("127.0.0.1", sink_port)).unwrap(),
        Box::new(|_, _| Answer::Status(204, String::new())),
    );
    let port2 = free_port();
    let fd = Ferrentd::start_in(dir, &loki_conf(port2, sink_port, "", &buffer));
    let reqs = sink.wait_for("all events", |r| loki_delivered(r).len() >= 30);
    let got = loki_delivered(&reqs);
    assert_eq!(got.len(), 30);
    assert!(got.values().all(|&c| c == 1), "{got:?}");
    drop(fd);
}

#[test]
fn bad_config_values_are_errors_at_dry_run() {
    for (conf, needle) in [
        ("@type loki\n  url ftp://x", "HTTP/HTTPS"),
        (
            "@type loki\n  url http://x\n  ca_cert /nonexistent/ca.pem",
            "not found",
        ),
        (
            "@type elasticsearch\n  client_cert /nonexistent/c.pem",
            "client_cert",
        ),
        ("@type elasticsearch\n  hosts http://[bad", "invalid URL"),
        (
            "@type elasticsearch\n  write_operation merge",
            "write_operation",
        ),
        (
            "@type elasticsearch_data_stream\n  data_stream_name Bad",
            "lowercase",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fluent.conf");
        std::fs::write(&path, format!("<match **>\n  {conf}\n</match>\n")).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferrentd"))
            .arg("--dry-run")
            .arg("-c")
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{conf}: {err}");
        assert!(err.contains(needle), "{conf}: {err}");
    }
}

#[test]
fn out_http_retries_503_and_sends_headers_auth_and_json_array() {
    let sink = FakeSink::start(Box::new(|_r, n| match n {
        0 => Answer::Status(503, "busy".into()),
        _ => Answer::Status(200, "{}".into()),
    }));
    let port = free_port();
    let conf = format!(
        "{}<match **>\n  @type http\n  endpoint http://127.0.0.1:{}/in/${{tag}}\n  json_array true\n  compress gzip\n  headers {{\"x-static\":\"s\"}}\n  headers_from_placeholders {{\"x-tag\":\"t-${{tag}}\"}}\n  <auth>\n    username u\n    password p\n  </auth>\n  <buffer tag>\n    {FAST_BUFFER}\n  </buffer>\n</match>\n",
        forward_source(port),
        sink.port
    );
    let _fd = Ferrentd::start(&conf);
    wait_port(port);
    send_ids(port, "app.h", &ids("h", 3));
    let reqs = sink.wait_for("a delivered request", |r| r.iter().any(|(_, ok)| *ok));
    let (r, _) = reqs.iter().find(|(_, ok)| *ok).unwrap();
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/in/app.h");
    assert_eq!(r.header("x-static"), Some("s"));
    assert_eq!(r.header("x-tag"), Some("t-app.h"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("authorization"), Some("Basic dTpw"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert_eq!(reqs.len(), 2, "one 503, then the retry");
}

#[test]
fn out_http_error_status_does_not_block_later_chunks() {
    let sink = FakeSink::start(Box::new(|r, _| {
        if r.text().contains("bad-0") {
            Answer::Status(400, "no".into())
        } else {
            Answer::Status(200, String::new())
        }
    }));
    let port = free_port();
    let conf = format!(
        "{}<match **>\n  @type http\n  endpoint http://127.0.0.1:{}/\n  retryable_response_codes [503]\n  <buffer>\n    {FAST_BUFFER}\n  </buffer>\n</match>\n",
        forward_source(port),
        sink.port
    );
    let fd = Ferrentd::start(&conf);
    wait_port(port);
    send_ids(port, "app.h", &ids("bad", 2));
    sink.wait_for("the rejected request", |r| !r.is_empty());
    send_ids(port, "app.h", &ids("good", 2));
    let reqs = sink.wait_for("the next request", |r| r.iter().any(|(_, ok)| *ok));
    assert_eq!(
        reqs.iter()
            .filter(|(r, _)| r.text().contains("bad-0"))
            .count(),
        1
    );
    let log = fd.stop_with_log().1;
    assert!(log.contains("400"), "{log}");
}

/// Throughput of each HTTP sink next to out_file's: `scripts/bench-sinks` runs it. in_tail
/// reads one file of JSON lines from the head; the time is from start until the receiver (a
/// fake sink answering at once, or the output file) holds every event.
#[test]
#[ignore]
fn bench_sinks() {
    let n: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let mut input = Vec::with_capacity(n * 160);
    for i in 0..n {
        input.extend_from_slice(
            format!(
                "{{\"time\":\"2024-03-01T10:00:{:02}.{:09}Z\",\"level\":\"info\",\"msg\":\"GET /api/items/{i} 200\",\"latency_ms\":{},\"user\":\"u{}\",\"pod\":\"web-{}\"}}\n",
                i % 60,
                i,
                i % 997,
                i % 50,
                i % 7
            )
            .as_bytes(),
        );
    }
    let mb = input.len() as f64 / 1e6;
    let buffer = std::env::var("BENCH_BUFFER").unwrap_or_else(|_| "@type memory\n    flush_mode interval\n    flush_interval 0.3\n    flush_thread_interval 0.05\n    chunk_limit_size 4m\n    flush_thread_count 2\n    total_limit_size 1g".to_string());
    let source = "<source>\n  @type tail\n  path ./in.log\n  tag bench\n  read_from_head true\n  <parse>\n    @type json\n    time_format %Y-%m-%dT%H:%M:%S.%NZ\n  </parse>\n</source>\n";
    let count_es = |b: &[u8]| b.iter().filter(|&&c| c == b'\n').count() / 2;
    let count_lines = |b: &[u8]| b.iter().filter(|&&c| c == b'\n').count();
    let count_loki = |b: &[u8]| b.windows(3).filter(|w| w == b"[\"1").count();
    type Counter = fn(&[u8]) -> usize;
    let sinks: Vec<(&str, String, Counter)> = vec![
        ("loki", "@type loki\n  url http://127.0.0.1:{PORT}\n  line_format json\n  <label>\n    pod\n  </label>".into(), count_loki),
        ("elasticsearch", "@type elasticsearch\n  host 127.0.0.1\n  port {PORT}\n  logstash_format true".into(), count_es),
        ("http", "@type http\n  endpoint http://127.0.0.1:{PORT}/bulk\n  retryable_response_codes [503]".into(), count_lines),
    ];
    let mut results = Vec::new();
    // out_file first: the reference.
    {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("in.log"), &input).unwrap();
        let conf = format!("{source}<match bench>\n  @type file\n  path ./out/bench\n  append true\n  <buffer>\n    {buffer}\n  </buffer>\n</match>\n");
        let start = std::time::Instant::now();
        let fd = Ferrentd::start_in(dir, &conf);
        let out = fd.dir.path().join("out");
        loop {
            let mut lines = 0;
            if let Ok(rd) = std::fs::read_dir(&out) {
                for e in rd.flatten() {
                    lines += count_lines(&std::fs::read(e.path()).unwrap_or_default());
                }
            }
            if lines >= n {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(300),
                "out_file: {lines} of {n}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        results.push(("file", start.elapsed().as_secs_f64()));
        drop(fd);
    }
    for (name, out, count) in sinks {
        let total = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let t2 = total.clone();
        let t0 = std::time::Instant::now();
        let sink = FakeSink::start(Box::new(move |r, k| {
            if std::env::var("BENCH_TRACE").is_ok() {
                eprintln!(
                    "{name} req {k} at {:.2}s, {} bytes",
                    t0.elapsed().as_secs_f64(),
                    r.body.len()
                );
            }
            if r.method == "GET" {
                return Answer::Status(200, ES_INFO.into());
            }
            t2.fetch_add(count(&r.body), std::sync::atomic::Ordering::Relaxed);
            match name {
                "loki" => Answer::Status(204, String::new()),
                "elasticsearch" => {
                    Answer::Status(200, "{\"took\":1,\"errors\":false,\"items\":[]}".into())
                }
                _ => Answer::Status(200, String::new()),
            }
        }));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("in.log"), &input).unwrap();
        let conf = format!(
            "{source}<match bench>\n  {}\n  <buffer>\n    {buffer}\n  </buffer>\n</match>\n",
            out.replace("{PORT}", &sink.port.to_string())
        );
        // The request log would hold every body: keep only the counts.
        let start = std::time::Instant::now();
        let fd = Ferrentd::start_in(dir, &conf);
        while total.load(std::sync::atomic::Ordering::Relaxed) < n {
            sink.log.lock().unwrap().clear();
            assert!(
                start.elapsed() < Duration::from_secs(300),
                "{name}: {} of {n}\n{}",
                total.load(std::sync::atomic::Ordering::Relaxed),
                fd.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        results.push((name, start.elapsed().as_secs_f64()));
        if std::env::var("BENCH_TRACE").is_ok() {
            eprintln!("{}", fd.log());
        }
        drop(fd);
    }
    let file_rate = n as f64 / results[0].1;
    println!("\n{n} events, {mb:.1} MB of JSON lines (in_tail -> output, memory buffer, 2 flush threads)");
    println!(
        "{:<15} {:>10} {:>12} {:>8} {:>10}",
        "output", "seconds", "events/s", "MB/s", "vs file"
    );
    for (name, secs) in &results {
        let rate = n as f64 / secs;
        println!(
            "{name:<15} {secs:>10.2} {rate:>12.0} {:>8.1} {:>9.0}%",
            mb / secs,
            rate / file_rate * 100.0
        );
    }
}
