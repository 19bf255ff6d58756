//! Listener machinery shared by the network inputs (`tcp`, `udp`, `syslog`, `http`, `unix`), as
//! Fluentd's `plugin_helper/server.rb`: binding, a TCP/TLS/unix accept loop with a connection
//! limit, UDP receive, and message framing ([`framing`]).
//!
//! One thread per connection, as in_forward: a connection is read, framed, parsed and emitted
//! in order, and its next read waits for the emit, so a blocked buffer slows exactly the senders
//! that feed it.

pub mod framing;
pub mod transport;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown as NetShutdown, SocketAddr, TcpListener, TcpStream};
use std::net::{ToSocketAddrs, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::router::Shutdown;

/// How often a blocked read or accept wakes up to look at the shutdown flag.
pub const POLL: Duration = Duration::from_millis(500);

/// Connections one listener serves at once unless told otherwise; past it the connection idle
/// the longest is closed, or the new one refused.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// A write blocked this long (the peer does not read) ends the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection idle at least this long may be closed to make room for a new one.
const EVICT_IDLE: Duration = Duration::from_secs(2);

pub fn resolve_bind(bind: &str, port: u16) -> anyhow::Result<SocketAddr> {
    (bind, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow::anyhow!("cannot resolve bind address {bind}"))
}

/// A listening TCP socket (SO_REUSEADDR, non-blocking), with Fluentd's bind error wording.
pub fn listen_tcp(bind: &str, port: u16, backlog: Option<i32>) -> anyhow::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let addr = resolve_bind(bind, port)?;
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    sock.bind(&addr.into())
        .map_err(|e| anyhow::anyhow!("{e} - bind(2) for \"{bind}\" port {port}"))?;
    sock.listen(backlog.unwrap_or(libc::SOMAXCONN))?;
    let l: TcpListener = sock.into();
    l.set_nonblocking(true)?;
    Ok(l)
}

/// A bound UDP socket whose reads time out after [`POLL`].
pub fn bind_udp(bind: &str, port: u16, recv_buffer: Option<usize>) -> anyhow::Result<UdpSocket> {
    let sock = UdpSocket::bind(resolve_bind(bind, port)?)
        .map_err(|e| anyhow::anyhow!("{e} - bind(2) for \"{bind}\" port {port} (udp)"))?;
    if let Some(n) = recv_buffer {
        let _ = socket2::SockRef::from(&sock).set_recv_buffer_size(n);
    }
    sock.set_read_timeout(Some(POLL))?;
    Ok(sock)
}

