//! `@type relabel`: hands the stream, unchanged, to the router of its `@label`.

use super::{Output, OutputError, PluginContext};
use crate::config_parser::{ConfigError, Element};
use crate::event::EventStream;
use crate::router::Emitter;

#[derive(Debug, serde::Deserialize)]
struct RelabelConfig {}

pub struct RelabelOutput {
    target: Emitter,
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Output>, ConfigError> {
    let _: RelabelConfig = ctx.configure(elem, "relabel")?;
    if elem.get("@label").is_none() {
        tracing::warn!(
            "{} uses @type relabel without @label: events go back to the same router",
            elem.display_name()
        );
    }
    Ok(Box::new(RelabelOutput {
        target: ctx.router.clone(),
    }))
}

impl Output for RelabelOutput {
    fn emit(&self, tag: &str, es: EventStream) -> Result<(), OutputError> {
        self.target.emit(tag, es);
        Ok(())
    }
}
