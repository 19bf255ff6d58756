//! Running the release binary on a temp dir for in_tail tests: stdout collected as lines,
//! stderr kept for warnings, bounded waits with deadlines, stop by SIGTERM to our own child.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const DEADLINE: Duration = Duration::from_secs(40);

/// The binary under test; `FERRENTD_BIN` overrides it (as for the conformance runner).
pub fn bin() -> String {
    std::env::var("FERRENTD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_ferrentd").to_string())
}

/// A `<source>` tailing `paths` with `@type none` (plus `extra` lines) → stdout, one message
/// per line.
pub fn config(paths: &str, pos: &Path, extra: &str) -> String {
    format!(
        "<source>\n  @type tail\n  path {paths}\n  pos_file {}\n  tag t\n  refresh_interval 1\n{extra}\n  <parse>\n    @type none\n  </parse>\n</source>\n<match t>\n  @type stdout\n  <format>\n    @type single_value\n  </format>\n</match>\n",
        pos.display()
    )
}

pub struct Daemon {
    child: Option<Child>,
    out: Arc<Mutex<Vec<Vec<u8>>>>,
    err: Arc<Mutex<Vec<u8>>>,
}

impl Daemon {
    pub fn start(dir: &Path, conf: &str) -> Daemon {
        Self::start_with(dir, conf, |_| {})
    }

    pub fn start_with(dir: &Path, conf: &str, tweak: impl FnOnce(&mut Command)) -> Daemon {
        Self::try_start(dir, conf, tweak).expect("ferrentd starts")
    }

    pub fn try_start(
        dir: &Path,
        conf: &str,
        tweak: impl FnOnce(&mut Command),
    ) -> std::io::Result<Daemon> {
        let path = dir.join("fluent.conf");
        std::fs::write(&path, conf)?;
        let mut cmd = Command::new(bin());
        cmd.arg("-c")
            .arg(&path)
            .current_dir(dir)
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        tweak(&mut cmd);
        let mut child = cmd.spawn()?;
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        if let Some(stdout) = child.stdout.take() {
            let out = out.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(stdout);
                loop {
                    let mut line = Vec::new();
                    match r.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if line.last() == Some(&b'\n') {
                                line.pop();
                            }
                            out.lock().unwrap().push(line);
                        }
                    }
                }
            });
        }
        if let Some(mut stderr) = child.stderr.take() {
            let err = err.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match stderr.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => err.lock().unwrap().extend_from_slice(&buf[..n]),
                    }
                }
            });
        }
        Ok(Daemon {
            child: Some(child),
            out,
            err,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    pub fn lines(&self) -> Vec<Vec<u8>> {
        self.out.lock().unwrap().clone()
    }

    pub fn text_lines(&self) -> Vec<String> {
        self.lines()
            .into_iter()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
            .collect()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().unwrap()).into_owned()
    }

    fn still_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Waits until `done(lines)` holds; panics with stderr at the deadline or if the process
    /// exits.
    pub fn wait_until(&mut self, what: &str, mut done: impl FnMut(&[Vec<u8>]) -> bool) {
        let start = Instant::now();
        loop {
            if done(&self.lines()) {
                return;
            }
            if !self.still_running() {
                panic!(
                    "ferrentd exited while waiting for {what}; {} lines; stderr:\n{}",
                    self.lines().len(),
                    self.stderr()
                );
            }
            if start.elapsed() > DEADLINE {
                panic!(
                    "timed out waiting for {what}; {} lines; stderr:\n{}",
                    self.lines().len(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn wait_lines(&mut self, n: usize) {
        self.wait_until(&format!("{n} lines"), |l| l.len() >= n);
    }

    pub fn wait_stderr(&mut self, needle: &str) {
        let start = Instant::now();
        while !self.stderr().contains(needle) {
            if start.elapsed() > DEADLINE || !self.still_running() {
                panic!("no {needle:?} in stderr:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then waits for the exit; returns all stdout lines.
    pub fn stop(mut self) -> Vec<Vec<u8>> {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling the child process this test started.
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
            }
            let status = c.wait().expect("ferrentd exits");
            assert!(
                status.success(),
                "exit {status:?}; stderr:\n{}",
                self.stderr()
            );
        }
        // The reader threads finish at EOF; give them a moment to drain the pipe.
        let start = Instant::now();
        while Arc::strong_count(&self.out) > 1 && start.elapsed() < DEADLINE {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.lines()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn numbered(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}-{i:06}")).collect()
}

pub fn append(path: &Path, lines: &[String]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut body = String::new();
    for l in lines {
        body.push_str(l);
        body.push('\n');
    }
    f.write_all(body.as_bytes()).unwrap();
}

/// Asserts that `got` holds each of `want` exactly once and nothing else.
pub fn assert_exactly(got: &[Vec<u8>], want: &[String]) {
    let got: Vec<String> = got
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    let mut seen = std::collections::HashMap::new();
    for l in &got {
        *seen.entry(l.clone()).or_insert(0) += 1;
    }
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(dups.is_empty(), "repeated lines: {dups:?}");
    let missing: Vec<_> = want
        .iter()
        .filter(|w| !seen.contains_key(*w))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "missing lines (of {}): {missing:?}",
        want.len()
    );
    assert_eq!(got.len(), want.len(), "unexpected extra lines");
}

pub fn has_all(lines: &[Vec<u8>], want: &[String]) -> bool {
    let set: std::collections::HashSet<&[u8]> = lines.iter().map(|l| l.as_slice()).collect();
    want.iter().all(|w| set.contains(w.as_bytes()))
}

pub fn tempdir() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().to_path_buf();
    (d, p)
}
