//! The engine in-process: plans and applies against the file backend and the test providers,
//! with the world on disk, so that every test sees what really happened.

mod api;
mod exact;
mod property;

use std::path::PathBuf;
use std::sync::Arc;

use cairn::apply::{Engine, Outcome};
use cairn::plan::Plan;
use cairn::provider::Registry;
use cairn::state::file::FileBackend;
use cairn::state::{LockInfo, StackState, StateBackend};
use cairn::{Desired, Stack};
use cairn_tests::{KeyedProvider, ThingProvider};
use tokio::sync::watch;

/// A stack's state directory and world, in a temporary directory.
#[derive(Debug)]
pub struct World {
    dir: tempfile::TempDir,
}

impl Default for World {
    fn default() -> World {
        World { dir: tempfile::tempdir().expect("tempdir") }
    }
}

impl World {
    pub fn new() -> World {
        World::default()
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("world")
    }

    pub fn backend(&self, stack: &str) -> FileBackend {
        FileBackend::new(self.dir.path().join("state"), stack)
    }

    /// The test providers, acting on this world.
    pub fn registry(&self) -> Registry {
        self.registry_with(ThingProvider::new(self.path(), std::time::Duration::ZERO, Default::default()))
    }

    pub fn registry_with(&self, things: ThingProvider) -> Registry {
        Registry::new().with(things).with(KeyedProvider::new(self.path()))
    }

    pub fn engine(&self, stack: &str, registry: Registry) -> Engine {
        Engine { registry, stack: stack.to_string(), secrets: None, parallel: 4, events: Arc::new(|_| {}) }
    }

    /// Recovers, plans and applies `desired`, like `cairn deploy --yes`.
    pub async fn deploy(&self, desired: &Desired) -> (Plan, Outcome) {
        self.deploy_with(desired, self.registry()).await
    }

    pub async fn deploy_with(&self, desired: &Desired, registry: Registry) -> (Plan, Outcome) {
        let engine = self.engine(&desired.stack, registry);
        let backend = self.backend(&desired.stack);
        let mut session = backend.lock(LockInfo::new("test"), None).await.expect("lock");
        let mut state = session.load().await.expect("load");
        if !state.pending.is_empty() {
            engine.recover(session.as_ref(), &state, Some(desired)).await.expect("recover");
            state = session.load().await.expect("load");
        }
        let plan = cairn::plan::plan(desired, &state).expect("plan");
        let (_tx, cancel) = watch::channel(false);
        let outcome = engine.apply(session.as_ref(), &plan, desired, &state, cancel).await;
        session.release().await.expect("release");
        (plan, outcome)
    }

    pub async fn state(&self, stack: &str) -> StackState {
        self.backend(stack).read().await.expect("read state")
    }

    /// The plan of `desired` against the saved state.
    pub async fn preview(&self, desired: &Desired) -> Plan {
        cairn::plan::plan(desired, &self.state(&desired.stack).await).expect("plan")
    }
}

/// Builds a desired stack named `test-dev`.
pub fn program(build: impl FnOnce(&mut Stack)) -> Desired {
    let mut stack = Stack::new("test", "dev");
    build(&mut stack);
    stack.finish().expect("the test program builds")
}

/// `op name` of every step of `plan`, sorted.
pub fn steps(plan: &Plan) -> Vec<String> {
    let mut v: Vec<String> = plan.steps.iter().map(|s| format!("{} {}", s.op.verb(), s.urn.name())).collect();
    v.sort();
    v
}

/// `op name` of every step done, sorted.
pub fn done(outcome: &Outcome) -> Vec<String> {
    assert!(outcome.succeeded(), "the run failed: {outcome:?}");
    let mut v: Vec<String> = outcome.done.iter().map(|(u, op)| format!("{} {}", op.verb(), u.name())).collect();
    v.sort();
    v
}
