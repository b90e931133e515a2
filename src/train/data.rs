//! Data preparation for a run: labels read and joined with their images, the train/validation
//! split, the image sources (files or an image cache), and the heads' label spaces.
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use super::config::{Mode, TrainConfig};
use super::TrainError;
use crate::data::cache::ImageCache;
use crate::data::dataset::{read_groups, split_train_val, Dataset, LabelSpace};
use crate::data::images::ImageDir;
use crate::data::labels::{read_labels, ParseOptions, SkipReport};
use crate::data::loader::ImageSource;
use crate::model::{HeadKind, HeadSpec};
use crate::ontology::Ontology;

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
    pub fn prepare(cfg: &TrainConfig) -> Result<TrainData, TrainError> {
        let opts = ParseOptions { skip_bad: cfg.skip_bad, ..Default::default() };
        let images = ImageDir::open(&cfg.images)?;
        let (rows, mut skipped) = read_labels(&cfg.train_labels, opts)?;
        let (full, img_skips) = Dataset::open(&rows, &cfg.train_labels.display().to_string(), &images, cfg.skip_bad)?;
        skipped.merge(img_skips);
        let (train, val) = match &cfg.val_labels {
            Some(v) => {
                let (vrows, vskip) = read_labels(v, opts)?;
                skipped.merge(vskip);
                let (vds, vimg) = Dataset::open(&vrows, &v.display().to_string(), &images, cfg.skip_bad)?;
                skipped.merge(vimg);
                (full, vds)
            }
            None => {
                let groups = cfg.groups.as_deref().map(read_groups).transpose()?;
                let (tr, va) = split_train_val(&full.ids, cfg.val_split, cfg.seed, groups.as_ref());
                (full.subset(&tr), full.subset(&va))
            }
        };
        if val.is_empty() || train.is_empty() {
            return Err(TrainError::EmptySplit { train: train.len(), val: val.len() });
        }
        let train = if cfg.max_train_images > 0 && train.len() > cfg.max_train_images { train.subset(&(0..cfg.max_train_images).collect::<Vec<_>>()) } else { train };
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
            eprintln!("images from the cache {} ({} entries, {}x{})", c.dir.display(), c.entries.len(), c.size, c.size);
        }
        if !images.ignored.is_empty() {
            eprintln!("note: in {}, not taken as images: {}", images.dir.display(), images.ignored);
        }
        Ok(TrainData { train, val, skipped, train_source, val_source })
    }
}

/// Head specs for `cfg` from the training labels: the flat top-K, or one head per level with the
/// level's concepts that occur on at least `min_count` images, most frequent first. A level whose
/// concepts never co-occur on a training image gets a single-label head.
pub fn head_specs(cfg: &TrainConfig, train: &Dataset, ontology: &Ontology) -> Result<Vec<HeadSpec>, TrainError> {
    let counts = train.concept_counts();
    match cfg.mode {
        Mode::Flat => {
            let space = LabelSpace::top_k(&counts, cfg.top_k, cfg.min_count);
            if space.is_empty() {
                return Err(TrainError::NoConcepts { what: format!("no concept occurs on at least {} training images", cfg.min_count) });
            }
            Ok(vec![HeadSpec { name: "flat".into(), concepts: space.concepts, kind: HeadKind::MultiLabel }])
        }
        Mode::Hierarchical => {
            let mut specs = Vec::new();
            for &level in &cfg.levels {
                let mut concepts: Vec<(String, usize)> =
                    counts.iter().filter(|(c, &n)| n >= cfg.min_count.max(1) && ontology.level_of(c) == Some(level)).map(|(c, &n)| (c.clone(), n)).collect();
                concepts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                if concepts.is_empty() {
                    eprintln!("note: no training concept on level '{level}'; that head is left out");
                    continue;
                }
                let set: BTreeSet<&str> = concepts.iter().map(|(c, _)| c.as_str()).collect();
                let max_per_image = train.labels.iter().map(|l| l.iter().filter(|c| set.contains(c.as_str())).count()).max().unwrap_or(0);
                let kind = if max_per_image <= 1 { HeadKind::SingleLabel } else { HeadKind::MultiLabel };
                specs.push(HeadSpec { name: level.to_string(), concepts: concepts.into_iter().map(|(c, _)| c).collect(), kind });
            }
            if specs.is_empty() {
                let levels: Vec<String> = cfg.levels.iter().map(|l| l.to_string()).collect();
                return Err(TrainError::NoConcepts {
                    what: format!("none of the levels {} has a concept in the training labels (run `conceptree ontology map --labels ...`)", levels.join(", ")),
                });
            }
            Ok(specs)
        }
    }
}
