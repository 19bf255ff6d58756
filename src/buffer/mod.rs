//! The buffered-output engine: one implementation of `<buffer CHUNK_KEYS>` (chunk keys, chunk
//! limits, flush modes and threads, retries, `<secondary>`, overflow policy) shared by every output
//! that buffers. An output plugin implements [`BufferedOutput`] (format events into chunk bytes,
//! write one chunk) and is wrapped by [`build`] into an [`Output`](crate::plugins::Output).
//!
//! Storage lives in `plugins::buf_memory` and `plugins::buf_file` (`<buffer> @type`).

pub mod config;
pub mod engine;
pub mod keys;
pub mod retry;
pub mod secondary;
pub mod store;

use crate::config_parser::{types, ConfigError, Element};
use crate::event::{EventStream, EventTime, Record};
use crate::plugins::PluginContext;
use crate::router::Output;
pub use config::{BufferConf, Compress, FlushMode, OverflowAction};
pub use engine::{BufferedEngine, Settings};
pub use keys::{ChunkKeys, Placeholders};
use retry::RetryParams;
use store::{Backup, ChunkStore};

/// The values of a chunk's `<buffer>` chunk keys; one chunk holds events with equal metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Metadata {
    /// Start of the time slot (`time` chunk key), seconds since the epoch.
    pub timekey: Option<i64>,
    /// The tag (`tag` chunk key).
    pub tag: Option<String>,
    /// Record chunk keys in declaration order, with the value as Ruby's `to_s` prints it.
    pub variables: Vec<(String, String)>,
}

/// One chunk as an output's `write` sees it.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// Fluentd's 16-byte unique id (µs time << 12 | random, then 8 random bytes).
    pub unique_id: [u8; 16],
    pub metadata: Metadata,
    /// Number of events in `data`.
    pub records: u64,
    /// Creation time, seconds since the epoch.
    pub created: f64,
    /// The formatted bytes, decompressed: what [`BufferedOutput::format`] appended.
    pub data: Vec<u8>,
}

impl Chunk {
    /// The id as Fluentd prints it in file names and logs: 32 lowercase hex digits.
    pub fn unique_id_hex(&self) -> String {
        use std::fmt::Write;
        self.unique_id
            .iter()
            .fold(String::with_capacity(32), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            })
    }

    /// Decodes `data` as msgpack `[time, record]` entries (the default chunk format).
    pub fn entries(&self) -> Result<Vec<(EventTime, Record)>, String> {
        crate::event::msgpack::read_entries(&self.data).map_err(|e| e.to_string())
    }
}

/// Why `write` failed: a retriable failure is retried per the retry policy; an unrecoverable one
/// goes to `<secondary>` at once, else the chunk is backed up and dropped with an error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    #[error("{0}")]
    Retriable(String),
    /// Retriable, and the receiver named when to come back (HTTP `Retry-After`): the next
    /// retry is no sooner than that, and no later than the retry policy's `retry_timeout`.
    #[error("{0}")]
    RetryAfter(String, std::time::Duration),
    #[error("{0}")]
    Unrecoverable(String),
}

/// The buffer settings an output plugin uses when its `<buffer>` section does not say.
#[derive(Debug, Clone)]
pub struct BufferDefaults {
    /// `<buffer>` `@type` when omitted: "memory" or "file".
    pub buffer_type: &'static str,
    /// Chunk keys when `<buffer>` is absent or has no argument (e.g. `["tag"]`, `["time"]`).
    pub chunk_keys: &'static [&'static str],
    /// `timekey` when omitted (out_file: 86400).
    pub timekey: Option<u64>,
    /// buf_file `path` when omitted (out_file: its own `path`).
    pub file_path: Option<String>,
    /// Chunk keys this output requires (out_forward: "tag"), with the error Fluentd gives.
    pub required_chunk_key: Option<(&'static str, &'static str)>,
}

impl Default for BufferDefaults {
    fn default() -> Self {
        BufferDefaults {
            buffer_type: "memory",
            chunk_keys: &[],
            timekey: None,
            file_path: None,
            required_chunk_key: None,
        }
    }
}

