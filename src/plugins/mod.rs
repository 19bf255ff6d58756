//! Plugins, one module per plugin named as Fluentd names it (`@type http` → `in_http.rs`, or a
//! folder past ~1,000 lines: `@type tail` → `in_tail/`), and the registry that maps `@type`
//! names to constructors.

use crate::config_parser::{ConfigError, Element};
use crate::event::{EventTime, Record};
pub use crate::router::stage::{Filter, Output, OutputError};
use crate::router::{Emitter, ErrorSink, Shutdown};

pub mod buf_file;
pub mod buf_file_single;
pub mod buf_memory;
pub mod exec_util;
pub mod extract;
pub mod filter_concat;
pub mod filter_grep;
pub mod filter_kubernetes_metadata;
pub mod filter_parser;
pub mod filter_prometheus;
pub mod filter_record_modifier;
pub mod filter_record_transformer;
pub mod filter_stdout;
pub mod formatter_csv;
pub mod formatter_hash;
pub mod formatter_json;
pub mod formatter_ltsv;
pub mod formatter_msgpack;
pub mod formatter_out_file;
pub mod formatter_single_value;
pub mod formatter_stdout;
pub mod formatter_tsv;
pub mod in_exec;
pub mod in_forward;
pub mod in_http;
pub mod in_kubearmor;
pub mod in_kubernetes_events;
pub mod in_kubernetes_objects;
pub mod in_monitor_agent;
pub mod in_opentelemetry;
pub mod in_prometheus;
pub mod in_prometheus_monitor;
pub mod in_prometheus_output_monitor;
pub mod in_prometheus_tail_monitor;
pub mod in_sample;
pub mod in_syslog;
pub mod in_systemd;
pub mod in_tail;
pub mod in_tcp;
pub mod in_udp;
pub mod in_unix;
pub mod inject;
pub mod metered;
pub mod out_copy;
pub mod out_detect_exceptions;
pub mod out_elasticsearch;
pub mod out_exec;
pub mod out_exec_filter;
pub mod out_file;
pub mod out_forward;
pub mod out_http;
pub mod out_loki;
pub mod out_null;
pub mod out_opentelemetry;
pub mod out_prometheus;
pub mod out_relabel;
pub mod out_rewrite_tag_filter;
pub mod out_roundrobin;
pub mod out_stdout;
pub mod parser;
pub mod parser_apache2;
pub mod parser_apache_error;
pub mod parser_cri;
pub mod parser_csv;
pub mod parser_json;
pub mod parser_kubernetes;
pub mod parser_logfmt;
pub mod parser_ltsv;
pub mod parser_msgpack;
pub mod parser_multi_format;
pub mod parser_multiline;
pub mod parser_nginx;
pub mod parser_none;
pub mod parser_regexp;
pub mod parser_syslog;
pub mod parser_tsv;
pub mod prometheus;
pub mod service_discovery;
pub mod storage_local;

/// Outputs that only route events onwards (they re-emit instead of delivering): `ferrentd
/// test` runs them as themselves, and `compare` does not treat them as sinks.
pub const ROUTING_OUTPUTS: &[&str] = &[
    "copy",
    "relabel",
    "rewrite_tag_filter",
    "roundrobin",
    "detect_exceptions",
];

/// What every constructor gets besides its section.
#[derive(Clone)]
pub struct PluginContext {
    /// `--strict-config-value`: strict integer/float/bool conversion.
    pub strict: bool,
    pub hostname: String,
    pub worker_id: u32,
    /// Where this plugin's re-emitted events go: its `@label`'s router, else the root router.
    pub router: Emitter,
    /// The `<label @ERROR>` router, or a logger when there is none.
    pub errors: ErrorSink,
    /// Resolves `@label @NAME` (for plugins that name labels in sub-sections).
    pub labels: crate::router::LabelTable,
    /// `<system> root_dir`: where plugins with an `@id` keep state (buf_file chunks).
    pub root_dir: Option<std::path::PathBuf>,
    /// What the plugins of this configuration have claimed (pos files, buffer paths).
    pub variable_store: VariableStore,
    /// `ferrentd test`: builds a stand-in for each output that would leave the process.
    pub output_capture: Option<OutputCapture>,
}

