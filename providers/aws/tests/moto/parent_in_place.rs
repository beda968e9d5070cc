//! A parent changed in place leaves its dependents alone, on the real types, through the
//! engine: every output a dependent uses that the parent's type keeps through updates (not in
//! its `UPDATABLE_OUTPUTS`: ids, ARNs, names) is known when planning, so a tag on a VPC, a
//! zone's comment, a log group's retention or a topic's display name plans one update, and
//! the apply does only that. Before, each dependent that used such an output in a property
//! that forces replacement (a subnet's `vpc_id`, a record set's `zone_id`) planned a
//! replacement: deleted subnets, a DNS outage.

use std::collections::BTreeMap;

use cairn::plan::{Op, Plan};
use cairn::stack::Desired;
use cairn::state::file::FileBackend;
use cairn::state::{LockInfo, StackState, StateBackend};
use cairn::{Resource, Stack, Urn};
use cairn_aws::ec2::{
    InternetGateway, Route, RouteTable, RouteTableAssociation, SecurityGroup, SecurityGroupEgressRule,
    SecurityGroupIngressRule, Subnet, Vpc, VpcEndpoint,
};
use cairn_aws::logs::{LogGroup, MetricFilter, MetricTransformation};
use cairn_aws::route53::{HostedZone, RecordSet};
use cairn_aws::sns::{Protocol, Subscription, Topic};
use serde_json::json;

use crate::common::Moto;
use crate::engine::{deploy, engine, try_deploy};

/// The plan of `desired` against the saved state.
pub async fn plan_of(backend: &FileBackend, desired: &Desired) -> Plan {
    let mut session = backend.lock(LockInfo::new("test"), None).await.expect("lock");
    let prior = session.load().await.expect("load");
    let plan = cairn::plan::plan(desired, &prior).expect("plan");
    session.release().await.expect("release");
    plan
}

/// Every resource's id, by URN.
fn ids(state: &StackState) -> BTreeMap<Urn, String> {
    state.resources.iter().map(|(urn, r)| (urn.clone(), r.id.clone())).collect()
}

/// The URN of the resource `name` of type `type_token` in `desired`.
fn urn_of(desired: &Desired, type_token: &str, name: &str) -> Urn {
    let found = desired.resources.keys().find(|u| u.type_token() == type_token && u.name() == name);
    found.unwrap_or_else(|| panic!("no {type_token} `{name}`")).clone()
}

/// Changes `before` into `after`, which differs only in the parent `parent`: the plan is one
/// update of the parent, the apply does only that, and every resource keeps its id (none was
/// replaced or deleted). Returns the state after.
async fn only_the_parent_is_updated(
    moto: &Moto,
    before: &Desired,
    after: &Desired,
    parent: &Urn,
) -> (StackState, StackState) {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = FileBackend::new(dir.path().join("state"), &before.stack);
    let engine = engine(&moto.aws(), &before.stack);
    let (_, first) = deploy(&engine, &backend, before).await;
    assert_eq!(first.resources.len(), before.resources.len());

    let plan = plan_of(&backend, after).await;
    let steps: Vec<(&Urn, Op)> = plan.steps.iter().map(|s| (&s.urn, s.op)).collect();
    assert_eq!(steps, [(parent, Op::Update)], "one step, the parent's update: {plan:#?}");
    assert_eq!(plan.unchanged, before.resources.len() - 1, "{plan:#?}");

    let (changed, outcome, second) = try_deploy(&engine, &backend, after).await;
    assert!(changed);
    assert!(outcome.succeeded(), "{outcome:?}");
    assert_eq!(outcome.done, [(parent.clone(), Op::Update)], "{outcome:?}");
    assert!(outcome.redecided.is_empty(), "{outcome:?}");
    assert_eq!(ids(&second), ids(&first), "every resource keeps its id: nothing was replaced or deleted");
    assert!(second.retired.is_empty() && second.pending.is_empty(), "{second:?}");
    // What dependents were given is what they had.
    for (urn, r) in &second.resources {
        if urn != parent {
            assert_eq!(r.inputs, first.resources[urn].inputs, "{urn}");
        }
    }
    // And nothing more to do.
    assert!(!plan_of(&backend, after).await.has_changes());
    (first, second)
}

