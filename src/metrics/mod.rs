//! Process-wide plugin metrics: what Fluentd's `statistics` and monitor_agent report, kept in
//! atomics so the event path only adds to counters. The buffer engine and in_tail hand in
//! probes that are read when someone asks (a scrape, monitor_agent), never per event.
//!
//! Plugins are identified as Fluentd does (`@id`, else a generated `object:HEX`). The engine
//! opens a [`Scope`] around each plugin's constructor so that the ids the plugin computes for
//! itself (buffer paths, pos-file claims) are the ids monitoring shows.

pub mod exposition;
pub mod health;
pub mod labels;
pub mod prom;

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};

use crate::config_parser::Element;

/// A monotonically increasing count.
#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Default, Debug)]
pub struct Gauge(AtomicU64);

impl Gauge {
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Category {
    Input,
    Output,
    Filter,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Input => "input",
            Category::Output => "output",
            Category::Filter => "filter",
        }
    }
}

/// A buffer's state at one moment (Fluentd's buffer `statistics`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BufferSnapshot {
    pub stage_length: u64,
    pub stage_byte_size: u64,
    pub queue_length: u64,
    pub queue_byte_size: u64,
    pub total_limit_size: u64,
    /// Timekeys of staged and queued chunks (chunk key `time` only).
    pub timekeys: Vec<i64>,
    /// `(start, steps, next_time)` while retrying.
    pub retry: Option<(f64, u64, f64)>,
}

impl BufferSnapshot {
    pub fn total_queued_size(&self) -> u64 {
        self.stage_byte_size + self.queue_byte_size
    }

    /// Percent of `total_limit_size` still free, as Fluentd rounds it (one decimal).
    pub fn available_space_ratio(&self) -> f64 {
        if self.total_limit_size == 0 {
            return 100.0;
        }
        let free = 1.0 - self.total_queued_size() as f64 / self.total_limit_size as f64;
        ((free * 100.0) * 10.0).round() / 10.0
    }
}

/// Implemented by the buffer engine; read on demand.
pub trait BufferProbe: Send + Sync {
    fn snapshot(&self) -> BufferSnapshot;
}

/// One file followed by in_tail.
#[derive(Debug)]
pub struct TailFileMetrics {
    pub path: String,
    pub position: Gauge,
    pub inode: Gauge,
    pub opened: Counter,
    pub closed: Counter,
    pub rotated: Counter,
    pub throttled: Counter,
}

/// Counters of one plugin instance.
pub struct PluginMetrics {
    pub plugin_id: String,
    pub plugin_type: String,
    pub category: Category,
    /// The `<match>` pattern, for monitor_agent's `?tag=`.
    pub pattern: Option<String>,
    /// The section's parameters, for monitor_agent `include_config`.
    pub config: serde_json::Map<String, serde_json::Value>,
    pub emit_records: Counter,
    pub emit_size: Counter,
    pub emit_count: Counter,
    pub write_count: Counter,
    pub write_secondary_count: Counter,
    pub rollback_count: Counter,
    pub num_errors: Counter,
    /// Milliseconds spent in writes.
    pub flush_time_count: Counter,
    pub slow_flush_count: Counter,
    pub drop_oldest_chunk_count: Counter,
    buffer: RwLock<Option<Weak<dyn BufferProbe>>>,
    tail: Mutex<Vec<Arc<TailFileMetrics>>>,
}

impl std::fmt::Debug for PluginMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginMetrics")
            .field("plugin_id", &self.plugin_id)
            .field("type", &self.plugin_type)
            .finish()
    }
}

impl PluginMetrics {
    pub fn new(plugin_id: &str, plugin_type: &str, category: Category) -> PluginMetrics {
        PluginMetrics {
            plugin_id: plugin_id.to_string(),
            plugin_type: plugin_type.to_string(),
            category,
            pattern: None,
            config: serde_json::Map::new(),
            emit_records: Counter::default(),
            emit_size: Counter::default(),
            emit_count: Counter::default(),
            write_count: Counter::default(),
            write_secondary_count: Counter::default(),
            rollback_count: Counter::default(),
            num_errors: Counter::default(),
            flush_time_count: Counter::default(),
            slow_flush_count: Counter::default(),
            drop_oldest_chunk_count: Counter::default(),
            buffer: RwLock::new(None),
            tail: Mutex::new(Vec::new()),
        }
    }

