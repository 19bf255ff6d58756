//! The `kubernetes_metadata` filter against the fake API server of tests/k8s_support, through
//! the real kube client: a pod lookup via a kubeconfig and via in-cluster style settings (HTTPS,
//! generated CA, service-account folder), a watch update, a pod deleted mid-watch, an API server
//! answering HTML, and a slow one. Every event passes through, never dropped or held. And the
//! DaemonSet pipeline of conf.d (`multi_format` CRI/Docker lines → concat →
//! `kubernetes_metadata` → Elasticsearch), run by the release binary against the fake API
//! server and a fake Elasticsearch.

mod forward_common;
mod k8s_support;
mod sink_common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrentd::event::{EventStream, EventTime, Record, Value};
use ferrentd::plugins::filter_kubernetes_metadata::{
    Fetch, KubernetesMetadata, KubernetesMetadataConf, MetadataSource, Namespace, Pod,
};
use ferrentd::plugins::{Filter, PluginContext};
use k8s_support::{namespace, pod, FakeApi};
use serde_json::json;

// The allocator of the ferrentd binary, so the benchmark measures what runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TIME: EventTime = EventTime::new(1_750_000_000, 0);

/// The first container's id as the fake server reports it (without `containerd://`).
fn cid(k: usize) -> String {
    format!("{:064x}", 0xc0ffee + k)
}

fn tag(pod: &str, ns: &str, container: &str, id: &str) -> String {
    format!("kubernetes.var.log.containers.{pod}_{ns}_{container}-{id}.log")
}

fn make(params: &str) -> KubernetesMetadata {
    let root = ferrentd::config_parser::parse_str(
        &format!("<filter **>\n@type kubernetes_metadata\nstats_interval 0\n{params}\n</filter>\n"),
        Path::new("fluent.conf"),
        &Default::default(),
    )
    .unwrap();
    KubernetesMetadata::configure(&root.elements[0], &PluginContext::for_tests())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn run(f: &KubernetesMetadata, tag: &str) -> serde_json::Value {
    let mut rec = Record::new();
    rec.insert("log", Value::str("hello"));
    let out = f.filter_stream(tag, EventStream::one(TIME, rec));
    assert_eq!(out.len(), 1, "the event passes");
    let json = ferrentd::forward::codec::to_json(&Value::Map(out.events[0].record.clone()));
    serde_json::from_slice(&json).unwrap()
}

/// Polls `f` until it holds (bounded), for what a watch delivers asynchronously.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn seed(api: &FakeApi) -> serde_json::Value {
    api.put("namespaces", namespace("shop", json!({"team": "payments"})));
    api.put(
        "pods",
        pod(
            "shop",
            "cart-7d9f",
            "node-1",
            json!({"app.kubernetes.io/name": "cart"}),
            &[("cart", "registry.local/cart:1.2")],
        ),
    )
}

fn expected(pod: &serde_json::Value, master_url: &str) -> serde_json::Value {
    json!({
        "log": "hello",
        "docker": {"container_id": cid(0)},
        "kubernetes": {
            "container_name": "cart",
            "namespace_name": "shop",
            "pod_name": "cart-7d9f",
            "container_image": "registry.local/cart:1.2",
            "container_image_id": format!("docker-pullable://registry.local/cart:1.2@sha256:{:064x}", 1),
            "pod_id": pod["metadata"]["uid"],
            "pod_ip": "10.244.0.10",
            "host": "node-1",
            "labels": {"app.kubernetes.io/name": "cart"},
            "master_url": master_url,
            "namespace_id": "00000000-0000-4000-8000-000000000001",
            "namespace_labels": {"team": "payments"}
        }
    })
}

