//! Carrying out a plan: a DAG executor with bounded parallelism.
//!
//! A step starts when every step it waits for has finished; its result is written to state
//! (one small batch) before any dependent starts. Before a provider call that creates,
//! replaces or deletes, the operation is recorded as pending; after it, the result replaces
//! the record. A step that fails stops its dependents; independent branches go on. An
//! interruption (Ctrl-C) or a lost lock stops new steps from starting and waits for the
//! running ones.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::Value;
use tokio::sync::watch;

use crate::plan::{self, Op, Plan, Step};
use crate::provider::{Context, Observed, Provider, ReadItem, Registry};
use crate::secrets::SecretBox;
use crate::stack::{Desired, DesiredResource};
use crate::state::lock::now_rfc3339;
use crate::state::{Change, PendingKind, PendingOp, ResourceState, StackState, StateSession};
use crate::urn::Urn;
use crate::value::{self, OutputRef};

/// Something that happened to a step, for progress display.
#[derive(Debug, Clone)]
pub enum Event {
    Started {
        urn: Urn,
        op: Op,
    },
    /// `op` is what was done, which may differ from the plan (see [`Redecided`]).
    Finished {
        urn: Urn,
        op: Op,
        elapsed: Duration,
    },
    Failed {
        urn: Urn,
        op: Op,
        error: String,
    },
    Skipped {
        urn: Urn,
        op: Op,
        because: Urn,
    },
    Recovered {
        urn: Urn,
        what: String,
    },
    /// `refresh` has read `done` of `total` resources back.
    Read {
        done: usize,
        total: usize,
    },
}

/// A step that apply decided differently from the plan: the plan decided it with values it
/// could not know (outputs of resources changed in the same run), and with the real values
/// it turned out to need less. A planned replacement whose inputs turn out equal is no
/// change (`done` is [`Op::Same`]) or an update; the deletion of a copy that was never
/// replaced is nothing to do; and a replacement that the provider made under the old
/// resource's own id (anything keyed by its inputs) is done without deleting that id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redecided {
    pub urn: Urn,
    pub planned: Op,
    pub done: Op,
    /// Why, for the summary.
    pub why: String,
}

/// How a run ended.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Steps done, with what was really done (see `redecided`).
    pub done: Vec<(Urn, Op)>,
    /// Steps done differently from the plan, once the real values were known.
    pub redecided: Vec<Redecided>,
    pub failed: Vec<(Urn, Op, String)>,
    /// Not started because a step they wait for failed.
    pub skipped: Vec<(Urn, Op)>,
    /// Not started because the run was interrupted or lost its lock.
    pub not_started: Vec<(Urn, Op)>,
    pub interrupted: bool,
    /// Set when the state backend refused a write or the lock was lost.
    pub lost_lock: Option<String>,
    /// Steps that were running when the lock was lost: their result may not be recorded.
    pub in_flight_at_loss: Vec<(Urn, Op)>,
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        self.failed.is_empty()
            && self.skipped.is_empty()
            && self.not_started.is_empty()
            && !self.interrupted
            && self.lost_lock.is_none()
    }
}

/// What the engine needs to act: the providers, the stack, and the key for its secrets.
#[derive(Clone)]
pub struct Engine {
    pub registry: Registry,
    pub stack: String,
    pub secrets: Option<Arc<SecretBox>>,
    pub parallel: usize,
    pub events: Arc<dyn Fn(Event) + Send + Sync>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("stack", &self.stack).field("parallel", &self.parallel).finish_non_exhaustive()
    }
}

/// The default parallelism: enough to overlap slow cloud calls, bounded for API rate limits.
pub const DEFAULT_PARALLEL: usize = 16;

struct Live {
    resources: HashMap<Urn, ResourceState>,
    retired: HashMap<Urn, ResourceState>,
}

struct Run<'a> {
    engine: &'a Engine,
    session: &'a dyn StateSession,
    desired: &'a Desired,
    live: Mutex<Live>,
    lost: Mutex<Option<String>>,
    /// URNs with an operation pending right now: at most one each.
    pending: Mutex<HashSet<Urn>>,
    /// The outputs that the program uses, by resource (built at the first update).
    used_outputs: OnceLock<HashMap<Urn, Vec<String>>>,
    /// Every secret known to the run (built at the first error).
    secrets: OnceLock<value::Secrets>,
}

/// What a step did.
struct Done {
    op: Op,
    /// Set when that differs from the plan: why.
    redecided: Option<String>,
}

impl Done {
    fn planned(op: Op) -> Done {
        Done { op, redecided: None }
    }
}

fn record(d: &DesiredResource, id: String, inputs: Value, outputs: Value) -> ResourceState {
    let outputs = secret_outputs(&d.secret_outputs, &inputs, outputs);
    ResourceState {
        urn: d.urn.clone(),
        type_token: d.type_token.clone(),
        id,
        inputs,
        outputs,
        dependencies: d.dependencies.clone(),
        protect: d.protect,
        retain_on_delete: d.retain_on_delete,
        delete_before_replace: d.delete_before_replace,
        provider: d.provider.clone(),
    }
}

