//! The Kubernetes client and the Kubernetes events sources against the fake API server of
//! tests/k8s_support, through the real kube client path: once via a kubeconfig (plain HTTP) and
//! once via in-cluster style settings (HTTPS with a generated CA, token and CA read from a
//! service-account folder). Covered: list+watch, BOOKMARK, a dropped watch resumed from its
//! resourceVersion, 410 Gone re-listed without duplicates, a malformed watch line and HTML
//! answers recovered from, restart with storage sending nothing twice.

mod k8s_support;

use std::sync::mpsc;
use std::time::Duration;

use ferrentd::kubernetes::watch::{self, ChangeKind, Seen, Target};
use ferrentd::kubernetes::ClientSettings;
use k8s_support::{event, FakeApi};

const WAIT: Duration = Duration::from_secs(40);

/// A watch running on the module's runtime, reporting (type, name, resourceVersion).
struct Watching {
    rx: mpsc::Receiver<(ChangeKind, String, String)>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Seen>>,
}

impl Watching {
    fn start(settings: ClientSettings, target: Target, seen: Seen) -> Watching {
        let (tx, rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = ferrentd::kubernetes::runtime().unwrap();
            let seen = parking_lot::Mutex::new(seen);
            rt.block_on(async {
                let client = settings.client().await.unwrap();
                watch::run(
                    client,
                    &target,
                    &seen,
                    async {
                        let _ = stop_rx.await;
                    },
                    |c| {
                        let name = c.object["metadata"]["name"]
                            .as_str()
                            .unwrap_or("")
                            .to_string();
                        let rv = c.object["metadata"]["resourceVersion"]
                            .as_str()
                            .unwrap_or("")
                            .to_string();
                        let _ = tx.send((c.kind, name, rv));
                    },
                )
                .await;
            });
            seen.into_inner()
        });
        Watching {
            rx,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn next(&self) -> (ChangeKind, String, String) {
        self.rx
            .recv_timeout(WAIT)
            .expect("a change within the wait")
    }

    fn take(&self, n: usize) -> Vec<(ChangeKind, String)> {
        (0..n)
            .map(|_| {
                let (k, name, _) = self.next();
                (k, name)
            })
            .collect()
    }

    /// Nothing more arrives within a short quiet period.
    fn assert_quiet(&self) {
        if let Ok(c) = self.rx.recv_timeout(Duration::from_millis(700)) {
            panic!("unexpected change {c:?}");
        }
    }

    fn stop(mut self) -> Seen {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn kubeconfig_settings(api: &FakeApi, dir: &std::path::Path) -> ClientSettings {
    ClientSettings {
        kubeconfig: Some(api.write_kubeconfig(dir).to_string_lossy().into_owned()),
        ..Default::default()
    }
}

fn events_target() -> Target {
    let mut t = Target::core("Event", "events");
    t.timeout_secs = Some(30);
    t
}

#[test]
fn client_watch_via_kubeconfig_survives_faults_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start();
    api.faults(|f| f.token = Some(k8s_support::TOKEN.into()));
    api.put(
        "events",
        event("default", "web-1.a", "Pulled", "pulled", "Normal"),
    );
    api.put(
        "events",
        event("kube-system", "dns-1.b", "BackOff", "back-off", "Warning"),
    );
    let w = Watching::start(
        kubeconfig_settings(&api, dir.path()),
        events_target(),
        Seen::default(),
    );
    let mut first = w.take(2);
    first.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        first,
        vec![
            (ChangeKind::Added, "dns-1.b".to_string()),
            (ChangeKind::Added, "web-1.a".to_string())
        ]
    );
    api.wait_requests("a watch", |r| r.iter().any(|r| r.is_watch()));

    // Live changes: added, modified, deleted.
    api.put(
        "events",
        event("default", "web-1.c", "Started", "started", "Normal"),
    );
    assert_eq!(w.take(1), vec![(ChangeKind::Added, "web-1.c".into())]);
    let mut again = event("default", "web-1.a", "Pulled", "pulled twice", "Normal");
    again["count"] = serde_json::json!(2);
    api.put("events", again);
    assert_eq!(w.take(1), vec![(ChangeKind::Modified, "web-1.a".into())]);
    api.delete("events", "default", "web-1.c");
    assert_eq!(w.take(1), vec![(ChangeKind::Deleted, "web-1.c".into())]);

    // A bookmark moves the resourceVersion on and reports nothing.
    api.bookmark();
    w.assert_quiet();

    // A malformed line: the stream goes on.
    api.garbage();
    api.put(
        "events",
        event("default", "web-1.d", "Killing", "killing", "Normal"),
    );
    assert_eq!(w.take(1), vec![(ChangeKind::Added, "web-1.d".into())]);

    // A dropped watch resumes from its resourceVersion: the change made meanwhile arrives
    // once, nothing is replayed, and no re-list happens.
    let lists = api.count("events", false);
    api.drop_watches();
    api.put(
        "events",
        event("default", "web-1.e", "Created", "created", "Normal"),
    );
    assert_eq!(w.take(1), vec![(ChangeKind::Added, "web-1.e".into())]);
    w.assert_quiet();
    assert_eq!(api.count("events", false), lists, "no re-list after a drop");

    // 410 Gone: the watcher re-lists; what was reported is not reported again.
    api.compact();
    api.expire_watches();
    api.put(
        "events",
        event("default", "web-1.f", "Scheduled", "scheduled", "Normal"),
    );
    assert_eq!(w.take(1), vec![(ChangeKind::Added, "web-1.f".into())]);
    w.assert_quiet();
    api.wait_requests("a re-list", |_| api.count("events", false) > lists);

    // The API server answers HTML for a while, then recovers.
    api.faults(|f| f.html = 2);
    api.drop_watches();
    api.put(
        "events",
        event("default", "web-1.g", "Pulling", "pulling", "Normal"),
    );
    assert_eq!(w.take(1), vec![(ChangeKind::Added, "web-1.g".into())]);
    w.assert_quiet();

    // The server is down (connections closed unanswered), then slow: the watch backs off,
    // waits, and catches up.
    api.faults(|f| f.reset = 2);
    api.drop_watches();
    api.put(
        "events",
        event("default", "web-1.h", "Pulled", "pulled", "Normal"),
    );
    assert_eq!(w.take(1), vec![(ChangeKind::Added, "web-1.h".into())]);
    api.faults(|f| f.slow = Some(Duration::from_millis(1500)));
    api.drop_watches();
    api.put(
        "events",
        event("default", "web-1.i", "Pulled", "pulled", "Normal"),
    );
    assert_eq!(w.take(1), vec![(ChangeKind::Added, "web-1.i".into())]);
    api.faults(|f| f.slow = None);
    w.assert_quiet();

    let seen = w.stop();
    // web-1.c was deleted; the rest are remembered with their last resourceVersion.
    assert_eq!(seen.len(), 8);
    assert!(api
        .requests()
        .iter()
        .all(|r| r.authorization.as_deref() == Some("Bearer fake-api-token")));
}

#[test]
fn client_in_cluster_style_over_tls_and_restart_with_seen() {
    let dir = tempfile::tempdir().unwrap();
    let sa = dir.path().join("sa");
    let api = FakeApi::start_tls(&sa);
    api.put(
        "events",
        event("default", "a.1", "Pulled", "pulled", "Normal"),
    );
    api.put(
        "events",
        event("default", "b.1", "Pulled", "pulled", "Normal"),
    );
    let settings = ClientSettings {
        kubernetes_url: Some(format!("{}/api", api.url())),
        secret_dir: Some(sa.to_string_lossy().into_owned()),
        ..Default::default()
    };
    let mut target = events_target();
    target.namespace = Some("default".into());
    let w = Watching::start(settings.clone(), target.clone(), Seen::default());
    assert_eq!(w.take(2).len(), 2);
    let seen = w.stop();
    assert_eq!(seen.len(), 2);

    // While stopped: one new event, one modified.
    api.put(
        "events",
        event("default", "c.1", "Pulled", "pulled", "Normal"),
    );
    api.put(
        "events",
        event("default", "a.1", "Pulled", "again", "Normal"),
    );
    let w = Watching::start(
        settings.clone(),
        target.clone(),
        Seen::from_json(Some(&seen.to_json())),
    );
    let mut got = w.take(2);
    got.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        got,
        vec![
            (ChangeKind::Modified, "a.1".to_string()),
            (ChangeKind::Added, "c.1".to_string())
        ]
    );
    w.assert_quiet();
    drop(w);

