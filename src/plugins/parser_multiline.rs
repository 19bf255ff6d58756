//! `@type multiline` (parser): `format1`..`format20` (each `/.../`) are joined into one
//! regexp in multi-line mode (`.` matches newlines); `format_firstline` tells in_tail where an
//! event starts. The text given to `parse` is the buffered lines joined with `\n`; after a
//! match, the rest of the text is matched again (Fluentd's `post_match` loop).

use super::parser::{not_matched, Defaults, ParserCommon};
use super::parser_regexp::NamedRegex;
use super::{Parser, ParserError, PluginContext};
use crate::config_parser::types::RubyRegex;
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventTime, Record, Value};

const FORMAT_MAX_NUM: usize = 20;

crate::parser_config! {
    pub struct MultilineParserConf {
        pub format_firstline: Option<String>,
        pub unmatched_lines: Option<String>,
        pub format1: Option<String>,
        pub format2: Option<String>,
        pub format3: Option<String>,
        pub format4: Option<String>,
        pub format5: Option<String>,
        pub format6: Option<String>,
        pub format7: Option<String>,
        pub format8: Option<String>,
        pub format9: Option<String>,
        pub format10: Option<String>,
        pub format11: Option<String>,
        pub format12: Option<String>,
        pub format13: Option<String>,
        pub format14: Option<String>,
        pub format15: Option<String>,
        pub format16: Option<String>,
        pub format17: Option<String>,
        pub format18: Option<String>,
        pub format19: Option<String>,
        pub format20: Option<String>,
    }
}

impl MultilineParserConf {
    fn formats(&self) -> [&Option<String>; FORMAT_MAX_NUM] {
        [
            &self.format1,
            &self.format2,
            &self.format3,
            &self.format4,
            &self.format5,
            &self.format6,
            &self.format7,
            &self.format8,
            &self.format9,
            &self.format10,
            &self.format11,
            &self.format12,
            &self.format13,
            &self.format14,
            &self.format15,
            &self.format16,
            &self.format17,
            &self.format18,
            &self.format19,
            &self.format20,
        ]
    }
}

pub struct MultilineParser {
    re: NamedRegex,
    firstline: Option<RubyRegex>,
    unmatched_lines: bool,
    common: ParserCommon,
}

/// The inside of a `/.../` format; anything else is a config error, as in Fluentd.
fn slashed<'a>(format: &'a str, key: &str, elem: &Element) -> Result<&'a str, ConfigError> {
    if format.len() >= 2 && format.starts_with('/') && format.ends_with('/') {
        let inner = &format[1..format.len() - 1];
        RubyRegex::new(inner, "m")
            .map_err(|e| elem.error(format!("Invalid regexp in {key}: {e}")))?;
        Ok(inner)
    } else {
        Err(elem.error(format!(
            "format should be Regexp, need //, but {key}: '{format}'"
        )))
    }
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Parser>, ConfigError> {
    let bad: Vec<&str> = elem
        .params
        .iter()
        .filter_map(|p| {
            let n = p.key.strip_prefix("format")?;
            let i: usize = n
                .parse()
                .ok()
                .filter(|_| n.bytes().all(|b| b.is_ascii_digit()))?;
            (!(1..=FORMAT_MAX_NUM).contains(&i)).then_some(p.key.as_str())
        })
        .collect();
    if !bad.is_empty() {
        return Err(elem.error(format!(
            "Invalid formatN found. N should be 1 - {FORMAT_MAX_NUM}: {}",
            bad.join(",")
        )));
    }
    let conf: MultilineParserConf = ctx.configure(elem, "multiline")?;
    let mut joined = String::new();
    let mut prev_missing = false;
    for (i, f) in conf.formats().iter().enumerate() {
        match f {
            Some(f) => {
                if i > 0 && prev_missing {
                    return Err(
                        elem.error(format!("Jump of format index found. format{i} is missing."))
                    );
                }
                joined.push_str(slashed(f, &format!("format{}", i + 1), elem)?);
                prev_missing = false;
            }
            None => prev_missing = true,
        }
    }
    let re = RubyRegex::new(&joined, "m")
        .map_err(|e| elem.error(format!("Invalid regexp '{joined}': {e}")))?;
    let re = NamedRegex::new(re);
    if !re.has_names() {
        return Err(elem.error(format!("Invalid regexp '{joined}': No named captures")));
    }
    let firstline = match &conf.format_firstline {
        Some(f) => {
            let inner = slashed(f, "format_firstline", elem)?;
            Some(RubyRegex::new(inner, "").map_err(|e| elem.error(e))?)
        }
        None => None,
    };
    let common = ParserCommon::build(&conf.common(), Defaults::TIME_KEY, elem)?;
    Ok(Box::new(MultilineParser {
        re,
        firstline,
        unmatched_lines: conf.unmatched_lines.is_some(),
        common,
    }))
}

