//! `@type tcp`: reads delimiter-separated messages from TCP (or TLS) connections, parses each with
//! the `<parse>` section and emits what one read completed as one stream under `tag`. A trailing
//! piece without the delimiter is never emitted.

use std::net::ToSocketAddrs;
use std::sync::Arc;

use serde::Deserialize;

use super::extract::Extract;
use super::{Input, InputContext, Parser, PluginContext};
use crate::config_parser::types::{Size, Time};
use crate::config_parser::{ConfigError, Element, Nested};
use crate::event::{EventStream, EventTime, Record};
use crate::forward::handshake::IpNet;
use crate::server::framing::Delimited;
use crate::server::transport::{self, Protocol, TransportConf};
use crate::server::{self, Connection, ReadOutcome, SourceKeys, StreamOptions, TcpServer};

#[derive(Debug, Deserialize)]
struct ClientConf {
    host: Option<String>,
    network: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SecurityConf {
    #[serde(default)]
    client: Vec<ClientConf>,
}

#[derive(Debug, Deserialize)]
struct TcpConfig {
    tag: String,
    #[serde(default = "default_port")]
    port: i64,
    #[serde(default = "default_bind")]
    bind: String,
    source_host_key: Option<String>,
    source_hostname_key: Option<String>,
    source_address_key: Option<String>,
    message_length_limit: Option<Size>,
    #[serde(default = "half_second")]
    #[allow(dead_code)]
    blocking_timeout: Time,
    #[serde(default = "newline")]
    delimiter: String,
    #[serde(default)]
    send_keepalive_packet: bool,
    backlog: Option<i64>,
    security: Option<SecurityConf>,
    transport: Option<TransportConf>,
    #[allow(dead_code)]
    parse: Option<Nested>,
    #[allow(dead_code)]
    extract: Option<Nested>,
}

fn default_port() -> i64 {
    5170
}
pub(crate) fn default_bind() -> String {
    "0.0.0.0".into()
}
pub(crate) fn half_second() -> Time {
    Time(0.5)
}
fn newline() -> String {
    "\n".into()
}

/// A `port` parameter as a u16, or Fluentd-like config error.
pub(crate) fn port_of(elem: &Element, port: i64) -> Result<u16, ConfigError> {
    u16::try_from(port).map_err(|_| match elem.param("port") {
        Some(p) => ConfigError::at(format!("invalid port {port}"), &p.span),
        None => elem.error(format!("invalid port {port}")),
    })
}

/// The `<security><client>` rules of in_tcp (addresses allowed to connect).
fn client_rules(
    elem: &Element,
    sec: Option<SecurityConf>,
) -> Result<Option<Vec<IpNet>>, ConfigError> {
    let Some(sec) = sec else { return Ok(None) };
    let se = elem.child("security").unwrap_or(elem);
    let mut nets = Vec::new();
    for c in sec.client {
        let net = match (&c.host, &c.network) {
            (Some(_), Some(_)) => {
                return Err(se.error("both of 'host' and 'network' are specified for client"))
            }
            (None, None) => {
                return Err(se.error("Either of 'host' and 'network' must be specified for client"))
            }
            (Some(h), None) => {
                let a = (h.as_str(), 0)
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| se.error(format!("host '{h}' cannot be resolved")))?;
                IpNet::single(a.ip())
            }
            (None, Some(n)) => IpNet::parse(n)
                .ok_or_else(|| se.error(format!("network '{n}' address format is invalid")))?,
        };
        nets.push(net);
    }
    Ok(Some(nets))
}

struct Settings {
    tag: String,
    bind: String,
    port: u16,
    backlog: Option<i32>,
    delimiter: Vec<u8>,
    limit: Option<usize>,
    keys: SourceKeys,
    clients: Option<Vec<IpNet>>,
    parser: Arc<dyn Parser>,
    /// `<extract>`; with a `tag_key` each event is emitted on its own, under its own tag.
    extract: Option<Extract>,
    opts: StreamOptions,
}

