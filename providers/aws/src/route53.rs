//! Amazon Route 53: `aws:route53:HostedZone`, `aws:route53:HostedZoneLookup`,
//! `aws:route53:RecordSet` and `aws:route53:HealthCheck`.
//!
//! Route 53 is global: these resources have no `region` (the API is in `us-east-1`).
//!
//! **Names.** DNS names are case-insensitive and absolute whether or not they end with a
//! dot, so cairn compares them in a canonical form: lowercase, with the trailing dot, and
//! with Route 53's octal escapes decoded (`\052` is `*`). That form is what is sent to AWS.
//! `read` reports a name exactly as the program spelled it (`example.com` or
//! `Example.com.`) when it means the same as AWS's, so the spelling is never drift; an
//! imported resource (no spelling to keep) reports the canonical form, `example.com.`.
//!
//! **Hosted zones** are found by name (several zones may share one) and their `cairn:urn`
//! tag. `CreateHostedZone` cannot tag, so the zone is tagged right after; to recognise a
//! zone whose create crashed before the tagging, its `CallerReference` is
//! `cairn-<hash of the URN>-<nonce>`: the hash ties it to the resource, the nonce (time and
//! randomness) keeps every create's reference unique, as Route 53 requires (a reference is
//! never reusable, not even after the zone is deleted). A retry of the same request by the
//! SDK meets `HostedZoneAlreadyExists` and takes the zone that the reference created.
//! Health checks use the same scheme.
//!
//! **Record sets** cannot be tagged: one is identified by zone, name, type and set
//! identifier, which is also its id, `<zone_id>_<name>_<type>[_<set_identifier>]` (the name
//! in canonical form without its trailing dot, e.g. `Z123_www.example.com_A_blue`). Because
//! canonical names are lowercase and types uppercase, the id splits unambiguously even when
//! the name holds `_`. Every change waits until Route 53 reports it `INSYNC` (bounded).

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, ChangeInfo, ChangeStatus, HealthCheck as SdkHealthCheck,
    HealthCheckConfig, HealthCheckType, HostedZone as SdkZone, HostedZoneConfig, ResettableElementName, ResourceRecord,
    ResourceRecordSet, ResourceRecordSetRegion, RrType, Tag, TagResourceType, Vpc, VpcRegion,
};
use cairn::provider::{Context, Created, Observed, Provider, ProviderError};
use cairn::{Input, Resource};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::client::{
    all_tags, build_error, found, gone_ok, if_unrecorded, invalid, parse_inputs, tagged_for, unrecorded, user_tags,
    validate_tags, AtUrn, Aws, AwsError, SdkResultExt, TAG_URN,
};
use crate::cloudwatch::same_set_or;

const ROUTE53: &str = "Route53";
const NO_ZONE: &[&str] = &["NoSuchHostedZone"];
const NO_HEALTH_CHECK: &[&str] = &["NoSuchHealthCheck"];

/// How long a change may stay `PENDING` before cairn gives up waiting for it.
const CHANGE_WAIT: Duration = Duration::from_secs(300);

/// The record types Route 53 serves.
pub const RECORD_TYPES: &[&str] = &[
    "A", "AAAA", "CAA", "CNAME", "DS", "HTTPS", "MX", "NAPTR", "NS", "PTR", "SOA", "SPF", "SRV", "SSHFP", "SVCB",
    "TLSA", "TXT",
];

/// A DNS name in canonical form: lowercase, ending with a dot, Route 53's `\ooo` octal
/// escapes decoded.
pub fn canonical_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let code =
                (bytes[i + 1] - b'0') as u32 * 64 + (bytes[i + 2] - b'0') as u32 * 8 + (bytes[i + 3] - b'0') as u32;
            if let Some(c) = char::from_u32(code) {
                out.push(c.to_ascii_lowercase());
                i += 4;
                continue;
            }
        }
        let c = name[i..].chars().next().unwrap_or_default();
        out.extend(c.to_lowercase());
        i += c.len_utf8().max(1);
    }
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// A host name as HTTP and TLS use it: canonical, without the trailing dot.
fn host_name(name: &str) -> String {
    let c = canonical_name(name);
    c.strip_suffix('.').unwrap_or(&c).to_string()
}

/// The name to report: the program's spelling when it means the same as AWS's, else the
/// canonical form of AWS's.
fn reported_name(observed: &str, prior: Option<&Value>) -> String {
    match prior.and_then(Value::as_str) {
        Some(p) if canonical_name(p) == canonical_name(observed) => p.to_string(),
        _ => canonical_name(observed),
    }
}

/// Checks a DNS name's shape, naming the field.
fn validate_name(t: &str, field: &str, name: &str) -> Result<(), String> {
    let canonical = canonical_name(name);
    let bare = canonical.strip_suffix('.').unwrap_or(&canonical);
    if bare.is_empty() {
        return Err(format!("{t}: `{field}` must not be empty"));
    }
    if bare.len() > 253 {
        return Err(format!("{t}: `{field}` must be at most 253 characters (without the trailing dot)"));
    }
    for (i, label) in bare.split('.').enumerate() {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("{t}: `{field}` `{name}` has an empty label or one longer than 63 characters"));
        }
        if label == "*" && i == 0 {
            continue;
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(format!(
                "{t}: `{field}` `{name}` may only hold letters, digits, `-` and `_` (and `*` as its first label)"
            ));
        }
    }
    Ok(())
}

/// A hosted zone id without its `/hostedzone/` prefix.
fn bare_zone_id(id: &str) -> &str {
    id.strip_prefix("/hostedzone/").unwrap_or(id)
}

/// The `CallerReference` prefix of every zone and health check created for `ctx.urn`.
fn caller_prefix(ctx: Context<'_>) -> String {
    // FNV-1a: stable across runs and builds (unlike std's hasher), and short.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in ctx.urn.as_str().bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("cairn-{h:016x}-")
}

/// A new `CallerReference` for `ctx.urn`: its prefix, then a nonce unique to this create.
fn caller_reference(ctx: Context<'_>) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
    format!("{}{nanos:x}-{random:016x}", caller_prefix(ctx))
}

fn r53_tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}

/// The tags of a zone or health check.
async fn tags_of(aws: &Aws, kind: TagResourceType, id: &str) -> Result<BTreeMap<String, String>, AwsError> {
    let out = aws
        .route53()
        .await
        .list_tags_for_resource()
        .resource_type(kind)
        .resource_id(id)
        .send()
        .await
        .op(ROUTE53, "ListTagsForResource")?;
    Ok(out
        .resource_tag_set()
        .map(|s| s.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))).collect())
        .unwrap_or_default())
}

/// Brings the user tags of a zone or health check from `old` to `new`, and puts cairn's tags
/// on it (also moving the `cairn:urn` tag along with a renamed, aliased resource). Route 53
/// takes at most 10 tags and 10 removals per call.
async fn sync_tags(
    aws: &Aws,
    ctx: Context<'_>,
    kind: TagResourceType,
    id: &str,
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Result<(), ProviderError> {
    let r53 = aws.route53().await;
    let removed: Vec<String> = old.keys().filter(|k| !new.contains_key(*k)).cloned().collect();
    let added: Vec<Tag> = all_tags(ctx, new).iter().map(|(k, v)| r53_tag(k, v)).collect();
    let rounds = removed.len().div_ceil(10).max(added.len().div_ceil(10));
    for i in 0..rounds {
        let chunk = |n: usize| (i * 10).min(n)..((i + 1) * 10).min(n);
        r53.change_tags_for_resource()
            .resource_type(kind.clone())
            .resource_id(id)
            .set_remove_tag_keys(Some(removed[chunk(removed.len())].to_vec()).filter(|v| !v.is_empty()))
            .set_add_tags(Some(added[chunk(added.len())].to_vec()).filter(|v| !v.is_empty()))
            .send()
            .await
            .op(ROUTE53, "ChangeTagsForResource")
            .at(ctx)?;
    }
    Ok(())
}

/// Waits until a change is `INSYNC`, polling `GetChange`, for at most [`CHANGE_WAIT`].
async fn wait_insync(aws: &Aws, ctx: Context<'_>, change: Option<&ChangeInfo>) -> Result<(), ProviderError> {
    let Some(change) = change else {
        return Ok(());
    };
    if *change.status() == ChangeStatus::Insync {
        return Ok(());
    }
    let id = change.id().strip_prefix("/change/").unwrap_or(change.id()).to_string();
    let deadline = Instant::now() + CHANGE_WAIT;
    let r53 = aws.route53().await;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let got = r53.get_change().id(&id).send().await.op(ROUTE53, "GetChange").at(ctx)?;
        if got.change_info().is_some_and(|c| *c.status() == ChangeStatus::Insync) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(invalid(
                ctx,
                format!("Route 53 change {id} is still PENDING after {}s", CHANGE_WAIT.as_secs()),
            ));
        }
    }
}

