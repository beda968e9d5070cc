//! Rollouts: a launch template version change starts an instance refresh, and the deploy
//! waits for it to end.
//!
//! moto implements neither `StartInstanceRefresh` nor `DescribeInstanceRefreshes`. Here
//! **those two operations are answered from recorded exchanges of the real API** (the XML
//! bodies of the Amazon EC2 Auto Scaling API reference, `2011-01-01`), by a proxy in front of
//! moto; every other call (the group's update, its tags, the capacity wait) goes to moto.

use std::time::Duration;

use cairn::provider::Provider;
use cairn::Resource;
use cairn_aws::autoscaling::{AutoScalingGroup, AutoScalingGroupProvider, InstanceRefresh};
use cairn_aws::ec2::{LaunchTemplate, LaunchTemplateProvider};
use cairn_aws::Aws;
use cairn_tests::moto::xml_answer;
use serde_json::Value;

use crate::common::{ctx, urn, FaultyProxy, Moto};
use crate::ec2_compute::AMI;

const REFRESH_ID: &str = "08b91cf7-8fa6-48af-b6a6-d227f40f1b9b";
const EARLIER_ID: &str = "dd7728d0-5bc4-4575-96a3-1b2c52bf8bb1";
const NS: &str = "http://autoscaling.amazonaws.com/doc/2011-01-01/";

fn inputs<T: serde::Serialize>(r: &T) -> Value {
    serde_json::to_value(r).unwrap()
}

/// `StartInstanceRefresh`'s answer.
fn started(id: &str) -> String {
    xml_answer(
        200,
        &format!(
            "<StartInstanceRefreshResponse xmlns=\"{NS}\"><StartInstanceRefreshResult>\
             <InstanceRefreshId>{id}</InstanceRefreshId></StartInstanceRefreshResult>\
             <ResponseMetadata><RequestId>7c6e177f-f082-11e1-ac58-3714bEXAMPLE</RequestId></ResponseMetadata>\
             </StartInstanceRefreshResponse>"
        ),
    )
}

/// `StartInstanceRefresh` refused while another refresh of the group runs.
fn in_progress() -> String {
    xml_answer(
        400,
        &format!(
            "<ErrorResponse xmlns=\"{NS}\"><Error><Type>Sender</Type><Code>InstanceRefreshInProgress</Code>\
             <Message>An Instance Refresh is already in progress and blocks the execution of this Instance Refresh.\
             </Message></Error><RequestId>5a7e4c2b-EXAMPLE</RequestId></ErrorResponse>"
        ),
    )
}

/// `DescribeInstanceRefreshes`' answer: one refresh in `status`.
fn described(id: &str, status: &str, percent: i32, reason: &str) -> String {
    xml_answer(
        200,
        &format!(
            "<DescribeInstanceRefreshesResponse xmlns=\"{NS}\"><DescribeInstanceRefreshesResult>\
             <InstanceRefreshes><member><InstanceRefreshId>{id}</InstanceRefreshId>\
             <AutoScalingGroupName>web</AutoScalingGroupName><Status>{status}</Status>\
             <StatusReason>{reason}</StatusReason><PercentageComplete>{percent}</PercentageComplete>\
             <InstancesToUpdate>{}</InstancesToUpdate><StartTime>2026-12-07T20:37:10Z</StartTime>\
             </member></InstanceRefreshes></DescribeInstanceRefreshesResult>\
             <ResponseMetadata><RequestId>1e0b6b5c-EXAMPLE</RequestId></ResponseMetadata>\
             </DescribeInstanceRefreshesResponse>",
            (100 - percent) / 50
        ),
    )
}

/// A group `web` of one instance on version 1 of a launch template that now has a version 2,
/// in moto; the group and the template as declared.
async fn group_with_new_version(moto: &Moto, refresh: InstanceRefresh) -> (AutoScalingGroup, String) {
    let region = "us-east-1";
    let ec2 = moto.ec2(region);
    let vpc = ec2.create_vpc().cidr_block("10.2.0.0/16").send().await.unwrap();
    let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    let subnet = ec2.create_subnet().vpc_id(&vpc).cidr_block("10.2.0.0/24").availability_zone("us-east-1a").send();
    let subnet = subnet.await.unwrap().subnet().unwrap().subnet_id().unwrap().to_string();
    let lts = LaunchTemplateProvider::new(&moto.aws());
    let lu = urn(LaunchTemplate::TYPE, "web");
    let lt = LaunchTemplate::new("web", AMI, "t3.micro").in_region(region);
    let lt_id = lts.create(ctx(&lu), &inputs(&lt)).await.unwrap().id;
    let mut v2 = lt.clone();
    v2.instance_type = "t3.small".into();
    let mut group = AutoScalingGroup::new("web", lt_id.as_str(), "1", 1, 2, vec![subnet.into()]).in_region(region);
    group.wait_for_capacity_timeout = 60;
    group.instance_refresh = Some(refresh);
    let gu = urn(AutoScalingGroup::TYPE, "web");
    AutoScalingGroupProvider::new(&moto.aws()).create(ctx(&gu), &inputs(&group)).await.unwrap();
    lts.update(ctx(&lu), &lt_id, &inputs(&lt), &inputs(&v2)).await.unwrap();
    (group, lt_id)
}

