use std::time::Duration;

use consul_api::{SessionBehavior, SessionRequest};

use crate::support::Agent;

#[tokio::test]
async fn create_info_list_renew_destroy() {
    let agent = Agent::start().await;
    let c = agent.client();

    let req = SessionRequest::new("lifecycle")
        .with_ttl(Duration::from_secs(30))
        .with_lock_delay(Duration::from_millis(1500))
        .with_behavior(SessionBehavior::Delete);
    let id = c.session_create(&req).await.unwrap();
    assert!(!id.is_empty());

    let info = c.session_info(&id).await.unwrap().expect("session exists");
    assert_eq!(info.id, id);
    assert_eq!(info.name, "lifecycle");
    assert_eq!(info.ttl, Some(Duration::from_secs(30)));
    assert_eq!(info.lock_delay, Duration::from_millis(1500));
    assert_eq!(info.behavior, SessionBehavior::Delete);
    assert!(info.node_checks.is_empty(), "default request has no checks: {:?}", info.node_checks);
    assert!(!info.node.is_empty());
    assert!(info.create_index > 0);

    let listed = c.session_list().await.unwrap();
    assert!(listed.iter().any(|s| s.id == id), "{listed:?}");

    let renewed = c.session_renew(&id).await.unwrap().expect("session still exists");
    assert_eq!(renewed.id, id);
    assert_eq!(renewed.ttl, Some(Duration::from_secs(30)));

    c.session_destroy(&id).await.unwrap();
    assert_eq!(c.session_renew(&id).await.unwrap(), None, "renewing a destroyed session");
    assert_eq!(c.session_info(&id).await.unwrap(), None);
    assert!(!c.session_list().await.unwrap().iter().any(|s| s.id == id));
    c.session_destroy(&id).await.unwrap(); // destroying twice is fine
}

#[tokio::test]
async fn checks_empty_versus_default() {
    let agent = Agent::start().await;
    let c = agent.client();

    let none = c.session_create(&SessionRequest::new("no-checks")).await.unwrap();
    let info = c.session_info(&none).await.unwrap().unwrap();
    assert!(info.node_checks.is_empty(), "{:?}", info.node_checks);
    assert_eq!(info.lock_delay, Duration::from_secs(15), "Consul's default lock delay");
    assert_eq!(info.ttl, None);
    assert_eq!(info.behavior, SessionBehavior::Release);

    let default = c.session_create(&SessionRequest::new("serf").with_default_checks()).await.unwrap();
    let info = c.session_info(&default).await.unwrap().unwrap();
    assert_eq!(info.node_checks, ["serfHealth"]);

    let explicit =
        c.session_create(&SessionRequest::new("explicit").with_checks(vec!["serfHealth".into()])).await.unwrap();
    assert_eq!(c.session_info(&explicit).await.unwrap().unwrap().node_checks, ["serfHealth"]);

    // Consul validates the TTL range (10s..24h) and says so (HTTP 500 in
    // Consul 1.8, 400 in newer versions).
    let err = c.session_create(&SessionRequest::new("bad").with_ttl(Duration::from_secs(1))).await.unwrap_err();
    assert!(err.status().is_some_and(|s| s.is_client_error() || s.is_server_error()), "{err}");
    let text = err.to_string();
    assert!(text.contains("session create \"bad\"") && text.contains("TTL"), "{text}");
}

#[tokio::test]
async fn acquire_release_lock_semantics() {
    let agent = Agent::start().await;
    let c = agent.client();
    let new_session = |name: &'static str| {
        let c = c.clone();
        async move { c.session_create(&SessionRequest::new(name).with_lock_delay(Duration::ZERO)).await.unwrap() }
    };
    let s1 = new_session("holder").await;
    let s2 = new_session("contender").await;

    assert!(c.acquire("locks/leader", "s1", &s1).await.unwrap());
    assert!(c.acquire("locks/leader", "s1-again", &s1).await.unwrap(), "re-acquire by holder");
    assert!(!c.acquire("locks/leader", "s2", &s2).await.unwrap(), "second session must not acquire");

    let held = c.get("locks/leader").await.unwrap().unwrap();
    assert_eq!(held.session.as_deref(), Some(s1.as_str()));
    assert_eq!(held.value, b"s1-again");
    assert_eq!(held.lock_index, 1);

    assert!(!c.release("locks/leader", "x", &s2).await.unwrap(), "non-holder cannot release");
    assert!(c.release("locks/leader", "released", &s1).await.unwrap());
    let free = c.get("locks/leader").await.unwrap().unwrap();
    assert_eq!(free.session, None);
    assert_eq!(free.value, b"released");

    assert!(c.acquire("locks/leader", "s2", &s2).await.unwrap());
    assert!(!c.acquire("locks/leader", "s1", &s1).await.unwrap());

    // Destroying the holder (behavior release, lock delay 0) frees the lock
    // at once and keeps the key.
    c.session_destroy(&s2).await.unwrap();
    let after = c.get("locks/leader").await.unwrap().expect("release keeps the key");
    assert_eq!(after.session, None);
    assert!(c.acquire("locks/leader", "s1", &s1).await.unwrap(), "lock free after destroy");
    assert_eq!(c.get("locks/leader").await.unwrap().unwrap().lock_index, 3);
}

#[tokio::test]
async fn delete_behavior_removes_locked_keys() {
    let agent = Agent::start().await;
    let c = agent.client();
    let s = c
        .session_create(
            &SessionRequest::new("ephemeral").with_behavior(SessionBehavior::Delete).with_lock_delay(Duration::ZERO),
        )
        .await
        .unwrap();
    assert!(c.acquire("ephemeral/node", "me", &s).await.unwrap());
    c.session_destroy(&s).await.unwrap();
    assert_eq!(c.get("ephemeral/node").await.unwrap(), None);
}
