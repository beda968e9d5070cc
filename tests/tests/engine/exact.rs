//! Exact plans: a parent changed in place leaves its dependents alone, and whatever the plan
//! decided with unknowns is decided again at apply with the real values.

use cairn::plan::Op;
use cairn::{Input, Options, Output, Stack};
use cairn_tests::{world_keyed, world_things, Keyed, Thing, ThingProvider};

use crate::{done, program, steps, World};

fn thing(key: impl Into<Input<String>>, value: impl Into<Input<String>>) -> Thing {
    Thing { key: Some(key.into()), value: value.into() }
}

/// A network-like parent (its `value` is a tag) with subnet-like dependents that use its
/// token (its id) in a property that forces replacement, and a security-group-like one
/// that uses it in a property that changes in place.
fn network(stack: &mut Stack, tag: &str) {
    let vpc = stack.add("vpc", thing("10.0.0.0/16", tag));
    for i in 0..3 {
        stack.add(&format!("subnet{i}"), thing(&vpc.token, format!("az{i}")));
    }
    stack.add("fleet-sg", thing("fleet", &vpc.token));
}

#[tokio::test]
async fn a_tag_on_a_network_like_parent_leaves_its_dependents_alone() {
    let world = World::new();
    let (_, first) = world.deploy(&program(|s| network(s, "tag=a"))).await;
    assert_eq!(done(&first).len(), 5);
    let before = world_things(&world.path());

    let changed = program(|s| network(s, "tag=b"));
    assert_eq!(steps(&world.preview(&changed).await), ["update vpc"]);
    let (_, outcome) = world.deploy(&changed).await;
    assert_eq!(done(&outcome), ["update vpc"]);
    assert!(outcome.redecided.is_empty());
    assert_eq!(world_things(&world.path()), before, "no resource was replaced");
}

/// A zone-like parent (its `value` is a comment) with record-set-like dependents keyed by
/// the zone's id, and a log-group-like parent (its `value` is the retention) with a metric
/// filter keyed by the group: resources whose id is made of their inputs.
fn zone_and_logs(stack: &mut Stack, comment: &str, retention: &str) {
    let zone = stack.add("zone", thing("example.com", comment));
    for name in ["www", "api", "mail"] {
        stack.add(name, Keyed { name: name.into(), parent: zone.token.clone().into(), mode: "A".into() });
    }
    let group = stack.add("group", thing("/app", retention));
    stack.add("errors", Keyed { name: "errors".into(), parent: group.token.clone().into(), mode: "ERROR".into() });
}

#[tokio::test]
async fn a_comment_on_a_zone_like_parent_and_a_setting_on_a_log_group_like_parent_leave_their_dependents_alone() {
    let world = World::new();
    world.deploy(&program(|s| zone_and_logs(s, "v1", "7"))).await;
    let records = world_keyed(&world.path());
    assert_eq!(records.len(), 4);

    for (comment, retention) in [("v2", "7"), ("v2", "30"), ("v3", "90")] {
        let changed = program(|s| zone_and_logs(s, comment, retention));
        let plan = world.preview(&changed).await;
        assert!(plan.steps.iter().all(|s| s.op == Op::Update), "{:?}", steps(&plan));
        let (_, outcome) = world.deploy(&changed).await;
        assert!(done(&outcome).iter().all(|s| s.starts_with("update ")), "{:?}", done(&outcome));
        assert_eq!(world_keyed(&world.path()), records, "every record set and filter is still there");
    }
    let state = world.state("test-dev").await;
    assert!(state.retired.is_empty() && state.pending.is_empty());
}

#[tokio::test]
async fn a_replacement_made_under_the_same_id_never_deletes_the_old_copy() {
    let world = World::new();
    let build = |mode: &'static str| {
        program(move |s| {
            let group = s.add("group", thing("/app", "7"));
            s.add("errors", Keyed { name: "errors".into(), parent: group.token.clone().into(), mode: mode.into() });
        })
    };
    world.deploy(&build("ERROR")).await;
    let filters = world_keyed(&world.path());

    // `mode` forces a replacement, which the provider makes by overwriting the same id.
    let (plan, outcome) = world.deploy(&build("WARN")).await;
    assert_eq!(steps(&plan), ["delete replaced errors", "replace errors"]);
    assert_eq!(done(&outcome), ["replace errors", "same errors"]);
    assert_eq!(outcome.redecided.len(), 2, "{:?}", outcome.redecided);
    assert_eq!(world_keyed(&world.path()), filters, "the filter is still there");
    let state = world.state("test-dev").await;
    assert!(state.retired.is_empty());
    assert_eq!(state.resources.values().filter(|r| r.type_token == "test:Keyed").count(), 1);
    assert!(!world.preview(&build("WARN")).await.has_changes());
}