/// `outputs` with secrecy tracked per output: an output is secret when its type says so
/// (`secret_outputs`), when the input of the same name is secret (a provider echoing what it
/// was given), or when it holds the text of a secret input (derived from it: a URL with a
/// password in it). Everything else stays readable, so that one secret input does not hide
/// a resource's id, version or ARN from its dependents.
pub fn secret_outputs(secret_names: &[String], inputs: &Value, outputs: Value) -> Value {
    let secrets = value::Secrets::of(inputs);
    match outputs {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let secret = secret_names.contains(&k) || inputs.get(&k).is_some_and(value::has_secrets);
                    let v = if secret { value::secret(v) } else { secrets.taint(v) };
                    (k, v)
                })
                .collect(),
        ),
        other => secrets.taint(other),
    }
}

impl Engine {
    fn provider(&self, type_token: &str) -> Result<&Arc<dyn Provider>, String> {
        self.registry.get(type_token).ok_or_else(|| {
            let known: Vec<&str> = self.registry.types().collect();
            format!("no provider for type `{type_token}` (this program has: {})", known.join(", "))
        })
    }

    fn encrypt(&self, changes: Vec<Change>) -> Result<Vec<Change>, String> {
        changes
            .into_iter()
            .map(|c| {
                let needs = |r: &ResourceState| value::has_secrets(&r.inputs) || value::has_secrets(&r.outputs);
                match (&c, &self.secrets) {
                    (Change::PutResource(r), Some(b)) => Ok(Change::PutResource(b.encrypt_resource(r))),
                    (Change::PutRetired(r), Some(b)) => Ok(Change::PutRetired(b.encrypt_resource(r))),
                    (Change::PutOutputs(o), Some(b)) => {
                        Ok(Change::PutOutputs(o.iter().map(|(k, v)| (k.clone(), b.encrypt(v))).collect()))
                    }
                    (Change::PutPending(p), Some(b)) => {
                        Ok(Change::PutPending(PendingOp { identity: b.encrypt(&p.identity), ..p.clone() }))
                    }
                    (Change::PutPending(p), None) if value::has_secrets(&p.identity) => Err(format!(
                        "the pending operation of `{}` holds secrets and no passphrase is set; nothing was written",
                        p.urn
                    )),
                    (Change::PutResource(r) | Change::PutRetired(r), None) if needs(r) => {
                        Err(format!("`{}` holds secrets and no passphrase is set; nothing was written", r.urn))
                    }
                    (Change::PutOutputs(o), None) if o.values().any(value::has_secrets) => {
                        Err("stack outputs hold secrets and no passphrase is set; nothing was written".to_string())
                    }
                    _ => Ok(c),
                }
            })
            .collect()
    }

    /// Writes a batch through the session, encrypting secrets first.
    pub async fn write(&self, session: &dyn StateSession, changes: Vec<Change>) -> Result<(), String> {
        let changes = self.encrypt(changes)?;
        session.write(changes).await.map_err(|e| e.to_string())
    }

    /// Reconciles operations left pending by a run that died: each resource is read back (or
    /// found by its identity), so that nothing is created twice and nothing is forgotten.
    /// Returns how many were reconciled.
    pub async fn recover(
        &self,
        session: &dyn StateSession,
        state: &StackState,
        desired: Option<&Desired>,
    ) -> Result<usize, String> {
        let (_never, cancel) = watch::channel(false);
        self.recover_until(session, state, desired, &cancel).await
    }

    /// Like [`Engine::recover`], stopping between two operations when `cancel` turns true
    /// (each one reconciled so far is saved; the rest wait for the next run).
    pub async fn recover_until(
        &self,
        session: &dyn StateSession,
        state: &StackState,
        desired: Option<&Desired>,
        cancel: &watch::Receiver<bool>,
    ) -> Result<usize, String> {
        self.recover_all(session, state, desired, cancel).await.map_err(|e| {
            value::Secrets::in_all(state_values(state).chain(desired.into_iter().flat_map(program_values))).scrub(&e)
        })
    }

