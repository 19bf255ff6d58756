//! in_http's HTTP/1.1 wire format: request heads, chunked bodies, form and query decoding,
//! request targets, and the answers.

use crate::event::Value;

use super::MAX_HEAD;

const MAX_HEADERS: usize = 128;

/// A request line and its headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    pub method: String,
    pub target: Vec<u8>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// Header names as sent, with their values; a repeated name holds an array of its values.
    pub headers: Vec<(String, Value)>,
    pub content_length: Option<usize>,
    pub chunked: bool,
}

impl Head {
    /// The first header of this name (case-insensitive), as bytes.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| match v {
                Value::Array(a) => a.first().and_then(|x| x.as_bytes()),
                v => v.as_bytes(),
            })
    }
}

/// Parses a request head from the start of `buf`: `Ok(None)` until it is complete, then the
/// head and its length. An error means the connection is to be closed.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, String> {
    let mut hs = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut hs);
    let used = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("invalid HTTP request: {e}")),
    };
    let mut headers: Vec<(String, Value)> = Vec::new();
    let mut content_length = None;
    let mut chunked = false;
    for h in req.headers.iter() {
        let v = Value::str(h.value);
        if h.name.eq_ignore_ascii_case("content-length") {
            let s = std::str::from_utf8(h.value).map_err(|_| "invalid Content-Length")?;
            let n: usize = s
                .trim()
                .parse()
                .map_err(|_| format!("invalid Content-Length {s:?}"))?;
            if content_length.is_some_and(|c| c != n) {
                return Err("conflicting Content-Length".into());
            }
            content_length = Some(n);
        }
        if h.name.eq_ignore_ascii_case("transfer-encoding")
            && h.value
                .split(|&b| b == b',')
                .any(|p| p.trim_ascii().eq_ignore_ascii_case(b"chunked"))
        {
            chunked = true;
        }
        match headers.iter_mut().find(|(k, _)| k == h.name) {
            Some((_, Value::Array(a))) => a.push(v),
            Some((_, old)) => {
                let first = std::mem::replace(old, Value::Nil);
                *old = Value::Array(vec![first, v]);
            }
            None => headers.push((h.name.to_string(), v)),
        }
    }
    Ok(Some((
        Head {
            method: req.method.unwrap_or("").to_string(),
            target: req.path.unwrap_or("").as_bytes().to_vec(),
            minor: req.version.unwrap_or(1),
            headers,
            content_length,
            chunked,
        },
        used,
    )))
}

/// Why a chunked body could not be read.
#[derive(Debug, PartialEq)]
pub enum ChunkError {
    TooLarge,
    Invalid(String),
}

/// Decodes a chunked body at the start of `buf`: `Ok(None)` until the last chunk and trailers
/// are in, then the body and the bytes used.
pub fn decode_chunked(buf: &[u8], limit: usize) -> Result<Option<(Vec<u8>, usize)>, ChunkError> {
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let Some(eol) = memchr::memmem::find(&buf[pos..], b"\r\n") else {
            if buf.len() - pos > 1024 {
                return Err(ChunkError::Invalid("chunk size line too long".into()));
            }
            return Ok(None);
        };
        let line = &buf[pos..pos + eol];
        let size_part = line
            .split(|&b| b == b';')
            .next()
            .unwrap_or(b"")
            .trim_ascii();
        let size = std::str::from_utf8(size_part)
            .ok()
            .filter(|s| !s.is_empty() && s.len() <= 16)
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .ok_or_else(|| ChunkError::Invalid("invalid chunk size".into()))?;
        pos += eol + 2;
        if size == 0 {
            // Trailers end with an empty line.
            loop {
                let Some(e) = memchr::memmem::find(&buf[pos..], b"\r\n") else {
                    if buf.len() - pos > MAX_HEAD {
                        return Err(ChunkError::Invalid("trailers too long".into()));
                    }
                    return Ok(None);
                };
                pos += e + 2;
                if e == 0 {
                    return Ok(Some((body, pos)));
                }
            }
        }
        if body.len().saturating_add(size) > limit {
            return Err(ChunkError::TooLarge);
        }
        if buf.len() < pos + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        if &buf[pos + size..pos + size + 2] != b"\r\n" {
            return Err(ChunkError::Invalid("missing CRLF after chunk".into()));
        }
        pos += size + 2;
    }
}

