//! The body: per-patient habitus ([`Hab`], from the phantom's subject seed) and the cross-sectional
//! anatomy painters that fill a [`Labels`] map with tissue classes for head, chest, abdomen and knee
//! in axial, coronal and sagittal planes, plus the CT couch and pneumonia's ground-glass patches.
//! (The projection-radiograph anatomy is in `xray.rs`.)
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::geometry::{quad, Labels, Pose, T};
use super::plan::{Anatomy, PhantomSpec, PlaneOrView, Side};

// ---------------------------------------------------------------------------------------------
// Body habitus (per patient)
// ---------------------------------------------------------------------------------------------

pub(super) struct Hab {
    /// Body width factor.
    pub(super) w: f32,
    /// Antero-posterior depth factor.
    pub(super) d: f32,
    /// Subcutaneous fat thickness (normalised units).
    pub(super) fat: f32,
    /// Breast shadows on chest radiographs.
    pub(super) female: bool,
    /// Ventricle size factor.
    pub(super) vent: f32,
    /// Free organ-size jitters in [-1, 1].
    pub(super) j: [f32; 8],
}

pub(super) fn habitus(subject: u64) -> Hab {
    let mut r = ChaCha8Rng::seed_from_u64(subject ^ 0x9E37_79B9_7F4A_7C15);
    let mut j = [0.0f32; 8];
    for x in j.iter_mut() {
        *x = r.gen_range(-1.0..1.0);
    }
    Hab {
        w: r.gen_range(0.88..1.1),
        d: r.gen_range(0.9..1.1),
        fat: r.gen_range(0.015..0.08),
        female: r.gen_bool(0.45),
        vent: r.gen_range(0.75..1.35),
        j,
    }
}

/// A lung as drawn (anatomy frame), for placing pneumonia; `side_x` is its image-x sign.
#[derive(Clone, Copy)]
pub(super) struct Lung {
    pub(super) cx: f32,
    pub(super) cy: f32,
    pub(super) rx: f32,
    pub(super) ry: f32,
    pub(super) side_x: f32,
}

// ---------------------------------------------------------------------------------------------
// Cross-sectional anatomy (label maps). Axial: anterior up, patient right = image left.
// Coronal: superior up, patient right = image left. Sagittal: superior up, anterior = image left.
// ---------------------------------------------------------------------------------------------

fn head_axial<R: Rng + ?Sized>(l: &mut Labels, h: &Hab, z: f32, rng: &mut R) {
    let k = (1.0 - 0.35 * z * z).sqrt();
    let (rx, ry) = (0.55 * k * h.w.sqrt(), 0.70 * k * h.d.sqrt());
    let skull = 0.03 + 0.01 * h.j[0];
    l.ell(0.0, 0.0, rx + skull + 0.035, ry + skull + 0.035, 0.0, T::Muscle);
    l.ell(0.0, 0.0, rx + skull + 0.02, ry + skull + 0.02, 0.0, T::Fat);
    l.ell(0.0, 0.0, rx + skull, ry + skull, 0.0, T::Bone);
    l.ell(0.0, 0.0, rx, ry, 0.0, T::Csf);
    l.ell(0.0, 0.0, rx - 0.015, ry - 0.015, 0.0, T::Gray);
    l.ell(0.0, 0.02, rx - 0.12, ry - 0.13, 0.0, T::White);
    // sulci
    let ns = 18;
    for s in 0..ns {
        let a = std::f32::consts::TAU * (s as f32 + rng.gen_range(-0.3..0.3)) / ns as f32;
        let (c, si) = (a.cos(), a.sin());
        let depth = rng.gen_range(0.78..0.88);
        l.line((rx * c * 0.99, ry * si * 0.99), (rx * c * depth, ry * si * depth), 0.009, T::Csf);
    }
    // interhemispheric fissure, falx
    l.line((0.0, -ry), (0.0, -ry * 0.3), 0.01, T::Csf);
    l.line((0.0, ry * 0.45), (0.0, ry), 0.01, T::Csf);
    // lateral ventricles, largest at mid levels
    let vs = (1.0 - 1.6 * (z - 0.1) * (z - 0.1)).max(0.0) * h.vent;
    if vs > 0.2 {
        l.ell(-0.075, -0.03, 0.045 * vs, 0.24 * vs, 0.18, T::Csf);
        l.ell(0.075, -0.03, 0.045 * vs, 0.24 * vs, -0.18, T::Csf);
        l.ell(-0.085, 0.13 * vs, 0.022 * vs, 0.05 * vs, 0.2, T::Plexus);
        l.ell(0.085, 0.13 * vs, 0.022 * vs, 0.05 * vs, -0.2, T::Plexus);
    }
    // superior sagittal sinus, cortical vessels
    l.ell(0.0, ry - 0.025, 0.03, 0.022, 0.0, T::Vein);
    l.ell(0.0, -ry + 0.025, 0.025, 0.018, 0.0, T::Vein);
    if z < -0.3 {
        // basal cisterns + middle cerebral arteries
        l.ell(0.0, 0.05, 0.09, 0.07, 0.0, T::Csf);
        l.line((-0.3, -0.05), (-0.05, 0.02), 0.012, T::Artery);
        l.line((0.3, -0.05), (0.05, 0.02), 0.012, T::Artery);
    }
    if z < -0.55 {
        // orbits and globes in front of the skull
        for sx in [-1.0f32, 1.0] {
            l.ell(sx * 0.22, -ry - 0.04, 0.13, 0.11, 0.0, T::Fat);
            l.circ(sx * 0.22, -ry - 0.05, 0.085, T::Fluid);
            l.line((sx * 0.2, -ry + 0.03), (sx * 0.1, -ry + 0.2), 0.015, T::Muscle);
        }
        l.ell(0.0, -ry - 0.04, 0.05, 0.09, 0.0, T::Gas);
    }
}