/// The zones named `name` (canonical form).
async fn zones_named(aws: &Aws, name: &str) -> Result<Vec<SdkZone>, AwsError> {
    let r53 = aws.route53().await;
    let mut zones = Vec::new();
    let (mut dns_name, mut zone_id) = (Some(name.to_string()), None::<String>);
    // Zones come sorted by name from `dns_name` on: stop at the first other name.
    for _ in 0..1000 {
        let page = r53
            .list_hosted_zones_by_name()
            .set_dns_name(dns_name.clone())
            .set_hosted_zone_id(zone_id.clone())
            .send()
            .await
            .op(ROUTE53, "ListHostedZonesByName")?;
        for z in page.hosted_zones() {
            if canonical_name(z.name()) != name {
                return Ok(zones);
            }
            zones.push(z.clone());
        }
        if !page.is_truncated() {
            break;
        }
        dns_name = page.next_dns_name().map(str::to_string);
        zone_id = page.next_hosted_zone_id().map(str::to_string);
    }
    Ok(zones)
}

/// A public hosted zone, or a private one associated with a VPC. Changing `name`, `vpc_id` or
/// `vpc_region` replaces it (the new zone has new name servers); the comment and tags change
/// in place. See the module's documentation for how names are compared.
#[derive(Debug, Clone, Serialize)]
pub struct HostedZone {
    /// The domain, e.g. `example.com` or `example.com.`.
    pub name: Input<String>,
    /// Empty: none.
    pub comment: String,
    /// The VPC of a private zone; `None`: a public zone.
    pub vpc_id: Option<Input<String>>,
    /// The VPC's region, required with `vpc_id`.
    pub vpc_region: Option<String>,
    /// Whether deleting the zone first deletes its records (all but its SOA and apex NS
    /// records). Otherwise deleting a zone that has records fails.
    pub force_destroy: bool,
    /// Tags besides the `cairn:stack` and `cairn:urn` tags cairn adds.
    pub tags: BTreeMap<String, Input<String>>,
}

impl HostedZone {
    /// A public zone without comment or tags.
    pub fn new(name: impl Into<Input<String>>) -> HostedZone {
        HostedZone {
            name: name.into(),
            comment: String::new(),
            vpc_id: None,
            vpc_region: None,
            force_destroy: false,
            tags: BTreeMap::new(),
        }
    }
}

cairn::outputs! {
    /// The outputs of a [`HostedZone`].
    pub struct HostedZoneOutputs {
        /// The zone's id, without the `/hostedzone/` prefix.
        pub zone_id: String,
        /// The zone's name servers (none for a private zone).
        pub name_servers: Vec<String>,
    }
}

