//! The network inputs (in_http, in_tcp, in_udp, in_syslog, in_unix) on loopback: real clients
//! (`curl`, Python `requests`, util-linux `logger`, Python's `SysLogHandler` and `ssl`) and bad
//! input (oversized, invalid UTF-8, truncated, malformed, slow clients). Every wait is bounded;
//! `scripts/test` installs the clients.

mod forward_common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::Duration;

use forward_common::*;

const STDOUT_MATCH: &str = "<match **>\n  @type stdout\n</match>\n";

fn run(cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().expect("the client runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn curl(args: &[&str]) -> String {
    run(Command::new("curl")
        .args(["-s", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}\n"])
        .args(args))
}

fn py(script: &str) -> String {
    run(Command::new("python3").arg("-c").arg(script))
}

fn alive(fd: &mut Ferrentd) {
    let c = fd.child.as_mut().expect("running");
    assert!(
        matches!(c.try_wait(), Ok(None)),
        "ferrentd exited: {}",
        fd.log()
    );
}

/// One HTTP exchange on a fresh connection: the raw answer (empty when the server closed the
/// connection without one).
fn http_raw(port: u16, req: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let _ = s.write_all(req);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// What ferrentd printed, read lossily (records may carry invalid UTF-8).
fn out_lines(fd: &Ferrentd) -> Vec<String> {
    let b = std::fs::read(fd.dir.path().join("stdout")).unwrap_or_default();
    String::from_utf8_lossy(&b)
        .lines()
        .map(String::from)
        .collect()
}

/// Stops ferrentd; returns what it printed and its log.
fn finish(fd: Ferrentd) -> (Vec<String>, String) {
    let (out, log) = (out_lines(&fd), fd.log());
    let _ = fd.stop();
    (out, log)
}

fn lines_with(fd: &Ferrentd, n: usize, needle: &str) -> Vec<String> {
    let start = std::time::Instant::now();
    loop {
        let l: Vec<String> = out_lines(fd)
            .into_iter()
            .filter(|l| l.contains(needle))
            .collect();
        if l.len() >= n || start.elapsed() > WAIT {
            return l;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn http_with_curl_and_requests() {
    let (p1, p2) = (free_port(), free_port());
    let fd = Ferrentd::start(&format!(
        "<source>\n  @type http\n  bind 127.0.0.1\n  port {p1}\n</source>\n\
         <source>\n  @type http\n  bind 127.0.0.1\n  port {p2}\n  use_204_response true\n  cors_allow_origins [\"https://*.example.com\"]\n  cors_allow_credentials true\n</source>\n{STDOUT_MATCH}"
    ));
    wait_port(p1);
    let u = format!("http://127.0.0.1:{p1}");
    assert_eq!(
        curl(&[
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"a":1,"time":1700000000}"#,
            &format!("{u}/curl/json")
        ]),
        "200\n"
    );
    assert_eq!(
        curl(&["-d", r#"json={"b":2}"#, &format!("{u}/curl.form")]),
        "200\n"
    );
    // Two requests on one kept-alive connection.
    assert_eq!(
        curl(&[
            "-H",
            "Content-Type: application/x-ndjson",
            "--data-binary",
            "{\"n\":1}\n{\"n\":2}\n",
            &format!("{u}/curl.nd"),
            "--next",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{num_connects}\n",
            "-H",
            "Content-Type: application/json",
            "-d",
            "[{\"k\":1},{\"k\":2}]",
            &format!("{u}/curl.batch")
        ]),
        "200\n200 0\n"
    );
    let gz = run(Command::new("sh").arg("-c").arg(format!(
        "printf '{{\"z\":\"gz\"}}' | gzip | curl -s -m 10 -o /dev/null -w '%{{http_code}}' --data-binary @- -H 'Content-Encoding: gzip' -H 'Content-Type: application/json' {u}/curl.gz"
    )));
    assert_eq!(gz, "200");
    assert_eq!(curl(&[&format!("{u}/curl.get?json=%7B%7D")]), "200\n");
    let body = run(Command::new("curl").args([
        "-s",
        "-m",
        "10",
        "-H",
        "Content-Type: text/plain",
        "-d",
        "hello",
        &format!("{u}/curl.bad"),
    ]));
    assert_eq!(
        body,
        "400 Bad Request\n'json', 'ndjson' or 'msgpack' parameter is required\n"
    );

    let out = py(&format!(
        r#"
import requests
s = requests.Session()
r1 = s.post("{u}/py.json", json={{"p": 1, "time": 1700000001.5}})
r2 = s.post("{u}/py.form", data={{"json": '{{"p": 2}}'}})
r3 = s.post("{u}/py.q?time=1700000002", json={{"p": 3}}, headers={{"X-Forwarded-For": "10.1.2.3, 10.0.0.1"}})
r4 = requests.post("http://127.0.0.1:{p2}/py.cors", json={{"p": 4}}, headers={{"Origin": "https://a.example.com"}})
r5 = requests.options("http://127.0.0.1:{p2}/py.cors", headers={{"Origin": "https://a.example.com", "Access-Control-Request-Method": "POST"}})
r6 = requests.post("http://127.0.0.1:{p2}/py.cors", json={{"p": 6}}, headers={{"Origin": "https://evil.org"}})
print(r1.status_code, r1.headers.get("Connection"), r2.status_code, r3.status_code)
print(r4.status_code, r4.headers.get("Access-Control-Allow-Origin"), r4.headers.get("Access-Control-Allow-Credentials"))
print(r5.status_code, r5.headers.get("Access-Control-Allow-Methods"), r6.status_code)
"#
    ));
    assert_eq!(
        out,
        "200 Keep-Alive 200 200\n204 https://a.example.com true\n200 POST 403\n"
    );
    lines_with(&fd, 11, ": {");
    let (lines, _) = finish(fd);
    let find = |tag: &str| -> Vec<&String> {
        lines
            .iter()
            .filter(|l| l.contains(&format!(" {tag}: ")))
            .collect()
    };
    assert!(
        find("curl.json")[0]
            .starts_with("2023-11-14 22:13:20.000000000 +0000 curl.json: {\"a\":1}"),
        "{lines:?}"
    );
    assert!(find("curl.form")[0].ends_with("{\"b\":2}"));
    assert_eq!(find("curl.nd").len(), 2);
    assert_eq!(find("curl.batch").len(), 2);
    assert!(find("curl.gz")[0].ends_with("{\"z\":\"gz\"}"));
    assert!(find("curl.get").is_empty());
    assert!(
        find("py.json")[0].starts_with("2023-11-14 22:13:21.500000000 +0000 py.json: {\"p\":1}")
    );
    assert!(find("py.form")[0].ends_with("{\"p\":2}"));
    assert!(find("py.q")[0].starts_with("2023-11-14 22:13:22.000000000 +0000"));
    assert_eq!(find("py.cors").len(), 1);
}

#[test]
fn syslog_with_logger_and_python() {
    let (pu, pt, po) = (free_port(), free_port(), free_port());
    let fd = Ferrentd::start(&format!(
        "<source>\n  @type syslog\n  bind 127.0.0.1\n  port {pu}\n  tag u\n  source_hostname_key host_name\n</source>\n\
         <source>\n  @type syslog\n  bind 127.0.0.1\n  port {pt}\n  tag t\n  severity_key sev\n  <transport tcp>\n  </transport>\n  <parse>\n    message_format auto\n  </parse>\n</source>\n\
         <source>\n  @type syslog\n  bind 127.0.0.1\n  port {po}\n  tag o\n  frame_type octet_count\n  <transport tcp>\n  </transport>\n  <parse>\n    message_format rfc5424\n  </parse>\n</source>\n{STDOUT_MATCH}"
    ));
    wait_port(pt);
    wait_port(po);
    let (su, st, so) = (pu.to_string(), pt.to_string(), po.to_string());
    run(Command::new("logger").args([
        "-n",
        "127.0.0.1",
        "-P",
        &su,
        "-d",
        "--rfc3164",
        "-t",
        "lg",
        "-p",
        "local3.warning",
        "hello udp",
    ]));
    run(Command::new("logger").args([
        "-n",
        "127.0.0.1",
        "-P",
        &st,
        "-T",
        "--rfc5424",
        "-t",
        "lg5",
        "-p",
        "user.err",
        "hello tcp",
    ]));
    run(Command::new("logger").args([
        "-n",
        "127.0.0.1",
        "-P",
        &st,
        "-T",
        "--rfc3164",
        "-t",
        "lg3",
        "-p",
        "mail.info",
        "old style",
    ]));
    run(Command::new("logger").args([
        "-n",
        "127.0.0.1",
        "-P",
        &so,
        "-T",
        "--octet-count",
        "--rfc5424",
        "-t",
        "lgo",
        "-p",
        "daemon.notice",
        "counted",
    ]));
    py(&format!(
        r#"
import logging, logging.handlers, socket
for port, kind, end in (({pu}, socket.SOCK_DGRAM, ""), ({pt}, socket.SOCK_STREAM, "\n")):
    h = logging.handlers.SysLogHandler(address=("127.0.0.1", port), facility="local1", socktype=kind)
    h.append_nul = False
    h.setFormatter(logging.Formatter("%(asctime)s pyhost pyapp[42]: %(message)s" + end, datefmt="%b %d %H:%M:%S"))
    log = logging.getLogger("t%d" % port)
    log.addHandler(h)
    log.warning("from python")
    h.close()
"#
    ));
    lines_with(&fd, 6, ": {");
    std::thread::sleep(Duration::from_millis(300));
    let (lines, _) = finish(fd);
    let has = |prefix: &str, parts: &[&str]| {
        lines
            .iter()
            .any(|l| l.contains(prefix) && parts.iter().all(|p| l.contains(p)))
    };
    assert!(
        has(
            " u.local3.warn: ",
            &[
                r#""ident":"lg""#,
                r#""message":"hello udp""#,
                r#""host_name":"localhost""#
            ]
        ),
        "{lines:?}"
    );
    assert!(
        has(
            " t.user.err: ",
            &[
                r#""ident":"lg5""#,
                r#""message":"hello tcp""#,
                r#""sev":"err""#
            ]
        ),
        "{lines:?}"
    );
    assert!(
        has(
            " t.mail.info: ",
            &[r#""ident":"lg3""#, r#""message":"old style""#]
        ),
        "{lines:?}"
    );
    assert!(
        has(
            " o.daemon.notice: ",
            &[r#""ident":"lgo""#, r#""message":"counted""#]
        ),
        "{lines:?}"
    );
    assert!(
        has(
            " u.local1.warn: ",
            &[
                r#""host":"pyhost""#,
                r#""pid":"42""#,
                r#""message":"from python""#
            ]
        ),
        "{lines:?}"
    );
    assert!(
        has(
            " t.local1.warn: ",
            &[r#""ident":"pyapp""#, r#""message":"from python""#]
        ),
        "{lines:?}"
    );
}

#[test]
fn syslog_and_tcp_over_tls_with_python_ssl() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = write_test_pki(dir.path());
    let (port, tport) = (free_port(), free_port());
    let tls = format!(
        "  <transport tls>\n    cert_path {cert}\n    private_key_path {key}\n  </transport>\n"
    );
    let fd = Ferrentd::start(&format!(
        "<source>\n  @type syslog\n  bind 127.0.0.1\n  port {port}\n  tag tls\n{tls}</source>\n\
         <source>\n  @type tcp\n  bind 127.0.0.1\n  port {tport}\n  tag tcptls\n{tls}  <parse>\n    @type json\n  </parse>\n</source>\n{STDOUT_MATCH}"
    ));
    wait_port(port);
    wait_port(tport);
    py(&format!(
        r#"
import socket, ssl
ctx = ssl.create_default_context(cafile="{ca}")
for port, data in (({port}, b"<38>Nov 29 12:00:00 tlshost app: over tls\n<38>Nov 29 12:00:01 tlshost app: second\n"),
                   ({tport}, b'{{"over":"tls"}}\n')):
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(data)
"#
    ));
    let lines = lines_with(&fd, 2, " tls.auth.info: ");
    assert_eq!(lines.len(), 2, "{}", fd.log());
    assert!(lines[0].ends_with(r#"{"host":"tlshost","ident":"app","message":"over tls"}"#));
    let t = lines_with(&fd, 1, " tcptls: ");
    assert!(t.len() == 1 && t[0].ends_with(r#"{"over":"tls"}"#), "{t:?}");
}

#[test]
fn tcp_and_udp_bad_input() {
    let (pt, pu) = (free_port(), free_port());
    let mut fd = Ferrentd::start(&format!(
        "<source>\n  @type tcp\n  bind 127.0.0.1\n  port {pt}\n  tag t\n  message_length_limit 1k\n  source_address_key ip\n  <parse>\n    @type json\n  </parse>\n</source>\n\
         <source>\n  @type udp\n  bind 127.0.0.1\n  port {pu}\n  tag u\n  <parse>\n    @type json\n  </parse>\n</source>\n{STDOUT_MATCH}"
    ));
    wait_port(pt);
    // A slow client holding an unfinished message does not hold up the others.
    let mut slow = TcpStream::connect(("127.0.0.1", pt)).unwrap();
    slow.write_all(b"{\"slow\":").unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", pt)).unwrap();
    let mut data = Vec::new();
    data.extend_from_slice(format!("{{\"big\":\"{}\"}}\n", "x".repeat(5000)).as_bytes());
    data.extend_from_slice(b"{\"bad\":\"\xff\xfe\"}\n");
    data.extend_from_slice(b"\x00\x01\x02 not json\n");
    data.extend_from_slice(b"{\"ok\":1}\n");
    s.write_all(&data).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // Past the limit without a delimiter: cleared, and the rest of that message discarded.
    s.write_all(&[b'y'; 3000]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    s.write_all(b"tail of the cleared message\n{\"ok\":2}\n{\"truncated\":")
        .unwrap();
    drop(s);
    for _ in 0..5 {
        slow.write_all(b" ").unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.send_to(&vec![b'{'; 60000], ("127.0.0.1", pu)).unwrap();
    u.send_to(b"{\"udp\":\"\xc3\x28\"}", ("127.0.0.1", pu))
        .unwrap();
    u.send_to(b"{\"udp\":1}\n", ("127.0.0.1", pu)).unwrap();
    lines_with(&fd, 3, "{\"");
    alive(&mut fd);
    slow.write_all(b"1}\n").unwrap();
    let lines2 = lines_with(&fd, 1, "\"slow\"");
    assert_eq!(lines2.len(), 1, "{lines2:?}");
    let (all, log) = finish(fd);
    assert!(
        all.iter()
            .any(|l| l.ends_with(" t: {\"ok\":1,\"ip\":\"127.0.0.1\"}")),
        "{all:?}"
    );
    assert!(
        all.iter()
            .any(|l| l.ends_with(" t: {\"ok\":2,\"ip\":\"127.0.0.1\"}")),
        "{all:?}"
    );
    assert!(
        all.iter().any(|l| l.ends_with(" u: {\"udp\":1}")),
        "{all:?}"
    );
    assert!(!all
        .iter()
        .any(|l| l.contains("big") || l.contains("truncated") || l.contains("tail of")));
    assert!(
        log.contains("larger than 'message_length_limit', dropped"),
        "{log}"
    );
    assert!(
        log.contains("exceeds 'message_length_limit', cleared"),
        "{log}"
    );
    assert!(log.contains("pattern not matched"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

/// `<extract>` on tcp and udp: the tag comes from the record (the key removed), falling back to
/// `tag`; the time key is left alone, as Fluentd only consults it when the parser gave no time.
#[test]
fn tcp_and_udp_extract_tag() {
    let (pt, pu) = (free_port(), free_port());
    let mut fd = Ferrentd::start(&format!(
        "<source>\n  @type tcp\n  bind 127.0.0.1\n  port {pt}\n  tag t\n  source_address_key ip\n  <parse>\n    @type json\n  </parse>\n  <extract>\n    tag_key tg\n    time_key at\n  </extract>\n</source>\n\
         <source>\n  @type udp\n  bind 127.0.0.1\n  port {pu}\n  tag u\n  <parse>\n    @type json\n  </parse>\n  <extract>\n    tag_key tg\n    keep_tag_key true\n  </extract>\n</source>\n{STDOUT_MATCH}"
    ));
    wait_port(pt);
    let mut s = TcpStream::connect(("127.0.0.1", pt)).unwrap();
    s.write_all(
        b"{\"tg\":\"app.one\",\"n\":1,\"at\":5}\n{\"n\":2}\n{\"tg\":\"app.two\",\"n\":3}\n",
    )
    .unwrap();
    drop(s);
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.send_to(b"{\"tg\":\"dg.x\",\"n\":4}", ("127.0.0.1", pu))
        .unwrap();
    u.send_to(b"{\"n\":5}\n", ("127.0.0.1", pu)).unwrap();
    lines_with(&fd, 5, "\"n\":");
    alive(&mut fd);
    let (all, _) = finish(fd);
    let got: Vec<&str> = all
        .iter()
        .filter_map(|l| l.split_once(" +0000 ").map(|x| x.1))
        .collect();
    for want in [
        r#"app.one: {"n":1,"at":5,"ip":"127.0.0.1"}"#,
        r#"t: {"n":2,"ip":"127.0.0.1"}"#,
        r#"app.two: {"n":3,"ip":"127.0.0.1"}"#,
        r#"dg.x: {"tg":"dg.x","n":4}"#,
        r#"u: {"n":5}"#,
    ] {
        assert!(got.contains(&want), "{want} not in {all:?}");
    }
    // The events of one connection keep their order across tags.
    let pos = |w: &str| got.iter().position(|l| l.starts_with(w));
    assert!(pos("app.one") < pos("t: ") && pos("t: ") < pos("app.two"));
}

#[test]
fn http_bad_input() {
    let port = free_port();
    let mut fd = Ferrentd::start(&format!(
        "<source>\n  @type http\n  bind 127.0.0.1\n  port {port}\n  body_size_limit 1k\n  keepalive_timeout 1s\n</source>\n{STDOUT_MATCH}"
    ));
    wait_port(port);
    let big = format!(
        "POST /h.big HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{}",
        "x".repeat(5000)
    );
    let r = http_raw(port, big.as_bytes());
    assert_eq!(
        String::from_utf8_lossy(&r),
        "HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 9\r\nContent-Type: text/plain\r\n\r\nToo large"
    );
    let r = http_raw(
        port,
        b"POST /h.exp HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n",
    );
    assert!(
        r.starts_with(b"HTTP/1.1 413 "),
        "{}",
        String::from_utf8_lossy(&r)
    );
    let r = http_raw(port, b"POST /h.exp HTTP/1.1\r\nExpect: something\r\n\r\n");
    assert!(
        r.starts_with(b"HTTP/1.1 417 "),
        "{}",
        String::from_utf8_lossy(&r)
    );
    let chunked = format!(
        "POST /h.ch HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n800\r\n{}\r\n0\r\n\r\n",
        "y".repeat(0x800)
    );
    assert!(http_raw(port, chunked.as_bytes()).starts_with(b"HTTP/1.1 413 "));
    // Malformed requests and oversized heads: the connection is closed without an answer.
    assert!(http_raw(port, b"GARBAGE\r\n\r\n").is_empty());
    assert!(http_raw(port, b"POST /h HTTP/1.1\r\nContent-Length: nope\r\n\r\n").is_empty());
    let mut head = b"POST /h.head HTTP/1.1\r\n".to_vec();
    for i in 0..2000 {
        head.extend_from_slice(format!("X-Pad-{i}: {}\r\n", "p".repeat(40)).as_bytes());
    }
    assert!(http_raw(port, &head).is_empty());
    // Truncated body, then the client goes away.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"POST /h.trunc HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\":")
        .unwrap();
    drop(s);
    // An idle client is dropped after keepalive_timeout.
    assert!(http_raw(port, b"POST /h.slow HTTP/1.1\r\nHost: x\r\n").is_empty());
    // Invalid UTF-8 and invalid JSON: 200, nothing emitted; a bad record time: 400.
    let post = |path: &str, body: &[u8]| {
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        String::from_utf8_lossy(&http_raw(port, &req)).into_owned()
    };
    assert!(post("/h.utf", b"{\"a\":\"\xff\"}").starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(post("/h.bad", b"{\"a\":").starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(
        post("/h.time", br#"{"time":"soon"}"#),
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 58\r\n\r\n400 Bad Request\ncan't convert String into an exact number\n"
    );
    assert!(post("/h.ok", br#"{"fine":true}"#).starts_with("HTTP/1.1 200 OK\r\n"));
    let ok = lines_with(&fd, 1, " h.ok: ");
    assert_eq!(ok.len(), 1);
    alive(&mut fd);
    let (all, log) = finish(fd);
    assert!(
        all.iter()
            .all(|l| l.contains(" h.ok: ") || l.contains(" h.utf: ")),
        "{all:?}"
    );
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn syslog_bad_input() {
    let (pu, po) = (free_port(), free_port());
    let mut fd = Ferrentd::start(&format!(
        "<source>\n  @type syslog\n  bind 127.0.0.1\n  port {pu}\n  tag u\n  emit_unmatched_lines true\n  message_length_limit 64\n</source>\n\
         <source>\n  @type syslog\n  bind 127.0.0.1\n  port {po}\n  tag o\n  frame_type octet_count\n  <transport tcp>\n  </transport>\n</source>\n{STDOUT_MATCH}"
    ));
    wait_port(po);
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.send_to(b"no priority", ("127.0.0.1", pu)).unwrap();
    u.send_to(
        b"<13>Feb  5 17:32:18 h app: bytes \xff\xfe here",
        ("127.0.0.1", pu),
    )
    .unwrap();
    let long = format!("<13>Feb  5 17:32:18 h app: {}", "z".repeat(500));
    u.send_to(long.as_bytes(), ("127.0.0.1", pu)).unwrap();
    u.send_to(b"<999>Feb  5 17:32:18 h app: big pri", ("127.0.0.1", pu))
        .unwrap();
    // Octet counting: a length that is not a number, then one past the cap, close the connection.
    for bad in [
        &b"abc <13>Feb  5 17:32:18 h app: x"[..],
        b"99999999999 <13>",
        b"-5 xx",
    ] {
        let r = http_raw(po, bad);
        assert!(r.is_empty());
    }
    let mut s = TcpStream::connect(("127.0.0.1", po)).unwrap();
    let m = b"<13>Feb  5 17:32:18 h app: framed ok";
    s.write_all(format!("{} ", m.len()).as_bytes()).unwrap();
    s.write_all(m).unwrap();
    drop(s);
    lines_with(&fd, 5, ": {");
    alive(&mut fd);
    let (all, log) = finish(fd);
    let has = |needle: &str| all.iter().any(|l| l.contains(needle));
    assert!(
        has(" u.unmatched: {\"unmatched_line\":\"no priority\"}"),
        "{all:?}"
    );
    // Invalid UTF-8 reaches the parser (the regexp engine reads it per its UTF-8 classes).
    assert_eq!(
        all.iter()
            .filter(|l| l.contains(" u.user.notice: "))
            .count(),
        2,
        "{all:?}"
    );
    // Cut to 64 bytes by message_length_limit.
    let cut = format!(
        " u.user.notice: {{\"host\":\"h\",\"ident\":\"app\",\"message\":\"{}\"}}",
        "z".repeat(64 - 27)
    );
    assert!(has(&cut), "{all:?}");
    assert!(has(" u..debug: "), "{all:?}");
    assert!(
        has(" o.user.notice: {\"host\":\"h\",\"ident\":\"app\",\"message\":\"framed ok\"}"),
        "{all:?}"
    );
    assert!(log.contains("invalid octet count"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn unix_socket_forward_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sock/fluent.sock");
    // A stale file is replaced.
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"stale").unwrap();
    let mut fd = Ferrentd::start(&format!(
        "<source>\n  @type unix\n  path {}\n</source>\n{STDOUT_MATCH}",
        path.display()
    ));
    let start = std::time::Instant::now();
    let mut conn = loop {
        if let Ok(c) = std::os::unix::net::UnixStream::connect(&path) {
            break c;
        }
        assert!(
            start.elapsed() < WAIT,
            "unix socket never opened: {}",
            fd.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let msg = forward_message("ux.mp", &[(1700000000, 0, "a"), (1700000001, 5, "b")], None);
    conn.write_all(&msg[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    conn.write_all(&msg[10..]).unwrap();
    drop(conn);
    let mut j = std::os::unix::net::UnixStream::connect(&path).unwrap();
    j.write_all(br#"["ux.json", 1700000002, {"j": 1}]"#)
        .unwrap();
    drop(j);
    let mut g = std::os::unix::net::UnixStream::connect(&path).unwrap();
    g.write_all(b"\xc1\xc1\xc1").unwrap();
    g.set_read_timeout(Some(WAIT)).unwrap();
    let mut rest = Vec::new();
    let _ = g.read_to_end(&mut rest);
    lines_with(&fd, 3, ": {");
    alive(&mut fd);
    let (lines, _) = finish(fd);
    assert_eq!(
        lines,
        vec![
            r#"2023-11-14 22:13:20.000000000 +0000 ux.mp: {"n":0,"s":"a"}"#,
            r#"2023-11-14 22:13:21.000000005 +0000 ux.mp: {"n":5,"s":"b"}"#,
            r#"2023-11-14 22:13:22.000000000 +0000 ux.json: {"j":1}"#,
        ]
    );
}

/// Peak resident memory of a process, in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn endless_message_and_connection_flood_stay_bounded() {
    let (pt, ph) = (free_port(), free_port());
    let mut fd = Ferrentd::start(&format!(
        "<source>\n  @type tcp\n  bind 127.0.0.1\n  port {pt}\n  tag t\n  <parse>\n    @type none\n  </parse>\n</source>\n\
         <source>\n  @type http\n  bind 127.0.0.1\n  port {ph}\n</source>\n{STDOUT_MATCH}"
    ));
    wait_port(pt);
    wait_port(ph);
    // 96 MiB without a delimiter: the unfinished message is cleared at 8 MiB, again and again.
    let mut s = TcpStream::connect(("127.0.0.1", pt)).unwrap();
    let block = vec![b'x'; 1 << 20];
    for _ in 0..96 {
        s.write_all(&block).unwrap();
    }
    s.write_all(b"\nafter the flood\n").unwrap();
    drop(s);
    let got = lines_with(&fd, 1, "after the flood");
    assert_eq!(got.len(), 1, "{}", fd.log());
    // 300 clients at once, each with one request.
    let clients: Vec<_> = (0..300)
        .map(|i| {
            std::thread::spawn(move || {
                let body = format!("{{\"i\":{i}}}");
                let req = format!(
                    "POST /flood HTTP/1.1\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                http_raw(ph, req.as_bytes())
            })
        })
        .collect();
    let answers: Vec<Vec<u8>> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(answers
        .iter()
        .all(|a| a.starts_with(b"HTTP/1.1 200 OK\r\n")));
    assert_eq!(lines_with(&fd, 300, " flood: ").len(), 300);
    alive(&mut fd);
    let peak = peak_rss_kib(fd.pid());
    assert!(peak > 0 && peak < 200 * 1024, "peak RSS {peak} KiB");
    let (_, log) = finish(fd);
    assert!(log.contains("cleared"), "{log}");
}
