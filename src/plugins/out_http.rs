//! `@type http` (output, Fluentd core `out_http.rb`): each buffer chunk, formatted by `<format>`
//! (default json, one document per line; `json_array` makes it one JSON array), is sent as one
//! POST or PUT to `endpoint` (chunk placeholders). A status in `retryable_response_codes`
//! (default 503) is retried by the buffer; any other error status fails the chunk for good
//! (`error_response_as_unrecoverable`, the default) or is logged and dropped.

use serde::Deserialize;

use super::out_stdout::format_element;
use super::{Formatter, Output, PluginContext};
use crate::buffer::{BufferDefaults, BufferedOutput, Chunk, Placeholders, WriteError};
use crate::config_parser::de::Nested;
use crate::config_parser::types::OrderedHash;
use crate::config_parser::{ConfigError, Element};
use crate::event::EventStream;
use crate::http_client::{self, ClientOptions, HttpClient, Request, TlsOptions};

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
enum Method {
    #[default]
    Post,
    Put,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
enum VerifyMode {
    None,
    #[default]
    Peer,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
enum Compress {
    #[default]
    Text,
    Gzip,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
enum AuthMethod {
    #[default]
    Basic,
    AwsSigv4,
}

#[derive(Debug, Deserialize)]
struct AuthConf {
    #[serde(default)]
    method: AuthMethod,
    username: Option<String>,
    password: Option<String>,
    #[allow(dead_code)]
    aws_service: Option<String>,
    #[allow(dead_code)]
    aws_region: Option<String>,
    #[allow(dead_code)]
    aws_role_arn: Option<String>,
}

#[derive(Debug, Deserialize)]
struct HttpConf {
    endpoint: String,
    #[serde(default)]
    http_method: Method,
    proxy: Option<String>,
    content_type: Option<String>,
    #[serde(default)]
    json_array: bool,
    headers: Option<OrderedHash>,
    headers_from_placeholders: Option<OrderedHash>,
    open_timeout: Option<i64>,
    read_timeout: Option<i64>,
    #[allow(dead_code)]
    ssl_timeout: Option<i64>,
    #[serde(default)]
    #[allow(dead_code)]
    reuse_connections: bool,
    tls_ca_cert_path: Option<String>,
    tls_client_cert_path: Option<String>,
    tls_private_key_path: Option<String>,
    tls_private_key_passphrase: Option<String>,
    #[serde(default)]
    tls_verify_mode: VerifyMode,
    tls_version: Option<String>,
    #[allow(dead_code)]
    tls_ciphers: Option<String>,
    #[serde(default = "yes")]
    error_response_as_unrecoverable: bool,
    retryable_response_codes: Option<Vec<i64>>,
    #[serde(default)]
    compress: Compress,
    auth: Option<AuthConf>,
    #[allow(dead_code)]
    format: Option<Nested>,
    #[allow(dead_code)]
    buffer: Option<Nested>,
    #[allow(dead_code)]
    secondary: Option<Nested>,
}

fn yes() -> bool {
    true
}

pub struct HttpOutput {
    endpoint: String,
    method: &'static str,
    content_type: String,
    json_array: bool,
    headers: Vec<(String, String)>,
    headers_from_placeholders: Vec<(String, String)>,
    auth: Option<String>,
    retryable: Vec<i64>,
    error_unrecoverable: bool,
    gzip: bool,
    formatter: Box<dyn Formatter>,
    client: HttpClient,
    placeholders: Placeholders,
}

fn content_type_for(format: &str, json_array: bool) -> Result<&'static str, String> {
    Ok(match format {
        "json" if json_array => "application/json",
        "json" => "application/x-ndjson",
        "csv" => "text/csv",
        "tsv" | "ltsv" => "text/tab-separated-values",
        "msgpack" => "application/x-msgpack",
        "out_file" | "single_value" | "stdout" | "hash" => "text/plain",
        _ => {
            return Err(
                "can't determine Content-Type from formatter type. Set content_type parameter explicitly"
                    .into(),
            )
        }
    })
}

fn build(elem: &Element, ctx: &PluginContext) -> Result<HttpOutput, ConfigError> {
    let conf: HttpConf = ctx.configure(elem, "http")?;
    let fe = format_element(elem, "json");
    let ftype = fe.plugin_type().unwrap_or("json").to_string();
    let formatter = super::new_formatter(&fe, ctx)?;
    let retryable = match conf.retryable_response_codes {
        Some(c) => c,
        None => {
            tracing::warn!("Status code 503 is going to be removed from default `retryable_response_codes` from fluentd v2. Please add it by yourself if you wish");
            vec![503]
        }
    };
    if conf.json_array && ftype != "json" {
        return Err(elem.error("json_array option could be used with json formatter only"));
    }
    let content_type = match conf.content_type {
        Some(c) => c,
        None => content_type_for(&ftype, conf.json_array)
            .map_err(|m| elem.error(m))?
            .to_string(),
    };
    // Placeholders are checked per chunk; the rest of the URL must be valid now.
    if !conf.endpoint.contains("${") && !conf.endpoint.contains('%') {
        http_client::check_url(&conf.endpoint).map_err(|m| elem.error(m))?;
    } else if !conf.endpoint.starts_with("http://") && !conf.endpoint.starts_with("https://") {
        return Err(elem.error(format!(
            "endpoint '{}' must have HTTP/HTTPS scheme",
            conf.endpoint
        )));
    }
    let https = conf.endpoint.starts_with("https");
    if https {
        for (param, path) in [
            ("tls_ca_cert_path", conf.tls_ca_cert_path.as_deref()),
            ("tls_client_cert_path", conf.tls_client_cert_path.as_deref()),
            ("tls_private_key_path", conf.tls_private_key_path.as_deref()),
        ] {
            if let Some(p) = path {
                if !std::path::Path::new(p).is_file() {
                    return Err(elem.error(format!("{param} is wrong: {p}")));
                }
            }
        }
    }
    if conf.tls_private_key_passphrase.is_some() {
        return Err(elem.error(
            "tls_private_key_passphrase: encrypted keys are not supported; decrypt the key (openssl pkey)",
        ));
    }
    let auth = match &conf.auth {
        Some(a) if a.method == AuthMethod::AwsSigv4 => {
            return Err(elem.error("<auth> method aws_sigv4 is not supported by ferrentd"))
        }
        Some(a) => Some(http_client::basic_auth(
            a.username.as_deref().unwrap_or(""),
            a.password.as_deref().unwrap_or(""),
        )),
        None => None,
    };
    let secs = |v: Option<i64>, d: u64| {
        std::time::Duration::from_secs(v.map(|v| v.max(1) as u64).unwrap_or(d))
    };
    let client = HttpClient::new(&ClientOptions {
        connect_timeout: secs(conf.open_timeout, 60),
        timeout: secs(conf.read_timeout, 60) + secs(conf.open_timeout, 0),
        tls: TlsOptions {
            insecure: conf.tls_verify_mode == VerifyMode::None,
            verify_hostname: conf.tls_verify_mode == VerifyMode::Peer,
            ca_files: conf.tls_ca_cert_path.iter().cloned().collect(),
            client_cert: conf.tls_client_cert_path.clone(),
            client_key: conf.tls_private_key_path.clone(),
            min_version: conf
                .tls_version
                .clone()
                .filter(|v| v == "TLSv1_2" || v == "TLSv1_3"),
            max_version: None,
        },
        proxy: conf.proxy.clone(),
    })
    .map_err(|m| elem.error(m))?;
    Ok(HttpOutput {
        endpoint: conf.endpoint,
        method: match conf.http_method {
            Method::Post => "POST",
            Method::Put => "PUT",
        },
        content_type,
        json_array: conf.json_array,
        headers: conf.headers.map(|h| h.0).unwrap_or_default(),
        headers_from_placeholders: conf
            .headers_from_placeholders
            .map(|h| h.0)
            .unwrap_or_default(),
        auth,
        retryable,
        error_unrecoverable: conf.error_response_as_unrecoverable,
        gzip: conf.compress == Compress::Gzip,
        formatter,
        client,
        placeholders: Placeholders::default(),
    })
}

impl HttpOutput {
    fn body(&self, data: &[u8]) -> Vec<u8> {
        if self.json_array {
            // `"[#{chunk.read.chop}]"`: the last "," goes.
            let inner = data.strip_suffix(b",").unwrap_or(data);
            let mut b = Vec::with_capacity(inner.len() + 2);
            b.push(b'[');
            b.extend_from_slice(inner);
            b.push(b']');
            b
        } else {
            data.to_vec()
        }
    }
}

impl BufferedOutput for HttpOutput {
    fn formatted_to_msgpack(&self) -> bool {
        false
    }

