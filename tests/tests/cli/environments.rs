//! Environments own their state: `[state] backend` in `<env>.toml`, `--state` over it, and
//! no environment but dev without one. Secrets in config come from a source, never plain.

use crate::support::Project;

#[test]
fn an_environment_other_than_dev_without_a_backend_is_refused_before_anything_is_read() {
    let p = Project::new("count = 1\nvalue = \"v\"\n");
    std::fs::copy(p.path().join("config/dev.toml"), p.path().join("config/prod.toml")).unwrap();
    for args in [
        &["deploy", "--env", "prod", "--yes"][..],
        &["preview", "--env", "prod"],
        &["destroy", "--env", "prod", "--yes"],
        &["outputs", "--env", "prod"],
        &["state", "list", "--env", "prod"],
        &["refresh", "--env", "prod", "--yes"],
    ] {
        let r = p.run(args).code(1);
        assert!(r.stderr.contains("environment `prod` names no state backend"), "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains("[state]") && r.stderr.contains("config/prod.toml"), "{}", r.stderr);
    }
    assert!(!p.path().join(".cairn").exists(), "no state was made");
    assert!(p.things().is_empty(), "nothing was created");
}

#[test]
fn the_backend_comes_from_the_environment_and_the_command_line_overrides_it() {
    let p = Project::new("count = 1\nvalue = \"v\"\n");
    let prod = "count = 2\nvalue = \"v\"\n\n[state]\nbackend = \"shared-state\"\n";
    std::fs::write(p.path().join("config/prod.toml"), prod).unwrap();
    p.run(&["deploy", "--env", "prod", "--yes"]).ok();
    assert!(p.path().join("shared-state/test-prod/state.json").exists());
    assert!(!p.path().join(".cairn").exists());
    let r = p.run(&["state", "list", "--env", "prod"]).ok();
    assert_eq!(r.stdout.lines().count(), 2, "{}", r.stdout);
    // --state points elsewhere: an empty state there.
    let r = p.run(&["state", "list", "--env", "prod", "--state", "file://elsewhere"]).ok();
    assert_eq!(r.stdout, "");
    // A wrong [state] table is an error naming it.
    std::fs::write(p.path().join("config/prod.toml"), "count = 2\nvalue = \"v\"\n[state]\nbakend = \"x\"\n").unwrap();
    let r = p.run(&["preview", "--env", "prod"]).code(1);
    assert!(r.stderr.contains("config/prod.toml:4:1: unknown field `bakend`"), "{}", r.stderr);
    // dev needs nothing.
    p.deploy().ok();
    assert!(p.path().join(".cairn/test-dev/state.json").exists());
}

const SECRET: &str = "hunter2-from-the-config";

#[test]
fn a_secret_in_config_comes_from_the_environment_a_file_or_an_encrypted_value_never_plain_text() {
    let mut p = Project::new(&format!("value = \"v\"\nkeyring = \"{SECRET}\"\n"));
    p.set_env("CAIRN_PASSPHRASE", "pass-1");
    let r = p.run(&["preview", "--env", "dev"]).code(1);
    assert!(r.stderr.contains("config/dev.toml:2:11: a secret is never written in plain text"), "{}", r.stderr);
    assert!(r.stderr.contains("cairn config set --secret"), "{}", r.stderr);
    assert!(!r.stderr.contains(SECRET), "the error does not repeat it: {}", r.stderr);

    // From the environment; render needs neither the variable nor the passphrase.
    p.config("value = \"v\"\nkeyring = { env = \"KEYRING\" }\n");
    let r = p.run(&["render", "--env", "dev"]).ok();
    assert!(r.stdout.contains("[secret]"), "{}", r.stdout);
    let r = p.deploy().code(1);
    assert!(r.stderr.contains("environment variable `KEYRING` that holds this secret is not set"), "{}", r.stderr);
    p.set_env("KEYRING", SECRET);
    p.deploy().ok();
    assert!(world_holds(&p, SECRET));

    // Encrypted in the file by `config set --secret`, read from standard input.
    p.config("# the keyring\nvalue = \"v\" # every thing\n");
    let r = set_secret(&p, "keyring", "rotated-secret");
    assert_eq!(r.status.code(), Some(0), "{}", String::from_utf8_lossy(&r.stderr));
    let text = std::fs::read_to_string(p.path().join("config/dev.toml")).unwrap();
    assert!(text.contains("# the keyring") && text.contains("# every thing"), "comments kept: {text}");
    assert!(text.contains("keyring = { ciphertext = \"cairn1:") && !text.contains("rotated-secret"), "{text}");
    let r = p.deploy().ok();
    assert!(!r.stdout.contains("rotated-secret"));
    assert!(world_holds(&p, "rotated-secret"));
    // A plain `config set` of a secret key is refused; a plain key is written as TOML.
    let r = p.run(&["config", "set", "--env", "dev", "keyring", "oops"]).code(1);
    assert!(r.stderr.contains("holds a secret; set it with --secret"), "{}", r.stderr);
    p.run(&["config", "set", "--env", "dev", "count", "2"]).ok();
    assert!(std::fs::read_to_string(p.path().join("config/dev.toml")).unwrap().contains("count = 2"));
    // A value the program would not accept leaves the file alone.
    let before = std::fs::read_to_string(p.path().join("config/dev.toml")).unwrap();
    let r = p.run(&["config", "set", "--env", "dev", "count", "many"]).code(1);
    assert!(r.stderr.contains("would no longer fit the program's config"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(p.path().join("config/dev.toml")).unwrap(), before);
    // A second secret with another passphrase is refused: one key per file.
    p.set_env("CAIRN_PASSPHRASE", "pass-2");
    let r = set_secret(&p, "other", "x");
    assert!(String::from_utf8_lossy(&r.stderr).contains("does not open the secrets already in"));
    p.set_env("CAIRN_PASSPHRASE", "pass-1");
    p.run(&["deploy", "--env", "dev", "--yes"]).ok();
}

fn world_holds(p: &Project, text: &str) -> bool {
    std::fs::read_dir(p.world())
        .unwrap()
        .flatten()
        .any(|e| std::fs::read_to_string(e.path()).unwrap_or_default().contains(text))
}

/// `config set --secret <key>` with the value on standard input.
fn set_secret(p: &Project, key: &str, value: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = p
        .command(&["config", "set", "--env", "dev", "--secret", key])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{value}\n").as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}
