//! `@type opentelemetry` output (fluent-plugin-opentelemetry 0.5): each buffer chunk becomes
//! OTLP logs export requests over HTTP (`<http>`: protobuf `POST <endpoint>/v1/logs`) or gRPC
//! (`<grpc>`: `LogsService/Export`).
//!
//! Records of the plugin's shape `{"type":"opentelemetry_logs","message":"<JSON>"}` are sent
//! as they are (the JSON may be OTLP/JSON or the Ruby plugin's proto3 JSON). With
//! `convert_records true`, ordinary records are mapped to LogRecords
//! ([`crate::otlp::map::RecordMapping`]). Other records go to `@ERROR`.
//!
//! Answers follow the OTLP retry rules ([`crate::otlp::retry`]): retryable ones are retried by
//! the buffer (after `Retry-After` when the server names one); the others drop the chunk with
//! a counted warning (or make it unrecoverable: `error_response_as_unrecoverable`, the Ruby
//! default). `partial_success` answers are logged and counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;

use super::{Output, PluginContext};
use crate::buffer::{BufferDefaults, BufferedOutput, Chunk, WriteError};
use crate::config_parser::types::OrderedHash;
use crate::config_parser::{ConfigError, Element, Nested};
use crate::event::{EventTime, Record, Value};
use crate::http_client::{self, ClientOptions, HttpClient, TlsOptions};
use crate::otlp::map::RecordMapping;
use crate::otlp::retry::{self, Verdict};
use crate::otlp::{self, ExportLogsServiceRequest, ExportLogsServiceResponse};
use crate::record_accessor::RecordAccessor;
use crate::router::ErrorSink;
use crate::server::transport::TransportConf;

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
enum Compress {
    #[default]
    Text,
    Gzip,
}

#[derive(Debug, Deserialize)]
struct OtelOutConfig {
    /// Map ordinary records to LogRecords (records of the plugin's shape are always sent).
    #[serde(default)]
    convert_records: bool,
    #[serde(default = "body_keys")]
    body_keys: Vec<String>,
    #[serde(default = "k_severity_text")]
    severity_text_key: String,
    #[serde(default = "k_severity_number")]
    severity_number_key: String,
    #[serde(default = "k_trace_id")]
    trace_id_key: String,
    #[serde(default = "k_span_id")]
    span_id_key: String,
    #[serde(default = "k_flags")]
    trace_flags_key: String,
    #[serde(default = "k_attributes")]
    attributes_key: String,
    #[serde(default = "k_resource")]
    resource_key: String,
    #[serde(default = "k_scope")]
    scope_key: String,
    #[serde(default)]
    resource_attribute_keys: Vec<String>,
    #[serde(default)]
    resource_attributes: OrderedHash,
    #[serde(default = "k_tag")]
    tag_attribute: String,
    #[allow(dead_code)]
    http: Option<Nested>,
    #[allow(dead_code)]
    grpc: Option<Nested>,
    #[allow(dead_code)]
    transport: Option<Nested>,
    #[allow(dead_code)]
    buffer: Option<Nested>,
    #[allow(dead_code)]
    secondary: Option<Nested>,
}

fn body_keys() -> Vec<String> {
    RecordMapping::default().body_keys
}
fn k_severity_text() -> String {
    RecordMapping::default().severity_text_key
}
fn k_severity_number() -> String {
    RecordMapping::default().severity_number_key
}
fn k_trace_id() -> String {
    RecordMapping::default().trace_id_key
}
fn k_span_id() -> String {
    RecordMapping::default().span_id_key
}
fn k_flags() -> String {
    RecordMapping::default().trace_flags_key
}
fn k_attributes() -> String {
    RecordMapping::default().attributes_key
}
fn k_resource() -> String {
    RecordMapping::default().resource_key
}
fn k_scope() -> String {
    RecordMapping::default().scope_key
}
fn k_tag() -> String {
    RecordMapping::default().tag_attribute
}

#[derive(Debug, Deserialize)]
struct HttpSection {
    #[serde(default = "http_endpoint")]
    endpoint: String,
    proxy: Option<String>,
    #[serde(default = "yes")]
    error_response_as_unrecoverable: bool,
    #[serde(default = "retryable_codes")]
    retryable_response_codes: Vec<String>,
    #[serde(default)]
    compress: Compress,
    #[serde(default = "sixty")]
    read_timeout: i64,
    #[serde(default = "sixty")]
    write_timeout: i64,
    #[serde(default = "sixty")]
    connect_timeout: i64,
    /// Extra request headers (auth); the Ruby plugin has none.
    #[serde(default)]
    headers: OrderedHash,
}

