//! Framing and decoding of the forward protocol: an incremental msgpack object scanner (so a
//! connection buffers exactly one message before decoding it), a msgpack decoder that never
//! panics or recurses without bound, a JSON framer, and the interpretation of a message in its
//! four modes (Message, Forward, PackedForward, CompressedPackedForward) into events.

use std::borrow::Cow;
use std::io::Read;

use crate::event::msgpack::{DErr, Decoder};
use crate::event::{EventStream, EventTime, Record, Value};

/// Why a stream or message cannot be decoded. The connection that sent it is closed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProtocolError {
    #[error("invalid msgpack marker 0x{0:02x}")]
    Marker(u8),
    #[error("unexpected end of msgpack data")]
    Eof,
    #[error("msgpack nesting too deep")]
    TooDeep,
    #[error("message of {0} bytes exceeds the limit of {1} bytes")]
    TooLarge(usize, usize),
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("{0}")]
    Decompress(String),
    #[error("{0}")]
    Shape(String),
}

/// Where a scan of a partially received msgpack object stopped: the next byte to look at and how
/// many objects are still to come before the top-level object is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanState {
    pos: usize,
    remaining: u64,
}

impl Default for ScanState {
    fn default() -> Self {
        ScanState {
            pos: 0,
            remaining: 1,
        }
    }
}

impl ScanState {
    /// Bytes of the current object scanned so far.
    pub fn scanned(&self) -> usize {
        self.pos
    }
}

fn be_len(b: &[u8]) -> usize {
    b.iter().fold(0usize, |acc, x| (acc << 8) | *x as usize)
}

const CONTAINER: u16 = 0x8000;

/// Per marker: the object's total size when the marker fixes it, `CONTAINER | children` for
/// fixmap/fixarray, 0 when length bytes follow (or the marker is invalid).
const SCAN_TABLE: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut m = 0usize;
    while m < 256 {
        t[m] = match m {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => 1,
            0x80..=0x8f => CONTAINER | (2 * (m & 0x0f)) as u16,
            0x90..=0x9f => CONTAINER | (m & 0x0f) as u16,
            0xa0..=0xbf => 1 + (m & 0x1f) as u16,
            0xca => 5,
            0xcb => 9,
            0xcc..=0xcf => 1 + (1 << (m - 0xcc)),
            0xd0..=0xd3 => 1 + (1 << (m - 0xd0)),
            0xd4..=0xd8 => 2 + (1 << (m - 0xd4)),
            _ => 0,
        };
        m += 1;
    }
    t
};

/// Continues scanning `buf` (which starts at the object's first byte) for the end of one msgpack
/// object. Returns `Some(len)` once the object is complete, `None` when more bytes are needed
/// (`state` then records where to resume). Nesting is counted, not recursed, so any depth is
/// safe to frame.
pub fn scan_msgpack(buf: &[u8], state: &mut ScanState) -> Result<Option<usize>, ProtocolError> {
    let mut pos = state.pos;
    let mut remaining = state.remaining;
    while remaining > 0 {
        let Some(&m) = buf.get(pos) else {
            break;
        };
        // Fast path: objects whose size or child count the marker alone tells.
        let t = SCAN_TABLE[m as usize];
        if t & CONTAINER != 0 {
            pos += 1;
            remaining = remaining - 1 + (t & !CONTAINER) as u64;
            continue;
        }
        if t != 0 {
            let end = pos + t as usize;
            if end > buf.len() {
                break;
            }
            pos = end;
            remaining -= 1;
            continue;
        }
        // (header length, payload length, child objects)
        let (head, body, children): (usize, usize, u64) = match m {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (1, 0, 0),
            0x80..=0x8f => (1, 0, 2 * (m & 0x0f) as u64),
            0x90..=0x9f => (1, 0, (m & 0x0f) as u64),
            0xa0..=0xbf => (1, (m & 0x1f) as usize, 0),
            0xc1 => return Err(ProtocolError::Marker(m)),
            0xc4..=0xc6 | 0xd9..=0xdb => {
                let n = if m <= 0xc6 {
                    1usize << (m - 0xc4)
                } else {
                    1usize << (m - 0xd9)
                };
                match buf.get(pos + 1..pos + 1 + n) {
                    Some(l) => (1 + n, be_len(l), 0),
                    None => break,
                }
            }
            0xc7..=0xc9 => {
                let n = 1usize << (m - 0xc7);
                match buf.get(pos + 1..pos + 1 + n) {
                    Some(l) => (2 + n, be_len(l), 0),
                    None => break,
                }
            }
            0xca => (5, 0, 0),
            0xcb => (9, 0, 0),
            0xcc..=0xcf => (1 + (1usize << (m - 0xcc)), 0, 0),
            0xd0..=0xd3 => (1 + (1usize << (m - 0xd0)), 0, 0),
            0xd4..=0xd8 => (2 + (1usize << (m - 0xd4)), 0, 0),
            0xdc..=0xdf => {
                let n = if m & 1 == 0 { 2 } else { 4 };
                match buf.get(pos + 1..pos + 1 + n) {
                    Some(l) => {
                        let count = be_len(l) as u64;
                        (1 + n, 0, if m >= 0xde { 2 * count } else { count })
                    }
                    None => break,
                }
            }
        };
        let end = pos.saturating_add(head).saturating_add(body);
        if end > buf.len() {
            break;
        }
        pos = end;
        remaining = remaining - 1 + children;
    }
    state.pos = pos;
    state.remaining = remaining;
    Ok(if remaining == 0 { Some(pos) } else { None })
}

