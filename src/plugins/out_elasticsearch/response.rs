//! Per-item `_bulk` results, as `elasticsearch_error_handler.rb` reads them: 200/201 ok, 409 on
//! `create` a duplicate, 400 the record to `@ERROR` with ES's reason, an item without an error
//! type to `@ERROR`, a type in `unrecoverable_error_types` aborts the chunk, anything else
//! (429, 5xx) is retried — here alone, not through the router.

use std::sync::atomic::{AtomicU64, Ordering};

use super::bulk::Item;
use super::{EsOutput, Op};
use crate::event::{EventTime, Record};

/// Counters, as the plugin's debug line reports them.
#[derive(Default, Debug)]
pub struct Stats {
    pub successes: AtomicU64,
    pub duplicates: AtomicU64,
    pub bad_argument: AtomicU64,
    pub retried: AtomicU64,
    pub errors_bad_resp: AtomicU64,
    pub missing_id: AtomicU64,
}

impl Stats {
    pub fn count(&self, c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

pub struct Outcome {
    /// Record positions that need no resend.
    pub settled: Vec<usize>,
    /// Items to resend.
    pub retry: usize,
    /// An unrecoverable error type: the whole chunk fails for good.
    pub abort: Option<String>,
}

pub fn handle(
    out: &EsOutput,
    tag: &str,
    body: &[u8],
    items: Vec<Item>,
    entries: &[(EventTime, Record)],
) -> Outcome {
    let raw = |i: &Item| entries.get(i.pos).map(|e| e.1.clone()).unwrap_or_default();
    let all: Vec<usize> = items.iter().map(|i| i.pos).collect();
    let doc: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            // A 2xx answer that is not JSON: nothing tells which items were stored.
            tracing::warn!("Elasticsearch bulk response is not JSON ({e}); the request is retried");
            return Outcome {
                settled: Vec::new(),
                retry: all.len(),
                abort: None,
            };
        }
    };
    if doc.get("errors").and_then(|e| e.as_bool()) != Some(true) {
        let n = items.len() as u64;
        out.stats.successes.fetch_add(n, Ordering::Relaxed);
        return Outcome {
            settled: all,
            retry: 0,
            abort: None,
        };
    }
    let Some(results) = doc.get("items").and_then(|i| i.as_array()) else {
        return Outcome {
            settled: Vec::new(),
            retry: 0,
            abort: Some(format!(
                "The response format was unrecognized: {}",
                String::from_utf8_lossy(body)
            )),
        };
    };
    if results.len() != items.len() {
        return Outcome {
            settled: Vec::new(),
            retry: 0,
            abort: Some(format!(
                "The number of records submitted {} do not match the number returned {}. Unable to process bulk response.",
                items.len(),
                results.len()
            )),
        };
    }
    let op = out.s.op.name();
    let mut settled = Vec::new();
    let mut retry = 0;
    let mut retry_types: Vec<String> = Vec::new();
    for (item, res) in items.into_iter().zip(results) {
        let (wop, r) = match (res.get(op), res.get("create")) {
            (Some(r), _) => (op, r),
            (None, Some(r)) if out.s.op == Op::Index => ("create", r),
            _ => {
                out.stats.count(&out.stats.errors_bad_resp);
                out.errors.emit_error_event(
                    tag,
                    item.time,
                    raw(&item),
                    &format!("unexpected bulk response item: {res}"),
                );
                settled.push(item.pos);
                continue;
            }
        };
        let Some(status) = r.get("status").and_then(|s| s.as_i64()) else {
            out.stats.count(&out.stats.errors_bad_resp);
            out.errors.emit_error_event(
                tag,
                item.time,
                raw(&item),
                &format!("bulk response item without status: {res}"),
            );
            settled.push(item.pos);
            continue;
        };
        let etype = r
            .pointer("/error/type")
            .and_then(|t| t.as_str())
            .map(str::to_string);
        let reason = r
            .pointer("/error/reason")
            .and_then(|t| t.as_str())
            .map(str::to_string);
        match status {
            200 | 201 => {
                out.stats.count(&out.stats.successes);
                settled.push(item.pos);
            }
            409 if wop == "create" => {
                out.stats.count(&out.stats.duplicates);
                settled.push(item.pos);
            }
            400 => {
                out.stats.count(&out.stats.bad_argument);
                let mut msg = String::from("400 - Rejected by Elasticsearch");
                let mut detail = String::new();
                if let Some(t) = &etype {
                    detail.push_str(&format!(" [error type]: {t}"));
                }
                if let Some(rs) = &reason {
                    detail.push_str(&format!(" [reason]: '{rs}'"));
                }
                if out.log_400_reason {
                    msg.push_str(&detail);
                } else {
                    tracing::debug!("400 - Rejected by Elasticsearch{detail}");
                }
                out.errors
                    .emit_error_event(tag, item.time, raw(&item), &msg);
                settled.push(item.pos);
            }
            _ => match etype {
                Some(t) => {
                    if out.unrecoverable.contains(&t) {
                        return Outcome {
                            settled,
                            retry: 0,
                            abort: Some(format!("Rejected Elasticsearch due to {t}")),
                        };
                    }
                    out.stats.count(&out.stats.retried);
                    retry += 1;
                    if !retry_types.contains(&t) {
                        retry_types.push(t);
                    }
                }
                None => {
                    out.stats.count(&out.stats.errors_bad_resp);
                    out.errors.emit_error_event(
                        tag,
                        item.time,
                        raw(&item),
                        &format!("{status} - No error type provided in the response"),
                    );
                    settled.push(item.pos);
                }
            },
        }
    }
    if retry > 0 {
        tracing::warn!(
            "{retry} Elasticsearch bulk items failed ({}); they are retried",
            retry_types.join(", ")
        );
    }
    Outcome {
        settled,
        retry,
        abort: None,
    }
}
