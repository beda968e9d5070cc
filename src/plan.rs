//! `plan(desired, prior) -> Plan`: what must happen to make the real stack match the program.
//!
//! Pure: no IO, no clock, no randomness. The same inputs give the same plan. Steps carry the
//! ordering edges (`after`) that the executor follows; the planner, not the executor, decides
//! what may run in parallel.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use serde::Serialize;
use serde_json::Value;

use crate::stack::{Desired, DesiredResource};
use crate::state::{ResourceState, StackState};
use crate::urn::Urn;
use crate::value::{self, OutputRef};

/// What one step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// Nothing to do (perhaps a state-only change: rename, options).
    Same,
    Create,
    /// Adopt an existing resource (the `import` option): read it back by its id, record it,
    /// and change in place what differs from the program.
    Import,
    /// Change properties in place.
    Update,
    /// Create the replacement, point dependents at it; the old one is deleted later by a
    /// `DeleteReplaced` step.
    Replace,
    /// Delete the old resource, then create its replacement (declared for types that cannot
    /// coexist with their replacement).
    ReplaceDeleteFirst,
    /// Delete a resource replaced earlier.
    DeleteReplaced,
    Delete,
    /// Remove from state but leave the real resource (`retain_on_delete`).
    Forget,
}

impl Op {
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Same => " ",
            Op::Create => "+",
            Op::Import => "<=",
            Op::Update => "~",
            Op::Replace => "+-",
            Op::ReplaceDeleteFirst => "-+",
            Op::DeleteReplaced => "--",
            Op::Delete => "-",
            Op::Forget => "x",
        }
    }

    pub fn verb(self) -> &'static str {
        match self {
            Op::Same => "same",
            Op::Create => "create",
            Op::Import => "import",
            Op::Update => "update",
            Op::Replace => "replace",
            Op::ReplaceDeleteFirst => "replace (delete first)",
            Op::DeleteReplaced => "delete replaced",
            Op::Delete => "delete",
            Op::Forget => "forget (retain_on_delete)",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.verb())
    }
}

/// How one property differs. Values are shown redacted; unknowns as `(known after apply)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PropertyDiff {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
    /// The new value is not known until the resources it depends on are applied.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unknown: bool,
    /// This property cannot change in place.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub forces_replacement: bool,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub urn: Urn,
    #[serde(rename = "type")]
    pub type_token: String,
    pub op: Op,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diffs: Vec<PropertyDiff>,
    /// For a rename through an alias: the URN in state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<Urn>,
    /// A `Same` step that still changes the state record (rename, options, dependencies).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub state_only: bool,
    /// Indices of the steps that must finish first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<usize>,
}

impl Step {
    /// Whether the step changes anything, in the world or in state.
    pub fn is_change(&self) -> bool {
        self.op != Op::Same || self.state_only
    }
}

/// The result of planning.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub stack: String,
    /// What changes. Unchanged resources have no step; they are only counted.
    pub steps: Vec<Step>,
    pub unchanged: usize,
    /// Stack outputs whose value changes (known ones only).
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub changed_outputs: BTreeSet<String>,
}

impl Plan {
    pub fn count(&self, op: Op) -> usize {
        self.steps.iter().filter(|s| s.op == op).count()
    }

    pub fn has_changes(&self) -> bool {
        self.steps.iter().any(Step::is_change) || !self.changed_outputs.is_empty()
    }
}

/// Why a plan cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("dependency cycle: {}", .0.iter().map(|u| u.as_str()).collect::<Vec<_>>().join(" -> "))]
    Cycle(Vec<Urn>),
    #[error("{}", protected_message(.0))]
    Protected(Vec<(Urn, Op)>),
    #[error("`{alias}` is claimed as an alias by `{first}` and `{second}`")]
    AliasConflict { alias: Urn, first: Urn, second: Urn },
    #[error("`{urn}`: a function of the program failed: {message}")]
    Function { urn: Urn, message: String },
    /// The planner ordered steps in a circle: a bug in cairn, caught before anything runs.
    #[error("internal error: the plan's steps wait for each other in a circle ({}); nothing was changed, please report this", .0.join(" -> "))]
    StepCycle(Vec<String>),
}

