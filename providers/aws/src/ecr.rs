//! Amazon ECR: `aws:ecr:Repository`, `aws:ecr:ReplicationConfiguration` and
//! `aws:ecr:RegistryScanningConfiguration`.
//!
//! A repository's id is its ARN, which carries its region and registry: a bare repository
//! name is also accepted as an id (for imports), in the resource's `region`. Repository names
//! are unique per registry and region, so a repository is found again after a crash by its
//! name, and adopted only if its `cairn:urn` tag names the resource being recovered.

use std::collections::BTreeMap;

use aws_sdk_ecr::types::{
    EncryptionConfiguration, EncryptionType, ImageScanningConfiguration, ImageTagMutability, RegistryScanningRule,
    ReplicationDestination as SdkDestination, ReplicationRule as SdkReplicationRule, RepositoryFilter,
    RepositoryFilterType, ScanFrequency as SdkScanFrequency, ScanType as SdkScanType, ScanningRepositoryFilter,
    ScanningRepositoryFilterType, Tag,
};
use cairn::provider::{Context, Created, Observed, Provider, ProviderError};
use cairn::{Input, Resource};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::client::{
    all_tags, build_error, found, gone_ok, if_tagged_for, if_unrecorded, invalid, parse_arn, parse_inputs,
    same_json_or, user_tags, validate_json, validate_tags, AtUrn, Aws, AwsError, SdkResultExt, TAG_URN,
};

use crate::managed::{provider, Api, CreateError, Managed, Seen};

const ECR: &str = "ECR";

/// A private container image repository.
///
/// Changing `name`, `region` or `encryption` replaces the repository. Because a name can
/// exist only once per region, the old repository is deleted before its replacement is
/// created (`DELETE_BEFORE_REPLACE`): for the few seconds in between, the repository does not
/// exist, and a repository that still holds images is only deleted with `force_delete`.
/// Everything else (scanning, tag mutability, lifecycle and repository policies, tags) is
/// changed in place.
#[derive(Debug, Clone, Serialize)]
pub struct Repository {
    /// Lowercase letters, digits, `.`, `_`, `-` and `/`-separated namespaces; 2 to 256
    /// characters.
    pub name: Input<String>,
    /// The region; `None`: the region of the `aws` provider configuration chosen for the
    /// resource or its component (see [`crate::Settings`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub scan_on_push: bool,
    pub image_tag_mutability: TagMutability,
    pub encryption: Encryption,
    /// A lifecycle policy document (JSON text). `None`: no lifecycle policy.
    pub lifecycle_policy: Option<Input<String>>,
    /// A repository (resource-based) policy document (JSON text). `None`: no policy.
    pub repository_policy: Option<Input<String>>,
    /// Tags besides the `cairn:stack` and `cairn:urn` tags cairn adds.
    pub tags: BTreeMap<String, Input<String>>,
    /// Delete the repository even if it still holds images.
    pub force_delete: bool,
}

impl Repository {
    /// A mutable, unscanned, AES256-encrypted repository without policies or tags.
    pub fn new(name: impl Into<Input<String>>) -> Repository {
        Repository {
            name: name.into(),
            region: None,
            scan_on_push: false,
            image_tag_mutability: TagMutability::Mutable,
            encryption: Encryption::Aes256,
            lifecycle_policy: None,
            repository_policy: None,
            tags: BTreeMap::new(),
            force_delete: false,
        }
    }
}

/// Whether an image tag can be pushed again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TagMutability {
    #[serde(rename = "MUTABLE")]
    Mutable,
    #[serde(rename = "IMMUTABLE")]
    Immutable,
}

/// Encryption at rest of a repository's images.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type")]
pub enum Encryption {
    #[serde(rename = "AES256")]
    Aes256,
    /// With `kms_key` unset, the AWS-managed `aws/ecr` key.
    #[serde(rename = "KMS")]
    Kms { kms_key: Option<Input<String>> },
}

cairn::outputs! {
    /// The outputs of a [`Repository`].
    pub struct RepositoryOutputs {
        pub arn: String,
        /// `<registry>.dkr.ecr.<region>.amazonaws.com/<name>`, for `docker push`.
        pub repository_uri: String,
        pub registry_id: String,
        pub name: String,
    }
}

impl Resource for Repository {
    const TYPE: &'static str = "aws:ecr:Repository";
    const PROVIDER_INPUTS: &'static [&'static str] = &["region"];
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["name", "region", "encryption"];
    const DELETE_BEFORE_REPLACE: bool = true;
    type Outputs = RepositoryOutputs;
}

/// A repository's inputs as the provider receives them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RepoArgs {
    name: String,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    scan_on_push: bool,
    #[serde(default = "mutable")]
    image_tag_mutability: String,
    #[serde(default)]
    encryption: Option<EncryptionArgs>,
    #[serde(default)]
    lifecycle_policy: Option<String>,
    #[serde(default)]
    repository_policy: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    /// Read by `delete` from the inputs in state (which may predate this struct).
    #[serde(default)]
    #[allow(dead_code)]
    force_delete: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct EncryptionArgs {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    kms_key: Option<String>,
}

