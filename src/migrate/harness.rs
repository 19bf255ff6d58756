//! Runs a config's real event graph on fed inputs and captures what each output receives:
//! the engine behind `ferrentd test` and `ferrentd compare`. Sources are not started; outputs
//! that would leave the process are replaced by capturing stand-ins (routing outputs — copy,
//! relabel, rewrite_tag_filter, roundrobin — stay real so the graph routes as it would).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::config_parser::Element;
use crate::engine::{Engine, EngineOptions};
use crate::event::{EventStream, EventTime, Record};
use crate::plugins::{self, Output, OutputCapture, OutputError, PluginContext};

use crate::plugins::ROUTING_OUTPUTS;

/// A usage or input problem: exit status 2, as opposed to a failed expectation (1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

/// One event an output received.
#[derive(Debug, Clone)]
pub struct Received {
    pub tag: String,
    pub time: EventTime,
    pub record: Record,
}

/// A captured output: its name (`@id`, else `TYPE#N`) and the directive it stands for.
#[derive(Debug, Clone)]
pub struct CapturedOutput {
    pub name: String,
    pub directive: String,
    pub events: Vec<Received>,
}

type Shared = Arc<Mutex<Vec<CapturedOutput>>>;

struct Capture {
    index: usize,
    store: Shared,
}

impl Output for Capture {
    fn emit(&self, tag: &str, es: EventStream) -> Result<(), OutputError> {
        let mut all = self.store.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(out) = all.get_mut(self.index) {
            for e in es.iter() {
                out.events.push(Received {
                    tag: tag.to_string(),
                    time: e.time,
                    record: e.record.clone(),
                });
            }
        }
        Ok(())
    }
}

fn capture_hook(store: Shared) -> OutputCapture {
    let counter = Arc::new(AtomicUsize::new(0));
    Arc::new(move |elem: &Element, _ctx: &PluginContext| {
        let ty = elem.plugin_type().unwrap_or("?");
        if ROUTING_OUTPUTS.contains(&ty) {
            return None;
        }
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let name = elem
            .get("@id")
            .map(str::to_string)
            .unwrap_or_else(|| format!("{ty}#{n}"));
        let (line, _) = elem.span.line_col();
        let mut all = store.lock().unwrap_or_else(|p| p.into_inner());
        let index = all.len();
        all.push(CapturedOutput {
            name,
            directive: format!("{} @type {ty} (line {line})", elem.display_name()),
            events: Vec::new(),
        });
        Some(Box::new(Capture {
            index,
            store: store.clone(),
        }) as Box<dyn Output>)
    })
}

/// What to feed: records for a tag, or raw lines through a source's parser.
#[derive(Debug, Clone)]
pub enum Feed {
    Records {
        tag: String,
        records: Vec<(Option<EventTime>, Record)>,
    },
    Lines {
        source_id: String,
        lines: Vec<Vec<u8>>,
        /// Where the lines came from: in_tail's `tag *` expands with it.
        path: PathBuf,
    },
}

/// What one run produced.
#[derive(Debug, Default)]
pub struct RunResult {
    pub outputs: Vec<CapturedOutput>,
    /// Lines a source's parser rejected (in_tail logs these as "pattern not matched").
    pub unparsed: Vec<String>,
    /// Events sent to `@ERROR` when the config has no such label (they are only logged).
    pub logged_errors: u64,
}

impl RunResult {
    pub fn output(&self, name: &str) -> Option<&CapturedOutput> {
        self.outputs.iter().find(|o| o.name == name)
    }
}

