//! TLS for the forward protocol with rustls (ring provider): the server side of `<transport tls>`
//! (certificate files, or a certificate generated at start, optionally signed by a given CA;
//! client certificate authentication) and out_forward's client side (CA files or the system
//! store, hostname verification, self-signed and insecure modes, client certificates).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS versions a Fluentd version setting allows. Fluentd pins both ends to `version` unless
/// `min_version`/`max_version` are given.
pub fn versions(
    version: &str,
    min: Option<&str>,
    max: Option<&str>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    fn rank(v: &str) -> Result<u8, String> {
        match v {
            "TLSv1_2" | "TLS1_2" => Ok(2),
            "TLSv1_3" | "TLS1_3" => Ok(3),
            "TLSv1" | "TLSv1_1" | "TLS1_1" | "TLS1" | "SSLv23" => Err(format!(
                "TLS version {v} is not supported (TLSv1_2 and TLSv1_3 are)"
            )),
            other => Err(format!("unknown TLS version {other}")),
        }
    }
    let (lo, hi) = match (min, max) {
        (None, None) => {
            let v = rank(version)?;
            (v, v)
        }
        (Some(lo), None) => (rank(lo)?, 3),
        (None, Some(hi)) => (2, rank(hi)?),
        (Some(lo), Some(hi)) => (rank(lo)?, rank(hi)?),
    };
    let mut out = Vec::new();
    if lo <= 2 && hi >= 2 {
        out.push(&rustls::version::TLS12);
    }
    if lo <= 3 && hi >= 3 {
        out.push(&rustls::version::TLS13);
    }
    if out.is_empty() {
        return Err("min_version is greater than max_version".into());
    }
    Ok(out)
}

pub fn load_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut &data[..]).collect();
    let certs = certs.map_err(|e| format!("invalid certificate in {path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("no certificate found in {path}"));
    }
    Ok(certs)
}

pub fn load_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    if data.windows(b"ENCRYPTED".len()).any(|w| w == b"ENCRYPTED") {
        return Err(format!(
            "{path}: encrypted private keys are not supported; decrypt it (openssl pkey)"
        ));
    }
    rustls_pemfile::private_key(&mut &data[..])
        .map_err(|e| format!("invalid private key in {path}: {e}"))?
        .ok_or_else(|| format!("no private key found in {path}"))
}

fn roots_from(paths: &[String]) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for p in paths {
        for c in load_certs(p)? {
            roots
                .add(c)
                .map_err(|e| format!("invalid CA certificate in {p}: {e}"))?;
        }
    }
    Ok(roots)
}

/// `<transport tls>` settings the server needs.
#[derive(Debug, Clone, Default)]
pub struct ServerTlsSettings {
    pub version: String,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
    pub cert_path: Option<String>,
    pub private_key_path: Option<String>,
    pub private_key_passphrase: Option<String>,
    pub ca_path: Option<String>,
    pub client_cert_auth: bool,
    pub ca_cert_path: Option<String>,
    pub ca_private_key_path: Option<String>,
    pub common_name: Option<String>,
    pub country: String,
    pub state: String,
    pub locality: String,
    pub expiration_secs: f64,
}

/// A certificate and key generated for `common_name`, signed by `ca` (cert PEM, key PEM) or
/// self-signed.
pub fn generate_cert(
    s: &ServerTlsSettings,
    ca: Option<(&str, &str)>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let cn = s.common_name.clone().unwrap_or_else(crate::util::hostname);
    let mut params = rcgen::CertificateParams::new(vec![cn.clone()]).map_err(|e| e.to_string())?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CountryName, s.country.as_str());
    dn.push(rcgen::DnType::StateOrProvinceName, s.state.as_str());
    dn.push(rcgen::DnType::LocalityName, s.locality.as_str());
    dn.push(rcgen::DnType::CommonName, cn.as_str());
    params.distinguished_name = dn;
    let now = std::time::SystemTime::now();
    params.not_before = (now - std::time::Duration::from_secs(3600)).into();
    params.not_after =
        (now + std::time::Duration::from_secs_f64(s.expiration_secs.clamp(1.0, 3.0e9))).into();
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = match ca {
        None => params.self_signed(&key).map_err(|e| e.to_string())?,
        Some((ca_pem, ca_key_pem)) => {
            let ca_key = rcgen::KeyPair::from_pem(ca_key_pem)
                .map_err(|e| format!("invalid CA private key: {e}"))?;
            let ca_params = rcgen::CertificateParams::from_ca_cert_pem(ca_pem)
                .map_err(|e| format!("invalid CA certificate: {e}"))?;
            let issuer = ca_params
                .self_signed(&ca_key)
                .map_err(|e| format!("invalid CA certificate: {e}"))?;
            params
                .signed_by(&key, &issuer, &ca_key)
                .map_err(|e| e.to_string())?
        }
    };
    let key_der = PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| e.to_string())?;
    Ok((vec![cert.der().clone()], key_der))
}

