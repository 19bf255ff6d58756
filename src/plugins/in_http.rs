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

use serde::Deserialize;

use super::in_tcp::{default_bind, half_second, port_of};
use super::parser::{is_not_matched, Defaults, ParserCommon};
use super::{Input, InputContext, Parser, PluginContext};
use crate::config_parser::types::{Size, Time};
use crate::config_parser::{ConfigError, Element, Nested};
use crate::event::{EventStream, EventTime, Record, Value};
use crate::router::Emitter;
use crate::server::{self, Connection, Counters, ReadOutcome, StreamListener, StreamOptions};
use crate::timeparse::TimeParser;

#[derive(Debug, Deserialize)]
struct HttpConfig {
    #[serde(default = "default_port")]
    port: i64,
    #[serde(default = "default_bind")]
    bind: String,
    #[serde(default = "default_body_limit")]
    body_size_limit: Size,
    #[serde(default = "ten_seconds")]
    keepalive_timeout: Time,
    backlog: Option<i64>,
    #[serde(default)]
    add_http_headers: bool,
    #[serde(default)]
    add_remote_addr: bool,
    #[serde(default = "half_second")]
    #[allow(dead_code)]
    blocking_timeout: Time,
    cors_allow_origins: Option<Vec<String>>,
    #[serde(default)]
    cors_allow_credentials: bool,
    #[serde(default)]
    respond_with_empty_img: bool,
    #[serde(default)]
    use_204_response: bool,
    #[serde(default = "yes")]
    dump_error_log: bool,
    #[serde(default)]
    add_query_params: bool,
    #[allow(dead_code)]
    parse: Option<Nested>,
}

fn default_port() -> i64 {
    9880
}
fn default_body_limit() -> Size {
    Size(32 << 20)
}
fn ten_seconds() -> Time {
    Time(10.0)
}
fn yes() -> bool {
    true
}

crate::parser_config! {
    /// `<parse>` of `@type in_http` (the default): only the time settings apply.
    pub struct InHttpParseConf {}
}

/// A 1x1 transparent GIF (`respond_with_empty_img`).
const EMPTY_GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\xff\x00\xff\xff\xff\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";

/// Headers larger than this end the connection (http_parser's limit).
pub const MAX_HEAD: usize = 80 << 10;
/// A decompressed body larger than this is refused.
const MAX_INFLATED: u64 = 256 << 20;
const MAX_HEADERS: usize = 128;

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
    listener: Option<std::net::TcpListener>,
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
        listener: None,
    }))
}

/// A request line and its headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    pub method: String,
    pub target: Vec<u8>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// Header names as sent, with their values; a repeated name holds an array of its values.
    pub headers: Vec<(String, Value)>,
    pub content_length: Option<usize>,
    pub chunked: bool,
}

impl Head {
    /// The first header of this name (case-insensitive), as bytes.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| match v {
                Value::Array(a) => a.first().and_then(|x| x.as_bytes()),
                v => v.as_bytes(),
            })
    }
}

/// Parses a request head from the start of `buf`: `Ok(None)` until it is complete, then the
/// head and its length. An error means the connection is to be closed.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, String> {
    let mut hs = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut hs);
    let used = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("invalid HTTP request: {e}")),
    };
    let mut headers: Vec<(String, Value)> = Vec::new();
    let mut content_length = None;
    let mut chunked = false;
    for h in req.headers.iter() {
        let v = Value::str(h.value);
        if h.name.eq_ignore_ascii_case("content-length") {
            let s = std::str::from_utf8(h.value).map_err(|_| "invalid Content-Length")?;
            let n: usize = s
                .trim()
                .parse()
                .map_err(|_| format!("invalid Content-Length {s:?}"))?;
            if content_length.is_some_and(|c| c != n) {
                return Err("conflicting Content-Length".into());
            }
            content_length = Some(n);
        }
        if h.name.eq_ignore_ascii_case("transfer-encoding")
            && h.value
                .split(|&b| b == b',')
                .any(|p| p.trim_ascii().eq_ignore_ascii_case(b"chunked"))
        {
            chunked = true;
        }
        match headers.iter_mut().find(|(k, _)| k == h.name) {
            Some((_, Value::Array(a))) => a.push(v),
            Some((_, old)) => {
                let first = std::mem::replace(old, Value::Nil);
                *old = Value::Array(vec![first, v]);
            }
            None => headers.push((h.name.to_string(), v)),
        }
    }
    Ok(Some((
        Head {
            method: req.method.unwrap_or("").to_string(),
            target: req.path.unwrap_or("").as_bytes().to_vec(),
            minor: req.version.unwrap_or(1),
            headers,
            content_length,
            chunked,
        },
        used,
    )))
}

