//! `@type loki` (fluent-plugin-grafana-loki 1.3): each buffer chunk becomes one
//! `POST <url>/loki/api/v1/push` with a JSON body, built as the Ruby plugin builds it: one stream
//! per distinct label set (in order of first appearance), labels from `<label>` (record
//! accessors, removed from the record), `kubernetes.labels` and `extra_labels`, the entries of a
//! stream sorted by time (stable), each `["<ns>", "<line>"]`. 429 and 5xx are retried by the
//! buffer; any other answer is dropped with a warning naming Loki's reason, so a rejected chunk
//! never blocks the queue.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use parking_lot::Mutex;
use serde::Deserialize;

use super::{Output, PluginContext};
use crate::buffer::{BufferDefaults, BufferedOutput, Chunk, Placeholders, WriteError};
use crate::config_parser::de::Nested;
use crate::config_parser::types::OrderedHash;
use crate::config_parser::{ConfigError, Element};
use crate::event::{Record, Value};
use crate::http_client::{self, ClientOptions, HttpClient, Request, TlsOptions};
use crate::json::encode::{self, Style};
use crate::record_accessor::RecordAccessor;

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
enum LineFormat {
    Json,
    #[default]
    KeyValue,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum CompressKind {
    Gzip,
}

#[derive(Debug, Deserialize)]
struct LokiConfig {
    #[serde(default = "default_url")]
    url: String,
    username: Option<String>,
    password: Option<String>,
    bearer_token_file: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    ca_cert: Option<String>,
    ciphers: Option<String>,
    min_version: Option<String>,
    #[serde(default)]
    insecure_tls: bool,
    #[serde(default)]
    custom_headers: OrderedHash,
    compress: Option<CompressKind>,
    tenant: Option<String>,
    #[serde(default)]
    extra_labels: OrderedHash,
    #[serde(default)]
    line_format: LineFormat,
    #[serde(default)]
    extract_kubernetes_labels: bool,
    #[serde(default)]
    remove_keys: Vec<String>,
    #[serde(default)]
    drop_single_key: bool,
    #[serde(default = "yes")]
    include_thread_label: bool,
    #[serde(default)]
    #[allow(dead_code)]
    label: Vec<Nested>,
    #[allow(dead_code)]
    buffer: Option<Nested>,
    #[allow(dead_code)]
    secondary: Option<Nested>,
}

fn default_url() -> String {
    "https://logs-prod-us-central1.grafana.net".into()
}
fn yes() -> bool {
    true
}

/// The bearer token, re-read when its file changes (the Ruby plugin reads it once, so a rotated
/// Kubernetes token would expire).
struct Token {
    path: String,
    state: Mutex<(Option<SystemTime>, String)>,
}

impl Token {
    fn load(path: &str) -> Result<Token, String> {
        let t = Token {
            path: path.to_string(),
            state: Mutex::new((None, String::new())),
        };
        t.current()?;
        Ok(t)
    }

