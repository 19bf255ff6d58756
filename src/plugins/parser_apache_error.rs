//! `@type apache_error` (parser): a regexp preset for Apache error logs; fields `level`,
//! `pid`, `client`, `message`; the time is read free-form (`Wed Oct 11 14:32:52 2023`).

use super::parser_regexp::RegexpParser;
use super::{Parser, PluginContext};
use crate::config_parser::{ConfigError, Element};

const EXPRESSION: &str = r"/^\[(?<time>[^\]]*)\] \[(?<level>[^\]]*)\](?: \[pid (?<pid>[^\]]*)\])?( \[client (?<client>[^\]]*)\])? (?<message>.*)$/";

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Parser>, ConfigError> {
    Ok(Box::new(RegexpParser::build(
        elem,
        ctx,
        "apache_error",
        Some(EXPRESSION),
        None,
    )?))
}

#[cfg(test)]
mod tests {
    use super::super::parser::test_support::*;

    #[test]
    fn case_144() {
        let p = parser("@type apache_error");
        let out = parse_all(&*p, "[Wed Oct 11 14:32:52 2023] [error] [client 127.0.0.1] client denied by server configuration: /export/home").unwrap();
        assert_eq!(out[0].0, Some(utc(2023, 10, 11, 14, 32, 52, 0)));
        assert_eq!(
            json(&out[0].1),
            r#"{"level":"error","client":"127.0.0.1","message":"client denied by server configuration: /export/home"}"#
        );
        let out = parse_all(&*p, "[Wed Oct 11 14:32:53 2023] [notice] [pid 1234] Apache configured -- resuming normal operations").unwrap();
        assert_eq!(out[0].0, Some(utc(2023, 10, 11, 14, 32, 53, 0)));
        assert_eq!(
            json(&out[0].1),
            r#"{"level":"notice","pid":"1234","message":"Apache configured -- resuming normal operations"}"#
        );
    }
}
