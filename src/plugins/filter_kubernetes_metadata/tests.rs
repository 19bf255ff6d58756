use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::plugins::filter_record_transformer::record_to_json;
use crate::test_util::{capture_logs, directive, json_record};

const CID: &str = "49095a2894da899d3b327c5fde1e056a81376cc9a8f8b09a195f2a92bceed459";

/// A fake API server in memory: pods by namespace/name, namespaces by name, a request count.
#[derive(Default)]
struct FakeApi {
    pods: Mutex<HashMap<String, Pod>>,
    namespaces: Mutex<HashMap<String, Namespace>>,
    fail: std::sync::atomic::AtomicBool,
    pod_gets: AtomicU64,
    ns_gets: AtomicU64,
}

impl MetadataSource for FakeApi {
    fn pod(&self, namespace: &str, name: &str) -> Fetch<Pod> {
        self.pod_gets.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Fetch::Failed("<html>bad gateway</html>".into());
        }
        match self.pods.lock().get(&format!("{namespace}/{name}")) {
            Some(p) => Fetch::Found(p.clone()),
            None => Fetch::NotFound,
        }
    }
    fn namespace(&self, name: &str) -> Fetch<Namespace> {
        self.ns_gets.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Fetch::Failed("<html>bad gateway</html>".into());
        }
        match self.namespaces.lock().get(name) {
            Some(n) => Fetch::Found(n.clone()),
            None => Fetch::NotFound,
        }
    }
    fn requests(&self) -> u64 {
        self.pod_gets.load(Ordering::SeqCst) + self.ns_gets.load(Ordering::SeqCst)
    }
}

/// The pod of the plugin's README example (fabric8 console), as the API returns it.
fn readme_pod() -> Pod {
    let json = format!(
        r#"{{"kind":"Pod","apiVersion":"v1",
        "metadata":{{"name":"fabric8-console-controller-98rqc","namespace":"default",
          "uid":"c76927af-f563-11e4-b32d-54ee7527188d","resourceVersion":"11",
          "creationTimestamp":"2015-05-08T09:22:42Z",
          "labels":{{"component":"fabric8Console"}},
          "annotations":{{"kubernetes.io/created-by":"x","custom.io/team":"logs"}},
          "ownerReferences":[{{"apiVersion":"v1","kind":"ReplicationController","name":"fabric8-console-controller","uid":"u1"}}]}},
        "spec":{{"nodeName":"jimmi-redhat.localnet","containers":[{{"name":"fabric8-console-container","image":"fabric8/hawtio-kubernetes:latest"}}]}},
        "status":{{"podIP":"172.17.0.8","containerStatuses":[{{"name":"fabric8-console-container",
          "image":"fabric8/hawtio-kubernetes:latest",
          "imageID":"docker://b2bd1a24a68356b2f30128e6e28e672c1ef92df0d9ec01ec0c7faea5d77d2303",
          "containerID":"docker://{CID}","ready":true,"restartCount":0}}]}}}}"#
    );
    match serde_json::from_str(&json) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn readme_namespace() -> Namespace {
    let json = r#"{"kind":"Namespace","apiVersion":"v1",
        "metadata":{"name":"default","uid":"898268c8-4a36-11e5-9d81-42010af0194c",
          "creationTimestamp":"2015-05-08T09:22:01Z",
          "labels":{"tenant":"test"},
          "annotations":{"custom.io/owner":"team-a","other":"x"}}}"#;
    match serde_json::from_str(json) {
        Ok(n) => n,
        Err(e) => panic!("{e}"),
    }
}

fn fake_api() -> Arc<FakeApi> {
    let api = FakeApi::default();
    api.pods.lock().insert(
        "default/fabric8-console-controller-98rqc".into(),
        readme_pod(),
    );
    api.namespaces
        .lock()
        .insert("default".into(), readme_namespace());
    Arc::new(api)
}

fn filter(params: &str, api: Option<Arc<FakeApi>>) -> KubernetesMetadata {
    let ctx = PluginContext::for_tests();
    let elem = directive(&format!(
        "<filter **>\n@type kubernetes_metadata\nkubernetes_url https://localhost:8443\nwatch false\nstats_interval 0\n{params}\n</filter>"
    ));
    let f = match KubernetesMetadata::configure(&elem, &ctx) {
        Ok(f) => f,
        Err(e) => panic!("{e}"),
    };
    match api {
        Some(a) => f.with_source(a),
        None => KubernetesMetadata {
            // No API server at all: the client configure() built for the URL is dropped.
            source: None,
            client: None,
            ..f
        },
    }
}

