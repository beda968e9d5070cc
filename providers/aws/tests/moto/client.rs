//! The shared client: retries, timeouts and error reports, through a faulty proxy in front
//! of moto.

use std::time::{Duration, Instant};

use cairn::provider::Provider;
use cairn::Resource;
use cairn_aws::ecr::{Repository, RepositoryProvider};
use cairn_aws::{Aws, AwsConfig};

use crate::common::{ctx, urn, Fault, FaultyProxy, Moto};

fn through(moto: &Moto, proxy: &FaultyProxy, change: impl FnOnce(&mut AwsConfig)) -> Aws {
    let mut config = moto.config();
    config.endpoint_url = Some(format!("http://127.0.0.1:{}", proxy.port));
    change(&mut config);
    Aws::new(config)
}

fn inputs(name: &str) -> serde_json::Value {
    serde_json::to_value(Repository::new(name, "us-east-1")).unwrap()
}

#[tokio::test]
async fn server_errors_are_retried_up_to_the_attempt_limit() {
    let moto = Moto::start();
    let proxy = FaultyProxy::start(moto.port, 2, Fault::ServerError).await;
    let aws = through(&moto, &proxy, |c| c.max_attempts = 3);
    let u = urn(Repository::TYPE, "retried");
    let created = RepositoryProvider::new(&aws).create(ctx(&u), &inputs("retried")).await.expect("third attempt");
    assert!(created.id.ends_with(":repository/retried"));
    // Two failures, then CreateRepository, then the calls after it.
    assert!(proxy.requests() >= 3, "{}", proxy.requests());
    assert!(moto.ecr("us-east-1").describe_repositories().repository_names("retried").send().await.is_ok());
}

#[tokio::test]
async fn one_attempt_reports_the_server_error() {
    let moto = Moto::start();
    let proxy = FaultyProxy::start(moto.port, 1, Fault::ServerError).await;
    let aws = through(&moto, &proxy, |c| c.max_attempts = 1);
    let u = urn(Repository::TYPE, "failed");
    let e = RepositoryProvider::new(&aws).create(ctx(&u), &inputs("failed")).await.unwrap_err().message;
    assert!(e.contains(u.as_str()), "{e}");
    assert!(e.contains("ECR CreateRepository failed: InternalFailure: injected by the test proxy"), "{e}");
    assert_eq!(proxy.requests(), 1);
}

#[tokio::test]
async fn a_hung_call_times_out_per_attempt_and_per_operation() {
    let moto = Moto::start();
    let proxy = FaultyProxy::start(moto.port, usize::MAX, Fault::Hang).await;
    let aws = through(&moto, &proxy, |c| {
        c.max_attempts = 2;
        c.attempt_timeout = Duration::from_millis(300);
        c.operation_timeout = Duration::from_secs(3);
    });
    let u = urn(Repository::TYPE, "hung");
    let start = Instant::now();
    let e = RepositoryProvider::new(&aws).create(ctx(&u), &inputs("hung")).await.unwrap_err().message;
    let took = start.elapsed();
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(e.contains(u.as_str()) && e.contains("ECR CreateRepository failed"), "{e}");
    assert!(e.to_lowercase().contains("timeout") || e.to_lowercase().contains("timed out"), "{e}");
    assert_eq!(proxy.requests(), 2, "both attempts were made");
}
