use cairn::provider::Provider;
use cairn::Resource;
use cairn_aws::ecr::{
    Encryption, ReplicationConfiguration, ReplicationConfigurationProvider, ReplicationDestination, ReplicationRule,
    Repository, RepositoryProvider, TagMutability,
};
use serde_json::{json, Value};

use crate::common::{ctx, urn, Moto};

const LIFECYCLE: &str = r#"{"rules": [{"rulePriority": 1, "description": "old untagged", "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 5}, "action": {"type": "expire"}}]}"#;
const POLICY: &str = r#"{"Version": "2012-10-17", "Statement": [{"Sid": "pull", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": ["ecr:BatchGetImage"]}]}"#;

fn inputs(r: &Repository) -> Value {
    serde_json::to_value(r).unwrap()
}

fn repo(name: &str, region: &str) -> Repository {
    let mut r = Repository::new(name).in_region(region);
    r.image_tag_mutability = TagMutability::Immutable;
    r.lifecycle_policy = Some(LIFECYCLE.into());
    r.tags.insert("team".into(), "platform".into());
    r
}

async fn tags_of(moto: &Moto, region: &str, arn: &str) -> Vec<(String, String)> {
    let out = moto.ecr(region).list_tags_for_resource().resource_arn(arn).send().await.unwrap();
    let mut tags: Vec<(String, String)> = out.tags().iter().map(|t| (t.key().into(), t.value().into())).collect();
    tags.sort();
    tags
}

#[tokio::test]
async fn repository_create_read_update_replace_delete() {
    let moto = Moto::start();
    let p = RepositoryProvider::new(&moto.aws());
    let u = urn(Repository::TYPE, "app");
    let c = ctx(&u);

    let desired = repo("team/app", "us-east-1");
    let created = p.create(c, &inputs(&desired)).await.unwrap();
    assert_eq!(created.id, "arn:aws:ecr:us-east-1:123456789012:repository/team/app");
    assert_eq!(
        created.outputs,
        json!({
            "arn": created.id,
            "repository_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app",
            "registry_id": "123456789012",
            "name": "team/app",
        })
    );
    let seen = p.read(c, &created.id, &inputs(&desired)).await.unwrap().unwrap();
    assert_eq!(seen.inputs, inputs(&desired));
    assert_eq!(seen.outputs, created.outputs);
    assert_eq!(
        tags_of(&moto, "us-east-1", &created.id).await,
        vec![
            ("cairn:stack".into(), "test-stack".into()),
            ("cairn:urn".into(), u.as_str().into()),
            ("team".into(), "platform".into()),
        ]
    );

    // In place: scanning, mutability, lifecycle policy removed, repository policy set, tags.
    let mut changed = desired.clone();
    changed.scan_on_push = true;
    changed.image_tag_mutability = TagMutability::Mutable;
    changed.lifecycle_policy = None;
    changed.repository_policy = Some(POLICY.into());
    changed.tags.clear();
    changed.tags.insert("owner".into(), "ops".into());
    let outputs = p.update(c, &created.id, &inputs(&desired), &inputs(&changed)).await.unwrap();
    assert_eq!(outputs, created.outputs);
    let seen = p.read(c, &created.id, &inputs(&changed)).await.unwrap().unwrap();
    assert_eq!(seen.inputs, inputs(&changed));
    // Back again: lifecycle policy put, repository policy deleted (scanning stays on: see
    // `scan_on_push_off_is_ignored_by_moto`).
    let mut desired = desired;
    desired.scan_on_push = true;
    let outputs = p.update(c, &created.id, &inputs(&changed), &inputs(&desired)).await.unwrap();
    assert_eq!(outputs, created.outputs);
    assert_eq!(p.read(c, &created.id, &inputs(&desired)).await.unwrap().unwrap().inputs, inputs(&desired));

    // Replace (encryption forces it; the type deletes before replacing, as the engine would).
    assert!(Repository::DELETE_BEFORE_REPLACE && Repository::REPLACE_ON_CHANGE.contains(&"encryption"));
    let mut kms = desired.clone();
    kms.encryption = Encryption::Kms { kms_key: Some("arn:aws:kms:us-east-1:123456789012:key/k1".into()) };
    p.delete(c, &created.id, &inputs(&desired)).await.unwrap();
    let replaced = p.create(c, &inputs(&kms)).await.unwrap();
    assert_eq!(replaced.id, created.id, "same name, same ARN");
    assert_eq!(p.read(c, &replaced.id, &inputs(&kms)).await.unwrap().unwrap().inputs, inputs(&kms));

    p.delete(c, &replaced.id, &inputs(&kms)).await.unwrap();
    assert_eq!(p.read(c, &replaced.id, &inputs(&kms)).await.unwrap(), None);
    // Deleting what is gone succeeds.
    p.delete(c, &replaced.id, &inputs(&kms)).await.unwrap();
}

