use super::*;

fn rec(pairs: &[(&str, &str)]) -> Record {
    pairs
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), Value::from(*v)))
        .collect()
}

fn entry_175_first() -> Record {
    record_from_items(
        [
            "_BOOT_ID=0123456789abcdef0123456789abcdef",
            "_PID=100",
            "SYSLOG_IDENTIFIER=containerd",
            "MESSAGE=time=\"2024-01-01T00:00:00Z\" level=info",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect(),
    )
}

#[test]
fn items_split_at_the_first_equals_sign() {
    assert_eq!(
        split_item(b"MESSAGE=a=b"),
        (b"MESSAGE".to_vec(), Value::from("a=b"))
    );
    assert_eq!(split_item(b"EMPTY="), (b"EMPTY".to_vec(), Value::from("")));
    assert_eq!(split_item(b"NOVALUE"), (b"NOVALUE".to_vec(), Value::Nil));
    assert_eq!(
        split_item(b"BIN=\xff\x00\xfe"),
        (b"BIN".to_vec(), Value::Str(vec![0xff, 0, 0xfe]))
    );
}

#[test]
fn a_repeated_field_keeps_its_first_position_and_last_value() {
    let r = record_from_items(vec![b"A=1".to_vec(), b"B=2".to_vec(), b"A=3".to_vec()]);
    assert_eq!(r, rec(&[("A", "3"), ("B", "2")]));
}

#[test]
fn realtime_microseconds_become_event_time() {
    assert_eq!(
        event_time(1_700_000_001_250_000),
        EventTime::new(1_700_000_001, 250_000_000)
    );
}

#[test]
fn strip_and_lowercase_as_case_174() {
    let m = EntryMutator::new(Vec::new(), false, true, true);
    let out = m.run(entry_175_first());
    let keys: Vec<&[u8]> = out.keys().collect();
    assert_eq!(
        keys,
        vec![&b"boot_id"[..], b"pid", b"syslog_identifier", b"message"]
    );
}

#[test]
fn field_map_strict_as_case_178() {
    let fm = parse_field_map(
        r#"{"MESSAGE": "log", "_PID": ["pid", "process_id"], "SYSLOG_IDENTIFIER": "ident"}"#,
    )
    .unwrap();
    let m = EntryMutator::new(fm, true, false, false);
    assert_eq!(
        m.run(entry_175_first()),
        rec(&[
            ("log", "time=\"2024-01-01T00:00:00Z\" level=info"),
            ("pid", "100"),
            ("process_id", "100"),
            ("ident", "containerd")
        ])
    );
}

#[test]
fn field_map_not_strict_keeps_other_fields_after_the_mapped_ones() {
    let fm = parse_field_map(r#"{"_PID": "pid"}"#).unwrap();
    let m = EntryMutator::new(fm, false, true, true);
    let out = m.run(entry_175_first());
    assert_eq!(
        out,
        rec(&[
            ("pid", "100"),
            ("boot_id", "0123456789abcdef0123456789abcdef"),
            ("syslog_identifier", "containerd"),
            ("message", "time=\"2024-01-01T00:00:00Z\" level=info"),
        ])
    );
}

#[test]
fn several_sources_into_one_field_are_joined_with_a_space() {
    let fm = parse_field_map(r#"{"_PID": "who", "SYSLOG_IDENTIFIER": "who"}"#).unwrap();
    let m = EntryMutator::new(fm, true, false, false);
    assert_eq!(m.run(entry_175_first()), rec(&[("who", "100 containerd")]));
}

#[test]
fn a_renamed_field_landing_on_a_mapped_one_is_prepended() {
    // `_PID` is mapped to `PID`; the stripped `_PID`... is a source, so use another field.
    let fm = parse_field_map(r#"{"SYSLOG_IDENTIFIER": "PID"}"#).unwrap();
    let m = EntryMutator::new(fm, false, true, false);
    let out = m.run(entry_175_first());
    assert_eq!(out.get("PID"), Some(&Value::from("100 containerd")));
}

#[test]
fn a_string_destination_matches_by_substring_as_the_plugin_does() {
    let fm = parse_field_map(r#"{"MESSAGE": "log", "_PID": "logger"}"#).unwrap();
    let m = EntryMutator::new(fm, true, false, false);
    let out = m.run(entry_175_first());
    assert_eq!(
        out,
        rec(&[
            ("log", "time=\"2024-01-01T00:00:00Z\" level=info 100"),
            ("logger", "100")
        ])
    );
}

#[test]
fn field_map_values_must_be_names() {
    assert_eq!(
        parse_field_map(r#"{"A": 1}"#).unwrap_err(),
        "`field_map` values must be strings or array of strings"
    );
    assert_eq!(
        parse_field_map("A:b,C:d").unwrap(),
        vec![
            ("A".into(), Dest::Name("b".into())),
            ("C".into(), Dest::Name("d".into()))
        ]
    );
}

#[test]
fn matches_or_hashes_and_fields_as_case_177() {
    let items = crate::config_parser::types::array(
        r#"[{"_SYSTEMD_UNIT": "ssh.service"}, {"_SYSTEMD_UNIT": "containerd.service", "PRIORITY": "4"}]"#,
    )
    .unwrap();
    assert_eq!(
        parse_matches(&items).unwrap(),
        vec![
            MatchTerm::Match(b"_SYSTEMD_UNIT=ssh.service".to_vec()),
            MatchTerm::Or,
            MatchTerm::Match(b"_SYSTEMD_UNIT=containerd.service".to_vec()),
            MatchTerm::Match(b"PRIORITY=4".to_vec()),
        ]
    );
}

#[test]
fn match_values_arrays_numbers_and_lowercase_names() {
    let items = vec![r#"{"priority": [4, "6"], "x": null}"#.to_string()];
    assert_eq!(
        parse_matches(&items).unwrap(),
        vec![
            MatchTerm::Match(b"PRIORITY=4".to_vec()),
            MatchTerm::Match(b"PRIORITY=6".to_vec()),
        ]
    );
    assert!(parse_matches(&["kata".to_string()]).is_err());
}

#[test]
fn damaged_journal_files_are_recognised() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.journal");
    std::fs::write(&short, b"LPKSHHRH").unwrap();
    assert!(journal_file_problem(&short)
        .unwrap()
        .starts_with("truncated"));
    let bad = dir.path().join("bad.journal");
    std::fs::write(&bad, [0u8; 300]).unwrap();
    assert_eq!(
        journal_file_problem(&bad),
        Some("not a journal file (bad signature)")
    );
    let mut h = vec![0u8; 300];
    h[..8].copy_from_slice(b"LPKSHHRH");
    h[88..96].copy_from_slice(&256u64.to_le_bytes());
    h[96..104].copy_from_slice(&4096u64.to_le_bytes());
    let cut = dir.path().join("cut.journal");
    std::fs::write(&cut, &h).unwrap();
    assert!(journal_file_problem(&cut)
        .unwrap()
        .contains("announces more data"));
    h[96..104].copy_from_slice(&44u64.to_le_bytes());
    std::fs::write(&cut, &h).unwrap();
    assert_eq!(journal_file_problem(&cut), None);
}
