use std::net::TcpListener;
use std::time::{Duration, Instant};

use consul_api::{Client, Config, Error, RetryPolicy, SessionRequest, TxnOp};

/// An address where nothing listens.
fn dead_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("127.0.0.1:{port}")
}

#[tokio::test]
async fn transport_errors_are_retried_only_for_idempotent_calls() {
    let config = Config::new(&dead_address()).unwrap().with_timeout(Duration::from_secs(2)).with_retry(RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_millis(400),
    });
    let c = Client::new(config).unwrap();

    // GET: 3 attempts with 200 ms + 400 ms of backoff in between.
    let started = Instant::now();
    let err = c.get("some/key").await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(600), "retried with backoff: {elapsed:?}");
    let Error::Transport { operation, key, .. } = &err else {
        panic!("expected Transport error, got {err:?}");
    };
    assert_eq!((*operation, key.as_deref()), ("kv get", Some("some/key")));
    assert!(err.to_string().contains("kv get \"some/key\""), "{err}");

    // Writes fail fast: no retry.
    for (name, fut) in [
        (
            "put",
            Box::pin(async { c.put("k", "v", None).await.map(drop) })
                as std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Error>>>>,
        ),
        ("put_cas", Box::pin(async { c.put_cas("k", "v", 1).await.map(drop) })),
        ("acquire", Box::pin(async { c.acquire("k", "v", "s").await.map(drop) })),
        ("txn", Box::pin(async { c.txn(vec![TxnOp::set("k", "v")]).await.map(drop) })),
        ("session_create", Box::pin(async { c.session_create(&SessionRequest::new("x")).await.map(drop) })),
    ] {
        let started = Instant::now();
        let err = fut.await.unwrap_err();
        assert!(matches!(err, Error::Transport { .. }), "{name}: {err:?}");
        assert!(started.elapsed() < Duration::from_millis(200), "{name} was retried");
    }
}

#[tokio::test]
async fn bad_tls_files_are_config_errors() {
    let err = Client::new(Config::default().with_ca_cert("/nonexistent/ca.pem")).unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");

    let mut only_cert = Config::default();
    only_cert.client_cert = Some("/x/cert.pem".into());
    let err = Client::new(only_cert).unwrap_err();
    assert!(err.to_string().contains("CONSUL_CLIENT_KEY"), "{err}");
}
