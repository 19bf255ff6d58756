//! Helpers for the forward-protocol tests: a ferrentd process per config, free loopback ports,
//! a raw forward client, and the Node/Python peers in tests/interop. Every wait is bounded, and
//! only processes started here are stopped, by their PID.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrentd::event::{msgpack, EventTime, Record, Value};

pub const WAIT: Duration = Duration::from_secs(30);

/// A loopback port free for both TCP and UDP (in_forward listens on both).
pub fn free_port() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub fn wait_port(port: u16) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < WAIT, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sigterm(pid: u32) {
    // SAFETY: signals a child this process started and has not reaped yet.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A running ferrentd.
pub struct Ferrentd {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
}

impl Ferrentd {
    pub fn start(conf: &str) -> Ferrentd {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, conf)
    }

    pub fn start_in(dir: tempfile::TempDir, conf: &str) -> Ferrentd {
        let path = dir.path().join("fluent.conf");
        // ferrentd's own log lines are events; keep them out of the tests' `<match **>`.
        let conf = if conf.contains("@FLUENT_LOG") {
            conf.to_string()
        } else {
            format!(
                "<label @FLUENT_LOG>\n  <match **>\n    @type null\n  </match>\n</label>\n{conf}"
            )
        };
        std::fs::write(&path, conf).unwrap();
        let stdout = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("stdout"))
            .unwrap();
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("stderr"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ferrentd"))
            .arg("-c")
            .arg(&path)
            .current_dir(dir.path())
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap();
        Ferrentd {
            child: Some(child),
            dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("stdout"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    /// Waits (bounded) until the log contains `needle`; returns the log.
    pub fn wait_log(&self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let log = self.log();
            if log.contains(needle) || start.elapsed() > WAIT {
                return log;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 30 s); returns the printed lines.
    pub fn stop(self) -> Vec<String> {
        self.stop_with_log().0
    }

    pub fn stop_with_log(mut self) -> (Vec<String>, String) {
        if let Some(mut c) = self.child.take() {
            sigterm(c.id());
            if !wait_exit(&mut c, WAIT) {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        (self.stdout_lines(), self.log())
    }

    /// SIGKILL: no flush, no cleanup.
    pub fn kill9(mut self) -> tempfile::TempDir {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }
}

impl Drop for Ferrentd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn wait_lines(fd: &Ferrentd, n: usize) -> Vec<String> {
    let start = Instant::now();
    loop {
        let l = fd.stdout_lines();
        if l.len() >= n || start.elapsed() > WAIT {
            return l;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn interop_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    assert!(
        d.join("node_modules/@fluent-org/logger").is_dir()
            && d.join("node_modules/fluent-logger").is_dir(),
        "the Node forward peers are not installed: run scripts/test (or `npm ci` in tests/interop)"
    );
    d
}

pub fn node(args: &[&str]) -> Output {
    Command::new("node")
        .args(args)
        .current_dir(interop_dir())
        .stdin(Stdio::null())
        .output()
        .expect("node runs")
}

pub fn python(args: &[&str]) -> Output {
    Command::new("python3")
        .args(args)
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop"))
        .stdin(Stdio::null())
        .output()
        .expect("python3 runs")
}

/// `@fluent-org/logger`'s FluentServer printing what it receives.
pub struct NodeServer {
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl NodeServer {
    pub fn start(port: u16, shared_key: Option<&str>) -> NodeServer {
        let mut args = vec!["fluent_org_server.js".to_string(), port.to_string()];
        if let Some(k) = shared_key {
            args.push(k.to_string());
        }
        let mut child = Command::new("node")
            .args(&args)
            .current_dir(interop_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs");
        let out = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l2 = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                l2.lock().unwrap().push(line);
            }
        });
        let s = NodeServer {
            child: Some(child),
            lines,
        };
        let start = Instant::now();
        while !s.lines.lock().unwrap().iter().any(|l| l == "listening") {
            assert!(start.elapsed() < WAIT, "FluentServer did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    /// Waits (bounded) for `n` entry lines and returns them.
    pub fn wait_lines(&self, n: usize) -> Vec<String> {
        let start = Instant::now();
        loop {
            let got: Vec<String> = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .filter(|l| *l != "listening")
                .cloned()
                .collect();
            if got.len() >= n || start.elapsed() > WAIT {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NodeServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            sigterm(c.id());
            if !wait_exit(&mut c, Duration::from_secs(5)) {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// A Forward-mode message `[tag, [[EventTime(sec, nsec), {"n": nsec, "s": s}], …], {"chunk": id}]`.
pub fn forward_message(tag: &str, events: &[(i64, u32, &str)], chunk: Option<&str>) -> Vec<u8> {
    let mut entries = Vec::new();
    for (sec, nsec, s) in events {
        let mut r = Record::new();
        r.insert("n", Value::Int(*nsec as i64));
        r.insert("s", Value::str(*s));
        entries.push(Value::Array(vec![
            Value::Ext(0, EventTime::new(*sec, *nsec).to_ext_payload().to_vec()),
            Value::Map(r),
        ]));
    }
    let mut msg = vec![Value::str(tag), Value::Array(entries)];
    if let Some(c) = chunk {
        let mut o = Record::new();
        o.insert("chunk", Value::str(c));
        msg.push(Value::Map(o));
    }
    let mut out = Vec::new();
    msgpack::write_value(&mut out, &Value::Array(msg));
    out
}

/// Reads one msgpack value (bounded by the socket timeout).
pub fn read_value(s: &mut TcpStream) -> Option<Value> {
    let mut buf = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        if let Ok(v) = ferrentd::forward::codec::decode_value(&buf) {
            return Some(v);
        }
        match s.read(&mut b) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&b[..n]),
        }
    }
}

/// Sends one Forward-mode message and, with `ack`, checks the ack.
pub fn send_forward(port: u16, tag: &str, events: &[(i64, u32, &str)], ack: bool) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let id = "Y2h1bmsx\n";
    s.write_all(&forward_message(tag, events, ack.then_some(id)))
        .unwrap();
    if ack {
        let v = read_value(&mut s).expect("an ack");
        let got = v.as_map().and_then(|m| m.get("ack")).cloned();
        assert_eq!(got, Some(Value::str(id)));
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it: (ca, cert, key) paths.
pub fn write_test_pki(dir: &Path) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ferrentd test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let p = |n: &str| dir.join(n).to_string_lossy().into_owned();
    std::fs::write(p("ca.pem"), ca.pem()).unwrap();
    std::fs::write(p("cert.pem"), cert.pem()).unwrap();
    std::fs::write(p("key.pem"), key.serialize_pem()).unwrap();
    (p("ca.pem"), p("cert.pem"), p("key.pem"))
}
