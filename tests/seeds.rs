//! The shipped pipelines (conf.d/) run on their sample inputs and print exactly the expected
//! records; in_systemd resumes from its stored cursor, survives odd and damaged journal files,
//! and names libsystemd.so.0 when the library cannot be loaded.
//!
//! Each run copies a config and conf.d/samples into a temporary folder, starts the release
//! binary there, waits (bounded) for the expected number of stdout lines, then stops it with
//! SIGTERM by PID. Journals beyond the checked-in sample are written with
//! scripts/journal-writer.py (python3). The HTTP sink pipelines run against the fake Loki and
//! Elasticsearch of tests/sink_common, named to them through LOKI_URL / ES_URL.

mod sink_common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

/// A temporary folder holding conf.d/samples (as `samples/`).
fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&root().join("conf.d/samples"), &dir.path().join("samples"));
    dir
}

struct Running {
    child: Child,
    stdout: Receiver<String>,
    stderr: Arc<Mutex<Vec<String>>>,
}

fn start(dir: &Path, conf: &str, envs: &[(&str, &str)]) -> Running {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrentd"));
    cmd.args(["-c", conf])
        .current_dir(dir)
        .env("TZ", "UTC")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("ferrentd starts");
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).split(b'\n') {
            let Ok(line) = line else { break };
            if tx
                .send(String::from_utf8_lossy(&line).into_owned())
                .is_err()
            {
                break;
            }
        }
    });
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let sink = stderr.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    Running {
        child,
        stdout: rx,
        stderr,
    }
}

impl Running {
    /// Collects stdout lines until `n` arrived (or the bounded wait ends).
    fn lines(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(l) => got.push(l),
                Err(_) => break,
            }
        }
        got
    }

    /// SIGTERM by PID, bounded wait for the exit; returns whether it exited with 0, the stdout
    /// lines printed after the ones already read, and the whole stderr.
    fn stop(mut self) -> (bool, Vec<String>, String) {
        // SAFETY: kill(2) on the PID of the child this test started and has not reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break Some(s);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut rest = Vec::new();
        while let Ok(l) = self.stdout.recv_timeout(Duration::from_secs(5)) {
            rest.push(l);
        }
        let stderr = self.stderr.lock().unwrap().join("\n");
        (status.is_some_and(|s| s.success()), rest, stderr)
    }
}

