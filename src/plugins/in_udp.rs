//! `@type udp`: one message per datagram, cut to `message_length_limit` bytes (the receive size,
//! so a longer datagram is truncated, not dropped), a trailing newline removed, parsed with the
//! `<parse>` section and emitted under `tag`.

use std::sync::Arc;

use serde::Deserialize;

use super::extract::Extract;
use super::in_tcp::{default_bind, half_second, parse_message, port_of};
use super::{Input, InputContext, Parser, PluginContext};
use crate::config_parser::types::{Size, Time};
use crate::config_parser::{ConfigError, Element, Nested};
use crate::event::EventStream;
use crate::server::{self, HostCache, SourceKeys};

#[derive(Debug, Deserialize)]
struct UdpConfig {
    tag: String,
    #[serde(default = "default_port")]
    port: i64,
    #[serde(default = "default_bind")]
    bind: String,
    source_host_key: Option<String>,
    source_hostname_key: Option<String>,
    source_address_key: Option<String>,
    body_size_limit: Option<Size>,
    #[serde(default = "default_limit")]
    message_length_limit: Size,
    #[serde(default = "yes")]
    remove_newline: bool,
    receive_buffer_size: Option<Size>,
    #[serde(default = "half_second")]
    #[allow(dead_code)]
    blocking_timeout: Time,
    #[allow(dead_code)]
    parse: Option<Nested>,
    #[allow(dead_code)]
    extract: Option<Nested>,
}

fn default_port() -> i64 {
    5160
}
fn default_limit() -> Size {
    Size(4096)
}
fn yes() -> bool {
    true
}

/// Ruby's `chomp!`: one trailing `\r\n`, `\n` or `\r`.
pub(crate) fn chomp(d: &[u8]) -> &[u8] {
    if let Some(x) = d.strip_suffix(b"\r\n") {
        x
    } else if let Some(x) = d.strip_suffix(b"\n") {
        x
    } else if let Some(x) = d.strip_suffix(b"\r") {
        x
    } else {
        d
    }
}

pub struct UdpInput {
    tag: String,
    bind: String,
    port: u16,
    max_bytes: usize,
    remove_newline: bool,
    recv_buffer: Option<usize>,
    keys: SourceKeys,
    parser: Arc<dyn Parser>,
    extract: Option<Extract>,
    sock: Option<std::net::UdpSocket>,
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Input>, ConfigError> {
    let parse = elem
        .child("parse")
        .ok_or_else(|| elem.error("<parse> section is required."))?;
    let cfg: UdpConfig = ctx.configure(elem, "udp")?;
    let parser: Arc<dyn Parser> = Arc::from(super::new_parser(parse, ctx)?);
    let limit = cfg.body_size_limit.unwrap_or(cfg.message_length_limit);
    Ok(Box::new(UdpInput {
        tag: cfg.tag,
        port: port_of(elem, cfg.port)?,
        bind: cfg.bind,
        max_bytes: limit.0.clamp(0, 1 << 20) as usize,
        remove_newline: cfg.remove_newline,
        recv_buffer: cfg.receive_buffer_size.map(|s| s.0.max(0) as usize),
        keys: SourceKeys::new(
            cfg.source_address_key,
            cfg.source_hostname_key.or(cfg.source_host_key),
        ),
        parser,
        extract: Extract::from_section(elem.child("extract"), ctx)?,
        sock: None,
    }))
}

impl Input for UdpInput {
    fn start(&mut self) -> anyhow::Result<()> {
        if self.sock.is_none() {
            self.sock = Some(server::bind_udp(&self.bind, self.port, self.recv_buffer)?);
            tracing::info!(
                "listening udp socket bind=\"{}\" port={}",
                self.bind,
                self.port
            );
        }
        Ok(())
    }

    fn run(mut self: Box<Self>, ctx: InputContext) -> anyhow::Result<()> {
        self.start()?;
        let Some(sock) = self.sock.take() else {
            return Ok(());
        };
        let mut hosts = HostCache::default();
        server::serve_udp(&sock, self.max_bytes, &ctx.shutdown, |data, from| {
            let data = if self.remove_newline {
                chomp(data)
            } else {
                data
            };
            let ip = server::peer_ip(&from);
            let addr = ip.to_string();
            let host = self.keys.hostname.as_ref().map(|_| hosts.lookup(ip));
            // One emit per event, under the tag `<extract>` found or `tag`.
            parse_message(
                &*self.parser,
                &self.keys,
                self.extract.as_ref(),
                data,
                "data",
                Some(&addr),
                host.as_deref(),
                &mut |tag, time, record| {
                    let tag = tag.as_deref().unwrap_or(&self.tag);
                    ctx.router.emit(tag, EventStream::one(time, record));
                },
            );
        });
        Ok(())
    }
}
