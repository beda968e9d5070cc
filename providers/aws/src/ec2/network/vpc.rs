//! VPCs, their subnets, and internet gateways.

use super::*;

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
        // CreateVpc has no client token and allows overlapping ranges: a retry of a lost
        // answer would make a second VPC, so a lost answer is looked for by its tag first.
        let made = create_retrying(
            || async {
                let out = ec2
                    .create_vpc()
                    .cidr_block(&args.cidr_block)
                    .tag_specifications(tag_spec(ctx, ResourceType::Vpc, &args.tags))
                    .customize()
                    .config_override(no_retries!(aws_sdk_ec2))
                    .send()
                    .await
                    .op(EC2, "CreateVpc")?;
                let id = out.vpc().and_then(|v| v.vpc_id());
                Ok(id.ok_or_else(|| invalid(ctx, "EC2 CreateVpc returned no VPC id"))?.to_string())
            },
            || async { Ok(self.find(ctx, &self.identity(inputs)).await?.map(|seen| seen.id)) },
        )
        .await;
        let id = &made_or_found(ctx, made)?;
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
        Ok(got.subnets().iter().find(|s| s.subnet_id() == Some(id)).map(|s| Self::observed(region, s)))
    }

    /// A subnet as EC2 describes it, and its `cairn:urn` tag.
    fn observed(region: &str, s: &aws_sdk_ec2::types::Subnet) -> (Observed, Option<String>) {
        let id = s.subnet_id().unwrap_or_default();
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
        (Observed { id: id.to_string(), inputs, outputs }, urn_tag(&tags))
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

    fn read_batch(&self) -> usize {
        READ_BATCH
    }

    /// One `DescribeSubnets` per region (and page) for all of them.
    async fn read_many(&self, items: &[ReadItem<'_>]) -> Result<Vec<Option<Observed>>, ProviderError> {
        let mut seen = vec![None; items.len()];
        for (region, indexes) in by_region(&self.aws, items).await? {
            let ec2 = self.aws.ec2(&region).await;
            let ids = filter_any("subnet-id", indexes.iter().map(|&i| items[i].id.to_string()));
            let mut found: BTreeMap<String, Observed> = BTreeMap::new();
            let mut token = None;
            loop {
                let page = ec2
                    .describe_subnets()
                    .filters(ids.clone())
                    .set_next_token(token)
                    .send()
                    .await
                    .op(EC2, "DescribeSubnets")
                    .at(items[indexes[0]].ctx)?;
                for s in page.subnets() {
                    let (observed, _) = Self::observed(&region, s);
                    found.insert(observed.id.clone(), observed);
                }
                match page.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_string()),
                    _ => break,
                }
            }
            for i in indexes {
                seen[i] = found.remove(items[i].id);
            }
        }
        Ok(seen)
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
        // No client token, and nothing unique about a gateway: a lost answer is looked for by
        // its tag before the create is sent again.
        let made = create_retrying(
            || async {
                let out = ec2
                    .create_internet_gateway()
                    .tag_specifications(tag_spec(ctx, ResourceType::InternetGateway, &args.tags))
                    .customize()
                    .config_override(no_retries!(aws_sdk_ec2))
                    .send()
                    .await
                    .op(EC2, "CreateInternetGateway")?;
                let id = out.internet_gateway().and_then(|g| g.internet_gateway_id());
                Ok(id.ok_or_else(|| invalid(ctx, "EC2 CreateInternetGateway returned no id"))?.to_string())
            },
            || async { Ok(self.find(ctx, &self.identity(inputs)).await?.map(|seen| seen.id)) },
        )
        .await;
        let id = &made_or_found(ctx, made)?;
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