/// Runs a conf.d pipeline on the samples and returns its stdout lines once `n` have arrived.
fn run_shipped(conf: &str, n: usize) -> Vec<String> {
    let dir = workdir();
    std::fs::copy(root().join("conf.d").join(conf), dir.path().join(conf)).unwrap();
    let r = start(dir.path(), conf, &[]);
    let mut lines = r.lines(n);
    let (ok, rest, stderr) = r.stop();
    assert!(ok, "{conf} did not exit cleanly:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    lines.extend(rest);
    lines
}

fn write_journal(spec: &serde_json::Value, out: &Path) {
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let spec_path = out.with_extension("json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let status = Command::new("python3")
        .arg(root().join("scripts/journal-writer.py"))
        .arg(&spec_path)
        .arg(out)
        .status()
        .expect("python3 runs scripts/journal-writer.py");
    assert!(status.success());
    std::fs::remove_file(spec_path).unwrap();
}

fn assert_lines(got: &[String], want: &[&str]) {
    let got: Vec<&str> = got.iter().map(String::as_str).collect();
    assert_eq!(got, want);
}

const SANDBOX: &str = "1c3e77cad66aa2b6d8cc846f818370f79cb0104c0b840f67d0f502fd6562b68c";
const CONTAINER: &str = "7cdd31660d8705facdadeb8598d2c0bd008e8142c54e3b3069abd392c8d58997";

fn expand(s: &str) -> String {
    s.replace("{SBX}", SANDBOX).replace("{CTR}", CONTAINER)
}

#[test]
fn journald_kata_logfmt_pipeline() {
    let got = run_shipped("kata-journald-logfmt.conf", 3);
    let msg1 = r#"time=\"2020-02-21T10:31:27.810781647Z\" level=info msg=\"release sandbox\" arch=amd64 command=state container={CTR} name=kata-runtime pid=14314 sandbox={SBX} source=virtcontainers subsystem=sandbox"#;
    let want = [
        [
            r#"2020-02-21 10:31:27.810781647 +0000 kata-containers: {"_BOOT_ID":"590edceeef5545a784ec8c6181a10400","_MACHINE_ID":"3dd49df65a1b467bac8d51f2eaa17e92","_HOSTNAME":"minikube","PRIORITY":"6","_UID":"0","_GID":"0","_SYSTEMD_SLICE":"system.slice","_SELINUX_CONTEXT":"kernel","_CAP_EFFECTIVE":"3fffffffff","_TRANSPORT":"syslog","_SYSTEMD_CGROUP":"/system.slice/crio.service","_SYSTEMD_UNIT":"crio.service","_SYSTEMD_INVOCATION_ID":"f2d99c784e6f406c87742f4bca16a4f6","SYSLOG_IDENTIFIER":"kata-runtime","_COMM":"kata-runtime","_EXE":"/opt/kata/bin/kata-runtime","SYSLOG_TIMESTAMP":"Feb 21 10:31:27 ","_CMDLINE":"/opt/kata/bin/kata-runtime --kata-config /opt/kata/share/defaults/kata-containers/configuration-qemu.toml --root /run/runc state {CTR}","SYSLOG_PID":"14314","_PID":"14314","MESSAGE":""#,
            msg1,
            r#"","SYSLOG_RAW":"<6>Feb 21 10:31:27 kata-runtime[14314]: "#,
            msg1,
            r#"\n","_SOURCE_REALTIME_TIMESTAMP":"1582281087810805","kata_level":"info","kata_msg":"release sandbox","kata_arch":"amd64","kata_command":"state","kata_container":"{CTR}","kata_name":"kata-runtime","kata_pid":14314,"kata_sandbox":"{SBX}","kata_source":"virtcontainers","kata_subsystem":"sandbox"}"#,
        ]
        .concat(),
        r#"2020-02-21 10:31:28.120000000 +0000 kata-containers: {"_BOOT_ID":"590edceeef5545a784ec8c6181a10400","_MACHINE_ID":"3dd49df65a1b467bac8d51f2eaa17e92","_HOSTNAME":"minikube","PRIORITY":"6","_TRANSPORT":"syslog","_SYSTEMD_UNIT":"crio.service","SYSLOG_IDENTIFIER":"kata-proxy","_COMM":"kata-proxy","_PID":"14330","MESSAGE":"time=\"2020-02-21T10:31:28.120000000Z\" level=info msg=\"proxy started\" name=kata-proxy pid=14330 sandbox={SBX} source=proxy","kata_level":"info","kata_msg":"proxy started","kata_name":"kata-proxy","kata_pid":14330,"kata_sandbox":"{SBX}","kata_source":"proxy"}"#.to_string(),
        r#"2020-02-21 10:31:28.500000000 +0000 kata-containers: {"_BOOT_ID":"590edceeef5545a784ec8c6181a10400","_MACHINE_ID":"3dd49df65a1b467bac8d51f2eaa17e92","_HOSTNAME":"minikube","_TRANSPORT":"syslog","_SYSTEMD_UNIT":"crio.service","PRIORITY":"4","SYSLOG_IDENTIFIER":"kata-shim","_COMM":"kata-shim","_PID":"14341","MESSAGE":"time=\"2020-02-21T10:31:28.5Z\" level=warning msg=\"copy stdout failed: \\\"broken pipe\\\"\" container={CTR} name=kata-shim pid=14341 source=shim","kata_level":"warning","kata_msg":"copy stdout failed: \"broken pipe\"","kata_container":"{CTR}","kata_name":"kata-shim","kata_pid":14341,"kata_source":"shim"}"#.to_string(),
    ]
    .map(|s| expand(&s));
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    assert_lines(&got, &want);
}

#[test]
fn journald_containerd_kata_split() {
    let got = run_shipped("containerd-kata-split.conf", 3);
    let head = r#"{"_BOOT_ID":"590edceeef5545a784ec8c6181a10400","_MACHINE_ID":"3dd49df65a1b467bac8d51f2eaa17e92","_HOSTNAME":"minikube","PRIORITY":"6","#;
    let want = [
        format!(
            r#"2020-02-21 10:31:31.000000000 +0000 containerd_tag: {head}"_TRANSPORT":"stdout","_SYSTEMD_UNIT":"containerd.service","SYSLOG_IDENTIFIER":"containerd","_COMM":"containerd","_PID":"921","MESSAGE":"time=\"2020-02-21T10:31:31.000000000Z\" level=info msg=\"starting containerd\" revision=7ad184331fa3e55e52b890ea95e65ba581ae3429 version=v1.3.2"}}"#
        ),
        format!(
            r#"2020-02-21 10:31:31.400000000 +0000 containerd_tag: {head}"_TRANSPORT":"stdout","_SYSTEMD_UNIT":"containerd.service","SYSLOG_IDENTIFIER":"containerd","_COMM":"containerd","_PID":"921","MESSAGE":"time=\"2020-02-21T10:31:31.400000000Z\" level=info msg=\"shim containerd-shim-kata-v2 started\" address=/containerd-shim/k8s.io/{{SBX}}/shim.sock pid=15020"}}"#
        ),
        format!(
            r#"2020-02-21 10:31:31.650000000 +0000 kata_tag: {head}"_SYSTEMD_UNIT":"containerd.service","_TRANSPORT":"journal","SYSLOG_IDENTIFIER":"kata","_COMM":"containerd-shim","_PID":"15020","MESSAGE":"time=\"2020-02-21T10:31:31.650000000Z\" level=info msg=\"VM started\" name=containerd-shim-v2 pid=15020 sandbox={{SBX}} source=virtcontainers subsystem=sandbox"}}"#
        ),
    ]
    .map(|s| expand(&s));
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    // The containerd entry without MESSAGE matches no rule and is dropped.
    assert_lines(&got, &want);
}

#[test]
fn kata_json_file_as_single_lines_then_parsed_with_prefix() {
    let got = run_shipped("kata-runtime-json.conf", 3);
    // No time_format: the json parser reads the string time numerically, as Fluentd does.
    let want = [
        r#"1970-01-01 00:33:40.104633541 +0000 kata-runtime: {"kata_arch":"amd64","kata_command":"create","kata_container":"{CTR}","kata_level":"info","kata_msg":"create sandbox","kata_name":"kata-runtime","kata_pid":14290,"kata_sandbox":"{SBX}","kata_source":"virtcontainers","kata_subsystem":"sandbox"}"#,
        r#"1970-01-01 00:33:40.810781647 +0000 kata-runtime: {"kata_arch":"amd64","kata_command":"state","kata_container":"{CTR}","kata_level":"info","kata_msg":"release sandbox","kata_name":"kata-runtime","kata_pid":14314,"kata_sandbox":"{SBX}","kata_source":"virtcontainers","kata_subsystem":"sandbox"}"#,
        r#"1970-01-01 00:33:40.000000005 +0000 kata-runtime: {"kata_EndpointProperties":{"Iface":{"Index":4,"MTU":1460,"TxQLen":0,"Name":"eth0","HardwareAddr":"ClgKAQAL","Flags":19,"Namespace":null,"Alias":"","Statistics":{"RxPackets":1,"TxPackets":5}}},"kata_arch":"amd64","kata_command":"kill","kata_level":"debug","kata_msg":"endpoint removed","kata_name":"kata-runtime","kata_pid":14377,"kata_source":"virtcontainers","kata_subsystem":"network"}"#,
    ]
    .map(expand);
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    assert_lines(&got, &want);
}

#[test]
fn kata_json_file_v0_style_with_iso8601_times() {
    let got = run_shipped("kata-runtime-json-v0.conf", 3);
    let want = [
        r#"2020-02-21 10:31:25.104633541 +0000 kata-containers: {"arch":"amd64","command":"create","container":"{CTR}","level":"info","msg":"create sandbox","name":"kata-runtime","pid":14290,"sandbox":"{SBX}","source":"virtcontainers","subsystem":"sandbox"}"#,
        r#"2020-02-21 10:31:27.810781647 +0000 kata-containers: {"arch":"amd64","command":"state","container":"{CTR}","level":"info","msg":"release sandbox","name":"kata-runtime","pid":14314,"sandbox":"{SBX}","source":"virtcontainers","subsystem":"sandbox"}"#,
        r#"2020-02-21 10:31:29.500000000 +0000 kata-containers: {"EndpointProperties":{"Iface":{"Index":4,"MTU":1460,"TxQLen":0,"Name":"eth0","HardwareAddr":"ClgKAQAL","Flags":19,"Namespace":null,"Alias":"","Statistics":{"RxPackets":1,"TxPackets":5}}},"arch":"amd64","command":"kill","level":"debug","msg":"endpoint removed","name":"kata-runtime","pid":14377,"source":"virtcontainers","subsystem":"network"}"#,
    ]
    .map(expand);
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    assert_lines(&got, &want);
}

#[test]
fn kata_logfmt_filter_on_a_journal_shaped_record() {
    // in_sample repeats its record every second: check the first one.
    let got = run_shipped("kata-logfmt-filter.conf", 1);
    assert_eq!(
        got.first().map(String::as_str),
        Some(
            r#"2020-02-21 10:31:27.810781647 +0000 kata-containers: {"SYSLOG_IDENTIFIER":"kata-runtime","PRIORITY":"6","MESSAGE":"time=\"2020-02-21T10:31:27.810781647Z\" level=info msg=\"release sandbox\" arch=amd64 name=kata-runtime pid=9128 source=virtcontainers subsystem=sandbox","kata_level":"info","kata_msg":"release sandbox","kata_arch":"amd64","kata_name":"kata-runtime","kata_pid":9128,"kata_source":"virtcontainers","kata_subsystem":"sandbox"}"#
        )
    );
}

fn entry(realtime: u64, fields: &[&str]) -> serde_json::Value {
    serde_json::json!({ "realtime": realtime, "fields": fields })
}

const STATE_CONF: &str = r#"<match fluent.**>
  @type null
</match>
<source>
  @type systemd
  tag j
  path ./journal
  read_from_head true
  <storage>
    @type local
    path ./state/cursor.json
    persistent true
  </storage>
</source>
<match j>
  @type stdout
  <format>
    @type single_value
    message_key MESSAGE
  </format>
</match>
"#;

#[test]
fn systemd_cursor_is_stored_and_a_restart_resumes_after_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fluent.conf"), STATE_CONF).unwrap();
    let entries: Vec<serde_json::Value> = (1..=5u64)
        .map(|i| entry(1_700_000_000_000_000 + i, &[&format!("MESSAGE=m{i}")]))
        .collect();
    let journal = dir.path().join("journal/system.journal");
    write_journal(&serde_json::Value::Array(entries[..3].to_vec()), &journal);

    let r = start(dir.path(), "fluent.conf", &[]);
    let mut first = r.lines(3);
    let (ok, rest, stderr) = r.stop();
    assert!(ok, "{stderr}");
    first.extend(rest);
    assert_lines(&first, &["m1", "m2", "m3"]);
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("state/cursor.json")).unwrap(),
    )
    .unwrap();
    let cursor = state["journal"].as_str().unwrap();
    assert!(cursor.contains(";i=3;"), "{cursor}");

    // The same file with two more entries, as the journal grows: only those are read.
    write_journal(&serde_json::Value::Array(entries), &journal);
    let r = start(dir.path(), "fluent.conf", &[]);
    let mut second = r.lines(2);
    let (ok, rest, stderr) = r.stop();
    assert!(ok, "{stderr}");
    second.extend(rest);
    assert_lines(&second, &["m4", "m5"]);
}

