//! `@type copy`: every `<store>` gets the stream, in order. `<store ignore_error>` keeps a
//! failing store from stopping the ones after it.

use std::sync::Arc;

use serde::Deserialize;

use super::{Output, OutputError, PluginContext};
use crate::config_parser::{ConfigError, Element, Nested};
use crate::event::EventStream;

#[derive(Debug, Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum CopyMode {
    NoCopy,
    Shallow,
    Deep,
    Marshal,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct CopyConfig {
    #[serde(default = "default_mode")]
    copy_mode: CopyMode,
    #[serde(default)]
    deep_copy: bool,
    store: Vec<Nested>,
}

fn default_mode() -> CopyMode {
    CopyMode::NoCopy
}

struct Store {
    output: Arc<dyn Output>,
    ignore_error: bool,
}

pub struct CopyOutput {
    stores: Vec<Store>,
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Output>, ConfigError> {
    let cfg: Result<CopyConfig, ConfigError> = ctx.configure(elem, "copy");
    let _cfg = cfg.map_err(|e| {
        if e.message.contains("'store' parameter is required") {
            elem.error("Missing <store> sections in copy plugin")
        } else {
            e
        }
    })?;
    let mut stores = Vec::new();
    for s in elem.children("store") {
        stores.push(Store {
            output: super::new_store(s, ctx)?,
            ignore_error: s.arg.split_whitespace().any(|a| a == "ignore_error"),
        });
    }
    Ok(Box::new(CopyOutput { stores }))
}

impl Output for CopyOutput {
    fn emit(&self, tag: &str, es: EventStream) -> Result<(), OutputError> {
        let n = self.stores.len();
        let mut es = Some(es);
        for (i, store) in self.stores.iter().enumerate() {
            // Each store owns its copy; the last one takes the original.
            let copy = if i + 1 == n {
                es.take().unwrap_or_default()
            } else {
                es.as_ref().cloned().unwrap_or_default()
            };
            if let Err(e) = store.output.emit(tag, copy) {
                if store.ignore_error {
                    tracing::error!("ignore emit error in store {}: {}", i, e.message);
                } else {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn start(&self) -> anyhow::Result<()> {
        for s in &self.stores {
            s.output.start()?;
        }
        Ok(())
    }

    fn flush(&self) {
        for s in &self.stores {
            s.output.flush();
        }
    }

    fn shutdown(&self) {
        for s in &self.stores {
            s.output.shutdown();
        }
    }
}
