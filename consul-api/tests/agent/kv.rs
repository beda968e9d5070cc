use std::time::{Duration, Instant};

use consul_api::Error;

use crate::support::Agent;

#[tokio::test]
async fn put_get_list_keys_delete() {
    let agent = Agent::start().await;
    let c = agent.client();

    assert_eq!(c.get("app/missing").await.unwrap(), None);
    assert_eq!(c.get_raw("app/missing").await.unwrap(), None);
    assert!(c.list("app/").await.unwrap().is_empty());
    assert!(c.keys("app/", None).await.unwrap().is_empty());

    assert!(c.put("app/a", "one", None).await.unwrap());
    assert!(c.put("app/b", b"two".to_vec(), Some(42)).await.unwrap());
    assert!(c.put("app/sub/c", "three", None).await.unwrap());
    assert!(c.put("other", "x", None).await.unwrap());

    let a = c.get("app/a").await.unwrap().expect("app/a exists");
    assert_eq!(a.key, "app/a");
    assert_eq!(a.value, b"one");
    assert_eq!(a.value_str(), Some("one"));
    assert_eq!(a.flags, 0);
    assert!(a.create_index > 0);
    assert_eq!(a.create_index, a.modify_index);
    assert_eq!(a.lock_index, 0);
    assert_eq!(a.session, None);
    assert_eq!(c.get("app/b").await.unwrap().unwrap().flags, 42);
    assert_eq!(c.get_raw("app/a").await.unwrap(), Some(b"one".to_vec()));

    let listed = c.list("app/").await.unwrap();
    let keys: Vec<_> = listed.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["app/a", "app/b", "app/sub/c"]);
    assert_eq!(listed[2].value, b"three");

    assert_eq!(c.keys("app/", None).await.unwrap(), ["app/a", "app/b", "app/sub/c"]);
    assert_eq!(c.keys("app/", Some("/")).await.unwrap(), ["app/a", "app/b", "app/sub/"]);
    assert_eq!(c.keys("", Some("/")).await.unwrap(), ["app/", "other"]);

    c.delete("app/a").await.unwrap();
    assert_eq!(c.get("app/a").await.unwrap(), None);
    c.delete("app/a").await.unwrap(); // deleting a missing key is fine

    c.delete_tree("app/").await.unwrap();
    assert!(c.list("app/").await.unwrap().is_empty());
    assert!(c.get("other").await.unwrap().is_some(), "delete_tree stays under its prefix");
}

#[tokio::test]
async fn binary_values_and_awkward_keys() {
    let agent = Agent::start().await;
    let c = agent.client();

    let binary: Vec<u8> = (0..=255).collect();
    assert!(c.put("bin", binary.clone(), None).await.unwrap());
    assert_eq!(c.get("bin").await.unwrap().unwrap().value, binary);
    assert_eq!(c.get_raw("bin").await.unwrap().unwrap(), binary);

    // Keys with characters that need percent-encoding in a URL.
    for key in ["we ird/k?ey#1", "percent%2Fslash", "ünïcødé/键", "a+b=c&d"] {
        assert!(c.put(key, key, None).await.unwrap(), "{key}");
        let pair = c.get(key).await.unwrap().unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!(pair.key, key);
        assert_eq!(pair.value, key.as_bytes());
    }
    assert_eq!(c.keys("we ird/", None).await.unwrap(), ["we ird/k?ey#1"]);

    // An empty value is stored as null and read back as empty.
    assert!(c.put("empty", Vec::new(), None).await.unwrap());
    assert_eq!(c.get("empty").await.unwrap().unwrap().value, b"");
    assert_eq!(c.get_raw("empty").await.unwrap(), Some(Vec::new()));
}

#[tokio::test]
async fn cas_success_and_conflict() {
    let agent = Agent::start().await;
    let c = agent.client();

    // cas=0: create only if absent.
    assert!(c.put_cas("cfg", "v1", 0).await.unwrap());
    assert!(!c.put_cas("cfg", "v1-again", 0).await.unwrap());

    let v1 = c.get("cfg").await.unwrap().unwrap();
    assert_eq!(v1.value, b"v1");
    assert!(c.put_cas("cfg", "v2", v1.modify_index).await.unwrap());
    // Stale index: conflict, value unchanged.
    assert!(!c.put_cas("cfg", "v3", v1.modify_index).await.unwrap());
    let v2 = c.get("cfg").await.unwrap().unwrap();
    assert_eq!(v2.value, b"v2");
    assert!(v2.modify_index > v1.modify_index);

    assert!(!c.delete_cas("cfg", v1.modify_index).await.unwrap());
    assert!(c.get("cfg").await.unwrap().is_some());
    assert!(c.delete_cas("cfg", v2.modify_index).await.unwrap());
    assert!(c.get("cfg").await.unwrap().is_none());
}

