//! record_accessor syntax: `key`, `$.a.b`, `$['a']['b']`, `$.arr[0]`.
