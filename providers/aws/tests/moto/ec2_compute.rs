use cairn::provider::Provider;
use cairn::Resource;
use cairn_aws::ec2::{
    AmiLookup, AmiLookupProvider, KeyPair, KeyPairProvider, LaunchTemplate, LaunchTemplateProvider, RootVolume,
};
use serde_json::{json, Value};

use crate::common::{ctx, urn, Moto};

pub const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ+8q4X8sQoH0SzGh4SIxvXXY/hZ0908LM9ng3mQBprq me@host";
const OTHER_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMhhPSxJGDkuFy4AQU7hRiVibcU12oRL8kVA2AX0IIna other";
/// An Amazon Linux 2 image moto has in every region (root device `/dev/xvda`).
pub const AMI: &str = "ami-04681a1dbd79675a5";
const USER_DATA: &str = "#!/bin/bash\necho \"hello from cairn\" > /tmp/hello\n";

fn inputs<T: serde::Serialize>(r: &T) -> Value {
    serde_json::to_value(r).unwrap()
}

fn key_pair(name: &str, region: &str) -> KeyPair {
    let mut k = KeyPair::new(name, KEY).in_region(region);
    k.tags.insert("team".into(), "platform".into());
    k
}

async fn security_group(moto: &Moto, region: &str) -> String {
    let ec2 = moto.ec2(region);
    let vpc = ec2.create_vpc().cidr_block("10.0.0.0/16").send().await.unwrap();
    let vpc_id = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    let sg = ec2.create_security_group().group_name("web").description("web").vpc_id(vpc_id).send().await.unwrap();
    sg.group_id().unwrap().to_string()
}

fn template(name: &str, region: &str, sg: &str) -> LaunchTemplate {
    let mut t = LaunchTemplate::new(name, AMI, "t3.micro").in_region(region);
    t.key_name = Some("deploy".into());
    t.security_group_ids = vec![sg.into()];
    t.user_data = Some(USER_DATA.into());
    t.iam_instance_profile = Some("web-profile".into());
    t.root_volume = Some(RootVolume { size_gib: 20, volume_type: "gp3".into() });
    t.instance_tags.insert("role".into(), "web".into());
    t.tags.insert("team".into(), "platform".into());
    t
}

#[tokio::test]
async fn key_pair_create_read_update_replace_delete() {
    let moto = Moto::start();
    let p = KeyPairProvider::new(&moto.aws());
    let u = urn(KeyPair::TYPE, "deploy");
    let c = ctx(&u);
    let desired = key_pair("deploy", "us-east-1");
    let created = p.create(c, &inputs(&desired)).await.unwrap();
    assert!(created.id.starts_with("key-"), "{created:?}");
    assert_eq!(created.outputs["key_pair_id"], json!(created.id));
    assert_eq!(created.outputs["name"], json!("deploy"));
    assert!(!created.outputs["fingerprint"].as_str().unwrap().is_empty());
    let seen = p.read(c, &created.id, &inputs(&desired)).await.unwrap().unwrap();
    assert_eq!(seen.inputs, inputs(&desired));
    assert_eq!(seen.outputs, created.outputs);
    // Created tagged (cairn's tags and the user's).
    let described = moto.ec2("us-east-1").describe_key_pairs().key_names("deploy").send().await.unwrap();
    let mut tags: Vec<(String, String)> =
        described.key_pairs()[0].tags().iter().map(|t| (t.key().unwrap().into(), t.value().unwrap().into())).collect();
    tags.sort();
    assert_eq!(
        tags,
        vec![
            ("cairn:stack".into(), "test-stack".into()),
            ("cairn:urn".into(), u.as_str().into()),
            ("team".into(), "platform".into())
        ]
    );

    // Tags change in place; the same inputs again change nothing.
    let mut changed = desired.clone();
    changed.tags.clear();
    changed.tags.insert("owner".into(), "ops".into());
    let outputs = p.update(c, &created.id, &inputs(&desired), &inputs(&changed)).await.unwrap();
    assert_eq!(outputs, created.outputs);
    assert_eq!(p.read(c, &created.id, &inputs(&changed)).await.unwrap().unwrap().inputs, inputs(&changed));
    p.update(c, &created.id, &inputs(&changed), &inputs(&changed)).await.unwrap();
    assert_eq!(p.read(c, &created.id, &inputs(&changed)).await.unwrap().unwrap().inputs, inputs(&changed));

    // Another public key replaces it, deleting the old one first (the name is unique).
    assert!(KeyPair::DELETE_BEFORE_REPLACE && KeyPair::REPLACE_ON_CHANGE.contains(&"public_key"));
    let mut rekeyed = changed.clone();
    rekeyed.public_key = OTHER_KEY.into();
    p.delete(c, &created.id, &inputs(&changed)).await.unwrap();
    let replaced = p.create(c, &inputs(&rekeyed)).await.unwrap();
    assert_ne!(replaced.id, created.id);
    assert_ne!(replaced.outputs["fingerprint"], created.outputs["fingerprint"]);
    assert_eq!(p.read(c, &replaced.id, &inputs(&rekeyed)).await.unwrap().unwrap().inputs, inputs(&rekeyed));
    assert_eq!(p.read(c, &created.id, &inputs(&changed)).await.unwrap(), None);

    // Found again by its URN tag only.
    let found = p.find(c, &p.identity(&inputs(&rekeyed))).await.unwrap().unwrap();
    assert_eq!(found.id, replaced.id);
    let other = urn(KeyPair::TYPE, "other");
    assert_eq!(p.find(ctx(&other), &p.identity(&inputs(&rekeyed))).await.unwrap(), None);

    p.delete(c, &replaced.id, &inputs(&rekeyed)).await.unwrap();
    assert_eq!(p.read(c, &replaced.id, &inputs(&rekeyed)).await.unwrap(), None);
    p.delete(c, &replaced.id, &inputs(&rekeyed)).await.unwrap();
}