fn head_coronal<R: Rng + ?Sized>(l: &mut Labels, h: &Hab, z: f32, rng: &mut R) {
    let (rx, ry) = (0.55 * h.w.sqrt(), 0.56);
    let cy = -0.25;
    // neck and skull base
    l.line((0.0, 0.3), (0.0, 1.2), 0.3 * h.w, T::Muscle);
    l.line((-0.12 * h.w, 0.5), (-0.12 * h.w, 1.2), 0.05, T::Fat);
    l.line((0.12 * h.w, 0.5), (0.12 * h.w, 1.2), 0.05, T::Fat);
    l.ell(0.0, cy, rx + 0.08, ry + 0.08, 0.0, T::Muscle);
    l.ell(0.0, cy, rx + 0.065, ry + 0.065, 0.0, T::Fat);
    l.ell(0.0, cy, rx + 0.045, ry + 0.045, 0.0, T::Bone);
    l.ell(0.0, cy, rx, ry, 0.0, T::Csf);
    l.ell(0.0, cy, rx - 0.015, ry - 0.015, 0.0, T::Gray);
    l.ell(-0.2, cy + 0.02, 0.2, 0.3, 0.2, T::White);
    l.ell(0.2, cy + 0.02, 0.2, 0.3, -0.2, T::White);
    // skull base (petrous bones) + temporal fossae
    l.tube(&quad((-rx - 0.04, cy + 0.32), (0.0, cy + 0.62), (rx + 0.04, cy + 0.32), 8), 0.04, T::Bone);
    for s in 0..14 {
        let a = std::f32::consts::PI * (1.05 + 0.9 * (s as f32 + rng.gen_range(-0.3..0.3)) / 13.0);
        let (c, si) = (a.cos(), a.sin());
        let depth = rng.gen_range(0.8..0.9);
        l.line((rx * c * 0.99, cy + ry * si * 0.99), (rx * c * depth, cy + ry * si * depth), 0.009, T::Csf);
    }
    l.line((0.0, cy - ry), (0.0, cy - 0.05), 0.011, T::Csf);
    l.ell(0.0, cy - ry + 0.02, 0.03, 0.02, 0.0, T::Vein);
    let vs = h.vent * (1.0 - 0.5 * z.abs());
    l.ell(-0.06, cy + 0.0, 0.04 * vs, 0.11 * vs, 0.35, T::Csf);
    l.ell(0.06, cy + 0.0, 0.04 * vs, 0.11 * vs, -0.35, T::Csf);
    l.ell(0.0, cy + 0.08, 0.01, 0.04, 0.0, T::Csf);
    // brainstem into the cord, vertebrae
    l.line((0.0, cy + 0.25), (0.0, 1.2), 0.065, T::White);
    if z > 0.0 {
        for v in 0..5 {
            let y = 0.45 + v as f32 * 0.16;
            l.bone_ell(-0.14, y, 0.05, 0.06, 0.0, 0.012);
            l.bone_ell(0.14, y, 0.05, 0.06, 0.0, 0.012);
        }
    } else {
        for v in 0..5 {
            l.bone_ell(0.0, 0.45 + v as f32 * 0.16, 0.1, 0.06, 0.0, 0.015);
        }
        l.line((0.0, 0.35), (0.0, 1.2), 0.02, T::Gas);
    }
    l.line((-0.2, 0.4), (-0.2, 1.2), 0.018, T::Artery);
    l.line((0.2, 0.4), (0.2, 1.2), 0.018, T::Artery);
}

