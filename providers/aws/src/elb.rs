//! Elastic Load Balancing v2: `aws:elb:LoadBalancer` (application and network),
//! `aws:elb:TargetGroup` (with its health check), `aws:elb:Listener` and
//! `aws:elb:ListenerRule`, on the shared skeleton (`managed.rs`).
//!
//! Ids are ARNs (which carry the region). Every resource is tagged at creation and read back
//! with its tags in one `DescribeTags`. Load balancer and target group names are unique per
//! account and region, and a repeated create *with the same settings* answers with the
//! existing resource instead of failing: so their create first looks for one of that name,
//! adopts it only if its `cairn:urn` tag names this resource, and refuses anyone else's. A
//! listener is unique by its port, a rule by its priority: a second create fails
//! (`DuplicateListener`, `PriorityInUse`), and a create whose answer was lost is recovered by
//! the same lookup.
//!
//! A load balancer's create waits until it is `active` (bounded, ten minutes unless the
//! provider is built `with_wait`), and its delete until it is gone, so that the subnets and
//! security groups it used can be deleted right after.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_elasticloadbalancingv2::types::{
    Action as SdkAction, ActionTypeEnum, Certificate, FixedResponseActionConfig, HostHeaderConditionConfig,
    LoadBalancerSchemeEnum, LoadBalancerStateEnum, LoadBalancerTypeEnum, Matcher, PathPatternConditionConfig,
    ProtocolEnum, RedirectActionConfig, RedirectActionStatusCodeEnum, RuleCondition, Tag, TargetGroupAttribute,
    TargetTypeEnum,
};
use cairn::provider::{Context, ProviderError};
use cairn::{Input, Resource};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::client::{
    all_tags, found, gone_ok, invalid, parse_arn, parse_inputs, user_tags, validate_tags, AtUrn, Aws, AwsError,
    SdkResultExt, TAG_URN,
};
use crate::ec2::retry_while;
use crate::managed::{no_retries, provider, same_set_or, wait_until, Api, CreateError, Managed, Seen};

const ELB: &str = "ELBv2";
const LB_NOT_FOUND: &[&str] = &["LoadBalancerNotFound"];
const TG_NOT_FOUND: &[&str] = &["TargetGroupNotFound"];
const LISTENER_NOT_FOUND: &[&str] = &["ListenerNotFound"];
const RULE_NOT_FOUND: &[&str] = &["RuleNotFound"];

/// How long a load balancer's create waits for it to be active, and its delete for it to go.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(600);

// ---------------------------------------------------------------------------------------------
// Shared
// ---------------------------------------------------------------------------------------------

/// The protocol of a target group or listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    #[serde(rename = "HTTP")]
    Http,
    #[serde(rename = "HTTPS")]
    Https,
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "TLS")]
    Tls,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "TCP_UDP")]
    TcpUdp,
}

impl Protocol {
    fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Https => "HTTPS",
            Protocol::Tcp => "TCP",
            Protocol::Tls => "TLS",
            Protocol::Udp => "UDP",
            Protocol::TcpUdp => "TCP_UDP",
        }
    }

    fn sdk(self) -> ProtocolEnum {
        ProtocolEnum::from(self.as_str())
    }

    /// Whether the protocol is one of an application load balancer's.
    fn is_http(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Https)
    }

    /// Whether the protocol terminates TLS (and so needs a certificate).
    fn is_tls(self) -> bool {
        matches!(self, Protocol::Https | Protocol::Tls)
    }
}

/// What a listener (or a rule) does with a request.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    /// Pass it to the targets of a target group.
    Forward { target_group_arn: Input<String> },
    /// Redirect it, keeping host, path and query (e.g. HTTP to HTTPS).
    Redirect {
        /// `HTTP` or `HTTPS`.
        protocol: Protocol,
        port: i32,
        /// `true`: 301 (permanent), `false`: 302.
        permanent: bool,
    },
    /// Answer it without a target.
    FixedResponse { status_code: u16, content_type: String, body: String },
}

impl Action {
    pub fn forward(target_group_arn: impl Into<Input<String>>) -> Action {
        Action::Forward { target_group_arn: target_group_arn.into() }
    }

    /// A permanent redirect to HTTPS on port 443.
    pub fn redirect_to_https() -> Action {
        Action::Redirect { protocol: Protocol::Https, port: 443, permanent: true }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum ActionArgs {
    Forward { target_group_arn: String },
    Redirect { protocol: Protocol, port: i32, permanent: bool },
    FixedResponse { status_code: u16, content_type: String, body: String },
}

impl ActionArgs {
    fn validate(&self, t: &str, field: &str) -> Result<(), String> {
        match self {
            ActionArgs::Forward { target_group_arn } => {
                if !is_arn(target_group_arn, "targetgroup/") {
                    return Err(format!(
                        "{t}: `{field}.target_group_arn` `{target_group_arn}` is not a target group ARN"
                    ));
                }
            }
            ActionArgs::Redirect { protocol, port, .. } => {
                if !protocol.is_http() {
                    return Err(format!("{t}: `{field}.protocol` of a redirect must be HTTP or HTTPS"));
                }
                check_port(t, &format!("{field}.port"), *port)?;
            }
            ActionArgs::FixedResponse { status_code, content_type, body } => {
                if !(200..=599).contains(status_code) {
                    return Err(format!("{t}: `{field}.status_code` must be 200 to 599, got {status_code}"));
                }
                let types = ["text/plain", "text/css", "text/html", "application/javascript", "application/json"];
                if !types.contains(&content_type.as_str()) {
                    return Err(format!("{t}: `{field}.content_type` must be one of {}", types.join(", ")));
                }
                if body.len() > 1024 {
                    return Err(format!("{t}: `{field}.body` must be at most 1024 bytes"));
                }
            }
        }
        Ok(())
    }

    fn sdk(&self) -> SdkAction {
        match self {
            ActionArgs::Forward { target_group_arn } => {
                SdkAction::builder().r#type(ActionTypeEnum::Forward).target_group_arn(target_group_arn).order(1).build()
            }
            ActionArgs::Redirect { protocol, port, permanent } => {
                let code = if *permanent {
                    RedirectActionStatusCodeEnum::Http301
                } else {
                    RedirectActionStatusCodeEnum::Http302
                };
                let config = RedirectActionConfig::builder()
                    .protocol(protocol.as_str())
                    .port(port.to_string())
                    .status_code(code)
                    .build();
                SdkAction::builder().r#type(ActionTypeEnum::Redirect).redirect_config(config).order(1).build()
            }
            ActionArgs::FixedResponse { status_code, content_type, body } => {
                let config = FixedResponseActionConfig::builder()
                    .status_code(status_code.to_string())
                    .content_type(content_type)
                    .message_body(body)
                    .build();
                SdkAction::builder()
                    .r#type(ActionTypeEnum::FixedResponse)
                    .fixed_response_config(config)
                    .order(1)
                    .build()
            }
        }
    }

    /// An action as AWS reports it, in this form; one this form does not model (authentication,
    /// weighted forwarding to several groups) is described in the error.
    fn from_sdk(a: &SdkAction) -> Result<ActionArgs, String> {
        match a.r#type() {
            Some(ActionTypeEnum::Forward) => {
                let arn = a.target_group_arn().map(str::to_string).or_else(|| {
                    let groups = a.forward_config().map(|f| f.target_groups()).unwrap_or_default();
                    match groups {
                        [one] => one.target_group_arn().map(str::to_string),
                        _ => None,
                    }
                });
                arn.map(|target_group_arn| ActionArgs::Forward { target_group_arn })
                    .ok_or_else(|| "a forward action to several target groups".to_string())
            }
            Some(ActionTypeEnum::Redirect) => {
                let c = a.redirect_config().ok_or("a redirect action without its configuration")?;
                let protocol = match c.protocol() {
                    Some("HTTPS") => Protocol::Https,
                    Some("HTTP") => Protocol::Http,
                    other => return Err(format!("a redirect to protocol {other:?}")),
                };
                let port = c.port().and_then(|p| p.parse().ok()).ok_or("a redirect that keeps the port")?;
                let permanent = c.status_code() == Some(&RedirectActionStatusCodeEnum::Http301);
                Ok(ActionArgs::Redirect { protocol, port, permanent })
            }
            Some(ActionTypeEnum::FixedResponse) => {
                let c = a.fixed_response_config().ok_or("a fixed response without its configuration")?;
                Ok(ActionArgs::FixedResponse {
                    status_code: c.status_code().and_then(|s| s.parse().ok()).unwrap_or(0),
                    content_type: c.content_type().unwrap_or_default().to_string(),
                    body: c.message_body().unwrap_or_default().to_string(),
                })
            }
            other => Err(format!("an action of type {other:?}")),
        }
    }
}

/// The one action of a list AWS reports, as inputs (an action this form does not model reads
/// as a description of it, which shows as drift).
fn action_json(actions: &[SdkAction]) -> Value {
    match actions {
        [one] => match ActionArgs::from_sdk(one) {
            Ok(a) => json!(a),
            Err(unmodelled) => json!({"type": "unmodelled", "description": unmodelled}),
        },
        more => json!({"type": "unmodelled", "description": format!("{} actions", more.len())}),
    }
}

fn is_arn(s: &str, resource_prefix: &str) -> bool {
    parse_arn(s).is_some_and(|a| a.service == "elasticloadbalancing" && a.resource.starts_with(resource_prefix))
}

fn check_port(t: &str, field: &str, port: i32) -> Result<(), String> {
    if !(1..=65535).contains(&port) {
        return Err(format!("{t}: `{field}` must be 1 to 65535, got {port}"));
    }
    Ok(())
}

/// Load balancer and target group names: 1 to 32 letters, digits and hyphens, neither
/// starting nor ending with a hyphen.
fn check_name(t: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.starts_with("internal-");
    if !ok {
        return Err(format!(
            "{t}: `name` must be 1 to 32 letters, digits and hyphens, not starting or ending with a hyphen \
             (nor with `internal-`), got `{name}`"
        ));
    }
    Ok(())
}

fn check_ids(t: &str, field: &str, ids: &[String], prefix: &str) -> Result<(), String> {
    for id in ids {
        if !id.strip_prefix(prefix).is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric())) {
            return Err(format!("{t}: `{field}`: `{id}` is not an id like `{prefix}0123abcd`"));
        }
    }
    Ok(())
}

