use std::time::Duration;

use consul_api::{Error, SessionRequest, TxnOp, MAX_TXN_OPS};

use crate::support::Agent;

#[tokio::test]
async fn set_and_check_index_succeed_together() {
    let agent = Agent::start().await;
    let c = agent.client();
    assert!(c.put("cfg/version", "1", None).await.unwrap());
    let version = c.get("cfg/version").await.unwrap().unwrap();

    let results = c
        .txn(vec![
            TxnOp::check_index("cfg/version", version.modify_index),
            TxnOp::set("cfg/a", "A"),
            TxnOp::Set { key: "cfg/b".into(), value: vec![0, 1, 2], flags: Some(9) },
            TxnOp::check_not_exists("cfg/c"),
            TxnOp::get("cfg/version"),
        ])
        .await
        .unwrap();
    // check-not-exists returns nothing, the others their entry; only reads
    // carry the value.
    let keys: Vec<_> = results.results.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["cfg/version", "cfg/a", "cfg/b", "cfg/version"]);
    assert_eq!(results.results[0].modify_index, version.modify_index);
    assert!(results.results[0].value.is_empty());
    assert_eq!(results.results[2].flags, 9);
    assert_eq!(results.results[3].value, b"1");

    assert_eq!(c.get("cfg/a").await.unwrap().unwrap().value, b"A");
    let b = c.get("cfg/b").await.unwrap().unwrap();
    assert_eq!((b.value.as_slice(), b.flags), (&[0u8, 1, 2][..], 9));

    // Cas and delete-cas inside a transaction.
    let a = c.get("cfg/a").await.unwrap().unwrap();
    c.txn(vec![
        TxnOp::cas("cfg/a", "A2", a.modify_index),
        TxnOp::delete_cas("cfg/b", b.modify_index),
        TxnOp::delete("cfg/never-existed"),
    ])
    .await
    .unwrap();
    assert_eq!(c.get("cfg/a").await.unwrap().unwrap().value, b"A2");
    assert_eq!(c.get("cfg/b").await.unwrap(), None);
}

#[tokio::test]
async fn failing_check_reports_op_index_and_rolls_back() {
    let agent = Agent::start().await;
    let c = agent.client();
    assert!(c.put("locked", "v", None).await.unwrap());
    let session = c.session_create(&SessionRequest::new("txn-test").with_lock_delay(Duration::ZERO)).await.unwrap();

    let err = c
        .txn(vec![
            TxnOp::set("rolled/back", "x"),
            TxnOp::check_not_exists("rolled/other"),
            TxnOp::check_session("locked", &session),
        ])
        .await
        .unwrap_err();
    let Error::TxnFailed { errors } = &err else {
        panic!("expected TxnFailed, got {err:?}");
    };
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].op_index, 2);
    assert!(errors[0].what.contains("session"), "{}", errors[0].what);
    assert!(err.to_string().contains("operation 2"), "{err}");
    assert_eq!(c.get("rolled/back").await.unwrap(), None, "the set was rolled back");

    // A stale check-index fails at its own position.
    let current = c.get("locked").await.unwrap().unwrap();
    let err = c
        .txn(vec![TxnOp::check_index("locked", current.modify_index + 100), TxnOp::set("rolled/back", "x")])
        .await
        .unwrap_err();
    match err {
        Error::TxnFailed { errors } => assert_eq!(errors[0].op_index, 0),
        other => panic!("expected TxnFailed, got {other:?}"),
    }

    // Once the session holds the lock, the same check passes.
    assert!(c.acquire("locked", "v", &session).await.unwrap());
    c.txn(vec![TxnOp::check_session("locked", &session), TxnOp::set("guarded", "ok")]).await.unwrap();
    assert_eq!(c.get("guarded").await.unwrap().unwrap().value, b"ok");
}

#[tokio::test]
async fn lock_and_unlock_ops() {
    let agent = Agent::start().await;
    let c = agent.client();
    let s = c.session_create(&SessionRequest::new("txn-lock").with_lock_delay(Duration::ZERO)).await.unwrap();
    c.txn(vec![TxnOp::Lock { key: "l".into(), value: b"held".to_vec(), session: s.clone() }]).await.unwrap();
    assert_eq!(c.get("l").await.unwrap().unwrap().session.as_deref(), Some(s.as_str()));
    c.txn(vec![TxnOp::Unlock { key: "l".into(), value: b"free".to_vec(), session: s.clone() }]).await.unwrap();
    let l = c.get("l").await.unwrap().unwrap();
    assert_eq!((l.session, l.value), (None, b"free".to_vec()));
}

#[tokio::test]
async fn op_limit_is_enforced_before_sending() {
    let agent = Agent::start().await;
    let c = agent.client();

    let ops = |n: usize| (0..n).map(|i| TxnOp::set(format!("many/{i:03}"), "v")).collect::<Vec<_>>();
    let err = c.txn(ops(MAX_TXN_OPS + 1)).await.unwrap_err();
    assert!(matches!(err, Error::TxnTooLarge { ops: 65 }), "{err:?}");
    assert!(err.to_string().contains("65") && err.to_string().contains("64"), "{err}");
    assert!(c.keys("many/", None).await.unwrap().is_empty(), "nothing was written");

    // Exactly the limit is accepted by Consul.
    let results = c.txn(ops(MAX_TXN_OPS)).await.unwrap();
    assert_eq!(results.results.len(), MAX_TXN_OPS);
    assert_eq!(c.keys("many/", None).await.unwrap().len(), MAX_TXN_OPS);

    // Unknown-key reads fail the transaction rather than returning nothing.
    let err = c.txn(vec![TxnOp::get("nope")]).await.unwrap_err();
    assert!(matches!(&err, Error::TxnFailed { errors } if errors[0].op_index == 0), "{err:?}");
}
