//! `@type detect_exceptions` (fluent-plugin-detect-exceptions): an output that joins the lines of
//! an exception stack trace (Java, JavaScript, C#, Python, Go, Ruby, PHP, Dart) into one record
//! and re-emits every record, joined or not, under its tag with `remove_tag_prefix` taken off.
//!
//! Each language is a state machine of regexps (the plugin's `exception_detector.rb` rules); a
//! line either starts a trace, continues it, ends it or is no trace. Records are kept apart per
//! tag (and per `stream` value); a trace still open after `multiline_flush_interval` is emitted
//! as it is by a timer, and at shutdown, so buffered lines are never dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use regex::bytes::Regex;
use serde::Deserialize;

use super::{Output, OutputError, PluginContext};
use crate::config_parser::types::Time;
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventStream, EventTime, Record, Value};
use crate::router::{Emitter, Shutdown};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum State {
    Start,
    JavaStartException,
    JavaAfterException,
    Java,
    Python,
    PythonCode,
    PhpStackBegin,
    PhpStackFrames,
    GoAfterPanic,
    GoAfterSignal,
    GoGoroutine,
    GoFrame1,
    GoFrame2,
    RubyBeforeRailsTrace,
    Ruby,
    DartExc,
    DartStack,
    DartTypeErr1,
    DartTypeErr2,
    DartTypeErr3,
    DartTypeErr4,
    DartFormatErr1,
    DartFormatErr2,
    DartFormatErr3,
    DartMethodErr1,
    DartMethodErr2,
    DartMethodErr3,
}

use State::*;

type RuleDef = (&'static [State], &'static str, State);

const JAVA: &[RuleDef] = &[
    (
        &[Start, JavaStartException],
        r"(?:Exception|Error|Throwable|V8 errors stack trace)[:\r\n]",
        JavaAfterException,
    ),
    (
        &[JavaAfterException],
        r"^[\t ]*nested exception is:[\t ]*",
        JavaStartException,
    ),
    (&[JavaAfterException], r"^[\r\n]*$", JavaAfterException),
    (&[JavaAfterException, Java], r"^[\t ]+(?:eval )?at ", Java),
    // C#: a nested exception, and an exception from async code.
    (
        &[JavaAfterException, Java],
        r"^[\t ]+--- End of inner exception stack trace ---$",
        Java,
    ),
    (
        &[JavaAfterException, Java],
        r"^--- End of stack trace from previous location where exception was thrown ---$",
        Java,
    ),
    (
        &[JavaAfterException, Java],
        r"^[\t ]*(?:Caused by|Suppressed):",
        JavaAfterException,
    ),
    (
        &[JavaAfterException, Java],
        r"^[\t ]*... \d+ (?:more|common frames omitted)",
        Java,
    ),
];

const PYTHON: &[RuleDef] = &[
    (&[Start], r"^Traceback \(most recent call last\):$", Python),
    (&[Python], r"^[\t ]+File ", PythonCode),
    (&[PythonCode], r"[^\t ]", Python),
    (&[Python], r"^(?:[^\s.():]+\.)*[^\s.():]+:", Start),
];

const PHP: &[RuleDef] = &[
    (
        &[Start],
        r"(?:PHP (?:Notice|Parse error|Fatal error|Warning):)|(?:exception '[^']+' with message ')",
        PhpStackBegin,
    ),
    (&[PhpStackBegin], r"^Stack trace:", PhpStackFrames),
    (&[PhpStackFrames], r"^#\d", PhpStackFrames),
    (&[PhpStackFrames], r"^\s+thrown in ", Start),
];

const GO: &[RuleDef] = &[
    (&[Start], r"\bpanic: ", GoAfterPanic),
    (&[Start], r"http: panic serving", GoGoroutine),
    (&[GoAfterPanic, GoAfterSignal, GoFrame1], r"^$", GoGoroutine),
    (&[GoAfterPanic], r"^\[signal ", GoAfterSignal),
    (&[GoGoroutine], r"^goroutine \d+ \[[^\]]+\]:$", GoFrame1),
    (
        &[GoFrame1],
        r"^(?:[^\s.:]+\.)*[^\s.():]+\(|^created by ",
        GoFrame2,
    ),
    (&[GoFrame2], r"^\s", GoFrame1),
];

