//! Route 53 against moto: hosted zones, zone lookups, record sets, health checks, and a DNS
//! stack (with a CloudWatch alarm and dashboard) end to end through the engine.

use std::collections::BTreeMap;

use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType, TagResourceType,
};
use cairn::plan::Op;
use cairn::provider::Provider;
use cairn::stack::Desired;
use cairn::state::file::FileBackend;
use cairn::state::{LockInfo, StateBackend};
use cairn::{Resource, Stack};
use cairn_aws::cloudwatch::{Dashboard, MetricAlarm};
use cairn_aws::route53::{
    HealthCheck, HealthCheckProvider, HostedZone, HostedZoneLookup, HostedZoneLookupProvider, HostedZoneProvider,
    RecordSet, RecordSetProvider, Routing,
};
use cairn_aws::sns::Topic;
use serde_json::{json, Value};

use crate::cloudwatch::CborProxy;
use crate::common::{ctx, urn, Moto};
use crate::engine::{deploy, engine};

fn inputs<T: serde::Serialize>(r: &T) -> Value {
    serde_json::to_value(r).unwrap()
}

fn zone(name: &str) -> HostedZone {
    let mut z = HostedZone::new(name);
    z.comment = "Managed by cairn".into();
    z.tags.insert("team".into(), "dns".into());
    z
}

fn a_record(zone_id: &str, name: &str, ttl: u32, values: &[&str]) -> RecordSet {
    RecordSet::new(zone_id, name, "A", ttl, values.iter().map(|v| (*v).into()).collect())
}

/// A record set out of band, through the SDK.
async fn put_record(moto: &Moto, zone_id: &str, action: ChangeAction, name: &str, value: &str) {
    let set = ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::A)
        .ttl(300)
        .resource_records(ResourceRecord::builder().value(value).build().unwrap())
        .build()
        .unwrap();
    let batch = ChangeBatch::builder()
        .changes(Change::builder().action(action).resource_record_set(set).build().unwrap())
        .build()
        .unwrap();
    moto.route53().change_resource_record_sets().hosted_zone_id(zone_id).change_batch(batch).send().await.unwrap();
}

#[tokio::test]
async fn hosted_zone_create_read_update_replace_delete() {
    let moto = Moto::start();
    let p = HostedZoneProvider::new(&moto.aws());
    let u = urn(HostedZone::TYPE, "main");
    let c = ctx(&u);
    let desired = zone("example.com");
    let created = p.create(c, &inputs(&desired)).await.unwrap();
    assert!(!created.id.starts_with('/') && !created.id.is_empty(), "{}", created.id);
    assert_eq!(created.outputs["zone_id"], json!(created.id));
    assert_eq!(created.outputs["name_servers"].as_array().map(Vec::len), Some(4), "{}", created.outputs);
    let seen = p.read(c, &created.id, &inputs(&desired)).await.unwrap().unwrap();
    assert_eq!(seen.inputs, inputs(&desired));
    assert_eq!(seen.outputs, created.outputs);
    // Tagged with cairn's tags besides the user's.
    let tags = moto
        .route53()
        .list_tags_for_resource()
        .resource_type(TagResourceType::Hostedzone)
        .resource_id(&created.id)
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = tags.resource_tag_set().unwrap().tags().iter().filter_map(|t| t.key()).collect();
    assert!(keys.contains(&"cairn:urn") && keys.contains(&"cairn:stack") && keys.contains(&"team"), "{keys:?}");

    // Comment, tags and force_destroy change in place; the name is read back as spelled.
    let mut changed = desired.clone();
    changed.name = "Example.COM.".into();
    changed.comment = String::new();
    changed.force_destroy = true;
    changed.tags.clear();
    changed.tags.insert("owner".into(), "ops".into());
    let outputs = p.update(c, &created.id, &inputs(&desired), &inputs(&changed)).await.unwrap();
    assert_eq!(outputs, created.outputs);
    assert_eq!(p.read(c, &created.id, &inputs(&changed)).await.unwrap().unwrap().inputs, inputs(&changed));
    // A second apply is a no-op: what read reports is what was declared.
    assert_eq!(p.update(c, &created.id, &inputs(&changed), &inputs(&changed)).await.unwrap(), created.outputs);

    // A new name replaces the zone: create the new one first, then delete the old (the default).
    assert!(!HostedZone::DELETE_BEFORE_REPLACE && HostedZone::REPLACE_ON_CHANGE.contains(&"name"));
    let renamed = zone("example.org");
    let replacement = p.create(c, &inputs(&renamed)).await.unwrap();
    assert_ne!(replacement.id, created.id);
    p.delete(c, &created.id, &inputs(&changed)).await.unwrap();
    assert_eq!(p.read(c, &created.id, &inputs(&changed)).await.unwrap(), None);
    assert_eq!(p.read(c, &replacement.id, &inputs(&renamed)).await.unwrap().unwrap().inputs, inputs(&renamed));

    p.delete(c, &replacement.id, &inputs(&renamed)).await.unwrap();
    assert_eq!(p.read(c, &replacement.id, &inputs(&renamed)).await.unwrap(), None);
    p.delete(c, &replacement.id, &inputs(&renamed)).await.unwrap();

    let mut bad = inputs(&desired);
    bad["vpc_id"] = json!("vpc-123");
    let e = p.create(c, &bad).await.unwrap_err().message;
    assert!(e.contains(u.as_str()) && e.contains("`vpc_region`"), "{e}");
}

