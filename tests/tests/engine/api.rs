//! The program API that modules build on: computed outputs (`map`, `all`, `json`),
//! components as dependencies with outputs of their own, provider configurations as
//! values, and `local:Command`.

use std::sync::{Arc, Mutex};

use cairn::provider::{Context, Created, Observed, Provider, ProviderError, Registry};
use cairn::providers::command::{Command, CommandProvider};
use cairn::{Input, Options, Output, ProviderSettings, Resource, Secret, Stack};
use cairn_tests::Thing;
use serde::Serialize;
use serde_json::{json, Value};

use crate::{done, program, steps, World};

fn thing(value: impl Into<Input<String>>) -> Thing {
    Thing { key: None, value: value.into() }
}

/// The value `name` was given in the world (through state: the thing's recorded inputs).
async fn value_of(world: &World, name: &str) -> Value {
    let state = world.state("test-dev").await;
    let r = state.resources.values().find(|r| r.urn.name() == name).unwrap_or_else(|| panic!("no `{name}`"));
    cairn::value::reveal(&r.inputs["value"])
}

#[tokio::test]
async fn map_all_and_json_compute_values_from_outputs_at_plan_and_at_apply() {
    let world = World::new();
    let build = |suffix: &'static str| {
        program(move |s| {
            let a = s.add("a", thing("aaa"));
            let b = s.add("b", thing("bb"));
            let upper = a.token.map(|t: String| t.to_uppercase());
            s.add("mapped", thing(upper.map(move |t: String| format!("{t}{suffix}"))));
            let both = Output::all((&a.token, &b.length)).map(|(t, n): (String, u64)| format!("{t}/{n}"));
            s.add("joined", thing(both));
            let policy = cairn::json(&json!({"Resource": a.token, "Count": b.length, "Effect": "Allow"}));
            s.add("policy", thing(policy));
        })
    };
    let (_, outcome) = world.deploy(&build("!")).await;
    assert_eq!(done(&outcome).len(), 5);
    let token = world.state("test-dev").await.resources.values().find(|r| r.urn.name() == "a").unwrap().outputs
        ["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(value_of(&world, "mapped").await, json!(format!("{}!", token.to_uppercase())));
    assert_eq!(value_of(&world, "joined").await, json!(format!("{token}/2")));
    assert_eq!(
        value_of(&world, "policy").await,
        json!(format!(r#"{{"Count":2,"Effect":"Allow","Resource":"{token}"}}"#))
    );
    // Computed at plan time from the values in state: nothing to do.
    assert!(!world.preview(&build("!")).await.has_changes());
    // A different function result is an exact update.
    let plan = world.preview(&build("?")).await;
    assert_eq!(steps(&plan), ["update mapped"]);
    assert_eq!(plan.steps[0].diffs[0].new, Some(json!(format!("{}?", token.to_uppercase()))));
    // Rendered: placeholders, never a function id.
    let doc = cairn::render::document(&build("!"));
    assert!(doc.contains("\"value\": \"${map(map(test-dev/test:Thing/a#token))}\""), "{doc}");
    assert!(
        doc.contains("\"value\": \"${map(all(test-dev/test:Thing/a#token, test-dev/test:Thing/b#length))}\""),
        "{doc}"
    );
    assert!(
        doc.contains(r#""value": "{\"Count\":\"${test-dev/test:Thing/b#length}\",\"Effect\":\"Allow\",\"Resource\":\"${test-dev/test:Thing/a#token}\"}""#),
        "{doc}"
    );
    assert_eq!(doc, cairn::render::document(&build("!")), "render is deterministic");
}

#[tokio::test]
async fn a_function_that_fails_stops_the_plan_naming_the_resource() {
    let world = World::new();
    let build = || {
        program(|s| {
            let a = s.add("a", thing("aaa"));
            // The program says `token` is a number: wrong, and found when the value is known.
            let wrong: Output<u64> = a.handle.output("token");
            s.add("b", thing(wrong.map(|n: u64| (n + 1).to_string())));
        })
    };
    let (_, outcome) = world.deploy(&build()).await;
    assert_eq!(outcome.failed.len(), 1);
    assert!(outcome.failed[0].2.contains("`map` failed: its argument is not a `u64`"), "{outcome:?}");
    let state = world.state("test-dev").await;
    let e = cairn::plan::plan(&build(), &state).unwrap_err().to_string();
    assert!(e.starts_with("`test-dev/test:Thing/b`: a function of the program failed: `map` failed"), "{e}");
}

#[tokio::test]
async fn what_is_computed_from_a_secret_resource_but_holds_no_secret_stays_readable() {
    let world = World::new();
    let desired = program(|s| {
        let a = s.add("a", thing(Secret::new("hunter2".to_string())));
        let out: Output<u64> = a.length.clone();
        s.add("b", thing(out.map(|n: u64| format!("n={n}"))));
        let masked = cairn::interpolate([cairn::Part::from("x-"), cairn::Part::from(&a.token)]);
        s.add("c", thing(masked));
    });
    let registry = world.registry();
    let engine = cairn::apply::Engine {
        registry,
        stack: "test-dev".into(),
        secrets: Some(Arc::new(cairn::secrets::SecretBox::create(&Secret::new("p".into())).0)),
        parallel: 2,
        events: Arc::new(|_| {}),
    };
    let backend = world.backend("test-dev");
    let session = cairn::state::StateBackend::lock(&backend, cairn::state::LockInfo::new("t"), None).await.unwrap();
    let plan = cairn::plan::plan(&desired, &cairn::state::StackState::empty("test-dev")).unwrap();
    let (_tx, cancel) = tokio::sync::watch::channel(false);
    let outcome =
        engine.apply(session.as_ref(), &plan, &desired, &cairn::state::StackState::empty("test-dev"), cancel).await;
    assert!(outcome.succeeded(), "{outcome:?}");
    session.release().await.unwrap();
    let state = world.state("test-dev").await;
    let record = |n: &str| state.resources.values().find(|r| r.urn.name() == n).unwrap().clone();
    // `length` of a secret value is not secret itself (it holds no secret text), so `b` is
    // plain; the token (made from the id) is not secret either.
    assert!(!record("b").inputs.to_string().contains("$ciphertext"), "{}", record("b").inputs);
    assert!(!record("c").inputs.to_string().contains("$ciphertext"));
    assert!(record("a").inputs.to_string().contains("$ciphertext"));
}

/// A module function: its components are named where it is called.
#[track_caller]
fn network(stack: &mut Stack, name: &str) -> cairn::Component<Output<String>> {
    stack.component(name, |s| {
        let vpc = s.add("vpc", thing("10.0.0.0/16"));
        s.add("subnet", thing(&vpc.token));
        s.output("vpc_token", &vpc.token);
        vpc.token.clone()
    })
}

#[tokio::test]
async fn components_are_dependencies_declare_outputs_and_are_named_once() {
    let desired = program(|s| {
        let net = network(s, "net");
        let _: &Output<String> = &net;
        s.add_with("app", thing("x"), Options::new().depends_on(&net));
    });
    let app = &desired.resources[&cairn::Urn::from("test-dev/test:Thing/app")];
    let deps: Vec<&str> = app.dependencies.iter().map(|u| u.as_str()).collect();
    assert_eq!(deps, ["test-dev/net/test:Thing/subnet", "test-dev/net/test:Thing/vpc"]);
    let doc = cairn::render::document(&desired);
    assert!(doc.contains("\"components\": {\n    \"net\": {\n      \"outputs\": {\n        \"vpc_token\": \"${test-dev/net/test:Thing/vpc#token}\""), "{doc}");
    let world = World::new();
    let (plan, outcome) = world.deploy(&desired).await;
    assert!(outcome.succeeded());
    let app_step = plan.steps.iter().find(|s| s.urn.name() == "app").unwrap();
    assert_eq!(app_step.after.len(), 2, "app waits for the whole component");

    // The same component twice: both call sites are named, through the module function.
    let mut stack = Stack::new("test", "dev");
    let first = line!() + 1;
    network(&mut stack, "net");
    let second = line!() + 1;
    network(&mut stack, "net");
    let e = stack.finish().unwrap_err().to_string();
    assert!(e.contains("duplicate component `net`"), "{e}");
    assert!(e.contains(&format!("api.rs:{first}:")) && e.contains(&format!("api.rs:{second}:")), "{e}");
}

/// Settings of the `test` package's provider configurations.
#[derive(Serialize)]
struct Zone {
    zone: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<String>,
}

impl ProviderSettings for Zone {
    const PACKAGE: &'static str = "test";
}

/// A resource whose `zone` comes from its provider configuration when unset.
#[derive(Serialize)]
struct Placed {
    #[serde(skip_serializing_if = "Option::is_none")]
    zone: Option<String>,
}

cairn::outputs! {
    struct PlacedOutputs {
        zone: String,
    }
}

impl Resource for Placed {
    const TYPE: &'static str = "test:Placed";
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["zone"];
    const PROVIDER_INPUTS: &'static [&'static str] = &["zone"];
    type Outputs = PlacedOutputs;
}

/// Records what each call was given: (urn name, inputs' zone, the settings' profile).
#[derive(Default, Clone)]
struct PlacedProvider {
    calls: Arc<Mutex<Vec<(String, Value, Value)>>>,
}

#[async_trait::async_trait]
impl Provider for PlacedProvider {
    fn type_token(&self) -> &'static str {
        Placed::TYPE
    }
    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        self.calls.lock().unwrap().push((
            ctx.urn.name().into(),
            inputs["zone"].clone(),
            ctx.settings["profile"].clone(),
        ));
        Ok(Created { id: format!("{}-{}", ctx.urn.name(), inputs["zone"]), outputs: json!({"zone": inputs["zone"]}) })
    }
    async fn read(&self, _: Context<'_>, id: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        Ok(Some(Observed { id: id.into(), inputs: inputs.clone(), outputs: json!({"zone": inputs["zone"]}) }))
    }
    async fn update(&self, _: Context<'_>, _: &str, _: &Value, new: &Value) -> Result<Value, ProviderError> {
        Ok(json!({"zone": new["zone"]}))
    }
    async fn delete(&self, ctx: Context<'_>, _: &str, inputs: &Value) -> Result<(), ProviderError> {
        self.calls.lock().unwrap().push((
            format!("delete {}", ctx.urn.name()),
            inputs["zone"].clone(),
            ctx.settings["profile"].clone(),
        ));
        Ok(())
    }
    async fn find(&self, _: Context<'_>, _: &Value) -> Result<Option<Observed>, ProviderError> {
        Ok(None)
    }
}

