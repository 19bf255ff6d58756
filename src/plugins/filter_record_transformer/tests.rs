use chrono::{Local, TimeZone};

use super::*;
use crate::router::Emitter;
use crate::test_util::directive;

fn elem(conf: &str) -> Element {
    directive(&format!(
        "<filter **>\n  @type record_transformer\n{conf}\n</filter>\n"
    ))
}

fn ctx() -> PluginContext {
    let mut c = PluginContext::for_tests();
    c.hostname = "myhost".to_string();
    c
}

fn make(conf: &str) -> Box<dyn Filter> {
    match create(&elem(conf), &ctx()) {
        Ok(f) => f,
        Err(e) => panic!("{e}"),
    }
}

fn config_error(conf: &str) -> ConfigError {
    match create(&elem(conf), &ctx()) {
        Ok(_) => panic!("accepted"),
        Err(e) => e,
    }
}

fn record(json: &str) -> Record {
    match crate::util::value_from_json(serde_json::from_str(json).unwrap()) {
        Value::Map(m) => m,
        _ => panic!("not an object"),
    }
}

const INPUT: &str = r#"{"name": "alice", "n": 5, "nested": {"x": 1}, "drop": "me"}"#;

fn run_at(f: &dyn Filter, tag: &str, time: EventTime, input: &str) -> Vec<(EventTime, String)> {
    f.filter_stream(tag, EventStream::one(time, record(input)))
        .into_iter()
        .map(|e| (e.time, record_to_json(&e.record)))
        .collect()
}

fn run(conf: &str, input: &str) -> String {
    let f = make(conf);
    let out = run_at(&*f, "app.web.prod", EventTime::new(1_700_000_000, 0), input);
    assert_eq!(out.len(), 1);
    out[0].1.clone()
}

#[test]
fn case_104_tag_placeholders() {
    let got = run(
        "<record>\n t \"${tag}\"\n p0 \"${tag_parts[0]}\"\n p2 \"${tag_parts[2]}\"\n pm1 \"${tag_parts[-1]}\"\n pre1 \"${tag_prefix[1]}\"\n suf1 \"${tag_suffix[1]}\"\n</record>",
        INPUT,
    );
    assert_eq!(
        got,
        r#"{"name":"alice","n":5,"nested":{"x":1},"drop":"me","t":"app.web.prod","p0":"app","p2":"prod","pm1":"prod","pre1":"app.web","suf1":"web.prod"}"#
    );
}

#[test]
fn case_105_record_placeholder() {
    let got = run(
        "<record>\n greeting 'hi ${record[\"name\"]}!' \n same_n ${record[\"n\"]}\n nested_x ${record[\"nested\"][\"x\"]}\n missing ${record[\"nope\"]}\n missing_in 'a${record[\"nope\"]}b'\n sq_key \"x${record['name']}x\"\n</record>",
        INPUT,
    );
    assert_eq!(
        got,
        r#"{"name":"alice","n":5,"nested":{"x":1},"drop":"me","greeting":"hi alice!","same_n":5,"nested_x":null,"missing":null,"missing_in":"ab","sq_key":"xx"}"#
    );
}