#[test]
fn systemd_odd_field_contents_do_not_break_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("fluent.conf"),
        "<match fluent.**>\n  @type null\n</match>\n<source>\n  @type systemd\n  tag j\n  path ./journal\n  read_from_head true\n</source>\n<match j>\n  @type stdout\n</match>\n",
    )
    .unwrap();
    let spec = serde_json::json!([
        {"realtime": 1_700_000_000_000_000u64, "fields": [{"hex": "4d4553534147453dff00fe41"}, "A=1"]},
        {"realtime": 1_700_000_001_000_000u64, "fields": ["NOVALUE", "MESSAGE=after", "MESSAGE=again"]},
        {"realtime": 1_700_000_002_000_000u64, "fields": [{"name": "MESSAGE", "repeat": "x", "count": 100_000}]},
        {"realtime": 1_700_000_003_000_000u64, "fields": ["EMPTY=", "=noname", "MESSAGE=last"]},
    ]);
    write_journal(&spec, &dir.path().join("journal/system.journal"));
    let r = start(dir.path(), "fluent.conf", &[]);
    let mut got = r.lines(4);
    let (ok, rest, stderr) = r.stop();
    assert!(ok, "{stderr}");
    got.extend(rest);
    assert_eq!(got.len(), 4, "{got:?}");
    // Binary bytes are passed through as they are (the lossy reading here shows U+FFFD).
    assert_eq!(
        got[0],
        "2023-11-14 22:13:20.000000000 +0000 j: {\"MESSAGE\":\"\u{fffd}\\u0000\u{fffd}A\",\"A\":\"1\"}"
    );
    // A field without '=' has no value; a repeated field keeps its first place, last value.
    assert_eq!(
        got[1],
        r#"2023-11-14 22:13:21.000000000 +0000 j: {"NOVALUE":null,"MESSAGE":"again"}"#
    );
    assert_eq!(
        got[2],
        format!(
            r#"2023-11-14 22:13:22.000000000 +0000 j: {{"MESSAGE":"{}"}}"#,
            "x".repeat(100_000)
        )
    );
    assert_eq!(
        got[3],
        r#"2023-11-14 22:13:23.000000000 +0000 j: {"EMPTY":"","":"noname","MESSAGE":"last"}"#
    );
}

