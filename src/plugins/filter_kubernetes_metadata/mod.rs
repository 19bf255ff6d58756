//! `@type kubernetes_metadata` (filter, fluent-plugin-kubernetes_metadata_filter 3.x): adds the
//! pod's `kubernetes` hash and `docker.container_id` to container logs. Names come from the tag
//! (`tag_to_kubernetes_name_regexp`: `var.log.containers.<pod>_<ns>_<container>-<id>.log` or
//! `var.log.pods.<ns>_<pod>_<uid>.<container>.*.log`) or, with `lookup_from_k8s_field`, from
//! the record's own `kubernetes`/`docker` fields. Pod and namespace details come from the API
//! server through a [`MetadataSource`] and are kept in three LRU+TTL caches as the plugin keeps
//! them (id → pod/namespace uid, pod uid → pod, namespace uid → namespace), so memory is bounded
//! by `cache_size` whatever the cluster size.
//!
//! A lookup that fails never holds an event back: the event passes with what is known (the
//! tag's names, or the orphaned namespace).

mod cache;
mod config;
mod kube_source;
mod meta;
mod tags;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub use k8s_openapi::api::core::v1::{Namespace, Pod};

use super::{Filter, PluginContext};
use crate::config_parser::types::RubyRegex;
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventStream, EventTime, Record, Value};
use crate::kubernetes::ClientSettings;
use cache::LruTtl;
pub use config::KubernetesMetadataConf;
pub use meta::{namespace_meta, pod_meta, strip_runtime, NsMeta, PodMeta, Shape};
use tags::*;

/// How long a lookup that found nothing is not repeated for the same pod (the plugin retries
/// on every event stream, which turns a deleted pod into a loop of 404s).
const MISS_TTL: Duration = Duration::from_secs(10);

/// The answer of one GET.
pub enum Fetch<T> {
    Found(T),
    NotFound,
    /// The API server could not be asked or answered something unusable (the reason is
    /// logged by the caller).
    Failed(String),
}

/// Where pods and namespaces come from: the API server, or a fake in tests.
pub trait MetadataSource: Send + Sync {
    fn pod(&self, namespace: &str, name: &str) -> Fetch<Pod>;
    fn namespace(&self, name: &str) -> Fetch<Namespace>;
    /// API requests made so far (for stats and benchmarks).
    fn requests(&self) -> u64 {
        0
    }
}

/// The plugin's counters, printed every `stats_interval` (`stats - key: n, ...`).
#[derive(Default)]
struct Stats(Vec<(&'static str, u64)>);

impl Stats {
    fn bump(&mut self, key: &'static str) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => self.0.push((key, 1)),
        }
    }
    fn set(&mut self, key: &'static str, v: u64) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n = v,
            None => self.0.push((key, v)),
        }
    }
    fn get(&self, key: &str) -> u64 {
        self.0
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(0, |(_, n)| *n)
    }
    fn render(&self) -> String {
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        format!("stats - {}", parts.join(", "))
    }
}

/// `{pod_id, namespace_id}` of an id_cache entry.
#[derive(Clone)]
struct Ids {
    pod_id: Option<Arc<str>>,
    namespace_id: Option<Arc<str>>,
}

/// The caches, shared with the watches.
pub struct CacheState {
    id_cache: LruTtl<Arc<str>, Ids>,
    pods: LruTtl<Arc<str>, Arc<PodMeta>>,
    namespaces: LruTtl<Arc<str>, Arc<NsMeta>>,
    /// `namespace/pod` → pod uid and namespace name → uid, for what the caches hold, so a new
    /// container of a known pod (or a watched one) needs no GET.
    pod_names: LruTtl<Arc<str>, Arc<str>>,
    ns_names: LruTtl<Arc<str>, Arc<str>>,
    /// `namespace/pod` lookups that found nothing recently.
    misses: LruTtl<Arc<str>, ()>,
    /// Bumped by every change to the caches; a memo built at another generation is stale.
    /// Read without the lock by the filter.
    generation: Arc<AtomicU64>,
    stats: Stats,
}

