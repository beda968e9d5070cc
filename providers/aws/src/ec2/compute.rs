//! What EC2 instances are launched from: `aws:ec2:KeyPair`, `aws:ec2:LaunchTemplate`, and the
//! read-only `aws:ec2:AmiLookup`.
//!
//! Ids are EC2's (`key-…`, `lt-…`, `ami-…`), which do not carry their region: the region comes
//! from the inputs (`region`), or from the configured default for imports of a bare id.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use aws_sdk_ec2::primitives::Blob;
use aws_sdk_ec2::types::{
    Filter, Image, KeyPairInfo, LaunchTemplateBlockDeviceMappingRequest, LaunchTemplateEbsBlockDeviceRequest,
    LaunchTemplateHttpTokensState, LaunchTemplateIamInstanceProfileSpecificationRequest,
    LaunchTemplateInstanceMetadataEndpointState, LaunchTemplateInstanceMetadataOptionsRequest,
    LaunchTemplateTagSpecificationRequest, RequestLaunchTemplateData, ResourceType, ResponseLaunchTemplateData, Tag,
    VolumeType,
};
use cairn::provider::{Context, Created, Observed, Provider, ProviderError};
use cairn::{Input, Resource};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{base64_decode, base64_encode, filter, sync_tags, tag_map, tag_spec, urn_filter, EC2};
use crate::client::{
    first_tagged_for, found, gone_ok, if_tagged_for, if_unrecorded, invalid, parse_inputs, region_of, tagged_for,
    user_tags, validate_tags, AtUrn, Aws, SdkResultExt, TAG_URN,
};

/// A client token that is the same for the same request: a create or update retried after a
/// crash is then not applied twice (EC2 keeps tokens for a while).
fn client_token(parts: &[&str]) -> String {
    let hash = |salt: u8| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        salt.hash(&mut h);
        parts.hash(&mut h);
        h.finish()
    };
    format!("cairn-{:016x}{:016x}", hash(1), hash(2))
}

fn ec2_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

// ---------------------------------------------------------------------------------------------
// Key pairs

/// An SSH key pair for instances, imported from its public key (cairn never creates or holds a
/// private key). Changing `name`, `region` or `public_key` replaces it; since a name exists
/// only once per region, the old key pair is deleted first. Tags change in place.
#[derive(Debug, Clone, Serialize)]
pub struct KeyPair {
    /// Up to 255 ASCII characters, unique per region.
    pub name: Input<String>,
    /// The region; `None`: the region of the `aws` provider configuration chosen for the
    /// resource or its component (see [`crate::Settings`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The OpenSSH public key line, e.g. `ssh-ed25519 AAAA… comment` (RSA, ED25519 or ECDSA).
    pub public_key: Input<String>,
    /// Tags besides the `cairn:stack` and `cairn:urn` tags cairn adds.
    pub tags: BTreeMap<String, Input<String>>,
}

impl KeyPair {
    /// A key pair without tags.
    pub fn new(name: impl Into<Input<String>>, public_key: impl Into<Input<String>>) -> KeyPair {
        KeyPair { name: name.into(), region: None, public_key: public_key.into(), tags: BTreeMap::new() }
    }
}

cairn::outputs! {
    /// The outputs of a [`KeyPair`].
    pub struct KeyPairOutputs {
        /// `key-…`.
        pub key_pair_id: String,
        /// The name, for a launch template's `key_name`.
        pub name: String,
        /// The fingerprint AWS computed for the public key.
        pub fingerprint: String,
    }
}

