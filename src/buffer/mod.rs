//! The buffered-output engine: one implementation of `<buffer CHUNK_KEYS>` (chunk keys, chunk
//! limits, flush modes and threads, retries, `<secondary>`, overflow policy) shared by every output
//! that buffers. An output plugin implements [`BufferedOutput`] (format events into chunk bytes,
//! write one chunk) and is wrapped by [`build`] into an [`Output`](crate::plugins::Output).
//!
//! Storage lives in `plugins::buf_memory` and `plugins::buf_file` (`<buffer> @type`).

use crate::event::{EventStream, EventTime, Record};

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

    /// Delivers one chunk. Returning `Ok` commits it (the chunk is purged).
    fn write(&self, chunk: &Chunk) -> Result<(), WriteError>;

    /// Called once before inputs start.
    fn start(&self) -> anyhow::Result<()> {
        Ok(())
    }

    /// Called after the final flush.
    fn shutdown(&self) {}
}
