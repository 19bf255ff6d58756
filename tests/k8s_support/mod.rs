//! A fake Kubernetes API server on 127.0.0.1 for the Kubernetes plugin tests.
//!
//! It keeps objects per resource (`events`, `pods`, `namespaces`, any other plural) with a
//! global resourceVersion counter and a change history, and answers as the real API does:
//! - `GET /api/v1/<res>`, `/api/v1/namespaces/<ns>/<res>` (and `/apis/<group>/<version>/...`
//!   for resources stored as `<group>/<version>/<res>`, e.g. `events.k8s.io/v1/events`): a
//!   `<Kind>List` with
//!   `metadata.resourceVersion` (items without `kind`/`apiVersion`), `limit`/`continue` paging,
//!   `labelSelector` (`k=v`, `k!=v`, `k`, `!k`) and `fieldSelector` (`a.b=v`, `a.b!=v`);
//! - `GET .../<res>/<name>` and `/api/v1/namespaces/<name>`: one object, or a 404 Status;
//! - `?watch=1&resourceVersion=N`: a chunked stream of `{"type":..,"object":..}` lines with the
//!   changes after N, then live ones; `resourceVersion` 0 or absent starts with synthetic ADDED
//!   for every object; N older than the last [`FakeApi::compact`] gets an `ERROR` 410 event;
//!   `timeoutSeconds` ends the stream; `BOOKMARK`s when `allowWatchBookmarks=true`.
//!
//! Faults, for the recovery tests: [`FakeApi::bookmark`], [`FakeApi::garbage`] (a malformed
//! line), [`FakeApi::drop_watches`] (connection cut mid-stream), [`FakeApi::expire_watches`]
//! (an `ERROR` 410 in open watches), [`Faults::html`] (an HTML error page from a proxy),
//! [`Faults::reset`] (the server is down: connections closed unanswered), [`Faults::slow`]
//! (every answer delayed), [`Faults::token`] (401 without that bearer token).
//!
//! [`FakeApi::start_tls`] serves HTTPS with a CA generated for the test and writes a
//! service-account folder (`token`, `ca.crt`, `namespace`) for in-cluster style settings;
//! [`FakeApi::write_kubeconfig`] writes a kubeconfig pointing at the server.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// One request as received.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// The path without the query.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub authorization: Option<String>,
}

impl Request {
    pub fn param(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    pub fn is_watch(&self) -> bool {
        matches!(self.param("watch"), Some("1") | Some("true"))
    }
}

/// Scripted misbehaviour; change it through [`FakeApi::faults`].
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// The next N requests get an HTML error page (status [`Faults::html_status`]).
    pub html: usize,
    pub html_status: u16,
    /// The next N requests: the connection is closed without an answer.
    pub reset: usize,
    /// Every answer waits this long first.
    pub slow: Option<Duration>,
    /// Requests without `Authorization: Bearer <token>` get 401.
    pub token: Option<String>,
}

enum Entry {
    Change {
        rv: u64,
        res: String,
        typ: &'static str,
        obj: Value,
    },
    Bookmark,
    Garbage,
    Drop,
    Gone,
}

#[derive(Default)]
struct State {
    rv: u64,
    uid: u64,
    /// (resource, namespace, name) → object
    objects: BTreeMap<(String, String, String), Value>,
    history: Vec<Entry>,
    compacted: u64,
}

struct Shared {
    state: Mutex<State>,
    cv: Condvar,
    faults: Mutex<Faults>,
    requests: Mutex<Vec<Request>>,
    stop: AtomicBool,
}

pub struct FakeApi {
    pub port: u16,
    /// `https` when started with TLS.
    pub scheme: &'static str,
    /// For TLS: the service-account folder (`token`, `ca.crt`, `namespace`).
    pub secret_dir: Option<PathBuf>,
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The token the service-account folder and the kubeconfig carry.
pub const TOKEN: &str = "fake-api-token";

type Tls = Arc<rustls::ServerConfig>;

impl FakeApi {
    /// Plain HTTP.
    pub fn start() -> FakeApi {
        Self::start_with(None, None)
    }

