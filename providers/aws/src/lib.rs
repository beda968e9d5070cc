//! AWS providers for cairn: typed resources for stack programs, and the providers that manage
//! them through the AWS SDK.
//!
//! - [`ec2`] networking: `aws:ec2:Vpc`, `aws:ec2:Subnet`, `aws:ec2:InternetGateway`,
//!   `aws:ec2:RouteTable`, `aws:ec2:Route`, `aws:ec2:RouteTableAssociation`,
//!   `aws:ec2:SecurityGroup`, `aws:ec2:SecurityGroupIngressRule`,
//!   `aws:ec2:SecurityGroupEgressRule`, `aws:ec2:VpcEndpoint`
//! - [`ecr`]: `aws:ecr:Repository`, `aws:ecr:ReplicationConfiguration`,
//!   `aws:ecr:RegistryScanningConfiguration`
//! - [`ec2`] compute: `aws:ec2:KeyPair`, `aws:ec2:LaunchTemplate`, `aws:ec2:AmiLookup`,
//!   and `aws:ec2:AvailabilityZones` (a region's zones, looked up)
//! - [`autoscaling`]: `aws:autoscaling:AutoScalingGroup`, `aws:autoscaling:LifecycleHook`,
//!   `aws:autoscaling:ScalingPolicy`
//! - [`sns`]: `aws:sns:Topic`, `aws:sns:Subscription`
//! - [`logs`]: `aws:logs:LogGroup`, `aws:logs:MetricFilter`
//! - [`tagging`]: the inventory of resources tagged for a stack, for `cairn state orphans`
//! - [`route53`]: `aws:route53:HostedZone`, `aws:route53:HostedZoneLookup`,
//!   `aws:route53:RecordSet`, `aws:route53:HealthCheck`
//! - [`cloudwatch`]: `aws:cloudwatch:MetricAlarm`, `aws:cloudwatch:Dashboard`
//! - [`elb`] (Elastic Load Balancing v2): `aws:elb:LoadBalancer`, `aws:elb:TargetGroup`,
//!   `aws:elb:Listener`, `aws:elb:ListenerRule`
//! - [`iam`] (global): `aws:iam:Role`, `aws:iam:InstanceProfile`
//!
//! ```ignore
//! let aws = cairn_aws::Aws::from_env();
//! let registry = cairn_aws::add_to(cairn::providers::local::registry(), &aws);
//! let repo = stack.add("app", cairn_aws::ecr::Repository::new("team/app").in_region("eu-west-1"));
//! let uri = repo.repository_uri.clone();
//! ```
//!
//! Rules every provider here keeps:
//! - Only this crate touches the SDK: resources and providers take and return JSON values and
//!   cairn types, and errors are [`cairn::provider::ProviderError`]s that name the resource's
//!   URN, the AWS operation, the AWS error code and its message.
//! - One [`Aws`] context per program: configuration from the standard chain (with an
//!   optional endpoint override, e.g. a local emulator), one client per service and region,
//!   standard retries with bounded attempts, and time limits per operation and attempt.
//! - The create, read back, find and adopt sequence is written once (`managed.rs`): a
//!   provider implements what is particular to its API; a create whose answer was lost is
//!   recovered by the same lookup `find` uses. A create without an idempotency token that a
//!   repeat would duplicate goes without the SDK's retries and is retried by the provider
//!   after that lookup (`managed::create_retrying`).
//! - Regions are checked against AWS's partitions before any call; an error from refused,
//!   expired or unpermitted credentials says which profile (or variables) to fix and which IAM
//!   action to allow.
//! - Refresh reads many resources of a type per call where the API allows it
//!   (`Provider::read_batch`, `read_many`).
//! - Every taggable resource is tagged `cairn:stack` and `cairn:urn`; `find` adopts a
//!   resource only if its `cairn:urn` tag names the resource being recovered (resources that
//!   cannot be tagged are found by their unique name or identity instead), and never one of
//!   the copies state already holds (`Context::known`: a replacement carries the same tag as
//!   the copy it replaces). Both are decided in `client.rs` (`tagged_for`, `unrecorded`).
//! - `UPDATABLE_OUTPUTS` lists what an in-place update may change (a launch template's
//!   `latest_version`, a route table association's `association_id`, what a lookup finds);
//!   every other output (ids, ARNs, names) keeps its value, so dependents of an updated
//!   resource plan exactly.
//! - Every regional resource has a `region` input, set on the resource (`in_region`) or,
//!   usually, by the `aws` provider configuration chosen for it or its component
//!   ([`Settings`]: region and profile); ids are ARNs where AWS has them, so a resource is
//!   read back (and imported) from its id alone. Each call runs with the credentials of the
//!   resource's profile (`client::Profiled`).
//! - Each type says which outputs an update may change (`UPDATABLE_OUTPUTS`); the others
//!   stay known through an update, so dependents plan exactly.
//! - `read` reports the inputs as AWS has them, so `cairn refresh` shows drift; `None` when
//!   the resource is gone. Deleting a resource that is already gone succeeds.
//! - Inputs are validated before any call, with errors naming the field.
//!
//! The tests (`tests/moto/`) run every provider against a real moto server
//! (`scripts/install-moto.sh`). Where moto differs from AWS, the test that meets it says so in
//! its name and comment; the product code never papers over it:
//! - ECR: turning `scan_on_push` off is ignored by moto (the SDK omits the default `false`,
//!   and moto ignores an empty scanning configuration).
//! - CloudWatch Logs: moto implements neither `AssociateKmsKey` nor `DisassociateKmsKey`
//!   (HTTP 500), does not validate retention periods, and `PutMetricFilter` appends a second
//!   filter of the same name instead of replacing it.
//! - EC2: `DescribeKeyPairs` ignores `KeyPairIds` and `DeleteKeyPair` ignores `KeyPairId`
//!   (the providers use a `key-pair-id` filter and delete by name, which AWS takes too);
//!   `DescribeLaunchTemplates` reports a template's tags as they were at its creation (read
//!   uses `DescribeTags`); `RegisterImage` ignores the architecture; a launch template
//!   version made by `CreateLaunchTemplateVersion` with user data cannot launch instances
//!   (HTTP 500).
//! - Auto Scaling: `StartInstanceRefresh` is not implemented; `UpdateAutoScalingGroup`
//!   ignores `DefaultCooldown`; lifecycle hooks ignore their notification target and role and
//!   report made-up ones; `PutScalingPolicy` answers without the policy ARN (the provider
//!   then reads it with `DescribePolicies`); no availability zone balancing.
//! - CloudWatch (metrics): the SDK speaks only the Smithy RPC v2 CBOR protocol, which moto
//!   does not (it answers 404); the tests send CloudWatch's calls through a proxy that
//!   translates them to moto's JSON protocol and back (`tests/moto/cloudwatch.rs`).
//! - Route 53: moto refuses a `CREATE` of an existing record set only when an identical
//!   change was made before (AWS refuses any), and does not refuse a second
//!   `CreateHostedZone` with the same `CallerReference`.
//! - Elastic Load Balancing v2: moto never refuses a second load balancer of the same name
//!   (its duplicate check compares freshly made ARNs), where AWS answers a repeated create of
//!   the same settings with the existing one; and never answers `DuplicateListener` (it looks
//!   the port up among listeners keyed by ARN). The tests of lost answers there run without
//!   the SDK's retry and recover through the lookup by name (or port) and tag.
//! - IAM: `ListInstanceProfileTags` is not implemented (HTTP 500); the provider reads a
//!   profile's tags from `GetInstanceProfile`, as AWS returns them there too.
//! - EC2 networking: moto ignores `PrivateDnsEnabled` in `ModifyVpcEndpoint`, does not add or
//!   remove a gateway endpoint's routes when its route tables change, and never answers
//!   `DependencyViolation` to `DeleteSecurityGroup` (the bounded wait for dependencies is
//!   tested on a VPC that still has a subnet).