/// The region of an ELB ARN.
fn region_of_arn(ctx: Context<'_>, arn: &str) -> Result<String, ProviderError> {
    parse_arn(arn)
        .filter(|a| a.service == "elasticloadbalancing" && !a.region.is_empty())
        .map(|a| a.region.to_string())
        .ok_or_else(|| invalid(ctx, format!("`{arn}` is not an Elastic Load Balancing ARN")))
}

/// The region of a resource to create: its `region` input, or the configured default.
async fn region_in(aws: &Aws, ctx: Context<'_>, region: Option<&str>) -> Result<String, ProviderError> {
    aws.region(region).await.map_err(|e| invalid(ctx, e))
}

fn tags_of(ctx: Context<'_>, user: &BTreeMap<String, String>) -> Vec<Tag> {
    all_tags(ctx, user).into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

/// The tags of one resource, `None` when it is gone.
async fn tags(aws: &Aws, region: &str, arn: &str) -> Result<Option<BTreeMap<String, String>>, AwsError> {
    let got = aws.elb(region).await.describe_tags().resource_arns(arn).send().await.op(ELB, "DescribeTags");
    let not_found = [LB_NOT_FOUND, TG_NOT_FOUND, LISTENER_NOT_FOUND, RULE_NOT_FOUND].concat();
    Ok(found(got, &not_found)?.map(|got| {
        got.tag_descriptions()
            .iter()
            .flat_map(|d| d.tags())
            .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
            .collect()
    }))
}

/// Brings the user tags of `arn` from `old` to `new`, and (re)puts cairn's, which also moves
/// the `cairn:urn` tag along with a renamed (aliased) resource.
async fn sync_tags(
    aws: &Aws,
    ctx: Context<'_>,
    region: &str,
    arn: &str,
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Result<(), ProviderError> {
    let elb = aws.elb(region).await;
    let gone: Vec<String> = old.keys().filter(|k| !new.contains_key(*k)).cloned().collect();
    if !gone.is_empty() {
        elb.remove_tags().resource_arns(arn).set_tag_keys(Some(gone)).send().await.op(ELB, "RemoveTags").at(ctx)?;
    }
    elb.add_tags().resource_arns(arn).set_tags(Some(tags_of(ctx, new))).send().await.op(ELB, "AddTags").at(ctx)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Load balancer
// ---------------------------------------------------------------------------------------------

/// The kind of a [`LoadBalancer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadBalancerType {
    /// Layer 7 (HTTP, HTTPS): listener rules, request counts per target.
    Application,
    /// Layer 4 (TCP, TLS, UDP).
    Network,
}

/// A load balancer. Changing `name`, `region`, `load_balancer_type` or `internal` replaces
/// it; its subnets, security groups and tags change in place.
#[derive(Debug, Clone, Serialize)]
pub struct LoadBalancer {
    /// Up to 32 letters, digits and hyphens; unique in the account and region.
    pub name: Input<String>,
    /// The region; `None`: the region of the `aws` provider configuration chosen for the
    /// resource or its component (see [`crate::Settings`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub load_balancer_type: LoadBalancerType,
    /// `false`: internet-facing (public subnets); `true`: reachable only inside the VPC.
    pub internal: bool,
    /// One subnet per availability zone; an application load balancer needs two zones.
    pub subnet_ids: Vec<Input<String>>,
    pub security_group_ids: Vec<Input<String>>,
    /// Tags besides the `cairn:stack` and `cairn:urn` tags cairn adds.
    pub tags: BTreeMap<String, Input<String>>,
}

impl LoadBalancer {
    /// An internet-facing application load balancer.
    pub fn application<S: Into<Input<String>>>(
        name: impl Into<Input<String>>,
        subnet_ids: impl IntoIterator<Item = S>,
    ) -> LoadBalancer {
        LoadBalancer {
            name: name.into(),
            region: None,
            load_balancer_type: LoadBalancerType::Application,
            internal: false,
            subnet_ids: subnet_ids.into_iter().map(Into::into).collect(),
            security_group_ids: Vec::new(),
            tags: BTreeMap::new(),
        }
    }
}

cairn::outputs! {
    /// The outputs of a [`LoadBalancer`].
    pub struct LoadBalancerOutputs {
        pub arn: String,
        pub name: String,
        /// The name clients resolve (a Route 53 alias target).
        pub dns_name: String,
        /// The Route 53 hosted zone of `dns_name`, for alias records.
        pub zone_id: String,
        /// `app/<name>/<id>` (or `net/…`): the `LoadBalancer` dimension of its CloudWatch
        /// metrics, and the first half of an `ALBRequestCountPerTarget` resource label.
        pub arn_suffix: String,
        pub vpc_id: String,
    }
}

impl Resource for LoadBalancer {
    const TYPE: &'static str = "aws:elb:LoadBalancer";
    const PROVIDER_INPUTS: &'static [&'static str] = &["region"];
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["name", "region", "load_balancer_type", "internal"];
    type Outputs = LoadBalancerOutputs;
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoadBalancerArgs {
    name: String,
    #[serde(default)]
    region: Option<String>,
    load_balancer_type: LoadBalancerType,
    #[serde(default)]
    internal: bool,
    subnet_ids: Vec<String>,
    #[serde(default)]
    security_group_ids: Vec<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

impl LoadBalancerArgs {
    fn parse(inputs: &Value) -> Result<LoadBalancerArgs, String> {
        let t = LoadBalancer::TYPE;
        let args: LoadBalancerArgs = parse_inputs(t, inputs)?;
        check_name(t, &args.name)?;
        check_ids(t, "subnet_ids", &args.subnet_ids, "subnet-")?;
        check_ids(t, "security_group_ids", &args.security_group_ids, "sg-")?;
        let minimum = if args.load_balancer_type == LoadBalancerType::Application { 2 } else { 1 };
        if args.subnet_ids.len() < minimum {
            return Err(format!(
                "{t}: `subnet_ids` needs at least {minimum} subnet(s) in distinct availability zones, got {}",
                args.subnet_ids.len()
            ));
        }
        validate_tags(t, &args.tags)?;
        Ok(args)
    }
}

provider! {
    /// The provider of [`LoadBalancer`].
    LoadBalancerProvider(LoadBalancerApi)
}

impl LoadBalancerProvider {
    pub fn new(aws: &Aws) -> LoadBalancerProvider {
        LoadBalancerProvider(Managed(LoadBalancerApi { aws: aws.clone(), wait: DEFAULT_WAIT }))
    }

    /// The same provider, waiting at most `wait` for a load balancer to be active or gone.
    pub fn with_wait(mut self, wait: Duration) -> LoadBalancerProvider {
        self.0 .0.wait = wait;
        self
    }
}

#[derive(Debug, Clone)]
struct LoadBalancerApi {
    aws: Aws,
    wait: Duration,
}

impl LoadBalancerApi {
    /// The load balancer's state, `None` when it is gone.
    async fn state(&self, region: &str, arn: &str) -> Result<Option<LoadBalancerStateEnum>, AwsError> {
        let got = self
            .aws
            .elb(region)
            .await
            .describe_load_balancers()
            .load_balancer_arns(arn)
            .send()
            .await
            .op(ELB, "DescribeLoadBalancers");
        Ok(found(got, LB_NOT_FOUND)?.and_then(|g| {
            g.load_balancers()
                .first()
                .map(|lb| lb.state().and_then(|s| s.code()).cloned().unwrap_or(LoadBalancerStateEnum::Active))
        }))
    }
}

#[async_trait::async_trait]
impl Api for LoadBalancerApi {
    type Resource = LoadBalancer;
    type Args = LoadBalancerArgs;
    const EXISTS: &'static [&'static str] = &["DuplicateLoadBalancerName"];
    const LOOK_FIRST: bool = true;
    const RETRY_BY_LOOKUP: bool = true;

    fn parse(inputs: &Value) -> Result<LoadBalancerArgs, String> {
        LoadBalancerArgs::parse(inputs)
    }

    fn identity(inputs: &Value) -> Value {
        json!({"region": inputs.get("region"), "name": inputs.get("name")})
    }

    async fn create(&self, ctx: Context<'_>, args: &LoadBalancerArgs) -> Result<String, CreateError> {
        let region = region_in(&self.aws, ctx, args.region.as_deref()).await?;
        let elb = self.aws.elb(&region).await;
        let scheme =
            if args.internal { LoadBalancerSchemeEnum::Internal } else { LoadBalancerSchemeEnum::InternetFacing };
        let kind = match args.load_balancer_type {
            LoadBalancerType::Application => LoadBalancerTypeEnum::Application,
            LoadBalancerType::Network => LoadBalancerTypeEnum::Network,
        };
        let out = elb
            .create_load_balancer()
            .name(&args.name)
            .r#type(kind)
            .scheme(scheme)
            .set_subnets(Some(args.subnet_ids.clone()))
            .set_security_groups((!args.security_group_ids.is_empty()).then(|| args.security_group_ids.clone()))
            .set_tags(Some(tags_of(ctx, &args.tags)))
            .customize()
            .config_override(no_retries!(aws_sdk_elasticloadbalancingv2))
            .send()
            .await
            .op(ELB, "CreateLoadBalancer")?;
        let arn = out
            .load_balancers()
            .first()
            .and_then(|lb| lb.load_balancer_arn())
            .ok_or_else(|| invalid(ctx, "ELB CreateLoadBalancer returned no load balancer"))?
            .to_string();
        // Until it is active it cannot be a DNS alias target; a failed one is an error, and the
        // create stays pending, so the next run finds it (by its name and tag).
        wait_until(ctx, &format!("{arn} to be active"), self.wait, Duration::from_secs(10), || async {
            match self.state(&region, &arn).await.at(ctx)? {
                Some(LoadBalancerStateEnum::Active) | Some(LoadBalancerStateEnum::ActiveImpaired) => Ok(true),
                Some(LoadBalancerStateEnum::Failed) => Err(invalid(ctx, format!("{arn} failed to provision"))),
                _ => Ok(false),
            }
        })
        .await?;
        Ok(arn)
    }

    async fn observe(&self, ctx: Context<'_>, id: &str, prior: &Value) -> Result<Option<Seen>, ProviderError> {
        let region = region_of_arn(ctx, id)?;
        let elb = self.aws.elb(&region).await;
        let got = elb.describe_load_balancers().load_balancer_arns(id).send().await.op(ELB, "DescribeLoadBalancers");
        let Some(got) = found(got, LB_NOT_FOUND).at(ctx)? else {
            return Ok(None);
        };
        let Some(lb) = got.load_balancers().first() else {
            return Ok(None);
        };
        let Some(tags) = tags(&self.aws, &region, id).await.at(ctx)? else {
            return Ok(None);
        };
        let subnets: Vec<String> =
            lb.availability_zones().iter().filter_map(|z| z.subnet_id().map(str::to_string)).collect();
        let kind = match lb.r#type() {
            Some(LoadBalancerTypeEnum::Network) => "network",
            Some(LoadBalancerTypeEnum::Application) => "application",
            other => other.map(|t| t.as_str()).unwrap_or_default(),
        };
        let name = lb.load_balancer_name().unwrap_or_default();
        let inputs = json!({
            "name": name,
            "region": region,
            "load_balancer_type": kind,
            "internal": lb.scheme() == Some(&LoadBalancerSchemeEnum::Internal),
            "subnet_ids": same_set_or(subnets, prior, "subnet_ids"),
            "security_group_ids": same_set_or(lb.security_groups().to_vec(), prior, "security_group_ids"),
            "tags": user_tags(tags.clone()),
        });
        let suffix = parse_arn(id).and_then(|a| a.resource.strip_prefix("loadbalancer/")).unwrap_or_default();
        let outputs = json!({
            "arn": id,
            "name": name,
            "dns_name": lb.dns_name(),
            "zone_id": lb.canonical_hosted_zone_id(),
            "arn_suffix": suffix,
            "vpc_id": lb.vpc_id(),
        });
        Ok(Some(Seen::new(id, inputs, outputs, tags.get(TAG_URN).cloned())))
    }

    async fn update(
        &self,
        ctx: Context<'_>,
        id: &str,
        old: &LoadBalancerArgs,
        new: &LoadBalancerArgs,
    ) -> Result<(), ProviderError> {
        let region = region_of_arn(ctx, id)?;
        let elb = self.aws.elb(&region).await;
        let set = |v: &[String]| v.iter().cloned().collect::<std::collections::BTreeSet<_>>();
        if set(&old.subnet_ids) != set(&new.subnet_ids) {
            elb.set_subnets()
                .load_balancer_arn(id)
                .set_subnets(Some(new.subnet_ids.clone()))
                .send()
                .await
                .op(ELB, "SetSubnets")
                .at(ctx)?;
        }
        if set(&old.security_group_ids) != set(&new.security_group_ids) {
            elb.set_security_groups()
                .load_balancer_arn(id)
                .set_security_groups(Some(new.security_group_ids.clone()))
                .send()
                .await
                .op(ELB, "SetSecurityGroups")
                .at(ctx)?;
        }
        sync_tags(&self.aws, ctx, &region, id, &old.tags, &new.tags).await
    }

    async fn delete(&self, ctx: Context<'_>, id: &str, _prior: &Value) -> Result<(), ProviderError> {
        let region = region_of_arn(ctx, id)?;
        let elb = self.aws.elb(&region).await;
        let deleted = elb.delete_load_balancer().load_balancer_arn(id).send().await.op(ELB, "DeleteLoadBalancer");
        gone_ok(deleted, LB_NOT_FOUND).at(ctx)?;
        wait_until(ctx, &format!("{id} to be deleted"), self.wait, Duration::from_secs(10), || async {
            Ok(self.state(&region, id).await.at(ctx)?.is_none())
        })
        .await
    }

    async fn candidates(&self, ctx: Context<'_>, identity: &Value) -> Result<Vec<String>, ProviderError> {
        let Some(name) = identity.get("name").and_then(Value::as_str) else {
            return Ok(Vec::new());
        };
        let region = region_in(&self.aws, ctx, identity.get("region").and_then(Value::as_str)).await?;
        let got = self.aws.elb(&region).await.describe_load_balancers().names(name).send().await;
        let got = found(got.op(ELB, "DescribeLoadBalancers"), LB_NOT_FOUND).at(ctx)?;
        Ok(got
            .map(|g| g.load_balancers().iter().filter_map(|lb| lb.load_balancer_arn().map(str::to_string)).collect())
            .unwrap_or_default())
    }
}

// ---------------------------------------------------------------------------------------------
// Target group
// ---------------------------------------------------------------------------------------------

/// How targets register with a [`TargetGroup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetType {
    /// EC2 instances by id (what an Auto Scaling group registers).
    Instance,
    /// IP addresses.
    Ip,
}

