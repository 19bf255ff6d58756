//! The Kubernetes API client shared by the Kubernetes plugins (`kubernetes_objects`,
//! `kubernetes_events`, the `kubernetes_metadata` filter): where the API server is and how to
//! authenticate ([`ClientSettings`]), a [`kube::Client`] built from them, a small tokio runtime
//! the plugins run kube on (the engine's inputs and filters are threads), and a list+watch
//! helper ([`watch`]).

pub mod runner;
pub mod token;
pub mod watch;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Deserialize;

use crate::config_parser::{ConfigError, Element};
use crate::plugins::PluginContext;

/// Where a pod's service account is mounted.
pub const DEFAULT_SECRET_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Connection settings, as the Fluentd Kubernetes plugins name them. Every plugin that talks to
/// the API server accepts these parameters (see [`configure`]).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct ClientSettings {
    /// The API server, e.g. `https://10.0.0.1:443/api` (a trailing `/api` or `/apis`, as
    /// kubeclient wants it, is accepted and ignored).
    pub kubernetes_url: Option<String>,
    /// A kubeconfig file to read the cluster, user and CA from.
    pub kubeconfig: Option<String>,
    /// Bearer token; re-read when the file changes, so a rotated service-account token is used
    /// by the next request.
    pub bearer_token_file: Option<String>,
    /// CA bundle (PEM) the API server's certificate is checked against.
    pub ca_file: Option<String>,
    /// Client certificate and key (PEM) for mutual TLS.
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    /// `false` accepts any server certificate.
    pub verify_ssl: Option<bool>,
    /// The splunk plugin's name for `verify_ssl false`.
    pub insecure_ssl: Option<bool>,
    /// Where `token`, `ca.crt` and `namespace` are read from when they are not given.
    pub secret_dir: Option<String>,
}

/// The parameter names of [`ClientSettings`].
pub const CLIENT_KEYS: &[&str] = &[
    "kubernetes_url",
    "kubeconfig",
    "bearer_token_file",
    "ca_file",
    "client_cert",
    "client_key",
    "verify_ssl",
    "insecure_ssl",
    "secret_dir",
];

/// Deserializes a plugin's own parameters (`T`, which does not declare the client keys) and the
/// client settings from the same section, each warning only about what neither declares.
pub fn configure<T: serde::de::DeserializeOwned>(
    elem: &Element,
    ctx: &PluginContext,
    plugin: &str,
) -> Result<(T, ClientSettings), ConfigError> {
    let mut own = elem.clone();
    own.params
        .retain(|p| !CLIENT_KEYS.contains(&p.key.as_str()));
    let cfg: T = ctx.configure(&own, plugin)?;
    let mut client = elem.clone();
    client
        .params
        .retain(|p| CLIENT_KEYS.contains(&p.key.as_str()));
    client.elements.clear();
    let settings: ClientSettings = ctx.configure(&client, plugin)?;
    Ok((cfg, settings))
}

/// How the API server was found.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// `kubernetes_url`.
    Url(String),
    /// A kubeconfig file (`kubeconfig`, `$KUBECONFIG` or `~/.kube/config`).
    Kubeconfig(PathBuf),
    /// `KUBERNETES_SERVICE_HOST` / `KUBERNETES_SERVICE_PORT` with the service-account files.
    InCluster(String),
}

impl ClientSettings {
    fn secret_dir(&self) -> PathBuf {
        PathBuf::from(self.secret_dir.as_deref().unwrap_or(DEFAULT_SECRET_DIR))
    }

    fn accept_invalid_certs(&self) -> bool {
        self.verify_ssl == Some(false) || self.insecure_ssl == Some(true)
    }

    /// Decides where the API server is: `kubernetes_url`, then `kubeconfig`, then
    /// `$KUBECONFIG`, then the in-cluster environment, then `~/.kube/config`.
    pub fn source(&self) -> Result<Source, String> {
        if let Some(url) = self.kubernetes_url.as_deref().filter(|u| !u.is_empty()) {
            return Ok(Source::Url(base_url(url)));
        }
        if let Some(p) = self.kubeconfig.as_deref().filter(|p| !p.is_empty()) {
            return Ok(Source::Kubeconfig(PathBuf::from(p)));
        }
        if let Some(p) = std::env::var_os("KUBECONFIG").filter(|p| !p.is_empty()) {
            // Only the first file of a list is read.
            if let Some(first) = std::env::split_paths(&p).next() {
                return Ok(Source::Kubeconfig(first));
            }
        }
        if let Some(url) = in_cluster_url(
            std::env::var("KUBERNETES_SERVICE_HOST").ok().as_deref(),
            std::env::var("KUBERNETES_SERVICE_PORT").ok().as_deref(),
        ) {
            return Ok(Source::InCluster(url));
        }
        if let Some(home) = std::env::var_os("HOME") {
            let p = Path::new(&home).join(".kube/config");
            if p.is_file() {
                return Ok(Source::Kubeconfig(p));
            }
        }
        Err(
            "Invalid Kubernetes API endpoint: set kubernetes_url or kubeconfig, or run in a pod \
             (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT)"
                .into(),
        )
    }

