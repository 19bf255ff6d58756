use super::bulk::Expanded;
use super::*;
use crate::event::{EventTime, Record};

fn output(conf: &str) -> EsOutput {
    let elem = crate::test_util::directive(&format!(
        "<match x>\n@type elasticsearch\nhost 127.0.0.1\nport 1\n{conf}\n</match>"
    ));
    build(&elem, &PluginContext::for_tests(), Flavor::Elasticsearch).unwrap()
}

fn expanded(o: &EsOutput) -> Expanded {
    Expanded {
        logstash_prefix: o.s.logstash_prefix.clone(),
        logstash_dateformat: o.s.logstash_dateformat.clone(),
        index_name: o.s.index_name.clone(),
        pipeline: o.s.pipeline.clone(),
        data_stream_name: None,
        index_bucket: Expanded::bucket_for(&o.s.logstash_dateformat),
        index_cache: Default::default(),
    }
}

fn rec(json: &str) -> Record {
    crate::json::decode::parse_record(json.as_bytes()).unwrap()
}

fn lines_of(o: &EsOutput, t: EventTime, json: &str, major: i64) -> Option<String> {
    o.process_for_test("app.web", t, rec(json), major, &expanded(o))
}

#[test]
fn default_index_es7() {
    let o = output("");
    assert_eq!(
        lines_of(&o, EventTime::new(1, 0), r#"{"a":1}"#, 7).unwrap(),
        "{\"index\":{\"_index\":\"fluentd\",\"_type\":\"_doc\"}}\n{\"a\":1}\n"
    );
    // ES 5 (no version probe): type_name; ES 8: no _type.
    assert!(lines_of(&o, EventTime::new(1, 0), r#"{"a":1}"#, 5)
        .unwrap()
        .contains("\"_type\":\"fluentd\""));
    assert!(!lines_of(&o, EventTime::new(1, 0), r#"{"a":1}"#, 8)
        .unwrap()
        .contains("_type"));
}

#[test]
fn logstash_index_and_timestamp() {
    let o = output("logstash_format true\nlogstash_prefix MyApp\nlogstash_dateformat %Y.%m");
    let l = lines_of(&o, EventTime::new(1701388799, 999_999_999), r#"{"m":1}"#, 7).unwrap();
    assert_eq!(
        l,
        "{\"index\":{\"_index\":\"myapp-2023.11\",\"_type\":\"_doc\"}}\n{\"m\":1,\"@timestamp\":\"2023-11-30T23:59:59.999999999+00:00\"}\n"
    );
    let l = lines_of(
        &o,
        EventTime::new(1, 0),
        r#"{"@timestamp":"2024-01-01T00:30:05.678+01:00"}"#,
        7,
    )
    .unwrap();
    assert!(l.contains("myapp-2023.12"), "{l}");
}

#[test]
fn create_without_id_is_dropped() {
    let o = output("write_operation create\nid_key order_id");
    assert!(lines_of(&o, EventTime::new(1, 0), r#"{"a":1}"#, 7).is_none());
    let l = lines_of(&o, EventTime::new(1, 0), r#"{"order_id":42}"#, 7).unwrap();
    assert!(l.starts_with("{\"create\":{\"_index\":\"fluentd\",\"_type\":\"_doc\",\"_id\":42}}"));
}

#[test]
fn upsert_body() {
    let o = output("write_operation upsert\nid_key id");
    let l = lines_of(&o, EventTime::new(1, 0), r#"{"id":"x","v":1}"#, 7).unwrap();
    assert!(l.contains("{\"update\":{"), "{l}");
    assert!(
        l.ends_with("{\"doc\":{\"id\":\"x\",\"v\":1},\"doc_as_upsert\":true}\n"),
        "{l}"
    );
}

#[test]
fn bad_scheme_and_missing_password() {
    let elem = crate::test_util::directive("<match x>\n@type elasticsearch\nscheme ftp\n</match>");
    assert!(build(&elem, &PluginContext::for_tests(), Flavor::Elasticsearch).is_err());
    let elem = crate::test_util::directive("<match x>\n@type elasticsearch\nuser u\n</match>");
    assert!(build(&elem, &PluginContext::for_tests(), Flavor::Elasticsearch).is_err());
    let elem = crate::test_util::directive(
        "<match x>\n@type elasticsearch\nca_file /nonexistent/ca.pem\n</match>",
    );
    let e = build(&elem, &PluginContext::for_tests(), Flavor::Elasticsearch)
        .err()
        .unwrap();
    assert!(e.to_string().contains("ca_file"), "{e}");
}

#[test]
fn hosts_forms() {
    let o = output("hosts a:9201,https://u:p%40x@b.example/es/");
    assert_eq!(o.endpoints[0].base, "http://a:9201");
    assert_eq!(o.endpoints[1].base, "https://b.example:443/es");
    assert_eq!(
        o.endpoints[1].auth,
        Some(("u".to_string(), "p@x".to_string()))
    );
}

#[test]
fn data_stream_create_actions() {
    let elem = crate::test_util::directive(
        "<match x>\n@type elasticsearch_data_stream\ndata_stream_name logs-app-default\nid_key rid\nremove_keys rid\n</match>",
    );
    let o = build(&elem, &PluginContext::for_tests(), Flavor::DataStream).unwrap();
    let mut ex = expanded(&o);
    ex.data_stream_name = Some("logs-app-default".into());
    let l = o
        .process_for_test(
            "app",
            EventTime::new(1701388799, 5),
            rec(r#"{"rid":"a1","m":1}"#),
            8,
            &ex,
        )
        .unwrap();
    assert_eq!(
        l,
        "{\"create\":{\"_id\":\"a1\"}}\n{\"m\":1,\"@timestamp\":\"2023-11-30T23:59:59.000000005+00:00\"}\n"
    );
}

#[test]
fn opensearch_has_no_type_and_routing_key() {
    let elem =
        crate::test_util::directive("<match x>\n@type opensearch\nrouting_key user.id\n</match>");
    let o = build(&elem, &PluginContext::for_tests(), Flavor::OpenSearch).unwrap();
    let l = o
        .process_for_test(
            "app",
            EventTime::new(1, 0),
            rec(r#"{"user":{"id":7}}"#),
            2,
            &expanded(&o),
        )
        .unwrap();
    assert!(
        l.starts_with("{\"index\":{\"_index\":\"fluentd\",\"routing\":7}}"),
        "{l}"
    );
}

#[test]
fn target_index_key_and_include_timestamp() {
    let o = output("target_index_key meta.idx\ninclude_timestamp true\ntime_precision 3");
    let l = lines_of(
        &o,
        EventTime::new(1701388799, 123_456_789),
        r#"{"meta":{"idx":"Custom-Index","k":1}}"#,
        7,
    )
    .unwrap();
    assert_eq!(
        l,
        "{\"index\":{\"_index\":\"custom-index\",\"_type\":\"_doc\"}}\n{\"meta\":{\"k\":1},\"@timestamp\":\"2023-11-30T23:59:59.123+00:00\"}\n"
    );
}

#[test]
fn per_item_results() {
    use super::bulk::Item;
    let o = output("write_operation create\nid_key id");
    let entries: Vec<(EventTime, Record)> = (0..4)
        .map(|i| (EventTime::new(i, 0), rec(&format!("{{\"id\":{i}}}"))))
        .collect();
    let items = || {
        (0..4)
            .map(|pos| Item {
                pos,
                time: EventTime::new(pos as i64, 0),
            })
            .collect()
    };
    let body = br#"{"errors":true,"items":[
        {"create":{"status":201}},
        {"create":{"status":409,"error":{"type":"version_conflict_engine_exception"}}},
        {"create":{"status":429,"error":{"type":"es_rejected_execution_exception"}}},
        {"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"bad"}}}]}"#;
    let out = response::handle(&o, "t", body, items(), &entries);
    assert_eq!(out.settled, vec![0, 1, 3]);
    assert_eq!(out.retry, 1);
    assert!(out.abort.is_none());
    assert_eq!(o.errors.count(), 1, "the 400 item goes to @ERROR");
    // Listing the type makes it abort the chunk, as the plugin does.
    let o = output("write_operation create\nid_key id\nunrecoverable_error_types [\"es_rejected_execution_exception\"]");
    let out = response::handle(&o, "t", body, items(), &entries);
    assert!(out
        .abort
        .unwrap()
        .contains("es_rejected_execution_exception"));
    // A mismatched item count is unrecoverable.
    let out = response::handle(&o, "t", br#"{"errors":true,"items":[]}"#, items(), &entries);
    assert!(out.abort.unwrap().contains("do not match"));
}
