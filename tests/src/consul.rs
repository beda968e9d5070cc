//! Real Consul agents for tests: a `-dev` agent, or a three-server cluster on 127.0.0.2–4, on
//! free ports, killed on drop. A missing binary is an error, never a skipped test.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use consul_api::{Client, Config, RetryPolicy, SessionRequest};

/// `$CONSUL_BIN`, else `<repo>/.tools/consul/usr/bin/consul` (installed by
/// `scripts/install-consul.sh`, which `just test` runs).
pub fn consul_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("CONSUL_BIN").filter(|b| !b.is_empty()) {
        return PathBuf::from(bin);
    }
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/consul/usr/bin/consul");
    assert!(bin.is_file(), "no consul at {}: run `scripts/install-consul.sh` (`just test` does)", bin.display());
    bin
}

/// Ports free on every one of `ips`.
fn free_ports(ips: &[&str], n: usize) -> Vec<u16> {
    let mut ports = Vec::new();
    while ports.len() < n {
        let l = TcpListener::bind((ips[0], 0)).expect("bind");
        let port = l.local_addr().expect("addr").port();
        let others: Vec<_> = ips[1..].iter().map(|ip| TcpListener::bind((*ip, port))).collect();
        if others.iter().all(Result::is_ok) && !ports.contains(&port) {
            ports.push(port);
        }
    }
    ports
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// Runs `f` on a runtime of its own, in a thread of its own, so that it works from async
/// tests too.
fn block<T: Send + 'static>(f: impl std::future::Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || runtime().block_on(f)).join().expect("consul helper thread")
}

/// Ready when there is a leader and a session can be created on this agent.
fn ready(address: &str) -> bool {
    let config =
        Config::new(address).expect("address").with_timeout(Duration::from_secs(2)).with_retry(RetryPolicy::none());
    let client = Client::new(config).expect("client");
    block(async move {
        if !client.leader().await.is_ok_and(|l| !l.is_empty()) {
            return false;
        }
        match client.session_create(&SessionRequest::new("readiness")).await {
            Ok(id) => client.session_destroy(&id).await.is_ok(),
            Err(_) => false,
        }
    })
}

/// One Consul process.
#[derive(Debug)]
pub struct Agent {
    child: Option<Child>,
    args: Vec<String>,
    /// `http://<ip>:<port>`.
    pub address: String,
    /// `<ip>:<port>`, for `consul://` URLs.
    pub host_port: String,
    log: PathBuf,
    _data: Option<tempfile::TempDir>,
}

impl Agent {
    /// A `-dev` agent on 127.0.0.1.
    pub fn dev() -> Agent {
        let p = free_ports(&["127.0.0.1"], 4);
        let args =
            vec!["agent", "-dev", "-client", "127.0.0.1", "-bind", "127.0.0.1", "-dns-port", "-1", "-grpc-port", "-1"]
                .into_iter()
                .map(String::from)
                .chain(["-http-port".into(), p[0].to_string(), "-serf-lan-port".into(), p[1].to_string()])
                .chain(["-serf-wan-port".into(), p[2].to_string(), "-server-port".into(), p[3].to_string()])
                .collect();
        let mut agent = Agent::spawn(args, "127.0.0.1", p[0], None);
        agent.wait_ready(Duration::from_secs(30));
        agent
    }

    fn spawn(args: Vec<String>, ip: &str, http: u16, data: Option<tempfile::TempDir>) -> Agent {
        let log = std::env::temp_dir().join(format!("cairn-consul-{}-{ip}-{http}.log", std::process::id()));
        let mut agent = Agent {
            child: None,
            args,
            address: format!("http://{ip}:{http}"),
            host_port: format!("{ip}:{http}"),
            log,
            _data: data,
        };
        agent.start();
        agent
    }

    /// (Re)starts the process with its original arguments.
    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log");
        let child = Command::new(consul_bin())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn consul");
        self.child = Some(child);
    }

    /// Kills the process (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn wait_ready(&mut self, limit: Duration) {
        let start = Instant::now();
        while !ready(&self.address) {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("consul exited with {status}:\n{}", std::fs::read_to_string(&self.log).unwrap_or_default());
                }
            }
            assert!(
                start.elapsed() < limit,
                "consul at {} not ready:\n{}",
                self.address,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn client(&self) -> Client {
        Client::new(Config::new(&self.address).expect("address").with_retry(RetryPolicy::none())).expect("client")
    }

    /// A `consul://` state URL for `prefix` on this agent.
    pub fn state_url(&self, prefix: &str) -> String {
        format!("consul://{}/{prefix}", self.host_port)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// Three servers on 127.0.0.2, 127.0.0.3 and 127.0.0.4.
#[derive(Debug)]
pub struct Cluster {
    pub servers: Vec<Agent>,
}

impl Cluster {
    pub fn three() -> Cluster {
        let ips = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
        let p = free_ports(&ips, 4);
        let (http, lan, wan, server) = (p[0], p[1], p[2], p[3]);
        let servers = ips
            .iter()
            .map(|ip| {
                let data = tempfile::tempdir().expect("data dir");
                let mut args: Vec<String> = [
                    "agent",
                    "-server",
                    "-bootstrap-expect",
                    "3",
                    "-bind",
                    ip,
                    "-client",
                    ip,
                    "-dns-port",
                    "-1",
                    "-grpc-port",
                    "-1",
                    "-node",
                ]
                .into_iter()
                .map(String::from)
                .collect();
                args.push(format!("node-{ip}"));
                args.extend(["-data-dir".to_string(), data.path().display().to_string()]);
                args.extend(["-http-port".into(), http.to_string(), "-serf-lan-port".into(), lan.to_string()]);
                args.extend(["-serf-wan-port".into(), wan.to_string(), "-server-port".into(), server.to_string()]);
                args.extend(["-raft-protocol".into(), "3".into()]);
                // Quick failure detection and elections, as in a LAN test cluster.
                args.extend(["-hcl".into(), "performance { raft_multiplier = 1 }".into()]);
                for other in ips.iter().filter(|o| *o != ip) {
                    args.extend(["-retry-join".to_string(), format!("{other}:{lan}")]);
                }
                Agent::spawn(args, ip, http, Some(data))
            })
            .collect::<Vec<_>>();
        let mut cluster = Cluster { servers };
        for s in &mut cluster.servers {
            s.wait_ready(Duration::from_secs(60));
        }
        cluster
    }

    /// The index of the current leader.
    pub fn leader(&self) -> usize {
        let client = self.servers[0].client();
        let leader = block(async move { client.leader().await }).expect("leader");
        let ip = leader.split(':').next().unwrap_or_default().to_string();
        self.servers.iter().position(|s| s.host_port.starts_with(&format!("{ip}:"))).expect("leader is a server")
    }
}
