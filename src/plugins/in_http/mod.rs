//! `@type http`: events POSTed over HTTP/1.1. The tag is the URL path with `/` turned into `.`;
//! the record comes from a `json`/`msgpack`/`ndjson` parameter (query string, form body, or the
//! body itself by content type), or from the raw body through a `<parse>` section. Status codes,
//! headers and bodies of the answers are Fluentd's.
//!
//! Requests are read with `httparse` ([`parse_head`]) and [`decode_chunked`]; both are pure
//! functions over the bytes received so far.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use super::in_tcp::port_of;
use super::parser::{is_not_matched, Defaults, ParserCommon};
use super::{Input, InputContext, Parser, PluginContext};
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventStream, EventTime, Record, Value};
use crate::router::Emitter;
use crate::server::{Connection, ReadOutcome, StreamOptions, TcpServer};
use crate::timeparse::TimeParser;

mod config;
#[cfg(test)]
mod tests;
mod wire;

use config::{HttpConfig, InHttpParseConf};
pub use wire::{decode_chunked, parse_head, parse_query, ruby_to_f, ChunkError, Head, Response};
use wire::{split_target, tag_of, text_header};

/// A 1x1 transparent GIF (`respond_with_empty_img`).
const EMPTY_GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\xff\x00\xff\xff\xff\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";

/// Headers larger than this end the connection (http_parser's limit).
pub const MAX_HEAD: usize = 80 << 10;
/// A decompressed body larger than this is refused.
const MAX_INFLATED: u64 = 256 << 20;

enum Mode {
    /// `json`/`msgpack`/`ndjson` parameters; the record's time field per the in_http parser.
    Default {
        time_key: Vec<u8>,
        keep_time_key: bool,
        time_parser: Option<TimeParser>,
    },
    Custom(Arc<dyn Parser>),
}

struct Settings {
    bind: String,
    port: u16,
    backlog: Option<i32>,
    body_limit: usize,
    add_http_headers: bool,
    add_remote_addr: bool,
    add_query_params: bool,
    cors: Option<Vec<String>>,
    cors_credentials: bool,
    empty_img: bool,
    use_204: bool,
    dump_error_log: bool,
    mode: Mode,
    opts: StreamOptions,
}

pub struct HttpInput {
    s: Arc<Settings>,
    server: TcpServer,
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Input>, ConfigError> {
    let cfg: HttpConfig = ctx.configure(elem, "http")?;
    if cfg.cors_allow_credentials {
        let bad = match &cfg.cors_allow_origins {
            None => true,
            Some(o) => o.iter().any(|x| x == "*"),
        };
        if bad {
            return Err(elem.error("Cannot enable cors_allow_credentials without specific origins"));
        }
    }
    let mode = match elem.child("parse") {
        Some(p) if !matches!(p.plugin_type(), None | Some("in_http") | Some("default")) => {
            Mode::Custom(Arc::from(super::new_parser(p, ctx)?))
        }
        p => {
            let (time_key, keep, tp) = match p {
                Some(p) => {
                    let c: InHttpParseConf = ctx.configure(p, "in_http")?;
                    let common = ParserCommon::build(&c.common(), Defaults::TIME_KEY, p)?;
                    let explicit = p.has("time_type") || p.has("time_format");
                    (
                        c.time_key.unwrap_or_else(|| "time".into()),
                        c.keep_time_key,
                        explicit.then_some(common.time_parser),
                    )
                }
                None => ("time".to_string(), false, None),
            };
            Mode::Default {
                time_key: time_key.into_bytes(),
                keep_time_key: keep,
                time_parser: tp,
            }
        }
    };
    let mut opts = StreamOptions::new("in_http");
    opts.idle_timeout = Some(
        cfg.keepalive_timeout
            .as_duration()
            .max(Duration::from_secs(1)),
    );
    Ok(Box::new(HttpInput {
        s: Arc::new(Settings {
            port: port_of(elem, cfg.port)?,
            bind: cfg.bind,
            backlog: cfg.backlog.map(|b| b.clamp(0, i32::MAX as i64) as i32),
            body_limit: cfg.body_size_limit.0.max(0) as usize,
            add_http_headers: cfg.add_http_headers,
            add_remote_addr: cfg.add_remote_addr,
            add_query_params: cfg.add_query_params,
            cors: cfg.cors_allow_origins,
            cors_credentials: cfg.cors_allow_credentials,
            empty_img: cfg.respond_with_empty_img,
            use_204: cfg.use_204_response,
            dump_error_log: cfg.dump_error_log,
            mode,
            opts,
        }),
        server: TcpServer::default(),
    }))
}

/// Ruby's `Time.at(v)` for a record's time field.
fn time_at(v: &Value) -> Result<EventTime, String> {
    match v {
        Value::Int(i) => Ok(EventTime::new(*i, 0)),
        Value::Float(f) if f.is_finite() => {
            let sec = f.floor();
            let nsec = (((f - sec) * 1e9).floor() as i64).clamp(0, 999_999_999);
            Ok(EventTime::new(sec as i64, nsec as u32))
        }
        Value::Float(_) => Err("Float NaN out of range of integer".into()),
        Value::Bool(true) => Err("can't convert true into an exact number".into()),
        Value::Str(_) | Value::Bin(_) => Err("can't convert String into an exact number".into()),
        Value::Array(_) => Err("can't convert Array into an exact number".into()),
        Value::Map(_) => Err("can't convert Hash into an exact number".into()),
        _ => Err("can't convert into an exact number".into()),
    }
}

fn truthy(v: &Value) -> bool {
    !matches!(v, Value::Nil | Value::Bool(false))
}

/// Request parameters in Ruby Hash order (an update keeps the key's first position).
#[derive(Default)]
struct Params(Vec<(Vec<u8>, Value)>);

impl Params {
    fn set(&mut self, k: Vec<u8>, v: Value) {
        match self.0.iter_mut().find(|(x, _)| *x == k) {
            Some((_, old)) => *old = v,
            None => self.0.push((k, v)),
        }
    }
    fn get(&self, k: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|(x, _)| x == k.as_bytes())
            .map(|(_, v)| v)
    }
}

