//! ferrentd: a Fluentd-compatible log processor. See `docs/architecture.md`.

pub mod buffer;
pub mod child_process;
pub mod config_parser;
pub mod engine;
pub mod event;
pub mod forward;
pub mod http_client;
pub mod http_server;
pub mod inspect;
pub mod json;
pub mod kubearmor;
pub mod kubernetes;
pub mod logging;
pub mod metrics;
pub mod migrate;
pub mod otlp;
pub mod plugins;
pub mod record_accessor;
pub mod router;
pub mod ruby;
pub mod server;
#[cfg(test)]
pub mod test_util;
pub mod timefmt;
pub mod timeparse;
pub mod util;
