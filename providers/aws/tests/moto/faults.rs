//! Faults on every create and delete of a network, load balancer, IAM, registry, logging and
//! alerting stack, through the engine as `cairn deploy` runs it (recover what a run left
//! pending, plan, apply), then a rerun: each ends with exactly one resource of each, or none
//! after a destroy, and state that matches. What exists is counted through separate SDK
//! clients against moto, never through cairn.
//!
//! - A lost answer: the request takes effect and its answer never arrives. Without the SDK's
//!   retries (as when a run is killed at that moment), the run fails and the rerun recovers
//!   the resource by its tag (or name) instead of making a second one; where a provider
//!   retries a create itself, it looks first. With the SDK's retries, no retry makes a second
//!   resource.
//! - Throttling and 5xx answers: the SDK's retries absorb them; the first run succeeds.

use std::collections::BTreeMap;

use cairn::stack::Desired;
use cairn::state::file::FileBackend;
use cairn::state::{LockInfo, StackState, StateBackend};
use cairn::Stack;
use cairn_aws::ec2::{LaunchTemplate, SecurityGroup, SecurityGroupEgressRule, Subnet, Vpc};
use cairn_aws::ecr::Repository;
use cairn_aws::elb::{Action, Listener, LoadBalancer, TargetGroup};
use cairn_aws::iam::{InstanceProfile, PolicyDocument, Role};
use cairn_aws::logs::LogGroup;
use cairn_aws::sns::Topic;
use cairn_aws::{Aws, AwsConfig};

use crate::common::{Fault, Faults, FaultyProxy, Moto};
use crate::ec2_compute::AMI;

const R: &str = "us-east-1";

/// The stack: every kind of resource the environments use, with its dependencies.
fn program() -> Desired {
    let mut stack = Stack::new("faults", "test");
    let vpc = stack.add("vpc", Vpc::new("10.9.0.0/16").in_region(R));
    let a = stack.add("a", Subnet::new(&vpc.id, "10.9.0.0/24", "us-east-1a").in_region(R));
    let b = stack.add("b", Subnet::new(&vpc.id, "10.9.1.0/24", "us-east-1b").in_region(R));
    let sg = stack.add("lb", SecurityGroup::new("lb", "Load balancer", &vpc.id).in_region(R));
    stack.add("to-targets", SecurityGroupEgressRule::cidr(&sg.id, "tcp", 8080, 8080, "10.9.0.0/16").in_region(R));
    let mut lb = LoadBalancer::application("web", [a.id.clone(), b.id.clone()]).in_region(R);
    lb.security_group_ids.push((&sg.id).into());
    let lb = stack.add("web", lb);
    let tg = stack.add("runner", TargetGroup::http("runner", &vpc.id, 8080, "/_health").in_region(R));
    stack.add("http", Listener::http(&lb.arn, 80, Action::forward(&tg.arn)).in_region(R));
    let role = stack.add("fleet-role", Role::new("fleet", PolicyDocument::assumable_by("ec2.amazonaws.com")));
    stack.add("fleet-profile", InstanceProfile::new("fleet", &role.name));
    stack.add("template", LaunchTemplate::new("runner", AMI, "t3.micro").in_region(R));
    stack.add("registry", Repository::new("runner").in_region(R));
    stack.add("logs", LogGroup::new("/runner").in_region(R));
    stack.add("alerts", Topic::new("alerts").in_region(R));
    stack.finish().expect("program")
}

/// What exists in moto, by kind (moto's default VPC, its subnets and groups left out).
async fn census(moto: &Moto) -> BTreeMap<&'static str, usize> {
    let ec2 = moto.ec2(R);
    let vpcs = ec2.describe_vpcs().send().await.unwrap();
    let ours: Vec<String> = vpcs
        .vpcs()
        .iter()
        .filter(|v| v.is_default() != Some(true))
        .filter_map(|v| v.vpc_id().map(str::to_string))
        .collect();
    let subnets = ec2.describe_subnets().send().await.unwrap();
    let subnets = subnets.subnets().iter().filter(|s| s.vpc_id().is_some_and(|v| ours.iter().any(|o| o == v))).count();
    let groups = ec2.describe_security_groups().send().await.unwrap();
    let groups: Vec<String> = groups
        .security_groups()
        .iter()
        .filter(|g| g.group_name() != Some("default"))
        .filter_map(|g| g.group_id().map(str::to_string))
        .collect();
    let mut rules = 0;
    for g in &groups {
        let f = aws_sdk_ec2::types::Filter::builder().name("group-id").values(g).build();
        rules += ec2.describe_security_group_rules().filters(f).send().await.unwrap().security_group_rules().len();
    }
    let elb = moto.elb(R);
    let lbs = elb.describe_load_balancers().send().await.unwrap();
    let mut listeners = 0;
    for lb in lbs.load_balancers() {
        let l = elb.describe_listeners().load_balancer_arn(lb.load_balancer_arn().unwrap()).send().await.unwrap();
        listeners += l.listeners().len();
    }
    let iam = moto.iam();
    BTreeMap::from([
        ("vpc", ours.len()),
        ("subnet", subnets),
        ("security group", groups.len()),
        ("security group rule", rules),
        ("load balancer", lbs.load_balancers().len()),
        ("target group", elb.describe_target_groups().send().await.unwrap().target_groups().len()),
        ("listener", listeners),
        ("role", iam.list_roles().send().await.unwrap().roles().len()),
        ("instance profile", iam.list_instance_profiles().send().await.unwrap().instance_profiles().len()),
        ("launch template", ec2.describe_launch_templates().send().await.unwrap().launch_templates().len()),
        ("repository", moto.ecr(R).describe_repositories().send().await.unwrap().repositories().len()),
        ("log group", moto.logs(R).describe_log_groups().send().await.unwrap().log_groups().len()),
        ("topic", moto.sns(R).list_topics().send().await.unwrap().topics().len()),
    ])
}

