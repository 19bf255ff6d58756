//! ferrentd's own log, in Fluentd's text format (`2024-01-02 03:04:05 +0000 [info]: message`),
//! written to stderr or to the `-o` file so that stdout carries only what out_stdout prints.

use std::fmt;
use std::io::Write;
use std::sync::Mutex;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Fluentd's log levels, mapped onto tracing's (fatal is shown as error).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl LogLevel {
    pub fn parse(s: &str) -> Option<LogLevel> {
        Some(match s {
            "trace" => LogLevel::Trace,
            "debug" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "warn" => LogLevel::Warn,
            "error" => LogLevel::Error,
            "fatal" => LogLevel::Fatal,
            _ => return None,
        })
    }

    fn filter(self) -> tracing::level_filters::LevelFilter {
        use tracing::level_filters::LevelFilter;
        match self {
            LogLevel::Trace => LevelFilter::TRACE,
            LogLevel::Debug => LevelFilter::DEBUG,
            LogLevel::Info => LevelFilter::INFO,
            LogLevel::Warn => LevelFilter::WARN,
            LogLevel::Error | LogLevel::Fatal => LevelFilter::ERROR,
        }
    }

    /// `-v` twice is trace, once debug; `-q` once warn, twice error.
    pub fn from_flags(verbose: u8, quiet: u8, base: LogLevel) -> LogLevel {
        let order = [
            LogLevel::Trace,
            LogLevel::Debug,
            LogLevel::Info,
            LogLevel::Warn,
            LogLevel::Error,
            LogLevel::Fatal,
        ];
        let i = order.iter().position(|l| *l == base).unwrap_or(2) as i32;
        let j = (i - verbose as i32 + quiet as i32).clamp(0, 5);
        order[j as usize]
    }
}

struct FluentdFormat;

/// `<system><log>`: the line format and its time format.
struct Style {
    json: bool,
    time_format: String,
}

static STYLE: parking_lot::RwLock<Option<Style>> = parking_lot::RwLock::new(None);

/// Applies `<system><log> format` (`text` or `json`) and `time_format`.
pub fn set_style(json: bool, time_format: Option<&str>) {
    *STYLE.write() = Some(Style {
        json,
        time_format: time_format.unwrap_or(DEFAULT_TIME_FORMAT).to_string(),
    });
}

const DEFAULT_TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S %z";

/// One log line as `<system><log>` asks: text `TIME [LEVEL]: MESSAGE` or a JSON object.
pub fn render(level: &str, message: &str) -> String {
    let style = STYLE.read();
    let (json, tf) = match &*style {
        Some(s) => (s.json, s.time_format.as_str()),
        None => (false, DEFAULT_TIME_FORMAT),
    };
    let now = crate::timefmt::strftime(
        crate::event::EventTime::now(),
        tf,
        &crate::timefmt::TimeZoneSpec::Local,
    );
    if json {
        let mut r = crate::event::Record::new();
        r.insert("time", crate::event::Value::str(now));
        r.insert("level", crate::event::Value::str(level));
        r.insert("message", crate::event::Value::str(message));
        String::from_utf8_lossy(&crate::json::encode::record_to_vec(&r)).into_owned()
    } else {
        format!("{now} [{level}]: {message}")
    }
}

// ---------------------------------------------------------------------------------------------
// Log events: Fluentd routes its own log lines as events tagged `fluent.LEVEL` with
// `{"message": ...}` (to `<label @FLUENT_LOG>`, else the top-level routes). Lines are queued
// here and emitted by the engine's log-event thread; lines logged *on* that thread (an output
// failing while it takes log events) are not queued again, so they cannot feed back.

/// A log line on its way to becoming an event.
pub struct LogEvent {
    pub level: &'static str,
    pub time: crate::event::EventTime,
    pub message: String,
}

static LOG_EVENTS: parking_lot::RwLock<Option<crossbeam_channel::Sender<LogEvent>>> =
    parking_lot::RwLock::new(None);

static DROPPED_LOG_EVENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

