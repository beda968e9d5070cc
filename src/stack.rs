//! Building the desired graph: what a stack program declares.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::panic::Location;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::resource::{Declared, Handle, Input, Options, Part, ProviderSettings, Resource};
use crate::urn::{validate_name, Urn};
use crate::value::{self, OutputRef};

/// One resource as the program wants it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesiredResource {
    pub urn: Urn,
    #[serde(rename = "type")]
    pub type_token: String,
    /// Inputs, possibly holding `$output`, `$concat` and `$secret` markers.
    pub inputs: Value,
    /// Every resource this one depends on: those whose outputs it uses, plus `depends_on`.
    pub dependencies: BTreeSet<Urn>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub protect: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub retain_on_delete: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_changes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<Urn>,
    /// From the type, or set by the resource's options.
    #[serde(default, skip_serializing_if = "is_false")]
    pub delete_before_replace: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replace_on_change: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_outputs: Vec<String>,
    /// Outputs an in-place update may change; the others are known through an update.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub updatable_outputs: Vec<String>,
    /// The provider id of an existing resource to adopt when state does not know this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import: Option<String>,
    /// The provider configuration chosen for it (by its options or its component).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderUse>,
}

/// A provider configuration as a resource uses it: its name and settings (recorded in state,
/// so that a resource removed from the program is deleted with the settings it was made with).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderUse {
    pub name: String,
    pub settings: Value,
}

/// A named provider configuration declared with [`Stack::provider`]: settings for the
/// resources of one package (an AWS region and profile), chosen per resource
/// ([`Options::provider`]) or as a default for a component ([`Stack::use_provider`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    package: &'static str,
    name: String,
    settings: Value,
}

impl ProviderConfig {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn package(&self) -> &str {
        self.package
    }

    pub fn settings(&self) -> &Value {
        &self.settings
    }
}

/// A component's record in the desired stack: the outputs it declares.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ComponentRecord {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, Value>,
}

/// A finished component: what its build returned (through `Deref`), and a handle that
/// resources can depend on ([`Options::depends_on`]).
#[derive(Debug)]
pub struct Component<T> {
    handle: ComponentHandle,
    value: T,
}

impl<T> Component<T> {
    pub fn handle(&self) -> &ComponentHandle {
        &self.handle
    }

    /// What the component's build returned.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> std::ops::Deref for Component<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> crate::resource::Dependency for Component<T> {
    fn urns(&self) -> Vec<Urn> {
        self.handle.urns.clone()
    }
}

/// A component as something to depend on: every resource declared in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentHandle {
    /// `a/b` for component `b` inside `a`.
    pub path: String,
    urns: Vec<Urn>,
}

impl crate::resource::Dependency for ComponentHandle {
    fn urns(&self) -> Vec<Urn> {
        self.urns.clone()
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The desired stack: the program's whole declaration, before any IO.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    pub stack: String,
    pub resources: BTreeMap<Urn, DesiredResource>,
    /// Stack outputs, as declared (may hold unknowns until deployed).
    pub outputs: BTreeMap<String, Value>,
    /// Files rendered from templates, by relative path, as they are shown (secrets redacted,
    /// unknown outputs as `${urn#path}` placeholders).
    #[serde(skip)]
    pub files: BTreeMap<String, String>,
    /// Components by path (`a/b`), with the outputs they declare.
    #[serde(default)]
    pub components: BTreeMap<String, ComponentRecord>,
    /// Provider configurations by name.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderUse>,
}

/// A mistake in the program, reported with where it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    DuplicateUrn { urn: Urn, first: String, second: String },
    InvalidName { message: String, at: String },
    Serialize { urn: Urn, message: String, at: String },
    UnknownDependency { urn: Urn, dependency: Urn, at: String },
    Template { file: String, message: String, at: String },
    DuplicateFile { file: String, at: String },
    DuplicateOutput { name: String, at: String },
    DuplicateComponent { path: String, first: String, second: String },
    DuplicateProvider { name: String, first: String, second: String },
    Provider { message: String, at: String },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::DuplicateUrn { urn, first, second } => write!(
                f,
                "duplicate resource `{urn}`: declared at {first} and again at {second}; give one of them another name"
            ),
            BuildError::InvalidName { message, at } => write!(f, "{at}: {message}"),
            BuildError::Serialize { urn, message, at } => {
                write!(f, "{at}: inputs of `{urn}` cannot be serialized: {message}")
            }
            BuildError::UnknownDependency { urn, dependency, at } => {
                write!(f, "{at}: `{urn}` depends on `{dependency}`, which this program does not declare")
            }
            BuildError::Template { file, message, at } => {
                write!(f, "{at}: template `{file}` failed to render: {message}")
            }
            BuildError::DuplicateFile { file, at } => {
                write!(f, "{at}: file `{file}` is rendered twice")
            }
            BuildError::DuplicateOutput { name, at } => {
                write!(f, "{at}: output `{name}` is declared twice")
            }
            BuildError::DuplicateComponent { path, first, second } => write!(
                f,
                "duplicate component `{path}`: made at {first} and again at {second}; give one of them another name"
            ),
            BuildError::DuplicateProvider { name, first, second } => {
                write!(f, "duplicate provider configuration `{name}`: declared at {first} and again at {second}")
            }
            BuildError::Provider { message, at } => write!(f, "{at}: {message}"),
        }
    }
}

