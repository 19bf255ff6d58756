//! `@type cri` (parser, fluent-plugin-parser-cri): the CRI log format that containerd and CRI-O
//! write, `TIME STREAM LOGTAG MESSAGE` (LOGTAG `F` full line, `P` partial). The record is
//! `{stream, logtag, message}` plus the time text (`keep_time_key` defaults to true); with a
//! nested `<parse>`, MESSAGE goes through it and `stream`/`logtag` are merged in
//! (`merge_cri_fields`). Like the gem, it yields each line: partial lines are joined by the
//! concat filter (`use_partial_cri_logtag true`).

use super::parser::{not_matched, Defaults, ParserCommon};
use super::{Parser, ParserError, PluginContext};
use crate::config_parser::{ConfigError, Element, Nested};
use crate::event::{EventTime, Record, Value};
use crate::timeparse::TimeType;

crate::parser_config! {
    pub struct CriParserConf {
        #[serde(default = "yes")]
        pub merge_cri_fields: bool,
        pub parse: Option<Nested>,
    }
}

fn yes() -> bool {
    true
}

const DEFAULTS: Defaults = Defaults {
    time_key: Some("time"),
    time_type: TimeType::String,
    time_format: Some("%Y-%m-%dT%H:%M:%S.%L%z"),
};

pub struct CriParser {
    common: ParserCommon,
    keep_time_key: bool,
    merge_cri_fields: bool,
    sub_parser: Option<Box<dyn Parser>>,
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Parser>, ConfigError> {
    let conf: CriParserConf = ctx.configure(elem, "cri")?;
    let common = ParserCommon::build(&conf.common(), DEFAULTS, elem)?;
    let sub_parser = match elem.child("parse") {
        Some(p) => Some(super::new_parser(p, ctx)?),
        None => None,
    };
    Ok(Box::new(CriParser {
        common,
        // `config_set_default :keep_time_key, true`.
        keep_time_key: elem.get("keep_time_key").is_none() || conf.keep_time_key,
        merge_cri_fields: conf.merge_cri_fields,
        sub_parser,
    }))
}

impl Parser for CriParser {
    fn parse(
        &self,
        text: &[u8],
        emit: &mut dyn FnMut(Option<EventTime>, Record),
    ) -> Result<(), ParserError> {
        // Ruby's `split(" ", 4)`: runs of whitespace separate, leading whitespace is skipped.
        let mut fields: Vec<&[u8]> = Vec::with_capacity(4);
        let mut rest = text;
        while fields.len() < 3 {
            let start = rest
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(rest.len());
            rest = &rest[start..];
            if rest.is_empty() {
                break;
            }
            let end = rest
                .iter()
                .position(|b| b.is_ascii_whitespace())
                .unwrap_or(rest.len());
            fields.push(&rest[..end]);
            rest = &rest[end..];
        }
        if fields.len() < 3 || rest.is_empty() {
            return Err(not_matched());
        }
        // The separator after the third field is one whitespace character; the message keeps
        // everything after it.
        let message = &rest[1..];
        let (t, stream, logtag) = (fields[0], fields[1], fields[2]);
        if let Some(sub) = &self.sub_parser {
            let mut got = None;
            sub.parse(message, &mut |time, r| {
                if got.is_none() {
                    got = Some((time, r));
                }
            })?;
            let Some((time, mut record)) = got else {
                return Err(not_matched());
            };
            if self.merge_cri_fields {
                record.insert("stream", Value::str(stream));
                record.insert("logtag", Value::str(logtag));
            }
            emit(time, record);
            return Ok(());
        }
        let mut record = Record::with_capacity(4);
        record.insert("stream", Value::str(stream));
        record.insert("logtag", Value::str(logtag));
        record.insert("message", Value::str(message));
        let time = self
            .common
            .time_parser
            .parse(&Value::str(t))
            .map_err(ParserError)?;
        if self.keep_time_key {
            if let Some(k) = &self.common.time_key {
                record.insert(k.clone(), Value::str(t));
            }
        }
        emit(Some(time), record);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::parser::test_support::*;

    #[test]
    fn full_and_partial_lines() {
        let p = parser("@type cri");
        let out = parse_all(&*p, "2024-05-01T10:20:30.123456789Z stdout F hello  world").unwrap();
        assert_eq!(out[0].0, Some(utc(2024, 5, 1, 10, 20, 30, 123_456_789)));
        assert_eq!(
            json(&out[0].1),
            r#"{"stream":"stdout","logtag":"F","message":"hello  world","time":"2024-05-01T10:20:30.123456789Z"}"#
        );
        let out = parse_all(&*p, "2024-05-01T10:20:30.5+02:00 stderr P part one").unwrap();
        assert_eq!(out[0].0, Some(utc(2024, 5, 1, 8, 20, 30, 500_000_000)));
        assert_eq!(
            json(&out[0].1),
            r#"{"stream":"stderr","logtag":"P","message":"part one","time":"2024-05-01T10:20:30.5+02:00"}"#
        );
        assert!(parse_all(&*p, "2024-05-01T10:20:30Z stdout").is_err());
    }

    #[test]
    fn keep_time_key_false_and_nested_json() {
        let p = parser("@type cri\nkeep_time_key false");
        let out = parse_all(&*p, "2024-05-01T10:20:30.1Z stdout F x").unwrap();
        assert_eq!(
            json(&out[0].1),
            r#"{"stream":"stdout","logtag":"F","message":"x"}"#
        );

        let p = parser("@type cri\n<parse>\n  @type json\n  time_key ts\n</parse>");
        let out = parse_all(
            &*p,
            r#"2024-05-01T10:20:30.1Z stdout F {"level":"info","ts":1714558830}"#,
        )
        .unwrap();
        assert_eq!(out[0].0, Some(utc(2024, 5, 1, 10, 20, 30, 0)));
        assert_eq!(
            json(&out[0].1),
            r#"{"level":"info","stream":"stdout","logtag":"F"}"#
        );
        let p = parser("@type cri\nmerge_cri_fields false\n<parse>\n  @type json\n</parse>");
        let out = parse_all(&*p, r#"2024-05-01T10:20:30.1Z stdout F {"a":1}"#).unwrap();
        assert_eq!(json(&out[0].1), r#"{"a":1}"#);
    }
}
