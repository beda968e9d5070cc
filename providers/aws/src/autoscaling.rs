//! Amazon EC2 Auto Scaling: `aws:autoscaling:AutoScalingGroup`, `aws:autoscaling:LifecycleHook`
//! and `aws:autoscaling:ScalingPolicy` (target tracking).
//!
//! A group's id is its name (unique per account and region; names cannot hold `:`), in the
//! resource's `region`. A group is tagged `cairn:stack` and `cairn:urn` (both propagated to its
//! instances) and found again after a crash by its name, adopted only if its `cairn:urn` tag
//! names the resource being recovered. Hooks and policies cannot be tagged: they are found by
//! their group and name. `PutLifecycleHook` and `PutScalingPolicy` create or replace, so both
//! change in place.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_autoscaling::types::{
    AutoScalingGroup as SdkGroup, InstanceRefreshStatus, LaunchTemplateSpecification, LifecycleState, MetricType,
    PredefinedMetricSpecification, RefreshPreferences, Tag, TargetTrackingConfiguration,
};
use cairn::provider::{Context, Created, Observed, Provider, ProviderError, ReadItem};
use cairn::{Input, Resource};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::client::{
    adoptable, all_tags, by_region, if_unrecorded, invalid, parse_arn, parse_inputs, region_of, tagged_for,
    validate_tags, AtUrn, Aws, AwsError, SdkResultExt, TAG_URN,
};

const AUTOSCALING: &str = "AutoScaling";

/// How often a wait looks again.
const POLL: Duration = Duration::from_secs(5);
/// How long `delete` waits for a group to be gone.
const DELETE_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// Auto Scaling reports a group, hook or policy that does not exist as a `ValidationError`
/// whose message says "not found".
fn is_not_found(e: &AwsError) -> bool {
    e.is(&["ValidationError"]) && e.to_string().to_ascii_lowercase().contains("not found")
}

fn found_or_none<T>(r: Result<T, AwsError>) -> Result<Option<T>, AwsError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A progress line of a long wait, for the person watching a deploy (a `tracing` event: the
/// CLI shows it with `RUST_LOG=info`, and it is in the logs of a CI run).
/// Whether an instance refresh in this state has ended (successfully or not).
fn refresh_ended(s: &InstanceRefreshStatus) -> bool {
    matches!(
        s,
        InstanceRefreshStatus::Successful
            | InstanceRefreshStatus::Failed
            | InstanceRefreshStatus::Cancelled
            | InstanceRefreshStatus::RollbackSuccessful
            | InstanceRefreshStatus::RollbackFailed
    )
}

fn progress(ctx: Context<'_>, message: &str) {
    tracing::info!(urn = %ctx.urn, "{message}");
}

// ---------------------------------------------------------------------------------------------
// Groups

/// An Auto Scaling group launching instances from an explicit launch template version into
/// subnets (typically in several availability zones).
///
/// Changing `name` or `region` replaces it (the old group is deleted first: names are unique).
/// Everything else changes in place with `UpdateAutoScalingGroup`. When the launch template
/// (or its version) changes and `instance_refresh` is set, an instance refresh replaces the
/// running instances, and the deploy waits for it to end (its progress shown, bounded by
/// `instance_refresh.timeout_seconds`): a refresh that fails is an error saying whether AWS
/// rolled the group back, and one already in progress is waited for before this one starts.
/// Without it, only new instances use the new version.
///
/// After a create or update, the provider waits (up to `wait_for_capacity_timeout` seconds)
/// until at least `min_size` instances are `InService`. Deleting force-deletes the group (its
/// instances are terminated) and waits until it is gone.
#[derive(Debug, Clone, Serialize)]
pub struct AutoScalingGroup {
    /// Up to 255 characters, no `:`; unique per region.
    pub name: Input<String>,
    /// The region; `None`: the region of the `aws` provider configuration chosen for the
    /// resource or its component (see [`crate::Settings`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// `lt-…`, e.g. a [`crate::ec2::LaunchTemplate`]'s `id`.
    pub launch_template_id: Input<String>,
    /// An explicit version number (e.g. the template's `latest_version`), never `$Latest` or
    /// `$Default`, so that a new template version shows as a change of this group.
    pub launch_template_version: Input<String>,
    pub min_size: i32,
    pub max_size: i32,
    /// `None`: left to scaling policies (AWS starts at `min_size`), and not drift.
    pub desired_capacity: Option<i32>,
    /// Subnets to launch into (their availability zones are the group's).
    pub subnet_ids: Vec<Input<String>>,
    /// Target groups (an [`crate::elb::TargetGroup`]'s `arn`) its instances register with;
    /// with [`HealthCheckType::Elb`], an instance their health checks fail is replaced.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub target_group_arns: Vec<Input<String>>,
    pub health_check_type: HealthCheckType,
    /// Seconds after launch before health checks count.
    pub health_check_grace_period: i32,
    /// Seconds between scaling activities of simple scaling policies.
    pub default_cooldown: i32,
    /// Tags besides the `cairn:stack` and `cairn:urn` tags cairn adds (which propagate).
    pub tags: BTreeMap<String, GroupTag>,
    /// Seconds to wait for `min_size` InService instances after a create or update; 0: do not
    /// wait. Not an AWS setting: it only changes what the provider does.
    pub wait_for_capacity_timeout: u64,
    /// Replace running instances when the launch template version changes; `None`: do not.
    pub instance_refresh: Option<InstanceRefresh>,
}

impl AutoScalingGroup {
    /// A group of `min..=max` instances with EC2 health checks, 300 s grace period and
    /// cooldown, a 600 s capacity wait, no tags and no instance refresh.
    pub fn new(
        name: impl Into<Input<String>>,
        launch_template_id: impl Into<Input<String>>,
        launch_template_version: impl Into<Input<String>>,
        min_size: i32,
        max_size: i32,
        subnet_ids: Vec<Input<String>>,
    ) -> AutoScalingGroup {
        AutoScalingGroup {
            name: name.into(),
            region: None,
            launch_template_id: launch_template_id.into(),
            launch_template_version: launch_template_version.into(),
            min_size,
            max_size,
            desired_capacity: None,
            subnet_ids,
            target_group_arns: Vec::new(),
            health_check_type: HealthCheckType::Ec2,
            health_check_grace_period: 300,
            default_cooldown: 300,
            tags: BTreeMap::new(),
            wait_for_capacity_timeout: 600,
            instance_refresh: None,
        }
    }
}

/// What decides that an instance is unhealthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HealthCheckType {
    /// EC2's status checks.
    #[serde(rename = "EC2")]
    Ec2,
    /// The load balancer's health checks too.
    #[serde(rename = "ELB")]
    Elb,
}

/// A group tag's value, and whether instances launched by the group get it too.
#[derive(Debug, Clone, Serialize)]
pub struct GroupTag {
    pub value: Input<String>,
    pub propagate_at_launch: bool,
}

/// How an instance refresh replaces instances when the launch template version changes, and
/// how long a deploy waits for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceRefresh {
    /// The share of capacity (0 to 100) that must stay healthy while instances are replaced.
    pub min_healthy_percentage: i32,
    /// How long a deploy waits for the refresh to end, in seconds. Not an AWS setting: a
    /// refresh that outlasts it goes on in AWS, and the deploy stops with an error saying so.
    #[serde(default = "half_hour")]
    pub timeout_seconds: u64,
    /// Whether AWS rolls the group back to the previous launch template version when the
    /// refresh fails (`AutoRollback`).
    #[serde(default = "yes")]
    pub auto_rollback: bool,
}

