//! Amazon CloudWatch metrics: `aws:cloudwatch:MetricAlarm` and `aws:cloudwatch:Dashboard`.
//! (CloudWatch Logs is [`crate::logs`].)
//!
//! An alarm's id is its ARN (`arn:aws:cloudwatch:<region>:<account>:alarm:<name>`), which
//! carries its region; a bare alarm name is accepted for imports, in the resource's `region`.
//! `PutMetricAlarm` is an upsert (it replaces an existing alarm of the same name), so `create`
//! first looks for one: an alarm tagged with this resource's URN (left by a create that
//! crashed) is taken over, any other is an error rather than a silent overwrite. Tags given to
//! `PutMetricAlarm` only apply when it creates the alarm; later changes go through
//! `TagResource` and `UntagResource`.
//!
//! A dashboard's id is its name: dashboard names are unique in the account (dashboards are
//! global; `region` only chooses the endpoint that manages them), and the dashboard's ARN has
//! no region. `PutDashboard` cannot tag, so cairn does not tag dashboards: `find` recognises a
//! dashboard by its unique name, and `create` refuses to overwrite a dashboard that already
//! exists (import it instead).

use std::collections::BTreeMap;

use aws_sdk_cloudwatch::types::{AlarmType, ComparisonOperator, Dimension, MetricAlarm as SdkAlarm, Statistic, Tag};
use cairn::provider::{Context, Created, Observed, Provider, ProviderError};
use cairn::{Input, Resource};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::client::{
    adoptable, all_tags, found, gone_ok, if_unrecorded, invalid, parse_arn, parse_inputs, same_json_or, tagged_for,
    user_tags, validate_json, validate_tags, AtUrn, Aws, AwsError, SdkResultExt, TAG_URN,
};

const CLOUDWATCH: &str = "CloudWatch";
const NOT_FOUND: &[&str] = &["ResourceNotFound", "ResourceNotFoundException"];

/// The statistics an alarm can use besides extended ones (percentiles and the like).
pub const STATISTICS: &[&str] = &["SampleCount", "Average", "Sum", "Minimum", "Maximum"];

/// The comparison operators of a metric alarm with a static threshold.
pub const COMPARISON_OPERATORS: &[&str] =
    &["GreaterThanOrEqualToThreshold", "GreaterThanThreshold", "LessThanThreshold", "LessThanOrEqualToThreshold"];

/// How an alarm treats missing data points.
pub const TREAT_MISSING_DATA: &[&str] = &["breaching", "notBreaching", "ignore", "missing"];

/// The prefixes of extended statistics (`p99`, `tm(10%:90%)`, `IQM`, …).
const EXTENDED_PREFIXES: &[&str] = &["p", "tm", "tc", "ts", "wm", "PR", "TM", "TC", "TS", "WM", "IQM"];

/// A CloudWatch alarm on one metric with a static threshold. Changing `name` or `region`
/// replaces it; everything else changes in place (`PutMetricAlarm` rewrites the alarm).
#[derive(Debug, Clone, Serialize)]
pub struct MetricAlarm {
    /// The region; `None`: the region of the `aws` provider configuration chosen for the
    /// resource or its component (see [`crate::Settings`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// 1 to 255 characters, unique in the account and region.
    pub name: String,
    /// The metric's namespace, e.g. `AWS/EC2`.
    pub namespace: String,
    pub metric_name: String,
    /// The metric's dimensions (at most 30).
    pub dimensions: BTreeMap<String, Input<String>>,
    /// One of [`STATISTICS`], or an extended statistic such as `p99` or `tm(10%:90%)`.
    pub statistic: String,
    /// Seconds per data point: 10, 20, 30, or a multiple of 60.
    pub period: u32,
    /// How many recent periods are evaluated (at least 1).
    pub evaluation_periods: u32,
    /// How many of those must breach for the alarm to fire; `None`: all of them.
    pub datapoints_to_alarm: Option<u32>,
    pub threshold: f64,
    /// One of [`COMPARISON_OPERATORS`].
    pub comparison_operator: String,
    /// One of [`TREAT_MISSING_DATA`]; AWS's default is `missing`.
    pub treat_missing_data: String,
    /// What to notify (ARNs, e.g. SNS topics) when the alarm enters the `ALARM` state.
    pub alarm_actions: Vec<Input<String>>,
    /// What to notify when it returns to `OK`.
    pub ok_actions: Vec<Input<String>>,
    /// What to notify when it enters `INSUFFICIENT_DATA`.
    pub insufficient_data_actions: Vec<Input<String>>,
    /// Empty: none.
    pub description: String,
    /// Tags besides the `cairn:stack` and `cairn:urn` tags cairn adds.
    pub tags: BTreeMap<String, Input<String>>,
}

