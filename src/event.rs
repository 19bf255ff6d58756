//! The event model: `EventTime` (ns precision, msgpack ext type 0), insertion-ordered `Record`
//! with byte-string values, and `EventStream`, the batch that moves between stages.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the epoch that [`EventTime::now`] returns instead of the clock (0: none).
/// `ferrentd test` sets it so that results do not depend on when a test runs.
static FIXED_CLOCK_NS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// Fixes the clock that [`EventTime::now`] reads (for the whole process).
pub fn set_fixed_clock(t: EventTime) {
    let ns = t
        .sec
        .saturating_mul(1_000_000_000)
        .saturating_add(i64::from(t.nsec));
    FIXED_CLOCK_NS.store(ns.max(1), std::sync::atomic::Ordering::Relaxed);
}

/// Seconds + nanoseconds since the Unix epoch, as Fluentd's `Fluent::EventTime`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventTime {
    pub sec: i64,
    pub nsec: u32,
}

impl EventTime {
    pub const fn new(sec: i64, nsec: u32) -> Self {
        EventTime { sec, nsec }
    }

    /// The current time, or the fixed clock of `ferrentd test` when one is set.
    pub fn now() -> Self {
        let fixed = FIXED_CLOCK_NS.load(std::sync::atomic::Ordering::Relaxed);
        if fixed != 0 {
            return EventTime::new(
                fixed.div_euclid(1_000_000_000),
                fixed.rem_euclid(1_000_000_000) as u32,
            );
        }
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => EventTime::new(d.as_secs() as i64, d.subsec_nanos()),
            Err(_) => EventTime::default(),
        }
    }

    /// From float seconds, keeping as many nanoseconds as the float carries (as Fluentd's
    /// `EventTime.from_time(Time.at(f))`).
    pub fn from_f64(f: f64) -> Self {
        if !f.is_finite() {
            return EventTime::default();
        }
        let sec = f.floor();
        let mut nsec = ((f - sec) * 1e9).round() as i64;
        let mut sec = sec as i64;
        if nsec >= 1_000_000_000 {
            sec += 1;
            nsec -= 1_000_000_000;
        }
        EventTime::new(sec, nsec.max(0) as u32)
    }

    pub fn as_f64(&self) -> f64 {
        self.sec as f64 + self.nsec as f64 / 1e9
    }

    /// msgpack ext type 0 payload: sec (u32 BE) then nsec (u32 BE).
    pub fn to_ext_payload(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&(self.sec as u32).to_be_bytes());
        b[4..].copy_from_slice(&self.nsec.to_be_bytes());
        b
    }

    pub fn from_ext_payload(p: &[u8]) -> Option<Self> {
        if p.len() != 8 {
            return None;
        }
        let sec = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
        let nsec = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        Some(EventTime::new(sec as i64, nsec))
    }
}

impl fmt::Display for EventTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:09}", self.sec, self.nsec)
    }
}

/// A record value. Strings are byte strings: Fluentd passes invalid UTF-8 through untouched.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    /// Only for values above `i64::MAX`.
    UInt(u64),
    /// An integer beyond 64 bits (Ruby Bignum), kept as its decimal digits.
    BigInt(String),
    Float(f64),
    Str(Vec<u8>),
    Bin(Vec<u8>),
    Array(Vec<Value>),
    Map(Record),
    Ext(i8, Vec<u8>),
}