impl InstanceRefresh {
    /// Keep `min_healthy_percentage` of capacity healthy, wait up to 30 minutes, roll back on
    /// failure.
    pub fn new(min_healthy_percentage: i32) -> InstanceRefresh {
        InstanceRefresh { min_healthy_percentage, timeout_seconds: half_hour(), auto_rollback: true }
    }
}

fn half_hour() -> u64 {
    1800
}

fn yes() -> bool {
    true
}

/// How often a deploy asks how an instance refresh is going, unless the provider is built
/// `with_refresh_poll`.
pub const REFRESH_POLL: Duration = Duration::from_secs(15);

cairn::outputs! {
    /// The outputs of an [`AutoScalingGroup`].
    pub struct AutoScalingGroupOutputs {
        pub name: String,
        pub arn: String,
    }
}

impl Resource for AutoScalingGroup {
    const TYPE: &'static str = "aws:autoscaling:AutoScalingGroup";
    const PROVIDER_INPUTS: &'static [&'static str] = &["region"];
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["name", "region"];
    const DELETE_BEFORE_REPLACE: bool = true;
    type Outputs = AutoScalingGroupOutputs;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TagArgs {
    value: String,
    propagate_at_launch: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupArgs {
    name: String,
    #[serde(default)]
    region: Option<String>,
    launch_template_id: String,
    launch_template_version: String,
    min_size: i32,
    max_size: i32,
    #[serde(default)]
    desired_capacity: Option<i32>,
    subnet_ids: Vec<String>,
    #[serde(default)]
    target_group_arns: Vec<String>,
    #[serde(default = "ec2")]
    health_check_type: String,
    #[serde(default = "three_hundred")]
    health_check_grace_period: i32,
    #[serde(default = "three_hundred")]
    default_cooldown: i32,
    #[serde(default)]
    tags: BTreeMap<String, TagArgs>,
    #[serde(default = "six_hundred")]
    wait_for_capacity_timeout: u64,
    #[serde(default)]
    instance_refresh: Option<InstanceRefresh>,
}

fn ec2() -> String {
    "EC2".into()
}
fn three_hundred() -> i32 {
    300
}
fn six_hundred() -> u64 {
    600
}

impl GroupArgs {
    fn parse(inputs: &Value) -> Result<GroupArgs, String> {
        let t = AutoScalingGroup::TYPE;
        let args: GroupArgs = parse_inputs(t, inputs)?;
        if args.name.is_empty() || args.name.chars().count() > 255 || args.name.contains(':') {
            return Err(format!("{t}: `name` must be 1 to 255 characters without `:`"));
        }
        if !args.launch_template_id.starts_with("lt-") {
            return Err(format!(
                "{t}: `launch_template_id` must be a launch template id (`lt-…`), got `{}`",
                args.launch_template_id
            ));
        }
        if args.launch_template_version.parse::<u64>().map_or(true, |v| v == 0) {
            return Err(format!(
                "{t}: `launch_template_version` must be an explicit version number (not `$Latest` or `$Default`), got `{}`",
                args.launch_template_version
            ));
        }
        for arn in &args.target_group_arns {
            let group = crate::client::parse_arn(arn)
                .is_some_and(|a| a.service == "elasticloadbalancing" && a.resource.starts_with("targetgroup/"));
            if !group {
                return Err(format!("{t}: `target_group_arns`: `{arn}` is not a target group ARN"));
            }
        }
        if args.min_size < 0 || args.max_size < args.min_size {
            return Err(format!(
                "{t}: `min_size` ({}) and `max_size` ({}) must satisfy 0 <= min_size <= max_size",
                args.min_size, args.max_size
            ));
        }
        if let Some(d) = args.desired_capacity.filter(|d| *d < args.min_size || *d > args.max_size) {
            return Err(format!(
                "{t}: `desired_capacity` ({d}) must be between `min_size` ({}) and `max_size` ({})",
                args.min_size, args.max_size
            ));
        }
        if args.subnet_ids.is_empty() {
            return Err(format!("{t}: `subnet_ids` must name at least one subnet"));
        }
        if let Some(s) = args.subnet_ids.iter().find(|s| !s.starts_with("subnet-")) {
            return Err(format!("{t}: `subnet_ids` entry `{s}` is not a subnet id (`subnet-…`)"));
        }
        if !matches!(args.health_check_type.as_str(), "EC2" | "ELB") {
            return Err(format!("{t}: `health_check_type` must be EC2 or ELB, got `{}`", args.health_check_type));
        }
        if args.health_check_grace_period < 0 {
            return Err(format!("{t}: `health_check_grace_period` must not be negative"));
        }
        if args.default_cooldown < 0 {
            return Err(format!("{t}: `default_cooldown` must not be negative"));
        }
        if let Some(r) = &args.instance_refresh {
            if !(0..=100).contains(&r.min_healthy_percentage) {
                return Err(format!(
                    "{t}: `instance_refresh.min_healthy_percentage` must be 0 to 100, got {}",
                    r.min_healthy_percentage
                ));
            }
            if r.timeout_seconds == 0 {
                return Err(format!("{t}: `instance_refresh.timeout_seconds` must be at least 1"));
            }
        }
        let plain: BTreeMap<String, String> = args.tags.iter().map(|(k, v)| (k.clone(), v.value.clone())).collect();
        validate_tags(t, &plain)?;
        Ok(args)
    }

    fn launch_template(&self) -> LaunchTemplateSpecification {
        LaunchTemplateSpecification::builder()
            .launch_template_id(&self.launch_template_id)
            .version(&self.launch_template_version)
            .build()
    }
}

/// The group's tags for AWS: the user's, and cairn's (propagated at launch).
fn group_tags(ctx: Context<'_>, name: &str, args: &GroupArgs) -> Vec<Tag> {
    let tag = |k: &str, v: &str, propagate: bool| {
        Tag::builder()
            .resource_id(name)
            .resource_type("auto-scaling-group")
            .key(k)
            .value(v)
            .propagate_at_launch(propagate)
            .build()
    };
    let mut tags: Vec<Tag> = args.tags.iter().map(|(k, t)| tag(k, &t.value, t.propagate_at_launch)).collect();
    tags.extend(all_tags(ctx, &BTreeMap::new()).iter().map(|(k, v)| tag(k, v, true)));
    tags
}

/// The provider of [`AutoScalingGroup`]. Its id is the group's name.
#[derive(Debug, Clone)]
pub struct AutoScalingGroupProvider {
    aws: Aws,
    refresh_poll: Duration,
}

impl AutoScalingGroupProvider {
    pub fn new(aws: &Aws) -> AutoScalingGroupProvider {
        AutoScalingGroupProvider { aws: aws.clone(), refresh_poll: REFRESH_POLL }
    }

    /// The same provider, asking how an instance refresh is going every `every` instead of
    /// [`REFRESH_POLL`].
    pub fn with_refresh_poll(mut self, every: Duration) -> AutoScalingGroupProvider {
        self.refresh_poll = every;
        self
    }

    /// Starts an instance refresh of group `name` onto its launch template `version`, and waits
    /// for it to end. A refresh already in progress (left by a deploy that was stopped, or
    /// started by hand) is waited for first, whatever its outcome, and then this one starts.
    async fn roll_out(
        &self,
        ctx: Context<'_>,
        region: &str,
        name: &str,
        version: &str,
        refresh: &InstanceRefresh,
    ) -> Result<(), ProviderError> {
        let asg = self.aws.autoscaling(region).await;
        let deadline = Instant::now() + Duration::from_secs(refresh.timeout_seconds);
        let start = || {
            asg.start_instance_refresh()
                .auto_scaling_group_name(name)
                .preferences(
                    RefreshPreferences::builder()
                        .min_healthy_percentage(refresh.min_healthy_percentage)
                        .auto_rollback(refresh.auto_rollback)
                        .build(),
                )
                .send()
        };
        let id = match start().await.op(AUTOSCALING, "StartInstanceRefresh") {
            Ok(out) => out.instance_refresh_id().unwrap_or_default().to_string(),
            Err(e) if e.is(&["InstanceRefreshInProgress"]) => {
                let running = self.active_refresh(ctx, region, name).await?;
                if let Some(running) = &running {
                    progress(ctx, &format!("waiting for instance refresh {running} of `{name}`, already in progress"));
                    // Its failure is not this deploy's: it ends, then this one starts.
                    let _ = self.await_refresh(ctx, region, name, running, deadline, refresh).await;
                }
                let out = start().await.op(AUTOSCALING, "StartInstanceRefresh").at(ctx)?;
                out.instance_refresh_id().unwrap_or_default().to_string()
            }
            Err(e) => return Err(e.at(ctx)),
        };
        progress(ctx, &format!("started instance refresh {id} of `{name}` (launch template version {version})"));
        self.await_refresh(ctx, region, name, &id, deadline, refresh).await
    }

    /// The id of the group's refresh that has not ended yet, if there is one.
    async fn active_refresh(
        &self,
        ctx: Context<'_>,
        region: &str,
        name: &str,
    ) -> Result<Option<String>, ProviderError> {
        let out = self
            .aws
            .autoscaling(region)
            .await
            .describe_instance_refreshes()
            .auto_scaling_group_name(name)
            .send()
            .await
            .op(AUTOSCALING, "DescribeInstanceRefreshes")
            .at(ctx)?;
        Ok(out
            .instance_refreshes()
            .iter()
            .find(|r| r.status().is_some_and(|s| !refresh_ended(s)))
            .and_then(|r| r.instance_refresh_id().map(str::to_string)))
    }

    /// Waits until refresh `id` ends, showing its progress; an error when it did not succeed
    /// or did not end by `deadline`, saying what state the group is left in.
    async fn await_refresh(
        &self,
        ctx: Context<'_>,
        region: &str,
        name: &str,
        id: &str,
        deadline: Instant,
        refresh: &InstanceRefresh,
    ) -> Result<(), ProviderError> {
        let asg = self.aws.autoscaling(region).await;
        let mut shown = None;
        loop {
            let out = asg
                .describe_instance_refreshes()
                .auto_scaling_group_name(name)
                .instance_refresh_ids(id)
                .send()
                .await
                .op(AUTOSCALING, "DescribeInstanceRefreshes")
                .at(ctx)?;
            let Some(r) = out.instance_refreshes().iter().find(|r| r.instance_refresh_id() == Some(id)) else {
                return Err(invalid(ctx, format!("instance refresh {id} of `{name}` is not known to AWS")));
            };
            let status = r.status().cloned().unwrap_or(InstanceRefreshStatus::Pending);
            let percent = r.percentage_complete().unwrap_or(0);
            let reason = r.status_reason().map(|m| format!(": {m}")).unwrap_or_default();
            if shown != Some((status.clone(), percent)) {
                let left = r.instances_to_update().map(|n| format!(", {n} instance(s) to update")).unwrap_or_default();
                progress(ctx, &format!("instance refresh {id} of `{name}`: {} {percent}%{left}", status.as_str()));
                shown = Some((status.clone(), percent));
            }
            match status {
                InstanceRefreshStatus::Successful => return Ok(()),
                InstanceRefreshStatus::RollbackSuccessful => {
                    return Err(invalid(
                        ctx,
                        format!(
                            "instance refresh {id} of `{name}` failed and was rolled back{reason}; the group runs \
                             its previous launch template version again: fix the template, then deploy again"
                        ),
                    ));
                }
                s if refresh_ended(&s) => {
                    let left = if refresh.auto_rollback { "" } else { " (auto_rollback is off)" };
                    return Err(invalid(
                        ctx,
                        format!(
                            "instance refresh {id} of `{name}` ended {}{reason}; the group may run a mix of \
                             launch template versions{left}: deploy again to start another refresh",
                            s.as_str()
                        ),
                    ));
                }
                _ => {}
            }
            if Instant::now() + self.refresh_poll > deadline {
                return Err(invalid(
                    ctx,
                    format!(
                        "instance refresh {id} of `{name}` is still {} ({percent}%) after waiting {}s; it goes on in \
                         AWS: deploy again to wait for it, or stop it with `aws autoscaling cancel-instance-refresh \
                         --auto-scaling-group-name {name} --region {region}`",
                        status.as_str(),
                        refresh.timeout_seconds
                    ),
                ));
            }
            tokio::time::sleep(self.refresh_poll).await;
        }
    }

    /// The group, unless it does not exist (or is being deleted).
    async fn group(&self, region: &str, name: &str) -> Result<Option<SdkGroup>, AwsError> {
        let out = self
            .aws
            .autoscaling(region)
            .await
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send()
            .await
            .op(AUTOSCALING, "DescribeAutoScalingGroups")?;
        Ok(out
            .auto_scaling_groups()
            .iter()
            .find(|g| g.auto_scaling_group_name() == Some(name))
            .filter(|g| g.status() != Some("Delete in progress"))
            .cloned())
    }

    /// The group as inputs and outputs, and its `cairn:urn` tag. `prior` supplies what AWS
    /// does not keep (the wait and refresh settings) and decides how equivalent answers are
    /// shown (the order of subnets; an unmanaged desired capacity).
    fn observed(region: &str, g: &SdkGroup, prior: &Value) -> (Observed, Option<String>) {
        let name = g.auto_scaling_group_name().unwrap_or_default().to_string();
        let mut tags = BTreeMap::new();
        let mut urn = None;
        for t in g.tags() {
            let (Some(k), v) = (t.key(), t.value().unwrap_or_default()) else { continue };
            if k == TAG_URN {
                urn = Some(v.to_string());
            }
            if !k.starts_with("cairn:") {
                tags.insert(
                    k.to_string(),
                    json!({"value": v, "propagate_at_launch": t.propagate_at_launch().unwrap_or(false)}),
                );
            }
        }
        let mut subnets: Vec<String> = g
            .vpc_zone_identifier()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if let Some(prior_subnets) =
            prior.get("subnet_ids").and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok())
        {
            let (mut a, mut b) = (prior_subnets.clone(), subnets.clone());
            a.sort();
            b.sort();
            if a == b {
                subnets = prior_subnets;
            }
        }
        let desired = match prior.get("desired_capacity") {
            Some(Value::Null) => Value::Null,
            _ => json!(g.desired_capacity()),
        };
        let lt = g.launch_template();
        let inputs = json!({
            "name": name,
            "region": region,
            "launch_template_id": lt.and_then(|l| l.launch_template_id()),
            "launch_template_version": lt.and_then(|l| l.version()),
            "min_size": g.min_size(),
            "max_size": g.max_size(),
            "desired_capacity": desired,
            "subnet_ids": subnets,
            "target_group_arns": crate::managed::same_set_or(g.target_group_arns().to_vec(), prior, "target_group_arns"),
            "health_check_type": g.health_check_type(),
            "health_check_grace_period": g.health_check_grace_period(),
            "default_cooldown": g.default_cooldown(),
            "tags": tags,
            "wait_for_capacity_timeout": prior.get("wait_for_capacity_timeout").cloned().unwrap_or(json!(600)),
            "instance_refresh": prior.get("instance_refresh").cloned().unwrap_or(Value::Null),
        });
        let mut inputs = inputs;
        if g.target_group_arns().is_empty() {
            // Declared only when there are some (the field is left out of a program's inputs).
            inputs.as_object_mut().map(|m| m.remove("target_group_arns"));
        }
        let outputs = json!({"name": name, "arn": g.auto_scaling_group_arn().unwrap_or_default()});
        (Observed { id: name, inputs, outputs }, urn)
    }

    /// Waits until the group has at least `min_size` InService instances, or fails after
    /// `wait_for_capacity_timeout` seconds naming what it saw.
    async fn wait_for_capacity(&self, ctx: Context<'_>, region: &str, args: &GroupArgs) -> Result<(), ProviderError> {
        if args.wait_for_capacity_timeout == 0 {
            return Ok(());
        }
        let want = usize::try_from(args.min_size).unwrap_or(0);
        let limit = Duration::from_secs(args.wait_for_capacity_timeout);
        let start = Instant::now();
        loop {
            let g = self.group(region, &args.name).await.at(ctx)?.ok_or_else(|| {
                invalid(ctx, format!("Auto Scaling group `{}` vanished while waiting for capacity", args.name))
            })?;
            let in_service =
                g.instances().iter().filter(|i| i.lifecycle_state() == Some(&LifecycleState::InService)).count();
            if in_service >= want {
                return Ok(());
            }
            let states: Vec<String> = g
                .instances()
                .iter()
                .map(|i| {
                    format!(
                        "{} {}",
                        i.instance_id().unwrap_or("?"),
                        i.lifecycle_state().map(|s| s.as_str()).unwrap_or("?")
                    )
                })
                .collect();
            let seen = format!(
                "{in_service} of {want} InService instances (instances: {})",
                if states.is_empty() { "none".to_string() } else { states.join(", ") }
            );
            if start.elapsed() >= limit {
                let activity = self.last_activity(region, &args.name).await;
                return Err(invalid(
                    ctx,
                    format!(
                        "Auto Scaling group `{}` has {seen} after waiting {}s (`wait_for_capacity_timeout`){}",
                        args.name,
                        limit.as_secs(),
                        activity.map(|a| format!("; last scaling activity: {a}")).unwrap_or_default()
                    ),
                ));
            }
            progress(
                ctx,
                &format!(
                    "waiting for Auto Scaling group `{}`: {seen}, {}s elapsed",
                    args.name,
                    start.elapsed().as_secs()
                ),
            );
            tokio::time::sleep(POLL.min(limit.saturating_sub(start.elapsed())).max(Duration::from_millis(100))).await;
        }
    }

    /// The latest scaling activity, for a timeout's error (launch failures are told there).
    async fn last_activity(&self, region: &str, name: &str) -> Option<String> {
        let out = self
            .aws
            .autoscaling(region)
            .await
            .describe_scaling_activities()
            .auto_scaling_group_name(name)
            .max_records(1)
            .send()
            .await
            .ok()?;
        let a = out.activities().first()?;
        Some(format!(
            "{} ({}{})",
            a.description().unwrap_or_default(),
            a.status_code().map(|s| s.as_str()).unwrap_or("?"),
            a.status_message().map(|m| format!(": {m}")).unwrap_or_default()
        ))
    }

    /// Brings an existing group from `old` to `args`.
    async fn change(
        &self,
        ctx: Context<'_>,
        region: &str,
        old: &GroupArgs,
        args: &GroupArgs,
    ) -> Result<(), ProviderError> {
        let asg = self.aws.autoscaling(region).await;
        asg.update_auto_scaling_group()
            .auto_scaling_group_name(&args.name)
            .launch_template(args.launch_template())
            .min_size(args.min_size)
            .max_size(args.max_size)
            .set_desired_capacity(args.desired_capacity)
            .vpc_zone_identifier(args.subnet_ids.join(","))
            .health_check_type(&args.health_check_type)
            .health_check_grace_period(args.health_check_grace_period)
            .default_cooldown(args.default_cooldown)
            .send()
            .await
            .op(AUTOSCALING, "UpdateAutoScalingGroup")
            .at(ctx)?;
        let attach: Vec<String> =
            args.target_group_arns.iter().filter(|a| !old.target_group_arns.contains(a)).cloned().collect();
        if !attach.is_empty() {
            asg.attach_load_balancer_target_groups()
                .auto_scaling_group_name(&args.name)
                .set_target_group_arns(Some(attach))
                .send()
                .await
                .op(AUTOSCALING, "AttachLoadBalancerTargetGroups")
                .at(ctx)?;
        }
        let detach: Vec<String> =
            old.target_group_arns.iter().filter(|a| !args.target_group_arns.contains(a)).cloned().collect();
        if !detach.is_empty() {
            asg.detach_load_balancer_target_groups()
                .auto_scaling_group_name(&args.name)
                .set_target_group_arns(Some(detach))
                .send()
                .await
                .op(AUTOSCALING, "DetachLoadBalancerTargetGroups")
                .at(ctx)?;
        }
        let removed: Vec<Tag> = old
            .tags
            .keys()
            .filter(|k| !args.tags.contains_key(*k))
            .map(|k| Tag::builder().resource_id(&args.name).resource_type("auto-scaling-group").key(k).build())
            .collect();
        if !removed.is_empty() {
            asg.delete_tags().set_tags(Some(removed)).send().await.op(AUTOSCALING, "DeleteTags").at(ctx)?;
        }
        // Always: this also moves the `cairn:urn` tag along with a renamed (aliased) resource.
        asg.create_or_update_tags()
            .set_tags(Some(group_tags(ctx, &args.name, args)))
            .send()
            .await
            .op(AUTOSCALING, "CreateOrUpdateTags")
            .at(ctx)?;
        let template_changed = old.launch_template_id != args.launch_template_id
            || old.launch_template_version != args.launch_template_version;
        if let (true, Some(refresh)) = (template_changed, &args.instance_refresh) {
            self.roll_out(ctx, region, &args.name, &args.launch_template_version, refresh).await?;
        }
        self.wait_for_capacity(ctx, region, args).await
    }
}

