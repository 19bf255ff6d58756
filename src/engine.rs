//! Builds the event graph from a parsed config and runs it: one router for the top level and one
//! per `<label>`, every plugin constructed up front (so `--dry-run` checks them all), inputs on
//! threads of their own, and an orderly stop (inputs first, then outputs flush).

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;

use serde::Deserialize;

use crate::config_parser::{compat, ConfigError, Element};
use crate::plugins::{self, Input, InputContext, Output, PluginContext};
use crate::router::{
    Emitter, ErrorSink, LabelTable, MatchPattern, Router, Rule, RuleAction, Shutdown,
};

#[derive(Clone, Default)]
pub struct EngineOptions {
    /// `--strict-config-value`.
    pub strict: bool,
    /// `--without-source`.
    pub without_source: bool,
    /// `ferrentd test`: stand-ins for outputs that would leave the process.
    pub output_capture: Option<plugins::OutputCapture>,
}

impl std::fmt::Debug for EngineOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineOptions")
            .field("strict", &self.strict)
            .field("without_source", &self.without_source)
            .field("output_capture", &self.output_capture.is_some())
            .finish()
    }
}

/// The `<system>` section (spec §5.13); parameters ferrentd does not act on are accepted.
#[derive(Debug, Default, Deserialize)]
#[allow(dead_code)]
pub struct SystemConfig {
    #[serde(default)]
    pub workers: Option<i64>,
    #[serde(default)]
    pub restart_worker_interval: Option<crate::config_parser::types::Time>,
    #[serde(default)]
    pub root_dir: Option<String>,
    #[serde(default)]
    pub log_level: Option<crate::logging::LogLevel>,
    #[serde(default)]
    pub suppress_repeated_stacktrace: Option<bool>,
    #[serde(default)]
    pub ignore_repeated_log_interval: Option<crate::config_parser::types::Time>,
    #[serde(default)]
    pub ignore_same_log_interval: Option<crate::config_parser::types::Time>,
    #[serde(default)]
    pub emit_error_log_interval: Option<crate::config_parser::types::Time>,
    #[serde(default)]
    pub suppress_config_dump: Option<bool>,
    #[serde(default)]
    pub log_event_verbose: Option<bool>,
    #[serde(default)]
    pub without_source: Option<bool>,
    #[serde(default)]
    pub with_source_only: Option<bool>,
    #[serde(default)]
    pub rpc_endpoint: Option<String>,
    #[serde(default)]
    pub enable_get_dump: Option<bool>,
    #[serde(default)]
    pub process_name: Option<String>,
    #[serde(default)]
    pub strict_config_value: Option<bool>,
    #[serde(default)]
    pub enable_msgpack_time_support: Option<bool>,
    #[serde(default)]
    pub disable_shared_socket: Option<bool>,
    #[serde(default)]
    pub enable_input_metrics: Option<bool>,
    #[serde(default)]
    pub enable_size_metrics: Option<bool>,
    #[serde(default)]
    pub enable_jit: Option<bool>,
    #[serde(default)]
    pub file_permission: Option<String>,
    #[serde(default)]
    pub dir_permission: Option<String>,
    #[serde(default)]
    pub config_include_dir: Option<String>,
    #[serde(default)]
    pub umask: Option<String>,
    #[serde(default)]
    pub log: Option<crate::config_parser::Nested>,
    #[serde(default)]
    pub counter_server: Option<crate::config_parser::Nested>,
    #[serde(default)]
    pub counter_client: Option<crate::config_parser::Nested>,
    #[serde(default)]
    pub metrics: Option<crate::config_parser::Nested>,
    #[serde(default)]
    pub source_only_buffer: Option<crate::config_parser::Nested>,
}