    async fn recover_all(
        &self,
        session: &dyn StateSession,
        state: &StackState,
        desired: Option<&Desired>,
        cancel: &watch::Receiver<bool>,
    ) -> Result<usize, String> {
        let mut n = 0;
        for op in state.pending.values() {
            if *cancel.borrow() {
                return Err(format!(
                    "interrupted after reconciling {n} of {} operations; the next run reconciles the rest",
                    state.pending.len()
                ));
            }
            // Every copy state holds under this URN carries its label: `find` must not
            // mistake the copy being replaced for the replacement.
            let known: Vec<String> = [state.resources.get(&op.urn), state.retired.get(&op.urn)]
                .into_iter()
                .flatten()
                .map(|r| r.id.clone())
                .collect();
            let type_token = op.urn.type_token().to_string();
            let provider = self.provider(&type_token)?;
            let existing = if op.retired { state.retired.get(&op.urn) } else { state.resources.get(&op.urn) };
            let declared = desired.and_then(|d| d.resources.get(&op.urn));
            let settings =
                declared.and_then(|d| d.provider.as_ref()).or_else(|| existing.and_then(|e| e.provider.as_ref()));
            let ctx = Context::new(&op.urn, &self.stack).knowing(&known).configured(settings);
            let reference = declared
                .map(|d| d.inputs.clone())
                .or_else(|| existing.map(|e| e.inputs.clone()))
                .unwrap_or(Value::Null);
            let adopt = |obs: Observed| -> ResourceState {
                let inputs = value::copy_secrecy(&reference, obs.inputs);
                match (declared, existing) {
                    (Some(d), _) => record(d, obs.id, inputs, obs.outputs),
                    (None, Some(e)) => {
                        let outputs = read_outputs(&inputs, &e.outputs, obs.outputs);
                        ResourceState { id: obs.id, inputs, outputs, ..e.clone() }
                    }
                    (None, None) => ResourceState {
                        urn: op.urn.clone(),
                        type_token: type_token.clone(),
                        id: obs.id,
                        inputs,
                        outputs: obs.outputs,
                        dependencies: Default::default(),
                        protect: false,
                        retain_on_delete: false,
                        delete_before_replace: false,
                        provider: None,
                    },
                }
            };
            let mut changes = Vec::new();
            let what;
            match op.kind {
                PendingKind::Create => {
                    let found = provider
                        .find(ctx, &value::reveal(&op.identity))
                        .await
                        .map_err(|e| format!("recovering `{}`: find failed: {e}", op.urn))?;
                    match found {
                        None => what = "create had not happened".to_string(),
                        Some(obs) => match existing {
                            Some(old) if old.id == obs.id => what = "create had already been recorded".to_string(),
                            Some(old) => {
                                what = format!("replacement {} found and adopted; {} retired", obs.id, old.id);
                                changes.push(Change::PutRetired(old.clone()));
                                changes.push(Change::PutResource(adopt(obs)));
                            }
                            None => {
                                what = format!("created {} found and adopted", obs.id);
                                changes.push(Change::PutResource(adopt(obs)));
                            }
                        },
                    }
                }
                PendingKind::Update | PendingKind::Delete => {
                    let id = op.resource_id.clone().or_else(|| existing.map(|e| e.id.clone())).unwrap_or_default();
                    let inputs = existing.map(|e| value::reveal(&e.inputs)).unwrap_or(Value::Null);
                    let seen = provider
                        .read(ctx, &id, &inputs)
                        .await
                        .map_err(|e| format!("recovering `{}`: read failed: {e}", op.urn))?;
                    match (seen, existing) {
                        (None, Some(_)) => {
                            what = format!("{id} is gone");
                            changes.push(if op.retired {
                                Change::RemoveRetired(op.urn.clone())
                            } else {
                                Change::RemoveResource(op.urn.clone())
                            });
                        }
                        (Some(obs), Some(e)) => {
                            what = format!("{id} read back");
                            let inputs = value::copy_secrecy(&e.inputs, obs.inputs);
                            let outputs = read_outputs(&inputs, &e.outputs, obs.outputs);
                            let r = ResourceState { inputs, outputs, ..e.clone() };
                            changes.push(if op.retired { Change::PutRetired(r) } else { Change::PutResource(r) });
                        }
                        (_, None) => what = format!("{id} is not in state"),
                    }
                }
            }
            changes.push(Change::ClearPending(op.urn.clone()));
            self.write(session, changes).await?;
            (self.events)(Event::Recovered { urn: op.urn.clone(), what });
            n += 1;
        }
        Ok(n)
    }

    /// Applies `plan` (made from `desired` and `prior`) and writes every result to `session`.
    /// `cancel` turning true stops new steps from starting.
    pub async fn apply(
        &self,
        session: &dyn StateSession,
        plan: &Plan,
        desired: &Desired,
        prior: &StackState,
        mut cancel: watch::Receiver<bool>,
    ) -> Outcome {
        let run = Run {
            engine: self,
            session,
            desired,
            live: Mutex::new(Live {
                resources: prior.resources.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                retired: prior.retired.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            }),
            lost: Mutex::new(None),
            pending: Mutex::new(HashSet::new()),
            used_outputs: OnceLock::new(),
            secrets: OnceLock::new(),
        };
        let steps = &plan.steps;
        let n = steps.len();
        let mut waiting: Vec<usize> = steps.iter().map(|s| s.after.len()).collect();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, s) in steps.iter().enumerate() {
            for &a in &s.after {
                dependents[a].push(i);
            }
        }
        let mut state: Vec<u8> = vec![0; n]; // 0 waiting, 1 running, 2 done, 3 failed, 4 skipped
        let mut ready: VecDeque<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
        let mut running = FuturesUnordered::new();
        let mut outcome = Outcome::default();
        let parallel = self.parallel.max(1);
        let mut cancel_open = true;
        loop {
            let stopping =
                *cancel.borrow() || run.lost.lock().expect("lock poisoned").is_some() || session.lost().is_some();
            while !stopping && running.len() < parallel {
                let Some(i) = ready.pop_front() else { break };
                state[i] = 1;
                let run = &run;
                running.push(async move { (i, run.step(&steps[i]).await) });
            }
            if running.is_empty() {
                break;
            }
            let watching = cancel_open && !*cancel.borrow();
            let finished = tokio::select! {
                f = running.next() => f,
                changed = cancel.changed(), if watching => {
                    // A dropped sender can never cancel: stop watching it.
                    cancel_open = changed.is_ok();
                    None
                }
            };
            let Some((i, result)) = finished else {
                continue;
            };
            let step = &steps[i];
            match result {
                Ok(done) => {
                    state[i] = 2;
                    outcome.done.push((step.urn.clone(), done.op));
                    if let Some(why) = done.redecided {
                        outcome.redecided.push(Redecided {
                            urn: step.urn.clone(),
                            planned: step.op,
                            done: done.op,
                            why,
                        });
                    }
                    for &d in &dependents[i] {
                        waiting[d] -= 1;
                        if waiting[d] == 0 && state[d] == 0 {
                            ready.push_back(d);
                        }
                    }
                }
                Err(error) => {
                    state[i] = 3;
                    outcome.failed.push((step.urn.clone(), step.op, error));
                    let mut queue: VecDeque<usize> = dependents[i].iter().copied().collect();
                    while let Some(d) = queue.pop_front() {
                        if state[d] == 0 {
                            state[d] = 4;
                            outcome.skipped.push((steps[d].urn.clone(), steps[d].op));
                            (self.events)(Event::Skipped {
                                urn: steps[d].urn.clone(),
                                op: steps[d].op,
                                because: step.urn.clone(),
                            });
                            queue.extend(dependents[d].iter().copied());
                        }
                    }
                }
            }
            if let Some(msg) = run.lost.lock().expect("lock poisoned").clone().or_else(|| session.lost()) {
                if outcome.lost_lock.is_none() {
                    outcome.in_flight_at_loss =
                        (0..n).filter(|&j| state[j] == 1).map(|j| (steps[j].urn.clone(), steps[j].op)).collect();
                    outcome.lost_lock = Some(msg);
                }
            }
        }
        outcome.interrupted = *cancel.borrow();
        outcome.not_started = (0..n).filter(|&i| state[i] == 0).map(|i| (steps[i].urn.clone(), steps[i].op)).collect();