#[tokio::test]
async fn hosted_zone_find_import_drift_and_force_destroy() {
    let moto = Moto::start();
    let p = HostedZoneProvider::new(&moto.aws());
    let u = urn(HostedZone::TYPE, "main");
    let desired = zone("shop.example");
    let created = p.create(ctx(&u), &inputs(&desired)).await.unwrap();

    // Found by name and its URN tag; not by another resource.
    let found = p.find(ctx(&u), &p.identity(&inputs(&desired))).await.unwrap().expect("found by tag");
    assert_eq!(found.id, created.id);
    assert_eq!(found.inputs, inputs(&desired));
    let other = urn(HostedZone::TYPE, "other");
    assert_eq!(p.find(ctx(&other), &p.identity(&inputs(&desired))).await.unwrap(), None);
    // A create that crashed before tagging left an untagged zone: its caller reference names
    // this resource.
    moto.route53()
        .change_tags_for_resource()
        .resource_type(TagResourceType::Hostedzone)
        .resource_id(&created.id)
        .remove_tag_keys("cairn:urn")
        .remove_tag_keys("cairn:stack")
        .send()
        .await
        .unwrap();
    let found = p.find(ctx(&u), &p.identity(&inputs(&desired))).await.unwrap().expect("found by caller reference");
    assert_eq!(found.id, created.id);
    assert_eq!(p.find(ctx(&other), &p.identity(&inputs(&desired))).await.unwrap(), None);

    // Import by id (with or without the `/hostedzone/` prefix): the canonical name.
    let seen = p.read(ctx(&u), &format!("/hostedzone/{}", created.id), &json!({})).await.unwrap().unwrap();
    assert_eq!(seen.id, created.id);
    let mut imported = inputs(&desired);
    imported["name"] = json!("shop.example.");
    assert_eq!(seen.inputs, imported);

    // Drift.
    moto.route53().update_hosted_zone_comment().id(&created.id).comment("changed").send().await.unwrap();
    let seen = p.read(ctx(&u), &created.id, &inputs(&desired)).await.unwrap().unwrap();
    assert_eq!(seen.inputs["comment"], json!("changed"));

    // A zone with records cannot be deleted, unless `force_destroy` says so.
    put_record(&moto, &created.id, ChangeAction::Create, "www.shop.example.", "192.0.2.10").await;
    put_record(&moto, &created.id, ChangeAction::Create, "api.shop.example.", "192.0.2.11").await;
    let e = p.delete(ctx(&u), &created.id, &inputs(&desired)).await.unwrap_err().message;
    assert!(e.contains(u.as_str()) && e.contains("HostedZoneNotEmpty") && e.contains("force_destroy"), "{e}");
    let mut force = desired.clone();
    force.force_destroy = true;
    p.delete(ctx(&u), &created.id, &inputs(&force)).await.unwrap();
    assert_eq!(p.read(ctx(&u), &created.id, &inputs(&force)).await.unwrap(), None);
}

