//! Building `_bulk` bodies as fluent-plugin-elasticsearch's `process_message` and
//! `append_record_to_messages` do, and sending them per target index.

use std::collections::{HashMap, HashSet};

use super::response::{self, Outcome};
use super::{EsOutput, Flavor, Op};
use crate::buffer::{Chunk, WriteError};
use crate::event::{EventTime, Record, Value};
use crate::http_client::{HttpError, Request};
use crate::json::encode::{self, Style};
use crate::timefmt::{strftime, TimeZoneSpec};

/// A parsed time with the UTC offset it was written in (Ruby's `DateTime`).
#[derive(Clone, Copy, Debug)]
pub struct Dt {
    pub t: EventTime,
    pub offset: i32,
}

/// `DateTime#iso8601(precision)`: `2023-11-30T23:59:59.999999999+00:00`.
pub fn iso8601(dt: Dt, precision: usize) -> String {
    use std::fmt::Write;
    let local = dt.t.sec + dt.offset as i64;
    let (y, mo, d) = crate::timefmt::civil_from_days(local.div_euclid(86400));
    let sod = local.rem_euclid(86400);
    let mut s = String::with_capacity(36);
    let _ = write!(
        s,
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    );
    if precision > 0 {
        let frac = format!("{:09}", dt.t.nsec);
        s.push('.');
        s.push_str(&frac[..precision.min(9)]);
    }
    let off = dt.offset;
    let sign = if off < 0 { '-' } else { '+' };
    let a = off.unsigned_abs();
    let _ = write!(s, "{sign}{:02}:{:02}", a / 3600, (a % 3600) / 60);
    s
}

/// The offset a time string names at its end (`Z`, `+01:00`, `+0100`), else 0 as
/// `DateTime.parse` assumes.
fn trailing_offset(s: &str) -> i32 {
    let s = s.trim_end();
    let b = s.as_bytes();
    if b.last() == Some(&b'Z') || b.last() == Some(&b'z') {
        return 0;
    }
    let tail: String = s
        .chars()
        .rev()
        .take(6)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let tb = tail.as_bytes();
    let parse = |sign: u8, h: &[u8], m: &[u8]| -> Option<i32> {
        let n = |x: &[u8]| std::str::from_utf8(x).ok()?.parse::<i32>().ok();
        let v = n(h)? * 3600 + n(m)? * 60;
        Some(if sign == b'-' { -v } else { v })
    };
    if tb.len() == 6 && (tb[0] == b'+' || tb[0] == b'-') && tb[3] == b':' {
        if let Some(v) = parse(tb[0], &tb[1..3], &tb[4..6]) {
            return v;
        }
    }
    if tb.len() >= 5 {
        let t5 = &tb[tb.len() - 5..];
        if (t5[0] == b'+' || t5[0] == b'-') && t5[1..].iter().all(u8::is_ascii_digit) {
            if let Some(v) = parse(t5[0], &t5[1..3], &t5[3..5]) {
                return v;
            }
        }
    }
    0
}

/// Values Ruby treats as true (`if raw_value = ...`).
fn truthy(v: Option<&Value>) -> bool {
    !matches!(v, None | Some(Value::Nil) | Some(Value::Bool(false)))
}

/// One record in a request, kept to map the per-item answer back to it.
pub struct Item {
    pub pos: usize,
    pub time: EventTime,
}

/// One `_bulk` request: the records of one target index.
#[derive(Default)]
pub struct Group {
    /// The index in the URL (`include_index_in_url`, data streams).
    pub url_index: Option<String>,
    pub body: Vec<u8>,
    pub items: Vec<Item>,
}

/// Per-chunk placeholder expansions (`expand_placeholders`).
pub struct Expanded {
    pub logstash_prefix: String,
    pub logstash_dateformat: String,
    pub index_name: String,
    pub pipeline: Option<String>,
    pub data_stream_name: Option<String>,
    /// Seconds within which the logstash date part cannot change, and the last index made.
    pub index_bucket: i64,
    pub index_cache: std::cell::RefCell<Option<((i64, i32), String)>>,
}

impl Expanded {
    pub fn bucket_for(dateformat: &str) -> i64 {
        // Month/year-only formats change on day boundaries.
        crate::buffer::keys::time_placeholder_unit(dateformat)
            .map(|u| u.0)
            .unwrap_or(86400)
    }
}

enum Processed {
    /// Group key, URL index, action line + document line.
    Lines(String, Option<String>, Vec<u8>),
    /// Dropped: no `_id` for create/update.
    MissingId,
}

