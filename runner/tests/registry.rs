//! Private images from a real registry with basic auth: Debian's `docker-registry` on
//! 127.0.0.1, started per test by `scripts/runner-registry.sh`.

mod util;

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use util::{decoded, harness, sh, TempDir};

const USER: &str = "alice";
const PASSWORD: &str = "registry s3cret";

/// A running registry, stopped (and its images' local tags removed) on drop.
struct Registry {
    pid: String,
    host: String,
    tags: Vec<String>,
    dir: TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").arg(&self.pid).output();
        for tag in &self.tags {
            let _ = std::process::Command::new("docker").args(["rmi", "-f", tag]).output();
        }
    }
}

impl Registry {
    fn start() -> Registry {
        util::ensure_image();
        let dir = TempDir::new("registry");
        let port = util::free_port().to_string();
        let script = util::repo_root().join("scripts").join("runner-registry.sh");
        let data = dir.0.display().to_string();
        let pid = sh("bash", &[script.to_str().unwrap(), "start", &data, &port, USER, PASSWORD]);
        let registry = Registry { pid, host: format!("127.0.0.1:{port}"), tags: Vec::new(), dir };
        // Log in with a configuration of our own, not the user's ~/.docker.
        let config = registry.dir.path("docker-config");
        let mut login = std::process::Command::new("docker")
            .env("DOCKER_CONFIG", &config)
            .args(["login", "-u", USER, "--password-stdin", &registry.host])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        login.stdin.take().unwrap().write_all(PASSWORD.as_bytes()).unwrap();
        let out = login.wait_with_output().unwrap();
        assert!(out.status.success(), "docker login failed: {}", String::from_utf8_lossy(&out.stderr));
        registry
    }

    /// Pushes `local` as `<registry>/<name>` and removes the local tag, so the image is missing
    /// locally (entirely, when its layers are its own). Returns the full reference.
    fn push(&mut self, local: &str, name: &str) -> String {
        let reference = format!("{}/{name}", self.host);
        sh("docker", &["tag", local, &reference]);
        self.tags.push(reference.clone());
        let config = self.dir.path("docker-config");
        let out = std::process::Command::new("docker")
            .env("DOCKER_CONFIG", &config)
            .args(["push", &reference])
            .output()
            .unwrap();
        assert!(out.status.success(), "docker push failed: {}", String::from_utf8_lossy(&out.stderr));
        sh("docker", &["rmi", &reference]);
        reference
    }
}

fn creds(password: &str) -> serde_json::Value {
    json!({"email": "alice@example.com", "username": USER, "password": password})
}

#[tokio::test]
async fn private_image_with_good_creds_runs_and_bad_creds_get_a_clear_error() {
    let mut registry = Registry::start();
    let image = registry.push(util::IMAGE, "private/busybox:v1");
    let h = harness(|_| {}).await;
    let metrics = h.state.metrics();

    // Bad credentials: 403 naming the registry, the source of the credentials and its answer.
    let reply = h.post_task(json!({"docker_image": image, "cmd": ["true"], "creds": creds("wrong")})).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", String::from_utf8_lossy(&reply.body));
    let error = &reply.json()["error"];
    assert_eq!(error["code"], "registry_auth_failed");
    assert_eq!(error["registry"], registry.host.as_str());
    assert_eq!(error["credentials"], "request");
    assert_eq!(error["image"], image.as_str());
    assert!(error["dockerError"].as_str().unwrap().contains("unauthorized"), "{error}");
    assert!(error["message"].as_str().unwrap().contains(&registry.host), "{error}");

    // No credentials at all.
    let reply = h.post_task(json!({"docker_image": image, "cmd": ["true"]})).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.json()["error"]["credentials"], "none");
    assert!(reply.json()["error"]["message"].as_str().unwrap().contains("no credentials were given"));
    assert_eq!(metrics.counter("runner_image_pulls_total", &[("result", "unauthorized")]), 2.0);
    assert_eq!(metrics.counter("runner_image_pulls_total", &[("result", "ok")]), 0.0);

    // Good credentials: pulled once, then found locally.
    let task = json!({"docker_image": image, "cmd": ["sh", "-c", "echo private"], "creds": creds(PASSWORD)});
    let body = h.run(task.clone()).await;
    assert_eq!(decoded(&body, "stdout"), "private\n");
    assert_eq!(metrics.counter("runner_image_pulls_total", &[("result", "ok")]), 1.0);
    let hits_before = metrics.counter("runner_image_cache_hits_total", &[]);
    h.run(task).await;
    assert_eq!(metrics.counter("runner_image_pulls_total", &[("result", "ok")]), 1.0, "pulled although present");
    assert_eq!(metrics.counter("runner_image_cache_hits_total", &[]), hits_before + 1.0);

    // A tag the registry does not have, with good credentials: 404.
    let missing = format!("{}/private/busybox:nope", registry.host);
    let reply = h.post_task(json!({"docker_image": missing, "cmd": ["true"], "creds": creds(PASSWORD)})).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.error().0, "image_not_found");
    h.assert_cleaned_up().await;
}

#[tokio::test]
async fn configured_registry_credentials_are_used_without_request_creds() {
    let mut registry = Registry::start();
    let image = registry.push(util::IMAGE, "team/tool:1");
    let password_file = registry.dir.path("registry-password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let host = registry.host.clone();
    let h = harness(move |c| {
        c.images.registries.insert(
            host,
            runner::config::RegistryAuth { username: USER.into(), password: None, password_file: Some(password_file) },
        );
    })
    .await;
    let body = h.run(json!({"docker_image": image, "cmd": ["echo", "configured"]})).await;
    assert_eq!(decoded(&body, "stdout"), "configured\n");
    // Request creds win over the configured ones.
    sh("docker", &["rmi", &image]);
    let reply = h.post_task(json!({"docker_image": image, "cmd": ["true"], "creds": creds("wrong")})).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.json()["error"]["credentials"], "request");
    h.assert_cleaned_up().await;
}

#[tokio::test]
async fn concurrent_requests_for_a_missing_image_share_one_pull() {
    let mut registry = Registry::start();
    // An image with a 24 MB layer of its own, so that after `rmi` it is wholly missing and
    // its pull takes long enough for the requests to overlap.
    let builder = format!("runner-registry-build-{}", std::process::id());
    sh("docker", &["run", "--name", &builder, util::IMAGE, "sh", "-c", "head -c 24000000 /dev/urandom > /blob"]);
    let local = format!("runner-registry-big:{}", std::process::id());
    sh("docker", &["commit", &builder, &local]);
    sh("docker", &["rm", &builder]);
    registry.tags.push(local.clone());
    let image = registry.push(&local, "private/big:v1");
    sh("docker", &["rmi", &local]);

    let h = harness(|c| c.limits.max_concurrent_tasks = 8).await;
    let task = json!({"docker_image": image, "cmd": ["ls", "/blob"], "creds": creds(PASSWORD)});
    let (a, b, c, d) = tokio::join!(
        h.post_task(task.clone()),
        h.post_task(task.clone()),
        h.post_task(task.clone()),
        h.post_task(task.clone())
    );
    for reply in [a, b, c, d] {
        assert_eq!(reply.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&reply.body));
    }
    let metrics = h.state.metrics();
    assert_eq!(metrics.counter("runner_image_pulls_total", &[("result", "ok")]), 1.0);
    assert_eq!(metrics.counter("runner_image_pull_joins_total", &[]), 3.0);
    tokio::time::sleep(Duration::from_millis(10)).await;
    h.assert_cleaned_up().await;
}
