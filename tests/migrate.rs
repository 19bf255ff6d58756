//! The migration tools on the shipped configs and on configs with deliberate differences:
//! `ferrentd test` (cases, golden files, exit statuses), `--dry-run --report` (validated against
//! docs/report.schema.json), `graph` (checked by Graphviz's `dot`), `compare` (against stand-in
//! Fluentd scripts), and the take-over of a node that Fluentd left with a pos file and chunks.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ferrentd(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrentd"))
        .args(args)
        .current_dir(dir)
        .env("TZ", "UTC")
        .stdin(Stdio::null())
        .output()
        .expect("ferrentd runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn conf_d() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("conf.d"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    v.sort();
    assert!(!v.is_empty());
    v
}

const PIPELINE: &str = r#"
<source>
  @type tail
  @id app_logs
  path /var/log/app/*.log
  pos_file /var/log/app.pos
  tag app.web
  <parse>
    @type regexp
    expression /^(?<level>\w+) (?<msg>.*)$/
  </parse>
</source>
<filter app.**>
  @type record_transformer
  <record>
    service web
  </record>
</filter>
<match app.**>
  @type copy
  <store>
    @type forward
    @id aggregator
    <server>
      host 127.0.0.1
      port 1
    </server>
  </store>
  <store>
    @type relabel
    @label @ERRORS_ONLY
  </store>
</match>
<label @ERRORS_ONLY>
  <filter **>
    @type grep
    <regexp>
      key level
      pattern /^error$/
    </regexp>
  </filter>
  <match **>
    @type file
    @id errors
    path /var/log/errors
  </match>
</label>
"#;

const TESTS: &str = r#"
time = "2026-03-01T12:00:00Z"

[[case]]
name = "raw lines through the tail source"
  [[case.source]]
  id = "app_logs"
  lines = ["info started", "error disk full"]
  [[case.expect]]
  output = "aggregator"
  json = ['{"level":"info","msg":"started","service":"web"}', '{"level":"error","msg":"disk full","service":"web"}']
  [[case.expect]]
  output = "errors"
  golden = "golden/errors.jsonl"

[[case]]
name = "records for a tag"
  [[case.input]]
  tag = "app.api"
  records = [{ level = "error", msg = "boom" }]
  [[case.expect]]
  output = "errors"
  records = [{ level = "error", msg = "boom", service = "web" }]
"#;

fn pipeline_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fluent.conf"), PIPELINE).unwrap();
    std::fs::write(dir.path().join("fluent.test.toml"), TESTS).unwrap();
    std::fs::create_dir(dir.path().join("golden")).unwrap();
    std::fs::write(
        dir.path().join("golden/errors.jsonl"),
        "{\"level\":\"error\",\"msg\":\"disk full\",\"service\":\"web\"}\n",
    )
    .unwrap();
    dir
}

#[test]
fn test_file_cases_pass_and_a_changed_record_fails_with_a_diff() {
    let dir = pipeline_dir();
    let ok = ferrentd(dir.path(), &["test", "-c", "fluent.conf"]);
    let out = text(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{out}{}", text(&ok.stderr));
    assert!(
        out.contains("case \"raw lines through the tail source\": ok"),
        "{out}"
    );
    assert!(out.contains("  aggregator: 2 records as expected"), "{out}");
    assert!(out.ends_with("2 passed, 0 failed\n"), "{out}");
    // Nothing was contacted or written: no forward peer on port 1, no /var/log/errors.
    assert!(!Path::new("/var/log/errors").exists());

    // The filter changes: the record no longer matches.
    let changed = PIPELINE.replace("service web", "service api");
    std::fs::write(dir.path().join("fluent.conf"), changed).unwrap();
    let bad = ferrentd(dir.path(), &["test", "-c", "fluent.conf"]);
    let out = text(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{out}");
    assert!(
        out.contains("  errors: records differ (- expected, + received)"),
        "{out}"
    );
    assert!(
        out.contains("    - {\"level\":\"error\",\"msg\":\"boom\",\"service\":\"web\"}"),
        "{out}"
    );
    assert!(
        out.contains("    + {\"level\":\"error\",\"msg\":\"boom\",\"service\":\"api\"}"),
        "{out}"
    );
    assert!(out.ends_with("0 passed, 2 failed\n"), "{out}");

    // --update rewrites the golden file with what was received.
    let upd = ferrentd(dir.path(), &["test", "-c", "fluent.conf", "--update"]);
    assert_eq!(upd.status.code(), Some(1), "{}", text(&upd.stdout));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("golden/errors.jsonl")).unwrap(),
        "{\"level\":\"error\",\"msg\":\"disk full\",\"service\":\"api\"}\n"
    );
}

#[test]
fn one_off_input_and_expect_flags() {
    let dir = pipeline_dir();
    std::fs::write(
        dir.path().join("in.jsonl"),
        "{\"level\":\"error\",\"msg\":\"x\"}\n{\"level\":\"info\",\"msg\":\"y\"}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("want.jsonl"),
        "{\"level\":\"error\",\"msg\":\"x\",\"service\":\"web\"}\n",
    )
    .unwrap();
    let o = ferrentd(
        dir.path(),
        &[
            "test",
            "-c",
            "fluent.conf",
            "--input",
            "app.x=in.jsonl",
            "--expect",
            "errors=want.jsonl",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    std::fs::write(
        dir.path().join("want.jsonl"),
        "{\"level\":\"error\",\"msg\":\"x\"}\n",
    )
    .unwrap();
    let o = ferrentd(
        dir.path(),
        &[
            "test",
            "-c",
            "fluent.conf",
            "--input",
            "app.x=in.jsonl",
            "--expect",
            "errors=want.jsonl",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    // Without expectations, it shows what each output received, with the fixed clock.
    let o = ferrentd(
        dir.path(),
        &["test", "-c", "fluent.conf", "--input", "app.x=in.jsonl"],
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("2026-01-01 00:00:00.000000000 +0000 app.x: {\"level\":\"info\",\"msg\":\"y\",\"service\":\"web\"}"), "{out}");
}

#[test]
fn bad_inputs_exit_with_status_2_and_a_location() {
    let dir = pipeline_dir();
    let d = dir.path();
    let o = ferrentd(
        d,
        &["test", "-c", "fluent.conf", "--input", "a=missing.jsonl"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("missing.jsonl: cannot read"),
        "{}",
        text(&o.stderr)
    );

    std::fs::write(d.join("bad.jsonl"), "{\"a\":1}\nnot json\n").unwrap();
    let o = ferrentd(d, &["test", "-c", "fluent.conf", "--input", "a=bad.jsonl"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("bad.jsonl:2: not JSON"),
        "{}",
        text(&o.stderr)
    );

    std::fs::write(
        d.join("broken.test.toml"),
        "[[case]]\nname = \"x\"\n[[case.input]\n",
    )
    .unwrap();
    let o = ferrentd(
        d,
        &["test", "-c", "fluent.conf", "--tests", "broken.test.toml"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("broken.test.toml line 3,"),
        "{}",
        text(&o.stderr)
    );

    let o = ferrentd(
        d,
        &["test", "-c", "fluent.conf", "--source", "nope=bad.jsonl"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("no <source> has @id nope (sources with an @id: app_logs)"));

    std::fs::write(
        d.join("typo.conf"),
        "<match **>\n  @type stdout\n  <buffer>\n    @type nosuch\n  </buffer>\n</match>\n<match\n",
    )
    .unwrap();
    let o = ferrentd(d, &["test", "-c", "typo.conf", "--input", "a=bad.jsonl"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("typo.conf"), "{}", text(&o.stderr));
}

#[test]
fn every_shipped_config_runs_under_test_graph_and_report() {
    let schema = root().join("docs/report.schema.json");
    for conf in conf_d() {
        let c = conf.to_str().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("in.jsonl"), "{\"message\":\"hello\"}\n").unwrap();
        // The first source's tag gets one record.
        let cfg = std::fs::read_to_string(&conf).unwrap();
        let tag = cfg
            .lines()
            .find_map(|l| l.trim().strip_prefix("tag "))
            .unwrap_or("x")
            .trim()
            .to_string();
        let input = format!("{tag}={}", tmp.path().join("in.jsonl").display());
        let o = ferrentd(&root(), &["test", "-c", c, "--input", &input]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{c}: {}{}",
            text(&o.stdout),
            text(&o.stderr)
        );
        assert!(text(&o.stdout).contains("== "), "{c}: {}", text(&o.stdout));

        // A shipped test file beside the config passes.
        let tests = conf.with_extension("test.toml");
        if tests.exists() {
            let o = ferrentd(&root(), &["test", "-c", c]);
            assert_eq!(o.status.code(), Some(0), "{c}: {}", text(&o.stdout));
            assert!(text(&o.stdout).ends_with(" passed, 0 failed\n"), "{c}");
        }

        let o = ferrentd(&root(), &["graph", "-c", c]);
        assert_eq!(o.status.code(), Some(0), "{c}");
        check_dot(&o.stdout, c);
        let o = ferrentd(&root(), &["graph", "-c", c, "--format", "mermaid"]);
        check_mermaid(&text(&o.stdout), c);

        let o = ferrentd(&root(), &["--dry-run", "--report", "json", "-c", c]);
        assert_eq!(o.status.code(), Some(0), "{c}: {}", text(&o.stdout));
        validate_report(&o.stdout, &schema, c);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_ne!(v["status"], "cannot_run", "{c}");
    }
}

fn check_dot(dot: &[u8], what: &str) {
    use std::io::Write;
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("Graphviz `dot` is installed (scripts/test installs graphviz)");
    child.stdin.take().unwrap().write_all(dot).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what}: dot rejects the graph: {}",
        text(&out.stderr)
    );
}

/// Mermaid: a flowchart header, node lines that each define one id, and edges between them.
fn check_mermaid(m: &str, what: &str) {
    let mut lines = m.lines();
    assert_eq!(lines.next(), Some("flowchart LR"), "{what}");
    let mut nodes = Vec::new();
    for l in lines {
        let l = l.trim();
        if let Some((from, rest)) = l.split_once(" -->") {
            let to = rest.rsplit(' ').next().unwrap();
            assert!(
                nodes.contains(&from.to_string()),
                "{what}: edge from unknown node {from}"
            );
            assert!(
                nodes.contains(&to.to_string()),
                "{what}: edge to unknown node {to}"
            );
        } else {
            let id: String = l
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            assert!(
                !id.is_empty() && l.ends_with([']', '}', ')']),
                "{what}: bad node line {l}"
            );
            assert_eq!(
                l.matches('"').count(),
                2,
                "{what}: quotes not balanced in {l}"
            );
            nodes.push(id);
        }
    }
}

fn validate_report(json: &[u8], schema: &Path, what: &str) {
    use std::io::Write;
    let code = "import json,sys,jsonschema\nschema=json.load(open(sys.argv[1]))\njsonschema.validate(json.load(sys.stdin), schema)\n";
    let mut child = Command::new("python3")
        .args(["-c", code, schema.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(json).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what}: report does not follow the schema: {}",
        text(&out.stderr)
    );
}

#[test]
fn report_lists_deliberate_differences() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("fluent.conf"),
        "<source>\n  @type sample\n  tag \"#{ENV['APP_NAME']}.x\"\n  reuse_record true\n</source>\n<filter **>\n  @type grep\n  <regexp>\n    key a\n    patern /x/\n    pattern /y/\n  </regexp>\n</filter>\n<match **>\n  @type null\n</match>\n",
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_ferrentd"))
        .args(["--dry-run", "--report", "-c", "fluent.conf"])
        .current_dir(d)
        .env("APP_NAME", "shop")
        .output()
        .unwrap();
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("  tag shop.x: ok [Ruby \"#{ENV['APP_NAME']}.x\" => \"shop.x\"]"),
        "{out}"
    );
    assert!(
        out.contains("  reuse_record true: accepted, no effect — every event gets its own record"),
        "{out}"
    );
    assert!(
        out.contains("    patern /x/: UNKNOWN — grep does not know this parameter"),
        "{out}"
    );
    assert!(out.contains("did you mean pattern?"), "{out}");
    assert!(out.ends_with("verdict: runs with 2 differences\n"), "{out}");

    std::fs::write(
        d.join("bad.conf"),
        "<match **>\n  @type elasticsearh\n</match>\n<match x>\n  @type kafka2\n</match>\n",
    )
    .unwrap();
    let o = ferrentd(d, &["--dry-run", "--report", "json", "-c", "bad.conf"]);
    assert_eq!(o.status.code(), Some(1));
    validate_report(
        &o.stdout,
        &root().join("docs/report.schema.json"),
        "bad.conf",
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["status"], "cannot_run");
    assert_eq!(v["sections"][1]["plugin"]["gem"], "fluent-plugin-kafka");
    assert_eq!(v["error"]["line"], 1);
}

#[test]
fn graph_shows_the_path_of_a_tag() {
    let dir = pipeline_dir();
    let o = ferrentd(
        dir.path(),
        &["graph", "-c", "fluent.conf", "--tag", "app.web"],
    );
    assert_eq!(
        text(&o.stdout),
        "@ROOT receives tag app.web\n  <filter app.**> @type record_transformer\n  <match app.**> @type copy\n    <store> @type forward @id aggregator\n    <store> @type relabel\n      @ERRORS_ONLY receives tag app.web\n        <filter **> @type grep\n        <match **> @type file @id errors\n"
    );
    let o = ferrentd(dir.path(), &["graph", "-c", "fluent.conf"]);
    check_dot(&o.stdout, "pipeline");
    let dot = text(&o.stdout);
    assert!(dot.contains("[label=\"relabel\"]"), "{dot}");
}

fn stand_in(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn compare_against_stand_in_fluentd() {
    let dir = pipeline_dir();
    let d = dir.path();
    std::fs::write(
        d.join("in.jsonl"),
        "{\"level\":\"error\",\"msg\":\"x\"}\n{\"level\":\"info\",\"msg\":\"y\"}\n",
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_ferrentd");
    // A stand-in that speaks fluentd's command line: it is ferrentd itself...
    let same = stand_in(d, "fluentd-same", &format!("exec {bin} \"$@\""));
    // ...or ferrentd with one value changed on the way out.
    let differs = stand_in(
        d,
        "fluentd-differs",
        &format!("{bin} \"$@\" | sed -u 's/\"msg\":\"y\"/\"msg\":\"Y\"/'"),
    );
    let o = ferrentd(
        d,
        &[
            "compare",
            "-c",
            "fluent.conf",
            "--fluentd",
            same.to_str().unwrap(),
            "--input",
            "app.web=in.jsonl",
            "--seconds",
            "3",
        ],
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", text(&o.stderr));
    assert_eq!(
        out,
        "== aggregator: same 2 events\n== errors: same 1 events\nequal\n"
    );
    let o = ferrentd(
        d,
        &[
            "compare",
            "-c",
            "fluent.conf",
            "--fluentd",
            differs.to_str().unwrap(),
            "--input",
            "app.web=in.jsonl",
            "--seconds",
            "3",
        ],
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("== aggregator: differs (fluentd 2 events, ferrentd 2)"),
        "{out}"
    );
    assert!(
        out.contains("< app.web: {\"level\":\"info\",\"msg\":\"Y\",\"service\":\"web\"}"),
        "{out}"
    );
    assert!(out.contains("== errors: same 1 events"), "{out}");
}

/// Fluentd's buf_file chunk of out_file: the formatted lines (out_file formats at emit time)
/// and a `.meta` file.
fn write_chunk(dir: &Path, state: char, id_last: u8, timekey: i64, lines: &[&str]) {
    let data: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let mut id = [0x5fu8; 16];
    id[15] = id_last;
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join(format!("buffer.{state}{hex}.log"));
    std::fs::write(&path, data).unwrap();
    let meta = ferrentd::plugins::buf_file::ChunkMeta {
        metadata: ferrentd::buffer::Metadata {
            timekey: Some(timekey),
            tag: None,
            variables: Vec::new(),
        },
        id,
        records: lines.len() as u64,
        created: 1_767_225_600,
        modified: 1_767_225_600.0,
    };
    std::fs::write(
        format!("{}.meta", path.display()),
        ferrentd::plugins::buf_file::encode_meta(&meta),
    )
    .unwrap();
}

#[test]
fn take_over_a_fluentd_node_without_losing_or_repeating_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("logs")).unwrap();
    std::fs::create_dir_all(d.join("buf")).unwrap();
    let log = d.join("logs/app.log");
    let all: Vec<String> = (1..=10).map(|i| format!("line {i}")).collect();
    std::fs::write(
        &log,
        all.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    // Fluentd had read lines 1-4 (their events are in its chunks) and stopped.
    let read = all[..4].iter().map(|l| l.len() as u64 + 1).sum::<u64>();
    let ino = std::fs::metadata(&log).unwrap().ino();
    std::fs::write(
        d.join("app.pos"),
        format!("{}\t{read:016x}\t{ino:016x}\n", log.display()),
    )
    .unwrap();
    write_chunk(&d.join("buf"), 'q', 1, 1_767_225_600, &["line 1", "line 2"]);
    write_chunk(&d.join("buf"), 'b', 2, 1_767_225_600, &["line 3", "line 4"]);
    let conf = format!(
        "<source>\n  @type tail\n  path {logs}/*.log\n  pos_file {pos}\n  tag app\n  <parse>\n    @type none\n  </parse>\n</source>\n<match app>\n  @type file\n  @id out\n  path {out}/out\n  append true\n  <format>\n    @type single_value\n  </format>\n  <buffer time>\n    @type file\n    path {buf}\n    timekey 1d\n    flush_mode interval\n    flush_interval 1s\n    flush_at_shutdown true\n  </buffer>\n</match>\n",
        logs = d.join("logs").display(),
        pos = d.join("app.pos").display(),
        out = d.join("out").display(),
        buf = d.join("buf").display()
    );
    std::fs::write(d.join("fluent.conf"), conf).unwrap();

    // The report says what will happen at the switch.
    let o = ferrentd(d, &["--dry-run", "--report", "json", "-c", "fluent.conf"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let entry = &v["state"]["pos_files"][0]["entries"][0];
    assert_eq!(entry["action"], "resume");
    assert_eq!(entry["position"], read);
    let b = &v["state"]["buffers"][0];
    assert_eq!(
        (
            b["queued_chunks"].as_u64(),
            b["staged_chunks"].as_u64(),
            b["records"].as_u64()
        ),
        (Some(1), Some(1), Some(4))
    );
    assert!(b["delivery_order"][0]
        .as_str()
        .unwrap()
        .contains("buffer.q"));

    // ferrentd takes over on the same config and paths.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrentd"))
        .args(["-c", "fluent.conf"])
        .current_dir(d)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let out_lines = || -> Vec<String> {
        let mut lines = Vec::new();
        if let Ok(rd) = std::fs::read_dir(d.join("out")) {
            let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
            files.sort();
            for f in files {
                lines.extend(
                    std::fs::read_to_string(f)
                        .unwrap_or_default()
                        .lines()
                        .map(str::to_string),
                );
            }
        }
        lines
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while out_lines().len() < 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    // SAFETY: signals the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    // The old chunks go to the 2026-01-01 file, the queued one first; the rest of the log
    // file to today's.
    let got = out_lines();
    let log = std::fs::read_to_string(d.join("stderr.log")).unwrap_or_default();
    assert_eq!(got, all, "every line exactly once; ferrentd's log:\n{log}");
}
