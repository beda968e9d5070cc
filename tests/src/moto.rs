//! AWS test support: a real moto server (`scripts/install-moto.sh`) on a free port, SDK clients
//! for out-of-band changes, and a proxy in front of it that adds latency and injects faults
//! (server errors, throttling, hung calls) and counts the calls that reach it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use cairn_aws::{Aws, AwsConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `<repo>/.tools/moto/bin/moto_server`; panics if it is not installed.
pub fn moto_server_path() -> PathBuf {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = repo.join(".tools/moto/bin/moto_server");
    if !bin.exists() {
        panic!("{} is missing: run scripts/install-moto.sh", bin.display());
    }
    bin
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Whether an HTTP server answers `GET /moto-api/` on `port`.
fn answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

/// A moto server on a free port of 127.0.0.1, killed when dropped.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    pub fn start() -> Moto {
        Moto::start_with(&[])
    }

    /// A moto server that checks credentials and IAM permissions as AWS does, after the first
    /// `unchecked` requests (moto's `INITIAL_NO_AUTH_ACTION_COUNT`: those can make the users
    /// and access keys the test signs with).
    pub fn start_authenticating(unchecked: usize) -> Moto {
        Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", &unchecked.to_string())])
    }

    fn start_with(env: &[(&str, &str)]) -> Moto {
        let bin = moto_server_path();
        for _ in 0..3 {
            let port = free_port();
            let mut child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start moto_server");
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if answers(port) {
                    return Moto { child, port };
                }
                if child.try_wait().expect("wait").is_some() || Instant::now() > deadline {
                    // The port was taken in between, or moto failed: try another port.
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("moto_server did not start");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Forgets every resource (`POST /moto-api/reset`).
    pub fn reset(&self) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        s.write_all(
            b"POST /moto-api/reset HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .expect("reset moto");
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"), "moto reset: {answer}");
    }

    /// Settings for this server: static test credentials, one attempt, short time limits.
    pub fn config(&self) -> AwsConfig {
        AwsConfig {
            endpoint_url: Some(self.endpoint()),
            static_credentials: Some(("testing".into(), "testing".into())),
            default_region: Some("us-east-1".into()),
            max_attempts: 1,
            initial_backoff: Duration::from_millis(10),
            operation_timeout: Duration::from_secs(60),
            attempt_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            profile_file: None,
        }
    }

    pub fn aws(&self) -> Aws {
        Aws::new(self.config())
    }

    /// SDK configuration for out-of-band changes (not through cairn).
    pub fn sdk(&self, region: &str) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .endpoint_url(self.endpoint())
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "testing", "testing", None, None, "test",
            )))
            .http_client(
                aws_smithy_http_client::Builder::new()
                    .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
                    .build_https(),
            )
            .build()
    }

    pub fn ecr(&self, region: &str) -> aws_sdk_ecr::Client {
        aws_sdk_ecr::Client::new(&self.sdk(region))
    }

    pub fn sns(&self, region: &str) -> aws_sdk_sns::Client {
        aws_sdk_sns::Client::new(&self.sdk(region))
    }

    pub fn logs(&self, region: &str) -> aws_sdk_cloudwatchlogs::Client {
        aws_sdk_cloudwatchlogs::Client::new(&self.sdk(region))
    }

    pub fn cloudwatch(&self, region: &str) -> aws_sdk_cloudwatch::Client {
        aws_sdk_cloudwatch::Client::new(&self.sdk(region))
    }

    pub fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.sdk(region))
    }

    pub fn autoscaling(&self, region: &str) -> aws_sdk_autoscaling::Client {
        aws_sdk_autoscaling::Client::new(&self.sdk(region))
    }

    /// Route 53 is global; its API is in us-east-1.
    pub fn route53(&self) -> aws_sdk_route53::Client {
        aws_sdk_route53::Client::new(&self.sdk("us-east-1"))
    }

    /// IAM is global; its API is in us-east-1.
    pub fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.sdk("us-east-1"))
    }

    pub fn elb(&self, region: &str) -> aws_sdk_elasticloadbalancingv2::Client {
        aws_sdk_elasticloadbalancingv2::Client::new(&self.sdk(region))
    }

    pub fn tagging(&self, region: &str) -> aws_sdk_resourcegroupstagging::Client {
        aws_sdk_resourcegroupstagging::Client::new(&self.sdk(region))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the proxy does with the requests it spoils.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answers `500 InternalFailure`.
    ServerError,
    /// Answers `400` with a throttling error (`ThrottlingException` in the JSON protocols,
    /// `Throttling` in the XML ones, `RequestLimitExceeded` for EC2).
    Throttle,
    /// Reads the request and never answers (nothing reaches moto).
    Hang,
    /// Passes the request on, so that it takes effect, and drops moto's answer: the client
    /// sees the connection reset, as when an answer is lost on the way back.
    LoseAnswer,
}

