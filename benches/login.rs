//! Failed logins: what they cost the gateway, and whether their timing tells known user names from unknown ones.
//!
//! The gateway is the release `franzgate` binary in its own process (so its CPU time is read from
//! /proc/<pid>/stat), with `security_protocol: SASL_PLAINTEXT` and users stored as SCRAM-SHA-256 and
//! SCRAM-SHA-512 credentials (4096 iterations, as `franzgate hash-password` makes them). No Kafka is needed:
//! the gateway authenticates before it contacts a backend, so its cluster points at a closed local port.
//! Clients are raw frames on blocking sockets: SaslHandshake v1 (PLAIN), then SaslAuthenticate v2, one login
//! per connection, as a Kafka client does.
//!
//! It reports:
//! 1. gateway CPU seconds per login (user + system, divided by the logins) for a wrong password of a known
//!    user, an unknown user, and a good login, each from `LOGIN_CLIENTS` concurrent clients;
//! 2. the SaslAuthenticate response time of a known user's wrong password and of an unknown user, alternated
//!    one by one on a quiet gateway: median, p10–p90 and mean ± stdev, and the difference of the medians;
//! 3. the round trip of a pre-authentication ApiVersions on a fresh connection, idle and during a flood of
//!    failed logins (a known user's wrong passwords) from `LOGIN_CLIENTS` clients (the async workers' responsiveness), and the gateway's thread
//!    count after the flood (the hashing pool is bounded).
//!
//! `authentication.failure_delay_ms` is 0 here so the numbers show the check itself (the default 100 ms delay
//! is the same for every failure and holds no thread). Knobs: `LOGIN_ATTEMPTS` (default 1000 per kind),
//! `LOGIN_CLIENTS` (default 4), `LOGIN_GATEWAY_BIN` (another binary, e.g. an older build, to compare).
//!
//! Run: `cargo bench --bench login`. A benchmark: it prints; nothing is asserted about time. Under `cargo
//! test` (no `--bench` argument) it only prints how to run it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use franzgate_auth::plain::encode_plain;
use franzgate_auth::scram::{ScramCredential, ScramMechanism};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

const PASSWORD: &str = "the-right-password";

/// The gateway binary in its own process; killed on drop (and when this process dies).
struct Gateway {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Gateway {
    fn start(bin: &Path) -> Self {
        let port = free_port();
        let closed_backend = free_port();
        let dir = tempfile::Builder::new().prefix("franzgate-login-").tempdir().expect("tmp dir");
        let credentials: Vec<String> = [ScramMechanism::Sha256, ScramMechanism::Sha512]
            .into_iter()
            .map(|m| format!("'{}'", ScramCredential::generate(m, PASSWORD, 4096).expect("credential")))
            .collect();
        let users: Vec<String> = ["alice", "bob", "carol"]
            .iter()
            .map(|u| format!("{{username: {u}, credentials: [{}]}}", credentials.join(", ")))
            .collect();
        let yaml = format!(
            "gateway:\n  advertised_host: 127.0.0.1\n  bind_host: 127.0.0.1\n  port_start: {port}\n  port_count: 1\n  \
             http_port: 0\n  admin_users: [{{username: a, password: b, admin: true}}]\n  \
             security_protocol: SASL_PLAINTEXT\n  authentication:\n    failure_delay_ms: 0\n    users: [{}]\n\
             clusters:\n  main:\n    bootstrap.servers: 127.0.0.1:{closed_backend}\n",
            users.join(", ")
        );
        let config = dir.path().join("gateway.yaml");
        std::fs::write(&config, yaml).expect("config");
        let mut command = Command::new(bin);
        command
            .args(["--config", &config.display().to_string(), "--log", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().expect("start franzgate");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the gateway did not open port {port} in 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port, _dir: dir }
    }

    /// User + system CPU seconds so far.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are the 14th and 15th fields overall.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
        (ticks(11) + ticks(12)) / 100.0 // USER_HZ is 100 on Linux
    }

    /// The gateway's threads now.
    fn threads(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

// === raw frames ===

fn frame<B: Encodable>(key: ApiKey, version: i16, correlation_id: i32, body: &B) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("login-bench")));
    let mut payload = BytesMut::new();
    header.encode(&mut payload, key.request_header_version(version)).expect("header encodes");
    body.encode(&mut payload, version).expect("body encodes");
    let mut out = i32::try_from(payload.len()).expect("small").to_be_bytes().to_vec();
    out.extend_from_slice(&payload);
    out
}

fn read_frame(stream: &mut TcpStream) -> Option<Bytes> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; usize::try_from(i32::from_be_bytes(len)).ok()?];
    stream.read_exact(&mut body).ok()?;
    Some(Bytes::from(body))
}

/// One PLAIN login on a fresh connection: (SaslAuthenticate error code, its response time).
fn login(port: u16, user: &str, password: &str) -> (i16, Duration) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let handshake = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"));
    stream.write_all(&frame(ApiKey::SaslHandshake, 1, 1, &handshake)).expect("write handshake");
    read_frame(&mut stream).expect("handshake answered");
    let authenticate = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(encode_plain(user, password)));
    let request = frame(ApiKey::SaslAuthenticate, 2, 2, &authenticate);
    let sent = Instant::now();
    stream.write_all(&request).expect("write authenticate");
    let mut response = read_frame(&mut stream).expect("authenticate answered");
    let took = sent.elapsed();
    let version = ApiKey::SaslAuthenticate.response_header_version(2);
    ResponseHeader::decode(&mut response, version).expect("response header");
    let body = SaslAuthenticateResponse::decode(&mut response, 2).expect("SaslAuthenticate response");
    (body.error_code, took)
}

