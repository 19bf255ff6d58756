//! Child processes of the exec plugins (in_exec, out_exec, out_exec_filter), as Fluentd's
//! `child_process` helper runs them: the command goes through `/bin/sh -c`, stdin/stdout are
//! pipes when asked for, and a child is always reaped. Stopping one sends SIGTERM, waits, then
//! SIGKILL — only to the PID this module spawned and has not reaped yet.

use std::io;
use std::process::{Child as StdChild, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Where the child's stderr goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stderr {
    /// `/dev/null` (Fluentd's `stderr: :discard`).
    Discard,
    /// Into the child's stdout (`:connect`).
    Connect,
}

/// How to start a command.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// A pipe to the child's stdin (else `/dev/null`).
    pub write: bool,
    /// A pipe from the child's stdout (else it shares ferrentd's stdout, as Fluentd's `mode: []`).
    pub read: bool,
    pub stderr: Stderr,
}

/// Fluentd's `child_process_kill_timeout` / exit wait: how long a child gets after SIGTERM.
pub const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// A running (or exited, not yet dropped) child process.
pub struct Child {
    inner: Mutex<StdChild>,
    pid: u32,
    command: String,
}

/// The pipes of a spawned child, as asked for in [`Options`].
pub struct Pipes {
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<ChildStdout>,
}

/// Starts `command` (a shell command line) with `args` appended, separated by spaces as
/// Fluentd builds `"#{command} #{path}"`.
pub fn spawn(command: &str, args: &[&str], opts: Options) -> io::Result<(Child, Pipes)> {
    let mut line = command.to_string();
    for a in args {
        line.push(' ');
        line.push_str(a);
    }
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(&line);
    cmd.stdin(if opts.write {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(if opts.read {
        Stdio::piped()
    } else {
        Stdio::inherit()
    });
    match opts.stderr {
        Stderr::Discard => {
            cmd.stderr(Stdio::null());
        }
        Stderr::Connect => {
            // SAFETY: `dup2` in the forked child before exec; both descriptors are the child's.
            unsafe {
                use std::os::unix::process::CommandExt;
                cmd.pre_exec(|| {
                    if libc::dup2(1, 2) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
    }
    let mut child = cmd.spawn()?;
    let pipes = Pipes {
        stdin: child.stdin.take(),
        stdout: child.stdout.take(),
    };
    let pid = child.id();
    Ok((
        Child {
            inner: Mutex::new(child),
            pid,
            command: line,
        },
        pipes,
    ))
}

impl Child {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The command line as run.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// The exit status, if the child has exited (reaping it).
    pub fn try_wait(&self) -> Option<ExitStatus> {
        self.inner.lock().try_wait().ok().flatten()
    }

    /// Waits up to `d` for the child to exit.
    pub fn wait_timeout(&self, d: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + d;
        let mut pause = Duration::from_millis(2);
        loop {
            if let Some(s) = self.try_wait() {
                return Some(s);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL. Returns the exit status.
    pub fn terminate(&self, grace: Duration) -> Option<ExitStatus> {
        {
            let mut c = self.inner.lock();
            if let Ok(Some(s)) = c.try_wait() {
                return Some(s);
            }
            // Not reaped yet, so the PID is still this child's.
            // SAFETY: plain kill(2) on our own child's PID.
            unsafe {
                libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
            }
        }
        if let Some(s) = self.wait_timeout(grace) {
            return Some(s);
        }
        let mut c = self.inner.lock();
        if let Ok(Some(s)) = c.try_wait() {
            return Some(s);
        }
        tracing::warn!(
            "killing child process pid={} command={:?} with SIGKILL",
            self.pid,
            self.command
        );
        let _ = c.kill();
        c.wait().ok()
    }
}

impl Drop for Child {
    /// A child is never left running or unreaped.
    fn drop(&mut self) {
        let c = self.inner.get_mut();
        if let Ok(None) = c.try_wait() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// How Fluentd's helper describes an exit in its logs: `code` or `signal`.
pub fn describe(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("status={c}"),
        (None, Some(s)) => format!("signal={s}"),
        _ => "status=unknown".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn pipes_both_ways_and_reaps() {
        let (child, mut p) = spawn(
            "tr a-z A-Z",
            &[],
            Options {
                write: true,
                read: true,
                stderr: Stderr::Discard,
            },
        )
        .unwrap();
        let mut w = p.stdin.take().unwrap();
        w.write_all(b"hello\n").unwrap();
        drop(w);
        let mut out = String::new();
        p.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(out, "HELLO\n");
        let st = child.wait_timeout(Duration::from_secs(10)).unwrap();
        assert!(st.success());
    }

    #[test]
    fn args_are_appended_and_stderr_connects() {
        let (child, mut p) = spawn(
            "echo",
            &["x", "y;", "echo err >&2"],
            Options {
                write: false,
                read: true,
                stderr: Stderr::Connect,
            },
        )
        .unwrap();
        let mut out = String::new();
        p.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(out, "x y\nerr\n");
        assert!(child.wait_timeout(Duration::from_secs(10)).is_some());
    }

    #[test]
    fn terminate_stops_a_sleeping_child() {
        let (child, _p) = spawn(
            "exec sleep 30",
            &[],
            Options {
                write: false,
                read: true,
                stderr: Stderr::Discard,
            },
        )
        .unwrap();
        let st = child.terminate(Duration::from_secs(10)).unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(st.signal(), Some(libc::SIGTERM));
        assert_eq!(describe(&st), "signal=15");
        // A second terminate does not signal a reaped PID.
        assert!(child.terminate(Duration::from_secs(1)).is_some());
    }
}