impl From<DErr> for ProtocolError {
    fn from(e: DErr) -> Self {
        match e {
            DErr::Eof => ProtocolError::Eof,
            DErr::Marker(m) => ProtocolError::Marker(m),
            DErr::TooDeep => ProtocolError::TooDeep,
        }
    }
}

/// in_forward refuses messages nested deeper than this.
pub const MAX_DEPTH: usize = 100;

impl Decoder<'_> {
    /// Decodes one `[time, record]` entry into `out`, without intermediate values for the usual
    /// shapes (EventTime or integer time, map record).
    fn entry(&mut self, out: &mut Decoded, now: EventTime, tag_ok: bool) -> Result<(), DErr> {
        let start = self.pos;
        if tag_ok {
            if let Some(n) = self.read_array_len()? {
                if n >= 2 {
                    if let Some(t) = self.fast_time(now)? {
                        if let Some(&m) = self.buf.get(self.pos) {
                            let map_len = match m {
                                0x80..=0x8f => {
                                    self.pos += 1;
                                    Some((m & 0x0f) as usize)
                                }
                                0xde | 0xdf => {
                                    self.pos += 1;
                                    Some(self.be(2 << (m - 0xde))? as usize)
                                }
                                _ => None,
                            };
                            if let Some(len) = map_len {
                                let r = self.map(len, 1)?;
                                for _ in 2..n {
                                    self.value(1)?;
                                }
                                out.events.push(t, r);
                                return Ok(());
                            }
                        }
                    }
                }
            }
        }
        self.pos = start;
        match self.read_value()? {
            Value::Array(a) => {
                let mut it = a.into_iter();
                let time = it.next().unwrap_or(Value::Nil);
                let record = it.next().unwrap_or(Value::Nil);
                push_entry(out, &time, record, now, tag_ok);
            }
            other => out.invalid.push(describe(&Value::Nil, &other)),
        }
        Ok(())
    }

    /// An EventTime ext or a non-zero integer time, read in place; `None` (position unchanged)
    /// for anything else.
    fn fast_time(&mut self, now: EventTime) -> Result<Option<EventTime>, DErr> {
        let b = &self.buf[self.pos.min(self.buf.len())..];
        let (t, used) = match b {
            [0xd7, 0x00, p @ ..] if p.len() >= 8 => match EventTime::from_ext_payload(&p[..8]) {
                Some(t) => (t, 10),
                None => return Ok(None),
            },
            [m @ 0x01..=0x7f, ..] => (EventTime::new(*m as i64, 0), 1),
            [0xce, a, b2, c, d, ..] => (
                EventTime::new(u32::from_be_bytes([*a, *b2, *c, *d]) as i64, 0),
                5,
            ),
            _ => return Ok(None),
        };
        self.pos += used;
        Ok(Some(if t.sec == 0 { now } else { t }))
    }
}

