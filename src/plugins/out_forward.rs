//! `@type forward` (output): sends each buffer chunk as one PackedForward message to one of its
//! `<server>`s, chosen by weighted round robin with standby failover (Fluentd's
//! `load_balancer.rb`). Server health comes from heartbeats (TCP/TLS connect, UDP, or none) and a
//! phi accrual failure detector. With `require_ack_response` a chunk is committed only when the
//! server acknowledges it; a missing or wrong ack makes the chunk retried (at-least-once).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use parking_lot::Mutex;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Deserialize;

use super::service_discovery::{self, Discovery, Service};
use super::{Output, PluginContext};
use crate::buffer::{BufferDefaults, BufferedOutput, Chunk, WriteError};
use crate::config_parser::de::Nested;
use crate::config_parser::types::{Size, Time};
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventStream, Value};
use crate::forward::codec::{self, ScanState};
use crate::forward::handshake::ClientHandshake;
use crate::forward::tls::{self, ClientTlsSettings};
use crate::forward::Stream;

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
enum TransportKind {
    #[default]
    Tcp,
    Tls,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
enum HeartbeatType {
    #[default]
    Transport,
    Tcp,
    Udp,
    None,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
enum Compress {
    #[default]
    Text,
    Gzip,
    Zstd,
}

#[derive(Debug, Deserialize)]
struct ServerConf {
    host: String,
    name: Option<String>,
    #[serde(default = "default_port")]
    port: i64,
    shared_key: Option<String>,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    standby: bool,
    #[serde(default = "default_weight")]
    weight: i64,
}

#[derive(Debug, Deserialize)]
struct SecurityConf {
    self_hostname: String,
    shared_key: String,
}

#[derive(Debug, Deserialize)]
struct ForwardOutputConfig {
    #[serde(default)]
    transport: TransportKind,
    #[serde(default = "sixty")]
    send_timeout: Time,
    connect_timeout: Option<Time>,
    #[serde(default)]
    heartbeat_type: HeartbeatType,
    #[serde(default = "one")]
    heartbeat_interval: Time,
    #[serde(default = "ten")]
    recover_wait: Time,
    #[serde(default = "sixty")]
    hard_timeout: Time,
    #[serde(default = "default_phi")]
    phi_threshold: i64,
    #[serde(default = "yes")]
    phi_failure_detector: bool,
    #[serde(default)]
    require_ack_response: bool,
    #[serde(default = "ack_timeout")]
    ack_response_timeout: Time,
    #[serde(default = "fifty")]
    #[allow(dead_code)]
    read_interval_msec: i64,
    #[serde(default = "read_length")]
    #[allow(dead_code)]
    read_length: Size,
    expire_dns_cache: Option<Time>,
    #[serde(default)]
    dns_round_robin: bool,
    #[serde(default)]
    ignore_network_errors_at_startup: bool,
    #[serde(default)]
    verify_connection_at_startup: bool,
    #[serde(default)]
    compress: Compress,
    #[serde(default)]
    keepalive: bool,
    keepalive_timeout: Option<Time>,
    #[serde(default)]
    send_keepalive_packet: bool,
    #[serde(default = "tls_v12")]
    tls_version: String,
    #[serde(default = "default_ciphers")]
    #[allow(dead_code)]
    tls_ciphers: String,
    #[serde(default)]
    tls_insecure_mode: bool,
    #[serde(default)]
    tls_allow_self_signed_cert: bool,
    #[serde(default = "yes")]
    tls_verify_hostname: bool,
    tls_ca_cert_path: Option<Vec<String>>,
    tls_cert_path: Option<Vec<String>>,
    tls_client_cert_path: Option<String>,
    tls_client_private_key_path: Option<String>,
    tls_client_private_key_passphrase: Option<String>,
    tls_cert_thumbprint: Option<String>,
    tls_cert_logical_store_name: Option<String>,
    #[serde(default)]
    tls_cert_use_enterprise_store: bool,
    #[serde(default)]
    time_as_integer: bool,
    #[allow(dead_code)]
    slow_flush_log_threshold: Option<f64>,
    #[allow(dead_code)]
    flush_interval: Option<Time>,
    security: Option<SecurityConf>,
    #[serde(default)]
    server: Vec<ServerConf>,
    host: Option<String>,
    port: Option<String>,
    /// Turned into `<server>` sections by `static_services` before this struct is read.
    #[allow(dead_code)]
    service_discovery: Option<Nested>,
    #[allow(dead_code)]
    buffer: Option<Nested>,
    #[allow(dead_code)]
    secondary: Option<Nested>,
}

fn yes() -> bool {
    true
}
fn default_port() -> i64 {
    24224
}
fn default_weight() -> i64 {
    60
}
fn one() -> Time {
    Time(1.0)
}
fn ten() -> Time {
    Time(10.0)
}
fn sixty() -> Time {
    Time(60.0)
}
fn ack_timeout() -> Time {
    Time(190.0)
}
fn default_phi() -> i64 {
    16
}
fn fifty() -> i64 {
    50
}
fn read_length() -> Size {
    Size(512)
}
fn tls_v12() -> String {
    "TLSv1_2".into()
}
fn default_ciphers() -> String {
    "ALL:!aNULL:!eNULL:!SSLv2".into()
}

fn now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Fluentd's phi accrual failure detector over heartbeat arrival gaps.
#[derive(Debug, Clone)]
pub struct FailureDetector {
    heartbeat_interval: f64,
    hard_timeout: f64,
    last: f64,
    init_gap: i64,
    window: std::collections::VecDeque<i64>,
}

const PHI_SAMPLE_SIZE: usize = 1000;

impl FailureDetector {
    pub fn new(heartbeat_interval: f64, hard_timeout: f64, init_last: f64) -> Self {
        let init_gap = (heartbeat_interval * 1e6) as i64;
        FailureDetector {
            heartbeat_interval,
            hard_timeout,
            last: init_last,
            init_gap,
            window: std::collections::VecDeque::from([init_gap]),
        }
    }

