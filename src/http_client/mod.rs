//! The one HTTP client stack of the HTTP sinks (loki, elasticsearch, http): a blocking client on
//! reqwest with rustls (ring), kept per output so connections are reused (keep-alive), with TLS
//! from a CA file, a client certificate and an `insecure` switch, proxies from `HTTP_PROXY` /
//! `HTTPS_PROXY` / `NO_PROXY`, and gzip request bodies. Outputs call it from their flush threads.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;

use crate::forward::tls::{self, ClientTlsSettings};

/// TLS settings as the sinks name them.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// Skip every server certificate check.
    pub insecure: bool,
    /// Check that the certificate names the host.
    pub verify_hostname: bool,
    /// PEM CA bundles; empty: the system store.
    pub ca_files: Vec<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    /// `TLSv1_2` / `TLSv1_3`; `None`: both.
    pub min_version: Option<String>,
    pub max_version: Option<String>,
}

/// How to build a client.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    /// Whole-request timeout (send and read the answer).
    pub timeout: Duration,
    pub tls: TlsOptions,
    /// An explicit proxy URL (`http://user:pass@host:port`); `None`: the environment's.
    pub proxy: Option<String>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(60),
            tls: TlsOptions {
                verify_hostname: true,
                ..TlsOptions::default()
            },
            proxy: None,
        }
    }
}

/// One request.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Compress the body and send `Content-Encoding: gzip`.
    pub gzip: bool,
}

/// What came back.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    /// The reason phrase of the status (`Bad Request`).
    pub reason: String,
    /// Response headers, names lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first header of this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why a request got no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    /// Could not connect (refused, unreachable, DNS, TLS handshake).
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("request timed out: {0}")]
    Timeout(String),
    /// A malformed request (bad URL, header) — retrying does not help.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The connection broke while sending or reading.
    #[error("{0}")]
    Io(String),
}

/// A client with its connection pool. Cheap to share between flush threads.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<reqwest::blocking::Client>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpClient")
    }
}

impl HttpClient {
    /// Builds a client; TLS files are read here, so a bad one is an error at start-up.
    pub fn new(opts: &ClientOptions) -> Result<HttpClient, String> {
        let tls_conf = tls::client_config_with_versions(
            &ClientTlsSettings {
                version: "TLSv1_2".into(),
                insecure: opts.tls.insecure,
                allow_self_signed: false,
                verify_hostname: opts.tls.verify_hostname,
                ca_paths: opts.tls.ca_files.clone(),
                client_cert_path: opts.tls.client_cert.clone(),
                client_key_path: opts.tls.client_key.clone(),
            },
            Some(opts.tls.min_version.as_deref().unwrap_or("TLSv1_2")),
            Some(opts.tls.max_version.as_deref().unwrap_or("TLSv1_3")),
        )?;
        // reqwest owns a runtime thread; building it inside another runtime would panic.
        let proxy = match &opts.proxy {
            Some(p) => Some(
                reqwest::Proxy::all(p.as_str()).map_err(|e| format!("invalid proxy '{p}': {e}"))?,
            ),
            None => None,
        };
        let connect_timeout = opts.connect_timeout;
        let timeout = opts.timeout;
        let build = move || {
            let mut b = reqwest::blocking::Client::builder();
            if let Some(p) = proxy {
                b = b.proxy(p);
            }
            b.use_preconfigured_tls((*tls_conf).clone())
                .connect_timeout(connect_timeout)
                .timeout(timeout)
                .pool_idle_timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(8)
                .tcp_nodelay(true)
                .user_agent(concat!("ferrentd/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| format!("cannot build the HTTP client: {e}"))
        };
        let client = if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::spawn(build)
                .join()
                .map_err(|_| "cannot build the HTTP client".to_string())??
        } else {
            build()?
        };
        Ok(HttpClient {
            inner: Arc::new(client),
        })
    }

    /// Sends one request and reads the whole answer.
    pub fn send(&self, req: Request<'_>) -> Result<Response, HttpError> {
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|e| HttpError::Invalid(format!("method {}: {e}", req.method)))?;
        let url = reqwest::Url::parse(req.url)
            .map_err(|e| HttpError::Invalid(format!("URL {}: {e}", req.url)))?;
        let mut b = self.inner.request(method, url);
        for (k, v) in &req.headers {
            b = b.header(k.as_str(), v.as_str());
        }
        let body = if req.gzip {
            b = b.header("Content-Encoding", "gzip");
            gzip(&req.body)
        } else {
            req.body
        };
        let resp = b.body(body).send().map_err(classify)?;
        let status = resp.status();
        let reason = status.canonical_reason().unwrap_or("").to_string();
        let headers = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let body = resp.bytes().map_err(classify)?.to_vec();
        Ok(Response {
            status: status.as_u16(),
            reason,
            headers,
            body,
        })
    }
}

