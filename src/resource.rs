//! The program-side model: typed resources, inputs, outputs, secrets and options.

use std::fmt;
use std::marker::PhantomData;

use serde::ser::{Serialize, Serializer};
use serde_json::Value;

use crate::urn::Urn;
use crate::value::{self, OutputRef};

/// A resource type: its arguments are the value itself.
///
/// ```ignore
/// let index = stack.add("index", File { path: "out/index.html".into(), content: html.into(), mode: None });
/// let hash: Output<String> = index.sha256.clone();
/// ```
pub trait Resource: Serialize + 'static {
    /// The type token, `<package>:<module>:<Type>` or `<package>:<Type>`, e.g. `aws:ecr:Repository`.
    const TYPE: &'static str;
    /// Input properties whose change cannot be applied in place: the resource is replaced.
    const REPLACE_ON_CHANGE: &'static [&'static str] = &[];
    /// Whether the old resource must be deleted before its replacement is created (for
    /// example because a unique name cannot exist twice).
    const DELETE_BEFORE_REPLACE: bool = false;
    /// Output properties that the engine keeps secret.
    const SECRET_OUTPUTS: &'static [&'static str] = &[];
    /// Output properties (top-level names or dotted paths) that an in-place update may
    /// change. Every other output keeps its value through an update, so a dependent that
    /// uses it is planned against the value in state, exactly, instead of as unknown. Ids and
    /// ARNs are stable; list what the provider's `update` really recomputes (a content hash,
    /// a latest version number). The engine checks the promise after every update.
    const UPDATABLE_OUTPUTS: &'static [&'static str] = &[];
    /// Typed references to this resource's outputs.
    type Outputs;
    /// Builds the typed output references of the resource behind `handle`.
    fn outputs(handle: &Handle) -> Self::Outputs;
}

/// An untyped reference to a declared resource: its URN. Used for `depends_on` and to build
/// typed outputs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Handle {
    urn: Urn,
}

impl Handle {
    pub(crate) fn new(urn: Urn) -> Handle {
        Handle { urn }
    }

    pub fn urn(&self) -> &Urn {
        &self.urn
    }

    /// A typed reference to the output property at `path`.
    pub fn output<T>(&self, path: &str) -> Output<T> {
        Output { reference: OutputRef { urn: self.urn.clone(), path: path.to_string() }, _type: PhantomData }
    }
}

/// A declared resource: its handle plus typed references to its outputs (through `Deref`).
pub struct Declared<R: Resource> {
    pub handle: Handle,
    pub outputs: R::Outputs,
}

impl<R: Resource> std::ops::Deref for Declared<R> {
    type Target = R::Outputs;
    fn deref(&self) -> &R::Outputs {
        &self.outputs
    }
}

impl<R: Resource> fmt::Debug for Declared<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Declared").field("urn", &self.handle.urn).finish_non_exhaustive()
    }
}

impl<R: Resource> AsRef<Handle> for Declared<R> {
    fn as_ref(&self) -> &Handle {
        &self.handle
    }
}

impl AsRef<Handle> for Handle {
    fn as_ref(&self) -> &Handle {
        self
    }
}

/// A value produced by another resource, known only once that resource has been applied.
/// Using it as an input records a dependency edge.
pub struct Output<T> {
    reference: OutputRef,
    _type: PhantomData<fn() -> T>,
}

impl<T> Output<T> {
    pub fn reference(&self) -> &OutputRef {
        &self.reference
    }
}

impl<T> Clone for Output<T> {
    fn clone(&self) -> Self {
        Output { reference: self.reference.clone(), _type: PhantomData }
    }
}

impl<T> fmt::Debug for Output<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Output({})", self.reference)
    }
}

impl<T> Serialize for Output<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.reference.to_value().serialize(s)
    }
}

/// A value that must never be shown: rendered and previewed as `[secret]`, encrypted at rest.
///
/// In a config file a secret names its source instead of holding its value (see
/// [`crate::config`]): `{ env = "VARIABLE" }`, `{ file = "path" }` or `{ ciphertext = "..." }`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Secret<T> {
        Secret(value)
    }

    /// The secret value. Keep it out of logs and errors.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(value::REDACTED)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(value::REDACTED)
    }
}

impl<T: Serialize> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let inner = serde_json::to_value(&self.0).map_err(serde::ser::Error::custom)?;
        value::secret(inner).serialize(s)
    }
}

/// An input property: a plain value, another resource's output, a secret, or a string
/// interpolated from several of those.
pub enum Input<T> {
    Value(T),
    Output(Output<T>),
    Secret(Secret<T>),
    /// A string built from parts; see [`interpolate`].
    Interpolated(Value),
}

