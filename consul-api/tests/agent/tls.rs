use std::path::Path;
use std::process::Command;

use consul_api::{Client, Config, Error};

use crate::support::{consul_bin, Agent, AgentOptions};

/// Generates a CA, a server and a client certificate with `consul tls`.
fn make_certs(dir: &Path) {
    for args in [
        &["tls", "ca", "create"][..],
        &["tls", "cert", "create", "-server", "-dc", "dc1"],
        &["tls", "cert", "create", "-client", "-dc", "dc1"],
    ] {
        let out = Command::new(consul_bin()).args(args).current_dir(dir).output().unwrap();
        assert!(out.status.success(), "consul {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// HTTPS with a private CA and mutual TLS, against a real agent.
#[tokio::test]
async fn https_with_ca_and_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let file = |name: &str| dir.path().join(name);
    let (ca, cert, key) =
        (file("consul-agent-ca.pem"), file("dc1-client-consul-0.pem"), file("dc1-client-consul-0-key.pem"));
    let hcl = format!(
        r#"ca_file = "{}" cert_file = "{}" key_file = "{}" verify_incoming_https = true ports {{ https = {{https_port}} }}"#,
        ca.display(),
        file("dc1-server-consul-0.pem").display(),
        file("dc1-server-consul-0-key.pem").display(),
    );
    let agent = Agent::start_with(AgentOptions { hcl: Some(hcl), https: true, token: None }).await;
    let port = agent.https_port.unwrap();

    // Full configuration from the standard environment variables.
    let env = |name: &str| match name {
        "CONSUL_HTTP_ADDR" => Some(format!("https://localhost:{port}")),
        "CONSUL_CACERT" => Some(ca.display().to_string()),
        "CONSUL_CLIENT_CERT" => Some(cert.display().to_string()),
        "CONSUL_CLIENT_KEY" => Some(key.display().to_string()),
        _ => None,
    };
    let c = Client::new(Config::from_lookup(env).unwrap()).unwrap();
    assert!(c.put("tls/k", "secure", None).await.unwrap());
    assert_eq!(c.get("tls/k").await.unwrap().unwrap().value, b"secure");

    // IP address in the certificate's SANs.
    let by_ip =
        Config::new(&format!("https://127.0.0.1:{port}")).unwrap().with_ca_cert(&ca).with_client_identity(&cert, &key);
    assert!(Client::new(by_ip).unwrap().get("tls/k").await.unwrap().is_some());

    // Unknown CA: the server certificate is rejected...
    let no_ca = Config::new(&format!("https://localhost:{port}")).unwrap().with_client_identity(&cert, &key);
    let err = Client::new(no_ca.clone()).unwrap().get("tls/k").await.unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    // ...unless verification is turned off.
    let insecure = Client::new(no_ca.with_verify_tls(false)).unwrap();
    assert!(insecure.get("tls/k").await.unwrap().is_some());

    // No client certificate: the agent refuses the connection.
    let no_cert = Config::new(&format!("https://localhost:{port}")).unwrap().with_ca_cert(&ca);
    let err = Client::new(no_cert).unwrap().get("tls/k").await.unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
}
