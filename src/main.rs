//! `conceptree` command line: parses arguments, turns them into typed configs, calls the library,
//! and maps errors to exit codes (0 ok, 1 failure, 2 bad usage or bad input).
mod commands;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use conceptree::data::labels::LabelFormat;
use conceptree::model::TrunkKind;
use conceptree::train::{ClassWeights, DeviceChoice, HierSchedule, Mode, Strategy, TrainConfig};

#[derive(Parser, Debug)]
#[command(name = "conceptree", version, about = "Ontology-aware concept detection in radiology images (UMLS CUIs)")]
struct Cli {
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// libtorch version, CUDA and cuDNN availability, threads, build.
    Doctor,
    /// Data tools: synthetic phantoms, dataset statistics.
    #[command(subcommand)]
    Data(DataCmd),
    /// Train a flat (top-K) or hierarchical (one head per ontology level) model.
    Train(Box<TrainArgs>),
    /// Predict concepts for images with a trained run; writes an ImageCLEF submission.
    Predict(PredictArgs),
    /// Score a submission against ground truth (official ImageCLEF F1, per level, per concept).
    Evaluate(EvaluateArgs),
    /// Per-level error analysis: error kinds, confusion tables, sample table with thumbnails, plots (HTML + Markdown + JSON).
    Analyse(AnalyseArgs),
    /// Whole experiments (e.g. reproduce the seed paper).
    #[command(subcommand)]
    Experiment(ExperimentCmd),
    /// Inspect, validate and export the concept hierarchy.
    #[command(subcommand)]
    Ontology(OntologyCmd),
}

