//! out_forward's `<service_discovery>` types that change at run time (Fluentd's `sd_file.rb`
//! and `sd_srv.rb`): a server list read from a YAML or JSON file (read again when the file
//! changes) and DNS SRV records (asked again every `interval`).
//!
//! SRV records are asked with a small DNS query over UDP written here: one question, one
//! answer section to read; a resolver crate would bring its own runtime for this one lookup.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::PluginContext;
use crate::config_parser::types::Time;
use crate::config_parser::{ConfigError, Element};

/// One server found, with `<server>`'s parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Service {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    pub name: Option<String>,
    #[serde(default = "default_weight")]
    pub weight: i64,
    #[serde(default)]
    pub standby: bool,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    pub shared_key: Option<String>,
}

fn default_port() -> u16 {
    24224
}
fn default_weight() -> i64 {
    60
}

/// A discovery that is asked again while running.
pub trait Discovery: Send + Sync {
    /// The current servers.
    fn discover(&self) -> Result<Vec<Service>, String>;
    /// How often to look again.
    fn interval(&self) -> Duration;
    /// Whether looking again may give another answer (the file changed, or always for DNS).
    fn changed(&mut self) -> bool;
}

#[derive(Deserialize)]
struct FileConf {
    path: String,
    #[serde(default = "bom_utf8")]
    conf_encoding: String,
}

fn bom_utf8() -> String {
    "bom|utf-8".into()
}

pub struct FileDiscovery {
    path: PathBuf,
    mtime: Option<SystemTime>,
}

impl FileDiscovery {
    fn mtime(&self) -> Option<SystemTime> {
        std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok()
    }
}

impl Discovery for FileDiscovery {
    fn discover(&self) -> Result<Vec<Service>, String> {
        let raw = std::fs::read(&self.path)
            .map_err(|e| format!("sd_file: failed to read {}: {e}", self.path.display()))?;
        let text = String::from_utf8_lossy(raw.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&raw));
        let ext = self
            .path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        let list: Vec<Service> = match ext.as_deref() {
            Some("yaml" | "yml") => serde_yaml::from_str(&text).map_err(|e| e.to_string()),
            Some("json") => serde_json::from_str(&text).map_err(|e| e.to_string()),
            _ => Err(format!(
                "Unknown file extension: {}",
                ext.as_deref().unwrap_or("")
            )),
        }
        .map_err(|e| format!("sd_file: {}: {e}", self.path.display()))?;
        Ok(list)
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn changed(&mut self) -> bool {
        let m = self.mtime();
        let changed = m != self.mtime;
        self.mtime = m;
        changed
    }
}

#[derive(Deserialize)]
struct SrvConf {
    service: String,
    #[serde(default = "tcp")]
    proto: String,
    hostname: String,
    #[serde(default = "sixty")]
    interval: Time,
    dns_server_host: Option<String>,
    #[serde(default = "yes")]
    dns_lookup: bool,
}

fn tcp() -> String {
    "tcp".into()
}
fn sixty() -> Time {
    Time(60.0)
}
fn yes() -> bool {
    true
}

pub struct SrvDiscovery {
    name: String,
    server: Option<SocketAddr>,
    interval: Duration,
    dns_lookup: bool,
}