pub mod autoscaling;
mod client;
pub mod cloudwatch;
pub mod ec2;
pub mod ecr;
pub mod elb;
pub mod iam;
pub mod logs;
mod managed;
pub mod route53;
pub mod sns;
pub mod tagging;

use client::Profiled;
pub use client::{Aws, AwsConfig};

/// The settings of an `aws` provider configuration: the region of its resources (unless a
/// resource sets its own), and the profile of the shared config files whose credentials (and
/// so account) they are managed with.
///
/// ```ignore
/// let east = stack.provider("east", cairn_aws::Settings::region("us-east-1"));
/// let audit = stack.provider("audit", cairn_aws::Settings::region("eu-west-1").profile("audit"));
/// stack.component("network-east", |s| {
///     s.use_provider(&east);
///     s.add("vpc", Vpc::new("10.0.0.0/16"));           // in us-east-1
/// });
/// stack.add_with("trail", LogGroup::new("/audit"), Options::new().provider(&audit));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Settings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

impl Settings {
    /// Resources in `region`, with the standard chain's credentials.
    pub fn region(region: &str) -> Settings {
        Settings { region: Some(region.to_string()), profile: None }
    }

    /// The same, managed with the credentials of `profile` (from the shared config files).
    pub fn profile(mut self, profile: &str) -> Settings {
        self.profile = Some(profile.to_string());
        self
    }
}

