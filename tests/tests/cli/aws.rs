//! AWS through the command line: the `aws-stack` program against a real moto server, reached
//! through the standard AWS environment variables.

use cairn_tests::moto::Moto;
use serde_json::Value;

use crate::support::Project;

const CONFIG: &str = "regions = [\"us-east-1\", \"eu-west-1\"]\ntopics = 1\nlog_groups = 1\nretention_days = 14\n";

fn project(moto: &Moto, config: &str) -> Project {
    let mut p = Project::of(env!("CARGO_BIN_EXE_aws-stack"), "aws-dev", config);
    // Nothing from the environment running the tests.
    for k in ["AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"] {
        p.remove_env(k);
    }
    for (k, v) in [
        ("AWS_ENDPOINT_URL", moto.endpoint().as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ] {
        p.set_env(k, v);
    }
    p
}

fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

fn retention(moto: &Moto, region: &str, name: &str) -> Option<i32> {
    let out = block(moto.logs(region).describe_log_groups().log_group_name_prefix(name).send()).unwrap();
    out.log_groups().iter().find(|g| g.log_group_name() == Some(name)).and_then(|g| g.retention_in_days())
}

fn topics(moto: &Moto, region: &str) -> Vec<String> {
    let out = block(moto.sns(region).list_topics().send()).unwrap();
    out.topics().iter().filter_map(|t| t.topic_arn().map(str::to_string)).collect()
}

#[test]
fn refresh_shows_drift_out_of_band_and_deploy_restores_it() {
    let moto = Moto::start();
    let p = project(&moto, CONFIG);
    p.deploy().ok();
    assert_eq!(p.preview_json().1, 0, "a second deploy has nothing to do");
    assert_eq!(retention(&moto, "eu-west-1", "/aws-dev/g0"), Some(14));
    assert_eq!(topics(&moto, "us-east-1").len(), 1);
    assert_eq!(p.run(&["refresh", "--env", "dev", "--dry-run"]).code, 0, "no drift yet");

    // Out of band: a retention changed, a topic deleted.
    block(moto.logs("eu-west-1").put_retention_policy().log_group_name("/aws-dev/g0").retention_in_days(30).send())
        .unwrap();
    let topic = topics(&moto, "us-east-1").remove(0);
    block(moto.sns("us-east-1").delete_topic().topic_arn(&topic).send()).unwrap();

    let dry = p.run(&["refresh", "--env", "dev", "--dry-run"]).code(2);
    assert!(dry.stdout.contains("aws-dev/eu-west-1/logs/aws:logs:LogGroup/g0"), "{}", dry.stdout);
    assert!(dry.stdout.contains("retention_days") && dry.stdout.contains("30"), "{}", dry.stdout);
    assert!(dry.stdout.contains("aws-dev/us-east-1/topics/aws:sns:Topic/t0"), "{}", dry.stdout);
    p.run(&["refresh", "--env", "dev", "--yes"]).ok();

    // The plan puts back what the program declares: the retention, and the topic.
    let (plan, code) = p.preview_json();
    assert_eq!(code, 2);
    let mut ops: Vec<(String, String)> = plan["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|s| s["op"] != "same")
        .map(|s| (s["op"].as_str().unwrap().to_string(), s["urn"].as_str().unwrap().to_string()))
        .collect();
    ops.sort();
    assert_eq!(
        ops,
        [
            ("create".to_string(), "aws-dev/us-east-1/topics/aws:sns:Topic/t0".to_string()),
            ("update".to_string(), "aws-dev/eu-west-1/logs/aws:logs:LogGroup/g0".to_string()),
        ],
        "{plan}"
    );
    p.deploy().ok();
    assert_eq!(retention(&moto, "eu-west-1", "/aws-dev/g0"), Some(14));
    assert_eq!(topics(&moto, "us-east-1").len(), 1);
    assert_eq!(p.run(&["refresh", "--env", "dev", "--dry-run"]).code, 0);
    assert_eq!(p.preview_json().1, 0);
}

#[test]
fn orphans_are_the_tagged_resources_state_does_not_know() {
    let moto = Moto::start();
    let p = project(&moto, CONFIG);
    p.deploy().ok();
    let none = p.run(&["state", "orphans", "--env", "dev"]).ok();
    assert!(none.stdout.is_empty() && none.stderr.contains("no orphans"), "{}", none.stderr);

    // Forget one topic: it is still in AWS, tagged for this stack.
    let urn = "aws-dev/eu-west-1/topics/aws:sns:Topic/t0";
    p.run(&["state", "rm", "--env", "dev", urn, "--yes"]).ok();
    // An untagged topic, and one of another stack, are not this stack's orphans.
    block(moto.sns("eu-west-1").create_topic().name("untagged").send()).unwrap();
    let other = aws_sdk_sns::types::Tag::builder().key("cairn:stack").value("other-dev").build().unwrap();
    block(moto.sns("eu-west-1").create_topic().name("others").tags(other).send()).unwrap();

    let found = p.run(&["state", "orphans", "--env", "dev"]).code(2);
    assert_eq!(
        found.stdout.trim(),
        format!("arn:aws:sns:eu-west-1:123456789012:aws-dev-t0  {urn}"),
        "{}",
        found.stderr
    );
    assert!(found.stderr.contains("1 resource(s) tagged for aws-dev"), "{}", found.stderr);
    let json: Value =
        serde_json::from_str(&p.run(&["state", "orphans", "--env", "dev", "--json"]).code(2).stdout).expect("JSON");
    assert_eq!(json, serde_json::json!([{"id": "arn:aws:sns:eu-west-1:123456789012:aws-dev-t0", "urn": urn}]));

    // A region the state no longer uses is searched when named.
    let east = "aws-dev/us-east-1/topics/aws:sns:Topic/t0";
    let east_logs = "aws-dev/us-east-1/logs/aws:logs:LogGroup/g0";
    p.run(&["state", "rm", "--env", "dev", east, "--yes"]).ok();
    p.run(&["state", "rm", "--env", "dev", east_logs, "--yes"]).ok();
    let scoped = p.run(&["state", "orphans", "--env", "dev", "--json", "--scope", "us-east-1"]).code(2);
    let ids: Vec<String> = serde_json::from_str::<Vec<Value>>(&scoped.stdout)
        .expect("JSON")
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(ids.iter().any(|id| id.contains(":log-group:/aws-dev/g0")), "{ids:?}");
}

#[test]
fn credentials_come_from_a_profile_with_credential_process() {
    let moto = Moto::start();
    let mut p = project(&moto, "regions = [\"eu-west-1\"]\ntopics = 1\n");
    // A profile whose credentials come from a program, as SSO helpers and vaults provide them.
    let marker = p.path().join("credential-process-ran");
    let script = p.path().join("credentials.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ntouch '{}'\necho '{{\"Version\": 1, \"AccessKeyId\": \"profile-key\", \"SecretAccessKey\": \"profile-secret\"}}'\n",
            marker.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = p.path().join("aws-config");
    std::fs::write(
        &config,
        format!("[profile deployer]\nregion = eu-west-1\ncredential_process = {}\n", script.display()),
    )
    .unwrap();
    p.set_env("AWS_CONFIG_FILE", config.to_str().unwrap());
    p.set_env("AWS_PROFILE", "deployer");
    for k in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"] {
        p.remove_env(k);
    }
    p.deploy().ok();
    assert!(marker.exists(), "the profile's credential_process was not run");
    assert_eq!(topics(&moto, "eu-west-1").len(), 1);
}
