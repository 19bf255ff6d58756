//! `@type exec_filter`: `num_children` long-running children of `command`. Each buffer chunk
//! (`<format>`, default tsv, after `<inject>`, whose time defaults to unixtime) is written to
//! one child's stdin, round-robin; what the children print is parsed (`<parse>`, default tsv,
//! `time_key` nil) and re-emitted with the tag and time from `<extract>`, else `tag` and now.
//! `child_respawn` (none/0, inf/-1, N) restarts children that exit. At shutdown the buffer is
//! flushed, the children's stdin closed, and their remaining output read before they are
//! stopped.

use std::io::Write;
use std::process::ChildStdin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Deserialize;

use super::exec_util::{respawns, section_with_defaults, RecordReader};
use super::extract::Extract;
use super::inject::Inject;
use super::out_exec::format_event;
use super::{Formatter, Output, PluginContext};
use crate::buffer::{BufferDefaults, BufferedOutput, Chunk, WriteError};
use crate::child_process::{self, Child, Options, Stderr};
use crate::config_parser::types::{Size, Time};
use crate::config_parser::{ConfigError, Element, Nested};
use crate::event::EventStream;

#[derive(Deserialize)]
#[allow(dead_code)]
struct ExecFilterConf {
    command: String,
    remove_prefix: Option<String>,
    add_prefix: Option<String>,
    tag: Option<String>,
    read_block_size: Option<Size>,
    #[serde(default = "one")]
    num_children: i64,
    #[serde(default = "zero")]
    child_respawn: String,
    suppress_error_log_interval: Option<Time>,
    format: Option<Nested>,
    parse: Option<Nested>,
    inject: Option<Nested>,
    extract: Option<Nested>,
    buffer: Option<Nested>,
    secondary: Option<Nested>,
}

fn one() -> i64 {
    1
}

fn zero() -> String {
    "0".into()
}

#[derive(Default)]
struct Slot {
    child: Option<Arc<Child>>,
    stdin: Option<ChildStdin>,
    /// Respawns left: -1 forever.
    respawns: i64,
}

struct Shared {
    command: String,
    slots: Vec<Mutex<Slot>>,
    reader: RecordReader,
    finished: AtomicBool,
    readers: Mutex<Vec<(u32, crossbeam_channel::Receiver<()>)>>,
}