    fn current(&self) -> Result<String, String> {
        let meta = std::fs::metadata(&self.path)
            .map_err(|e| format!("bearer_token_file {} not found: {e}", self.path))?;
        let mtime = meta.modified().ok();
        let mut st = self.state.lock();
        if st.0.is_none() || st.0 != mtime {
            let text = std::fs::read_to_string(&self.path)
                .map_err(|e| format!("bearer_token_file {}: {e}", self.path))?;
            if text.is_empty() {
                return Err(format!("bearer_token_file {} is empty", self.path));
            }
            *st = (mtime, text);
        }
        Ok(st.1.clone())
    }
}

pub struct LokiOutput {
    push_url: String,
    client: HttpClient,
    username: Option<String>,
    password: Option<String>,
    token: Option<Token>,
    tenant: Option<String>,
    custom_headers: Vec<(String, String)>,
    gzip: bool,
    labels: Vec<(String, RecordAccessor)>,
    extra_labels: Vec<(String, String)>,
    remove_keys: Vec<RecordAccessor>,
    line_format: LineFormat,
    extract_kubernetes_labels: bool,
    drop_single_key: bool,
    thread_label: bool,
    placeholders: Placeholders,
    /// Chunks Loki refused for good (4xx other than 429), and their events.
    dropped_chunks: AtomicU64,
    dropped_events: AtomicU64,
}

/// One stream's label set as the Ruby plugin keys it: label name → value as found (missing and
/// non-string values included: they keep streams apart although they are not sent).
type LabelSet = Vec<(String, Option<Value>)>;

fn sanitize_label_name(name: &str) -> String {
    name.chars()
        .map(|c| if matches!(c, '.' | '-' | '/') { '_' } else { c })
        .collect()
}

fn set_label(labels: &mut LabelSet, name: String, value: Option<Value>) {
    match labels.iter_mut().find(|(n, _)| *n == name) {
        Some(slot) => slot.1 = value,
        None => labels.push((name, value)),
    }
}

/// A key equal for label sets Ruby's `Hash#==` finds equal (order does not matter).
fn label_key(labels: &LabelSet) -> Vec<u8> {
    let mut parts: Vec<Vec<u8>> = labels
        .iter()
        .map(|(n, v)| {
            let mut b = Vec::with_capacity(n.len() + 16);
            crate::event::msgpack::write_str(&mut b, n.as_bytes());
            match v {
                Some(v) => crate::event::msgpack::write_value(&mut b, v),
                None => b.push(0xc1),
            }
            b
        })
        .collect();
    parts.sort();
    parts.concat()
}

/// Appends `s` as a JSON string the way Yajl writes it, invalid UTF-8 replaced by U+FFFD (Loki
/// would replace it too; raw bytes would make the whole push invalid JSON).
fn write_json_text(out: &mut Vec<u8>, s: &[u8]) {
    match std::str::from_utf8(s) {
        Ok(_) => encode::write_str_styled(out, s, Style::Yajl),
        Err(_) => encode::write_str_styled(out, String::from_utf8_lossy(s).as_bytes(), Style::Yajl),
    }
}

fn write_json_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Str(s) | Value::Bin(s) => write_json_text(out, s),
        other => {
            let mut tmp = Vec::new();
            encode::write_value_styled(&mut tmp, other, Style::Yajl);
            if std::str::from_utf8(&tmp).is_ok() {
                out.extend_from_slice(&tmp);
            } else {
                out.extend_from_slice(String::from_utf8_lossy(&tmp).as_bytes());
            }
        }
    }
}

