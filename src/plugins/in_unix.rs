//! `@type unix`: the forward protocol (Message, Forward and PackedForward modes, msgpack or JSON,
//! no acknowledgements) over a unix domain socket at `path`.

use std::sync::Arc;

use serde::Deserialize;

use super::{Input, InputContext, PluginContext};
use crate::config_parser::{ConfigError, Element};
use crate::event::EventTime;
use crate::forward::codec::{self, DecodeOptions, RawMessage, ScanState};
use crate::router::Emitter;
use crate::server::{self, Connection, Counters, ReadOutcome, StreamListener, StreamOptions};

#[derive(Debug, Deserialize)]
struct UnixConfig {
    #[serde(default = "default_path")]
    path: String,
    backlog: Option<i64>,
    tag: Option<String>,
}

/// Fluentd's `DEFAULT_SOCKET_PATH`.
fn default_path() -> String {
    std::env::var("FLUENT_SOCKET").unwrap_or_else(|_| "/var/run/fluent/fluent.sock".into())
}

/// One message larger than this closes the connection.
const MAX_MESSAGE: usize = 64 << 20;

struct Settings {
    path: String,
    backlog: Option<i32>,
    decode: DecodeOptions,
}

pub struct UnixInput {
    s: Arc<Settings>,
    listener: Option<std::os::unix::net::UnixListener>,
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Input>, ConfigError> {
    let cfg: UnixConfig = ctx.configure(elem, "unix")?;
    Ok(Box::new(UnixInput {
        s: Arc::new(Settings {
            path: cfg.path,
            backlog: cfg.backlog.map(|b| b.clamp(0, i32::MAX as i64) as i32),
            decode: DecodeOptions {
                tag: cfg.tag,
                ..DecodeOptions::default()
            },
        }),
        listener: None,
    }))
}

/// Emits one message's events; false when the connection is to be closed.
fn on_message(s: &Settings, router: &Emitter, raw: RawMessage<'_>) -> bool {
    if let RawMessage::NotArray(v) = &raw {
        tracing::warn!(
            "incoming data is broken: msg={}",
            String::from_utf8_lossy(&super::formatter_hash::inspect(v))
        );
        return true;
    }
    match codec::decode_message(raw, &s.decode, EventTime::now()) {
        Ok(d) => {
            if let (Some(tag), false) = (&d.tag, d.events.is_empty()) {
                router.emit(tag, d.events);
            }
            true
        }
        Err(e) => {
            tracing::error!("unexpected error in payload error=\"{e}\"");
            false
        }
    }
}

fn handle(s: &Settings, router: &Emitter, mut conn: Connection) {
    let mut buf: Vec<u8> = Vec::new();
    let mut scratch = vec![0u8; 64 << 10];
    let mut json: Option<bool> = None;
    let mut scan = ScanState::default();
    'conn: while let ReadOutcome::Data(n) = conn.read(&mut scratch) {
        buf.extend_from_slice(&scratch[..n]);
        let is_json = *json.get_or_insert(matches!(buf.first(), Some(b'{') | Some(b'[')));
        let mut start = 0;
        loop {
            let pending = &buf[start..];
            if pending.is_empty() {
                break;
            }
            if is_json {
                match codec::scan_json(pending) {
                    Ok(Some((v, used))) => {
                        start += used;
                        if !on_message(s, router, RawMessage::from_value(v)) {
                            break 'conn;
                        }
                    }
                    Ok(None) => {
                        if codec::json_rest_is_blank(pending) {
                            start = buf.len();
                        }
                        break;
                    }
                    Err(e) => {
                        tracing::error!("unexpected error in json payload error=\"{e}\"");
                        break 'conn;
                    }
                }
            } else {
                match codec::scan_msgpack(pending, &mut scan) {
                    Ok(Some(len)) => {
                        scan = ScanState::default();
                        let ok = match RawMessage::from_msgpack(&pending[..len]) {
                            Ok(raw) => on_message(s, router, raw),
                            Err(e) => {
                                tracing::error!(
                                    "unexpected error in msgpack payload error=\"{e}\""
                                );
                                false
                            }
                        };
                        start += len;
                        if !ok {
                            break 'conn;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!("unexpected error in msgpack payload error=\"{e}\"");
                        break 'conn;
                    }
                }
            }
        }
        buf.drain(..start);
        if buf.len() > MAX_MESSAGE {
            tracing::error!(
                "unexpected error in payload error=\"message larger than {MAX_MESSAGE} bytes\""
            );
            break;
        }
    }
    conn.close();
}

impl Input for UnixInput {
    fn start(&mut self) -> anyhow::Result<()> {
        if self.listener.is_none() {
            self.listener = Some(server::listen_unix(&self.s.path, self.s.backlog)?);
            tracing::info!("listening fluent socket on {}", self.s.path);
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
            StreamListener::Unix(listener),
            StreamOptions::new("in_unix"),
            ctx.shutdown.clone(),
            Arc::new(Counters::default()),
            move |conn| handle(&s, &router, conn),
        );
        let _ = std::fs::remove_file(&self.s.path);
        Ok(())
    }
}
