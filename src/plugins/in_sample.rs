//! `@type sample` (input).

use super::{PluginContext, Input};
use crate::config_parser::{ConfigError, Element};

pub fn create(elem: &Element, _ctx: &PluginContext) -> Result<Box<dyn Input>, ConfigError> {
    Err(elem.error("input plugin 'sample' is not available in this build yet"))
}
