//! Liveness and readiness for probes: ready once every output and input started, not ready
//! while a reload is being applied or the process is stopping.

use std::sync::atomic::{AtomicU8, Ordering};

const STARTING: u8 = 0;
const READY: u8 = 1;
const RELOADING: u8 = 2;
const STOPPING: u8 = 3;

static STATE: AtomicU8 = AtomicU8::new(STARTING);

pub fn set_ready() {
    STATE.store(READY, Ordering::SeqCst);
}

pub fn set_reloading() {
    STATE.store(RELOADING, Ordering::SeqCst);
}

pub fn set_stopping() {
    STATE.store(STOPPING, Ordering::SeqCst);
}

pub fn state() -> &'static str {
    match STATE.load(Ordering::SeqCst) {
        READY => "ready",
        RELOADING => "reloading",
        STOPPING => "stopping",
        _ => "starting",
    }
}

/// `/healthz` (alive while the process answers) and `/readyz`; `None` for other paths.
pub fn respond(path: &str) -> Option<(u16, String)> {
    match path {
        "/healthz" | "/livez" => Some((200, "ok\n".to_string())),
        "/readyz" => {
            let s = state();
            let code = if s == "ready" { 200 } else { 503 };
            Some((code, format!("{s}\n")))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_follows_the_state() {
        assert_eq!(respond("/healthz"), Some((200, "ok\n".to_string())));
        assert_eq!(respond("/other"), None);
        set_reloading();
        assert_eq!(respond("/readyz"), Some((503, "reloading\n".to_string())));
        set_ready();
        assert_eq!(respond("/readyz"), Some((200, "ready\n".to_string())));
    }
}