#[tokio::test]
async fn private_hosted_zone_in_a_vpc_of_another_region() {
    let moto = Moto::start();
    let p = HostedZoneProvider::new(&moto.aws());
    let vpc = moto.ec2("eu-west-1").create_vpc().cidr_block("10.1.0.0/16").send().await.unwrap();
    let vpc_id = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    let u = urn(HostedZone::TYPE, "internal");
    let mut desired = zone("internal.example");
    desired.vpc_id = Some(vpc_id.clone().into());
    desired.vpc_region = Some("eu-west-1".into());
    let created = p.create(ctx(&u), &inputs(&desired)).await.unwrap();
    assert_eq!(created.outputs["name_servers"], json!([]));
    let seen = p.read(ctx(&u), &created.id, &inputs(&desired)).await.unwrap().unwrap();
    assert_eq!(seen.inputs, inputs(&desired));
    // A public zone of the same name is another zone: find tells them apart by VPC.
    let public = p.create(ctx(&u), &inputs(&zone("internal.example"))).await.unwrap();
    assert_eq!(p.find(ctx(&u), &p.identity(&inputs(&desired))).await.unwrap().unwrap().id, created.id);
    assert_eq!(p.find(ctx(&u), &p.identity(&inputs(&zone("internal.example")))).await.unwrap().unwrap().id, public.id);
    assert!(HostedZone::REPLACE_ON_CHANGE.contains(&"vpc_id"));
    p.delete(ctx(&u), &created.id, &inputs(&desired)).await.unwrap();
    p.delete(ctx(&u), &public.id, &json!({})).await.unwrap();
    assert_eq!(p.read(ctx(&u), &created.id, &json!({})).await.unwrap(), None);
}

