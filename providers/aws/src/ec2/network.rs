//! EC2 networking: VPC, subnets, internet gateway, route tables, routes and their subnet
//! associations, security groups and their rules, VPC endpoints.
//!
//! Ids are EC2's (`vpc-…`, `subnet-…`, `sg-…`, `sgr-…`, `vpce-…`), read back in the resource's
//! `region` (or the configured default, for imports of a bare id). The taggable resources are
//! tagged at creation and found again by their `cairn:urn` tag; routes and route table
//! associations cannot be tagged and are found by what identifies them (route table and
//! destination; subnet).
//!
//! Security groups have *restricted egress*: AWS gives every new group a rule that allows all
//! outbound traffic; cairn revokes it right after creating the group, so that a group's
//! egress is exactly what its [`SecurityGroupEgressRule`]s declare. Rules are resources of
//! their own ([`SecurityGroupIngressRule`], [`SecurityGroupEgressRule`]), so changing a rule
//! never replaces its group.
//!
//! Deletes that AWS refuses while something still depends on the resource
//! (`DependencyViolation`: for example the network interfaces of a deleted interface endpoint,
//! which linger for a while) are retried with backoff for a bounded time (five minutes unless
//! the provider is built `with_wait`), then fail with an error that says what is in the way.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{
    AttributeBooleanValue, IpPermission, IpRange, Ipv6Range, PrefixListId, ResourceType, SecurityGroupRule,
    SecurityGroupRuleRequest, SecurityGroupRuleUpdate, UserIdGroupPair, VpcAttributeName, VpcEndpointType,
};
use cairn::provider::{Context, Created, Observed, Provider, ProviderError};
use cairn::{Input, Resource};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{all_tag_map, client_token, filter, retry_while, sync_tags, tag_map, tag_spec, urn_filter, EC2};
use crate::client::{
    adoptable, first_tagged_for, found, gone_ok, if_unrecorded, invalid, parse_inputs, user_tags, validate_tags, AtUrn,
    Aws, AwsError, SdkResultExt, TAG_URN,
};
use crate::managed::{same_set_or, settle, unchanged, CONSISTENCY_WAIT};

/// How long deletes wait for dependencies to go away, and VPC endpoints for their state,
/// unless a provider is built `with_wait`.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(300);

const VPC_NOT_FOUND: &[&str] = &["InvalidVpcID.NotFound"];
const SUBNET_NOT_FOUND: &[&str] = &["InvalidSubnetID.NotFound"];
const IGW_NOT_FOUND: &[&str] = &["InvalidInternetGatewayID.NotFound"];
const RTB_NOT_FOUND: &[&str] = &["InvalidRouteTableID.NotFound"];
const GROUP_NOT_FOUND: &[&str] = &["InvalidGroup.NotFound"];
const RULE_NOT_FOUND: &[&str] = &["InvalidSecurityGroupRuleId.NotFound"];
const ENDPOINT_NOT_FOUND: &[&str] = &["InvalidVpcEndpointId.NotFound", "InvalidVpcEndpoint.NotFound"];
const DEPENDENCY: &[&str] = &["DependencyViolation"];

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// The region of a resource: its `region` input, or the configured default.
async fn region_of(aws: &Aws, ctx: Context<'_>, inputs: &Value) -> Result<String, ProviderError> {
    aws.region(inputs.get("region").and_then(Value::as_str)).await.map_err(|e| invalid(ctx, e))
}

/// Checks that `value` is an EC2 id with `prefix` (e.g. `vpc-`).
fn check_id(t: &str, field: &str, value: &str, prefix: &str) -> Result<(), String> {
    let rest = value.strip_prefix(prefix).unwrap_or_default();
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!("{t}: `{field}` must be an id like `{prefix}0123abcd`, got `{value}`"));
    }
    Ok(())
}

/// Checks an IPv4 CIDR block (`a.b.c.d/n`) whose prefix length is within `lengths`.
fn check_cidr4(t: &str, field: &str, value: &str, lengths: std::ops::RangeInclusive<u8>) -> Result<(), String> {
    let ok = value.split_once('/').is_some_and(|(addr, len)| {
        addr.parse::<Ipv4Addr>().is_ok() && len.parse::<u8>().is_ok_and(|n| lengths.contains(&n))
    });
    if !ok {
        return Err(format!(
            "{t}: `{field}` must be an IPv4 CIDR block with a prefix length of {} to {}, got `{value}`",
            lengths.start(),
            lengths.end()
        ));
    }
    Ok(())
}

/// Checks an IPv6 CIDR block (`addr/n`).
fn check_cidr6(t: &str, field: &str, value: &str) -> Result<(), String> {
    let ok = value
        .split_once('/')
        .is_some_and(|(addr, len)| addr.parse::<Ipv6Addr>().is_ok() && len.parse::<u8>().is_ok_and(|n| n <= 128));
    if !ok {
        return Err(format!("{t}: `{field}` must be an IPv6 CIDR block, got `{value}`"));
    }
    Ok(())
}

/// The error of a delete still refused after waiting `wait` for its dependencies to go.
fn still_in_use(ctx: Context<'_>, id: &str, wait: Duration, e: AwsError) -> ProviderError {
    if e.is(DEPENDENCY) {
        invalid(
            ctx,
            format!(
                "{id} is still in use after waiting {}s for its dependencies to be deleted \
                 (remove what uses it, then deploy again): {e}",
                wait.as_secs()
            ),
        )
    } else {
        e.at(ctx)
    }
}

/// Whether `inputs` read back agree with `identity` on `keys`; a key `identity` leaves out (or
/// null) matches anything.
fn same_identity(identity: &Value, inputs: &Value, keys: &[&str]) -> bool {
    keys.iter().all(|k| identity.get(k).is_none_or(Value::is_null) || identity.get(k) == inputs.get(k))
}

/// The `cairn:urn` tag among EC2 tags.
fn urn_tag(tags: &BTreeMap<String, String>) -> Option<String> {
    tags.get(TAG_URN).cloned()
}

fn boolean(value: bool) -> AttributeBooleanValue {
    AttributeBooleanValue::builder().value(value).build()
}

