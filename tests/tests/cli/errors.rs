//! Bad input gets a clear error and loses nothing.

use crate::support::Project;

#[test]
fn bad_config_is_reported_with_file_line_column_and_key() {
    let p = Project::new("count = 2\nvalue = 3\n");
    let r = p.run(&["preview", "--env", "dev"]).code(1);
    assert!(
        r.stderr.contains("config/dev.toml:2:9: invalid type: integer `3`, expected a string (at key `value`)"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("2 | value = 3"), "{}", r.stderr);

    p.config("count = 2\nvalue = \"v\"\ncuont = 3\n");
    let r = p.run(&["deploy", "--env", "dev", "--yes"]).code(1);
    assert!(r.stderr.contains("config/dev.toml:3:1: unknown field `cuont`"), "{}", r.stderr);

    p.config("count = 2\n");
    let r = p.run(&["render", "--env", "dev"]).code(1);
    assert!(r.stderr.contains("missing field `value`"), "{}", r.stderr);
    assert!(!p.state_dir().exists(), "nothing was written");
}

#[test]
fn an_unknown_environment_lists_the_known_ones() {
    let p = Project::new("value = \"v\"\n");
    let r = p.run(&["preview", "--env", "prod"]).code(1);
    assert!(r.stderr.contains("no config for environment `prod`"), "{}", r.stderr);
    assert!(r.stderr.contains("environments here: dev"), "{}", r.stderr);
}

#[test]
fn corrupt_state_is_reported_and_never_overwritten() {
    let p = Project::new("count = 2\nvalue = \"v\"\n");
    p.deploy().ok();
    let checkpoint = p.state_dir().join("state.json");
    let mut bytes = std::fs::read(&checkpoint).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&checkpoint, &bytes).unwrap();
    let journal_before = std::fs::read(p.state_dir().join("journal.jsonl")).unwrap();

    p.config("count = 3\nvalue = \"v\"\n");
    for args in
        [&["deploy", "--env", "dev", "--yes"][..], &["preview", "--env", "dev"], &["destroy", "--env", "dev", "--yes"]]
    {
        let r = p.run(args).code(1);
        assert!(r.stderr.contains("state.json is corrupt"), "{}", r.stderr);
        assert!(r.stderr.contains("left untouched"), "{}", r.stderr);
    }
    assert_eq!(std::fs::read(&checkpoint).unwrap(), bytes);
    assert_eq!(std::fs::read(p.state_dir().join("journal.jsonl")).unwrap(), journal_before);
    assert_eq!(p.things().len(), 2, "nothing was created or deleted");
}

#[test]
fn a_corrupt_journal_line_is_reported_with_its_line() {
    let p = Project::new("count = 1\nvalue = \"v\"\n");
    p.deploy().ok();
    let journal = p.state_dir().join("journal.jsonl");
    let mut text = std::fs::read_to_string(&journal).unwrap();
    text.push_str("{not json}\n[]\n");
    std::fs::write(&journal, &text).unwrap();
    let r = p.run(&["deploy", "--env", "dev", "--yes"]).code(1);
    assert!(r.stderr.contains("journal.jsonl is corrupt at line 2"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&journal).unwrap(), text);
}

#[test]
fn a_newer_state_schema_is_refused() {
    let p = Project::new("value = \"v\"\n");
    std::fs::create_dir_all(p.state_dir()).unwrap();
    let newer = r#"{"generation": 3, "state": {"version": 7, "stack": "test-dev"}}"#;
    std::fs::write(p.state_dir().join("state.json"), newer).unwrap();
    let r = p.run(&["deploy", "--env", "dev", "--yes"]).code(1);
    assert!(r.stderr.contains("schema version 7, newer than this cairn's 1"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(p.state_dir().join("state.json")).unwrap(), newer);
}

#[test]
fn without_a_terminal_deploy_needs_yes() {
    let p = Project::new("count = 1\nvalue = \"v\"\n");
    let r = p.run(&["deploy", "--env", "dev"]).code(1);
    assert!(r.stderr.contains("pass --yes"), "{}", r.stderr);
    assert!(p.things().is_empty());
}

#[test]
fn bad_flags_are_explained() {
    // A usage error exits 64, never 2: `preview --detailed-exitcode` says "changes" with 2.
    let p = Project::new("value = \"v\"\n");
    let r = p.run(&["deploy", "--env", "dev", "--parallel", "0"]).code(64);
    assert!(r.stderr.contains("not a number of steps from 1 to 1024"), "{}", r.stderr);
    let r = p.run(&["deploy", "--env", "dev", "--lock-timeout", "soon"]).code(64);
    assert!(r.stderr.contains("is not a duration"), "{}", r.stderr);
    let r = p.run(&["preview", "--env", "dev", "--detailed-exitcode", "--formt", "json"]).code(64);
    assert!(r.stderr.contains("unexpected argument '--formt'"), "{}", r.stderr);
    p.run(&["prevue", "--env", "dev"]).code(64);
    p.run(&["preview"]).code(64);
    let r = p.run(&["--help"]).ok();
    assert!(r.stdout.contains("64 the command line is wrong"), "{}", r.stdout);
    p.run(&["--version"]).ok();
    let r = p.run(&["preview", "--env", "dev", "--state", "s3://bucket"]).code(1);
    assert!(r.stderr.contains("state backend `s3://` is not supported"), "{}", r.stderr);
}
