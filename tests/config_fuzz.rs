//! The config parser and the engine never panic, whatever the input: random text built from the
//! config language's own tokens, and random bytes. `PROPTEST_CASES` raises the count for long runs.

use std::path::Path;

use ferrentd::config_parser::{parse_str, ParseOptions};
use ferrentd::engine::{Engine, EngineOptions};
use proptest::prelude::*;

const TOKENS: &[&str] = &[
    "<source>", "</source>", "<match **>", "</match>", "<filter t>", "</filter>", "<label @L>",
    "</label>", "<parse>", "</parse>", "<", ">", "</", "@type", "@label", "@include", " ", "\t",
    "\n", "\r\n", "#", "#{", "}", "{", "[", "]", "\"", "'", "\\", "\\n", "\\q", ",", ":", "tail",
    "sample", "stdout", "null", "copy", "relabel", "path", "tag", "x", "1.5k", "true", "maybe",
    "ENV['HOME']", "use_nil", "{\"a\":1}", "[\"a\"]", "@ERROR", "<store>", "</store>", "é",
];

fn token_text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..60).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)
    ))]

    #[test]
    fn parser_and_engine_never_panic_on_token_soup(text in token_text()) {
        if let Ok(root) = parse_str(&text, Path::new("fuzz.conf"), &ParseOptions::default()) {
            let _ = Engine::build(&root, &EngineOptions::default());
        }
    }

    #[test]
    fn parser_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_str(&text, Path::new("fuzz.conf"), &ParseOptions::default());
    }
}