fn placed(profile: &'static str, west_zone: &'static str) -> cairn::Desired {
    program(move |s| {
        let east = s.provider("east", Zone { zone: "east-1".into(), profile: Some(profile.into()) });
        let west = s.provider("west", Zone { zone: west_zone.into(), profile: None });
        s.use_provider(&east);
        s.add("default", Placed { zone: None });
        s.add("explicit", Placed { zone: Some("north-1".into()) });
        s.component("west", |s| {
            s.use_provider(&west);
            s.add("in-west", Placed { zone: None });
            s.add_with("back-east", Placed { zone: None }, Options::new().provider(&east));
        });
        s.add("after", Placed { zone: None });
    })
}

#[tokio::test]
async fn provider_configurations_are_values_chosen_per_resource_or_per_component() {
    let desired = placed("ops", "west-2");
    let zone = |n: &str| desired.resources.values().find(|r| r.urn.name() == n).unwrap().inputs["zone"].clone();
    assert_eq!(zone("default"), "east-1");
    assert_eq!(zone("explicit"), "north-1", "a value the resource sets wins");
    assert_eq!(zone("in-west"), "west-2", "the component's default");
    assert_eq!(zone("back-east"), "east-1", "the resource's own choice");
    assert_eq!(zone("after"), "east-1", "the component's default ends with it");
    let doc = cairn::render::document(&desired);
    assert!(
        doc.contains(
            "\"providers\": {\n    \"east\": {\n      \"profile\": \"ops\",\n      \"zone\": \"east-1\"\n    }"
        ),
        "{doc}"
    );

    let world = World::new();
    let provider = PlacedProvider::default();
    let registry = || world.registry().with(provider.clone());
    let (_, outcome) = world.deploy_with(&desired, registry()).await;
    assert!(outcome.succeeded(), "{outcome:?}");
    let calls = provider.calls.lock().unwrap().clone();
    assert!(calls.contains(&("default".into(), json!("east-1"), json!("ops"))), "{calls:?}");
    assert!(calls.contains(&("in-west".into(), json!("west-2"), Value::Null)), "{calls:?}");

    // Another profile for the same resources: a state-only change, nothing is replaced.
    let plan = world.preview(&placed("audit", "west-2")).await;
    assert!(plan.steps.iter().all(|s| s.state_only), "{:?}", steps(&plan));
    world.deploy_with(&placed("audit", "west-2"), registry()).await;
    // Another zone for the west component: its resource is replaced, deleted with the
    // settings it was made with.
    let plan = world.preview(&placed("audit", "west-3")).await;
    assert_eq!(steps(&plan), ["delete replaced in-west", "replace in-west"]);

    // A configuration of another package, and secrets in settings, are refused.
    let mut stack = Stack::new("test", "dev");
    let other = stack.provider("x", Zone { zone: "z".into(), profile: None });
    let _ = other;
    #[derive(Serialize)]
    struct Creds {
        key: Secret<String>,
    }
    impl ProviderSettings for Creds {
        const PACKAGE: &'static str = "local";
    }
    let local = stack.provider("creds", Creds { key: Secret::new("k".into()) });
    stack.add_with("t", thing("v"), Options::new().provider(&local));
    let e = stack.finish().unwrap_err().to_string();
    assert!(e.contains("provider configuration `creds` holds a secret"), "{e}");
    assert!(
        e.contains("`test-dev/test:Thing/t` is a test resource; provider configuration `creds` is for local"),
        "{e}"
    );
}

