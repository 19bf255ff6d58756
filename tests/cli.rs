//! The command line: dry runs of every shipped config, located config errors, inline configs,
//! and a clean stop on SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ferrentd")
}

fn dry_run(conf: &Path) -> std::process::Output {
    Command::new(bin())
        .args(["--dry-run", "-c"])
        .arg(conf)
        .env("TZ", "UTC")
        .output()
        .expect("ferrentd runs")
}

#[test]
fn every_shipped_config_passes_dry_run() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conf.d");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("conf") {
            continue;
        }
        let out = dry_run(&path);
        assert!(
            out.status.success(),
            "{} failed --dry-run:\n{}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        seen += 1;
    }
    assert!(seen >= 1, "no configs found in conf.d");
}

#[test]
fn config_errors_exit_1_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("bad.conf");
    std::fs::write(&conf, "<source>\n  @type sample\n  tag t\n</sourc>\n").unwrap();
    let out = dry_run(&conf);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unmatched end tag"), "{err}");
    assert!(err.contains("bad.conf line 4,1"), "{err}");
    assert!(err.contains("</sourc>"), "{err}");
}

#[test]
fn unknown_plugin_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("u.conf");
    std::fs::write(&conf, "<match **>\n  @type nosuchplugin\n</match>\n").unwrap();
    let out = dry_run(&conf);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Unknown output plugin 'nosuchplugin'"),
        "{err}"
    );
}

#[test]
fn two_tails_on_one_pos_file_are_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("p.conf");
    let source = |id: &str| {
        format!(
            "<source>\n  @type tail\n  @id {id}\n  path /var/log/{id}.log\n  tag t\n  pos_file /var/log/shared.pos\n  <parse>\n    @type none\n  </parse>\n</source>\n"
        )
    };
    std::fs::write(&conf, source("first") + &source("second")).unwrap();
    let out = dry_run(&conf);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Other 'in_tail' plugin already use same pos_file path: plugin_id = first, pos_file path = /var/log/shared.pos"),
        "{err}"
    );
    assert!(err.contains("p.conf line 16,3"), "{err}");
}

#[test]
fn two_file_outputs_on_one_buffer_path_are_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("b.conf");
    let buf = dir.path().join("buf");
    let out_dir = dir.path().display().to_string();
    let matcher = |tag: &str| {
        format!(
            "<match {tag}>\n  @type file\n  path {out_dir}/{tag}\n  <buffer>\n    @type file\n    path {}\n  </buffer>\n</match>\n",
            buf.display()
        )
    };
    std::fs::write(&conf, matcher("a") + &matcher("b")).unwrap();
    let out = dry_run(&conf);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "Other 'file' plugin already use same buffer path: type = file, buffer path = {}",
            buf.display()
        )),
        "{err}"
    );
    assert!(err.contains("b.conf line 12,"), "{err}");
}

#[test]
fn missing_label_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("l.conf");
    std::fs::write(
        &conf,
        "<source>\n  @type sample\n  tag t\n  @label @NOPE\n</source>\n",
    )
    .unwrap();
    let out = dry_run(&conf);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("@NOPE label not found"));
}

#[test]
fn inline_config_is_appended() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("empty.conf");
    std::fs::write(&conf, "").unwrap();
    let out = Command::new(bin())
        .args(["--dry-run", "-c"])
        .arg(&conf)
        .args(["-i", "<match x>\\n  @type nosuch\\n</match>"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "the inline <match> must be read"
    );
}

#[test]
fn plugin_dirs_are_accepted_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("ok.conf");
    std::fs::write(&conf, "<match **>\n  @type null\n</match>\n").unwrap();
    let out = Command::new(bin())
        .args(["--dry-run", "-p", "/etc/fluent/plugin", "-c"])
        .arg(&conf)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Ruby plugins are not loaded"));
}

#[test]
fn sigterm_stops_cleanly_and_stdout_has_only_events() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("run.conf");
    std::fs::write(
        &conf,
        "<source>\n  @type sample\n  tag t\n  sample {\"a\":1}\n</source>\n<match t>\n  @type stdout\n</match>\n",
    )
    .unwrap();
    let mut child = Command::new(bin())
        .arg("-c")
        .arg(&conf)
        .env("TZ", "UTC")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // in_sample emits at start-up; wait for the first line rather than for a fixed time.
    use std::io::BufRead;
    let stdout = child.stdout.take().unwrap();
    let mut reader = std::io::BufReader::new(stdout);
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
    let re = regex::Regex::new(r#"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{9} \+0000 t: \{"a":1\}\n$"#)
        .unwrap();
    assert!(re.is_match(&first), "{first:?}");
}

/// Reads stdout lines until one contains `needle`; None when the stream ends first or after
/// `max` lines (in_sample prints one a second, so `max` bounds the wait).
fn read_until(reader: &mut impl std::io::BufRead, needle: &str, max: usize) -> Option<String> {
    for _ in 0..max {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line.contains(needle) {
            return Some(line);
        }
    }
    None
}

#[test]
fn sighup_reloads_the_config_and_a_bad_one_keeps_the_old() {
    use std::io::BufReader;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("reload.conf");
    let with_tag = |tag: &str| {
        format!("<source>\n  @type sample\n  tag {tag}\n  sample {{\"a\":1}}\n</source>\n<match fluent.**>\n  @type null\n</match>\n<match **>\n  @type stdout\n</match>\n")
    };
    std::fs::write(&conf, with_tag("before")).unwrap();
    let mut child = Command::new(bin())
        .arg("-c")
        .arg(&conf)
        .env("TZ", "UTC")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    assert!(read_until(&mut reader, " before: ", 5).is_some());

    std::fs::write(&conf, with_tag("after")).unwrap();
    unsafe {
        libc::kill(child.id() as i32, libc::SIGHUP);
    }
    assert!(
        read_until(&mut reader, " after: ", 10).is_some(),
        "the new config runs"
    );

    std::fs::write(&conf, "<source>\n  @type sample\n").unwrap();
    unsafe {
        libc::kill(child.id() as i32, libc::SIGHUP);
    }
    // The broken config is refused and the running one keeps emitting.
    assert!(read_until(&mut reader, " after: ", 10).is_some());
    assert!(read_until(&mut reader, " after: ", 10).is_some());

    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success());
}

/// Runs ferrentd until it exits by itself (bounded), returning its status code and stderr.
fn run_to_exit(conf: &Path, limit: std::time::Duration) -> (Option<i32>, String) {
    let mut child = Command::new(bin())
        .arg("-c")
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ferrentd runs");
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ferrentd did not exit within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.code(), stderr)
}

#[test]
fn a_port_in_use_stops_start_up() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("fluent.conf");
    std::fs::write(
        &conf,
        format!(
            "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n<match fluent.**>\n  @type null\n</match>\n<match **>\n  @type stdout\n</match>\n"
        ),
    )
    .unwrap();
    let (code, stderr) = run_to_exit(&conf, std::time::Duration::from_secs(20));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("bind(2) for \"127.0.0.1\" port {port}")),
        "{stderr}"
    );
}