impl MetricAlarm {
    /// An alarm on the `statistic` of a metric over one `period` (in seconds), firing when it
    /// is at least `threshold`; missing data is `missing`, and there are no actions yet.
    pub fn new(
        name: &str,
        namespace: &str,
        metric_name: &str,
        statistic: &str,
        period: u32,
        threshold: f64,
    ) -> MetricAlarm {
        MetricAlarm {
            region: None,
            name: name.to_string(),
            namespace: namespace.to_string(),
            metric_name: metric_name.to_string(),
            dimensions: BTreeMap::new(),
            statistic: statistic.to_string(),
            period,
            evaluation_periods: 1,
            datapoints_to_alarm: None,
            threshold,
            comparison_operator: "GreaterThanOrEqualToThreshold".into(),
            treat_missing_data: "missing".into(),
            alarm_actions: Vec::new(),
            ok_actions: Vec::new(),
            insufficient_data_actions: Vec::new(),
            description: String::new(),
            tags: BTreeMap::new(),
        }
    }
}

cairn::outputs! {
    /// The outputs of a [`MetricAlarm`].
    pub struct MetricAlarmOutputs {
        pub arn: String,
        pub name: String,
    }
}

impl Resource for MetricAlarm {
    const TYPE: &'static str = "aws:cloudwatch:MetricAlarm";
    const PROVIDER_INPUTS: &'static [&'static str] = &["region"];
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["name", "region"];
    type Outputs = MetricAlarmOutputs;
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlarmArgs {
    #[serde(default)]
    region: Option<String>,
    name: String,
    namespace: String,
    metric_name: String,
    #[serde(default)]
    dimensions: BTreeMap<String, String>,
    statistic: String,
    period: u32,
    evaluation_periods: u32,
    #[serde(default)]
    datapoints_to_alarm: Option<u32>,
    threshold: f64,
    comparison_operator: String,
    #[serde(default = "default_treat_missing_data")]
    treat_missing_data: String,
    #[serde(default)]
    alarm_actions: Vec<String>,
    #[serde(default)]
    ok_actions: Vec<String>,
    #[serde(default)]
    insufficient_data_actions: Vec<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

fn default_treat_missing_data() -> String {
    "missing".into()
}

fn validate_alarm_name(t: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > 255 {
        return Err(format!("{t}: `name` must be 1 to 255 characters"));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(format!("{t}: `name` `{name}` must not hold control characters"));
    }
    Ok(())
}

impl AlarmArgs {
    fn parse(inputs: &Value) -> Result<AlarmArgs, String> {
        let t = MetricAlarm::TYPE;
        let args: AlarmArgs = parse_inputs(t, inputs)?;
        validate_alarm_name(t, &args.name)?;
        if args.namespace.is_empty() || args.namespace.chars().count() > 255 {
            return Err(format!("{t}: `namespace` must be 1 to 255 characters"));
        }
        if args.metric_name.is_empty() || args.metric_name.chars().count() > 255 {
            return Err(format!("{t}: `metric_name` must be 1 to 255 characters"));
        }
        if args.dimensions.len() > 30 {
            return Err(format!("{t}: `dimensions` may hold at most 30 dimensions"));
        }
        for (k, v) in &args.dimensions {
            if k.is_empty() || k.chars().count() > 255 || v.is_empty() || v.chars().count() > 1024 {
                return Err(format!(
                    "{t}: `dimensions` `{k}` needs a name of 1 to 255 and a value of 1 to 1024 characters"
                ));
            }
        }
        if !STATISTICS.contains(&args.statistic.as_str())
            && !EXTENDED_PREFIXES.iter().any(|p| args.statistic.starts_with(p))
        {
            return Err(format!(
                "{t}: `statistic` must be one of {STATISTICS:?} or an extended statistic such as `p99`, got `{}`",
                args.statistic
            ));
        }
        if !(matches!(args.period, 10 | 20 | 30) || (args.period >= 60 && args.period.is_multiple_of(60))) {
            return Err(format!("{t}: `period` must be 10, 20, 30 or a multiple of 60 seconds, got {}", args.period));
        }
        if args.evaluation_periods == 0 {
            return Err(format!("{t}: `evaluation_periods` must be at least 1"));
        }
        if let Some(d) = args.datapoints_to_alarm {
            if d == 0 || d > args.evaluation_periods {
                return Err(format!("{t}: `datapoints_to_alarm` must be 1 to `evaluation_periods`, got {d}"));
            }
        }
        if !args.threshold.is_finite() {
            return Err(format!("{t}: `threshold` must be a finite number"));
        }
        if !COMPARISON_OPERATORS.contains(&args.comparison_operator.as_str()) {
            return Err(format!(
                "{t}: `comparison_operator` must be one of {COMPARISON_OPERATORS:?}, got `{}`",
                args.comparison_operator
            ));
        }
        if !TREAT_MISSING_DATA.contains(&args.treat_missing_data.as_str()) {
            return Err(format!(
                "{t}: `treat_missing_data` must be one of {TREAT_MISSING_DATA:?}, got `{}`",
                args.treat_missing_data
            ));
        }
        for (field, actions) in [
            ("alarm_actions", &args.alarm_actions),
            ("ok_actions", &args.ok_actions),
            ("insufficient_data_actions", &args.insufficient_data_actions),
        ] {
            if actions.len() > 5 {
                return Err(format!("{t}: `{field}` may hold at most 5 actions"));
            }
            if let Some(a) = actions.iter().find(|a| parse_arn(a).is_none()) {
                return Err(format!("{t}: `{field}` holds `{a}`, which is not an ARN"));
            }
        }
        if args.description.chars().count() > 1024 {
            return Err(format!("{t}: `description` must be at most 1024 characters"));
        }
        validate_tags(t, &args.tags)?;
        Ok(args)
    }
}

/// `observed` in the order of `prior` when both hold the same elements: AWS does not promise
/// to keep the order of action lists.
pub(crate) fn same_set_or(observed: Vec<String>, prior: Option<&Value>) -> Vec<String> {
    let prior: Option<Vec<String>> = prior.and_then(|p| serde_json::from_value(p.clone()).ok());
    match prior {
        Some(p) => {
            let (mut a, mut b) = (observed.clone(), p.clone());
            a.sort();
            b.sort();
            if a == b {
                p
            } else {
                observed
            }
        }
        None => observed,
    }
}

/// The provider of [`MetricAlarm`].
#[derive(Debug, Clone)]
pub struct MetricAlarmProvider {
    aws: Aws,
}

impl MetricAlarmProvider {
    pub fn new(aws: &Aws) -> MetricAlarmProvider {
        MetricAlarmProvider { aws: aws.clone() }
    }

    /// (region, name) of an alarm id: an ARN, or a bare name in the inputs' region.
    async fn locate(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<(String, String), ProviderError> {
        if let Some(a) = parse_arn(id) {
            return match a.resource.strip_prefix("alarm:") {
                Some(n) if a.service == "cloudwatch" && !n.is_empty() => Ok((a.region.to_string(), n.to_string())),
                _ => Err(invalid(ctx, format!("`{id}` is not a CloudWatch alarm ARN"))),
            };
        }
        if id.is_empty() {
            return Err(invalid(ctx, "empty alarm id"));
        }
        let region =
            self.aws.region(inputs.get("region").and_then(Value::as_str)).await.map_err(|e| invalid(ctx, e))?;
        Ok((region, id.to_string()))
    }

    async fn describe(&self, region: &str, name: &str) -> Result<Option<SdkAlarm>, AwsError> {
        let out = self
            .aws
            .cloudwatch(region)
            .await
            .describe_alarms()
            .alarm_names(name)
            .alarm_types(AlarmType::MetricAlarm)
            .send()
            .await
            .op(CLOUDWATCH, "DescribeAlarms")?;
        Ok(out.metric_alarms().iter().find(|a| a.alarm_name() == Some(name)).cloned())
    }

    /// The alarm, its tags and its `cairn:urn` tag. `prior` (the inputs cairn has) only
    /// decides the order of action lists that AWS reports in another order.
    async fn observe(
        &self,
        ctx: Context<'_>,
        region: &str,
        name: &str,
        prior: &Value,
    ) -> Result<Option<(Observed, BTreeMap<String, String>)>, ProviderError> {
        let Some(alarm) = self.describe(region, name).await.at(ctx)? else {
            return Ok(None);
        };
        let arn = alarm
            .alarm_arn()
            .ok_or_else(|| invalid(ctx, format!("CloudWatch reported no ARN for alarm `{name}`")))?
            .to_string();
        let tags = self.aws.cloudwatch(region).await.list_tags_for_resource().resource_arn(&arn).send().await;
        let tags: BTreeMap<String, String> = found(tags.op(CLOUDWATCH, "ListTagsForResource"), NOT_FOUND)
            .at(ctx)?
            .map(|o| o.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))).collect())
            .unwrap_or_default();
        let statistic = match (alarm.statistic(), alarm.extended_statistic()) {
            (Some(s), _) => s.as_str().to_string(),
            (None, Some(e)) => e.to_string(),
            (None, None) => String::new(),
        };
        let dimensions: BTreeMap<String, String> =
            alarm.dimensions().iter().filter_map(|d| Some((d.name()?.to_string(), d.value()?.to_string()))).collect();
        let actions = |field: &str, observed: &[String]| same_set_or(observed.to_vec(), prior.get(field));
        let inputs = json!({
            "region": region,
            "name": name,
            "namespace": alarm.namespace().unwrap_or_default(),
            "metric_name": alarm.metric_name().unwrap_or_default(),
            "dimensions": dimensions,
            "statistic": statistic,
            "period": alarm.period(),
            "evaluation_periods": alarm.evaluation_periods(),
            "datapoints_to_alarm": alarm.datapoints_to_alarm(),
            "threshold": alarm.threshold(),
            "comparison_operator": alarm.comparison_operator().map(|c| c.as_str()),
            "treat_missing_data": alarm.treat_missing_data().unwrap_or("missing"),
            "alarm_actions": actions("alarm_actions", alarm.alarm_actions()),
            "ok_actions": actions("ok_actions", alarm.ok_actions()),
            "insufficient_data_actions": actions("insufficient_data_actions", alarm.insufficient_data_actions()),
            "description": alarm.alarm_description().unwrap_or_default(),
            "tags": user_tags(tags.clone()),
        });
        let outputs = json!({"arn": arn, "name": name});
        Ok(Some((Observed { id: arn, inputs, outputs }, tags)))
    }

    /// Creates or rewrites the alarm (`tags` only count when it is created).
    async fn put(&self, ctx: Context<'_>, region: &str, args: &AlarmArgs) -> Result<(), ProviderError> {
        let dimensions = args.dimensions.iter().map(|(k, v)| Dimension::builder().name(k).value(v).build()).collect();
        let tags = all_tags(ctx, &args.tags).into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
        let mut call = self
            .aws
            .cloudwatch(region)
            .await
            .put_metric_alarm()
            .alarm_name(&args.name)
            .namespace(&args.namespace)
            .metric_name(&args.metric_name)
            .set_dimensions(Some(dimensions))
            .period(args.period as i32)
            .evaluation_periods(args.evaluation_periods as i32)
            .set_datapoints_to_alarm(args.datapoints_to_alarm.map(|d| d as i32))
            .threshold(args.threshold)
            .comparison_operator(ComparisonOperator::from(args.comparison_operator.as_str()))
            .treat_missing_data(&args.treat_missing_data)
            .actions_enabled(true)
            .set_alarm_actions(Some(args.alarm_actions.clone()))
            .set_ok_actions(Some(args.ok_actions.clone()))
            .set_insufficient_data_actions(Some(args.insufficient_data_actions.clone()))
            .set_alarm_description((!args.description.is_empty()).then(|| args.description.clone()))
            .set_tags(Some(tags));
        call = if STATISTICS.contains(&args.statistic.as_str()) {
            call.statistic(Statistic::from(args.statistic.as_str()))
        } else {
            call.extended_statistic(&args.statistic)
        };
        call.send().await.op(CLOUDWATCH, "PutMetricAlarm").at(ctx)?;
        Ok(())
    }

    /// Brings the alarm's user tags from `old` to `new`, and puts cairn's tags on it.
    async fn sync_tags(
        &self,
        ctx: Context<'_>,
        region: &str,
        arn: &str,
        old: &BTreeMap<String, String>,
        new: &BTreeMap<String, String>,
    ) -> Result<(), ProviderError> {
        let cw = self.aws.cloudwatch(region).await;
        let removed: Vec<String> = old.keys().filter(|k| !new.contains_key(*k)).cloned().collect();
        if !removed.is_empty() {
            cw.untag_resource()
                .resource_arn(arn)
                .set_tag_keys(Some(removed))
                .send()
                .await
                .op(CLOUDWATCH, "UntagResource")
                .at(ctx)?;
        }
        // Always: this also moves the `cairn:urn` tag along with a renamed (aliased) resource.
        let tags = all_tags(ctx, new).into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
        cw.tag_resource().resource_arn(arn).set_tags(Some(tags)).send().await.op(CLOUDWATCH, "TagResource").at(ctx)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Provider for MetricAlarmProvider {
    fn type_token(&self) -> &'static str {
        MetricAlarm::TYPE
    }

    fn identity(&self, inputs: &Value) -> Value {
        json!({"region": inputs.get("region"), "name": inputs.get("name")})
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let args = AlarmArgs::parse(inputs).map_err(|e| invalid(ctx, e))?;
        let region = self.aws.region(args.region.as_deref()).await.map_err(|e| invalid(ctx, e))?;
        // PutMetricAlarm would silently overwrite an alarm of this name: take it over only if
        // it is ours (a create that crashed after creating it).
        let existing = self.observe(ctx, &region, &args.name, inputs).await?;
        if let Some((seen, tags)) = &existing {
            let urn = tags.get(TAG_URN);
            if !tagged_for(ctx, urn.map(String::as_str)) {
                return Err(invalid(
                    ctx,
                    format!(
                        "CloudWatch alarm `{}` already exists in {region} ({}) and is not managed by this resource{}",
                        args.name,
                        seen.id,
                        urn.map(|u| format!(" (it belongs to `{u}`)")).unwrap_or_default()
                    ),
                ));
            }
        }
        self.put(ctx, &region, &args).await?;
        let (seen, _) = self
            .observe(ctx, &region, &args.name, inputs)
            .await?
            .ok_or_else(|| invalid(ctx, format!("alarm `{}` was put but cannot be read back", args.name)))?;
        if let Some((_, tags)) = existing {
            self.sync_tags(ctx, &region, &seen.id, &user_tags(tags), &args.tags).await?;
        }
        Ok(Created { id: seen.id, outputs: seen.outputs })
    }

    async fn read(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        let (region, name) = self.locate(ctx, id, inputs).await?;
        Ok(self.observe(ctx, &region, &name, inputs).await?.map(|(seen, _)| seen))
    }

    async fn update(&self, ctx: Context<'_>, id: &str, old: &Value, new: &Value) -> Result<Value, ProviderError> {
        let old = AlarmArgs::parse(old).map_err(|e| invalid(ctx, e))?;
        let new_args = AlarmArgs::parse(new).map_err(|e| invalid(ctx, e))?;
        let (region, name) = self.locate(ctx, id, new).await?;
        if name != new_args.name {
            return Err(invalid(ctx, format!("{id} cannot be renamed in place; it must be replaced")));
        }
        self.put(ctx, &region, &new_args).await?;
        let (seen, _) = self
            .observe(ctx, &region, &name, new)
            .await?
            .ok_or_else(|| invalid(ctx, format!("{id} no longer exists; refresh, then deploy to create it again")))?;
        self.sync_tags(ctx, &region, &seen.id, &old.tags, &new_args.tags).await?;
        Ok(seen.outputs)
    }

    async fn delete(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<(), ProviderError> {
        let (region, name) = self.locate(ctx, id, inputs).await?;
        let deleted = self
            .aws
            .cloudwatch(&region)
            .await
            .delete_alarms()
            .alarm_names(&name)
            .send()
            .await
            .op(CLOUDWATCH, "DeleteAlarms");
        gone_ok(deleted, NOT_FOUND).at(ctx)
    }

    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        let Some(name) = identity.get("name").and_then(Value::as_str) else {
            return Ok(None);
        };
        let (region, name) = self.locate(ctx, name, identity).await?;
        Ok(self
            .observe(ctx, &region, &name, &Value::Null)
            .await?
            .filter(|(seen, tags)| adoptable(ctx, &seen.id, tags.get(TAG_URN).map(String::as_str)))
            .map(|(seen, _)| seen))
    }
}