const R: &str = "eu-west-1";

/// A VPC (tagged `env`) with subnets, an internet gateway routed from the VPC's main route
/// table, a route table with associations, a security group with rules (one of them for the
/// VPC's own range), and gateway and interface endpoints: everything uses the VPC's outputs,
/// mostly in properties that force a replacement.
fn network(env: &str) -> Desired {
    let mut stack = Stack::new("net", "test");
    let mut vpc = Vpc::new("10.0.0.0/16").in_region(R);
    vpc.enable_dns_hostnames = true;
    vpc.tags.insert("env".into(), env.into());
    let vpc = stack.add("vpc", vpc);
    let a = stack.add("subnet-a", Subnet::new(&vpc.id, "10.0.1.0/24", "eu-west-1a").in_region(R));
    let b = stack.add("subnet-b", Subnet::new(&vpc.id, "10.0.2.0/24", "eu-west-1b").in_region(R));
    let igw = stack.add("igw", InternetGateway::new(&vpc.id).in_region(R));
    stack.add("default-route", Route::to_gateway(&vpc.main_route_table_id, "0.0.0.0/0", &igw.id).in_region(R));
    let rtb = stack.add("private", RouteTable::new(&vpc.id).in_region(R));
    for (name, subnet) in [("assoc-a", &a), ("assoc-b", &b)] {
        let association = RouteTableAssociation {
            region: Some(R.into()),
            route_table_id: (&rtb.id).into(),
            subnet_id: (&subnet.id).into(),
        };
        stack.add(name, association);
    }
    let sg = stack.add("web", SecurityGroup::new("web", "Web servers", &vpc.id).in_region(R));
    stack.add("https-in", SecurityGroupIngressRule::cidr(&sg.id, "tcp", 443, 443, &vpc.cidr_block).in_region(R));
    stack.add("https-out", SecurityGroupEgressRule::cidr(&sg.id, "tcp", 443, 443, "0.0.0.0/0").in_region(R));
    stack.add("s3", VpcEndpoint::gateway(&vpc.id, "com.amazonaws.eu-west-1.s3", vec![(&rtb.id).into()]).in_region(R));
    let ecr = VpcEndpoint::interface(
        &vpc.id,
        "com.amazonaws.eu-west-1.ecr.api",
        vec![(&a.id).into(), (&b.id).into()],
        vec![(&sg.id).into()],
    )
    .in_region(R);
    stack.add("ecr-api", ecr);
    stack.export("vpc_id", &vpc.id);
    stack.finish().expect("program")
}