impl Parser for MultilineParser {
    fn parse(
        &self,
        text: &[u8],
        emit: &mut dyn FnMut(Option<EventTime>, Record),
    ) -> Result<(), ParserError> {
        let mut rest = text;
        loop {
            let Some((rec, end)) = self.re.match_record(rest, 0) else {
                if self.unmatched_lines {
                    let mut r = Record::with_capacity(1);
                    r.push_unchecked(b"unmatched_line".to_vec(), Value::Str(rest.to_vec()));
                    emit(Some(EventTime::now()), r);
                    return Ok(());
                }
                return Err(not_matched());
            };
            let (t, r) = self.common.finish(rec)?;
            emit(t, r);
            if end == 0 {
                // An empty match would loop forever on the same text.
                return Ok(());
            }
            rest = &rest[end.min(rest.len())..];
            if rest.first() == Some(&b'\n') {
                rest = &rest[1..];
            }
            if rest.is_empty() {
                return Ok(());
            }
        }
    }

    fn is_multiline(&self) -> bool {
        true
    }

    fn is_firstline(&self, line: &[u8]) -> bool {
        match &self.firstline {
            Some(re) => re.is_match(line),
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parser::test_support::*;

    #[test]
    fn case_146() {
        let p = parser(
            "@type multiline\nformat_firstline /^\\d{4}-/\nformat1 /^(?<time>\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d) (?<level>\\w+) (?<msg>.*)/\ntime_format %Y-%m-%d %H:%M:%S",
        );
        assert!(p.is_multiline());
        assert!(p.is_firstline(b"2024-01-01 00:00:01 ERROR boom"));
        assert!(!p.is_firstline(b"  at a.b(c)"));
        let out = parse_all(
            &*p,
            "2024-01-01 00:00:01 ERROR boom\n  at a.b(c)\n  at d.e(f)",
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, Some(utc(2024, 1, 1, 0, 0, 1, 0)));
        assert_eq!(
            json(&out[0].1),
            r#"{"level":"ERROR","msg":"boom\n  at a.b(c)\n  at d.e(f)"}"#
        );
        assert!(parse_all(&*p, "orphan line").is_err());
        let out = parse_all(
            &*p,
            "2024-01-01 00:00:02 INFO next\n2024-01-01 00:00:03 WARN last",
        )
        .unwrap();
        assert_eq!(
            out.len(),
            1,
            "with /m the first msg takes the rest of the text"
        );
    }

    #[test]
    fn format_n_case_147() {
        let p = parser(
            "@type multiline\nformat_firstline /^Started/\nformat1 /^Started (?<method>\\w+) \"(?<path>[^\"]+)\"\\n/\nformat2 /Processing by (?<ctrl>\\S+)\\n/\nformat3 /Completed (?<code>\\d+)/",
        );
        // The text after the match (" OK") is matched again and fails, after the event is out.
        let mut out = Vec::new();
        let res = p.parse(
            b"Started GET \"/users\"\nProcessing by UsersController#index\nCompleted 200 OK",
            &mut |t, r| out.push((t, r)),
        );
        assert!(res.is_err());
        assert_eq!(out.len(), 1);
        assert_eq!(
            json(&out[0].1),
            r#"{"method":"GET","path":"/users","ctrl":"UsersController#index","code":"200"}"#
        );
    }

    #[test]
    fn config_errors_and_unmatched_lines() {
        let ctx = crate::plugins::PluginContext::for_tests();
        for body in [
            "@type multiline\nformat1 /(?<a>x)/\nformat3 /y/",
            "@type multiline\nformat1 no-slashes",
            "@type multiline\nformat1 /x/",
            "@type multiline\nformat21 /(?<a>x)/",
            "@type multiline\nformat1 /(?<a>x)/\nformat_firstline nope",
        ] {
            assert!(
                crate::plugins::new_parser(&section(body), &ctx).is_err(),
                "{body}"
            );
        }
        let p = parser("@type multiline\nformat1 /^(?<a>\\d+)/\nunmatched_lines true");
        let out = parse_all(&*p, "abc").unwrap();
        assert_eq!(json(&out[0].1), r#"{"unmatched_line":"abc"}"#);
    }
}