impl Resource for HostedZone {
    const TYPE: &'static str = "aws:route53:HostedZone";
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["name", "vpc_id", "vpc_region"];
    type Outputs = HostedZoneOutputs;
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ZoneArgs {
    name: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    vpc_id: Option<String>,
    #[serde(default)]
    vpc_region: Option<String>,
    #[serde(default)]
    force_destroy: bool,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

impl ZoneArgs {
    fn parse(inputs: &Value) -> Result<ZoneArgs, String> {
        let t = HostedZone::TYPE;
        let args: ZoneArgs = parse_inputs(t, inputs)?;
        validate_name(t, "name", &args.name)?;
        if args.name.contains('*') {
            return Err(format!("{t}: `name` must not hold `*`"));
        }
        if args.comment.chars().count() > 256 {
            return Err(format!("{t}: `comment` must be at most 256 characters"));
        }
        match (&args.vpc_id, &args.vpc_region) {
            (Some(v), Some(r)) => {
                if !v.starts_with("vpc-") {
                    return Err(format!("{t}: `vpc_id` must be a VPC id (`vpc-…`), got `{v}`"));
                }
                if r.is_empty() {
                    return Err(format!("{t}: `vpc_region` must not be empty"));
                }
            }
            (None, None) => {}
            _ => return Err(format!("{t}: `vpc_id` and `vpc_region` go together (a private zone needs both)")),
        }
        validate_tags(t, &args.tags)?;
        Ok(args)
    }
}

/// The provider of [`HostedZone`].
#[derive(Debug, Clone)]
pub struct HostedZoneProvider {
    aws: Aws,
}

/// What cairn sees of a zone: the observation, its tags and its caller reference.
struct SeenZone {
    observed: Observed,
    tags: BTreeMap<String, String>,
    caller_reference: String,
    vpcs: Vec<(String, String)>,
}

impl HostedZoneProvider {
    pub fn new(aws: &Aws) -> HostedZoneProvider {
        HostedZoneProvider { aws: aws.clone() }
    }

    /// The zone `id`; `prior` (the inputs cairn has) decides the name's spelling, the VPC
    /// reported when there are several, and `force_destroy`, which AWS does not know.
    async fn observe(&self, ctx: Context<'_>, id: &str, prior: &Value) -> Result<Option<SeenZone>, ProviderError> {
        let id = bare_zone_id(id);
        if id.is_empty() {
            return Err(invalid(ctx, "empty hosted zone id"));
        }
        let got = self.aws.route53().await.get_hosted_zone().id(id).send().await.op(ROUTE53, "GetHostedZone");
        let Some(got) = found(got, NO_ZONE).at(ctx)? else {
            return Ok(None);
        };
        let zone = got.hosted_zone().ok_or_else(|| invalid(ctx, format!("Route 53 returned no hosted zone {id}")))?;
        let tags =
            found(tags_of(&self.aws, TagResourceType::Hostedzone, id).await, NO_ZONE).at(ctx)?.unwrap_or_default();
        let vpcs: Vec<(String, String)> = got
            .vpcs()
            .iter()
            .map(|v| {
                (
                    v.vpc_id().unwrap_or_default().to_string(),
                    v.vpc_region().map(|r| r.as_str()).unwrap_or_default().into(),
                )
            })
            .collect();
        let private = zone.config().is_some_and(|c| c.private_zone());
        let vpc = if private {
            let wanted = prior.get("vpc_id").and_then(Value::as_str);
            vpcs.iter().find(|(v, _)| Some(v.as_str()) == wanted).or(vpcs.first()).cloned()
        } else {
            None
        };
        let inputs = json!({
            "name": reported_name(zone.name(), prior.get("name")),
            "comment": zone.config().and_then(|c| c.comment()).unwrap_or_default(),
            "vpc_id": vpc.as_ref().map(|(v, _)| v),
            "vpc_region": vpc.as_ref().map(|(_, r)| r),
            "force_destroy": prior.get("force_destroy").and_then(Value::as_bool).unwrap_or(false),
            "tags": user_tags(tags.clone()),
        });
        let name_servers: Vec<String> = got.delegation_set().map(|d| d.name_servers().to_vec()).unwrap_or_default();
        let outputs = json!({"zone_id": id, "name_servers": name_servers});
        Ok(Some(SeenZone {
            observed: Observed { id: id.to_string(), inputs, outputs },
            tags,
            caller_reference: zone.caller_reference().to_string(),
            vpcs,
        }))
    }

    /// Deletes every record of the zone but its SOA and apex NS records.
    async fn empty_zone(&self, ctx: Context<'_>, id: &str) -> Result<(), ProviderError> {
        let r53 = self.aws.route53().await;
        let apex = match self.observe(ctx, id, &Value::Null).await? {
            Some(seen) => canonical_name(seen.observed.inputs["name"].as_str().unwrap_or_default()),
            None => return Ok(()),
        };
        let mut doomed = Vec::new();
        let (mut name, mut kind, mut ident) = (None::<String>, None::<RrType>, None::<String>);
        loop {
            let page = r53
                .list_resource_record_sets()
                .hosted_zone_id(id)
                .set_start_record_name(name.clone())
                .set_start_record_type(kind.clone())
                .set_start_record_identifier(ident.clone())
                .send()
                .await
                .op(ROUTE53, "ListResourceRecordSets");
            let Some(page) = found(page, NO_ZONE).at(ctx)? else {
                return Ok(());
            };
            for r in page.resource_record_sets() {
                let keep =
                    *r.r#type() == RrType::Soa || (*r.r#type() == RrType::Ns && canonical_name(r.name()) == apex);
                if !keep {
                    doomed.push(r.clone());
                }
            }
            if !page.is_truncated() {
                break;
            }
            let next = (
                page.next_record_name().map(str::to_string),
                page.next_record_type().cloned(),
                page.next_record_identifier().map(str::to_string),
            );
            if next == (name.clone(), kind.clone(), ident.clone()) {
                break;
            }
            (name, kind, ident) = next;
        }
        for batch in doomed.chunks(100) {
            let changes = batch
                .iter()
                .map(|r| Change::builder().action(ChangeAction::Delete).resource_record_set(r.clone()).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| build_error(ctx, "record changes", e))?;
            let batch = ChangeBatch::builder()
                .set_changes(Some(changes))
                .build()
                .map_err(|e| build_error(ctx, "change batch", e))?;
            r53.change_resource_record_sets()
                .hosted_zone_id(id)
                .change_batch(batch)
                .send()
                .await
                .op(ROUTE53, "ChangeResourceRecordSets")
                .at(ctx)?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Provider for HostedZoneProvider {
    fn type_token(&self) -> &'static str {
        HostedZone::TYPE
    }

    fn identity(&self, inputs: &Value) -> Value {
        json!({
            "name": inputs.get("name"),
            "vpc_id": inputs.get("vpc_id"),
            "vpc_region": inputs.get("vpc_region"),
            "force_destroy": inputs.get("force_destroy"),
        })
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let args = ZoneArgs::parse(inputs).map_err(|e| invalid(ctx, e))?;
        let name = canonical_name(&args.name);
        let reference = caller_reference(ctx);
        let config = HostedZoneConfig::builder()
            .set_comment(Some(args.comment.clone()).filter(|c| !c.is_empty()))
            .private_zone(args.vpc_id.is_some())
            .build();
        let mut call = self
            .aws
            .route53()
            .await
            .create_hosted_zone()
            .name(&name)
            .caller_reference(&reference)
            .hosted_zone_config(config);
        if let (Some(vpc), Some(region)) = (&args.vpc_id, &args.vpc_region) {
            call = call.vpc(Vpc::builder().vpc_id(vpc).vpc_region(VpcRegion::from(region.as_str())).build());
        }
        let (id, change) = match call.send().await.op(ROUTE53, "CreateHostedZone") {
            Ok(out) => {
                let zone =
                    out.hosted_zone().ok_or_else(|| invalid(ctx, "Route 53 CreateHostedZone returned no zone"))?;
                (bare_zone_id(zone.id()).to_string(), out.change_info().cloned())
            }
            // The SDK retried this very request after its answer was lost: the zone exists.
            Err(e) if e.is(&["HostedZoneAlreadyExists"]) => {
                let zones = zones_named(&self.aws, &name).await.at(ctx)?;
                match zones.iter().find(|z| z.caller_reference() == reference) {
                    Some(z) => (bare_zone_id(z.id()).to_string(), None),
                    None => return Err(e.at(ctx)),
                }
            }
            Err(e) => return Err(e.at(ctx)),
        };
        // If this fails, the zone exists untagged: the create stays pending, and `find`
        // recognises the zone by its caller reference.
        sync_tags(&self.aws, ctx, TagResourceType::Hostedzone, &id, &BTreeMap::new(), &args.tags).await?;
        wait_insync(&self.aws, ctx, change.as_ref()).await?;
        let seen = self
            .observe(ctx, &id, inputs)
            .await?
            .ok_or_else(|| invalid(ctx, format!("hosted zone {id} was created but cannot be read back")))?;
        Ok(Created { id, outputs: seen.observed.outputs })
    }

    async fn read(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        Ok(self.observe(ctx, id, inputs).await?.map(|s| s.observed))
    }

    async fn update(&self, ctx: Context<'_>, id: &str, old: &Value, new: &Value) -> Result<Value, ProviderError> {
        let old_args = ZoneArgs::parse(old).map_err(|e| invalid(ctx, e))?;
        let new_args = ZoneArgs::parse(new).map_err(|e| invalid(ctx, e))?;
        if canonical_name(&old_args.name) != canonical_name(&new_args.name)
            || old_args.vpc_id != new_args.vpc_id
            || old_args.vpc_region != new_args.vpc_region
        {
            return Err(invalid(ctx, format!("zone {id} cannot change its name or VPC in place; it must be replaced")));
        }
        let id = bare_zone_id(id);
        if old_args.comment != new_args.comment {
            self.aws
                .route53()
                .await
                .update_hosted_zone_comment()
                .id(id)
                .set_comment(Some(new_args.comment.clone()).filter(|c| !c.is_empty()))
                .send()
                .await
                .op(ROUTE53, "UpdateHostedZoneComment")
                .at(ctx)?;
        }
        sync_tags(&self.aws, ctx, TagResourceType::Hostedzone, id, &old_args.tags, &new_args.tags).await?;
        let seen = self.observe(ctx, id, new).await?.ok_or_else(|| {
            invalid(ctx, format!("zone {id} no longer exists; refresh, then deploy to create it again"))
        })?;
        Ok(seen.observed.outputs)
    }

    async fn delete(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<(), ProviderError> {
        let id = bare_zone_id(id);
        // Unreadable inputs (none, for an import that is deleted) mean the safe default: no.
        if ZoneArgs::parse(inputs).is_ok_and(|a| a.force_destroy) {
            self.empty_zone(ctx, id).await?;
        }
        let deleted = self.aws.route53().await.delete_hosted_zone().id(id).send().await.op(ROUTE53, "DeleteHostedZone");
        match deleted {
            Err(e) if e.is(&["HostedZoneNotEmpty"]) => {
                Err(invalid(ctx, format!("{e} (set `force_destroy` to delete the zone's records with it)")))
            }
            other => gone_ok(other, NO_ZONE).at(ctx),
        }
    }

    /// A zone of this name (and VPC) tagged with this URN, or untagged but created for it
    /// (its caller reference starts with this URN's prefix): a create that crashed before
    /// the tagging. Never a zone that state already holds: zones may share a name, so the
    /// zone being replaced can have the very name of its replacement.
    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        let Some(name) = identity.get("name").and_then(Value::as_str) else {
            return Ok(None);
        };
        let vpc_id = identity.get("vpc_id").and_then(Value::as_str);
        let prefix = caller_prefix(ctx);
        for zone in zones_named(&self.aws, &canonical_name(name)).await.at(ctx)? {
            let private = zone.config().is_some_and(|c| c.private_zone());
            if private != vpc_id.is_some() {
                continue;
            }
            let Some(seen) = self.observe(ctx, zone.id(), identity).await? else {
                continue;
            };
            if let Some(v) = vpc_id {
                if !seen.vpcs.iter().any(|(id, _)| id == v) {
                    continue;
                }
            }
            let made_for = match seen.tags.get(TAG_URN) {
                Some(urn) => tagged_for(ctx, Some(urn)),
                None => seen.caller_reference.starts_with(&prefix),
            };
            if made_for && unrecorded(ctx, &seen.observed.id) {
                return Ok(Some(seen.observed));
            }
        }
        Ok(None)
    }
}

/// An existing hosted zone, looked up by name: a read-only data source. Creating it looks
/// the zone up (and fails clearly if there is none, or several); deleting it does nothing.
#[derive(Debug, Clone, Serialize)]
pub struct HostedZoneLookup {
    /// The zone's domain, e.g. `example.com`.
    pub name: Input<String>,
    /// Only private (`true`) or only public (`false`) zones; `None`: either, as long as one
    /// zone has the name.
    pub private_zone: Option<bool>,
}

impl HostedZoneLookup {
    /// The one zone named `name`.
    pub fn new(name: impl Into<Input<String>>) -> HostedZoneLookup {
        HostedZoneLookup { name: name.into(), private_zone: None }
    }
}

cairn::outputs! {
    /// The outputs of a [`HostedZoneLookup`].
    pub struct HostedZoneLookupOutputs {
        /// The zone's id, without the `/hostedzone/` prefix.
        pub zone_id: String,
        /// The zone's name in canonical form (lowercase, with the trailing dot).
        pub name: String,
    }
}

impl Resource for HostedZoneLookup {
    const TYPE: &'static str = "aws:route53:HostedZoneLookup";
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["name", "private_zone"];
    // `update` looks the zone up again: one made anew under the name has a new id (unplanned: every input replaces).
    const UPDATABLE_OUTPUTS: &'static [&'static str] = &["zone_id"];
    type Outputs = HostedZoneLookupOutputs;
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct LookupArgs {
    name: String,
    #[serde(default)]
    private_zone: Option<bool>,
}

impl LookupArgs {
    fn parse(inputs: &Value) -> Result<LookupArgs, String> {
        let args: LookupArgs = parse_inputs(HostedZoneLookup::TYPE, inputs)?;
        validate_name(HostedZoneLookup::TYPE, "name", &args.name)?;
        Ok(args)
    }
}

/// The provider of [`HostedZoneLookup`].
#[derive(Debug, Clone)]
pub struct HostedZoneLookupProvider {
    aws: Aws,
}

impl HostedZoneLookupProvider {
    pub fn new(aws: &Aws) -> HostedZoneLookupProvider {
        HostedZoneLookupProvider { aws: aws.clone() }
    }

    /// The one zone that matches; `None` when none does, an error when several do.
    async fn lookup(&self, ctx: Context<'_>, args: &LookupArgs) -> Result<Option<Observed>, ProviderError> {
        let name = canonical_name(&args.name);
        let zones: Vec<SdkZone> = zones_named(&self.aws, &name)
            .await
            .at(ctx)?
            .into_iter()
            .filter(|z| args.private_zone.is_none_or(|p| z.config().is_some_and(|c| c.private_zone()) == p))
            .collect();
        match zones.as_slice() {
            [] => Ok(None),
            [zone] => Ok(Some(Observed {
                id: bare_zone_id(zone.id()).to_string(),
                inputs: json!({"name": args.name, "private_zone": args.private_zone}),
                outputs: json!({"zone_id": bare_zone_id(zone.id()), "name": name}),
            })),
            several => Err(invalid(
                ctx,
                format!(
                    "{} hosted zones are named `{name}` ({}); set `private_zone` to choose",
                    several.len(),
                    several.iter().map(|z| bare_zone_id(z.id())).collect::<Vec<_>>().join(", ")
                ),
            )),
        }
    }

    fn not_found(ctx: Context<'_>, args: &LookupArgs) -> ProviderError {
        let kind = match args.private_zone {
            Some(true) => "private ",
            Some(false) => "public ",
            None => "",
        };
        invalid(ctx, format!("no {kind}hosted zone is named `{}`", canonical_name(&args.name)))
    }
}

#[async_trait::async_trait]
impl Provider for HostedZoneLookupProvider {
    fn type_token(&self) -> &'static str {
        HostedZoneLookup::TYPE
    }

    fn identity(&self, inputs: &Value) -> Value {
        inputs.clone()
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let args = LookupArgs::parse(inputs).map_err(|e| invalid(ctx, e))?;
        let seen = self.lookup(ctx, &args).await?.ok_or_else(|| Self::not_found(ctx, &args))?;
        Ok(Created { id: seen.id, outputs: seen.outputs })
    }

    /// The zone now named as the inputs say (`None` if there is none); with no name in the
    /// inputs (an import by zone id), the zone `id`.
    async fn read(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        if inputs.get("name").and_then(Value::as_str).is_some() {
            let args = LookupArgs::parse(inputs).map_err(|e| invalid(ctx, e))?;
            return self.lookup(ctx, &args).await;
        }
        let id = bare_zone_id(id);
        if id.is_empty() {
            return Err(invalid(ctx, "empty hosted zone id"));
        }
        let got = self.aws.route53().await.get_hosted_zone().id(id).send().await.op(ROUTE53, "GetHostedZone");
        let Some(zone) = found(got, NO_ZONE).at(ctx)?.and_then(|g| g.hosted_zone().cloned()) else {
            return Ok(None);
        };
        let name = canonical_name(zone.name());
        Ok(Some(Observed {
            id: id.to_string(),
            inputs: json!({"name": name, "private_zone": zone.config().map(|c| c.private_zone())}),
            outputs: json!({"zone_id": id, "name": name}),
        }))
    }

    async fn update(&self, ctx: Context<'_>, _id: &str, _old: &Value, new: &Value) -> Result<Value, ProviderError> {
        let args = LookupArgs::parse(new).map_err(|e| invalid(ctx, e))?;
        Ok(self.lookup(ctx, &args).await?.ok_or_else(|| Self::not_found(ctx, &args))?.outputs)
    }

    /// A lookup owns nothing: there is nothing to delete.
    async fn delete(&self, _ctx: Context<'_>, _id: &str, _inputs: &Value) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        match LookupArgs::parse(identity) {
            Ok(args) => Ok(if_unrecorded(ctx, self.lookup(ctx, &args).await?)),
            Err(_) => Ok(None),
        }
    }
}

/// The target of an alias record: an AWS resource (a load balancer, a CloudFront
/// distribution, another record of the zone) answered in place of record values.
#[derive(Debug, Clone, Serialize)]
pub struct Alias {
    /// The target's DNS name.
    pub dns_name: Input<String>,
    /// The hosted zone id of the target (for a load balancer: its canonical hosted zone id).
    pub hosted_zone_id: Input<String>,
    /// Whether the alias is unhealthy when its target is.
    pub evaluate_target_health: bool,
}

/// How Route 53 chooses among record sets of the same name and type.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub enum Routing {
    /// The only record set of its name and type.
    Simple,
    /// Answered in proportion to `weight` (0 to 255) among the weighted sets of its name and
    /// type; `set_identifier` tells them apart.
    Weighted { set_identifier: String, weight: u32 },
    /// Answered to clients nearest (in latency) to the AWS `region`.
    Latency { set_identifier: String, region: String },
}

/// A record set: the records of one name and type (and set identifier) in a hosted zone,
/// either values with a TTL or an alias. Changing `zone_id`, `name`, `type`, the routing
/// policy or the set identifier replaces it, deleting the old one first (the new one could
/// not coexist with it); TTL, values, alias, weight, latency region and health check change
/// in place (`UPSERT`).
#[derive(Debug, Clone, Serialize)]
pub struct RecordSet {
    /// The zone's id (without `/hostedzone/`).
    pub zone_id: Input<String>,
    /// The full name, inside the zone, e.g. `www.example.com`; `*` as first label for a
    /// wildcard.
    pub name: Input<String>,
    /// One of [`RECORD_TYPES`].
    #[serde(rename = "type")]
    pub record_type: String,
    /// Seconds; required with `records`, absent with `alias`.
    pub ttl: Option<u32>,
    /// The values, e.g. addresses; empty with `alias`.
    pub records: Vec<Input<String>>,
    pub alias: Option<Alias>,
    pub routing: Routing,
    /// A health check that decides whether this set is answered.
    pub health_check_id: Option<Input<String>>,
}

impl RecordSet {
    /// A simple record set with these values.
    pub fn new(
        zone_id: impl Into<Input<String>>,
        name: impl Into<Input<String>>,
        record_type: &str,
        ttl: u32,
        records: Vec<Input<String>>,
    ) -> RecordSet {
        RecordSet {
            zone_id: zone_id.into(),
            name: name.into(),
            record_type: record_type.to_string(),
            ttl: Some(ttl),
            records,
            alias: None,
            routing: Routing::Simple,
            health_check_id: None,
        }
    }
}

cairn::outputs! {
    /// The outputs of a [`RecordSet`].
    pub struct RecordSetOutputs {
        /// The name in canonical form (lowercase, with the trailing dot).
        pub fqdn: String,
    }
}

impl Resource for RecordSet {
    const TYPE: &'static str = "aws:route53:RecordSet";
    const REPLACE_ON_CHANGE: &'static [&'static str] =
        &["zone_id", "name", "type", "routing.policy", "routing.set_identifier"];
    const DELETE_BEFORE_REPLACE: bool = true;
    type Outputs = RecordSetOutputs;
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct AliasArgs {
    dns_name: String,
    hosted_zone_id: String,
    evaluate_target_health: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutingArgs {
    policy: String,
    #[serde(default)]
    set_identifier: Option<String>,
    #[serde(default)]
    weight: Option<u32>,
    #[serde(default)]
    region: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordArgs {
    zone_id: String,
    name: String,
    #[serde(rename = "type")]
    record_type: String,
    #[serde(default)]
    ttl: Option<u32>,
    #[serde(default)]
    records: Vec<String>,
    #[serde(default)]
    alias: Option<AliasArgs>,
    routing: RoutingArgs,
    #[serde(default)]
    health_check_id: Option<String>,
}

impl RecordArgs {
    fn parse(inputs: &Value) -> Result<RecordArgs, String> {
        let t = RecordSet::TYPE;
        let args: RecordArgs = parse_inputs(t, inputs)?;
        let zone = bare_zone_id(&args.zone_id);
        if zone.is_empty() || !zone.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!("{t}: `zone_id` `{}` is not a hosted zone id", args.zone_id));
        }
        validate_name(t, "name", &args.name)?;
        if !RECORD_TYPES.contains(&args.record_type.as_str()) {
            return Err(format!("{t}: `type` must be one of {RECORD_TYPES:?}, got `{}`", args.record_type));
        }
        match &args.alias {
            Some(a) => {
                if args.ttl.is_some() || !args.records.is_empty() {
                    return Err(format!("{t}: an `alias` record has no `ttl` and no `records`"));
                }
                validate_name(t, "alias.dns_name", &a.dns_name)?;
                if a.hosted_zone_id.is_empty() {
                    return Err(format!("{t}: `alias.hosted_zone_id` must not be empty"));
                }
            }
            None => {
                match args.ttl {
                    None => return Err(format!("{t}: `ttl` is required with `records` (or set `alias`)")),
                    Some(ttl) if ttl > 2_147_483_647 => return Err(format!("{t}: `ttl` is too large")),
                    _ => {}
                }
                if args.records.is_empty() {
                    return Err(format!("{t}: `records` must hold at least one value (or set `alias`)"));
                }
                if let Some(r) = args.records.iter().find(|r| r.is_empty() || r.len() > 4000) {
                    return Err(format!("{t}: `records` value `{r}` must be 1 to 4000 characters"));
                }
            }
        }
        let r = &args.routing;
        let set_id_ok = |s: &Option<String>| s.as_ref().is_some_and(|s| !s.is_empty() && s.chars().count() <= 128);
        match r.policy.as_str() {
            "simple" => {
                if r.set_identifier.is_some() || r.weight.is_some() || r.region.is_some() {
                    return Err(format!("{t}: `routing` `simple` takes no set identifier, weight or region"));
                }
            }
            "weighted" => {
                if !set_id_ok(&r.set_identifier) {
                    return Err(format!("{t}: `routing.set_identifier` must be 1 to 128 characters"));
                }
                if r.region.is_some() {
                    return Err(format!("{t}: `routing` `weighted` takes no `region`"));
                }
                match r.weight {
                    Some(w) if w <= 255 => {}
                    _ => return Err(format!("{t}: `routing.weight` must be 0 to 255")),
                }
            }
            "latency" => {
                if !set_id_ok(&r.set_identifier) {
                    return Err(format!("{t}: `routing.set_identifier` must be 1 to 128 characters"));
                }
                if r.weight.is_some() {
                    return Err(format!("{t}: `routing` `latency` takes no `weight`"));
                }
                if r.region.as_ref().is_none_or(|r| r.is_empty()) {
                    return Err(format!("{t}: `routing.region` is required with `latency`"));
                }
            }
            other => return Err(format!("{t}: `routing.policy` must be simple, weighted or latency, got `{other}`")),
        }
        if args.health_check_id.as_ref().is_some_and(|h| h.is_empty()) {
            return Err(format!("{t}: `health_check_id` must not be empty"));
        }
        Ok(args)
    }

    /// (zone id, canonical name, type, set identifier): what identifies the record set.
    fn key(&self) -> RecordKey {
        RecordKey {
            zone_id: bare_zone_id(&self.zone_id).to_string(),
            name: canonical_name(&self.name),
            record_type: self.record_type.clone(),
            set_identifier: self.routing.set_identifier.clone(),
        }
    }

    fn to_sdk(&self) -> Result<ResourceRecordSet, String> {
        let mut b = ResourceRecordSet::builder()
            .name(canonical_name(&self.name))
            .r#type(RrType::from(self.record_type.as_str()))
            .set_set_identifier(self.routing.set_identifier.clone())
            .set_weight(self.routing.weight.map(i64::from))
            .set_region(self.routing.region.as_deref().map(ResourceRecordSetRegion::from))
            .set_health_check_id(self.health_check_id.clone());
        if let Some(a) = &self.alias {
            let target = AliasTarget::builder()
                .dns_name(&a.dns_name)
                .hosted_zone_id(&a.hosted_zone_id)
                .evaluate_target_health(a.evaluate_target_health)
                .build()
                .map_err(|e| e.to_string())?;
            b = b.alias_target(target);
        } else {
            let records = self
                .records
                .iter()
                .map(|v| ResourceRecord::builder().value(v).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            b = b.set_ttl(self.ttl.map(i64::from)).set_resource_records(Some(records));
        }
        b.build().map_err(|e| e.to_string())
    }
}

/// What identifies a record set.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RecordKey {
    zone_id: String,
    /// Canonical form.
    name: String,
    record_type: String,
    set_identifier: Option<String>,
}

impl RecordKey {
    /// `<zone_id>_<name>_<type>[_<set_identifier>]`, the name without its trailing dot.
    fn id(&self) -> String {
        let name = self.name.strip_suffix('.').unwrap_or(&self.name);
        let mut id = format!("{}_{name}_{}", self.zone_id, self.record_type);
        if let Some(s) = &self.set_identifier {
            id.push('_');
            id.push_str(s);
        }
        id
    }