#[tokio::test]
async fn a_tag_on_a_vpc_updates_the_vpc_only_and_every_subnet_group_rule_table_and_endpoint_stays() {
    let moto = Moto::start();
    let (before, after) = (network("staging"), network("production"));
    let vpc = urn_of(&before, Vpc::TYPE, "vpc");
    let (first, second) = only_the_parent_is_updated(&moto, &before, &after, &vpc).await;
    assert_eq!(second.resources.len(), 13);
    assert_eq!(second.resources[&vpc].outputs, first.resources[&vpc].outputs);

    // In EC2: the VPC has the new tag, and everything that used it is still there.
    let ec2 = moto.ec2(R);
    let vpc_id = &second.resources[&vpc].id;
    let vpcs = ec2.describe_vpcs().vpc_ids(vpc_id).send().await.unwrap();
    let tags = vpcs.vpcs()[0].tags();
    assert!(tags.iter().any(|t| t.key() == Some("env") && t.value() == Some("production")), "{tags:?}");
    let id = |t: &str, name: &str| second.resources[&urn_of(&after, t, name)].id.clone();
    let subnets = [id(Subnet::TYPE, "subnet-a"), id(Subnet::TYPE, "subnet-b")];
    let described = ec2.describe_subnets().set_subnet_ids(Some(subnets.to_vec())).send().await.unwrap();
    assert_eq!(described.subnets().len(), 2);
    assert!(described.subnets().iter().all(|s| s.vpc_id() == Some(vpc_id.as_str())));
    let group = ec2.describe_security_groups().group_ids(id(SecurityGroup::TYPE, "web")).send().await.unwrap();
    assert_eq!(group.security_groups().len(), 1);
    let rules = ec2
        .describe_security_group_rules()
        .security_group_rule_ids(id(SecurityGroupIngressRule::TYPE, "https-in"))
        .security_group_rule_ids(id(SecurityGroupEgressRule::TYPE, "https-out"))
        .send()
        .await
        .unwrap();
    assert_eq!(rules.security_group_rules().len(), 2);
    let tables = ec2.describe_route_tables().route_table_ids(id(RouteTable::TYPE, "private")).send().await.unwrap();
    let associated: Vec<&str> = tables.route_tables()[0].associations().iter().filter_map(|a| a.subnet_id()).collect();
    assert_eq!(associated.len(), 2, "{associated:?}");
    let endpoints = ec2
        .describe_vpc_endpoints()
        .vpc_endpoint_ids(id(VpcEndpoint::TYPE, "s3"))
        .vpc_endpoint_ids(id(VpcEndpoint::TYPE, "ecr-api"))
        .send()
        .await
        .unwrap();
    assert_eq!(endpoints.vpc_endpoints().len(), 2);
    assert!(endpoints.vpc_endpoints().iter().all(|e| e.state().is_some_and(|s| s.as_str() == "available")));
}

/// A public zone (with `comment`) and record sets in it, which use its `zone_id`.
fn zone(comment: &str) -> Desired {
    let mut stack = Stack::new("dns", "test");
    let mut zone = HostedZone::new("in-place.example.com");
    zone.comment = comment.into();
    let zone = stack.add("zone", zone);
    let www = RecordSet::new(&zone.zone_id, "www.in-place.example.com", "A", 300, vec!["192.0.2.10".into()]);
    stack.add("www", www);
    let api =
        RecordSet::new(&zone.zone_id, "api.in-place.example.com", "CNAME", 60, vec!["www.in-place.example.com".into()]);
    stack.add("api", api);
    let mx =
        RecordSet::new(&zone.zone_id, "in-place.example.com", "MX", 3600, vec!["10 mail.in-place.example.com".into()]);
    stack.add("mail", mx);
    stack.export("name_servers", &zone.name_servers);
    stack.finish().expect("program")
}