/// A small deterministic generator for the damage below.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn systemd_damaged_journal_files_give_warnings_not_crashes() {
    let sample = std::fs::read(root().join("conf.d/samples/journal/system.journal")).unwrap();
    let mut variants: Vec<(String, Vec<u8>)> =
        [100usize, 300, 2000, sample.len() / 2, sample.len() - 8]
            .iter()
            .map(|&n| (format!("cut at {n}"), sample[..n].to_vec()))
            .collect();
    for seed in 1..=4u64 {
        let mut s = seed * 0x9e37_79b9_7f4a_7c15;
        let mut b = sample.clone();
        for _ in 0..64 {
            let i = 256 + (xorshift(&mut s) as usize) % (b.len() - 256);
            b[i] ^= (xorshift(&mut s) & 0xff) as u8 | 1;
        }
        variants.push((format!("flipped bytes, seed {seed}"), b));
    }
    let conf = "<match fluent.**>\n  @type null\n</match>\n<source>\n  @type systemd\n  tag j\n  path ./journal\n  read_from_head true\n  matches [{\"SYSLOG_IDENTIFIER\": \"marker\"}]\n</source>\n<match j>\n  @type stdout\n  <format>\n    @type single_value\n    message_key MESSAGE\n  </format>\n</match>\n";
    // A sound file next to the damaged one: once its entry is out, the reader has been through
    // both files.
    let good = serde_json::json!({
        "file_id": "00112233445566778899aabbccddeeff",
        "boot_id": "ffeeddccbbaa99887766554433221100",
        "entries": [entry(1_900_000_000_000_000, &["SYSLOG_IDENTIFIER=marker", "MESSAGE=still reading"])],
    });
    for (what, bytes) in variants {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("fluent.conf"), conf).unwrap();
        write_journal(&good, &dir.path().join("journal/good.journal"));
        std::fs::write(dir.path().join("journal/system.journal"), &bytes).unwrap();
        let r = start(dir.path(), "fluent.conf", &[]);
        let got = r.lines(1);
        let (ok, _, stderr) = r.stop();
        assert!(ok, "{what}: no clean exit\n{stderr}");
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        assert_eq!(got, vec!["still reading".to_string()], "{what}\n{stderr}");
        if what.starts_with("cut") {
            assert!(
                stderr.contains("system.journal is truncated"),
                "{what}: no warning\n{stderr}"
            );
        }
    }
}

