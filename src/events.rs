//! What the library has to say while it works, as typed [`Event`]s sent to a sink ([`Events`]) the
//! caller passes in. The library never prints: the command line renders events on stderr (its
//! `render.rs`: a line per message, one progress display), tests collect them ([`Collect`]), the
//! benchmark shows the messages and drops the progress ([`Silent`] drops everything).
//!
//! Each event's `Display` is the line a person reads (several lines for [`Plan`] and [`Event::Text`]),
//! without a final newline; a field is kept typed wherever one is natural, so a sink can act on it
//! without parsing text. On the ground floor: events name no library type, only plain data.
use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// A sink for events. Any `Fn(Event)` is one.
pub trait Events {
    fn emit(&self, event: Event);
}

impl<F: Fn(Event)> Events for F {
    fn emit(&self, event: Event) {
        self(event)
    }
}

/// The sink that drops every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Events for Silent {
    fn emit(&self, _: Event) {}
}

/// The sink that keeps every event, in order (for tests).
#[derive(Debug, Default)]
pub struct Collect(Mutex<Vec<Event>>);

impl Collect {
    /// The events so far, leaving none.
    pub fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Events for Collect {
    fn emit(&self, event: Event) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(event);
    }
}

/// Something the library reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A remark worth knowing, shown as `note: …`.
    Note(String),
    /// Text another part of the library words, shown as it is: a label file's detected format,
    /// the rows and images `--skip-bad` skipped.
    Text(String),
    /// Files in an image folder that are not taken as images (`ignored` says which kinds).
    NotImages { dir: PathBuf, ignored: String },
    /// A run reads its images from an image cache.
    ImageCache { dir: PathBuf, entries: usize, size: u32 },
    /// A level has no training concept: its head is left out.
    EmptyLevel { level: String },
    /// Trunk weights loaded into a new run.
    WeightsLoaded { path: PathBuf, loaded: usize, ignored: usize },
    /// A run continues: after the epoch its checkpoint holds, or (`None`) from the beginning.
    Resuming { run: PathBuf, after_epoch: Option<usize> },
    /// What a run is about to train.
    Plan(Plan),
    /// A frozen trunk's features would not fit in `--feature-cache-gib`.
    FeaturesUncached { gib: f64, limit_gib: f64 },
    /// How far a long task has come.
    Tick(Tick),
    /// An epoch skipped steps for non-finite fp16 gradients.
    SkippedSteps { steps: u64, scale: f64 },
    /// Early in a run's first epoch: how long an epoch and the run will take.
    Estimate { images_per_second: f64, epoch_seconds: f64, epochs: usize },
    /// An epoch trained and validated.
    EpochFinished(EpochEnd),
    /// `--keep best`: the run keeps an earlier epoch's weights than its last.
    KeepingEpoch { epoch: usize, f1: f64, last: usize },
    /// A kNN run's index is built.
    KnnIndex { images: usize, concepts: usize, k: usize },
    /// An experiment's run starts, continues or is reused.
    ExperimentRun { label: String, dir: PathBuf, start: RunStart },
    /// An experiment row scored on the test part (`model_weight`: its kNN fusion weight).
    Scored { row: String, seed: u64, test_f1: f64, val_f1: f64, model_weight: Option<f64> },
    /// A server answered a request with a server error (the error and its causes).
    ServerError(String),
}

/// What an experiment does with one of its runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStart {
    Train,
    Resume,
    Reuse,
}

/// A run's plan: its model, data, device and schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// `flat`, `hierarchical`, `hybrid`, `kNN retrieval (no training)`.
    pub model: String,
    pub trunk: String,
    pub heads: Vec<HeadPlan>,
    pub concepts: usize,
    pub train_images: usize,
    pub val_images: usize,
    pub device: String,
    pub precision: String,
    pub memory_format: String,
    /// The stage schedule, one indented line per stage and learning-rate group.
    pub schedule: String,
}

/// A head of a planned model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadPlan {
    pub name: String,
    pub concepts: usize,
    /// The outputs beyond one per concept, as the plan names them (a single-label head's `" + none"`), or `""`.
    pub extra_outputs: &'static str,
}

/// An epoch's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochEnd {
    pub epoch: usize,
    pub stage: String,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_f1: f64,
    pub val_f1_tuned: f64,
    /// `--keep best` kept this epoch (the best so far).
    pub kept_as_best: bool,
    pub images_per_second: f64,
    pub seconds: f64,
}

/// A long task whose progress is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    /// A training epoch (`epoch` of `epochs`) of a stage.
    Epoch { epoch: usize, epochs: usize, stage: String },
    /// A frozen trunk's features of the training images.
    TrunkFeatures,
    /// Images decoded into an image cache.
    ImageCache,
    /// Images predicted into files.
    Prediction,
}

