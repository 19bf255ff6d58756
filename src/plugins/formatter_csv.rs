//! `@type csv` (formatter): the `fields` of the record as one CSV row, written as Ruby's CSV
//! writer does (`force_quotes` quotes everything and doubles `"`; without it only fields with
//! the delimiter, a quote or CR/LF, and empty strings, are quoted; nil is empty).

use serde::Deserialize;

use super::formatter_json::{default_true, Newline};
use super::formatter_tsv::push_to_s;
use super::{Formatter, PluginContext};
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventTime, Record, Value};

fn default_delimiter() -> String {
    ",".to_string()
}

#[derive(Deserialize)]
struct CsvConf {
    /// `\t` (backslash, t) and `TAB` mean a tab.
    #[serde(default = "default_delimiter")]
    delimiter: String,
    #[serde(default = "default_true")]
    force_quotes: bool,
    fields: Vec<String>,
    #[serde(default = "default_true")]
    add_newline: bool,
    #[serde(default)]
    newline: Newline,
}

pub struct CsvFormatter {
    fields: Vec<Vec<u8>>,
    delimiter: Vec<u8>,
    force_quotes: bool,
    newline: Option<&'static [u8]>,
}

impl CsvFormatter {
    fn needs_quotes(&self, s: &[u8]) -> bool {
        if s.is_empty() {
            return true;
        }
        // Ruby skips the pattern check for strings with invalid encoding.
        if std::str::from_utf8(s).is_err() {
            return false;
        }
        s.iter().any(|&b| b == b'\r' || b == b'\n' || b == b'"')
            || (!self.delimiter.is_empty() && memchr::memmem::find(s, &self.delimiter).is_some())
    }

    fn write_field(&self, out: &mut Vec<u8>, v: Option<&Value>) {
        if !self.force_quotes && matches!(v, None | Some(Value::Nil)) {
            return;
        }
        let start = out.len();
        push_to_s(out, v);
        if self.force_quotes || self.needs_quotes(&out[start..]) {
            let quotes = out[start..].iter().filter(|&&b| b == b'"').count();
            if quotes == 0 {
                out.insert(start, b'"');
            } else {
                let field = out.split_off(start);
                out.reserve(field.len() + quotes + 2);
                out.push(b'"');
                for &b in &field {
                    if b == b'"' {
                        out.push(b'"');
                    }
                    out.push(b);
                }
            }
            out.push(b'"');
        }
    }
}

impl Formatter for CsvFormatter {
    fn format(&self, _tag: &str, _time: EventTime, record: &Record, out: &mut Vec<u8>) {
        for (i, f) in self.fields.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(&self.delimiter);
            }
            self.write_field(out, record.get(f));
        }
        if let Some(nl) = self.newline {
            out.extend_from_slice(nl);
        }
    }
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Formatter>, ConfigError> {
    let c: CsvConf = ctx.configure(elem, "csv")?;
    let fields: Vec<Vec<u8>> = c
        .fields
        .into_iter()
        .filter(|f| !f.is_empty())
        .map(String::into_bytes)
        .collect();
    if fields.is_empty() {
        return Err(elem.error("empty value is specified in fields parameter"));
    }
    let delimiter = if c.delimiter == "\\t" || c.delimiter == "TAB" {
        b"\t".to_vec()
    } else {
        c.delimiter.into_bytes()
    };
    Ok(Box::new(CsvFormatter {
        fields,
        delimiter,
        force_quotes: c.force_quotes,
        newline: c.add_newline.then(|| c.newline.as_bytes()),
    }))
}

#[cfg(test)]
mod tests {
    use super::super::formatter_json::test_util::*;
    use super::*;

    fn r() -> Record {
        rec(vec![
            ("a", Value::Int(1)),
            ("b", Value::str("say \"hi\", ok")),
            ("c", Value::str("plain")),
            ("e", Value::str("")),
        ])
    }

    #[test]
    fn case_086_forced_quotes_and_missing_field() {
        assert_eq!(
            run(
                create,
                &[("fields", "a,b,missing,c")],
                "t",
                EventTime::new(0, 0),
                &r()
            ),
            b"\"1\",\"say \"\"hi\"\", ok\",\"\",\"plain\"\n"
        );
    }

    #[test]
    fn unforced_quotes_and_tab_keyword() {
        let p = [("fields", "a,b,missing,c,e"), ("force_quotes", "false")];
        assert_eq!(
            run(create, &p, "t", EventTime::new(0, 0), &r()),
            b"1,\"say \"\"hi\"\", ok\",,plain,\"\"\n"
        );
        let p = [
            ("fields", "a,c"),
            ("delimiter", "\\t"),
            ("add_newline", "false"),
        ];
        assert_eq!(
            run(create, &p, "t", EventTime::new(0, 0), &r()),
            b"\"1\"\t\"plain\""
        );
        let p = [
            ("fields", "a,c"),
            ("delimiter", "TAB"),
            ("force_quotes", "false"),
        ];
        assert_eq!(
            run(create, &p, "t", EventTime::new(0, 0), &r()),
            b"1\tplain\n"
        );
    }

    #[test]
    fn empty_fields_is_an_error() {
        let e = section("format", &[("fields", ",")]);
        let err = create(&e, &PluginContext::for_tests())
            .err()
            .map(|e| e.message);
        assert_eq!(
            err.as_deref(),
            Some("empty value is specified in fields parameter")
        );
    }
}
