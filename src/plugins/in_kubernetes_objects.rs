//! `@type kubernetes_objects` (splunk's fluent-plugin-kubernetes-objects 1.2): `<pull>` sections
//! list a resource every `interval` and emit each object (plus `metadata.requestResourceVersion`)
//! tagged `kubernetes.<resource_name>`; `<watch>` sections emit each watch notification as
//! `{"type": "ADDED|MODIFIED|DELETED", "object": {...}}`, at the time it is received.
//!
//! Unlike the Ruby plugin, a watch re-lists on `410 Gone` and backs off when the API server
//! fails, and a re-list does not re-emit objects already emitted. With a persistent
//! `<storage>` (a path, or `@id` with `<system> root_dir`) a restart does not re-emit them
//! either; the default in-memory storage forgets them, as the Ruby plugin's does.

use std::time::Duration;

use serde::Deserialize;

use super::storage_local::{LocalStorage, StorageConfig};
use super::{Input, InputContext, PluginContext};
use crate::config_parser::types::Time;
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventStream, EventTime, Record, Value};
use crate::kubernetes::runner::{self, Item, Job, SavePolicy};
use crate::kubernetes::watch::{Seen, Target};
use crate::kubernetes::ClientSettings;

#[derive(Debug, Deserialize)]
struct ObjectsConfig {
    #[serde(default = "default_tag")]
    tag: String,
    #[serde(default = "default_api_version")]
    api_version: String,
    /// `api` or `apis`; implied by `api_version` (a group means `apis`), accepted for
    /// compatibility.
    #[serde(default = "default_api_endpoint")]
    #[allow(dead_code)]
    api_endpoint: String,
    #[serde(default)]
    pull: Vec<PullConfig>,
    #[serde(default)]
    watch: Vec<WatchConfig>,
    storage: Option<StorageConfig>,
}

fn default_tag() -> String {
    "kubernetes.*".into()
}
fn default_api_version() -> String {
    "v1".into()
}
fn default_api_endpoint() -> String {
    "api".into()
}
fn default_interval() -> Time {
    Time(900.0)
}

#[derive(Debug, Deserialize)]
struct PullConfig {
    resource_name: String,
    namespace: Option<String>,
    label_selector: Option<String>,
    field_selector: Option<String>,
    #[serde(default = "default_interval")]
    interval: Time,
}

#[derive(Debug, Deserialize)]
struct WatchConfig {
    resource_name: String,
    namespace: Option<String>,
    entity_name: Option<String>,
    label_selector: Option<String>,
    field_selector: Option<String>,
    /// Unused by the Ruby plugin's watch too.
    #[serde(default = "default_interval")]
    #[allow(dead_code)]
    interval: Time,
}

/// One `<pull>` or `<watch>`.
struct Section {
    tag: String,
    job: Job,
    /// Where its reported set is stored (watches only).
    storage_key: Option<String>,
    watch: bool,
}

pub struct KubernetesObjectsInput {
    settings: ClientSettings,
    sections: Vec<Section>,
    storage: LocalStorage,
}

/// `daemon_sets` (kubeclient's method name) → (`daemonsets`, `DaemonSet`).
fn resource_names(resource_name: &str) -> (String, String) {
    let plural = resource_name.replace('_', "").to_ascii_lowercase();
    let singular = if resource_name == "endpoints" {
        resource_name.to_string()
    } else if let Some(s) = resource_name.strip_suffix("ies") {
        format!("{s}y")
    } else if let Some(s) = resource_name.strip_suffix("sses") {
        format!("{s}ss")
    } else if let Some(s) = resource_name.strip_suffix('s') {
        s.to_string()
    } else {
        resource_name.to_string()
    };
    let kind = singular
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect();
    (plural, kind)
}

fn target(
    api_version: &str,
    resource_name: &str,
    namespace: &Option<String>,
    label_selector: &Option<String>,
    field_selector: Option<String>,
) -> Target {
    let (group, version) = match api_version.rsplit_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), api_version.to_string()),
    };
    let (plural, kind) = resource_names(resource_name);
    Target {
        group,
        version,
        kind,
        plural,
        namespace: namespace.clone().filter(|n| !n.is_empty()),
        label_selector: label_selector.clone().filter(|s| !s.is_empty()),
        field_selector: field_selector.filter(|s| !s.is_empty()),
        timeout_secs: None,
    }
}

