//! The forward protocol's authentication handshake (HELO / PING / PONG) with SHA-512 digests,
//! for both ends: in_forward checks a PING, out_forward answers a HELO and checks the PONG.

use std::net::IpAddr;

use rand::RngCore;
use sha2::{Digest, Sha512};

use crate::event::{Record, Value};

/// Lowercase hex SHA-512 of the concatenated parts.
pub fn sha512_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha512::new();
    for p in parts {
        h.update(p);
    }
    let d = h.finalize();
    let mut s = String::with_capacity(128);
    for b in d.iter() {
        s.push(char::from(b"0123456789abcdef"[(b >> 4) as usize]));
        s.push(char::from(b"0123456789abcdef"[(b & 15) as usize]));
    }
    s
}

/// 16 random bytes (server nonce and user-auth salt).
pub fn random_salt() -> Vec<u8> {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b.to_vec()
}

/// A client's shared-key salt: 32 hex characters, as Ruby's `SecureRandom.hex(16)`.
pub fn random_hex_salt() -> String {
    random_salt().iter().map(|b| format!("{b:02x}")).collect()
}

fn map(pairs: Vec<(&str, Value)>) -> Value {
    let mut r = Record::with_capacity(pairs.len());
    for (k, v) in pairs {
        r.push_unchecked(k.as_bytes().to_vec(), v);
    }
    Value::Map(r)
}

/// `["HELO", {"nonce": nonce, "auth": auth_salt, "keepalive": bool}]`.
pub fn helo(nonce: &[u8], auth_salt: &[u8], keepalive: bool) -> Value {
    Value::Array(vec![
        Value::str("HELO"),
        map(vec![
            ("nonce", Value::Bin(nonce.to_vec())),
            ("auth", Value::Bin(auth_salt.to_vec())),
            ("keepalive", Value::Bool(keepalive)),
        ]),
    ])
}

/// An IP network (`<client> host` resolves to a single-address network).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// `ADDR` or `ADDR/PREFIX` (IPv4 or IPv6), as Ruby's `IPAddr.new`.
    pub fn parse(s: &str) -> Option<IpNet> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => match p.trim().parse::<u8>() {
                Ok(n) if n <= max => n,
                // IPAddr also takes a netmask such as 255.255.255.0.
                _ => mask_prefix(p.trim())?,
            },
            None => max,
        };
        Some(IpNet { addr, prefix })
    }

    pub fn single(addr: IpAddr) -> IpNet {
        IpNet {
            addr,
            prefix: if addr.is_ipv4() { 32 } else { 128 },
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            (_, ip) => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let m = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                u32::from(n) & m == u32::from(a) & m
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let m = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                u128::from(n) & m == u128::from(a) & m
            }
            _ => false,
        }
    }
}