impl LokiOutput {
    /// The line of one record (`record_to_line`).
    fn record_to_line(&self, record: &Record) -> Value {
        if self.drop_single_key && record.len() == 1 {
            if let Some((_, v)) = record.iter().next() {
                return v.clone();
            }
        }
        match self.line_format {
            LineFormat::Json => {
                let mut out = Vec::with_capacity(128);
                encode::write_record_styled(&mut out, record, Style::Yajl);
                Value::Str(out)
            }
            LineFormat::KeyValue => {
                let mut out = Vec::with_capacity(128);
                for (i, (k, v)) in record.iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    let s = v.to_ruby_s();
                    let mut esc = Vec::with_capacity(s.len() + 4);
                    for &b in &s {
                        if b == b'"' || b == b'\\' {
                            esc.push(b'\\');
                        }
                        esc.push(b);
                    }
                    out.extend_from_slice(k);
                    out.push(b'=');
                    if esc.contains(&b' ') || esc.contains(&b'=') {
                        out.push(b'"');
                        out.extend_from_slice(&esc);
                        out.push(b'"');
                    } else {
                        out.extend_from_slice(&esc);
                    }
                }
                Value::Str(out)
            }
        }
    }

    /// `line_to_loki`: the labels of a record and its line; the record loses its label keys
    /// and `remove_keys`.
    fn line_to_loki(&self, mut record: Record) -> (LabelSet, Value) {
        let mut labels: LabelSet = Vec::new();
        for (name, acc) in &self.labels {
            let v = acc.get(&record).cloned();
            set_label(&mut labels, sanitize_label_name(name), v);
            acc.delete(&mut record);
        }
        if self.extract_kubernetes_labels {
            if let Some(Value::Map(k8s)) = record.get("kubernetes") {
                if let Some(Value::Map(kl)) = k8s.get("labels") {
                    for (k, v) in kl.iter() {
                        let name = sanitize_label_name(&String::from_utf8_lossy(k));
                        set_label(&mut labels, name, Some(v.clone()));
                    }
                }
            }
        }
        for acc in &self.remove_keys {
            acc.delete(&mut record);
        }
        if self.thread_label {
            let title = std::thread::current()
                .name()
                .unwrap_or("flush_thread_0")
                .to_string();
            set_label(
                &mut labels,
                "fluentd_thread".into(),
                Some(Value::from(title)),
            );
        }
        let line = self.record_to_line(&record);
        (labels, line)
    }

    /// The request body for one chunk, and the number of events in it.
    pub fn build_body(&self, entries: Vec<(crate::event::EventTime, Record)>) -> Vec<u8> {
        // Streams in order of first appearance; entries as (ns, seq, line).
        let mut index: std::collections::HashMap<Vec<u8>, usize> = Default::default();
        let mut streams: Vec<(LabelSet, Vec<(i128, Value)>)> = Vec::new();
        for (t, rec) in entries {
            let (labels, line) = self.line_to_loki(rec);
            let key = label_key(&labels);
            let ns = t.sec as i128 * 1_000_000_000 + t.nsec as i128;
            let i = *index.entry(key).or_insert_with(|| {
                streams.push((labels, Vec::new()));
                streams.len() - 1
            });
            streams[i].1.push((ns, line));
        }
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"{\"streams\":[");
        for (si, (labels, mut values)) in streams.into_iter().enumerate() {
            if si > 0 {
                out.push(b',');
            }
            // Stable: equal times keep their order.
            values.sort_by_key(|(ns, _)| *ns);
            out.extend_from_slice(b"{\"stream\":{");
            // extra_labels win over record labels and keep the first position of a name.
            let mut merged: Vec<(String, Option<Value>)> = labels;
            for (k, v) in &self.extra_labels {
                set_label(&mut merged, k.clone(), Some(Value::from(v.as_str())));
            }
            let mut first = true;
            for (k, v) in &merged {
                let Some(Value::Str(s)) = v else { continue };
                if !first {
                    out.push(b',');
                }
                first = false;
                write_json_text(&mut out, k.as_bytes());
                out.push(b':');
                // format_labels: `"` in a value becomes `\"`.
                let mut esc = Vec::with_capacity(s.len());
                for &b in s {
                    if b == b'"' {
                        esc.push(b'\\');
                    }
                    esc.push(b);
                }
                write_json_text(&mut out, &esc);
            }
            out.extend_from_slice(b"},\"values\":[");
            for (i, (ns, line)) in values.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"[\"");
                out.extend_from_slice(ns.to_string().as_bytes());
                out.extend_from_slice(b"\",");
                write_json_value(&mut out, line);
                out.push(b']');
            }
            out.extend_from_slice(b"]}");
        }
        out.extend_from_slice(b"]}");
        out
    }

    pub fn dropped(&self) -> (u64, u64) {
        (
            self.dropped_chunks.load(Ordering::Relaxed),
            self.dropped_events.load(Ordering::Relaxed),
        )
    }
}

impl BufferedOutput for LokiOutput {
    fn configure_buffer(&mut self, p: &Placeholders, _as_secondary: bool) -> Result<(), String> {
        self.placeholders = p.clone();
        Ok(())
    }