impl Resource for KeyPair {
    const TYPE: &'static str = "aws:ec2:KeyPair";
    const PROVIDER_INPUTS: &'static [&'static str] = &["region"];
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["name", "region", "public_key"];
    const DELETE_BEFORE_REPLACE: bool = true;
    type Outputs = KeyPairOutputs;
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyPairArgs {
    name: String,
    #[serde(default)]
    region: Option<String>,
    public_key: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

const KEY_TYPES: &[&str] =
    &["ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"];

/// The key type and base64 body of an OpenSSH public key line (the comment is not part of
/// the key).
fn key_material(text: &str) -> Option<(&str, &str)> {
    let mut parts = text.split_whitespace();
    Some((parts.next()?, parts.next()?))
}

impl KeyPairArgs {
    fn parse(inputs: &Value) -> Result<KeyPairArgs, String> {
        let t = KeyPair::TYPE;
        let args: KeyPairArgs = parse_inputs(t, inputs)?;
        if args.name.is_empty() || args.name.len() > 255 || !args.name.is_ascii() {
            return Err(format!("{t}: `name` must be 1 to 255 ASCII characters"));
        }
        if args.public_key.contains("PRIVATE KEY") {
            return Err(format!("{t}: `public_key` holds a private key; give the public key (the `.pub` file) only"));
        }
        match key_material(&args.public_key) {
            Some((kind, body)) if KEY_TYPES.contains(&kind) && base64_decode(body).is_some_and(|b| !b.is_empty()) => {}
            _ => {
                return Err(format!(
                "{t}: `public_key` must be an OpenSSH public key line (`<type> <base64> [comment]`, type one of {})",
                KEY_TYPES.join(", ")
            ))
            }
        }
        validate_tags(t, &args.tags)?;
        Ok(args)
    }
}

/// The provider of [`KeyPair`]. Its id is the key pair id (`key-…`); a key name is also
/// accepted as an id, for imports.
#[derive(Debug, Clone)]
pub struct KeyPairProvider {
    aws: Aws,
}

impl KeyPairProvider {
    pub fn new(aws: &Aws) -> KeyPairProvider {
        KeyPairProvider { aws: aws.clone() }
    }

    /// The key pairs matching `id` (an id or a name) or the filter, in `region`.
    async fn describe(
        &self,
        ctx: Context<'_>,
        region: &str,
        id: Option<&str>,
        by: Option<Filter>,
    ) -> Result<Vec<KeyPairInfo>, ProviderError> {
        let mut call = self.aws.ec2(region).await.describe_key_pairs().include_public_key(true);
        match id {
            // A filter, not `KeyPairIds`: an unknown id is then no match rather than an error.
            Some(id) if id.starts_with("key-") => call = call.filters(filter("key-pair-id", id)),
            Some(name) => call = call.key_names(name),
            None => {}
        }
        if let Some(f) = by {
            call = call.filters(f);
        }
        let out = found(call.send().await.op(EC2, "DescribeKeyPairs"), &["InvalidKeyPair.NotFound"]).at(ctx)?;
        Ok(out.map(|o| o.key_pairs().to_vec()).unwrap_or_default())
    }

    /// The key pair as inputs and outputs, and its `cairn:urn` tag. `prior` only decides how
    /// the public key is shown: AWS may report it with another comment or none.
    fn observed(region: &str, k: &KeyPairInfo, prior: &Value) -> (Observed, Option<String>) {
        let tags = tag_map(k.tags());
        let observed_key = k.public_key().unwrap_or_default().trim().to_string();
        let prior_key = prior.get("public_key").and_then(Value::as_str);
        let public_key = match prior_key {
            Some(p) if key_material(p).is_some() && key_material(p) == key_material(&observed_key) => p.to_string(),
            _ => observed_key,
        };
        let id = k.key_pair_id().unwrap_or_default().to_string();
        let name = k.key_name().unwrap_or_default();
        let inputs = json!({
            "name": name,
            "region": region,
            "public_key": public_key,
            "tags": user_tags(tags.clone()),
        });
        let outputs = json!({"key_pair_id": id, "name": name, "fingerprint": k.key_fingerprint().unwrap_or_default()});
        (Observed { id, inputs, outputs }, tags.get(TAG_URN).cloned())
    }
}

#[async_trait::async_trait]
impl Provider for KeyPairProvider {
    fn type_token(&self) -> &'static str {
        KeyPair::TYPE
    }

    /// Where `find` looks: the key pair's region (it is found by its `cairn:urn` tag there).
    fn identity(&self, inputs: &Value) -> Value {
        json!({"region": inputs.get("region")})
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let args = KeyPairArgs::parse(inputs).map_err(|e| invalid(ctx, e))?;
        let region = self.aws.region(args.region.as_deref()).await.map_err(|e| invalid(ctx, e))?;
        // A create retried after a crash finds its key pair by name and takes it over (if it
        // carries this resource's URN and the same key); anything else is an error.
        if let Some(k) = self.describe(ctx, &region, Some(&args.name), None).await?.first() {
            let (seen, urn) = Self::observed(&region, k, inputs);
            if !tagged_for(ctx, urn.as_deref()) || seen.inputs["public_key"] != json!(args.public_key) {
                return Err(invalid(
                    ctx,
                    format!(
                        "EC2 key pair `{}` already exists in {region} ({}) and is not managed by this resource",
                        args.name, seen.id
                    ),
                ));
            }
            let old: BTreeMap<String, String> = serde_json::from_value(seen.inputs["tags"].clone()).unwrap_or_default();
            sync_tags(&self.aws, &region, &seen.id, &old, &args.tags).await.at(ctx)?;
            return Ok(Created { id: seen.id, outputs: seen.outputs });
        }
        let out = self
            .aws
            .ec2(&region)
            .await
            .import_key_pair()
            .key_name(&args.name)
            .public_key_material(Blob::new(args.public_key.trim().as_bytes()))
            .tag_specifications(tag_spec(ctx, ResourceType::KeyPair, &args.tags))
            .send()
            .await
            .op(EC2, "ImportKeyPair")
            .at(ctx)?;
        let id = out.key_pair_id().ok_or_else(|| invalid(ctx, "EC2 ImportKeyPair returned no key pair id"))?;
        Ok(Created {
            id: id.to_string(),
            outputs: json!({
                "key_pair_id": id,
                "name": args.name,
                "fingerprint": out.key_fingerprint().unwrap_or_default(),
            }),
        })
    }

    async fn read(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        if id.is_empty() {
            return Err(invalid(ctx, "empty key pair id"));
        }
        let region = region_of(&self.aws, ctx, inputs).await?;
        let keys = self.describe(ctx, &region, Some(id), None).await?;
        Ok(keys.first().map(|k| Self::observed(&region, k, inputs).0))
    }

    async fn update(&self, ctx: Context<'_>, id: &str, old: &Value, new: &Value) -> Result<Value, ProviderError> {
        let old = KeyPairArgs::parse(old).map_err(|e| invalid(ctx, e))?;
        let args = KeyPairArgs::parse(new).map_err(|e| invalid(ctx, e))?;
        if old.name != args.name || old.public_key != args.public_key {
            return Err(invalid(
                ctx,
                format!("{id}: `name` and `public_key` cannot change in place; it must be replaced"),
            ));
        }
        let region = region_of(&self.aws, ctx, new).await?;
        sync_tags(&self.aws, &region, id, &old.tags, &args.tags).await.at(ctx)?;
        let keys = self.describe(ctx, &region, Some(id), None).await?;
        let k = keys.first().ok_or_else(|| invalid(ctx, format!("{id} no longer exists; refresh, then deploy")))?;
        Ok(Self::observed(&region, k, new).0.outputs)
    }

    async fn delete(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<(), ProviderError> {
        let region = region_of(&self.aws, ctx, inputs).await?;
        // By name (which every EC2 implementation takes), after finding it by id.
        let Some(name) =
            self.describe(ctx, &region, Some(id), None).await?.first().and_then(|k| k.key_name().map(str::to_string))
        else {
            return Ok(());
        };
        let deleted =
            self.aws.ec2(&region).await.delete_key_pair().key_name(name).send().await.op(EC2, "DeleteKeyPair");
        gone_ok(deleted, &["InvalidKeyPair.NotFound"]).at(ctx)
    }

    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        let region = region_of(&self.aws, ctx, identity).await?;
        let keys = self.describe(ctx, &region, None, Some(urn_filter(ctx))).await?;
        Ok(keys.iter().find_map(|k| if_tagged_for(ctx, Some(Self::observed(&region, k, identity)))))
    }
}