#[tokio::test]
async fn a_command_runs_in_dependency_order_and_keeps_its_secrets() {
    let world = World::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let build = |token: &'static str, fail: bool| {
        let log = log.display().to_string();
        program(move |s| {
            let mut first = Command::new(format!("echo first >> {log}; echo ami-123"));
            first.delete = Some(format!("echo deleted first >> {log}").into());
            let first = s.add("bake", first);
            let mut second = Command::new(cairn::interpolate([
                cairn::Part::from(format!("echo second $IMAGE >> {log}; echo token=$TOKEN; ").as_str()),
                cairn::Part::from(if fail { "echo token $TOKEN refused >&2; exit 1" } else { "true" }),
            ]));
            second.environment.insert("IMAGE".into(), first.stdout.clone().into());
            second.environment.insert("TOKEN".into(), Secret::new(token.to_string()).into());
            s.add("deploy", second);
        })
    };
    let registry = || Registry::new().with(CommandProvider);
    let engine = |secrets| cairn::apply::Engine {
        registry: registry(),
        stack: "test-dev".into(),
        secrets,
        parallel: 4,
        events: Arc::new(|_| {}),
    };
    let key = Arc::new(cairn::secrets::SecretBox::create(&Secret::new("p".into())).0);
    let run = |desired: cairn::Desired| {
        let key = key.clone();
        let engine = engine(Some(key.clone()));
        let backend = world.backend("test-dev");
        async move {
            let mut session =
                cairn::state::StateBackend::lock(&backend, cairn::state::LockInfo::new("t"), None).await.unwrap();
            let prior = session.load().await.unwrap();
            let prior = key.decrypt_state(prior).unwrap();
            let plan = cairn::plan::plan(&desired, &prior).unwrap();
            let (_tx, cancel) = tokio::sync::watch::channel(false);
            let outcome = engine.apply(session.as_ref(), &plan, &desired, &prior, cancel).await;
            session.release().await.unwrap();
            outcome
        }
    };
    let outcome = run(build("s3cr3t-token", false)).await;
    assert!(outcome.succeeded(), "{outcome:?}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "first\nsecond ami-123\n");
    let state = key.decrypt_state(world.state("test-dev").await).unwrap();
    let outputs = |n: &str| state.resources.values().find(|r| r.urn.name() == n).unwrap().outputs.clone();
    assert_eq!(outputs("bake"), json!({"stdout": "ami-123"}));
    // Its output printed the secret: it stays secret.
    assert!(cairn::value::has_secrets(&outputs("deploy")["stdout"]));
    let raw = std::fs::read_to_string(world.backend("test-dev").dir().join("journal.jsonl")).unwrap();
    assert!(!raw.contains("s3cr3t-token"), "the secret is encrypted in state");

    // A failure quotes the command's standard error, without the secret.
    let outcome = run(build("s3cr3t-token", true)).await;
    assert_eq!(outcome.failed.len(), 1, "{outcome:?}");
    let error = &outcome.failed[0].2;
    assert!(error.contains("token [secret] refused") && !error.contains("s3cr3t"), "{error}");
}

