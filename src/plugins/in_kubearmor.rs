//! `@type kubearmor`: alerts, system logs and KubeArmor's own messages from a KubeArmor relay
//! (or a KubeArmor daemon) over its gRPC `feeder.LogService`, one record per message.
//!
//! Streams are chosen by `logfilter` as the KubeArmor OpenTelemetry receiver chooses them
//! (`all`: the three; `policy`: WatchAlerts; `system`: WatchLogs; `kubearmorLogs`:
//! WatchMessages); WatchAlerts/WatchLogs carry the logfilter value as their `Filter`,
//! WatchMessages an empty one. Each stream first checks the relay with HealthCheck (the nonce
//! must come back), and, unlike that receiver, is reopened with a growing wait when it ends or
//! fails, and takes the current time for a message without `Timestamp`. gRPC runs on a small
//! tokio runtime of this input's own thread.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde::Deserialize;
use tonic::transport::Channel;
use tonic::Streaming;

use super::{Input, InputContext, PluginContext};
use crate::config_parser::types::Time;
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventStream, EventTime, Record};
use crate::kubearmor::{self, pb, LogServiceClient};
use crate::router::{Emitter, Shutdown};

#[derive(Debug, Deserialize)]
struct KubeArmorConfig {
    /// Default: `$KUBEARMOR_SERVICE`, else localhost:32767.
    endpoint: Option<String>,
    #[serde(default = "default_filter", alias = "log_filter")]
    logfilter: String,
    #[serde(default = "default_alert_tag")]
    tag_alert: String,
    #[serde(default = "default_log_tag")]
    tag_log: String,
    #[serde(default = "default_message_tag")]
    tag_message: String,
    /// TLS to the relay; implied by ca_file / cert_file.
    #[serde(default)]
    tls: bool,
    ca_file: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    tls_server_name: Option<String>,
    /// First wait before reopening a stream; doubled per failure up to max_retry_wait.
    #[serde(default = "one_second")]
    retry_wait: Time,
    #[serde(default = "thirty_seconds")]
    max_retry_wait: Time,
    /// Bound on the HealthCheck answer.
    #[serde(default = "ten_seconds")]
    health_check_timeout: Time,
}

fn default_filter() -> String {
    "all".into()
}
fn default_alert_tag() -> String {
    "kubearmor.alert".into()
}
fn default_log_tag() -> String {
    "kubearmor.log".into()
}
fn default_message_tag() -> String {
    "kubearmor.message".into()
}
fn one_second() -> Time {
    Time(1.0)
}
fn thirty_seconds() -> Time {
    Time(30.0)
}
fn ten_seconds() -> Time {
    Time(10.0)
}

/// The three streams of the relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Alerts,
    Logs,
    Messages,
}

impl Kind {
    fn rpc(self) -> &'static str {
        match self {
            Kind::Alerts => "WatchAlerts",
            Kind::Logs => "WatchLogs",
            Kind::Messages => "WatchMessages",
        }
    }
}

/// The streams a logfilter opens, as the OpenTelemetry receiver opens them.
fn kinds_for(filter: &str) -> Option<&'static [Kind]> {
    match filter {
        "all" => Some(&[Kind::Alerts, Kind::Logs, Kind::Messages]),
        "policy" => Some(&[Kind::Alerts]),
        "system" => Some(&[Kind::Logs]),
        "kubearmorLogs" => Some(&[Kind::Messages]),
        _ => None,
    }
}

struct Settings {
    endpoint: String,
    filter: String,
    kinds: &'static [Kind],
    tags: [String; 3],
    tls: Option<kubearmor::Tls>,
    retry_wait: Duration,
    max_retry_wait: Duration,
    health_check_timeout: Duration,
}

impl Settings {
    fn tag(&self, k: Kind) -> &str {
        match k {
            Kind::Alerts => &self.tags[0],
            Kind::Logs => &self.tags[1],
            Kind::Messages => &self.tags[2],
        }
    }

    /// The `Filter` sent with a stream's request.
    fn request_filter(&self, k: Kind) -> String {
        match k {
            Kind::Messages => String::new(),
            _ => self.filter.clone(),
        }
    }
}

