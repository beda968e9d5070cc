//! Adopting existing resources with the `import` option, through the engine.

use cairn::plan::Op;
use cairn::stack::Desired;
use cairn::state::file::FileBackend;
use cairn::state::{LockInfo, StateBackend};
use cairn::{Options, Stack};
use cairn_aws::logs::LogGroup;
use cairn_aws::sns::Topic;

use crate::common::Moto;
use crate::engine::{deploy, engine, try_deploy};

fn program(topic: Topic, import: &str) -> Desired {
    let mut stack = Stack::new("shop", "test");
    stack.add_with("alerts", topic, Options::new().import(import));
    stack.finish().expect("program")
}

async fn plan_of(backend: &FileBackend, desired: &Desired) -> cairn::plan::Plan {
    let mut session = backend.lock(LockInfo::new("test"), None).await.expect("lock");
    let prior = session.load().await.expect("load");
    let plan = cairn::plan::plan(desired, &prior).expect("plan");
    session.release().await.expect("release");
    plan
}

#[tokio::test]
async fn an_existing_topic_is_adopted_then_changed_in_place_never_duplicated() {
    let moto = Moto::start();
    let sns = moto.sns("eu-west-1");
    let arn = sns.create_topic().name("legacy-alerts").send().await.unwrap().topic_arn().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let mut topic = Topic::new("legacy-alerts").in_region("eu-west-1");
    topic.display_name = "Alerts".into();
    let desired = program(topic, &arn);
    let backend = FileBackend::new(dir.path().join("state"), &desired.stack);
    let engine = engine(&moto.aws(), &desired.stack);

    let plan = plan_of(&backend, &desired).await;
    assert_eq!(plan.count(Op::Import), 1, "{plan:?}");
    assert_eq!(plan.steps.len(), 1, "{plan:?}");
    let (_, state) = deploy(&engine, &backend, &desired).await;
    let r = state.resources.values().next().unwrap();
    assert_eq!(r.id, arn);
    // Adopted, then brought to what the program declares: the display name and cairn's tags.
    let attrs = sns.get_topic_attributes().topic_arn(&arn).send().await.unwrap();
    assert_eq!(attrs.attributes().unwrap().get("DisplayName").map(String::as_str), Some("Alerts"));
    let tags = sns.list_tags_for_resource().resource_arn(&arn).send().await.unwrap();
    assert!(tags.tags().iter().any(|t| t.key() == "cairn:urn" && t.value() == r.urn.as_str()), "{tags:?}");
    assert_eq!(sns.list_topics().send().await.unwrap().topics().len(), 1, "nothing was created");
    // The option stays in the program and does nothing more.
    assert!(!plan_of(&backend, &desired).await.has_changes());
}

#[tokio::test]
async fn an_import_that_would_replace_or_finds_nothing_fails_and_records_nothing() {
    let moto = Moto::start();
    let logs = moto.logs("us-east-1");
    logs.create_log_group().log_group_name("/legacy").send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&moto.aws(), "shop-test");

    // The program names another log group than the one imported: that would replace it.
    let mut stack = Stack::new("shop", "test");
    stack.add_with("logs", LogGroup::new("/other").in_region("us-east-1"), Options::new().import("/legacy"));
    let desired = stack.finish().unwrap();
    let backend = FileBackend::new(dir.path().join("state"), &desired.stack);
    let failure = apply_failure(&engine, &backend, &desired).await;
    assert!(failure.contains("cannot import `/legacy`") && failure.contains("name"), "{failure}");

    // An id that names nothing.
    let mut stack = Stack::new("shop", "test");
    stack.add_with("logs", LogGroup::new("/missing").in_region("us-east-1"), Options::new().import("/missing"));
    let desired = stack.finish().unwrap();
    let failure = apply_failure(&engine, &backend, &desired).await;
    assert!(failure.contains("cannot import `/missing`: no such aws:logs:LogGroup exists"), "{failure}");

    let mut session = backend.lock(LockInfo::new("test"), None).await.unwrap();
    let state = session.load().await.unwrap();
    session.release().await.unwrap();
    assert!(state.resources.is_empty() && state.pending.is_empty(), "{state:?}");
    assert_eq!(logs.describe_log_groups().send().await.unwrap().log_groups().len(), 1);
}

async fn apply_failure(engine: &cairn::apply::Engine, backend: &FileBackend, desired: &Desired) -> String {
    let (_, outcome, _) = try_deploy(engine, backend, desired).await;
    assert!(!outcome.succeeded());
    outcome.failed.iter().map(|(_, _, e)| e.as_str()).collect::<Vec<_>>().join("\n")
}
