//! Property values and the reserved markers inside them.
//!
//! Inputs and outputs travel through the engine as [`serde_json::Value`]s. Three single-key
//! objects are reserved and carry meaning beyond plain data:
//!
//! - `{"$output": {"urn": U, "path": P}}`: another resource's output, unknown until that
//!   resource has been applied. Using one records a dependency edge.
//! - `{"$secret": V}`: a value that must never be shown. Rendered and previewed as `[secret]`,
//!   encrypted before it reaches a state backend.
//! - `{"$concat": [parts]}`: a string assembled from literal strings and outputs, resolved
//!   once every output in it is known.
//!
//! - `{"$fn": {"id": N, "name": "map", "args": [values]}}`: a value computed by a Rust
//!   function of the program (`Output::map`, `Output::all`) once every argument is known.
//!   The function lives in this process's table ([`register`]); the marker never reaches
//!   state (state holds the computed value) or rendered output (which shows
//!   `${map(<urn>#<path>)}`).
//! - `{"$json": value}`: the JSON text of a value that holds outputs ([`crate::json`]),
//!   with keys sorted, once every output in it is known.
//! - `{"$error": message}`: a function that failed; a plan or an apply that meets one stops
//!   with the message.
//!
//! At rest a secret becomes `{"$ciphertext": "<base64>"}` (see [`crate::secrets`]).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::urn::Urn;

/// Key of the marker object for an unknown output reference.
pub const OUTPUT: &str = "$output";
/// Key of the marker object for a secret value.
pub const SECRET: &str = "$secret";
/// Key of the marker object for a string built from parts.
pub const CONCAT: &str = "$concat";
/// Key of the marker object for an encrypted secret at rest.
pub const CIPHERTEXT: &str = "$ciphertext";
/// What a secret looks like wherever it is shown.
pub const REDACTED: &str = "[secret]";
/// Key of the marker object for a value computed by a function of the program.
pub const FUNCTION: &str = "$fn";
/// Key of the marker object for the JSON text of a value.
pub const JSON: &str = "$json";
/// Key of the marker object for a function that failed.
pub const ERROR: &str = "$error";

/// A function of the program that computes a value from known values.
pub type Function = dyn Fn(&[Value]) -> Result<Value, String> + Send + Sync;

/// The functions of this process, by id: registered when a stack program declares them
/// (`Output::map`), called by render-free resolution in plan and apply. Programs are
/// short-lived, and each declared function is registered once.
static FUNCTIONS: std::sync::RwLock<Vec<std::sync::Arc<Function>>> = std::sync::RwLock::new(Vec::new());

/// Registers `f` and returns the marker of its value, computed from `args` (values that
/// may hold outputs). `name` is how render shows it: `${name(args)}`.
pub fn register(name: &str, args: Vec<Value>, f: std::sync::Arc<Function>) -> Value {
    let mut table = FUNCTIONS.write().expect("function table poisoned");
    table.push(f);
    let id = table.len() - 1;
    single(FUNCTION, serde_json::json!({"id": id, "name": name, "args": args}))
}

fn call(id: usize, args: &[Value]) -> Result<Value, String> {
    let f = FUNCTIONS
        .read()
        .expect("function table poisoned")
        .get(id)
        .cloned()
        .ok_or_else(|| format!("no function {id} in this process"))?;
    f(args)
}

/// The (id, name, args) of a function marker.
fn function_parts(value: &Value) -> Option<(usize, &str, &[Value])> {
    let inner = marker(value, FUNCTION)?;
    let id = inner.get("id")?.as_u64()? as usize;
    let name = inner.get("name")?.as_str()?;
    let args = inner.get("args")?.as_array()?;
    Some((id, name, args))
}

/// The first failed function's message inside `value`, if any.
pub fn find_error(value: &Value) -> Option<&str> {
    if let Some(m) = marker(value, ERROR) {
        return Some(m.as_str().unwrap_or("a function of the program failed"));
    }
    match value {
        Value::Array(items) => items.iter().find_map(find_error),
        Value::Object(map) => map.values().find_map(find_error),
        _ => None,
    }
}

