//! `@type elasticsearch` (fluent-plugin-elasticsearch 5.x), `@type opensearch` (the same core
//! parameters, never a `_type`) and `@type elasticsearch_data_stream`. Each buffer chunk becomes
//! one `_bulk` request per target index, with the NDJSON body the Ruby plugin sends
//! (`bulk.rs`); the per-item results are handled as its error handler does (`response.rs`),
//! except that items answered 429/5xx are retried alone: the chunk is retried by the buffer and
//! the items that already succeeded, or went to `@ERROR`, are not sent again.

mod bulk;
mod response;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use parking_lot::Mutex;
use serde::Deserialize;

use super::{Output, PluginContext};
use crate::buffer::{BufferDefaults, BufferedOutput, Chunk, Placeholders, WriteError};
use crate::config_parser::de::Nested;
use crate::config_parser::types::{OrderedHash, Size, Time};
use crate::config_parser::{ConfigError, Element};
use crate::http_client::{self, ClientOptions, HttpClient, Request, TlsOptions};
use crate::record_accessor::RecordAccessor;
use crate::router::ErrorSink;
use crate::timeparse::{TimeParser, TimeType};

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
enum CompressionLevel {
    #[default]
    NoCompression,
    BestSpeed,
    BestCompression,
    DefaultCompression,
}

#[derive(Debug, Deserialize)]
struct EsConfig {
    #[serde(default = "localhost")]
    host: String,
    #[serde(default = "default_port")]
    port: i64,
    user: Option<String>,
    password: Option<String>,
    cloud_id: Option<String>,
    cloud_auth: Option<String>,
    path: Option<String>,
    #[serde(default = "http")]
    scheme: String,
    hosts: Option<String>,
    target_index_key: Option<String>,
    target_type_key: Option<String>,
    time_key_format: Option<String>,
    #[serde(default = "nine")]
    time_precision: i64,
    #[serde(default)]
    include_timestamp: bool,
    #[serde(default)]
    logstash_format: bool,
    #[serde(default = "logstash")]
    logstash_prefix: String,
    #[serde(default = "dash")]
    logstash_prefix_separator: String,
    #[serde(default = "dateformat")]
    logstash_dateformat: String,
    #[serde(default = "yes")]
    utc_index: bool,
    #[serde(default = "fluentd")]
    type_name: String,
    #[serde(default)]
    suppress_type_name: bool,
    #[serde(default = "fluentd")]
    index_name: String,
    id_key: Option<String>,
    #[serde(default = "index_op")]
    write_operation: String,
    parent_key: Option<String>,
    routing_key: Option<String>,
    #[serde(default = "five")]
    request_timeout: Time,
    #[serde(default = "yes")]
    #[allow(dead_code)]
    reload_connections: bool,
    #[serde(default)]
    #[allow(dead_code)]
    reload_on_failure: bool,
    #[allow(dead_code)]
    retry_tag: Option<String>,
    #[allow(dead_code)]
    resurrect_after: Option<Time>,
    time_key: Option<String>,
    #[serde(default)]
    time_key_exclude_timestamp: bool,
    #[serde(default = "yes")]
    ssl_verify: bool,
    client_key: Option<String>,
    client_cert: Option<String>,
    client_key_pass: Option<String>,
    ca_file: Option<String>,
    ssl_version: Option<String>,
    ssl_min_version: Option<String>,
    ssl_max_version: Option<String>,
    remove_keys: Option<String>,
    #[serde(default)]
    remove_keys_on_update: String,
    remove_keys_on_update_key: Option<String>,
    #[serde(default)]
    flatten_hashes: bool,
    #[serde(default = "underscore")]
    flatten_hashes_separator: String,
    template_name: Option<String>,
    template_file: Option<String>,
    #[allow(dead_code)]
    templates: Option<String>,
    #[serde(default)]
    include_tag_key: bool,
    #[serde(default = "tag")]
    tag_key: String,
    #[serde(default = "time_parse_error_tag")]
    time_parse_error_tag: String,
    #[serde(default)]
    #[allow(dead_code)]
    reconnect_on_error: bool,
    pipeline: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    with_transporter_log: bool,
    #[serde(default)]
    emit_error_for_missing_id: bool,
    #[allow(dead_code)]
    content_type: Option<String>,
    #[serde(default)]
    include_index_in_url: bool,
    #[allow(dead_code)]
    http_backend: Option<String>,
    #[allow(dead_code)]
    http_backend_excon_nonblock: Option<bool>,
    #[allow(dead_code)]
    validate_client_version: Option<bool>,
    #[allow(dead_code)]
    prefer_oj_serializer: Option<bool>,
    unrecoverable_error_types: Option<Vec<String>>,
    #[serde(default = "yes")]
    verify_es_version_at_startup: bool,
    #[serde(default = "default_version")]
    default_elasticsearch_version: i64,
    #[serde(default = "fifteen")]
    max_retry_get_es_version: i64,
    #[allow(dead_code)]
    fail_on_detecting_es_version_retry_exceed: Option<bool>,
    #[serde(default)]
    log_es_400_reason: bool,
    #[serde(default)]
    custom_headers: OrderedHash,
    api_key: Option<String>,
    #[serde(default)]
    suppress_doc_wrap: bool,
    #[allow(dead_code)]
    ignore_exceptions: Option<Vec<String>>,
    #[allow(dead_code)]
    exception_backup: Option<bool>,
    #[serde(default = "minus_one")]
    bulk_message_request_threshold: Size,
    #[serde(default)]
    compression_level: CompressionLevel,
    #[serde(default)]
    enable_ilm: bool,
    #[allow(dead_code)]
    ilm_policy_id: Option<String>,
    #[allow(dead_code)]
    use_legacy_template: Option<bool>,
    #[allow(dead_code)]
    catch_transport_exception_on_retry: Option<bool>,
    #[allow(dead_code)]
    sniffer_class_name: Option<String>,
    #[allow(dead_code)]
    selector_class_name: Option<String>,
    #[allow(dead_code)]
    reload_after: Option<i64>,
    // elasticsearch_data_stream
    data_stream_name: Option<String>,
    #[allow(dead_code)]
    data_stream_template_name: Option<String>,
    #[allow(dead_code)]
    data_stream_ilm_name: Option<String>,
    #[allow(dead_code)]
    data_stream_ilm_policy: Option<String>,
    #[allow(dead_code)]
    data_stream_ilm_policy_overwrite: Option<bool>,
    #[allow(dead_code)]
    data_stream_template_use_index_patterns: Option<bool>,
    #[allow(dead_code)]
    metadata: Option<Nested>,
    #[allow(dead_code)]
    buffer: Option<Nested>,
    #[allow(dead_code)]
    secondary: Option<Nested>,
}

