//! Helpers that make each test read like a sentence: a runner against the real Docker engine,
//! isolated by its own instance label, and small request helpers.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body, Bytes};
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use base64::Engine as _;
use runner::config::Config;
use runner::AppState;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

/// The local test image, built by `scripts/runner-test-image.sh`.
pub const IMAGE: &str = "cairn-runner-test:busybox";

/// Builds the test image once per test binary; panics with the reason if it cannot.
pub fn ensure_image() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let script: PathBuf = [env!("CARGO_MANIFEST_DIR"), "..", "scripts", "runner-test-image.sh"].iter().collect();
        let output = std::process::Command::new("bash")
            .arg(&script)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            output.status.success(),
            "the runner tests need the Docker image {IMAGE}, and {} could not build it \
             (is Docker running, can apt-get install busybox-static?):\n{}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    });
}

/// A runner whose containers carry an instance label of their own, so tests running in
/// parallel never see (or reap) each other's containers.
pub struct Harness {
    pub state: AppState,
    pub app: Router,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A runner with test defaults (no auth, no rate limit, no periodic reaper), adjusted by `tweak`.
pub async fn harness(tweak: impl FnOnce(&mut Config)) -> Harness {
    ensure_image();
    let mut config = Config::default();
    config.server.instance = format!("test-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    config.auth.insecure_no_auth = true;
    config.limits.rate_limit_enabled = false;
    config.reaper.interval_ms = 0;
    config.tasks.default_timeout_ms = 20_000;
    tweak(&mut config);
    let docker = runner::connect_docker(runner::docker_timeout(&config))
        .await
        .expect("the runner tests need a running Docker engine");
    let state = AppState::new(config, docker).expect("valid test config");
    Harness { app: runner::app(state.clone()), state }
}

/// A parsed response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers)).to_str().unwrap()
    }

    /// The error body's `code` and `field`.
    pub fn error(&self) -> (String, Option<String>) {
        let json = self.json();
        let code = json["error"]["code"].as_str().unwrap_or_else(|| panic!("not an error body: {json}")).to_string();
        (code, json["error"]["field"].as_str().map(str::to_string))
    }
}

/// Decodes a base64 field of a task response.
pub fn decoded(json: &Value, field: &str) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(json[field].as_str().unwrap_or_else(|| panic!("no {field} in {json}")))
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

pub fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A task request for the test image.
pub fn task(cmd: &[&str]) -> Value {
    serde_json::json!({"docker_image": IMAGE, "cmd": cmd})
}

impl Harness {
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        Reply { status, headers, body }
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.send(Request::get(uri).body(Body::empty()).unwrap()).await
    }

    pub async fn post_task(&self, body: Value) -> Reply {
        self.post_raw(&body.to_string(), "application/json", None).await
    }

    pub async fn post_raw(&self, body: &str, content_type: &str, authorization: Option<&str>) -> Reply {
        let mut request = Request::post("/v1.1/tasks").header(header::CONTENT_TYPE, content_type);
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        self.send(request.body(Body::from(body.to_string())).unwrap()).await
    }

    /// Runs a task that must succeed at the HTTP level; returns the 201 body.
    pub async fn run(&self, body: Value) -> Value {
        let reply = self.post_task(body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&reply.body));
        reply.json()
    }

    /// This runner's labelled containers that exist right now.
    pub async fn containers(&self) -> Vec<String> {
        runner::reaper::labelled_containers(&self.state)
            .await
            .expect("list containers")
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    /// Waits up to `within` until none of this runner's containers is left.
    pub async fn wait_until_no_containers(&self, within: Duration) -> Result<(), Vec<String>> {
        let deadline = Instant::now() + within;
        loop {
            let left = self.containers().await;
            if left.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(left);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Every test ends with this: all removals done and nothing labelled left.
    pub async fn assert_cleaned_up(&self) {
        assert!(
            self.state.containers().wait_for_removals(Duration::from_secs(20)).await,
            "container removals still pending"
        );
        if let Err(left) = self.wait_until_no_containers(Duration::from_secs(5)).await {
            panic!("containers left behind: {left:?}");
        }
    }

    /// Serves the runner on a free loopback port; returns its address and a shutdown trigger.
    pub async fn serve(&self) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = self.state.clone();
        let handle = tokio::spawn(async move {
            runner::serve(listener, state, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Server { addr, stop: Some(stop), handle }
    }
}

pub struct Server {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Triggers graceful shutdown and waits for `serve` to return.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.handle).await.unwrap();
    }
}

/// Opens a connection to a served runner and sends a task request on it, without reading the answer.
pub async fn send_task(addr: SocketAddr, body: &Value) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = body.to_string();
    let request = format!(
        "POST /v1.1/tasks HTTP/1.1\r\nHost: runner\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// Sends a task request over TCP and reads the whole answer: (status, body).
pub async fn post_task(addr: SocketAddr, body: &Value) -> (u16, String) {
    let mut stream = send_task(addr, body).await;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let status =
        text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// A whole HTTP/1.1 answer read from a raw connection.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends one request (`Connection: close`) on `stream` and reads the whole answer.
pub async fn http_on<S>(stream: S, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> HttpReply
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    try_http_on(stream, method, path, headers, body)
        .await
        .unwrap_or_else(|text| panic!("not an HTTP response: {text:?}"))
}

/// [`http_on`], or what came back when it was not an HTTP answer (for instance nothing, from
/// a proxy whose backend is not listening yet).
pub async fn try_http_on<S>(
    mut stream: S,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<HttpReply, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: runner\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body.unwrap_or(""));
    stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    // A TLS peer may close without close_notify; what was read is still the whole answer.
    let _ = stream.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).to_string();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Err(text);
    };
    let mut lines = head.lines();
    let Some(status) = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()) else {
        return Err(text.clone());
    };
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(HttpReply { status, headers, body: body.to_string() })
}

/// [`http_on`] over a new TCP connection.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> HttpReply {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    http_on(stream, method, path, headers, body).await
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Runs a command; panics with its output unless it succeeds. Returns stdout, trimmed.
pub fn sh(program: &str, args: &[&str]) -> String {
    let output =
        std::process::Command::new(program).args(args).output().unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The repository's root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "runner-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
