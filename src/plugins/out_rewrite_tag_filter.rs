//! `@type rewrite_tag_filter` (output, fluent-plugin-rewrite-tag-filter 2.4): re-emits each
//! event under a tag built from the first `<rule>` that applies.
//!
//! A rule matches its pattern against the Ruby `to_s` of the key's value (an empty value only
//! satisfies `invert` rules). The new tag gets `$N` captures first, then the placeholders
//! `${tag}`/`__TAG__`, `${tag_parts[N]}`, `${hostname}`/`__HOSTNAME__` (`__TAG_PARTS[N]__` is
//! not a placeholder in this version: it stays as written). Events no rule applies to, and
//! events whose tag would not change, are dropped.

use std::sync::atomic::{AtomicBool, Ordering};

use regex::Regex;
use serde::Deserialize;

use super::filter_grep::{ruby_to_s, scrub};
use super::{Output, OutputError, PluginContext};
use crate::config_parser::types::{regexp_source, Regexp, RubyRegex};
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventStream, Record};
use crate::record_accessor::RecordAccessor;
use crate::router::Emitter;

#[derive(Deserialize)]
struct RuleConf {
    key: String,
    pattern: Regexp,
    tag: String,
    label: Option<String>,
    #[serde(default)]
    invert: bool,
}

#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
enum EmitMode {
    Record,
    #[default]
    Batch,
}

fn default_hostname_command() -> String {
    "hostname".to_string()
}

#[derive(Deserialize)]
struct RewriteTagFilterConf {
    #[serde(default)]
    rule: Vec<RuleConf>,
    #[serde(default)]
    capitalize_regex_backreference: bool,
    remove_tag_prefix: Option<String>,
    remove_tag_regexp: Option<Regexp>,
    #[serde(default = "default_hostname_command")]
    hostname_command: String,
    #[serde(default)]
    emit_mode: EmitMode,
}

/// A piece of a rule's tag before placeholder expansion.
enum TagPiece {
    Lit(String),
    /// `$N` as written; looked up among the captures.
    Backref(String),
}

struct Rule {
    accessor: RecordAccessor,
    pattern: RubyRegex,
    invert: bool,
    tag: Vec<TagPiece>,
    has_backrefs: bool,
    /// Index into `RewriteTagFilter::labels`.
    label: Option<usize>,
}

pub struct RewriteTagFilter {
    rules: Vec<Rule>,
    labels: Vec<Emitter>,
    router: Emitter,
    capitalize: bool,
    remove_tag_prefix: Option<String>,
    remove_tag_regexp: Option<RubyRegex>,
    hostname: String,
    batch: bool,
    placeholder_re: Regex,
    warned_same_tag: AtomicBool,
}

/// Runs `hostname_command` as Ruby's backticks do; any failure falls back to the hostname.
fn run_hostname_command(cmd: &str) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let s = String::from_utf8_lossy(&o.stdout).into_owned();
            // Ruby's chomp: one trailing "\n" or "\r\n".
            let s = s
                .strip_suffix("\r\n")
                .or_else(|| s.strip_suffix('\n'))
                .unwrap_or(&s)
                .to_string();
            if s.is_empty() {
                crate::util::hostname()
            } else {
                s
            }
        }
        _ => {
            tracing::warn!(
                "hostname_command '{}' failed; using the system hostname",
                cmd
            );
            crate::util::hostname()
        }
    }
}

fn split_backrefs(tag: &str) -> Vec<TagPiece> {
    let mut pieces = Vec::new();
    let b = tag.as_bytes();
    let mut lit_start = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() && b[i + 1].is_ascii_digit() {
            let mut j = i + 1;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            if i > lit_start {
                pieces.push(TagPiece::Lit(tag[lit_start..i].to_string()));
            }
            pieces.push(TagPiece::Backref(tag[i..j].to_string()));
            lit_start = j;
            i = j;
        } else {
            i += 1;
        }
    }
    if lit_start < b.len() {
        pieces.push(TagPiece::Lit(tag[lit_start..].to_string()));
    }
    pieces
}