/// All the mistakes found while building the program.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct BuildErrors(pub Vec<BuildError>);

impl fmt::Display for BuildErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(f, "the stack program has {n} error{}:", if n == 1 { "" } else { "s" })?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

fn here(loc: &Location<'_>) -> String {
    format!("{}:{}:{}", loc.file(), loc.line(), loc.column())
}

/// The builder a stack program declares its resources on.
///
/// Mistakes (duplicate names, unserializable inputs) do not interrupt the program: they are
/// collected and reported together by [`Stack::finish`].
#[derive(Debug)]
pub struct Stack {
    project: String,
    env: String,
    name: String,
    /// The components being built, outermost first; the stack itself is the first scope.
    scopes: Vec<Scope>,
    desired: Desired,
    declared_at: HashMap<Urn, &'static Location<'static>>,
    files_at: HashMap<String, &'static Location<'static>>,
    components_at: HashMap<String, &'static Location<'static>>,
    providers_at: HashMap<String, &'static Location<'static>>,
    errors: Vec<BuildError>,
}

/// The stack itself, or a component being built.
#[derive(Debug, Default)]
struct Scope {
    /// Empty for the stack itself.
    name: String,
    /// Default provider configurations, by package.
    providers: HashMap<&'static str, ProviderConfig>,
    /// Every resource declared in it (and in its components); kept for components only.
    urns: Vec<Urn>,
}

impl Stack {
    /// A stack named `<project>-<env>`.
    pub fn new(project: &str, env: &str) -> Stack {
        let name = format!("{project}-{env}");
        Stack {
            project: project.to_string(),
            env: env.to_string(),
            desired: Desired { stack: name.clone(), ..Desired::default() },
            name,
            scopes: vec![Scope::default()],
            declared_at: HashMap::new(),
            files_at: HashMap::new(),
            components_at: HashMap::new(),
            providers_at: HashMap::new(),
            errors: Vec::new(),
        }
    }

    /// The names of the components being built, outermost first.
    fn component_path(&self) -> Vec<String> {
        self.scopes[1..].iter().map(|s| s.name.clone()).collect()
    }

    pub fn project(&self) -> &str {
        &self.project
    }

    pub fn env(&self) -> &str {
        &self.env
    }

    /// The stack's name, `<project>-<env>`, the first segment of every URN.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Declares a resource with default options.
    #[track_caller]
    pub fn add<R: Resource>(&mut self, name: &str, resource: R) -> Declared<R> {
        self.add_with(name, resource, Options::default())
    }