#[test]
fn pod_lookup_through_a_kubeconfig_field_by_field() {
    let api = FakeApi::start();
    let p = seed(&api);
    let dir = tempfile::tempdir().unwrap();
    let kc = api.write_kubeconfig(dir.path());
    let f = make(&format!("kubeconfig {}\nwatch false", kc.display()));
    let got = run(&f, &tag("cart-7d9f", "shop", "cart", &cid(0)));
    let want = expected(&p, &format!("{}/api", api.url()));
    assert_eq!(got, want);
    // Key order is the plugin's.
    let keys: Vec<&str> = got["kubernetes"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "container_name",
            "namespace_name",
            "pod_name",
            "container_image",
            "container_image_id",
            "pod_id",
            "pod_ip",
            "host",
            "labels",
            "master_url",
            "namespace_id",
            "namespace_labels"
        ]
    );
    // One GET each, with resourceVersion=0; the second stream is served from the cache.
    let gets = |api: &FakeApi| {
        api.requests()
            .iter()
            .filter(|r| !r.is_watch() && r.path.ends_with("/cart-7d9f"))
            .count()
    };
    assert_eq!(gets(&api), 1);
    assert!(api
        .requests()
        .iter()
        .all(|r| r.param("resourceVersion") == Some("0")));
    assert_eq!(run(&f, &tag("cart-7d9f", "shop", "cart", &cid(0))), want);
    assert_eq!(gets(&api), 1);
}

#[test]
fn pod_lookup_with_in_cluster_settings_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start_tls(&dir.path().join("sa"));
    let p = seed(&api);
    let sa = api.secret_dir.clone().unwrap();
    let url = format!("{}/api", api.url());
    let f = make(&format!(
        "kubernetes_url {url}\nsecret_dir {}\nwatch false",
        sa.display()
    ));
    let got = run(&f, &tag("cart-7d9f", "shop", "cart", &cid(0)));
    assert_eq!(got, expected(&p, &url));
}

/// K8S_NODE_NAME is process-wide, so everything that needs the pod watch is in this test.
#[test]
fn watches_refresh_the_cache_and_a_deleted_pod_keeps_its_metadata() {
    let api = FakeApi::start();
    let p = seed(&api);
    api.put(
        "pods",
        pod(
            "shop",
            "other-node-pod",
            "node-2",
            json!({}),
            &[("x", "x:1")],
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let kc = api.write_kubeconfig(dir.path());
    std::env::set_var("K8S_NODE_NAME", "node-1");
    let f = make(&format!("kubeconfig {}\nwatch true", kc.display()));
    f.start();
    // The pod watch is scoped to this node.
    let reqs = api.wait_requests("the pod and namespace watches", |r| {
        r.iter().any(|r| r.path.ends_with("/pods") && r.is_watch())
            && r.iter()
                .any(|r| r.path.ends_with("/namespaces") && r.is_watch())
    });
    assert!(reqs
        .iter()
        .filter(|r| r.path.ends_with("/pods"))
        .all(|r| r.param("fieldSelector") == Some("spec.nodeName=node-1")));

    let t = tag("cart-7d9f", "shop", "cart", &cid(0));
    let first = run(&f, &t);
    assert_eq!(
        first["kubernetes"]["labels"],
        json!({"app.kubernetes.io/name": "cart"})
    );

    // A label change arrives through the watch; no new GET is needed.
    let gets_before = api.requests().iter().filter(|r| !r.is_watch()).count();
    let mut changed = p.clone();
    changed["metadata"]["labels"] = json!({"app.kubernetes.io/name": "cart", "version": "2"});
    api.put("pods", changed);
    eventually("the watch to deliver the new label", || {
        run(&f, &t)["kubernetes"]["labels"]["version"] == json!("2")
    });
    // The stored uid is kept when an object is put again.
    api.put("namespaces", namespace("shop", json!({"team": "checkout"})));
    eventually("the watch to deliver the namespace label", || {
        run(&f, &t)["kubernetes"]["namespace_labels"]["team"] == json!("checkout")
    });
    assert_eq!(
        api.requests().iter().filter(|r| !r.is_watch()).count(),
        gets_before,
        "watch updates need no GET"
    );

    // Deleted mid-watch: the late lines of the pod keep its metadata.
    api.delete("pods", "shop", "cart-7d9f");
    eventually("the watch to see the delete", || {
        f.state().lock().stat("pod_cache_watch_delete_ignored") >= 1
    });
    let late = run(&f, &t);
    assert_eq!(late["kubernetes"]["pod_name"], json!("cart-7d9f"));
    assert_eq!(late["kubernetes"]["pod_id"], p["metadata"]["uid"]);
    assert_eq!(late["log"], json!("hello"));

    // A malformed watch line and a dropped watch are survived: a pod created afterwards is
    // found, and its later changes still arrive through the (resumed) watch.
    api.garbage();
    api.drop_watches();
    let new_id = format!("{:064x}", 0xbeef);
    let mut again = p.clone();
    again["metadata"]["name"] = json!("cart-new");
    again["metadata"].as_object_mut().unwrap().remove("uid");
    again["status"]["containerStatuses"][0]["containerID"] =
        json!(format!("containerd://{new_id}"));
    let newer = api.put("pods", again);
    let other = tag("cart-new", "shop", "cart", &new_id);
    assert_eq!(
        run(&f, &other)["kubernetes"]["pod_id"],
        newer["metadata"]["uid"]
    );
    assert_eq!(run(&f, &other)["docker"]["container_id"], json!(new_id));
    let mut relabelled = newer.clone();
    relabelled["metadata"]["labels"] = json!({"version": "3"});
    api.put("pods", relabelled);
    eventually("the resumed watch to deliver a change", || {
        run(&f, &other)["kubernetes"]["labels"] == json!({"version": "3"})
    });
    f.shutdown();
    std::env::remove_var("K8S_NODE_NAME");
}

/// Captures warnings logged on this thread.
fn capture_warnings<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    use tracing_subscriber::layer::SubscriberExt;
    struct Collect(Arc<Mutex<Vec<String>>>);
    struct Visit(String);
    impl tracing::field::Visit for Visit {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                self.0 = format!("{value:?}");
            }
        }
    }
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Collect {
        fn on_event(&self, e: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            if *e.metadata().level() <= tracing::Level::WARN {
                let mut v = Visit(String::new());
                e.record(&mut v);
                self.0.lock().unwrap().push(v.0);
            }
        }
    }
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sub = tracing_subscriber::registry().with(Collect(lines.clone()));
    let r = tracing::subscriber::with_default(sub, f);
    let out = lines.lock().unwrap().clone();
    (r, out)
}

