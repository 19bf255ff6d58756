//! `@type nginx` (parser): a regexp preset for nginx's combined log format; every field stays
//! a string; `http_x_forwarded_for` is optional.

use super::parser_regexp::RegexpParser;
use super::{Parser, PluginContext};
use crate::config_parser::{ConfigError, Element};

const EXPRESSION: &str = r#"/^(?<remote>[^ ]*) (?<host>[^ ]*) (?<user>[^ ]*) \[(?<time>[^\]]*)\] "(?<method>\S+)(?: +(?<path>[^\"]*?)(?: +\S*)?)?" (?<code>[^ ]*) (?<size>[^ ]*)(?: "(?<referer>[^\"]*)" "(?<agent>[^\"]*)"(?:\s+\"?(?<http_x_forwarded_for>[^\"]*)\"?)?)?$/"#;
const TIME_FORMAT: &str = "%d/%b/%Y:%H:%M:%S %z";

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Parser>, ConfigError> {
    Ok(Box::new(RegexpParser::build(
        elem,
        ctx,
        "nginx",
        Some(EXPRESSION),
        Some(TIME_FORMAT),
    )?))
}

#[cfg(test)]
mod tests {
    use super::super::parser::test_support::*;

    #[test]
    fn case_145() {
        let p = parser("@type nginx");
        let out = parse_all(&*p, r#"127.0.0.1 - - [10/Oct/2023:13:55:36 +0000] "GET /index.html HTTP/1.1" 200 612 "-" "curl/7.68.0""#).unwrap();
        assert_eq!(out[0].0, Some(utc(2023, 10, 10, 13, 55, 36, 0)));
        assert_eq!(
            json(&out[0].1),
            r#"{"remote":"127.0.0.1","host":"-","user":"-","method":"GET","path":"/index.html","code":"200","size":"612","referer":"-","agent":"curl/7.68.0"}"#
        );
        let out = parse_all(&*p, r#"10.1.1.1 - bob [10/Oct/2023:13:55:37 +0200] "GET /x HTTP/2.0" 404 0 "http://ref/" "UA" "1.2.3.4""#).unwrap();
        assert_eq!(out[0].0, Some(utc(2023, 10, 10, 11, 55, 37, 0)));
        assert_eq!(
            json(&out[0].1),
            r#"{"remote":"10.1.1.1","host":"-","user":"bob","method":"GET","path":"/x","code":"404","size":"0","referer":"http://ref/","agent":"UA","http_x_forwarded_for":"1.2.3.4"}"#
        );
    }
}