    pub fn hard_timeout(&self, now: f64) -> bool {
        now - self.last > self.hard_timeout
    }

    pub fn add(&mut self, now: f64) {
        if self.window.is_empty() {
            self.window.push_back(self.init_gap);
        } else {
            self.window.push_back(((now - self.last) * 1e6) as i64);
            if self.window.len() > PHI_SAMPLE_SIZE {
                self.window.pop_front();
            }
        }
        self.last = now;
    }

    pub fn phi(&self, now: f64) -> f64 {
        if self.window.is_empty() {
            return 0.0;
        }
        let (mut sum, mut fact) = (0i128, 0i128);
        for (i, gap) in self.window.iter().enumerate() {
            sum += *gap as i128 * (1 + i as i128);
            fact += 1 + i as i128;
        }
        let mean_usec = sum / fact;
        let mean = (mean_usec as f64 / 1e6) - self.heartbeat_interval + 1.0;
        let t = now - self.last - self.heartbeat_interval + 1.0;
        (1.0 / 10f64.ln()) * t / mean
    }

    pub fn sample_size(&self) -> usize {
        self.window.len()
    }

    pub fn clear(&mut self) {
        self.window.clear();
        self.last = 0.0;
    }
}

/// One `<server>`.
pub struct Node {
    name: String,
    host: String,
    port: u16,
    weight: u64,
    standby: bool,
    shared_key: String,
    username: String,
    password: String,
    /// heartbeat_type none: always available.
    always_available: bool,
    available: AtomicBool,
    failure: Mutex<FailureDetector>,
    phi_threshold: f64,
    phi_failure_detector: bool,
    recover_sample_size: usize,
    dns: Mutex<DnsCache>,
    /// Idle keepalive connections and when they were opened.
    pool: Mutex<Vec<(Stream, Instant)>>,
}

#[derive(Default)]
struct DnsCache {
    addrs: Vec<SocketAddr>,
    resolved_at: Option<Instant>,
    rr: usize,
}

impl Node {
    pub fn available(&self) -> bool {
        self.always_available || self.available.load(Ordering::Relaxed)
    }

    fn disable(&self) {
        self.available.store(false, Ordering::Relaxed);
    }

