//! `@type opentelemetry` input (fluent-plugin-opentelemetry 0.5): an OTLP logs receiver over
//! HTTP (`POST /v1/logs`, protobuf or JSON, gzip) and/or gRPC (`LogsService/Export`).
//!
//! By default each export request becomes ONE event, as the Ruby plugin emits it:
//! `{"type" => "opentelemetry_logs", "message" => "<the request as proto3 JSON>"}` at the
//! receive time. `split_log_records true` emits one event per LogRecord instead
//! ([`crate::otlp::map::explode`]), so filters and routing see each log.
//!
//! Differences from the Ruby plugin: the Content-Type may carry parameters, hex ids in JSON
//! are read as the OTLP specification says (base64 too), and errors are answered with a
//! `google.rpc.Status` body. Metrics and traces are not received (404).

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::Deserialize;

use super::{Input, InputContext, PluginContext};
use crate::config_parser::types::Size;
use crate::config_parser::{ConfigError, Element, Nested};
use crate::event::{EventStream, EventTime, Record, Value};
use crate::otlp::{self, ExportLogsServiceRequest, ExportLogsServiceResponse};
use crate::router::Emitter;
use crate::server::transport::{self, TransportConf};

#[derive(Debug, Deserialize)]
struct OtelInConfig {
    tag: String,
    /// Emit one event per LogRecord instead of one per request.
    #[serde(default)]
    split_log_records: bool,
    #[allow(dead_code)]
    http: Option<Nested>,
    #[allow(dead_code)]
    grpc: Option<Nested>,
    #[allow(dead_code)]
    transport: Option<Nested>,
}

#[derive(Debug, Deserialize)]
struct HttpSection {
    #[serde(default = "any_addr")]
    bind: String,
    #[serde(default = "http_port")]
    port: i64,
    #[serde(default = "body_limit")]
    body_size_limit: Size,
    #[serde(default = "decompression_limit")]
    decompression_size_limit: Size,
}

#[derive(Debug, Deserialize)]
struct GrpcSection {
    #[serde(default = "any_addr")]
    bind: String,
    #[serde(default = "grpc_port")]
    port: i64,
}

fn any_addr() -> String {
    "0.0.0.0".into()
}
fn http_port() -> i64 {
    4318
}
fn grpc_port() -> i64 {
    4317
}
fn body_limit() -> Size {
    Size(32 << 20)
}
fn decompression_limit() -> Size {
    Size(256 << 20)
}

/// Limits of the HTTP receiver.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub body: usize,
    pub decompressed: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body: 32 << 20,
            decompressed: 256 << 20,
        }
    }
}

struct HttpListen {
    bind: String,
    port: u16,
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
}

struct GrpcListen {
    bind: String,
    port: u16,
}

/// Turns requests into events.
pub struct Sink {
    tag: String,
    split: bool,
    router: Emitter,
}

impl Sink {
    pub fn new(tag: &str, split: bool, router: Emitter) -> Sink {
        Sink {
            tag: tag.replace("${type}", "logs"),
            split,
            router,
        }
    }

    /// The events of one request.
    pub fn events(&self, req: &ExportLogsServiceRequest) -> EventStream {
        let now = EventTime::now();
        if self.split {
            return otlp::map::explode(req, now)
                .into_iter()
                .map(|(t, r)| crate::event::Event::new(t, r))
                .collect();
        }
        let mut r = Record::with_capacity(2);
        r.insert("type", Value::from(otlp::RECORD_TYPE_LOGS));
        r.insert("message", Value::from(otlp::json::to_proto3_json(req)));
        EventStream::one(now, r)
    }

    pub fn emit(&self, req: &ExportLogsServiceRequest) {
        let es = self.events(req);
        if !es.is_empty() {
            self.router.emit(&self.tag, es);
        }
    }
}

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Why, for the log (empty on success).
    pub message: String,
}

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// A `google.rpc.Status` message (code 3 INVALID_ARGUMENT etc.), protobuf or JSON.
fn status_body(json: bool, code: i32, message: &str) -> Vec<u8> {
    if json {
        let v = serde_json::json!({"code": code, "message": message});
        return serde_json::to_vec(&v).unwrap_or_default();
    }
    let mut b = Vec::new();
    prost::encoding::int32::encode(1, &code, &mut b);
    prost::encoding::string::encode(2, &message.to_string(), &mut b);
    b
}