/// Reads `<system>` (at most one) from a parsed root.
pub fn system_config(root: &Element, strict: bool) -> Result<SystemConfig, ConfigError> {
    let mut systems = root.children("system");
    let Some(sys) = systems.next() else {
        return Ok(SystemConfig::default());
    };
    if let Some(dup) = systems.next() {
        return Err(dup.error("<system> is duplicated. <system> should be only one"));
    }
    let conf: SystemConfig = crate::config_parser::configure(
        sys,
        &crate::config_parser::ConfigureOptions {
            strict,
            plugin: "system".to_string(),
        },
    )?;
    if let Some(log) = sys.child("log") {
        if let Some(f) = log.get("format") {
            if f != "text" && f != "json" {
                return Err(log.error(format!("valid options are text,json but got {f}")));
            }
        }
    }
    Ok(conf)
}

/// `<system><log>`: (json format, time_format).
pub fn log_style(root: &Element) -> (bool, Option<String>) {
    let log = root.child("system").and_then(|s| s.child("log"));
    (
        log.and_then(|l| l.get("format")) == Some("json"),
        log.and_then(|l| l.get("time_format")).map(str::to_string),
    )
}

/// The label that receives Fluentd's own log events.
pub const LOG_EVENT_LABEL: &str = "@FLUENT_LOG";

/// The tags of log events, one per level.
pub const LOG_EVENT_TAGS: [&str; 6] = [
    "fluent.trace",
    "fluent.debug",
    "fluent.info",
    "fluent.warn",
    "fluent.error",
    "fluent.fatal",
];

/// Fluentd's warnings for top-level matches that capture log events (without `@FLUENT_LOG`).
/// Returns the tags matched.
fn log_event_match_warnings(root: &Router) -> Vec<&'static str> {
    let matched: Vec<&str> = LOG_EVENT_TAGS
        .iter()
        .copied()
        .filter(|t| root.has_match(t))
        .collect();
    if matched.is_empty() {
        return matched;
    }
    tracing::warn!(
        "define <match fluent.**> to capture fluentd logs in top level is deprecated. Use <label @FLUENT_LOG> instead"
    );
    let unmatched: Vec<String> = LOG_EVENT_TAGS
        .iter()
        .filter(|t| !matched.contains(t))
        .map(|t| format!("\"{t}\""))
        .collect();
    if !unmatched.is_empty() {
        tracing::warn!(
            "some tags for log events are not defined in top level (to be ignored) tags=[{}]",
            unmatched.join(", ")
        );
    }
    matched
}

/// Emits queued log lines as `fluent.LEVEL` events `{"message": ...}` on a thread of its own,
/// whose own log lines are not queued (so an output failing on log events cannot feed back).
fn start_log_events(to: Emitter, tags: Vec<&'static str>) -> anyhow::Result<JoinHandle<()>> {
    let rx = crate::logging::enable_log_events();
    Ok(std::thread::Builder::new()
        .name("log_event".into())
        .spawn(move || {
            crate::logging::exclude_this_thread_from_log_events();
            for ev in rx {
                let tag = format!("fluent.{}", ev.level);
                if !tags.contains(&tag.as_str()) {
                    continue;
                }
                let mut r = crate::event::Record::new();
                r.insert("message", crate::event::Value::str(ev.message));
                to.emit(&tag, crate::event::EventStream::one(ev.time, r));
            }
        })?)
}