const RUBY: &[RuleDef] = &[
    (&[Start], r"Error \(.*\):$", RubyBeforeRailsTrace),
    (&[RubyBeforeRailsTrace], r"^  $", Ruby),
    (&[RubyBeforeRailsTrace], r"^[\t ]+.*?\.rb:\d+:in `", Ruby),
    (&[Ruby], r"^[\t ]+.*?\.rb:\d+:in `", Ruby),
];

const DART: &[RuleDef] = &[
    (&[Start], r"^Unhandled exception:$", DartExc),
    (&[DartExc], r"^Instance of", DartStack),
    (&[DartExc], r"^Exception", DartStack),
    (&[DartExc], r"^Bad state", DartStack),
    (&[DartExc], r"^IntegerDivisionByZeroException", DartStack),
    (&[DartExc], r"^Invalid argument", DartStack),
    (&[DartExc], r"^RangeError", DartStack),
    (&[DartExc], r"^Assertion failed", DartStack),
    (&[DartExc], r"^Cannot instantiate", DartStack),
    (&[DartExc], r"^Reading static variable", DartStack),
    (&[DartExc], r"^UnimplementedError", DartStack),
    (&[DartExc], r"^Unsupported operation", DartStack),
    (&[DartExc], r"^Concurrent modification", DartStack),
    (&[DartExc], r"^Out of Memory", DartStack),
    (&[DartExc], r"^Stack Overflow", DartStack),
    (&[DartExc], r"^'.+?':.+?$", DartTypeErr1),
    (&[DartTypeErr1], r"^#\d+\s+.+?\(.+?\)$", DartStack),
    (&[DartTypeErr1], r"^.+?$", DartTypeErr2),
    (&[DartTypeErr2], r"^.*?\^.*?$", DartTypeErr3),
    (&[DartTypeErr3], r"^$", DartTypeErr4),
    (&[DartTypeErr4], r"^$", DartStack),
    (&[DartExc], r"^FormatException", DartFormatErr1),
    (&[DartFormatErr1], r"^#\d+\s+.+?\(.+?\)$", DartStack),
    (&[DartFormatErr1], r"^.", DartFormatErr2),
    (&[DartFormatErr2], r"^.*?\^", DartFormatErr3),
    (&[DartFormatErr3], r"^$", DartStack),
    (&[DartExc], r"^NoSuchMethodError:", DartMethodErr1),
    (&[DartMethodErr1], r"^Receiver:", DartMethodErr2),
    (&[DartMethodErr2], r"^Tried calling:", DartMethodErr3),
    (&[DartMethodErr3], r"^Found:", DartStack),
    (&[DartMethodErr3], r"^#\d+\s+.+?\(.+?\)$", DartStack),
    (&[DartStack], r"^#\d+\s+.+?\(.+?\)$", DartStack),
    (&[DartStack], r"^<asynchronous suspension>$", DartStack),
];

/// The rule sets of a `languages` name, as the plugin's `RULES_BY_LANG`.
fn rules_of(lang: &str) -> Option<Vec<&'static [RuleDef]>> {
    Some(match lang.to_ascii_lowercase().as_str() {
        "java" | "javascript" | "js" | "csharp" => vec![JAVA],
        "py" | "python" => vec![PYTHON],
        "php" => vec![PHP],
        "go" => vec![GO],
        "rb" | "ruby" => vec![RUBY],
        "dart" => vec![DART],
        "all" => vec![JAVA, PYTHON, PHP, GO, RUBY, DART],
        _ => return None,
    })
}

/// The compiled transitions: from each state, the rules in declaration order.
struct Rules {
    by_state: HashMap<State, Vec<(Arc<Regex>, State)>>,
}