fn mask_prefix(mask: &str) -> Option<u8> {
    let m: std::net::Ipv4Addr = mask.parse().ok()?;
    let bits = u32::from(m);
    let ones = bits.leading_ones();
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// One `<security><client>`: where it may connect from, its shared key and allowed users.
#[derive(Debug, Clone)]
pub struct ClientRule {
    pub network: IpNet,
    pub shared_key: String,
    pub users: Vec<String>,
}

/// in_forward's `<security>` section, resolved.
#[derive(Debug, Clone)]
pub struct ServerSecurity {
    pub self_hostname: String,
    pub shared_key: String,
    pub user_auth: bool,
    pub allow_anonymous_source: bool,
    pub users: Vec<(String, String)>,
    pub clients: Vec<ClientRule>,
}

/// A successful PING: the client's salt and the shared key that matched, for the PONG.
pub struct PingOk {
    pub salt: Vec<u8>,
    pub shared_key: String,
}

impl ServerSecurity {
    /// Checks `["PING", hostname, salt, digest, username, password_digest]`; the error is the
    /// reason sent back in the failed PONG.
    pub fn check_ping(
        &self,
        msg: &Value,
        remote: IpAddr,
        auth_salt: &[u8],
        nonce: &[u8],
    ) -> Result<PingOk, String> {
        let invalid = || "invalid ping message".to_string();
        let Value::Array(a) = msg else {
            return Err(invalid());
        };
        if a.len() != 6 || a[0].as_bytes() != Some(b"PING") {
            return Err(invalid());
        }
        let field = |i: usize| a[i].as_bytes().ok_or_else(invalid);
        let (hostname, salt, digest, username, password_digest) =
            (field(1)?, field(2)?, field(3)?, field(4)?, field(5)?);
        let node = self.clients.iter().find(|c| c.network.contains(remote));
        if node.is_none() && !self.allow_anonymous_source {
            tracing::warn!(
                "Anonymous client disallowed address=\"{}\" hostname=\"{}\"",
                remote,
                String::from_utf8_lossy(hostname)
            );
            return Err(format!("anonymous source host '{remote}' denied"));
        }
        let shared_key = node
            .map(|n| n.shared_key.clone())
            .unwrap_or_else(|| self.shared_key.clone());
        let serverside = sha512_hex(&[salt, hostname, nonce, shared_key.as_bytes()]);
        if digest != serverside.as_bytes() {
            tracing::warn!(
                "Shared key mismatch address=\"{}\" hostname=\"{}\"",
                remote,
                String::from_utf8_lossy(hostname)
            );
            return Err("shared_key mismatch".to_string());
        }
        if self.user_auth {
            let ok = self
                .users
                .iter()
                .filter(|(u, _)| u.as_bytes() == username)
                .filter(|(u, _)| match node {
                    Some(n) if !n.users.is_empty() => n.users.iter().any(|x| x == u),
                    _ => true,
                })
                .any(|(_, p)| {
                    sha512_hex(&[auth_salt, username, p.as_bytes()]).as_bytes() == password_digest
                });
            if !ok {
                tracing::warn!(
                    "Authentication failed address=\"{}\" hostname=\"{}\" username=\"{}\"",
                    remote,
                    String::from_utf8_lossy(hostname),
                    String::from_utf8_lossy(username)
                );
                return Err("username/password mismatch".to_string());
            }
        }
        Ok(PingOk {
            salt: salt.to_vec(),
            shared_key,
        })
    }

    /// `["PONG", true, "", self_hostname, sha512_hex(salt + self_hostname + nonce + key)]`.
    pub fn pong_ok(&self, ok: &PingOk, nonce: &[u8]) -> Value {
        let digest = sha512_hex(&[
            &ok.salt,
            self.self_hostname.as_bytes(),
            nonce,
            ok.shared_key.as_bytes(),
        ]);
        Value::Array(vec![
            Value::str("PONG"),
            Value::Bool(true),
            Value::str(""),
            Value::str(self.self_hostname.as_str()),
            Value::str(digest),
        ])
    }
}

/// `["PONG", false, reason, "", ""]`.
pub fn pong_fail(reason: &str) -> Value {
    Value::Array(vec![
        Value::str("PONG"),
        Value::Bool(false),
        Value::str(reason),
        Value::str(""),
        Value::str(""),
    ])
}

/// out_forward's side of the handshake with one server.
#[derive(Debug, Clone)]
pub struct ClientHandshake {
    pub self_hostname: String,
    pub shared_key: String,
    pub username: String,
    pub password: String,
    salt: String,
    nonce: Vec<u8>,
    auth: Vec<u8>,
}

impl ClientHandshake {
    pub fn new(self_hostname: &str, shared_key: &str, username: &str, password: &str) -> Self {
        ClientHandshake {
            self_hostname: self_hostname.to_string(),
            shared_key: shared_key.to_string(),
            username: username.to_string(),
            password: password.to_string(),
            salt: random_hex_salt(),
            nonce: Vec::new(),
            auth: Vec::new(),
        }
    }

    /// Reads `["HELO", {nonce, auth, keepalive}]`; false when it is not a HELO.
    pub fn check_helo(&mut self, msg: &Value) -> bool {
        let Value::Array(a) = msg else {
            return false;
        };
        if a.len() != 2 || a[0].as_bytes() != Some(b"HELO") {
            return false;
        }
        let opts = a[1].as_map();
        let get = |k: &str| {
            opts.and_then(|m| m.get(k))
                .and_then(|v| v.as_bytes())
                .map(|b| b.to_vec())
                .unwrap_or_default()
        };
        self.nonce = get("nonce");
        self.auth = get("auth");
        true
    }

    /// `["PING", hostname, salt, digest, username, password_digest]`.
    pub fn ping(&self) -> Value {
        let digest = sha512_hex(&[
            self.salt.as_bytes(),
            self.self_hostname.as_bytes(),
            &self.nonce,
            self.shared_key.as_bytes(),
        ]);
        let (user, pass) = if self.auth.is_empty() {
            (String::new(), String::new())
        } else {
            (
                self.username.clone(),
                sha512_hex(&[
                    &self.auth,
                    self.username.as_bytes(),
                    self.password.as_bytes(),
                ]),
            )
        };
        Value::Array(vec![
            Value::str("PING"),
            Value::str(self.self_hostname.as_str()),
            Value::str(self.salt.as_str()),
            Value::str(digest),
            Value::str(user),
            Value::str(pass),
        ])
    }

    /// Checks the PONG; the error is Fluentd's reason.
    pub fn check_pong(&self, msg: &Value) -> Result<(), String> {
        let bad = || "invalid format for PONG message".to_string();
        let Value::Array(a) = msg else {
            return Err(bad());
        };
        if a.len() != 5 || a[0].as_bytes() != Some(b"PONG") {
            return Err(bad());
        }
        let ok = !matches!(a[1], Value::Nil | Value::Bool(false));
        if !ok {
            let reason = a[2].as_bytes().unwrap_or_default();
            return Err(format!(
                "authentication failed: {}",
                String::from_utf8_lossy(reason)
            ));
        }
        let hostname = a[3].as_bytes().unwrap_or_default();
        if hostname == self.self_hostname.as_bytes() {
            return Err("same hostname between input and output: invalid configuration".into());
        }
        let clientside = sha512_hex(&[
            self.salt.as_bytes(),
            hostname,
            &self.nonce,
            self.shared_key.as_bytes(),
        ]);
        if a[4].as_bytes() != Some(clientside.as_bytes()) {
            return Err("shared key mismatch".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(key: &str) -> ServerSecurity {
        ServerSecurity {
            self_hostname: "server.example".into(),
            shared_key: key.into(),
            user_auth: false,
            allow_anonymous_source: true,
            users: vec![],
            clients: vec![],
        }
    }

    fn lo() -> IpAddr {
        "127.0.0.1".parse().unwrap()
    }

    #[test]
    fn sha512_hex_of_abc() {
        assert_eq!(
            sha512_hex(&[b"a", b"bc"]),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
    }

    #[test]
    fn full_handshake_succeeds_with_same_key() {
        let sec = server("secret");
        let nonce = random_salt();
        let auth = random_salt();
        let mut c = ClientHandshake::new("client.example", "secret", "", "");
        assert!(c.check_helo(&helo(&nonce, &auth, true)));
        let ok = sec.check_ping(&c.ping(), lo(), &auth, &nonce).unwrap();
        assert_eq!(c.check_pong(&sec.pong_ok(&ok, &nonce)), Ok(()));
    }

    #[test]
    fn wrong_key_is_refused_with_fluentd_reason() {
        let sec = server("secret");
        let nonce = random_salt();
        let auth = random_salt();
        let mut c = ClientHandshake::new("client.example", "wrong", "", "");
        c.check_helo(&helo(&nonce, &auth, true));
        let err = sec
            .check_ping(&c.ping(), lo(), &auth, &nonce)
            .err()
            .unwrap();
        assert_eq!(err, "shared_key mismatch");
        assert_eq!(
            c.check_pong(&pong_fail(&err)),
            Err("authentication failed: shared_key mismatch".into())
        );
    }

    #[test]
    fn client_rejects_same_hostname_and_bad_digest() {
        let mut sec = server("k");
        sec.self_hostname = "same".into();
        let nonce = random_salt();
        let mut c = ClientHandshake::new("same", "k", "", "");
        c.check_helo(&helo(&nonce, b"", true));
        let ok = sec.check_ping(&c.ping(), lo(), b"", &nonce).unwrap();
        assert_eq!(
            c.check_pong(&sec.pong_ok(&ok, &nonce)),
            Err("same hostname between input and output: invalid configuration".into())
        );
        let c2 = ClientHandshake::new("other", "k", "", "");
        let pong = Value::Array(vec![
            Value::str("PONG"),
            Value::Bool(true),
            Value::str(""),
            Value::str("srv"),
            Value::str("00"),
        ]);
        assert_eq!(c2.check_pong(&pong), Err("shared key mismatch".into()));
    }

    #[test]
    fn user_auth_and_client_rules() {
        let mut sec = server("k");
        sec.user_auth = true;
        sec.users = vec![("alice".into(), "pw".into()), ("bob".into(), "pw2".into())];
        sec.allow_anonymous_source = false;
        sec.clients = vec![ClientRule {
            network: IpNet::parse("127.0.0.0/8").unwrap(),
            shared_key: "ck".into(),
            users: vec!["alice".into()],
        }];
        let nonce = random_salt();
        let auth = random_salt();
        let h = helo(&nonce, &auth, true);
        let mut c = ClientHandshake::new("c", "ck", "alice", "pw");
        c.check_helo(&h);
        assert!(sec.check_ping(&c.ping(), lo(), &auth, &nonce).is_ok());
        let mut c = ClientHandshake::new("c", "ck", "bob", "pw2");
        c.check_helo(&h);
        assert_eq!(
            sec.check_ping(&c.ping(), lo(), &auth, &nonce)
                .err()
                .unwrap(),
            "username/password mismatch"
        );
        let mut c = ClientHandshake::new("c", "ck", "alice", "pw");
        c.check_helo(&h);
        let other: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            sec.check_ping(&c.ping(), other, &auth, &nonce)
                .err()
                .unwrap(),
            "anonymous source host '10.0.0.1' denied"
        );
        assert_eq!(
            sec.check_ping(&Value::str("x"), lo(), &auth, &nonce)
                .err()
                .unwrap(),
            "invalid ping message"
        );
    }

    #[test]
    fn networks() {
        let n = IpNet::parse("192.168.1.0/24").unwrap();
        assert!(n.contains("192.168.1.77".parse().unwrap()));
        assert!(!n.contains("192.168.2.1".parse().unwrap()));
        assert!(n.contains("::ffff:192.168.1.5".parse().unwrap()));
        assert!(IpNet::parse("10.0.0.0/255.0.0.0")
            .unwrap()
            .contains("10.9.9.9".parse().unwrap()));
        assert!(IpNet::parse("::1")
            .unwrap()
            .contains("::1".parse().unwrap()));
        assert_eq!(IpNet::parse("nope"), None);
    }
}