fn head_sagittal<R: Rng + ?Sized>(l: &mut Labels, h: &Hab, z: f32, rng: &mut R) {
    let (cx, cy, rx, ry) = (0.08, -0.25, 0.68 * h.d.sqrt(), 0.55);
    // neck, face
    l.tube(&[(0.15, 0.2), (0.2, 1.2)], 0.33, T::Muscle);
    l.ell(-0.42, 0.28, 0.3, 0.36, 0.15, T::Muscle);
    l.ell(-0.7, 0.05, 0.06, 0.12, -0.4, T::Muscle); // nose
    l.ell(-0.55, 0.55, 0.14, 0.1, 0.3, T::Muscle); // chin
    l.ell(cx, cy, rx + 0.08, ry + 0.08, 0.0, T::Muscle);
    l.ell(cx, cy, rx + 0.065, ry + 0.065, 0.0, T::Fat);
    l.ell(cx, cy, rx + 0.045, ry + 0.045, 0.0, T::Bone);
    l.ell(cx, cy, rx, ry, 0.0, T::Csf);
    l.ell(cx, cy, rx - 0.015, ry - 0.015, 0.0, T::Gray);
    if z.abs() < 0.5 {
        // midline: corpus callosum, ventricle, brainstem, cerebellum, cord, C-spine, airway
        l.ell(cx + 0.02, cy + 0.05, rx * 0.7, ry * 0.55, 0.0, T::White);
        l.tube(&quad((cx - 0.28, cy + 0.05), (cx, cy - 0.22), (cx + 0.3, cy + 0.06), 8), 0.04, T::White);
        l.tube(&quad((cx - 0.22, cy + 0.08), (cx, cy - 0.12), (cx + 0.22, cy + 0.08), 6), 0.03 * h.vent, T::Csf);
        l.ell(cx + 0.38, cy + 0.4, 0.2, 0.13, 0.2, T::Gray);
        for s in 0..5 {
            let a = -0.6 + s as f32 * 0.3;
            l.line((cx + 0.38, cy + 0.4), (cx + 0.38 + 0.17 * a.cos(), cy + 0.4 + 0.11 * a.sin()), 0.008, T::White);
        }
        l.tube(&[(cx + 0.05, cy + 0.15), (cx + 0.12, cy + 0.6), (0.25, 1.2)], 0.065, T::White);
        l.ell(cx + 0.23, cy + 0.38, 0.03, 0.02, 0.5, T::Csf);
        for v in 0..5 {
            l.bone_ell(0.08 + v as f32 * 0.01, 0.5 + v as f32 * 0.15, 0.07, 0.055, 0.05, 0.012);
        }
        l.tube(&[(-0.2, 0.35), (-0.08, 0.55), (-0.05, 1.2)], 0.04, T::Gas);
        l.ell(-0.35, 0.3, 0.15, 0.08, 0.2, T::Muscle); // tongue
        l.tube(&quad((cx - rx + 0.05, cy - 0.1), (cx, cy - ry - 0.06), (cx + rx - 0.03, cy + 0.1), 10), 0.018, T::Vein);
    } else {
        // parasagittal: orbit, temporal lobe, no midline structures
        l.ell(cx, cy + 0.02, rx * 0.62, ry * 0.5, 0.0, T::White);
        l.ell(cx - 0.05, cy + 0.02, 0.1, 0.03 * h.vent, 0.2, T::Csf);
        l.ell(-0.5, -0.05, 0.13, 0.1, 0.0, T::Fat);
        l.circ(-0.56, -0.06, 0.08, T::Fluid);
    }
    for s in 0..16 {
        let a = std::f32::consts::TAU * (s as f32 + rng.gen_range(-0.3..0.3)) / 16.0;
        if a.sin() > 0.5 {
            continue;
        }
        let (c, si) = (a.cos(), a.sin());
        let depth = rng.gen_range(0.8..0.9);
        l.line((cx + rx * c * 0.99, cy + ry * si * 0.99), (cx + rx * c * depth, cy + ry * si * depth), 0.009, T::Csf);
    }
}

/// Returns the two lungs (right first).
fn chest_axial<R: Rng + ?Sized>(l: &mut Labels, h: &Hab, z: f32, rng: &mut R) -> Vec<Lung> {
    let (bw, bd) = (0.86 * h.w, 0.58 * h.d);
    l.ell(0.0, 0.0, bw, bd, 0.0, T::Fat);
    l.ell(0.0, 0.0, bw - h.fat, bd - h.fat, 0.0, T::Muscle);
    // scapulae posteriorly
    l.line((-bw * 0.75, bd * 0.55), (-bw * 0.35, bd * 0.75), 0.018, T::Bone);
    l.line((bw * 0.75, bd * 0.55), (bw * 0.35, bd * 0.75), 0.018, T::Bone);
    let lk = 1.0 - 0.25 * z.abs();
    let rl = Lung { cx: -0.37 * h.w, cy: 0.0, rx: 0.29 * h.w * lk, ry: 0.42 * h.d * lk, side_x: -1.0 };
    let ll = Lung { cx: 0.39 * h.w, cy: 0.02, rx: 0.27 * h.w * lk, ry: 0.41 * h.d * lk, side_x: 1.0 };
    // ribs ring
    for s in 0..14 {
        let a = std::f32::consts::TAU * (s as f32 + 0.5) / 14.0;
        let (c, si) = (a.cos(), a.sin());
        if si < -0.8 {
            continue;
        }
        l.bone_ell((bw - h.fat - 0.05) * c, (bd - h.fat - 0.05) * si, 0.03, 0.018, a + 1.57, 0.008);
    }
    for lu in [rl, ll] {
        l.ell(lu.cx, lu.cy, lu.rx, lu.ry, 0.1 * lu.side_x, T::Lung);
    }
    // mediastinum, heart, great vessels
    l.ell(0.02, -0.08, 0.17, 0.34 * h.d, 0.0, T::Fat);
    let heart = 0.5 + 0.5 * z; // bigger low in the chest
    if heart > 0.25 {
        l.ell(0.12, -0.08, 0.27 * heart, 0.21 * heart, -0.5, T::Heart);
        l.ell(0.16, -0.06, 0.2 * heart, 0.15 * heart, -0.5, T::Muscle);
        l.ell(0.12, -0.04, 0.14 * heart, 0.1 * heart, -0.5, T::Heart);
    }
    if z < 0.2 {
        l.circ(0.02, -0.18, 0.065, T::Artery); // ascending aorta
        l.circ(-0.08, -0.12, 0.04, T::Vein); // SVC
        l.ell(0.07, -0.02, 0.1, 0.05, 0.4, T::Artery); // pulmonary artery
        l.circ(0.0, 0.08, 0.035, T::Gas); // trachea
    }
    l.circ(0.1, 0.26, 0.055, T::Artery); // descending aorta
    l.circ(0.02, 0.22, 0.02, T::Gas); // oesophagus
                                      // spine
    l.bone_ell(0.0, 0.38, 0.085, 0.075, 0.0, 0.015);
    l.line((0.0, 0.46), (0.0, 0.56), 0.02, T::Bone);
    l.circ(0.0, 0.46, 0.03, T::Csf);
    l.bone_ell(0.0, -bd + h.fat + 0.04, 0.06, 0.025, 0.0, 0.008); // sternum
                                                                  // pulmonary vessels
    for lu in [rl, ll] {
        for _ in 0..10 {
            let (u, v) = (rng.gen_range(-0.75f32..0.75), rng.gen_range(-0.75f32..0.75));
            let near = 1.0 - (u * u + v * v).sqrt().min(1.0);
            l.ell_over(lu.cx + u * lu.rx, lu.cy + v * lu.ry, 0.006 + 0.018 * near, 0.006 + 0.018 * near, 0.0, T::Artery, T::Lung);
        }
    }
    if z > 0.55 {
        // liver dome under the right lung
        l.ell_over(-0.35, 0.15, 0.3, 0.3 * (z - 0.4), 0.0, T::Liver, T::Lung);
    }
    vec![rl, ll]
}