/// Builds the config's graph with capturing outputs, feeds `feeds` in order, stops (outputs
/// flush) and returns what each output received. The clock reads `now` throughout.
pub fn run(root: &Element, feeds: &[Feed], now: EventTime) -> Result<RunResult, InputError> {
    crate::event::set_fixed_clock(now);
    let store: Shared = Arc::new(Mutex::new(Vec::new()));
    let opts = EngineOptions {
        strict: false,
        without_source: true,
        output_capture: Some(capture_hook(store.clone())),
    };
    let mut compat_root = root.clone();
    crate::config_parser::compat::apply(&mut compat_root).map_err(|e| InputError(e.to_string()))?;
    let engine = Engine::build(root, &opts).map_err(|e| InputError(e.to_string()))?;
    let mut batches: Vec<(String, String, EventStream)> = Vec::new();
    let mut unparsed = Vec::new();
    for feed in feeds {
        match feed {
            Feed::Records { tag, records } => {
                let mut es = EventStream::with_capacity(records.len());
                for (t, r) in records {
                    es.push(t.unwrap_or(now), r.clone());
                }
                batches.push(("@ROOT".to_string(), tag.clone(), es));
            }
            Feed::Lines {
                source_id,
                lines,
                path,
            } => {
                let (label, tag, es) =
                    parse_for_source(&compat_root, source_id, lines, path, now, &mut unparsed)?;
                batches.push((label, tag, es));
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| InputError(format!("cannot start the runtime: {e}")))?;
    let emitters: Vec<_> = batches
        .iter()
        .map(|(label, _, _)| {
            engine
                .emitter(label)
                .ok_or_else(|| InputError(format!("label {label} is not defined")))
        })
        .collect::<Result<_, _>>()?;
    let errors = engine.error_events().clone();
    let running = engine
        .start(runtime.handle().clone())
        .map_err(|e| InputError(format!("cannot start the graph: {e:#}")))?;
    for ((_, tag, es), emitter) in batches.into_iter().zip(emitters) {
        emitter.emit(&tag, es);
    }
    running.stop();
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    let outputs = std::mem::take(&mut *store.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(RunResult {
        outputs,
        unparsed,
        logged_errors: errors.count(),
    })
}

/// Every `<source>` at the top level and inside `<worker>`.
fn sources(root: &Element) -> impl Iterator<Item = &Element> {
    root.elements.iter().flat_map(|e| {
        if e.name == "worker" {
            e.elements
                .iter()
                .filter(|c| c.name == "source")
                .collect::<Vec<_>>()
        } else if e.name == "source" {
            vec![e]
        } else {
            Vec::new()
        }
    })
}

/// Parses `lines` as the source whose `@id` is `id` would (its `<parse>`, multi-line grouping
/// included) and returns the router, tag and events it would emit.
fn parse_for_source(
    root: &Element,
    id: &str,
    lines: &[Vec<u8>],
    path: &Path,
    now: EventTime,
    unparsed: &mut Vec<String>,
) -> Result<(String, String, EventStream), InputError> {
    let src = sources(root)
        .find(|s| s.get("@id") == Some(id))
        .ok_or_else(|| {
            let ids: Vec<&str> = sources(root).filter_map(|s| s.get("@id")).collect();
            InputError(format!(
                "no <source> has @id {id} (sources with an @id: {})",
                if ids.is_empty() {
                    "none".to_string()
                } else {
                    ids.join(", ")
                }
            ))
        })?;
    let parse = src.child("parse").ok_or_else(|| {
        InputError(format!(
            "<source> @id {id} (@type {}) has no <parse> section: feed it records with --input TAG=FILE",
            src.plugin_type().unwrap_or("?")
        ))
    })?;
    let parser = plugins::new_parser(parse, &PluginContext::for_tests())
        .map_err(|e| InputError(e.to_string()))?;
    let mut tag = src.get("tag").unwrap_or("").to_string();
    if tag.contains('*') {
        // in_tail: `*` is the path with '/' turned into '.'.
        let p = path
            .to_string_lossy()
            .trim_start_matches('/')
            .replace('/', ".");
        tag = tag.replace('*', &p);
    }
    let label = src.get("@label").unwrap_or("@ROOT").to_string();
    let mut units: Vec<Vec<u8>> = Vec::new();
    if parser.is_multiline() {
        for line in lines {
            if parser.is_firstline(line) || units.is_empty() {
                units.push(line.clone());
            } else if let Some(last) = units.last_mut() {
                last.push(b'\n');
                last.extend_from_slice(line);
            }
        }
    } else {
        units = lines.to_vec();
    }
    let mut es = EventStream::new();
    for unit in &units {
        let mut got = Vec::new();
        let res = parser.parse(unit, &mut |t, r| got.push((t.unwrap_or(now), r)));
        match res {
            Ok(()) if !got.is_empty() => {
                for (t, r) in got {
                    es.push(t, r);
                }
            }
            Ok(()) => unparsed.push(String::from_utf8_lossy(unit).into_owned()),
            Err(e) => unparsed.push(format!("{} ({e})", String::from_utf8_lossy(unit))),
        }
    }
    Ok((label, tag, es))
}

/// Reads records from a file: JSON lines (one object a line) or, for `.msgpack`/`.mpk` files,
/// msgpack `[time, record]` entries (Fluentd's chunk format).
pub fn read_records(path: &Path) -> Result<Vec<(Option<EventTime>, Record)>, InputError> {
    let bytes = std::fs::read(path)
        .map_err(|e| InputError(format!("{}: cannot read: {e}", path.display())))?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext == "msgpack" || ext == "mpk" {
        return crate::event::msgpack::read_entries(&bytes)
            .map(|v| v.into_iter().map(|(t, r)| (Some(t), r)).collect())
            .map_err(|e| {
                InputError(format!(
                    "{}: not msgpack [time, record] entries: {e}",
                    path.display()
                ))
            });
    }
    let text = String::from_utf8_lossy(&bytes);
    records_from_json_lines(&text, &path.display().to_string())
}

/// Parses JSON lines (blank lines skipped) into records; `origin` names them in errors.
pub fn records_from_json_lines(
    text: &str,
    origin: &str,
) -> Result<Vec<(Option<EventTime>, Record)>, InputError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        out.push((None, record_from_json(line, origin, i + 1)?));
    }
    Ok(out)
}

fn record_from_json(line: &str, origin: &str, lineno: usize) -> Result<Record, InputError> {
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(v @ serde_json::Value::Object(_)) => match crate::util::value_from_json(v) {
            crate::event::Value::Map(r) => Ok(r),
            _ => Err(InputError(format!("{origin}:{lineno}: not a JSON object"))),
        },
        Ok(_) => Err(InputError(format!(
            "{origin}:{lineno}: not a JSON object: {line}"
        ))),
        Err(e) => Err(InputError(format!(
            "{origin}:{lineno}: not JSON ({e}): {line}"
        ))),
    }
}

