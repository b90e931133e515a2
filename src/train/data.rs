//! Data preparation for a run: labels read and joined with their images, the train/validation
//! split, the image sources (files or an image cache), and the heads' label spaces. What is worth
//! saying on the way (a detected label format, ignored files, a head left out) goes to the
//! [`Events`] sink passed in.
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use super::checked::{CheckedConfig, LevelOptions, ModeOptions, RestOptions, TopK};
use super::config::{Calibration, LevelHeads};
use super::loss::{uses_class_weights, HeadTargets};
use super::error::TrainError;
use crate::data::cache::ImageCache;
use crate::data::dataset::{read_groups, sample_at_most, split_train_val, Dataset, LabelSpace};
use crate::data::images::ImageDir;
use crate::data::labels::{read_labels, ParseOptions, SkipReport};
use crate::data::loader::ImageSource;
use crate::model::{HeadConfig, HeadKind, HeadSpec, ModelConfig, Neck, Pooling, SingleLabelDecoding};
use crate::eval::ceiling::residual_top;
use crate::events::{Event, Events};
use crate::ontology::Ontology;

pub use crate::model::REST;

/// The images a run trains and validates on.
pub struct TrainData {
    pub train: Dataset,
    pub val: Dataset,
    /// Rows and images skipped under `--skip-bad` (reported, and written as `skipped.json`).
    pub skipped: SkipReport,
    pub train_source: ImageSource,
    pub val_source: ImageSource,
}

impl TrainData {
    /// Read the labels, find every image, split (or read the validation labels) and open the
    /// image cache when one is configured. Every problem names its file, line or id.
    pub fn prepare(cfg: &CheckedConfig, events: &dyn Events) -> Result<TrainData, TrainError> {
        let opts = ParseOptions { skip_bad: cfg.skip_bad, ..Default::default() };
        let images = ImageDir::open(&cfg.images)?;
        let (rows, mut skipped) = read_labels(&cfg.train_labels, opts)?;
        if let Some(note) = skipped.detected_note() {
            events.emit(Event::Text(note));
        }
        let (full, img_skips) = Dataset::open(&rows, &cfg.train_labels.display().to_string(), &images, cfg.skip_bad)?;
        skipped.merge(img_skips);
        // groups split the images, and keep a sample of them whole (--max-train-images)
        let groups = cfg.groups.as_deref().filter(|_| cfg.val_labels.is_none() || cfg.max_train_images > 0).map(read_groups).transpose()?;
        let (train, val) = match (&cfg.val_labels, cfg.val_split) {
            (Some(v), _) => {
                let (vrows, vskip) = read_labels(v, opts)?;
                skipped.merge(vskip);
                let (vds, vimg) = Dataset::open(&vrows, &v.display().to_string(), &images, cfg.skip_bad)?;
                skipped.merge(vimg);
                (full, vds)
            }
            (None, share) => {
                let (tr, va) = split_train_val(&full.ids, share.expect("a run without --val-labels has its split share"), cfg.split_seed(), groups.as_ref());
                (full.subset(&tr), full.subset(&va))
            }
        };
        if val.is_empty() || train.is_empty() {
            return Err(TrainError::EmptySplit { train: train.len(), val: val.len() });
        }
        // a seeded sample across the training images (whole groups), not the first N in id order
        let train = if cfg.max_train_images > 0 && train.len() > cfg.max_train_images {
            train.subset(&sample_at_most(&train.ids, cfg.max_train_images, cfg.split_seed(), groups.as_ref()))
        } else {
            train
        };
        // images from their files, or from a cache of them decoded and resized (`conceptree data cache`)
        let cache = cfg.image_cache.as_deref().map(ImageCache::open).transpose()?.map(Arc::new);
        let source = |paths: &[PathBuf]| -> Result<ImageSource, TrainError> {
            let paths = Arc::new(paths.to_vec());
            Ok(match &cache {
                Some(c) => ImageSource::cached(paths, c.clone(), cfg.image_size)?,
                None => paths.into(),
            })
        };
        let (train_source, val_source) = (source(&train.paths)?, source(&val.paths)?);
        if let Some(c) = &cache {
            events.emit(Event::ImageCache { dir: c.dir.clone(), entries: c.entries.len(), size: c.size });
        }
        if !images.ignored.is_empty() {
            events.emit(Event::NotImages { dir: images.dir.clone(), ignored: images.ignored.to_string() });
        }
        Ok(TrainData { train, val, skipped, train_source, val_source })
    }
}

