//! The running buffer: staged chunks per metadata, a queue of chunks to write, flush threads,
//! an enqueue timer, retries, `<secondary>`, overflow handling and the shutdown flush.
//!
//! Locking: one mutex guards the bookkeeping (and the store calls that append or rename); the
//! output's `format` runs before it is taken and `write` runs after it is released, so emitting
//! threads and `flush_thread_count` writers proceed in parallel.

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::config::{FlushMode, OverflowAction};
use super::keys::ChunkKeys;
use super::retry::{RetryParams, RetryState};
use super::store::{generate_unique_id, hex_id, now_f64, Backup, ChunkStore, StoredChunk};
use super::{BufferedOutput, Chunk, Metadata, WriteError};
use crate::event::{Event, EventStream};
use crate::router::{Output, OutputError};

/// The resolved `<buffer>` settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub keys: ChunkKeys,
    /// `default` already resolved to lazy or interval.
    pub flush_mode: FlushMode,
    pub flush_interval: f64,
    pub flush_thread_count: usize,
    pub flush_thread_interval: f64,
    pub flush_thread_burst_interval: f64,
    pub flush_at_shutdown: bool,
    pub timekey_wait: f64,
    pub overflow_action: OverflowAction,
    pub retry: RetryParams,
    pub chunk_limit_size: u64,
    pub chunk_limit_records: Option<u64>,
    pub chunk_full_threshold: f64,
    pub total_limit_size: u64,
    pub queued_chunks_limit_size: usize,
    pub compress_gzip: bool,
    pub plugin_id: String,
    pub backup: Backup,
    /// Where write/rollback/error counts go and the buffer probe is registered.
    pub metrics: Arc<crate::metrics::PluginMetrics>,
}

struct Entry {
    id: [u8; 16],
    metadata: Metadata,
    created: f64,
    records: u64,
    bytes: u64,
    store: Box<dyn StoredChunk>,
}

#[derive(Default)]
struct State {
    staged: HashMap<Metadata, Entry>,
    queue: VecDeque<Entry>,
    inflight: usize,
    /// Stored bytes of staged, queued and in-flight chunks.
    bytes: u64,
    retry: Option<RetryState>,
    /// Flush threads and the timer keep running while this is set.
    running: bool,
    /// Emitters blocked by `overflow_action block` give up once this is set.
    stopping: bool,
}

pub(crate) struct Inner {
    output: Box<dyn BufferedOutput>,
    secondary: Option<Box<dyn BufferedOutput>>,
    s: Settings,
    store: Box<dyn ChunkStore>,
    state: Mutex<State>,
    /// Flush threads wait here for queued chunks.
    work: Condvar,
    /// Emitters blocked by `overflow_action block` wait here.
    space: Condvar,
    /// The enqueue timer waits here (woken at shutdown).
    tick: Condvar,
    dropped_records: AtomicU64,
}

/// A `BufferedOutput` behind a buffer: what `build` returns.
pub struct BufferedEngine {
    inner: Arc<Inner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// Pieces of formatted bytes with their record counts, events too large for any chunk, and
/// the error for those.
type Split = (Vec<(Vec<u8>, u64)>, Vec<Event>, String);

enum Overflow {
    /// The stream could not be buffered.
    Rejected(String),
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use flate2::write::GzEncoder;
    use std::io::Write;
    let mut e = GzEncoder::new(Vec::with_capacity(data.len() / 4 + 64), Default::default());
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

pub fn gunzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() * 4);
    flate2::read::MultiGzDecoder::new(data).read_to_end(&mut out)?;
    Ok(out)
}

impl BufferedEngine {
    pub fn new(
        output: Box<dyn BufferedOutput>,
        secondary: Option<Box<dyn BufferedOutput>>,
        settings: Settings,
        store: Box<dyn ChunkStore>,
    ) -> BufferedEngine {
        let inner = Arc::new(Inner {
            output,
            secondary,
            s: settings,
            store,
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            space: Condvar::new(),
            tick: Condvar::new(),
            dropped_records: AtomicU64::new(0),
        });
        let weak: std::sync::Weak<Inner> = Arc::downgrade(&inner);
        let probe: std::sync::Weak<dyn crate::metrics::BufferProbe> = weak;
        inner.s.metrics.set_buffer(probe);
        BufferedEngine {
            inner,
            threads: Mutex::new(Vec::new()),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.s
    }

    /// Chunks staged and queued (for tests and monitoring).
    pub fn counts(&self) -> (usize, usize) {
        let st = self.inner.state.lock();
        (st.staged.len(), st.queue.len() + st.inflight)
    }
}

/// Fluentd's `slow_flush_log_threshold` default: writes slower than this are counted.
const SLOW_FLUSH_SECS: f64 = 20.0;

impl crate::metrics::BufferProbe for Inner {
    fn snapshot(&self) -> crate::metrics::BufferSnapshot {
        let st = self.state.lock();
        let stage_byte_size: u64 = st.staged.values().map(|e| e.bytes).sum();
        let mut timekeys: Vec<i64> = st
            .staged
            .values()
            .chain(st.queue.iter())
            .filter_map(|e| e.metadata.timekey)
            .collect();
        timekeys.sort_unstable();
        timekeys.dedup();
        crate::metrics::BufferSnapshot {
            stage_length: st.staged.len() as u64,
            stage_byte_size,
            queue_length: st.queue.len() as u64,
            queue_byte_size: st.bytes.saturating_sub(stage_byte_size),
            total_limit_size: self.s.total_limit_size,
            timekeys,
            retry: st.retry.as_ref().map(|r| (r.start, r.steps, r.next_time)),
        }
    }
}

impl Inner {
    /// Runs one write, counting it (`write_count`, `flush_time_count` in ms, slow flushes).
    fn timed<T>(&self, secondary: bool, f: impl FnOnce() -> T) -> T {
        let started = std::time::Instant::now();
        let r = f();
        self.count_write(secondary, started.elapsed());
        r
    }

