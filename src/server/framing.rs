//! Cutting a byte stream into messages: by a delimiter (in_tcp, in_syslog's `traditional`
//! frames) or by an octet count (`LEN MSG`, in_syslog's `octet_count`), with a bound on what one
//! connection may hold.

/// What one stream connection may buffer when the plugin sets no `message_length_limit`
/// (Fluentd has none): a sender without delimiters cannot grow memory past it.
pub const STREAM_CAP: usize = 8 << 20;

/// A message cut at a delimiter. Messages longer than the limit are dropped with Fluentd's
/// info log, and a buffer that outgrows it is cleared along with the rest of its message.
pub struct Delimited {
    delim: Vec<u8>,
    /// `message_length_limit` as written: drops each longer message.
    limit: Option<usize>,
    cap: usize,
    buf: Vec<u8>,
    /// How far `buf` was searched without finding a delimiter.
    searched: usize,
    discard: bool,
}

fn head(m: &[u8]) -> String {
    String::from_utf8_lossy(&m[..m.len().min(32)]).into_owned()
}

impl Delimited {
    pub fn new(delim: &[u8], limit: Option<usize>) -> Self {
        let delim = if delim.is_empty() {
            b"\n".to_vec()
        } else {
            delim.to_vec()
        };
        Delimited {
            delim,
            limit,
            cap: limit.unwrap_or(STREAM_CAP),
            buf: Vec::new(),
            searched: 0,
            discard: false,
        }
    }

    /// Bytes held for an unfinished message.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    fn find(&self, hay: &[u8], from: usize) -> Option<usize> {
        let rest = hay.get(from..)?;
        let at = if self.delim.len() == 1 {
            memchr::memchr(self.delim[0], rest)
        } else {
            memchr::memmem::find(rest, &self.delim)
        };
        at.map(|i| from + i)
    }

    /// Splits `hay` from the start; returns how much of it was consumed.
    fn scan(&mut self, hay: &[u8], start: usize, out: &mut dyn FnMut(&[u8])) -> usize {
        let mut pos = 0;
        let mut from = start;
        while let Some(i) = self.find(hay, from) {
            let msg = &hay[pos..i];
            pos = i + self.delim.len();
            from = pos;
            if self.discard {
                self.discard = false;
                continue;
            }
            if let Some(l) = self.limit {
                if msg.len() > l {
                    tracing::info!(
                        "The received data is larger than 'message_length_limit', dropped: limit={l} size={} head={:?}",
                        msg.len(),
                        head(msg)
                    );
                    continue;
                }
            }
            out(msg);
        }
        pos
    }

    /// Feeds received bytes; each complete message goes to `out`.
    pub fn feed(&mut self, data: &[u8], out: &mut dyn FnMut(&[u8])) {
        if self.buf.is_empty() {
            let used = self.scan(data, 0, out);
            self.buf.extend_from_slice(&data[used..]);
            self.searched = self.buf.len();
        } else {
            let start = self.searched.saturating_sub(self.delim.len() - 1);
            self.buf.extend_from_slice(data);
            let buf = std::mem::take(&mut self.buf);
            let used = self.scan(&buf, start, out);
            self.buf = buf;
            self.buf.drain(..used);
            self.searched = self.buf.len();
        }
        if self.buf.len() > self.cap {
            tracing::info!(
                "The buffer size exceeds 'message_length_limit', cleared: limit={} size={} head={:?}",
                self.cap,
                self.buf.len(),
                head(&self.buf)
            );
            self.buf = Vec::new();
            self.searched = 0;
            self.discard = true;
        }
    }
}

/// `LEN MSG` frames (RFC 6587 octet counting).
pub struct OctetCounted {
    cap: usize,
    buf: Vec<u8>,
}