    /// HTTPS with a generated CA; `dir` receives `token`, `ca.crt` and `namespace`.
    pub fn start_tls(dir: &Path) -> FakeApi {
        std::fs::create_dir_all(dir).unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "fake kubernetes CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .unwrap();
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
        std::fs::write(dir.join("token"), TOKEN).unwrap();
        std::fs::write(dir.join("namespace"), "default").unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let der_key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], der_key)
            .unwrap();
        let mut api = Self::start_with(Some(Arc::new(config)), Some(dir.to_path_buf()));
        api.scheme = "https";
        // It accepts the service-account token it wrote, and only that.
        api.faults(|f| f.token = Some(TOKEN.into()));
        api
    }

    fn start_with(tls: Option<Tls>, secret_dir: Option<PathBuf>) -> FakeApi {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                rv: 100,
                ..Default::default()
            }),
            cv: Condvar::new(),
            faults: Mutex::new(Faults {
                html_status: 502,
                ..Default::default()
            }),
            requests: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let sh = shared.clone();
        let thread = std::thread::spawn(move || {
            while !sh.stop.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        // Answers are written in pieces: without this, Nagle's algorithm and
                        // the client's delayed ACK hold each one back for ~40 ms.
                        let _ = s.set_nodelay(true);
                        let (sh, tls) = (sh.clone(), tls.clone());
                        std::thread::spawn(move || serve_conn(s, tls, &sh));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FakeApi {
            port,
            scheme: "http",
            secret_dir,
            shared,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.port)
    }

    /// Writes a kubeconfig naming this server (with its CA when TLS) and a token user.
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        let ca = match &self.secret_dir {
            Some(d) => format!(
                "    certificate-authority: {}\n",
                d.join("ca.crt").display()
            ),
            None => String::new(),
        };
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n{ca}\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n\
             current-context: fake\nusers:\n- name: fake\n  user:\n    token: {TOKEN}\n",
            self.url()
        );
        let p = dir.join("kubeconfig");
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn faults(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut self.shared.faults.lock().unwrap());
    }

    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Waits (bounded) until `pred` holds for the requests received.
    pub fn wait_requests(&self, what: &str, pred: impl Fn(&[Request]) -> bool) -> Vec<Request> {
        let start = Instant::now();
        loop {
            let r = self.requests();
            if pred(&r) {
                return r;
            }
            assert!(
                start.elapsed() < Duration::from_secs(40),
                "timed out waiting for {what}; got {:?}",
                r.iter()
                    .map(|r| format!("{} {:?}", r.path, r.query))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.state.lock().unwrap().rv
    }

    /// Creates or replaces an object of resource `res` (namespace and name from its metadata),
    /// giving it a uid (if it has none), a creationTimestamp and a new resourceVersion. Returns
    /// the stored object.
    pub fn put(&self, res: &str, mut obj: Value) -> Value {
        let mut st = self.shared.state.lock().unwrap();
        st.rv += 1;
        let rv = st.rv;
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        let key = (res.to_string(), ns, name);
        let existed = st.objects.get(&key).cloned();
        let meta = obj["metadata"].as_object_mut().expect("metadata object");
        if !meta.contains_key("uid") {
            match existed.as_ref().and_then(|o| o["metadata"]["uid"].as_str()) {
                Some(u) => {
                    meta.insert("uid".into(), json!(u));
                }
                None => {
                    st.uid += 1;
                    meta.insert(
                        "uid".into(),
                        json!(format!("00000000-0000-4000-8000-{:012}", st.uid)),
                    );
                }
            }
        }
        meta.entry("creationTimestamp")
            .or_insert(json!("2024-05-01T10:00:00Z"));
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        let typ = if existed.is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        st.objects.insert(key, obj.clone());
        st.history.push(Entry::Change {
            rv,
            res: res.to_string(),
            typ,
            obj: obj.clone(),
        });
        drop(st);
        self.shared.cv.notify_all();
        obj
    }

    /// Deletes an object; watches see DELETED with a new resourceVersion.
    pub fn delete(&self, res: &str, ns: &str, name: &str) -> Option<Value> {
        let mut st = self.shared.state.lock().unwrap();
        let mut obj = st
            .objects
            .remove(&(res.to_string(), ns.to_string(), name.to_string()))?;
        st.rv += 1;
        let rv = st.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        st.history.push(Entry::Change {
            rv,
            res: res.to_string(),
            typ: "DELETED",
            obj: obj.clone(),
        });
        drop(st);
        self.shared.cv.notify_all();
        Some(obj)
    }

    fn control(&self, e: Entry) {
        self.shared.state.lock().unwrap().history.push(e);
        self.shared.cv.notify_all();
    }

    /// Open watches that asked for bookmarks get one at the current resourceVersion.
    pub fn bookmark(&self) {
        self.control(Entry::Bookmark);
    }

    /// Open watches get a line that is not JSON.
    pub fn garbage(&self) {
        self.control(Entry::Garbage);
    }

    /// Open watches are cut (no terminating chunk).
    pub fn drop_watches(&self) {
        self.control(Entry::Drop);
    }

    /// Open watches get an `ERROR` event with a 410 Status and end.
    pub fn expire_watches(&self) {
        self.control(Entry::Gone);
    }

    /// Forgets the history: watches from any resourceVersion up to now get 410 Gone.
    pub fn compact(&self) {
        let mut st = self.shared.state.lock().unwrap();
        st.compacted = st.rv;
    }

    /// Number of watch / list requests for a resource so far.
    pub fn count(&self, res: &str, watch: bool) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.path.ends_with(&format!("/{res}")) && r.is_watch() == watch)
            .count()
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Object builders, shaped like the real API's JSON

/// A core/v1 Event about a pod.
pub fn event(ns: &str, name: &str, reason: &str, message: &str, typ: &str) -> Value {
    let pod = name.split('.').next().unwrap_or(name);
    json!({
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": "2024-05-01T10:00:00Z"},
        "involvedObject": {
            "kind": "Pod", "namespace": ns, "name": pod,
            "uid": format!("pod-uid-{pod}"), "apiVersion": "v1", "resourceVersion": "42",
            "fieldPath": "spec.containers{app}"
        },
        "reason": reason,
        "message": message,
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": "2024-05-01T10:00:00Z",
        "lastTimestamp": "2024-05-01T10:00:05Z",
        "count": 1,
        "type": typ,
        "eventTime": null,
        "reportingComponent": "kubelet",
        "reportingInstance": "node-1"
    })
}

/// An events.k8s.io/v1 Event about a pod, as the API serves it (a series of 3 occurrences),
/// stored as resource `events.k8s.io/v1/events`.
pub fn event_v1(ns: &str, name: &str, reason: &str, note: &str, typ: &str) -> Value {
    let pod = name.split('.').next().unwrap_or(name);
    json!({
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": "2024-05-01T10:00:00Z"},
        "eventTime": "2024-05-01T10:00:00.250000Z",
        "series": {"count": 3, "lastObservedTime": "2024-05-01T10:00:07.500000Z"},
        "reportingController": "kubelet",
        "reportingInstance": "node-1",
        "action": "Pulling",
        "reason": reason,
        "regarding": {
            "kind": "Pod", "namespace": ns, "name": pod,
            "uid": format!("pod-uid-{pod}"), "apiVersion": "v1", "resourceVersion": "42",
            "fieldPath": "spec.containers{app}"
        },
        "note": note,
        "type": typ,
        "deprecatedSource": {"component": "kubelet", "host": "node-1"},
        "deprecatedFirstTimestamp": "2024-05-01T10:00:00Z",
        "deprecatedLastTimestamp": "2024-05-01T10:00:07Z",
        "deprecatedCount": 3
    })
}

/// A running pod with one container per `(name, image)` on `node`.
pub fn pod(ns: &str, name: &str, node: &str, labels: Value, containers: &[(&str, &str)]) -> Value {
    let specs: Vec<Value> = containers
        .iter()
        .map(|(n, i)| json!({"name": n, "image": i}))
        .collect();
    let statuses: Vec<Value> = containers
        .iter()
        .enumerate()
        .map(|(k, (n, i))| {
            json!({
                "name": n, "image": i,
                "imageID": format!("docker-pullable://{i}@sha256:{:064x}", k + 1),
                "containerID": format!("containerd://{:064x}", 0xc0ffee + k),
                "ready": true, "restartCount": 0, "started": true,
                "state": {"running": {"startedAt": "2024-05-01T10:00:01Z"}}
            })
        })
        .collect();
    json!({
        "metadata": {"name": name, "namespace": ns, "labels": labels,
                     "annotations": {}, "creationTimestamp": "2024-05-01T10:00:00Z"},
        "spec": {"nodeName": node, "containers": specs},
        "status": {"phase": "Running", "hostIP": "10.0.0.1", "podIP": "10.244.0.10",
                   "containerStatuses": statuses}
    })
}

pub fn namespace(name: &str, labels: Value) -> Value {
    json!({
        "metadata": {"name": name, "labels": labels, "creationTimestamp": "2024-05-01T09:00:00Z"},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"}
    })
}

// ---------------------------------------------------------------------------------------------
// Serving

trait Conn: Read + Write + Send {
    fn tcp(&self) -> &TcpStream;
}

impl Conn for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Conn for rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
}

