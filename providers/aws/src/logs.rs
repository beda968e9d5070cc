//! Amazon CloudWatch Logs: `aws:logs:LogGroup` and `aws:logs:MetricFilter`.
//!
//! A log group's id is its ARN (without the `:*` suffix AWS adds in some answers); a bare
//! name is accepted for imports, in the resource's `region`. Names are unique per region, so a
//! log group is found again by name, and adopted only if its `cairn:urn` tag says it is ours.
//! A metric filter's id is `<region>:<log group>:<filter name>` (neither name may hold a `:`).

use std::collections::{BTreeMap, HashMap};

use aws_sdk_cloudwatchlogs::types::MetricTransformation as SdkTransformation;
use cairn::provider::{Context, Created, Observed, Provider, ProviderError, ReadItem};
use cairn::{Input, Resource};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::client::{
    all_tags, build_error, found, gone_ok, if_tagged_for, if_unrecorded, invalid, parse_arn, parse_inputs, user_tags,
    validate_tags, AtUrn, Aws, SdkResultExt, TAG_URN,
};

const LOGS: &str = "CloudWatchLogs";
const NOT_FOUND: &[&str] = &["ResourceNotFoundException"];

/// The retention periods CloudWatch Logs accepts, in days.
pub const RETENTION_DAYS: &[u32] =
    &[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

/// A log group. Changing `name` or `region` replaces it; retention, KMS key and tags change in
/// place.
#[derive(Debug, Clone, Serialize)]
pub struct LogGroup {
    /// Letters, digits and `._-/#`, 1 to 512 characters.
    pub name: Input<String>,
    /// The region; `None`: the region of the `aws` provider configuration chosen for the
    /// resource or its component (see [`crate::Settings`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// One of [`RETENTION_DAYS`]; `None`: kept forever.
    pub retention_days: Option<u32>,
    /// ARN of the KMS key that encrypts the group's data; `None`: AWS-owned keys.
    pub kms_key_id: Option<Input<String>>,
    /// Tags besides the `cairn:stack` and `cairn:urn` tags cairn adds.
    pub tags: BTreeMap<String, Input<String>>,
}

impl LogGroup {
    /// A log group kept forever, without KMS key or tags.
    pub fn new(name: impl Into<Input<String>>) -> LogGroup {
        LogGroup { name: name.into(), region: None, retention_days: None, kms_key_id: None, tags: BTreeMap::new() }
    }
}

cairn::outputs! {
    /// The outputs of a [`LogGroup`].
    pub struct LogGroupOutputs {
        pub arn: String,
        pub name: String,
    }
}

impl Resource for LogGroup {
    const TYPE: &'static str = "aws:logs:LogGroup";
    const PROVIDER_INPUTS: &'static [&'static str] = &["region"];
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["name", "region"];
    type Outputs = LogGroupOutputs;
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogGroupArgs {
    name: String,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    retention_days: Option<u32>,
    #[serde(default)]
    kms_key_id: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

fn validate_group_name(t: &str, field: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{t}: `{field}` must not be empty"));
    }
    if name.len() > 512 {
        return Err(format!("{t}: `{field}` must be at most 512 characters"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/#".contains(&b)) {
        return Err(format!("{t}: `{field}` `{name}` may only hold letters, digits and `._-/#`"));
    }
    Ok(())
}

impl LogGroupArgs {
    fn parse(inputs: &Value) -> Result<LogGroupArgs, String> {
        let t = LogGroup::TYPE;
        let args: LogGroupArgs = parse_inputs(t, inputs)?;
        validate_group_name(t, "name", &args.name)?;
        if let Some(d) = args.retention_days {
            if !RETENTION_DAYS.contains(&d) {
                return Err(format!("{t}: `retention_days` must be one of {RETENTION_DAYS:?} (or unset), got {d}"));
            }
        }
        if let Some(k) = &args.kms_key_id {
            if parse_arn(k).is_none_or(|a| a.service != "kms") {
                return Err(format!("{t}: `kms_key_id` must be a KMS key ARN, got `{k}`"));
            }
        }
        validate_tags(t, &args.tags)?;
        Ok(args)
    }
}

/// The provider of [`LogGroup`].
#[derive(Debug, Clone)]
pub struct LogGroupProvider {
    aws: Aws,
}

/// (region, name) of a log group id: an ARN or a bare name.
async fn locate_group(
    aws: &Aws,
    ctx: Context<'_>,
    id: &str,
    inputs: &Value,
) -> Result<(String, String), ProviderError> {
    if let Some(a) = parse_arn(id) {
        let name = a.resource.strip_prefix("log-group:").map(|n| n.strip_suffix(":*").unwrap_or(n));
        return match name {
            Some(n) if a.service == "logs" && !n.is_empty() => Ok((a.region.to_string(), n.to_string())),
            _ => Err(invalid(ctx, format!("`{id}` is not a log group ARN"))),
        };
    }
    if id.is_empty() {
        return Err(invalid(ctx, "empty log group id"));
    }
    let region = aws.region(inputs.get("region").and_then(Value::as_str)).await.map_err(|e| invalid(ctx, e))?;
    Ok((region, id.to_string()))
}

impl LogGroupProvider {
    pub fn new(aws: &Aws) -> LogGroupProvider {
        LogGroupProvider { aws: aws.clone() }
    }

    /// The log group and its `cairn:urn` tag.
    async fn observe(
        &self,
        ctx: Context<'_>,
        region: &str,
        name: &str,
    ) -> Result<Option<(Observed, Option<String>)>, ProviderError> {
        let logs = self.aws.logs(region).await;
        let mut token = None;
        let group = loop {
            let page = logs
                .describe_log_groups()
                .log_group_name_prefix(name)
                .set_next_token(token)
                .send()
                .await
                .op(LOGS, "DescribeLogGroups")
                .at(ctx)?;
            if let Some(g) = page.log_groups().iter().find(|g| g.log_group_name() == Some(name)) {
                break g.clone();
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(None),
            }
        };
        let arn = group_arn(ctx, &group)?;
        let tags = logs.list_tags_for_resource().resource_arn(&arn).send().await.op(LOGS, "ListTagsForResource");
        let tags: BTreeMap<String, String> =
            found(tags, NOT_FOUND).at(ctx)?.and_then(|o| o.tags().cloned()).unwrap_or_default().into_iter().collect();
        Ok(Some(Self::observed(region, &group, arn, tags)))
    }

    /// A log group as CloudWatch Logs describes it, with its tags, and its `cairn:urn` tag.
    fn observed(
        region: &str,
        group: &aws_sdk_cloudwatchlogs::types::LogGroup,
        arn: String,
        tags: BTreeMap<String, String>,
    ) -> (Observed, Option<String>) {
        let name = group.log_group_name().unwrap_or_default();
        let inputs = json!({
            "name": name,
            "region": region,
            "retention_days": group.retention_in_days(),
            "kms_key_id": group.kms_key_id(),
            "tags": user_tags(tags.clone()),
        });
        let outputs = json!({"arn": arn, "name": name});
        (Observed { id: arn, inputs, outputs }, tags.get(TAG_URN).cloned())
    }

    /// The log groups whose names start with `prefix` in `region`, by name (every page).
    async fn groups_under(
        &self,
        ctx: Context<'_>,
        region: &str,
        prefix: &str,
    ) -> Result<BTreeMap<String, aws_sdk_cloudwatchlogs::types::LogGroup>, ProviderError> {
        let logs = self.aws.logs(region).await;
        let (mut groups, mut token) = (BTreeMap::new(), None);
        loop {
            let mut call = logs.describe_log_groups().set_next_token(token);
            if !prefix.is_empty() {
                call = call.log_group_name_prefix(prefix);
            }
            let page = call.send().await.op(LOGS, "DescribeLogGroups").at(ctx)?;
            for g in page.log_groups() {
                groups.insert(g.log_group_name().unwrap_or_default().to_string(), g.clone());
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(groups),
            }
        }
    }

    async fn set_retention(
        &self,
        ctx: Context<'_>,
        region: &str,
        name: &str,
        days: Option<u32>,
    ) -> Result<(), ProviderError> {
        let logs = self.aws.logs(region).await;
        match days {
            Some(d) => logs
                .put_retention_policy()
                .log_group_name(name)
                .retention_in_days(d as i32)
                .send()
                .await
                .op(LOGS, "PutRetentionPolicy")
                .map(|_| ())
                .at(ctx),
            None => logs
                .delete_retention_policy()
                .log_group_name(name)
                .send()
                .await
                .op(LOGS, "DeleteRetentionPolicy")
                .map(|_| ())
                .at(ctx),
        }
    }
}

/// A log group's ARN (without the `:*` some answers end it with).
fn group_arn(ctx: Context<'_>, group: &aws_sdk_cloudwatchlogs::types::LogGroup) -> Result<String, ProviderError> {
    match (group.log_group_arn(), group.arn()) {
        (Some(a), _) => Ok(a.to_string()),
        (None, Some(a)) => Ok(a.strip_suffix(":*").unwrap_or(a).to_string()),
        (None, None) => Err(invalid(
            ctx,
            format!("CloudWatch Logs reported no ARN for log group `{}`", group.log_group_name().unwrap_or_default()),
        )),
    }
}

/// The longest prefix all of `names` share.
fn common_prefix<'a>(mut names: impl Iterator<Item = &'a str>) -> String {
    let Some(first) = names.next() else { return String::new() };
    let mut prefix = first;
    for n in names {
        let shared = prefix.char_indices().zip(n.chars()).take_while(|((_, a), b)| a == b).count();
        let end = prefix.char_indices().nth(shared).map_or(prefix.len(), |(i, _)| i);
        prefix = &prefix[..end];
    }
    prefix.to_string()
}

#[async_trait::async_trait]
impl Provider for LogGroupProvider {
    fn type_token(&self) -> &'static str {
        LogGroup::TYPE
    }

    fn read_batch(&self) -> usize {
        100
    }

    /// Per region, the groups under the batch's longest common name prefix (one paged
    /// `DescribeLogGroups`; without a common prefix, one call per group), and their tags from
    /// the Tagging API (one call per 100).
    async fn read_many(&self, items: &[ReadItem<'_>]) -> Result<Vec<Option<Observed>>, ProviderError> {
        let mut regions: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            let (region, name) = locate_group(&self.aws, item.ctx, item.id, item.inputs).await?;
            regions.entry(region).or_default().push((i, name));
        }
        let mut seen = vec![None; items.len()];
        for (region, wanted) in regions {
            let ctx = items[wanted[0].0].ctx;
            let prefix = common_prefix(wanted.iter().map(|(_, n)| n.as_str()));
            let mut groups = BTreeMap::new();
            if prefix.len() > 1 || wanted.len() == 1 {
                groups = self.groups_under(ctx, &region, &prefix).await?;
            } else {
                for (_, name) in &wanted {
                    groups.extend(self.groups_under(ctx, &region, name).await?);
                }
            }
            let mut present = Vec::new();
            for (i, name) in wanted {
                if let Some(g) = groups.get(&name) {
                    present.push((i, g, group_arn(ctx, g)?));
                }
            }
            let arns: Vec<String> = present.iter().map(|(_, _, arn)| arn.clone()).collect();
            let mut tags = crate::tagging::tags_of(&self.aws, &region, &arns).await.at(ctx)?;
            for (i, g, arn) in present {
                let these = tags.remove(&arn).unwrap_or_default();
                seen[i] = Some(Self::observed(&region, g, arn, these).0);
            }
        }
        Ok(seen)
    }

    fn identity(&self, inputs: &Value) -> Value {
        json!({"region": inputs.get("region"), "name": inputs.get("name")})
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let args = LogGroupArgs::parse(inputs).map_err(|e| invalid(ctx, e))?;
        let region = self.aws.region(args.region.as_deref()).await.map_err(|e| invalid(ctx, e))?;
        let tags: HashMap<String, String> = all_tags(ctx, &args.tags).into_iter().collect();
        self.aws
            .logs(&region)
            .await
            .create_log_group()
            .log_group_name(&args.name)
            .set_kms_key_id(args.kms_key_id.clone())
            .set_tags(Some(tags))
            .send()
            .await
            .op(LOGS, "CreateLogGroup")
            .at(ctx)?;
        // If this fails, the group exists without retention: the create stays pending, and the
        // next run finds the group (by name and tag) and updates it.
        if args.retention_days.is_some() {
            self.set_retention(ctx, &region, &args.name, args.retention_days).await?;
        }
        let (seen, _) = self
            .observe(ctx, &region, &args.name)
            .await?
            .ok_or_else(|| invalid(ctx, format!("log group `{}` was created but cannot be read back", args.name)))?;
        Ok(Created { id: seen.id, outputs: seen.outputs })
    }

    async fn read(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        let (region, name) = locate_group(&self.aws, ctx, id, inputs).await?;
        Ok(self.observe(ctx, &region, &name).await?.map(|(seen, _)| seen))
    }

    async fn update(&self, ctx: Context<'_>, id: &str, old: &Value, new: &Value) -> Result<Value, ProviderError> {
        let old = LogGroupArgs::parse(old).map_err(|e| invalid(ctx, e))?;
        let new = LogGroupArgs::parse(new).map_err(|e| invalid(ctx, e))?;
        let (region, name) = locate_group(&self.aws, ctx, id, &json!({"region": new.region})).await?;
        if name != new.name {
            return Err(invalid(ctx, format!("{id} cannot be renamed in place; it must be replaced")));
        }
        let logs = self.aws.logs(&region).await;
        if old.retention_days != new.retention_days {
            self.set_retention(ctx, &region, &name, new.retention_days).await?;
        }
        if old.kms_key_id != new.kms_key_id {
            match &new.kms_key_id {
                Some(k) => logs
                    .associate_kms_key()
                    .log_group_name(&name)
                    .kms_key_id(k)
                    .send()
                    .await
                    .op(LOGS, "AssociateKmsKey")
                    .map(|_| ())
                    .at(ctx)?,
                None => logs
                    .disassociate_kms_key()
                    .log_group_name(&name)
                    .send()
                    .await
                    .op(LOGS, "DisassociateKmsKey")
                    .map(|_| ())
                    .at(ctx)?,
            }
        }
        let (seen, _) = self
            .observe(ctx, &region, &name)
            .await?
            .ok_or_else(|| invalid(ctx, format!("{id} no longer exists; refresh, then deploy to create it again")))?;
        let removed: Vec<String> = old.tags.keys().filter(|k| !new.tags.contains_key(*k)).cloned().collect();
        if !removed.is_empty() {
            logs.untag_resource()
                .resource_arn(&seen.id)
                .set_tag_keys(Some(removed))
                .send()
                .await
                .op(LOGS, "UntagResource")
                .at(ctx)?;
        }
        // Always: this also moves the `cairn:urn` tag along with a renamed (aliased) resource.
        logs.tag_resource()
            .resource_arn(&seen.id)
            .set_tags(Some(all_tags(ctx, &new.tags).into_iter().collect()))
            .send()
            .await
            .op(LOGS, "TagResource")
            .at(ctx)?;
        Ok(seen.outputs)
    }

    async fn delete(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<(), ProviderError> {
        let (region, name) = locate_group(&self.aws, ctx, id, inputs).await?;
        let deleted = self
            .aws
            .logs(&region)
            .await
            .delete_log_group()
            .log_group_name(&name)
            .send()
            .await
            .op(LOGS, "DeleteLogGroup");
        gone_ok(deleted, NOT_FOUND).at(ctx)
    }

    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        let Some(name) = identity.get("name").and_then(Value::as_str) else {
            return Ok(None);
        };
        let (region, name) = locate_group(&self.aws, ctx, name, identity).await?;
        Ok(if_tagged_for(ctx, self.observe(ctx, &region, &name).await?))
    }
}

/// A metric filter: log events of a group that match `pattern` become data points of a
/// CloudWatch metric. Changing `region`, `log_group_name` or `name` replaces it; the pattern
/// and the transformation change in place.
///
/// Metric filters cannot be tagged: one is found again by its name, unique within its group.
#[derive(Debug, Clone, Serialize)]
pub struct MetricFilter {
    /// The region; `None`: the region of the `aws` provider configuration chosen for the
    /// resource or its component (see [`crate::Settings`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub log_group_name: Input<String>,
    pub name: String,
    /// A CloudWatch Logs filter pattern; empty matches every event.
    pub pattern: String,
    pub metric_transformation: MetricTransformation,
}

/// The metric a [`MetricFilter`] publishes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricTransformation {
    pub namespace: String,
    pub name: String,
    /// What each match publishes: a number, or a `$field` of the event.
    pub value: String,
    /// Published when nothing matched during a period; `None`: nothing published.
    #[serde(default)]
    pub default_value: Option<f64>,
}

