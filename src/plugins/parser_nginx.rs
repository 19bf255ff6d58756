//! `@type nginx` (parser).

use super::{Parser, PluginContext};
use crate::config_parser::{ConfigError, Element};

pub fn create(elem: &Element, _ctx: &PluginContext) -> Result<Box<dyn Parser>, ConfigError> {
    Err(elem.error("parser plugin 'nginx' is not available in this build yet"))
}
