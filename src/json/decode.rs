//! See the module documentation in mod.rs.
