//! Security groups (restricted egress) and their rules.

use aws_sdk_ec2::types::SecurityGroup as SdkSecurityGroup;

use super::*;

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
        let rules = self.rules(ctx, region, std::slice::from_ref(&id.to_string())).await?;
        Ok(Some(Self::observed(region, g, rules.get(id).map(Vec::as_slice).unwrap_or_default())))
    }

    /// A group as EC2 describes it, with the rules no resource manages among `rules` (its
    /// own), and its `cairn:urn` tag.
    fn observed(region: &str, g: &SdkSecurityGroup, rules: &[SecurityGroupRule]) -> (Observed, Option<String>) {
        let id = g.group_id().unwrap_or_default();
        let tags = tag_map(g.tags());
        let name = g.group_name().unwrap_or_default();
        let mut inputs = json!({
            "region": region,
            "name": name,
            "description": g.description().unwrap_or_default(),
            "vpc_id": g.vpc_id().unwrap_or_default(),
            "tags": user_tags(tags.clone()),
        });
        let mut unmanaged: Vec<UnmanagedRule> = rules.iter().filter_map(UnmanagedRule::of).collect();
        unmanaged.sort_by(|a, b| a.id.cmp(&b.id));
        if !unmanaged.is_empty() {
            inputs["unmanaged_rules"] = json!(unmanaged);
        }
        (Observed { id: id.to_string(), inputs, outputs: json!({"id": id, "name": name}) }, urn_tag(&tags))
    }

    /// The rules of the groups `ids`, by group: one `DescribeSecurityGroupRules` (and its
    /// pages) for all of them.
    async fn rules(
        &self,
        ctx: Context<'_>,
        region: &str,
        ids: &[String],
    ) -> Result<BTreeMap<String, Vec<SecurityGroupRule>>, ProviderError> {
        let ec2 = self.aws.ec2(region).await;
        let (mut rules, mut token): (BTreeMap<String, Vec<SecurityGroupRule>>, _) = (BTreeMap::new(), None);
        loop {
            let page = ec2
                .describe_security_group_rules()
                .filters(filter_any("group-id", ids.iter().cloned()))
                .set_next_token(token)
                .send()
                .await
                .op(EC2, "DescribeSecurityGroupRules");
            let Some(page) = found(page, GROUP_NOT_FOUND).at(ctx)? else {
                return Ok(rules);
            };
            for r in page.security_group_rules() {
                rules.entry(r.group_id().unwrap_or_default().to_string()).or_default().push(r.clone());
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(rules),
            }
        }
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

    fn read_batch(&self) -> usize {
        READ_BATCH
    }

    /// One `DescribeSecurityGroups` and one `DescribeSecurityGroupRules` per region (and page)
    /// for all of them.
    async fn read_many(&self, items: &[ReadItem<'_>]) -> Result<Vec<Option<Observed>>, ProviderError> {
        let mut seen = vec![None; items.len()];
        for (region, indexes) in by_region(&self.aws, items).await? {
            let ctx = items[indexes[0]].ctx;
            let ec2 = self.aws.ec2(&region).await;
            let ids: Vec<String> = indexes.iter().map(|&i| items[i].id.to_string()).collect();
            let mut groups = Vec::new();
            let mut token = None;
            loop {
                let page = ec2
                    .describe_security_groups()
                    .filters(filter_any("group-id", ids.iter().cloned()))
                    .set_next_token(token)
                    .send()
                    .await
                    .op(EC2, "DescribeSecurityGroups")
                    .at(ctx)?;
                groups.extend(page.security_groups().iter().cloned());
                match page.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_string()),
                    _ => break,
                }
            }
            let rules = self.rules(ctx, &region, &ids).await?;
            let mut found: BTreeMap<String, Observed> = groups
                .iter()
                .map(|g| {
                    let own = rules.get(g.group_id().unwrap_or_default()).map(Vec::as_slice).unwrap_or_default();
                    let (observed, _) = Self::observed(&region, g, own);
                    (observed.id.clone(), observed)
                })
                .collect();
            for i in indexes {
                seen[i] = found.remove(items[i].id);
            }
        }
        Ok(seen)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