/// Replaces outputs while a config runs under `ferrentd test`: called for every `<match>` and
/// `<store>`; `Some` is the stand-in, `None` builds the real plugin (routing outputs).
pub type OutputCapture =
    std::sync::Arc<dyn Fn(&Element, &PluginContext) -> Option<Box<dyn Output>> + Send + Sync>;

/// Fluentd's `variable_store`: shared by the plugins of one configuration, so two of them
/// cannot use the same state file. A reload builds a new one, so the running config's claims
/// do not count against the new config.
#[derive(Clone, Default)]
pub struct VariableStore(
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
);

impl VariableStore {
    /// Records `owner` for `key`, or returns the owner that claimed it first.
    pub fn claim(&self, key: &str, owner: &str) -> Result<(), String> {
        let mut claims = match self.0.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        match claims.get(key) {
            Some(first) => Err(first.clone()),
            None => {
                claims.insert(key.to_string(), owner.to_string());
                Ok(())
            }
        }
    }
}

impl PluginContext {
    /// A context for unit tests: root and error routers that go nowhere.
    pub fn for_tests() -> Self {
        PluginContext {
            strict: false,
            hostname: crate::util::hostname(),
            worker_id: 0,
            router: Emitter::detached("@ROOT"),
            errors: ErrorSink::log_only(),
            labels: crate::router::LabelTable::default(),
            root_dir: None,
            variable_store: VariableStore::default(),
            output_capture: None,
        }
    }

    /// Deserializes `elem` into a plugin's config struct, warning about unknown parameters.
    pub fn configure<T: serde::de::DeserializeOwned>(
        &self,
        elem: &Element,
        plugin: &str,
    ) -> Result<T, ConfigError> {
        crate::config_parser::configure(
            elem,
            &crate::config_parser::ConfigureOptions {
                strict: self.strict,
                plugin: plugin.to_string(),
            },
        )
    }
}

/// What `run` of an input gets.
pub struct InputContext {
    pub router: Emitter,
    pub errors: ErrorSink,
    pub shutdown: Shutdown,
    pub runtime: tokio::runtime::Handle,
}

/// A `<source>`. `run` is called on a thread of its own and returns once `ctx.shutdown` fires,
/// after emitting everything it has read.
pub trait Input: Send {
    /// Acquires what must exist before events flow (listening sockets, libraries). Called on
    /// the main thread before any input runs; an error stops start-up.
    fn start(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    fn run(self: Box<Self>, ctx: InputContext) -> anyhow::Result<()>;
}

/// Why a parser could not parse its input (Fluentd's `pattern not matched` and friends).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ParserError(pub String);

/// A `<parse>` plugin. One call parses one unit of input (a line, or a joined multi-line event)
/// into zero or more events. A `None` time means "no time and estimate_current_event false".
pub trait Parser: Send + Sync {
    fn parse(
        &self,
        text: &[u8],
        emit: &mut dyn FnMut(Option<EventTime>, Record),
    ) -> Result<(), ParserError>;

    /// Reads a whole stream as Fluentd's `parse_io` (json, msgpack). `None`: this parser reads
    /// line by line.
    fn parse_io(
        &self,
        _reader: &mut dyn std::io::Read,
        _emit: &mut dyn FnMut(Option<EventTime>, Record),
    ) -> Option<Result<(), ParserError>> {
        None
    }

    /// Multi-line parsers (`@type multiline`) make in_tail buffer lines until the next first line.
    fn is_multiline(&self) -> bool {
        false
    }

