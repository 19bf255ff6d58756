//! `@type forward`: receives the forward protocol (msgpack in its four modes, or JSON) over TCP or
//! TLS, answers UDP heartbeats on the same port, acknowledges chunks, and authenticates clients
//! with the shared-key handshake when `<security>` is set.
//!
//! One thread per connection: a connection is read, decoded and emitted in order, and its next
//! read waits for the emit, so a blocked buffer slows exactly the senders that feed it. A chunk
//! is acknowledged only after its events were emitted.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Deserialize;

use super::{Input, InputContext, PluginContext};
use crate::config_parser::types::{Size, Time};
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventTime, Value};
use crate::forward::codec::{self, DecodeOptions, RawMessage, ScanState};
use crate::forward::handshake::{self, ClientRule, IpNet, ServerSecurity};
use crate::forward::Stream;
use crate::router::{Emitter, Shutdown};
use crate::server::transport::{self, Protocol, TransportConf};
use crate::server::{self, peer_ip, reverse_lookup, wait_readable};

#[derive(Debug, Deserialize)]
struct UserConf {
    username: String,
    password: String,
}

#[derive(Debug, Deserialize)]
struct ClientConf {
    host: Option<String>,
    network: Option<String>,
    shared_key: Option<String>,
    #[serde(default)]
    users: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct SecurityConf {
    self_hostname: String,
    shared_key: String,
    #[serde(default)]
    user_auth: bool,
    #[serde(default = "yes")]
    allow_anonymous_source: bool,
    #[serde(default)]
    user: Vec<UserConf>,
    #[serde(default)]
    client: Vec<ClientConf>,
}

#[derive(Debug, Deserialize)]
struct ForwardInputConfig {
    #[serde(default = "default_port")]
    port: i64,
    #[serde(default = "default_bind")]
    bind: String,
    backlog: Option<i64>,
    linger_timeout: Option<i64>,
    #[serde(default = "half_second")]
    blocking_timeout: Time,
    resolve_hostname: Option<bool>,
    #[serde(default)]
    deny_keepalive: bool,
    #[serde(default)]
    send_keepalive_packet: bool,
    chunk_size_warn_limit: Option<Size>,
    chunk_size_limit: Option<Size>,
    #[serde(default = "default_decompression_limit")]
    decompression_size_limit: Size,
    #[serde(default = "yes")]
    skip_invalid_event: bool,
    source_address_key: Option<String>,
    source_hostname_key: Option<String>,
    tag: Option<String>,
    add_tag_prefix: Option<String>,
    security: Option<SecurityConf>,
    transport: Option<TransportConf>,
}

fn yes() -> bool {
    true
}
fn default_port() -> i64 {
    24224
}
fn default_bind() -> String {
    "0.0.0.0".into()
}
fn half_second() -> Time {
    Time(0.5)
}
fn default_decompression_limit() -> Size {
    Size(256 << 20)
}

/// A message larger than this is refused even without `chunk_size_limit`: the connection would
/// otherwise buffer without bound.
const MAX_MESSAGE: usize = 1 << 30;
const READ_SIZE: usize = 1 << 20;

struct Settings {
    bind: String,
    port: u16,
    backlog: Option<i32>,
    linger: Option<u64>,
    receive_buffer_size: Option<usize>,
    blocking_timeout: Duration,
    resolve_hostname: bool,
    deny_keepalive: bool,
    send_keepalive_packet: bool,
    chunk_size_warn_limit: Option<usize>,
    chunk_size_limit: Option<usize>,
    skip_invalid_event: bool,
    source_address_key: Option<Vec<u8>>,
    source_hostname_key: Option<Vec<u8>>,
    decode: DecodeOptions,
    security: Option<ServerSecurity>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

pub struct ForwardInput {
    settings: Arc<Settings>,
    /// Bound by `start`, so that a port in use stops start-up.
    sockets: Option<(TcpListener, UdpSocket)>,
}

fn param_error(elem: &Element, key: &str, msg: String) -> ConfigError {
    match elem.param(key) {
        Some(p) => ConfigError::at(msg, &p.span),
        None => elem.error(msg),
    }
}

fn build_security(elem: &Element, sec: SecurityConf) -> Result<ServerSecurity, ConfigError> {
    let sec_elem = elem.child("security").unwrap_or(elem);
    if sec.user_auth && sec.user.is_empty() {
        return Err(sec_elem.error("<user> sections required if user_auth enabled"));
    }
    if !sec.allow_anonymous_source && sec.client.is_empty() {
        return Err(sec_elem.error("<client> sections required if allow_anonymous_source disabled"));
    }
    let client_elems: Vec<&Element> = sec_elem.children("client").collect();
    let mut clients = Vec::new();
    for (i, c) in sec.client.into_iter().enumerate() {
        let ce = client_elems.get(i).copied().unwrap_or(sec_elem);
        let network = match (&c.host, &c.network) {
            (Some(_), Some(_)) => {
                return Err(ce.error("both of 'host' and 'network' are specified for client"))
            }
            (None, None) => {
                return Err(ce.error("Either of 'host' and 'network' must be specified for client"))
            }
            (Some(h), None) => {
                let addr = (h.as_str(), 0)
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| ce.error(format!("host '{h}' cannot be resolved")))?;
                IpNet::single(addr.ip())
            }
            (None, Some(n)) => IpNet::parse(n).ok_or_else(|| {
                param_error(
                    ce,
                    "network",
                    format!("network '{n}' address format is invalid"),
                )
            })?,
        };
        clients.push(ClientRule {
            network,
            shared_key: c.shared_key.unwrap_or_else(|| sec.shared_key.clone()),
            users: c.users,
        });
    }
    Ok(ServerSecurity {
        self_hostname: sec.self_hostname,
        shared_key: sec.shared_key,
        user_auth: sec.user_auth,
        allow_anonymous_source: sec.allow_anonymous_source,
        users: sec
            .user
            .into_iter()
            .map(|u| (u.username, u.password))
            .collect(),
        clients,
    })
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Input>, ConfigError> {
    let cfg: ForwardInputConfig = ctx.configure(elem, "forward")?;
    if cfg.tag.as_deref() == Some("") {
        return Err(param_error(
            elem,
            "tag",
            "'tag' parameter must not be empty".into(),
        ));
    }
    if cfg.add_tag_prefix.as_deref() == Some("") {
        return Err(param_error(
            elem,
            "add_tag_prefix",
            "'add_tag_prefix' parameter must not be empty".into(),
        ));
    }
    let mut resolve_hostname = cfg.resolve_hostname.unwrap_or(false);
    if cfg.source_hostname_key.is_some() {
        if cfg.resolve_hostname == Some(false) {
            return Err(param_error(
                elem,
                "resolve_hostname",
                "resolve_hostname must be true with source_hostname_key".into(),
            ));
        }
        resolve_hostname = true;
    }
    if cfg.send_keepalive_packet && cfg.deny_keepalive {
        return Err(
            elem.error("both 'send_keepalive_packet' and 'deny_keepalive' cannot be set to true")
        );
    }
    let port = u16::try_from(cfg.port)
        .map_err(|_| param_error(elem, "port", format!("invalid port {}", cfg.port)))?;
    let security = match cfg.security {
        Some(sec) => Some(build_security(elem, sec)?),
        None => None,
    };
    let tls = match &cfg.transport {
        Some(t) => match t
            .protocol(Protocol::Tcp, &[Protocol::Tcp, Protocol::Tls])
            .map_err(|e| param_error(elem, "transport", e))?
        {
            Protocol::Tls => Some(transport::tls_config(elem, t)?),
            _ => None,
        },
        None => None,
    };
    // The deprecated top-level linger_timeout wins over `<transport>`'s (default 0).
    let linger = cfg
        .linger_timeout
        .or(Some(
            cfg.transport
                .as_ref()
                .map(|t| t.linger_timeout)
                .unwrap_or(0),
        ))
        .map(|l| l.max(0) as u64);
    let size_opt = |s: Option<Size>| s.map(|s| s.0.max(0) as usize);
    Ok(Box::new(ForwardInput {
        settings: Arc::new(Settings {
            bind: cfg.bind,
            port,
            backlog: cfg.backlog.map(|b| b.clamp(0, i32::MAX as i64) as i32),
            linger,
            receive_buffer_size: cfg
                .transport
                .as_ref()
                .and_then(|t| t.receive_buffer_size)
                .map(|s| s.0.max(0) as usize),
            blocking_timeout: cfg
                .blocking_timeout
                .as_duration()
                .max(Duration::from_millis(10)),
            resolve_hostname,
            deny_keepalive: cfg.deny_keepalive,
            send_keepalive_packet: cfg.send_keepalive_packet,
            chunk_size_warn_limit: size_opt(cfg.chunk_size_warn_limit),
            chunk_size_limit: size_opt(cfg.chunk_size_limit),
            skip_invalid_event: cfg.skip_invalid_event,
            source_address_key: cfg.source_address_key.map(String::into_bytes),
            source_hostname_key: cfg.source_hostname_key.map(String::into_bytes),
            decode: DecodeOptions {
                tag: cfg.tag,
                add_tag_prefix: cfg.add_tag_prefix,
                decompression_size_limit: cfg.decompression_size_limit.0.max(0) as u64,
            },
            security,
            tls,
        }),
        sockets: None,
    }))
}

fn bind_sockets(s: &Settings) -> anyhow::Result<(TcpListener, UdpSocket)> {
    let listener = server::listen_tcp(&s.bind, s.port, s.backlog)?;
    let udp = UdpSocket::bind(server::resolve_bind(&s.bind, s.port)?)
        .map_err(|e| anyhow::anyhow!("{e} - bind(2) for \"{}\" port {} (udp)", s.bind, s.port))?;
    udp.set_read_timeout(Some(s.blocking_timeout))?;
    tracing::info!("listening port port={} bind=\"{}\"", s.port, s.bind);
    Ok((listener, udp))
}

impl Input for ForwardInput {
    fn start(&mut self) -> anyhow::Result<()> {
        if self.sockets.is_none() {
            self.sockets = Some(bind_sockets(&self.settings)?);
        }
        Ok(())
    }