/// `length` is an output an update may change: a dependent keyed on it is planned as a
/// replacement, and decided again at apply.
fn measured(stack: &mut Stack, parent: &str, delete_first: bool) {
    let p = stack.add("parent", thing("p", parent));
    let length: &Output<u64> = &p.length;
    let key = cairn::interpolate([cairn::Part::from("len="), cairn::Part::from(length)]);
    stack.add_with("keyed", thing(key, "v"), Options::new().delete_before_replace(delete_first));
    let value = cairn::interpolate([cairn::Part::from("len="), cairn::Part::from(length)]);
    stack.add("valued", thing("k", value));
}

#[tokio::test]
async fn a_planned_replacement_whose_inputs_turn_out_equal_is_no_change() {
    for delete_first in [false, true] {
        let world = World::new();
        world.deploy(&program(|s| measured(s, "aaaa", delete_first))).await;
        let before = world_things(&world.path());

        // Same length: the plan cannot know, apply finds nothing to do.
        let same_length = program(|s| measured(s, "bbbb", delete_first));
        let plan = world.preview(&same_length).await;
        let replace = if delete_first { "replace (delete first) keyed" } else { "replace keyed" };
        let mut expected = vec!["update parent", "update valued", replace];
        if !delete_first {
            expected.insert(0, "delete replaced keyed");
        }
        expected.sort();
        assert_eq!(steps(&plan), expected);
        let (_, outcome) = world.deploy(&same_length).await;
        let mut redecided: Vec<(String, Op, Op)> =
            outcome.redecided.iter().map(|r| (r.urn.name().to_string(), r.planned, r.done)).collect();
        redecided.sort();
        let mut expected =
            vec![("keyed".to_string(), steps_op(delete_first), Op::Same), ("valued".into(), Op::Update, Op::Same)];
        if !delete_first {
            expected.insert(0, ("keyed".into(), Op::DeleteReplaced, Op::Same));
        }
        expected.sort();
        assert_eq!(redecided, expected);
        assert!(outcome.succeeded());
        assert_eq!(world_things(&world.path()).len(), before.len());
        let ids = |w: &[(String, String)]| w.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&world_things(&world.path())), ids(&before), "nothing was replaced");

        // Another length: the replacement is real.
        let (_, outcome) = world.deploy(&program(|s| measured(s, "ccccc", delete_first))).await;
        assert!(outcome.succeeded(), "{outcome:?}");
        assert!(outcome.done.iter().any(|(u, op)| u.name() == "keyed" && *op == steps_op(delete_first)));
        assert!(outcome.redecided.is_empty(), "{:?}", outcome.redecided);
        assert_eq!(world_things(&world.path()).len(), before.len());
        assert_ne!(ids(&world_things(&world.path())), ids(&before));
        assert!(!world.preview(&program(|s| measured(s, "ccccc", delete_first))).await.has_changes());
    }
}

fn steps_op(delete_first: bool) -> Op {
    if delete_first {
        Op::ReplaceDeleteFirst
    } else {
        Op::Replace
    }
}

#[tokio::test]
async fn an_update_that_breaks_the_promise_to_keep_an_output_stops_what_was_planned_with_it() {
    let world = World::new();
    let build = |tag: &'static str| {
        program(move |s| {
            let parent = s.add("parent", thing("p", tag));
            s.add("child", thing(&parent.token, "v"));
        })
    };
    world.deploy(&build("a")).await;
    let breaking = || {
        world.registry_with(
            ThingProvider::new(world.path(), Default::default(), Default::default()).with_new_token_on_update(),
        )
    };
    let (plan, outcome) = world.deploy_with(&build("b"), breaking()).await;
    assert_eq!(steps(&plan), ["update parent"]);
    assert_eq!(outcome.failed.len(), 1, "{outcome:?}");
    let error = &outcome.failed[0].2;
    assert!(error.contains("the update changed `token`") && error.contains("Run `deploy` again"), "{error}");
    // The update was recorded; the next plan replaces the child with the new token, as it must.
    let plan = world.preview(&build("b")).await;
    assert_eq!(steps(&plan), ["delete replaced child", "replace child"]);
    let (_, outcome) = world.deploy(&build("b")).await;
    assert!(outcome.succeeded(), "{outcome:?}");
}