/// A built, not yet running, event graph.
pub struct Engine {
    inputs: Vec<(String, Box<dyn Input>, Emitter)>,
    /// Where Fluentd's own log events go, and which `fluent.LEVEL` tags are routed.
    log_events: Option<(Emitter, Vec<&'static str>)>,
    log_thread: Option<JoinHandle<()>>,
    filters: Vec<Arc<dyn plugins::Filter>>,
    outputs: Vec<Arc<dyn Output>>,
    errors: ErrorSink,
    labels: LabelTable,
    metrics: crate::metrics::Generation,
}

/// A running event graph.
pub struct Running {
    threads: Vec<(String, JoinHandle<()>)>,
    log_thread: Option<JoinHandle<()>>,
    shutdown: Shutdown,
    filters: Vec<Arc<dyn plugins::Filter>>,
    outputs: Vec<Arc<dyn Output>>,
    errors: ErrorSink,
}

/// The directives of the top level, with `<worker>` contents inlined (ferrentd runs one worker
/// that does the work of all).
fn top_level(root: &Element) -> Vec<&Element> {
    let mut out = Vec::new();
    for e in &root.elements {
        if e.name == "worker" {
            out.extend(e.elements.iter());
        } else {
            out.push(e);
        }
    }
    out
}

fn label_name(e: &Element) -> Option<&str> {
    e.get("@label")
}

impl Engine {
    /// Rewrites v0 forms, then constructs every plugin and router. Any error is located.
    pub fn build(root: &Element, opts: &EngineOptions) -> Result<Engine, ConfigError> {
        let mut root = root.clone();
        compat::apply(&mut root)?;
        let metrics_build = crate::metrics::begin_build();
        use crate::metrics::Category;
        let system = system_config(&root, opts.strict)?;
        let strict = opts.strict || system.strict_config_value.unwrap_or(false);
        if system.workers.unwrap_or(1) > 1 {
            tracing::warn!(
                "workers {} requested: ferrentd runs all the work in one process",
                system.workers.unwrap_or(1)
            );
        }
        let directives = top_level(&root);

        // Labels first, so any plugin can name any label.
        let mut labels: HashMap<String, Emitter> = HashMap::new();
        let mut label_elems: Vec<&Element> = Vec::new();
        for e in directives.iter().filter(|e| e.name == "label") {
            let name = e.arg.trim();
            if name.is_empty() {
                return Err(e.error("Missing symbol argument on <label> directive"));
            }
            if name == "@ROOT" {
                return Err(e.error(
                    "@ROOT for <label> is not permitted, reserved for getting root router",
                ));
            }
            if labels.contains_key(name) {
                return Err(e.error(format!("Section <label {name}> appears twice")));
            }
            if e.name == "label" && e.children("match").next().is_none() {
                return Err(e.error(format!(
                    "Missing <match> sections in <label {name}> section"
                )));
            }
            labels.insert(name.to_string(), Emitter::detached(name));
            label_elems.push(e);
        }
        let root_emitter = Emitter::detached("@ROOT");
        labels.insert("@ROOT".to_string(), root_emitter.clone());
        let errors = match labels.get("@ERROR") {
            Some(e) => ErrorSink::to_label(e.clone()),
            None => ErrorSink::log_only(),
        };
        let table = LabelTable::new(labels.clone());
        let base = PluginContext {
            strict,
            hostname: crate::util::hostname(),
            worker_id: 0,
            router: root_emitter.clone(),
            errors: errors.clone(),
            labels: table.clone(),
            root_dir: system.root_dir.as_ref().map(std::path::PathBuf::from),
            variable_store: Default::default(),
            output_capture: opts.output_capture.clone(),
        };
        let resolve = |e: &Element, default: &Emitter| -> Result<Emitter, ConfigError> {
            match label_name(e) {
                Some(l) => table
                    .get(l)
                    .ok_or_else(|| e.error(format!("{l} label not found"))),
                None => Ok(default.clone()),
            }
        };

        let mut outputs: Vec<Arc<dyn Output>> = Vec::new();
        let mut filters: Vec<Arc<dyn plugins::Filter>> = Vec::new();
        let mut build_router =
            |name: &str, parent: &Element, own: &Emitter| -> Result<Arc<Router>, ConfigError> {
                let mut rules = Vec::new();
                for e in parent.elements.iter().flat_map(|e| {
                    if e.name == "worker" && parent.name == "ROOT" {
                        e.elements.iter().collect::<Vec<_>>()
                    } else {
                        vec![e]
                    }
                }) {
                    let pattern = || MatchPattern::parse(&e.arg).map_err(|m| e.error(m));
                    match e.name.as_str() {
                        "filter" => {
                            let ctx = PluginContext {
                                router: own.clone(),
                                ..base.clone()
                            };
                            let scope = crate::metrics::enter(e, Category::Filter);
                            let f = plugins::new_filter(e, &ctx)?;
                            let f = plugins::metered::filter(f, scope.metrics.clone());
                            filters.push(f.clone());
                            rules.push(Rule {
                                pattern: pattern()?,
                                action: RuleAction::Filter(f),
                            });
                        }
                        "match" => {
                            let ctx = PluginContext {
                                router: resolve(e, own)?,
                                ..base.clone()
                            };
                            let scope = crate::metrics::enter(e, Category::Output);
                            let o = plugins::new_output(e, &ctx)?;
                            let o = plugins::metered::output(o, scope.metrics.clone());
                            outputs.push(o.clone());
                            rules.push(Rule {
                                pattern: pattern()?,
                                action: RuleAction::Match(o),
                            });
                        }
                        _ => {}
                    }
                }
                Ok(Arc::new(Router::new(name, rules, errors.clone())))
            };

        // Fluentd's order: labels, then the top level's filters and matches, then sources, so
        // the first error reported is the one Fluentd reports.
        for e in label_elems {
            let name = e.arg.trim();
            let own = labels
                .get(name)
                .cloned()
                .ok_or_else(|| e.error(format!("{name} label not found")))?;
            let router = build_router(name, e, &own)?;
            own.bind(router);
        }
        let root_router = build_router("@ROOT", &root, &root_emitter)?;
        let log_events = match labels.get(LOG_EVENT_LABEL) {
            Some(l) => Some((l.clone(), LOG_EVENT_TAGS.to_vec())),
            None => {
                let matched = log_event_match_warnings(&root_router);
                (!matched.is_empty()).then(|| (root_emitter.clone(), matched))
            }
        };
        root_emitter.bind(root_router);
        let mut inputs = Vec::new();
        for e in directives.iter().filter(|e| e.name == "source") {
            let scope = crate::metrics::enter(e, Category::Input);
            let router = resolve(e, &root_emitter)?.metered(scope.metrics.clone());
            let ctx = PluginContext {
                router: router.clone(),
                ..base.clone()
            };
            let input = plugins::new_input(e, &ctx)?;
            let name = e.plugin_type().unwrap_or("?").to_string();
            inputs.push((name, input, router));
        }

        if opts.without_source {
            inputs.clear();
        }
        Ok(Engine {
            inputs,
            log_events,
            log_thread: None,
            filters,
            outputs,
            errors,
            labels: table,
            metrics: metrics_build.finish(),
        })
    }

