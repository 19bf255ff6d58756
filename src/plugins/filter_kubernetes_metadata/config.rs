//! The plugin's parameters and their defaults.

use serde::Deserialize;

pub(super) const REGEX_VAR_LOG_PODS: &str = r"(var\.log\.pods)\.(?<namespace>[^_]+)_(?<pod_name>[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)_(?<pod_uuid>[a-z0-9-]*)\.(?<container_name>.+)\..*\.log$";
pub(super) const REGEX_VAR_LOG_CONTAINERS: &str = r"(var\.log\.containers)\.(?<pod_name>[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)_(?<namespace>[^_]+)_(?<container_name>.+)-(?<docker_id>[a-z0-9]{64})\.log$";

pub(super) fn default_regexp() -> String {
    format!("({REGEX_VAR_LOG_PODS}|{REGEX_VAR_LOG_CONTAINERS})")
}
pub(super) fn yes() -> bool {
    true
}
pub(super) fn default_api_version() -> String {
    "v1".into()
}
pub(super) fn default_open_timeout() -> i64 {
    3
}
pub(super) fn default_read_timeout() -> i64 {
    10
}
pub(super) fn default_cache_size() -> i64 {
    1000
}
pub(super) fn default_cache_ttl() -> i64 {
    3600
}
pub(super) fn default_one() -> i64 {
    1
}
pub(super) fn default_two() -> i64 {
    2
}
pub(super) fn default_ten() -> i64 {
    10
}
pub(super) fn default_stats_interval() -> i64 {
    30
}
pub(super) fn default_orphaned_name() -> String {
    ".orphaned".into()
}
pub(super) fn default_orphaned_id() -> String {
    "orphaned".into()
}

/// Every parameter of the plugin (v3.8) but the client ones (`kubernetes_url`, `ca_file`,
/// `client_cert`, `client_key`, `verify_ssl`, `bearer_token_file`, `secret_dir`), which are
/// [`crate::kubernetes::ClientSettings`]. The parameters removed in v3.0 (`de_dot`,
/// `de_dot_separator`, `de_slash`, `de_slash_separator`, `use_journal`,
/// `container_name_to_kubernetes_regexp`) are not declared, so they get Fluentd's
/// "parameter ... is not used." warning, as with the plugin.
#[derive(Deserialize, Clone)]
pub struct KubernetesMetadataConf {
    #[serde(default = "default_cache_size")]
    pub cache_size: i64,
    /// Seconds; below 0: no TTL.
    #[serde(default = "default_cache_ttl")]
    pub cache_ttl: i64,
    /// Declared as an integer (default `true`) by the plugin; nil is never cached here anyway.
    #[serde(default)]
    pub ignore_nil: Option<i64>,
    #[serde(default = "yes")]
    pub watch: bool,
    #[serde(rename = "apiVersion", default = "default_api_version")]
    pub api_version: String,
    #[serde(default = "default_open_timeout")]
    pub open_timeout: i64,
    #[serde(default = "default_read_timeout")]
    pub read_timeout: i64,
    #[serde(default = "default_regexp")]
    pub tag_to_kubernetes_name_regexp: String,
    #[serde(default)]
    pub annotation_match: Vec<String>,
    #[serde(default = "default_stats_interval")]
    pub stats_interval: i64,
    #[serde(default = "yes")]
    pub allow_orphans: bool,
    #[serde(default = "default_orphaned_name")]
    pub orphaned_namespace_name: String,
    #[serde(default = "default_orphaned_id")]
    pub orphaned_namespace_id: String,
    #[serde(default = "yes")]
    pub lookup_from_k8s_field: bool,
    #[serde(default)]
    pub ssl_partial_chain: bool,
    #[serde(default)]
    pub skip_labels: bool,
    #[serde(default)]
    pub skip_pod_labels: bool,
    #[serde(default)]
    pub skip_namespace_labels: bool,
    #[serde(default)]
    pub skip_container_metadata: bool,
    #[serde(default)]
    pub skip_master_url: bool,
    #[serde(default)]
    pub skip_namespace_metadata: bool,
    #[serde(default)]
    pub include_ownerrefs_metadata: bool,
    /// The plugin's test hook (a Ruby class); accepted and ignored.
    pub test_api_adapter: Option<String>,
    #[serde(default = "default_one")]
    pub watch_retry_interval: i64,
    #[serde(default = "default_two")]
    pub watch_retry_exponential_backoff_base: i64,
    #[serde(default = "default_ten")]
    pub watch_retry_max_times: i64,
}