/// Head specs for `cfg` from the training labels: the flat top-K, or one head per level with the
/// level's concepts that occur on at least `min_count` images, most frequent first (a level whose
/// concepts never co-occur on a training image gets a single-label head); hybrid models add the
/// residual head [`REST`] over the `rest_top_k` most frequent concepts on none of the levels.
pub fn head_specs(cfg: &CheckedConfig, train: &Dataset, ontology: &Ontology, events: &dyn Events) -> Result<Vec<HeadSpec>, TrainError> {
    match cfg.options() {
        ModeOptions::Flat { concepts, .. } => flat_head("flat", *concepts, train),
        ModeOptions::Knn { concepts, .. } => flat_head("knn", *concepts, train),
        ModeOptions::Hierarchical { levels, .. } => level_heads(levels, None, train, ontology, events),
        ModeOptions::Hybrid { levels, rest, .. } => level_heads(levels, Some(rest), train, ontology, events),
    }
}

/// The one head of a flat or kNN model: its top-K concepts.
fn flat_head(name: &str, TopK { top_k, min_count }: TopK, train: &Dataset) -> Result<Vec<HeadSpec>, TrainError> {
    let space = LabelSpace::top_k(&train.concept_counts(), top_k, min_count);
    if space.is_empty() {
        return Err(TrainError::NoConcepts { what: format!("no concept occurs on at least {} training images", min_count) });
    }
    Ok(vec![HeadSpec::new(name, space.concepts, HeadKind::MultiLabel)])
}

/// A head per level (and a hybrid model's residual head), over the label space `cfg.concepts`.
fn level_heads(cfg: &LevelOptions, rest: Option<&RestOptions>, train: &Dataset, ontology: &Ontology, events: &dyn Events) -> Result<Vec<HeadSpec>, TrainError> {
    let mut counts = train.concept_counts();
    // one label space for every mode (--concepts): a flat model's is its top-K (set from it)
    if let Some(spec) = cfg.concepts {
        let (k, min) = spec.top_k_min_count();
        let space: BTreeSet<String> = LabelSpace::top_k(&counts, k, min).concepts.into_iter().collect();
        counts.retain(|c, _| space.contains(c));
    }
    let mut specs = Vec::new();
    for &level in &cfg.levels {
        let mut concepts: Vec<(String, usize)> =
            counts.iter().filter(|(c, &n)| n >= cfg.min_count.max(1) && ontology.level_of(c) == Some(level)).map(|(c, &n)| (c.clone(), n)).collect();
        concepts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        if concepts.is_empty() {
            events.emit(Event::EmptyLevel { level: level.to_string() });
            continue;
        }
        let set: BTreeSet<&str> = concepts.iter().map(|(c, _)| c.as_str()).collect();
        let max_per_image = train.labels.iter().map(|l| l.iter().filter(|c| set.contains(c.as_str())).count()).max().unwrap_or(0);
        let single_valued = max_per_image <= 1;
        let concepts: Vec<String> = concepts.into_iter().map(|(c, _)| c).collect();
        specs.push(match cfg.level_heads {
            LevelHeads::Softmax => HeadSpec::new(level.to_string(), concepts, if single_valued { HeadKind::SingleLabel } else { HeadKind::MultiLabel }),
            LevelHeads::Sigmoid => HeadSpec { descendants: ontology.descendants_within(&concepts), single_valued, ..HeadSpec::new(level.to_string(), concepts, HeadKind::MultiLabel) },
        });
    }
    if let Some(rest) = rest {
        let frequency: Vec<(String, usize)> = {
            let mut v: Vec<(String, usize)> = counts.iter().filter(|(_, &n)| n >= cfg.min_count.max(1)).map(|(c, &n)| (c.clone(), n)).collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            v
        };
        let residual = residual_top(&frequency, ontology, &cfg.levels, rest.top_k, rest.noise);
        if residual.is_empty() {
            events.emit(Event::Note("every training concept lies on a chosen level; the residual head is left out".into()));
        } else {
            specs.push(HeadSpec::new(REST, residual, HeadKind::MultiLabel));
        }
    }
    if specs.is_empty() {
        let levels: Vec<String> = cfg.levels.iter().map(|l| l.to_string()).collect();
        return Err(TrainError::NoConcepts {
            what: format!("none of the levels {} has a concept in the training labels (run `conceptree ontology map --labels ...`)", levels.join(", ")),
        });
    }
    Ok(specs)
}