    /// The router of `label` (`@ROOT` for the top level), to emit into it directly.
    pub fn emitter(&self, label: &str) -> Option<Emitter> {
        self.labels.get(label)
    }

    /// Error events reported so far.
    pub fn error_events(&self) -> &ErrorSink {
        &self.errors
    }

    /// From now on log lines become events (`<label @FLUENT_LOG>` or the top-level matches of
    /// `fluent.*`); called before the start-up lines so that they are routed too.
    pub fn route_log_events(&mut self) -> anyhow::Result<()> {
        if let Some((to, tags)) = self.log_events.take() {
            self.log_thread = Some(start_log_events(to, tags)?);
        }
        Ok(())
    }

    /// Starts outputs, then inputs on their own threads.
    /// An input that cannot acquire its resources (a port in use, a missing library) stops
    /// start-up, as in Fluentd; outputs already started are shut down first.
    pub fn start(mut self, runtime: tokio::runtime::Handle) -> anyhow::Result<Running> {
        for o in &self.outputs {
            if let Err(e) = o.start() {
                crate::logging::disable_log_events();
                return Err(e);
            }
        }
        for f in &self.filters {
            f.start();
        }
        for (i, (name, input, _)) in self.inputs.iter_mut().enumerate() {
            if let Err(e) = input.start() {
                for f in &self.filters {
                    f.shutdown();
                }
                for o in &self.outputs {
                    o.shutdown();
                }
                crate::logging::disable_log_events();
                return Err(e.context(format!("in_{name}#{i} failed to start")));
            }
        }
        self.route_log_events()?;
        let log_thread = self.log_thread.take();
        let shutdown = Shutdown::new();
        let mut threads = Vec::new();
        for (i, (name, input, router)) in self.inputs.into_iter().enumerate() {
            let ctx = InputContext {
                router,
                errors: self.errors.clone(),
                shutdown: shutdown.clone(),
                runtime: runtime.clone(),
            };
            let label = format!("in_{name}#{i}");
            let thread_name = label.clone();
            let h = std::thread::Builder::new()
                .name(label.clone())
                .spawn(move || {
                    if let Err(e) = input.run(ctx) {
                        tracing::error!("{thread_name} stopped: {e:#}");
                    }
                })?;
            threads.push((label, h));
        }
        crate::metrics::install(&self.metrics);
        crate::metrics::health::set_ready();
        Ok(Running {
            threads,
            log_thread,
            shutdown,
            filters: self.filters,
            outputs: self.outputs,
            errors: self.errors,
        })
    }
}

impl Running {
    /// SIGUSR1: flush every output's buffer now.
    pub fn flush(&self) {
        for o in &self.outputs {
            o.flush();
        }
    }