    /// Builds the kube client configuration. Reads the kubeconfig and the CA file.
    pub async fn kube_config(&self) -> Result<kube::Config, String> {
        let source = self.source()?;
        let mut config = match &source {
            Source::Kubeconfig(path) => {
                let kc = kube::config::Kubeconfig::read_from(path)
                    .map_err(|e| format!("cannot read kubeconfig {}: {e}", path.display()))?;
                kube::Config::from_custom_kubeconfig(
                    kc,
                    &kube::config::KubeConfigOptions::default(),
                )
                .await
                .map_err(|e| format!("invalid kubeconfig {}: {e}", path.display()))?
            }
            Source::Url(url) | Source::InCluster(url) => {
                let uri: http::Uri = url
                    .parse()
                    .map_err(|e| format!("invalid kubernetes_url '{url}': {e}"))?;
                let mut c = kube::Config::new(uri);
                let dir = self.secret_dir();
                if let Ok(ns) = std::fs::read_to_string(dir.join("namespace")) {
                    if !ns.trim().is_empty() {
                        c.default_namespace = ns.trim().to_string();
                    }
                }
                c
            }
        };
        // Explicit settings win over what a kubeconfig says; the service-account files fill in
        // what is not given, as the Fluentd plugins do.
        let from_secret_dir = !matches!(source, Source::Kubeconfig(_));
        let dir = self.secret_dir();
        let token = match &self.bearer_token_file {
            Some(t) => Some(PathBuf::from(t)),
            None if from_secret_dir => Some(dir.join("token")).filter(|p| p.is_file()),
            None => None,
        };
        if let Some(t) = token {
            std::fs::metadata(&t)
                .map_err(|e| format!("cannot read bearer_token_file {}: {e}", t.display()))?;
            config.auth_info.token = None;
            config.auth_info.token_file = Some(t.to_string_lossy().into_owned());
        }
        let ca = match &self.ca_file {
            Some(c) => Some(PathBuf::from(c)),
            None if from_secret_dir => Some(dir.join("ca.crt")).filter(|p| p.is_file()),
            None => None,
        };
        if let Some(ca) = ca {
            config.root_cert = Some(read_pem_certs(&ca)?);
        }
        if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
            config.auth_info.client_certificate = Some(cert.clone());
            config.auth_info.client_certificate_data = None;
            config.auth_info.client_key = Some(key.clone());
            config.auth_info.client_key_data = None;
        } else if self.client_cert.is_some() || self.client_key.is_some() {
            return Err("client_cert and client_key must be given together".into());
        }
        if self.accept_invalid_certs() {
            config.accept_invalid_certs = true;
        }
        // A list that hangs is abandoned; watches are bounded by their own idle timeout.
        config.read_timeout = Some(READ_TIMEOUT);
        Ok(config)
    }

    /// Builds a client. Must run inside a tokio runtime (see [`runtime`]).
    pub async fn client(&self) -> Result<kube::Client, String> {
        build_client(self.kube_config().await?)
    }

    /// Checks what can be checked without the network (a config error at start-up).
    pub fn validate(&self) -> Result<(), String> {
        self.source()?;
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err("client_cert and client_key must be given together".into());
        }
        for (name, path) in [
            ("ca_file", &self.ca_file),
            ("client_cert", &self.client_cert),
            ("client_key", &self.client_key),
            ("bearer_token_file", &self.bearer_token_file),
        ] {
            if let Some(p) = path {
                if !Path::new(p).is_file() {
                    return Err(format!("{name} '{p}' does not exist"));
                }
            }
        }
        Ok(())
    }
}