    /// Declares a resource with options.
    #[track_caller]
    pub fn add_with<R: Resource>(&mut self, name: &str, resource: R, options: Options) -> Declared<R> {
        let () = R::DECLARED_OUTPUTS_EXIST;
        let at = Location::caller();
        let urn = Urn::new(&self.name, &self.component_path(), R::TYPE, name);
        let handle = Handle::new(urn.clone());
        let declared = Declared { outputs: <R::Outputs as crate::resource::Outputs>::of(&handle), handle };
        if let Err(message) = validate_name("resource", name) {
            self.errors.push(BuildError::InvalidName { message, at: here(at) });
            return declared;
        }
        if let Some(first) = self.declared_at.get(&urn) {
            self.errors.push(BuildError::DuplicateUrn { urn, first: here(first), second: here(at) });
            return declared;
        }
        self.declared_at.insert(urn.clone(), at);
        let mut inputs = match serde_json::to_value(&resource) {
            Ok(v) => v,
            Err(e) => {
                self.errors.push(BuildError::Serialize { urn, message: e.to_string(), at: here(at) });
                return declared;
            }
        };
        let package = R::TYPE.split(':').next().unwrap_or(R::TYPE);
        let provider = match options.provider {
            Some(p) if p.package != package => {
                self.errors.push(BuildError::Provider {
                    message: format!(
                        "`{urn}` is a {package} resource; provider configuration `{}` is for {}",
                        p.name, p.package
                    ),
                    at: here(at),
                });
                return declared;
            }
            Some(p) => Some(p),
            None => self.scopes.iter().rev().find_map(|s| s.providers.get(package)).cloned(),
        };
        if let Value::Object(map) = &mut inputs {
            for key in R::PROVIDER_INPUTS {
                if !map.get(*key).is_none_or(Value::is_null) {
                    continue;
                }
                match provider.as_ref().and_then(|p| p.settings.get(*key).filter(|v| !v.is_null())) {
                    Some(v) => {
                        map.insert(key.to_string(), v.clone());
                    }
                    None => {
                        let from = match &provider {
                            Some(p) => {
                                format!("neither the resource nor its provider configuration `{}` sets it", p.name)
                            }
                            None => format!(
                                "set it on the resource, or choose a `{package}` provider configuration for it or \
                                 its component (`Stack::provider`, `Stack::use_provider`)"
                            ),
                        };
                        self.errors.push(BuildError::Provider {
                            message: format!("`{urn}` has no `{key}`: {from}"),
                            at: here(at),
                        });
                        return declared;
                    }
                }
            }
        }
        let provider = provider.map(|p| ProviderUse { name: p.name, settings: p.settings });
        // Each component being built can be depended on for it; the stack's own scope
        // never is, so it keeps no list.
        for scope in &mut self.scopes[1..] {
            scope.urns.push(urn.clone());
        }
        let mut dependencies = BTreeSet::new();
        value::referenced_urns(&inputs, &mut dependencies);
        dependencies.extend(options.depends_on.iter().cloned());
        dependencies.remove(&urn);
        let mut ignore_changes = options.ignore_changes;
        ignore_changes.sort();
        ignore_changes.dedup();
        let mut aliases = options.aliases;
        aliases.sort();
        aliases.dedup();
        self.desired.resources.insert(
            urn.clone(),
            DesiredResource {
                urn,
                type_token: R::TYPE.to_string(),
                inputs,
                dependencies,
                protect: options.protect,
                retain_on_delete: options.retain_on_delete,
                ignore_changes,
                aliases,
                delete_before_replace: R::DELETE_BEFORE_REPLACE || options.delete_before_replace,
                replace_on_change: R::REPLACE_ON_CHANGE.iter().map(|s| s.to_string()).collect(),
                secret_outputs: R::SECRET_OUTPUTS.iter().map(|s| s.to_string()).collect(),
                updatable_outputs: R::UPDATABLE_OUTPUTS.iter().map(|s| s.to_string()).collect(),
                import: options.import,
                provider,
            },
        );
        declared
    }

    /// Runs `build` with resources named under the component `name`: a URN becomes
    /// `<stack>/<...>/<name>/<type>/<resource>`. The result gives back what `build` returned
    /// (through `Deref`, or [`Component::into_inner`]) and a handle that resources can depend
    /// on. Two components of the same name in one place are an error naming both call
    /// sites: mark module functions that make components `#[track_caller]`, so that the
    /// site named is their caller's.
    #[track_caller]
    pub fn component<T>(&mut self, name: &str, build: impl FnOnce(&mut Stack) -> T) -> Component<T> {
        let at = Location::caller();
        if let Err(message) = validate_name("component", name) {
            self.errors.push(BuildError::InvalidName { message, at: here(at) });
        }
        let mut path = self.component_path();
        path.push(name.to_string());
        let path = path.join("/");
        if let Some(first) = self.components_at.get(&path) {
            self.errors.push(BuildError::DuplicateComponent {
                path: path.clone(),
                first: here(first),
                second: here(at),
            });
        } else {
            self.components_at.insert(path.clone(), at);
            self.desired.components.entry(path.clone()).or_default();
        }
        self.scopes.push(Scope { name: name.to_string(), ..Scope::default() });
        let value = build(self);
        let scope = self.scopes.pop().expect("the component's scope");
        Component { handle: ComponentHandle { path, urns: scope.urns }, value }
    }