impl cairn::ProviderSettings for Settings {
    const PACKAGE: &'static str = "aws";
}

macro_rules! regional {
    ($($t:path),* $(,)?) => {$(
        impl $t {
            /// The same resource in `region`, whatever its provider configuration says.
            pub fn in_region(mut self, region: &str) -> Self {
                self.region = Some(region.to_string());
                self
            }
        }
    )*};
}

regional![
    autoscaling::AutoScalingGroup,
    autoscaling::LifecycleHook,
    autoscaling::ScalingPolicy,
    cloudwatch::Dashboard,
    cloudwatch::MetricAlarm,
    ec2::AmiLookup,
    ec2::AvailabilityZones,
    ec2::InternetGateway,
    ec2::KeyPair,
    ec2::LaunchTemplate,
    ec2::Route,
    ec2::RouteTable,
    ec2::RouteTableAssociation,
    ec2::SecurityGroup,
    ec2::SecurityGroupEgressRule,
    ec2::SecurityGroupIngressRule,
    ec2::Subnet,
    ec2::Vpc,
    ec2::VpcEndpoint,
    ecr::RegistryScanningConfiguration,
    ecr::ReplicationConfiguration,
    ecr::Repository,
    elb::Listener,
    elb::ListenerRule,
    elb::LoadBalancer,
    elb::TargetGroup,
    logs::LogGroup,
    logs::MetricFilter,
    sns::Topic,
];

/// Every provider of this crate, sharing `aws`.
pub fn registry(aws: &Aws) -> cairn::provider::Registry {
    add_to(cairn::provider::Registry::new(), aws)
}

