//! The `<buffer CHUNK_KEYS>` section: every parameter of Fluentd's `output.rb` buffer section,
//! `buffer.rb` and `buf_file.rb`, declared once.

use serde::Deserialize;

use super::retry::RetryType;
use crate::config_parser::types::{Size, Time};

fn d_timekey_wait() -> Time {
    Time(600.0)
}
fn d_one() -> i64 {
    1
}
fn d_one_f() -> f64 {
    1.0
}
fn d_sixty() -> Time {
    Time(60.0)
}
fn d_retry_timeout() -> Time {
    Time(72.0 * 3600.0)
}
fn d_threshold() -> f64 {
    0.8
}
fn d_retry_wait() -> Time {
    Time(1.0)
}
fn d_base() -> f64 {
    2.0
}
fn d_true() -> bool {
    true
}
fn d_full() -> f64 {
    0.95
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlushMode {
    #[default]
    Default,
    Lazy,
    Interval,
    Immediate,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverflowAction {
    #[default]
    ThrowException,
    Block,
    DropOldestChunk,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compress {
    #[default]
    Text,
    Gzip,
    Zstd,
}

/// `<buffer>`. `@type` is read from the section directly (memory, file).
#[derive(Debug, Deserialize)]
pub struct BufferConf {
    /// The chunk keys argument (`tag,time`, `[]`).
    #[serde(rename = "@arg", default)]
    pub chunk_keys: Option<String>,
    pub timekey: Option<Time>,
    #[serde(default = "d_timekey_wait")]
    pub timekey_wait: Time,
    #[serde(default)]
    pub timekey_use_utc: bool,
    /// Default: the local offset.
    pub timekey_zone: Option<String>,
    /// Default: true for memory, false for file.
    pub flush_at_shutdown: Option<bool>,
    #[serde(default)]
    pub flush_mode: FlushMode,
    /// Default 60.
    pub flush_interval: Option<Time>,
    #[serde(default = "d_one")]
    pub flush_thread_count: i64,
    #[serde(default = "d_one_f")]
    pub flush_thread_interval: f64,
    #[serde(default = "d_one_f")]
    pub flush_thread_burst_interval: f64,
    #[serde(default = "d_sixty")]
    pub delayed_commit_timeout: Time,
    #[serde(default)]
    pub overflow_action: OverflowAction,
    #[serde(default)]
    pub retry_forever: bool,
    #[serde(default = "d_retry_timeout")]
    pub retry_timeout: Time,
    pub retry_max_times: Option<i64>,
    #[serde(default = "d_threshold")]
    pub retry_secondary_threshold: f64,
    #[serde(default)]
    pub retry_type: RetryType,
    #[serde(default = "d_retry_wait")]
    pub retry_wait: Time,
    #[serde(default = "d_base")]
    pub retry_exponential_backoff_base: f64,
    pub retry_max_interval: Option<Time>,
    #[serde(default = "d_true")]
    pub retry_randomize: bool,
    /// Default 8 MiB (memory) / 256 MiB (file).
    pub chunk_limit_size: Option<Size>,
    /// Default 512 MiB (memory) / 64 GiB (file).
    pub total_limit_size: Option<Size>,
    /// Legacy: total_limit_size = chunk_limit_size × this.
    pub queue_limit_length: Option<i64>,
    pub chunk_limit_records: Option<i64>,
    #[serde(default = "d_full")]
    pub chunk_full_threshold: f64,
    /// Default: flush_thread_count.
    pub queued_chunks_limit_size: Option<i64>,
    #[serde(default)]
    pub compress: Compress,
    #[serde(default)]
    pub disable_chunk_backup: bool,
    /// buf_file: directory, or a path with a `.*` slot.
    pub path: Option<String>,
    /// buf_file: default `.log`.
    pub path_suffix: Option<String>,
    /// buf_file: octal, default 0644 / 0755.
    pub file_permission: Option<String>,
    pub dir_permission: Option<String>,
    /// buf_file_single: count the records of resumed chunks.
    #[serde(default = "d_true")]
    pub calc_num_records: bool,
    /// buf_file_single: how resumed chunks are counted (msgpack, text, auto).
    #[serde(default)]
    pub chunk_format: ChunkFormat,
}

/// buf_file_single's `chunk_format`: how resumed chunks are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChunkFormat {
    Msgpack,
    Text,
    #[default]
    Auto,
}