fn mutable() -> String {
    "MUTABLE".into()
}

/// Whether `name` matches ECR's `(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*`.
fn valid_repository_name(name: &str) -> bool {
    name.split('/').all(|part| {
        !part.is_empty()
            && part
                .split(['.', '_', '-'])
                .all(|run| !run.is_empty() && run.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9')))
    })
}

impl RepoArgs {
    fn parse(inputs: &Value) -> Result<RepoArgs, String> {
        let args: RepoArgs = parse_inputs(Repository::TYPE, inputs)?;
        args.validate()?;
        Ok(args)
    }

    fn validate(&self) -> Result<(), String> {
        let t = Repository::TYPE;
        let n = self.name.chars().count();
        if n == 0 {
            return Err(format!("{t}: `name` must not be empty"));
        }
        if !(2..=256).contains(&n) {
            return Err(format!("{t}: `name` must be 2 to 256 characters, got {n}"));
        }
        if !valid_repository_name(&self.name) {
            return Err(format!(
                "{t}: `name` `{}` is not a valid repository name: use lowercase letters and digits, \
                 separated by single `.`, `_` or `-`, in `/`-separated namespaces",
                self.name
            ));
        }
        if !matches!(self.image_tag_mutability.as_str(), "MUTABLE" | "IMMUTABLE") {
            return Err(format!(
                "{t}: `image_tag_mutability` must be MUTABLE or IMMUTABLE, got `{}`",
                self.image_tag_mutability
            ));
        }
        if let Some(e) = &self.encryption {
            match (e.kind.as_str(), &e.kms_key) {
                ("AES256", None) | ("KMS", _) => {}
                ("AES256", Some(_)) => return Err(format!("{t}: `encryption.kms_key` is only allowed with type KMS")),
                (other, _) => return Err(format!("{t}: `encryption.type` must be AES256 or KMS, got `{other}`")),
            }
            if e.kms_key.as_deref() == Some("") {
                return Err(format!("{t}: `encryption.kms_key` must not be empty (leave it unset for aws/ecr)"));
            }
        }
        if let Some(p) = &self.lifecycle_policy {
            validate_json(t, "lifecycle_policy", p)?;
        }
        if let Some(p) = &self.repository_policy {
            validate_json(t, "repository_policy", p)?;
        }
        validate_tags(t, &self.tags)
    }

    fn encryption(&self) -> EncryptionArgs {
        self.encryption.clone().unwrap_or(EncryptionArgs { kind: "AES256".into(), kms_key: None })
    }
}

/// Where a repository is: its region, registry (when known) and name.
#[derive(Debug, Clone)]
struct RepoRef {
    region: String,
    registry_id: Option<String>,
    name: String,
}

async fn locate(aws: &Aws, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<RepoRef, ProviderError> {
    if let Some(arn) = parse_arn(id) {
        let name = arn.resource.strip_prefix("repository/").filter(|n| arn.service == "ecr" && !n.is_empty());
        let Some(name) = name else {
            return Err(invalid(ctx, format!("`{id}` is not an ECR repository ARN")));
        };
        return Ok(RepoRef {
            region: arn.region.to_string(),
            registry_id: Some(arn.account.to_string()).filter(|a| !a.is_empty()),
            name: name.to_string(),
        });
    }
    if id.is_empty() {
        return Err(invalid(ctx, "empty repository id"));
    }
    let region = aws.region(inputs.get("region").and_then(Value::as_str)).await.map_err(|e| invalid(ctx, e))?;
    Ok(RepoRef { region, registry_id: None, name: id.to_string() })
}

fn tag(k: &str, v: &str) -> Result<Tag, String> {
    Tag::builder().key(k).value(v).build().map_err(|e| e.to_string())
}

/// The provider of [`Repository`].
#[derive(Debug, Clone)]
pub struct RepositoryProvider {
    aws: Aws,
}

impl RepositoryProvider {
    pub fn new(aws: &Aws) -> RepositoryProvider {
        RepositoryProvider { aws: aws.clone() }
    }

    /// The repository as it is; `prior` (the inputs in state, or nothing for an import) only
    /// decides how AWS's answers are shown where they cannot be told apart.
    /// Also returns the repository's `cairn:urn` tag.
    async fn observe(
        &self,
        ctx: Context<'_>,
        r: &RepoRef,
        prior: &Value,
    ) -> Result<Option<(Observed, Option<String>)>, ProviderError> {
        let ecr = self.aws.ecr(&r.region).await;
        let described = ecr
            .describe_repositories()
            .set_registry_id(r.registry_id.clone())
            .repository_names(&r.name)
            .send()
            .await
            .op(ECR, "DescribeRepositories");
        let Some(described) = found(described, &["RepositoryNotFoundException"]).at(ctx)? else {
            return Ok(None);
        };
        let Some(repo) = described.repositories().iter().find(|x| x.repository_name() == Some(r.name.as_str())) else {
            return Ok(None);
        };
        let arn = repo.repository_arn().unwrap_or_default().to_string();
        let registry_id = repo.registry_id().unwrap_or_default().to_string();
        let lifecycle = ecr
            .get_lifecycle_policy()
            .registry_id(&registry_id)
            .repository_name(&r.name)
            .send()
            .await
            .op(ECR, "GetLifecyclePolicy");
        let lifecycle = found(lifecycle, &["LifecyclePolicyNotFoundException"])
            .at(ctx)?
            .and_then(|o| o.lifecycle_policy_text().map(str::to_string));
        let policy = ecr
            .get_repository_policy()
            .registry_id(&registry_id)
            .repository_name(&r.name)
            .send()
            .await
            .op(ECR, "GetRepositoryPolicy");
        let policy = found(policy, &["RepositoryPolicyNotFoundException"])
            .at(ctx)?
            .and_then(|o| o.policy_text().map(str::to_string));
        let tags =
            ecr.list_tags_for_resource().resource_arn(&arn).send().await.op(ECR, "ListTagsForResource").at(ctx)?;
        let tags: BTreeMap<String, String> =
            tags.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect();

        let encryption = match repo.encryption_configuration() {
            Some(e) if e.encryption_type() == &EncryptionType::Kms => {
                // With no key given, AWS picks the managed aws/ecr key and reports its ARN: show
                // "unset" while the program leaves it unset, so that this is not drift.
                let prior_unset = prior.pointer("/encryption/type") == Some(&json!("KMS"))
                    && prior.pointer("/encryption/kms_key").is_none_or(Value::is_null);
                let key = if prior_unset { None } else { e.kms_key() };
                json!({"type": "KMS", "kms_key": key})
            }
            Some(e) => json!({"type": e.encryption_type().as_str()}),
            None => json!({"type": "AES256"}),
        };
        let prior_text = |k: &str| prior.get(k).and_then(Value::as_str);
        let inputs = json!({
            "name": r.name,
            "region": r.region,
            "scan_on_push": repo.image_scanning_configuration().is_some_and(|s| s.scan_on_push()),
            "image_tag_mutability": repo.image_tag_mutability().map(|m| m.as_str()).unwrap_or("MUTABLE"),
            "encryption": encryption,
            "lifecycle_policy": lifecycle.map(|t| same_json_or(t, prior_text("lifecycle_policy"))),
            "repository_policy": policy.map(|t| same_json_or(t, prior_text("repository_policy"))),
            "tags": user_tags(tags.clone()),
            "force_delete": prior.get("force_delete").and_then(Value::as_bool).unwrap_or(false),
        });
        let outputs = json!({
            "arn": arn,
            "repository_uri": repo.repository_uri().unwrap_or_default(),
            "registry_id": registry_id,
            "name": r.name,
        });
        Ok(Some((Observed { id: arn, inputs, outputs }, tags.get(TAG_URN).cloned())))
    }
}

#[async_trait::async_trait]
impl Provider for RepositoryProvider {
    fn type_token(&self) -> &'static str {
        Repository::TYPE
    }

    fn identity(&self, inputs: &Value) -> Value {
        json!({"region": inputs.get("region"), "name": inputs.get("name")})
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let args = RepoArgs::parse(inputs).map_err(|e| invalid(ctx, e))?;
        let region = self.aws.region(args.region.as_deref()).await.map_err(|e| invalid(ctx, e))?;
        let ecr = self.aws.ecr(&region).await;
        let enc = args.encryption();
        let encryption = EncryptionConfiguration::builder()
            .encryption_type(EncryptionType::from(enc.kind.as_str()))
            .set_kms_key(enc.kms_key.clone())
            .build()
            .map_err(|e| build_error(ctx, "the encryption configuration", e))?;
        let tags = all_tags(ctx, &args.tags)
            .iter()
            .map(|(k, v)| tag(k, v))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| build_error(ctx, "tags", e))?;
        let created = ecr
            .create_repository()
            .repository_name(&args.name)
            .image_scanning_configuration(ImageScanningConfiguration::builder().scan_on_push(args.scan_on_push).build())
            .image_tag_mutability(ImageTagMutability::from(args.image_tag_mutability.as_str()))
            .encryption_configuration(encryption)
            .set_tags(Some(tags))
            .send()
            .await
            .op(ECR, "CreateRepository")
            .at(ctx)?;
        let repo = created.repository().ok_or_else(|| invalid(ctx, "ECR CreateRepository returned no repository"))?;
        let arn = repo.repository_arn().unwrap_or_default().to_string();
        let registry_id = repo.registry_id().unwrap_or_default().to_string();
        // If a policy is refused now, the repository exists without it: the error leaves the
        // create pending, and the next run finds the repository (by name and tag) and updates it.
        if let Some(p) = &args.lifecycle_policy {
            ecr.put_lifecycle_policy()
                .registry_id(&registry_id)
                .repository_name(&args.name)
                .lifecycle_policy_text(p)
                .send()
                .await
                .op(ECR, "PutLifecyclePolicy")
                .at(ctx)?;
        }
        if let Some(p) = &args.repository_policy {
            ecr.set_repository_policy()
                .registry_id(&registry_id)
                .repository_name(&args.name)
                .policy_text(p)
                .send()
                .await
                .op(ECR, "SetRepositoryPolicy")
                .at(ctx)?;
        }
        let outputs = json!({
            "arn": arn,
            "repository_uri": repo.repository_uri().unwrap_or_default(),
            "registry_id": registry_id,
            "name": args.name,
        });
        Ok(Created { id: arn, outputs })
    }

    async fn read(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        let r = locate(&self.aws, ctx, id, inputs).await?;
        Ok(self.observe(ctx, &r, inputs).await?.map(|(seen, _)| seen))
    }

    async fn update(&self, ctx: Context<'_>, id: &str, old: &Value, new: &Value) -> Result<Value, ProviderError> {
        let old = RepoArgs::parse(old).map_err(|e| invalid(ctx, e))?;
        let new = RepoArgs::parse(new).map_err(|e| invalid(ctx, e))?;
        let r = locate(&self.aws, ctx, id, &json!({"region": new.region})).await?;
        if r.name != new.name || (new.region.is_some() && new.region.as_deref() != Some(r.region.as_str())) {
            return Err(invalid(ctx, format!("{id} cannot be renamed or moved in place; it must be replaced")));
        }
        if old.encryption() != new.encryption() {
            return Err(invalid(ctx, format!("the encryption of {id} cannot change in place; it must be replaced")));
        }
        let ecr = self.aws.ecr(&r.region).await;
        let registry = r.registry_id.clone();
        if old.scan_on_push != new.scan_on_push {
            ecr.put_image_scanning_configuration()
                .set_registry_id(registry.clone())
                .repository_name(&r.name)
                .image_scanning_configuration(
                    ImageScanningConfiguration::builder().scan_on_push(new.scan_on_push).build(),
                )
                .send()
                .await
                .op(ECR, "PutImageScanningConfiguration")
                .at(ctx)?;
        }
        if old.image_tag_mutability != new.image_tag_mutability {
            ecr.put_image_tag_mutability()
                .set_registry_id(registry.clone())
                .repository_name(&r.name)
                .image_tag_mutability(ImageTagMutability::from(new.image_tag_mutability.as_str()))
                .send()
                .await
                .op(ECR, "PutImageTagMutability")
                .at(ctx)?;
        }
        if old.lifecycle_policy != new.lifecycle_policy {
            match &new.lifecycle_policy {
                Some(p) => ecr
                    .put_lifecycle_policy()
                    .set_registry_id(registry.clone())
                    .repository_name(&r.name)
                    .lifecycle_policy_text(p)
                    .send()
                    .await
                    .op(ECR, "PutLifecyclePolicy")
                    .map(|_| ())
                    .at(ctx)?,
                None => gone_ok(
                    ecr.delete_lifecycle_policy()
                        .set_registry_id(registry.clone())
                        .repository_name(&r.name)
                        .send()
                        .await
                        .op(ECR, "DeleteLifecyclePolicy"),
                    &["LifecyclePolicyNotFoundException"],
                )
                .at(ctx)?,
            }
        }
        if old.repository_policy != new.repository_policy {
            match &new.repository_policy {
                Some(p) => ecr
                    .set_repository_policy()
                    .set_registry_id(registry.clone())
                    .repository_name(&r.name)
                    .policy_text(p)
                    .send()
                    .await
                    .op(ECR, "SetRepositoryPolicy")
                    .map(|_| ())
                    .at(ctx)?,
                None => gone_ok(
                    ecr.delete_repository_policy()
                        .set_registry_id(registry.clone())
                        .repository_name(&r.name)
                        .send()
                        .await
                        .op(ECR, "DeleteRepositoryPolicy"),
                    &["RepositoryPolicyNotFoundException"],
                )
                .at(ctx)?,
            }
        }
        let (seen, _) = self
            .observe(ctx, &r, &Value::Null)
            .await?
            .ok_or_else(|| invalid(ctx, format!("{id} no longer exists; refresh, then deploy to create it again")))?;
        let arn = seen.id.clone();
        let removed: Vec<String> = old.tags.keys().filter(|k| !new.tags.contains_key(*k)).cloned().collect();
        if !removed.is_empty() {
            ecr.untag_resource()
                .resource_arn(&arn)
                .set_tag_keys(Some(removed))
                .send()
                .await
                .op(ECR, "UntagResource")
                .at(ctx)?;
        }
        // Always: this also moves the `cairn:urn` tag along with a renamed (aliased) resource.
        let tags = all_tags(ctx, &new.tags)
            .iter()
            .map(|(k, v)| tag(k, v))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| build_error(ctx, "tags", e))?;
        ecr.tag_resource().resource_arn(&arn).set_tags(Some(tags)).send().await.op(ECR, "TagResource").at(ctx)?;
        Ok(seen.outputs)
    }

    async fn delete(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<(), ProviderError> {
        let r = locate(&self.aws, ctx, id, inputs).await?;
        let force = inputs.get("force_delete").and_then(Value::as_bool).unwrap_or(false);
        let ecr = self.aws.ecr(&r.region).await;
        let deleted = ecr
            .delete_repository()
            .set_registry_id(r.registry_id.clone())
            .repository_name(&r.name)
            .force(force)
            .send()
            .await
            .op(ECR, "DeleteRepository");
        gone_ok(deleted, &["RepositoryNotFoundException"]).at(ctx)
    }

    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        let Some(name) = identity.get("name").and_then(Value::as_str) else {
            return Ok(None);
        };
        let r = locate(&self.aws, ctx, name, identity).await?;
        // Only a repository created for this resource: another one of the same name is not ours.
        Ok(if_tagged_for(ctx, self.observe(ctx, &r, &Value::Null).await?))
    }
}

