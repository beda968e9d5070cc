//! Live progress: a bar with one spinner per running step on a terminal, one line per event
//! otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::apply::Event;
use crate::urn::Urn;

pub(super) struct Progress {
    tty: bool,
    multi: MultiProgress,
    total: Mutex<Option<ProgressBar>>,
    running: Mutex<HashMap<Urn, ProgressBar>>,
}

impl Progress {
    pub(super) fn new() -> Progress {
        let tty = std::io::stderr().is_terminal();
        let target = if tty { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        Progress {
            tty,
            multi: MultiProgress::with_draw_target(target),
            total: Mutex::new(None),
            running: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn start(&self, steps: usize) {
        if !self.tty {
            return;
        }
        let bar = self.multi.add(ProgressBar::new(steps as u64));
        bar.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {elapsed}").expect("valid template"));
        *self.total.lock().expect("lock poisoned") = Some(bar);
    }

    pub(super) fn finish(&self) {
        if let Some(bar) = self.total.lock().expect("lock poisoned").take() {
            bar.finish_and_clear();
        }
        for (_, bar) in self.running.lock().expect("lock poisoned").drain() {
            bar.finish_and_clear();
        }
    }

    fn line(&self, text: String) {
        if self.tty {
            let _ = self.multi.println(text);
        } else {
            println!("{text}");
        }
    }

    pub(super) fn event(&self, e: Event) {
        match e {
            Event::Started { urn, op } => {
                if self.tty {
                    let bar = self.multi.add(ProgressBar::new_spinner());
                    bar.set_style(ProgressStyle::with_template("  {spinner} {msg} {elapsed}").expect("valid template"));
                    bar.set_message(format!("{} {urn}", op.verb()));
                    bar.enable_steady_tick(Duration::from_millis(120));
                    self.running.lock().expect("lock poisoned").insert(urn, bar);
                } else {
                    self.line(format!("{} {urn} ...", op.verb()));
                }
            }
            Event::Finished { urn, op, elapsed } => {
                if let Some(bar) = self.running.lock().expect("lock poisoned").remove(&urn) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                if let Some(total) = &*self.total.lock().expect("lock poisoned") {
                    total.inc(1);
                }
                self.line(format!("{} {urn} done ({:.1}s)", op.verb(), elapsed.as_secs_f64()));
            }
            Event::Failed { urn, op, error } => {
                if let Some(bar) = self.running.lock().expect("lock poisoned").remove(&urn) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                self.line(format!("{} {urn} FAILED: {error}", op.verb()));
            }
            Event::Skipped { urn, op, because } => self.line(format!("{} {urn} skipped: {because} failed", op.verb())),
            Event::Recovered { urn, what } => self.line(format!("reconciled {urn}: {what}")),
        }
    }
}