impl Settings {
    fn cors_allowed(&self, origin: Option<&[u8]>) -> bool {
        let (Some(list), Some(origin)) = (&self.cors, origin) else {
            return false;
        };
        let origin = String::from_utf8_lossy(origin);
        if list.iter().any(|o| *o == origin) {
            return true;
        }
        list.iter().filter(|o| !o.is_empty()).any(|o| {
            let (start, end) = o.split_once('*').unwrap_or((o.as_str(), ""));
            origin.starts_with(start) && origin.ends_with(end)
        })
    }

    fn options(&self, head: &Head) -> Response {
        let forbidden = || Response::new("403 Forbidden", vec![], vec![]).closing();
        let Some(list) = &self.cors else {
            return forbidden();
        };
        if head.get("Access-Control-Request-Method") != Some(b"POST") {
            return forbidden();
        }
        let mut h = vec![
            ("Access-Control-Allow-Methods", "POST".to_string()),
            (
                "Access-Control-Allow-Headers",
                String::from_utf8_lossy(head.get("Access-Control-Request-Headers").unwrap_or(b""))
                    .into_owned(),
            ),
        ];
        let origin = head.get("Origin");
        if list.iter().any(|o| o == "*") {
            h.push(("Access-Control-Allow-Origin", "*".into()));
        } else if self.cors_allowed(origin) {
            h.push((
                "Access-Control-Allow-Origin",
                String::from_utf8_lossy(origin.unwrap_or(b"")).into_owned(),
            ));
            if self.cors_credentials {
                h.push(("Access-Control-Allow-Credentials", "true".into()));
            }
        } else {
            return forbidden();
        }
        Response::new("200 OK", h, vec![]).closing()
    }