/// The registry's replication configuration in one region: images pushed there are copied to
/// the destinations.
///
/// There is one per registry and region, so a program declares at most one per region.
/// Creating it refuses to overwrite a different configuration that is already there (import
/// it instead, with its region as id); deleting it clears the rules. Changing `region`
/// replaces it; the rules change in place.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicationConfiguration {
    /// The region; `None`: the region of the `aws` provider configuration chosen for the
    /// resource or its component (see [`crate::Settings`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub rules: Vec<ReplicationRule>,
}

/// One replication rule: where to, and (optionally) for which repositories.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicationRule {
    pub destinations: Vec<ReplicationDestination>,
    /// Repository name prefixes; empty: every repository.
    pub repository_prefixes: Vec<String>,
}

/// A replication destination: a region of a registry (an account id).
#[derive(Debug, Clone, Serialize)]
pub struct ReplicationDestination {
    pub region: String,
    pub registry_id: Input<String>,
}

cairn::outputs! {
    /// The outputs of a [`ReplicationConfiguration`].
    pub struct ReplicationConfigurationOutputs {
        pub registry_id: String,
    }
}

impl Resource for ReplicationConfiguration {
    const TYPE: &'static str = "aws:ecr:ReplicationConfiguration";
    const PROVIDER_INPUTS: &'static [&'static str] = &["region"];
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["region"];
    type Outputs = ReplicationConfigurationOutputs;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleArgs {
    destinations: Vec<DestinationArgs>,
    #[serde(default)]
    repository_prefixes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DestinationArgs {
    region: String,
    registry_id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplicationArgs {
    #[serde(default)]
    region: Option<String>,
    rules: Vec<RuleArgs>,
}

impl ReplicationArgs {
    fn parse(inputs: &Value) -> Result<ReplicationArgs, String> {
        let t = ReplicationConfiguration::TYPE;
        let args: ReplicationArgs = parse_inputs(t, inputs)?;
        if args.rules.is_empty() || args.rules.len() > 10 {
            return Err(format!("{t}: `rules` must hold 1 to 10 rules, got {}", args.rules.len()));
        }
        for (i, rule) in args.rules.iter().enumerate() {
            if rule.destinations.is_empty() {
                return Err(format!("{t}: `rules[{i}].destinations` must not be empty"));
            }
            for (j, d) in rule.destinations.iter().enumerate() {
                if d.region.is_empty() {
                    return Err(format!("{t}: `rules[{i}].destinations[{j}].region` must not be empty"));
                }
                if d.registry_id.len() != 12 || !d.registry_id.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!(
                        "{t}: `rules[{i}].destinations[{j}].registry_id` must be a 12-digit account id, got `{}`",
                        d.registry_id
                    ));
                }
            }
            if let Some(p) = rule.repository_prefixes.iter().find(|p| p.len() < 2 || p.len() > 256) {
                return Err(format!("{t}: `rules[{i}].repository_prefixes` entry `{p}` must be 2 to 256 characters"));
            }
        }
        Ok(args)
    }
}

