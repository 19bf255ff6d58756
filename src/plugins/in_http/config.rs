//! in_http's parameters.

use serde::Deserialize;

use crate::config_parser::types::{Size, Time};
use crate::config_parser::Nested;
use crate::plugins::in_tcp::{default_bind, half_second};

#[derive(Debug, Deserialize)]
pub(super) struct HttpConfig {
    #[serde(default = "default_port")]
    pub(super) port: i64,
    #[serde(default = "default_bind")]
    pub(super) bind: String,
    #[serde(default = "default_body_limit")]
    pub(super) body_size_limit: Size,
    #[serde(default = "ten_seconds")]
    pub(super) keepalive_timeout: Time,
    pub(super) backlog: Option<i64>,
    #[serde(default)]
    pub(super) add_http_headers: bool,
    #[serde(default)]
    pub(super) add_remote_addr: bool,
    #[serde(default = "half_second")]
    #[allow(dead_code)]
    pub(super) blocking_timeout: Time,
    pub(super) cors_allow_origins: Option<Vec<String>>,
    #[serde(default)]
    pub(super) cors_allow_credentials: bool,
    #[serde(default)]
    pub(super) respond_with_empty_img: bool,
    #[serde(default)]
    pub(super) use_204_response: bool,
    #[serde(default = "yes")]
    pub(super) dump_error_log: bool,
    #[serde(default)]
    pub(super) add_query_params: bool,
    #[allow(dead_code)]
    pub(super) parse: Option<Nested>,
}

fn default_port() -> i64 {
    9880
}
fn default_body_limit() -> Size {
    Size(32 << 20)
}
fn ten_seconds() -> Time {
    Time(10.0)
}
fn yes() -> bool {
    true
}

crate::parser_config! {
    /// `<parse>` of `@type in_http` (the default): only the time settings apply.
    pub struct InHttpParseConf {}
}
