//! Benchmarks of the runner against the real Docker engine, printing `BENCH <name> <value>`
//! lines (see README.md, "Measured performance"). Run through `scripts/runner-bench.sh`, which
//! builds the release binaries first; this program starts `runner` from its own directory.
//!
//! ```text
//! bench-runner [--only overhead,noop,soak] [--samples N] [--noop-seconds S] [--soak-tasks N]
//! ```
//!
//! - overhead: the same task (`echo hi` in the busybox test image, network none) through the
//!   runner, as the direct bollard sequence create/start/wait/logs/remove with the same
//!   container settings, and as `docker run --rm --network none`, interleaved; medians.
//! - noop: `wrk` (installed from Debian if missing) at 64 connections for S seconds against
//!   `/v1.1/_noop` with basic auth, rate limits on but high, metrics and JSON logs on (to a
//!   file); with wrk's default 2 threads, then with 1.
//! - soak: N tasks at concurrency 16, mixed with failures, Docker errors, timeouts, missing
//!   images and truncated output; labelled containers left, and runner RSS growth from after
//!   a tenth of the tasks to the end.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{LogsOptions, RemoveContainerOptions};
use bollard::Docker;
use futures_util::StreamExt;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const IMAGE: &str = "cairn-runner-test:busybox";
const USER: &str = "bench";
const PASSWORD: &str = "bench-password";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn bench(name: &str, value: f64) {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        println!("BENCH {name} {}", value as i64);
    } else {
        println!("BENCH {name} {value:.3}");
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// A keep-alive HTTP/1.1 connection, just enough for the runner's answers (Content-Length).
struct Conn {
    addr: std::net::SocketAddr,
    stream: Option<BufReader<TcpStream>>,
}

impl Conn {
    fn new(addr: std::net::SocketAddr) -> Conn {
        Conn { addr, stream: None }
    }

    async fn request(
        &mut self,
        method: &str,
        path: &str,
        auth: &str,
        body: Option<&str>,
    ) -> Result<(u16, Vec<u8>), BoxError> {
        let result = self.try_request(method, path, auth, body).await;
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn try_request(
        &mut self,
        method: &str,
        path: &str,
        auth: &str,
        body: Option<&str>,
    ) -> Result<(u16, Vec<u8>), BoxError> {
        if self.stream.is_none() {
            let tcp = TcpStream::connect(self.addr).await?;
            tcp.set_nodelay(true)?;
            self.stream = Some(BufReader::new(tcp));
        }
        let stream = self.stream.as_mut().expect("connected");
        let body = body.unwrap_or("");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: runner\r\nAuthorization: {auth}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.get_mut().write_all(request.as_bytes()).await?;
        let mut line = String::new();
        stream.read_line(&mut line).await?;
        let status: u16 =
            line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| format!("bad status line {line:?}"))?;
        let mut length = 0usize;
        let mut close = false;
        loop {
            line.clear();
            stream.read_line(&mut line).await?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let name = name.trim().to_ascii_lowercase();
                if name == "content-length" {
                    length = value.trim().parse()?;
                } else if name == "connection" && value.trim().eq_ignore_ascii_case("close") {
                    close = true;
                }
            }
        }
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await?;
        if close {
            self.stream = None;
        }
        Ok((status, body))
    }
}