impl Discovery for SrvDiscovery {
    fn discover(&self) -> Result<Vec<Service>, String> {
        let server = match self.server {
            Some(s) => s,
            None => system_nameserver()?,
        };
        let records = query_srv(server, &self.name, Duration::from_secs(5))?;
        let mut out = Vec::new();
        for r in records {
            let host = if self.dns_lookup {
                match (r.target.as_str(), r.port).to_socket_addrs() {
                    Ok(mut a) => match a.next() {
                        Some(a) => a.ip().to_string(),
                        None => continue,
                    },
                    Err(e) => {
                        tracing::warn!("sd_srv: failed to resolve {}: {e}", r.target);
                        continue;
                    }
                }
            } else {
                r.target.clone()
            };
            out.push(Service {
                host,
                port: r.port,
                name: Some(format!("{}:{}", r.target, r.port)),
                weight: i64::from(r.weight),
                standby: false,
                username: String::new(),
                password: String::new(),
                shared_key: None,
            });
        }
        Ok(out)
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn changed(&mut self) -> bool {
        true
    }
}

/// The `<service_discovery>` section: None for `@type static` (its `<service>` sections are
/// servers), else the discovery to run.
pub fn from_section(
    sd: &Element,
    ctx: &PluginContext,
) -> Result<Option<Box<dyn Discovery>>, ConfigError> {
    match sd.plugin_type() {
        Some("static") => Ok(None),
        Some("file") => {
            let c: FileConf = ctx.configure(sd, "file")?;
            let enc = c.conf_encoding.to_ascii_lowercase();
            if !matches!(
                enc.as_str(),
                "bom|utf-8" | "utf-8" | "utf8" | "ascii" | "us-ascii"
            ) {
                return Err(sd.error(format!(
                    "conf_encoding '{}' is not supported by ferrentd; use utf-8",
                    c.conf_encoding
                )));
            }
            let path = PathBuf::from(&c.path);
            if !path.exists() {
                return Err(sd.error(format!("sd_file: path={} not found", c.path)));
            }
            let mut d = FileDiscovery { path, mtime: None };
            d.changed();
            d.discover().map_err(|e| sd.error(e))?;
            Ok(Some(Box::new(d)))
        }
        Some("srv") => {
            let c: SrvConf = ctx.configure(sd, "srv")?;
            let server = match &c.dns_server_host {
                None => None,
                Some(h) => Some(parse_dns_server(h).map_err(|e| sd.error(e))?),
            };
            Ok(Some(Box::new(SrvDiscovery {
                name: format!("_{}._{}.{}", c.service, c.proto, c.hostname),
                server,
                interval: Duration::from_secs_f64(c.interval.0.max(0.1)),
                dns_lookup: c.dns_lookup,
            })))
        }
        Some(t) => Err(sd.error(format!(
            "Unknown sd plugin '{t}'. Run 'gem search -rd fluent-plugin' to find plugins"
        ))),
        None => Err(sd.error("Missing '@type' parameter on <service_discovery> directive")),
    }
}

/// `dns_server_host`: `HOST` or `HOST:PORT` (port 53 by default).
fn parse_dns_server(h: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = h.parse::<SocketAddr>() {
        return Ok(a);
    }
    let with_port = if h.contains(':') && !h.starts_with('[') {
        h.to_string()
    } else {
        format!("{h}:53")
    };
    with_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("invalid dns_server_host '{h}'"))
}

/// The first `nameserver` of /etc/resolv.conf.
fn system_nameserver() -> Result<SocketAddr, String> {
    let text = std::fs::read_to_string("/etc/resolv.conf").map_err(|e| e.to_string())?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .next()
        .ok_or_else(|| "no nameserver in /etc/resolv.conf".to_string())
}

#[derive(Debug, Clone, PartialEq)]
pub struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

/// A DNS query for `name`'s SRV records (type 33, class IN, recursion desired).
pub fn srv_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(name.len() + 18);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len().min(63) as u8);
        q.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
    }
    q.extend_from_slice(&[0, 0, 33, 0, 1]);
    q
}

/// A (possibly compressed) name at `pos`: the name and the position after it.
fn read_name(msg: &[u8], mut pos: usize) -> Result<(String, usize), String> {
    let bad = || "malformed DNS answer".to_string();
    let mut labels: Vec<String> = Vec::new();
    let mut end = None;
    for _ in 0..128 {
        let len = *msg.get(pos).ok_or_else(bad)? as usize;
        if len & 0xc0 == 0xc0 {
            let lo = *msg.get(pos + 1).ok_or_else(bad)? as usize;
            end.get_or_insert(pos + 2);
            pos = ((len & 0x3f) << 8) | lo;
            continue;
        }
        if len == 0 {
            return Ok((labels.join("."), end.unwrap_or(pos + 1)));
        }
        let l = msg.get(pos + 1..pos + 1 + len).ok_or_else(bad)?;
        labels.push(String::from_utf8_lossy(l).into_owned());
        pos += 1 + len;
    }
    Err(bad())
}

