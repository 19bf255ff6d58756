//! `@type syslog` (parser): RFC 3164 (`<PRI>Mmm dd hh:mm:ss host ident[pid]: message`),
//! RFC 5424 (`<PRI>1 TIMESTAMP host ident pid msgid extradata message`) or `auto`, as
//! Fluentd's regexp engine reads them: the time is cut at the format's space count, the rest
//! matched by a regexp. `parser_engine string` reads the same way and orders the keys as Fluentd's string engine.

use super::parser::{not_matched, Defaults, ParserCommon};
use super::parser_regexp::NamedRegex;
use super::{Parser, ParserError, PluginContext};
use crate::config_parser::types::RubyRegex;
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventTime, Record, Value};
use crate::timeparse::TimeParser;

// Fluentd matches these against binary (ASCII-8BIT) strings, where `.` and `[^ ]` take any
// byte: `(?-u)` does the same, so a line with invalid UTF-8 keeps its bytes in the same fields.
const RFC3164_BODY: &str =
    r"(?-u)(?<host>[^ ]*) (?<ident>[^ :\[]*)(?:\[(?<pid>[0-9]+)\])?(?:[^\:]*\:)? *(?<message>.*)$";
// Fluentd's `\[.*?(?<!\\)\]` (an element ends at the first `]` not after a backslash) written
// without the lookbehind, so the byte-matching engine takes it: the content is empty or ends
// with a byte other than a backslash, shortest first.
const RFC5424_BODY: &str = r"(?-u)(?<host>[!-~]{1,255}) (?<ident>[!-~]{1,48}) (?<pid>[!-~]{1,128}) (?<msgid>[!-~]{1,32}) (?<extradata>(?:\-|(?:\[(?:.*?[^\\])??\])+))(?: (?<message>.+))?\z";

#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageFormat {
    Rfc3164,
    Rfc5424,
    Auto,
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogEngine {
    Regexp,
    String,
}

crate::parser_config! {
    pub struct SyslogParserConf {
        #[serde(default)]
        pub with_priority: bool,
        pub message_format: Option<MessageFormat>,
        pub rfc5424_time_format: Option<String>,
        pub parser_engine: Option<SyslogEngine>,
        pub parser_type: Option<SyslogEngine>,
        pub support_colonless_ident: Option<bool>,
    }
}

struct TimeCut {
    parser: TimeParser,
    /// Fallback for RFC 5424 timestamps without sub-seconds.
    fallback: Option<TimeParser>,
    spaces: usize,
}

pub struct SyslogParser {
    format: MessageFormat,
    with_priority: bool,
    keep_time_key: bool,
    /// `parser_engine string`: Fluentd's string parsers build the record in another key order.
    string_engine: bool,
    rfc3164: Option<(TimeCut, NamedRegex)>,
    rfc5424: Option<(TimeCut, NamedRegex)>,
}

/// `time_fmt.squeeze(' ').count(' ') + 1`
fn space_count(fmt: &str) -> usize {
    let mut n = 0;
    let mut prev = false;
    for c in fmt.chars() {
        if c == ' ' {
            if !prev {
                n += 1;
            }
            prev = true;
        } else {
            prev = false;
        }
    }
    n + 1
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Parser>, ConfigError> {
    let conf: SyslogParserConf = ctx.configure(elem, "syslog")?;
    let defaults = Defaults {
        time_format: Some("%b %d %H:%M:%S"),
        ..Defaults::NONE
    };
    let common = ParserCommon::build(&conf.common(), defaults, elem)?;
    let format = conf.message_format.unwrap_or(MessageFormat::Rfc3164);
    let rfc5424_fmt = conf
        .rfc5424_time_format
        .clone()
        .unwrap_or_else(|| "%Y-%m-%dT%H:%M:%S.%L%z".to_string());
    let fmt3164 = common
        .time_format
        .clone()
        .unwrap_or_else(|| "%b %d %H:%M:%S".to_string());
    let fmt5424 = match (format, &conf.time_format) {
        (MessageFormat::Rfc5424, Some(f)) => f.clone(),
        _ => rfc5424_fmt,
    };
    let err = |e: String| elem.error(e);
    let rfc3164 = if format != MessageFormat::Rfc5424 {
        let re = RubyRegex::new(RFC3164_BODY, "").map_err(err)?;
        Some((
            TimeCut {
                parser: common.time_parser_with_format(&fmt3164).map_err(err)?,
                fallback: None,
                spaces: space_count(&fmt3164),
            },
            NamedRegex::new(re),
        ))
    } else {
        None
    };
    let rfc5424 = if format != MessageFormat::Rfc3164 {
        let re = RubyRegex::new(RFC5424_BODY, "m").map_err(err)?;
        Some((
            TimeCut {
                parser: common.time_parser_with_format(&fmt5424).map_err(err)?,
                fallback: Some(
                    common
                        .time_parser_with_format("%Y-%m-%dT%H:%M:%S%z")
                        .map_err(err)?,
                ),
                spaces: space_count(&fmt5424),
            },
            NamedRegex::new(re),
        ))
    } else {
        None
    };
    Ok(Box::new(SyslogParser {
        format,
        with_priority: conf.with_priority,
        keep_time_key: conf.keep_time_key,
        string_engine: conf.parser_engine.or(conf.parser_type) == Some(SyslogEngine::String),
        rfc3164,
        rfc5424,
    }))
}

fn broken() -> ParserError {
    ParserError("undefined method for nil (malformed syslog line)".to_string())
}

/// `<PRI>1 ` of RFC 5424: `^<(\d{1,3})>\d\d{0,2}\s`; returns (pri, end).
fn pri_5424(text: &[u8]) -> Option<(i64, usize)> {
    let (pri, mut i) = pri_3164(text)?;
    let st = i;
    while i < text.len() && text[i].is_ascii_digit() && i - st < 3 {
        i += 1;
    }
    if i == st || !text.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
        return None;
    }
    Some((pri, i + 1))
}