    /// Declares an output of the component being built, shown in the rendered document
    /// under the component (modules return their typed outputs; this is what a reviewer
    /// sees of them). At the top level, use [`Stack::export`].
    #[track_caller]
    pub fn output(&mut self, name: &str, value: impl Serialize) {
        let at = Location::caller();
        let path = self.component_path().join("/");
        if path.is_empty() {
            self.errors.push(BuildError::InvalidName {
                message: format!(
                    "output `{name}` is declared outside any component; stack outputs are exported with `export`"
                ),
                at: here(at),
            });
            return;
        }
        let value = match serde_json::to_value(value) {
            Ok(v) => v,
            Err(e) => {
                self.errors.push(BuildError::InvalidName {
                    message: format!("output `{name}` of component `{path}` cannot be serialized: {e}"),
                    at: here(at),
                });
                return;
            }
        };
        let outputs = &mut self.desired.components.entry(path.clone()).or_default().outputs;
        if outputs.contains_key(name) {
            self.errors.push(BuildError::DuplicateOutput { name: format!("{path}/{name}"), at: here(at) });
            return;
        }
        outputs.insert(name.to_string(), value);
    }

    /// Declares a provider configuration named `name`: settings for the resources of one
    /// package (for AWS, a region and profile). Choose it per resource with
    /// [`Options::provider`], or as the default of the current component (or of the whole
    /// stack, at the top level) with [`Stack::use_provider`]. Settings are recorded in state
    /// in clear: they may not hold secrets.
    #[track_caller]
    pub fn provider<S: ProviderSettings>(&mut self, name: &str, settings: S) -> ProviderConfig {
        let at = Location::caller();
        let settings = match serde_json::to_value(&settings) {
            Ok(v) => v,
            Err(e) => {
                self.errors.push(BuildError::Provider {
                    message: format!("provider configuration `{name}` cannot be serialized: {e}"),
                    at: here(at),
                });
                Value::Null
            }
        };
        if value::has_secrets(&settings) {
            self.errors.push(BuildError::Provider {
                message: format!(
                    "provider configuration `{name}` holds a secret; its settings are recorded in state in clear, so \
                     pass credentials through the environment or a profile"
                ),
                at: here(at),
            });
        }
        if let Err(message) = validate_name("provider configuration", name) {
            self.errors.push(BuildError::InvalidName { message, at: here(at) });
        }
        if let Some(first) = self.providers_at.get(name) {
            self.errors.push(BuildError::DuplicateProvider {
                name: name.to_string(),
                first: here(first),
                second: here(at),
            });
        } else {
            self.providers_at.insert(name.to_string(), at);
            self.desired
                .providers
                .insert(name.to_string(), ProviderUse { name: name.to_string(), settings: settings.clone() });
        }
        ProviderConfig { package: S::PACKAGE, name: name.to_string(), settings }
    }

    /// Makes `config` the default provider configuration of its package for the rest of the
    /// component being built (or of the whole stack, at the top level).
    pub fn use_provider(&mut self, config: &ProviderConfig) {
        let scope = self.scopes.last_mut().expect("the stack's scope");
        scope.providers.insert(config.package, config.clone());
    }

    /// Exports a stack output, shown by `cairn outputs`: a plain value, an [`crate::Output`],
    /// an [`Input`] or a [`crate::Secret`].
    #[track_caller]
    pub fn export(&mut self, name: &str, value: impl Serialize) {
        let at = Location::caller();
        if self.desired.outputs.contains_key(name) {
            self.errors.push(BuildError::DuplicateOutput { name: name.to_string(), at: here(at) });
            return;
        }
        match serde_json::to_value(value) {
            Ok(v) => {
                self.desired.outputs.insert(name.to_string(), v);
            }
            Err(e) => self.errors.push(BuildError::InvalidName {
                message: format!("stack output `{name}` cannot be serialized: {e}"),
                at: here(at),
            }),
        }
    }

