//! How plans, drift and summaries are shown: colored text, plain text, JSON, Markdown.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use crate::apply::{Drift, Outcome};
use crate::plan::{Op, Plan, PropertyDiff, Step};

/// ANSI styling that turns itself off when color is not wanted.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color && !s.is_empty() {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    pub fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }
    pub fn yellow(&self, s: &str) -> String {
        self.paint("33", s)
    }
    pub fn red(&self, s: &str) -> String {
        self.paint("31", s)
    }
    pub fn magenta(&self, s: &str) -> String {
        self.paint("35", s)
    }
    pub fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
    pub fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    fn op(&self, op: Op, s: &str) -> String {
        match op {
            Op::Create | Op::Import => self.green(s),
            Op::Update => self.yellow(s),
            Op::Replace | Op::ReplaceDeleteFirst => self.magenta(s),
            Op::Delete | Op::DeleteReplaced => self.red(s),
            Op::Forget | Op::Same => self.dim(s),
        }
    }
}

/// `2 to create, 1 to update, ...`.
pub fn counts(plan: &Plan) -> String {
    let mut parts = Vec::new();
    for (op, word) in [
        (Op::Create, "to create"),
        (Op::Import, "to import"),
        (Op::Update, "to update"),
        (Op::Replace, "to replace"),
        (Op::ReplaceDeleteFirst, "to replace (delete first)"),
        (Op::Delete, "to delete"),
        (Op::Forget, "to forget"),
    ] {
        let n = plan.count(op);
        if n > 0 {
            parts.push(format!("{n} {word}"));
        }
    }
    let retired = plan
        .steps
        .iter()
        .filter(|s| s.op == Op::DeleteReplaced && !plan.steps.iter().any(|o| o.urn == s.urn && o.op == Op::Replace))
        .count();
    if retired > 0 {
        parts.push(format!("{retired} replaced earlier to delete"));
    }
    let state_only = plan.steps.iter().filter(|s| s.op == Op::Same && s.state_only).count();
    if state_only > 0 {
        parts.push(format!("{state_only} state-only change{}", if state_only == 1 { "" } else { "s" }));
    }
    if !plan.changed_outputs.is_empty() {
        parts.push(format!(
            "{} output{} to change",
            plan.changed_outputs.len(),
            if plan.changed_outputs.len() == 1 { "" } else { "s" }
        ));
    }
    let same = plan.unchanged;
    if parts.is_empty() {
        return format!("no changes ({same} unchanged)");
    }
    format!("{}, {same} unchanged", parts.join(", "))
}

fn short(v: &Option<Value>) -> String {
    match v {
        None => "(none)".into(),
        Some(Value::String(s)) if s.len() > 80 || s.contains('\n') => {
            let first: String = s.chars().take(60).collect::<String>().replace('\n', "\\n");
            format!("\"{first}…\" ({} bytes)", s.len())
        }
        Some(v) => {
            let s = v.to_string();
            if s.len() > 100 {
                format!("{}… ({} bytes)", &s[..s.char_indices().nth(80).map(|(i, _)| i).unwrap_or(s.len())], s.len())
            } else {
                s
            }
        }
    }
}

fn diff_line(d: &PropertyDiff) -> String {
    let new = if d.unknown { "(known after apply)".to_string() } else { short(&d.new) };
    let mut s = match (&d.old, &d.new, d.unknown) {
        (None, _, _) => format!("+ {}: {new}", d.path),
        (Some(_), None, false) => format!("- {}: {}", d.path, short(&d.old)),
        _ => format!("~ {}: {} => {new}", d.path, short(&d.old)),
    };
    if d.forces_replacement {
        s.push_str(" (forces replacement)");
    }
    s
}

fn step_note(step: &Step) -> String {
    let mut notes = Vec::new();
    if let Some(from) = &step.renamed_from {
        notes.push(format!("renamed from {from}"));
    }
    if step.op == Op::Same && step.state_only && step.renamed_from.is_none() {
        notes.push("options or dependencies changed; state only".into());
    }
    let forced: Vec<&str> = step.diffs.iter().filter(|d| d.forces_replacement).map(|d| d.path.as_str()).collect();
    if !forced.is_empty() {
        notes.push(format!("{} forces replacement", forced.join(", ")));
    }
    if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join("; "))
    }
}

/// The plan as a tree by component, for people.
pub fn text(plan: &Plan, style: Style) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} {}", style.bold("Plan for"), style.bold(&plan.stack));
    // Group by component path, keeping a stable order.
    let mut groups: BTreeMap<Vec<String>, Vec<&Step>> = BTreeMap::new();
    for s in plan.steps.iter().filter(|s| s.is_change()) {
        let comps: Vec<String> = s.urn.components().iter().map(|c| c.to_string()).collect();
        groups.entry(comps).or_default().push(s);
    }
    let mut printed: Vec<String> = Vec::new();
    for (comps, mut steps) in groups {
        steps.sort_by(|a, b| (&a.urn, a.op).cmp(&(&b.urn, b.op)));
        // Print the component headers that differ from the previous group.
        let common = printed.iter().zip(&comps).take_while(|(a, b)| a == b).count();
        for (depth, c) in comps.iter().enumerate().skip(common) {
            let _ = writeln!(out, "{}{}/", "  ".repeat(depth + 1), style.bold(c));
        }
        printed = comps.clone();
        let indent = "  ".repeat(comps.len() + 1);
        for s in steps {
            let symbol = format!("{:>2}", s.op.symbol());
            let _ = writeln!(
                out,
                "{indent}{} {}/{}  {}{}",
                style.op(s.op, &symbol),
                s.type_token,
                s.urn.name(),
                style.op(s.op, s.op.verb()),
                style.dim(&step_note(s))
            );
            for d in &s.diffs {
                let _ = writeln!(out, "{indent}      {}", style.op(s.op, &diff_line(d)));
            }
        }
    }
    if !plan.changed_outputs.is_empty() {
        let _ = writeln!(out, "  outputs: {}", plan.changed_outputs.iter().cloned().collect::<Vec<_>>().join(", "));
    }
    let _ = writeln!(out, "\n{}", counts(plan));
    out
}

