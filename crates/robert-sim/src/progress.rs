//! Progress reporting: a small observer trait, a silent implementation and
//! one drawing `indicatif` bars (for the `robert simulate` and `robert demo`
//! commands).

use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Receives the progress of a run. Every method has an empty default.
pub trait Progress: Send + Sync {
    /// A phase starts (`"register"`, `"simulate"`, `"final status"` …) with
    /// `total` units (phones, or simulated seconds).
    fn phase(&self, scenario: &str, phase: &str, total: u64) {
        let _ = (scenario, phase, total);
    }
    /// `done` units of the current phase are done.
    fn advance(&self, done: u64) {
        let _ = done;
    }
    /// The current phase is over.
    fn finish_phase(&self) {}
    /// A notable event (a report, a batch run), already formatted.
    fn event(&self, text: &str) {
        let _ = text;
    }
}

/// Reports nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// Progress bars on standard error (hidden when it is not a terminal).
#[derive(Debug)]
pub struct BarProgress {
    multi: MultiProgress,
    bar: Mutex<Option<ProgressBar>>,
    verbose: bool,
}

impl BarProgress {
    /// Bars on standard error; with `verbose`, events are printed above them.
    pub fn new(verbose: bool) -> Self {
        Self {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bar: Mutex::new(None),
            verbose,
        }
    }

    fn current(&self) -> std::sync::MutexGuard<'_, Option<ProgressBar>> {
        self.bar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Progress for BarProgress {
    fn phase(&self, scenario: &str, phase: &str, total: u64) {
        let style = ProgressStyle::with_template(
            "{prefix:>24} {msg:<13} [{bar:32}] {percent:>3}% {elapsed_precise}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let bar = self.multi.add(ProgressBar::new(total.max(1)));
        bar.set_style(style);
        bar.set_prefix(truncate(scenario, 24));
        bar.set_message(phase.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        if let Some(old) = self.current().replace(bar) {
            old.finish_and_clear();
        }
    }

    fn advance(&self, done: u64) {
        if let Some(b) = self.current().as_ref() {
            b.set_position(done);
        }
    }

    fn finish_phase(&self) {
        if let Some(b) = self.current().take() {
            b.finish_and_clear();
        }
    }

    fn event(&self, text: &str) {
        if self.verbose {
            let _ = self.multi.println(text);
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}
