//! Render, preview formats, graph, outputs and state commands.

use crate::support::Project;

#[test]
fn render_is_byte_identical_every_time() {
    let p = Project::new("count = 3\nchain = 3\nvalue = \"v\"\n");
    p.run(&["render", "--env", "dev", "--out", "r1"]).ok();
    p.run(&["render", "--env", "dev", "--out", "r2"]).ok();
    let a = std::fs::read(p.path().join("r1/stack.json")).unwrap();
    let b = std::fs::read(p.path().join("r2/stack.json")).unwrap();
    assert_eq!(a, b);
    let text = String::from_utf8(a).unwrap();
    assert!(text.contains("${test-dev/chain/test:Thing/c1#token}"), "unknowns are placeholders: {text}");
    assert!(!text.contains(&p.path().display().to_string()), "no absolute paths");
    // Stdout matches the file.
    let r = p.run(&["render", "--env", "dev"]).ok();
    assert_eq!(r.stdout, text);
}

#[test]
fn preview_formats_and_detailed_exit_codes() {
    let p = Project::new("count = 1\nchain = 2\nvalue = \"v\"\n");
    let r = p.run(&["preview", "--env", "dev", "--detailed-exitcode"]).code(2);
    assert!(r.stdout.contains("chain/"), "a tree by component: {}", r.stdout);
    assert!(r.stdout.contains("+ test:Thing/c0  create"), "{}", r.stdout);
    assert!(!r.stdout.contains('\x1b'), "no color without a terminal");
    let r = p.run(&["preview", "--env", "dev", "--format", "markdown"]).ok();
    assert!(r.stdout.starts_with("### cairn preview: `test-dev`"), "{}", r.stdout);
    assert!(r.stdout.contains("| `+` | `chain/test:Thing/c1` | `test:Thing` | create |"), "{}", r.stdout);
    let (plan, code) = p.preview_json();
    assert_eq!(code, 2);
    assert_eq!(plan["steps"].as_array().unwrap().len(), 3);
    p.deploy().ok();
    p.run(&["preview", "--env", "dev", "--detailed-exitcode"]).code(0);
}

#[test]
fn graph_as_dot_and_mermaid() {
    let p = Project::new("chain = 2\nvalue = \"v\"\n");
    let r = p.run(&["graph", "--env", "dev"]).ok();
    assert!(r.stdout.contains("\"test-dev/chain/test:Thing/c1\" -> \"test-dev/chain/test:Thing/c0\";"), "{}", r.stdout);
    let r = p.run(&["graph", "--env", "dev", "--format", "mermaid"]).ok();
    assert!(r.stdout.starts_with("flowchart LR\n"), "{}", r.stdout);
    assert!(r.stdout.contains("r1 --> r0"), "{}", r.stdout);
}

#[test]
fn outputs_show_what_was_deployed() {
    let p = Project::new("count = 2\nchain = 1\nvalue = \"v\"\n");
    p.deploy().ok();
    let r = p.run(&["outputs", "--env", "dev", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["count"], 2);
    assert!(v["last_token"].as_str().unwrap().starts_with("tok-"));
}

#[test]
fn state_list_show_rm_export_import() {
    let p = Project::new("count = 2\nvalue = \"v\"\n");
    p.deploy().ok();
    let r = p.run(&["state", "list", "--env", "dev"]).ok();
    assert_eq!(r.stdout.lines().count(), 2, "{}", r.stdout);
    assert!(r.stdout.contains("test-dev/fleet/test:Thing/t0  test:Thing"), "{}", r.stdout);
    let r = p.run(&["state", "show", "--env", "dev", "test-dev/fleet/test:Thing/t1"]).ok();
    assert!(r.stdout.contains("\"value\": \"v\""), "{}", r.stdout);
    let r = p.run(&["state", "show", "--env", "dev", "nope"]).code(1);
    assert!(r.stderr.contains("`nope` is not in the state of test-dev"), "{}", r.stderr);

    p.run(&["state", "export", "--env", "dev", "--out", "backup.json"]).ok();
    p.run(&["state", "rm", "--env", "dev", "test-dev/fleet/test:Thing/t1", "--yes"]).ok();
    assert_eq!(p.things().len(), 2, "the real resource stays");
    let (plan, _) = p.preview_json();
    assert!(plan["steps"].as_array().unwrap().iter().any(|s| s["op"] == "create"), "{plan}");

    p.run(&["state", "import", "--env", "dev", "backup.json", "--yes"]).ok();
    assert_eq!(p.preview_json().1, 0);
    p.assert_world_matches_state();

    std::fs::write(p.path().join("other.json"), r#"{"version": 1, "stack": "other-dev"}"#).unwrap();
    let r = p.run(&["state", "import", "--env", "dev", "other.json", "--yes"]).code(1);
    assert!(r.stderr.contains("is the state of stack `other-dev`, not `test-dev`"), "{}", r.stderr);
}

#[test]
fn help_describes_every_command() {
    let p = Project::new("value = \"v\"\n");
    let r = p.run(&["--help"]).ok();
    for cmd in ["render", "preview", "deploy", "destroy", "refresh", "outputs", "state", "unlock", "graph"] {
        assert!(r.stdout.contains(cmd), "{cmd} missing from --help:\n{}", r.stdout);
    }
}

/// Runs `command` on a pseudo-terminal (util-linux `script`), typing `input`.
fn on_a_terminal(p: &Project, args: &[&str], input: &str) -> crate::support::Run {
    let program = env!("CARGO_BIN_EXE_test-stack");
    let line = std::iter::once(program).chain(args.iter().copied()).collect::<Vec<_>>().join(" ");
    let mut c = p.command(&[]);
    let mut script = std::process::Command::new("script");
    script.args(["-qec", &line, "/dev/null"]).current_dir(p.path()).stdin(std::process::Stdio::piped());
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    let _ = &mut c;
    let mut child =
        script.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("script");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap().into()
}

#[test]
fn on_a_terminal_deploy_shows_the_plan_and_asks() {
    let p = Project::new("count = 2\nvalue = \"v\"\n");
    let r = on_a_terminal(&p, &["deploy", "--env", "dev"], "n\n");
    assert!(r.stdout.contains("2 to create"), "{}", r.stdout);
    assert!(r.stdout.contains("Do you want to deploy these changes? [y/N]"), "{}", r.stdout);
    assert!(r.stdout.contains("cancelled: nothing was changed"), "{}", r.stdout);
    assert!(p.things().is_empty());

    let r = on_a_terminal(&p, &["deploy", "--env", "dev"], "y\n");
    assert!(r.stdout.contains("done: 2 changes applied"), "{}", r.stdout);
    assert_eq!(p.things().len(), 2);

    let r = on_a_terminal(&p, &["destroy", "--env", "dev"], "y\n");
    assert!(r.stdout.contains("Do you want to destroy every resource of test-dev? [y/N]"), "{}", r.stdout);
    assert!(p.things().is_empty());
}
