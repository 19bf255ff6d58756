//! What every parser shares: the common `<parse>` parameters (time_key, time_format, types,
//! null_value_pattern, ...) and the conversion of parsed fields.