pub struct TcpInput {
    s: Arc<Settings>,
    server: TcpServer,
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Input>, ConfigError> {
    let parse = elem
        .child("parse")
        .ok_or_else(|| elem.error("<parse> section is required."))?;
    let cfg: TcpConfig = ctx.configure(elem, "tcp")?;
    let parser: Arc<dyn Parser> = Arc::from(super::new_parser(parse, ctx)?);
    let port = port_of(elem, cfg.port)?;
    let extract = Extract::from_section(elem.child("extract"), ctx)?;
    let mut opts = StreamOptions::new("in_tcp");
    opts.send_keepalive_packet = cfg.send_keepalive_packet;
    if let Some(t) = &cfg.transport {
        let p = t
            .protocol(Protocol::Tcp, &[Protocol::Tcp, Protocol::Tls])
            .map_err(|e| elem.error(e))?;
        if p == Protocol::Tls {
            opts.tls = Some(transport::tls_config(elem, t)?);
        }
        if t.linger_timeout > 0 {
            opts.linger = Some(std::time::Duration::from_secs(t.linger_timeout as u64));
        }
    }
    Ok(Box::new(TcpInput {
        s: Arc::new(Settings {
            tag: cfg.tag,
            bind: cfg.bind,
            port,
            backlog: cfg.backlog.map(|b| b.clamp(0, i32::MAX as i64) as i32),
            delimiter: cfg.delimiter.into_bytes(),
            limit: cfg.message_length_limit.map(|s| s.0.max(0) as usize),
            keys: SourceKeys::new(
                cfg.source_address_key,
                cfg.source_hostname_key.or(cfg.source_host_key),
            ),
            clients: client_rules(elem, cfg.security)?,
            parser,
            extract,
            opts,
        }),
        server: TcpServer::default(),
    }))
}

/// Is this peer allowed by `<security>`? Logs Fluentd's warning when not.
pub(crate) fn check_client(clients: &Option<Vec<IpNet>>, conn: &Connection) -> bool {
    let Some(nets) = clients else { return true };
    let Some(peer) = conn.peer else { return true };
    let ip = server::peer_ip(&peer);
    if nets.iter().any(|n| n.contains(ip)) {
        return true;
    }
    tracing::warn!("anonymous client '{ip}' denied");
    false
}

fn handle(s: &Settings, router: &crate::router::Emitter, mut conn: Connection) {
    if !check_client(&s.clients, &conn) {
        conn.close();
        return;
    }
    let addr = conn.remote_addr();
    let host = if s.keys.hostname.is_some() {
        conn.remote_host()
    } else {
        None
    };
    let mut split = Delimited::new(&s.delimiter, s.limit);
    let mut buf = vec![0u8; 64 << 10];
    let single_emit = s.extract.as_ref().is_some_and(Extract::has_tag_key);
    while let ReadOutcome::Data(n) = conn.read(&mut buf) {
        let mut es = EventStream::new();
        split.feed(&buf[..n], &mut |msg| {
            parse_message(
                &*s.parser,
                &s.keys,
                s.extract.as_ref(),
                msg,
                "message",
                addr.as_deref(),
                host.as_deref(),
                &mut |tag, time, record| {
                    if single_emit {
                        let tag = tag.as_deref().unwrap_or(&s.tag);
                        router.emit(tag, EventStream::one(time, record));
                    } else {
                        es.push(time, record);
                    }
                },
            );
        });
        if !es.is_empty() {
            router.emit(&s.tag, es);
        }
    }
    conn.close();
}

impl Input for TcpInput {
    fn start(&mut self) -> anyhow::Result<()> {
        if self
            .server
            .listen(&self.s.bind, self.s.port, self.s.backlog)?
        {
            tracing::info!(
                "listening tcp socket bind=\"{}\" port={}",
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
                handle(&s, &router, conn)
            });
        Ok(())
    }
}

/// Parses one message of in_tcp/in_udp and hands each event to `out` with the tag `<extract>`
/// took from it (taken before the source keys are added, as Fluentd does); a message the parser
/// rejects is logged with Fluentd's wording (`field` is `message` for tcp, `data` for udp).
/// The parser always gives a time here, so `<extract>`'s time key is never consulted (Fluentd's
/// `time ||= extract_time_from_record(record)` does the same).
#[allow(clippy::too_many_arguments)]
pub(super) fn parse_message(
    parser: &dyn Parser,
    keys: &SourceKeys,
    extract: Option<&Extract>,
    msg: &[u8],
    field: &str,
    addr: Option<&str>,
    host: Option<&str>,
    out: &mut dyn FnMut(Option<String>, EventTime, Record),
) {
    let r = parser.parse(msg, &mut |time, mut record| match time {
        Some(t) => {
            let tag = extract.and_then(|x| x.tag(&mut record));
            keys.apply(&mut record, addr, host);
            out(tag, t, record);
        }
        None => tracing::warn!(
            "pattern not matched {field}={:?}",
            String::from_utf8_lossy(msg)
        ),
    });
    match r {
        Ok(()) => {}
        Err(e) if super::parser::is_not_matched(&e) => tracing::warn!(
            "pattern not matched {field}={:?}",
            String::from_utf8_lossy(msg)
        ),
        Err(e) => tracing::warn!(
            "invalid message {field}={:?} error=\"{e}\"",
            String::from_utf8_lossy(msg)
        ),
    }
}