/// How a [`TargetGroup`] checks its targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    pub protocol: Protocol,
    /// The path to request (HTTP and HTTPS only), e.g. `/_health`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `traffic-port` (the target's own port), or a port number.
    pub port: String,
    pub interval_seconds: i32,
    pub timeout_seconds: i32,
    pub healthy_threshold: i32,
    pub unhealthy_threshold: i32,
    /// The HTTP codes of a healthy answer (HTTP and HTTPS only), e.g. `200` or `200-299`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matcher: Option<String>,
}

impl HealthCheck {
    /// `GET path` on the traffic port every 15 s, healthy on 200 after 2 answers, unhealthy
    /// after 3 failures of 5 s.
    pub fn http(path: &str) -> HealthCheck {
        HealthCheck {
            protocol: Protocol::Http,
            path: Some(path.to_string()),
            port: "traffic-port".into(),
            interval_seconds: 15,
            timeout_seconds: 5,
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            matcher: Some("200".into()),
        }
    }

    fn validate(&self, t: &str) -> Result<(), String> {
        let h = "health_check";
        if self.protocol.is_http() != self.path.is_some() || self.protocol.is_http() != self.matcher.is_some() {
            return Err(format!("{t}: `{h}.path` and `{h}.matcher` go with (and only with) HTTP and HTTPS checks"));
        }
        if let Some(p) = &self.path {
            if !p.starts_with('/') || p.len() > 1024 {
                return Err(format!("{t}: `{h}.path` must start with `/` (at most 1024 characters), got `{p}`"));
            }
        }
        if self.port != "traffic-port" && !self.port.parse::<i32>().is_ok_and(|p| (1..=65535).contains(&p)) {
            return Err(format!("{t}: `{h}.port` must be `traffic-port` or a port, got `{}`", self.port));
        }
        if !(5..=300).contains(&self.interval_seconds) || !(2..=120).contains(&self.timeout_seconds) {
            return Err(format!("{t}: `{h}.interval_seconds` must be 5 to 300 and `timeout_seconds` 2 to 120"));
        }
        if self.timeout_seconds >= self.interval_seconds {
            return Err(format!("{t}: `{h}.timeout_seconds` must be less than `interval_seconds`"));
        }
        if !(2..=10).contains(&self.healthy_threshold) || !(2..=10).contains(&self.unhealthy_threshold) {
            return Err(format!("{t}: `{h}.healthy_threshold` and `unhealthy_threshold` must be 2 to 10"));
        }
        Ok(())
    }
}