    // A wrong CA is refused (no event gets through).
    let other = dir.path().join("other");
    let _other_api = FakeApi::start_tls(&other);
    let bad = ClientSettings {
        ca_file: Some(other.join("ca.crt").to_string_lossy().into_owned()),
        ..settings
    };
    let w = Watching::start(bad, target, Seen::default());
    w.assert_quiet();
}

// ---------------------------------------------------------------------------------------------
// The sources, run in the ferrentd binary

mod sink_common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// A ferrentd started on a config in `dir`, stdout and stderr to files there.
struct Running {
    child: Option<Child>,
    dir: std::path::PathBuf,
}

impl Running {
    fn start(dir: &Path, conf: &str, envs: &[(&str, &str)]) -> Running {
        let conf = format!(
            "<label @FLUENT_LOG>\n  <match **>\n    @type null\n  </match>\n</label>\n{conf}"
        );
        std::fs::write(dir.join("fluent.conf"), conf).unwrap();
        Self::start_file(dir, &dir.join("fluent.conf"), envs)
    }

    fn start_file(dir: &Path, conf: &Path, envs: &[(&str, &str)]) -> Running {
        let out = std::fs::File::create(dir.join("stdout")).unwrap();
        let err = std::fs::File::create(dir.join("stderr")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrentd"));
        cmd.arg("-c")
            .arg(conf)
            .current_dir(dir)
            .env("TZ", "UTC")
            .env_remove("KUBECONFIG")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        Running {
            child: Some(cmd.spawn().unwrap()),
            dir: dir.to_path_buf(),
        }
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("stdout"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    /// Waits (bounded) for at least `n` stdout lines.
    fn wait_lines(&self, n: usize) -> Vec<String> {
        let start = Instant::now();
        loop {
            let l = self.lines();
            if l.len() >= n {
                return l;
            }
            assert!(
                start.elapsed() < WAIT,
                "waited for {n} lines, got {l:#?}\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM by PID and a bounded wait; returns (exited cleanly, stdout lines, log).
    fn stop(mut self) -> (bool, Vec<String>, String) {
        let mut ok = false;
        if let Some(mut c) = self.child.take() {
            // SAFETY: signals the child this test started and has not reaped.
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
            }
            let start = Instant::now();
            loop {
                if let Ok(Some(st)) = c.try_wait() {
                    ok = st.success();
                    break;
                }
                if start.elapsed() > WAIT {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        (ok, self.lines(), self.log())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `2024-05-01 10:00:05.000000000 +0000 tag: {json}` → (time, tag, record).
fn parse_line(line: &str) -> (String, String, serde_json::Value) {
    let (head, json) = line.split_once(": {").expect("a stdout line");
    let (time, tag) = head.rsplit_once(' ').unwrap();
    let v = serde_json::from_str(&format!("{{{json}")).unwrap();
    (time.to_string(), tag.to_string(), v)
}

#[test]
fn events_source_via_kubeconfig_recovers_and_resumes_from_storage() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start();
    let kubeconfig = api.write_kubeconfig(dir.path());
    api.put(
        "events",
        event("default", "web-1.a", "Pulled", "pulled", "Normal"),
    );
    api.put(
        "events",
        event("kube-system", "dns-1.b", "BackOff", "back-off", "Warning"),
    );
    let conf = format!(
        "<source>\n  @type kubernetes_events\n  kubeconfig {}\n  tag k8s.events\n  watch_timeout 20s\n\
         <storage>\n    @type local\n    persistent true\n    path {}\n  </storage>\n</source>\n\
         <match k8s.**>\n  @type stdout\n</match>\n",
        kubeconfig.display(),
        dir.path().join("events.json").display()
    );
    let run = Running::start(dir.path(), &conf, &[]);
    let lines = run.wait_lines(2);
    let mut names: Vec<String> = lines
        .iter()
        .map(|l| {
            let (time, tag, v) = parse_line(l);
            assert_eq!(tag, "k8s.events");
            // The time is lastTimestamp; the record is the bare Event.
            assert_eq!(time, "2024-05-01 10:00:05.000000000 +0000");
            assert_eq!(v["kind"], "Event");
            assert_eq!(v["involvedObject"]["kind"], "Pod");
            v["metadata"]["name"].as_str().unwrap().to_string()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["dns-1.b", "web-1.a"]);
    api.wait_requests("a watch", |r| r.iter().any(|r| r.is_watch()));

    // Garbage on the watch, an expired watch (410) with a compacted history, an HTML page
    // from a proxy: each is logged, and events keep flowing without duplicates.
    api.garbage();
    api.put(
        "events",
        event("default", "web-1.c", "Started", "started", "Normal"),
    );
    run.wait_lines(3);
    api.compact();
    api.expire_watches();
    api.put(
        "events",
        event("default", "web-1.d", "Killing", "killing", "Normal"),
    );
    run.wait_lines(4);
    api.faults(|f| f.html = 2);
    api.drop_watches();
    api.put(
        "events",
        event("default", "web-1.e", "Pulling", "pulling", "Normal"),
    );
    run.wait_lines(5);
    // A deleted event is not a record in the bare shape.
    api.delete("events", "default", "web-1.c");
    std::thread::sleep(Duration::from_millis(700));
    let (ok, lines, log) = run.stop();
    assert!(ok, "{log}");
    assert_eq!(lines.len(), 5, "{lines:#?}");
    // One warning per outage (the garbage line, the HTML answers), not one per retry; kube's
    // own per-request lines are not shown at the default level.
    let warnings = log.lines().filter(|l| l.contains("[warn]")).count();
    assert!(warnings <= 3, "{log}");
    assert!(!log.contains("eof in poll"), "{log}");
    assert!(log.contains("failed, retrying with backoff"), "{log}");
    assert!(log.contains("410 Gone"), "{log}");
    assert!(!log.contains("panicked"), "{log}");

    // Stopped: one new event, one changed. A restart emits those two only.
    api.put(
        "events",
        event("default", "web-1.f", "Created", "created", "Normal"),
    );
    let mut again = event("default", "web-1.a", "Pulled", "pulled again", "Normal");
    again["count"] = serde_json::json!(2);
    api.put("events", again);
    let run = Running::start(dir.path(), &conf, &[]);
    let lines = run.wait_lines(2);
    std::thread::sleep(Duration::from_millis(700));
    let (ok, lines2, log) = run.stop();
    assert!(ok, "{log}");
    assert_eq!(lines2.len(), 2, "{lines2:#?}");
    let mut got: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            let (_, _, v) = parse_line(l);
            (
                v["metadata"]["name"].as_str().unwrap().to_string(),
                v["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("web-1.a".to_string(), "pulled again".to_string()),
            ("web-1.f".to_string(), "created".to_string())
        ]
    );
}

#[test]
fn objects_source_in_cluster_style_with_watch_and_pull() {
    let dir = tempfile::tempdir().unwrap();
    let sa = dir.path().join("serviceaccount");
    let api = FakeApi::start_tls(&sa);
    api.put(
        "events",
        event("default", "web-1.a", "Pulled", "pulled", "Normal"),
    );
    api.put(
        "pods",
        k8s_support::pod(
            "default",
            "web-1",
            "node-1",
            serde_json::json!({"app": "web"}),
            &[("app", "nginx:1.25")],
        ),
    );
    let conf = format!(
        "<source>\n  @type kubernetes_objects\n  secret_dir {}\n\
         <watch>\n    resource_name events\n  </watch>\n\
         <pull>\n    resource_name pods\n    namespace default\n    label_selector app=web\n    interval 1h\n  </pull>\n\
         </source>\n<match kubernetes.**>\n  @type stdout\n</match>\n",
        sa.display()
    );
    let port = api.port.to_string();
    let envs = [
        ("KUBERNETES_SERVICE_HOST", "127.0.0.1"),
        ("KUBERNETES_SERVICE_PORT", port.as_str()),
    ];
    let run = Running::start(dir.path(), &conf, &envs);
    let lines = run.wait_lines(2);
    api.wait_requests("a watch", |r| r.iter().any(|r| r.is_watch()));
    api.put(
        "events",
        event("default", "web-1.b", "Started", "started", "Normal"),
    );
    api.delete("events", "default", "web-1.a");
    let lines = {
        drop(lines);
        run.wait_lines(4)
    };
    let (ok, _, log) = run.stop();
    assert!(ok, "{log}");
    let mut watch = Vec::new();
    let mut pulled = Vec::new();
    for l in &lines {
        let (_, tag, v) = parse_line(l);
        match tag.as_str() {
            "kubernetes.events" => watch.push(format!(
                "{} {}",
                v["type"].as_str().unwrap(),
                v["object"]["metadata"]["name"].as_str().unwrap()
            )),
            "kubernetes.pods" => pulled.push(v),
            other => panic!("tag {other}"),
        }
    }
    assert_eq!(watch, ["ADDED web-1.a", "ADDED web-1.b", "DELETED web-1.a"]);
    assert_eq!(pulled.len(), 1);
    assert_eq!(pulled[0]["metadata"]["name"], "web-1");
    assert_eq!(
        pulled[0]["metadata"]["requestResourceVersion"],
        serde_json::json!(api.resource_version().saturating_sub(2).to_string())
    );
    // The service-account token went with every request, over TLS checked against ca.crt.
    assert!(api
        .requests()
        .iter()
        .all(|r| r.authorization.as_deref() == Some("Bearer fake-api-token")));
}

#[test]
fn events_pull_mode_emits_each_version_once() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start();
    api.put(
        "events",
        event("default", "a.1", "Pulled", "pulled", "Normal"),
    );
    api.put(
        "events",
        event("other", "b.1", "Pulled", "pulled", "Normal"),
    );
    let conf = format!(
        "<source>\n  @type kubernetes_events\n  kubernetes_url {}/api\n  namespaces default\n  interval 1s\n  record_shape otel\n</source>\n\
         <match kubernetes.events>\n  @type stdout\n</match>\n",
        api.url()
    );
    let run = Running::start(dir.path(), &conf, &[]);
    run.wait_lines(1);
    api.wait_requests("three lists", |_| api.count("events", false) >= 3);
    api.put(
        "events",
        event("default", "c.1", "BackOff", "back-off", "Warning"),
    );
    let lines = run.wait_lines(2);
    api.wait_requests("two more lists", |_| api.count("events", false) >= 5);
    let (ok, end, log) = run.stop();
    assert!(ok, "{log}");
    assert_eq!(end.len(), 2, "{end:#?}");
    assert_eq!(api.count("events", true), 0, "pull mode does not watch");
    let (_, tag, first) = parse_line(&lines[0]);
    assert_eq!(tag, "kubernetes.events");
    assert_eq!(first["k8s.event.name"], "a.1");
    assert_eq!(first["severity"], "INFO");
    assert_eq!(first["k8s.namespace.name"], "default");
    let (_, _, second) = parse_line(&lines[1]);
    assert_eq!(second["k8s.event.name"], "c.1");
    assert_eq!(second["severity"], "WARN");
    assert_eq!(second["message"], "back-off");
}

#[test]
fn conf_d_kubernetes_events_to_loki() {
    use sink_common::{Answer, FakeSink};
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start();
    let kubeconfig = api.write_kubeconfig(dir.path());
    api.put(
        "events",
        event(
            "default",
            "web-1.a",
            "BackOff",
            "Back-off restarting failed container",
            "Warning",
        ),
    );
    let sink = FakeSink::start(Box::new(|_, _| Answer::Status(204, String::new())));
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf.d/k8s-events-loki.conf");
    let loki = format!("http://127.0.0.1:{}", sink.port);
    let run = Running::start_file(
        dir.path(),
        &conf,
        &[
            ("KUBECONFIG", kubeconfig.to_str().unwrap()),
            ("LOKI_URL", &loki),
            ("OPEN_TELEMETRY_COLLECTOR_ORGID", "tenant-a"),
            ("OPEN_TELEMETRY_COLLECTOR_USERNAME", "loki-user"),
            ("OPEN_TELEMETRY_COLLECTOR_PASSWORD", "s3cret"),
            ("K8S_NODE_NAME", "node-7"),
        ],
    );
    let reqs = sink.wait_for("a push", |r| !r.is_empty());
    let (ok, _, log) = run.stop();
    assert!(ok, "{log}");
    let (q, _) = &reqs[0];
    assert_eq!(q.path, "/loki/api/v1/push");
    assert_eq!(q.header("x-scope-orgid"), Some("tenant-a"));
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode("loki-user:s3cret");
    assert_eq!(
        q.header("authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    let v: serde_json::Value = serde_json::from_str(&q.text()).unwrap();
    let stream = &v["streams"][0];
    assert_eq!(
        stream["stream"],
        serde_json::json!({"node": "node-7", "receiver": "k8s_event", "cluster": "tenant-a"})
    );
    assert_eq!(stream["values"][0][0], "1714557605000000000");
    let line: serde_json::Value =
        serde_json::from_str(stream["values"][0][1].as_str().unwrap()).unwrap();
    assert_eq!(line["message"], "Back-off restarting failed container");
    assert_eq!(line["severity"], "WARN");
    assert_eq!(line["k8s.object.name"], "web-1");
    assert_eq!(line["k8s.event.reason"], "BackOff");
}

/// Replaces a file as kubelet rotates a projected token: a new file renamed over the old one.
fn rotate(path: &Path, token: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, token).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn rotated_bearer_token_file_is_used_by_the_next_request() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "token-a\n").unwrap();
    let api = FakeApi::start();
    api.faults(|f| f.token = Some("token-a".into()));
    api.put(
        "events",
        event("default", "web-1.a", "Pulled", "pulled", "Normal"),
    );
    let conf = format!(
        "<source>\n  @type kubernetes_events\n  kubernetes_url {}/api\n  bearer_token_file {}\n  watch_timeout 20s\n</source>\n\
         <match kubernetes.events>\n  @type stdout\n</match>\n",
        api.url(),
        token.display()
    );
    let run = Running::start(dir.path(), &conf, &[]);
    run.wait_lines(1);
    api.wait_requests("a watch", |r| r.iter().any(|r| r.is_watch()));
    let bearer = |r: &k8s_support::Request| r.authorization.clone().unwrap_or_default();
    assert!(api.requests().iter().all(|r| bearer(r) == "Bearer token-a"));

    // Rotated, and the old token refused from now on: the next watch carries the new one, so
    // the server refuses nothing.
    let before = api.requests().len();
    rotate(&token, "token-b\n");
    api.faults(|f| f.token = Some("token-b".into()));
    api.drop_watches();
    api.put(
        "events",
        event("default", "web-1.b", "Started", "started", "Normal"),
    );
    run.wait_lines(2);
    let after: Vec<String> = api.requests()[before..].iter().map(bearer).collect();
    assert!(!after.is_empty());
    assert!(after.iter().all(|b| b == "Bearer token-b"), "{after:?}");

    // The server moves on before the file does: 401s until the file is rotated, then the
    // watch recovers by itself, with one warning.
    let before = api.requests().len();
    api.faults(|f| f.token = Some("token-c".into()));
    api.drop_watches();
    api.wait_requests("a refused watch", |r| {
        r[before..].iter().any(|r| bearer(r) == "Bearer token-b")
    });
    rotate(&token, "token-c");
    api.put(
        "events",
        event("default", "web-1.c", "Killing", "killing", "Normal"),
    );
    run.wait_lines(3);
    let (ok, lines, log) = run.stop();
    assert!(ok, "{log}");
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let after: Vec<String> = api.requests()[before..].iter().map(bearer).collect();
    let refused = after.iter().filter(|b| *b == "Bearer token-b").count();
    assert!((1..=3).contains(&refused), "{after:?}");
    assert!(
        after.last().is_some_and(|b| b == "Bearer token-c"),
        "{after:?}"
    );
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("[warn]: kubernetes"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("401"), "{log}");
    assert!(log.contains("recovered"), "{log}");
}

#[test]
fn events_k8s_io_v1_in_every_shape_and_through_kubernetes_objects() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start();
    let res = "events.k8s.io/v1/events";
    api.put(
        res,
        k8s_support::event_v1("default", "web-1.a", "Pulling", "Pulling image", "Normal"),
    );
    let url = api.url();
    let conf = format!(
        "<source>\n  @type kubernetes_events\n  kubernetes_url {url}\n  api_group events.k8s.io\n  tag ev.bare\n</source>\n\
         <source>\n  @type kubernetes_events\n  kubernetes_url {url}\n  api_group events.k8s.io\n  namespaces default\n  record_shape otel\n  tag ev.otel\n</source>\n\
         <source>\n  @type kubernetes_objects\n  kubernetes_url {url}/apis\n  api_version events.k8s.io/v1\n  <watch>\n    resource_name events\n  </watch>\n</source>\n\
         <match ev.** kubernetes.**>\n  @type stdout\n</match>\n"
    );
    let run = Running::start(dir.path(), &conf, &[]);
    run.wait_lines(3);
    api.wait_requests("three watches", |_| api.count("events", true) >= 3);
    api.put(
        res,
        k8s_support::event_v1("default", "web-1.b", "BackOff", "Back-off", "Warning"),
    );
    let lines = run.wait_lines(6);
    let (ok, _, log) = run.stop();
    assert!(ok, "{log}");
    let mut by_tag: std::collections::BTreeMap<String, Vec<(String, serde_json::Value)>> =
        Default::default();
    for l in &lines {
        let (time, tag, v) = parse_line(l);
        by_tag.entry(tag).or_default().push((time, v));
    }
    // Fluent Bit's shape: the core/v1 form of the object, timed by eventTime.
    let bare = &by_tag["ev.bare"];
    assert_eq!(bare.len(), 2);
    assert_eq!(bare[0].0, "2024-05-01 10:00:00.250000000 +0000");
    let b = &bare[0].1;
    let keys: Vec<&str> = b.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "kind",
            "apiVersion",
            "metadata",
            "involvedObject",
            "reason",
            "message",
            "source",
            "firstTimestamp",
            "lastTimestamp",
            "count",
            "type",
            "eventTime",
            "series",
            "action",
            "reportingComponent",
            "reportingInstance"
        ]
    );
    assert_eq!(b["apiVersion"], "v1");
    assert_eq!(b["message"], "Pulling image");
    assert_eq!(b["involvedObject"]["name"], "web-1");
    assert_eq!(b["reportingComponent"], "kubelet");
    assert_eq!(b["count"], 3);
    assert_eq!(b["series"]["count"], 3);
    assert_eq!(b["lastTimestamp"], "2024-05-01T10:00:07Z");
    assert_eq!(bare[1].1["metadata"]["name"], "web-1.b");
    // The OpenTelemetry receiver's shape from the same fields.
    let otel = &by_tag["ev.otel"];
    assert_eq!(otel.len(), 2);
    let o = &otel[1].1;
    assert_eq!(o["message"], "Back-off");
    assert_eq!(o["severity"], "WARN");
    assert_eq!(o["severity_text"], "Warning");
    assert_eq!(o["k8s.node.name"], "node-1");
    assert_eq!(o["k8s.object.kind"], "Pod");
    assert_eq!(o["k8s.object.name"], "web-1");
    assert_eq!(o["k8s.event.reason"], "BackOff");
    assert_eq!(o["k8s.event.action"], "Pulling");
    assert_eq!(o["k8s.event.name"], "web-1.b");
    assert_eq!(o["k8s.namespace.name"], "default");
    assert_eq!(o["k8s.event.count"], 3);
    // kubernetes_objects: the watch envelope around the object as served.
    let objs = &by_tag["kubernetes.events"];
    assert_eq!(objs.len(), 2);
    assert_eq!(objs[0].1["type"], "ADDED");
    let obj = &objs[0].1["object"];
    assert_eq!(obj["apiVersion"], "events.k8s.io/v1");
    assert_eq!(obj["note"], "Pulling image");
    assert_eq!(obj["regarding"]["name"], "web-1");
    // Every request went to the events.k8s.io group, namespaced where asked.
    let reqs = api.requests();
    assert!(
        reqs.iter()
            .all(|r| r.path.starts_with("/apis/events.k8s.io/v1/")),
        "{reqs:?}"
    );
    assert!(reqs
        .iter()
        .any(|r| r.path == "/apis/events.k8s.io/v1/namespaces/default/events"));
}