#[tokio::test]
async fn hosted_zone_lookup_finds_one_zone_or_fails_clearly() {
    let moto = Moto::start();
    let r53 = moto.route53();
    let zone_id = |o: &aws_sdk_route53::operation::create_hosted_zone::CreateHostedZoneOutput| {
        o.hosted_zone().unwrap().id().trim_start_matches("/hostedzone/").to_string()
    };
    let public = r53.create_hosted_zone().name("example.net").caller_reference("a").send().await.unwrap();
    let public_id = zone_id(&public);
    let p = HostedZoneLookupProvider::new(&moto.aws());
    let u = urn(HostedZoneLookup::TYPE, "net");
    let c = ctx(&u);
    let lookup = HostedZoneLookup::new("Example.net");
    let created = p.create(c, &inputs(&lookup)).await.unwrap();
    assert_eq!(created.id, public_id);
    assert_eq!(created.outputs, json!({"zone_id": public_id, "name": "example.net."}));
    let seen = p.read(c, &created.id, &inputs(&lookup)).await.unwrap().unwrap();
    assert_eq!(seen.inputs, inputs(&lookup));
    assert_eq!(p.update(c, &created.id, &inputs(&lookup), &inputs(&lookup)).await.unwrap(), created.outputs);
    assert_eq!(p.find(c, &p.identity(&inputs(&lookup))).await.unwrap().unwrap().id, public_id);
    // Import by zone id.
    let imported = p.read(c, &public_id, &json!({})).await.unwrap().unwrap();
    assert_eq!(imported.inputs, json!({"name": "example.net.", "private_zone": false}));

    // None of that name: a clear error naming the zone.
    let e = p.create(c, &inputs(&HostedZoneLookup::new("absent.example"))).await.unwrap_err().message;
    assert!(e.contains(u.as_str()) && e.contains("no hosted zone is named `absent.example.`"), "{e}");
    // Two of that name: ambiguous, unless `private_zone` chooses.
    let vpc = moto.ec2("us-east-1").create_vpc().cidr_block("10.0.0.0/16").send().await.unwrap();
    let private = r53
        .create_hosted_zone()
        .name("example.net")
        .caller_reference("b")
        .hosted_zone_config(aws_sdk_route53::types::HostedZoneConfig::builder().private_zone(true).build())
        .vpc(
            aws_sdk_route53::types::Vpc::builder()
                .vpc_id(vpc.vpc().unwrap().vpc_id().unwrap())
                .vpc_region(aws_sdk_route53::types::VpcRegion::UsEast1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let e = p.create(c, &inputs(&lookup)).await.unwrap_err().message;
    assert!(e.contains("2 hosted zones are named `example.net.`") && e.contains("private_zone"), "{e}");
    let mut only_private = lookup.clone();
    only_private.private_zone = Some(true);
    assert_eq!(p.create(c, &inputs(&only_private)).await.unwrap().id, zone_id(&private));

    // Deleting a lookup leaves the zone alone; reading it after the zone is gone: None.
    p.delete(c, &created.id, &inputs(&lookup)).await.unwrap();
    r53.get_hosted_zone().id(&public_id).send().await.expect("the zone is still there");
    r53.delete_hosted_zone().id(&public_id).send().await.unwrap();
    let mut only_public = lookup.clone();
    only_public.private_zone = Some(false);
    assert_eq!(p.read(c, &public_id, &inputs(&only_public)).await.unwrap(), None);
}

#[tokio::test]
async fn record_set_create_read_update_replace_delete() {
    let moto = Moto::start();
    let aws = moto.aws();
    let zones = HostedZoneProvider::new(&aws);
    let zu = urn(HostedZone::TYPE, "main");
    let z = zones.create(ctx(&zu), &inputs(&zone("example.com"))).await.unwrap();
    let zone_id = z.id.clone();

    let p = RecordSetProvider::new(&aws);
    let u = urn(RecordSet::TYPE, "www");
    let c = ctx(&u);
    let desired = a_record(&zone_id, "www.example.com", 300, &["192.0.2.1", "192.0.2.2"]);
    let created = p.create(c, &inputs(&desired)).await.unwrap();
    assert_eq!(created.id, format!("{zone_id}_www.example.com_A"));
    assert_eq!(created.outputs, json!({"fqdn": "www.example.com."}));
    let seen = p.read(c, &created.id, &inputs(&desired)).await.unwrap().unwrap();
    assert_eq!(seen.inputs, inputs(&desired));

    // TTL and values change in place (UPSERT).
    let changed = a_record(&zone_id, "www.example.com", 60, &["192.0.2.3"]);
    assert_eq!(p.update(c, &created.id, &inputs(&desired), &inputs(&changed)).await.unwrap(), created.outputs);
    assert_eq!(p.read(c, &created.id, &inputs(&changed)).await.unwrap().unwrap().inputs, inputs(&changed));
    assert_eq!(p.update(c, &created.id, &inputs(&changed), &inputs(&changed)).await.unwrap(), created.outputs);

    // A new name replaces it, deleting the old one first.
    assert!(RecordSet::DELETE_BEFORE_REPLACE && RecordSet::REPLACE_ON_CHANGE.contains(&"name"));
    p.delete(c, &created.id, &inputs(&changed)).await.unwrap();
    assert_eq!(p.read(c, &created.id, &inputs(&changed)).await.unwrap(), None);
    let renamed = a_record(&zone_id, "web.example.com.", 60, &["192.0.2.3"]);
    let replacement = p.create(c, &inputs(&renamed)).await.unwrap();
    assert_eq!(replacement.id, format!("{zone_id}_web.example.com_A"));
    assert_eq!(p.read(c, &replacement.id, &inputs(&renamed)).await.unwrap().unwrap().inputs, inputs(&renamed));

    p.delete(c, &replacement.id, &inputs(&renamed)).await.unwrap();
    assert_eq!(p.read(c, &replacement.id, &inputs(&renamed)).await.unwrap(), None);
    p.delete(c, &replacement.id, &inputs(&renamed)).await.unwrap();

    let mut bad = inputs(&renamed);
    bad["routing"] = json!({"policy": "weighted", "set_identifier": "a"});
    let e = p.create(c, &bad).await.unwrap_err().message;
    assert!(e.contains(u.as_str()) && e.contains("`routing.weight`"), "{e}");
}

#[tokio::test]
async fn weighted_latency_and_alias_record_sets() {
    let moto = Moto::start();
    let aws = moto.aws();
    let zones = HostedZoneProvider::new(&aws);
    let zu = urn(HostedZone::TYPE, "main");
    let zone_id = zones.create(ctx(&zu), &inputs(&zone("example.com"))).await.unwrap().id;
    let p = RecordSetProvider::new(&aws);

    // A weighted pair under one name, told apart by set identifier.
    let weighted = |set: &str, weight: u32, value: &str| {
        let mut r = a_record(&zone_id, "api.example.com", 60, &[value]);
        r.routing = Routing::Weighted { set_identifier: set.into(), weight };
        r
    };
    let (bu, gu) = (urn(RecordSet::TYPE, "blue"), urn(RecordSet::TYPE, "green"));
    let blue = weighted("blue", 90, "192.0.2.1");
    let green = weighted("green", 10, "192.0.2.2");
    let b = p.create(ctx(&bu), &inputs(&blue)).await.unwrap();
    let g = p.create(ctx(&gu), &inputs(&green)).await.unwrap();
    assert_eq!(b.id, format!("{zone_id}_api.example.com_A_blue"));
    assert_eq!(p.read(ctx(&bu), &b.id, &inputs(&blue)).await.unwrap().unwrap().inputs, inputs(&blue));
    assert_eq!(p.read(ctx(&gu), &g.id, &inputs(&green)).await.unwrap().unwrap().inputs, inputs(&green));
    // The weight changes in place.
    let heavier = weighted("green", 50, "192.0.2.2");
    p.update(ctx(&gu), &g.id, &inputs(&green), &inputs(&heavier)).await.unwrap();
    assert_eq!(p.read(ctx(&gu), &g.id, &inputs(&heavier)).await.unwrap().unwrap().inputs, inputs(&heavier));
    assert_eq!(p.read(ctx(&bu), &b.id, &inputs(&blue)).await.unwrap().unwrap().inputs, inputs(&blue));
    // The set identifier and the policy cannot change in place.
    assert!(RecordSet::REPLACE_ON_CHANGE.contains(&"routing.set_identifier"));
    assert!(RecordSet::REPLACE_ON_CHANGE.contains(&"routing.policy"));
    assert!(p.update(ctx(&gu), &g.id, &inputs(&heavier), &inputs(&weighted("teal", 50, "192.0.2.2"))).await.is_err());

    // Latency records, in two regions.
    let latency = |region: &str, value: &str| {
        let mut r = a_record(&zone_id, "edge.example.com", 60, &[value]);
        r.routing = Routing::Latency { set_identifier: region.into(), region: region.into() };
        r
    };
    let (eu, us) = (urn(RecordSet::TYPE, "edge-eu"), urn(RecordSet::TYPE, "edge-us"));
    let east = p.create(ctx(&us), &inputs(&latency("us-east-1", "192.0.2.20"))).await.unwrap();
    let west = p.create(ctx(&eu), &inputs(&latency("eu-west-1", "192.0.2.21"))).await.unwrap();
    let seen = p.read(ctx(&eu), &west.id, &inputs(&latency("eu-west-1", "192.0.2.21"))).await.unwrap().unwrap();
    assert_eq!(seen.inputs, inputs(&latency("eu-west-1", "192.0.2.21")));
    assert_eq!(
        seen.inputs["routing"],
        json!({"policy": "latency", "set_identifier": "eu-west-1", "region": "eu-west-1"})
    );

    // An alias to another record of the zone.
    let au = urn(RecordSet::TYPE, "alias");
    let mut alias = RecordSet::new(&*zone_id, "www.example.com", "A", 0, vec![]);
    alias.ttl = None;
    alias.alias = Some(cairn_aws::route53::Alias {
        dns_name: "edge.example.com".into(),
        hosted_zone_id: zone_id.clone().into(),
        evaluate_target_health: false,
    });
    let a = p.create(ctx(&au), &inputs(&alias)).await.unwrap();
    assert_eq!(p.read(ctx(&au), &a.id, &inputs(&alias)).await.unwrap().unwrap().inputs, inputs(&alias));

    // Import by id: names in canonical form.
    let imported = p.read(ctx(&bu), &b.id, &json!({})).await.unwrap().unwrap();
    let mut expected = inputs(&blue);
    expected["name"] = json!("api.example.com.");
    assert_eq!(imported.inputs, expected);
    // Found (records cannot be tagged) by zone, name, type and set identifier.
    assert_eq!(p.find(ctx(&bu), &p.identity(&inputs(&blue))).await.unwrap().unwrap().id, b.id);

    for (u, id, r) in [(&au, &a.id, &alias), (&eu, &west.id, &latency("eu-west-1", "192.0.2.21"))] {
        p.delete(ctx(u), id, &inputs(r)).await.unwrap();
        assert_eq!(p.read(ctx(u), id, &json!({})).await.unwrap(), None);
    }
    p.delete(ctx(&us), &east.id, &json!({})).await.unwrap();
    p.delete(ctx(&gu), &g.id, &json!({})).await.unwrap();
    assert_eq!(p.read(ctx(&gu), &g.id, &json!({})).await.unwrap(), None);
    assert_eq!(p.read(ctx(&bu), &b.id, &inputs(&blue)).await.unwrap().unwrap().inputs, inputs(&blue));
    p.delete(ctx(&bu), &b.id, &json!({})).await.unwrap();
    assert_eq!(p.read(ctx(&bu), &b.id, &json!({})).await.unwrap(), None);
}

#[tokio::test]
async fn record_set_drift_and_create_of_an_existing_record_fails_moto_refuses_only_identical_ones() {
    let moto = Moto::start();
    let aws = moto.aws();
    let zones = HostedZoneProvider::new(&aws);
    let zu = urn(HostedZone::TYPE, "main");
    let zone_id = zones.create(ctx(&zu), &inputs(&zone("example.com"))).await.unwrap().id;
    let p = RecordSetProvider::new(&aws);
    let u = urn(RecordSet::TYPE, "www");
    let desired = a_record(&zone_id, "www.example.com", 300, &["192.0.2.1"]);
    let created = p.create(ctx(&u), &inputs(&desired)).await.unwrap();

    // CREATE refuses a record set that exists (moto only refuses an identical one, which is
    // what this retries).
    let e = p.create(ctx(&u), &inputs(&desired)).await.unwrap_err().message;
    assert!(e.contains(u.as_str()) && e.contains("ChangeResourceRecordSets"), "{e}");

    // Drift: changed out of band.
    put_record(&moto, &zone_id, ChangeAction::Upsert, "www.example.com.", "198.51.100.7").await;
    let seen = p.read(ctx(&u), &created.id, &inputs(&desired)).await.unwrap().unwrap();
    assert_eq!(seen.inputs["records"], json!(["198.51.100.7"]));
    // Delete removes what is there now.
    p.delete(ctx(&u), &created.id, &inputs(&desired)).await.unwrap();
    assert_eq!(p.read(ctx(&u), &created.id, &inputs(&desired)).await.unwrap(), None);
}

fn check(fqdn: &str) -> HealthCheck {
    let mut h = HealthCheck::https(fqdn, "/health");
    h.tags.insert("team".into(), "dns".into());
    h
}

#[tokio::test]
async fn health_check_create_read_update_replace_delete() {
    let moto = Moto::start();
    let p = HealthCheckProvider::new(&moto.aws());
    let u = urn(HealthCheck::TYPE, "api");
    let c = ctx(&u);
    let desired = check("api.example.com");
    let created = p.create(c, &inputs(&desired)).await.unwrap();
    assert_eq!(created.outputs, json!({"id": created.id}));
    let seen = p.read(c, &created.id, &inputs(&desired)).await.unwrap().unwrap();
    assert_eq!(seen.inputs, inputs(&desired));

    // Failure threshold, port, path, name and tags change in place (UpdateHealthCheck).
    let mut changed = check("API.example.com.");
    changed.failure_threshold = 5;
    changed.port = 8443;
    changed.resource_path = Some("/ready".into());
    changed.tags = BTreeMap::from([("owner".to_string(), "ops".into())]);
    p.update(c, &created.id, &inputs(&desired), &inputs(&changed)).await.unwrap();
    assert_eq!(p.read(c, &created.id, &inputs(&changed)).await.unwrap().unwrap().inputs, inputs(&changed));
    assert_eq!(p.update(c, &created.id, &inputs(&changed), &inputs(&changed)).await.unwrap(), created.outputs);

    // The request interval replaces it: the new one first, then the old one goes.
    assert!(!HealthCheck::DELETE_BEFORE_REPLACE && HealthCheck::REPLACE_ON_CHANGE.contains(&"request_interval"));
    let mut fast = changed.clone();
    fast.request_interval = 10;
    assert!(p.update(c, &created.id, &inputs(&changed), &inputs(&fast)).await.is_err());
    let replacement = p.create(c, &inputs(&fast)).await.unwrap();
    assert_ne!(replacement.id, created.id);
    p.delete(c, &created.id, &inputs(&changed)).await.unwrap();
    assert_eq!(p.read(c, &created.id, &inputs(&changed)).await.unwrap(), None);
    assert_eq!(p.read(c, &replacement.id, &inputs(&fast)).await.unwrap().unwrap().inputs, inputs(&fast));

    p.delete(c, &replacement.id, &inputs(&fast)).await.unwrap();
    assert_eq!(p.read(c, &replacement.id, &inputs(&fast)).await.unwrap(), None);
    p.delete(c, &replacement.id, &inputs(&fast)).await.unwrap();

    let mut bad = inputs(&desired);
    bad["failure_threshold"] = json!(0);
    let e = p.create(c, &bad).await.unwrap_err().message;
    assert!(e.contains(u.as_str()) && e.contains("`failure_threshold` must be 1 to 10"), "{e}");
}

#[tokio::test]
async fn health_check_find_import_and_drift() {
    let moto = Moto::start();
    let p = HealthCheckProvider::new(&moto.aws());
    let u = urn(HealthCheck::TYPE, "api");
    let mut desired = check("api.example.com");
    desired.check_type = "TCP".into();
    desired.resource_path = None;
    desired.fqdn = None;
    desired.ip_address = Some("192.0.2.44".into());
    desired.port = 5432;
    let created = p.create(ctx(&u), &inputs(&desired)).await.unwrap();
    assert_eq!(p.read(ctx(&u), &created.id, &inputs(&desired)).await.unwrap().unwrap().inputs, inputs(&desired));

    // Found by its caller reference and URN tag; not by another resource.
    let identity = p.identity(&inputs(&desired));
    assert_eq!(p.find(ctx(&u), &identity).await.unwrap().unwrap().id, created.id);
    let other = urn(HealthCheck::TYPE, "other");
    assert_eq!(p.find(ctx(&other), &identity).await.unwrap(), None);
    // Untagged (a create that crashed before tagging): still recognised by its reference.
    moto.route53()
        .change_tags_for_resource()
        .resource_type(TagResourceType::Healthcheck)
        .resource_id(&created.id)
        .remove_tag_keys("cairn:urn")
        .send()
        .await
        .unwrap();
    assert_eq!(p.find(ctx(&u), &identity).await.unwrap().unwrap().id, created.id);
    assert_eq!(p.find(ctx(&other), &identity).await.unwrap(), None);

    // Import by id.
    let imported = p.read(ctx(&u), &created.id, &json!({})).await.unwrap().unwrap();
    assert_eq!(imported.inputs, inputs(&desired));

    // Drift.
    moto.route53().update_health_check().health_check_id(&created.id).failure_threshold(9).send().await.unwrap();
    let seen = p.read(ctx(&u), &created.id, &inputs(&desired)).await.unwrap().unwrap();
    assert_eq!(seen.inputs["failure_threshold"], json!(9));
    moto.route53().delete_health_check().health_check_id(&created.id).send().await.unwrap();
    assert_eq!(p.read(ctx(&u), &created.id, &inputs(&desired)).await.unwrap(), None);
    p.delete(ctx(&u), &created.id, &inputs(&desired)).await.unwrap();
}

/// A DNS stack: a zone, a weighted pair of records behind a health check, an alarm on the
/// health check that notifies an SNS topic, and a dashboard.
fn dns_program(green_weight: u32, threshold: f64) -> Desired {
    let mut stack = Stack::new("dns", "test");
    let z = stack.add("zone", zone("shop.example"));
    let hc = stack.add("health", check("api.shop.example"));
    for (name, weight, value) in [("blue", 100 - green_weight, "192.0.2.1"), ("green", green_weight, "192.0.2.2")] {
        let mut r = RecordSet::new(&z.zone_id, "api.shop.example", "A", 60, vec![value.into()]);
        r.routing = Routing::Weighted { set_identifier: name.into(), weight };
        r.health_check_id = Some(hc.id.clone().into());
        stack.add(name, r);
    }
    let topic = stack.add("alerts", Topic::new("dns-alerts").in_region("us-east-1"));
    let mut alarm = MetricAlarm::new("api-health", "AWS/Route53", "HealthCheckStatus", "Minimum", 60, threshold)
        .in_region("us-east-1");
    alarm.comparison_operator = "LessThanThreshold".into();
    alarm.dimensions.insert("HealthCheckId".into(), hc.id.clone().into());
    alarm.alarm_actions = vec![topic.arn.clone().into()];
    alarm.ok_actions = vec![topic.arn.clone().into()];
    alarm.tags.insert("team".into(), "dns".into());
    stack.add("alarm", alarm);
    let body = r#"{"widgets": [{"type": "text", "x": 0, "y": 0, "width": 6, "height": 2, "properties": {"markdown": "api"}}]}"#;
    stack.add("board", Dashboard::new("dns", body).in_region("eu-west-1"));
    stack.export("zone_id", &z.zone_id);
    stack.finish().expect("program")
}

#[tokio::test]
async fn dns_stack_deploy_plan_again_refresh_update_and_destroy_through_the_engine() {
    let moto = Moto::start();
    // CloudWatch's calls need translating for moto (see `cloudwatch.rs`); the rest pass.
    let proxy = CborProxy::start(&moto).await;
    let aws = proxy.aws(&moto);
    let dir = tempfile::tempdir().expect("tempdir");
    let desired = dns_program(20, 1.0);
    let backend = FileBackend::new(dir.path().join("state"), &desired.stack);
    let engine = engine(&aws, &desired.stack);

    let (changed, state) = deploy(&engine, &backend, &desired).await;
    assert!(changed);
    assert_eq!(state.resources.len(), 7);
    assert!(state.pending.is_empty());
    let zone_id = state.outputs["zone_id"].as_str().unwrap().to_string();
    let sets = moto
        .route53()
        .list_resource_record_sets()
        .hosted_zone_id(&zone_id)
        .start_record_name("api.shop.example.")
        .send()
        .await
        .unwrap();
    let weights: Vec<_> = sets
        .resource_record_sets()
        .iter()
        .filter(|r| r.name() == "api.shop.example.")
        .map(|r| (r.set_identifier().unwrap().to_string(), r.weight(), r.health_check_id().is_some()))
        .collect();
    assert_eq!(weights.len(), 2, "{weights:?}");
    assert!(weights.contains(&("green".into(), Some(20), true)), "{weights:?}");
    let alarms = proxy.cloudwatch(&moto, "us-east-1").describe_alarms().alarm_names("api-health").send().await.unwrap();
    let alarm = &alarms.metric_alarms()[0];
    assert_eq!(alarm.alarm_actions(), ["arn:aws:sns:us-east-1:123456789012:dns-alerts"]);

    // Nothing to do the second time, and reality matches state.
    let mut session = backend.lock(LockInfo::new("test"), None).await.expect("lock");
    let prior = session.load().await.expect("load");
    let plan = cairn::plan::plan(&desired, &prior).expect("plan");
    assert!(!plan.has_changes(), "{plan:?}");
    let drift = engine.refresh(&prior).await.expect("refresh");
    assert!(drift.is_empty(), "{drift:?}");

    // New weights and a new threshold: updates in place, nothing replaced.
    let reweighted = dns_program(50, 0.5);
    let plan = cairn::plan::plan(&reweighted, &prior).expect("plan");
    session.release().await.expect("release");
    assert_eq!(plan.count(Op::Update), 3, "{plan:?}");
    assert_eq!(plan.steps.iter().filter(|s| s.is_change()).count(), 3, "{plan:?}");
    let (_, state) = deploy(&engine, &backend, &reweighted).await;
    assert!(state.pending.is_empty());
    let alarms = proxy.cloudwatch(&moto, "us-east-1").describe_alarms().alarm_names("api-health").send().await.unwrap();
    assert_eq!(alarms.metric_alarms()[0].threshold(), Some(0.5));
    let (changed, _) = deploy(&engine, &backend, &reweighted).await;
    assert!(!changed);

    // Destroy: an empty program.
    let empty = Desired { stack: desired.stack.clone(), ..Desired::default() };
    let (changed, state) = deploy(&engine, &backend, &empty).await;
    assert!(changed);
    assert!(state.resources.is_empty() && state.retired.is_empty() && state.pending.is_empty());
    let r53 = moto.route53();
    assert!(r53.list_hosted_zones().send().await.unwrap().hosted_zones().is_empty());
    assert!(r53.list_health_checks().send().await.unwrap().health_checks().is_empty());
    assert!(proxy.cloudwatch(&moto, "us-east-1").describe_alarms().send().await.unwrap().metric_alarms().is_empty());
    assert!(proxy
        .cloudwatch(&moto, "eu-west-1")
        .list_dashboards()
        .send()
        .await
        .unwrap()
        .dashboard_entries()
        .is_empty());
    assert!(moto.sns("us-east-1").list_topics().send().await.unwrap().topics().is_empty());
}
