//! The skeleton every AWS provider shares, written once: parse and validate the inputs,
//! create, wait until the new resource can be read back, read it back as inputs and outputs,
//! refuse an in-place change of what forces a replacement, and find a resource whose
//! creation was not recorded by its `cairn:urn` tag (never a copy that state already holds).
//!
//! A provider implements [`Api`], which holds only what is particular to its AWS API: how to
//! parse its inputs, the calls that create, change and delete, how to observe one resource,
//! and where to look for candidates. [`Managed`] turns it into a [`Provider`]. Where an API
//! refuses a second create of the same unique name ([`Api::EXISTS`]), a create whose answer
//! was lost (the request landed, the answer did not) is recovered by the same lookup `find`
//! uses: the resource made for this URN is adopted and brought to the desired inputs, and
//! anyone else's is an error naming its owner, never a silent takeover. Where an API answers a
//! repeated create with the existing resource instead ([`Api::LOOK_FIRST`]: load balancers and
//! target groups of the same settings), the lookup runs before the create.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

use cairn::provider::{Context, Created, Observed, Provider, ProviderError, ReadItem};
use cairn::Resource;
use serde_json::Value;

use crate::client::{adoptable, invalid, unrecorded, AwsError};

/// A resource as [`Api::observe`] read it back, with its `cairn:urn` tag (`None`: it has
/// none, or the resource cannot be tagged).
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub observed: Observed,
    pub urn: Option<String>,
}

impl Seen {
    pub fn new(id: impl Into<String>, inputs: Value, outputs: Value, urn: Option<String>) -> Seen {
        Seen { observed: Observed { id: id.into(), inputs, outputs }, urn }
    }
}

