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
