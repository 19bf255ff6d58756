//! The v1 config syntax.
use super::{ConfigError, Element, ParseOptions};
use std::path::Path;

pub fn parse_str(_text: &str, path: &Path, _opts: &ParseOptions) -> Result<Element, ConfigError> {
    Err(ConfigError::new(format!("{}: parser not ready", path.display())))
}
