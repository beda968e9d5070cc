//! A seeded generator of random programs, edits and crash points: after any sequence of
//! edits, deploys and kills, state and the world agree, with no duplicates and nothing lost.
//!
//! A "kill" drops the deploy at a provider call, either before the call acts or after it
//! acted and before its answer arrives, exactly as a killed process leaves things: what was
//! written to state is there, nothing else is. The next deploy recovers and goes on.
//!
//! `CAIRN_PROPERTY_CASES` sets the number of programs (default 100), `CAIRN_PROPERTY_SEED`
//! runs one seed (to replay a failure, whose message names its seed).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use cairn::apply::Outcome;
use cairn::provider::{Context, Created, Observed, Provider, ProviderError, Registry};
use cairn::{Desired, Input, Options, Output, Part, Stack};
use cairn_tests::{world_keyed, world_things, Keyed, KeyedProvider, Thing, ThingProvider};
use serde_json::Value;
use tokio::sync::Notify;

use crate::World;

/// xorshift64*: small, seeded, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// How a thing uses another's output.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Link {
    /// `token` (kept through updates) in `key` (forces replacement).
    KeyToken,
    /// `token` in `value` (changes in place).
    ValueToken,
    /// `length` (an update may change it) in `key`.
    KeyLength,
    /// `length` in `value`.
    ValueLength,
}

#[derive(Debug, Clone)]
struct ThingSpec {
    key: u32,
    value: String,
    on: Option<(usize, Link)>,
    delete_first: bool,
}

#[derive(Debug, Clone)]
struct KeyedSpec {
    /// The thing whose token it is keyed on.
    parent: usize,
    mode: u32,
}

/// A program: things by number (a thing only uses lower numbers, so there is no cycle), and
/// keyed resources.
#[derive(Debug, Clone, Default)]
struct Model {
    things: BTreeMap<usize, ThingSpec>,
    keyed: BTreeMap<usize, KeyedSpec>,
    next: usize,
}

impl Model {
    fn random_value(rng: &mut Rng) -> String {
        "v".repeat(1 + rng.below(3)) + &rng.below(10).to_string()
    }

    fn add_thing(&mut self, rng: &mut Rng) {
        let n = self.next;
        self.next += 1;
        let on = if !self.things.is_empty() && rng.chance(70) {
            let ids: Vec<usize> = self.things.keys().copied().collect();
            let link = [Link::KeyToken, Link::ValueToken, Link::KeyLength, Link::ValueLength][rng.below(4)];
            Some((ids[rng.below(ids.len())], link))
        } else {
            None
        };
        let spec =
            ThingSpec { key: rng.below(3) as u32, value: Self::random_value(rng), on, delete_first: rng.chance(20) };
        self.things.insert(n, spec);
    }

    fn add_keyed(&mut self, rng: &mut Rng) {
        if self.things.is_empty() {
            return;
        }
        let ids: Vec<usize> = self.things.keys().copied().collect();
        let n = self.next;
        self.next += 1;
        self.keyed.insert(n, KeyedSpec { parent: ids[rng.below(ids.len())], mode: rng.below(3) as u32 });
    }

    fn random(rng: &mut Rng) -> Model {
        let mut m = Model::default();
        for _ in 0..2 + rng.below(6) {
            m.add_thing(rng);
        }
        for _ in 0..rng.below(3) {
            m.add_keyed(rng);
        }
        m
    }

    /// One random edit, as users make them.
    fn edit(&mut self, rng: &mut Rng) {
        let things: Vec<usize> = self.things.keys().copied().collect();
        let pick = |rng: &mut Rng| things.get(rng.below(things.len())).copied();
        match rng.below(9) {
            0 | 1 => {
                // A value (a tag, a setting): in place.
                if let Some(n) = pick(rng) {
                    self.things.get_mut(&n).expect("thing").value = Self::random_value(rng);
                }
            }
            2 => {
                if let Some(n) = pick(rng) {
                    self.things.get_mut(&n).expect("thing").key += 1;
                }
            }
            3 => self.add_thing(rng),
            4 => {
                if let Some(n) = pick(rng) {
                    self.things.remove(&n);
                    for t in self.things.values_mut() {
                        if t.on.is_some_and(|(p, _)| p == n) {
                            t.on = None;
                        }
                    }
                    self.keyed.retain(|_, k| k.parent != n);
                }
            }
            5 => {
                if let Some(n) = pick(rng) {
                    let t = self.things.get_mut(&n).expect("thing");
                    t.delete_first = !t.delete_first;
                }
            }
            6 => self.add_keyed(rng),
            7 => {
                let keyed: Vec<usize> = self.keyed.keys().copied().collect();
                if let Some(&k) = keyed.get(rng.below(keyed.len())) {
                    self.keyed.get_mut(&k).expect("keyed").mode += 1;
                }
            }
            _ => {
                let keyed: Vec<usize> = self.keyed.keys().copied().collect();
                if let Some(&k) = keyed.get(rng.below(keyed.len())) {
                    self.keyed.remove(&k);
                }
            }
        }
    }