/// `%XX` and `+` decoding of a form value (WEBrick's `unescape_form`).
pub(super) fn unescape_form(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                (Some(a), Some(b)) => {
                    out.push(a * 16 + b);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// WEBrick's `parse_query`: `&`/`;` separated `key=value` pairs; a repeated key keeps its first
/// value.
pub fn parse_query(q: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for part in q.split(|&b| b == b'&' || b == b';') {
        if part.is_empty() {
            continue;
        }
        let (k, v) = match part.iter().position(|&b| b == b'=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, &b""[..]),
        };
        let k = unescape_form(k);
        if out.iter().any(|(x, _)| *x == k) {
            continue;
        }
        out.push((k, unescape_form(v)));
    }
    out
}

/// Ruby's `String#to_f` (the longest numeric prefix, else 0).
pub fn ruby_to_f(s: &[u8]) -> f64 {
    let s = s.trim_ascii_start();
    let mut end = 0;
    let n = s.len();
    if end < n && (s[end] == b'+' || s[end] == b'-') {
        end += 1;
    }
    let digits = |mut i: usize| {
        while i < n
            && (s[i].is_ascii_digit() || (s[i] == b'_' && i > 0 && s[i - 1].is_ascii_digit()))
        {
            i += 1;
        }
        i
    };
    let int_end = digits(end);
    let mut last = if int_end > end { int_end } else { 0 };
    end = int_end;
    if end < n && s[end] == b'.' && end + 1 < n && s[end + 1].is_ascii_digit() {
        end = digits(end + 1);
        last = end;
    }
    if last > 0 && end < n && (s[end] == b'e' || s[end] == b'E') {
        let mut e = end + 1;
        if e < n && (s[e] == b'+' || s[e] == b'-') {
            e += 1;
        }
        let d = digits(e);
        if d > e {
            last = d;
        }
    }
    if last == 0 {
        return 0.0;
    }
    let t: String = s[..last]
        .iter()
        .filter(|&&b| b != b'_')
        .map(|&b| b as char)
        .collect();
    t.parse().unwrap_or(0.0)
}

/// An answer: status line, headers in order, body, and whether to close afterwards.
pub struct Response {
    pub status: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub close: bool,
}

impl Response {
    pub(super) fn new(
        status: &'static str,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    ) -> Self {
        Response {
            status,
            headers,
            body,
            close: false,
        }
    }

    pub(super) fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    /// The bytes on the wire, as Fluentd's `send_response` writes them.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut h = self.headers.clone();
        if !h.iter().any(|(k, _)| *k == "Content-Length") {
            h.push(("Content-Length", self.body.len().to_string()));
        }
        if !h.iter().any(|(k, _)| *k == "Content-Type") {
            h.push(("Content-Type", "text/plain".into()));
        }
        let mut out = format!("HTTP/1.1 {}\r\n", self.status).into_bytes();
        for (k, v) in h {
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

pub(super) const TEXT: (&str, &str) = ("Content-Type", "text/plain");

pub(super) fn text_header() -> Vec<(&'static str, String)> {
    vec![(TEXT.0, TEXT.1.to_string())]
}

/// The request target split as `URI.parse` does: path and query. `None` for a target Ruby's URI
/// parser refuses.
pub(super) fn split_target(t: &[u8]) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let ok = |b: &u8| b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(b);
    if !t.iter().all(ok) {
        return None;
    }
    let mut rest = t;
    for scheme in [&b"http://"[..], b"https://"] {
        if rest.len() >= scheme.len() && rest[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let after = &rest[scheme.len()..];
            let cut = after
                .iter()
                .position(|&b| b == b'/' || b == b'?' || b == b'#')
                .unwrap_or(after.len());
            rest = &after[cut..];
        }
    }
    let rest = match memchr::memchr(b'#', rest) {
        Some(i) => &rest[..i],
        None => rest,
    };
    Some(match memchr::memchr(b'?', rest) {
        Some(i) => (rest[..i].to_vec(), Some(rest[i + 1..].to_vec())),
        None => (rest.to_vec(), None),
    })
}

/// `path.split('/').join('.')` of the path without its leading character (Ruby drops trailing
/// empty fields).
pub(super) fn tag_of(path: &[u8]) -> String {
    let p = path.get(1..).unwrap_or(b"");
    let mut parts: Vec<&[u8]> = p.split(|&b| b == b'/').collect();
    while parts.last().is_some_and(|x| x.is_empty()) {
        parts.pop();
    }
    String::from_utf8_lossy(&parts.join(&b'.')).into_owned()
}
