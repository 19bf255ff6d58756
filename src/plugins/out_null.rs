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
    super::check_section_type(elem, "buffer", super::BUFFER_TYPES)?;
    Ok(Box::new(NullOutput))
}

/// `<secondary> @type null`: chunks the primary could not write are discarded.
pub fn create_secondary(
    elem: &Element,
    ctx: &PluginContext,
) -> Result<Box<dyn crate::buffer::BufferedOutput>, ConfigError> {
    let _: NullConfig = ctx.configure(elem, "null")?;
    Ok(Box::new(NullOutput))
}

impl crate::buffer::BufferedOutput for NullOutput {
    fn write(&self, _chunk: &crate::buffer::Chunk) -> Result<(), crate::buffer::WriteError> {
        Ok(())
    }
}

impl Output for NullOutput {
    fn emit(&self, _tag: &str, _es: EventStream) -> Result<(), OutputError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::plugins::PluginContext;
    use crate::test_util::directive;

    #[test]
    fn secondary_null_is_accepted() {
        let conf = "<match a>\n@type file\npath /tmp/ferrentd-secondary-null-test/x\n<buffer>\n@type memory\n</buffer>\n<secondary>\n@type null\n</secondary>\n</match>";
        assert!(crate::plugins::new_output(&directive(conf), &PluginContext::for_tests()).is_ok());
    }
}
