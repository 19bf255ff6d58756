//! Property tests of the forward decoder: random bytes and mutated valid messages never panic,
//! the incremental scanner agrees with the decoder and with itself across any split, and valid
//! messages of every mode decode to exactly the events they carry.
//! Longer runs: `PROPTEST_CASES=100000 cargo test --release --test forward_fuzz`.

use ferrentd::event::{msgpack, EventStream, EventTime, Record, Value};
use ferrentd::forward::codec::{
    self, decode_message, scan_msgpack, DecodeOptions, ProtocolError, RawMessage, ScanState,
};
use proptest::prelude::*;

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::Float),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Str),
        "[a-z]{0,10}".prop_map(|s| Value::Str(s.into_bytes())),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec(("[a-z]{1,6}", inner), 0..6).prop_map(|kv| {
                let mut r = Record::new();
                for (k, v) in kv {
                    r.insert(k, v);
                }
                Value::Map(r)
            }),
        ]
    })
}

fn record() -> impl Strategy<Value = Record> {
    proptest::collection::vec(("[a-z]{1,8}", value()), 0..8).prop_map(|kv| {
        let mut r = Record::new();
        for (k, v) in kv {
            r.insert(k, v);
        }
        r
    })
}

fn events() -> impl Strategy<Value = Vec<(EventTime, Record)>> {
    proptest::collection::vec(
        ((1i64..4_000_000_000), (0u32..1_000_000_000), record())
            .prop_map(|(s, n, r)| (EventTime::new(s, n), r)),
        1..6,
    )
}

/// A message of `mode` (0 Message, 1 Forward, 2 PackedForward, 3 gzip, 4 zstd) with a chunk id.
fn encode(mode: u8, tag: &str, evs: &[(EventTime, Record)]) -> Vec<u8> {
    let mut opt = Record::new();
    opt.insert("chunk", Value::str("cid"));
    let time = |t: &EventTime| Value::Ext(0, t.to_ext_payload().to_vec());
    let mut out = Vec::new();
    match mode {
        0 => msgpack::write_value(
            &mut out,
            &Value::Array(vec![
                Value::str(tag),
                time(&evs[0].0),
                Value::Map(evs[0].1.clone()),
                Value::Map(opt),
            ]),
        ),
        1 => msgpack::write_value(
            &mut out,
            &Value::Array(vec![
                Value::str(tag),
                Value::Array(
                    evs.iter()
                        .map(|(t, r)| Value::Array(vec![time(t), Value::Map(r.clone())]))
                        .collect(),
                ),
                Value::Map(opt),
            ]),
        ),
        _ => {
            let mut packed = Vec::new();
            for (t, r) in evs {
                msgpack::write_entry(&mut packed, *t, r);
            }
            let payload = match mode {
                3 => {
                    use std::io::Write;
                    let mut e =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    e.write_all(&packed).unwrap();
                    opt.insert("compressed", Value::str("gzip"));
                    e.finish().unwrap()
                }
                4 => {
                    opt.insert("compressed", Value::str("zstd"));
                    zstd::encode_all(&packed[..], 1).unwrap()
                }
                _ => packed,
            };
            msgpack::write_value(
                &mut out,
                &Value::Array(vec![Value::str(tag), Value::Bin(payload), Value::Map(opt)]),
            );
        }
    }
    out
}

/// Everything in_forward does with a buffer, minus the socket.
fn run_pipeline(buf: &[u8]) {
    let mut st = ScanState::default();
    if let Ok(Some(len)) = scan_msgpack(buf, &mut st) {
        let d = codec::decode_value(&buf[..len]);
        assert_ne!(d, Err(ProtocolError::Eof), "scanner and decoder disagree");
        if let Ok(raw) = RawMessage::from_msgpack(&buf[..len]) {
            let opts = DecodeOptions {
                decompression_size_limit: 1 << 20,
                ..Default::default()
            };
            let _ = decode_message(raw, &opts, EventTime::new(1, 0));
        }
    }
    let _ = codec::scan_json(buf);
}

proptest! {
    #[test]
    fn random_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..512)) {
        run_pipeline(&buf);
        // Also as the tail of a message header.
        let mut m = vec![0x93, 0xa1, b't'];
        m.extend_from_slice(&buf);
        run_pipeline(&m);
        let mut m = vec![0x92, 0xa1, b't', 0xdc, 0x00, 0x03];
        m.extend_from_slice(&buf);
        run_pipeline(&m);
    }

    #[test]
    fn mutated_valid_messages_never_panic(
        mode in 0u8..5,
        evs in events(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let mut buf = encode(mode, "app.x", &evs);
        for (at, byte, kind) in edits {
            if buf.is_empty() {
                break;
            }
            let i = at.index(buf.len());
            match kind {
                0 => buf[i] = byte,
                1 => buf.insert(i, byte),
                _ => { buf.remove(i); }
            }
        }
        run_pipeline(&buf);
    }

    #[test]
    fn valid_messages_decode_exactly(mode in 0u8..5, evs in events()) {
        let buf = encode(mode, "app.x", &evs);
        let mut st = ScanState::default();
        prop_assert_eq!(scan_msgpack(&buf, &mut st).unwrap(), Some(buf.len()));
        let raw = RawMessage::from_msgpack(&buf).unwrap();
        let d = decode_message(raw, &DecodeOptions::default(), EventTime::new(1, 0)).unwrap();
        let expect: EventStream = if mode == 0 {
            EventStream::one(evs[0].0, evs[0].1.clone())
        } else {
            let mut es = EventStream::new();
            for (t, r) in &evs {
                es.push(*t, r.clone());
            }
            es
        };
        prop_assert_eq!(d.tag.as_deref(), Some("app.x"));
        prop_assert_eq!(d.events, expect);
        prop_assert!(codec::ack_for(&d.option).is_some());
    }

    #[test]
    fn scanning_in_pieces_matches_scanning_whole(
        evs in events(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let mut stream = encode(1, "a", &evs);
        let first = stream.len();
        stream.extend(encode(0, "b", &evs));
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len())).collect();
        points.push(stream.len());
        points.sort_unstable();
        let mut st = ScanState::default();
        let mut found = None;
        for p in points {
            if let Some(len) = scan_msgpack(&stream[..p], &mut st).unwrap() {
                found = Some(len);
                break;
            }
        }
        prop_assert_eq!(found, Some(first));
    }
}
