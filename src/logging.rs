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
        let now = chrono::Local::now();
        let level = match *event.metadata().level() {
            Level::TRACE => "trace",
            Level::DEBUG => "debug",
            Level::INFO => "info",
            Level::WARN => "warn",
            Level::ERROR => "error",
        };
        write!(
            writer,
            "{} [{}]: ",
            now.format("%Y-%m-%d %H:%M:%S %z"),
            level
        )?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
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
    let builder = tracing_subscriber::fmt()
        .event_format(FluentdFormat)
        .with_max_level(level.filter());
    match target {
        LogTarget::Stderr => {
            let _ = builder.with_writer(std::io::stderr).try_init();
        }
        LogTarget::File(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            let w: &'static FileWriter = Box::leak(Box::new(FileWriter(Mutex::new(f))));
            let _ = builder.with_writer(move || w).try_init();
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
