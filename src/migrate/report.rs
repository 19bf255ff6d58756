//! `ferrentd --dry-run --report [text|json]`: for every directive and section, its plugin
//! (native, or unknown with the gem it comes from) and for every parameter whether ferrentd
//! honours it, accepts it without effect, or does not know it; embedded Ruby with what it
//! evaluated to; the node state a Fluentd left behind; and a one-line verdict.
//! The JSON form is stable (`schema_version`) and described by `docs/report.schema.json`.

use std::collections::HashMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config_parser::de::{observe, SectionUse};
use crate::config_parser::{compat, ConfigError, Element, ParamValue};
use crate::engine::{Engine, EngineOptions};

pub const SCHEMA_VERSION: u32 = 1;

/// Parameters ferrentd reads but that change nothing, with the reason; keyed by plugin `@type`
/// (`*` for any plugin). Kept beside the report, which is what shows them.
const NO_EFFECT: &[(&str, &str, &str)] = &[
    ("sample", "reuse_record", "every event gets its own record"),
    (
        "sample",
        "suspend",
        "there is no state to suspend across restarts",
    ),
    ("dummy", "reuse_record", "every event gets its own record"),
    (
        "dummy",
        "suspend",
        "there is no state to suspend across restarts",
    ),
    ("forward", "ciphers", "rustls chooses its own cipher suites"),
    (
        "forward",
        "tls_ciphers",
        "rustls chooses its own cipher suites",
    ),
    (
        "forward",
        "insecure",
        "rustls chooses its own cipher suites",
    ),
    (
        "forward",
        "read_interval_msec",
        "the ack is read as soon as it arrives",
    ),
    (
        "forward",
        "read_length",
        "the ack is read as soon as it arrives",
    ),
    (
        "forward",
        "generate_private_key_length",
        "an ECDSA P-256 key is generated",
    ),
    (
        "forward",
        "generate_cert_digest",
        "an ECDSA P-256 certificate is generated",
    ),
    ("null", "never_flush", "out_null writes nothing either way"),
    (
        "copy",
        "copy_mode",
        "every store receives its own copy of the events",
    ),
    ("stdout", "use_logger", "lines go to stdout"),
    ("file", "recompress", "chunks are compressed once"),
    ("file", "time_as_integer", "out_file formats times itself"),
    (
        "*",
        "slow_flush_log_threshold",
        "slow flushes are not logged",
    ),
    ("*", "delayed_commit_timeout", "no output commits late"),
    ("systemd", "mode", "storage files get the default mode"),
    (
        "systemd",
        "dir_mode",
        "storage folders get the default mode",
    ),
    ("json", "json_parser", "one JSON engine"),
    (
        "system",
        "workers",
        "ferrentd runs the work of every worker in one process",
    ),
    ("system", "process_name", "the process keeps its name"),
    ("system", "enable_jit", "there is no Ruby to compile"),
    ("system", "rpc_endpoint", "the RPC endpoint is not served"),
    (
        "system",
        "enable_get_dump",
        "the RPC endpoint is not served",
    ),
    (
        "system",
        "disable_shared_socket",
        "one process: nothing is shared",
    ),
    (
        "system",
        "restart_worker_interval",
        "there are no worker processes to restart",
    ),
    ("system", "umask", "the umask of the process is kept"),
];