/// What is particular to one AWS resource type's API. See the module's documentation.
#[async_trait::async_trait]
pub(crate) trait Api: Send + Sync + 'static {
    /// The program-side type: its token and the inputs that force a replacement.
    type Resource: Resource;
    /// The inputs, parsed and validated.
    type Args: Send + Sync;

    /// Error codes with which the create call says that a resource of that unique name (or
    /// key) already exists: maybe this resource's own, made by a create whose answer was lost.
    const EXISTS: &'static [&'static str] = &[];

    /// Whether a repeated create answers with the existing resource instead of failing: then
    /// the lookup for one made for this URN (or anyone else's) runs before the create.
    const LOOK_FIRST: bool = false;

    /// Whether a repeated create could make a second resource (the API has no idempotency
    /// token, and a unique name does not stop it): then [`Api::create`] sends its call without
    /// the SDK's retries ([`no_retries`]), and the layer retries it itself, after looking for
    /// the resource made for this URN whenever an answer did not come ([`create_retrying`]).
    const RETRY_BY_LOOKUP: bool = false;

    /// Whether the resources carry the `cairn:urn` tag: adoption then requires it. Without
    /// tags, a candidate is adopted by its identity alone (never a copy state holds).
    const TAGGED: bool = true;

    /// Parses and validates the inputs; the error names the type and the field.
    fn parse(inputs: &Value) -> Result<Self::Args, String>;

    /// What [`Api::candidates`] needs to look for the resource (its unique name, its
    /// parent), from its inputs.
    fn identity(inputs: &Value) -> Value;

    /// Creates the resource (tagged at creation, where the API allows it); its id.
    async fn create(&self, ctx: Context<'_>, args: &Self::Args) -> Result<String, CreateError>;

    /// The resource as it is: its inputs as AWS has them (so that refresh shows drift), its
    /// outputs and its `cairn:urn` tag; `None` when it is gone. `prior` is what state holds
    /// (or the desired inputs), to keep a reordering from reading as drift.
    async fn observe(&self, ctx: Context<'_>, id: &str, prior: &Value) -> Result<Option<Seen>, ProviderError>;

    /// Brings the resource from `old` to `new`; what forces a replacement has been checked.
    async fn update(&self, ctx: Context<'_>, id: &str, old: &Self::Args, new: &Self::Args)
        -> Result<(), ProviderError>;

    /// Deletes the resource; one already gone succeeds.
    async fn delete(&self, ctx: Context<'_>, id: &str, prior: &Value) -> Result<(), ProviderError>;

    /// How many resources [`Api::observe_many`] reads in one go (see
    /// [`Provider::read_batch`]); 1: one at a time.
    const READ_BATCH: usize = 1;

    /// Several resources of this type and provider configuration as they are, in their
    /// order (see [`Provider::read_many`]). The default observes each.
    async fn observe_many(&self, items: &[ReadItem<'_>]) -> Result<Vec<Option<Seen>>, ProviderError> {
        let mut seen = Vec::with_capacity(items.len());
        for item in items {
            seen.push(self.observe(item.ctx, item.id, item.inputs).await?);
        }
        Ok(seen)
    }

    /// The ids of resources that may be the one `identity` describes (by its unique name, or
    /// by a `cairn:urn` tag filter); the layer reads each and keeps the one made for this URN.
    async fn candidates(&self, ctx: Context<'_>, identity: &Value) -> Result<Vec<String>, ProviderError>;
}

/// Why a create call failed: AWS refused it, or something else went wrong.
#[derive(Debug)]
pub(crate) enum CreateError {
    Aws(AwsError),
    Other(ProviderError),
}

impl From<AwsError> for CreateError {
    fn from(e: AwsError) -> CreateError {
        CreateError::Aws(e)
    }
}

impl From<ProviderError> for CreateError {
    fn from(e: ProviderError) -> CreateError {
        CreateError::Other(e)
    }
}

/// An [`Api`] as a [`Provider`]. Public providers wrap one ([`provider!`]).
#[derive(Debug, Clone)]
pub(crate) struct Managed<A>(pub A);

/// A public provider type over an [`Api`]: `provider!(/// docs\n RoleProvider(RoleApi));`
/// declares `RoleProvider`, a [`Provider`] that is the [`Managed`] skeleton over `RoleApi`.
macro_rules! provider {
    ($(#[$doc:meta])* $name:ident($api:ty)) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name($crate::managed::Managed<$api>);

        #[async_trait::async_trait]
        impl cairn::provider::Provider for $name {
            fn type_token(&self) -> &'static str {
                self.0.type_token()
            }
            fn identity(&self, inputs: &serde_json::Value) -> serde_json::Value {
                self.0.identity(inputs)
            }
            async fn create(
                &self,
                ctx: cairn::provider::Context<'_>,
                inputs: &serde_json::Value,
            ) -> Result<cairn::provider::Created, cairn::provider::ProviderError> {
                self.0.create(ctx, inputs).await
            }
            async fn read(
                &self,
                ctx: cairn::provider::Context<'_>,
                id: &str,
                inputs: &serde_json::Value,
            ) -> Result<Option<cairn::provider::Observed>, cairn::provider::ProviderError> {
                self.0.read(ctx, id, inputs).await
            }
            fn read_batch(&self) -> usize {
                self.0.read_batch()
            }
            async fn read_many(
                &self,
                items: &[cairn::provider::ReadItem<'_>],
            ) -> Result<Vec<Option<cairn::provider::Observed>>, cairn::provider::ProviderError> {
                self.0.read_many(items).await
            }
            async fn update(
                &self,
                ctx: cairn::provider::Context<'_>,
                id: &str,
                old: &serde_json::Value,
                new: &serde_json::Value,
            ) -> Result<serde_json::Value, cairn::provider::ProviderError> {
                self.0.update(ctx, id, old, new).await
            }
            async fn delete(
                &self,
                ctx: cairn::provider::Context<'_>,
                id: &str,
                inputs: &serde_json::Value,
            ) -> Result<(), cairn::provider::ProviderError> {
                self.0.delete(ctx, id, inputs).await
            }
            async fn find(
                &self,
                ctx: cairn::provider::Context<'_>,
                identity: &serde_json::Value,
            ) -> Result<Option<cairn::provider::Observed>, cairn::provider::ProviderError> {
                self.0.find(ctx, identity).await
            }
        }
    };
}
pub(crate) use provider;

impl<A: Api> Managed<A> {
    fn parse(ctx: Context<'_>, inputs: &Value) -> Result<A::Args, ProviderError> {
        A::parse(inputs).map_err(|e| invalid(ctx, e))
    }

    /// The resource made for this URN among the candidates for `identity`, and whose the
    /// first candidate made for someone else is (for the error of a name already taken).
    async fn look(
        &self,
        ctx: Context<'_>,
        identity: &Value,
        prior: &Value,
    ) -> Result<(Option<Seen>, Option<String>), ProviderError> {
        let mut other = None;
        for id in self.0.candidates(ctx, identity).await? {
            if !unrecorded(ctx, &id) {
                continue;
            }
            let Some(seen) = self.0.observe(ctx, &id, prior).await? else {
                continue;
            };
            let ours = if A::TAGGED { adoptable(ctx, &seen.observed.id, seen.urn.as_deref()) } else { true };
            if ours {
                return Ok((Some(seen), None));
            }
            other.get_or_insert_with(|| match seen.urn {
                Some(urn) => format!("it belongs to `{urn}`"),
                None => "it carries no `cairn:urn` tag: it was made outside this stack".to_string(),
            });
        }
        Ok((None, other))
    }

    /// Takes over `seen` (made for this URN by a create whose answer was lost) and brings it
    /// to the desired inputs.
    async fn adopt(
        &self,
        ctx: Context<'_>,
        seen: Seen,
        inputs: &Value,
        args: &A::Args,
    ) -> Result<Created, ProviderError> {
        let id = seen.observed.id;
        unchanged(ctx, &id, &seen.observed.inputs, inputs, A::Resource::REPLACE_ON_CHANGE)?;
        let old = Self::parse(ctx, &seen.observed.inputs)?;
        self.0.update(ctx, &id, &old, args).await?;
        let seen = self.0.observe(ctx, &id, inputs).await?.ok_or_else(|| gone(ctx, &id))?;
        Ok(Created { id, outputs: seen.observed.outputs })
    }

    /// The error for a unique name that a resource not made for this URN holds.
    fn taken(ctx: Context<'_>, cause: &str, owner: Option<String>) -> ProviderError {
        let owner = owner.map(|o| format!(" ({o})")).unwrap_or_default();
        invalid(ctx, format!("{cause}: the resource exists and is not managed by this resource{owner}"))
    }
}

#[async_trait::async_trait]
impl<A: Api> Provider for Managed<A> {
    fn type_token(&self) -> &'static str {
        A::Resource::TYPE
    }

    fn identity(&self, inputs: &Value) -> Value {
        A::identity(inputs)
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let args = Self::parse(ctx, inputs)?;
        if A::LOOK_FIRST {
            match self.look(ctx, &A::identity(inputs), inputs).await? {
                (Some(seen), _) => return self.adopt(ctx, seen, inputs, &args).await,
                (None, Some(owner)) => return Err(Self::taken(ctx, "its name is taken", Some(owner))),
                (None, None) => {}
            }
        }
        let made = if A::RETRY_BY_LOOKUP {
            create_retrying(
                || self.0.create(ctx, &args),
                || async { Ok(self.look(ctx, &A::identity(inputs), inputs).await?.0) },
            )
            .await
        } else {
            self.0.create(ctx, &args).await.map(Attempt::Made)
        };
        let id = match made {
            Ok(Attempt::Made(id)) => id,
            Ok(Attempt::Found(seen)) => return self.adopt(ctx, seen, inputs, &args).await,
            Err(CreateError::Aws(e)) if e.is(A::EXISTS) => {
                return match self.look(ctx, &A::identity(inputs), inputs).await? {
                    (Some(seen), _) => self.adopt(ctx, seen, inputs, &args).await,
                    (None, owner) => Err(Self::taken(ctx, &e.to_string(), owner)),
                };
            }
            Err(CreateError::Aws(e)) => return Err(e.at(ctx)),
            Err(CreateError::Other(e)) => return Err(e),
        };
        let seen = settle(ctx, &id, || self.0.observe(ctx, &id, inputs)).await?;
        Ok(Created { id, outputs: seen.observed.outputs })
    }

    async fn read(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        Ok(self.0.observe(ctx, id, inputs).await?.map(|s| s.observed))
    }

    fn read_batch(&self) -> usize {
        A::READ_BATCH
    }

    async fn read_many(&self, items: &[ReadItem<'_>]) -> Result<Vec<Option<Observed>>, ProviderError> {
        Ok(self.0.observe_many(items).await?.into_iter().map(|s| s.map(|s| s.observed)).collect())
    }

    async fn update(&self, ctx: Context<'_>, id: &str, old: &Value, new: &Value) -> Result<Value, ProviderError> {
        let before = Self::parse(ctx, old)?;
        let after = Self::parse(ctx, new)?;
        unchanged(ctx, id, old, new, A::Resource::REPLACE_ON_CHANGE)?;
        self.0.update(ctx, id, &before, &after).await?;
        let seen = self.0.observe(ctx, id, new).await?.ok_or_else(|| gone(ctx, id))?;
        Ok(seen.observed.outputs)
    }

    async fn delete(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<(), ProviderError> {
        self.0.delete(ctx, id, inputs).await
    }

    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        Ok(self.look(ctx, identity, identity).await?.0.map(|s| s.observed))
    }
}

/// What [`create_retrying`] got: the id the create answered, or what the lookup found after
/// an answer that did not come.
#[derive(Debug)]
pub(crate) enum Attempt<T> {
    Made(String),
    Found(T),
}

/// How many times [`create_retrying`] sends a create.
const CREATE_ATTEMPTS: u32 = 3;

/// Sends a create that a repeat could duplicate (`call`, sent without the SDK's retries) up to
/// three times: a throttled call again after a backoff; after an answer that did not come
/// (a timeout, a reset, a 5xx: the request may have landed), only once `look` (by the
/// `cairn:urn` tag) found nothing, and what it finds is the result. Never a second resource
/// for a lost answer, as the SDK's own retry would make.
pub(crate) async fn create_retrying<T, C, CF, L, LF>(mut call: C, mut look: L) -> Result<Attempt<T>, CreateError>
where
    C: FnMut() -> CF,
    CF: Future<Output = Result<String, CreateError>>,
    L: FnMut() -> LF,
    LF: Future<Output = Result<Option<T>, ProviderError>>,
{
    let (mut attempt, mut delay) = (1, Duration::from_millis(500));
    loop {
        match call().await {
            Ok(id) => return Ok(Attempt::Made(id)),
            Err(CreateError::Aws(e)) if attempt < CREATE_ATTEMPTS && (e.throttled() || e.ambiguous()) => {
                tokio::time::sleep(delay).await;
                (attempt, delay) = (attempt + 1, delay * 2);
                if e.ambiguous() {
                    if let Some(found) = look().await? {
                        return Ok(Attempt::Found(found));
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// A per-call configuration without the SDK's retries, for a create that
/// [`create_retrying`] retries itself: `.customize().config_override(no_retries!(aws_sdk_ec2))`.
macro_rules! no_retries {
    ($krate:ident) => {
        $krate::config::Builder::default().retry_config(aws_config::retry::RetryConfig::disabled())
    };
}
pub(crate) use no_retries;

/// The error of an update or adoption whose resource vanished under it.
fn gone(ctx: Context<'_>, id: &str) -> ProviderError {
    invalid(ctx, format!("{id} no longer exists; refresh, then deploy to create it again"))
}

/// Refuses an in-place update that changes one of `fields` (which force a replacement).
pub(crate) fn unchanged(
    ctx: Context<'_>,
    id: &str,
    old: &Value,
    new: &Value,
    fields: &[&str],
) -> Result<(), ProviderError> {
    for f in fields {
        if old.get(f) != new.get(f) {
            return Err(invalid(ctx, format!("`{f}` of {id} cannot change in place; it must be replaced")));
        }
    }
    Ok(())
}

/// How long a resource just created may stay invisible (AWS is eventually consistent: a new
/// id may answer "not found" for a few seconds).
pub(crate) const CONSISTENCY_WAIT: Duration = Duration::from_secs(10);

/// Polls `look` with backoff until it finds something, for at most [`CONSISTENCY_WAIT`]: a
/// resource just created may not be visible at once.
pub(crate) async fn settle<T, F, Fut>(ctx: Context<'_>, what: &str, mut look: F) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, ProviderError>>,
{
    let started = Instant::now();
    let mut delay = Duration::from_millis(200);
    loop {
        if let Some(v) = look().await? {
            return Ok(v);
        }
        if started.elapsed() + delay > CONSISTENCY_WAIT {
            return Err(invalid(
                ctx,
                format!("{what} was created but could not be read back within {}s", CONSISTENCY_WAIT.as_secs()),
            ));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Waits, polling `state` with backoff (at most every `every`), until it says the resource is
/// ready (`Ok(true)`), for at most `limit`; `what` names what is awaited in the timeout error.
pub(crate) async fn wait_until<F, Fut>(
    ctx: Context<'_>,
    what: &str,
    limit: Duration,
    every: Duration,
    mut state: F,
) -> Result<(), ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, ProviderError>>,
{
    let started = Instant::now();
    let mut delay = Duration::from_millis(200).min(every);
    loop {
        if state().await? {
            return Ok(());
        }
        if started.elapsed() + delay > limit {
            return Err(invalid(ctx, format!("timed out after {}s waiting for {what}", limit.as_secs())));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(every);
    }
}

/// What a list holds as AWS reports it, in the order of `prior` when both hold the same
/// items (AWS keeps no order for sets: subnets, security groups, policy ARNs), so that a
/// reordering is not drift.
pub(crate) fn same_set_or(observed: Vec<String>, prior: &Value, key: &str) -> Vec<String> {
    let prior: Option<Vec<String>> = prior.get(key).and_then(|v| serde_json::from_value(v.clone()).ok());
    match prior {
        Some(p) if p.iter().collect::<BTreeSet<_>>() == observed.iter().collect::<BTreeSet<_>>() => p,
        _ => observed,
    }
}