/// A listening unix socket; an existing file at `path` is removed first (as in_unix does).
pub fn listen_unix(path: &str, backlog: Option<i32>) -> anyhow::Result<UnixListener> {
    let p = std::path::Path::new(path);
    if p.exists() {
        tracing::warn!("Found existing '{path}'. Remove this file for in_unix plugin");
        std::fs::remove_file(p)?;
    }
    if let Some(dir) = p.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    let l = UnixListener::bind(p).map_err(|e| anyhow::anyhow!("{e} - bind(2) for \"{path}\""))?;
    if let Some(b) = backlog {
        // SAFETY: a valid listening descriptor; listen(2) only changes its queue length.
        unsafe { libc::listen(l.as_raw_fd(), b) };
    }
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Waits until `fd` is readable or `timeout` passes.
pub fn wait_readable(fd: RawFd, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd for the duration of the call.
    let rc = unsafe { libc::poll(&mut p, 1, ms) };
    rc > 0
}

/// The peer's host name by reverse lookup, or its address when there is none.
pub fn reverse_lookup(ip: IpAddr) -> String {
    let sa: socket2::SockAddr = SocketAddr::new(ip, 0).into();
    let mut host = [0 as libc::c_char; 1025];
    // SAFETY: sa is a valid sockaddr of sa.len() bytes; host is a writable buffer of its length.
    let rc = unsafe {
        libc::getnameinfo(
            sa.as_ptr(),
            sa.len(),
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            0,
        )
    };
    if rc != 0 {
        return ip.to_string();
    }
    // SAFETY: getnameinfo NUL-terminates what it writes into host.
    unsafe { std::ffi::CStr::from_ptr(host.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// The peer address, with IPv4-mapped IPv6 shown as IPv4.
pub fn peer_ip(peer: &SocketAddr) -> IpAddr {
    match peer.ip() {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// One accepted connection's byte stream.
pub enum ConnStream {
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
    Unix(UnixStream),
}

impl ConnStream {
    fn raw_fd(&self) -> RawFd {
        match self {
            ConnStream::Tcp(s) => s.as_raw_fd(),
            ConnStream::Tls(s) => s.sock.as_raw_fd(),
            ConnStream::Unix(s) => s.as_raw_fd(),
        }
    }

    fn close(&mut self) {
        match self {
            ConnStream::Tcp(s) => {
                let _ = s.flush();
                let _ = s.shutdown(NetShutdown::Both);
            }
            ConnStream::Tls(s) => {
                s.conn.send_close_notify();
                let _ = s.conn.complete_io(&mut s.sock);
                let _ = s.sock.shutdown(NetShutdown::Both);
            }
            ConnStream::Unix(s) => {
                let _ = s.shutdown(NetShutdown::Both);
            }
        }
    }
}

impl Read for ConnStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            ConnStream::Tcp(s) => s.read(buf),
            ConnStream::Tls(s) => s.read(buf),
            ConnStream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for ConnStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            ConnStream::Tcp(s) => s.write(buf),
            ConnStream::Tls(s) => s.write(buf),
            ConnStream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            ConnStream::Tcp(s) => s.flush(),
            ConnStream::Tls(s) => s.flush(),
            ConnStream::Unix(s) => s.flush(),
        }
    }
}

/// A handle that can close a connection from another thread (eviction, shutdown).
enum Closer {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Closer {
    fn close(&self) {
        let _ = match self {
            Closer::Tcp(s) => s.shutdown(NetShutdown::Both),
            Closer::Unix(s) => s.shutdown(NetShutdown::Both),
        };
    }
}

/// What one read gave.
pub enum ReadOutcome {
    Data(usize),
    /// The peer closed the connection, or it failed.
    Closed,
    /// No data for the server's idle timeout.
    Idle,
    /// The input is stopping.
    Shutdown,
}

/// An accepted connection, handed to the plugin's handler on a thread of its own.
pub struct Connection {
    pub stream: ConnStream,
    /// The peer address (`None` for unix sockets).
    pub peer: Option<SocketAddr>,
    activity: Arc<AtomicU64>,
    epoch: Instant,
    idle_timeout: Option<Duration>,
    shutdown: Shutdown,
    remote_host: Option<String>,
}

impl Connection {
    /// The peer address as Fluentd's `remote_addr` shows it.
    pub fn remote_addr(&self) -> Option<String> {
        self.peer.map(|p| peer_ip(&p).to_string())
    }

    /// The peer's host name (reverse lookup, once per connection).
    pub fn remote_host(&mut self) -> Option<String> {
        if self.remote_host.is_none() {
            self.remote_host = self.peer.map(|p| reverse_lookup(peer_ip(&p)));
        }
        self.remote_host.clone()
    }

    fn touch(&self) {
        self.activity
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Reads what is there, waking up for shutdown and the idle timeout.
    pub fn read(&mut self, buf: &mut [u8]) -> ReadOutcome {
        let idle_since = Instant::now();
        loop {
            if self.shutdown.is_set() {
                return ReadOutcome::Shutdown;
            }
            match self.stream.read(buf) {
                Ok(0) => return ReadOutcome::Closed,
                Ok(n) => {
                    self.touch();
                    return ReadOutcome::Data(n);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    if let Some(t) = self.idle_timeout {
                        if idle_since.elapsed() >= t {
                            return ReadOutcome::Idle;
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!("connection error error=\"{e}\"");
                    return ReadOutcome::Closed;
                }
            }
        }
    }

    /// Writes all of `data`; false when the peer is gone.
    pub fn write_all(&mut self, data: &[u8]) -> bool {
        self.touch();
        self.stream.write_all(data).is_ok() && self.stream.flush().is_ok()
    }

    pub fn close(&mut self) {
        self.stream.close();
    }
}

/// How a stream server treats its connections.
#[derive(Clone)]
pub struct StreamOptions {
    /// Thread and log name, e.g. `in_tcp`.
    pub name: &'static str,
    pub max_connections: usize,
    /// Close a connection without data for this long (in_http's `keepalive_timeout`).
    pub idle_timeout: Option<Duration>,
    pub send_keepalive_packet: bool,
    pub linger: Option<Duration>,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// At the limit, a connection idle this long is closed for a new one.
    pub evict_idle: Duration,
}

impl StreamOptions {
    pub fn new(name: &'static str) -> Self {
        StreamOptions {
            name,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: None,
            send_keepalive_packet: false,
            linger: None,
            tls: None,
            evict_idle: EVICT_IDLE,
        }
    }
}

/// A bound stream listener.
pub enum StreamListener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl StreamListener {
    fn raw_fd(&self) -> RawFd {
        match self {
            StreamListener::Tcp(l) => l.as_raw_fd(),
            StreamListener::Unix(l) => l.as_raw_fd(),
        }
    }

    fn accept(&self) -> std::io::Result<(ConnStream, Closer, Option<SocketAddr>)> {
        match self {
            StreamListener::Tcp(l) => {
                let (s, peer) = l.accept()?;
                let c = s.try_clone()?;
                Ok((ConnStream::Tcp(s), Closer::Tcp(c), Some(peer)))
            }
            StreamListener::Unix(l) => {
                let (s, _) = l.accept()?;
                let c = s.try_clone()?;
                Ok((ConnStream::Unix(s), Closer::Unix(c), None))
            }
        }
    }
}

struct Slot {
    activity: Arc<AtomicU64>,
    closer: Closer,
}

/// Live connections of one listener, for the limit and for eviction.
#[derive(Default)]
struct Registry {
    next_id: u64,
    live: HashMap<u64, Slot>,
}

/// Refused or evicted connections, counted for the warnings.
#[derive(Default)]
pub struct Counters {
    pub refused: AtomicU64,
    pub evicted: AtomicU64,
}

/// Accepts connections until shutdown; each runs `handler` on its own thread. Returns after
/// every connection thread has ended.
pub fn serve_stream<F>(
    listener: StreamListener,
    opts: StreamOptions,
    shutdown: Shutdown,
    counters: Arc<Counters>,
    handler: F,
) where
    F: Fn(Connection) + Send + Sync + 'static,
{
    let handler = Arc::new(handler);
    let registry = Arc::new(Mutex::new(Registry::default()));
    let epoch = Instant::now();
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    while !shutdown.is_set() {
        threads.retain(|h| !h.is_finished());
        if !wait_readable(listener.raw_fd(), POLL) {
            continue;
        }
        let (mut stream, closer, peer) = match listener.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                tracing::warn!("unexpected error in accepting connection error=\"{e}\"");
                // Out of descriptors and the like: back off instead of spinning.
                shutdown.wait_timeout(Duration::from_millis(100));
                continue;
            }
        };
        if !make_room(&registry, &opts, epoch, &counters) {
            let n = counters.refused.fetch_add(1, Ordering::Relaxed) + 1;
            if n == 1 || n.is_multiple_of(1000) {
                tracing::warn!(
                    "{}: too many connections (max {}), refused {n} so far",
                    opts.name,
                    opts.max_connections
                );
            }
            stream.close();
            continue;
        }
        if let ConnStream::Tcp(s) = &stream {
            let _ = s.set_nonblocking(false);
            let _ = s.set_nodelay(true);
            let sref = socket2::SockRef::from(s);
            if let Some(l) = opts.linger {
                let _ = sref.set_linger(Some(l));
            }
            if opts.send_keepalive_packet {
                let _ = sref.set_keepalive(true);
            }
        }
        if let ConnStream::Unix(s) = &stream {
            let _ = s.set_nonblocking(false);
        }
        let fd = stream.raw_fd();
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: POLL.as_micros() as libc::suseconds_t,
        };
        // A peer that stops reading our answers cannot hold a connection thread forever.
        let wtv = libc::timeval {
            tv_sec: WRITE_TIMEOUT.as_secs() as libc::time_t,
            tv_usec: 0,
        };
        for (opt, t) in [(libc::SO_RCVTIMEO, &tv), (libc::SO_SNDTIMEO, &wtv)] {
            // SAFETY: a valid socket; both options take a timeval of this size.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    opt,
                    t as *const libc::timeval as *const libc::c_void,
                    std::mem::size_of::<libc::timeval>() as libc::socklen_t,
                );
            }
        }
        let stream = match (&opts.tls, stream) {
            (Some(cfg), ConnStream::Tcp(tcp)) => match rustls::ServerConnection::new(cfg.clone()) {
                Ok(c) => ConnStream::Tls(Box::new(rustls::StreamOwned::new(c, tcp))),
                Err(e) => {
                    tracing::warn!(
                        "unexpected error before accepting TLS connection error=\"{e}\""
                    );
                    continue;
                }
            },
            (_, s) => s,
        };
        let activity = Arc::new(AtomicU64::new(epoch.elapsed().as_millis() as u64));
        let id = {
            let mut r = match registry.lock() {
                Ok(r) => r,
                Err(p) => p.into_inner(),
            };
            r.next_id += 1;
            let id = r.next_id;
            r.live.insert(
                id,
                Slot {
                    activity: activity.clone(),
                    closer,
                },
            );
            id
        };
        let conn = Connection {
            stream,
            peer,
            activity,
            epoch,
            idle_timeout: opts.idle_timeout,
            shutdown: shutdown.clone(),
            remote_host: None,
        };
        let h = handler.clone();
        let reg = registry.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("{}-conn", opts.name))
            .spawn(move || {
                h(conn);
                if let Ok(mut r) = reg.lock() {
                    r.live.remove(&id);
                }
            });
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                tracing::warn!("{}: cannot start a connection thread: {e}", opts.name);
                if let Ok(mut r) = registry.lock() {
                    if let Some(s) = r.live.remove(&id) {
                        s.closer.close();
                    }
                }
            }
        }
    }
    // Wake readers blocked on their sockets.
    if let Ok(r) = registry.lock() {
        for s in r.live.values() {
            s.closer.close();
        }
    }
    for t in threads {
        let _ = t.join();
    }
}

