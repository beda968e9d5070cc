//! Route tables, their routes, and their subnet associations.

use super::*;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_validation_names_the_field() {
        let route = json!({"route_table_id": "rtb-1", "destination_cidr_block": "0.0.0.0/0"});
        assert!(RouteArgs::parse(&route).unwrap_err().contains("exactly one"));
        let mut r = route.clone();
        r["gateway_id"] = json!("nat-1");
        assert!(RouteArgs::parse(&r).unwrap_err().contains("`gateway_id`"));
        r["gateway_id"] = json!("igw-1");
        assert_eq!(RouteArgs::parse(&r).unwrap().id(), "rtb-1_0.0.0.0/0");
    }
}
