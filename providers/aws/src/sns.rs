//! Amazon SNS: `aws:sns:Topic` and `aws:sns:Subscription`.
//!
//! Ids are ARNs (which carry the region). A topic name is unique per account and region, and
//! SNS's `CreateTopic` returns an existing topic of the same name instead of failing, so
//! `create` first looks for one: a topic tagged with this resource's URN (left by a create
//! that crashed) is taken over, any other is an error rather than a silent takeover.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_sns::types::Tag;
use cairn::provider::{Context, Created, Observed, Provider, ProviderError, ReadItem};
use cairn::{Input, Resource};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::client::{
    all_tags, build_error, found, gone_ok, if_tagged_for, if_unrecorded, invalid, parse_arn, parse_inputs, tagged_for,
    user_tags, validate_tags, AtUrn, Aws, AwsError, SdkResultExt, TAG_URN,
};

const SNS: &str = "SNS";
const NOT_FOUND: &[&str] = &["NotFound", "NotFoundException", "ResourceNotFound"];

/// A topic. Changing `name`, `region` or `fifo` replaces it (a FIFO topic's name ends with
/// `.fifo`, so a change of `fifo` is also a change of name, and the two copies coexist).
#[derive(Debug, Clone, Serialize)]
pub struct Topic {
    /// Letters, digits, `-` and `_`, up to 256 characters; FIFO topics end with `.fifo`.
    pub name: Input<String>,
    /// The region; `None`: the region of the `aws` provider configuration chosen for the
    /// resource or its component (see [`crate::Settings`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The sender name of SMS and email messages; empty: none.
    pub display_name: String,
    pub fifo: bool,
    /// Tags besides the `cairn:stack` and `cairn:urn` tags cairn adds.
    pub tags: BTreeMap<String, Input<String>>,
}

impl Topic {
    /// A standard topic without display name or tags.
    pub fn new(name: impl Into<Input<String>>) -> Topic {
        Topic { name: name.into(), region: None, display_name: String::new(), fifo: false, tags: BTreeMap::new() }
    }
}

cairn::outputs! {
    /// The outputs of a [`Topic`].
    pub struct TopicOutputs {
        pub arn: String,
        pub name: String,
    }
}

impl Resource for Topic {
    const TYPE: &'static str = "aws:sns:Topic";
    const PROVIDER_INPUTS: &'static [&'static str] = &["region"];
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["name", "region", "fifo"];
    type Outputs = TopicOutputs;
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicArgs {
    name: String,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    fifo: bool,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

impl TopicArgs {
    fn parse(inputs: &Value) -> Result<TopicArgs, String> {
        let t = Topic::TYPE;
        let args: TopicArgs = parse_inputs(t, inputs)?;
        let base = args.name.strip_suffix(".fifo").unwrap_or(&args.name);
        if args.name.is_empty() {
            return Err(format!("{t}: `name` must not be empty"));
        }
        if args.name.len() > 256 || base.is_empty() {
            return Err(format!("{t}: `name` must be 1 to 256 characters"));
        }
        if !base.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(format!(
                "{t}: `name` `{}` may only hold letters, digits, `-` and `_` (and end with `.fifo`)",
                args.name
            ));
        }
        if args.fifo != args.name.ends_with(".fifo") {
            return Err(format!("{t}: `name` must end with `.fifo` exactly when `fifo` is true"));
        }
        if args.display_name.chars().count() > 100 {
            return Err(format!("{t}: `display_name` must be at most 100 characters"));
        }
        validate_tags(t, &args.tags)?;
        Ok(args)
    }
}

fn tag(k: &str, v: &str) -> Result<Tag, String> {
    Tag::builder().key(k).value(v).build().map_err(|e| e.to_string())
}

/// The provider of [`Topic`].
#[derive(Debug, Clone)]
pub struct TopicProvider {
    aws: Aws,
}

impl TopicProvider {
    pub fn new(aws: &Aws) -> TopicProvider {
        TopicProvider { aws: aws.clone() }
    }

    /// The ARN of the topic named `name` in `region`, if there is one.
    async fn arn_of(&self, region: &str, name: &str) -> Result<Option<String>, AwsError> {
        let sns = self.aws.sns(region).await;
        let mut token = None;
        loop {
            let page = sns.list_topics().set_next_token(token).send().await.op(SNS, "ListTopics")?;
            for t in page.topics() {
                if let Some(arn) = t.topic_arn() {
                    if parse_arn(arn).is_some_and(|a| a.resource == name) {
                        return Ok(Some(arn.to_string()));
                    }
                }
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(None),
            }
        }
    }

