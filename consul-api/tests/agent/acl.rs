use consul_api::{Client, Error, SessionRequest, TxnOp};

use crate::support::{Agent, AgentOptions};

const MASTER_TOKEN: &str = "5f1d0c7e-8d5b-4a63-9c1e-3f5f0f0d1a11";

/// A token on an agent without ACLs is simply ignored.
#[tokio::test]
async fn token_is_harmless_without_acls() {
    let agent = Agent::start().await;
    let c = Client::new(agent.config().with_token("anything")).unwrap();
    assert!(c.put("k", "v", None).await.unwrap());
    assert_eq!(c.get("k").await.unwrap().unwrap().value, b"v");
}

/// With ACLs on and default-deny, only requests carrying the token in
/// `X-Consul-Token` are allowed, which proves the header is sent on every
/// kind of request.
#[tokio::test]
async fn token_header_is_sent() {
    let agent = Agent::start_with(AgentOptions {
        hcl: Some(format!(
            r#"acl {{ enabled = true default_policy = "deny" tokens {{ master = "{MASTER_TOKEN}" }} }}"#
        )),
        token: Some(MASTER_TOKEN.into()),
        ..AgentOptions::default()
    })
    .await;
    let admin = Client::new(agent.config().with_token(MASTER_TOKEN)).unwrap();
    let anonymous = agent.client();
    let wrong = Client::new(agent.config().with_token("not-a-token")).unwrap();

    assert!(admin.put("acl/k", "v", None).await.unwrap());
    assert_eq!(admin.get("acl/k").await.unwrap().unwrap().value, b"v");
    assert_eq!(admin.keys("acl/", None).await.unwrap(), ["acl/k"]);
    admin.txn(vec![TxnOp::set("acl/t", "t")]).await.unwrap();
    let s = admin.session_create(&SessionRequest::new("acl")).await.unwrap();
    assert!(admin.session_renew(&s).await.unwrap().is_some());

    let err = anonymous.put("acl/k", "nope", None).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(403), "{err}");
    assert!(matches!(&err, Error::Http { operation: "kv put", key: Some(k), .. } if k == "acl/k"));
    let err = anonymous.get("acl/k").await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(403), "{err}");
    assert!(err.to_string().contains("kv get \"acl/k\""), "{err}");

    let err = wrong.put("acl/k", "nope", None).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(403), "{err}");
    assert!(err.to_string().to_lowercase().contains("acl"), "{err}");
    assert_eq!(admin.get("acl/k").await.unwrap().unwrap().value, b"v");
}
