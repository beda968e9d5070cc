//! The runner's own image (`runner/Dockerfile`, built by `scripts/runner-image.sh`) runs as a
//! container: non-root, authentication on, talking to the Docker engine through the mounted
//! socket. Building the release binary makes this the slowest test binary (about a minute
//! once dependencies are built).

mod util;

use std::time::{Duration, Instant};

use util::{http, sh, TempDir};

const TAG: &str = "cairn-runner:test";

/// Removes the container however the test ends.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

fn build_image() {
    let script = util::repo_root().join("scripts").join("runner-image.sh");
    let output = std::process::Command::new("bash").arg(&script).arg(TAG).output().unwrap();
    assert!(output.status.success(), "{} failed:\n{}", script.display(), String::from_utf8_lossy(&output.stderr));
}

fn uid_gid_groups(pid: &str) -> (String, String, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    (field("Uid:"), field("Gid:"), field("Groups:"))
}

#[tokio::test]
async fn the_image_runs_as_non_root_and_serves_tasks_through_the_mounted_socket() {
    util::ensure_image();
    build_image();
    assert_eq!(sh("docker", &["image", "inspect", "-f", "{{.Config.User}}", TAG]), "10001:10001");

    // Without authentication it refuses to listen off loopback.
    let refused = std::process::Command::new("docker")
        .args(["run", "--rm", TAG, "--listen", "0.0.0.0:8448", "--insecure-no-auth"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("only allowed on a loopback"), "{refused:?}");

    let dir = TempDir::new("container");
    let instance = format!("container-test-{}", std::process::id());
    let token = format!("tok-{}-{}", std::process::id(), Instant::now().elapsed().as_nanos());
    std::fs::write(
        dir.path("runner.toml"),
        format!(
            "[server]\nlisten = \"0.0.0.0:8448\"\ninstance = \"{instance}\"\nshutdown_grace_ms = 5000\n\
             [auth]\nbearer_tokens = [\"{token}\"]\n"
        ),
    )
    .unwrap();
    let socket_gid = sh("stat", &["-c", "%g", "/var/run/docker.sock"]);
    let name = format!("cairn-runner-test-{}", std::process::id());
    let config_mount = format!("{}:/etc/cairn-runner/runner.toml:ro", dir.path("runner.toml").display());
    sh(
        "docker",
        &[
            "run",
            "-d",
            "--name",
            &name,
            "-p",
            "127.0.0.1::8448",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            "--group-add",
            &socket_gid,
            "-v",
            &config_mount,
            TAG,
        ],
    );
    let container = Container(name.clone());
    let published = sh("docker", &["port", &name, "8448/tcp"]);
    let addr: std::net::SocketAddr = published.lines().next().unwrap().parse().unwrap();

    // Healthy, with Docker reachable through the socket.
    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        if let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await
        {
            // docker-proxy accepts connections before the runner listens: those get no answer.
            if let Ok(reply) = util::try_http_on(stream, "GET", "/v1.1/_health", &[], None).await {
                if reply.status == 200 {
                    break reply.json();
                }
            }
        }
        assert!(Instant::now() < deadline, "runner in the container never became healthy: {}", logs(&name));
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(health["components"]["docker"]["status"], "green", "{health}");

    // Authentication is on.
    let task = serde_json::json!({"docker_image": util::IMAGE, "cmd": ["sh", "-c", "echo hello from the container"]})
        .to_string();
    let json = [("Content-Type", "application/json")];
    assert_eq!(http(addr, "POST", "/v1.1/tasks", &json, Some(&task)).await.status, 401);

    // One task through the mounted socket.
    let bearer = format!("Bearer {token}");
    let headers = [("Content-Type", "application/json"), ("Authorization", &bearer), ("X-Request-Id", "smoke-1")];
    let reply = http(addr, "POST", "/v1.1/tasks", &headers, Some(&task)).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let body = reply.json();
    assert_eq!(util::decoded(&body, "stdout"), "hello from the container\n");
    let container_id = body["containerId"].as_str().unwrap().to_string();

    // The process is not root, and it got the socket's group.
    let pid = sh("docker", &["inspect", "-f", "{{.State.Pid}}", &name]);
    let (uid, gid, groups) = uid_gid_groups(&pid);
    assert_eq!(uid, "10001 10001 10001 10001");
    assert_eq!(gid, "10001 10001 10001 10001");
    assert!(groups.split(' ').any(|g| g == socket_gid), "groups {groups:?} lack the socket's {socket_gid}");

    // The structured log line of the task is in `docker logs`.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = logs(&name);
        let found = text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).any(|line| {
            line["fields"]["message"] == "task finished"
                && line["fields"]["container_id"] == container_id.as_str()
                && line["span"]["request_id"] == "smoke-1"
        });
        if found {
            break;
        }
        assert!(Instant::now() < deadline, "no `task finished` line for {container_id} in:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The task's container is removed.
    let filter = format!("label=cairn.runner.instance={instance}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sh("docker", &["ps", "-aq", "--filter", &filter]).is_empty() {
        assert!(Instant::now() < deadline, "the task's container was not removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // SIGTERM: a clean exit.
    sh("docker", &["stop", "-t", "20", &name]);
    assert_eq!(sh("docker", &["inspect", "-f", "{{.State.ExitCode}}", &name]), "0");
    assert!(logs(&name).contains("shutdown complete"));
    drop(container);
    assert!(sh("docker", &["ps", "-aq", "--filter", &format!("name=^{name}$")]).is_empty());
}

fn logs(name: &str) -> String {
    let output = std::process::Command::new("docker").args(["logs", name]).output().unwrap();
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}
