//! in_tail against real rotation: rename-and-create while writing, copytruncate, deletion of an
//! open file, restarts from our own and from a Fluentd-written pos file. Every test counts lines
//! exactly: each written line is emitted once, none twice.

mod tail_support;

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use tail_support::*;

#[test]
fn rename_and_create_rotation_while_writing() {
    let (_d, dir) = tempdir();
    let log = dir.join("app.log");
    let conf = config(
        &log.display().to_string(),
        &dir.join("app.pos"),
        "  read_from_head true\n  rotate_wait 5",
    );
    let mut d = Daemon::start(&dir, &conf);
    let before = numbered("before", 0..3000);
    let late = numbered("late", 0..200);
    let after = numbered("after", 0..2000);
    // The writer appends in small batches while ferrentd reads.
    let mut old = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    for chunk in before.chunks(100) {
        use std::io::Write;
        old.write_all((chunk.join("\n") + "\n").as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    d.wait_lines(1);
    std::fs::rename(&log, dir.join("app.log.1")).unwrap();
    {
        // An application keeps writing to its old handle for a moment after the rename.
        use std::io::Write;
        old.write_all((late.join("\n") + "\n").as_bytes()).unwrap();
    }
    for chunk in after.chunks(100) {
        append(&log, chunk);
        std::thread::sleep(Duration::from_millis(2));
    }
    let all: Vec<String> = [before, late, after].concat();
    d.wait_until("all lines", |l| has_all(l, &all));
    let got = d.stop();
    assert_exactly(&got, &all);
}

#[test]
fn copytruncate_rotation() {
    let (_d, dir) = tempdir();
    let log = dir.join("app.log");
    let conf = config(
        &log.display().to_string(),
        &dir.join("app.pos"),
        "  read_from_head true",
    );
    let before = numbered("before", 0..1000);
    append(&log, &before);
    let mut d = Daemon::start(&dir, &conf);
    d.wait_until("first batch", |l| has_all(l, &before));
    // logrotate's copytruncate: copy, truncate in place, the writer goes on appending.
    std::fs::copy(&log, dir.join("app.log.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    let after = numbered("after", 0..300);
    append(&log, &after);
    let all: Vec<String> = [before, after].concat();
    d.wait_until("lines after truncation", |l| has_all(l, &all));
    d.wait_stderr("detected file truncation");
    let got = d.stop();
    assert_exactly(&got, &all);
}

#[test]
fn deleted_while_open_is_read_to_its_end_then_released() {
    let (_d, dir) = tempdir();
    let log = dir.join("app.log");
    let pos = dir.join("app.pos");
    let conf = config(
        &log.display().to_string(),
        &pos,
        "  read_from_head true\n  rotate_wait 1",
    );
    let first = numbered("first", 0..500);
    append(&log, &first);
    let mut d = Daemon::start(&dir, &conf);
    d.wait_until("first batch", |l| has_all(l, &first));
    // Append and delete at once: the data is only reachable through the open handle.
    let second = numbered("second", 0..5000);
    append(&log, &second);
    std::fs::remove_file(&log).unwrap();
    let all: Vec<String> = [first, second].concat();
    d.wait_until("all lines", |l| has_all(l, &all));
    // After rotate_wait the entry is marked unwatched, as Fluentd does.
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(&pos).unwrap_or_default();
        if text.contains("\tffffffffffffffff\t") {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "pos entry not released: {text:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = d.stop();
    assert_exactly(&got, &all);
}

#[test]
fn restart_resumes_from_pos_file_without_loss_or_repeat() {
    let (_d, dir) = tempdir();
    let log = dir.join("app.log");
    let conf = config(
        &log.display().to_string(),
        &dir.join("app.pos"),
        "  read_from_head true",
    );
    let all = numbered("l", 0..40000);
    append(&log, &all[..1000]);
    let mut d = Daemon::start(&dir, &conf);
    // Stop while a writer is appending, mid-stream.
    let writer = {
        let log = log.clone();
        let rest = all[1000..30000].to_vec();
        std::thread::spawn(move || {
            for chunk in rest.chunks(500) {
                append(&log, chunk);
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    d.wait_lines(2000);
    let mut got = d.stop();
    writer.join().unwrap();
    append(&log, &all[30000..]);
    let mut d = Daemon::start(&dir, &conf);
    let seen = got.clone();
    d.wait_until("the rest", |l| {
        let both: Vec<Vec<u8>> = seen.iter().chain(l.iter()).cloned().collect();
        has_all(&both, &all)
    });
    got.extend(d.stop());
    assert_exactly(&got, &all);
}

#[test]
fn restart_from_a_fluentd_written_pos_file() {
    let (_d, dir) = tempdir();
    let log = dir.join("app.log");
    let pos = dir.join("app.pos");
    let lines = numbered("f", 0..10);
    append(&log, &lines);
    let ino = std::fs::metadata(&log).unwrap().ino();
    let offset = (lines[..4].iter().map(|l| l.len() + 1).sum::<usize>()) as u64;
    // As Fluentd leaves it: an unwatched entry, and a duplicate whose last line wins.
    let p = log.display();
    std::fs::write(
        &pos,
        format!(
            "{dir}/gone.log\tffffffffffffffff\t0000000000001234\n{p}\t{:016x}\t{ino:016x}\n{dir}/other.log\t0000000000000010\t0000000000000099\n{p}\t{offset:016x}\t{ino:016x}\n",
            0,
            dir = dir.display()
        ),
    )
    .unwrap();
    // read_from_head does not override a recorded position.
    let conf = config(&p.to_string(), &pos, "  read_from_head true");
    let mut d = Daemon::start(&dir, &conf);
    d.wait_until("lines after the recorded offset", |l| {
        has_all(l, &lines[4..])
    });
    let got = d.stop();
    assert_exactly(&got, &lines[4..]);
    // Compacted on load: the unwatched entry and the older duplicate are gone.
    let size = std::fs::metadata(&log).unwrap().len();
    assert_eq!(
        std::fs::read_to_string(&pos).unwrap(),
        format!(
            "{dir}/other.log\t0000000000000010\t0000000000000099\n{p}\t{size:016x}\t{ino:016x}\n",
            dir = dir.display()
        )
    );
}

#[test]
fn pos_entry_for_another_inode_means_rotated_while_down() {
    let (_d, dir) = tempdir();
    let log = dir.join("app.log");
    let pos = dir.join("app.pos");
    let lines = numbered("r", 0..20);
    append(&log, &lines);
    let ino = std::fs::metadata(&log).unwrap().ino();
    std::fs::write(
        &pos,
        format!("{}\t0000000000000050\t{:016x}\n", log.display(), ino + 1),
    )
    .unwrap();
    // Without read_from_head a new file would be tailed from its end; a recorded different
    // inode means this is the rotated-in file, read from the head as Fluentd does.
    let conf = config(&log.display().to_string(), &pos, "");
    let mut d = Daemon::start(&dir, &conf);
    d.wait_until("all lines", |l| has_all(l, &lines));
    let got = d.stop();
    assert_exactly(&got, &lines);
}

#[test]
fn glob_with_follow_inodes_does_not_reread_the_renamed_file() {
    let (_d, dir) = tempdir();
    let log = dir.join("app.log");
    let pattern = format!("{}/app.log*", dir.display());
    let conf = config(
        &pattern,
        &dir.join("app.pos"),
        "  read_from_head true\n  follow_inodes true\n  rotate_wait 1",
    );
    let before = numbered("b", 0..500);
    append(&log, &before);
    let mut d = Daemon::start(&dir, &conf);
    d.wait_until("first batch", |l| has_all(l, &before));
    std::fs::rename(&log, dir.join("app.log.1")).unwrap();
    let after = numbered("a", 0..500);
    append(&log, &after);
    let all: Vec<String> = [before, after].concat();
    d.wait_until("lines of the new file", |l| has_all(l, &all));
    // Give the refresh (1 s) time to find app.log.1 and rotate_wait to pass; a re-read of the
    // renamed file would show up as repeated lines.
    let seen_at = Instant::now();
    let ext = numbered("x", 0..10);
    while seen_at.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(100));
    }
    append(&log, &ext);
    let all: Vec<String> = [all, ext].concat();
    d.wait_until("later lines", |l| has_all(l, &all));
    let got = d.stop();
    assert_exactly(&got, &all);
}
