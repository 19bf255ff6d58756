//! Throughput of the network inputs over loopback (not a timed test: it prints figures).
//! `cargo test --release --test net_bench -- --ignored --nocapture`
//! in_http (JSON arrays of 1000 events on kept-alive connections), in_tcp (JSON lines) and
//! in_syslog (RFC 3164 lines over TCP), each into out_stdout written to a file; the time runs
//! from the first byte sent until the last event is written.

mod forward_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use forward_common::*;

/// Waits until `fd` printed `n` lines; false on timeout.
fn wait_count(fd: &Ferrentd, n: usize, limit: Duration) -> bool {
    let mut f = std::fs::File::open(fd.dir.path().join("stdout")).unwrap();
    let (mut seen, mut buf, start) = (0usize, vec![0u8; 1 << 20], Instant::now());
    loop {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => {
                if seen >= n {
                    return true;
                }
                if start.elapsed() > limit {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(k) => seen += buf[..k].iter().filter(|&&b| b == b'\n').count(),
        }
    }
}

fn report(name: &str, n: usize, t: Duration) {
    println!(
        "{name}: {n} events in {:.2} s = {:.0} events/s",
        t.as_secs_f64(),
        n as f64 / t.as_secs_f64()
    );
}

fn stream_bench(name: &str, source: &str, port: u16, lines: &[u8], n: usize) {
    let fd = Ferrentd::start(&format!("{source}\n<match **>\n  @type stdout\n</match>\n"));
    wait_port(port);
    let start = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(lines).unwrap();
    drop(s);
    assert!(
        wait_count(&fd, n, Duration::from_secs(300)),
        "{name}: events missing"
    );
    report(name, n, start.elapsed());
}

#[test]
#[ignore]
fn bench_in_tcp() {
    let port = free_port();
    let n = 500_000;
    let mut data = Vec::new();
    for i in 0..n {
        data.extend_from_slice(
            format!("{{\"host\":\"web-1\",\"method\":\"GET\",\"path\":\"/api/v1/items\",\"status\":200,\"n\":{i}}}\n").as_bytes(),
        );
    }
    stream_bench(
        "in_tcp (json lines)",
        &format!("<source>\n  @type tcp\n  bind 127.0.0.1\n  port {port}\n  tag b\n  <parse>\n    @type json\n  </parse>\n</source>"),
        port,
        &data,
        n,
    );
}

#[test]
#[ignore]
fn bench_in_syslog() {
    let port = free_port();
    let n = 500_000;
    let mut data = Vec::new();
    for i in 0..n {
        data.extend_from_slice(
            format!("<34>Oct 11 22:14:15 mymachine app[123]: request {i} served in 12 ms\n")
                .as_bytes(),
        );
    }
    stream_bench(
        "in_syslog (rfc3164 over tcp)",
        &format!("<source>\n  @type syslog\n  bind 127.0.0.1\n  port {port}\n  tag b\n  <transport tcp>\n  </transport>\n</source>"),
        port,
        &data,
        n,
    );
}

#[test]
#[ignore]
fn bench_in_http() {
    let port = free_port();
    let fd = Ferrentd::start(&format!(
        "<source>\n  @type http\n  bind 127.0.0.1\n  port {port}\n</source>\n<match **>\n  @type stdout\n</match>\n"
    ));
    wait_port(port);
    let (conns, reqs, batch) = (2, 150, 1000);
    let mut body = b"[".to_vec();
    for i in 0..batch {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(
            format!("{{\"host\":\"web-1\",\"method\":\"GET\",\"path\":\"/api/v1/items\",\"status\":200,\"n\":{i}}}").as_bytes(),
        );
    }
    body.push(b']');
    let mut req = format!(
        "POST /bench.http HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let start = Instant::now();
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let req = req.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_read_timeout(Some(WAIT)).unwrap();
                let mut buf = [0u8; 4096];
                for _ in 0..reqs {
                    s.write_all(&req).unwrap();
                    // One short answer per request.
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        let k = s.read(&mut buf).unwrap();
                        assert!(k > 0);
                        got.extend_from_slice(&buf[..k]);
                    }
                    assert!(got.starts_with(b"HTTP/1.1 200 OK"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let n = conns * reqs * batch;
    assert!(
        wait_count(&fd, n, Duration::from_secs(300)),
        "in_http: events missing"
    );
    report(
        "in_http (json arrays of 1000, 2 connections)",
        n,
        start.elapsed(),
    );
}
