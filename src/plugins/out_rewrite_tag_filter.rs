//! `@type rewrite_tag_filter` (output).

use super::{PluginContext, Output};
use crate::config_parser::{ConfigError, Element};

pub fn create(elem: &Element, _ctx: &PluginContext) -> Result<Box<dyn Output>, ConfigError> {
    Err(elem.error("output plugin 'rewrite_tag_filter' is not available in this build yet"))
}
