//! `@type null` (output).

use super::{PluginContext, Output};
use crate::config_parser::{ConfigError, Element};

pub fn create(elem: &Element, _ctx: &PluginContext) -> Result<Box<dyn Output>, ConfigError> {
    Err(elem.error("output plugin 'null' is not available in this build yet"))
}
