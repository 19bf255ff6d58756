//! buf_file end to end with the binary: recovery after `kill -9`, a corrupt chunk moved aside,
//! and chunk files in Fluentd's layout drained at start. Every wait polls with a deadline.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ferrentd")
}

fn start(conf: &Path, dir: &Path) -> Child {
    Command::new(bin())
        .arg("-c")
        .arg(conf)
        .current_dir(dir)
        .env("TZ", "UTC")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("stderr-{}.log", rand_suffix()))).unwrap())
        .spawn()
        .expect("ferrentd starts")
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(mut c: Child) {
    unsafe {
        libc::kill(c.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if c.try_wait().unwrap().is_some() {
            return;
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            let _ = c.wait();
            panic!("ferrentd did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every line of every file under `dir`.
fn lines_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        if e.path().is_file() {
            let s = std::fs::read_to_string(e.path()).unwrap_or_default();
            out.extend(s.lines().map(str::to_string));
        }
    }
    out
}

fn chunk_files(dir: &Path, state: &str) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.starts_with(&format!("buffer.{state}")) && n.ends_with(".log")
                })
                .count()
        })
        .unwrap_or(0)
}

fn stderr_text(dir: &Path) -> String {
    let mut s = String::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with("stderr-") {
            s.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    s
}

#[test]
fn buf_file_survives_kill_9() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let n = 3000;
    let mut input = String::new();
    for i in 0..n {
        input.push_str(&format!("{{\"n\":{i},\"pad\":\"{}\"}}\n", "x".repeat(40)));
    }
    std::fs::write(dir.join("input.log"), &input).unwrap();
    let conf = dir.join("fluent.conf");
    let write_conf = |flush: &str| {
        std::fs::write(
            &conf,
            format!(
                "<source>\n  @type tail\n  path ./input.log\n  pos_file ./input.pos\n  tag t\n  read_from_head true\n  <parse>\n    @type json\n  </parse>\n</source>\n<match t>\n  @type file\n  path ./out/o\n  append true\n  <format>\n    @type json\n  </format>\n  <buffer time>\n    @type file\n    path ./buf\n    timekey 1d\n    flush_mode interval\n    flush_interval {flush}\n  </buffer>\n</match>\n"
            ),
        )
        .unwrap();
    };
    write_conf("1h");
    let c = start(&conf, dir);
    let size = input.len() as u64;
    // in_tail records its offset after the events were emitted (so buffered).
    wait_for("the input to be read and buffered", || {
        std::fs::read_to_string(dir.join("input.pos"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .next()
                    .and_then(|l| l.split('\t').nth(1).map(|h| u64::from_str_radix(h, 16)))
            })
            .and_then(Result::ok)
            == Some(size)
    });
    assert!(chunk_files(&dir.join("buf"), "b") + chunk_files(&dir.join("buf"), "q") > 0);
    assert!(lines_under(&dir.join("out")).is_empty());
    let mut c = c;
    c.kill().unwrap();
    c.wait().unwrap();

    write_conf("1s");
    let c = start(&conf, dir);
    let want: BTreeSet<i64> = (0..n).collect();
    wait_for("every line in the output", || {
        let got: BTreeSet<i64> = lines_under(&dir.join("out"))
            .iter()
            .filter_map(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v["n"].as_i64())
            })
            .collect();
        got == want
    });
    stop(c);
    // Nothing invented: every line is a whole input record.
    for l in lines_under(&dir.join("out")) {
        let v: serde_json::Value = serde_json::from_str(&l).expect("whole JSON line");
        let k = v["n"].as_i64().unwrap();
        assert!((0..n).contains(&k), "{l}");
    }
}