    /// The key of an id: the name ends at the first `_<TYPE>` followed by `_` or the end.
    fn parse(id: &str) -> Option<RecordKey> {
        let (zone, rest) = id.split_once('_')?;
        for (i, _) in rest.match_indices('_') {
            if i == 0 {
                continue;
            }
            let after = &rest[i + 1..];
            let (ty, set) = match after.split_once('_') {
                Some((ty, set)) => (ty, Some(set)),
                None => (after, None),
            };
            if RECORD_TYPES.contains(&ty) && set.is_none_or(|s| !s.is_empty()) {
                return Some(RecordKey {
                    zone_id: bare_zone_id(zone).to_string(),
                    name: canonical_name(&rest[..i]),
                    record_type: ty.to_string(),
                    set_identifier: set.map(str::to_string),
                });
            }
        }
        None
    }
}

/// The provider of [`RecordSet`].
#[derive(Debug, Clone)]
pub struct RecordSetProvider {
    aws: Aws,
}

impl RecordSetProvider {
    pub fn new(aws: &Aws) -> RecordSetProvider {
        RecordSetProvider { aws: aws.clone() }
    }

    /// The record set of `key`, as Route 53 has it; `None` if it (or its zone) is gone.
    async fn lookup(&self, key: &RecordKey) -> Result<Option<ResourceRecordSet>, AwsError> {
        let r53 = self.aws.route53().await;
        let mut start = (key.name.clone(), RrType::from(key.record_type.as_str()), None::<String>);
        // Record sets come sorted, from the start name and type on: stop at the first other.
        for _ in 0..100 {
            let page = r53
                .list_resource_record_sets()
                .hosted_zone_id(&key.zone_id)
                .start_record_name(&start.0)
                .start_record_type(start.1.clone())
                .set_start_record_identifier(start.2.clone())
                .max_items(100)
                .send()
                .await
                .op(ROUTE53, "ListResourceRecordSets");
            let Some(page) = found(page, NO_ZONE)? else {
                return Ok(None);
            };
            for r in page.resource_record_sets() {
                if canonical_name(r.name()) != key.name || r.r#type().as_str() != key.record_type {
                    return Ok(None);
                }
                if r.set_identifier() == key.set_identifier.as_deref() {
                    return Ok(Some(r.clone()));
                }
            }
            let next = match (page.is_truncated(), page.next_record_name(), page.next_record_type()) {
                (true, Some(n), Some(t)) => {
                    (n.to_string(), t.clone(), page.next_record_identifier().map(str::to_string))
                }
                _ => return Ok(None),
            };
            if next == start {
                return Ok(None);
            }
            start = next;
        }
        Ok(None)
    }

