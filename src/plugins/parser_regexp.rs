//! `@type regexp` (parser): the named groups of `expression` become string fields (groups
//! that did not take part in the match are left out). Also the engine of the regexp presets
//! (`apache_error`, `nginx`) and of `multiline`.

use super::parser::{not_matched, Defaults, ParserCommon};
use super::{Parser, ParserError, PluginContext};
use crate::config_parser::types::{Regexp, RubyRegex};
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventTime, Record, Value};

crate::parser_config! {
    pub struct RegexpParserConf {
        pub expression: Option<Regexp>,
        /// Recompile the expression with only these flags (Fluentd's compat layer).
        #[serde(default)]
        pub ignorecase: bool,
        #[serde(default)]
        pub multiline: bool,
    }
}

/// A compiled expression with its named groups.
pub struct NamedRegex {
    pub re: RubyRegex,
    names: Vec<(usize, Vec<u8>)>,
    /// For expressions whose every match starts at a line start (`^...`): a capture engine
    /// run anchored at the start of a one-line text, without the DFA passes that first look
    /// for where a match is.
    anchored: Option<meta::Regex>,
    /// The same expression compiled by PCRE2's JIT, for one-line UTF-8 texts: a few times
    /// faster than either engine above on the typical access-log expressions, and as a
    /// backtracking engine it finds the same leftmost-first match.
    jit: Option<pcre2::bytes::Regex>,
    /// Names this expression's scratch space in each thread's `SCRATCH`.
    id: u64,
}

static NEXT_REGEX_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// One thread's working memory for one expression.
struct Scratch {
    id: u64,
    search: Option<(meta::Cache, regex_automata::util::captures::Captures)>,
    jit: Option<pcre2::bytes::CaptureLocations>,
}

thread_local! {
    /// Per thread, the working memory of each expression it ran. The engines' own pools give
    /// one thread a fast path and make the others contend, and in_tail parses one file's lines
    /// on several threads.
    static SCRATCH: std::cell::RefCell<Vec<Scratch>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn with_scratch<T>(id: u64, f: impl FnOnce(&mut Scratch) -> T) -> T {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let at = match scratch.iter().position(|s| s.id == id) {
            Some(at) => at,
            None => {
                scratch.push(Scratch {
                    id,
                    search: None,
                    jit: None,
                });
                scratch.len() - 1
            }
        };
        f(&mut scratch[at])
    })
}

/// PCRE2's JIT build of the translated expression, when PCRE2 reads it (it reads the `regex`
/// crate syntax the translation produces; anything else stays with the `regex` engines).
fn jit_engine(re: &RubyRegex) -> Option<pcre2::bytes::Regex> {
    let pattern = re.as_bytes_regex()?.as_str();
    // Where the two engines define a class differently (word boundaries and Unicode classes
    // are Unicode-aware in `regex`, ASCII in PCRE2; POSIX classes the other way round), the
    // `regex` engines keep deciding.
    if [r"\b", r"\B", "[[:", r"\p", r"\P"]
        .iter()
        .any(|differs| pattern.contains(differs))
    {
        return None;
    }
    let mut b = pcre2::bytes::RegexBuilder::new();
    b.utf(true)
        .jit_if_available(true)
        .max_jit_stack_size(Some(1 << 20));
    b.build(pattern).ok()
}

use regex_automata::{meta, util::syntax, Anchored, Input};

/// The anchored engine for `re`, when every match must begin at a line start.
fn anchored_engine(re: &RubyRegex) -> Option<meta::Regex> {
    let pattern = re.as_bytes_regex()?.as_str();
    // The settings of `regex::bytes::Regex`, which matches invalid UTF-8 too.
    let syn = syntax::Config::new().utf8(false);
    let hir = syntax::parse_with(pattern, &syn).ok()?;
    let starts = hir.properties().look_set_prefix();
    if !(starts.contains(regex_syntax::hir::Look::StartLF)
        || starts.contains(regex_syntax::hir::Look::Start))
    {
        return None;
    }
    meta::Regex::builder()
        .syntax(syn)
        .configure(
            meta::Config::new()
                .utf8_empty(false)
                .nfa_size_limit(Some(64 << 20))
                .hybrid(false)
                .dfa(false),
        )
        .build_from_hir(&hir)
        .ok()
}

