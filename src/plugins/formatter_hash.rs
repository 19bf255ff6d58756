//! `@type hash` (formatter).

use super::{Formatter, PluginContext};
use crate::config_parser::{ConfigError, Element};

pub fn create(elem: &Element, _ctx: &PluginContext) -> Result<Box<dyn Formatter>, ConfigError> {
    Err(elem.error("formatter plugin 'hash' is not available in this build yet"))
}

/// Ruby's `Hash#inspect` of a value (`{"k"=>"v"}`).
pub fn inspect(v: &crate::event::Value) -> Vec<u8> {
    format!("{v:?}").into_bytes()
}