#[derive(Debug, Deserialize)]
struct GrpcSection {
    #[serde(default = "grpc_endpoint")]
    endpoint: String,
    #[serde(default)]
    compress: Compress,
    #[serde(default = "sixty")]
    timeout: i64,
    #[serde(default = "thirty")]
    keepalive_time: i64,
    #[serde(default = "ten")]
    keepalive_timeout: i64,
    #[serde(default = "yes")]
    error_response_as_unrecoverable: bool,
}

fn http_endpoint() -> String {
    "http://127.0.0.1:4318".into()
}
fn grpc_endpoint() -> String {
    "127.0.0.1:4317".into()
}
fn yes() -> bool {
    true
}
fn retryable_codes() -> Vec<String> {
    ["429", "502", "503", "504"].map(String::from).to_vec()
}
fn sixty() -> i64 {
    60
}
fn thirty() -> i64 {
    30
}
fn ten() -> i64 {
    10
}

fn secs(n: i64) -> Duration {
    Duration::from_secs(n.max(1) as u64)
}

struct HttpTransport {
    url: String,
    client: HttpClient,
    gzip: bool,
    headers: Vec<(String, String)>,
    retryable: Vec<u16>,
}

struct GrpcTransport {
    rt: Option<tokio::runtime::Runtime>,
    client: otlp::LogsServiceClient<tonic::transport::Channel>,
    endpoint: String,
}

impl Drop for GrpcTransport {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

enum Transport {
    Http(HttpTransport),
    Grpc(GrpcTransport),
}

pub struct OtelOutput {
    transport: Transport,
    unrecoverable: bool,
    convert: Option<RecordMapping>,
    errors: ErrorSink,
    /// Requests refused for good, and their LogRecords.
    dropped_requests: AtomicU64,
    dropped_records: AtomicU64,
    /// LogRecords the receiver rejected in `partial_success` answers.
    rejected_records: AtomicU64,
}

/// What one attempt gave.
enum Sent {
    Answer(Verdict, String, Option<ExportLogsServiceResponse>),
    Failed(String),
}

impl OtelOutput {
    /// (requests dropped, their records, records rejected by partial_success)
    pub fn counters(&self) -> (u64, u64, u64) {
        (
            self.dropped_requests.load(Ordering::Relaxed),
            self.dropped_records.load(Ordering::Relaxed),
            self.rejected_records.load(Ordering::Relaxed),
        )
    }

    /// The request of one chunk; records that cannot be sent go to `@ERROR`.
    /// `observed` is when ferrentd took the records in (the chunk's creation), so a retried
    /// request is the same request.
    pub fn build_request(
        &self,
        tag: &str,
        entries: Vec<(EventTime, Record)>,
        observed: EventTime,
    ) -> ExportLogsServiceRequest {
        let mut req = ExportLogsServiceRequest::default();
        let mut ordinary = Vec::new();
        for (t, rec) in entries {
            let kind = match rec.get("type") {
                Some(Value::Str(s)) => Some(s.clone()),
                _ => None,
            };
            match kind.as_deref() {
                Some(b"opentelemetry_logs") => {
                    let decoded = match rec.get("message") {
                        Some(Value::Str(m)) => otlp::json::decode(m),
                        _ => Err("'message' is not a string".into()),
                    };
                    match decoded {
                        Ok(r) => req.resource_logs.extend(r.resource_logs),
                        Err(e) => self.errors.emit_error_event(
                            tag,
                            t,
                            rec,
                            &format!("opentelemetry: cannot decode the OTLP logs message: {e}"),
                        ),
                    }
                }
                Some(b"opentelemetry_metrics") | Some(b"opentelemetry_traces") => {
                    self.errors.emit_error_event(
                        tag,
                        t,
                        rec,
                        "opentelemetry: only logs are exported; metrics and traces records are not",
                    )
                }
                _ if self.convert.is_some() => ordinary.push((t, rec)),
                _ => self.errors.emit_error_event(
                    tag,
                    t,
                    rec,
                    "opentelemetry: not an OpenTelemetry record (no type \"opentelemetry_logs\"); set convert_records true to map ordinary records",
                ),
            }
        }
        if let (Some(m), false) = (&self.convert, ordinary.is_empty()) {
            let r = m.build_request(tag, ordinary, observed);
            req.resource_logs.extend(r.resource_logs);
        }
        req
    }

