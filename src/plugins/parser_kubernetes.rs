//! `@type kubernetes` (parser, from the fluentd-kubernetes-daemonset images): klog lines of the
//! Kubernetes components (`I0501 10:20:30.123456    1234 main.go:42] message`): severity
//! letter, `MMDD HH:MM:SS.micro` (the current year), pid, source and message. A regexp preset,
//! as the image's plugin is.

use super::parser_regexp::RegexpParser;
use super::{Parser, PluginContext};
use crate::config_parser::{ConfigError, Element};

const EXPRESSION: &str = r#"/^(?<severity>\w)(?<time>\d{4} [^\s]*)\s+(?<pid>\d+)\s+(?<source>[^ \]]+)\] (?<message>.*)/m"#;
const TIME_FORMAT: &str = "%m%d %H:%M:%S.%N";

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Parser>, ConfigError> {
    Ok(Box::new(RegexpParser::build(
        elem,
        ctx,
        "kubernetes",
        Some(EXPRESSION),
        Some(TIME_FORMAT),
    )?))
}

#[cfg(test)]
mod tests {
    use super::super::parser::test_support::*;

    #[test]
    fn klog_lines() {
        let p = parser("@type kubernetes");
        let year = chrono::Datelike::year(&chrono::Utc::now()) as i64;
        let out = parse_all(
            &*p,
            "I0501 10:20:30.123456    1234 server.go:42] Started kubelet",
        )
        .unwrap();
        assert_eq!(out[0].0, Some(utc(year, 5, 1, 10, 20, 30, 123_456_000)));
        assert_eq!(
            json(&out[0].1),
            r#"{"severity":"I","pid":"1234","source":"server.go:42","message":"Started kubelet"}"#
        );
        let out = parse_all(&*p, "E1231 23:59:59.000001 7 a.go:1] first\nsecond").unwrap();
        assert_eq!(
            json(&out[0].1),
            r#"{"severity":"E","pid":"7","source":"a.go:1","message":"first\nsecond"}"#
        );
        assert!(parse_all(&*p, "not a klog line").is_err());
    }
}
