//! The dependency graph of a desired stack, as Graphviz dot or Mermaid.

use std::fmt::Write as _;

use crate::stack::Desired;

fn label(urn: &str, stack: &str) -> String {
    urn.strip_prefix(stack).and_then(|s| s.strip_prefix('/')).unwrap_or(urn).to_string()
}

/// Graphviz: `cairn graph --format dot | dot -Tsvg > graph.svg`. Edges point from a resource
/// to what it depends on.
pub fn dot(desired: &Desired) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{}\" {{", desired.stack);
    out.push_str("  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n");
    for r in desired.resources.values() {
        let _ = writeln!(out, "  {:?} [label={:?}];", r.urn.as_str(), label(r.urn.as_str(), &desired.stack));
    }
    for r in desired.resources.values() {
        for d in &r.dependencies {
            let _ = writeln!(out, "  {:?} -> {:?};", r.urn.as_str(), d.as_str());
        }
    }
    out.push_str("}\n");
    out
}

/// Mermaid flowchart, for Markdown documents and pull requests.
pub fn mermaid(desired: &Desired) -> String {
    let ids: std::collections::BTreeMap<&str, String> =
        desired.resources.keys().enumerate().map(|(i, u)| (u.as_str(), format!("r{i}"))).collect();
    let mut out = String::from("flowchart LR\n");
    for r in desired.resources.values() {
        let text = label(r.urn.as_str(), &desired.stack).replace('"', "#quot;");
        let _ = writeln!(out, "  {}[\"{}\"]", ids[r.urn.as_str()], text);
    }
    for r in desired.resources.values() {
        for d in &r.dependencies {
            if let Some(to) = ids.get(d.as_str()) {
                let _ = writeln!(out, "  {} --> {}", ids[r.urn.as_str()], to);
            }
        }
    }
    out
}
