//! Errors across the stages, and the one rule that turns them into exit codes.
//!
//! **Exit codes.** 0: success. 2: bad usage or bad input: something the user can fix by changing
//! the command line or an input file (a malformed or missing input file, an unknown id or CUI, an
//! option out of range, a run directory that is locked, unfinished or was made with another
//! ontology). 1: a failure that is not the input's fault (disk full, a read-only file system,
//! libtorch, a bug).
//!
//! Each stage's error type says which of its variants are bad input in one place, its
//! [`Classify::is_bad_input`], with an exhaustive `match`; [`Error`] wraps every stage's error,
//! so [`Error::exit_code`] is one exhaustive `match` that cannot miss a type.
use std::path::PathBuf;

use crate::data::cache::CacheError;
use crate::data::dataset::DatasetError;
use crate::data::labels::LabelError;
use crate::data::decode::PipelineError;
use crate::data::output::OutputDirError;
use crate::data::stats::FolderError;
use crate::synth::SynthError;
use crate::eval::submission::SubmissionError;
use crate::eval::thresholds::ThresholdError;
use crate::model::weights::WeightsError;
use crate::ontology::OntologyError;
use crate::predict::export::ExportError;
use crate::predict::shard::MergeError;
use crate::predict::PredictError;
use crate::report::analyse::AnalyseError;
use crate::report::figures::FigureError;
use crate::report::plot::PngError;
use crate::review::ReviewError;
use crate::run::outputs::OutputError;
use crate::train::{ConfigError, RunError, TrainError};

pub use crate::classify::{io_is_bad_input, report_chain, Classify, EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK};

