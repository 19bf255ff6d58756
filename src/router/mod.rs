//! The event graph: one `Router` for the top level and one per `<label>`. A router holds its
//! `<filter>`/`<match>` rules in config order; a tag's pipeline (the filters before its first
//! matching `<match>`, and that output) is resolved once and cached.

pub mod pattern;
pub mod stage;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use parking_lot::RwLock;

use crate::event::{EventStream, EventTime, Record};
pub use pattern::MatchPattern;
pub use stage::{Filter, Output, OutputError};

/// Fluentd caches 1024 tag → pipeline resolutions per router.
const PIPELINE_CACHE_SIZE: usize = 1024;

pub enum RuleAction {
    Filter(Arc<dyn Filter>),
    Match(Arc<dyn Output>),
}

pub struct Rule {
    pub pattern: MatchPattern,
    pub action: RuleAction,
}

/// The filters then the output that a tag's events go through.
#[derive(Default)]
pub struct Pipeline {
    filters: Vec<Arc<dyn Filter>>,
    output: Option<Arc<dyn Output>>,
}

#[derive(Default)]
struct PipelineCache {
    map: HashMap<String, Arc<Pipeline>>,
    order: VecDeque<String>,
}

pub struct Router {
    name: String,
    rules: Vec<Rule>,
    cache: RwLock<PipelineCache>,
    unmatched: AtomicU64,
    errors: ErrorSink,
}

