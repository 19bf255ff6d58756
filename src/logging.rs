//! ferrentd's own log, in Fluentd's line format.