        // Stack outputs, once everything they use is known.
        if outcome.failed.is_empty() && outcome.lost_lock.is_none() {
            let outputs: std::collections::BTreeMap<String, Value> = {
                let live = run.live.lock().expect("lock poisoned");
                let lookup =
                    |o: &OutputRef| live.resources.get(&o.urn).and_then(|r| value::lookup_output(&r.outputs, &o.path));
                desired
                    .outputs
                    .iter()
                    .map(|(k, v)| (k.clone(), value::resolve(v, &lookup)))
                    .filter(|(_, v)| !value::has_unknowns(v))
                    .collect()
            };
            if outputs != prior.outputs {
                if let Err(e) = self.write(session, vec![Change::PutOutputs(outputs)]).await {
                    outcome.failed.push((Urn::from(format!("{}/<stack outputs>", self.stack)), Op::Update, e));
                }
            }
        }
        outcome
    }
}

impl Run<'_> {
    fn desired(&self, urn: &Urn) -> Result<&DesiredResource, String> {
        self.desired.resources.get(urn).ok_or_else(|| format!("`{urn}` is not declared by the program"))
    }

    /// Inputs with every output resolved from what has been applied so far.
    fn inputs(&self, d: &DesiredResource, prior: Option<&ResourceState>) -> Result<Value, String> {
        let live = self.live.lock().expect("lock poisoned");
        let lookup = |o: &OutputRef| live.resources.get(&o.urn).and_then(|r| value::lookup_output(&r.outputs, &o.path));
        let inputs = plan::effective_inputs(d, prior, &lookup);
        if let Some(message) = value::find_error(&inputs) {
            return Err(format!("a function of the program failed: {message}"));
        }
        if value::has_unknowns(&inputs) {
            let mut missing = Vec::new();
            collect_unknowns(&inputs, &mut missing);
            return Err(format!(
                "inputs use outputs that do not exist: {}",
                missing.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", ")
            ));
        }
        Ok(inputs)
    }

    async fn write(&self, changes: Vec<Change>) -> Result<(), String> {
        match self.engine.write(self.session, changes).await {
            Ok(()) => Ok(()),
            Err(e) => {
                self.lost.lock().expect("lock poisoned").get_or_insert_with(|| e.clone());
                Err(format!("state write failed: {e}"))
            }
        }
    }

    /// Every secret this run knows: the program's and those in state (built at the first
    /// error, to scrub messages).
    fn secrets(&self) -> &value::Secrets {
        self.secrets.get_or_init(|| {
            let live = self.live.lock().expect("lock poisoned");
            let records = live.resources.values().chain(live.retired.values());
            value::Secrets::in_all(program_values(self.desired).chain(records.flat_map(|r| [&r.inputs, &r.outputs])))
        })
    }

    /// Records that `urn` is about to be acted on, before the provider call. A URN has at most
    /// one pending operation: the plan orders every step of one URN, and a step that would
    /// start a second one fails here instead of overwriting the first one's record.
    async fn put_pending(
        &self,
        kind: PendingKind,
        urn: &Urn,
        resource_id: Option<String>,
        identity: Value,
        retired: bool,
    ) -> Result<(), String> {
        if !self.pending.lock().expect("lock poisoned").insert(urn.clone()) {
            return Err(format!(
                "internal error: `{urn}` already has an operation pending in this run; nothing was done for this \
                 step, please report this"
            ));
        }
        let op = PendingOp { urn: urn.clone(), kind, resource_id, identity, retired, started: now_rfc3339() };
        self.write(vec![Change::PutPending(op)]).await
    }

    /// The pending operation of `urn` is resolved (its result is recorded).
    fn resolved(&self, urn: &Urn) {
        self.pending.lock().expect("lock poisoned").remove(urn);
    }

    async fn step(&self, step: &Step) -> Result<Done, String> {
        let events = &self.engine.events;
        let started = Instant::now();
        if step.op != Op::Same {
            events(Event::Started { urn: step.urn.clone(), op: step.op });
        }
        tracing::debug!(urn = %step.urn, op = %step.op, "step started");
        // A provider's message may quote what it was given: secrets never leave in one.
        let result = self.step_inner(step).await.map_err(|e| self.secrets().scrub(&e));
        let elapsed = started.elapsed();
        match &result {
            Ok(done) if step.op != Op::Same => {
                tracing::info!(urn = %step.urn, op = %done.op, elapsed_ms = elapsed.as_millis() as u64, "step done");
                events(Event::Finished { urn: step.urn.clone(), op: done.op, elapsed })
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(urn = %step.urn, op = %step.op, error = %e, "step failed");
                events(Event::Failed { urn: step.urn.clone(), op: step.op, error: e.clone() })
            }
        }
        result
    }

    async fn step_inner(&self, step: &Step) -> Result<Done, String> {
        let current = |urn: &Urn| self.live.lock().expect("lock poisoned").resources.get(urn).cloned();
        match step.op {
            Op::Same => {
                if !step.state_only {
                    return Ok(Done::planned(Op::Same));
                }
                let d = self.desired(&step.urn)?;
                let from = step.renamed_from.as_ref().unwrap_or(&step.urn);
                let prior = current(from).ok_or_else(|| format!("`{from}` is missing from state"))?;
                self.put_record(from, restated(d, &prior)).await?;
                Ok(Done::planned(Op::Same))
            }
            Op::Create => {
                let d = self.desired(&step.urn)?;
                let inputs = self.inputs(d, None)?;
                self.create(d, inputs, None).await?;
                Ok(Done::planned(Op::Create))
            }
            Op::Import => {
                let d = self.desired(&step.urn)?;
                let id = d.import.as_deref().ok_or_else(|| format!("`{}` has no id to import", step.urn))?;
                self.import(d, id).await?;
                Ok(Done::planned(Op::Import))
            }
            Op::Update | Op::Replace | Op::ReplaceDeleteFirst => {
                let d = self.desired(&step.urn)?;
                let from = step.renamed_from.as_ref().unwrap_or(&step.urn);
                let prior = current(from).ok_or_else(|| format!("`{from}` is missing from state"))?;
                let inputs = self.inputs(d, Some(&prior))?;
                // Decided again with every value known, before anything is touched.
                let now = decide(d, &prior, &inputs);
                let why = |what: &str| Some(format!("{what} once the values it uses were known"));
                match (step.op, now) {
                    (_, Op::Same) => {
                        self.put_record(from, restated(d, &prior)).await?;
                        Ok(Done { op: Op::Same, redecided: why("no change") })
                    }
                    (Op::Update, Op::Update) => {
                        self.update(d, from, &prior, inputs).await?;
                        Ok(Done::planned(Op::Update))
                    }
                    (Op::Update, _) => Err(format!(
                        "the values known now would replace `{}`, which the plan did not show; nothing was done. \
                         Run `preview` again",
                        step.urn
                    )),
                    (_, Op::Update) => {
                        self.update(d, from, &prior, inputs).await?;
                        Ok(Done { op: Op::Update, redecided: why("an update in place") })
                    }
                    (Op::ReplaceDeleteFirst, _) => {
                        self.delete(&prior, false).await?;
                        self.create(d, inputs, None).await?;
                        Ok(Done::planned(Op::ReplaceDeleteFirst))
                    }
                    _ => match self.create(d, inputs, Some(prior)).await? {
                        Made::Replaced => Ok(Done::planned(Op::Replace)),
                        Made::SameId(id) => Ok(Done {
                            op: Op::Replace,
                            redecided: Some(format!(
                                "the provider made the replacement under the old id {id}, so there is no old copy to delete"
                            )),
                        }),
                        Made::New => unreachable!("a replacement replaces"),
                    },
                }
            }
            Op::DeleteReplaced => {
                let old = self.live.lock().expect("lock poisoned").retired.get(&step.urn).cloned();
                match old {
                    Some(old) => {
                        self.delete(&old, true).await?;
                        Ok(Done::planned(Op::DeleteReplaced))
                    }
                    // The replacement was decided again at apply (no change, an update, or the
                    // same id): there is no old copy.
                    None => {
                        Ok(Done { op: Op::Same, redecided: Some("nothing was replaced, so nothing to delete".into()) })
                    }
                }
            }
            Op::Delete => {
                let prior = current(&step.urn).ok_or_else(|| format!("`{}` is missing from state", step.urn))?;
                self.delete(&prior, false).await?;
                Ok(Done::planned(Op::Delete))
            }
            Op::Forget => {
                self.write(vec![Change::RemoveResource(step.urn.clone())]).await?;
                self.live.lock().expect("lock poisoned").resources.remove(&step.urn);
                Ok(Done::planned(Op::Forget))
            }
        }
    }

    /// Changes `prior` (recorded under `from`) in place to `inputs`, and records the result.
    /// An output that the provider promises to keep through updates (everything outside
    /// `Resource::UPDATABLE_OUTPUTS`) and that the program uses must not change: the plan of
    /// its dependents relied on it. If it did, the update is recorded and the step fails, so
    /// that nothing planned with the old value goes on.
    async fn update(
        &self,
        d: &DesiredResource,
        from: &Urn,
        prior: &ResourceState,
        inputs: Value,
    ) -> Result<(), String> {
        let provider = self.engine.provider(&d.type_token)?;
        let ctx = Context::new(&d.urn, &self.engine.stack).configured(d.provider.as_ref());
        self.put_pending(PendingKind::Update, &d.urn, Some(prior.id.clone()), Value::Null, false).await?;
        let outputs = provider
            .update(ctx, &prior.id, &value::reveal(&prior.inputs), &value::reveal(&inputs))
            .await
            .map_err(|e| format!("update failed: {e}"))?;
        let changed = self.broken_promises(d, &prior.outputs, &outputs);
        let rec = record(d, prior.id.clone(), inputs, outputs);
        self.put_record(from, rec)
            .await
            .map_err(|e| format!("updated {} but the result could not be recorded: {e}", prior.id))?;
        if changed.is_empty() {
            return Ok(());
        }
        Err(format!(
            "updated {}, but the update changed {} (used by other resources), which `{}` declares to keep through \
             updates: what depends on it was planned with the old value and was not changed. Run `deploy` again to \
             bring it up to date, and report the type's missing `UPDATABLE_OUTPUTS`",
            prior.id,
            changed.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", "),
            d.type_token
        ))
    }

    /// The outputs of `d` that the program uses, that its type promises to keep through
    /// updates, and that differ between `old` (in state) and `new` (from the provider).
    fn broken_promises(&self, d: &DesiredResource, old: &Value, new: &Value) -> Vec<String> {
        let used = self.used_outputs.get_or_init(|| used_outputs(self.desired));
        let Some(paths) = used.get(&d.urn) else { return Vec::new() };
        let old = value::reveal(old);
        paths
            .iter()
            .filter(|p| plan::is_stable(&d.updatable_outputs, p))
            .filter(|p| value::get_path(&old, p) != value::get_path(new, p))
            .cloned()
            .collect()
    }

    /// Adopts the existing resource `id` for `d`: reads it back, refuses if the program would
    /// replace it, records it as it is, then changes in place what differs from the program.
    /// Reading has no effect on the resource, so a crash before the record leaves nothing to
    /// recover; a crash during the update is recovered like any update.
    async fn import(&self, d: &DesiredResource, id: &str) -> Result<(), String> {
        let provider = self.engine.provider(&d.type_token)?;
        let ctx = Context::new(&d.urn, &self.engine.stack).configured(d.provider.as_ref());
        let wanted = self.inputs(d, None)?;
        let seen = provider
            .read(ctx, id, &value::reveal(&wanted))
            .await
            .map_err(|e| format!("import of `{id}` failed: {e}"))?
            .ok_or_else(|| format!("cannot import `{id}`: no such {} exists", d.type_token))?;
        let adopted = record(d, seen.id, value::copy_secrecy(&wanted, seen.inputs), seen.outputs);
        let inputs = self.inputs(d, Some(&adopted))?;
        let diffs = plan::diff(&adopted.inputs, &inputs, &d.replace_on_change);
        let forcing: Vec<&str> = diffs.iter().filter(|p| p.forces_replacement).map(|p| p.path.as_str()).collect();
        if !forcing.is_empty() {
            return Err(format!(
                "cannot import `{id}`: it differs from the program in {}, which would replace it; make the \
                 program match the resource, import it, then change it",
                forcing.join(", ")
            ));
        }
        self.put_record(&d.urn, adopted.clone())
            .await
            .map_err(|e| format!("read {id} but it could not be recorded: {e}"))?;
        if diffs.is_empty() {
            return Ok(());
        }
        self.update(d, &d.urn, &adopted, inputs).await
    }

    /// Records `rec` (moving it from `from` when the resource was renamed) and makes it live.
    async fn put_record(&self, from: &Urn, rec: ResourceState) -> Result<(), String> {
        let mut changes = vec![Change::PutResource(rec.clone())];
        if from != &rec.urn {
            changes.push(Change::RemoveResource(from.clone()));
        }
        self.write(changes).await?;
        self.resolved(&rec.urn);
        let mut live = self.live.lock().expect("lock poisoned");
        live.resources.remove(from);
        live.resources.insert(rec.urn.clone(), rec);
        Ok(())
    }

    /// Creates `d`; with `replacing`, the old record is retired in the same state write,
    /// unless the provider made the new resource under the old one's id (a resource keyed by
    /// its inputs, such as a subscription or a metric filter): then there is one resource,
    /// and deleting "the old copy" would delete it.
    async fn create(
        &self,
        d: &DesiredResource,
        inputs: Value,
        replacing: Option<ResourceState>,
    ) -> Result<Made, String> {
        let provider = self.engine.provider(&d.type_token)?;
        let ctx = Context::new(&d.urn, &self.engine.stack).configured(d.provider.as_ref());
        let revealed = value::reveal(&inputs);
        // Encrypted in state like the inputs it comes from.
        let identity = value::Secrets::of(&inputs).taint(provider.identity(&revealed));
        self.put_pending(PendingKind::Create, &d.urn, None, identity, false).await?;
        let created = provider.create(ctx, &revealed).await.map_err(|e| format!("create failed: {e}"))?;
        let rec = record(d, created.id, inputs, created.outputs);
        let replacing = replacing.map(|old| {
            let same = old.id == rec.id;
            (old, same)
        });
        let mut changes = Vec::new();
        if let Some((old, same_id)) = &replacing {
            if !same_id {
                changes.push(Change::PutRetired(ResourceState { urn: d.urn.clone(), ..old.clone() }));
            }
            if old.urn != d.urn {
                changes.push(Change::RemoveResource(old.urn.clone()));
            }
        }
        changes.push(Change::PutResource(rec.clone()));
        self.write(changes).await.map_err(|e| format!("created {} but it could not be recorded: {e}", rec.id))?;
        self.resolved(&d.urn);
        let mut live = self.live.lock().expect("lock poisoned");
        let result = match replacing {
            None => Made::New,
            Some((old, same_id)) => {
                live.resources.remove(&old.urn);
                if same_id {
                    Made::SameId(old.id)
                } else {
                    live.retired.insert(d.urn.clone(), ResourceState { urn: d.urn.clone(), ..old });
                    Made::Replaced
                }
            }
        };
        live.resources.insert(d.urn.clone(), rec);
        Ok(result)
    }

    async fn delete(&self, r: &ResourceState, retired: bool) -> Result<(), String> {
        let provider = self.engine.provider(&r.type_token)?;
        let ctx = Context::new(&r.urn, &self.engine.stack).configured(r.provider.as_ref());
        self.put_pending(PendingKind::Delete, &r.urn, Some(r.id.clone()), Value::Null, retired).await?;
        provider.delete(ctx, &r.id, &value::reveal(&r.inputs)).await.map_err(|e| format!("delete failed: {e}"))?;
        let remove = if retired { Change::RemoveRetired(r.urn.clone()) } else { Change::RemoveResource(r.urn.clone()) };
        self.write(vec![remove]).await.map_err(|e| format!("deleted {} but that could not be recorded: {e}", r.id))?;
        self.resolved(&r.urn);
        let mut live = self.live.lock().expect("lock poisoned");
        if retired {
            live.retired.remove(&r.urn);
        } else {
            live.resources.remove(&r.urn);
        }
        Ok(())
    }
}