/// A CloudWatch dashboard. Changing `name` or `region` replaces it, deleting the old one
/// first (dashboard names are unique in the account, whatever the region); the body changes
/// in place.
#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    /// The region; `None`: the region of the `aws` provider configuration chosen for the
    /// resource or its component (see [`crate::Settings`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Letters, digits, `-` and `_`, 1 to 255 characters.
    pub name: String,
    /// The dashboard's JSON document (a JSON object, usually with `widgets`). AWS may reformat
    /// it; a reformatting that means the same is not drift.
    pub body: Input<String>,
}

impl Dashboard {
    /// A dashboard with this JSON body.
    pub fn new(name: &str, body: impl Into<Input<String>>) -> Dashboard {
        Dashboard { region: None, name: name.to_string(), body: body.into() }
    }
}

cairn::outputs! {
    /// The outputs of a [`Dashboard`].
    pub struct DashboardOutputs {
        pub arn: String,
        pub name: String,
    }
}

impl Resource for Dashboard {
    const TYPE: &'static str = "aws:cloudwatch:Dashboard";
    const PROVIDER_INPUTS: &'static [&'static str] = &["region"];
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["name", "region"];
    const DELETE_BEFORE_REPLACE: bool = true;
    type Outputs = DashboardOutputs;
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct DashboardArgs {
    #[serde(default)]
    region: Option<String>,
    name: String,
    body: String,
}