    fn count_write(&self, secondary: bool, took: Duration) {
        let m = &self.s.metrics;
        if secondary {
            m.write_secondary_count.inc();
        } else {
            m.write_count.inc();
        }
        m.flush_time_count.add(took.as_millis() as u64);
        if took.as_secs_f64() > SLOW_FLUSH_SECS {
            m.slow_flush_count.inc();
        }
    }

    fn enqueue_locked(&self, st: &mut State, meta: &Metadata) {
        if let Some(mut e) = st.staged.remove(meta) {
            if let Err(err) = e.store.enqueue() {
                tracing::error!("failed to enqueue buffer chunk {}: {err}", hex_id(&e.id));
            }
            st.queue.push_back(e);
            self.work.notify_one();
        }
    }

    fn enqueue_all_locked(&self, st: &mut State, force: bool, pred: impl Fn(&Entry) -> bool) {
        let mut metas: Vec<(f64, Metadata)> = st
            .staged
            .values()
            .filter(|e| pred(e))
            .map(|e| (e.created, e.metadata.clone()))
            .collect();
        metas.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (_, m) in metas {
            if !force && st.queue.len() >= self.s.queued_chunks_limit_size {
                return;
            }
            self.enqueue_locked(st, &m);
        }
    }

    fn storable(&self, st: &State) -> bool {
        st.bytes < self.s.total_limit_size
    }

    /// Waits for room per `overflow_action`; Err when the stream must be rejected.
    fn make_room(&self, st: &mut parking_lot::MutexGuard<'_, State>) -> Result<(), Overflow> {
        if self.storable(st) {
            return Ok(());
        }
        let action = match self.s.overflow_action {
            OverflowAction::ThrowException => "throw_exception",
            OverflowAction::Block => "block",
            OverflowAction::DropOldestChunk => "drop_oldest_chunk",
        };
        tracing::warn!("failed to write data into buffer by buffer overflow action=:{action}");
        match self.s.overflow_action {
            OverflowAction::ThrowException => Err(Overflow::Rejected(
                "buffer space has too many data".to_string(),
            )),
            OverflowAction::Block => {
                while !self.storable(st) {
                    if st.stopping {
                        tracing::error!("breaking block behavior to shutdown Fluentd");
                        return Err(Overflow::Rejected(
                            "buffer space has too many data".to_string(),
                        ));
                    }
                    self.space.wait_for(st, Duration::from_millis(500));
                }
                Ok(())
            }
            OverflowAction::DropOldestChunk => {
                while !self.storable(st) {
                    match st.queue.pop_front() {
                        Some(mut e) => {
                            self.s.metrics.drop_oldest_chunk_count.inc();
                            let n = self.dropped_records.fetch_add(e.records, Ordering::Relaxed)
                                + e.records;
                            tracing::warn!(
                                "dropping oldest chunk to make space after buffer overflow chunk_id=\"{}\" records={} total_dropped_records={}",
                                hex_id(&e.id),
                                e.records,
                                n
                            );
                            st.bytes = st.bytes.saturating_sub(e.bytes);
                            let _ = e.store.purge();
                        }
                        None => {
                            tracing::error!("no queued chunks to be dropped for drop_oldest_chunk");
                            return Err(Overflow::Rejected(
                                "buffer space has too many data".to_string(),
                            ));
                        }
                    }
                }
                Ok(())
            }
        }
    }

    fn is_full(&self, e: &Entry) -> bool {
        e.bytes as f64 >= self.s.chunk_limit_size as f64 * self.s.chunk_full_threshold
            || self.s.chunk_limit_records.is_some_and(|l| e.records >= l)
    }

