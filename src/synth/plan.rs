//! What each image shows: the phantom specification types ([`PhantomSpec`] and its parts), their
//! sampling from the data set's distribution ([`sample_spec`]), the data set plan of "patients"
//! ([`plan`]) and the per-image random generator ([`image_rng`]).
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::concepts::{cui, parent_of};
use super::config::{SynthConfig, SynthError};

/// Imaging modality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Modality {
    /// X-ray computed tomography.
    Ct,
    /// Magnetic resonance imaging.
    Mri,
    /// Plain (projection) radiography.
    XRay,
    /// Ultrasonography.
    Ultrasound,
}

impl Modality {
    /// The modality's CUI.
    pub fn cui(self) -> &'static str {
        match self {
            Modality::Ct => cui::CT,
            Modality::Mri => cui::MRI,
            Modality::XRay => cui::XRAY,
            Modality::Ultrasound => cui::ULTRASOUND,
        }
    }
    /// Short name used in `meta.csv`: `ct`, `mri`, `xray`, `us`.
    pub fn name(self) -> &'static str {
        match self {
            Modality::Ct => "ct",
            Modality::Mri => "mri",
            Modality::XRay => "xray",
            Modality::Ultrasound => "us",
        }
    }
}

/// Body region shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Anatomy {
    /// Head (labelled head + head and neck; CT/MRI also brain).
    Head,
    /// Chest.
    Chest,
    /// Abdomen.
    Abdomen,
    /// Knee (always with a laterality).
    Knee,
}

impl Anatomy {
    /// The region's own CUI (for head: `Head`; ancestors and brain are added by [`PhantomSpec::cuis`]).
    pub fn cui(self) -> &'static str {
        match self {
            Anatomy::Head => cui::HEAD,
            Anatomy::Chest => cui::CHEST,
            Anatomy::Abdomen => cui::ABDOMEN,
            Anatomy::Knee => cui::KNEE,
        }
    }
    /// Short name used in `meta.csv`.
    pub fn name(self) -> &'static str {
        match self {
            Anatomy::Head => "head",
            Anatomy::Chest => "chest",
            Anatomy::Abdomen => "abdomen",
            Anatomy::Knee => "knee",
        }
    }
}

/// Image plane (CT/MRI) or projection view (x-ray).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PlaneOrView {
    /// Axial (transverse) slice.
    Axial,
    /// Coronal slice.
    Coronal,
    /// Sagittal slice.
    Sagittal,
    /// Postero-anterior projection.
    Pa,
    /// Antero-posterior projection.
    Ap,
    /// Lateral projection.
    Lateral,
}

impl PlaneOrView {
    /// The plane's or view's CUI.
    pub fn cui(self) -> &'static str {
        match self {
            PlaneOrView::Axial => cui::AXIAL,
            PlaneOrView::Coronal => cui::CORONAL,
            PlaneOrView::Sagittal => cui::SAGITTAL,
            PlaneOrView::Pa => cui::PA,
            PlaneOrView::Ap => cui::AP,
            PlaneOrView::Lateral => cui::LATERAL,
        }
    }
    /// Short name used in `meta.csv`.
    pub fn name(self) -> &'static str {
        match self {
            PlaneOrView::Axial => "axial",
            PlaneOrView::Coronal => "coronal",
            PlaneOrView::Sagittal => "sagittal",
            PlaneOrView::Pa => "pa",
            PlaneOrView::Ap => "ap",
            PlaneOrView::Lateral => "lateral",
        }
    }
    pub(super) fn is_projection(self) -> bool {
        matches!(self, PlaneOrView::Pa | PlaneOrView::Ap | PlaneOrView::Lateral)
    }
}

/// Patient side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// Patient's left (image right on frontal views).
    Left,
    /// Patient's right (image left on frontal views).
    Right,
}

