//! VPC endpoints: gateway (S3) and interface (ECR, CloudWatch Logs, ...).

use super::*;

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
    fn endpoint_validation_names_the_field() {
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