/// A target group. Changing `name`, `region`, `port`, `protocol`, `vpc_id` or `target_type`
/// replaces it; the health check, the deregistration delay and tags change in place.
#[derive(Debug, Clone, Serialize)]
pub struct TargetGroup {
    /// Up to 32 letters, digits and hyphens; unique in the account and region.
    pub name: Input<String>,
    /// The region; `None`: the `aws` provider configuration's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub port: i32,
    pub protocol: Protocol,
    pub vpc_id: Input<String>,
    pub target_type: TargetType,
    pub health_check: HealthCheck,
    /// How long a deregistering target keeps its open connections, 0 to 3600 s (AWS: 300).
    pub deregistration_delay_seconds: i32,
    /// Tags besides the `cairn:stack` and `cairn:urn` tags cairn adds.
    pub tags: BTreeMap<String, Input<String>>,
}

impl TargetGroup {
    /// Instances serving HTTP on `port`, checked with `GET health_path`.
    pub fn http(
        name: impl Into<Input<String>>,
        vpc_id: impl Into<Input<String>>,
        port: i32,
        health_path: &str,
    ) -> TargetGroup {
        TargetGroup {
            name: name.into(),
            region: None,
            port,
            protocol: Protocol::Http,
            vpc_id: vpc_id.into(),
            target_type: TargetType::Instance,
            health_check: HealthCheck::http(health_path),
            deregistration_delay_seconds: 300,
            tags: BTreeMap::new(),
        }
    }
}

cairn::outputs! {
    /// The outputs of a [`TargetGroup`].
    pub struct TargetGroupOutputs {
        pub arn: String,
        pub name: String,
        /// `targetgroup/<name>/<id>`: the `TargetGroup` dimension of its CloudWatch metrics,
        /// and the second half of an `ALBRequestCountPerTarget` resource label.
        pub arn_suffix: String,
    }
}