#[async_trait::async_trait]
impl Provider for AutoScalingGroupProvider {
    fn type_token(&self) -> &'static str {
        AutoScalingGroup::TYPE
    }

    /// `DescribeAutoScalingGroups` takes 100 names a page.
    fn read_batch(&self) -> usize {
        100
    }

    /// One `DescribeAutoScalingGroups` per region (and page) for all of them.
    async fn read_many(&self, items: &[ReadItem<'_>]) -> Result<Vec<Option<Observed>>, ProviderError> {
        let mut seen = vec![None; items.len()];
        for (region, indexes) in by_region(&self.aws, items).await? {
            let asg = self.aws.autoscaling(&region).await;
            let names: Vec<String> = indexes.iter().map(|&i| items[i].id.to_string()).collect();
            let mut groups: BTreeMap<String, SdkGroup> = BTreeMap::new();
            let mut token = None;
            loop {
                let page = asg
                    .describe_auto_scaling_groups()
                    .set_auto_scaling_group_names(Some(names.clone()))
                    .max_records(100)
                    .set_next_token(token)
                    .send()
                    .await
                    .op(AUTOSCALING, "DescribeAutoScalingGroups")
                    .at(items[indexes[0]].ctx)?;
                for g in page.auto_scaling_groups().iter().filter(|g| g.status() != Some("Delete in progress")) {
                    groups.insert(g.auto_scaling_group_name().unwrap_or_default().to_string(), g.clone());
                }
                match page.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_string()),
                    _ => break,
                }
            }
            for i in indexes {
                seen[i] = groups.get(items[i].id).map(|g| Self::observed(&region, g, items[i].inputs).0);
            }
        }
        Ok(seen)
    }

    fn identity(&self, inputs: &Value) -> Value {
        json!({"region": inputs.get("region"), "name": inputs.get("name")})
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let args = GroupArgs::parse(inputs).map_err(|e| invalid(ctx, e))?;
        let region = self.aws.region(args.region.as_deref()).await.map_err(|e| invalid(ctx, e))?;
        // A create retried after a crash finds its group by name and takes it over (if it
        // carries this resource's URN), bringing it to these inputs.
        if let Some(g) = self.group(&region, &args.name).await.at(ctx)? {
            let (seen, urn) = Self::observed(&region, &g, inputs);
            if !tagged_for(ctx, urn.as_deref()) {
                return Err(invalid(
                    ctx,
                    format!(
                        "Auto Scaling group `{}` already exists in {region} and is not managed by this resource",
                        args.name
                    ),
                ));
            }
            let old = GroupArgs::parse(&seen.inputs).map_err(|e| invalid(ctx, e))?;
            self.change(ctx, &region, &old, &args).await?;
            return Ok(Created { id: seen.id, outputs: seen.outputs });
        }
        self.aws
            .autoscaling(&region)
            .await
            .create_auto_scaling_group()
            .auto_scaling_group_name(&args.name)
            .launch_template(args.launch_template())
            .min_size(args.min_size)
            .max_size(args.max_size)
            .set_desired_capacity(args.desired_capacity)
            .vpc_zone_identifier(args.subnet_ids.join(","))
            .set_target_group_arns((!args.target_group_arns.is_empty()).then(|| args.target_group_arns.clone()))
            .health_check_type(&args.health_check_type)
            .health_check_grace_period(args.health_check_grace_period)
            .default_cooldown(args.default_cooldown)
            .set_tags(Some(group_tags(ctx, &args.name, &args)))
            .send()
            .await
            .op(AUTOSCALING, "CreateAutoScalingGroup")
            .at(ctx)?;
        self.wait_for_capacity(ctx, &region, &args).await?;
        let g =
            self.group(&region, &args.name).await.at(ctx)?.ok_or_else(|| {
                invalid(ctx, format!("Auto Scaling group `{}` vanished after its creation", args.name))
            })?;
        let (seen, _) = Self::observed(&region, &g, inputs);
        Ok(Created { id: seen.id, outputs: seen.outputs })
    }

    async fn read(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        if id.is_empty() {
            return Err(invalid(ctx, "empty Auto Scaling group name"));
        }
        let region = region_of(&self.aws, ctx, inputs).await?;
        Ok(self.group(&region, id).await.at(ctx)?.map(|g| Self::observed(&region, &g, inputs).0))
    }

    async fn update(&self, ctx: Context<'_>, id: &str, old: &Value, new: &Value) -> Result<Value, ProviderError> {
        let old = GroupArgs::parse(old).map_err(|e| invalid(ctx, e))?;
        let args = GroupArgs::parse(new).map_err(|e| invalid(ctx, e))?;
        if args.name != id {
            return Err(invalid(
                ctx,
                format!("Auto Scaling group `{id}` cannot be renamed in place; it must be replaced"),
            ));
        }
        let region = region_of(&self.aws, ctx, new).await?;
        self.change(ctx, &region, &old, &args).await?;
        let g = self.group(&region, id).await.at(ctx)?.ok_or_else(|| {
            invalid(ctx, format!("Auto Scaling group `{id}` no longer exists; refresh, then deploy to create it again"))
        })?;
        Ok(Self::observed(&region, &g, new).0.outputs)
    }

    async fn delete(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<(), ProviderError> {
        let region = region_of(&self.aws, ctx, inputs).await?;
        if self.group(&region, id).await.at(ctx)?.is_none() {
            return Ok(());
        }
        let deleted = self
            .aws
            .autoscaling(&region)
            .await
            .delete_auto_scaling_group()
            .auto_scaling_group_name(id)
            .force_delete(true)
            .send()
            .await
            .op(AUTOSCALING, "DeleteAutoScalingGroup");
        found_or_none(deleted).at(ctx)?;
        let start = Instant::now();
        loop {
            // `group` hides a group whose deletion is in progress: look at the raw answer.
            let out = self
                .aws
                .autoscaling(&region)
                .await
                .describe_auto_scaling_groups()
                .auto_scaling_group_names(id)
                .send()
                .await
                .op(AUTOSCALING, "DescribeAutoScalingGroups")
                .at(ctx)?;
            let Some(g) = out.auto_scaling_groups().iter().find(|g| g.auto_scaling_group_name() == Some(id)) else {
                return Ok(());
            };
            if start.elapsed() >= DELETE_TIMEOUT {
                return Err(invalid(
                    ctx,
                    format!(
                        "Auto Scaling group `{id}` is still there {}s after its deletion (status {}, {} instances)",
                        start.elapsed().as_secs(),
                        g.status().unwrap_or("none"),
                        g.instances().len()
                    ),
                ));
            }
            progress(
                ctx,
                &format!(
                    "waiting for Auto Scaling group `{id}` to be deleted: {} instances left, {}s elapsed",
                    g.instances().len(),
                    start.elapsed().as_secs()
                ),
            );
            tokio::time::sleep(POLL).await;
        }
    }

    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        let Some(name) = identity.get("name").and_then(Value::as_str) else {
            return Ok(None);
        };
        let region = region_of(&self.aws, ctx, identity).await?;
        let Some(g) = self.group(&region, name).await.at(ctx)? else {
            return Ok(None);
        };
        let (seen, urn) = Self::observed(&region, &g, identity);
        Ok(adoptable(ctx, &seen.id, urn.as_deref()).then_some(seen))
    }
}