fn chest_coronal<R: Rng + ?Sized>(l: &mut Labels, h: &Hab, z: f32, rng: &mut R) -> Vec<Lung> {
    let bw = 0.88 * h.w;
    l.ell(0.0, 0.15, bw, 1.25, 0.0, T::Fat);
    l.ell(0.0, 0.15, bw - h.fat, 1.25 - h.fat, 0.0, T::Muscle);
    l.line((0.0, -1.2), (0.0, -0.8), 0.25, T::Muscle);
    // liver and stomach under the diaphragm
    l.ell(-0.28, 0.78, 0.5, 0.32, 0.1, T::Liver);
    l.ell(0.38, 0.72, 0.2, 0.14, 0.0, T::Bowel);
    l.ell(0.38, 0.64, 0.12, 0.05, 0.0, T::Gas);
    l.ell(0.58, 0.78, 0.13, 0.18, 0.0, T::Spleen);
    let rl = Lung { cx: -0.36 * h.w, cy: -0.05, rx: 0.27 * h.w, ry: 0.62, side_x: -1.0 };
    let ll = Lung { cx: 0.38 * h.w, cy: -0.02, rx: 0.25 * h.w, ry: 0.6, side_x: 1.0 };
    for lu in [rl, ll] {
        l.ell(lu.cx, lu.cy, lu.rx, lu.ry, 0.08 * lu.side_x, T::Lung);
    }
    // ribs in cross-section along the lateral walls
    for s in 0..8 {
        let y = -0.55 + s as f32 * 0.15;
        for sx in [-1.0f32, 1.0] {
            l.bone_ell(sx * (bw - h.fat - 0.06), y, 0.018, 0.03, 0.0, 0.008);
        }
    }
    l.line((-0.1, -0.82), (-0.55, -0.9), 0.025, T::Bone); // clavicles
    l.line((0.1, -0.82), (0.55, -0.9), 0.025, T::Bone);
    if z > 0.3 {
        // posterior slice: spine, smaller heart
        l.ell(0.02, -0.05, 0.12, 0.7, 0.0, T::Fat);
        for v in 0..12 {
            let y = -0.95 + v as f32 * 0.16;
            l.bone_ell(0.0, y, 0.09, 0.06, 0.0, 0.012);
            l.ell(0.0, y + 0.08, 0.08, 0.015, 0.0, T::Cartilage);
        }
        l.line((0.11, -0.4), (0.11, 0.6), 0.045, T::Artery);
    } else {
        l.ell(0.02, -0.1, 0.16, 0.6, 0.0, T::Fat);
        l.ell(0.1, 0.36, 0.3, 0.24, 0.2, T::Heart);
        l.ell(0.14, 0.38, 0.2, 0.16, 0.2, T::Muscle);
        l.ell(0.1, 0.37, 0.12, 0.1, 0.2, T::Heart);
        l.tube(&quad((-0.04, 0.1), (0.02, -0.35), (0.14, -0.15), 6), 0.05, T::Artery);
        l.line((0.0, -1.0), (0.0, -0.3), 0.035, T::Gas);
        l.line((0.0, -0.3), (-0.15, -0.15), 0.025, T::Gas);
        l.line((0.0, -0.3), (0.15, -0.15), 0.025, T::Gas);
    }
    for lu in [rl, ll] {
        for _ in 0..10 {
            let (u, v) = (rng.gen_range(-0.75f32..0.75), rng.gen_range(-0.75f32..0.75));
            l.ell_over(lu.cx + u * lu.rx, lu.cy + v * lu.ry, 0.012, 0.012, 0.0, T::Artery, T::Lung);
        }
    }
    vec![rl, ll]
}