/// The model a new run trains: its heads ([`head_specs`]), and in hierarchical mode the logit
/// adjustment of class-weighted single-label heads (`--calibration logit-adjust`), the
/// max-constraint of multi-label levels (`--max-constraint`), the neck and the single-label
/// decoding rule.
pub fn model_config(cfg: &CheckedConfig, train: &Dataset, ontology: &Ontology, events: &dyn Events) -> Result<ModelConfig, TrainError> {
    let mut heads = head_specs(cfg, train, ontology, events)?;
    // kNN trains nothing: its (unused) head has the defaults
    let defaults = super::config::TrainConfig::defaults();
    let (pooling, head_layers) = cfg.fit().map_or((defaults.pooling, defaults.head_layers), |f| (f.pooling, f.head_layers));
    let rest_pooling = cfg.rest().map_or(defaults.rest_pooling, |r| r.pooling);
    if let Some(levels) = cfg.levels() {
        for spec in &mut heads {
            let kind = spec.kind.behaviour();
            if kind.exclusive() && levels.calibration == Calibration::LogitAdjust && uses_class_weights(spec, cfg) {
                spec.logit_adjustment = HeadTargets::build(spec, &train.labels).weights(spec, None).iter().map(|w| w.ln()).collect();
            }
            if kind.takes_max_constraint() && (levels.max_constraint || levels.local_per_parent) {
                spec.descendants = ontology.descendants_within(&spec.concepts);
            }
            // a level whose concepts nest learns each child against its parents' images
            if levels.local_per_parent && !spec.descendants.is_empty() {
                spec.kind = HeadKind::LocalPerParent;
            }
        }
        if levels.local_per_parent && !heads.iter().any(|h| h.kind == HeadKind::LocalPerParent) {
            events.emit(Event::Note("--local-per-parent: no multi-label level's concepts nest among the concepts learned, so every level trains as without it".into()));
        }
    }
    let neck = cfg.levels().map_or(Neck::PerHead, |l| l.neck);
    if neck == Neck::PerHead {
        for spec in &mut heads {
            spec.pooling = if spec.name == REST { rest_pooling } else { pooling };
        }
    } else if heads.iter().any(|h| h.name == REST) && rest_pooling != Pooling::Avg {
        events.emit(Event::Note("with --neck shared the residual head uses the shared neck's average pooling (--rest-pooling applies to per-head necks)".into()));
    }
    let levels = cfg.levels();
    Ok(ModelConfig {
        trunk: cfg.trunk,
        head: HeadConfig { layers: head_layers, ..HeadConfig::for_trunk(cfg.trunk) },
        heads,
        condition_on_previous: levels.is_some_and(|l| l.condition_on_previous),
        neck,
        single_label: if levels.is_some_and(|l| l.calibration != Calibration::None) { SingleLabelDecoding::Threshold } else { SingleLabelDecoding::Argmax },
        single_valued: levels.map_or(defaults.single_valued, |l| l.single_valued),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Collect, Silent};
    use crate::train::config::{Mode, TrainConfig};

    #[test]
    fn descendants_follow_the_ontology_within_a_head() {
        let onto = Ontology::builtin();
        // head and neck > head > brain; chest > heart
        let concepts: Vec<String> = ["C0460004", "C0018670", "C0006104", "C0817096", "C0018787"].iter().map(|c| c.to_string()).collect();
        let d = onto.descendants_within(&concepts);
        assert_eq!(d[0], vec![0, 1, 2]);
        assert_eq!(d[1], vec![1, 2]);
        assert_eq!(d[2], vec![2]);
        assert_eq!(d[3], vec![3, 4]);
        assert!(onto.descendants_within(&concepts[3..4]).is_empty(), "no hierarchy inside: no constraint");
    }

    fn dataset(rows: &[&[&str]]) -> Dataset {
        let labels: Vec<BTreeSet<String>> = rows.iter().map(|r| r.iter().map(|c| c.to_string()).collect()).collect();
        Dataset { ids: (0..rows.len()).map(|i| format!("i{i}")).collect(), paths: (0..rows.len()).map(|i| PathBuf::from(format!("i{i}.png"))).collect(), labels }
    }

    #[test]
    fn one_label_space_option_gives_flat_and_hierarchical_the_same_concepts() {
        let onto = Ontology::builtin();
        // CT 4, MRI 2, head and neck 3, head 3, brain 2, axial 3, coronal 1 (a rare one)
        let (ct, mri, hn, head, brain, ax, cor) = ("C0040405", "C0024485", "C0460004", "C0018670", "C0006104", "C0205131", "C0205123");
        let train = dataset(&[&[ct, hn, head, brain, ax], &[ct, hn, head, brain, ax], &[ct, hn, head, ax], &[ct, cor], &[mri], &[mri]]);
        let levels = vec![crate::ontology::Level::Modality, crate::ontology::Level::Anatomy, crate::ontology::Level::Plane];
        for spec in ["top-k:5", "min-count:2", "all"] {
            let spec: crate::train::config::LabelSpec = spec.parse().unwrap();
            let mut sets = Vec::new();
            for mode in [Mode::Flat, Mode::Hierarchical, Mode::Knn] {
                for level_heads in [LevelHeads::Softmax, LevelHeads::Sigmoid] {
                    let cfg = TrainConfig { mode, levels: levels.clone(), level_heads, concepts: Some(spec), ..TrainConfig::default() }.check().unwrap();
                    let got: BTreeSet<String> = head_specs(&cfg, &train, &onto, &Silent).unwrap().iter().flat_map(|h| h.concepts.clone()).collect();
                    sets.push((format!("{mode:?} {level_heads:?}"), got));
                }
            }
            assert!(sets.iter().all(|(_, s)| *s == sets[0].1), "{spec}: {sets:?}");
            let n = sets[0].1.len();
            assert_eq!(n, match spec { crate::train::config::LabelSpec::TopK(_) => 5, crate::train::config::LabelSpec::MinCount(_) => 6, crate::train::config::LabelSpec::All => 7 }, "{spec}: {:?}", sets[0].1);
        }
        // without the option the hierarchical model keeps every concept of its levels, flat its top-K
        let hier = TrainConfig { mode: Mode::Hierarchical, levels, ..TrainConfig::default() }.check().unwrap();
        assert_eq!(head_specs(&hier, &train, &onto, &Silent).unwrap().iter().map(|h| h.concepts.len()).sum::<usize>(), 7);
    }

    #[test]
    fn sigmoid_level_heads_are_multi_label_with_the_max_constraint_and_know_their_single_valued_levels() {
        let onto = Ontology::builtin();
        let (ct, mri, hn, head, brain, chest) = ("C0040405", "C0024485", "C0460004", "C0018670", "C0006104", "C0817096");
        let train = dataset(&[&[ct, hn, head, brain], &[mri, chest], &[ct, hn, head]]);
        let cfg = TrainConfig { mode: Mode::Hierarchical, level_heads: LevelHeads::Sigmoid, ..TrainConfig::default() };
        let model = model_config(&cfg.clone().check().unwrap(), &train, &onto, &Silent).unwrap();
        let modality = &model.heads[0];
        assert_eq!((modality.kind, modality.single_valued), (HeadKind::MultiLabel, true));
        assert!(modality.descendants.is_empty(), "no hierarchy among the modalities here");
        let anatomy = &model.heads[1];
        assert_eq!((anatomy.kind, anatomy.single_valued), (HeadKind::MultiLabel, false));
        // head and neck (3 images... order by count): its descendants hold head and brain
        let at = |c: &str| anatomy.concepts.iter().position(|x| x == c).unwrap();
        assert_eq!(anatomy.descendants[at(hn)], { let mut v = vec![at(hn), at(head), at(brain)]; v.sort(); v });
        // the same labels with softmax levels: modality is a softmax head with "none"
        let soft = model_config(&TrainConfig { level_heads: LevelHeads::Softmax, ..cfg }.check().unwrap(), &train, &onto, &Silent).unwrap();
        assert_eq!(soft.heads[0].kind, HeadKind::SingleLabel);
    }

    #[test]
    fn local_per_parent_takes_the_levels_whose_concepts_nest_and_says_when_none_does() {
        let onto = Ontology::builtin();
        let (ct, mri, hn, head, brain, chest) = ("C0040405", "C0024485", "C0460004", "C0018670", "C0006104", "C0817096");
        let train = dataset(&[&[ct, hn, head, brain], &[mri, chest], &[ct, hn, head]]);
        for level_heads in [LevelHeads::Softmax, LevelHeads::Sigmoid] {
            let cfg = TrainConfig { mode: Mode::Hierarchical, level_heads, local_per_parent: true, ..TrainConfig::default() }.check().unwrap();
            let model = model_config(&cfg, &train, &onto, &Silent).unwrap();
            // anatomy nests (head and neck > head > brain): a local classifier per parent with its nesting
            let anatomy = model.heads.iter().find(|h| h.name == "anatomy").unwrap();
            assert_eq!(anatomy.kind, HeadKind::LocalPerParent, "{level_heads:?}");
            assert!(!anatomy.descendants.is_empty());
            // modality does not nest: unchanged
            let modality = &model.heads[0];
            assert_ne!(modality.kind, HeadKind::LocalPerParent);
        }
        // conditional training on top of it is refused
        assert!(TrainConfig { mode: Mode::Hierarchical, local_per_parent: true, conditional_epochs: 2, ..TrainConfig::default() }.check().is_err());
        // no level nests: the run says so
        let cfg = TrainConfig { mode: Mode::Hierarchical, levels: vec![crate::ontology::Level::Modality], local_per_parent: true, ..TrainConfig::default() }.check().unwrap();
        let events = Collect::default();
        let model = model_config(&cfg, &train, &onto, &events).unwrap();
        assert!(model.heads.iter().all(|h| h.kind != HeadKind::LocalPerParent));
        let notes: Vec<String> = events.take().into_iter().filter_map(|e| if let Event::Note(n) = e { Some(n) } else { None }).collect();
        assert!(notes.iter().any(|n| n.contains("--local-per-parent: no multi-label level")), "{notes:?}");
    }

    /// Preparing a run reports what it noticed to the sink it is given, and prints nothing: the
    /// label format it detected, a hidden file it did not take as an image, and (choosing the
    /// heads) a level without a training concept.
    #[test]
    fn preparing_a_run_reports_through_events() {
        let tmp = tempfile::tempdir().unwrap();
        let images = tmp.path().join("images");
        std::fs::create_dir(&images).unwrap();
        let mut labels = String::new();
        for i in 0..10 {
            image::GrayImage::new(4, 4).save(images.join(format!("i{i}.png"))).unwrap();
            labels.push_str(&format!("i{i}\tC0040405;C0817096\n"));
        }
        std::fs::write(images.join("._i0.png"), b"").unwrap();
        let labels_file = tmp.path().join("labels.csv");
        std::fs::write(&labels_file, labels).unwrap();
        let levels = vec![crate::ontology::Level::Modality, crate::ontology::Level::Plane];
        let cfg = TrainConfig { train_labels: labels_file, images: images.clone(), mode: Mode::Hierarchical, levels, min_count: 1, ..TrainConfig::default() }.check().unwrap();
        let sink = Collect::default();
        let data = TrainData::prepare(&cfg, &sink).unwrap();
        let events = sink.take();
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(matches!(&events[0], Event::Text(t) if t.contains("labels.csv: read as ImageCLEF 2019")), "{events:?}");
        assert!(matches!(&events[1], Event::NotImages { dir, ignored } if dir.ends_with("images") && ignored.starts_with("1 hidden file(s)")), "{events:?}");
        assert_eq!(events[1].to_string(), format!("note: in {}, not taken as images: 1 hidden file(s) such as {}", images.display(), images.join("._i0.png").display()));
        let model = model_config(&cfg, &data.train, &Ontology::builtin(), &sink).unwrap();
        assert_eq!(model.heads.len(), 1, "only modality has a training concept");
        assert_eq!(sink.take(), vec![Event::EmptyLevel { level: "plane".into() }]);
    }
}