/// Compact JSON with keys sorted at every level (independent of serde_json's map features):
/// the same value always gives the same text.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_sorted(value, None, &mut out);
    out
}

/// JSON with keys sorted at every level: compact, or pretty at `indent` levels of two
/// spaces (what render writes).
pub fn write_sorted(value: &Value, indent: Option<usize>, out: &mut String) {
    let (items, close): (Vec<(Option<&String>, &Value)>, char) = match value {
        Value::Object(map) if !map.is_empty() => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            (keys.into_iter().map(|k| (Some(k), &map[k])).collect(), '}')
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('[');
            (items.iter().map(|v| (None, v)).collect(), ']')
        }
        other => return out.push_str(&other.to_string()),
    };
    let pad = |out: &mut String, n: usize| out.push_str(&"  ".repeat(n));
    for (i, (key, item)) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if let Some(n) = indent {
            out.push('\n');
            pad(out, n + 1);
        }
        if let Some(k) = key {
            out.push_str(&Value::String(k.clone()).to_string());
            out.push_str(if indent.is_some() { ": " } else { ":" });
        }
        write_sorted(item, indent.map(|n| n + 1), out);
    }
    if let Some(n) = indent {
        out.push('\n');
        pad(out, n);
    }
    out.push(close);
}

/// A reference to one output property of one resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OutputRef {
    pub urn: Urn,
    /// Dotted path into the resource's outputs, for example `arn` or `endpoint.address`.
    pub path: String,
}

impl OutputRef {
    pub fn to_value(&self) -> Value {
        let mut inner = Map::new();
        inner.insert("urn".into(), Value::String(self.urn.to_string()));
        inner.insert("path".into(), Value::String(self.path.clone()));
        single(OUTPUT, Value::Object(inner))
    }
}

impl std::fmt::Display for OutputRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}", self.urn, self.path)
    }
}

pub(crate) fn single(key: &str, value: Value) -> Value {
    let mut map = Map::new();
    map.insert(key.to_string(), value);
    Value::Object(map)
}

/// If `value` is a single-key object whose key is `key`, its inner value.
pub fn marker<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) if map.len() == 1 => map.get(key),
        _ => None,
    }
}

/// The output reference a value stands for, if it is one.
pub fn as_output_ref(value: &Value) -> Option<OutputRef> {
    let inner = marker(value, OUTPUT)?;
    let urn = inner.get("urn")?.as_str()?;
    let path = inner.get("path")?.as_str()?;
    Some(OutputRef { urn: Urn::from(urn), path: path.to_string() })
}

/// The (urn, path) of an output marker, borrowed: no allocation on hot paths.
pub fn output_ref_parts(value: &Value) -> Option<(&str, &str)> {
    let inner = marker(value, OUTPUT)?;
    Some((inner.get("urn")?.as_str()?, inner.get("path")?.as_str()?))
}

/// Wraps a value as secret (idempotent).
pub fn secret(value: Value) -> Value {
    if marker(&value, SECRET).is_some() {
        value
    } else {
        single(SECRET, value)
    }
}

/// Every resource referenced by an output marker inside `value`.
pub fn referenced_urns(value: &Value, into: &mut BTreeSet<Urn>) {
    if let Some(r) = as_output_ref(value) {
        into.insert(r.urn);
        return;
    }
    match value {
        Value::Array(items) => items.iter().for_each(|v| referenced_urns(v, into)),
        Value::Object(map) => map.values().for_each(|v| referenced_urns(v, into)),
        _ => {}
    }
}

/// Whether any part of `value` is still unknown.
pub fn has_unknowns(value: &Value) -> bool {
    if as_output_ref(value).is_some() {
        return true;
    }
    match value {
        Value::Array(items) => items.iter().any(has_unknowns),
        Value::Object(map) => map.values().any(has_unknowns),
        _ => false,
    }
}