/// Builds the server configuration of `<transport tls>`.
pub fn server_config(s: &ServerTlsSettings) -> Result<Arc<rustls::ServerConfig>, String> {
    let versions = versions(
        &s.version,
        s.min_version.as_deref(),
        s.max_version.as_deref(),
    )?;
    let (certs, key) = match (&s.cert_path, &s.private_key_path) {
        (Some(c), Some(k)) => (load_certs(c)?, load_key(k)?),
        (Some(_), None) | (None, Some(_)) => {
            return Err("both cert_path and private_key_path are needed".into())
        }
        (None, None) => match (&s.ca_cert_path, &s.ca_private_key_path) {
            (Some(c), Some(k)) => {
                let cp = std::fs::read_to_string(c).map_err(|e| format!("cannot read {c}: {e}"))?;
                let kp = std::fs::read_to_string(k).map_err(|e| format!("cannot read {k}: {e}"))?;
                generate_cert(s, Some((&cp, &kp)))?
            }
            _ => generate_cert(s, None)?,
        },
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions)
        .map_err(|e| e.to_string())?;
    let builder = if s.client_cert_auth {
        let ca = s.ca_path.as_ref().ok_or("client_cert_auth needs ca_path")?;
        let roots = roots_from(std::slice::from_ref(ca))?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .map_err(|e| e.to_string())?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("invalid certificate/key pair: {e}"))?;
    Ok(Arc::new(cfg))
}

/// out_forward's TLS settings.
#[derive(Debug, Clone, Default)]
pub struct ClientTlsSettings {
    pub version: String,
    pub insecure: bool,
    pub allow_self_signed: bool,
    pub verify_hostname: bool,
    pub ca_paths: Vec<String>,
    pub client_cert_path: Option<String>,
    pub client_key_path: Option<String>,
}

/// Wraps the WebPKI verifier to apply Fluentd's relaxations: no checks at all in insecure mode,
/// no name check without `tls_verify_hostname`, and a self-signed leaf when allowed.
#[derive(Debug)]
struct Verifier {
    inner: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    insecure: bool,
    verify_hostname: bool,
    allow_self_signed: bool,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.insecure {
            return Ok(ServerCertVerified::assertion());
        }
        let Some(inner) = &self.inner else {
            return if self.allow_self_signed {
                Ok(ServerCertVerified::assertion())
            } else {
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer,
                ))
            };
        };
        match inner.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Ok(v) => Ok(v),
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                ..
            })) if !self.verify_hostname => Ok(ServerCertVerified::assertion()),
            Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer))
                if self.allow_self_signed && intermediates.is_empty() =>
            {
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Builds out_forward's client configuration.
pub fn client_config(s: &ClientTlsSettings) -> Result<Arc<rustls::ClientConfig>, String> {
    client_config_with_versions(s, None, None)
}

/// [`client_config`] with a TLS version range (`min_version`/`max_version`) instead of the
/// single `version`.
pub fn client_config_with_versions(
    s: &ClientTlsSettings,
    min: Option<&str>,
    max: Option<&str>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let versions = versions(&s.version, min, max)?;
    let provider = provider();
    let roots = if s.ca_paths.is_empty() {
        let mut roots = RootCertStore::empty();
        for c in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(c);
        }
        roots
    } else {
        roots_from(&s.ca_paths)?
    };
    let inner = if roots.is_empty() {
        None
    } else {
        Some(
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| e.to_string())?,
        )
    };
    let verifier = Arc::new(Verifier {
        inner,
        provider: provider.clone(),
        insecure: s.insecure,
        verify_hostname: s.verify_hostname && !s.insecure,
        allow_self_signed: s.allow_self_signed || s.insecure,
    });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let cfg = match (&s.client_cert_path, &s.client_key_path) {
        (Some(c), Some(k)) => builder
            .with_client_auth_cert(load_certs(c)?, load_key(k)?)
            .map_err(|e| format!("invalid client certificate/key: {e}"))?,
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("tls_client_cert_path and tls_client_private_key_path go together".into()),
    };
    Ok(Arc::new(cfg))
}

/// The name to present and verify for `host`.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string())
        .map_err(|e| format!("invalid TLS server name {host}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fluentd_version_pinning() {
        assert_eq!(versions("TLSv1_2", None, None).unwrap().len(), 1);
        assert_eq!(
            versions("TLSv1_2", Some("TLSv1_2"), Some("TLSv1_3"))
                .unwrap()
                .len(),
            2
        );
        assert!(versions("TLSv1_1", None, None).is_err());
    }

    #[test]
    fn generated_cert_builds_a_server_config() {
        let s = ServerTlsSettings {
            version: "TLSv1_2".into(),
            country: "US".into(),
            state: "CA".into(),
            locality: "Mountain View".into(),
            common_name: Some("localhost".into()),
            expiration_secs: 86400.0,
            ..Default::default()
        };
        assert!(server_config(&s).is_ok());
    }
}