/// Third-party plugin types seen in public configs → the gem that provides them.
const GEMS: &[(&str, &str)] = &[
    ("elasticsearch", "fluent-plugin-elasticsearch"),
    ("elasticsearch_data_stream", "fluent-plugin-elasticsearch"),
    ("elasticsearch_dynamic", "fluent-plugin-elasticsearch"),
    ("opensearch", "fluent-plugin-opensearch"),
    ("loki", "fluent-plugin-grafana-loki"),
    ("opentelemetry", "fluent-plugin-opentelemetry"),
    (
        "kubernetes_metadata",
        "fluent-plugin-kubernetes_metadata_filter",
    ),
    ("kubernetes_objects", "fluent-plugin-kubernetes-objects"),
    ("kubernetes", "fluent-plugin-kubernetes_metadata_filter"),
    ("cri", "fluent-plugin-parser-cri"),
    ("multi_format", "fluent-plugin-multi-format-parser"),
    ("concat", "fluent-plugin-concat"),
    ("detect_exceptions", "fluent-plugin-detect-exceptions"),
    ("record_modifier", "fluent-plugin-record-modifier"),
    ("prometheus", "fluent-plugin-prometheus"),
    ("prometheus_monitor", "fluent-plugin-prometheus"),
    ("prometheus_output_monitor", "fluent-plugin-prometheus"),
    ("prometheus_tail_monitor", "fluent-plugin-prometheus"),
    ("s3", "fluent-plugin-s3"),
    ("kafka", "fluent-plugin-kafka"),
    ("kafka2", "fluent-plugin-kafka"),
    ("rdkafka", "fluent-plugin-kafka"),
    ("rdkafka2", "fluent-plugin-kafka"),
    ("kafka_group", "fluent-plugin-kafka"),
    ("cloudwatch_logs", "fluent-plugin-cloudwatch-logs"),
    ("kinesis_streams", "fluent-plugin-kinesis"),
    ("kinesis_firehose", "fluent-plugin-kinesis"),
    ("splunk_hec", "fluent-plugin-splunk-hec"),
    ("datadog", "fluent-plugin-datadog"),
    ("google_cloud", "fluent-plugin-google-cloud"),
    ("bigquery_insert", "fluent-plugin-bigquery"),
    ("mongo", "fluent-plugin-mongo"),
    ("newrelic", "fluent-plugin-newrelic"),
    ("influxdb", "fluent-plugin-influxdb"),
    ("grok", "fluent-plugin-grok-parser"),
    ("geoip", "fluent-plugin-geoip"),
    ("throttle", "fluent-plugin-throttle"),
    ("dedot", "fluent-plugin-dedot_filter"),
    ("record_reformer", "fluent-plugin-record-reformer"),
    ("forest", "fluent-plugin-forest"),
    ("flowcounter", "fluent-plugin-flowcounter"),
    ("azure-loganalytics", "fluent-plugin-azure-loganalytics"),
    ("gelf", "fluent-plugin-gelf-hs"),
    ("sumologic", "fluent-plugin-sumologic_output"),
    ("logzio_buffered", "fluent-plugin-logzio"),
    ("systemd", "fluent-plugin-systemd"),
    ("systemd_entry", "fluent-plugin-systemd"),
    ("rewrite_tag_filter", "fluent-plugin-rewrite-tag-filter"),
    ("logfmt", "fluent-plugin-logfmt"),
];

/// Parameters every section may carry; the engine handles them.
const RESERVED: &[&str] = &[
    "@type",
    "@id",
    "@label",
    "@log_level",
    "type",
    "id",
    "log_level",
];

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub config: String,
    /// `unchanged`, `differences` or `cannot_run`.
    pub status: &'static str,
    pub verdict: String,
    pub differences: usize,
    pub error: Option<ErrorInfo>,
    pub sections: Vec<SectionReport>,
    pub state: super::takeover::NodeState,
}

#[derive(Debug, Serialize)]
pub struct ErrorInfo {
    pub message: String,
    pub file: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

#[derive(Debug, Serialize)]
pub struct PluginInfo {
    pub kind: &'static str,
    pub name: String,
    /// `native` or `unknown`.
    pub status: &'static str,
    pub gem: Option<String>,
    pub suggestion: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RubyInfo {
    pub expression: String,
    pub value: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ParamReport {
    pub name: String,
    pub value: Option<String>,
    pub line: usize,
    /// `honoured`, `no_effect`, `unknown` or `reserved`.
    pub status: &'static str,
    pub reason: Option<String>,
    pub suggestion: Option<String>,
    pub ruby: Option<RubyInfo>,
}

#[derive(Debug, Serialize)]
pub struct SectionReport {
    pub section: String,
    pub arg: String,
    pub file: String,
    pub line: usize,
    pub plugin: Option<PluginInfo>,
    pub parameters: Vec<ParamReport>,
    pub sections: Vec<SectionReport>,
}

/// The plugin kind a section names with `@type`.
fn kind_of(section: &str, parent: &str) -> Option<&'static str> {
    match section {
        "source" => Some("input"),
        "filter" => Some("filter"),
        "match" => Some("output"),
        "store" if parent == "match" || parent == "store" => Some("output"),
        "parse" => Some("parser"),
        "format" => Some("formatter"),
        "buffer" => Some("buffer"),
        "storage" => Some("storage"),
        "secondary" => Some("secondary"),
        _ => None,
    }
}

/// The closest name within a small edit distance: Fluentd users' typos are one or two letters.
pub fn did_you_mean<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    let limit = (word.chars().count() / 4).clamp(1, 3);
    candidates
        .filter(|c| *c != word)
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, c.len()))
        .map(|(_, c)| c.to_string())
}

