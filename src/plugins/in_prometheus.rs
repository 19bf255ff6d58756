//! `@type prometheus` (fluent-plugin-prometheus): serves everything the prometheus filter,
//! output and monitor inputs register, in the Prometheus text format. ferrentd runs one
//! process, so `aggregated_metrics_path` serves the same page as `metrics_path`. The
//! listener also answers `/healthz` and `/readyz` for probes.

use std::net::TcpListener;
use std::sync::Arc;

use serde::Deserialize;

use super::{Input, InputContext, PluginContext};
use crate::config_parser::types::Time;
use crate::config_parser::{ConfigError, Element, Nested};
use crate::forward::tls::{self, ServerTlsSettings};
use crate::http_server::{self, Handler, Request, Response};
use crate::metrics::{exposition, health, prom};

#[derive(Debug, Deserialize, Default, PartialEq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Encoding {
    #[default]
    Identity,
    Gzip,
}

#[derive(Debug, Deserialize)]
struct TlsConf {
    #[serde(rename = "@arg", default)]
    protocol: String,
    #[serde(default = "tls_v12")]
    version: String,
    min_version: Option<String>,
    max_version: Option<String>,
    #[allow(dead_code)]
    ciphers: Option<String>,
    #[allow(dead_code)]
    #[serde(default)]
    insecure: bool,
    ca_path: Option<String>,
    cert_path: Option<String>,
    private_key_path: Option<String>,
    private_key_passphrase: Option<String>,
    #[serde(default)]
    client_cert_auth: bool,
    ca_cert_path: Option<String>,
    ca_private_key_path: Option<String>,
    generate_cert_common_name: Option<String>,
}

fn tls_v12() -> String {
    "TLSv1_2".into()
}