impl Resource for TargetGroup {
    const TYPE: &'static str = "aws:elb:TargetGroup";
    const PROVIDER_INPUTS: &'static [&'static str] = &["region"];
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["name", "region", "port", "protocol", "vpc_id", "target_type"];
    type Outputs = TargetGroupOutputs;
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TargetGroupArgs {
    name: String,
    #[serde(default)]
    region: Option<String>,
    port: i32,
    protocol: Protocol,
    vpc_id: String,
    target_type: TargetType,
    health_check: HealthCheck,
    deregistration_delay_seconds: i32,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

impl TargetGroupArgs {
    fn parse(inputs: &Value) -> Result<TargetGroupArgs, String> {
        let t = TargetGroup::TYPE;
        let args: TargetGroupArgs = parse_inputs(t, inputs)?;
        check_name(t, &args.name)?;
        check_port(t, "port", args.port)?;
        check_ids(t, "vpc_id", std::slice::from_ref(&args.vpc_id), "vpc-")?;
        args.health_check.validate(t)?;
        if !(0..=3600).contains(&args.deregistration_delay_seconds) {
            return Err(format!("{t}: `deregistration_delay_seconds` must be 0 to 3600"));
        }
        validate_tags(t, &args.tags)?;
        Ok(args)
    }
}

provider! {
    /// The provider of [`TargetGroup`].
    TargetGroupProvider(TargetGroupApi)
}

impl TargetGroupProvider {
    pub fn new(aws: &Aws) -> TargetGroupProvider {
        TargetGroupProvider(Managed(TargetGroupApi { aws: aws.clone() }))
    }
}

#[derive(Debug, Clone)]
struct TargetGroupApi {
    aws: Aws,
}

const DEREGISTRATION_DELAY: &str = "deregistration_delay.timeout_seconds";

impl TargetGroupApi {
    async fn set_delay(&self, ctx: Context<'_>, region: &str, arn: &str, seconds: i32) -> Result<(), ProviderError> {
        let attribute = TargetGroupAttribute::builder().key(DEREGISTRATION_DELAY).value(seconds.to_string()).build();
        self.aws
            .elb(region)
            .await
            .modify_target_group_attributes()
            .target_group_arn(arn)
            .attributes(attribute)
            .send()
            .await
            .op(ELB, "ModifyTargetGroupAttributes")
            .at(ctx)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Api for TargetGroupApi {
    type Resource = TargetGroup;
    type Args = TargetGroupArgs;
    const EXISTS: &'static [&'static str] = &["DuplicateTargetGroupName"];
    const LOOK_FIRST: bool = true;
    const RETRY_BY_LOOKUP: bool = true;

    fn parse(inputs: &Value) -> Result<TargetGroupArgs, String> {
        TargetGroupArgs::parse(inputs)
    }

    fn identity(inputs: &Value) -> Value {
        json!({"region": inputs.get("region"), "name": inputs.get("name")})
    }

    async fn create(&self, ctx: Context<'_>, args: &TargetGroupArgs) -> Result<String, CreateError> {
        let region = region_in(&self.aws, ctx, args.region.as_deref()).await?;
        let h = &args.health_check;
        let out = self
            .aws
            .elb(&region)
            .await
            .create_target_group()
            .name(&args.name)
            .protocol(args.protocol.sdk())
            .port(args.port)
            .vpc_id(&args.vpc_id)
            .target_type(TargetTypeEnum::from(if args.target_type == TargetType::Ip { "ip" } else { "instance" }))
            .health_check_enabled(true)
            .health_check_protocol(h.protocol.sdk())
            .set_health_check_path(h.path.clone())
            .health_check_port(&h.port)
            .health_check_interval_seconds(h.interval_seconds)
            .health_check_timeout_seconds(h.timeout_seconds)
            .healthy_threshold_count(h.healthy_threshold)
            .unhealthy_threshold_count(h.unhealthy_threshold)
            .set_matcher(h.matcher.as_ref().map(|m| Matcher::builder().http_code(m).build()))
            .set_tags(Some(tags_of(ctx, &args.tags)))
            .customize()
            .config_override(no_retries!(aws_sdk_elasticloadbalancingv2))
            .send()
            .await
            .op(ELB, "CreateTargetGroup")?;
        let arn = out
            .target_groups()
            .first()
            .and_then(|g| g.target_group_arn())
            .ok_or_else(|| invalid(ctx, "ELB CreateTargetGroup returned no target group"))?
            .to_string();
        if args.deregistration_delay_seconds != 300 {
            self.set_delay(ctx, &region, &arn, args.deregistration_delay_seconds).await?;
        }
        Ok(arn)
    }

    async fn observe(&self, ctx: Context<'_>, id: &str, _prior: &Value) -> Result<Option<Seen>, ProviderError> {
        let region = region_of_arn(ctx, id)?;
        let elb = self.aws.elb(&region).await;
        let got = elb.describe_target_groups().target_group_arns(id).send().await.op(ELB, "DescribeTargetGroups");
        let Some(got) = found(got, TG_NOT_FOUND).at(ctx)? else {
            return Ok(None);
        };
        let Some(g) = got.target_groups().first() else {
            return Ok(None);
        };
        let attributes = elb
            .describe_target_group_attributes()
            .target_group_arn(id)
            .send()
            .await
            .op(ELB, "DescribeTargetGroupAttributes");
        let Some(attributes) = found(attributes, TG_NOT_FOUND).at(ctx)? else {
            return Ok(None);
        };
        let delay = attributes
            .attributes()
            .iter()
            .find(|a| a.key() == Some(DEREGISTRATION_DELAY))
            .and_then(|a| a.value()?.parse::<i32>().ok())
            .unwrap_or(300);
        let Some(tags) = tags(&self.aws, &region, id).await.at(ctx)? else {
            return Ok(None);
        };
        let protocol = |p: Option<&ProtocolEnum>| p.map(|p| p.as_str().to_string()).unwrap_or_default();
        let http = g.health_check_protocol().is_some_and(|p| matches!(p, ProtocolEnum::Http | ProtocolEnum::Https));
        let health_check = json!({
            "protocol": protocol(g.health_check_protocol()),
            "path": if http { g.health_check_path() } else { None },
            "port": g.health_check_port().unwrap_or("traffic-port"),
            "interval_seconds": g.health_check_interval_seconds(),
            "timeout_seconds": g.health_check_timeout_seconds(),
            "healthy_threshold": g.healthy_threshold_count(),
            "unhealthy_threshold": g.unhealthy_threshold_count(),
            "matcher": if http { g.matcher().and_then(|m| m.http_code()) } else { None },
        });
        let health_check: Value = match health_check {
            Value::Object(m) => Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).collect()),
            other => other,
        };
        let name = g.target_group_name().unwrap_or_default();
        let inputs = json!({
            "name": name,
            "region": region,
            "port": g.port(),
            "protocol": protocol(g.protocol()),
            "vpc_id": g.vpc_id(),
            "target_type": g.target_type().map(|t| t.as_str()),
            "health_check": health_check,
            "deregistration_delay_seconds": delay,
            "tags": user_tags(tags.clone()),
        });
        let suffix = parse_arn(id).map(|a| a.resource).unwrap_or_default();
        let outputs = json!({"arn": id, "name": name, "arn_suffix": suffix});
        Ok(Some(Seen::new(id, inputs, outputs, tags.get(TAG_URN).cloned())))
    }

    async fn update(
        &self,
        ctx: Context<'_>,
        id: &str,
        old: &TargetGroupArgs,
        new: &TargetGroupArgs,
    ) -> Result<(), ProviderError> {
        let region = region_of_arn(ctx, id)?;
        if old.health_check != new.health_check {
            let h = &new.health_check;
            self.aws
                .elb(&region)
                .await
                .modify_target_group()
                .target_group_arn(id)
                .health_check_enabled(true)
                .health_check_protocol(h.protocol.sdk())
                .set_health_check_path(h.path.clone())
                .health_check_port(&h.port)
                .health_check_interval_seconds(h.interval_seconds)
                .health_check_timeout_seconds(h.timeout_seconds)
                .healthy_threshold_count(h.healthy_threshold)
                .unhealthy_threshold_count(h.unhealthy_threshold)
                .set_matcher(h.matcher.as_ref().map(|m| Matcher::builder().http_code(m).build()))
                .send()
                .await
                .op(ELB, "ModifyTargetGroup")
                .at(ctx)?;
        }
        if old.deregistration_delay_seconds != new.deregistration_delay_seconds {
            self.set_delay(ctx, &region, id, new.deregistration_delay_seconds).await?;
        }
        sync_tags(&self.aws, ctx, &region, id, &old.tags, &new.tags).await
    }

    /// Waits (bounded) while a listener or rule that is being deleted still uses the group.
    async fn delete(&self, ctx: Context<'_>, id: &str, _prior: &Value) -> Result<(), ProviderError> {
        let region = region_of_arn(ctx, id)?;
        let elb = self.aws.elb(&region).await;
        retry_while(&["ResourceInUse"], Duration::from_secs(60), || async {
            gone_ok(
                elb.delete_target_group().target_group_arn(id).send().await.op(ELB, "DeleteTargetGroup"),
                TG_NOT_FOUND,
            )
        })
        .await
        .at(ctx)
    }

    async fn candidates(&self, ctx: Context<'_>, identity: &Value) -> Result<Vec<String>, ProviderError> {
        let Some(name) = identity.get("name").and_then(Value::as_str) else {
            return Ok(Vec::new());
        };
        let region = region_in(&self.aws, ctx, identity.get("region").and_then(Value::as_str)).await?;
        let got = self.aws.elb(&region).await.describe_target_groups().names(name).send().await;
        let got = found(got.op(ELB, "DescribeTargetGroups"), TG_NOT_FOUND).at(ctx)?;
        Ok(got
            .map(|g| g.target_groups().iter().filter_map(|t| t.target_group_arn().map(str::to_string)).collect())
            .unwrap_or_default())
    }
}