impl<T: Clone> Clone for Input<T> {
    fn clone(&self) -> Self {
        match self {
            Input::Value(v) => Input::Value(v.clone()),
            Input::Output(o) => Input::Output(o.clone()),
            Input::Secret(s) => Input::Secret(s.clone()),
            Input::Interpolated(v) => Input::Interpolated(v.clone()),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Input<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Value(v) => v.fmt(f),
            Input::Output(o) => o.fmt(f),
            Input::Secret(s) => s.fmt(f),
            Input::Interpolated(_) => f.write_str("Interpolated(..)"),
        }
    }
}

impl<T: Serialize> Serialize for Input<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Input::Value(v) => v.serialize(s),
            Input::Output(o) => o.serialize(s),
            Input::Secret(v) => v.serialize(s),
            Input::Interpolated(v) => v.serialize(s),
        }
    }
}

impl<T> From<T> for Input<T> {
    fn from(v: T) -> Self {
        Input::Value(v)
    }
}

impl<T> From<Output<T>> for Input<T> {
    fn from(o: Output<T>) -> Self {
        Input::Output(o)
    }
}

impl<T> From<&Output<T>> for Input<T> {
    fn from(o: &Output<T>) -> Self {
        Input::Output(o.clone())
    }
}

impl<T> From<Secret<T>> for Input<T> {
    fn from(s: Secret<T>) -> Self {
        Input::Secret(s)
    }
}

impl From<&str> for Input<String> {
    fn from(s: &str) -> Self {
        Input::Value(s.to_string())
    }
}

/// One part of an interpolated string.
#[derive(Debug, Clone)]
pub enum Part {
    Text(String),
    Output(OutputRef),
    Secret(String),
}

impl From<&str> for Part {
    fn from(s: &str) -> Self {
        Part::Text(s.to_string())
    }
}

impl From<String> for Part {
    fn from(s: String) -> Self {
        Part::Text(s)
    }
}

impl<T> From<&Output<T>> for Part {
    fn from(o: &Output<T>) -> Self {
        Part::Output(o.reference.clone())
    }
}

impl<T> From<Output<T>> for Part {
    fn from(o: Output<T>) -> Self {
        Part::Output(o.reference)
    }
}

impl From<&Secret<String>> for Part {
    fn from(s: &Secret<String>) -> Self {
        Part::Secret(s.0.clone())
    }
}

/// A string input assembled from text, outputs and secrets, resolved when every output in it
/// is known. Non-string outputs are joined in their JSON form.
pub fn interpolate(parts: impl IntoIterator<Item = Part>) -> Input<String> {
    let values = parts
        .into_iter()
        .map(|p| match p {
            Part::Text(t) => Value::String(t),
            Part::Output(r) => r.to_value(),
            Part::Secret(s) => value::secret(Value::String(s)),
        })
        .collect();
    Input::Interpolated(value::concat(values))
}

/// Options that change how the engine treats one resource.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub(crate) depends_on: Vec<Urn>,
    pub(crate) protect: bool,
    pub(crate) retain_on_delete: bool,
    pub(crate) ignore_changes: Vec<String>,
    pub(crate) aliases: Vec<Urn>,
    pub(crate) delete_before_replace: bool,
    pub(crate) import: Option<String>,
}

impl Options {
    pub fn new() -> Options {
        Options::default()
    }

    /// An explicit dependency, beyond those recorded by using outputs.
    pub fn depends_on(mut self, other: impl AsRef<Handle>) -> Options {
        self.depends_on.push(other.as_ref().urn.clone());
        self
    }

    /// Refuse to delete or replace this resource until `protect` is turned off and deployed.
    pub fn protect(mut self, on: bool) -> Options {
        self.protect = on;
        self
    }

    /// When the resource leaves the program, forget it from state but leave it in place.
    pub fn retain_on_delete(mut self, on: bool) -> Options {
        self.retain_on_delete = on;
        self
    }

    /// Ignore differences in this input property (a top-level name or dotted path).
    pub fn ignore_changes(mut self, property: &str) -> Options {
        self.ignore_changes.push(property.to_string());
        self
    }

    /// A former URN of this resource: a rename, not a replacement.
    pub fn alias(mut self, old_urn: &str) -> Options {
        self.aliases.push(Urn::from(old_urn));
        self
    }

    /// Delete the old resource before creating its replacement.
    pub fn delete_before_replace(mut self, on: bool) -> Options {
        self.delete_before_replace = on;
        self
    }

    /// Adopt the existing resource with this provider id instead of creating one, when state
    /// does not know the resource yet. The deploy reads it back, records it, and changes in
    /// place whatever differs from the program; a difference that would replace it is an
    /// error instead (an adopted resource is never replaced by its import). Once in state,
    /// the option has no effect, so it may stay in the program.
    pub fn import(mut self, id: &str) -> Options {
        self.import = Some(id.to_string());
        self
    }
}