cairn::outputs! {
    /// The outputs of a [`MetricFilter`].
    pub struct MetricFilterOutputs {
        pub name: String,
        pub log_group_name: String,
    }
}

impl Resource for MetricFilter {
    const TYPE: &'static str = "aws:logs:MetricFilter";
    const PROVIDER_INPUTS: &'static [&'static str] = &["region"];
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["region", "log_group_name", "name"];
    type Outputs = MetricFilterOutputs;
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricFilterArgs {
    #[serde(default)]
    region: Option<String>,
    log_group_name: String,
    name: String,
    #[serde(default)]
    pattern: String,
    metric_transformation: MetricTransformation,
}

impl MetricFilterArgs {
    fn parse(inputs: &Value) -> Result<MetricFilterArgs, String> {
        let t = MetricFilter::TYPE;
        let args: MetricFilterArgs = parse_inputs(t, inputs)?;
        validate_group_name(t, "log_group_name", &args.log_group_name)?;
        if args.name.is_empty() || args.name.len() > 512 {
            return Err(format!("{t}: `name` must be 1 to 512 characters"));
        }
        if args.name.contains([':', '*']) {
            return Err(format!("{t}: `name` `{}` may not contain `:` or `*`", args.name));
        }
        if args.pattern.len() > 1024 {
            return Err(format!("{t}: `pattern` must be at most 1024 characters"));
        }
        let m = &args.metric_transformation;
        for (field, v) in [("namespace", &m.namespace), ("name", &m.name)] {
            if v.is_empty() || v.len() > 255 {
                return Err(format!("{t}: `metric_transformation.{field}` must be 1 to 255 characters"));
            }
            if v.contains([':', '*', '$']) {
                return Err(format!("{t}: `metric_transformation.{field}` may not contain `:`, `*` or `$`"));
            }
        }
        if m.value.is_empty() || m.value.len() > 100 {
            return Err(format!("{t}: `metric_transformation.value` must be 1 to 100 characters"));
        }
        if m.default_value.is_some_and(|d| !d.is_finite()) {
            return Err(format!("{t}: `metric_transformation.default_value` must be a finite number"));
        }
        Ok(args)
    }
}

