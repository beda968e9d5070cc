//! The shared AWS context: configuration, one SDK client per service and region, and the
//! mapping of SDK errors to [`ProviderError`]s.
//!
//! Configuration comes from the standard chain (`aws_config::defaults`: environment, shared
//! profile files with `credential_process` and SSO, web identity, ECS and IMDS credentials),
//! with a few explicit overrides ([`AwsConfig`]): an endpoint that every service is sent to (a
//! local emulator), static credentials, the default region, retry attempts and timeouts. The chain is loaded
//! once, lazily, on the first call; each (service, region) pair then gets one client, built
//! from that shared configuration, so credentials are resolved and cached once.
//!
//! Nothing here is public except [`Aws`] and [`AwsConfig`], and neither exposes an SDK type.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ecr::config::http::HttpResponse;
use aws_sdk_ecr::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use cairn::provider::{Context, Observed, ProviderError};
use serde_json::Value;
use tokio::sync::OnceCell;

/// How to reach AWS. The defaults follow the standard chain; every field overrides it.
#[derive(Clone)]
pub struct AwsConfig {
    /// Send every service's requests to this URL (for example a local emulator). Unset: the
    /// standard chain's (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`, profile), or AWS.
    pub endpoint_url: Option<String>,
    /// Use these credentials instead of the standard chain (access key id, secret key).
    pub static_credentials: Option<(String, String)>,
    /// The region of resources whose inputs and id do not say (imports by bare name). Unset:
    /// the standard chain's (`AWS_REGION`, profile, IMDS).
    pub default_region: Option<String>,
    /// Attempts per operation, first one included, in the standard retry mode (which backs
    /// off exponentially with jitter on throttling, 5xx and transient network errors).
    pub max_attempts: u32,
    /// First backoff of the standard retry mode.
    pub initial_backoff: Duration,
    /// Time limit of one operation, retries included.
    pub operation_timeout: Duration,
    /// Time limit of one attempt of an operation.
    pub attempt_timeout: Duration,
    /// Time limit to establish a connection.
    pub connect_timeout: Duration,
    /// Read profiles from this file (in the format of `~/.aws/config`, credentials included)
    /// instead of the standard files. Unset: the standard chain's (`AWS_CONFIG_FILE`,
    /// `AWS_SHARED_CREDENTIALS_FILE`, `~/.aws/`).
    pub profile_file: Option<std::path::PathBuf>,
}

impl Default for AwsConfig {
    fn default() -> AwsConfig {
        AwsConfig {
            endpoint_url: None,
            static_credentials: None,
            default_region: None,
            max_attempts: 3,
            initial_backoff: Duration::from_secs(1),
            operation_timeout: Duration::from_secs(120),
            attempt_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            profile_file: None,
        }
    }
}

impl fmt::Debug for AwsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsConfig")
            .field("endpoint_url", &self.endpoint_url)
            .field("static_credentials", &self.static_credentials.as_ref().map(|(id, _)| (id, "[secret]")))
            .field("default_region", &self.default_region)
            .field("max_attempts", &self.max_attempts)
            .field("initial_backoff", &self.initial_backoff)
            .field("operation_timeout", &self.operation_timeout)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("profile_file", &self.profile_file)
            .finish()
    }
}

/// The AWS context shared by every provider of a program: configuration loaded once, and one
/// client per service and region, created on first use. Cheap to clone.
#[derive(Clone)]
pub struct Aws {
    inner: Arc<Inner>,
}

struct Inner {
    config: AwsConfig,
    /// The configuration of each profile used (`None`: the standard chain's).
    bases: Mutex<HashMap<Option<String>, Arc<OnceCell<SdkConfig>>>>,
    /// One client per (service, profile, region): the key's type is the SDK client's.
    clients: Mutex<HashMap<ClientKey, SharedClient>>,
}

/// (the SDK client's type, the profile, the region).
type ClientKey = (TypeId, Option<String>, String);

tokio::task_local! {
    /// The profile of the provider configuration of the resource being worked on (see
    /// [`Profiled`]): every client made or used during the call is that profile's.
    static PROFILE: Option<String>;
}

/// The profile the current provider call runs under.
fn current_profile() -> Option<String> {
    PROFILE.try_with(Clone::clone).ok().flatten()
}

/// A provider whose calls run under the profile of the resource's `aws` provider
/// configuration (`Context::settings["profile"]`), so that the clients it uses carry that
/// profile's credentials.
pub(crate) struct Profiled<P>(pub P);

