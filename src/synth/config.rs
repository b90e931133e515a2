//! What to generate ([`SynthConfig`]), what was written ([`SynthSummary`]) and the generator's
//! errors ([`SynthError`]).
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What to generate. Serde-friendly; every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SynthConfig {
    /// Number of images (default 400, at least 1).
    pub n: usize,
    /// Side of the square images in pixels (default 128, 32..=2048).
    pub size: u32,
    /// Seed for the plan and for every image (default 42).
    pub seed: u64,
    /// JPEG quality 1..=100 (default 90).
    pub jpeg_quality: u8,
    /// Burned-in annotations that lie on no ontology level, as real figures carry them: arrows
    /// (labelled C0376152, the "Marrow" MetaMap makes of the word "arrow", flagged noise in the
    /// ontology) and circled regions (labelled C0221198 Lesion, outside the ontology). Default
    /// off; with it off every file is as without the option.
    pub annotations: bool,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig { n: 400, size: 128, seed: 42, jpeg_quality: 90, annotations: false }
    }
}

impl SynthConfig {
    /// Check the ranges documented on the fields.
    pub fn validate(&self) -> Result<(), SynthError> {
        if self.n == 0 {
            return Err(SynthError::BadConfig("n must be at least 1".into()));
        }
        if !(32..=2048).contains(&self.size) {
            return Err(SynthError::BadConfig(format!("size must be in 32..=2048 px, got {}", self.size)));
        }
        if !(1..=100).contains(&self.jpeg_quality) {
            return Err(SynthError::BadConfig(format!("jpeg_quality must be in 1..=100, got {}", self.jpeg_quality)));
        }
        Ok(())
    }
}

/// What [`generate`](super::generate) wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SynthSummary {
    /// Number of images written.
    pub n_images: usize,
    /// `out/labels.csv` (ImageCLEF 2019 format).
    pub labels_path: PathBuf,
    /// `out/images`, holding `SYN_NNNNN.jpg`.
    pub images_dir: PathBuf,
    /// `out/meta.csv` (`id,modality,anatomy,plane_or_view,laterality,group`).
    pub meta_path: PathBuf,
    /// `out/concepts.tsv` (`cui<TAB>name<TAB>level<TAB>parent`, with a header line).
    pub concepts_path: PathBuf,
    /// How many images carry each CUI (ancestors included).
    pub concept_counts: BTreeMap<String, usize>,
}

/// Errors of the synthetic generator; I/O and encoding errors name the file.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// Creating a directory or writing a file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Encoding an image failed.
    #[error("cannot encode image {path}: {source}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: image::ImageError,
    },
    /// The configuration is out of range.
    #[error("bad synthetic data config: {0}")]
    BadConfig(String),
}