/// Ruby's `String#capitalize`.
fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}

/// The per-stream placeholder values (`get_placeholder`).
struct Placeholders<'a> {
    hostname: &'a str,
    tag: String,
    parts: Vec<String>,
}

impl Placeholders<'_> {
    fn lookup(&self, key: &str) -> Option<&str> {
        match key {
            "${hostname}" | "__HOSTNAME__" => return Some(self.hostname),
            "${tag}" | "__TAG__" => return Some(&self.tag),
            _ => {}
        }
        let idx = key.strip_prefix("${tag_parts[")?.strip_suffix("]}")?;
        // Only the canonical spelling of an index is in Fluentd's table.
        if idx.len() > 1 && idx.starts_with('0') {
            return None;
        }
        let i: usize = idx.parse().ok()?;
        self.parts.get(i).map(String::as_str)
    }
}

impl RewriteTagFilter {
    fn configure(elem: &Element, ctx: &PluginContext) -> Result<Self, ConfigError> {
        let conf: RewriteTagFilterConf = ctx.configure(elem, "rewrite_tag_filter")?;
        let hostname = run_hostname_command(&conf.hostname_command);

        let range_a =
            Regex::new(r"\$\{tag_parts\[\d\.\.\.?\d\]\}").map_err(|e| elem.error(e.to_string()))?;
        let range_b =
            Regex::new(r"__TAG_PARTS\[\d\.\.\.?\d\]__").map_err(|e| elem.error(e.to_string()))?;

        let mut rules = Vec::new();
        let mut labels: Vec<(String, Emitter)> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for (rc, relem) in conf.rule.iter().zip(elem.children("rule")) {
            if range_a.is_match(&rc.tag) && range_b.is_match(&rc.tag) {
                return Err(relem.error(
                    "${tag_parts[n]} and __TAG_PARTS[n]__ placeholder does not support range specify",
                ));
            }
            let accessor = RecordAccessor::new(&rc.key).map_err(|m| relem.error(m))?;
            let label = match &rc.label {
                None => None,
                Some(name) => match labels.iter().position(|(n, _)| n == name) {
                    Some(i) => Some(i),
                    None => {
                        let em = ctx
                            .labels
                            .get(name)
                            .ok_or_else(|| relem.error(format!("{name} label not found")))?;
                        labels.push((name.clone(), em));
                        Some(labels.len() - 1)
                    }
                },
            };
            // Fluentd compares key + invert + pattern.to_s; the pattern's text and flags.
            let pattern_text = relem.get("pattern").unwrap_or_default();
            let (src, flags) = regexp_source(pattern_text).unwrap_or_default();
            let mut flags: Vec<char> = flags.chars().collect();
            flags.sort_unstable();
            flags.dedup();
            let name = format!(
                "{}{}/{}/{}",
                rc.key,
                if rc.invert { "!" } else { "" },
                src,
                flags.into_iter().collect::<String>()
            );
            if names.contains(&name) {
                return Err(relem.error(format!("duplicated rewriterules found: {}", rc.key)));
            }
            names.push(name);
            let tag = split_backrefs(&rc.tag);
            let has_backrefs = tag.iter().any(|p| matches!(p, TagPiece::Backref(_)));
            rules.push(Rule {
                accessor,
                pattern: rc.pattern.0.clone(),
                invert: rc.invert,
                tag,
                has_backrefs,
                label,
            });
        }

        if let Some(p) = elem
            .params
            .iter()
            .find(|p| p.key.starts_with("rewriterule"))
        {
            return Err(ConfigError::at(
                "\"rewriteruleN\" is not supported since v2.0.0. Use <rule> section.",
                &p.span,
            ));
        }
        if rules.is_empty() {
            return Err(elem.error("missing rewriterules"));
        }
        if conf.remove_tag_prefix.is_some() && conf.remove_tag_regexp.is_some() {
            return Err(elem.error("remove_tag_prefix and remove_tag_regexp are exclusive"));
        }

        Ok(RewriteTagFilter {
            rules,
            labels: labels.into_iter().map(|(_, e)| e).collect(),
            router: ctx.router.clone(),
            capitalize: conf.capitalize_regex_backreference,
            remove_tag_prefix: conf.remove_tag_prefix,
            remove_tag_regexp: conf.remove_tag_regexp.map(|r| r.0),
            hostname,
            batch: conf.emit_mode == EmitMode::Batch,
            placeholder_re: Regex::new(r"\$\{[a-z_]+(\[[0-9]+\])?\}|__[A-Z_]+__")
                .map_err(|e| elem.error(e.to_string()))?,
            warned_same_tag: AtomicBool::new(false),
        })
    }

