//! `just bench consul`: the Consul backend's figures, one `BENCH <name> <value>` line each,
//! against a real dev agent started here.
//!
//! - `consul_write_amplification`: bytes sent to Consul (HTTP requests, counted by a TCP proxy)
//!   while applying 2,000 resources step by step, divided by the size of the state stored in
//!   the end. Each resource's record is about 1.2 KiB, typical of an AWS resource; the figure
//!   for 0.2 KiB records is printed to stderr too (per-step overhead dominates there).
//! - `lock_handoff_ms_p50`: from the holder starting to release the lock to a waiting
//!   deployer holding it (median of 21).
//! - `waiter_sessions_max`: most Consul sessions one deployer holds while waiting 60 s.
//! - `consul_state_load_10k_ms`: reading a 10,000-resource state (fastest of 5).
//! - `crash_takeover_s`: from SIGKILL of a holder on another host (a UTS namespace with its
//!   own host name) to a waiting deployer holding the lock, with default settings.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn::apply::Engine;
use cairn::provider::Registry;
use cairn::state::consul::{ConsulBackend, LockOptions};
use cairn::state::{LockInfo, ResourceState, StackState, StateBackend};
use cairn::{Stack, Urn};
use cairn_tests::consul::Agent;
use cairn_tests::{Thing, ThingProvider};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A TCP proxy to `upstream` that counts the bytes clients send.
async fn counting_proxy(upstream: String) -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("addr"));
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else { return };
            let upstream = upstream.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else { return };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        counter.fetch_add(n as u64, Ordering::Relaxed);
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = sw.shutdown().await;
                };
                let down = async {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    let _ = cw.shutdown().await;
                };
                tokio::join!(up, down);
            });
        }
    });
    (address, sent)
}

fn backend(address: &str, stack: &str) -> ConsulBackend {
    let config = consul_api::Config::new(address).expect("address");
    ConsulBackend::new(consul_api::Client::new(config).expect("client"), "bench", stack, LockOptions::default())
}

/// Applies 2,000 things with values of `size` bytes; returns (bytes sent, bytes stored).
async fn write_amplification(agent: &Agent, size: usize) -> (u64, u64) {
    let (proxy, sent) = counting_proxy(agent.host_port.clone()).await;
    let b = backend(&proxy, "unused");
    let mut stack = Stack::new("amp", &size.to_string());
    for i in 0..2000 {
        stack.add(&format!("t{i}"), Thing { key: None, value: format!("{i:05}{}", "v".repeat(size)).into() });
    }
    let desired = stack.finish().expect("stack");
    let world = tempfile::tempdir().expect("world");
    let engine = Engine {
        registry: Registry::new().with(ThingProvider::new(world.path(), Duration::ZERO, BTreeSet::new())),
        stack: desired.stack.clone(),
        secrets: None,
        parallel: 1,
        events: Arc::new(|_| {}),
    };
    let b = ConsulBackend::new(b.client().clone(), "bench", &desired.stack, LockOptions::default());
    let mut session = b.lock(LockInfo::new("bench"), None).await.expect("lock");
    let prior = session.load().await.expect("load");
    let plan = cairn::plan::plan(&desired, &prior).expect("plan");
    let before = sent.load(Ordering::Relaxed);
    let (_tx, cancel) = tokio::sync::watch::channel(false);
    let outcome = engine.apply(session.as_ref(), &plan, &desired, &prior, cancel).await;
    assert!(outcome.succeeded(), "{outcome:?}");
    let bytes = sent.load(Ordering::Relaxed) - before;
    session.release().await.expect("release");
    let stored: u64 = agent
        .client()
        .list(&format!("bench/{}/", desired.stack))
        .await
        .expect("list")
        .iter()
        .filter(|p| !p.key.contains("/lock/"))
        .map(|p| p.value.len() as u64)
        .sum();
    (bytes, stored)
}