fn sdk_rules(ctx: Context<'_>, rules: &[RuleArgs]) -> Result<Vec<SdkReplicationRule>, ProviderError> {
    let build = |e: aws_sdk_ecr::error::BuildError| build_error(ctx, "the replication configuration", e);
    rules
        .iter()
        .map(|r| {
            let destinations = r
                .destinations
                .iter()
                .map(|d| SdkDestination::builder().region(&d.region).registry_id(&d.registry_id).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(build)?;
            let filters = r
                .repository_prefixes
                .iter()
                .map(|p| RepositoryFilter::builder().filter(p).filter_type(RepositoryFilterType::PrefixMatch).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(build)?;
            SdkReplicationRule::builder()
                .set_destinations(Some(destinations))
                .set_repository_filters(if filters.is_empty() { None } else { Some(filters) })
                .build()
                .map_err(build)
        })
        .collect()
}

fn rules_of(rules: &[SdkReplicationRule]) -> Vec<RuleArgs> {
    rules
        .iter()
        .map(|r| RuleArgs {
            destinations: r
                .destinations()
                .iter()
                .map(|d| DestinationArgs { region: d.region().to_string(), registry_id: d.registry_id().to_string() })
                .collect(),
            repository_prefixes: r.repository_filters().iter().map(|f| f.filter().to_string()).collect(),
        })
        .collect()
}

/// The provider of [`ReplicationConfiguration`]. Its id is the region.
#[derive(Debug, Clone)]
pub struct ReplicationConfigurationProvider {
    aws: Aws,
}

impl ReplicationConfigurationProvider {
    pub fn new(aws: &Aws) -> ReplicationConfigurationProvider {
        ReplicationConfigurationProvider { aws: aws.clone() }
    }

    /// (registry id, rules) of the region's registry.
    async fn current(&self, region: &str) -> Result<(String, Vec<RuleArgs>), AwsError> {
        let out = self.aws.ecr(region).await.describe_registry().send().await.op(ECR, "DescribeRegistry")?;
        let rules = out.replication_configuration().map(|c| rules_of(c.rules())).unwrap_or_default();
        Ok((out.registry_id().unwrap_or_default().to_string(), rules))
    }

    async fn put(&self, ctx: Context<'_>, region: &str, rules: &[RuleArgs]) -> Result<(), ProviderError> {
        let config = aws_sdk_ecr::types::ReplicationConfiguration::builder()
            .set_rules(Some(sdk_rules(ctx, rules)?))
            .build()
            .map_err(|e| build_error(ctx, "the replication configuration", e))?;
        self.aws
            .ecr(region)
            .await
            .put_replication_configuration()
            .replication_configuration(config)
            .send()
            .await
            .op(ECR, "PutReplicationConfiguration")
            .at(ctx)
            .map(|_| ())
    }

    async fn observe(&self, ctx: Context<'_>, region: &str) -> Result<Option<Observed>, ProviderError> {
        let (registry_id, rules) = self.current(region).await.at(ctx)?;
        if rules.is_empty() {
            return Ok(None);
        }
        Ok(Some(Observed {
            id: region.to_string(),
            inputs: json!({"region": region, "rules": rules}),
            outputs: json!({"registry_id": registry_id}),
        }))
    }
}

#[async_trait::async_trait]
impl Provider for ReplicationConfigurationProvider {
    fn type_token(&self) -> &'static str {
        ReplicationConfiguration::TYPE
    }

    fn identity(&self, inputs: &Value) -> Value {
        json!({"region": inputs.get("region"), "rules": inputs.get("rules")})
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let args = ReplicationArgs::parse(inputs).map_err(|e| invalid(ctx, e))?;
        let region = self.aws.region(args.region.as_deref()).await.map_err(|e| invalid(ctx, e))?;
        let (registry_id, existing) = self.current(&region).await.at(ctx)?;
        if !existing.is_empty() && existing != args.rules {
            return Err(invalid(
                ctx,
                format!(
                    "the registry {registry_id} already has a different replication configuration in {region}; \
                     import it (id `{region}`) instead of overwriting it"
                ),
            ));
        }
        self.put(ctx, &region, &args.rules).await?;
        Ok(Created { id: region, outputs: json!({"registry_id": registry_id}) })
    }

    async fn read(&self, ctx: Context<'_>, id: &str, _inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        self.observe(ctx, id).await
    }

    async fn update(&self, ctx: Context<'_>, id: &str, _old: &Value, new: &Value) -> Result<Value, ProviderError> {
        let args = ReplicationArgs::parse(new).map_err(|e| invalid(ctx, e))?;
        self.put(ctx, id, &args.rules).await?;
        let (registry_id, _) = self.current(id).await.at(ctx)?;
        Ok(json!({"registry_id": registry_id}))
    }

    async fn delete(&self, ctx: Context<'_>, id: &str, _inputs: &Value) -> Result<(), ProviderError> {
        self.put(ctx, id, &[]).await
    }

    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        let region =
            self.aws.region(identity.get("region").and_then(Value::as_str)).await.map_err(|e| invalid(ctx, e))?;
        let Some(seen) = self.observe(ctx, &region).await? else {
            return Ok(None);
        };
        // Not taggable: it is ours if it is exactly what this resource would have written.
        Ok(if_unrecorded(ctx, (seen.inputs.get("rules") == identity.get("rules")).then_some(seen)))
    }
}