    /// A detached instance (unit tests, plugins built outside an engine).
    pub fn detached(plugin_type: &str, category: Category) -> Arc<PluginMetrics> {
        Arc::new(PluginMetrics::new("", plugin_type, category))
    }

    pub fn set_buffer(&self, probe: Weak<dyn BufferProbe>) {
        *self.buffer.write() = Some(probe);
    }

    pub fn buffer(&self) -> Option<BufferSnapshot> {
        let probe = self.buffer.read().as_ref()?.upgrade()?;
        Some(probe.snapshot())
    }

    /// The metrics of one followed path, created on first use.
    pub fn tail_file(&self, path: &str) -> Arc<TailFileMetrics> {
        let mut files = self.tail.lock();
        if let Some(f) = files.iter().find(|f| f.path == path) {
            return f.clone();
        }
        let f = Arc::new(TailFileMetrics {
            path: path.to_string(),
            position: Gauge::default(),
            inode: Gauge::default(),
            opened: Counter::default(),
            closed: Counter::default(),
            rotated: Counter::default(),
            throttled: Counter::default(),
        });
        files.push(f.clone());
        f
    }

    pub fn tail_files(&self) -> Vec<Arc<TailFileMetrics>> {
        self.tail.lock().clone()
    }

    /// Fluentd's monitor_agent object for this plugin (`get_monitor_info`).
    pub fn monitor_info(
        &self,
        with_config: bool,
        with_retry: bool,
    ) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::{json, Value};
        let mut o = serde_json::Map::new();
        o.insert("plugin_id".into(), json!(self.plugin_id));
        o.insert("plugin_category".into(), json!(self.category.as_str()));
        o.insert("type".into(), json!(self.plugin_type));
        if with_config {
            o.insert("config".into(), Value::Object(self.config.clone()));
        }
        let is_output = self.category == Category::Output;
        o.insert("output_plugin".into(), json!(is_output));
        let buffer = if is_output { self.buffer() } else { None };
        if let Some(b) = &buffer {
            o.insert("buffer_queue_length".into(), json!(b.queue_length));
            o.insert("buffer_timekeys".into(), json!(b.timekeys));
            o.insert(
                "buffer_total_queued_size".into(),
                json!(b.total_queued_size()),
            );
        }
        if is_output {
            o.insert("retry_count".into(), json!(self.num_errors.get()));
            o.insert("emit_records".into(), json!(self.emit_records.get()));
            o.insert("emit_size".into(), json!(self.emit_size.get()));
            o.insert("emit_count".into(), json!(self.emit_count.get()));
            o.insert("write_count".into(), json!(self.write_count.get()));
            o.insert(
                "write_secondary_count".into(),
                json!(self.write_secondary_count.get()),
            );
            o.insert("rollback_count".into(), json!(self.rollback_count.get()));
            o.insert(
                "slow_flush_count".into(),
                json!(self.slow_flush_count.get()),
            );
            o.insert(
                "flush_time_count".into(),
                json!(self.flush_time_count.get()),
            );
            o.insert(
                "drop_oldest_chunk_count".into(),
                json!(self.drop_oldest_chunk_count.get()),
            );
            if let Some(b) = &buffer {
                o.insert("buffer_stage_length".into(), json!(b.stage_length));
                o.insert("buffer_stage_byte_size".into(), json!(b.stage_byte_size));
                o.insert("buffer_queue_byte_size".into(), json!(b.queue_byte_size));
                o.insert(
                    "buffer_available_buffer_space_ratios".into(),
                    json!(b.available_space_ratio()),
                );
                if let (Some(min), Some(max)) = (b.timekeys.iter().min(), b.timekeys.iter().max()) {
                    o.insert("buffer_oldest_timekey".into(), json!(min));
                    o.insert("buffer_newest_timekey".into(), json!(max));
                }
            }
            if with_retry {
                let r = match buffer.as_ref().and_then(|b| b.retry) {
                    Some((start, steps, next_time)) => json!({
                        "start": crate::metrics::iso_time(start),
                        "steps": steps,
                        "next_time": crate::metrics::iso_time(next_time),
                    }),
                    None => json!({}),
                };
                o.insert("retry".into(), r);
            }
        } else {
            o.insert("retry_count".into(), Value::Null);
            o.insert("emit_records".into(), json!(self.emit_records.get()));
            o.insert("emit_size".into(), json!(self.emit_size.get()));
        }
        o
    }
}

