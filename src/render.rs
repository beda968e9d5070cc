//! The canonical document of a desired stack, and the files rendered from templates.
//!
//! Deterministic by construction: keys sorted, resources ordered by URN, no timestamps, no
//! absolute paths, secrets as `[secret]`, outputs not known yet as `${<urn>#<path>}`.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::stack::Desired;
use crate::value::{self, CONCAT, SECRET};

/// How a value is shown in render and preview: secrets redacted, unknowns as placeholders.
pub fn display_value(v: &Value) -> Value {
    if value::marker(v, SECRET).is_some() || value::marker(v, value::CIPHERTEXT).is_some() {
        return Value::String(value::REDACTED.into());
    }
    if let Some(r) = value::as_output_ref(v) {
        return Value::String(format!("${{{r}}}"));
    }
    if value::marker(v, value::FUNCTION).is_some() {
        return Value::String(format!("${{{}}}", function_text(v)));
    }
    if let Some(inner) = value::marker(v, value::JSON) {
        return Value::String(value::canonical_json(&display_value(inner)));
    }
    if let Some(Value::Array(parts)) = value::marker(v, CONCAT) {
        let mut s = String::new();
        for p in parts {
            match display_value(p) {
                Value::String(t) => s.push_str(&t),
                Value::Null => {}
                other => s.push_str(&other.to_string()),
            }
        }
        return Value::String(s);
    }
    match v {
        Value::Array(items) => Value::Array(items.iter().map(display_value).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, c)| (k.clone(), display_value(c))).collect()),
        other => other.clone(),
    }
}

/// How a value computed by a function shows: `name(arg, ...)`, outputs as `<urn>#<path>`.
fn function_text(v: &Value) -> String {
    if let Some(r) = value::as_output_ref(v) {
        return r.to_string();
    }
    if let Some(inner) = value::marker(v, value::FUNCTION) {
        let name = inner.get("name").and_then(Value::as_str).unwrap_or("fn");
        let args: Vec<String> =
            inner.get("args").and_then(Value::as_array).into_iter().flatten().map(function_text).collect();
        return format!("{name}({})", args.join(", "));
    }
    match display_value(v) {
        Value::String(s) => s,
        other => value::canonical_json(&other),
    }
}

/// The canonical JSON document of `desired`.
pub fn document(desired: &Desired) -> String {
    let resources: Vec<Value> = desired
        .resources
        .values()
        .map(|r| {
            let mut v = serde_json::to_value(r).expect("a desired resource serializes");
            v["inputs"] = display_value(&r.inputs);
            if let Some(p) = &r.provider {
                // Its settings are shown once, under `providers`.
                v["provider"] = Value::String(p.name.clone());
            }
            v
        })
        .collect();
    let outputs: serde_json::Map<String, Value> =
        desired.outputs.iter().map(|(k, v)| (k.clone(), display_value(v))).collect();
    let mut doc = json!({
        "stack": desired.stack,
        "resources": resources,
        "outputs": outputs,
        "files": desired.files.keys().collect::<Vec<_>>(),
    });
    // Shown only when a program has them, so that documents of programs without them stay
    // as they were.
    let components: serde_json::Map<String, Value> = desired
        .components
        .iter()
        .filter(|(_, c)| !c.outputs.is_empty())
        .map(|(path, c)| {
            let outputs: serde_json::Map<String, Value> =
                c.outputs.iter().map(|(k, v)| (k.clone(), display_value(v))).collect();
            (path.clone(), json!({"outputs": outputs}))
        })
        .collect();
    if !components.is_empty() {
        doc["components"] = Value::Object(components);
    }
    if !desired.providers.is_empty() {
        let providers: serde_json::Map<String, Value> =
            desired.providers.iter().map(|(k, p)| (k.clone(), display_value(&p.settings))).collect();
        doc["providers"] = Value::Object(providers);
    }
    let mut out = String::new();
    canonical(&doc, 0, &mut out);
    out.push('\n');
    out
}

/// Pretty JSON with keys sorted at every level, independent of serde_json's map features.
pub fn canonical(v: &Value, indent: usize, out: &mut String) {
    value::write_sorted(v, Some(indent), out);
}

/// Writes `stack.json` and `files/<path>` for every rendered file under `dir`. Returns the
/// paths written, relative to `dir`.
pub fn write(desired: &Desired, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("stack.json"), document(desired))?;
    written.push(PathBuf::from("stack.json"));
    for (name, text) in &desired.files {
        let rel = Path::new("files").join(name);
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
        written.push(rel);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_sorts_keys_and_indents() {
        let mut out = String::new();
        canonical(&json!({"b": [1, {"d": 1, "c": 2}], "a": {}, "e": []}), 0, &mut out);
        assert_eq!(
            out,
            "{\n  \"a\": {},\n  \"b\": [\n    1,\n    {\n      \"c\": 2,\n      \"d\": 1\n    }\n  ],\n  \"e\": []\n}"
        );
    }

    #[test]
    fn secrets_and_unknowns_are_shown_safely() {
        let r = value::OutputRef { urn: crate::Urn::from("s/t:x/a"), path: "id".into() };
        let v = json!({"p": value::secret(json!("hunter2")), "o": r.to_value(), "c": value::concat(vec![json!("x-"), r.to_value()])});
        assert_eq!(display_value(&v), json!({"p": "[secret]", "o": "${s/t:x/a#id}", "c": "x-${s/t:x/a#id}"}));
    }
}