// ---------------------------------------------------------------------------------------------
// Launch templates

/// A launch template: what an Auto Scaling group's instances are launched from.
///
/// Changing `name` or `region` replaces it. Any other change makes a new version
/// (`CreateLaunchTemplateVersion`) and makes it the default (`ModifyLaunchTemplate`); tags
/// change in place. `latest_version` is that version's number, which an Auto Scaling group
/// points at explicitly (never `$Latest` or `$Default`), so a change shows as a change of the
/// group, and nothing drifts on its own. `read` reports the default version's settings.
#[derive(Debug, Clone, Serialize)]
pub struct LaunchTemplate {
    /// 3 to 128 characters: letters, digits, `(`, `)`, `.`, `/`, `-` and `_`.
    pub name: Input<String>,
    /// The region; `None`: the region of the `aws` provider configuration chosen for the
    /// resource or its component (see [`crate::Settings`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// An AMI id (`ami-…`), e.g. an [`AmiLookup`]'s `image_id`.
    pub image_id: Input<String>,
    /// e.g. `t3.micro`.
    pub instance_type: String,
    /// A key pair's name, for SSH; `None`: none.
    pub key_name: Option<Input<String>>,
    pub security_group_ids: Vec<Input<String>>,
    /// The user data (e.g. a cloud-init script) as plain text; the provider base64-encodes it.
    /// Make it a [`cairn::Secret`] if it holds secrets: it is then encrypted in state and
    /// never shown (the provider receives it revealed, as AWS needs it).
    pub user_data: Option<Input<String>>,
    /// An instance profile's name or ARN; `None`: none.
    pub iam_instance_profile: Option<Input<String>>,
    /// Require IMDSv2 (session tokens) for the instance metadata service.
    pub imdsv2_required: bool,
    /// The root volume; `None`: the AMI's.
    pub root_volume: Option<RootVolume>,
    /// Tags of the instances and volumes launched from the template.
    pub instance_tags: BTreeMap<String, Input<String>>,
    /// Tags of the template itself, besides the `cairn:stack` and `cairn:urn` tags cairn adds.
    pub tags: BTreeMap<String, Input<String>>,
}

impl LaunchTemplate {
    /// A template requiring IMDSv2, with no key, security groups, user data, profile or tags.
    pub fn new(
        name: impl Into<Input<String>>,
        image_id: impl Into<Input<String>>,
        instance_type: &str,
    ) -> LaunchTemplate {
        LaunchTemplate {
            name: name.into(),
            region: None,
            image_id: image_id.into(),
            instance_type: instance_type.to_string(),
            key_name: None,
            security_group_ids: Vec::new(),
            user_data: None,
            iam_instance_profile: None,
            imdsv2_required: true,
            root_volume: None,
            instance_tags: BTreeMap::new(),
            tags: BTreeMap::new(),
        }
    }
}

/// The root EBS volume of instances: mapped on the AMI's root device, deleted with the
/// instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootVolume {
    /// Size in GiB (1 to 16384).
    pub size_gib: i32,
    /// `gp3`, `gp2`, `io1`, `io2`, `st1`, `sc1` or `standard`.
    pub volume_type: String,
}

cairn::outputs! {
    /// The outputs of a [`LaunchTemplate`].
    pub struct LaunchTemplateOutputs {
        /// `lt-…`.
        pub id: String,
        /// The number of the version the inputs describe (the default version), as a string, for
        /// an Auto Scaling group's `launch_template_version`.
        pub latest_version: String,
    }
}