    /// Appends one piece (known to fit in an empty chunk) to the staged chunk of `meta`.
    fn append_piece(
        &self,
        st: &mut State,
        meta: &Metadata,
        data: &[u8],
        records: u64,
    ) -> std::io::Result<()> {
        let stored;
        let bytes: &[u8] = if self.s.compress_gzip {
            stored = gzip(data);
            &stored
        } else {
            data
        };
        if let Some(e) = st.staged.get(meta) {
            let over_size = e.bytes + bytes.len() as u64 > self.s.chunk_limit_size;
            let over_records = self
                .s
                .chunk_limit_records
                .is_some_and(|l| e.records + records > l);
            if (over_size || over_records) && e.records > 0 {
                self.enqueue_locked(st, meta);
            }
        }
        if !st.staged.contains_key(meta) {
            let id = generate_unique_id();
            let created = now_f64();
            let store = self.store.create(id, meta, created)?;
            let latest = st.staged.keys().all(|m| m.timekey <= meta.timekey);
            if latest {
                self.output.chunk_created(meta, store.path());
            }
            st.staged.insert(
                meta.clone(),
                Entry {
                    id,
                    metadata: meta.clone(),
                    created,
                    records: 0,
                    bytes: 0,
                    store,
                },
            );
        }
        let full = {
            let Some(e) = st.staged.get_mut(meta) else {
                return Ok(());
            };
            e.store.append(bytes, records)?;
            e.bytes += bytes.len() as u64;
            e.records += records;
            self.is_full(e) || self.s.flush_mode == FlushMode::Immediate
        };
        st.bytes += bytes.len() as u64;
        if full {
            self.enqueue_locked(st, meta);
        }
        Ok(())
    }

    /// Formats one event per piece and packs pieces up to the chunk limits; events larger than
    /// a whole chunk are returned apart.
    fn split(&self, tag: &str, es: EventStream) -> Split {
        let mut pieces: Vec<(Vec<u8>, u64)> = Vec::new();
        let mut oversized = Vec::new();
        let mut msg = String::new();
        let mut cur: (Vec<u8>, u64) = (Vec::new(), 0);
        for (nth, ev) in es.into_iter().enumerate() {
            let one = EventStream { events: vec![ev] };
            let mut buf = Vec::new();
            self.output.format(tag, &one, &mut buf);
            if buf.len() as u64 > self.s.chunk_limit_size {
                msg = format!(
                    "a {}bytes record (nth: {}) is larger than buffer chunk limit size ({})",
                    buf.len(),
                    nth,
                    self.s.chunk_limit_size
                );
                oversized.extend(one.events);
                continue;
            }
            let fits_size = cur.0.len() + buf.len() <= self.s.chunk_limit_size as usize;
            let fits_records = self.s.chunk_limit_records.is_none_or(|l| cur.1 < l);
            if !(fits_size && fits_records) && cur.1 > 0 {
                pieces.push(std::mem::take(&mut cur));
            }
            cur.0.extend_from_slice(&buf);
            cur.1 += 1;
        }
        if cur.1 > 0 {
            pieces.push(cur);
        }
        (pieces, oversized, msg)
    }

    fn emit(&self, tag: &str, es: EventStream) -> Result<(), OutputError> {
        let groups = self.s.keys.group(tag, es);
        let mut rejected: Option<(String, EventStream)> = None;
        let mut iter = groups.into_iter();
        while let Some((meta, es)) = iter.next() {
            let records = es.len() as u64;
            let mut data = Vec::new();
            self.output.format(tag, &es, &mut data);
            let too_big = data.len() as u64 > self.s.chunk_limit_size
                || self.s.chunk_limit_records.is_some_and(|l| records > l);
            let (pieces, oversized, msg) = if too_big {
                drop(data);
                let keep = es.clone();
                let (p, o, m) = self.split(tag, keep);
                (p, o, m)
            } else {
                (vec![(data, records)], Vec::new(), String::new())
            };
            let mut st = self.state.lock();
            if let Err(Overflow::Rejected(m)) = self.make_room(&mut st) {
                drop(st);
                let mut rest = es;
                for (_, more) in iter {
                    rest.events.extend(more.events);
                }
                return Err(OutputError::with_stream(m, rest));
            }
            for (piece, n) in &pieces {
                if let Err(e) = self.append_piece(&mut st, &meta, piece, *n) {
                    drop(st);
                    let mut rest = es;
                    for (_, more) in iter {
                        rest.events.extend(more.events);
                    }
                    return Err(OutputError::with_stream(
                        format!("failed to write data into buffer: {e}"),
                        rest,
                    ));
                }
            }
            if !st.queue.is_empty() && st.retry.is_none() {
                self.work.notify_one();
            }
            drop(st);
            if !oversized.is_empty() {
                let r = rejected.get_or_insert_with(|| (msg.clone(), EventStream::new()));
                r.1.events.extend(oversized);
            }
        }
        match rejected {
            Some((m, es)) => Err(OutputError::with_stream(m, es)),
            None => Ok(()),
        }
    }