fn u16_at(msg: &[u8], pos: usize) -> Result<u16, String> {
    msg.get(pos..pos + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or_else(|| "malformed DNS answer".to_string())
}

/// The SRV records of an answer to the query `id`, ordered by priority.
pub fn parse_srv_answer(id: u16, msg: &[u8]) -> Result<Vec<SrvRecord>, String> {
    if u16_at(msg, 0)? != id {
        return Err("DNS answer to another query".into());
    }
    let rcode = msg.get(3).map(|b| b & 0x0f).unwrap_or(0);
    if rcode != 0 {
        return Err(format!("DNS error rcode={rcode}"));
    }
    let (qd, an) = (u16_at(msg, 4)?, u16_at(msg, 6)?);
    let mut pos = 12;
    for _ in 0..qd {
        pos = read_name(msg, pos)?.1 + 4;
    }
    let mut out = Vec::new();
    for _ in 0..an {
        pos = read_name(msg, pos)?.1;
        let (ty, len) = (u16_at(msg, pos)?, u16_at(msg, pos + 8)? as usize);
        let rdata = pos + 10;
        if ty == 33 {
            out.push(SrvRecord {
                priority: u16_at(msg, rdata)?,
                weight: u16_at(msg, rdata + 2)?,
                port: u16_at(msg, rdata + 4)?,
                target: read_name(msg, rdata + 6)?.0,
            });
        }
        pos = rdata + len;
    }
    out.sort_by_key(|r| r.priority);
    Ok(out)
}

/// Asks `server` for `name`'s SRV records.
pub fn query_srv(
    server: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<Vec<SrvRecord>, String> {
    let bind = if server.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    };
    let sock = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let id: u16 = rand::random();
    sock.send_to(&srv_query(id, name), server)
        .map_err(|e| format!("DNS query to {server} failed: {e}"))?;
    let mut buf = [0u8; 4096];
    loop {
        let (n, from) = sock
            .recv_from(&mut buf)
            .map_err(|e| format!("no DNS answer from {server}: {e}"))?;
        if from == server && n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
            return parse_srv_answer(id, &buf[..n]);
        }
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// Answers SRV queries on 127.0.0.1 with `records` (compressed target names), up to
    /// `max` queries, then ends.
    pub fn fake_dns(records: Vec<(u16, u16, u16, &'static str)>, max: usize) -> SocketAddr {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            for _ in 0..max {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    return;
                };
                let q = &buf[..n];
                let qend = read_name(q, 12).unwrap().1 + 4;
                let mut a = q[..qend].to_vec();
                a[2] = 0x81;
                a[3] = 0x80;
                a[6..8].copy_from_slice(&(records.len() as u16).to_be_bytes());
                for (prio, weight, port, target) in &records {
                    a.extend_from_slice(&[0xc0, 12, 0, 33, 0, 1, 0, 0, 0, 60]);
                    let mut rd = Vec::new();
                    rd.extend_from_slice(&prio.to_be_bytes());
                    rd.extend_from_slice(&weight.to_be_bytes());
                    rd.extend_from_slice(&port.to_be_bytes());
                    for l in target.split('.') {
                        rd.push(l.len() as u8);
                        rd.extend_from_slice(l.as_bytes());
                    }
                    rd.push(0);
                    a.extend_from_slice(&(rd.len() as u16).to_be_bytes());
                    a.extend_from_slice(&rd);
                }
                let _ = sock.send_to(&a, from);
            }
        });
        addr
    }

    #[test]
    fn srv_records_from_a_dns_server_on_loopback() {
        let dns = fake_dns(
            vec![(20, 5, 24225, "b.local"), (10, 60, 24224, "localhost")],
            1,
        );
        let r = query_srv(dns, "_fluentd._tcp.example.org", Duration::from_secs(5)).unwrap();
        assert_eq!(
            r,
            vec![
                SrvRecord {
                    priority: 10,
                    weight: 60,
                    port: 24224,
                    target: "localhost".into()
                },
                SrvRecord {
                    priority: 20,
                    weight: 5,
                    port: 24225,
                    target: "b.local".into()
                },
            ]
        );
    }

    #[test]
    fn malformed_answers_are_errors() {
        let q = srv_query(7, "_a._tcp.x");
        assert!(parse_srv_answer(8, &q).is_err());
        let mut a = q.clone();
        a[7] = 1; // one answer that is not there
        assert!(parse_srv_answer(7, &a).is_err());
        assert!(parse_srv_answer(7, &[0, 7]).is_err());
        // A compression loop ends.
        let mut l = q[..12].to_vec();
        l[5] = 1;
        l.extend_from_slice(&[0xc0, 12]);
        assert!(parse_srv_answer(7, &l).is_err());
    }

    #[test]
    fn file_lists_in_yaml_and_json() {
        let d = tempfile::tempdir().unwrap();
        let y = d.path().join("s.yaml");
        std::fs::write(
            &y,
            "- host: 127.0.0.1\n  port: 24225\n- host: 127.0.0.2\n  weight: 10\n  standby: true\n",
        )
        .unwrap();
        let ctx = PluginContext::for_tests();
        let sd = crate::test_util::section(
            "service_discovery",
            &[("@type", "file"), ("path", &y.to_string_lossy())],
        );
        let mut disc = from_section(&sd, &ctx).unwrap().unwrap();
        let s = disc.discover().unwrap();
        assert_eq!(
            (s[0].host.as_str(), s[0].port, s[0].weight),
            ("127.0.0.1", 24225, 60)
        );
        assert_eq!((s[1].port, s[1].weight, s[1].standby), (24224, 10, true));
        assert!(!disc.changed());
        let j = d.path().join("s.json");
        std::fs::write(&j, r#"[{"host":"10.0.0.1","port":1,"name":"n"}]"#).unwrap();
        let sd = crate::test_util::section(
            "service_discovery",
            &[("@type", "file"), ("path", &j.to_string_lossy())],
        );
        let s = from_section(&sd, &ctx)
            .unwrap()
            .unwrap()
            .discover()
            .unwrap();
        assert_eq!(s[0].name.as_deref(), Some("n"));
        let missing = crate::test_util::section(
            "service_discovery",
            &[("@type", "file"), ("path", "/nonexistent/x.yaml")],
        );
        assert!(from_section(&missing, &ctx).is_err());
    }
}