/// Fluentd's chunk meta: 0xC1 0x00, u32 BE length, msgpack map.
fn fluentd_meta(id: &[u8; 16], tag: Option<&str>, records: u64, header: bool) -> Vec<u8> {
    use rmp::encode as e;
    let mut m = Vec::new();
    e::write_map_len(&mut m, 8).unwrap();
    e::write_str(&mut m, "timekey").unwrap();
    e::write_nil(&mut m).unwrap();
    e::write_str(&mut m, "tag").unwrap();
    match tag {
        Some(t) => e::write_str(&mut m, t).unwrap(),
        None => e::write_nil(&mut m).unwrap(),
    }
    e::write_str(&mut m, "variables").unwrap();
    e::write_nil(&mut m).unwrap();
    e::write_str(&mut m, "seq").unwrap();
    e::write_uint(&mut m, 0).unwrap();
    e::write_str(&mut m, "id").unwrap();
    e::write_bin(&mut m, id).unwrap();
    e::write_str(&mut m, "s").unwrap();
    e::write_uint(&mut m, records).unwrap();
    e::write_str(&mut m, "c").unwrap();
    e::write_uint(&mut m, 1_700_000_000).unwrap();
    e::write_str(&mut m, "m").unwrap();
    e::write_f64(&mut m, 1_700_000_001.5).unwrap();
    if !header {
        return m;
    }
    let mut out = vec![0xc1, 0x00];
    out.extend_from_slice(&(m.len() as u32).to_be_bytes());
    out.extend_from_slice(&m);
    out
}

fn hex(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

fn put_chunk(buf: &Path, state: char, id: [u8; 16], data: &str, meta: Option<Vec<u8>>) -> PathBuf {
    std::fs::create_dir_all(buf).unwrap();
    let p = buf.join(format!("buffer.{state}{}.log", hex(&id)));
    std::fs::write(&p, data).unwrap();
    if let Some(m) = meta {
        let mut mp = p.clone().into_os_string();
        mp.push(".meta");
        std::fs::write(mp, m).unwrap();
    }
    p
}

fn drain_conf(dir: &Path) -> PathBuf {
    let conf = dir.join("fluent.conf");
    std::fs::write(
        &conf,
        "<system>\n  root_dir ./root\n</system>\n<match t>\n  @type file\n  @id out1\n  path ./out/o\n  append true\n  <buffer time>\n    @type file\n    path ./buf\n    timekey 1d\n    flush_mode interval\n    flush_interval 1s\n  </buffer>\n</match>\n",
    )
    .unwrap();
    conf
}

#[test]
fn fluentd_layout_chunks_are_drained_at_start() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let buf = dir.join("buf");
    let a = [0x11; 16];
    let b = [0x22; 16];
    let c = [0x33; 16];
    put_chunk(
        &buf,
        'q',
        a,
        "queued-1\nqueued-2\n",
        Some(fluentd_meta(&a, Some("t"), 2, true)),
    );
    put_chunk(
        &buf,
        'b',
        b,
        "staged-1\n",
        Some(fluentd_meta(&b, None, 1, true)),
    );
    // The old meta format: a bare msgpack map.
    put_chunk(
        &buf,
        'q',
        c,
        "old-1\n",
        Some(fluentd_meta(&c, None, 1, false)),
    );
    let conf = drain_conf(dir);
    let child = start(&conf, dir);
    wait_for("the resumed chunks in the output", || {
        let mut l = lines_under(&dir.join("out"));
        l.sort();
        l == ["old-1", "queued-1", "queued-2", "staged-1"]
    });
    wait_for("the chunk files to be purged", || {
        chunk_files(&buf, "b") + chunk_files(&buf, "q") == 0
    });
    stop(child);
}

