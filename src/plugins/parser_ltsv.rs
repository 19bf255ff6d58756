//! `@type ltsv` (parser): `label:value` fields separated by `delimiter` (or
//! `delimiter_pattern`); a field without the label delimiter is dropped, a repeated label
//! keeps the last value.

use super::parser::{Defaults, ParserCommon};
use super::{Parser, ParserError, PluginContext};
use crate::config_parser::types::{Regexp, RubyRegex};
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventTime, Record, Value};

crate::parser_config! {
    pub struct LtsvParserConf {
        #[serde(default = "default_delimiter")]
        pub delimiter: String,
        pub delimiter_pattern: Option<Regexp>,
        #[serde(default = "default_label_delimiter")]
        pub label_delimiter: String,
    }
}

fn default_delimiter() -> String {
    "\t".to_string()
}
fn default_label_delimiter() -> String {
    ":".to_string()
}

pub struct LtsvParser {
    delimiter: Vec<u8>,
    pattern: Option<RubyRegex>,
    label_delimiter: Vec<u8>,
    common: ParserCommon,
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Parser>, ConfigError> {
    let conf: LtsvParserConf = ctx.configure(elem, "ltsv")?;
    let common = ParserCommon::build(&conf.common(), Defaults::TIME_KEY, elem)?;
    Ok(Box::new(LtsvParser {
        delimiter: conf.delimiter.into_bytes(),
        pattern: conf.delimiter_pattern.map(|r| r.0),
        label_delimiter: conf.label_delimiter.into_bytes(),
        common,
    }))
}

impl LtsvParser {
    fn fields<'a>(&self, text: &'a [u8]) -> Vec<&'a [u8]> {
        match &self.pattern {
            Some(re) => {
                let mut out = Vec::new();
                let mut start = 0;
                let mut pos = 0;
                while pos <= text.len() {
                    match re
                        .captures_pos(text, pos)
                        .and_then(|g| g.first().copied().flatten())
                    {
                        Some((s, e)) if e > s => {
                            out.push(&text[start..s]);
                            start = e;
                            pos = e;
                        }
                        Some((s, _)) => pos = s + 1,
                        None => break,
                    }
                }
                out.push(&text[start..]);
                out
            }
            None => super::parser::ruby_split_limit(text, &self.delimiter, usize::MAX),
        }
    }
}

impl Parser for LtsvParser {
    fn parse(
        &self,
        text: &[u8],
        emit: &mut dyn FnMut(Option<EventTime>, Record),
    ) -> Result<(), ParserError> {
        let mut rec = Record::with_capacity(16);
        for pair in self.fields(text) {
            if let Some(i) = memchr::memmem::find(pair, &self.label_delimiter) {
                let key = &pair[..i];
                let value = &pair[i + self.label_delimiter.len()..];
                rec.insert(key.to_vec(), Value::Str(value.to_vec()));
            }
        }
        let (t, r) = self.common.finish(rec)?;
        emit(t, r);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::parser::test_support::*;

    #[test]
    fn case_137() {
        let p = parser("@type ltsv");
        let out = parse_all(&*p, "host:127.0.0.1\tmethod:GET\tempty:").unwrap();
        assert_eq!(
            json(&out[0].1),
            r#"{"host":"127.0.0.1","method":"GET","empty":""}"#
        );
        let out = parse_all(&*p, "a:1\ta:2\tnocolon\tb:x:y").unwrap();
        assert_eq!(json(&out[0].1), r#"{"a":"2","b":"x:y"}"#);
    }

    #[test]
    fn null_values_case_153_and_unicode_keys_case_195() {
        let p = parser("@type ltsv\nnull_value_pattern /^(-|n\\/a)$/\nnull_empty_string true");
        let out = parse_all(&*p, "a:-\tb:n/a\tc:\td:ok").unwrap();
        assert_eq!(json(&out[0].1), r#"{"a":null,"b":null,"c":null,"d":"ok"}"#);
        let p = parser("@type ltsv");
        let out = parse_all(&*p, "clé:valeur\t名前:太郎").unwrap();
        assert_eq!(json(&out[0].1), r#"{"clé":"valeur","名前":"太郎"}"#);
    }

    #[test]
    fn time_key_and_delimiters() {
        let p =
            parser("@type ltsv\ndelimiter_pattern /\\s+/\nlabel_delimiter =\ntime_format %Y-%m-%d");
        let out = parse_all(&*p, "time=2024-01-02  a=1 b=2").unwrap();
        assert_eq!(out[0].0, Some(utc(2024, 1, 2, 0, 0, 0, 0)));
        assert_eq!(json(&out[0].1), r#"{"a":"1","b":"2"}"#);
    }
}