#[test]
fn an_api_server_answering_html_gives_a_warning_and_the_event_passes() {
    let api = FakeApi::start();
    seed(&api);
    let f = make(&format!("kubernetes_url {}\nwatch false", api.url()));
    api.faults(|x| x.html = 2);
    let t = tag("cart-7d9f", "shop", "cart", &cid(0));
    let (got, warnings) = capture_warnings(|| run(&f, &t));
    assert_eq!(
        got,
        json!({
            "log": "hello",
            "docker": {"container_id": cid(0)},
            "kubernetes": {
                "container_name": "cart", "namespace_name": ".orphaned", "pod_name": "cart-7d9f",
                "orphaned_namespace": "shop", "namespace_id": "orphaned"
            }
        })
    );
    assert!(
        warnings.iter().any(|w| w.starts_with("Exception '")
            && w.contains("encountered fetching pod metadata from Kubernetes API v1 endpoint")),
        "{warnings:?}"
    );
}

#[test]
fn a_slow_api_server_does_not_hold_events() {
    let api = FakeApi::start();
    seed(&api);
    let f = make(&format!(
        "kubernetes_url {}\nwatch false\nread_timeout 1",
        api.url()
    ));
    api.faults(|x| x.slow = Some(Duration::from_secs(5)));
    let got = run(&f, &tag("cart-7d9f", "shop", "cart", &cid(0)));
    assert_eq!(got["log"], json!("hello"));
    assert_eq!(got["kubernetes"]["orphaned_namespace"], json!("shop"));
    api.faults(|x| x.slow = None);
}