impl Router {
    pub fn new(name: impl Into<String>, rules: Vec<Rule>, errors: ErrorSink) -> Self {
        Router {
            name: name.into(),
            rules,
            cache: RwLock::new(PipelineCache::default()),
            unmatched: AtomicU64::new(0),
            errors,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Does a `<match>` of this router take `tag` (Fluentd's `EventRouter#match?`)?
    pub fn has_match(&self, tag: &str) -> bool {
        self.rules
            .iter()
            .any(|r| matches!(r.action, RuleAction::Match(_)) && r.pattern.matches(tag))
    }

    fn resolve(&self, tag: &str) -> Arc<Pipeline> {
        if let Some(p) = self.cache.read().map.get(tag) {
            return p.clone();
        }
        let mut pipeline = Pipeline::default();
        for rule in &self.rules {
            if !rule.pattern.matches(tag) {
                continue;
            }
            match &rule.action {
                RuleAction::Filter(f) => pipeline.filters.push(f.clone()),
                RuleAction::Match(o) => {
                    pipeline.output = Some(o.clone());
                    break;
                }
            }
        }
        let pipeline = Arc::new(pipeline);
        let mut cache = self.cache.write();
        if cache.map.len() >= PIPELINE_CACHE_SIZE {
            if let Some(old) = cache.order.pop_front() {
                cache.map.remove(&old);
            }
        }
        if cache
            .map
            .insert(tag.to_string(), pipeline.clone())
            .is_none()
        {
            cache.order.push_back(tag.to_string());
        }
        pipeline
    }

    /// Routes a batch: through the tag's filters, then into its output. Output failures send
    /// the stream to `@ERROR` (or a counted warning); nothing is dropped silently.
    pub fn emit(&self, tag: &str, es: EventStream) {
        if es.is_empty() {
            return;
        }
        let pipeline = self.resolve(tag);
        let mut es = es;
        for f in &pipeline.filters {
            es = f.filter_stream(tag, es);
            if es.is_empty() {
                return;
            }
        }
        match &pipeline.output {
            Some(out) => {
                if let Err(e) = out.emit(tag, es) {
                    self.errors.emit_error_stream(tag, e.stream, &e.message);
                }
            }
            None => self.no_match(tag, es.len()),
        }
    }

    /// Fluentd's throttled "no patterns matched": the 1st, 2nd, 4th … 256th, then every 512th.
    fn no_match(&self, tag: &str, _events: usize) {
        let c = self.unmatched.fetch_add(1, Ordering::Relaxed) + 1;
        let warn = if c < 512 {
            c.is_power_of_two()
        } else {
            c.is_multiple_of(512)
        };
        if warn {
            tracing::warn!("no patterns matched tag=\"{}\"", tag);
        }
    }

    pub fn outputs(&self) -> impl Iterator<Item = &Arc<dyn Output>> {
        self.rules.iter().filter_map(|r| match &r.action {
            RuleAction::Match(o) => Some(o),
            _ => None,
        })
    }
}

enum EmitTarget {
    Router(OnceLock<Arc<Router>>),
    /// For tests: keeps what is emitted.
    Collect(Mutex<Vec<(String, EventStream)>>),
}

/// A handle to a router that may be created after the plugins that emit into it
/// (relabel, copy stores, rewrite_tag_filter, inputs with `@label`).
#[derive(Clone)]
pub struct Emitter {
    label: Arc<str>,
    target: Arc<EmitTarget>,
    /// The emitting input's counters (`emit_records`), when monitored.
    meter: Option<Arc<crate::metrics::PluginMetrics>>,
}

impl Emitter {
    /// A handle whose router is set later with [`Emitter::bind`].
    pub fn detached(label: &str) -> Self {
        Emitter {
            label: label.into(),
            target: Arc::new(EmitTarget::Router(OnceLock::new())),
            meter: None,
        }
    }

    /// A handle that records what is emitted; read it back with [`Emitter::collected`].
    pub fn collector(label: &str) -> Self {
        Emitter {
            label: label.into(),
            target: Arc::new(EmitTarget::Collect(Mutex::new(Vec::new()))),
            meter: None,
        }
    }

    pub fn bind(&self, router: Arc<Router>) {
        if let EmitTarget::Router(slot) = &*self.target {
            let _ = slot.set(router);
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// The same target, counting what is emitted into `m`.
    pub fn metered(&self, m: Arc<crate::metrics::PluginMetrics>) -> Emitter {
        Emitter {
            meter: Some(m),
            ..self.clone()
        }
    }

    pub fn emit(&self, tag: &str, es: EventStream) {
        if let Some(m) = &self.meter {
            m.emit_records.add(es.len() as u64);
        }
        match &*self.target {
            EmitTarget::Router(slot) => match slot.get() {
                Some(r) => r.emit(tag, es),
                None => tracing::warn!(
                    "label {} is not ready: dropped {} events tag=\"{}\"",
                    self.label,
                    es.len(),
                    tag
                ),
            },
            EmitTarget::Collect(v) => {
                if let Ok(mut v) = v.lock() {
                    v.push((tag.to_string(), es));
                }
            }
        }
    }

    pub fn collected(&self) -> Vec<(String, EventStream)> {
        match &*self.target {
            EmitTarget::Collect(v) => v.lock().map(|v| v.clone()).unwrap_or_default(),
            EmitTarget::Router(_) => Vec::new(),
        }
    }
}

/// Where error events go: the `<label @ERROR>` router, else a "dump an error event" warning.
/// Every error event is counted.
#[derive(Clone, Default)]
pub struct ErrorSink {
    error_label: Option<Emitter>,
    count: Arc<AtomicU64>,
}

impl ErrorSink {
    pub fn log_only() -> Self {
        ErrorSink::default()
    }

    pub fn to_label(emitter: Emitter) -> Self {
        ErrorSink {
            error_label: Some(emitter),
            count: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Fluentd's `router.emit_error_event`.
    pub fn emit_error_event(&self, tag: &str, time: EventTime, record: Record, error: &str) {
        self.count.fetch_add(1, Ordering::Relaxed);
        match &self.error_label {
            Some(e) => {
                tracing::warn!(
                    "send an error event to @ERROR: error=\"{}\" tag=\"{}\" time={}",
                    error,
                    tag,
                    time.sec
                );
                e.emit(tag, EventStream::one(time, record));
            }
            None => tracing::warn!(
                "dump an error event: error=\"{}\" tag=\"{}\" time={} record={}",
                error,
                tag,
                time.sec,
                String::from_utf8_lossy(&crate::inspect::inspect(&crate::event::Value::Map(
                    record
                )))
            ),
        }
    }

    /// A whole stream an output refused (e.g. buffer overflow).
    pub fn emit_error_stream(&self, tag: &str, es: Option<EventStream>, error: &str) {
        let n = es.as_ref().map(|e| e.len()).unwrap_or(0);
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        match (&self.error_label, es) {
            (Some(e), Some(es)) => {
                tracing::warn!(
                    "send an error event stream to @ERROR: error=\"{}\" tag=\"{}\" events={}",
                    error,
                    tag,
                    n
                );
                e.emit(tag, es);
            }
            _ => tracing::warn!(
                "emit transaction failed: error=\"{}\" tag=\"{}\" events={}",
                error,
                tag,
                n
            ),
        }
    }
}

/// Label name → the emitter of its router, created before plugins so that they can resolve
/// `@label` in any order.
#[derive(Clone, Default)]
pub struct LabelTable {
    labels: Arc<HashMap<String, Emitter>>,
}

impl LabelTable {
    pub fn new(labels: HashMap<String, Emitter>) -> Self {
        LabelTable {
            labels: Arc::new(labels),
        }
    }

    pub fn get(&self, name: &str) -> Option<Emitter> {
        self.labels.get(name).cloned()
    }
}

/// The stop signal inputs watch, usable from threads and async tasks.
#[derive(Clone)]
pub struct Shutdown {
    inner: Arc<ShutdownInner>,
}

struct ShutdownInner {
    flag: Mutex<bool>,
    cv: Condvar,
    tx: tokio::sync::watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        let (tx, _) = tokio::sync::watch::channel(false);
        Shutdown {
            inner: Arc::new(ShutdownInner {
                flag: Mutex::new(false),
                cv: Condvar::new(),
                tx,
            }),
        }
    }

    pub fn trigger(&self) {
        if let Ok(mut f) = self.inner.flag.lock() {
            *f = true;
        }
        self.inner.cv.notify_all();
        self.inner.tx.send_replace(true);
    }

    pub fn is_set(&self) -> bool {
        self.inner.flag.lock().map(|f| *f).unwrap_or(true)
    }

    /// Sleeps up to `d`; returns true when shutdown was requested.
    pub fn wait_timeout(&self, d: Duration) -> bool {
        let Ok(guard) = self.inner.flag.lock() else {
            return true;
        };
        if *guard {
            return true;
        }
        match self.inner.cv.wait_timeout_while(guard, d, |f| !*f) {
            Ok((g, _)) => *g,
            Err(_) => true,
        }
    }

    /// Resolves once shutdown is requested.
    pub async fn wait(&self) {
        let mut rx = self.inner.tx.subscribe();
        while !*rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Value;

    struct Tagger(&'static str);
    impl Filter for Tagger {
        fn filter_stream(&self, _tag: &str, mut es: EventStream) -> EventStream {
            for e in &mut es.events {
                let mut seen = match e.record.get("seen") {
                    Some(Value::Str(s)) => s.clone(),
                    _ => Vec::new(),
                };
                seen.extend_from_slice(self.0.as_bytes());
                e.record.insert("seen", Value::Str(seen));
            }
            es
        }
    }

    struct Sink(Emitter);
    impl Output for Sink {
        fn emit(&self, tag: &str, es: EventStream) -> Result<(), OutputError> {
            self.0.emit(tag, es);
            Ok(())
        }
    }

    fn stream() -> EventStream {
        let mut r = Record::new();
        r.insert("m", Value::from("x"));
        EventStream::one(EventTime::new(1, 0), r)
    }

    fn seen(c: &Emitter) -> Vec<(String, String)> {
        c.collected()
            .into_iter()
            .flat_map(|(t, es)| {
                es.events.into_iter().map(move |e| {
                    let s = match e.record.get("seen") {
                        Some(Value::Str(s)) => String::from_utf8_lossy(s).into_owned(),
                        _ => String::new(),
                    };
                    (t.clone(), s)
                })
            })
            .collect()
    }

    #[test]
    fn filters_before_first_match_apply_in_order_and_later_ones_never() {
        let first = Emitter::collector("a");
        let second = Emitter::collector("b");
        let rules = vec![
            Rule {
                pattern: MatchPattern::parse("app.**").unwrap(),
                action: RuleAction::Filter(Arc::new(Tagger("1"))),
            },
            Rule {
                pattern: MatchPattern::parse("other").unwrap(),
                action: RuleAction::Filter(Arc::new(Tagger("x"))),
            },
            Rule {
                pattern: MatchPattern::parse("**").unwrap(),
                action: RuleAction::Filter(Arc::new(Tagger("2"))),
            },
            Rule {
                pattern: MatchPattern::parse("app.*").unwrap(),
                action: RuleAction::Match(Arc::new(Sink(first.clone()))),
            },
            Rule {
                pattern: MatchPattern::parse("**").unwrap(),
                action: RuleAction::Filter(Arc::new(Tagger("3"))),
            },
            Rule {
                pattern: MatchPattern::parse("**").unwrap(),
                action: RuleAction::Match(Arc::new(Sink(second.clone()))),
            },
        ];
        let r = Router::new("@ROOT", rules, ErrorSink::log_only());
        r.emit("app.web", stream());
        r.emit("app.web", stream());
        r.emit("zzz", stream());
        assert_eq!(
            seen(&first),
            vec![
                ("app.web".to_string(), "12".to_string()),
                ("app.web".to_string(), "12".to_string())
            ]
        );
        assert_eq!(seen(&second), vec![("zzz".to_string(), "23".to_string())]);
    }

    #[test]
    fn unmatched_events_are_dropped_and_counted() {
        let r = Router::new("@ROOT", Vec::new(), ErrorSink::log_only());
        r.emit("nothing", stream());
        r.emit("nothing", stream());
        assert_eq!(r.unmatched.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn error_events_reach_the_error_label() {
        let err = Emitter::collector("@ERROR");
        let sink = ErrorSink::to_label(err.clone());
        sink.emit_error_event("t", EventTime::new(3, 0), Record::new(), "boom");
        assert_eq!(sink.count(), 1);
        assert_eq!(err.collected().len(), 1);
    }

    #[test]
    fn shutdown_wakes_waiters() {
        let s = Shutdown::new();
        assert!(!s.wait_timeout(Duration::from_millis(1)));
        let s2 = s.clone();
        let h = std::thread::spawn(move || s2.wait_timeout(Duration::from_secs(30)));
        s.trigger();
        assert!(h.join().unwrap());
    }
}