    /// The ARN a topic id stands for: an ARN, or a bare name in the inputs' region.
    async fn resolve(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<Option<String>, ProviderError> {
        if parse_arn(id).is_some() {
            return Ok(Some(id.to_string()));
        }
        if id.is_empty() {
            return Err(invalid(ctx, "empty topic id"));
        }
        let region =
            self.aws.region(inputs.get("region").and_then(Value::as_str)).await.map_err(|e| invalid(ctx, e))?;
        self.arn_of(&region, id).await.at(ctx)
    }

    async fn tags(&self, region: &str, arn: &str) -> Result<BTreeMap<String, String>, AwsError> {
        let out = self
            .aws
            .sns(region)
            .await
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .op(SNS, "ListTagsForResource")?;
        Ok(out.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect())
    }

    /// The topic and its `cairn:urn` tag.
    async fn observe(&self, ctx: Context<'_>, arn: &str) -> Result<Option<(Observed, Option<String>)>, ProviderError> {
        let Some(attrs) = self.attributes(ctx, arn).await? else {
            return Ok(None);
        };
        let region = parse_arn(arn).map(|a| a.region.to_string()).unwrap_or_default();
        let tags = found(self.tags(&region, arn).await, NOT_FOUND).at(ctx)?.unwrap_or_default();
        Ok(Some(Self::observed(arn, &attrs, tags)))
    }

    /// The topic's attributes; `None` when it is gone.
    async fn attributes(&self, ctx: Context<'_>, arn: &str) -> Result<Option<HashMap<String, String>>, ProviderError> {
        let a = parse_arn(arn).ok_or_else(|| invalid(ctx, format!("`{arn}` is not an SNS topic ARN")))?;
        let sns = self.aws.sns(a.region).await;
        let attrs = sns.get_topic_attributes().topic_arn(arn).send().await.op(SNS, "GetTopicAttributes");
        Ok(found(attrs, NOT_FOUND).at(ctx)?.map(|a| a.attributes().cloned().unwrap_or_default()))
    }

    /// A topic from its attributes and tags, and its `cairn:urn` tag.
    fn observed(
        arn: &str,
        attrs: &HashMap<String, String>,
        tags: BTreeMap<String, String>,
    ) -> (Observed, Option<String>) {
        let (region, name) = parse_arn(arn).map(|a| (a.region.to_string(), a.resource.to_string())).unwrap_or_default();
        let inputs = json!({
            "name": name,
            "region": region,
            "display_name": attrs.get("DisplayName").cloned().unwrap_or_default(),
            "fifo": attrs.get("FifoTopic").is_some_and(|v| v == "true"),
            "tags": user_tags(tags.clone()),
        });
        let outputs = json!({"arn": arn, "name": name});
        (Observed { id: arn.to_string(), inputs, outputs }, tags.get(TAG_URN).cloned())
    }

    async fn apply_changes(
        &self,
        ctx: Context<'_>,
        region: &str,
        arn: &str,
        old_display_name: Option<&str>,
        old_tags: &BTreeMap<String, String>,
        new: &TopicArgs,
    ) -> Result<(), ProviderError> {
        let sns = self.aws.sns(region).await;
        if old_display_name != Some(new.display_name.as_str()) {
            sns.set_topic_attributes()
                .topic_arn(arn)
                .attribute_name("DisplayName")
                .attribute_value(&new.display_name)
                .send()
                .await
                .op(SNS, "SetTopicAttributes")
                .at(ctx)?;
        }
        let removed: Vec<String> = old_tags.keys().filter(|k| !new.tags.contains_key(*k)).cloned().collect();
        if !removed.is_empty() {
            sns.untag_resource()
                .resource_arn(arn)
                .set_tag_keys(Some(removed))
                .send()
                .await
                .op(SNS, "UntagResource")
                .at(ctx)?;
        }
        // Always: this also moves the `cairn:urn` tag along with a renamed (aliased) resource.
        let tags = all_tags(ctx, &new.tags)
            .iter()
            .map(|(k, v)| tag(k, v))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| build_error(ctx, "tags", e))?;
        sns.tag_resource().resource_arn(arn).set_tags(Some(tags)).send().await.op(SNS, "TagResource").at(ctx)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Provider for TopicProvider {
    fn type_token(&self) -> &'static str {
        Topic::TYPE
    }

    fn read_batch(&self) -> usize {
        100
    }

    /// Each topic's attributes (SNS reads them one topic at a time), and the tags of all of a
    /// region's from the Tagging API (one call per 100).
    async fn read_many(&self, items: &[ReadItem<'_>]) -> Result<Vec<Option<Observed>>, ProviderError> {
        let mut attributes = Vec::with_capacity(items.len());
        let mut regions: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for item in items {
            let arn = self.resolve(item.ctx, item.id, item.inputs).await?;
            let attrs = match &arn {
                Some(arn) => self.attributes(item.ctx, arn).await?,
                None => None,
            };
            if let (Some(arn), Some(_)) = (&arn, &attrs) {
                let region = parse_arn(arn).map(|a| a.region.to_string()).unwrap_or_default();
                regions.entry(region).or_default().push(arn.clone());
            }
            attributes.push(arn.zip(attrs));
        }
        let mut tags = BTreeMap::new();
        for (region, arns) in regions {
            tags.extend(crate::tagging::tags_of(&self.aws, &region, &arns).await.at(items[0].ctx)?);
        }
        Ok(attributes
            .into_iter()
            .map(|seen| {
                seen.map(|(arn, attrs)| {
                    let these = tags.remove(&arn).unwrap_or_default();
                    Self::observed(&arn, &attrs, these).0
                })
            })
            .collect())
    }

    fn identity(&self, inputs: &Value) -> Value {
        json!({"region": inputs.get("region"), "name": inputs.get("name")})
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let args = TopicArgs::parse(inputs).map_err(|e| invalid(ctx, e))?;
        let region = self.aws.region(args.region.as_deref()).await.map_err(|e| invalid(ctx, e))?;
        if let Some(arn) = self.arn_of(&region, &args.name).await.at(ctx)? {
            // CreateTopic would silently return this topic: take it over only if it is ours.
            let (seen, urn) = self.observe(ctx, &arn).await?.ok_or_else(|| invalid(ctx, format!("{arn} vanished")))?;
            if !tagged_for(ctx, urn.as_deref()) {
                return Err(invalid(
                    ctx,
                    format!(
                        "SNS topic `{}` already exists in {region} ({arn}) and is not managed by this resource{}",
                        args.name,
                        urn.map(|u| format!(" (it belongs to `{u}`)")).unwrap_or_default()
                    ),
                ));
            }
            let old_tags: BTreeMap<String, String> =
                serde_json::from_value(seen.inputs["tags"].clone()).unwrap_or_default();
            let old_display = seen.inputs["display_name"].as_str().map(str::to_string);
            self.apply_changes(ctx, &region, &arn, old_display.as_deref(), &old_tags, &args).await?;
            return Ok(Created { id: arn, outputs: seen.outputs });
        }
        let tags = all_tags(ctx, &args.tags)
            .iter()
            .map(|(k, v)| tag(k, v))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| build_error(ctx, "tags", e))?;
        let mut call = self.aws.sns(&region).await.create_topic().name(&args.name).set_tags(Some(tags));
        if !args.display_name.is_empty() {
            call = call.attributes("DisplayName", &args.display_name);
        }
        if args.fifo {
            call = call.attributes("FifoTopic", "true");
        }
        let out = call.send().await.op(SNS, "CreateTopic").at(ctx)?;
        let arn = out.topic_arn().ok_or_else(|| invalid(ctx, "SNS CreateTopic returned no topic ARN"))?.to_string();
        Ok(Created { outputs: json!({"arn": arn, "name": args.name}), id: arn })
    }

    async fn read(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        let Some(arn) = self.resolve(ctx, id, inputs).await? else {
            return Ok(None);
        };
        Ok(self.observe(ctx, &arn).await?.map(|(seen, _)| seen))
    }

    async fn update(&self, ctx: Context<'_>, id: &str, old: &Value, new: &Value) -> Result<Value, ProviderError> {
        let old = TopicArgs::parse(old).map_err(|e| invalid(ctx, e))?;
        let new = TopicArgs::parse(new).map_err(|e| invalid(ctx, e))?;
        let a = parse_arn(id).ok_or_else(|| invalid(ctx, format!("`{id}` is not an SNS topic ARN")))?;
        if a.resource != new.name || old.fifo != new.fifo {
            return Err(invalid(ctx, format!("{id} cannot be renamed or change `fifo` in place; it must be replaced")));
        }
        self.apply_changes(ctx, a.region, id, Some(old.display_name.as_str()), &old.tags, &new).await?;
        Ok(json!({"arn": id, "name": new.name}))
    }

    async fn delete(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<(), ProviderError> {
        let Some(arn) = self.resolve(ctx, id, inputs).await? else {
            return Ok(());
        };
        let region = parse_arn(&arn).map(|a| a.region.to_string()).unwrap_or_default();
        let deleted = self.aws.sns(&region).await.delete_topic().topic_arn(&arn).send().await.op(SNS, "DeleteTopic");
        gone_ok(deleted, NOT_FOUND).at(ctx)
    }

    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        let Some(name) = identity.get("name").and_then(Value::as_str) else {
            return Ok(None);
        };
        let Some(arn) = self.resolve(ctx, name, identity).await? else {
            return Ok(None);
        };
        Ok(if_tagged_for(ctx, self.observe(ctx, &arn).await?))
    }
}

/// A subscription of an email address or HTTPS endpoint to a topic. Every property replaces
/// it when changed. The endpoint's owner must confirm it (AWS sends the confirmation
/// request); cairn does not wait for that.
#[derive(Debug, Clone, Serialize)]
pub struct Subscription {
    /// The topic's ARN (its region is the subscription's).
    pub topic_arn: Input<String>,
    pub protocol: Protocol,
    /// An email address, or an `https://` URL.
    pub endpoint: Input<String>,
}

/// How a subscription is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    #[serde(rename = "email")]
    Email,
    #[serde(rename = "https")]
    Https,
}

