//! OTLP/JSON. The crate's serde mapping is OTLP/JSON (lowerCamelCase keys, hex trace and span
//! ids, 64-bit integers as strings, enums as integers). On input we also take what proto3 JSON
//! writers send (the Ruby plugin's `message`, google-protobuf's `to_json`): snake_case keys,
//! base64 ids, enum names, numbers as strings. [`to_proto3_json`] writes the Ruby plugin's
//! `message` flavour: base64 ids, enum names, default values left out.

use base64::Engine as _;
use serde_json::{Map, Value as J};

use super::{ExportLogsServiceRequest, ExportLogsServiceResponse, SeverityNumber};

/// Fields of the AnyValue oneof: written even when they hold a default value.
const ONEOF_KEYS: &[&str] = &[
    "stringValue",
    "boolValue",
    "intValue",
    "doubleValue",
    "bytesValue",
    "arrayValue",
    "kvlistValue",
];

/// Decodes an OTLP/JSON (or proto3 JSON) `ExportLogsServiceRequest`.
pub fn decode(body: &[u8]) -> Result<ExportLogsServiceRequest, String> {
    let mut v: J = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    if !v.is_object() {
        return Err("invalid OTLP/JSON: the body is not an object".into());
    }
    normalize(&mut v)?;
    serde_json::from_value(v).map_err(|e| format!("invalid OTLP/JSON logs request: {e}"))
}

/// OTLP/JSON bytes of a request.
pub fn encode(req: &ExportLogsServiceRequest) -> Vec<u8> {
    // Serializing plain data to a Vec cannot fail; NaN doubles become null.
    serde_json::to_vec(req).unwrap_or_default()
}

/// OTLP/JSON of a response, `rejectedLogRecords` as a string (an int64).
pub fn encode_response(resp: &ExportLogsServiceResponse) -> Vec<u8> {
    match &resp.partial_success {
        None => b"{}".to_vec(),
        Some(p) => {
            let mut ps = Map::new();
            if p.rejected_log_records != 0 {
                ps.insert(
                    "rejectedLogRecords".into(),
                    J::String(p.rejected_log_records.to_string()),
                );
            }
            if !p.error_message.is_empty() {
                ps.insert("errorMessage".into(), J::String(p.error_message.clone()));
            }
            let mut m = Map::new();
            m.insert("partialSuccess".into(), J::Object(ps));
            serde_json::to_vec(&J::Object(m)).unwrap_or_default()
        }
    }
}

/// Decodes a JSON `ExportLogsServiceResponse` (an exporter reading a 2xx answer).
pub fn decode_response(body: &[u8]) -> Result<ExportLogsServiceResponse, String> {
    let mut v: J = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    normalize(&mut v)?;
    if let Some(n) = v
        .pointer_mut("/partialSuccess/rejectedLogRecords")
        .filter(|n| n.is_string())
    {
        let parsed = n.as_str().and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
        *n = J::from(parsed);
    }
    serde_json::from_value(v).map_err(|e| format!("invalid OTLP/JSON response: {e}"))
}

/// The request as google-protobuf's `to_json` writes it (what the Ruby plugin puts in `message`).
pub fn to_proto3_json(req: &ExportLogsServiceRequest) -> String {
    let mut v = serde_json::to_value(req).unwrap_or(J::Null);
    proto3_flavour(&mut v);
    serde_json::to_string(&v).unwrap_or_default()
}

