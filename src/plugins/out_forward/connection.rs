//! out_forward's connections: DNS, connect (TCP/TLS and the handshake), the keepalive pool,
//! sending a message and waiting for its ack.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::node::Node;
use super::Inner;
use crate::event::Value;
use crate::forward::codec::{self, ScanState};
use crate::forward::handshake::ClientHandshake;
use crate::forward::tls;
use crate::forward::Stream;

/// Reads one msgpack object from `stream` within `timeout`.
pub(super) fn read_object(stream: &mut Stream, timeout: Duration) -> Result<Value, String> {
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 4096];
    let mut st = ScanState::default();
    loop {
        if let Some(len) = codec::scan_msgpack(&buf, &mut st).map_err(|e| e.to_string())? {
            return codec::decode_value(&buf[..len]).map_err(|e| e.to_string());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("timeout".into());
        }
        let _ = stream.tcp().set_read_timeout(Some(left));
        match stream.read(&mut chunk) {
            Ok(0) => return Err("connection closed by the server".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err("timeout".into())
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
        if buf.len() > 1 << 20 {
            return Err("response too large".into());
        }
    }
}

impl Inner {
    pub(super) fn resolve(&self, node: &Node) -> Result<SocketAddr, String> {
        let mut d = node.dns.lock();
        let fresh = match (self.expire_dns_cache, d.resolved_at) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(exp), Some(at)) => exp > 0.0 && at.elapsed().as_secs_f64() < exp,
        };
        if !fresh || d.addrs.is_empty() {
            let addrs: Vec<SocketAddr> = (node.host.as_str(), node.port)
                .to_socket_addrs()
                .map_err(|e| format!("getaddrinfo: {} ({})", e, node.host))?
                .collect();
            if addrs.is_empty() {
                return Err(format!("no address for {}", node.host));
            }
            d.addrs = addrs;
            d.resolved_at = Some(Instant::now());
        }
        let i = if self.dns_round_robin {
            d.rr = d.rr.wrapping_add(1);
            d.rr % d.addrs.len()
        } else {
            0
        };
        Ok(d.addrs[i])
    }

    /// Opens a connection to `node`: TCP, then TLS, then the handshake when `<security>` is set.
    pub(super) fn connect(&self, node: &Node) -> Result<Stream, String> {
        let addr = self.resolve(node)?;
        let tcp = match self.connect_timeout {
            Some(t) => TcpStream::connect_timeout(&addr, t),
            None => TcpStream::connect(addr),
        }
        .map_err(|e| format!("{e} - connect(2) for {addr}"))?;
        let _ = tcp.set_nodelay(true);
        let _ = tcp.set_write_timeout(Some(self.send_timeout));
        let _ = tcp.set_read_timeout(Some(self.send_timeout));
        let sref = socket2::SockRef::from(&tcp);
        // Fluentd sets SO_LINGER to send_timeout so that close waits for the data to leave.
        let _ = sref.set_linger(Some(self.send_timeout));
        if self.send_keepalive_packet {
            let _ = sref.set_keepalive(true);
        }
        let mut stream = match &self.tls {
            Some(cfg) => {
                let name = tls::server_name(&node.host)?;
                let conn =
                    rustls::ClientConnection::new(cfg.clone(), name).map_err(|e| e.to_string())?;
                let mut s = rustls::StreamOwned::new(conn, tcp);
                while s.conn.is_handshaking() {
                    s.conn
                        .complete_io(&mut s.sock)
                        .map_err(|e| format!("TLS handshake with {addr} failed: {e}"))?;
                }
                Stream::ClientTls(Box::new(s))
            }
            None => Stream::Plain(tcp),
        };
        if let Some(hostname) = &self.security_hostname {
            let mut hs =
                ClientHandshake::new(hostname, &node.shared_key, &node.username, &node.password);
            let helo = read_object(&mut stream, self.send_timeout)
                .map_err(|e| format!("failed to read HELO from {}: {e}", node.name))?;
            if !hs.check_helo(&helo) {
                stream.close();
                return Err(format!("received invalid helo message from {}", node.name));
            }
            let ping = codec::to_msgpack(&hs.ping());
            stream
                .write_all(&ping)
                .and_then(|_| stream.flush())
                .map_err(|e| e.to_string())?;
            let pong = read_object(&mut stream, self.send_timeout)
                .map_err(|e| format!("failed to read PONG from {}: {e}", node.name))?;
            if let Err(reason) = hs.check_pong(&pong) {
                stream.close();
                return Err(format!("{reason} (server {})", node.name));
            }
        }
        Ok(stream)
    }

    pub(super) fn checkout(&self, node: &Node) -> Result<Stream, String> {
        if self.keepalive {
            let mut pool = node.pool.lock();
            while let Some((mut s, opened)) = pool.pop() {
                let expired = self
                    .keepalive_timeout
                    .is_some_and(|t| opened.elapsed() >= t);
                if expired {
                    s.close();
                    continue;
                }
                return Ok(s);
            }
        }
        self.connect(node)
    }

    pub(super) fn checkin(&self, node: &Node, mut s: Stream) {
        if self.keepalive {
            node.pool.lock().push((s, Instant::now()));
        } else {
            s.close();
        }
    }

    /// Sends one encoded message and, with acks, waits for the matching ack.
    pub(super) fn send(
        &self,
        node: &Node,
        msg: &[u8],
        chunk_id: Option<&str>,
    ) -> Result<(), String> {
        let mut s = self.checkout(node)?;
        if let Err(e) = s.write_all(msg).and_then(|_| s.flush()) {
            s.close();
            return Err(format!("failed to send to {}: {e}", node.name));
        }
        if let Some(id) = chunk_id {
            match read_object(&mut s, self.ack_response_timeout) {
                Ok(v) => {
                    let ack = v
                        .as_map()
                        .and_then(|m| m.get("ack"))
                        .and_then(|a| a.as_bytes());
                    if ack != Some(id.as_bytes()) {
                        tracing::warn!(
                            "ack in response and chunk id in sent data are different chunk_id=\"{}\" ack=\"{}\"",
                            id.trim_end(),
                            String::from_utf8_lossy(ack.unwrap_or_default()).trim_end()
                        );
                        s.close();
                        return Err("ack mismatch".into());
                    }
                }
                Err(e) if e == "timeout" => {
                    tracing::warn!(
                        "no response from node. regard it as unavailable. host=\"{}\" port={}",
                        node.host,
                        node.port
                    );
                    node.disable();
                    self.rebuild();
                    s.close();
                    return Err(format!("no ack response from {}", node.name));
                }
                Err(e) => {
                    s.close();
                    return Err(format!("failed to read ack from {}: {e}", node.name));
                }
            }
        }
        self.checkin(node, s);
        Ok(())
    }
}
