//! `@type parser` (filter): parses one field of the record with a `<parse>` parser.
//!
//! Follows Fluentd's `filter_with_time`: the event time becomes the parsed time (a parser
//! without a time in the data gives "now" through `estimate_current_event`; a parser that gives
//! no time at all keeps the original), unless `reserve_time`. A missing field or unparsable data
//! goes to `@ERROR` (when `emit_invalid_record_to_error`) and the record is dropped, or passed
//! on unchanged with `reserve_data`. Only the first of several parsed records is kept.

use serde::Deserialize;

use super::filter_grep::{ruby_to_s, scrub};
use super::{Filter, Parser, PluginContext};
use crate::config_parser::{ConfigError, Element, Nested};
use crate::event::{EventStream, EventTime, Record, Value};
use crate::record_accessor::RecordAccessor;
use crate::router::ErrorSink;

fn default_true() -> bool {
    true
}

#[derive(Deserialize)]
struct ParserFilterConf {
    key_name: String,
    #[serde(default)]
    reserve_data: bool,
    #[serde(default)]
    reserve_time: bool,
    #[serde(default)]
    remove_key_name_field: bool,
    inject_key_prefix: Option<String>,
    #[serde(default)]
    replace_invalid_sequence: bool,
    hash_value_field: Option<String>,
    #[serde(default = "default_true")]
    emit_invalid_record_to_error: bool,
    /// Built with `new_parser`.
    #[allow(dead_code)]
    parse: Option<Nested>,
}

/// What Fluentd's parsers do with a field that is not a string (an Integer or a Hash).
enum NonString {
    /// The json parser gives up quietly: handled like unparsable data.
    Mismatch,
    /// The none parser stores the value itself under its message key.
    AsMessage(Vec<u8>),
    /// The others raise on the non-string (`parse failed ...`): the record is dropped.
    Fail,
}

pub struct ParserFilter {
    key_name: String,
    accessor: RecordAccessor,
    reserve_data: bool,
    reserve_time: bool,
    remove_key_name_field: bool,
    inject_key_prefix: Option<Vec<u8>>,
    replace_invalid_sequence: bool,
    hash_value_field: Option<Vec<u8>>,
    emit_invalid_record_to_error: bool,
    non_string: NonString,
    parser: Box<dyn Parser>,
    errors: ErrorSink,
}

fn ruby_class(v: &Value) -> &'static str {
    match v {
        Value::Bool(true) => "true",
        Value::Bool(false) => "false",
        Value::Int(_) | Value::UInt(_) | Value::BigInt(_) => "Integer",
        Value::Float(_) => "Float",
        Value::Array(_) => "Array",
        Value::Map(_) => "Hash",
        _ => "Object",
    }
}

impl ParserFilter {
    fn configure(
        elem: &Element,
        ctx: &PluginContext,
        parser: Option<Box<dyn Parser>>,
    ) -> Result<Self, ConfigError> {
        let conf: ParserFilterConf = ctx.configure(elem, "parser")?;
        let accessor =
            RecordAccessor::new(&conf.key_name).map_err(|m| match elem.param("key_name") {
                Some(p) => ConfigError::at(m, &p.span),
                None => elem.error(m),
            })?;
        let parse_elem = elem.child("parse");
        let parser = match (parser, parse_elem) {
            (Some(p), _) => p,
            (None, Some(pe)) => super::new_parser(pe, ctx)?,
            (None, None) => return Err(elem.error("<parse> section is required")),
        };
        let non_string = match parse_elem.and_then(|p| p.plugin_type()) {
            Some("json") => NonString::Mismatch,
            Some("none") => NonString::AsMessage(
                parse_elem
                    .and_then(|p| p.get("message_key"))
                    .unwrap_or("message")
                    .as_bytes()
                    .to_vec(),
            ),
            _ => NonString::Fail,
        };
        Ok(ParserFilter {
            key_name: conf.key_name,
            accessor,
            reserve_data: conf.reserve_data,
            reserve_time: conf.reserve_time,
            remove_key_name_field: conf.remove_key_name_field,
            inject_key_prefix: conf.inject_key_prefix.map(String::into_bytes),
            replace_invalid_sequence: conf.replace_invalid_sequence,
            hash_value_field: conf.hash_value_field.map(String::into_bytes),
            emit_invalid_record_to_error: conf.emit_invalid_record_to_error,
            non_string,
            parser,
            errors: ctx.errors.clone(),
        })
    }