    /// Checks health; true when availability changed (the weight array must be rebuilt).
    fn tick(&self, now: f64) -> bool {
        if self.always_available {
            return false;
        }
        let mut f = self.failure.lock();
        if !self.available.load(Ordering::Relaxed) {
            if f.hard_timeout(now) {
                f.clear();
            }
            return false;
        }
        if f.hard_timeout(now) {
            tracing::warn!(
                "detached forwarding server '{}' host=\"{}\" port={} hard_timeout=true",
                self.name,
                self.host,
                self.port
            );
            self.disable();
            self.dns.lock().resolved_at = None;
            f.clear();
            return true;
        }
        if self.phi_failure_detector {
            let phi = f.phi(now);
            if phi > self.phi_threshold {
                tracing::warn!(
                    "detached forwarding server '{}' host=\"{}\" port={} phi={}",
                    self.name,
                    self.host,
                    self.port,
                    phi
                );
                self.disable();
                self.dns.lock().resolved_at = None;
                f.clear();
                return true;
            }
        }
        false
    }

    /// Records a heartbeat; true when the node has just recovered.
    fn heartbeat(&self, detect: bool) -> bool {
        if self.always_available {
            return false;
        }
        let mut f = self.failure.lock();
        f.add(now_f64());
        if detect
            && !self.available.load(Ordering::Relaxed)
            && f.sample_size() > self.recover_sample_size
        {
            self.available.store(true, Ordering::Relaxed);
            tracing::warn!(
                "recovered forwarding server '{}' host=\"{}\" port={}",
                self.name,
                self.host,
                self.port
            );
            return true;
        }
        false
    }
}

/// Weighted round robin over the available regular nodes, topped up with standby nodes when
/// regular ones are lost (Fluentd's `LoadBalancer`).
struct LoadBalancer {
    weight_array: Vec<usize>,
    seed: u64,
    rr: usize,
}

impl LoadBalancer {
    fn rebuild(&mut self, nodes: &[Arc<Node>]) {
        let (standby, mut regular): (Vec<usize>, Vec<usize>) =
            (0..nodes.len()).partition(|&i| nodes[i].standby);
        let mut lost: i64 = regular
            .iter()
            .filter(|&&i| !nodes[i].available())
            .map(|&i| nodes[i].weight as i64)
            .sum();
        if lost > 0 {
            for &i in &standby {
                if nodes[i].available() {
                    regular.push(i);
                    tracing::warn!(
                        "using standby node {}:{} weight={}",
                        nodes[i].host,
                        nodes[i].port,
                        nodes[i].weight
                    );
                    lost -= nodes[i].weight as i64;
                    if lost <= 0 {
                        break;
                    }
                }
            }
        }
        if regular.is_empty() {
            tracing::warn!("No nodes are available");
            self.weight_array.clear();
            return;
        }
        fn gcd(a: u64, b: u64) -> u64 {
            if b == 0 {
                a
            } else {
                gcd(b, a % b)
            }
        }
        let g = regular.iter().fold(0, |g, &i| gcd(g, nodes[i].weight));
        let mut wa = Vec::new();
        for &i in &regular {
            for _ in 0..nodes[i].weight.checked_div(g).unwrap_or(0) {
                wa.push(i);
            }
        }
        if wa.is_empty() {
            // Every regular node has weight 0: none is used.
            self.weight_array.clear();
            return;
        }
        let coe = (regular.len() * 6) / wa.len();
        if coe > 1 {
            wa = wa.repeat(coe);
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed);
        wa.shuffle(&mut rng);
        self.weight_array = wa;
    }
}

/// What every node shares, to make nodes found by service discovery while running.
struct NodeTemplate {
    heartbeat_interval: f64,
    hard_timeout: f64,
    phi_threshold: f64,
    phi_failure_detector: bool,
    recover_sample_size: usize,
    always_available: bool,
    shared_key: Option<String>,
    plugin_id: String,
}

impl NodeTemplate {
    fn node(&self, s: &Service) -> Arc<Node> {
        let name = s
            .name
            .clone()
            .unwrap_or_else(|| format!("{}:{}", s.host, s.port));
        tracing::info!(
            "adding forwarding server '{}' host=\"{}\" port={} weight={} plugin_id=\"{}\"",
            name,
            s.host,
            s.port,
            s.weight,
            self.plugin_id
        );
        Arc::new(Node {
            name,
            host: s.host.clone(),
            port: s.port,
            weight: s.weight.max(0) as u64,
            standby: s.standby,
            shared_key: s
                .shared_key
                .clone()
                .or_else(|| self.shared_key.clone())
                .unwrap_or_default(),
            username: s.username.clone(),
            password: s.password.clone(),
            always_available: self.always_available,
            available: AtomicBool::new(true),
            failure: Mutex::new(FailureDetector::new(
                self.heartbeat_interval,
                self.hard_timeout,
                now_f64(),
            )),
            phi_threshold: self.phi_threshold,
            phi_failure_detector: self.phi_failure_detector,
            recover_sample_size: self.recover_sample_size,
            dns: Mutex::new(DnsCache::default()),
            pool: Mutex::new(Vec::new()),
        })
    }
}

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

/// Reads one msgpack object from `stream` within `timeout`.
fn read_object(stream: &mut Stream, timeout: Duration) -> Result<Value, String> {
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 4096];
    let mut st = ScanState::default();
    loop {
        if let Some(len) = codec::scan_msgpack(&buf, &mut st).map_err(|e| e.to_string())? {
            return codec::decode_value(&buf[..len]).map_err(|e| e.to_string());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("timeout".into());
        }
        let _ = stream.tcp().set_read_timeout(Some(left));
        match stream.read(&mut chunk) {
            Ok(0) => return Err("connection closed by the server".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err("timeout".into())
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
        if buf.len() > 1 << 20 {
            return Err("response too large".into());
        }
    }
}

impl Inner {
    fn resolve(&self, node: &Node) -> Result<SocketAddr, String> {
        let mut d = node.dns.lock();
        let fresh = match (self.expire_dns_cache, d.resolved_at) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(exp), Some(at)) => exp > 0.0 && at.elapsed().as_secs_f64() < exp,
        };
        if !fresh || d.addrs.is_empty() {
            let addrs: Vec<SocketAddr> = (node.host.as_str(), node.port)
                .to_socket_addrs()
                .map_err(|e| format!("getaddrinfo: {} ({})", e, node.host))?
                .collect();
            if addrs.is_empty() {
                return Err(format!("no address for {}", node.host));
            }
            d.addrs = addrs;
            d.resolved_at = Some(Instant::now());
        }
        let i = if self.dns_round_robin {
            d.rr = d.rr.wrapping_add(1);
            d.rr % d.addrs.len()
        } else {
            0
        };
        Ok(d.addrs[i])
    }