fn chest_sagittal<R: Rng + ?Sized>(l: &mut Labels, h: &Hab, z: f32, rng: &mut R) -> Vec<Lung> {
    let bd = 0.62 * h.d;
    l.ell(0.0, 0.15, bd, 1.25, 0.0, T::Fat);
    l.ell(0.0, 0.15, bd - h.fat, 1.25 - h.fat, 0.0, T::Muscle);
    l.ell(-0.08, 0.85, 0.45, 0.28, 0.0, T::Liver);
    let lu = Lung { cx: 0.0, cy: -0.05, rx: 0.44, ry: 0.62, side_x: 0.0 };
    l.ell(lu.cx, lu.cy, lu.rx, lu.ry, 0.0, T::Lung);
    for s in 0..9 {
        let y = -0.6 + s as f32 * 0.14;
        l.bone_ell(0.46, y, 0.025, 0.02, 0.0, 0.008);
        l.bone_ell(-0.45, y + 0.05, 0.02, 0.02, 0.0, 0.008);
    }
    if z.abs() < 0.45 {
        // midline: heart, aorta, spine, sternum, trachea
        l.ell(-0.1, 0.33, 0.3, 0.27, 0.4, T::Heart);
        l.ell(-0.1, 0.35, 0.2, 0.17, 0.4, T::Muscle);
        l.ell(-0.1, 0.34, 0.12, 0.1, 0.4, T::Heart);
        l.tube(&quad((-0.15, 0.0), (0.05, -0.55), (0.3, 0.0), 8), 0.05, T::Artery);
        l.line((0.3, 0.0), (0.3, 0.85), 0.05, T::Artery);
        l.line((0.0, -1.2), (0.05, -0.2), 0.035, T::Gas);
        for v in 0..12 {
            let y = -0.95 + v as f32 * 0.17;
            l.bone_ell(0.47, y, 0.08, 0.065, 0.0, 0.012);
            l.ell(0.47, y + 0.085, 0.07, 0.016, 0.0, T::Cartilage);
            l.line((0.56, y), (0.6, y + 0.05), 0.02, T::Bone);
        }
        l.line((0.57, -1.2), (0.57, 1.2), 0.018, T::Csf);
        l.bone_tube(&[(-0.52, -0.6), (-0.55, 0.3)], 0.03, 0.01);
    }
    for _ in 0..14 {
        let (u, v) = (rng.gen_range(-0.8f32..0.8), rng.gen_range(-0.8f32..0.8));
        l.ell_over(lu.cx + u * lu.rx, lu.cy + v * lu.ry, 0.012, 0.012, 0.0, T::Artery, T::Lung);
    }
    vec![lu]
}

fn abdomen_axial<R: Rng + ?Sized>(l: &mut Labels, h: &Hab, z: f32, rng: &mut R) {
    let (bw, bd) = (0.85 * h.w, 0.6 * h.d);
    l.ell(0.0, 0.0, bw, bd, 0.0, T::Fat);
    l.ell(0.0, 0.0, bw - h.fat, bd - h.fat, 0.0, T::Muscle);
    l.ell(0.0, 0.02, bw - h.fat - 0.05, bd - h.fat - 0.05, 0.0, T::Fat);
    let up = (-z).max(0.0); // 0 at mid, 1 at the top
    let liver = 0.55 + 0.45 * up - 0.4 * z.max(0.0);
    if liver > 0.2 {
        l.ell(-0.32 * h.w, -0.08, 0.42 * liver * h.w, 0.38 * liver, 0.35, T::Liver);
        l.ell(-0.3, 0.0, 0.03, 0.02, 0.0, T::Vein); // portal/hepatic vein branches
        l.ell(-0.42, -0.15, 0.02, 0.02, 0.0, T::Vein);
        if rng.gen_bool(0.5) {
            l.ell_over(-0.2, 0.05, 0.07, 0.045, 0.4, T::Fluid, T::Liver); // gallbladder
        }
    }
    if z < 0.2 {
        l.ell(0.5 * h.w, 0.12, 0.14, 0.22, -0.4, T::Spleen);
        l.ell(0.25, -0.22, 0.2, 0.14, 0.2, T::Bowel); // stomach
        l.ell(0.25, -0.3, 0.12, 0.04, 0.2, T::Gas);
        l.ell(0.05, 0.05, 0.15, 0.04, -0.2, T::Muscle); // pancreas
    }
    // kidneys
    let ks = 1.0 - 0.5 * (z - 0.1).abs();
    for (sx, dy) in [(-1.0f32, 0.02f32), (1.0, -0.01)] {
        l.ell(sx * 0.3 * h.w, 0.28 + dy, 0.11 * ks, 0.15 * ks, sx * 0.45, T::Kidney);
        l.ell(sx * 0.27 * h.w, 0.28 + dy, 0.04 * ks, 0.06 * ks, sx * 0.45, T::Sinus);
    }
    // bowel loops
    let nb = if z > 0.0 { 9 } else { 5 };
    for _ in 0..nb {
        let (x, y) = (rng.gen_range(-0.45f32..0.5), rng.gen_range(-0.4f32..0.05));
        let r = rng.gen_range(0.04..0.08);
        l.circ(x, y, r, T::Bowel);
        if rng.gen_bool(0.45) {
            l.circ(x, y - r * 0.3, r * 0.55, T::Gas);
        }
    }
    // great vessels, spine, psoas
    l.circ(0.06, 0.2, 0.042, T::Artery);
    l.ell(-0.09, 0.18, 0.05, 0.035, 0.0, T::Vein);
    let ps = 0.04 + 0.04 * (z + 1.0) * 0.5;
    l.ell(-0.15, 0.36, ps, ps * 0.9, 0.0, T::Muscle);
    l.ell(0.15, 0.36, ps, ps * 0.9, 0.0, T::Muscle);
    l.ell(-0.15, 0.48, 0.1, 0.06, 0.3, T::Muscle);
    l.ell(0.15, 0.48, 0.1, 0.06, -0.3, T::Muscle);
    l.bone_ell(0.0, 0.36, 0.095, 0.08, 0.0, 0.015);
    l.circ(0.0, 0.46, 0.03, T::Csf);
    l.line((0.0, 0.48), (0.0, 0.56), 0.02, T::Bone);
    l.line((-0.06, 0.46), (-0.16, 0.42), 0.015, T::Bone);
    l.line((0.06, 0.46), (0.16, 0.42), 0.015, T::Bone);
}