impl Value {
    pub fn str(s: impl Into<Vec<u8>>) -> Value {
        Value::Str(s.into())
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Str(s) | Value::Bin(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&Record> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    /// Ruby's `to_s` of the value, as filters such as grep and rewrite_tag_filter match on it.
    pub fn to_ruby_s(&self) -> Vec<u8> {
        match self {
            Value::Nil => Vec::new(),
            Value::Str(s) | Value::Bin(s) => s.clone(),
            Value::Int(i) => i.to_string().into_bytes(),
            Value::UInt(u) => u.to_string().into_bytes(),
            Value::BigInt(d) => d.clone().into_bytes(),
            Value::Bool(b) => b.to_string().into_bytes(),
            Value::Array(_) | Value::Map(_) => crate::inspect::inspect(self),
            other => crate::inspect::inspect(other),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.as_bytes().to_vec())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s.into_bytes())
    }
}
impl From<Vec<u8>> for Value {
    fn from(s: Vec<u8>) -> Self {
        Value::Str(s)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<Record> for Value {
    fn from(r: Record) -> Self {
        Value::Map(r)
    }
}

/// An insertion-ordered map. Records are small, so a vector with linear lookup beats hashing;
/// overwriting a key keeps its position (as a Ruby Hash does).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record {
    fields: Vec<(Vec<u8>, Value)>,
}

impl Record {
    pub fn new() -> Self {
        Record { fields: Vec::new() }
    }

    pub fn with_capacity(n: usize) -> Self {
        Record {
            fields: Vec::with_capacity(n),
        }
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    fn position(&self, key: &[u8]) -> Option<usize> {
        self.fields.iter().position(|(k, _)| k.as_slice() == key)
    }

    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<&Value> {
        let key = key.as_ref();
        self.fields
            .iter()
            .find(|(k, _)| k.as_slice() == key)
            .map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: impl AsRef<[u8]>) -> Option<&mut Value> {
        let key = key.as_ref();
        self.fields
            .iter_mut()
            .find(|(k, _)| k.as_slice() == key)
            .map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: impl AsRef<[u8]>) -> bool {
        self.position(key.as_ref()).is_some()
    }

    /// Sets `key`; an existing key keeps its position.
    pub fn insert(&mut self, key: impl Into<Vec<u8>>, value: Value) {
        let key = key.into();
        match self.position(&key) {
            Some(i) => self.fields[i].1 = value,
            None => self.fields.push((key, value)),
        }
    }

    /// Appends without checking for an existing key; for builders that know keys are new.
    pub fn push_unchecked(&mut self, key: Vec<u8>, value: Value) {
        self.fields.push((key, value));
    }

    pub fn remove(&mut self, key: impl AsRef<[u8]>) -> Option<Value> {
        let i = self.position(key.as_ref())?;
        Some(self.fields.remove(i).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Value)> {
        self.fields.iter().map(|(k, v)| (k.as_slice(), v))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&Vec<u8>, &mut Value)> {
        self.fields.iter_mut().map(|(k, v)| (&*k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.fields.iter().map(|(k, _)| k.as_slice())
    }

    pub fn retain(&mut self, mut f: impl FnMut(&[u8], &Value) -> bool) {
        self.fields.retain(|(k, v)| f(k, v));
    }

    /// Merges `other` into self: existing keys are overwritten in place, new keys appended.
    pub fn merge(&mut self, other: Record) {
        for (k, v) in other.fields {
            self.insert(k, v);
        }
    }

    pub fn into_fields(self) -> Vec<(Vec<u8>, Value)> {
        self.fields
    }
}

impl FromIterator<(Vec<u8>, Value)> for Record {
    fn from_iter<I: IntoIterator<Item = (Vec<u8>, Value)>>(iter: I) -> Self {
        let mut r = Record::new();
        for (k, v) in iter {
            r.insert(k, v);
        }
        r
    }
}

impl IntoIterator for Record {
    type Item = (Vec<u8>, Value);
    type IntoIter = std::vec::IntoIter<(Vec<u8>, Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.fields.into_iter()
    }
}

/// One event of a stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub time: EventTime,
    pub record: Record,
}

impl Event {
    pub fn new(time: EventTime, record: Record) -> Self {
        Event { time, record }
    }
}

/// A batch of events for one tag: what moves between inputs, filters and outputs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventStream {
    pub events: Vec<Event>,
}

impl EventStream {
    pub fn new() -> Self {
        EventStream { events: Vec::new() }
    }
    pub fn with_capacity(n: usize) -> Self {
        EventStream {
            events: Vec::with_capacity(n),
        }
    }
    pub fn one(time: EventTime, record: Record) -> Self {
        EventStream {
            events: vec![Event::new(time, record)],
        }
    }
    pub fn push(&mut self, time: EventTime, record: Record) {
        self.events.push(Event::new(time, record));
    }
    pub fn len(&self) -> usize {
        self.events.len()
    }
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
    pub fn iter(&self) -> std::slice::Iter<'_, Event> {
        self.events.iter()
    }
}

impl IntoIterator for EventStream {
    type Item = Event;
    type IntoIter = std::vec::IntoIter<Event>;
    fn into_iter(self) -> Self::IntoIter {
        self.events.into_iter()
    }
}

impl FromIterator<Event> for EventStream {
    fn from_iter<I: IntoIterator<Item = Event>>(iter: I) -> Self {
        EventStream {
            events: iter.into_iter().collect(),
        }
    }
}

pub mod msgpack {
    //! msgpack encoding of values and `[time, record]` entries, as Fluentd packs them.
    use super::{EventTime, Record, Value};
    use rmp::encode as enc;