impl Side {
    /// The laterality CUI.
    pub fn cui(self) -> &'static str {
        match self {
            Side::Left => cui::LEFT,
            Side::Right => cui::RIGHT,
        }
    }
    /// Short name used in `meta.csv`.
    pub fn name(self) -> &'static str {
        match self {
            Side::Left => "left",
            Side::Right => "right",
        }
    }
    /// Image-x direction of this side on frontal/axial images (patient right is image left): -1 or +1.
    pub(super) fn image_sign(self) -> f32 {
        match self {
            Side::Left => 1.0,
            Side::Right => -1.0,
        }
    }
}

/// A finding drawn into the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Finding {
    /// Hazy opacity (x-ray) / ground-glass patches (CT) in one lung. The side is not a label.
    Pneumonia {
        /// Which lung.
        side: Side,
    },
}

/// Everything that decides what a phantom shows. Any combination renders without panicking;
/// combinations [`sample_spec`] never makes fall back to the nearest supported drawing
/// (ultrasound always shows an abdominal scene; a projection view on CT/MRI draws an axial slice;
/// a slice plane on x-ray draws a frontal projection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PhantomSpec {
    /// Modality.
    pub modality: Modality,
    /// Body region.
    pub anatomy: Anatomy,
    /// Plane (CT/MRI) or view (x-ray); `None` for ultrasound.
    pub plane_or_view: Option<PlaneOrView>,
    /// Laterality label (knees only in sampled data).
    pub laterality: Option<Side>,
    /// Contrast medium given (CT/MRI only in sampled data).
    pub contrast: bool,
    /// Finding (pneumonia on chest CT/x-ray only in sampled data).
    pub finding: Option<Finding>,
    /// "Patient" seed: body habitus (width, fat, organ sizes) derives from it, so the images of
    /// one group look like the same person.
    pub subject: u64,
}

impl PhantomSpec {
    /// True when the brain label applies: head on CT or MRI (a skull radiograph is labelled head only).
    pub(crate) fn shows_brain(&self) -> bool {
        self.anatomy == Anatomy::Head && matches!(self.modality, Modality::Ct | Modality::Mri)
    }

    /// The image's label: its CUIs with all ancestors (within [`concept_table`](super::concept_table)), sorted, unique.
    pub fn cuis(&self) -> Vec<&'static str> {
        let mut v = vec![self.modality.cui(), self.anatomy.cui()];
        if self.shows_brain() {
            v.push(cui::BRAIN);
        }
        if let Some(p) = self.plane_or_view {
            v.push(p.cui());
        }
        if let Some(s) = self.laterality {
            v.push(s.cui());
        }
        if self.contrast {
            v.push(cui::CONTRAST);
        }
        if let Some(Finding::Pneumonia { .. }) = self.finding {
            v.push(cui::PNEUMONIA);
        }
        let mut i = 0;
        while i < v.len() {
            if let Some(p) = parent_of(v[i]) {
                if !v.contains(&p) {
                    v.push(p);
                }
            }
            i += 1;
        }
        v.sort_unstable();
        v.dedup();
        v
    }
}

pub(super) fn pick<T: Copy, R: Rng + ?Sized>(rng: &mut R, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|x| x.1).sum();
    let mut r = rng.gen_range(0..total.max(1));
    for &(t, w) in items {
        if r < w {
            return t;
        }
        r -= w;
    }
    items[items.len() - 1].0
}