fn protected_message(items: &[(Urn, Op)]) -> String {
    let mut s = String::from("the plan would ");
    let list: Vec<String> = items.iter().map(|(u, op)| format!("{} protected resource `{u}`", op.verb())).collect();
    s.push_str(&list.join(", "));
    s.push_str("; set `protect(false)` on it and deploy first, then make the change");
    s
}

/// The inputs a resource will be given: its desired inputs with outputs resolved where
/// `lookup` knows them, and with `ignore_changes` properties kept as they are in `prior`.
pub fn effective_inputs(
    desired: &DesiredResource,
    prior: Option<&ResourceState>,
    lookup: &dyn Fn(&OutputRef) -> Option<Value>,
) -> Value {
    let mut inputs = value::resolve(&desired.inputs, lookup);
    if let Some(prior) = prior {
        for path in &desired.ignore_changes {
            match value::get_path(&prior.inputs, path) {
                Some(old) => set_path(&mut inputs, path, Some(old.clone())),
                None => set_path(&mut inputs, path, None),
            }
        }
    }
    inputs
}

fn set_path(target: &mut Value, path: &str, new: Option<Value>) {
    let parts: Vec<&str> = path.split('.').collect();
    let mut current = target;
    for (i, part) in parts.iter().enumerate() {
        let last = i == parts.len() - 1;
        let Value::Object(map) = current else { return };
        if last {
            match new {
                Some(v) => {
                    map.insert(part.to_string(), v);
                }
                None => {
                    map.remove(*part);
                }
            }
            return;
        }
        match map.get_mut(*part) {
            Some(next) => current = next,
            None => return,
        }
    }
}

/// Whether `desired`, with its outputs resolved by `lookup`, equals `prior`.
/// Finds an output by (urn, path): the value and whether it is secret.
type FindOutput<'f, 'a> = dyn Fn(&str, &str) -> Option<(&'a Value, bool)> + 'f;

fn resolved_eq<'a>(desired: &Value, prior: &Value, find: &FindOutput<'_, 'a>) -> bool {
    if let Some((urn, path)) = value::output_ref_parts(desired) {
        return match find(urn, path) {
            None => false,
            Some((v, false)) => v == prior,
            Some((v, true)) => value::marker(prior, value::SECRET).is_some_and(|p| p == v),
        };
    }
    if value::marker(desired, value::CONCAT).is_some()
        || value::marker(desired, value::FUNCTION).is_some()
        || value::marker(desired, value::JSON).is_some()
    {
        let lookup = |o: &OutputRef| find(o.urn.as_str(), &o.path).map(value::owned);
        return &value::resolve(desired, &lookup) == prior;
    }
    match (desired, prior) {
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| resolved_eq(v, w, find)))
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(v, w)| resolved_eq(v, w, find))
        }
        (a, b) => a == b,
    }
}

/// Differences between new inputs (possibly with unknowns) and old ones, leaf by leaf.
pub fn diff(old: &Value, new: &Value, replace_on_change: &[String]) -> Vec<PropertyDiff> {
    let mut out = Vec::new();
    diff_into(old, new, String::new(), &mut out);
    for d in &mut out {
        let top = d.path.split('.').next().unwrap_or("");
        d.forces_replacement = replace_on_change.iter().any(|p| p == top || p == &d.path);
    }
    out
}

fn is_plain_object(v: &Value) -> bool {
    matches!(v, Value::Object(_))
        && value::marker(v, value::SECRET).is_none()
        && value::marker(v, value::OUTPUT).is_none()
        && value::marker(v, value::CONCAT).is_none()
}