fn abdomen_coronal<R: Rng + ?Sized>(l: &mut Labels, h: &Hab, z: f32, rng: &mut R) {
    let bw = 0.86 * h.w;
    l.ell(0.0, 0.05, bw, 1.3, 0.0, T::Fat);
    l.ell(0.0, 0.05, bw - h.fat, 1.3 - h.fat, 0.0, T::Muscle);
    l.ell(0.0, 0.05, bw - h.fat - 0.05, 1.25 - h.fat, 0.0, T::Fat);
    l.ell(-0.35, -1.0, 0.3, 0.25, 0.0, T::Lung);
    l.ell(0.37, -1.0, 0.28, 0.25, 0.0, T::Lung);
    l.ell(-0.33 * h.w, -0.5, 0.45 * h.w, 0.35, 0.15, T::Liver);
    l.ell(0.52 * h.w, -0.5, 0.15, 0.25, -0.2, T::Spleen);
    l.ell(0.28, -0.62, 0.2, 0.14, 0.0, T::Bowel);
    l.ell(0.28, -0.7, 0.12, 0.05, 0.0, T::Gas);
    for _ in 0..10 {
        let (x, y) = (rng.gen_range(-0.5f32..0.5), rng.gen_range(-0.1f32..0.7));
        let r = rng.gen_range(0.05..0.09);
        l.circ(x, y, r, T::Bowel);
        if rng.gen_bool(0.4) {
            l.circ(x, y - r * 0.3, r * 0.55, T::Gas);
        }
    }
    l.ell(0.0, 0.92, 0.18, 0.12, 0.0, T::Fluid);
    // pelvis
    for sx in [-1.0f32, 1.0] {
        l.tube(&quad((sx * 0.12, 0.55), (sx * 0.55, 0.3), (sx * 0.62, 0.7), 8), 0.035, T::Bone);
    }
    if z > 0.0 {
        // posterior slice: kidneys, spine, psoas
        for sx in [-1.0f32, 1.0] {
            let y = -0.1 + if sx < 0.0 { 0.06 } else { 0.0 };
            l.ell(sx * 0.3 * h.w, y, 0.12, 0.22, sx * -0.2, T::Kidney);
            l.ell(sx * 0.26 * h.w, y, 0.04, 0.1, sx * -0.2, T::Sinus);
            l.line((sx * 0.08, -0.1), (sx * 0.3, 0.75), 0.07, T::Muscle);
        }
        for v in 0..9 {
            let y = -0.9 + v as f32 * 0.19;
            l.bone_ell(0.0, y, 0.1, 0.075, 0.0, 0.015);
            l.ell(0.0, y + 0.095, 0.09, 0.015, 0.0, T::Cartilage);
        }
    } else {
        l.line((0.05, -0.6), (0.05, 0.45), 0.04, T::Artery);
        l.line((-0.08, -0.6), (-0.08, 0.45), 0.045, T::Vein);
        l.line((0.05, 0.45), (-0.2, 0.9), 0.025, T::Artery);
        l.line((0.05, 0.45), (0.3, 0.9), 0.025, T::Artery);
    }
}

fn abdomen_sagittal<R: Rng + ?Sized>(l: &mut Labels, h: &Hab, z: f32, rng: &mut R) {
    let bd = 0.6 * h.d;
    l.ell(0.0, 0.05, bd, 1.3, 0.0, T::Fat);
    l.ell(0.0, 0.05, bd - h.fat, 1.3 - h.fat, 0.0, T::Muscle);
    l.ell(0.0, 0.05, bd - h.fat - 0.04, 1.25 - h.fat, 0.0, T::Fat);
    l.ell(0.0, -1.0, 0.45, 0.25, 0.0, T::Lung);
    l.ell(-0.05, -0.55, 0.45, 0.3, 0.1, T::Liver);
    for _ in 0..8 {
        let (x, y) = (rng.gen_range(-0.45f32..0.1), rng.gen_range(-0.15f32..0.7));
        let r = rng.gen_range(0.05..0.09);
        l.circ(x, y, r, T::Bowel);
        if rng.gen_bool(0.4) {
            l.circ(x, y - r * 0.3, r * 0.55, T::Gas);
        }
    }
    l.ell(-0.2, 0.92, 0.15, 0.12, 0.0, T::Fluid);
    if z.abs() < 0.45 {
        for v in 0..9 {
            let y = -0.9 + v as f32 * 0.19;
            l.bone_ell(0.38, y, 0.085, 0.075, 0.0, 0.015);
            l.ell(0.38, y + 0.095, 0.08, 0.015, 0.0, T::Cartilage);
            l.line((0.48, y), (0.55, y + 0.04), 0.022, T::Bone);
        }
        l.line((0.49, -1.2), (0.49, 1.2), 0.016, T::Csf);
        l.line((0.24, -0.9), (0.24, 0.6), 0.04, T::Artery);
        l.line((0.2, -0.35), (0.0, 0.1), 0.015, T::Artery); // SMA
    } else {
        l.ell(0.3, -0.05, 0.13, 0.22, 0.2, T::Kidney);
        l.ell(0.28, -0.05, 0.05, 0.1, 0.2, T::Sinus);
        l.line((0.35, -0.4), (0.35, 0.7), 0.08, T::Muscle);
    }
}