/// moto gap: the SDK leaves `scanOnPush: false` out of PutImageScanningConfiguration (false is
/// the model's default, and AWS applies it), and moto ignores an empty configuration, so a
/// repository's scanning cannot be turned off in moto. The provider makes the right call; read
/// honestly reports what moto kept.
#[tokio::test]
async fn scan_on_push_off_is_ignored_by_moto() {
    let moto = Moto::start();
    let p = RepositoryProvider::new(&moto.aws());
    let u = urn(Repository::TYPE, "scanned");
    let mut on = repo("scanned", "us-east-1");
    on.scan_on_push = true;
    let created = p.create(ctx(&u), &inputs(&on)).await.unwrap();
    let mut off = on.clone();
    off.scan_on_push = false;
    p.update(ctx(&u), &created.id, &inputs(&on), &inputs(&off)).await.expect("the call succeeds");
    let seen = p.read(ctx(&u), &created.id, &inputs(&off)).await.unwrap().unwrap();
    assert_eq!(seen.inputs["scan_on_push"], json!(true), "moto kept scanning on (AWS turns it off)");
}

#[tokio::test]
async fn repository_kms_without_key_reads_back_without_drift() {
    let moto = Moto::start();
    let p = RepositoryProvider::new(&moto.aws());
    let u = urn(Repository::TYPE, "kms");
    let mut r = Repository::new("kms-default").in_region("us-east-1");
    r.encryption = Encryption::Kms { kms_key: None };
    let created = p.create(ctx(&u), &inputs(&r)).await.unwrap();
    let seen = p.read(ctx(&u), &created.id, &inputs(&r)).await.unwrap().unwrap();
    assert_eq!(seen.inputs, inputs(&r));
}

#[tokio::test]
async fn repository_is_found_by_its_urn_tag_only() {
    let moto = Moto::start();
    let p = RepositoryProvider::new(&moto.aws());
    let u = urn(Repository::TYPE, "found");
    let r = repo("found", "eu-west-1");
    let created = p.create(ctx(&u), &inputs(&r)).await.unwrap();
    let identity = p.identity(&inputs(&r));
    let found = p.find(ctx(&u), &identity).await.unwrap().expect("found by name and urn tag");
    assert_eq!(found.id, created.id);
    assert_eq!(found.outputs, created.outputs);
    assert_eq!(found.inputs, inputs(&r));
    // Same name, another resource's URN: not ours.
    let other = urn(Repository::TYPE, "other");
    assert_eq!(p.find(ctx(&other), &identity).await.unwrap(), None);
    // A repository made out of band (untagged) is not adopted either.
    moto.ecr("us-east-1").create_repository().repository_name("found").send().await.unwrap();
    let identity = p.identity(&inputs(&repo("found", "us-east-1")));
    assert_eq!(p.find(ctx(&u), &identity).await.unwrap(), None);
    // Nothing there at all.
    let identity = p.identity(&inputs(&repo("absent", "us-east-1")));
    assert_eq!(p.find(ctx(&u), &identity).await.unwrap(), None);
}