cairn::outputs! {
    /// The outputs of a [`Subscription`].
    pub struct SubscriptionOutputs {
        pub arn: String,
    }
}

impl Resource for Subscription {
    const TYPE: &'static str = "aws:sns:Subscription";
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["topic_arn", "protocol", "endpoint"];
    type Outputs = SubscriptionOutputs;
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscriptionArgs {
    topic_arn: String,
    protocol: String,
    endpoint: String,
}

impl SubscriptionArgs {
    fn parse(inputs: &Value) -> Result<(SubscriptionArgs, String), String> {
        let t = Subscription::TYPE;
        let args: SubscriptionArgs = parse_inputs(t, inputs)?;
        let region = match parse_arn(&args.topic_arn) {
            Some(a) if a.service == "sns" && !a.region.is_empty() => a.region.to_string(),
            _ => return Err(format!("{t}: `topic_arn` `{}` is not an SNS topic ARN", args.topic_arn)),
        };
        match args.protocol.as_str() {
            "email" => {
                let at = args.endpoint.find('@');
                if !at.is_some_and(|i| i > 0 && i + 1 < args.endpoint.len()) {
                    return Err(format!("{t}: `endpoint` `{}` is not an email address", args.endpoint));
                }
            }
            "https" => {
                if !args.endpoint.starts_with("https://") || args.endpoint.len() <= "https://".len() {
                    return Err(format!("{t}: `endpoint` `{}` must be an https:// URL", args.endpoint));
                }
            }
            other => return Err(format!("{t}: `protocol` must be email or https, got `{other}`")),
        }
        Ok((args, region))
    }
}

/// The provider of [`Subscription`].
#[derive(Debug, Clone)]
pub struct SubscriptionProvider {
    aws: Aws,
}

impl SubscriptionProvider {
    pub fn new(aws: &Aws) -> SubscriptionProvider {
        SubscriptionProvider { aws: aws.clone() }
    }

