//! The planner, as a table of small cases: a program, a state, and the plan in one line.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::*;
use crate::stack::{Desired, DesiredResource};
use crate::state::{ResourceState, StackState};
use crate::urn::Urn;
use crate::value::{secret, OutputRef};

fn urn(name: &str) -> Urn {
    Urn::from(format!("s/t:Thing/{name}"))
}

fn out(name: &str, path: &str) -> Value {
    OutputRef { urn: urn(name), path: path.into() }.to_value()
}

/// A desired resource of type `t:Thing`, whose `key` property forces replacement.
fn d(name: &str, inputs: Value) -> DesiredResource {
    let mut dependencies = BTreeSet::new();
    crate::value::referenced_urns(&inputs, &mut dependencies);
    DesiredResource {
        urn: urn(name),
        type_token: "t:Thing".into(),
        inputs,
        dependencies,
        protect: false,
        retain_on_delete: false,
        ignore_changes: vec![],
        aliases: vec![],
        delete_before_replace: false,
        provider: None,
        replace_on_change: vec!["key".into()],
        secret_outputs: vec![],
        updatable_outputs: vec![],
        import: None,
    }
}

/// A state record; its output `id` is `<name>-id`.
fn s(name: &str, inputs: Value) -> ResourceState {
    ResourceState {
        urn: urn(name),
        type_token: "t:Thing".into(),
        id: format!("{name}-id"),
        inputs,
        outputs: json!({"id": format!("{name}-id")}),
        dependencies: BTreeSet::new(),
        protect: false,
        retain_on_delete: false,
        delete_before_replace: false,
        provider: None,
    }
}

trait DesiredExt {
    fn dep(self, on: &str) -> Self;
    fn protect(self) -> Self;
    fn ignore(self, path: &str) -> Self;
    fn alias(self, old: &str) -> Self;
    fn dbr(self) -> Self;
    fn import(self, id: &str) -> Self;
    fn updatable(self, output: &str) -> Self;
}

impl DesiredExt for DesiredResource {
    fn dep(mut self, on: &str) -> Self {
        self.dependencies.insert(urn(on));
        self
    }
    fn protect(mut self) -> Self {
        self.protect = true;
        self
    }
    fn ignore(mut self, path: &str) -> Self {
        self.ignore_changes.push(path.into());
        self
    }
    fn alias(mut self, old: &str) -> Self {
        self.aliases.push(urn(old));
        self
    }
    fn dbr(mut self) -> Self {
        self.delete_before_replace = true;
        self
    }
    fn import(mut self, id: &str) -> Self {
        self.import = Some(id.into());
        self
    }
    fn updatable(mut self, output: &str) -> Self {
        self.updatable_outputs.push(output.into());
        self
    }
}

trait StateExt {
    fn dep(self, on: &str) -> Self;
    fn protect(self) -> Self;
    fn retain(self) -> Self;
}

impl StateExt for ResourceState {
    fn dep(mut self, on: &str) -> Self {
        self.dependencies.insert(urn(on));
        self
    }
    fn protect(mut self) -> Self {
        self.protect = true;
        self
    }
    fn retain(mut self) -> Self {
        self.retain_on_delete = true;
        self
    }
}

fn desired(resources: Vec<DesiredResource>) -> Desired {
    Desired {
        stack: "s".into(),
        resources: resources.into_iter().map(|r| (r.urn.clone(), r)).collect(),
        outputs: BTreeMap::new(),
        files: BTreeMap::new(),
        components: BTreeMap::new(),
        providers: BTreeMap::new(),
    }
}

fn state(resources: Vec<ResourceState>) -> StackState {
    let mut st = StackState::empty("s");
    for r in resources {
        st.resources.insert(r.urn.clone(), r);
    }
    st
}

/// One line per plan: `op name[changed props]`, sorted, `;`-separated. A `!` marks a property
/// that forces replacement, a `?` one that is unknown; `<` lists what a step waits for.
fn summary(plan: &Plan) -> String {
    let mut lines: Vec<String> = plan
        .steps
        .iter()
        .map(|st| {
            let mut line = format!("{} {}", st.op.verb(), st.urn.name());
            if !st.diffs.is_empty() {
                let props: Vec<String> = st
                    .diffs
                    .iter()
                    .map(|d| {
                        format!(
                            "{}{}{}",
                            d.path,
                            if d.forces_replacement { "!" } else { "" },
                            if d.unknown { "?" } else { "" }
                        )
                    })
                    .collect();
                line.push_str(&format!("[{}]", props.join(",")));
            }
            if let Some(from) = &st.renamed_from {
                line.push_str(&format!(" from {}", from.name()));
            }
            if st.state_only {
                line.push_str(" (state)");
            }
            if !st.after.is_empty() {
                let mut after: Vec<String> = st
                    .after
                    .iter()
                    .map(|&i| format!("{} {}", plan.steps[i].op.verb(), plan.steps[i].urn.name()))
                    .collect();
                after.sort();
                line.push_str(&format!(" < {}", after.join(" & ")));
            }
            line
        })
        .collect();
    lines.sort();
    if plan.unchanged > 0 {
        lines.push(format!("{} same", plan.unchanged));
    }
    lines.join("; ")
}

