//! Crash recovery of a replacement: `find` never mistakes the copy being replaced (which state
//! holds, and which carries the same `cairn:urn` tag) for its replacement.

use cairn::plan::Op;
use cairn::provider::{Context, Provider};
use cairn::stack::Desired;
use cairn::state::file::FileBackend;
use cairn::state::{Change, LockInfo, PendingKind, PendingOp, StateBackend};
use cairn::{Resource, Stack};
use cairn_aws::ec2::{SecurityGroupIngressRule, SecurityGroupRuleProvider, Subnet, SubnetProvider, Vpc, VpcProvider};
use cairn_aws::logs::{MetricFilter, MetricFilterProvider, MetricTransformation};
use cairn_aws::route53::{HostedZone, HostedZoneProvider};
use cairn_aws::sns::{Topic, TopicProvider};
use serde_json::{json, Value};

use crate::common::{ctx, urn, Moto, STACK};
use crate::engine::{deploy, engine};
use crate::parent_in_place::plan_of;

fn zone(name: &str) -> Desired {
    let mut stack = Stack::new("dns", "test");
    let mut zone = HostedZone::new(name);
    zone.comment = "recovered".into();
    stack.add("zone", zone);
    stack.finish().expect("program")
}

/// A run died after creating a replacement and before recording it. Its replacement and the
/// copy it replaces carry the same `cairn:urn` tag, and here the same name too (Route 53 lets
/// zones share a name, in AWS as in moto): recovery must adopt the new zone and retire the old
/// one, and the next deploy deletes the old one, leaving one zone. (Without `Context::known`,
/// `find` returned the old zone, which moto lists first among zones of one name (creation
/// order): recovery took it for "already recorded", and the new zone was left behind, a
/// duplicate nobody manages.)
///
/// Why a zone: most AWS types cannot show this. A security group, a repository, a key pair, a
/// launch template or an Auto Scaling group is deleted before its replacement is created (its
/// name is unique), so state no longer holds the old copy when the new one is made; and the
/// tagged EC2 types (subnets, VPCs, route tables, endpoints) are found by their `cairn:urn` tag
/// *and* by what forces their replacement (VPC, CIDR block, zone, service), which the old copy
/// never matches. A public zone is replaced while its name, in canonical form, stays the same
/// when the program changes how it spells the name (the planner compares inputs as written).
#[tokio::test]
async fn recovery_adopts_a_replacement_zone_created_but_not_recorded_and_never_the_copy_it_replaces() {
    let moto = Moto::start();
    let aws = moto.aws();
    let dir = tempfile::tempdir().expect("tempdir");
    let first = zone("recovery.example.com");
    let backend = FileBackend::new(dir.path().join("state"), &first.stack);
    let engine = engine(&aws, &first.stack);
    let (_, state) = deploy(&engine, &backend, &first).await;
    let old = state.resources.values().next().expect("the zone").clone();

    let second = zone("Recovery.Example.com.");
    let plan = plan_of(&backend, &second).await;
    assert_eq!(plan.steps.iter().map(|s| s.op).collect::<Vec<_>>(), [Op::Replace, Op::DeleteReplaced], "{plan:#?}");

    // The run that died: it recorded the pending create, the provider created the zone, and
    // nothing more was written.
    let provider = HostedZoneProvider::new(&aws);
    let inputs = &second.resources[&old.urn].inputs;
    let mut session = backend.lock(LockInfo::new("the run that dies"), None).await.expect("lock");
    session.load().await.expect("load");
    let pending = PendingOp {
        urn: old.urn.clone(),
        kind: PendingKind::Create,
        resource_id: None,
        identity: provider.identity(inputs),
        retired: false,
        started: "2026-01-01T00:00:00Z".into(),
    };
    session.write(vec![Change::PutPending(pending)]).await.expect("write the pending create");
    let created = provider.create(Context::new(&old.urn, &second.stack), inputs).await.expect("create");
    session.release().await.expect("release");
    assert_ne!(created.id, old.id);
    let named = moto.route53().list_hosted_zones_by_name().dns_name("recovery.example.com.").send().await.unwrap();
    let same_name = named.hosted_zones().iter().filter(|z| z.name() == "recovery.example.com.").count();
    assert_eq!(same_name, 2, "both copies exist, both tagged for the same URN");

    // The next run recovers first.
    let mut session = backend.lock(LockInfo::new("the next run"), None).await.expect("lock");
    let state = session.load().await.expect("load");
    assert_eq!(state.pending.len(), 1);
    let n = engine.recover(session.as_ref(), &state, Some(&second)).await.expect("recover");
    assert_eq!(n, 1);
    let state = session.load().await.expect("load");
    session.release().await.expect("release");
    assert!(state.pending.is_empty(), "{state:?}");
    assert_eq!(state.resources[&old.urn].id, created.id, "the new zone is adopted");
    assert_eq!(state.resources[&old.urn].inputs["name"], json!("Recovery.Example.com."));
    assert_eq!(state.retired.get(&old.urn).map(|r| r.id.as_str()), Some(old.id.as_str()), "the old one is retired");

    // The deploy after it only deletes the old zone: one zone is left, the one in state.
    let plan = plan_of(&backend, &second).await;
    assert_eq!(plan.steps.iter().map(|s| s.op).collect::<Vec<_>>(), [Op::DeleteReplaced], "{plan:#?}");
    let (_, state) = deploy(&engine, &backend, &second).await;
    assert!(state.retired.is_empty() && state.pending.is_empty(), "{state:?}");
    assert_eq!(state.resources[&old.urn].id, created.id);
    let named = moto.route53().list_hosted_zones_by_name().dns_name("recovery.example.com.").send().await.unwrap();
    let left: Vec<&str> = named
        .hosted_zones()
        .iter()
        .filter(|z| z.name() == "recovery.example.com.")
        .map(|z| z.id().trim_start_matches("/hostedzone/"))
        .collect();
    assert_eq!(left, [created.id.as_str()], "no duplicate is left");
    assert!(!plan_of(&backend, &second).await.has_changes());
}