    fn run(self: Box<Self>, ctx: InputContext) -> anyhow::Result<()> {
        let s = self.settings;
        let (listener, udp) = match self.sockets {
            Some(sockets) => sockets,
            None => bind_sockets(&s)?,
        };

        let hb_shutdown = ctx.shutdown.clone();
        let hb = std::thread::Builder::new()
            .name("in_forward-udp".into())
            .spawn(move || heartbeat_loop(udp, hb_shutdown))?;

        let mut conns: Vec<JoinHandle<()>> = Vec::new();
        while !ctx.shutdown.is_set() {
            conns.retain(|h| !h.is_finished());
            if !wait_readable(listener.as_raw_fd(), s.blocking_timeout) {
                continue;
            }
            let (tcp, peer) = match listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    tracing::warn!("unexpected error in accepting connection error=\"{e}\"");
                    // Out of descriptors and the like: back off instead of spinning.
                    ctx.shutdown.wait_timeout(Duration::from_millis(100));
                    continue;
                }
            };
            let s2 = s.clone();
            let router = ctx.router.clone();
            let sd = ctx.shutdown.clone();
            let (caught_up, wait_caught_up) = std::sync::mpsc::sync_channel(1);
            match std::thread::Builder::new()
                .name("in_forward-conn".into())
                .spawn(move || serve(tcp, peer, &s2, &router, &sd, caught_up))
            {
                Ok(h) => {
                    conns.push(h);
                    // Events a client sent before it reconnected are emitted before those of
                    // its next connection, as Fluentd's single event loop does.
                    let _ = wait_caught_up.recv_timeout(FIRST_READ_HANDOFF);
                }
                Err(e) => tracing::warn!("cannot start a connection thread: {e}"),
            }
        }
        for h in conns {
            let _ = h.join();
        }
        let _ = hb.join();
        Ok(())
    }
}