/// An output that buffers. The engine calls `format` on the emitting thread and `write` on a
/// flush thread; both may be called concurrently (`flush_thread_count`).
pub trait BufferedOutput: Send + Sync + 'static {
    /// Appends `es` as chunk bytes. The default is Fluentd's: msgpack `[time, record]` per event.
    fn format(&self, _tag: &str, es: &EventStream, out: &mut Vec<u8>) {
        for e in es.iter() {
            crate::event::msgpack::write_entry(out, e.time, &e.record);
        }
    }

    /// Whether `format` writes msgpack (Fluentd's `formatted_to_msgpack_binary?`, true for the
    /// standard format); buf_file_single counts resumed records by it.
    fn formatted_to_msgpack(&self) -> bool {
        true
    }

    /// Delivers one chunk. Returning `Ok` commits it (the chunk is purged).
    fn write(&self, chunk: &Chunk) -> Result<(), WriteError>;

    /// Delivers one chunk of a file buffer read from `data` (`chunk.data` is empty), as
    /// Fluentd's `chunk.write_to(io)`: a chunk of hundreds of megabytes is never in memory at
    /// once. `None`: not supported, the engine loads the chunk and calls `write`.
    fn write_streamed(
        &self,
        _chunk: &Chunk,
        _data: &mut dyn std::io::Read,
    ) -> Option<Result<(), WriteError>> {
        None
    }

    /// Called once before inputs start.
    fn start(&self) -> anyhow::Result<()> {
        Ok(())
    }

    /// Called after the final flush.
    fn shutdown(&self) {}

    /// Called by [`build`] once the chunk keys are known, before the engine exists: outputs
    /// validate their placeholder templates here (Fluentd's `placeholder_validate!`) and keep
    /// `p` to expand them per chunk. `as_secondary` is set for a `<secondary>` output, which
    /// gets its primary's chunk keys.
    fn configure_buffer(&mut self, _p: &Placeholders, _as_secondary: bool) -> Result<(), String> {
        Ok(())
    }

    /// A chunk was created for the newest timekey (buf_file: `path` is its file). out_file's
    /// `symlink_path` follows it.
    fn chunk_created(&self, _metadata: &Metadata, _path: Option<&std::path::Path>) {}
}

/// Constructs a `BufferedOutput` for `<secondary>`.
pub type BufferedCtor =
    fn(&Element, &PluginContext) -> Result<Box<dyn BufferedOutput>, ConfigError>;

/// `<secondary> @type` → constructor.
pub fn secondary_types() -> Vec<(&'static str, BufferedCtor)> {
    vec![
        ("secondary_file", secondary::create),
        ("file", crate::plugins::out_file::create_secondary),
        ("null", crate::plugins::out_null::create_secondary),
    ]
}

/// Fluentd's plugin id: `@id`, else a generated `object:HEX`.
pub fn plugin_id(elem: &Element) -> String {
    crate::metrics::plugin_id(elem)
}

/// Wraps a buffered output in the engine configured by its `<buffer CHUNK_KEYS>` section (or
/// by `defaults` when there is none) and its `<secondary>`.
pub fn build<O: BufferedOutput>(
    elem: &Element,
    ctx: &PluginContext,
    output: O,
    defaults: BufferDefaults,
) -> Result<Box<dyn Output>, ConfigError> {
    let (settings, mut store, secondary) = configure(elem, ctx, &defaults)?;
    store.owner_formats_msgpack(output.formatted_to_msgpack());
    let mut output = output;
    let p = settings.keys.placeholders();
    output
        .configure_buffer(&p, false)
        .map_err(|m| elem.error(m))?;
    let secondary = match secondary {
        Some((selem, mut s)) => {
            s.configure_buffer(&p, true).map_err(|m| selem.error(m))?;
            Some(s)
        }
        None => None,
    };
    Ok(Box::new(BufferedEngine::new(
        Box::new(output),
        secondary,
        settings,
        store,
    )))
}

type Configured<'a> = (
    Settings,
    Box<dyn ChunkStore>,
    Option<(&'a Element, Box<dyn BufferedOutput>)>,
);