    pub fn write_value(out: &mut Vec<u8>, v: &Value) {
        // Writing into a Vec cannot fail, so the results below are ignored on purpose.
        match v {
            Value::Nil => enc::write_nil(out).unwrap_or(()),
            Value::Bool(b) => enc::write_bool(out, *b).unwrap_or(()),
            Value::Int(i) => {
                let _ = enc::write_sint(out, *i);
            }
            Value::UInt(u) => {
                let _ = enc::write_uint(out, *u);
            }
            Value::BigInt(s) => write_str(out, s.as_bytes()),
            Value::Float(f) => {
                let _ = enc::write_f64(out, *f);
            }
            Value::Str(s) => write_str(out, s),
            Value::Bin(b) => {
                let _ = enc::write_bin(out, b);
            }
            Value::Array(a) => {
                let _ = enc::write_array_len(out, a.len() as u32);
                for x in a {
                    write_value(out, x);
                }
            }
            Value::Map(m) => write_record(out, m),
            Value::Ext(t, d) => {
                let _ = enc::write_ext_meta(out, d.len() as u32, *t);
                out.extend_from_slice(d);
            }
        }
    }

    pub fn write_str(out: &mut Vec<u8>, s: &[u8]) {
        let _ = enc::write_str_len(out, s.len() as u32);
        out.extend_from_slice(s);
    }

    pub fn write_record(out: &mut Vec<u8>, r: &Record) {
        let _ = enc::write_map_len(out, r.len() as u32);
        for (k, v) in r.iter() {
            write_str(out, k);
            write_value(out, v);
        }
    }

    pub fn write_time(out: &mut Vec<u8>, t: EventTime) {
        out.extend_from_slice(&[0xd7, 0x00]);
        out.extend_from_slice(&t.to_ext_payload());
    }

    /// `[time, record]` as one entry of a Forward/PackedForward stream or a buffer chunk.
    pub fn write_entry(out: &mut Vec<u8>, t: EventTime, r: &Record) {
        out.push(0x92);
        write_time(out, t);
        write_record(out, r);
    }

    #[derive(Debug, thiserror::Error)]
    pub enum DecodeError {
        #[error("unexpected end of msgpack data")]
        Eof,
        #[error("invalid msgpack marker 0x{0:02x}")]
        Marker(u8),
        #[error("msgpack nesting too deep")]
        TooDeep,
        #[error("{0}")]
        Shape(&'static str),
    }

    /// The decoder's error: small and `Copy`, so that `Result<Value, DErr>` is no larger than
    /// a `Value` and decoding moves less.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
    pub enum DErr {
        #[error("unexpected end of msgpack data")]
        Eof,
        #[error("invalid msgpack marker 0x{0:02x}")]
        Marker(u8),
        #[error("msgpack nesting too deep")]
        TooDeep,
    }

    /// Nesting beyond this is refused (the decoder recurses per level).
    pub const MAX_DEPTH: usize = 128;

    /// Decodes msgpack bytes into `Value`s. Maps keep their first key position with the last value
    /// for duplicate keys (Ruby Hash semantics); non-string keys become their Ruby `to_s`.
    pub struct Decoder<'a> {
        pub(crate) buf: &'a [u8],
        pub(crate) pos: usize,
        max_depth: usize,
    }

