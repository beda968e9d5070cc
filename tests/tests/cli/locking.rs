//! One deployer at a time.

use std::time::Duration;

use crate::support::{wait_until, Project};

fn lock_is_taken(p: &Project) -> bool {
    std::fs::read_to_string(p.state_dir().join("lock")).is_ok_and(|s| s.contains("\"pid\""))
}

#[test]
fn a_second_deployer_is_told_who_holds_the_lock() {
    let mut p = Project::new("count = 6\nvalue = \"v\"\n");
    p.set_env("CAIRN_TEST_LATENCY_MS", "300");
    let first = p.spawn(&["deploy", "--env", "dev", "--yes", "--parallel", "1"]);
    wait_until(Duration::from_secs(30), "the first deployer to lock", || lock_is_taken(&p));
    let r = p.deploy().code(1);
    assert!(r.stderr.contains("the stack is locked by"), "{}", r.stderr);
    assert!(r.stderr.contains(&format!("(pid {})", first.id())), "{}", r.stderr);
    assert!(r.stderr.contains("for `deploy`"), "{}", r.stderr);

    // With --lock-timeout the second one waits, then runs.
    let r = p.run(&["deploy", "--env", "dev", "--yes", "--lock-timeout", "60s"]).ok();
    assert!(r.stderr.contains("waiting up to 1m for the lock held by"), "{}", r.stderr);
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success());
    p.assert_world_matches_state();
    assert_eq!(p.things().len(), 6);
}

#[test]
fn a_lock_timeout_gives_up_with_the_holder_named() {
    let mut p = Project::new("count = 4\nvalue = \"v\"\n");
    p.set_env("CAIRN_TEST_LATENCY_MS", "500");
    let mut first = p.spawn(&["deploy", "--env", "dev", "--yes", "--parallel", "1"]);
    wait_until(Duration::from_secs(30), "the first deployer to lock", || lock_is_taken(&p));
    let r = p.run(&["deploy", "--env", "dev", "--yes", "--lock-timeout", "200ms"]).code(1);
    assert!(r.stderr.contains("gave up after waiting"), "{}", r.stderr);
    first.kill().unwrap();
    first.wait().unwrap();
}

#[test]
fn the_lock_of_a_killed_deployer_is_taken_over() {
    let mut p = Project::new("count = 4\nvalue = \"v\"\n");
    p.set_env("CAIRN_TEST_LATENCY_MS", "500");
    let mut first = p.spawn(&["deploy", "--env", "dev", "--yes", "--parallel", "1"]);
    wait_until(Duration::from_secs(30), "the first deployer to lock", || lock_is_taken(&p));
    first.kill().unwrap();
    first.wait().unwrap();
    p.set_env("CAIRN_TEST_LATENCY_MS", "0");
    let r = p.deploy().ok();
    assert!(r.stderr.contains("taking over the lock left by"), "{}", r.stderr);
    p.assert_world_matches_state();
}

#[test]
fn unlock_needs_the_matching_id_and_refuses_a_live_holder() {
    let mut p = Project::new("count = 4\nvalue = \"v\"\n");
    let r = p.run(&["unlock", "--env", "dev", "nope"]).code(1);
    assert!(r.stderr.contains("does not match the current lock: no lock is held"), "{}", r.stderr);
    p.set_env("CAIRN_TEST_LATENCY_MS", "500");
    let mut first = p.spawn(&["deploy", "--env", "dev", "--yes", "--parallel", "1"]);
    wait_until(Duration::from_secs(30), "the first deployer to lock", || lock_is_taken(&p));
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.state_dir().join("lock")).unwrap()).unwrap();
    let id = info["id"].as_str().unwrap();
    let r = p.run(&["unlock", "--env", "dev", "wrong-id"]).code(1);
    assert!(r.stderr.contains(&format!("does not match the current lock `{id}`")), "{}", r.stderr);
    let r = p.run(&["unlock", "--env", "dev", id]).code(1);
    assert!(r.stderr.contains("held by a running process"), "{}", r.stderr);
    first.kill().unwrap();
    first.wait().unwrap();
}