fn heartbeat_loop(udp: UdpSocket, shutdown: Shutdown) {
    let mut buf = [0u8; 128];
    while !shutdown.is_set() {
        match udp.recv_from(&mut buf) {
            Ok((_, from)) => {
                tracing::trace!("heartbeat udp data arrived host=\"{}\"", from.ip());
                let _ = udp.send_to(b"\0", from);
            }
            Err(_) => continue,
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Unknown,
    Msgpack,
    Json,
}

#[derive(PartialEq)]
enum State {
    PingPong,
    Established,
}

/// What a processed message asks of the connection.
enum Next {
    Continue,
    Close,
}

struct Conn<'a> {
    s: &'a Settings,
    router: &'a Emitter,
    stream: Stream,
    peer: IpAddr,
    peer_port: u16,
    hostname: Option<String>,
    format: Format,
    state: State,
    nonce: Vec<u8>,
    auth_salt: Vec<u8>,
    /// Tells the accept loop that the data already queued on this connection has been emitted
    /// (sent once, or dropped with the connection).
    caught_up: Option<SyncSender<()>>,
}

/// How long the accept loop waits for a new connection to emit what it already holds.
const FIRST_READ_HANDOFF: Duration = Duration::from_millis(200);

fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    s: &Settings,
    router: &Emitter,
    shutdown: &Shutdown,
    caught_up: SyncSender<()>,
) {
    // A handshake needs the client's answers, so the queued data is not known yet.
    let caught_up = (s.tls.is_none() && s.security.is_none()).then_some(caught_up);
    let _ = tcp.set_nonblocking(false);
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_read_timeout(Some(s.blocking_timeout));
    let sref = socket2::SockRef::from(&tcp);
    if let Some(l) = s.linger {
        let _ = sref.set_linger(Some(Duration::from_secs(l)));
    }
    if s.send_keepalive_packet {
        let _ = sref.set_keepalive(true);
    }
    if let Some(n) = s.receive_buffer_size {
        let _ = sref.set_recv_buffer_size(n);
    }
    let stream = match &s.tls {
        Some(cfg) => match rustls::ServerConnection::new(cfg.clone()) {
            Ok(c) => Stream::ServerTls(Box::new(rustls::StreamOwned::new(c, tcp))),
            Err(e) => {
                tracing::warn!("unexpected error before accepting TLS connection error=\"{e}\"");
                return;
            }
        },
        None => Stream::Plain(tcp),
    };
    let mut c = Conn {
        s,
        router,
        stream,
        peer: peer_ip(&peer),
        peer_port: peer.port(),
        hostname: None,
        format: Format::Unknown,
        state: State::Established,
        nonce: Vec::new(),
        auth_salt: Vec::new(),
        caught_up,
    };
    tracing::trace!(
        "accepted fluent socket addr=\"{}\" port={}",
        c.peer,
        c.peer_port
    );
    if s.security.is_some() {
        c.nonce = handshake::random_salt();
        c.auth_salt = handshake::random_salt();
        // The HELO is msgpack whatever the client speaks.
        let helo = handshake::helo(&c.nonce, &c.auth_salt, !s.deny_keepalive);
        if c.stream.write_all(&codec::to_msgpack(&helo)).is_err() {
            c.stream.close();
            return;
        }
        c.state = State::PingPong;
    }
    c.read_loop(shutdown);
    c.stream.close();
}

