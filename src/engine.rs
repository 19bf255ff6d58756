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
    pub log_level: Option<String>,
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
    crate::config_parser::configure(
        sys,
        &crate::config_parser::ConfigureOptions {
            strict,
            plugin: "system".to_string(),
        },
    )
}

/// A built, not yet running, event graph.
pub struct Engine {
    inputs: Vec<(String, Box<dyn Input>, Emitter)>,
    outputs: Vec<Arc<dyn Output>>,
    errors: ErrorSink,
    labels: LabelTable,
    metrics: crate::metrics::Generation,
}

/// A running event graph.
pub struct Running {
    threads: Vec<(String, JoinHandle<()>)>,
    shutdown: Shutdown,
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

        let mut outputs: Vec<Arc<dyn Output>> = Vec::new();
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

        let root_router = build_router("@ROOT", &root, &root_emitter)?;
        root_emitter.bind(root_router);
        for e in label_elems {
            let name = e.arg.trim();
            let own = labels
                .get(name)
                .cloned()
                .ok_or_else(|| e.error(format!("{name} label not found")))?;
            let router = build_router(name, e, &own)?;
            own.bind(router);
        }
        if opts.without_source {
            inputs.clear();
        }
        Ok(Engine {
            inputs,
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

    /// Starts outputs, then inputs on their own threads.
    /// An input that cannot acquire its resources (a port in use, a missing library) stops
    /// start-up, as in Fluentd; outputs already started are shut down first.
    pub fn start(mut self, runtime: tokio::runtime::Handle) -> anyhow::Result<Running> {
        for o in &self.outputs {
            o.start()?;
        }
        for (i, (name, input, _)) in self.inputs.iter_mut().enumerate() {
            if let Err(e) = input.start() {
                for o in &self.outputs {
                    o.shutdown();
                }
                return Err(e.context(format!("in_{name}#{i} failed to start")));
            }
        }
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
            shutdown,
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
        for o in &self.outputs {
            o.shutdown();
        }
        let n = self.errors.count();
        if n > 0 {
            tracing::warn!("{n} error events were reported during this run");
        }
    }
}
