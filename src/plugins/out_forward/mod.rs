//! `@type forward` (output): sends each buffer chunk as one PackedForward message to one of its
//! `<server>`s, chosen by weighted round robin with standby failover (Fluentd's
//! `load_balancer.rb`). Server health comes from heartbeats (TCP/TLS connect, UDP, or none) and a
//! phi accrual failure detector. With `require_ack_response` a chunk is committed only when the
//! server acknowledges it; a missing or wrong ack makes the chunk retried (at-least-once).

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use parking_lot::Mutex;

use super::service_discovery::{self, Discovery, Service};
use super::{Output, PluginContext};
use crate::buffer::{BufferDefaults, BufferedOutput, Chunk, WriteError};
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventStream, Value};

use crate::forward::tls::{self, ClientTlsSettings};

mod config;
mod connection;
mod node;
#[cfg(test)]
mod tests;

use config::{Compress, ForwardOutputConfig, HeartbeatType, TransportKind};
use node::{now_f64, LoadBalancer, NodeTemplate};
pub use node::{FailureDetector, Node};

/// The servers of `<server>` and static discovery, and each running discovery with what it
/// found last.
struct Discovered {
    fixed: Vec<Service>,
    running: Vec<(Box<dyn Discovery>, Vec<Service>)>,
}

struct Inner {
    /// Swapped as a whole when service discovery finds other servers.
    nodes: Mutex<Arc<Vec<Arc<Node>>>>,
    template: NodeTemplate,
    discovered: Mutex<Discovered>,
    lb: Mutex<LoadBalancer>,
    tls: Option<Arc<rustls::ClientConfig>>,
    security_hostname: Option<String>,
    heartbeat_type: HeartbeatType,
    heartbeat_interval: Duration,
    send_timeout: Duration,
    connect_timeout: Option<Duration>,
    require_ack_response: bool,
    ack_response_timeout: Duration,
    expire_dns_cache: Option<f64>,
    dns_round_robin: bool,
    ignore_network_errors_at_startup: bool,
    verify_connection_at_startup: bool,
    compress: Compress,
    keepalive: bool,
    keepalive_timeout: Option<Duration>,
    send_keepalive_packet: bool,
    time_as_integer: bool,
    stop: crate::router::Shutdown,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    write_seq: AtomicUsize,
}

pub struct ForwardOutput {
    inner: Arc<Inner>,
}

/// `<service_discovery>`: `@type static` `<service>` sections become `<server>` sections (the
/// same parameters); `file` and `srv` are asked once now and again while running.
type Services = (Option<Element>, Vec<(Box<dyn Discovery>, Vec<Service>)>);

fn service_discovery(elem: &Element, ctx: &PluginContext) -> Result<Services, ConfigError> {
    let mut sds = elem.children("service_discovery").peekable();
    if sds.peek().is_none() {
        return Ok((None, Vec::new()));
    }
    let mut out = elem.clone();
    out.elements.retain(|e| e.name != "service_discovery");
    let mut running = Vec::new();
    for sd in sds {
        match service_discovery::from_section(sd, ctx)? {
            None => {
                for svc in sd.children("service") {
                    let mut server = svc.clone();
                    server.name = "server".to_string();
                    out.elements.push(server);
                }
            }
            Some(d) => {
                let found = d.discover().map_err(|e| sd.error(e))?;
                running.push((d, found));
            }
        }
    }
    Ok((Some(out), running))
}

fn param_error(elem: &Element, key: &str, msg: String) -> ConfigError {
    match elem.param(key) {
        Some(p) => ConfigError::at(msg, &p.span),
        None => elem.error(msg),
    }
}

