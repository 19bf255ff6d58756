//! `@type multi_format` (parser, fluent-plugin-multi-format-parser): `<pattern>` sections, each
//! `format TYPE` plus that parser's parameters, tried top to bottom; the first that yields an
//! event wins, and a pattern's failure is not reported (as the gem). `format_key` stores the
//! winning pattern's `format_name` — nil when it has none, as the gem really does (its README
//! says `FORMAT#N`).

use super::parser::not_matched;
use super::{Parser, ParserError, PluginContext};
use crate::config_parser::{ConfigError, Element, Nested};
use crate::event::{EventTime, Record, Value};

#[derive(Debug, serde::Deserialize)]
pub struct MultiFormatConf {
    pub format_key: Option<String>,
    #[serde(default)]
    pub pattern: Vec<Nested>,
}

struct Pattern {
    parser: Box<dyn Parser>,
    format_name: Option<String>,
}

pub struct MultiFormatParser {
    patterns: Vec<Pattern>,
    format_key: Option<Vec<u8>>,
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Parser>, ConfigError> {
    let conf: MultiFormatConf = ctx.configure(elem, "multi_format")?;
    let mut patterns = Vec::new();
    for p in elem.children("pattern") {
        let format = p
            .get("format")
            .or_else(|| p.plugin_type())
            .ok_or_else(|| p.error("'format' parameter is required"))?
            .to_string();
        let mut section = p.clone();
        section.name = "parse".to_string();
        section.remove("format");
        let format_name = section
            .remove("format_name")
            .and_then(|n| n.value.as_str().map(str::to_string));
        section.set("@type", &format);
        patterns.push(Pattern {
            parser: super::new_parser(&section, ctx)?,
            format_name,
        });
    }
    if patterns.is_empty() {
        return Err(elem.error("multi_format needs at least one <pattern> section"));
    }
    Ok(Box::new(MultiFormatParser {
        patterns,
        format_key: conf.format_key.map(String::into_bytes),
    }))
}

impl Parser for MultiFormatParser {
    fn parse(
        &self,
        text: &[u8],
        emit: &mut dyn FnMut(Option<EventTime>, Record),
    ) -> Result<(), ParserError> {
        for p in &self.patterns {
            let mut got = Vec::new();
            if p.parser.parse(text, &mut |t, r| got.push((t, r))).is_err() || got.is_empty() {
                continue;
            }
            for (t, mut r) in got {
                if let Some(k) = &self.format_key {
                    let v = p
                        .format_name
                        .as_ref()
                        .map_or(Value::Nil, |n| Value::str(n.as_bytes()));
                    r.insert(k.clone(), v);
                }
                emit(t, r);
            }
            return Ok(());
        }
        Err(not_matched())
    }
}

#[cfg(test)]
mod tests {
    use super::super::parser::test_support::*;

    const DOCKER_OR_CRI: &str = "@type multi_format\nformat_key fmt\n<pattern>\n  format json\n  time_key time\n  time_format %Y-%m-%dT%H:%M:%S.%NZ\n  format_name docker\n</pattern>\n<pattern>\n  format regexp\n  expression /^(?<time>.+) (?<stream>stdout|stderr)( (?<logtag>.))? (?<log>.*)$/\n  time_format %Y-%m-%dT%H:%M:%S.%N%:z\n</pattern>";

    #[test]
    fn first_matching_pattern_wins() {
        let p = parser(DOCKER_OR_CRI);
        let out = parse_all(
            &*p,
            r#"{"log":"hi\n","stream":"stdout","time":"2024-05-01T10:20:30.5Z"}"#,
        )
        .unwrap();
        assert_eq!(out[0].0, Some(utc(2024, 5, 1, 10, 20, 30, 500_000_000)));
        assert_eq!(
            json(&out[0].1),
            r#"{"log":"hi\n","stream":"stdout","fmt":"docker"}"#
        );
        let out = parse_all(&*p, "2024-05-01T10:20:30.5+00:00 stderr F boom").unwrap();
        assert_eq!(out[0].0, Some(utc(2024, 5, 1, 10, 20, 30, 500_000_000)));
        assert_eq!(
            json(&out[0].1),
            r#"{"stream":"stderr","logtag":"F","log":"boom","fmt":null}"#
        );
        assert!(parse_all(&*p, "neither").is_err());
    }

    #[test]
    fn a_pattern_without_format_is_an_error() {
        let e = super::create(
            &section("@type multi_format\n<pattern>\n  time_key t\n</pattern>"),
            &crate::plugins::PluginContext::for_tests(),
        )
        .err()
        .unwrap();
        assert!(
            e.message.contains("'format' parameter is required"),
            "{}",
            e.message
        );
    }
}