/// (region, log group, filter) of a metric filter id: `[<region>:]<log group>:<filter>`.
async fn locate_filter(
    aws: &Aws,
    ctx: Context<'_>,
    id: &str,
    inputs: &Value,
) -> Result<(String, String, String), ProviderError> {
    let parts: Vec<&str> = id.split(':').collect();
    let (region, group, name) = match parts.as_slice() {
        [r, g, n] => (Some(*r), *g, *n),
        [g, n] => (None, *g, *n),
        _ => return Err(invalid(ctx, format!("`{id}` is not a metric filter id (`<region>:<log group>:<name>`)"))),
    };
    if group.is_empty() || name.is_empty() {
        return Err(invalid(ctx, format!("`{id}` is not a metric filter id (`<region>:<log group>:<name>`)")));
    }
    let region = aws
        .region(region.or_else(|| inputs.get("region").and_then(Value::as_str)))
        .await
        .map_err(|e| invalid(ctx, e))?;
    Ok((region, group.to_string(), name.to_string()))
}

/// The provider of [`MetricFilter`].
#[derive(Debug, Clone)]
pub struct MetricFilterProvider {
    aws: Aws,
}

impl MetricFilterProvider {
    pub fn new(aws: &Aws) -> MetricFilterProvider {
        MetricFilterProvider { aws: aws.clone() }
    }

