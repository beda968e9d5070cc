//! The Consul state backend through its library API, against a real dev agent.

use std::collections::BTreeSet;

use cairn::state::consul::{ConsulBackend, LockOptions};
use cairn::state::{Change, LockInfo, ResourceState, StackState, StateBackend, StateError};
use cairn::Urn;
use cairn_tests::consul::Agent;
use serde_json::json;

fn resource(stack: &str, i: usize, size: usize) -> ResourceState {
    ResourceState {
        urn: Urn::from(format!("{stack}/group-{}/test:Thing/r{i}", i % 7)),
        type_token: "test:Thing".into(),
        id: format!("id-{i}"),
        inputs: json!({"value": "x".repeat(size), "i": i}),
        outputs: json!({"token": format!("tok-{i}")}),
        dependencies: BTreeSet::new(),
        protect: false,
        retain_on_delete: false,
        delete_before_replace: false,
        provider: None,
    }
}

fn backend(agent: &Agent, stack: &str) -> ConsulBackend {
    ConsulBackend::new(agent.client(), "cairn", stack, LockOptions::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_thousand_resource_stack_is_saved_and_loaded() {
    let agent = Agent::dev();
    let b = backend(&agent, "big");
    let mut state = StackState::empty("big");
    for i in 0..10_000 {
        let r = resource("big", i, 50);
        state.resources.insert(r.urn.clone(), r);
    }
    state.outputs.insert("n".into(), json!(10_000));
    let session = b.lock(LockInfo::new("test"), None).await.unwrap();
    session.replace(state.clone()).await.unwrap();
    session.release().await.unwrap();
    let loaded = b.read().await.unwrap();
    assert_eq!(loaded, state);
    let keys = agent.client().keys("cairn/big/resources/", None).await.unwrap();
    assert_eq!(keys.len(), 10_000, "one key per resource");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_bypassed_the_lock_is_detected_not_overwritten() {
    let agent = Agent::dev();
    let b = backend(&agent, "cas");
    let r = resource("cas", 1, 10);
    let mut session = b.lock(LockInfo::new("test"), None).await.unwrap();
    session.write(vec![Change::PutResource(r.clone())]).await.unwrap();
    session.load().await.unwrap();
    // Someone writes the same key without the lock (an old tool, a manual `consul kv put`).
    let key = agent.client().keys("cairn/cas/resources/", None).await.unwrap().remove(0);
    agent.client().put(&key, b"{\"rogue\": true}".to_vec(), None).await.unwrap();
    let mut changed = r.clone();
    changed.id = "id-changed".into();
    let err = session.write(vec![Change::PutResource(changed)]).await.unwrap_err();
    assert!(matches!(err, StateError::Conflict(_)), "{err}");
    assert!(err.to_string().contains("changed by another writer") && err.to_string().contains(&key), "{err}");
    let value = agent.client().get_raw(&key).await.unwrap().unwrap();
    assert_eq!(value, b"{\"rogue\": true}", "the other writer's value was not overwritten");
    session.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_destroyed_from_outside_cannot_write() {
    let agent = Agent::dev();
    let b = backend(&agent, "fence");
    let session = b.lock(LockInfo::new("test"), None).await.unwrap();
    session.write(vec![Change::PutResource(resource("fence", 1, 10))]).await.unwrap();
    let holder = agent.client().get("cairn/fence/lock/holder").await.unwrap().unwrap().session.unwrap();
    agent.client().session_destroy(&holder).await.unwrap();
    let err = session.write(vec![Change::PutResource(resource("fence", 2, 10))]).await.unwrap_err();
    assert!(matches!(err, StateError::Fenced(_)), "{err}");
    assert!(session.lost().is_some());
    assert_eq!(b.read().await.unwrap().resources.len(), 1, "nothing was written");
    // Another deployer gets the lock (after the lock delay) and sees consistent state.
    let next = b.lock(LockInfo::new("test"), Some(std::time::Duration::from_secs(10))).await.unwrap();
    next.release().await.unwrap();
    drop(session);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_values_are_compressed_and_oversized_ones_refused_by_name() {
    let agent = Agent::dev();
    let b = backend(&agent, "size");
    let session = b.lock(LockInfo::new("test"), None).await.unwrap();
    let big = resource("size", 1, 300_000);
    session.write(vec![Change::PutResource(big.clone())]).await.unwrap();
    let pair = agent.client().list("cairn/size/resources/").await.unwrap().remove(0);
    assert_eq!(pair.flags, 1, "gzip");
    assert!(pair.value.len() < 10_000, "{} bytes stored", pair.value.len());
    assert_eq!(b.read().await.unwrap().resources[&big.urn], big);

    // Incompressible and too big: refused, naming the resource.
    let mut noise = String::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while noise.len() < 800_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.push_str(&format!("{x:016x}"));
    }
    let mut huge = resource("size", 2, 0);
    huge.inputs = json!({"value": noise});
    let err = session.write(vec![Change::PutResource(huge.clone())]).await.unwrap_err();
    assert!(err.to_string().contains(huge.urn.as_str()) && err.to_string().contains("512 KiB"), "{err}");
    session.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_and_newer_state_in_consul_is_reported_by_key() {
    let agent = Agent::dev();
    let b = backend(&agent, "bad");
    agent.client().put("cairn/bad/resources/x", b"{not json".to_vec(), None).await.unwrap();
    let err = b.read().await.unwrap_err();
    assert!(matches!(err, StateError::Corrupt { .. }) && err.to_string().contains("cairn/bad/resources/x"), "{err}");
    let err = b.lock(LockInfo::new("test"), None).await.err().unwrap();
    assert!(err.to_string().contains("corrupt"), "{err}");
    assert!(agent.client().session_list().await.unwrap().is_empty(), "the session was destroyed");
    assert_eq!(agent.client().get_raw("cairn/bad/resources/x").await.unwrap().unwrap(), b"{not json");

    agent.client().delete("cairn/bad/resources/x").await.unwrap();
    agent.client().put("cairn/bad/meta", br#"{"version": 9, "stack": "bad"}"#.to_vec(), None).await.unwrap();
    let err = b.read().await.unwrap_err();
    assert!(matches!(err, StateError::NewerSchema { found: 9, .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_waiting_deployer_holds_one_session() {
    let agent = Agent::dev();
    let b = backend(&agent, "wait");
    let holder = b.lock(LockInfo::new("holder"), None).await.unwrap();
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move { b.lock(LockInfo::new("waiter"), Some(std::time::Duration::from_secs(30))).await })
    };
    let mut most = 0;
    for _ in 0..30 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        most = most.max(agent.client().session_list().await.unwrap().len());
    }
    assert_eq!(most, 2, "the holder's session and the waiter's one");
    holder.release().await.unwrap();
    let session = waiter.await.unwrap().unwrap();
    session.release().await.unwrap();
    assert!(agent.client().session_list().await.unwrap().is_empty());
}