fn diff_into(old: &Value, new: &Value, path: String, out: &mut Vec<PropertyDiff>) {
    if old == new {
        return;
    }
    if let (Value::Object(a), Value::Object(b)) = (old, new) {
        if is_plain_object(old) && is_plain_object(new) {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let child = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff_into(x, y, child, out),
                    (Some(x), None) => out.push(PropertyDiff {
                        path: child,
                        old: Some(value::redact(x)),
                        new: None,
                        unknown: false,
                        forces_replacement: false,
                    }),
                    (None, Some(y)) => out.push(leaf(child, None, y)),
                    (None, None) => {}
                }
            }
            return;
        }
    }
    out.push(leaf(path, Some(old), new));
}

fn leaf(path: String, old: Option<&Value>, new: &Value) -> PropertyDiff {
    let unknown = value::has_unknowns(new);
    PropertyDiff {
        path,
        old: old.map(value::redact),
        new: if unknown { None } else { Some(value::redact(new)) },
        unknown,
        forces_replacement: false,
    }
}

/// Plans `desired` against `prior`.
pub fn plan(desired: &Desired, prior: &StackState) -> Result<Plan, PlanError> {
    let resources: Vec<&DesiredResource> = desired.resources.values().collect();
    // One pass over the program's resources indexes them by URN and pairs each with its own
    // state record: both sides are ordered by URN, so a merge join does it, and each URN is
    // read once (on a large stack, that read is a cache miss).
    let mut index: FastMap<&str, usize> = FastMap::default();
    index.reserve(resources.len());
    let mut direct_claims = 0;
    let mut prior_of: Vec<Option<&ResourceState>> = vec![None; resources.len()];
    let mut prior_iter = prior.resources.values().peekable();
    // Resources without a record of their own that may take one over through an alias.
    let mut unclaimed_with_aliases = Vec::new();
    for (i, r) in resources.iter().enumerate() {
        index.insert(r.urn.as_str(), i);
        while let Some(p) = prior_iter.peek() {
            match p.urn.cmp(&r.urn) {
                std::cmp::Ordering::Less => {
                    prior_iter.next();
                }
                std::cmp::Ordering::Equal => {
                    prior_of[i] = prior_iter.next();
                    direct_claims += 1;
                    break;
                }
                std::cmp::Ordering::Greater => break,
            }
        }
        if prior_of[i].is_none() && !r.aliases.is_empty() {
            unclaimed_with_aliases.push(i);
        }
    }
    let deps = dependency_edges(&resources, &index);
    let order = topological_order(&resources, &deps)?;

    // Which state record each desired resource takes over (its own, or an alias's).
    // Records claimed through an alias: prior urn -> desired urn.
    let mut alias_claims: FastMap<&Urn, &Urn> = FastMap::default();
    // Claimed through an alias (a rename); the merge join's claims are not renames.
    let mut renamed = vec![false; resources.len()];
    for i in unclaimed_with_aliases {
        let r = resources[i];
        for alias in &r.aliases {
            if index.contains_key(alias.as_str()) {
                continue; // still declared under that name: not a rename
            }
            if let Some(p) = prior.resources.get(alias) {
                if let Some(other) = alias_claims.get(alias) {
                    if *other != &r.urn {
                        return Err(PlanError::AliasConflict {
                            alias: alias.clone(),
                            first: (*other).clone(),
                            second: r.urn.clone(),
                        });
                    }
                }
                prior_of[i] = Some(p);
                renamed[i] = true;
                alias_claims.insert(&p.urn, &r.urn);
                break;
            }
        }
    }

    let mut ops: Vec<Op> = vec![Op::Same; resources.len()];
    let mut steps: Vec<Step> = Vec::with_capacity(resources.len() + prior.retired.len());
    // usize::MAX: the resource is unchanged and has no step.
    let mut step_of_desired: Vec<usize> = vec![usize::MAX; resources.len()];
    let mut unchanged = 0;
    let mut protected = Vec::new();

    for &i in &order {
        let r = resources[i];
        let p = prior_of[i];
        let find = |urn: &str, path: &str| known_output(&resources, &prior_of, &ops, *index.get(urn)?, path);
        let lookup = |o: &OutputRef| find(o.urn.as_str(), &o.path).map(value::owned);
        let (op, diffs) = match p {
            None if r.import.is_some() => (Op::Import, Vec::new()),
            None => {
                let computed = value::has_computed(&r.inputs);
                if let Some(message) =
                    computed.then(|| value::resolve(&r.inputs, &lookup)).as_ref().and_then(value::find_error)
                {
                    return Err(PlanError::Function { urn: r.urn.clone(), message: message.to_string() });
                }
                (Op::Create, Vec::new())
            }
            // The common case, unchanged, is decided without building the resolved inputs.
            Some(p)
                if p.type_token == r.type_token
                    && r.ignore_changes.is_empty()
                    && resolved_eq(&r.inputs, &p.inputs, &find) =>
            {
                (Op::Same, Vec::new())
            }
            Some(p) => {
                let inputs = effective_inputs(r, Some(p), &lookup);
                if let Some(message) = value::find_error(&inputs) {
                    return Err(PlanError::Function { urn: r.urn.clone(), message: message.to_string() });
                }
                if p.type_token != r.type_token {
                    let d = PropertyDiff {
                        path: "(type)".into(),
                        old: Some(Value::String(p.type_token.clone())),
                        new: Some(Value::String(r.type_token.clone())),
                        unknown: false,
                        forces_replacement: true,
                    };
                    (replace_op(r), vec![d])
                } else {
                    let diffs = diff(&p.inputs, &inputs, &r.replace_on_change);
                    if diffs.is_empty() {
                        (Op::Same, diffs)
                    } else if diffs.iter().any(|d| d.forces_replacement) {
                        (replace_op(r), diffs)
                    } else {
                        (Op::Update, diffs)
                    }
                }
            }
        };
        if matches!(op, Op::Replace | Op::ReplaceDeleteFirst) && (r.protect || p.is_some_and(|p| p.protect)) {
            protected.push((r.urn.clone(), op));
        }
        ops[i] = op;
        let renamed_from = p.filter(|_| renamed[i]).map(|p| p.urn.clone());
        let state_only = op == Op::Same
            && p.is_some_and(|p| {
                renamed_from.is_some()
                    || p.protect != r.protect
                    || p.retain_on_delete != r.retain_on_delete
                    || p.delete_before_replace != r.delete_before_replace
                    || p.dependencies != r.dependencies
                    || p.provider != r.provider
            });
        if op == Op::Same && !state_only {
            // Nothing to do and nothing to wait for: no step.
            unchanged += 1;
            continue;
        }
        step_of_desired[i] = steps.len();
        steps.push(Step {
            urn: r.urn.clone(),
            type_token: r.type_token.clone(),
            op,
            diffs,
            renamed_from,
            state_only,
            after: Vec::new(),
        });
    }

    // Ordering among desired steps: after each dependency's step.
    for i in 0..resources.len() {
        if step_of_desired[i] == usize::MAX {
            continue;
        }
        let mut after: Vec<usize> =
            deps.of(i).iter().map(|&j| step_of_desired[j]).filter(|&s| s != usize::MAX).collect();
        after.sort_unstable();
        after.dedup();
        steps[step_of_desired[i]].after = after;
    }

    // Deletes and replacements wait for the steps of what depends on them; plans without
    // either (the common case) skip building the reverse edges.
    let any_replace = ops.iter().any(|op| matches!(op, Op::Replace | Op::ReplaceDeleteFirst));
    if direct_claims + alias_claims.len() < prior.resources.len() || !prior.retired.is_empty() || any_replace {
        let claimed: FastMap<&Urn, &Urn> =
            prior_of.iter().zip(&resources).filter_map(|(p, r)| p.map(|p| (&p.urn, &r.urn))).collect();
        order_deletes(prior, &resources, &index, &claimed, &ops, &step_of_desired, &mut steps, &mut protected);
    }

    if !protected.is_empty() {
        protected.sort();
        return Err(PlanError::Protected(protected));
    }
    check_steps_acyclic(&steps)?;

    let changed_outputs = desired
        .outputs
        .iter()
        .filter(|(name, v)| {
            let resolved = value::resolve(v, &|o: &OutputRef| {
                let j = *index.get(o.urn.as_str())?;
                known_output(&resources, &prior_of, &ops, j, &o.path).map(value::owned)
            });
            prior.outputs.get(*name) != Some(&resolved)
        })
        .map(|(name, _)| name.clone())
        .chain(prior.outputs.keys().filter(|k| !desired.outputs.contains_key(*k)).cloned())
        .collect();

    Ok(Plan { stack: desired.stack.clone(), steps, unchanged, changed_outputs })
}

