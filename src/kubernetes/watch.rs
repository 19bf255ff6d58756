//! List+watch of one resource over `kube::runtime::watcher`, reporting each change once.
//!
//! The watcher resumes a dropped watch from the last resourceVersion it saw (bookmarks
//! included), re-lists when the server answers `410 Gone`, and is polled with kube's default
//! backoff (0.8 s doubling to 30 s, jittered) after every error. What it does not do, and this
//! module adds:
//! - a re-list replays every object; [`Seen`] (uid → resourceVersion) drops what was already
//!   reported, so a 410 or a restart with a stored [`Seen`] sends no duplicates;
//! - ADDED and MODIFIED are told apart by whether the uid was seen;
//! - errors are logged once per outage (a warning, then `recovered`), not once per retry.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::{watcher, WatchStreamExt};

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

impl ChangeKind {
    /// The watch event type as the API server names it.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "ADDED",
            ChangeKind::Modified => "MODIFIED",
            ChangeKind::Deleted => "DELETED",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Change {
    pub kind: ChangeKind,
    /// The object as JSON (`apiVersion` and `kind` filled in when the list left them out).
    pub object: serde_json::Value,
    /// True for objects replayed by a (re-)list, false for live watch notifications.
    pub from_list: bool,
}

/// The resource, scope and selectors of one watch.
#[derive(Clone, Debug)]
pub struct Target {
    /// `""` for the core group.
    pub group: String,
    pub version: String,
    pub kind: String,
    /// The plural resource name in the URL (`events`, `pods`).
    pub plural: String,
    pub namespace: Option<String>,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    /// Server-side watch timeout; the client gives up 5 s after it without data.
    pub timeout_secs: Option<u32>,
}

impl Target {
    /// A core/v1 resource such as `("Event", "events")`.
    pub fn core(kind: &str, plural: &str) -> Target {
        Target {
            group: String::new(),
            version: "v1".into(),
            kind: kind.into(),
            plural: plural.into(),
            namespace: None,
            label_selector: None,
            field_selector: None,
            timeout_secs: None,
        }
    }

    fn api_resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(&self.group, &self.version, &self.kind),
            &self.plural,
        )
    }

    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.plural)?;
        if let Some(ns) = &self.namespace {
            write!(f, " in namespace {ns}")?;
        }
        Ok(())
    }
}

/// What was reported: uid → resourceVersion. Kept across re-lists, and by plugins with a
/// `<storage>` across restarts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Seen {
    map: HashMap<String, String>,
    /// Changed since the last [`Seen::take_dirty`].
    dirty: bool,
}

impl Seen {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, uid: &str) -> Option<&str> {
        self.map.get(uid).map(String::as_str)
    }

    /// Reads what [`Seen::to_json`] wrote; anything else is an empty set.
    pub fn from_json(v: Option<&serde_json::Value>) -> Seen {
        let mut map = HashMap::new();
        if let Some(serde_json::Value::Object(m)) = v {
            for (k, v) in m {
                if let Some(rv) = v.as_str() {
                    map.insert(k.clone(), rv.to_string());
                }
            }
        }
        Seen { map, dirty: false }
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut keys: Vec<&String> = self.map.keys().collect();
        keys.sort();
        serde_json::Value::Object(
            keys.into_iter()
                .map(|k| (k.clone(), serde_json::Value::String(self.map[k].clone())))
                .collect(),
        )
    }

    /// True once after each change.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Records an added or modified object; `None` when exactly this version was reported.
    fn apply(&mut self, uid: &str, rv: &str) -> Option<ChangeKind> {
        match self.map.get(uid) {
            Some(old) if old == rv => None,
            Some(_) => {
                self.map.insert(uid.to_string(), rv.to_string());
                self.dirty = true;
                Some(ChangeKind::Modified)
            }
            None => {
                self.map.insert(uid.to_string(), rv.to_string());
                self.dirty = true;
                Some(ChangeKind::Added)
            }
        }
    }

    fn delete(&mut self, uid: &str) {
        if self.map.remove(uid).is_some() {
            self.dirty = true;
        }
    }

    /// A complete list (a periodic pull): the objects and versions not reported before, as
    /// changes; objects no longer listed are forgotten.
    pub fn observe_list(&mut self, items: Vec<serde_json::Value>) -> Vec<Change> {
        let mut listed = HashSet::new();
        let mut out = Vec::new();
        for obj in items {
            let uid = super::meta_str(&obj, "uid").unwrap_or_default().to_string();
            let rv = super::meta_str(&obj, "resourceVersion")
                .unwrap_or_default()
                .to_string();
            if uid.is_empty() {
                continue;
            }
            if let Some(kind) = self.apply(&uid, &rv) {
                out.push(Change {
                    kind,
                    object: obj,
                    from_list: true,
                });
            }
            listed.insert(uid);
        }
        self.keep_only(&listed);
        out
    }

    /// After a complete list: forget objects that are gone.
    fn keep_only(&mut self, listed: &HashSet<String>) {
        let before = self.map.len();
        self.map.retain(|k, _| listed.contains(k));
        if self.map.len() != before {
            self.dirty = true;
        }
    }
}