    /// Opens a connection to `node`: TCP, then TLS, then the handshake when `<security>` is set.
    fn connect(&self, node: &Node) -> Result<Stream, String> {
        let addr = self.resolve(node)?;
        let tcp = match self.connect_timeout {
            Some(t) => TcpStream::connect_timeout(&addr, t),
            None => TcpStream::connect(addr),
        }
        .map_err(|e| format!("{e} - connect(2) for {addr}"))?;
        let _ = tcp.set_nodelay(true);
        let _ = tcp.set_write_timeout(Some(self.send_timeout));
        let _ = tcp.set_read_timeout(Some(self.send_timeout));
        let sref = socket2::SockRef::from(&tcp);
        // Fluentd sets SO_LINGER to send_timeout so that close waits for the data to leave.
        let _ = sref.set_linger(Some(self.send_timeout));
        if self.send_keepalive_packet {
            let _ = sref.set_keepalive(true);
        }
        let mut stream = match &self.tls {
            Some(cfg) => {
                let name = tls::server_name(&node.host)?;
                let conn =
                    rustls::ClientConnection::new(cfg.clone(), name).map_err(|e| e.to_string())?;
                let mut s = rustls::StreamOwned::new(conn, tcp);
                while s.conn.is_handshaking() {
                    s.conn
                        .complete_io(&mut s.sock)
                        .map_err(|e| format!("TLS handshake with {addr} failed: {e}"))?;
                }
                Stream::ClientTls(Box::new(s))
            }
            None => Stream::Plain(tcp),
        };
        if let Some(hostname) = &self.security_hostname {
            let mut hs =
                ClientHandshake::new(hostname, &node.shared_key, &node.username, &node.password);
            let helo = read_object(&mut stream, self.send_timeout)
                .map_err(|e| format!("failed to read HELO from {}: {e}", node.name))?;
            if !hs.check_helo(&helo) {
                stream.close();
                return Err(format!("received invalid helo message from {}", node.name));
            }
            let ping = codec::to_msgpack(&hs.ping());
            stream
                .write_all(&ping)
                .and_then(|_| stream.flush())
                .map_err(|e| e.to_string())?;
            let pong = read_object(&mut stream, self.send_timeout)
                .map_err(|e| format!("failed to read PONG from {}: {e}", node.name))?;
            if let Err(reason) = hs.check_pong(&pong) {
                stream.close();
                return Err(format!("{reason} (server {})", node.name));
            }
        }
        Ok(stream)
    }

