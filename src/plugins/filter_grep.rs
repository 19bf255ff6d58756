//! `@type grep` (filter): keeps or drops events by regular expressions on record fields.
//!
//! Conditions are grouped as Fluentd groups them: top-level `<regexp>`s (and the legacy
//! `regexpN`) and `<and>` regexps must all match; `<or>` regexps need one match; `<and>`
//! excludes drop when all match; top-level `<exclude>`s (and `excludeN`) and `<or>` excludes
//! drop when any matches. Values are matched on their Ruby `to_s` (a missing key is `""`).

use std::borrow::Cow;

use serde::Deserialize;

use super::{Filter, PluginContext};
use crate::config_parser::types::{Regexp, RubyRegex};
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventStream, Record, Value};
use crate::record_accessor::{DigError, RecordAccessor};

#[derive(Deserialize)]
struct ExprConf {
    key: String,
    pattern: Regexp,
}

#[derive(Deserialize)]
struct GroupConf {
    #[serde(default)]
    regexp: Vec<ExprConf>,
    #[serde(default)]
    exclude: Vec<ExprConf>,
}

/// Declares the config struct with the deprecated flat `regexp1..20` / `exclude1..20`.
macro_rules! grep_conf {
    ($(($r:ident, $e:ident)),* $(,)?) => {
        #[derive(Deserialize)]
        struct GrepConf {
            #[serde(default)]
            regexp: Vec<ExprConf>,
            #[serde(default)]
            exclude: Vec<ExprConf>,
            #[serde(default, rename = "and")]
            and_conditions: Vec<GroupConf>,
            #[serde(default, rename = "or")]
            or_conditions: Vec<GroupConf>,
            $(
                #[serde(default)]
                $r: Option<String>,
                #[serde(default)]
                $e: Option<String>,
            )*
        }

        impl GrepConf {
            fn legacy_regexps(&self) -> Vec<Option<&str>> {
                vec![$(self.$r.as_deref()),*]
            }
            fn legacy_excludes(&self) -> Vec<Option<&str>> {
                vec![$(self.$e.as_deref()),*]
            }
        }
    };
}

grep_conf!(
    (regexp1, exclude1),
    (regexp2, exclude2),
    (regexp3, exclude3),
    (regexp4, exclude4),
    (regexp5, exclude5),
    (regexp6, exclude6),
    (regexp7, exclude7),
    (regexp8, exclude8),
    (regexp9, exclude9),
    (regexp10, exclude10),
    (regexp11, exclude11),
    (regexp12, exclude12),
    (regexp13, exclude13),
    (regexp14, exclude14),
    (regexp15, exclude15),
    (regexp16, exclude16),
    (regexp17, exclude17),
    (regexp18, exclude18),
    (regexp19, exclude19),
    (regexp20, exclude20),
);

struct Expression {
    accessor: RecordAccessor,
    pattern: RubyRegex,
}

impl Expression {
    fn matches(&self, record: &Record) -> Result<bool, DigError> {
        let value = self.accessor.dig(record)?;
        Ok(self.pattern.is_match(&scrub(ruby_to_s(value))))
    }
}

/// An insertion-ordered set of expressions keyed by the key parameter (a Ruby Hash).
#[derive(Default)]
struct Conditions(Vec<(String, Expression)>);

impl Conditions {
    fn contains(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    fn insert(&mut self, key: &str, expr: Expression) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = expr,
            None => self.0.push((key.to_string(), expr)),
        }
    }

    fn exprs(&self) -> impl Iterator<Item = &Expression> {
        self.0.iter().map(|(_, e)| e)
    }
}

pub struct Grep {
    regexp_and: Conditions,
    regexp_or: Conditions,
    exclude_and: Conditions,
    exclude_or: Conditions,
}

/// Ruby's `to_s` of an optional value, borrowing strings.
pub(crate) fn ruby_to_s(v: Option<&Value>) -> Cow<'_, [u8]> {
    match v {
        None | Some(Value::Nil) => Cow::Borrowed(&[]),
        Some(Value::Str(s)) | Some(Value::Bin(s)) => Cow::Borrowed(s.as_slice()),
        Some(other) => Cow::Owned(other.to_ruby_s()),
    }
}

