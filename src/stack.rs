//! Building the desired graph: what a stack program declares.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::panic::Location;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::resource::{Declared, Handle, Input, Options, Part, Resource};
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
                write!(f, "{at}: stack output `{name}` is exported twice")
            }
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
    scope: Vec<String>,
    desired: Desired,
    declared_at: HashMap<Urn, &'static Location<'static>>,
    files_at: HashMap<String, &'static Location<'static>>,
    errors: Vec<BuildError>,
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
            scope: Vec::new(),
            declared_at: HashMap::new(),
            files_at: HashMap::new(),
            errors: Vec::new(),
        }
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
        let at = Location::caller();
        let urn = Urn::new(&self.name, &self.scope, R::TYPE, name);
        let handle = Handle::new(urn.clone());
        let declared = Declared { outputs: R::outputs(&handle), handle };
        if let Err(message) = validate_name("resource", name) {
            self.errors.push(BuildError::InvalidName { message, at: here(at) });
            return declared;
        }
        if let Some(first) = self.declared_at.get(&urn) {
            self.errors.push(BuildError::DuplicateUrn { urn, first: here(first), second: here(at) });
            return declared;
        }
        self.declared_at.insert(urn.clone(), at);
        let inputs = match serde_json::to_value(&resource) {
            Ok(v) => v,
            Err(e) => {
                self.errors.push(BuildError::Serialize { urn, message: e.to_string(), at: here(at) });
                return declared;
            }
        };
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
            },
        );
        declared
    }

    /// Runs `build` with resources named under the component `name`: a URN becomes
    /// `<stack>/<...>/<name>/<type>/<resource>`.
    #[track_caller]
    pub fn component<T>(&mut self, name: &str, build: impl FnOnce(&mut Stack) -> T) -> T {
        if let Err(message) = validate_name("component", name) {
            self.errors.push(BuildError::InvalidName { message, at: here(Location::caller()) });
        }
        self.scope.push(name.to_string());
        let result = build(self);
        self.scope.pop();
        result
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
                parts.push(Part::Output(r.clone()));
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