/// Ruby's `Time#to_s`-like local time for retry times in monitor_agent output.
pub fn iso_time(t: f64) -> String {
    use chrono::TimeZone;
    let secs = t.floor() as i64;
    match chrono::Local.timestamp_opt(secs, 0).single() {
        Some(dt) => dt.format("%Y-%m-%d %H:%M:%S %z").to_string(),
        None => String::new(),
    }
}

/// The plugins of the running configuration, in monitor_agent order.
static INSTALLED: RwLock<Vec<Arc<PluginMetrics>>> = RwLock::new(Vec::new());

static OBJECT_IDS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Plugins registered by the configuration being built on this thread.
    static BUILDING: RefCell<Option<Vec<Arc<PluginMetrics>>>> = const { RefCell::new(None) };
    /// The sections whose constructors are running (innermost last), by address.
    static CURRENT: RefCell<Vec<(usize, Arc<PluginMetrics>)>> = const { RefCell::new(Vec::new()) };
}

/// The plugins of one built configuration; [`install`] makes them the ones reported.
#[derive(Default, Clone)]
pub struct Generation(Vec<Arc<PluginMetrics>>);

impl Generation {
    pub fn plugins(&self) -> &[Arc<PluginMetrics>] {
        &self.0
    }
}

/// Collects every plugin registered on this thread until [`BuildGuard::finish`].
pub struct BuildGuard {
    prev: Option<Vec<Arc<PluginMetrics>>>,
    done: bool,
}

pub fn begin_build() -> BuildGuard {
    let prev = BUILDING.with(|b| b.borrow_mut().replace(Vec::new()));
    BuildGuard { prev, done: false }
}

impl BuildGuard {
    pub fn finish(mut self) -> Generation {
        self.done = true;
        let prev = self.prev.take();
        let got = BUILDING.with(|b| std::mem::replace(&mut *b.borrow_mut(), prev));
        Generation(got.unwrap_or_default())
    }
}

impl Drop for BuildGuard {
    fn drop(&mut self) {
        if !self.done {
            let prev = self.prev.take();
            BUILDING.with(|b| *b.borrow_mut() = prev);
        }
    }
}

/// Makes `g` the configuration monitoring reports.
pub fn install(g: &Generation) {
    let mut v = g.0.clone();
    v.sort_by_key(|p| p.category);
    *INSTALLED.write() = v;
}

/// The plugins of the running configuration.
pub fn plugins() -> Vec<Arc<PluginMetrics>> {
    INSTALLED.read().clone()
}

fn elem_key(elem: &Element) -> usize {
    elem as *const Element as usize
}

fn generate_id(elem: &Element) -> String {
    match elem.get("@id") {
        Some(id) => id.to_string(),
        None => format!(
            "object:{:x}",
            0x3fc0 + OBJECT_IDS.fetch_add(1, Ordering::Relaxed) * 0x14
        ),
    }
}

/// Fluentd's plugin id of `elem`: the one monitoring uses while its constructor runs.
pub fn plugin_id(elem: &Element) -> String {
    let key = elem_key(elem);
    CURRENT
        .with(|c| {
            c.borrow()
                .iter()
                .rev()
                .find(|(k, _)| *k == key)
                .map(|(_, m)| m.plugin_id.clone())
        })
        .unwrap_or_else(|| generate_id(elem))
}