/// Builds a client from a configuration. A token file (`bearer_token_file`, the
/// service-account token or a kubeconfig's `tokenFile`) is handled by [`token::TokenLayer`],
/// which re-reads it when it changes, instead of kube, which re-reads it once a minute.
pub fn build_client(mut config: kube::Config) -> Result<kube::Client, String> {
    let a = &mut config.auth_info;
    // kube's order: auth provider, basic auth, inline token, token file, exec.
    let uses_file = a.auth_provider.is_none()
        && !(a.username.is_some() && a.password.is_some())
        && a.token.is_none();
    let token = match a.token_file.take() {
        Some(path) if uses_file => {
            a.exec = None;
            Some(token::TokenFile::new(Path::new(&path))?)
        }
        other => {
            a.token_file = other;
            None
        }
    };
    let builder = kube::client::ClientBuilder::try_from(config)
        .map_err(|e| format!("cannot build Kubernetes client: {e}"))?;
    Ok(match token {
        Some(t) => builder.with_layer(&token::TokenLayer(Arc::new(t))).build(),
        None => builder.build(),
    })
}

/// Longer than a watch's server-side timeout plus margin, so only a dead server trips it.
const READ_TIMEOUT: Duration = Duration::from_secs(330);

/// `https://host:port/api` (kubeclient's form) → `https://host:port`.
fn base_url(url: &str) -> String {
    let mut u = url.trim().trim_end_matches('/');
    for suffix in ["/apis", "/api"] {
        if let Some(s) = u.strip_suffix(suffix) {
            u = s;
            break;
        }
    }
    u.trim_end_matches('/').to_string()
}

/// The in-cluster URL from the service environment (IPv6 addresses bracketed).
fn in_cluster_url(host: Option<&str>, port: Option<&str>) -> Option<String> {
    let host = host.filter(|h| !h.is_empty())?;
    let port = port.filter(|p| !p.is_empty())?;
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    Some(format!("https://{host}:{port}"))
}

fn read_pem_certs(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read ca_file {}: {e}", path.display()))?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut bytes.as_slice()).collect();
    let certs = certs.map_err(|e| format!("invalid PEM in ca_file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in ca_file {}", path.display()));
    }
    Ok(certs.into_iter().map(|c| c.as_ref().to_vec()).collect())
}

/// The runtime every Kubernetes plugin runs kube on: two worker threads, started on first use.
pub fn runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RT: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kubernetes")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the Kubernetes client runtime: {e}"))
    })
    .as_ref()
    .map_err(|e| e.clone())
}

/// An object's `metadata.<key>` as a string.
pub fn meta_str<'a>(obj: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(key)?.as_str()
}

/// An error with the causes its message does not already include (an HTML page from a proxy
/// shows up as a decode error several layers down).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        src = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeclient_urls_lose_their_api_suffix() {
        assert_eq!(base_url("https://10.0.0.1:443/api"), "https://10.0.0.1:443");
        assert_eq!(base_url("https://k:6443/apis/"), "https://k:6443");
        assert_eq!(base_url("http://127.0.0.1:8001"), "http://127.0.0.1:8001");
        assert_eq!(base_url("https://proxy/k8s/api"), "https://proxy/k8s");
    }

    #[test]
    fn in_cluster_url_brackets_ipv6() {
        assert_eq!(
            in_cluster_url(Some("10.96.0.1"), Some("443")).as_deref(),
            Some("https://10.96.0.1:443")
        );
        assert_eq!(
            in_cluster_url(Some("fd00::1"), Some("443")).as_deref(),
            Some("https://[fd00::1]:443")
        );
        assert_eq!(in_cluster_url(None, Some("443")), None);
        assert_eq!(in_cluster_url(Some("h"), Some("")), None);
    }

    #[test]
    fn client_keys_are_split_from_the_plugin_keys() {
        #[derive(Deserialize)]
        struct Own {
            tag: String,
        }
        let elem = crate::test_util::directive(
            "<source>\n@type x\ntag t\nkubernetes_url https://h:1/api\nverify_ssl false\n</source>",
        );
        let (own, client): (Own, ClientSettings) =
            configure(&elem, &PluginContext::for_tests(), "x").unwrap();
        assert_eq!(own.tag, "t");
        assert_eq!(client.kubernetes_url.as_deref(), Some("https://h:1/api"));
        assert!(client.accept_invalid_certs());
        assert_eq!(client.source(), Ok(Source::Url("https://h:1".into())));
    }

    #[test]
    fn client_cert_needs_its_key() {
        let s = ClientSettings {
            kubernetes_url: Some("https://h:1".into()),
            client_cert: Some("/nonexistent".into()),
            ..Default::default()
        };
        assert_eq!(
            s.validate(),
            Err("client_cert and client_key must be given together".into())
        );
    }
}