#[tokio::test]
async fn key_pair_import_drift_and_errors() {
    let moto = Moto::start();
    let p = KeyPairProvider::new(&moto.aws());
    let u = urn(KeyPair::TYPE, "west");
    let desired = key_pair("west", "eu-west-1");
    let created = p.create(ctx(&u), &inputs(&desired)).await.unwrap();
    // Import by id, or by name, knowing only the region.
    let seen = p.read(ctx(&u), &created.id, &json!({"region": "eu-west-1"})).await.unwrap().unwrap();
    assert_eq!(seen.id, created.id);
    assert_eq!(seen.outputs, created.outputs);
    assert_eq!(seen.inputs["tags"], json!({"team": "platform"}));
    assert_eq!(seen.inputs["public_key"].as_str().unwrap().split_whitespace().nth(1), KEY.split_whitespace().nth(1));
    let by_name = p.read(ctx(&u), "west", &json!({"region": "eu-west-1"})).await.unwrap().unwrap();
    assert_eq!(by_name.id, created.id);
    // Not in the other region.
    assert_eq!(p.read(ctx(&u), &created.id, &json!({"region": "us-east-1"})).await.unwrap(), None);

    // Drift: a tag changed out of band.
    let ec2 = moto.ec2("eu-west-1");
    ec2.create_tags()
        .resources(&created.id)
        .tags(aws_sdk_ec2::types::Tag::builder().key("team").value("intruders").build())
        .send()
        .await
        .unwrap();
    let seen = p.read(ctx(&u), &created.id, &inputs(&desired)).await.unwrap().unwrap();
    assert_eq!(seen.inputs["tags"], json!({"team": "intruders"}));

    // The same name again, for another resource: refused, naming the URN.
    let other = urn(KeyPair::TYPE, "other");
    let e = p.create(ctx(&other), &inputs(&desired)).await.unwrap_err().message;
    assert!(e.contains(other.as_str()) && e.contains("already exists"), "{e}");
    // A create retried after a crash takes over its own key pair.
    let again = p.create(ctx(&u), &inputs(&desired)).await.unwrap();
    assert_eq!(again.id, created.id);
    assert_eq!(p.read(ctx(&u), &created.id, &inputs(&desired)).await.unwrap().unwrap().inputs, inputs(&desired));
    // A private key is refused before any call.
    let mut private = desired.clone();
    // A private key's armour (not a key), built here so that no key-shaped text sits in the repository.
    private.public_key = format!("-----BEGIN OPENSSH {} KEY-----\nAAAA\n", "PRIVATE").into();
    let e = p.create(ctx(&u), &inputs(&private)).await.unwrap_err().message;
    assert!(e.contains("`public_key` holds a private key"), "{e}");

    // Deleted out of band: gone.
    ec2.delete_key_pair().key_name("west").send().await.unwrap();
    assert_eq!(p.read(ctx(&u), &created.id, &inputs(&desired)).await.unwrap(), None);
    p.delete(ctx(&u), &created.id, &inputs(&desired)).await.unwrap();
}

