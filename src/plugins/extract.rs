//! The `<extract>` section: the tag and time taken out of a record (Fluentd's
//! `plugin_helper/extract.rb`), used by in_exec and out_exec_filter.

use serde::Deserialize;

use super::PluginContext;
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventTime, Record};
use crate::timeparse::{TimeParser, TimeType};

#[derive(Deserialize)]
struct ExtractConf {
    tag_key: Option<String>,
    #[serde(default)]
    keep_tag_key: bool,
    time_key: Option<String>,
    #[serde(default)]
    keep_time_key: bool,
    time_type: Option<TimeType>,
    time_format: Option<String>,
    localtime: Option<bool>,
    utc: Option<bool>,
    timezone: Option<String>,
    #[serde(default)]
    time_format_fallbacks: Vec<String>,
}

/// A configured `<extract>` with a tag key or a time key.
pub struct Extract {
    tag_key: Option<Vec<u8>>,
    keep_tag_key: bool,
    time: Option<(Vec<u8>, TimeParser)>,
    keep_time_key: bool,
}

impl Extract {
    /// Builds from an `<extract>` section; None when there is none or it extracts nothing.
    /// `time_type` defaults to float, or string when `time_format` is given (in_exec's rule).
    pub fn from_section(
        section: Option<&Element>,
        ctx: &PluginContext,
    ) -> Result<Option<Extract>, ConfigError> {
        let Some(elem) = section else {
            return Ok(None);
        };
        let c: ExtractConf = ctx.configure(elem, "extract")?;
        if let (Some(l), Some(u)) = (c.localtime, c.utc) {
            if l == u {
                return Err(
                    elem.error("both of utc and localtime are specified, use only one of them")
                );
            }
        }
        let localtime = match (c.localtime, c.utc) {
            (Some(l), _) => l,
            (None, Some(u)) => !u,
            (None, None) => true,
        };
        let time_type = c.time_type.unwrap_or(if c.time_format.is_some() {
            TimeType::String
        } else {
            TimeType::Float
        });
        let time = match c.time_key {
            Some(k) => Some((
                k.into_bytes(),
                TimeParser::new(
                    time_type,
                    c.time_format.as_deref(),
                    localtime,
                    !localtime,
                    c.timezone.as_deref(),
                    &c.time_format_fallbacks,
                )
                .map_err(|e| elem.error(e))?,
            )),
            None => None,
        };
        if c.tag_key.is_none() && time.is_none() {
            return Ok(None);
        }
        Ok(Some(Extract {
            tag_key: c.tag_key.map(String::into_bytes),
            keep_tag_key: c.keep_tag_key,
            time,
            keep_time_key: c.keep_time_key,
        }))
    }

    pub fn has_tag_key(&self) -> bool {
        self.tag_key.is_some()
    }

    /// `extract_tag_from_record`: the value as Ruby's `to_s`, removed unless `keep_tag_key`.
    pub fn tag(&self, record: &mut Record) -> Option<String> {
        let k = self.tag_key.as_ref()?;
        let v = if self.keep_tag_key {
            record.get(k).cloned()
        } else {
            record.remove(k)
        }?;
        Some(String::from_utf8_lossy(&v.to_ruby_s()).into_owned())
    }

    /// `extract_time_from_record`: removed unless `keep_time_key`; an unparsable value is an
    /// error (Fluentd raises, and the event goes to the error stream).
    pub fn time(&self, record: &mut Record) -> Result<Option<EventTime>, String> {
        let Some((k, parser)) = &self.time else {
            return Ok(None);
        };
        let v = if self.keep_time_key {
            record.get(k).cloned()
        } else {
            record.remove(k)
        };
        match v {
            Some(v) => parser.parse(&v).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Value;
    use crate::test_util::{json_record, section};

    fn extract(params: &[(&str, &str)]) -> Extract {
        Extract::from_section(
            Some(&section("extract", params)),
            &PluginContext::for_tests(),
        )
        .unwrap()
        .expect("enabled")
    }

    #[test]
    fn tag_and_float_time_are_removed() {
        let e = extract(&[("tag_key", "tg"), ("time_key", "t")]);
        let mut r = json_record(r#"{"tg":"a.b","t":1700000000.5,"x":1}"#);
        assert_eq!(e.tag(&mut r).as_deref(), Some("a.b"));
        assert_eq!(
            e.time(&mut r).unwrap(),
            Some(EventTime::new(1700000000, 500_000_000))
        );
        assert_eq!(r.len(), 1);
        assert_eq!(r.get("x"), Some(&Value::Int(1)));
    }

    #[test]
    fn keep_keys_and_string_time_format() {
        let e = extract(&[
            ("time_key", "t"),
            ("keep_time_key", "true"),
            ("time_format", "%Y-%m-%d %H:%M:%S"),
            ("utc", "true"),
        ]);
        let mut r = json_record(r#"{"t":"2023-11-14 22:13:20"}"#);
        assert_eq!(e.time(&mut r).unwrap(), Some(EventTime::new(1700000000, 0)));
        assert!(r.contains_key("t"));
        assert!(e.tag(&mut r).is_none());
        let mut bad = json_record(r#"{"t":"yesterday"}"#);
        assert!(e.time(&mut bad).is_err());
    }

    #[test]
    fn empty_section_extracts_nothing() {
        assert!(
            Extract::from_section(Some(&section("extract", &[])), &PluginContext::for_tests())
                .unwrap()
                .is_none()
        );
    }
}
