//! v0 compatibility rewrites.