fn serve_conn(s: TcpStream, tls: Option<Tls>, sh: &Shared) {
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let conn: Box<dyn Conn> = match tls {
        Some(cfg) => match rustls::ServerConnection::new(cfg) {
            Ok(c) => Box::new(rustls::StreamOwned::new(c, s)),
            Err(_) => return,
        },
        None => Box::new(s),
    };
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if sh.stop.load(Ordering::Relaxed) {
                    return;
                }
                // A partial line read before the timeout is kept by read_line in `line`;
                // keep reading the rest.
                if line.is_empty() {
                    continue;
                }
                let mut rest = String::new();
                if r.read_line(&mut rest).unwrap_or(0) == 0 {
                    return;
                }
                line.push_str(&rest);
            }
            Err(_) => return,
        }
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            match r.read_line(&mut h) {
                Ok(0) => return,
                Ok(_) => {}
                Err(_) => {
                    if sh.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    continue;
                }
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let (path, q) = target.split_once('?').unwrap_or((&target, ""));
        let query = q
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect();
        let req = Request {
            method,
            path: path.to_string(),
            query,
            authorization: headers
                .iter()
                .find(|(k, _)| k == "authorization")
                .map(|(_, v)| v.clone()),
        };
        sh.requests.lock().unwrap().push(req.clone());
        let faults = {
            let mut f = sh.faults.lock().unwrap();
            let now = f.clone();
            if f.reset > 0 {
                f.reset -= 1;
            } else if f.html > 0 {
                f.html -= 1;
            }
            now
        };
        if let Some(d) = faults.slow {
            std::thread::sleep(d);
        }
        let w = r.get_mut();
        if faults.reset > 0 {
            let _ = w.tcp().shutdown(Shutdown::Both);
            return;
        }
        if faults.html > 0 {
            let body = "<html><head><title>502 Bad Gateway</title></head><body>\
                        <center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center>\
                        </body></html>\n";
            let _ = write!(
                w,
                "HTTP/1.1 {} Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{body}",
                faults.html_status,
                body.len()
            );
            let _ = w.flush();
            continue;
        }
        if let Some(t) = &faults.token {
            if req.authorization.as_deref() != Some(&format!("Bearer {t}")) {
                let body = status(401, "Unauthorized", "Unauthorized").to_string();
                respond(w, 401, &body);
                continue;
            }
        }
        if req.method != "GET" {
            respond(
                w,
                405,
                &status(405, "MethodNotAllowed", "only GET is served").to_string(),
            );
            continue;
        }
        if !handle(w, &req, sh) {
            return;
        }
    }
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                match (
                    b.get(i + 1).and_then(|c| hex(*c)),
                    b.get(i + 2).and_then(|c| hex(*c)),
                ) {
                    (Some(h), Some(l)) => {
                        out.push(h * 16 + l);
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn respond(w: &mut Box<dyn Conn>, code: u16, body: &str) {
    let _ = write!(
        w,
        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = w.flush();
}

/// `apiVersion` of a resource key: `v1`, or `<group>/<version>` for `<group>/<version>/<res>`.
fn api_version_of(res: &str) -> String {
    match res.rsplit_once('/') {
        Some((gv, _)) => gv.to_string(),
        None => "v1".into(),
    }
}

fn kind_of(res: &str) -> String {
    let res = res.rsplit('/').next().unwrap_or(res);
    match res {
        "events" => "Event".into(),
        "pods" => "Pod".into(),
        "namespaces" => "Namespace".into(),
        "nodes" => "Node".into(),
        "services" => "Service".into(),
        "endpoints" => "Endpoints".into(),
        other => {
            let s = other.strip_suffix('s').unwrap_or(other);
            let mut c = s.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect(),
                None => String::new(),
            }
        }
    }
}

fn cluster_scoped(res: &str) -> bool {
    matches!(res, "namespaces" | "nodes")
}

/// (resource, namespace filter, name) from `/api/v1/...` or `/apis/<group>/<version>/...` (the
/// resource then named `<group>/<version>/<res>`).
fn route(path: &str) -> Option<(String, Option<String>, Option<String>)> {
    let (prefix, rest) = match path.strip_prefix("/api/v1/") {
        Some(rest) => (String::new(), rest),
        None => {
            let mut it = path.strip_prefix("/apis/")?.splitn(3, '/');
            let (g, v, rest) = (it.next()?, it.next()?, it.next()?);
            (format!("{g}/{v}/"), rest)
        }
    };
    let seg: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let s = |i: usize| seg[i].to_string();
    let r = |i: usize| format!("{prefix}{}", seg[i]);
    Some(match seg.len() {
        1 => (r(0), None, None),
        2 if prefix.is_empty() && seg[0] == "namespaces" => ("namespaces".into(), None, Some(s(1))),
        2 if cluster_scoped(seg[0]) => (r(0), None, Some(s(1))),
        3 if seg[0] == "namespaces" => (r(2), Some(s(1)), None),
        4 if seg[0] == "namespaces" => (r(2), Some(s(1)), Some(s(3))),
        _ => return None,
    })
}

fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

fn field_matches(obj: &Value, sel: &str) -> bool {
    sel.split(',').filter(|t| !t.is_empty()).all(|term| {
        let (k, v, neg) = if let Some((k, v)) = term.split_once("!=") {
            (k, v, true)
        } else if let Some((k, v)) = term.split_once("==") {
            (k, v, false)
        } else if let Some((k, v)) = term.split_once('=') {
            (k, v, false)
        } else {
            return false;
        };
        let got = match lookup(obj, k.trim()) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        (got == v.trim()) != neg
    })
}

fn label_matches(obj: &Value, sel: &str) -> bool {
    let labels = obj["metadata"]["labels"].as_object();
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(|v| v.as_str());
    sel.split(',').filter(|t| !t.is_empty()).all(|term| {
        let term = term.trim();
        if let Some((k, v)) = term.split_once("!=") {
            get(k.trim()) != Some(v.trim())
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            get(k.trim()) == Some(v.trim())
        } else if let Some(k) = term.strip_prefix('!') {
            get(k).is_none()
        } else {
            get(term).is_some()
        }
    })
}

fn selected(req: &Request, res: &str, ns: &Option<String>, obj_res: &str, obj: &Value) -> bool {
    obj_res == res
        && ns
            .as_deref()
            .is_none_or(|n| obj["metadata"]["namespace"].as_str() == Some(n))
        && req
            .param("labelSelector")
            .is_none_or(|s| label_matches(obj, s))
        && req
            .param("fieldSelector")
            .is_none_or(|s| field_matches(obj, s))
}

/// Answers one request; false when the connection must close.
fn handle(w: &mut Box<dyn Conn>, req: &Request, sh: &Shared) -> bool {
    let Some((res, ns, name)) = route(&req.path) else {
        respond(
            w,
            404,
            &status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
            .to_string(),
        );
        return true;
    };
    if let Some(name) = name {
        let st = sh.state.lock().unwrap();
        let key = (res.clone(), ns.clone().unwrap_or_default(), name.clone());
        match st.objects.get(&key) {
            Some(o) => {
                let mut o = o.clone();
                add_types(&mut o, &res);
                drop(st);
                respond(w, 200, &o.to_string());
            }
            None => {
                drop(st);
                let msg = format!("{res} \"{name}\" not found");
                respond(w, 404, &status(404, "NotFound", &msg).to_string());
            }
        }
        return true;
    }
    if req.is_watch() {
        return watch(w, req, sh, &res, &ns);
    }
    // A list, paged by `limit` / `continue` (the continue token is the offset).
    let st = sh.state.lock().unwrap();
    let all: Vec<&Value> = st
        .objects
        .iter()
        .filter(|((r, _, _), o)| selected(req, &res, &ns, r, o))
        .map(|(_, o)| o)
        .collect();
    let start: usize = req
        .param("continue")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let limit: usize = req
        .param("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let end = start.saturating_add(limit).min(all.len());
    let items: Vec<&Value> = all.get(start.min(all.len())..end).unwrap_or(&[]).to_vec();
    let mut meta = json!({"resourceVersion": st.rv.to_string()});
    if end < all.len() {
        meta["continue"] = json!(end.to_string());
    }
    let body = json!({"kind": format!("{}List", kind_of(&res)), "apiVersion": api_version_of(&res),
                      "metadata": meta, "items": items})
    .to_string();
    drop(st);
    respond(w, 200, &body);
    true
}

fn add_types(o: &mut Value, res: &str) {
    if let Some(m) = o.as_object_mut() {
        let mut out = serde_json::Map::new();
        out.insert("kind".into(), json!(kind_of(res)));
        out.insert("apiVersion".into(), json!(api_version_of(res)));
        for (k, v) in std::mem::take(m) {
            out.insert(k, v);
        }
        *m = out;
    }
}

fn chunk(w: &mut Box<dyn Conn>, line: &str) -> bool {
    let data = format!("{line}\n");
    write!(w, "{:x}\r\n{data}\r\n", data.len()).is_ok() && w.flush().is_ok()
}

fn watch(
    w: &mut Box<dyn Conn>,
    req: &Request,
    sh: &Shared,
    res: &str,
    ns: &Option<String>,
) -> bool {
    let from: u64 = req
        .param("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let bookmarks = req.param("allowWatchBookmarks") == Some("true");
    let deadline = req
        .param("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(|t| Instant::now() + Duration::from_secs(t));
    if write!(
        w,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut lines = Vec::new();
    let mut cursor;
    {
        let st = sh.state.lock().unwrap();
        if from != 0 && from < st.compacted {
            let msg = format!("too old resource version: {from} ({})", st.compacted + 1);
            lines.push(json!({"type": "ERROR", "object": status(410, "Expired", &msg)}));
            drop(st);
            for l in &lines {
                if !chunk(w, &l.to_string()) {
                    return false;
                }
            }
            return write!(w, "0\r\n\r\n").is_ok() && w.flush().is_ok();
        }
        if from == 0 {
            for ((r, _, _), o) in &st.objects {
                if selected(req, res, ns, r, o) {
                    let mut o = o.clone();
                    add_types(&mut o, res);
                    lines.push(json!({"type": "ADDED", "object": o}));
                }
            }
        } else {
            for e in &st.history {
                if let Entry::Change {
                    rv,
                    res: r,
                    typ,
                    obj,
                } = e
                {
                    if *rv > from && selected(req, res, ns, r, obj) {
                        let mut o = obj.clone();
                        add_types(&mut o, res);
                        lines.push(json!({"type": typ, "object": o}));
                    }
                }
            }
        }
        cursor = st.history.len();
    }
    for l in &lines {
        if !chunk(w, &l.to_string()) {
            return false;
        }
    }
    loop {
        let mut out: Vec<String> = Vec::new();
        let mut end: Option<bool> = None; // Some(clean)
        {
            let mut st = sh.state.lock().unwrap();
            while cursor == st.history.len() {
                if sh.stop.load(Ordering::Relaxed) {
                    return false;
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    end = Some(true);
                    break;
                }
                st = sh.cv.wait_timeout(st, Duration::from_millis(50)).unwrap().0;
            }
            while cursor < st.history.len() && end.is_none() {
                match &st.history[cursor] {
                    Entry::Change {
                        res: r, typ, obj, ..
                    } => {
                        if selected(req, res, ns, r, obj) {
                            let mut o = obj.clone();
                            add_types(&mut o, res);
                            out.push(json!({"type": typ, "object": o}).to_string());
                        }
                    }
                    Entry::Bookmark => {
                        if bookmarks {
                            out.push(
                                json!({"type": "BOOKMARK", "object": {
                                    "kind": kind_of(res), "apiVersion": api_version_of(res),
                                    "metadata": {"resourceVersion": st.rv.to_string()}}})
                                .to_string(),
                            );
                        }
                    }
                    Entry::Garbage => out.push("<html>this is not json {\"type\":".into()),
                    Entry::Drop => end = Some(false),
                    Entry::Gone => {
                        let msg = format!("too old resource version: {from} ({})", st.rv);
                        out.push(
                            json!({"type": "ERROR", "object": status(410, "Expired", &msg)})
                                .to_string(),
                        );
                        end = Some(true);
                    }
                }
                cursor += 1;
            }
        }
        for l in &out {
            if !chunk(w, l) {
                return false;
            }
        }
        match end {
            Some(true) => return write!(w, "0\r\n\r\n").is_ok() && w.flush().is_ok(),
            Some(false) => {
                let _ = w.flush();
                let _ = w.tcp().shutdown(Shutdown::Both);
                return false;
            }
            None => {}
        }
    }
}
