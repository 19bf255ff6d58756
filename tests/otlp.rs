//! `@type opentelemetry` input and output against real OTLP peers and each other: the
//! OpenTelemetry Python SDK's HTTP and gRPC exporters send to our input; a receiver built on the
//! Python `opentelemetry-proto` package and grpcio (tests/otlp/receiver.py) decodes what our
//! output sends and scripts its answers (503 then 200, 400, partial_success, UNAVAILABLE); our
//! output feeds our input over HTTP and gRPC. Each test starts the release binary on 127.0.0.1
//! ports, waits (bounded) for what it expects and stops it by PID.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn lines_of(r: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

struct Proc {
    child: Child,
    stdout: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    fn ferrentd(dir: &Path, conf: &str, envs: &[(&str, String)]) -> Proc {
        std::fs::write(dir.join("fluent.conf"), conf).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrentd"));
        cmd.args(["-c", "fluent.conf"]).current_dir(dir);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        Proc::spawn(cmd)
    }

    fn python(args: &[&str]) -> Proc {
        let mut cmd = Command::new("python3");
        cmd.args(args);
        Proc::spawn(cmd)
    }

    fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = lines_of(child.stdout.take().unwrap());
        let err = lines_of(child.stderr.take().unwrap());
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for l in err {
                let mut s = sink.lock().unwrap();
                s.push_str(&l);
                s.push('\n');
            }
        });
        Proc {
            child,
            stdout,
            stderr,
        }
    }

    /// Collects stdout lines until `done` holds for them (bounded).
    fn wait_lines(&self, what: &str, got: &mut Vec<String>, done: impl Fn(&[String]) -> bool) {
        let start = Instant::now();
        while !done(got) {
            let left = WAIT.checked_sub(start.elapsed()).unwrap_or_else(|| {
                panic!(
                    "timed out waiting for {what}; got {got:?}\nstderr:\n{}",
                    self.stderr()
                )
            });
            if let Ok(l) = self
                .stdout
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                got.push(l);
            }
        }
    }

    fn wait_stderr(&self, what: &str, pred: impl Fn(&str) -> bool) {
        let start = Instant::now();
        while !pred(&self.stderr()) {
            assert!(
                start.elapsed() < WAIT,
                "timed out waiting for {what}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn stop(&mut self) -> String {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let start = Instant::now();
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            if start.elapsed() > Duration::from_secs(15) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(100));
        self.stderr()
    }
}