// ---------------------------------------------------------------------------------------------
// Listener
// ---------------------------------------------------------------------------------------------

/// A listener of a load balancer: a port and protocol, and what to do with what arrives
/// there. Changing `region` or `load_balancer_arn` replaces it; everything else changes in
/// place (`ModifyListener`).
#[derive(Debug, Clone, Serialize)]
pub struct Listener {
    /// The region; `None`: the `aws` provider configuration's (it must be the load balancer's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub load_balancer_arn: Input<String>,
    pub port: i32,
    pub protocol: Protocol,
    /// An ACM certificate's ARN: required for HTTPS and TLS, absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_arn: Option<Input<String>>,
    /// The TLS policy (HTTPS and TLS); `None`: AWS's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_policy: Option<String>,
    pub default_action: Action,
    /// Tags besides the `cairn:stack` and `cairn:urn` tags cairn adds.
    pub tags: BTreeMap<String, Input<String>>,
}

impl Listener {
    /// An HTTP listener on `port` doing `action`.
    pub fn http(load_balancer_arn: impl Into<Input<String>>, port: i32, action: Action) -> Listener {
        Listener {
            region: None,
            load_balancer_arn: load_balancer_arn.into(),
            port,
            protocol: Protocol::Http,
            certificate_arn: None,
            ssl_policy: None,
            default_action: action,
            tags: BTreeMap::new(),
        }
    }

    /// An HTTPS listener on 443 with the ACM certificate `certificate_arn`, doing `action`.
    pub fn https(
        load_balancer_arn: impl Into<Input<String>>,
        certificate_arn: impl Into<Input<String>>,
        action: Action,
    ) -> Listener {
        Listener {
            protocol: Protocol::Https,
            certificate_arn: Some(certificate_arn.into()),
            ..Listener::http(load_balancer_arn, 443, action)
        }
    }
}

cairn::outputs! {
    /// The outputs of a [`Listener`].
    pub struct ListenerOutputs {
        pub arn: String,
    }
}

