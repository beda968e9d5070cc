//! EC2 networking against moto: every resource type's life cycle, import, find and drift, and
//! a network stack end to end through the engine.

use std::time::Duration;

use aws_sdk_ec2::types::{AttributeBooleanValue, Filter};
use cairn::plan::Op;
use cairn::provider::Provider;
use cairn::stack::Desired;
use cairn::state::file::FileBackend;
use cairn::state::{LockInfo, StateBackend};
use cairn::{Resource, Stack};
use cairn_aws::ec2::{
    EndpointType, InternetGateway, InternetGatewayProvider, Route, RouteProvider, RouteTable, RouteTableAssociation,
    RouteTableAssociationProvider, RouteTableProvider, SecurityGroup, SecurityGroupEgressRule,
    SecurityGroupIngressRule, SecurityGroupProvider, SecurityGroupRuleProvider, Subnet, SubnetProvider, Vpc,
    VpcEndpoint, VpcEndpointProvider, VpcProvider,
};
use cairn_aws::Aws;
use serde_json::{json, Value};

use crate::common::{ctx, urn, Moto};
use crate::engine::{deploy, engine};

fn inputs<T: serde::Serialize>(r: &T) -> Value {
    serde_json::to_value(r).unwrap()
}

fn tag_filter(key: &str, value: &str) -> Filter {
    Filter::builder().name(format!("tag:{key}")).values(value).build()
}

/// A VPC made through its provider, for the tests of what lives in it.
async fn vpc(aws: &Aws, name: &str, cidr: &str, region: &str) -> String {
    let u = urn(Vpc::TYPE, name);
    VpcProvider::new(aws).create(ctx(&u), &inputs(&Vpc::new(cidr).in_region(region))).await.unwrap().id
}

async fn subnet(aws: &Aws, name: &str, vpc_id: &str, cidr: &str, zone: &str, region: &str) -> String {
    let u = urn(Subnet::TYPE, name);
    SubnetProvider::new(aws)
        .create(ctx(&u), &inputs(&Subnet::new(vpc_id, cidr, zone).in_region(region)))
        .await
        .unwrap()
        .id
}

#[tokio::test]
async fn vpc_create_read_update_replace_delete() {
    let moto = Moto::start();
    let p = VpcProvider::new(&moto.aws());
    let u = urn(Vpc::TYPE, "main");
    let c = ctx(&u);
    let mut desired = Vpc::new("10.0.0.0/16").in_region("us-east-1");
    desired.tags.insert("team".into(), "net".into());
    let created = p.create(c, &inputs(&desired)).await.unwrap();
    assert!(created.id.starts_with("vpc-"), "{}", created.id);
    assert_eq!(created.outputs["id"], json!(created.id));
    assert_eq!(created.outputs["cidr_block"], json!("10.0.0.0/16"));
    assert!(created.outputs["default_security_group_id"].as_str().unwrap().starts_with("sg-"), "{created:?}");
    assert!(created.outputs["main_route_table_id"].as_str().unwrap().starts_with("rtb-"), "{created:?}");
    let seen = p.read(c, &created.id, &inputs(&desired)).await.unwrap().unwrap();
    assert_eq!(seen.inputs, inputs(&desired));
    assert_eq!(seen.outputs, created.outputs);
    // Tagged at creation with cairn's tags.
    let tagged =
        moto.ec2("us-east-1").describe_vpcs().filters(tag_filter("cairn:urn", u.as_str())).send().await.unwrap();
    assert_eq!(tagged.vpcs().len(), 1);

    // In place: DNS host names and tags.
    let mut changed = desired.clone();
    changed.enable_dns_hostnames = true;
    changed.tags.clear();
    changed.tags.insert("owner".into(), "ops".into());
    let outputs = p.update(c, &created.id, &inputs(&desired), &inputs(&changed)).await.unwrap();
    assert_eq!(outputs, created.outputs);
    assert_eq!(p.read(c, &created.id, &inputs(&changed)).await.unwrap().unwrap().inputs, inputs(&changed));
    // A second apply of the same inputs changes nothing.
    assert_eq!(p.update(c, &created.id, &inputs(&changed), &inputs(&changed)).await.unwrap(), created.outputs);
    assert_eq!(p.read(c, &created.id, &inputs(&changed)).await.unwrap().unwrap().inputs, inputs(&changed));
    // Turning DNS support off needs host names off first: refused before any call.
    let mut bad = changed.clone();
    bad.enable_dns_support = false;
    let e = p.update(c, &created.id, &inputs(&changed), &inputs(&bad)).await.unwrap_err().message;
    assert!(e.contains(u.as_str()) && e.contains("`enable_dns_hostnames` needs `enable_dns_support`"), "{e}");

    // Replace on a CIDR change: the new one first, then the old one goes.
    assert!(Vpc::REPLACE_ON_CHANGE.contains(&"cidr_block") && !Vpc::DELETE_BEFORE_REPLACE);
    let e = p.update(c, &created.id, &inputs(&changed), &inputs(&Vpc::new("10.1.0.0/16").in_region("us-east-1"))).await;
    assert!(e.unwrap_err().message.contains("must be replaced"));
    let moved = Vpc::new("10.1.0.0/16").in_region("us-east-1");
    let replacement = p.create(c, &inputs(&moved)).await.unwrap();
    p.delete(c, &created.id, &inputs(&changed)).await.unwrap();
    assert_eq!(p.read(c, &created.id, &inputs(&changed)).await.unwrap(), None);
    assert_eq!(p.read(c, &replacement.id, &inputs(&moved)).await.unwrap().unwrap().inputs, inputs(&moved));
    p.delete(c, &replacement.id, &inputs(&moved)).await.unwrap();
    assert_eq!(p.read(c, &replacement.id, &inputs(&moved)).await.unwrap(), None);
    p.delete(c, &replacement.id, &inputs(&moved)).await.unwrap();

    let e = p.create(c, &inputs(&Vpc::new("10.0.0.0/8").in_region("us-east-1"))).await.unwrap_err().message;
    assert!(e.contains(u.as_str()) && e.contains("`cidr_block`"), "{e}");
}

