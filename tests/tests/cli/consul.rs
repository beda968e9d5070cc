//! The Consul backend against real agents: several deployers, crashes, pauses, fencing,
//! Ctrl-C, a three-server cluster losing its leader.

use std::process::Output;
use std::time::Duration;

use cairn_tests::consul::{Agent, Cluster};
use serde_json::Value;

use crate::support::{signal, wait_until, Project};

const STACK: &str = "test-dev";

fn project(agent: &Agent, config: &str) -> Project {
    let mut p = Project::new(config);
    p.set_env("CAIRN_STATE", &agent.state_url("cairn"));
    p
}

fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// The session holding the stack's lock, if any.
fn holder_session(agent: &Agent) -> Option<String> {
    block(agent.client().get(&format!("cairn/{STACK}/lock/holder"))).unwrap().and_then(|p| p.session)
}

fn sessions(agent: &Agent) -> usize {
    block(agent.client().session_list()).unwrap().len()
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn deploy_preview_and_destroy_through_consul() {
    let agent = Agent::dev();
    let p = project(&agent, "count = 3\nchain = 2\nvalue = \"v1\"\n");
    p.deploy().ok();
    p.assert_world_matches_state();
    assert_eq!(p.preview_json().1, 0);
    p.config("count = 3\nchain = 2\nvalue = \"v2\"\n");
    p.deploy().ok();
    assert_eq!(p.preview_json().1, 0);
    let keys = block(agent.client().keys(&format!("cairn/{STACK}/resources/"), None)).unwrap();
    assert_eq!(keys.len(), 5, "one key per resource: {keys:?}");
    p.run(&["destroy", "--env", "dev", "--yes"]).ok();
    assert!(p.things().is_empty());
    assert_eq!(sessions(&agent), 0, "every session was destroyed");
    assert!(holder_session(&agent).is_none());
}

#[test]
fn eight_deployers_at_once_take_turns_and_lose_nothing() {
    let agent = Agent::dev();
    let mut p = project(&agent, "count = 4\nchain = 2\nvalue = \"v\"\n");
    let log = p.path().join("calls.log");
    p.set_env("CAIRN_TEST_CALL_LOG", log.to_str().unwrap());
    p.set_env("CAIRN_TEST_LATENCY_MS", "20");
    let dir = p.path().to_path_buf();
    let mut children = Vec::new();
    for i in 0..8 {
        // Each deployer has its own config directory and value.
        let cfg = dir.join(format!("config-{i}"));
        std::fs::create_dir_all(&cfg).unwrap();
        std::fs::write(cfg.join("dev.toml"), format!("count = 4\nchain = 2\nvalue = \"v{i}\"\n")).unwrap();
        let mut c = p.command(&["deploy", "--env", "dev", "--yes", "--lock-timeout", "120s", "--parallel", "4"]);
        c.env("CAIRN_CONFIG_DIR", &cfg).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        children.push((i, c.spawn().unwrap()));
    }
    let mut pid_to_value = std::collections::BTreeMap::new();
    for (i, c) in children {
        let pid = c.id();
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "deployer {i}: {}", text(&out));
        pid_to_value.insert(pid, format!("v{i}"));
    }
    // Mutual exclusion: provider calls of different deployers never overlap.
    let mut calls = cairn_tests::call_log(&log);
    calls.sort_by_key(|c| c.1);
    for pair in calls.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert!(a.0 == b.0 || a.2 <= b.1, "deployers {} and {} worked at the same time: {a:?} {b:?}", a.0, b.0);
    }
    // The last deployer's program is what is deployed; nothing was lost or duplicated.
    let last = calls.last().expect("calls").0;
    let expected = &pid_to_value[&last];
    p.set_env("CAIRN_CONFIG_DIR", dir.join(format!("config-{}", &expected[1..])).to_str().unwrap());
    p.assert_world_matches_state();
    assert_eq!(p.things().len(), 6);
    assert_eq!(p.preview_json().1, 0, "the state is the last deploy's desired state");
    for (id, _) in p.things() {
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(p.world().join(format!("{id}.json"))).unwrap()).unwrap();
        assert!(v["value"].as_str().unwrap().starts_with(expected.as_str()), "{v} from {expected}");
    }
    assert_eq!(sessions(&agent), 0, "no session left behind");
}

