//! The reaper removes leftover containers: those labelled as this runner instance's
//! (`cairn.runner=1`, `cairn.runner.instance=<instance>`) that no task of this process owns.
//! It runs once at startup (anything there is from a previous process) and then periodically
//! (removals that failed, or anything else that escaped its guard).

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::query_parameters::ListContainersOptions;

use crate::task::{remove_container, INSTANCE_LABEL, LABEL};
use crate::AppState;

/// What the health endpoint shows about the reaper.
#[derive(Debug, Clone, Default)]
pub struct ReaperStatus {
    pub last_run: Option<Instant>,
    pub last_error: Option<String>,
}

/// Ids of this instance's labelled containers, with their creation time (Unix seconds).
pub async fn labelled_containers(state: &AppState) -> Result<Vec<(String, i64)>, bollard::errors::Error> {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("{LABEL}=1"), format!("{INSTANCE_LABEL}={}", state.config().server.instance)],
    )]);
    let containers = state
        .docker()
        .list_containers(Some(ListContainersOptions { all: true, filters: Some(filters), ..Default::default() }))
        .await?;
    Ok(containers.into_iter().filter_map(|c| Some((c.id?, c.created.unwrap_or(0)))).collect())
}

/// Removes this instance's labelled containers that no task owns and that are at least
/// `min_age` old. Returns how many were removed.
pub async fn reap_once(state: &AppState, min_age: Duration) -> Result<usize, bollard::errors::Error> {
    let result = reap(state, min_age).await;
    let mut status = state.reaper_status_mut();
    status.last_run = Some(Instant::now());
    status.last_error = result.as_ref().err().map(|e| e.to_string());
    result
}

async fn reap(state: &AppState, min_age: Duration) -> Result<usize, bollard::errors::Error> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let mut removed = 0;
    for (id, created) in labelled_containers(state).await? {
        if state.containers().is_live(&id) {
            continue;
        }
        if now.saturating_sub(created) < min_age.as_secs() as i64 {
            continue;
        }
        tracing::warn!(container_id = %id, "removing leftover container");
        if remove_container(state, &id).await {
            removed += 1;
        }
    }
    if removed > 0 {
        state.metrics().leaked(removed as u64);
    }
    Ok(removed)
}

/// Runs [`reap_once`] every `reaper.interval_ms` until the task is aborted.
pub fn spawn_periodic(state: AppState) -> Option<tokio::task::JoinHandle<()>> {
    let interval = Duration::from_millis(state.config().reaper.interval_ms);
    if interval.is_zero() {
        return None;
    }
    let min_age = Duration::from_millis(state.config().reaper.min_age_ms);
    Some(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            match reap_once(&state, min_age).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(removed = n, "reaper removed leftover containers"),
                Err(err) => tracing::error!(error = %err, "reaper failed to list containers"),
            }
        }
    }))
}