impl Resource for LaunchTemplate {
    const TYPE: &'static str = "aws:ec2:LaunchTemplate";
    const PROVIDER_INPUTS: &'static [&'static str] = &["region"];
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["name", "region"];
    const DELETE_BEFORE_REPLACE: bool = true;
    // A change of anything but the tags makes a new default version.
    const UPDATABLE_OUTPUTS: &'static [&'static str] = &["latest_version"];
    type Outputs = LaunchTemplateOutputs;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateArgs {
    name: String,
    #[serde(default)]
    region: Option<String>,
    image_id: String,
    instance_type: String,
    #[serde(default)]
    key_name: Option<String>,
    #[serde(default)]
    security_group_ids: Vec<String>,
    #[serde(default)]
    user_data: Option<String>,
    #[serde(default)]
    iam_instance_profile: Option<String>,
    #[serde(default = "yes")]
    imdsv2_required: bool,
    #[serde(default)]
    root_volume: Option<RootVolume>,
    #[serde(default)]
    instance_tags: BTreeMap<String, String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

const VOLUME_TYPES: &[&str] = &["gp3", "gp2", "io1", "io2", "st1", "sc1", "standard"];

impl TemplateArgs {
    fn parse(inputs: &Value) -> Result<TemplateArgs, String> {
        let t = LaunchTemplate::TYPE;
        let args: TemplateArgs = parse_inputs(t, inputs)?;
        let n = args.name.len();
        if !(3..=128).contains(&n) || !args.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"()./-_".contains(&b)) {
            return Err(format!(
                "{t}: `name` `{}` must be 3 to 128 letters, digits, `(`, `)`, `.`, `/`, `-` or `_`",
                args.name
            ));
        }
        if !args.image_id.starts_with("ami-") {
            return Err(format!("{t}: `image_id` must be an AMI id (`ami-…`), got `{}`", args.image_id));
        }
        if args.instance_type.is_empty() || !args.instance_type.contains('.') {
            return Err(format!("{t}: `instance_type` must be an instance type such as `t3.micro`"));
        }
        if args.key_name.as_deref() == Some("") {
            return Err(format!("{t}: `key_name` must not be empty (leave it unset for no key)"));
        }
        if let Some(sg) = args.security_group_ids.iter().find(|s| !s.starts_with("sg-")) {
            return Err(format!("{t}: `security_group_ids` entry `{sg}` is not a security group id (`sg-…`)"));
        }
        if let Some(u) = &args.user_data {
            // AWS's limit is on the encoded text; the value is not repeated: it may be secret.
            if u.len().div_ceil(3) * 4 > 16384 {
                return Err(format!("{t}: `user_data` is longer than 16 KiB once base64-encoded"));
            }
        }
        if args.iam_instance_profile.as_deref() == Some("") {
            return Err(format!("{t}: `iam_instance_profile` must not be empty (leave it unset for none)"));
        }
        if let Some(v) = &args.root_volume {
            if !(1..=16384).contains(&v.size_gib) {
                return Err(format!("{t}: `root_volume.size_gib` must be 1 to 16384, got {}", v.size_gib));
            }
            if !VOLUME_TYPES.contains(&v.volume_type.as_str()) {
                return Err(format!(
                    "{t}: `root_volume.volume_type` must be one of {}, got `{}`",
                    VOLUME_TYPES.join(", "),
                    v.volume_type
                ));
            }
        }
        validate_tags(t, &args.instance_tags).map_err(|e| e.replace("`tags`", "`instance_tags`"))?;
        validate_tags(t, &args.tags)?;
        Ok(args)
    }

    /// Everything that goes into a version (all but the name, region and template tags).
    fn version_data(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Value::Object(m) = &mut v {
            for k in ["name", "region", "tags"] {
                m.remove(k);
            }
        }
        v
    }
}

