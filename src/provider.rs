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

    /// Changes the resource in place; returns its new outputs.
    async fn update(&self, ctx: Context<'_>, id: &str, old: &Value, new: &Value) -> Result<Value, ProviderError>;

    /// Deletes the resource; deleting one that is already gone succeeds.
    async fn delete(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<(), ProviderError>;

    /// Finds a resource created for `ctx.urn` whose creation may not have been recorded.
    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError>;
}

/// The providers a program can use, by type token.
#[derive(Clone, Default)]
pub struct Registry {
    providers: BTreeMap<&'static str, Arc<dyn Provider>>,
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
}