/// `registry` plus every provider of this crate, sharing `aws`, and the inventory of what is
/// tagged for a stack (`cairn state orphans`).
pub fn add_to(registry: cairn::provider::Registry, aws: &Aws) -> cairn::provider::Registry {
    registry
        .with_inventory(tagging::TaggedResources::new(aws))
        .with(Profiled(ecr::RepositoryProvider::new(aws)))
        .with(Profiled(ecr::ReplicationConfigurationProvider::new(aws)))
        .with(Profiled(ecr::RegistryScanningConfigurationProvider::new(aws)))
        .with(Profiled(sns::TopicProvider::new(aws)))
        .with(Profiled(sns::SubscriptionProvider::new(aws)))
        .with(Profiled(logs::LogGroupProvider::new(aws)))
        .with(Profiled(logs::MetricFilterProvider::new(aws)))
        .with(Profiled(ec2::KeyPairProvider::new(aws)))
        .with(Profiled(ec2::LaunchTemplateProvider::new(aws)))
        .with(Profiled(ec2::AmiLookupProvider::new(aws)))
        .with(Profiled(ec2::AvailabilityZonesProvider::new(aws)))
        .with(Profiled(autoscaling::AutoScalingGroupProvider::new(aws)))
        .with(Profiled(autoscaling::LifecycleHookProvider::new(aws)))
        .with(Profiled(autoscaling::ScalingPolicyProvider::new(aws)))
        .with(Profiled(route53::HostedZoneProvider::new(aws)))
        .with(Profiled(route53::HostedZoneLookupProvider::new(aws)))
        .with(Profiled(route53::RecordSetProvider::new(aws)))
        .with(Profiled(route53::HealthCheckProvider::new(aws)))
        .with(Profiled(cloudwatch::MetricAlarmProvider::new(aws)))
        .with(Profiled(cloudwatch::DashboardProvider::new(aws)))
        .with(Profiled(ec2::VpcProvider::new(aws)))
        .with(Profiled(ec2::SubnetProvider::new(aws)))
        .with(Profiled(ec2::InternetGatewayProvider::new(aws)))
        .with(Profiled(ec2::RouteTableProvider::new(aws)))
        .with(Profiled(ec2::RouteProvider::new(aws)))
        .with(Profiled(ec2::RouteTableAssociationProvider::new(aws)))
        .with(Profiled(ec2::SecurityGroupProvider::new(aws)))
        .with(Profiled(ec2::SecurityGroupRuleProvider::ingress(aws)))
        .with(Profiled(ec2::SecurityGroupRuleProvider::egress(aws)))
        .with(Profiled(ec2::VpcEndpointProvider::new(aws)))
        .with(Profiled(elb::LoadBalancerProvider::new(aws)))
        .with(Profiled(elb::TargetGroupProvider::new(aws)))
        .with(Profiled(elb::ListenerProvider::new(aws)))
        .with(Profiled(elb::ListenerRuleProvider::new(aws)))
        .with(Profiled(iam::RoleProvider::new(aws)))
        .with(Profiled(iam::InstanceProfileProvider::new(aws)))
}

#[cfg(test)]
mod tests {
    use cairn::Resource;