/// How a launch template is looked up: by its id (`lt-…`) or by its name.
#[derive(Debug, Clone, Copy)]
enum TemplateRef<'a> {
    Id(&'a str),
    Name(&'a str),
}

/// The provider of [`LaunchTemplate`]. Its id is the template id (`lt-…`).
#[derive(Debug, Clone)]
pub struct LaunchTemplateProvider {
    aws: Aws,
}

impl LaunchTemplateProvider {
    pub fn new(aws: &Aws) -> LaunchTemplateProvider {
        LaunchTemplateProvider { aws: aws.clone() }
    }

    /// The version data EC2 takes for `args`. The root volume is mapped on the AMI's root
    /// device, which is looked up.
    async fn data(
        &self,
        ctx: Context<'_>,
        region: &str,
        args: &TemplateArgs,
    ) -> Result<RequestLaunchTemplateData, ProviderError> {
        let mut d = RequestLaunchTemplateData::builder()
            .image_id(&args.image_id)
            .instance_type(args.instance_type.as_str().into())
            .set_key_name(args.key_name.clone())
            .set_security_group_ids(Some(args.security_group_ids.clone()).filter(|s| !s.is_empty()))
            .set_user_data(args.user_data.as_ref().map(|u| base64_encode(u.as_bytes())))
            .metadata_options(
                LaunchTemplateInstanceMetadataOptionsRequest::builder()
                    .http_endpoint(LaunchTemplateInstanceMetadataEndpointState::Enabled)
                    .http_tokens(if args.imdsv2_required {
                        LaunchTemplateHttpTokensState::Required
                    } else {
                        LaunchTemplateHttpTokensState::Optional
                    })
                    .build(),
            );
        if let Some(p) = &args.iam_instance_profile {
            let spec = LaunchTemplateIamInstanceProfileSpecificationRequest::builder();
            let spec = if p.starts_with("arn:") { spec.arn(p) } else { spec.name(p) };
            d = d.iam_instance_profile(spec.build());
        }
        if let Some(v) = &args.root_volume {
            let device = self.root_device(ctx, region, &args.image_id).await?;
            d = d.block_device_mappings(
                LaunchTemplateBlockDeviceMappingRequest::builder()
                    .device_name(device)
                    .ebs(
                        LaunchTemplateEbsBlockDeviceRequest::builder()
                            .volume_size(v.size_gib)
                            .volume_type(VolumeType::from(v.volume_type.as_str()))
                            .delete_on_termination(true)
                            .build(),
                    )
                    .build(),
            );
        }
        if !args.instance_tags.is_empty() {
            for kind in [ResourceType::Instance, ResourceType::Volume] {
                d = d.tag_specifications(
                    LaunchTemplateTagSpecificationRequest::builder()
                        .resource_type(kind)
                        .set_tags(Some(ec2_tags(&args.instance_tags)))
                        .build(),
                );
            }
        }
        Ok(d.build())
    }

    /// The root device name of an AMI (`/dev/xvda`, `/dev/sda1`, …).
    async fn root_device(&self, ctx: Context<'_>, region: &str, image_id: &str) -> Result<String, ProviderError> {
        let out =
            self.aws.ec2(region).await.describe_images().image_ids(image_id).send().await.op(EC2, "DescribeImages");
        let images = found(out, &["InvalidAMIID.NotFound", "InvalidAMIID.Unavailable"]).at(ctx)?;
        images
            .and_then(|o| o.images().first().and_then(|i| i.root_device_name().map(str::to_string)))
            .ok_or_else(|| {
                invalid(ctx, format!("`image_id` `{image_id}` is not an image in {region} (its root device is needed for `root_volume`)"))
            })
    }

    /// The template (by id or by name), its default version's data as inputs, outputs, and
    /// its `cairn:urn` tag.
    async fn observe(
        &self,
        ctx: Context<'_>,
        region: &str,
        by: TemplateRef<'_>,
        prior: &Value,
    ) -> Result<Option<(Observed, Option<String>)>, ProviderError> {
        let ec2 = self.aws.ec2(region).await;
        let call = match by {
            TemplateRef::Id(id) => ec2.describe_launch_templates().launch_template_ids(id),
            TemplateRef::Name(name) => ec2.describe_launch_templates().launch_template_names(name),
        };
        let not_found = &["InvalidLaunchTemplateId.NotFound", "InvalidLaunchTemplateName.NotFoundException"];
        let Some(out) = found(call.send().await.op(EC2, "DescribeLaunchTemplates"), not_found).at(ctx)? else {
            return Ok(None);
        };
        let Some(lt) = out.launch_templates().first() else {
            return Ok(None);
        };
        let id = lt.launch_template_id().unwrap_or_default().to_string();
        let default = lt.default_version_number().unwrap_or(1);
        let versions = ec2
            .describe_launch_template_versions()
            .launch_template_id(&id)
            .versions(default.to_string())
            .send()
            .await
            .op(EC2, "DescribeLaunchTemplateVersions");
        let Some(versions) = found(versions, not_found).at(ctx)? else {
            return Ok(None);
        };
        let data = versions.launch_template_versions().first().and_then(|v| v.launch_template_data());
        // DescribeTags rather than the template's `Tags`: the tags as they are now, wherever
        // EC2 keeps them (moto reports a template's tags as they were at its creation).
        let described =
            ec2.describe_tags().filters(filter("resource-id", &id)).send().await.op(EC2, "DescribeTags").at(ctx)?;
        let tags: BTreeMap<String, String> = described
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
            .collect();
        let mut inputs = data.map(|d| template_inputs(d, prior)).unwrap_or_else(|| json!({}));
        inputs["name"] = json!(lt.launch_template_name().unwrap_or_default());
        inputs["region"] = json!(region);
        inputs["tags"] = json!(user_tags(tags.clone()));
        let outputs = json!({"id": id, "latest_version": default.to_string()});
        Ok(Some((Observed { id, inputs, outputs }, tags.get(TAG_URN).cloned())))
    }

    /// Makes `args` the template's default version (a new version) if its data differs from
    /// `old`'s, and brings its tags from `old_tags` to `args.tags`.
    async fn change(
        &self,
        ctx: Context<'_>,
        region: &str,
        id: &str,
        old_data: &Value,
        old_tags: &BTreeMap<String, String>,
        args: &TemplateArgs,
    ) -> Result<(), ProviderError> {
        if *old_data != args.version_data() {
            let ec2 = self.aws.ec2(region).await;
            let data = self.data(ctx, region, args).await?;
            let token = client_token(&[ctx.urn.as_str(), id, &args.version_data().to_string()]);
            let out = ec2
                .create_launch_template_version()
                .launch_template_id(id)
                .client_token(token)
                .launch_template_data(data)
                .send()
                .await
                .op(EC2, "CreateLaunchTemplateVersion")
                .at(ctx)?;
            let version = out
                .launch_template_version()
                .and_then(|v| v.version_number())
                .ok_or_else(|| invalid(ctx, "EC2 CreateLaunchTemplateVersion returned no version number"))?;
            ec2.modify_launch_template()
                .launch_template_id(id)
                .default_version(version.to_string())
                .send()
                .await
                .op(EC2, "ModifyLaunchTemplate")
                .at(ctx)?;
        }
        sync_tags(&self.aws, region, id, old_tags, &args.tags).await.at(ctx)
    }
}

/// A version's data as the inputs that describe it. `prior` only decides how the IAM instance
/// profile is shown (AWS reports what it was given, a name or an ARN).
fn template_inputs(d: &ResponseLaunchTemplateData, prior: &Value) -> Value {
    let user_data = d.user_data().map(|u| match base64_decode(u).map(String::from_utf8) {
        Some(Ok(text)) => text,
        // Not text we encoded: shown as AWS has it.
        _ => u.to_string(),
    });
    let profile = d.iam_instance_profile().and_then(|p| {
        let prior_is_arn =
            prior.get("iam_instance_profile").and_then(Value::as_str).is_some_and(|s| s.starts_with("arn:"));
        match (p.arn(), p.name()) {
            (Some(arn), _) if prior_is_arn => Some(arn.to_string()),
            (_, Some(name)) => Some(name.to_string()),
            (arn, None) => arn.map(str::to_string),
        }
    });
    let root_volume = d.block_device_mappings().iter().find_map(|m| {
        let ebs = m.ebs()?;
        Some(RootVolume {
            size_gib: ebs.volume_size()?,
            volume_type: ebs.volume_type().map(|t| t.as_str().to_string()).unwrap_or_else(|| "gp2".into()),
        })
    });
    let instance_tags = d
        .tag_specifications()
        .iter()
        .find(|s| s.resource_type() == Some(&ResourceType::Instance))
        .map(|s| tag_map(s.tags()))
        .unwrap_or_default();
    json!({
        "image_id": d.image_id().unwrap_or_default(),
        "instance_type": d.instance_type().map(|t| t.as_str()).unwrap_or_default(),
        "key_name": d.key_name(),
        "security_group_ids": d.security_group_ids(),
        "user_data": user_data,
        "iam_instance_profile": profile,
        "imdsv2_required": d.metadata_options().and_then(|m| m.http_tokens()) == Some(&LaunchTemplateHttpTokensState::Required),
        "root_volume": root_volume,
        "instance_tags": instance_tags,
    })
}

#[async_trait::async_trait]
impl Provider for LaunchTemplateProvider {
    fn type_token(&self) -> &'static str {
        LaunchTemplate::TYPE
    }

    /// Where `find` looks: the template's region (it is found by its `cairn:urn` tag there).
    fn identity(&self, inputs: &Value) -> Value {
        json!({"region": inputs.get("region")})
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let args = TemplateArgs::parse(inputs).map_err(|e| invalid(ctx, e))?;
        let region = region_of(&self.aws, ctx, inputs).await?;
        // A create retried after a crash finds its template by name and takes it over (if it
        // carries this resource's URN), bringing it to these inputs.
        if let Some((seen, urn)) = self.observe(ctx, &region, TemplateRef::Name(&args.name), inputs).await? {
            if !tagged_for(ctx, urn.as_deref()) {
                return Err(invalid(
                    ctx,
                    format!(
                        "launch template `{}` already exists in {region} ({}) and is not managed by this resource",
                        args.name, seen.id
                    ),
                ));
            }
            let old = TemplateArgs::parse(&seen.inputs).map_err(|e| invalid(ctx, e))?;
            self.change(ctx, &region, &seen.id, &old.version_data(), &old.tags, &args).await?;
            let (now, _) = self
                .observe(ctx, &region, TemplateRef::Id(&seen.id), inputs)
                .await?
                .ok_or_else(|| invalid(ctx, format!("{} vanished", seen.id)))?;
            return Ok(Created { id: now.id, outputs: now.outputs });
        }
        let data = self.data(ctx, &region, &args).await?;
        let token = client_token(&[ctx.urn.as_str(), &args.name, &args.version_data().to_string()]);
        let out = self
            .aws
            .ec2(&region)
            .await
            .create_launch_template()
            .launch_template_name(&args.name)
            .client_token(token)
            .launch_template_data(data)
            .tag_specifications(tag_spec(ctx, ResourceType::LaunchTemplate, &args.tags))
            .send()
            .await
            .op(EC2, "CreateLaunchTemplate")
            .at(ctx)?;
        let lt = out.launch_template().ok_or_else(|| invalid(ctx, "EC2 CreateLaunchTemplate returned no template"))?;
        let id = lt.launch_template_id().unwrap_or_default().to_string();
        let version = lt.default_version_number().unwrap_or(1);
        Ok(Created { outputs: json!({"id": id, "latest_version": version.to_string()}), id })
    }

    async fn read(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        if !id.starts_with("lt-") {
            return Err(invalid(ctx, format!("`{id}` is not a launch template id (`lt-…`)")));
        }
        let region = region_of(&self.aws, ctx, inputs).await?;
        Ok(self.observe(ctx, &region, TemplateRef::Id(id), inputs).await?.map(|(seen, _)| seen))
    }

    async fn update(&self, ctx: Context<'_>, id: &str, old: &Value, new: &Value) -> Result<Value, ProviderError> {
        let old = TemplateArgs::parse(old).map_err(|e| invalid(ctx, e))?;
        let args = TemplateArgs::parse(new).map_err(|e| invalid(ctx, e))?;
        if old.name != args.name {
            return Err(invalid(ctx, format!("{id} cannot be renamed in place; it must be replaced")));
        }
        let region = region_of(&self.aws, ctx, new).await?;
        self.change(ctx, &region, id, &old.version_data(), &old.tags, &args).await?;
        let (seen, _) = self
            .observe(ctx, &region, TemplateRef::Id(id), new)
            .await?
            .ok_or_else(|| invalid(ctx, format!("{id} no longer exists; refresh, then deploy to create it again")))?;
        Ok(seen.outputs)
    }

    async fn delete(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<(), ProviderError> {
        let region = region_of(&self.aws, ctx, inputs).await?;
        let deleted = self
            .aws
            .ec2(&region)
            .await
            .delete_launch_template()
            .launch_template_id(id)
            .send()
            .await
            .op(EC2, "DeleteLaunchTemplate");
        gone_ok(deleted, &["InvalidLaunchTemplateId.NotFound", "InvalidLaunchTemplateName.NotFoundException"]).at(ctx)
    }

    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        let region = region_of(&self.aws, ctx, identity).await?;
        let out = self
            .aws
            .ec2(&region)
            .await
            .describe_launch_templates()
            .filters(urn_filter(ctx))
            .send()
            .await
            .op(EC2, "DescribeLaunchTemplates")
            .at(ctx)?;
        let ids: Vec<&str> = out.launch_templates().iter().filter_map(|t| t.launch_template_id()).collect();
        first_tagged_for(ctx, ids, |id| self.observe(ctx, &region, TemplateRef::Id(id), identity)).await
    }
}