/// Knee sections; `lat` = image-x sign of the lateral side (fibula).
fn knee_axial<R: Rng + ?Sized>(l: &mut Labels, h: &Hab, z: f32, lat: f32, rng: &mut R) {
    l.ell(0.0, 0.02, 0.48 * h.w, 0.44, 0.0, T::Fat);
    l.ell(-0.17, 0.24, 0.15, 0.14, 0.0, T::Muscle);
    l.ell(0.17, 0.24, 0.15, 0.14, 0.0, T::Muscle);
    l.ell(lat * 0.32, 0.05, 0.1, 0.12, 0.0, T::Muscle);
    if z < 0.0 {
        // femoral condyles + patella
        l.ell(0.0, -0.02, 0.33, 0.24, 0.0, T::Cartilage);
        l.bone_ell(-0.14, 0.05, 0.15, 0.16, 0.0, 0.02);
        l.bone_ell(0.14, 0.05, 0.15, 0.16, 0.0, 0.02);
        l.bone_ell(0.0, -0.06, 0.27, 0.14, 0.0, 0.02);
        l.ell(0.0, 0.17, 0.05, 0.06, 0.0, T::Fat); // notch
        l.ell(0.0, -0.3, 0.15, 0.07, rng.gen_range(-0.1..0.1), T::Cartilage);
        l.bone_ell(0.0, -0.31, 0.13, 0.06, 0.0, 0.015);
        l.ell(lat * 0.22, -0.18, 0.06, 0.02, 0.0, T::Ligament);
    } else {
        // tibial plateau + fibular head
        l.bone_ell(0.0, 0.0, 0.3, 0.2, 0.0, 0.02);
        l.bone_ell(lat * 0.25, 0.2, 0.06, 0.055, 0.0, 0.015);
        l.ell(0.0, -0.28, 0.07, 0.04, 0.0, T::Ligament);
    }
    l.circ(0.02, 0.3, 0.025, T::Artery);
    l.circ(-0.04, 0.31, 0.028, T::Vein);
}

fn knee_coronal<R: Rng + ?Sized>(l: &mut Labels, h: &Hab, z: f32, lat: f32, rng: &mut R) {
    let sw = h.w;
    l.line((0.0, -1.3), (0.0, -0.05), 0.44 * sw, T::Fat);
    l.line((0.0, -0.05), (0.0, 1.3), 0.36 * sw, T::Fat);
    l.line((0.0, -1.3), (0.0, -0.3), 0.38 * sw, T::Muscle);
    l.line((0.0, 0.35), (0.0, 1.3), 0.3 * sw, T::Muscle);
    // cartilage caps
    l.ell(0.0, -0.05, 0.3, 0.12, 0.0, T::Cartilage);
    l.ell(0.0, 0.1, 0.29, 0.07, 0.0, T::Cartilage);
    // femur
    l.bone_tube(&[(0.0, -1.3), (0.0, -0.35)], 0.11, 0.03);
    l.bone_ell(0.0, -0.28, 0.22, 0.14, 0.0, 0.02);
    l.bone_ell(-0.14, -0.12, 0.13, 0.11, 0.0, 0.02);
    l.bone_ell(0.14, -0.12, 0.13, 0.11, 0.0, 0.02);
    l.ell(0.0, -0.06, 0.04, 0.06, 0.0, T::Fat);
    // tibia
    l.bone_ell(0.0, 0.14, 0.28, 0.08, 0.0, 0.02);
    l.bone_tube(&[(0.0, 0.14), (0.0, 1.3)], 0.11, 0.03);
    l.line((-0.06, 0.06), (0.06, 0.06), 0.012, T::Bone);
    // menisci + cruciates
    l.ell(-0.24, 0.02, 0.06, 0.022, 0.0, T::Ligament);
    l.ell(0.24, 0.02, 0.06, 0.022, 0.0, T::Ligament);
    l.line((-0.02, -0.1), (0.03, 0.05), 0.015, T::Ligament);
    // fibula on the lateral side (present in posterior slices)
    if z > -0.3 {
        l.bone_ell(lat * 0.27, 0.25, 0.06, 0.055, 0.0, 0.015);
        l.bone_tube(&[(lat * 0.27, 0.25), (lat * 0.29, 1.3)], 0.04, 0.012);
    }
    l.line((lat * 0.34, -0.2), (lat * 0.34, 0.25), 0.012, T::Ligament);
    l.line((-lat * 0.32, -0.2), (-lat * 0.31, 0.3), 0.012, T::Ligament);
    let _ = rng;
}

fn knee_sagittal<R: Rng + ?Sized>(l: &mut Labels, h: &Hab, z: f32, rng: &mut R) {
    let sw = h.d;
    l.tube(&[(0.05, -1.3), (0.0, -0.05)], 0.44 * sw, T::Fat);
    l.tube(&[(0.0, -0.05), (0.05, 1.3)], 0.36 * sw, T::Fat);
    l.tube(&[(0.08, -1.3), (0.05, -0.35)], 0.36 * sw, T::Muscle);
    l.ell(0.25, 0.45, 0.14, 0.4, 0.1, T::Muscle);
    l.ell(0.05, -0.12, 0.24, 0.19, 0.0, T::Cartilage);
    // femur + condyle
    l.bone_tube(&[(0.06, -1.3), (0.04, -0.3)], 0.12, 0.03);
    l.bone_ell(0.07, -0.12, 0.21, 0.17, 0.0, 0.02);
    // tibia
    l.ell(0.02, 0.13, 0.24, 0.09, 0.0, T::Cartilage);
    l.bone_ell(0.02, 0.15, 0.23, 0.08, -0.05, 0.02);
    l.bone_tube(&[(0.02, 0.15), (0.05, 1.3)], 0.12, 0.03);
    l.ell(-0.12, 0.32, 0.05, 0.06, 0.0, T::Bone); // tuberosity
                                                  // patella and extensor mechanism
    let pt = rng.gen_range(-0.15..0.15);
    l.ell(-0.32, -0.2, 0.07, 0.15, 0.25 + pt, T::Cartilage);
    l.bone_ell(-0.34, -0.2, 0.055, 0.135, 0.25 + pt, 0.015);
    l.line((-0.3, -0.33), (-0.18, -0.8), 0.025, T::Ligament);
    l.line((-0.28, -0.04), (-0.13, 0.3), 0.022, T::Ligament);
    l.ell(-0.19, 0.06, 0.1, 0.1, 0.0, T::Fat); // Hoffa's fat pad
    if z.abs() < 0.4 {
        l.line((0.02, -0.05), (0.14, 0.12), 0.015, T::Ligament);
        l.line((0.12, -0.1), (-0.04, 0.1), 0.015, T::Ligament);
    }
    l.ell(-0.15, 0.05, 0.07, 0.02, -0.2, T::Ligament);
    l.ell(0.2, 0.05, 0.08, 0.025, 0.2, T::Ligament);
    l.line((0.32, -1.0), (0.3, 0.9), 0.022, T::Artery);
}

