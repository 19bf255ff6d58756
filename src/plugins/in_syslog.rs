//! `@type syslog`: syslog messages over UDP, TCP or TLS (`<transport>`, UDP by default), framed
//! by a delimiter (`traditional`) or by octet counts (`octet_count`), parsed by the `<parse>`
//! section (the syslog parser with `with_priority true` by default) and emitted under
//! `TAG.FACILITY.SEVERITY`.

use std::sync::Arc;

use serde::Deserialize;

use super::in_tcp::{default_bind, half_second, port_of};
use super::in_udp::chomp;
use super::parser::is_not_matched;
use super::{Input, InputContext, Parser, PluginContext};
use crate::config_parser::types::{Size, Time};
use crate::config_parser::{ConfigError, Element, Nested};
use crate::event::{EventStream, EventTime, Record, Value};
use crate::router::Emitter;
use crate::server::framing::{Delimited, OctetCounted};
use crate::server::transport::{self, Protocol, TransportConf};
use crate::server::{
    self, Connection, Counters, HostCache, ReadOutcome, SourceKeys, StreamListener, StreamOptions,
};

const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "at", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];
const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warn", "notice", "info", "debug",
];

#[derive(Debug, Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum FrameType {
    Traditional,
    OctetCount,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum ProtocolType {
    Tcp,
    Udp,
}

#[derive(Debug, Deserialize)]
struct SyslogConfig {
    #[serde(default = "default_port")]
    port: i64,
    #[serde(default = "default_bind")]
    bind: String,
    tag: String,
    protocol_type: Option<ProtocolType>,
    #[serde(default = "traditional")]
    frame_type: FrameType,
    #[serde(default)]
    include_source_host: bool,
    #[serde(default = "source_host")]
    source_host_key: String,
    #[serde(default)]
    emit_unmatched_lines: bool,
    source_hostname_key: Option<String>,
    resolve_hostname: Option<bool>,
    #[serde(default)]
    send_keepalive_packet: bool,
    source_address_key: Option<String>,
    severity_key: Option<String>,
    priority_key: Option<String>,
    facility_key: Option<String>,
    #[serde(default = "default_limit")]
    message_length_limit: Size,
    #[serde(default = "half_second")]
    #[allow(dead_code)]
    blocking_timeout: Time,
    #[serde(default = "newline")]
    delimiter: String,
    backlog: Option<i64>,
    #[allow(dead_code)]
    parse: Option<Nested>,
    transport: Option<TransportConf>,
    // Flat (v0) parser parameters: copied into the default `<parse>` section.
    #[allow(dead_code)]
    message_format: Option<String>,
    #[allow(dead_code)]
    with_priority: Option<String>,
    #[allow(dead_code)]
    rfc5424_time_format: Option<String>,
    #[allow(dead_code)]
    time_format: Option<String>,
    #[allow(dead_code)]
    time_key: Option<String>,
    #[allow(dead_code)]
    keep_time_key: Option<String>,
    #[allow(dead_code)]
    localtime: Option<String>,
    #[allow(dead_code)]
    utc: Option<String>,
    #[allow(dead_code)]
    timezone: Option<String>,
}

/// Fluentd's compat layer: without a `<parse>` section, any flat parser parameter is copied
/// into one.
const FLAT_PARSER_PARAMS: &[&str] = &[
    "message_format",
    "with_priority",
    "rfc5424_time_format",
    "time_format",
    "time_key",
    "keep_time_key",
    "localtime",
    "utc",
    "timezone",
];

fn default_port() -> i64 {
    5140
}
fn traditional() -> FrameType {
    FrameType::Traditional
}
fn source_host() -> String {
    "source_host".into()
}
fn default_limit() -> Size {
    Size(2048)
}
fn newline() -> String {
    "\n".into()
}

struct Settings {
    tag: String,
    bind: String,
    port: u16,
    backlog: Option<i32>,
    protocol: Protocol,
    frame: FrameType,
    delimiter: Vec<u8>,
    max_bytes: usize,
    emit_unmatched: bool,
    /// The parser reads `<PRI>` itself (the syslog parser with `with_priority`).
    parser_reads_pri: bool,
    severity_key: Option<Vec<u8>>,
    facility_key: Option<Vec<u8>>,
    keys: SourceKeys,
    parser: Arc<dyn Parser>,
    opts: StreamOptions,
}

enum Bound {
    Udp(std::net::UdpSocket),
    Tcp(std::net::TcpListener),
}

pub struct SyslogInput {
    s: Arc<Settings>,
    bound: Option<Bound>,
}