#[test]
fn case_106_time_placeholder_is_ruby_time_to_s() {
    // The conformance runs use TZ=UTC; the formatting is checked with a fixed offset too.
    let f = make("<record>\n when \"${time}\"\n</record>");
    let out = run_at(&*f, "t", EventTime::new(1_700_000_000, 5), r#"{"a": 1}"#);
    let expected = Local
        .timestamp_opt(1_700_000_000, 0)
        .single()
        .map(|d| d.format("%Y-%m-%d %H:%M:%S %z").to_string())
        .unwrap();
    assert_eq!(out[0].1, format!(r#"{{"a":1,"when":"{expected}"}}"#));
    let utc = chrono::FixedOffset::east_opt(0)
        .and_then(|z| z.timestamp_opt(1_700_000_000, 0).single())
        .map(|d| d.format("%Y-%m-%d %H:%M:%S %z").to_string());
    assert_eq!(utc.as_deref(), Some("2023-11-14 22:13:20 +0000"));
}

#[test]
fn case_107_hostname_placeholder() {
    let got = run("<record>\n h \"${hostname}\"\n</record>", INPUT);
    assert_eq!(
        got,
        r#"{"name":"alice","n":5,"nested":{"x":1},"drop":"me","h":"myhost"}"#
    );
}

#[test]
fn case_108_remove_keys() {
    let got = run(
        "remove_keys drop,nope\n<record>\n added 1\n</record>",
        INPUT,
    );
    assert_eq!(
        got,
        r#"{"name":"alice","n":5,"nested":{"x":1},"added":"1"}"#
    );
}

#[test]
fn remove_keys_accepts_record_accessor_paths() {
    let got = run("remove_keys $.nested.x", INPUT);
    assert_eq!(got, r#"{"name":"alice","n":5,"nested":{},"drop":"me"}"#);
}

#[test]
fn case_109_renew_record_with_keep_keys() {
    let got = run(
        "renew_record true\nkeep_keys name,n\n<record>\n added 1\n</record>",
        INPUT,
    );
    assert_eq!(got, r#"{"name":"alice","n":5,"added":"1"}"#);
}

#[test]
fn case_110_renew_record() {
    let got = run(
        "renew_record true\n<record>\n only '${record[\"name\"]}'\n</record>",
        INPUT,
    );
    assert_eq!(got, r#"{"only":"alice"}"#);
}

#[test]
fn case_111_auto_typecast() {
    let got = run(
        "auto_typecast true\n<record>\n n ${record[\"n\"]}\n h ${record[\"nested\"]}\n lit 42\n lit_true true\n</record>",
        INPUT,
    );
    assert_eq!(
        got,
        r#"{"name":"alice","n":5,"nested":{"x":1},"drop":"me","h":{"x":1},"lit":"42","lit_true":"true"}"#
    );
}

#[test]
fn auto_typecast_false_stringifies() {
    let got = run(
        "auto_typecast false\nrenew_record true\n<record>\n n ${record[\"n\"]}\n m ${record[\"nope\"]}\n</record>",
        INPUT,
    );
    assert_eq!(got, r#"{"n":"5","m":""}"#);
}

#[test]
fn case_112_overwrite_keeps_position() {
    let got = run("<record>\n zz new\n name bob\n</record>", INPUT);
    assert_eq!(
        got,
        r#"{"name":"bob","n":5,"nested":{"x":1},"drop":"me","zz":"new"}"#
    );
}

#[test]
fn case_113_placeholder_in_key() {
    let got = run("<record>\n ${tag_parts[1]}_key \"v\"\n</record>", INPUT);
    assert_eq!(
        got,
        r#"{"name":"alice","n":5,"nested":{"x":1},"drop":"me","web_key":"v"}"#
    );
}

#[test]
fn case_114_json_looking_values() {
    let got = run(
        "<record>\n arr [1, \"x\"]\n obj {\"a\": \"${tag}\", \"n\": [1]}\n</record>",
        INPUT,
    );
    assert_eq!(
        got,
        r#"{"name":"alice","n":5,"nested":{"x":1},"drop":"me","arr":[1,"x"],"obj":{"a":"app.web.prod","n":[1]}}"#
    );
}

#[test]
fn broken_json_stays_a_string_and_values_read_the_original_record() {
    let got = run(
        "renew_record true\n<record>\n name x\n b ${record[\"name\"]}\n c \"[1,\"\n</record>",
        INPUT,
    );
    assert_eq!(got, r#"{"name":"x","b":"alice","c":"[1,"}"#);
}

#[test]
fn several_record_sections_merge_and_unknowns_are_empty() {
    let got = run(
        "renew_record true\n<record>\n a 1\n b x__FOO__y${nope}z\n</record>\n<record>\n a 2\n c ${tag_parts[7]}\n d ${tag_prefix[-1]}\n</record>",
        INPUT,
    );
    assert_eq!(got, r#"{"a":"2","b":"xyz","c":null,"d":"app.web.prod"}"#);
}

#[test]
fn renew_time_key_sets_the_event_time_from_the_new_record() {
    let f = make("renew_time_key t\n<record>\n t 1700000000.123\n</record>");
    let out = run_at(&*f, "t", EventTime::new(5, 0), r#"{"a": 1}"#);
    // Ruby truncates the float's exact value: 1700000000.1229999065...
    assert_eq!(out[0].0, EventTime::new(1_700_000_000, 122_999_906));
    let f = make("renew_time_key a");
    let out = run_at(&*f, "t", EventTime::new(5, 0), r#"{"a": 12}"#);
    assert_eq!(out[0].0, EventTime::new(12, 0));
    let out = run_at(&*f, "t", EventTime::new(5, 0), r#"{"b": 12}"#);
    assert_eq!(out[0].0, EventTime::new(5, 0));
}

#[test]
fn renew_time_key_failure_is_an_error_event() {
    let err = Emitter::collector("@ERROR");
    let mut c = ctx();
    c.errors = ErrorSink::to_label(err.clone());
    let f = create(&elem("renew_time_key a"), &c).unwrap();
    let out = f.filter_stream(
        "t",
        EventStream::one(EventTime::new(5, 0), record(r#"{"a": true}"#)),
    );
    assert!(out.is_empty());
    let got = err.collected();
    assert_eq!(got.len(), 1);
    assert_eq!(record_to_json(&got[0].1.events[0].record), r#"{"a":true}"#);
}

#[test]
fn event_time_from_float_truncates_like_ruby() {
    assert_eq!(event_time_from_f64(1.5), Ok(EventTime::new(1, 500_000_000)));
    assert_eq!(event_time_from_f64(1.1), Ok(EventTime::new(1, 100_000_000)));
    assert_eq!(
        event_time_from_f64(-1.5),
        Ok(EventTime::new(-2, 500_000_000))
    );
    assert_eq!(event_time_from_f64(0.0), Ok(EventTime::new(0, 0)));
    assert_eq!(event_time_from_f64(1e-300), Ok(EventTime::new(0, 0)));
    assert!(event_time_from_f64(f64::NAN).is_err());
    assert!(event_time_from_f64(1e300).is_err());
}

#[test]
fn case_044_keep_keys_without_renew_record_is_a_config_error() {
    let e = config_error("keep_keys a");
    assert_eq!(e.message, "`renew_record` must be true to use `keep_keys`");
    assert_eq!(e.location.map(|l| l.line), Some(3));
}

#[test]
fn enable_ruby_refuses_unknown_methods_at_load_with_the_location() {
    let e = config_error("enable_ruby true\n<record>\n a ${tag.frobnicate}\n</record>");
    assert!(
        e.message.contains("undefined method 'frobnicate'") && e.message.contains("tag.frobnicate"),
        "{}",
        e.message
    );
    assert_eq!(e.location.map(|l| l.line), Some(5));
    let e = config_error("enable_ruby true\n<record>\n a ${record[}\n</record>");
    assert!(e.message.contains("syntax error"), "{}", e.message);
}

#[test]
fn enable_ruby_issue_examples() {
    let f = make(
        "enable_ruby true\nrenew_record true\n<record>\n app ${record[\"kubernetes\"][\"labels\"][\"app\"]}\n ns ${record.dig(\"kubernetes\", \"namespace_name\")}\n host ${record[\"host\"] || tag_parts[1]}\n level ${record[\"code\"].to_i >= 500 ? \"error\" : \"ok\"}\n at ${Time.at(time).utc.strftime(\"%Y-%m-%dT%H:%M:%S\")}\n ts ${Time.strptime(record[\"ts\"], \"%Y-%m-%dT%H:%M:%S.%N%z\").iso8601}\n msg ${record[\"msg\"].gsub(/\\s+/, \" \")}\n h2 ${if record['host']; record['host']; elsif tag_parts[1]; \"#{tag_parts[1]}\"; else 'unknown'; end}\n</record>",
    );
    let out = run_at(
        &*f,
        "app.web.prod",
        EventTime::new(1_700_000_000, 0),
        r#"{"kubernetes": {"labels": {"app": "shop"}, "namespace_name": "prod"}, "code": "503", "ts": "2023-11-14T22:13:20.123+0900", "msg": "a  b\t c"}"#,
    );
    assert_eq!(
        out[0].1,
        r#"{"app":"shop","ns":"prod","host":"web","level":"error","at":"2023-11-14T22:13:20","ts":"2023-11-14T22:13:20+09:00","msg":"a b c","h2":"web"}"#
    );
}

#[test]
fn enable_ruby_exception_makes_an_error_event() {
    let err = Emitter::collector("@ERROR");
    let mut c = ctx();
    c.errors = ErrorSink::to_label(err.clone());
    let f = create(
        &elem("enable_ruby true\n<record>\n a ${record[\"a\"].upcase}\n b ${loop {}}\n</record>"),
        &c,
    )
    .unwrap();
    let out = f.filter_stream(
        "t",
        EventStream::one(EventTime::new(5, 0), record(r#"{"a": "x"}"#)),
    );
    assert!(out.is_empty());
    let out = f.filter_stream(
        "t",
        EventStream::one(EventTime::new(5, 0), record(r#"{"z": 1}"#)),
    );
    assert!(out.is_empty());
    assert_eq!(err.collected().len(), 2);
}

#[test]
fn enable_ruby_with_plain_expressions_behaves_as_ruby() {
    let got = run(
        "enable_ruby true\nrenew_record true\n<record>\n a ${record['name']}\n b __TAG__\n c ${tag_parts[-1]}\n</record>",
        INPUT,
    );
    assert_eq!(got, r#"{"a":"alice","b":"__TAG__","c":"prod"}"#);
}
