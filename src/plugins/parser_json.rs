//! `@type json` (parser): one event per JSON object; a top-level array gives one event per
//! object element. `time_type` defaults to `float` unless `time_format` is given.

use super::parser::{not_matched, Defaults, ParserCommon};
use super::{Parser, ParserError, PluginContext};
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventTime, Record, Value};
use crate::timeparse::TimeType;

#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JsonEngine {
    Oj,
    Yajl,
    Json,
}

crate::parser_config! {
    pub struct JsonParserConf {
        /// Accepted for compatibility: every engine is the same decoder here.
        pub json_parser: Option<JsonEngine>,
        pub stream_buffer_size: Option<i64>,
    }
}

pub struct JsonParser {
    common: ParserCommon,
}

const DEFAULTS: Defaults = Defaults {
    time_key: Some("time"),
    time_type: TimeType::Float,
    time_format: None,
};

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Parser>, ConfigError> {
    let conf: JsonParserConf = ctx.configure(elem, "json")?;
    let common = ParserCommon::build(&conf.common(), DEFAULTS, elem)?;
    Ok(Box::new(JsonParser { common }))
}

impl Parser for JsonParser {
    fn parse(
        &self,
        text: &[u8],
        emit: &mut dyn FnMut(Option<EventTime>, Record),
    ) -> Result<(), ParserError> {
        match crate::json::decode::parse_value(text) {
            Ok(Value::Map(rec)) => {
                let (t, r) = self.common.finish(rec)?;
                emit(t, r);
                Ok(())
            }
            Ok(Value::Array(items)) => {
                let mut unmatched = false;
                for item in items {
                    match item {
                        Value::Map(rec) => {
                            let (t, r) = self.common.finish(rec)?;
                            emit(t, r);
                        }
                        _ => unmatched = true,
                    }
                }
                if unmatched {
                    Err(not_matched())
                } else {
                    Ok(())
                }
            }
            _ => Err(not_matched()),
        }
    }

    /// Yajl's streaming parse: JSON values one after another, across lines or several on one;
    /// reading stops at the first invalid one. Only the time is taken (as Fluentd's
    /// `parse_io`, which does not apply `types`).
    fn parse_io(
        &self,
        reader: &mut dyn std::io::Read,
        emit: &mut dyn FnMut(Option<EventTime>, Record),
    ) -> Option<Result<(), ParserError>> {
        Some(self.stream(reader, emit))
    }
}

/// A streamed value larger than this is an error rather than unbounded memory.
const MAX_STREAM_VALUE: usize = 256 * 1024 * 1024;