    /// Renders a `tera` template into a file of the stack's rendered output and returns its
    /// text as an input. Outputs in `context` that are not known yet stay unknown in the result
    /// (and show as `${urn#path}` in the rendered file); secrets make the result secret (and
    /// show as `[secret]`).
    #[track_caller]
    pub fn template(&mut self, file: &str, template: &str, context: &impl Serialize) -> Input<String> {
        let at = Location::caller();
        let fail = |message: String| BuildError::Template { file: file.to_string(), message, at: here(at) };
        if file.is_empty() || file.starts_with('/') || file.split('/').any(|p| p == ".." || p.is_empty()) {
            self.errors.push(fail("file name must be a relative path without `..`".into()));
            return Input::Value(String::new());
        }
        if let Some(first) = self.files_at.get(file) {
            let _ = first;
            self.errors.push(BuildError::DuplicateFile { file: file.to_string(), at: here(at) });
            return Input::Value(String::new());
        }
        let ctx = match serde_json::to_value(context) {
            Ok(v) => v,
            Err(e) => {
                self.errors.push(fail(format!("context cannot be serialized: {e}")));
                return Input::Value(String::new());
            }
        };
        let mut holes = Vec::new();
        let ctx = tokenize(&ctx, &mut holes);
        let ctx = match tera::Context::from_value(ctx) {
            Ok(c) => c,
            Err(e) => {
                self.errors.push(fail(format!("context must be a map: {e}")));
                return Input::Value(String::new());
            }
        };
        let text = match tera::Tera::one_off(template, &ctx, false) {
            Ok(t) => t,
            Err(e) => {
                self.errors.push(fail(tera_error_chain(&e)));
                return Input::Value(String::new());
            }
        };
        let (parts, shown) = split_tokens(&text, &holes);
        self.files_at.insert(file.to_string(), at);
        self.desired.files.insert(file.to_string(), shown);
        crate::resource::interpolate(parts)
    }

    /// Ends the declaration: the desired graph, or every mistake found.
    pub fn finish(mut self) -> Result<Desired, BuildErrors> {
        let mut errors = std::mem::take(&mut self.errors);
        for r in self.desired.resources.values() {
            for dep in &r.dependencies {
                if !self.desired.resources.contains_key(dep) {
                    let at = self.declared_at.get(&r.urn).map(|l| here(l)).unwrap_or_default();
                    errors.push(BuildError::UnknownDependency { urn: r.urn.clone(), dependency: dep.clone(), at });
                }
            }
        }
        let mut outputs_deps = BTreeSet::new();
        for v in self.desired.outputs.values() {
            value::referenced_urns(v, &mut outputs_deps);
        }
        for dep in outputs_deps {
            if !self.desired.resources.contains_key(&dep) {
                errors.push(BuildError::UnknownDependency {
                    urn: Urn::from("<stack outputs>"),
                    dependency: dep,
                    at: String::new(),
                });
            }
        }
        if errors.is_empty() {
            Ok(self.desired)
        } else {
            Err(BuildErrors(errors))
        }
    }
}

fn tera_error_chain(e: &tera::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

const TOKEN_START: char = '\u{1}';
const TOKEN_END: char = '\u{2}';

enum Hole {
    Output(OutputRef),
    Secret(String),
}

/// Replaces unknown outputs and secrets in a template context by unique tokens, so that the
/// rendered text can be split back into parts.
fn tokenize(v: &Value, holes: &mut Vec<Hole>) -> Value {
    if let Some(r) = value::as_output_ref(v) {
        holes.push(Hole::Output(r));
        return Value::String(format!("{TOKEN_START}{}{TOKEN_END}", holes.len() - 1));
    }
    if let Some(inner) = value::marker(v, value::SECRET) {
        let text = match value::reveal(inner) {
            Value::String(s) => s,
            other => other.to_string(),
        };
        holes.push(Hole::Secret(text));
        return Value::String(format!("{TOKEN_START}{}{TOKEN_END}", holes.len() - 1));
    }
    if let Some(Value::Array(parts)) = value::marker(v, value::CONCAT) {
        // An interpolated string inside a context: join its parts' tokens.
        let mut s = String::new();
        for p in parts {
            match tokenize(p, holes) {
                Value::String(t) => s.push_str(&t),
                other => s.push_str(&other.to_string()),
            }
        }
        return Value::String(s);
    }
    match v {
        Value::Array(items) => Value::Array(items.iter().map(|i| tokenize(i, holes)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, i)| (k.clone(), tokenize(i, holes))).collect()),
        other => other.clone(),
    }
}