impl EsOutput {
    fn parse_time(&self, v: &Value, time: EventTime, tag: &str) -> Dt {
        let parsed = match v {
            Value::Str(s) => self.s.time_parser.parse_bytes(s).map(|t| Dt {
                t,
                offset: trailing_offset(&String::from_utf8_lossy(s)),
            }),
            Value::Int(_) | Value::UInt(_) | Value::Float(_) => {
                let f = match v {
                    Value::Int(i) => *i as f64,
                    Value::UInt(u) => *u as f64,
                    Value::Float(f) => *f,
                    _ => 0.0,
                };
                let t = EventTime::from_f64(f);
                Ok(Dt {
                    t,
                    offset: TimeZoneSpec::Local.offset_at(t.sec),
                })
            }
            other => Err(format!(
                "invalid date: {}",
                String::from_utf8_lossy(&other.to_ruby_s())
            )),
        };
        match parsed {
            Ok(dt) => dt,
            Err(e) => {
                let mut r = Record::new();
                r.insert("tag", Value::from(tag));
                r.insert("time", Value::Ext(0, time.to_ext_payload().to_vec()));
                r.insert(
                    "format",
                    self.s
                        .time_key_format
                        .as_deref()
                        .map(Value::from)
                        .unwrap_or(Value::Nil),
                );
                r.insert("value", v.clone());
                self.errors
                    .emit_error_event(&self.s.time_parse_error_tag, EventTime::now(), r, &e);
                Dt {
                    t: time,
                    offset: TimeZoneSpec::Local.offset_at(time.sec),
                }
            }
        }
    }

    fn flatten(&self, rec: Record) -> Record {
        fn walk(out: &mut Record, prefix: &mut Vec<Vec<u8>>, v: Value, sep: &[u8]) {
            match v {
                Value::Map(m) => {
                    for (k, v) in m.into_fields() {
                        prefix.push(k);
                        walk(out, prefix, v, sep);
                        prefix.pop();
                    }
                }
                other => out.insert(prefix.join(sep), other),
            }
        }
        let mut out = Record::new();
        walk(
            &mut out,
            &mut Vec::new(),
            Value::Map(rec),
            self.s.flatten_hashes_separator.as_bytes(),
        );
        out
    }

    fn target_type(&self, found: Option<String>, major: i64) -> Option<String> {
        if self.s.flavor == Flavor::OpenSearch {
            return None;
        }
        match found {
            Some(t) => match major {
                6 => self.s.type_name.clone(),
                7 => Some("_doc".into()),
                m if m >= 8 => None,
                _ => Some(t),
            },
            None => {
                if self.s.suppress_type_name && major >= 7 {
                    None
                } else if major == 7 {
                    Some("_doc".into())
                } else if major >= 8 {
                    None
                } else {
                    self.s.type_name.clone()
                }
            }
        }
    }