// ---------------------------------------------------------------------------------------------
// AMI lookup

/// The newest AMI matching a query: a read-only data source, declared as a resource with no
/// side effects (creating it looks the image up, deleting it does nothing).
///
/// Of the available images owned by `owners` whose name matches `name_pattern` (with `*` and
/// `?` wildcards), and `architecture` and `tag_filters` when given, it picks the one with the
/// latest creation date (ties broken by the greatest image id, so the pick is deterministic).
/// No match is an error naming the query.
///
/// A newer matching image published later shows up as drift on `cairn refresh` (the lookup's
/// id and outputs change); refresh records it, and the next deploy then passes the new
/// `image_id` to whatever uses it (a launch template gets a new version). Every input change
/// replaces the lookup, which is free.
#[derive(Debug, Clone, Serialize)]
pub struct AmiLookup {
    /// The region; `None`: the region of the `aws` provider configuration chosen for the
    /// resource or its component (see [`crate::Settings`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Account ids, or `self`, `amazon`, `aws-marketplace`; at least one.
    pub owners: Vec<String>,
    /// e.g. `al2023-ami-2023.*-x86_64`.
    pub name_pattern: String,
    /// `x86_64`, `arm64`, `i386`, `x86_64_mac` or `arm64_mac`; `None`: any.
    pub architecture: Option<String>,
    /// Only images carrying these tags (exact values).
    pub tag_filters: BTreeMap<String, String>,
}