fn localhost() -> String {
    "localhost".into()
}
fn default_port() -> i64 {
    9200
}
fn http() -> String {
    "http".into()
}
fn nine() -> i64 {
    9
}
fn logstash() -> String {
    "logstash".into()
}
fn dash() -> String {
    "-".into()
}
fn dateformat() -> String {
    "%Y.%m.%d".into()
}
fn yes() -> bool {
    true
}
fn fluentd() -> String {
    "fluentd".into()
}
fn index_op() -> String {
    "index".into()
}
fn five() -> Time {
    Time(5.0)
}
fn underscore() -> String {
    "_".into()
}
fn tag() -> String {
    "tag".into()
}
fn time_parse_error_tag() -> String {
    "Fluent::ElasticsearchOutput::TimeParser.error".into()
}
fn default_version() -> i64 {
    5
}
fn fifteen() -> i64 {
    15
}
fn minus_one() -> Size {
    Size(-1)
}

/// Which plugin this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Elasticsearch,
    OpenSearch,
    DataStream,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Index,
    Create,
    Update,
    Upsert,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Index => "index",
            Op::Create => "create",
            Op::Update | Op::Upsert => "update",
        }
    }
}

/// One server of `host`/`hosts`.
#[derive(Clone, Debug, PartialEq)]
struct Endpoint {
    /// `scheme://host:port/path` without a trailing slash.
    base: String,
    /// Basic auth from the URL or `user`/`password`.
    auth: Option<(String, String)>,
}

