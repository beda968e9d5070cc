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
    /// The tenth of refresh's reads last shown (without a terminal).
    last_tenth: Mutex<usize>,
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
            last_tenth: Mutex::new(0),
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

    /// Refresh's progress: a bar on a terminal, otherwise a line on stderr at each tenth (and
    /// the end), apart from the drift that refresh prints on stdout.
    fn read(&self, done: usize, total: usize) {
        if self.tty {
            let mut bar = self.total.lock().expect("lock poisoned");
            let bar = bar.get_or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new(total as u64));
                bar.set_style(
                    ProgressStyle::with_template("{bar:30} {pos}/{len} read back  {elapsed}").expect("valid template"),
                );
                bar
            });
            bar.set_position(done as u64);
            if done == total {
                bar.finish_and_clear();
            }
            return;
        }
        let tenth = |n: usize| n * 10 / total.max(1);
        let mut last = self.last_tenth.lock().expect("lock poisoned");
        if done == total || tenth(done) > *last {
            *last = tenth(done);
            eprintln!("read back {done} of {total} resources");
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
            Event::Read { done, total } => self.read(done, total),
        }
    }
}
