use cairn::provider::{Context, Provider};
use cairn::Resource;
use cairn_aws::iam::{
    InstanceProfile, InstanceProfileProvider, PolicyDocument, Principal, Role, RoleProvider, Statement,
};
use cairn_aws::Aws;
use serde_json::{json, Value};

use crate::common::{ctx, urn, Fault, Faults, FaultyProxy, Moto, STACK};

fn inputs<T: serde::Serialize>(r: &T) -> Value {
    serde_json::to_value(r).unwrap()
}

fn fleet_role(name: &str) -> Role {
    let mut role = Role::new(name, PolicyDocument::assumable_by("ec2.amazonaws.com"));
    role.description = "fleet instances".into();
    role.inline_policies.insert(
        "pull".into(),
        PolicyDocument::new([
            Statement::allow(["ecr:GetAuthorizationToken"]).on(["*"]),
            Statement::allow(["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"])
                .on(["arn:aws:ecr:eu-west-1:123456789012:repository/runner"]),
        ]),
    );
    role.tags.insert("team".into(), "platform".into());
    role
}

/// A managed policy made out of band, as an account's own policies are.
async fn managed_policy(moto: &Moto, name: &str) -> String {
    let doc =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"logs:PutLogEvents","Resource":"*"}]}"#;
    let out = moto.iam().create_policy().policy_name(name).policy_document(doc).send().await.unwrap();
    out.policy().unwrap().arn().unwrap().to_string()
}

async fn role_names(moto: &Moto) -> Vec<String> {
    let out = moto.iam().list_roles().send().await.unwrap();
    out.roles().iter().map(|r| r.role_name().to_string()).collect()
}

#[tokio::test]
async fn role_create_read_update_drift_delete() {
    let moto = Moto::start();
    let p = RoleProvider::new(&moto.aws());
    let u = urn(Role::TYPE, "fleet");
    let c = ctx(&u);
    let logs = managed_policy(&moto, "write-logs").await;
    let mut desired = fleet_role("fleet");
    desired.managed_policy_arns.push(logs.clone().into());
    let created = p.create(c, &inputs(&desired)).await.unwrap();
    assert_eq!(created.id, "arn:aws:iam::123456789012:role/fleet");
    assert_eq!(created.outputs["arn"], created.id);
    assert_eq!(created.outputs["name"], "fleet");
    assert!(created.outputs["unique_id"].as_str().is_some_and(|u| !u.is_empty()));
    let seen = p.read(c, &created.id, &inputs(&desired)).await.unwrap().unwrap();
    assert_eq!(seen.inputs, inputs(&desired), "read back as declared");

    // In place: the trust policy, the description, an inline policy replaced by another, a
    // managed policy detached, tags.
    let mut changed = fleet_role("fleet");
    changed.assume_role_policy = PolicyDocument::new([Statement::allow(["sts:AssumeRole"])
        .principal(Principal::Service, "ec2.amazonaws.com")
        .when("StringEquals", "aws:SourceAccount", ["123456789012"])]);
    changed.description = "fleet".into();
    changed.inline_policies.clear();
    changed.inline_policies.insert(
        "logs".into(),
        PolicyDocument::new([Statement::allow(["logs:CreateLogStream", "logs:PutLogEvents"])
            .on(["arn:aws:logs:eu-west-1:123456789012:log-group:/runner:*"])]),
    );
    changed.tags.clear();
    changed.tags.insert("owner".into(), "ops".into());
    let outputs = p.update(c, &created.id, &inputs(&desired), &inputs(&changed)).await.unwrap();
    assert_eq!(outputs, created.outputs, "an update keeps the ARN, the name and the unique id");
    let seen = p.read(c, &created.id, &inputs(&changed)).await.unwrap().unwrap();
    assert_eq!(seen.inputs, inputs(&changed));

    // Drift: a policy attached and an inline policy added by hand show in read.
    let iam = moto.iam();
    iam.attach_role_policy().role_name("fleet").policy_arn(&logs).send().await.unwrap();
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    iam.put_role_policy().role_name("fleet").policy_name("by-hand").policy_document(doc).send().await.unwrap();
    let drifted = p.read(c, &created.id, &inputs(&changed)).await.unwrap().unwrap();
    assert_eq!(drifted.inputs["managed_policy_arns"], json!([logs]));
    assert_eq!(
        drifted.inputs["inline_policies"]["by-hand"],
        json!({"statements": [{"effect": "Allow", "actions": ["s3:*"], "resources": ["*"]}]})
    );
    // The next deploy puts it back: the update from what was read to what is declared.
    p.update(c, &created.id, &drifted.inputs, &inputs(&changed)).await.unwrap();
    assert_eq!(p.read(c, &created.id, &inputs(&changed)).await.unwrap().unwrap().inputs, inputs(&changed));

    // Delete removes the inline and managed policies first; a second delete succeeds.
    p.update(c, &created.id, &inputs(&changed), &inputs(&desired)).await.unwrap();
    p.delete(c, &created.id, &inputs(&desired)).await.unwrap();
    assert_eq!(p.read(c, &created.id, &inputs(&desired)).await.unwrap(), None);
    assert!(role_names(&moto).await.is_empty());
    p.delete(c, &created.id, &inputs(&desired)).await.unwrap();
}