impl CacheState {
    fn new(size: usize, ttl: Option<Duration>) -> Self {
        CacheState {
            id_cache: LruTtl::new(size, ttl),
            pods: LruTtl::new(size, ttl),
            namespaces: LruTtl::new(size, ttl),
            pod_names: LruTtl::new(size, ttl),
            ns_names: LruTtl::new(size, ttl),
            misses: LruTtl::new(size, Some(MISS_TTL)),
            generation: Arc::new(AtomicU64::new(0)),
            stats: Stats::default(),
        }
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    fn put_pod(&mut self, p: Arc<PodMeta>, now: Instant) {
        self.changed();
        let uid: Arc<str> = Arc::from(p.uid.as_str());
        self.pod_names
            .insert(Arc::from(pod_key(&p).as_str()), uid.clone(), now);
        self.pods.insert(uid, p, now);
    }

    fn put_namespace(&mut self, n: Arc<NsMeta>, now: Instant) {
        self.changed();
        let uid: Arc<str> = Arc::from(n.uid.as_str());
        self.ns_names
            .insert(Arc::from(n.name.as_str()), uid.clone(), now);
        self.namespaces.insert(uid, n, now);
    }

    /// The cached pod `ns/name` when it is the one `key` (a container id or the pod uid)
    /// belongs to; a pod recreated under the same name is not mistaken for the old one.
    fn cached_pod(&mut self, ns_pod: &str, key: &str, now: Instant) -> Option<Arc<PodMeta>> {
        let uid = self.pod_names.get(ns_pod, now)?.clone();
        let p = self.pods.get(&uid, now)?;
        (p.uid == key || p.containers.iter().any(|c| c.container_id == key)).then(|| p.clone())
    }

    fn cached_namespace(&mut self, name: &str, now: Instant) -> Option<Arc<NsMeta>> {
        let uid = self.ns_names.get(name, now)?.clone();
        self.namespaces.get(&uid, now).cloned()
    }

    pub fn pod_cache_len(&self) -> usize {
        self.pods.len()
    }

    pub fn namespace_cache_len(&self) -> usize {
        self.namespaces.len()
    }

    /// A watch saw a pod change: refresh it when cached, or add it when it runs on this node
    /// (`node` is `K8S_NODE_NAME`). Returns whether the cache changed.
    pub fn pod_modified(&mut self, pod: PodMeta, node: Option<&str>) -> bool {
        let uid: Arc<str> = Arc::from(pod.uid.as_str());
        let key = pod_key(&pod);
        self.misses.remove(key.as_str());
        let pod = Arc::new(pod);
        if self.pods.update(&uid, pod.clone()) {
            self.changed();
            self.stats.bump("pod_cache_watch_updates");
            return true;
        }
        if node.is_some() && pod.node.as_deref() == node {
            self.put_pod(pod, Instant::now());
            self.stats.bump("pod_cache_host_updates");
            return true;
        }
        self.stats.bump("pod_cache_watch_ignored");
        false
    }

    /// A watch saw a namespace change: refresh it when cached.
    pub fn namespace_modified(&mut self, ns: NsMeta) -> bool {
        let uid: Arc<str> = Arc::from(ns.uid.as_str());
        if self.namespaces.update(&uid, Arc::new(ns)) {
            self.changed();
            self.stats.bump("namespace_cache_watch_updates");
            true
        } else {
            self.stats.bump("namespace_cache_watch_ignored");
            false
        }
    }

    /// A watch saw a pod disappear. Its metadata stays cached (late lines of a deleted pod
    /// still get it, as with the plugin) and ages out by TTL/LRU.
    pub fn pod_deleted(&mut self) {
        self.stats.bump("pod_cache_watch_delete_ignored");
    }

    pub fn stat(&self, key: &str) -> u64 {
        self.stats.get(key)
    }
}

fn pod_key(p: &PodMeta) -> String {
    format!(
        "{}/{}",
        field_str(&p.fields, "namespace_name"),
        field_str(&p.fields, "pod_name")
    )
}

fn field_str<'a>(r: &'a Record, key: &str) -> std::borrow::Cow<'a, str> {
    match r.get(key).and_then(Value::as_bytes) {
        Some(b) => String::from_utf8_lossy(b),
        None => std::borrow::Cow::Borrowed(""),
    }
}