/// `^<(\d{1,3})>`; returns (pri, index after '>').
fn pri_3164(text: &[u8]) -> Option<(i64, usize)> {
    if text.first() != Some(&b'<') {
        return None;
    }
    let mut i = 1;
    while i < text.len() && text[i].is_ascii_digit() && i <= 3 {
        i += 1;
    }
    if i == 1 || text.get(i) != Some(&b'>') {
        return None;
    }
    let pri = std::str::from_utf8(&text[1..i]).ok()?.parse().ok()?;
    Some((pri, i + 1))
}

/// RFC 5424 detection of `auto`: `^<[0-9]{1,3}>[1-9]\d{0,2}`.
fn looks_5424(text: &[u8]) -> bool {
    match pri_3164(text) {
        Some((_, i)) => matches!(text.get(i), Some(b'1'..=b'9')),
        None => false,
    }
}

impl SyslogParser {
    fn parse_with(
        &self,
        text: &[u8],
        cut: &TimeCut,
        re: &NamedRegex,
        rfc5424: bool,
        emit: &mut dyn FnMut(Option<EventTime>, Record),
    ) -> Result<(), ParserError> {
        let mut record = Record::with_capacity(8);
        let mut idx = 0usize;
        if self.with_priority {
            let (pri, end) = if rfc5424 {
                pri_5424(text)
            } else {
                pri_3164(text)
            }
            .ok_or_else(not_matched)?;
            record.push_unchecked(b"pri".to_vec(), Value::Int(pri));
            idx = end;
        }
        // Cut the time at the format's number of spaces, squeezing repeated spaces.
        let mut i: isize = idx as isize - 1;
        let mut squeezed = false;
        for _ in 0..cut.spaces {
            while text.get((i + 1) as usize) == Some(&b' ') {
                squeezed = true;
                i += 1;
            }
            let from = (i + 1) as usize;
            let next = text
                .get(from..)
                .and_then(|r| memchr::memchr(b' ', r))
                .ok_or_else(broken)?;
            i = (from + next) as isize;
        }
        let end = i as usize;
        let raw = text.get(idx..end).ok_or_else(broken)?;
        let time_str: Vec<u8> = if squeezed {
            let mut v = Vec::with_capacity(raw.len());
            for &b in raw {
                if !(b == b' ' && v.last() == Some(&b' ')) {
                    v.push(b);
                }
            }
            v
        } else {
            raw.to_vec()
        };
        let time = match cut.parser.parse_bytes(&time_str) {
            Ok(t) => t,
            Err(e) => match &cut.fallback {
                Some(f) => f.parse_bytes(&time_str).map_err(ParserError)?,
                None => return Err(ParserError(e)),
            },
        };
        if self.keep_time_key {
            record.insert("time", Value::Str(time_str));
        }
        let (m, _) = re.match_record(text, end + 1).ok_or_else(not_matched)?;
        for (k, v) in m {
            let v = match (k.as_slice(), v) {
                (b"message", Value::Str(mut s)) => {
                    if s.ends_with(b"\r\n") {
                        s.truncate(s.len() - 2);
                    } else if s.ends_with(b"\n") || s.ends_with(b"\r") {
                        s.pop();
                    }
                    Value::Str(s)
                }
                (_, v) => v,
            };
            record.insert(k, v);
        }
        if self.string_engine {
            record = string_engine_order(record, rfc5424);
        }
        emit(Some(time), record);
        Ok(())
    }
}

