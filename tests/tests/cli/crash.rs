//! A deployer killed at any point is recovered by the next run; Ctrl-C stops cleanly.

use std::time::Duration;

use crate::support::{signal, wait_until, Project};

#[test]
fn sigkill_mid_apply_is_recovered_without_duplicates() {
    for kill_after in [1usize, 4, 9] {
        let mut p = Project::new("count = 12\nchain = 3\nvalue = \"v\"\n");
        p.set_env("CAIRN_TEST_LATENCY_MS", "150");
        let mut child = p.spawn(&["deploy", "--env", "dev", "--yes", "--parallel", "3"]);
        wait_until(Duration::from_secs(30), "some things to be created", || p.things().len() >= kill_after);
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        let created_before = p.things().len();
        assert!(created_before < 15, "killed before the end");

        p.set_env("CAIRN_TEST_LATENCY_MS", "0");
        let r = p.deploy().ok();
        assert!(r.stdout.contains("done:") || r.stdout.contains("no changes"), "{}", r.stdout);
        p.assert_world_matches_state();
        assert_eq!(p.things().len(), 15);
        assert_eq!(p.preview_json().1, 0);
    }
}

#[test]
fn sigkill_mid_destroy_is_recovered() {
    let mut p = Project::new("count = 10\nvalue = \"v\"\n");
    p.deploy().ok();
    p.set_env("CAIRN_TEST_LATENCY_MS", "150");
    let mut child = p.spawn(&["destroy", "--env", "dev", "--yes", "--parallel", "2"]);
    wait_until(Duration::from_secs(30), "some deletes", || p.things().len() <= 8);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!p.things().is_empty(), "killed before the end");
    p.set_env("CAIRN_TEST_LATENCY_MS", "0");
    p.run(&["destroy", "--env", "dev", "--yes"]).ok();
    assert!(p.things().is_empty());
    p.assert_world_matches_state();
}

#[test]
fn sigint_stops_new_steps_saves_state_and_releases_the_lock() {
    let mut p = Project::new("count = 20\nvalue = \"v\"\n");
    p.set_env("CAIRN_TEST_LATENCY_MS", "200");
    let child = p.spawn(&["deploy", "--env", "dev", "--yes", "--parallel", "2"]);
    wait_until(Duration::from_secs(30), "a first create", || !p.things().is_empty());
    signal(&child, libc::SIGINT);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "stdout:\n{}", String::from_utf8_lossy(&out.stdout));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("interrupted"), "{stdout}");
    assert!(p.things().len() < 20);
    // State matches what was done, and the lock is free at once.
    p.set_env("CAIRN_TEST_LATENCY_MS", "0");
    p.assert_world_matches_state();
    p.deploy().ok();
    assert_eq!(p.things().len(), 20);
}