/// The runner as a child process, with its configuration and logs in a temporary directory.
struct Runner {
    child: Child,
    addr: std::net::SocketAddr,
    instance: String,
    auth: String,
    dir: PathBuf,
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Runner {
    async fn start(bin: &Path) -> Result<Runner, BoxError> {
        let dir = std::env::temp_dir().join(format!("bench-runner-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let hash = bcrypt::hash(PASSWORD, bcrypt::DEFAULT_COST)?;
        std::fs::write(dir.join("htpasswd"), format!("{USER}:{hash}\n"))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let instance = format!("bench-{}", std::process::id());
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\ninstance = \"{instance}\"\nshutdown_grace_ms = 10000\n\
             [auth]\nhtpasswd_file = \"{}\"\n\
             [limits]\nmax_concurrent_tasks = 16\nmax_queued_tasks = 256\nqueue_timeout_ms = 120000\n\
             rate_limit_enabled = true\nrate_limit_per_second = 1000000000.0\nrate_limit_burst = 1000000000\n\
             [images]\npull_policy = \"never\"\n",
            dir.join("htpasswd").display()
        );
        std::fs::write(dir.join("runner.toml"), config)?;
        let child = Command::new(bin)
            .arg("--config")
            .arg(dir.join("runner.toml"))
            .env("RUNNER_LOG", "info")
            .stdout(std::fs::File::create(dir.join("stdout.log"))?)
            .stderr(std::fs::File::create(dir.join("stderr.log"))?)
            .spawn()?;
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}")));
        let runner = Runner { child, addr, instance, auth, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = Conn::new(addr).request("GET", "/healthz", "-", None).await {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the runner did not start: {}",
                    std::fs::read_to_string(runner.dir.join("stderr.log")).unwrap_or_default()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Pays for bcrypt once; later requests hit the cache.
        Conn::new(addr).request("GET", "/v1.1/_noop", &runner.auth, None).await?;
        Ok(runner)
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    async fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = Conn::new(self.addr).request("GET", "/metrics", &self.auth, None).await.ok()?;
        let text = String::from_utf8_lossy(&body).to_string();
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// Waits until the runner has removed every container it created (removal runs after the
    /// answer is sent).
    async fn settle(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while self.metric("runner_containers_live").await.unwrap_or(0.0) > 0.0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn terminate(mut self) -> Result<(), BoxError> {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                return Err("the runner did not exit within 60 s of SIGTERM".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

fn task_body(cmd: &[&str]) -> String {
    json!({"docker_image": IMAGE, "cmd": cmd}).to_string()
}

/// The direct bollard sequence, with the runner's container settings.
async fn direct_task(docker: &Docker, cmd: &[&str]) -> Result<String, BoxError> {
    let body = ContainerCreateBody {
        image: Some(IMAGE.to_string()),
        cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
        labels: Some(HashMap::from([("cairn.runner.bench-direct".to_string(), "1".to_string())])),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        host_config: Some(HostConfig {
            memory: Some(256 * 1024 * 1024),
            memory_swap: Some(256 * 1024 * 1024),
            nano_cpus: Some(1_000_000_000),
            pids_limit: Some(256),
            network_mode: Some("none".to_string()),
            security_opt: Some(vec!["no-new-privileges".to_string()]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = docker.create_container(None, body).await?.id;
    let result = async {
        docker.start_container(&id, None).await?;
        let mut wait = docker.wait_container(&id, None);
        match wait.next().await {
            Some(Ok(_)) | Some(Err(bollard::errors::Error::DockerContainerWaitError { .. })) => {}
            Some(Err(err)) => return Err(BoxError::from(err)),
            None => return Err("wait ended early".into()),
        }
        let mut logs = docker.logs(&id, Some(LogsOptions { stdout: true, stderr: true, ..Default::default() }));
        let mut out = String::new();
        while let Some(item) = logs.next().await {
            out.push_str(&item?.to_string());
        }
        Ok(out)
    }
    .await;
    docker.remove_container(&id, Some(RemoveContainerOptions { force: true, v: true, ..Default::default() })).await?;
    result
}

async fn overhead(runner: &Runner, docker: &Docker, samples: usize) -> Result<(), BoxError> {
    let cmd = ["echo", "hi"];
    let body = task_body(&cmd);
    let mut conn = Conn::new(runner.addr);
    let (mut through_runner, mut direct, mut cli) = (Vec::new(), Vec::new(), Vec::new());
    let warmup = 3;
    for i in 0..samples + warmup {
        let t = Instant::now();
        let (status, answer) = conn.request("POST", "/v1.1/tasks", &runner.auth, Some(&body)).await?;
        let runner_ms = t.elapsed().as_secs_f64() * 1000.0;
        if status != 201 {
            return Err(format!("runner answered {status}: {}", String::from_utf8_lossy(&answer)).into());
        }
        // Its removal runs after the answer: let it finish before the next measurement.
        runner.settle(Duration::from_secs(10)).await;

        let t = Instant::now();
        let out = direct_task(docker, &cmd).await?;
        let direct_ms = t.elapsed().as_secs_f64() * 1000.0;
        if out != "hi\n" {
            return Err(format!("direct task printed {out:?}").into());
        }

        let t = Instant::now();
        // Blocking is fine here: nothing else runs in this process meanwhile.
        let output = Command::new("docker").args(["run", "--rm", "--network", "none", IMAGE]).args(cmd).output()?;
        let cli_ms = t.elapsed().as_secs_f64() * 1000.0;
        if !output.status.success() {
            return Err(format!("docker run failed: {}", String::from_utf8_lossy(&output.stderr)).into());
        }
        if i >= warmup {
            through_runner.push(runner_ms);
            direct.push(direct_ms);
            cli.push(cli_ms);
        }
    }
    let (r, d, c) = (median(&mut through_runner), median(&mut direct), median(&mut cli));
    bench("runner_task_ms_p50", r);
    bench("direct_bollard_task_ms_p50", d);
    bench("docker_cli_task_ms_p50", c);
    bench("runner_overhead_ms_p50", r - d);
    bench("runner_vs_docker_cli_ratio", r / c);
    Ok(())
}

fn ensure_wrk() -> Result<(), BoxError> {
    if Command::new("wrk").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok() {
        return Ok(());
    }
    eprintln!("bench-runner: installing wrk from Debian");
    let install = || Command::new("apt-get").args(["install", "-y", "wrk"]).stdout(Stdio::null()).status();
    if !install()?.success() {
        Command::new("apt-get").arg("update").stdout(Stdio::null()).status()?;
        if !install()?.success() {
            return Err("cannot install wrk".into());
        }
    }
    Ok(())
}

/// `3.21ms` -> 3.21; `850.00us` -> 0.85; `1.02s` -> 1020.
fn wrk_ms(value: &str) -> Option<f64> {
    let (number, factor) = if let Some(v) = value.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = value.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = value.strip_suffix('s') {
        (v, 1000.0)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}

/// wrk with `threads` threads; the figures are named with `suffix`.
async fn noop(runner: &Runner, seconds: u64, threads: u32, suffix: &str) -> Result<(), BoxError> {
    ensure_wrk()?;
    let output = Command::new("wrk")
        .args(["-t", &threads.to_string(), "-c", "64", "-d", &format!("{seconds}s"), "--latency", "-H"])
        .arg(format!("Authorization: {}", runner.auth))
        .arg(format!("http://{}/v1.1/_noop", runner.addr))
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    if !output.status.success() {
        return Err(format!("wrk failed: {text}{}", String::from_utf8_lossy(&output.stderr)).into());
    }
    eprintln!("{text}");
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or("no Requests/sec in wrk's output")?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%").map(str::trim))
        .and_then(wrk_ms)
        .ok_or("no 99% line in wrk's latency distribution")?;
    let non_2xx = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    bench(&format!("noop_rps{suffix}"), rps.round());
    bench(&format!("noop_p99_ms{suffix}"), p99);
    bench(&format!("noop_non_2xx{suffix}"), non_2xx);
    Ok(())
}

/// One soak task, by its number: (body, expected status).
fn soak_task(i: usize) -> (String, u16) {
    match i % 20 {
        0..=13 => (task_body(&["sh", "-c", &format!("echo ok-{i}")]), 201),
        14 | 15 => (task_body(&["sh", "-c", "echo failing >&2; exit 3"]), 201),
        16 => (json!({"docker_image": IMAGE, "cmd": ["sleep", "10"], "timeoutMs": 200}).to_string(), 201),
        // Docker creates the container, then cannot start it: 400 invalid_request naming `user`.
        17 => (json!({"docker_image": IMAGE, "cmd": ["true"], "user": "nosuchuser"}).to_string(), 400),
        18 => (json!({"docker_image": "cairn-runner-test:absent", "cmd": ["true"]}).to_string(), 404),
        _ => (
            json!({"docker_image": IMAGE, "cmd": ["sh", "-c", "yes | head -c 200000"], "outputLimitBytes": 1000})
                .to_string(),
            201,
        ),
    }
}

async fn soak(runner: &Runner, docker: &Docker, tasks: usize) -> Result<(), BoxError> {
    let concurrency = 16;
    let warmup = (tasks / 10).max(1);
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let unexpected = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (next, done, unexpected) = (next.clone(), done.clone(), unexpected.clone());
        let (addr, auth) = (runner.addr, runner.auth.clone());
        workers.push(tokio::spawn(async move {
            let mut conn = Conn::new(addr);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= tasks {
                    break;
                }
                let (body, expected) = soak_task(i);
                match conn.request("POST", "/v1.1/tasks", &auth, Some(&body)).await {
                    Ok((status, _)) if status == expected => {}
                    Ok((status, answer)) => {
                        if unexpected.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("task {i}: {status} (expected {expected}): {}", String::from_utf8_lossy(&answer));
                        }
                    }
                    Err(err) => {
                        if unexpected.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("task {i}: {err}");
                        }
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut rss_after_warmup = None;
    let mut last_report = Instant::now();
    while done.load(Ordering::Relaxed) < tasks {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let finished = done.load(Ordering::Relaxed);
        if rss_after_warmup.is_none() && finished >= warmup {
            rss_after_warmup = Some(runner.rss_kib());
        }
        if last_report.elapsed() > Duration::from_secs(30) {
            eprintln!("soak: {finished}/{tasks} tasks, runner RSS {} KiB", runner.rss_kib());
            last_report = Instant::now();
        }
    }
    for worker in workers {
        worker.await?;
    }
    let elapsed = started.elapsed();
    runner.settle(Duration::from_secs(60)).await;
    let rss_end = runner.rss_kib();
    let warm = rss_after_warmup.unwrap_or(rss_end).max(1);
    // Counted before shutdown, whose cleanup would hide a leak.
    let filters = HashMap::from([("label".to_string(), vec![format!("cairn.runner.instance={}", runner.instance)])]);
    let left = docker
        .list_containers(Some(bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await?
        .len();
    bench("soak_tasks", tasks as f64);
    bench("soak_tasks_per_s", (tasks as f64 / elapsed.as_secs_f64() * 10.0).round() / 10.0);
    bench("soak_unexpected_responses", unexpected.load(Ordering::Relaxed) as f64);
    bench("soak_leaked_containers", left as f64);
    bench("soak_rss_warm_kib", warm as f64);
    bench("soak_rss_end_kib", rss_end as f64);
    bench("soak_rss_growth_pct", ((rss_end as f64 - warm as f64) / warm as f64 * 1000.0).round() / 10.0);
    Ok(())
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("bad value for {name}: {v}")))
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    let only: String = arg(&args, "--only", "overhead,noop,soak".to_string());
    let samples: usize = arg(&args, "--samples", 30);
    let noop_seconds: u64 = arg(&args, "--noop-seconds", 10);
    let soak_tasks: usize = arg(&args, "--soak-tasks", 5000);

    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf();
    let status = Command::new("bash").arg(repo.join("scripts/runner-test-image.sh")).status()?;
    if !status.success() {
        return Err("scripts/runner-test-image.sh failed".into());
    }
    let bin = std::env::current_exe()?.parent().ok_or("no directory")?.join("runner");
    if !bin.exists() {
        return Err(
            format!("no runner binary at {} (cargo build --release -p cairn-runner --bins)", bin.display()).into()
        );
    }
    let docker = Docker::connect_with_defaults()?.negotiate_version().await?;
    let runner = Runner::start(&bin).await?;
    eprintln!("bench-runner: runner {} at {}", bin.display(), runner.addr);
    for part in only.split(',') {
        match part {
            "overhead" => overhead(&runner, &docker, samples).await?,
            // wrk's default two threads; then one, which leaves the runner more of 2 cores.
            "noop" => {
                noop(&runner, noop_seconds, 2, "").await?;
                noop(&runner, noop_seconds, 1, "_wrk_1_thread").await?;
            }
            "soak" => soak(&runner, &docker, soak_tasks).await?,
            other => return Err(format!("unknown benchmark {other:?}").into()),
        }
    }
    runner.terminate()?;
    Ok(())
}