// ---------------------------------------------------------------------------------------------
// Registry scanning
// ---------------------------------------------------------------------------------------------

/// How images of a region's private registry are scanned for vulnerabilities: basic scanning
/// (on push, free) or enhanced (Amazon Inspector: on push and continuously), for the
/// repositories matching each rule's filters. One per registry and region: its id is the
/// region, and deleting it puts back AWS's default (basic scanning, no rules: each
/// repository's own `scan_on_push` decides). Changing `region` replaces it.
#[derive(Debug, Clone, Serialize)]
pub struct RegistryScanningConfiguration {
    /// The region; `None`: the `aws` provider configuration's (see [`crate::Settings`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub scan_type: ScanType,
    pub rules: Vec<ScanningRule>,
}

impl RegistryScanningConfiguration {
    /// Basic scanning on push of every repository.
    pub fn scan_on_push() -> RegistryScanningConfiguration {
        RegistryScanningConfiguration {
            region: None,
            scan_type: ScanType::Basic,
            rules: vec![ScanningRule { frequency: ScanFrequency::ScanOnPush, repository_filters: vec!["*".into()] }],
        }
    }
}

/// Which scanner a [`RegistryScanningConfiguration`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ScanType {
    Basic,
    /// Amazon Inspector (charged per image).
    Enhanced,
}