    fn write(&self, chunk: &Chunk) -> Result<(), WriteError> {
        let entries = chunk.entries().map_err(|e| {
            WriteError::Unrecoverable(format!("chunk {} is corrupt: {e}", chunk.unique_id_hex()))
        })?;
        let n = entries.len() as u64;
        let body = self.build_body(entries);
        let mut headers: Vec<(String, String)> = self.custom_headers.clone();
        headers.push(("Content-Type".into(), "application/json".into()));
        // `req.basic_auth` replaces a bearer Authorization in the plugin.
        if let (Some(t), None) = (&self.token, &self.username) {
            let tok = t.current().map_err(WriteError::Retriable)?;
            headers.push(("Authorization".into(), format!("Bearer {tok}")));
        }
        if let Some(tenant) = &self.tenant {
            let tenant = self
                .placeholders
                .expand(tenant, &chunk.metadata, &chunk.unique_id_hex());
            headers.push(("X-Scope-OrgID".into(), tenant));
        }
        if let Some(u) = &self.username {
            headers.push((
                "Authorization".into(),
                http_client::basic_auth(u, self.password.as_deref().unwrap_or("")),
            ));
        }
        let res = self
            .client
            .send(Request {
                method: "POST",
                url: &self.push_url,
                headers,
                body,
                gzip: self.gzip,
            })
            .map_err(|e| {
                WriteError::Retriable(format!("failed to write post to {}: {e}", self.push_url))
            })?;
        if res.is_success() {
            tracing::debug!(
                "POST request was responded to with status code {}",
                res.status
            );
            return Ok(());
        }
        let summary = format!(
            "{} {} {}",
            res.status,
            res.reason,
            res.body_text().trim_end()
        );
        if res.status == 429 || (500..600).contains(&res.status) {
            return Err(WriteError::Retriable(format!(
                "failed to write post to {} ({summary})",
                self.push_url
            )));
        }
        let c = self.dropped_chunks.fetch_add(1, Ordering::Relaxed) + 1;
        let e = self.dropped_events.fetch_add(n, Ordering::Relaxed) + n;
        tracing::warn!(
            "failed to write post to {} ({summary}); {n} events dropped (dropped so far: {c} chunks, {e} events)",
            self.push_url
        );
        Ok(())
    }
}