fn deployed() -> BTreeMap<&'static str, usize> {
    let mut all: BTreeMap<&'static str, usize> = [
        "vpc",
        "security group",
        "security group rule",
        "load balancer",
        "target group",
        "listener",
        "role",
        "instance profile",
        "launch template",
        "repository",
        "log group",
        "topic",
    ]
    .into_iter()
    .map(|k| (k, 1))
    .collect();
    all.insert("subnet", 2);
    all
}

/// One `cairn deploy`: reconcile what an earlier run left pending, plan, apply. Whether it
/// succeeded, and the state after.
async fn run(aws: &Aws, backend: &FileBackend, desired: &Desired) -> (Result<(), String>, StackState) {
    let engine = crate::engine::engine(aws, &desired.stack);
    let mut session = backend.lock(LockInfo::new("test"), None).await.expect("lock");
    let mut prior = session.load().await.expect("load");
    if !prior.pending.is_empty() {
        engine.recover(session.as_ref(), &prior, Some(desired)).await.expect("recover");
        prior = session.load().await.expect("reload");
    }
    let plan = cairn::plan::plan(desired, &prior).expect("plan");
    let (_tx, cancel) = tokio::sync::watch::channel(false);
    let outcome = engine.apply(session.as_ref(), &plan, desired, &prior, cancel).await;
    let state = session.load().await.expect("reload");
    session.release().await.expect("release");
    (if outcome.succeeded() { Ok(()) } else { Err(format!("{outcome:?}")) }, state)
}

/// An `Aws` whose requests go through `proxy`, with `attempts` tries per call.
fn through(moto: &Moto, proxy: &FaultyProxy, attempts: u32) -> Aws {
    Aws::new(AwsConfig { endpoint_url: Some(proxy.endpoint()), max_attempts: attempts, ..moto.config() })
}

/// After a rerun: state holds every resource of the program, nothing pending, and a third
/// run finds nothing to do.
async fn assert_converged(moto: &Moto, backend: &FileBackend, desired: &Desired, state: &StackState, what: &str) {
    assert!(state.pending.is_empty() && state.retired.is_empty(), "{what}: {state:?}");
    assert_eq!(state.resources.len(), desired.resources.len(), "{what}");
    let mut session = backend.lock(LockInfo::new("test"), None).await.expect("lock");
    let prior = session.load().await.expect("load");
    session.release().await.expect("release");
    let plan = cairn::plan::plan(desired, &prior).expect("plan");
    assert!(!plan.has_changes(), "{what}: {plan:?}");
    assert_eq!(census(moto).await, deployed(), "{what}: exactly one of each");
}

/// How many calls of `op` a clean deploy (or destroy) of the program makes.
fn made_by(op: &str) -> usize {
    if op.contains("Subnet") {
        2
    } else {
        1
    }
}

/// The creates whose answers are lost, one operation at a time.
const CREATES: &[&str] = &[
    "Action=CreateVpc",
    "Action=CreateSubnet",
    "Action=CreateSecurityGroup",
    "Action=AuthorizeSecurityGroupEgress",
    "Action=CreateLoadBalancer",
    "Action=CreateTargetGroup",
    "Action=CreateListener",
    "Action=CreateRole",
    "Action=CreateInstanceProfile",
    "Action=CreateLaunchTemplate",
    "AmazonEC2ContainerRegistry_V20150921.CreateRepository",
    "Logs_20140328.CreateLogGroup",
    "Action=CreateTopic",
];

