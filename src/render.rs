//! The command line's view of the library's events ([`conceptree::events`]) on stderr: each
//! message its line, and the progress of long tasks (training epochs, a frozen trunk's features,
//! an image cache, a prediction) in one display.
//!
//! On a terminal, progress is a bar in one style (what, bar, count, loss and rate, time left),
//! cleared when its task ends; messages are written above it. In a log (stderr not a terminal) a
//! task gets a line every 10 s instead of a bar. A prediction's last line stays in both: nothing
//! else reports its rate and time (an epoch has its epoch line, a cache build its summary).
use std::io::IsTerminal;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use conceptree::events::{Event, Events, Task, Tick};
use indicatif::{ProgressBar, ProgressStyle};

/// How often a log gets a line of a task's progress.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The sink the commands hand the library: events rendered on stderr.
pub struct Stderr {
    terminal: bool,
    shown: Mutex<Option<Shown>>,
}

/// The task whose progress is on show: its bar (on a terminal), and when a log last had its line.
struct Shown {
    task: Task,
    bar: Option<ProgressBar>,
    last_line: Instant,
}

impl Shown {
    /// Show `first`'s task (a bar on a terminal, drawn whole from the start).
    fn start(first: &Tick, terminal: bool) -> Shown {
        let bar = terminal.then(|| {
            ProgressBar::new(first.total as u64)
                .with_style(ProgressStyle::with_template("{prefix} {bar:30} {pos}/{len} images, {msg}").expect("a valid template"))
                .with_prefix(first.task.to_string())
                .with_message(first.detail())
                .with_position(first.done as u64)
        });
        Shown { task: first.task.clone(), bar, last_line: Instant::now() }
    }

    fn clear(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Whether a task's last line stays: only a prediction's, the one report of its rate and time.
fn keeps_last_line(task: &Task) -> bool {
    *task == Task::Prediction
}

/// Whether a log gets a line for `tick`, `since` the task's last line (or its start).
fn logs(tick: &Tick, since: Duration) -> bool {
    if tick.is_last() {
        keeps_last_line(&tick.task)
    } else {
        since >= LOG_EVERY
    }
}

impl Stderr {
    pub fn new() -> Stderr {
        Stderr { terminal: std::io::stderr().is_terminal(), shown: Mutex::new(None) }
    }

    fn shown(&self) -> MutexGuard<'_, Option<Shown>> {
        self.shown.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn tick(&self, tick: Tick) {
        let mut shown = self.shown();
        if let Some(other) = shown.take_if(|s| s.task != tick.task) {
            other.clear(); // a task that ended early (a failed or shortened one)
        }
        let s = shown.get_or_insert_with(|| Shown::start(&tick, self.terminal));
        if let Some(bar) = &s.bar {
            bar.set_message(tick.detail());
            bar.set_position(tick.done as u64);
        }
        let now = Instant::now();
        let line = !self.terminal && logs(&tick, now.duration_since(s.last_line));
        if line {
            s.last_line = now;
        }
        if tick.is_last() {
            if let Some(s) = shown.take() {
                s.clear();
            }
            if keeps_last_line(&tick.task) {
                eprintln!("{tick}");
            }
        } else if line {
            eprintln!("{tick}");
        }
    }

    fn line(&self, event: &Event) {
        match self.shown().as_ref().and_then(|s| s.bar.as_ref()) {
            Some(bar) => bar.suspend(|| eprintln!("{event}")),
            None => eprintln!("{event}"),
        }
    }
}

impl Events for Stderr {
    fn emit(&self, event: Event) {
        match event {
            Event::Tick(tick) => self.tick(tick),
            other => self.line(&other),
        }
    }
}

impl Drop for Stderr {
    /// A bar left by a task that failed goes, so the error is written on a clean line.
    fn drop(&mut self) {
        if let Some(s) = self.shown().take() {
            s.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_gets_a_line_every_ten_seconds_and_a_predictions_last() {
        let tick = |task: Task, done: usize| Tick { task, done, total: 100, this_run: done, elapsed: Duration::from_secs(1), loss: None };
        let epoch = Task::Epoch { epoch: 1, epochs: 2, stage: "full".into() };
        assert!(!logs(&tick(Task::Prediction, 50), Duration::from_secs(5)));
        assert!(logs(&tick(Task::Prediction, 50), Duration::from_secs(11)));
        assert!(logs(&tick(epoch.clone(), 50), Duration::from_secs(11)));
        // the last: a prediction's always, an epoch's never (its epoch line follows)
        assert!(logs(&tick(Task::Prediction, 100), Duration::ZERO));
        assert!(!logs(&tick(epoch, 100), Duration::from_secs(11)));
        assert!(!logs(&tick(Task::ImageCache, 100), Duration::ZERO));
    }
}