fn check(program: Vec<DesiredResource>, prior: Vec<ResourceState>, expect: &str) {
    let p = plan(&desired(program), &state(prior)).unwrap_or_else(|e| panic!("plan failed: {e}"));
    assert_eq!(summary(&p), expect);
}

fn check_err(program: Vec<DesiredResource>, prior: Vec<ResourceState>, expect: &str) {
    let e = plan(&desired(program), &state(prior)).expect_err("plan should fail");
    assert_eq!(e.to_string(), expect);
}

#[test]
fn creates_updates_and_no_ops() {
    check(vec![d("a", json!({"v": 1}))], vec![], "create a");
    check(vec![d("a", json!({"v": 1}))], vec![s("a", json!({"v": 1}))], "1 same");
    check(vec![d("a", json!({"v": 2}))], vec![s("a", json!({"v": 1}))], "update a[v]");
    check(vec![d("a", json!({"v": 1, "w": 2}))], vec![s("a", json!({"v": 1}))], "update a[w]");
    check(vec![d("a", json!({"o": {"x": 1, "y": 2}}))], vec![s("a", json!({"o": {"x": 1, "y": 3}}))], "update a[o.y]");
    check(vec![d("a", json!({}))], vec![s("a", json!({"v": 1}))], "update a[v]");
}

#[test]
fn replacement_is_forced_by_declared_properties() {
    check(
        vec![d("a", json!({"key": "k2", "v": 1}))],
        vec![s("a", json!({"key": "k1", "v": 1}))],
        "delete replaced a < replace a; replace a[key!]",
    );
    check(
        vec![d("a", json!({"key": "k2"})).dbr()],
        vec![s("a", json!({"key": "k1"}))],
        "replace (delete first) a[key!]",
    );
}

#[test]
fn import_adopts_only_what_state_does_not_know() {
    check(vec![d("a", json!({"v": 1})).import("a-0")], vec![], "import a");
    // Once in state, the option does nothing.
    check(vec![d("a", json!({"v": 1})).import("a-0")], vec![s("a", json!({"v": 1}))], "1 same");
    check(vec![d("a", json!({"v": 2})).import("a-0")], vec![s("a", json!({"v": 1}))], "update a[v]");
    // A dependent waits for the import, and the adopted resource's outputs are unknown until then.
    check(
        vec![d("a", json!({})).import("a-0"), d("b", json!({"p": out("a", "id")}))],
        vec![s("b", json!({"p": "a-id"}))],
        "import a; update b[p?] < import a",
    );
}

#[test]
fn a_type_change_replaces() {
    let mut r = d("a", json!({}));
    r.type_token = "t:Other".into();
    let p = plan(&desired(vec![r]), &state(vec![s("a", json!({}))])).unwrap();
    assert_eq!(p.steps[0].op, Op::Replace);
    assert_eq!(p.steps[0].diffs[0].path, "(type)");
}

#[test]
fn deletes_follow_reverse_dependency_order() {
    check(
        vec![],
        vec![s("a", json!({})), s("b", json!({})).dep("a"), s("c", json!({})).dep("b")],
        "delete a < delete b; delete b < delete c; delete c",
    );
    // A dependent that stays but drops the dependency is updated before the delete.
    check(
        vec![d("b", json!({"v": 2}))],
        vec![s("a", json!({})), s("b", json!({"v": 1})).dep("a")],
        "delete a < update b; update b[v]",
    );
}

#[test]
fn outputs_of_unchanged_resources_are_known() {
    check(
        vec![d("a", json!({"v": 1})), d("b", json!({"ref": out("a", "id")}))],
        vec![s("a", json!({"v": 1})), s("b", json!({"ref": "a-id"})).dep("a")],
        "2 same",
    );
}

#[test]
fn outputs_of_replaced_and_created_resources_are_unknown() {
    // An unknown in a property that forces replacement plans a replacement, decided again at
    // apply with the real value.
    check(
        vec![d("a", json!({"key": 2})), d("b", json!({"key": out("a", "id")}))],
        vec![s("a", json!({"key": 1})), s("b", json!({"key": "a-id"})).dep("a")],
        "delete replaced a < replace a & replace b; delete replaced b < replace b; replace a[key!]; replace b[key!?] < replace a",
    );
    check(vec![d("a", json!({})), d("b", json!({"ref": out("a", "id")}))], vec![], "create a; create b < create a");
}