fn error(status: u16, json: bool, message: String) -> Reply {
    // 4xx map to INVALID_ARGUMENT, 413 to RESOURCE_EXHAUSTED.
    let code = if status == 413 { 8 } else { 3 };
    Reply {
        status,
        content_type: if json { JSON } else { PROTOBUF },
        body: status_body(json, code, &message),
        message,
    }
}

/// Reads gzip (concatenated members too) up to `limit` bytes.
fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, Reply> {
    let mut out = Vec::new();
    let mut d = flate2::read::MultiGzDecoder::new(body).take(limit as u64 + 1);
    d.read_to_end(&mut out)
        .map_err(|e| error(400, false, format!("invalid gzip body: {e}")))?;
    if out.len() > limit {
        return Err(error(
            413,
            false,
            format!("decompressed body is larger than {limit} bytes"),
        ));
    }
    Ok(out)
}

/// Checks and decodes one `POST /v1/logs`. `Ok` holds the request and whether it was JSON.
pub fn decode_request(
    method: &str,
    path: &str,
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: &[u8],
    limits: Limits,
) -> Result<(ExportLogsServiceRequest, bool), Reply> {
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let json = media == JSON;
    match path {
        "/v1/logs" => {}
        "/v1/metrics" | "/v1/traces" => {
            return Err(error(404, json, format!("{path}: only logs are received")))
        }
        _ => return Err(error(404, json, format!("{path}: not found"))),
    }
    if method != "POST" {
        return Err(error(405, json, format!("{method} {path}: use POST")));
    }
    if media != JSON && media != PROTOBUF {
        return Err(error(
            415,
            json,
            format!(
                "unsupported content type '{}': use {PROTOBUF} or {JSON}",
                content_type.unwrap_or("")
            ),
        ));
    }
    if body.len() > limits.body {
        return Err(error(
            413,
            json,
            format!("body is larger than {} bytes", limits.body),
        ));
    }
    let inflated;
    let data = match content_encoding.map(|e| e.trim().to_ascii_lowercase()) {
        None => body,
        Some(e) if e.is_empty() || e == "identity" => body,
        Some(e) if e == "gzip" => {
            inflated = gunzip(body, limits.decompressed).map_err(|mut r| {
                if json {
                    r = error(r.status, true, r.message);
                }
                r
            })?;
            &inflated[..]
        }
        Some(e) => {
            return Err(error(
                400,
                json,
                format!("unsupported content encoding '{e}'"),
            ))
        }
    };
    // The Ruby plugin tells JSON by the first byte; a protobuf request never starts with '{'.
    let as_json = json || data.first() == Some(&b'{');
    let req = if as_json {
        otlp::json::decode(data)
    } else {
        otlp::decode_protobuf(data)
    }
    .map_err(|e| error(400, json, e))?;
    Ok((req, json))
}

/// The success answer in the request's encoding.
pub fn success(json: bool) -> Reply {
    let resp = ExportLogsServiceResponse::default();
    if json {
        Reply {
            status: 200,
            content_type: JSON,
            body: otlp::json::encode_response(&resp),
            message: String::new(),
        }
    } else {
        Reply {
            status: 200,
            content_type: PROTOBUF,
            body: prost::Message::encode_to_vec(&resp),
            message: String::new(),
        }
    }
}

pub struct OtelInput {
    sink_conf: (String, bool),
    http: Option<HttpListen>,
    grpc: Option<GrpcListen>,
    listeners: (Option<std::net::TcpListener>, Option<std::net::TcpListener>),
}