#[tokio::test]
async fn a_comment_on_a_hosted_zone_updates_the_zone_only_and_its_record_sets_stay() {
    let moto = Moto::start();
    let (before, after) = (zone("the shop"), zone("the shop, moved to cairn"));
    let zone_urn = urn_of(&before, HostedZone::TYPE, "zone");
    let (_, second) = only_the_parent_is_updated(&moto, &before, &after, &zone_urn).await;

    let r53 = moto.route53();
    let zone_id = &second.resources[&zone_urn].id;
    let got = r53.get_hosted_zone().id(zone_id).send().await.unwrap();
    assert_eq!(got.hosted_zone().unwrap().config().unwrap().comment(), Some("the shop, moved to cairn"));
    // Every record set is still served: no moment without them.
    let sets = r53.list_resource_record_sets().hosted_zone_id(zone_id).send().await.unwrap();
    let mut served: Vec<(String, String)> = sets
        .resource_record_sets()
        .iter()
        .filter(|r| !matches!(r.r#type().as_str(), "SOA" | "NS"))
        .map(|r| (r.name().to_string(), r.r#type().as_str().to_string()))
        .collect();
    served.sort();
    assert_eq!(
        served,
        [
            ("api.in-place.example.com.".to_string(), "CNAME".to_string()),
            ("in-place.example.com.".to_string(), "MX".to_string()),
            ("www.in-place.example.com.".to_string(), "A".to_string()),
        ]
    );
}

/// A log group (with a retention) and a metric filter on it, which uses its `name`.
fn logs(retention_days: u32) -> Desired {
    let mut stack = Stack::new("obs", "test");
    let mut group = LogGroup::new("/shop/api").in_region("us-east-1");
    group.retention_days = Some(retention_days);
    let group = stack.add("logs", group);
    let filter = MetricFilter {
        region: Some("us-east-1".into()),
        log_group_name: group.name.clone().into(),
        name: "errors".into(),
        pattern: "ERROR".into(),
        metric_transformation: MetricTransformation {
            namespace: "Shop".into(),
            name: "Errors".into(),
            value: "1".into(),
            default_value: None,
        },
    };
    stack.add("errors", filter);
    stack.finish().expect("program")
}

#[tokio::test]
async fn a_retention_change_updates_the_log_group_only_and_its_metric_filter_stays() {
    let moto = Moto::start();
    let (before, after) = (logs(14), logs(90));
    let group = urn_of(&before, LogGroup::TYPE, "logs");
    let (_, second) = only_the_parent_is_updated(&moto, &before, &after, &group).await;
    let filter = urn_of(&before, MetricFilter::TYPE, "errors");
    assert_eq!(second.resources[&filter].id, "us-east-1:/shop/api:errors");

    let cwl = moto.logs("us-east-1");
    let groups = cwl.describe_log_groups().log_group_name_prefix("/shop/api").send().await.unwrap();
    assert_eq!(groups.log_groups().len(), 1);
    assert_eq!(groups.log_groups()[0].retention_in_days(), Some(90));
    // The filter is there, once: it was not put again (moto would append a second one of the
    // same name, see the crate's documentation), nor deleted and made again.
    let filters = cwl.describe_metric_filters().log_group_name("/shop/api").send().await.unwrap();
    let names: Vec<Option<&str>> = filters.metric_filters().iter().map(|f| f.filter_name()).collect();
    assert_eq!(names, [Some("errors")]);
    assert_eq!(filters.metric_filters()[0].filter_pattern(), Some("ERROR"));
}

/// A topic (with a display name) and an email subscription to it, which uses its `arn`.
fn alerts(display_name: &str) -> Desired {
    let mut stack = Stack::new("alerts", "test");
    let mut topic = Topic::new("shop-alerts").in_region(R);
    topic.display_name = display_name.into();
    let topic = stack.add("alerts", topic);
    let subscription = Subscription {
        topic_arn: (&topic.arn).into(),
        protocol: Protocol::Email,
        endpoint: "oncall@example.com".into(),
    };
    stack.add("oncall", subscription);
    stack.export("topic_arn", &topic.arn);
    stack.finish().expect("program")
}

#[tokio::test]
async fn a_display_name_change_updates_the_topic_only_and_its_subscription_stays() {
    let moto = Moto::start();
    let (before, after) = (alerts("Shop"), alerts("Shop alerts"));
    let topic = urn_of(&before, Topic::TYPE, "alerts");
    let (first, second) = only_the_parent_is_updated(&moto, &before, &after, &topic).await;
    assert_eq!(second.outputs.get("topic_arn"), first.outputs.get("topic_arn"));

    let sns = moto.sns(R);
    let arn = &second.resources[&topic].id;
    let attrs = sns.get_topic_attributes().topic_arn(arn).send().await.unwrap();
    assert_eq!(attrs.attributes().unwrap().get("DisplayName").map(String::as_str), Some("Shop alerts"));
    let subscription = &second.resources[&urn_of(&before, Subscription::TYPE, "oncall")];
    let subs = sns.list_subscriptions_by_topic().topic_arn(arn).send().await.unwrap();
    let arns: Vec<Option<&str>> = subs.subscriptions().iter().map(|s| s.subscription_arn()).collect();
    assert_eq!(arns, [Some(subscription.id.as_str())], "the same subscription, still there");
    assert_eq!(subscription.inputs["topic_arn"], json!(arn));
}
