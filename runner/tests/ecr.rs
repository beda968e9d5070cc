//! ECR authorization tokens through the real aws-sdk-ecr client and the standard AWS credential
//! chain (aws-config), against moto's server (a local AWS emulator, installed into
//! `<repo>/.tools/moto` by `scripts/install-moto.sh`).
//!
//! moto answers GetAuthorizationToken with `AWS:<account>-auth-token` and an expiry in 2015,
//! so this checks the SDK call, the decoding, and that an expired token is never served from
//! the cache. Caching a live token is covered by the unit tests in `src/ecr.rs`. moto does not
//! check signatures, so a test proves where credentials came from by what ran to get them.
//!
//! The chain reads the process's environment, which is process-wide: every test here holds
//! [`AwsEnv`] (a lock) for its whole body, and sees only the AWS variables it sets.

#![cfg(feature = "ecr")]

mod util;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use runner::config::EcrConfig;
use runner::ecr::EcrAuth;
use runner::metrics::Metrics;

struct Moto {
    child: std::process::Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    async fn start() -> Moto {
        let port = util::free_port();
        let moto = Moto {
            child: std::process::Command::new(moto_server())
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        moto
    }

    /// An ECR token source sending GetAuthorizationToken to this server.
    fn auth(&self) -> EcrAuth {
        EcrAuth::from_config(&EcrConfig {
            enabled: true,
            endpoint_url: Some(format!("http://127.0.0.1:{}", self.port)),
            ..EcrConfig::default()
        })
    }
}

fn moto_server() -> PathBuf {
    let bin = util::repo_root().join(".tools/moto/bin/moto_server");
    if !bin.exists() {
        let script = util::repo_root().join("scripts/install-moto.sh");
        util::sh("bash", &[script.to_str().unwrap()]);
    }
    assert!(bin.exists(), "no {} after scripts/install-moto.sh", bin.display());
    bin
}

/// Exclusive use of the process's AWS environment: while held, every `AWS_*` variable is
/// unset except those given; instance metadata is off (the test host may be an EC2 instance
/// with a role) and the shared config and credentials files point nowhere unless given.
/// Dropping it restores the variables as they were.
struct AwsEnv {
    saved: Vec<(String, String)>,
    _lock: MutexGuard<'static, ()>,
}

impl AwsEnv {
    fn set(vars: &[(&str, &str)]) -> AwsEnv {
        static LOCK: Mutex<()> = Mutex::new(());
        // A test that failed while holding it leaves nothing behind (the guard restored it).
        let lock = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let saved: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k.starts_with("AWS_")).collect();
        for (k, _) in &saved {
            std::env::remove_var(k);
        }
        let nowhere = std::env::temp_dir().join("cairn-runner-ecr-test-no-such-file");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        std::env::set_var("AWS_CONFIG_FILE", &nowhere);
        std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", &nowhere);
        for (k, v) in vars {
            std::env::set_var(k, v);
        }
        AwsEnv { saved, _lock: lock }
    }

    fn remove(&self, name: &str) {
        std::env::remove_var(name);
    }
}

impl Drop for AwsEnv {
    fn drop(&mut self) {
        let current: Vec<String> = std::env::vars().map(|(k, _)| k).filter(|k| k.starts_with("AWS_")).collect();
        for k in current {
            std::env::remove_var(k);
        }
        for (k, v) in &self.saved {
            std::env::set_var(k, v);
        }
    }
}

#[tokio::test]
async fn tokens_come_from_get_authorization_token_and_expired_ones_are_not_cached() {
    let env = AwsEnv::set(&[("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")]);
    let moto = Moto::start().await;

    let auth = moto.auth();
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

    // No credentials anywhere: the error names the region and every source the chain tried.
    // (A fresh token source: the chain loads once, and the first one has credentials cached.)
    env.remove("AWS_ACCESS_KEY_ID");
    let err = moto.auth().token("eu-west-1", &metrics).await.unwrap_err();
    assert!(err.contains("eu-west-1") && err.contains("no credentials found"), "{err}");
    for source in ["Environment", "Profile", "WebIdentityToken", "EcsContainer", "Ec2InstanceMetadata"] {
        assert!(err.contains(source), "the error should name {source}: {err}");
    }
    drop(moto);
}

/// A `credential_process` script that records its run in `marker` and prints credentials.
fn credential_process(dir: &Path, marker: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let script = dir.join("credentials.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ntouch '{}'\nprintf '%s' '{{\"Version\": 1, \"AccessKeyId\": \"AKIDFROMPROCESS\", \
             \"SecretAccessKey\": \"from-credential-process\"}}'\n",
            marker.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[tokio::test]
async fn credentials_come_from_the_standard_chain_beyond_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("credential-process-ran");
    let script = credential_process(dir.path(), &marker);
    let config_file = dir.path().join("config");
    std::fs::write(&config_file, format!("[profile ecr-puller]\ncredential_process = {}\n", script.display())).unwrap();
    // No AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY: only the profile can provide credentials.
    let _env = AwsEnv::set(&[("AWS_CONFIG_FILE", config_file.to_str().unwrap()), ("AWS_PROFILE", "ecr-puller")]);
    let moto = Moto::start().await;

    let auth = moto.auth();
    let metrics = Metrics::new();
    let creds =
        auth.credentials("123456789012.dkr.ecr.eu-west-1.amazonaws.com", &metrics).await.expect("an ECR host").unwrap();
    assert!(marker.exists(), "the profile's credential_process did not run");
    assert_eq!(creds.password.as_deref(), Some("123456789012-auth-token"));

    // Another region: another GetAuthorizationToken, the chain's cached credentials.
    std::fs::remove_file(&marker).unwrap();
    auth.token("ap-southeast-2", &metrics).await.unwrap();
    assert!(!marker.exists(), "the chain's credentials should be cached, not fetched per call");
    assert_eq!(metrics.counter("runner_ecr_token_requests_total", &[("result", "fetched")]), 2.0);
    drop(moto);
}
