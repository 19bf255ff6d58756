//! Property tests of the network inputs' framing and request parsing: syslog/tcp message
//! framing (delimiter and octet count) gives the same messages across any split of the stream
//! and never panics or outgrows its bound on garbage; HTTP heads and chunked bodies parse the
//! same from any prefix and never panic on arbitrary bytes.
//! Longer runs: `PROPTEST_CASES=100000 cargo test --release --test net_fuzz`.

use ferrentd::plugins::in_http::{decode_chunked, parse_head, parse_query, ruby_to_f, ChunkError};
use ferrentd::server::framing::{ruby_integer, Delimited, OctetCounted};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// Cuts `data` at the given points (taken modulo its length, sorted).
fn pieces(data: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|c| {
            if data.is_empty() {
                0
            } else {
                c % (data.len() + 1)
            }
        })
        .collect();
    at.sort_unstable();
    let mut out = Vec::new();
    let mut prev = 0;
    for a in at {
        out.push(data[prev..a].to_vec());
        prev = a;
    }
    out.push(data[prev..].to_vec());
    out
}

fn delimited(delim: &[u8], limit: Option<usize>, chunks: &[Vec<u8>]) -> (Vec<Vec<u8>>, Delimited) {
    let mut d = Delimited::new(delim, limit);
    let mut out = Vec::new();
    for c in chunks {
        d.feed(c, &mut |m| out.push(m.to_vec()));
    }
    (out, d)
}

fn octets(cap: Option<usize>, chunks: &[Vec<u8>]) -> (Vec<Vec<u8>>, Result<(), String>, usize) {
    let mut o = OctetCounted::new(cap);
    let mut out = Vec::new();
    for c in chunks {
        if let Err(e) = o.feed(c, &mut |m| out.push(m.to_vec())) {
            return (out, Err(e), o.pending());
        }
    }
    let p = o.pending();
    (out, Ok(()), p)
}

fn request() -> impl Strategy<Value = (String, String, Vec<(String, String)>, Vec<u8>)> {
    (
        prop_oneof![Just("POST"), Just("GET"), Just("PUT"), Just("OPTIONS")],
        "/[a-z0-9./_-]{0,20}(\\?[a-z0-9=&%+]{0,20})?",
        proptest::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,12}", "[ -~]{0,30}"), 0..8),
        proptest::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(|(m, p, h, b)| {
            let h = h
                .into_iter()
                .filter(|(k, _)| {
                    !k.eq_ignore_ascii_case("content-length")
                        && !k.eq_ignore_ascii_case("transfer-encoding")
                })
                .map(|(k, v)| (k, v.trim().to_string()))
                .collect();
            (m.to_string(), p, h, b)
        })
}

fn chunked(body: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    let mut i = 0;
    while !rest.is_empty() {
        let n = (sizes.get(i).copied().unwrap_or(7) % 50 + 1).min(rest.len());
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
        i += 1;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn delimited_messages_survive_any_split(
        msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>().prop_filter("no CR", |b| *b != b'\r'), 0..60), 0..12),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut stream = Vec::new();
        for m in &msgs {
            stream.extend_from_slice(m);
            stream.extend_from_slice(b"\r\n");
        }
        let (out, d) = delimited(b"\r\n", None, &pieces(&stream, &cuts));
        prop_assert_eq!(out, msgs);
        prop_assert_eq!(d.pending(), 0);
    }

    #[test]
    fn delimited_limit_bounds_what_is_kept(
        data in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'a'), any::<u8>()], 0..3000),
        delim in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), any::<u8>()], 1..4),
        limit in 1usize..200,
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let chunks = pieces(&data, &cuts);
        let (out, d) = delimited(&delim, Some(limit), &chunks);
        for m in &out {
            prop_assert!(m.len() <= limit);
        }
        prop_assert!(d.pending() <= limit);
    }

    #[test]
    fn octet_frames_survive_any_split(
        msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..10),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut stream = Vec::new();
        for m in &msgs {
            stream.extend_from_slice(format!("{} ", m.len()).as_bytes());
            stream.extend_from_slice(m);
        }
        let (out, res, pending) = octets(None, &pieces(&stream, &cuts));
        prop_assert!(res.is_ok());
        prop_assert_eq!(out, msgs);
        prop_assert_eq!(pending, 0);
    }

    #[test]
    fn octet_garbage_is_bounded(
        data in proptest::collection::vec(prop_oneof![Just(b' '), Just(b'9'), Just(b'0'), any::<u8>()], 0..2000),
        cap in 1usize..500,
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let (out, res, pending) = octets(Some(cap), &pieces(&data, &cuts));
        for m in &out {
            prop_assert!(m.len() <= cap);
        }
        // While the stream is accepted, an unfinished frame is its length field and at most
        // `cap` bytes.
        if res.is_ok() {
            prop_assert!(pending <= cap + 34, "pending {}", pending);
        }
    }

    #[test]
    fn ruby_integer_never_panics(s in proptest::collection::vec(any::<u8>(), 0..30)) {
        let _ = ruby_integer(&s);
    }

    #[test]
    fn http_heads_parse_the_same_from_any_prefix((method, path, headers, body) in request()) {
        let mut req = format!("{method} {path} HTTP/1.1\r\n");
        for (k, v) in &headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let head_len = req.len();
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(&body);
        let (head, used) = parse_head(&bytes).unwrap().unwrap();
        prop_assert_eq!(used, head_len);
        prop_assert_eq!(&head.method, &method);
        prop_assert_eq!(head.target.clone(), path.into_bytes());
        prop_assert_eq!(head.content_length, Some(body.len()));
        for n in 0..head_len {
            prop_assert!(parse_head(&bytes[..n]).unwrap().is_none());
        }
    }

    #[test]
    fn http_heads_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(Some((_, used))) = parse_head(&data) {
            prop_assert!(used <= data.len());
        }
        let mut req = b"POST / HTTP/1.1\r\n".to_vec();
        req.extend_from_slice(&data);
        let _ = parse_head(&req);
        let _ = parse_query(&data);
        let _ = ruby_to_f(&data);
    }

    #[test]
    fn chunked_bodies_round_trip(
        body in proptest::collection::vec(any::<u8>(), 0..300),
        sizes in proptest::collection::vec(any::<usize>(), 0..20),
        trailer in proptest::option::of("[A-Za-z]{1,8}: [a-z]{0,8}"),
    ) {
        let mut enc = chunked(&body, &sizes);
        if let Some(t) = trailer {
            enc.truncate(enc.len() - 2);
            enc.extend_from_slice(t.as_bytes());
            enc.extend_from_slice(b"\r\n\r\n");
        }
        let (got, used) = decode_chunked(&enc, 1 << 20).unwrap().unwrap();
        prop_assert_eq!(got, body.clone());
        prop_assert_eq!(used, enc.len());
        for n in 0..enc.len() {
            prop_assert_eq!(decode_chunked(&enc[..n], 1 << 20), Ok(None));
        }
        if !body.is_empty() {
            prop_assert_eq!(decode_chunked(&enc, body.len() - 1), Err(ChunkError::TooLarge));
        }
    }

    #[test]
    fn chunked_garbage_never_panics(
        data in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'0'), Just(b'f'), any::<u8>()], 0..500),
        limit in 0usize..1000,
    ) {
        if let Ok(Some((body, used))) = decode_chunked(&data, limit) {
            prop_assert!(body.len() <= limit && used <= data.len());
        }
    }
}
