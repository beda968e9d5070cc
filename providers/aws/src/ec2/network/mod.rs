//! EC2 networking: VPC, subnets, internet gateway, route tables, routes and their subnet
//! associations, security groups and their rules, VPC endpoints.
//!
//! Ids are EC2's (`vpc-…`, `subnet-…`, `sg-…`, `sgr-…`, `vpce-…`), read back in the resource's
//! `region` (or the configured default, for imports of a bare id). The taggable resources are
//! tagged at creation and found again by their `cairn:urn` tag; routes and route table
//! associations cannot be tagged and are found by what identifies them (route table and
//! destination; subnet).
//!
//! Security groups have *restricted egress*: AWS gives every new group a rule that allows all
//! outbound traffic; cairn revokes it right after creating the group, so that a group's
//! egress is exactly what its [`SecurityGroupEgressRule`]s declare. Rules are resources of
//! their own ([`SecurityGroupIngressRule`], [`SecurityGroupEgressRule`]), so changing a rule
//! never replaces its group.
//!
//! Deletes that AWS refuses while something still depends on the resource
//! (`DependencyViolation`: for example the network interfaces of a deleted interface endpoint,
//! which linger for a while) are retried with backoff for a bounded time (five minutes unless
//! the provider is built `with_wait`), then fail with an error that says what is in the way.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{
    AttributeBooleanValue, IpPermission, IpRange, Ipv6Range, PrefixListId, ResourceType, SecurityGroupRule,
    SecurityGroupRuleRequest, SecurityGroupRuleUpdate, UserIdGroupPair, VpcAttributeName, VpcEndpointType,
};
use cairn::provider::{Context, Created, Observed, Provider, ProviderError, ReadItem};
use cairn::{Input, Resource};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{all_tag_map, client_token, filter, retry_while, sync_tags, tag_map, tag_spec, urn_filter, EC2};
use crate::client::{
    adoptable, by_region, first_tagged_for, found, gone_ok, if_unrecorded, invalid, parse_inputs, region_of, user_tags,
    validate_tags, AtUrn, Aws, AwsError, SdkResultExt, TAG_URN,
};
use crate::managed::{
    create_retrying, no_retries, same_set_or, settle, unchanged, Attempt, CreateError, CONSISTENCY_WAIT,
};

/// How long deletes wait for dependencies to go away, and VPC endpoints for their state,
/// unless a provider is built `with_wait`.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(300);

const VPC_NOT_FOUND: &[&str] = &["InvalidVpcID.NotFound"];
const SUBNET_NOT_FOUND: &[&str] = &["InvalidSubnetID.NotFound"];
const IGW_NOT_FOUND: &[&str] = &["InvalidInternetGatewayID.NotFound"];
const RTB_NOT_FOUND: &[&str] = &["InvalidRouteTableID.NotFound"];
const GROUP_NOT_FOUND: &[&str] = &["InvalidGroup.NotFound"];
const RULE_NOT_FOUND: &[&str] = &["InvalidSecurityGroupRuleId.NotFound"];
const ENDPOINT_NOT_FOUND: &[&str] = &["InvalidVpcEndpointId.NotFound", "InvalidVpcEndpoint.NotFound"];
const DEPENDENCY: &[&str] = &["DependencyViolation"];

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// The id a [`create_retrying`] got: made, or found by its tag after a lost answer.
fn made_or_found(ctx: Context<'_>, made: Result<Attempt<String>, CreateError>) -> Result<String, ProviderError> {
    match made {
        Ok(Attempt::Made(id) | Attempt::Found(id)) => Ok(id),
        Err(CreateError::Aws(e)) => Err(e.at(ctx)),
        Err(CreateError::Other(e)) => Err(e),
    }
}

/// How many resources a batched read asks EC2 for in one call: the values of one filter.
const READ_BATCH: usize = 200;

/// A filter on several values (a filter, unlike a list of ids, does not fail the whole call
/// when one of them no longer exists).
fn filter_any(name: &str, values: impl IntoIterator<Item = String>) -> aws_sdk_ec2::types::Filter {
    aws_sdk_ec2::types::Filter::builder().name(name).set_values(Some(values.into_iter().collect())).build()
}

