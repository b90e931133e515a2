//! Rendering: [`render`] turns a phantom spec into pixels. CT and MRI map a label map through
//! per-modality tissue tables (CT: Hounsfield units through a window; MRI: T1/T2/FLAIR with a bias
//! field and Rician noise); ultrasound maps echogenicity in a fan with speckle, attenuation and
//! shadowing; plain x-rays are delegated to `xray.rs`. Burned-in overlays come from `overlays.rs`.
use image::GrayImage;
use rand::Rng;

use super::anatomy::{draw_ggo, draw_section, draw_table, habitus, posterior_extent, Hab};
use super::geometry::{px_center, quad, Labels, Pose, N_TISSUE, T};
use super::overlays::overlay_annotations;
use super::plan::{pick, Anatomy, Finding, Modality, PhantomSpec, PlaneOrView};
use super::texture::{blur, noise_field, texture};
use super::xray::render_xray;

// ---------------------------------------------------------------------------------------------
// Modality intensity tables
// ---------------------------------------------------------------------------------------------

fn ct_table(contrast: bool) -> [f32; N_TISSUE] {
    let mut t = [0.0f32; N_TISSUE];
    let c = contrast;
    t[T::Air as usize] = -1000.0;
    t[T::Fat as usize] = -100.0;
    t[T::Muscle as usize] = 50.0;
    t[T::Bone as usize] = 1100.0;
    t[T::Marrow as usize] = 280.0;
    t[T::Lung as usize] = -860.0;
    t[T::Csf as usize] = 8.0;
    t[T::Gray as usize] = 40.0;
    t[T::White as usize] = 27.0;
    t[T::Liver as usize] = if c { 120.0 } else { 58.0 };
    t[T::Kidney as usize] = if c { 190.0 } else { 32.0 };
    t[T::Spleen as usize] = if c { 125.0 } else { 48.0 };
    t[T::Artery as usize] = if c { 300.0 } else { 42.0 };
    t[T::Vein as usize] = if c { 180.0 } else { 40.0 };
    t[T::Heart as usize] = if c { 260.0 } else { 40.0 };
    t[T::Fluid as usize] = 5.0;
    t[T::Gas as usize] = -960.0;
    t[T::Cartilage as usize] = 90.0;
    t[T::Ligament as usize] = 75.0;
    t[T::Table as usize] = 250.0;
    t[T::Ggo as usize] = -400.0;
    t[T::Bowel as usize] = if c { 90.0 } else { 30.0 };
    t[T::Sinus as usize] = -60.0;
    t[T::Plexus as usize] = if c { 110.0 } else { 38.0 };
    t
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Weighting {
    T1,
    T2,
    Flair,
}

fn mri_table(w: Weighting, contrast: bool) -> [f32; N_TISSUE] {
    let mut t = [0.0f32; N_TISSUE];
    // (T1, T2) signal, 0..1
    let v = |a: f32, b: f32| match w {
        Weighting::T1 => a,
        _ => b,
    };
    t[T::Air as usize] = 0.0;
    t[T::Fat as usize] = v(0.9, 0.75);
    t[T::Muscle as usize] = v(0.35, 0.22);
    t[T::Bone as usize] = 0.04;
    t[T::Marrow as usize] = v(0.8, 0.55);
    t[T::Lung as usize] = 0.03;
    t[T::Csf as usize] = match w {
        Weighting::T1 => 0.1,
        Weighting::T2 => 0.95,
        Weighting::Flair => 0.08,
    };
    t[T::Gray as usize] = v(0.48, 0.55);
    t[T::White as usize] = v(0.66, 0.38);
    t[T::Liver as usize] = v(0.5, 0.28);
    t[T::Kidney as usize] = v(0.38, 0.62);
    t[T::Spleen as usize] = v(0.38, 0.58);
    t[T::Artery as usize] = 0.04; // flow void
    t[T::Vein as usize] = 0.08;
    t[T::Heart as usize] = 0.08;
    t[T::Fluid as usize] = v(0.1, 0.95);
    t[T::Gas as usize] = 0.01;
    t[T::Cartilage as usize] = v(0.45, 0.5);
    t[T::Ligament as usize] = 0.05;
    t[T::Table as usize] = 0.0;
    t[T::Ggo as usize] = 0.2;
    t[T::Bowel as usize] = v(0.35, 0.45);
    t[T::Sinus as usize] = v(0.8, 0.6);
    t[T::Plexus as usize] = v(0.4, 0.6);
    if contrast {
        t[T::Artery as usize] = 0.9;
        t[T::Vein as usize] = 0.85;
        t[T::Heart as usize] = 0.8;
        t[T::Kidney as usize] = 0.8;
        t[T::Liver as usize] += 0.15;
        t[T::Spleen as usize] += 0.25;
        t[T::Plexus as usize] = 0.85;
        t[T::Bowel as usize] += 0.2;
    }
    t
}

fn us_table() -> [f32; N_TISSUE] {
    let mut t = [0.3f32; N_TISSUE];
    t[T::Air as usize] = 0.0;
    t[T::Fat as usize] = 0.6;
    t[T::Muscle as usize] = 0.28;
    t[T::Bone as usize] = 1.0;
    t[T::Marrow as usize] = 1.0;
    t[T::Liver as usize] = 0.45;
    t[T::Kidney as usize] = 0.25;
    t[T::Spleen as usize] = 0.45;
    t[T::Artery as usize] = 0.02;
    t[T::Vein as usize] = 0.03;
    t[T::Fluid as usize] = 0.02;
    t[T::Gas as usize] = 0.95;
    t[T::Bowel as usize] = 0.5;
    t[T::Sinus as usize] = 0.85;
    t
}

/// Per-image jitter of the tissue table: `add` absolute, `mul` relative (uniform in ±).
fn jitter_table<R: Rng + ?Sized>(t: &mut [f32; N_TISSUE], add: f32, mul: f32, rng: &mut R) {
    for x in t.iter_mut() {
        *x = *x * (1.0 + rng.gen_range(-mul..=mul)) + rng.gen_range(-add..=add);
    }
}

// ---------------------------------------------------------------------------------------------
// Renderers
// ---------------------------------------------------------------------------------------------

/// Render one phantom as an 8-bit grayscale image of `size`×`size` pixels (sizes below 8 are
/// raised to 8). Deterministic in (`spec`, `size`, `rng` state); never panics.
pub fn render<R: Rng + ?Sized>(spec: &PhantomSpec, size: u32, rng: &mut R) -> GrayImage {
    let n = size.clamp(8, 8192) as usize;
    let h = habitus(spec.subject);
    let mut v = match spec.modality {
        Modality::Ct | Modality::Mri => render_section(spec, n, &h, rng),
        Modality::XRay => render_xray(spec, n, &h, rng),
        Modality::Ultrasound => render_us(spec, n, &h, rng),
    };
    overlay_annotations(spec, &mut v, n, rng);
    let gamma: f32 = rng.gen_range(0.85..1.15);
    let raw: Vec<u8> = v.iter().map(|&x| (x.clamp(0.0, 1.0).powf(gamma) * 255.0).round() as u8).collect();
    GrayImage::from_raw(n as u32, n as u32, raw).unwrap_or_else(|| GrayImage::new(n as u32, n as u32))
}

fn section_pose<R: Rng + ?Sized>(modality: Modality, anatomy: Anatomy, plane: PlaneOrView, rng: &mut R) -> Pose {
    let (s0, s1) = match (anatomy, plane) {
        (Anatomy::Knee, PlaneOrView::Axial) if modality == Modality::Mri => (1.3, 1.8),
        (Anatomy::Knee, PlaneOrView::Axial) => (0.8, 1.4),
        (Anatomy::Knee, _) => (0.8, 1.2),
        (Anatomy::Head, _) => (0.85, 1.12),
        _ => (0.88, 1.08),
    };
    Pose::new(rng.gen_range(s0..s1), rng.gen_range(-0.14..0.14), rng.gen_range(-0.08..0.08), rng.gen_range(-0.08..0.08))
}

fn render_section<R: Rng + ?Sized>(spec: &PhantomSpec, n: usize, h: &Hab, rng: &mut R) -> Vec<f32> {
    let plane = match spec.plane_or_view {
        Some(p) if !p.is_projection() => p,
        _ => PlaneOrView::Axial,
    };
    let mut pose = section_pose(spec.modality, spec.anatomy, plane, rng);
    // a quarter of axial slices are zoomed reconstructions: the body runs off the frame, no FOV circle
    let zoomed = plane == PlaneOrView::Axial && rng.gen_bool(0.25);
    if zoomed {
        pose.s *= rng.gen_range(1.3..1.6);
    }
    let mut l = Labels::new(n, pose);
    let lungs = draw_section(&mut l, spec, plane, h, rng);
    if let Some(Finding::Pneumonia { side }) = spec.finding {
        draw_ggo(&mut l, &lungs, side, rng);
    }
    let scale = n as f32 / 128.0;
    if spec.modality == Modality::Ct {
        draw_table(&mut l, plane, posterior_extent(spec.anatomy, plane, h));
        let mut tab = ct_table(spec.contrast);
        jitter_table(&mut tab, 8.0, 0.03, rng);
        // pneumonia: ground glass (lung window only) or consolidation (visible in any window)
        tab[T::Ggo as usize] = if rng.gen_bool(0.4) { rng.gen_range(-100.0..30.0) } else { rng.gen_range(-700.0..-150.0) };
        let tex = texture(rng, n, 2.0 * scale);
        let ta = rng.gen_range(3.0..9.0f32);
        let mut hu: Vec<f32> = l.t.iter().zip(&tex).map(|(&t, x)| tab[t as usize] + ta * x).collect();
        blur(&mut hu, n, 0.55 * scale, 0.55 * scale);
        let mut noise = noise_field(rng, n);
        blur(&mut noise, n, 0.5 * scale, 0.5 * scale);
        let sd = (noise.iter().map(|x| x * x).sum::<f32>() / noise.len().max(1) as f32).sqrt().max(1e-6);
        // window: (level, width)
        let (lv, wd) = match spec.anatomy {
            Anatomy::Head => pick(rng, &[((40.0, 90.0), 70), ((45.0, 380.0), 20), ((500.0, 2200.0), 10)]),
            Anatomy::Chest => pick(rng, &[((45.0, 420.0), 55), ((-600.0, 1500.0), 45)]),
            Anatomy::Abdomen => pick(rng, &[((50.0, 400.0), 90), ((400.0, 1800.0), 10)]),
            Anatomy::Knee => pick(rng, &[((400.0, 1800.0), 50), ((50.0, 450.0), 50)]),
        };
        let lv: f32 = lv + rng.gen_range(-15.0..15.0);
        let wd: f32 = wd * rng.gen_range(0.85..1.15);
        let lo = lv - wd / 2.0;
        // noise as a fraction of the displayed window (readers choose windows where it is tolerable)
        let sigma = wd * rng.gen_range(0.02..0.05) / sd;
        let fov = if zoomed { 2.0 } else { rng.gen_range(0.9..1.08f32) };
        let pad = if rng.gen_bool(0.3) { rng.gen_range(0.15..0.4) } else { 0.0 };
        let mut out = vec![0.0f32; n * n];
        for j in 0..n {
            let y = px_center(j, n);
            for i in 0..n {
                let x = px_center(i, n);
                let k = j * n + i;
                out[k] = if x * x + y * y > fov * fov { pad } else { ((hu[k] + sigma * noise[k] - lo) / wd).clamp(0.0, 1.0) };
            }
        }
        out
    } else {
        let w = if spec.contrast {
            Weighting::T1
        } else if spec.anatomy == Anatomy::Head {
            pick(rng, &[(Weighting::T1, 35), (Weighting::T2, 45), (Weighting::Flair, 20)])
        } else {
            pick(rng, &[(Weighting::T1, 45), (Weighting::T2, 55)])
        };
        let mut tab = mri_table(w, spec.contrast);
        jitter_table(&mut tab, 0.03, 0.08, rng);
        let tex = texture(rng, n, 2.0 * scale);
        let ta = rng.gen_range(0.03..0.08f32);
        let mut v: Vec<f32> = l.t.iter().zip(&tex).map(|(&t, x)| tab[t as usize].max(0.0) * (1.0 + ta * x)).collect();
        let sm = rng.gen_range(0.8..1.3) * scale;
        blur(&mut v, n, sm, sm);
        let (a, b, c) = (rng.gen_range(-0.25..0.25f32), rng.gen_range(-0.25..0.25f32), rng.gen_range(-0.25..0.1f32));
        let gain = rng.gen_range(0.8..1.05f32);
        let sigma = rng.gen_range(0.006..0.02f32);
        let n1 = noise_field(rng, n);
        let n2 = noise_field(rng, n);
        let mut out = vec![0.0f32; n * n];
        for j in 0..n {
            let y = px_center(j, n);
            for i in 0..n {
                let x = px_center(i, n);
                let k = j * n + i;
                let bias = (1.0 + a * x + b * y + c * (x * x + y * y)).max(0.2);
                let s = v[k] * bias * gain;
                out[k] = ((s + sigma * n1[k]).powi(2) + (sigma * n2[k]).powi(2)).sqrt();
            }
        }
        out
    }
}

/// Abdominal ultrasound: liver/kidney, gallbladder or aorta view in a curvilinear fan.
fn render_us<R: Rng + ?Sized>(spec: &PhantomSpec, n: usize, h: &Hab, rng: &mut R) -> Vec<f32> {
    let _ = spec;
    let pose = Pose::new(rng.gen_range(0.9..1.1), rng.gen_range(-0.25..0.25), rng.gen_range(-0.1..0.1), rng.gen_range(-0.05..0.1));
    let mut l = Labels::new(n, pose);
    // abdominal wall (skin at the top of the fan), then the scene
    let view = rng.gen_range(0..3);
    l.ell(0.0, 0.6, 3.0, 2.0, 0.0, if view == 2 { T::Bowel } else { T::Liver });
    l.ell(0.0, -1.7, 3.0, 0.85 + h.fat, 0.0, T::Muscle);
    l.ell(0.0, -1.7, 3.0, 0.78 + h.fat, 0.0, T::Fat);
    match view {
        0 => {
            l.ell(0.2, 0.4, 0.42, 0.22, 0.35, T::Fat);
            l.ell(0.2, 0.4, 0.38, 0.19, 0.35, T::Kidney);
            l.ell(0.22, 0.4, 0.22, 0.07, 0.35, T::Sinus);
            l.ell(0.0, 0.95, 2.0, 0.2, 0.2, T::Muscle);
            l.tube(&quad((-0.8, -0.3), (-0.3, -0.35), (0.1, -0.1), 6), 0.03, T::Vein);
        }
        1 => {
            l.ell(-0.05, 0.05, 0.32, 0.14, rng.gen_range(-0.5..0.5), T::Fluid);
            l.tube(&quad((-0.7, 0.45), (0.0, 0.35), (0.7, 0.55), 6), 0.06, T::Vein);
            l.tube(&[(-0.4, -0.4), (0.3, -0.3)], 0.025, T::Vein);
        }
        _ => {
            for _ in 0..4 {
                l.circ(rng.gen_range(-0.6..0.6), rng.gen_range(-0.5..-0.1), rng.gen_range(0.06..0.12), T::Gas);
            }
            l.circ(0.1, 0.3, 0.13, T::Artery);
            l.ell(-0.3, 0.33, 0.15, 0.08, 0.0, T::Vein);
            l.tube(&quad((-0.35, 0.75), (0.0, 0.55), (0.35, 0.75), 6), 0.05, T::Bone);
            l.ell(0.0, 0.95, 0.3, 0.15, 0.0, T::Bone);
        }
    }
    for _ in 0..4 {
        let (x, y) = (rng.gen_range(-0.7..0.7), rng.gen_range(-0.3..0.8));
        l.ell_over(x, y, 0.03, 0.02, 0.0, T::Vein, T::Liver);
    }
    let mut tab = us_table();
    jitter_table(&mut tab, 0.03, 0.12, rng);
    let mut e: Vec<f32> = l.t.iter().map(|&t| tab[t as usize].max(0.0)).collect();
    let scale = n as f32 / 128.0;
    blur(&mut e, n, 0.6 * scale, 0.6 * scale);
    // bright specular interfaces
    let mut g = vec![0.0f32; n * n];
    for j in 1..n.saturating_sub(1) {
        for i in 1..n - 1 {
            let k = j * n + i;
            g[k] = ((e[k + 1] - e[k - 1]).abs() + (e[k + n] - e[k - n]).abs()) * 1.2;
        }
    }
    // speckle: magnitude of two correlated Gaussian fields (Rayleigh), laterally elongated
    let mut s1 = noise_field(rng, n);
    let mut s2 = noise_field(rng, n);
    blur(&mut s1, n, 1.1 * scale, 0.5 * scale);
    blur(&mut s2, n, 1.1 * scale, 0.5 * scale);
    let mut sp: Vec<f32> = s1.iter().zip(&s2).map(|(a, b)| (a * a + b * b).sqrt()).collect();
    let mean = sp.iter().sum::<f32>() / sp.len().max(1) as f32;
    sp.iter_mut().for_each(|x| *x /= mean.max(1e-6));
    // fan geometry: apex above the image
    let (ax, ay) = (rng.gen_range(-0.05..0.05f32), rng.gen_range(-1.45..-1.25f32));
    let half = rng.gen_range(0.45..0.65f32);
    let r0 = -0.92 - ay;
    let r1 = r0 + rng.gen_range(1.65..1.85f32);
    let beta = rng.gen_range(0.3..0.8f32);
    let gain = rng.gen_range(0.8..1.1f32);
    let mut att = [0.0f32; N_TISSUE];
    att[T::Bone as usize] = 9.0;
    att[T::Marrow as usize] = 9.0;
    att[T::Gas as usize] = 7.0;
    att[T::Fluid as usize] = -0.9;
    att[T::Artery as usize] = -0.6;
    att[T::Vein as usize] = -0.6;
    let mut out = vec![0.0f32; n * n];
    for j in 0..n {
        let y = px_center(j, n);
        for i in 0..n {
            let x = px_center(i, n);
            let (dx, dy) = (x - ax, y - ay);
            let r = (dx * dx + dy * dy).sqrt();
            let phi = dx.atan2(dy);
            if r < r0 || r > r1 || phi.abs() > half {
                continue;
            }
            // march the ray for shadowing / enhancement
            let (ux, uy) = (dx / r, dy / r);
            let steps = 12;
            let dr = (r - r0) / steps as f32;
            let mut a = 0.0;
            for s in 0..steps {
                let rr = r0 + (s as f32 + 0.5) * dr;
                a += att[l.get(ax + ux * rr, ay + uy * rr) as usize] * dr;
            }
            let k = j * n + i;
            let shade = (-a).exp().min(2.0) * (-beta * (r - r0)).exp();
            out[k] = ((e[k] + g[k]) * sp[k] * shade * gain * 0.9).clamp(0.0, 1.0);
        }
    }
    // depth ruler dots along the right edge of the fan
    let scale_px = (n / 128).max(1);
    let mut d = r0 + 0.2;
    while d < r1 {
        let a = half + 0.05;
        let (x, y) = (ax + d * a.sin(), ay + d * a.cos());
        put_dot(&mut out, n, x, y, scale_px, 0.85);
        d += 0.25;
    }
    out
}

fn put_dot(v: &mut [f32], n: usize, x: f32, y: f32, size: usize, val: f32) {
    let i = ((x + 1.0) * 0.5 * n as f32) as isize;
    let j = ((y + 1.0) * 0.5 * n as f32) as isize;
    for dj in 0..size as isize {
        for di in 0..size as isize {
            let (ii, jj) = (i + di, j + dj);
            if ii >= 0 && jj >= 0 && (ii as usize) < n && (jj as usize) < n {
                v[jj as usize * n + ii as usize] = val;
            }
        }
    }
}
