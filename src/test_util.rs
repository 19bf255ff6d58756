//! Helpers shared by unit tests.

use crate::config_parser::{Element, SourceFile, Span};
use crate::event::{Record, Value};
use std::sync::Arc;

/// A section with the given parameters and no source text.
pub fn section(name: &str, params: &[(&str, &str)]) -> Element {
    let file = Arc::new(SourceFile {
        path: "test.conf".into(),
        text: String::new(),
    });
    let mut e = Element::new(name, "", Span::new(file, 0));
    for (k, v) in params {
        e.set(k, v);
    }
    e
}

/// A record from (key, value) pairs, in order.
pub fn rec(fields: Vec<(&str, Value)>) -> Record {
    fields
        .into_iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v))
        .collect()
}

/// A record from a JSON object.
pub fn json_record(line: &str) -> Record {
    match serde_json::from_str(line).map(crate::util::value_from_json) {
        Ok(Value::Map(m)) => m,
        other => panic!("not a JSON object: {line}: {other:?}"),
    }
}

/// The first directive of a config text, as the config parser builds it.
pub fn directive(text: &str) -> Element {
    let root = crate::config_parser::parse_str(
        text,
        std::path::Path::new("fluent.conf"),
        &Default::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    root.elements
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no directive in {text}"))
}

/// Runs `f` with a logger of its own (this thread only) and returns what it logged, as
/// `[level]: message` lines.
pub fn capture_logs<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    use tracing_subscriber::layer::SubscriberExt;
    struct Collect(Arc<std::sync::Mutex<Vec<String>>>);
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Collect {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _ctx: tracing_subscriber::layer::Context<'_, S>,
        ) {
            let mut v = crate::logging::MessageVisitor::default();
            event.record(&mut v);
            let line = format!(
                "[{}]: {}",
                crate::logging::level_name(event.metadata().level()),
                v.0
            );
            if let Ok(mut l) = self.0.lock() {
                l.push(line);
            }
        }
    }
    let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sub = tracing_subscriber::registry().with(Collect(lines.clone()));
    let r = tracing::subscriber::with_default(sub, f);
    let out = lines.lock().map(|l| l.clone()).unwrap_or_default();
    (r, out)
}