#[test]
fn a_parent_updated_in_place_leaves_its_dependents_alone() {
    // `id` is not among the outputs an update may change: dependents plan against its value.
    check(
        vec![d("a", json!({"v": 2})), d("b", json!({"key": out("a", "id")})), d("c", json!({"ref": out("a", "id")}))],
        vec![s("a", json!({"v": 1})), s("b", json!({"key": "a-id"})).dep("a"), s("c", json!({"ref": "a-id"})).dep("a")],
        "update a[v]; 2 same",
    );
    // A dependent that changes for its own reasons shows the parent's value, not an unknown.
    let p = plan(
        &desired(vec![d("a", json!({"v": 2})), d("b", json!({"ref": out("a", "id"), "v": 2}))]),
        &state(vec![s("a", json!({"v": 1})), s("b", json!({"ref": "a-id", "v": 1})).dep("a")]),
    )
    .unwrap();
    assert_eq!(summary(&p), "update a[v]; update b[v] < update a");
    // Stack outputs that use a stable output are known too.
    let mut program = desired(vec![d("a", json!({"v": 2}))]);
    program.outputs.insert("a_id".into(), out("a", "id"));
    let mut prior = state(vec![s("a", json!({"v": 1}))]);
    prior.outputs.insert("a_id".into(), json!("a-id"));
    assert!(plan(&program, &prior).unwrap().changed_outputs.is_empty());
}

#[test]
fn outputs_an_update_may_change_are_unknown() {
    check(
        vec![d("a", json!({"v": 2})).updatable("hash"), d("b", json!({"key": out("a", "hash")}))],
        vec![s("a", json!({"v": 1})), s("b", json!({"key": "h1"})).dep("a")],
        "delete replaced b < replace b; replace b[key!?] < update a; update a[v]",
    );
    check(
        vec![d("a", json!({"v": 2})).updatable("hash"), d("b", json!({"ref": out("a", "hash")}))],
        vec![s("a", json!({"v": 1})), s("b", json!({"ref": "h1"})).dep("a")],
        "update a[v]; update b[ref?] < update a",
    );
    // The promise covers paths: inside an updatable output, around one, or beside one.
    let stable =
        |updatable: &[&str], path: &str| is_stable(&updatable.iter().map(|u| u.to_string()).collect::<Vec<_>>(), path);
    assert!(!stable(&["endpoint"], "endpoint.address"));
    assert!(!stable(&["endpoint.port"], "endpoint"));
    assert!(stable(&["endpoint.port"], "endpoint.address"));
    assert!(stable(&["endpoint"], "endpoints"));
    assert!(stable(&[], "id"));
}

#[test]
fn ignore_changes_keeps_the_old_value() {
    check(vec![d("a", json!({"v": 2, "w": 1})).ignore("v")], vec![s("a", json!({"v": 1, "w": 1}))], "1 same");
    check(
        vec![d("a", json!({"o": {"x": 2, "y": 2}})).ignore("o.x")],
        vec![s("a", json!({"o": {"x": 1, "y": 1}}))],
        "update a[o.y]",
    );
    check(vec![d("a", json!({"key": "new"})).ignore("key")], vec![s("a", json!({"key": "old"}))], "1 same");
}

#[test]
fn protect_refuses_delete_and_replace() {
    check_err(
        vec![],
        vec![s("a", json!({})).protect()],
        "the plan would delete protected resource `s/t:Thing/a`; set `protect(false)` on it and deploy first, then make the change",
    );
    check_err(
        vec![d("a", json!({"key": 2})).protect()],
        vec![s("a", json!({"key": 1})).protect()],
        "the plan would replace protected resource `s/t:Thing/a`; set `protect(false)` on it and deploy first, then make the change",
    );
    // Updates in place are allowed, and unprotecting is a state-only change.
    check(vec![d("a", json!({"v": 2})).protect()], vec![s("a", json!({"v": 1})).protect()], "update a[v]");
    check(vec![d("a", json!({}))], vec![s("a", json!({})).protect()], "same a (state)");
}

#[test]
fn retain_on_delete_forgets() {
    check(vec![], vec![s("a", json!({})).retain()], "forget (retain_on_delete) a");
}

#[test]
fn aliases_rename_without_replacement() {
    check(vec![d("new", json!({"v": 1})).alias("old")], vec![s("old", json!({"v": 1}))], "same new from old (state)");
    check(vec![d("new", json!({"v": 2})).alias("old")], vec![s("old", json!({"v": 1}))], "update new[v] from old");
    // An alias that is still declared under its own name is not a rename.
    check(vec![d("new", json!({})).alias("old"), d("old", json!({}))], vec![s("old", json!({}))], "create new; 1 same");
}

