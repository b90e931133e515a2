//! The concepts the generator labels with: the UMLS CUIs ([`cui`]), the concept table written to
//! `concepts.tsv` ([`concept_table`]) and the parent lookup used to add ancestors to a label.

/// The UMLS CUIs this generator uses (the same as in the project's ontology and realrad).
pub mod cui {
    /// X-Ray Computed Tomography (modality).
    pub const CT: &str = "C0040405";
    /// Magnetic Resonance Imaging (modality).
    pub const MRI: &str = "C0024485";
    /// Plain x-ray (modality).
    pub(crate) const XRAY: &str = "C1306645";
    /// Ultrasonography (modality).
    pub(crate) const ULTRASOUND: &str = "C0041618";
    /// Contrast Media (technique).
    pub(crate) const CONTRAST: &str = "C0009924";
    /// Head and Neck (anatomy, root of head).
    pub(crate) const HEAD_AND_NECK: &str = "C0460004";
    /// Head (anatomy, child of head and neck).
    pub(crate) const HEAD: &str = "C0018670";
    /// Brain (anatomy, child of head).
    pub(crate) const BRAIN: &str = "C0006104";
    /// Chest (anatomy).
    pub const CHEST: &str = "C0817096";
    /// Abdomen (anatomy).
    pub const ABDOMEN: &str = "C0000726";
    /// Knee (anatomy).
    pub(crate) const KNEE: &str = "C0022742";
    /// Axial plane (DICOM CID 6312).
    pub(crate) const AXIAL: &str = "C0205131";
    /// Coronal plane (DICOM CID 6312).
    pub(crate) const CORONAL: &str = "C0205123";
    /// Sagittal plane (DICOM CID 6312).
    pub(crate) const SAGITTAL: &str = "C0205129";
    /// Postero-anterior view (DICOM CID 4010).
    pub(crate) const PA: &str = "C0457409";
    /// Antero-posterior view (DICOM CID 4010).
    pub(crate) const AP: &str = "C0442212";
    /// Lateral view (DICOM CID 4010).
    pub(crate) const LATERAL: &str = "C0442197";
    /// Left (laterality, DICOM CID 244).
    pub const LEFT: &str = "C0205091";
    /// Right (laterality, DICOM CID 244).
    pub const RIGHT: &str = "C0205090";
    /// Pneumonia (finding).
    pub const PNEUMONIA: &str = "C0032285";
    /// "Marrow": what MetaMap makes of the word "arrow" in captions (ROCO's most frequent label
    /// noise); the label of a burned-in arrow (`--annotations`). On no level; flagged noise.
    pub(crate) const ARROW_NOISE: &str = "C0376152";
    /// Lesion: the label of a circled region (`--annotations`). On no level; not in the ontology.
    pub(crate) const LESION: &str = "C0221198";
}

/// The concepts of the burned-in annotations (`--annotations`), on no level.
pub(crate) static ANNOTATION_CONCEPTS: [(&str, &str, &str, &str); 2] = [(cui::ARROW_NOISE, "Marrow (label of a burned-in arrow)", "", ""), (cui::LESION, "Lesion (label of a circled region)", "", "")];

static CONCEPTS: [(&str, &str, &str, &str); 20] = [
    (cui::CT, "X-Ray Computed Tomography", "modality", ""),
    (cui::MRI, "Magnetic Resonance Imaging", "modality", ""),
    (cui::XRAY, "Plain x-ray", "modality", ""),
    (cui::ULTRASOUND, "Ultrasonography", "modality", ""),
    (cui::CONTRAST, "Contrast Media", "technique", ""),
    (cui::HEAD_AND_NECK, "Head and Neck", "anatomy", ""),
    (cui::HEAD, "Head", "anatomy", cui::HEAD_AND_NECK),
    (cui::BRAIN, "Brain", "anatomy", cui::HEAD),
    (cui::CHEST, "Chest", "anatomy", ""),
    (cui::ABDOMEN, "Abdomen", "anatomy", ""),
    (cui::KNEE, "Knee", "anatomy", ""),
    (cui::AXIAL, "Axial", "plane", ""),
    (cui::CORONAL, "Coronal", "plane", ""),
    (cui::SAGITTAL, "Sagittal", "plane", ""),
    (cui::PA, "postero-anterior", "view", ""),
    (cui::AP, "antero-posterior", "view", ""),
    (cui::LATERAL, "lateral", "view", ""),
    (cui::LEFT, "Left", "laterality", ""),
    (cui::RIGHT, "Right", "laterality", ""),
    (cui::PNEUMONIA, "Pneumonia", "finding", ""),
];

/// The concepts this generator uses: `(cui, name, level, parent cui or "")`, parents listed before
/// children. Levels are `modality`, `technique`, `anatomy`, `plane`, `view`, `laterality`, `finding`.
pub fn concept_table() -> &'static [(&'static str, &'static str, &'static str, &'static str)] {
    &CONCEPTS
}

pub(super) fn parent_of(c: &str) -> Option<&'static str> {
    CONCEPTS.iter().find(|row| row.0 == c).map(|row| row.3).filter(|p| !p.is_empty())
}