/// Decodes one complete msgpack object.
pub fn decode_value(buf: &[u8]) -> Result<Value, ProtocolError> {
    Ok(Decoder::with_max_depth(buf, MAX_DEPTH).read_value()?)
}

/// Parses the next complete JSON value from `buf`, returning it and the bytes it used, or `None`
/// when the value is not complete yet. Whitespace between values is consumed.
pub fn scan_json(buf: &[u8]) -> Result<Option<(Value, usize)>, ProtocolError> {
    let mut it = serde_json::Deserializer::from_slice(buf).into_iter::<serde_json::Value>();
    match it.next() {
        None => Ok(None),
        Some(Ok(v)) => Ok(Some((crate::util::value_from_json(v), it.byte_offset()))),
        Some(Err(e)) if e.is_eof() => Ok(None),
        Some(Err(e)) => Err(ProtocolError::Json(e.to_string())),
    }
}

/// Whether bytes left after the last complete JSON value are only whitespace.
pub fn json_rest_is_blank(buf: &[u8]) -> bool {
    buf.iter().all(|b| b.is_ascii_whitespace())
}

/// A message split into its parts, before its events are decoded.
pub enum RawMessage<'a> {
    /// Not an array: Fluentd logs "incoming chunk is broken" and ignores it.
    NotArray(Value),
    Array {
        tag: Value,
        body: Body<'a>,
        option: Option<Value>,
    },
}

pub enum Body<'a> {
    /// PackedForward / CompressedPackedForward: a str or bin of concatenated entries.
    Packed(Cow<'a, [u8]>),
    /// Forward: an array of `[time, record]` entries.
    Forward(Vec<Value>),
    /// Forward, still encoded: `count` entries at the start of `data`, then `trailing` more
    /// message elements (the first is the option).
    ForwardRaw {
        data: &'a [u8],
        count: usize,
        trailing: usize,
    },
    /// Message: `[tag, time, record, option?]`.
    Message { time: Value, record: Value },
}

impl<'a> RawMessage<'a> {
    /// Splits a msgpack message; a PackedForward payload is borrowed, not copied.
    pub fn from_msgpack(buf: &'a [u8]) -> Result<RawMessage<'a>, ProtocolError> {
        let mut d = Decoder::with_max_depth(buf, MAX_DEPTH);
        let Some(n) = d.read_array_len()? else {
            return Ok(RawMessage::NotArray(d.read_value()?));
        };
        if n == 0 {
            return Ok(RawMessage::Array {
                tag: Value::Nil,
                body: Body::Message {
                    time: Value::Nil,
                    record: Value::Nil,
                },
                option: None,
            });
        }
        let tag = d.read_value()?;
        if n == 1 {
            return Ok(RawMessage::Array {
                tag,
                body: Body::Message {
                    time: Value::Nil,
                    record: Value::Nil,
                },
                option: None,
            });
        }
        if let Some(packed) = d.read_raw_str()? {
            let option = if n >= 3 { Some(d.read_value()?) } else { None };
            for _ in 3..n {
                d.read_value()?;
            }
            return Ok(RawMessage::Array {
                tag,
                body: Body::Packed(Cow::Borrowed(packed)),
                option,
            });
        }
        let at = d.position();
        if let Some(count) = d.read_array_len()? {
            // Forward mode: the entries (and the option after them) are decoded in one pass by
            // `decode_message`, straight into events.
            return Ok(RawMessage::Array {
                tag,
                body: Body::ForwardRaw {
                    data: &buf[d.position()..],
                    count,
                    trailing: n - 2,
                },
                option: None,
            });
        }
        d.pos = at;
        let second = d.read_value()?;
        let mut rest = Vec::with_capacity(n.saturating_sub(2).min(4));
        for _ in 2..n {
            rest.push(d.read_value()?);
        }
        Ok(split_rest(tag, second, rest))
    }

    /// Splits a message that was decoded whole (JSON connections).
    pub fn from_value(v: Value) -> RawMessage<'static> {
        match v {
            Value::Array(items) => {
                let mut it = items.into_iter();
                let tag = it.next().unwrap_or(Value::Nil);
                let second = it.next().unwrap_or(Value::Nil);
                let rest: Vec<Value> = it.collect();
                match second {
                    Value::Str(s) | Value::Bin(s) => RawMessage::Array {
                        tag,
                        body: Body::Packed(Cow::Owned(s)),
                        option: rest.into_iter().next(),
                    },
                    other => split_rest(tag, other, rest),
                }
            }
            other => RawMessage::NotArray(other),
        }
    }
}