    fn checkout(&self, node: &Node) -> Result<Stream, String> {
        if self.keepalive {
            let mut pool = node.pool.lock();
            while let Some((mut s, opened)) = pool.pop() {
                let expired = self
                    .keepalive_timeout
                    .is_some_and(|t| opened.elapsed() >= t);
                if expired {
                    s.close();
                    continue;
                }
                return Ok(s);
            }
        }
        self.connect(node)
    }

    fn checkin(&self, node: &Node, mut s: Stream) {
        if self.keepalive {
            node.pool.lock().push((s, Instant::now()));
        } else {
            s.close();
        }
    }

    /// Sends one encoded message and, with acks, waits for the matching ack.
    fn send(&self, node: &Node, msg: &[u8], chunk_id: Option<&str>) -> Result<(), String> {
        let mut s = self.checkout(node)?;
        if let Err(e) = s.write_all(msg).and_then(|_| s.flush()) {
            s.close();
            return Err(format!("failed to send to {}: {e}", node.name));
        }
        if let Some(id) = chunk_id {
            match read_object(&mut s, self.ack_response_timeout) {
                Ok(v) => {
                    let ack = v
                        .as_map()
                        .and_then(|m| m.get("ack"))
                        .and_then(|a| a.as_bytes());
                    if ack != Some(id.as_bytes()) {
                        tracing::warn!(
                            "ack in response and chunk id in sent data are different chunk_id=\"{}\" ack=\"{}\"",
                            id.trim_end(),
                            String::from_utf8_lossy(ack.unwrap_or_default()).trim_end()
                        );
                        s.close();
                        return Err("ack mismatch".into());
                    }
                }
                Err(e) if e == "timeout" => {
                    tracing::warn!(
                        "no response from node. regard it as unavailable. host=\"{}\" port={}",
                        node.host,
                        node.port
                    );
                    node.disable();
                    self.rebuild();
                    s.close();
                    return Err(format!("no ack response from {}", node.name));
                }
                Err(e) => {
                    s.close();
                    return Err(format!("failed to read ack from {}: {e}", node.name));
                }
            }
        }
        self.checkin(node, s);
        Ok(())
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::Metadata;
    use crate::config_parser::{parse_str, ParseOptions};
    use crate::event::{EventTime, Record};
    use std::net::TcpListener;

    fn matcher(conf: &str) -> Element {
        let root = parse_str(
            &format!("<match **>\n@type forward\n{conf}\n</match>\n"),
            std::path::Path::new("t.conf"),
            &ParseOptions::default(),
        )
        .unwrap();
        let e = root.children("match").next().unwrap().clone();
        e
    }

    fn err(conf: &str) -> String {
        match create(&matcher(conf), &PluginContext::for_tests()) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn config_errors() {
        assert!(err("").contains("requires at least one node"));
        assert!(err("host 127.0.0.1\n<server>\nhost a\n</server>")
            .contains("'host' parameter is already removed"));
        assert!(
            err("<server>\nhost a\n</server>\n<buffer time>\ntimekey 60\n</buffer>")
                .contains("buffer chunk key must include 'tag' for forward output")
        );
        assert!(
            err("heartbeat_type udp\ndns_round_robin true\n<server>\nhost a\n</server>")
                .contains("dns_round_robin")
        );
        assert!(err("heartbeat_type bogus\n<server>\nhost a\n</server>")
            .contains("valid options are transport,tcp,udp,none but got bogus"));
        assert_eq!(err("<server>\nhost a\n</server>"), "");
    }

    fn nodes(spec: &[(u64, bool, bool)]) -> Vec<Arc<Node>> {
        spec.iter()
            .enumerate()
            .map(|(i, &(weight, standby, available))| {
                Arc::new(Node {
                    name: format!("n{i}"),
                    host: "127.0.0.1".into(),
                    port: 1,
                    weight,
                    standby,
                    shared_key: String::new(),
                    username: String::new(),
                    password: String::new(),
                    always_available: false,
                    available: AtomicBool::new(available),
                    failure: Mutex::new(FailureDetector::new(1.0, 60.0, 0.0)),
                    phi_threshold: 16.0,
                    phi_failure_detector: true,
                    recover_sample_size: 10,
                    dns: Mutex::new(DnsCache::default()),
                    pool: Mutex::new(Vec::new()),
                })
            })
            .collect()
    }

    fn counts(lb: &LoadBalancer, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for &i in &lb.weight_array {
            c[i] += 1;
        }
        c
    }

    #[test]
    fn weight_array_follows_load_balancer_rb() {
        let mut lb = LoadBalancer {
            weight_array: vec![],
            seed: 7,
            rr: 0,
        };
        // weights 60 and 30: gcd 30 → [a, a, b], replicated to ≥ 6 × nodes = 12 entries.
        let ns = nodes(&[(60, false, true), (30, false, true), (60, true, true)]);
        lb.rebuild(&ns);
        assert_eq!(counts(&lb, 3), vec![8, 4, 0]);
        // A regular node down: the standby joins to cover its weight; the lost node stays in
        // the array (selection skips it), as in Fluentd.
        let ns = nodes(&[(60, false, false), (30, false, true), (60, true, true)]);
        lb.rebuild(&ns);
        assert_eq!(counts(&lb, 3), vec![6, 3, 6]);
        // Weight 0 is never used.
        let ns = nodes(&[(0, false, true), (10, false, true)]);
        lb.rebuild(&ns);
        assert_eq!(counts(&lb, 2), vec![0, 12]);
        let ns = nodes(&[(60, false, false)]);
        lb.rebuild(&ns);
        assert_eq!(counts(&lb, 1), vec![6]);
    }

    #[test]
    fn phi_grows_without_heartbeats_and_recovery_needs_samples() {
        let mut f = FailureDetector::new(1.0, 60.0, 1000.0);
        for i in 1..=5 {
            f.add(1000.0 + i as f64);
        }
        assert_eq!(f.phi(1005.0), 0.0);
        assert_eq!(f.phi(1006.0), 1.0 / 10f64.ln());
        // 40 s of silence with 1 s gaps: phi = 40 / ln 10 ≈ 17.4 > 16.
        assert!(f.phi(1045.0) > 16.0);
        assert!(f.phi(1036.0) < 16.0);
        assert!(f.hard_timeout(1065.5));
        let ns = nodes(&[(60, false, false)]);
        // As after a detach: the window is emptied.
        ns[0].failure.lock().clear();
        for _ in 0..10 {
            assert!(!ns[0].heartbeat(true));
        }
        assert!(ns[0].heartbeat(true), "recovers after more than 10 samples");
        assert!(ns[0].available());
    }

    fn chunk(tag: &str, n: usize) -> Chunk {
        let mut data = Vec::new();
        for i in 0..n {
            let mut r = Record::new();
            r.insert("i", Value::Int(i as i64));
            crate::event::msgpack::write_entry(&mut data, EventTime::new(1700000000, 5), &r);
        }
        Chunk {
            unique_id: [7; 16],
            metadata: Metadata {
                tag: Some(tag.into()),
                ..Default::default()
            },
            records: n as u64,
            created: 0.0,
            data,
        }
    }

    /// A one-connection server answering acks with `ack` (None: the right id).
    fn fake_server(ack: Option<&'static str>) -> (u16, std::thread::JoinHandle<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = Vec::new();
            let mut st = ScanState::default();
            let mut b = [0u8; 65536];
            let len = loop {
                let n = s.read(&mut b).unwrap();
                buf.extend_from_slice(&b[..n]);
                if let Some(len) = codec::scan_msgpack(&buf, &mut st).unwrap() {
                    break len;
                }
            };
            let raw = codec::RawMessage::from_msgpack(&buf[..len]).unwrap();
            let d = codec::decode_message(raw, &Default::default(), EventTime::now()).unwrap();
            if let Some(mut a) = codec::ack_for(&d.option) {
                if let (Some(fake), Value::Map(m)) = (ack, &mut a) {
                    m.insert("ack", Value::str(fake));
                }
                s.write_all(&codec::to_msgpack(&a)).unwrap();
            }
            buf.truncate(len);
            buf
        });
        (port, h)
    }