    fn send_once(&self, req: &ExportLogsServiceRequest, body: &[u8]) -> Sent {
        match &self.transport {
            Transport::Http(h) => {
                let mut headers = h.headers.clone();
                headers.push(("Content-Type".into(), "application/x-protobuf".into()));
                let res = h.client.send(http_client::Request {
                    method: "POST",
                    url: &h.url,
                    headers,
                    body: body.to_vec(),
                    gzip: h.gzip,
                });
                let res = match res {
                    Ok(r) => r,
                    Err(e) => return Sent::Failed(format!("POST {}: {e}", h.url)),
                };
                let verdict =
                    retry::classify_http(res.status, res.header("retry-after"), &h.retryable);
                let summary = format!(
                    "POST {}: {} {} {}",
                    h.url,
                    res.status,
                    res.reason,
                    res.body_text()
                        .chars()
                        .take(200)
                        .collect::<String>()
                        .trim_end()
                );
                let resp = if verdict == Verdict::Delivered && !res.body.is_empty() {
                    let json = res
                        .header("content-type")
                        .is_some_and(|c| c.contains("json"));
                    if json {
                        otlp::json::decode_response(&res.body).ok()
                    } else {
                        prost::Message::decode(&res.body[..]).ok()
                    }
                } else {
                    None
                };
                Sent::Answer(verdict, summary, resp)
            }
            Transport::Grpc(g) => {
                let Some(rt) = &g.rt else {
                    return Sent::Failed("the gRPC runtime is gone".into());
                };
                let mut client = g.client.clone();
                match rt.block_on(client.export(req.clone())) {
                    Ok(r) => Sent::Answer(
                        Verdict::Delivered,
                        format!("gRPC {}: OK", g.endpoint),
                        Some(r.into_inner()),
                    ),
                    Err(s) => Sent::Answer(
                        retry::classify_grpc(s.code(), None),
                        format!("gRPC {}: {:?} {}", g.endpoint, s.code(), s.message()),
                        None,
                    ),
                }
            }
        }
    }