    fn desired(&self) -> Desired {
        let mut stack = Stack::new("test", "dev");
        let mut outputs: BTreeMap<usize, (Output<String>, Output<u64>)> = BTreeMap::new();
        for (&n, t) in &self.things {
            let mut key: Input<String> = format!("k{}", t.key).into();
            let mut value: Input<String> = t.value.clone().into();
            if let Some((p, link)) = t.on {
                let (token, length) = &outputs[&p];
                let joined = |base: String, part: Part| cairn::interpolate([Part::from(base), Part::from("/"), part]);
                match link {
                    Link::KeyToken => key = joined(format!("k{}", t.key), Part::from(token)),
                    Link::ValueToken => value = joined(t.value.clone(), Part::from(token)),
                    Link::KeyLength => key = joined(format!("k{}", t.key), Part::from(length)),
                    Link::ValueLength => value = joined(t.value.clone(), Part::from(length)),
                }
            }
            let d = stack.add_with(
                &format!("t{n}"),
                Thing { key: Some(key), value },
                Options::new().delete_before_replace(t.delete_first),
            );
            outputs.insert(n, (d.token.clone(), d.length.clone()));
        }
        for (&n, k) in &self.keyed {
            stack.add(
                &format!("k{n}"),
                Keyed {
                    name: format!("k{n}"),
                    parent: outputs[&k.parent].0.clone().into(),
                    mode: format!("m{}", k.mode).into(),
                },
            );
        }
        stack.finish().expect("the generated program builds")
    }
}

/// Where a simulated kill happens: at the `at`-th provider call, before or after it acts.
struct Kill {
    remaining: AtomicI64,
    after_acting: bool,
    fired: Notify,
}

impl Kill {
    fn new(at: i64, after_acting: bool) -> Arc<Kill> {
        Arc::new(Kill { remaining: AtomicI64::new(at), after_acting, fired: Notify::new() })
    }

    /// Whether this call is the one that dies.
    fn due(&self) -> bool {
        self.remaining.fetch_sub(1, Ordering::SeqCst) == 1
    }

    async fn die(&self) -> ! {
        self.fired.notify_one();
        std::future::pending().await
    }
}

/// A provider whose process is killed at a given call.
struct Killed {
    inner: Arc<dyn Provider>,
    kill: Arc<Kill>,
}

impl Killed {
    async fn call<T>(&self, act: impl std::future::Future<Output = T>) -> T {
        if !self.kill.due() {
            return act.await;
        }
        if self.kill.after_acting {
            let _lost = act.await;
        }
        self.kill.die().await
    }
}

#[async_trait::async_trait]
impl Provider for Killed {
    fn type_token(&self) -> &'static str {
        self.inner.type_token()
    }
    fn identity(&self, inputs: &Value) -> Value {
        self.inner.identity(inputs)
    }
    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        self.call(self.inner.create(ctx, inputs)).await
    }
    async fn read(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        self.call(self.inner.read(ctx, id, inputs)).await
    }
    async fn update(&self, ctx: Context<'_>, id: &str, old: &Value, new: &Value) -> Result<Value, ProviderError> {
        self.call(self.inner.update(ctx, id, old, new)).await
    }
    async fn delete(&self, ctx: Context<'_>, id: &str, inputs: &Value) -> Result<(), ProviderError> {
        self.call(self.inner.delete(ctx, id, inputs)).await
    }
    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        self.call(self.inner.find(ctx, identity)).await
    }
}

fn registry(world: &World, kill: Option<Arc<Kill>>) -> Registry {
    let things: Arc<dyn Provider> = Arc::new(ThingProvider::new(world.path(), Default::default(), Default::default()));
    let keyed: Arc<dyn Provider> = Arc::new(KeyedProvider::new(world.path()));
    match kill {
        None => Registry::new().with_arc(things).with_arc(keyed),
        Some(kill) => {
            Registry::new().with(Killed { inner: things, kill: kill.clone() }).with(Killed { inner: keyed, kill })
        }
    }
}

/// Deploys `desired`, killed at `kill` if it comes: `None` when the run was killed.
async fn deploy(world: &World, desired: &Desired, kill: Option<Arc<Kill>>) -> Option<Outcome> {
    let Some(k) = kill.clone() else {
        return Some(world.deploy_with(desired, registry(world, None)).await.1);
    };
    tokio::select! {
        (_, outcome) = world.deploy_with(desired, registry(world, kill)) => Some(outcome),
        () = k.fired.notified() => None,
    }
}