/// Whether `value` holds a value computed by a function of the program or a JSON text.
pub fn has_computed(value: &Value) -> bool {
    if marker(value, FUNCTION).is_some() || marker(value, JSON).is_some() {
        return true;
    }
    match value {
        Value::Array(items) => items.iter().any(has_computed),
        Value::Object(map) => map.values().any(has_computed),
        _ => false,
    }
}

/// Whether any part of `value` is secret.
pub fn has_secrets(value: &Value) -> bool {
    if marker(value, SECRET).is_some() || marker(value, CIPHERTEXT).is_some() {
        return true;
    }
    match value {
        Value::Array(items) => items.iter().any(has_secrets),
        Value::Object(map) => map.values().any(has_secrets),
        _ => false,
    }
}

/// Replaces every output reference that `lookup` can answer. References it cannot answer stay
/// as markers. A `$concat` whose parts are all known becomes a string (a secret string when any
/// part was secret).
pub fn resolve(value: &Value, lookup: &dyn Fn(&OutputRef) -> Option<Value>) -> Value {
    if let Some(r) = as_output_ref(value) {
        return lookup(&r).unwrap_or_else(|| value.clone());
    }
    if let Some(Value::Array(parts)) = marker(value, CONCAT) {
        let parts: Vec<Value> = parts.iter().map(|p| resolve(p, lookup)).collect();
        return concat(parts);
    }
    if let Some((id, name, args)) = function_parts(value) {
        let args: Vec<Value> = args.iter().map(|a| resolve(a, lookup)).collect();
        if args.iter().any(has_unknowns) {
            return single(FUNCTION, serde_json::json!({"id": id, "name": name, "args": args}));
        }
        if let Some(e) = args.iter().find_map(find_error) {
            return single(ERROR, Value::String(e.to_string()));
        }
        let revealed: Vec<Value> = args.iter().map(reveal).collect();
        return match call(id, &revealed) {
            Ok(v) if args.iter().any(has_secrets) => secret(v),
            Ok(v) => v,
            Err(e) => single(ERROR, Value::String(format!("`{name}` failed: {e}"))),
        };
    }
    if let Some(inner) = marker(value, JSON) {
        let inner = resolve(inner, lookup);
        if has_unknowns(&inner) || find_error(&inner).is_some() {
            return find_error(&inner)
                .map(|e| single(ERROR, Value::String(e.to_string())))
                .unwrap_or_else(|| single(JSON, inner));
        }
        let text = Value::String(canonical_json(&reveal(&inner)));
        return if has_secrets(&inner) { secret(text) } else { text };
    }
    match value {
        Value::Array(items) => Value::Array(items.iter().map(|v| resolve(v, lookup)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), resolve(v, lookup))).collect()),
        other => other.clone(),
    }
}

/// Joins parts into one string if all are known, else keeps a `$concat` marker.
pub fn concat(parts: Vec<Value>) -> Value {
    if parts.iter().any(has_unknowns) {
        return single(CONCAT, Value::Array(parts));
    }
    if let Some(e) = parts.iter().find_map(find_error) {
        return single(ERROR, Value::String(e.to_string()));
    }
    let mut out = String::new();
    let mut is_secret = false;
    for part in &parts {
        let (inner, s) = match marker(part, SECRET) {
            Some(inner) => (inner, true),
            None => (part, false),
        };
        is_secret |= s;
        match inner {
            Value::String(s) => out.push_str(s),
            Value::Null => {}
            other => out.push_str(&other.to_string()),
        }
    }
    if is_secret {
        secret(Value::String(out))
    } else {
        Value::String(out)
    }
}

/// The value with every secret replaced by [`REDACTED`]: what render, preview and logs show.
pub fn redact(value: &Value) -> Value {
    if marker(value, SECRET).is_some() || marker(value, CIPHERTEXT).is_some() {
        return Value::String(REDACTED.to_string());
    }
    match value {
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), redact(v))).collect()),
        other => other.clone(),
    }
}