    fn output(conf: &str) -> ForwardOutput {
        build_output(&matcher(conf), &PluginContext::for_tests()).unwrap()
    }

    #[test]
    fn static_service_discovery_adds_servers() {
        let o = output(
            "<server>\nhost 127.0.0.1\nport 1\n</server>\n<service_discovery>\n@type static\n<service>\nhost 127.0.0.2\nport 2\nweight 10\n</service>\n<service>\nhost 127.0.0.3\nstandby true\n</service>\n</service_discovery>",
        );
        let nodes: Vec<_> = o
            .inner
            .nodes()
            .iter()
            .map(|n| (n.name.clone(), n.port, n.weight, n.standby))
            .collect();
        assert_eq!(
            nodes,
            vec![
                ("127.0.0.1:1".to_string(), 1, 60, false),
                ("127.0.0.2:2".to_string(), 2, 10, false),
                ("127.0.0.3:24224".to_string(), 24224, 60, true),
            ]
        );
        assert!(err(
            "<service_discovery>\n@type file\npath /nonexistent/x.yaml\n</service_discovery>"
        )
        .contains("not found"));
    }

    fn node_names(o: &ForwardOutput) -> Vec<String> {
        o.inner.nodes().iter().map(|n| n.name.clone()).collect()
    }

    #[test]
    fn file_service_discovery_reloads_when_the_file_changes() {
        let d = tempfile::tempdir().unwrap();
        let y = d.path().join("servers.yaml");
        std::fs::write(&y, "- host: 127.0.0.1\n  port: 24301\n").unwrap();
        let o = output(&format!(
            "heartbeat_type none\n<service_discovery>\n@type file\npath {}\n</service_discovery>",
            y.display()
        ));
        assert_eq!(node_names(&o), vec!["127.0.0.1:24301"]);
        let first = o.inner.nodes()[0].clone();
        std::fs::write(
            &y,
            "- host: 127.0.0.1\n  port: 24301\n- host: 127.0.0.1\n  port: 24302\n  weight: 5\n",
        )
        .unwrap();
        // A later modification time, whatever the clock resolution.
        let f = std::fs::File::options().write(true).open(&y).unwrap();
        f.set_modified(SystemTime::now() + Duration::from_secs(5))
            .unwrap();
        o.inner.refresh_discovery();
        assert_eq!(node_names(&o), vec!["127.0.0.1:24301", "127.0.0.1:24302"]);
        // The server that stayed keeps its node.
        assert!(Arc::ptr_eq(&o.inner.nodes()[0], &first));
        assert_eq!(o.inner.nodes()[1].weight, 5);
        assert!(!o.inner.lb.lock().weight_array.is_empty());
        // Unchanged file: nothing asked again.
        o.inner.refresh_discovery();
        assert_eq!(node_names(&o).len(), 2);
    }

