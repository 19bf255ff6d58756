//! `@type monitor_agent` (Fluentd core `in_monitor_agent.rb`): plugin information over HTTP
//! (`/api/plugins`, `/api/plugins.json`, `/api/config`, `/api/config.json`) and, with `tag`,
//! as events every `emit_interval`. The listener also answers `/healthz` and `/readyz`.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Map, Value as Json};

use super::{Input, InputContext, PluginContext};
use crate::config_parser::types::Time;
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventStream, EventTime};
use crate::http_server::{self, Handler, Request, Response};
use crate::metrics::{self, health, PluginMetrics};
use crate::router::MatchPattern;

#[derive(Debug, Deserialize)]
struct MonitorAgentConfig {
    #[serde(default = "default_bind")]
    bind: String,
    #[serde(default = "default_port")]
    port: i64,
    tag: Option<String>,
    #[serde(default = "minute")]
    emit_interval: Time,
    // Fluentd 1.18's defaults (1.19.3 turned both off).
    #[serde(default = "yes")]
    include_config: bool,
    #[serde(default = "yes")]
    include_retry: bool,
    #[serde(default)]
    include_debug_info: bool,
}

fn yes() -> bool {
    true
}

fn default_bind() -> String {
    "0.0.0.0".into()
}
fn default_port() -> i64 {
    24220
}
fn minute() -> Time {
    Time(60.0)
}

#[derive(Clone, Copy)]
struct Opts {
    include_config: bool,
    include_retry: bool,
}

pub struct MonitorAgentInput {
    bind: String,
    port: u16,
    tag: Option<String>,
    emit_interval: Duration,
    opts: Opts,
    listener: Option<TcpListener>,
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Input>, ConfigError> {
    let cfg: MonitorAgentConfig = ctx.configure(elem, "monitor_agent")?;
    let port = cfg.port + ctx.worker_id as i64;
    let port = u16::try_from(port).map_err(|_| elem.error(format!("invalid port {port}")))?;
    if cfg.include_debug_info {
        tracing::warn!("monitor_agent: include_debug_info is not supported (no Ruby instance variables to show)");
    }
    Ok(Box::new(MonitorAgentInput {
        bind: cfg.bind,
        port,
        tag: cfg.tag,
        emit_interval: Duration::from_secs_f64(cfg.emit_interval.0.max(0.1)),
        opts: Opts {
            include_config: cfg.include_config,
            include_retry: cfg.include_retry,
        },
        listener: None,
    }))
}

fn info(p: &PluginMetrics, o: Opts) -> Map<String, Json> {
    p.monitor_info(o.include_config, o.include_retry)
}

/// The plugins a request selects: `?tag=` (first output whose pattern matches), `?@id=`/`?id=`,
/// `?@type=`/`?type=`, else all.
fn select(req: &Request, o: Opts) -> Vec<Map<String, Json>> {
    let plugins = metrics::plugins();
    if let Some(tag) = req.param("tag") {
        let hit = plugins.iter().find(|p| {
            p.pattern
                .as_deref()
                .and_then(|pat| MatchPattern::parse(pat).ok())
                .is_some_and(|m| m.matches(tag))
        });
        return hit.map(|p| vec![info(p, o)]).unwrap_or_default();
    }
    if let Some(id) = req.param("@id").or_else(|| req.param("id")) {
        return plugins
            .iter()
            .find(|p| p.plugin_id == id)
            .map(|p| vec![info(p, o)])
            .unwrap_or_default();
    }
    if let Some(t) = req.param("@type").or_else(|| req.param("type")) {
        return plugins
            .iter()
            .filter(|p| p.plugin_type == t)
            .map(|p| info(p, o))
            .collect();
    }
    plugins.iter().map(|p| info(p, o)).collect()
}

/// `k:v` pairs of the scalar fields, tab-separated, as Ruby prints them.
fn ltsv_row(obj: &Map<String, Json>) -> String {
    let mut row = Vec::new();
    for (k, v) in obj {
        let s = match v {
            Json::Object(_) | Json::Array(_) => continue,
            Json::Null => String::new(),
            Json::String(s) => s.clone(),
            other => other.to_string(),
        };
        row.push(format!("{k}:{s}"));
    }
    row.join("\t")
}

fn config_info() -> Map<String, Json> {
    let mut m = Map::new();
    m.insert("pid".into(), json!(std::process::id()));
    m.insert("ppid".into(), json!(std::os::unix::process::parent_id()));
    m.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
    m
}

fn json_response(code: u16, v: &Json) -> Response {
    Response::new(code, "application/json", v.to_string())
}

fn respond(req: &Request, o: Opts) -> Response {
    match req.path.as_str() {
        "/api/plugins.json" => json_response(200, &json!({ "plugins": select(req, o) })),
        "/api/plugins" => {
            let mut text = String::new();
            for obj in select(req, o) {
                text.push_str(&ltsv_row(&obj));
                text.push('\n');
            }
            Response::new(200, "text/plain", text)
        }
        "/api/config.json" => json_response(200, &Json::Object(config_info())),
        "/api/config" => Response::new(200, "text/plain", ltsv_row(&config_info())),
        p => match health::respond(p) {
            Some((code, body)) => Response::text(code, body),
            None => json_response(404, &json!({"message": "Not found"})),
        },
    }
}

fn to_events(list: Vec<Map<String, Json>>) -> EventStream {
    let now = EventTime::now();
    let mut es = EventStream::new();
    for obj in list {
        let bytes = Json::Object(obj).to_string();
        match crate::json::decode::parse_record(bytes.as_bytes()) {
            Ok(r) => es.push(now, r),
            Err(e) => tracing::warn!("monitor_agent: cannot convert plugin info: {e}"),
        }
    }
    es
}

impl Input for MonitorAgentInput {
    fn start(&mut self) -> anyhow::Result<()> {
        self.listener = Some(http_server::listen(
            "in_monitor_agent",
            &self.bind,
            self.port,
        )?);
        tracing::debug!(
            "listening monitoring http server on http://{}:{}/api/plugins for worker0",
            self.bind,
            self.port
        );
        Ok(())
    }