fn plugin_info(kind: &'static str, name: &str, build_ok: bool) -> PluginInfo {
    let registered: Vec<&str> = crate::plugins::registered_names()
        .into_iter()
        .filter(|(k, _)| *k == kind)
        .map(|(_, n)| n)
        .collect();
    let known = match kind {
        "input" | "filter" | "output" | "parser" | "formatter" => registered.contains(&name),
        // Buffers, storages and secondaries are checked by the build itself.
        _ => build_ok || matches!(name, "memory" | "file" | "local"),
    };
    let gem = GEMS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, g)| g.to_string());
    PluginInfo {
        kind,
        name: name.to_string(),
        status: if known { "native" } else { "unknown" },
        gem: if known { None } else { gem },
        suggestion: if known {
            None
        } else {
            did_you_mean(name, registered.iter().copied())
        },
    }
}

/// Which parameters the plugin structs declared, per section (file, offset).
type Declared = HashMap<(PathBuf, usize), Vec<&'static str>>;

fn declared_map(uses: Vec<SectionUse>) -> Declared {
    let mut m: Declared = HashMap::new();
    for u in uses {
        m.entry((u.file, u.offset)).or_default().extend(u.declared);
    }
    m
}

/// The raw text after `key` on the parameter's line, when it holds embedded Ruby.
fn ruby_source(line: &str, key: &str) -> Option<String> {
    let rest = line.trim_start().strip_prefix(key)?.trim();
    rest.contains("#{").then(|| rest.to_string())
}

fn section_report(
    e: &Element,
    parent: &str,
    plugin_of: &str,
    declared: &Declared,
    build_ok: bool,
) -> SectionReport {
    let (line, _) = e.span.line_col();
    let plugin = match (kind_of(&e.name, parent), e.plugin_type()) {
        (Some(kind), Some(t)) => Some(plugin_info(kind, t, build_ok)),
        _ => None,
    };
    let own_plugin = e.plugin_type().unwrap_or(plugin_of).to_string();
    let fields = declared.get(&(e.span.file.path.clone(), e.span.offset));
    let mut parameters = Vec::new();
    for p in &e.params {
        let (pline, _) = p.span.line_col();
        let value = match &p.value {
            ParamValue::Str(s) => Some(s.clone()),
            ParamValue::Nil | ParamValue::Default => None,
        };
        let ruby = ruby_source(p.span.line_text(), &p.key).map(|expression| RubyInfo {
            expression,
            value: value.clone(),
        });
        let mut reason = None;
        let mut suggestion = None;
        let status = if RESERVED.contains(&p.key.as_str()) {
            "reserved"
        } else if let Some((_, _, why)) = NO_EFFECT
            .iter()
            .find(|(pl, k, _)| (*pl == own_plugin || *pl == "*") && *k == p.key)
        {
            reason = Some(why.to_string());
            "no_effect"
        } else {
            match fields {
                Some(f) if f.contains(&"*") || f.contains(&p.key.as_str()) => "honoured",
                Some(f) => {
                    suggestion =
                        did_you_mean(&p.key, f.iter().copied().filter(|k| !k.starts_with('@')));
                    reason = Some(format!("{} does not know this parameter; it is ignored (Fluentd warns the same for parameters its plugin does not declare)", own_plugin));
                    "unknown"
                }
                // Nothing read this section: the build stopped before it, or a plugin reads it
                // by hand (every parameter as a value).
                None if build_ok => "honoured",
                None => {
                    reason = Some("not checked: the build stopped before this section".to_string());
                    "unknown"
                }
            }
        };
        parameters.push(ParamReport {
            name: p.key.clone(),
            value,
            line: pline,
            status,
            reason,
            suggestion,
            ruby,
        });
    }
    let sections = e
        .elements
        .iter()
        .map(|c| section_report(c, &e.name, &own_plugin, declared, build_ok))
        .collect();
    SectionReport {
        section: e.name.clone(),
        arg: e.arg.clone(),
        file: e.span.file.path.display().to_string(),
        line,
        plugin,
        parameters,
        sections,
    }
}