    fn format(&self, tag: &str, es: &EventStream, out: &mut Vec<u8>) {
        for e in es.iter() {
            self.formatter.format(tag, e.time, &e.record, out);
            if self.json_array {
                out.push(b',');
            }
        }
    }

    fn configure_buffer(&mut self, p: &Placeholders, _as_secondary: bool) -> Result<(), String> {
        self.placeholders = p.clone();
        Ok(())
    }

    fn write(&self, chunk: &Chunk) -> Result<(), WriteError> {
        let id = chunk.unique_id_hex();
        let url = self
            .placeholders
            .expand(&self.endpoint, &chunk.metadata, &id);
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut set = |k: &str, v: String| {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(k));
            headers.push((k.to_string(), v));
        };
        for (k, v) in &self.headers {
            set(k, v.clone());
        }
        for (k, v) in &self.headers_from_placeholders {
            set(k, self.placeholders.expand(v, &chunk.metadata, &id));
        }
        set("Content-Type", self.content_type.clone());
        if let Some(a) = &self.auth {
            set("Authorization", a.clone());
        }
        tracing::debug!("{} data to {url} with chunk({id})", self.method);
        let res = self
            .client
            .send(Request {
                method: self.method,
                url: &url,
                headers,
                body: self.body(&chunk.data),
                gzip: self.gzip,
            })
            .map_err(|e| match e {
                http_client::HttpError::Invalid(m) => WriteError::Unrecoverable(m),
                other => WriteError::Retriable(format!("{} {url}: {other}", self.method)),
            })?;
        if res.is_success() {
            return Ok(());
        }
        let msg = format!(
            "{} {} {}",
            res.status,
            res.reason.trim_end(),
            res.body_text().trim_start()
        );
        if self.retryable.contains(&(res.status as i64)) {
            return Err(WriteError::Retriable(msg));
        }
        if self.error_unrecoverable {
            return Err(WriteError::Unrecoverable(msg));
        }
        tracing::error!(
            "got error response from '{} {url}' : {msg}",
            if self.method == "POST" { "Post" } else { "Put" }
        );
        Ok(())
    }
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Output>, ConfigError> {
    let out = build(elem, ctx)?;
    crate::buffer::build(elem, ctx, out, BufferDefaults::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(conf: &str) -> Result<HttpOutput, ConfigError> {
        let elem = crate::test_util::directive(&format!("<match x>\n@type http\n{conf}\n</match>"));
        build(&elem, &PluginContext::for_tests())
    }

    #[test]
    fn content_types() {
        let o = output("endpoint http://127.0.0.1:1/x").unwrap();
        assert_eq!(o.content_type, "application/x-ndjson");
        let o = output("endpoint http://127.0.0.1:1/x\njson_array true").unwrap();
        assert_eq!(o.content_type, "application/json");
        let o = output("endpoint http://127.0.0.1:1/x\n<format>\n@type csv\nfields a\n</format>")
            .unwrap();
        assert_eq!(o.content_type, "text/csv");
        assert!(output(
            "endpoint http://127.0.0.1:1/x\njson_array true\n<format>\n@type ltsv\n</format>"
        )
        .is_err());
    }

    #[test]
    fn json_array_body() {
        let o = output("endpoint http://127.0.0.1:1/x\njson_array true").unwrap();
        let mut es = EventStream::new();
        es.push(
            crate::event::EventTime::new(1, 0),
            crate::test_util::json_record(r#"{"a":1}"#),
        );
        es.push(
            crate::event::EventTime::new(1, 0),
            crate::test_util::json_record(r#"{"b":2}"#),
        );
        let mut data = Vec::new();
        o.format("t", &es, &mut data);
        assert_eq!(o.body(&data), b"[{\"a\":1}\n,{\"b\":2}\n]");
    }

    #[test]
    fn bad_endpoint_and_tls_files() {
        assert!(output("endpoint ftp://x").is_err());
        let e = output("endpoint https://x\ntls_ca_cert_path /nonexistent.pem")
            .err()
            .unwrap();
        assert!(e.to_string().contains("tls_ca_cert_path is wrong"), "{e}");
    }
}
