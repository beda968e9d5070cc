//! The shared client: retries, timeouts and error reports, through a faulty proxy in front
//! of moto.

use std::time::{Duration, Instant};

use cairn::provider::Provider;
use cairn::Resource;
use cairn_aws::ecr::{Repository, RepositoryProvider};
use cairn_aws::{Aws, AwsConfig};

use crate::common::{ctx, urn, Fault, Faults, FaultyProxy, Moto};

fn through(moto: &Moto, proxy: &FaultyProxy, change: impl FnOnce(&mut AwsConfig)) -> Aws {
    let mut config = moto.config();
    config.endpoint_url = Some(format!("http://127.0.0.1:{}", proxy.port));
    change(&mut config);
    Aws::new(config)
}

fn inputs(name: &str) -> serde_json::Value {
    serde_json::to_value(Repository::new(name).in_region("us-east-1")).unwrap()
}

#[tokio::test]
async fn server_errors_are_retried_up_to_the_attempt_limit() {
    let moto = Moto::start();
    let proxy = FaultyProxy::start(moto.port, 2, Fault::ServerError);
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
    let proxy = FaultyProxy::start(moto.port, 1, Fault::ServerError);
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
    let proxy = FaultyProxy::start(moto.port, usize::MAX, Fault::Hang);
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

/// A program of a topic, a log group and a repository in one region.
fn small_program() -> cairn::stack::Desired {
    let mut stack = cairn::Stack::new("faults", "test");
    stack.add("alerts", cairn_aws::sns::Topic::new("faults-alerts").in_region("us-east-1"));
    stack.add("logs", cairn_aws::logs::LogGroup::new("/faults/app").in_region("us-east-1"));
    stack.add("repo", Repository::new("faults/app").in_region("us-east-1"));
    stack.finish().expect("program")
}

/// Applies `desired` through `aws`; the failures, if any.
async fn apply_through(aws: &Aws, dir: &std::path::Path, desired: &cairn::stack::Desired) -> Vec<String> {
    let backend = cairn::state::file::FileBackend::new(dir.join("state"), &desired.stack);
    let engine = crate::engine::engine(aws, &desired.stack);
    let (_, outcome, _) = crate::engine::try_deploy(&engine, &backend, desired).await;
    outcome.failed.into_iter().map(|(urn, _, e)| format!("{urn}: {e}")).collect()
}

async fn assert_one_of_each(moto: &Moto) {
    let region = "us-east-1";
    assert_eq!(moto.sns(region).list_topics().send().await.unwrap().topics().len(), 1);
    assert_eq!(moto.logs(region).describe_log_groups().send().await.unwrap().log_groups().len(), 1);
    assert_eq!(moto.ecr(region).describe_repositories().send().await.unwrap().repositories().len(), 1);
}

#[tokio::test]
async fn throttled_and_failing_calls_are_retried_and_the_apply_succeeds_without_duplicates() {
    let moto = Moto::start();
    for fault in [Fault::Throttle, Fault::ServerError] {
        moto.reset();
        // Every one of the first six calls fails once or more; three attempts get through.
        let proxy = FaultyProxy::start_with(
            moto.port,
            Faults { faulty: 6, fault, latency: Duration::from_millis(5), only: None },
        );
        let aws = through(&moto, &proxy, |c| c.max_attempts = 8);
        let dir = tempfile::tempdir().unwrap();
        let failures = apply_through(&aws, dir.path(), &small_program()).await;
        assert!(failures.is_empty(), "{fault:?}: {failures:?}");
        assert!(proxy.requests() > 6, "{fault:?}: the faults were met");
        assert_one_of_each(&moto).await;
    }
}

#[tokio::test]
async fn throttling_past_the_attempt_limit_fails_clearly_and_a_rerun_converges_without_duplicates() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let proxy = FaultyProxy::start_with(
        moto.port,
        Faults { faulty: 1_000, fault: Fault::Throttle, latency: Duration::ZERO, only: None },
    );
    let aws = through(&moto, &proxy, |c| c.max_attempts = 2);
    let failures = apply_through(&aws, dir.path(), &small_program()).await;
    assert_eq!(failures.len(), 3, "{failures:?}");
    let text = failures.join("\n");
    // Each names its resource, the operation and AWS's code: the JSON protocols' throttling
    // code for ECR and CloudWatch Logs, the XML one for SNS.
    assert!(text.contains("faults-test/aws:ecr:Repository/repo") && text.contains("ThrottlingException"), "{text}");
    assert!(text.contains("SNS ") && text.contains("Throttling:"), "{text}");
    drop(proxy);

    // The next run, with AWS answering again, creates each resource once.
    let failures = apply_through(&moto.aws(), dir.path(), &small_program()).await;
    assert!(failures.is_empty(), "{failures:?}");
    assert_one_of_each(&moto).await;
}
