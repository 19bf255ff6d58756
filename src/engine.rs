//! Builds the event graph from a config and runs it.
