//! Small helpers shared across modules.

/// The machine's hostname, as Ruby's `Socket.gethostname`.
pub fn hostname() -> String {
    hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".to_string())
}

/// A JSON value from the config (parsed with serde_json, order kept) as a record value.
pub fn value_from_json(v: serde_json::Value) -> crate::event::Value {
    use crate::event::{Record, Value};
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::UInt(u)
            } else {
                Value::Float(n.as_f64().unwrap_or(0.0))
            }
        }
        serde_json::Value::String(s) => Value::Str(s.into_bytes()),
        serde_json::Value::Array(a) => Value::Array(a.into_iter().map(value_from_json).collect()),
        serde_json::Value::Object(m) => {
            let mut r = Record::with_capacity(m.len());
            for (k, v) in m {
                r.insert(k.into_bytes(), value_from_json(v));
            }
            Value::Map(r)
        }
    }
}
