//! `@type null`: discards events (a `<buffer>` is accepted, as in Fluentd).

use serde::Deserialize;

use super::{Output, OutputError, PluginContext};
use crate::config_parser::{ConfigError, Element, Nested};
use crate::event::EventStream;

#[derive(Debug, Deserialize)]
struct NullConfig {
    #[serde(default)]
    #[allow(dead_code)]
    never_flush: bool,
    #[allow(dead_code)]
    buffer: Option<Nested>,
}

pub struct NullOutput;

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Output>, ConfigError> {
    let _: NullConfig = ctx.configure(elem, "null")?;
    Ok(Box::new(NullOutput))
}

impl Output for NullOutput {
    fn emit(&self, _tag: &str, _es: EventStream) -> Result<(), OutputError> {
        Ok(())
    }
}