pub struct KubeArmorInput {
    settings: Arc<Settings>,
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Input>, ConfigError> {
    let cfg: KubeArmorConfig = ctx.configure(elem, "kubearmor")?;
    let param_err = |name: &str, msg: String| match elem.param(name) {
        Some(p) => ConfigError::at(msg, &p.span),
        None => elem.error(msg),
    };
    let kinds = kinds_for(&cfg.logfilter).ok_or_else(|| {
        param_err(
            "logfilter",
            format!(
                "logfilter: {:?} is not one of all, policy, system, kubearmorLogs",
                cfg.logfilter
            ),
        )
    })?;
    let endpoint = cfg
        .endpoint
        .or_else(|| {
            std::env::var("KUBEARMOR_SERVICE")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| kubearmor::DEFAULT_ENDPOINT.to_string());
    let read = |name: &str, path: &Option<String>| -> Result<Option<Vec<u8>>, ConfigError> {
        match path {
            None => Ok(None),
            Some(p) => std::fs::read(p)
                .map(Some)
                .map_err(|e| param_err(name, format!("{name}: cannot read {p}: {e}"))),
        }
    };
    let ca = read("ca_file", &cfg.ca_file)?;
    let cert = read("cert_file", &cfg.cert_file)?;
    let key = read("key_file", &cfg.key_file)?;
    let identity = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => return Err(elem.error("cert_file and key_file must be given together".to_string())),
    };
    let use_tls = cfg.tls
        || ca.is_some()
        || identity.is_some()
        || endpoint.trim_start().starts_with("https://");
    let tls = use_tls.then(|| kubearmor::Tls {
        ca_pem: ca,
        identity,
        server_name: cfg.tls_server_name.clone(),
    });
    // Fails here on a malformed endpoint; connecting itself happens (and is retried) later.
    if let Err(e) = kubearmor::check_endpoint(&endpoint) {
        return Err(param_err("endpoint", format!("endpoint: {e}")));
    }
    let retry_wait = cfg.retry_wait.as_duration().max(Duration::from_millis(10));
    Ok(Box::new(KubeArmorInput {
        settings: Arc::new(Settings {
            endpoint,
            filter: cfg.logfilter,
            kinds,
            tags: [cfg.tag_alert, cfg.tag_log, cfg.tag_message],
            tls,
            retry_wait,
            max_retry_wait: cfg.max_retry_wait.as_duration().max(retry_wait),
            health_check_timeout: cfg.health_check_timeout.as_duration(),
        }),
    }))
}

impl Input for KubeArmorInput {
    fn run(self: Box<Self>, ctx: InputContext) -> anyhow::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("kubearmor")
            .build()?;
        let s = self.settings;
        rt.block_on(async move {
            let channel = kubearmor::channel(&s.endpoint, s.tls.as_ref())?;
            tracing::info!(
                "kubearmor: reading {} from {} (logfilter {})",
                s.kinds
                    .iter()
                    .map(|k| k.rpc())
                    .collect::<Vec<_>>()
                    .join(", "),
                s.endpoint,
                s.filter
            );
            let mut tasks = tokio::task::JoinSet::new();
            for &kind in s.kinds {
                tasks.spawn(watch(
                    kind,
                    s.clone(),
                    channel.clone(),
                    ctx.router.clone(),
                    ctx.shutdown.clone(),
                ));
            }
            while tasks.join_next().await.is_some() {}
            anyhow::Ok(())
        })
    }
}

/// Why a session with the relay ended.
enum End {
    /// Shutdown was requested.
    Shutdown,
    /// The relay closed the stream.
    Closed,
    Failed(String),
}

