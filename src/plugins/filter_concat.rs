//! `@type concat` (fluent-plugin-concat 2.x): joins the `key` field of consecutive records of a
//! stream (`tag` + `stream_identity_key`) into one record. Modes, first configured wins:
//! `n_lines`, `partial_key`/`partial_value`, `use_partial_metadata`, `use_partial_cri_logtag`,
//! then `multiline_start_regexp` / `multiline_end_regexp` (+ `continuous_line_regexp`).
//! The joined record is the current record, overridden by the first buffered one, with `key`
//! set to the lines joined by `separator`.
//!
//! Nothing buffered is lost: a stream idle for `flush_interval` (checked every second) and
//! whatever is buffered at shutdown are flushed to `timeout_label` when set, else as error
//! events (`@ERROR`, or a logged dump without it), logged at info, as the plugin does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Deserialize;

use super::{Filter, PluginContext};
use crate::config_parser::types::{RubyRegex, Size, Time};
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventStream, EventTime, Record, Value};
use crate::router::{Emitter, ErrorSink};

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)]
enum PartialMetadataFormat {
    #[default]
    #[serde(rename = "docker-fluentd")]
    DockerFluentd,
    #[serde(rename = "docker-journald")]
    DockerJournald,
    #[serde(rename = "docker-journald-lowercase")]
    DockerJournaldLowercase,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum OverflowMethod {
    #[default]
    Ignore,
    Truncate,
    Drop,
    New,
}

#[derive(Deserialize)]
struct ConcatConf {
    key: String,
    #[serde(default = "newline")]
    separator: String,
    n_lines: Option<i64>,
    multiline_start_regexp: Option<String>,
    multiline_end_regexp: Option<String>,
    continuous_line_regexp: Option<String>,
    stream_identity_key: Option<String>,
    /// Default 60 s; 0 disables the timeout.
    flush_interval: Option<Time>,
    timeout_label: Option<String>,
    #[serde(default)]
    use_first_timestamp: bool,
    partial_key: Option<String>,
    partial_value: Option<String>,
    #[serde(default)]
    keep_partial_key: bool,
    #[serde(default)]
    use_partial_metadata: bool,
    #[serde(default)]
    partial_metadata_format: PartialMetadataFormat,
    #[serde(default)]
    keep_partial_metadata: bool,
    #[serde(default)]
    use_partial_cri_logtag: bool,
    partial_cri_logtag_key: Option<String>,
    #[serde(default = "stream")]
    partial_cri_stream_key: String,
    buffer_limit_size: Option<Size>,
    #[serde(default)]
    buffer_overflow_method: OverflowMethod,
}

fn newline() -> String {
    "\n".into()
}

fn stream() -> String {
    "stream".into()
}

struct Metadata {
    message: Vec<u8>,
    id: Vec<u8>,
    ordinal: Vec<u8>,
    last: Vec<u8>,
    /// The field whose presence marks a partial record.
    indicator: Vec<u8>,
}

enum Mode {
    Line(usize),
    Partial { key: Vec<u8>, value: Vec<u8> },
    PartialMetadata(Metadata),
    PartialCri { logtag_key: Vec<u8> },
    Regexp(Box<Regexps>),
}

struct Regexps {
    start: Option<RubyRegex>,
    end: Option<RubyRegex>,
    continuous: Option<RubyRegex>,
}

struct Buffered {
    tag: String,
    elements: Vec<(EventTime, Record)>,
    bytes: usize,
    touched: Instant,
}

struct Inner {
    key: Vec<u8>,
    separator: Vec<u8>,
    mode: Mode,
    stream_identity_key: Option<Vec<u8>>,
    flush_interval: Duration,
    use_first_timestamp: bool,
    keep_partial_key: bool,
    keep_partial_metadata: bool,
    cri_stream_key: Vec<u8>,
    buffer_limit: usize,
    overflow: OverflowMethod,
    timeout_to: Option<Emitter>,
    errors: ErrorSink,
    streams: Mutex<HashMap<String, Buffered>>,
    stop: AtomicBool,
}

pub struct ConcatFilter {
    inner: Arc<Inner>,
    timer: Mutex<Option<(crate::router::Shutdown, JoinHandle<()>)>>,
}

/// The plugin's regexps are written `/.../` (flags allowed); a bare pattern is used as is.
fn regexp(
    elem: &Element,
    name: &str,
    v: &Option<String>,
) -> Result<Option<RubyRegex>, ConfigError> {
    match v {
        None => Ok(None),
        Some(s) => RubyRegex::from_param(s)
            .map(Some)
            .map_err(|e| elem.error(format!("{name}: {e}"))),
    }
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Filter>, ConfigError> {
    let c: ConcatConf = ctx.configure(elem, "concat")?;
    let any_regexp = c.multiline_start_regexp.is_some() || c.multiline_end_regexp.is_some();
    if c.n_lines.is_some() && any_regexp {
        return Err(
            elem.error("n_lines and multiline_start_regexp/multiline_end_regexp are exclusive")
        );
    }
    if c.n_lines.is_none()
        && !any_regexp
        && c.partial_key.is_none()
        && !c.use_partial_metadata
        && !c.use_partial_cri_logtag
    {
        return Err(elem.error("Either n_lines, multiline_start_regexp, multiline_end_regexp, partial_key, use_partial_metadata or use_partial_cri_logtag is required"));
    }
    if c.partial_key.is_some() && c.n_lines.is_some() {
        return Err(elem.error("partial_key and n_lines are exclusive"));
    }
    if c.partial_key.is_some() && any_regexp {
        return Err(
            elem.error("partial_key and multiline_start_regexp/multiline_end_regexp are exclusive")
        );
    }
    if c.partial_key.is_some() && c.partial_value.is_none() {
        return Err(elem.error("partial_value is required when partial_key is specified"));
    }
    if c.use_partial_metadata && (c.n_lines.is_some() || any_regexp || c.partial_key.is_some()) {
        return Err(elem.error("use_partial_metadata and n_lines/multiline_start_regexp/multiline_end_regexp/partial_key are exclusive"));
    }
    if c.use_partial_cri_logtag
        && (c.n_lines.is_some() || any_regexp || c.partial_key.is_some() || c.use_partial_metadata)
    {
        return Err(elem.error("use_partial_cri_logtag and n_lines/multiline_start_regexp/multiline_end_regexp/partial_key/use_partial_metadata are exclusive"));
    }
    let mode = if let Some(n) = c.n_lines {
        Mode::Line(n.max(1) as usize)
    } else if let Some(k) = &c.partial_key {
        Mode::Partial {
            key: k.clone().into_bytes(),
            value: c.partial_value.clone().unwrap_or_default().into_bytes(),
        }
    } else if c.use_partial_metadata {
        let f = |s: &str| s.as_bytes().to_vec();
        Mode::PartialMetadata(match c.partial_metadata_format {
            PartialMetadataFormat::DockerFluentd => Metadata {
                message: f("partial_message"),
                id: f("partial_id"),
                ordinal: f("partial_ordinal"),
                last: f("partial_last"),
                indicator: f("partial_message"),
            },
            // The journald driver leaves CONTAINER_PARTIAL_MESSAGE off the last part.
            PartialMetadataFormat::DockerJournald => Metadata {
                message: f("CONTAINER_PARTIAL_MESSAGE"),
                id: f("CONTAINER_PARTIAL_ID"),
                ordinal: f("CONTAINER_PARTIAL_ORDINAL"),
                last: f("CONTAINER_PARTIAL_LAST"),
                indicator: f("CONTAINER_PARTIAL_ID"),
            },
            PartialMetadataFormat::DockerJournaldLowercase => Metadata {
                message: f("container_partial_message"),
                id: f("container_partial_id"),
                ordinal: f("container_partial_ordinal"),
                last: f("container_partial_last"),
                indicator: f("container_partial_id"),
            },
        })
    } else if c.use_partial_cri_logtag {
        let Some(k) = &c.partial_cri_logtag_key else {
            return Err(elem
                .error("partial_cri_logtag_key is required when use_partial_cri_logtag is true"));
        };
        Mode::PartialCri {
            logtag_key: k.clone().into_bytes(),
        }
    } else {
        Mode::Regexp(Box::new(Regexps {
            start: regexp(elem, "multiline_start_regexp", &c.multiline_start_regexp)?,
            end: regexp(elem, "multiline_end_regexp", &c.multiline_end_regexp)?,
            continuous: regexp(elem, "continuous_line_regexp", &c.continuous_line_regexp)?,
        }))
    };
    let timeout_to = match &c.timeout_label {
        Some(l) => Some(
            ctx.labels
                .get(l)
                .ok_or_else(|| elem.error(format!("{l} label not found")))?,
        ),
        None => None,
    };
    Ok(Box::new(ConcatFilter {
        inner: Arc::new(Inner {
            key: c.key.into_bytes(),
            separator: c.separator.into_bytes(),
            mode,
            stream_identity_key: c.stream_identity_key.map(String::into_bytes),
            flush_interval: c
                .flush_interval
                .map(|t| t.as_duration())
                .unwrap_or(Duration::from_secs(60)),
            use_first_timestamp: c.use_first_timestamp,
            keep_partial_key: c.keep_partial_key,
            keep_partial_metadata: c.keep_partial_metadata,
            cri_stream_key: c.partial_cri_stream_key.into_bytes(),
            buffer_limit: c.buffer_limit_size.map_or(512_000, |s| s.0.max(0) as usize),
            overflow: c.buffer_overflow_method,
            timeout_to,
            errors: ctx.errors.clone(),
            streams: Mutex::new(HashMap::new()),
            stop: AtomicBool::new(false),
        }),
        timer: Mutex::new(None),
    }))
}

/// Ruby's `to_s` of a field for joining and matching (nil is empty).
fn text(v: Option<&Value>) -> Vec<u8> {
    match v {
        None | Some(Value::Nil) => Vec::new(),
        Some(Value::Str(s)) | Some(Value::Bin(s)) => s.clone(),
        Some(o) => o.to_ruby_s(),
    }
}

fn is_log_event_tag(tag: &str) -> bool {
    matches!(
        tag.strip_prefix("fluent."),
        Some("trace" | "debug" | "info" | "warn" | "error" | "fatal")
    )
}

impl Inner {
    fn stream_identity(&self, tag: &str, record: &Record) -> String {
        let mut id = match &self.stream_identity_key {
            Some(k) => format!("{tag}:{}", String::from_utf8_lossy(&text(record.get(k)))),
            None => format!("{tag}:default"),
        };
        if let Mode::PartialMetadata(m) = &self.mode {
            id.push(':');
            id.push_str(&String::from_utf8_lossy(&text(record.get(&m.id))));
        }
        id
    }

    /// The buffered elements joined: the first record with `key` = the joined lines.
    fn join(&self, mut elements: Vec<(EventTime, Record)>) -> Option<(EventTime, Record)> {
        if let Mode::PartialMetadata(m) = &self.mode {
            elements.sort_by_key(|(_, r)| {
                crate::config_parser::types::ruby_to_i(&String::from_utf8_lossy(&text(
                    r.get(&m.ordinal),
                )))
            });
        }
        let mut joined = Vec::new();
        for (i, (_, r)) in elements.iter().enumerate() {
            if i > 0 {
                joined.extend_from_slice(&self.separator);
            }
            joined.extend_from_slice(&text(r.get(&self.key)));
        }
        let (time, mut first) = elements.into_iter().next()?;
        first.insert(self.key.clone(), Value::Str(joined));
        Some((time, first))
    }

    fn flush(
        &self,
        streams: &mut HashMap<String, Buffered>,
        id: &str,
    ) -> Option<(EventTime, Record)> {
        let b = streams.get_mut(id)?;
        let elements = std::mem::take(&mut b.elements);
        b.bytes = 0;
        self.join(elements)
    }

    fn push(
        &self,
        streams: &mut HashMap<String, Buffered>,
        id: &str,
        tag: &str,
        time: EventTime,
        record: Record,
    ) {
        let n = text(record.get(&self.key)).len();
        let b = streams.entry(id.to_string()).or_insert_with(|| Buffered {
            tag: tag.to_string(),
            elements: Vec::new(),
            bytes: 0,
            touched: Instant::now(),
        });
        b.bytes += n;
        b.elements.push((time, record));
    }

    fn is_empty(streams: &HashMap<String, Buffered>, id: &str) -> bool {
        streams.get(id).is_none_or(|b| b.elements.is_empty())
    }

    /// One record: what becomes ready to pass on, as (time, record-to-merge) pairs.
    fn process(&self, tag: &str, time: EventTime, record: &Record) -> Vec<(EventTime, Record)> {
        let id = self.stream_identity(tag, record);
        let mut streams = self.streams.lock();
        if let Some(b) = streams.get_mut(&id) {
            b.touched = Instant::now();
        }
        let mut out = Vec::new();
        let key_text = || text(record.get(&self.key));
        match &self.mode {
            Mode::Line(n) => {
                self.push(&mut streams, &id, tag, time, record.clone());
                if streams.get(&id).is_some_and(|b| b.elements.len() >= *n) {
                    out.extend(self.flush(&mut streams, &id));
                }
            }
            Mode::Partial { key, value } => {
                let over = streams.get(&id).is_some_and(|b| {
                    self.buffer_limit > 0 && b.bytes + key_text().len() > self.buffer_limit
                }) && !Self::is_empty(&streams, &id);
                if over {
                    match self.overflow {
                        OverflowMethod::Ignore => {}
                        OverflowMethod::Truncate => {
                            tracing::warn!("concat: buffer_limit_size exceeded, the current record is dropped: {id}");
                            out.extend(self.flush(&mut streams, &id));
                            return out;
                        }
                        OverflowMethod::Drop => {
                            let dropped = streams.get(&id).map_or(0, |b| b.elements.len());
                            tracing::warn!("concat: buffer_limit_size exceeded, {dropped} buffered records are dropped: {id}");
                            if let Some(b) = streams.get_mut(&id) {
                                b.elements.clear();
                                b.bytes = 0;
                            }
                        }
                        OverflowMethod::New => {
                            out.extend(self.flush(&mut streams, &id));
                        }
                    }
                }
                self.push(&mut streams, &id, tag, time, record.clone());
                if text(record.get(key)) != *value {
                    out.extend(self.flush(&mut streams, &id));
                }
            }
            Mode::PartialMetadata(m) => {
                self.push(&mut streams, &id, tag, time, record.clone());
                if text(record.get(&m.last)) == b"true" {
                    out.extend(self.flush(&mut streams, &id));
                }
            }
            Mode::PartialCri { logtag_key } => {
                self.push(&mut streams, &id, tag, time, record.clone());
                let tag_v = text(record.get(logtag_key));
                let first = tag_v.split(|b| *b == b':').next().unwrap_or(&[]);
                if first == b"F" {
                    out.extend(self.flush(&mut streams, &id));
                }
            }
            Mode::Regexp(re) => {
                let Regexps {
                    start,
                    end,
                    continuous,
                } = &**re;
                let t = key_text();
                let firstline = start.as_ref().is_some_and(|r| r.is_match(&t));
                let lastline = end.as_ref().is_some_and(|r| r.is_match(&t));
                if firstline {
                    if Self::is_empty(&streams, &id) {
                        self.push(&mut streams, &id, tag, time, record.clone());
                        if lastline {
                            out.extend(self.flush(&mut streams, &id));
                        }
                    } else {
                        out.extend(self.flush(&mut streams, &id));
                        self.push(&mut streams, &id, tag, time, record.clone());
                        if lastline {
                            out.extend(self.flush(&mut streams, &id));
                        }
                    }
                } else if lastline {
                    self.push(&mut streams, &id, tag, time, record.clone());
                    out.extend(self.flush(&mut streams, &id));
                } else if Self::is_empty(&streams, &id) {
                    if start.is_none() {
                        self.push(&mut streams, &id, tag, time, record.clone());
                    } else {
                        out.push((time, record.clone()));
                    }
                } else if continuous.as_ref().is_none_or(|r| r.is_match(&t)) {
                    self.push(&mut streams, &id, tag, time, record.clone());
                } else {
                    // The plugin adds the line with the flushed event's time variable, which
                    // `use_first_timestamp` has set to the first buffered time.
                    let flushed = self.flush(&mut streams, &id);
                    let t = match &flushed {
                        Some((first, _)) if self.use_first_timestamp => *first,
                        _ => time,
                    };
                    out.extend(flushed);
                    out.push((t, record.clone()));
                }
            }
        }
        if let Some(b) = streams.get_mut(&id) {
            b.touched = Instant::now();
            // Flushed streams are forgotten, so their number stays bounded.
            if b.elements.is_empty() {
                streams.remove(&id);
            }
        }
        out
    }

    /// Removes the mode's marker fields from a joined record.
    fn strip_markers(&self, r: &mut Record) {
        match &self.mode {
            Mode::Partial { key, .. } if !self.keep_partial_key => {
                r.remove(key);
            }
            Mode::PartialMetadata(m) if !self.keep_partial_metadata => {
                for k in [&m.message, &m.id, &m.ordinal, &m.last] {
                    r.remove(k);
                }
            }
            Mode::PartialCri { logtag_key } => {
                if !self.keep_partial_key {
                    r.remove(logtag_key);
                }
                r.remove(&self.cri_stream_key);
            }
            _ => {}
        }
    }

    /// Flushes streams idle for `flush_interval` (all of them when `all`).
    fn flush_idle(&self, all: bool) {
        let now = Instant::now();
        let mut ready = Vec::new();
        {
            let mut streams = self.streams.lock();
            let mut ids: Vec<String> = streams
                .iter()
                .filter(|(_, b)| {
                    !b.elements.is_empty()
                        && (all || now.duration_since(b.touched) >= self.flush_interval)
                })
                .map(|(k, _)| k.clone())
                .collect();
            ids.sort();
            for id in ids {
                if let Some(b) = streams.remove(&id) {
                    let tag = b.tag.clone();
                    if let Some((t, mut r)) = self.join(b.elements) {
                        self.strip_markers(&mut r);
                        ready.push((id, tag, t, r));
                    }
                }
            }
        }
        let message = if all {
            "Flush remaining buffer"
        } else {
            "Timeout flush"
        };
        for (id, tag, first_time, record) in ready {
            let time = if self.use_first_timestamp {
                first_time
            } else {
                EventTime::now()
            };
            let msg = format!("{message}: {id}");
            match &self.timeout_to {
                Some(to) => to.emit(&tag, EventStream::one(time, record)),
                None => self.errors.emit_error_event(&tag, time, record, &msg),
            }
            tracing::info!("{msg}");
        }
    }
}

impl Filter for ConcatFilter {
    fn filter_stream(&self, tag: &str, es: EventStream) -> EventStream {
        if is_log_event_tag(tag) {
            return es;
        }
        let inner = &self.inner;
        let mut out = EventStream::with_capacity(es.len());
        for ev in es.events {
            if !ev.record.contains_key(&inner.key) {
                out.push(ev.time, ev.record);
                continue;
            }
            match &inner.mode {
                Mode::Partial { key, .. } if !ev.record.contains_key(key) => {
                    out.push(ev.time, ev.record);
                    continue;
                }
                Mode::PartialMetadata(m) if !ev.record.contains_key(&m.indicator) => {
                    out.push(ev.time, ev.record);
                    continue;
                }
                _ => {}
            }
            let mut time = ev.time;
            for (t, flushed) in inner.process(tag, ev.time, &ev.record) {
                if inner.use_first_timestamp {
                    time = t;
                }
                // `record.merge(new_record)`: the current record's keys, the flushed values.
                let mut merged = ev.record.clone();
                merged.merge(flushed);
                inner.strip_markers(&mut merged);
                out.push(time, merged);
            }
        }
        out
    }

    fn start(&self) {
        if self.inner.flush_interval.is_zero() {
            return;
        }
        let shutdown = crate::router::Shutdown::new();
        let inner = self.inner.clone();
        let s = shutdown.clone();
        let h = std::thread::Builder::new()
            .name("filter_concat_timer".into())
            .spawn(move || {
                while !s.wait_timeout(Duration::from_secs(1)) {
                    if inner.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    inner.flush_idle(false);
                }
            });
        match h {
            Ok(h) => *self.timer.lock() = Some((shutdown, h)),
            Err(e) => tracing::error!("concat: cannot start its timer: {e}"),
        }
    }

    fn shutdown(&self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        if let Some((s, h)) = self.timer.lock().take() {
            s.trigger();
            let _ = h.join();
        }
        self.inner.flush_idle(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{directive, json_record};

    fn filter(body: &str) -> (Box<dyn Filter>, Emitter) {
        let errors = Emitter::collector("@ERROR");
        let ctx = PluginContext {
            errors: ErrorSink::to_label(errors.clone()),
            ..PluginContext::for_tests()
        };
        let f = create(
            &directive(&format!("<filter **>\n@type concat\n{body}\n</filter>")),
            &ctx,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        (f, errors)
    }

    fn feed(f: &dyn Filter, tag: &str, lines: &[&str]) -> Vec<String> {
        let mut es = EventStream::new();
        for (i, l) in lines.iter().enumerate() {
            es.push(EventTime::new(100 + i as i64, 0), json_record(l));
        }
        f.filter_stream(tag, es)
            .events
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e.time.sec,
                    String::from_utf8(crate::json::encode::record_to_vec(&e.record)).unwrap()
                )
            })
            .collect()
    }

    #[test]
    fn n_lines() {
        let (f, _) = filter("key msg\nn_lines 2");
        assert_eq!(
            feed(
                &*f,
                "t",
                &[
                    r#"{"msg":"a","x":1}"#,
                    r#"{"msg":"b","x":2}"#,
                    r#"{"msg":"c"}"#
                ]
            ),
            vec![r#"101 {"msg":"a\nb","x":1}"#]
        );
    }

    #[test]
    fn start_regexp_first_record_wins_and_passthrough() {
        let (f, errors) = filter("key msg\nmultiline_start_regexp /^S/\nseparator \"\"");
        let got = feed(
            &*f,
            "t",
            &[
                r#"{"msg":"orphan"}"#,
                r#"{"msg":"S1","k":"first"}"#,
                r#"{"msg":" c1","k":"second","z":0}"#,
                r#"{"msg":"S2"}"#,
                r#"{"other":1}"#,
            ],
        );
        assert_eq!(
            got,
            vec![
                r#"100 {"msg":"orphan"}"#,
                r#"103 {"msg":"S1 c1","k":"first"}"#,
                r#"104 {"other":1}"#,
            ]
        );
        // "S2" is still buffered: at shutdown it goes to @ERROR, not lost.
        f.shutdown();
        let e = errors.collected();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].0, "t");
        assert_eq!(
            crate::json::encode::record_to_vec(&e[0].1.events[0].record),
            br#"{"msg":"S2"}"#
        );
    }

    #[test]
    fn merge_keeps_current_keys_with_first_values() {
        let (f, _) = filter("key msg\nmultiline_start_regexp /^S/");
        feed(
            &*f,
            "t",
            &[
                r#"{"msg":"S1","k":"first"}"#,
                r#"{"msg":" c1","k":"second","z":0}"#,
            ],
        );
        assert_eq!(
            feed(&*f, "t", &[r#"{"z":9,"msg":"S2","k":"third"}"#]),
            vec![r#"100 {"z":9,"msg":"S1\n c1","k":"first"}"#]
        );
    }

    #[test]
    fn end_regexp_and_continuous_line() {
        let (f, _) = filter("key msg\nmultiline_end_regexp /END$/");
        assert_eq!(
            feed(&*f, "t", &[r#"{"msg":"a"}"#, r#"{"msg":"b END"}"#]),
            vec![r#"101 {"msg":"a\nb END"}"#]
        );
        let (f, _) = filter(
            "key msg\nmultiline_start_regexp /^S/\ncontinuous_line_regexp /^\\s/\nuse_first_timestamp true",
        );
        assert_eq!(
            feed(
                &*f,
                "t",
                &[r#"{"msg":"S"}"#, r#"{"msg":" c"}"#, r#"{"msg":"x"}"#]
            ),
            vec![r#"100 {"msg":"S\n c"}"#, r#"100 {"msg":"x"}"#]
        );
    }

    #[test]
    fn streams_are_separate_and_log_events_pass() {
        let (f, _) = filter("key msg\nn_lines 2\nstream_identity_key s");
        assert_eq!(
            feed(
                &*f,
                "t",
                &[
                    r#"{"msg":"a1","s":"a"}"#,
                    r#"{"msg":"b1","s":"b"}"#,
                    r#"{"msg":"a2","s":"a"}"#
                ]
            ),
            vec![r#"102 {"msg":"a1\na2","s":"a"}"#]
        );
        assert_eq!(feed(&*f, "fluent.warn", &[r#"{"msg":"x"}"#]).len(), 1);
    }

    #[test]
    fn partial_modes() {
        let (f, _) = filter("key log\npartial_key partial\npartial_value true");
        assert_eq!(
            feed(
                &*f,
                "t",
                &[
                    r#"{"log":"a","partial":"true"}"#,
                    r#"{"log":"b","partial":"false"}"#,
                    r#"{"log":"c"}"#
                ]
            ),
            vec![r#"101 {"log":"a\nb"}"#, r#"102 {"log":"c"}"#]
        );
        let (f, _) = filter(
            "key log\nuse_partial_cri_logtag true\npartial_cri_logtag_key logtag\nseparator \"\"",
        );
        assert_eq!(
            feed(
                &*f,
                "t",
                &[
                    r#"{"log":"ab","logtag":"P","stream":"stdout"}"#,
                    r#"{"log":"cd","logtag":"F","stream":"stdout"}"#
                ]
            ),
            vec![r#"101 {"log":"abcd"}"#]
        );
        let (f, _) = filter("key log\nuse_partial_metadata true\nseparator \"\"");
        assert_eq!(
            feed(
                &*f,
                "t",
                &[
                    r#"{"log":"2","partial_message":"true","partial_id":"x","partial_ordinal":"2","partial_last":"false"}"#,
                    r#"{"log":"1","partial_message":"true","partial_id":"x","partial_ordinal":"1","partial_last":"false"}"#,
                    r#"{"log":"3","partial_message":"true","partial_id":"x","partial_ordinal":"3","partial_last":"true"}"#
                ]
            ),
            vec![r#"102 {"log":"123"}"#]
        );
    }

    #[test]
    fn timeout_goes_to_timeout_label() {
        let l = Emitter::collector("@T");
        let mut labels = std::collections::HashMap::new();
        labels.insert("@T".to_string(), l.clone());
        let ctx = PluginContext {
            labels: crate::router::LabelTable::new(labels),
            ..PluginContext::for_tests()
        };
        let f = create(
            &directive("<filter **>\n@type concat\nkey msg\nn_lines 3\nflush_interval 0\ntimeout_label @T\nuse_first_timestamp true\n</filter>"),
            &ctx,
        )
        .unwrap();
        feed(&*f, "a:b", &[r#"{"msg":"x"}"#]);
        f.shutdown();
        let got = l.collected();
        assert_eq!(got[0].0, "a:b");
        assert_eq!(got[0].1.events[0].time, EventTime::new(100, 0));
    }

    #[test]
    fn config_errors() {
        let ctx = PluginContext::for_tests();
        for (body, want) in [
            ("key m", "Either n_lines, multiline_start_regexp"),
            (
                "key m\nn_lines 2\nmultiline_start_regexp /a/",
                "n_lines and multiline_start_regexp",
            ),
            ("key m\npartial_key p", "partial_value is required"),
            (
                "key m\nn_lines 2\ntimeout_label @NOPE",
                "@NOPE label not found",
            ),
        ] {
            let e = create(
                &directive(&format!("<filter **>\n@type concat\n{body}\n</filter>")),
                &ctx,
            )
            .err()
            .unwrap();
            assert!(e.message.contains(want), "{}", e.message);
        }
    }
}