/// Adds the delete steps of state records the program no longer claims, of replaced copies
/// left by earlier runs and of replacements made now, each after the steps of whatever
/// depends on it (in state or in the program).
#[allow(clippy::too_many_arguments)]
fn order_deletes<'a>(
    prior: &'a StackState,
    resources: &[&'a DesiredResource],
    index: &FastMap<&'a str, usize>,
    claimed: &FastMap<&'a Urn, &'a Urn>,
    ops: &[Op],
    step_of_desired: &[usize],
    steps: &mut Vec<Step>,
    protected: &mut Vec<(Urn, Op)>,
) {
    // Who depended on what in state.
    let mut prior_dependents: HashMap<&Urn, Vec<&Urn>> = HashMap::new();
    for p in prior.resources.values() {
        for d in &p.dependencies {
            prior_dependents.entry(d).or_default().push(&p.urn);
        }
    }
    let step_of_prior: HashMap<&Urn, usize> = claimed
        .iter()
        .map(|(prior_urn, desired_urn)| (*prior_urn, step_of_desired[index[desired_urn.as_str()]]))
        .filter(|(_, s)| *s != usize::MAX)
        .collect();

    // Deletes: state records the program no longer claims.
    let mut delete_step: HashMap<&Urn, usize> = HashMap::new();
    for p in prior.resources.values() {
        if claimed.contains_key(&p.urn) {
            continue;
        }
        let op = if p.retain_on_delete { Op::Forget } else { Op::Delete };
        if op == Op::Delete && p.protect {
            protected.push((p.urn.clone(), op));
        }
        delete_step.insert(&p.urn, steps.len());
        steps.push(Step {
            urn: p.urn.clone(),
            type_token: p.type_token.clone(),
            op,
            diffs: Vec::new(),
            renamed_from: None,
            state_only: false,
            after: Vec::new(),
        });
    }
    for (urn, &s) in &delete_step {
        let mut after: Vec<usize> = prior_dependents
            .get(urn)
            .into_iter()
            .flatten()
            .filter_map(|dependent| delete_step.get(dependent).or_else(|| step_of_prior.get(dependent)).copied())
            .collect();
        after.sort_unstable();
        after.dedup();
        steps[s].after = after;
    }

    // Desired dependents of each urn, to hold back deletion of replaced resources.
    let mut desired_dependents: HashMap<&Urn, Vec<usize>> = HashMap::new();
    for (i, r) in resources.iter().enumerate() {
        for d in &r.dependencies {
            if step_of_desired[i] != usize::MAX {
                desired_dependents.entry(d).or_default().push(step_of_desired[i]);
            }
        }
    }
    let waits_for_dependents = |urn: &Urn, extra: Option<usize>| -> Vec<usize> {
        let mut after: Vec<usize> = desired_dependents.get(urn).cloned().unwrap_or_default();
        after.extend(
            prior_dependents
                .get(urn)
                .into_iter()
                .flatten()
                .filter_map(|d| step_of_prior.get(d).or_else(|| delete_step.get(d)).copied()),
        );
        after.extend(extra);
        after.sort_unstable();
        after.dedup();
        after
    };

    // Resources replaced in an earlier run whose old copy is still to be deleted. Every step
    // of one URN is ordered against the others, so that a URN never has two operations
    // pending at once.
    let mut retired_step: HashMap<&Urn, usize> = HashMap::new();
    for old in prior.retired.values() {
        let own = index.get(old.urn.as_str()).map(|&i| step_of_desired[i]).filter(|&s| s != usize::MAX);
        let replaced_now = own.is_some_and(|s| matches!(steps[s].op, Op::Replace | Op::ReplaceDeleteFirst));
        let after = if replaced_now {
            // State keeps one replaced copy per URN, so this one goes before the new
            // replacement, and cannot wait for the dependents that wait for that replacement.
            Vec::new()
        } else {
            let mut after = waits_for_dependents(&old.urn, own);
            after.extend(delete_step.get(&old.urn).copied());
            after.sort_unstable();
            after.dedup();
            after
        };
        retired_step.insert(&old.urn, steps.len());
        steps.push(Step {
            urn: old.urn.clone(),
            type_token: old.type_token.clone(),
            op: Op::DeleteReplaced,
            diffs: Vec::new(),
            renamed_from: None,
            state_only: false,
            after,
        });
    }

    // Replacements made now: delete the old copy once dependents point at the new one.
    for (i, r) in resources.iter().enumerate() {
        if ops[i] != Op::Replace && ops[i] != Op::ReplaceDeleteFirst {
            continue;
        }
        let s = step_of_desired[i];
        // Only one retired copy per URN: an older one goes first.
        if let Some(&older) = retired_step.get(&r.urn) {
            steps[s].after.push(older);
        }
        if ops[i] == Op::Replace {
            let after = waits_for_dependents(&r.urn, Some(s));
            steps.push(Step {
                urn: r.urn.clone(),
                type_token: r.type_token.clone(),
                op: Op::DeleteReplaced,
                diffs: Vec::new(),
                renamed_from: None,
                state_only: false,
                after,
            });
        }
    }
}