impl Rules {
    fn new(languages: &[String]) -> Result<Rules, String> {
        let langs: Vec<String> = if languages.is_empty() {
            vec!["all".into()]
        } else {
            languages.to_vec()
        };
        let mut compiled: HashMap<&'static str, Arc<Regex>> = HashMap::new();
        let mut by_state: HashMap<State, Vec<(Arc<Regex>, State)>> = HashMap::new();
        let mut seen: HashMap<State, Vec<(&'static str, State)>> = HashMap::new();
        for lang in &langs {
            let sets = rules_of(lang).ok_or_else(|| format!("Unknown language: {lang}"))?;
            for set in sets {
                for &(from, pat, to) in set.iter() {
                    let re = match compiled.get(pat) {
                        Some(r) => r.clone(),
                        None => {
                            // Ruby's `^`/`$` are line anchors; one message is one line here.
                            let r = Arc::new(
                                Regex::new(&format!("(?m){pat}")).map_err(|e| e.to_string())?,
                            );
                            compiled.insert(pat, r.clone());
                            r
                        }
                    };
                    for f in from.iter() {
                        // `uniq!`: the same rule twice (e.g. java and js) counts once.
                        let s = seen.entry(*f).or_default();
                        if s.contains(&(pat, to)) {
                            continue;
                        }
                        s.push((pat, to));
                        by_state.entry(*f).or_default().push((re.clone(), to));
                    }
                }
            }
        }
        Ok(Rules { by_state })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
// The plugin's detection statuses (`:no_trace`, `:start_trace`, ...), by their names.
#[allow(clippy::enum_variant_names)]
enum Detection {
    NoTrace,
    StartTrace,
    InsideTrace,
    EndTrace,
}

struct Detector {
    rules: Arc<Rules>,
    state: State,
}

impl Detector {
    fn transition(&mut self, line: &[u8]) -> bool {
        if let Some(rs) = self.rules.by_state.get(&self.state) {
            for (re, to) in rs {
                if re.is_match(line) {
                    self.state = *to;
                    return true;
                }
            }
        }
        self.state = Start;
        false
    }

    fn update(&mut self, line: &[u8]) -> Detection {
        // Ruby's `^` does not match after a trailing newline, so `^$` must not match "x\n";
        // without that newline, the line anchors agree.
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let before = self.transition(line);
        if !before {
            // Back at the start: the line may begin another trace.
            self.transition(line);
        }
        let after = self.state != Start;
        match (before, after) {
            (true, true) => Detection::InsideTrace,
            (true, false) => Detection::EndTrace,
            (false, true) => Detection::StartTrace,
            (false, false) => Detection::NoTrace,
        }
    }
}

/// One stream's buffered trace (the plugin's `TraceAccumulator`).
struct Accumulator {
    detector: Detector,
    /// The message field; `Some("")` learns it from the first record (`message` or `log`).
    message_field: Option<String>,
    max_lines: usize,
    max_bytes: usize,
    messages: Vec<Vec<u8>>,
    size: usize,
    first: Option<(EventTime, Record)>,
    started: Instant,
}

impl Accumulator {
    fn message(&mut self, record: &Record) -> Option<Vec<u8>> {
        if self.message_field.as_deref() == Some("") {
            for f in ["message", "log"] {
                if record.contains_key(f) {
                    self.message_field = Some(f.to_string());
                    break;
                }
            }
        }
        let f = self.message_field.as_deref()?;
        match record.get(f)? {
            Value::Str(s) => Some(s.clone()),
            _ => None,
        }
    }

    fn push(&mut self, time: EventTime, record: Record, out: &mut Vec<(EventTime, Record)>) {
        let message = self.message(&record);
        let status = match &message {
            None => {
                self.detector.state = Start;
                Detection::NoTrace
            }
            Some(m) => {
                if self.max_bytes > 0 && self.size + m.len() > self.max_bytes {
                    self.force_flush(out);
                }
                self.detector.update(m)
            }
        };
        let emit_now = matches!(status, Detection::NoTrace | Detection::EndTrace);
        if self.messages.is_empty() && self.first.is_none() && emit_now {
            out.push((time, record));
        } else {
            match status {
                Detection::InsideTrace => self.add(time, record, message),
                Detection::EndTrace => {
                    self.add(time, record, message);
                    self.flush(out);
                }
                Detection::NoTrace => {
                    self.flush(out);
                    self.add(time, record, message);
                    self.flush(out);
                }
                Detection::StartTrace => {
                    self.flush(out);
                    self.add(time, record, message);
                }
            }
        }
        if self.max_lines > 0 && self.messages.len() >= self.max_lines {
            self.force_flush(out);
        }
    }

    fn add(&mut self, time: EventTime, record: Record, message: Option<Vec<u8>>) {
        if self.first.is_none() {
            self.first = Some((time, record));
            self.started = Instant::now();
        }
        if let Some(m) = message {
            self.size += m.len();
            self.messages.push(m);
        }
    }

    fn flush(&mut self, out: &mut Vec<(EventTime, Record)>) {
        let Some((time, mut record)) = self.first.take() else {
            self.messages.clear();
            self.size = 0;
            return;
        };
        if self.messages.len() > 1 {
            if let Some(f) = self.message_field.as_deref().filter(|f| !f.is_empty()) {
                record.insert(f.to_string(), Value::Str(self.messages.concat()));
            }
        }
        out.push((time, record));
        self.messages.clear();
        self.size = 0;
    }

    fn force_flush(&mut self, out: &mut Vec<(EventTime, Record)>) {
        self.flush(out);
        self.detector.state = Start;
    }
}

#[derive(Deserialize)]
struct DetectConf {
    #[serde(default)]
    message: String,
    #[serde(default)]
    remove_tag_prefix: String,
    /// None (the default): a trace is only closed by a later line or at shutdown.
    multiline_flush_interval: Option<Time>,
    #[serde(default)]
    languages: Vec<String>,
    #[serde(default = "thousand")]
    max_lines: i64,
    #[serde(default)]
    max_bytes: i64,
    #[serde(default)]
    stream: String,
    #[serde(default)]
    force_line_breaks: bool,
}

fn thousand() -> i64 {
    1000
}

struct Shared {
    rules: Arc<Rules>,
    message: String,
    /// `PREFIX.`, taken off the tag's start.
    remove_tag_prefix: String,
    flush_interval: Option<Duration>,
    max_lines: usize,
    max_bytes: usize,
    stream: String,
    force_line_breaks: bool,
    router: Emitter,
    /// (tag, stream value) → its accumulator.
    accumulators: Mutex<HashMap<(String, Vec<u8>), Accumulator>>,
    stop: Shutdown,
}

pub struct DetectExceptionsOutput {
    s: Arc<Shared>,
    timer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Output>, ConfigError> {
    let c: DetectConf = ctx.configure(elem, "detect_exceptions")?;
    let rules = Rules::new(&c.languages).map_err(|e| elem.error(e))?;
    let interval = c.multiline_flush_interval.map(|t| t.0).unwrap_or(0.0);
    Ok(Box::new(DetectExceptionsOutput {
        s: Arc::new(Shared {
            rules: Arc::new(rules),
            message: c.message,
            remove_tag_prefix: format!("{}.", c.remove_tag_prefix),
            flush_interval: (interval > 0.0).then(|| Duration::from_secs_f64(interval)),
            max_lines: c.max_lines.max(0) as usize,
            max_bytes: c.max_bytes.max(0) as usize,
            stream: c.stream,
            force_line_breaks: c.force_line_breaks,
            router: ctx.router.clone(),
            accumulators: Mutex::new(HashMap::new()),
            stop: Shutdown::new(),
        }),
        timer: Mutex::new(None),
    }))
}

impl Shared {
    fn out_tag(&self, tag: &str) -> String {
        tag.strip_prefix(self.remove_tag_prefix.as_str())
            .unwrap_or(tag)
            .to_string()
    }

    fn emit(&self, tag: &str, events: Vec<(EventTime, Record)>) {
        if events.is_empty() {
            return;
        }
        let mut es = EventStream::with_capacity(events.len());
        for (t, r) in events {
            es.push(t, r);
        }
        self.router.emit(&self.out_tag(tag), es);
    }

    /// Emits the traces open longer than the flush interval (all of them with `None`).
    fn flush_old(&self, older_than: Option<Duration>) {
        let mut done: Vec<(String, Vec<(EventTime, Record)>)> = Vec::new();
        {
            let mut accs = match self.accumulators.lock() {
                Ok(a) => a,
                Err(p) => p.into_inner(),
            };
            for ((tag, _), acc) in accs.iter_mut() {
                let due = match older_than {
                    Some(d) => acc.first.is_some() && acc.started.elapsed() >= d,
                    None => true,
                };
                if due {
                    let mut out = Vec::new();
                    acc.force_flush(&mut out);
                    if !out.is_empty() {
                        done.push((tag.clone(), out));
                    }
                }
            }
        }
        for (tag, out) in done {
            self.emit(&tag, out);
        }
    }
}

impl Output for DetectExceptionsOutput {
    fn emit(&self, tag: &str, es: EventStream) -> Result<(), OutputError> {
        let s = &self.s;
        let mut out = Vec::new();
        {
            let mut accs = match s.accumulators.lock() {
                Ok(a) => a,
                Err(p) => p.into_inner(),
            };
            for e in es.iter() {
                let mut record = e.record.clone();
                let stream = if s.stream.is_empty() {
                    Vec::new()
                } else {
                    record
                        .get(&s.stream)
                        .map(|v| v.to_ruby_s())
                        .unwrap_or_default()
                };
                if s.force_line_breaks && !s.message.is_empty() {
                    if let Some(Value::Str(m)) = record.get_mut(&s.message) {
                        if !m.ends_with(b"\n") {
                            m.push(b'\n');
                        }
                    }
                }
                let acc = accs
                    .entry((tag.to_string(), stream))
                    .or_insert_with(|| Accumulator {
                        detector: Detector {
                            rules: s.rules.clone(),
                            state: Start,
                        },
                        message_field: Some(s.message.clone()),
                        max_lines: s.max_lines,
                        max_bytes: s.max_bytes,
                        messages: Vec::new(),
                        size: 0,
                        first: None,
                        started: Instant::now(),
                    });
                acc.push(e.time, record, &mut out);
            }
        }
        s.emit(tag, out);
        Ok(())
    }

    fn start(&self) -> anyhow::Result<()> {
        let Some(every) = self.s.flush_interval else {
            return Ok(());
        };
        let s = self.s.clone();
        let tick = every.min(Duration::from_secs(1));
        let h = std::thread::Builder::new()
            .name("detect_exceptions-flush".into())
            .spawn(move || {
                while !s.stop.wait_timeout(tick) {
                    s.flush_old(Some(every));
                }
            })?;
        if let Ok(mut t) = self.timer.lock() {
            *t = Some(h);
        }
        Ok(())
    }

    fn flush(&self) {
        self.s.flush_old(None);
    }

    fn shutdown(&self) {
        self.s.stop.trigger();
        if let Some(h) = self.timer.lock().ok().and_then(|mut t| t.take()) {
            let _ = h.join();
        }
        // What is still buffered is emitted, never dropped.
        self.s.flush_old(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accumulate(langs: &[&str], lines: &[&str]) -> Vec<String> {
        let langs: Vec<String> = langs.iter().map(|s| s.to_string()).collect();
        let mut acc = Accumulator {
            detector: Detector {
                rules: Arc::new(Rules::new(&langs).unwrap()),
                state: Start,
            },
            message_field: Some("message".into()),
            max_lines: 0,
            max_bytes: 0,
            messages: Vec::new(),
            size: 0,
            first: None,
            started: Instant::now(),
        };
        let mut out = Vec::new();
        for l in lines {
            let mut r = Record::new();
            r.insert("message", Value::Str(format!("{l}\n").into_bytes()));
            acc.push(EventTime::new(1, 0), r, &mut out);
        }
        acc.force_flush(&mut out);
        out.iter()
            .map(|(_, r)| match r.get("message") {
                Some(Value::Str(s)) => String::from_utf8_lossy(s).into_owned(),
                _ => String::new(),
            })
            .collect()
    }

    #[test]
    fn java_trace_is_one_record() {
        let out = accumulate(
            &["java"],
            &[
                "before",
                "java.lang.IllegalStateException: boom",
                "\tat com.example.App.run(App.java:10)",
                "\tat com.example.App.main(App.java:3)",
                "Caused by: java.io.IOException: disk",
                "\tat com.example.Disk.read(Disk.java:7)",
                "\t... 2 more",
                "after",
            ],
        );
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(out[0], "before\n");
        assert!(
            out[1].starts_with("java.lang.IllegalStateException: boom\n\tat com.example.App.run")
        );
        assert!(out[1].ends_with("\t... 2 more\n"));
        assert_eq!(out[2], "after\n");
    }

    #[test]
    fn python_trace_is_one_record() {
        let out = accumulate(
            &["python"],
            &[
                "Traceback (most recent call last):",
                "  File \"app.py\", line 3, in <module>",
                "    main()",
                "  File \"app.py\", line 2, in main",
                "    raise ValueError(\"bad\")",
                "ValueError: bad",
                "next line",
            ],
        );
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out[0].starts_with("Traceback (most recent call last):\n"));
        assert!(out[0].ends_with("ValueError: bad\n"));
        assert_eq!(out[1], "next line\n");
    }

    #[test]
    fn go_panic_is_one_record() {
        let out = accumulate(
            &["go"],
            &[
                "panic: runtime error: index out of range",
                "",
                "goroutine 1 [running]:",
                "main.main()",
                "\t/app/main.go:5 +0x1d",
                "exit status 2",
            ],
        );
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out[0].starts_with("panic: runtime error"));
        assert!(out[0].contains("\t/app/main.go:5 +0x1d\n"));
        assert_eq!(out[1], "exit status 2\n");
    }

    #[test]
    fn unknown_language_is_an_error() {
        assert!(Rules::new(&["cobol".to_string()]).is_err());
        assert!(Rules::new(&["all".to_string()]).is_ok());
    }
}