/// How the proxy treats requests.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// How many requests, from the first, are spoiled.
    pub faulty: usize,
    pub fault: Fault,
    /// Added before every request is passed on (or spoiled).
    pub latency: Duration,
    /// Spoil only requests whose head or body contains this text (an operation's name, such
    /// as `CreateRole` or `AmazonEC2ContainerRegistry_V20150921.CreateRepository`); the count
    /// of `faulty` is then of those requests. `None`: every request counts.
    pub only: Option<&'static str>,
}

impl Faults {
    /// The first `faulty` requests of the operation `only` get `fault`; the others pass.
    pub fn on(only: &'static str, faulty: usize, fault: Fault) -> Faults {
        Faults { faulty, fault, latency: Duration::ZERO, only: Some(only) }
    }
}

/// A proxy in front of moto that spoils the first requests (see [`Faults`]), adds latency, and
/// counts requests. It runs on a thread of its own, so sync and async tests alike can use it;
/// it stops when dropped.
#[derive(Debug)]
pub struct FaultyProxy {
    pub port: u16,
    seen: Arc<AtomicUsize>,
    /// Every request received: the access key id it is signed with, and the request.
    log: Arc<std::sync::Mutex<Vec<(String, String)>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultyProxy {
    /// Spoils the first `faulty` requests with `fault`, passes the rest on at once.
    pub fn start(upstream: u16, faulty: usize, fault: Fault) -> FaultyProxy {
        FaultyProxy::start_with(upstream, Faults { faulty, fault, latency: Duration::ZERO, only: None })
    }

    /// Passes every request on after `latency`.
    pub fn with_latency(upstream: u16, latency: Duration) -> FaultyProxy {
        FaultyProxy::start_with(upstream, Faults { faulty: 0, fault: Fault::ServerError, latency, only: None })
    }

    pub fn start_with(upstream: u16, faults: Faults) -> FaultyProxy {
        FaultyProxy::start_full(upstream, faults, Vec::new())
    }

    /// Answers the requests of the operations `script` names (by a text their request holds,
    /// such as `Action=StartInstanceRefresh`) with its answers in turn, the last one again once
    /// the others are used ([`xml_answer`] makes one); passes every other request on. For what
    /// moto does not implement: each script is an exchange of the real API, as its reference
    /// documents it, and the test that uses it says so.
    pub fn scripted(upstream: u16, script: Vec<(&'static str, Vec<String>)>) -> FaultyProxy {
        let none = Faults { faulty: 0, fault: Fault::ServerError, latency: Duration::ZERO, only: None };
        FaultyProxy::start_full(upstream, none, script)
    }

    fn start_full(upstream: u16, faults: Faults, script: Vec<(&'static str, Vec<String>)>) -> FaultyProxy {
        let script: Script = Arc::new(std::sync::Mutex::new(
            script.into_iter().map(|(op, answers)| (op, answers.into_iter().collect())).collect(),
        ));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        let matching = Arc::new(AtomicUsize::new(0));
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let logged = log.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("proxy runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let accept = async {
                    loop {
                        let Ok((conn, _)) = listener.accept().await else { return };
                        tokio::spawn(serve(
                            conn,
                            upstream,
                            faults,
                            counter.clone(),
                            matching.clone(),
                            logged.clone(),
                            script.clone(),
                        ));
                    }
                };
                tokio::select! {
                    _ = accept => {}
                    _ = stopped => {}
                }
            });
            runtime.shutdown_background();
        });
        FaultyProxy { port, seen, log, stop: Some(stop), thread: Some(thread) }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }

    /// The access key id of every request received so far that contains every one of `texts`
    /// (in its head or its body).
    pub fn signers_of(&self, texts: &[&str]) -> Vec<String> {
        let log = self.log.lock().expect("proxy log");
        log.iter().filter(|(_, body)| texts.iter().all(|t| body.contains(t))).map(|(key, _)| key.clone()).collect()
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One connection: one request (each answer closes it).
async fn serve(
    mut conn: tokio::net::TcpStream,
    upstream: u16,
    faults: Faults,
    counter: Arc<AtomicUsize>,
    matching: Arc<AtomicUsize>,
    log: Arc<std::sync::Mutex<Vec<(String, String)>>>,
    script: Script,
) {
    let Some(request) = read_request(&mut conn).await else { return };
    counter.fetch_add(1, Ordering::SeqCst);
    let scripted = {
        let mut script = script.lock().expect("proxy script");
        script.iter_mut().find(|(op, _)| contains(&request, op)).and_then(|(_, answers)| {
            if answers.len() > 1 {
                answers.pop_front()
            } else {
                answers.front().cloned()
            }
        })
    };
    let spoiled = match faults.only {
        Some(text) if !contains(&request, text) => false,
        _ => matching.fetch_add(1, Ordering::SeqCst) < faults.faulty,
    };
    {
        // `Authorization: AWS4-HMAC-SHA256 Credential=<access key id>/<date>/...`
        let head = head_of(&request);
        let key = head.split("credential=").nth(1).and_then(|c| c.split('/').next()).unwrap_or_default();
        // The whole request: the JSON protocols name their operation in a header
        // (`X-Amz-Target`), the Query protocols in the body (`Action=`).
        let text = String::from_utf8_lossy(&request).into_owned();
        log.lock().expect("proxy log").push((key.to_uppercase(), text));
    }
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    if let Some(answer) = scripted {
        let _ = conn.write_all(answer.as_bytes()).await;
        let _ = conn.shutdown().await;
        return;
    }
    if spoiled {
        let answer = match faults.fault {
            Fault::ServerError => error_answer(&request, 500, "InternalFailure"),
            Fault::Throttle => {
                let code = if is_json(&request) {
                    "ThrottlingException"
                } else if is_ec2(&request) {
                    "RequestLimitExceeded"
                } else {
                    "Throttling"
                };
                error_answer(&request, 400, code)
            }
            Fault::Hang => {
                tokio::time::sleep(Duration::from_secs(120)).await;
                return;
            }
            Fault::LoseAnswer => {
                if let Ok(mut up) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await {
                    if up.write_all(&request).await.is_ok() {
                        let mut answer = Vec::new();
                        let _ = up.read_to_end(&mut answer).await;
                    }
                }
                // Dropped unanswered: with SO_LINGER 0 the client sees a reset, not a clean close.
                let _ = conn.set_zero_linger();
                return;
            }
        };
        let _ = conn.write_all(answer.as_bytes()).await;
        return;
    }
    let Ok(mut up) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else { return };
    if up.write_all(&request).await.is_err() {
        return;
    }
    let mut answer = Vec::new();
    let _ = up.read_to_end(&mut answer).await;
    let _ = conn.write_all(&answer).await;
    let _ = conn.shutdown().await;
}

/// The scripted answers of a [`FaultyProxy::scripted`], by operation.
type Script = Arc<std::sync::Mutex<Vec<(&'static str, std::collections::VecDeque<String>)>>>;

fn contains(request: &[u8], text: &str) -> bool {
    request.windows(text.len()).any(|w| w == text.as_bytes())
}

/// An HTTP answer with an XML body, as the Query protocols' services (Auto Scaling, EC2,
/// IAM, ELB) send.
pub fn xml_answer(status: u16, body: &str) -> String {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        _ => "Internal Server Error",
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn head_of(request: &[u8]) -> String {
    let end = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(request.len());
    String::from_utf8_lossy(&request[..end]).to_ascii_lowercase()
}

/// Whether the request speaks one of the JSON protocols (ECR, CloudWatch Logs, ...).
fn is_json(request: &[u8]) -> bool {
    head_of(request).contains("content-type: application/x-amz-json")
}

fn is_ec2(request: &[u8]) -> bool {
    let body = String::from_utf8_lossy(request);
    body.contains("Version=2016-11-15")
}

/// An AWS error answer in the request's protocol, which the SDK parses like AWS's own.
fn error_answer(request: &[u8], status: u16, code: &str) -> String {
    let message = "injected by the test proxy";
    let (content_type, body) = if is_json(request) {
        ("application/x-amz-json-1.1", format!(r#"{{"__type":"{code}","message":"{message}"}}"#))
    } else if is_ec2(request) {
        (
            "text/xml",
            format!(
                "<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>\
                 <RequestID>proxy</RequestID></Response>"
            ),
        )
    } else {
        (
            "text/xml",
            format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
                 <RequestId>proxy</RequestId></ErrorResponse>"
            ),
        )
    };
    let reason = if status == 500 { "Internal Server Error" } else { "Bad Request" };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nx-amzn-ErrorType: {code}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// One HTTP/1.1 message read from `conn`: its head (without the blank line) and its
/// `Content-Length` body. `None` when the connection closes first.
pub async fn read_message(conn: &mut tokio::net::TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).trim_end().to_string();
    let length: usize = header(&head, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while buf.len() < head_end + length {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some((head, buf[head_end..head_end + length].to_vec()))
}

/// A header's value in a message head (the first line, the request or status line, skipped).
pub fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// One HTTP/1.1 request (head and `Content-Length` body), with `Connection: close` added so
/// the upstream closes after answering.
async fn read_request(conn: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let (head, body) = read_message(conn).await?;
    let kept: Vec<&str> = head.lines().filter(|l| !l.to_ascii_lowercase().starts_with("connection:")).collect();
    let mut out = format!("{}\r\nConnection: close\r\n\r\n", kept.join("\r\n")).into_bytes();
    out.extend_from_slice(&body);
    Some(out)
}