/// What `process_message` needs, fixed at configure time.
pub struct Settings {
    pub flavor: Flavor,
    pub op: Op,
    pub logstash_format: bool,
    pub include_timestamp: bool,
    pub logstash_prefix: String,
    pub logstash_prefix_separator: String,
    pub logstash_dateformat: String,
    pub utc_index: bool,
    pub index_name: String,
    pub type_name: Option<String>,
    pub suppress_type_name: bool,
    pub target_index_key: Option<Vec<String>>,
    pub target_type_key: Option<Vec<String>>,
    pub time_key: Option<String>,
    pub time_key_exclude_timestamp: bool,
    pub time_key_format: Option<String>,
    pub time_precision: usize,
    pub time_parser: TimeParser,
    pub time_parse_error_tag: String,
    pub include_tag_key: bool,
    pub tag_key: String,
    pub id_key: Option<RecordAccessor>,
    pub parent_key: Option<RecordAccessor>,
    pub routing_key: Option<RecordAccessor>,
    pub remove_keys: Vec<String>,
    pub remove_keys_on_update: Vec<String>,
    pub remove_keys_on_update_key: Option<String>,
    pub suppress_doc_wrap: bool,
    pub flatten_hashes: bool,
    pub flatten_hashes_separator: String,
    pub pipeline: Option<String>,
    pub include_index_in_url: bool,
    pub emit_error_for_missing_id: bool,
    pub data_stream_name: Option<String>,
}

pub struct EsOutput {
    s: Settings,
    endpoints: Vec<Endpoint>,
    next_endpoint: AtomicUsize,
    client: HttpClient,
    headers: Vec<(String, String)>,
    gzip: bool,
    verify_version: bool,
    default_version: i64,
    max_version_probes: i64,
    /// The server's major version once known (`GET /`), else -1.
    major: AtomicI64,
    log_400_reason: bool,
    unrecoverable: Vec<String>,
    bulk_threshold: i64,
    errors: ErrorSink,
    placeholders: Placeholders,
    /// Per chunk being retried: the record positions already settled (indexed, duplicate,
    /// sent to `@ERROR`, dropped), so a retry resends only the failed items.
    progress: Mutex<HashMap<[u8; 16], HashSet<usize>>>,
    pub stats: response::Stats,
}

fn timeout(t: Time) -> Duration {
    t.as_duration().max(Duration::from_millis(100))
}

