//! The `kubernetes_metadata` filter against the fake API server of tests/k8s_support, through
//! the real kube client: a pod lookup via a kubeconfig and via in-cluster style settings (HTTPS,
//! generated CA, service-account folder), a watch update, a pod deleted mid-watch, an API server
//! answering HTML, and a slow one. Every event passes through, never dropped or held. And the
//! DaemonSet pipeline of conf.d (`multi_format` CRI/Docker lines → concat →
//! `kubernetes_metadata` → Elasticsearch), run by the release binary against the fake API
//! server and a fake Elasticsearch.

mod k8s_support;
mod sink_common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrentd::event::{EventStream, EventTime, Record, Value};
use ferrentd::plugins::filter_kubernetes_metadata::KubernetesMetadata;
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
    api.faults(|f| f.token = Some(k8s_support::TOKEN.into()));
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

fn proc_status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Figures, not a timed assertion: `cargo test --release --test kubernetes_metadata -- --ignored
/// --nocapture bench`. 10,000 pods across 100 namespaces (100 nodes of 100 pods); the filter
/// on node-0 with the default cache_size 1000. The cold pass looks up 2,000 pods of all nodes
/// (twice the cache size; the fake server answers a GET in tens of ms, so all 10,000 would
/// take minutes).
#[test]
#[ignore]
fn bench_ten_thousand_pods() {
    let api = FakeApi::start();
    for n in 0..100 {
        api.put(
            "namespaces",
            namespace(&format!("ns-{n}"), json!({"team": "t"})),
        );
    }
    let id = |i: usize| format!("{:064x}", 0x1_0000_0000u64 + i as u64);
    for i in 0..10_000 {
        let mut p = pod(
            &format!("ns-{}", i % 100),
            &format!("pod-{i}"),
            &format!("node-{}", i % 100),
            json!({"app": format!("app-{}", i % 37), "app.kubernetes.io/part-of": "bench"}),
            &[("main", "registry.local/app:1.0")],
        );
        p["status"]["containerStatuses"][0]["containerID"] =
            json!(format!("containerd://{}", id(i)));
        api.put("pods", p);
    }
    let tag_of = |i: usize| {
        format!(
            "kubernetes.var.log.containers.pod-{i}_ns-{}_main-{}.log",
            i % 100,
            id(i)
        )
    };
    let record = || {
        let mut r = Record::new();
        r.insert("log", Value::str("GET /index.html 200 1234 0.002\n"));
        r.insert("stream", Value::str("stdout"));
        r
    };
    let requests = |api: &FakeApi| api.requests().iter().filter(|r| !r.is_watch()).count();

    let rss0 = proc_status_kib("VmRSS:");
    std::env::set_var("K8S_NODE_NAME", "node-0");
    let f = make(&format!("kubernetes_url {}\nwatch true", api.url()));
    f.start();
    api.wait_requests("the watches", |r| {
        r.iter().filter(|r| r.is_watch()).count() >= 2
    });
    // Pods of every node log once (a cold cache, twice cache_size).
    let start = Instant::now();
    for i in (0..10_000).step_by(5) {
        f.filter_stream(&tag_of(i), EventStream::one(TIME, record()));
    }
    let cold = start.elapsed();
    let cold_requests = requests(&api);
    // Steady state: this node's 100 pods keep logging (after one round that looks them up
    // again, as the cold pass evicted them).
    for i in (0..10_000).step_by(100) {
        f.filter_stream(&tag_of(i), EventStream::one(TIME, record()));
    }
    let before = requests(&api);
    let start = Instant::now();
    let mut events = 0u64;
    while start.elapsed() < Duration::from_secs(5) {
        for i in (0..10_000).step_by(100) {
            f.filter_stream(&tag_of(i), EventStream::one(TIME, record()));
            events += 1;
        }
    }
    let steady_per_min = (requests(&api) - before) as f64 * 60.0 / start.elapsed().as_secs_f64();
    // Per-event cost on a warm cache: streams of 1 and of 100 events of one container.
    let warm = tag_of(0);
    let mut cost = Vec::new();
    for batch in [1usize, 100] {
        let streams: Vec<EventStream> = (0..20_000 / batch)
            .map(|_| {
                let mut es = EventStream::new();
                for _ in 0..batch {
                    es.push(TIME, record());
                }
                es
            })
            .collect();
        let start = Instant::now();
        for es in streams {
            std::hint::black_box(f.filter_stream(&warm, es));
        }
        cost.push((batch, start.elapsed().as_nanos() as f64 / 20_000.0));
    }
    let st = f.state();
    let (pods, nss) = {
        let s = st.lock();
        (s.pod_cache_len(), s.namespace_cache_len())
    };
    f.shutdown();
    std::env::remove_var("K8S_NODE_NAME");
    println!(
        "10,000 pods / 100 namespaces / cache_size 1000:\n\
         cold pass over 2,000 pods: {:.2} s, {} API GETs ({:.0} per minute over that pass)\n\
         steady state (this node's 100 pods, {} events): {:.1} API GETs per minute\n\
         caches: {} pods, {} namespaces\n\
         test process RSS: {} KiB before the filter, peak {} KiB (fake API server included)\n\
         per event on a warm cache: {:.0} ns in streams of 1, {:.0} ns in streams of 100",
        cold.as_secs_f64(),
        cold_requests,
        cold_requests as f64 * 60.0 / cold.as_secs_f64(),
        events,
        steady_per_min,
        pods,
        nss,
        rss0,
        proc_status_kib("VmHWM:"),
        cost[0].1,
        cost[1].1,
    );
}
