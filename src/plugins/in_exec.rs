//! `@type exec` (input): runs `command` once (or every `run_interval`, the first run after one
//! interval) and parses its stdout with `<parse>` (default tsv; `time_key` nil, `time_type`
//! float, no estimated time), tag and time from `<extract>` or `tag` and now.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::exec_util::{section_with_defaults, RecordReader};
use super::extract::Extract;
use super::{Input, InputContext, PluginContext};
use crate::child_process::{self, Options, Stderr};
use crate::config_parser::types::{Size, Time};
use crate::config_parser::{ConfigError, Element, Nested};
use crate::router::Shutdown;

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum ConnectMode {
    #[default]
    Read,
    ReadWithStderr,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct ExecInputConf {
    command: String,
    #[serde(default)]
    connect_mode: ConnectMode,
    tag: Option<String>,
    run_interval: Option<Time>,
    read_block_size: Option<Size>,
    /// Accepted: records keep the command's bytes as they are.
    encoding: Option<String>,
    parse: Option<Nested>,
    extract: Option<Nested>,
}

pub struct ExecInput {
    command: String,
    stderr: Stderr,
    run_interval: Option<Duration>,
    parser: Arc<dyn super::Parser>,
    extract: Option<Arc<Extract>>,
    tag: Option<String>,
}

/// `<parse>` defaults of in_exec (and out_exec_filter).
pub const PARSE_DEFAULTS: &[(&str, Option<&str>)] = &[
    ("time_key", None),
    ("estimate_current_event", Some("false")),
];

/// `time_type float` unless the section gives a `time_format` (Fluentd sets string then).
pub fn parse_section(owner: &Element) -> Element {
    let mut defaults = PARSE_DEFAULTS.to_vec();
    let has_format = owner.child("parse").is_some_and(|p| p.has("time_format"));
    defaults.push((
        "time_type",
        Some(if has_format { "string" } else { "float" }),
    ));
    section_with_defaults(owner, "parse", "tsv", &defaults)
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Input>, ConfigError> {
    let cfg: ExecInputConf = ctx.configure(elem, "exec")?;
    let parser: Arc<dyn super::Parser> = Arc::from(super::new_parser(&parse_section(elem), ctx)?);
    let extract = Extract::from_section(elem.child("extract"), ctx)?.map(Arc::new);
    if cfg.tag.is_none() && !extract.as_ref().is_some_and(|x| x.has_tag_key()) {
        return Err(elem.error("'tag' or 'tag_key' option is required on exec input"));
    }
    if let Some(enc) = &cfg.encoding {
        if encoding_rs::Encoding::for_label(enc.as_bytes()).is_none() && enc != "ASCII-8BIT" {
            return Err(elem.error(format!("Invalid encoding: {enc}")));
        }
    }
    Ok(Box::new(ExecInput {
        command: cfg.command,
        stderr: match cfg.connect_mode {
            ConnectMode::Read => Stderr::Discard,
            ConnectMode::ReadWithStderr => Stderr::Connect,
        },
        run_interval: cfg.run_interval.map(|t| t.as_duration()),
        parser,
        extract,
        tag: cfg.tag,
    }))
}

impl ExecInput {
    /// One run of the command: its output is read to the end on a thread of its own, so a
    /// shutdown can stop the child (SIGTERM, then SIGKILL) while a read is blocked.
    fn run_once(&self, reader: &RecordReader, shutdown: &Shutdown) {
        let (child, pipes) = match child_process::spawn(
            &self.command,
            &[],
            Options {
                write: false,
                read: true,
                stderr: self.stderr,
            },
        ) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(
                    "exec failed to run or shutdown child process error=\"{e}\" command=\"{}\"",
                    self.command
                );
                return;
            }
        };
        let Some(mut stdout) = pipes.stdout else {
            return;
        };
        let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(1);
        let r = reader.clone();
        let spawned = std::thread::Builder::new()
            .name("in_exec_reader".into())
            .spawn(move || {
                r.read(&mut stdout);
                let _ = done_tx.send(());
            });
        if let Err(e) = spawned {
            tracing::error!("exec could not start its reader: {e}");
            child.terminate(child_process::KILL_TIMEOUT);
            return;
        }
        loop {
            match done_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(()) | Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            }
            if shutdown.is_set() {
                child.terminate(child_process::KILL_TIMEOUT);
                // What the child wrote before it stopped is still read and emitted.
                let _ = done_rx.recv_timeout(child_process::KILL_TIMEOUT);
                return;
            }
        }
        let status = match child.wait_timeout(child_process::KILL_TIMEOUT) {
            Some(s) => Some(s),
            None => child.terminate(child_process::KILL_TIMEOUT),
        };
        if let Some(s) = status.filter(|s| !s.success()) {
            tracing::warn!(
                "exec: command exits with error code {} command=\"{}\"",
                child_process::describe(&s),
                self.command
            );
        }
    }
}