#[tokio::test]
async fn repository_import_by_id_alone() {
    let moto = Moto::start();
    let p = RepositoryProvider::new(&moto.aws());
    let u = urn(Repository::TYPE, "imported");
    let mut r = repo("imported", "eu-west-1");
    r.repository_policy = Some(POLICY.into());
    let created = p.create(ctx(&u), &inputs(&r)).await.unwrap();
    // By ARN, knowing nothing else.
    let seen = p.read(ctx(&u), &created.id, &json!({})).await.unwrap().unwrap();
    assert_eq!(seen.id, created.id);
    assert_eq!(seen.outputs, created.outputs);
    assert_eq!(seen.inputs["region"], json!("eu-west-1"));
    assert_eq!(seen.inputs["tags"], json!({"team": "platform"}));
    assert_eq!(seen.inputs["image_tag_mutability"], json!("IMMUTABLE"));
    assert_eq!(seen.inputs["force_delete"], json!(false));
    let policy: Value = serde_json::from_str(seen.inputs["repository_policy"].as_str().unwrap()).unwrap();
    assert_eq!(policy, serde_json::from_str::<Value>(POLICY).unwrap());
    // By bare name in a region.
    let by_name = p.read(ctx(&u), "imported", &json!({"region": "eu-west-1"})).await.unwrap().unwrap();
    assert_eq!(by_name.id, created.id);
    assert_eq!(p.read(ctx(&u), "imported", &json!({"region": "us-east-1"})).await.unwrap(), None);
}

#[tokio::test]
async fn same_repository_name_in_two_regions() {
    let moto = Moto::start();
    let aws = moto.aws();
    let p = RepositoryProvider::new(&aws);
    let (ua, ub) = (urn(Repository::TYPE, "east"), urn(Repository::TYPE, "west"));
    let east = p.create(ctx(&ua), &inputs(&repo("shared", "us-east-1"))).await.unwrap();
    let west = p.create(ctx(&ub), &inputs(&repo("shared", "eu-west-1"))).await.unwrap();
    assert_ne!(east.id, west.id);
    assert!(west.outputs["repository_uri"].as_str().unwrap().contains(".eu-west-1."));
    // One client per service and region, shared.
    assert_eq!(aws.client_counts(), [("ECR", 2)].into_iter().collect());
    p.delete(ctx(&ua), &east.id, &json!({})).await.unwrap();
    assert_eq!(p.read(ctx(&ua), &east.id, &json!({})).await.unwrap(), None);
    assert!(p.read(ctx(&ub), &west.id, &json!({})).await.unwrap().is_some());
}

#[tokio::test]
async fn repository_drift_made_out_of_band_is_read() {
    let moto = Moto::start();
    let p = RepositoryProvider::new(&moto.aws());
    let u = urn(Repository::TYPE, "drifty");
    let r = repo("drifty", "us-east-1");
    let created = p.create(ctx(&u), &inputs(&r)).await.unwrap();
    let ecr = moto.ecr("us-east-1");
    ecr.put_image_tag_mutability()
        .repository_name("drifty")
        .image_tag_mutability(aws_sdk_ecr::types::ImageTagMutability::Mutable)
        .send()
        .await
        .unwrap();
    ecr.delete_lifecycle_policy().repository_name("drifty").send().await.unwrap();
    ecr.tag_resource()
        .resource_arn(&created.id)
        .tags(aws_sdk_ecr::types::Tag::builder().key("team").value("intruders").build().unwrap())
        .send()
        .await
        .unwrap();
    let seen = p.read(ctx(&u), &created.id, &inputs(&r)).await.unwrap().unwrap();
    let mut expected = inputs(&r);
    expected["image_tag_mutability"] = json!("MUTABLE");
    expected["lifecycle_policy"] = Value::Null;
    expected["tags"] = json!({"team": "intruders"});
    assert_eq!(seen.inputs, expected);
    // Deleted out of band: gone.
    ecr.delete_repository().repository_name("drifty").send().await.unwrap();
    assert_eq!(p.read(ctx(&u), &created.id, &inputs(&r)).await.unwrap(), None);
}