    impl<'a> Decoder<'a> {
        pub fn new(buf: &'a [u8]) -> Self {
            Self::with_max_depth(buf, MAX_DEPTH)
        }

        pub fn with_max_depth(buf: &'a [u8], max_depth: usize) -> Self {
            Decoder {
                buf,
                pos: 0,
                max_depth,
            }
        }

        pub fn position(&self) -> usize {
            self.pos
        }

        pub fn at_end(&self) -> bool {
            self.pos >= self.buf.len()
        }

        #[inline]
        pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DErr> {
            let end = self.pos.checked_add(n).ok_or(DErr::Eof)?;
            let s = self.buf.get(self.pos..end).ok_or(DErr::Eof)?;
            self.pos = end;
            Ok(s)
        }

        #[inline]
        pub(crate) fn byte(&mut self) -> Result<u8, DErr> {
            let b = *self.buf.get(self.pos).ok_or(DErr::Eof)?;
            self.pos += 1;
            Ok(b)
        }

        #[inline]
        pub(crate) fn be(&mut self, n: usize) -> Result<u64, DErr> {
            Ok(self
                .take(n)?
                .iter()
                .fold(0u64, |acc, b| (acc << 8) | *b as u64))
        }

        pub(crate) fn left(&self) -> usize {
            self.buf.len().saturating_sub(self.pos)
        }

        pub fn read_value(&mut self) -> Result<Value, DErr> {
            self.value(0)
        }

        /// The bytes of a str or bin without copying, if the next object is one.
        pub fn read_raw_str(&mut self) -> Result<Option<&'a [u8]>, DErr> {
            let Some(&m) = self.buf.get(self.pos) else {
                return Err(DErr::Eof);
            };
            let n = match m {
                0xa0..=0xbf => {
                    self.pos += 1;
                    (m & 0x1f) as usize
                }
                0xc4..=0xc6 => {
                    self.pos += 1;
                    self.be(1 << (m - 0xc4))? as usize
                }
                0xd9..=0xdb => {
                    self.pos += 1;
                    self.be(1 << (m - 0xd9))? as usize
                }
                _ => return Ok(None),
            };
            self.take(n).map(Some)
        }

        /// Reads an array header if the next object is an array.
        pub fn read_array_len(&mut self) -> Result<Option<usize>, DErr> {
            let Some(&m) = self.buf.get(self.pos) else {
                return Err(DErr::Eof);
            };
            let n = match m {
                0x90..=0x9f => {
                    self.pos += 1;
                    (m & 0x0f) as usize
                }
                0xdc => {
                    self.pos += 1;
                    self.be(2)? as usize
                }
                0xdd => {
                    self.pos += 1;
                    self.be(4)? as usize
                }
                _ => return Ok(None),
            };
            Ok(Some(n))
        }

        fn items(&mut self, n: usize, depth: usize) -> Result<Vec<Value>, DErr> {
            // Each item takes at least a byte: a hostile length cannot over-allocate.
            let mut v = Vec::with_capacity(n.min(self.left()));
            for _ in 0..n {
                v.push(self.value(depth + 1)?);
            }
            Ok(v)
        }

        fn key(&mut self, depth: usize) -> Result<Vec<u8>, DErr> {
            if let Some(&m) = self.buf.get(self.pos) {
                if (0xa0..=0xbf).contains(&m) {
                    self.pos += 1;
                    return Ok(self.take((m & 0x1f) as usize)?.to_vec());
                }
            }
            Ok(match self.value(depth + 1)? {
                Value::Str(s) | Value::Bin(s) => s,
                other => other.to_ruby_s(),
            })
        }

