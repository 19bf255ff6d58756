//! `@type tsv` (parser): values split by `delimiter` into `keys` (at most as many fields as
//! keys; missing trailing fields are null, empty ones empty strings).

use super::parser::{ruby_split_limit, Defaults, ParserCommon};
use super::{Parser, ParserError, PluginContext};
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventTime, Record, Value};

crate::parser_config! {
    pub struct TsvParserConf {
        pub keys: Vec<String>,
        #[serde(default = "default_delimiter")]
        pub delimiter: String,
    }
}

fn default_delimiter() -> String {
    "\t".to_string()
}

pub struct TsvParser {
    keys: Vec<Vec<u8>>,
    delimiter: Vec<u8>,
    common: ParserCommon,
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Parser>, ConfigError> {
    let conf: TsvParserConf = ctx.configure(elem, "tsv")?;
    let common = ParserCommon::build(&conf.common(), Defaults::NONE, elem)?;
    Ok(Box::new(TsvParser {
        keys: conf.keys.into_iter().map(String::into_bytes).collect(),
        delimiter: conf.delimiter.into_bytes(),
        common,
    }))
}

/// `Hash[keys.zip(values)]`: missing values are nil, a repeated key keeps the last value.
pub fn zip_record(keys: &[Vec<u8>], values: impl IntoIterator<Item = Value>) -> Record {
    let mut rec = Record::with_capacity(keys.len());
    let mut values = values.into_iter();
    for k in keys {
        rec.insert(k.clone(), values.next().unwrap_or(Value::Nil));
    }
    rec
}

impl Parser for TsvParser {
    fn parse(
        &self,
        text: &[u8],
        emit: &mut dyn FnMut(Option<EventTime>, Record),
    ) -> Result<(), ParserError> {
        let values = ruby_split_limit(text, &self.delimiter, self.keys.len())
            .into_iter()
            .map(|v| Value::Str(v.to_vec()));
        let (t, r) = self.common.finish(zip_record(&self.keys, values))?;
        emit(t, r);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::parser::test_support::*;

    #[test]
    fn case_139() {
        let p = parser("@type tsv\nkeys a,b,c");
        assert_eq!(
            json(&parse_all(&*p, "x\ty\tz").unwrap()[0].1),
            r#"{"a":"x","b":"y","c":"z"}"#
        );
        assert_eq!(
            json(&parse_all(&*p, "1\t\t").unwrap()[0].1),
            r#"{"a":"1","b":"","c":""}"#
        );
        assert_eq!(
            json(&parse_all(&*p, "only").unwrap()[0].1),
            r#"{"a":"only","b":null,"c":null}"#
        );
        assert_eq!(
            json(&parse_all(&*p, "1\t2\t3\t4").unwrap()[0].1),
            r#"{"a":"1","b":"2","c":"3\t4"}"#
        );
    }
}