impl Conn<'_> {
    fn read_loop(&mut self, shutdown: &Shutdown) {
        let mut buf: Vec<u8> = vec![0; READ_SIZE];
        let (mut start, mut filled) = (0usize, 0usize);
        let mut scan = ScanState::default();
        let mut reads = 0u64;
        let limit = self
            .s
            .chunk_size_limit
            .map(|l| l.max(MAX_MESSAGE))
            .unwrap_or(MAX_MESSAGE);
        loop {
            if shutdown.is_set() {
                return;
            }
            // Caught up once the first read is handled, or when nothing was waiting: a client
            // that streams without pause must not hold up the next accept.
            if self.caught_up.is_some()
                && (reads > 0 || !wait_readable(self.stream.tcp().as_raw_fd(), Duration::ZERO))
            {
                if let Some(tx) = self.caught_up.take() {
                    let _ = tx.send(());
                }
            }
            if filled == buf.len() {
                if start > 0 {
                    buf.copy_within(start..filled, 0);
                    filled -= start;
                    start = 0;
                } else {
                    let grow = buf.len().min(64 << 20);
                    buf.resize(buf.len() + grow, 0);
                }
            }
            let n = match self.stream.read(&mut buf[filled..]) {
                Ok(0) => return,
                Ok(n) => {
                    reads += 1;
                    n
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(e) => {
                    tracing::debug!(
                        "forward connection error addr=\"{}\" error=\"{e}\"",
                        self.peer
                    );
                    return;
                }
            };
            if self.format == Format::Unknown {
                self.format = match buf[filled] {
                    b'{' | b'[' => Format::Json,
                    _ => Format::Msgpack,
                };
            }
            filled += n;
            loop {
                let pending = &buf[start..filled];
                if pending.is_empty() {
                    break;
                }
                let found = match self.format {
                    Format::Json => match codec::scan_json(pending) {
                        Ok(Some((v, used))) => Some((Msg::Json(v), used)),
                        Ok(None) => {
                            if codec::json_rest_is_blank(pending) {
                                start = filled;
                            }
                            None
                        }
                        Err(e) => {
                            tracing::warn!("forward error error=\"{e}\" addr=\"{}\"", self.peer);
                            return;
                        }
                    },
                    _ => match codec::scan_msgpack(pending, &mut scan) {
                        Ok(Some(len)) => {
                            scan = ScanState::default();
                            Some((Msg::Msgpack(start, len), len))
                        }
                        Ok(None) => None,
                        Err(e) => {
                            tracing::warn!("forward error error=\"{e}\" addr=\"{}\"", self.peer);
                            return;
                        }
                    },
                };
                let Some((msg, used)) = found else {
                    if filled - start > limit {
                        tracing::warn!(
                            "forward error error=\"message larger than {limit} bytes\" addr=\"{}\"",
                            self.peer
                        );
                        return;
                    }
                    break;
                };
                let next = match msg {
                    Msg::Json(v) => self.on_message(Incoming::Value(v), used),
                    Msg::Msgpack(at, len) => {
                        self.on_message(Incoming::Bytes(&buf[at..at + len]), used)
                    }
                };
                start += used;
                if let Next::Close = next {
                    return;
                }
            }
            if start == filled {
                start = 0;
                filled = 0;
                // Give back memory a huge message needed.
                if buf.len() > 4 * READ_SIZE {
                    buf.truncate(READ_SIZE);
                    buf.shrink_to_fit();
                }
            }
        }
    }

    fn respond(&mut self, v: &Value) -> bool {
        let bytes = match self.format {
            Format::Json => codec::to_json(v),
            _ => codec::to_msgpack(v),
        };
        self.stream
            .write_all(&bytes)
            .and_then(|_| self.stream.flush())
            .is_ok()
    }

    fn on_message(&mut self, msg: Incoming<'_>, size: usize) -> Next {
        if self.state == State::PingPong {
            let v = match msg {
                Incoming::Value(v) => v,
                Incoming::Bytes(b) => match codec::decode_value(b) {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::warn!("forward error error=\"{e}\" addr=\"{}\"", self.peer);
                        return Next::Close;
                    }
                },
            };
            let Some(sec) = &self.s.security else {
                return Next::Close;
            };
            return match sec.check_ping(&v, self.peer, &self.auth_salt, &self.nonce) {
                Ok(ok) => {
                    let pong = sec.pong_ok(&ok, &self.nonce);
                    if !self.respond(&pong) {
                        return Next::Close;
                    }
                    tracing::debug!(
                        "connection established address=\"{}\" port={}",
                        self.peer,
                        self.peer_port
                    );
                    self.state = State::Established;
                    Next::Continue
                }
                Err(reason) => {
                    self.respond(&handshake::pong_fail(&reason));
                    Next::Close
                }
            };
        }
        let raw = match msg {
            Incoming::Value(v) => RawMessage::from_value(v),
            Incoming::Bytes(b) => match RawMessage::from_msgpack(b) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!("forward error error=\"{e}\" addr=\"{}\"", self.peer);
                    return Next::Close;
                }
            },
        };
        let response = match self.process(raw, size) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("forward error error=\"{e}\" addr=\"{}\"", self.peer);
                return Next::Close;
            }
        };
        if let Some(r) = response {
            tracing::trace!("sent response to fluent socket address=\"{}\"", self.peer);
            if !self.respond(&r) {
                return Next::Close;
            }
        }
        if self.s.deny_keepalive {
            Next::Close
        } else {
            Next::Continue
        }
    }

    fn remote_host(&mut self) -> String {
        if !self.s.resolve_hostname {
            return self.peer.to_string();
        }
        let peer = self.peer;
        self.hostname
            .get_or_insert_with(|| reverse_lookup(peer))
            .clone()
    }

    /// Emits a message's events and returns the response it asks for.
    fn process(
        &mut self,
        raw: RawMessage<'_>,
        size: usize,
    ) -> Result<Option<Value>, codec::ProtocolError> {
        let raw_tag = match &raw {
            RawMessage::NotArray(Value::Nil) => return Ok(None), // TCP heartbeat
            RawMessage::NotArray(v) => {
                let host = self.remote_host();
                tracing::warn!(
                    "incoming chunk is broken: host=\"{host}\" msg={}",
                    String::from_utf8_lossy(&super::formatter_hash::inspect(v))
                );
                return Ok(None);
            }
            RawMessage::Array { tag, .. } => tag.clone(),
        };
        if let Some(limit) = self.s.chunk_size_limit {
            if size > limit {
                let host = self.remote_host();
                tracing::warn!(
                    "Input chunk size is larger than 'chunk_size_limit', dropped: tag={} host=\"{host}\" limit={limit} size={size}",
                    String::from_utf8_lossy(&super::formatter_hash::inspect(&raw_tag))
                );
                return Ok(None);
            }
        }
        if let Some(limit) = self.s.chunk_size_warn_limit {
            if size > limit {
                let host = self.remote_host();
                tracing::warn!(
                    "Input chunk size is larger than 'chunk_size_warn_limit': tag={} host=\"{host}\" limit={limit} size={size}",
                    String::from_utf8_lossy(&super::formatter_hash::inspect(&raw_tag))
                );
            }
        }
        let is_message_mode = matches!(
            &raw,
            RawMessage::Array {
                body: codec::Body::Message { .. },
                ..
            }
        );
        let mut d = codec::decode_message(raw, &self.s.decode, EventTime::now())?;
        if !d.invalid.is_empty() {
            let host = self.remote_host();
            let tag = d.tag.clone().unwrap_or_else(|| {
                String::from_utf8_lossy(&super::formatter_hash::inspect(&raw_tag)).into_owned()
            });
            let what = if is_message_mode {
                "got invalid event and drop it:"
            } else {
                "skip invalid event:"
            };
            for inv in &d.invalid {
                tracing::warn!("{what} host=\"{host}\" tag=\"{tag}\" {inv}");
            }
        }
        if self.s.source_address_key.is_some() || self.s.source_hostname_key.is_some() {
            let addr = Value::str(self.peer.to_string());
            let host = self
                .s
                .source_hostname_key
                .is_some()
                .then(|| Value::str(self.remote_host()));
            for e in d.events.events.iter_mut() {
                if let Some(k) = &self.s.source_address_key {
                    e.record.insert(k.clone(), addr.clone());
                }
                if let (Some(k), Some(h)) = (&self.s.source_hostname_key, &host) {
                    e.record.insert(k.clone(), h.clone());
                }
            }
        }
        if let Some(tag) = &d.tag {
            if !d.events.is_empty() {
                let es = std::mem::take(&mut d.events);
                self.router.emit(tag, es);
            }
        }
        if d.dropped_message && !self.s.skip_invalid_event {
            return Ok(None);
        }
        Ok(codec::ack_for(&d.option))
    }
}

