//! The KubeArmor relay's gRPC interface (`feeder.LogService`, compiled from
//! proto/kubearmor.proto by build.rs), a channel to a relay, and the shaping of its messages
//! into records the way the KubeArmor OpenTelemetry receiver shapes them (Go's encoding/json of
//! the generated structs).

pub mod record;

use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// The generated messages, client and server of package `feeder`.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("feeder");
}

pub use pb::log_service_client::LogServiceClient;
pub use pb::log_service_server::{LogService, LogServiceServer};

/// The relay's default address, as the receiver's.
pub const DEFAULT_ENDPOINT: &str = "localhost:32767";

/// TLS settings for the connection to the relay.
#[derive(Clone, Debug, Default)]
pub struct Tls {
    /// PEM CA bundle the relay's certificate must chain to.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate and key (PEM) for mutual TLS.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// The name to check the relay's certificate against (default: the endpoint's host).
    pub server_name: Option<String>,
}

/// `host:port`, `:port` (Go's dialer reads it as the local host) or a full `http(s)://` URI ->
/// the URI tonic connects to.
pub fn endpoint_uri(endpoint: &str, tls: bool) -> String {
    let e = endpoint.trim();
    if e.starts_with("http://") || e.starts_with("https://") {
        return e.to_string();
    }
    let scheme = if tls { "https" } else { "http" };
    if e.starts_with(':') {
        format!("{scheme}://localhost{e}")
    } else {
        format!("{scheme}://{e}")
    }
}

/// Whether `endpoint` names a host to connect to (checked at configuration time).
pub fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let uri = endpoint_uri(endpoint, false);
    let u = uri
        .parse::<tonic::codegen::http::Uri>()
        .map_err(|e| format!("{endpoint:?} is not host:port or a URI: {e}"))?;
    match u.host() {
        Some(h) if !h.is_empty() => Ok(()),
        _ => Err(format!("{endpoint:?} has no host")),
    }
}

/// A lazily connecting channel: it (re)connects on use, so a relay that is down at start or
/// restarts later is only an RPC error to retry.
pub fn channel(endpoint: &str, tls: Option<&Tls>) -> anyhow::Result<Channel> {
    let uri = endpoint_uri(endpoint, tls.is_some());
    let mut ep = Endpoint::from_shared(uri.clone())
        .map_err(|e| anyhow::anyhow!("invalid endpoint {endpoint:?}: {e}"))?
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20))
        .keep_alive_while_idle(true);
    if let Some(t) = tls {
        let mut cfg = ClientTlsConfig::new();
        if let Some(ca) = &t.ca_pem {
            cfg = cfg.ca_certificate(Certificate::from_pem(ca));
        }
        if let Some((cert, key)) = &t.identity {
            cfg = cfg.identity(Identity::from_pem(cert, key));
        }
        if let Some(name) = &t.server_name {
            cfg = cfg.domain_name(name.clone());
        }
        ep = ep
            .tls_config(cfg)
            .map_err(|e| anyhow::anyhow!("TLS settings for {uri}: {e}"))?;
    }
    Ok(ep.connect_lazy())
}
