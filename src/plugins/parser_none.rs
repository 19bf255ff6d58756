//! `@type none` (parser): the whole line under `message_key`; time is now.

use super::{Parser, ParserError, PluginContext};
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventTime, Record, Value};

crate::parser_config! {
    pub struct NoneParserConf {
        #[serde(default = "default_message_key")]
        pub message_key: String,
    }
}

fn default_message_key() -> String {
    "message".to_string()
}

pub struct NoneParser {
    key: Vec<u8>,
    estimate_current_event: bool,
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Parser>, ConfigError> {
    let conf: NoneParserConf = ctx.configure(elem, "none")?;
    Ok(Box::new(NoneParser {
        key: conf.message_key.into_bytes(),
        estimate_current_event: conf.estimate_current_event.unwrap_or(true),
    }))
}

impl Parser for NoneParser {
    fn parse(
        &self,
        text: &[u8],
        emit: &mut dyn FnMut(Option<EventTime>, Record),
    ) -> Result<(), ParserError> {
        let mut r = Record::with_capacity(2);
        r.push_unchecked(self.key.clone(), Value::Str(text.to_vec()));
        emit(self.estimate_current_event.then(EventTime::now), r);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::parser::test_support::*;

    #[test]
    fn message_key_case_136() {
        let p = parser("@type none\nmessage_key log");
        let out = parse_all(&*p, "\ttabbed").unwrap();
        assert_eq!(json(&out[0].1), r#"{"log":"\ttabbed"}"#);
        assert!(out[0].0.is_some());
        let p = parser("@type none");
        let out = parse_bytes(&*p, b"bad \xff byte").unwrap();
        assert_eq!(
            out[0].1.get("message"),
            Some(&crate::event::Value::Str(b"bad \xff byte".to_vec()))
        );
        let p = parser("@type none\nestimate_current_event false");
        assert_eq!(parse_all(&*p, "x").unwrap()[0].0, None);
    }
}