/// The value with secret markers removed: what a provider receives.
pub fn reveal(value: &Value) -> Value {
    if let Some(inner) = marker(value, SECRET) {
        return reveal(inner);
    }
    match value {
        Value::Array(items) => Value::Array(items.iter().map(reveal).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), reveal(v))).collect()),
        other => other.clone(),
    }
}

/// Looks up a dotted path (`a.b.0`) inside a value.
pub fn get_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = value;
    for part in path.split('.') {
        // Secrets are transparent to lookups; the result stays wrapped by the caller.
        let inner = marker(current, SECRET).unwrap_or(current);
        current = match inner {
            Value::Object(map) => map.get(part)?,
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// Looks up an output, keeping it secret when it, or anything around it, was secret.
pub fn lookup_output(outputs: &Value, path: &str) -> Option<Value> {
    find_output(outputs, path).map(owned)
}

/// What [`find_output`] found, owned: wrapped as secret when it is one.
pub fn owned((found, is_secret): (&Value, bool)) -> Value {
    if is_secret {
        secret(found.clone())
    } else {
        found.clone()
    }
}

/// Like [`lookup_output`], borrowed: the value, and whether it (or anything around it) is
/// secret.
pub fn find_output<'a>(outputs: &'a Value, path: &str) -> Option<(&'a Value, bool)> {
    let mut current = outputs;
    let mut is_secret = false;
    for part in path.split('.') {
        if let Some(inner) = marker(current, SECRET) {
            is_secret = true;
            current = inner;
        }
        current = match current {
            Value::Object(map) => map.get(part)?,
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    if let Some(inner) = marker(current, SECRET) {
        return Some((inner, true));
    }
    Some((current, is_secret))
}

/// `target` with every value made secret whose counterpart in `reference` is secret. Used to
/// keep what a provider reads back as secret as what was written.
pub fn copy_secrecy(reference: &Value, target: Value) -> Value {
    if marker(reference, SECRET).is_some() || marker(reference, CIPHERTEXT).is_some() {
        return secret(target);
    }
    match (reference, target) {
        (Value::Object(r), Value::Object(t)) => Value::Object(
            t.into_iter()
                .map(|(k, v)| {
                    let v = match r.get(&k) {
                        Some(rv) => copy_secrecy(rv, v),
                        None => v,
                    };
                    (k, v)
                })
                .collect(),
        ),
        (Value::Array(r), Value::Array(t)) => Value::Array(
            t.into_iter()
                .enumerate()
                .map(|(i, v)| match r.get(i) {
                    Some(rv) => copy_secrecy(rv, v),
                    None => v,
                })
                .collect(),
        ),
        (_, t) => t,
    }
}

/// The secret texts a run knows, to keep them out of messages and to find what is derived
/// from them.
///
/// A secret is known by its revealed text (a string as it is, any other value as JSON), and
/// by that text as it looks inside a JSON string (escaped), since messages often quote
/// requests. Texts of four characters or more are found anywhere; shorter ones only as a
/// whole word, so that a one-letter secret does not blank every message.
#[derive(Clone, Default)]
pub struct Secrets {
    /// Longest first, so that a secret containing another is replaced whole.
    texts: Vec<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} known)", self.texts.len())
    }
}

/// Below this length a secret is only matched as a whole word.
const SHORT_SECRET: usize = 4;

impl Secrets {
    /// The secrets inside `value`.
    pub fn of(value: &Value) -> Secrets {
        Secrets::in_all([value])
    }