        pub(crate) fn map(&mut self, n: usize, depth: usize) -> Result<Record, DErr> {
            let mut r = Record::with_capacity(n.min(self.left() / 2));
            // A 64-bit sketch of the keys seen: only a key whose sketch bit is already set needs the
            // linear duplicate check, so typical records decode in one pass.
            let mut seen = 0u64;
            for i in 0..n {
                if r.len() >= 32 {
                    // Larger maps: finish with a hash index instead of linear checks.
                    return self.map_large(r, i, n, depth);
                }
                let k = self.key(depth)?;
                let v = self.value(depth + 1)?;
                let h = (k
                    .len()
                    .wrapping_mul(31)
                    .wrapping_add(k.first().copied().unwrap_or(0) as usize)
                    .wrapping_add((k.last().copied().unwrap_or(0) as usize).wrapping_mul(7)))
                    & 63;
                let bit = 1u64 << h;
                if seen & bit != 0 && r.contains_key(&k) {
                    r.insert(k, v);
                } else {
                    seen |= bit;
                    r.push_unchecked(k, v);
                }
            }
            Ok(r)
        }

        fn map_large(
            &mut self,
            r: Record,
            read: usize,
            n: usize,
            depth: usize,
        ) -> Result<Record, DErr> {
            use std::collections::HashMap;
            let mut fields = r.into_fields();
            let mut index: HashMap<Vec<u8>, usize> = HashMap::with_capacity(fields.len());
            for (i, (k, _)) in fields.iter().enumerate() {
                index.insert(k.clone(), i);
            }
            let mut read = read;
            while read < n {
                let k = self.key(depth)?;
                let v = self.value(depth + 1)?;
                match index.get(&k) {
                    Some(&i) => fields[i].1 = v,
                    None => {
                        index.insert(k.clone(), fields.len());
                        fields.push((k, v));
                    }
                }
                read += 1;
            }
            let mut out = Record::with_capacity(fields.len());
            for (k, v) in fields {
                out.push_unchecked(k, v);
            }
            Ok(out)
        }

        pub(crate) fn value(&mut self, depth: usize) -> Result<Value, DErr> {
            if depth > self.max_depth {
                return Err(DErr::TooDeep);
            }
            let m = self.byte()?;
            Ok(match m {
                0x00..=0x7f => Value::Int(m as i64),
                0x80..=0x8f => Value::Map(self.map((m & 0x0f) as usize, depth)?),
                0x90..=0x9f => Value::Array(self.items((m & 0x0f) as usize, depth)?),
                0xa0..=0xbf => Value::Str(self.take((m & 0x1f) as usize)?.to_vec()),
                0xc0 => Value::Nil,
                0xc1 => return Err(DErr::Marker(m)),
                0xc2 => Value::Bool(false),
                0xc3 => Value::Bool(true),
                0xc4..=0xc6 => {
                    let n = self.be(1 << (m - 0xc4))? as usize;
                    Value::Bin(self.take(n)?.to_vec())
                }
                0xc7..=0xc9 => {
                    let n = self.be(1 << (m - 0xc7))? as usize;
                    let t = self.byte()? as i8;
                    Value::Ext(t, self.take(n)?.to_vec())
                }
                0xca => Value::Float(f32::from_bits(self.be(4)? as u32) as f64),
                0xcb => Value::Float(f64::from_bits(self.be(8)?)),
                0xcc..=0xcf => {
                    let u = self.be(1 << (m - 0xcc))?;
                    if u > i64::MAX as u64 {
                        Value::UInt(u)
                    } else {
                        Value::Int(u as i64)
                    }
                }
                0xd0 => Value::Int(self.be(1)? as u8 as i8 as i64),
                0xd1 => Value::Int(self.be(2)? as u16 as i16 as i64),
                0xd2 => Value::Int(self.be(4)? as u32 as i32 as i64),
                0xd3 => Value::Int(self.be(8)? as i64),
                0xd4..=0xd8 => {
                    let n = 1usize << (m - 0xd4);
                    let t = self.byte()? as i8;
                    Value::Ext(t, self.take(n)?.to_vec())
                }
                0xd9..=0xdb => {
                    let n = self.be(1 << (m - 0xd9))? as usize;
                    Value::Str(self.take(n)?.to_vec())
                }
                0xdc | 0xdd => {
                    let n = self.be(2 << (m - 0xdc))? as usize;
                    Value::Array(self.items(n, depth)?)
                }
                0xde | 0xdf => {
                    let n = self.be(2 << (m - 0xde))? as usize;
                    Value::Map(self.map(n, depth)?)
                }
                0xe0..=0xff => Value::Int(m as i8 as i64),
            })
        }
    }