impl AmiLookup {
    /// The newest image of `owners` named like `name_pattern`, any architecture.
    pub fn new(owners: &[&str], name_pattern: &str) -> AmiLookup {
        AmiLookup {
            region: None,
            owners: owners.iter().map(|o| o.to_string()).collect(),
            name_pattern: name_pattern.to_string(),
            architecture: None,
            tag_filters: BTreeMap::new(),
        }
    }
}

cairn::outputs! {
    /// The outputs of an [`AmiLookup`]: the image picked.
    pub struct AmiLookupOutputs {
        pub image_id: String,
        pub name: String,
        /// ISO 8601, as EC2 reports it.
        pub creation_date: String,
    }
}

impl Resource for AmiLookup {
    const TYPE: &'static str = "aws:ec2:AmiLookup";
    const PROVIDER_INPUTS: &'static [&'static str] = &["region"];
    const REPLACE_ON_CHANGE: &'static [&'static str] =
        &["region", "owners", "name_pattern", "architecture", "tag_filters"];
    // `update` looks the image up again: a newer one may match (unplanned: every input replaces).
    const UPDATABLE_OUTPUTS: &'static [&'static str] = &["image_id", "name", "creation_date"];
    type Outputs = AmiLookupOutputs;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LookupArgs {
    #[serde(default)]
    region: Option<String>,
    owners: Vec<String>,
    name_pattern: String,
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    tag_filters: BTreeMap<String, String>,
}

const ARCHITECTURES: &[&str] = &["i386", "x86_64", "arm64", "x86_64_mac", "arm64_mac"];

impl LookupArgs {
    fn parse(inputs: &Value) -> Result<LookupArgs, String> {
        let t = AmiLookup::TYPE;
        let args: LookupArgs = parse_inputs(t, inputs)?;
        if args.owners.is_empty() || args.owners.iter().any(String::is_empty) {
            return Err(format!("{t}: `owners` must name at least one owner (an account id, `self`, `amazon`)"));
        }
        if args.name_pattern.is_empty() {
            return Err(format!("{t}: `name_pattern` must not be empty"));
        }
        if let Some(a) = args.architecture.as_deref().filter(|a| !ARCHITECTURES.contains(a)) {
            return Err(format!("{t}: `architecture` must be one of {}, got `{a}`", ARCHITECTURES.join(", ")));
        }
        Ok(args)
    }

    /// The query, in error messages.
    fn describe(&self, region: &str) -> String {
        let mut s = format!("owners {:?}, name `{}`", self.owners, self.name_pattern);
        if let Some(a) = &self.architecture {
            s.push_str(&format!(", architecture {a}"));
        }
        if !self.tag_filters.is_empty() {
            s.push_str(&format!(", tags {:?}", self.tag_filters));
        }
        format!("{s}, in {region}")
    }
}

fn image_outputs(i: &Image) -> Value {
    json!({
        "image_id": i.image_id().unwrap_or_default(),
        "name": i.name().unwrap_or_default(),
        "creation_date": i.creation_date().unwrap_or_default(),
    })
}

/// The provider of [`AmiLookup`]. Its id is the image id picked.
#[derive(Debug, Clone)]
pub struct AmiLookupProvider {
    aws: Aws,
}

impl AmiLookupProvider {
    pub fn new(aws: &Aws) -> AmiLookupProvider {
        AmiLookupProvider { aws: aws.clone() }
    }

    /// The newest image matching the query, if any.
    async fn lookup(&self, ctx: Context<'_>, region: &str, args: &LookupArgs) -> Result<Option<Image>, ProviderError> {
        let ec2 = self.aws.ec2(region).await;
        let mut filters = vec![filter("name", &args.name_pattern), filter("state", "available")];
        if let Some(a) = &args.architecture {
            filters.push(filter("architecture", a));
        }
        filters.extend(args.tag_filters.iter().map(|(k, v)| filter(&format!("tag:{k}"), v)));
        let mut best: Option<Image> = None;
        let mut token = None;
        loop {
            let page = ec2
                .describe_images()
                .set_owners(Some(args.owners.clone()))
                .set_filters(Some(filters.clone()))
                .set_next_token(token)
                .send()
                .await
                .op(EC2, "DescribeImages")
                .at(ctx)?;
            for image in page.images() {
                let key = |i: &Image| {
                    (i.creation_date().unwrap_or_default().to_string(), i.image_id().unwrap_or_default().to_string())
                };
                if best.as_ref().is_none_or(|b| key(image) > key(b)) {
                    best = Some(image.clone());
                }
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(best),
            }
        }
    }

