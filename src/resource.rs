//! The program-side model: typed resources, inputs, outputs, secrets and options.

use std::fmt;
use std::marker::PhantomData;

use std::sync::Arc;

use serde::de::DeserializeOwned;
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
///
/// Its outputs are declared once, with [`crate::outputs!`], and what it says of them is
/// checked when a program declares such a resource, at compile time:
///
/// ```
/// # use cairn::{Resource, Stack};
/// #[derive(serde::Serialize)]
/// struct Bucket {}
/// cairn::outputs! { struct BucketOutputs { arn: String, etag: String } }
/// impl Resource for Bucket {
///     const TYPE: &'static str = "x:Bucket";
///     const UPDATABLE_OUTPUTS: &'static [&'static str] = &["etag"];
///     type Outputs = BucketOutputs;
/// }
/// let bucket = Stack::new("p", "dev").add("b", Bucket {});
/// let _arn: &cairn::Output<String> = &bucket.arn;
/// ```
///
/// An output it does not declare is an error:
///
/// ```compile_fail
/// # use cairn::{Resource, Stack};
/// #[derive(serde::Serialize)]
/// struct Bucket {}
/// cairn::outputs! { struct BucketOutputs { arn: String, etag: String } }
/// impl Resource for Bucket {
///     const TYPE: &'static str = "x:Bucket";
///     const UPDATABLE_OUTPUTS: &'static [&'static str] = &["etga"];
///     type Outputs = BucketOutputs;
/// }
/// let bucket = Stack::new("p", "dev").add("b", Bucket {});
/// let _arn: &cairn::Output<String> = &bucket.arn;
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
    /// Input properties that the resource's provider configuration fills in when the
    /// resource leaves them unset (`None`): an AWS resource's `region` comes from the
    /// `aws` configuration chosen for it or for its component (see `Stack::provider`). One
    /// that neither sets is a mistake, reported with the resource: a value the plan cannot
    /// see (the machine's default region) would move resources without showing it.
    const PROVIDER_INPUTS: &'static [&'static str] = &[];
    /// Typed references to this resource's outputs, declared with [`crate::outputs!`].
    type Outputs: Outputs;

    /// Checked when a program declares a resource of this type, at compile time: every
    /// name in `SECRET_OUTPUTS` and `UPDATABLE_OUTPUTS` is an output of the type.
    #[doc(hidden)]
    const DECLARED_OUTPUTS_EXIST: () = assert!(
        names_within(Self::SECRET_OUTPUTS, <Self::Outputs as Outputs>::PATHS)
            && names_within(Self::UPDATABLE_OUTPUTS, <Self::Outputs as Outputs>::PATHS),
        "SECRET_OUTPUTS and UPDATABLE_OUTPUTS must name outputs the type declares"
    );
}

/// The typed outputs of a resource type. Declare them with [`crate::outputs!`], which
/// makes each field's path its name: a path cannot be misspelt.
pub trait Outputs {
    /// Every output's path.
    const PATHS: &'static [&'static str];
    /// The outputs of the resource behind `handle`.
    fn of(handle: &Handle) -> Self;
}

/// Declares the typed outputs of a resource type: a struct whose fields are [`Output`]s,
/// each named after the output property it refers to.
///
/// ```
/// cairn::outputs! {
///     /// The outputs of a `Vpc`.
///     pub struct VpcOutputs {
///         /// The VPC's id.
///         pub id: String,
///         pub cidr_block: String,
///     }
/// }
/// ```
#[macro_export]
macro_rules! outputs {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$field_meta:meta])* $field_vis:vis $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        $vis struct $name {
            $( $(#[$field_meta])* $field_vis $field: $crate::Output<$ty>, )*
        }

        impl $crate::resource::Outputs for $name {
            const PATHS: &'static [&'static str] = &[$(stringify!($field)),*];
            fn of(handle: &$crate::Handle) -> $name {
                $name { $( $field: handle.output(stringify!($field)), )* }
            }
        }
    };
}

/// Whether every name (its first segment, for a dotted path) is one of `paths`.
pub const fn names_within(names: &[&str], paths: &[&str]) -> bool {
    let mut i = 0;
    while i < names.len() {
        let name = names[i].as_bytes();
        let mut top = 0;
        while top < name.len() && name[top] != b'.' {
            top += 1;
        }
        let mut found = false;
        let mut j = 0;
        while j < paths.len() {
            let path = paths[j].as_bytes();
            if path.len() == top {
                let mut k = 0;
                while k < top && path[k] == name[k] {
                    k += 1;
                }
                if k == top {
                    found = true;
                }
            }
            j += 1;
        }
        if !found {
            return false;
        }
        i += 1;
    }
    true
}

/// Settings of a provider configuration, e.g. an AWS region and profile (see
/// `Stack::provider`).
pub trait ProviderSettings: Serialize {
    /// The package whose resources it configures: the first segment of their type tokens
    /// (`aws` for `aws:ecr:Repository`).
    const PACKAGE: &'static str;
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

    /// A typed reference to the output property at `path` (what [`crate::outputs!`] builds).
    pub fn output<T>(&self, path: &str) -> Output<T> {
        let reference = OutputRef { urn: self.urn.clone(), path: path.to_string() };
        Output { marker: reference.to_value(), _type: PhantomData }
    }
}

/// Something a resource can depend on: a resource, or a component (all of its resources).
pub trait Dependency {
    /// The resources it stands for.
    fn urns(&self) -> Vec<Urn>;
}

impl Dependency for Handle {
    fn urns(&self) -> Vec<Urn> {
        vec![self.urn.clone()]
    }
}

impl<R: Resource> Dependency for Declared<R> {
    fn urns(&self) -> Vec<Urn> {
        vec![self.handle.urn.clone()]
    }
}

