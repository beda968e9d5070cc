//! Runs a real `consul agent -dev` on free loopback ports for one test.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use consul_api::{Client, Config, RetryPolicy, SessionRequest};

/// How long to wait for the agent to elect itself leader.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Finds the consul binary: `$CONSUL_BIN`, else `<repo>/.tools/consul/usr/bin/consul`,
/// else `consul` on `PATH`. Panics (never skips) if there is none.
pub fn consul_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("CONSUL_BIN").filter(|b| !b.is_empty()) {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "CONSUL_BIN={} does not exist; unset it or run `bash scripts/install-consul.sh`",
            bin.display()
        );
        return bin;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("crate is inside the repo");
    let tools = repo.join(".tools/consul/usr/bin/consul");
    if tools.is_file() {
        return tools;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("consul");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "consul binary not found (looked at $CONSUL_BIN, {} and PATH). \
         Run `bash scripts/install-consul.sh` from the repository root to install it.",
        tools.display()
    );
}

/// Reserves `n` distinct free TCP ports on 127.0.0.1 (released on return, so
/// there is a small window in which another process could take them; the
/// agent start is retried if that happens).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> =
        (0..n).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0")).collect();
    listeners.iter().map(|l| l.local_addr().expect("local_addr").port()).collect()
}

/// A running dev agent, killed on drop.
pub struct Agent {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub http_addr: String,
    log: PathBuf,
    /// Extra free port handed to the agent as its HTTPS port, if requested.
    pub https_port: Option<u16>,
}

/// Options for [`Agent::start_with`].
#[derive(Default)]
pub struct AgentOptions {
    /// Extra HCL passed with `-hcl` (may reference `{https_port}`).
    pub hcl: Option<String>,
    /// Reserve an HTTPS port (available as `{https_port}` in `hcl`).
    pub https: bool,
    /// ACL token the readiness probe must use (for agents with ACLs on).
    pub token: Option<String>,
}

impl Agent {
    /// A plain dev agent.
    pub async fn start() -> Agent {
        Agent::start_with(AgentOptions::default()).await
    }

    /// A dev agent with extra configuration.
    pub async fn start_with(options: AgentOptions) -> Agent {
        let mut last_log = String::new();
        for _ in 0..3 {
            match Agent::try_start(&options).await {
                Ok(agent) => return agent,
                Err(log) => last_log = log,
            }
        }
        panic!("consul agent failed to start 3 times; last log:\n{last_log}");
    }

    async fn try_start(options: &AgentOptions) -> Result<Agent, String> {
        let ports = free_ports(5);
        let (http, serf_lan, serf_wan, server, https) = (ports[0], ports[1], ports[2], ports[3], ports[4]);
        let log = std::env::temp_dir().join(format!("consul-api-test-{}-{http}.log", std::process::id()));
        let log_file = File::create(&log).expect("create agent log file");
        let mut cmd = Command::new(consul_bin());
        cmd.args(["agent", "-dev", "-client", "127.0.0.1", "-bind", "127.0.0.1"])
            .args(["-http-port", &http.to_string()])
            .args(["-dns-port", "-1", "-grpc-port", "-1"])
            .args(["-serf-lan-port", &serf_lan.to_string()])
            .args(["-serf-wan-port", &serf_wan.to_string()])
            .args(["-server-port", &server.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone log file"))
            .stderr(log_file);
        if let Some(hcl) = &options.hcl {
            cmd.args(["-hcl", &hcl.replace("{https_port}", &https.to_string())]);
        }
        let child = cmd.spawn().expect("spawn consul agent");
        let mut agent = Agent {
            child,
            http_addr: format!("http://127.0.0.1:{http}"),
            log,
            https_port: options.https.then_some(https),
        };

        let mut probe_config =
            Config::new(&agent.http_addr).unwrap().with_timeout(Duration::from_secs(2)).with_retry(RetryPolicy::none());
        probe_config.token = options.token.clone();
        let probe = Client::new(probe_config).unwrap();
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = agent.child.try_wait().expect("try_wait") {
                return Err(format!("agent exited with {status}:\n{}", agent.log_text()));
            }
            if probe_ready(&probe).await {
                return Ok(agent);
            }
            if Instant::now() > deadline {
                return Err(format!("no leader after {STARTUP_TIMEOUT:?}:\n{}", agent.log_text()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Configuration for this agent's HTTP API.
    pub fn config(&self) -> Config {
        Config::new(&self.http_addr).unwrap()
    }

    /// A client for this agent.
    pub fn client(&self) -> Client {
        Client::new(self.config()).unwrap()
    }
}

/// Ready when there is a leader and the agent's node is registered in the
/// catalog (sessions need it; a fresh dev agent answers "Missing node
/// registration" for a moment after the election), and, with ACLs, the token
/// works. Checked with a session tied to the node's serfHealth check.
async fn probe_ready(probe: &Client) -> bool {
    if !probe.leader().await.is_ok_and(|l| !l.is_empty()) {
        return false;
    }
    let request = SessionRequest::new("readiness-probe").with_default_checks();
    match probe.session_create(&request).await {
        Ok(id) => probe.session_destroy(&id).await.is_ok(),
        Err(_) => false,
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("consul agent log kept at {}", self.log.display());
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}