fn profile_of(ctx: &Context<'_>) -> Option<String> {
    ctx.settings.get("profile").and_then(Value::as_str).map(str::to_string)
}

#[async_trait::async_trait]
impl<P: cairn::provider::Provider> cairn::provider::Provider for Profiled<P> {
    fn type_token(&self) -> &'static str {
        self.0.type_token()
    }
    fn identity(&self, inputs: &Value) -> Value {
        self.0.identity(inputs)
    }
    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<cairn::provider::Created, ProviderError> {
        PROFILE.scope(profile_of(&ctx), self.0.create(ctx, inputs)).await
    }
    async fn read(
        &self,
        ctx: Context<'_>,
        id: &str,
        inputs: &Value,
    ) -> Result<Option<cairn::provider::Observed>, ProviderError> {
        PROFILE.scope(profile_of(&ctx), self.0.read(ctx, id, inputs)).await
    }
    fn read_batch(&self) -> usize {
        self.0.read_batch()
    }
    /// The engine batches resources of one provider configuration, so one profile.
    async fn read_many(
        &self,
        items: &[cairn::provider::ReadItem<'_>],
    ) -> Result<Vec<Option<cairn::provider::Observed>>, ProviderError> {
        let profile = items.first().and_then(|i| profile_of(&i.ctx));
        PROFILE.scope(profile, self.0.read_many(items)).await
    }
    async fn update(&self, ctx: Context<'_>, id: &str, old: &Value, new: &Value) -> Result<Value, ProviderError> {
        PROFILE.scope(profile_of(&ctx), self.0.update(ctx, id, old, new)).await
    }
    async fn delete(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<(), ProviderError> {
        PROFILE.scope(profile_of(&ctx), self.0.delete(ctx, id, inputs)).await
    }
    async fn find(
        &self,
        ctx: Context<'_>,
        identity: &Value,
    ) -> Result<Option<cairn::provider::Observed>, ProviderError> {
        PROFILE.scope(profile_of(&ctx), self.0.find(ctx, identity)).await
    }
}

/// A client of some service, with its service's name (for counts); its type is in the key.
type SharedClient = (&'static str, Box<dyn Any + Send + Sync>);

/// An SDK client that [`Aws`] can build for a region from the shared configuration.
pub(crate) trait ServiceClient: Clone + Send + Sync + 'static {
    /// The service's name in errors and counts, e.g. `ECR`.
    const SERVICE: &'static str;
    fn build(base: &SdkConfig, region: &str) -> Self;
}

macro_rules! service_clients {
    ($($krate:ident => $name:literal),* $(,)?) => {$(
        impl ServiceClient for $krate::Client {
            const SERVICE: &'static str = $name;
            fn build(base: &SdkConfig, region: &str) -> Self {
                let conf = $krate::config::Builder::from(base).region(Region::new(region.to_string())).build();
                $krate::Client::from_conf(conf)
            }
        }
    )*};
}

service_clients! {
    aws_sdk_ecr => "ECR",
    aws_sdk_sns => "SNS",
    aws_sdk_cloudwatchlogs => "CloudWatchLogs",
    aws_sdk_cloudwatch => "CloudWatch",
    aws_sdk_ec2 => "EC2",
    aws_sdk_autoscaling => "AutoScaling",
    aws_sdk_route53 => "Route53",
    aws_sdk_resourcegroupstagging => "ResourceGroupsTagging",
    aws_sdk_iam => "IAM",
    aws_sdk_elasticloadbalancingv2 => "ELBv2",
}

impl fmt::Debug for Aws {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aws").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

impl Default for Aws {
    fn default() -> Aws {
        Aws::new(AwsConfig::default())
    }
}

impl Aws {
    pub fn new(config: AwsConfig) -> Aws {
        Aws { inner: Arc::new(Inner { config, bases: Mutex::default(), clients: Mutex::default() }) }
    }

    /// The standard chain with no overrides.
    pub fn from_env() -> Aws {
        Aws::default()
    }

    pub fn config(&self) -> &AwsConfig {
        &self.inner.config
    }

    /// The shared configuration of the current call's profile, loaded once per profile.
    async fn base(&self) -> SdkConfig {
        let profile = current_profile();
        let cell = self.inner.bases.lock().expect("lock poisoned").entry(profile.clone()).or_default().clone();
        cell.get_or_init(|| async {
            let c = &self.inner.config;
            let http = aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
                .build_https();
            let mut loader = aws_config::defaults(BehaviorVersion::latest())
                .http_client(http)
                .retry_config(
                    RetryConfig::standard()
                        .with_max_attempts(c.max_attempts.max(1))
                        .with_initial_backoff(c.initial_backoff),
                )
                .timeout_config(
                    TimeoutConfig::builder()
                        .connect_timeout(c.connect_timeout)
                        .operation_timeout(c.operation_timeout)
                        .operation_attempt_timeout(c.attempt_timeout)
                        .build(),
                );
            if let Some(url) = &c.endpoint_url {
                loader = loader.endpoint_url(url);
            }
            if let Some((id, secret)) = &c.static_credentials {
                loader = loader.credentials_provider(aws_credential_types::Credentials::new(
                    id,
                    secret,
                    None,
                    None,
                    "cairn-static",
                ));
            }
            if let Some(region) = &c.default_region {
                loader = loader.region(Region::new(region.clone()));
            }
            if let Some(file) = &c.profile_file {
                let files = aws_runtime::env_config::file::EnvConfigFiles::builder()
                    .with_file(aws_runtime::env_config::file::EnvConfigFileKind::Config, file)
                    .build();
                loader = loader.profile_files(files);
            }
            if let Some(p) = &profile {
                loader = loader.profile_name(p);
            }
            loader.load().await
        })
        .await
        .clone()
    }

    /// The region to use: the one given, or the configured default; either must be a region
    /// of one of AWS's partitions ([`check_region`]), checked before any call.
    pub(crate) async fn region(&self, given: Option<&str>) -> Result<String, String> {
        if let Some(r) = given.filter(|r| !r.is_empty()) {
            check_region(r).map_err(|e| format!("`region`: {e}"))?;
            return Ok(r.to_string());
        }
        match self.base().await.region() {
            Some(r) => {
                check_region(r.as_ref())
                    .map_err(|e| format!("the default region (AWS_REGION or the profile's): {e}"))?;
                Ok(r.to_string())
            }
            None => Err("no region: set the resource's `region` (or AWS_REGION for imports)".into()),
        }
    }

    /// The client of service `C` for `region`, created on first use and shared after.
    pub(crate) async fn client<C: ServiceClient>(&self, region: &str) -> C {
        let key = (TypeId::of::<C>(), current_profile(), region.to_string());
        if let Some((_, c)) = self.inner.clients.lock().expect("lock poisoned").get(&key) {
            return c.downcast_ref::<C>().expect("clients are keyed by their type").clone();
        }
        let client = C::build(&self.base().await, region);
        let mut clients = self.inner.clients.lock().expect("lock poisoned");
        let (_, entry) = clients.entry(key).or_insert_with(|| (C::SERVICE, Box::new(client)));
        entry.downcast_ref::<C>().expect("clients are keyed by their type").clone()
    }

    pub(crate) async fn ecr(&self, region: &str) -> aws_sdk_ecr::Client {
        self.client(region).await
    }

    pub(crate) async fn sns(&self, region: &str) -> aws_sdk_sns::Client {
        self.client(region).await
    }

    pub(crate) async fn logs(&self, region: &str) -> aws_sdk_cloudwatchlogs::Client {
        self.client(region).await
    }

    pub(crate) async fn cloudwatch(&self, region: &str) -> aws_sdk_cloudwatch::Client {
        self.client(region).await
    }

    pub(crate) async fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        self.client(region).await
    }

    pub(crate) async fn autoscaling(&self, region: &str) -> aws_sdk_autoscaling::Client {
        self.client(region).await
    }

    /// Route 53 is a global service whose API lives in `us-east-1` (in the `aws` partition).
    pub(crate) async fn route53(&self) -> aws_sdk_route53::Client {
        self.client(ROUTE53_REGION).await
    }

    /// IAM is a global service whose API lives in `us-east-1` (in the `aws` partition).
    pub(crate) async fn iam(&self) -> aws_sdk_iam::Client {
        self.client(ROUTE53_REGION).await
    }

    pub(crate) async fn elb(&self, region: &str) -> aws_sdk_elasticloadbalancingv2::Client {
        self.client(region).await
    }

    pub(crate) async fn tagging(&self, region: &str) -> aws_sdk_resourcegroupstagging::Client {
        self.client(region).await
    }

    /// How many clients of each service exist, for tests of the sharing: (service, count),
    /// by service name.
    #[doc(hidden)]
    pub fn client_counts(&self) -> std::collections::BTreeMap<&'static str, usize> {
        let clients = self.inner.clients.lock().expect("lock poisoned");
        let mut counts = std::collections::BTreeMap::new();
        for (service, _) in clients.values() {
            *counts.entry(*service).or_insert(0) += 1;
        }
        counts
    }
}

