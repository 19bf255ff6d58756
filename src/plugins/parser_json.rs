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
}
