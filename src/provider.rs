//! The boundary between the engine and the systems it manages.
//!
//! A [`Provider`] manages one resource type. It receives inputs with every output resolved and
//! every secret revealed, and returns outputs; the engine handles ordering, state, secrecy and
//! recovery. Providers never see state backends, and the engine never sees an SDK.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::urn::Urn;

/// What a provider knows about the resource it is working on.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub urn: &'a Urn,
    /// The stack's name, for tagging.
    pub stack: &'a str,
    /// Ids of copies of this resource that state already holds (the one being replaced, an
    /// older replaced copy): they carry the same `cairn:urn` label as a new copy, so
    /// [`Provider::find`] must not return them. See [`Context::is_known`].
    pub known: &'a [String],
    /// The settings of the provider configuration chosen for the resource (for AWS, its
    /// region and profile), `null` when none was.
    pub settings: &'a Value,
}

static NO_SETTINGS: Value = Value::Null;

impl<'a> Context<'a> {
    pub fn new(urn: &'a Urn, stack: &'a str) -> Context<'a> {
        Context { urn, stack, known: &[], settings: &NO_SETTINGS }
    }

    /// The same context, with the settings of the resource's provider configuration.
    pub fn configured(self, provider: Option<&'a crate::stack::ProviderUse>) -> Context<'a> {
        match provider {
            Some(p) => Context { settings: &p.settings, ..self },
            None => self,
        }
    }

    /// The same context, with the ids state already holds for this resource.
    pub fn knowing(self, known: &'a [String]) -> Context<'a> {
        Context { known, ..self }
    }

    /// Whether `id` is a copy of this resource that state already holds: `find` looks for
    /// another one.
    pub fn is_known(&self, id: &str) -> bool {
        self.known.iter().any(|k| k == id)
    }
}

/// One resource of a [`Provider::read_many`]: its context, its id and its inputs in state.
#[derive(Debug, Clone, Copy)]
pub struct ReadItem<'a> {
    pub ctx: Context<'a>,
    pub id: &'a str,
    pub inputs: &'a Value,
}

/// A resource that a provider created or found.
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    pub id: String,
    pub outputs: Value,
}

/// A resource as it really is: its inputs as the provider observes them, and its outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub id: String,
    pub inputs: Value,
    /// `null` from a provider that cannot read its outputs back: the engine keeps those in
    /// state.
    pub outputs: Value,
}

/// A provider's failure, with what it was doing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    pub message: String,
}

impl ProviderError {
    pub fn new(message: impl fmt::Display) -> ProviderError {
        ProviderError { message: message.to_string() }
    }
}