fn split_rest<'a>(tag: Value, second: Value, rest: Vec<Value>) -> RawMessage<'a> {
    let mut rest = rest.into_iter();
    match second {
        Value::Array(entries) => RawMessage::Array {
            tag,
            body: Body::Forward(entries),
            option: rest.next(),
        },
        time => {
            let record = rest.next().unwrap_or(Value::Nil);
            RawMessage::Array {
                tag,
                body: Body::Message { time, record },
                option: rest.next(),
            }
        }
    }
}

/// The event time of an entry: EventTime ext, integer or float seconds; nil or 0 mean "now";
/// an array stands for its first element. `None` = invalid.
pub fn entry_time(v: &Value, now: EventTime) -> Option<EventTime> {
    fn one(v: &Value, now: EventTime) -> Option<EventTime> {
        let t = match v {
            Value::Ext(0, p) => EventTime::from_ext_payload(p)?,
            Value::Int(i) => EventTime::new(*i, 0),
            Value::UInt(u) => EventTime::new(i64::try_from(*u).ok()?, 0),
            Value::Float(f) if f.is_finite() => {
                if f.trunc() == 0.0 {
                    return Some(now);
                }
                EventTime::from_f64(*f)
            }
            Value::Nil => return Some(now),
            _ => return None,
        };
        Some(if t.sec == 0 { now } else { t })
    }
    match v {
        Value::Array(a) => one(a.first().unwrap_or(&Value::Nil), now),
        other => one(other, now),
    }
}

/// Decompresses a CompressedPackedForward payload, refusing output beyond `limit` bytes.
pub fn decompress(kind: &[u8], data: &[u8], limit: u64) -> Result<Vec<u8>, ProtocolError> {
    let mut out = Vec::with_capacity((data.len() * 4).min(limit as usize).min(64 << 20));
    let res = match kind {
        b"gzip" => flate2::read::MultiGzDecoder::new(data)
            .take(limit.saturating_add(1))
            .read_to_end(&mut out),
        b"zstd" => match zstd::stream::read::Decoder::new(data) {
            Ok(d) => d.take(limit.saturating_add(1)).read_to_end(&mut out),
            Err(e) => Err(e),
        },
        other => {
            return Err(ProtocolError::Decompress(format!(
                "unknown compression type '{}'",
                String::from_utf8_lossy(other)
            )))
        }
    };
    res.map_err(|e| {
        ProtocolError::Decompress(format!(
            "failed to decompress {} payload: {e}",
            String::from_utf8_lossy(kind)
        ))
    })?;
    if out.len() as u64 > limit {
        return Err(ProtocolError::Decompress(format!(
            "decompressed size exceeds decompression_size_limit ({limit} bytes)"
        )));
    }
    Ok(out)
}

/// What a decoded message yields.
#[derive(Debug, Default, PartialEq)]
pub struct Decoded {
    /// The effective tag (after `tag`/`add_tag_prefix`); `None` when the tag is not a string.
    pub tag: Option<String>,
    pub events: EventStream,
    /// Entries dropped as invalid, described for the warning Fluentd logs.
    pub invalid: Vec<String>,
    /// The option map, when the message has one.
    pub option: Option<Value>,
    /// Message mode with an invalid event: Fluentd still acknowledges it.
    pub dropped_message: bool,
}

/// How to turn raw messages into events.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// `tag`: replaces the incoming tag.
    pub tag: Option<String>,
    /// `add_tag_prefix`: `PREFIX.` before the tag.
    pub add_tag_prefix: Option<String>,
    pub decompression_size_limit: u64,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            tag: None,
            add_tag_prefix: None,
            decompression_size_limit: 256 << 20,
        }
    }
}

fn describe(time: &Value, record: &Value) -> String {
    let show = |v: &Value| {
        String::from_utf8_lossy(&crate::plugins::formatter_hash::inspect(v)).into_owned()
    };
    format!("time={} record={}", show(time), show(record))
}

