//! `"#{...}"` in double-quoted config values: evaluated once at load by the shared Ruby
//! evaluator (`crate::ruby`), with Fluentd's context (`hostname`, `worker_id`, `use_nil`,
//! `use_default`).

use super::ParseOptions;

pub use crate::ruby::Evaluated;

/// Evaluates `code`; the error names the expression and carries the byte offset in `code` it
/// refers to.
pub fn eval(code: &str, opts: &ParseOptions) -> Result<Evaluated, (String, usize)> {
    crate::ruby::eval_config(code, &opts.hostname, &opts.worker_id)
        .map_err(|(m, at)| (format!("{m} in \"#{{{code}}}\""), at.min(code.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(code: &str) -> Result<Evaluated, String> {
        let opts = ParseOptions {
            hostname: "host1".into(),
            worker_id: "0".into(),
        };
        eval(code, &opts).map_err(|e| e.0)
    }

    fn s(v: &str) -> Result<Evaluated, String> {
        Ok(Evaluated::Str(v.into()))
    }

    #[test]
    fn env_forms() {
        std::env::set_var("FERRENTD_RUBY_T", "set");
        std::env::remove_var("FERRENTD_RUBY_UNSET");
        assert_eq!(ev("ENV['FERRENTD_RUBY_T']"), s("set"));
        assert_eq!(ev("ENV[\"FERRENTD_RUBY_T\"]"), s("set"));
        assert_eq!(ev("ENV['FERRENTD_RUBY_UNSET']"), s(""));
        assert_eq!(ev("ENV.fetch('FERRENTD_RUBY_UNSET', 'dflt')"), s("dflt"));
        assert_eq!(ev("ENV.fetch('FERRENTD_RUBY_T', 'dflt')"), s("set"));
        assert_eq!(ev("ENV.fetch('FERRENTD_RUBY_UNSET') { 'blk' }"), s("blk"));
        assert_eq!(
            ev("ENV.fetch('FERRENTD_RUBY_UNSET') { |k| k.downcase }"),
            s("ferrentd_ruby_unset")
        );
        assert_eq!(ev("ENV['FERRENTD_RUBY_UNSET'] || 'd'"), s("d"));
        let e = ev("ENV.fetch('FERRENTD_RUBY_UNSET')").unwrap_err();
        assert!(
            e.contains("KeyError: key not found: \"FERRENTD_RUBY_UNSET\""),
            "{e}"
        );
    }

    #[test]
    fn hostname_worker_and_specials() {
        assert_eq!(ev("Socket.gethostname"), s("host1"));
        assert_eq!(ev("hostname"), s("host1"));
        assert_eq!(ev("worker_id"), s("0"));
        assert_eq!(ev("use_nil"), Ok(Evaluated::Nil));
        assert_eq!(ev("use_default"), Ok(Evaluated::Default));
    }

    #[test]
    fn arithmetic_strings_and_methods() {
        assert_eq!(ev("1 + 2"), s("3"));
        assert_eq!(ev("2 * (3 + 4) - 1"), s("13"));
        assert_eq!(ev("7 / 2"), s("3"));
        assert_eq!(ev("'abc'.upcase"), s("ABC"));
        assert_eq!(ev("'a' + 'b'"), s("ab"));
        assert_eq!(ev("'42'.to_i + 1"), s("43"));
        assert_eq!(ev("1 == 1 ? 'y' : 'n'"), s("y"));
        assert_eq!(ev("1.5 + 1"), s("2.5"));
        assert_eq!(ev("[1, 'a', nil]"), s("[1, \"a\", nil]"));
        assert_eq!(ev("nil"), s(""));
    }

    #[test]
    fn unsupported_expressions_name_themselves() {
        let e = ev("system('rm -rf /')").unwrap_err();
        assert!(e.contains("system('rm -rf /')"), "{e}");
        let e = ev("'x'.frobnicate").unwrap_err();
        assert!(e.contains("undefined method 'frobnicate'"), "{e}");
        let e = ev("'x'.keys").unwrap_err();
        assert!(
            e.contains("undefined method `keys' for \"x\":String"),
            "{e}"
        );
        assert!(ev("Foo.bar")
            .unwrap_err()
            .contains("uninitialized constant Foo"));
        assert!(ev("1 +").unwrap_err().contains("syntax error"));
        assert!(ev("1 / 0").unwrap_err().contains("ZeroDivisionError"));
    }
}