fn inputs<T: serde::Serialize>(r: &T) -> Value {
    serde_json::to_value(r).unwrap()
}

/// `find` passes over the copies state already holds, on every kind of search: by tag among
/// several candidates (EC2), by tag and name (SNS), among a group's rules, by identity (a
/// metric filter, which cannot be tagged).
#[tokio::test]
async fn find_passes_over_the_copies_state_holds_and_goes_on_to_the_next_candidate() {
    let moto = Moto::start();
    let aws = moto.aws();
    let r = "us-east-1";
    let known = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    // Two VPCs tagged for one URN (VPC ranges may overlap): each is found while state holds
    // only the other, and neither once state holds both.
    let vpcs = VpcProvider::new(&aws);
    let u = urn(Vpc::TYPE, "main");
    let desired = inputs(&Vpc::new("10.0.0.0/16").in_region(r));
    let a = vpcs.create(ctx(&u), &desired).await.unwrap().id;
    let b = vpcs.create(ctx(&u), &desired).await.unwrap().id;
    let identity = vpcs.identity(&desired);
    let find = |ids: Vec<String>| {
        let (u, identity, vpcs) = (&u, &identity, &vpcs);
        async move { vpcs.find(Context::new(u, STACK).knowing(&ids), identity).await.unwrap().map(|o| o.id) }
    };
    assert_eq!(find(known(&[&a])).await, Some(b.clone()));
    assert_eq!(find(known(&[&b])).await, Some(a.clone()));
    assert_eq!(find(known(&[&a, &b])).await, None);

    // A subnet of the first, and a security group rule.
    let subnets = SubnetProvider::new(&aws);
    let su = urn(Subnet::TYPE, "a");
    let subnet_inputs = inputs(&Subnet::new(a.as_str(), "10.0.1.0/24", "us-east-1a").in_region(r));
    let subnet = subnets.create(ctx(&su), &subnet_inputs).await.unwrap().id;
    let identity = subnets.identity(&subnet_inputs);
    assert_eq!(subnets.find(ctx(&su), &identity).await.unwrap().map(|o| o.id), Some(subnet.clone()));
    let ids = known(&[&subnet]);
    assert_eq!(subnets.find(Context::new(&su, STACK).knowing(&ids), &identity).await.unwrap(), None);

    let groups = cairn_aws::ec2::SecurityGroupProvider::new(&aws);
    let gu = urn(cairn_aws::ec2::SecurityGroup::TYPE, "web");
    let group_inputs = inputs(&cairn_aws::ec2::SecurityGroup::new("web", "Web", a.as_str()).in_region(r));
    let group = groups.create(ctx(&gu), &group_inputs).await.unwrap().id;
    let rules = SecurityGroupRuleProvider::ingress(&aws);
    let ru = urn(SecurityGroupIngressRule::TYPE, "https");
    let rule_inputs =
        inputs(&SecurityGroupIngressRule::cidr(group.as_str(), "tcp", 443, 443, "10.0.0.0/16").in_region(r));
    let rule = rules.create(ctx(&ru), &rule_inputs).await.unwrap().id;
    let identity = rules.identity(&rule_inputs);
    assert_eq!(rules.find(ctx(&ru), &identity).await.unwrap().map(|o| o.id), Some(rule.clone()));
    let ids = known(&[&rule]);
    assert_eq!(rules.find(Context::new(&ru, STACK).knowing(&ids), &identity).await.unwrap(), None);

    // A topic, found by name and tag.
    let topics = TopicProvider::new(&aws);
    let tu = urn(Topic::TYPE, "alerts");
    let topic_inputs = inputs(&Topic::new("alerts").in_region(r));
    let topic = topics.create(ctx(&tu), &topic_inputs).await.unwrap().id;
    let identity = topics.identity(&topic_inputs);
    assert_eq!(topics.find(ctx(&tu), &identity).await.unwrap().map(|o| o.id), Some(topic.clone()));
    let ids = known(&[&topic]);
    assert_eq!(topics.find(Context::new(&tu, STACK).knowing(&ids), &identity).await.unwrap(), None);

    // A metric filter, found by what identifies it (it cannot be tagged).
    moto.logs(r).create_log_group().log_group_name("/app").send().await.unwrap();
    let filters = MetricFilterProvider::new(&aws);
    let fu = urn(MetricFilter::TYPE, "errors");
    let filter_inputs = inputs(&MetricFilter {
        region: Some(r.into()),
        log_group_name: "/app".into(),
        name: "errors".into(),
        pattern: "ERROR".into(),
        metric_transformation: MetricTransformation {
            namespace: "App".into(),
            name: "Errors".into(),
            value: "1".into(),
            default_value: None,
        },
    });
    let filter = filters.create(ctx(&fu), &filter_inputs).await.unwrap().id;
    let identity = filters.identity(&filter_inputs);
    assert_eq!(filters.find(ctx(&fu), &identity).await.unwrap().map(|o| o.id), Some(filter.clone()));
    let ids = known(&[&filter]);
    assert_eq!(filters.find(Context::new(&fu, STACK).knowing(&ids), &identity).await.unwrap(), None);
}
