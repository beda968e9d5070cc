//! Bad input before any call (a region that is not one), and the errors of refused
//! credentials: each names what to fix.

use cairn::provider::Provider;
use cairn::Resource;
use cairn_aws::ec2::{Vpc, VpcProvider};
use cairn_aws::sns::{Topic, TopicProvider};
use cairn_aws::{Aws, AwsConfig};
use cairn_tests::moto::xml_answer;

use crate::common::{ctx, urn, FaultyProxy, Moto};

fn topic(region: &str) -> serde_json::Value {
    serde_json::to_value(Topic::new("alerts").in_region(region)).unwrap()
}

#[tokio::test]
async fn a_region_that_is_not_one_is_refused_before_any_call() {
    let moto = Moto::start();
    let proxy = FaultyProxy::start(moto.port, 0, cairn_tests::moto::Fault::ServerError);
    let aws = Aws::new(AwsConfig { endpoint_url: Some(proxy.endpoint()), ..moto.config() });
    let u = urn(Topic::TYPE, "alerts");
    let e = TopicProvider::new(&aws).create(ctx(&u), &topic("eu-wset-1")).await.unwrap_err().message;
    assert!(e.contains(u.as_str()) && e.contains("`region`") && e.contains("`eu-wset-1` is not an AWS region"), "{e}");
    assert_eq!(proxy.requests(), 0);
}

/// moto checks signatures and IAM policies once its first requests are done
/// (`INITIAL_NO_AUTH_ACTION_COUNT`). moto gap: its refusals are EC2-shaped XML
/// (`<ErrorResponse><Errors><Error>`) whatever the service's protocol, so only EC2's parser
/// reads their code; for the others (SNS here) the error says what an HTTP 403 means.
#[tokio::test]
async fn unknown_credentials_and_a_missing_permission_say_what_to_fix() {
    let moto = Moto::start_authenticating(2);
    let iam = moto.iam();
    iam.create_user().user_name("deployer").send().await.unwrap();
    let key = iam.create_access_key().user_name("deployer").send().await.unwrap();
    let key = key.access_key().unwrap();
    let u = urn(Topic::TYPE, "alerts");

    let vpc = serde_json::to_value(Vpc::new("10.0.0.0/16").in_region("us-east-1")).unwrap();
    let vu = urn(Vpc::TYPE, "main");

    let unknown = Aws::new(AwsConfig { static_credentials: Some(("AKIAUNKNOWN".into(), "x".into())), ..moto.config() });
    let e = VpcProvider::new(&unknown).create(ctx(&vu), &vpc).await.unwrap_err().message;
    assert!(e.contains("AuthFailure") && e.contains("does not accept the credentials"), "{e}");
    let e = TopicProvider::new(&unknown).create(ctx(&u), &topic("us-east-1")).await.unwrap_err().message;
    assert!(e.contains("HTTP 403") && e.contains("are not valid, or may not call `sns:ListTopics`"), "{e}");

    let deployer = Aws::new(AwsConfig {
        static_credentials: Some((key.access_key_id().to_string(), key.secret_access_key().to_string())),
        ..moto.config()
    });
    let e = VpcProvider::new(&deployer).create(ctx(&vu), &vpc).await.unwrap_err().message;
    assert!(e.contains("may not call this: allow `ec2:CreateVpc`"), "{e}");
}

/// An expired session token: **answered from a recorded exchange of the real API** (moto
/// never expires its tokens).
#[tokio::test]
async fn an_expired_token_says_to_renew_the_credentials() {
    let moto = Moto::start();
    let expired = xml_answer(
        403,
        "<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><Error><Type>Sender</Type>\
         <Code>ExpiredToken</Code><Message>The security token included in the request is expired</Message>\
         </Error><RequestId>9f0c8a7e-EXAMPLE</RequestId></ErrorResponse>",
    );
    let proxy = FaultyProxy::scripted(moto.port, vec![("Action=ListTopics", vec![expired])]);
    let aws = Aws::new(AwsConfig { endpoint_url: Some(proxy.endpoint()), ..moto.config() });
    let u = urn(Topic::TYPE, "alerts");
    let e = TopicProvider::new(&aws).create(ctx(&u), &topic("us-east-1")).await.unwrap_err().message;
    assert!(e.contains("ExpiredToken") && e.contains("have expired") && e.contains("renew"), "{e}");
}