fn port(elem: &Element, p: i64) -> Result<u16, ConfigError> {
    u16::try_from(p).map_err(|_| elem.error(format!("port {p} is out of range")))
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Input>, ConfigError> {
    let cfg: OtelInConfig = ctx.configure(elem, "opentelemetry")?;
    let tls = match elem.child("transport") {
        Some(t) => {
            let tc: TransportConf = ctx.configure(t, "transport")?;
            if tc.protocol.trim() != "tls" {
                return Err(t.error(format!(
                    "valid options are tls but got {}",
                    tc.protocol.trim()
                )));
            }
            Some(transport::tls_config(elem, &tc)?)
        }
        None => None,
    };
    let http = match elem.child("http") {
        Some(h) => {
            let c: HttpSection = ctx.configure(h, "opentelemetry")?;
            Some(HttpListen {
                port: port(h, c.port)?,
                bind: c.bind,
                limits: Limits {
                    body: c.body_size_limit.0.max(0) as usize,
                    decompressed: c.decompression_size_limit.0.max(0) as usize,
                },
                tls,
            })
        }
        None => None,
    };
    let grpc = match elem.child("grpc") {
        Some(g) => {
            let c: GrpcSection = ctx.configure(g, "opentelemetry")?;
            Some(GrpcListen {
                port: port(g, c.port)?,
                bind: c.bind,
            })
        }
        None => None,
    };
    if http.is_none() && grpc.is_none() {
        return Err(elem.error("Please configure either <http> or <grpc> section, or both."));
    }
    Ok(Box::new(OtelInput {
        sink_conf: (cfg.tag, cfg.split_log_records),
        http,
        grpc,
        listeners: (None, None),
    }))
}

fn listen(what: &str, bind: &str, port: u16) -> anyhow::Result<std::net::TcpListener> {
    let l = crate::http_server::listen(&format!("in_opentelemetry ({what})"), bind, port)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

impl Input for OtelInput {
    fn start(&mut self) -> anyhow::Result<()> {
        if let Some(h) = &self.http {
            self.listeners.0 = Some(listen("http", &h.bind, h.port)?);
        }
        if let Some(g) = &self.grpc {
            self.listeners.1 = Some(listen("grpc", &g.bind, g.port)?);
        }
        Ok(())
    }

    fn run(mut self: Box<Self>, ctx: InputContext) -> anyhow::Result<()> {
        if self.listeners.0.is_none() && self.listeners.1.is_none() {
            self.start()?;
        }
        let sink = Arc::new(Sink::new(
            &self.sink_conf.0,
            self.sink_conf.1,
            ctx.router.clone(),
        ));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("in_opentelemetry")
            .enable_all()
            .build()?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        if let (Some(l), Some(h)) = (self.listeners.0.take(), &self.http) {
            let l = rt.block_on(async { tokio::net::TcpListener::from_std(l) })?;
            tracing::info!("in_opentelemetry: OTLP/HTTP on {}", l.local_addr()?);
            tasks.push(rt.spawn(http::serve(
                l,
                h.tls.clone(),
                h.limits,
                sink.clone(),
                stop_rx.clone(),
            )));
        }
        if let Some(l) = self.listeners.1.take() {
            let l = rt.block_on(async { tokio::net::TcpListener::from_std(l) })?;
            tracing::info!("in_opentelemetry: OTLP/gRPC on {}", l.local_addr()?);
            tasks.push(rt.spawn(grpc::serve(l, sink.clone(), stop_rx.clone())));
        }
        while !ctx.shutdown.is_set() {
            ctx.shutdown
                .wait_timeout(std::time::Duration::from_millis(500));
        }
        let _ = stop_tx.send(true);
        rt.block_on(async {
            for t in tasks {
                let _ = t.await;
            }
        });
        rt.shutdown_timeout(std::time::Duration::from_secs(5));
        Ok(())
    }
}

async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Emits on a blocking thread: the router may block to give backpressure.
async fn emit(sink: Arc<Sink>, req: ExportLogsServiceRequest) -> Result<(), String> {
    tokio::task::spawn_blocking(move || sink.emit(&req))
        .await
        .map_err(|e| format!("emit failed: {e}"))
}

mod http {
    use super::*;
    use http_body_util::{BodyExt, Full, Limited};
    use hyper::body::{Bytes, Incoming};
    use hyper::{Request, Response};

    fn reply(r: Reply) -> Response<Full<Bytes>> {
        let mut resp = Response::new(Full::new(Bytes::from(r.body)));
        *resp.status_mut() =
            hyper::StatusCode::from_u16(r.status).unwrap_or(hyper::StatusCode::BAD_REQUEST);
        if let Ok(v) = hyper::header::HeaderValue::from_str(r.content_type) {
            resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        resp
    }

    async fn handle(
        req: Request<Incoming>,
        limits: Limits,
        sink: Arc<Sink>,
        peer: SocketAddr,
    ) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
        let header = |n: hyper::header::HeaderName| {
            req.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let ct = header(hyper::header::CONTENT_TYPE);
        let ce = header(hyper::header::CONTENT_ENCODING);
        let method = req.method().as_str().to_string();
        let path = req.uri().path().to_string();
        let json = ct.as_deref().is_some_and(|c| c.contains("json"));
        let too_big = req
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > limits.body as u64);
        let body = if too_big {
            Err(error(
                413,
                json,
                format!("body is larger than {} bytes", limits.body),
            ))
        } else {
            match Limited::new(req.into_body(), limits.body).collect().await {
                Ok(b) => Ok(b.to_bytes()),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(error(
                    413,
                    json,
                    format!("body is larger than {} bytes", limits.body),
                )),
                Err(e) => Err(error(400, json, format!("cannot read the body: {e}"))),
            }
        };
        let decoded = body
            .and_then(|b| decode_request(&method, &path, ct.as_deref(), ce.as_deref(), &b, limits));
        let r = match decoded {
            Ok((otlp_req, json)) => match emit(sink, otlp_req).await {
                Ok(()) => success(json),
                Err(e) => error(500, json, e),
            },
            Err(r) => {
                tracing::warn!(
                    "in_opentelemetry: {method} {path} from {peer}: {} {}",
                    r.status,
                    r.message
                );
                r
            }
        };
        Ok(reply(r))
    }

    pub async fn serve(
        listener: tokio::net::TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        limits: Limits,
        sink: Arc<Sink>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stopped(stop.clone()) => break,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("in_opentelemetry: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let (sink, acceptor, stop) = (sink.clone(), acceptor.clone(), stop.clone());
            conns.spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req| handle(req, limits, sink.clone(), peer));
                let builder = hyper::server::conn::http1::Builder::new();
                match acceptor {
                    None => {
                        let conn =
                            builder.serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
                        serve_until(conn, stop).await;
                    }
                    Some(a) => match a.accept(stream).await {
                        Ok(s) => {
                            let conn =
                                builder.serve_connection(hyper_util::rt::TokioIo::new(s), svc);
                            serve_until(conn, stop).await;
                        }
                        Err(e) => {
                            tracing::warn!("in_opentelemetry: TLS handshake with {peer}: {e}")
                        }
                    },
                }
            });
            while conns.try_join_next().is_some() {}
        }
        // Requests in flight finish; idle keep-alive connections close.
        let deadline = tokio::time::sleep(std::time::Duration::from_secs(5));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                r = conns.join_next() => if r.is_none() { break },
                _ = &mut deadline => { conns.abort_all(); break }
            }
        }
    }

    async fn serve_until<I, S>(
        conn: hyper::server::conn::http1::Connection<I, S>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
        S: hyper::service::HttpService<Incoming>,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        S::ResBody: 'static,
        <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => { if let Err(e) = r { tracing::debug!("in_opentelemetry: connection: {e}") } }
            _ = stopped(stop) => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
    }
}