#[tokio::test]
async fn launch_template_create_read_new_version_replace_delete() {
    let moto = Moto::start();
    let p = LaunchTemplateProvider::new(&moto.aws());
    let u = urn(LaunchTemplate::TYPE, "web");
    let c = ctx(&u);
    let sg = security_group(&moto, "us-east-1").await;
    let desired = template("web", "us-east-1", &sg);
    let created = p.create(c, &inputs(&desired)).await.unwrap();
    assert!(created.id.starts_with("lt-"));
    assert_eq!(created.outputs, json!({"id": created.id, "latest_version": "1"}));
    let seen = p.read(c, &created.id, &inputs(&desired)).await.unwrap().unwrap();
    assert_eq!(seen.inputs, inputs(&desired));
    assert_eq!(seen.outputs, created.outputs);

    // What EC2 holds: base64 user data, IMDSv2 required, the root volume on the AMI's root
    // device, instance and volume tags.
    let ec2 = moto.ec2("us-east-1");
    let v = ec2.describe_launch_template_versions().launch_template_id(&created.id).versions("1").send().await.unwrap();
    let data = v.launch_template_versions()[0].launch_template_data().unwrap();
    assert_eq!(data.user_data(), Some("IyEvYmluL2Jhc2gKZWNobyAiaGVsbG8gZnJvbSBjYWlybiIgPiAvdG1wL2hlbGxvCg=="));
    assert_eq!(data.metadata_options().unwrap().http_tokens().unwrap().as_str(), "required");
    assert_eq!(data.block_device_mappings()[0].device_name(), Some("/dev/xvda"));
    let kinds: Vec<&str> =
        data.tag_specifications().iter().filter_map(|s| s.resource_type()).map(|r| r.as_str()).collect();
    assert!(kinds.contains(&"instance") && kinds.contains(&"volume"), "{kinds:?}");

    // A change of the data makes version 2, the default.
    let mut bigger = desired.clone();
    bigger.instance_type = "t3.large".into();
    bigger.imdsv2_required = false;
    bigger.root_volume = Some(RootVolume { size_gib: 40, volume_type: "gp2".into() });
    let outputs = p.update(c, &created.id, &inputs(&desired), &inputs(&bigger)).await.unwrap();
    assert_eq!(outputs, json!({"id": created.id, "latest_version": "2"}));
    assert_eq!(p.read(c, &created.id, &inputs(&bigger)).await.unwrap().unwrap().inputs, inputs(&bigger));
    let lt = ec2.describe_launch_templates().launch_template_ids(&created.id).send().await.unwrap();
    assert_eq!(lt.launch_templates()[0].default_version_number(), Some(2));
    // Tags only: no new version. The same inputs again: nothing.
    let mut retagged = bigger.clone();
    retagged.tags.insert("cost-centre".into(), "42".into());
    let outputs = p.update(c, &created.id, &inputs(&bigger), &inputs(&retagged)).await.unwrap();
    assert_eq!(outputs["latest_version"], json!("2"));
    assert_eq!(p.read(c, &created.id, &inputs(&retagged)).await.unwrap().unwrap().inputs, inputs(&retagged));
    let outputs = p.update(c, &created.id, &inputs(&retagged), &inputs(&retagged)).await.unwrap();
    assert_eq!(outputs["latest_version"], json!("2"));
    let lt = ec2.describe_launch_templates().launch_template_ids(&created.id).send().await.unwrap();
    assert_eq!(lt.launch_templates()[0].latest_version_number(), Some(2));

    // A new name replaces it (deleting the old one first).
    assert!(LaunchTemplate::DELETE_BEFORE_REPLACE && LaunchTemplate::REPLACE_ON_CHANGE.contains(&"name"));
    let mut renamed = retagged.clone();
    renamed.name = "web-v2".into();
    p.delete(c, &created.id, &inputs(&retagged)).await.unwrap();
    let replaced = p.create(c, &inputs(&renamed)).await.unwrap();
    assert_ne!(replaced.id, created.id);
    assert_eq!(p.read(c, &replaced.id, &inputs(&renamed)).await.unwrap().unwrap().inputs, inputs(&renamed));
    assert_eq!(p.read(c, &created.id, &inputs(&retagged)).await.unwrap(), None);
    // Found by its URN tag.
    assert_eq!(p.find(c, &json!({"region": "us-east-1"})).await.unwrap().map(|o| o.id), Some(replaced.id.clone()));

    p.delete(c, &replaced.id, &inputs(&renamed)).await.unwrap();
    assert_eq!(p.read(c, &replaced.id, &inputs(&renamed)).await.unwrap(), None);
    p.delete(c, &replaced.id, &inputs(&renamed)).await.unwrap();
}