/// When the repositories a rule matches are scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ScanFrequency {
    ScanOnPush,
    /// Enhanced scanning only: again whenever new vulnerabilities are published.
    ContinuousScan,
    Manual,
}

/// One rule of a [`RegistryScanningConfiguration`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanningRule {
    pub frequency: ScanFrequency,
    /// Repository name patterns with `*` wildcards, e.g. `runner*`, or `*` for every one.
    pub repository_filters: Vec<String>,
}

cairn::outputs! {
    /// The outputs of a [`RegistryScanningConfiguration`].
    pub struct RegistryScanningConfigurationOutputs {
        pub registry_id: String,
    }
}

impl Resource for RegistryScanningConfiguration {
    const TYPE: &'static str = "aws:ecr:RegistryScanningConfiguration";
    const PROVIDER_INPUTS: &'static [&'static str] = &["region"];
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["region"];
    type Outputs = RegistryScanningConfigurationOutputs;
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScanningArgs {
    #[serde(default)]
    region: Option<String>,
    scan_type: ScanType,
    rules: Vec<ScanningRule>,
}

impl ScanningArgs {
    fn parse(inputs: &Value) -> Result<ScanningArgs, String> {
        let t = RegistryScanningConfiguration::TYPE;
        let args: ScanningArgs = parse_inputs(t, inputs)?;
        if args.rules.len() > 2 {
            return Err(format!("{t}: `rules` holds at most 2 rules (one per frequency), got {}", args.rules.len()));
        }
        for (i, rule) in args.rules.iter().enumerate() {
            if rule.repository_filters.is_empty() || rule.repository_filters.len() > 100 {
                return Err(format!("{t}: `rules[{i}].repository_filters` must hold 1 to 100 patterns"));
            }
            if let Some(f) = rule.repository_filters.iter().find(|f| f.is_empty() || f.len() > 255) {
                return Err(format!("{t}: `rules[{i}].repository_filters` entry `{f}` must be 1 to 255 characters"));
            }
            let allowed = match args.scan_type {
                ScanType::Basic => matches!(rule.frequency, ScanFrequency::ScanOnPush | ScanFrequency::Manual),
                ScanType::Enhanced => {
                    matches!(rule.frequency, ScanFrequency::ScanOnPush | ScanFrequency::ContinuousScan)
                }
            };
            if !allowed {
                return Err(format!(
                    "{t}: `rules[{i}].frequency` {:?} does not go with `scan_type` {:?}",
                    rule.frequency, args.scan_type
                ));
            }
        }
        Ok(args)
    }
}

