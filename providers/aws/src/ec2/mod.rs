//! Amazon EC2: networking ([`network`]), what instances are launched from ([`compute`]), and
//! the availability zones of a region ([`zones`]).
//!
//! EC2 ids (`vpc-…`, `sg-…`, `lt-…`) do not carry their region, so every EC2 resource reads
//! its region from its inputs (`region`), or from the configured default for imports of a
//! bare id. Every taggable EC2 resource is tagged at creation (`TagSpecifications`, so it is
//! never untagged, not even for a moment), which is how `find` recognises a resource whose
//! creation was not recorded: by the `cairn:urn` tag, with a `tag:cairn:urn` filter.

pub mod compute;
pub mod network;
pub mod zones;

pub use compute::*;
pub use network::*;
pub use zones::*;

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use cairn::provider::Context;

use crate::client::{all_tags, Aws, AwsError, SdkResultExt, TAG_URN};

pub(crate) const EC2: &str = "EC2";

/// Tags for `TagSpecifications` of a create call: the user's tags plus cairn's.
pub(crate) fn tag_spec(
    ctx: Context<'_>,
    resource_type: ResourceType,
    user: &BTreeMap<String, String>,
) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource_type)
        .set_tags(Some(all_tags(ctx, user).into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()))
        .build()
}

/// EC2 tags as a map.
pub(crate) fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect()
}

/// The filter that finds the resources tagged with this resource's URN.
pub(crate) fn urn_filter(ctx: Context<'_>) -> Filter {
    Filter::builder().name(format!("tag:{TAG_URN}")).values(ctx.urn.as_str()).build()
}

/// A filter on one value.
pub(crate) fn filter(name: &str, value: impl Into<String>) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// Brings the user tags of `id` from `old` to `new` (cairn's own tags are left alone).
pub(crate) async fn sync_tags(
    aws: &Aws,
    region: &str,
    id: &str,
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Result<(), AwsError> {
    let ec2 = aws.ec2(region).await;
    let gone: Vec<Tag> = old.keys().filter(|k| !new.contains_key(*k)).map(|k| Tag::builder().key(k).build()).collect();
    if !gone.is_empty() {
        ec2.delete_tags().resources(id).set_tags(Some(gone)).send().await.op(EC2, "DeleteTags")?;
    }
    let set: Vec<Tag> = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    if !set.is_empty() {
        ec2.create_tags().resources(id).set_tags(Some(set)).send().await.op(EC2, "CreateTags")?;
    }
    Ok(())
}

/// Calls `call` until it succeeds or fails with an error whose code is not in `codes`,
/// backing off from 200 ms (doubling, at most 5 s between calls) for at most `limit` in all;
/// then returns the last answer, error or not. Never retries forever.
pub(crate) async fn retry_while<T, F, Fut>(
    codes: &[&str],
    limit: std::time::Duration,
    mut call: F,
) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, AwsError>>,
{
    let started = std::time::Instant::now();
    let mut delay = std::time::Duration::from_millis(200);
    loop {
        match call().await {
            Err(e) if e.is(codes) && started.elapsed() + delay <= limit => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
            answer => return answer,
        }
    }
}

/// A fresh client token for one create call (at most 64 ASCII characters, as EC2 requires).
/// The SDK's retries of that call send the same token, so a request that reached AWS but
/// whose answer was lost does not create a second resource.
pub(crate) fn client_token(ctx: Context<'_>) -> String {
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // `RandomState` is seeded randomly per process: two hashers give two random 64-bit halves.
    let half = |salt: u8| {
        std::collections::hash_map::RandomState::new().hash_one((salt, ctx.urn.as_str(), nanos, n, std::process::id()))
    };
    format!("cairn-{:016x}{:016x}", half(0), half(1))
}

/// The user's tags plus cairn's, as a map (the target of [`sync_tags`]).
pub(crate) fn all_tag_map(ctx: Context<'_>, user: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    all_tags(ctx, user).into_iter().collect()
}

/// Standard base64 (with padding), as EC2 wants user data.
pub(crate) fn base64_encode(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Decodes standard base64 (padding optional, whitespace ignored); `None` if it is not base64.
pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let body: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD_NO_PAD.decode(body.trim_end_matches('=')).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for (plain, encoded) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg==")] {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
            assert_eq!(base64_decode(encoded).unwrap(), plain.as_bytes());
        }
        let script = "#!/bin/sh\necho héllo > /tmp/x\n";
        assert_eq!(base64_decode(&base64_encode(script.as_bytes())).unwrap(), script.as_bytes());
        assert_eq!(base64_decode("not base64!"), None);
    }
}