pub struct KubernetesMetadata {
    conf: KubernetesMetadataConf,
    shape: Arc<Shape>,
    tag_re: TagRegexp,
    source: Option<Arc<dyn MetadataSource>>,
    state: Arc<Mutex<CacheState>>,
    /// The caches' generation (the one in `state`), read without its lock.
    generation: Arc<AtomicU64>,
    /// The hot path's only lock: a stream whose tag has a valid memo needs nothing else.
    tags: Mutex<TagCache>,
    /// When the stats are next due, in ms after `started`.
    next_stats: AtomicU64,
    started: Instant,
    /// For the error messages: the plugin names the endpoint.
    master_url: String,
    /// The client the watches use (None: no API server, or a test source).
    client: Option<kube::Client>,
    watches: Mutex<Option<kube_source::Watches>>,
}

/// What `get_pod_metadata` found: the pod part and the namespace part of the hash, or the
/// orphan fields.
#[derive(Default)]
struct Found {
    pod: Option<Arc<PodMeta>>,
    pod_id_only: Option<Arc<str>>,
    namespace: Option<Arc<NsMeta>>,
    namespace_id_only: Option<Arc<str>>,
    orphan: Option<Record>,
    /// Everything came from the caches (the result may be memoized until this time: the first
    /// TTL expiry among the entries used).
    cached: Option<Instant>,
}

impl KubernetesMetadata {
    pub fn configure(elem: &Element, ctx: &PluginContext) -> Result<Self, ConfigError> {
        let (conf, settings): (KubernetesMetadataConf, ClientSettings) =
            crate::kubernetes::configure(elem, ctx, "kubernetes_metadata")?;
        // As the plugin: with no API server to ask, only the names from the tag are added.
        let api = match settings.source() {
            Ok(_) => Some(connect(&settings).map_err(|m| {
                elem.error(format!(
                    "Invalid Kubernetes API {} endpoint: {m}",
                    conf.api_version
                ))
            })?),
            Err(e) => {
                tracing::debug!("kubernetes_metadata: {e}");
                None
            }
        };
        let master_url = api.as_ref().map(|(_, url)| url.clone());
        let mut filter = Self::from_conf(conf, master_url).map_err(|m| elem.error(m))?;
        if let Some((client, _)) = api {
            let timeout = Duration::from_secs(filter.conf.read_timeout.max(1) as u64);
            filter.source = Some(Arc::new(kube_source::KubeSource::new(
                client.clone(),
                timeout,
            )));
            filter.client = Some(client);
        }
        Ok(filter)
    }

