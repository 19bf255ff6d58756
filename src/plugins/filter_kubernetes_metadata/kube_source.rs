//! The API server side of the filter: GETs through the shared kube client, and the pod and
//! namespace watches that keep the caches fresh.
//!
//! Unlike the Ruby plugin, the pod watch runs only when `K8S_NODE_NAME` names this node (the
//! plugin then watches every pod of the cluster, which is what exhausts memory and the API
//! server on large clusters); without it pods are looked up by GET and age out by TTL.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, GetParams};
use parking_lot::Mutex;

use super::{namespace_meta, pod_meta, CacheState, Fetch, MetadataSource, Namespace, Pod, Shape};
use crate::kubernetes::watch::{self, ChangeKind, Seen, Target};

pub struct KubeSource {
    client: kube::Client,
    timeout: Duration,
    requests: AtomicU64,
}

impl KubeSource {
    pub fn new(client: kube::Client, timeout: Duration) -> Self {
        KubeSource {
            client,
            timeout,
            requests: AtomicU64::new(0),
        }
    }

    /// Runs `fut` on the Kubernetes runtime and waits for it (the filter runs on engine
    /// threads, which may themselves be inside another runtime, so no `block_on` here).
    fn call<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = Result<T, kube::Error>> + Send + 'static,
    ) -> Fetch<T> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let rt = match crate::kubernetes::runtime() {
            Ok(rt) => rt,
            Err(e) => return Fetch::Failed(e),
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let timeout = self.timeout;
        rt.spawn(async move {
            let r = tokio::time::timeout(timeout, fut).await;
            let _ = tx.send(r);
        });
        match rx.recv_timeout(timeout + Duration::from_secs(1)) {
            Ok(Ok(Ok(v))) => Fetch::Found(v),
            Ok(Ok(Err(kube::Error::Api(s)))) if s.code == 404 => Fetch::NotFound,
            Ok(Ok(Err(e))) => Fetch::Failed(crate::kubernetes::error_chain(&e)),
            Ok(Err(_)) | Err(_) => {
                Fetch::Failed(format!("no answer within {} s", timeout.as_secs_f64()))
            }
        }
    }
}

impl MetadataSource for KubeSource {
    fn pod(&self, namespace: &str, name: &str) -> Fetch<Pod> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let name = name.to_string();
        // resourceVersion=0: served from the API server's cache, not an etcd quorum read.
        self.call(async move { api.get_with(&name, &GetParams::any()).await })
    }

    fn namespace(&self, name: &str) -> Fetch<Namespace> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let name = name.to_string();
        self.call(async move { api.get_with(&name, &GetParams::any()).await })
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// The running watches; dropping it stops them.
pub struct Watches {
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl Watches {
    pub fn stop(&mut self) {
        for s in self.stops.drain(..) {
            let _ = s.send(());
        }
    }
}

impl Drop for Watches {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the namespace watch, and the pod watch of `node` when one is given.
pub fn start_watches(
    client: kube::Client,
    state: Arc<Mutex<CacheState>>,
    shape: Arc<Shape>,
    node: Option<String>,
) -> Result<Watches, String> {
    let rt = crate::kubernetes::runtime()?;
    let mut stops = Vec::new();
    if let Some(node) = node.clone() {
        let mut target = Target::core("Pod", "pods");
        target.field_selector = Some(format!("spec.nodeName={node}"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        stops.push(tx);
        let (client, state, shape) = (client.clone(), state.clone(), shape.clone());
        rt.spawn(async move {
            // Only uid → resourceVersion of this node's pods is kept by the watch helper.
            let seen = Mutex::new(Seen::default());
            watch::run(
                client,
                &target,
                &seen,
                async {
                    let _ = rx.await;
                },
                |c| match c.kind {
                    ChangeKind::Deleted => state.lock().pod_deleted(),
                    ChangeKind::Added | ChangeKind::Modified => {
                        match serde_json::from_value::<Pod>(c.object) {
                            Ok(p) => {
                                if let Some(m) = pod_meta(&p, &shape) {
                                    state.lock().pod_modified(m, Some(&node));
                                }
                            }
                            Err(e) => tracing::warn!("kubernetes_metadata: unreadable pod: {e}"),
                        }
                    }
                },
            )
            .await;
        });
    }
    let target = Target::core("Namespace", "namespaces");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    stops.push(tx);
    rt.spawn(async move {
        let seen = Mutex::new(Seen::default());
        watch::run(
            client,
            &target,
            &seen,
            async {
                let _ = rx.await;
            },
            |c| {
                if c.kind == ChangeKind::Deleted {
                    return;
                }
                match serde_json::from_value::<Namespace>(c.object) {
                    Ok(n) => {
                        if let Some(m) = namespace_meta(&n, &shape) {
                            state.lock().namespace_modified(m);
                        }
                    }
                    Err(e) => tracing::warn!("kubernetes_metadata: unreadable namespace: {e}"),
                }
            },
        )
        .await;
    });
    Ok(Watches { stops })
}
