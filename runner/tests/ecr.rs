//! ECR authorization tokens through the real aws-sdk-ecr client, against moto's server (a local
//! AWS emulator, installed into `<repo>/.tools/moto` by `scripts/install-moto.sh`).
//!
//! moto answers GetAuthorizationToken with `AWS:<account>-auth-token` and an expiry in 2015,
//! so this checks the SDK call, the decoding, and that an expired token is never served from
//! the cache. Caching a live token is covered by the unit tests in `src/ecr.rs`.

#![cfg(feature = "ecr")]

mod util;

use std::time::{Duration, Instant};

use runner::config::EcrConfig;
use runner::ecr::EcrAuth;
use runner::metrics::Metrics;

struct Moto(std::process::Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn moto_server() -> std::path::PathBuf {
    let bin = util::repo_root().join(".tools/moto/bin/moto_server");
    if !bin.exists() {
        let script = util::repo_root().join("scripts/install-moto.sh");
        util::sh("bash", &[script.to_str().unwrap()]);
    }
    assert!(bin.exists(), "no {} after scripts/install-moto.sh", bin.display());
    bin
}

#[tokio::test]
async fn tokens_come_from_get_authorization_token_and_expired_ones_are_not_cached() {
    let port = util::free_port();
    let moto = Moto(
        std::process::Command::new(moto_server())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "moto_server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The only test in this binary: nothing else reads the environment concurrently.
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");

    let auth = EcrAuth::from_config(&EcrConfig {
        enabled: true,
        endpoint_url: Some(format!("http://127.0.0.1:{port}")),
        ..EcrConfig::default()
    });
    let metrics = Metrics::new();
    let creds =
        auth.credentials("123456789012.dkr.ecr.us-east-1.amazonaws.com", &metrics).await.expect("an ECR host").unwrap();
    assert_eq!(creds.username.as_deref(), Some("AWS"));
    // moto's default account.
    assert_eq!(creds.password.as_deref(), Some("123456789012-auth-token"));
    let token = auth.token("us-east-1", &metrics).await.unwrap();
    assert!(token.expires_at < std::time::SystemTime::now(), "moto's tokens expired in 2015");
    assert_eq!(metrics.counter("runner_ecr_token_requests_total", &[("result", "fetched")]), 2.0);
    assert_eq!(metrics.counter("runner_ecr_token_requests_total", &[("result", "cached")]), 0.0);

    // Not an ECR host: no token is fetched.
    assert!(auth.credentials("127.0.0.1:5000", &metrics).await.is_none());

    // Without AWS credentials the error says so.
    std::env::remove_var("AWS_ACCESS_KEY_ID");
    let err = auth.token("eu-west-1", &metrics).await.unwrap_err();
    assert!(err.contains("AWS_ACCESS_KEY_ID") && err.contains("eu-west-1"), "{err}");
    drop(moto);
}