/// A failed assertion must not leave a receiver or ferrentd running.
impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until `port` on 127.0.0.1 accepts connections.
fn wait_port(port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < WAIT, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `time tag: {json}` lines of out_stdout → (tag, record).
fn events(lines: &[String]) -> Vec<(String, serde_json::Value)> {
    lines
        .iter()
        .filter_map(|l| {
            let (head, json) = l.split_once(": {")?;
            let tag = head.rsplit(' ').next()?.to_string();
            Some((tag, serde_json::from_str(&format!("{{{json}")).ok()?))
        })
        .collect()
}

fn input_conf(http: u16, grpc: u16, extra: &str) -> String {
    format!(
        "<source>\n  @type opentelemetry\n  tag otel.${{type}}\n  {extra}\n  <http>\n    bind 127.0.0.1\n    port {http}\n  </http>\n  <grpc>\n    bind 127.0.0.1\n    port {grpc}\n  </grpc>\n</source>\n"
    )
}

#[test]
fn python_sdk_exporters_reach_the_input_over_http_and_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let (h, g) = (free_port(), free_port());
    let conf =
        input_conf(h, g, "split_log_records true") + "<match otel.**>\n  @type stdout\n</match>\n";
    let mut p = Proc::ferrentd(dir.path(), &conf, &[]);
    wait_port(h);
    wait_port(g);
    let send = |args: &[&str]| {
        let out = Command::new("python3")
            .arg(root().join("tests/otlp/send_logs.py"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let ids = [
        send(&["http", &format!("http://127.0.0.1:{h}"), "2"]),
        send(&["http", &format!("http://127.0.0.1:{h}"), "1", "gzip"]),
        send(&["grpc", &format!("127.0.0.1:{g}"), "2", "gzip"]),
    ];
    let mut got = Vec::new();
    p.wait_lines("5 LogRecords", &mut got, |l| events(l).len() >= 5);
    let ev = events(&got);
    assert_eq!(ev.len(), 5, "{got:?}");
    for (i, (tag, r)) in ev.iter().enumerate() {
        assert_eq!(tag, "otel.logs");
        let want_ids = &ids[match i {
            0 | 1 => 0,
            2 => 1,
            _ => 2,
        }];
        assert_eq!(r["trace_id"], want_ids["trace_id"], "{r}");
        assert_eq!(r["span_id"], want_ids["span_id"], "{r}");
        let n = if i == 1 || i == 4 { 1 } else { 0 };
        assert_eq!(r["body"], format!("order {n} failed"), "{r}");
        assert_eq!(r["severity_text"], "WARN", "{r}");
        assert_eq!(r["severity_number"], 13, "{r}");
        assert_eq!(r["attributes"]["order.id"], n, "{r}");
        assert_eq!(r["attributes"]["amount"], 12.5, "{r}");
        assert_eq!(r["resource"]["service.name"], "checkout", "{r}");
        assert_eq!(r["scope"]["name"], "shop.checkout", "{r}");
    }
    let err = p.stop();
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn default_record_is_the_plugins_and_malformed_bodies_get_400() {
    let dir = tempfile::tempdir().unwrap();
    let (h, g) = (free_port(), free_port());
    let conf = input_conf(h, g, "") + "<match otel.**>\n  @type stdout\n</match>\n";
    let mut p = Proc::ferrentd(dir.path(), &conf, &[]);
    wait_port(h);
    let client = reqwest::blocking::Client::new();
    let url = format!("http://127.0.0.1:{h}/v1/logs");
    let post = |ct: &str, body: &[u8]| {
        let r = client
            .post(&url)
            .header("Content-Type", ct)
            .body(body.to_vec())
            .send()
            .unwrap();
        (r.status().as_u16(), r.bytes().unwrap().to_vec())
    };
    assert_eq!(post("application/x-protobuf", b"\x0a\xff\xff\xff").0, 400);
    assert_eq!(post("application/json", b"{\"resourceLogs\":").0, 400);
    assert_eq!(post("text/plain", b"{}").0, 415);
    p.wait_stderr("warnings for the bad bodies", |e| {
        e.matches("in_opentelemetry: POST /v1/logs").count() >= 3
    });
    // A spec-conforming OTLP/JSON body: hex ids, integer enum.
    let (status, body) = post(
        "application/json",
        br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"1700000000000000000","severityNumber":9,"body":{"stringValue":"hello"},"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}]}]}]}"#,
    );
    assert_eq!((status, body), (200, b"{}".to_vec()));
    let mut got = Vec::new();
    p.wait_lines("one event", &mut got, |l| !events(l).is_empty());
    let ev = events(&got);
    assert_eq!(ev[0].0, "otel.logs");
    assert_eq!(ev[0].1["type"], "opentelemetry_logs");
    assert_eq!(
        ev[0].1["message"],
        r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"1700000000000000000","severityNumber":"SEVERITY_NUMBER_INFO","body":{"stringValue":"hello"},"traceId":"W47/95gDgQPSabYzgT/GDA==","spanId":"7uGbfsPBsXQ="}]}]}]}"#
    );
    let err = p.stop();
    assert!(!err.contains("panicked"), "{err}");
}

/// Starts tests/otlp/receiver.py; returns it and its port.
fn receiver(proto: &str, script: &str) -> (Proc, u16) {
    let p = Proc::python(&[
        root().join("tests/otlp/receiver.py").to_str().unwrap(),
        proto,
        script,
    ]);
    let first = p
        .stdout
        .recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("receiver did not start:\n{}", p.stderr()));
    let port = first
        .strip_prefix("PORT ")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unexpected receiver line {first}"));
    (p, port)
}

