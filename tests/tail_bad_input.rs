//! in_tail on hostile input: invalid UTF-8, CRLF, empty lines, binary garbage, over-long lines,
//! corrupt pos files, shrinking files and unreadable paths. Never a crash, never a silent loss:
//! each line comes out as Fluentd would emit it, or is dropped with Fluentd's warning.

mod tail_support;

use std::os::unix::fs::PermissionsExt;

use tail_support::*;

#[test]
fn invalid_utf8_crlf_empty_and_binary_lines_pass_through() {
    let (_d, dir) = tempdir();
    let log = dir.join("app.log");
    let mut body: Vec<u8> = Vec::new();
    body.extend_from_slice(b"plain\n");
    body.extend_from_slice(b"bad \xff\xfe bytes\n");
    body.extend_from_slice(b"crlf line\r\n");
    body.extend_from_slice(b"\n");
    body.extend_from_slice(b"\r\n");
    body.extend_from_slice(b"nul\x00in\x01the\x7fmiddle\x1b[0m\n");
    body.extend_from_slice(b"inner\rcr\n");
    body.extend_from_slice(b"two crs\r\r\n");
    body.extend_from_slice(b"\xc3\x28\xa0\xa1\xe2\x82\n");
    body.extend_from_slice(b"last\n");
    std::fs::write(&log, &body).unwrap();
    let conf = config(
        &log.display().to_string(),
        &dir.join("p.pos"),
        "  read_from_head true",
    );
    let mut d = Daemon::start(&dir, &conf);
    d.wait_until("the last line", |l| l.iter().any(|x| x == b"last"));
    let got = d.stop();
    let want: Vec<&[u8]> = vec![
        b"plain",
        b"bad \xff\xfe bytes",
        b"crlf line",
        b"",
        b"",
        b"nul\x00in\x01the\x7fmiddle\x1b[0m",
        b"inner\rcr",
        // in_tail's chomp leaves "two crs\r"; out_stdout chomps its formatted line once more.
        b"two crs",
        b"\xc3\x28\xa0\xa1\xe2\x82",
        b"last",
    ];
    assert_eq!(got, want.iter().map(|l| l.to_vec()).collect::<Vec<_>>());
}

#[test]
fn garbage_for_a_json_parser_warns_and_keeps_going() {
    let (_d, dir) = tempdir();
    let log = dir.join("app.log");
    std::fs::write(
        &log,
        b"{\"a\":1}\n\xff\xfe\x00garbage\n{\"a\":\n[1,2]\n{\"a\":2}\n".as_slice(),
    )
    .unwrap();
    let conf = format!(
        "<source>\n  @type tail\n  path {}\n  tag t\n  read_from_head true\n  <parse>\n    @type json\n  </parse>\n</source>\n<match t>\n  @type stdout\n  <format>\n    @type json\n  </format>\n</match>\n",
        log.display()
    );
    let mut d = Daemon::start(&dir, &conf);
    d.wait_lines(2);
    d.wait_stderr("pattern not matched");
    let got = d.stop();
    assert_eq!(got, vec![b"{\"a\":1}".to_vec(), b"{\"a\":2}".to_vec()]);
}

#[test]
fn lines_longer_than_max_line_size_are_skipped_with_a_warning() {
    let (_d, dir) = tempdir();
    let log = dir.join("app.log");
    let max = 64;
    let fits = "f".repeat(max - 1); // with its newline exactly max_line_size
    let over = "o".repeat(max);
    let huge = "h".repeat(max * 50);
    let body = format!("short\n{fits}\n{over}\n{huge}\nafter\n");
    std::fs::write(&log, body).unwrap();
    let conf = config(
        &log.display().to_string(),
        &dir.join("p.pos"),
        &format!("  read_from_head true\n  max_line_size {max}"),
    );
    let mut d = Daemon::start(&dir, &conf);
    d.wait_until("the line after", |l| l.iter().any(|x| x == b"after"));
    // A line still being written that is already too long: dropped, and its rest too.
    append(&log, &["x".repeat(max * 3)]);
    append(&log, &["tail".to_string()]);
    d.wait_until("the tail line", |l| l.iter().any(|x| x == b"tail"));
    let err = d.stderr();
    let got = d.stop();
    assert_eq!(
        got,
        vec![
            b"short".to_vec(),
            fits.into_bytes(),
            b"after".to_vec(),
            b"tail".to_vec()
        ]
    );
    assert!(
        err.matches(&format!("received line length is longer than {max}"))
            .count()
            >= 3,
        "{err}"
    );
}