#[test]
fn systemd_without_a_usable_libsystemd_names_the_library() {
    let dir = workdir();
    let conf = "kata-journald-logfmt.conf";
    std::fs::copy(root().join("conf.d").join(conf), dir.path().join(conf)).unwrap();
    // A file that is not a shared library shadows the real one.
    let libdir = dir.path().join("lib");
    std::fs::create_dir(&libdir).unwrap();
    std::fs::write(libdir.join("libsystemd.so.0"), b"not a library").unwrap();
    let libdir = libdir.display().to_string();
    let envs = [("LD_LIBRARY_PATH", libdir.as_str())];

    let dry = Command::new(env!("CARGO_BIN_EXE_ferrentd"))
        .args(["--dry-run", "-c", conf])
        .current_dir(dir.path())
        .env("LD_LIBRARY_PATH", &libdir)
        .output()
        .unwrap();
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );

    // Running it stops start-up with an error that names the library, as Fluentd fails
    // when the plugin cannot load it.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrentd"))
        .args(["-c", conf])
        .current_dir(dir.path())
        .envs(envs)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("ferrentd kept running without libsystemd");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot load libsystemd.so.0"), "{stderr}");
}

/// Runs an HTTP-sink pipeline from conf.d against a fake sink until `done` holds; returns what
/// the sink received.
fn run_sink_pipeline(
    conf: &str,
    env: &str,
    url: impl Fn(u16) -> String,
    script: Box<sink_common::Script>,
    done: impl Fn(&[(sink_common::Req, bool)]) -> bool,
) -> Vec<(sink_common::Req, bool)> {
    let sink = sink_common::FakeSink::start(script);
    let dir = workdir();
    std::fs::copy(root().join("conf.d").join(conf), dir.path().join(conf)).unwrap();
    let r = start(dir.path(), conf, &[(env, &url(sink.port))]);
    let reqs = sink.wait_for(conf, done);
    let (ok, _, stderr) = r.stop();
    assert!(ok, "{conf} did not exit cleanly:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    reqs
}

#[test]
fn containers_to_loki_with_kubernetes_labels() {
    use sink_common::Answer;
    let reqs = run_sink_pipeline(
        "k8s-containers-loki.conf",
        "LOKI_URL",
        |p| format!("http://127.0.0.1:{p}"),
        Box::new(|_, _| Answer::Status(204, String::new())),
        |r| {
            r.iter()
                .map(|(q, _)| sink_common::loki_lines(&q.text()).len())
                .sum::<usize>()
                >= 4
        },
    );
    let mut streams = Vec::new();
    for (q, _) in &reqs {
        assert_eq!(q.path, "/loki/api/v1/push");
        let v: serde_json::Value = serde_json::from_str(&q.text()).unwrap();
        for s in v["streams"].as_array().unwrap() {
            for e in s["values"].as_array().unwrap() {
                streams.push(format!("{} {} {}", s["stream"], e[0], e[1]));
            }
        }
    }
    streams.sort();
    assert_eq!(
        streams,
        [
            r#"{"namespace":"prod","pod":"db-0","container":"postgres","stream":"stderr","job":"containers"} "1709287200250000000" "checkpoint complete: wrote 42 buffers\n""#,
            r#"{"namespace":"prod","pod":"shop-7d9f8","container":"web","stream":"stderr","job":"containers"} "1709287201500000000" "payment gateway timeout after 5s\n""#,
            r#"{"namespace":"prod","pod":"shop-7d9f8","container":"web","stream":"stdout","job":"containers"} "1709287200000000001" "GET /cart 200 12ms\n""#,
            r#"{"namespace":"prod","pod":"shop-7d9f8","container":"web","stream":"stdout","job":"containers"} "1709287202000000000" "GET /checkout 200 40ms\n""#,
        ]
    );
}

#[test]
fn tail_to_elasticsearch_with_logstash_format() {
    use sink_common::Answer;
    let reqs = run_sink_pipeline(
        "tail-elasticsearch.conf",
        "ES_URL",
        |p| format!("http://127.0.0.1:{p}"),
        Box::new(|r, _| {
            if r.method == "GET" {
                return Answer::Status(200, sink_common::ES_INFO.into());
            }
            Answer::Status(200, sink_common::bulk_answer(&r.text(), |_, _| 201))
        }),
        |r| {
            r.iter()
                .filter(|(q, _)| q.method == "POST")
                .map(|(q, _)| sink_common::bulk_docs(&q.text()).len())
                .sum::<usize>()
                >= 3
        },
    );
    let mut got = Vec::new();
    for (q, _) in reqs.iter().filter(|(q, _)| q.method == "POST") {
        assert_eq!(q.path, "/_bulk");
        assert_eq!(q.header("content-type"), Some("application/x-ndjson"));
        got.extend(q.text().lines().map(String::from));
    }
    assert_eq!(
        got,
        [
            r#"{"index":{"_index":"app-2024.02.29","_type":"_doc","_id":"r-1"}}"#,
            r#"{"level":"info","msg":"request served","path":"/cart","status":200,"request_id":"r-1","@timestamp":"2024-02-29T23:59:59.900000000+00:00","tag":"app.web"}"#,
            r#"{"index":{"_index":"app-2024.03.01","_type":"_doc","_id":"r-2"}}"#,
            r#"{"level":"error","msg":"upstream timeout","path":"/pay","status":504,"request_id":"r-2","@timestamp":"2024-03-01T00:00:00.100000000+00:00","tag":"app.web"}"#,
            r#"{"index":{"_index":"app-2024.03.01","_type":"_doc","_id":"r-3"}}"#,
            r#"{"level":"info","msg":"request served","path":"/","status":200,"request_id":"r-3","@timestamp":"2024-03-01T00:00:01.000000000+00:00","tag":"app.web"}"#,
        ]
    );
}