    /// The record set of `key` as inputs; `prior` (the inputs cairn has) decides the
    /// spelling of names and the order of values that mean the same.
    async fn observe(
        &self,
        ctx: Context<'_>,
        key: &RecordKey,
        prior: &Value,
    ) -> Result<Option<Observed>, ProviderError> {
        let Some(r) = self.lookup(key).await.at(ctx)? else {
            return Ok(None);
        };
        let values: Vec<String> = r.resource_records().iter().map(|v| v.value().to_string()).collect();
        let alias = r.alias_target().map(|a| {
            json!({
                "dns_name": reported_name(a.dns_name(), prior.pointer("/alias/dns_name")),
                "hosted_zone_id": a.hosted_zone_id(),
                "evaluate_target_health": a.evaluate_target_health(),
            })
        });
        let routing = match (r.set_identifier(), r.weight(), r.region()) {
            (None, _, _) => json!({"policy": "simple"}),
            (Some(s), Some(w), _) => json!({"policy": "weighted", "set_identifier": s, "weight": w}),
            (Some(s), None, Some(region)) => {
                json!({"policy": "latency", "set_identifier": s, "region": region.as_str()})
            }
            // Failover, geolocation and the like: shown as they are, for drift.
            (Some(s), None, None) => {
                let policy = if r.failover().is_some() { "failover" } else { "other" };
                json!({"policy": policy, "set_identifier": s})
            }
        };
        let inputs = json!({
            "zone_id": prior.get("zone_id").and_then(Value::as_str).filter(|z| bare_zone_id(z) == key.zone_id).unwrap_or(key.zone_id.as_str()),
            "name": reported_name(r.name(), prior.get("name")),
            "type": r.r#type().as_str(),
            "ttl": r.ttl(),
            "records": same_set_or(values, prior.get("records")),
            "alias": alias,
            "routing": routing,
            "health_check_id": r.health_check_id(),
        });
        Ok(Some(Observed { id: key.id(), inputs, outputs: json!({"fqdn": key.name}) }))
    }

