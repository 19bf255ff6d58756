//! The Fluentd forward protocol v1, shared by `in_forward` and `out_forward`: framing and
//! decoding ([`codec`]), the shared-key handshake ([`handshake`]) and TLS ([`tls`]).

pub mod codec;
pub mod handshake;
pub mod tls;

use std::io::{Read, Write};
use std::net::TcpStream;

/// A connection, plain or TLS, used with blocking reads and writes.
pub enum Stream {
    Plain(TcpStream),
    ServerTls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
    ClientTls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::ServerTls(s) => &s.sock,
            Stream::ClientTls(s) => &s.sock,
        }
    }

    /// Sends a TLS close_notify where there is a session; errors are irrelevant at close.
    pub fn close(&mut self) {
        match self {
            Stream::Plain(_) => {}
            Stream::ServerTls(s) => {
                s.conn.send_close_notify();
                let _ = s.conn.complete_io(&mut s.sock);
            }
            Stream::ClientTls(s) => {
                s.conn.send_close_notify();
                let _ = s.conn.complete_io(&mut s.sock);
            }
        }
        let _ = self.tcp().shutdown(std::net::Shutdown::Both);
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::ServerTls(s) => s.read(buf),
            Stream::ClientTls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::ServerTls(s) => s.write(buf),
            Stream::ClientTls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::ServerTls(s) => s.flush(),
            Stream::ClientTls(s) => s.flush(),
        }
    }
}
