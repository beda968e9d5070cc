//! The AWS inventory behind `cairn state orphans`: every resource tagged `cairn:stack=<stack>`,
//! from the Resource Groups Tagging API (`GetResources`), in every region the state's resources
//! are in, the configured default region, and the regions the user names.
//!
//! The Tagging API sees the resources of most services, but not all: among the types of this
//! crate, SNS subscriptions and Route 53 record sets cannot be tagged at all, and Auto Scaling
//! groups are not listed by it. Route 53 resources are global and listed in `us-east-1`.
//!
//! A group's instances carry its tags (cairn's propagate, so that an instance shows which
//! stack and group it serves) and AWS's `aws:autoscaling:groupName`: they are the group's, not
//! orphans of their own. Each is listed as its group (the ARN prefix of a group, ending with its
//! name), once: a group that state knows is then no orphan, and a group that state does not
//! know, which the Tagging API cannot list, shows through its instances.

use std::collections::BTreeSet;

use aws_sdk_resourcegroupstagging::types::TagFilter;
use cairn::provider::{Inventory, Listed, ProviderError};
use cairn::state::StackState;
use serde_json::Value;

use crate::client::{parse_arn, Aws, SdkResultExt, ROUTE53_REGION, TAG_STACK, TAG_URN};

/// The tag AWS puts on the instances an Auto Scaling group launches.
const GROUP_NAME_TAG: &str = "aws:autoscaling:groupName";

/// What an instance of group `name` is listed as: its group, by an ARN that ends like the
/// group's (`autoScalingGroupName/<name>`; the group's id in state is its name).
fn group_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:autoscaling:{region}:{account}:autoScalingGroup:*:autoScalingGroupName/{name}")
}

/// Lists the resources tagged for a stack (see the module's documentation).
#[derive(Debug, Clone)]
pub struct TaggedResources {
    aws: Aws,
}

impl TaggedResources {
    pub fn new(aws: &Aws) -> TaggedResources {
        TaggedResources { aws: aws.clone() }
    }

    /// The regions to look in: the state's, the named ones, the default one; `us-east-1` too
    /// when the state holds global (Route 53) resources.
    async fn regions(&self, state: &StackState, scopes: &[String]) -> BTreeSet<String> {
        let mut regions: BTreeSet<String> = scopes.iter().filter(|s| !s.is_empty()).cloned().collect();
        for r in state.resources.values().chain(state.retired.values()) {
            if !r.type_token.starts_with("aws:") {
                continue;
            }
            match r.inputs.get("region").and_then(Value::as_str) {
                Some(region) if !region.is_empty() => {
                    regions.insert(region.to_string());
                }
                _ if r.type_token.starts_with("aws:route53:") => {
                    regions.insert(ROUTE53_REGION.to_string());
                }
                _ => {}
            }
        }
        if let Ok(region) = self.aws.region(None).await {
            regions.insert(region);
        }
        regions
    }
}

#[async_trait::async_trait]
impl Inventory for TaggedResources {
    fn name(&self) -> &'static str {
        "AWS (Resource Groups Tagging API)"
    }

    async fn list(&self, stack: &str, state: &StackState, scopes: &[String]) -> Result<Vec<Listed>, ProviderError> {
        let regions = self.regions(state, scopes).await;
        if regions.is_empty() {
            return Err(ProviderError::new(
                "no region to look in: the state has no AWS resources and no default region is set \
                 (AWS_REGION, or name one with --scope)",
            ));
        }
        let mut listed = Vec::new();
        for region in regions {
            let client = self.aws.tagging(&region).await;
            let mut token: Option<String> = None;
            loop {
                let page = client
                    .get_resources()
                    .tag_filters(TagFilter::builder().key(TAG_STACK).values(stack).build())
                    .set_pagination_token(token.take())
                    .send()
                    .await
                    .op("ResourceGroupsTagging", "GetResources")
                    .map_err(|e| ProviderError::new(format!("in {region}: {e}")))?;
                for mapping in page.resource_tag_mapping_list() {
                    let Some(arn) = mapping.resource_arn() else { continue };
                    let tag = |key: &str| mapping.tags().iter().find(|t| t.key() == key).map(|t| t.value().to_string());
                    let urn = tag(TAG_URN);
                    let id = match (tag(GROUP_NAME_TAG), parse_arn(arn)) {
                        (Some(group), Some(a)) => group_arn(a.region, a.account, &group),
                        _ => arn.to_string(),
                    };
                    listed.push(Listed { id, urn });
                }
                match page.pagination_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_string()),
                    _ => break,
                }
            }
        }
        Ok(listed)
    }
}

/// The tags of many resources of one region (ARNs), by ARN, from the Tagging API
/// (`GetResources`, 100 ARNs a call): what a batched read uses instead of one
/// `ListTagsForResource` per resource. A resource it does not list has no tags.
pub(crate) async fn tags_of(
    aws: &Aws,
    region: &str,
    arns: &[String],
) -> Result<std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>, crate::client::AwsError> {
    let client = aws.tagging(region).await;
    let mut tags = std::collections::BTreeMap::new();
    for chunk in arns.chunks(100) {
        let mut token: Option<String> = None;
        loop {
            let page = client
                .get_resources()
                .set_resource_arn_list(Some(chunk.to_vec()))
                .set_pagination_token(token.take())
                .send()
                .await
                .op("ResourceGroupsTagging", "GetResources")?;
            for m in page.resource_tag_mapping_list() {
                let Some(arn) = m.resource_arn() else { continue };
                let these = m.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect();
                tags.insert(arn.to_string(), these);
            }
            match page.pagination_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
    }
    Ok(tags)
}
