//! `@type csv` (parser): one CSV row (Ruby's `CSV.parse_line`: an empty unquoted field is null,
//! `""` an empty string, doubled quotes inside quotes) mapped onto `keys`.
//! `parser_engine fast` (alias `parser_type`) uses Fluentd's split-based reader.

use super::parser::{ruby_split_limit, Defaults, ParserCommon};
use super::parser_tsv::zip_record;
use super::{Parser, ParserError, PluginContext};
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventTime, Record, Value};

#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CsvEngine {
    Normal,
    Fast,
}

crate::parser_config! {
    pub struct CsvParserConf {
        pub keys: Vec<String>,
        #[serde(default = "default_delimiter")]
        pub delimiter: String,
        pub parser_engine: Option<CsvEngine>,
        pub parser_type: Option<CsvEngine>,
    }
}

fn default_delimiter() -> String {
    ",".to_string()
}

pub struct CsvParser {
    keys: Vec<Vec<u8>>,
    delimiter: Vec<u8>,
    fast: bool,
    common: ParserCommon,
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Parser>, ConfigError> {
    let conf: CsvParserConf = ctx.configure(elem, "csv")?;
    let common = ParserCommon::build(&conf.common(), Defaults::NONE, elem)?;
    if conf.delimiter.is_empty() {
        return Err(elem.error("delimiter must not be empty"));
    }
    Ok(Box::new(CsvParser {
        keys: conf.keys.into_iter().map(String::into_bytes).collect(),
        delimiter: conf.delimiter.into_bytes(),
        fast: conf.parser_engine.or(conf.parser_type) == Some(CsvEngine::Fast),
        common,
    }))
}

/// Ruby's `CSV.parse_line` for one line; malformed quoting is an error.
fn parse_line(text: &[u8], sep: &[u8]) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        if text.get(i) == Some(&b'"') {
            let mut field = Vec::new();
            i += 1;
            loop {
                let rest = &text[i..];
                let q = memchr::memchr(b'"', rest).ok_or("Unclosed quoted field")?;
                field.extend_from_slice(&rest[..q]);
                i += q + 1;
                if text.get(i) == Some(&b'"') {
                    field.push(b'"');
                    i += 1;
                } else {
                    break;
                }
            }
            out.push(Value::Str(field));
            if i == text.len() {
                return Ok(out);
            }
            if !text[i..].starts_with(sep) {
                return Err("Any value after quoted field isn't allowed".into());
            }
            i += sep.len();
        } else {
            let rest = &text[i..];
            let end = memchr::memmem::find(rest, sep).unwrap_or(rest.len());
            let field = &rest[..end];
            if memchr::memchr(b'"', field).is_some() {
                return Err("Illegal quoting".into());
            }
            out.push(if field.is_empty() {
                Value::Nil
            } else {
                Value::Str(field.to_vec())
            });
            if end == rest.len() {
                return Ok(out);
            }
            i += end + sep.len();
        }
    }
}

/// Fluentd's `parse_fast_internal`.
fn parse_fast(text: &[u8], sep: &[u8]) -> Vec<Value> {
    let cols = ruby_split_limit(text, sep, usize::MAX);
    let mut out = Vec::new();
    if text.is_empty() {
        return out;
    }
    let mut j = 0;
    while j < cols.len() {
        let col = cols[j];
        let quotes = col.iter().filter(|&&b| b == b'"').count();
        let v = match quotes {
            0 if col.is_empty() => Value::Nil,
            0 => Value::Str(col.to_vec()),
            1 if col.starts_with(b"\"") => {
                let mut merged = col.to_vec();
                j += 1;
                while j < cols.len() {
                    merged.extend_from_slice(sep);
                    merged.extend_from_slice(cols[j]);
                    if cols[j].ends_with(b"\"") {
                        break;
                    }
                    j += 1;
                }
                Value::Str(strip_quotes(&merged).to_vec())
            }
            1 => Value::Str(col.to_vec()),
            2 if col.starts_with(b"\"") && col.ends_with(b"\"") => {
                Value::Str(strip_quotes(col).to_vec())
            }
            2 => Value::Str(col.to_vec()),
            _ => {
                let inner = if col.starts_with(b"\"") && col.ends_with(b"\"") {
                    strip_quotes(col)
                } else {
                    col
                };
                let mut s = Vec::with_capacity(inner.len());
                let mut k = 0;
                while k < inner.len() {
                    if inner[k] == b'"' && inner.get(k + 1) == Some(&b'"') {
                        s.push(b'"');
                        k += 2;
                    } else {
                        s.push(inner[k]);
                        k += 1;
                    }
                }
                Value::Str(s)
            }
        };
        out.push(v);
        j += 1;
    }
    out
}

fn strip_quotes(s: &[u8]) -> &[u8] {
    if s.len() >= 2 {
        &s[1..s.len() - 1]
    } else {
        &[]
    }
}

impl Parser for CsvParser {
    fn parse(
        &self,
        text: &[u8],
        emit: &mut dyn FnMut(Option<EventTime>, Record),
    ) -> Result<(), ParserError> {
        let values = if self.fast {
            parse_fast(text, &self.delimiter)
        } else {
            if text.is_empty() {
                return Err(ParserError("no values in an empty CSV line".into()));
            }
            parse_line(text, &self.delimiter).map_err(ParserError)?
        };
        let (t, r) = self.common.finish(zip_record(&self.keys, values))?;
        emit(t, r);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::parser::test_support::*;

    #[test]
    fn case_138() {
        let p = parser("@type csv\nkeys a,b,c");
        assert_eq!(
            json(&parse_all(&*p, r#"x,"y, z","q""uote""#).unwrap()[0].1),
            r#"{"a":"x","b":"y, z","c":"q\"uote"}"#
        );
        assert_eq!(
            json(&parse_all(&*p, "1,,").unwrap()[0].1),
            r#"{"a":"1","b":null,"c":null}"#
        );
        assert_eq!(
            json(&parse_all(&*p, "only").unwrap()[0].1),
            r#"{"a":"only","b":null,"c":null}"#
        );
        assert_eq!(
            json(&parse_all(&*p, r#""",x"#).unwrap()[0].1),
            r#"{"a":"","b":"x","c":null}"#
        );
        assert!(parse_all(&*p, r#"a"b,c"#).is_err());
        assert!(parse_all(&*p, r#""abc"#).is_err());
        assert!(parse_all(&*p, r#""a"b,c"#).is_err());
    }

    #[test]
    fn fast_engine_and_delimiter() {
        let p = parser("@type csv\nkeys a,b,c\nparser_engine fast");
        assert_eq!(
            json(&parse_all(&*p, r#"x,"y, z","q""uote""#).unwrap()[0].1),
            r#"{"a":"x","b":"y, z","c":"q\"uote"}"#
        );
        assert_eq!(
            json(&parse_all(&*p, "1,,").unwrap()[0].1),
            r#"{"a":"1","b":null,"c":null}"#
        );
        let p = parser("@type csv\nkeys a,b\ndelimiter |");
        assert_eq!(
            json(&parse_all(&*p, "1|2").unwrap()[0].1),
            r#"{"a":"1","b":"2"}"#
        );
    }
}