/// The tag Fluentd would use: `tag` overrides, then `add_tag_prefix` is prepended (a non-string
/// tag is then interpolated as Ruby's `to_s`).
pub fn effective_tag(raw: &Value, opts: &DecodeOptions) -> Option<String> {
    let base = match &opts.tag {
        Some(t) => Some(t.clone()),
        None => match raw {
            Value::Str(s) | Value::Bin(s) => Some(String::from_utf8_lossy(s).into_owned()),
            _ => None,
        },
    };
    match &opts.add_tag_prefix {
        Some(p) => {
            let t = match base {
                Some(t) => t,
                None => String::from_utf8_lossy(&raw.to_ruby_s()).into_owned(),
            };
            Some(format!("{p}.{t}"))
        }
        None => base,
    }
}

fn push_entry(out: &mut Decoded, time: &Value, record: Value, now: EventTime, tag_ok: bool) {
    match (entry_time(time, now), record) {
        (Some(t), Value::Map(r)) if tag_ok => out.events.push(t, r),
        (_, record) => out.invalid.push(describe(time, &record)),
    }
}

/// Decodes a message's events. Errors (a broken packed stream, a failed decompression) mean the
/// connection is to be closed.
pub fn decode_message(
    raw: RawMessage<'_>,
    opts: &DecodeOptions,
    now: EventTime,
) -> Result<Decoded, ProtocolError> {
    let (tag, body, option) = match raw {
        RawMessage::NotArray(v) => {
            return Err(ProtocolError::Shape(format!(
                "incoming chunk is broken: msg={}",
                String::from_utf8_lossy(&crate::plugins::formatter_hash::inspect(&v))
            )))
        }
        RawMessage::Array { tag, body, option } => (tag, body, option),
    };
    let mut out = Decoded {
        tag: effective_tag(&tag, opts),
        ..Decoded::default()
    };
    let tag_ok = out.tag.is_some();
    match body {
        Body::Packed(payload) => {
            let compressed = match &option {
                Some(Value::Map(m)) => m.get("compressed").and_then(|v| v.as_bytes()),
                _ => None,
            };
            let data: Cow<'_, [u8]> = match compressed {
                None | Some(b"text") => payload,
                Some(kind) => {
                    Cow::Owned(decompress(kind, &payload, opts.decompression_size_limit)?)
                }
            };
            let size_hint = match &option {
                Some(Value::Map(m)) => match m.get("size") {
                    Some(Value::Int(n)) => (*n).clamp(0, 1 << 20) as usize,
                    _ => 0,
                },
                _ => 0,
            };
            out.events = EventStream::with_capacity(size_hint.min(data.len() / 2 + 1));
            let mut d = Decoder::with_max_depth(&data, MAX_DEPTH);
            while !d.at_end() {
                d.entry(&mut out, now, tag_ok)?;
            }
            out.option = option;
        }
        Body::ForwardRaw {
            data,
            count,
            trailing,
        } => {
            out.events = EventStream::with_capacity(count.min(data.len()));
            let mut d = Decoder::with_max_depth(data, MAX_DEPTH);
            for _ in 0..count {
                d.entry(&mut out, now, tag_ok)?;
            }
            if trailing > 0 {
                out.option = Some(d.read_value()?);
            }
        }
        Body::Forward(entries) => {
            out.events = EventStream::with_capacity(entries.len());
            for e in entries {
                match e {
                    Value::Array(a) => {
                        let mut it = a.into_iter();
                        let time = it.next().unwrap_or(Value::Nil);
                        let record = it.next().unwrap_or(Value::Nil);
                        push_entry(&mut out, &time, record, now, tag_ok);
                    }
                    other => out.invalid.push(describe(&Value::Nil, &other)),
                }
            }
            out.option = option;
        }
        Body::Message { time, record } => {
            let before = out.invalid.len();
            push_entry(&mut out, &time, record, now, tag_ok);
            out.dropped_message = out.invalid.len() > before;
            out.option = option;
        }
    }
    Ok(out)
}

/// The response a message asks for: `{"ack": chunk}` when its option carries `chunk`.
pub fn ack_for(option: &Option<Value>) -> Option<Value> {
    match option {
        Some(Value::Map(m)) => match m.get("chunk") {
            None | Some(Value::Nil) | Some(Value::Bool(false)) => None,
            Some(c) => {
                let mut r = Record::with_capacity(1);
                r.push_unchecked(b"ack".to_vec(), c.clone());
                Some(Value::Map(r))
            }
        },
        _ => None,
    }
}

