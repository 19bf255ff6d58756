//! Differential test of the embedded Ruby evaluator: expressions over generated records, with
//! the results Ruby 3.1 gave for them (recorded by scripts/gen-ruby-differential.rb; Ruby is
//! not needed to run this test).

use ferrentd::event::Value;
use ferrentd::ruby::value::inspect;
use ferrentd::ruby::{Budget, Host, Program, V};

#[test]
fn evaluator_matches_recorded_ruby_results() {
    std::env::set_var("TZ", "UTC");
    let data = include_str!("data/ruby_differential.jsonl");
    let host = Host {
        hostname: "h".into(),
        worker_id: "0".into(),
        config: false,
    };
    let mut failures = Vec::new();
    let mut total = 0;
    for line in data.lines().filter(|l| !l.trim().is_empty()) {
        total += 1;
        let case: serde_json::Value = serde_json::from_str(line).expect("valid JSON line");
        let expr = case["expr"].as_str().unwrap_or_default();
        let want = case["out"].as_str().unwrap_or_default();
        let record = match ferrentd::util::value_from_json(case["record"].clone()) {
            Value::Map(m) => m,
            _ => panic!("record is not an object: {line}"),
        };
        let got = match Program::compile(expr, &["record"]) {
            Err(e) => format!("compile error: {}", e.message),
            Ok(p) => match p.run(&host, [V::Rec(&record)], Budget::EVENT) {
                Ok(v) => String::from_utf8_lossy(&inspect(&v)).into_owned(),
                Err(e) if e.aborted => format!("!abort {}", e.message),
                Err(e) => format!("!{}", e.class),
            },
        };
        if got != want {
            failures.push(format!(
                "{expr}\n  record: {}\n  ruby:   {want}\n  ours:   {got}",
                case["record"]
            ));
        }
    }
    assert!(total >= 300, "only {total} cases");
    assert!(
        failures.is_empty(),
        "{} of {total} differ from Ruby:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
