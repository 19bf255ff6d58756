//! Every parser on random bytes and on mutated valid lines: no panic, and each input yields
//! events or a `ParserError`. `PROPTEST_CASES` raises the count per property for long runs.

use std::path::Path;

use ferrentd::config_parser::{parse_str, ParseOptions};
use ferrentd::plugins::{new_parser, Parser, PluginContext};
use proptest::prelude::*;

/// (`<parse>` body, valid sample lines).
const PARSERS: &[(&str, &[&[u8]])] = &[
    (
        "@type json",
        &[
            br#"{"time":"2024-05-01T00:00:00.001720203Z","stream":"stdout","n":-1.5e3,"a":[1,{"b":null}],"u":"\u00e9\ud83d\ude00"}"#,
            br#"[{"a":1},{"b":"x"}]"#,
        ],
    ),
    (
        "@type json\n time_key time\n time_type string\n time_format %Y-%m-%dT%H:%M:%S.%N%z\n types n:integer,a:array,f:float,b:bool",
        &[br#"{"time":"2024-05-01T00:00:00.001720203Z","n":"12","f":"1.5","b":"yes","a":"x,y"}"#],
    ),
    (
        "@type json\n time_type mixed\n time_format %s\n time_format_fallbacks %iso8601\n null_value_pattern /^-$/\n null_empty_string true",
        &[br#"{"time":"1714521600","v":"-","e":""}"#],
    ),
    (
        "@type logfmt\n time_key time\n time_type string\n time_format %Y-%m-%dT%H:%M:%S.%N%z",
        &[br#"time="2020-02-21T10:31:27.000904595Z" level=debug msg="converting \"x\"" pid=48421 ratio=0.5 big=123456789012345678901234 flag"#],
    ),
    (
        "@type regexp\n expression /^(?<host>[^ ]*) [^ ]* (?<user>[^ ]*) \\[(?<time>[^\\]]*)\\] \"(?<method>\\S+)(?: +(?<path>[^ ]*) +\\S*)?\" (?<code>[^ ]*) (?<size>[^ ]*)(?: \"(?<referer>[^\\\"]*)\" \"(?<agent>[^\\\"]*)\")?$/\n time_format %d/%b/%Y:%H:%M:%S %z\n types code:integer,size:integer",
        &[br#"76.216.17.74 - - [01/May/2024:00:00:00 +0000] "GET /images/logo.png HTTP/1.1" 200 58667 "http://localhost:8080/admin" "Mozilla/5.0""#],
    ),
    (
        "@type ltsv\n types n:integer",
        &[b"time:2024-05-01T00:00:00Z\thost:a\tn:12\tmsg:hello world"],
    ),
    (
        "@type csv\n keys a,b,c,time\n time_key time",
        &[br#"1,"x,""y""",3,2024-05-01 00:00:00 +0000"#],
    ),
    ("@type csv\n keys a,b\n parser_engine fast", &[b"1,2", b"\"q\",x"]),
    ("@type tsv\n keys a,b,c", &[b"1\t2\t3"]),
    (
        "@type syslog",
        &[b"Feb 28 12:00:00 host app[123]: message text", b"Feb  1 02:03:04 host app: m"],
    ),
    (
        "@type syslog\n with_priority true\n message_format rfc5424",
        &[br#"<165>1 2024-05-01T00:00:00.123Z host app 1234 ID47 [exampleSDID@32473 iut="3" eventSource="App"] message"#],
    ),
    (
        "@type syslog\n with_priority true\n message_format auto\n parser_engine string",
        &[
            b"<165>1 2024-05-01T00:00:00Z host app - - - msg",
            b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed",
        ],
    ),
    (
        "@type apache2",
        &[br#"192.168.0.1 - - [28/Feb/2013:12:00:00 +0900] "GET / HTTP/1.1" 200 777 "-" "Opera/12.0""#],
    ),
    (
        "@type apache_error",
        &[b"[Wed Oct 11 14:32:52 2000] [error] [client 127.0.0.1] client denied by server configuration"],
    ),
    (
        "@type nginx",
        &[br#"127.0.0.1 192.168.0.1 - [28/Feb/2013:12:00:00 +0900] "GET / HTTP/1.1" 200 777 "-" "Opera/12.0" -"#],
    ),
    (
        "@type multiline\n format_firstline /^Started/\n format1 /^Started (?<method>\\w+) \"(?<path>[^\"]+)\"\\n/\n format2 /Completed (?<code>\\d+)/",
        &[b"Started GET \"/\"\nCompleted 200"],
    ),
    (
        "@type msgpack",
        &[b"\x82\xa1a\x01\xa1b\x92\xc3\xc0", b"\x81\xa4time\xce\x66\x31\x85\x80\x81\xa1x\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00"],
    ),
    ("@type none", &[b"anything at all"]),
    ("@type none\n message_key log", &[b""]),
];

fn parsers() -> Vec<Box<dyn Parser>> {
    PARSERS
        .iter()
        .map(|(body, _)| {
            let text = format!("<parse>\n {body}\n</parse>\n");
            let root = parse_str(&text, Path::new("fuzz.conf"), &ParseOptions::default())
                .unwrap_or_else(|e| panic!("{body}: {e}"));
            new_parser(&root.elements[0], &PluginContext::for_tests())
                .unwrap_or_else(|e| panic!("{body}: {e}"))
        })
        .collect()
}

/// Parses `input`; panics (failing the property) unless it gave events or an error.
fn check(p: &dyn Parser, body: &str, input: &[u8]) {
    let mut events = 0usize;
    let res = p.parse(input, &mut |_, _| events += 1);
    // An empty JSON array, or empty msgpack arrays, are a well-formed input with no records.
    let may_be_empty = (body.starts_with("@type json") && is_empty_json_array(input))
        || (body.starts_with("@type msgpack") && input.iter().all(|b| *b == 0x90));
    assert!(
        res.is_err() || events > 0 || may_be_empty,
        "{body}: {:?} gave neither events nor an error",
        String::from_utf8_lossy(input)
    );
}

fn is_empty_json_array(input: &[u8]) -> bool {
    let t: Vec<u8> = input
        .iter()
        .copied()
        .filter(|b| !b" \t\r\n".contains(b))
        .collect();
    t == b"[]"
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, Vec<u8>),
    Replace(usize, u8),
    Duplicate(usize, usize),
    Truncate(usize),
    Splice(usize, &'static str),
}

/// Fragments that tend to reach parser edge cases.
const SPLICES: &[&str] = &[
    "\"",
    "\\",
    "\\u",
    "\\ud800",
    "=",
    " ",
    "\t",
    ",",
    ":",
    "[",
    "]",
    "{",
    "}",
    "\n",
    "\r\n",
    "\u{0}",
    "\u{feff}",
    "é",
    "😀",
    "\u{ffff}",
    "-",
    "+",
    "e",
    ".",
    "1e999",
    "99999999999999999999",
    "-0",
    "null",
    "true",
    "<",
    ">",
    "[-]",
    "- -",
    "\"\"",
    "\\\"",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0usize..16).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(a, b)| Mutation::Insert(a, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Mutation::Replace(a, b)),
        (any::<usize>(), 1usize..32).prop_map(|(a, n)| Mutation::Duplicate(a, n)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), proptest::sample::select(SPLICES))
            .prop_map(|(a, s)| Mutation::Splice(a, s)),
    ]
}

fn apply(mut v: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let at = |a: usize, len: usize| if len == 0 { 0 } else { a % (len + 1) };
        match m {
            Mutation::Delete(a, n) => {
                let s = at(*a, v.len()).min(v.len());
                let e = (s + n).min(v.len());
                v.drain(s..e);
            }
            Mutation::Insert(a, b) => {
                let s = at(*a, v.len());
                v.splice(s..s, b.iter().copied());
            }
            Mutation::Replace(a, b) => {
                if !v.is_empty() {
                    let i = a % v.len();
                    v[i] = *b;
                }
            }
            Mutation::Duplicate(a, n) => {
                let s = at(*a, v.len()).min(v.len());
                let e = (s + n).min(v.len());
                let piece = v[s..e].to_vec();
                v.splice(e..e, piece);
            }
            Mutation::Truncate(a) => {
                let s = at(*a, v.len());
                v.truncate(s);
            }
            Mutation::Splice(a, s) => {
                let i = at(*a, v.len());
                v.splice(i..i, s.bytes());
            }
        }
    }
    v
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

#[test]
fn valid_samples_parse() {
    for ((body, samples), p) in PARSERS.iter().zip(parsers()) {
        for s in *samples {
            let mut events = 0;
            let res = p.parse(s, &mut |_, _| events += 1);
            assert!(
                res.is_ok() && events > 0,
                "{body}: {:?} → {res:?}",
                String::from_utf8_lossy(s)
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn random_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..400)) {
        thread_local!(static PS: Vec<Box<dyn Parser>> = parsers());
        PS.with(|ps| {
            for ((body, _), p) in PARSERS.iter().zip(ps) {
                check(&**p, body, &input);
            }
        });
    }

    #[test]
    fn mutated_valid_lines_never_panic(
        which in any::<usize>(),
        muts in proptest::collection::vec(mutation(), 1..8),
    ) {
        thread_local!(static PS: Vec<Box<dyn Parser>> = parsers());
        PS.with(|ps| {
            for ((body, samples), p) in PARSERS.iter().zip(ps) {
                let sample = samples[which % samples.len()];
                let input = apply(sample.to_vec(), &muts);
                check(&**p, body, &input);
            }
        });
    }

    #[test]
    fn structured_text_never_panics(parts in proptest::collection::vec(
        prop_oneof![
            proptest::sample::select(SPLICES).prop_map(|s| s.to_string()),
            "[a-z]{1,6}",
            "[0-9]{1,25}",
            Just("time".to_string()),
            Just("2024-05-01T00:00:00.1Z".to_string()),
            Just("01/May/2024:00:00:00 +0000".to_string()),
            Just("Feb 28 12:00:00".to_string()),
            Just("<13>1 ".to_string()),
        ],
        0..40,
    )) {
        let input = parts.concat().into_bytes();
        thread_local!(static PS: Vec<Box<dyn Parser>> = parsers());
        PS.with(|ps| {
            for ((body, _), p) in PARSERS.iter().zip(ps) {
                check(&**p, body, &input);
            }
        });
    }
}
