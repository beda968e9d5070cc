//! Deploy, change, preview, destroy.

use serde_json::json;

use crate::support::Project;

#[test]
fn deploy_then_a_second_deploy_changes_nothing() {
    let p = Project::new("count = 3\nchain = 2\nvalue = \"v1\"\n");
    let r = p.deploy().ok();
    assert!(r.stdout.contains("5 to create"), "{}", r.stdout);
    assert!(r.stdout.contains("done: 5 changes applied"), "{}", r.stdout);
    p.assert_world_matches_state();

    let (plan, code) = p.preview_json();
    assert_eq!(code, 0, "no changes expected: {plan}");
    let r = p.deploy().ok();
    assert!(r.stdout.contains("no changes (5 unchanged)"), "{}", r.stdout);
    assert_eq!(p.things().len(), 5);
}

#[test]
fn changing_one_input_previews_exactly_that_update() {
    let p = Project::new("count = 2\nvalue = \"v1\"\n");
    p.deploy().ok();
    p.config("count = 2\nvalue = \"v1\"\nprotect = []\n");
    assert_eq!(p.preview_json().1, 0, "an equivalent config is no change");

    // Only t1 changes: give it its own value through a chain-free config is not possible, so
    // change the shared value and check every step is an in-place update of `value`.
    p.config("count = 2\nvalue = \"v2\"\n");
    let (plan, code) = p.preview_json();
    assert_eq!(code, 2);
    let steps: Vec<_> = plan["steps"].as_array().unwrap().iter().filter(|s| s["op"] != "same").collect();
    assert_eq!(steps.len(), 2, "{plan}");
    for s in steps {
        assert_eq!(s["op"], "update");
        assert_eq!(s["diffs"], json!([{"path": "value", "old": "v1", "new": "v2"}]));
    }
    let ids_before = p.things();
    p.deploy().ok();
    let ids_after = p.things();
    assert_eq!(
        ids_before.iter().map(|(i, _)| i).collect::<Vec<_>>(),
        ids_after.iter().map(|(i, _)| i).collect::<Vec<_>>()
    );
    assert_eq!(p.preview_json().1, 0);
}

#[test]
fn a_key_change_replaces_create_before_delete_and_rewires_dependents() {
    let p = Project::new("chain = 2\nvalue = \"v\"\nkey = \"k1\"\n");
    p.deploy().ok();
    let old = p.things();
    p.config("chain = 2\nvalue = \"v\"\nkey = \"k2\"\n");
    let r = p.run(&["preview", "--env", "dev"]).ok();
    assert!(r.stdout.contains("key forces replacement"), "{}", r.stdout);
    p.deploy().ok();
    let new = p.things();
    assert_eq!(new.len(), 2);
    assert!(new.iter().all(|t| !old.contains(t)), "every thing was replaced: {old:?} -> {new:?}");
    p.assert_world_matches_state();
    // c1's value uses c0's new token.
    let state = p.state();
    let c0 = &state["resources"]["test-dev/chain/test:Thing/c0"];
    let c1 = &state["resources"]["test-dev/chain/test:Thing/c1"];
    assert_eq!(c1["inputs"]["value"], json!(format!("v+{}", c0["outputs"]["token"].as_str().unwrap())));
    assert_eq!(p.preview_json().1, 0);
}

#[test]
fn destroy_leaves_nothing() {
    let p = Project::new("count = 3\nchain = 3\nvalue = \"v\"\n");
    p.deploy().ok();
    assert_eq!(p.things().len(), 6);
    let r = p.run(&["destroy", "--env", "dev", "--yes"]).ok();
    assert!(r.stdout.contains("6 to delete"), "{}", r.stdout);
    assert!(p.things().is_empty());
    let state = p.state();
    assert_eq!(state["resources"], json!({}));
    assert_eq!(state["outputs"], json!({}));
}

#[test]
fn removing_resources_deletes_them() {
    let p = Project::new("count = 3\nvalue = \"v\"\n");
    p.deploy().ok();
    p.config("count = 1\nvalue = \"v\"\n");
    let r = p.deploy().ok();
    assert!(r.stdout.contains("2 to delete"), "{}", r.stdout);
    assert_eq!(p.things().len(), 1);
    p.assert_world_matches_state();
}

#[test]
fn a_failed_step_stops_its_dependents_and_lets_the_rest_finish() {
    let mut p = Project::new("count = 2\nchain = 3\nvalue = \"v\"\n");
    p.set_env("CAIRN_TEST_FAIL", "c1");
    let r = p.deploy().code(1);
    assert!(
        r.stdout.contains("failed test-dev/chain/test:Thing/c1 (create): create failed: injected failure"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("skipped test-dev/chain/test:Thing/c2"), "{}", r.stdout);
    let urns: Vec<String> = p.things().into_iter().map(|(_, u)| u).collect();
    assert_eq!(urns.len(), 3, "{urns:?}");
    p.set_env("CAIRN_TEST_FAIL", "");
    // The failed create stays pending: the next run reads it back, then finishes.
    let r = p.deploy().ok();
    assert!(r.stdout.contains("2 to create"), "{}", r.stdout);
    p.assert_world_matches_state();
}

#[test]
fn protected_resources_refuse_destroy_until_unprotected() {
    let p = Project::new("count = 2\nvalue = \"v\"\nprotect = [\"t0\"]\n");
    p.deploy().ok();
    let r = p.run(&["destroy", "--env", "dev", "--yes"]).code(1);
    assert!(r.stderr.contains("delete protected resource `test-dev/fleet/test:Thing/t0`"), "{}", r.stderr);
    assert_eq!(p.things().len(), 2, "nothing was deleted");
    p.config("count = 2\nvalue = \"v\"\n");
    let r = p.deploy().ok();
    assert!(r.stdout.contains("1 state-only change"), "{}", r.stdout);
    p.run(&["destroy", "--env", "dev", "--yes"]).ok();
    assert!(p.things().is_empty());
}

#[test]
fn refresh_shows_drift_and_deploy_restores_it() {
    let p = Project::new("count = 2\nvalue = \"v1\"\n");
    p.deploy().ok();
    let things = p.things();
    // Change one thing out of band and delete the other.
    let changed = p.world().join(format!("{}.json", things[0].0));
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&changed).unwrap()).unwrap();
    v["value"] = json!("tampered");
    std::fs::write(&changed, v.to_string()).unwrap();
    std::fs::remove_file(p.world().join(format!("{}.json", things[1].0))).unwrap();

    let r = p.run(&["refresh", "--env", "dev", "--dry-run"]).code(2);
    assert!(r.stdout.contains("~ value: \"v1\" => \"tampered\""), "{}", r.stdout);
    assert!(r.stdout.contains("deleted outside cairn"), "{}", r.stdout);
    assert!(r.stdout.contains("2 resources drifted"), "{}", r.stdout);

    p.run(&["refresh", "--env", "dev", "--yes"]).ok();
    let r = p.deploy().ok();
    assert!(r.stdout.contains("1 to create, 1 to update"), "{}", r.stdout);
    p.assert_world_matches_state();
    let r = p.run(&["refresh", "--env", "dev", "--dry-run"]).ok();
    assert!(r.stdout.contains("no drift"), "{}", r.stdout);
}

#[test]
fn parallel_deploy_of_many_things() {
    let p = Project::new("count = 60\nchain = 5\nvalue = \"v\"\n");
    p.run(&["deploy", "--env", "dev", "--yes", "--parallel", "32"]).ok();
    p.assert_world_matches_state();
    assert_eq!(p.things().len(), 65);
}
