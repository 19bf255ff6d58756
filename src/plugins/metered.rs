//! Wrappers the engine puts around each `<match>` and `<filter>` to count what they get
//! (`emit_count`, `emit_records`) without the plugins knowing.

use std::sync::Arc;

use super::{Filter, Output, OutputError};
use crate::event::EventStream;
use crate::metrics::PluginMetrics;

struct MeteredOutput {
    inner: Box<dyn Output>,
    m: Arc<PluginMetrics>,
}

impl Output for MeteredOutput {
    fn emit(&self, tag: &str, es: EventStream) -> Result<(), OutputError> {
        self.m.emit_count.inc();
        self.m.emit_records.add(es.len() as u64);
        let r = self.inner.emit(tag, es);
        if r.is_err() && self.m.buffer().is_none() {
            // Buffered outputs count their own write errors.
            self.m.num_errors.inc();
        }
        r
    }
    fn start(&self) -> anyhow::Result<()> {
        self.inner.start()
    }
    fn flush(&self) {
        self.inner.flush()
    }
    fn shutdown(&self) {
        self.inner.shutdown()
    }
}

struct MeteredFilter {
    inner: Box<dyn Filter>,
    m: Arc<PluginMetrics>,
}

impl Filter for MeteredFilter {
    fn filter_stream(&self, tag: &str, es: EventStream) -> EventStream {
        let out = self.inner.filter_stream(tag, es);
        self.m.emit_records.add(out.len() as u64);
        out
    }
    fn start(&self) {
        self.inner.start()
    }
    fn shutdown(&self) {
        self.inner.shutdown()
    }
}

pub fn output(o: Box<dyn Output>, m: Arc<PluginMetrics>) -> Arc<dyn Output> {
    Arc::new(MeteredOutput { inner: o, m })
}

pub fn filter(f: Box<dyn Filter>, m: Arc<PluginMetrics>) -> Arc<dyn Filter> {
    Arc::new(MeteredFilter { inner: f, m })
}