fn is_false(v: Option<&str>) -> bool {
    matches!(v.map(str::trim), Some("false") | Some("no"))
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Input>, ConfigError> {
    Ok(Box::new(build(elem, ctx)?))
}

fn build(elem: &Element, ctx: &PluginContext) -> Result<SyslogInput, ConfigError> {
    let cfg: SyslogConfig = ctx.configure(elem, "syslog")?;
    // The `<parse>` section defaults to `@type syslog` with `with_priority true`.
    let mut parse = match elem.child("parse") {
        Some(p) => p.clone(),
        None => {
            let mut p = Element::new("parse", "", elem.span.clone());
            for k in FLAT_PARSER_PARAMS {
                if let Some(v) = elem.get(k) {
                    p.set(k, v);
                }
            }
            p
        }
    };
    if parse.plugin_type().is_none() {
        parse.set("@type", "syslog");
    }
    let is_syslog = parse.plugin_type() == Some("syslog");
    let parser_reads_pri = is_syslog && !is_false(parse.get("with_priority"));
    if is_syslog && !parse.has("with_priority") {
        parse.set("with_priority", "true");
    }
    let parser: Arc<dyn Parser> = Arc::from(super::new_parser(&parse, ctx)?);
    if cfg.priority_key.is_some() {
        tracing::warn!("priority_key is deprecated. Use severity_key instead");
    }
    let mut source_address_key = cfg.source_address_key;
    if cfg.include_source_host {
        if source_address_key.is_some() {
            return Err(elem.error("specify either source_address_key or include_source_host"));
        }
        source_address_key = Some(cfg.source_host_key.clone());
    }
    if cfg.source_hostname_key.is_some() && cfg.resolve_hostname == Some(false) {
        return Err(elem.error("resolve_hostname must be true with source_hostname_key"));
    }
    let protocol = match (cfg.protocol_type, &cfg.transport) {
        (Some(ProtocolType::Tcp), _) => Protocol::Tcp,
        (Some(ProtocolType::Udp), _) => Protocol::Udp,
        (None, Some(t)) => t
            .protocol(
                Protocol::Udp,
                &[Protocol::Tcp, Protocol::Udp, Protocol::Tls],
            )
            .map_err(|e| elem.error(e))?,
        (None, None) => Protocol::Udp,
    };
    if cfg.send_keepalive_packet && protocol == Protocol::Udp {
        return Err(elem.error("send_keepalive_packet is available for tcp/tls"));
    }
    let mut opts = StreamOptions::new("in_syslog");
    opts.send_keepalive_packet = cfg.send_keepalive_packet;
    if let Some(t) = &cfg.transport {
        if protocol == Protocol::Tls {
            opts.tls = Some(transport::tls_config(elem, t)?);
        }
        if t.linger_timeout > 0 {
            opts.linger = Some(std::time::Duration::from_secs(t.linger_timeout as u64));
        }
    }
    Ok(SyslogInput {
        s: Arc::new(Settings {
            tag: cfg.tag,
            port: port_of(elem, cfg.port)?,
            bind: cfg.bind,
            backlog: cfg.backlog.map(|b| b.clamp(0, i32::MAX as i64) as i32),
            protocol,
            frame: cfg.frame_type,
            delimiter: cfg.delimiter.into_bytes(),
            max_bytes: cfg.message_length_limit.0.clamp(0, 1 << 20) as usize,
            emit_unmatched: cfg.emit_unmatched_lines,
            parser_reads_pri,
            severity_key: cfg
                .severity_key
                .or(cfg.priority_key)
                .map(String::into_bytes),
            facility_key: cfg.facility_key.map(String::into_bytes),
            keys: SourceKeys::new(source_address_key, cfg.source_hostname_key),
            parser,
            opts,
        }),
        bound: None,
    })
}

/// `<PRI>` at the start (Fluentd's `/^\<([0-9]+)\>(.*)/`): the priority and the rest of the
/// first line.
fn split_pri(data: &[u8]) -> Option<(i64, &[u8])> {
    let rest = data.strip_prefix(b"<")?;
    let close = rest.iter().position(|&b| b == b'>')?;
    let digits = &rest[..close];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let pri = std::str::from_utf8(digits)
        .ok()?
        .parse::<i64>()
        .unwrap_or(i64::MAX);
    let text = &rest[close + 1..];
    let line_end = memchr::memchr(b'\n', text).unwrap_or(text.len());
    Some((pri, &text[..line_end]))
}

/// Events of one read, emitted in order, consecutive events of one tag as one stream.
#[derive(Default)]
struct Batch {
    tag: String,
    es: EventStream,
}

impl Batch {
    fn push(&mut self, router: &Emitter, tag: String, time: EventTime, record: Record) {
        if tag != self.tag && !self.es.is_empty() {
            self.flush(router);
        }
        self.tag = tag;
        self.es.push(time, record);
    }

    fn flush(&mut self, router: &Emitter) {
        if !self.es.is_empty() {
            router.emit(&self.tag, std::mem::take(&mut self.es));
        }
    }
}

impl Settings {
    fn unmatched(
        &self,
        data: &[u8],
        addr: Option<&str>,
        host: Option<&str>,
        router: &Emitter,
        batch: &mut Batch,
    ) {
        if !self.emit_unmatched {
            return;
        }
        let mut r = Record::with_capacity(3);
        r.insert("unmatched_line", Value::str(data));
        self.keys.apply(&mut r, addr, host);
        batch.push(
            router,
            format!("{}.unmatched", self.tag),
            EventTime::now(),
            r,
        );
    }

    /// One syslog message (Fluentd's `message_handler`).
    fn message(
        &self,
        data: &[u8],
        addr: Option<&str>,
        host: Option<&str>,
        router: &Emitter,
        batch: &mut Batch,
    ) {
        let (mut pri, text) = if self.parser_reads_pri {
            (None, data)
        } else {
            match split_pri(data) {
                Some((p, t)) => (Some(p), t),
                None => {
                    self.unmatched(data, addr, host, router, batch);
                    tracing::warn!(
                        "invalid syslog message: {:?}",
                        String::from_utf8_lossy(data)
                    );
                    return;
                }
            }
        };
        let mut parsed: Vec<(Option<EventTime>, Record)> = Vec::with_capacity(1);
        let res = self.parser.parse(text, &mut |t, r| parsed.push((t, r)));
        match res {
            Err(e) if is_not_matched(&e) => {
                self.unmatched(data, addr, host, router, batch);
                tracing::warn!(
                    "failed to parse message data={:?}",
                    String::from_utf8_lossy(data)
                );
                return;
            }
            Err(e) => {
                self.unmatched(data, addr, host, router, batch);
                tracing::error!(
                    "invalid input data={:?} error=\"{e}\"",
                    String::from_utf8_lossy(data)
                );
                return;
            }
            Ok(()) => {}
        }
        for (time, mut record) in parsed {
            let Some(time) = time else {
                self.unmatched(data, addr, host, router, batch);
                tracing::warn!(
                    "failed to parse message data={:?}",
                    String::from_utf8_lossy(data)
                );
                return;
            };
            let from_record = record.remove("pri");
            if pri.is_none() {
                pri = match from_record {
                    Some(Value::Int(p)) => Some(p),
                    _ => None,
                };
            }
            let Some(p) = pri.filter(|p| *p >= 0) else {
                self.unmatched(data, addr, host, router, batch);
                tracing::error!(
                    "invalid input data={:?} error=\"no priority\"",
                    String::from_utf8_lossy(data)
                );
                return;
            };
            let facility = FACILITIES.get((p >> 3) as usize).copied();
            let severity = SEVERITIES[(p & 7) as usize];
            let val = |s: Option<&str>| s.map(Value::str).unwrap_or(Value::Nil);
            if let Some(k) = &self.severity_key {
                record.insert(k.clone(), Value::str(severity));
            }
            if let Some(k) = &self.facility_key {
                record.insert(k.clone(), val(facility));
            }
            self.keys.apply(&mut record, addr, host);
            let tag = format!("{}.{}.{}", self.tag, facility.unwrap_or(""), severity);
            batch.push(router, tag, time, record);
        }
    }
}

fn handle(s: &Settings, router: &Emitter, mut conn: Connection) {
    let addr = conn.remote_addr();
    let host = if s.keys.hostname.is_some() {
        conn.remote_host()
    } else {
        None
    };
    let mut delimited = Delimited::new(&s.delimiter, None);
    let mut counted = OctetCounted::new(None);
    let mut buf = vec![0u8; 64 << 10];
    while let ReadOutcome::Data(n) = conn.read(&mut buf) {
        let mut batch = Batch::default();
        let mut on_msg =
            |m: &[u8]| s.message(m, addr.as_deref(), host.as_deref(), router, &mut batch);
        let ok = match s.frame {
            FrameType::Traditional => {
                delimited.feed(&buf[..n], &mut on_msg);
                true
            }
            FrameType::OctetCount => match counted.feed(&buf[..n], &mut on_msg) {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(
                        "unexpected error on reading data host=\"{}\" error=\"{e}\"",
                        addr.as_deref().unwrap_or("")
                    );
                    false
                }
            },
        };
        batch.flush(router);
        if !ok {
            break;
        }
    }
    conn.close();
}