#[tokio::test]
async fn a_changed_trigger_runs_the_command_again_as_a_replacement() {
    let world = World::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let build = |digest: &'static str, tag: &'static str| {
        let log = log.display().to_string();
        program(move |s| {
            let mut c = Command::new(format!("echo create $TAG >> {log}; echo built-$TAG"));
            c.delete = Some(format!("echo delete $TAG >> {log}").into());
            c.triggers = vec![digest.into()];
            c.environment.insert("TAG".into(), tag.into());
            s.add("build", c);
        })
    };
    let registry = || Registry::new().with(CommandProvider);
    world.deploy_with(&build("sha256:1", "a"), registry()).await;
    // Only the environment changed: `create` runs again in place (there is no `update`).
    let (plan, outcome) = world.deploy_with(&build("sha256:1", "b"), registry()).await;
    assert_eq!(steps(&plan), ["update build"]);
    assert!(outcome.succeeded());
    // A new trigger replaces it: the new run first, then the old one's `delete`.
    let (plan, outcome) = world.deploy_with(&build("sha256:2", "c"), registry()).await;
    assert_eq!(steps(&plan), ["delete replaced build", "replace build"]);
    assert!(outcome.succeeded(), "{outcome:?}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "create a\ncreate b\ncreate c\ndelete b\n");
    let state = world.state("test-dev").await;
    assert_eq!(state.resources.values().next().unwrap().outputs, json!({"stdout": "built-c"}));
}