    async fn observe(
        &self,
        ctx: Context<'_>,
        region: &str,
        group: &str,
        name: &str,
    ) -> Result<Option<Observed>, ProviderError> {
        let logs = self.aws.logs(region).await;
        let mut token = None;
        loop {
            let page = logs
                .describe_metric_filters()
                .log_group_name(group)
                .filter_name_prefix(name)
                .set_next_token(token)
                .send()
                .await
                .op(LOGS, "DescribeMetricFilters");
            let Some(page) = found(page, NOT_FOUND).at(ctx)? else {
                return Ok(None);
            };
            if let Some(f) = page.metric_filters().iter().find(|f| f.filter_name() == Some(name)) {
                let Some(m) = f.metric_transformations().first() else {
                    return Err(invalid(ctx, format!("metric filter `{name}` has no metric transformation")));
                };
                let inputs = json!({
                    "region": region,
                    "log_group_name": group,
                    "name": name,
                    "pattern": f.filter_pattern().unwrap_or_default(),
                    "metric_transformation": MetricTransformation {
                        namespace: m.metric_namespace().to_string(),
                        name: m.metric_name().to_string(),
                        value: m.metric_value().to_string(),
                        default_value: m.default_value(),
                    },
                });
                return Ok(Some(Observed {
                    id: format!("{region}:{group}:{name}"),
                    inputs,
                    outputs: json!({"name": name, "log_group_name": group}),
                }));
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(None),
            }
        }
    }