/// Checks what a successful deploy of `model` must leave: state and the world agree, one
/// real resource per URN, nothing pending or retired, every value as declared, nothing left
/// to do.
async fn check(world: &World, model: &Model, desired: &Desired, case: &str) {
    let state = world.state("test-dev").await;
    assert!(state.pending.is_empty(), "{case}: pending left: {:?}", state.pending.keys());
    assert!(state.retired.is_empty(), "{case}: replaced copies left: {:?}", state.retired.keys());
    let mut things = world_things(&world.path());
    let urns: BTreeSet<&String> = things.iter().map(|(_, u)| u).collect();
    assert_eq!(urns.len(), things.len(), "{case}: duplicate things in the world: {things:?}");
    let mut in_state: Vec<(String, String)> = state
        .resources
        .values()
        .filter(|r| r.type_token == "test:Thing")
        .map(|r| (r.id.clone(), r.urn.to_string()))
        .collect();
    in_state.sort();
    things.sort();
    assert_eq!(things, in_state, "{case}: the world's things and state disagree");
    let keyed: Vec<String> = world_keyed(&world.path()).into_iter().map(|(_, u)| u).collect();
    let mut keyed_in_state: Vec<String> =
        state.resources.values().filter(|r| r.type_token == "test:Keyed").map(|r| r.urn.to_string()).collect();
    keyed_in_state.sort();
    let mut keyed_sorted = keyed.clone();
    keyed_sorted.sort();
    assert_eq!(keyed_sorted, keyed_in_state, "{case}: the world's keyed resources and state disagree");
    assert_eq!(
        state.resources.len(),
        model.things.len() + model.keyed.len(),
        "{case}: state does not hold exactly the program's resources"
    );
    // Every real thing holds what state says it does.
    for r in state.resources.values().filter(|r| r.type_token == "test:Thing") {
        let text = std::fs::read_to_string(world.path().join(format!("{}.json", r.id))).expect("world file");
        let v: Value = serde_json::from_str(&text).expect("world json");
        assert_eq!(v["value"], r.inputs["value"], "{case}: `{}` differs from state", r.urn);
        assert_eq!(v["key"], r.inputs["key"], "{case}: `{}` differs from state", r.urn);
    }
    let plan = cairn::plan::plan(desired, &state).expect("plan");
    assert!(!plan.has_changes(), "{case}: a deploy left changes: {:?}", crate::steps(&plan));
}

fn succeeded(outcome: &Outcome, case: &str) {
    if let Some((urn, _, e)) = outcome.failed.first() {
        panic!("{case}: `{urn}` failed: {e}");
    }
    assert!(outcome.succeeded(), "{case}: the run did not finish: {outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_sequence_of_edits_deploys_and_kills_leaves_state_and_world_in_agreement() {
    let cases: u64 = std::env::var("CAIRN_PROPERTY_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let seeds: Vec<u64> = match std::env::var("CAIRN_PROPERTY_SEED").ok().and_then(|v| v.parse().ok()) {
        Some(seed) => vec![seed],
        None => (1..=cases).collect(),
    };
    let mut kills = 0;
    let trace = std::env::var_os("CAIRN_PROPERTY_TRACE").is_some();
    for seed in seeds {
        let mut rng = Rng::new(seed);
        let world = World::new();
        let mut model = Model::random(&mut rng);
        for round in 0..8 {
            if round > 0 {
                for _ in 0..1 + rng.below(3) {
                    model.edit(&mut rng);
                }
            }
            let desired = model.desired();
            let case = format!("seed {seed}, round {round}");
            // Half the deploys are killed; the user edits the program again before the next
            // one, as users do.
            let kill = rng.chance(50).then(|| Kill::new(1 + rng.below(12) as i64, rng.chance(50)));
            if trace {
                let state = world.state("test-dev").await;
                let plan = cairn::plan::plan(&desired, &state).map(|p| crate::steps(&p));
                eprintln!(
                    "{case}: kill {:?}; plan {plan:?}; pending {:?}; retired {:?}",
                    kill.as_ref().map(|k| (k.remaining.load(Ordering::SeqCst), k.after_acting)),
                    state.pending.keys().collect::<Vec<_>>(),
                    state.retired.keys().collect::<Vec<_>>()
                );
            }
            match deploy(&world, &desired, kill).await {
                None => kills += 1,
                Some(outcome) => {
                    succeeded(&outcome, &case);
                    check(&world, &model, &desired, &case).await;
                }
            }
        }
        let desired = model.desired();
        let case = format!("seed {seed}, last deploy");
        let outcome = deploy(&world, &desired, None).await.expect("not killed");
        succeeded(&outcome, &case);
        check(&world, &model, &desired, &case).await;
    }
    assert!(kills > 0, "no run was killed: the test would prove nothing");
}