    /// Builds the filter without a metadata source (tag-derived fields only until one is set).
    /// `master_url` is the API server's URL as the plugin shows it.
    pub fn from_conf(
        conf: KubernetesMetadataConf,
        master_url: Option<String>,
    ) -> Result<Self, String> {
        let tag_re = TagRegexp::new(&conf.tag_to_kubernetes_name_regexp)
            .map_err(|e| format!("invalid tag_to_kubernetes_name_regexp: {e}"))?;
        let ttl = if conf.cache_ttl < 0 {
            tracing::info!("Setting the cache TTL to :none because it was <= 0");
            None
        } else {
            Some(Duration::from_secs(conf.cache_ttl as u64))
        };
        let mut annotation_match = Vec::new();
        for pattern in &conf.annotation_match {
            match RubyRegex::new(pattern, "") {
                Ok(re) => annotation_match.push(re),
                Err(e) => {
                    tracing::error!("Error: invalid regular expression in annotation_match: {e}")
                }
            }
        }
        let shape = Shape {
            skip_pod_labels: conf.skip_labels || conf.skip_pod_labels,
            skip_namespace_labels: conf.skip_labels || conf.skip_namespace_labels,
            skip_container_metadata: conf.skip_container_metadata,
            include_ownerrefs: conf.include_ownerrefs_metadata,
            annotation_match,
            master_url: if conf.skip_master_url {
                None
            } else {
                master_url.clone()
            },
        };
        let size = conf.cache_size.max(1) as usize;
        let state = CacheState::new(size, ttl);
        Ok(KubernetesMetadata {
            next_stats: AtomicU64::new(conf.stats_interval.max(0) as u64 * 1000),
            started: Instant::now(),
            generation: state.generation.clone(),
            tags: Mutex::new(TagCache::new(size)),
            conf,
            master_url: master_url.unwrap_or_default(),
            shape: Arc::new(shape),
            tag_re,
            source: None,
            client: None,
            state: Arc::new(Mutex::new(state)),
            watches: Mutex::new(None),
        })
    }

    /// Sets where pods and namespaces are looked up.
    pub fn with_source(mut self, source: Arc<dyn MetadataSource>) -> Self {
        self.source = Some(source);
        self
    }

    pub fn conf(&self) -> &KubernetesMetadataConf {
        &self.conf
    }

    pub fn shape(&self) -> Arc<Shape> {
        self.shape.clone()
    }

    /// The caches, for the watches that keep them fresh.
    pub fn state(&self) -> Arc<Mutex<CacheState>> {
        self.state.clone()
    }