/// Below the limit: true. At it: closes the connection idle the longest if it has been idle for
/// a while (a slow or stalled client), else false (refuse the new one).
fn make_room(
    registry: &Mutex<Registry>,
    opts: &StreamOptions,
    epoch: Instant,
    counters: &Counters,
) -> bool {
    let mut r = match registry.lock() {
        Ok(r) => r,
        Err(p) => p.into_inner(),
    };
    if r.live.len() < opts.max_connections {
        return true;
    }
    let now = epoch.elapsed().as_millis() as u64;
    let oldest = r
        .live
        .iter()
        .min_by_key(|(_, s)| s.activity.load(Ordering::Relaxed))
        .map(|(id, s)| (*id, s.activity.load(Ordering::Relaxed)));
    match oldest {
        Some((id, at)) if now.saturating_sub(at) >= opts.evict_idle.as_millis() as u64 => {
            if let Some(s) = r.live.remove(&id) {
                s.closer.close();
            }
            let n = counters.evicted.fetch_add(1, Ordering::Relaxed) + 1;
            if n == 1 || n.is_multiple_of(1000) {
                tracing::warn!(
                    "{}: at the connection limit ({}), closed an idle connection ({n} so far)",
                    opts.name,
                    opts.max_connections
                );
            }
            true
        }
        _ => false,
    }
}