/// The tag: `*` in `tag` replaced by the resource name.
fn expand_tag(tag: &str, resource_name: &str) -> String {
    tag.replacen('*', resource_name, 1)
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Input>, ConfigError> {
    let (cfg, settings): (ObjectsConfig, ClientSettings) =
        crate::kubernetes::configure(elem, ctx, "kubernetes_objects")?;
    super::check_section_type(elem, "storage", &["local"])?;
    if cfg.pull.is_empty() && cfg.watch.is_empty() {
        return Err(elem.error("At least one <pull> or <watch> is required, but found none."));
    }
    let mut sections = Vec::new();
    for p in &cfg.pull {
        sections.push(Section {
            tag: expand_tag(&cfg.tag, &p.resource_name),
            job: Job::Pull {
                target: target(
                    &cfg.api_version,
                    &p.resource_name,
                    &p.namespace,
                    &p.label_selector,
                    p.field_selector.clone(),
                ),
                interval: p.interval.as_duration().max(Duration::from_secs(1)),
                dedupe: false,
            },
            storage_key: None,
            watch: false,
        });
    }
    for w in &cfg.watch {
        // entity_name watches one object, as kubeclient's `watch_<resource>(name:)`.
        let field_selector = match (&w.entity_name, &w.field_selector) {
            (Some(n), Some(f)) => Some(format!("metadata.name={n},{f}")),
            (Some(n), None) => Some(format!("metadata.name={n}")),
            (None, f) => f.clone(),
        };
        let key = format!(
            "watch/{}/{}/{}",
            w.resource_name,
            w.namespace.as_deref().unwrap_or(""),
            w.entity_name.as_deref().unwrap_or("")
        );
        sections.push(Section {
            tag: expand_tag(&cfg.tag, &w.resource_name),
            job: Job::Watch(target(
                &cfg.api_version,
                &w.resource_name,
                &w.namespace,
                &w.label_selector,
                field_selector,
            )),
            storage_key: Some(key),
            watch: true,
        });
    }
    let storage = open_storage(elem, cfg.storage.as_ref(), ctx)?;
    Ok(Box::new(KubernetesObjectsInput {
        settings,
        sections,
        storage,
    }))
}

/// The plugin's `<storage>` (defaults: in memory unless a path or `@id` + root_dir is known).
pub(crate) fn open_storage(
    elem: &Element,
    cfg: Option<&StorageConfig>,
    ctx: &PluginContext,
) -> Result<LocalStorage, ConfigError> {
    let storage_elem = elem.child("storage");
    LocalStorage::configure(
        cfg,
        storage_elem,
        elem.get("@id"),
        ctx.root_dir.as_deref(),
        ctx.worker_id,
    )
    .map_err(|msg| match storage_elem {
        Some(s) => s.error(msg),
        None => elem.error(msg),
    })
}

/// Runs `jobs` until shutdown, keeping each job's reported set in `storage` under its key.
pub(crate) fn run_jobs(
    settings: &ClientSettings,
    jobs: Vec<(Job, Option<String>)>,
    storage: &mut LocalStorage,
    ctx: &InputContext,
    report: &(dyn Fn(usize, Item) + Sync),
) -> anyhow::Result<()> {
    let keys: Vec<Option<String>> = jobs.iter().map(|(_, k)| k.clone()).collect();
    let jobs = jobs
        .into_iter()
        .map(|(job, key)| {
            let seen = Seen::from_json(key.as_deref().and_then(|k| storage.get(k)));
            (job, seen)
        })
        .collect();
    let every = if storage.persistent {
        Duration::from_secs(1)
    } else {
        storage.autosave.unwrap_or(Duration::from_secs(10))
    };
    let do_save = storage.persistent || storage.autosave.is_some();
    let mut save = |i: usize, seen: &Seen| {
        if let Some(Some(k)) = keys.get(i) {
            storage.set(k, seen.to_json());
            if do_save {
                storage.save();
            }
        }
    };
    runner::run(
        settings,
        jobs,
        &ctx.shutdown,
        report,
        &mut save,
        SavePolicy { every },
    )
    .map_err(anyhow::Error::msg)?;
    if storage.save_at_shutdown || storage.persistent {
        storage.save();
    }
    Ok(())
}

impl Input for KubernetesObjectsInput {
    /// Where the API server is and the named files are checked here, not at configure time, so
    /// `--dry-run` works off the cluster.
    fn start(&mut self) -> anyhow::Result<()> {
        self.settings.validate().map_err(anyhow::Error::msg)
    }

    fn run(self: Box<Self>, ctx: InputContext) -> anyhow::Result<()> {
        let KubernetesObjectsInput {
            settings,
            sections,
            mut storage,
        } = *self;
        let jobs = sections
            .iter()
            .map(|s| (s.job.clone(), s.storage_key.clone()))
            .collect();
        let router = ctx.router.clone();
        let report = |i: usize, item: Item| {
            let Some(section) = sections.get(i) else {
                return;
            };
            let now = EventTime::now();
            match item {
                Item::Change(c) if section.watch => {
                    let mut r = Record::with_capacity(2);
                    r.insert("type", Value::str(c.kind.as_str()));
                    r.insert("object", crate::util::value_from_json(c.object));
                    router.emit(&section.tag, EventStream::one(now, r));
                }
                Item::Change(_) => {}
                Item::Listed(items, rv) => {
                    let mut es = EventStream::with_capacity(items.len());
                    for mut obj in items {
                        if let Some(meta) = obj.get_mut("metadata").and_then(|m| m.as_object_mut())
                        {
                            meta.insert(
                                "requestResourceVersion".into(),
                                rv.clone().map_or(serde_json::Value::Null, Into::into),
                            );
                        }
                        if let Value::Map(r) = crate::util::value_from_json(obj) {
                            es.push(now, r);
                        }
                    }
                    if !es.is_empty() {
                        router.emit(&section.tag, es);
                    }
                }
            }
        };
        run_jobs(&settings, jobs, &mut storage, &ctx, &report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_follow_kubeclient() {
        assert_eq!(resource_names("events"), ("events".into(), "Event".into()));
        assert_eq!(
            resource_names("daemon_sets"),
            ("daemonsets".into(), "DaemonSet".into())
        );
        assert_eq!(
            resource_names("network_policies"),
            ("networkpolicies".into(), "NetworkPolicy".into())
        );
        assert_eq!(
            resource_names("ingresses"),
            ("ingresses".into(), "Ingress".into())
        );
        assert_eq!(
            resource_names("endpoints"),
            ("endpoints".into(), "Endpoints".into())
        );
    }

    #[test]
    fn targets_and_tags() {
        let t = target("apps/v1", "deployments", &Some("ns".into()), &None, None);
        assert_eq!((t.group.as_str(), t.version.as_str()), ("apps", "v1"));
        assert_eq!(t.plural, "deployments");
        assert_eq!(t.namespace.as_deref(), Some("ns"));
        assert_eq!(expand_tag("kubernetes.*", "events"), "kubernetes.events");
        assert_eq!(expand_tag("k8s.*.watch", "pods"), "k8s.pods.watch");
        assert_eq!(expand_tag("fixed", "pods"), "fixed");
    }

    #[test]
    fn config_errors() {
        let ctx = PluginContext::for_tests();
        let e = create(
            &crate::test_util::directive(
                "<source>\n@type kubernetes_objects\nkubernetes_url http://127.0.0.1:1/api\n</source>",
            ),
            &ctx,
        )
        .err()
        .unwrap();
        assert!(e.message.contains("<pull> or <watch>"), "{}", e.message);
        let e = create(
            &crate::test_util::directive(
                "<source>\n@type kubernetes_objects\nkubernetes_url http://127.0.0.1:1/api\n<watch>\n</watch>\n</source>",
            ),
            &ctx,
        )
        .err()
        .unwrap();
        assert!(e.message.contains("resource_name"), "{}", e.message);
        assert!(create(
            &crate::test_util::directive(
                "<source>\n@type kubernetes_objects\nkubernetes_url http://127.0.0.1:1/api\n<watch>\nresource_name events\n</watch>\n<pull>\nresource_name pods\ninterval 1m\n</pull>\n</source>",
            ),
            &ctx,
        )
        .is_ok());
    }
}