/// Why a chunked body could not be read.
#[derive(Debug, PartialEq)]
pub enum ChunkError {
    TooLarge,
    Invalid(String),
}

/// Decodes a chunked body at the start of `buf`: `Ok(None)` until the last chunk and trailers
/// are in, then the body and the bytes used.
pub fn decode_chunked(buf: &[u8], limit: usize) -> Result<Option<(Vec<u8>, usize)>, ChunkError> {
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let Some(eol) = memchr::memmem::find(&buf[pos..], b"\r\n") else {
            if buf.len() - pos > 1024 {
                return Err(ChunkError::Invalid("chunk size line too long".into()));
            }
            return Ok(None);
        };
        let line = &buf[pos..pos + eol];
        let size_part = line
            .split(|&b| b == b';')
            .next()
            .unwrap_or(b"")
            .trim_ascii();
        let size = std::str::from_utf8(size_part)
            .ok()
            .filter(|s| !s.is_empty() && s.len() <= 16)
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .ok_or_else(|| ChunkError::Invalid("invalid chunk size".into()))?;
        pos += eol + 2;
        if size == 0 {
            // Trailers end with an empty line.
            loop {
                let Some(e) = memchr::memmem::find(&buf[pos..], b"\r\n") else {
                    if buf.len() - pos > MAX_HEAD {
                        return Err(ChunkError::Invalid("trailers too long".into()));
                    }
                    return Ok(None);
                };
                pos += e + 2;
                if e == 0 {
                    return Ok(Some((body, pos)));
                }
            }
        }
        if body.len().saturating_add(size) > limit {
            return Err(ChunkError::TooLarge);
        }
        if buf.len() < pos + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        if &buf[pos + size..pos + size + 2] != b"\r\n" {
            return Err(ChunkError::Invalid("missing CRLF after chunk".into()));
        }
        pos += size + 2;
    }
}

