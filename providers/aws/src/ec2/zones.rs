//! `aws:ec2:AvailabilityZones`: the availability zones of a region, looked up, so that a stack
//! spreads over "the first three zones of the region" instead of hard-coding their names
//! (which differ per region and, for the same letter, per account).
//!
//! A lookup creates nothing: its id is the region, and its outputs are what it found. Reading
//! it again (refresh) looks again, so a zone that became unavailable shows as drift of the
//! outputs, which its dependents then plan against.

use aws_sdk_ec2::types::{AvailabilityZoneOptInStatus, AvailabilityZoneState};
use cairn::provider::{Context, Created, Observed, Provider, ProviderError};
use cairn::Resource;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::EC2;
use crate::client::{if_unrecorded, invalid, parse_inputs, AtUrn, Aws, SdkResultExt};

/// The available zones of a region, sorted by name: the region's own zones, or also the Local
/// and Wavelength Zones the account opted in to; without `exclude_names`; at most `limit`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AvailabilityZones {
    /// The region; `None`: the `aws` provider configuration's (see [`crate::Settings`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Also the opted-in Local and Wavelength Zones (AWS's `zone-type` other than
    /// `availability-zone`); `false`: only the region's own availability zones.
    pub include_opt_in: bool,
    /// Zones to leave out by name, e.g. one that lacks an instance type.
    pub exclude_names: Vec<String>,
    /// At most this many (the first by name); `None`: every one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

impl AvailabilityZones {
    /// The first `n` availability zones of the configured region.
    pub fn first(n: usize) -> AvailabilityZones {
        AvailabilityZones { limit: Some(n), ..AvailabilityZones::default() }
    }
}

cairn::outputs! {
    /// The outputs of an [`AvailabilityZones`] lookup.
    pub struct AvailabilityZonesOutputs {
        /// e.g. `["eu-west-1a", "eu-west-1b"]`.
        pub names: Vec<String>,
        /// The account-independent ids of the same zones, e.g. `["euw1-az1", "euw1-az2"]`.
        pub zone_ids: Vec<String>,
    }
}

impl Resource for AvailabilityZones {
    const TYPE: &'static str = "aws:ec2:AvailabilityZones";
    const PROVIDER_INPUTS: &'static [&'static str] = &["region"];
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["region"];
    /// What a lookup finds may change with every look.
    const UPDATABLE_OUTPUTS: &'static [&'static str] = &["names", "zone_ids"];
    type Outputs = AvailabilityZonesOutputs;
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ZonesArgs {
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    include_opt_in: bool,
    #[serde(default)]
    exclude_names: Vec<String>,
    #[serde(default)]
    limit: Option<usize>,
}

/// The provider of [`AvailabilityZones`].
#[derive(Debug, Clone)]
pub struct AvailabilityZonesProvider {
    aws: Aws,
}

impl AvailabilityZonesProvider {
    pub fn new(aws: &Aws) -> AvailabilityZonesProvider {
        AvailabilityZonesProvider { aws: aws.clone() }
    }

    /// Looks the zones up; an error when fewer than `limit` match (a stack that asks for three
    /// zones must not silently get two).
    async fn look(&self, ctx: Context<'_>, inputs: &Value) -> Result<Observed, ProviderError> {
        let t = AvailabilityZones::TYPE;
        let args: ZonesArgs = parse_inputs(t, inputs).map_err(|e| invalid(ctx, e))?;
        if args.limit == Some(0) {
            return Err(invalid(ctx, format!("{t}: `limit` must be at least 1")));
        }
        let region = self.aws.region(args.region.as_deref()).await.map_err(|e| invalid(ctx, e))?;
        let out = self
            .aws
            .ec2(&region)
            .await
            .describe_availability_zones()
            .all_availability_zones(args.include_opt_in)
            .send()
            .await
            .op(EC2, "DescribeAvailabilityZones")
            .at(ctx)?;
        let mut zones: Vec<(String, String)> = out
            .availability_zones()
            .iter()
            .filter(|z| z.state() == Some(&AvailabilityZoneState::Available))
            .filter(|z| args.include_opt_in || z.zone_type().is_none_or(|t| t == "availability-zone"))
            .filter(|z| z.opt_in_status() != Some(&AvailabilityZoneOptInStatus::NotOptedIn))
            .filter_map(|z| Some((z.zone_name()?.to_string(), z.zone_id().unwrap_or_default().to_string())))
            .filter(|(name, _)| !args.exclude_names.contains(name))
            .collect();
        zones.sort();
        if let Some(limit) = args.limit {
            if zones.len() < limit {
                return Err(invalid(
                    ctx,
                    format!(
                        "{region} has {} available zone(s) matching, fewer than the {limit} asked for",
                        zones.len()
                    ),
                ));
            }
            zones.truncate(limit);
        }
        let (names, ids): (Vec<String>, Vec<String>) = zones.into_iter().unzip();
        let mut declared =
            json!({"region": region, "include_opt_in": args.include_opt_in, "exclude_names": args.exclude_names});
        if let Some(limit) = args.limit {
            declared["limit"] = json!(limit);
        }
        Ok(Observed { id: region, inputs: declared, outputs: json!({"names": names, "zone_ids": ids}) })
    }
}

#[async_trait::async_trait]
impl Provider for AvailabilityZonesProvider {
    fn type_token(&self) -> &'static str {
        AvailabilityZones::TYPE
    }

    fn identity(&self, inputs: &Value) -> Value {
        inputs.clone()
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let seen = self.look(ctx, inputs).await?;
        Ok(Created { id: seen.id, outputs: seen.outputs })
    }

    /// Looks again with the recorded query (an import of a bare region: every zone).
    async fn read(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        let query = if inputs.is_object() { inputs.clone() } else { json!({"region": id}) };
        Ok(Some(self.look(ctx, &query).await?))
    }

    async fn update(&self, ctx: Context<'_>, _id: &str, _old: &Value, new: &Value) -> Result<Value, ProviderError> {
        Ok(self.look(ctx, new).await?.outputs)
    }

    /// Nothing was made.
    async fn delete(&self, _ctx: Context<'_>, _id: &str, _inputs: &Value) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        Ok(if_unrecorded(ctx, Some(self.look(ctx, identity).await?)))
    }
}