/// Outage logging: one warning when errors start, `recovered` when data flows again.
#[derive(Default)]
struct Health {
    failing: bool,
}

impl Health {
    fn error(&mut self, what: &Target, e: &watcher::Error) {
        let gone = matches!(e, watcher::Error::WatchError(s) if s.code == 410);
        if gone {
            // Routine on a busy cluster: the watcher re-lists and Seen drops the replays.
            tracing::info!(
                "kubernetes: watch of {what}: resource version expired (410 Gone), re-listing"
            );
        } else if self.failing {
            tracing::debug!("kubernetes: watch of {what} still failing: {e}");
        } else {
            self.failing = true;
            tracing::warn!(
                "kubernetes: watch of {what} failed, retrying with backoff: {}",
                describe(e)
            );
        }
    }

    fn ok(&mut self, what: &Target) {
        if self.failing {
            self.failing = false;
            tracing::info!("kubernetes: watch of {what} recovered");
        }
    }
}

/// The watcher's error with its causes, shortened (an HTML error page is quoted several times
/// over).
fn describe(e: &watcher::Error) -> String {
    let mut s = super::error_chain(e);
    if s.len() > 300 {
        let mut end = 300;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// Lists then watches `target` until `stop` resolves, calling `report` once per new object
/// version. `seen` is both the starting point and, on return, what was reported.
pub async fn run<F, S>(
    client: kube::Client,
    target: &Target,
    seen: &parking_lot::Mutex<Seen>,
    stop: S,
    mut report: F,
) where
    F: FnMut(Change),
    S: std::future::Future<Output = ()>,
{
    let ar = target.api_resource();
    let api: Api<DynamicObject> = match &target.namespace {
        Some(ns) => Api::namespaced_with(client, ns, &ar),
        None => Api::all_with(client, &ar),
    };
    let mut wc = watcher::Config::default();
    if let Some(l) = &target.label_selector {
        wc = wc.labels(l);
    }
    if let Some(f) = &target.field_selector {
        wc = wc.fields(f);
    }
    if let Some(t) = target.timeout_secs {
        wc = wc.timeout(t);
    }
    let api_version = target.api_version();
    let stream = watcher(api, wc).default_backoff();
    futures::pin_mut!(stream);
    futures::pin_mut!(stop);
    let mut health = Health::default();
    let mut listed: Option<HashSet<String>> = None;
    loop {
        let item = tokio::select! {
            _ = &mut stop => return,
            item = stream.next() => item,
        };
        let Some(item) = item else {
            // The watcher never ends on its own; do not spin if it did.
            tokio::time::sleep(Duration::from_secs(1)).await;
            return;
        };
        let event = match item {
            Ok(ev) => {
                health.ok(target);
                ev
            }
            Err(e) => {
                health.error(target, &e);
                continue;
            }
        };
        match event {
            watcher::Event::Init => listed = Some(HashSet::new()),
            watcher::Event::InitApply(obj) => {
                let Some((uid, rv, json)) = to_json(obj, &api_version, &target.kind) else {
                    continue;
                };
                if let Some(l) = listed.as_mut() {
                    l.insert(uid.clone());
                }
                let kind = seen.lock().apply(&uid, &rv);
                if let Some(kind) = kind {
                    report(Change {
                        kind,
                        object: json,
                        from_list: true,
                    });
                }
            }
            watcher::Event::InitDone => {
                if let Some(l) = listed.take() {
                    seen.lock().keep_only(&l);
                }
            }
            watcher::Event::Apply(obj) => {
                let Some((uid, rv, json)) = to_json(obj, &api_version, &target.kind) else {
                    continue;
                };
                let kind = seen.lock().apply(&uid, &rv);
                if let Some(kind) = kind {
                    report(Change {
                        kind,
                        object: json,
                        from_list: false,
                    });
                }
            }
            watcher::Event::Delete(obj) => {
                let Some((uid, _, json)) = to_json(obj, &api_version, &target.kind) else {
                    continue;
                };
                seen.lock().delete(&uid);
                report(Change {
                    kind: ChangeKind::Deleted,
                    object: json,
                    from_list: false,
                });
            }
        }
    }
}

/// One list call (for periodic pulls): the items and the list's resourceVersion.
pub async fn list(
    client: kube::Client,
    target: &Target,
) -> Result<(Vec<serde_json::Value>, Option<String>), String> {
    let ar = target.api_resource();
    let api: Api<DynamicObject> = match &target.namespace {
        Some(ns) => Api::namespaced_with(client, ns, &ar),
        None => Api::all_with(client, &ar),
    };
    let mut lp = kube::api::ListParams::default();
    if let Some(l) = &target.label_selector {
        lp = lp.labels(l);
    }
    if let Some(f) = &target.field_selector {
        lp = lp.fields(f);
    }
    let api_version = target.api_version();
    let mut items = Vec::new();
    let mut rv = None;
    let mut pages = 0;
    loop {
        let page = api
            .list(&lp.clone().limit(500))
            .await
            .map_err(|e| format!("list of {target} failed: {e}"))?;
        rv = page.metadata.resource_version.clone().or(rv);
        for obj in page.items {
            if let Some((_, _, json)) = to_json(obj, &api_version, &target.kind) {
                items.push(json);
            }
        }
        pages += 1;
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            // A server that keeps answering with a continue token must not loop forever.
            Some(c) if pages < 10_000 => lp.continue_token = Some(c),
            _ => break,
        }
    }
    Ok((items, rv))
}

/// The object as JSON with its uid and resourceVersion; `None` (and a warning) for an object
/// without a uid, which cannot be de-duplicated.
fn to_json(
    mut obj: DynamicObject,
    api_version: &str,
    kind: &str,
) -> Option<(String, String, serde_json::Value)> {
    if obj.types.is_none() {
        obj.types = Some(kube::api::TypeMeta {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
        });
    }
    let uid = obj.metadata.uid.clone().unwrap_or_default();
    let rv = obj.metadata.resource_version.clone().unwrap_or_default();
    if uid.is_empty() {
        tracing::warn!(
            "kubernetes: skipped a {kind} without metadata.uid (name {:?})",
            obj.metadata.name
        );
        return None;
    }
    match serde_json::to_value(&obj) {
        Ok(v) => Some((uid, rv, v)),
        Err(e) => {
            tracing::warn!("kubernetes: cannot encode a {kind}: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_tells_added_from_modified_and_drops_replays() {
        let mut s = Seen::default();
        assert_eq!(s.apply("a", "1"), Some(ChangeKind::Added));
        assert_eq!(s.apply("a", "1"), None);
        assert_eq!(s.apply("a", "2"), Some(ChangeKind::Modified));
        assert!(s.take_dirty());
        assert!(!s.take_dirty());
        s.apply("b", "3");
        s.keep_only(&["b".to_string()].into_iter().collect());
        assert_eq!(s.get("a"), None);
        assert_eq!(s.get("b"), Some("3"));
        let back = Seen::from_json(Some(&s.to_json()));
        assert_eq!(back.get("b"), Some("3"));
        assert_eq!(back.len(), 1);
        s.delete("b");
        assert!(s.is_empty());
    }

    #[test]
    fn seen_ignores_a_damaged_store() {
        assert!(Seen::from_json(Some(&serde_json::json!(["x"]))).is_empty());
        assert!(Seen::from_json(Some(&serde_json::json!({"u": 1}))).is_empty());
        assert!(Seen::from_json(None).is_empty());
    }
}