fn count_differences(s: &SectionReport) -> usize {
    let own = s
        .parameters
        .iter()
        .filter(|p| p.status == "unknown" || p.status == "no_effect")
        .count()
        + usize::from(s.plugin.as_ref().is_some_and(|p| p.status == "unknown"));
    own + s.sections.iter().map(count_differences).sum::<usize>()
}

fn error_info(e: &ConfigError) -> ErrorInfo {
    ErrorInfo {
        message: e.message.clone(),
        file: e.location.as_ref().map(|l| l.file.display().to_string()),
        line: e.location.as_ref().map(|l| l.line),
        column: e.location.as_ref().map(|l| l.column),
    }
}

/// Builds the report for a parsed config (or the error that stopped parsing).
pub fn build(config: &Path, parsed: Result<Element, ConfigError>) -> Report {
    let root = match parsed {
        Ok(r) => r,
        Err(e) => {
            return Report {
                schema_version: SCHEMA_VERSION,
                config: config.display().to_string(),
                status: "cannot_run",
                verdict: format!("cannot run: {}", e.message),
                differences: 0,
                error: Some(error_info(&e)),
                sections: Vec::new(),
                state: Default::default(),
            }
        }
    };
    let (built, uses) = observe(|| Engine::build(&root, &EngineOptions::default()).map(|_| ()));
    let declared = declared_map(uses);
    let mut shown = root.clone();
    let compat_err = compat::apply(&mut shown).err();
    let build_ok = built.is_ok() && compat_err.is_none();
    let sections: Vec<SectionReport> = shown
        .elements
        .iter()
        .map(|e| section_report(e, "ROOT", &e.name, &declared, build_ok))
        .collect();
    let differences = sections.iter().map(count_differences).sum();
    let state = super::takeover::inspect(&shown);
    let (status, verdict, error) = match built.err().or(compat_err) {
        Some(e) => (
            "cannot_run",
            format!("cannot run: {}", e.message),
            Some(error_info(&e)),
        ),
        None if differences == 0 => ("unchanged", "runs unchanged".to_string(), None),
        None => (
            "differences",
            format!(
                "runs with {differences} difference{}",
                if differences == 1 { "" } else { "s" }
            ),
            None,
        ),
    };
    Report {
        schema_version: SCHEMA_VERSION,
        config: config.display().to_string(),
        status,
        verdict,
        differences,
        error,
        sections,
        state,
    }
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "ferrentd compatibility report for {}", self.config);
        if let Some(e) = &self.error {
            let at = match (&e.file, e.line, e.column) {
                (Some(f), Some(l), Some(c)) => format!(" (at {f} line {l},{c})"),
                _ => String::new(),
            };
            let _ = writeln!(s, "error: {}{at}", e.message);
        }
        for sec in &self.sections {
            text_section(&mut s, sec, 0);
        }
        s.push_str(&self.state.to_text());
        let _ = writeln!(s, "verdict: {}", self.verdict);
        s
    }
}