    /// Starts the watches that keep the caches fresh (`watch true` with an API server).
    pub fn start_watches(&self) {
        let Some(client) = self.client.clone() else {
            return;
        };
        if !self.conf.watch {
            return;
        }
        let node = std::env::var("K8S_NODE_NAME")
            .ok()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty());
        if node.is_none() {
            tracing::warn!("!! The environment variable 'K8S_NODE_NAME' is not set to the node name which can affect the API server and watch efficiency !!");
            tracing::info!("kubernetes_metadata: no pod watch without K8S_NODE_NAME (pods are looked up by GET and cached)");
        }
        match kube_source::start_watches(client, self.state.clone(), self.shape.clone(), node) {
            Ok(w) => *self.watches.lock() = Some(w),
            Err(e) => tracing::warn!("kubernetes_metadata: cannot start the watches: {e}"),
        }
    }

    fn stop_watches(&self) {
        if let Some(mut w) = self.watches.lock().take() {
            w.stop();
        }
    }

    fn fetch_pod(&self, source: &dyn MetadataSource, ns: &str, pod: &str) -> Option<PodMeta> {
        let mut st = self.state.lock();
        st.stats.bump("pod_cache_api_updates");
        drop(st);
        match source.pod(ns, pod) {
            Fetch::Found(p) => match pod_meta(&p, &self.shape) {
                Some(m) => Some(m),
                None => {
                    tracing::warn!("pod {ns}/{pod} from the Kubernetes API has no uid");
                    self.state.lock().stats.bump("pod_cache_api_nil_error");
                    None
                }
            },
            Fetch::NotFound => {
                tracing::debug!("Encountered '404 Not Found' exception, pod not found");
                self.state.lock().stats.bump("pod_cache_api_nil_error");
                None
            }
            Fetch::Failed(e) => {
                tracing::warn!(
                    "Exception '{e}' encountered fetching pod metadata from Kubernetes API {} endpoint {}",
                    self.conf.api_version,
                    self.master_url
                );
                self.state.lock().stats.bump("pod_cache_api_nil_error");
                None
            }
        }
    }

    fn fetch_namespace(&self, source: &dyn MetadataSource, ns: &str) -> Option<NsMeta> {
        self.state.lock().stats.bump("namespace_cache_api_updates");
        match source.namespace(ns) {
            Fetch::Found(n) => namespace_meta(&n, &self.shape),
            Fetch::NotFound => {
                self.state
                    .lock()
                    .stats
                    .bump("namespace_cache_api_nil_error");
                None
            }
            Fetch::Failed(e) => {
                tracing::warn!(
                    "Exception '{e}' encountered fetching namespace metadata from Kubernetes API {} endpoint {}",
                    self.conf.api_version,
                    self.master_url
                );
                self.state
                    .lock()
                    .stats
                    .bump("namespace_cache_api_nil_error");
                None
            }
        }
    }

    /// Pod uid → pod, from the cache or by a GET that fills it.
    fn pod_by_id(
        &self,
        source: &dyn MetadataSource,
        pod_id: &Arc<str>,
        ns: &str,
        pod: &str,
    ) -> Option<Arc<PodMeta>> {
        {
            let mut st = self.state.lock();
            if let Some(p) = st.pods.get(pod_id, Instant::now()) {
                return Some(p.clone());
            }
            st.stats.bump("pod_cache_miss");
        }
        let m = Arc::new(self.fetch_pod(source, ns, pod)?);
        let uid: Arc<str> = Arc::from(m.uid.as_str());
        let mut st = self.state.lock();
        // May evict another pod: memos built from it are stale.
        st.changed();
        st.pods.insert(uid, m.clone(), Instant::now());
        Some(m)
    }

    fn namespace_by_id(
        &self,
        source: &dyn MetadataSource,
        ns_id: &Arc<str>,
        ns: &str,
    ) -> Option<Arc<NsMeta>> {
        {
            let mut st = self.state.lock();
            if let Some(n) = st.namespaces.get(ns_id, Instant::now()) {
                return Some(n.clone());
            }
            st.stats.bump("namespace_cache_miss");
        }
        let m = Arc::new(self.fetch_namespace(source, ns)?);
        self.state.lock().put_namespace(m.clone(), Instant::now());
        Some(m)
    }

    /// The plugin's `get_pod_metadata` (cache strategy): the id cache first, then GETs.
    fn get_pod_metadata(
        &self,
        source: &dyn MetadataSource,
        key: &str,
        ns: &str,
        pod: &str,
        time: EventTime,
        batch_misses: &mut HashMap<String, Option<Record>>,
    ) -> Found {
        let ids = self.state.lock().id_cache.get(key, Instant::now()).cloned();
        if let Some(ids) = ids {
            let mut found = Found::default();
            match &ids.pod_id {
                Some(pid) => match self.pod_by_id(source, pid, ns, pod) {
                    Some(p) => found.pod = Some(p),
                    None => found.pod_id_only = Some(pid.clone()),
                },
                None => {
                    if let Some(p) = self.fetch_pod(source, ns, pod) {
                        found.pod = Some(Arc::new(p));
                    }
                }
            }
            if !self.conf.skip_namespace_metadata {
                if let Some(nid) = &ids.namespace_id {
                    match self.namespace_by_id(source, nid, ns) {
                        Some(n) => found.namespace = Some(n),
                        None => found.namespace_id_only = Some(nid.clone()),
                    }
                }
            }
            if found.pod.is_some()
                && (self.conf.skip_namespace_metadata || found.namespace.is_some())
            {
                let st = self.state.lock();
                let far = Instant::now() + MEMO_MAX_AGE;
                let expiries = [
                    st.id_cache.expires(key),
                    found
                        .pod
                        .as_ref()
                        .and_then(|p| st.pods.expires(p.uid.as_str())),
                    found
                        .namespace
                        .as_ref()
                        .and_then(|n| st.namespaces.expires(n.uid.as_str())),
                ];
                found.cached = Some(expiries.into_iter().flatten().fold(far, Instant::min));
            }
            return found;
        }
        let miss_key = format!("{ns}/{pod}");
        self.state.lock().stats.bump("id_cache_miss");
        if let Some(orphan) = batch_misses.get(&miss_key) {
            return Found {
                orphan: orphan.clone(),
                ..Found::default()
            };
        }
        let (recent_miss, cached_pod, cached_ns) = {
            let mut st = self.state.lock();
            let now = Instant::now();
            (
                st.misses.contains(miss_key.as_str(), now),
                st.cached_pod(&miss_key, key, now),
                st.cached_namespace(ns, now),
            )
        };
        let (pod_meta, ns_meta) = if recent_miss {
            (None, None)
        } else {
            let p = match cached_pod {
                Some(p) => Some(p),
                None => self.fetch_pod(source, ns, pod).map(Arc::new),
            };
            let n = if self.conf.skip_namespace_metadata {
                None
            } else {
                match cached_ns {
                    Some(n) => Some(n),
                    None => self.fetch_namespace(source, ns).map(Arc::new),
                }
            };
            (p, n)
        };
        let now = Instant::now();
        let mut st = self.state.lock();
        if let Some(p) = &pod_meta {
            st.put_pod(p.clone(), now);
        }
        if let Some(n) = &ns_meta {
            st.put_namespace(n.clone(), now);
        }
        let namespace_found = ns_meta.is_some() || self.conf.skip_namespace_metadata;
        match (pod_meta, ns_meta) {
            (Some(p), n) if namespace_found => {
                let ids = Ids {
                    pod_id: Some(Arc::from(p.uid.as_str())),
                    namespace_id: n.as_ref().map(|n| Arc::from(n.uid.as_str())),
                };
                st.changed();
                st.id_cache.insert(Arc::from(key), ids, now);
                Found {
                    pod: Some(p),
                    namespace: n,
                    ..Found::default()
                }
            }
            (None, Some(n)) => {
                // The pod is gone but its namespace is older than the record: keep the key as
                // the pod id and add the namespace.
                st.stats.bump("id_cache_pod_not_found_namespace");
                let older = n.created.is_none_or(|c| c <= time.sec);
                let pod_id: Option<Arc<str>> = older.then(|| Arc::from(key));
                st.changed();
                st.id_cache.insert(
                    Arc::from(key),
                    Ids {
                        pod_id: pod_id.clone(),
                        namespace_id: Some(Arc::from(n.uid.as_str())),
                    },
                    now,
                );
                let pod = pod_id.as_ref().and_then(|id| st.pods.get(id, now).cloned());
                Found {
                    pod_id_only: if pod.is_none() { pod_id } else { None },
                    pod,
                    namespace: Some(n),
                    ..Found::default()
                }
            }
            (p, _) => {
                if p.is_some() {
                    st.stats.bump("id_cache_namespace_not_found_pod");
                } else {
                    st.stats.bump("id_cache_orphaned_record");
                }
                if !recent_miss {
                    st.misses.insert(Arc::from(miss_key.as_str()), (), now);
                }
                let orphan = self.conf.allow_orphans.then(|| {
                    let mut r = Record::with_capacity(3);
                    r.push_unchecked(b"orphaned_namespace".to_vec(), Value::str(ns.as_bytes()));
                    r.push_unchecked(
                        b"namespace_name".to_vec(),
                        Value::str(self.conf.orphaned_namespace_name.as_bytes()),
                    );
                    r.push_unchecked(
                        b"namespace_id".to_vec(),
                        Value::str(self.conf.orphaned_namespace_id.as_bytes()),
                    );
                    r
                });
                batch_misses.insert(miss_key, orphan.clone());
                Found {
                    orphan,
                    ..Found::default()
                }
            }
        }
    }

    /// The plugin's `get_metadata_for_record`: the `docker` and `kubernetes` values to merge.
    #[allow(clippy::too_many_arguments)]
    fn metadata_for(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        cache_key: &str,
        docker_id: Option<&str>,
        time: EventTime,
        batch_misses: &mut HashMap<String, Option<Record>>,
    ) -> (Record, Option<Instant>) {
        let mut cached = None;
        let mut k = Record::with_capacity(16);
        k.push_unchecked(b"container_name".to_vec(), Value::str(container.as_bytes()));
        k.push_unchecked(b"namespace_name".to_vec(), Value::str(ns.as_bytes()));
        k.push_unchecked(b"pod_name".to_vec(), Value::str(pod.as_bytes()));
        let mut container_id = docker_id.unwrap_or("").to_string();
        if let Some(source) = &self.source {
            let found =
                self.get_pod_metadata(source.as_ref(), cache_key, ns, pod, time, batch_misses);
            cached = found.cached;
            if let Some(p) = &found.pod {
                if let Some(c) = p.containers.iter().find(|c| c.name == container) {
                    if !self.conf.skip_container_metadata {
                        if let Some(image) = &c.image {
                            k.insert("container_image", Value::str(image.as_bytes()));
                        }
                        if !c.image_id.is_empty() {
                            k.insert("container_image_id", Value::str(c.image_id.as_bytes()));
                        }
                        if !c.container_id.is_empty() {
                            container_id.clone_from(&c.container_id);
                        }
                    }
                }
                for (key, v) in p.fields.iter() {
                    k.insert(key, v.clone());
                }
            } else if let Some(id) = &found.pod_id_only {
                k.insert("pod_id", Value::str(id.as_bytes()));
            }
            if let Some(n) = &found.namespace {
                for (key, v) in n.fields.iter() {
                    k.insert(key, v.clone());
                }
            } else if let Some(id) = &found.namespace_id_only {
                k.insert("namespace_id", Value::str(id.as_bytes()));
            }
            if let Some(o) = found.orphan {
                k.merge(o);
            }
        }
        let mut md = Record::with_capacity(2);
        if !container_id.is_empty() {
            let mut d = Record::with_capacity(1);
            d.push_unchecked(
                b"container_id".to_vec(),
                Value::str(container_id.into_bytes()),
            );
            md.push_unchecked(b"docker".to_vec(), Value::Map(d));
        }
        md.push_unchecked(b"kubernetes".to_vec(), Value::Map(k));
        (md, cached)
    }

    /// The names in `tag` and a memo still valid, with the cache generation seen.
    fn tag_entry(
        &self,
        tag: &str,
        now: Instant,
    ) -> (Option<Arc<TagNames>>, Option<Arc<Record>>, u64) {
        // Read before anything is looked up, so a change made meanwhile makes the memo stale.
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(e) = self.tags.lock().get(tag) {
            let memo = e
                .memo
                .filter(|m| m.generation == generation && now < m.valid_until)
                .map(|m| m.md);
            return (e.names, memo, generation);
        }
        let names = self.tag_re.names(tag).map(Arc::new);
        self.tags.lock().put(
            tag,
            TagEntry {
                names: names.clone(),
                memo: None,
            },
        );
        (names, None, generation)
    }

    fn remember(
        &self,
        tag: &str,
        names: Arc<TagNames>,
        generation: u64,
        md: Arc<Record>,
        valid_until: Instant,
    ) {
        let memo = Memo {
            generation,
            valid_until,
            md,
        };
        self.tags.lock().set_memo(tag, names, memo);
    }

    /// Logs the stats when `stats_interval` has passed since the last time.
    fn dump_stats(&self, now: Instant) {
        if self.conf.stats_interval <= 0 {
            return;
        }
        let at = now.saturating_duration_since(self.started).as_millis() as u64;
        let due = self.next_stats.load(Ordering::Relaxed);
        let next = at + self.conf.stats_interval as u64 * 1000;
        if at < due
            || self
                .next_stats
                .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let mut st = self.state.lock();
        let (pods, nss) = (st.pods.len() as u64, st.namespaces.len() as u64);
        st.stats.set("pod_cache_size", pods);
        st.stats.set("namespace_cache_size", nss);
        if let Some(s) = &self.source {
            st.stats.set("api_requests", s.requests());
        }
        tracing::info!("{}", st.stats.render());
    }

    /// Tags remembered (bounded by `cache_size`).
    pub fn tag_cache_len(&self) -> usize {
        self.tags.lock().len()
    }

    /// The `docker`/`kubernetes` fields from the record, when `lookup_from_k8s_field` applies.
    fn record_names(record: &Record) -> Option<(String, String, String, String)> {
        let k = record.get("kubernetes")?.as_map()?;
        let d = record.get("docker")?.as_map()?;
        let s = |r: &Record, key: &str| -> Option<String> {
            let v = r.get(key)?;
            Some(String::from_utf8_lossy(&v.to_ruby_s()).into_owned())
        };
        Some((
            s(k, "namespace_name")?,
            s(k, "pod_name")?,
            s(k, "container_name")?,
            s(d, "container_id")?,
        ))
    }
}