fn split_tokens(text: &str, holes: &[Hole]) -> (Vec<Part>, String) {
    let mut parts = Vec::new();
    let mut shown = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(TOKEN_START) {
        let after = &rest[start + 1..];
        let Some(end) = after.find(TOKEN_END) else {
            break;
        };
        let Ok(index) = after[..end].parse::<usize>() else {
            break;
        };
        let Some(hole) = holes.get(index) else { break };
        parts.push(Part::Text(rest[..start].to_string()));
        shown.push_str(&rest[..start]);
        match hole {
            Hole::Output(r) => {
                shown.push_str(&format!("${{{r}}}"));
                parts.push(Part::Output(r.to_value()));
            }
            Hole::Secret(s) => {
                shown.push_str(value::REDACTED);
                parts.push(Part::Secret(s.clone()));
            }
        }
        rest = &after[end + 1..];
    }
    parts.push(Part::Text(rest.to_string()));
    shown.push_str(rest);
    (parts, shown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::local::File;
    use crate::resource::Secret;

    fn file(path: &str) -> File {
        File { path: path.into(), content: "x".into(), mode: None }
    }

    #[test]
    fn a_duplicate_urn_names_both_call_sites() {
        let mut stack = Stack::new("p", "dev");
        let mut lines = (0, 0);
        stack.component("web", |s| {
            lines.0 = line!() + 1;
            s.add("index", file("a"));
            lines.1 = line!() + 1;
            s.add("index", file("b"));
        });
        let errors = stack.finish().unwrap_err();
        let text = errors.to_string();
        assert!(text.contains("duplicate resource `p-dev/web/local:File/index`"), "{text}");
        let first = format!("src/stack.rs:{}:", lines.0);
        let second = format!("src/stack.rs:{}:", lines.1);
        assert!(text.contains(&first) && text.contains(&second), "{text}");
    }

    #[test]
    fn names_are_validated_and_all_errors_reported() {
        let mut stack = Stack::new("p", "dev");
        stack.add("a/b", file("a"));
        stack.component("", |_| {});
        let errors = stack.finish().unwrap_err();
        assert_eq!(errors.0.len(), 2, "{errors}");
    }

    #[test]
    fn outputs_record_dependencies_and_render_as_placeholders() {
        let mut stack = Stack::new("p", "dev");
        let a = stack.add("a", file("a"));
        let b = stack.add("b", File { path: "b".into(), content: a.sha256.clone().into(), mode: None });
        stack.add_with("c", file("c"), Options::new().depends_on(&b));
        let desired = stack.finish().unwrap();
        let deps = |n: &str| desired.resources[&Urn::from(format!("p-dev/local:File/{n}"))].dependencies.clone();
        assert_eq!(deps("b").into_iter().map(|u| u.to_string()).collect::<Vec<_>>(), ["p-dev/local:File/a"]);
        assert_eq!(deps("c").into_iter().map(|u| u.to_string()).collect::<Vec<_>>(), ["p-dev/local:File/b"]);
        assert!(crate::render::document(&desired).contains("\"content\": \"${p-dev/local:File/a#sha256}\""));
    }

    #[test]
    fn templates_keep_unknowns_and_secrets_out_of_the_rendered_file() {
        let mut stack = Stack::new("p", "dev");
        let a = stack.add("a", file("a"));
        let ctx = serde_json::json!({
            "hash": a.sha256,
            "password": Secret::new("hunter2".to_string()),
            "name": "web",
        });
        let text = stack.template("conf/app.ini", "name={{ name }}\nhash={{ hash }}\npassword={{ password }}\n", &ctx);
        stack.add("conf", File { path: "conf".into(), content: text, mode: None });
        let desired = stack.finish().unwrap();
        assert_eq!(desired.files["conf/app.ini"], "name=web\nhash=${p-dev/local:File/a#sha256}\npassword=[secret]\n");
        let inputs = &desired.resources[&Urn::from("p-dev/local:File/conf")].inputs;
        assert!(value::has_unknowns(inputs) && value::has_secrets(inputs));
        let resolved = value::resolve(inputs, &|_| Some(serde_json::json!("abc")));
        assert_eq!(value::reveal(&resolved)["content"], "name=web\nhash=abc\npassword=hunter2\n");
        assert!(value::has_secrets(&resolved), "the file's content stays secret");
    }

    #[test]
    fn a_bad_template_is_reported_where_it_was_rendered() {
        let mut stack = Stack::new("p", "dev");
        stack.template("x.txt", "{{ missing }}", &serde_json::json!({}));
        let text = stack.finish().unwrap_err().to_string();
        assert!(text.contains("src/stack.rs:") && text.contains("template `x.txt` failed to render"), "{text}");
    }
}