/// The plan as Markdown, for a pull-request comment.
pub fn markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### cairn preview: `{}`\n", plan.stack);
    let _ = writeln!(out, "**{}**\n", counts(plan));
    let changes: Vec<&Step> = plan.steps.iter().filter(|s| s.is_change()).collect();
    if changes.is_empty() {
        return out;
    }
    out.push_str("| | Resource | Type | Change |\n|---|---|---|---|\n");
    for s in &changes {
        let name = s.urn.as_str().strip_prefix(&plan.stack).and_then(|r| r.strip_prefix('/')).unwrap_or(s.urn.as_str());
        let _ = writeln!(
            out,
            "| `{}` | `{}` | `{}` | {}{} |",
            s.op.symbol().trim(),
            name,
            s.type_token,
            s.op.verb(),
            step_note(s).replace('|', "\\|")
        );
    }
    let with_diffs: Vec<&&Step> = changes.iter().filter(|s| !s.diffs.is_empty()).collect();
    if !with_diffs.is_empty() {
        out.push_str("\n<details><summary>Property changes</summary>\n\n```diff\n");
        for s in with_diffs {
            let _ = writeln!(out, "@@ {} @@", s.urn);
            for d in &s.diffs {
                let line = diff_line(d);
                let mark = match (&d.old, d.unknown || d.new.is_some()) {
                    (None, _) => '+',
                    (Some(_), false) => '-',
                    _ => '!',
                };
                let _ = writeln!(out, "{mark} {}", &line[2..]);
            }
        }
        out.push_str("```\n\n</details>\n");
    }
    out
}

/// Drift found by refresh.
pub fn drift(drifts: &[Drift], style: Style) -> String {
    let mut out = String::new();
    if drifts.is_empty() {
        out.push_str("no drift: every resource matches state\n");
        return out;
    }
    for d in drifts {
        match &d.diffs {
            None => {
                let _ = writeln!(
                    out,
                    "{} {}  {}",
                    style.red(" -"),
                    d.urn,
                    style.red("deleted outside cairn; will be created again by the next deploy")
                );
            }
            Some(diffs) if diffs.is_empty() => {
                let _ = writeln!(out, "{} {}  {}", style.yellow(" ~"), d.urn, style.dim("outputs changed"));
            }
            Some(diffs) => {
                let _ = writeln!(out, "{} {}  {}", style.yellow(" ~"), d.urn, style.yellow("changed outside cairn"));
                for p in diffs {
                    // Old is what state says, new is what is really there.
                    let _ = writeln!(out, "      {}", style.yellow(&diff_line(p)));
                }
            }
        }
    }
    let _ = writeln!(out, "\n{} resource{} drifted", drifts.len(), if drifts.len() == 1 { "" } else { "s" });
    out
}

/// The end-of-run summary.
pub fn outcome(o: &Outcome, style: Style) -> String {
    let mut out = String::new();
    let changed = o.done.iter().filter(|(_, op)| *op != Op::Same).count();
    let redecided = |out: &mut String| {
        if o.redecided.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "  {} {} step{} needed less than planned, once the values the plan could not know were known:",
            style.dim("decided again:"),
            o.redecided.len(),
            if o.redecided.len() == 1 { "" } else { "s" }
        );
        for r in &o.redecided {
            let _ = writeln!(out, "    {} ({} planned, {} done): {}", r.urn, r.planned.verb(), r.done.verb(), r.why);
        }
    };
    if o.succeeded() {
        let _ =
            writeln!(out, "{} {changed} change{} applied", style.green("done:"), if changed == 1 { "" } else { "s" });
        redecided(&mut out);
        return out;
    }
    let _ = writeln!(out, "{} {changed} change{} applied", style.bold("summary:"), if changed == 1 { "" } else { "s" });
    redecided(&mut out);
    for (urn, op, error) in &o.failed {
        let _ = writeln!(out, "  {} {urn} ({}): {error}", style.red("failed"), op.verb());
    }
    for (urn, op) in &o.skipped {
        let _ = writeln!(out, "  {} {urn} ({}): a step it depends on failed", style.yellow("skipped"), op.verb());
    }
    if let Some(why) = &o.lost_lock {
        let _ = writeln!(out, "  {} the state lock was lost: {why}", style.red("stopped:"));
        for (urn, op) in &o.in_flight_at_loss {
            let _ = writeln!(out, "    in flight, result may not be recorded: {urn} ({})", op.verb());
        }
    }
    if o.interrupted {
        let _ = writeln!(out, "  {} interrupted; running steps finished and were saved", style.yellow("stopped:"));
    }
    let not_started: Vec<_> = o.not_started.iter().filter(|(_, op)| *op != Op::Same).collect();
    if !not_started.is_empty() {
        let _ =
            writeln!(out, "  {} step{} not started", not_started.len(), if not_started.len() == 1 { "" } else { "s" });
    }
    out
}