// ---------------------------------------------------------------------------------------------
// Lifecycle hooks

/// A lifecycle hook: instances launching (or terminating) wait in a pending state until an
/// agent completes the action, or the heartbeat timeout applies the default result.
///
/// Changing `region`, `auto_scaling_group_name` or `name` replaces it, deleting the old hook
/// first (a hook is known by its group and name only, so a replacement with the same ones
/// must not be deleted after it was put); the rest changes in place (`PutLifecycleHook`).
///
/// Give it the group's `name` output: a group changed in place keeps its name (and ARN), so
/// the plan of a group's update knows it and leaves the hook alone.
#[derive(Debug, Clone, Serialize)]
pub struct LifecycleHook {
    /// The region; `None`: the region of the `aws` provider configuration chosen for the
    /// resource or its component (see [`crate::Settings`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub auto_scaling_group_name: Input<String>,
    /// 1 to 255 letters, digits, `-`, `_` and `/`.
    pub name: String,
    pub transition: Transition,
    /// Seconds (30 to 7200) before the default result applies.
    pub heartbeat_timeout: i32,
    pub default_result: DefaultResult,
    /// An SNS topic or SQS queue ARN to notify; `None`: EventBridge only.
    pub notification_target_arn: Option<Input<String>>,
    /// The role Auto Scaling assumes to publish to the target (required with a target).
    pub role_arn: Option<Input<String>>,
}