    fn process(
        &self,
        tag: &str,
        time: EventTime,
        mut record: Record,
        major: i64,
        ex: &Expanded,
    ) -> Result<Processed, String> {
        let s = &self.s;
        if s.flavor == Flavor::DataStream {
            let dt = if let Some(v) = record.get("@timestamp") {
                self.parse_time(&v.clone(), time, tag)
            } else if let Some(v) = s.time_key.as_deref().and_then(|k| record.get(k)) {
                self.parse_time(&v.clone(), time, tag)
            } else {
                Dt {
                    t: time,
                    offset: TimeZoneSpec::Local.offset_at(time.sec),
                }
            };
            record.insert("@timestamp", Value::from(iso8601(dt, s.time_precision)));
            if s.include_tag_key {
                record.insert(s.tag_key.as_str(), Value::from(tag));
            }
            let mut meta = Record::new();
            if let Some(acc) = &s.id_key {
                let v = acc.get(&record);
                if truthy(v) {
                    if let Some(v) = v {
                        meta.insert("_id", v.clone());
                    }
                }
            }
            for k in &s.remove_keys {
                record.remove(k.as_str());
            }
            let name = ex.data_stream_name.clone().unwrap_or_default();
            let lines = lines(Op::Create, meta, record)?;
            return Ok(Processed::Lines(name.clone(), Some(name), lines));
        }
        if s.flatten_hashes {
            record = self.flatten(record);
        }
        let mut dt = None;
        if s.logstash_format || s.include_timestamp {
            if let Some(v) = record.get("@timestamp") {
                dt = Some(self.parse_time(&v.clone(), time, tag));
            } else if let Some(v) = s.time_key.as_deref().and_then(|k| record.get(k)) {
                let d = self.parse_time(&v.clone(), time, tag);
                if !s.time_key_exclude_timestamp {
                    record.insert("@timestamp", Value::from(iso8601(d, s.time_precision)));
                }
                dt = Some(d);
            } else {
                let d = Dt {
                    t: time,
                    offset: TimeZoneSpec::Local.offset_at(time.sec),
                };
                record.insert("@timestamp", Value::from(iso8601(d, s.time_precision)));
                dt = Some(d);
            }
        }
        let from_record = s
            .target_index_key
            .as_ref()
            .and_then(|path| take_path(&mut record, path));
        let target_index = match (from_record, dt) {
            (Some(v), _) => String::from_utf8_lossy(&v.to_ruby_s()).into_owned(),
            (None, Some(d)) if s.logstash_format => {
                let off = if s.utc_index { 0 } else { d.offset };
                let key = ((d.t.sec + off as i64).div_euclid(ex.index_bucket), off);
                let mut cache = ex.index_cache.borrow_mut();
                match &*cache {
                    Some((k, v)) if *k == key => v.clone(),
                    _ => {
                        let v = format!(
                            "{}{}{}",
                            ex.logstash_prefix,
                            s.logstash_prefix_separator,
                            strftime(d.t, &ex.logstash_dateformat, &TimeZoneSpec::Fixed(off))
                        );
                        *cache = Some((key, v.clone()));
                        v
                    }
                }
            }
            _ => ex.index_name.clone(),
        }
        .to_lowercase();
        if s.include_tag_key {
            record.insert(s.tag_key.as_str(), Value::from(tag));
        }
        let found_type = s
            .target_type_key
            .as_ref()
            .and_then(|path| take_path(&mut record, path))
            .map(|v| String::from_utf8_lossy(&v.to_ruby_s()).into_owned());
        let target_type = self.target_type(found_type, major);
        let mut meta = Record::new();
        let url_index = if s.include_index_in_url {
            Some(target_index.clone())
        } else {
            meta.insert("_index", Value::from(target_index.as_str()));
            None
        };
        if let Some(t) = target_type {
            if major < 8 {
                meta.insert("_type", Value::from(t));
            }
        }
        if let Some(p) = &ex.pipeline {
            meta.insert("pipeline", Value::from(p.as_str()));
        }
        let routing_name = if major >= 7 || s.flavor == Flavor::OpenSearch {
            "routing"
        } else {
            "_routing"
        };
        for (acc, key) in [
            (&s.id_key, "_id"),
            (&s.parent_key, "_parent"),
            (&s.routing_key, routing_name),
        ] {
            if let Some(acc) = acc {
                let v = acc.get(&record);
                if truthy(v) {
                    if let Some(v) = v {
                        meta.insert(key, v.clone());
                    }
                }
            }
        }
        for k in &s.remove_keys {
            record.remove(k.as_str());
        }
        if s.op != Op::Index && !meta.contains_key("_id") {
            return Ok(Processed::MissingId);
        }
        let body = match s.op {
            Op::Update | Op::Upsert => self.update_body(record),
            _ => record,
        };
        let lines = lines(s.op, meta, body)?;
        Ok(Processed::Lines(target_index, url_index, lines))
    }

    fn update_body(&self, mut record: Record) -> Record {
        let s = &self.s;
        let keys: Vec<Vec<u8>> = match s
            .remove_keys_on_update_key
            .as_deref()
            .and_then(|k| record.get(k))
        {
            Some(Value::Array(a)) => a.iter().map(|v| v.to_ruby_s()).collect(),
            Some(v) if !v.is_nil() => vec![v.to_ruby_s()],
            _ => s
                .remove_keys_on_update
                .iter()
                .map(|k| k.as_bytes().to_vec())
                .collect(),
        };
        if let Some(k) = s.remove_keys_on_update_key.as_deref() {
            record.remove(k);
        }
        let mut update = record.clone();
        for k in &keys {
            update.remove(k);
        }
        if s.suppress_doc_wrap {
            return update;
        }
        let same = keys.is_empty() || update == record;
        let mut body = Record::new();
        body.insert("doc", Value::Map(update));
        if s.op == Op::Upsert {
            if same {
                body.insert("doc_as_upsert", Value::Bool(true));
            } else {
                body.insert("upsert", Value::Map(record));
            }
        }
        body
    }