/// The TCP listener of a stream input (in_tcp, in_http): bound in `Input::start`, so a bind
/// error stops start-up, and served in `Input::run`.
#[derive(Default)]
pub struct TcpServer(Option<TcpListener>);

impl TcpServer {
    /// Binds unless already bound; true when this call bound (the caller logs "listening" once).
    pub fn listen(&mut self, bind: &str, port: u16, backlog: Option<i32>) -> anyhow::Result<bool> {
        if self.0.is_some() {
            return Ok(false);
        }
        self.0 = Some(listen_tcp(bind, port, backlog)?);
        Ok(true)
    }

    /// Accepts connections until shutdown, each on its own thread ([`serve_stream`]); returns at
    /// once when nothing is bound (already served).
    pub fn serve<F>(&mut self, opts: StreamOptions, shutdown: Shutdown, handler: F)
    where
        F: Fn(Connection) + Send + Sync + 'static,
    {
        if let Some(listener) = self.0.take() {
            serve_stream(
                StreamListener::Tcp(listener),
                opts,
                shutdown,
                Arc::new(Counters::default()),
                handler,
            );
        }
    }
}

/// Receives datagrams until shutdown; each is cut to `max_bytes` (the recvfrom size, as
/// Fluentd's `max_bytes`) and handed to `handler` with its sender.
pub fn serve_udp(
    sock: &UdpSocket,
    max_bytes: usize,
    shutdown: &Shutdown,
    mut handler: impl FnMut(&[u8], SocketAddr),
) {
    let mut buf = vec![0u8; max_bytes.max(1)];
    while !shutdown.is_set() {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => handler(&buf[..n.min(max_bytes)], from),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                tracing::warn!("unexpected error in receiving udp data error=\"{e}\"");
                shutdown.wait_timeout(Duration::from_millis(100));
            }
        }
    }
}

