//! /metrics is read by the real Prometheus Python client (prometheus_client's text parser):
//! every family fluent-plugin-prometheus exports for the same config is there with its type
//! and label set, and the values move as events flow, as the sink fails and as it recovers.
//! monitor_agent returns Fluentd's field set. A port in use and malformed requests are
//! handled. All on 127.0.0.1, bounded in time.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(dir: &Path, conf: &str) -> Proc {
    let path = dir.join(format!("{}.conf", free_port()));
    std::fs::write(&path, conf).unwrap();
    Proc(
        Command::new(env!("CARGO_BIN_EXE_ferrentd"))
            .args(["-c", path.to_str().unwrap()])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// One request; the whole response (the server closes the connection).
fn http(port: u16, raw: &[u8]) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(raw).ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    Some(String::from_utf8_lossy(&out).into_owned())
}

fn get(port: u16, path: &str) -> Option<String> {
    let r = http(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )?;
    let (head, body) = r.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

fn parse(page: &str) -> Value {
    let mut py = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/metrics_support/parse.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with prometheus_client (scripts/test installs it)");
    py.stdin.take().unwrap().write_all(page.as_bytes()).unwrap();
    let out = py.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client rejected the page:\n{page}"
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn scrape(port: u16) -> Value {
    parse(&get(port, "/metrics").unwrap_or_default())
}

/// The value of `family`'s sample whose labels include `want`.
fn value(m: &Value, family: &str, want: &[(&str, &str)]) -> Option<f64> {
    m[family]["samples"].as_array()?.iter().find_map(|s| {
        let labels = &s[1];
        want.iter()
            .all(|(k, v)| labels[*k] == *v)
            .then(|| s[2].as_f64())
            .flatten()
    })
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

const OUTPUT_FAMILIES: &[(&str, &str)] = &[
    ("fluentd_output_status_buffer_total_bytes", "gauge"),
    ("fluentd_output_status_buffer_stage_length", "gauge"),
    ("fluentd_output_status_buffer_stage_byte_size", "gauge"),
    ("fluentd_output_status_buffer_queue_length", "gauge"),
    ("fluentd_output_status_buffer_queue_byte_size", "gauge"),
    (
        "fluentd_output_status_buffer_available_space_ratio",
        "gauge",
    ),
    ("fluentd_output_status_retry_count", "gauge"),
    ("fluentd_output_status_num_errors", "gauge"),
    ("fluentd_output_status_emit_count", "gauge"),
    ("fluentd_output_status_emit_records", "gauge"),
    ("fluentd_output_status_write_count", "gauge"),
    ("fluentd_output_status_rollback_count", "gauge"),
    ("fluentd_output_status_flush_time_count", "gauge"),
    ("fluentd_output_status_slow_flush_count", "gauge"),
    ("fluentd_output_status_retry_wait", "gauge"),
];

#[test]
fn prometheus_and_monitor_agent_follow_the_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (prom, agent, sink) = (free_port(), free_port(), free_port());
    let lines: String = (0..1000).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    std::fs::write(d.join("in.log"), &lines).unwrap();
    let conf = format!(
        r#"<source>
  @type prometheus
  bind 127.0.0.1
  port {prom}
</source>
<source>
  @type prometheus_monitor
  <labels>
    host ${{hostname}}
  </labels>
</source>
<source>
  @type prometheus_output_monitor
</source>
<source>
  @type prometheus_tail_monitor
</source>
<source>
  @type monitor_agent
  bind 127.0.0.1
  port {agent}
</source>
<source>
  @type tail
  @id in_tail_app
  path {dir}/in.log
  pos_file {dir}/in.pos
  tag app.log
  read_from_head true
  <parse>
    @type json
  </parse>
</source>
<filter app.**>
  @type prometheus
  <metric>
    name fluentd_input_status_num_records_total
    type counter
    desc The total number of incoming records
    <labels>
      tag ${{tag}}
    </labels>
  </metric>
</filter>
<match app.**>
  @type forward
  @id out_fwd
  heartbeat_type none
  <server>
    host 127.0.0.1
    port {sink}
  </server>
  <buffer>
    flush_mode interval
    flush_interval 0.3s
    retry_wait 0.3s
    retry_max_interval 1s
    retry_randomize false
    retry_forever true
  </buffer>
</match>
"#,
        dir = d.display()
    );
    let mut main = start(d, &conf);
    wait_for("the metrics port", || get(prom, "/metrics").is_some());

    // Events flow into the buffer; the sink is down, so retries and the queue rise.
    let out = [("plugin_id", "out_fwd"), ("type", "forward")];
    let mut m = Value::Null;
    wait_for("1000 emitted records and a retrying queue", || {
        m = scrape(prom);
        value(&m, "fluentd_output_status_emit_records", &out) == Some(1000.0)
            && value(&m, "fluentd_output_status_retry_count", &out).unwrap_or(0.0) >= 2.0
            && value(&m, "fluentd_output_status_buffer_queue_length", &out).unwrap_or(0.0) >= 1.0
    });
    for (name, kind) in OUTPUT_FAMILIES {
        assert_eq!(m[name]["type"], *kind, "{name}");
        let s = &m[name]["samples"][0];
        let keys: Vec<&str> = s[1]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["plugin_id", "type"], "{name}");
    }
    assert_eq!(
        m["fluentd_output_status_retry_count"]["help"],
        "Current retry counts."
    );
    assert_eq!(
        value(&m, "fluentd_output_status_buffer_total_bytes", &out).map(|v| v > 0.0),
        Some(true)
    );
    assert_eq!(
        value(&m, "fluentd_output_status_num_errors", &out),
        value(&m, "fluentd_output_status_retry_count", &out)
    );
    for name in [
        "fluentd_status_buffer_queue_length",
        "fluentd_status_buffer_total_bytes",
        "fluentd_status_retry_count",
    ] {
        assert_eq!(m[name]["type"], "gauge", "{name}");
        let keys: Vec<&str> = m[name]["samples"][0][1]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            ["host", "plugin_id", "plugin_category", "type"],
            "{name}"
        );
    }
    let tail = [("plugin_id", "in_tail_app"), ("type", "tail")];
    assert_eq!(
        value(&m, "fluentd_tail_file_position", &tail),
        Some(lines.len() as f64)
    );
    for name in [
        "fluentd_tail_file_inode",
        "fluentd_tail_file_opened",
        "fluentd_tail_file_closed",
        "fluentd_tail_file_rotated",
        "fluentd_tail_file_throttled",
    ] {
        assert_eq!(m[name]["type"], "gauge", "{name}");
        assert_eq!(
            m[name]["samples"][0][1]["path"],
            d.join("in.log").display().to_string()
        );
    }
    assert_eq!(value(&m, "fluentd_tail_file_opened", &tail), Some(1.0));
    // The counter family drops `_total` in the client's naming, the sample keeps it.
    assert_eq!(m["fluentd_input_status_num_records"]["type"], "counter");
    assert_eq!(
        value(
            &m,
            "fluentd_input_status_num_records",
            &[("tag", "app.log")]
        ),
        Some(1000.0)
    );

    // monitor_agent: Fluentd's fields.
    let body = get(agent, "/api/plugins.json").unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    let plugins = v["plugins"].as_array().unwrap();
    let fwd = plugins
        .iter()
        .find(|p| p["plugin_id"] == "out_fwd")
        .unwrap();
    for k in [
        "plugin_id",
        "plugin_category",
        "type",
        "output_plugin",
        "buffer_queue_length",
        "buffer_timekeys",
        "buffer_total_queued_size",
        "retry_count",
        "emit_records",
        "emit_size",
        "emit_count",
        "write_count",
        "write_secondary_count",
        "rollback_count",
        "slow_flush_count",
        "flush_time_count",
        "drop_oldest_chunk_count",
        "buffer_stage_length",
        "buffer_stage_byte_size",
        "buffer_queue_byte_size",
        "buffer_available_buffer_space_ratios",
    ] {
        assert!(fwd.get(k).is_some(), "out_fwd lacks {k}: {fwd}");
    }
    assert_eq!(fwd["plugin_category"], "output");
    assert_eq!(fwd["output_plugin"], true);
    let tail_info = plugins
        .iter()
        .find(|p| p["plugin_id"] == "in_tail_app")
        .unwrap();
    assert_eq!(tail_info["emit_records"], 1000);
    assert_eq!(tail_info["retry_count"], Value::Null);
    let ltsv = get(agent, "/api/plugins?@type=tail").unwrap();
    assert!(ltsv.starts_with("plugin_id:in_tail_app\tplugin_category:input\ttype:tail\t"));
    let nf = http(agent, b"GET /api/nothing HTTP/1.1\r\n\r\n").unwrap();
    assert!(nf.starts_with("HTTP/1.1 404"));
    assert!(nf.ends_with(r#"{"message":"Not found"}"#));

    // Probes.
    assert_eq!(get(prom, "/readyz").as_deref(), Some("ready\n"));
    assert_eq!(get(agent, "/healthz").as_deref(), Some("ok\n"));

    // Malformed requests get a 4xx and the server keeps serving.
    for raw in [
        &b"\x16\x03\x01garbage\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"POST /metrics HTTP/1.1\r\n\r\n",
    ] {
        let r = http(prom, raw).unwrap();
        assert!(r.starts_with("HTTP/1.1 4"), "{r}");
    }
    assert!(get(prom, "/metrics").is_some());

    // A port in use: a clear start-up error naming the plugin and the port.
    let clash = format!("<source>\n  @type prometheus\n  bind 127.0.0.1\n  port {prom}\n</source>\n<match **>\n  @type null\n</match>\n");
    let mut other = start(d, &clash);
    let status = other.0.wait().unwrap();
    assert!(!status.success());
    let mut err = String::new();
    other
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        err.contains("in_prometheus") && err.contains(&prom.to_string()),
        "{err}"
    );

    // The sink comes back: the queue drains.
    let _sink = start(
        d,
        &format!("<source>\n  @type forward\n  bind 127.0.0.1\n  port {sink}\n</source>\n<match **>\n  @type null\n</match>\n"),
    );
    wait_for("the queue to drain", || {
        let m = scrape(prom);
        value(&m, "fluentd_output_status_buffer_queue_length", &out) == Some(0.0)
            && value(&m, "fluentd_output_status_buffer_total_bytes", &out) == Some(0.0)
            && value(&m, "fluentd_output_status_write_count", &out).unwrap_or(0.0) >= 1.0
    });
    let _ = main.0.kill();
}

/// Outputs inside `copy` and `roundrobin` are plugins of their own to monitoring, as in
/// Fluentd's monitor_agent: each store counts what it was given.
#[test]
fn stores_of_copy_and_roundrobin_count_their_events() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let agent = free_port();
    let lines: String = (0..300).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    std::fs::write(d.join("in.log"), &lines).unwrap();
    let conf = format!(
        r#"<source>
  @type monitor_agent
  bind 127.0.0.1
  port {agent}
</source>
<source>
  @type tail
  path {dir}/in.log
  pos_file {dir}/in.pos
  tag app.log
  read_from_head true
  <parse>
    @type json
  </parse>
</source>
<match app.**>
  @type copy
  @id fanout
  <store>
    @type null
    @id copy_null
  </store>
  <store>
    @type file
    @id copy_file
    path {dir}/out
    <buffer>
      flush_mode interval
      flush_interval 0.2s
    </buffer>
  </store>
  <store>
    @type roundrobin
    @id rr
    <store>
      @type null
      @id rr_only
    </store>
  </store>
</match>
"#,
        dir = d.display()
    );
    let mut main = start(d, &conf);
    let records = |v: &Value, id: &str| {
        v["plugins"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["plugin_id"] == id))
            .map(|p| p["emit_records"].clone())
    };
    let mut v = Value::Null;
    wait_for("every store to count 300 records", || {
        v = get(agent, "/api/plugins.json")
            .and_then(|b| serde_json::from_str(&b).ok())
            .unwrap_or(Value::Null);
        ["fanout", "copy_null", "copy_file", "rr", "rr_only"]
            .iter()
            .all(|id| records(&v, id) == Some(Value::from(300)))
    });
    let file = v["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["plugin_id"] == "copy_file")
        .unwrap();
    assert_eq!(file["type"], "file");
    assert_eq!(file["output_plugin"], true);
    assert_eq!(file["emit_count"].as_u64().map(|n| n >= 1), Some(true));
    let _ = main.0.kill();
}
