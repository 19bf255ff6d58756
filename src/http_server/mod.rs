//! A small, bounded HTTP/1.x server for the monitoring endpoints (Prometheus, monitor_agent,
//! probes): GET/HEAD only, one request per connection, a capped number of connections each on
//! its own thread with read/write timeouts, so a slow or hostile client cannot hold up more
//! than its own connection and never the event path.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::router::Shutdown;

/// Largest request head read; larger ones get 431.
const MAX_HEAD: usize = 16 * 1024;
const MAX_CONNECTIONS: usize = 64;
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed request line.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Decoded `?a=b&c=d` pairs, in order.
    pub query: Vec<(String, String)>,
}

impl Request {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type: content_type.to_string(),
            body: body.into(),
            headers: Vec::new(),
        }
    }

    pub fn text(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response::new(status, "text/plain; charset=utf-8", body)
    }
}

pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Binds `bind:port`, naming the plugin in the error (a port in use stops start-up).
pub fn listen(plugin: &str, bind: &str, port: u16) -> anyhow::Result<TcpListener> {
    let addrs: Vec<SocketAddr> = (bind, port)
        .to_socket_addrs()
        .map_err(|e| anyhow::anyhow!("{plugin}: cannot resolve bind address {bind}: {e}"))?
        .collect();
    let mut last = None;
    for a in addrs {
        match TcpListener::bind(a) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some((a, e)),
        }
    }
    match last {
        Some((a, e)) => Err(anyhow::anyhow!(
            "{plugin}: cannot listen on {a} (port {port}): {e}"
        )),
        None => Err(anyhow::anyhow!("{plugin}: no address for {bind}")),
    }
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a request head; `Err` is the status to answer with.
pub fn parse_head(head: &[u8]) -> Result<Request, u16> {
    let text = std::str::from_utf8(head).map_err(|_| 400u16)?;
    let line = text.split("\r\n").next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(400);
    };
    if method.is_empty() || !method.bytes().all(|c| c.is_ascii_uppercase()) {
        return Err(400);
    }
    if !version.starts_with("HTTP/") {
        return Err(400);
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(505);
    }
    if !target.starts_with('/') {
        return Err(400);
    }
    let (path, qs) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    let query = qs
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect();
    Ok(Request {
        method: method.to_string(),
        path: percent_decode(path),
        query,
    })
}

fn read_head<S: Read>(s: &mut S) -> Result<Vec<u8>, u16> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(end);
            return Ok(buf);
        }
        if buf.len() > MAX_HEAD {
            return Err(431);
        }
        match s.read(&mut chunk) {
            Ok(0) => return Err(400),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return Err(408)
            }
            Err(_) => return Err(400),
        }
    }
}

fn write_response<S: Write>(s: &mut S, r: &Response, head_only: bool) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    for (k, v) in &r.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    if !head_only {
        s.write_all(&r.body)?;
    }
    s.flush()
}

fn handle<S: Read + Write>(s: &mut S, handler: &Handler) {
    let resp = match read_head(s).and_then(|h| parse_head(&h)) {
        Ok(req) if req.method == "GET" || req.method == "HEAD" => {
            let head_only = req.method == "HEAD";
            let r = handler(&req);
            let _ = write_response(s, &r, head_only);
            return;
        }
        Ok(_) => Response::text(405, "method not allowed\n"),
        Err(code) => Response::text(code, format!("{}\n", reason(code).to_lowercase())),
    };
    let _ = write_response(s, &resp, false);
}

fn serve_conn(stream: TcpStream, tls: Option<Arc<rustls::ServerConfig>>, handler: &Handler) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_nodelay(true);
    match tls {
        None => {
            let mut s = stream;
            handle(&mut s, handler);
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        Some(cfg) => {
            let Ok(conn) = rustls::ServerConnection::new(cfg) else {
                return;
            };
            let mut s = rustls::StreamOwned::new(conn, stream);
            handle(&mut s, handler);
            s.conn.send_close_notify();
            let _ = s.flush();
        }
    }
}