/// Where a task stands: images done of all, and the rate of this process.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    pub task: Task,
    /// Images done, those of an interrupted run included.
    pub done: usize,
    pub total: usize,
    /// Images done by this process.
    pub this_run: usize,
    /// Time since this process started the task.
    pub elapsed: Duration,
    /// A training epoch's mean loss so far.
    pub loss: Option<f64>,
}

impl Tick {
    /// Images per second in this process.
    pub fn rate(&self) -> f64 {
        self.this_run as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Whether the task is done.
    pub fn is_last(&self) -> bool {
        self.done >= self.total
    }

    /// Everything but the count: `loss 0.6931, 812.3 img/s, about 2 min left`.
    pub fn detail(&self) -> String {
        let loss = self.loss.map_or(String::new(), |l| format!("loss {l:.4}, "));
        let time = if self.this_run == 0 {
            String::new()
        } else if self.is_last() {
            format!(", done in {}", duration(self.elapsed.as_secs_f64()))
        } else {
            format!(", about {} left", duration((self.total - self.done) as f64 / self.rate()))
        };
        format!("{loss}{:.1} img/s{time}", self.rate())
    }
}

/// `1 h 05 min`, `12 min`, `40 s`: the one way a duration is shown.
pub fn duration(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..=89 => format!("{s} s"),
        90..=3599 => format!("{} min", (s + 30) / 60),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600 + 30) / 60),
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Task::Epoch { epoch, epochs, stage } => write!(f, "epoch {epoch}/{epochs} [{stage}]"),
            Task::TrunkFeatures => f.write_str("trunk features of"),
            Task::ImageCache => f.write_str("cached"),
            Task::Prediction => f.write_str("predicted"),
        }
    }
}

/// `predicted 6400/100000 images (6.4%), 812.3 img/s, about 2 min left`.
impl fmt::Display for Tick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = 100.0 * self.done as f64 / self.total.max(1) as f64;
        write!(f, "{} {}/{} images ({pct:.1}%), {}", self.task, self.done, self.total, self.detail())
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        let heads: Vec<String> = self.heads.iter().map(|h| format!("{} ({} concept{}{})", h.name, h.concepts, plural(h.concepts), h.extra_outputs)).collect();
        writeln!(
            f,
            "training a {} model: trunk {}, {} head{}: {}; {} concepts; {} training / {} validation images; device {}",
            self.model,
            self.trunk,
            heads.len(),
            plural(heads.len()),
            heads.join(", "),
            self.concepts,
            self.train_images,
            self.val_images,
            self.device
        )?;
        writeln!(f, "precision {}, memory format {}", self.precision, self.memory_format)?;
        write!(f, "schedule:\n{}", self.schedule.trim_end_matches('\n'))
    }
}