    fn placeholders(&self, tag: &str) -> Placeholders<'_> {
        let mut t = tag.to_string();
        if let Some(prefix) = &self.remove_tag_prefix {
            // Fluentd's /^PREFIX\.?/
            if let Some(rest) = t.strip_prefix(prefix.as_str()) {
                t = rest.strip_prefix('.').unwrap_or(rest).to_string();
            }
        }
        if let Some(re) = &self.remove_tag_regexp {
            t = remove_first_match(re, &t);
        }
        let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
        // Ruby's split drops trailing empty fields.
        while parts.last().is_some_and(|p| p.is_empty()) {
            parts.pop();
        }
        Placeholders {
            hostname: &self.hostname,
            tag: t,
            parts,
        }
    }

    fn expand_placeholders(&self, tag: &str, ph: &Placeholders<'_>) -> String {
        self.placeholder_re
            .replace_all(tag, |c: &regex::Captures<'_>| {
                let key = &c[0];
                match ph.lookup(key) {
                    Some(v) => v.to_string(),
                    None => {
                        tracing::warn!(
                            "rewrite_tag_filter: unknown placeholder found. :placeholder=>{} :tag=>{} :rewritetag=>{}",
                            key,
                            ph.tag,
                            tag
                        );
                        String::new()
                    }
                }
            })
            .into_owned()
    }

    /// The new tag and label of the first rule that applies.
    fn rewrite(&self, record: &Record, ph: &Placeholders<'_>) -> Option<(String, Option<usize>)> {
        for rule in &self.rules {
            let value = match rule.accessor.dig(record) {
                Ok(v) => ruby_to_s(v),
                Err(e) => {
                    tracing::debug!("rewrite_tag_filter: {}", e);
                    ruby_to_s(None)
                }
            };
            if value.is_empty() && !rule.invert {
                continue;
            }
            let value = scrub(value);
            let tag = if rule.invert {
                if rule.pattern.is_match(&value) {
                    continue;
                }
                self.join(&rule.tag, None)
            } else if rule.has_backrefs {
                let Some(caps) = rule.pattern.captures_owned(&value) else {
                    continue;
                };
                self.join(&rule.tag, Some(&caps))
            } else {
                if !rule.pattern.is_match(&value) {
                    continue;
                }
                self.join(&rule.tag, None)
            };
            return Some((self.expand_placeholders(&tag, ph), rule.label));
        }
        None
    }

    /// The tag with `$N` replaced by captures (`None`: an invert rule, `$N` stays as written).
    fn join(&self, pieces: &[TagPiece], caps: Option<&Vec<Option<Vec<u8>>>>) -> String {
        let mut out = String::new();
        for p in pieces {
            match (p, caps) {
                (TagPiece::Lit(s), _) => out.push_str(s),
                (TagPiece::Backref(r), None) => out.push_str(r),
                (TagPiece::Backref(r), Some(caps)) => {
                    let n: usize = r[1..].parse().unwrap_or(0);
                    if n == 0 {
                        continue;
                    }
                    if let Some(Some(c)) = caps.get(n) {
                        let s = String::from_utf8_lossy(c);
                        if self.capitalize {
                            out.push_str(&capitalize(&s));
                        } else {
                            out.push_str(&s);
                        }
                    }
                }
            }
        }
        out
    }

    fn emitter(&self, label: Option<usize>) -> &Emitter {
        label
            .and_then(|i| self.labels.get(i))
            .unwrap_or(&self.router)
    }
}