macro_rules! provider_with_wait {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name {
            aws: Aws,
            wait: Duration,
        }

        impl $name {
            pub fn new(aws: &Aws) -> $name {
                $name { aws: aws.clone(), wait: DEFAULT_WAIT }
            }

            /// The same provider, waiting at most `wait` for dependencies (and states) instead of
            /// [`DEFAULT_WAIT`].
            pub fn with_wait(mut self, wait: Duration) -> $name {
                self.wait = wait;
                self
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// VPC
// ---------------------------------------------------------------------------------------------

/// A VPC. Changing `region` or `cidr_block` replaces it; DNS support, DNS hostnames and tags
/// change in place.
#[derive(Debug, Clone, Serialize)]
pub struct Vpc {
    /// The region; `None`: the region of the `aws` provider configuration chosen for the
    /// resource or its component (see [`crate::Settings`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The VPC's IPv4 range, `/16` to `/28`, e.g. `10.0.0.0/16`.
    pub cidr_block: Input<String>,
    /// Whether the Amazon-provided DNS server resolves names in the VPC (AWS's default: on).
    pub enable_dns_support: bool,
    /// Whether instances get public DNS host names (needs DNS support; AWS's default: off).
    pub enable_dns_hostnames: bool,
    /// Tags besides the `cairn:stack` and `cairn:urn` tags cairn adds.
    pub tags: BTreeMap<String, Input<String>>,
}

impl Vpc {
    /// A VPC with AWS's defaults: DNS support on, DNS host names off, no tags.
    pub fn new(cidr_block: impl Into<Input<String>>) -> Vpc {
        Vpc {
            region: None,
            cidr_block: cidr_block.into(),
            enable_dns_support: true,
            enable_dns_hostnames: false,
            tags: BTreeMap::new(),
        }
    }
}

cairn::outputs! {
    /// The outputs of a [`Vpc`].
    pub struct VpcOutputs {
        pub id: String,
        pub cidr_block: String,
        /// The `default` security group AWS creates with the VPC.
        pub default_security_group_id: String,
        /// The main route table AWS creates with the VPC (used by subnets without an association).
        pub main_route_table_id: String,
    }
}

impl Resource for Vpc {
    const TYPE: &'static str = "aws:ec2:Vpc";
    const PROVIDER_INPUTS: &'static [&'static str] = &["region"];
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["region", "cidr_block"];
    type Outputs = VpcOutputs;
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct VpcArgs {
    #[serde(default)]
    #[allow(dead_code)]
    region: Option<String>,
    cidr_block: String,
    #[serde(default = "yes")]
    enable_dns_support: bool,
    #[serde(default)]
    enable_dns_hostnames: bool,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

impl VpcArgs {
    fn parse(inputs: &Value) -> Result<VpcArgs, String> {
        let t = Vpc::TYPE;
        let args: VpcArgs = parse_inputs(t, inputs)?;
        check_cidr4(t, "cidr_block", &args.cidr_block, 16..=28)?;
        if args.enable_dns_hostnames && !args.enable_dns_support {
            return Err(format!("{t}: `enable_dns_hostnames` needs `enable_dns_support`"));
        }
        validate_tags(t, &args.tags)?;
        Ok(args)
    }
}

provider_with_wait! {
    /// The provider of [`Vpc`]. Deleting a VPC waits (bounded) while AWS reports dependencies.
    VpcProvider
}

impl VpcProvider {
    async fn set_attribute(
        &self,
        ctx: Context<'_>,
        region: &str,
        id: &str,
        name: VpcAttributeName,
        value: bool,
    ) -> Result<(), ProviderError> {
        let ec2 = self.aws.ec2(region).await;
        retry_while(VPC_NOT_FOUND, CONSISTENCY_WAIT, || {
            let call = ec2.modify_vpc_attribute().vpc_id(id);
            let call = match &name {
                VpcAttributeName::EnableDnsHostnames => call.enable_dns_hostnames(boolean(value)),
                _ => call.enable_dns_support(boolean(value)),
            };
            async move { call.send().await.op(EC2, "ModifyVpcAttribute") }
        })
        .await
        .at(ctx)?;
        Ok(())
    }

    async fn attribute(
        &self,
        ctx: Context<'_>,
        region: &str,
        id: &str,
        name: VpcAttributeName,
    ) -> Result<Option<bool>, ProviderError> {
        let ec2 = self.aws.ec2(region).await;
        let got = ec2
            .describe_vpc_attribute()
            .vpc_id(id)
            .attribute(name.clone())
            .send()
            .await
            .op(EC2, "DescribeVpcAttribute");
        let Some(got) = found(got, VPC_NOT_FOUND).at(ctx)? else {
            return Ok(None);
        };
        let value = match name {
            VpcAttributeName::EnableDnsHostnames => got.enable_dns_hostnames().and_then(|v| v.value()),
            _ => got.enable_dns_support().and_then(|v| v.value()),
        };
        Ok(Some(value.unwrap_or(false)))
    }

    /// The VPC as it is, and its `cairn:urn` tag.
    async fn observe(
        &self,
        ctx: Context<'_>,
        region: &str,
        id: &str,
    ) -> Result<Option<(Observed, Option<String>)>, ProviderError> {
        let ec2 = self.aws.ec2(region).await;
        let got = ec2.describe_vpcs().vpc_ids(id).send().await.op(EC2, "DescribeVpcs");
        let Some(got) = found(got, VPC_NOT_FOUND).at(ctx)? else {
            return Ok(None);
        };
        let Some(vpc) = got.vpcs().iter().find(|v| v.vpc_id() == Some(id)) else {
            return Ok(None);
        };
        let Some(dns_support) = self.attribute(ctx, region, id, VpcAttributeName::EnableDnsSupport).await? else {
            return Ok(None);
        };
        let Some(dns_hostnames) = self.attribute(ctx, region, id, VpcAttributeName::EnableDnsHostnames).await? else {
            return Ok(None);
        };
        let groups = ec2
            .describe_security_groups()
            .filters(filter("vpc-id", id))
            .filters(filter("group-name", "default"))
            .send()
            .await
            .op(EC2, "DescribeSecurityGroups")
            .at(ctx)?;
        let default_group = groups.security_groups().iter().find_map(|g| g.group_id()).map(str::to_string);
        let tables = ec2
            .describe_route_tables()
            .filters(filter("vpc-id", id))
            .filters(filter("association.main", "true"))
            .send()
            .await
            .op(EC2, "DescribeRouteTables")
            .at(ctx)?;
        let main_table = tables.route_tables().iter().find_map(|t| t.route_table_id()).map(str::to_string);
        let tags = tag_map(vpc.tags());
        let cidr = vpc.cidr_block().unwrap_or_default();
        let inputs = json!({
            "region": region,
            "cidr_block": cidr,
            "enable_dns_support": dns_support,
            "enable_dns_hostnames": dns_hostnames,
            "tags": user_tags(tags.clone()),
        });
        let outputs = json!({
            "id": id,
            "cidr_block": cidr,
            "default_security_group_id": default_group,
            "main_route_table_id": main_table,
        });
        Ok(Some((Observed { id: id.to_string(), inputs, outputs }, urn_tag(&tags))))
    }
}

#[async_trait::async_trait]
impl Provider for VpcProvider {
    fn type_token(&self) -> &'static str {
        Vpc::TYPE
    }

    fn identity(&self, inputs: &Value) -> Value {
        json!({"region": inputs.get("region"), "cidr_block": inputs.get("cidr_block")})
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let args = VpcArgs::parse(inputs).map_err(|e| invalid(ctx, e))?;
        let region = region_of(&self.aws, ctx, inputs).await?;
        let ec2 = self.aws.ec2(&region).await;
        let out = ec2
            .create_vpc()
            .cidr_block(&args.cidr_block)
            .tag_specifications(tag_spec(ctx, ResourceType::Vpc, &args.tags))
            .send()
            .await
            .op(EC2, "CreateVpc")
            .at(ctx)?;
        let id = out.vpc().and_then(|v| v.vpc_id()).ok_or_else(|| invalid(ctx, "EC2 CreateVpc returned no VPC id"))?;
        // If this fails, the VPC exists without its attributes: the create stays pending, and the
        // next run finds the VPC (by its tag) and shows the difference.
        if !args.enable_dns_support {
            self.set_attribute(ctx, &region, id, VpcAttributeName::EnableDnsSupport, false).await?;
        }
        if args.enable_dns_hostnames {
            self.set_attribute(ctx, &region, id, VpcAttributeName::EnableDnsHostnames, true).await?;
        }
        let (seen, _) = settle(ctx, id, || self.observe(ctx, &region, id)).await?;
        Ok(Created { id: id.to_string(), outputs: seen.outputs })
    }

    async fn read(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        let region = region_of(&self.aws, ctx, inputs).await?;
        Ok(self.observe(ctx, &region, id).await?.map(|(seen, _)| seen))
    }

    async fn update(&self, ctx: Context<'_>, id: &str, old: &Value, new: &Value) -> Result<Value, ProviderError> {
        let before = VpcArgs::parse(old).map_err(|e| invalid(ctx, e))?;
        let after = VpcArgs::parse(new).map_err(|e| invalid(ctx, e))?;
        unchanged(ctx, id, old, new, Vpc::REPLACE_ON_CHANGE)?;
        let region = region_of(&self.aws, ctx, new).await?;
        // DNS host names need DNS support: turn support on first, and off last.
        let support_changed = before.enable_dns_support != after.enable_dns_support;
        if support_changed && after.enable_dns_support {
            self.set_attribute(ctx, &region, id, VpcAttributeName::EnableDnsSupport, true).await?;
        }
        if before.enable_dns_hostnames != after.enable_dns_hostnames {
            self.set_attribute(ctx, &region, id, VpcAttributeName::EnableDnsHostnames, after.enable_dns_hostnames)
                .await?;
        }
        if support_changed && !after.enable_dns_support {
            self.set_attribute(ctx, &region, id, VpcAttributeName::EnableDnsSupport, false).await?;
        }
        sync_tags(&self.aws, &region, id, &before.tags, &all_tag_map(ctx, &after.tags)).await.at(ctx)?;
        let (seen, _) = self
            .observe(ctx, &region, id)
            .await?
            .ok_or_else(|| invalid(ctx, format!("{id} no longer exists; refresh, then deploy to create it again")))?;
        Ok(seen.outputs)
    }

    async fn delete(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<(), ProviderError> {
        let region = region_of(&self.aws, ctx, inputs).await?;
        let ec2 = self.aws.ec2(&region).await;
        let deleted = retry_while(DEPENDENCY, self.wait, || async {
            gone_ok(ec2.delete_vpc().vpc_id(id).send().await.op(EC2, "DeleteVpc"), VPC_NOT_FOUND)
        })
        .await;
        deleted.map_err(|e| still_in_use(ctx, id, self.wait, e))
    }

    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        let region = region_of(&self.aws, ctx, identity).await?;
        let ec2 = self.aws.ec2(&region).await;
        let got = ec2.describe_vpcs().filters(urn_filter(ctx)).send().await.op(EC2, "DescribeVpcs").at(ctx)?;
        let cidr = identity.get("cidr_block").and_then(Value::as_str);
        let ids: Vec<&str> =
            got.vpcs().iter().filter(|v| cidr.is_none() || v.cidr_block() == cidr).filter_map(|v| v.vpc_id()).collect();
        first_tagged_for(ctx, ids, |id| self.observe(ctx, &region, id)).await
    }
}

// ---------------------------------------------------------------------------------------------
// Subnet
// ---------------------------------------------------------------------------------------------

/// A subnet of a VPC in one availability zone. Changing `region`, `vpc_id`, `cidr_block` or
/// `availability_zone` replaces it; `map_public_ip_on_launch` and tags change in place.
#[derive(Debug, Clone, Serialize)]
pub struct Subnet {
    /// The region; `None`: the region of the `aws` provider configuration chosen for the
    /// resource or its component (see [`crate::Settings`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub vpc_id: Input<String>,
    /// Part of the VPC's range, `/16` to `/28`.
    pub cidr_block: Input<String>,
    /// A zone of the region, e.g. `eu-west-1a`.
    pub availability_zone: Input<String>,
    /// Whether instances launched here get a public IPv4 address.
    pub map_public_ip_on_launch: bool,
    /// Tags besides the `cairn:stack` and `cairn:urn` tags cairn adds.
    pub tags: BTreeMap<String, Input<String>>,
}

impl Subnet {
    /// A private subnet (no public addresses) without tags.
    pub fn new(
        vpc_id: impl Into<Input<String>>,
        cidr_block: impl Into<Input<String>>,
        availability_zone: impl Into<Input<String>>,
    ) -> Subnet {
        Subnet {
            region: None,
            vpc_id: vpc_id.into(),
            cidr_block: cidr_block.into(),
            availability_zone: availability_zone.into(),
            map_public_ip_on_launch: false,
            tags: BTreeMap::new(),
        }
    }
}

cairn::outputs! {
    /// The outputs of a [`Subnet`].
    pub struct SubnetOutputs {
        pub id: String,
        pub availability_zone: String,
    }
}

impl Resource for Subnet {
    const TYPE: &'static str = "aws:ec2:Subnet";
    const PROVIDER_INPUTS: &'static [&'static str] = &["region"];
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["region", "vpc_id", "cidr_block", "availability_zone"];
    type Outputs = SubnetOutputs;
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubnetArgs {
    #[serde(default)]
    #[allow(dead_code)]
    region: Option<String>,
    vpc_id: String,
    cidr_block: String,
    availability_zone: String,
    #[serde(default)]
    map_public_ip_on_launch: bool,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

impl SubnetArgs {
    fn parse(inputs: &Value) -> Result<SubnetArgs, String> {
        let t = Subnet::TYPE;
        let args: SubnetArgs = parse_inputs(t, inputs)?;
        check_id(t, "vpc_id", &args.vpc_id, "vpc-")?;
        check_cidr4(t, "cidr_block", &args.cidr_block, 16..=28)?;
        if args.availability_zone.is_empty() {
            return Err(format!("{t}: `availability_zone` must not be empty"));
        }
        validate_tags(t, &args.tags)?;
        Ok(args)
    }
}

provider_with_wait! {
    /// The provider of [`Subnet`]. Deleting a subnet waits (bounded) while AWS reports
    /// dependencies (such as the lingering network interfaces of a deleted endpoint).
    SubnetProvider
}

impl SubnetProvider {
    async fn observe(
        &self,
        ctx: Context<'_>,
        region: &str,
        id: &str,
    ) -> Result<Option<(Observed, Option<String>)>, ProviderError> {
        let ec2 = self.aws.ec2(region).await;
        let got = ec2.describe_subnets().subnet_ids(id).send().await.op(EC2, "DescribeSubnets");
        let Some(got) = found(got, SUBNET_NOT_FOUND).at(ctx)? else {
            return Ok(None);
        };
        let Some(s) = got.subnets().iter().find(|s| s.subnet_id() == Some(id)) else {
            return Ok(None);
        };
        let tags = tag_map(s.tags());
        let zone = s.availability_zone().unwrap_or_default();
        let inputs = json!({
            "region": region,
            "vpc_id": s.vpc_id().unwrap_or_default(),
            "cidr_block": s.cidr_block().unwrap_or_default(),
            "availability_zone": zone,
            "map_public_ip_on_launch": s.map_public_ip_on_launch().unwrap_or(false),
            "tags": user_tags(tags.clone()),
        });
        let outputs = json!({"id": id, "availability_zone": zone});
        Ok(Some((Observed { id: id.to_string(), inputs, outputs }, urn_tag(&tags))))
    }

    async fn set_public_ip(&self, ctx: Context<'_>, region: &str, id: &str, on: bool) -> Result<(), ProviderError> {
        let ec2 = self.aws.ec2(region).await;
        retry_while(SUBNET_NOT_FOUND, CONSISTENCY_WAIT, || async {
            ec2.modify_subnet_attribute()
                .subnet_id(id)
                .map_public_ip_on_launch(boolean(on))
                .send()
                .await
                .op(EC2, "ModifySubnetAttribute")
        })
        .await
        .at(ctx)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Provider for SubnetProvider {
    fn type_token(&self) -> &'static str {
        Subnet::TYPE
    }

    fn identity(&self, inputs: &Value) -> Value {
        json!({
            "region": inputs.get("region"),
            "vpc_id": inputs.get("vpc_id"),
            "cidr_block": inputs.get("cidr_block"),
            "availability_zone": inputs.get("availability_zone"),
        })
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let args = SubnetArgs::parse(inputs).map_err(|e| invalid(ctx, e))?;
        let region = region_of(&self.aws, ctx, inputs).await?;
        let ec2 = self.aws.ec2(&region).await;
        let out = retry_while(VPC_NOT_FOUND, CONSISTENCY_WAIT, || async {
            ec2.create_subnet()
                .vpc_id(&args.vpc_id)
                .cidr_block(&args.cidr_block)
                .availability_zone(&args.availability_zone)
                .tag_specifications(tag_spec(ctx, ResourceType::Subnet, &args.tags))
                .send()
                .await
                .op(EC2, "CreateSubnet")
        })
        .await
        .at(ctx)?;
        let id = out
            .subnet()
            .and_then(|s| s.subnet_id())
            .ok_or_else(|| invalid(ctx, "EC2 CreateSubnet returned no subnet id"))?;
        if args.map_public_ip_on_launch {
            self.set_public_ip(ctx, &region, id, true).await?;
        }
        Ok(Created { id: id.to_string(), outputs: json!({"id": id, "availability_zone": args.availability_zone}) })
    }

    async fn read(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        let region = region_of(&self.aws, ctx, inputs).await?;
        Ok(self.observe(ctx, &region, id).await?.map(|(seen, _)| seen))
    }

    async fn update(&self, ctx: Context<'_>, id: &str, old: &Value, new: &Value) -> Result<Value, ProviderError> {
        let before = SubnetArgs::parse(old).map_err(|e| invalid(ctx, e))?;
        let after = SubnetArgs::parse(new).map_err(|e| invalid(ctx, e))?;
        unchanged(ctx, id, old, new, Subnet::REPLACE_ON_CHANGE)?;
        let region = region_of(&self.aws, ctx, new).await?;
        if before.map_public_ip_on_launch != after.map_public_ip_on_launch {
            self.set_public_ip(ctx, &region, id, after.map_public_ip_on_launch).await?;
        }
        sync_tags(&self.aws, &region, id, &before.tags, &all_tag_map(ctx, &after.tags)).await.at(ctx)?;
        Ok(json!({"id": id, "availability_zone": after.availability_zone}))
    }

    async fn delete(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<(), ProviderError> {
        let region = region_of(&self.aws, ctx, inputs).await?;
        let ec2 = self.aws.ec2(&region).await;
        let deleted = retry_while(DEPENDENCY, self.wait, || async {
            gone_ok(ec2.delete_subnet().subnet_id(id).send().await.op(EC2, "DeleteSubnet"), SUBNET_NOT_FOUND)
        })
        .await;
        deleted.map_err(|e| still_in_use(ctx, id, self.wait, e))
    }

    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        let region = region_of(&self.aws, ctx, identity).await?;
        let ec2 = self.aws.ec2(&region).await;
        let got = ec2.describe_subnets().filters(urn_filter(ctx)).send().await.op(EC2, "DescribeSubnets").at(ctx)?;
        let ids: Vec<&str> = got.subnets().iter().filter_map(|s| s.subnet_id()).collect();
        first_tagged_for(ctx, ids, |id| async {
            let seen = self.observe(ctx, &region, id).await?;
            Ok(seen.filter(|(s, _)| same_identity(identity, &s.inputs, &["vpc_id", "cidr_block", "availability_zone"])))
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// Internet gateway
// ---------------------------------------------------------------------------------------------

/// An internet gateway, attached to a VPC. Changing `vpc_id` detaches it from the old VPC and
/// attaches it to the new one, in place; deleting it detaches it first. Changing `region`
/// replaces it.
#[derive(Debug, Clone, Serialize)]
pub struct InternetGateway {
    /// The region; `None`: the region of the `aws` provider configuration chosen for the
    /// resource or its component (see [`crate::Settings`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The VPC it is attached to; `None`: detached.
    pub vpc_id: Option<Input<String>>,
    /// Tags besides the `cairn:stack` and `cairn:urn` tags cairn adds.
    pub tags: BTreeMap<String, Input<String>>,
}

impl InternetGateway {
    /// A gateway attached to `vpc_id`, without tags.
    pub fn new(vpc_id: impl Into<Input<String>>) -> InternetGateway {
        InternetGateway { region: None, vpc_id: Some(vpc_id.into()), tags: BTreeMap::new() }
    }
}

cairn::outputs! {
    /// The outputs of an [`InternetGateway`].
    pub struct InternetGatewayOutputs {
        pub id: String,
    }
}

impl Resource for InternetGateway {
    const TYPE: &'static str = "aws:ec2:InternetGateway";
    const PROVIDER_INPUTS: &'static [&'static str] = &["region"];
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["region"];
    type Outputs = InternetGatewayOutputs;
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct InternetGatewayArgs {
    #[serde(default)]
    #[allow(dead_code)]
    region: Option<String>,
    #[serde(default)]
    vpc_id: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

impl InternetGatewayArgs {
    fn parse(inputs: &Value) -> Result<InternetGatewayArgs, String> {
        let t = InternetGateway::TYPE;
        let args: InternetGatewayArgs = parse_inputs(t, inputs)?;
        if let Some(v) = &args.vpc_id {
            check_id(t, "vpc_id", v, "vpc-")?;
        }
        validate_tags(t, &args.tags)?;
        Ok(args)
    }
}

provider_with_wait! {
    /// The provider of [`InternetGateway`]. Detaching waits (bounded) while AWS reports
    /// dependencies (public addresses still mapped in the VPC).
    InternetGatewayProvider
}

impl InternetGatewayProvider {
    /// The gateway, the VPCs it is attached to, and its `cairn:urn` tag.
    async fn observe(
        &self,
        ctx: Context<'_>,
        region: &str,
        id: &str,
    ) -> Result<Option<(Observed, Vec<String>, Option<String>)>, ProviderError> {
        let ec2 = self.aws.ec2(region).await;
        let got =
            ec2.describe_internet_gateways().internet_gateway_ids(id).send().await.op(EC2, "DescribeInternetGateways");
        let Some(got) = found(got, IGW_NOT_FOUND).at(ctx)? else {
            return Ok(None);
        };
        let Some(igw) = got.internet_gateways().iter().find(|g| g.internet_gateway_id() == Some(id)) else {
            return Ok(None);
        };
        let vpcs: Vec<String> = igw
            .attachments()
            .iter()
            .filter(|a| !a.state().is_some_and(|s| matches!(s.as_str(), "detaching" | "detached")))
            .filter_map(|a| a.vpc_id().map(str::to_string))
            .collect();
        let tags = tag_map(igw.tags());
        let inputs = json!({"region": region, "vpc_id": vpcs.first(), "tags": user_tags(tags.clone())});
        Ok(Some((Observed { id: id.to_string(), inputs, outputs: json!({"id": id}) }, vpcs, urn_tag(&tags))))
    }

    async fn attach(&self, ctx: Context<'_>, region: &str, id: &str, vpc: &str) -> Result<(), ProviderError> {
        let ec2 = self.aws.ec2(region).await;
        retry_while(&["InvalidVpcID.NotFound", "InvalidInternetGatewayID.NotFound"], CONSISTENCY_WAIT, || async {
            ec2.attach_internet_gateway()
                .internet_gateway_id(id)
                .vpc_id(vpc)
                .send()
                .await
                .op(EC2, "AttachInternetGateway")
        })
        .await
        .at(ctx)?;
        Ok(())
    }

    async fn detach(&self, ctx: Context<'_>, region: &str, id: &str, vpc: &str) -> Result<(), ProviderError> {
        let ec2 = self.aws.ec2(region).await;
        let detached = retry_while(DEPENDENCY, self.wait, || async {
            let r = ec2.detach_internet_gateway().internet_gateway_id(id).vpc_id(vpc).send().await;
            gone_ok(r.op(EC2, "DetachInternetGateway"), &["Gateway.NotAttached", "InvalidInternetGatewayID.NotFound"])
        })
        .await;
        detached.map_err(|e| still_in_use(ctx, id, self.wait, e))
    }
}

#[async_trait::async_trait]
impl Provider for InternetGatewayProvider {
    fn type_token(&self) -> &'static str {
        InternetGateway::TYPE
    }

    fn identity(&self, inputs: &Value) -> Value {
        json!({"region": inputs.get("region")})
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let args = InternetGatewayArgs::parse(inputs).map_err(|e| invalid(ctx, e))?;
        let region = region_of(&self.aws, ctx, inputs).await?;
        let ec2 = self.aws.ec2(&region).await;
        let out = ec2
            .create_internet_gateway()
            .tag_specifications(tag_spec(ctx, ResourceType::InternetGateway, &args.tags))
            .send()
            .await
            .op(EC2, "CreateInternetGateway")
            .at(ctx)?;
        let id = out
            .internet_gateway()
            .and_then(|g| g.internet_gateway_id())
            .ok_or_else(|| invalid(ctx, "EC2 CreateInternetGateway returned no id"))?;
        // If the attachment fails, the gateway exists detached: the create stays pending, and the
        // next run finds the gateway by its tag and attaches it.
        if let Some(vpc) = &args.vpc_id {
            self.attach(ctx, &region, id, vpc).await?;
        }
        Ok(Created { id: id.to_string(), outputs: json!({"id": id}) })
    }

    async fn read(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        let region = region_of(&self.aws, ctx, inputs).await?;
        Ok(self.observe(ctx, &region, id).await?.map(|(seen, _, _)| seen))
    }

    async fn update(&self, ctx: Context<'_>, id: &str, old: &Value, new: &Value) -> Result<Value, ProviderError> {
        let before = InternetGatewayArgs::parse(old).map_err(|e| invalid(ctx, e))?;
        let after = InternetGatewayArgs::parse(new).map_err(|e| invalid(ctx, e))?;
        unchanged(ctx, id, old, new, InternetGateway::REPLACE_ON_CHANGE)?;
        let region = region_of(&self.aws, ctx, new).await?;
        if before.vpc_id != after.vpc_id {
            // Detach from whatever it is attached to now (state may be behind), then attach.
            let (_, attached, _) = self.observe(ctx, &region, id).await?.ok_or_else(|| {
                invalid(ctx, format!("{id} no longer exists; refresh, then deploy to create it again"))
            })?;
            for vpc in attached.iter().filter(|v| Some(*v) != after.vpc_id.as_ref()) {
                self.detach(ctx, &region, id, vpc).await?;
            }
            if let Some(vpc) = after.vpc_id.as_ref().filter(|v| !attached.contains(*v)) {
                self.attach(ctx, &region, id, vpc).await?;
            }
        }
        sync_tags(&self.aws, &region, id, &before.tags, &all_tag_map(ctx, &after.tags)).await.at(ctx)?;
        Ok(json!({"id": id}))
    }

    async fn delete(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<(), ProviderError> {
        let region = region_of(&self.aws, ctx, inputs).await?;
        let Some((_, attached, _)) = self.observe(ctx, &region, id).await? else {
            return Ok(());
        };
        for vpc in &attached {
            self.detach(ctx, &region, id, vpc).await?;
        }
        let ec2 = self.aws.ec2(&region).await;
        let deleted = retry_while(DEPENDENCY, self.wait, || async {
            let r = ec2.delete_internet_gateway().internet_gateway_id(id).send().await;
            gone_ok(r.op(EC2, "DeleteInternetGateway"), IGW_NOT_FOUND)
        })
        .await;
        deleted.map_err(|e| still_in_use(ctx, id, self.wait, e))
    }

    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        let region = region_of(&self.aws, ctx, identity).await?;
        let ec2 = self.aws.ec2(&region).await;
        let got = ec2
            .describe_internet_gateways()
            .filters(urn_filter(ctx))
            .send()
            .await
            .op(EC2, "DescribeInternetGateways")
            .at(ctx)?;
        let ids: Vec<&str> = got.internet_gateways().iter().filter_map(|g| g.internet_gateway_id()).collect();
        first_tagged_for(ctx, ids, |id| async {
            Ok(self.observe(ctx, &region, id).await?.map(|(seen, _, urn)| (seen, urn)))
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// Route table
// ---------------------------------------------------------------------------------------------

/// A route table of a VPC (its routes are [`Route`] resources, its subnets
/// [`RouteTableAssociation`]s). Changing `region` or `vpc_id` replaces it; tags change in place.
#[derive(Debug, Clone, Serialize)]
pub struct RouteTable {
    /// The region; `None`: the region of the `aws` provider configuration chosen for the
    /// resource or its component (see [`crate::Settings`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub vpc_id: Input<String>,
    /// Tags besides the `cairn:stack` and `cairn:urn` tags cairn adds.
    pub tags: BTreeMap<String, Input<String>>,
}

impl RouteTable {
    /// A route table of `vpc_id`, without tags.
    pub fn new(vpc_id: impl Into<Input<String>>) -> RouteTable {
        RouteTable { region: None, vpc_id: vpc_id.into(), tags: BTreeMap::new() }
    }
}

cairn::outputs! {
    /// The outputs of a [`RouteTable`].
    pub struct RouteTableOutputs {
        pub id: String,
    }
}

impl Resource for RouteTable {
    const TYPE: &'static str = "aws:ec2:RouteTable";
    const PROVIDER_INPUTS: &'static [&'static str] = &["region"];
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["region", "vpc_id"];
    type Outputs = RouteTableOutputs;
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteTableArgs {
    #[serde(default)]
    #[allow(dead_code)]
    region: Option<String>,
    vpc_id: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

impl RouteTableArgs {
    fn parse(inputs: &Value) -> Result<RouteTableArgs, String> {
        let t = RouteTable::TYPE;
        let args: RouteTableArgs = parse_inputs(t, inputs)?;
        check_id(t, "vpc_id", &args.vpc_id, "vpc-")?;
        validate_tags(t, &args.tags)?;
        Ok(args)
    }
}

provider_with_wait! {
    /// The provider of [`RouteTable`]. Deleting a table waits (bounded) while AWS reports
    /// dependencies (associations being removed).
    RouteTableProvider
}

impl RouteTableProvider {
    async fn observe(
        &self,
        ctx: Context<'_>,
        region: &str,
        id: &str,
    ) -> Result<Option<(Observed, Option<String>)>, ProviderError> {
        let ec2 = self.aws.ec2(region).await;
        let got = ec2.describe_route_tables().route_table_ids(id).send().await.op(EC2, "DescribeRouteTables");
        let Some(got) = found(got, RTB_NOT_FOUND).at(ctx)? else {
            return Ok(None);
        };
        let Some(rtb) = got.route_tables().iter().find(|t| t.route_table_id() == Some(id)) else {
            return Ok(None);
        };
        let tags = tag_map(rtb.tags());
        let inputs =
            json!({"region": region, "vpc_id": rtb.vpc_id().unwrap_or_default(), "tags": user_tags(tags.clone())});
        Ok(Some((Observed { id: id.to_string(), inputs, outputs: json!({"id": id}) }, urn_tag(&tags))))
    }
}

#[async_trait::async_trait]
impl Provider for RouteTableProvider {
    fn type_token(&self) -> &'static str {
        RouteTable::TYPE
    }

    fn identity(&self, inputs: &Value) -> Value {
        json!({"region": inputs.get("region"), "vpc_id": inputs.get("vpc_id")})
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let args = RouteTableArgs::parse(inputs).map_err(|e| invalid(ctx, e))?;
        let region = region_of(&self.aws, ctx, inputs).await?;
        let ec2 = self.aws.ec2(&region).await;
        let token = client_token(ctx);
        let out = retry_while(VPC_NOT_FOUND, CONSISTENCY_WAIT, || async {
            ec2.create_route_table()
                .vpc_id(&args.vpc_id)
                .client_token(&token)
                .tag_specifications(tag_spec(ctx, ResourceType::RouteTable, &args.tags))
                .send()
                .await
                .op(EC2, "CreateRouteTable")
        })
        .await
        .at(ctx)?;
        let id = out
            .route_table()
            .and_then(|t| t.route_table_id())
            .ok_or_else(|| invalid(ctx, "EC2 CreateRouteTable returned no id"))?;
        Ok(Created { id: id.to_string(), outputs: json!({"id": id}) })
    }

    async fn read(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        let region = region_of(&self.aws, ctx, inputs).await?;
        Ok(self.observe(ctx, &region, id).await?.map(|(seen, _)| seen))
    }

    async fn update(&self, ctx: Context<'_>, id: &str, old: &Value, new: &Value) -> Result<Value, ProviderError> {
        let before = RouteTableArgs::parse(old).map_err(|e| invalid(ctx, e))?;
        let after = RouteTableArgs::parse(new).map_err(|e| invalid(ctx, e))?;
        unchanged(ctx, id, old, new, RouteTable::REPLACE_ON_CHANGE)?;
        let region = region_of(&self.aws, ctx, new).await?;
        sync_tags(&self.aws, &region, id, &before.tags, &all_tag_map(ctx, &after.tags)).await.at(ctx)?;
        Ok(json!({"id": id}))
    }

    async fn delete(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<(), ProviderError> {
        let region = region_of(&self.aws, ctx, inputs).await?;
        let ec2 = self.aws.ec2(&region).await;
        let deleted = retry_while(DEPENDENCY, self.wait, || async {
            gone_ok(ec2.delete_route_table().route_table_id(id).send().await.op(EC2, "DeleteRouteTable"), RTB_NOT_FOUND)
        })
        .await;
        deleted.map_err(|e| still_in_use(ctx, id, self.wait, e))
    }

    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        let region = region_of(&self.aws, ctx, identity).await?;
        let ec2 = self.aws.ec2(&region).await;
        let got =
            ec2.describe_route_tables().filters(urn_filter(ctx)).send().await.op(EC2, "DescribeRouteTables").at(ctx)?;
        let vpc = identity.get("vpc_id").and_then(Value::as_str);
        let ids: Vec<&str> = got
            .route_tables()
            .iter()
            .filter(|t| vpc.is_none() || t.vpc_id() == vpc)
            .filter_map(|t| t.route_table_id())
            .collect();
        first_tagged_for(ctx, ids, |id| self.observe(ctx, &region, id)).await
    }
}

// ---------------------------------------------------------------------------------------------
// Route
// ---------------------------------------------------------------------------------------------

/// A route of a route table: traffic to `destination_cidr_block` goes to exactly one target.
///
/// Its id is `<route table id>_<destination>` (routes have no id of their own, and cannot be
/// tagged: a route is found again by its table and destination). Changing `region`,
/// `route_table_id` or `destination_cidr_block` replaces it; changing the target replaces the
/// route in place (`ReplaceRoute`).
#[derive(Debug, Clone, Serialize)]
pub struct Route {
    /// The region; `None`: the region of the `aws` provider configuration chosen for the
    /// resource or its component (see [`crate::Settings`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub route_table_id: Input<String>,
    /// An IPv4 CIDR block, e.g. `0.0.0.0/0`.
    pub destination_cidr_block: Input<String>,
    /// An internet gateway (`igw-…`) or virtual private gateway (`vgw-…`).
    pub gateway_id: Option<Input<String>>,
    /// A NAT gateway (`nat-…`).
    pub nat_gateway_id: Option<Input<String>>,
    /// A Gateway Load Balancer endpoint (`vpce-…`). (Gateway endpoints for S3 and DynamoDB
    /// are not route targets: give the endpoint its route tables, [`VpcEndpoint::route_table_ids`].)
    pub vpc_endpoint_id: Option<Input<String>>,
}

impl Route {
    /// A route to an internet gateway.
    pub fn to_gateway(
        route_table_id: impl Into<Input<String>>,
        destination_cidr_block: impl Into<Input<String>>,
        gateway_id: impl Into<Input<String>>,
    ) -> Route {
        Route {
            region: None,
            route_table_id: route_table_id.into(),
            destination_cidr_block: destination_cidr_block.into(),
            gateway_id: Some(gateway_id.into()),
            nat_gateway_id: None,
            vpc_endpoint_id: None,
        }
    }
}

cairn::outputs! {
    /// The outputs of a [`Route`].
    pub struct RouteOutputs {
        /// `<route table id>_<destination>`.
        pub id: String,
    }
}

impl Resource for Route {
    const TYPE: &'static str = "aws:ec2:Route";
    const PROVIDER_INPUTS: &'static [&'static str] = &["region"];
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["region", "route_table_id", "destination_cidr_block"];
    type Outputs = RouteOutputs;
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteArgs {
    #[serde(default)]
    #[allow(dead_code)]
    region: Option<String>,
    route_table_id: String,
    destination_cidr_block: String,
    #[serde(default)]
    gateway_id: Option<String>,
    #[serde(default)]
    nat_gateway_id: Option<String>,
    #[serde(default)]
    vpc_endpoint_id: Option<String>,
}

impl RouteArgs {
    fn parse(inputs: &Value) -> Result<RouteArgs, String> {
        let t = Route::TYPE;
        let args: RouteArgs = parse_inputs(t, inputs)?;
        check_id(t, "route_table_id", &args.route_table_id, "rtb-")?;
        check_cidr4(t, "destination_cidr_block", &args.destination_cidr_block, 0..=32)?;
        let targets = [&args.gateway_id, &args.nat_gateway_id, &args.vpc_endpoint_id];
        if targets.iter().filter(|t| t.is_some()).count() != 1 {
            return Err(format!("{t}: set exactly one of `gateway_id`, `nat_gateway_id` and `vpc_endpoint_id`"));
        }
        if let Some(g) = &args.gateway_id {
            if !(g.starts_with("igw-") || g.starts_with("vgw-")) {
                return Err(format!(
                    "{t}: `gateway_id` must be an internet (`igw-…`) or virtual private gateway (`vgw-…`), got `{g}`"
                ));
            }
            check_id(t, "gateway_id", g, &g[..4])?;
        }
        if let Some(n) = &args.nat_gateway_id {
            check_id(t, "nat_gateway_id", n, "nat-")?;
        }
        if let Some(e) = &args.vpc_endpoint_id {
            check_id(t, "vpc_endpoint_id", e, "vpce-")?;
        }
        Ok(args)
    }

    fn id(&self) -> String {
        format!("{}_{}", self.route_table_id, self.destination_cidr_block)
    }
}

/// The provider of [`Route`].
#[derive(Debug, Clone)]
pub struct RouteProvider {
    aws: Aws,
}

impl RouteProvider {
    pub fn new(aws: &Aws) -> RouteProvider {
        RouteProvider { aws: aws.clone() }
    }

    /// The route `<rtb>_<cidr>` as it is. `prior` tells how to show a `vpce-…` target, which
    /// AWS reports as a gateway.
    async fn observe(
        &self,
        ctx: Context<'_>,
        region: &str,
        id: &str,
        prior: &Value,
    ) -> Result<Option<Observed>, ProviderError> {
        let Some((rtb, cidr)) = id.split_once('_') else {
            return Err(invalid(ctx, format!("`{id}` is not a route id (`<route table id>_<destination CIDR>`)")));
        };
        let ec2 = self.aws.ec2(region).await;
        let got = ec2.describe_route_tables().route_table_ids(rtb).send().await.op(EC2, "DescribeRouteTables");
        let Some(got) = found(got, RTB_NOT_FOUND).at(ctx)? else {
            return Ok(None);
        };
        let Some(route) = got
            .route_tables()
            .iter()
            .filter(|t| t.route_table_id() == Some(rtb))
            .flat_map(|t| t.routes())
            .find(|r| r.destination_cidr_block() == Some(cidr))
        else {
            return Ok(None);
        };
        let (mut gateway, mut endpoint) = (route.gateway_id(), None);
        if gateway.is_some_and(|g| g.starts_with("vpce-")) && prior.get("gateway_id").is_none_or(Value::is_null) {
            (gateway, endpoint) = (None, gateway);
        }
        let inputs = json!({
            "region": region,
            "route_table_id": rtb,
            "destination_cidr_block": cidr,
            "gateway_id": gateway,
            "nat_gateway_id": route.nat_gateway_id(),
            "vpc_endpoint_id": endpoint,
        });
        Ok(Some(Observed { id: id.to_string(), inputs, outputs: json!({"id": id}) }))
    }
}

#[async_trait::async_trait]
impl Provider for RouteProvider {
    fn type_token(&self) -> &'static str {
        Route::TYPE
    }

    fn identity(&self, inputs: &Value) -> Value {
        json!({
            "region": inputs.get("region"),
            "route_table_id": inputs.get("route_table_id"),
            "destination_cidr_block": inputs.get("destination_cidr_block"),
        })
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let args = RouteArgs::parse(inputs).map_err(|e| invalid(ctx, e))?;
        let region = region_of(&self.aws, ctx, inputs).await?;
        let ec2 = self.aws.ec2(&region).await;
        retry_while(RTB_NOT_FOUND, CONSISTENCY_WAIT, || async {
            ec2.create_route()
                .route_table_id(&args.route_table_id)
                .destination_cidr_block(&args.destination_cidr_block)
                .set_gateway_id(args.gateway_id.clone())
                .set_nat_gateway_id(args.nat_gateway_id.clone())
                .set_vpc_endpoint_id(args.vpc_endpoint_id.clone())
                .send()
                .await
                .op(EC2, "CreateRoute")
        })
        .await
        .at(ctx)?;
        let id = args.id();
        Ok(Created { outputs: json!({"id": id}), id })
    }

    async fn read(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        let region = region_of(&self.aws, ctx, inputs).await?;
        self.observe(ctx, &region, id, inputs).await
    }

    async fn update(&self, ctx: Context<'_>, id: &str, old: &Value, new: &Value) -> Result<Value, ProviderError> {
        RouteArgs::parse(old).map_err(|e| invalid(ctx, e))?;
        let args = RouteArgs::parse(new).map_err(|e| invalid(ctx, e))?;
        unchanged(ctx, id, old, new, Route::REPLACE_ON_CHANGE)?;
        let region = region_of(&self.aws, ctx, new).await?;
        let ec2 = self.aws.ec2(&region).await;
        ec2.replace_route()
            .route_table_id(&args.route_table_id)
            .destination_cidr_block(&args.destination_cidr_block)
            .set_gateway_id(args.gateway_id.clone())
            .set_nat_gateway_id(args.nat_gateway_id.clone())
            .set_vpc_endpoint_id(args.vpc_endpoint_id.clone())
            .send()
            .await
            .op(EC2, "ReplaceRoute")
            .at(ctx)?;
        Ok(json!({"id": id}))
    }

    async fn delete(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<(), ProviderError> {
        let Some((rtb, cidr)) = id.split_once('_') else {
            return Err(invalid(ctx, format!("`{id}` is not a route id (`<route table id>_<destination CIDR>`)")));
        };
        let region = region_of(&self.aws, ctx, inputs).await?;
        let ec2 = self.aws.ec2(&region).await;
        let deleted = ec2.delete_route().route_table_id(rtb).destination_cidr_block(cidr).send().await;
        gone_ok(deleted.op(EC2, "DeleteRoute"), &["InvalidRoute.NotFound", "InvalidRouteTableID.NotFound"]).at(ctx)
    }

    /// Routes cannot be tagged: found by route table and destination.
    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        let (Some(rtb), Some(cidr)) = (
            identity.get("route_table_id").and_then(Value::as_str),
            identity.get("destination_cidr_block").and_then(Value::as_str),
        ) else {
            return Ok(None);
        };
        let region = region_of(&self.aws, ctx, identity).await?;
        Ok(if_unrecorded(ctx, self.observe(ctx, &region, &format!("{rtb}_{cidr}"), &Value::Null).await?))
    }
}

// ---------------------------------------------------------------------------------------------
// Route table association
// ---------------------------------------------------------------------------------------------

/// The association of a subnet with a route table (instead of its VPC's main table).
///
/// Its id is the subnet's id: a subnet has at most one such association, and AWS gives the
/// association a new id each time its route table changes, so that id is an output
/// (`association_id`). Changing `route_table_id` switches the subnet to the new table in place
/// (`ReplaceRouteTableAssociation`, with no moment without one); changing `region` or
/// `subnet_id` replaces it. Associations cannot be tagged: one is found again by its subnet.
#[derive(Debug, Clone, Serialize)]
pub struct RouteTableAssociation {
    /// The region; `None`: the region of the `aws` provider configuration chosen for the
    /// resource or its component (see [`crate::Settings`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub route_table_id: Input<String>,
    pub subnet_id: Input<String>,
}

cairn::outputs! {
    /// The outputs of a [`RouteTableAssociation`].
    pub struct RouteTableAssociationOutputs {
        /// The association's current id (`rtbassoc-…`).
        pub association_id: String,
    }
}

impl Resource for RouteTableAssociation {
    const TYPE: &'static str = "aws:ec2:RouteTableAssociation";
    const PROVIDER_INPUTS: &'static [&'static str] = &["region"];
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["region", "subnet_id"];
    // A move to another route table (ReplaceRouteTableAssociation) gives the association a new id.
    const UPDATABLE_OUTPUTS: &'static [&'static str] = &["association_id"];
    type Outputs = RouteTableAssociationOutputs;
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssociationArgs {
    #[serde(default)]
    #[allow(dead_code)]
    region: Option<String>,
    route_table_id: String,
    subnet_id: String,
}

impl AssociationArgs {
    fn parse(inputs: &Value) -> Result<AssociationArgs, String> {
        let t = RouteTableAssociation::TYPE;
        let args: AssociationArgs = parse_inputs(t, inputs)?;
        check_id(t, "route_table_id", &args.route_table_id, "rtb-")?;
        check_id(t, "subnet_id", &args.subnet_id, "subnet-")?;
        Ok(args)
    }
}

/// The provider of [`RouteTableAssociation`].
#[derive(Debug, Clone)]
pub struct RouteTableAssociationProvider {
    aws: Aws,
}

impl RouteTableAssociationProvider {
    pub fn new(aws: &Aws) -> RouteTableAssociationProvider {
        RouteTableAssociationProvider { aws: aws.clone() }
    }

    /// The explicit association of a subnet (`subnet-…`), or the one with this association id
    /// (`rtbassoc-…`, for imports): (subnet id, route table id, association id).
    async fn lookup(
        &self,
        ctx: Context<'_>,
        region: &str,
        id: &str,
    ) -> Result<Option<(String, String, String)>, ProviderError> {
        let (name, subnet) = if id.starts_with("rtbassoc-") {
            ("association.route-table-association-id", None)
        } else if id.starts_with("subnet-") {
            ("association.subnet-id", Some(id))
        } else {
            return Err(invalid(
                ctx,
                format!("`{id}` is not a subnet id (`subnet-…`) or association id (`rtbassoc-…`)"),
            ));
        };
        let ec2 = self.aws.ec2(region).await;
        let got = ec2
            .describe_route_tables()
            .filters(filter(name, id))
            .send()
            .await
            .op(EC2, "DescribeRouteTables")
            .at(ctx)?;
        for t in got.route_tables() {
            for a in t.associations() {
                let live = !a.main().unwrap_or(false)
                    && !a
                        .association_state()
                        .and_then(|s| s.state())
                        .is_some_and(|s| matches!(s.as_str(), "disassociating" | "disassociated" | "failed"));
                let matches = match subnet {
                    Some(s) => a.subnet_id() == Some(s),
                    None => a.route_table_association_id() == Some(id),
                };
                if live && matches {
                    if let (Some(s), Some(rtb), Some(assoc)) =
                        (a.subnet_id(), a.route_table_id().or(t.route_table_id()), a.route_table_association_id())
                    {
                        return Ok(Some((s.to_string(), rtb.to_string(), assoc.to_string())));
                    }
                }
            }
        }
        Ok(None)
    }

    async fn observe(&self, ctx: Context<'_>, region: &str, id: &str) -> Result<Option<Observed>, ProviderError> {
        let Some((subnet, rtb, assoc)) = self.lookup(ctx, region, id).await? else {
            return Ok(None);
        };
        Ok(Some(Observed {
            inputs: json!({"region": region, "route_table_id": rtb, "subnet_id": subnet}),
            outputs: json!({"association_id": assoc}),
            id: subnet,
        }))
    }
}

#[async_trait::async_trait]
impl Provider for RouteTableAssociationProvider {
    fn type_token(&self) -> &'static str {
        RouteTableAssociation::TYPE
    }

    fn identity(&self, inputs: &Value) -> Value {
        json!({"region": inputs.get("region"), "subnet_id": inputs.get("subnet_id")})
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let args = AssociationArgs::parse(inputs).map_err(|e| invalid(ctx, e))?;
        let region = region_of(&self.aws, ctx, inputs).await?;
        let ec2 = self.aws.ec2(&region).await;
        let out =
            retry_while(&["InvalidRouteTableID.NotFound", "InvalidSubnetID.NotFound"], CONSISTENCY_WAIT, || async {
                ec2.associate_route_table()
                    .route_table_id(&args.route_table_id)
                    .subnet_id(&args.subnet_id)
                    .send()
                    .await
                    .op(EC2, "AssociateRouteTable")
            })
            .await
            .at(ctx)?;
        let assoc = out.association_id().ok_or_else(|| invalid(ctx, "EC2 AssociateRouteTable returned no id"))?;
        Ok(Created { id: args.subnet_id.clone(), outputs: json!({"association_id": assoc}) })
    }

    async fn read(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        let region = region_of(&self.aws, ctx, inputs).await?;
        self.observe(ctx, &region, id).await
    }

    async fn update(&self, ctx: Context<'_>, id: &str, old: &Value, new: &Value) -> Result<Value, ProviderError> {
        AssociationArgs::parse(old).map_err(|e| invalid(ctx, e))?;
        let args = AssociationArgs::parse(new).map_err(|e| invalid(ctx, e))?;
        unchanged(ctx, id, old, new, RouteTableAssociation::REPLACE_ON_CHANGE)?;
        let region = region_of(&self.aws, ctx, new).await?;
        let Some((_, rtb, assoc)) = self.lookup(ctx, &region, id).await? else {
            return Err(invalid(
                ctx,
                format!("{id} has no route table association; refresh, then deploy to create it again"),
            ));
        };
        if rtb == args.route_table_id {
            return Ok(json!({"association_id": assoc}));
        }
        let ec2 = self.aws.ec2(&region).await;
        let out = ec2
            .replace_route_table_association()
            .association_id(&assoc)
            .route_table_id(&args.route_table_id)
            .send()
            .await
            .op(EC2, "ReplaceRouteTableAssociation")
            .at(ctx)?;
        let assoc =
            out.new_association_id().ok_or_else(|| invalid(ctx, "EC2 ReplaceRouteTableAssociation returned no id"))?;
        Ok(json!({"association_id": assoc}))
    }

    async fn delete(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<(), ProviderError> {
        let region = region_of(&self.aws, ctx, inputs).await?;
        let Some((_, _, assoc)) = self.lookup(ctx, &region, id).await? else {
            return Ok(());
        };
        let ec2 = self.aws.ec2(&region).await;
        let r = ec2.disassociate_route_table().association_id(&assoc).send().await;
        gone_ok(r.op(EC2, "DisassociateRouteTable"), &["InvalidAssociationID.NotFound"]).at(ctx)
    }

    /// Associations cannot be tagged: found by their subnet.
    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        let Some(subnet) = identity.get("subnet_id").and_then(Value::as_str).filter(|s| s.starts_with("subnet-"))
        else {
            return Ok(None);
        };
        let region = region_of(&self.aws, ctx, identity).await?;
        Ok(if_unrecorded(ctx, self.observe(ctx, &region, subnet).await?))
    }
}

// ---------------------------------------------------------------------------------------------
// Security group
// ---------------------------------------------------------------------------------------------

/// A security group of a VPC, with *restricted egress*: the allow-all egress rule AWS gives
/// every new group is revoked right after creation, so the group allows exactly what its
/// [`SecurityGroupIngressRule`]s and [`SecurityGroupEgressRule`]s declare (no rule: nothing in,
/// nothing out).
///
/// Changing `region`, `name`, `description` or `vpc_id` replaces the group. Because a name can
/// exist only once per VPC, the old group is deleted before its replacement is created
/// (`DELETE_BEFORE_REPLACE`), which waits (bounded) while something still uses it. Tags change
/// in place.
#[derive(Debug, Clone, Serialize)]
pub struct SecurityGroup {
    /// The region; `None`: the region of the `aws` provider configuration chosen for the
    /// resource or its component (see [`crate::Settings`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Up to 255 characters, unique in the VPC; may not start with `sg-`.
    pub name: Input<String>,
    /// Up to 255 characters (AWS allows `a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*`).
    pub description: Input<String>,
    pub vpc_id: Input<String>,
    /// Tags besides the `cairn:stack` and `cairn:urn` tags cairn adds.
    pub tags: BTreeMap<String, Input<String>>,
}

impl SecurityGroup {
    /// A group without rules or tags.
    pub fn new(
        name: impl Into<Input<String>>,
        description: impl Into<Input<String>>,
        vpc_id: impl Into<Input<String>>,
    ) -> SecurityGroup {
        SecurityGroup {
            region: None,
            name: name.into(),
            description: description.into(),
            vpc_id: vpc_id.into(),
            tags: BTreeMap::new(),
        }
    }
}

cairn::outputs! {
    /// The outputs of a [`SecurityGroup`].
    pub struct SecurityGroupOutputs {
        pub id: String,
        pub name: String,
    }
}

impl Resource for SecurityGroup {
    const TYPE: &'static str = "aws:ec2:SecurityGroup";
    const PROVIDER_INPUTS: &'static [&'static str] = &["region"];
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["region", "name", "description", "vpc_id"];
    const DELETE_BEFORE_REPLACE: bool = true;
    type Outputs = SecurityGroupOutputs;
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecurityGroupArgs {
    #[serde(default)]
    #[allow(dead_code)]
    region: Option<String>,
    name: String,
    description: String,
    vpc_id: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    /// Only ever read back, never declared: rules of the group that no resource manages
    /// (they carry no `cairn:urn` tag), e.g. an allow-all egress rule added by hand. Refresh
    /// shows them as drift, and the update back to the declared inputs revokes them.
    #[serde(default)]
    unmanaged_rules: Vec<UnmanagedRule>,
}

/// A security group rule that no resource manages, as a group reads it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnmanagedRule {
    id: String,
    egress: bool,
    /// What it allows, e.g. `-1 0.0.0.0/0` or `tcp 22-22 sg-0abc`.
    allows: String,
}

impl UnmanagedRule {
    fn of(r: &SecurityGroupRule) -> Option<UnmanagedRule> {
        if tag_map(r.tags()).contains_key(TAG_URN) {
            return None;
        }
        let peer = r
            .cidr_ipv4()
            .or(r.cidr_ipv6())
            .or(r.prefix_list_id())
            .or(r.referenced_group_info().and_then(|g| g.group_id()))
            .unwrap_or("?");
        let ports = match (r.from_port(), r.to_port()) {
            (Some(-1) | None, Some(-1) | None) => String::new(),
            (Some(a), Some(b)) => format!(" {a}-{b}"),
            _ => String::new(),
        };
        Some(UnmanagedRule {
            id: r.security_group_rule_id()?.to_string(),
            egress: r.is_egress() == Some(true),
            allows: format!("{}{ports} {peer}", r.ip_protocol().unwrap_or("?")),
        })
    }
}

impl SecurityGroupArgs {
    fn parse(inputs: &Value) -> Result<SecurityGroupArgs, String> {
        let t = SecurityGroup::TYPE;
        let args: SecurityGroupArgs = parse_inputs(t, inputs)?;
        let n = args.name.chars().count();
        if n == 0 || n > 255 {
            return Err(format!("{t}: `name` must be 1 to 255 characters, got {n}"));
        }
        if args.name.to_ascii_lowercase().starts_with("sg-") {
            return Err(format!("{t}: `name` may not start with `sg-`"));
        }
        let d = args.description.chars().count();
        if d == 0 || d > 255 {
            return Err(format!("{t}: `description` must be 1 to 255 characters, got {d}"));
        }
        if let Some(c) =
            args.description.chars().find(|c| !(c.is_ascii_alphanumeric() || " ._-:/()#,@[]+=&;{}!$*".contains(*c)))
        {
            return Err(format!(
                "{t}: `description` may not hold `{c}` (AWS allows a-zA-Z0-9. _-:/()#,@[]+=&;{{}}!$*)"
            ));
        }
        check_id(t, "vpc_id", &args.vpc_id, "vpc-")?;
        validate_tags(t, &args.tags)?;
        Ok(args)
    }
}

provider_with_wait! {
    /// The provider of [`SecurityGroup`]. Deleting a group retries while AWS answers
    /// `DependencyViolation` (network interfaces of deleted endpoints or instances linger for
    /// a while), for a bounded time, then fails naming what is in the way.
    SecurityGroupProvider
}

impl SecurityGroupProvider {
    async fn observe(
        &self,
        ctx: Context<'_>,
        region: &str,
        id: &str,
    ) -> Result<Option<(Observed, Option<String>)>, ProviderError> {
        let ec2 = self.aws.ec2(region).await;
        let got = ec2.describe_security_groups().group_ids(id).send().await.op(EC2, "DescribeSecurityGroups");
        let Some(got) = found(got, GROUP_NOT_FOUND).at(ctx)? else {
            return Ok(None);
        };
        let Some(g) = got.security_groups().iter().find(|g| g.group_id() == Some(id)) else {
            return Ok(None);
        };
        let tags = tag_map(g.tags());
        let name = g.group_name().unwrap_or_default();
        let mut inputs = json!({
            "region": region,
            "name": name,
            "description": g.description().unwrap_or_default(),
            "vpc_id": g.vpc_id().unwrap_or_default(),
            "tags": user_tags(tags.clone()),
        });
        let unmanaged = self.unmanaged_rules(ctx, region, id).await?;
        if !unmanaged.is_empty() {
            inputs["unmanaged_rules"] = json!(unmanaged);
        }
        Ok(Some((Observed { id: id.to_string(), inputs, outputs: json!({"id": id, "name": name}) }, urn_tag(&tags))))
    }

    /// The group's rules that no resource manages (see [`SecurityGroupArgs::unmanaged_rules`]),
    /// by id.
    async fn unmanaged_rules(
        &self,
        ctx: Context<'_>,
        region: &str,
        id: &str,
    ) -> Result<Vec<UnmanagedRule>, ProviderError> {
        let ec2 = self.aws.ec2(region).await;
        let (mut rules, mut token) = (Vec::new(), None);
        loop {
            let page = ec2
                .describe_security_group_rules()
                .filters(filter("group-id", id))
                .set_next_token(token)
                .send()
                .await
                .op(EC2, "DescribeSecurityGroupRules");
            let Some(page) = found(page, GROUP_NOT_FOUND).at(ctx)? else {
                return Ok(rules);
            };
            rules.extend(page.security_group_rules().iter().filter_map(UnmanagedRule::of));
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        rules.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(rules)
    }

    /// Revokes the unmanaged rules `old` read back and `new` does not declare.
    async fn revoke(
        &self,
        ctx: Context<'_>,
        region: &str,
        id: &str,
        rules: &[&UnmanagedRule],
    ) -> Result<(), ProviderError> {
        let ec2 = self.aws.ec2(region).await;
        let ids = |egress: bool| -> Vec<String> {
            rules.iter().filter(|r| r.egress == egress).map(|r| r.id.clone()).collect()
        };
        let (egress, ingress) = (ids(true), ids(false));
        // A rule revoked meanwhile (by hand, or by an interrupted run) is what was wanted.
        let gone = [RULE_NOT_FOUND, &["InvalidPermission.NotFound"]].concat();
        if !egress.is_empty() {
            let revoked = ec2.revoke_security_group_egress().group_id(id).set_security_group_rule_ids(Some(egress));
            found(revoked.send().await.op(EC2, "RevokeSecurityGroupEgress"), &gone).at(ctx)?;
        }
        if !ingress.is_empty() {
            let revoked = ec2.revoke_security_group_ingress().group_id(id).set_security_group_rule_ids(Some(ingress));
            found(revoked.send().await.op(EC2, "RevokeSecurityGroupIngress"), &gone).at(ctx)?;
        }
        Ok(())
    }

    /// Revokes the egress rules AWS adds to a new group (all traffic to `0.0.0.0/0`, and to
    /// `::/0` in a VPC with IPv6): untagged, so never a rule that cairn created.
    async fn revoke_default_egress(&self, ctx: Context<'_>, region: &str, id: &str) -> Result<(), ProviderError> {
        let ec2 = self.aws.ec2(region).await;
        let rules = retry_while(GROUP_NOT_FOUND, CONSISTENCY_WAIT, || async {
            ec2.describe_security_group_rules()
                .filters(filter("group-id", id))
                .send()
                .await
                .op(EC2, "DescribeSecurityGroupRules")
        })
        .await
        .at(ctx)?;
        let defaults: Vec<String> = rules
            .security_group_rules()
            .iter()
            .filter(|r| {
                r.is_egress() == Some(true)
                    && r.ip_protocol() == Some("-1")
                    && (r.cidr_ipv4() == Some("0.0.0.0/0") || r.cidr_ipv6() == Some("::/0"))
                    && !tag_map(r.tags()).contains_key(TAG_URN)
            })
            .filter_map(|r| r.security_group_rule_id().map(str::to_string))
            .collect();
        if defaults.is_empty() {
            return Ok(());
        }
        retry_while(GROUP_NOT_FOUND, CONSISTENCY_WAIT, || async {
            ec2.revoke_security_group_egress()
                .group_id(id)
                .set_security_group_rule_ids(Some(defaults.clone()))
                .send()
                .await
                .op(EC2, "RevokeSecurityGroupEgress")
        })
        .await
        .at(ctx)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Provider for SecurityGroupProvider {
    fn type_token(&self) -> &'static str {
        SecurityGroup::TYPE
    }

    fn identity(&self, inputs: &Value) -> Value {
        json!({"region": inputs.get("region"), "name": inputs.get("name"), "vpc_id": inputs.get("vpc_id")})
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let args = SecurityGroupArgs::parse(inputs).map_err(|e| invalid(ctx, e))?;
        let region = region_of(&self.aws, ctx, inputs).await?;
        let ec2 = self.aws.ec2(&region).await;
        let out = retry_while(VPC_NOT_FOUND, CONSISTENCY_WAIT, || async {
            ec2.create_security_group()
                .group_name(&args.name)
                .description(&args.description)
                .vpc_id(&args.vpc_id)
                .tag_specifications(tag_spec(ctx, ResourceType::SecurityGroup, &args.tags))
                .send()
                .await
                .op(EC2, "CreateSecurityGroup")
        })
        .await
        .at(ctx)?;
        let id = out.group_id().ok_or_else(|| invalid(ctx, "EC2 CreateSecurityGroup returned no group id"))?;
        // If this fails, the group exists with AWS's allow-all egress rule: the create stays
        // pending, and `find` (which the next run calls) revokes it before adopting the group.
        self.revoke_default_egress(ctx, &region, id).await?;
        Ok(Created { id: id.to_string(), outputs: json!({"id": id, "name": args.name}) })
    }

    async fn read(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        let region = region_of(&self.aws, ctx, inputs).await?;
        Ok(self.observe(ctx, &region, id).await?.map(|(seen, _)| seen))
    }

    async fn update(&self, ctx: Context<'_>, id: &str, old: &Value, new: &Value) -> Result<Value, ProviderError> {
        let before = SecurityGroupArgs::parse(old).map_err(|e| invalid(ctx, e))?;
        let after = SecurityGroupArgs::parse(new).map_err(|e| invalid(ctx, e))?;
        unchanged(ctx, id, old, new, SecurityGroup::REPLACE_ON_CHANGE)?;
        let region = region_of(&self.aws, ctx, new).await?;
        let stray: Vec<&UnmanagedRule> =
            before.unmanaged_rules.iter().filter(|r| !after.unmanaged_rules.contains(r)).collect();
        self.revoke(ctx, &region, id, &stray).await?;
        sync_tags(&self.aws, &region, id, &before.tags, &all_tag_map(ctx, &after.tags)).await.at(ctx)?;
        Ok(json!({"id": id, "name": after.name}))
    }

    async fn delete(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<(), ProviderError> {
        let region = region_of(&self.aws, ctx, inputs).await?;
        let ec2 = self.aws.ec2(&region).await;
        let deleted = retry_while(DEPENDENCY, self.wait, || async {
            gone_ok(
                ec2.delete_security_group().group_id(id).send().await.op(EC2, "DeleteSecurityGroup"),
                GROUP_NOT_FOUND,
            )
        })
        .await;
        deleted.map_err(|e| still_in_use(ctx, id, self.wait, e))
    }

    /// Finds the group by its `cairn:urn` tag, name and VPC, and completes a create that was
    /// interrupted before AWS's default egress rule was revoked.
    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        let region = region_of(&self.aws, ctx, identity).await?;
        let ec2 = self.aws.ec2(&region).await;
        let got = ec2
            .describe_security_groups()
            .filters(urn_filter(ctx))
            .send()
            .await
            .op(EC2, "DescribeSecurityGroups")
            .at(ctx)?;
        let name = identity.get("name").and_then(Value::as_str);
        let vpc = identity.get("vpc_id").and_then(Value::as_str);
        let ids: Vec<&str> = got
            .security_groups()
            .iter()
            .filter(|g| (name.is_none() || g.group_name() == name) && (vpc.is_none() || g.vpc_id() == vpc))
            .filter_map(|g| g.group_id())
            .collect();
        let Some(found) = first_tagged_for(ctx, ids, |id| self.observe(ctx, &region, id)).await? else {
            return Ok(None);
        };
        // What the interrupted create had left to do, then the group as it is now (without the
        // revoked rule among its unmanaged ones).
        self.revoke_default_egress(ctx, &region, &found.id).await?;
        Ok(self.observe(ctx, &region, &found.id).await?.map(|(seen, _)| seen))
    }
}

// ---------------------------------------------------------------------------------------------
// Security group rules
// ---------------------------------------------------------------------------------------------

macro_rules! rule_resource {
    ($(#[$doc:meta])* $name:ident, $token:literal) => {
        $(#[$doc])*
        ///
        /// The id is the rule's (`sgr-…`). Changing `region`, `security_group_id` or the peer
        /// (`cidr_ipv4`, `cidr_ipv6`, `referenced_security_group_id`, `prefix_list_id`) replaces
        /// the rule; `ip_protocol`, the ports and `description` change in place
        /// (`ModifySecurityGroupRules`, which keeps the rule's id), and so do tags. The group is
        /// never touched.
        #[derive(Debug, Clone, Serialize)]
        pub struct $name {
            /// The region; `None`: the region of the `aws` provider configuration chosen for the
            /// resource or its component (see [`crate::Settings`]).
            #[serde(skip_serializing_if = "Option::is_none")]
            pub region: Option<String>,
            pub security_group_id: Input<String>,
            /// `tcp`, `udp`, `icmp` or `-1` (all traffic).
            pub ip_protocol: String,
            /// The first port (tcp, udp), or the ICMP type (`-1`: any); `-1` with protocol `-1`.
            pub from_port: i32,
            /// The last port (tcp, udp), or the ICMP code (`-1`: any); `-1` with protocol `-1`.
            pub to_port: i32,
            /// The peer, exactly one of these four: an IPv4 range,
            pub cidr_ipv4: Option<Input<String>>,
            /// an IPv6 range,
            pub cidr_ipv6: Option<Input<String>>,
            /// another security group (`sg-…`),
            pub referenced_security_group_id: Option<Input<String>>,
            /// or a managed prefix list (`pl-…`).
            pub prefix_list_id: Option<Input<String>>,
            /// Up to 255 characters; empty: none.
            pub description: String,
            /// Tags besides the `cairn:stack` and `cairn:urn` tags cairn adds.
            pub tags: BTreeMap<String, Input<String>>,
        }

        impl $name {
            /// A rule for `from_port`..=`to_port` of `ip_protocol`, with an IPv4 range as peer.
            pub fn cidr(
                security_group_id: impl Into<Input<String>>,
                ip_protocol: &str,
                from_port: i32,
                to_port: i32,
                cidr_ipv4: impl Into<Input<String>>,
            ) -> $name {
                $name {
                    region: None,
                    security_group_id: security_group_id.into(),
                    ip_protocol: ip_protocol.to_string(),
                    from_port,
                    to_port,
                    cidr_ipv4: Some(cidr_ipv4.into()),
                    cidr_ipv6: None,
                    referenced_security_group_id: None,
                    prefix_list_id: None,
                    description: String::new(),
                    tags: BTreeMap::new(),
                }
            }
        }

        impl Resource for $name {
            const TYPE: &'static str = $token;
            const PROVIDER_INPUTS: &'static [&'static str] = &["region"];
            const REPLACE_ON_CHANGE: &'static [&'static str] = &[
                "region",
                "security_group_id",
                "cidr_ipv4",
                "cidr_ipv6",
                "referenced_security_group_id",
                "prefix_list_id",
            ];
            type Outputs = SecurityGroupRuleOutputs;
        }
    };
}

rule_resource! {
    /// A rule that lets traffic into a [`SecurityGroup`] from one peer.
    SecurityGroupIngressRule, "aws:ec2:SecurityGroupIngressRule"
}

rule_resource! {
    /// A rule that lets traffic out of a [`SecurityGroup`] to one peer (a group's egress is
    /// exactly its egress rules: see [`SecurityGroup`]).
    SecurityGroupEgressRule, "aws:ec2:SecurityGroupEgressRule"
}

cairn::outputs! {
    /// The outputs of a [`SecurityGroupIngressRule`] or [`SecurityGroupEgressRule`].
    pub struct SecurityGroupRuleOutputs {
        /// The rule's id, `sgr-…`.
        pub id: String,
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleArgs {
    #[serde(default)]
    #[allow(dead_code)]
    region: Option<String>,
    security_group_id: String,
    ip_protocol: String,
    from_port: i32,
    to_port: i32,
    #[serde(default)]
    cidr_ipv4: Option<String>,
    #[serde(default)]
    cidr_ipv6: Option<String>,
    #[serde(default)]
    referenced_security_group_id: Option<String>,
    #[serde(default)]
    prefix_list_id: Option<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

impl RuleArgs {
    fn parse(t: &str, inputs: &Value) -> Result<RuleArgs, String> {
        let args: RuleArgs = parse_inputs(t, inputs)?;
        check_id(t, "security_group_id", &args.security_group_id, "sg-")?;
        let (from, to) = (args.from_port, args.to_port);
        match args.ip_protocol.as_str() {
            "tcp" | "udp" => {
                if !(0..=65535).contains(&from) || !(0..=65535).contains(&to) || from > to {
                    return Err(format!(
                        "{t}: `from_port` and `to_port` must be ports (0 to 65535) with `from_port` <= `to_port`, got {from} and {to}"
                    ));
                }
            }
            "icmp" => {
                if !(-1..=255).contains(&from) || !(-1..=255).contains(&to) {
                    return Err(format!(
                        "{t}: with `icmp`, `from_port` is the ICMP type and `to_port` the code (-1 to 255), got {from} and {to}"
                    ));
                }
            }
            "-1" => {
                if from != -1 || to != -1 {
                    return Err(format!(
                        "{t}: with `ip_protocol` -1 (all traffic), `from_port` and `to_port` must be -1"
                    ));
                }
            }
            other => return Err(format!("{t}: `ip_protocol` must be tcp, udp, icmp or -1, got `{other}`")),
        }
        let peers = [&args.cidr_ipv4, &args.cidr_ipv6, &args.referenced_security_group_id, &args.prefix_list_id];
        if peers.iter().filter(|p| p.is_some()).count() != 1 {
            return Err(format!(
                "{t}: set exactly one of `cidr_ipv4`, `cidr_ipv6`, `referenced_security_group_id` and `prefix_list_id`"
            ));
        }
        if let Some(c) = &args.cidr_ipv4 {
            check_cidr4(t, "cidr_ipv4", c, 0..=32)?;
        }
        if let Some(c) = &args.cidr_ipv6 {
            check_cidr6(t, "cidr_ipv6", c)?;
        }
        if let Some(g) = &args.referenced_security_group_id {
            check_id(t, "referenced_security_group_id", g, "sg-")?;
        }
        if let Some(p) = &args.prefix_list_id {
            check_id(t, "prefix_list_id", p, "pl-")?;
        }
        if args.description.chars().count() > 255 {
            return Err(format!("{t}: `description` must be at most 255 characters"));
        }
        validate_tags(t, &args.tags)?;
        Ok(args)
    }

    fn permission(&self) -> IpPermission {
        let description = Some(self.description.clone()).filter(|d| !d.is_empty());
        let mut p =
            IpPermission::builder().ip_protocol(&self.ip_protocol).from_port(self.from_port).to_port(self.to_port);
        if let Some(c) = &self.cidr_ipv4 {
            p = p.ip_ranges(IpRange::builder().cidr_ip(c).set_description(description).build());
        } else if let Some(c) = &self.cidr_ipv6 {
            p = p.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(c).set_description(description).build());
        } else if let Some(g) = &self.referenced_security_group_id {
            p = p.user_id_group_pairs(UserIdGroupPair::builder().group_id(g).set_description(description).build());
        } else if let Some(l) = &self.prefix_list_id {
            p = p.prefix_list_ids(PrefixListId::builder().prefix_list_id(l).set_description(description).build());
        }
        p.build()
    }

    fn request(&self) -> SecurityGroupRuleRequest {
        SecurityGroupRuleRequest::builder()
            .ip_protocol(&self.ip_protocol)
            .from_port(self.from_port)
            .to_port(self.to_port)
            .set_cidr_ipv4(self.cidr_ipv4.clone())
            .set_cidr_ipv6(self.cidr_ipv6.clone())
            .set_referenced_group_id(self.referenced_security_group_id.clone())
            .set_prefix_list_id(self.prefix_list_id.clone())
            .description(&self.description)
            .build()
    }
}

/// The provider of [`SecurityGroupIngressRule`] ([`SecurityGroupRuleProvider::ingress`]) or
/// [`SecurityGroupEgressRule`] ([`SecurityGroupRuleProvider::egress`]).
///
/// A rule created a moment after its group may meet `InvalidGroup.NotFound` (EC2 is
/// eventually consistent): that is retried with backoff for a few seconds, never forever.
#[derive(Debug, Clone)]
pub struct SecurityGroupRuleProvider {
    aws: Aws,
    egress: bool,
}

impl SecurityGroupRuleProvider {
    /// The provider of [`SecurityGroupIngressRule`].
    pub fn ingress(aws: &Aws) -> SecurityGroupRuleProvider {
        SecurityGroupRuleProvider { aws: aws.clone(), egress: false }
    }

    /// The provider of [`SecurityGroupEgressRule`].
    pub fn egress(aws: &Aws) -> SecurityGroupRuleProvider {
        SecurityGroupRuleProvider { aws: aws.clone(), egress: true }
    }

    fn token(&self) -> &'static str {
        if self.egress {
            SecurityGroupEgressRule::TYPE
        } else {
            SecurityGroupIngressRule::TYPE
        }
    }

    fn direction(&self) -> &'static str {
        if self.egress {
            "egress"
        } else {
            "ingress"
        }
    }

    fn inputs_of(&self, region: &str, r: &SecurityGroupRule) -> Value {
        let tags = tag_map(r.tags());
        json!({
            "region": region,
            "security_group_id": r.group_id().unwrap_or_default(),
            "ip_protocol": r.ip_protocol().unwrap_or_default(),
            "from_port": r.from_port().unwrap_or(-1),
            "to_port": r.to_port().unwrap_or(-1),
            "cidr_ipv4": r.cidr_ipv4(),
            "cidr_ipv6": r.cidr_ipv6(),
            "referenced_security_group_id": r.referenced_group_info().and_then(|g| g.group_id()),
            "prefix_list_id": r.prefix_list_id(),
            "description": r.description().unwrap_or_default(),
            "tags": user_tags(tags),
        })
    }

    /// The rule as AWS has it; `None` when it is gone.
    async fn rule(&self, ctx: Context<'_>, region: &str, id: &str) -> Result<Option<SecurityGroupRule>, ProviderError> {
        if !id.starts_with("sgr-") {
            return Err(invalid(ctx, format!("`{id}` is not a security group rule id (`sgr-…`)")));
        }
        let ec2 = self.aws.ec2(region).await;
        let got = ec2
            .describe_security_group_rules()
            .security_group_rule_ids(id)
            .send()
            .await
            .op(EC2, "DescribeSecurityGroupRules");
        let Some(got) = found(got, RULE_NOT_FOUND).at(ctx)? else {
            return Ok(None);
        };
        let Some(rule) = got.security_group_rules().iter().find(|r| r.security_group_rule_id() == Some(id)) else {
            return Ok(None);
        };
        if rule.is_egress() != Some(self.egress) {
            return Err(invalid(ctx, format!("{id} is not an {} rule", self.direction())));
        }
        Ok(Some(rule.clone()))
    }

    async fn observe(&self, ctx: Context<'_>, region: &str, id: &str) -> Result<Option<Observed>, ProviderError> {
        Ok(self.rule(ctx, region, id).await?.map(|r| Observed {
            id: id.to_string(),
            inputs: self.inputs_of(region, &r),
            outputs: json!({"id": id}),
        }))
    }
}

#[async_trait::async_trait]
impl Provider for SecurityGroupRuleProvider {
    fn type_token(&self) -> &'static str {
        self.token()
    }

    fn identity(&self, inputs: &Value) -> Value {
        let mut identity = json!({});
        for k in SecurityGroupIngressRule::REPLACE_ON_CHANGE {
            identity[*k] = inputs.get(*k).cloned().unwrap_or(Value::Null);
        }
        identity
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let args = RuleArgs::parse(self.token(), inputs).map_err(|e| invalid(ctx, e))?;
        let region = region_of(&self.aws, ctx, inputs).await?;
        let ec2 = self.aws.ec2(&region).await;
        let tags = tag_spec(ctx, ResourceType::SecurityGroupRule, &args.tags);
        let rules = if self.egress {
            retry_while(GROUP_NOT_FOUND, CONSISTENCY_WAIT, || async {
                ec2.authorize_security_group_egress()
                    .group_id(&args.security_group_id)
                    .ip_permissions(args.permission())
                    .tag_specifications(tags.clone())
                    .send()
                    .await
                    .op(EC2, "AuthorizeSecurityGroupEgress")
                    .map(|o| o.security_group_rules().to_vec())
            })
            .await
        } else {
            retry_while(GROUP_NOT_FOUND, CONSISTENCY_WAIT, || async {
                ec2.authorize_security_group_ingress()
                    .group_id(&args.security_group_id)
                    .ip_permissions(args.permission())
                    .tag_specifications(tags.clone())
                    .send()
                    .await
                    .op(EC2, "AuthorizeSecurityGroupIngress")
                    .map(|o| o.security_group_rules().to_vec())
            })
            .await
        };
        let rules = rules.at(ctx)?;
        let id = rules.iter().find_map(|r| r.security_group_rule_id()).ok_or_else(|| {
            invalid(ctx, format!("EC2 authorized the {} rule but returned no rule id", self.direction()))
        })?;
        Ok(Created { id: id.to_string(), outputs: json!({"id": id}) })
    }

    async fn read(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        let region = region_of(&self.aws, ctx, inputs).await?;
        self.observe(ctx, &region, id).await
    }

    async fn update(&self, ctx: Context<'_>, id: &str, old: &Value, new: &Value) -> Result<Value, ProviderError> {
        let before = RuleArgs::parse(self.token(), old).map_err(|e| invalid(ctx, e))?;
        let after = RuleArgs::parse(self.token(), new).map_err(|e| invalid(ctx, e))?;
        unchanged(ctx, id, old, new, SecurityGroupIngressRule::REPLACE_ON_CHANGE)?;
        let region = region_of(&self.aws, ctx, new).await?;
        let ec2 = self.aws.ec2(&region).await;
        let same_rule = (&before.ip_protocol, before.from_port, before.to_port, &before.description)
            == (&after.ip_protocol, after.from_port, after.to_port, &after.description);
        if !same_rule {
            ec2.modify_security_group_rules()
                .group_id(&after.security_group_id)
                .security_group_rules(
                    SecurityGroupRuleUpdate::builder()
                        .security_group_rule_id(id)
                        .security_group_rule(after.request())
                        .build(),
                )
                .send()
                .await
                .op(EC2, "ModifySecurityGroupRules")
                .at(ctx)?;
        }
        sync_tags(&self.aws, &region, id, &before.tags, &all_tag_map(ctx, &after.tags)).await.at(ctx)?;
        Ok(json!({"id": id}))
    }

    async fn delete(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<(), ProviderError> {
        let region = region_of(&self.aws, ctx, inputs).await?;
        let Some(rule) = self.rule(ctx, &region, id).await? else {
            return Ok(());
        };
        let group = rule.group_id().unwrap_or_default();
        let ec2 = self.aws.ec2(&region).await;
        let gone = &["InvalidSecurityGroupRuleId.NotFound", "InvalidGroup.NotFound", "InvalidPermission.NotFound"];
        if self.egress {
            let r = ec2.revoke_security_group_egress().group_id(group).security_group_rule_ids(id).send().await;
            gone_ok(r.op(EC2, "RevokeSecurityGroupEgress"), gone).at(ctx)
        } else {
            let r = ec2.revoke_security_group_ingress().group_id(group).security_group_rule_ids(id).send().await;
            gone_ok(r.op(EC2, "RevokeSecurityGroupIngress"), gone).at(ctx)
        }
    }

    /// Finds the rule among its group's by its `cairn:urn` tag and peer.
    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        let Some(group) = identity.get("security_group_id").and_then(Value::as_str).filter(|g| g.starts_with("sg-"))
        else {
            return Ok(None);
        };
        let region = region_of(&self.aws, ctx, identity).await?;
        let ec2 = self.aws.ec2(&region).await;
        let got = ec2
            .describe_security_group_rules()
            .filters(filter("group-id", group))
            .send()
            .await
            .op(EC2, "DescribeSecurityGroupRules");
        let Some(got) = found(got, GROUP_NOT_FOUND).at(ctx)? else {
            return Ok(None);
        };
        for r in got.security_group_rules() {
            let Some(id) = r.security_group_rule_id() else { continue };
            if r.is_egress() != Some(self.egress)
                || !adoptable(ctx, id, tag_map(r.tags()).get(TAG_URN).map(String::as_str))
            {
                continue;
            }
            let inputs = self.inputs_of(&region, r);
            let peers = ["cidr_ipv4", "cidr_ipv6", "referenced_security_group_id", "prefix_list_id"];
            if peers.iter().all(|k| identity.get(*k).unwrap_or(&Value::Null) == inputs.get(*k).unwrap_or(&Value::Null))
            {
                return Ok(Some(Observed { id: id.to_string(), inputs, outputs: json!({"id": id}) }));
            }
        }
        Ok(None)
    }
}

// ---------------------------------------------------------------------------------------------
// VPC endpoint
// ---------------------------------------------------------------------------------------------

/// The kind of a [`VpcEndpoint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndpointType {
    /// Network interfaces in subnets, with security groups (most services).
    Interface,
    /// Routes in route tables (S3 and DynamoDB).
    Gateway,
}

/// A VPC endpoint: private access to an AWS service from the VPC.
///
/// Changing `region`, `vpc_id`, `service_name` or `vpc_endpoint_type` replaces it; subnets,
/// security groups, private DNS (interface endpoints), route tables (gateway endpoints) and
/// tags change in place (`ModifyVpcEndpoint`). Creating and changing it wait until it is
/// `available`, deleting it until it is gone, for a bounded time.
#[derive(Debug, Clone, Serialize)]
pub struct VpcEndpoint {
    /// The region; `None`: the region of the `aws` provider configuration chosen for the
    /// resource or its component (see [`crate::Settings`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub vpc_id: Input<String>,
    /// e.g. `com.amazonaws.eu-west-1.ecr.api`, `com.amazonaws.eu-west-1.s3`.
    pub service_name: Input<String>,
    pub vpc_endpoint_type: EndpointType,
    /// Interface endpoints: one subnet per availability zone.
    pub subnet_ids: Vec<Input<String>>,
    /// Interface endpoints: the groups of its network interfaces.
    pub security_group_ids: Vec<Input<String>>,
    /// Interface endpoints: whether the service's public DNS name resolves to the endpoint in
    /// the VPC (needs the VPC's DNS support and host names). Always false for gateways.
    pub private_dns_enabled: bool,
    /// Gateway endpoints: the route tables that get a route to the service.
    pub route_table_ids: Vec<Input<String>>,
    /// Tags besides the `cairn:stack` and `cairn:urn` tags cairn adds.
    pub tags: BTreeMap<String, Input<String>>,
}

impl VpcEndpoint {
    /// A gateway endpoint (S3, DynamoDB) routed from `route_table_ids`.
    pub fn gateway(
        vpc_id: impl Into<Input<String>>,
        service_name: impl Into<Input<String>>,
        route_table_ids: Vec<Input<String>>,
    ) -> VpcEndpoint {
        VpcEndpoint {
            region: None,
            vpc_id: vpc_id.into(),
            service_name: service_name.into(),
            vpc_endpoint_type: EndpointType::Gateway,
            subnet_ids: Vec::new(),
            security_group_ids: Vec::new(),
            private_dns_enabled: false,
            route_table_ids,
            tags: BTreeMap::new(),
        }
    }

    /// An interface endpoint in `subnet_ids`, with private DNS.
    pub fn interface(
        vpc_id: impl Into<Input<String>>,
        service_name: impl Into<Input<String>>,
        subnet_ids: Vec<Input<String>>,
        security_group_ids: Vec<Input<String>>,
    ) -> VpcEndpoint {
        VpcEndpoint {
            region: None,
            vpc_id: vpc_id.into(),
            service_name: service_name.into(),
            vpc_endpoint_type: EndpointType::Interface,
            subnet_ids,
            security_group_ids,
            private_dns_enabled: true,
            route_table_ids: Vec::new(),
            tags: BTreeMap::new(),
        }
    }
}

cairn::outputs! {
    /// The outputs of a [`VpcEndpoint`].
    pub struct VpcEndpointOutputs {
        pub id: String,
        /// A gateway endpoint's AWS-managed prefix list (`pl-…`: the service's address ranges
        /// in the region), for security group egress rules to the service; empty for an
        /// interface endpoint, whose traffic goes to its network interfaces in the VPC.
        pub prefix_list_id: String,
    }
}

impl Resource for VpcEndpoint {
    const TYPE: &'static str = "aws:ec2:VpcEndpoint";
    const PROVIDER_INPUTS: &'static [&'static str] = &["region"];
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["region", "vpc_id", "service_name", "vpc_endpoint_type"];
    type Outputs = VpcEndpointOutputs;
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointArgs {
    #[serde(default)]
    #[allow(dead_code)]
    region: Option<String>,
    vpc_id: String,
    service_name: String,
    vpc_endpoint_type: EndpointType,
    #[serde(default)]
    subnet_ids: Vec<String>,
    #[serde(default)]
    security_group_ids: Vec<String>,
    #[serde(default)]
    private_dns_enabled: bool,
    #[serde(default)]
    route_table_ids: Vec<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

impl EndpointArgs {
    fn parse(inputs: &Value) -> Result<EndpointArgs, String> {
        let t = VpcEndpoint::TYPE;
        let args: EndpointArgs = parse_inputs(t, inputs)?;
        check_id(t, "vpc_id", &args.vpc_id, "vpc-")?;
        if args.service_name.is_empty() || args.service_name.contains(char::is_whitespace) {
            return Err(format!("{t}: `service_name` must be a service name like `com.amazonaws.<region>.s3`"));
        }
        let lists = [
            ("subnet_ids", &args.subnet_ids, "subnet-"),
            ("security_group_ids", &args.security_group_ids, "sg-"),
            ("route_table_ids", &args.route_table_ids, "rtb-"),
        ];
        for (field, ids, prefix) in lists {
            for id in ids {
                check_id(t, field, id, prefix)?;
            }
            if ids.iter().collect::<BTreeSet<_>>().len() != ids.len() {
                return Err(format!("{t}: `{field}` lists an id twice"));
            }
        }
        match args.vpc_endpoint_type {
            EndpointType::Gateway => {
                if !args.subnet_ids.is_empty() || !args.security_group_ids.is_empty() || args.private_dns_enabled {
                    return Err(format!(
                        "{t}: a Gateway endpoint takes `route_table_ids`, not `subnet_ids`, `security_group_ids` or `private_dns_enabled`"
                    ));
                }
            }
            EndpointType::Interface => {
                if !args.route_table_ids.is_empty() {
                    return Err(format!("{t}: an Interface endpoint takes `subnet_ids`, not `route_table_ids`"));
                }
            }
        }
        validate_tags(t, &args.tags)?;
        Ok(args)
    }
}

provider_with_wait! {
    /// The provider of [`VpcEndpoint`]. Creates use a client token; creates and changes wait
    /// until the endpoint is `available`, deletes until it is gone, each for a bounded time.
    VpcEndpointProvider
}

/// What a list should gain and lose to go from `have` to `want`.
fn list_changes(have: &[String], want: &[String]) -> (Option<Vec<String>>, Option<Vec<String>>) {
    let add: Vec<String> = want.iter().filter(|w| !have.contains(w)).cloned().collect();
    let remove: Vec<String> = have.iter().filter(|h| !want.contains(h)).cloned().collect();
    (Some(add).filter(|v| !v.is_empty()), Some(remove).filter(|v| !v.is_empty()))
}

impl VpcEndpointProvider {
    /// The endpoint, its state (lowercase) and `cairn:urn` tag. `None` when gone (or deleted).
    async fn observe(
        &self,
        ctx: Context<'_>,
        region: &str,
        id: &str,
        prior: &Value,
    ) -> Result<Option<(Observed, String, Option<String>)>, ProviderError> {
        let ec2 = self.aws.ec2(region).await;
        let got = ec2.describe_vpc_endpoints().vpc_endpoint_ids(id).send().await.op(EC2, "DescribeVpcEndpoints");
        let Some(got) = found(got, ENDPOINT_NOT_FOUND).at(ctx)? else {
            return Ok(None);
        };
        let Some(e) = got.vpc_endpoints().iter().find(|e| e.vpc_endpoint_id() == Some(id)) else {
            return Ok(None);
        };
        let state = e.state().map(|s| s.as_str().to_ascii_lowercase()).unwrap_or_default();
        if state == "deleted" {
            return Ok(None);
        }
        let tags = tag_map(e.tags());
        let kind = e.vpc_endpoint_type().map(|k| k.as_str()).unwrap_or_default();
        let gateway = kind.eq_ignore_ascii_case("gateway");
        let groups: Vec<String> = e.groups().iter().filter_map(|g| g.group_id().map(str::to_string)).collect();
        let inputs = json!({
            "region": region,
            "vpc_id": e.vpc_id().unwrap_or_default(),
            "service_name": e.service_name().unwrap_or_default(),
            "vpc_endpoint_type": kind,
            "subnet_ids": same_set_or(e.subnet_ids().to_vec(), prior, "subnet_ids"),
            "security_group_ids": same_set_or(groups, prior, "security_group_ids"),
            "private_dns_enabled": !gateway && e.private_dns_enabled().unwrap_or(false),
            "route_table_ids": same_set_or(e.route_table_ids().to_vec(), prior, "route_table_ids"),
            "tags": user_tags(tags.clone()),
        });
        let prefix_list_id = match (gateway, e.service_name()) {
            (true, Some(service)) => {
                let lists = ec2
                    .describe_prefix_lists()
                    .filters(filter("prefix-list-name", service))
                    .send()
                    .await
                    .op(EC2, "DescribePrefixLists")
                    .at(ctx)?;
                lists.prefix_lists().iter().find_map(|l| l.prefix_list_id()).unwrap_or_default().to_string()
            }
            _ => String::new(),
        };
        let outputs = json!({"id": id, "prefix_list_id": prefix_list_id});
        Ok(Some((Observed { id: id.to_string(), inputs, outputs }, state, urn_tag(&tags))))
    }

    /// Waits until the endpoint is `available`, for at most `self.wait`.
    async fn wait_available(&self, ctx: Context<'_>, region: &str, id: &str) -> Result<Observed, ProviderError> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(500);
        loop {
            let seen = self.observe(ctx, region, id, &Value::Null).await?;
            let state = match seen {
                Some((seen, state, _)) if state == "available" => return Ok(seen),
                Some((_, state, _)) if matches!(state.as_str(), "failed" | "rejected" | "expired" | "deleting") => {
                    return Err(invalid(ctx, format!("VPC endpoint {id} is `{state}` instead of available")));
                }
                Some((_, state, _)) => state,
                // Just created: perhaps not visible yet.
                None if started.elapsed() < CONSISTENCY_WAIT => "not visible yet".to_string(),
                None => return Err(invalid(ctx, format!("VPC endpoint {id} disappeared while waiting for it"))),
            };
            if started.elapsed() + delay > self.wait {
                return Err(invalid(
                    ctx,
                    format!(
                        "VPC endpoint {id} did not become available within {}s (state: {state})",
                        self.wait.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }
}

#[async_trait::async_trait]
impl Provider for VpcEndpointProvider {
    fn type_token(&self) -> &'static str {
        VpcEndpoint::TYPE
    }

    fn identity(&self, inputs: &Value) -> Value {
        json!({
            "region": inputs.get("region"),
            "vpc_id": inputs.get("vpc_id"),
            "service_name": inputs.get("service_name"),
            "vpc_endpoint_type": inputs.get("vpc_endpoint_type"),
        })
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let args = EndpointArgs::parse(inputs).map_err(|e| invalid(ctx, e))?;
        let region = region_of(&self.aws, ctx, inputs).await?;
        let ec2 = self.aws.ec2(&region).await;
        let interface = args.vpc_endpoint_type == EndpointType::Interface;
        let nonempty = |v: &Vec<String>| Some(v.clone()).filter(|v| !v.is_empty());
        let out = ec2
            .create_vpc_endpoint()
            .vpc_id(&args.vpc_id)
            .service_name(&args.service_name)
            .vpc_endpoint_type(if interface { VpcEndpointType::Interface } else { VpcEndpointType::Gateway })
            .set_subnet_ids(nonempty(&args.subnet_ids))
            .set_security_group_ids(nonempty(&args.security_group_ids))
            .set_route_table_ids(nonempty(&args.route_table_ids))
            .set_private_dns_enabled(interface.then_some(args.private_dns_enabled))
            .client_token(client_token(ctx))
            .tag_specifications(tag_spec(ctx, ResourceType::VpcEndpoint, &args.tags))
            .send()
            .await
            .op(EC2, "CreateVpcEndpoint")
            .at(ctx)?;
        let id = out
            .vpc_endpoint()
            .and_then(|e| e.vpc_endpoint_id())
            .ok_or_else(|| invalid(ctx, "EC2 CreateVpcEndpoint returned no id"))?;
        // If the wait fails, the endpoint exists: the create stays pending, and the next run
        // finds it by its tag.
        let seen = self.wait_available(ctx, &region, id).await?;
        Ok(Created { id: id.to_string(), outputs: seen.outputs })
    }

    async fn read(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        let region = region_of(&self.aws, ctx, inputs).await?;
        Ok(self.observe(ctx, &region, id, inputs).await?.map(|(seen, _, _)| seen))
    }

    async fn update(&self, ctx: Context<'_>, id: &str, old: &Value, new: &Value) -> Result<Value, ProviderError> {
        let before = EndpointArgs::parse(old).map_err(|e| invalid(ctx, e))?;
        let after = EndpointArgs::parse(new).map_err(|e| invalid(ctx, e))?;
        unchanged(ctx, id, old, new, VpcEndpoint::REPLACE_ON_CHANGE)?;
        let region = region_of(&self.aws, ctx, new).await?;
        let (now, _, _) = self
            .observe(ctx, &region, id, old)
            .await?
            .ok_or_else(|| invalid(ctx, format!("{id} no longer exists; refresh, then deploy to create it again")))?;
        let have = |k: &str| -> Vec<String> { serde_json::from_value(now.inputs[k].clone()).unwrap_or_default() };
        let (add_subnets, remove_subnets) = list_changes(&have("subnet_ids"), &after.subnet_ids);
        let (add_groups, remove_groups) = list_changes(&have("security_group_ids"), &after.security_group_ids);
        let (add_tables, remove_tables) = list_changes(&have("route_table_ids"), &after.route_table_ids);
        let dns_changed = now.inputs["private_dns_enabled"] != json!(after.private_dns_enabled);
        let changes = [&add_subnets, &remove_subnets, &add_groups, &remove_groups, &add_tables, &remove_tables];
        if changes.iter().any(|c| c.is_some()) || dns_changed {
            let ec2 = self.aws.ec2(&region).await;
            ec2.modify_vpc_endpoint()
                .vpc_endpoint_id(id)
                .set_add_subnet_ids(add_subnets)
                .set_remove_subnet_ids(remove_subnets)
                .set_add_security_group_ids(add_groups)
                .set_remove_security_group_ids(remove_groups)
                .set_add_route_table_ids(add_tables)
                .set_remove_route_table_ids(remove_tables)
                .set_private_dns_enabled(dns_changed.then_some(after.private_dns_enabled))
                .send()
                .await
                .op(EC2, "ModifyVpcEndpoint")
                .at(ctx)?;
            self.wait_available(ctx, &region, id).await?;
        }
        sync_tags(&self.aws, &region, id, &before.tags, &all_tag_map(ctx, &after.tags)).await.at(ctx)?;
        Ok(json!({"id": id}))
    }

    async fn delete(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<(), ProviderError> {
        let region = region_of(&self.aws, ctx, inputs).await?;
        // A deleted endpoint stays visible (state `deleted`) for a while: it is gone already.
        if self.observe(ctx, &region, id, &Value::Null).await?.is_none() {
            return Ok(());
        }
        let ec2 = self.aws.ec2(&region).await;
        let out = ec2.delete_vpc_endpoints().vpc_endpoint_ids(id).send().await.op(EC2, "DeleteVpcEndpoints");
        let Some(out) = found(out, ENDPOINT_NOT_FOUND).at(ctx)? else {
            return Ok(());
        };
        // Failures come back as "unsuccessful" items, not as an error.
        for item in out.unsuccessful() {
            let code = item.error().and_then(|e| e.code()).unwrap_or_default();
            if !ENDPOINT_NOT_FOUND.contains(&code) {
                let message = item.error().and_then(|e| e.message()).unwrap_or_default();
                return Err(invalid(ctx, format!("EC2 DeleteVpcEndpoints failed for {id}: {code}: {message}")));
            }
        }
        let started = Instant::now();
        let mut delay = Duration::from_millis(500);
        while let Some((_, state, _)) = self.observe(ctx, &region, id, &Value::Null).await? {
            if started.elapsed() + delay > self.wait {
                return Err(invalid(
                    ctx,
                    format!("VPC endpoint {id} was not deleted within {}s (state: {state})", self.wait.as_secs()),
                ));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
        Ok(())
    }

    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        let region = region_of(&self.aws, ctx, identity).await?;
        let ec2 = self.aws.ec2(&region).await;
        let got = ec2
            .describe_vpc_endpoints()
            .filters(urn_filter(ctx))
            .send()
            .await
            .op(EC2, "DescribeVpcEndpoints")
            .at(ctx)?;
        let ids: Vec<&str> = got.vpc_endpoints().iter().filter_map(|e| e.vpc_endpoint_id()).collect();
        first_tagged_for(ctx, ids, |id| async {
            let seen = self.observe(ctx, &region, id, &Value::Null).await?;
            Ok(seen
                .filter(|(s, state, _)| {
                    state != "deleting"
                        && same_identity(identity, &s.inputs, &["vpc_id", "service_name", "vpc_endpoint_type"])
                })
                .map(|(s, _, urn)| (s, urn)))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_and_id_checks_name_the_field() {
        assert!(check_cidr4("t", "cidr_block", "10.0.0.0/16", 16..=28).is_ok());
        assert!(check_cidr4("t", "cidr_block", "10.0.0.0/8", 16..=28).unwrap_err().contains("`cidr_block`"));
        assert!(check_cidr4("t", "cidr_block", "10.0.0/16", 16..=28).is_err());
        assert!(check_cidr6("t", "cidr_ipv6", "2001:db8::/32").is_ok());
        assert!(check_cidr6("t", "cidr_ipv6", "10.0.0.0/8").unwrap_err().contains("`cidr_ipv6`"));
        assert!(check_id("t", "vpc_id", "vpc-0a1b", "vpc-").is_ok());
        assert!(check_id("t", "vpc_id", "subnet-0a1b", "vpc-").unwrap_err().contains("`vpc_id`"));
        assert!(check_id("t", "vpc_id", "vpc-", "vpc-").is_err());
    }

    #[test]
    fn rule_validation_names_the_field() {
        let t = SecurityGroupIngressRule::TYPE;
        let rule = |extra: Value| {
            let mut v = json!({"security_group_id": "sg-1", "ip_protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_ipv4": "10.0.0.0/8"});
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            RuleArgs::parse(t, &v)
        };
        assert!(rule(json!({})).is_ok());
        assert!(rule(json!({"ip_protocol": "gre"})).unwrap_err().contains("`ip_protocol`"));
        assert!(rule(json!({"from_port": 500})).unwrap_err().contains("`from_port`"));
        assert!(rule(json!({"ip_protocol": "-1"})).unwrap_err().contains("must be -1"));
        assert!(rule(json!({"ip_protocol": "-1", "from_port": -1, "to_port": -1})).is_ok());
        assert!(rule(json!({"cidr_ipv6": "::/0"})).unwrap_err().contains("exactly one"));
        assert!(rule(json!({"cidr_ipv4": null})).unwrap_err().contains("exactly one"));
        assert!(rule(json!({"cidr_ipv4": null, "prefix_list_id": "pl-1"})).is_ok());
    }

    #[test]
    fn route_and_endpoint_validation_name_the_field() {
        let route = json!({"route_table_id": "rtb-1", "destination_cidr_block": "0.0.0.0/0"});
        assert!(RouteArgs::parse(&route).unwrap_err().contains("exactly one"));
        let mut r = route.clone();
        r["gateway_id"] = json!("nat-1");
        assert!(RouteArgs::parse(&r).unwrap_err().contains("`gateway_id`"));
        r["gateway_id"] = json!("igw-1");
        assert_eq!(RouteArgs::parse(&r).unwrap().id(), "rtb-1_0.0.0.0/0");

        let e = json!({"vpc_id": "vpc-1", "service_name": "com.amazonaws.eu-west-1.s3", "vpc_endpoint_type": "Gateway",
                       "subnet_ids": ["subnet-1"]});
        assert!(EndpointArgs::parse(&e).unwrap_err().contains("Gateway"));
        let e = json!({"vpc_id": "vpc-1", "service_name": "com.amazonaws.eu-west-1.s3", "vpc_endpoint_type": "Interface",
                       "route_table_ids": ["rtb-1"]});
        assert!(EndpointArgs::parse(&e).unwrap_err().contains("`route_table_ids`"));
    }

    #[test]
    fn lists_keep_the_prior_order() {
        let prior = json!({"ids": ["b", "a"]});
        assert_eq!(same_set_or(vec!["a".into(), "b".into()], &prior, "ids"), ["b", "a"]);
        assert_eq!(same_set_or(vec!["a".into(), "c".into()], &prior, "ids"), ["a", "c"]);
        let (add, remove) = list_changes(&["a".into(), "b".into()], &["b".into(), "c".into()]);
        assert_eq!((add.unwrap(), remove.unwrap()), (vec!["c".to_string()], vec!["a".to_string()]));
    }
}
