//! Provider configurations as values: each resource gets the region and the profile (its
//! credentials, so its account) of the `aws` configuration chosen for it or its component.

use cairn::{Options, Stack};
use cairn_aws::sns::Topic;
use cairn_aws::{Aws, Settings};

use crate::common::{FaultyProxy, Moto};
use crate::engine::{engine, try_deploy};

/// Two profiles whose access keys are 12-digit numbers: moto makes such a key's account the
/// account the resources are made in, so an ARN says whose credentials made it.
const PROFILES: &str = "\
[profile ops]
aws_access_key_id = AKIAOPSOPSOPSOPSOPS1
aws_secret_access_key = testing

[profile audit]
aws_access_key_id = AKIAAUDITAUDITAUDIT2
aws_secret_access_key = testing
";

#[tokio::test]
async fn each_resource_is_made_in_the_region_and_with_the_credentials_of_its_provider_configuration() {
    let moto = Moto::start();
    let proxy = FaultyProxy::with_latency(moto.port, std::time::Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let profiles = dir.path().join("config");
    std::fs::write(&profiles, PROFILES).unwrap();
    // The standard chain, from the profile file: no static credentials.
    let aws = Aws::new(cairn_aws::AwsConfig {
        endpoint_url: Some(proxy.endpoint()),
        static_credentials: None,
        profile_file: Some(profiles),
        ..moto.config()
    });
    let desired = {
        let mut stack = Stack::new("shop", "test");
        let ops = stack.provider("ops-east", Settings::region("us-east-1").profile("ops"));
        let audit = stack.provider("audit-west", Settings::region("eu-west-1").profile("audit"));
        stack.use_provider(&ops);
        stack.add("orders", Topic::new("orders"));
        stack.component("audit", |s| {
            s.use_provider(&audit);
            s.add("trail", Topic::new("trail"));
            s.add_with("back", Topic::new("back"), Options::new().provider(&ops));
            s.add("pinned", Topic::new("pinned").in_region("ap-south-1"));
        });
        stack.finish().expect("program")
    };
    let backend = cairn::state::file::FileBackend::new(dir.path().join("state"), "shop-test");
    let engine = engine(&aws, "shop-test");
    let (_, outcome, state) = try_deploy(&engine, &backend, &desired).await;
    assert!(outcome.succeeded(), "{outcome:?}");
    let arn = |name: &str| state.resources.values().find(|r| r.urn.name() == name).unwrap().id.clone();
    assert_eq!(arn("orders"), "arn:aws:sns:us-east-1:123456789012:orders");
    assert_eq!(arn("trail"), "arn:aws:sns:eu-west-1:123456789012:trail");
    assert_eq!(arn("back"), "arn:aws:sns:us-east-1:123456789012:back");
    assert_eq!(arn("pinned"), "arn:aws:sns:ap-south-1:123456789012:pinned", "its own region");
    let signed_by = |name: &str| {
        let mut keys = proxy.signers_of(&["Action=CreateTopic", &format!("Name={name}&")]);
        keys.dedup();
        keys
    };
    assert_eq!(signed_by("orders"), ["AKIAOPSOPSOPSOPSOPS1"]);
    assert_eq!(signed_by("trail"), ["AKIAAUDITAUDITAUDIT2"]);
    assert_eq!(signed_by("back"), ["AKIAOPSOPSOPSOPSOPS1"]);
    assert_eq!(signed_by("pinned"), ["AKIAAUDITAUDITAUDIT2"], "its component's profile");
    // Read back and deleted with the same credentials: nothing left to do, then nothing left.
    let (changed, _, _) = try_deploy(&engine, &backend, &desired).await;
    assert!(!changed, "the second plan is empty");
    let drift = engine.refresh(&state).await.expect("refresh");
    assert!(drift.is_empty(), "{drift:?}");
    let empty = cairn::Desired { stack: "shop-test".into(), ..Default::default() };
    let (_, outcome, state) = try_deploy(&engine, &backend, &empty).await;
    assert!(outcome.succeeded() && state.resources.is_empty(), "{outcome:?}");
}

#[test]
fn a_resource_without_a_region_names_what_to_do() {
    let mut stack = Stack::new("shop", "test");
    stack.add("orders", Topic::new("orders"));
    let e = stack.finish().unwrap_err().to_string();
    assert!(
        e.contains("`shop-test/aws:sns:Topic/orders` has no `region`: set it on the resource, or choose a `aws` provider configuration"),
        "{e}"
    );
}
