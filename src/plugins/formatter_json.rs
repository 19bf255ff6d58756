//! `@type json` (formatter).

use super::{Formatter, PluginContext};
use crate::config_parser::{ConfigError, Element};

pub fn create(elem: &Element, _ctx: &PluginContext) -> Result<Box<dyn Formatter>, ConfigError> {
    Err(elem.error("formatter plugin 'json' is not available in this build yet"))
}