/// Draw one phantom spec from the data set's distribution (see `data/README.md` for the rates):
/// modality CT 36 %, MRI 25 %, x-ray 27 %, ultrasound 12 %; anatomy by modality; plane/view,
/// contrast, laterality (knees) and pneumonia (chest CT/x-ray, 35 %).
pub fn sample_spec<R: Rng + ?Sized>(rng: &mut R) -> PhantomSpec {
    use Anatomy::*;
    let modality = pick(rng, &[(Modality::Ct, 36), (Modality::Mri, 25), (Modality::XRay, 27), (Modality::Ultrasound, 12)]);
    let anatomy = match modality {
        Modality::Ct => pick(rng, &[(Head, 30), (Chest, 30), (Abdomen, 25), (Knee, 15)]),
        Modality::Mri => pick(rng, &[(Head, 45), (Abdomen, 20), (Knee, 35)]),
        Modality::XRay => pick(rng, &[(Chest, 60), (Knee, 25), (Abdomen, 10), (Head, 5)]),
        Modality::Ultrasound => Abdomen,
    };
    let mut spec =
        PhantomSpec { modality, anatomy, plane_or_view: None, laterality: None, contrast: false, finding: None, subject: rng.gen() };
    if anatomy == Knee {
        spec.laterality = Some(if rng.gen_bool(0.5) { Side::Left } else { Side::Right });
    }
    if anatomy == Chest && matches!(modality, Modality::Ct | Modality::XRay) && rng.gen_bool(0.35) {
        let side = if rng.gen_bool(0.5) { Side::Left } else { Side::Right };
        spec.finding = Some(Finding::Pneumonia { side });
    }
    resample_acquisition(&mut spec, rng);
    spec
}

/// Re-draw what varies between images of one patient: plane/view and contrast phase.
fn resample_acquisition<R: Rng + ?Sized>(spec: &mut PhantomSpec, rng: &mut R) {
    use PlaneOrView::*;
    spec.plane_or_view = match spec.modality {
        Modality::Ct | Modality::Mri => Some(pick(rng, &[(Axial, 50), (Coronal, 25), (Sagittal, 25)])),
        Modality::XRay => Some(match spec.anatomy {
            Anatomy::Chest => pick(rng, &[(Pa, 45), (Ap, 35), (Lateral, 20)]),
            Anatomy::Knee => pick(rng, &[(Ap, 60), (Lateral, 40)]),
            Anatomy::Abdomen => Ap,
            Anatomy::Head => pick(rng, &[(Pa, 50), (Lateral, 50)]),
        }),
        Modality::Ultrasound => None,
    };
    let p = match (spec.modality, spec.anatomy) {
        (Modality::Ct, Anatomy::Head) => 0.25,
        (Modality::Ct, Anatomy::Chest) => 0.4,
        (Modality::Ct, Anatomy::Abdomen) => 0.55,
        (Modality::Mri, Anatomy::Head) => 0.35,
        (Modality::Mri, Anatomy::Abdomen) => 0.45,
        (Modality::Mri, Anatomy::Knee) => 0.1,
        _ => 0.0,
    };
    spec.contrast = rng.gen_bool(p);
}

/// One planned image of a data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedImage {
    /// Image id, `SYN_NNNNN`.
    pub id: String,
    /// Synthetic patient id, `G00000`; images of one group share modality, anatomy, laterality,
    /// finding and habitus, and differ in plane/view, contrast phase, slice level and pose.
    pub group: String,
    /// What the image shows.
    pub spec: PhantomSpec,
}

/// Image id for index `i`: `SYN_00000`, `SYN_00001`, ...
pub fn image_id(i: usize) -> String {
    format!("SYN_{i:05}")
}

/// The data set plan for `cfg` (specs and groups, no pixels): patients of 1-4 images each.
pub fn plan(cfg: &SynthConfig) -> Result<Vec<PlannedImage>, SynthError> {
    cfg.validate()?;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut out = Vec::with_capacity(cfg.n);
    let mut g = 0usize;
    while out.len() < cfg.n {
        let base = sample_spec(&mut rng);
        let k = pick(&mut rng, &[(1usize, 30), (2, 30), (3, 25), (4, 15)]);
        for j in 0..k {
            if out.len() >= cfg.n {
                break;
            }
            let mut spec = base;
            if j > 0 {
                resample_acquisition(&mut spec, &mut rng);
            }
            out.push(PlannedImage { id: image_id(out.len()), group: format!("G{g:05}"), spec });
        }
        g += 1;
    }
    Ok(out)
}

/// The per-image generator: `seed` on stream `index + 1` (stream 0 is the plan).
pub fn image_rng(seed: u64, index: usize) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(index as u64 + 1);
    r
}