#[tokio::test]
async fn launch_template_import_drift_and_two_regions() {
    let moto = Moto::start();
    let p = LaunchTemplateProvider::new(&moto.aws());
    let (ue, uw) = (urn(LaunchTemplate::TYPE, "east"), urn(LaunchTemplate::TYPE, "west"));
    let sg_east = security_group(&moto, "us-east-1").await;
    let sg_west = security_group(&moto, "eu-west-1").await;
    let east = template("app", "us-east-1", &sg_east);
    let mut west = LaunchTemplate::new("app", AMI, "t3.small").in_region("eu-west-1");
    west.security_group_ids = vec![sg_west.as_str().into()];
    let ce = p.create(ctx(&ue), &inputs(&east)).await.unwrap();
    let cw = p.create(ctx(&uw), &inputs(&west)).await.unwrap();
    assert_ne!(ce.id, cw.id);
    assert_eq!(p.read(ctx(&uw), &cw.id, &inputs(&west)).await.unwrap().unwrap().inputs, inputs(&west));

    // Import by id, knowing only the region: the default version's settings.
    let seen = p.read(ctx(&ue), &ce.id, &json!({"region": "us-east-1"})).await.unwrap().unwrap();
    assert_eq!(seen.inputs, inputs(&east));
    assert_eq!(seen.outputs, ce.outputs);
    assert_eq!(p.read(ctx(&ue), &ce.id, &json!({"region": "eu-west-1"})).await.unwrap(), None);

    // Drift: a new default version and a tag made out of band.
    let ec2 = moto.ec2("eu-west-1");
    let data = aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
        .image_id(AMI)
        .instance_type(aws_sdk_ec2::types::InstanceType::M5Large)
        .build();
    ec2.create_launch_template_version().launch_template_id(&cw.id).launch_template_data(data).send().await.unwrap();
    ec2.modify_launch_template().launch_template_id(&cw.id).default_version("2").send().await.unwrap();
    ec2.create_tags()
        .resources(&cw.id)
        .tags(aws_sdk_ec2::types::Tag::builder().key("owner").value("someone").build())
        .send()
        .await
        .unwrap();
    let seen = p.read(ctx(&uw), &cw.id, &inputs(&west)).await.unwrap().unwrap();
    let mut expected = inputs(&west);
    expected["instance_type"] = json!("m5.large");
    expected["security_group_ids"] = json!([]);
    expected["imdsv2_required"] = json!(false);
    expected["tags"] = json!({"owner": "someone"});
    assert_eq!(seen.inputs, expected);
    assert_eq!(seen.outputs["latest_version"], json!("2"));

    // The same name, another resource: refused, naming the URN and the operation's outcome.
    let other = urn(LaunchTemplate::TYPE, "other");
    let e = p.create(ctx(&other), &inputs(&west)).await.unwrap_err().message;
    assert!(e.contains(other.as_str()) && e.contains("already exists"), "{e}");
    // Invalid inputs are refused before any call, naming the field.
    let mut bad = inputs(&west);
    bad["image_id"] = json!("ubuntu");
    let e = p.create(ctx(&other), &bad).await.unwrap_err().message;
    assert!(e.contains("`image_id`"), "{e}");
    // A root volume on an AMI that does not exist: the lookup of its root device says so.
    let mut unknown = east.clone();
    unknown.name = "unknown-ami".into();
    unknown.image_id = "ami-00000000deadbeef0".into();
    let e = p.create(ctx(&other), &inputs(&unknown)).await.unwrap_err().message;
    assert!(e.contains("ami-00000000deadbeef0"), "{e}");
}