    /// For multi-line parsers: does this line start a new event?
    fn is_firstline(&self, _line: &[u8]) -> bool {
        true
    }
}

/// A `<format>` plugin: appends one event's formatted bytes to `out`.
pub trait Formatter: Send + Sync {
    fn format(&self, tag: &str, time: EventTime, record: &Record, out: &mut Vec<u8>);
}

pub type InputCtor = fn(&Element, &PluginContext) -> Result<Box<dyn Input>, ConfigError>;
pub type FilterCtor = fn(&Element, &PluginContext) -> Result<Box<dyn Filter>, ConfigError>;
pub type OutputCtor = fn(&Element, &PluginContext) -> Result<Box<dyn Output>, ConfigError>;
pub type ParserCtor = fn(&Element, &PluginContext) -> Result<Box<dyn Parser>, ConfigError>;
pub type FormatterCtor = fn(&Element, &PluginContext) -> Result<Box<dyn Formatter>, ConfigError>;

/// `@type` name → constructor, per plugin kind. The names are Fluentd's.
pub const INPUTS: &[(&str, InputCtor)] = &[
    ("tail", in_tail::create),
    ("sample", in_sample::create),
    ("dummy", in_sample::create),
    ("systemd", in_systemd::create),
    ("forward", in_forward::create),
    ("http", in_http::create),
    ("kubearmor", in_kubearmor::create),
    ("tcp", in_tcp::create),
    ("udp", in_udp::create),
    ("syslog", in_syslog::create),
    ("unix", in_unix::create),
    ("exec", in_exec::create),
    ("kubernetes_objects", in_kubernetes_objects::create),
    ("kubernetes_events", in_kubernetes_events::create),
    ("monitor_agent", in_monitor_agent::create),
    ("opentelemetry", in_opentelemetry::create),
    ("prometheus", in_prometheus::create),
    ("prometheus_monitor", in_prometheus_monitor::create),
    (
        "prometheus_output_monitor",
        in_prometheus_output_monitor::create,
    ),
    (
        "prometheus_tail_monitor",
        in_prometheus_tail_monitor::create,
    ),
];

pub const FILTERS: &[(&str, FilterCtor)] = &[
    ("grep", filter_grep::create),
    ("record_transformer", filter_record_transformer::create),
    ("record_modifier", filter_record_modifier::create),
    ("parser", filter_parser::create),
    ("stdout", filter_stdout::create),
    ("concat", filter_concat::create),
    ("prometheus", filter_prometheus::create),
    ("kubernetes_metadata", filter_kubernetes_metadata::create),
];

pub const OUTPUTS: &[(&str, OutputCtor)] = &[
    ("stdout", out_stdout::create),
    ("file", out_file::create),
    ("null", out_null::create),
    ("forward", out_forward::create),
    ("loki", out_loki::create),
    ("opentelemetry", out_opentelemetry::create),
    ("http", out_http::create),
    ("elasticsearch", out_elasticsearch::create),
    ("opensearch", out_elasticsearch::create_opensearch),
    (
        "elasticsearch_data_stream",
        out_elasticsearch::create_data_stream,
    ),
    ("copy", out_copy::create),
    ("relabel", out_relabel::create),
    ("rewrite_tag_filter", out_rewrite_tag_filter::create),
    ("exec", out_exec::create),
    ("exec_filter", out_exec_filter::create),
    ("roundrobin", out_roundrobin::create),
    ("detect_exceptions", out_detect_exceptions::create),
    ("prometheus", out_prometheus::create),
];

pub const PARSERS: &[(&str, ParserCtor)] = &[
    ("json", parser_json::create),
    ("regexp", parser_regexp::create),
    ("none", parser_none::create),
    ("ltsv", parser_ltsv::create),
    ("csv", parser_csv::create),
    ("tsv", parser_tsv::create),
    ("syslog", parser_syslog::create),
    ("apache2", parser_apache2::create),
    ("apache_error", parser_apache_error::create),
    ("nginx", parser_nginx::create),
    ("multiline", parser_multiline::create),
    ("logfmt", parser_logfmt::create),
    ("msgpack", parser_msgpack::create),
    ("cri", parser_cri::create),
    ("kubernetes", parser_kubernetes::create),
    ("multi_format", parser_multi_format::create),
];

pub const FORMATTERS: &[(&str, FormatterCtor)] = &[
    ("json", formatter_json::create),
    ("ltsv", formatter_ltsv::create),
    ("csv", formatter_csv::create),
    ("tsv", formatter_tsv::create),
    ("single_value", formatter_single_value::create),
    ("hash", formatter_hash::create),
    ("out_file", formatter_out_file::create),
    ("stdout", formatter_stdout::create),
    ("msgpack", formatter_msgpack::create),
];

fn lookup<T: Copy>(table: &[(&str, T)], name: &str) -> Option<T> {
    table.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
}

fn unknown(kind: &str, name: &str, elem: &Element) -> ConfigError {
    elem.error(format!(
        "Unknown {kind} plugin '{name}'. Run 'gem search -rd fluent-plugin' to find plugins"
    ))
}

fn type_of<'a>(elem: &'a Element, directive: &str) -> Result<&'a str, ConfigError> {
    elem.plugin_type().ok_or_else(|| {
        elem.error(format!(
            "Missing '@type' parameter on <{directive}> directive"
        ))
    })
}