/// When a hook applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Transition {
    #[serde(rename = "launching")]
    Launching,
    #[serde(rename = "terminating")]
    Terminating,
}

/// What happens when a hook's heartbeat times out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DefaultResult {
    #[serde(rename = "CONTINUE")]
    Continue,
    #[serde(rename = "ABANDON")]
    Abandon,
}

cairn::outputs! {
    /// The outputs of a [`LifecycleHook`].
    pub struct LifecycleHookOutputs {
        pub name: String,
    }
}

impl Resource for LifecycleHook {
    const TYPE: &'static str = "aws:autoscaling:LifecycleHook";
    const PROVIDER_INPUTS: &'static [&'static str] = &["region"];
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["region", "auto_scaling_group_name", "name"];
    const DELETE_BEFORE_REPLACE: bool = true;
    type Outputs = LifecycleHookOutputs;
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct HookArgs {
    #[serde(default)]
    region: Option<String>,
    auto_scaling_group_name: String,
    name: String,
    transition: String,
    #[serde(default = "hour")]
    heartbeat_timeout: i32,
    #[serde(default = "abandon")]
    default_result: String,
    #[serde(default)]
    notification_target_arn: Option<String>,
    #[serde(default)]
    role_arn: Option<String>,
}

fn hour() -> i32 {
    3600
}
fn abandon() -> String {
    "ABANDON".into()
}