fn text_section(s: &mut String, sec: &SectionReport, depth: usize) {
    let pad = "  ".repeat(depth);
    let head = if sec.arg.is_empty() {
        format!("<{}>", sec.section)
    } else {
        format!("<{} {}>", sec.section, sec.arg)
    };
    let plugin = match &sec.plugin {
        Some(p) if p.status == "native" => format!(" @type {}: native {}", p.name, p.kind),
        Some(p) => {
            let mut t = format!(" @type {}: UNKNOWN {} plugin", p.name, p.kind);
            if let Some(g) = &p.gem {
                let _ = write!(t, " (from the gem {g}, not available natively)");
            }
            if let Some(m) = &p.suggestion {
                let _ = write!(t, "; did you mean {m}?");
            }
            t
        }
        None => String::new(),
    };
    let _ = writeln!(s, "{pad}{head}{plugin}  (line {})", sec.line);
    for p in &sec.parameters {
        let mark = match p.status {
            "honoured" | "reserved" => "ok",
            "no_effect" => "accepted, no effect",
            _ => "UNKNOWN",
        };
        let mut line = format!(
            "{pad}  {} {}: {mark}",
            p.name,
            p.value.as_deref().unwrap_or("nil")
        );
        if let Some(r) = &p.ruby {
            let _ = write!(
                line,
                " [Ruby {} => {:?}]",
                r.expression,
                r.value.as_deref().unwrap_or("nil")
            );
        }
        if let Some(r) = &p.reason {
            let _ = write!(line, " — {r}");
        }
        if let Some(m) = &p.suggestion {
            let _ = write!(line, "; did you mean {m}?");
        }
        let _ = writeln!(s, "{line}");
    }
    for c in &sec.sections {
        text_section(s, c, depth + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(text: &str) -> Report {
        let parsed =
            crate::config_parser::parse_str(text, Path::new("t.conf"), &Default::default());
        build(Path::new("t.conf"), parsed)
    }

    #[test]
    fn suggestions_for_typos() {
        assert_eq!(
            did_you_mean("expresion", ["expression", "types"].into_iter()),
            Some("expression".into())
        );
        assert_eq!(
            did_you_mean("elasticsearh", ["elasticsearch", "stdout"].into_iter()),
            Some("elasticsearch".into())
        );
        assert_eq!(did_you_mean("zzz", ["expression"].into_iter()), None);
    }

    #[test]
    fn unknown_parameter_and_no_effect_are_differences() {
        let r = report(
            "<source>\n  @type sample\n  tag a\n  reuse_record true\n</source>\n<filter **>\n  @type grep\n  <regexp>\n    key a\n    patern /x/\n    pattern /y/\n  </regexp>\n</filter>\n<match **>\n  @type null\n</match>\n",
        );
        assert_eq!(r.status, "differences");
        assert_eq!(r.verdict, "runs with 2 differences");
        let sample = &r.sections[0];
        let reuse = sample
            .parameters
            .iter()
            .find(|p| p.name == "reuse_record")
            .unwrap();
        assert_eq!(reuse.status, "no_effect");
        let tag = sample.parameters.iter().find(|p| p.name == "tag").unwrap();
        assert_eq!(tag.status, "honoured");
        let regexp = &r.sections[1].sections[0];
        let patern = regexp
            .parameters
            .iter()
            .find(|p| p.name == "patern")
            .unwrap();
        assert_eq!(patern.status, "unknown");
        assert_eq!(patern.suggestion.as_deref(), Some("pattern"));
    }

    #[test]
    fn unknown_plugin_names_its_gem_and_a_suggestion() {
        let r = report(
            "<match **>\n  @type elasticsearh\n</match>\n<match x>\n  @type kafka2\n</match>\n",
        );
        assert_eq!(r.status, "cannot_run");
        assert!(
            r.verdict
                .starts_with("cannot run: Unknown output plugin 'elasticsearh'"),
            "{}",
            r.verdict
        );
        let p = r.sections[0].plugin.as_ref().unwrap();
        assert_eq!(p.status, "unknown");
        assert_eq!(
            p.suggestion.as_deref(),
            if crate::plugins::registered_names()
                .iter()
                .any(|(_, n)| *n == "elasticsearch")
            {
                Some("elasticsearch")
            } else {
                None
            }
        );
        let k = r.sections[1].plugin.as_ref().unwrap();
        assert_eq!(k.gem.as_deref(), Some("fluent-plugin-kafka"));
        assert_eq!(r.error.as_ref().and_then(|e| e.line), Some(1));
    }

    #[test]
    fn embedded_ruby_shows_expression_and_value() {
        let r = report("<source>\n  @type sample\n  tag \"#{'app' + '.x'}\"\n</source>\n<match **>\n  @type null\n</match>\n");
        let tag = r.sections[0]
            .parameters
            .iter()
            .find(|p| p.name == "tag")
            .unwrap();
        let ruby = tag.ruby.as_ref().unwrap();
        assert_eq!(ruby.expression, "\"#{'app' + '.x'}\"");
        assert_eq!(ruby.value.as_deref(), Some("app.x"));
        assert_eq!(r.verdict, "runs unchanged");
    }
}