provider! {
    /// The provider of [`RegistryScanningConfiguration`].
    RegistryScanningConfigurationProvider(ScanningApi)
}

impl RegistryScanningConfigurationProvider {
    pub fn new(aws: &Aws) -> RegistryScanningConfigurationProvider {
        RegistryScanningConfigurationProvider(Managed(ScanningApi { aws: aws.clone() }))
    }
}

#[derive(Debug, Clone)]
struct ScanningApi {
    aws: Aws,
}

impl ScanningApi {
    async fn put(
        &self,
        ctx: Context<'_>,
        region: &str,
        scan_type: ScanType,
        rules: &[ScanningRule],
    ) -> Result<(), ProviderError> {
        let build = |e: aws_sdk_ecr::error::BuildError| build_error(ctx, "the scanning configuration", e);
        let rules = rules
            .iter()
            .map(|r| {
                let filters = r
                    .repository_filters
                    .iter()
                    .map(|f| {
                        ScanningRepositoryFilter::builder()
                            .filter(f)
                            .filter_type(ScanningRepositoryFilterType::Wildcard)
                            .build()
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(build)?;
                let frequency = match r.frequency {
                    ScanFrequency::ScanOnPush => SdkScanFrequency::ScanOnPush,
                    ScanFrequency::ContinuousScan => SdkScanFrequency::ContinuousScan,
                    ScanFrequency::Manual => SdkScanFrequency::Manual,
                };
                RegistryScanningRule::builder()
                    .scan_frequency(frequency)
                    .set_repository_filters(Some(filters))
                    .build()
                    .map_err(build)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let scan_type = if scan_type == ScanType::Enhanced { SdkScanType::Enhanced } else { SdkScanType::Basic };
        self.aws
            .ecr(region)
            .await
            .put_registry_scanning_configuration()
            .scan_type(scan_type)
            .set_rules(Some(rules))
            .send()
            .await
            .op(ECR, "PutRegistryScanningConfiguration")
            .at(ctx)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Api for ScanningApi {
    type Resource = RegistryScanningConfiguration;
    type Args = ScanningArgs;
    /// Not taggable: the registry's one configuration is found by its region.
    const TAGGED: bool = false;

    fn parse(inputs: &Value) -> Result<ScanningArgs, String> {
        ScanningArgs::parse(inputs)
    }

    fn identity(inputs: &Value) -> Value {
        json!({"region": inputs.get("region")})
    }

    async fn create(&self, ctx: Context<'_>, args: &ScanningArgs) -> Result<String, CreateError> {
        let region = self.aws.region(args.region.as_deref()).await.map_err(|e| invalid(ctx, e))?;
        self.put(ctx, &region, args.scan_type, &args.rules).await?;
        Ok(region)
    }

    async fn observe(&self, ctx: Context<'_>, id: &str, _prior: &Value) -> Result<Option<Seen>, ProviderError> {
        let out = self
            .aws
            .ecr(id)
            .await
            .get_registry_scanning_configuration()
            .send()
            .await
            .op(ECR, "GetRegistryScanningConfiguration")
            .at(ctx)?;
        let config = out.scanning_configuration();
        let scan_type = match config.and_then(|c| c.scan_type()) {
            Some(SdkScanType::Enhanced) => "ENHANCED",
            _ => "BASIC",
        };
        let rules: Vec<Value> = config
            .map(|c| c.rules())
            .unwrap_or_default()
            .iter()
            .map(|r| {
                json!({
                    "frequency": r.scan_frequency().as_str(),
                    "repository_filters": r.repository_filters().iter().map(|f| f.filter()).collect::<Vec<_>>(),
                })
            })
            .collect();
        let inputs = json!({"region": id, "scan_type": scan_type, "rules": rules});
        Ok(Some(Seen::new(id, inputs, json!({"registry_id": out.registry_id().unwrap_or_default()}), None)))
    }

    async fn update(
        &self,
        ctx: Context<'_>,
        id: &str,
        _old: &ScanningArgs,
        new: &ScanningArgs,
    ) -> Result<(), ProviderError> {
        self.put(ctx, id, new.scan_type, &new.rules).await
    }

    async fn delete(&self, ctx: Context<'_>, id: &str, _prior: &Value) -> Result<(), ProviderError> {
        self.put(ctx, id, ScanType::Basic, &[]).await
    }

    async fn candidates(&self, ctx: Context<'_>, identity: &Value) -> Result<Vec<String>, ProviderError> {
        let region =
            self.aws.region(identity.get("region").and_then(Value::as_str)).await.map_err(|e| invalid(ctx, e))?;
        Ok(vec![region])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_follow_ecr_rules() {
        for ok in ["ab", "team/app", "a.b_c-d/e", "x1/y2/z3"] {
            assert!(valid_repository_name(ok), "{ok}");
        }
        for bad in ["Bad", "a b", "a//b", "/a", "a/", "a..b", "a-", "_a"] {
            assert!(!valid_repository_name(bad), "{bad}");
        }
    }

    #[test]
    fn validation_names_the_field() {
        let base = json!({"name": "app", "region": "us-east-1"});
        let with = |k: &str, v: Value| {
            let mut i = base.clone();
            i[k] = v;
            RepoArgs::parse(&i).unwrap_err()
        };
        assert!(with("name", json!("")).contains("`name` must not be empty"));
        assert!(with("name", json!("Has Space")).contains("`name`"));
        assert!(with("image_tag_mutability", json!("SOMETIMES")).contains("`image_tag_mutability`"));
        assert!(with("encryption", json!({"type": "ROT13"})).contains("`encryption.type`"));
        assert!(with("lifecycle_policy", json!("{not json")).contains("`lifecycle_policy`"));
        assert!(with("tags", json!({"cairn:urn": "x"})).contains("reserved"));
        assert!(with("colour", json!("red")).contains("unknown field `colour`"));
        assert!(RepoArgs::parse(&base).is_ok());
    }

    #[test]
    fn program_side_serialization_is_what_the_provider_reads() {
        let mut r = Repository::new("app").in_region("us-east-1");
        r.encryption = Encryption::Kms { kms_key: Some("arn:aws:kms:us-east-1:1:key/k".into()) };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["encryption"], json!({"type": "KMS", "kms_key": "arn:aws:kms:us-east-1:1:key/k"}));
        assert_eq!(v["image_tag_mutability"], json!("MUTABLE"));
        assert!(RepoArgs::parse(&v).is_ok());
        let v = serde_json::to_value(Repository::new("app").in_region("us-east-1")).unwrap();
        assert_eq!(v["encryption"], json!({"type": "AES256"}));
    }
}