#[tokio::test]
async fn vpc_find_import_drift_and_bounded_delete_in_eu_west_1() {
    let moto = Moto::start();
    let aws = moto.aws();
    let p = VpcProvider::new(&aws).with_wait(Duration::from_secs(1));
    let u = urn(Vpc::TYPE, "west");
    let desired = Vpc::new("10.2.0.0/16").in_region("eu-west-1");
    let created = p.create(ctx(&u), &inputs(&desired)).await.unwrap();

    let found = p.find(ctx(&u), &p.identity(&inputs(&desired))).await.unwrap().expect("found by its urn tag");
    assert_eq!(found.id, created.id);
    let other = urn(Vpc::TYPE, "other");
    assert_eq!(p.find(ctx(&other), &p.identity(&inputs(&desired))).await.unwrap(), None);
    // Not in the other region.
    let east = json!({"region": "us-east-1", "cidr_block": "10.2.0.0/16"});
    assert_eq!(p.find(ctx(&u), &east).await.unwrap(), None);

    // Import: the bare id and the region.
    let seen = p.read(ctx(&u), &created.id, &json!({"region": "eu-west-1"})).await.unwrap().unwrap();
    assert_eq!(seen.inputs, inputs(&desired));

    // Drift.
    let ec2 = moto.ec2("eu-west-1");
    ec2.modify_vpc_attribute()
        .vpc_id(&created.id)
        .enable_dns_support(AttributeBooleanValue::builder().value(false).build())
        .send()
        .await
        .unwrap();
    let seen = p.read(ctx(&u), &created.id, &inputs(&desired)).await.unwrap().unwrap();
    assert_eq!(seen.inputs["enable_dns_support"], json!(false));

    // A VPC that still has a subnet: retried for the bounded wait, then a clear error.
    let sub = subnet(&aws, "in-the-way", &created.id, "10.2.1.0/24", "eu-west-1a", "eu-west-1").await;
    let started = std::time::Instant::now();
    let e = p.delete(ctx(&u), &created.id, &inputs(&desired)).await.unwrap_err().message;
    assert!(e.contains(u.as_str()) && e.contains("still in use") && e.contains("DependencyViolation"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
    ec2.delete_subnet().subnet_id(&sub).send().await.unwrap();
    p.delete(ctx(&u), &created.id, &inputs(&desired)).await.unwrap();
    assert_eq!(p.read(ctx(&u), &created.id, &inputs(&desired)).await.unwrap(), None);
}

#[tokio::test]
async fn subnet_create_read_update_replace_find_import_drift_delete() {
    let moto = Moto::start();
    let aws = moto.aws();
    let vpc_id = vpc(&aws, "vpc", "10.0.0.0/16", "eu-west-1").await;
    let p = SubnetProvider::new(&aws);
    let u = urn(Subnet::TYPE, "a");
    let c = ctx(&u);
    let mut desired = Subnet::new(vpc_id.as_str(), "10.0.1.0/24", "eu-west-1a").in_region("eu-west-1");
    desired.tags.insert("tier".into(), "private".into());
    let created = p.create(c, &inputs(&desired)).await.unwrap();
    assert_eq!(created.outputs, json!({"id": created.id, "availability_zone": "eu-west-1a"}));
    let seen = p.read(c, &created.id, &inputs(&desired)).await.unwrap().unwrap();
    assert_eq!(seen.inputs, inputs(&desired));
    assert_eq!(seen.outputs, created.outputs);

    let mut public = desired.clone();
    public.map_public_ip_on_launch = true;
    public.tags.insert("tier".into(), "public".into());
    assert_eq!(p.update(c, &created.id, &inputs(&desired), &inputs(&public)).await.unwrap(), created.outputs);
    assert_eq!(p.read(c, &created.id, &inputs(&public)).await.unwrap().unwrap().inputs, inputs(&public));
    assert_eq!(p.update(c, &created.id, &inputs(&public), &inputs(&public)).await.unwrap(), created.outputs);

    assert_eq!(p.find(c, &p.identity(&inputs(&public))).await.unwrap().unwrap().id, created.id);
    let mut elsewhere = inputs(&public);
    elsewhere["cidr_block"] = json!("10.0.9.0/24");
    assert_eq!(p.find(c, &p.identity(&elsewhere)).await.unwrap(), None);
    let imported = p.read(c, &created.id, &json!({"region": "eu-west-1"})).await.unwrap().unwrap();
    assert_eq!(imported.inputs, inputs(&public));

    // Drift: public addresses turned off out of band.
    moto.ec2("eu-west-1")
        .modify_subnet_attribute()
        .subnet_id(&created.id)
        .map_public_ip_on_launch(AttributeBooleanValue::builder().value(false).build())
        .send()
        .await
        .unwrap();
    let seen = p.read(c, &created.id, &inputs(&public)).await.unwrap().unwrap();
    assert_eq!(seen.inputs["map_public_ip_on_launch"], json!(false));

    // Replace on a zone change: the new subnet first, then the old one.
    assert!(Subnet::REPLACE_ON_CHANGE.contains(&"availability_zone"));
    let moved = Subnet::new(vpc_id.as_str(), "10.0.2.0/24", "eu-west-1b").in_region("eu-west-1");
    let replacement = p.create(c, &inputs(&moved)).await.unwrap();
    p.delete(c, &created.id, &inputs(&public)).await.unwrap();
    assert_eq!(p.read(c, &created.id, &inputs(&public)).await.unwrap(), None);
    assert_eq!(p.read(c, &replacement.id, &inputs(&moved)).await.unwrap().unwrap().inputs, inputs(&moved));
    p.delete(c, &replacement.id, &inputs(&moved)).await.unwrap();
    p.delete(c, &replacement.id, &inputs(&moved)).await.unwrap();
    assert_eq!(p.read(c, &replacement.id, &inputs(&moved)).await.unwrap(), None);

    let mut bad = inputs(&moved);
    bad["vpc_id"] = json!("subnet-123");
    let e = p.create(c, &bad).await.unwrap_err().message;
    assert!(e.contains(u.as_str()) && e.contains("`vpc_id`"), "{e}");
}

#[tokio::test]
async fn internet_gateway_attach_move_detach_import_drift_delete() {
    let moto = Moto::start();
    let aws = moto.aws();
    let first = vpc(&aws, "first", "10.0.0.0/16", "us-east-1").await;
    let second = vpc(&aws, "second", "10.1.0.0/16", "us-east-1").await;
    let p = InternetGatewayProvider::new(&aws);
    let u = urn(InternetGateway::TYPE, "igw");
    let c = ctx(&u);
    let mut desired = InternetGateway::new(first.as_str()).in_region("us-east-1");
    desired.tags.insert("team".into(), "net".into());
    let created = p.create(c, &inputs(&desired)).await.unwrap();
    assert!(created.id.starts_with("igw-"));
    assert_eq!(p.read(c, &created.id, &inputs(&desired)).await.unwrap().unwrap().inputs, inputs(&desired));

    // Moving to another VPC is in place: detach, attach.
    assert_eq!(InternetGateway::REPLACE_ON_CHANGE, &["region"]);
    let moved = InternetGateway { vpc_id: Some(second.as_str().into()), ..desired.clone() };
    p.update(c, &created.id, &inputs(&desired), &inputs(&moved)).await.unwrap();
    assert_eq!(p.read(c, &created.id, &inputs(&moved)).await.unwrap().unwrap().inputs, inputs(&moved));
    p.update(c, &created.id, &inputs(&moved), &inputs(&moved)).await.unwrap();
    let detached = InternetGateway { vpc_id: None, ..moved.clone() };
    p.update(c, &created.id, &inputs(&moved), &inputs(&detached)).await.unwrap();
    assert_eq!(p.read(c, &created.id, &inputs(&detached)).await.unwrap().unwrap().inputs, inputs(&detached));
    p.update(c, &created.id, &inputs(&detached), &inputs(&desired)).await.unwrap();

    assert_eq!(p.find(c, &p.identity(&inputs(&desired))).await.unwrap().unwrap().id, created.id);
    assert_eq!(p.find(ctx(&urn(InternetGateway::TYPE, "other")), &json!({"region": "us-east-1"})).await.unwrap(), None);
    let imported = p.read(c, &created.id, &json!({"region": "us-east-1"})).await.unwrap().unwrap();
    assert_eq!(imported.inputs, inputs(&desired));

    // Drift: detached out of band.
    let ec2 = moto.ec2("us-east-1");
    ec2.detach_internet_gateway().internet_gateway_id(&created.id).vpc_id(&first).send().await.unwrap();
    assert_eq!(p.read(c, &created.id, &inputs(&desired)).await.unwrap().unwrap().inputs["vpc_id"], Value::Null);
    ec2.attach_internet_gateway().internet_gateway_id(&created.id).vpc_id(&first).send().await.unwrap();

    // Delete detaches first.
    p.delete(c, &created.id, &inputs(&desired)).await.unwrap();
    assert_eq!(p.read(c, &created.id, &inputs(&desired)).await.unwrap(), None);
    p.delete(c, &created.id, &inputs(&desired)).await.unwrap();
}

#[tokio::test]
async fn route_table_route_and_association_life_cycles() {
    let moto = Moto::start();
    let aws = moto.aws();
    let r = "eu-west-1";
    let vpc_id = vpc(&aws, "vpc", "10.0.0.0/16", r).await;
    let sub = subnet(&aws, "a", &vpc_id, "10.0.1.0/24", "eu-west-1a", r).await;
    let igw = |name: &'static str| {
        let aws = aws.clone();
        let vpc_id = vpc_id.clone();
        async move {
            let u = urn(InternetGateway::TYPE, name);
            let mut g = InternetGateway::new(vpc_id.as_str()).in_region(r);
            if name == "spare" {
                g.vpc_id = None;
            }
            InternetGatewayProvider::new(&aws).create(ctx(&u), &inputs(&g)).await.unwrap().id
        }
    };
    let (igw1, igw2) = (igw("main").await, igw("spare").await);

    // The route table.
    let tables = RouteTableProvider::new(&aws);
    let tu = urn(RouteTable::TYPE, "public");
    let mut table = RouteTable::new(vpc_id.as_str()).in_region(r);
    table.tags.insert("tier".into(), "public".into());
    let rtb = tables.create(ctx(&tu), &inputs(&table)).await.unwrap();
    assert!(rtb.id.starts_with("rtb-"));
    assert_eq!(tables.read(ctx(&tu), &rtb.id, &inputs(&table)).await.unwrap().unwrap().inputs, inputs(&table));
    let mut retagged = table.clone();
    retagged.tags.insert("owner".into(), "ops".into());
    tables.update(ctx(&tu), &rtb.id, &inputs(&table), &inputs(&retagged)).await.unwrap();
    assert_eq!(tables.read(ctx(&tu), &rtb.id, &inputs(&retagged)).await.unwrap().unwrap().inputs, inputs(&retagged));
    assert_eq!(tables.find(ctx(&tu), &tables.identity(&inputs(&retagged))).await.unwrap().unwrap().id, rtb.id);
    assert_eq!(tables.read(ctx(&tu), &rtb.id, &json!({"region": r})).await.unwrap().unwrap().inputs, inputs(&retagged));
    assert!(RouteTable::REPLACE_ON_CHANGE.contains(&"vpc_id"));

    // A default route: created, read, its target replaced in place, found, imported, drift.
    let routes = RouteProvider::new(&aws);
    let ru = urn(Route::TYPE, "default");
    let route = Route::to_gateway(rtb.id.as_str(), "0.0.0.0/0", igw1.as_str()).in_region(r);
    let created = routes.create(ctx(&ru), &inputs(&route)).await.unwrap();
    assert_eq!(created.id, format!("{}_0.0.0.0/0", rtb.id));
    assert_eq!(routes.read(ctx(&ru), &created.id, &inputs(&route)).await.unwrap().unwrap().inputs, inputs(&route));
    let retargeted = Route::to_gateway(rtb.id.as_str(), "0.0.0.0/0", igw2.as_str()).in_region(r);
    routes.update(ctx(&ru), &created.id, &inputs(&route), &inputs(&retargeted)).await.unwrap();
    let seen = routes.read(ctx(&ru), &created.id, &inputs(&retargeted)).await.unwrap().unwrap();
    assert_eq!(seen.inputs, inputs(&retargeted));
    assert_eq!(routes.find(ctx(&ru), &routes.identity(&inputs(&retargeted))).await.unwrap().unwrap().id, created.id);
    assert_eq!(
        routes.read(ctx(&ru), &created.id, &json!({"region": r})).await.unwrap().unwrap().inputs,
        inputs(&retargeted)
    );
    let ec2 = moto.ec2(r);
    ec2.replace_route()
        .route_table_id(&rtb.id)
        .destination_cidr_block("0.0.0.0/0")
        .gateway_id(&igw1)
        .send()
        .await
        .unwrap();
    assert_eq!(
        routes.read(ctx(&ru), &created.id, &inputs(&retargeted)).await.unwrap().unwrap().inputs["gateway_id"],
        json!(igw1)
    );
    let mut two_targets = inputs(&route);
    two_targets["nat_gateway_id"] = json!("nat-123");
    let e = routes.create(ctx(&ru), &two_targets).await.unwrap_err().message;
    assert!(e.contains(ru.as_str()) && e.contains("exactly one"), "{e}");
    // Replace on a destination change.
    assert!(Route::REPLACE_ON_CHANGE.contains(&"destination_cidr_block"));
    let narrow = Route::to_gateway(rtb.id.as_str(), "192.168.0.0/16", igw1.as_str()).in_region(r);
    let replacement = routes.create(ctx(&ru), &inputs(&narrow)).await.unwrap();
    routes.delete(ctx(&ru), &created.id, &inputs(&route)).await.unwrap();
    assert_eq!(routes.read(ctx(&ru), &created.id, &inputs(&route)).await.unwrap(), None);
    routes.delete(ctx(&ru), &replacement.id, &inputs(&narrow)).await.unwrap();
    routes.delete(ctx(&ru), &replacement.id, &inputs(&narrow)).await.unwrap();
    assert_eq!(routes.read(ctx(&ru), &replacement.id, &inputs(&narrow)).await.unwrap(), None);

    // The association: id is the subnet's; a table change is in place with a new association id.
    let other = tables
        .create(ctx(&urn(RouteTable::TYPE, "other")), &inputs(&RouteTable::new(vpc_id.as_str()).in_region(r)))
        .await
        .unwrap();
    let assocs = RouteTableAssociationProvider::new(&aws);
    let au = urn(RouteTableAssociation::TYPE, "a");
    let assoc = RouteTableAssociation {
        region: Some(r.into()),
        route_table_id: rtb.id.as_str().into(),
        subnet_id: sub.as_str().into(),
    };
    let created = assocs.create(ctx(&au), &inputs(&assoc)).await.unwrap();
    assert_eq!(created.id, sub);
    let first_id = created.outputs["association_id"].as_str().unwrap().to_string();
    assert!(first_id.starts_with("rtbassoc-"), "{created:?}");
    let seen = assocs.read(ctx(&au), &created.id, &inputs(&assoc)).await.unwrap().unwrap();
    assert_eq!((seen.inputs, seen.outputs), (inputs(&assoc), created.outputs.clone()));
    let switched = RouteTableAssociation { route_table_id: other.id.as_str().into(), ..assoc.clone() };
    assert_eq!(RouteTableAssociation::REPLACE_ON_CHANGE, &["region", "subnet_id"]);
    let outputs = assocs.update(ctx(&au), &created.id, &inputs(&assoc), &inputs(&switched)).await.unwrap();
    // The move gives the association a new id: the output an update changes.
    assert_ne!(outputs["association_id"], json!(first_id));
    assert_eq!(RouteTableAssociation::UPDATABLE_OUTPUTS, &["association_id"]);
    let seen = assocs.read(ctx(&au), &created.id, &inputs(&switched)).await.unwrap().unwrap();
    assert_eq!((seen.inputs, &seen.outputs), (inputs(&switched), &outputs));
    assert_eq!(assocs.update(ctx(&au), &created.id, &inputs(&switched), &inputs(&switched)).await.unwrap(), outputs);
    assert_eq!(assocs.find(ctx(&au), &assocs.identity(&inputs(&switched))).await.unwrap().unwrap().id, sub);
    // Import by the association id too: the id read back is the subnet's.
    let by_assoc = assocs.read(ctx(&au), outputs["association_id"].as_str().unwrap(), &json!({"region": r})).await;
    assert_eq!(by_assoc.unwrap().unwrap().id, sub);
    // Drift: disassociated out of band.
    ec2.disassociate_route_table().association_id(outputs["association_id"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(assocs.read(ctx(&au), &created.id, &inputs(&switched)).await.unwrap(), None);
    let again = assocs.create(ctx(&au), &inputs(&switched)).await.unwrap();
    assocs.delete(ctx(&au), &again.id, &inputs(&switched)).await.unwrap();
    assocs.delete(ctx(&au), &again.id, &inputs(&switched)).await.unwrap();
    assert_eq!(assocs.read(ctx(&au), &again.id, &inputs(&switched)).await.unwrap(), None);

    tables.delete(ctx(&tu), &rtb.id, &inputs(&retagged)).await.unwrap();
    assert_eq!(tables.read(ctx(&tu), &rtb.id, &inputs(&retagged)).await.unwrap(), None);
    tables.delete(ctx(&tu), &rtb.id, &inputs(&retagged)).await.unwrap();
}

#[tokio::test]
async fn security_group_has_restricted_egress_and_rules_change_in_place() {
    let moto = Moto::start();
    let aws = moto.aws();
    let r = "us-east-1";
    let vpc_id = vpc(&aws, "vpc", "10.0.0.0/16", r).await;
    let groups = SecurityGroupProvider::new(&aws);
    let gu = urn(SecurityGroup::TYPE, "web");
    let mut group = SecurityGroup::new("web", "Web servers", vpc_id.as_str()).in_region(r);
    group.tags.insert("team".into(), "web".into());
    let sg = groups.create(ctx(&gu), &inputs(&group)).await.unwrap();
    assert_eq!(sg.outputs, json!({"id": sg.id, "name": "web"}));
    assert_eq!(groups.read(ctx(&gu), &sg.id, &inputs(&group)).await.unwrap().unwrap().inputs, inputs(&group));
    // Restricted egress: AWS's allow-all rule is gone.
    let ec2 = moto.ec2(r);
    let rules_of = |id: String| {
        let ec2 = ec2.clone();
        async move {
            let f = Filter::builder().name("group-id").values(id).build();
            ec2.describe_security_group_rules().filters(f).send().await.unwrap().security_group_rules().to_vec()
        }
    };
    assert!(rules_of(sg.id.clone()).await.is_empty());

    let mut retagged = group.clone();
    retagged.tags.insert("owner".into(), "ops".into());
    groups.update(ctx(&gu), &sg.id, &inputs(&group), &inputs(&retagged)).await.unwrap();
    assert_eq!(groups.read(ctx(&gu), &sg.id, &inputs(&retagged)).await.unwrap().unwrap().inputs, inputs(&retagged));
    assert_eq!(groups.find(ctx(&gu), &groups.identity(&inputs(&retagged))).await.unwrap().unwrap().id, sg.id);
    assert_eq!(groups.read(ctx(&gu), &sg.id, &json!({"region": r})).await.unwrap().unwrap().inputs, inputs(&retagged));
    assert!(SecurityGroup::DELETE_BEFORE_REPLACE && SecurityGroup::REPLACE_ON_CHANGE.contains(&"description"));

    // Drift: an allow-all egress rule and an SSH rule added by hand show as the group's
    // unmanaged rules, and the update back to the declared inputs revokes them.
    let all = aws_sdk_ec2::types::IpPermission::builder()
        .ip_protocol("-1")
        .ip_ranges(aws_sdk_ec2::types::IpRange::builder().cidr_ip("0.0.0.0/0").build())
        .build();
    ec2.authorize_security_group_egress().group_id(&sg.id).ip_permissions(all).send().await.unwrap();
    let ssh = crate::common::ssh_from_anywhere();
    ec2.authorize_security_group_ingress().group_id(&sg.id).ip_permissions(ssh).send().await.unwrap();
    let drifted = groups.read(ctx(&gu), &sg.id, &inputs(&retagged)).await.unwrap().unwrap();
    let stray = drifted.inputs["unmanaged_rules"].as_array().cloned().unwrap_or_default();
    let mut allows: Vec<(bool, &str)> =
        stray.iter().map(|r| (r["egress"].as_bool().unwrap(), r["allows"].as_str().unwrap())).collect();
    allows.sort();
    assert_eq!(allows, [(false, "tcp 22-22 0.0.0.0/0"), (true, "-1 0.0.0.0/0")], "{drifted:?}");
    groups.update(ctx(&gu), &sg.id, &drifted.inputs, &inputs(&retagged)).await.unwrap();
    assert_eq!(groups.read(ctx(&gu), &sg.id, &inputs(&retagged)).await.unwrap().unwrap().inputs, inputs(&retagged));
    assert!(rules_of(sg.id.clone()).await.is_empty());

    // An ingress rule: 443 from a CIDR.
    let ingress = SecurityGroupRuleProvider::ingress(&aws);
    let iu = urn(SecurityGroupIngressRule::TYPE, "https");
    let mut https = SecurityGroupIngressRule::cidr(sg.id.as_str(), "tcp", 443, 443, "10.0.0.0/8").in_region(r);
    https.description = "HTTPS from the office".into();
    https.tags.insert("team".into(), "web".into());
    let rule = ingress.create(ctx(&iu), &inputs(&https)).await.unwrap();
    assert!(rule.id.starts_with("sgr-"), "{}", rule.id);
    assert_eq!(rule.outputs, json!({"id": rule.id}));
    assert_eq!(ingress.read(ctx(&iu), &rule.id, &inputs(&https)).await.unwrap().unwrap().inputs, inputs(&https));

    // The port and description change in place: the same rule id, the group untouched.
    let mut alt = https.clone();
    alt.from_port = 8443;
    alt.to_port = 8443;
    alt.description = "Alternative HTTPS".into();
    assert!(!SecurityGroupIngressRule::REPLACE_ON_CHANGE.contains(&"from_port"));
    ingress.update(ctx(&iu), &rule.id, &inputs(&https), &inputs(&alt)).await.unwrap();
    assert_eq!(ingress.read(ctx(&iu), &rule.id, &inputs(&alt)).await.unwrap().unwrap().inputs, inputs(&alt));
    ingress.update(ctx(&iu), &rule.id, &inputs(&alt), &inputs(&alt)).await.unwrap();
    assert_eq!(ingress.find(ctx(&iu), &ingress.identity(&inputs(&alt))).await.unwrap().unwrap().id, rule.id);
    let imported = ingress.read(ctx(&iu), &rule.id, &json!({"region": r})).await.unwrap().unwrap();
    assert_eq!(imported.inputs, inputs(&alt));
    // The peer replaces the rule: create the new one, then revoke the old.
    assert!(SecurityGroupIngressRule::REPLACE_ON_CHANGE.contains(&"cidr_ipv4"));
    let wider = SecurityGroupIngressRule::cidr(sg.id.as_str(), "tcp", 8443, 8443, "172.16.0.0/12").in_region(r);
    let replacement = ingress.create(ctx(&iu), &inputs(&wider)).await.unwrap();
    ingress.delete(ctx(&iu), &rule.id, &inputs(&alt)).await.unwrap();
    assert_eq!(ingress.read(ctx(&iu), &rule.id, &inputs(&alt)).await.unwrap(), None);
    assert_eq!(ingress.read(ctx(&iu), &replacement.id, &inputs(&wider)).await.unwrap().unwrap().inputs, inputs(&wider));

    // Drift: the description changed out of band.
    ec2.update_security_group_rule_descriptions_ingress()
        .group_id(&sg.id)
        .ip_permissions(
            aws_sdk_ec2::types::IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(8443)
                .to_port(8443)
                .ip_ranges(
                    aws_sdk_ec2::types::IpRange::builder().cidr_ip("172.16.0.0/12").description("edited").build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let seen = ingress.read(ctx(&iu), &replacement.id, &inputs(&wider)).await.unwrap().unwrap();
    assert_eq!(seen.inputs["description"], json!("edited"));

    // An egress rule, and all-traffic rules with -1 ports.
    let egress = SecurityGroupRuleProvider::egress(&aws);
    let eu = urn(SecurityGroupEgressRule::TYPE, "out");
    let out = SecurityGroupEgressRule::cidr(sg.id.as_str(), "-1", -1, -1, "10.0.0.0/16").in_region(r);
    let out_rule = egress.create(ctx(&eu), &inputs(&out)).await.unwrap();
    assert_eq!(egress.read(ctx(&eu), &out_rule.id, &inputs(&out)).await.unwrap().unwrap().inputs, inputs(&out));
    let e = ingress.read(ctx(&iu), &out_rule.id, &json!({"region": r})).await.unwrap_err().message;
    assert!(e.contains("is not an ingress rule"), "{e}");
    let e = egress
        .create(
            ctx(&eu),
            &inputs(&SecurityGroupEgressRule::cidr(sg.id.as_str(), "-1", 0, 0, "10.0.0.0/16").in_region(r)),
        )
        .await;
    assert!(e.unwrap_err().message.contains("must be -1"));
    // A group that vanished after a moment's retries: a bounded wait, then the AWS error.
    let started = std::time::Instant::now();
    let lost = SecurityGroupEgressRule::cidr("sg-00000000000000000", "tcp", 1, 2, "10.0.0.0/16").in_region(r);
    let e = egress.create(ctx(&eu), &inputs(&lost)).await.unwrap_err().message;
    assert!(e.contains("InvalidGroup.NotFound") && e.contains("AuthorizeSecurityGroupEgress"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(30));

    egress.delete(ctx(&eu), &out_rule.id, &inputs(&out)).await.unwrap();
    egress.delete(ctx(&eu), &out_rule.id, &inputs(&out)).await.unwrap();
    assert_eq!(egress.read(ctx(&eu), &out_rule.id, &inputs(&out)).await.unwrap(), None);
    ingress.delete(ctx(&iu), &replacement.id, &inputs(&wider)).await.unwrap();
    assert!(rules_of(sg.id.clone()).await.is_empty());
    groups.delete(ctx(&gu), &sg.id, &inputs(&retagged)).await.unwrap();
    assert_eq!(groups.read(ctx(&gu), &sg.id, &inputs(&retagged)).await.unwrap(), None);
    groups.delete(ctx(&gu), &sg.id, &inputs(&retagged)).await.unwrap();
}

#[tokio::test]
async fn security_group_find_completes_an_interrupted_create() {
    let moto = Moto::start();
    let aws = moto.aws();
    let r = "eu-west-1";
    let vpc_id = vpc(&aws, "vpc", "10.0.0.0/16", r).await;
    let gu = urn(SecurityGroup::TYPE, "db");
    // A create that crashed after CreateSecurityGroup: tagged, still with AWS's egress rule.
    let ec2 = moto.ec2(r);
    let made = ec2
        .create_security_group()
        .group_name("db")
        .description("Databases")
        .vpc_id(&vpc_id)
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::SecurityGroup)
                .tags(aws_sdk_ec2::types::Tag::builder().key("cairn:urn").value(gu.as_str()).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let id = made.group_id().unwrap().to_string();
    let p = SecurityGroupProvider::new(&aws);
    let group = SecurityGroup::new("db", "Databases", vpc_id.as_str()).in_region(r);
    let found = p.find(ctx(&gu), &p.identity(&inputs(&group))).await.unwrap().expect("found");
    assert_eq!(found.id, id);
    let f = Filter::builder().name("group-id").values(&id).build();
    let rules = ec2.describe_security_group_rules().filters(f).send().await.unwrap();
    assert!(rules.security_group_rules().iter().all(|r| r.is_egress() != Some(true)), "{rules:?}");
}

#[tokio::test]
async fn vpc_endpoints_gateway_and_interface() {
    let moto = Moto::start();
    let aws = moto.aws();
    let r = "eu-west-1";
    let vpc_id = vpc(&aws, "vpc", "10.0.0.0/16", r).await;
    let a = subnet(&aws, "a", &vpc_id, "10.0.1.0/24", "eu-west-1a", r).await;
    let b = subnet(&aws, "b", &vpc_id, "10.0.2.0/24", "eu-west-1b", r).await;
    let tables = RouteTableProvider::new(&aws);
    let rtb1 = tables
        .create(ctx(&urn(RouteTable::TYPE, "one")), &inputs(&RouteTable::new(vpc_id.as_str()).in_region(r)))
        .await
        .unwrap()
        .id;
    let rtb2 = tables
        .create(ctx(&urn(RouteTable::TYPE, "two")), &inputs(&RouteTable::new(vpc_id.as_str()).in_region(r)))
        .await
        .unwrap()
        .id;
    let sg = SecurityGroupProvider::new(&aws)
        .create(
            ctx(&urn(SecurityGroup::TYPE, "ep")),
            &inputs(&SecurityGroup::new("ep", "Endpoints", vpc_id.as_str()).in_region(r)),
        )
        .await
        .unwrap()
        .id;
    let p = VpcEndpointProvider::new(&aws).with_wait(Duration::from_secs(20));

    // Gateway (S3): route tables change in place.
    let gu = urn(VpcEndpoint::TYPE, "s3");
    let mut s3 =
        VpcEndpoint::gateway(vpc_id.as_str(), "com.amazonaws.eu-west-1.s3", vec![rtb1.as_str().into()]).in_region(r);
    s3.tags.insert("team".into(), "net".into());
    let created = p.create(ctx(&gu), &inputs(&s3)).await.unwrap();
    assert!(created.id.starts_with("vpce-"));
    // The S3 prefix list of the region, as EC2 lists it: what egress rules to S3 name.
    let lists = moto.ec2(r).describe_prefix_lists().send().await.unwrap();
    let s3_list = lists.prefix_lists().iter().find(|l| l.prefix_list_name() == Some("com.amazonaws.eu-west-1.s3"));
    let s3_list = s3_list.and_then(|l| l.prefix_list_id()).unwrap().to_string();
    assert!(s3_list.starts_with("pl-"), "{s3_list}");
    assert_eq!(created.outputs, json!({"id": created.id, "prefix_list_id": s3_list}));
    assert_eq!(p.read(ctx(&gu), &created.id, &inputs(&s3)).await.unwrap().unwrap().inputs, inputs(&s3));
    let mut both = s3.clone();
    both.route_table_ids = vec![rtb2.as_str().into(), rtb1.as_str().into()];
    p.update(ctx(&gu), &created.id, &inputs(&s3), &inputs(&both)).await.unwrap();
    assert_eq!(p.read(ctx(&gu), &created.id, &inputs(&both)).await.unwrap().unwrap().inputs, inputs(&both));
    p.update(ctx(&gu), &created.id, &inputs(&both), &inputs(&both)).await.unwrap();
    assert_eq!(p.find(ctx(&gu), &p.identity(&inputs(&both))).await.unwrap().unwrap().id, created.id);
    let imported = p.read(ctx(&gu), &created.id, &json!({"region": r})).await.unwrap().unwrap();
    assert_eq!(imported.inputs["route_table_ids"].as_array().unwrap().len(), 2);
    // Drift: a route table removed out of band.
    let ec2 = moto.ec2(r);
    ec2.modify_vpc_endpoint().vpc_endpoint_id(&created.id).remove_route_table_ids(&rtb2).send().await.unwrap();
    let seen = p.read(ctx(&gu), &created.id, &inputs(&both)).await.unwrap().unwrap();
    assert_eq!(seen.inputs["route_table_ids"], json!([rtb1]));

    // Interface (ECR API): subnets and groups change in place.
    let iu = urn(VpcEndpoint::TYPE, "ecr");
    let ecr = VpcEndpoint::interface(
        vpc_id.as_str(),
        "com.amazonaws.eu-west-1.ecr.api",
        vec![a.as_str().into()],
        vec![sg.as_str().into()],
    )
    .in_region(r);
    let iface = p.create(ctx(&iu), &inputs(&ecr)).await.unwrap();
    assert_eq!(iface.outputs["prefix_list_id"], "", "an interface endpoint has no prefix list");
    assert_eq!(p.read(ctx(&iu), &iface.id, &inputs(&ecr)).await.unwrap().unwrap().inputs, inputs(&ecr));
    let wider = VpcEndpoint { subnet_ids: vec![a.as_str().into(), b.as_str().into()], ..ecr.clone() };
    p.update(ctx(&iu), &iface.id, &inputs(&ecr), &inputs(&wider)).await.unwrap();
    assert_eq!(p.read(ctx(&iu), &iface.id, &inputs(&wider)).await.unwrap().unwrap().inputs, inputs(&wider));
    assert!(VpcEndpoint::REPLACE_ON_CHANGE.contains(&"vpc_endpoint_type"));
    assert_eq!(wider.vpc_endpoint_type, EndpointType::Interface);
    let e =
        p.create(ctx(&iu), &inputs(&VpcEndpoint { route_table_ids: vec![rtb1.as_str().into()], ..ecr.clone() })).await;
    assert!(e.unwrap_err().message.contains("`route_table_ids`"));

    // Delete waits until gone; deleting again succeeds.
    for (u, id, i) in [(&gu, &created.id, inputs(&both)), (&iu, &iface.id, inputs(&wider))] {
        p.delete(ctx(u), id, &i).await.unwrap();
        assert_eq!(p.read(ctx(u), id, &i).await.unwrap(), None);
        p.delete(ctx(u), id, &i).await.unwrap();
    }
}

/// moto ignores `PrivateDnsEnabled` in `ModifyVpcEndpoint` (the product code sends it, as AWS
/// needs): the change reads back unchanged.
#[tokio::test]
async fn vpc_endpoint_private_dns_change_is_ignored_by_moto() {
    let moto = Moto::start();
    let aws = moto.aws();
    let r = "us-east-1";
    let vpc_id = vpc(&aws, "vpc", "10.0.0.0/16", r).await;
    let a = subnet(&aws, "a", &vpc_id, "10.0.1.0/24", "us-east-1a", r).await;
    let p = VpcEndpointProvider::new(&aws).with_wait(Duration::from_secs(20));
    let u = urn(VpcEndpoint::TYPE, "ecr");
    let ecr =
        VpcEndpoint::interface(vpc_id.as_str(), "com.amazonaws.us-east-1.ecr.api", vec![a.as_str().into()], vec![])
            .in_region(r);
    let created = p.create(ctx(&u), &inputs(&ecr)).await.unwrap();
    assert_eq!(p.read(ctx(&u), &created.id, &inputs(&ecr)).await.unwrap().unwrap().inputs, inputs(&ecr));
    let quiet = VpcEndpoint { private_dns_enabled: false, ..ecr.clone() };
    p.update(ctx(&u), &created.id, &inputs(&ecr), &inputs(&quiet)).await.unwrap();
    let seen = p.read(ctx(&u), &created.id, &inputs(&quiet)).await.unwrap().unwrap();
    assert_eq!(seen.inputs["private_dns_enabled"], json!(true), "moto now applies it: make this test a normal one");
}

const R: &str = "eu-west-1";

fn network(port: i32) -> Desired {
    let mut stack = Stack::new("net", "test");
    let mut vpc = Vpc::new("10.0.0.0/16").in_region(R);
    vpc.enable_dns_hostnames = true;
    let vpc = stack.add("vpc", vpc);
    let a = stack.add("subnet-a", Subnet::new(&vpc.id, "10.0.1.0/24", "eu-west-1a").in_region(R));
    let b = stack.add("subnet-b", Subnet::new(&vpc.id, "10.0.2.0/24", "eu-west-1b").in_region(R));
    let igw = stack.add("igw", InternetGateway::new(&vpc.id).in_region(R));
    let rtb = stack.add("public", RouteTable::new(&vpc.id).in_region(R));
    stack.add("default-route", Route::to_gateway(&rtb.id, "0.0.0.0/0", &igw.id).in_region(R));
    for (name, subnet) in [("assoc-a", &a), ("assoc-b", &b)] {
        stack.add(
            name,
            RouteTableAssociation {
                region: Some(R.into()),
                route_table_id: (&rtb.id).into(),
                subnet_id: (&subnet.id).into(),
            },
        );
    }
    let sg = stack.add("web", SecurityGroup::new("web", "Web servers", &vpc.id).in_region(R));
    stack.add("https-in", SecurityGroupIngressRule::cidr(&sg.id, "tcp", port, port, "203.0.113.0/24").in_region(R));
    stack.add("https-out", SecurityGroupEgressRule::cidr(&sg.id, "tcp", 443, 443, "0.0.0.0/0").in_region(R));
    stack.add("s3", VpcEndpoint::gateway(&vpc.id, "com.amazonaws.eu-west-1.s3", vec![(&rtb.id).into()]).in_region(R));
    stack.export("vpc_id", &vpc.id);
    stack.finish().expect("program")
}

#[tokio::test]
async fn network_stack_deploy_plan_again_refresh_change_a_rule_and_destroy() {
    let moto = Moto::start();
    let aws = moto.aws();
    let dir = tempfile::tempdir().expect("tempdir");
    let desired = network(443);
    let backend = FileBackend::new(dir.path().join("state"), &desired.stack);
    let engine = engine(&aws, &desired.stack);

    let (changed, state) = deploy(&engine, &backend, &desired).await;
    assert!(changed);
    assert_eq!(state.resources.len(), 12);
    assert!(state.pending.is_empty());
    let ec2 = moto.ec2(R);
    let vpc_id = state.outputs["vpc_id"].as_str().unwrap().to_string();
    let igws = ec2.describe_internet_gateways().internet_gateway_ids(
        state.resources.values().find(|r| r.type_token == InternetGateway::TYPE).unwrap().id.clone(),
    );
    let igws = igws.send().await.unwrap();
    assert_eq!(igws.internet_gateways()[0].attachments()[0].vpc_id(), Some(vpc_id.as_str()));
    let sg = state.resources.values().find(|r| r.type_token == SecurityGroup::TYPE).unwrap().clone();
    let rules_filter = Filter::builder().name("group-id").values(&sg.id).build();
    let rules = ec2.describe_security_group_rules().filters(rules_filter.clone()).send().await.unwrap();
    let egress: Vec<_> = rules.security_group_rules().iter().filter(|r| r.is_egress() == Some(true)).collect();
    assert_eq!(egress.len(), 1, "only the declared egress rule: {rules:?}");
    assert_eq!(egress[0].cidr_ipv4(), Some("0.0.0.0/0"));
    assert_eq!(egress[0].from_port(), Some(443));

    // Nothing to do the second time, and reality matches state.
    let mut session = backend.lock(LockInfo::new("test"), None).await.expect("lock");
    let prior = session.load().await.expect("load");
    let plan = cairn::plan::plan(&desired, &prior).expect("plan");
    assert!(!plan.has_changes(), "{plan:?}");
    let drift = engine.refresh(&prior).await.expect("refresh");
    assert!(drift.is_empty(), "{drift:?}");
    session.release().await.expect("release");

    // A rule's port: only that rule changes (in place), the group stays.
    let moved = network(8443);
    let mut session = backend.lock(LockInfo::new("test"), None).await.expect("lock");
    let prior = session.load().await.expect("load");
    let plan = cairn::plan::plan(&moved, &prior).expect("plan");
    session.release().await.expect("release");
    assert_eq!(plan.steps.len(), 1, "{plan:?}");
    assert_eq!(plan.count(Op::Update), 1, "{plan:?}");
    assert_eq!(plan.steps[0].type_token, SecurityGroupIngressRule::TYPE);
    let (_, state) = deploy(&engine, &backend, &moved).await;
    assert_eq!(state.resources.values().find(|r| r.type_token == SecurityGroup::TYPE).unwrap().id, sg.id);
    let rules = ec2.describe_security_group_rules().filters(rules_filter).send().await.unwrap();
    let ingress: Vec<_> = rules.security_group_rules().iter().filter(|r| r.is_egress() == Some(false)).collect();
    assert_eq!(ingress.len(), 1);
    assert_eq!((ingress[0].from_port(), ingress[0].to_port()), (Some(8443), Some(8443)));
    let (changed, _) = deploy(&engine, &backend, &moved).await;
    assert!(!changed);

    // Destroy: an empty program. Nothing of the stack is left in moto.
    let empty = Desired { stack: moved.stack.clone(), ..Desired::default() };
    let (changed, state) = deploy(&engine, &backend, &empty).await;
    assert!(changed);
    assert!(state.resources.is_empty() && state.retired.is_empty() && state.pending.is_empty());
    let ours = || Filter::builder().name("tag-key").values("cairn:urn").build();
    assert!(ec2.describe_vpcs().filters(ours()).send().await.unwrap().vpcs().is_empty());
    assert!(ec2.describe_subnets().filters(ours()).send().await.unwrap().subnets().is_empty());
    assert!(ec2.describe_internet_gateways().filters(ours()).send().await.unwrap().internet_gateways().is_empty());
    assert!(ec2.describe_route_tables().filters(ours()).send().await.unwrap().route_tables().is_empty());
    assert!(ec2.describe_security_groups().filters(ours()).send().await.unwrap().security_groups().is_empty());
    let endpoints = ec2.describe_vpc_endpoints().send().await.unwrap();
    assert!(
        endpoints.vpc_endpoints().iter().all(|e| e.state().is_some_and(|s| s.as_str().eq_ignore_ascii_case("deleted"))),
        "{endpoints:?}"
    );
    assert!(ec2.describe_vpcs().vpc_ids(&vpc_id).send().await.is_err());
}

/// The zones of a region, looked up: sorted, the excluded left out, at most `limit`; asking
/// for more than the region has is an error naming both counts.
#[tokio::test]
async fn availability_zones_are_looked_up_per_region() {
    use cairn_aws::ec2::{AvailabilityZones, AvailabilityZonesProvider};
    let moto = crate::common::Moto::start();
    let p = AvailabilityZonesProvider::new(&moto.aws());
    let u = crate::common::urn(AvailabilityZones::TYPE, "zones");
    let c = crate::common::ctx(&u);
    let mut first_two = AvailabilityZones::first(2).in_region("eu-west-1");
    let created = p.create(c, &serde_json::to_value(&first_two).unwrap()).await.unwrap();
    assert_eq!(created.id, "eu-west-1");
    assert_eq!(created.outputs["names"], serde_json::json!(["eu-west-1a", "eu-west-1b"]));
    assert_eq!(created.outputs["zone_ids"].as_array().map(Vec::len), Some(2));
    let seen = p.read(c, &created.id, &serde_json::to_value(&first_two).unwrap()).await.unwrap().unwrap();
    assert_eq!(seen.inputs, serde_json::to_value(&first_two).unwrap(), "read back as declared: no drift");
    assert_eq!(seen.outputs, created.outputs);

    first_two.exclude_names.push("eu-west-1a".into());
    let out =
        p.update(c, &created.id, &serde_json::json!({}), &serde_json::to_value(&first_two).unwrap()).await.unwrap();
    assert_eq!(out["names"], serde_json::json!(["eu-west-1b", "eu-west-1c"]));

    let all = p.create(c, &serde_json::to_value(AvailabilityZones::default().in_region("us-east-1")).unwrap()).await;
    let names = all.unwrap().outputs["names"].as_array().unwrap().clone();
    assert!(names.len() >= 3 && names.windows(2).all(|w| w[0].as_str() < w[1].as_str()), "{names:?}");

    let e = p.create(c, &serde_json::to_value(AvailabilityZones::first(50).in_region("eu-west-1")).unwrap()).await;
    let e = e.unwrap_err().message;
    assert!(e.contains(u.as_str()) && e.contains("fewer than the 50 asked for"), "{e}");
}