    async fn change(
        &self,
        ctx: Context<'_>,
        zone_id: &str,
        action: ChangeAction,
        set: ResourceRecordSet,
    ) -> Result<(), ProviderError> {
        let op = action.as_str().to_string();
        let change = Change::builder()
            .action(action)
            .resource_record_set(set)
            .build()
            .map_err(|e| build_error(ctx, "change", e))?;
        let batch = ChangeBatch::builder()
            .changes(change)
            .comment(format!("cairn: {op} for {}", ctx.urn))
            .build()
            .map_err(|e| build_error(ctx, "change batch", e))?;
        let out = self
            .aws
            .route53()
            .await
            .change_resource_record_sets()
            .hosted_zone_id(zone_id)
            .change_batch(batch)
            .send()
            .await
            .op(ROUTE53, "ChangeResourceRecordSets")
            .at(ctx)?;
        wait_insync(&self.aws, ctx, out.change_info()).await
    }
}

#[async_trait::async_trait]
impl Provider for RecordSetProvider {
    fn type_token(&self) -> &'static str {
        RecordSet::TYPE
    }

    fn identity(&self, inputs: &Value) -> Value {
        json!({
            "zone_id": inputs.get("zone_id"),
            "name": inputs.get("name"),
            "type": inputs.get("type"),
            "set_identifier": inputs.pointer("/routing/set_identifier"),
        })
    }

    /// `CREATE` fails when the record set exists: it is not silently taken over.
    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let args = RecordArgs::parse(inputs).map_err(|e| invalid(ctx, e))?;
        let key = args.key();
        let set = args.to_sdk().map_err(|e| build_error(ctx, "record set", e))?;
        self.change(ctx, &key.zone_id, ChangeAction::Create, set).await?;
        Ok(Created { id: key.id(), outputs: json!({"fqdn": key.name}) })
    }

    async fn read(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        let key = RecordKey::parse(id).ok_or_else(|| {
            invalid(ctx, format!("`{id}` is not a record set id (`<zone_id>_<name>_<type>[_<set>]`)"))
        })?;
        self.observe(ctx, &key, inputs).await
    }

    async fn update(&self, ctx: Context<'_>, id: &str, old: &Value, new: &Value) -> Result<Value, ProviderError> {
        let old = RecordArgs::parse(old).map_err(|e| invalid(ctx, e))?;
        let new = RecordArgs::parse(new).map_err(|e| invalid(ctx, e))?;
        let key = new.key();
        if old.key() != key || old.routing.policy != new.routing.policy {
            return Err(invalid(
                ctx,
                format!("{id}: zone, name, type, routing policy and set identifier cannot change in place"),
            ));
        }
        let set = new.to_sdk().map_err(|e| build_error(ctx, "record set", e))?;
        self.change(ctx, &key.zone_id, ChangeAction::Upsert, set).await?;
        Ok(json!({"fqdn": key.name}))
    }

    /// Deletes the record set exactly as Route 53 has it now (a `DELETE` must name every
    /// value).
    async fn delete(&self, ctx: Context<'_>, id: &str, _inputs: &Value) -> Result<(), ProviderError> {
        let key = RecordKey::parse(id).ok_or_else(|| {
            invalid(ctx, format!("`{id}` is not a record set id (`<zone_id>_<name>_<type>[_<set>]`)"))
        })?;
        let Some(current) = self.lookup(&key).await.at(ctx)? else {
            return Ok(());
        };
        self.change(ctx, &key.zone_id, ChangeAction::Delete, current).await
    }

    /// Record sets cannot be tagged: found by zone, name, type and set identifier, which
    /// Route 53 keeps unique.
    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        let (Some(zone), Some(name), Some(ty)) = (
            identity.get("zone_id").and_then(Value::as_str),
            identity.get("name").and_then(Value::as_str),
            identity.get("type").and_then(Value::as_str),
        ) else {
            return Ok(None);
        };
        let key = RecordKey {
            zone_id: bare_zone_id(zone).to_string(),
            name: canonical_name(name),
            record_type: ty.to_string(),
            set_identifier: identity.get("set_identifier").and_then(Value::as_str).map(str::to_string),
        };
        Ok(if_unrecorded(ctx, self.observe(ctx, &key, identity).await?))
    }
}