fn requests(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn log_records(req: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for rl in req["request"]["resourceLogs"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for sl in rl["scopeLogs"].as_array().into_iter().flatten() {
            out.extend(sl["logRecords"].as_array().into_iter().flatten().cloned());
        }
    }
    out
}

/// A tail source over `app.log` (JSON lines) and the output under test.
fn output_conf(transport: &str, extra: &str) -> String {
    format!(
        r#"<source>
  @type tail
  path app.log
  pos_file app.pos
  read_from_head true
  tag app
  <parse>
    @type json
  </parse>
</source>
<match app>
  @type opentelemetry
  convert_records true
  resource_attributes {{"service.name":"shop"}}
  {extra}
  {transport}
  <buffer tag>
    flush_interval 0.2s
    retry_wait 0.2s
  </buffer>
</match>
"#
    )
}

fn append(dir: &Path, lines: &[&str]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("app.log"))
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

#[test]
fn output_to_a_python_http_receiver_retries_503_and_drops_400() {
    let (mut rx, port) = receiver("http", "503,200,400,200,partial:1,200");
    let dir = tempfile::tempdir().unwrap();
    append(
        dir.path(),
        &[
            r#"{"message":"one","level":"error","trace_id":"5b8efff798038103d269b633813fc60c","user":"u1"}"#,
        ],
    );
    let conf = output_conf(
        &format!("<http>\n    endpoint http://127.0.0.1:{port}\n    compress gzip\n  </http>"),
        "severity_text_key level",
    );
    let mut p = Proc::ferrentd(dir.path(), &conf, &[]);
    let mut got = Vec::new();
    // 503 (Retry-After: 0) then 200: the same request twice, delivered once.
    rx.wait_lines("503 then 200", &mut got, |l| l.len() >= 2);
    let reqs = requests(&got);
    assert_eq!(reqs[0]["request"], reqs[1]["request"]);
    assert_eq!(reqs[0]["encoding"], "gzip");
    assert_eq!(reqs[0]["content_type"], "application/x-protobuf");
    let lr = log_records(&reqs[1]);
    assert_eq!(lr.len(), 1);
    assert_eq!(lr[0]["body"]["stringValue"], "one");
    assert_eq!(lr[0]["severityText"], "error");
    assert_eq!(lr[0]["severityNumber"], "SEVERITY_NUMBER_ERROR");
    // protobuf's JSON writes bytes as base64.
    assert_eq!(lr[0]["traceId"], "W47/95gDgQPSabYzgT/GDA==");
    let attrs = serde_json::to_string(&lr[0]["attributes"]).unwrap();
    assert!(
        attrs.contains(r#"{"key":"user","value":{"stringValue":"u1"}}"#),
        "{attrs}"
    );
    assert!(
        attrs.contains(r#"{"key":"fluent.tag","value":{"stringValue":"app"}}"#),
        "{attrs}"
    );
    assert_eq!(
        reqs[1]["request"]["resourceLogs"][0]["resource"]["attributes"][0]["key"],
        "service.name"
    );
    // 400: dropped with a counted warning; the next chunk still flows.
    append(dir.path(), &[r#"{"message":"two"}"#]);
    rx.wait_lines("the 400", &mut got, |l| l.len() >= 3);
    p.wait_stderr("the drop warning", |e| {
        e.contains("400 Bad Request") && e.contains("(so far: 1 requests, 1 log records)")
    });
    append(dir.path(), &[r#"{"message":"three"}"#]);
    rx.wait_lines("the chunk after the 400", &mut got, |l| l.len() >= 4);
    assert_eq!(
        log_records(&requests(&got)[3])[0]["body"]["stringValue"],
        "three"
    );
    // partial_success is reported.
    append(dir.path(), &[r#"{"message":"four"}"#]);
    rx.wait_lines("the partial success", &mut got, |l| l.len() >= 5);
    p.wait_stderr("the partial success warning", |e| {
        e.contains("the receiver rejected 1 of 1 log records: records too old")
    });
    let err = p.stop();
    assert!(!err.contains("panicked"), "{err}");
    rx.stop();
}

#[test]
fn output_to_a_python_grpc_receiver_retries_unavailable() {
    let (mut rx, port) = receiver("grpc", "grpc:UNAVAILABLE,200,grpc:INVALID_ARGUMENT,200");
    let dir = tempfile::tempdir().unwrap();
    append(
        dir.path(),
        &[r#"{"message":"one","span_id":"eee19b7ec3c1b174"}"#],
    );
    let conf = output_conf(
        &format!("<grpc>\n    endpoint 127.0.0.1:{port}\n    compress gzip\n  </grpc>"),
        "",
    );
    let mut p = Proc::ferrentd(dir.path(), &conf, &[]);
    let mut got = Vec::new();
    rx.wait_lines("UNAVAILABLE then OK", &mut got, |l| l.len() >= 2);
    let reqs = requests(&got);
    assert_eq!(reqs[0]["request"], reqs[1]["request"]);
    let lr = log_records(&reqs[1]);
    assert_eq!(lr[0]["body"]["stringValue"], "one");
    assert_eq!(lr[0]["spanId"], "7uGbfsPBsXQ=");
    append(dir.path(), &[r#"{"message":"two"}"#]);
    rx.wait_lines("INVALID_ARGUMENT", &mut got, |l| l.len() >= 3);
    p.wait_stderr("the drop warning", |e| e.contains("InvalidArgument"));
    append(dir.path(), &[r#"{"message":"three"}"#]);
    rx.wait_lines("the chunk after the rejection", &mut got, |l| l.len() >= 4);
    assert_eq!(
        log_records(&requests(&got)[3])[0]["body"]["stringValue"],
        "three"
    );
    let err = p.stop();
    assert!(!err.contains("panicked"), "{err}");
    rx.stop();
}

#[test]
fn our_output_feeds_our_input_over_http_and_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let (h, g) = (free_port(), free_port());
    append(
        dir.path(),
        &[r#"{"message":"via http","via":"http","trace_id":"5b8efff798038103d269b633813fc60c"}"#],
    );
    std::fs::write(
        dir.path().join("grpc.log"),
        "{\"message\":\"via grpc\",\"via\":\"grpc\"}\n",
    )
    .unwrap();
    let conf = input_conf(h, g, "split_log_records true")
        + &format!(
            r#"<source>
  @type tail
  path app.log
  pos_file app.pos
  read_from_head true
  tag app.http
  <parse>
    @type json
  </parse>
</source>
<source>
  @type tail
  path grpc.log
  pos_file grpc.pos
  read_from_head true
  tag app.grpc
  <parse>
    @type json
  </parse>
</source>
<match app.http>
  @type opentelemetry
  convert_records true
  <http>
    endpoint http://127.0.0.1:{h}
  </http>
  <buffer>
    flush_interval 0.2s
  </buffer>
</match>
<match app.grpc>
  @type opentelemetry
  convert_records true
  <grpc>
    endpoint 127.0.0.1:{g}
  </grpc>
  <buffer>
    flush_interval 0.2s
  </buffer>
</match>
<match otel.**>
  @type stdout
</match>
"#
        );
    let mut p = Proc::ferrentd(dir.path(), &conf, &[]);
    let mut got = Vec::new();
    p.wait_lines("both events back", &mut got, |l| events(l).len() >= 2);
    let mut ev: Vec<serde_json::Value> = events(&got).into_iter().map(|(_, r)| r).collect();
    ev.sort_by_key(|r| r["body"].to_string());
    assert_eq!(ev[0]["body"], "via grpc");
    assert_eq!(ev[0]["attributes"]["via"], "grpc");
    assert_eq!(ev[0]["attributes"]["fluent.tag"], "app.grpc");
    assert_eq!(ev[1]["body"], "via http");
    assert_eq!(ev[1]["trace_id"], "5b8efff798038103d269b633813fc60c");
    let err = p.stop();
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn conf_d_otlp_to_loki_pipeline() {
    use std::net::TcpListener;
    // A fake Loki that records pushes (HTTP/1.1, Content-Length bodies).
    let loki = TcpListener::bind("127.0.0.1:0").unwrap();
    let loki_port = loki.local_addr().unwrap().port();
    let pushes: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let sink = pushes.clone();
    std::thread::spawn(move || {
        for s in loki.incoming() {
            let Ok(s) = s else { break };
            let sink = sink.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                loop {
                    let mut head = String::new();
                    let mut len = 0usize;
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                        head.push_str(&line);
                    }
                    let mut body = vec![0; len];
                    std::io::Read::read_exact(&mut r, &mut body).unwrap();
                    sink.lock()
                        .unwrap()
                        .push((head, String::from_utf8_lossy(&body).into_owned()));
                    let mut w = &s;
                    let _ = w.write_all(b"HTTP/1.1 204 No Content\r\n\r\n");
                }
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("conf.d/otlp-loki.conf"),
        dir.path().join("otlp-loki.conf"),
    )
    .unwrap();
    let (h, g) = (free_port(), free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrentd"));
    cmd.args(["-c", "otlp-loki.conf"])
        .current_dir(dir.path())
        .env("LOKI_URL", format!("http://127.0.0.1:{loki_port}"))
        .env("LOKI_TENANT", "team-a")
        .env("LOKI_USERNAME", "ferrentd")
        .env("LOKI_PASSWORD", "s3cret")
        .env("OTLP_HTTP_PORT", h.to_string())
        .env("OTLP_GRPC_PORT", g.to_string());
    let mut p = Proc::spawn(cmd);
    wait_port(h);
    let out = Command::new("python3")
        .arg(root().join("tests/otlp/send_logs.py"))
        .args(["http", &format!("http://127.0.0.1:{h}"), "2"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let start = Instant::now();
    let lines = loop {
        let all = pushes.lock().unwrap().clone();
        let n: usize = all.iter().map(|(_, b)| b.matches("order ").count()).sum();
        if n >= 2 {
            break all;
        }
        assert!(
            start.elapsed() < WAIT,
            "no Loki push; stderr:\n{}",
            p.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let (head, body) = &lines[0];
    let head = head.to_ascii_lowercase();
    assert!(head.contains("x-scope-orgid: team-a"), "{head}");
    // base64("ferrentd:s3cret")
    assert!(
        head.contains("authorization: basic zmvycmvudgq6cznjcmv0"),
        "{head}"
    );
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    let stream = &v["streams"][0]["stream"];
    assert_eq!(stream["service_name"], "checkout", "{body}");
    assert_eq!(stream["severity"], "WARN", "{body}");
    assert_eq!(stream["job"], "otlp", "{body}");
    let line = v["streams"][0]["values"][0][1].as_str().unwrap();
    assert!(line.contains("order 0 failed"), "{line}");
    let err = p.stop();
    assert!(!err.contains("panicked"), "{err}");
}