#[tokio::test]
async fn repository_errors_name_the_urn_the_operation_and_the_aws_code() {
    let moto = Moto::start();
    let p = RepositoryProvider::new(&moto.aws());
    let u = urn(Repository::TYPE, "dup");
    p.create(ctx(&u), &inputs(&Repository::new("dup").in_region("us-east-1"))).await.unwrap();
    let e = p.create(ctx(&u), &inputs(&Repository::new("dup").in_region("us-east-1"))).await.unwrap_err().message;
    assert!(e.contains(u.as_str()), "{e}");
    assert!(e.contains("ECR CreateRepository failed: RepositoryAlreadyExistsException"), "{e}");

    // A name AWS would refuse is refused before any call, naming the field.
    let e = p.create(ctx(&u), &inputs(&Repository::new("Not Valid").in_region("us-east-1"))).await.unwrap_err().message;
    assert!(e.contains(u.as_str()) && e.contains("`name`"), "{e}");
    let e = p.create(ctx(&u), &inputs(&Repository::new("").in_region("us-east-1"))).await.unwrap_err().message;
    assert!(e.contains("`name` must not be empty"), "{e}");
    let mut bad = inputs(&Repository::new("ok-name").in_region("us-east-1"));
    bad["image_tag_mutability"] = json!("SOMETIMES");
    let e = p.create(ctx(&u), &bad).await.unwrap_err().message;
    assert!(e.contains("`image_tag_mutability` must be MUTABLE or IMMUTABLE"), "{e}");

    // AWS's own check, when ours is bypassed: an invalid name sent as is (through the SDK)
    // gets InvalidParameterException, which is what our validation mirrors.
    let sdk = moto.ecr("us-east-1").create_repository().repository_name("Not Valid").send().await;
    let code = aws_sdk_ecr::error::ProvideErrorMetadata::code(&sdk.unwrap_err()).map(str::to_string);
    assert_eq!(code.as_deref(), Some("InvalidParameterException"));

    // A repository with images is not deleted without force_delete.
    let ecr = moto.ecr("us-east-1");
    let manifest = r#"{"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json", "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1, "digest": "sha256:0000000000000000000000000000000000000000000000000000000000000000"}, "layers": []}"#;
    ecr.put_image().repository_name("dup").image_manifest(manifest).image_tag("v1").send().await.unwrap();
    let arn = "arn:aws:ecr:us-east-1:123456789012:repository/dup";
    let e = p.delete(ctx(&u), arn, &json!({"force_delete": false})).await.unwrap_err().message;
    assert!(e.contains("ECR DeleteRepository failed: RepositoryNotEmptyException"), "{e}");
    p.delete(ctx(&u), arn, &json!({"force_delete": true})).await.unwrap();
    assert_eq!(p.read(ctx(&u), arn, &json!({})).await.unwrap(), None);
}

fn replication(region: &str, to: &[&str]) -> ReplicationConfiguration {
    ReplicationConfiguration {
        region: Some(region.into()),
        rules: vec![ReplicationRule {
            destinations: to
                .iter()
                .map(|r| ReplicationDestination { region: r.to_string(), registry_id: "123456789012".into() })
                .collect(),
            repository_prefixes: vec![],
        }],
    }
}