/// Any error of the library, as the command line sees it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Labels(#[from] LabelError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Folders(#[from] FolderError),
    #[error(transparent)]
    Synth(#[from] SynthError),
    #[error(transparent)]
    OutputDir(#[from] OutputDirError),
    #[error(transparent)]
    Outputs(#[from] OutputError),
    #[error(transparent)]
    Ontology(#[from] OntologyError),
    #[error(transparent)]
    Submission(#[from] SubmissionError),
    #[error(transparent)]
    Thresholds(#[from] ThresholdError),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Predict(#[from] PredictError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Merge(#[from] MergeError),
    #[error(transparent)]
    Analyse(#[from] AnalyseError),
    #[error(transparent)]
    Png(#[from] PngError),
    #[error(transparent)]
    Figure(#[from] FigureError),
    #[error(transparent)]
    Review(#[from] ReviewError),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// An option or argument combination the command refuses.
    #[error("{0}")]
    Usage(String),
    /// Reading an input file or directory failed.
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// Writing an output failed.
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    /// An external program (Graphviz) failed.
    #[error("{program}: {message}")]
    Tool { program: String, message: String },
}

impl Error {
    /// The process exit code for this error (see the module docs for the rule).
    pub fn exit_code(&self) -> i32 {
        if self.is_bad_input() {
            EXIT_BAD_INPUT
        } else {
            EXIT_FAILURE
        }
    }

    /// A usage error (exit code 2) with this message.
    pub fn usage(message: impl Into<String>) -> Error {
        Error::Usage(message.into())
    }

    /// An [`Error::Read`] for `path`.
    pub fn read(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Read { path, source }
    }

    /// An [`Error::Write`] for `path`.
    pub fn write(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Write { path, source }
    }

    /// The message with its causes, each cause shown once: a cause whose text the message already
    /// carries (as `"cannot write X: No space left on device"` carries the OS error) is not repeated.
    pub fn report(&self) -> String {
        report_chain(self)
    }
}

impl Classify for Error {
    fn is_bad_input(&self) -> bool {
        match self {
            Error::Labels(e) => e.is_bad_input(),
            Error::Dataset(e) => e.is_bad_input(),
            Error::Pipeline(e) => e.is_bad_input(),
            Error::Cache(e) => e.is_bad_input(),
            Error::Folders(e) => e.is_bad_input(),
            Error::Synth(e) => e.is_bad_input(),
            Error::OutputDir(e) => e.is_bad_input(),
            Error::Outputs(e) => e.is_bad_input(),
            Error::Ontology(e) => e.is_bad_input(),
            Error::Submission(e) => e.is_bad_input(),
            Error::Thresholds(e) => e.is_bad_input(),
            Error::Weights(e) => e.is_bad_input(),
            Error::Config(e) => e.is_bad_input(),
            Error::Run(e) => e.is_bad_input(),
            Error::Train(e) => e.is_bad_input(),
            Error::Predict(e) => e.is_bad_input(),
            Error::Export(e) => e.is_bad_input(),
            Error::Merge(e) => e.is_bad_input(),
            Error::Analyse(e) => e.is_bad_input(),
            Error::Png(e) => e.is_bad_input(),
            Error::Figure(e) => e.is_bad_input(),
            Error::Review(e) => e.is_bad_input(),
            Error::Torch(_) => false,
            Error::Usage(_) => true,
            Error::Read { source, .. } => io_is_bad_input(false, source),
            Error::Write { source, .. } => io_is_bad_input(true, source),
            Error::Tool { .. } => false,
        }
    }
}

impl Classify for LabelError {
    fn is_bad_input(&self) -> bool {
        match self {
            LabelError::Io { source, .. } => io_is_bad_input(false, source),
            LabelError::Malformed { .. }
            | LabelError::DuplicateId { .. }
            | LabelError::BadCui { .. }
            | LabelError::EmptyLabels { .. }
            | LabelError::RepeatedCui { .. }
            | LabelError::Empty { .. }
            | LabelError::UnknownFormat { .. }
            | LabelError::Captions { .. } => true,
        }
    }
}

impl Classify for DatasetError {
    fn is_bad_input(&self) -> bool {
        match self {
            DatasetError::Io { source, .. } => io_is_bad_input(false, source),
            DatasetError::NoImageDir(_)
            | DatasetError::MissingImage { .. }
            | DatasetError::AmbiguousImage { .. }
            | DatasetError::BadImage { .. }
            | DatasetError::Malformed { .. }
            | DatasetError::NoUsableImages { .. } => true,
            DatasetError::Labels(e) => e.is_bad_input(),
        }
    }
}

impl Classify for PipelineError {
    fn is_bad_input(&self) -> bool {
        match self {
            PipelineError::Decode { .. } => true,
        }
    }
}

impl Classify for CacheError {
    fn is_bad_input(&self) -> bool {
        match self {
            CacheError::Io { source, .. } => io_is_bad_input(false, source),
            CacheError::Invalid { .. } | CacheError::NotCovered { .. } | CacheError::Stale { .. } | CacheError::Size { .. } => true,
            CacheError::Image(e) => e.is_bad_input(),
        }
    }
}

impl Classify for FolderError {
    fn is_bad_input(&self) -> bool {
        match self {
            FolderError::Io { source, .. } => io_is_bad_input(false, source),
            FolderError::NotACui { .. } | FolderError::Conflict { .. } | FolderError::MissingImage { .. } => true,
            FolderError::Images(e) => e.is_bad_input(),
        }
    }
}

impl Classify for SynthError {
    fn is_bad_input(&self) -> bool {
        match self {
            SynthError::Io { source, .. } => io_is_bad_input(true, source),
            SynthError::Image { .. } => false,
            SynthError::BadConfig(_) => true,
        }
    }
}

impl Classify for OutputDirError {
    fn is_bad_input(&self) -> bool {
        match self {
            OutputDirError::NotADirectory { .. } | OutputDirError::NotEmpty { .. } => true,
            OutputDirError::Create { source, .. } => io_is_bad_input(true, source),
        }
    }
}

impl Classify for OntologyError {
    fn is_bad_input(&self) -> bool {
        // every variant is about an ontology file or a CUI the user gave
        true
    }
}

impl Classify for SubmissionError {
    fn is_bad_input(&self) -> bool {
        true
    }
}

impl Classify for ThresholdError {
    fn is_bad_input(&self) -> bool {
        match self {
            ThresholdError::Io { source, .. } => io_is_bad_input(false, source),
            ThresholdError::Json { .. } | ThresholdError::Invalid { .. } => true,
            // shapes, duplicates and grids come from the program, not from a file
            ThresholdError::Shape { .. } | ThresholdError::DuplicateConcept { .. } | ThresholdError::DuplicateId { .. } | ThresholdError::BadGrid(_) => false,
        }
    }
}

impl Classify for WeightsError {
    fn is_bad_input(&self) -> bool {
        match self {
            WeightsError::Read { .. } | WeightsError::Missing { .. } | WeightsError::Shape { .. } | WeightsError::Unexpected { .. } => true,
            WeightsError::Write { .. } => false,
        }
    }
}

impl Classify for AnalyseError {
    fn is_bad_input(&self) -> bool {
        match self {
            AnalyseError::Scores { .. } | AnalyseError::Config(_) => true,
            AnalyseError::Read { source, .. } => io_is_bad_input(false, source),
            AnalyseError::Write { source, .. } => io_is_bad_input(true, source),
        }
    }
}

impl Classify for FigureError {
    fn is_bad_input(&self) -> bool {
        match self {
            FigureError::Write { source, .. } => io_is_bad_input(true, source),
            FigureError::Png(e) => e.is_bad_input(),
        }
    }
}

impl Classify for PngError {
    fn is_bad_input(&self) -> bool {
        match self {
            PngError::Svg(_) | PngError::Write { .. } => false,
        }
    }
}

impl Classify for ReviewError {
    fn is_bad_input(&self) -> bool {
        use std::io::ErrorKind as K;
        match self {
            ReviewError::Labels(e) => e.is_bad_input(),
            ReviewError::Images(e) => e.is_bad_input(),
            ReviewError::Ontology(e) => e.is_bad_input(),
            ReviewError::Input { .. }
            | ReviewError::Mismatch { .. }
            | ReviewError::MissingImage { .. }
            | ReviewError::Option { .. }
            | ReviewError::OtherReview { .. }
            | ReviewError::NotADatabase { .. }
            | ReviewError::NoReview { .. }
            | ReviewError::UnknownImage { .. }
            | ReviewError::NotPredicted { .. }
            | ReviewError::UnknownCui { .. }
            | ReviewError::UnknownTerm { .. }
            | ReviewError::Invalid { .. }
            | ReviewError::ReusedRequest { .. } => true,
            ReviewError::Read { source, .. } => io_is_bad_input(false, source),
            ReviewError::Write { source, .. } => io_is_bad_input(true, source),
            // a port in use or an address not on this machine: fixed by another --port or --bind
            ReviewError::Bind { source, .. } => matches!(source.kind(), K::AddrInUse | K::AddrNotAvailable | K::PermissionDenied),
            ReviewError::Db { .. } | ReviewError::Serve(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_shown_once() {
        let e = Error::Write { path: "/x/y".into(), source: std::io::Error::other("No space left on device") };
        assert_eq!(e.report(), "cannot write /x/y: No space left on device");
        assert_eq!(e.exit_code(), EXIT_FAILURE);
        let nested = Error::Train(TrainError::Io { path: "/x/z".into(), source: std::io::Error::other("disk full") });
        assert_eq!(nested.report().matches("disk full").count(), 1, "{}", nested.report());
    }

    #[test]
    fn io_errors_split_input_from_machine() {
        let nf = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(Error::Read { path: "a".into(), source: nf }.exit_code(), EXIT_BAD_INPUT);
        let ro = std::io::Error::from(std::io::ErrorKind::ReadOnlyFilesystem);
        assert_eq!(Error::Write { path: "a".into(), source: ro }.exit_code(), EXIT_FAILURE);
        let nd = std::io::Error::from(std::io::ErrorKind::NotADirectory);
        assert_eq!(Error::Write { path: "a".into(), source: nd }.exit_code(), EXIT_BAD_INPUT);
        assert_eq!(Error::usage("x").exit_code(), EXIT_BAD_INPUT);
    }
}