enum Msg {
    Json(Value),
    Msgpack(usize, usize),
}

enum Incoming<'a> {
    Value(Value),
    Bytes(&'a [u8]),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_parser::{parse_str, ParseOptions};

    fn source(conf: &str) -> Element {
        let root = parse_str(
            &format!("<source>\n@type forward\n{conf}\n</source>\n"),
            std::path::Path::new("t.conf"),
            &ParseOptions::default(),
        )
        .unwrap();
        let e = root.children("source").next().unwrap().clone();
        e
    }

    fn err(conf: &str) -> String {
        match create(&source(conf), &PluginContext::for_tests()) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn config_errors_are_fluentds() {
        assert!(err("tag \"\"").contains("'tag' parameter must not be empty"));
        assert!(err("add_tag_prefix \"\"").contains("'add_tag_prefix' parameter must not be empty"));
        assert!(err("source_hostname_key h\nresolve_hostname false")
            .contains("resolve_hostname must be true with source_hostname_key"));
        assert!(err("deny_keepalive true\nsend_keepalive_packet true")
            .contains("both 'send_keepalive_packet' and 'deny_keepalive' cannot be set to true"));
        assert!(
            err("<security>\nself_hostname a\nshared_key k\nuser_auth true\n</security>")
                .contains("<user> sections required if user_auth enabled")
        );
        assert!(err(
            "<security>\nself_hostname a\nshared_key k\nallow_anonymous_source false\n</security>"
        )
        .contains("<client> sections required if allow_anonymous_source disabled"));
        assert!(err(
            "<security>\nself_hostname a\nshared_key k\n<client>\nhost localhost\nnetwork 10.0.0.0/8\n</client>\n</security>"
        )
        .contains("both of 'host' and 'network' are specified for client"));
        assert!(
            err("<security>\nself_hostname a\nshared_key k\n<client>\n</client>\n</security>")
                .contains("Either of 'host' and 'network' must be specified for client")
        );
        assert!(err(
            "<security>\nself_hostname a\nshared_key k\n<client>\nnetwork bad/x\n</client>\n</security>"
        )
        .contains("network 'bad/x' address format is invalid"));
        assert!(err("<security>\nshared_key k\n</security>")
            .contains("'self_hostname' parameter is required"));
        assert_eq!(err("port 24224\n<transport tls>\n</transport>"), "");
        assert!(err("<transport tls>\nversion TLSv1_1\n</transport>").contains("not supported"));
    }
}