    /// Sends one request; `Ok` once delivered or dropped for good.
    pub fn send(&self, req: &ExportLogsServiceRequest) -> Result<(), WriteError> {
        let n = otlp::count_log_records(req) as u64;
        let body = match &self.transport {
            Transport::Http(_) => otlp::encode_protobuf(req),
            Transport::Grpc(_) => Vec::new(),
        };
        match self.send_once(req, &body) {
            Sent::Failed(e) => Err(WriteError::Retriable(e)),
            Sent::Answer(Verdict::Delivered, _, resp) => {
                if let Some(p) = resp.and_then(|r| r.partial_success) {
                    if p.rejected_log_records > 0 || !p.error_message.is_empty() {
                        let rej = p.rejected_log_records.max(0) as u64;
                        let total = self.rejected_records.fetch_add(rej, Ordering::Relaxed) + rej;
                        tracing::warn!(
                            "opentelemetry: the receiver rejected {rej} of {n} log records: {} (rejected so far: {total})",
                            p.error_message
                        );
                    }
                }
                Ok(())
            }
            // The buffer's retry waits (at least `Retry-After`), not this flush thread.
            Sent::Answer(Verdict::Retry { after }, summary, _) => match after {
                Some(d) => Err(WriteError::RetryAfter(
                    format!("{summary} (Retry-After: {}s)", d.as_secs()),
                    d,
                )),
                None => Err(WriteError::Retriable(summary)),
            },
            Sent::Answer(Verdict::Reject, summary, _) => {
                let c = self.dropped_requests.fetch_add(1, Ordering::Relaxed) + 1;
                let e = self.dropped_records.fetch_add(n, Ordering::Relaxed) + n;
                let msg = format!(
                    "opentelemetry: {summary}; {n} log records not delivered (so far: {c} requests, {e} log records)"
                );
                if self.unrecoverable {
                    return Err(WriteError::Unrecoverable(msg));
                }
                tracing::warn!("{msg}");
                Ok(())
            }
        }
    }
}

impl BufferedOutput for OtelOutput {
    fn write(&self, chunk: &Chunk) -> Result<(), WriteError> {
        let entries = chunk.entries().map_err(|e| {
            WriteError::Unrecoverable(format!("chunk {} is corrupt: {e}", chunk.unique_id_hex()))
        })?;
        let tag = chunk.metadata.tag.clone().unwrap_or_default();
        let req = self.build_request(&tag, entries, EventTime::from_f64(chunk.created));
        if req.resource_logs.is_empty() {
            return Ok(());
        }
        self.send(&req)
    }
}

fn tls_options(elem: &Element, ctx: &PluginContext) -> Result<TlsOptions, ConfigError> {
    let mut tls = TlsOptions {
        verify_hostname: true,
        ..TlsOptions::default()
    };
    if let Some(t) = elem.child("transport") {
        let tc: TransportConf = ctx.configure(t, "transport")?;
        if tc.protocol.trim() != "tls" {
            return Err(t.error(format!(
                "valid options are tls but got {}",
                tc.protocol.trim()
            )));
        }
        if tc.private_key_passphrase.is_some() {
            return Err(t.error(
                "encrypted private keys are not supported: decrypt the key and drop the passphrase",
            ));
        }
        for (name, p) in [
            ("ca_path", &tc.ca_path),
            ("cert_path", &tc.cert_path),
            ("private_key_path", &tc.private_key_path),
        ] {
            http_client::check_readable(name, p.as_deref()).map_err(|m| t.error(m))?;
        }
        tls.insecure = tc.insecure;
        tls.ca_files = tc.ca_path.iter().cloned().collect();
        if tc.cert_path.is_some() && tc.private_key_path.is_some() {
            tls.client_cert = tc.cert_path.clone();
            tls.client_key = tc.private_key_path.clone();
        }
        tls.min_version = tc.min_version.clone();
        tls.max_version = tc.max_version.clone();
    }
    Ok(tls)
}

fn build(elem: &Element, ctx: &PluginContext) -> Result<OtelOutput, ConfigError> {
    let conf: OtelOutConfig = ctx.configure(elem, "opentelemetry")?;
    let (h, g) = (elem.child("http"), elem.child("grpc"));
    let (transport, unrecoverable) = match (h, g) {
        (Some(h), None) => {
            let c: HttpSection = ctx.configure(h, "opentelemetry")?;
            let url = format!("{}/v1/logs", c.endpoint.trim_end_matches('/'));
            http_client::check_url(&url).map_err(|m| h.error(m))?;
            let mut retryable = Vec::new();
            for code in &c.retryable_response_codes {
                retryable.push(code.trim().parse::<u16>().map_err(|_| {
                    h.error(format!(
                        "retryable_response_codes: '{code}' is not a status code"
                    ))
                })?);
            }
            let proxy = c
                .proxy
                .or_else(|| std::env::var("HTTP_PROXY").ok())
                .or_else(|| std::env::var("http_proxy").ok())
                .filter(|p| !p.is_empty());
            let client = HttpClient::new(&ClientOptions {
                connect_timeout: secs(c.connect_timeout),
                timeout: secs(c.read_timeout.max(c.write_timeout)),
                tls: tls_options(elem, ctx)?,
                proxy,
            })
            .map_err(|m| h.error(m))?;
            (
                Transport::Http(HttpTransport {
                    url,
                    client,
                    gzip: c.compress == Compress::Gzip,
                    headers: c.headers.0,
                    retryable,
                }),
                c.error_response_as_unrecoverable,
            )
        }
        (None, Some(g)) => {
            let c: GrpcSection = ctx.configure(g, "opentelemetry")?;
            if elem.child("transport").is_some() {
                tracing::warn!("opentelemetry: <transport tls> applies to <http> only; gRPC is sent without TLS, as the Ruby plugin does");
            }
            let uri = if c.endpoint.contains("://") {
                c.endpoint.clone()
            } else {
                format!("http://{}", c.endpoint)
            };
            let endpoint = tonic::transport::Endpoint::from_shared(uri.clone())
                .map_err(|e| g.error(format!("invalid endpoint '{}': {e}", c.endpoint)))?
                .connect_timeout(secs(c.timeout))
                .timeout(secs(c.timeout))
                .http2_keep_alive_interval(secs(c.keepalive_time))
                .keep_alive_timeout(secs(c.keepalive_timeout))
                .keep_alive_while_idle(true)
                .tcp_nodelay(true);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("out_opentelemetry")
                .enable_all()
                .build()
                .map_err(|e| g.error(format!("cannot start the gRPC runtime: {e}")))?;
            let channel = {
                let _guard = rt.enter();
                endpoint.connect_lazy()
            };
            let mut client = otlp::LogsServiceClient::new(channel)
                .max_decoding_message_size(16 << 20)
                .max_encoding_message_size(usize::MAX);
            if c.compress == Compress::Gzip {
                client = client.send_compressed(tonic::codec::CompressionEncoding::Gzip);
            }
            (
                Transport::Grpc(GrpcTransport {
                    rt: Some(rt),
                    client,
                    endpoint: c.endpoint,
                }),
                c.error_response_as_unrecoverable,
            )
        }
        _ => return Err(elem.error("Please configure either <http> or <grpc> section.")),
    };
    let convert = if conf.convert_records {
        let mut resource_attribute_keys = Vec::new();
        for k in &conf.resource_attribute_keys {
            resource_attribute_keys.push(RecordAccessor::new(k).map_err(|m| elem.error(m))?);
        }
        Some(RecordMapping {
            body_keys: conf.body_keys,
            severity_text_key: conf.severity_text_key,
            severity_number_key: conf.severity_number_key,
            trace_id_key: conf.trace_id_key,
            span_id_key: conf.span_id_key,
            trace_flags_key: conf.trace_flags_key,
            attributes_key: conf.attributes_key,
            resource_key: conf.resource_key,
            scope_key: conf.scope_key,
            resource_attribute_keys,
            resource_attributes: conf.resource_attributes.0,
            tag_attribute: conf.tag_attribute,
        })
    } else {
        None
    };
    Ok(OtelOutput {
        transport,
        unrecoverable,
        convert,
        errors: ctx.errors.clone(),
        dropped_requests: AtomicU64::new(0),
        dropped_records: AtomicU64::new(0),
        rejected_records: AtomicU64::new(0),
    })
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Output>, ConfigError> {
    let out = build(elem, ctx)?;
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
mod tests {
    use super::*;

    fn output(conf: &str) -> Result<OtelOutput, ConfigError> {
        let elem = crate::test_util::directive(&format!(
            "<match x>\n@type opentelemetry\n{conf}\n</match>"
        ));
        build(&elem, &PluginContext::for_tests())
    }

    fn rec(json: &str) -> Record {
        crate::json::decode::parse_record(json.as_bytes()).unwrap()
    }

    #[test]
    fn exactly_one_transport() {
        let e = output("").err().unwrap();
        assert!(e.to_string().contains("either <http> or <grpc>"), "{e}");
        let e = output("<http>\n</http>\n<grpc>\n</grpc>").err().unwrap();
        assert!(e.to_string().contains("either <http> or <grpc>"), "{e}");
        assert!(output("<grpc>\nendpoint 127.0.0.1:1\n</grpc>").is_ok());
        let e = output("<http>\nendpoint ftp://x\n</http>").err().unwrap();
        assert!(e.to_string().contains("HTTP/HTTPS"), "{e}");
        let e = output("<http>\nretryable_response_codes 429,soon\n</http>")
            .err()
            .unwrap();
        assert!(e.to_string().contains("'soon'"), "{e}");
    }

    #[test]
    fn plugin_records_are_merged_and_others_refused() {
        let o = output("<http>\nendpoint http://127.0.0.1:1\n</http>").unwrap();
        let msg = r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"a"},"traceId":"W47/95gDgQPSabYzgT/GDA=="}]}]}]}"#;
        let mut r = Record::new();
        r.insert("type", Value::from("opentelemetry_logs"));
        r.insert("message", Value::from(msg));
        let t = EventTime::new(1, 0);
        let req = o.build_request(
            "t",
            vec![(t, r.clone()), (t, rec(r#"{"message":"plain"}"#)), (t, r)],
            t,
        );
        assert_eq!(req.resource_logs.len(), 2);
        assert_eq!(
            req.resource_logs[0].scope_logs[0].log_records[0].trace_id,
            vec![
                0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f,
                0xc6, 0x0c
            ]
        );
        let o =
            output("convert_records true\n<http>\nendpoint http://127.0.0.1:1\n</http>").unwrap();
        let req = o.build_request("t", vec![(t, rec(r#"{"message":"plain"}"#))], t);
        assert_eq!(otlp::count_log_records(&req), 1);
    }
}