fn classify(e: reqwest::Error) -> HttpError {
    let mut msg = e.to_string();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    if e.is_timeout() {
        HttpError::Timeout(msg)
    } else if e.is_connect() {
        HttpError::Connect(msg)
    } else if e.is_builder() {
        HttpError::Invalid(msg)
    } else {
        HttpError::Io(msg)
    }
}

/// gzip of `data` (default level), as Ruby's `Zlib::GzipWriter`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4 + 64),
        flate2::Compression::default(),
    );
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// `Authorization: Basic base64(user:password)`.
pub fn basic_auth(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Checks that `url` is an absolute http(s) URL; the error names what is wrong.
pub fn check_url(url: &str) -> Result<reqwest::Url, String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("invalid URL '{url}': {e}"))?;
    match u.scheme() {
        "http" | "https" => {}
        other => {
            return Err(format!(
                "URL '{url}' must have HTTP/HTTPS scheme, not '{other}'"
            ))
        }
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(format!("URL '{url}' has no host"));
    }
    Ok(u)
}

/// Fails when a TLS file cannot be read, with the parameter named (checked at configure time).
pub fn check_readable(param: &str, path: Option<&str>) -> Result<(), String> {
    if let Some(p) = path {
        std::fs::metadata(p).map_err(|e| format!("{param} file {p}: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read};
    use std::net::TcpListener;

    #[test]
    fn basic_auth_header() {
        assert_eq!(
            basic_auth("elastic", "s3cr3t-Pass!"),
            "Basic ZWxhc3RpYzpzM2NyM3QtUGFzcyE="
        );
    }

    #[test]
    fn url_checks() {
        assert!(check_url("http://127.0.0.1:3100").is_ok());
        assert!(check_url("ftp://x").is_err());
        assert!(check_url("not a url").is_err());
    }

    #[test]
    fn gzip_round_trip() {
        let z = gzip(b"hello hello hello");
        let mut d = flate2::read::GzDecoder::new(&z[..]);
        let mut s = String::new();
        d.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello hello hello");
    }

    #[test]
    fn posts_gzip_and_reuses_connection() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut bodies = Vec::new();
            for _ in 0..2 {
                let mut len = 0;
                let mut gz = false;
                loop {
                    let mut line = String::new();
                    r.read_line(&mut line).unwrap();
                    let l = line.to_ascii_lowercase();
                    if let Some(v) = l.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                    if l.starts_with("content-encoding: gzip") {
                        gz = true;
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                bodies.push((gz, body));
                let mut w = &s;
                w.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
            }
            bodies
        });
        let c = HttpClient::new(&ClientOptions::default()).unwrap();
        let url = format!("http://127.0.0.1:{port}/x");
        for gz in [true, false] {
            let r = c
                .send(Request {
                    method: "POST",
                    url: &url,
                    headers: vec![],
                    body: b"payload".to_vec(),
                    gzip: gz,
                })
                .unwrap();
            assert_eq!(r.status, 204);
        }
        let bodies = server.join().unwrap();
        assert!(bodies[0].0);
        assert_eq!(bodies[1], (false, b"payload".to_vec()));
    }
}