/// CT couch under an axial slice / beside a sagittal one, drawn unposed.
pub(super) fn draw_table(l: &mut Labels, plane: PlaneOrView, bottom: f32) {
    let saved = l.pose;
    l.pose = Pose::identity();
    match plane {
        PlaneOrView::Axial => {
            let y = (saved.ty + saved.s * bottom + 0.06).min(0.97);
            l.tube(&quad((-1.1, y), (0.0, y + 0.08), (1.1, y), 10), 0.008, T::Table);
            l.tube(&quad((-1.1, y + 0.06), (0.0, y + 0.13), (1.1, y + 0.06), 10), 0.006, T::Table);
        }
        PlaneOrView::Sagittal => {
            let x = (saved.tx + saved.s * bottom + 0.06).min(0.97);
            l.line((x, -1.1), (x, 1.1), 0.008, T::Table);
        }
        _ => {}
    }
    l.pose = saved;
}

/// Draw the cross-section of `spec` into `l`; returns the lungs drawn (for pneumonia).
pub(super) fn draw_section<R: Rng + ?Sized>(l: &mut Labels, spec: &PhantomSpec, plane: PlaneOrView, h: &Hab, rng: &mut R) -> Vec<Lung> {
    let z: f32 = rng.gen_range(-1.0..1.0);
    let lat = spec.laterality.map_or(1.0, Side::image_sign);
    use PlaneOrView::*;
    match (spec.anatomy, plane) {
        (Anatomy::Head, Coronal) => head_coronal(l, h, z, rng),
        (Anatomy::Head, Sagittal) => head_sagittal(l, h, z, rng),
        (Anatomy::Head, _) => head_axial(l, h, z, rng),
        (Anatomy::Chest, Coronal) => return chest_coronal(l, h, z, rng),
        (Anatomy::Chest, Sagittal) => return chest_sagittal(l, h, z, rng),
        (Anatomy::Chest, _) => return chest_axial(l, h, z, rng),
        (Anatomy::Abdomen, Coronal) => abdomen_coronal(l, h, z, rng),
        (Anatomy::Abdomen, Sagittal) => abdomen_sagittal(l, h, z, rng),
        (Anatomy::Abdomen, _) => abdomen_axial(l, h, z, rng),
        (Anatomy::Knee, Coronal) => knee_coronal(l, h, z, lat, rng),
        (Anatomy::Knee, Sagittal) => knee_sagittal(l, h, z, rng),
        (Anatomy::Knee, _) => knee_axial(l, h, z, lat, rng),
    }
    Vec::new()
}

/// Body's posterior extent (anatomy frame) for the CT couch.
pub(super) fn posterior_extent(anatomy: Anatomy, plane: PlaneOrView, h: &Hab) -> f32 {
    match (anatomy, plane) {
        (Anatomy::Head, PlaneOrView::Sagittal) => 0.85,
        (Anatomy::Head, _) => 0.8,
        (Anatomy::Chest, PlaneOrView::Sagittal) | (Anatomy::Abdomen, PlaneOrView::Sagittal) => 0.62 * h.d,
        (Anatomy::Knee, PlaneOrView::Sagittal) => 0.45,
        (Anatomy::Knee, _) => 0.46,
        _ => 0.6 * h.d,
    }
}

/// Pneumonia in CT: ground-glass / consolidation patches over lung tissue on one side.
pub(super) fn draw_ggo<R: Rng + ?Sized>(l: &mut Labels, lungs: &[Lung], side: Side, rng: &mut R) {
    let sx = side.image_sign();
    let lu = lungs.iter().find(|lu| lu.side_x == sx).or_else(|| lungs.first()).copied();
    let Some(lu) = lu else { return };
    let (u0, v0) = (rng.gen_range(-0.5f32..0.5), rng.gen_range(-0.1f32..0.6));
    let k = rng.gen_range(3..7);
    for _ in 0..k {
        let (u, v) = (u0 + rng.gen_range(-0.3..0.3), v0 + rng.gen_range(-0.3..0.3));
        let r = rng.gen_range(0.04..0.11);
        l.ell_over(lu.cx + u * lu.rx, lu.cy + v * lu.ry, r, r * rng.gen_range(0.6..1.3), rng.gen_range(0.0..3.0), T::Ggo, T::Lung);
    }
}
