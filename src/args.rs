//! What was typed: the clap types of every command and subcommand, their defaults read from the
//! library's [`TrainConfig::defaults`], and their translation into the library's typed configs
//! (`into_config`). What the commands mean and do is in `main.rs` (dispatch) and [`crate::commands`].

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

use conceptree::data::labels::LabelFormat;
use conceptree::model::{MemoryFormat, Neck, Pooling, TrunkKind};
use conceptree::ontology::Level;
use conceptree::train::{Calibration, ClassWeights, DeviceChoice, HeadWeights, HierSchedule, Keep, Mode, Strategy, TrainConfig};

pub(crate) fn d() -> &'static TrainConfig {
    TrainConfig::defaults()
}

#[derive(Parser, Debug)]
#[command(name = "conceptree", version, about = "Ontology-aware concept detection in radiology images (UMLS CUIs)")]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) cmd: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// libtorch version, CUDA and cuDNN availability, threads, build.
    Doctor,
    /// Data tools: synthetic phantoms, dataset statistics, image cache, folder trees.
    #[command(subcommand)]
    Data(DataCmd),
    /// Train a flat (top-K) or hierarchical (one head per ontology level) model.
    Train(Box<TrainArgs>),
    /// Predict concepts for images with a trained run; writes an ImageCLEF submission.
    Predict(PredictArgs),
    /// Join the shards of a sharded prediction (`predict --shard K/N`) into one submission, byte for byte what one predict writes; refuses a missing, doubled or foreign shard.
    Merge(MergeArgs),
    /// Export a trained run for Python pipelines: a TorchScript module (model.pt) and everything needed to use it right (model.json).
    Export(ExportArgs),
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
    /// Clinical review: a browser app where a clinician judges predicted concepts blind to the model; its report and export.
    #[command(subcommand)]
    Review(ReviewCmd),
}