const LAUNCHING: &str = "autoscaling:EC2_INSTANCE_LAUNCHING";
const TERMINATING: &str = "autoscaling:EC2_INSTANCE_TERMINATING";

/// A name of a hook or policy: 1 to 255 letters, digits, `-`, `_` and `/`.
fn valid_name(name: &str) -> bool {
    (1..=255).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_/".contains(&b))
}

/// Splits a hook's or policy's id, `<group>:<name>` (group names cannot hold `:`).
fn split_id(ctx: Context<'_>, id: &str) -> Result<(String, String), ProviderError> {
    match id.split_once(':') {
        Some((g, n)) if !g.is_empty() && !n.is_empty() => Ok((g.to_string(), n.to_string())),
        _ => Err(invalid(ctx, format!("`{id}` is not an id of the form `<group name>:<name>`"))),
    }
}

impl HookArgs {
    fn parse(inputs: &Value) -> Result<HookArgs, String> {
        let t = LifecycleHook::TYPE;
        let args: HookArgs = parse_inputs(t, inputs)?;
        if args.auto_scaling_group_name.is_empty() || args.auto_scaling_group_name.contains(':') {
            return Err(format!("{t}: `auto_scaling_group_name` must be a group name (no `:`)"));
        }
        if !valid_name(&args.name) {
            return Err(format!("{t}: `name` `{}` must be 1 to 255 letters, digits, `-`, `_` or `/`", args.name));
        }
        if !matches!(args.transition.as_str(), "launching" | "terminating") {
            return Err(format!("{t}: `transition` must be launching or terminating, got `{}`", args.transition));
        }
        if !(30..=7200).contains(&args.heartbeat_timeout) {
            return Err(format!("{t}: `heartbeat_timeout` must be 30 to 7200 seconds, got {}", args.heartbeat_timeout));
        }
        if !matches!(args.default_result.as_str(), "CONTINUE" | "ABANDON") {
            return Err(format!("{t}: `default_result` must be CONTINUE or ABANDON, got `{}`", args.default_result));
        }
        if args.notification_target_arn.is_some() != args.role_arn.is_some() {
            return Err(format!("{t}: `notification_target_arn` and `role_arn` must be given together"));
        }
        for (field, arn) in [("notification_target_arn", &args.notification_target_arn), ("role_arn", &args.role_arn)] {
            if let Some(a) = arn.as_deref().filter(|a| parse_arn(a).is_none()) {
                return Err(format!("{t}: `{field}` `{a}` is not an ARN"));
            }
        }
        Ok(args)
    }

    fn transition(&self) -> &'static str {
        if self.transition == "launching" {
            LAUNCHING
        } else {
            TERMINATING
        }
    }
}

/// The provider of [`LifecycleHook`]. Its id is `<group name>:<hook name>`.
#[derive(Debug, Clone)]
pub struct LifecycleHookProvider {
    aws: Aws,
}

impl LifecycleHookProvider {
    pub fn new(aws: &Aws) -> LifecycleHookProvider {
        LifecycleHookProvider { aws: aws.clone() }
    }

    async fn observe(
        &self,
        ctx: Context<'_>,
        region: &str,
        group: &str,
        name: &str,
    ) -> Result<Option<Observed>, ProviderError> {
        let out = self
            .aws
            .autoscaling(region)
            .await
            .describe_lifecycle_hooks()
            .auto_scaling_group_name(group)
            .lifecycle_hook_names(name)
            .send()
            .await
            .op(AUTOSCALING, "DescribeLifecycleHooks");
        let Some(out) = found_or_none(out).at(ctx)? else {
            return Ok(None);
        };
        let Some(h) = out.lifecycle_hooks().iter().find(|h| h.lifecycle_hook_name() == Some(name)) else {
            return Ok(None);
        };
        let transition = match h.lifecycle_transition() {
            Some(LAUNCHING) => "launching",
            Some(TERMINATING) => "terminating",
            other => other.unwrap_or_default(),
        };
        Ok(Some(Observed {
            id: format!("{group}:{name}"),
            inputs: json!({
                "region": region,
                "auto_scaling_group_name": group,
                "name": name,
                "transition": transition,
                "heartbeat_timeout": h.heartbeat_timeout(),
                "default_result": h.default_result(),
                "notification_target_arn": h.notification_target_arn(),
                "role_arn": h.role_arn(),
            }),
            outputs: json!({"name": name}),
        }))
    }

    async fn put(&self, ctx: Context<'_>, region: &str, args: &HookArgs) -> Result<(), ProviderError> {
        self.aws
            .autoscaling(region)
            .await
            .put_lifecycle_hook()
            .auto_scaling_group_name(&args.auto_scaling_group_name)
            .lifecycle_hook_name(&args.name)
            .lifecycle_transition(args.transition())
            .heartbeat_timeout(args.heartbeat_timeout)
            .default_result(&args.default_result)
            .set_notification_target_arn(args.notification_target_arn.clone())
            .set_role_arn(args.role_arn.clone())
            .send()
            .await
            .op(AUTOSCALING, "PutLifecycleHook")
            .at(ctx)
            .map(|_| ())
    }
}

#[async_trait::async_trait]
impl Provider for LifecycleHookProvider {
    fn type_token(&self) -> &'static str {
        LifecycleHook::TYPE
    }

    fn identity(&self, inputs: &Value) -> Value {
        json!({
            "region": inputs.get("region"),
            "auto_scaling_group_name": inputs.get("auto_scaling_group_name"),
            "name": inputs.get("name"),
        })
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let args = HookArgs::parse(inputs).map_err(|e| invalid(ctx, e))?;
        let region = self.aws.region(args.region.as_deref()).await.map_err(|e| invalid(ctx, e))?;
        self.put(ctx, &region, &args).await?;
        Ok(Created {
            id: format!("{}:{}", args.auto_scaling_group_name, args.name),
            outputs: json!({"name": args.name}),
        })
    }

    async fn read(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        let (group, name) = split_id(ctx, id)?;
        let region = region_of(&self.aws, ctx, inputs).await?;
        self.observe(ctx, &region, &group, &name).await
    }

    async fn update(&self, ctx: Context<'_>, id: &str, _old: &Value, new: &Value) -> Result<Value, ProviderError> {
        let args = HookArgs::parse(new).map_err(|e| invalid(ctx, e))?;
        if split_id(ctx, id)? != (args.auto_scaling_group_name.clone(), args.name.clone()) {
            return Err(invalid(ctx, format!("{id} cannot move or be renamed in place; it must be replaced")));
        }
        let region = region_of(&self.aws, ctx, new).await?;
        self.put(ctx, &region, &args).await?;
        Ok(json!({"name": args.name}))
    }

    async fn delete(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<(), ProviderError> {
        let (group, name) = split_id(ctx, id)?;
        let region = region_of(&self.aws, ctx, inputs).await?;
        let deleted = self
            .aws
            .autoscaling(&region)
            .await
            .delete_lifecycle_hook()
            .auto_scaling_group_name(group)
            .lifecycle_hook_name(name)
            .send()
            .await
            .op(AUTOSCALING, "DeleteLifecycleHook");
        found_or_none(deleted).at(ctx).map(|_| ())
    }

    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        let (Some(group), Some(name)) = (
            identity.get("auto_scaling_group_name").and_then(Value::as_str),
            identity.get("name").and_then(Value::as_str),
        ) else {
            return Ok(None);
        };
        let region = region_of(&self.aws, ctx, identity).await?;
        // Not taggable: a hook of this name on this group is the one this resource made.
        Ok(if_unrecorded(ctx, self.observe(ctx, &region, group, name).await?))
    }
}