/// Ruby's `Integer(str)`: surrounding whitespace, a sign, a radix prefix (`0x`, `0b`, `0o`, a
/// bare leading `0` for octal) and `_` between digits.
pub fn ruby_integer(s: &[u8]) -> Option<i64> {
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let start = s.iter().position(|b| !ws(b))?;
    let end = s.iter().rposition(|b| !ws(b))? + 1;
    let mut t = &s[start..end];
    let neg = match t.first() {
        Some(b'-') => {
            t = &t[1..];
            true
        }
        Some(b'+') => {
            t = &t[1..];
            false
        }
        _ => false,
    };
    let (radix, digits) = match t {
        [b'0', b'x' | b'X', rest @ ..] => (16, rest),
        [b'0', b'b' | b'B', rest @ ..] => (2, rest),
        [b'0', b'o' | b'O', rest @ ..] => (8, rest),
        [b'0', b'd' | b'D', rest @ ..] => (10, rest),
        [b'0', rest @ ..] if !rest.is_empty() => (8, rest),
        _ => (10, t),
    };
    if digits.is_empty() || digits.first() == Some(&b'_') || digits.last() == Some(&b'_') {
        return None;
    }
    let mut v: i64 = 0;
    let mut prev_us = false;
    for &b in digits {
        if b == b'_' {
            if prev_us {
                return None;
            }
            prev_us = true;
            continue;
        }
        prev_us = false;
        let d = (b as char).to_digit(radix)? as i64;
        v = v.checked_mul(radix as i64)?.checked_add(d)?;
    }
    Some(if neg { -v } else { v })
}

impl OctetCounted {
    pub fn new(cap: Option<usize>) -> Self {
        OctetCounted {
            cap: cap.unwrap_or(STREAM_CAP),
            buf: Vec::new(),
        }
    }

    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Feeds received bytes; each complete frame's message goes to `out`. An error (a length
    /// that is not a number, or one past the cap) means the connection is to be closed.
    pub fn feed(&mut self, data: &[u8], out: &mut dyn FnMut(&[u8])) -> Result<(), String> {
        self.buf.extend_from_slice(data);
        let mut pos = 0;
        let res = loop {
            let Some(sp) = memchr::memchr(b' ', &self.buf[pos..]).map(|i| pos + i) else {
                if self.buf.len() - pos > 32 {
                    break Err("invalid octet count: no length".to_string());
                }
                break Ok(());
            };
            let num = match ruby_integer(&self.buf[pos..=sp]) {
                Some(n) if n >= 0 && (n as u64) <= self.cap as u64 => n as usize,
                Some(n) if n >= 0 => break Err(format!("octet count {n} exceeds {}", self.cap)),
                _ => {
                    break Err(format!(
                        "invalid octet count {:?}",
                        String::from_utf8_lossy(&self.buf[pos..sp.min(pos + 32)])
                    ))
                }
            };
            let end = sp + 1 + num;
            if end > self.buf.len() {
                break Ok(());
            }
            out(&self.buf[sp + 1..end]);
            pos = end;
        };
        self.buf.drain(..pos);
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(d: &mut Delimited, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        for c in chunks {
            d.feed(c, &mut |m| v.push(m.to_vec()));
        }
        v
    }

    #[test]
    fn delimiter_across_reads() {
        let mut d = Delimited::new(b"\r\n", None);
        let v = split(&mut d, &[b"a\r", b"\nb\nc\r\n", b"tail"]);
        assert_eq!(v, vec![b"a".to_vec(), b"b\nc".to_vec()]);
        assert_eq!(d.pending(), 4);
    }

    #[test]
    fn limit_drops_and_clears() {
        let mut d = Delimited::new(b"\n", Some(4));
        let v = split(&mut d, &[b"12345\nok\n", b"123456789", b"more\nnext\n"]);
        // The oversized message is dropped; the cleared one is discarded up to its delimiter.
        assert_eq!(v, vec![b"ok".to_vec(), b"next".to_vec()]);
    }

    #[test]
    fn octet_frames() {
        let mut o = OctetCounted::new(None);
        let mut v = Vec::new();
        o.feed(b"3 abc5 a\nb c2", &mut |m| v.push(m.to_vec()))
            .unwrap();
        o.feed(b" xy", &mut |m| v.push(m.to_vec())).unwrap();
        assert_eq!(v, vec![b"abc".to_vec(), b"a\nb c".to_vec(), b"xy".to_vec()]);
        assert!(o.feed(b"zz x", &mut |_| {}).is_err());
        let mut o = OctetCounted::new(Some(10));
        assert!(o.feed(b"11 ", &mut |_| {}).is_err());
    }

    #[test]
    fn ruby_integers() {
        assert_eq!(ruby_integer(b"34 "), Some(34));
        assert_eq!(ruby_integer(b"\n34 "), Some(34));
        assert_eq!(ruby_integer(b"010"), Some(8));
        assert_eq!(ruby_integer(b"1_000"), Some(1000));
        assert_eq!(ruby_integer(b"-3"), Some(-3));
        assert_eq!(ruby_integer(b"3a"), None);
        assert_eq!(ruby_integer(b""), None);
        assert_eq!(ruby_integer(b"99999999999999999999"), None);
    }
}
