//! `@type stdout` (filter).

use super::{Filter, PluginContext};
use crate::config_parser::{ConfigError, Element};

pub fn create(elem: &Element, _ctx: &PluginContext) -> Result<Box<dyn Filter>, ConfigError> {
    Err(elem.error("filter plugin 'stdout' is not available in this build yet"))
}
