//! End to end through the engine: plan, apply, plan again (no changes), refresh (no drift),
//! destroy, against moto.

use std::sync::Arc;

use cairn::apply::{Engine, Outcome};
use cairn::plan::Op;
use cairn::stack::Desired;
use cairn::state::file::FileBackend;
use cairn::state::{LockInfo, StackState, StateBackend};
use cairn::Stack;
use cairn_aws::ecr::{Encryption, Repository};
use cairn_aws::logs::{LogGroup, MetricFilter, MetricTransformation};
use cairn_aws::sns::{Protocol, Subscription, Topic};
use serde_json::json;

use crate::common::Moto;

fn program(kms: bool) -> Desired {
    let mut stack = Stack::new("shop", "test");
    let mut repo = Repository::new("shop/api").in_region("us-east-1");
    if kms {
        repo.encryption = Encryption::Kms { kms_key: None };
    }
    repo.scan_on_push = true;
    repo.tags.insert("team".into(), "shop".into());
    let repo = stack.add("api", repo);
    let mut topic = Topic::new("shop-alerts").in_region("eu-west-1");
    topic.display_name = "Shop alerts".into();
    let topic = stack.add("alerts", topic);
    stack.add(
        "oncall",
        Subscription {
            topic_arn: topic.arn.clone().into(),
            protocol: Protocol::Email,
            endpoint: "oncall@example.com".into(),
        },
    );
    let mut east = LogGroup::new("/shop/api").in_region("us-east-1");
    east.retention_days = Some(14);
    let east = stack.add("logs-east", east);
    let mut west = LogGroup::new("/shop/api").in_region("eu-west-1");
    west.retention_days = Some(30);
    stack.add("logs-west", west);
    stack.add(
        "errors",
        MetricFilter {
            region: Some("us-east-1".into()),
            log_group_name: east.name.clone().into(),
            name: "errors".into(),
            pattern: "ERROR".into(),
            metric_transformation: MetricTransformation {
                namespace: "Shop".into(),
                name: "Errors".into(),
                value: "1".into(),
                default_value: None,
            },
        },
    );
    stack.export("repository_uri", &repo.repository_uri);
    stack.export("topic_arn", &topic.arn);
    stack.finish().expect("program")
}

/// An engine with every AWS provider, sharing `aws`.
pub fn engine(aws: &cairn_aws::Aws, stack: &str) -> Engine {
    Engine {
        registry: cairn_aws::registry(aws),
        stack: stack.to_string(),
        secrets: None,
        parallel: 4,
        events: Arc::new(|_| {}),
    }
}

/// Plans `desired` against the saved state and applies it: whether there were changes, what
/// the apply did, and the state after.
pub async fn try_deploy(engine: &Engine, backend: &FileBackend, desired: &Desired) -> (bool, Outcome, StackState) {
    let mut session = backend.lock(LockInfo::new("test"), None).await.expect("lock");
    let prior = session.load().await.expect("load");
    let plan = cairn::plan::plan(desired, &prior).expect("plan");
    let (_tx, cancel) = tokio::sync::watch::channel(false);
    let outcome = engine.apply(session.as_ref(), &plan, desired, &prior, cancel).await;
    let state = session.load().await.expect("reload");
    session.release().await.expect("release");
    (plan.has_changes(), outcome, state)
}

/// [`try_deploy`], which must succeed: whether there were changes, and the state after.
pub async fn deploy(engine: &Engine, backend: &FileBackend, desired: &Desired) -> (bool, StackState) {
    let (changed, outcome, state) = try_deploy(engine, backend, desired).await;
    assert!(outcome.succeeded(), "{outcome:?}");
    (changed, state)
}

#[tokio::test]
async fn deploy_plan_again_refresh_and_destroy_through_the_engine() {
    let moto = Moto::start();
    let aws = moto.aws();
    let dir = tempfile::tempdir().expect("tempdir");
    let desired = program(false);
    let backend = FileBackend::new(dir.path().join("state"), &desired.stack);
    let engine = engine(&aws, &desired.stack);

    let (changed, state) = deploy(&engine, &backend, &desired).await;
    assert!(changed);
    assert_eq!(state.resources.len(), 6);
    assert!(state.pending.is_empty());
    assert_eq!(
        state.outputs.get("repository_uri"),
        Some(&json!("123456789012.dkr.ecr.us-east-1.amazonaws.com/shop/api"))
    );
    assert_eq!(state.outputs.get("topic_arn"), Some(&json!("arn:aws:sns:eu-west-1:123456789012:shop-alerts")));
    // The subscription got the topic's ARN, the filter the log group's name.
    let sub = state.resources.values().find(|r| r.type_token == "aws:sns:Subscription").unwrap();
    assert_eq!(sub.inputs["topic_arn"], json!("arn:aws:sns:eu-west-1:123456789012:shop-alerts"));
    let logs_west = moto.logs("eu-west-1").describe_log_groups().send().await.unwrap();
    assert_eq!(logs_west.log_groups().len(), 1);
    assert_eq!(logs_west.log_groups()[0].retention_in_days(), Some(30));

    // Nothing to do the second time, and reality matches state.
    let mut session = backend.lock(LockInfo::new("test"), None).await.expect("lock");
    let prior = session.load().await.expect("load");
    let plan = cairn::plan::plan(&desired, &prior).expect("plan");
    assert!(!plan.has_changes(), "{plan:?}");
    let drift = engine.refresh(&prior).await.expect("refresh");
    assert!(drift.is_empty(), "{drift:?}");
    session.release().await.expect("release");

    // Changing the encryption replaces the repository, deleting it first (its name is unique).
    let kms = program(true);
    let mut session = backend.lock(LockInfo::new("test"), None).await.expect("lock");
    let prior = session.load().await.expect("load");
    let plan = cairn::plan::plan(&kms, &prior).expect("plan");
    session.release().await.expect("release");
    assert_eq!(plan.count(Op::ReplaceDeleteFirst), 1, "{plan:?}");
    assert_eq!(plan.steps.len(), 1, "{plan:?}");
    let (_, state) = deploy(&engine, &backend, &kms).await;
    let described = moto.ecr("us-east-1").describe_repositories().send().await.unwrap();
    let encryption = described.repositories()[0].encryption_configuration().unwrap();
    assert_eq!(encryption.encryption_type().as_str(), "KMS");
    assert!(state.retired.is_empty() && state.pending.is_empty());

    // Destroy: an empty program.
    let empty = Desired { stack: desired.stack.clone(), ..Desired::default() };
    let (changed, state) = deploy(&engine, &backend, &empty).await;
    assert!(changed);
    assert!(state.resources.is_empty() && state.retired.is_empty() && state.pending.is_empty());
    for region in ["us-east-1", "eu-west-1"] {
        assert!(moto.ecr(region).describe_repositories().send().await.unwrap().repositories().is_empty());
        assert!(moto.sns(region).list_topics().send().await.unwrap().topics().is_empty());
        assert!(moto.logs(region).describe_log_groups().send().await.unwrap().log_groups().is_empty());
    }
    let subs = moto.sns("eu-west-1").list_subscriptions().send().await.unwrap();
    assert!(subs.subscriptions().is_empty(), "{subs:?}");
}