impl Filter for KubernetesMetadata {
    fn start(&self) {
        self.start_watches();
    }

    fn shutdown(&self) {
        self.stop_watches();
    }

    fn filter_stream(&self, tag: &str, es: EventStream) -> EventStream {
        if es.is_empty() {
            return es;
        }
        let now = Instant::now();
        let mut batch_misses = HashMap::new();
        let (names, memo, generation) = self.tag_entry(tag, now);
        // Built once per stream from the first event's time, then copied into each event.
        let tag_md = match (memo, names) {
            (Some(md), _) => Some(md),
            (None, Some(n)) => es.events.first().map(|first| {
                let (md, cached) = self.metadata_for(
                    &n.namespace,
                    &n.pod_name,
                    &n.container_name,
                    &n.cache_key,
                    n.docker_id.as_deref(),
                    first.time,
                    &mut batch_misses,
                );
                let md = Arc::new(md);
                if let Some(until) = cached {
                    self.remember(tag, n.clone(), generation, md.clone(), until);
                }
                md
            }),
            (None, None) => None,
        };
        let mut out = EventStream::with_capacity(es.len());
        for mut ev in es {
            let from_record = if self.conf.lookup_from_k8s_field {
                Self::record_names(&ev.record)
            } else {
                None
            };
            match from_record {
                Some((ns, pod, container, cid)) => {
                    let (md, _) = self.metadata_for(
                        &ns,
                        &pod,
                        &container,
                        &cid,
                        Some(&cid),
                        ev.time,
                        &mut batch_misses,
                    );
                    ev.record.merge(md);
                }
                None => {
                    if let Some(md) = &tag_md {
                        for (k, v) in md.iter() {
                            ev.record.insert(k, v.clone());
                        }
                    }
                }
            }
            out.events.push(ev);
        }
        self.dump_stats(now);
        out
    }
}

/// Builds the kube client (no request is made) and the URL the plugin reports as
/// `master_url`: `kubernetes_url` as written, else the API server's URL + `/api`.
fn connect(settings: &ClientSettings) -> Result<(kube::Client, String), String> {
    let settings = settings.clone();
    let rt = crate::kubernetes::runtime()?;
    // Another thread: the caller may be inside a runtime, where block_on is not allowed.
    std::thread::scope(|s| {
        s.spawn(|| {
            rt.block_on(async {
                let config = settings.kube_config().await?;
                let url = match &settings.kubernetes_url {
                    Some(u) if !u.is_empty() => u.clone(),
                    _ => format!(
                        "{}/api",
                        config.cluster_url.to_string().trim_end_matches('/')
                    ),
                };
                let client = crate::kubernetes::build_client(config)?;
                Ok((client, url))
            })
        })
        .join()
        .unwrap_or_else(|_| Err("the Kubernetes client set-up panicked".into()))
    })
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Filter>, ConfigError> {
    let filter = KubernetesMetadata::configure(elem, ctx)?;
    Ok(Box::new(filter))
}

#[cfg(test)]
mod tests;