#[test]
fn corrupt_chunk_is_moved_aside_and_others_delivered() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let buf = dir.join("buf");
    let good = [0x44; 16];
    let bad = [0x55; 16];
    put_chunk(
        &buf,
        'q',
        good,
        "good-1\n",
        Some(fluentd_meta(&good, None, 1, true)),
    );
    put_chunk(
        &buf,
        'q',
        bad,
        "bad-1\n",
        Some(b"\xc1\x00\x00\x00\x00\x20truncated".to_vec()),
    );
    let conf = drain_conf(dir);
    let child = start(&conf, dir);
    wait_for("the good chunk in the output", || {
        lines_under(&dir.join("out")) == ["good-1"]
    });
    let backup = dir
        .join("root/backup/worker0/out1")
        .join(format!("{}.log", hex(&bad)));
    wait_for("the backup of the corrupt chunk", || backup.exists());
    stop(child);
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), "bad-1\n");
    assert!(!buf.join(format!("buffer.q{}.log", hex(&bad))).exists());
    let err = stderr_text(dir);
    assert!(
        err.contains("found broken chunk file during resume"),
        "{err}"
    );
    assert!(err.contains("bad chunk is moved to"), "{err}");
    assert_eq!(lines_under(&dir.join("out")), ["good-1"]);
}

#[test]
fn msgpack_chunks_written_by_fluentd_decode() {
    use ferrentd::buffer::store::{Backup, ChunkStore};
    use ferrentd::event::Value;
    let d = tempfile::tempdir().unwrap();
    let buf = d.path().join("buf");
    let id = [0x66; 16];
    // [EventTime ext, {"a"=>1}] then [integer time, {"b"=>"x"}].
    let mut data = vec![0x92, 0xd7, 0x00];
    data.extend_from_slice(&1_700_000_000u32.to_be_bytes());
    data.extend_from_slice(&5u32.to_be_bytes());
    data.extend_from_slice(&[0x81, 0xa1, b'a', 0x01]);
    data.extend_from_slice(&[0x92, 0xce]);
    data.extend_from_slice(&1_700_000_001u32.to_be_bytes());
    data.extend_from_slice(&[0x81, 0xa1, b'b', 0xa1, b'x']);
    std::fs::create_dir_all(&buf).unwrap();
    let p = buf.join(format!("buffer.q{}.log", hex(&id)));
    std::fs::write(&p, &data).unwrap();
    std::fs::write(
        format!("{}.meta", p.display()),
        fluentd_meta(&id, Some("app"), 2, true),
    )
    .unwrap();

    let root = ferrentd::config_parser::parse_str(
        &format!("<buffer>\n  path {}\n</buffer>\n", buf.display()),
        Path::new("t.conf"),
        &Default::default(),
    )
    .unwrap();
    let conf = &root.elements[0];
    let c: ferrentd::buffer::BufferConf = ferrentd::plugins::PluginContext::for_tests()
        .configure(conf, "buffer")
        .unwrap();
    let store = ferrentd::plugins::buf_file::FileStore::configure(&c, None, None, None).unwrap();
    let mut r = store.resume(&Backup::new(Some(d.path()), "x", false));
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].metadata.tag.as_deref(), Some("app"));
    assert_eq!(r[0].records, 2);
    let chunk = ferrentd::buffer::Chunk {
        unique_id: r[0].unique_id,
        metadata: r[0].metadata.clone(),
        records: r[0].records,
        created: r[0].created,
        data: r[0].chunk.load().unwrap(),
    };
    let entries = chunk.entries().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[0].0,
        ferrentd::event::EventTime::new(1_700_000_000, 5)
    );
    assert_eq!(entries[0].1.get("a"), Some(&Value::Int(1)));
    assert_eq!(
        entries[1].0,
        ferrentd::event::EventTime::new(1_700_000_001, 0)
    );
    assert_eq!(entries[1].1.get("b"), Some(&Value::str("x")));
}