// ---------------------------------------------------------------------------------------------
// Scaling policies

/// A target tracking scaling policy: Auto Scaling adjusts the group's desired capacity to keep
/// a metric at `target_value`. Changing `region`, `auto_scaling_group_name` or `name` replaces
/// it, deleting the old policy first (as for [`LifecycleHook`]); the rest changes in place
/// (`PutScalingPolicy`).
#[derive(Debug, Clone, Serialize)]
pub struct ScalingPolicy {
    /// The region; `None`: the region of the `aws` provider configuration chosen for the
    /// resource or its component (see [`crate::Settings`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub auto_scaling_group_name: Input<String>,
    /// 1 to 255 letters, digits, `-`, `_` and `/`.
    pub name: String,
    pub metric: PredefinedMetric,
    /// The metric's value to keep (percent for CPU, bytes for network, requests per target).
    pub target_value: f64,
    /// Never remove instances on account of this policy.
    pub disable_scale_in: bool,
    /// Seconds before a new instance's metrics count; `None`: the group's default.
    pub estimated_instance_warmup: Option<i32>,
}

/// The metric a policy tracks.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type")]
pub enum PredefinedMetric {
    #[serde(rename = "ASGAverageCPUUtilization")]
    AverageCpuUtilization,
    #[serde(rename = "ASGAverageNetworkIn")]
    AverageNetworkIn,
    #[serde(rename = "ASGAverageNetworkOut")]
    AverageNetworkOut,
    /// Requests per target of an ALB target group.
    #[serde(rename = "ALBRequestCountPerTarget")]
    AlbRequestCountPerTarget {
        /// `app/<load balancer>/<id>/targetgroup/<target group>/<id>`.
        resource_label: Input<String>,
    },
}

cairn::outputs! {
    /// The outputs of a [`ScalingPolicy`].
    pub struct ScalingPolicyOutputs {
        pub arn: String,
        pub name: String,
    }
}