/// The outputs of a resource read back, as state keeps them: secret where they were (or
/// where they hold a secret input), and those in state when the provider cannot read its
/// outputs back (it reports `null`, like `local:Command`).
fn read_outputs(inputs: &Value, recorded: &Value, observed: Value) -> Value {
    if observed.is_null() {
        return recorded.clone();
    }
    value::Secrets::of(inputs).taint(value::copy_secrecy(recorded, observed))
}

/// The values of a program that may hold secrets: its inputs and its stack outputs.
fn program_values(desired: &Desired) -> impl Iterator<Item = &Value> {
    desired.resources.values().map(|r| &r.inputs).chain(desired.outputs.values())
}

/// The values of a state that may hold secrets: its resources' inputs and outputs, its stack
/// outputs and its pending records.
fn state_values(state: &StackState) -> impl Iterator<Item = &Value> {
    let records = state.resources.values().chain(state.retired.values());
    records
        .flat_map(|r| [&r.inputs, &r.outputs])
        .chain(state.outputs.values())
        .chain(state.pending.values().map(|p| &p.identity))
}

/// What a create did with the resource it replaced.
enum Made {
    New,
    Replaced,
    /// The provider made the replacement under the old resource's id.
    SameId(String),
}

/// What a step on `prior` must do to reach `inputs` (every value known): no change, an update
/// in place, or a replacement.
fn decide(d: &DesiredResource, prior: &ResourceState, inputs: &Value) -> Op {
    if prior.type_token != d.type_token {
        return Op::Replace;
    }
    let diffs = plan::diff(&prior.inputs, inputs, &d.replace_on_change);
    if diffs.is_empty() {
        Op::Same
    } else if diffs.iter().any(|p| p.forces_replacement) {
        Op::Replace
    } else {
        Op::Update
    }
}