/// A health check of an endpoint, by HTTP, HTTPS or TCP, from Route 53's checkers.
/// Changing `type`, `request_interval` or `ip_address` replaces it (Route 53 cannot change
/// the first two, nor remove an address); the name, port, path, failure threshold and tags
/// change in place.
#[derive(Debug, Clone, Serialize)]
pub struct HealthCheck {
    /// `HTTP`, `HTTPS` or `TCP`.
    #[serde(rename = "type")]
    pub check_type: String,
    /// The endpoint's domain name (also the `Host` header and TLS server name); at least one
    /// of `fqdn` and `ip_address`.
    pub fqdn: Option<Input<String>>,
    /// The endpoint's IPv4 or IPv6 address.
    pub ip_address: Option<String>,
    pub port: u16,
    /// The path requested by HTTP and HTTPS checks, e.g. `/health`; `None` for TCP.
    pub resource_path: Option<String>,
    /// Seconds between two checks of one checker: 10 or 30.
    pub request_interval: u32,
    /// How many consecutive checks must fail (or pass) to change the status: 1 to 10.
    pub failure_threshold: u32,
    /// Tags besides the `cairn:stack` and `cairn:urn` tags cairn adds.
    pub tags: BTreeMap<String, Input<String>>,
}

impl HealthCheck {
    /// An HTTPS check of `https://<fqdn>:443<path>` every 30 seconds, failing after 3.
    pub fn https(fqdn: impl Into<Input<String>>, resource_path: &str) -> HealthCheck {
        HealthCheck {
            check_type: "HTTPS".into(),
            fqdn: Some(fqdn.into()),
            ip_address: None,
            port: 443,
            resource_path: Some(resource_path.to_string()),
            request_interval: 30,
            failure_threshold: 3,
            tags: BTreeMap::new(),
        }
    }
}

cairn::outputs! {
    /// The outputs of a [`HealthCheck`].
    pub struct HealthCheckOutputs {
        pub id: String,
    }
}