impl NamedRegex {
    pub fn new(re: RubyRegex) -> NamedRegex {
        let mut names: Vec<(usize, Vec<u8>)> = Vec::new();
        for (i, n) in re.capture_names().into_iter().enumerate() {
            if let Some(n) = n {
                names.push((i, n.into_bytes()));
            }
        }
        let anchored = anchored_engine(&re);
        let jit = jit_engine(&re);
        NamedRegex {
            re,
            names,
            anchored,
            jit,
            id: NEXT_REGEX_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    pub fn has_names(&self) -> bool {
        !self.names.is_empty()
    }

    /// The named groups of the first match at or after `start`, and where the match ends.
    pub fn match_record(&self, text: &[u8], start: usize) -> Option<(Record, usize)> {
        let mut rec = Record::with_capacity(self.names.len());
        // Without a newline the text has one line start, 0: an anchored match can only begin
        // there.
        if start == 0 && memchr::memchr(b'\n', text).is_none() {
            if let Some(jit) = self
                .jit
                .as_ref()
                .filter(|_| std::str::from_utf8(text).is_ok())
            {
                let found = with_scratch(self.id, |scratch| {
                    let locs = scratch.jit.get_or_insert_with(|| jit.capture_locations());
                    let whole = jit.captures_read(locs, text).ok()?;
                    let mut rec = Record::with_capacity(self.names.len());
                    if let Some(whole) = whole {
                        for (i, name) in &self.names {
                            if let Some((s, e)) = locs.get(*i) {
                                // Group names of one expression are distinct.
                                rec.push_unchecked(name.clone(), Value::Str(text[s..e].to_vec()));
                            }
                        }
                        return Some(Some((rec, whole.end())));
                    }
                    Some(None)
                });
                // `None`: PCRE2 gave up (its stack or match limit); the other engines decide.
                if let Some(found) = found {
                    return found;
                }
            }
            if let Some(re) = &self.anchored {
                return with_scratch(self.id, |scratch| {
                    let (cache, caps) = scratch
                        .search
                        .get_or_insert_with(|| (re.create_cache(), re.create_captures()));
                    let input = Input::new(text).anchored(Anchored::Yes);
                    re.search_captures_with(cache, &input, caps);
                    let whole = caps.get_match()?;
                    for (i, name) in &self.names {
                        if let Some(sp) = caps.get_group(*i) {
                            rec.push_unchecked(
                                name.clone(),
                                Value::Str(text[sp.start..sp.end].to_vec()),
                            );
                        }
                    }
                    Some((rec, whole.end()))
                });
            }
        }
        match self.re.captures_pos(text, start) {
            Some(groups) => {
                let end = groups
                    .first()
                    .copied()
                    .flatten()
                    .map(|(_, e)| e)
                    .unwrap_or(text.len());
                for (i, name) in &self.names {
                    if let Some(Some((s, e))) = groups.get(*i) {
                        rec.insert(name.clone(), Value::Str(text[*s..*e].to_vec()));
                    }
                }
                Some((rec, end))
            }
            // The fallback engine matches invalid UTF-8 in its lossy form only.
            None if std::str::from_utf8(text).is_err() => {
                let groups = self.re.captures_owned(text.get(start..)?)?;
                for (i, name) in &self.names {
                    if let Some(Some(v)) = groups.get(*i) {
                        rec.insert(name.clone(), Value::Str(v.clone()));
                    }
                }
                Some((rec, text.len()))
            }
            None => None,
        }
    }
}

pub struct RegexpParser {
    pub re: NamedRegex,
    pub common: ParserCommon,
}

impl RegexpParser {
    /// Builds a regexp parser; presets pass their default expression and time format.
    pub fn build(
        elem: &Element,
        ctx: &PluginContext,
        plugin: &str,
        default_expression: Option<&str>,
        default_time_format: Option<&'static str>,
    ) -> Result<RegexpParser, ConfigError> {
        let conf: RegexpParserConf = ctx.configure(elem, plugin)?;
        let mut re = match (conf.expression.clone(), default_expression) {
            (Some(r), _) => r.0,
            (None, Some(d)) => RubyRegex::from_param(d).map_err(|e| elem.error(e))?,
            (None, None) => return Err(elem.error("'expression' parameter is required")),
        };
        // `Regexp.compile(source, options)`: the options replace the `/.../imx` flags.
        if conf.ignorecase || conf.multiline {
            let mut flags = String::new();
            if conf.ignorecase {
                flags.push('i');
            }
            if conf.multiline {
                flags.push('m');
            }
            re = RubyRegex::new(re.source(), &flags).map_err(|e| elem.error(e))?;
        }
        if !re.capture_names().iter().any(Option::is_some) {
            return Err(elem.error(
                "No named captures in 'expression' parameter. The regexp must have at least one named capture",
            ));
        }
        let defaults = Defaults {
            time_format: default_time_format,
            ..Defaults::TIME_KEY
        };
        let common = ParserCommon::build(&conf.common(), defaults, elem)?;
        Ok(RegexpParser {
            re: NamedRegex::new(re),
            common,
        })
    }
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Parser>, ConfigError> {
    Ok(Box::new(RegexpParser::build(
        elem, ctx, "regexp", None, None,
    )?))
}

impl Parser for RegexpParser {
    fn parse(
        &self,
        text: &[u8],
        emit: &mut dyn FnMut(Option<EventTime>, Record),
    ) -> Result<(), ParserError> {
        let (rec, _) = self.re.match_record(text, 0).ok_or_else(not_matched)?;
        let (t, r) = self.common.finish(rec)?;
        emit(t, r);
        Ok(())
    }
}

#[cfg(test)]
mod flag_tests {
    use super::super::parser::test_support::*;

    #[test]
    fn ignorecase_and_multiline_change_the_match() {
        let p = parser("@type regexp\nexpression /^(?<a>abc)(?<b>.*)$/\nignorecase true");
        let out = parse_all(&*p, "ABCdef").unwrap();
        assert_eq!(json(&out[0].1), r#"{"a":"ABC","b":"def"}"#);
        let p = parser("@type regexp\nexpression /^(?<a>abc)(?<b>.*)$/");
        assert!(parse_all(&*p, "ABCdef").is_err());
        let p = parser("@type regexp\nexpression /(?<a>x.y)/\nmultiline true");
        let out = parse_all(&*p, "x\ny").unwrap();
        assert_eq!(json(&out[0].1), r#"{"a":"x\ny"}"#);
        let p = parser("@type regexp\nexpression /(?<a>x.y)/");
        assert!(parse_all(&*p, "x\ny").is_err());
    }

    #[test]
    fn an_expression_without_named_captures_is_a_config_error() {
        let e = crate::plugins::new_parser(
            &crate::test_util::section(
                "parse",
                &[("@type", "regexp"), ("expression", "/^(abc)$/")],
            ),
            &crate::plugins::PluginContext::for_tests(),
        )
        .err()
        .unwrap();
        assert!(e
            .message
            .starts_with("No named captures in 'expression' parameter"));
    }
}

#[cfg(test)]
mod tests {
    use super::super::parser::is_not_matched;
    use super::super::parser::test_support::*;
    use super::{NamedRegex, RubyRegex};

    const W3: &str = r#"^(?<host>[^ ]*) [^ ]* (?<user>[^ ]*) \[(?<time>[^\]]*)\] "(?<method>\S+)(?: +(?<path>[^ ]*) +\S*)?" (?<code>[^ ]*) (?<size>[^ ]*)(?: "(?<referer>[^\"]*)" "(?<agent>[^\"]*)")?$"#;

    #[test]
    fn anchored_engine_only_for_line_start_expressions() {
        assert!(NamedRegex::new(RubyRegex::new(W3, "").unwrap())
            .anchored
            .is_some());
        assert!(NamedRegex::new(RubyRegex::new("(?<a>x)", "").unwrap())
            .anchored
            .is_none());
        assert!(
            NamedRegex::new(RubyRegex::new("^(?<a>x)|(?<b>y)", "").unwrap())
                .anchored
                .is_none()
        );
        assert!(NamedRegex::new(RubyRegex::new("\\A(?<a>x)", "").unwrap())
            .anchored
            .is_some());
    }

    proptest::proptest! {
        /// PCRE2 and the anchored engine find what the general search finds.
        #[test]
        fn anchored_engine_agrees_with_the_search(parts in proptest::collection::vec(
            proptest::sample::select(&[
                "1.2.3.4", " ", "-", "[", "]", "\"", "GET", "/p", "HTTP/1.1", "200", "5",
                "01/May/2024:00:00:00 +0000", "x", "\u{e9}", "\t", "\n", "GeT", "\u{c9}t\u{e9}",
                "7", "\r", "\u{2003}",
            ][..]),
            0..30,
        )) {
            let text = parts.concat();
            for (pat, flags, jit) in [
                (W3, "", true),
                ("^(?<a>[a-z]+)(?<b>\\d*)", "", true),
                ("^(?<a>.*?)(?<b> .*)?$", "", true),
                ("(?<a>\\w+)(?<b>.{2})(?<c>\\S*)", "", true),
                ("(?<a>get|x) ?(?<b>[^\\d]+)?", "i", true),
                ("^(?<a>(?:\\s|-)+)(?<b>\\h*)\\Z", "m", true),
                ("(?<a>get|x)\\b(?<b>[^\\d]+)?", "i", false),
                ("^(?<a>[[:alpha:]]*)", "", false),
            ] {
                let fast = NamedRegex::new(RubyRegex::new(pat, flags).unwrap());
                proptest::prop_assert_eq!(fast.jit.is_some(), jit, "PCRE2 for {}", pat);
                let mut anchored_only = NamedRegex::new(RubyRegex::new(pat, flags).unwrap());
                anchored_only.jit = None;
                let mut slow = NamedRegex::new(RubyRegex::new(pat, flags).unwrap());
                slow.anchored = None;
                slow.jit = None;
                let got = |n: &NamedRegex| n.match_record(text.as_bytes(), 0).map(|(r, e)| (json(&r), e));
                let want = got(&slow);
                proptest::prop_assert_eq!(got(&fast), want.clone(), "PCRE2 on {} for {:?}", pat, text);
                proptest::prop_assert_eq!(got(&anchored_only), want, "anchored on {} for {:?}", pat, text);
            }
        }
    }

    #[test]
    fn named_groups_and_time_case_133() {
        let p = parser("@type regexp\nexpression /^(?<time>\\S+ \\S+) \\[(?<level>\\w+)\\] (?<msg>.*)$/\ntime_format %Y-%m-%d %H:%M:%S");
        let out = parse_all(&*p, "2024-03-04 05:06:08 [WARN] slow: 3s").unwrap();
        assert_eq!(out[0].0, Some(utc(2024, 3, 4, 5, 6, 8, 0)));
        assert_eq!(json(&out[0].1), r#"{"level":"WARN","msg":"slow: 3s"}"#);
        assert!(is_not_matched(
            &parse_all(&*p, "no match here").unwrap_err()
        ));
    }

    #[test]
    fn optional_group_and_types_case_134() {
        let p = parser("@type regexp\nexpression /^(?<a>\\d+)(?: (?<b>\\w+))?$/\ntypes a:integer");
        assert_eq!(
            json(&parse_all(&*p, "1 x").unwrap()[0].1),
            r#"{"a":1,"b":"x"}"#
        );
        assert_eq!(json(&parse_all(&*p, "2").unwrap()[0].1), r#"{"a":2}"#);
    }

    #[test]
    fn flags_case_135() {
        let p = parser("@type regexp\nexpression /^level=(?<level>info|warn) (?<rest>.*)$/i");
        assert_eq!(
            json(&parse_all(&*p, "LEVEL=Info ok").unwrap()[0].1),
            r#"{"level":"Info","rest":"ok"}"#
        );
        assert!(parse_all(&*p, "level=debug no").is_err());
        let p = parser("@type regexp\nexpression /^(?<a>.*)$/m");
        assert_eq!(
            json(&parse_all(&*p, "x\ny").unwrap()[0].1),
            r#"{"a":"x\ny"}"#
        );
    }

    #[test]
    fn no_year_case_156_and_v0_case_014() {
        let p = parser("@type regexp\nexpression /^(?<time>\\w+ \\d+ [\\d:]+) (?<msg>.*)$/\ntime_format %b %d %H:%M:%S");
        let out = parse_all(&*p, "Mar 14 15:09:26 hello").unwrap();
        let y = chrono::Datelike::year(&chrono::Utc::now()) as i64;
        assert_eq!(out[0].0, Some(utc(y, 3, 14, 15, 9, 26, 0)));
        assert_eq!(json(&out[0].1), r#"{"msg":"hello"}"#);
        let p = parser("@type regexp\nexpression /^(?<time>[^ ]+) (?<level>\\w+) (?<msg>.*)$/\ntime_format %Y-%m-%dT%H:%M:%S");
        let out = parse_all(&*p, "2024-03-01T10:20:30 INFO started ok").unwrap();
        assert_eq!(out[0].0, Some(utc(2024, 3, 1, 10, 20, 30, 0)));
        assert_eq!(json(&out[0].1), r#"{"level":"INFO","msg":"started ok"}"#);
    }

    #[test]
    fn unmatched_case_158_and_missing_expression() {
        let p = parser("@type regexp\nexpression /^(?<k>\\d+)$/");
        assert_eq!(json(&parse_all(&*p, "123").unwrap()[0].1), r#"{"k":"123"}"#);
        assert!(parse_all(&*p, "abc").is_err());
        let e = crate::plugins::new_parser(
            &section("@type regexp"),
            &crate::plugins::PluginContext::for_tests(),
        );
        assert!(e.is_err());
    }
}