    /// One complete request (Fluentd's `on_message_complete`).
    fn handle_request(
        &self,
        head: &Head,
        body: Vec<u8>,
        peer: Option<&str>,
        router: &Emitter,
    ) -> Response {
        let keep_alive = match head.get("Connection") {
            Some(v) if contains_ci(v, b"close") => false,
            Some(v) if contains_ci(v, b"keep-alive") => true,
            _ => head.minor == 1,
        };
        if head.method == "GET" {
            return Response::new("200 OK", vec![], vec![]).closing();
        }
        if head.method == "OPTIONS" {
            return self.options(head);
        }
        let origin = head.get("Origin");
        if let Some(list) = &self.cors {
            if !(list.iter().any(|o| o == "*") || self.cors_allowed(origin)) {
                return Response::new(
                    "403 Forbidden",
                    vec![("Connection", "close".into())],
                    vec![],
                )
                .closing();
            }
        }
        let body = match head.get("Content-Encoding") {
            Some(b"gzip") => inflate(flate2::read::GzDecoder::new(&body[..])),
            Some(b"deflate") => inflate(flate2::read::ZlibDecoder::new(&body[..])),
            _ => Ok(body),
        };
        let body = match body {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("fails to decode payload error=\"{e}\"");
                return Response::new("400 Bad Request", vec![], vec![]).closing();
            }
        };
        let mut remote = peer.map(|p| p.as_bytes().to_vec());
        // The header environment: HTTP_* in request order.
        let mut env = Params::default();
        for (k, v) in &head.headers {
            let name: String = k
                .chars()
                .map(|c| {
                    if c == '-' {
                        '_'
                    } else {
                        c.to_ascii_uppercase()
                    }
                })
                .collect();
            env.set(format!("HTTP_{name}").into_bytes(), v.clone());
            if k.eq_ignore_ascii_case("X-Forwarded-For") {
                let first = match v {
                    Value::Array(a) => a.first().and_then(|x| x.as_bytes()).unwrap_or(b""),
                    v => v.as_bytes().unwrap_or(b""),
                };
                remote = first
                    .split(|&b| b == b',')
                    .next()
                    .filter(|x| !x.is_empty())
                    .map(|x| x.to_vec());
            }
        }
        if let Some(r) = remote {
            env.set(b"REMOTE_ADDR".to_vec(), Value::Str(r));
        }
        let Some((path, query)) = split_target(&head.target) else {
            // URI.parse raises: Fluentd logs and drops the connection.
            tracing::warn!(
                "unexpected error error=\"bad URI: {}\"",
                String::from_utf8_lossy(&head.target)
            );
            return Response::new("", vec![], vec![]).closing();
        };
        let query = query.map(|q| parse_query(&q)).unwrap_or_default();
        let mut params = Params::default();
        for (k, v) in &query {
            params.set(k.clone(), Value::Str(v.clone()));
        }
        let ctype = head.get("Content-Type").unwrap_or(b"");
        if matches!(self.mode, Mode::Custom(_)) {
            params.set(b"_event_record".to_vec(), Value::Str(body));
        } else if ctype.starts_with(b"application/x-www-form-urlencoded") {
            for (k, v) in parse_query(&body) {
                params.set(k, Value::Str(v));
            }
        } else if ctype.starts_with(b"application/json")
            || ctype.starts_with(b"application/csp-report")
        {
            params.set(b"json".to_vec(), Value::Str(body));
        } else if ctype.starts_with(b"application/msgpack") {
            params.set(b"msgpack".to_vec(), Value::Str(body));
        } else if ctype.starts_with(b"application/x-ndjson") {
            params.set(b"ndjson".to_vec(), Value::Str(body));
        }
        if self.add_query_params {
            for (k, v) in &query {
                let name: String = String::from_utf8_lossy(k)
                    .chars()
                    .map(|c| {
                        if c == '-' {
                            '_'
                        } else {
                            c.to_ascii_uppercase()
                        }
                    })
                    .collect();
                params.set(format!("QUERY_{name}").into_bytes(), Value::Str(v.clone()));
            }
        }
        for (k, v) in env.0 {
            params.set(k, v);
        }
        let mut resp = self.on_request(&path, &params, router);
        if let Some(list) = &self.cors {
            if list.iter().any(|o| o == "*") {
                resp.headers
                    .push(("Access-Control-Allow-Origin", "*".into()));
            } else if self.cors_allowed(origin) {
                resp.headers.push((
                    "Access-Control-Allow-Origin",
                    String::from_utf8_lossy(origin.unwrap_or(b"")).into_owned(),
                ));
                if self.cors_credentials {
                    resp.headers
                        .push(("Access-Control-Allow-Credentials", "true".into()));
                }
            }
        }
        if keep_alive {
            resp.headers.push(("Connection", "Keep-Alive".into()));
        } else {
            resp.close = true;
        }
        resp
    }

    /// The records of a request's parameters (Fluentd's `parse_params`), each with the time
    /// the parser gave it.
    fn records(&self, params: &Params) -> Result<Vec<(Option<EventTime>, Record)>, String> {
        let mut out = Vec::new();
        match &self.mode {
            Mode::Custom(p) => {
                let Some(content) = params.get("_event_record").and_then(|v| v.as_bytes()) else {
                    return Err("'_event_record' parameter is required".into());
                };
                match p.parse(content, &mut |t, r| out.push((t, r))) {
                    Ok(()) => {}
                    Err(e) if is_not_matched(&e) => {}
                    Err(e) => return Err(e.0),
                }
            }
            Mode::Default { .. } => {
                let mut push_value = |v: Value| match v {
                    Value::Map(r) => out.push((None, r)),
                    Value::Array(a) => {
                        for e in a {
                            if let Value::Map(r) = e {
                                out.push((None, r));
                            }
                        }
                    }
                    _ => {}
                };
                if let Some(mp) = params.get("msgpack").and_then(|v| v.as_bytes()) {
                    let mut d = crate::event::msgpack::Decoder::new(mp);
                    while !d.at_end() {
                        match d.read_value() {
                            Ok(v) => push_value(v),
                            // An unfinished object waits for more data that never comes.
                            Err(crate::event::msgpack::DErr::Eof) => break,
                            Err(e) => return Err(e.to_string()),
                        }
                    }
                } else if let Some(js) = params.get("json").and_then(|v| v.as_bytes()) {
                    if let Ok(v) = crate::json::decode::parse_value(js) {
                        push_value(v);
                    }
                } else if let Some(nd) = params.get("ndjson").and_then(|v| v.as_bytes()) {
                    for line in nd.split(|&b| b == b'\n') {
                        let line = line.strip_suffix(b"\r").unwrap_or(line);
                        if let Ok(v) = crate::json::decode::parse_value(line) {
                            push_value(v);
                        }
                    }
                } else {
                    return Err("'json', 'ndjson' or 'msgpack' parameter is required".into());
                }
            }
        }
        Ok(out)
    }

    fn on_request(&self, path: &[u8], params: &Params, router: &Emitter) -> Response {
        let tag = tag_of(path);
        let result = self.records(params).and_then(|records| {
            let mut es = EventStream::with_capacity(records.len());
            for (record_time, mut record) in records {
                if self.add_http_headers {
                    for (k, v) in &params.0 {
                        if k.starts_with(b"HTTP_") {
                            record.insert(k.clone(), v.clone());
                        }
                    }
                }
                if self.add_query_params {
                    for (k, v) in &params.0 {
                        if k.starts_with(b"QUERY_") {
                            record.insert(k.clone(), v.clone());
                        }
                    }
                }
                if self.add_remote_addr {
                    let v = params.get("REMOTE_ADDR").cloned().unwrap_or(Value::Nil);
                    record.insert("REMOTE_ADDR", v);
                }
                let time = match params.get("time") {
                    Some(p) => {
                        let f = ruby_to_f(&p.to_ruby_s());
                        if f == 0.0 {
                            EventTime::now()
                        } else {
                            EventTime::from_f64(f)
                        }
                    }
                    None => match record_time {
                        Some(t) => t,
                        None => self.convert_time_field(&mut record)?,
                    },
                };
                es.push(time, record);
            }
            Ok(es)
        });
        let es = match result {
            Ok(es) => es,
            Err(e) => {
                if self.dump_error_log {
                    tracing::error!("failed to process request error=\"{e}\"");
                }
                return Response::new(
                    "400 Bad Request",
                    text_header(),
                    format!("400 Bad Request\n{e}\n").into_bytes(),
                );
            }
        };
        if !es.is_empty() {
            router.emit(&tag, es);
        }
        if self.empty_img {
            Response::new(
                "200 OK",
                vec![("Content-Type", "image/gif; charset=utf-8".into())],
                EMPTY_GIF.to_vec(),
            )
        } else if self.use_204 {
            Response::new("204 No Content", vec![], vec![])
        } else {
            Response::new("200 OK", text_header(), vec![])
        }
    }

    /// The record's time field becomes the event time (and leaves the record unless
    /// `keep_time_key`); no field means now.
    fn convert_time_field(&self, record: &mut Record) -> Result<EventTime, String> {
        let Mode::Default {
            time_key,
            keep_time_key,
            time_parser,
        } = &self.mode
        else {
            let t = record.remove("time");
            return match t {
                Some(v) if truthy(&v) => time_at(&v),
                _ => Ok(EventTime::now()),
            };
        };
        let t = if *keep_time_key {
            record.get(time_key).cloned()
        } else {
            record.remove(time_key)
        };
        match t {
            Some(v) if truthy(&v) => match time_parser {
                Some(p) => p.parse(&v),
                None => time_at(&v),
            },
            _ => Ok(EventTime::now()),
        }
    }
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