pub struct ExecFilterOutput {
    shared: Arc<Shared>,
    rr: AtomicUsize,
    formatter: Box<dyn Formatter>,
    per_line: bool,
    inject: Option<Inject>,
    remove_prefix: Option<String>,
    respawns: i64,
    monitor: Mutex<Option<JoinHandle<()>>>,
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Output>, ConfigError> {
    let c: ExecFilterConf = ctx.configure(elem, "exec_filter")?;
    for (k, v) in [
        ("remove_prefix", &c.remove_prefix),
        ("add_prefix", &c.add_prefix),
    ] {
        if v.is_some() {
            tracing::warn!("'{k}' parameter is deprecated: use @label instead for event routing");
        }
    }
    let extract = Extract::from_section(elem.child("extract"), ctx)?.map(Arc::new);
    if c.tag.is_none() && !extract.as_ref().is_some_and(|x| x.has_tag_key()) {
        return Err(
            elem.error("'tag' or '<extract> tag_key' option is required on exec_filter output")
        );
    }
    let inject_section = elem
        .child("inject")
        .map(|i| super::parser::with_defaults(i, &[("time_type", Some("unixtime"))]));
    let inject = Inject::from_section(inject_section.as_ref(), ctx)?;
    let format = section_with_defaults(elem, "format", "tsv", &[("localtime", Some("true"))]);
    let per_line = format.plugin_type() != Some("msgpack");
    let formatter = super::new_formatter(&format, ctx)?;
    let parse = section_with_defaults(
        elem,
        "parse",
        "tsv",
        &[
            ("time_key", None),
            ("estimate_current_event", Some("false")),
        ],
    );
    let parser = Arc::from(super::new_parser(&parse, ctx)?);
    let respawns = respawns(&c.child_respawn, elem)?;
    if c.num_children < 1 {
        return Err(elem.error("num_children must be 1 or more"));
    }
    let shared = Arc::new(Shared {
        command: c.command,
        slots: (0..c.num_children)
            .map(|_| Mutex::new(Slot::default()))
            .collect(),
        reader: RecordReader {
            parser,
            extract,
            tag: c.tag,
            add_prefix: c.add_prefix,
            router: ctx.router.clone(),
            errors: ctx.errors.clone(),
            plugin: "exec_filter",
        },
        finished: AtomicBool::new(false),
        readers: Mutex::new(Vec::new()),
    });
    let out = ExecFilterOutput {
        shared,
        rr: AtomicUsize::new(0),
        formatter,
        per_line,
        inject,
        remove_prefix: c.remove_prefix,
        respawns,
        monitor: Mutex::new(None),
    };
    // exec_filter's buffer defaults: flush every second.
    let mut elem = elem.clone();
    let buffer = match elem.child("buffer") {
        Some(b) => b.clone(),
        None => Element::new("buffer", "", elem.span.clone()),
    };
    let buffer = super::parser::with_defaults(
        &buffer,
        &[
            ("flush_mode", Some("interval")),
            ("flush_interval", Some("1")),
        ],
    );
    elem.elements.retain(|e| e.name != "buffer");
    elem.elements.push(buffer);
    crate::buffer::build(&elem, ctx, out, BufferDefaults::default())
}

impl Shared {
    /// Starts the child of slot `i` and its reader thread.
    fn launch(self: &Arc<Self>, i: usize) -> std::io::Result<()> {
        tracing::debug!("child process {i}: execute command {}", self.command);
        let (child, pipes) = child_process::spawn(
            &self.command,
            &[],
            Options {
                write: true,
                read: true,
                stderr: Stderr::Discard,
            },
        )?;
        let child = Arc::new(child);
        let pid = child.pid();
        {
            let mut s = self.slots[i].lock();
            s.child = Some(child.clone());
            s.stdin = pipes.stdin;
        }
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        self.readers.lock().push((pid, done_rx));
        let me = self.clone();
        let stdout = pipes.stdout;
        std::thread::Builder::new()
            .name(format!("exec_filter_{i}"))
            .spawn(move || {
                if let Some(mut out) = stdout {
                    me.reader.read(&mut out);
                }
                let status = child
                    .wait_timeout(child_process::KILL_TIMEOUT)
                    .or_else(|| child.terminate(child_process::KILL_TIMEOUT));
                if !me.finished.load(Ordering::SeqCst) {
                    use std::os::unix::process::ExitStatusExt;
                    tracing::warn!(
                        "child process exits with error code code={} status={} signal={}",
                        status.map_or(0, |s| s.into_raw()),
                        status
                            .and_then(|s| s.code())
                            .map_or("nil".into(), |c| c.to_string()),
                        status
                            .and_then(|s| s.signal())
                            .map_or("nil".into(), |c| c.to_string())
                    );
                }
                let mut s = me.slots[i].lock();
                if s.child.as_ref().is_some_and(|c| c.pid() == pid) {
                    s.child = None;
                    s.stdin = None;
                }
                drop(s);
                let _ = done_tx.send(());
            })?;
        Ok(())
    }
}

impl BufferedOutput for ExecFilterOutput {
    fn formatted_to_msgpack(&self) -> bool {
        false
    }

    fn format(&self, tag: &str, es: &EventStream, out: &mut Vec<u8>) {
        let mut tag = tag;
        if let Some(p) = &self.remove_prefix {
            if tag == p {
                tag = "";
            } else if let Some(rest) = tag
                .strip_prefix(p.as_str())
                .and_then(|r| r.strip_prefix('.'))
            {
                if !rest.is_empty() {
                    tag = rest;
                }
            }
        }
        for e in es.iter() {
            match &self.inject {
                None => format_event(&*self.formatter, self.per_line, tag, e.time, &e.record, out),
                Some(inj) => {
                    let mut r = e.record.clone();
                    inj.apply(tag, e.time, &mut r);
                    format_event(&*self.formatter, self.per_line, tag, e.time, &r, out);
                }
            }
        }
    }

    fn start(&self) -> anyhow::Result<()> {
        for i in 0..self.shared.slots.len() {
            self.shared.slots[i].lock().respawns = self.respawns;
            self.shared.launch(i)?;
        }
        if self.respawns != 0 {
            let shared = self.shared.clone();
            let h = std::thread::Builder::new()
                .name("exec_filter_respawn".into())
                .spawn(move || {
                    while !shared.finished.load(Ordering::SeqCst) {
                        for i in 0..shared.slots.len() {
                            let left = {
                                let mut s = shared.slots[i].lock();
                                if s.child.is_some() || s.respawns == 0 {
                                    continue;
                                }
                                if s.respawns > 0 {
                                    s.respawns -= 1;
                                }
                                s.respawns
                            };
                            if shared.finished.load(Ordering::SeqCst) {
                                break;
                            }
                            tracing::info!(
                                "respawning child process num={i} respawn_counters={left}"
                            );
                            if let Err(e) = shared.launch(i) {
                                tracing::error!("exec_filter failed to respawn: {e}");
                            }
                        }
                        std::thread::sleep(Duration::from_millis(200));
                    }
                })?;
            *self.monitor.lock() = Some(h);
        }
        Ok(())
    }