    /// Fluentd's `handle_parsed`: prefix, nest, then merge into the original when reserving.
    fn handle_parsed(&self, record: Option<Record>, values: Record) -> Record {
        let values = match &self.inject_key_prefix {
            Some(prefix) => {
                // Prefixing keeps distinct keys distinct: no duplicate check needed.
                let mut r = Record::with_capacity(values.len());
                for (k, v) in values {
                    let mut nk = Vec::with_capacity(prefix.len() + k.len());
                    nk.extend_from_slice(prefix);
                    nk.extend_from_slice(&k);
                    r.push_unchecked(nk, v);
                }
                r
            }
            None => values,
        };
        let values = match &self.hash_value_field {
            Some(field) => {
                let mut r = Record::with_capacity(1);
                r.insert(field.clone(), Value::Map(values));
                r
            }
            None => values,
        };
        match record {
            Some(orig) if self.reserve_data && !orig.is_empty() => {
                let mut merged = orig;
                merged.merge(values);
                merged
            }
            _ => values,
        }
    }

    fn error(&self, tag: &str, time: EventTime, record: Record, message: &str) {
        if self.emit_invalid_record_to_error {
            self.errors.emit_error_event(tag, time, record, message);
        }
    }

    /// One event; `None` drops it.
    fn filter_one(
        &self,
        tag: &str,
        time: EventTime,
        mut record: Record,
    ) -> Option<(EventTime, Record)> {
        let mut results: Vec<(Option<EventTime>, Record)> = Vec::new();
        // Set when the data did not parse: the raw value as Ruby prints it.
        let mut mismatch: Option<Vec<u8>> = None;
        match self.accessor.dig(&record) {
            Err(e) => {
                // Fluentd's accessor raises; the filter turns that into an error event.
                let msg = e.to_string();
                self.error(tag, time, record, &msg);
                return None;
            }
            Ok(None) | Ok(Some(Value::Nil)) => {
                let msg = format!("{} does not exist", self.key_name);
                if !self.reserve_data {
                    self.error(tag, time, record, &msg);
                    return None;
                }
                if self.emit_invalid_record_to_error {
                    self.errors
                        .emit_error_event(tag, time, record.clone(), &msg);
                }
                let r = self.handle_parsed(Some(record), Record::new());
                return Some((time, r));
            }
            Ok(Some(Value::Str(raw))) | Ok(Some(Value::Bin(raw))) => {
                let text = std::borrow::Cow::Borrowed(raw.as_slice());
                let text = if self.replace_invalid_sequence {
                    scrub(text)
                } else {
                    text
                };
                let parsed = self.parser.parse(&text, &mut |t, r| results.push((t, r)));
                if parsed.is_err() {
                    mismatch = Some(raw.clone());
                }
            }
            Ok(Some(other)) => match &self.non_string {
                NonString::Mismatch => mismatch = Some(ruby_to_s(Some(other)).into_owned()),
                NonString::AsMessage(key) => {
                    let mut r = Record::with_capacity(1);
                    r.insert(key.clone(), other.clone());
                    results.push((Some(EventTime::now()), r));
                }
                NonString::Fail => {
                    let msg = format!(
                        "parse failed no implicit conversion of {} into String",
                        ruby_class(other)
                    );
                    self.error(tag, time, record, &msg);
                    return None;
                }
            },
        }

        let mut results = results.into_iter();
        let first = results.next();
        if first.is_some() && self.remove_key_name_field {
            self.accessor.delete(&mut record);
        }
        let event_time = |t: Option<EventTime>| {
            if self.reserve_time {
                time
            } else {
                t.unwrap_or(time)
            }
        };
        for (t, values) in results {
            if self.emit_invalid_record_to_error {
                let raw = self.raw_text(&record);
                let r = self.handle_parsed(Some(record.clone()), values);
                self.errors.emit_error_event(
                    tag,
                    event_time(t),
                    r,
                    &format!(
                        "Could not emit the event. The parser returned multiple results, but currently filter_parser plugin only returns the first parsed result. Raw data: '{}'",
                        String::from_utf8_lossy(&raw)
                    ),
                );
            }
        }
        if let Some(raw) = mismatch {
            let msg = format!(
                "pattern not matched with data '{}'",
                String::from_utf8_lossy(&raw)
            );
            if first.is_some() || !self.reserve_data {
                self.error(tag, time, record.clone(), &msg);
            } else {
                if self.emit_invalid_record_to_error {
                    self.errors
                        .emit_error_event(tag, time, record.clone(), &msg);
                }
                let r = self.handle_parsed(Some(record), Record::new());
                return Some((time, r));
            }
        }
        let (t, values) = first?;
        let r = if self.reserve_data {
            self.handle_parsed(Some(record), values)
        } else {
            self.handle_parsed(None, values)
        };
        Some((event_time(t), r))
    }