pub(crate) fn configure<'a>(
    elem: &'a Element,
    ctx: &PluginContext,
    defaults: &BufferDefaults,
) -> Result<Configured<'a>, ConfigError> {
    let empty = Element::new("buffer", "", elem.span.clone());
    let belem = elem.child("buffer").unwrap_or(&empty);
    let conf: BufferConf = ctx.configure(belem, "buffer")?;
    let btype = belem.plugin_type().unwrap_or(defaults.buffer_type);
    let names: Vec<String> = match conf.chunk_keys.as_deref().map(str::trim) {
        Some(a) if !a.is_empty() => keys::parse_chunk_key_list(a).map_err(|m| belem.error(m))?,
        _ => defaults.chunk_keys.iter().map(|s| s.to_string()).collect(),
    };
    if let Some((k, msg)) = defaults.required_chunk_key {
        if !names.iter().any(|n| n == k) {
            return Err(belem.error(msg));
        }
    }
    let timekey = conf
        .timekey
        .map(|t| t.0)
        .or(defaults.timekey.map(|t| t as f64));
    let keys = ChunkKeys::new(
        &names,
        timekey,
        conf.timekey_use_utc,
        conf.timekey_zone.as_deref(),
    )
    .map_err(|m| belem.error(m))?;

    // `flush_interval` outside `<buffer>` (v0 style) still counts, and selects interval mode.
    let outer_interval = match elem.get("flush_interval") {
        Some(v) => Some(types::time(v, ctx.strict).map_err(|m| elem.error(m))?),
        None => None,
    };
    let flush_mode = match conf.flush_mode {
        FlushMode::Default if outer_interval.is_some() && elem.child("buffer").is_none() => {
            FlushMode::Interval
        }
        FlushMode::Default if keys.time => FlushMode::Lazy,
        FlushMode::Default => FlushMode::Interval,
        m => m,
    };
    if flush_mode != FlushMode::Interval && belem.has("flush_interval") {
        let name = match flush_mode {
            FlushMode::Lazy => "lazy",
            FlushMode::Immediate => "immediate",
            _ => "interval",
        };
        if belem.has("flush_mode") {
            return Err(belem.error(format!(
                "'flush_interval' can't be specified when 'flush_mode' is not 'interval' explicitly: '{name}'"
            )));
        }
        tracing::warn!(
            "'flush_interval' is ignored because default 'flush_mode' is not 'interval': '{name}'"
        );
    }
    let flush_interval = conf
        .flush_interval
        .map(|t| t.0)
        .or(outer_interval)
        .unwrap_or(60.0);

    let id = plugin_id(elem);
    let (store, persistent, chunk_default, total_default): (Box<dyn ChunkStore>, bool, u64, u64) =
        match btype {
            "memory" => (
                Box::<crate::plugins::buf_memory::MemoryStore>::default(),
                false,
                crate::plugins::buf_memory::DEFAULT_CHUNK_LIMIT_SIZE,
                crate::plugins::buf_memory::DEFAULT_TOTAL_LIMIT_SIZE,
            ),
            "file" => {
                let fs = crate::plugins::buf_file::FileStore::configure(
                    &conf,
                    defaults.file_path.as_deref(),
                    elem.get("@id"),
                    ctx.root_dir.as_deref(),
                )
                .map_err(|m| belem.error(m))?;
                // Two outputs of one type on one buffer path would take each other's chunks.
                let owner = elem.plugin_type().unwrap_or("?");
                if ctx
                    .variable_store
                    .claim(&format!("buf_file:{owner}:{}", fs.pattern), owner)
                    .is_err()
                {
                    return Err(belem.error(format!(
                        "Other '{owner}' plugin already use same buffer path: type = {owner}, buffer path = {}",
                        conf.path.as_deref().unwrap_or(&fs.pattern)
                    )));
                }
                (
                    Box::new(fs),
                    true,
                    crate::plugins::buf_file::DEFAULT_CHUNK_LIMIT_SIZE,
                    crate::plugins::buf_file::DEFAULT_TOTAL_LIMIT_SIZE,
                )
            }
            "file_single" => {
                let fs = crate::plugins::buf_file_single::FileSingleStore::configure(
                    &conf,
                    &keys,
                    defaults.file_path.as_deref(),
                    elem.get("@id"),
                    ctx.root_dir.as_deref(),
                )
                .map_err(|m| belem.error(m))?;
                let owner = elem.plugin_type().unwrap_or("?");
                let dir = fs.dir.to_string_lossy().into_owned();
                if let Err(first) = ctx
                    .variable_store
                    .claim(&format!("buf_file_single:{dir}"), owner)
                {
                    return Err(belem.error(format!(
                        "Other '{first}' plugin already uses same buffer path: type = {owner}, buffer path = {dir}"
                    )));
                }
                (
                    Box::new(fs),
                    true,
                    crate::plugins::buf_file_single::DEFAULT_CHUNK_LIMIT_SIZE,
                    crate::plugins::buf_file_single::DEFAULT_TOTAL_LIMIT_SIZE,
                )
            }
            other => {
                return Err(belem.error(format!(
                    "Unknown buffer plugin '{other}'. Run 'gem search -rd fluent-plugin' to find plugins"
                )))
            }
        };
    let flush_at_shutdown = match conf.flush_at_shutdown {
        Some(v) => {
            if !v && !persistent {
                tracing::warn!(
                    "'flush_at_shutdown' is false, and buffer plugin '{btype}' is not persistent buffer."
                );
                tracing::warn!("your configuration will lose buffered data at shutdown. please confirm your configuration again.");
            }
            v
        }
        None => !persistent,
    };
    let chunk_limit_size = conf
        .chunk_limit_size
        .map(|s| s.0.max(1) as u64)
        .unwrap_or(chunk_default);
    let mut total_limit_size = conf
        .total_limit_size
        .map(|s| s.0.max(1) as u64)
        .unwrap_or(total_default);
    if let Some(q) = conf.queue_limit_length {
        total_limit_size = chunk_limit_size.saturating_mul(q.max(1) as u64);
    }
    if conf.compress == Compress::Zstd {
        return Err(belem.error("compress zstd is not supported by ferrentd; use gzip"));
    }
    let flush_thread_count = conf.flush_thread_count.max(1) as usize;

    let mut secondary = None;
    if let Some(selem) = elem.child("secondary") {
        if selem.child("buffer").is_some() {
            return Err(selem.error("<secondary> section cannot have <buffer> section"));
        }
        if selem.child("secondary").is_some() {
            return Err(selem.error("<secondary> section cannot have <secondary> section"));
        }
        if conf.retry_forever {
            return Err(selem.error("<secondary> section and 'retry_forever' are exclusive"));
        }
        let stype = selem
            .plugin_type()
            .or(elem.plugin_type())
            .unwrap_or_default()
            .to_string();
        let ctor = secondary_types()
            .into_iter()
            .find(|(n, _)| *n == stype)
            .map(|(_, c)| c)
            .ok_or_else(|| {
                selem.error(format!(
                    "Failed to setup secondary plugin in '{}'. '{stype}' plugin in not allowed due to non buffered output",
                    elem.plugin_type().unwrap_or_default()
                ))
            })?;
        let mut se = selem.clone();
        se.set("@type", &stype);
        secondary = Some((selem, ctor(&se, ctx)?));
    }

    let retry = RetryParams {
        retry_type: conf.retry_type,
        wait: conf.retry_wait.0,
        timeout: conf.retry_timeout.0,
        forever: conf.retry_forever,
        max_steps: conf.retry_max_times.map(|n| n.max(0) as u64),
        backoff_base: conf.retry_exponential_backoff_base,
        max_interval: conf.retry_max_interval.map(|t| t.0),
        randomize: conf.retry_randomize,
        secondary: secondary.is_some(),
        secondary_threshold: conf.retry_secondary_threshold,
    };
    if retry.secondary && !(retry.secondary_threshold > 0.0 && retry.secondary_threshold < 1.0) {
        return Err(belem.error("retry_secondary_threshold must be between 0 and 1"));
    }
    let settings = Settings {
        keys,
        flush_mode,
        flush_interval,
        flush_thread_count,
        flush_thread_interval: conf.flush_thread_interval,
        flush_thread_burst_interval: conf.flush_thread_burst_interval,
        flush_at_shutdown,
        timekey_wait: conf.timekey_wait.0,
        overflow_action: conf.overflow_action,
        retry,
        chunk_limit_size,
        chunk_limit_records: conf.chunk_limit_records.map(|n| n.max(1) as u64),
        chunk_full_threshold: conf.chunk_full_threshold,
        total_limit_size,
        queued_chunks_limit_size: conf
            .queued_chunks_limit_size
            .map(|n| n.max(1) as usize)
            .unwrap_or(flush_thread_count),
        compress_gzip: conf.compress == Compress::Gzip,
        backup: Backup::new(ctx.root_dir.as_deref(), &id, conf.disable_chunk_backup),
        metrics: crate::metrics::for_elem(elem, crate::metrics::Category::Output),
        plugin_id: id,
    };
    Ok((settings, store, secondary))
}
