//! `@type msgpack` (parser): every msgpack map in the data is a record; an array yields one
//! event per map element.

use super::parser::{not_matched, Defaults, ParserCommon};
use super::{Parser, ParserError, PluginContext};
use crate::config_parser::{ConfigError, Element};
use crate::event::msgpack::Decoder;
use crate::event::{EventTime, Record, Value};

crate::parser_config! {
    pub struct MsgpackParserConf {}
}

pub struct MsgpackParser {
    common: ParserCommon,
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Parser>, ConfigError> {
    let conf: MsgpackParserConf = ctx.configure(elem, "msgpack")?;
    let common = ParserCommon::build(&conf.common(), Defaults::NONE, elem)?;
    Ok(Box::new(MsgpackParser { common }))
}

impl Parser for MsgpackParser {
    fn parse(
        &self,
        text: &[u8],
        emit: &mut dyn FnMut(Option<EventTime>, Record),
    ) -> Result<(), ParserError> {
        let mut reader = Decoder::new(text);
        let mut unmatched = false;
        while !reader.at_end() {
            let v = reader
                .read_value()
                .map_err(|e| ParserError(e.to_string()))?;
            let items = match v {
                Value::Array(a) => a,
                other => vec![other],
            };
            for item in items {
                match item {
                    Value::Map(rec) => {
                        let (t, r) = self.common.finish(rec)?;
                        emit(t, r);
                    }
                    _ => unmatched = true,
                }
            }
        }
        if unmatched {
            Err(not_matched())
        } else {
            Ok(())
        }
    }

    /// The unpacker's stream: objects as they complete, whatever the read boundaries.
    fn parse_io(
        &self,
        reader: &mut dyn std::io::Read,
        emit: &mut dyn FnMut(Option<EventTime>, Record),
    ) -> Option<Result<(), ParserError>> {
        Some(self.stream(reader, emit))
    }
}

impl MsgpackParser {
    fn stream(
        &self,
        reader: &mut dyn std::io::Read,
        emit: &mut dyn FnMut(Option<EventTime>, Record),
    ) -> Result<(), ParserError> {
        use crate::event::msgpack::DErr;
        let mut buf: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; 8192];
        loop {
            let n = loop {
                match reader.read(&mut chunk) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(ParserError(e.to_string())),
                }
            };
            if n == 0 {
                return if buf.is_empty() {
                    Ok(())
                } else {
                    Err(ParserError("unexpected end of msgpack data".into()))
                };
            }
            buf.extend_from_slice(&chunk[..n]);
            let mut d = Decoder::new(&buf);
            let mut used = 0;
            while !d.at_end() {
                match d.read_value() {
                    Ok(v) => {
                        used = d.position();
                        let items = match v {
                            Value::Array(a) => a,
                            other => vec![other],
                        };
                        for item in items {
                            if let Value::Map(rec) = item {
                                let (t, r) = self.common.finish(rec)?;
                                emit(t, r);
                            }
                        }
                    }
                    Err(DErr::Eof) => break,
                    Err(e) => return Err(ParserError(e.to_string())),
                }
            }
            buf.drain(..used);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parser::test_support::*;
    use crate::event::{Record, Value};

    #[test]
    fn maps_and_arrays() {
        let p = parser("@type msgpack");
        let mut r = Record::new();
        r.insert("a", Value::Int(1));
        let mut buf = Vec::new();
        crate::event::msgpack::write_record(&mut buf, &r);
        buf.push(0x92);
        crate::event::msgpack::write_record(&mut buf, &r);
        crate::event::msgpack::write_record(&mut buf, &r);
        let out = parse_bytes(&*p, &buf).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(json(&out[2].1), r#"{"a":1}"#);
        assert!(parse_bytes(&*p, &[0x01]).is_err());
        assert!(parse_bytes(&*p, &[0x81]).is_err());
    }
}