/// Encodes a value as msgpack.
pub fn to_msgpack(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    crate::event::msgpack::write_value(&mut out, v);
    out
}

/// Encodes a value as JSON (responses on JSON connections).
pub fn to_json(v: &Value) -> Vec<u8> {
    fn conv(v: &Value) -> serde_json::Value {
        match v {
            Value::Nil => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::UInt(u) => serde_json::Value::from(*u),
            Value::BigInt(s) => serde_json::Value::String(s.clone()),
            Value::Float(f) => serde_json::Value::from(*f),
            Value::Str(s) | Value::Bin(s) | Value::Ext(_, s) => {
                serde_json::Value::String(String::from_utf8_lossy(s).into_owned())
            }
            Value::Array(a) => serde_json::Value::Array(a.iter().map(conv).collect()),
            Value::Map(m) => serde_json::Value::Object(
                m.iter()
                    .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), conv(v)))
                    .collect(),
            ),
        }
    }
    serde_json::to_vec(&conv(v)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::msgpack::{write_entry, write_str, write_value};

    fn rec(pairs: &[(&str, Value)]) -> Record {
        let mut r = Record::new();
        for (k, v) in pairs {
            r.insert(*k, v.clone());
        }
        r
    }

    fn scan_all(buf: &[u8]) -> Option<usize> {
        let mut st = ScanState::default();
        scan_msgpack(buf, &mut st).unwrap()
    }

    #[test]
    fn scanner_finds_object_ends_and_resumes() {
        let mut buf = Vec::new();
        let r = rec(&[("a", Value::Int(1)), ("b", Value::str("xyz"))]);
        write_value(
            &mut buf,
            &Value::Array(vec![Value::str("t"), Value::Int(300), Value::Map(r)]),
        );
        let total = buf.len();
        buf.extend_from_slice(&[0x91, 0x01]);
        assert_eq!(scan_all(&buf), Some(total));
        // Byte by byte: incomplete until the last byte of the first object.
        let mut st = ScanState::default();
        for i in 1..total {
            assert_eq!(scan_msgpack(&buf[..i], &mut st).unwrap(), None, "at {i}");
        }
        assert_eq!(scan_msgpack(&buf[..total], &mut st).unwrap(), Some(total));
    }

    #[test]
    fn scanner_handles_all_markers() {
        let mut buf = Vec::new();
        let vals = vec![
            Value::Nil,
            Value::Bool(true),
            Value::Int(-1),
            Value::Int(-200),
            Value::Int(70000),
            Value::Int(-5_000_000_000),
            Value::UInt(u64::MAX),
            Value::Float(1.5),
            Value::Str(vec![b'x'; 40]),
            Value::Str(vec![b'x'; 300]),
            Value::Str(vec![b'x'; 70000]),
            Value::Bin(vec![1, 2, 3]),
            Value::Ext(0, vec![0; 8]),
            Value::Ext(5, vec![0; 3]),
            Value::Array(vec![Value::Int(1); 20]),
            Value::Array(vec![Value::Int(1); 70000]),
        ];
        write_value(&mut buf, &Value::Array(vals.clone()));
        assert_eq!(scan_all(&buf), Some(buf.len()));
        assert_eq!(decode_value(&buf).unwrap(), Value::Array(vals));
    }

    #[test]
    fn scanner_rejects_never_used_marker() {
        let mut st = ScanState::default();
        assert_eq!(
            scan_msgpack(&[0x92, 0xc1], &mut st),
            Err(ProtocolError::Marker(0xc1))
        );
    }

    #[test]
    fn decoder_keeps_first_position_and_last_value_of_duplicate_keys() {
        // {"a":1,"b":2,"a":3}
        let buf = [0x83, 0xa1, b'a', 1, 0xa1, b'b', 2, 0xa1, b'a', 3];
        let v = decode_value(&buf).unwrap();
        assert_eq!(
            v,
            Value::Map(rec(&[("a", Value::Int(3)), ("b", Value::Int(2))]))
        );
    }

    #[test]
    fn decoder_dedups_large_maps() {
        let mut buf = vec![0xde, 0x00, 200];
        for i in 0..200u32 {
            let k = format!("k{}", i % 150);
            write_str(&mut buf, k.as_bytes());
            write_value(&mut buf, &Value::Int(i as i64));
        }
        let Value::Map(r) = decode_value(&buf).unwrap() else {
            panic!("not a map")
        };
        assert_eq!(r.len(), 150);
        assert_eq!(r.get("k0"), Some(&Value::Int(150)));
        assert_eq!(r.get("k149"), Some(&Value::Int(149)));
        assert_eq!(r.keys().next(), Some(&b"k0"[..]));
    }

    #[test]
    fn decode_results_stay_small() {
        assert_eq!(
            std::mem::size_of::<Result<Value, DErr>>(),
            std::mem::size_of::<Value>()
        );
    }

    #[test]
    fn decoder_limits_depth() {
        let mut buf = vec![0x91u8; 1000];
        buf.push(0xc0);
        assert_eq!(scan_all(&buf), Some(1001));
        assert_eq!(decode_value(&buf), Err(ProtocolError::TooDeep));
    }

    fn now() -> EventTime {
        EventTime::new(1_800_000_000, 7)
    }

    #[test]
    fn message_mode_with_int_and_event_time() {
        let mut buf = Vec::new();
        write_value(
            &mut buf,
            &Value::Array(vec![
                Value::str("app.x"),
                Value::Int(1700000000),
                Value::Map(rec(&[("k", Value::str("v"))])),
            ]),
        );
        let raw = RawMessage::from_msgpack(&buf).unwrap();
        let d = decode_message(raw, &DecodeOptions::default(), now()).unwrap();
        assert_eq!(d.tag.as_deref(), Some("app.x"));
        assert_eq!(
            d.events,
            EventStream::one(
                EventTime::new(1700000000, 0),
                rec(&[("k", Value::str("v"))])
            )
        );
        assert_eq!(d.option, None);
        assert!(!d.dropped_message);
    }

    #[test]
    fn forward_mode_times_nil_zero_array_float_and_invalid() {
        let r = Value::Map(rec(&[("a", Value::Int(1))]));
        let et = Value::Ext(
            0,
            EventTime::new(1700000002, 123456716)
                .to_ext_payload()
                .to_vec(),
        );
        let entries = Value::Array(vec![
            Value::Array(vec![et, r.clone()]),
            Value::Array(vec![Value::Int(0), r.clone()]),
            Value::Array(vec![Value::Nil, r.clone()]),
            Value::Array(vec![
                Value::Array(vec![Value::Int(1700000005), Value::Int(9)]),
                r.clone(),
            ]),
            Value::Array(vec![Value::Float(1700000006.5), r.clone()]),
            Value::Array(vec![Value::str("bad"), r.clone()]),
            Value::Array(vec![Value::Int(1700000007), Value::str("not a map")]),
            Value::Int(3),
        ]);
        let mut opt = Record::new();
        opt.insert("chunk", Value::str("abc=="));
        let mut buf = Vec::new();
        write_value(
            &mut buf,
            &Value::Array(vec![Value::str("t"), entries, Value::Map(opt)]),
        );
        let d = decode_message(
            RawMessage::from_msgpack(&buf).unwrap(),
            &DecodeOptions::default(),
            now(),
        )
        .unwrap();
        let times: Vec<EventTime> = d.events.iter().map(|e| e.time).collect();
        assert_eq!(
            times,
            vec![
                EventTime::new(1700000002, 123456716),
                now(),
                now(),
                EventTime::new(1700000005, 0),
                EventTime::new(1700000006, 500_000_000),
            ]
        );
        assert_eq!(d.invalid.len(), 3);
        let mut ack = Record::new();
        ack.insert("ack", Value::str("abc=="));
        assert_eq!(ack_for(&d.option), Some(Value::Map(ack)));
    }

    #[test]
    fn packed_forward_plain_gzip_and_zstd() {
        let r = rec(&[("m", Value::str("hello"))]);
        let mut entries = Vec::new();
        for i in 0..3 {
            write_entry(&mut entries, EventTime::new(1700000000 + i, 5), &r);
        }
        let gz = {
            use std::io::Write;
            // Two gzip members, as out_forward writes per-append members.
            let mut out = Vec::new();
            for part in [&entries[..10], &entries[10..]] {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(part).unwrap();
                out.extend(e.finish().unwrap());
            }
            out
        };
        let zs = zstd::encode_all(&entries[..], 1).unwrap();
        for (payload, kind) in [
            (entries.clone(), None),
            (entries.clone(), Some("text")),
            (gz, Some("gzip")),
            (zs, Some("zstd")),
        ] {
            let mut opt = Record::new();
            opt.insert("size", Value::Int(3));
            if let Some(k) = kind {
                opt.insert("compressed", Value::str(k));
            }
            let mut buf = vec![0x93];
            write_str(&mut buf, b"pk");
            buf.push(0xc6);
            buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            buf.extend_from_slice(&payload);
            write_value(&mut buf, &Value::Map(opt));
            let d = decode_message(
                RawMessage::from_msgpack(&buf).unwrap(),
                &DecodeOptions::default(),
                now(),
            )
            .unwrap();
            assert_eq!(d.events.len(), 3, "{kind:?}");
            assert_eq!(d.events.events[2].time, EventTime::new(1700000002, 5));
            assert_eq!(d.events.events[0].record, r);
        }
    }

    #[test]
    fn decompression_limit_is_enforced() {
        let big = vec![b'a'; 10_000];
        let zs = zstd::encode_all(&big[..], 1).unwrap();
        assert!(decompress(b"zstd", &zs, 10_000).is_ok());
        assert!(matches!(
            decompress(b"zstd", &zs, 9_999),
            Err(ProtocolError::Decompress(_))
        ));
        assert!(decompress(b"lz4", &zs, 10).is_err());
    }

    #[test]
    fn invalid_message_mode_event_is_dropped_but_acked() {
        let mut opt = Record::new();
        opt.insert("chunk", Value::str("c1"));
        let v = Value::Array(vec![
            Value::str("t"),
            Value::Bool(true),
            Value::Map(Record::new()),
            Value::Map(opt),
        ]);
        let mut buf = Vec::new();
        write_value(&mut buf, &v);
        let d = decode_message(
            RawMessage::from_msgpack(&buf).unwrap(),
            &DecodeOptions::default(),
            now(),
        )
        .unwrap();
        assert!(d.events.is_empty());
        assert!(d.dropped_message);
        assert!(ack_for(&d.option).is_some());
    }

    #[test]
    fn tag_override_and_prefix() {
        let opts = DecodeOptions {
            tag: None,
            add_tag_prefix: Some("fwd".into()),
            ..Default::default()
        };
        assert_eq!(
            effective_tag(&Value::str("app.x"), &opts).as_deref(),
            Some("fwd.app.x")
        );
        let opts = DecodeOptions {
            tag: Some("fixed".into()),
            add_tag_prefix: Some("p".into()),
            ..Default::default()
        };
        assert_eq!(
            effective_tag(&Value::Int(3), &opts).as_deref(),
            Some("p.fixed")
        );
        assert_eq!(
            effective_tag(&Value::Int(3), &DecodeOptions::default()),
            None
        );
    }

    #[test]
    fn json_framing() {
        let buf =
            br#"["t", 1700000000, {"a":1}] ["u", [[1700000001, {"b":2}]], {"chunk":"x"}]  ["v""#;
        let (v1, n1) = scan_json(buf).unwrap().unwrap();
        let (v2, n2) = scan_json(&buf[n1..]).unwrap().unwrap();
        assert_eq!(scan_json(&buf[n1 + n2..]).unwrap(), None);
        let d1 =
            decode_message(RawMessage::from_value(v1), &DecodeOptions::default(), now()).unwrap();
        assert_eq!(d1.events.events[0].record, rec(&[("a", Value::Int(1))]));
        let d2 =
            decode_message(RawMessage::from_value(v2), &DecodeOptions::default(), now()).unwrap();
        assert_eq!(d2.tag.as_deref(), Some("u"));
        let ack = ack_for(&d2.option).unwrap();
        assert_eq!(to_json(&ack), br#"{"ack":"x"}"#.to_vec());
        assert!(scan_json(b"[1,}").is_err());
    }
}