    /// Writes one dequeued chunk, then commits it, takes it back for a retry, or backs it up.
    fn flush_one(&self, mut e: Entry) {
        let now = now_f64();
        let using_secondary = {
            let st = self.state.lock();
            st.retry.as_ref().is_some_and(|r| r.secondary(now)) && self.secondary.is_some()
        };
        // A file chunk goes to an output that can read it as a stream without being loaded.
        let mut unrecoverable = None;
        if !using_secondary && !self.s.compress_gzip {
            if let Some(Ok(mut file)) = e.store.path().map(std::fs::File::open) {
                let chunk = Chunk {
                    unique_id: e.id,
                    metadata: e.metadata.clone(),
                    records: e.records,
                    created: e.created,
                    data: Vec::new(),
                };
                let started = std::time::Instant::now();
                let streamed = self.output.write_streamed(&chunk, &mut file);
                if streamed.is_some() {
                    self.count_write(false, started.elapsed());
                }
                match streamed {
                    None => {}
                    Some(Ok(())) => return self.commit(e, false),
                    Some(Err(WriteError::Retriable(msg))) => {
                        return self.retry_later(e, false, &msg, None)
                    }
                    Some(Err(WriteError::RetryAfter(msg, after))) => {
                        return self.retry_later(e, false, &msg, Some(after))
                    }
                    // Handled below with the loaded bytes, for <secondary> or the backup.
                    Some(Err(WriteError::Unrecoverable(msg))) => unrecoverable = Some(msg),
                }
            }
        }
        let stored = match e.store.load() {
            Ok(d) => d,
            Err(err) => {
                tracing::error!(
                    "failed to read buffer chunk {}: {err}; the chunk is dropped",
                    hex_id(&e.id)
                );
                self.commit(e, false);
                return;
            }
        };
        let (data, compressed) = if self.s.compress_gzip {
            match gunzip(&stored) {
                Ok(d) => (d, Some(stored)),
                Err(err) => {
                    tracing::warn!(
                        "got unrecoverable error in primary and no secondary error_class=Zlib::GzipFile::Error error=\"{err}\""
                    );
                    self.s.backup.save(&e.id, &stored);
                    self.commit(e, false);
                    return;
                }
            }
        } else {
            (stored, None)
        };
        let chunk = Chunk {
            unique_id: e.id,
            metadata: e.metadata.clone(),
            records: e.records,
            created: e.created,
            data,
        };
        let out: &dyn BufferedOutput = match (&self.secondary, using_secondary) {
            (Some(s), true) => s.as_ref(),
            _ => self.output.as_ref(),
        };
        let written = match unrecoverable {
            Some(msg) => Err(WriteError::Unrecoverable(msg)),
            None => self.timed(using_secondary, || out.write(&chunk)),
        };
        match written {
            Ok(()) => {
                self.commit(e, using_secondary);
                self.store.recycle(chunk.data);
            }
            Err(WriteError::Unrecoverable(msg)) => {
                self.s.metrics.num_errors.inc();
                let backup = |e: Entry, chunk: &Chunk| {
                    self.s.backup.save(&e.id, &chunk.data);
                    self.commit(e, using_secondary);
                };
                match &self.secondary {
                    Some(sec) if !using_secondary => {
                        tracing::warn!(
                            "got unrecoverable error in primary. Skip retry and flush chunk to secondary error_class=Fluent::UnrecoverableError error=\"{msg}\""
                        );
                        match sec.write(&chunk) {
                            Ok(()) => self.commit(e, true),
                            Err(err) => {
                                tracing::warn!(
                                    "got an error in secondary for unrecoverable error error_class=Fluent::UnrecoverableError error=\"{err}\""
                                );
                                backup(e, &chunk);
                            }
                        }
                    }
                    Some(_) => {
                        tracing::warn!(
                            "got unrecoverable error in secondary. error_class=Fluent::UnrecoverableError error=\"{msg}\""
                        );
                        backup(e, &chunk);
                    }
                    None => {
                        tracing::warn!(
                            "got unrecoverable error in primary and no secondary error_class=Fluent::UnrecoverableError error=\"{msg}\""
                        );
                        backup(e, &chunk);
                    }
                }
            }
            Err(WriteError::Retriable(msg)) => {
                e.store.unload(compressed.unwrap_or(chunk.data));
                self.retry_later(e, using_secondary, &msg, None);
            }
            Err(WriteError::RetryAfter(msg, after)) => {
                e.store.unload(compressed.unwrap_or(chunk.data));
                self.retry_later(e, using_secondary, &msg, Some(after));
            }
        }
    }

    /// Puts a chunk whose write failed back at the head of the queue, per the retry policy.
    fn retry_later(
        &self,
        e: Entry,
        using_secondary: bool,
        msg: &str,
        after: Option<std::time::Duration>,
    ) {
        self.s.metrics.rollback_count.inc();
        self.s.metrics.num_errors.inc();
        let id = e.id;
        let mut st = self.state.lock();
        st.inflight -= 1;
        st.queue.push_front(e);
        self.update_retry(&mut st, &id, using_secondary, msg, after);
        drop(st);
        self.work.notify_all();
    }