#[tokio::test]
async fn a_name_taken_by_another_resource_is_refused_and_find_keeps_to_its_own() {
    let moto = Moto::start();
    let p = RoleProvider::new(&moto.aws());
    let mine = urn(Role::TYPE, "mine");
    let theirs = urn(Role::TYPE, "theirs");
    let role = fleet_role("shared-name");
    let created = p.create(ctx(&theirs), &inputs(&role)).await.unwrap();
    let e = p.create(ctx(&mine), &inputs(&role)).await.unwrap_err().message;
    assert!(e.contains(mine.as_str()) && e.contains("EntityAlreadyExists") && e.contains(theirs.as_str()), "{e}");
    assert_eq!(p.find(ctx(&mine), &p.identity(&inputs(&role))).await.unwrap(), None);
    let found = p.find(ctx(&theirs), &p.identity(&inputs(&role))).await.unwrap().unwrap();
    assert_eq!(found.id, created.id);
    // The copy state already holds is never what `find` recovers.
    let known = vec![created.id.clone()];
    let knowing = Context::new(&theirs, STACK).knowing(&known);
    assert_eq!(p.find(knowing, &p.identity(&inputs(&role))).await.unwrap(), None);
    assert_eq!(role_names(&moto).await, ["shared-name"]);
}

/// The request lands, its answer is lost, the SDK retries: IAM has no client token, and the
/// retry answers `EntityAlreadyExists`. The role made for this URN is adopted, and brought to
/// the declared inputs: exactly one role, with its inline policy.
#[tokio::test]
async fn a_create_whose_answer_was_lost_is_recovered_by_the_name_and_tag() {
    let moto = Moto::start();
    let proxy = FaultyProxy::start_with(moto.port, Faults::on("Action=CreateRole", 1, Fault::LoseAnswer));
    let aws = Aws::new(cairn_aws::AwsConfig { endpoint_url: Some(proxy.endpoint()), max_attempts: 3, ..moto.config() });
    let p = RoleProvider::new(&aws);
    let u = urn(Role::TYPE, "fleet");
    let role = fleet_role("fleet");
    let created = p.create(ctx(&u), &inputs(&role)).await.unwrap();
    assert_eq!(created.id, "arn:aws:iam::123456789012:role/fleet");
    assert_eq!(proxy.signers_of(&["Action=CreateRole"]).len(), 2, "the lost answer was retried once");
    assert_eq!(role_names(&moto).await, ["fleet"]);
    let seen = RoleProvider::new(&moto.aws()).read(ctx(&u), &created.id, &inputs(&role)).await.unwrap().unwrap();
    assert_eq!(seen.inputs, inputs(&role), "the adopted role got its inline policy");
}

#[tokio::test]
async fn instance_profile_create_move_role_find_delete() {
    let moto = Moto::start();
    let aws = moto.aws();
    let roles = RoleProvider::new(&aws);
    let p = InstanceProfileProvider::new(&aws);
    let (ru, pu) = (urn(Role::TYPE, "fleet"), urn(InstanceProfile::TYPE, "fleet"));
    for name in ["fleet-a", "fleet-b"] {
        roles.create(ctx(&ru), &inputs(&fleet_role(name))).await.unwrap();
    }
    let mut profile = InstanceProfile::new("fleet", "fleet-a");
    profile.tags.insert("team".into(), "platform".into());
    let created = p.create(ctx(&pu), &inputs(&profile)).await.unwrap();
    assert_eq!(created.id, "arn:aws:iam::123456789012:instance-profile/fleet");
    assert_eq!(p.read(ctx(&pu), &created.id, &inputs(&profile)).await.unwrap().unwrap().inputs, inputs(&profile));

    let mut moved = InstanceProfile::new("fleet", "fleet-b");
    moved.tags.insert("team".into(), "platform".into());
    assert_eq!(p.update(ctx(&pu), &created.id, &inputs(&profile), &inputs(&moved)).await.unwrap(), created.outputs);
    assert_eq!(p.read(ctx(&pu), &created.id, &inputs(&moved)).await.unwrap().unwrap().inputs, inputs(&moved));

    let found = p.find(ctx(&pu), &p.identity(&inputs(&moved))).await.unwrap().unwrap();
    assert_eq!(found.id, created.id);
    assert_eq!(p.find(ctx(&ru), &p.identity(&inputs(&moved))).await.unwrap(), None, "made for another URN");

    // A role an instance profile still holds cannot be deleted: the error says what holds it.
    let waiting = roles.clone().with_wait(std::time::Duration::from_secs(1));
    let e = waiting.delete(ctx(&ru), "arn:aws:iam::123456789012:role/fleet-b", &json!({})).await.unwrap_err();
    assert!(e.message.contains("DeleteConflict") && e.message.contains("instance profile"), "{}", e.message);
    p.delete(ctx(&pu), &created.id, &inputs(&moved)).await.unwrap();
    assert_eq!(p.read(ctx(&pu), &created.id, &inputs(&moved)).await.unwrap(), None);
    p.delete(ctx(&pu), &created.id, &inputs(&moved)).await.unwrap();
}