#[tokio::test]
async fn blocking_get_returns_after_concurrent_put() {
    let agent = Agent::start().await;
    let c = agent.client();
    assert!(c.put("watched", "before", None).await.unwrap());

    // Index 0 returns at once with the current index.
    let (pair, index) = c.get_blocking("watched", 0, Duration::from_secs(5)).await.unwrap();
    assert_eq!(pair.unwrap().value, b"before");
    assert!(index > 0);

    let writer = agent.client();
    let put = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        writer.put("watched", "after", None).await.unwrap()
    });
    let started = Instant::now();
    let (pair, new_index) = c.get_blocking("watched", index, Duration::from_secs(20)).await.unwrap();
    let waited = started.elapsed();
    assert!(put.await.unwrap());

    let pair = pair.unwrap();
    assert_eq!(pair.value, b"after");
    assert!(new_index > index, "{new_index} > {index}");
    assert_eq!(pair.modify_index, new_index);
    assert!(waited >= Duration::from_millis(250), "returned before the put: {waited:?}");
    assert!(waited < Duration::from_secs(10), "did not wake on the put: {waited:?}");
}

#[tokio::test]
async fn blocking_get_times_out_with_same_index() {
    let agent = Agent::start().await;
    let c = agent.client();
    assert!(c.put("quiet", "v", None).await.unwrap());
    let (_, index) = c.get_blocking("quiet", 0, Duration::from_secs(1)).await.unwrap();

    let started = Instant::now();
    let (pair, same) = c.get_blocking("quiet", index, Duration::from_secs(1)).await.unwrap();
    let waited = started.elapsed();
    assert_eq!(same, index);
    assert_eq!(pair.unwrap().value, b"v");
    assert!(waited >= Duration::from_millis(900), "did not block: {waited:?}");
    // wait + up to wait/16 of jitter, plus slack for a slow machine.
    assert!(waited < Duration::from_secs(5), "blocked too long: {waited:?}");

    // A missing key can be watched too.
    let (none, idx) = c.get_blocking("absent", 0, Duration::from_secs(1)).await.unwrap();
    assert_eq!(none, None);
    assert!(idx > 0);
}

#[tokio::test]
async fn list_blocking_wakes_on_put_under_prefix() {
    let agent = Agent::start().await;
    let c = agent.client();
    assert!(c.put("jobs/1", "a", None).await.unwrap());
    let (pairs, index) = c.list_blocking("jobs/", 0, Duration::from_secs(5)).await.unwrap();
    assert_eq!(pairs.len(), 1);

    let writer = agent.client();
    let put = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        writer.put("jobs/2", "b", None).await.unwrap()
    });
    let (pairs, new_index) = c.list_blocking("jobs/", index, Duration::from_secs(20)).await.unwrap();
    assert!(put.await.unwrap());
    assert!(new_index > index);
    let keys: Vec<_> = pairs.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["jobs/1", "jobs/2"]);
}

#[tokio::test]
async fn consul_errors_name_operation_and_key() {
    let agent = Agent::start().await;
    let c = agent.client();
    // Consul rejects values above 512 KiB with 413.
    let err = c.put("too/big", vec![b'x'; 600 * 1024], None).await.unwrap_err();
    let Error::Http { operation, key, status, message } = &err else {
        panic!("expected Http error, got {err:?}");
    };
    assert_eq!(*operation, "kv put");
    assert_eq!(key.as_deref(), Some("too/big"));
    assert_eq!(status.as_u16(), 413);
    assert!(!message.is_empty());
    let text = err.to_string();
    assert!(text.contains("kv put") && text.contains("too/big") && text.contains("413"), "{text}");
}

#[tokio::test]
async fn keys_consul_would_redirect_are_rejected() {
    let agent = Agent::start().await;
    let c = agent.client();
    assert!(c.put("a/b", "target", None).await.unwrap());
    // Consul would answer these with a redirect to "a/b"; following it would
    // read or overwrite the wrong key.
    for key in ["a//b", "a/./b", "x/../a/b", "/a/b"] {
        let err = c.put(key, "wrong", None).await.unwrap_err();
        assert!(matches!(&err, Error::InvalidKey { operation: "kv put", .. }), "{key}: {err:?}");
        let err = c.get(key).await.unwrap_err();
        assert!(matches!(&err, Error::InvalidKey { operation: "kv get", .. }), "{key}: {err:?}");
    }
    assert_eq!(c.get("a/b").await.unwrap().unwrap().value, b"target");
}