impl<D: Dependency + ?Sized> Dependency for &D {
    fn urns(&self) -> Vec<Urn> {
        (**self).urns()
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

/// A value produced by resources, known only once they have been applied: one output, or a
/// value computed from outputs ([`Output::map`], [`Output::all`]). Using it as an input
/// records a dependency edge on every resource it comes from.
pub struct Output<T> {
    /// An `$output` marker, or a `$fn` marker of a value computed from outputs.
    marker: Value,
    _type: PhantomData<fn() -> T>,
}

impl<T> Output<T> {
    /// The marker this output stands for in inputs (see [`crate::value`]).
    pub fn to_value(&self) -> Value {
        self.marker.clone()
    }

    /// The output's value passed through `f` once it is known. `f` must be a pure function
    /// of its argument: it runs when the plan is made (with the value in state) and again at
    /// apply (with the value just produced), and the same value must give the same result.
    /// A secret stays secret. Render shows `${map(<urn>#<path>)}`.
    ///
    /// ```ignore
    /// let endpoint = lb.dns_name.map(|dns: String| format!("https://{dns}/health"));
    /// ```
    pub fn map<U, F>(&self, f: F) -> Output<U>
    where
        T: DeserializeOwned,
        U: Serialize,
        F: Fn(T) -> U + Send + Sync + 'static,
    {
        let f = move |args: &[Value]| -> Result<Value, String> {
            let arg = args.first().cloned().unwrap_or(Value::Null);
            let t: T = serde_json::from_value(arg)
                .map_err(|e| format!("its argument is not a `{}`: {e}", std::any::type_name::<T>()))?;
            serde_json::to_value(f(t)).map_err(|e| format!("its result cannot be serialized: {e}"))
        };
        Output { marker: value::register("map", vec![self.marker.clone()], Arc::new(f)), _type: PhantomData }
    }

    /// Several outputs as one: `Output::all((&a, &b)).map(|(a, b)| ...)`, or a `Vec` of
    /// outputs of one type.
    pub fn all<J: Join<Out = T>>(outputs: J) -> Output<T> {
        let identity = |args: &[Value]| -> Result<Value, String> { Ok(Value::Array(args.to_vec())) };
        Output { marker: value::register("all", outputs.markers(), Arc::new(identity)), _type: PhantomData }
    }
}

/// Outputs that [`Output::all`] joins into one.
pub trait Join {
    /// The type of the joined value.
    type Out;
    #[doc(hidden)]
    fn markers(&self) -> Vec<Value>;
}

macro_rules! join_tuples {
    ($(($($name:ident : $ty:ident),+))*) => {$(
        impl<$($ty),+> Join for ($(&Output<$ty>,)+) {
            type Out = ($($ty,)+);
            fn markers(&self) -> Vec<Value> {
                let ($($name,)+) = self;
                vec![$($name.marker.clone()),+]
            }
        }
    )*};
}

join_tuples! {
    (a: A, b: B)
    (a: A, b: B, c: C)
    (a: A, b: B, c: C, d: D)
    (a: A, b: B, c: C, d: D, e: E)
}

impl<T> Join for Vec<Output<T>> {
    type Out = Vec<T>;
    fn markers(&self) -> Vec<Value> {
        self.iter().map(|o| o.marker.clone()).collect()
    }
}

impl<T> Join for &[Output<T>] {
    type Out = Vec<T>;
    fn markers(&self) -> Vec<Value> {
        self.iter().map(|o| o.marker.clone()).collect()
    }
}

impl<T> Clone for Output<T> {
    fn clone(&self) -> Self {
        Output { marker: self.marker.clone(), _type: PhantomData }
    }
}

impl<T> fmt::Debug for Output<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Output({})", crate::render::display_value(&self.marker))
    }
}

impl<T> Serialize for Output<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.marker.serialize(s)
    }
}

/// The JSON text of `value`, which may hold outputs (and secrets): known once every output
/// in it is, keys sorted. For policies and dashboards, built from typed structs or
/// `serde_json::json!` instead of string pieces.
///
/// ```ignore
/// let policy = cairn::json(&serde_json::json!({
///     "Statement": [{"Effect": "Allow", "Action": "ecr:BatchGetImage", "Resource": repo.arn}],
/// }));
/// ```
pub fn json(value: &impl Serialize) -> Input<String> {
    let v = match serde_json::to_value(value) {
        Ok(v) => v,
        Err(e) => {
            return Input::Interpolated(value::single(value::ERROR, Value::String(format!("cannot serialize: {e}"))))
        }
    };
    let resolved = value::resolve(&value::single(value::JSON, v), &|_| None);
    match resolved {
        Value::String(s) => Input::Value(s),
        other => Input::Interpolated(other),
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
    /// An output, or a value computed from outputs (its marker).
    Output(Value),
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
        Part::Output(o.marker.clone())
    }
}

impl<T> From<Output<T>> for Part {
    fn from(o: Output<T>) -> Self {
        Part::Output(o.marker)
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
            Part::Output(marker) => marker,
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
    pub(crate) provider: Option<crate::stack::ProviderConfig>,
}

impl Options {
    pub fn new() -> Options {
        Options::default()
    }

    /// An explicit dependency, beyond those recorded by using outputs: a resource, or a
    /// component (every resource in it).
    pub fn depends_on(mut self, other: impl Dependency) -> Options {
        self.depends_on.extend(other.urns());
        self
    }

    /// The provider configuration for this resource (instead of its component's default);
    /// it must configure the resource's package.
    pub fn provider(mut self, config: &crate::stack::ProviderConfig) -> Options {
        self.provider = Some(config.clone());
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