/// Every output path the program uses, by resource: in inputs and in stack outputs.
fn used_outputs(desired: &Desired) -> HashMap<Urn, Vec<String>> {
    let mut refs = Vec::new();
    for r in desired.resources.values() {
        collect_unknowns(&r.inputs, &mut refs);
    }
    for v in desired.outputs.values() {
        collect_unknowns(v, &mut refs);
    }
    let mut used: HashMap<Urn, Vec<String>> = HashMap::new();
    for r in refs {
        let paths = used.entry(r.urn).or_default();
        if !paths.contains(&r.path) {
            paths.push(r.path);
        }
    }
    used
}

/// `prior` with the program's current options and dependencies: a state-only change.
fn restated(d: &DesiredResource, prior: &ResourceState) -> ResourceState {
    ResourceState { outputs: prior.outputs.clone(), ..record(d, prior.id.clone(), prior.inputs.clone(), Value::Null) }
}

fn collect_unknowns(v: &Value, into: &mut Vec<OutputRef>) {
    if let Some(r) = value::as_output_ref(v) {
        into.push(r);
        return;
    }
    match v {
        Value::Array(items) => items.iter().for_each(|i| collect_unknowns(i, into)),
        Value::Object(map) => map.values().for_each(|i| collect_unknowns(i, into)),
        _ => {}
    }
}