impl Input for SyslogInput {
    fn start(&mut self) -> anyhow::Result<()> {
        if self.bound.is_some() {
            return Ok(());
        }
        let s = &self.s;
        self.bound = Some(match s.protocol {
            Protocol::Udp => Bound::Udp(server::bind_udp(&s.bind, s.port, None)?),
            _ => Bound::Tcp(server::listen_tcp(&s.bind, s.port, s.backlog)?),
        });
        let proto = match s.protocol {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
            Protocol::Tls => "tls",
        };
        tracing::info!(
            "listening syslog socket on {}:{} with {proto}",
            s.bind,
            s.port
        );
        Ok(())
    }

    fn run(mut self: Box<Self>, ctx: InputContext) -> anyhow::Result<()> {
        self.start()?;
        let s = self.s.clone();
        match self.bound.take() {
            Some(Bound::Udp(sock)) => {
                let mut hosts = HostCache::default();
                server::serve_udp(&sock, s.max_bytes, &ctx.shutdown, |data, from| {
                    let ip = server::peer_ip(&from);
                    let addr = ip.to_string();
                    let host = s.keys.hostname.as_ref().map(|_| hosts.lookup(ip));
                    let mut batch = Batch::default();
                    s.message(
                        chomp(data),
                        Some(&addr),
                        host.as_deref(),
                        &ctx.router,
                        &mut batch,
                    );
                    batch.flush(&ctx.router);
                });
            }
            Some(Bound::Tcp(listener)) => {
                let router = ctx.router.clone();
                let s2 = s.clone();
                server::serve_stream(
                    StreamListener::Tcp(listener),
                    s.opts.clone(),
                    ctx.shutdown.clone(),
                    Arc::new(Counters::default()),
                    move |conn| handle(&s2, &router, conn),
                );
            }
            None => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings of a syslog source, and what its messages emit.
    fn emitted(conf: &str, msgs: &[&[u8]]) -> Vec<(String, String)> {
        let elem = crate::test_util::directive(&format!(
            "<source>\n@type syslog\ntag s\n{conf}\n</source>"
        ));
        let input = build(&elem, &PluginContext::for_tests()).unwrap();
        let router = Emitter::collector("t");
        for m in msgs {
            let mut b = Batch::default();
            input.s.message(m, Some("127.0.0.1"), None, &router, &mut b);
            b.flush(&router);
        }
        router
            .collected()
            .into_iter()
            .flat_map(|(tag, es)| {
                es.into_iter().map(move |e| {
                    (
                        tag.clone(),
                        String::from_utf8_lossy(&crate::json::encode::record_to_vec(&e.record))
                            .into_owned(),
                    )
                })
            })
            .collect()
    }

    #[test]
    fn flat_parser_params_and_keys() {
        let out = emitted(
            "message_format rfc5424\nfacility_key f\npriority_key p\nsource_address_key a",
            &[
                b"<165>1 2023-11-14T22:13:20Z h app - - - hi",
                b"<13>Feb  5 17:32:18 h app: old",
            ],
        );
        assert_eq!(
            out,
            vec![(
                "s.local4.notice".to_string(),
                r#"{"host":"h","ident":"app","pid":"-","msgid":"-","extradata":"-","message":"hi","p":"notice","f":"local4","a":"127.0.0.1"}"#.to_string()
            )]
        );
        let out = emitted(
            "emit_unmatched_lines true\n<parse>\n@type none\n</parse>",
            &[b"<14>any text\nsecond line", b"no pri"],
        );
        assert_eq!(
            out[0],
            (
                "s.user.info".to_string(),
                r#"{"message":"any text"}"#.to_string()
            )
        );
        assert_eq!(
            out[1],
            (
                "s.unmatched".to_string(),
                r#"{"unmatched_line":"no pri"}"#.to_string()
            )
        );
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn pri_prefix() {
        assert_eq!(split_pri(b"<34>rest\nmore"), Some((34, &b"rest"[..])));
        assert_eq!(split_pri(b"<>x"), None);
        assert_eq!(split_pri(b"no"), None);
        assert_eq!(split_pri(b"<3a>x"), None);
    }
}
