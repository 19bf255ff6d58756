//! Small helpers shared across modules.

/// The machine's hostname, as Ruby's `Socket.gethostname`.
pub fn hostname() -> String {
    hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".to_string())
}