    fn raw_text(&self, record: &Record) -> Vec<u8> {
        ruby_to_s(self.accessor.get(record)).into_owned()
    }
}

impl Filter for ParserFilter {
    fn filter_stream(&self, tag: &str, es: EventStream) -> EventStream {
        let mut out = EventStream::with_capacity(es.len());
        for ev in es {
            if let Some((t, r)) = self.filter_one(tag, ev.time, ev.record) {
                out.push(t, r);
            }
        }
        out
    }
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Filter>, ConfigError> {
    Ok(Box::new(ParserFilter::configure(elem, ctx, None)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::filter_record_transformer::record_to_json as to_json;
    use crate::plugins::ParserError;
    use crate::router::Emitter;
    use crate::util::value_from_json as json_to_value;

    /// Stands for "now" in the tests: what a parser gives when the data has no time.
    const NOW: EventTime = EventTime::new(999, 0);

    /// A JSON-object parser for the tests: `time` (integer seconds or RFC 3339) becomes the
    /// event time and is removed; anything but an object is "pattern not matched".
    struct TestJson;
    impl Parser for TestJson {
        fn parse(
            &self,
            text: &[u8],
            emit: &mut dyn FnMut(Option<EventTime>, Record),
        ) -> Result<(), ParserError> {
            let v: serde_json::Value = serde_json::from_slice(text)
                .map_err(|_| ParserError("pattern not matched".into()))?;
            let Value::Map(mut r) = json_to_value(v) else {
                return Err(ParserError("pattern not matched".into()));
            };
            let t = match r.remove("time") {
                Some(Value::Int(i)) => EventTime::new(i, 0),
                Some(Value::Str(s)) => {
                    let s = String::from_utf8_lossy(&s).into_owned();
                    chrono::DateTime::parse_from_rfc3339(&s)
                        .map(|d| EventTime::new(d.timestamp(), d.timestamp_subsec_nanos()))
                        .map_err(|_| ParserError("invalid time".into()))?
                }
                _ => NOW,
            };
            emit(Some(t), r);
            Ok(())
        }
    }

    /// `k=v` pairs; `multi` emits two records; `notime` emits without any time.
    struct TestKv;
    impl Parser for TestKv {
        fn parse(
            &self,
            text: &[u8],
            emit: &mut dyn FnMut(Option<EventTime>, Record),
        ) -> Result<(), ParserError> {
            let s = String::from_utf8_lossy(text);
            if s == "multi" {
                let mut a = Record::new();
                a.insert("n", Value::Int(1));
                let mut b = Record::new();
                b.insert("n", Value::Int(2));
                emit(Some(NOW), a);
                emit(Some(NOW), b);
                return Ok(());
            }
            let mut r = Record::new();
            for pair in s.split(' ') {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| ParserError("pattern not matched".into()))?;
                r.insert(k, Value::from(v));
            }
            emit(
                if s.contains("notime") {
                    None
                } else {
                    Some(NOW)
                },
                r,
            );
            Ok(())
        }
    }

    fn elem(conf: &str, parse_type: &str) -> Element {
        let text = format!(
            "<filter t>\n  @type parser\n{conf}\n  <parse>\n    @type {parse_type}\n  </parse>\n</filter>\n"
        );
        let root = crate::config_parser::parse_str(
            &text,
            std::path::Path::new("fluent.conf"),
            &Default::default(),
        )
        .unwrap();
        root.elements.into_iter().next().unwrap()
    }

    struct Run {
        out: Vec<(EventTime, String)>,
        errors: Vec<String>,
    }

    fn run_with(conf: &str, parse_type: &str, parser: Box<dyn Parser>, input: &[&str]) -> Run {
        let err = Emitter::collector("@ERROR");
        let mut ctx = PluginContext::for_tests();
        ctx.errors = ErrorSink::to_label(err.clone());
        let f = match ParserFilter::configure(&elem(conf, parse_type), &ctx, Some(parser)) {
            Ok(f) => f,
            Err(e) => panic!("{e}"),
        };
        let mut es = EventStream::new();
        for line in input {
            match json_to_value(serde_json::from_str(line).unwrap()) {
                Value::Map(m) => es.push(EventTime::new(1_700_000_000, 0), m),
                _ => panic!("input is not an object"),
            }
        }
        let out = f
            .filter_stream("t", es)
            .into_iter()
            .map(|e| (e.time, to_json(&e.record)))
            .collect();
        let errors = err
            .collected()
            .into_iter()
            .flat_map(|(_, es)| es.events.into_iter().map(|e| to_json(&e.record)))
            .collect();
        Run { out, errors }
    }

    fn run(conf: &str, input: &[&str]) -> Run {
        run_with(conf, "json", Box::new(TestJson), input)
    }

    fn records(r: &Run) -> Vec<&str> {
        r.out.iter().map(|(_, s)| s.as_str()).collect()
    }

    const INPUT: &[&str] = &[
        // in_tail's json parser has already taken `time` out of the first line
        r#"{"log": "{\"inner\":1,\"s\":\"x\"}", "keep": "k"}"#,
        r#"{"log": "not json", "keep": "k2"}"#,
        r#"{"other": 1}"#,
    ];

    #[test]
    fn case_159_basic_replaces_the_record_and_drops_failures() {
        let r = run("key_name log", INPUT);
        assert_eq!(records(&r), vec![r#"{"inner":1,"s":"x"}"#]);
        assert_eq!(
            r.errors,
            vec![r#"{"log":"not json","keep":"k2"}"#, r#"{"other":1}"#]
        );
    }

    #[test]
    fn case_160_reserve_data() {
        let r = run("key_name log\nreserve_data true", INPUT);
        assert_eq!(
            records(&r),
            vec![
                r#"{"log":"{\"inner\":1,\"s\":\"x\"}","keep":"k","inner":1,"s":"x"}"#,
                r#"{"log":"not json","keep":"k2"}"#,
                r#"{"other":1}"#
            ]
        );
        assert_eq!(r.errors.len(), 2);
    }

    #[test]
    fn case_161_remove_key_name_field_on_success_only() {
        let r = run(
            "key_name log\nreserve_data true\nremove_key_name_field true",
            INPUT,
        );
        assert_eq!(
            records(&r),
            vec![
                r#"{"keep":"k","inner":1,"s":"x"}"#,
                r#"{"log":"not json","keep":"k2"}"#,
                r#"{"other":1}"#
            ]
        );
    }

    #[test]
    fn case_162_inject_key_prefix() {
        let r = run(
            "key_name log\nreserve_data true\ninject_key_prefix p_",
            INPUT,
        );
        assert_eq!(
            records(&r),
            vec![
                r#"{"log":"{\"inner\":1,\"s\":\"x\"}","keep":"k","p_inner":1,"p_s":"x"}"#,
                r#"{"log":"not json","keep":"k2"}"#,
                r#"{"other":1}"#
            ]
        );
    }

    #[test]
    fn case_163_hash_value_field() {
        let r = run(
            "key_name log\nreserve_data true\nhash_value_field parsed",
            INPUT,
        );
        assert_eq!(
            records(&r),
            vec![
                r#"{"log":"{\"inner\":1,\"s\":\"x\"}","keep":"k","parsed":{"inner":1,"s":"x"}}"#,
                r#"{"log":"not json","keep":"k2","parsed":{}}"#,
                r#"{"other":1,"parsed":{}}"#
            ]
        );
    }

    #[test]
    fn case_164_reserve_time_keeps_the_original_time() {
        let input = [r#"{"log": "{\"time\":\"2020-01-01T00:00:00Z\",\"a\":1}"}"#];
        let r = run("key_name log\nreserve_time true", &input);
        assert_eq!(
            r.out,
            vec![(EventTime::new(1_700_000_000, 0), r#"{"a":1}"#.to_string())]
        );
    }

    #[test]
    fn case_165_time_from_the_parsed_record() {
        let input = [r#"{"log": "{\"time\":\"2020-01-01T00:00:00Z\",\"a\":1}"}"#];
        let r = run("key_name log", &input);
        assert_eq!(
            r.out,
            vec![(EventTime::new(1_577_836_800, 0), r#"{"a":1}"#.to_string())]
        );
    }

    #[test]
    fn no_time_in_the_data_gives_the_parsers_now_and_no_time_at_all_keeps_the_original() {
        let r = run_with("key_name m", "kv", Box::new(TestKv), &[r#"{"m": "a=1"}"#]);
        assert_eq!(r.out, vec![(NOW, r#"{"a":"1"}"#.to_string())]);
        let r = run_with(
            "key_name m",
            "kv",
            Box::new(TestKv),
            &[r#"{"m": "notime=1"}"#],
        );
        assert_eq!(
            r.out,
            vec![(
                EventTime::new(1_700_000_000, 0),
                r#"{"notime":"1"}"#.to_string()
            )]
        );
    }

    #[test]
    fn case_166_invalid_records_pass_through_without_error_events() {
        let r = run(
            "key_name log\nreserve_data true\nemit_invalid_record_to_error false",
            INPUT,
        );
        assert_eq!(
            records(&r),
            vec![
                r#"{"log":"{\"inner\":1,\"s\":\"x\"}","keep":"k","inner":1,"s":"x"}"#,
                r#"{"log":"not json","keep":"k2"}"#,
                r#"{"other":1}"#
            ]
        );
        assert!(r.errors.is_empty());
    }

    #[test]
    fn case_167_nested_key_name() {
        let r = run_with(
            "key_name $.k.line",
            "kv",
            Box::new(TestKv),
            &[
                r#"{"k": {"line": "user=bob"}}"#,
                r#"{"k": {"line": "bad"}}"#,
            ],
        );
        assert_eq!(records(&r), vec![r#"{"user":"bob"}"#]);
        assert_eq!(r.errors, vec![r#"{"k":{"line":"bad"}}"#]);
    }

    #[test]
    fn case_168_non_string_values_with_json_pass_through() {
        let r = run(
            "key_name log\nreserve_data true",
            &[r#"{"log": 12, "i": 1}"#, r#"{"log": {"a": 1}, "i": 2}"#],
        );
        assert_eq!(
            records(&r),
            vec![r#"{"log":12,"i":1}"#, r#"{"log":{"a":1},"i":2}"#]
        );
    }

    #[test]
    fn non_string_values_with_other_parsers_are_dropped() {
        let r = run_with(
            "key_name log\nreserve_data true",
            "kv",
            Box::new(TestKv),
            &[r#"{"log": 12, "i": 1}"#],
        );
        assert!(r.out.is_empty());
        assert_eq!(r.errors, vec![r#"{"log":12,"i":1}"#]);
    }

    #[test]
    fn case_169_kata_logfmt_prefix_without_reserve() {
        let r = run_with(
            "key_name message\nreserve_data false\ninject_key_prefix kata_",
            "kv",
            Box::new(TestKv),
            &[r#"{"message": "level=info msg=hi"}"#],
        );
        assert_eq!(
            records(&r),
            vec![r#"{"kata_level":"info","kata_msg":"hi"}"#]
        );
    }

    #[test]
    fn only_the_first_of_several_results_is_kept() {
        let r = run_with("key_name m", "kv", Box::new(TestKv), &[r#"{"m": "multi"}"#]);
        assert_eq!(records(&r), vec![r#"{"n":1}"#]);
        assert_eq!(r.errors, vec![r#"{"n":2}"#]);
    }

    #[test]
    fn replace_invalid_sequence_scrubs_before_parsing() {
        let err = Emitter::collector("@ERROR");
        let mut ctx = PluginContext::for_tests();
        ctx.errors = ErrorSink::to_label(err.clone());
        let f = ParserFilter::configure(
            &elem("key_name m\nreplace_invalid_sequence true", "kv"),
            &ctx,
            Some(Box::new(TestKv)),
        )
        .unwrap();
        let mut r = Record::new();
        r.insert("m", Value::Str(b"a=x\xffy".to_vec()));
        let out = f.filter_stream("t", EventStream::one(EventTime::new(1, 0), r));
        assert_eq!(out.events[0].record.get("a"), Some(&Value::from("x?y")));
    }

    #[test]
    fn missing_parse_section_and_bad_key_name_are_config_errors() {
        let text = "<filter t>\n  @type parser\n  key_name m\n</filter>\n";
        let root = crate::config_parser::parse_str(
            text,
            std::path::Path::new("fluent.conf"),
            &Default::default(),
        )
        .unwrap();
        let e = match create(&root.elements[0], &PluginContext::for_tests()) {
            Err(e) => e,
            Ok(_) => panic!("accepted"),
        };
        assert_eq!(e.message, "<parse> section is required");
        let e = match ParserFilter::configure(
            &elem("key_name $.a[1", "kv"),
            &PluginContext::for_tests(),
            Some(Box::new(TestKv)),
        ) {
            Err(e) => e,
            Ok(_) => panic!("accepted"),
        };
        assert_eq!(
            e.message,
            "'[' found but ']' not found. Invalid syntax: $.a[1"
        );
        assert_eq!(e.location.map(|l| l.line), Some(3));
    }
}