/// Manages the resources of one type.
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    /// The type token this provider manages, e.g. `local:File`.
    fn type_token(&self) -> &'static str;

    /// What is needed to find a resource again after a crash between the provider call and
    /// the state write (see [`Provider::find`]). Providers that find resources by their
    /// `cairn:urn` tag can keep the default.
    fn identity(&self, _inputs: &Value) -> Value {
        Value::Null
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError>;

    /// Reads the resource back; `None` when it no longer exists.
    async fn read(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError>;

    /// How many resources [`Provider::read_many`] reads back in one go, where the managed
    /// system reads many per call (`DescribeSubnets` with 200 ids); 1, the default: one at a
    /// time.
    fn read_batch(&self) -> usize {
        1
    }

    /// Reads several resources back at once (for `refresh`), all of this type and with the
    /// same provider configuration: one answer per item, in their order, `None` for one that
    /// no longer exists. The default reads each with [`Provider::read`].
    async fn read_many(&self, items: &[ReadItem<'_>]) -> Result<Vec<Option<Observed>>, ProviderError> {
        let mut seen = Vec::with_capacity(items.len());
        for item in items {
            seen.push(self.read(item.ctx, item.id, item.inputs).await?);
        }
        Ok(seen)
    }

    /// Changes the resource in place; returns its new outputs.
    async fn update(&self, ctx: Context<'_>, id: &str, old: &Value, new: &Value) -> Result<Value, ProviderError>;

    /// Deletes the resource; deleting one that is already gone succeeds.
    async fn delete(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<(), ProviderError>;

    /// Finds a resource created for `ctx.urn` whose creation may not have been recorded: one
    /// that matches `identity` and is labelled for `ctx.urn`, and is none of the copies state
    /// already knows ([`Context::is_known`]).
    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError>;
}

/// A resource that a managed system holds for a stack, as an [`Inventory`] lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Listed {
    /// The system's full name of the resource (for AWS, its ARN).
    pub id: String,
    /// The URN the resource is labelled with, if it carries one.
    pub urn: Option<String>,
}

/// Lists what a managed system holds for a stack, by the labels providers put on what they
/// create (for AWS, the `cairn:stack` tag), so that `cairn state orphans` can name what state
/// does not know: resources left by a run that died before recording them and was never
/// recovered, or forgotten with `cairn state rm`.
#[async_trait::async_trait]
pub trait Inventory: Send + Sync {
    /// What is listed, for messages, e.g. `AWS (Resource Groups Tagging API)`.
    fn name(&self) -> &'static str;

    /// Every resource labelled as belonging to `stack`. `state` tells where to look (for AWS,
    /// the regions its resources are in); `scopes` are more places to look, as the user named
    /// them (for AWS, regions).
    async fn list(
        &self,
        stack: &str,
        state: &crate::state::StackState,
        scopes: &[String],
    ) -> Result<Vec<Listed>, ProviderError>;
}

/// The resources of `listed` that `state` does not know: no resource (live or retired) of
/// `state` has the listed id, or an id that the listed id ends with after a `/` or `:`
/// (providers whose ids are short names, such as `vpc-0abc`, store what ends an ARN).
pub fn orphans(listed: Vec<Listed>, state: &crate::state::StackState) -> Vec<Listed> {
    let known: std::collections::HashSet<&str> =
        state.resources.values().chain(state.retired.values()).map(|r| r.id.as_str()).collect();
    let is_known = |id: &str| {
        known.contains(id)
            || id.char_indices().any(|(i, c)| (c == '/' || c == ':') && known.contains(&id[i + c.len_utf8()..]))
    };
    let mut orphans: Vec<Listed> = listed.into_iter().filter(|l| !is_known(&l.id)).collect();
    orphans.sort();
    orphans.dedup();
    orphans
}

/// The providers a program can use, by type token, and the inventories that list what they
/// manage.
#[derive(Clone, Default)]
pub struct Registry {
    providers: BTreeMap<&'static str, Arc<dyn Provider>>,
    inventories: Vec<Arc<dyn Inventory>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.providers.keys()).finish()
    }
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds a provider (replacing one for the same type).
    pub fn with(mut self, provider: impl Provider + 'static) -> Registry {
        self.providers.insert(provider.type_token(), Arc::new(provider));
        self
    }

    pub fn with_arc(mut self, provider: Arc<dyn Provider>) -> Registry {
        self.providers.insert(provider.type_token(), provider);
        self
    }

    pub fn get(&self, type_token: &str) -> Option<&Arc<dyn Provider>> {
        self.providers.get(type_token)
    }

    pub fn types(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.providers.keys().copied()
    }

    /// Adds an inventory (see [`Inventory`]); one per managed system.
    pub fn with_inventory(mut self, inventory: impl Inventory + 'static) -> Registry {
        if !self.inventories.iter().any(|i| i.name() == inventory.name()) {
            self.inventories.push(Arc::new(inventory));
        }
        self
    }

    pub fn inventories(&self) -> &[Arc<dyn Inventory>] {
        &self.inventories
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{ResourceState, StackState};

    fn with_ids(live: &[&str], retired: &[&str]) -> StackState {
        let record = |i: usize, id: &str| ResourceState {
            urn: crate::Urn::from(format!("s/t:x:Y/r{i}")),
            type_token: "t:x:Y".into(),
            id: id.into(),
            inputs: Value::Null,
            outputs: Value::Null,
            dependencies: Default::default(),
            protect: false,
            retain_on_delete: false,
            delete_before_replace: false,
            provider: None,
        };
        let mut state = StackState::empty("s");
        for (i, id) in live.iter().enumerate() {
            let r = record(i, id);
            state.resources.insert(r.urn.clone(), r);
        }
        for (i, id) in retired.iter().enumerate() {
            let r = record(100 + i, id);
            state.retired.insert(r.urn.clone(), r);
        }
        state
    }

    fn listed(id: &str) -> Listed {
        Listed { id: id.into(), urn: None }
    }

    #[test]
    fn orphans_are_what_no_state_id_names() {
        let state = with_ids(
            &["arn:aws:sns:us-east-1:1:known", "vpc-0abc", "Z123", "/shop/api"],
            &["arn:aws:ecr:us-east-1:1:repository/old"],
        );
        let all = vec![
            listed("arn:aws:sns:us-east-1:1:known"),
            listed("arn:aws:ec2:us-east-1:1:vpc/vpc-0abc"),
            listed("arn:aws:route53:::hostedzone/Z123"),
            listed("arn:aws:logs:us-east-1:1:log-group:/shop/api"),
            listed("arn:aws:ecr:us-east-1:1:repository/old"),
            listed("arn:aws:sns:us-east-1:1:unknown"),
            listed("arn:aws:ec2:us-east-1:1:vpc/vpc-0abcd"),
            listed("arn:aws:sns:us-east-1:1:unknown"),
        ];
        let found = orphans(all, &state);
        assert_eq!(found, [listed("arn:aws:ec2:us-east-1:1:vpc/vpc-0abcd"), listed("arn:aws:sns:us-east-1:1:unknown")]);
    }

    #[test]
    fn an_empty_state_knows_nothing() {
        let found = orphans(vec![listed("arn:aws:sns:us-east-1:1:a")], &StackState::empty("s"));
        assert_eq!(found.len(), 1);
    }
}