fn inflate(r: impl Read) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    r.take(MAX_INFLATED + 1)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() as u64 > MAX_INFLATED {
        return Err(format!(
            "decompressed body larger than {MAX_INFLATED} bytes"
        ));
    }
    Ok(out)
}

/// Reads more into `buf`; false when the connection is over.
fn fill(conn: &mut Connection, buf: &mut Vec<u8>, scratch: &mut [u8]) -> bool {
    match conn.read(scratch) {
        ReadOutcome::Data(n) => {
            buf.extend_from_slice(&scratch[..n]);
            true
        }
        _ => false,
    }
}

fn serve(s: &Settings, router: &Emitter, mut conn: Connection) {
    let peer = conn.remote_addr();
    let mut buf: Vec<u8> = Vec::new();
    let mut scratch = vec![0u8; 64 << 10];
    'requests: loop {
        let (head, used) = loop {
            match parse_head(&buf) {
                Ok(Some(x)) => break x,
                Ok(None) => {
                    if buf.len() > MAX_HEAD {
                        tracing::warn!("unexpected error error=\"request header too large\"");
                        break 'requests;
                    }
                    if !fill(&mut conn, &mut buf, &mut scratch) {
                        break 'requests;
                    }
                }
                Err(e) => {
                    tracing::warn!("unexpected error error=\"{e}\"");
                    break 'requests;
                }
            }
        };
        buf.drain(..used);
        let too_large = || {
            Response::new(
                "413 Request Entity Too Large",
                vec![],
                b"Too large".to_vec(),
            )
            .closing()
        };
        if let Some(expect) = head.get("Expect") {
            let resp = if expect == b"100-continue" {
                match head.content_length {
                    Some(n) if n >= s.body_limit => Some(too_large()),
                    _ => {
                        if !conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n") {
                            break 'requests;
                        }
                        None
                    }
                }
            } else {
                Some(Response::new("417 Expectation Failed", vec![], vec![]).closing())
            };
            if let Some(r) = resp {
                let _ = conn.write_all(&r.to_bytes());
                break 'requests;
            }
        }
        let body = if head.chunked {
            loop {
                match decode_chunked(&buf, s.body_limit) {
                    Ok(Some((body, used))) => {
                        buf.drain(..used);
                        break body;
                    }
                    Ok(None) => {
                        if !fill(&mut conn, &mut buf, &mut scratch) {
                            break 'requests;
                        }
                    }
                    Err(ChunkError::TooLarge) => {
                        let _ = conn.write_all(&too_large().to_bytes());
                        break 'requests;
                    }
                    Err(ChunkError::Invalid(e)) => {
                        tracing::warn!("unexpected error error=\"{e}\"");
                        break 'requests;
                    }
                }
            }
        } else {
            let len = head.content_length.unwrap_or(0);
            if len > s.body_limit {
                let _ = conn.write_all(&too_large().to_bytes());
                break 'requests;
            }
            while buf.len() < len {
                if !fill(&mut conn, &mut buf, &mut scratch) {
                    break 'requests;
                }
            }
            buf.drain(..len).collect()
        };
        let resp = s.handle_request(&head, body, peer.as_deref(), router);
        if !resp.status.is_empty() && !conn.write_all(&resp.to_bytes()) {
            break;
        }
        if resp.close {
            break;
        }
    }
    conn.close();
}

impl Input for HttpInput {
    fn start(&mut self) -> anyhow::Result<()> {
        if self
            .server
            .listen(&self.s.bind, self.s.port, self.s.backlog)?
        {
            tracing::debug!(
                "listening http bind=\"{}\" port={}",
                self.s.bind,
                self.s.port
            );
        }
        Ok(())
    }

    fn run(mut self: Box<Self>, ctx: InputContext) -> anyhow::Result<()> {
        self.start()?;
        let s = self.s.clone();
        let router = ctx.router.clone();
        self.server
            .serve(s.opts.clone(), ctx.shutdown.clone(), move |conn| {
                serve(&s, &router, conn)
            });
        Ok(())
    }
}