/// Ruby's `String#scrub('?')`: each invalid UTF-8 sequence becomes `?`.
pub(crate) fn scrub(text: Cow<'_, [u8]>) -> Cow<'_, [u8]> {
    if std::str::from_utf8(&text).is_ok() {
        return text;
    }
    let mut out = Vec::with_capacity(text.len());
    for chunk in text.utf8_chunks() {
        out.extend_from_slice(chunk.valid().as_bytes());
        if !chunk.invalid().is_empty() {
            out.push(b'?');
        }
    }
    Cow::Owned(out)
}

fn accessor(key: &str, elem: &Element) -> Result<RecordAccessor, ConfigError> {
    RecordAccessor::new(key).map_err(|m| elem.error(m))
}

impl Grep {
    fn configure(elem: &Element, ctx: &PluginContext) -> Result<Grep, ConfigError> {
        let conf: GrepConf = ctx.configure(elem, "grep")?;

        let legacy = |list: Vec<Option<&str>>,
                      name: &str|
         -> Result<Vec<(String, RubyRegex)>, ConfigError> {
            let mut out: Vec<(String, RubyRegex)> = Vec::new();
            for (i, v) in list.into_iter().enumerate() {
                let Some(v) = v else { continue };
                let param = format!("{name}{}", i + 1);
                let at = |m: String| match elem.param(&param) {
                    Some(p) => ConfigError::at(m, &p.span),
                    None => elem.error(m),
                };
                let Some((key, pattern)) = v.split_once(' ') else {
                    return Err(at(format!("{param} does not contain 2 parameters")));
                };
                if out.iter().any(|(k, _)| k == key) {
                    return Err(at(format!("{param} contains a duplicated key, {key}")));
                }
                // The flat form compiles the text as is: no /.../ delimiters.
                let re = RubyRegex::new(pattern, "").map_err(|e| at(format!("{param}: {e}")))?;
                out.push((key.to_string(), re));
            }
            Ok(out)
        };
        let rs = legacy(conf.legacy_regexps(), "regexp")?;
        let es = legacy(conf.legacy_excludes(), "exclude")?;

        let mut g = Grep {
            regexp_and: Conditions::default(),
            regexp_or: Conditions::default(),
            exclude_and: Conditions::default(),
            exclude_or: Conditions::default(),
        };

        let expr = |e: &ExprConf, at: &Element| -> Result<Expression, ConfigError> {
            Ok(Expression {
                accessor: accessor(&e.key, at)?,
                pattern: e.pattern.0.clone(),
            })
        };

        for (e, at) in conf.regexp.iter().zip(elem.children("regexp")) {
            if g.regexp_and.contains(&e.key) {
                return Err(at.error(format!("Duplicate key: {}", e.key)));
            }
            g.regexp_and.insert(&e.key, expr(e, at)?);
        }
        for (k, re) in rs {
            g.regexp_and.insert(
                &k,
                Expression {
                    accessor: accessor(&k, elem)?,
                    pattern: re,
                },
            );
        }
        for (e, at) in conf.exclude.iter().zip(elem.children("exclude")) {
            if g.exclude_or.contains(&e.key) {
                return Err(at.error(format!("Duplicate key: {}", e.key)));
            }
            g.exclude_or.insert(&e.key, expr(e, at)?);
        }
        for (k, re) in es {
            g.exclude_or.insert(
                &k,
                Expression {
                    accessor: accessor(&k, elem)?,
                    pattern: re,
                },
            );
        }

        for (group, gelem) in conf.and_conditions.iter().zip(elem.children("and")) {
            if !group.regexp.is_empty() && !group.exclude.is_empty() {
                return Err(gelem.error("Do not specify both <regexp> and <exclude> in <and>"));
            }
            for (e, at) in group.regexp.iter().zip(gelem.children("regexp")) {
                if g.regexp_and.contains(&e.key) {
                    return Err(at.error(format!("Duplicate key in <and>: {}", e.key)));
                }
                g.regexp_and.insert(&e.key, expr(e, at)?);
            }
            for (e, at) in group.exclude.iter().zip(gelem.children("exclude")) {
                if g.exclude_and.contains(&e.key) {
                    return Err(at.error(format!("Duplicate key in <and>: {}", e.key)));
                }
                g.exclude_and.insert(&e.key, expr(e, at)?);
            }
        }
        for (group, gelem) in conf.or_conditions.iter().zip(elem.children("or")) {
            if !group.regexp.is_empty() && !group.exclude.is_empty() {
                return Err(gelem.error("Do not specify both <regexp> and <exclude> in <or>"));
            }
            for (e, at) in group.regexp.iter().zip(gelem.children("regexp")) {
                if g.regexp_or.contains(&e.key) {
                    return Err(at.error(format!("Duplicate key in <or>: {}", e.key)));
                }
                g.regexp_or.insert(&e.key, expr(e, at)?);
            }
            for (e, at) in group.exclude.iter().zip(gelem.children("exclude")) {
                if g.exclude_or.contains(&e.key) {
                    return Err(at.error(format!("Duplicate key in <or>: {}", e.key)));
                }
                g.exclude_or.insert(&e.key, expr(e, at)?);
            }
        }
        Ok(g)
    }

    /// Whether the record is kept. Evaluation order and short-circuits follow Fluentd, so that
    /// an accessor error (digging into a string) surfaces at the same point; Fluentd then
    /// logs it and keeps the record.
    fn keep(&self, record: &Record) -> Result<bool, DigError> {
        for e in self.regexp_and.exprs() {
            if !e.matches(record)? {
                return Ok(false);
            }
        }
        if !self.regexp_or.0.is_empty() {
            let mut any = false;
            for e in self.regexp_or.exprs() {
                if e.matches(record)? {
                    any = true;
                    break;
                }
            }
            if !any {
                return Ok(false);
            }
        }
        if !self.exclude_and.0.is_empty() {
            let mut all = true;
            for e in self.exclude_and.exprs() {
                if !e.matches(record)? {
                    all = false;
                    break;
                }
            }
            if all {
                return Ok(false);
            }
        }
        for e in self.exclude_or.exprs() {
            if e.matches(record)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl Filter for Grep {
    fn filter_stream(&self, _tag: &str, mut es: EventStream) -> EventStream {
        es.events.retain(|e| match self.keep(&e.record) {
            Ok(keep) => keep,
            Err(err) => {
                tracing::warn!("failed to grep events error=\"{}\"", err);
                true
            }
        });
        es
    }
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Filter>, ConfigError> {
    for (name, section) in [("regexp", "<regexp>"), ("exclude", "<exclude>")] {
        for i in 1..=20 {
            if elem.has(&format!("{name}{i}")) {
                tracing::warn!("'{name}{i}' parameter is deprecated: Use {section} section");
            }
        }
    }
    Ok(Box::new(Grep::configure(elem, ctx)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_regexp_n_warns_as_deprecated() {
        let elem = crate::test_util::directive(
            "<filter **>\n@type grep\nregexp1 msg a\nexclude2 msg b\n</filter>",
        );
        let (r, logs) =
            crate::test_util::capture_logs(|| create(&elem, &PluginContext::for_tests()).is_ok());
        assert!(r);
        assert!(logs.contains(
            &"[warn]: 'regexp1' parameter is deprecated: Use <regexp> section".to_string()
        ));
        assert!(logs.contains(
            &"[warn]: 'exclude2' parameter is deprecated: Use <exclude> section".to_string()
        ));
    }
    use crate::event::EventTime;
    use crate::test_util::{directive, json_record};

    fn filter_elem(conf: &str) -> Element {
        directive(&format!("<filter t>\n  @type grep\n{conf}\n</filter>\n"))
    }

    fn grep(conf: &str) -> Result<Box<dyn Filter>, ConfigError> {
        create(&filter_elem(conf), &PluginContext::for_tests())
    }

    /// The five records of the grep cases' input.log.
    const INPUT: &[&str] = &[
        r#"{"level": "info", "msg": "ok", "code": 200}"#,
        r#"{"level": "error", "msg": "disk full", "code": 500}"#,
        r#"{"level": "debug", "msg": "trace x"}"#,
        r#"{"level": "ERROR", "msg": "caps", "code": 503}"#,
        r#"{"msg": "no level"}"#,
    ];

    /// Runs the filter over the input and returns the indexes (0-based) of the kept records.
    fn kept(f: &dyn Filter, input: &[&str]) -> Vec<usize> {
        let mut es = EventStream::new();
        for (i, line) in input.iter().enumerate() {
            let mut r = json_record(line);
            r.insert("__i", Value::Int(i as i64));
            es.push(EventTime::new(1, 0), r);
        }
        f.filter_stream("t", es)
            .events
            .iter()
            .map(|e| match e.record.get("__i") {
                Some(Value::Int(i)) => *i as usize,
                _ => usize::MAX,
            })
            .collect()
    }

    #[test]
    fn case_096_regexp_keeps_matching_and_drops_missing() {
        let f =
            grep("  <regexp>\n    key level\n    pattern /^(info|error)$/\n  </regexp>").unwrap();
        assert_eq!(kept(&*f, INPUT), vec![0, 1]);
    }

    #[test]
    fn case_097_exclude_drops_matching_and_keeps_missing() {
        let f = grep("  <exclude>\n    key level\n    pattern /debug/\n  </exclude>").unwrap();
        assert_eq!(kept(&*f, INPUT), vec![0, 1, 3, 4]);
    }

    #[test]
    fn case_098_several_regexps_are_anded() {
        let f = grep(
            "  <regexp>\n key level\n pattern /error/i\n </regexp>\n <regexp>\n key msg\n pattern /full/\n </regexp>",
        )
        .unwrap();
        assert_eq!(kept(&*f, INPUT), vec![1]);
    }

    #[test]
    fn case_099_or_block() {
        let f = grep(
            "<or>\n<regexp>\nkey level\npattern /^info$/\n</regexp>\n<regexp>\nkey msg\npattern /caps/\n</regexp>\n</or>",
        )
        .unwrap();
        assert_eq!(kept(&*f, INPUT), vec![0, 3]);
    }

    #[test]
    fn case_100_numbers_match_by_string_form() {
        let f = grep("<regexp>\nkey code\npattern /^5\\d\\d$/\n</regexp>").unwrap();
        assert_eq!(kept(&*f, INPUT), vec![1, 3]);
    }

    #[test]
    fn case_101_pattern_without_slashes() {
        let f = grep("<regexp>\nkey msg\npattern ^(ok|caps)$\n</regexp>").unwrap();
        assert_eq!(kept(&*f, INPUT), vec![0, 3]);
    }

    #[test]
    fn case_102_nested_key() {
        let f = grep("<regexp>\nkey $.k8s.ns\npattern /^prod/\n</regexp>").unwrap();
        let input = [
            r#"{"k8s": {"ns": "prod-1"}, "i": 1}"#,
            r#"{"k8s": {"ns": "dev"}, "i": 2}"#,
            r#"{"i": 3}"#,
        ];
        assert_eq!(kept(&*f, &input), vec![0]);
    }

    #[test]
    fn case_103_legacy_flat_parameters() {
        let f = grep("  regexp1 level ^(info|error|ERROR)$\n  exclude1 msg caps").unwrap();
        assert_eq!(kept(&*f, INPUT), vec![0, 1]);
    }

    #[test]
    fn and_of_excludes_drops_only_when_all_match() {
        let f = grep(
            "<and>\n<exclude>\nkey level\npattern /error/i\n</exclude>\n<exclude>\nkey code\npattern /^50/\n</exclude>\n</and>",
        )
        .unwrap();
        assert_eq!(kept(&*f, INPUT), vec![0, 2, 4]);
    }

    #[test]
    fn or_of_excludes_drops_when_any_matches() {
        let f = grep(
            "<or>\n<exclude>\nkey level\npattern /debug/\n</exclude>\n<exclude>\nkey code\npattern /^503$/\n</exclude>\n</or>",
        )
        .unwrap();
        assert_eq!(kept(&*f, INPUT), vec![0, 1, 4]);
    }

    #[test]
    fn invalid_utf8_is_scrubbed_before_matching() {
        let f = grep("<regexp>\nkey m\npattern /^a\\?b$/\n</regexp>").unwrap();
        let mut r = Record::new();
        r.insert("m", Value::Str(vec![b'a', 0xff, b'b']));
        let out = f.filter_stream("t", EventStream::one(EventTime::new(1, 0), r));
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn digging_into_a_string_keeps_the_record_as_fluentd_does() {
        let f = grep("<regexp>\nkey $.m.x\npattern /never/\n</regexp>").unwrap();
        let mut r = Record::new();
        r.insert("m", Value::from("text"));
        let out = f.filter_stream("t", EventStream::one(EventTime::new(1, 0), r));
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn case_038_invalid_regexp_is_a_located_config_error() {
        let err = match grep("  <regexp>\n    key message\n    pattern /[unclosed/\n  </regexp>") {
            Err(e) => e,
            Ok(_) => panic!("accepted an invalid regexp"),
        };
        assert_eq!(err.location.map(|l| l.line), Some(5));
    }

    #[test]
    fn configuration_errors() {
        let msg = |conf: &str| match grep(conf) {
            Err(e) => e.message,
            Ok(_) => String::from("<accepted>"),
        };
        assert_eq!(
            msg("<regexp>\nkey a\npattern x\n</regexp>\n<regexp>\nkey a\npattern y\n</regexp>"),
            "Duplicate key: a"
        );
        assert_eq!(
            msg("<exclude>\nkey a\npattern x\n</exclude>\n<or>\n<exclude>\nkey a\npattern y\n</exclude>\n</or>"),
            "Duplicate key in <or>: a"
        );
        assert_eq!(
            msg("<and>\n<regexp>\nkey a\npattern x\n</regexp>\n<exclude>\nkey b\npattern y\n</exclude>\n</and>"),
            "Do not specify both <regexp> and <exclude> in <and>"
        );
        assert_eq!(
            msg("regexp1 level"),
            "regexp1 does not contain 2 parameters"
        );
        assert_eq!(
            msg("exclude1 a x\nexclude2 a y"),
            "exclude2 contains a duplicated key, a"
        );
        assert_eq!(
            msg("<regexp>\nkey $.a[x]\npattern y\n</regexp>"),
            "missing array index in '[]'. Invalid syntax: $.a[x]"
        );
        assert_eq!(
            msg("<regexp>\nkey a\n</regexp>"),
            "'pattern' parameter is required, in section regexp"
        );
    }
}