/// Makes an image out of band (owned by the test account, x86_64) from an instance of
/// [`AMI`], returning its id. (Made from an instance because moto's RegisterImage ignores the
/// architecture.)
async fn register(moto: &Moto, region: &str, name: &str, tags: &[(&str, &str)]) -> String {
    let ec2 = moto.ec2(region);
    let run = ec2
        .run_instances()
        .image_id(AMI)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    let instance = run.instances()[0].instance_id().unwrap().to_string();
    let out = ec2.create_image().instance_id(instance).name(name).send().await.unwrap();
    let id = out.image_id().unwrap().to_string();
    for (k, v) in tags {
        ec2.create_tags()
            .resources(&id)
            .tags(aws_sdk_ec2::types::Tag::builder().key(*k).value(*v).build())
            .send()
            .await
            .unwrap();
    }
    id
}

#[tokio::test]
async fn ami_lookup_picks_the_newest_match_and_reports_a_newer_one_as_drift() {
    let moto = Moto::start();
    let p = AmiLookupProvider::new(&moto.aws());
    let u = urn(AmiLookup::TYPE, "base");
    let c = ctx(&u);
    let old = register(&moto, "us-east-1", "app-base-1", &[("channel", "stable")]).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let newer = register(&moto, "us-east-1", "app-base-2", &[("channel", "stable")]).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    register(&moto, "us-east-1", "app-base-3", &[("channel", "beta")]).await;
    register(&moto, "us-east-1", "other-base-4", &[("channel", "stable")]).await;
    assert_ne!(old, newer);

    let mut query = AmiLookup::new(&["self"], "app-base-*").in_region("us-east-1");
    query.architecture = Some("x86_64".into());
    query.tag_filters.insert("channel".into(), "stable".into());
    let created = p.create(c, &inputs(&query)).await.unwrap();
    assert_eq!(created.id, newer);
    assert_eq!(created.outputs["image_id"], json!(newer));
    assert_eq!(created.outputs["name"], json!("app-base-2"));
    assert!(!created.outputs["creation_date"].as_str().unwrap().is_empty());
    let seen = p.read(c, &created.id, &inputs(&query)).await.unwrap().unwrap();
    assert_eq!(seen.inputs, inputs(&query));
    assert_eq!((seen.id.clone(), seen.outputs.clone()), (created.id.clone(), created.outputs.clone()));
    assert_eq!(p.find(c, &p.identity(&inputs(&query))).await.unwrap().unwrap().id, newer);

    // A newer matching image: read reports it (refresh shows drift of id and outputs).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let newest = register(&moto, "us-east-1", "app-base-5", &[("channel", "stable")]).await;
    let seen = p.read(c, &created.id, &inputs(&query)).await.unwrap().unwrap();
    assert_eq!(seen.id, newest);
    assert_eq!(seen.outputs["name"], json!("app-base-5"));
    assert_eq!(seen.inputs, inputs(&query));

    // Another query replaces the lookup (no side effects to undo).
    assert!(AmiLookup::REPLACE_ON_CHANGE.contains(&"name_pattern"));
    p.delete(c, &created.id, &inputs(&query)).await.unwrap();

    // No match: an error naming the query.
    let mut none = query.clone();
    none.name_pattern = "nothing-*".into();
    let e = p.create(c, &inputs(&none)).await.unwrap_err().message;
    assert!(e.contains(u.as_str()) && e.contains("no available AMI matches") && e.contains("nothing-*"), "{e}");
    assert!(e.contains("channel") && e.contains("x86_64") && e.contains("us-east-1"), "{e}");
    // No arm64 image matches.
    let mut arm = query.clone();
    arm.architecture = Some("arm64".into());
    let e = p.create(c, &inputs(&arm)).await.unwrap_err().message;
    assert!(e.contains("architecture arm64"), "{e}");
    // Not in another region.
    let mut west = query.clone();
    west.region = Some("eu-west-1".into());
    assert!(p.create(c, &inputs(&west)).await.is_err());

    // Import by image id alone: a query naming exactly that image.
    let seen = p.read(c, &old, &json!({"region": "us-east-1"})).await.unwrap().unwrap();
    assert_eq!(seen.id, old);
    assert_eq!(seen.inputs["name_pattern"], json!("app-base-1"));
    assert_eq!(seen.inputs["owners"], json!(["123456789012"]));
    assert_eq!(p.read(c, "ami-00000000deadbeef0", &json!({"region": "us-east-1"})).await.unwrap(), None);
}