#[test]
fn a_file_chunk_whose_write_fails_is_retried_and_then_delivered() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let buf = dir.join("buf");
    // The chunk's output directory (`out/${tag}`) cannot be created while a plain file has
    // its name.
    std::fs::create_dir_all(dir.join("out")).unwrap();
    std::fs::write(dir.join("out/t"), "in the way").unwrap();
    put_chunk(
        &buf,
        'q',
        [0x44; 16],
        "r-1\nr-2\nr-3\n",
        Some(fluentd_meta(&[0x44; 16], Some("t"), 3, true)),
    );
    let conf = dir.join("fluent.conf");
    std::fs::write(
        &conf,
        "<match t>\n  @type file\n  path ./out/${tag}/o\n  append true\n  <buffer tag,time>\n    @type file\n    path ./buf\n    timekey 1d\n    flush_mode interval\n    flush_interval 1s\n    retry_wait 0.2s\n    retry_randomize false\n  </buffer>\n</match>\n",
    )
    .unwrap();
    let child = start(&conf, dir);
    wait_for("a failed write", || {
        stderr_text(dir).contains("failed to flush the buffer")
    });
    assert_eq!(chunk_files(&buf, "q"), 1, "the chunk stays queued");
    std::fs::remove_file(dir.join("out/t")).unwrap();
    wait_for("the chunk in the output", || {
        lines_under(&dir.join("out/t")) == ["r-1", "r-2", "r-3"]
    });
    wait_for("the chunk file to be purged", || {
        chunk_files(&buf, "q") == 0
    });
    stop(child);
    assert!(
        stderr_text(dir).contains("retry succeeded"),
        "{}",
        stderr_text(dir)
    );
}

/// `@type file_single`: one `fsb.<tag>.b<id>.buf` file per chunk and no `.meta`; after a
/// `kill -9` the next run resumes the chunks (tag from the file name) and delivers them.
#[test]
fn buf_file_single_resumes_after_kill_9() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let n = 500;
    let mut input = String::new();
    for i in 0..n {
        input.push_str(&format!("{{\"n\":{i}}}\n"));
    }
    std::fs::write(dir.join("input.log"), &input).unwrap();
    let conf = dir.join("fluent.conf");
    let write_conf = |flush: &str| {
        std::fs::write(
            &conf,
            format!(
                "<source>\n  @type tail\n  path ./input.log\n  pos_file ./input.pos\n  tag app.web\n  read_from_head true\n  <parse>\n    @type json\n  </parse>\n</source>\n<match app.**>\n  @type file\n  path ./out/${{tag}}\n  append true\n  <format>\n    @type json\n  </format>\n  <buffer tag,time>\n    timekey 1d\n    @type file_single\n    path ./fsb\n    flush_mode interval\n    flush_interval {flush}\n  </buffer>\n</match>\n"
            ),
        )
        .unwrap();
    };
    write_conf("1h");
    let c = start(&conf, dir);
    let size = input.len() as u64;
    wait_for("the input to be read and buffered", || {
        std::fs::read_to_string(dir.join("input.pos"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .next()
                    .and_then(|l| l.split('\t').nth(1).map(|h| u64::from_str_radix(h, 16)))
            })
            .and_then(Result::ok)
            == Some(size)
    });
    let names: Vec<String> = std::fs::read_dir(dir.join("fsb"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.is_empty());
    for name in &names {
        assert!(
            name.starts_with("fsb.app.web.b") && name.ends_with(".buf"),
            "{names:?}"
        );
    }
    let mut c = c;
    c.kill().unwrap();
    c.wait().unwrap();

    write_conf("1s");
    let c = start(&conf, dir);
    let want: BTreeSet<i64> = (0..n).collect();
    wait_for("every line in the output", || {
        let got: BTreeSet<i64> = lines_under(&dir.join("out"))
            .iter()
            .filter_map(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v["n"].as_i64())
            })
            .collect();
        got == want
    });
    stop(c);
    // The resumed chunk kept its tag (the time slot is not kept, as in Fluentd).
    assert!(std::fs::read_dir(dir.join("out"))
        .unwrap()
        .flatten()
        .all(|e| e.file_name().to_string_lossy().starts_with("app.web.")));
    assert_eq!(lines_under(&dir.join("out")).len(), n as usize);
    assert_eq!(std::fs::read_dir(dir.join("fsb")).unwrap().count(), 0);
}