#[test]
fn the_daemonset_pipeline_adds_pod_metadata_on_the_way_to_elasticsearch() {
    use sink_common::Answer;
    let api = FakeApi::start();
    api.put("namespaces", namespace("shop", json!({"team": "payments"})));
    let mut cart = pod(
        "shop",
        "cart-7d9f",
        "node-1",
        json!({"app": "cart"}),
        &[("cart", "registry.local/cart:1.2")],
    );
    cart["metadata"]["annotations"] = json!({"logging.example/parser": "none", "other": "x"});
    api.put("pods", cart);
    let mut db = pod(
        "shop",
        "db-0",
        "node-1",
        json!({"app": "db"}),
        &[("postgres", "postgres:16")],
    );
    db["status"]["containerStatuses"][0]["containerID"] =
        json!(format!("containerd://{:064x}", 0xdb0));
    api.put("pods", db);

    let sink = sink_common::FakeSink::start(Box::new(|r, _| {
        if r.method == "GET" {
            return Answer::Status(200, sink_common::ES_INFO.into());
        }
        Answer::Status(200, sink_common::bulk_answer(&r.text(), |_, _| 201))
    }));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("samples/var/log/containers");
    std::fs::create_dir_all(&logs).unwrap();
    for e in std::fs::read_dir(root.join("conf.d/samples/var/log/containers")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), logs.join(e.file_name())).unwrap();
    }
    let conf = "k8s-daemonset-elasticsearch.conf";
    std::fs::copy(root.join("conf.d").join(conf), dir.path().join(conf)).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ferrentd"))
        .args(["-c", conf])
        .current_dir(dir.path())
        .env("FLUENT_FILTER_KUBERNETES_URL", format!("{}/api", api.url()))
        .env("ES_URL", format!("http://127.0.0.1:{}", sink.port))
        .env("K8S_NODE_NAME", "node-1")
        .env("TZ", "UTC")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let reqs = sink.wait_for(conf, |r| {
        r.iter()
            .filter(|(q, _)| q.method == "POST")
            .map(|(q, _)| sink_common::bulk_docs(&q.text()).len())
            .sum::<usize>()
            >= 3
    });
    // SAFETY: kill(2) on the PID of the child this test started and has not reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let output = {
        let start = Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                break child.wait_with_output().unwrap();
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                break child.wait_with_output().unwrap();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let mut docs: Vec<serde_json::Value> = reqs
        .iter()
        .filter(|(q, _)| q.method == "POST")
        .flat_map(|(q, _)| sink_common::bulk_docs(&q.text()))
        .collect();
    docs.sort_by_key(|d| d["@timestamp"].as_str().unwrap_or("").to_string());
    let k = |d: &serde_json::Value| d["kubernetes"].clone();
    assert_eq!(docs.len(), 3, "{docs:?}");
    // CRI lines of cart (the partial ones joined) around the Docker json-file line of db-0.
    assert_eq!(docs[0]["message"], json!("GET /cart 200 12ms"));
    assert_eq!(
        docs[1]["log"],
        json!("checkpoint complete: wrote 42 buffers\n")
    );
    assert_eq!(
        docs[1]["docker"],
        json!({"container_id": format!("{:064x}", 0xdb0)})
    );
    assert_eq!(k(&docs[1])["pod_name"], json!("db-0"));
    assert_eq!(k(&docs[1])["container_image"], json!("postgres:16"));
    assert_eq!(k(&docs[1])["labels"], json!({"app": "db"}));
    assert_eq!(
        docs[2]["message"],
        json!("payment gateway timeout after 5s")
    );
    assert_eq!(
        k(&docs[2]),
        json!({
            "container_name": "cart",
            "namespace_name": "shop",
            "pod_name": "cart-7d9f",
            "container_image": "registry.local/cart:1.2",
            "container_image_id": format!("docker-pullable://registry.local/cart:1.2@sha256:{:064x}", 1),
            "pod_id": k(&docs[2])["pod_id"].clone(),
            "pod_ip": "10.244.0.10",
            "host": "node-1",
            "labels": {"app": "cart"},
            "annotations": {"logging.example/parser": "none"},
            "namespace_id": "00000000-0000-4000-8000-000000000001",
            "namespace_labels": {"team": "payments"}
        })
    );
    assert!(k(&docs[2])["pod_id"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    assert_eq!(docs[2]["docker"], json!({"container_id": cid(0)}));
}

/// `VmHWM` / `VmRSS` of a process, in KiB.
fn proc_status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// The release binary with in_forward → (kubernetes_metadata) → null, for the memory and
/// API-load benchmark. Ended by its PID.
struct BenchChild {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl BenchChild {
    fn start(filter: &str, node: Option<&str>) -> BenchChild {
        let port = forward_common::free_port();
        let dir = tempfile::tempdir().unwrap();
        let conf = format!(
            "<system>\n  log_level warn\n</system>\n\
             <label @FLUENT_LOG>\n  <match **>\n    @type null\n  </match>\n</label>\n\
             <source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n\
             {filter}\n<match kubernetes.**>\n  @type null\n</match>\n"
        );
        std::fs::write(dir.path().join("fluent.conf"), conf).unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ferrentd"));
        cmd.args(["-c", "fluent.conf"])
            .current_dir(dir.path())
            .env_remove("K8S_NODE_NAME")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap());
        if let Some(n) = node {
            cmd.env("K8S_NODE_NAME", n);
        }
        let child = cmd.spawn().unwrap();
        forward_common::wait_port(port);
        BenchChild {
            child,
            port,
            _dir: dir,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(mut self) {
        // SAFETY: kill(2) on the PID of the child this test started and has not reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        while self.child.try_wait().ok().flatten().is_none() {
            if start.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A forward connection that sends one event per message and waits for its ack, so an
/// answered message has been through the filter.
struct AckSender {
    s: std::net::TcpStream,
    buf: Vec<u8>,
    sent: u64,
}

impl AckSender {
    fn connect(port: u16) -> AckSender {
        let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        s.set_nodelay(true).unwrap();
        AckSender {
            s,
            buf: Vec::new(),
            sent: 0,
        }
    }

    fn send(&mut self, tag: &str) {
        use std::io::{Read, Write};
        self.sent += 1;
        let id = format!("c{}", self.sent);
        let line = "GET /index.html HTTP/1.1 200 1234 0.002";
        let msg = forward_common::forward_message(tag, &[(TIME.sec, 0, line)], Some(&id));
        self.s.write_all(&msg).unwrap();
        let mut b = [0u8; 256];
        loop {
            if let Ok(v) = ferrentd::forward::codec::decode_value(&self.buf) {
                self.buf.clear();
                let ack = v.as_map().and_then(|m| m.get("ack")).cloned();
                assert_eq!(ack, Some(Value::str(id.as_str())), "the ack");
                return;
            }
            let n = self.s.read(&mut b).unwrap();
            assert!(n > 0, "ferrentd closed the connection");
            self.buf.extend_from_slice(&b[..n]);
        }
    }
}

/// The API requests received from index `from` on: (pod GETs, namespace GETs, lists,
/// watches).
fn request_mix(api: &FakeApi, from: usize) -> (usize, usize, usize, usize) {
    let reqs = api.requests();
    let (mut pods, mut nss, mut lists, mut watches) = (0, 0, 0, 0);
    for r in reqs.iter().skip(from) {
        let segs = r.path.trim_start_matches("/api/v1/").split('/').count();
        if r.is_watch() {
            watches += 1;
        } else if r.path.contains("/pods/") {
            pods += 1;
        } else if r.path.starts_with("/api/v1/namespaces/") && segs == 2 {
            nss += 1;
        } else {
            lists += 1;
        }
    }
    (pods, nss, lists, watches)
}

/// Figures, not a timed assertion: `cargo test --release --test kubernetes_metadata --
/// --ignored --nocapture bench_ten_thousand_pods`. 10,000 pods across 100 namespaces (100
/// nodes of 100 pods) in the fake API server of this process; ferrentd (the release binary)
/// runs as a child with in_forward → kubernetes_metadata → null, so its peak RSS (`VmHWM`)
/// is the pipeline's alone, and the same pipeline without the filter gives the baseline.
/// Warm-up: one event for each of the 10,000 pods (each message acknowledged after the
/// filter). Steady state: events keep coming for all 10,000 pods, round-robin, for
/// `KBENCH_STEADY_SECS` (default 20) seconds; requests are scaled to a minute.
#[test]
#[ignore]
fn bench_ten_thousand_pods() {
    let steady_secs: u64 = std::env::var("KBENCH_STEADY_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let api = FakeApi::start();
    for n in 0..100 {
        api.put(
            "namespaces",
            namespace(
                &format!("ns-{n}"),
                json!({"team": format!("team-{}", n % 7)}),
            ),
        );
    }
    let id = |i: usize| format!("{:064x}", 0x1_0000_0000u64 + i as u64);
    for i in 0..10_000 {
        let mut p = pod(
            &format!("ns-{}", i % 100),
            &format!("app-{}-{:05}", i % 37, i),
            &format!("node-{}", (i / 100) % 100),
            json!({"app": format!("app-{}", i % 37), "app.kubernetes.io/part-of": "bench",
                   "pod-template-hash": format!("{:08x}", i)}),
            &[("main", "registry.local/app:1.0")],
        );
        p["status"]["containerStatuses"][0]["containerID"] =
            json!(format!("containerd://{}", id(i)));
        api.put("pods", p);
    }
    let tags: Vec<String> = (0..10_000)
        .map(|i| {
            format!(
                "kubernetes.var.log.containers.app-{}-{:05}_ns-{}_main-{}.log",
                i % 37,
                i,
                i % 100,
                id(i)
            )
        })
        .collect();
    let url = api.url();
    let filter = |watch: bool, size: usize| {
        format!(
            "<filter kubernetes.**>\n  @type kubernetes_metadata\n  kubernetes_url {url}/api\n  \
             watch {watch}\n  cache_size {size}\n  stats_interval 0\n</filter>"
        )
    };
    let runs: Vec<(String, String)> = vec![
        ("no filter (baseline)".into(), String::new()),
        ("watch false, cache_size 1000".into(), filter(false, 1000)),
        ("watch true, cache_size 1000".into(), filter(true, 1000)),
        (
            "watch false, cache_size 10000".into(),
            filter(false, 10_000),
        ),
        ("watch true, cache_size 10000".into(), filter(true, 10_000)),
    ];
    let mut report = vec![format!(
        "10,000 pods / 100 namespaces / 100 nodes; ferrentd as a child process \
         (K8S_NODE_NAME=node-0 with watch true); steady state {steady_secs} s, scaled to a minute"
    )];
    for (name, conf) in runs {
        // The warm-up counts the start-up lists and watches too.
        let first = api.requests().len();
        let child = BenchChild::start(&conf, Some("node-0"));
        let pid = child.pid();
        let mut tx = AckSender::connect(child.port);
        let rss_start = proc_status_kib(pid, "VmRSS:");
        let start = Instant::now();
        for t in &tags {
            tx.send(t);
        }
        let warm = start.elapsed();
        let (wp, wn, wl, ww) = request_mix(&api, first);
        let hwm_warm = proc_status_kib(pid, "VmHWM:");
        let mid = api.requests().len();
        let start = Instant::now();
        let mut events = 0usize;
        while start.elapsed() < Duration::from_secs(steady_secs) {
            tx.send(&tags[events % tags.len()]);
            events += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        let (sp, sn, sl, sw) = request_mix(&api, mid);
        let per_min = |n: usize| n as f64 * 60.0 / secs;
        let hwm = proc_status_kib(pid, "VmHWM:");
        let rss_end = proc_status_kib(pid, "VmRSS:");
        drop(tx);
        child.stop();
        report.push(format!(
            "{name}:\n  RSS at start {rss_start} KiB; peak (VmHWM) {hwm_warm} KiB after warm-up, \
             {hwm} KiB at the end; RSS at the end {rss_end} KiB\n  warm-up (10,000 pods, one \
             event each): {:.1} s, {wp} pod GETs, {wn} namespace GETs, {wl} lists, {ww} watches\n  \
             steady state: {events} events ({:.0}/s, {:.3} GETs per event), {sp} pod GETs, {sn} namespace GETs, {sl} \
             lists, {sw} watches = {:.0} pod GETs + {:.0} namespace GETs per minute",
            warm.as_secs_f64(),
            events as f64 / secs,
            (sp + sn) as f64 / events.max(1) as f64,
            per_min(sp),
            per_min(sn),
        ));
    }
    println!("{}", report.join("\n"));
}

/// Pods and namespaces from memory (the fake server's JSON), for a measurement without
/// sockets or other threads.
struct MemorySource {
    pods: std::collections::HashMap<String, serde_json::Value>,
    namespaces: std::collections::HashMap<String, serde_json::Value>,
}

impl MetadataSource for MemorySource {
    fn pod(&self, ns: &str, name: &str) -> Fetch<Pod> {
        match self.pods.get(&format!("{ns}/{name}")) {
            Some(p) => match serde_json::from_value(p.clone()) {
                Ok(p) => Fetch::Found(p),
                Err(e) => Fetch::Failed(e.to_string()),
            },
            None => Fetch::NotFound,
        }
    }
    fn namespace(&self, name: &str) -> Fetch<Namespace> {
        match self.namespaces.get(name) {
            Some(n) => match serde_json::from_value(n.clone()) {
                Ok(n) => Fetch::Found(n),
                Err(e) => Fetch::Failed(e.to_string()),
            },
            None => Fetch::NotFound,
        }
    }
}

/// Per-event cost on a warm cache, with pods served from memory (no sockets, no watch
/// threads), so it can also run under `valgrind --tool=callgrind`: `KBENCH_STREAMS=N` streams
/// of one event each, then N/100 streams of 100 (`KBENCH_BATCH` picks one). Figures, not assertions:
/// `cargo test --release --test kubernetes_metadata -- --ignored --nocapture bench_warm`.
#[test]
#[ignore]
fn bench_warm_cache_per_event() {
    let n: usize = std::env::var("KBENCH_STREAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let mut src = MemorySource {
        pods: Default::default(),
        namespaces: Default::default(),
    };
    let mut ns = namespace("shop", json!({"team": "payments"}));
    ns["metadata"]["uid"] = json!("00000000-0000-4000-8000-000000000001");
    src.namespaces.insert("shop".into(), ns);
    let mut p = pod(
        "shop",
        "cart-7d9f",
        "node-1",
        json!({"app.kubernetes.io/name": "cart", "pod-template-hash": "7d9f"}),
        &[("cart", "registry.local/cart:1.2")],
    );
    p["metadata"]["uid"] = json!("00000000-0000-4000-8000-000000000002");
    src.pods.insert("shop/cart-7d9f".into(), p);
    let conf: KubernetesMetadataConf =
        serde_json::from_value(json!({"stats_interval": 0})).unwrap_or_else(|e| panic!("{e}"));
    let f = KubernetesMetadata::from_conf(conf, Some("https://10.96.0.1:443/api".into()))
        .unwrap_or_else(|e| panic!("{e}"))
        .with_source(Arc::new(src));
    let t = tag("cart-7d9f", "shop", "cart", &cid(0));
    let record = || {
        let mut r = Record::new();
        r.insert("log", Value::str("GET /index.html 200 1234 0.002\n"));
        r.insert("stream", Value::str("stdout"));
        r
    };
    // Warm: the one lookup, and a check that the metadata is all there.
    let out = f.filter_stream(&t, EventStream::one(TIME, record()));
    let k = out.events[0]
        .record
        .get("kubernetes")
        .and_then(Value::as_map);
    assert_eq!(k.map(|k| k.len()), Some(12), "{:?}", out.events[0].record);
    // `KBENCH_BATCH=1` or `100`: one of the two (for a profile of one shape).
    let batches: Vec<usize> = match std::env::var("KBENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(b) => vec![b],
        None => vec![1, 100],
    };
    let mut lines = Vec::new();
    for batch in batches {
        let make = || -> Vec<EventStream> {
            (0..n / batch)
                .map(|_| {
                    let mut es = EventStream::with_capacity(batch);
                    for _ in 0..batch {
                        es.push(TIME, record());
                    }
                    es
                })
                .collect()
        };
        // The same streams only dropped: what a filter that adds nothing costs here.
        let streams = make();
        let start = Instant::now();
        for es in streams {
            std::hint::black_box(es);
        }
        let base = start.elapsed().as_nanos() as f64 / n as f64;
        let streams = make();
        let start = Instant::now();
        for es in streams {
            std::hint::black_box(f.filter_stream(&t, es));
        }
        let with = start.elapsed().as_nanos() as f64 / n as f64;
        lines.push(format!(
            "streams of {batch}: {with:.0} ns per event filtered and dropped, {base:.0} ns \
             dropped unfiltered: the filter adds {:.0} ns",
            with - base
        ));
    }
    println!("warm cache, {n} events:\n{}", lines.join("\n"));
}