fn build(elem: &Element, ctx: &PluginContext) -> Result<LokiOutput, ConfigError> {
    let conf: LokiConfig = ctx.configure(elem, "loki")?;
    let push_url = format!("{}/loki/api/v1/push", conf.url);
    http_client::check_url(&push_url)
        .map_err(|_| elem.error("URL parameter must have HTTP/HTTPS scheme"))?;
    let mut labels = Vec::new();
    for l in elem.children("label") {
        for p in &l.params {
            let v = p.value.as_str().unwrap_or("");
            let src = if v.is_empty() { p.key.as_str() } else { v };
            let acc = RecordAccessor::new(src).map_err(|m| l.error(m))?;
            labels.push((p.key.clone(), acc));
        }
    }
    let mut remove_keys = Vec::new();
    for k in &conf.remove_keys {
        remove_keys.push(RecordAccessor::new(k).map_err(|m| elem.error(m))?);
    }
    if conf.cert.is_some() != conf.key.is_some() {
        tracing::warn!("loki: cert and key go together; the client certificate is not used");
    }
    http_client::check_readable("ca_cert", conf.ca_cert.as_deref()).map_err(|_| {
        elem.error(format!(
            "CA certificate file {} not found",
            conf.ca_cert.as_deref().unwrap_or("")
        ))
    })?;
    if conf.ciphers.is_some() {
        tracing::warn!("loki: 'ciphers' is ignored; rustls chooses among its safe cipher suites");
    }
    let token = match &conf.bearer_token_file {
        Some(p) => Some(Token::load(p).map_err(|m| elem.error(m))?),
        None => None,
    };
    let both = conf.cert.is_some() && conf.key.is_some();
    let client = HttpClient::new(&ClientOptions {
        tls: TlsOptions {
            insecure: conf.insecure_tls,
            verify_hostname: true,
            ca_files: conf.ca_cert.iter().cloned().collect(),
            client_cert: if both { conf.cert.clone() } else { None },
            client_key: if both { conf.key.clone() } else { None },
            min_version: conf.min_version.clone(),
            max_version: None,
        },
        ..ClientOptions::default()
    })
    .map_err(|m| elem.error(m))?;
    let flush_threads = elem
        .child("buffer")
        .and_then(|b| b.get("flush_thread_count"))
        .map(crate::config_parser::types::ruby_to_i)
        .unwrap_or(1);
    Ok(LokiOutput {
        push_url,
        client,
        username: conf.username,
        password: conf.password,
        token,
        tenant: conf.tenant,
        custom_headers: conf.custom_headers.0,
        gzip: conf.compress == Some(CompressKind::Gzip),
        labels,
        extra_labels: conf.extra_labels.0,
        remove_keys,
        line_format: conf.line_format,
        extract_kubernetes_labels: conf.extract_kubernetes_labels,
        drop_single_key: conf.drop_single_key,
        thread_label: conf.include_thread_label && flush_threads > 1,
        placeholders: Placeholders::default(),
        dropped_chunks: AtomicU64::new(0),
        dropped_events: AtomicU64::new(0),
    })
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Output>, ConfigError> {
    let out = build(elem, ctx)?;
    crate::buffer::build(elem, ctx, out, BufferDefaults::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventTime;

    fn output(conf: &str) -> LokiOutput {
        let elem = crate::test_util::directive(&format!(
            "<match x>\n@type loki\nurl http://127.0.0.1:1\n{conf}\n</match>"
        ));
        build(&elem, &PluginContext::for_tests()).unwrap()
    }

    fn rec(json: &str) -> Record {
        crate::json::decode::parse_record(json.as_bytes()).unwrap()
    }

    #[test]
    fn key_value_line() {
        let o = output("");
        let r =
            rec(r#"{"a":"x y","b":"q\"","c":1.5,"d":null,"e":{"k":1},"f":"a=b","g":"back\\s"}"#);
        let Value::Str(line) = o.record_to_line(&r) else {
            panic!()
        };
        assert_eq!(
            String::from_utf8(line).unwrap(),
            r#"a="x y" b=q\" c=1.5 d= e="{\"k\"=>1}" f="a=b" g=back\\s"#
        );
    }

    #[test]
    fn streams_sorted_and_grouped() {
        let o = output("<label>\napp\n</label>\nextra_labels {\"job\":\"j\"}");
        let body = o.build_body(vec![
            (EventTime::new(2, 0), rec(r#"{"app":"a","m":1}"#)),
            (EventTime::new(1, 5), rec(r#"{"app":"b","m":2}"#)),
            (EventTime::new(1, 0), rec(r#"{"app":"a","m":3}"#)),
            (EventTime::new(1, 0), rec(r#"{"app":"a","m":4}"#)),
        ]);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"streams":[{"stream":{"app":"a","job":"j"},"values":[["1000000000","m=3"],["1000000000","m=4"],["2000000000","m=1"]]},{"stream":{"app":"b","job":"j"},"values":[["1000000005","m=2"]]}]}"#
        );
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let o = output("line_format json");
        let mut r = Record::new();
        r.insert("m", Value::Str(b"a\xffb".to_vec()));
        let body = o.build_body(vec![(EventTime::new(1, 0), r)]);
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains("a\u{fffd}b"), "{text}");
        assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok());
    }

    #[test]
    fn bad_url_is_a_config_error() {
        let elem = crate::test_util::directive("<match x>\n@type loki\nurl ftp://x\n</match>");
        let e = build(&elem, &PluginContext::for_tests()).err().unwrap();
        assert!(e.to_string().contains("HTTP/HTTPS"), "{e}");
    }

    #[test]
    fn bearer_token_is_reread_when_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "one").unwrap();
        let t = Token::load(p.to_str().unwrap()).unwrap();
        assert_eq!(t.current().unwrap(), "one");
        // A later modification time marks the rotation.
        std::fs::write(&p, "two").unwrap();
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
            .unwrap();
        assert_eq!(t.current().unwrap(), "two");
        std::fs::write(&p, "").unwrap();
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(10))
            .unwrap();
        assert!(t.current().is_err());
        assert!(Token::load("/nonexistent/token").is_err());
    }

    #[test]
    fn drop_single_key_and_remove_keys() {
        let o = output(
            "drop_single_key true
remove_keys a, $.b.c",
        );
        let body = o.build_body(vec![(
            EventTime::new(1, 0),
            rec(r#"{"a":1,"b":{"c":2},"log":"x"}"#),
        )]);
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains(r#"["1000000000","b={} log=x"]"#), "{text}");
        let o = output("drop_single_key true");
        let body = o.build_body(vec![(EventTime::new(1, 0), rec(r#"{"log":"only"}"#))]);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"streams":[{"stream":{},"values":[["1000000000","only"]]}]}"#
        );
    }
}
