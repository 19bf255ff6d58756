//! `@type exec` (output): each buffer chunk is written to a temporary file (`<format>`, default
//! tsv, after `<inject>`, whose time defaults to an ISO 8601 string in UTC) and `command` runs
//! with the file's path as its last argument. A command that fails or outlives
//! `command_timeout` leaves the chunk to be retried. The child's stdout and stderr go to
//! ferrentd's stdout, as Fluentd's `mode: []`, `stderr: :connect`.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;

use super::inject::Inject;
use super::out_stdout::format_element;
use super::{Formatter, Output, PluginContext};
use crate::buffer::{BufferDefaults, BufferedOutput, Chunk, WriteError};
use crate::child_process::{self, Options, Stderr};
use crate::config_parser::types::Time;
use crate::config_parser::{ConfigError, Element, Nested};
use crate::event::EventStream;

#[derive(Deserialize)]
#[allow(dead_code)]
struct ExecOutputConf {
    command: String,
    /// Default 270 s.
    command_timeout: Option<Time>,
    format: Option<Nested>,
    inject: Option<Nested>,
    buffer: Option<Nested>,
    secondary: Option<Nested>,
}

pub struct ExecOutput {
    command: String,
    timeout: std::time::Duration,
    formatter: Box<dyn Formatter>,
    /// Text formats end each event with exactly one newline (Fluentd's `chomp + "\n"`).
    per_line: bool,
    inject: Option<Inject>,
}

/// `<inject>` defaults of out_exec: time as a string, in UTC.
const INJECT_DEFAULTS: &[(&str, Option<&str>)] =
    &[("time_type", Some("string")), ("localtime", Some("false"))];

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Output>, ConfigError> {
    let c: ExecOutputConf = ctx.configure(elem, "exec")?;
    let inject_section = elem.child("inject").map(|i| {
        let mut d = INJECT_DEFAULTS.to_vec();
        if i.has("utc") || i.has("timezone") {
            d.pop();
        }
        super::parser::with_defaults(i, &d)
    });
    let inject = Inject::from_section(inject_section.as_ref(), ctx)?;
    let format = format_element(elem, "tsv");
    let per_line = format.plugin_type() != Some("msgpack");
    let formatter = super::new_formatter(&format, ctx)?;
    let out = ExecOutput {
        command: c.command,
        timeout: c
            .command_timeout
            .map(|t| t.as_duration())
            .unwrap_or(std::time::Duration::from_secs(270)),
        formatter,
        per_line,
        inject,
    };
    crate::buffer::build(elem, ctx, out, BufferDefaults::default())
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// A new private file in the temporary directory (Ruby's `Tempfile.new("fluent-plugin-exec-")`).
fn temp_file() -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::env::temp_dir();
    loop {
        let name = format!(
            "fluent-plugin-exec-{}-{}-{:08x}",
            std::process::id(),
            TMP_SEQ.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        let p = dir.join(name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)
        {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Formats one event as Fluentd's exec plugins do: text formats end with exactly one newline.
pub fn format_event(
    formatter: &dyn Formatter,
    per_line: bool,
    tag: &str,
    time: crate::event::EventTime,
    record: &crate::event::Record,
    out: &mut Vec<u8>,
) {
    let start = out.len();
    formatter.format(tag, time, record, out);
    if per_line {
        if out.len() > start && out.last() == Some(&b'\n') {
            out.pop();
        }
        out.push(b'\n');
    }
}

impl BufferedOutput for ExecOutput {
    fn formatted_to_msgpack(&self) -> bool {
        false
    }

    fn format(&self, tag: &str, es: &EventStream, out: &mut Vec<u8>) {
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

    fn write(&self, chunk: &Chunk) -> Result<(), WriteError> {
        let (path, mut f) = temp_file().map_err(|e| WriteError::Retriable(e.to_string()))?;
        let res = (|| {
            f.write_all(&chunk.data)
                .and_then(|_| f.flush())
                .map_err(|e| WriteError::Retriable(e.to_string()))?;
            drop(f);
            let path_s = path.to_string_lossy().into_owned();
            let prog = format!("{} {}", self.command, path_s);
            let (child, _) = child_process::spawn(
                &self.command,
                &[&path_s],
                Options {
                    write: false,
                    read: false,
                    stderr: Stderr::Connect,
                },
            )
            .map_err(|e| WriteError::Retriable(format!("{e} prog=\"{prog}\"")))?;
            let status = match child.wait_timeout(self.timeout) {
                Some(s) => s,
                None => {
                    child.terminate(child_process::KILL_TIMEOUT);
                    tracing::error!(
                        "command unexpectedly exits without exit status prog=\"{prog}\""
                    );
                    return Err(WriteError::Retriable(format!(
                        "command timed out after {:?}",
                        self.timeout
                    )));
                }
            };
            if status.success() {
                Ok(())
            } else {
                use std::os::unix::process::ExitStatusExt;
                tracing::error!(
                    "command exits with error code prog=\"{prog}\" status={} signal={}",
                    status.code().map_or("nil".to_string(), |c| c.to_string()),
                    status.signal().map_or("nil".to_string(), |c| c.to_string())
                );
                Err(WriteError::Retriable(format!(
                    "command exits with error code {}",
                    child_process::describe(&status)
                )))
            }
        })();
        let _ = std::fs::remove_file(&path);
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventTime, Value};
    use crate::test_util::{directive, rec};

    #[test]
    fn tsv_with_iso_utc_time_case_415() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("got.tsv");
        let conf = "<match app.**>\n@type exec\ncommand cp\n<format>\n@type tsv\nkeys tg,t,a,b\n</format>\n<inject>\ntag_key tg\ntime_key t\n</inject>\n</match>";
        let elem = directive(conf);
        let ctx = PluginContext::for_tests();
        let inject_section =
            super::super::parser::with_defaults(elem.child("inject").unwrap(), INJECT_DEFAULTS);
        let out = ExecOutput {
            command: format!("sh -c 'cp \"$0\" {}'", dest.display()),
            timeout: std::time::Duration::from_secs(30),
            formatter: super::super::new_formatter(&format_element(&elem, "tsv"), &ctx).unwrap(),
            per_line: true,
            inject: Inject::from_section(Some(&inject_section), &ctx).unwrap(),
        };
        let mut es = EventStream::new();
        es.push(
            EventTime::new(1700000000, 0),
            rec(vec![("a", Value::str("x")), ("b", Value::Int(1))]),
        );
        es.push(
            EventTime::new(1700000001, 0),
            rec(vec![("a", Value::str("tab\there")), ("b", Value::Nil)]),
        );
        let mut data = Vec::new();
        out.format("app.x", &es, &mut data);
        let chunk = Chunk {
            unique_id: [0; 16],
            metadata: Default::default(),
            records: 2,
            created: 0.0,
            data,
        };
        out.write(&chunk).unwrap();
        assert_eq!(
            std::fs::read_to_string(&dest).unwrap(),
            "app.x\t2023-11-14T22:13:20Z\tx\t1\napp.x\t2023-11-14T22:13:21Z\ttab\there\t\n"
        );
        // A failing command leaves the chunk for a retry.
        let failing = ExecOutput {
            command: "false".into(),
            ..out
        };
        assert!(matches!(
            failing.write(&chunk),
            Err(WriteError::Retriable(_))
        ));
    }
}