/// `%XX` and `+` decoding of a form value (WEBrick's `unescape_form`).
fn unescape_form(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                (Some(a), Some(b)) => {
                    out.push(a * 16 + b);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// WEBrick's `parse_query`: `&`/`;` separated `key=value` pairs; a repeated key keeps its first
/// value.
pub fn parse_query(q: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for part in q.split(|&b| b == b'&' || b == b';') {
        if part.is_empty() {
            continue;
        }
        let (k, v) = match part.iter().position(|&b| b == b'=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, &b""[..]),
        };
        let k = unescape_form(k);
        if out.iter().any(|(x, _)| *x == k) {
            continue;
        }
        out.push((k, unescape_form(v)));
    }
    out
}

/// Ruby's `String#to_f` (the longest numeric prefix, else 0).
pub fn ruby_to_f(s: &[u8]) -> f64 {
    let s = s.trim_ascii_start();
    let mut end = 0;
    let n = s.len();
    if end < n && (s[end] == b'+' || s[end] == b'-') {
        end += 1;
    }
    let digits = |mut i: usize| {
        while i < n
            && (s[i].is_ascii_digit() || (s[i] == b'_' && i > 0 && s[i - 1].is_ascii_digit()))
        {
            i += 1;
        }
        i
    };
    let int_end = digits(end);
    let mut last = if int_end > end { int_end } else { 0 };
    end = int_end;
    if end < n && s[end] == b'.' && end + 1 < n && s[end + 1].is_ascii_digit() {
        end = digits(end + 1);
        last = end;
    }
    if last > 0 && end < n && (s[end] == b'e' || s[end] == b'E') {
        let mut e = end + 1;
        if e < n && (s[e] == b'+' || s[e] == b'-') {
            e += 1;
        }
        let d = digits(e);
        if d > e {
            last = d;
        }
    }
    if last == 0 {
        return 0.0;
    }
    let t: String = s[..last]
        .iter()
        .filter(|&&b| b != b'_')
        .map(|&b| b as char)
        .collect();
    t.parse().unwrap_or(0.0)
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

/// An answer: status line, headers in order, body, and whether to close afterwards.
pub struct Response {
    pub status: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub close: bool,
}

impl Response {
    fn new(status: &'static str, headers: Vec<(&'static str, String)>, body: Vec<u8>) -> Self {
        Response {
            status,
            headers,
            body,
            close: false,
        }
    }

    fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    /// The bytes on the wire, as Fluentd's `send_response` writes them.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut h = self.headers.clone();
        if !h.iter().any(|(k, _)| *k == "Content-Length") {
            h.push(("Content-Length", self.body.len().to_string()));
        }
        if !h.iter().any(|(k, _)| *k == "Content-Type") {
            h.push(("Content-Type", "text/plain".into()));
        }
        let mut out = format!("HTTP/1.1 {}\r\n", self.status).into_bytes();
        for (k, v) in h {
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

const TEXT: (&str, &str) = ("Content-Type", "text/plain");

fn text_header() -> Vec<(&'static str, String)> {
    vec![(TEXT.0, TEXT.1.to_string())]
}

/// The request target split as `URI.parse` does: path and query. `None` for a target Ruby's URI
/// parser refuses.
fn split_target(t: &[u8]) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let ok = |b: &u8| b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(b);
    if !t.iter().all(ok) {
        return None;
    }
    let mut rest = t;
    for scheme in [&b"http://"[..], b"https://"] {
        if rest.len() >= scheme.len() && rest[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let after = &rest[scheme.len()..];
            let cut = after
                .iter()
                .position(|&b| b == b'/' || b == b'?' || b == b'#')
                .unwrap_or(after.len());
            rest = &after[cut..];
        }
    }
    let rest = match memchr::memchr(b'#', rest) {
        Some(i) => &rest[..i],
        None => rest,
    };
    Some(match memchr::memchr(b'?', rest) {
        Some(i) => (rest[..i].to_vec(), Some(rest[i + 1..].to_vec())),
        None => (rest.to_vec(), None),
    })
}

/// `path.split('/').join('.')` of the path without its leading character (Ruby drops trailing
/// empty fields).
fn tag_of(path: &[u8]) -> String {
    let p = path.get(1..).unwrap_or(b"");
    let mut parts: Vec<&[u8]> = p.split(|&b| b == b'/').collect();
    while parts.last().is_some_and(|x| x.is_empty()) {
        parts.pop();
    }
    String::from_utf8_lossy(&parts.join(&b'.')).into_owned()
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
        if self.listener.is_none() {
            self.listener = Some(server::listen_tcp(
                &self.s.bind,
                self.s.port,
                self.s.backlog,
            )?);
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
        let Some(listener) = self.listener.take() else {
            return Ok(());
        };
        let s = self.s.clone();
        let router = ctx.router.clone();
        server::serve_stream(
            StreamListener::Tcp(listener),
            s.opts.clone(),
            ctx.shutdown.clone(),
            Arc::new(Counters::default()),
            move |conn| serve(&s, &router, conn),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_form_decoding() {
        assert_eq!(
            parse_query(b"json=%7B%22a%22%3A1%7D&x=a+b;x=2&&y"),
            vec![
                (b"json".to_vec(), br#"{"a":1}"#.to_vec()),
                (b"x".to_vec(), b"a b".to_vec()),
                (b"y".to_vec(), b"".to_vec()),
            ]
        );
        assert_eq!(unescape_form(b"%zz%4"), b"%zz%4".to_vec());
    }

    #[test]
    fn tags_from_paths() {
        assert_eq!(tag_of(b"/app.login"), "app.login");
        assert_eq!(tag_of(b"/app/nested/path/"), "app.nested.path");
        assert_eq!(tag_of(b"/a//b"), "a..b");
        assert_eq!(tag_of(b"/"), "");
    }

    #[test]
    fn to_f_like_ruby() {
        assert_eq!(ruby_to_f(b"1700000000.25"), 1700000000.25);
        assert_eq!(ruby_to_f(b"soon"), 0.0);
        assert_eq!(ruby_to_f(b"12abc"), 12.0);
        assert_eq!(ruby_to_f(b" -1.5e2x"), -150.0);
        assert_eq!(ruby_to_f(b"1_000"), 1000.0);
        assert_eq!(ruby_to_f(b".5"), 0.5);
    }

    #[test]
    fn heads_and_chunks() {
        let req =
            b"POST /a?b=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nX-A: 2\r\nContent-Length: 3\r\n\r\nabc";
        let (h, used) = parse_head(req).unwrap().unwrap();
        assert_eq!(used, req.len() - 3);
        assert_eq!(h.content_length, Some(3));
        assert_eq!(
            h.headers[1].1,
            Value::Array(vec![Value::str("1"), Value::str("2")])
        );
        assert!(parse_head(b"POST / HTTP/1.1\r\nHost").unwrap().is_none());
        assert!(parse_head(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n").is_err());
        let (b, used) = decode_chunked(b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\nrest", 100)
            .unwrap()
            .unwrap();
        assert_eq!((b.as_slice(), used), (&b"abcde"[..], 24));
        assert_eq!(decode_chunked(b"3\r\nab", 100), Ok(None));
        assert_eq!(decode_chunked(b"ff\r\n", 10), Err(ChunkError::TooLarge));
        assert!(decode_chunked(b"zz\r\n", 10).is_err());
    }

    #[test]
    fn response_bytes() {
        let mut r = Response::new("200 OK", text_header(), vec![]);
        r.headers.push(("Connection", "Keep-Alive".into()));
        assert_eq!(
            r.to_bytes(),
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n"
                .to_vec()
        );
        assert_eq!(EMPTY_GIF.len(), 35);
    }
}
