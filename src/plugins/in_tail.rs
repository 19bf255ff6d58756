//! `@type tail` (input).

use super::{PluginContext, Input};
use crate::config_parser::{ConfigError, Element};

pub fn create(elem: &Element, _ctx: &PluginContext) -> Result<Box<dyn Input>, ConfigError> {
    Err(elem.error("input plugin 'tail' is not available in this build yet"))
}
