//! The lock's lifetime, in one place: take it, hand the session to the work, release it on
//! every way out.
//!
//! Every command that writes state runs inside [`with_lock`]. The ways out it covers:
//! the work succeeds or fails; Ctrl-C while waiting for the lock (the wait gives up and
//! leaves nothing behind); Ctrl-C during the work (the work sees [`Interrupt`] and stops at
//! its next safe point, then the lock is released as usual); and a second Ctrl-C (the work
//! is dropped where it stands, its pending records stay in state for the next run, and the
//! lock is still released if that takes at most [`FORCED_RELEASE`]). Keeping the lock alive
//! meanwhile is the backend's session's own business (the Consul session renews itself).

use std::time::Duration;

use super::{LockInfo, StateBackend, StateError, StateSession};
use crate::interrupt::Interrupt;

/// How long a forced stop waits for the lock to be released before leaving (the lock then
/// frees itself: the OS drops a file lock with the process, a Consul session expires).
pub const FORCED_RELEASE: Duration = Duration::from_secs(5);

/// Runs `work` holding the stack's lock for `operation`, waiting up to `timeout` for another
/// holder (`waiting` is told who that is, once, before the wait), and releases the lock
/// whatever happens. An error of `work` is returned before a failure to release.
pub async fn with_lock<T, E>(
    backend: &dyn StateBackend,
    operation: &str,
    timeout: Option<Duration>,
    interrupt: &Interrupt,
    waiting: impl FnOnce(&LockInfo),
    work: impl AsyncFnOnce(&mut dyn StateSession) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<StateError>,
{
    if timeout.is_some() {
        if let Some(holder) = backend.lock_holder().await? {
            waiting(&holder);
        }
    }
    let mut session = backend.lock_until(LockInfo::new(operation), timeout, interrupt.cancel()).await?;
    let result = tokio::select! {
        r = work(session.as_mut()) => Some(r),
        () = interrupt.forced() => None,
    };
    let Some(result) = result else {
        let _ = tokio::time::timeout(FORCED_RELEASE, session.release()).await;
        return Err(StateError::Forced.into());
    };
    let released = tokio::select! {
        r = session.release() => r,
        () = interrupt.forced() => Err(StateError::Forced),
    };
    let value = result?;
    released?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::file::FileBackend;

    #[tokio::test]
    async fn the_lock_is_released_on_success_error_and_a_forced_stop() {
        let dir = tempfile::tempdir().unwrap();
        let backend = FileBackend::new(dir.path(), "s");
        let never = Interrupt::never();
        let held = |_: &LockInfo| {};
        let ok: Result<u8, StateError> = with_lock(&backend, "t", None, &never, held, async |_| Ok(1)).await;
        assert_eq!(ok.unwrap(), 1);
        let failed: Result<u8, StateError> =
            with_lock(&backend, "t", None, &never, held, async |_| Err(StateError::Other("boom".into()))).await;
        assert_eq!(failed.unwrap_err().to_string(), "boom");

        let (interrupt, senders) = Interrupt::manual();
        let forced: Result<u8, StateError> = with_lock(&backend, "t", None, &interrupt, held, async |_| {
            senders.interrupt();
            senders.interrupt();
            std::future::pending().await
        })
        .await;
        assert!(matches!(forced, Err(StateError::Forced)));
        assert!(backend.lock_holder().await.unwrap().is_none(), "released");
    }

    #[tokio::test]
    async fn ctrl_c_while_waiting_for_the_lock_gives_up_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let backend = FileBackend::new(dir.path(), "s");
        let holder = backend.lock(LockInfo::new("other"), None).await.unwrap();
        let (interrupt, senders) = Interrupt::manual();
        let waiter = with_lock::<u8, StateError>(
            &backend,
            "t",
            Some(Duration::from_secs(60)),
            &interrupt,
            |h| assert_eq!(h.operation, "other"),
            async |_| Ok(1),
        );
        let stop = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            senders.interrupt();
        };
        let (result, ()) = tokio::join!(waiter, stop);
        assert!(matches!(result, Err(StateError::Interrupted)), "{result:?}");
        holder.release().await.unwrap();
        assert!(backend.lock(LockInfo::new("next"), None).await.is_ok());
    }
}