fn validate_dashboard_name(t: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 255 {
        return Err(format!("{t}: `name` must be 1 to 255 characters"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(format!("{t}: `name` `{name}` may only hold letters, digits, `-` and `_`"));
    }
    Ok(())
}

impl DashboardArgs {
    fn parse(inputs: &Value) -> Result<DashboardArgs, String> {
        let t = Dashboard::TYPE;
        let args: DashboardArgs = parse_inputs(t, inputs)?;
        validate_dashboard_name(t, &args.name)?;
        validate_json(t, "body", &args.body)?;
        if !serde_json::from_str::<Value>(&args.body).is_ok_and(|v| v.is_object()) {
            return Err(format!("{t}: `body` must be a JSON object"));
        }
        Ok(args)
    }
}

/// The provider of [`Dashboard`].
#[derive(Debug, Clone)]
pub struct DashboardProvider {
    aws: Aws,
}

impl DashboardProvider {
    pub fn new(aws: &Aws) -> DashboardProvider {
        DashboardProvider { aws: aws.clone() }
    }

    async fn region(&self, ctx: Context<'_>, inputs: &Value) -> Result<String, ProviderError> {
        self.aws.region(inputs.get("region").and_then(Value::as_str)).await.map_err(|e| invalid(ctx, e))
    }

    /// The dashboard; `prior` is the body cairn has, kept when AWS's means the same.
    async fn observe(
        &self,
        ctx: Context<'_>,
        region: &str,
        name: &str,
        prior: Option<&str>,
    ) -> Result<Option<Observed>, ProviderError> {
        if name.is_empty() {
            return Err(invalid(ctx, "empty dashboard id"));
        }
        let got = self.aws.cloudwatch(region).await.get_dashboard().dashboard_name(name).send().await;
        let Some(got) = found(got.op(CLOUDWATCH, "GetDashboard"), NOT_FOUND).at(ctx)? else {
            return Ok(None);
        };
        let body = same_json_or(got.dashboard_body().unwrap_or_default().to_string(), prior);
        let arn = got.dashboard_arn().unwrap_or_default();
        Ok(Some(Observed {
            id: name.to_string(),
            inputs: json!({"region": region, "name": name, "body": body}),
            outputs: json!({"arn": arn, "name": name}),
        }))
    }

    async fn put(&self, ctx: Context<'_>, region: &str, args: &DashboardArgs) -> Result<(), ProviderError> {
        self.aws
            .cloudwatch(region)
            .await
            .put_dashboard()
            .dashboard_name(&args.name)
            .dashboard_body(&args.body)
            .send()
            .await
            .op(CLOUDWATCH, "PutDashboard")
            .at(ctx)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Provider for DashboardProvider {
    fn type_token(&self) -> &'static str {
        Dashboard::TYPE
    }

    fn identity(&self, inputs: &Value) -> Value {
        json!({"region": inputs.get("region"), "name": inputs.get("name")})
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let args = DashboardArgs::parse(inputs).map_err(|e| invalid(ctx, e))?;
        let region = self.aws.region(args.region.as_deref()).await.map_err(|e| invalid(ctx, e))?;
        // PutDashboard would silently overwrite a dashboard of this name. A dashboard left by
        // a create that crashed is recovered by `find` before any new create.
        if let Some(seen) = self.observe(ctx, &region, &args.name, None).await? {
            return Err(invalid(
                ctx,
                format!(
                    "CloudWatch dashboard `{}` already exists ({}); import it to manage it",
                    args.name, seen.outputs["arn"]
                ),
            ));
        }
        self.put(ctx, &region, &args).await?;
        let seen = self
            .observe(ctx, &region, &args.name, Some(&args.body))
            .await?
            .ok_or_else(|| invalid(ctx, format!("dashboard `{}` was put but cannot be read back", args.name)))?;
        Ok(Created { id: seen.id, outputs: seen.outputs })
    }

    async fn read(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        let region = self.region(ctx, inputs).await?;
        self.observe(ctx, &region, id, inputs.get("body").and_then(Value::as_str)).await
    }

    async fn update(&self, ctx: Context<'_>, id: &str, _old: &Value, new: &Value) -> Result<Value, ProviderError> {
        let args = DashboardArgs::parse(new).map_err(|e| invalid(ctx, e))?;
        if id != args.name {
            return Err(invalid(ctx, format!("dashboard `{id}` cannot be renamed in place; it must be replaced")));
        }
        let region = self.aws.region(args.region.as_deref()).await.map_err(|e| invalid(ctx, e))?;
        self.put(ctx, &region, &args).await?;
        let seen = self
            .observe(ctx, &region, id, Some(&args.body))
            .await?
            .ok_or_else(|| invalid(ctx, format!("dashboard `{id}` was put but cannot be read back")))?;
        Ok(seen.outputs)
    }

    async fn delete(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<(), ProviderError> {
        let region = self.region(ctx, inputs).await?;
        let deleted = self
            .aws
            .cloudwatch(&region)
            .await
            .delete_dashboards()
            .dashboard_names(id)
            .send()
            .await
            .op(CLOUDWATCH, "DeleteDashboards");
        gone_ok(deleted, NOT_FOUND).at(ctx)
    }

    /// Dashboards are not tagged: found by their name, unique in the account.
    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        let Some(name) = identity.get("name").and_then(Value::as_str) else {
            return Ok(None);
        };
        let region = self.region(ctx, identity).await?;
        Ok(if_unrecorded(ctx, self.observe(ctx, &region, name, None).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm() -> Value {
        serde_json::to_value(
            MetricAlarm::new("cpu", "AWS/EC2", "CPUUtilization", "Average", 60, 80.0).in_region("us-east-1"),
        )
        .unwrap()
    }

    #[test]
    fn alarm_validation_names_the_field() {
        assert!(AlarmArgs::parse(&alarm()).is_ok());
        let err = |field: &str, v: Value| {
            let mut a = alarm();
            a[field] = v;
            AlarmArgs::parse(&a).unwrap_err()
        };
        assert!(err("name", json!("")).contains("`name`"));
        assert!(err("statistic", json!("Median")).contains("`statistic`"));
        assert!(AlarmArgs::parse(&{
            let mut a = alarm();
            a["statistic"] = json!("p99");
            a
        })
        .is_ok());
        assert!(err("period", json!(45)).contains("`period`"));
        assert!(err("evaluation_periods", json!(0)).contains("`evaluation_periods`"));
        assert!(err("datapoints_to_alarm", json!(2)).contains("`datapoints_to_alarm`"));
        assert!(err("comparison_operator", json!(">")).contains("`comparison_operator`"));
        assert!(err("treat_missing_data", json!("zero")).contains("`treat_missing_data`"));
        assert!(err("alarm_actions", json!(["topic"])).contains("`alarm_actions`"));
        assert!(err("bogus", json!(1)).contains("bogus"));
    }

    #[test]
    fn dashboard_validation_names_the_field() {
        let ok = json!({"region": "us-east-1", "name": "ops", "body": "{\"widgets\": []}"});
        assert!(DashboardArgs::parse(&ok).is_ok());
        let mut bad = ok.clone();
        bad["name"] = json!("a b");
        assert!(DashboardArgs::parse(&bad).unwrap_err().contains("`name`"));
        let mut bad = ok.clone();
        bad["body"] = json!("{widgets");
        assert!(DashboardArgs::parse(&bad).unwrap_err().contains("`body`"));
        bad["body"] = json!("[]");
        assert!(DashboardArgs::parse(&bad).unwrap_err().contains("`body` must be a JSON object"));
    }

    #[test]
    fn action_lists_keep_the_prior_order() {
        let prior = json!(["b", "a"]);
        assert_eq!(same_set_or(vec!["a".into(), "b".into()], Some(&prior)), ["b", "a"]);
        assert_eq!(same_set_or(vec!["a".into()], Some(&prior)), ["a"]);
    }
}
