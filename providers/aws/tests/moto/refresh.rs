//! Refresh reads many resources of one type and region in one call where the API allows it
//! (the engine's batch read: `Provider::read_batch`, `read_many`), and still reports each
//! one's drift.

use cairn::stack::Desired;
use cairn::Stack;
use cairn_aws::autoscaling::AutoScalingGroup;
use cairn_aws::ec2::{LaunchTemplate, SecurityGroup, Subnet, Vpc};
use cairn_aws::logs::LogGroup;
use cairn_aws::sns::Topic;
use cairn_aws::{Aws, AwsConfig};

use crate::common::{FaultyProxy, Moto};
use crate::ec2_compute::AMI;

const R: &str = "us-east-1";

/// A VPC with 20 subnets, 10 security groups and 3 (empty) Auto Scaling groups; 5 topics and
/// 6 log groups.
fn program() -> Desired {
    let mut stack = Stack::new("batched", "test");
    let vpc = stack.add("vpc", Vpc::new("10.20.0.0/16").in_region(R));
    let mut subnets = Vec::new();
    for i in 0..20 {
        let zone = ["us-east-1a", "us-east-1b", "us-east-1c"][i % 3];
        subnets.push(stack.add(&format!("s{i}"), Subnet::new(&vpc.id, format!("10.20.{i}.0/24"), zone).in_region(R)));
    }
    for i in 0..10 {
        stack.add(&format!("g{i}"), SecurityGroup::new(format!("g{i}"), "A group", &vpc.id).in_region(R));
    }
    let lt = stack.add("lt", LaunchTemplate::new("web", AMI, "t3.micro").in_region(R));
    for i in 0..3 {
        let mut g = AutoScalingGroup::new(
            format!("web{i}"),
            lt.id.clone(),
            lt.latest_version.clone(),
            0,
            2,
            subnets.iter().take(3).map(|s| (&s.id).into()).collect(),
        )
        .in_region(R);
        g.wait_for_capacity_timeout = 0;
        stack.add(&format!("asg{i}"), g);
    }
    for i in 0..5 {
        stack.add(&format!("t{i}"), Topic::new(format!("batched-t{i}")).in_region(R));
    }
    for i in 0..6 {
        let mut group = LogGroup::new(format!("/batched/g{i}")).in_region(R);
        group.retention_days = Some(14);
        stack.add(&format!("l{i}"), group);
    }
    stack.finish().expect("program")
}

#[tokio::test]
async fn refresh_reads_subnets_groups_and_auto_scaling_groups_in_batches() {
    let moto = Moto::start();
    let desired = program();
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = cairn::state::file::FileBackend::new(dir.path().join("state"), &desired.stack);
    let engine = crate::engine::engine(&moto.aws(), &desired.stack);
    let (_, state) = crate::engine::deploy(&engine, &backend, &desired).await;
    assert_eq!(state.resources.len(), 46);

    let proxy = FaultyProxy::start(moto.port, 0, cairn_tests::moto::Fault::ServerError);
    let counted = Aws::new(AwsConfig { endpoint_url: Some(proxy.endpoint()), ..moto.config() });
    let drift = crate::engine::engine(&counted, &desired.stack).refresh(&state).await.expect("refresh");
    assert!(drift.is_empty(), "{drift:?}");
    let calls = |op: &str| proxy.signers_of(&[&format!("Action={op}&")]).len();
    assert_eq!(calls("DescribeSubnets"), 1, "20 subnets, one call");
    assert_eq!(calls("DescribeSecurityGroupRules"), 1, "10 groups' rules, one call");
    assert_eq!(calls("DescribeSecurityGroups"), 2, "10 groups in one call, and the VPC's default group");
    assert_eq!(calls("DescribeAutoScalingGroups"), 1, "3 groups, one call");
    let target = |op: &str| proxy.signers_of(&[op]).len();
    assert_eq!(target("Logs_20140328.DescribeLogGroups"), 1, "6 groups under one prefix, one call");
    assert_eq!(calls("GetTopicAttributes"), 5, "SNS reads attributes one topic at a time");
    assert_eq!(calls("ListTagsForResource") + target("Logs_20140328.ListTagsForResource"), 0);
    assert_eq!(target("ResourceGroupsTaggingAPI_20170126.GetResources"), 2, "the tags of both, one call each");
    assert!(proxy.requests() <= 20, "46 resources read back in {} calls", proxy.requests());

    // Drift is still each resource's own: a subnet deleted and a rule added out of band.
    let ec2 = moto.ec2(R);
    let subnet = state.resources.values().find(|r| r.urn.as_str().ends_with("/s7")).unwrap();
    ec2.delete_subnet().subnet_id(&subnet.id).send().await.unwrap();
    let group = state.resources.values().find(|r| r.urn.as_str().ends_with("/g3")).unwrap();
    let ssh = crate::common::ssh_from_anywhere();
    ec2.authorize_security_group_ingress().group_id(&group.id).ip_permissions(ssh).send().await.unwrap();
    let topic = state.resources.values().find(|r| r.urn.as_str().ends_with("/t2")).unwrap();
    let tag = aws_sdk_sns::types::Tag::builder().key("owner").value("ops").build().unwrap();
    moto.sns(R).tag_resource().resource_arn(&topic.id).tags(tag).send().await.unwrap();
    moto.logs(R).put_retention_policy().log_group_name("/batched/g4").retention_in_days(90).send().await.unwrap();
    let drift = engine.refresh(&state).await.expect("refresh");
    let paths = |i: usize| -> Vec<&str> { drift[i].diffs.as_ref().unwrap().iter().map(|d| d.path.as_str()).collect() };
    let urns: Vec<&str> = drift.iter().map(|d| d.urn.as_str()).collect();
    assert_eq!(
        urns,
        [
            "batched-test/aws:ec2:SecurityGroup/g3",
            "batched-test/aws:ec2:Subnet/s7",
            "batched-test/aws:logs:LogGroup/l4",
            "batched-test/aws:sns:Topic/t2",
        ],
        "{drift:?}"
    );
    assert_eq!(paths(0), ["unmanaged_rules"], "{drift:?}");
    assert!(drift[1].observed.is_none(), "the subnet is gone");
    assert_eq!(paths(2), ["retention_days"], "{drift:?}");
    assert_eq!(paths(3), ["tags.owner"], "{drift:?}");
}