#[tokio::test]
async fn replication_configuration_lifecycle() {
    let moto = Moto::start();
    let p = ReplicationConfigurationProvider::new(&moto.aws());
    let u = urn(ReplicationConfiguration::TYPE, "repl");
    let c = ctx(&u);
    let desired = serde_json::to_value(replication("us-east-1", &["eu-west-1"])).unwrap();
    assert_eq!(p.read(c, "us-east-1", &json!({})).await.unwrap(), None);
    let created = p.create(c, &desired).await.unwrap();
    assert_eq!(created.id, "us-east-1");
    assert_eq!(created.outputs, json!({"registry_id": "123456789012"}));
    let seen = p.read(c, &created.id, &desired).await.unwrap().unwrap();
    assert_eq!(seen.inputs, desired);
    assert_eq!(p.find(c, &p.identity(&desired)).await.unwrap().map(|o| o.id), Some("us-east-1".into()));

    let changed = serde_json::to_value(replication("us-east-1", &["eu-west-1", "ap-southeast-2"])).unwrap();
    p.update(c, &created.id, &desired, &changed).await.unwrap();
    assert_eq!(p.read(c, &created.id, &changed).await.unwrap().unwrap().inputs, changed);

    // A second configuration for the same registry and region is refused, not overwritten.
    let other = urn(ReplicationConfiguration::TYPE, "other");
    let e = p.create(ctx(&other), &desired).await.unwrap_err().message;
    assert!(e.contains("already has a different replication configuration"), "{e}");

    p.delete(c, &created.id, &changed).await.unwrap();
    assert_eq!(p.read(c, &created.id, &changed).await.unwrap(), None);
    p.delete(c, &created.id, &changed).await.unwrap();
}

#[tokio::test]
async fn replication_configuration_validation_names_the_field() {
    let moto = Moto::start();
    let p = ReplicationConfigurationProvider::new(&moto.aws());
    let u = urn(ReplicationConfiguration::TYPE, "bad");
    let mut bad = serde_json::to_value(replication("us-east-1", &["eu-west-1"])).unwrap();
    bad["rules"][0]["destinations"][0]["registry_id"] = json!("12");
    let e = p.create(ctx(&u), &bad).await.unwrap_err().message;
    assert!(e.contains("`rules[0].destinations[0].registry_id`"), "{e}");
    let e = p.create(ctx(&u), &json!({"region": "us-east-1", "rules": []})).await.unwrap_err().message;
    assert!(e.contains("`rules`"), "{e}");
}

/// The registry's scanning configuration: put, read back, changed, found by its region, and
/// put back to AWS's default by delete.
#[tokio::test]
async fn registry_scanning_configuration_lifecycle() {
    use cairn_aws::ecr::{
        RegistryScanningConfiguration, RegistryScanningConfigurationProvider, ScanFrequency, ScanType, ScanningRule,
    };
    let moto = Moto::start();
    let p = RegistryScanningConfigurationProvider::new(&moto.aws());
    let u = urn(RegistryScanningConfiguration::TYPE, "scanning");
    let c = ctx(&u);
    let on_push = RegistryScanningConfiguration::scan_on_push().in_region("eu-west-1");
    let i = |r: &RegistryScanningConfiguration| serde_json::to_value(r).unwrap();
    let created = p.create(c, &i(&on_push)).await.unwrap();
    assert_eq!(created.id, "eu-west-1");
    assert_eq!(created.outputs, json!({"registry_id": "123456789012"}));
    assert_eq!(p.read(c, &created.id, &i(&on_push)).await.unwrap().unwrap().inputs, i(&on_push));

    let mut enhanced = on_push.clone();
    enhanced.scan_type = ScanType::Enhanced;
    enhanced.rules =
        vec![ScanningRule { frequency: ScanFrequency::ContinuousScan, repository_filters: vec!["runner*".into()] }];
    p.update(c, &created.id, &i(&on_push), &i(&enhanced)).await.unwrap();
    assert_eq!(p.read(c, &created.id, &i(&enhanced)).await.unwrap().unwrap().inputs, i(&enhanced));
    assert_eq!(p.find(c, &p.identity(&i(&enhanced))).await.unwrap().unwrap().id, "eu-west-1");

    let mut wrong = enhanced.clone();
    wrong.scan_type = ScanType::Basic;
    let e = p.create(c, &i(&wrong)).await.unwrap_err().message;
    assert!(e.contains("`rules[0].frequency`"), "{e}");

    p.delete(c, &created.id, &i(&enhanced)).await.unwrap();
    let back = p.read(c, &created.id, &i(&enhanced)).await.unwrap().unwrap();
    assert_eq!(back.inputs, json!({"region": "eu-west-1", "scan_type": "BASIC", "rules": []}));
}