    /// Stops inputs (each emits what it has read), then shuts outputs down (they flush).
    pub fn stop(self) {
        crate::metrics::health::set_stopping();
        self.shutdown.trigger();
        for (name, h) in self.threads {
            if h.join().is_err() {
                tracing::error!("{name} panicked while stopping");
            }
        }
        // Filters that hold events back (concat) hand them on while outputs still run.
        for f in &self.filters {
            f.shutdown();
        }
        // Log lines queued so far become events before outputs flush; later ones stay lines.
        crate::logging::disable_log_events();
        if let Some(h) = self.log_thread {
            if h.join().is_err() {
                tracing::error!("the log event thread panicked");
            }
        }
        for o in &self.outputs {
            o.shutdown();
        }
        let dropped = crate::logging::dropped_log_events();
        if dropped > 0 {
            tracing::warn!("{dropped} log lines were not emitted as events (the queue was full)");
        }
        let n = self.errors.count();
        if n > 0 {
            tracing::warn!("{n} error events were reported during this run");
        }
    }
}

#[cfg(test)]
mod system_tests {
    use super::*;

    #[test]
    fn an_invalid_system_log_level_is_a_config_error() {
        let root = crate::config_parser::parse_str(
            "<system>\nlog_level loud\n</system>",
            std::path::Path::new("fluent.conf"),
            &Default::default(),
        )
        .unwrap();
        let e = system_config(&root, false).err().unwrap();
        assert!(
            e.message
                .contains("valid options are trace,debug,info,warn,error,fatal but got loud"),
            "{}",
            e.message
        );
        let root = crate::config_parser::parse_str(
            "<system>\nlog_level warn\n</system>",
            std::path::Path::new("fluent.conf"),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(
            system_config(&root, false).unwrap().log_level,
            Some(crate::logging::LogLevel::Warn)
        );
    }
}

#[cfg(test)]
mod order_tests {
    use super::*;

    fn first_error(text: &str) -> String {
        let root = crate::config_parser::parse_str(
            text,
            std::path::Path::new("fluent.conf"),
            &Default::default(),
        )
        .unwrap();
        match Engine::build(&root, &EngineOptions::default()) {
            Ok(_) => String::new(),
            Err(e) => e.message,
        }
    }