    impl From<DErr> for DecodeError {
        fn from(e: DErr) -> Self {
            match e {
                DErr::Eof => DecodeError::Eof,
                DErr::Marker(m) => DecodeError::Marker(m),
                DErr::TooDeep => DecodeError::TooDeep,
            }
        }
    }

    /// Interprets a decoded time value: EventTime ext, integer or float seconds.
    pub fn value_to_time(v: &Value) -> Option<EventTime> {
        match v {
            Value::Ext(0, p) => EventTime::from_ext_payload(p),
            Value::Int(i) => Some(EventTime::new(*i, 0)),
            Value::UInt(u) => Some(EventTime::new(*u as i64, 0)),
            Value::Float(f) => Some(EventTime::from_f64(*f)),
            _ => None,
        }
    }

    /// Decodes a concatenated stream of `[time, record]` entries (a PackedForward payload or a
    /// buffer chunk).
    pub fn read_entries(buf: &[u8]) -> Result<Vec<(EventTime, Record)>, DecodeError> {
        let mut r = Decoder::new(buf);
        let mut out = Vec::new();
        while !r.at_end() {
            match r.read_value()? {
                Value::Array(mut a) if a.len() == 2 => {
                    let rec = match a.pop() {
                        Some(Value::Map(m)) => m,
                        _ => return Err(DecodeError::Shape("record is not a map")),
                    };
                    let t = a
                        .pop()
                        .as_ref()
                        .and_then(value_to_time)
                        .ok_or(DecodeError::Shape("invalid event time"))?;
                    out.push((t, rec));
                }
                _ => return Err(DecodeError::Shape("entry is not [time, record]")),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_keeps_insertion_order_and_position_on_overwrite() {
        let mut r = Record::new();
        r.insert("a", Value::Int(1));
        r.insert("b", Value::Int(2));
        r.insert("a", Value::Int(3));
        let keys: Vec<_> = r.keys().map(|k| k.to_vec()).collect();
        assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(r.get("a"), Some(&Value::Int(3)));
    }

    #[test]
    fn event_time_ext_roundtrip() {
        let t = EventTime::new(1_700_000_000, 123_456_789);
        let mut buf = Vec::new();
        msgpack::write_time(&mut buf, t);
        assert_eq!(&buf[..2], &[0xd7, 0x00]);
        let v = msgpack::Decoder::new(&buf).read_value().unwrap();
        assert_eq!(msgpack::value_to_time(&v), Some(t));
    }

    #[test]
    fn entries_roundtrip_with_invalid_utf8() {
        let mut r = Record::new();
        r.insert("m", Value::Str(vec![b'x', 0xff, b'y']));
        r.insert(
            "n",
            Value::Array(vec![Value::Nil, Value::Float(1.5), Value::Int(-7)]),
        );
        let t = EventTime::new(5, 6);
        let mut buf = Vec::new();
        msgpack::write_entry(&mut buf, t, &r);
        msgpack::write_entry(&mut buf, t, &r);
        let got = msgpack::read_entries(&buf).unwrap();
        assert_eq!(got, vec![(t, r.clone()), (t, r)]);
    }

    #[test]
    fn msgpack_reader_rejects_truncated_and_hostile_input() {
        assert!(msgpack::Decoder::new(&[0xdd, 0xff, 0xff, 0xff, 0xff])
            .read_value()
            .is_err());
        assert!(msgpack::read_entries(&[0x92, 0xd7]).is_err());
        let deep = vec![0x91u8; 10_000];
        assert!(msgpack::Decoder::new(&deep).read_value().is_err());
    }

    #[test]
    fn from_f64_keeps_sub_seconds() {
        let t = EventTime::from_f64(1700000000.25);
        assert_eq!(t, EventTime::new(1700000000, 250_000_000));
    }
}