impl Resource for HealthCheck {
    const TYPE: &'static str = "aws:route53:HealthCheck";
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["type", "request_interval", "ip_address"];
    type Outputs = HealthCheckOutputs;
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckArgs {
    #[serde(rename = "type")]
    check_type: String,
    #[serde(default)]
    fqdn: Option<String>,
    #[serde(default)]
    ip_address: Option<String>,
    port: u16,
    #[serde(default)]
    resource_path: Option<String>,
    request_interval: u32,
    failure_threshold: u32,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

impl CheckArgs {
    fn parse(inputs: &Value) -> Result<CheckArgs, String> {
        let t = HealthCheck::TYPE;
        let args: CheckArgs = parse_inputs(t, inputs)?;
        if !["HTTP", "HTTPS", "TCP"].contains(&args.check_type.as_str()) {
            return Err(format!("{t}: `type` must be HTTP, HTTPS or TCP, got `{}`", args.check_type));
        }
        if args.fqdn.is_none() && args.ip_address.is_none() {
            return Err(format!("{t}: `fqdn` or `ip_address` is required"));
        }
        if let Some(f) = &args.fqdn {
            validate_name(t, "fqdn", f)?;
        }
        if let Some(ip) = &args.ip_address {
            if ip.parse::<std::net::IpAddr>().is_err() {
                return Err(format!("{t}: `ip_address` `{ip}` is not an IPv4 or IPv6 address"));
            }
        }
        if args.port == 0 {
            return Err(format!("{t}: `port` must be 1 to 65535"));
        }
        match (&args.resource_path, args.check_type.as_str()) {
            (Some(_), "TCP") => return Err(format!("{t}: `resource_path` is for HTTP and HTTPS checks only")),
            (Some(p), _) if !p.starts_with('/') || p.len() > 255 => {
                return Err(format!("{t}: `resource_path` must start with `/` and be at most 255 characters"))
            }
            _ => {}
        }
        if !matches!(args.request_interval, 10 | 30) {
            return Err(format!("{t}: `request_interval` must be 10 or 30, got {}", args.request_interval));
        }
        if !(1..=10).contains(&args.failure_threshold) {
            return Err(format!("{t}: `failure_threshold` must be 1 to 10, got {}", args.failure_threshold));
        }
        validate_tags(t, &args.tags)?;
        Ok(args)
    }
}

/// The provider of [`HealthCheck`].
#[derive(Debug, Clone)]
pub struct HealthCheckProvider {
    aws: Aws,
}

impl HealthCheckProvider {
    pub fn new(aws: &Aws) -> HealthCheckProvider {
        HealthCheckProvider { aws: aws.clone() }
    }

    /// The check as inputs, with its tags; `prior` decides the spelling of `fqdn`.
    async fn observe_check(
        &self,
        ctx: Context<'_>,
        check: &SdkHealthCheck,
        prior: &Value,
    ) -> Result<Option<(Observed, BTreeMap<String, String>)>, ProviderError> {
        let id = check.id();
        let Some(c) = check.health_check_config() else {
            return Err(invalid(ctx, format!("Route 53 returned health check {id} without configuration")));
        };
        let Some(tags) = found(tags_of(&self.aws, TagResourceType::Healthcheck, id).await, NO_HEALTH_CHECK).at(ctx)?
        else {
            return Ok(None);
        };
        let inputs = json!({
            "type": c.r#type().as_str(),
            "fqdn": c.fully_qualified_domain_name().map(|f| reported_name(f, prior.get("fqdn"))),
            "ip_address": c.ip_address(),
            "port": c.port(),
            "resource_path": c.resource_path(),
            "request_interval": c.request_interval(),
            "failure_threshold": c.failure_threshold(),
            "tags": user_tags(tags.clone()),
        });
        Ok(Some((Observed { id: id.to_string(), inputs, outputs: json!({"id": id}) }, tags)))
    }

    async fn get(&self, ctx: Context<'_>, id: &str) -> Result<Option<SdkHealthCheck>, ProviderError> {
        if id.is_empty() {
            return Err(invalid(ctx, "empty health check id"));
        }
        let got = self.aws.route53().await.get_health_check().health_check_id(id).send().await;
        Ok(found(got.op(ROUTE53, "GetHealthCheck"), NO_HEALTH_CHECK).at(ctx)?.and_then(|g| g.health_check().cloned()))
    }
}

#[async_trait::async_trait]
impl Provider for HealthCheckProvider {
    fn type_token(&self) -> &'static str {
        HealthCheck::TYPE
    }

    fn identity(&self, inputs: &Value) -> Value {
        json!({
            "type": inputs.get("type"),
            "fqdn": inputs.get("fqdn"),
            "ip_address": inputs.get("ip_address"),
            "port": inputs.get("port"),
            "request_interval": inputs.get("request_interval"),
        })
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let args = CheckArgs::parse(inputs).map_err(|e| invalid(ctx, e))?;
        let config = HealthCheckConfig::builder()
            .r#type(HealthCheckType::from(args.check_type.as_str()))
            .set_fully_qualified_domain_name(args.fqdn.as_deref().map(host_name))
            .set_ip_address(args.ip_address.clone())
            .port(args.port as i32)
            .set_resource_path(args.resource_path.clone())
            .request_interval(args.request_interval as i32)
            .failure_threshold(args.failure_threshold as i32)
            .build()
            .map_err(|e| build_error(ctx, "health check configuration", e))?;
        // Same reference and configuration: Route 53 answers a retried request with the
        // check it created, not a second one.
        let out = self
            .aws
            .route53()
            .await
            .create_health_check()
            .caller_reference(caller_reference(ctx))
            .health_check_config(config)
            .send()
            .await
            .op(ROUTE53, "CreateHealthCheck")
            .at(ctx)?;
        let id = out
            .health_check()
            .map(|h| h.id().to_string())
            .ok_or_else(|| invalid(ctx, "Route 53 CreateHealthCheck returned no health check"))?;
        // If this fails, the check exists untagged: `find` recognises it by its reference.
        sync_tags(&self.aws, ctx, TagResourceType::Healthcheck, &id, &BTreeMap::new(), &args.tags).await?;
        Ok(Created { outputs: json!({"id": id}), id })
    }

    async fn read(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        let Some(check) = self.get(ctx, id).await? else {
            return Ok(None);
        };
        Ok(self.observe_check(ctx, &check, inputs).await?.map(|(seen, _)| seen))
    }

    async fn update(&self, ctx: Context<'_>, id: &str, old: &Value, new: &Value) -> Result<Value, ProviderError> {
        let old = CheckArgs::parse(old).map_err(|e| invalid(ctx, e))?;
        let new = CheckArgs::parse(new).map_err(|e| invalid(ctx, e))?;
        if old.check_type != new.check_type
            || old.request_interval != new.request_interval
            || old.ip_address != new.ip_address
        {
            return Err(invalid(
                ctx,
                format!("health check {id} cannot change its type, interval or address in place; it must be replaced"),
            ));
        }
        let mut call = self
            .aws
            .route53()
            .await
            .update_health_check()
            .health_check_id(id)
            .port(new.port as i32)
            .failure_threshold(new.failure_threshold as i32)
            .set_fully_qualified_domain_name(new.fqdn.as_deref().map(host_name))
            .set_resource_path(new.resource_path.clone());
        if new.fqdn.is_none() && old.fqdn.is_some() {
            call = call.reset_elements(ResettableElementName::FullyQualifiedDomainName);
        }
        if new.resource_path.is_none() && old.resource_path.is_some() {
            call = call.reset_elements(ResettableElementName::ResourcePath);
        }
        call.send().await.op(ROUTE53, "UpdateHealthCheck").at(ctx)?;
        sync_tags(&self.aws, ctx, TagResourceType::Healthcheck, id, &old.tags, &new.tags).await?;
        Ok(json!({"id": id}))
    }

    async fn delete(&self, ctx: Context<'_>, id: &str, _inputs: &Value) -> Result<(), ProviderError> {
        let deleted = self
            .aws
            .route53()
            .await
            .delete_health_check()
            .health_check_id(id)
            .send()
            .await
            .op(ROUTE53, "DeleteHealthCheck");
        gone_ok(deleted, NO_HEALTH_CHECK).at(ctx)
    }

    /// A check of this configuration created for this URN: tagged with it, or untagged with
    /// a caller reference of its prefix (a create that crashed before the tagging).
    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        let prefix = caller_prefix(ctx);
        let r53 = self.aws.route53().await;
        let mut marker = None;
        for _ in 0..1000 {
            let page = r53
                .list_health_checks()
                .set_marker(marker.clone())
                .send()
                .await
                .op(ROUTE53, "ListHealthChecks")
                .at(ctx)?;
            for check in page.health_checks().iter().filter(|c| c.caller_reference().starts_with(&prefix)) {
                let Some((seen, tags)) = self.observe_check(ctx, check, identity).await? else {
                    continue;
                };
                let same = ["type", "fqdn", "ip_address", "port", "request_interval"]
                    .iter()
                    .all(|k| identity.get(*k).unwrap_or(&Value::Null) == &seen.inputs[*k]);
                // Untagged: a create that crashed before the tagging (the prefix says for whom).
                let made_for = tags.get(TAG_URN).is_none_or(|u| tagged_for(ctx, Some(u)));
                if same && made_for && unrecorded(ctx, &seen.id) {
                    return Ok(Some(seen));
                }
            }
            match page.next_marker() {
                Some(m) if page.is_truncated() && !m.is_empty() => marker = Some(m.to_string()),
                _ => break,
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_compared_in_canonical_form() {
        assert_eq!(canonical_name("Example.COM"), "example.com.");
        assert_eq!(canonical_name("example.com."), "example.com.");
        assert_eq!(canonical_name("\\052.example.com."), "*.example.com.");
        assert_eq!(reported_name("example.com.", Some(&json!("Example.com"))), "Example.com");
        assert_eq!(reported_name("other.com.", Some(&json!("example.com"))), "other.com.");
        assert_eq!(reported_name("\\052.example.com.", None), "*.example.com.");
    }

    #[test]
    fn record_ids_split_at_the_type() {
        let key = RecordKey {
            zone_id: "Z123".into(),
            name: "_dmarc.my_host.example.com.".into(),
            record_type: "TXT".into(),
            set_identifier: Some("blue_1".into()),
        };
        assert_eq!(key.id(), "Z123__dmarc.my_host.example.com_TXT_blue_1");
        assert_eq!(RecordKey::parse(&key.id()), Some(key));
        let simple = RecordKey::parse("Z9_www.example.com_A").unwrap();
        assert_eq!(
            (simple.name.as_str(), simple.record_type.as_str(), simple.set_identifier),
            ("www.example.com.", "A", None)
        );
        assert_eq!(RecordKey::parse("Z9_www.example.com._AAAA").unwrap().name, "www.example.com.");
        assert_eq!(RecordKey::parse("Z9_www.example.com"), None);
    }

    #[test]
    fn caller_references_share_the_urn_prefix_and_differ() {
        let urn = cairn::Urn::from("s/aws:route53:HostedZone/z");
        let ctx = Context::new(&urn, "s");
        let (a, b) = (caller_reference(ctx), caller_reference(ctx));
        assert_ne!(a, b);
        assert!(a.starts_with(&caller_prefix(ctx)) && b.starts_with(&caller_prefix(ctx)));
        assert!(a.len() <= 128);
        let other = cairn::Urn::from("s/aws:route53:HostedZone/y");
        assert_ne!(caller_prefix(ctx), caller_prefix(Context::new(&other, "s")));
    }

    #[test]
    fn record_validation_names_the_field() {
        let base = json!({
            "zone_id": "Z1", "name": "www.example.com", "type": "A", "ttl": 60, "records": ["192.0.2.1"],
            "alias": null, "routing": {"policy": "simple"}, "health_check_id": null,
        });
        assert!(RecordArgs::parse(&base).is_ok());
        let err = |path: &str, v: Value| {
            let mut b = base.clone();
            *b.pointer_mut(path).unwrap() = v;
            RecordArgs::parse(&b).unwrap_err()
        };
        assert!(err("/type", json!("AX")).contains("`type`"));
        assert!(err("/ttl", json!(null)).contains("`ttl`"));
        assert!(err("/records", json!([])).contains("`records`"));
        assert!(err("/name", json!("a b.example.com")).contains("`name`"));
        assert!(err("/routing", json!({"policy": "weighted", "set_identifier": "a", "weight": 300}))
            .contains("`routing.weight`"));
        assert!(err("/routing", json!({"policy": "latency", "set_identifier": "a"})).contains("`routing.region`"));
        assert!(err("/routing", json!({"policy": "geo"})).contains("`routing.policy`"));
        assert!(err(
            "/alias",
            json!({"dns_name": "lb.example.com", "hosted_zone_id": "Z2", "evaluate_target_health": false})
        )
        .contains("`alias`"));
    }

    #[test]
    fn zone_and_check_validation_names_the_field() {
        let zone = |v: Value| ZoneArgs::parse(&v);
        assert!(zone(json!({"name": "example.com"})).is_ok());
        assert!(zone(json!({"name": ""})).unwrap_err().contains("`name`"));
        assert!(zone(json!({"name": "example.com", "vpc_id": "vpc-1"})).unwrap_err().contains("`vpc_region`"));
        let check = json!({"type": "HTTPS", "fqdn": "example.com", "port": 443, "resource_path": "/health",
            "request_interval": 30, "failure_threshold": 3});
        assert!(CheckArgs::parse(&check).is_ok());
        let err = |k: &str, v: Value| {
            let mut c = check.clone();
            c[k] = v;
            CheckArgs::parse(&c).unwrap_err()
        };
        assert!(err("type", json!("ICMP")).contains("`type`"));
        assert!(err("request_interval", json!(20)).contains("`request_interval`"));
        assert!(err("failure_threshold", json!(11)).contains("`failure_threshold`"));
        assert!(err("resource_path", json!("health")).contains("`resource_path`"));
        assert!(err("ip_address", json!("1.2.3")).contains("`ip_address`"));
    }
}