    #[test]
    fn top_level_log_event_matches_warn() {
        let root = crate::config_parser::parse_str(
            "<match fluent.warn fluent.error fluent.fatal>\n@type null\n</match>",
            std::path::Path::new("fluent.conf"),
            &Default::default(),
        )
        .unwrap();
        let (r, logs) = crate::test_util::capture_logs(|| {
            Engine::build(&root, &EngineOptions::default()).is_ok()
        });
        assert!(r);
        assert!(logs.contains(&"[warn]: define <match fluent.**> to capture fluentd logs in top level is deprecated. Use <label @FLUENT_LOG> instead".to_string()));
        assert!(logs.contains(&"[warn]: some tags for log events are not defined in top level (to be ignored) tags=[\"fluent.trace\", \"fluent.debug\", \"fluent.info\"]".to_string()));
        let root = crate::config_parser::parse_str(
            "<match fluent.**>\n@type null\n</match>\n<label @FLUENT_LOG>\n<match **>\n@type null\n</match>\n</label>",
            std::path::Path::new("fluent.conf"),
            &Default::default(),
        )
        .unwrap();
        let (_, logs) = crate::test_util::capture_logs(|| {
            Engine::build(&root, &EngineOptions::default()).is_ok()
        });
        assert!(!logs.iter().any(|l| l.contains("deprecated")));
    }

    #[test]
    fn config_errors_come_in_fluentd_order() {
        let conf = "<source>\n@type nosuchinput\n</source>\n<match a>\n@type nosuchoutput\n</match>\n<label @L>\n<match b>\n@type nosuchlabelout\n</match>\n</label>";
        assert!(first_error(conf).starts_with("Unknown output plugin 'nosuchlabelout'"));
        let conf =
            "<source>\n@type nosuchinput\n</source>\n<match a>\n@type nosuchoutput\n</match>";
        assert!(first_error(conf).starts_with("Unknown output plugin 'nosuchoutput'"));
    }
}

#[cfg(test)]
mod log_event_tests {
    use super::*;
    use crate::router::{ErrorSink, Router};

    fn build(text: &str) -> Engine {
        let root = crate::config_parser::parse_str(
            text,
            std::path::Path::new("fluent.conf"),
            &Default::default(),
        )
        .unwrap();
        Engine::build(&root, &EngineOptions::default()).unwrap()
    }

    #[test]
    fn routing_with_and_without_fluent_log_label() {
        let e = build("<label @FLUENT_LOG>\n<match **>\n@type null\n</match>\n</label>\n<match **>\n@type null\n</match>");
        let (to, tags) = e.log_events.as_ref().unwrap();
        assert_eq!(to.label(), "@FLUENT_LOG");
        assert_eq!(tags.len(), 6);
        let e = build("<match fluent.warn fluent.error>\n@type null\n</match>");
        let (to, tags) = e.log_events.as_ref().unwrap();
        assert_eq!(to.label(), "@ROOT");
        assert_eq!(tags, &vec!["fluent.warn", "fluent.error"]);
        let e = build("<match app.**>\n@type null\n</match>");
        assert!(e.log_events.is_none());
    }

    /// An output that logs an error for each stream it gets.
    struct Failing(std::sync::Arc<std::sync::atomic::AtomicUsize>);
    impl Output for Failing {
        fn emit(
            &self,
            _tag: &str,
            _es: crate::event::EventStream,
        ) -> Result<(), crate::plugins::OutputError> {
            // What the logger's layer does with the error line this output logs.
            crate::logging::push_log_event("error", "failing output could not write");
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err(crate::plugins::OutputError::new("write failed"))
        }
    }

    #[test]
    fn a_failing_log_event_output_does_not_feed_back() {
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let out: Arc<dyn Output> = Arc::new(Failing(count.clone()));
        let em = Emitter::detached("@FLUENT_LOG");
        em.bind(Arc::new(Router::new(
            "@FLUENT_LOG",
            vec![Rule {
                pattern: MatchPattern::parse("**").unwrap(),
                action: RuleAction::Match(out),
            }],
            ErrorSink::log_only(),
        )));
        let h = start_log_events(em, LOG_EVENT_TAGS.to_vec()).unwrap();
        crate::logging::push_log_event("warn", "one line");
        for _ in 0..500 {
            if count.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        crate::logging::disable_log_events();
        h.join().unwrap();
        // One event in; the error it caused was logged on the log-event thread and not queued.
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