    fn commit(&self, mut e: Entry, secondary: bool) {
        if let Err(err) = e.store.purge() {
            tracing::warn!("failed to purge buffer chunk {}: {err}", hex_id(&e.id));
        }
        let mut st = self.state.lock();
        st.inflight -= 1;
        st.bytes = st.bytes.saturating_sub(e.bytes);
        if st.retry.is_some() {
            if secondary {
                tracing::warn!(
                    "retry succeeded by secondary. chunk_id=\"{}\"",
                    hex_id(&e.id)
                );
            } else {
                tracing::warn!("retry succeeded. chunk_id=\"{}\"", hex_id(&e.id));
            }
            st.retry = None;
            self.work.notify_all();
        }
        drop(st);
        self.space.notify_all();
    }

    /// Fluentd's `update_retry_state`.
    fn update_retry(
        &self,
        st: &mut State,
        id: &[u8; 16],
        using_secondary: bool,
        err: &str,
        after: Option<std::time::Duration>,
    ) {
        let now = now_f64();
        match &mut st.retry {
            None => st.retry = Some(RetryState::new(self.s.retry.clone(), now)),
            Some(r) => {
                if now >= r.next_time {
                    r.step(now);
                } else {
                    r.recalc_next_time(now);
                }
            }
        }
        if let (Some(r), Some(after)) = (st.retry.as_mut(), after) {
            r.not_before(now + after.as_secs_f64());
        }
        let Some(r) = st.retry.as_ref() else {
            return;
        };
        if r.limit() {
            let records: u64 = st.queue.iter().map(|e| e.records).sum();
            tracing::error!(
                "Hit limit for retries. dropping all chunks in the buffer queue. retry_times={} records={} error_class=RuntimeError error=\"{}\"",
                r.steps,
                records,
                err
            );
            while let Some(mut e) = st.queue.pop_front() {
                let data = e
                    .store
                    .load()
                    .map(|d| {
                        if self.s.compress_gzip {
                            gunzip(&d).unwrap_or(d)
                        } else {
                            d
                        }
                    })
                    .unwrap_or_default();
                self.s.backup.save(&e.id, &data);
                st.bytes = st.bytes.saturating_sub(e.bytes);
                let _ = e.store.purge();
            }
            st.retry = None;
            self.space.notify_all();
        } else {
            let msg = if using_secondary {
                "failed to flush the buffer with secondary output."
            } else {
                "failed to flush the buffer."
            };
            let next = crate::timefmt::strftime(
                crate::event::EventTime::new(r.next_time.round() as i64, 0),
                "%Y-%m-%d %H:%M:%S %z",
                &crate::timefmt::TimeZoneSpec::Local,
            );
            tracing::warn!(
                "{msg} retry_times={} next_retry_time={} chunk=\"{}\" error_class=RuntimeError error=\"{}\"",
                r.steps,
                next,
                hex_id(id),
                err
            );
        }
    }

    fn flush_thread(self: &Arc<Self>) {
        loop {
            let entry = {
                let mut st = self.state.lock();
                loop {
                    if !st.running {
                        return;
                    }
                    let now = now_f64();
                    let wait = match &st.retry {
                        Some(r) if now < r.next_time => Some(r.next_time - now),
                        _ => None,
                    };
                    if wait.is_none() {
                        if let Some(e) = st.queue.pop_front() {
                            st.inflight += 1;
                            break e;
                        }
                    }
                    let d = wait
                        .unwrap_or(self.s.flush_thread_interval.max(0.01))
                        .min(1.0);
                    self.work.wait_for(&mut st, Duration::from_secs_f64(d));
                }
            };
            self.flush_one(entry);
        }
    }

    fn timer_thread(self: &Arc<Self>) {
        let mut interval = f64::INFINITY;
        if self.s.flush_mode == FlushMode::Interval {
            interval = self.s.flush_interval;
        }
        if self.s.keys.time {
            interval = interval.min(self.s.keys.timekey as f64);
        }
        let interval = (interval / 11.0)
            .max(self.s.flush_thread_interval)
            .max(0.001);
        let mut st = self.state.lock();
        loop {
            if !st.running {
                return;
            }
            let now = now_f64();
            if self.s.flush_mode == FlushMode::Interval {
                let fi = self.s.flush_interval;
                self.enqueue_all_locked(&mut st, false, |e| e.created + fi <= now);
            }
            if self.s.keys.time {
                let unit = self.s.keys.timekey;
                let wait = self.s.timekey_wait;
                let now_int = now as i64;
                let current = now_int - now_int.rem_euclid(unit);
                self.enqueue_all_locked(&mut st, false, |e| {
                    e.metadata
                        .timekey
                        .is_some_and(|tk| tk < current && (tk + unit) as f64 + wait <= now)
                });
            }
            self.tick
                .wait_for(&mut st, Duration::from_secs_f64(interval.min(3600.0)));
        }
    }