    #[test]
    fn srv_service_discovery_asks_a_dns_server() {
        let dns = service_discovery::tests::fake_dns(
            vec![(10, 20, 24311, "127.0.0.1"), (10, 30, 24312, "127.0.0.1")],
            2,
        );
        let o = output(&format!(
            "heartbeat_type none\n<service_discovery>\n@type srv\nservice fluentd\nhostname example.test\ndns_server_host {dns}\ninterval 1\n</service_discovery>"
        ));
        let nodes: Vec<_> = o
            .inner
            .nodes()
            .iter()
            .map(|n| (n.host.clone(), n.port, n.weight))
            .collect();
        assert_eq!(
            nodes,
            vec![
                ("127.0.0.1".to_string(), 24311, 20),
                ("127.0.0.1".to_string(), 24312, 30)
            ]
        );
        // Asked again: the same answer keeps the nodes.
        let before = o.inner.nodes();
        o.inner.refresh_discovery();
        assert!(Arc::ptr_eq(&before[0], &o.inner.nodes()[0]));
    }

    #[test]
    fn write_sends_one_packed_forward_message_with_ack() {
        let (port, h) = fake_server(None);
        let out = output(&format!(
            "heartbeat_type none\nrequire_ack_response true\n<server>\nhost 127.0.0.1\nport {port}\n</server>"
        ));
        let c = chunk("app.x", 3);
        assert!(out.write(&c).is_ok());
        let msg = h.join().unwrap();
        let mut expect = vec![0x93, 0xa5];
        expect.extend_from_slice(b"app.x");
        expect.push(0xdb);
        expect.extend_from_slice(&(c.data.len() as u32).to_be_bytes());
        expect.extend_from_slice(&c.data);
        expect.extend_from_slice(&[0x83, 0xa4]);
        expect.extend_from_slice(b"size");
        expect.push(3);
        expect.extend_from_slice(&[0xaa]);
        expect.extend_from_slice(b"compressed");
        expect.extend_from_slice(&[0xa4]);
        expect.extend_from_slice(b"text");
        expect.extend_from_slice(&[0xa5]);
        expect.extend_from_slice(b"chunk");
        expect.push(0xb9);
        expect.extend_from_slice(b"BwcHBwcHBwcHBwcHBwcHBw==\n");
        assert_eq!(msg, expect);
    }

