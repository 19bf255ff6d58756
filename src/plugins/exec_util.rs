//! What in_exec and out_exec_filter share: reading a child's stdout through a `<parse>` parser
//! and turning each record into an event (tag and time from `<extract>`, else `tag` and now),
//! as their `run` / `on_record` in Fluentd. Process handling is `crate::child_process`.

use std::sync::Arc;

use super::extract::Extract;
use super::Parser;
use crate::config_parser::{ConfigError, Element, Span};
use crate::event::{EventStream, EventTime, Record};
use crate::router::{Emitter, ErrorSink};

/// Turns a child's output into events.
#[derive(Clone)]
pub struct RecordReader {
    pub parser: Arc<dyn Parser>,
    pub extract: Option<Arc<Extract>>,
    /// `tag`, used when `<extract> tag_key` gives none.
    pub tag: Option<String>,
    /// out_exec_filter's `add_prefix` (joined with a dot) for extracted tags.
    pub add_prefix: Option<String>,
    pub router: Emitter,
    pub errors: ErrorSink,
    /// `exec` or `exec_filter`, for log lines.
    pub plugin: &'static str,
}

impl RecordReader {
    /// Reads `r` to its end (or to the first broken value of a streaming parser).
    pub fn read(&self, r: &mut dyn std::io::Read) {
        let plugin = self.plugin;
        let res = super::parser::parse_stream(
            &*self.parser,
            r,
            &mut |t, rec| self.on_record(t, rec),
            &mut |line, e| {
                tracing::warn!(
                    "{plugin}: {e}: {:?}",
                    String::from_utf8_lossy(line).into_owned()
                )
            },
        );
        if let Err(e) = res {
            tracing::error!("{plugin}: failed to parse the output of the command: {e}");
        }
    }

    /// Fluentd's `on_record`.
    pub fn on_record(&self, time: Option<EventTime>, mut record: Record) {
        let mut tag = self.extract.as_ref().and_then(|x| x.tag(&mut record));
        if let (Some(t), Some(p)) = (&tag, &self.add_prefix) {
            tag = Some(format!("{p}.{t}"));
        }
        let Some(tag) = tag.or_else(|| self.tag.clone()) else {
            tracing::error!(
                "{} failed to emit error=\"no tag\" record={}",
                self.plugin,
                String::from_utf8_lossy(&crate::json::encode::record_to_vec(&record))
            );
            return;
        };
        let time = match time {
            Some(t) => t,
            None => match self.extract.as_ref().map(|x| x.time(&mut record)) {
                Some(Ok(Some(t))) => t,
                Some(Err(e)) => {
                    tracing::error!("{} failed to emit tag=\"{tag}\" error=\"{e}\"", self.plugin);
                    self.errors
                        .emit_error_event(&tag, EventTime::now(), record, &e);
                    return;
                }
                _ => EventTime::now(),
            },
        };
        self.router.emit(&tag, EventStream::one(time, record));
    }
}

/// A `<parse>` or `<format>` section with the owner's defaults applied, or a new one of
/// `default_type` when the owner has none.
pub fn section_with_defaults(
    owner: &Element,
    name: &str,
    default_type: &str,
    defaults: &[(&str, Option<&str>)],
) -> Element {
    let base = match owner.child(name) {
        Some(e) => e.clone(),
        None => {
            let span: Span = owner.span.clone();
            Element::new(name, "", span)
        }
    };
    let mut all: Vec<(&str, Option<&str>)> = vec![("@type", Some(default_type))];
    all.extend_from_slice(defaults);
    // `type` (v0) counts as `@type`.
    if base.has("type") {
        all.remove(0);
    }
    super::parser::with_defaults(&base, &all)
}

/// Fluentd's `child_respawn`: none/0 → 0, inf/-1 → -1 (forever), N → N times.
pub fn respawns(v: &str, elem: &Element) -> Result<i64, ConfigError> {
    match v {
        "none" | "0" => Ok(0),
        "inf" | "-1" => Ok(-1),
        s if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s
            .parse::<i64>()
            .map_err(|_| elem.error("child_respawn option argument invalid: none(or 0), inf(or -1) or positive number")),
        _ => Err(elem.error(
            "child_respawn option argument invalid: none(or 0), inf(or -1) or positive number",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::PluginContext;
    use crate::test_util::{directive, section};

    fn reader(conf: &str, tag: Option<&str>) -> (RecordReader, Emitter) {
        let owner = directive(conf);
        let ctx = PluginContext::for_tests();
        let parse = section_with_defaults(
            &owner,
            "parse",
            "tsv",
            &[
                ("time_key", None),
                ("estimate_current_event", Some("false")),
            ],
        );
        let parser: Arc<dyn Parser> = Arc::from(crate::plugins::new_parser(&parse, &ctx).unwrap());
        let extract = Extract::from_section(owner.child("extract"), &ctx)
            .unwrap()
            .map(Arc::new);
        let out = Emitter::collector("@ROOT");
        (
            RecordReader {
                parser,
                extract,
                tag: tag.map(str::to_string),
                add_prefix: None,
                router: out.clone(),
                errors: ErrorSink::log_only(),
                plugin: "exec",
            },
            out,
        )
    }

    #[test]
    fn tsv_lines_with_extracted_tag_and_time() {
        let (r, out) = reader(
            "<source>\n@type exec\n<parse>\nkeys tg,t,v\n</parse>\n<extract>\ntag_key tg\ntime_key t\n</extract>\n</source>",
            Some("fallback"),
        );
        r.read(&mut "a.b\t1700000000.5\tx\r\n\t\ty\n".as_bytes());
        let got = out.collected();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "a.b");
        assert_eq!(
            got[0].1.events[0].time,
            EventTime::new(1700000000, 500_000_000)
        );
        assert_eq!(
            crate::json::encode::record_to_vec(&got[0].1.events[0].record),
            br#"{"v":"x"}"#
        );
        // An empty tag value is still a tag (Ruby's `to_s`); no time value: now.
        assert_eq!(got[1].0, "");
        assert_eq!(
            crate::json::encode::record_to_vec(&got[1].1.events[0].record),
            br#"{"v":"y"}"#
        );
    }

    #[test]
    fn respawn_values() {
        let e = section("match", &[]);
        assert_eq!(respawns("none", &e).unwrap(), 0);
        assert_eq!(respawns("inf", &e).unwrap(), -1);
        assert_eq!(respawns("-1", &e).unwrap(), -1);
        assert_eq!(respawns("3", &e).unwrap(), 3);
        assert!(respawns("many", &e).is_err());
    }
}
