//! Secrets never appear in output or in plaintext state.

use crate::support::Project;

const SECRET: &str = "correct-horse-battery-staple";

fn project() -> Project {
    let mut p = Project::new("count = 1\nvalue = \"v\"\nsecret = true\n");
    p.set_env("CAIRN_TEST_SECRET", SECRET);
    p
}

fn assert_no_secret_in(dir: &std::path::Path) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.file_type().unwrap().is_file() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            assert!(!text.contains(SECRET), "secret in {}", entry.path().display());
        }
    }
}

#[test]
fn secrets_are_redacted_in_render_preview_and_outputs_and_encrypted_in_state() {
    let mut p = project();
    let r = p.run(&["render", "--env", "dev"]).ok();
    assert!(!r.stdout.contains(SECRET) && r.stdout.contains("[secret]"), "{}", r.stdout);

    let r = p.deploy().code(1);
    assert!(r.stderr.contains("holds secrets and no passphrase was given"), "{}", r.stderr);
    assert!(p.things().is_empty(), "nothing was created");

    p.set_env("CAIRN_PASSPHRASE", "pass-1");
    let r = p.run(&["preview", "--env", "dev", "--format", "json"]).ok();
    assert!(!r.stdout.contains(SECRET), "{}", r.stdout);
    let r = p.deploy().ok();
    assert!(!r.stdout.contains(SECRET) && !r.stderr.contains(SECRET));
    assert_no_secret_in(&p.state_dir());
    let state = p.state();
    assert!(state.to_string().contains("$ciphertext"));

    let r = p.run(&["outputs", "--env", "dev"]).ok();
    assert!(r.stdout.contains("password = [secret]"), "{}", r.stdout);
    let r = p.run(&["outputs", "--env", "dev", "--json", "--show-secrets"]).ok();
    assert!(r.stdout.contains(SECRET), "{}", r.stdout);
    let r = p.run(&["state", "show", "--env", "dev", "test-dev/test:Thing/vault"]).ok();
    assert!(!r.stdout.contains(SECRET) && r.stdout.contains("[secret]"), "{}", r.stdout);

    // The provider got the real value.
    let world = std::fs::read_dir(p.world())
        .unwrap()
        .flatten()
        .any(|e| std::fs::read_to_string(e.path()).unwrap_or_default().contains(SECRET));
    assert!(world);
    assert_eq!(p.preview_json().1, 0, "a secret compares by value");
}

#[test]
fn a_wrong_passphrase_is_refused_and_nothing_is_written() {
    let mut p = project();
    p.set_env("CAIRN_PASSPHRASE", "pass-1");
    p.deploy().ok();
    let before = std::fs::read(p.state_dir().join("state.json")).unwrap();
    p.set_env("CAIRN_PASSPHRASE", "pass-2");
    p.config("count = 2\nvalue = \"v\"\nsecret = true\n");
    let r = p.deploy().code(1);
    assert!(r.stderr.contains("passphrase does not match"), "{}", r.stderr);
    assert_eq!(std::fs::read(p.state_dir().join("state.json")).unwrap(), before);
    assert_eq!(p.things().len(), 2);

    // A passphrase file works too.
    let file = p.path().join("pass.txt");
    std::fs::write(&file, "pass-1\n").unwrap();
    p.set_env("CAIRN_PASSPHRASE", "");
    p.set_env("CAIRN_PASSPHRASE_FILE", file.to_str().unwrap());
    p.deploy().ok();
    assert_eq!(p.things().len(), 3);
}

#[test]
fn a_provider_error_that_quotes_a_secret_shows_it_redacted_everywhere() {
    let mut p = project();
    p.set_env("CAIRN_PASSPHRASE", "pass-1");
    p.set_env("CAIRN_TEST_FAIL", "vault");
    p.set_env("RUST_LOG", "cairn=debug");
    let r = p.deploy().code(1);
    assert!(r.stdout.contains("injected failure in create of vault"), "{}", r.stdout);
    assert!(r.stdout.contains("[secret]"), "{}", r.stdout);
    assert!(!r.stdout.contains(SECRET) && !r.stderr.contains(SECRET), "{}\n{}", r.stdout, r.stderr);
    // The failed create's pending record stays, encrypted: its identity holds the value.
    let state = p.state();
    let pending = &state["pending"]["test-dev/test:Thing/vault"];
    assert!(pending["identity"].to_string().contains("$ciphertext"), "{pending}");
    assert_no_secret_in(&p.state_dir());
}

#[test]
fn secrecy_is_per_output_so_a_secret_input_hides_only_what_holds_it() {
    let mut p = project();
    p.set_env("CAIRN_PASSPHRASE", "pass-1");
    p.deploy().ok();
    let r = p.run(&["state", "show", "--env", "dev", "test-dev/test:Thing/vault"]).ok();
    // The value is secret; the token (made from the id) and the length are not.
    assert!(r.stdout.contains("\"value\": \"[secret]\""), "{}", r.stdout);
    assert!(r.stdout.contains("\"token\": \"tok-"), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("\"length\": {}", SECRET.len())), "{}", r.stdout);
}

#[test]
fn a_kill_during_a_secret_create_leaves_no_plaintext_behind() {
    let mut p = project();
    p.set_env("CAIRN_PASSPHRASE", "pass-1");
    p.set_env("CAIRN_TEST_LATENCY_MS", "3000");
    let mut child = p.spawn(&["deploy", "--env", "dev", "--yes"]);
    crate::support::wait_until(std::time::Duration::from_secs(30), "the pending record of the secret's create", || {
        std::fs::read_to_string(p.state_dir().join("journal.jsonl")).is_ok_and(|j| j.contains("test:Thing/vault"))
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_no_secret_in(&p.state_dir());
    p.set_env("CAIRN_TEST_LATENCY_MS", "0");
    p.deploy().ok();
    p.assert_world_matches_state();
}
