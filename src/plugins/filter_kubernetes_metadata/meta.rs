//! What the filter keeps of a pod or a namespace: the fields it adds, already shaped as the
//! plugin's hashes, so a cache hit costs a clone and no parsing.

use k8s_openapi::api::core::v1::{Namespace, Pod};

use crate::config_parser::types::RubyRegex;
use crate::event::{Record, Value};

/// Options that decide what is kept.
pub struct Shape {
    pub skip_pod_labels: bool,
    pub skip_namespace_labels: bool,
    pub skip_container_metadata: bool,
    pub include_ownerrefs: bool,
    pub annotation_match: Vec<RubyRegex>,
    /// `master_url` to add (None with `skip_master_url`).
    pub master_url: Option<String>,
}

pub struct ContainerMeta {
    pub name: String,
    pub image: Option<String>,
    pub image_id: String,
    pub container_id: String,
}

/// A pod: its part of the `kubernetes` hash (`namespace_name`, `pod_id`, `pod_name`,
/// `pod_ip`, `host`, `ownerrefs`, `labels`, `annotations`, `master_url`) and its containers.
pub struct PodMeta {
    pub uid: String,
    pub node: Option<String>,
    pub fields: Record,
    pub containers: Vec<ContainerMeta>,
}

/// A namespace: `namespace_id`, `namespace_labels`, `namespace_annotations`, and its creation
/// time (seconds), which decides whether a record of a missing pod is orphaned.
pub struct NsMeta {
    pub uid: String,
    pub name: String,
    pub created: Option<i64>,
    pub fields: Record,
}

fn string_map<'a>(m: impl Iterator<Item = (&'a String, &'a String)>) -> Record {
    m.map(|(k, v)| (k.as_bytes().to_vec(), Value::str(v.as_bytes())))
        .collect()
}

/// Annotations whose key matches one of the regexps, in regexp order as the plugin adds them.
fn match_annotations(
    shape: &Shape,
    annotations: Option<&std::collections::BTreeMap<String, String>>,
) -> Record {
    let mut out = Record::new();
    let Some(annotations) = annotations else {
        return out;
    };
    for re in &shape.annotation_match {
        for (k, v) in annotations {
            if re.is_match(k.as_bytes()) {
                out.insert(k.as_bytes(), Value::str(v.as_bytes()));
            }
        }
    }
    out
}

/// The container id without its runtime prefix (`containerd://`, `docker://`, `cri-o://`).
pub fn strip_runtime(id: &str) -> &str {
    match id.find("://") {
        Some(i)
            if i > 0
                && id[..i]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            &id[i + 3..]
        }
        _ => id,
    }
}

pub fn pod_meta(pod: &Pod, shape: &Shape) -> Option<PodMeta> {
    let md = &pod.metadata;
    let uid = md.uid.clone()?;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let mut containers = Vec::new();
    if let Some(statuses) = status.and_then(|s| s.container_statuses.as_ref()) {
        for cs in statuses {
            containers.push(ContainerMeta {
                name: cs.name.clone(),
                image: Some(cs.image.clone()),
                image_id: cs.image_id.clone(),
                container_id: strip_runtime(cs.container_id.as_deref().unwrap_or("")).to_string(),
            });
        }
    }
    let mut f = Record::with_capacity(10);
    let mut put = |k: &str, v: Option<&String>| {
        if let Some(v) = v {
            f.push_unchecked(k.as_bytes().to_vec(), Value::str(v.as_bytes()));
        }
    };
    put("namespace_name", md.namespace.as_ref());
    put("pod_id", Some(&uid));
    put("pod_name", md.name.as_ref());
    put("pod_ip", status.and_then(|s| s.pod_ip.as_ref()));
    let node = spec.and_then(|s| s.node_name.clone());
    put("host", node.as_ref());
    if shape.include_ownerrefs {
        let refs = md
            .owner_references
            .iter()
            .flatten()
            .map(|o| {
                let mut r = Record::with_capacity(2);
                r.push_unchecked(b"kind".to_vec(), Value::str(o.kind.as_bytes()));
                r.push_unchecked(b"name".to_vec(), Value::str(o.name.as_bytes()));
                Value::Map(r)
            })
            .collect();
        f.push_unchecked(b"ownerrefs".to_vec(), Value::Array(refs));
    }
    if !shape.skip_pod_labels {
        if let Some(labels) = md.labels.as_ref().filter(|l| !l.is_empty()) {
            f.push_unchecked(b"labels".to_vec(), Value::Map(string_map(labels.iter())));
        }
    }
    let annotations = match_annotations(shape, md.annotations.as_ref());
    if !annotations.is_empty() {
        f.push_unchecked(b"annotations".to_vec(), Value::Map(annotations));
    }
    if let Some(url) = &shape.master_url {
        f.push_unchecked(b"master_url".to_vec(), Value::str(url.as_bytes()));
    }
    Some(PodMeta {
        uid,
        node,
        fields: f,
        containers,
    })
}

pub fn namespace_meta(ns: &Namespace, shape: &Shape) -> Option<NsMeta> {
    let md = &ns.metadata;
    let uid = md.uid.clone()?;
    let mut f = Record::with_capacity(3);
    f.push_unchecked(b"namespace_id".to_vec(), Value::str(uid.as_bytes()));
    if !shape.skip_namespace_labels {
        if let Some(labels) = md.labels.as_ref().filter(|l| !l.is_empty()) {
            f.push_unchecked(
                b"namespace_labels".to_vec(),
                Value::Map(string_map(labels.iter())),
            );
        }
    }
    let annotations = match_annotations(shape, md.annotations.as_ref());
    if !annotations.is_empty() {
        f.push_unchecked(b"namespace_annotations".to_vec(), Value::Map(annotations));
    }
    Some(NsMeta {
        uid,
        name: md.name.clone().unwrap_or_default(),
        created: md.creation_timestamp.as_ref().map(|t| t.0.as_second()),
        fields: f,
    })
}