impl fmt::Display for EpochEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "epoch {:>3} [{}] train loss {:.4}  val loss {:.4}  val F1 {:.4} at 0.5, {:.4} tuned{}  ({:.1} img/s, {:.1}s)",
            self.epoch,
            self.stage,
            self.train_loss,
            self.val_loss,
            self.val_f1,
            self.val_f1_tuned,
            if self.kept_as_best { " (best so far: kept)" } else { "" },
            self.images_per_second,
            self.seconds
        )
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Note(text) => write!(f, "note: {text}"),
            Event::Text(text) => f.write_str(text.trim_end_matches('\n')),
            Event::NotImages { dir, ignored } => write!(f, "note: in {}, not taken as images: {ignored}", dir.display()),
            Event::ImageCache { dir, entries, size } => write!(f, "images from the cache {} ({entries} entries, {size}x{size})", dir.display()),
            Event::EmptyLevel { level } => write!(f, "note: no training concept on level '{level}'; that head is left out"),
            Event::WeightsLoaded { path, loaded, ignored } => write!(f, "loaded {loaded} trunk tensors from {} ({ignored} ignored)", path.display()),
            Event::Resuming { run, after_epoch: Some(epoch) } => write!(f, "resuming {} after epoch {epoch}", run.display()),
            Event::Resuming { run, after_epoch: None } => write!(f, "resuming {}: no epoch had finished, so it starts from the beginning", run.display()),
            Event::Plan(plan) => plan.fmt(f),
            Event::FeaturesUncached { gib, limit_gib } => {
                write!(f, "note: trunk features would take {gib:.2} GiB (over --feature-cache-gib {limit_gib}); the frozen trunk runs on every batch instead")
            }
            Event::Tick(tick) => tick.fmt(f),
            Event::SkippedSteps { steps, scale } => write!(f, "note: {steps} step(s) skipped for non-finite fp16 gradients; loss scale now {scale}"),
            Event::Estimate { images_per_second, epoch_seconds, epochs } => write!(
                f,
                "about {} per epoch at {images_per_second:.1} img/s; about {} for {epochs} epochs (validation not included)",
                duration(*epoch_seconds),
                duration(epoch_seconds * *epochs as f64)
            ),
            Event::EpochFinished(end) => end.fmt(f),
            Event::KeepingEpoch { epoch, f1, last } => write!(f, "keeping epoch {epoch} (best validation F1 {f1:.4}), not the last ({last})"),
            Event::KnnIndex { images, concepts, k } => write!(f, "kNN index: {images} training images, {concepts} concepts, k = {k}"),
            Event::ExperimentRun { label, start: RunStart::Train, .. } => write!(f, "== {label}"),
            Event::ExperimentRun { label, dir, start: RunStart::Resume } => write!(f, "== {label}: resuming {}", dir.display()),
            Event::ExperimentRun { label, dir, start: RunStart::Reuse } => write!(f, "== {label}: already trained, reusing {}", dir.display()),
            Event::Scored { row, seed, test_f1, val_f1, model_weight } => {
                write!(f, "   {row} (seed {seed}): test F1 {test_f1:.4}, validation {val_f1:.4}")?;
                match model_weight {
                    Some(a) => write!(f, ", model weight {a:.1}"),
                    None => Ok(()),
                }
            }
            Event::ServerError(chain) => write!(f, "error: {chain}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(40.2), "40 s");
        assert_eq!(duration(725.0), "12 min");
        assert_eq!(duration(3900.0), "1 h 05 min");
    }

    #[test]
    fn progress_lines_say_count_rate_and_time_left() {
        let t = Tick { task: Task::Prediction, done: 6400, total: 100_000, this_run: 1600, elapsed: Duration::from_secs(2), loss: None };
        assert_eq!(t.to_string(), "predicted 6400/100000 images (6.4%), 800.0 img/s, about 2 min left");
        let done = Tick { done: 100, total: 100, this_run: 100, elapsed: Duration::from_secs(4), ..t.clone() };
        assert_eq!(done.to_string(), "predicted 100/100 images (100.0%), 25.0 img/s, done in 4 s");
        let nothing = Tick { done: 100, total: 100, this_run: 0, elapsed: Duration::ZERO, ..t };
        assert_eq!(nothing.to_string(), "predicted 100/100 images (100.0%), 0.0 img/s");
        let epoch = Tick { task: Task::Epoch { epoch: 2, epochs: 5, stage: "full".into() }, done: 32, total: 64, this_run: 32, elapsed: Duration::from_secs(2), loss: Some(0.69312) };
        assert_eq!(epoch.to_string(), "epoch 2/5 [full] 32/64 images (50.0%), loss 0.6931, 16.0 img/s, about 2 s left");
    }

    #[test]
    fn messages_read_as_they_always_have() {
        let e = Event::Resuming { run: "runs/a".into(), after_epoch: Some(3) };
        assert_eq!(e.to_string(), "resuming runs/a after epoch 3");
        assert_eq!(Event::Estimate { images_per_second: 80.0, epoch_seconds: 725.0, epochs: 10 }.to_string(), "about 12 min per epoch at 80.0 img/s; about 2 h 01 min for 10 epochs (validation not included)");
        assert_eq!(Event::Text("skipped 2 rows:\n  e.g. line 3\n".into()).to_string(), "skipped 2 rows:\n  e.g. line 3");
        let plan = Plan {
            model: "flat".into(),
            trunk: "tiny".into(),
            heads: vec![HeadPlan { name: "flat".into(), concepts: 1, extra_outputs: "" }],
            concepts: 1,
            train_images: 8,
            val_images: 2,
            device: "Cpu".into(),
            precision: "fp32".into(),
            memory_format: "contiguous".into(),
            schedule: "  stage 1 'full': 1 epoch(s)\n".into(),
        };
        assert_eq!(
            Event::Plan(plan).to_string(),
            "training a flat model: trunk tiny, 1 head: flat (1 concept); 1 concepts; 8 training / 2 validation images; device Cpu\nprecision fp32, memory format contiguous\nschedule:\n  stage 1 'full': 1 epoch(s)"
        );
    }

    #[test]
    fn a_collecting_sink_keeps_events_in_order() {
        let sink = Collect::default();
        let emit = |s: &dyn Events| {
            s.emit(Event::Note("one".into()));
            s.emit(Event::KnnIndex { images: 4, concepts: 2, k: 1 });
        };
        emit(&sink);
        emit(&Silent);
        assert_eq!(sink.take(), vec![Event::Note("one".into()), Event::KnnIndex { images: 4, concepts: 2, k: 1 }]);
        assert!(sink.take().is_empty());
    }
}