#[derive(Subcommand, Debug)]
enum DataCmd {
    /// Write deterministic synthetic radiology phantoms with an ImageCLEF 2019 label file.
    Synth {
        #[arg(long)]
        out: PathBuf,
        /// Number of images.
        #[arg(long, default_value_t = 400)]
        n: usize,
        /// Image side in pixels.
        #[arg(long, default_value_t = 128)]
        size: u32,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Dataset statistics: images, concepts, labels per image, top-N concepts, imbalance.
    Stats {
        #[arg(long)]
        labels: PathBuf,
        #[arg(long, default_value = "auto")]
        format: LabelFormat,
        #[arg(long, default_value_t = 25)]
        top: usize,
        /// Report how many concepts have at least this many images (the paper kept >= 1000).
        #[arg(long, default_value_t = 1000)]
        min_count: usize,
        /// Write the top-N frequency plot (the paper's Figure 1) as SVG and PNG (same name, both extensions).
        #[arg(long)]
        plot: Option<PathBuf>,
        #[arg(long)]
        ontology: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Decode and resize the images of label files once, into a cache for `train --image-cache`.
    Cache {
        /// Label file(s) naming the images (e.g. training and validation labels).
        #[arg(long, required = true, num_args = 1..)]
        labels: Vec<PathBuf>,
        /// Directory holding `<id>.jpg|jpeg|png`.
        #[arg(long)]
        images: PathBuf,
        /// Side of the cached images: the --image-size of the runs that will read it.
        #[arg(long, default_value_t = 224)]
        size: u32,
        /// Cache directory to write (an existing cache there is replaced).
        #[arg(long)]
        out: PathBuf,
        /// Skip (and report) malformed rows and missing images instead of failing.
        #[arg(long)]
        skip_bad: bool,
    },
    /// Read a one-folder-per-CUI image tree into OUT/labels.csv + OUT/images.
    ImportFolders {
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a one-folder-per-CUI image tree (hard links) from a label file and its images.
    ExportFolders {
        #[arg(long)]
        labels: PathBuf,
        #[arg(long)]
        images: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Only the top-K concepts (0 = all).
        #[arg(long, default_value_t = 0)]
        top_k: usize,
    },
}

/// Training options shared by `train` and `experiment`.
#[derive(Args, Debug, Clone)]
struct CommonTrain {
    /// Ontology TSV (default: the built-in radiology hierarchy).
    #[arg(long)]
    ontology: Option<PathBuf>,
    /// Levels with a head, top first (hierarchical mode).
    #[arg(long, value_delimiter = ',', default_value = "modality,anatomy,laterality")]
    levels: Vec<conceptree::ontology::Level>,
    /// Feed each head the probabilities of the levels above it.
    #[arg(long)]
    condition: bool,
    #[arg(long, default_value = "resnet50")]
    trunk: TrunkKind,
    /// torchvision-format safetensors state dict for the trunk (e.g. ImageNet or RadImageNet).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Flat mode: the K most frequent concepts.
    #[arg(long, default_value_t = 25)]
    top_k: usize,
    /// Keep concepts on at least this many training images.
    #[arg(long, default_value_t = 1)]
    min_count: usize,
    #[arg(long, default_value_t = 224)]
    image_size: u32,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Total epochs (a stepwise or layerwise schedule splits them over its stages, at least one each).
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    #[arg(long, default_value_t = 1e-4)]
    lr: f64,
    /// Stepwise: learning-rate factor for the trunk and earlier heads at each later stage.
    #[arg(long, default_value_t = 1.0)]
    stage_lr_decay: f64,
    /// Layerwise: learning-rate factor at each unfreezing stage.
    #[arg(long, default_value_t = 0.5)]
    layerwise_lr_decay: f64,
    #[arg(long, default_value = "balanced")]
    class_weights: ClassWeights,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// Turn augmentation off.
    #[arg(long)]
    no_augment: bool,
    /// Skip (and report) malformed rows and missing or unreadable images instead of failing.
    #[arg(long)]
    skip_bad: bool,
    /// Use at most this many training images (0 = all).
    #[arg(long, default_value_t = 0)]
    max_train_images: usize,
    /// Layout of images and convolution weights: auto (channels-last on CPU and with --amp), channels-last, contiguous.
    #[arg(long, default_value = "auto")]
    memory_format: conceptree::model::MemoryFormat,
    /// Mixed precision: fp16 with dynamic loss scaling on CUDA, bf16 on CPU (fast on CPUs with AMX or AVX-512-BF16, slow without).
    #[arg(long)]
    amp: bool,
    /// Read images from a cache of them decoded and resized to --image-size (`conceptree data cache`).
    #[arg(long)]
    image_cache: Option<PathBuf>,
    /// Frozen trunk (--strategy head, layerwise's first stage): keep its features in memory up to this many GiB, else rerun it every batch.
    #[arg(long, default_value_t = 4.0)]
    feature_cache_gib: f64,
}

#[derive(Args, Debug)]
struct TrainArgs {
    /// flat (paper baseline, top-K concepts) or hierarchical (one head per level).
    #[arg(long, default_value = "flat")]
    mode: Mode,
    /// Continue an interrupted run from its last checkpoint (all other options come from its config.json).
    #[arg(long, conflicts_with_all = ["train_labels", "images", "out"])]
    resume: Option<PathBuf>,
    #[arg(long, required_unless_present = "resume")]
    train_labels: Option<PathBuf>,
    /// Directory holding `<id>.jpg|jpeg|png`.
    #[arg(long, required_unless_present = "resume")]
    images: Option<PathBuf>,
    /// Run directory to create.
    #[arg(long, required_unless_present = "resume")]
    out: Option<PathBuf>,
    /// Validation labels; default: hold out --val-split of the training labels.
    #[arg(long)]
    val_labels: Option<PathBuf>,
    /// CSV with `id` and `group` columns: split by group (e.g. patient or case).
    #[arg(long)]
    groups: Option<PathBuf>,
    #[arg(long, default_value_t = 0.15)]
    val_split: f64,
    /// joint (all heads at once) or stepwise (one level added per stage).
    #[arg(long, default_value = "stepwise")]
    schedule: HierSchedule,
    /// head (frozen trunk), full (paper run 1), layerwise (paper run 2).
    #[arg(long, default_value = "full")]
    strategy: Strategy,
    #[command(flatten)]
    common: CommonTrain,
}

#[derive(Subcommand, Debug)]
enum ExperimentCmd {
    /// The seed paper's study: dataset statistics, flat full + layerwise, hierarchical joint +
    /// stepwise on one split and budget, test-set Table 4 with per-level F1. Resumable.
    Paper {
        #[arg(long)]
        labels: PathBuf,
        #[arg(long)]
        images: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// CSV with `id` and `group` columns: split by group.
        #[arg(long)]
        groups: Option<PathBuf>,
        /// Runs to do: flat_full, flat_layerwise, hier_joint, hier_joint_cond (heads see upper levels), hier_stepwise.
        #[arg(long, value_delimiter = ',', default_value = "flat_full,flat_layerwise,hier_joint,hier_stepwise")]
        runs: Vec<String>,
        #[command(flatten)]
        common: CommonTrain,
    },
}

#[derive(Args, Debug)]
struct PredictArgs {
    /// Run directory written by `conceptree train`.
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    images: PathBuf,
    /// Label or id file naming the images to predict (default: every image in --images).
    #[arg(long)]
    ids: Option<PathBuf>,
    #[arg(long)]
    out: PathBuf,
    /// One global threshold instead of the tuned ones in the run directory.
    #[arg(long)]
    threshold: Option<f32>,
    /// Also write per-level scores and the path through the hierarchy (JSON lines) to this file.
    #[arg(long)]
    explain: Option<PathBuf>,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
}

#[derive(Args, Debug)]
struct EvaluateArgs {
    #[arg(long)]
    gt: PathBuf,
    #[arg(long)]
    pred: PathBuf,
    /// Ontology for per-level, hierarchical and coherence figures (default: built-in).
    #[arg(long)]
    ontology: Option<PathBuf>,
    #[arg(long, default_value = "auto")]
    format: LabelFormat,
    /// Score images missing from the submission as 0 (counted) instead of failing.
    #[arg(long)]
    allow_missing: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct AnalyseArgs {
    #[arg(long)]
    gt: PathBuf,
    #[arg(long)]
    pred: PathBuf,
    /// Directory with `<id>.jpg|jpeg|png` for the sample thumbnails (missing images get a placeholder).
    #[arg(long)]
    images: Option<PathBuf>,
    /// Output directory: report.html, summary.md, analysis.json and SVG plots.
    #[arg(long)]
    out: PathBuf,
    #[arg(long)]
    ontology: Option<PathBuf>,
    /// Per-concept probabilities, one line per image: `id<TAB>CUI:p;CUI:p` (for the threshold curve).
    #[arg(long)]
    scores: Option<PathBuf>,
    /// Example images per error kind.
    #[arg(long, default_value_t = 3)]
    samples: usize,
    #[arg(long, default_value = "auto")]
    format: LabelFormat,
    /// Analyse images missing from the submission as empty predictions instead of failing.
    #[arg(long)]
    allow_missing: bool,
}

#[derive(Subcommand, Debug)]
enum OntologyCmd {
    /// Check ontology files; every problem with file and line; exit 2 on any.
    Validate { files: Vec<PathBuf> },
    /// Concepts per level, depth, roots, leaves.
    Stats {
        #[arg(long)]
        ontology: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// One concept: name, level, semantic types, ancestors, children.
    Show {
        cui: String,
        #[arg(long)]
        ontology: Option<PathBuf>,
    },
    /// Where the CUIs of a label file fall: per level, unknown, noise.
    Map {
        #[arg(long)]
        labels: PathBuf,
        #[arg(long, default_value = "auto")]
        format: LabelFormat,
        #[arg(long)]
        ontology: Option<PathBuf>,
        /// Place CUIs outside the ontology by semantic type: a TSV of `cui<TAB>T060;T023...`
        /// (a header line is skipped; extra columns ignored; `T060:Name` entries accepted) or MRSTY.RRF.
        #[arg(long)]
        semtypes: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Graphviz DOT of the hierarchy (or a subtree / one level); --out with .png/.svg renders it.
    Dot {
        #[arg(long)]
        root: Option<String>,
        #[arg(long)]
        level: Option<conceptree::ontology::Level>,
        #[arg(long)]
        ontology: Option<PathBuf>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Build an ontology TSV from UMLS Metathesaurus RRF files, restricted to the CUIs of a label file.
    FromUmls {
        /// Directory with MRCONSO.RRF, MRREL.RRF, MRSTY.RRF.
        #[arg(long)]
        rrf: PathBuf,
        #[arg(long)]
        labels: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Command::Doctor => commands::doctor(),
        Command::Data(DataCmd::Synth { out, n, size, seed }) => commands::synth(&out, n, size, seed),
        Command::Data(DataCmd::Stats { labels, format, top, min_count, plot, ontology, json }) => {
            commands::data_stats(&labels, format, top, min_count, plot.as_deref(), ontology.as_deref(), json)
        }
        Command::Data(DataCmd::Cache { labels, images, size, out, skip_bad }) => commands::data_cache(&labels, &images, size, &out, skip_bad),
        Command::Data(DataCmd::ImportFolders { root, out }) => commands::import_folders(&root, &out),
        Command::Data(DataCmd::ExportFolders { labels, images, out, top_k }) => commands::export_folders(&labels, &images, &out, top_k),
        Command::Train(a) => match a.resume.clone() {
            Some(run) => commands::resume(&run),
            None => commands::train(a.into_config()),
        },
        Command::Predict(a) => commands::predict(&a.model, &a.images, a.ids.as_deref(), &a.out, a.threshold, a.explain.as_deref(), a.batch_size, a.device),
        Command::Experiment(ExperimentCmd::Paper { labels, images, out, groups, runs, common }) => {
            let base = common.into_config(TrainConfig { train_labels: labels.clone(), images: images.clone(), out: out.clone(), ..Default::default() });
            commands::experiment_paper(conceptree::experiment::ExperimentConfig { labels, images, out, groups, base, runs })
        }
        Command::Evaluate(a) => commands::evaluate(&a.gt, &a.pred, a.ontology.as_deref(), a.format, a.allow_missing, a.json),
        Command::Analyse(a) => {
            let cfg = conceptree::report::analyse::AnalyseConfig { samples_per_kind: a.samples, images: a.images, ..Default::default() };
            commands::analyse(&a.gt, &a.pred, &a.out, a.ontology.as_deref(), a.scores.as_deref(), a.format, a.allow_missing, cfg)
        }
        Command::Ontology(c) => match c {
            OntologyCmd::Validate { files } => commands::ontology_validate(&files),
            OntologyCmd::Stats { ontology, json } => commands::ontology_stats(ontology.as_deref(), json),
            OntologyCmd::Show { cui, ontology } => commands::ontology_show(&cui, ontology.as_deref()),
            OntologyCmd::Map { labels, format, ontology, semtypes, json } => commands::ontology_map(&labels, format, ontology.as_deref(), semtypes.as_deref(), json),
            OntologyCmd::Dot { root, level, ontology, out } => commands::ontology_dot(root.as_deref(), level, ontology.as_deref(), out.as_deref()),
            OntologyCmd::FromUmls { rrf, labels, out } => commands::ontology_from_umls(&rrf, labels.as_deref(), &out),
        },
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(commands::exit_code(&e));
    }
}

impl CommonTrain {
    /// Fill the shared options into `base`.
    fn into_config(self, base: TrainConfig) -> TrainConfig {
        use conceptree::data::pipeline::AugmentConfig;
        TrainConfig {
            ontology: self.ontology,
            levels: self.levels,
            condition_on_previous: self.condition,
            trunk: self.trunk,
            weights: self.weights,
            top_k: self.top_k,
            min_count: self.min_count,
            image_size: self.image_size,
            batch_size: self.batch_size,
            epochs: self.epochs,
            lr: self.lr,
            stage_lr_decay: self.stage_lr_decay,
            layerwise_lr_decay: self.layerwise_lr_decay,
            class_weights: self.class_weights,
            seed: self.seed,
            device: self.device,
            augment: (!self.no_augment).then(AugmentConfig::default),
            skip_bad: self.skip_bad,
            max_train_images: self.max_train_images,
            memory_format: self.memory_format,
            amp: self.amp,
            image_cache: self.image_cache,
            feature_cache_gib: self.feature_cache_gib,
            ..base
        }
    }
}

impl TrainArgs {
    fn into_config(self) -> TrainConfig {
        let base = TrainConfig {
            train_labels: self.train_labels.unwrap_or_default(),
            images: self.images.unwrap_or_default(),
            out: self.out.unwrap_or_default(),
            val_labels: self.val_labels,
            groups: self.groups,
            mode: self.mode,
            schedule: self.schedule,
            strategy: self.strategy,
            val_split: self.val_split,
            ..TrainConfig::default()
        };
        self.common.into_config(base)
    }
}