/// `source_address_key` / `source_hostname_key`: where the sender's address and host name go.
#[derive(Debug, Clone, Default)]
pub struct SourceKeys {
    pub address: Option<Vec<u8>>,
    pub hostname: Option<Vec<u8>>,
}

impl SourceKeys {
    pub fn new(address: Option<String>, hostname: Option<String>) -> Self {
        SourceKeys {
            address: address.map(String::into_bytes),
            hostname: hostname.map(String::into_bytes),
        }
    }

    /// Sets the keys (overwriting a field of the same name, in place).
    pub fn apply(&self, record: &mut crate::event::Record, addr: Option<&str>, host: Option<&str>) {
        let val = |v: Option<&str>| match v {
            Some(s) => crate::event::Value::str(s),
            None => crate::event::Value::Nil,
        };
        if let Some(k) = &self.address {
            record.insert(k.clone(), val(addr));
        }
        if let Some(k) = &self.hostname {
            record.insert(k.clone(), val(host));
        }
    }
}

/// Reverse lookups for datagram senders, remembered (a bounded cache: one lookup per sender).
#[derive(Default)]
pub struct HostCache(HashMap<IpAddr, String>);

impl HostCache {
    pub fn lookup(&mut self, ip: IpAddr) -> String {
        if let Some(h) = self.0.get(&ip) {
            return h.clone();
        }
        let h = reverse_lookup(ip);
        if self.0.len() >= 4096 {
            self.0.clear();
        }
        self.0.insert(ip, h.clone());
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves `opts` with a handler that greets, then reads until the end; returns the port.
    fn start(
        opts: StreamOptions,
        sd: &Shutdown,
        counters: &Arc<Counters>,
    ) -> (u16, JoinHandle<()>) {
        let l = listen_tcp("127.0.0.1", 0, None).unwrap();
        let port = l.local_addr().unwrap().port();
        let (sd, c) = (sd.clone(), counters.clone());
        let t = std::thread::spawn(move || {
            serve_stream(StreamListener::Tcp(l), opts, sd, c, |mut conn| {
                conn.write_all(b"hi");
                let mut b = [0u8; 16];
                while let ReadOutcome::Data(_) = conn.read(&mut b) {}
            })
        });
        (port, t)
    }

    fn greeted(port: u16) -> (TcpStream, bool) {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut b = [0u8; 2];
        let ok = s.read_exact(&mut b).is_ok();
        (s, ok)
    }

    fn closed(s: &mut TcpStream) -> bool {
        let mut b = [0u8; 1];
        matches!(s.read(&mut b), Ok(0) | Err(_))
    }

    #[test]
    fn connection_limit_refuses_when_none_is_idle() {
        let sd = Shutdown::new();
        let counters = Arc::new(Counters::default());
        let mut opts = StreamOptions::new("test");
        opts.max_connections = 2;
        opts.evict_idle = Duration::from_secs(3600);
        let (port, t) = start(opts, &sd, &counters);
        let (_a, ok_a) = greeted(port);
        let (_b, ok_b) = greeted(port);
        let (mut c, ok_c) = greeted(port);
        assert!(ok_a && ok_b && !ok_c);
        assert!(closed(&mut c));
        assert_eq!(counters.refused.load(Ordering::Relaxed), 1);
        sd.trigger();
        t.join().unwrap();
    }

    #[test]
    fn connection_limit_evicts_the_idle_one() {
        let sd = Shutdown::new();
        let counters = Arc::new(Counters::default());
        let mut opts = StreamOptions::new("test");
        opts.max_connections = 2;
        opts.evict_idle = Duration::ZERO;
        let (port, t) = start(opts, &sd, &counters);
        let (mut a, _) = greeted(port);
        let (mut b, _) = greeted(port);
        let (_c, ok_c) = greeted(port);
        assert!(ok_c);
        assert_eq!(counters.evicted.load(Ordering::Relaxed), 1);
        // Exactly one of the two older connections was closed.
        a.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        b.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let gone = |s: &mut TcpStream| {
            let mut x = [0u8; 1];
            matches!(s.read(&mut x), Ok(0))
        };
        assert_eq!(gone(&mut a) as u8 + gone(&mut b) as u8, 1);
        sd.trigger();
        t.join().unwrap();
    }
}