impl Resource for ScalingPolicy {
    const TYPE: &'static str = "aws:autoscaling:ScalingPolicy";
    const PROVIDER_INPUTS: &'static [&'static str] = &["region"];
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["region", "auto_scaling_group_name", "name"];
    const DELETE_BEFORE_REPLACE: bool = true;
    type Outputs = ScalingPolicyOutputs;
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricArgs {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    resource_label: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyArgs {
    #[serde(default)]
    region: Option<String>,
    auto_scaling_group_name: String,
    name: String,
    metric: MetricArgs,
    target_value: f64,
    #[serde(default)]
    disable_scale_in: bool,
    #[serde(default)]
    estimated_instance_warmup: Option<i32>,
}

const METRICS: &[&str] =
    &["ASGAverageCPUUtilization", "ASGAverageNetworkIn", "ASGAverageNetworkOut", "ALBRequestCountPerTarget"];

impl PolicyArgs {
    fn parse(inputs: &Value) -> Result<PolicyArgs, String> {
        let t = ScalingPolicy::TYPE;
        let args: PolicyArgs = parse_inputs(t, inputs)?;
        if args.auto_scaling_group_name.is_empty() || args.auto_scaling_group_name.contains(':') {
            return Err(format!("{t}: `auto_scaling_group_name` must be a group name (no `:`)"));
        }
        if !valid_name(&args.name) {
            return Err(format!("{t}: `name` `{}` must be 1 to 255 letters, digits, `-`, `_` or `/`", args.name));
        }
        if !METRICS.contains(&args.metric.kind.as_str()) {
            return Err(format!(
                "{t}: `metric.type` must be one of {}, got `{}`",
                METRICS.join(", "),
                args.metric.kind
            ));
        }
        let alb = args.metric.kind == "ALBRequestCountPerTarget";
        match (alb, &args.metric.resource_label) {
            (false, None) => {}
            (false, Some(_)) => {
                return Err(format!("{t}: `metric.resource_label` is only allowed with ALBRequestCountPerTarget"))
            }
            (true, Some(l)) if l.starts_with("app/") && l.contains("/targetgroup/") => {}
            (true, _) => {
                return Err(format!(
                    "{t}: `metric.resource_label` must be `app/<lb>/<id>/targetgroup/<tg>/<id>` for ALBRequestCountPerTarget"
                ))
            }
        }
        if !args.target_value.is_finite() || args.target_value <= 0.0 {
            return Err(format!("{t}: `target_value` must be a positive number, got {}", args.target_value));
        }
        if args.estimated_instance_warmup.is_some_and(|w| w < 0) {
            return Err(format!("{t}: `estimated_instance_warmup` must not be negative"));
        }
        Ok(args)
    }
}

/// The group and policy names in a policy ARN (`…:scalingPolicy:<uuid>:autoScalingGroupName/<group>:policyName/<name>`).
fn policy_names(arn: &str) -> Option<(String, String, String)> {
    let a = parse_arn(arn).filter(|a| a.service == "autoscaling")?;
    let group = a.resource.split(":autoScalingGroupName/").nth(1)?.split(":policyName/").next()?;
    let name = a.resource.split(":policyName/").nth(1)?;
    Some((a.region.to_string(), group.to_string(), name.to_string()))
}

/// The provider of [`ScalingPolicy`]. Its id is the policy's ARN (which names its region,
/// group and name).
#[derive(Debug, Clone)]
pub struct ScalingPolicyProvider {
    aws: Aws,
}

impl ScalingPolicyProvider {
    pub fn new(aws: &Aws) -> ScalingPolicyProvider {
        ScalingPolicyProvider { aws: aws.clone() }
    }

    async fn observe(
        &self,
        ctx: Context<'_>,
        region: &str,
        group: &str,
        name: &str,
    ) -> Result<Option<Observed>, ProviderError> {
        let out = self
            .aws
            .autoscaling(region)
            .await
            .describe_policies()
            .auto_scaling_group_name(group)
            .policy_names(name)
            .send()
            .await
            .op(AUTOSCALING, "DescribePolicies");
        let Some(out) = found_or_none(out).at(ctx)? else {
            return Ok(None);
        };
        let Some(p) = out
            .scaling_policies()
            .iter()
            .find(|p| p.policy_name() == Some(name) && p.auto_scaling_group_name() == Some(group))
        else {
            return Ok(None);
        };
        let tt = p.target_tracking_configuration();
        let spec = tt.and_then(|t| t.predefined_metric_specification());
        let mut metric =
            json!({"type": spec.and_then(|s| s.predefined_metric_type()).map(|m| m.as_str()).unwrap_or_default()});
        if let Some(label) = spec.and_then(|s| s.resource_label()) {
            metric["resource_label"] = json!(label);
        }
        let arn = p.policy_arn().unwrap_or_default();
        Ok(Some(Observed {
            id: arn.to_string(),
            inputs: json!({
                "region": region,
                "auto_scaling_group_name": group,
                "name": name,
                "metric": metric,
                "target_value": tt.map(|t| t.target_value()),
                "disable_scale_in": tt.and_then(|t| t.disable_scale_in()).unwrap_or(false),
                "estimated_instance_warmup": p.estimated_instance_warmup(),
            }),
            outputs: json!({"arn": arn, "name": name}),
        }))
    }

    async fn put(&self, ctx: Context<'_>, region: &str, args: &PolicyArgs) -> Result<String, ProviderError> {
        let spec = PredefinedMetricSpecification::builder()
            .predefined_metric_type(MetricType::from(args.metric.kind.as_str()))
            .set_resource_label(args.metric.resource_label.clone())
            .build();
        let tracking = TargetTrackingConfiguration::builder()
            .predefined_metric_specification(spec)
            .target_value(args.target_value)
            .disable_scale_in(args.disable_scale_in)
            .build();
        let out = self
            .aws
            .autoscaling(region)
            .await
            .put_scaling_policy()
            .auto_scaling_group_name(&args.auto_scaling_group_name)
            .policy_name(&args.name)
            .policy_type("TargetTrackingScaling")
            .target_tracking_configuration(tracking)
            .set_estimated_instance_warmup(args.estimated_instance_warmup)
            .send()
            .await
            .op(AUTOSCALING, "PutScalingPolicy")
            .at(ctx)?;
        if let Some(arn) = out.policy_arn() {
            return Ok(arn.to_string());
        }
        // An answer without the ARN (moto names the field differently): ask for it.
        let seen = self.observe(ctx, region, &args.auto_scaling_group_name, &args.name).await?;
        seen.map(|s| s.id).filter(|id| !id.is_empty()).ok_or_else(|| {
            invalid(ctx, "AutoScaling PutScalingPolicy returned no policy ARN, and DescribePolicies does not list it")
        })
    }
}

#[async_trait::async_trait]
impl Provider for ScalingPolicyProvider {
    fn type_token(&self) -> &'static str {
        ScalingPolicy::TYPE
    }

    fn identity(&self, inputs: &Value) -> Value {
        json!({
            "region": inputs.get("region"),
            "auto_scaling_group_name": inputs.get("auto_scaling_group_name"),
            "name": inputs.get("name"),
        })
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let args = PolicyArgs::parse(inputs).map_err(|e| invalid(ctx, e))?;
        let region = self.aws.region(args.region.as_deref()).await.map_err(|e| invalid(ctx, e))?;
        let arn = self.put(ctx, &region, &args).await?;
        Ok(Created { outputs: json!({"arn": arn, "name": args.name}), id: arn })
    }

    async fn read(&self, ctx: Context<'_>, id: &str, _inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        let (region, group, name) =
            policy_names(id).ok_or_else(|| invalid(ctx, format!("`{id}` is not a scaling policy ARN")))?;
        self.observe(ctx, &region, &group, &name).await
    }

    async fn update(&self, ctx: Context<'_>, id: &str, _old: &Value, new: &Value) -> Result<Value, ProviderError> {
        let args = PolicyArgs::parse(new).map_err(|e| invalid(ctx, e))?;
        let region = region_of(&self.aws, ctx, new).await?;
        if policy_names(id) != Some((region.clone(), args.auto_scaling_group_name.clone(), args.name.clone())) {
            return Err(invalid(ctx, format!("{id} cannot move or be renamed in place; it must be replaced")));
        }
        let arn = self.put(ctx, &region, &args).await?;
        Ok(json!({"arn": arn, "name": args.name}))
    }

    async fn delete(&self, ctx: Context<'_>, id: &str, _inputs: &Value) -> Result<(), ProviderError> {
        let (region, group, name) =
            policy_names(id).ok_or_else(|| invalid(ctx, format!("`{id}` is not a scaling policy ARN")))?;
        let deleted = self
            .aws
            .autoscaling(&region)
            .await
            .delete_policy()
            .auto_scaling_group_name(group)
            .policy_name(name)
            .send()
            .await
            .op(AUTOSCALING, "DeletePolicy");
        found_or_none(deleted).at(ctx).map(|_| ())
    }

    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        let (Some(group), Some(name)) = (
            identity.get("auto_scaling_group_name").and_then(Value::as_str),
            identity.get("name").and_then(Value::as_str),
        ) else {
            return Ok(None);
        };
        let region = region_of(&self.aws, ctx, identity).await?;
        // Not taggable: a policy of this name on this group is the one this resource made.
        Ok(if_unrecorded(ctx, self.observe(ctx, &region, group, name).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group() -> Value {
        serde_json::to_value(
            AutoScalingGroup::new("web", "lt-1", "1", 1, 3, vec!["subnet-a".into()]).in_region("us-east-1"),
        )
        .unwrap()
    }

    #[test]
    fn group_validation_names_the_field() {
        assert!(GroupArgs::parse(&group()).is_ok());
        let with = |k: &str, v: Value| {
            let mut i = group();
            i[k] = v;
            GroupArgs::parse(&i).unwrap_err()
        };
        assert!(with("name", json!("a:b")).contains("`name`"));
        assert!(with("launch_template_version", json!("$Latest")).contains("`launch_template_version`"));
        assert!(with("launch_template_id", json!("web")).contains("`launch_template_id`"));
        assert!(with("max_size", json!(0)).contains("`max_size`"));
        assert!(with("desired_capacity", json!(5)).contains("`desired_capacity`"));
        assert!(with("subnet_ids", json!([])).contains("`subnet_ids`"));
        assert!(with("health_check_type", json!("HTTP")).contains("`health_check_type`"));
        assert!(with("instance_refresh", json!({"min_healthy_percentage": 101})).contains("min_healthy_percentage"));
        assert!(with("tags", json!({"cairn:x": {"value": "y", "propagate_at_launch": true}})).contains("reserved"));
    }

    #[test]
    fn hook_and_policy_validation_names_the_field() {
        let hook = serde_json::to_value(LifecycleHook {
            region: Some("us-east-1".into()),
            auto_scaling_group_name: "web".into(),
            name: "drain".into(),
            transition: Transition::Terminating,
            heartbeat_timeout: 300,
            default_result: DefaultResult::Continue,
            notification_target_arn: None,
            role_arn: None,
        })
        .unwrap();
        assert!(HookArgs::parse(&hook).is_ok());
        let mut bad = hook.clone();
        bad["heartbeat_timeout"] = json!(5);
        assert!(HookArgs::parse(&bad).unwrap_err().contains("`heartbeat_timeout`"));
        let mut bad = hook.clone();
        bad["notification_target_arn"] = json!("arn:aws:sns:us-east-1:123456789012:t");
        assert!(HookArgs::parse(&bad).unwrap_err().contains("`role_arn`"));

        let policy = serde_json::to_value(ScalingPolicy {
            region: Some("us-east-1".into()),
            auto_scaling_group_name: "web".into(),
            name: "cpu".into(),
            metric: PredefinedMetric::AverageCpuUtilization,
            target_value: 50.0,
            disable_scale_in: false,
            estimated_instance_warmup: None,
        })
        .unwrap();
        assert_eq!(policy["metric"], json!({"type": "ASGAverageCPUUtilization"}));
        assert!(PolicyArgs::parse(&policy).is_ok());
        let mut bad = policy.clone();
        bad["metric"] = json!({"type": "ALBRequestCountPerTarget"});
        assert!(PolicyArgs::parse(&bad).unwrap_err().contains("`metric.resource_label`"));
        let mut bad = policy.clone();
        bad["metric"] = json!({"type": "ASGAverageNetworkIn", "resource_label": "x"});
        assert!(PolicyArgs::parse(&bad).unwrap_err().contains("`metric.resource_label`"));
        let mut bad = policy.clone();
        bad["target_value"] = json!(-1.0);
        assert!(PolicyArgs::parse(&bad).unwrap_err().contains("`target_value`"));
    }

    #[test]
    fn policy_arns_name_the_region_group_and_policy() {
        let arn =
            "arn:aws:autoscaling:eu-west-1:123456789012:scalingPolicy:c3-4d:autoScalingGroupName/web:policyName/cpu";
        assert_eq!(policy_names(arn), Some(("eu-west-1".into(), "web".into(), "cpu".into())));
        assert_eq!(policy_names("web:cpu"), None);
    }
}
