//! A scripted fake HTTP sink (Loki / Elasticsearch) on 127.0.0.1 for the sink tests: HTTP/1.1
//! with keep-alive, Content-Length or chunked bodies, gzip bodies decoded; each request is
//! answered by a script that sees the request and its number, and may also reset the
//! connection or answer late. Every request is recorded with whether it was answered 2xx.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub enum Answer {
    Status(u16, String),
    /// Close the connection without answering.
    Reset,
    /// Answer after a delay.
    Slow(Duration, u16, String),
}

pub type Script = dyn Fn(&Req, usize) -> Answer + Send + Sync;

pub struct FakeSink {
    pub port: u16,
    /// (request, answered with 2xx)
    pub log: Arc<Mutex<Vec<(Req, bool)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeSink {
    pub fn start(script: Box<Script>) -> FakeSink {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        Self::start_on(l, script)
    }

    pub fn start_on(l: TcpListener, script: Box<Script>) -> FakeSink {
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        let log: Arc<Mutex<Vec<(Req, bool)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::from(script);
        let counter = Arc::new(AtomicUsize::new(0));
        let (log2, stop2) = (log.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, _)) => {
                        let (log, script, counter, stop) =
                            (log2.clone(), script.clone(), counter.clone(), stop2.clone());
                        std::thread::spawn(move || serve(s, &log, &*script, &counter, &stop));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FakeSink {
            port,
            log,
            stop,
            thread: Some(thread),
        }
    }

    pub fn requests(&self) -> Vec<(Req, bool)> {
        self.log.lock().unwrap().clone()
    }

    /// Waits (bounded) until `pred` holds for the recorded requests.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&[(Req, bool)]) -> bool) -> Vec<(Req, bool)> {
        let start = Instant::now();
        loop {
            let r = self.requests();
            if pred(&r) {
                return r;
            }
            assert!(
                start.elapsed() < Duration::from_secs(40),
                "timed out waiting for {what}; got {} requests",
                r.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for FakeSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    s: TcpStream,
    log: &Mutex<Vec<(Req, bool)>>,
    script: &Script,
    counter: &AtomicUsize,
    stop: &AtomicBool,
) {
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut r = BufReader::new(match s.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut w = s;
    loop {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {}
            Err(_) => {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                continue;
            }
        }
        let _ = w.set_read_timeout(Some(Duration::from_secs(10)));
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let mut body = Vec::new();
        if let Some(n) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
            body.resize(n, 0);
            if r.read_exact(&mut body).is_err() {
                return;
            }
        } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            loop {
                let mut sz = String::new();
                if r.read_line(&mut sz).unwrap_or(0) == 0 {
                    return;
                }
                let n = usize::from_str_radix(sz.trim(), 16).unwrap_or(0);
                let mut c = vec![0; n + 2];
                if r.read_exact(&mut c).is_err() {
                    return;
                }
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&c[..n]);
            }
        }
        if get("content-encoding").is_some_and(|v| v.eq_ignore_ascii_case("gzip")) {
            let mut d = flate2::read::GzDecoder::new(&body[..]);
            let mut out = Vec::new();
            if d.read_to_end(&mut out).is_ok() {
                body = out;
            }
        }
        let req = Req {
            method,
            path,
            headers,
            body,
        };
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let (status, text) = match script(&req, n) {
            Answer::Reset => {
                log.lock().unwrap().push((req, false));
                let _ = w.shutdown(std::net::Shutdown::Both);
                return;
            }
            Answer::Slow(d, s, t) => {
                std::thread::sleep(d);
                (s, t)
            }
            Answer::Status(s, t) => (s, t),
        };
        log.lock()
            .unwrap()
            .push((req, (200..300).contains(&status)));
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nX-Elastic-Product: Elasticsearch\r\nContent-Length: {}\r\n\r\n",
            text.len()
        );
        if w.write_all(head.as_bytes()).is_err() || w.write_all(text.as_bytes()).is_err() {
            return;
        }
    }
}

/// The version document of an Elasticsearch 7.17 `GET /`.
pub const ES_INFO: &str =
    r#"{"name":"fake","version":{"number":"7.17.0"},"tagline":"You Know, for Search"}"#;

/// A `_bulk` answer giving each action `status(i, doc)`.
pub fn bulk_answer(body: &str, status: impl Fn(usize, &serde_json::Value) -> u16) -> String {
    let lines: Vec<&str> = body.lines().filter(|l| !l.is_empty()).collect();
    let mut items = Vec::new();
    let mut errors = false;
    for (i, pair) in lines.chunks(2).enumerate() {
        let action: serde_json::Value = serde_json::from_str(pair[0]).unwrap();
        let op = action.as_object().unwrap().keys().next().unwrap().clone();
        let doc: serde_json::Value = pair
            .get(1)
            .map(|d| serde_json::from_str(d).unwrap())
            .unwrap_or(serde_json::Value::Null);
        let st = status(i, &doc);
        let mut item = serde_json::json!({"_index": "x", "status": st});
        if !(200..300).contains(&st) {
            errors = true;
            let t = match st {
                429 => "es_rejected_execution_exception",
                400 => "mapper_parsing_exception",
                409 => "version_conflict_engine_exception",
                _ => "internal_server_error",
            };
            item["error"] = serde_json::json!({"type": t, "reason": format!("fake {st}")});
        }
        items.push(serde_json::json!({ op: item }));
    }
    serde_json::json!({"took": 1, "errors": errors, "items": items}).to_string()
}

/// The documents of a `_bulk` body (every second line).
pub fn bulk_docs(body: &str) -> Vec<serde_json::Value> {
    body.lines()
        .filter(|l| !l.is_empty())
        .skip(1)
        .step_by(2)
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// The lines of a Loki push body.
pub fn loki_lines(body: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    let mut out = Vec::new();
    for s in v["streams"].as_array().unwrap() {
        for e in s["values"].as_array().unwrap() {
            out.push(e[1].as_str().unwrap().to_string());
        }
    }
    out
}