impl Resource for Listener {
    const TYPE: &'static str = "aws:elb:Listener";
    const PROVIDER_INPUTS: &'static [&'static str] = &["region"];
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["region", "load_balancer_arn"];
    type Outputs = ListenerOutputs;
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListenerArgs {
    #[serde(default)]
    region: Option<String>,
    load_balancer_arn: String,
    port: i32,
    protocol: Protocol,
    #[serde(default)]
    certificate_arn: Option<String>,
    #[serde(default)]
    ssl_policy: Option<String>,
    default_action: ActionArgs,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

/// Checks that a parent's ARN is in the resource's region.
fn same_region(t: &str, field: &str, arn: &str, region: Option<&str>) -> Result<(), String> {
    let arn_region = parse_arn(arn).map(|a| a.region).unwrap_or_default();
    match region {
        Some(r) if !r.is_empty() && r != arn_region => {
            Err(format!("{t}: `{field}` is in {arn_region}, but the resource's region is {r}"))
        }
        _ => Ok(()),
    }
}

impl ListenerArgs {
    fn parse(inputs: &Value) -> Result<ListenerArgs, String> {
        let t = Listener::TYPE;
        let args: ListenerArgs = parse_inputs(t, inputs)?;
        if !is_arn(&args.load_balancer_arn, "loadbalancer/") {
            return Err(format!("{t}: `load_balancer_arn` `{}` is not a load balancer ARN", args.load_balancer_arn));
        }
        same_region(t, "load_balancer_arn", &args.load_balancer_arn, args.region.as_deref())?;
        check_port(t, "port", args.port)?;
        match (&args.certificate_arn, args.protocol.is_tls()) {
            (None, true) => return Err(format!("{t}: an {} listener needs `certificate_arn`", args.protocol.as_str())),
            (Some(_), false) | (None, false) if args.ssl_policy.is_some() => {
                return Err(format!("{t}: `ssl_policy` goes with HTTPS and TLS listeners only"));
            }
            (Some(_), false) => return Err(format!("{t}: `certificate_arn` goes with HTTPS and TLS listeners only")),
            (Some(c), true) if !parse_arn(c).is_some_and(|a| a.service == "acm" || a.service == "iam") => {
                return Err(format!("{t}: `certificate_arn` `{c}` is not an ACM (or IAM) certificate ARN"));
            }
            _ => {}
        }
        args.default_action.validate(t, "default_action")?;
        validate_tags(t, &args.tags)?;
        Ok(args)
    }
}

provider! {
    /// The provider of [`Listener`].
    ListenerProvider(ListenerApi)
}

impl ListenerProvider {
    pub fn new(aws: &Aws) -> ListenerProvider {
        ListenerProvider(Managed(ListenerApi { aws: aws.clone() }))
    }
}

#[derive(Debug, Clone)]
struct ListenerApi {
    aws: Aws,
}

#[async_trait::async_trait]
impl Api for ListenerApi {
    type Resource = Listener;
    type Args = ListenerArgs;
    const EXISTS: &'static [&'static str] = &["DuplicateListener"];
    const RETRY_BY_LOOKUP: bool = true;

    fn parse(inputs: &Value) -> Result<ListenerArgs, String> {
        ListenerArgs::parse(inputs)
    }

    fn identity(inputs: &Value) -> Value {
        json!({"load_balancer_arn": inputs.get("load_balancer_arn"), "port": inputs.get("port")})
    }

    async fn create(&self, ctx: Context<'_>, args: &ListenerArgs) -> Result<String, CreateError> {
        let region = region_of_arn(ctx, &args.load_balancer_arn)?;
        let out = self
            .aws
            .elb(&region)
            .await
            .create_listener()
            .load_balancer_arn(&args.load_balancer_arn)
            .port(args.port)
            .protocol(args.protocol.sdk())
            .set_certificates(
                args.certificate_arn.as_ref().map(|c| vec![Certificate::builder().certificate_arn(c).build()]),
            )
            .set_ssl_policy(args.ssl_policy.clone())
            .default_actions(args.default_action.sdk())
            .set_tags(Some(tags_of(ctx, &args.tags)))
            .customize()
            .config_override(no_retries!(aws_sdk_elasticloadbalancingv2))
            .send()
            .await
            .op(ELB, "CreateListener")?;
        let arn = out
            .listeners()
            .first()
            .and_then(|l| l.listener_arn())
            .ok_or_else(|| invalid(ctx, "ELB CreateListener returned no listener"))?;
        Ok(arn.to_string())
    }

    async fn observe(&self, ctx: Context<'_>, id: &str, prior: &Value) -> Result<Option<Seen>, ProviderError> {
        let region = region_of_arn(ctx, id)?;
        let got = self.aws.elb(&region).await.describe_listeners().listener_arns(id).send().await;
        let Some(got) =
            found(got.op(ELB, "DescribeListeners"), [LISTENER_NOT_FOUND, LB_NOT_FOUND].concat().as_slice()).at(ctx)?
        else {
            return Ok(None);
        };
        let Some(l) = got.listeners().first() else {
            return Ok(None);
        };
        let Some(tags) = tags(&self.aws, &region, id).await.at(ctx)? else {
            return Ok(None);
        };
        let protocol = l.protocol().map(|p| p.as_str().to_string()).unwrap_or_default();
        let tls = l.protocol().is_some_and(|p| matches!(p, ProtocolEnum::Https | ProtocolEnum::Tls));
        let mut inputs = json!({
            "region": region,
            "load_balancer_arn": l.load_balancer_arn(),
            "port": l.port(),
            "protocol": protocol,
            "default_action": action_json(l.default_actions()),
            "tags": user_tags(tags.clone()),
        });
        if let Some(c) = l.certificates().first().and_then(|c| c.certificate_arn()) {
            inputs["certificate_arn"] = json!(c);
        }
        // AWS fills in its default policy: it is drift only when the program names one.
        if let Some(policy) = l.ssl_policy().filter(|_| tls && prior.get("ssl_policy").is_some_and(|p| !p.is_null())) {
            inputs["ssl_policy"] = json!(policy);
        }
        Ok(Some(Seen::new(id, inputs, json!({"arn": id}), tags.get(TAG_URN).cloned())))
    }

    async fn update(
        &self,
        ctx: Context<'_>,
        id: &str,
        old: &ListenerArgs,
        new: &ListenerArgs,
    ) -> Result<(), ProviderError> {
        let region = region_of_arn(ctx, id)?;
        let changed = old.port != new.port
            || old.protocol != new.protocol
            || old.certificate_arn != new.certificate_arn
            || old.ssl_policy != new.ssl_policy
            || old.default_action != new.default_action;
        if changed {
            self.aws
                .elb(&region)
                .await
                .modify_listener()
                .listener_arn(id)
                .port(new.port)
                .protocol(new.protocol.sdk())
                .set_certificates(
                    new.certificate_arn.as_ref().map(|c| vec![Certificate::builder().certificate_arn(c).build()]),
                )
                .set_ssl_policy(new.ssl_policy.clone())
                .default_actions(new.default_action.sdk())
                .send()
                .await
                .op(ELB, "ModifyListener")
                .at(ctx)?;
        }
        sync_tags(&self.aws, ctx, &region, id, &old.tags, &new.tags).await
    }

    async fn delete(&self, ctx: Context<'_>, id: &str, _prior: &Value) -> Result<(), ProviderError> {
        let region = region_of_arn(ctx, id)?;
        let deleted = self.aws.elb(&region).await.delete_listener().listener_arn(id).send().await;
        gone_ok(deleted.op(ELB, "DeleteListener"), LISTENER_NOT_FOUND).at(ctx)
    }

    async fn candidates(&self, ctx: Context<'_>, identity: &Value) -> Result<Vec<String>, ProviderError> {
        let (Some(lb), Some(port)) =
            (identity.get("load_balancer_arn").and_then(Value::as_str), identity.get("port").and_then(Value::as_i64))
        else {
            return Ok(Vec::new());
        };
        let region = region_of_arn(ctx, lb)?;
        let got = self.aws.elb(&region).await.describe_listeners().load_balancer_arn(lb).send().await;
        let got = found(got.op(ELB, "DescribeListeners"), LB_NOT_FOUND).at(ctx)?;
        Ok(got
            .map(|g| {
                g.listeners()
                    .iter()
                    .filter(|l| l.port().map(i64::from) == Some(port))
                    .filter_map(|l| l.listener_arn().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }
}

// ---------------------------------------------------------------------------------------------
// Listener rule
// ---------------------------------------------------------------------------------------------

/// What a [`ListenerRule`] matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "field", content = "values", deny_unknown_fields)]
pub enum Condition {
    /// Paths, with `*` and `?` wildcards, e.g. `/api/*`.
    #[serde(rename = "path-pattern")]
    PathPattern(Vec<String>),
    /// Host names, with wildcards, e.g. `*.example.com`.
    #[serde(rename = "host-header")]
    HostHeader(Vec<String>),
}

impl Condition {
    fn sdk(&self) -> RuleCondition {
        match self {
            Condition::PathPattern(v) => RuleCondition::builder()
                .field("path-pattern")
                .path_pattern_config(PathPatternConditionConfig::builder().set_values(Some(v.clone())).build())
                .build(),
            Condition::HostHeader(v) => RuleCondition::builder()
                .field("host-header")
                .host_header_config(HostHeaderConditionConfig::builder().set_values(Some(v.clone())).build())
                .build(),
        }
    }

    fn from_sdk(c: &RuleCondition) -> Value {
        let values = |config: Option<&[String]>| {
            config.filter(|v| !v.is_empty()).map(<[String]>::to_vec).unwrap_or_else(|| c.values().to_vec())
        };
        match c.field() {
            Some("path-pattern") => json!(Condition::PathPattern(values(c.path_pattern_config().map(|p| p.values())))),
            Some("host-header") => json!(Condition::HostHeader(values(c.host_header_config().map(|h| h.values())))),
            other => json!({"field": other, "values": c.values()}),
        }
    }
}

/// A rule of a listener: requests matching every condition get the action. Changing `region`
/// or `listener_arn` replaces it; its priority, conditions and action change in place.
#[derive(Debug, Clone, Serialize)]
pub struct ListenerRule {
    /// The region; `None`: the `aws` provider configuration's (it must be the listener's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub listener_arn: Input<String>,
    /// 1 to 50000, unique per listener; lower first.
    pub priority: i32,
    pub conditions: Vec<Condition>,
    pub action: Action,
    /// Tags besides the `cairn:stack` and `cairn:urn` tags cairn adds.
    pub tags: BTreeMap<String, Input<String>>,
}

impl ListenerRule {
    pub fn new(
        listener_arn: impl Into<Input<String>>,
        priority: i32,
        conditions: Vec<Condition>,
        action: Action,
    ) -> ListenerRule {
        ListenerRule {
            region: None,
            listener_arn: listener_arn.into(),
            priority,
            conditions,
            action,
            tags: BTreeMap::new(),
        }
    }
}

cairn::outputs! {
    /// The outputs of a [`ListenerRule`].
    pub struct ListenerRuleOutputs {
        pub arn: String,
    }
}

impl Resource for ListenerRule {
    const TYPE: &'static str = "aws:elb:ListenerRule";
    const PROVIDER_INPUTS: &'static [&'static str] = &["region"];
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["region", "listener_arn"];
    type Outputs = ListenerRuleOutputs;
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleArgs {
    #[serde(default)]
    region: Option<String>,
    listener_arn: String,
    priority: i32,
    conditions: Vec<Condition>,
    action: ActionArgs,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

impl RuleArgs {
    fn parse(inputs: &Value) -> Result<RuleArgs, String> {
        let t = ListenerRule::TYPE;
        let args: RuleArgs = parse_inputs(t, inputs)?;
        if !is_arn(&args.listener_arn, "listener/") {
            return Err(format!("{t}: `listener_arn` `{}` is not a listener ARN", args.listener_arn));
        }
        same_region(t, "listener_arn", &args.listener_arn, args.region.as_deref())?;
        if !(1..=50000).contains(&args.priority) {
            return Err(format!("{t}: `priority` must be 1 to 50000, got {}", args.priority));
        }
        if args.conditions.is_empty() {
            return Err(format!("{t}: `conditions` is empty (a listener's default action matches everything)"));
        }
        for c in &args.conditions {
            let (Condition::PathPattern(v) | Condition::HostHeader(v)) = c;
            if v.is_empty() || v.iter().any(|s| s.is_empty() || s.len() > 128) {
                return Err(format!("{t}: `conditions`: each needs 1 or more values of 1 to 128 characters"));
            }
        }
        args.action.validate(t, "action")?;
        validate_tags(t, &args.tags)?;
        Ok(args)
    }
}

provider! {
    /// The provider of [`ListenerRule`].
    ListenerRuleProvider(ListenerRuleApi)
}

impl ListenerRuleProvider {
    pub fn new(aws: &Aws) -> ListenerRuleProvider {
        ListenerRuleProvider(Managed(ListenerRuleApi { aws: aws.clone() }))
    }
}

#[derive(Debug, Clone)]
struct ListenerRuleApi {
    aws: Aws,
}

#[async_trait::async_trait]
impl Api for ListenerRuleApi {
    type Resource = ListenerRule;
    type Args = RuleArgs;
    const EXISTS: &'static [&'static str] = &["PriorityInUse"];

    fn parse(inputs: &Value) -> Result<RuleArgs, String> {
        RuleArgs::parse(inputs)
    }

    fn identity(inputs: &Value) -> Value {
        json!({"listener_arn": inputs.get("listener_arn"), "priority": inputs.get("priority")})
    }

    async fn create(&self, ctx: Context<'_>, args: &RuleArgs) -> Result<String, CreateError> {
        let region = region_of_arn(ctx, &args.listener_arn)?;
        let out = self
            .aws
            .elb(&region)
            .await
            .create_rule()
            .listener_arn(&args.listener_arn)
            .priority(args.priority)
            .set_conditions(Some(args.conditions.iter().map(Condition::sdk).collect()))
            .actions(args.action.sdk())
            .set_tags(Some(tags_of(ctx, &args.tags)))
            .send()
            .await
            .op(ELB, "CreateRule")?;
        let arn = out
            .rules()
            .first()
            .and_then(|r| r.rule_arn())
            .ok_or_else(|| invalid(ctx, "ELB CreateRule returned no rule"))?;
        Ok(arn.to_string())
    }

    async fn observe(&self, ctx: Context<'_>, id: &str, _prior: &Value) -> Result<Option<Seen>, ProviderError> {
        let region = region_of_arn(ctx, id)?;
        let got = self.aws.elb(&region).await.describe_rules().rule_arns(id).send().await;
        let Some(got) = found(got.op(ELB, "DescribeRules"), RULE_NOT_FOUND).at(ctx)? else {
            return Ok(None);
        };
        let Some(r) = got.rules().first() else {
            return Ok(None);
        };
        let Some(tags) = tags(&self.aws, &region, id).await.at(ctx)? else {
            return Ok(None);
        };
        // A rule's ARN is its listener's, with `listener-rule/` for `listener/`, and the rule's id.
        let listener = id.rsplit_once('/').map(|(l, _)| l.replacen(":listener-rule/", ":listener/", 1));
        let inputs = json!({
            "region": region,
            "listener_arn": listener,
            "priority": r.priority().and_then(|p| p.parse::<i32>().ok()),
            "conditions": r.conditions().iter().map(Condition::from_sdk).collect::<Vec<_>>(),
            "action": action_json(r.actions()),
            "tags": user_tags(tags.clone()),
        });
        Ok(Some(Seen::new(id, inputs, json!({"arn": id}), tags.get(TAG_URN).cloned())))
    }

    async fn update(&self, ctx: Context<'_>, id: &str, old: &RuleArgs, new: &RuleArgs) -> Result<(), ProviderError> {
        let region = region_of_arn(ctx, id)?;
        let elb = self.aws.elb(&region).await;
        if old.priority != new.priority {
            let priority = aws_sdk_elasticloadbalancingv2::types::RulePriorityPair::builder()
                .rule_arn(id)
                .priority(new.priority)
                .build();
            elb.set_rule_priorities().rule_priorities(priority).send().await.op(ELB, "SetRulePriorities").at(ctx)?;
        }
        if old.conditions != new.conditions || old.action != new.action {
            elb.modify_rule()
                .rule_arn(id)
                .set_conditions(Some(new.conditions.iter().map(Condition::sdk).collect()))
                .actions(new.action.sdk())
                .send()
                .await
                .op(ELB, "ModifyRule")
                .at(ctx)?;
        }
        sync_tags(&self.aws, ctx, &region, id, &old.tags, &new.tags).await
    }

    async fn delete(&self, ctx: Context<'_>, id: &str, _prior: &Value) -> Result<(), ProviderError> {
        let region = region_of_arn(ctx, id)?;
        let deleted = self.aws.elb(&region).await.delete_rule().rule_arn(id).send().await;
        gone_ok(deleted.op(ELB, "DeleteRule"), RULE_NOT_FOUND).at(ctx)
    }

    async fn candidates(&self, ctx: Context<'_>, identity: &Value) -> Result<Vec<String>, ProviderError> {
        let (Some(listener), Some(priority)) =
            (identity.get("listener_arn").and_then(Value::as_str), identity.get("priority").and_then(Value::as_i64))
        else {
            return Ok(Vec::new());
        };
        let region = region_of_arn(ctx, listener)?;
        let got = self.aws.elb(&region).await.describe_rules().listener_arn(listener).send().await;
        let got = found(got.op(ELB, "DescribeRules"), LISTENER_NOT_FOUND).at(ctx)?;
        Ok(got
            .map(|g| {
                g.rules()
                    .iter()
                    .filter(|r| r.priority() == Some(priority.to_string().as_str()))
                    .filter_map(|r| r.rule_arn().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_field() {
        let lb = |v: Value| LoadBalancerArgs::parse(&v).map(|_| ()).unwrap_err();
        let base = json!({"name": "web", "load_balancer_type": "application", "subnet_ids": ["subnet-1", "subnet-2"]});
        assert!(LoadBalancerArgs::parse(&base).is_ok());
        let mut one = base.clone();
        one["subnet_ids"] = json!(["subnet-1"]);
        assert!(lb(one).contains("at least 2"));
        let mut bad = base.clone();
        bad["name"] = json!("-web");
        assert!(lb(bad).contains("`name`"));

        let lb_arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188";
        let listener = |v: Value| {
            let mut l = json!({"load_balancer_arn": lb_arn, "port": 443, "protocol": "HTTPS",
                               "default_action": {"type": "redirect", "protocol": "HTTPS", "port": 443, "permanent": true}});
            l.as_object_mut().unwrap().extend(v.as_object().unwrap().clone());
            ListenerArgs::parse(&l).map(|_| ()).unwrap_err()
        };
        assert!(listener(json!({})).contains("needs `certificate_arn`"));
        assert!(listener(json!({"protocol": "HTTP", "certificate_arn": "arn:aws:acm:eu-west-1:1:certificate/x"}))
            .contains("HTTPS and TLS listeners only"));
        assert!(listener(json!({"certificate_arn": "cert"})).contains("`certificate_arn`"));
        assert!(listener(json!({"region": "us-east-1", "certificate_arn": "arn:aws:acm:eu-west-1:1:certificate/x"}))
            .contains("is in eu-west-1"));
        let forward = json!({"type": "forward", "target_group_arn": "tg"});
        assert!(listener(
            json!({"certificate_arn": "arn:aws:acm:eu-west-1:1:certificate/x", "default_action": forward})
        )
        .contains("`default_action.target_group_arn`"));

        let mut check = HealthCheck::http("/_health");
        check.timeout_seconds = 20;
        assert!(check.validate("t").unwrap_err().contains("less than"));
        let mut tcp = HealthCheck::http("/");
        tcp.protocol = Protocol::Tcp;
        assert!(tcp.validate("t").unwrap_err().contains("`health_check.path`"));
    }
}