    fn write(&self, chunk: &Chunk) -> Result<(), WriteError> {
        let n = self.shared.slots.len();
        for _ in 0..n {
            let r = (self.rr.fetch_add(1, Ordering::Relaxed) + 1) % n;
            let mut s = self.shared.slots[r].lock();
            if let Some(w) = s.stdin.as_mut() {
                return match w.write_all(&chunk.data).and_then(|_| w.flush()) {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        tracing::warn!(
                            "exec_filter Broken pipe, child process maybe exited. command=\"{}\" error=\"{e}\"",
                            self.shared.command
                        );
                        s.stdin = None;
                        Err(WriteError::Retriable(e.to_string()))
                    }
                };
            }
        }
        Err(WriteError::Retriable(
            "no healthy child processes exist".into(),
        ))
    }

    /// After the final flush: the children get EOF, print what is left (it is emitted), exit.
    fn shutdown(&self) {
        self.shared.finished.store(true, Ordering::SeqCst);
        if let Some(h) = self.monitor.lock().take() {
            let _ = h.join();
        }
        let children: Vec<Arc<Child>> = self
            .shared
            .slots
            .iter()
            .filter_map(|s| {
                let mut s = s.lock();
                s.stdin = None;
                s.child.clone()
            })
            .collect();
        for c in &children {
            if c.wait_timeout(child_process::KILL_TIMEOUT).is_none() {
                c.terminate(child_process::KILL_TIMEOUT);
            }
        }
        let readers = std::mem::take(&mut *self.shared.readers.lock());
        for (pid, rx) in readers {
            if rx.recv_timeout(child_process::KILL_TIMEOUT).is_err() {
                tracing::warn!("exec_filter: output of child process {pid} still open at shutdown");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventTime, Value};
    use crate::router::Emitter;
    use crate::test_util::{directive, rec};

    #[test]
    fn cat_round_trip_case_416() {
        let elem = directive(
            "<match raw>\n@type exec_filter\ncommand cat\ntag filtered\n<format>\n@type json\n</format>\n<parse>\n@type json\n</parse>\n<inject>\ntime_key t\n</inject>\n<extract>\ntime_key t\n</extract>\n</match>",
        );
        let out = Emitter::collector("@ROOT");
        let ctx = PluginContext {
            router: out.clone(),
            ..PluginContext::for_tests()
        };
        let o = create(&elem, &ctx).unwrap_or_else(|e| panic!("{e}"));
        o.start().unwrap();
        let mut es = EventStream::new();
        es.push(
            EventTime::new(1700000000, 0),
            rec(vec![("msg", Value::str("one")), ("n", Value::Int(1))]),
        );
        es.push(
            EventTime::new(1700000001, 0),
            rec(vec![("msg", Value::str("two"))]),
        );
        o.emit("raw", es).unwrap();
        o.shutdown();
        let got = out.collected();
        let events: Vec<_> = got
            .iter()
            .flat_map(|(t, es)| {
                es.events
                    .iter()
                    .map(move |e| (t.clone(), e.time, e.record.clone()))
            })
            .collect();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].0, "filtered");
        assert_eq!(events[0].1, EventTime::new(1700000000, 0));
        assert_eq!(
            crate::json::encode::record_to_vec(&events[0].2),
            br#"{"msg":"one","n":1}"#
        );
        assert_eq!(events[1].1, EventTime::new(1700000001, 0));
    }

    #[test]
    fn tag_or_extract_tag_key_is_required() {
        let e = create(
            &directive("<match x>\n@type exec_filter\ncommand cat\n<format>\n@type json\n</format>\n<parse>\n@type json\n</parse>\n</match>"),
            &PluginContext::for_tests(),
        )
        .err()
        .unwrap();
        assert!(e
            .message
            .contains("'tag' or '<extract> tag_key' option is required"));
    }
}
