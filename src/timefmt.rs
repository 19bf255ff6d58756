//! strftime-style time formatting (Ruby's Time#strftime, with %N, %L, %z).