thread_local! {
    static NO_LOG_EVENTS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// How many log lines waiting to become events are kept before new ones are dropped.
pub const LOG_EVENT_QUEUE: usize = 4096;

/// Starts queueing log lines as events; the receiver is the engine's log-event thread.
pub fn enable_log_events() -> crossbeam_channel::Receiver<LogEvent> {
    let (tx, rx) = crossbeam_channel::bounded(LOG_EVENT_QUEUE);
    *LOG_EVENTS.write() = Some(tx);
    rx
}

/// Stops queueing (the receiver sees the end once drained).
pub fn disable_log_events() {
    *LOG_EVENTS.write() = None;
}

/// Marks this thread as the one emitting log events: what it logs is not queued.
pub fn exclude_this_thread_from_log_events() {
    NO_LOG_EVENTS.with(|c| c.set(true));
}

/// Log lines dropped because the queue was full.
pub fn dropped_log_events() -> u64 {
    DROPPED_LOG_EVENTS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Queues one line as an event, unless this thread is excluded or nothing takes log events.
pub fn push_log_event(level: &'static str, message: &str) {
    if NO_LOG_EVENTS.with(|c| c.get()) {
        return;
    }
    let guard = LOG_EVENTS.read();
    let Some(tx) = &*guard else {
        return;
    };
    let ev = LogEvent {
        level,
        time: crate::event::EventTime::now(),
        message: message.to_string(),
    };
    if tx.try_send(ev).is_err() {
        DROPPED_LOG_EVENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The tracing layer that feeds [`push_log_event`].
struct LogEventLayer;

impl<S: Subscriber> tracing_subscriber::Layer<S> for LogEventLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: tracing_subscriber::layer::Context<'_, S>) {
        if LOG_EVENTS.read().is_none() {
            return;
        }
        let mut v = MessageVisitor::default();
        event.record(&mut v);
        push_log_event(level_name(event.metadata().level()), &v.0);
    }
}

impl<S, N> FormatEvent<S, N> for FluentdFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let _ = ctx;
        let mut v = MessageVisitor::default();
        event.record(&mut v);
        writeln!(
            writer,
            "{}",
            render(level_name(event.metadata().level()), &v.0)
        )
    }
}

/// Collects an event's message (and any other fields as ` key=value`), as the text log shows it.
#[derive(Default)]
pub struct MessageVisitor(pub String);

impl tracing::field::Visit for MessageVisitor {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        use std::fmt::Write as _;
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

/// The level name Fluentd uses.
pub fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

/// Where log lines go.
pub enum LogTarget {
    Stderr,
    File(std::path::PathBuf),
}

struct FileWriter(Mutex<std::fs::File>);

impl Write for &FileWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock() {
            Ok(mut f) => f.write(buf),
            Err(_) => Ok(buf.len()),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self.0.lock() {
            Ok(mut f) => f.flush(),
            Err(_) => Ok(()),
        }
    }
}

/// Installs the global logger. Safe to call more than once (later calls are ignored).
pub fn init(level: LogLevel, target: LogTarget) -> std::io::Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = level.filter();
    // kube logs each failed request; the Kubernetes plugins report an outage once instead.
    let quiet_kube = tracing_subscriber::filter::filter_fn(move |m| {
        level <= LogLevel::Debug || !m.target().starts_with("kube")
    });
    match target {
        LogTarget::Stderr => {
            let fmt = tracing_subscriber::fmt::layer()
                .event_format(FluentdFormat)
                .with_writer(std::io::stderr);
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(quiet_kube)
                .with(fmt)
                .with(LogEventLayer)
                .try_init();
        }
        LogTarget::File(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            let w: &'static FileWriter = Box::leak(Box::new(FileWriter(Mutex::new(f))));
            let fmt = tracing_subscriber::fmt::layer()
                .event_format(FluentdFormat)
                .with_writer(move || w);
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(quiet_kube)
                .with(fmt)
                .with(LogEventLayer)
                .try_init();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_flags_move_the_level() {
        assert_eq!(LogLevel::from_flags(1, 0, LogLevel::Info), LogLevel::Debug);
        assert_eq!(LogLevel::from_flags(2, 0, LogLevel::Info), LogLevel::Trace);
        assert_eq!(LogLevel::from_flags(0, 1, LogLevel::Info), LogLevel::Warn);
        assert_eq!(LogLevel::from_flags(0, 2, LogLevel::Info), LogLevel::Error);
        assert_eq!(LogLevel::from_flags(5, 0, LogLevel::Info), LogLevel::Trace);
        assert_eq!(LogLevel::parse("warn"), Some(LogLevel::Warn));
        assert_eq!(LogLevel::parse("loud"), None);
    }
}
