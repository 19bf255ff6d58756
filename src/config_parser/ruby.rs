//! Embedded Ruby `"#{...}"`.
