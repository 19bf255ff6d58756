//! `@type out_file` (formatter): `TIME<delim>TAG<delim>JSON` + newline. The time defaults to
//! ISO-8601 in local time (`2023-11-14T22:13:20+00:00`; `Z` with `utc`); the JSON is Yajl's.

use serde::Deserialize;

use super::formatter_json::{default_true, Newline};
use super::{Formatter, PluginContext};
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventTime, Record};
use crate::json::encode::{self, Style};
use crate::timefmt::{TimeFormatter, TimeZoneSpec};

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum TimeType {
    Float,
    Unixtime,
    #[default]
    String,
}

#[derive(Deserialize)]
struct OutFileConf {
    #[serde(default = "default_true")]
    output_time: bool,
    #[serde(default = "default_true")]
    output_tag: bool,
    /// `SPACE` / `COMMA` (anywhere in the value, any case); anything else is a tab.
    delimiter: Option<String>,
    #[serde(default)]
    time_type: TimeType,
    time_format: Option<String>,
    localtime: Option<bool>,
    utc: Option<bool>,
    timezone: Option<String>,
    time_as_epoch: Option<bool>,
    #[serde(default)]
    newline: Newline,
}

enum TimeOut {
    Float,
    Unixtime,
    String(TimeFormatter),
}

pub struct OutFileFormatter {
    output_time: bool,
    output_tag: bool,
    delimiter: u8,
    time: TimeOut,
    newline: &'static [u8],
}

impl Formatter for OutFileFormatter {
    fn format(&self, tag: &str, time: EventTime, record: &Record, out: &mut Vec<u8>) {
        if self.output_time {
            match &self.time {
                TimeOut::String(f) => f.format_into(time, out),
                TimeOut::Unixtime => encode::write_int(out, time.sec),
                // `time.to_r.to_f` interpolated: Float#to_s.
                TimeOut::Float => encode::write_ruby_float(out, time.as_f64()),
            }
            out.push(self.delimiter);
        }
        if self.output_tag {
            out.extend_from_slice(tag.as_bytes());
            out.push(self.delimiter);
        }
        encode::write_record_styled(out, record, Style::Yajl);
        out.extend_from_slice(self.newline);
    }
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Formatter>, ConfigError> {
    let c: OutFileConf = ctx.configure(elem, "out_file")?;
    if c.localtime.is_some() && c.utc.is_some() {
        return Err(elem.error("both of utc and localtime are specified, use only one of them"));
    }
    let zone = TimeZoneSpec::from_params(c.localtime, c.utc, c.timezone.as_deref())
        .map_err(|m| elem.error(m))?;
    let time_type = if c.time_as_epoch == Some(true) {
        TimeType::Unixtime
    } else {
        c.time_type
    };
    let delimiter = match c.delimiter.map(|d| d.to_ascii_uppercase()) {
        Some(d) if d.contains("SPACE") => b' ',
        Some(d) if d.contains("COMMA") => b',',
        _ => b'\t',
    };
    Ok(Box::new(OutFileFormatter {
        output_time: c.output_time,
        output_tag: c.output_tag,
        delimiter,
        time: match time_type {
            TimeType::Float => TimeOut::Float,
            TimeType::Unixtime => TimeOut::Unixtime,
            TimeType::String => TimeOut::String(TimeFormatter::new(c.time_format.as_deref(), zone)),
        },
        newline: c.newline.as_bytes(),
    }))
}

#[cfg(test)]
mod tests {
    use super::super::formatter_json::test_util::*;
    use super::*;
    use crate::event::Value;

    const T: EventTime = EventTime::new(1_700_000_000, 250_000_000);

    fn r() -> Record {
        rec(vec![("a", Value::Int(1))])
    }

    #[test]
    fn case_090_iso_time_tab_tag_tab_json() {
        // The conformance runner's local zone is UTC; a fixed +00:00 zone prints the same.
        assert_eq!(
            run(create, &[("timezone", "+00:00")], "t", T, &r()),
            b"2023-11-14T22:13:20+00:00\tt\t{\"a\":1}\n"
        );
    }

    #[test]
    fn utc_time_types_delimiters_and_flags() {
        assert_eq!(
            run(create, &[("utc", "true")], "t", T, &r()),
            b"2023-11-14T22:13:20Z\tt\t{\"a\":1}\n"
        );
        assert_eq!(
            run(
                create,
                &[("localtime", "false"), ("delimiter", "comma")],
                "t",
                T,
                &r()
            ),
            b"2023-11-14T22:13:20Z,t,{\"a\":1}\n"
        );
        assert_eq!(
            run(
                create,
                &[("time_type", "float"), ("delimiter", "SPACE")],
                "t",
                T,
                &r()
            ),
            b"1700000000.25 t {\"a\":1}\n"
        );
        assert_eq!(
            run(
                create,
                &[("time_type", "unixtime"), ("delimiter", "|")],
                "t",
                T,
                &r()
            ),
            b"1700000000\tt\t{\"a\":1}\n"
        );
        assert_eq!(
            run(
                create,
                &[("output_time", "false"), ("output_tag", "false")],
                "t",
                T,
                &r()
            ),
            b"{\"a\":1}\n"
        );
        assert_eq!(
            run(
                create,
                &[("utc", ""), ("time_format", "%s.%L")],
                "x.y",
                T,
                &r()
            ),
            b"1700000000.250\tx.y\t{\"a\":1}\n"
        );
    }

    #[test]
    fn config_errors() {
        let ctx = PluginContext::for_tests();
        let e = section("format", &[("utc", "true"), ("localtime", "true")]);
        let msg = create(&e, &ctx).err().map(|e| e.message);
        assert_eq!(
            msg.as_deref(),
            Some("both of utc and localtime are specified, use only one of them")
        );
        let e = section("format", &[("timezone", "Mars/Base")]);
        let msg = create(&e, &ctx).err().map(|e| e.message);
        assert_eq!(msg.as_deref(), Some("Unsupported timezone 'Mars/Base'"));
    }
}
