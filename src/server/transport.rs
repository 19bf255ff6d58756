//! The server helper's `<transport PROTOCOL>` section (`tcp`, `udp`, `tls`) and its TLS
//! parameters, turned into a rustls server configuration by [`crate::forward::tls`].

use std::sync::Arc;

use serde::Deserialize;

use crate::config_parser::types::{Size, Time};
use crate::config_parser::{ConfigError, Element};
use crate::forward::tls::{self, ServerTlsSettings};

#[derive(Debug, Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Tcp,
    Udp,
    Tls,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum CertDigest {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

/// `<transport>`: every parameter of Fluentd's server helper, TLS ones included.
#[derive(Debug, Deserialize)]
pub struct TransportConf {
    #[serde(rename = "@arg", default)]
    pub protocol: String,
    pub receive_buffer_size: Option<Size>,
    #[serde(default)]
    pub linger_timeout: i64,
    #[serde(default = "tls_v12")]
    pub version: String,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
    /// OpenSSL cipher strings do not apply to rustls; accepted.
    pub ciphers: Option<String>,
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub ensure_fips: bool,
    pub ca_path: Option<String>,
    pub cert_path: Option<String>,
    pub private_key_path: Option<String>,
    pub private_key_passphrase: Option<String>,
    #[serde(default)]
    pub client_cert_auth: bool,
    pub ca_cert_path: Option<String>,
    pub ca_private_key_path: Option<String>,
    pub ca_private_key_passphrase: Option<String>,
    pub cert_verifier: Option<String>,
    pub generate_private_key_length: Option<i64>,
    #[serde(default = "country")]
    pub generate_cert_country: String,
    #[serde(default = "state")]
    pub generate_cert_state: String,
    #[serde(default = "locality")]
    pub generate_cert_locality: String,
    pub generate_cert_common_name: Option<String>,
    #[serde(default = "ten_years")]
    pub generate_cert_expiration: Time,
    pub generate_cert_digest: Option<CertDigest>,
}

fn tls_v12() -> String {
    "TLSv1_2".into()
}
fn country() -> String {
    "US".into()
}
fn state() -> String {
    "CA".into()
}
fn locality() -> String {
    "Mountain View".into()
}
fn ten_years() -> Time {
    Time(10.0 * 365.0 * 86400.0)
}

impl TransportConf {
    /// The section argument, or `default` when there is none.
    pub fn protocol(&self, default: Protocol, allowed: &[Protocol]) -> Result<Protocol, String> {
        let p = match self.protocol.trim() {
            "" => default,
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "tls" => Protocol::Tls,
            other => return Err(format!("valid options are tcp,udp,tls but got {other}")),
        };
        if !allowed.contains(&p) {
            return Err(format!("transport protocol {:?} is not supported here", p));
        }
        Ok(p)
    }
}

/// The rustls configuration of a `<transport tls>` section (`elem` is the plugin's section).
pub fn tls_config(
    elem: &Element,
    t: &TransportConf,
) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    let te = elem.child("transport").unwrap_or(elem);
    if t.ensure_fips {
        return Err(te.error("ensure_fips is not supported"));
    }
    if t.cert_verifier.is_some() {
        return Err(te.error("cert_verifier (a Ruby script) is not supported"));
    }
    if t.private_key_passphrase.is_some() || t.ca_private_key_passphrase.is_some() {
        return Err(te.error(
            "encrypted private keys are not supported: decrypt the key and drop the passphrase",
        ));
    }
    let s = ServerTlsSettings {
        version: t.version.clone(),
        min_version: t.min_version.clone(),
        max_version: t.max_version.clone(),
        cert_path: t.cert_path.clone(),
        private_key_path: t.private_key_path.clone(),
        private_key_passphrase: None,
        ca_path: t.ca_path.clone(),
        client_cert_auth: t.client_cert_auth,
        ca_cert_path: t.ca_cert_path.clone(),
        ca_private_key_path: t.ca_private_key_path.clone(),
        common_name: t.generate_cert_common_name.clone(),
        country: t.generate_cert_country.clone(),
        state: t.generate_cert_state.clone(),
        locality: t.generate_cert_locality.clone(),
        expiration_secs: t.generate_cert_expiration.0,
    };
    tls::server_config(&s).map_err(|e| te.error(e))
}
