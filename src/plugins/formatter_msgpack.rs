//! `@type msgpack` (formatter): the record as a msgpack map (no time, no tag, no newline).

use super::{Formatter, PluginContext};
use crate::config_parser::{ConfigError, Element};
use crate::event::{msgpack, EventTime, Record};

#[derive(serde::Deserialize)]
struct MsgpackConf {}

pub struct MsgpackFormatter;

impl Formatter for MsgpackFormatter {
    fn format(&self, _tag: &str, _time: EventTime, record: &Record, out: &mut Vec<u8>) {
        msgpack::write_record(out, record);
    }
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Formatter>, ConfigError> {
    let _: MsgpackConf = ctx.configure(elem, "msgpack")?;
    Ok(Box::new(MsgpackFormatter))
}

#[cfg(test)]
mod tests {
    use super::super::formatter_json::test_util::*;
    use super::*;
    use crate::event::Value;

    #[test]
    fn record_as_msgpack_map() {
        let r = rec(vec![("a", Value::Int(1))]);
        assert_eq!(
            run(create, &[], "t", EventTime::new(0, 0), &r),
            vec![0x81, 0xa1, b'a', 0x01]
        );
    }
}