#[test]
fn a_line_without_newline_grows_past_max_line_size_across_reads() {
    let (_d, dir) = tempdir();
    let log = dir.join("app.log");
    std::fs::write(&log, "ok\n").unwrap();
    let conf = config(
        &log.display().to_string(),
        &dir.join("p.pos"),
        "  read_from_head true\n  max_line_size 1k",
    );
    let mut d = Daemon::start(&dir, &conf);
    d.wait_lines(1);
    // Written in pieces without a newline, each read sees only part of it.
    let piece = "p".repeat(700);
    for _ in 0..5 {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(piece.as_bytes()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(150));
    }
    append(&log, &["".to_string(), "next".to_string()]);
    d.wait_until("the next line", |l| l.iter().any(|x| x == b"next"));
    let got = d.stop();
    assert_eq!(got, vec![b"ok".to_vec(), b"next".to_vec()]);
}

#[test]
fn corrupt_or_truncated_pos_file_lines_are_skipped_with_a_warning() {
    let (_d, dir) = tempdir();
    let log = dir.join("app.log");
    let pos = dir.join("p.pos");
    let lines = numbered("c", 0..5);
    append(&log, &lines);
    // Binary junk, a line without inode, a half-written last line.
    let mut junk = b"\x00\x01\xff junk\n".to_vec();
    junk.extend_from_slice(format!("{}\t0000000000000000\n", log.display()).as_bytes());
    junk.extend_from_slice(format!("{}\t00000000000000", log.display()).as_bytes());
    std::fs::write(&pos, &junk).unwrap();
    let conf = config(&log.display().to_string(), &pos, "  read_from_head true");
    let mut d = Daemon::start(&dir, &conf);
    d.wait_until("all lines", |l| has_all(l, &lines));
    d.wait_stderr("Unparsable line in pos_file");
    let got = d.stop();
    assert_exactly(&got, &lines);
    let text = std::fs::read_to_string(&pos).unwrap();
    assert_eq!(text.lines().count(), 1, "{text:?}");
}

#[test]
fn a_file_that_shrinks_is_treated_as_truncated() {
    let (_d, dir) = tempdir();
    let log = dir.join("app.log");
    let first = numbered("long-line-before-shrink", 0..50);
    append(&log, &first);
    let conf = config(
        &log.display().to_string(),
        &dir.join("p.pos"),
        "  read_from_head true",
    );
    let mut d = Daemon::start(&dir, &conf);
    d.wait_until("first lines", |l| has_all(l, &first));
    // Rewritten in place (same inode), shorter than what was read.
    let second = numbered("s", 0..3);
    std::fs::write(&log, second.join("\n") + "\n").unwrap();
    let all: Vec<String> = [first, second].concat();
    d.wait_until("rewritten lines", |l| has_all(l, &all));
    let got = d.stop();
    assert_exactly(&got, &all);
}

/// An unreadable file is warned about and retried; other files go on. Root reads any file, so
/// as root ferrentd runs as `nobody` to see EACCES; if that is not possible the test checks
/// what root can: both files are read.
#[test]
fn unreadable_path_warns_and_keeps_going() {
    let (_d, dir) = tempdir();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let open = dir.join("open.log");
    let locked = dir.join("locked.log");
    let a = numbered("open", 0..5);
    let b = numbered("locked", 0..5);
    append(&open, &a);
    append(&locked, &b);
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let conf = config(
        &format!("{},{}", open.display(), locked.display()),
        &dir.join("p.pos"),
        "  read_from_head true",
    );
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let daemon = if root {
        use std::os::unix::process::CommandExt;
        Daemon::try_start(&dir, &conf, |c| {
            c.uid(65534).gid(65534);
        })
        .ok()
    } else {
        Some(Daemon::start(&dir, &conf))
    };
    let Some(mut d) = daemon else {
        // Root without a way to drop privileges: EACCES cannot happen; both files are read.
        let mut d = Daemon::start(&dir, &conf);
        let all: Vec<String> = [a, b].concat();
        d.wait_until("both files", |l| has_all(l, &all));
        assert_exactly(&d.stop(), &all);
        return;
    };
    d.wait_until("the readable file", |l| has_all(l, &a));
    d.wait_stderr("locked.log unreadable");
    // Once readable it is picked up, from its head.
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o644)).unwrap();
    let all: Vec<String> = [a, b].concat();
    d.wait_until("the file once readable", |l| has_all(l, &all));
    let err = d.stderr();
    assert_eq!(err.matches("locked.log unreadable").count(), 1, "{err}");
    assert_exactly(&d.stop(), &all);
}