/// A pre-authentication ApiVersions v0 on a fresh connection: its round trip, connect included.
fn api_versions_round_trip(port: u16) -> Duration {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream.write_all(&frame(ApiKey::ApiVersions, 0, 1, &ApiVersionsRequest::default())).expect("write");
    read_frame(&mut stream).expect("ApiVersions answered");
    started.elapsed()
}

// === measurements ===

/// Runs `attempts` logins of `user` from `clients` threads; returns gateway CPU seconds per login.
fn cpu_per_login(
    gateway: &Gateway,
    user: &'static str,
    password: &'static str,
    attempts: usize,
    clients: usize,
) -> f64 {
    let port = gateway.port;
    let before = gateway.cpu_seconds();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let share = attempts / clients + usize::from(c < attempts % clients);
            std::thread::spawn(move || {
                for _ in 0..share {
                    let (code, _) = login(port, user, password);
                    assert_eq!(code == 0, password == PASSWORD, "{user}: error code {code}");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("client thread");
    }
    (gateway.cpu_seconds() - before) / attempts as f64
}

/// Median, p10, p90, mean and stdev of `samples`, in milliseconds.
fn summary(samples: &mut [Duration]) -> (f64, f64, f64, f64, f64) {
    samples.sort();
    let ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    let stdev = (ms.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (ms.len() as f64 - 1.0).max(1.0)).sqrt();
    (at(0.5), at(0.1), at(0.9), mean, stdev)
}

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") || args.iter().any(|a| !a.starts_with('-') && !"login".contains(a.as_str()))
    {
        println!("login bench: run with `cargo bench --bench login`");
        return;
    }
    let attempts = knob("LOGIN_ATTEMPTS", 1000).max(10);
    let clients = knob("LOGIN_CLIENTS", 4).max(1);
    let bin = std::env::var("LOGIN_GATEWAY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_BIN_EXE_franzgate")));
    let gateway = Gateway::start(&bin);
    println!("## Logins (`cargo bench --bench login`, {attempts} logins per kind, {clients} clients)\n");
    println!("gateway: {}, {} cores\n", bin.display(), std::thread::available_parallelism().map_or(1, usize::from));

    // Warm up: connections, the allocator, the hashing pool's threads.
    cpu_per_login(&gateway, "alice", "wrong", 50, clients);
    println!("| login | gateway CPU per login |\n|---|---|");
    for (what, user, password) in [
        ("known user, wrong password", "alice", "wrong"),
        ("unknown user", "mallory", "wrong"),
        ("known user, right password", "alice", PASSWORD),
    ] {
        let cpu = cpu_per_login(&gateway, user, password, attempts, clients);
        println!("| {what} | {:.3} ms |", cpu * 1e3);
    }

    // Known against unknown, alternated one by one so drift hits both alike.
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..attempts {
        let users = if i % 2 == 0 { ["bob", "nobody"] } else { ["nobody", "bob"] };
        for user in users {
            let (code, took) = login(gateway.port, user, "wrong");
            assert_eq!(code, 58, "{user}: SASL_AUTHENTICATION_FAILED");
            if user == "bob" { known.push(took) } else { unknown.push(took) }
        }
    }
    let (k, u) = (summary(&mut known), summary(&mut unknown));
    println!("\n| failed login, one at a time | median | p10–p90 | mean ± stdev |\n|---|---|---|---|");
    for (what, (median, p10, p90, mean, stdev)) in [("known user", k), ("unknown user", u)] {
        println!("| {what} | {median:.3} ms | {p10:.3}–{p90:.3} ms | {mean:.3} ± {stdev:.3} ms |");
    }
    println!("\nmedian difference (unknown − known): {:+.3} ms\n", u.0 - k.0);

    // The async workers during a flood: ApiVersions round trips, idle and under failed logins.
    let mut idle: Vec<Duration> = (0..200).map(|_| api_versions_round_trip(gateway.port)).collect();
    let flooding = Arc::new(AtomicBool::new(true));
    let flood: Vec<_> = (0..clients)
        .map(|_| {
            let (flooding, port) = (flooding.clone(), gateway.port);
            std::thread::spawn(move || {
                // A known user's wrong password: the login an older gateway hashed on its async workers.
                while flooding.load(Ordering::Relaxed) {
                    login(port, "carol", "wrong");
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut busy: Vec<Duration> = (0..200)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(5));
            api_versions_round_trip(gateway.port)
        })
        .collect();
    let threads = gateway.threads();
    flooding.store(false, Ordering::Relaxed);
    for thread in flood {
        thread.join().expect("flood thread");
    }
    let (i, b) = (summary(&mut idle), summary(&mut busy));
    println!("| pre-auth ApiVersions round trip (connect included) | median | p10–p90 |\n|---|---|---|");
    println!("| idle | {:.3} ms | {:.3}–{:.3} ms |", i.0, i.1, i.2);
    println!("| during a flood of failed logins from {clients} clients | {:.3} ms | {:.3}–{:.3} ms |", b.0, b.1, b.2);
    println!("\ngateway threads during the flood: {threads}");
}