    /// The secrets inside every one of `values`.
    pub fn in_all<'v>(values: impl IntoIterator<Item = &'v Value>) -> Secrets {
        let mut s = Secrets::default();
        for v in values {
            s.collect(v);
        }
        s.texts.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        s.texts.dedup();
        s
    }

    fn collect(&mut self, value: &Value) {
        if let Some(inner) = marker(value, SECRET) {
            let text = match reveal(inner) {
                Value::String(s) => s,
                other => other.to_string(),
            };
            if text.is_empty() {
                return;
            }
            let quoted = serde_json::to_string(&text).expect("a string serializes");
            let escaped = &quoted[1..quoted.len() - 1];
            if escaped != text {
                self.texts.push(escaped.to_string());
            }
            self.texts.push(text);
            return;
        }
        match value {
            Value::Array(items) => items.iter().for_each(|v| self.collect(v)),
            Value::Object(map) => map.values().for_each(|v| self.collect(v)),
            _ => {}
        }
    }

    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// `text` with every known secret replaced by [`REDACTED`].
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.texts {
            out = if secret.chars().count() >= SHORT_SECRET {
                out.replace(secret.as_str(), REDACTED)
            } else {
                replace_words(&out, secret)
            };
        }
        out
    }

    /// Whether `text` holds a known secret.
    fn found_in(&self, text: &str) -> bool {
        self.texts.iter().any(|s| {
            if s.chars().count() >= SHORT_SECRET {
                text.contains(s.as_str())
            } else {
                replace_words(text, s) != text
            }
        })
    }

    /// `value` with every leaf that holds a known secret (a string containing one, or any
    /// value whose text is one) made secret: what a provider returns about a secret it was
    /// given stays secret.
    pub fn taint(&self, value: Value) -> Value {
        if self.texts.is_empty() || marker(&value, SECRET).is_some() {
            return value;
        }
        match value {
            Value::String(s) if self.found_in(&s) => secret(Value::String(s)),
            v @ (Value::Number(_) | Value::Bool(_)) if self.texts.contains(&v.to_string()) => secret(v),
            Value::Array(items) => Value::Array(items.into_iter().map(|v| self.taint(v)).collect()),
            Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, self.taint(v))).collect()),
            other => other,
        }
    }
}