#[test]
fn cycles_are_named() {
    check_err(
        vec![d("a", json!({})).dep("b"), d("b", json!({})).dep("c"), d("c", json!({})).dep("a")],
        vec![],
        "dependency cycle: s/t:Thing/a -> s/t:Thing/b -> s/t:Thing/c -> s/t:Thing/a",
    );
}

#[test]
fn retired_resources_from_an_earlier_run_are_deleted() {
    let mut st = state(vec![s("a", json!({"v": 1}))]);
    st.retired.insert(urn("a"), s("a", json!({"v": 0})));
    let p = plan(&desired(vec![d("a", json!({"v": 1}))]), &st).unwrap();
    assert_eq!(summary(&p), "delete replaced a; 1 same");
}

/// The program, with a copy of `a` replaced in an earlier run still to delete.
fn with_retired_a(resources: Vec<ResourceState>) -> StackState {
    let mut st = state(resources);
    st.retired.insert(urn("a"), s("a", json!({"key": 0})));
    st
}

#[test]
fn every_step_of_one_urn_is_ordered() {
    // An update of `a` and the deletion of its old copy never run at once (one pending
    // operation per URN).
    let p = plan(
        &desired(vec![d("a", json!({"key": 1, "v": 2}))]),
        &with_retired_a(vec![s("a", json!({"key": 1, "v": 1}))]),
    );
    assert_eq!(summary(&p.unwrap()), "delete replaced a < update a; update a[v]");
    // Replaced again: the old copy goes first (state keeps one replaced copy per URN), then
    // the new replacement, its dependents, and the copy it replaced.
    let p = plan(
        &desired(vec![d("a", json!({"key": 2})), d("b", json!({"v": out("a", "id")}))]),
        &with_retired_a(vec![s("a", json!({"key": 1})), s("b", json!({"v": "a-id"})).dep("a")]),
    );
    assert_eq!(
        summary(&p.unwrap()),
        "delete replaced a; delete replaced a < replace a & update b; replace a[key!] < delete replaced a; update b[v?] < replace a"
    );
    // Deleted: the live resource first, then its old copy.
    let p = plan(&desired(vec![]), &with_retired_a(vec![s("a", json!({"key": 1}))]));
    assert_eq!(summary(&p.unwrap()), "delete a; delete replaced a < delete a");
}

#[test]
fn steps_that_wait_for_each_other_in_a_circle_are_refused() {
    let step = |name: &str, after: Vec<usize>| Step {
        urn: urn(name),
        type_token: "t:Thing".into(),
        op: Op::Update,
        diffs: vec![],
        renamed_from: None,
        state_only: false,
        after,
    };
    assert!(check_steps_acyclic(&[step("a", vec![]), step("b", vec![0])]).is_ok());
    let e = check_steps_acyclic(&[step("a", vec![1]), step("b", vec![0]), step("c", vec![])]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "internal error: the plan's steps wait for each other in a circle (update s/t:Thing/a -> update s/t:Thing/b); nothing was changed, please report this"
    );
}

#[test]
fn secrets_compare_by_value_and_show_redacted() {
    check(vec![d("a", json!({"p": secret(json!("x"))}))], vec![s("a", json!({"p": secret(json!("x"))}))], "1 same");
    let p = plan(
        &desired(vec![d("a", json!({"p": secret(json!("y"))}))]),
        &state(vec![s("a", json!({"p": secret(json!("x"))}))]),
    )
    .unwrap();
    let shown = serde_json::to_string(&p).unwrap();
    assert!(!shown.contains("\"x\"") && !shown.contains("\"y\""), "{shown}");
    assert!(shown.contains("[secret]"), "{shown}");
}

#[test]
fn plans_are_deterministic() {
    let program: Vec<DesiredResource> =
        (0..50).map(|i| d(&format!("r{i}"), json!({"v": i})).dep(if i > 0 { "r0" } else { "x" })).collect();
    let mut program = program;
    program[0].dependencies.clear();
    let a = plan(&desired(program.clone()), &state(vec![])).unwrap();
    let b = plan(&desired(program), &state(vec![])).unwrap();
    assert_eq!(a, b);
}

/// The index's hash spreads URNs that differ only in their last characters over the buckets
/// (the table picks a bucket from the hash's low bits): numbered resources are common.
#[test]
fn urns_that_differ_at_the_end_hash_to_different_buckets() {
    use std::hash::{BuildHasher, BuildHasherDefault};
    let build = BuildHasherDefault::<FxHasher>::default();
    for width in [1, 3, 6, 8] {
        let buckets: BTreeSet<u64> = (0..4096)
            .map(|i| build.hash_one(format!("stack/component/t:Thing/r{i:0width$}").as_str()) & 0xfff)
            .collect();
        // 4096 keys over 4096 buckets fill about 63 % of them when the hash is uniform.
        assert!(buckets.len() > 2200, "width {width}: {} of 4096 buckets used", buckets.len());
    }
}