/// The value of output `path` of resource `j` as this plan knows it, and whether it is
/// secret: the value in state when the resource is unchanged, or when it is updated in place
/// and its provider keeps that output through updates. `None`: unknown until apply (the
/// resource is created, replaced or imported, or the update may change that output).
fn known_output<'a>(
    resources: &[&DesiredResource],
    prior_of: &[Option<&'a ResourceState>],
    ops: &[Op],
    j: usize,
    path: &str,
) -> Option<(&'a Value, bool)> {
    match ops[j] {
        Op::Same => {}
        Op::Update if is_stable(&resources[j].updatable_outputs, path) => {}
        _ => return None,
    }
    prior_of[j].and_then(|p| value::find_output(&p.outputs, path))
}

/// Whether output `path` keeps its value through an in-place update, given the outputs an
/// update may change (top-level names or dotted paths): it must neither be one of them, nor
/// lie inside one, nor contain one.
pub fn is_stable(updatable: &[String], path: &str) -> bool {
    let within = |outer: &str, inner: &str| {
        inner.len() > outer.len() && inner.starts_with(outer) && inner.as_bytes()[outer.len()] == b'.'
    };
    !updatable.iter().any(|u| u == path || within(u, path) || within(path, u))
}

/// Refuses a plan whose steps could never all start: the executor would wait forever.
fn check_steps_acyclic(steps: &[Step]) -> Result<(), PlanError> {
    let offsets: Vec<usize> = std::iter::once(0)
        .chain(steps.iter().scan(0, |n, s| {
            *n += s.after.len();
            Some(*n)
        }))
        .collect();
    let edges = Edges { offsets, targets: steps.iter().flat_map(|s| s.after.iter().copied()).collect() };
    let dependents = edges.reversed();
    let mut waiting: Vec<usize> = steps.iter().map(|s| s.after.len()).collect();
    let mut ready: Vec<usize> = (0..steps.len()).filter(|&i| waiting[i] == 0).collect();
    let mut started = 0;
    while let Some(i) = ready.pop() {
        started += 1;
        for &j in dependents.of(i) {
            waiting[j] -= 1;
            if waiting[j] == 0 {
                ready.push(j);
            }
        }
    }
    if started == steps.len() {
        return Ok(());
    }
    let stuck = (0..steps.len())
        .filter(|&i| waiting[i] > 0)
        .take(8)
        .map(|i| format!("{} {}", steps[i].op.verb(), steps[i].urn))
        .collect();
    Err(PlanError::StepCycle(stuck))
}

