use super::*;
use std::os::unix::fs::MetadataExt;

#[test]
fn pos_file_format_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.pos");
    std::fs::write(
        &p,
        "/a.log\t000000000000000d\t0000000000000042\n/b.log\tffffffffffffffff\t0000000000000001\n/a.log\t0000000000000020\t0000000000000042\ngarbage\n",
    )
    .unwrap();
    let (mut pf, loaded) = PosFile::open(&p, false).unwrap();
    assert_eq!(loaded.get("/a.log"), Some(&(0x20, 0x42)));
    assert!(!loaded.contains_key("/b.log"));
    pf.update("/a.log", "/a.log", 0x30, 0x42).unwrap();
    pf.update("/c.log", "/c.log", 5, 7).unwrap();
    let text = std::fs::read_to_string(&p).unwrap();
    assert_eq!(
        text,
        "/a.log\t0000000000000030\t0000000000000042\n/c.log\t0000000000000005\t0000000000000007\n"
    );
    pf.update("/a.log", "/a.log", UNWATCHED, 0x42).unwrap();
    let before = std::fs::metadata(&p).unwrap().ino();
    pf.compact().unwrap();
    // Replaced by rename (never truncated in place), and nothing left beside it.
    assert_ne!(std::fs::metadata(&p).unwrap().ino(), before);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("x.pos")]);
    pf.update("/c.log", "/c.log", 6, 7).unwrap();
    assert_eq!(
        std::fs::read_to_string(&p).unwrap(),
        "/c.log\t0000000000000006\t0000000000000007\n"
    );
}

#[test]
fn pos_lines_read_like_fluentds_regexp() {
    assert_eq!(
        parse_pos_line(b"/a\t00000000000000FF\t0000000000000001"),
        Some(("/a".to_string(), 255, 1))
    );
    // Trailing text after the inode is ignored; short hex is fine.
    assert_eq!(
        parse_pos_line(b"/a\tff\t1junk"),
        Some(("/a".to_string(), 255, 1))
    );
    assert_eq!(parse_pos_line(b"\tff\t1"), None);
    assert_eq!(parse_pos_line(b"/a\tzz\t1"), None);
    assert_eq!(parse_pos_line(b"/a\tff"), None);
    assert_eq!(parse_pos_line(b"/a\t1ffffffffffffffff\t1"), None);
}

#[test]
fn follow_inodes_pos_file_keys_by_inode_but_writes_paths() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.pos");
    std::fs::write(
        &p,
        "/a.log\t0000000000000001\t0000000000000042\n/a.log.1\t0000000000000002\t0000000000000042\n",
    )
    .unwrap();
    let (mut pf, loaded) = PosFile::open(&p, true).unwrap();
    assert_eq!(loaded.get("66"), Some(&(2, 0x42)));
    pf.update("7", "/b.log", 3, 7).unwrap();
    assert_eq!(
        std::fs::read_to_string(&p).unwrap(),
        "/a.log.1\t0000000000000002\t0000000000000042\n/b.log\t0000000000000003\t0000000000000007\n"
    );
}

#[test]
fn brace_alternatives() {
    assert_eq!(
        expand_braces("/l/{a,b}/*.{log,txt}", true),
        vec!["/l/a/*.log", "/l/a/*.txt", "/l/b/*.log", "/l/b/*.txt"]
    );
    assert_eq!(expand_braces("/l/{a,b}", false), vec!["/l/{a,b}"]);
    assert_eq!(expand_braces("/l/{a", true), vec!["/l/{a"]);
}

#[test]
fn group_lookup_follows_fluentd_key_matching() {
    let text = r#"<group>
  pattern /^\/logs\/(?<app>[a-z]+)_(?<ns>[a-z]+)\.log$/
  <rule>
match {"ns": "/prod/"}
limit 10
  </rule>
  <rule>
match {
  "ns": "/prod/",
  "app": "/web/"
}
limit 100
  </rule>
  <rule>
limit 3
  </rule>
</group>
"#;
    let root =
        crate::config_parser::parse_str(text, std::path::Path::new("t.conf"), &Default::default())
            .unwrap();
    let elem = &root.elements[0];
    let g: GroupConf = PluginContext::for_tests().configure(elem, "tail").unwrap();
    let gs = Groups::build(&g, elem).unwrap();
    let limit = |p: &str| gs.groups[gs.find(p)].limit;
    assert_eq!(limit("/logs/web_prod.log"), 100);
    assert_eq!(limit("/logs/db_prod.log"), 10);
    assert_eq!(limit("/logs/db_dev.log"), 3);
    assert_eq!(limit("/elsewhere.log"), 3);
    assert_eq!(ruby_regexp_to_s("a", "i"), "(?i-mx:a)");
    assert_eq!(ruby_regexp_to_s(".*", ""), "(?-mix:.*)");
}

#[test]
fn tag_expansion_from_path() {
    let s = settings_for_tests();
    assert_eq!(s.tag_for("./logs/web.log"), "app.logs.web.log");
    assert_eq!(s.tag_for("/var/log/a.log"), "app.var.log.a.log");
    assert_eq!(s.strftime("/l/%Y/x.log").len(), "/l/2024/x.log".len());
    assert_eq!(
        s.strftime("/l/%Q.log"),
        timefmt::strftime(EventTime::now(), "/l/%Q.log", &TimeZoneSpec::Utc)
    );
}

#[test]
fn glob_keeps_a_leading_dot_slash() {
    let dir = tempfile::Builder::new()
        .prefix("glob-dot-")
        .tempdir_in("target")
        .unwrap();
    std::fs::write(dir.path().join("a.log"), "x\n").unwrap();
    let name = dir
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut s = settings_for_tests();
    s.paths = vec![format!("./target/{name}/*.log")];
    let got = s.expand(&mut Vec::new());
    assert_eq!(got, vec![(format!("./target/{name}/a.log"), true)]);
    s.paths = vec![format!("target/{name}/*.log")];
    assert_eq!(
        s.expand(&mut Vec::new()),
        vec![(format!("target/{name}/a.log"), true)]
    );
}

fn settings_for_tests() -> Settings {
    Settings {
        paths: vec![],
        excludes: vec![],
        tag_prefix: "app.".into(),
        tag_suffix: Some(String::new()),
        glob_policy: GlobPolicy::BackwardCompatible,
        path_zone: TimeZoneSpec::Utc,
        rotate_wait: Duration::from_secs(5),
        read_from_head: true,
        refresh_interval: Duration::from_secs(60),
        read_lines_limit: 1000,
        bytes_per_second: None,
        multiline_flush: None,
        emit_unmatched: false,
        path_key: None,
        limit_recently_modified: None,
        skip_refresh_on_startup: false,
        follow_inodes: false,
        open_on_every_update: false,
        ignore_repeated_permission_error: false,
        compaction_interval: None,
        max_line_size: None,
        transcode: Transcode::None,
        groups: None,
        parser: Arc::new(NoneParser),
        metrics: crate::metrics::PluginMetrics::detached("tail", crate::metrics::Category::Input),
    }
}

struct NoneParser;
impl Parser for NoneParser {
    fn parse(
        &self,
        text: &[u8],
        emit: &mut dyn FnMut(Option<EventTime>, Record),
    ) -> Result<(), super::super::ParserError> {
        let mut r = Record::new();
        r.insert("message", Value::Str(text.to_vec()));
        emit(Some(EventTime::now()), r);
        Ok(())
    }
}
