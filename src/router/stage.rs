//! What a router runs: `<filter>` and `<match>` plugins, as the router sees them. Defined here,
//! below the plugins, and re-exported by `plugins`.

use crate::event::EventStream;

/// A `<filter>`: takes a batch for one tag, returns the batch to pass on.
pub trait Filter: Send + Sync {
    fn filter_stream(&self, tag: &str, es: EventStream) -> EventStream;
    /// Called once every plugin exists and before inputs start (timers start here).
    fn start(&self) {}
    /// Inputs have stopped, outputs not yet: hand on what is held back.
    fn shutdown(&self) {}
}

/// Why an output could not take a stream. The stream, when handed back, goes to `@ERROR`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct OutputError {
    pub message: String,
    pub stream: Option<EventStream>,
}

impl OutputError {
    pub fn new(message: impl Into<String>) -> Self {
        OutputError {
            message: message.into(),
            stream: None,
        }
    }

    pub fn with_stream(message: impl Into<String>, stream: EventStream) -> Self {
        OutputError {
            message: message.into(),
            stream: Some(stream),
        }
    }
}

/// A `<match>` plugin. `emit` is synchronous: it returns once the stream is written, buffered
/// or handed on, and may block to give backpressure.
pub trait Output: Send + Sync {
    fn emit(&self, tag: &str, es: EventStream) -> Result<(), OutputError>;
    /// Called once every plugin exists and before inputs start.
    fn start(&self) -> anyhow::Result<()> {
        Ok(())
    }
    /// SIGUSR1: write out what is buffered.
    fn flush(&self) {}
    /// Inputs have stopped: flush per the plugin's policy and release resources.
    fn shutdown(&self) {}
}