fn snake_to_camel(k: &str) -> Option<String> {
    if !k.contains('_') {
        return None;
    }
    let mut out = String::with_capacity(k.len());
    let mut up = false;
    for c in k.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// A trace or span id as hex: hex stays, base64 of the right length is converted.
fn id_to_hex(s: &str, len: usize) -> Result<String, String> {
    if s.is_empty() || (s.len() == len * 2 && s.bytes().all(|b| b.is_ascii_hexdigit())) {
        return Ok(s.to_ascii_lowercase());
    }
    match base64::engine::general_purpose::STANDARD.decode(s) {
        Ok(b) if b.len() == len => Ok(b.iter().map(|x| format!("{x:02x}")).collect()),
        _ => Err(format!(
            "invalid id '{s}': expected {} hex digits or base64 of {len} bytes",
            len * 2
        )),
    }
}

fn normalize(v: &mut J) -> Result<(), String> {
    match v {
        J::Array(a) => {
            for x in a {
                normalize(x)?;
            }
        }
        J::Object(m) => {
            let old = std::mem::take(m);
            for (k, mut val) in old {
                let key = snake_to_camel(&k).unwrap_or(k);
                if val.is_null() {
                    continue;
                }
                match key.as_str() {
                    "traceId" | "spanId" | "parentSpanId" => {
                        if let J::String(s) = &val {
                            let len = if key == "traceId" { 16 } else { 8 };
                            val = J::String(id_to_hex(s, len)?);
                        }
                    }
                    "severityNumber" => {
                        if let J::String(s) = &val {
                            let n = match SeverityNumber::from_str_name(s) {
                                Some(n) => n as i32,
                                None => s
                                    .parse::<i32>()
                                    .map_err(|_| format!("invalid severityNumber '{s}'"))?,
                            };
                            val = J::from(n);
                        }
                    }
                    "flags" | "droppedAttributesCount" => {
                        if let J::String(s) = &val {
                            val = J::from(
                                s.parse::<u32>()
                                    .map_err(|_| format!("invalid {key} '{s}'"))?,
                            );
                        }
                    }
                    "doubleValue" => {
                        if let J::String(s) = &val {
                            // "NaN"/"Infinity" have no JSON number; they become 0.
                            let f = s.parse::<f64>().unwrap_or(0.0);
                            val = serde_json::Number::from_f64(f)
                                .map(J::Number)
                                .unwrap_or_else(|| J::from(0));
                        }
                    }
                    _ => normalize(&mut val)?,
                }
                m.insert(key, val);
            }
        }
        _ => {}
    }
    Ok(())
}

fn is_default(v: &J) -> bool {
    match v {
        J::Null => true,
        J::Bool(b) => !b,
        J::Number(n) => n.as_f64() == Some(0.0),
        J::String(s) => s.is_empty() || s == "0",
        J::Array(a) => a.is_empty(),
        J::Object(_) => false,
    }
}

fn hex_to_base64(s: &str) -> String {
    let bytes: Vec<u8> = (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok())
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn proto3_flavour(v: &mut J) {
    match v {
        J::Array(a) => a.iter_mut().for_each(proto3_flavour),
        J::Object(m) => {
            let old = std::mem::take(m);
            for (k, mut val) in old {
                let oneof = ONEOF_KEYS.contains(&k.as_str());
                if !oneof && is_default(&val) {
                    continue;
                }
                match k.as_str() {
                    "traceId" | "spanId" | "parentSpanId" => {
                        if let J::String(s) = &val {
                            val = J::String(hex_to_base64(s));
                        }
                    }
                    "severityNumber" => {
                        if let Some(n) = val.as_i64() {
                            if let Some(name) = i32::try_from(n)
                                .ok()
                                .and_then(|n| SeverityNumber::try_from(n).ok())
                            {
                                val = J::String(name.as_str_name().to_string());
                            }
                        }
                    }
                    _ => proto3_flavour(&mut val),
                }
                m.insert(k, val);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::{any_value, AnyValue, KeyValue, LogRecord, ResourceLogs, ScopeLogs};

    fn sample() -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: None,
                scope_logs: vec![ScopeLogs {
                    scope: None,
                    log_records: vec![LogRecord {
                        time_unix_nano: 1_744_261_044_119_140_009,
                        severity_number: 9,
                        severity_text: "INFO".into(),
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("hi".into())),
                        }),
                        attributes: vec![KeyValue {
                            key: "n".into(),
                            value: Some(AnyValue {
                                value: Some(any_value::Value::IntValue(-7)),
                            }),
                            ..Default::default()
                        }],
                        trace_id: (0u8..16).collect(),
                        span_id: (0u8..8).collect(),
                        ..Default::default()
                    }],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }

    #[test]
    fn encoding_is_otlp_json() {
        let text = String::from_utf8(encode(&sample())).unwrap();
        assert!(text.contains(r#""resourceLogs":[{"#), "{text}");
        assert!(
            text.contains(r#""timeUnixNano":"1744261044119140009""#),
            "{text}"
        );
        assert!(
            text.contains(r#""traceId":"000102030405060708090a0b0c0d0e0f""#),
            "{text}"
        );
        assert!(text.contains(r#""spanId":"0001020304050607""#), "{text}");
        assert!(text.contains(r#""severityNumber":9"#), "{text}");
        assert!(text.contains(r#""intValue":"-7""#), "{text}");
        assert_eq!(decode(text.as_bytes()).unwrap(), sample());
    }

    #[test]
    fn proto3_json_round_trips_and_matches_the_ruby_shape() {
        let text = to_proto3_json(&sample());
        assert_eq!(
            text,
            r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"1744261044119140009","severityNumber":"SEVERITY_NUMBER_INFO","severityText":"INFO","body":{"stringValue":"hi"},"attributes":[{"key":"n","value":{"intValue":"-7"}}],"traceId":"AAECAwQFBgcICQoLDA0ODw==","spanId":"AAECAwQFBgc="}]}]}]}"#
        );
        assert_eq!(decode(text.as_bytes()).unwrap(), sample());
    }

    #[test]
    fn accepts_snake_case_and_numbers_for_int64() {
        let body = br#"{"resource_logs":[{"scope_logs":[{"log_records":[{"time_unix_nano":5,"severity_number":"17","body":{"int_value":3},"flags":"1"}]}]}]}"#;
        let r = decode(body).unwrap();
        let lr = &r.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(lr.time_unix_nano, 5);
        assert_eq!(lr.severity_number, 17);
        assert_eq!(lr.flags, 1);
        assert_eq!(
            lr.body.as_ref().and_then(|b| b.value.clone()),
            Some(any_value::Value::IntValue(3))
        );
    }

    #[test]
    fn bad_bodies_are_errors() {
        for b in [
            &b"not json"[..],
            b"[1]",
            br#"{"resourceLogs":5}"#,
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"zz"}]}]}]}"#,
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityNumber":"LOUD"}]}]}]}"#,
        ] {
            assert!(decode(b).is_err(), "{}", String::from_utf8_lossy(b));
        }
        assert_eq!(decode(b"{}").unwrap(), ExportLogsServiceRequest::default());
    }

    #[test]
    fn responses() {
        let r = crate::otlp::partial_success_response(3, "too old");
        let text = encode_response(&r);
        assert_eq!(
            String::from_utf8(text.clone()).unwrap(),
            r#"{"partialSuccess":{"rejectedLogRecords":"3","errorMessage":"too old"}}"#
        );
        assert_eq!(decode_response(&text).unwrap(), r);
        assert_eq!(
            encode_response(&ExportLogsServiceResponse::default()),
            b"{}"
        );
    }
}