/// Accepts connections until `shutdown` fires. Each connection gets a thread; beyond
/// `MAX_CONNECTIONS` at once, new ones are answered 503 and closed.
pub fn serve(
    name: &str,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: &Shutdown,
    handler: Handler,
) {
    if let Err(e) = listener.set_nonblocking(true) {
        tracing::error!("{name}: cannot set the listener non-blocking: {e}");
        return;
    }
    let active = Arc::new(AtomicUsize::new(0));
    while !shutdown.is_set() {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                if active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                    let mut s = stream;
                    let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
                    let _ = write_response(&mut s, &Response::text(503, "busy\n"), false);
                    continue;
                }
                active.fetch_add(1, Ordering::SeqCst);
                let (h, a, t) = (handler.clone(), active.clone(), tls.clone());
                let spawned = std::thread::Builder::new()
                    .name(format!("{name}-http"))
                    .spawn(move || {
                        serve_conn(stream, t, &h);
                        a.fetch_sub(1, Ordering::SeqCst);
                    });
                if let Err(e) = spawned {
                    active.fetch_sub(1, Ordering::SeqCst);
                    tracing::warn!("{name}: cannot start a connection thread: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                // Wakes as soon as a client connects (a sleep here would delay every answer),
                // and at least every 100 ms to look at `shutdown`.
                wait_readable(&listener, 100);
            }
            Err(e) => {
                tracing::warn!("{name}: accept failed: {e}");
                shutdown.wait_timeout(Duration::from_millis(50));
            }
        }
    }
}

/// Waits until `listener` has a connection to accept, or `timeout_ms` passes.
fn wait_readable(listener: &TcpListener, timeout_ms: i32) {
    use std::os::fd::AsRawFd;
    let mut fd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd that lives for the duration of the call.
    unsafe {
        libc::poll(&mut fd, 1, timeout_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server answering each GET with its path.
    fn echo_server() -> (SocketAddr, Shutdown, std::thread::JoinHandle<()>) {
        let l = listen("test", "127.0.0.1", 0).unwrap();
        let addr = l.local_addr().unwrap();
        let sd = Shutdown::new();
        let sd2 = sd.clone();
        let h: Handler = Arc::new(|r: &Request| Response::text(200, r.path.clone()));
        let t = std::thread::spawn(move || serve("test", l, None, &sd2, h));
        (addr, sd, t)
    }

    /// Sends `req` on a new connection and reads the answer until the server closes.
    fn ask(addr: SocketAddr, req: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(req).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    #[test]
    fn parses_request_lines() {
        let r =
            parse_head(b"GET /api/plugins.json?@type=tail&x=a%20b HTTP/1.1\r\nHost: x").unwrap();
        assert_eq!(r.path, "/api/plugins.json");
        assert_eq!(r.param("@type"), Some("tail"));
        assert_eq!(r.param("x"), Some("a b"));
        assert_eq!(parse_head(b"garbage"), Err(400));
        assert_eq!(parse_head(b"GET metrics HTTP/1.1"), Err(400));
        assert_eq!(parse_head(b"GET / HTTP/2.0"), Err(505));
        assert_eq!(parse_head(b"get / HTTP/1.1"), Err(400));
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn serves_and_rejects_malformed_requests() {
        let (addr, sd, t) = echo_server();
        assert!(ask(addr, b"GET /x HTTP/1.1\r\n\r\n").ends_with("\r\n\r\n/x"));
        assert!(ask(addr, b"\x00\x01garbage\r\n\r\n").starts_with("HTTP/1.1 400"));
        assert!(ask(addr, b"POST /x HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        let big = vec![b'a'; MAX_HEAD + 10];
        assert!(ask(addr, &big).starts_with("HTTP/1.1 431"));
        let e = listen("in_prometheus", "127.0.0.1", addr.port()).unwrap_err();
        assert!(e.to_string().contains("in_prometheus"));
        assert!(e.to_string().contains(&addr.port().to_string()));
        sd.trigger();
        t.join().unwrap();
    }

    /// Clients that connect and send nothing, or dribble a head byte by byte, hold only their
    /// own connection: a scrape made meanwhile is answered, and past the connection cap the
    /// newcomer gets 503 at once instead of waiting.
    #[test]
    fn slow_clients_do_not_hold_up_others() {
        let (addr, sd, t) = echo_server();
        let mut dribbler = TcpStream::connect(addr).unwrap();
        dribbler.write_all(b"GE").unwrap();
        let mut idle: Vec<TcpStream> = (0..MAX_CONNECTIONS - 2)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        assert!(ask(addr, b"GET /metrics HTTP/1.1\r\n\r\n").ends_with("/metrics"));
        // Wait until every idle connection has its thread, then one more fills the cap.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut extra = Vec::new();
        loop {
            let out = ask(addr, b"GET /full HTTP/1.1\r\n\r\n");
            if out.starts_with("HTTP/1.1 503") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never reached the cap: {out}"
            );
            extra.push(TcpStream::connect(addr).unwrap());
        }
        dribbler.write_all(b"T /late HTTP/1.1\r\n\r\n").unwrap();
        let mut out = String::new();
        let _ = dribbler.read_to_string(&mut out);
        assert!(out.ends_with("/late"), "{out}");
        idle.clear();
        extra.clear();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !ask(addr, b"GET /again HTTP/1.1\r\n\r\n").ends_with("/again") {
            assert!(
                std::time::Instant::now() < deadline,
                "connections never freed"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        sd.trigger();
        t.join().unwrap();
    }
}