#[test]
fn a_killed_holder_is_taken_over_and_its_pending_work_reconciled() {
    let agent = Agent::dev();
    let mut p = project(&agent, "count = 12\nvalue = \"v\"\n");
    p.set_env("CAIRN_TEST_LATENCY_MS", "300");
    let mut holder = p.spawn(&["deploy", "--env", "dev", "--yes", "--parallel", "3"]);
    wait_until(Duration::from_secs(30), "a few creates", || p.things().len() >= 3);
    p.set_env("CAIRN_TEST_LATENCY_MS", "0");
    let waiter = p.spawn(&["deploy", "--env", "dev", "--yes", "--lock-timeout", "60s"]);
    std::thread::sleep(Duration::from_millis(300));
    holder.kill().unwrap();
    holder.wait().unwrap();
    let out = waiter.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("taking over the lock"), "{stderr}");
    p.assert_world_matches_state();
    assert_eq!(p.things().len(), 12);
    assert_eq!(sessions(&agent), 0);
}

#[test]
fn a_paused_holder_that_was_taken_over_cannot_write_and_says_so() {
    let agent = Agent::dev();
    let mut p = project(&agent, "count = 30\nvalue = \"v\"\n");
    p.set_env("CAIRN_TEST_LATENCY_MS", "200");
    let holder = p.spawn(&["deploy", "--env", "dev", "--yes", "--parallel", "1"]);
    wait_until(Duration::from_secs(30), "a few creates", || p.things().len() >= 2);
    signal(&holder, libc::SIGSTOP);
    p.set_env("CAIRN_TEST_LATENCY_MS", "0");
    let out = p.run(&["deploy", "--env", "dev", "--yes", "--lock-timeout", "60s"]).ok();
    assert!(out.stderr.contains("no heartbeat"), "{}", out.stderr);
    signal(&holder, libc::SIGCONT);
    let old = holder.wait_with_output().unwrap();
    assert_eq!(old.status.code(), Some(1), "{}", text(&old));
    let all = text(&old);
    assert!(all.contains("no longer holds the lock") || all.contains("lock was lost"), "{all}");
    // State is consistent: everything it records exists. The old holder's one in-flight call
    // may have created a thing that it could not record; it names it.
    let state = p.state();
    let in_state: Vec<String> =
        state["resources"].as_object().unwrap().values().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    let world = p.things();
    for id in &in_state {
        assert!(world.iter().any(|(w, _)| w == id), "{id} is in state but not real");
    }
    let orphans: Vec<_> = world.iter().filter(|(id, _)| !in_state.contains(id)).collect();
    assert!(orphans.len() <= 1, "{orphans:?}");
    for (id, urn) in orphans {
        let named = all.contains(&format!("in flight, result may not be recorded: {urn}"))
            || all.contains(&format!("failed {urn} (create): created {id} but it could not be recorded"));
        assert!(named, "{all}");
    }
}

#[test]
fn a_holder_whose_session_is_destroyed_stops_at_its_next_write() {
    let agent = Agent::dev();
    let mut p = project(&agent, "count = 20\nvalue = \"v\"\n");
    p.set_env("CAIRN_TEST_LATENCY_MS", "200");
    let holder = p.spawn(&["deploy", "--env", "dev", "--yes", "--parallel", "1"]);
    wait_until(Duration::from_secs(30), "a few creates", || p.things().len() >= 2);
    let session = holder_session(&agent).expect("the holder holds the lock");
    block(agent.client().session_destroy(&session)).unwrap();
    let out = holder.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no longer holds the lock"), "{}", text(&out));
    assert!(p.things().len() < 20);
    p.set_env("CAIRN_TEST_LATENCY_MS", "0");
    p.deploy().ok();
    p.assert_world_matches_state();
    assert_eq!(p.things().len(), 20);
}

#[test]
fn unlock_with_the_lock_id_fences_the_holder() {
    let agent = Agent::dev();
    let mut p = project(&agent, "count = 20\nvalue = \"v\"\n");
    p.set_env("CAIRN_TEST_LATENCY_MS", "200");
    let holder = p.spawn(&["deploy", "--env", "dev", "--yes", "--parallel", "1"]);
    wait_until(Duration::from_secs(30), "the lock", || holder_session(&agent).is_some());
    let pair = block(agent.client().get(&format!("cairn/{STACK}/lock/holder"))).unwrap().unwrap();
    let info: Value = serde_json::from_slice(&pair.value).unwrap();
    let r = p.run(&["unlock", "--env", "dev", "not-the-id"]).code(1);
    assert!(r.stderr.contains("does not match the current lock"), "{}", r.stderr);
    p.run(&["unlock", "--env", "dev", info["id"].as_str().unwrap()]).ok();
    let out = holder.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    p.set_env("CAIRN_TEST_LATENCY_MS", "0");
    p.deploy().ok();
    p.assert_world_matches_state();
}