/// A resource whose reality differs from state.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Drift {
    pub urn: Urn,
    /// `None`: the resource no longer exists.
    pub diffs: Option<Vec<plan::PropertyDiff>>,
    #[serde(skip)]
    pub observed: Option<ResourceState>,
}

impl Engine {
    /// Reads every resource back (in parallel, bounded) and reports what differs from state.
    pub async fn refresh(&self, state: &StackState) -> Result<Vec<Drift>, String> {
        let (_never, cancel) = watch::channel(false);
        self.refresh_until(state, cancel).await
    }

    /// Like [`Engine::refresh`], giving up (having changed nothing) when `cancel` turns true.
    pub async fn refresh_until(&self, state: &StackState, cancel: watch::Receiver<bool>) -> Result<Vec<Drift>, String> {
        tokio::select! {
            r = self.read_all(state) => r,
            () = crate::interrupt::until_true(cancel) => Err("interrupted while reading resources back; nothing was recorded".into()),
        }
    }

    /// Reads every resource back: in batches of the resources of one type and provider
    /// configuration where the provider reads many per call ([`Provider::read_batch`]), one
    /// at a time otherwise; `parallel` batches at once.
    async fn read_all(&self, state: &StackState) -> Result<Vec<Drift>, String> {
        let mut groups: BTreeMap<(&str, String), Vec<&ResourceState>> = BTreeMap::new();
        for r in state.resources.values() {
            let settings = r.provider.as_ref().map(|p| p.settings.to_string()).unwrap_or_default();
            groups.entry((r.type_token.as_str(), settings)).or_default().push(r);
        }
        let mut batches: Vec<(Arc<dyn Provider>, Vec<&ResourceState>)> = Vec::new();
        for ((type_token, _), resources) in groups {
            let provider = self.provider(type_token)?;
            let size = provider.read_batch().max(1);
            for chunk in resources.chunks(size) {
                batches.push((provider.clone(), chunk.to_vec()));
            }
        }
        let total = state.resources.len();
        let mut reads = futures_util::stream::iter(batches.into_iter().map(|(provider, batch)| async move {
            let inputs: Vec<Value> = batch.iter().map(|r| value::reveal(&r.inputs)).collect();
            let items: Vec<ReadItem<'_>> = batch
                .iter()
                .zip(&inputs)
                .map(|(r, inputs)| ReadItem {
                    ctx: Context::new(&r.urn, &self.stack).configured(r.provider.as_ref()),
                    id: &r.id,
                    inputs,
                })
                .collect();
            let seen = provider.read_many(&items).await.map_err(|e| match batch.as_slice() {
                [one] => format!("`{}`: read failed: {e}", one.urn),
                more => format!("`{}` and {} more of its type: read failed: {e}", more[0].urn, more.len() - 1),
            })?;
            if seen.len() != batch.len() {
                return Err(format!(
                    "`{}`: the provider read {} of {} resources back (a bug in the provider)",
                    batch[0].urn,
                    seen.len(),
                    batch.len()
                ));
            }
            Ok::<_, String>(batch.into_iter().zip(seen).collect::<Vec<_>>())
        }))
        .buffer_unordered(self.parallel.max(1));
        let mut done = 0;
        let mut results = Vec::with_capacity(total);
        while let Some(result) = reads.next().await {
            let read = result.map_err(|e| value::Secrets::in_all(state_values(state)).scrub(&e))?;
            done += read.len();
            (self.events)(Event::Read { done, total });
            results.extend(read);
        }
        let mut drifts = Vec::new();
        for (r, seen) in results {
            match seen {
                None => drifts.push(Drift { urn: r.urn.clone(), diffs: None, observed: None }),
                Some(obs) => {
                    let inputs = value::copy_secrecy(&r.inputs, obs.inputs);
                    let outputs = read_outputs(&inputs, &r.outputs, obs.outputs);
                    let diffs = plan::diff(&r.inputs, &inputs, &[]);
                    if !diffs.is_empty() || outputs != r.outputs || obs.id != r.id {
                        drifts.push(Drift {
                            urn: r.urn.clone(),
                            diffs: Some(diffs),
                            observed: Some(ResourceState { id: obs.id, inputs, outputs, ..r.clone() }),
                        });
                    }
                }
            }
        }
        drifts.sort_by(|a, b| a.urn.cmp(&b.urn));
        Ok(drifts)
    }

    /// Records what `refresh` found.
    pub async fn write_refresh(&self, session: &dyn StateSession, drifts: &[Drift]) -> Result<(), String> {
        for d in drifts {
            let change = match &d.observed {
                Some(r) => Change::PutResource(r.clone()),
                None => Change::RemoveResource(d.urn.clone()),
            };
            self.write(session, vec![change]).await?;
        }
        Ok(())
    }
}