/// The deprecated `<ssl>` section.
#[derive(Debug, Deserialize)]
struct SslConf {
    #[serde(default)]
    enable: bool,
    certificate_path: Option<String>,
    private_key_path: Option<String>,
    ca_path: Option<String>,
    #[allow(dead_code)]
    extra_conf: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PrometheusConfig {
    #[serde(default = "default_bind")]
    bind: String,
    #[serde(default = "default_port")]
    port: i64,
    #[serde(default = "default_metrics_path")]
    metrics_path: String,
    #[serde(default = "default_aggregated_path")]
    aggregated_metrics_path: String,
    #[serde(default)]
    content_encoding: Encoding,
    #[allow(dead_code)]
    #[serde(default = "hour")]
    ignore_error_log_interval: Time,
    ssl: Option<SslConf>,
    transport: Option<TlsConf>,
    #[allow(dead_code)]
    labels: Option<Nested>,
}

fn default_bind() -> String {
    "0.0.0.0".into()
}
fn default_port() -> i64 {
    24231
}
fn default_metrics_path() -> String {
    "/metrics".into()
}
fn default_aggregated_path() -> String {
    "/aggregated_metrics".into()
}
fn hour() -> Time {
    Time(3600.0)
}

pub struct PrometheusInput {
    bind: String,
    port: u16,
    metrics_path: String,
    aggregated_path: String,
    encoding: Encoding,
    tls: Option<Arc<rustls::ServerConfig>>,
    listener: Option<TcpListener>,
}

fn build_tls(
    elem: &Element,
    cfg: &PrometheusConfig,
) -> Result<Option<Arc<rustls::ServerConfig>>, ConfigError> {
    let s = match (&cfg.transport, &cfg.ssl) {
        (Some(t), _) => {
            let te = elem.child("transport").unwrap_or(elem);
            if t.protocol != "tls" {
                return Ok(None);
            }
            if t.private_key_passphrase.is_some() {
                return Err(te.error(
                    "encrypted private keys are not supported: decrypt the key and drop the passphrase",
                ));
            }
            ServerTlsSettings {
                version: t.version.clone(),
                min_version: t.min_version.clone(),
                max_version: t.max_version.clone(),
                cert_path: t.cert_path.clone(),
                private_key_path: t.private_key_path.clone(),
                ca_path: t.ca_path.clone(),
                client_cert_auth: t.client_cert_auth,
                ca_cert_path: t.ca_cert_path.clone(),
                ca_private_key_path: t.ca_private_key_path.clone(),
                common_name: t.generate_cert_common_name.clone(),
                country: "US".into(),
                state: "CA".into(),
                locality: "Mountain View".into(),
                expiration_secs: 10.0 * 365.0 * 86400.0,
                ..Default::default()
            }
        }
        (None, Some(s)) if s.enable => {
            tracing::warn!("<ssl> is deprecated in prometheus input; use <transport tls>");
            ServerTlsSettings {
                version: tls_v12(),
                cert_path: s.certificate_path.clone(),
                private_key_path: s.private_key_path.clone(),
                ca_path: s.ca_path.clone(),
                country: "US".into(),
                state: "CA".into(),
                locality: "Mountain View".into(),
                expiration_secs: 10.0 * 365.0 * 86400.0,
                ..Default::default()
            }
        }
        _ => return Ok(None),
    };
    let at = elem
        .child("transport")
        .or_else(|| elem.child("ssl"))
        .unwrap_or(elem);
    tls::server_config(&s).map(Some).map_err(|e| at.error(e))
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Input>, ConfigError> {
    let cfg: PrometheusConfig = ctx.configure(elem, "prometheus")?;
    let port = cfg.port + ctx.worker_id as i64;
    let port = u16::try_from(port).map_err(|_| elem.error(format!("invalid port {port}")))?;
    for p in [&cfg.metrics_path, &cfg.aggregated_metrics_path] {
        if !p.starts_with('/') {
            return Err(elem.error(format!("path must start with '/': {p}")));
        }
    }
    let tls = build_tls(elem, &cfg)?;
    Ok(Box::new(PrometheusInput {
        bind: cfg.bind,
        port,
        metrics_path: cfg.metrics_path,
        aggregated_path: cfg.aggregated_metrics_path,
        encoding: cfg.content_encoding,
        tls,
        listener: None,
    }))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

/// Answers one request: the metrics page, probes, or 404.
fn respond(req: &Request, metrics_path: &str, aggregated: &str, enc: Encoding) -> Response {
    if req.path == metrics_path || req.path == aggregated {
        let body = prom::render();
        return match enc {
            Encoding::Identity => Response::new(200, exposition::CONTENT_TYPE, body),
            Encoding::Gzip => {
                let mut r = Response::new(200, exposition::CONTENT_TYPE, gzip(body.as_bytes()));
                r.headers.push(("Content-Encoding".into(), "gzip".into()));
                r
            }
        };
    }
    match health::respond(&req.path) {
        Some((code, body)) => Response::text(code, body),
        None => Response::text(404, "Not Found\n"),
    }
}

impl Input for PrometheusInput {
    fn start(&mut self) -> anyhow::Result<()> {
        self.listener = Some(http_server::listen("in_prometheus", &self.bind, self.port)?);
        tracing::debug!(
            "listening prometheus http server on http://{}:{}/{}",
            self.bind,
            self.port,
            self.metrics_path.trim_start_matches('/')
        );
        Ok(())
    }

    fn run(mut self: Box<Self>, ctx: InputContext) -> anyhow::Result<()> {
        let listener = match self.listener.take() {
            Some(l) => l,
            None => http_server::listen("in_prometheus", &self.bind, self.port)?,
        };
        let (mp, ap, enc) = (
            self.metrics_path.clone(),
            self.aggregated_path.clone(),
            self.encoding,
        );
        let handler: Handler = Arc::new(move |req: &Request| respond(req, &mp, &ap, enc));
        http_server::serve(
            "in_prometheus",
            listener,
            self.tls.clone(),
            &ctx.shutdown,
            handler,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(path: &str) -> Request {
        Request {
            method: "GET".into(),
            path: path.into(),
            query: vec![],
        }
    }

    #[test]
    fn routes() {
        let r = respond(
            &req("/metrics"),
            "/metrics",
            "/aggregated_metrics",
            Encoding::Identity,
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type, exposition::CONTENT_TYPE);
        assert_eq!(
            respond(
                &req("/nope"),
                "/metrics",
                "/aggregated_metrics",
                Encoding::Identity
            )
            .status,
            404
        );
        assert_eq!(
            respond(
                &req("/healthz"),
                "/metrics",
                "/aggregated_metrics",
                Encoding::Identity
            )
            .status,
            200
        );
        let g = respond(
            &req("/aggregated_metrics"),
            "/metrics",
            "/aggregated_metrics",
            Encoding::Gzip,
        );
        assert_eq!(g.headers[0].1, "gzip");
    }

    #[test]
    fn config_defaults_and_errors() {
        let ctx = PluginContext::for_tests();
        let e = crate::test_util::section("source", &[("@type", "prometheus")]);
        assert!(create(&e, &ctx).is_ok());
        let e = crate::test_util::section("source", &[("@type", "prometheus"), ("port", "99999")]);
        assert!(create(&e, &ctx).is_err());
    }
}
