//! `@type stdout` (output).

use super::{Output, PluginContext};
use crate::config_parser::{ConfigError, Element};

pub fn create(elem: &Element, _ctx: &PluginContext) -> Result<Box<dyn Output>, ConfigError> {
    Err(elem.error("output plugin 'stdout' is not available in this build yet"))
}