/// Builds the plugin without its buffer (for tests and for the engine wrapper).
pub fn build_output(elem: &Element, ctx: &PluginContext) -> Result<ForwardOutput, ConfigError> {
    let (with_services, running) = service_discovery(elem, ctx)?;
    let elem = with_services.as_ref().unwrap_or(elem);
    let cfg: ForwardOutputConfig = ctx.configure(elem, "forward")?;
    for key in ["host", "port"] {
        if elem.has(key) {
            return Err(param_error(
                elem,
                key,
                format!("'{key}' parameter is already removed: Use <server> section instead."),
            ));
        }
    }
    let _ = (&cfg.host, &cfg.port);
    if cfg.server.is_empty() && running.iter().all(|(_, found)| found.is_empty()) {
        return Err(elem.error(
            "forward output plugin requires at least one node is required. Add <server> or <service_discovery>",
        ));
    }
    if cfg.dns_round_robin && cfg.heartbeat_type == HeartbeatType::Udp {
        return Err(elem.error(
            "forward output heartbeat type must be 'transport' or 'none' to use dns_round_robin option",
        ));
    }
    if cfg.send_keepalive_packet && !cfg.keepalive {
        return Err(param_error(
            elem,
            "send_keepalive_packet",
            "send_keepalive_packet requires keepalive".into(),
        ));
    }
    if cfg.ack_response_timeout.0 < 1.0 {
        return Err(param_error(
            elem,
            "ack_response_timeout",
            "ack_response_timeout must be 1 or more".into(),
        ));
    }
    if cfg.tls_cert_thumbprint.is_some()
        || cfg.tls_cert_logical_store_name.is_some()
        || cfg.tls_cert_use_enterprise_store
    {
        return Err(elem.error(
            "tls_cert_thumbprint/tls_cert_logical_store_name/tls_cert_use_enterprise_store are Windows-only",
        ));
    }
    if cfg.tls_client_private_key_passphrase.is_some() {
        return Err(param_error(
            elem,
            "tls_client_private_key_passphrase",
            "encrypted private keys are not supported: decrypt the key and drop the passphrase"
                .into(),
        ));
    }
    let tls = if cfg.transport == TransportKind::Tls {
        let ca_paths = cfg
            .tls_cert_path
            .clone()
            .or(cfg.tls_ca_cert_path.clone())
            .unwrap_or_default();
        let s = ClientTlsSettings {
            version: cfg.tls_version.clone(),
            insecure: cfg.tls_insecure_mode,
            allow_self_signed: cfg.tls_allow_self_signed_cert,
            verify_hostname: cfg.tls_verify_hostname,
            ca_paths,
            client_cert_path: cfg.tls_client_cert_path.clone(),
            client_key_path: cfg.tls_client_private_key_path.clone(),
        };
        Some(tls::client_config(&s).map_err(|e| elem.error(e))?)
    } else {
        None
    };
    let server_elems: Vec<&Element> = elem.children("server").collect();
    let heartbeat_interval = cfg.heartbeat_interval.0.max(0.001);
    let template = NodeTemplate {
        heartbeat_interval,
        hard_timeout: cfg.hard_timeout.0,
        phi_threshold: cfg.phi_threshold as f64,
        phi_failure_detector: cfg.phi_failure_detector,
        recover_sample_size: (cfg.recover_wait.0 / heartbeat_interval).max(0.0) as usize,
        always_available: cfg.heartbeat_type == HeartbeatType::None,
        shared_key: cfg.security.as_ref().map(|sec| sec.shared_key.clone()),
        plugin_id: elem.get("@id").unwrap_or("").to_string(),
    };
    let mut fixed = Vec::new();
    for (i, s) in cfg.server.into_iter().enumerate() {
        let se = server_elems.get(i).copied().unwrap_or(elem);
        let port = u16::try_from(s.port)
            .map_err(|_| param_error(se, "port", format!("invalid port {}", s.port)))?;
        fixed.push(Service {
            host: s.host,
            port,
            name: s.name,
            weight: s.weight,
            standby: s.standby,
            username: s.username,
            password: s.password,
            shared_key: s.shared_key,
        });
    }
    let nodes: Vec<Arc<Node>> = fixed
        .iter()
        .chain(running.iter().flat_map(|(_, found)| found.iter()))
        .map(|s| template.node(s))
        .collect();
    let mut lb = LoadBalancer {
        weight_array: Vec::new(),
        seed: rand::random(),
        rr: 0,
    };
    lb.rebuild(&nodes);
    Ok(ForwardOutput {
        inner: Arc::new(Inner {
            nodes: Mutex::new(Arc::new(nodes)),
            template,
            discovered: Mutex::new(Discovered { fixed, running }),
            lb: Mutex::new(lb),
            tls,
            security_hostname: cfg.security.map(|s| s.self_hostname),
            heartbeat_type: cfg.heartbeat_type,
            heartbeat_interval: Duration::from_secs_f64(heartbeat_interval),
            send_timeout: cfg.send_timeout.as_duration().max(Duration::from_millis(1)),
            connect_timeout: cfg
                .connect_timeout
                .map(|t| t.as_duration().max(Duration::from_millis(1))),
            require_ack_response: cfg.require_ack_response,
            ack_response_timeout: cfg.ack_response_timeout.as_duration(),
            expire_dns_cache: cfg.expire_dns_cache.map(|t| t.0),
            dns_round_robin: cfg.dns_round_robin,
            ignore_network_errors_at_startup: cfg.ignore_network_errors_at_startup,
            verify_connection_at_startup: cfg.verify_connection_at_startup,
            compress: cfg.compress,
            keepalive: cfg.keepalive,
            keepalive_timeout: cfg.keepalive_timeout.map(|t| t.as_duration()),
            send_keepalive_packet: cfg.send_keepalive_packet,
            time_as_integer: cfg.time_as_integer,
            stop: crate::router::Shutdown::new(),
            threads: Mutex::new(Vec::new()),
            write_seq: AtomicUsize::new(0),
        }),
    })
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Output>, ConfigError> {
    let out = build_output(elem, ctx)?;
    crate::buffer::build(
        elem,
        ctx,
        out,
        BufferDefaults {
            buffer_type: "memory",
            chunk_keys: &["tag"],
            timekey: None,
            file_path: None,
            required_chunk_key: Some((
                "tag",
                "buffer chunk key must include 'tag' for forward output",
            )),
        },
    )
}

impl Inner {
    fn nodes(&self) -> Arc<Vec<Arc<Node>>> {
        self.nodes.lock().clone()
    }

    fn rebuild(&self) {
        let nodes = self.nodes();
        self.lb.lock().rebuild(&nodes);
    }

    /// Asks the running discoveries again; when the servers changed, the nodes are replaced
    /// (a server still there keeps its node, connections and health).
    fn refresh_discovery(&self) {
        let mut d = self.discovered.lock();
        let mut changed = false;
        for (disc, found) in d.running.iter_mut() {
            if !disc.changed() {
                continue;
            }
            match disc.discover() {
                Ok(now) if now != *found => {
                    *found = now;
                    changed = true;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("service discovery failed: {e}"),
            }
        }
        if !changed {
            return;
        }
        let old = self.nodes();
        let wanted: Vec<&Service> = d
            .fixed
            .iter()
            .chain(d.running.iter().flat_map(|(_, f)| f.iter()))
            .collect();
        let mut nodes = Vec::with_capacity(wanted.len());
        for s in wanted {
            let name = s
                .name
                .clone()
                .unwrap_or_else(|| format!("{}:{}", s.host, s.port));
            let keep = old.iter().find(|n| {
                n.name == name
                    && n.host == s.host
                    && n.port == s.port
                    && n.weight == s.weight.max(0) as u64
                    && n.standby == s.standby
            });
            nodes.push(match keep {
                Some(n) => n.clone(),
                None => self.template.node(s),
            });
        }
        for n in old.iter() {
            if !nodes.iter().any(|x| Arc::ptr_eq(x, n)) {
                tracing::info!("removing forwarding server '{}'", n.name);
            }
        }
        *self.nodes.lock() = Arc::new(nodes);
        drop(d);
        self.rebuild();
    }

    /// Tries the available nodes in weighted round-robin order until one takes the message.
    fn select_and_send(&self, msg: &[u8], chunk_id: Option<&str>) -> Result<(), String> {
        let wlen = self.lb.lock().weight_array.len();
        let mut error = None;
        for _ in 0..wlen {
            let node = {
                let mut lb = self.lb.lock();
                if lb.weight_array.is_empty() {
                    break;
                }
                lb.rr = (lb.rr + 1) % lb.weight_array.len();
                match self.nodes().get(lb.weight_array[lb.rr]) {
                    Some(n) => n.clone(),
                    None => continue,
                }
            };
            if !node.available() {
                continue;
            }
            match self.send(&node, msg, chunk_id) {
                Ok(()) => return Ok(()),
                Err(e) => error = Some(e),
            }
        }
        Err(error.unwrap_or_else(|| "no nodes are available".into()))
    }

    /// One heartbeat round: health ticks, then a heartbeat to each node.
    fn heartbeat_round(&self, udp: Option<&UdpSocket>) {
        let now = now_f64();
        let mut changed = false;
        for n in self.nodes().iter() {
            changed |= n.tick(now);
        }
        if changed {
            self.rebuild();
        }
        for n in self.nodes().iter() {
            if self.stop.is_set() {
                return;
            }
            match self.heartbeat_type {
                HeartbeatType::Transport | HeartbeatType::Tcp => match self.connect(n) {
                    Ok(mut s) => {
                        s.close();
                        if n.heartbeat(true) {
                            self.rebuild();
                        }
                    }
                    Err(e) => tracing::debug!("failed to send heartbeat to {}: {e}", n.name),
                },
                HeartbeatType::Udp => {
                    if let (Some(u), Ok(addr)) = (udp, self.resolve(n)) {
                        let _ = u.send_to(b"\0", addr);
                    }
                }
                HeartbeatType::None => {}
            }
        }
    }

    fn on_udp_heartbeat(&self, from: SocketAddr) {
        for n in self.nodes().iter() {
            let matches = n.dns.lock().addrs.contains(&from);
            if matches && n.heartbeat(true) {
                self.rebuild();
            }
        }
    }
}

impl ForwardOutput {
    fn chunk_message(&self, chunk: &Chunk, chunk_id: Option<&str>) -> Result<Vec<u8>, String> {
        let tag = chunk.metadata.tag.as_deref().unwrap_or("");
        let (data, compressed): (std::borrow::Cow<'_, [u8]>, &str) = match self.inner.compress {
            Compress::Text => (std::borrow::Cow::Borrowed(&chunk.data), "text"),
            Compress::Gzip => {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(&chunk.data).map_err(|e| e.to_string())?;
                (e.finish().map_err(|e| e.to_string())?.into(), "gzip")
            }
            Compress::Zstd => (
                zstd::encode_all(&chunk.data[..], 0)
                    .map_err(|e| e.to_string())?
                    .into(),
                "zstd",
            ),
        };
        let len = u32::try_from(data.len()).map_err(|_| "chunk larger than 4 GiB".to_string())?;
        let mut msg = Vec::with_capacity(data.len() + tag.len() + 96);
        msg.push(0x93);
        crate::event::msgpack::write_str(&mut msg, tag.as_bytes());
        msg.push(0xdb);
        msg.extend_from_slice(&len.to_be_bytes());
        msg.extend_from_slice(&data);
        let mut opt = crate::event::Record::with_capacity(3);
        opt.push_unchecked(b"size".to_vec(), Value::Int(chunk.records as i64));
        opt.push_unchecked(b"compressed".to_vec(), Value::str(compressed));
        if let Some(id) = chunk_id {
            opt.push_unchecked(b"chunk".to_vec(), Value::str(id));
        }
        crate::event::msgpack::write_record(&mut msg, &opt);
        Ok(msg)
    }
}

impl BufferedOutput for ForwardOutput {
    fn format(&self, _tag: &str, es: &EventStream, out: &mut Vec<u8>) {
        for e in es.iter() {
            if self.inner.time_as_integer {
                out.push(0x92);
                let _ = rmp::encode::write_sint(out, e.time.sec);
                crate::event::msgpack::write_record(out, &e.record);
            } else {
                crate::event::msgpack::write_entry(out, e.time, &e.record);
            }
        }
    }

    fn write(&self, chunk: &Chunk) -> Result<(), WriteError> {
        if chunk.records == 0 || chunk.data.is_empty() {
            return Ok(());
        }
        let chunk_id = self
            .inner
            .require_ack_response
            .then(|| base64::engine::general_purpose::STANDARD.encode(chunk.unique_id) + "\n");
        let msg = self
            .chunk_message(chunk, chunk_id.as_deref())
            .map_err(WriteError::Unrecoverable)?;
        self.inner.write_seq.fetch_add(1, Ordering::Relaxed);
        self.inner
            .select_and_send(&msg, chunk_id.as_deref())
            .map_err(WriteError::Retriable)
    }

    fn start(&self) -> anyhow::Result<()> {
        let inner = &self.inner;
        for n in inner.nodes().iter() {
            if let Err(e) = inner.resolve(n) {
                if inner.ignore_network_errors_at_startup {
                    tracing::warn!(
                        "failed to resolve node name in startup host=\"{}\" error=\"{e}\"",
                        n.host
                    );
                } else {
                    anyhow::bail!("failed to resolve node name host=\"{}\": {e}", n.host);
                }
            }
            if inner.verify_connection_at_startup {
                match inner.connect(n) {
                    Ok(mut s) => s.close(),
                    Err(e) if inner.ignore_network_errors_at_startup => {
                        tracing::warn!("failed to connect to node {}: {e}", n.name)
                    }
                    Err(e) => anyhow::bail!("failed to connect to node {}: {e}", n.name),
                }
            }
        }
        let mut threads = inner.threads.lock();
        if !inner.discovered.lock().running.is_empty() {
            let i2 = inner.clone();
            let every = i2
                .discovered
                .lock()
                .running
                .iter()
                .map(|(d, _)| d.interval())
                .min()
                .unwrap_or(Duration::from_secs(60));
            threads.push(
                std::thread::Builder::new()
                    .name("out_forward-sd".into())
                    .spawn(move || {
                        while !i2.stop.wait_timeout(every) {
                            i2.refresh_discovery();
                        }
                    })?,
            );
        }
        if inner.heartbeat_type == HeartbeatType::None {
            return Ok(());
        }
        let udp = if inner.heartbeat_type == HeartbeatType::Udp {
            let any: SocketAddr = match inner.nodes().first().and_then(|n| inner.resolve(n).ok()) {
                Some(SocketAddr::V6(_)) => "[::]:0".parse()?,
                _ => "0.0.0.0:0".parse()?,
            };
            let u = UdpSocket::bind(any)?;
            u.set_read_timeout(Some(Duration::from_millis(200)))?;
            Some(Arc::new(u))
        } else {
            None
        };
        if let Some(u) = &udp {
            let (u2, i2) = (u.clone(), inner.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("out_forward-udp".into())
                    .spawn(move || {
                        let mut b = [0u8; 64];
                        while !i2.stop.is_set() {
                            if let Ok((_, from)) = u2.recv_from(&mut b) {
                                i2.on_udp_heartbeat(from);
                            }
                        }
                    })?,
            );
        }
        let i2 = inner.clone();
        threads.push(
            std::thread::Builder::new()
                .name("out_forward-heartbeat".into())
                .spawn(move || {
                    while !i2.stop.wait_timeout(i2.heartbeat_interval) {
                        i2.heartbeat_round(udp.as_deref());
                    }
                })?,
        );
        Ok(())
    }

    fn shutdown(&self) {
        self.inner.stop.trigger();
        let threads: Vec<_> = self.inner.threads.lock().drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
        for n in self.inner.nodes().iter() {
            for (mut s, _) in n.pool.lock().drain(..) {
                s.close();
            }
        }
    }
}