fn replace_op(r: &DesiredResource) -> Op {
    if r.delete_before_replace {
        Op::ReplaceDeleteFirst
    } else {
        Op::Replace
    }
}

/// The Fx hash's multiplier.
const FX_K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// The Fx hash (rustc's, finished with a folded multiply): much faster than SipHash on URNs,
/// which come from the program, not from an adversary.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(c.try_into().expect("8 bytes"))).wrapping_mul(FX_K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(FX_K);
        }
    }
    fn finish(&self) -> u64 {
        // The multiply spreads each byte only towards the high bits, and the table picks the
        // bucket from the low ones: URNs that differ only near their end (`r00000123`,
        // `r00000124`) would share a bucket. Folding the full product brings every bit down.
        let product = u128::from(self.0) * u128::from(FX_K);
        (product as u64) ^ ((product >> 64) as u64)
    }
}

pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Adjacency lists in one allocation: the targets of node `i` are
/// `targets[offsets[i]..offsets[i + 1]]`.
pub(crate) struct Edges {
    offsets: Vec<usize>,
    targets: Vec<usize>,
}

impl Edges {
    pub(crate) fn of(&self, i: usize) -> &[usize] {
        &self.targets[self.offsets[i]..self.offsets[i + 1]]
    }

    /// The same edges, reversed.
    fn reversed(&self) -> Edges {
        let n = self.offsets.len() - 1;
        let mut counts = vec![0usize; n + 1];
        for &t in &self.targets {
            counts[t + 1] += 1;
        }
        for i in 0..n {
            counts[i + 1] += counts[i];
        }
        let mut fill = counts.clone();
        let mut targets = vec![0; self.targets.len()];
        for i in 0..n {
            for &t in self.of(i) {
                targets[fill[t]] = i;
                fill[t] += 1;
            }
        }
        Edges { offsets: counts, targets }
    }
}