/// A record as one compact JSON line with its keys in order: the form expectations compare.
pub fn normalize_record(r: &Record) -> String {
    let raw = crate::json::encode::record_to_vec(r);
    normalize_json_bytes(&raw)
}

/// Re-serializes a JSON text compactly, keeping key order, so spacing does not count.
pub fn normalize_json_bytes(raw: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(raw) {
        Ok(v) => v.to_string(),
        Err(_) => String::from_utf8_lossy(raw).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> Element {
        crate::config_parser::parse_str(text, Path::new("t.conf"), &Default::default()).unwrap()
    }

    const CONF: &str = r#"
<source>
  @type tail
  @id app
  path /nonexistent/app.log
  tag app.web
  <parse>
    @type regexp
    expression /^(?<level>\w+) (?<msg>.*)$/
  </parse>
</source>
<filter app.**>
  @type record_transformer
  <record>
    host_tag ${tag}
  </record>
</filter>
<match app.**>
  @type copy
  <store>
    @type elasticsearch
    @id es
    host 192.0.2.1
  </store>
  <store>
    @type stdout
  </store>
</match>
"#;

    #[test]
    fn records_reach_every_store_through_filters() {
        // An unknown sink type would be a config error; use out_file as the "sink".
        let conf = CONF.replace(
            "@type elasticsearch\n    @id es\n    host 192.0.2.1",
            "@type file\n    @id es\n    path /nonexistent/out",
        );
        let r = root(&conf);
        let feeds = vec![Feed::Records {
            tag: "app.web".into(),
            records: records_from_json_lines("{\"a\":1}\n\n{\"a\":2}\n", "in").unwrap(),
        }];
        let res = run(&r, &feeds, EventTime::new(1_767_225_600, 0)).unwrap();
        let names: Vec<&str> = res.outputs.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, vec!["es", "stdout#1"]);
        let es = res.output("es").unwrap();
        let got: Vec<String> = es
            .events
            .iter()
            .map(|e| normalize_record(&e.record))
            .collect();
        assert_eq!(
            got,
            vec![
                r#"{"a":1,"host_tag":"app.web"}"#,
                r#"{"a":2,"host_tag":"app.web"}"#
            ]
        );
        assert_eq!(es.events[0].time, EventTime::new(1_767_225_600, 0));
        assert!(!Path::new("/nonexistent/out").exists());
    }

    #[test]
    fn lines_go_through_the_source_parser() {
        let conf = CONF.replace(
            "@type elasticsearch\n    @id es\n    host 192.0.2.1",
            "@type null\n    @id es",
        );
        let r = root(&conf);
        let feeds = vec![Feed::Lines {
            source_id: "app".into(),
            lines: vec![b"info started".to_vec(), b"???".to_vec()],
            path: PathBuf::from("app.log"),
        }];
        let res = run(&r, &feeds, EventTime::new(1_767_225_600, 0)).unwrap();
        let es = res.output("es").unwrap();
        assert_eq!(es.events.len(), 1);
        assert_eq!(
            normalize_record(&es.events[0].record),
            r#"{"level":"info","msg":"started","host_tag":"app.web"}"#
        );
        assert_eq!(res.unparsed.len(), 1);
    }

    #[test]
    fn unknown_source_id_and_bad_json_are_input_errors() {
        let conf = CONF.replace(
            "@type elasticsearch\n    @id es\n    host 192.0.2.1",
            "@type null",
        );
        let r = root(&conf);
        let feeds = vec![Feed::Lines {
            source_id: "nope".into(),
            lines: vec![],
            path: PathBuf::from("x"),
        }];
        let e = run(&r, &feeds, EventTime::new(1, 0)).unwrap_err();
        assert_eq!(e.0, "no <source> has @id nope (sources with an @id: app)");
        let e = records_from_json_lines("{\"a\":1}\n[1,2]\n", "in.jsonl").unwrap_err();
        assert_eq!(e.0, "in.jsonl:2: not a JSON object: [1,2]");
        let e = records_from_json_lines("{oops\n", "in.jsonl").unwrap_err();
        assert!(e.0.starts_with("in.jsonl:1: not JSON ("), "{}", e.0);
    }
}