/// `str.sub(re, '')`.
fn remove_first_match(re: &RubyRegex, s: &str) -> String {
    if let Some(r) = re.as_bytes_regex() {
        if let Some(m) = r.find(s.as_bytes()) {
            let mut out = String::with_capacity(s.len());
            out.push_str(&s[..m.start()]);
            out.push_str(&s[m.end()..]);
            return out;
        }
        return s.to_string();
    }
    match re
        .captures_owned(s.as_bytes())
        .and_then(|c| c.into_iter().next().flatten())
    {
        Some(m) => s.replacen(String::from_utf8_lossy(&m).as_ref(), "", 1),
        None => s.to_string(),
    }
}

impl Output for RewriteTagFilter {
    fn emit(&self, tag: &str, es: EventStream) -> Result<(), OutputError> {
        let ph = self.placeholders(tag);
        let mut groups: Vec<((String, Option<usize>), EventStream)> = Vec::new();
        for ev in es {
            let Some((new_tag, label)) = self.rewrite(&ev.record, &ph) else {
                continue;
            };
            if new_tag == tag && label.is_none() {
                // Re-emitting under the same tag would loop forever.
                if !self.warned_same_tag.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "rewrite_tag_filter: tag has not been rewritten, dropped: tag=\"{}\"",
                        tag
                    );
                }
                continue;
            }
            if self.batch {
                match groups
                    .iter_mut()
                    .find(|(k, _)| k.0 == new_tag && k.1 == label)
                {
                    Some((_, g)) => g.push(ev.time, ev.record),
                    None => groups.push(((new_tag, label), EventStream::one(ev.time, ev.record))),
                }
            } else {
                self.emitter(label)
                    .emit(&new_tag, EventStream::one(ev.time, ev.record));
            }
        }
        for ((new_tag, label), g) in groups {
            self.emitter(label).emit(&new_tag, g);
        }
        Ok(())
    }
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Output>, ConfigError> {
    Ok(Box::new(RewriteTagFilter::configure(elem, ctx)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventTime, Value};
    use crate::plugins::filter_record_transformer::record_to_json;
    use crate::router::LabelTable;
    use crate::test_util::directive;
    use crate::util::value_from_json as json_to_value;
    use std::collections::HashMap;

    fn elem(conf: &str) -> Element {
        directive(&format!(
            "<match src.logs>\n  @type rewrite_tag_filter\n{conf}\n</match>\n"
        ))
    }

    struct Setup {
        ctx: PluginContext,
        root: Emitter,
        other: Emitter,
    }

    fn setup() -> Setup {
        let root = Emitter::collector("@ROOT");
        let other = Emitter::collector("@OTHER");
        let mut ctx = PluginContext::for_tests();
        ctx.router = root.clone();
        let mut labels = HashMap::new();
        labels.insert("@OTHER".to_string(), other.clone());
        ctx.labels = LabelTable::new(labels);
        Setup { ctx, root, other }
    }

    fn make(s: &Setup, conf: &str) -> Box<dyn Output> {
        match create(&elem(conf), &s.ctx) {
            Ok(o) => o,
            Err(e) => panic!("{e}"),
        }
    }

    fn config_error(conf: &str) -> String {
        match create(&elem(conf), &setup().ctx) {
            Ok(_) => String::from("<accepted>"),
            Err(e) => e.message,
        }
    }

    fn stream(lines: &[&str]) -> EventStream {
        let mut es = EventStream::new();
        for l in lines {
            if let Value::Map(m) = json_to_value(serde_json::from_str(l).unwrap()) {
                es.push(EventTime::new(1, 0), m);
            }
        }
        es
    }

    /// `tag: record-json` lines in emission order.
    fn emitted(e: &Emitter) -> Vec<String> {
        e.collected()
            .into_iter()
            .flat_map(|(tag, es)| {
                es.events.into_iter().map(move |ev| {
                    let v = record_to_json(&ev.record);
                    format!("{tag}: {v}")
                })
            })
            .collect()
    }

    const INPUT: &[&str] = &[
        r#"{"lvl": "info", "app": "web", "msg": "a"}"#,
        r#"{"lvl": "error", "app": "db", "msg": "b"}"#,
        r#"{"lvl": "info", "app": "db", "msg": "c"}"#,
        r#"{"app": "none", "msg": "d"}"#,
    ];

    fn run(conf: &str, input: &[&str]) -> Vec<String> {
        let s = setup();
        let o = make(&s, conf);
        o.emit("src.logs", stream(input)).unwrap();
        emitted(&s.root)
    }

    #[test]
    fn case_115_backreferences() {
        let got = run(
            "emit_mode record\n<rule>\nkey lvl\npattern /^(info|error)$/\ntag out.$1\n</rule>",
            INPUT,
        );
        assert_eq!(
            got,
            vec![
                r#"out.info: {"lvl":"info","app":"web","msg":"a"}"#,
                r#"out.error: {"lvl":"error","app":"db","msg":"b"}"#,
                r#"out.info: {"lvl":"info","app":"db","msg":"c"}"#,
            ]
        );
    }

    #[test]
    fn case_116_tag_placeholders() {
        let got = run(
            "emit_mode record\n<rule>\nkey app\npattern /^(\\w+)$/\ntag out.${tag_parts[1]}.${tag}.$1\n</rule>",
            INPUT,
        );
        assert_eq!(
            got,
            vec![
                r#"out.logs.src.logs.web: {"lvl":"info","app":"web","msg":"a"}"#,
                r#"out.logs.src.logs.db: {"lvl":"error","app":"db","msg":"b"}"#,
                r#"out.logs.src.logs.db: {"lvl":"info","app":"db","msg":"c"}"#,
                r#"out.logs.src.logs.none: {"app":"none","msg":"d"}"#,
            ]
        );
    }

    #[test]
    fn case_117_first_rule_wins_and_unmatched_are_dropped() {
        let got = run(
            "emit_mode record\n<rule>\nkey lvl\npattern /error/\ntag out.err\n</rule>\n<rule>\nkey app\npattern /db/\ntag out.db\n</rule>",
            INPUT,
        );
        assert_eq!(
            got,
            vec![
                r#"out.err: {"lvl":"error","app":"db","msg":"b"}"#,
                r#"out.db: {"lvl":"info","app":"db","msg":"c"}"#,
            ]
        );
    }

    #[test]
    fn case_118_invert_also_fires_on_a_missing_key() {
        let got = run(
            "emit_mode record\n<rule>\nkey lvl\npattern /^info$/\ntag out.notinfo\ninvert true\n</rule>",
            INPUT,
        );
        assert_eq!(
            got,
            vec![
                r#"out.notinfo: {"lvl":"error","app":"db","msg":"b"}"#,
                r#"out.notinfo: {"app":"none","msg":"d"}"#,
            ]
        );
    }

    #[test]
    fn case_119_batch_mode_regroups_by_new_tag() {
        let input = [
            r#"{"app": "web", "i": 1}"#,
            r#"{"app": "db", "i": 2}"#,
            r#"{"app": "web", "i": 3}"#,
            r#"{"app": "db", "i": 4}"#,
            r#"{"app": "web", "i": 5}"#,
        ];
        let s = setup();
        let o = make(
            &s,
            "<rule>\nkey app\npattern /^(web|db)$/\ntag out.$1\n</rule>",
        );
        o.emit("src.logs", stream(&input)).unwrap();
        let streams: Vec<(String, usize)> = s
            .root
            .collected()
            .into_iter()
            .map(|(t, es)| (t, es.len()))
            .collect();
        assert_eq!(
            streams,
            vec![("out.web".to_string(), 3), ("out.db".to_string(), 2)]
        );
        assert_eq!(
            emitted(&s.root),
            vec![
                r#"out.web: {"app":"web","i":1}"#,
                r#"out.web: {"app":"web","i":3}"#,
                r#"out.web: {"app":"web","i":5}"#,
                r#"out.db: {"app":"db","i":2}"#,
                r#"out.db: {"app":"db","i":4}"#,
            ]
        );
    }

    #[test]
    fn case_120_remove_tag_prefix() {
        let got = run(
            "remove_tag_prefix src\nemit_mode record\n<rule>\nkey app\npattern /./\ntag out.${tag}\n</rule>",
            INPUT,
        );
        assert_eq!(got.len(), 4);
        assert!(got.iter().all(|l| l.starts_with("out.logs: ")), "{got:?}");
    }

    #[test]
    fn remove_tag_regexp() {
        let got = run(
            "remove_tag_regexp /^src\\./\n<rule>\nkey app\npattern /web/\ntag x.${tag}\n</rule>",
            INPUT,
        );
        assert_eq!(got, vec![r#"x.logs: {"lvl":"info","app":"web","msg":"a"}"#]);
    }

    #[test]
    fn case_121_legacy_tag_parts_is_not_expanded() {
        let got = run(
            "emit_mode record\n<rule>\nkey app\npattern /web/\ntag out.__TAG__.x\n</rule>\n<rule>\nkey app\npattern /db/\ntag out.__TAG_PARTS[1]__\n</rule>",
            INPUT,
        );
        assert_eq!(
            got,
            vec![
                r#"out.src.logs.x: {"lvl":"info","app":"web","msg":"a"}"#,
                r#"out.__TAG_PARTS[1]__: {"lvl":"error","app":"db","msg":"b"}"#,
                r#"out.__TAG_PARTS[1]__: {"lvl":"info","app":"db","msg":"c"}"#,
            ]
        );
    }

    #[test]
    fn case_122_capitalize_backreferences() {
        let got = run(
            "capitalize_regex_backreference yes\nemit_mode record\n<rule>\nkey lvl\npattern /^(info|error)$/\ntag out.$1\n</rule>",
            INPUT,
        );
        assert_eq!(
            got,
            vec![
                r#"out.Info: {"lvl":"info","app":"web","msg":"a"}"#,
                r#"out.Error: {"lvl":"error","app":"db","msg":"b"}"#,
                r#"out.Info: {"lvl":"info","app":"db","msg":"c"}"#,
            ]
        );
    }

    #[test]
    fn case_123_nested_key() {
        let input = [
            r#"{"k": {"role": "api"}, "i": 1}"#,
            r#"{"k": {"role": "x"}, "i": 2}"#,
            r#"{"i": 3}"#,
            r#"{"k": {"role": "ui"}, "i": 4}"#,
        ];
        let got = run(
            "emit_mode record\n<rule>\nkey $.k.role\npattern /^(api|ui)$/\ntag out.$1\n</rule>",
            &input,
        );
        assert_eq!(
            got,
            vec![
                r#"out.api: {"k":{"role":"api"},"i":1}"#,
                r#"out.ui: {"k":{"role":"ui"},"i":4}"#,
            ]
        );
    }

    #[test]
    fn case_173_split_by_identifier() {
        let input = [
            r#"{"SYSLOG_IDENTIFIER": "containerd", "MESSAGE": "starting containerd"}"#,
            r#"{"SYSLOG_IDENTIFIER": "kata-runtime", "MESSAGE": "m"}"#,
            r#"{"SYSLOG_IDENTIFIER": "sshd", "MESSAGE": "ignored"}"#,
            r#"{"SYSLOG_IDENTIFIER": "kata-shim-v2", "MESSAGE": "shim"}"#,
        ];
        let got = run(
            "emit_mode record\n<rule>\nkey SYSLOG_IDENTIFIER\npattern /^containerd$/\ntag containerd\n</rule>\n<rule>\nkey SYSLOG_IDENTIFIER\npattern /^(kata-[\\w-]+)$/\ntag kata.$1\n</rule>",
            &input,
        );
        let tags: Vec<&str> = got.iter().filter_map(|l| l.split(':').next()).collect();
        assert_eq!(
            tags,
            vec!["containerd", "kata.kata-runtime", "kata.kata-shim-v2"]
        );
    }

    #[test]
    fn same_tag_is_dropped_unless_a_label_is_given() {
        let s = setup();
        let o = make(
            &s,
            "<rule>\nkey app\npattern /web/\ntag src.logs\n</rule>\n<rule>\nkey app\npattern /db/\ntag src.logs\nlabel @OTHER\n</rule>",
        );
        o.emit("src.logs", stream(INPUT)).unwrap();
        assert!(s.root.collected().is_empty());
        assert_eq!(
            emitted(&s.other),
            vec![
                r#"src.logs: {"lvl":"error","app":"db","msg":"b"}"#,
                r#"src.logs: {"lvl":"info","app":"db","msg":"c"}"#,
            ]
        );
    }

    #[test]
    fn hostname_and_unknown_placeholders() {
        let got = run(
            "hostname_command echo myhost\n<rule>\nkey app\npattern /web/\ntag h.${hostname}.__HOSTNAME__.${nope}x.${tag_parts[5]}\n</rule>",
            INPUT,
        );
        assert_eq!(
            got,
            vec![r#"h.myhost.myhost.x.: {"lvl":"info","app":"web","msg":"a"}"#]
        );
    }

    #[test]
    fn backreference_edge_cases() {
        let got = run(
            "<rule>\nkey app\npattern /^(w)(e)?(x)?/\ntag t.$1$2$3$0$12\n</rule>",
            INPUT,
        );
        assert_eq!(got, vec![r#"t.we: {"lvl":"info","app":"web","msg":"a"}"#]);
        // invert rules leave $N as written
        let got = run(
            "<rule>\nkey lvl\npattern /x/\ninvert true\ntag t.$1\n</rule>",
            &INPUT[..1],
        );
        assert_eq!(got, vec![r#"t.$1: {"lvl":"info","app":"web","msg":"a"}"#]);
    }

    #[test]
    fn configuration_errors() {
        // case 046
        assert_eq!(config_error(""), "missing rewriterules");
        // case 045
        assert_eq!(
            config_error("<rule>\nkey message\npattern /x/\n</rule>"),
            "'tag' parameter is required, in section rule"
        );
        assert_eq!(
            config_error("rewriterule1 message ^x$ y"),
            "\"rewriteruleN\" is not supported since v2.0.0. Use <rule> section."
        );
        assert_eq!(
            config_error("<rule>\nkey a\npattern /x/\ntag y\nlabel @NOPE\n</rule>"),
            "@NOPE label not found"
        );
        assert_eq!(
            config_error("<rule>\nkey a\npattern /x/\ntag y\n</rule>\n<rule>\nkey a\npattern /x/\ntag z\n</rule>"),
            "duplicated rewriterules found: a"
        );
        assert_eq!(
            config_error("<rule>\nkey a\npattern /x/\ntag y\n</rule>\n<rule>\nkey a\npattern /x/i\ntag z\n</rule>"),
            "<accepted>"
        );
        assert_eq!(
            config_error("remove_tag_prefix a\nremove_tag_regexp /b/\n<rule>\nkey a\npattern /x/\ntag y\n</rule>"),
            "remove_tag_prefix and remove_tag_regexp are exclusive"
        );
    }

    #[test]
    fn capitalize_is_rubys() {
        assert_eq!(capitalize("hELLO"), "Hello");
        assert_eq!(capitalize(""), "");
        assert_eq!(capitalize("éa"), "Éa");
    }
}