    async fn observe(&self, ctx: Context<'_>, arn: &str) -> Result<Option<Observed>, ProviderError> {
        let a = parse_arn(arn).ok_or_else(|| invalid(ctx, format!("`{arn}` is not an SNS subscription ARN")))?;
        let sns = self.aws.sns(a.region).await;
        let got =
            sns.get_subscription_attributes().subscription_arn(arn).send().await.op(SNS, "GetSubscriptionAttributes");
        let Some(got) = found(got, NOT_FOUND).at(ctx)? else {
            return Ok(None);
        };
        let attrs = got.attributes().cloned().unwrap_or_default();
        let get = |k: &str| attrs.get(k).cloned().unwrap_or_default();
        Ok(Some(Observed {
            id: arn.to_string(),
            inputs: json!({"topic_arn": get("TopicArn"), "protocol": get("Protocol"), "endpoint": get("Endpoint")}),
            outputs: json!({"arn": arn}),
        }))
    }
}

#[async_trait::async_trait]
impl Provider for SubscriptionProvider {
    fn type_token(&self) -> &'static str {
        Subscription::TYPE
    }

    fn identity(&self, inputs: &Value) -> Value {
        json!({"topic_arn": inputs.get("topic_arn"), "protocol": inputs.get("protocol"), "endpoint": inputs.get("endpoint")})
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let (args, region) = SubscriptionArgs::parse(inputs).map_err(|e| invalid(ctx, e))?;
        let out = self
            .aws
            .sns(&region)
            .await
            .subscribe()
            .topic_arn(&args.topic_arn)
            .protocol(&args.protocol)
            .endpoint(&args.endpoint)
            .return_subscription_arn(true)
            .send()
            .await
            .op(SNS, "Subscribe")
            .at(ctx)?;
        let arn = out.subscription_arn().ok_or_else(|| invalid(ctx, "SNS Subscribe returned no ARN"))?.to_string();
        Ok(Created { outputs: json!({"arn": arn}), id: arn })
    }

