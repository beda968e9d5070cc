//! Test support: a real moto server per test, SDK clients for out-of-band changes, and a
//! faulty proxy for retry and timeout tests.

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
use cairn::provider::Context;
use cairn::Urn;
use cairn_aws::{Aws, AwsConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The stack name every test context uses.
pub const STACK: &str = "test-stack";

/// `<repo>/.tools/moto/bin/moto_server`; panics if it is not installed.
pub fn moto_server_path() -> PathBuf {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
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
        let bin = moto_server_path();
        for _ in 0..3 {
            let port = free_port();
            let mut child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
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

/// A URN of the test stack.
pub fn urn(type_token: &str, name: &str) -> Urn {
    Urn::from(format!("{STACK}/{type_token}/{name}"))
}

pub fn ctx(urn: &Urn) -> Context<'_> {
    Context { urn, stack: STACK }
}

/// What the faulty proxy does with the requests it does not pass on.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Answers `500 InternalFailure`.
    ServerError,
    /// Reads the request and never answers.
    Hang,
}

/// A proxy in front of moto that spoils the first `faulty` requests, then passes the rest on.
#[derive(Debug)]
pub struct FaultyProxy {
    pub port: u16,
    seen: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultyProxy {
    pub async fn start(upstream: u16, faulty: usize, fault: Fault) -> FaultyProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else { return };
                let counter = counter.clone();
                tokio::spawn(async move {
                    // One request per connection: each answer closes it.
                    let Some(request) = read_request(&mut conn).await else { return };
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    if n < faulty {
                        match fault {
                            Fault::ServerError => {
                                let body = r#"{"__type":"InternalFailure","message":"injected by the test proxy"}"#;
                                let answer = format!(
                                    "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/x-amz-json-1.1\r\n\
                                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                    body.len()
                                );
                                let _ = conn.write_all(answer.as_bytes()).await;
                            }
                            Fault::Hang => {
                                tokio::time::sleep(Duration::from_secs(120)).await;
                            }
                        }
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
                });
            }
        });
        FaultyProxy { port, seen, task }
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One HTTP/1.1 request (head and `Content-Length` body), with `Connection: close` added so
/// the upstream closes after answering.
async fn read_request(conn: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
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
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let kept: Vec<&str> =
        head.trim_end().lines().filter(|l| !l.to_ascii_lowercase().starts_with("connection:")).collect();
    let mut out = format!("{}\r\nConnection: close\r\n\r\n", kept.join("\r\n")).into_bytes();
    out.extend_from_slice(&buf[head_end..head_end + length]);
    Some(out)
}