mod grpc {
    use super::*;
    use crate::otlp::{LogsService, LogsServiceServer};

    struct Service {
        sink: Arc<Sink>,
    }

    #[tonic::async_trait]
    impl LogsService for Service {
        async fn export(
            &self,
            request: tonic::Request<ExportLogsServiceRequest>,
        ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
            emit(self.sink.clone(), request.into_inner())
                .await
                .map_err(tonic::Status::internal)?;
            Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
        }
    }

    pub async fn serve(
        listener: tokio::net::TcpListener,
        sink: Arc<Sink>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let svc = LogsServiceServer::new(Service { sink })
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
            .send_compressed(tonic::codec::CompressionEncoding::Gzip)
            .max_decoding_message_size(64 << 20);
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let r = tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(incoming, stopped(stop))
            .await;
        if let Err(e) = r {
            tracing::error!("in_opentelemetry: gRPC server failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_pb() -> Vec<u8> {
        let req = crate::otlp::json::decode(
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"1000000000","body":{"stringValue":"hi"},"traceId":"5b8efff798038103d269b633813fc60c"}]}]}]}"#,
        )
        .unwrap();
        otlp::encode_protobuf(&req)
    }

    #[test]
    fn decodes_protobuf_json_and_gzip() {
        let l = Limits::default();
        let pb = sample_pb();
        let (r, json) = decode_request("POST", "/v1/logs", Some(PROTOBUF), None, &pb, l).unwrap();
        assert!(!json);
        assert_eq!(otlp::count_log_records(&r), 1);
        let js = otlp::json::encode(&r);
        let (r2, json) = decode_request(
            "POST",
            "/v1/logs",
            Some("application/json; charset=utf-8"),
            None,
            &js,
            l,
        )
        .unwrap();
        assert!(json);
        assert_eq!(r2, r);
        let gz = crate::http_client::gzip(&pb);
        let (r3, _) =
            decode_request("POST", "/v1/logs", Some(PROTOBUF), Some("gzip"), &gz, l).unwrap();
        assert_eq!(r3, r);
    }

    #[test]
    fn bad_requests_get_the_right_status() {
        let l = Limits::default();
        let st = |m, p, ct: Option<&str>, ce: Option<&str>, b: &[u8], l| {
            decode_request(m, p, ct, ce, b, l).err().map(|r| r.status)
        };
        assert_eq!(
            st("POST", "/v1/logs", Some(PROTOBUF), None, b"\xff\xff\xff", l),
            Some(400)
        );
        assert_eq!(
            st("POST", "/v1/logs", Some(JSON), None, b"{bad", l),
            Some(400)
        );
        assert_eq!(
            st("POST", "/v1/logs", Some("text/plain"), None, b"", l),
            Some(415)
        );
        assert_eq!(st("POST", "/v1/logs", None, None, b"", l), Some(415));
        assert_eq!(
            st("POST", "/v1/logs", Some(JSON), Some("br"), b"{}", l),
            Some(400)
        );
        assert_eq!(
            st("POST", "/v1/logs", Some(JSON), Some("gzip"), b"{}", l),
            Some(400)
        );
        assert_eq!(st("GET", "/v1/logs", Some(JSON), None, b"{}", l), Some(405));
        assert_eq!(
            st("POST", "/v1/traces", Some(JSON), None, b"{}", l),
            Some(404)
        );
        assert_eq!(st("POST", "/x", Some(JSON), None, b"{}", l), Some(404));
        let small = Limits {
            body: 4,
            decompressed: 8,
        };
        assert_eq!(
            st("POST", "/v1/logs", Some(JSON), None, b"{}{}{}", small),
            Some(413)
        );
        let bomb = crate::http_client::gzip(&[b' '; 100]);
        let big = Limits {
            body: 1000,
            decompressed: 8,
        };
        assert_eq!(
            st("POST", "/v1/logs", Some(JSON), Some("gzip"), &bomb, big),
            Some(413)
        );
        // The error body is a google.rpc.Status.
        let r = decode_request("POST", "/v1/logs", Some(JSON), None, b"{bad", l).unwrap_err();
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["code"], 3);
        assert!(v["message"].as_str().unwrap().contains("invalid JSON"));
    }

    #[test]
    fn default_record_is_the_ruby_shape_and_split_is_per_log_record() {
        let req = otlp::decode_protobuf(&sample_pb()).unwrap();
        let s = Sink::new("otel.${type}", false, Emitter::detached("@ROOT"));
        assert_eq!(s.tag, "otel.logs");
        let es = s.events(&req);
        assert_eq!(es.len(), 1);
        let r = &es.iter().next().unwrap().record;
        assert_eq!(r.get("type"), Some(&Value::from("opentelemetry_logs")));
        assert_eq!(
            r.get("message"),
            Some(&Value::from(
                r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"1000000000","body":{"stringValue":"hi"},"traceId":"W47/95gDgQPSabYzgT/GDA=="}]}]}]}"#
            ))
        );
        let s = Sink::new("otel", true, Emitter::detached("@ROOT"));
        let es = s.events(&req);
        let e = es.iter().next().unwrap();
        assert_eq!(e.time, EventTime::new(1, 0));
        assert_eq!(e.record.get("body"), Some(&Value::from("hi")));
    }

    #[test]
    fn config_needs_a_section() {
        let ctx = PluginContext::for_tests();
        let e = create(
            &crate::test_util::directive("<source>\n@type opentelemetry\ntag t\n</source>"),
            &ctx,
        )
        .err()
        .unwrap();
        assert!(
            e.to_string()
                .contains("Please configure either <http> or <grpc>"),
            "{e}"
        );
        assert!(create(
            &crate::test_util::directive(
                "<source>\n@type opentelemetry\ntag t\n<grpc>\nport 0\n</grpc>\n</source>"
            ),
            &ctx,
        )
        .is_ok());
    }
}
