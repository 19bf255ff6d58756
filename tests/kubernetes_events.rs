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

const WAIT: Duration = Duration::from_secs(20);

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

    let seen = w.stop();
    // web-1.c was deleted; the rest are remembered with their last resourceVersion.
    assert_eq!(seen.len(), 6);
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
    api.faults(|f| f.token = Some(k8s_support::TOKEN.into()));
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
