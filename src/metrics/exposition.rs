//! The Prometheus text exposition format (version 0.0.4), written by hand so names, help
//! texts and label order are exactly fluent-plugin-prometheus's.

use std::fmt::Write;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Default)]
pub struct Exposition {
    pub out: String,
}

fn escape_help(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_label(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// A sample value as Prometheus parsers read it.
pub fn format_value(v: f64, out: &mut String) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{v:?}");
    }
}

impl Exposition {
    pub fn family(&mut self, name: &str, help: &str, kind: &str) {
        let _ = write!(self.out, "# HELP {name} ");
        escape_help(help, &mut self.out);
        let _ = writeln!(self.out, "\n# TYPE {name} {kind}");
    }

    pub fn sample<K: AsRef<str>, V: AsRef<str>>(&mut self, name: &str, labels: &[(K, V)], v: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k.as_ref());
                self.out.push_str("=\"");
                escape_label(val.as_ref(), &mut self.out);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        format_value(v, &mut self.out);
        self.out.push('\n');
    }
}

/// Keeps only what a metric or label name may contain.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_help_and_label_values() {
        let mut e = Exposition::default();
        e.family("m", "a \\ b\nc", "gauge");
        e.sample("m", &[("path", "/a\"b\\c\n")], 3.0);
        assert_eq!(
            e.out,
            "# HELP m a \\\\ b\\nc\n# TYPE m gauge\nm{path=\"/a\\\"b\\\\c\\n\"} 3.0\n"
        );
    }

    #[test]
    fn names() {
        assert!(valid_name("fluentd_tail_file_position"));
        assert!(!valid_name("1abc"));
        assert!(!valid_name("a-b"));
    }
}