fn parse_endpoints(conf: &EsConfig) -> Result<Vec<Endpoint>, String> {
    let user_auth = conf
        .user
        .as_ref()
        .map(|u| (u.clone(), conf.password.clone().unwrap_or_default()));
    let path = conf
        .path
        .as_deref()
        .map(|p| p.trim_end_matches('/').to_string())
        .map(|p| {
            if p.is_empty() || p.starts_with('/') {
                p
            } else {
                format!("/{p}")
            }
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    match &conf.hosts {
        Some(hosts) => {
            for h in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
                let legacy = !h.contains("://");
                if legacy {
                    let (host, port) = match h.rsplit_once(':') {
                        Some((host, p)) if p.chars().all(|c| c.is_ascii_digit()) => {
                            (host.to_string(), p.to_string())
                        }
                        _ => (h.to_string(), conf.port.to_string()),
                    };
                    let base = format!("{}://{}:{}{}", conf.scheme, bracket(&host), port, path);
                    http_client::check_url(&base)?;
                    out.push(Endpoint {
                        base,
                        auth: user_auth.clone(),
                    });
                } else {
                    let u = http_client::check_url(h)?;
                    let auth = if !u.username().is_empty() {
                        let dec = |s: &str| percent_decode(s);
                        Some((dec(u.username()), dec(u.password().unwrap_or(""))))
                    } else {
                        user_auth.clone()
                    };
                    let upath = u.path().trim_end_matches('/');
                    let p = if upath.is_empty() {
                        path.as_str()
                    } else {
                        upath
                    };
                    let base = format!(
                        "{}://{}:{}{}",
                        u.scheme(),
                        u.host_str().unwrap_or(""),
                        u.port_or_known_default().unwrap_or(9200),
                        p
                    );
                    out.push(Endpoint { base, auth });
                }
            }
        }
        None => {
            let base = format!(
                "{}://{}:{}{}",
                conf.scheme,
                bracket(&conf.host),
                conf.port,
                path
            );
            http_client::check_url(&base)?;
            out.push(Endpoint {
                base,
                auth: user_auth,
            });
        }
    }
    if out.is_empty() {
        return Err("no Elasticsearch host in 'hosts'".into());
    }
    Ok(out)
}

fn bracket(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or(""), 16)
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `id_key a.b` means `$.a.b` (the plugin's `convert_compat_id_key`).
fn compat_key(k: &str) -> String {
    if k.contains('.') && !k.starts_with("$[") && !k.starts_with("$.") {
        format!("$.{k}")
    } else {
        k.to_string()
    }
}

fn validate_data_stream_name(name: &str) -> Result<(), String> {
    if name.contains('{') || name.contains('$') {
        return Ok(()); // placeholders are checked per chunk
    }
    let bad = ['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':'];
    if name.chars().any(|c| bad.contains(&c)) {
        return Err(format!(
            "'data_stream_name' must not contain invalid characters {bad:?}: <{name}>"
        ));
    }
    if name.starts_with(['-', '_', '+', '.']) {
        return Err(format!(
            "'data_stream_name' must not start with -, _, +, or .: <{name}>"
        ));
    }
    if name != name.to_lowercase() {
        return Err(format!(
            "'data_stream_name' must be lowercase only: <{name}>"
        ));
    }
    if name.len() > 255 {
        return Err(format!(
            "'data_stream_name' must not be longer than 255 bytes: <{name}>"
        ));
    }
    Ok(())
}

fn build(elem: &Element, ctx: &PluginContext, flavor: Flavor) -> Result<EsOutput, ConfigError> {
    let plugin = match flavor {
        Flavor::Elasticsearch => "elasticsearch",
        Flavor::OpenSearch => "opensearch",
        Flavor::DataStream => "elasticsearch_data_stream",
    };
    let mut conf: EsConfig = ctx.configure(elem, plugin)?;
    if !matches!(conf.scheme.as_str(), "http" | "https") {
        return Err(elem.error(format!(
            "valid options are https,http but got {}",
            conf.scheme
        )));
    }
    if conf.cloud_id.is_some() {
        return Err(
            elem.error("cloud_id is not supported by ferrentd; use hosts with the cluster URL")
        );
    }
    if let Some(a) = &conf.cloud_auth {
        let mut it = a.splitn(2, ':');
        conf.user = it.next().map(str::to_string);
        conf.password = it.next().map(str::to_string);
    }
    if conf.user.is_some() && conf.password.is_none() {
        return Err(elem.error("`password` must be present if `user` is present"));
    }
    let op = match (flavor, conf.write_operation.as_str()) {
        (Flavor::DataStream, _) => Op::Create,
        (_, "index") => Op::Index,
        (_, "create") => Op::Create,
        (_, "update") => Op::Update,
        (_, "upsert") => Op::Upsert,
        (_, other) => {
            return Err(elem.error(format!(
                "write_operation must be index, create, update or upsert, not '{other}'"
            )))
        }
    };
    if flavor == Flavor::DataStream {
        let Some(name) = &conf.data_stream_name else {
            return Err(elem.error("'data_stream_name' parameter is required"));
        };
        validate_data_stream_name(name).map_err(|m| elem.error(m))?;
    }
    if flavor == Flavor::DataStream {
        tracing::warn!("{plugin}: the data stream, its index template and ILM policy are not created by ferrentd; create them in the cluster");
    } else if conf.enable_ilm || conf.template_file.is_some() {
        tracing::warn!("{plugin}: index templates and ILM are not installed by ferrentd (template_file, enable_ilm); create them in the cluster");
    }
    let _ = &conf.template_name;
    let endpoints = parse_endpoints(&conf).map_err(|m| elem.error(m))?;
    for (param, path) in [
        ("ca_file", conf.ca_file.as_deref()),
        ("client_cert", conf.client_cert.as_deref()),
        ("client_key", conf.client_key.as_deref()),
    ] {
        http_client::check_readable(param, path).map_err(|m| elem.error(m))?;
    }
    if conf.client_key_pass.is_some() {
        return Err(elem.error(
            "client_key_pass: encrypted client keys are not supported; decrypt the key (openssl pkey)",
        ));
    }
    let ssl_min = conf
        .ssl_min_version
        .clone()
        .or_else(|| conf.ssl_version.clone().filter(|v| v == "TLSv1_3"));
    let client = HttpClient::new(&ClientOptions {
        connect_timeout: timeout(conf.request_timeout),
        timeout: timeout(conf.request_timeout),
        tls: TlsOptions {
            insecure: !conf.ssl_verify,
            verify_hostname: conf.ssl_verify,
            ca_files: conf.ca_file.iter().cloned().collect(),
            client_cert: conf.client_cert.clone(),
            client_key: conf.client_key.clone(),
            min_version: ssl_min
                .filter(|v| v.starts_with("TLSv1_"))
                .filter(|v| v != "TLSv1_1"),
            max_version: conf.ssl_max_version.clone(),
        },
        proxy: None,
    })
    .map_err(|m| elem.error(m))?;
    let mut headers: Vec<(String, String)> = conf.custom_headers.0.clone();
    if let Some(k) = &conf.api_key {
        headers.push((
            "Authorization".into(),
            format!(
                "ApiKey {}",
                base64::engine::general_purpose::STANDARD.encode(k)
            ),
        ));
    }
    let acc = |k: &Option<String>| -> Result<Option<RecordAccessor>, ConfigError> {
        k.as_deref()
            .map(|k| RecordAccessor::new(&compat_key(k)).map_err(|m| elem.error(m)))
            .transpose()
    };
    let time_parser = TimeParser::new(
        TimeType::String,
        conf.time_key_format.as_deref(),
        false,
        true,
        None,
        &[],
    )
    .map_err(|m| elem.error(m))?;
    let unrecoverable = conf
        .unrecoverable_error_types
        .clone()
        .unwrap_or_else(|| vec!["out_of_memory_error".to_string()]);
    let s = Settings {
        flavor,
        op,
        logstash_format: conf.logstash_format,
        include_timestamp: conf.include_timestamp,
        logstash_prefix: conf.logstash_prefix.clone(),
        logstash_prefix_separator: conf.logstash_prefix_separator.clone(),
        logstash_dateformat: conf.logstash_dateformat.clone(),
        utc_index: conf.utc_index,
        index_name: conf.index_name.clone(),
        type_name: Some(conf.type_name.clone()),
        suppress_type_name: conf.suppress_type_name,
        target_index_key: conf
            .target_index_key
            .as_ref()
            .map(|k| k.split('.').map(str::to_string).collect()),
        target_type_key: conf
            .target_type_key
            .as_ref()
            .map(|k| k.split('.').map(str::to_string).collect()),
        time_key: conf.time_key.clone(),
        time_key_exclude_timestamp: conf.time_key_exclude_timestamp,
        time_key_format: conf.time_key_format.clone(),
        time_precision: conf.time_precision.clamp(0, 9) as usize,
        time_parser,
        time_parse_error_tag: conf.time_parse_error_tag.clone(),
        include_tag_key: conf.include_tag_key,
        tag_key: conf.tag_key.clone(),
        id_key: acc(&conf.id_key)?,
        parent_key: acc(&conf.parent_key)?,
        routing_key: acc(&conf.routing_key)?,
        remove_keys: conf
            .remove_keys
            .as_deref()
            .map(|k| k.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default(),
        remove_keys_on_update: conf
            .remove_keys_on_update
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        remove_keys_on_update_key: conf.remove_keys_on_update_key.clone(),
        suppress_doc_wrap: conf.suppress_doc_wrap,
        flatten_hashes: conf.flatten_hashes,
        flatten_hashes_separator: conf.flatten_hashes_separator.clone(),
        pipeline: conf.pipeline.clone(),
        include_index_in_url: conf.include_index_in_url,
        emit_error_for_missing_id: conf.emit_error_for_missing_id,
        data_stream_name: conf.data_stream_name.clone(),
    };
    Ok(EsOutput {
        s,
        endpoints,
        next_endpoint: AtomicUsize::new(0),
        client,
        headers,
        gzip: conf.compression_level != CompressionLevel::NoCompression,
        verify_version: conf.verify_es_version_at_startup,
        default_version: conf.default_elasticsearch_version,
        max_version_probes: conf.max_retry_get_es_version.max(0),
        major: AtomicI64::new(-1),
        log_400_reason: conf.log_es_400_reason,
        unrecoverable,
        bulk_threshold: conf.bulk_message_request_threshold.0,
        errors: ctx.errors.clone(),
        placeholders: Placeholders::default(),
        progress: Mutex::new(HashMap::new()),
        stats: response::Stats::default(),
    })
}

impl EsOutput {
    fn endpoint(&self, attempt: usize) -> &Endpoint {
        let i = self.next_endpoint.load(Ordering::Relaxed) + attempt;
        &self.endpoints[i % self.endpoints.len()]
    }

    fn request_headers(&self, ep: &Endpoint, content_type: &str) -> Vec<(String, String)> {
        let mut h = vec![("Content-Type".to_string(), content_type.to_string())];
        h.extend(self.headers.iter().cloned());
        if let Some((u, p)) = &ep.auth {
            if !self
                .headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            {
                h.push(("Authorization".into(), http_client::basic_auth(u, p)));
            }
        }
        h
    }

    /// The server's major version: `GET /` once (the plugin's startup check), else
    /// `default_elasticsearch_version`.
    fn major_version(&self) -> Result<i64, WriteError> {
        let m = self.major.load(Ordering::Relaxed);
        if m >= 0 {
            return Ok(m);
        }
        if !self.verify_version {
            self.major.store(self.default_version, Ordering::Relaxed);
            return Ok(self.default_version);
        }
        let mut last = String::new();
        for attempt in 0..self.endpoints.len() {
            let ep = self.endpoint(attempt);
            let url = format!("{}/", ep.base);
            match self.client.send(Request {
                method: "GET",
                url: &url,
                headers: self.request_headers(ep, "application/json"),
                body: Vec::new(),
                gzip: false,
            }) {
                Ok(r) if r.is_success() => {
                    let v: serde_json::Value =
                        serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null);
                    let major = v
                        .pointer("/version/number")
                        .and_then(|n| n.as_str())
                        .map(crate::config_parser::types::ruby_to_i)
                        .unwrap_or(self.default_version);
                    tracing::info!(
                        "Detected {} {major}",
                        if self.s.flavor == Flavor::OpenSearch {
                            "OpenSearch"
                        } else {
                            "ES"
                        }
                    );
                    self.major.store(major, Ordering::Relaxed);
                    return Ok(major);
                }
                Ok(r) => last = format!("GET {url}: {} {} {}", r.status, r.reason, r.body_text()),
                Err(e) => last = format!("GET {url}: {e}"),
            }
        }
        Err(WriteError::Retriable(format!(
            "Could not connect Elasticsearch or obtain version ({last}); the chunk is retried"
        )))
    }

    /// Fluentd's flush thread gives up the version probe after `max_retry_get_es_version`;
    /// here the chunk is retried with the buffer's backoff, so a cluster that comes up late
    /// is reached.
    pub fn max_version_probes(&self) -> i64 {
        self.max_version_probes
    }

    pub fn done_for(&self, id: &[u8; 16]) -> HashSet<usize> {
        self.progress.lock().get(id).cloned().unwrap_or_default()
    }
}

impl BufferedOutput for EsOutput {
    fn configure_buffer(&mut self, p: &Placeholders, as_secondary: bool) -> Result<(), String> {
        self.placeholders = p.clone();
        if self.s.flavor != Flavor::DataStream && !as_secondary {
            let uses_placeholders = [
                &self.s.index_name,
                &self.s.logstash_prefix,
                &self.s.logstash_dateformat,
            ]
            .iter()
            .any(|t| t.contains("${") || (t.contains('%') && !t.is_empty() && p.time));
            if !uses_placeholders && !p.tag && !p.keys.iter().any(|k| k == "_index") {
                return Err("'tag' or '_index' in chunk_keys is required.".into());
            }
        }
        Ok(())
    }

    fn start(&self) -> anyhow::Result<()> {
        Ok(())
    }

    fn write(&self, chunk: &Chunk) -> Result<(), WriteError> {
        let major = self.major_version()?;
        let result = self.write_chunk(chunk, major);
        match &result {
            Ok(()) | Err(WriteError::Unrecoverable(_)) => {
                self.progress.lock().remove(&chunk.unique_id);
            }
            Err(WriteError::Retriable(_) | WriteError::RetryAfter(..)) => {}
        }
        result
    }
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Output>, ConfigError> {
    create_flavor(elem, ctx, Flavor::Elasticsearch)
}

pub fn create_opensearch(
    elem: &Element,
    ctx: &PluginContext,
) -> Result<Box<dyn Output>, ConfigError> {
    create_flavor(elem, ctx, Flavor::OpenSearch)
}

pub fn create_data_stream(
    elem: &Element,
    ctx: &PluginContext,
) -> Result<Box<dyn Output>, ConfigError> {
    create_flavor(elem, ctx, Flavor::DataStream)
}

fn create_flavor(
    elem: &Element,
    ctx: &PluginContext,
    flavor: Flavor,
) -> Result<Box<dyn Output>, ConfigError> {
    let out = build(elem, ctx, flavor)?;
    crate::buffer::build(
        elem,
        ctx,
        out,
        BufferDefaults {
            chunk_keys: &["tag"],
            ..BufferDefaults::default()
        },
    )
}

#[cfg(test)]
mod tests;