    /// Enqueues every staged chunk and wakes the writers.
    fn force_flush(&self) {
        let mut st = self.state.lock();
        self.enqueue_all_locked(&mut st, true, |_| true);
        self.work.notify_all();
    }
}

impl Output for BufferedEngine {
    fn emit(&self, tag: &str, es: EventStream) -> Result<(), OutputError> {
        if es.is_empty() {
            return Ok(());
        }
        self.inner.emit(tag, es)
    }

    fn start(&self) -> anyhow::Result<()> {
        let inner = &self.inner;
        inner.output.start()?;
        if let Some(s) = &inner.secondary {
            s.start()?;
        }
        {
            let mut st = inner.state.lock();
            st.running = true;
            let mut resumed = inner.store.resume(&inner.s.backup);
            // As Fluentd: the queue of the previous run first, oldest first; then its staged
            // chunks.
            resumed.sort_by(|a, b| {
                b.queued
                    .cmp(&a.queued)
                    .then(a.modified.total_cmp(&b.modified))
            });
            for r in resumed {
                st.bytes += r.bytes;
                // Staged chunks of a previous run are queued at once (`enqueue` is a no-op for
                // queued ones): they are delivered without waiting for a new flush interval.
                let mut store = r.chunk;
                if let Err(e) = store.enqueue() {
                    tracing::warn!(
                        "failed to enqueue resumed chunk {}: {e}",
                        hex_id(&r.unique_id)
                    );
                }
                st.queue.push_back(Entry {
                    id: r.unique_id,
                    metadata: r.metadata,
                    created: r.created,
                    records: r.records,
                    bytes: r.bytes,
                    store,
                });
            }
        }
        let mut threads = self.threads.lock();
        for i in 0..inner.s.flush_thread_count.max(1) {
            let me = inner.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("flush_thread_{i}"))
                    .spawn(move || me.flush_thread())?,
            );
        }
        if inner.s.flush_mode == FlushMode::Interval || inner.s.keys.time {
            let me = inner.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("enqueue_thread".into())
                    .spawn(move || me.timer_thread())?,
            );
        }
        inner.work.notify_all();
        Ok(())
    }

    fn flush(&self) {
        self.inner.force_flush();
    }

    fn shutdown(&self) {
        let inner = &self.inner;
        // Without flush threads (the engine never started) nothing could drain the queue.
        let started = !self.threads.lock().is_empty();
        if inner.s.flush_at_shutdown && started {
            inner.force_flush();
            // Fluentd's submit_flush_all: wait while the queue drains and no retry is pending.
            let mut st = inner.state.lock();
            while (!st.queue.is_empty() || st.inflight > 0) && st.retry.is_none() {
                inner.space.wait_for(&mut st, Duration::from_millis(100));
            }
        }
        {
            let mut st = inner.state.lock();
            st.running = false;
            st.stopping = true;
        }
        inner.work.notify_all();
        inner.tick.notify_all();
        inner.space.notify_all();
        for h in self.threads.lock().drain(..) {
            let _ = h.join();
        }
        let mut st = inner.state.lock();
        let persistent = inner.store.persistent();
        let mut left: Vec<Entry> = st.queue.drain(..).collect();
        left.extend(st.staged.drain().map(|(_, e)| e));
        if persistent {
            for e in &mut left {
                if let Err(err) = e.store.sync() {
                    tracing::error!("failed to sync buffer chunk {}: {err}", hex_id(&e.id));
                }
            }
        } else if !left.is_empty() {
            let records: u64 = left.iter().map(|e| e.records).sum();
            tracing::error!(
                "{} buffer chunks ({} records) could not be flushed before shutdown",
                left.len(),
                records
            );
            for e in &mut left {
                let data = e.store.load().unwrap_or_default();
                let data = if inner.s.compress_gzip {
                    gunzip(&data).unwrap_or(data)
                } else {
                    data
                };
                inner.s.backup.save(&e.id, &data);
            }
        }
        drop(st);
        inner.output.shutdown();
        if let Some(s) = &inner.secondary {
            s.shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::BufferDefaults;
    use crate::config_parser::Element;
    use crate::event::{EventTime, Record, Value};
    use crate::plugins::formatter_json::test_util::section;
    use crate::plugins::PluginContext;
    use std::sync::atomic::AtomicUsize;

    type Written = Arc<Mutex<Vec<(Metadata, Vec<u8>)>>>;

    /// Formats each event as its `n` value and a newline; fails the first `fail` writes.
    #[derive(Clone, Default)]
    struct Probe {
        written: Written,
        fail: Arc<AtomicUsize>,
        unrecoverable: bool,
    }

    impl BufferedOutput for Probe {
        fn format(&self, _tag: &str, es: &EventStream, out: &mut Vec<u8>) {
            for e in es.iter() {
                if let Some(Value::Int(n)) = e.record.get("n") {
                    out.extend_from_slice(format!("{n}\n").as_bytes());
                }
            }
        }
        fn write(&self, chunk: &Chunk) -> Result<(), WriteError> {
            if self.fail.load(Ordering::SeqCst) > 0 {
                self.fail.fetch_sub(1, Ordering::SeqCst);
                return Err(if self.unrecoverable {
                    WriteError::Unrecoverable("boom".into())
                } else {
                    WriteError::Retriable("down".into())
                });
            }
            self.written
                .lock()
                .push((chunk.metadata.clone(), chunk.data.clone()));
            Ok(())
        }
    }

    fn stream(ns: std::ops::Range<i64>) -> EventStream {
        let mut es = EventStream::new();
        for n in ns {
            let mut r = Record::new();
            r.insert("n", Value::Int(n));
            es.push(EventTime::new(1_700_000_000 + n, 0), r);
        }
        es
    }

    fn engine(params: &[(&str, &str)], probe: &Probe, root: Option<&Path>) -> BufferedEngine {
        let mut m = section("match", &[("@type", "probe"), ("@id", "p1")]);
        let mut b: Element = section("buffer", params);
        b.arg = String::new();
        m.elements.push(b);
        let mut ctx = PluginContext::for_tests();
        ctx.root_dir = root.map(Path::to_path_buf);
        let (settings, store, _) =
            crate::buffer::configure(&m, &ctx, &BufferDefaults::default()).unwrap();
        BufferedEngine::new(Box::new(probe.clone()), None, settings, store)
    }

    use std::path::Path;

    fn wait_until(mut f: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !f() {
            assert!(
                std::time::Instant::now() < deadline,
                "condition not reached"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn all_lines(p: &Probe) -> Vec<String> {
        let mut v: Vec<String> = p
            .written
            .lock()
            .iter()
            .flat_map(|(_, d)| {
                String::from_utf8_lossy(d)
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        v.sort_by_key(|s| s.parse::<i64>().unwrap_or(0));
        v
    }

    #[test]
    fn chunk_limit_records_splits_and_shutdown_flushes() {
        let p = Probe::default();
        let e = engine(&[("chunk_limit_records", "3")], &p, None);
        e.start().unwrap();
        e.emit("t", stream(0..7)).unwrap();
        e.shutdown();
        let w = p.written.lock();
        let sizes: Vec<usize> = w
            .iter()
            .map(|(_, d)| d.iter().filter(|b| **b == b'\n').count())
            .collect();
        assert_eq!(sizes, vec![3, 3, 1]);
        drop(w);
        assert_eq!(
            all_lines(&p),
            (0..7).map(|n| n.to_string()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn chunk_limit_size_splits_a_large_batch() {
        let p = Probe::default();
        // "0\n".."9\n" are 2 bytes each: 3 per chunk of 6 bytes.
        let e = engine(&[("chunk_limit_size", "6")], &p, None);
        e.start().unwrap();
        e.emit("t", stream(0..10)).unwrap();
        e.shutdown();
        let sizes: Vec<usize> = p.written.lock().iter().map(|(_, d)| d.len()).collect();
        assert_eq!(sizes, vec![6, 6, 6, 2]);
    }

    #[test]
    fn overflow_throw_exception_returns_the_stream() {
        let p = Probe::default();
        let e = engine(
            &[("chunk_limit_size", "4"), ("total_limit_size", "8")],
            &p,
            None,
        );
        // Not started: nothing is written, so the buffer fills up.
        e.emit("t", stream(0..2)).unwrap();
        e.emit("t", stream(2..4)).unwrap();
        let err = e.emit("t", stream(4..6)).unwrap_err();
        assert_eq!(err.message, "buffer space has too many data");
        assert_eq!(err.stream.unwrap(), stream(4..6));
        assert_eq!(e.counts(), (0, 2));
    }

    #[test]
    fn overflow_drop_oldest_chunk_counts() {
        let p = Probe::default();
        let e = engine(
            &[
                ("chunk_limit_size", "4"),
                ("total_limit_size", "8"),
                ("overflow_action", "drop_oldest_chunk"),
            ],
            &p,
            None,
        );
        e.emit("t", stream(0..2)).unwrap();
        e.emit("t", stream(2..4)).unwrap();
        e.emit("t", stream(4..6)).unwrap();
        assert_eq!(e.inner.dropped_records.load(Ordering::Relaxed), 2);
        e.start().unwrap();
        e.shutdown();
        assert_eq!(all_lines(&p), vec!["2", "3", "4", "5"]);
    }

    #[test]
    fn overflow_block_waits_for_room() {
        let p = Probe::default();
        let e = Arc::new(engine(
            &[
                ("chunk_limit_size", "4"),
                ("total_limit_size", "8"),
                ("overflow_action", "block"),
            ],
            &p,
            None,
        ));
        e.emit("t", stream(0..2)).unwrap();
        e.emit("t", stream(2..4)).unwrap();
        let (tx, rx) = crossbeam_channel::bounded(1);
        let e2 = e.clone();
        std::thread::spawn(move || {
            let _ = tx.send(e2.emit("t", stream(4..6)).is_ok());
        });
        // The emitter is blocked until flush threads make room.
        assert!(rx.try_recv().is_err());
        e.start().unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(20)), Ok(true));
        e.shutdown();
        assert_eq!(all_lines(&p).len(), 6);
    }

    #[test]
    fn retriable_errors_are_retried_then_logged_success() {
        let p = Probe::default();
        p.fail.store(2, Ordering::SeqCst);
        let e = engine(
            &[
                ("flush_mode", "immediate"),
                ("retry_wait", "0.01"),
                ("retry_randomize", "false"),
            ],
            &p,
            None,
        );
        e.start().unwrap();
        e.emit("t", stream(0..3)).unwrap();
        wait_until(|| !p.written.lock().is_empty());
        assert!(e.inner.state.lock().retry.is_none());
        e.shutdown();
        assert_eq!(all_lines(&p), vec!["0", "1", "2"]);
    }

    #[test]
    fn unrecoverable_chunk_is_backed_up() {
        let d = tempfile::tempdir().unwrap();
        let p = Probe {
            unrecoverable: true,
            ..Default::default()
        };
        p.fail.store(1, Ordering::SeqCst);
        let e = engine(&[("flush_mode", "immediate")], &p, Some(d.path()));
        e.start().unwrap();
        e.emit("t", stream(0..2)).unwrap();
        let dir = d.path().join("backup/worker0/p1");
        wait_until(|| {
            dir.read_dir()
                .map(|mut r| r.next().is_some())
                .unwrap_or(false)
        });
        e.shutdown();
        let f = dir.read_dir().unwrap().next().unwrap().unwrap().path();
        assert!(f.to_string_lossy().ends_with(".log"));
        assert_eq!(std::fs::read(f).unwrap(), b"0\n1\n");
        assert!(p.written.lock().is_empty());
    }

    #[test]
    fn retry_limit_backs_up_queue() {
        let d = tempfile::tempdir().unwrap();
        let p = Probe::default();
        p.fail.store(100, Ordering::SeqCst);
        let e = engine(
            &[
                ("flush_mode", "immediate"),
                ("retry_wait", "0.01"),
                ("retry_max_times", "2"),
                ("retry_randomize", "false"),
            ],
            &p,
            Some(d.path()),
        );
        e.start().unwrap();
        e.emit("t", stream(0..2)).unwrap();
        let dir = d.path().join("backup/worker0/p1");
        wait_until(|| {
            dir.read_dir()
                .map(|mut r| r.next().is_some())
                .unwrap_or(false)
        });
        e.shutdown();
        assert!(p.written.lock().is_empty());
    }

    #[test]
    fn gzip_chunks_are_handed_over_decompressed() {
        let p = Probe::default();
        let e = engine(&[("compress", "gzip")], &p, None);
        e.start().unwrap();
        e.emit("t", stream(0..2)).unwrap();
        e.emit("t", stream(2..3)).unwrap();
        e.shutdown();
        assert_eq!(p.written.lock()[0].1, b"0\n1\n2\n");
    }

    #[test]
    fn flush_mode_default_rules() {
        let p = Probe::default();
        let mut m = section("match", &[("@type", "probe")]);
        let mut b = section("buffer", &[("timekey", "60")]);
        b.arg = "time".into();
        m.elements.push(b);
        let ctx = PluginContext::for_tests();
        let (s, _, _) = crate::buffer::configure(&m, &ctx, &BufferDefaults::default()).unwrap();
        assert_eq!(s.flush_mode, FlushMode::Lazy);
        assert!(s.flush_at_shutdown);
        assert_eq!(s.chunk_limit_size, 8 * 1024 * 1024);
        let m = section("match", &[("@type", "probe"), ("flush_interval", "5s")]);
        let (s, _, _) = crate::buffer::configure(&m, &ctx, &BufferDefaults::default()).unwrap();
        assert_eq!((s.flush_mode, s.flush_interval), (FlushMode::Interval, 5.0));
        let mut m = section("match", &[("@type", "probe")]);
        m.elements.push(section(
            "buffer",
            &[("flush_mode", "lazy"), ("flush_interval", "5s")],
        ));
        let err = crate::buffer::configure(&m, &ctx, &BufferDefaults::default())
            .err()
            .unwrap();
        assert!(err
            .message
            .contains("'flush_interval' can't be specified when 'flush_mode' is not 'interval' explicitly: 'lazy'"));
        let _ = p;
    }
}