#[tokio::test]
async fn every_create_whose_answer_is_lost_converges_on_the_rerun() {
    let moto = Moto::start();
    let desired = program();
    for op in CREATES {
        moto.reset();
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = FileBackend::new(dir.path().join("state"), &desired.stack);
        let proxy = FaultyProxy::start_with(moto.port, Faults::on(op, 1, Fault::LoseAnswer));
        let (ok, state) = run(&through(&moto, &proxy, 1), &backend, &desired).await;
        // Where the provider retries a create itself (no idempotency token: VPCs, gateways,
        // load balancers, target groups, listeners), it looks for the lost one first and the
        // run succeeds; elsewhere the run fails and leaves the create pending.
        assert!(ok.is_ok() || !state.pending.is_empty(), "{op}: a failed run leaves the create pending");
        let sent = proxy.signers_of(&[op]).len();
        assert!((1..=made_by(op)).contains(&sent), "{op}: sent {sent} times");
        let (ok, state) = run(&moto.aws(), &backend, &desired).await;
        assert_eq!(ok, Ok(()), "{op}: the rerun succeeds");
        assert_converged(&moto, &backend, &desired, &state, op).await;
    }
}

#[tokio::test]
async fn throttling_and_server_errors_on_every_create_are_retried() {
    let moto = Moto::start();
    let desired = program();
    for fault in [Fault::Throttle, Fault::ServerError] {
        for op in CREATES {
            moto.reset();
            let dir = tempfile::tempdir().expect("tempdir");
            let backend = FileBackend::new(dir.path().join("state"), &desired.stack);
            let proxy = FaultyProxy::start_with(moto.port, Faults::on(op, 2, fault));
            let (ok, state) = run(&through(&moto, &proxy, 3), &backend, &desired).await;
            let what = format!("{fault:?} on {op}");
            assert_eq!(ok, Ok(()), "{what}: retried within the run");
            let sent = proxy.signers_of(&[op]).len();
            assert_eq!(sent, 2 + made_by(op), "{what}: two spoiled, then each answered");
            assert_converged(&moto, &backend, &desired, &state, &what).await;
        }
    }
}

/// The deletes whose answers are lost, one operation at a time.
const DELETES: &[&str] = &[
    "Action=DeleteVpc",
    "Action=DeleteSubnet",
    "Action=DeleteSecurityGroup",
    "Action=RevokeSecurityGroupEgress",
    "Action=DeleteLoadBalancer",
    "Action=DeleteTargetGroup",
    "Action=DeleteListener",
    "Action=DeleteRole",
    "Action=DeleteInstanceProfile",
    "Action=DeleteLaunchTemplate",
    "AmazonEC2ContainerRegistry_V20150921.DeleteRepository",
    "Logs_20140328.DeleteLogGroup",
    "Action=DeleteTopic",
];

#[tokio::test]
async fn every_delete_whose_answer_is_lost_converges_on_the_rerun() {
    let moto = Moto::start();
    let desired = program();
    let empty = Desired { stack: desired.stack.clone(), ..Desired::default() };
    for op in DELETES {
        moto.reset();
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = FileBackend::new(dir.path().join("state"), &desired.stack);
        let (ok, _) = run(&moto.aws(), &backend, &desired).await;
        assert_eq!(ok, Ok(()), "{op}: deployed");
        let proxy = FaultyProxy::start_with(moto.port, Faults::on(op, 1, Fault::LoseAnswer));
        let (ok, _) = run(&through(&moto, &proxy, 1), &backend, &empty).await;
        assert!(ok.is_err(), "{op}: the lost answer failed the destroy");
        let sent = proxy.signers_of(&[op]).len();
        assert!((1..=made_by(op)).contains(&sent), "{op}: sent {sent} times");
        let (ok, state) = run(&moto.aws(), &backend, &empty).await;
        assert_eq!(ok, Ok(()), "{op}: the rerun succeeds");
        assert!(state.resources.is_empty() && state.pending.is_empty() && state.retired.is_empty(), "{op}: {state:?}");
        assert!(census(&moto).await.values().all(|n| *n == 0), "{op}: {:?}", census(&moto).await);
    }
}

/// The same lost answers with the SDK's retries on, as a deploy runs (3 attempts): a retry
/// must not make a second resource where the API has no idempotency token. Each run either
/// succeeds at once or leaves what the rerun completes, and never a duplicate.
#[tokio::test]
async fn every_create_whose_answer_is_lost_and_retried_leaves_one_resource() {
    let moto = Moto::start();
    let desired = program();
    let mut duplicated = Vec::new();
    for op in CREATES {
        moto.reset();
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = FileBackend::new(dir.path().join("state"), &desired.stack);
        let proxy = FaultyProxy::start_with(moto.port, Faults::on(op, 1, Fault::LoseAnswer));
        let (first, _) = run(&through(&moto, &proxy, 3), &backend, &desired).await;
        let (ok, state) = run(&moto.aws(), &backend, &desired).await;
        assert_eq!(ok, Ok(()), "{op}: the rerun succeeds (the first run: {first:?})");
        if census(&moto).await != deployed() {
            duplicated.push((*op, census(&moto).await));
            continue;
        }
        assert_converged(&moto, &backend, &desired, &state, op).await;
    }
    assert!(duplicated.is_empty(), "{duplicated:#?}");
}