    /// Writes one chunk: the records not settled by an earlier attempt, grouped per target
    /// index, one request per group.
    pub(super) fn write_chunk(&self, chunk: &Chunk, major: i64) -> Result<(), WriteError> {
        let entries = chunk.entries().map_err(|e| {
            WriteError::Unrecoverable(format!("chunk {} is corrupt: {e}", chunk.unique_id_hex()))
        })?;
        let done = self.done_for(&chunk.unique_id);
        let tag = chunk.metadata.tag.clone().unwrap_or_default();
        let id = chunk.unique_id_hex();
        let p = &self.placeholders;
        let md = &chunk.metadata;
        let dateformat = p.expand(&self.s.logstash_dateformat, md, &id);
        let ex = Expanded {
            logstash_prefix: p.expand(&self.s.logstash_prefix, md, &id),
            index_bucket: Expanded::bucket_for(&dateformat),
            index_cache: Default::default(),
            logstash_dateformat: dateformat,
            index_name: p.expand(&self.s.index_name, md, &id),
            pipeline: self.s.pipeline.as_deref().map(|t| p.expand(t, md, &id)),
            data_stream_name: self
                .s
                .data_stream_name
                .as_deref()
                .map(|t| p.expand(t, md, &id)),
        };
        let mut settled: HashSet<usize> = HashSet::new();
        let mut groups: Vec<(String, Group)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut failures: Vec<String> = Vec::new();
        let mut unrecoverable: Option<String> = None;
        for (pos, (time, rec)) in entries.iter().enumerate() {
            let time = *time;
            if done.contains(&pos) {
                continue;
            }
            match self.process(&tag, time, rec.clone(), major, &ex) {
                Ok(Processed::Lines(key, url_index, lines)) => {
                    if self.bulk_threshold >= 0 {
                        let over = index
                            .get(&key)
                            .is_some_and(|&g| groups[g].1.body.len() as i64 > self.bulk_threshold);
                        if over {
                            for (_, g) in groups.drain(..) {
                                self.send_group(
                                    &tag,
                                    &entries,
                                    g,
                                    major,
                                    &mut settled,
                                    &mut failures,
                                    &mut unrecoverable,
                                );
                            }
                            index.clear();
                        }
                    }
                    let gi = match index.get(&key) {
                        Some(&gi) => gi,
                        None => {
                            groups.push((
                                key.clone(),
                                Group {
                                    url_index,
                                    ..Group::default()
                                },
                            ));
                            index.insert(key, groups.len() - 1);
                            groups.len() - 1
                        }
                    };
                    let g = &mut groups[gi].1;
                    g.body.extend_from_slice(&lines);
                    g.items.push(Item { pos, time });
                }
                Ok(Processed::MissingId) => {
                    settled.insert(pos);
                    self.stats.count(&self.stats.missing_id);
                    let op = self.s.op.name_for_log();
                    if self.s.emit_error_for_missing_id {
                        self.errors.emit_error_event(
                            &tag,
                            time,
                            rec.clone(),
                            &format!("Missing '_id' field. Write operation is {op}"),
                        );
                    } else {
                        tracing::debug!(
                            "Dropping record because its missing an '_id' field and write_operation is {op}"
                        );
                    }
                }
                Err(e) => {
                    settled.insert(pos);
                    self.errors.emit_error_event(&tag, time, rec.clone(), &e);
                }
            }
        }
        for (_, g) in groups {
            self.send_group(
                &tag,
                &entries,
                g,
                major,
                &mut settled,
                &mut failures,
                &mut unrecoverable,
            );
        }
        if !settled.is_empty() {
            let mut prog = self.progress.lock();
            let set = prog.entry(chunk.unique_id).or_default();
            set.extend(settled);
            // Bound the map: chunks that went elsewhere (secondary, backup) leave entries.
            if prog.len() > 4096 {
                let keep = chunk.unique_id;
                prog.retain(|k, _| *k == keep);
            }
        }
        if let Some(u) = unrecoverable {
            return Err(WriteError::Unrecoverable(u));
        }
        if !failures.is_empty() {
            return Err(WriteError::Retriable(failures.join("; ")));
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn send_group(
        &self,
        tag: &str,
        entries: &[(EventTime, Record)],
        g: Group,
        major: i64,
        settled: &mut HashSet<usize>,
        failures: &mut Vec<String>,
        unrecoverable: &mut Option<String>,
    ) {
        if g.items.is_empty() {
            return;
        }
        let (ct, accept) = if major >= 9 {
            (
                "application/vnd.elasticsearch+x-ndjson; compatible-with=9",
                Some("application/vnd.elasticsearch+json; compatible-with=9"),
            )
        } else {
            ("application/x-ndjson", None)
        };
        let mut last_err = String::new();
        let mut answer = None;
        for attempt in 0..self.endpoints.len() {
            let ep = self.endpoint(attempt);
            let url = match &g.url_index {
                Some(i) => format!("{}/{}/_bulk", ep.base, i),
                None => format!("{}/_bulk", ep.base),
            };
            let mut headers = self.request_headers(ep, ct);
            if let Some(a) = accept {
                headers.push(("Accept".into(), a.into()));
            }
            match self.client.send(Request {
                method: "POST",
                url: &url,
                headers,
                body: g.body.clone(),
                gzip: self.gzip,
            }) {
                Ok(r) => {
                    answer = Some((ep.base.clone(), r));
                    break;
                }
                Err(e @ HttpError::Connect(_)) => {
                    last_err = format!("{}: {e}", ep.base);
                    self.next_endpoint
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Err(e) => {
                    last_err = format!("{}: {e}", ep.base);
                    break;
                }
            }
        }
        let Some((base, r)) = answer else {
            failures.push(format!(
                "could not push logs to Elasticsearch cluster ({last_err})"
            ));
            return;
        };
        if !r.is_success() {
            failures.push(format!(
                "could not push logs to Elasticsearch cluster ({base}): [{}] {}",
                r.status,
                r.body_text().trim_end()
            ));
            return;
        }
        let Outcome {
            settled: s,
            retry,
            abort,
        } = response::handle(self, tag, &r.body, g.items, entries);
        settled.extend(s);
        if let Some(a) = abort {
            *unrecoverable = Some(a);
        } else if retry > 0 {
            failures.push(format!(
                "{retry} bulk items failed and are retried alone ({base})"
            ));
        }
    }
}

/// Removes and returns `record[path...]` when its parent exists and the value is truthy.
fn take_path(record: &mut Record, path: &[String]) -> Option<Value> {
    let (last, parents) = path.split_last()?;
    let mut cur = record;
    for p in parents {
        match cur.get_mut(p.as_str()) {
            Some(Value::Map(m)) => cur = m,
            _ => return None,
        }
    }
    if truthy(cur.get(last.as_str())) {
        cur.remove(last.as_str())
    } else {
        None
    }
}

/// The action line and document line, NDJSON, as Oj writes them.
fn lines(op: Op, meta: Record, doc: Record) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(256);
    let mut header = Record::new();
    header.insert(op.name(), Value::Map(meta));
    encode::write_record_styled(&mut out, &header, Style::Oj);
    out.push(b'\n');
    let start = out.len();
    encode::write_record_styled(&mut out, &doc, Style::Oj);
    if std::str::from_utf8(&out).is_err() {
        return Err(format!(
            "invalid UTF-8 in the record: Elasticsearch rejects such a document ({} bytes)",
            out.len() - start
        ));
    }
    out.push(b'\n');
    Ok(out)
}

#[cfg(test)]
impl EsOutput {
    pub(super) fn process_for_test(
        &self,
        tag: &str,
        time: EventTime,
        record: Record,
        major: i64,
        ex: &Expanded,
    ) -> Option<String> {
        match self.process(tag, time, record, major, ex) {
            Ok(Processed::Lines(_, _, l)) => Some(String::from_utf8(l).unwrap_or_default()),
            _ => None,
        }
    }
}

impl Op {
    fn name_for_log(self) -> &'static str {
        match self {
            Op::Index => "index",
            Op::Create => "create",
            Op::Update => "update",
            Op::Upsert => "upsert",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_forms() {
        let t = EventTime::new(1701388799, 999_999_999);
        assert_eq!(
            iso8601(Dt { t, offset: 0 }, 9),
            "2023-11-30T23:59:59.999999999+00:00"
        );
        assert_eq!(
            iso8601(Dt { t, offset: 3600 }, 3),
            "2023-12-01T00:59:59.999+01:00"
        );
        assert_eq!(
            iso8601(Dt { t, offset: -1800 }, 0),
            "2023-11-30T23:29:59-00:30"
        );
    }

    #[test]
    fn offsets() {
        assert_eq!(trailing_offset("2024-01-01T00:30:05.678+01:00"), 3600);
        assert_eq!(trailing_offset("2024-01-01T00:30:05Z"), 0);
        assert_eq!(trailing_offset("2024-01-01 00:30:05 -0230"), -9000);
        assert_eq!(trailing_offset("2024-01-01"), 0);
    }
}