fn register(elem: &Element, category: Category) -> Arc<PluginMetrics> {
    let mut m = PluginMetrics::new(
        &generate_id(elem),
        elem.plugin_type().unwrap_or_default(),
        category,
    );
    if elem.name == "match" {
        m.pattern = Some(elem.arg.clone());
    }
    for p in &elem.params {
        if let Some(v) = elem.get(&p.key) {
            m.config
                .insert(p.key.clone(), serde_json::Value::String(v.to_string()));
        }
    }
    let m = Arc::new(m);
    BUILDING.with(|b| {
        if let Some(v) = b.borrow_mut().as_mut() {
            v.push(m.clone());
        }
    });
    m
}

/// The metrics of `elem`: its scope's when its constructor runs in one, else a new entry
/// (a `<store>` of copy).
pub fn for_elem(elem: &Element, category: Category) -> Arc<PluginMetrics> {
    let key = elem_key(elem);
    let found = CURRENT.with(|c| {
        c.borrow()
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, m)| m.clone())
    });
    found.unwrap_or_else(|| register(elem, category))
}

/// Registers `elem` and makes it current until dropped.
pub struct Scope {
    pub metrics: Arc<PluginMetrics>,
}

pub fn enter(elem: &Element, category: Category) -> Scope {
    let m = register(elem, category);
    CURRENT.with(|c| c.borrow_mut().push((elem_key(elem), m.clone())));
    Scope { metrics: m }
}

impl Drop for Scope {
    fn drop(&mut self) {
        CURRENT.with(|c| {
            let mut c = c.borrow_mut();
            if let Some(i) = c.iter().rposition(|(_, m)| Arc::ptr_eq(m, &self.metrics)) {
                c.remove(i);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elem(params: &[(&str, &str)]) -> Element {
        crate::test_util::section("match", params)
    }

    #[test]
    fn scope_gives_the_same_id_to_the_plugin() {
        let e = elem(&[("@type", "file")]);
        let g = begin_build();
        let s = enter(&e, Category::Output);
        assert_eq!(plugin_id(&e), s.metrics.plugin_id);
        assert!(Arc::ptr_eq(&for_elem(&e, Category::Output), &s.metrics));
        drop(s);
        assert_ne!(plugin_id(&e), plugin_id(&e));
        let gen = g.finish();
        assert_eq!(gen.plugins().len(), 1);
        assert!(gen.plugins()[0].plugin_id.starts_with("object:"));
        let e2 = elem(&[("@type", "file"), ("@id", "out1")]);
        assert_eq!(plugin_id(&e2), "out1");
    }

    #[test]
    fn monitor_info_fields_for_an_unbuffered_output_and_an_input() {
        let m = PluginMetrics::new("o", "stdout", Category::Output);
        m.emit_records.add(3);
        let o = m.monitor_info(false, false);
        let keys: Vec<&str> = o.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "plugin_id",
                "plugin_category",
                "type",
                "output_plugin",
                "retry_count",
                "emit_records",
                "emit_size",
                "emit_count",
                "write_count",
                "write_secondary_count",
                "rollback_count",
                "slow_flush_count",
                "flush_time_count",
                "drop_oldest_chunk_count"
            ]
        );
        assert_eq!(o["emit_records"], 3);
        let i = PluginMetrics::new("i", "tail", Category::Input).monitor_info(false, false);
        assert_eq!(i["retry_count"], serde_json::Value::Null);
        assert_eq!(i["output_plugin"], false);
    }

    #[test]
    fn available_space_ratio_rounds_to_one_decimal() {
        let b = BufferSnapshot {
            stage_byte_size: 1,
            queue_byte_size: 2,
            total_limit_size: 7,
            ..Default::default()
        };
        assert_eq!(b.available_space_ratio(), 57.1);
    }
}