    async fn put(&self, ctx: Context<'_>, region: &str, args: &MetricFilterArgs) -> Result<(), ProviderError> {
        let m = &args.metric_transformation;
        let transformation = SdkTransformation::builder()
            .metric_namespace(&m.namespace)
            .metric_name(&m.name)
            .metric_value(&m.value)
            .set_default_value(m.default_value)
            .build()
            .map_err(|e| build_error(ctx, "the metric transformation", e))?;
        self.aws
            .logs(region)
            .await
            .put_metric_filter()
            .log_group_name(&args.log_group_name)
            .filter_name(&args.name)
            .filter_pattern(&args.pattern)
            .metric_transformations(transformation)
            .send()
            .await
            .op(LOGS, "PutMetricFilter")
            .map(|_| ())
            .at(ctx)
    }
}

#[async_trait::async_trait]
impl Provider for MetricFilterProvider {
    fn type_token(&self) -> &'static str {
        MetricFilter::TYPE
    }

    fn identity(&self, inputs: &Value) -> Value {
        json!({"region": inputs.get("region"), "log_group_name": inputs.get("log_group_name"), "name": inputs.get("name")})
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let args = MetricFilterArgs::parse(inputs).map_err(|e| invalid(ctx, e))?;
        let region = self.aws.region(args.region.as_deref()).await.map_err(|e| invalid(ctx, e))?;
        // PutMetricFilter overwrites a filter of the same name: refuse to take one over.
        if self.observe(ctx, &region, &args.log_group_name, &args.name).await?.is_some() {
            return Err(invalid(
                ctx,
                format!(
                    "metric filter `{}` already exists on log group `{}` in {region}; import it (id `{region}:{}:{}`)",
                    args.name, args.log_group_name, args.log_group_name, args.name
                ),
            ));
        }
        self.put(ctx, &region, &args).await?;
        Ok(Created {
            id: format!("{region}:{}:{}", args.log_group_name, args.name),
            outputs: json!({"name": args.name, "log_group_name": args.log_group_name}),
        })
    }

    async fn read(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        let (region, group, name) = locate_filter(&self.aws, ctx, id, inputs).await?;
        self.observe(ctx, &region, &group, &name).await
    }

    async fn update(&self, ctx: Context<'_>, id: &str, _old: &Value, new: &Value) -> Result<Value, ProviderError> {
        let args = MetricFilterArgs::parse(new).map_err(|e| invalid(ctx, e))?;
        let (region, group, name) = locate_filter(&self.aws, ctx, id, new).await?;
        if group != args.log_group_name || name != args.name {
            return Err(invalid(ctx, format!("{id} cannot be renamed or moved in place; it must be replaced")));
        }
        self.put(ctx, &region, &args).await?;
        Ok(json!({"name": name, "log_group_name": group}))
    }

    async fn delete(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<(), ProviderError> {
        let (region, group, name) = locate_filter(&self.aws, ctx, id, inputs).await?;
        let deleted = self
            .aws
            .logs(&region)
            .await
            .delete_metric_filter()
            .log_group_name(&group)
            .filter_name(&name)
            .send()
            .await
            .op(LOGS, "DeleteMetricFilter");
        gone_ok(deleted, NOT_FOUND).at(ctx)
    }

    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        let (Some(group), Some(name)) =
            (identity.get("log_group_name").and_then(Value::as_str), identity.get("name").and_then(Value::as_str))
        else {
            return Ok(None);
        };
        let region =
            self.aws.region(identity.get("region").and_then(Value::as_str)).await.map_err(|e| invalid(ctx, e))?;
        Ok(if_unrecorded(ctx, self.observe(ctx, &region, group, name).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_is_checked_against_the_allowed_set() {
        let with = |d: u32| LogGroupArgs::parse(&json!({"name": "/a", "retention_days": d}));
        assert!(with(7).is_ok());
        let e = with(8).unwrap_err();
        assert!(e.contains("`retention_days`") && e.contains("got 8"), "{e}");
    }

    #[test]
    fn log_group_validation_names_the_field() {
        assert!(LogGroupArgs::parse(&json!({"name": ""})).unwrap_err().contains("`name` must not be empty"));
        assert!(LogGroupArgs::parse(&json!({"name": "a:b"})).unwrap_err().contains("`name`"));
        let e = LogGroupArgs::parse(&json!({"name": "a", "kms_key_id": "alias/x"})).unwrap_err();
        assert!(e.contains("`kms_key_id`"), "{e}");
    }

    #[test]
    fn metric_filter_validation_names_the_field() {
        let base = json!({"region": "us-east-1", "log_group_name": "/a", "name": "f", "pattern": "ERROR",
            "metric_transformation": {"namespace": "ns", "name": "m", "value": "1", "default_value": null}});
        assert!(MetricFilterArgs::parse(&base).is_ok());
        let mut bad = base.clone();
        bad["name"] = json!("a:b");
        assert!(MetricFilterArgs::parse(&bad).unwrap_err().contains("`name`"));
        let mut bad = base.clone();
        bad["metric_transformation"]["namespace"] = json!("");
        assert!(MetricFilterArgs::parse(&bad).unwrap_err().contains("`metric_transformation.namespace`"));
    }
}