/// The region name patterns of AWS's partitions, as the SDK's endpoint rules know them
/// (`partitions.json`): a prefix, then `-<direction>-<number>`.
const PARTITIONS: &[(&str, &[&str])] = &[
    ("aws", &["us", "eu", "ap", "sa", "ca", "me", "af", "il", "mx"]),
    ("aws-cn", &["cn"]),
    ("aws-us-gov", &["us-gov"]),
    ("aws-iso", &["us-iso"]),
    ("aws-iso-b", &["us-isob"]),
    ("aws-iso-e", &["eu-isoe"]),
    ("aws-iso-f", &["us-isof"]),
    ("aws-eusc", &["eusc-de"]),
];

/// Checks that `region` is a region name of one of AWS's partitions (`eu-west-1`,
/// `cn-north-1`, `us-gov-west-1`, …): a typo such as `eu-wset-1` or `euwest1` is refused
/// before any call, instead of failing later as an unreachable endpoint.
pub(crate) fn check_region(region: &str) -> Result<(), String> {
    // Every region AWS has named is `<partition prefix>-<direction>-<number>`, with one of
    // these directions; a misspelt direction is the typo the partitions' own pattern lets by.
    const DIRECTIONS: &[&str] =
        &["east", "west", "north", "south", "central", "northeast", "northwest", "southeast", "southwest"];
    let ok = PARTITIONS.iter().any(|(_, prefixes)| {
        prefixes.iter().any(|p| {
            region.strip_prefix(p).and_then(|rest| rest.strip_prefix('-')).is_some_and(|rest| {
                rest.rsplit_once('-').is_some_and(|(direction, number)| {
                    DIRECTIONS.contains(&direction)
                        && !number.is_empty()
                        && number.len() <= 2
                        && number.bytes().all(|b| b.is_ascii_digit())
                })
            })
        })
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{region}` is not an AWS region (regions look like `us-east-1`, `eu-west-1`, `cn-north-1` or \
             `us-gov-west-1`)"
        ))
    }
}

/// The region of the global services' APIs (Route 53, IAM) in the `aws` partition.
pub(crate) const ROUTE53_REGION: &str = "us-east-1";

/// A failed AWS call: which operation, and what AWS (or the network) said.
#[derive(Debug, Clone)]
pub(crate) struct AwsError {
    service: &'static str,
    operation: &'static str,
    code: Option<String>,
    message: String,
}

impl AwsError {
    /// Whether AWS answered with one of these error codes.
    pub(crate) fn is(&self, codes: &[&str]) -> bool {
        self.code.as_deref().is_some_and(|c| codes.contains(&c))
    }

    /// Whether AWS refused the call for its rate: nothing was done, and it may be sent again.
    pub(crate) fn throttled(&self) -> bool {
        self.is(&["Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException", "SlowDown"])
    }

    /// Whether the call may or may not have taken effect: no answer came (a timeout, a
    /// connection reset), or AWS answered with a failure of its own (5xx).
    pub(crate) fn ambiguous(&self) -> bool {
        self.code.is_none()
            || self.is(&["InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable", "RequestTimeout"])
    }

    /// The error as a provider error naming the resource.
    pub(crate) fn at(self, ctx: Context<'_>) -> ProviderError {
        ProviderError::new(format!("`{}`: {self}", ctx.urn))
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{} {} failed: {code}: {}", self.service, self.operation, self.message),
            None => write!(f, "{} {} failed: {}", self.service, self.operation, self.message),
        }
    }
}

/// Names the operation of an SDK call's result.
pub(crate) trait SdkResultExt<T> {
    fn op(self, service: &'static str, operation: &'static str) -> Result<T, AwsError>;
}

impl<T, E> SdkResultExt<T> for Result<T, SdkError<E, HttpResponse>>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    fn op(self, service: &'static str, operation: &'static str) -> Result<T, AwsError> {
        self.map_err(|e| {
            let code = e.code().map(str::to_string);
            let message = match (&code, e.message()) {
                (Some(_), Some(m)) => m.to_string(),
                // No code: a timeout, a network failure, an answer that is not AWS's. Say what
                // happened (the chain of causes) and the HTTP status, if there was an answer.
                _ => {
                    let mut parts = vec![e.to_string()];
                    let mut source = std::error::Error::source(&e);
                    while let Some(s) = source {
                        let text = s.to_string();
                        if !parts.iter().any(|p| p.contains(&text)) {
                            parts.push(text);
                        }
                        source = s.source();
                    }
                    if let Some(r) = e.raw_response() {
                        parts.push(format!("HTTP {}", r.status().as_u16()));
                    }
                    parts.join(": ")
                }
            };
            let forbidden = e.raw_response().is_some_and(|r| r.status().as_u16() == 403);
            let message = match credentials_hint(service, operation, code.as_deref(), &message, forbidden) {
                Some(hint) => format!("{message} ({hint})"),
                None => message,
            };
            AwsError { service, operation, code, message }
        })
    }
}

/// Whose credentials a call used, for the hint of an authentication or permission error.
fn credentials_source() -> String {
    match current_profile() {
        Some(p) => format!("profile `{p}`"),
        None => match std::env::var("AWS_PROFILE") {
            Ok(p) if !p.is_empty() => format!("profile `{p}` (AWS_PROFILE)"),
            _ => "the standard chain's (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or the \
                  `default` profile)"
                .to_string(),
        },
    }
}

/// The IAM action of an operation: the service's prefix in policies, and the operation.
fn iam_action(service: &str, operation: &str) -> String {
    let prefix = match service {
        "ELBv2" => "elasticloadbalancing",
        "CloudWatchLogs" => "logs",
        "ResourceGroupsTagging" => "tag",
        other => return format!("{}:{operation}", other.to_ascii_lowercase()),
    };
    format!("{prefix}:{operation}")
}

/// What to fix when AWS refused the call's credentials, found them expired, or denied the
/// permission, or when there were none: one sentence naming the profile or the variables.
fn credentials_hint(
    service: &str,
    operation: &str,
    code: Option<&str>,
    message: &str,
    forbidden: bool,
) -> Option<String> {
    const INVALID: &[&str] = &[
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "AuthFailure",
        "IncompleteSignature",
        "InvalidSignatureException",
    ];
    const EXPIRED: &[&str] = &["ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"];
    const DENIED: &[&str] =
        &["AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "Unauthorized", "UnauthorizedAccess"];
    let source = credentials_source();
    match code {
        Some(c) if INVALID.contains(&c) => {
            Some(format!("AWS does not accept the credentials of {source}: check its access key and secret key"))
        }
        Some(c) if EXPIRED.contains(&c) => Some(format!(
            "the credentials of {source} have expired: renew them (`aws sso login`, or a new AWS_SESSION_TOKEN)"
        )),
        Some(c) if DENIED.contains(&c) => Some(format!(
            "the identity of {source} may not call this: allow `{}` in its IAM policy",
            iam_action(service, operation)
        )),
        // An answer whose error could not be read, with the status of a refused signature or
        // permission.
        None if forbidden => Some(format!(
            "AWS refused the request (HTTP 403): the credentials of {source} are not valid, or may not call `{}`",
            iam_action(service, operation)
        )),
        None if message.contains("credentials") && (message.contains("no credentials") || message.contains("load")) => {
            Some(format!("no credentials were found for {source}: set them, or name a profile in the `aws` settings"))
        }
        _ => None,
    }
}

/// Turns an [`AwsError`] into a [`ProviderError`] naming the resource.
pub(crate) trait AtUrn<T> {
    fn at(self, ctx: Context<'_>) -> Result<T, ProviderError>;
}

impl<T> AtUrn<T> for Result<T, AwsError> {
    fn at(self, ctx: Context<'_>) -> Result<T, ProviderError> {
        self.map_err(|e| e.at(ctx))
    }
}

/// `Ok(None)` for the given "not found" codes.
pub(crate) fn found<T>(r: Result<T, AwsError>, not_found: &[&str]) -> Result<Option<T>, AwsError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is(not_found) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `Ok(())` for the given "not found" codes: deleting what is gone succeeds.
pub(crate) fn gone_ok<T>(r: Result<T, AwsError>, not_found: &[&str]) -> Result<(), AwsError> {
    found(r, not_found).map(|_| ())
}

/// Whether a resource read back with this `cairn:urn` tag value was made for the resource
/// `ctx` names. `find` adopts only such a resource: another of the same name or shape is not
/// ours to take over.
pub(crate) fn tagged_for(ctx: Context<'_>, urn_tag: Option<&str>) -> bool {
    urn_tag == Some(ctx.urn.as_str())
}

/// Whether the resource `id` may be what `find` looks for: a resource whose creation was not
/// recorded, so none of the copies of this resource that state already holds
/// ([`Context::is_known`]: the copy being replaced, an older replaced one). A replacement
/// carries the same `cairn:urn` tag as the copy it replaces, and often the same identity (a
/// name, a key): without this, recovery would take the old copy for the new one, and leave
/// the new one behind as an orphan. Every `find` applies it to every candidate, tagged or not.
pub(crate) fn unrecorded(ctx: Context<'_>, id: &str) -> bool {
    !ctx.is_known(id)
}

/// Whether `find` adopts the resource `id`, read back with this `cairn:urn` tag value: made
/// for the resource `ctx` names ([`tagged_for`]) and not a copy state holds ([`unrecorded`]).
pub(crate) fn adoptable(ctx: Context<'_>, id: &str, urn_tag: Option<&str>) -> bool {
    tagged_for(ctx, urn_tag) && unrecorded(ctx, id)
}

/// What `observe` read back (the resource and its `cairn:urn` tag), if `find` adopts it (see
/// [`adoptable`]).
pub(crate) fn if_tagged_for(ctx: Context<'_>, observed: Option<(Observed, Option<String>)>) -> Option<Observed> {
    observed.filter(|(seen, urn)| adoptable(ctx, &seen.id, urn.as_deref())).map(|(seen, _)| seen)
}

/// A resource that cannot be tagged, found by what identifies it, unless it is a copy state
/// already holds (see [`unrecorded`]).
pub(crate) fn if_unrecorded(ctx: Context<'_>, observed: Option<Observed>) -> Option<Observed> {
    observed.filter(|seen| unrecorded(ctx, &seen.id))
}

/// The first of `ids` (candidates, e.g. found by their `cairn:urn` tag) that `find` adopts:
/// `observe` gives the resource and its `cairn:urn` tag, or `None` when it is gone or not what
/// `find` looks for. A copy that state already holds is passed over (without reading it), and
/// the search goes on (see [`adoptable`]).
pub(crate) async fn first_tagged_for<'i, F, Fut>(
    ctx: Context<'_>,
    ids: impl IntoIterator<Item = &'i str>,
    mut observe: F,
) -> Result<Option<Observed>, ProviderError>
where
    F: FnMut(&'i str) -> Fut,
    Fut: std::future::Future<Output = Result<Option<(Observed, Option<String>)>, ProviderError>>,
{
    for id in ids.into_iter().filter(|id| unrecorded(ctx, id)) {
        if let Some(seen) = if_tagged_for(ctx, observe(id).await?) {
            return Ok(Some(seen));
        }
    }
    Ok(None)
}

/// The region of a resource: its `region` input, or the configured default (imports).
pub(crate) async fn region_of(aws: &Aws, ctx: Context<'_>, inputs: &Value) -> Result<String, ProviderError> {
    aws.region(inputs.get("region").and_then(Value::as_str)).await.map_err(|e| invalid(ctx, e))
}

/// The items of a batched read by region (each item's `region` input, or the default), as
/// indexes into `items`.
pub(crate) async fn by_region(
    aws: &Aws,
    items: &[cairn::provider::ReadItem<'_>],
) -> Result<std::collections::BTreeMap<String, Vec<usize>>, ProviderError> {
    let mut regions: std::collections::BTreeMap<String, Vec<usize>> = std::collections::BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        regions.entry(region_of(aws, item.ctx, item.inputs).await?).or_default().push(i);
    }
    Ok(regions)
}

/// A provider error about the resource's inputs or id, naming the resource.
pub(crate) fn invalid(ctx: Context<'_>, message: impl fmt::Display) -> ProviderError {
    ProviderError::new(format!("`{}`: {message}", ctx.urn))
}

/// An SDK builder failure (a required field missing): a bug here, reported as an error.
pub(crate) fn build_error(ctx: Context<'_>, what: &str, e: impl fmt::Display) -> ProviderError {
    ProviderError::new(format!("`{}`: cannot build {what}: {e}", ctx.urn))
}

/// The parts of an ARN: `arn:<partition>:<service>:<region>:<account>:<resource>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Arn<'a> {
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

pub(crate) fn parse_arn(s: &str) -> Option<Arn<'_>> {
    let mut parts = s.splitn(6, ':');
    if parts.next()? != "arn" {
        return None;
    }
    let _partition = parts.next()?;
    Some(Arn { service: parts.next()?, region: parts.next()?, account: parts.next()?, resource: parts.next()? })
}

/// The tags cairn puts on every taggable resource.
pub(crate) const TAG_STACK: &str = "cairn:stack";
pub(crate) const TAG_URN: &str = "cairn:urn";

/// The user's tags plus cairn's.
pub(crate) fn all_tags(ctx: Context<'_>, user: &std::collections::BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> = user.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    tags.push((TAG_STACK.to_string(), ctx.stack.to_string()));
    tags.push((TAG_URN.to_string(), ctx.urn.as_str().to_string()));
    tags
}

/// Tags as AWS reports them, without cairn's: what the program declares.
pub(crate) fn user_tags(
    tags: impl IntoIterator<Item = (String, String)>,
) -> std::collections::BTreeMap<String, String> {
    tags.into_iter().filter(|(k, _)| !k.starts_with("cairn:")).collect()
}

/// Checks user tags: keys may not use the reserved `cairn:` and `aws:` prefixes, and AWS's
/// length limits.
pub(crate) fn validate_tags(type_token: &str, tags: &std::collections::BTreeMap<String, String>) -> Result<(), String> {
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(format!("{type_token}: `tags` key `{k}` must be 1 to 128 characters"));
        }
        if k.starts_with("cairn:") || k.to_ascii_lowercase().starts_with("aws:") {
            return Err(format!("{type_token}: `tags` key `{k}` uses a reserved prefix (`cairn:` or `aws:`)"));
        }
        if v.chars().count() > 256 {
            return Err(format!("{type_token}: `tags` value of `{k}` is longer than 256 characters"));
        }
    }
    Ok(())
}