#[test]
fn ctrl_c_releases_the_lock_at_once() {
    let agent = Agent::dev();
    let mut p = project(&agent, "count = 20\nvalue = \"v\"\n");
    p.set_env("CAIRN_TEST_LATENCY_MS", "200");
    let holder = p.spawn(&["deploy", "--env", "dev", "--yes", "--parallel", "2"]);
    wait_until(Duration::from_secs(30), "a first create", || !p.things().is_empty());
    signal(&holder, libc::SIGINT);
    let out = holder.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(holder_session(&agent).is_none(), "released");
    p.set_env("CAIRN_TEST_LATENCY_MS", "0");
    // No --lock-timeout: the lock must be free right now.
    p.deploy().ok();
    p.assert_world_matches_state();
    assert_eq!(sessions(&agent), 0);
}

#[test]
fn a_second_deployer_without_timeout_is_told_who_holds_the_lock() {
    let agent = Agent::dev();
    let mut p = project(&agent, "count = 10\nvalue = \"v\"\n");
    p.set_env("CAIRN_TEST_LATENCY_MS", "200");
    let mut holder = p.spawn(&["deploy", "--env", "dev", "--yes", "--parallel", "1"]);
    wait_until(Duration::from_secs(30), "the lock", || holder_session(&agent).is_some());
    let r = p.deploy().code(1);
    assert!(
        r.stderr.contains("the stack is locked by") && r.stderr.contains(&format!("(pid {})", holder.id())),
        "{}",
        r.stderr
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
}

#[test]
fn state_migrates_between_file_and_consul() {
    let agent = Agent::dev();
    let p = Project::new("count = 3\nvalue = \"v\"\n");
    p.deploy().ok();
    let url = agent.state_url("cairn");
    p.run(&["state", "migrate", "--env", "dev", "--to", &url, "--yes"]).ok();
    let r = p.run(&["state", "list", "--env", "dev"]).ok();
    assert!(r.stdout.is_empty(), "the file backend was emptied: {}", r.stdout);
    let r = p.run(&["preview", "--env", "dev", "--state", &url, "--detailed-exitcode"]).ok();
    assert!(r.stdout.contains("no changes"), "{}", r.stdout);
    // And back.
    p.run(&["state", "migrate", "--env", "dev", "--state", &url, "--to", ".cairn", "--yes"]).ok();
    assert_eq!(p.preview_json().1, 0);
    p.assert_world_matches_state();
    // A destination that already has state is refused.
    let r = p.run(&["state", "migrate", "--env", "dev", "--to", &url, "--yes", "--keep-source"]).ok();
    assert!(r.stdout.contains("moved 3 resources"), "{}", r.stdout);
    let r = p.run(&["state", "migrate", "--env", "dev", "--to", &url, "--yes"]).code(1);
    assert!(r.stderr.contains("already holds state"), "{}", r.stderr);
}

#[test]
fn losing_the_cluster_leader_mid_apply_never_corrupts_state() {
    let mut cluster = Cluster::three();
    let leader = cluster.leader();
    let follower = (leader + 1) % 3;
    let mut p = Project::new("count = 30\nvalue = \"v\"\n");
    p.set_env("CAIRN_STATE", &cluster.servers[follower].state_url("cairn"));
    p.set_env("CAIRN_TEST_LATENCY_MS", "100");
    let holder = p.spawn(&["deploy", "--env", "dev", "--yes", "--parallel", "4"]);
    wait_until(Duration::from_secs(30), "a few creates", || p.things().len() >= 5);
    cluster.servers[leader].kill();
    let out = holder.wait_with_output().unwrap();
    // Either it finished after the re-election, or it stopped with a clear error.
    assert!(out.status.code() == Some(0) || out.status.code() == Some(1), "{}", text(&out));
    // Rerun until the new leader serves; the state must be readable and consistent.
    p.set_env("CAIRN_TEST_LATENCY_MS", "0");
    wait_until(Duration::from_secs(60), "a deploy after the re-election", || {
        p.run(&["deploy", "--env", "dev", "--yes", "--lock-timeout", "30s"]).code == 0
    });
    p.assert_world_matches_state();
    assert_eq!(p.things().len(), 30);
    // Restarting a follower changes nothing.
    let other = (0..3).find(|&i| i != leader && i != follower).unwrap();
    cluster.servers[other].kill();
    cluster.servers[other].start();
    cluster.servers[other].wait_ready(Duration::from_secs(60));
    assert_eq!(p.preview_json().1, 0);
}
