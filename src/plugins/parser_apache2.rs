//! `@type apache2` (parser): Apache's combined log format; `code` and `size` are integers,
//! `-` fields are null, the time is `%d/%b/%Y:%H:%M:%S %z`.

use super::parser::{not_matched, ParserCommon};
use super::parser_regexp::NamedRegex;
use super::{Parser, ParserError, PluginContext};
use crate::config_parser::types::RubyRegex;
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventTime, Record, Value};
use crate::timeparse::TimeParser;

const EXPRESSION: &str = r#"^(?<host>[^ ]*) [^ ]* (?<user>[^ ]*) \[(?<time>[^\]]*)\] "(?<method>\S+)(?: +(?<path>(?:[^\"]|\\.)*?)(?: +\S*)?)?" (?<code>[^ ]*) (?<size>[^ ]*)(?: "(?<referer>(?:[^\"]|\\.)*)" "(?<agent>(?:[^\"]|\\.)*)")?$"#;
const TIME_FORMAT: &str = "%d/%b/%Y:%H:%M:%S %z";

crate::parser_config! {
    pub struct Apache2ParserConf {}
}

pub struct Apache2Parser {
    re: NamedRegex,
    time_parser: TimeParser,
    keep_time_key: bool,
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Parser>, ConfigError> {
    let conf: Apache2ParserConf = ctx.configure(elem, "apache2")?;
    let common = ParserCommon::build(&conf.common(), super::parser::Defaults::NONE, elem)?;
    let time_parser = common
        .time_parser_with_format(TIME_FORMAT)
        .map_err(|e| elem.error(e))?;
    let re = RubyRegex::new(EXPRESSION, "").map_err(|e| elem.error(e))?;
    Ok(Box::new(Apache2Parser {
        re: NamedRegex::new(re),
        time_parser,
        keep_time_key: conf.keep_time_key,
    }))
}

fn dash_nil(v: Option<&Value>) -> Value {
    match v {
        Some(Value::Str(s)) if s.as_slice() != b"-" => Value::Str(s.clone()),
        _ => Value::Nil,
    }
}

fn to_i(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Str(s)) => crate::config_parser::types::ruby_to_i(&String::from_utf8_lossy(s)),
        _ => 0,
    }
}

impl Parser for Apache2Parser {
    fn parse(
        &self,
        text: &[u8],
        emit: &mut dyn FnMut(Option<EventTime>, Record),
    ) -> Result<(), ParserError> {
        let (m, _) = self.re.match_record(text, 0).ok_or_else(not_matched)?;
        let time_str = m.get("time").cloned().unwrap_or(Value::Nil);
        let time = self.time_parser.parse(&time_str).map_err(ParserError)?;
        let code = to_i(m.get("code"));
        let size = match m.get("size") {
            Some(Value::Str(s)) if s.as_slice() == b"-" => Value::Nil,
            other => Value::Int(to_i(other)),
        };
        let mut r = Record::with_capacity(9);
        r.push_unchecked(b"host".to_vec(), dash_nil(m.get("host")));
        r.push_unchecked(b"user".to_vec(), dash_nil(m.get("user")));
        r.push_unchecked(
            b"method".to_vec(),
            m.get("method").cloned().unwrap_or(Value::Nil),
        );
        r.push_unchecked(
            b"path".to_vec(),
            m.get("path").cloned().unwrap_or(Value::Nil),
        );
        r.push_unchecked(
            b"code".to_vec(),
            if code == 0 {
                Value::Nil
            } else {
                Value::Int(code)
            },
        );
        r.push_unchecked(b"size".to_vec(), size);
        r.push_unchecked(b"referer".to_vec(), dash_nil(m.get("referer")));
        r.push_unchecked(b"agent".to_vec(), dash_nil(m.get("agent")));
        if self.keep_time_key {
            r.push_unchecked(b"time".to_vec(), time_str);
        }
        emit(Some(time), r);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::parser::test_support::*;

    #[test]
    fn case_143() {
        let p = parser("@type apache2");
        let out = parse_all(&*p, r#"192.168.0.1 - frank [10/Oct/2023:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 2326 "http://x/" "Mozilla/5.0""#).unwrap();
        assert_eq!(out[0].0, Some(utc(2023, 10, 10, 20, 55, 36, 0)));
        assert_eq!(
            json(&out[0].1),
            r#"{"host":"192.168.0.1","user":"frank","method":"GET","path":"/a.gif","code":200,"size":2326,"referer":"http://x/","agent":"Mozilla/5.0"}"#
        );
        let out = parse_all(
            &*p,
            r#"10.0.0.2 - - [10/Oct/2023:13:55:37 +0000] "POST /api HTTP/1.1" 304 - "-" "curl/8""#,
        )
        .unwrap();
        assert_eq!(out[0].0, Some(utc(2023, 10, 10, 13, 55, 37, 0)));
        assert_eq!(
            json(&out[0].1),
            r#"{"host":"10.0.0.2","user":null,"method":"POST","path":"/api","code":304,"size":null,"referer":null,"agent":"curl/8"}"#
        );
        assert!(parse_all(&*p, "garbage").is_err());
    }
}