    async fn read(&self, ctx: Context<'_>, id: &str, _inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        self.observe(ctx, id).await
    }

    async fn update(&self, ctx: Context<'_>, id: &str, old: &Value, new: &Value) -> Result<Value, ProviderError> {
        // Every property forces replacement: there is nothing to change in place.
        let (old, _) = SubscriptionArgs::parse(old).map_err(|e| invalid(ctx, e))?;
        let (new, _) = SubscriptionArgs::parse(new).map_err(|e| invalid(ctx, e))?;
        if old != new {
            return Err(invalid(ctx, format!("{id} cannot change in place; it must be replaced")));
        }
        Ok(json!({"arn": id}))
    }

    async fn delete(&self, ctx: Context<'_>, id: &str, _inputs: &Value) -> Result<(), ProviderError> {
        let a = parse_arn(id).ok_or_else(|| invalid(ctx, format!("`{id}` is not an SNS subscription ARN")))?;
        let sns = self.aws.sns(a.region).await;
        gone_ok(sns.unsubscribe().subscription_arn(id).send().await.op(SNS, "Unsubscribe"), NOT_FOUND).at(ctx)
    }

    /// Subscriptions cannot be tagged: found by (topic, protocol, endpoint), which SNS keeps
    /// unique.
    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        let Ok((args, region)) = SubscriptionArgs::parse(identity) else {
            return Ok(None);
        };
        let sns = self.aws.sns(&region).await;
        let mut token = None;
        loop {
            let page = sns
                .list_subscriptions_by_topic()
                .topic_arn(&args.topic_arn)
                .set_next_token(token)
                .send()
                .await
                .op(SNS, "ListSubscriptionsByTopic");
            let Some(page) = found(page, NOT_FOUND).at(ctx)? else {
                return Ok(None);
            };
            for s in page.subscriptions() {
                if s.protocol() == Some(args.protocol.as_str()) && s.endpoint() == Some(args.endpoint.as_str()) {
                    if let Some(arn) = s.subscription_arn().filter(|a| parse_arn(a).is_some()) {
                        if let Some(seen) = if_unrecorded(ctx, self.observe(ctx, arn).await?) {
                            return Ok(Some(seen));
                        }
                    }
                }
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_validation_names_the_field() {
        let err = |v: Value| TopicArgs::parse(&v).unwrap_err();
        assert!(err(json!({"name": ""})).contains("`name` must not be empty"));
        assert!(err(json!({"name": "a b"})).contains("`name`"));
        assert!(err(json!({"name": "a.fifo"})).contains("`.fifo`"));
        assert!(err(json!({"name": "a", "fifo": true})).contains("`.fifo`"));
        assert!(TopicArgs::parse(&json!({"name": "a.fifo", "fifo": true})).is_ok());
    }

    #[test]
    fn subscription_validation_names_the_field() {
        let topic = "arn:aws:sns:us-east-1:123456789012:t";
        let err = |p: &str, e: &str| {
            SubscriptionArgs::parse(&json!({"topic_arn": topic, "protocol": p, "endpoint": e})).unwrap_err()
        };
        assert!(err("sms", "+100").contains("`protocol`"));
        assert!(err("email", "nobody").contains("`endpoint`"));
        assert!(err("https", "http://x").contains("`endpoint`"));
        let bad = SubscriptionArgs::parse(&json!({"topic_arn": "t", "protocol": "email", "endpoint": "a@b"}));
        assert!(bad.unwrap_err().contains("`topic_arn`"));
        let (_, region) =
            SubscriptionArgs::parse(&json!({"topic_arn": topic, "protocol": "email", "endpoint": "a@b.c"})).unwrap();
        assert_eq!(region, "us-east-1");
    }
}