async fn handoff_ms(agent: &Agent) -> f64 {
    let b = backend(&agent.address, "handoff");
    let mut samples = Vec::new();
    for _ in 0..21 {
        let holder = b.lock(LockInfo::new("holder"), None).await.expect("lock");
        let waiter = {
            let b = b.clone();
            tokio::spawn(async move {
                let s = b.lock(LockInfo::new("waiter"), Some(Duration::from_secs(30))).await.expect("waiter lock");
                (Instant::now(), s)
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let released = Instant::now();
        holder.release().await.expect("release");
        let (acquired, session) = waiter.await.expect("waiter");
        samples.push(acquired.duration_since(released).as_secs_f64() * 1000.0);
        session.release().await.expect("release");
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

async fn waiter_sessions(agent: &Agent, wait: Duration) -> usize {
    let b = backend(&agent.address, "sessions");
    let holder = b.lock(LockInfo::new("bench-holder"), None).await.expect("lock");
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move { b.lock(LockInfo::new("bench-waiter"), Some(wait)).await.err() })
    };
    let client = agent.client();
    let mut most = 0;
    while !waiter.is_finished() {
        let n =
            client.session_list().await.expect("sessions").iter().filter(|s| s.name.contains("bench-waiter")).count();
        most = most.max(n);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(waiter.await.expect("waiter").is_some(), "the waiter times out while the holder holds the lock");
    let left =
        client.session_list().await.expect("sessions").iter().filter(|s| s.name.contains("bench-waiter")).count();
    assert_eq!(left, 0, "the waiter destroyed its session");
    holder.release().await.expect("release");
    most
}

async fn load_10k_ms(agent: &Agent) -> f64 {
    let b = backend(&agent.address, "load");
    let mut state = StackState::empty("load");
    for i in 0..10_000 {
        let urn = Urn::from(format!("load/group-{}/test:Thing/r{i}", i % 10));
        state.resources.insert(
            urn.clone(),
            ResourceState {
                urn,
                type_token: "test:Thing".into(),
                id: format!("id-{i}"),
                inputs: serde_json::json!({"value": format!("{i:05}{}", "v".repeat(200))}),
                outputs: serde_json::json!({"token": format!("tok-{i}")}),
                dependencies: BTreeSet::new(),
                protect: false,
                retain_on_delete: false,
                delete_before_replace: false,
                provider: None,
            },
        );
    }
    let session = b.lock(LockInfo::new("bench"), None).await.expect("lock");
    session.replace(state.clone()).await.expect("replace");
    session.release().await.expect("release");
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let start = Instant::now();
        let loaded = b.read().await.expect("read");
        best = best.min(start.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(loaded.resources.len(), 10_000);
    }
    best
}

/// The pid in the stack's lock info, when the lock is held.
async fn lock_pid(agent: &Agent, stack: &str) -> Option<u64> {
    let pair = agent.client().get(&format!("bench/{stack}/lock/holder")).await.ok()??;
    pair.session.as_ref()?;
    let info: serde_json::Value = serde_json::from_slice(&pair.value).ok()?;
    info["pid"].as_u64()
}

async fn crash_takeover_s(agent: &Agent, other_host: bool) -> f64 {
    let bin = std::env::current_exe().expect("exe").with_file_name("test-stack");
    assert!(bin.is_file(), "{} is missing: build with `cargo build --release --workspace --bins`", bin.display());
    let dir = tempfile::tempdir().expect("dir");
    std::fs::create_dir_all(dir.path().join("config")).expect("config");
    std::fs::write(dir.path().join("config/dev.toml"), "count = 40\nvalue = \"v\"\n").expect("config");
    let url = format!("consul://{}/bench", agent.host_port);
    let command = |latency: &str| {
        let mut c = Command::new(&bin);
        c.current_dir(dir.path())
            .env("CAIRN_TEST_WORLD", dir.path().join("world"))
            .env("CAIRN_CONFIG_DIR", dir.path().join("config"))
            .env("CAIRN_STATE", &url)
            .env("CAIRN_TEST_LATENCY_MS", latency)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let mut holder = command("500");
    holder.args(["deploy", "--env", "dev", "--yes", "--parallel", "1"]);
    let mut holder = holder.spawn().expect("holder");
    let holder_pid = u64::from(holder.id());
    while lock_pid(agent, "test-dev").await != Some(holder_pid) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut waiter = if other_host {
        // Another host: the waiter cannot see the holder's process, only its heartbeat.
        let mut c = Command::new("unshare");
        c.args(["--uts", "sh", "-c", "hostname cairn-bench-other-host && exec \"$0\" \"$@\""]);
        c.arg(&bin).args(["deploy", "--env", "dev", "--yes", "--lock-timeout", "120s"]);
        let template = command("0");
        for (k, v) in template.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        c.current_dir(dir.path()).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        c
    } else {
        let mut c = command("0");
        c.args(["deploy", "--env", "dev", "--yes", "--lock-timeout", "120s"]);
        c
    }
    .spawn()
    .expect("waiter");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let killed = Instant::now();
    holder.kill().expect("SIGKILL");
    holder.wait().expect("wait");
    loop {
        if let Some(pid) = lock_pid(agent, "test-dev").await {
            if pid != holder_pid {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = killed.elapsed().as_secs_f64();
    let status = waiter.wait().expect("waiter");
    assert!(status.success(), "the waiter finished the deploy");
    // Clean up for the next measurement.
    let _ = agent.client().delete_tree("bench/test-dev/").await;
    took
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let agent = Agent::dev();
    // `BENCH_ONLY=<figure prefix>` runs one figure (e.g. `lock_handoff`).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let run = |name: &str| only.is_empty() || name.starts_with(&only);
    runtime.block_on(async {
        if run("consul_write") {
            write_figures(&agent).await;
        }
        if run("lock_handoff") {
            println!("BENCH lock_handoff_ms_p50 {:.1}", handoff_ms(&agent).await);
        }
        if run("consul_state_load") {
            println!("BENCH consul_state_load_10k_ms {:.0}", load_10k_ms(&agent).await);
        }
        if run("crash_takeover") {
            let same_host = crash_takeover_s(&agent, false).await;
            eprintln!("crash takeover, holder on the same host (its pid is seen to be gone): {same_host:.1} s");
            println!("BENCH crash_takeover_s {:.1}", crash_takeover_s(&agent, true).await);
        }
        if run("waiter_sessions") {
            let wait = std::env::var("BENCH_WAIT_S").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
            println!("BENCH waiter_sessions_max {}", waiter_sessions(&agent, Duration::from_secs(wait)).await);
        }
    });
}

async fn write_figures(agent: &Agent) {
    let (sent, stored) = write_amplification(agent, 1024).await;
    eprintln!("2000 resources of ~1.2 KiB: {sent} bytes sent, {stored} bytes stored");
    println!("BENCH consul_write_amplification {:.2}", sent as f64 / stored as f64);
    let (sent, stored) = write_amplification(agent, 100).await;
    eprintln!(
        "2000 resources of ~0.2 KiB: {sent} bytes sent, {stored} bytes stored, amplification {:.2}, {} bytes per step beyond the record",
        sent as f64 / stored as f64,
        (sent.saturating_sub(stored)) / 2000
    );
}
