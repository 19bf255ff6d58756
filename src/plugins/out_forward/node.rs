//! out_forward's servers: health (phi accrual failure detector), the weighted load balancer,
//! and the template that makes nodes for servers found while running.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::forward::Stream;
use crate::plugins::service_discovery::Service;

pub(super) fn now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Fluentd's phi accrual failure detector over heartbeat arrival gaps.
#[derive(Debug, Clone)]
pub struct FailureDetector {
    pub(super) heartbeat_interval: f64,
    pub(super) hard_timeout: f64,
    pub(super) last: f64,
    pub(super) init_gap: i64,
    pub(super) window: std::collections::VecDeque<i64>,
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
    pub(super) name: String,
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) weight: u64,
    pub(super) standby: bool,
    pub(super) shared_key: String,
    pub(super) username: String,
    pub(super) password: String,
    /// heartbeat_type none: always available.
    pub(super) always_available: bool,
    pub(super) available: AtomicBool,
    pub(super) failure: Mutex<FailureDetector>,
    pub(super) phi_threshold: f64,
    pub(super) phi_failure_detector: bool,
    pub(super) recover_sample_size: usize,
    pub(super) dns: Mutex<DnsCache>,
    /// Idle keepalive connections and when they were opened.
    pub(super) pool: Mutex<Vec<(Stream, Instant)>>,
}

#[derive(Default)]
pub(super) struct DnsCache {
    pub(super) addrs: Vec<SocketAddr>,
    pub(super) resolved_at: Option<Instant>,
    pub(super) rr: usize,
}

impl Node {
    pub fn available(&self) -> bool {
        self.always_available || self.available.load(Ordering::Relaxed)
    }

    pub(super) fn disable(&self) {
        self.available.store(false, Ordering::Relaxed);
    }

    /// Checks health; true when availability changed (the weight array must be rebuilt).
    pub(super) fn tick(&self, now: f64) -> bool {
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
    pub(super) fn heartbeat(&self, detect: bool) -> bool {
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
pub(super) struct LoadBalancer {
    pub(super) weight_array: Vec<usize>,
    pub(super) seed: u64,
    pub(super) rr: usize,
}

impl LoadBalancer {
    pub(super) fn rebuild(&mut self, nodes: &[Arc<Node>]) {
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
pub(super) struct NodeTemplate {
    pub(super) heartbeat_interval: f64,
    pub(super) hard_timeout: f64,
    pub(super) phi_threshold: f64,
    pub(super) phi_failure_detector: bool,
    pub(super) recover_sample_size: usize,
    pub(super) always_available: bool,
    pub(super) shared_key: Option<String>,
    pub(super) plugin_id: String,
}

impl NodeTemplate {
    pub(super) fn node(&self, s: &Service) -> Arc<Node> {
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