/// Each resource's dependencies, as indices into `resources`.
fn dependency_edges(resources: &[&DesiredResource], index: &FastMap<&str, usize>) -> Edges {
    let mut offsets = Vec::with_capacity(resources.len() + 1);
    let mut targets = Vec::with_capacity(resources.iter().map(|r| r.dependencies.len()).sum());
    offsets.push(0);
    for r in resources {
        targets.extend(r.dependencies.iter().filter_map(|d| index.get(d.as_str()).copied()));
        offsets.push(targets.len());
    }
    Edges { offsets, targets }
}

/// Kahn's algorithm over the desired graph; a cycle is reported by its members, in order.
fn topological_order(resources: &[&DesiredResource], deps: &Edges) -> Result<Vec<usize>, PlanError> {
    let n = resources.len();
    let dependents = deps.reversed();
    let mut indegree: Vec<usize> = (0..n).map(|i| deps.of(i).len()).collect();
    let mut queue: VecDeque<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = queue.pop_front() {
        order.push(i);
        for &j in dependents.of(i) {
            indegree[j] -= 1;
            if indegree[j] == 0 {
                queue.push_back(j);
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // Walk dependencies among the unfinished nodes until one repeats: that is a cycle.
    let start = (0..n).find(|&i| indegree[i] > 0).expect("some node is left");
    let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
    let mut path = Vec::new();
    let mut current = start;
    loop {
        if let Some(&pos) = seen.get(&current) {
            let mut cycle: Vec<Urn> = path[pos..].iter().map(|&i: &usize| resources[i].urn.clone()).collect();
            cycle.push(resources[path[pos]].urn.clone());
            return Err(PlanError::Cycle(cycle));
        }
        seen.insert(current, path.len());
        path.push(current);
        current = deps
            .of(current)
            .iter()
            .copied()
            .find(|&j| indegree[j] > 0)
            .expect("an unfinished node has an unfinished dependency");
    }
}

#[cfg(test)]
mod tests;