/// Deserializes a provider's inputs, naming the type and the field at fault.
pub(crate) fn parse_inputs<T: serde::de::DeserializeOwned>(type_token: &str, inputs: &Value) -> Result<T, String> {
    serde_json::from_value(inputs.clone()).map_err(|e| format!("invalid {type_token} inputs: {e}"))
}

/// A JSON document as AWS reports it, unless it means the same as `prior` (AWS may reorder
/// or reformat policies): then `prior`, so that refresh shows no drift for a reformatting.
pub(crate) fn same_json_or(observed: String, prior: Option<&str>) -> String {
    if let Some(prior) = prior {
        let a: Result<Value, _> = serde_json::from_str(&observed);
        let b: Result<Value, _> = serde_json::from_str(prior);
        if let (Ok(a), Ok(b)) = (a, b) {
            if a == b {
                return prior.to_string();
            }
        }
    }
    observed
}

/// Checks that a JSON document parses, naming the field.
pub(crate) fn validate_json(type_token: &str, field: &str, text: &str) -> Result<(), String> {
    serde_json::from_str::<Value>(text)
        .map(|_| ())
        .map_err(|e| format!("{type_token}: `{field}` is not valid JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_split_on_the_first_five_colons() {
        let a = parse_arn("arn:aws:logs:eu-west-1:123456789012:log-group:/a/b:*").unwrap();
        assert_eq!(
            (a.service, a.region, a.account, a.resource),
            ("logs", "eu-west-1", "123456789012", "log-group:/a/b:*")
        );
        assert_eq!(parse_arn("my-repo"), None);
    }

    #[test]
    fn reformatted_json_keeps_the_prior_text() {
        let prior = r#"{"a": 1,  "b": [2]}"#;
        assert_eq!(same_json_or(r#"{"b":[2],"a":1}"#.into(), Some(prior)), prior);
        assert_eq!(same_json_or(r#"{"a":2}"#.into(), Some(prior)), r#"{"a":2}"#);
    }

    fn seen(id: &str) -> Observed {
        Observed { id: id.into(), inputs: Value::Null, outputs: Value::Null }
    }

    #[test]
    fn find_adopts_only_what_was_made_for_the_resource_and_state_does_not_hold() {
        let urn = cairn::Urn::from("s/aws:ec2:Subnet/a");
        let known = vec!["subnet-old".to_string()];
        let ctx = Context::new(&urn, "s").knowing(&known);
        let tag = Some(urn.as_str());
        assert!(adoptable(ctx, "subnet-new", tag));
        assert!(!adoptable(ctx, "subnet-old", tag), "the copy being replaced carries the same tag");
        assert!(!adoptable(ctx, "subnet-new", Some("s/aws:ec2:Subnet/b")));
        assert!(!adoptable(ctx, "subnet-new", None));
        assert_eq!(if_tagged_for(ctx, Some((seen("subnet-old"), tag.map(str::to_string)))), None);
        assert_eq!(if_tagged_for(ctx, Some((seen("subnet-new"), tag.map(str::to_string)))), Some(seen("subnet-new")));
        // Found by identity (not taggable): anything but a copy state holds.
        assert_eq!(if_unrecorded(ctx, Some(seen("subnet-old"))), None);
        assert_eq!(if_unrecorded(ctx, Some(seen("subnet-new"))), Some(seen("subnet-new")));
        // A context that knows nothing (a first create) passes everything made for it.
        assert!(adoptable(Context::new(&urn, "s"), "subnet-old", tag));
    }

    #[tokio::test]
    async fn the_search_passes_over_known_copies_without_reading_them_and_goes_on() {
        let urn = cairn::Urn::from("s/aws:ec2:Vpc/main");
        let known = vec!["vpc-1".to_string(), "vpc-2".to_string()];
        let ctx = Context::new(&urn, "s").knowing(&known);
        let read = std::sync::Mutex::new(Vec::new());
        let tagged = |id: &str| {
            read.lock().unwrap().push(id.to_string());
            let urn = if id == "vpc-3" { "s/aws:ec2:Vpc/other" } else { urn.as_str() };
            Some((seen(id), Some(urn.to_string())))
        };
        let found = first_tagged_for(ctx, ["vpc-1", "vpc-2", "vpc-3", "vpc-4", "vpc-5"], |id| {
            let r = tagged(id);
            async move { Ok(r) }
        })
        .await
        .unwrap();
        assert_eq!(found, Some(seen("vpc-4")));
        assert_eq!(*read.lock().unwrap(), ["vpc-3", "vpc-4"]);
        let none = first_tagged_for(ctx, ["vpc-1", "vpc-2"], |id| {
            let r = tagged(id);
            async move { Ok(r) }
        });
        assert_eq!(none.await.unwrap(), None);
    }

    #[test]
    fn regions_of_every_partition_pass_and_typos_do_not() {
        for ok in [
            "us-east-1",
            "eu-west-1",
            "ap-southeast-2",
            "il-central-1",
            "cn-north-1",
            "us-gov-west-1",
            "us-isob-east-1",
        ] {
            assert_eq!(check_region(ok), Ok(()), "{ok}");
        }
        for bad in ["eu-wset1", "eu-wset-1", "euwest1", "eu-west", "EU-WEST-1", "xx-west-1", "us-east-1a", "", "local"]
        {
            let e = check_region(bad).unwrap_err();
            assert!(e.contains(&format!("`{bad}`")) && e.contains("us-east-1"), "{e}");
        }
    }

    #[test]
    fn credential_errors_say_what_to_fix() {
        let hint = |code: &str| credentials_hint("ELBv2", "CreateLoadBalancer", Some(code), "", true).unwrap();
        assert!(hint("InvalidClientTokenId").contains("access key"));
        assert!(hint("ExpiredToken").contains("expired"));
        assert!(hint("AccessDenied").contains("`elasticloadbalancing:CreateLoadBalancer`"));
        assert_eq!(iam_action("EC2", "CreateVpc"), "ec2:CreateVpc");
        assert_eq!(credentials_hint("EC2", "CreateVpc", Some("InvalidVpcID.NotFound"), "", false), None);
        let unread = credentials_hint("EC2", "CreateVpc", None, "unhandled error", true).unwrap();
        assert!(unread.contains("HTTP 403") && unread.contains("`ec2:CreateVpc`"), "{unread}");
    }

    #[test]
    fn reserved_tag_prefixes_are_refused() {
        let tags = [("cairn:urn".to_string(), "x".to_string())].into_iter().collect();
        assert!(validate_tags("aws:ecr:Repository", &tags).unwrap_err().contains("reserved"));
        let tags = [("team".to_string(), "x".to_string())].into_iter().collect();
        assert!(validate_tags("aws:ecr:Repository", &tags).is_ok());
    }
}