/// One stream, reopened until shutdown.
async fn watch(kind: Kind, s: Arc<Settings>, channel: Channel, emit: Emitter, stop: Shutdown) {
    let mut wait = s.retry_wait;
    loop {
        let mut received = 0u64;
        let end = tokio::select! {
            _ = stop.wait() => End::Shutdown,
            e = session(kind, &s, channel.clone(), &emit, &mut received) => e,
        };
        if received > 0 {
            wait = s.retry_wait;
        }
        match end {
            End::Shutdown => return,
            End::Closed => tracing::warn!(
                "kubearmor: {} from {}: the relay ended the stream ({received} received); reopening in {:.1}s",
                kind.rpc(),
                s.endpoint,
                wait.as_secs_f64()
            ),
            End::Failed(e) => tracing::warn!(
                "kubearmor: {} from {}: {e}; retrying in {:.1}s",
                kind.rpc(),
                s.endpoint,
                wait.as_secs_f64()
            ),
        }
        tokio::select! {
            _ = stop.wait() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(s.max_retry_wait);
    }
}

fn describe(st: &tonic::Status) -> String {
    let msg = st.message();
    if msg.is_empty() {
        format!("{:?}", st.code())
    } else {
        format!("{:?}: {msg}", st.code())
    }
}

/// HealthCheck, then the stream until it ends or fails.
async fn session(
    kind: Kind,
    s: &Settings,
    channel: Channel,
    emit: &Emitter,
    received: &mut u64,
) -> End {
    let mut client = LogServiceClient::new(channel);
    let nonce: i32 = rand::thread_rng().gen_range(1..i32::MAX);
    let check = client.health_check(pb::NonceMessage { nonce });
    match tokio::time::timeout(s.health_check_timeout, check).await {
        Err(_) => return End::Failed("HealthCheck got no answer".into()),
        Ok(Err(st)) => return End::Failed(format!("HealthCheck failed: {}", describe(&st))),
        Ok(Ok(reply)) => {
            let got = reply.into_inner().retval;
            if got != nonce {
                return End::Failed(format!(
                    "HealthCheck failed: the relay answered {got} to nonce {nonce}"
                ));
            }
        }
    }
    let req = pb::RequestMessage {
        filter: s.request_filter(kind),
    };
    let tag = s.tag(kind);
    let failed =
        |st: tonic::Status| End::Failed(format!("cannot open the stream: {}", describe(&st)));
    match kind {
        Kind::Alerts => match client.watch_alerts(req).await {
            Ok(r) => {
                pump(
                    r.into_inner(),
                    kubearmor::record::alert,
                    tag,
                    emit,
                    received,
                )
                .await
            }
            Err(st) => failed(st),
        },
        Kind::Logs => match client.watch_logs(req).await {
            Ok(r) => pump(r.into_inner(), kubearmor::record::log, tag, emit, received).await,
            Err(st) => failed(st),
        },
        Kind::Messages => match client.watch_messages(req).await {
            Ok(r) => {
                pump(
                    r.into_inner(),
                    kubearmor::record::message,
                    tag,
                    emit,
                    received,
                )
                .await
            }
            Err(st) => failed(st),
        },
    }
}

type Convert<M> = fn(&M) -> (Option<i64>, Record);

async fn pump<M>(
    mut stream: Streaming<M>,
    convert: Convert<M>,
    tag: &str,
    emit: &Emitter,
    received: &mut u64,
) -> End {
    loop {
        match stream.message().await {
            Ok(Some(m)) => {
                *received += 1;
                let (ts, record) = convert(&m);
                // The receiver stops the stream for good here; the current time loses nothing.
                let time = ts.map_or_else(EventTime::now, |t| EventTime::new(t, 0));
                emit.emit(tag, EventStream::one(time, record));
            }
            Ok(None) => return End::Closed,
            Err(st) => return End::Failed(describe(&st)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logfilter_selects_streams_as_the_receiver() {
        assert_eq!(
            kinds_for("all"),
            Some(&[Kind::Alerts, Kind::Logs, Kind::Messages][..])
        );
        assert_eq!(kinds_for("policy"), Some(&[Kind::Alerts][..]));
        assert_eq!(kinds_for("system"), Some(&[Kind::Logs][..]));
        assert_eq!(kinds_for("kubearmorLogs"), Some(&[Kind::Messages][..]));
        assert_eq!(kinds_for("Policy"), None);
    }

    #[test]
    fn endpoint_forms() {
        assert!(kubearmor::check_endpoint("localhost:32767").is_ok());
        assert!(kubearmor::check_endpoint(":32767").is_ok());
        assert!(kubearmor::check_endpoint("https://relay.kubearmor.svc:32767").is_ok());
        assert!(kubearmor::check_endpoint("not a uri").is_err());
        assert_eq!(
            kubearmor::endpoint_uri(":32767", false),
            "http://localhost:32767"
        );
        assert_eq!(
            kubearmor::endpoint_uri("relay:32767", true),
            "https://relay:32767"
        );
    }
}