impl Input for ExecInput {
    fn run(self: Box<Self>, ctx: InputContext) -> anyhow::Result<()> {
        let reader = RecordReader {
            parser: self.parser.clone(),
            extract: self.extract.clone(),
            tag: self.tag.clone(),
            add_prefix: None,
            router: ctx.router.clone(),
            errors: ctx.errors.clone(),
            plugin: "exec",
        };
        match self.run_interval {
            None => {
                self.run_once(&reader, &ctx.shutdown);
                while !ctx.shutdown.wait_timeout(Duration::from_secs(3600)) {}
            }
            Some(iv) => {
                while !ctx.shutdown.wait_timeout(iv) {
                    self.run_once(&reader, &ctx.shutdown);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::{Emitter, ErrorSink};
    use crate::test_util::directive;

    fn run(conf: &str) -> Vec<(String, String)> {
        let elem = directive(conf);
        let input = create(&elem, &PluginContext::for_tests()).unwrap_or_else(|e| panic!("{e}"));
        let out = Emitter::collector("@ROOT");
        let shutdown = Shutdown::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let ctx = InputContext {
            router: out.clone(),
            errors: ErrorSink::log_only(),
            shutdown: shutdown.clone(),
            runtime: rt.handle().clone(),
        };
        let h = std::thread::spawn(move || input.run(ctx));
        // The command runs once at start; wait (bounded) for its events.
        for _ in 0..200 {
            if out.collected().len() >= 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        shutdown.trigger();
        h.join().unwrap().unwrap();
        out.collected()
            .into_iter()
            .flat_map(|(tag, es)| {
                es.events
                    .into_iter()
                    .map(move |e| {
                        (
                            tag.clone(),
                            String::from_utf8(crate::json::encode::record_to_vec(&e.record))
                                .unwrap(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn json_command_case_414() {
        let got = run(
            "<source>\n@type exec\ncommand printf '{\"time\":1,\"a\":1}{\"a\":2}\\nbad\\n{\"a\":3}'\ntag t.json\n<parse>\n@type json\n</parse>\n</source>",
        );
        assert_eq!(
            got,
            vec![
                ("t.json".to_string(), r#"{"time":1,"a":1}"#.to_string()),
                ("t.json".to_string(), r#"{"a":2}"#.to_string()),
            ]
        );
    }

    #[test]
    fn tsv_with_tag_key() {
        let got = run(
            "<source>\n@type exec\ncommand printf 'x.y\\t1\\nz\\t2\\n'\n<parse>\nkeys tag,v\n</parse>\n<extract>\ntag_key tag\n</extract>\n</source>",
        );
        assert_eq!(
            got,
            vec![
                ("x.y".to_string(), r#"{"v":"1"}"#.to_string()),
                ("z".to_string(), r#"{"v":"2"}"#.to_string()),
            ]
        );
    }

    #[test]
    fn tag_is_required() {
        let e = create(
            &directive("<source>\n@type exec\ncommand true\n<parse>\nkeys a\n</parse>\n</source>"),
            &PluginContext::for_tests(),
        )
        .err()
        .unwrap();
        assert!(e
            .message
            .contains("'tag' or 'tag_key' option is required on exec input"));
    }
}