    async fn observe(&self, ctx: Context<'_>, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        let args = LookupArgs::parse(inputs).map_err(|e| invalid(ctx, e))?;
        let region = region_of(&self.aws, ctx, inputs).await?;
        let image = self.lookup(ctx, &region, &args).await?;
        Ok(image.map(|i| Observed {
            id: i.image_id().unwrap_or_default().to_string(),
            inputs: json!({
                "region": region,
                "owners": args.owners,
                "name_pattern": args.name_pattern,
                "architecture": args.architecture,
                "tag_filters": args.tag_filters,
            }),
            outputs: image_outputs(&i),
        }))
    }
}

#[async_trait::async_trait]
impl Provider for AmiLookupProvider {
    fn type_token(&self) -> &'static str {
        AmiLookup::TYPE
    }

    fn identity(&self, inputs: &Value) -> Value {
        inputs.clone()
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        match self.observe(ctx, inputs).await? {
            Some(seen) => Ok(Created { id: seen.id, outputs: seen.outputs }),
            None => {
                let args = LookupArgs::parse(inputs).map_err(|e| invalid(ctx, e))?;
                let region = region_of(&self.aws, ctx, inputs).await?;
                Err(invalid(ctx, format!("no available AMI matches {}", args.describe(&region))))
            }
        }
    }

    /// The newest image matching the query in `inputs` (which may be another image than
    /// `id`: drift). With no query (an import of a bare image id), the image `id` itself,
    /// with a query naming exactly it.
    async fn read(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        if inputs.get("name_pattern").is_some() {
            return self.observe(ctx, inputs).await;
        }
        let region = region_of(&self.aws, ctx, inputs).await?;
        let out = self.aws.ec2(&region).await.describe_images().image_ids(id).send().await.op(EC2, "DescribeImages");
        let images =
            found(out, &["InvalidAMIID.NotFound", "InvalidAMIID.Unavailable", "InvalidAMIID.Malformed"]).at(ctx)?;
        Ok(images.and_then(|o| o.images().first().cloned()).map(|i| Observed {
            id: id.to_string(),
            inputs: json!({
                "region": region,
                "owners": [i.owner_id().unwrap_or_default()],
                "name_pattern": i.name().unwrap_or_default(),
                "architecture": i.architecture().map(|a| a.as_str()),
                "tag_filters": {},
            }),
            outputs: image_outputs(&i),
        }))
    }

    async fn update(&self, ctx: Context<'_>, _id: &str, _old: &Value, new: &Value) -> Result<Value, ProviderError> {
        Ok(self.create(ctx, new).await?.outputs)
    }

    async fn delete(&self, _ctx: Context<'_>, _id: &str, _inputs: &Value) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        Ok(if_unrecorded(ctx, self.observe(ctx, identity).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_pair_validation_names_the_field() {
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host";
        let ok = json!({"name": "deploy", "region": "us-east-1", "public_key": key});
        assert!(KeyPairArgs::parse(&ok).is_ok());
        let with = |k: &str, v: Value| {
            let mut i = ok.clone();
            i[k] = v;
            KeyPairArgs::parse(&i).unwrap_err()
        };
        assert!(with("name", json!("")).contains("`name`"));
        // A private key's armour, built here so that no key-shaped text sits in the repository.
        let armour = format!("-----BEGIN OPENSSH {} KEY-----\nabc", "PRIVATE");
        assert!(with("public_key", json!(armour)).contains("private key"));
        assert!(with("public_key", json!("ssh-dss AAAA")).contains("`public_key`"));
        assert!(with("public_key", json!("ssh-rsa")).contains("`public_key`"));
        assert!(with("tags", json!({"aws:x": "y"})).contains("reserved"));
    }

    #[test]
    fn launch_template_validation_names_the_field() {
        let ok = serde_json::to_value(LaunchTemplate::new("web", "ami-12345678", "t3.micro").in_region("us-east-1"))
            .unwrap();
        assert!(TemplateArgs::parse(&ok).is_ok());
        let with = |k: &str, v: Value| {
            let mut i = ok.clone();
            i[k] = v;
            TemplateArgs::parse(&i).unwrap_err()
        };
        assert!(with("name", json!("a b")).contains("`name`"));
        assert!(with("image_id", json!("img-1")).contains("`image_id`"));
        assert!(with("instance_type", json!("")).contains("`instance_type`"));
        assert!(with("security_group_ids", json!(["default"])).contains("`security_group_ids`"));
        assert!(with("root_volume", json!({"size_gib": 0, "volume_type": "gp3"})).contains("`root_volume.size_gib`"));
        assert!(with("root_volume", json!({"size_gib": 8, "volume_type": "ssd"})).contains("`root_volume.volume_type`"));
        assert!(with("instance_tags", json!({"cairn:x": "y"})).contains("`instance_tags`"));
        let e = with("user_data", json!("x".repeat(13000)));
        assert!(e.contains("`user_data`") && !e.contains("xxx"), "{e}");
    }

    #[test]
    fn ami_lookup_validation_names_the_field() {
        let ok = serde_json::to_value(AmiLookup::new(&["amazon"], "al2023-*").in_region("us-east-1")).unwrap();
        assert!(LookupArgs::parse(&ok).is_ok());
        let mut bad = ok.clone();
        bad["owners"] = json!([]);
        assert!(LookupArgs::parse(&bad).unwrap_err().contains("`owners`"));
        let mut bad = ok.clone();
        bad["architecture"] = json!("sparc");
        assert!(LookupArgs::parse(&bad).unwrap_err().contains("`architecture`"));
    }

    #[test]
    fn client_tokens_are_stable_and_distinct() {
        assert_eq!(client_token(&["a", "b"]), client_token(&["a", "b"]));
        assert_ne!(client_token(&["a", "b"]), client_token(&["ab", ""]));
        assert!(client_token(&["x"]).len() <= 64);
    }
}
