//! Time parsing for parsers: strptime formats, %iso8601, time_type, timezones.
