//! `@type prometheus` filter (fluent-plugin-prometheus): counts events into the `<metric>`s
//! and passes them on unchanged.

use serde::Deserialize;

use super::prometheus::Instruments;
use super::{Filter, PluginContext};
use crate::config_parser::{ConfigError, Element, Nested};
use crate::event::EventStream;

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
pub(crate) struct PrometheusPluginConfig {
    pub metric: Option<Vec<Nested>>,
    pub labels: Option<Nested>,
}

pub struct PrometheusFilter {
    metrics: Instruments,
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Filter>, ConfigError> {
    let _: PrometheusPluginConfig = ctx.configure(elem, "prometheus")?;
    Ok(Box::new(PrometheusFilter {
        metrics: Instruments::configure(elem, ctx, "filter_prometheus")?,
    }))
}

impl Filter for PrometheusFilter {
    fn filter_stream(&self, tag: &str, es: EventStream) -> EventStream {
        self.metrics.instrument(tag, &es);
        es
    }
}