#[derive(Subcommand, Debug)]
pub(crate) enum DataCmd {
    /// Write deterministic synthetic radiology phantoms with an ImageCLEF 2019 label file.
    Synth {
        /// Folder to write (images/, labels.csv, meta.csv, concepts.tsv); must be new or empty.
        #[arg(long)]
        out: PathBuf,
        /// Number of images.
        #[arg(long, default_value_t = 400)]
        n: usize,
        /// Image side in pixels.
        #[arg(long, alias = "size", default_value_t = 128)]
        image_size: u32,
        /// Seed of the data set (the same seed gives byte-identical files).
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Write into a folder that is not empty (files of the same names are replaced).
        #[arg(long)]
        force: bool,
        /// Burn in annotations on no ontology level, labelled as real figures are: arrows (C0376152, the noise MetaMap makes of "arrow") and circled regions (C0221198 Lesion), in colour (annotated images are RGB).
        #[arg(long)]
        annotations: bool,
    },
    /// Dataset statistics: images, concepts, labels per image, top-K concepts, imbalance.
    Stats {
        /// Label file (ImageCLEF 2019, ImageCLEF 2020+ or ROCO; see --format).
        #[arg(long)]
        labels: PathBuf,
        /// Label file format.
        #[arg(long, value_enum, default_value_t = LabelFormat::Auto)]
        format: LabelFormat,
        /// List the K most frequent concepts.
        #[arg(long, alias = "top", default_value_t = 25)]
        top_k: usize,
        /// Report how many concepts have at least this many images (the paper kept >= 1000).
        #[arg(long, default_value_t = 1000)]
        min_count: usize,
        /// Write the top-K frequency plot (the paper's Figure 1) as SVG and PNG (same name, both extensions).
        #[arg(long)]
        plot: Option<PathBuf>,
        /// Ontology TSV for concept names and levels (default: the built-in radiology hierarchy).
        #[arg(long)]
        ontology: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The best ImageCLEF F1 any model restricted to a label space can reach on a label file: top-K, the levels' concepts, hybrid.
    Ceiling {
        /// Label file.
        #[arg(long)]
        labels: PathBuf,
        /// Label file format.
        #[arg(long, value_enum, default_value_t = LabelFormat::Auto)]
        format: LabelFormat,
        /// Sizes of the top-K spaces (and of the residual part of the hybrid spaces).
        #[arg(long, value_delimiter = ',', default_values_t = vec![25usize, 50, 100, 200])]
        top_k: Vec<usize>,
        /// Levels whose concepts make the level space.
        #[arg(long, value_enum, value_delimiter = ',', default_values_t = Level::ALL.to_vec())]
        levels: Vec<Level>,
        /// Whether noise-flagged concepts may be in the residual part of the hybrid spaces.
        #[arg(long, value_enum, default_value_t = conceptree::eval::ceiling::Noise::Keep)]
        noise: conceptree::eval::ceiling::Noise,
        /// Ontology TSV (default: built-in).
        #[arg(long)]
        ontology: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Decode and resize the images of label files once, into a cache for `train --image-cache`.
    Cache {
        /// Label file(s) naming the images (e.g. training and validation labels).
        #[arg(long, required = true, num_args = 1..)]
        labels: Vec<PathBuf>,
        /// Folder holding `<id>.jpg|jpeg|png` (any case).
        #[arg(long)]
        images: PathBuf,
        /// Side of the cached images: the --image-size of the runs that will read it.
        #[arg(long, alias = "size", default_value_t = d().image_size)]
        image_size: u32,
        /// Cache folder to write; must be new or empty (never the image folder, a run, or a folder holding an input).
        #[arg(long)]
        out: PathBuf,
        /// Skip (and report) malformed rows and missing images instead of failing.
        #[arg(long)]
        skip_bad: bool,
        /// Write into a folder that is not empty (an existing cache there is replaced).
        #[arg(long)]
        force: bool,
    },
    /// Read a one-folder-per-CUI image tree into OUT/labels.csv + OUT/images.
    ImportFolders {
        /// Folder with one sub-folder per CUI, each holding that concept's images.
        #[arg(long)]
        root: PathBuf,
        /// Folder to write labels.csv and images/ into.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a one-folder-per-CUI image tree (hard links) from a label file and its images.
    ExportFolders {
        /// Label file.
        #[arg(long)]
        labels: PathBuf,
        /// Folder holding the images of the label file.
        #[arg(long)]
        images: PathBuf,
        /// Folder to write the tree into.
        #[arg(long)]
        out: PathBuf,
        /// Only the K most frequent concepts (0 = all).
        #[arg(long, default_value_t = 0)]
        top_k: usize,
    },
}

/// Training options shared by `train` and `experiment`.
#[derive(Args, Debug, Clone)]
pub(crate) struct CommonTrain {
    /// Ontology TSV (default: the built-in radiology hierarchy).
    #[arg(long)]
    pub(crate) ontology: Option<PathBuf>,
    /// Levels with a head, top first, each named once (hierarchical and hybrid mode). The default is the first three; `--levels modality,anatomy,laterality,plane,view,technique,finding` gives every level a head.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = d().levels.clone())]
    pub(crate) levels: Vec<Level>,
    /// Hierarchical: feed each head the probabilities of the levels above it.
    #[arg(long)]
    pub(crate) condition: bool,
    /// The trunk, with torchvision's parameter names: resnet18/34/50, densenet121, efficientnet_b0, convnext_tiny (tiny: a narrow 4-stage ResNet for CPU demos and tests).
    #[arg(long, value_enum, default_value_t = d().trunk)]
    pub(crate) trunk: TrunkKind,
    /// Trunk weights: a torchvision-format safetensors state dict (e.g. ImageNet or RadImageNet) or a trained run's model.safetensors.
    #[arg(long)]
    pub(crate) weights: Option<PathBuf>,
    /// Flat mode: the K most frequent concepts.
    #[arg(long, default_value_t = d().top_k, conflicts_with = "concepts")]
    pub(crate) top_k: usize,
    /// The concepts the model learns, the same rule for every mode: top-k:N (the N most frequent training concepts), min-count:N (every concept on at least N training images) or all. Default: a flat model's --top-k, every concept of the levels otherwise.
    #[arg(long, value_name = "SPACE", conflicts_with = "min_count")]
    pub(crate) concepts: Option<conceptree::train::config::LabelSpec>,
    /// Keep concepts on at least this many training images.
    #[arg(long, default_value_t = d().min_count)]
    pub(crate) min_count: usize,
    /// Images are resized (without cropping) to this many pixels on each side.
    #[arg(long, alias = "size", default_value_t = d().image_size)]
    pub(crate) image_size: u32,
    /// Images per training step (1 to 65536).
    #[arg(long, default_value_t = d().batch_size)]
    pub(crate) batch_size: usize,
    /// Total epochs, 1 to 10000 (a stepwise or layerwise schedule splits them over its stages, at least one each).
    #[arg(long, default_value_t = d().epochs)]
    pub(crate) epochs: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = d().lr)]
    pub(crate) lr: f64,
    /// Stepwise: learning-rate factor for the trunk and earlier heads at each later stage.
    #[arg(long, default_value_t = d().stage_lr_decay)]
    pub(crate) stage_lr_decay: f64,
    /// Layerwise: learning-rate factor at each unfreezing stage.
    #[arg(long, default_value_t = d().layerwise_lr_decay)]
    pub(crate) layerwise_lr_decay: f64,
    /// Loss weights against class imbalance: balanced (scikit-learn's rule, per head), balanced-model (per model) or none.
    #[arg(long, value_enum, default_value_t = d().class_weights)]
    pub(crate) class_weights: ClassWeights,
    /// Seed of the initialisation, shuffling, augmentation and dropout (and of the split).
    #[arg(long, default_value_t = d().seed)]
    pub(crate) seed: u64,
    /// Where to train.
    #[arg(long, value_enum, default_value_t = d().device)]
    pub(crate) device: DeviceChoice,
    /// Turn augmentation off.
    #[arg(long)]
    pub(crate) no_augment: bool,
    /// Skip (and report) malformed rows and missing or unreadable images instead of failing.
    #[arg(long)]
    pub(crate) skip_bad: bool,
    /// Use at most this many training images (0 = all): a sample drawn across the training set with the split's seed (--split-seed, default --seed), the same for the same seed; with --groups whole groups are drawn (each while it fits), so no case is split and the sample may hold a few fewer.
    #[arg(long, default_value_t = d().max_train_images)]
    pub(crate) max_train_images: usize,
    /// Layout of images and convolution weights (auto: channels-last on CPU and with --amp).
    #[arg(long, value_enum, default_value_t = d().memory_format)]
    pub(crate) memory_format: MemoryFormat,
    /// Mixed precision: fp16 with dynamic loss scaling on CUDA, bf16 on CPU (fast on CPUs with AMX or AVX-512-BF16, slow without).
    #[arg(long)]
    pub(crate) amp: bool,
    /// Read images from a cache of them decoded and resized to --image-size (`conceptree data cache`).
    #[arg(long)]
    pub(crate) image_cache: Option<PathBuf>,
    /// Frozen trunk (--strategy head, layerwise's first stage): keep its features in memory up to this many GiB, else rerun it every batch.
    #[arg(long, default_value_t = d().feature_cache_gib)]
    pub(crate) feature_cache_gib: f64,
    /// Hierarchical: single-label levels decoded by their best concept against a tuned threshold, with the class-weight prior removed (logit-adjust) or never added (unweighted); none: arg-max over the concepts and "none".
    #[arg(long, value_enum, default_value_t = d().calibration)]
    pub(crate) calibration: Calibration,
    /// Hierarchical: weights of the heads' losses: concepts (every concept counts the same, whatever head it is in), equal (every head 1), or name=w,name=w with names among the run's levels (and `rest` in hybrid mode).
    #[arg(long, default_value_t = d().head_weights.clone())]
    pub(crate) head_weights: HeadWeights,
    /// One optimizer whose state carries across stages, and exactly --epochs epochs over all stages (false: a fresh optimizer per stage, at least one epoch per stage).
    #[arg(long, action = clap::ArgAction::Set, default_value_t = d().fair_schedule)]
    pub(crate) fair_schedule: bool,
    /// Which epoch's weights the run keeps: the one with the best validation ImageCLEF F1 (tuned thresholds), or the last.
    #[arg(long, value_enum, default_value_t = d().keep)]
    pub(crate) keep: Keep,
    /// Hierarchical: C-HMCNN's max-constraint module and MCLoss on multi-label levels (a concept never scores below its descendants).
    #[arg(long, action = clap::ArgAction::Set, default_value_t = d().max_constraint)]
    pub(crate) max_constraint: bool,
    /// Hierarchical: the heads of the levels: softmax (a softmax head with "none" per single-valued level, sigmoids for the others) or sigmoid (one sigmoid per ontology node on every level, with the max-constraint and MCLoss).
    #[arg(long, value_enum, default_value_t = d().level_heads)]
    pub(crate) level_heads: conceptree::train::config::LevelHeads,
    /// Hierarchical: a single-valued level (a calibrated softmax head, or a sigmoid head over a level no training image holds two concepts of) keeps its best concept (argmax), or on plane and view its two best (second), each against its own threshold.
    #[arg(long, value_enum, default_value_t = d().single_valued)]
    pub(crate) single_valued: conceptree::model::SingleValuedRule,
    /// Hierarchical: the first N epochs train a concept that has an ancestor in its level only on the images where one of its ancestors is present (conditional training, Chen et al. 2019), the rest on every image (0: never).
    #[arg(long, default_value_t = d().conditional_epochs)]
    pub(crate) conditional_epochs: usize,
    /// Hierarchical: a multi-label level whose concepts nest (Heart under Chest) becomes a local classifier per parent (HiClass's LCPN): a child is learned only on its parents' images and its probability is its sigmoid times its parent's; coherent by construction, in place of the max-constraint on those levels.
    #[arg(long)]
    pub(crate) local_per_parent: bool,
    /// Hierarchical: per-head (each head has the paper's whole head) or shared (one auxiliary convolution and dense layer for all heads, one output layer each).
    #[arg(long, value_enum, default_value_t = d().neck)]
    pub(crate) neck: Neck,
    /// Hybrid: the residual head learns this many of the most frequent concepts on none of the levels.
    #[arg(long, default_value_t = d().rest_top_k)]
    pub(crate) rest_top_k: usize,
    /// How each head pools the trunk's feature map: avg (the paper's head) or avg-max (average and maximum side by side). Per-head necks only.
    #[arg(long, value_enum, default_value_t = d().pooling)]
    pub(crate) pooling: Pooling,
    /// Hybrid: how the residual head pools (avg-max puts the maximum beside the average, for concepts that sit in one place, such as burned-in arrows; it measured worse on annotated phantoms, see BENCHMARKS.md).
    #[arg(long, value_enum, default_value_t = d().rest_pooling)]
    pub(crate) rest_pooling: Pooling,
    /// Hybrid: keep noise-flagged concepts in the residual head (they count in the official score) or drop them.
    #[arg(long, value_enum, default_value_t = d().noise)]
    pub(crate) noise: conceptree::eval::ceiling::Noise,
    /// kNN: how many nearest training images vote (at most the number of training images).
    #[arg(long, default_value_t = d().knn_k)]
    pub(crate) knn_k: usize,
    /// Every head's layers between the trunk and its output: paper (auxiliary convolution, dense layer, dropout) or linear (pooling straight into the output layer; learns small burned-in marks the paper's head loses, see BENCHMARKS.md).
    #[arg(long, value_enum, default_value_t = d().head_layers)]
    pub(crate) head_layers: conceptree::model::HeadLayers,
    /// Decision thresholds tuned on validation: one global, one per level (concepts on no level keep the global one), or per concept (per level, then a concept's own where that strictly raises the validation F1, as top ImageCLEF systems tune them).
    #[arg(long, value_enum, default_value_t = d().thresholds)]
    pub(crate) thresholds: conceptree::eval::thresholds::TuneMode,
}

#[derive(Args, Debug)]
pub(crate) struct TrainArgs {
    /// flat (paper baseline, top-K concepts), hierarchical (one head per level), hybrid (level heads plus one over the frequent concepts on no level) or knn (retrieval baseline: votes of the nearest training images in the trunk's embedding, no training).
    #[arg(long, value_enum, default_value_t = d().mode)]
    pub(crate) mode: Mode,
    /// Continue an interrupted run from its last checkpoint; it keeps all its own options, so no other option may be given.
    #[arg(long, value_name = "RUN")]
    pub(crate) resume: Option<PathBuf>,
    /// Training labels (ImageCLEF 2019, ImageCLEF 2020+ or ROCO).
    #[arg(long, alias = "train-labels", required_unless_present = "resume")]
    pub(crate) labels: Option<PathBuf>,
    /// Folder holding `<id>.jpg|jpeg|png` (any case) for every labelled id.
    #[arg(long, required_unless_present = "resume")]
    pub(crate) images: Option<PathBuf>,
    /// Run directory to create (new or empty).
    #[arg(long, required_unless_present = "resume")]
    pub(crate) out: Option<PathBuf>,
    /// Write the run into a folder that is not empty (a previous run in it is still refused).
    #[arg(long)]
    pub(crate) force: bool,
    /// Validation labels; default: hold out --val-split of the training labels.
    #[arg(long)]
    pub(crate) val_labels: Option<PathBuf>,
    /// CSV with `id` and `group` columns: split by group (e.g. patient or case).
    #[arg(long)]
    pub(crate) groups: Option<PathBuf>,
    /// Share of the training images held out for validation (by group with --groups).
    #[arg(long, default_value_t = d().val_split)]
    pub(crate) val_split: f64,
    /// Seed of the train/validation split (default: --seed), to compare seeds on one split.
    #[arg(long)]
    pub(crate) split_seed: Option<u64>,
    /// Hierarchical mode: joint (all heads at once), stepwise (one level added per stage), curriculum (levels added over the first half, then joint).
    #[arg(long, value_enum, default_value_t = d().schedule)]
    pub(crate) schedule: HierSchedule,
    /// head (frozen trunk), full (paper run 1), layerwise (paper run 2; in hierarchical and hybrid mode only with --schedule joint, since stepwise and curriculum add heads stage by stage).
    #[arg(long, value_enum, default_value_t = d().strategy)]
    pub(crate) strategy: Strategy,
    #[command(flatten)]
    pub(crate) common: CommonTrain,
}

#[derive(Subcommand, Debug)]
pub(crate) enum ExperimentCmd {
    /// Paired, repeated comparison of model configurations: one split, one epoch budget, several
    /// seeds; ImageCLEF F1 mean ± sd, the paired difference to flat with a bootstrap interval,
    /// per-level F1 and false positives, coherence. Resumable.
    Compare {
        /// Labels of the training images (split into training and validation, and test unless --test-labels).
        #[arg(long)]
        labels: PathBuf,
        /// Folder holding the images.
        #[arg(long)]
        images: PathBuf,
        /// Folder for the tables, plot and runs (rerun the command to resume).
        #[arg(long)]
        out: PathBuf,
        /// CSV with `id` and `group` columns: split by group.
        #[arg(long)]
        groups: Option<PathBuf>,
        /// A separate test set's labels (default: 15% of --labels held out by group).
        #[arg(long, requires = "test_images")]
        test_labels: Option<PathBuf>,
        /// The separate test set's image folder.
        #[arg(long, requires = "test_labels")]
        test_images: Option<PathBuf>,
        /// Runs to compare (see the list in BENCHMARKS.md or the error message of an unknown name).
        #[arg(long, value_delimiter = ',', default_value = conceptree::experiment::compare::DEFAULT_RUNS)]
        runs: Vec<String>,
        /// Number of seeds (1..=N, N at most 100) each run is trained with.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
        seeds: u64,
        /// Seed of the split, the same for every run and seed.
        #[arg(long, default_value_t = 42)]
        split_seed: u64,
        /// The row every other row is paired against (one of --runs).
        #[arg(long, default_value = "flat")]
        baseline: String,
        /// A concept gets its own threshold (--thresholds per-concept) only where validation holds at least this many cases of it (groups with --groups, else images); the level's or the global one otherwise.
        #[arg(long, default_value_t = 3)]
        threshold_min_cases: usize,
        /// TRUNK=FILE: the trunk weights of the rows on TRUNK (a row names its own trunk as `flat@densenet121`; --weights serves --trunk). Repeat for each trunk.
        #[arg(long, value_parser = parse_trunk_weights)]
        trunk_weights: Vec<(TrunkKind, PathBuf)>,
        #[command(flatten)]
        common: CommonTrain,
    },
    /// The seed paper's study: dataset statistics, flat full + layerwise, hierarchical joint +
    /// stepwise on one split and budget, test-set Table 4 with per-level F1. Resumable.
    Paper {
        /// Label file of the whole data set (split 70/15/15 by the experiment).
        #[arg(long)]
        labels: PathBuf,
        /// Folder holding the images.
        #[arg(long)]
        images: PathBuf,
        /// Folder for the experiment's tables, figures and runs (rerun the command to resume).
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
pub(crate) struct MergeArgs {
    /// Every shard's submission file (`predict --shard K/N --out FILE`; its FILE.shard.json beside it), in any order.
    #[arg(required = true, num_args = 1.., value_name = "SHARD")]
    pub(crate) shards: Vec<PathBuf>,
    /// The merged submission.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// The merged explain file (the shards must have been predicted with --explain).
    #[arg(long)]
    pub(crate) explain: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub(crate) struct PredictArgs {
    /// Run directory written by `conceptree train`.
    #[arg(long)]
    pub(crate) model: PathBuf,
    /// Folder holding the images to predict (`<id>.jpg|jpeg|png`, any case).
    #[arg(long)]
    pub(crate) images: PathBuf,
    /// Label or id file naming the images to predict (first column); default: every image in --images.
    #[arg(long)]
    pub(crate) ids: Option<PathBuf>,
    /// Submission file to write (ImageCLEF 2019 format: `id<TAB>CUI;CUI`).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Decide every concept at this one threshold in (0, 1] instead of the run's tuned thresholds.
    #[arg(long)]
    pub(crate) threshold: Option<f32>,
    /// Also write, per image, every concept's score and how the decoder decided it (JSON lines; `analyse --scores` reads it).
    #[arg(long)]
    pub(crate) explain: Option<PathBuf>,
    /// Images per inference batch.
    #[arg(long, default_value_t = 64)]
    pub(crate) batch_size: usize,
    /// Where to run the model.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub(crate) device: DeviceChoice,
    /// Skip (and report) missing, ambiguous or unreadable images, and images whose id a submission cannot carry (whitespace in the name), instead of failing.
    #[arg(long)]
    pub(crate) skip_bad: bool,
    /// Decode with this ontology file instead of the run's own copy (it must have the same content).
    #[arg(long)]
    pub(crate) ontology: Option<PathBuf>,
    /// Accept an ontology whose content differs from the one the run was trained with.
    #[arg(long)]
    pub(crate) allow_ontology_change: bool,
    /// Predict with an unfinished run's last saved weights (needs --threshold).
    #[arg(long, requires = "threshold")]
    pub(crate) allow_unfinished: bool,
    /// Continue an interrupted prediction into --out (give the command it was started with, plus --resume); finished batches are not redone. Without an interrupted one, predict from the start.
    #[arg(long)]
    pub(crate) resume: bool,
    /// Predict only the K-th of N contiguous blocks of the image list (e.g. --shard 3/8, K from 1; in a Slurm array: --shard $SLURM_ARRAY_TASK_ID/N); writes OUT.shard.json beside OUT, and `conceptree merge` joins the N shards into the submission one predict would write.
    #[arg(long, value_name = "K/N")]
    pub(crate) shard: Option<conceptree::predict::shard::Shard>,
}

#[derive(Args, Debug)]
pub(crate) struct ExportArgs {
    /// Run directory written by `conceptree train` (flat, hierarchical or hybrid; not knn).
    #[arg(long)]
    pub(crate) model: PathBuf,
    /// Folder to write model.pt and model.json into (new or empty).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Also write the images of this folder as decoded, resized 8-bit pixels with the probabilities conceptree predicts for them (examples.json), to check a Python pipeline against.
    #[arg(long)]
    pub(crate) examples: Option<PathBuf>,
    /// Write into a folder that is not empty (an earlier export's files are replaced).
    #[arg(long)]
    pub(crate) force: bool,
}

#[derive(Args, Debug)]
pub(crate) struct EvaluateArgs {
    /// Ground-truth label file.
    #[arg(long)]
    pub(crate) gt: PathBuf,
    /// Submission (predicted labels) to score.
    #[arg(long)]
    pub(crate) pred: PathBuf,
    /// Ontology for per-level, hierarchical and coherence figures (default: built-in).
    #[arg(long)]
    pub(crate) ontology: Option<PathBuf>,
    /// Format of the ground-truth file.
    #[arg(long, value_enum, default_value_t = LabelFormat::Auto)]
    pub(crate) format: LabelFormat,
    /// Score images missing from the submission as 0 (counted) instead of failing.
    #[arg(long)]
    pub(crate) allow_missing: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// Also report the secondary score (ImageCLEF 2024/2025): the F1 with both sets restricted to the CUIs listed in this file.
    #[arg(long)]
    pub(crate) secondary: Option<PathBuf>,
    /// Also report the secondary score on the ontology's concepts of these levels (e.g. modality,anatomy).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub(crate) secondary_levels: Vec<Level>,
}

#[derive(Args, Debug)]
pub(crate) struct AnalyseArgs {
    /// Ground-truth label file.
    #[arg(long)]
    pub(crate) gt: PathBuf,
    /// Submission (predicted labels) to analyse.
    #[arg(long)]
    pub(crate) pred: PathBuf,
    /// Folder with the images, for the sample thumbnails (missing images get a placeholder).
    #[arg(long)]
    pub(crate) images: Option<PathBuf>,
    /// Output folder: report.html, summary.md, analysis.json and SVG plots.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Ontology for levels and names (default: built-in).
    #[arg(long)]
    pub(crate) ontology: Option<PathBuf>,
    /// Per-concept probabilities for the threshold curve: `predict --explain` output, or lines `id<TAB>CUI:p;CUI:p`.
    #[arg(long)]
    pub(crate) scores: Option<PathBuf>,
    /// Example images per error kind.
    #[arg(long, default_value_t = 3)]
    pub(crate) samples: usize,
    /// Format of the ground-truth file.
    #[arg(long, value_enum, default_value_t = LabelFormat::Auto)]
    pub(crate) format: LabelFormat,
    /// Analyse images missing from the submission as empty predictions instead of failing.
    #[arg(long)]
    pub(crate) allow_missing: bool,
}

#[derive(Subcommand, Debug)]
pub(crate) enum OntologyCmd {
    /// Check ontology files; every problem with file and line; exit 2 on any.
    Validate {
        /// Ontology TSV files (none: check the built-in one).
        files: Vec<PathBuf>,
    },
    /// Concepts per level, depth, roots, leaves.
    Stats {
        /// Ontology TSV (default: built-in).
        #[arg(long)]
        ontology: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// One concept: name, level, semantic types, ancestors, children.
    Show {
        /// The concept, e.g. C0006104.
        cui: String,
        /// Ontology TSV (default: built-in).
        #[arg(long)]
        ontology: Option<PathBuf>,
    },
    /// Where the CUIs of a label file fall: per level, unknown, noise.
    Map {
        /// Label file.
        #[arg(long)]
        labels: PathBuf,
        /// Label file format.
        #[arg(long, value_enum, default_value_t = LabelFormat::Auto)]
        format: LabelFormat,
        /// Ontology TSV (default: built-in).
        #[arg(long)]
        ontology: Option<PathBuf>,
        /// Place CUIs outside the ontology by semantic type: a TSV of `cui<TAB>T060;T023...`
        /// (a header line is skipped; extra columns ignored; `T060:Name` entries accepted) or MRSTY.RRF.
        #[arg(long)]
        semtypes: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Graphviz DOT of the hierarchy (or a subtree / one level); --out with .png/.svg renders it.
    Dot {
        /// Only this concept and its descendants.
        #[arg(long)]
        root: Option<String>,
        /// Only the concepts of this level (and their ancestors).
        #[arg(long, value_enum)]
        level: Option<Level>,
        /// Ontology TSV (default: built-in).
        #[arg(long)]
        ontology: Option<PathBuf>,
        /// File to write (.dot, or .svg/.png/.pdf rendered by Graphviz); default: DOT on standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Build an ontology TSV from UMLS Metathesaurus RRF files, restricted to the CUIs of a label file.
    FromUmls {
        /// Directory with MRCONSO.RRF, MRREL.RRF, MRSTY.RRF.
        #[arg(long)]
        rrf: PathBuf,
        /// Keep only the CUIs of this label file (and their ancestors).
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Ontology TSV to write.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum ReviewCmd {
    /// Serve the review app: one image at a time, each predicted concept marked correct / wrong / unsure without knowing which model said it; resumable.
    Serve(Box<ReviewServeArgs>),
    /// Clinical precision per level and concept for each model, missed terms, reviewer agreement (kappa), the paired difference between models, and a Table-5-style page.
    Report {
        /// Review database written by `review serve`.
        #[arg(long)]
        db: PathBuf,
        /// Folder to write review.html (one file, thumbnails inline) and review.json into.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print the report as JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Image folder for the thumbnails (default: the folder the review was made with).
        #[arg(long)]
        images: Option<PathBuf>,
        /// Bootstrap resamples for the interval of the paired difference (100 to 100000).
        #[arg(long, default_value_t = conceptree::review::report::DEFAULT_BOOTSTRAP)]
        bootstrap: usize,
        /// Reviewed images shown on the page (review.json has all of them).
        #[arg(long, default_value_t = conceptree::review::report::DEFAULT_MAX_IMAGES)]
        max_images: usize,
    },
    /// Every verdict and missing term of a review as CSV or JSON.
    Export {
        /// Review database written by `review serve`.
        #[arg(long)]
        db: PathBuf,
        /// File to write.
        #[arg(long)]
        out: PathBuf,
        /// csv or json (default: from the extension of --out, else csv).
        #[arg(long, value_enum)]
        format: Option<conceptree::review::export::ExportFormat>,
    },
}

#[derive(Args, Debug)]
pub(crate) struct ReviewServeArgs {
    /// Review database (SQLite, WAL): made on first use, resumed afterwards.
    #[arg(long)]
    pub(crate) db: PathBuf,
    /// Folder holding the images (`<id>.jpg|jpeg|png`, any case); needed to start a review (default when resuming: the review's folder).
    #[arg(long)]
    pub(crate) images: Option<PathBuf>,
    /// One model's predictions (ImageCLEF 2019, 2020+ or ROCO layout); give it once per model. Needed to start a review; checked by content hash when resuming.
    #[arg(long = "pred", value_name = "FILE")]
    pub(crate) preds: Vec<PathBuf>,
    /// `predict --explain` output of each --pred file, in the same order: the page shows each concept's probability.
    #[arg(long)]
    pub(crate) explain: Vec<PathBuf>,
    /// Ground truth, hidden unless the reviewer asks for it (showing it is recorded).
    #[arg(long)]
    pub(crate) gt: Option<PathBuf>,
    /// Ontology for the concepts' names and levels and for the search (default: built-in).
    #[arg(long)]
    pub(crate) ontology: Option<PathBuf>,
    /// UMLS MRCONSO.RRF (or the folder holding it): English synonyms to search for missing terms.
    #[arg(long)]
    pub(crate) synonyms: Option<PathBuf>,
    /// Name stored with every verdict (a second reviewer serves the same database under another name).
    #[arg(long, default_value = conceptree::review::DEFAULT_REVIEWER)]
    pub(crate) reviewer: String,
    /// Number of images to review, at least 1 (default: every image predicted by every model).
    #[arg(long)]
    pub(crate) sample: Option<usize>,
    /// Seed of the sample and of the blinded order of the models (default 42).
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// How the sample is drawn: random, stratified (as many per modality), disagreement (where the models differ most); default random.
    #[arg(long, value_enum)]
    pub(crate) strategy: Option<conceptree::review::Strategy>,
    /// How several models are shown: sets (one model's concepts at a time, in an order drawn per image) or union (one unattributed list); default sets.
    #[arg(long, value_enum)]
    pub(crate) blind: Option<conceptree::review::BlindMode>,
    /// Address or host name to listen on (a name is resolved: `localhost`); anything that is not a loopback address needs --token. 0.0.0.0 listens on every interface.
    #[arg(long, value_name = "ADDRESS", default_value = "127.0.0.1")]
    pub(crate) bind: String,
    /// Port (0: any free port; the address is printed).
    #[arg(long, default_value_t = 0)]
    pub(crate) port: u16,
    /// Token every request must carry: at least 16 characters of A-Z a-z 0-9 - . _ ~ (e.g. `openssl rand -hex 16`).
    #[arg(long, conflicts_with = "token_file")]
    pub(crate) token: Option<String>,
    /// File whose first line is the token (keeps it out of the process list).
    #[arg(long)]
    pub(crate) token_file: Option<PathBuf>,
}


impl Command {
    /// Commands that run no model and make no tensor on a device: they need not load libtorch's
    /// CUDA library (~230 MiB resident). Anything not listed loads it.
    pub(crate) fn never_uses_a_device(&self) -> bool {
        matches!(
            self,
            Command::Data(DataCmd::Synth { .. } | DataCmd::Stats { .. } | DataCmd::Ceiling { .. } | DataCmd::Cache { .. } | DataCmd::ImportFolders { .. } | DataCmd::ExportFolders { .. })
                | Command::Evaluate(_)
                | Command::Merge(_)
                | Command::Ontology(_)
                | Command::Review(ReviewCmd::Report { .. } | ReviewCmd::Export { .. })
        )
    }
}

/// Every numeric option of every command takes a negative number as its value (`--lr -1`), so
/// that it reaches the option's range check instead of being taken for an unknown option.
pub(crate) fn negative_numbers_reach_range_checks(cmd: clap::Command) -> clap::Command {
    use std::any::TypeId;
    let numeric = [TypeId::of::<f64>(), TypeId::of::<f32>(), TypeId::of::<usize>(), TypeId::of::<u64>(), TypeId::of::<u32>(), TypeId::of::<u16>(), TypeId::of::<i64>()];
    cmd.mut_args(|a| {
        let is_numeric = a.get_action().takes_values() && numeric.iter().any(|t| a.get_value_parser().type_id() == *t);
        if is_numeric {
            a.allow_negative_numbers(true)
        } else {
            a
        }
    })
    .mut_subcommands(negative_numbers_reach_range_checks)
}

/// A negative number given to an option that takes whole numbers from 0 (which clap reports as
/// "invalid digit") is answered with the option's range instead.
pub(crate) fn range_message_for_negatives(e: clap::Error) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let (Some(ContextValue::String(arg)), Some(ContextValue::String(value))) = (e.get(ContextKind::InvalidArg), e.get(ContextKind::InvalidValue)) else {
        return e;
    };
    if e.kind() != ErrorKind::ValueValidation || !value.starts_with('-') || value[1..].parse::<f64>().is_err() {
        return e;
    }
    let option = arg.trim_start_matches('-').split([' ', '=']).next().unwrap_or_default();
    // train and experiment state their options' ranges as their checks do
    let training = std::env::args().nth(1).is_some_and(|c| c == "train" || c == "experiment");
    // elsewhere the option's own check states its range once the value is a number
    let rule = training.then(|| conceptree::train::config::whole_number_rule(option)).flatten().unwrap_or("must be a whole number (see --help for its range)");
    let mut cmd = Cli::command();
    cmd.build();
    clap::Error::raw(ErrorKind::ValueValidation, format!("invalid value '{value}' for '{arg}': {rule}\n")).with_cmd(&cmd)
}

impl CommonTrain {
    /// Fill the shared options into `base`.
    pub(crate) fn into_config(self, base: TrainConfig) -> TrainConfig {
        use conceptree::data::augment::AugmentConfig;
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
            calibration: self.calibration,
            head_weights: self.head_weights,
            fair_schedule: self.fair_schedule,
            keep: self.keep,
            max_constraint: self.max_constraint,
            level_heads: self.level_heads,
            single_valued: self.single_valued,
            concepts: self.concepts,
            conditional_epochs: self.conditional_epochs,
            local_per_parent: self.local_per_parent,
            neck: self.neck,
            rest_top_k: self.rest_top_k,
            pooling: self.pooling,
            rest_pooling: self.rest_pooling,
            noise: self.noise,
            knn_k: self.knn_k,
            head_layers: self.head_layers,
            thresholds: self.thresholds,
            ..base
        }
    }
}

impl TrainArgs {
    pub(crate) fn into_config(self) -> TrainConfig {
        let base = TrainConfig {
            train_labels: self.labels.unwrap_or_default(),
            images: self.images.unwrap_or_default(),
            out: self.out.unwrap_or_default(),
            val_labels: self.val_labels,
            groups: self.groups,
            mode: self.mode,
            schedule: self.schedule,
            strategy: self.strategy,
            val_split: self.val_split,
            split_seed: self.split_seed,
            ..TrainConfig::default()
        };
        self.common.into_config(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed_and_every_option_is_described() {
        let cmd = Cli::command();
        cmd.clone().debug_assert();
        fn walk(c: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in c.get_arguments() {
                let positional_or_flag = a.get_long().is_some() || a.is_positional();
                if positional_or_flag && a.get_help().is_none() && !["help", "version"].contains(&a.get_id().as_str()) {
                    missing.push(format!("{path} --{}", a.get_id()));
                }
            }
            for s in c.get_subcommands() {
                walk(s, &format!("{path} {}", s.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&cmd, "conceptree", &mut missing);
        assert!(missing.is_empty(), "options without a description: {missing:?}");
    }

    #[test]
    fn the_option_scopes_name_options_of_train() {
        let cmd = Cli::command();
        let train = cmd.find_subcommand("train").unwrap();
        for (option, _) in conceptree::train::config::OPTION_SCOPES {
            assert!(train.get_arguments().any(|a| a.get_long() == Some(option) && a.get_id().as_str().replace('_', "-") == *option), "--{option} is not an option of train (by that id)");
        }
    }

    #[test]
    fn train_defaults_come_from_the_library() {
        let cli = Cli::try_parse_from(["conceptree", "train", "--labels", "l.csv", "--images", "i", "--out", "o"]).unwrap();
        let Command::Train(a) = cli.cmd else { panic!("train") };
        let cfg = a.into_config();
        let want = TrainConfig { train_labels: "l.csv".into(), images: "i".into(), out: "o".into(), ..TrainConfig::default() };
        assert_eq!(cfg, want);
    }
}

/// `TRUNK=FILE` of `experiment compare --trunk-weights`.
fn parse_trunk_weights(s: &str) -> Result<(TrunkKind, PathBuf), String> {
    let (trunk, file) = s.split_once('=').ok_or_else(|| format!("'{s}': expected TRUNK=FILE, e.g. densenet121=densenet121_imagenet.safetensors"))?;
    let trunk = TrunkKind::parse(trunk)?;
    if file.is_empty() {
        return Err(format!("'{s}': no file after '='"));
    }
    Ok((trunk, PathBuf::from(file)))
}