const TAG: &str = "var.log.containers.fabric8-console-controller-98rqc_default_fabric8-console-container-49095a2894da899d3b327c5fde1e056a81376cc9a8f8b09a195f2a92bceed459.log";

fn run(f: &KubernetesMetadata, tag: &str, record: &str) -> String {
    let out = f.filter_stream(
        tag,
        EventStream::one(EventTime::new(1_700_000_000, 0), json_record(record)),
    );
    assert_eq!(out.len(), 1, "an event is never dropped");
    record_to_json(&out.events[0].record)
}

#[test]
fn adds_the_documented_fields_in_the_plugins_order() {
    let api = fake_api();
    let f = filter("", Some(api.clone()));
    let got = run(&f, TAG, r#"{"log":"hello"}"#);
    let want = format!(
        concat!(
            r#"{{"log":"hello","docker":{{"container_id":"{cid}"}},"kubernetes":{{"#,
            r#""container_name":"fabric8-console-container","namespace_name":"default","#,
            r#""pod_name":"fabric8-console-controller-98rqc","#,
            r#""container_image":"fabric8/hawtio-kubernetes:latest","#,
            r#""container_image_id":"docker://b2bd1a24a68356b2f30128e6e28e672c1ef92df0d9ec01ec0c7faea5d77d2303","#,
            r#""pod_id":"c76927af-f563-11e4-b32d-54ee7527188d","pod_ip":"172.17.0.8","#,
            r#""host":"jimmi-redhat.localnet","labels":{{"component":"fabric8Console"}},"#,
            r#""master_url":"https://localhost:8443","#,
            r#""namespace_id":"898268c8-4a36-11e5-9d81-42010af0194c","#,
            r#""namespace_labels":{{"tenant":"test"}}}}}}"#
        ),
        cid = CID
    );
    assert_eq!(got, want);
    // A second stream of the same container is served from the caches.
    let before = api.requests();
    assert_eq!(run(&f, TAG, r#"{"log":"hello"}"#), want);
    assert_eq!(api.requests(), before);
}

#[test]
fn var_log_pods_tags_key_the_cache_by_pod_uid() {
    let api = fake_api();
    let f = filter(
        "skip_master_url true\nskip_namespace_metadata true",
        Some(api),
    );
    let tag = "var.log.pods.default_fabric8-console-controller-98rqc_c76927af-f563-11e4-b32d-54ee7527188d.fabric8-console-container.0.log";
    let got = run(&f, tag, r#"{"log":"x"}"#);
    assert_eq!(
        got,
        format!(
            concat!(
                r#"{{"log":"x","docker":{{"container_id":"{cid}"}},"kubernetes":{{"#,
                r#""container_name":"fabric8-console-container","namespace_name":"default","#,
                r#""pod_name":"fabric8-console-controller-98rqc","#,
                r#""container_image":"fabric8/hawtio-kubernetes:latest","#,
                r#""container_image_id":"docker://b2bd1a24a68356b2f30128e6e28e672c1ef92df0d9ec01ec0c7faea5d77d2303","#,
                r#""pod_id":"c76927af-f563-11e4-b32d-54ee7527188d","pod_ip":"172.17.0.8","#,
                r#""host":"jimmi-redhat.localnet","labels":{{"component":"fabric8Console"}}}}}}"#
            ),
            cid = CID
        )
    );
}

#[test]
fn skip_options_annotations_and_ownerrefs() {
    let api = fake_api();
    let f = filter(
        "skip_labels true\nskip_container_metadata true\nskip_master_url true\n\
         annotation_match [\"^custom\\\\.io/\"]\ninclude_ownerrefs_metadata true",
        Some(api),
    );
    let got = run(&f, TAG, r#"{"log":"x"}"#);
    assert_eq!(
        got,
        format!(
            concat!(
                r#"{{"log":"x","docker":{{"container_id":"{cid}"}},"kubernetes":{{"#,
                r#""container_name":"fabric8-console-container","namespace_name":"default","#,
                r#""pod_name":"fabric8-console-controller-98rqc","#,
                r#""pod_id":"c76927af-f563-11e4-b32d-54ee7527188d","pod_ip":"172.17.0.8","#,
                r#""host":"jimmi-redhat.localnet","#,
                r#""ownerrefs":[{{"kind":"ReplicationController","name":"fabric8-console-controller"}}],"#,
                r#""annotations":{{"custom.io/team":"logs"}},"#,
                r#""namespace_id":"898268c8-4a36-11e5-9d81-42010af0194c","#,
                r#""namespace_annotations":{{"custom.io/owner":"team-a"}}}}}}"#
            ),
            cid = CID
        )
    );
}

#[test]
fn without_an_api_server_only_the_tag_names_are_added() {
    let f = filter("", None);
    let got = run(&f, &format!("kubernetes.{TAG}"), r#"{"log":"x"}"#);
    assert_eq!(
        got,
        format!(
            concat!(
                r#"{{"log":"x","docker":{{"container_id":"{cid}"}},"kubernetes":{{"#,
                r#""container_name":"fabric8-console-container","namespace_name":"default","#,
                r#""pod_name":"fabric8-console-controller-98rqc"}}}}"#
            ),
            cid = CID
        )
    );
    // A tag that does not match passes unchanged.
    assert_eq!(run(&f, "other.tag", r#"{"log":"x"}"#), r#"{"log":"x"}"#);
}

#[test]
fn an_unknown_pod_and_namespace_is_orphaned() {
    let api = fake_api();
    let f = filter("", Some(api.clone()));
    let tag = format!("var.log.containers.gone-1_ghost_app-{CID}.log");
    let want = format!(
        concat!(
            r#"{{"log":"x","docker":{{"container_id":"{cid}"}},"kubernetes":{{"#,
            r#""container_name":"app","namespace_name":".orphaned","pod_name":"gone-1","#,
            r#""orphaned_namespace":"ghost","namespace_id":"orphaned"}}}}"#
        ),
        cid = CID
    );
    assert_eq!(run(&f, &tag, r#"{"log":"x"}"#), want);
    // The miss is remembered for a while: no GET loop for a deleted pod.
    let before = api.requests();
    assert_eq!(run(&f, &tag, r#"{"log":"x"}"#), want);
    assert_eq!(api.requests(), before);

    let f = filter(
        "allow_orphans false\norphaned_namespace_name lost",
        Some(fake_api()),
    );
    assert_eq!(
        run(&f, &tag, r#"{"log":"x"}"#),
        format!(
            concat!(
                r#"{{"log":"x","docker":{{"container_id":"{cid}"}},"kubernetes":{{"#,
                r#""container_name":"app","namespace_name":"ghost","pod_name":"gone-1"}}}}"#
            ),
            cid = CID
        )
    );
}

#[test]
fn a_deleted_pod_of_an_older_namespace_keeps_the_namespace() {
    let api = fake_api();
    let f = filter("skip_master_url true", Some(api));
    let tag = format!("var.log.containers.gone-1_default_app-{CID}.log");
    assert_eq!(
        run(&f, &tag, r#"{"log":"x"}"#),
        format!(
            concat!(
                r#"{{"log":"x","docker":{{"container_id":"{cid}"}},"kubernetes":{{"#,
                r#""container_name":"app","namespace_name":"default","pod_name":"gone-1","#,
                r#""pod_id":"{cid}","namespace_id":"898268c8-4a36-11e5-9d81-42010af0194c","#,
                r#""namespace_labels":{{"tenant":"test"}}}}}}"#
            ),
            cid = CID
        )
    );
}

#[test]
fn an_api_error_warns_and_the_event_passes() {
    let api = fake_api();
    api.fail.store(true, Ordering::SeqCst);
    let f = filter("", Some(api));
    let (got, logs) = capture_logs(|| run(&f, TAG, r#"{"log":"x"}"#));
    assert!(got.contains(r#""namespace_name":".orphaned""#), "{got}");
    assert!(got.starts_with(r#"{"log":"x","docker""#), "{got}");
    assert!(
        logs.iter().any(|l| l.starts_with("[warn]: Exception '<html>bad gateway</html>' encountered fetching pod metadata from Kubernetes API v1 endpoint https://localhost:8443")),
        "{logs:?}"
    );
}

#[test]
fn names_from_the_record_with_lookup_from_k8s_field() {
    let api = fake_api();
    let f = filter(
        "skip_master_url true\nskip_namespace_metadata true",
        Some(api),
    );
    let rec = format!(
        r#"{{"log":"x","kubernetes":{{"namespace_name":"default","pod_name":"fabric8-console-controller-98rqc","container_name":"fabric8-console-container"}},"docker":{{"container_id":"{CID}"}}}}"#
    );
    let got = run(&f, "journal", &rec);
    assert_eq!(
        got,
        format!(
            concat!(
                r#"{{"log":"x","kubernetes":{{"#,
                r#""container_name":"fabric8-console-container","namespace_name":"default","#,
                r#""pod_name":"fabric8-console-controller-98rqc","#,
                r#""container_image":"fabric8/hawtio-kubernetes:latest","#,
                r#""container_image_id":"docker://b2bd1a24a68356b2f30128e6e28e672c1ef92df0d9ec01ec0c7faea5d77d2303","#,
                r#""pod_id":"c76927af-f563-11e4-b32d-54ee7527188d","pod_ip":"172.17.0.8","#,
                r#""host":"jimmi-redhat.localnet","labels":{{"component":"fabric8Console"}}}},"#,
                r#""docker":{{"container_id":"{cid}"}}}}"#
            ),
            cid = CID
        )
    );
    let f = filter("lookup_from_k8s_field false", Some(fake_api()));
    assert_eq!(run(&f, "journal", &rec), rec);
}

#[test]
fn removed_parameters_warn_not_used() {
    let ctx = PluginContext::for_tests();
    let elem = directive(
        "<filter **>\n@type kubernetes_metadata\nde_dot false\nuse_journal true\nwatch false\n</filter>",
    );
    let (r, logs) = capture_logs(|| KubernetesMetadata::configure(&elem, &ctx).is_ok());
    assert!(r);
    assert!(
        logs.iter()
            .any(|l| l.contains("parameter 'de_dot' in <filter **> is not used.")),
        "{logs:?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.contains("parameter 'use_journal' in <filter **> is not used.")),
        "{logs:?}"
    );
}

#[test]
fn the_caches_stay_within_cache_size() {
    let api = FakeApi::default();
    api.namespaces
        .lock()
        .insert("default".into(), readme_namespace());
    for i in 0..50 {
        let mut p = readme_pod();
        p.metadata.name = Some(format!("p{i}"));
        p.metadata.uid = Some(format!("uid-{i}"));
        api.pods.lock().insert(format!("default/p{i}"), p);
    }
    let f = filter("cache_size 10", Some(Arc::new(api)));
    for i in 0..50 {
        let tag = format!("var.log.containers.p{i}_default_c-{CID:.60}{i:04}.log");
        let got = run(&f, &tag, "{}");
        assert!(got.contains(&format!(r#""pod_id":"uid-{i}""#)), "{got}");
    }
    assert_eq!(f.tag_cache_len(), 10);
    let st = f.state();
    let st = st.lock();
    assert_eq!(st.pod_cache_len(), 10);
    assert_eq!(st.id_cache.len(), 10);
}

#[test]
fn watch_updates_refresh_cached_pods_only_or_this_nodes() {
    let api = fake_api();
    let f = filter("", Some(api.clone()));
    run(&f, TAG, "{}");
    let mut changed = readme_pod();
    changed
        .metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert("version".into(), "2".into());
    let shape = f.shape();
    let state = f.state();
    let m = pod_meta(&changed, &shape).map(|m| state.lock().pod_modified(m, None));
    assert_eq!(m, Some(true));
    let got = run(&f, TAG, "{}");
    assert!(
        got.contains(r#""labels":{"component":"fabric8Console","version":"2"}"#),
        "{got}"
    );
    // Another node's pod that is not cached is not added.
    let mut other = readme_pod();
    other.metadata.uid = Some("other".into());
    let m = pod_meta(&other, &shape).map(|m| state.lock().pod_modified(m, Some("node-b")));
    assert_eq!(m, Some(false));
    let m = pod_meta(&other, &shape)
        .map(|m| state.lock().pod_modified(m, Some("jimmi-redhat.localnet")));
    assert_eq!(m, Some(true));
}

#[test]
fn a_custom_regexp_must_name_the_groups() {
    let ctx = PluginContext::for_tests();
    let elem = directive(
        "<filter **>\n@type kubernetes_metadata\ntag_to_kubernetes_name_regexp ^(?<pod_name>[^_]+)$\n</filter>",
    );
    let e = match KubernetesMetadata::configure(&elem, &ctx) {
        Err(e) => e.message,
        Ok(_) => panic!("accepted"),
    };
    assert!(e.contains("missing named capture 'namespace'"), "{e}");
}

#[test]
fn strip_runtime_prefixes() {
    assert_eq!(strip_runtime("containerd://abc"), "abc");
    assert_eq!(strip_runtime("cri-o://abc"), "abc");
    assert_eq!(strip_runtime("abc"), "abc");
}

/// What a memo built from cache hits may be reused for: until the first TTL expiry of the
/// entries it came from, and never longer than MEMO_MAX_AGE.
#[test]
fn a_memo_lasts_until_its_entries_expire() {
    let md_until = |params: &str| {
        let api = fake_api();
        let f = filter(params, Some(api.clone()));
        run(&f, TAG, "{}");
        let n = f.tag_re.names(TAG).map(Arc::new);
        let Some(n) = n else {
            panic!("the tag has names")
        };
        let before = Instant::now();
        let (_, until) = f.metadata_for(
            &n.namespace,
            &n.pod_name,
            &n.container_name,
            &n.cache_key,
            n.docker_id.as_deref(),
            EventTime::new(1_700_000_000, 0),
            &mut HashMap::new(),
        );
        let Some(until) = until else {
            panic!("served from the caches")
        };
        // Measured from the end of the call and from its start.
        let left = (
            until.saturating_duration_since(Instant::now()),
            until.saturating_duration_since(before),
        );
        (left, api.requests())
    };
    // Fetched once by the first stream (a pod and a namespace GET), then from the caches.
    let ((min, max), gets) = md_until("cache_ttl 5");
    assert_eq!(gets, 2);
    assert!(
        max <= Duration::from_secs(5) && min > Duration::from_secs(1),
        "{max:?}"
    );
    let ((min, _), _) = md_until("");
    assert!(
        min <= MEMO_MAX_AGE && min > Duration::from_secs(1),
        "{min:?}"
    );
    // An orphan (the API is failing) is never memoized.
    let api = fake_api();
    api.fail.store(true, Ordering::SeqCst);
    let f = filter("", Some(api));
    run(&f, TAG, "{}");
    assert!(f.tags.lock().get(TAG).is_some_and(|e| e.memo.is_none()));
}

/// The tag cache keeps what is used: a full cache evicts a tag not read since the hand last
/// passed, and a round over exactly `cache_size` tags is all hits.
#[test]
fn the_tag_cache_keeps_what_is_used() {
    let mut c = TagCache::new(3);
    let e = || TagEntry {
        names: None,
        memo: None,
    };
    for t in ["a", "b", "c"] {
        c.put(t, e());
    }
    for _ in 0..3 {
        for t in ["a", "b", "c"] {
            assert!(c.get(t).is_some(), "{t}");
        }
    }
    // All were used: the hand clears them and takes the first, "a".
    c.put("d", e());
    assert!(c.get("a").is_none());
    // "b" and "c" lost their mark, "d" has it; "b" is read again, so "c" goes next.
    assert!(c.get("b").is_some());
    c.put("e", e());
    assert!(c.get("c").is_none());
    for t in ["b", "d", "e"] {
        assert!(c.get(t).is_some(), "{t}");
    }
    assert_eq!(c.len(), 3);
}

/// The stats line is logged once per `stats_interval`, not on every stream.
#[test]
fn stats_are_logged_once_per_interval() {
    let api = fake_api();
    let f = filter("stats_interval 30", Some(api));
    let t0 = f.started;
    let ((), logs) = capture_logs(|| {
        run(&f, TAG, "{}");
        f.dump_stats(t0 + Duration::from_secs(29));
        f.dump_stats(t0 + Duration::from_secs(31));
        f.dump_stats(t0 + Duration::from_secs(32));
        f.dump_stats(t0 + Duration::from_secs(62));
    });
    let stats: Vec<&String> = logs.iter().filter(|l| l.contains("stats - ")).collect();
    assert_eq!(stats.len(), 2, "{logs:?}");
    assert!(
        stats[0].contains("pod_cache_size: 1") && stats[0].contains("api_requests: 2"),
        "{stats:?}"
    );
}
