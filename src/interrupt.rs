//! Ctrl-C (and SIGTERM) in two stages, the same in every phase of every command.
//!
//! - The first asks whatever runs to stop at its next safe point: no new step starts,
//!   running ones finish and are saved, a lock wait or a prompt gives up, and the lock is
//!   released. The process then exits with 130.
//! - A second one stops at once: work in flight is dropped (its pending records stay in
//!   state, and the next run reconciles them), and the lock is still released when that can
//!   be done in a few seconds.
//!
//! [`Interrupt::install`] takes over the signals for the whole process; library users and
//! tests that do not want that use [`Interrupt::never`] or [`Interrupt::manual`].

use std::sync::Arc;

use tokio::sync::watch;

/// The process's interruption state: cheap to clone, shared by every phase.
#[derive(Debug, Clone)]
pub struct Interrupt {
    soft: watch::Receiver<bool>,
    hard: watch::Receiver<bool>,
    /// Keeps the channels open when nothing else sends (`never`, `manual`).
    _senders: Option<Arc<Senders>>,
}

/// The sending side, for [`Interrupt::manual`].
#[derive(Debug)]
pub struct Senders {
    soft: watch::Sender<bool>,
    hard: watch::Sender<bool>,
}

impl Senders {
    /// As if Ctrl-C was pressed: the first call asks to stop, the second forces it.
    pub fn interrupt(&self) {
        if *self.soft.borrow() {
            let _ = self.hard.send(true);
        } else {
            let _ = self.soft.send(true);
        }
    }
}

impl Interrupt {
    /// Handles SIGINT and SIGTERM from now on (call it inside the runtime, once).
    pub fn install() -> Interrupt {
        let (soft_tx, soft) = watch::channel(false);
        let (hard_tx, hard) = watch::channel(false);
        let signals = Signals::new();
        tokio::spawn(async move {
            let Some(mut signals) = signals else {
                eprintln!("warning: cannot handle Ctrl-C in this process");
                return;
            };
            let mut seen = 0;
            loop {
                if !signals.next().await {
                    return;
                }
                seen += 1;
                match seen {
                    1 => {
                        eprintln!(
                            "\ninterrupted: stopping at the next safe point (running steps finish and are saved, \
                             the lock is released); press Ctrl-C again to stop at once"
                        );
                        let _ = soft_tx.send(true);
                    }
                    2 => {
                        eprintln!(
                            "\nstopping at once: operations in flight are left pending and will be reconciled by the \
                             next run; releasing the lock"
                        );
                        let _ = hard_tx.send(true);
                    }
                    _ => eprintln!("\nstill releasing the lock (at most a few seconds)"),
                }
            }
        });
        Interrupt { soft, hard, _senders: None }
    }

    /// An interruption that never comes.
    pub fn never() -> Interrupt {
        Interrupt::manual().0
    }

    /// An interruption that comes when the returned senders say so (for tests).
    pub fn manual() -> (Interrupt, Arc<Senders>) {
        let (soft_tx, soft) = watch::channel(false);
        let (hard_tx, hard) = watch::channel(false);
        let senders = Arc::new(Senders { soft: soft_tx, hard: hard_tx });
        (Interrupt { soft, hard, _senders: Some(senders.clone()) }, senders)
    }

    /// Whether stopping was asked for.
    pub fn is_requested(&self) -> bool {
        *self.soft.borrow()
    }

    /// Whether stopping at once was asked for.
    pub fn is_forced(&self) -> bool {
        *self.hard.borrow()
    }

    /// A receiver that turns true when stopping is asked for (what [`crate::apply::Engine`]
    /// takes as its cancel signal).
    pub fn cancel(&self) -> watch::Receiver<bool> {
        self.soft.clone()
    }

    /// Resolves when stopping is asked for.
    pub async fn requested(&self) {
        until_true(self.soft.clone()).await
    }

    /// Resolves when stopping at once is asked for.
    pub async fn forced(&self) {
        until_true(self.hard.clone()).await
    }
}

/// Resolves when `rx` holds true; never, if its sender is gone without sending it.
pub async fn until_true(mut rx: watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// SIGINT and SIGTERM, registered once so that none is missed between two waits.
struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Option<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Some(Signals { int: signal(SignalKind::interrupt()).ok()?, term: signal(SignalKind::terminate()).ok()? })
        }
        #[cfg(not(unix))]
        {
            Some(Signals {})
        }
    }

    /// Waits for the next one; false when signals can no longer be received.
    async fn next(&mut self) -> bool {
        #[cfg(unix)]
        {
            tokio::select! {
                s = self.int.recv() => s.is_some(),
                s = self.term.recv() => s.is_some(),
            }
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c().await.is_ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn two_stages() {
        let (i, senders) = Interrupt::manual();
        assert!(!i.is_requested());
        senders.interrupt();
        i.requested().await;
        assert!(i.is_requested() && !i.is_forced());
        assert!(*i.cancel().borrow());
        senders.interrupt();
        i.forced().await;
        assert!(i.is_forced());
    }

    #[tokio::test]
    async fn never_never_comes() {
        let i = Interrupt::never();
        let waited = tokio::time::timeout(std::time::Duration::from_millis(20), i.requested()).await;
        assert!(waited.is_err());
    }
}
