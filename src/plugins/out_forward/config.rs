//! out_forward's parameters: the plugin section, `<server>` and `<security>`.

use serde::Deserialize;

use crate::config_parser::de::Nested;
use crate::config_parser::types::{Size, Time};

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
pub(super) enum TransportKind {
    #[default]
    Tcp,
    Tls,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
pub(super) enum HeartbeatType {
    #[default]
    Transport,
    Tcp,
    Udp,
    None,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
pub(super) enum Compress {
    #[default]
    Text,
    Gzip,
    Zstd,
}

#[derive(Debug, Deserialize)]
pub(super) struct ServerConf {
    pub(super) host: String,
    pub(super) name: Option<String>,
    #[serde(default = "default_port")]
    pub(super) port: i64,
    pub(super) shared_key: Option<String>,
    #[serde(default)]
    pub(super) username: String,
    #[serde(default)]
    pub(super) password: String,
    #[serde(default)]
    pub(super) standby: bool,
    #[serde(default = "default_weight")]
    pub(super) weight: i64,
}

#[derive(Debug, Deserialize)]
pub(super) struct SecurityConf {
    pub(super) self_hostname: String,
    pub(super) shared_key: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct ForwardOutputConfig {
    #[serde(default)]
    pub(super) transport: TransportKind,
    #[serde(default = "sixty")]
    pub(super) send_timeout: Time,
    pub(super) connect_timeout: Option<Time>,
    #[serde(default)]
    pub(super) heartbeat_type: HeartbeatType,
    #[serde(default = "one")]
    pub(super) heartbeat_interval: Time,
    #[serde(default = "ten")]
    pub(super) recover_wait: Time,
    #[serde(default = "sixty")]
    pub(super) hard_timeout: Time,
    #[serde(default = "default_phi")]
    pub(super) phi_threshold: i64,
    #[serde(default = "yes")]
    pub(super) phi_failure_detector: bool,
    #[serde(default)]
    pub(super) require_ack_response: bool,
    #[serde(default = "ack_timeout")]
    pub(super) ack_response_timeout: Time,
    #[serde(default = "fifty")]
    #[allow(dead_code)]
    pub(super) read_interval_msec: i64,
    #[serde(default = "read_length")]
    #[allow(dead_code)]
    pub(super) read_length: Size,
    pub(super) expire_dns_cache: Option<Time>,
    #[serde(default)]
    pub(super) dns_round_robin: bool,
    #[serde(default)]
    pub(super) ignore_network_errors_at_startup: bool,
    #[serde(default)]
    pub(super) verify_connection_at_startup: bool,
    #[serde(default)]
    pub(super) compress: Compress,
    #[serde(default)]
    pub(super) keepalive: bool,
    pub(super) keepalive_timeout: Option<Time>,
    #[serde(default)]
    pub(super) send_keepalive_packet: bool,
    #[serde(default = "tls_v12")]
    pub(super) tls_version: String,
    #[serde(default = "default_ciphers")]
    #[allow(dead_code)]
    pub(super) tls_ciphers: String,
    #[serde(default)]
    pub(super) tls_insecure_mode: bool,
    #[serde(default)]
    pub(super) tls_allow_self_signed_cert: bool,
    #[serde(default = "yes")]
    pub(super) tls_verify_hostname: bool,
    pub(super) tls_ca_cert_path: Option<Vec<String>>,
    pub(super) tls_cert_path: Option<Vec<String>>,
    pub(super) tls_client_cert_path: Option<String>,
    pub(super) tls_client_private_key_path: Option<String>,
    pub(super) tls_client_private_key_passphrase: Option<String>,
    pub(super) tls_cert_thumbprint: Option<String>,
    pub(super) tls_cert_logical_store_name: Option<String>,
    #[serde(default)]
    pub(super) tls_cert_use_enterprise_store: bool,
    #[serde(default)]
    pub(super) time_as_integer: bool,
    #[allow(dead_code)]
    pub(super) slow_flush_log_threshold: Option<f64>,
    #[allow(dead_code)]
    pub(super) flush_interval: Option<Time>,
    pub(super) security: Option<SecurityConf>,
    #[serde(default)]
    pub(super) server: Vec<ServerConf>,
    pub(super) host: Option<String>,
    pub(super) port: Option<String>,
    /// Turned into `<server>` sections by `static_services` before this struct is read.
    #[allow(dead_code)]
    pub(super) service_discovery: Option<Nested>,
    #[allow(dead_code)]
    pub(super) buffer: Option<Nested>,
    #[allow(dead_code)]
    pub(super) secondary: Option<Nested>,
}

fn yes() -> bool {
    true
}
fn default_port() -> i64 {
    24224
}
fn default_weight() -> i64 {
    60
}
fn one() -> Time {
    Time(1.0)
}
fn ten() -> Time {
    Time(10.0)
}
fn sixty() -> Time {
    Time(60.0)
}
fn ack_timeout() -> Time {
    Time(190.0)
}
fn default_phi() -> i64 {
    16
}
fn fifty() -> i64 {
    50
}
fn read_length() -> Size {
    Size(512)
}
fn tls_v12() -> String {
    "TLSv1_2".into()
}
fn default_ciphers() -> String {
    "ALL:!aNULL:!eNULL:!SSLv2".into()
}