/// The key order of Fluentd's string engine: `host, pri, ident, pid, message` (RFC 3164) and
/// `host, ident, pid, msgid, pri, extradata, message` (RFC 5424), the kept time last.
fn string_engine_order(mut record: Record, rfc5424: bool) -> Record {
    const R3164: &[&str] = &["host", "pri", "ident", "pid", "message", "time"];
    const R5424: &[&str] = &[
        "host",
        "ident",
        "pid",
        "msgid",
        "pri",
        "extradata",
        "message",
        "time",
    ];
    let order = if rfc5424 { R5424 } else { R3164 };
    let mut out = Record::with_capacity(record.len());
    for k in order {
        if let Some(v) = record.remove(k) {
            out.push_unchecked(k.as_bytes().to_vec(), v);
        }
    }
    out.merge(record);
    out
}

impl Parser for SyslogParser {
    fn parse(
        &self,
        text: &[u8],
        emit: &mut dyn FnMut(Option<EventTime>, Record),
    ) -> Result<(), ParserError> {
        let use5424 = match self.format {
            MessageFormat::Rfc3164 => false,
            MessageFormat::Rfc5424 => true,
            MessageFormat::Auto => looks_5424(text),
        };
        let parts = if use5424 {
            &self.rfc5424
        } else {
            &self.rfc3164
        };
        match parts {
            Some((cut, re)) => self.parse_with(text, cut, re, use5424, emit),
            None => Err(not_matched()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parser::test_support::*;

    #[test]
    fn string_engine_key_order() {
        let p = parser(
            "@type syslog\nwith_priority true\nparser_engine string\nmessage_format rfc5424",
        );
        let out = parse_all(
            &*p,
            "<16>1 2013-02-28T12:00:00.003Z 192.168.0.1 fluentd 11111 ID24224 [exampleSDID@20224 iut=\"3\"] Hi, from Fluentd!",
        )
        .unwrap();
        assert_eq!(
            json(&out[0].1),
            r#"{"host":"192.168.0.1","ident":"fluentd","pid":"11111","msgid":"ID24224","pri":16,"extradata":"[exampleSDID@20224 iut=\"3\"]","message":"Hi, from Fluentd!"}"#
        );
        let p = parser("@type syslog\nwith_priority true\nparser_engine string");
        let out = parse_all(&*p, "<34>Oct 11 22:14:15 mymachine su[123]: hi").unwrap();
        assert_eq!(
            json(&out[0].1),
            r#"{"host":"mymachine","pri":34,"ident":"su","pid":"123","message":"hi"}"#
        );
    }

    #[test]
    fn rfc3164_case_140() {
        let p = parser("@type syslog\nwith_priority true");
        let out = parse_all(
            &*p,
            "<34>Oct 11 22:14:15 mymachine su[123]: 'su root' failed for lonvick",
        )
        .unwrap();
        let y = chrono::Datelike::year(&chrono::Utc::now()) as i64;
        assert_eq!(out[0].0, Some(utc(y, 10, 11, 22, 14, 15, 0)));
        assert_eq!(
            json(&out[0].1),
            r#"{"pri":34,"host":"mymachine","ident":"su","pid":"123","message":"'su root' failed for lonvick"}"#
        );
        let out = parse_all(&*p, "<13>Feb  5 17:32:18 host2 app: no pid here").unwrap();
        assert_eq!(out[0].0, Some(utc(y, 2, 5, 17, 32, 18, 0)));
        assert_eq!(
            json(&out[0].1),
            r#"{"pri":13,"host":"host2","ident":"app","message":"no pid here"}"#
        );
        assert!(parse_all(&*p, "no pri").is_err());
        let p = parser("@type syslog");
        let out = parse_all(&*p, "Oct 11 22:14:15 host app: hi").unwrap();
        assert_eq!(
            json(&out[0].1),
            r#"{"host":"host","ident":"app","message":"hi"}"#
        );
        assert!(parse_all(&*p, "short").is_err());
    }

    #[test]
    fn rfc5424_case_141() {
        let p = parser("@type syslog\nmessage_format rfc5424\nwith_priority true");
        let out = parse_all(&*p, r#"<165>1 2024-08-24T05:14:15.000003-07:00 host1 myapp 8710 ID47 [exampleSDID@32473 iut="3"] An application event"#).unwrap();
        assert_eq!(out[0].0, Some(utc(2024, 8, 24, 12, 14, 15, 3000)));
        assert_eq!(
            json(&out[0].1),
            r#"{"pri":165,"host":"host1","ident":"myapp","pid":"8710","msgid":"ID47","extradata":"[exampleSDID@32473 iut=\"3\"]","message":"An application event"}"#
        );
        let out = parse_all(
            &*p,
            "<14>1 2024-08-24T05:14:15Z host2 app - - - plain message",
        )
        .unwrap();
        assert_eq!(out[0].0, Some(utc(2024, 8, 24, 5, 14, 15, 0)));
        assert_eq!(
            json(&out[0].1),
            r#"{"pri":14,"host":"host2","ident":"app","pid":"-","msgid":"-","extradata":"-","message":"plain message"}"#
        );
    }

    #[test]
    fn auto_case_142() {
        let p = parser("@type syslog\nmessage_format auto\nwith_priority true");
        let out = parse_all(&*p, "<34>Oct 11 22:14:15 mymachine su: legacy").unwrap();
        assert_eq!(
            json(&out[0].1),
            r#"{"pri":34,"host":"mymachine","ident":"su","message":"legacy"}"#
        );
        let out = parse_all(&*p, "<14>1 2024-08-24T05:14:15Z host2 app 1 - - modern").unwrap();
        assert_eq!(
            json(&out[0].1),
            r#"{"pri":14,"host":"host2","ident":"app","pid":"1","msgid":"-","extradata":"-","message":"modern"}"#
        );
    }
    /// The fields as byte strings, to compare lines that are not UTF-8.
    fn fields(r: &crate::event::Record) -> Vec<(String, Vec<u8>)> {
        r.iter()
            .map(|(k, v)| {
                let v = match v {
                    crate::event::Value::Str(b) => b.clone(),
                    other => format!("{other:?}").into_bytes(),
                };
                (String::from_utf8_lossy(k).into_owned(), v)
            })
            .collect()
    }

    fn f(pairs: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect()
    }

    #[test]
    fn rfc3164_invalid_utf8_keeps_bytes_in_fluentds_fields() {
        let p = parser("@type syslog");
        let out =
            parse_bytes(&*p, b"Oct 11 22:14:15 host app[7]: bad \xff\xfe byte \xc3(").unwrap();
        assert_eq!(
            fields(&out[0].1),
            f(&[
                ("host", b"host"),
                ("ident", b"app"),
                ("pid", b"7"),
                ("message", b"bad \xff\xfe byte \xc3("),
            ])
        );
        // Invalid bytes in the host and the ident are taken as any other byte.
        let out = parse_bytes(&*p, b"Oct 11 22:14:15 h\xe9st \xffid: m").unwrap();
        assert_eq!(
            fields(&out[0].1),
            f(&[
                ("host", b"h\xe9st"),
                ("ident", b"\xffid"),
                ("message", b"m")
            ])
        );
    }

    #[test]
    fn rfc5424_invalid_utf8_keeps_bytes_in_fluentds_fields() {
        let p = parser("@type syslog\nmessage_format rfc5424\nwith_priority true");
        let out = parse_bytes(
            &*p,
            b"<14>1 2024-08-24T05:14:15Z host2 app 9 ID1 [a x=\"\xe9t\xe9\"][b y=\"1\"] caf\xe9 \xff",
        )
        .unwrap();
        assert_eq!(out[0].0, Some(utc(2024, 8, 24, 5, 14, 15, 0)));
        assert_eq!(
            fields(&out[0].1),
            f(&[
                ("pri", b"Int(14)"),
                ("host", b"host2"),
                ("ident", b"app"),
                ("pid", b"9"),
                ("msgid", b"ID1"),
                ("extradata", b"[a x=\"\xe9t\xe9\"][b y=\"1\"]"),
                ("message", b"caf\xe9 \xff"),
            ])
        );
        // The host is printable ASCII only, and the unanchored search of Fluentd's expression
        // then finds its match further on.
        let out = parse_bytes(&*p, b"<14>1 2024-08-24T05:14:15Z h\xffst app 9 ID1 - m").unwrap();
        assert_eq!(
            json(&out[0].1),
            r#"{"pri":14,"host":"st","ident":"app","pid":"9","msgid":"ID1","extradata":"-","message":"m"}"#
        );
    }

    #[test]
    fn rfc5424_extradata_escaped_brackets() {
        let p = parser("@type syslog\nmessage_format rfc5424");
        let out = parse_all(
            &*p,
            r#"2024-08-24T05:14:15Z h app 9 ID1 [a x="b\]c"][] tail] msg"#,
        )
        .unwrap();
        assert_eq!(
            json(&out[0].1),
            r#"{"host":"h","ident":"app","pid":"9","msgid":"ID1","extradata":"[a x=\"b\\]c\"][]","message":"tail] msg"}"#
        );
        // An element ending in a backslash-escaped bracket only closes at a later bracket.
        let out = parse_all(&*p, r#"2024-08-24T05:14:15Z h app 9 ID1 [a\] b] m"#).unwrap();
        assert_eq!(
            json(&out[0].1),
            r#"{"host":"h","ident":"app","pid":"9","msgid":"ID1","extradata":"[a\\] b]","message":"m"}"#
        );
    }
}