/// Deploys version 2 through a provider whose refresh calls the scripted proxy answers.
async fn roll_to_v2(
    moto: &Moto,
    group: &AutoScalingGroup,
    script: Vec<(&'static str, Vec<String>)>,
) -> (Result<Value, String>, FaultyProxy) {
    let proxy = FaultyProxy::scripted(moto.port, script);
    let aws = Aws::new(cairn_aws::AwsConfig { endpoint_url: Some(proxy.endpoint()), ..moto.config() });
    let p = AutoScalingGroupProvider::new(&aws).with_refresh_poll(Duration::from_millis(50));
    let mut v2 = group.clone();
    v2.launch_template_version = "2".into();
    let gu = urn(AutoScalingGroup::TYPE, "web");
    let result = p.update(ctx(&gu), "web", &inputs(group), &inputs(&v2)).await.map_err(|e| e.message);
    (result, proxy)
}

#[tokio::test]
async fn a_new_template_version_rolls_out_and_the_deploy_waits_for_it() {
    let moto = Moto::start();
    let (group, _) = group_with_new_version(&moto, InstanceRefresh::new(90)).await;
    let (result, proxy) = roll_to_v2(
        &moto,
        &group,
        vec![
            ("Action=StartInstanceRefresh", vec![started(REFRESH_ID)]),
            (
                "Action=DescribeInstanceRefreshes",
                vec![
                    described(REFRESH_ID, "Pending", 0, "Waiting for the group to be ready"),
                    described(REFRESH_ID, "InProgress", 50, "Waiting for instances to warm up"),
                    described(REFRESH_ID, "Successful", 100, ""),
                ],
            ),
        ],
    )
    .await;
    result.unwrap();
    // Started once, with the declared preferences; asked until it ended.
    let starts = proxy.signers_of(&["Action=StartInstanceRefresh"]);
    assert_eq!(starts.len(), 1);
    assert_eq!(proxy.signers_of(&["Preferences.MinHealthyPercentage=90", "Preferences.AutoRollback=true"]).len(), 1);
    assert_eq!(proxy.signers_of(&["Action=DescribeInstanceRefreshes"]).len(), 3);
    let g = moto.autoscaling("us-east-1").describe_auto_scaling_groups().auto_scaling_group_names("web").send();
    let g = g.await.unwrap();
    assert_eq!(g.auto_scaling_groups()[0].launch_template().unwrap().version(), Some("2"));
}

#[tokio::test]
async fn a_failed_rollout_says_whether_it_was_rolled_back() {
    let moto = Moto::start();
    let (group, _) = group_with_new_version(&moto, InstanceRefresh::new(90)).await;
    let (result, _proxy) = roll_to_v2(
        &moto,
        &group,
        vec![
            ("Action=StartInstanceRefresh", vec![started(REFRESH_ID)]),
            (
                "Action=DescribeInstanceRefreshes",
                vec![
                    described(REFRESH_ID, "InProgress", 50, ""),
                    described(REFRESH_ID, "RollbackInProgress", 50, "Instances failed to pass health checks"),
                    described(REFRESH_ID, "RollbackSuccessful", 100, "Instances failed to pass health checks"),
                ],
            ),
        ],
    )
    .await;
    let e = result.unwrap_err();
    assert!(e.contains("rolled back") && e.contains("failed to pass health checks") && e.contains("previous"), "{e}");

    let mut no_rollback = InstanceRefresh::new(90);
    no_rollback.auto_rollback = false;
    let moto = Moto::start();
    let (group, _) = group_with_new_version(&moto, no_rollback).await;
    let (result, _proxy) = roll_to_v2(
        &moto,
        &group,
        vec![
            ("Action=StartInstanceRefresh", vec![started(REFRESH_ID)]),
            (
                "Action=DescribeInstanceRefreshes",
                vec![described(REFRESH_ID, "Failed", 50, "Launching instances failed")],
            ),
        ],
    )
    .await;
    let e = result.unwrap_err();
    assert!(e.contains("ended Failed") && e.contains("Launching instances failed") && e.contains("mix"), "{e}");
}

#[tokio::test]
async fn a_refresh_already_in_progress_is_waited_for_then_this_one_starts() {
    let moto = Moto::start();
    let (group, _) = group_with_new_version(&moto, InstanceRefresh::new(90)).await;
    let (result, proxy) = roll_to_v2(
        &moto,
        &group,
        vec![
            ("Action=StartInstanceRefresh", vec![in_progress(), started(REFRESH_ID)]),
            (
                "Action=DescribeInstanceRefreshes",
                vec![
                    // The one in the way (listed without an id filter, then by its id) ...
                    described(EARLIER_ID, "InProgress", 50, ""),
                    described(EARLIER_ID, "Successful", 100, ""),
                    // ... then this deploy's own.
                    described(REFRESH_ID, "Successful", 100, ""),
                ],
            ),
        ],
    )
    .await;
    result.unwrap();
    assert_eq!(proxy.signers_of(&["Action=StartInstanceRefresh"]).len(), 2, "started again once the other ended");
}

#[tokio::test]
async fn a_rollout_that_outlasts_its_timeout_stops_the_deploy_and_says_how_to_go_on() {
    let moto = Moto::start();
    let mut refresh = InstanceRefresh::new(90);
    refresh.timeout_seconds = 1;
    let (group, _) = group_with_new_version(&moto, refresh).await;
    let (result, proxy) = roll_to_v2(
        &moto,
        &group,
        vec![
            ("Action=StartInstanceRefresh", vec![started(REFRESH_ID)]),
            ("Action=DescribeInstanceRefreshes", vec![described(REFRESH_ID, "InProgress", 50, "")]),
        ],
    )
    .await;
    let e = result.unwrap_err();
    assert!(e.contains("still InProgress (50%)") && e.contains("cancel-instance-refresh"), "{e}");
    assert!(proxy.signers_of(&["Action=DescribeInstanceRefreshes"]).len() > 2, "it polled until the deadline");
}