    fn run(mut self: Box<Self>, ctx: InputContext) -> anyhow::Result<()> {
        let listener = match self.listener.take() {
            Some(l) => l,
            None => http_server::listen("in_monitor_agent", &self.bind, self.port)?,
        };
        let emitter = match self.tag.clone() {
            Some(tag) => {
                let (sd, router, every, o) = (
                    ctx.shutdown.clone(),
                    ctx.router.clone(),
                    self.emit_interval,
                    Opts {
                        include_config: false,
                        include_retry: self.opts.include_retry,
                    },
                );
                Some(
                    std::thread::Builder::new()
                        .name("in_monitor_agent-emit".into())
                        .spawn(move || {
                            while !sd.wait_timeout(every) {
                                let list = metrics::plugins().iter().map(|p| info(p, o)).collect();
                                router.emit(&tag, to_events(list));
                            }
                        })?,
                )
            }
            None => None,
        };
        let o = self.opts;
        let handler: Handler = Arc::new(move |req: &Request| respond(req, o));
        http_server::serve("in_monitor_agent", listener, None, &ctx.shutdown, handler);
        if let Some(h) = emitter {
            let _ = h.join();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(path: &str, q: &[(&str, &str)]) -> Request {
        Request {
            method: "GET".into(),
            path: path.into(),
            query: q
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }

    const O: Opts = Opts {
        include_config: false,
        include_retry: false,
    };

    #[test]
    fn routes_and_errors() {
        let r = respond(&req("/api/nope", &[]), O);
        assert_eq!(r.status, 404);
        assert_eq!(r.body, br#"{"message":"Not found"}"#);
        let r = respond(&req("/api/config.json", &[]), O);
        let v: Json = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["pid"], json!(std::process::id()));
        let r = respond(&req("/api/plugins.json", &[("@id", "no-such-id")]), O);
        assert_eq!(r.body, br#"{"plugins":[]}"#);
    }

    #[test]
    fn plugin_infos_become_records() {
        let m = PluginMetrics::new("out1", "file", metrics::Category::Output);
        m.emit_records.add(7);
        let es = to_events(vec![info(&m, O)]);
        assert_eq!(es.len(), 1);
        let r = &es.iter().next().unwrap().record;
        assert_eq!(r.get("plugin_id"), Some(&crate::event::Value::str("out1")));
        assert_eq!(r.get("emit_records"), Some(&crate::event::Value::Int(7)));
    }

    #[test]
    fn ltsv_skips_nested_values_and_prints_null_empty() {
        let mut m = Map::new();
        m.insert("plugin_id".into(), json!("a"));
        m.insert("retry_count".into(), Json::Null);
        m.insert("buffer_timekeys".into(), json!([1]));
        m.insert("output_plugin".into(), json!(false));
        assert_eq!(
            ltsv_row(&m),
            "plugin_id:a\tretry_count:\toutput_plugin:false"
        );
    }
}