/// Fluentd's `PluginId`: an `@id` names one plugin of the whole configuration.
fn claim_id(elem: &Element, ctx: &PluginContext) -> Result<(), ConfigError> {
    if let Some(id) = elem.get("@id") {
        if ctx
            .variable_store
            .claim(&format!("plugin_id:{id}"), id)
            .is_err()
        {
            let at = elem.param("@id").map(|p| p.span.clone());
            let msg = format!("Duplicated plugin id `{id}`. Check whole configuration and fix it.");
            return Err(match at {
                Some(span) => ConfigError::at(msg, &span),
                None => elem.error(msg),
            });
        }
    }
    Ok(())
}

/// A `<buffer>` / `<storage>` whose `@type` is not a known plugin is a config error in every
/// plugin that takes the section (outputs that write synchronously included).
pub fn check_section_type(
    elem: &Element,
    section: &str,
    known: &[&str],
) -> Result<(), ConfigError> {
    for s in elem.children(section) {
        if let Some(t) = s.plugin_type() {
            if !known.contains(&t) {
                return Err(s.error(format!(
                    "Unknown {section} plugin '{t}'. Run 'gem search -rd fluent-plugin' to find plugins"
                )));
            }
        }
    }
    Ok(())
}

/// The `<buffer> @type` names ferrentd has.
pub const BUFFER_TYPES: &[&str] = &["memory", "file"];