/// Checks that `value` is an EC2 id with `prefix` (e.g. `vpc-`).
fn check_id(t: &str, field: &str, value: &str, prefix: &str) -> Result<(), String> {
    let rest = value.strip_prefix(prefix).unwrap_or_default();
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!("{t}: `{field}` must be an id like `{prefix}0123abcd`, got `{value}`"));
    }
    Ok(())
}

/// Checks an IPv4 CIDR block (`a.b.c.d/n`) whose prefix length is within `lengths`.
fn check_cidr4(t: &str, field: &str, value: &str, lengths: std::ops::RangeInclusive<u8>) -> Result<(), String> {
    let ok = value.split_once('/').is_some_and(|(addr, len)| {
        addr.parse::<Ipv4Addr>().is_ok() && len.parse::<u8>().is_ok_and(|n| lengths.contains(&n))
    });
    if !ok {
        return Err(format!(
            "{t}: `{field}` must be an IPv4 CIDR block with a prefix length of {} to {}, got `{value}`",
            lengths.start(),
            lengths.end()
        ));
    }
    Ok(())
}

/// Checks an IPv6 CIDR block (`addr/n`).
fn check_cidr6(t: &str, field: &str, value: &str) -> Result<(), String> {
    let ok = value
        .split_once('/')
        .is_some_and(|(addr, len)| addr.parse::<Ipv6Addr>().is_ok() && len.parse::<u8>().is_ok_and(|n| n <= 128));
    if !ok {
        return Err(format!("{t}: `{field}` must be an IPv6 CIDR block, got `{value}`"));
    }
    Ok(())
}

/// The error of a delete still refused after waiting `wait` for its dependencies to go.
fn still_in_use(ctx: Context<'_>, id: &str, wait: Duration, e: AwsError) -> ProviderError {
    if e.is(DEPENDENCY) {
        invalid(
            ctx,
            format!(
                "{id} is still in use after waiting {}s for its dependencies to be deleted \
                 (remove what uses it, then deploy again): {e}",
                wait.as_secs()
            ),
        )
    } else {
        e.at(ctx)
    }
}

/// Whether `inputs` read back agree with `identity` on `keys`; a key `identity` leaves out (or
/// null) matches anything.
fn same_identity(identity: &Value, inputs: &Value, keys: &[&str]) -> bool {
    keys.iter().all(|k| identity.get(k).is_none_or(Value::is_null) || identity.get(k) == inputs.get(k))
}

/// The `cairn:urn` tag among EC2 tags.
fn urn_tag(tags: &BTreeMap<String, String>) -> Option<String> {
    tags.get(TAG_URN).cloned()
}

fn boolean(value: bool) -> AttributeBooleanValue {
    AttributeBooleanValue::builder().value(value).build()
}

macro_rules! provider_with_wait {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name {
            aws: Aws,
            wait: Duration,
        }

        impl $name {
            pub fn new(aws: &Aws) -> $name {
                $name { aws: aws.clone(), wait: DEFAULT_WAIT }
            }

            /// The same provider, waiting at most `wait` for dependencies (and states) instead of
            /// [`DEFAULT_WAIT`].
            pub fn with_wait(mut self, wait: Duration) -> $name {
                self.wait = wait;
                self
            }
        }
    };
}

mod endpoints;
mod routes;
mod security;
mod vpc;

pub use endpoints::*;
pub use routes::*;
pub use security::*;
pub use vpc::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_and_id_checks_name_the_field() {
        assert!(check_cidr4("t", "cidr_block", "10.0.0.0/16", 16..=28).is_ok());
        assert!(check_cidr4("t", "cidr_block", "10.0.0.0/8", 16..=28).unwrap_err().contains("`cidr_block`"));
        assert!(check_cidr4("t", "cidr_block", "10.0.0/16", 16..=28).is_err());
        assert!(check_cidr6("t", "cidr_ipv6", "2001:db8::/32").is_ok());
        assert!(check_cidr6("t", "cidr_ipv6", "10.0.0.0/8").unwrap_err().contains("`cidr_ipv6`"));
        assert!(check_id("t", "vpc_id", "vpc-0a1b", "vpc-").is_ok());
        assert!(check_id("t", "vpc_id", "subnet-0a1b", "vpc-").unwrap_err().contains("`vpc_id`"));
        assert!(check_id("t", "vpc_id", "vpc-", "vpc-").is_err());
    }
}
