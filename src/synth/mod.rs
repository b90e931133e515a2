//! Synthetic radiology phantoms: the project's built-in, deterministic default data set.
//!
//! [`generate`] writes `n` grayscale JPEG phantoms (`images/SYN_00000.jpg`, ...), an ImageCLEF 2019
//! label file (`labels.csv`: `SYN_00000<TAB>CUI;CUI;...`, CUIs sorted, ancestors included), a
//! `meta.csv` (`id,modality,anatomy,plane_or_view,laterality,group`) and the concept table
//! (`concepts.tsv`: `cui<TAB>name<TAB>level<TAB>parent`, the same layout as the project's ontology
//! files). Concepts are real UMLS CUIs (modality, technique, anatomy, DICOM CID 6312 planes,
//! CID 4010 views, CID 244 laterality, a finding), so models trained here can be pointed at
//! ImageCLEF/ROCO-style data without relabelling. See `data/README.md` for the table of concepts,
//! their frequencies and the exact image cue each one leaves.
//!
//! How an image is made: an anatomy function paints tissue classes (fat, muscle, bone, lung,
//! CSF, grey/white matter, liver, kidney, vessels, ...) into a label map in a normalised frame
//! (`[-1, 1]²`, y down, anterior up on axial slices, patient right on image left) under a random
//! pose; a modality maps tissues to intensities (CT: Hounsfield units through a random window;
//! MRI: T1/T2/FLAIR tables with a bias field and Rician noise; ultrasound: echogenicity in a fan
//! with speckle, depth attenuation and acoustic shadowing). Plain x-rays are instead projections:
//! ellipsoids and tubes add attenuation along the beam, shown as `1 - exp(-k·A)`. Burned-in
//! markers (L/R) and annotation digits use a tiny built-in bitmap font.
//!
//! Determinism: the data set plan (which phantom each image shows, and its "patient" group) comes
//! from one `ChaCha8Rng` seeded with `seed`; each image is rendered with its own `ChaCha8Rng`
//! seeded with `seed` on stream `index + 1`, so images render in parallel (rayon) and the same
//! seed and config always give byte-identical files.
//!
//! Layout: `concepts.rs` (CUIs and the concept table), `config.rs` (config, summary, errors),
//! `plan.rs` (phantom specs, sampling, the data set plan, per-image RNG), `writer.rs` (files),
//! `geometry.rs` (pose, rasterisers, tissue label map, projection accumulator), `texture.rs`
//! (noise, blur), `anatomy.rs` (habitus, cross-sectional anatomy), `render.rs` (tissue tables,
//! CT/MRI/ultrasound renderers), `xray.rs` (projection radiographs), `overlays.rs` (bitmap font,
//! markers, annotations).
mod anatomy;
mod concepts;
mod config;
mod geometry;
mod overlays;
mod plan;
mod render;
mod texture;
mod writer;
mod xray;

#[cfg(test)]
mod tests;

pub use concepts::{concept_table, cui};
pub use config::{SynthConfig, SynthError, SynthSummary};
pub use plan::{image_id, image_rng, plan, sample_spec, Anatomy, Finding, Modality, PhantomSpec, PlaneOrView, PlannedImage, Side};
pub use render::render;
pub use writer::{encode_jpeg, generate};