pub fn new_input(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Input>, ConfigError> {
    claim_id(elem, ctx)?;
    let name = type_of(elem, "source")?;
    let ctor = lookup(INPUTS, name).ok_or_else(|| unknown("input", name, elem))?;
    ctor(elem, ctx)
}

pub fn new_filter(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Filter>, ConfigError> {
    claim_id(elem, ctx)?;
    let name = type_of(elem, "filter")?;
    let ctor = lookup(FILTERS, name).ok_or_else(|| unknown("filter", name, elem))?;
    ctor(elem, ctx)
}

pub fn new_output(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Output>, ConfigError> {
    claim_id(elem, ctx)?;
    let name = type_of(elem, &elem.name)?;
    let ctor = lookup(OUTPUTS, name).ok_or_else(|| unknown("output", name, elem))?;
    if let Some(capture) = &ctx.output_capture {
        if let Some(stand_in) = capture(elem, ctx) {
            // The real plugin is still configured, so its config errors are reported.
            ctor(elem, ctx)?;
            return Ok(stand_in);
        }
    }
    ctor(elem, ctx)
}

/// Builds a `<store>` of copy or roundrobin: its own `@label` if it names one, and metered
/// like a `<match>` so monitoring counts what each store is given.
pub fn new_store(
    s: &Element,
    ctx: &PluginContext,
) -> Result<std::sync::Arc<dyn Output>, ConfigError> {
    let store_ctx = match s.get("@label") {
        Some(l) => PluginContext {
            router: ctx
                .labels
                .get(l)
                .ok_or_else(|| s.error(format!("{l} label not found")))?,
            ..ctx.clone()
        },
        None => ctx.clone(),
    };
    let scope = crate::metrics::enter(s, crate::metrics::Category::Output);
    let o = new_output(s, &store_ctx)?;
    Ok(metered::output(o, scope.metrics.clone()))
}

/// Builds the parser of a `<parse>` section.
pub fn new_parser(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Parser>, ConfigError> {
    let name = type_of(elem, "parse")?;
    let ctor = lookup(PARSERS, name).ok_or_else(|| unknown("parser", name, elem))?;
    ctor(elem, ctx)
}

/// Builds the formatter of a `<format>` section.
pub fn new_formatter(
    elem: &Element,
    ctx: &PluginContext,
) -> Result<Box<dyn Formatter>, ConfigError> {
    let name = type_of(elem, "format")?;
    let ctor = lookup(FORMATTERS, name).ok_or_else(|| unknown("formatter", name, elem))?;
    ctor(elem, ctx)
}

/// Names of every registered plugin, for the compatibility matrix test.
pub fn registered_names() -> Vec<(&'static str, &'static str)> {
    let mut v = Vec::new();
    v.extend(INPUTS.iter().map(|(n, _)| ("input", *n)));
    v.extend(FILTERS.iter().map(|(n, _)| ("filter", *n)));
    v.extend(OUTPUTS.iter().map(|(n, _)| ("output", *n)));
    v.extend(PARSERS.iter().map(|(n, _)| ("parser", *n)));
    v.extend(FORMATTERS.iter().map(|(n, _)| ("formatter", *n)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duplicated_plugin_id_is_a_config_error() {
        let ctx = PluginContext::for_tests();
        let a = crate::test_util::directive("<match a>\n@type null\n@id same\n</match>");
        let b = crate::test_util::directive("<filter b>\n@type stdout\n@id same\n</filter>");
        assert!(new_output(&a, &ctx).is_ok());
        let e = new_filter(&b, &ctx).err().unwrap();
        assert_eq!(
            e.message,
            "Duplicated plugin id `same`. Check whole configuration and fix it."
        );
        // Another configuration (a reload) has its own ids.
        assert!(new_output(&a, &PluginContext::for_tests()).is_ok());
    }

    #[test]
    fn unknown_buffer_and_storage_types_are_config_errors() {
        let ctx = PluginContext::for_tests();
        for (conf, want) in [
            (
                "<match a>\n@type stdout\n<buffer>\n@type bogus\n</buffer>\n</match>",
                "Unknown buffer plugin 'bogus'",
            ),
            (
                "<match a>\n@type null\n<buffer>\n@type bogus\n</buffer>\n</match>",
                "Unknown buffer plugin 'bogus'",
            ),
        ] {
            let e = new_output(&crate::test_util::directive(conf), &ctx)
                .err()
                .unwrap();
            assert!(e.message.starts_with(want), "{}", e.message);
        }
        let e = new_input(
            &crate::test_util::directive(
                "<source>\n@type sample\ntag t\n<storage>\n@type redis\n</storage>\n</source>",
            ),
            &ctx,
        )
        .err()
        .unwrap();
        assert!(
            e.message.starts_with("Unknown storage plugin 'redis'"),
            "{}",
            e.message
        );
        assert!(new_output(
            &crate::test_util::directive(
                "<match a>\n@type stdout\n<buffer>\n@type memory\n</buffer>\n</match>"
            ),
            &ctx
        )
        .is_ok());
    }
}