    #[test]
    fn ack_mismatch_is_retriable() {
        let (port, h) = fake_server(Some("other"));
        let out = output(&format!(
            "heartbeat_type none\nrequire_ack_response true\n<server>\nhost 127.0.0.1\nport {port}\n</server>"
        ));
        assert!(matches!(
            out.write(&chunk("t", 1)),
            Err(WriteError::Retriable(_))
        ));
        h.join().unwrap();
    }

    #[test]
    fn gzip_and_time_as_integer() {
        let (port, h) = fake_server(None);
        let out = output(&format!(
            "heartbeat_type none\ncompress gzip\ntime_as_integer true\n<server>\nhost 127.0.0.1\nport {port}\n</server>"
        ));
        let mut es = EventStream::new();
        let mut r = Record::new();
        r.insert("k", Value::str("v"));
        es.push(EventTime::new(1700000000, 999), r.clone());
        let mut data = Vec::new();
        out.format("t", &es, &mut data);
        assert_eq!(&data[..6], &[0x92, 0xce, 0x65, 0x53, 0xf1, 0x00]);
        let mut c = chunk("t", 1);
        c.data = data;
        assert!(out.write(&c).is_ok());
        let msg = h.join().unwrap();
        let raw = codec::RawMessage::from_msgpack(&msg).unwrap();
        let d = codec::decode_message(raw, &Default::default(), EventTime::now()).unwrap();
        assert_eq!(d.events, EventStream::one(EventTime::new(1700000000, 0), r));
    }

    #[test]
    fn refused_connection_is_retriable() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let out = output(&format!(
            "heartbeat_type none\n<server>\nhost 127.0.0.1\nport {port}\n</server>"
        ));
        assert!(matches!(
            out.write(&chunk("t", 1)),
            Err(WriteError::Retriable(_))
        ));
    }
}