/// `text` with `word` replaced where it stands alone (not inside a longer word).
fn replace_words(text: &str, word: &str) -> String {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut before: Option<char> = None;
    while let Some(at) = rest.find(word) {
        let prev = rest[..at].chars().next_back().or(if at == 0 { before } else { None });
        let next = rest[at + word.len()..].chars().next();
        out.push_str(&rest[..at]);
        if prev.is_some_and(is_word) || next.is_some_and(is_word) {
            out.push_str(word);
        } else {
            out.push_str(REDACTED);
        }
        before = word.chars().next_back();
        rest = &rest[at + word.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn out(urn: &str, path: &str) -> Value {
        OutputRef { urn: Urn::from(urn), path: path.into() }.to_value()
    }

    #[test]
    fn resolve_replaces_known_refs_and_keeps_unknown_ones() {
        let v = json!({"a": out("s/t:x/one", "id"), "b": [out("s/t:x/two", "id")]});
        let resolved = resolve(&v, &|r| (r.urn.as_str() == "s/t:x/one").then(|| json!("i-1")));
        assert_eq!(resolved["a"], json!("i-1"));
        assert!(has_unknowns(&resolved));
        let mut urns = BTreeSet::new();
        referenced_urns(&resolved, &mut urns);
        assert_eq!(urns.into_iter().map(|u| u.to_string()).collect::<Vec<_>>(), ["s/t:x/two"]);
    }

    #[test]
    fn concat_joins_known_parts_and_taints_secrets() {
        let v = concat(vec![json!("a-"), secret(json!("b")), json!(3)]);
        assert_eq!(v, secret(json!("a-b3")));
        let unknown = concat(vec![json!("a-"), out("s/t:x/one", "id")]);
        assert!(has_unknowns(&unknown));
        let later = resolve(&unknown, &|_| Some(json!("z")));
        assert_eq!(later, json!("a-z"));
    }

    #[test]
    fn redact_and_reveal() {
        let v = json!({"p": secret(json!("hunter2")), "q": 1});
        assert_eq!(redact(&v), json!({"p": "[secret]", "q": 1}));
        assert_eq!(reveal(&v), json!({"p": "hunter2", "q": 1}));
        assert!(has_secrets(&v));
    }

    #[test]
    fn lookup_output_keeps_secrecy_of_parents() {
        let v = json!({"creds": secret(json!({"user": "u"})), "id": "x"});
        assert_eq!(lookup_output(&v, "creds.user"), Some(secret(json!("u"))));
        assert_eq!(lookup_output(&v, "id"), Some(json!("x")));
        assert_eq!(lookup_output(&v, "nope"), None);
    }
}

#[cfg(test)]
mod computed_tests {
    use super::*;
    use serde_json::json;

    fn out(path: &str) -> Value {
        OutputRef { urn: Urn::from("s/t:x/a"), path: path.into() }.to_value()
    }

    #[test]
    fn functions_run_once_their_arguments_are_known_and_keep_secrecy() {
        let f = std::sync::Arc::new(|args: &[Value]| Ok(json!(format!("{}!", args[0].as_str().unwrap_or_default()))));
        let m = register("shout", vec![out("id")], f);
        assert!(has_unknowns(&m) && has_computed(&m));
        assert_eq!(resolve(&m, &|_| None), m, "unknown: kept");
        assert_eq!(resolve(&m, &|_| Some(json!("a"))), json!("a!"));
        assert_eq!(resolve(&m, &|_| Some(secret(json!("pw")))), secret(json!("pw!")), "a secret in, a secret out");
        let failing = register("fail", vec![out("id")], std::sync::Arc::new(|_: &[Value]| Err("no".into())));
        let resolved = resolve(&failing, &|_| Some(json!(1)));
        assert_eq!(find_error(&resolved), Some("`fail` failed: no"));
        // An error inside an interpolated string stops it too.
        let joined = resolve(&concat(vec![json!("x-"), failing]), &|_| Some(json!(1)));
        assert_eq!(find_error(&joined), Some("`fail` failed: no"));
    }

    #[test]
    fn json_text_is_canonical_and_secret_when_it_holds_a_secret() {
        let v = single(JSON, json!({"b": out("id"), "a": [1, {"d": true, "c": null}]}));
        assert_eq!(resolve(&v, &|_| Some(json!("i-1"))), json!(r#"{"a":[1,{"c":null,"d":true}],"b":"i-1"}"#));
        assert_eq!(
            resolve(&v, &|_| Some(secret(json!("pw")))),
            secret(json!(r#"{"a":[1,{"c":null,"d":true}],"b":"pw"}"#))
        );
    }
}

#[cfg(test)]
mod secrets_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_lose_every_secret_they_quote() {
        let s = Secrets::of(
            &json!({"a": secret(json!("hunter2")), "b": [secret(json!("pa\"ss"))], "n": secret(json!(4711))}),
        );
        assert_eq!(s.scrub("login failed for hunter2 with hunter22"), "login failed for [secret] with [secret]2");
        assert_eq!(s.scrub(r#"body {"password":"pa\"ss"}"#), r#"body {"password":"[secret]"}"#);
        assert_eq!(s.scrub("port 4711 refused"), "port [secret] refused");
        let short = Secrets::of(&json!(secret(json!("ab"))));
        assert_eq!(short.scrub("ab: a table, abc"), "[secret]: a table, abc");
        assert_eq!(Secrets::default().scrub("plain"), "plain");
    }

    #[test]
    fn what_holds_a_secret_is_tainted_and_nothing_else() {
        let s = Secrets::of(&json!({"p": secret(json!("hunter2"))}));
        let tainted =
            s.taint(json!({"id": "lt-1", "version": 3, "url": "https://u:hunter2@h", "list": ["x", "hunter2"]}));
        assert_eq!(
            tainted,
            json!({"id": "lt-1", "version": 3, "url": secret(json!("https://u:hunter2@h")), "list": ["x", secret(json!("hunter2"))]})
        );
    }
}