    /// Every type of this crate: its token, its `UPDATABLE_OUTPUTS`, and the output paths its
    /// typed outputs declare (`cairn::outputs!`).
    fn types() -> Vec<(&'static str, &'static [&'static str], Vec<String>)> {
        macro_rules! types {
            ($($t:ty),* $(,)?) => {
                vec![$((
                    <$t as Resource>::TYPE,
                    <$t as Resource>::UPDATABLE_OUTPUTS,
                    <<$t as Resource>::Outputs as cairn::Outputs>::PATHS.iter().map(|p| p.to_string()).collect(),
                )),*]
            };
        }
        use super::{autoscaling, cloudwatch, ec2, ecr, elb, iam, logs, route53, sns};
        types![
            autoscaling::AutoScalingGroup,
            autoscaling::LifecycleHook,
            autoscaling::ScalingPolicy,
            cloudwatch::Dashboard,
            cloudwatch::MetricAlarm,
            ec2::AmiLookup,
            ec2::AvailabilityZones,
            ec2::InternetGateway,
            ec2::KeyPair,
            ec2::LaunchTemplate,
            ec2::Route,
            ec2::RouteTable,
            ec2::RouteTableAssociation,
            ec2::SecurityGroup,
            ec2::SecurityGroupEgressRule,
            ec2::SecurityGroupIngressRule,
            ec2::Subnet,
            ec2::Vpc,
            ec2::VpcEndpoint,
            ecr::RegistryScanningConfiguration,
            ecr::ReplicationConfiguration,
            ecr::Repository,
            elb::Listener,
            elb::ListenerRule,
            elb::LoadBalancer,
            elb::TargetGroup,
            iam::InstanceProfile,
            iam::Role,
            logs::LogGroup,
            logs::MetricFilter,
            route53::HealthCheck,
            route53::HostedZone,
            route53::HostedZoneLookup,
            route53::RecordSet,
            sns::Subscription,
            sns::Topic,
        ]
    }

    #[test]
    fn updatable_outputs_name_real_outputs_of_every_type() {
        let types = types();
        let registry = super::registry(&super::Aws::default());
        let tokens: Vec<&str> = types.iter().map(|(t, _, _)| *t).collect();
        assert_eq!(tokens, registry.types().collect::<Vec<_>>(), "the list above is every type of the registry");
        let vpc = types.iter().find(|(t, _, _)| *t == "aws:ec2:Vpc").unwrap();
        assert_eq!(vpc.2, ["id", "cidr_block", "default_security_group_id", "main_route_table_id"], "paths are read");
        // `a` is `b`, or lies inside it, or holds it (dotted paths).
        let related = |a: &str, b: &str| {
            a == b
                || a.strip_prefix(b).is_some_and(|r| r.starts_with('.'))
                || b.strip_prefix(a).is_some_and(|r| r.starts_with('.'))
        };
        for (token, updatable, outputs) in &types {
            assert!(!outputs.is_empty(), "{token}: no typed outputs were read");
            for u in *updatable {
                assert!(
                    outputs.iter().any(|o| related(u, o)),
                    "{token}: `UPDATABLE_OUTPUTS` names `{u}`, not one of {outputs:?}"
                );
            }
        }
        // What an update changes, type by type (everything else is kept: ids, ARNs, names).
        let declared: Vec<(&str, &[&str])> =
            types.iter().filter(|(_, u, _)| !u.is_empty()).map(|(t, u, _)| (*t, *u)).collect();
        assert_eq!(
            declared,
            [
                ("aws:ec2:AmiLookup", &["image_id", "name", "creation_date"][..]),
                ("aws:ec2:AvailabilityZones", &["names", "zone_ids"][..]),
                ("aws:ec2:LaunchTemplate", &["latest_version"][..]),
                ("aws:ec2:RouteTableAssociation", &["association_id"][..]),
                ("aws:route53:HostedZoneLookup", &["zone_id"][..]),
            ]
        );
    }

    #[test]
    fn the_registry_has_every_provider() {
        let registry = super::registry(&super::Aws::default());
        assert_eq!(
            registry.types().collect::<Vec<_>>(),
            [
                "aws:autoscaling:AutoScalingGroup",
                "aws:autoscaling:LifecycleHook",
                "aws:autoscaling:ScalingPolicy",
                "aws:cloudwatch:Dashboard",
                "aws:cloudwatch:MetricAlarm",
                "aws:ec2:AmiLookup",
                "aws:ec2:AvailabilityZones",
                "aws:ec2:InternetGateway",
                "aws:ec2:KeyPair",
                "aws:ec2:LaunchTemplate",
                "aws:ec2:Route",
                "aws:ec2:RouteTable",
                "aws:ec2:RouteTableAssociation",
                "aws:ec2:SecurityGroup",
                "aws:ec2:SecurityGroupEgressRule",
                "aws:ec2:SecurityGroupIngressRule",
                "aws:ec2:Subnet",
                "aws:ec2:Vpc",
                "aws:ec2:VpcEndpoint",
                "aws:ecr:RegistryScanningConfiguration",
                "aws:ecr:ReplicationConfiguration",
                "aws:ecr:Repository",
                "aws:elb:Listener",
                "aws:elb:ListenerRule",
                "aws:elb:LoadBalancer",
                "aws:elb:TargetGroup",
                "aws:iam:InstanceProfile",
                "aws:iam:Role",
                "aws:logs:LogGroup",
                "aws:logs:MetricFilter",
                "aws:route53:HealthCheck",
                "aws:route53:HostedZone",
                "aws:route53:HostedZoneLookup",
                "aws:route53:RecordSet",
                "aws:sns:Subscription",
                "aws:sns:Topic",
            ]
        );
    }
}