/// Where the JSON object or array starting at `buf[0]` ends (exclusive), if `buf` holds all of it.
fn value_end(buf: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    for (i, &c) in buf.iter().enumerate() {
        if in_str {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_str = false;
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

impl JsonParser {
    fn stream(
        &self,
        reader: &mut dyn std::io::Read,
        emit: &mut dyn FnMut(Option<EventTime>, Record),
    ) -> Result<(), ParserError> {
        let mut buf: Vec<u8> = Vec::new();
        let mut start = 0usize;
        let mut eof = false;
        let mut chunk = vec![0u8; 8192];
        loop {
            while start < buf.len() && buf[start].is_ascii_whitespace() {
                start += 1;
            }
            if start < buf.len() {
                if !matches!(buf[start], b'{' | b'[') {
                    return Err(ParserError(format!(
                        "lexical error: invalid char in json text: {}",
                        String::from_utf8_lossy(&buf[start..buf.len().min(start + 40)])
                    )));
                }
                if let Some(n) = value_end(&buf[start..]) {
                    let v = crate::json::decode::parse_value(&buf[start..start + n])
                        .map_err(ParserError)?;
                    start += n;
                    let items = match v {
                        Value::Array(a) => a,
                        other => vec![other],
                    };
                    for item in items {
                        if let Value::Map(mut rec) = item {
                            let t = self.common.parse_time(&mut rec)?;
                            emit(t, rec);
                        }
                    }
                    continue;
                }
                if buf.len() - start > MAX_STREAM_VALUE {
                    return Err(ParserError("JSON value too large".into()));
                }
            }
            if eof {
                return if start < buf.len() {
                    Err(ParserError("premature EOF in json text".into()))
                } else {
                    Ok(())
                };
            }
            if start > 0 {
                buf.drain(..start);
                start = 0;
            }
            match reader.read(&mut chunk) {
                Ok(0) => eof = true,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ParserError(e.to_string())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parser::test_support::*;

    #[test]
    fn default_float_time_case_171() {
        let p = parser("@type json");
        let out = parse_all(
            &*p,
            r#"{"time": "2024-02-21T10:31:27.810781647Z", "level": "info", "pid": 1234}"#,
        )
        .unwrap();
        assert_eq!(
            out[0].0,
            Some(crate::event::EventTime::new(2024, 810_781_647))
        );
        assert_eq!(json(&out[0].1), r#"{"level":"info","pid":1234}"#);
        let out = parse_all(
            &*p,
            r#"{"time": "2024-02-21T10:31:29Z", "detail": {"code": 5}}"#,
        )
        .unwrap();
        assert_eq!(out[0].0, Some(crate::event::EventTime::new(2024, 0)));
        assert_eq!(json(&out[0].1), r#"{"detail":{"code":5}}"#);
    }

    #[test]
    fn time_format_cases_124_125() {
        let p = parser("@type json\ntime_format %Y-%m-%dT%H:%M:%S%z");
        let out = parse_all(&*p, r#"{"time": "2024-01-02T03:04:05+0900", "a": 2}"#).unwrap();
        assert_eq!(out[0].0, Some(utc(2024, 1, 1, 18, 4, 5, 0)));
        assert_eq!(json(&out[0].1), r#"{"a":2}"#);
        let p =
            parser("@type json\ntime_key ts\ntime_format %Y-%m-%d %H:%M:%S\nkeep_time_key true");
        let out = parse_all(&*p, r#"{"ts": "2024-05-06 07:08:09", "a": 1}"#).unwrap();
        assert_eq!(out[0].0, Some(utc(2024, 5, 6, 7, 8, 9, 0)));
        assert_eq!(json(&out[0].1), r#"{"ts":"2024-05-06 07:08:09","a":1}"#);
    }

    #[test]
    fn float_and_iso_cases_126_127_172() {
        let p = parser("@type json\ntime_key ts\ntime_type float");
        let out = parse_all(&*p, r#"{"ts": 1700000000.123456, "a": 1}"#).unwrap();
        assert_eq!(
            out[0].0,
            Some(crate::event::EventTime::new(1700000000, 123_456_000))
        );
        let p = parser("@type json\ntime_format %iso8601\nkeep_time_key true");
        let out = parse_all(&*p, r#"{"time": "2024-01-02T03:04:05.5-05:30", "i": 3}"#).unwrap();
        assert_eq!(out[0].0, Some(utc(2024, 1, 2, 8, 34, 5, 500_000_000)));
        assert_eq!(
            json(&out[0].1),
            r#"{"time":"2024-01-02T03:04:05.5-05:30","i":3}"#
        );
    }

    #[test]
    fn invalid_lines_cases_130_132_154() {
        let p = parser("@type json");
        for bad in ["not json", "[1,2]", "\"str\"", ""] {
            let e = parse_all(&*p, bad).unwrap_err();
            assert!(super::super::parser::is_not_matched(&e), "{bad}");
        }
        let p = parser("@type json\ntime_format %Y-%m-%d");
        let e = parse_all(&*p, r#"{"time": "garbage", "i": 2}"#).unwrap_err();
        assert!(e.0.starts_with("invalid time format"), "{}", e.0);
        let p = parser("@type json\nestimate_current_event false");
        let out = parse_all(&*p, r#"{"time": 1700000000, "i": 1}"#).unwrap();
        assert_eq!(out[0].0, Some(crate::event::EventTime::new(1700000000, 0)));
        let out = parse_all(&*p, r#"{"i": 2}"#).unwrap();
        assert_eq!(out[0].0, None);
    }

    #[test]
    fn arrays_and_invalid_utf8() {
        let p = parser("@type json");
        let out = parse_all(&*p, r#"[{"a":1},{"b":2}]"#).unwrap();
        assert_eq!(out.len(), 2);
        let out = parse_bytes(&*p, b"{\"s\":\"x\xffy\"}").unwrap();
        assert_eq!(
            out[0].1.get("s"),
            Some(&crate::event::Value::Str(b"x\xffy".to_vec()))
        );
        let p =
            parser("@type json\ntypes at:time:%Y-%m-%d\njson_parser yajl\nstream_buffer_size 100");
        let out = parse_all(&*p, r#"{"at": "2024-01-02", "i": 1}"#).unwrap();
        assert_eq!(json(&out[0].1), r#"{"at":1704153600,"i":1}"#);
    }

    #[test]
    fn parse_io_streams_values_and_stops_at_invalid_case_414() {
        let p = parser("@type json\ntime_key \"#{use_nil}\"\nestimate_current_event false");
        let input = "{\"time\":1700000000,\"msg\":\"a\"}\n{\"msg\":\"b\"}{\"msg\":\"c\"}\n{\n  \"msg\": \"d}\\\"\",\n  \"n\": [1, 2]\n}\nnot json\n{\"msg\":\"lost\"}\n";
        let mut got = Vec::new();
        // A reader that hands out 3 bytes at a time, so values cross reads.
        struct Slow<'a>(&'a [u8]);
        impl std::io::Read for Slow<'_> {
            fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(3).min(b.len());
                b[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let r = p
            .parse_io(&mut Slow(input.as_bytes()), &mut |t, r| {
                got.push((t, json(&r)))
            })
            .expect("json streams");
        assert!(r.is_err());
        let recs: Vec<_> = got.iter().map(|(_, r)| r.as_str()).collect();
        assert_eq!(
            recs,
            vec![
                r#"{"time":1700000000,"msg":"a"}"#,
                r#"{"msg":"b"}"#,
                r#"{"msg":"c"}"#,
                r#"{"msg":"d}\"","n":[1,2]}"#,
            ]
        );
        assert!(got.iter().all(|(t, _)| t.is_none()));
    }
}
