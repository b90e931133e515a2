//! Plain radiographs: [`render_xray`] accumulates attenuation along the beam in a [`Proj`]
//! (ellipsoids and tubes per body part and view, pneumonia as soft blobs) and shows it as
//! `1 - exp(-k·A)` with blur, noise, windowing and optional collimation.
use rand::Rng;

use super::anatomy::{Hab, Lung};
use super::geometry::{px_center, quad, Pose, Proj};
use super::plan::{Anatomy, Finding, PhantomSpec, PlaneOrView, Side};
use super::texture::{blur, noise_field};

pub(super) fn render_xray<R: Rng + ?Sized>(spec: &PhantomSpec, n: usize, h: &Hab, rng: &mut R) -> Vec<f32> {
    let view = match spec.plane_or_view {
        Some(p) if p.is_projection() => p,
        _ => PlaneOrView::Pa,
    };
    let pose = Pose::new(rng.gen_range(0.9..1.06), rng.gen_range(-0.07..0.07), rng.gen_range(-0.06..0.06), rng.gen_range(-0.06..0.06));
    let mut p = Proj::new(n, pose);
    let lat = spec.laterality.map_or(1.0, Side::image_sign);
    match spec.anatomy {
        Anatomy::Chest => {
            let lungs = chest_xray(&mut p, h, view, rng);
            if let Some(Finding::Pneumonia { side }) = spec.finding {
                let lu = if view == PlaneOrView::Lateral {
                    lungs.first().copied()
                } else {
                    lungs.iter().find(|l| l.side_x == side.image_sign()).copied()
                };
                if let Some(lu) = lu {
                    let (u0, v0) = (rng.gen_range(-0.4f32..0.4), rng.gen_range(0.0f32..0.55));
                    let amp = rng.gen_range(0.18..0.55);
                    for _ in 0..rng.gen_range(3..6) {
                        let (u, v) = (u0 + rng.gen_range(-0.25..0.25), v0 + rng.gen_range(-0.25..0.25));
                        let s = rng.gen_range(0.04..0.09);
                        p.blob(lu.cx + u * lu.rx, lu.cy + v * lu.ry, s, s * rng.gen_range(0.7..1.4), rng.gen_range(0.0..3.0), amp);
                    }
                }
            }
        }
        Anatomy::Abdomen => abdomen_xray(&mut p, h, rng),
        Anatomy::Knee => knee_xray(&mut p, h, view, lat, rng),
        Anatomy::Head => head_xray(&mut p, h, view, rng),
    }
    let k = rng.gen_range(1.1..1.5f32);
    let mut v: Vec<f32> = p.a.iter().map(|&a| 1.0 - (-k * a.max(0.0)).exp()).collect();
    let sm = rng.gen_range(0.7..1.2) * n as f32 / 128.0;
    blur(&mut v, n, sm, sm);
    let sigma = rng.gen_range(0.01..0.03f32);
    let noise = noise_field(rng, n);
    let (lo, hi) = (rng.gen_range(0.0..0.08f32), rng.gen_range(0.85..1.0f32));
    // collimation: unexposed borders stay light
    let coll = rng.gen_bool(0.35);
    let (cl, cr, ct, cb) =
        (rng.gen_range(-1.0..-0.8f32), rng.gen_range(0.8..1.0f32), rng.gen_range(-1.0..-0.8f32), rng.gen_range(0.8..1.0f32));
    let cval = rng.gen_range(0.7..0.95f32);
    for j in 0..n {
        let y = px_center(j, n);
        for i in 0..n {
            let x = px_center(i, n);
            let kx = j * n + i;
            v[kx] = if coll && (x < cl || x > cr || y < ct || y > cb) {
                cval + 0.01 * noise[kx]
            } else {
                ((v[kx] - lo) / (hi - lo) + sigma * noise[kx]).clamp(0.0, 1.0)
            };
        }
    }
    v
}

/// Chest radiograph; returns lungs (right first) for placing pneumonia.
fn chest_xray<R: Rng + ?Sized>(p: &mut Proj, h: &Hab, view: PlaneOrView, rng: &mut R) -> Vec<Lung> {
    if view == PlaneOrView::Lateral {
        p.body(0.0, 0.2, 0.62 * h.d, 1.2, 3.0, 0.6 * h.w, 1.0);
        p.ellipsoid(0.1, -0.9, 0.3, 0.35, 0.0, 0.3, 0.6); // shoulders / arms
        let lu = Lung { cx: 0.02, cy: -0.05, rx: 0.45 * h.d, ry: 0.62, side_x: 0.0 };
        p.ellipsoid(lu.cx, lu.cy, lu.rx, lu.ry, 0.0, 0.55 * h.w, -0.95);
        p.ellipsoid(-0.15, 0.38, 0.3, 0.26, 0.4, 0.28, 1.0); // heart
        p.ellipsoid(0.12, -0.2, 0.1, 0.12, 0.0, 0.1, 0.6); // hila
        for v in 0..12 {
            let y = -0.95 + v as f32 * 0.17;
            p.ellipsoid(0.44, y, 0.08, 0.065, 0.0, 0.08, 4.0);
            p.tube(&[(0.52, y), (0.6, y + 0.05)], 0.02, 3.0);
        }
        p.tube(&[(-0.5, -0.6), (-0.55, 0.3)], 0.03, 3.0); // sternum
        p.tube(&[(0.0, -1.2), (0.05, -0.25)], 0.035, -1.2); // trachea
        for s in 0..9 {
            let y = -0.55 + s as f32 * 0.13;
            p.tube(&quad((0.5, y), (0.2, y + 0.1), (-0.35, y + 0.25), 8), 0.014, 1.8);
        }
        return vec![lu];
    }
    let ap = view == PlaneOrView::Ap;
    p.body(0.0, 0.25, 0.92 * h.w, 1.2, 3.5, 0.45 * h.d, 1.0);
    p.tube(&[(0.0, -1.2), (0.0, -0.85)], 0.18, 0.8);
    for sx in [-1.0f32, 1.0] {
        p.tube(&[(sx * 0.9 * h.w, -0.75), (sx * 1.02 * h.w, 0.5)], 0.13, 0.8); // arms
        p.long_bone(&[(sx * 0.9 * h.w, -0.68), (sx * 1.0 * h.w, 0.5)], 0.05, 3.0); // humerus
        p.ellipsoid(sx * 0.88 * h.w, -0.7, 0.09, 0.1, 0.0, 0.08, 3.0); // humeral head
    }
    // PA vs AP cues overlap on purpose (see data/README.md): AP (supine, front-to-back beam) has
    // lower lung volumes, a magnified heart, higher clavicles and scapulae over the lungs
    let lh = if ap { rng.gen_range(0.53..0.6) } else { rng.gen_range(0.57..0.64) };
    let rl = Lung { cx: -0.36 * h.w, cy: -0.1, rx: 0.31 * h.w, ry: lh, side_x: -1.0 };
    let ll = Lung { cx: 0.38 * h.w, cy: -0.08, rx: 0.29 * h.w, ry: lh - 0.02, side_x: 1.0 };
    for lu in [rl, ll] {
        p.ellipsoid(lu.cx, lu.cy, lu.rx, lu.ry, 0.06 * lu.side_x, 0.42 * h.d, -0.95);
        // bronchovascular markings
        for _ in 0..6 {
            let a: f32 = rng.gen_range(-1.2..1.2);
            let (hx, hy) = (lu.cx - lu.side_x * 0.15, lu.cy + 0.1);
            let len = rng.gen_range(0.2..0.4);
            p.tube(&[(hx, hy), (hx + lu.side_x * len * a.cos(), hy - len * a.sin())], 0.008, 2.0);
        }
    }
    // heart: magnified on AP
    let hm = (1.0 + 0.07 * h.j[1]) * if ap { rng.gen_range(1.05..1.2) } else { rng.gen_range(0.95..1.1) };
    p.ellipsoid(0.1, 0.35, 0.27 * hm * h.w, 0.24, 0.25, 0.3, 1.0);
    p.ellipsoid(0.0, -0.3, 0.1, 0.35, 0.0, 0.25, 0.8); // mediastinum
    p.ellipsoid(0.12, -0.32, 0.07, 0.06, 0.0, 0.1, 1.0); // aortic knob
    p.ellipsoid(0.36, 0.62, 0.08, 0.05, 0.0, 0.1, -0.8); // gastric bubble
                                                         // spine
    for v in 0..14 {
        p.ellipsoid(0.0, -1.05 + v as f32 * 0.16, 0.08, 0.065, 0.0, 0.05, 2.0);
    }
    p.tube(&[(0.0, -1.2), (0.0, -0.3)], 0.035, -1.0); // trachea
                                                      // clavicles: higher and more horizontal on AP
    for sx in [-1.0f32, 1.0] {
        let (y0, y1) = if ap { (rng.gen_range(-0.78..-0.71), -0.8) } else { (rng.gen_range(-0.74..-0.67), -0.83) };
        p.tube(&quad((sx * 0.08, y0), (sx * 0.35, y0 + 0.02), (sx * 0.6 * h.w, y1), 6), 0.025, 4.0);
        // scapulae: retracted outside the lungs on PA, over the lungs on AP
        let sxp = if ap { rng.gen_range(0.48..0.66) } else { rng.gen_range(0.6..0.78) };
        p.ellipsoid(sx * sxp * h.w, -0.42, 0.14, 0.3, sx * -0.15, 0.03, 2.5);
    }
    // posterior ribs
    for r in 0..10 {
        let y0 = -0.7 + r as f32 * 0.11;
        for sx in [-1.0f32, 1.0] {
            p.tube(&quad((sx * 0.06, y0), (sx * 0.42 * h.w, y0 - 0.08), (sx * 0.7 * h.w, y0 + 0.14), 8), 0.016, 3.0);
        }
    }
    if h.female {
        p.ellipsoid(-0.4, 0.45, 0.25, 0.2, 0.0, 0.15, 0.6);
        p.ellipsoid(0.4, 0.45, 0.25, 0.2, 0.0, 0.15, 0.6);
    }
    vec![rl, ll]
}

fn abdomen_xray<R: Rng + ?Sized>(p: &mut Proj, h: &Hab, rng: &mut R) {
    p.body(0.0, 0.0, 0.9 * h.w, 1.3, 3.0, 0.45 * h.d, 0.8);
    p.ellipsoid(-0.4, -0.65, 0.42, 0.3, 0.2, 0.25, 0.3); // liver
    for v in 0..6 {
        let y = -0.85 + v as f32 * 0.2;
        p.ellipsoid(0.0, y, 0.1, 0.075, 0.0, 0.08, 3.5);
        p.tube(&[(-0.17, y - 0.02), (0.17, y - 0.02)], 0.016, 1.5); // transverse processes
    }
    for sx in [-1.0f32, 1.0] {
        p.tube(&[(sx * 0.08, -0.5), (sx * 0.3, 0.5)], 0.08, 0.3); // psoas
        p.ellipsoid(sx * 0.4, 0.6, 0.26, 0.24, sx * 0.3, 0.03, 3.0); // iliac wings
        p.tube(&quad((sx * 0.14, 0.5), (sx * 0.6, 0.25), (sx * 0.62, 0.7), 8), 0.025, 3.0); // iliac crest
        p.ellipsoid(sx * 0.4, 1.08, 0.11, 0.11, 0.0, 0.1, 3.0); // femoral heads
        for r in 0..3 {
            let y0 = -1.0 + r as f32 * 0.12;
            p.tube(&quad((sx * 0.08, y0), (sx * 0.45, y0 - 0.05), (sx * 0.75, y0 + 0.15), 6), 0.015, 3.0);
        }
    }
    p.ellipsoid(0.0, 0.7, 0.13, 0.2, 0.0, 0.08, 3.0); // sacrum
                                                      // bowel gas
    let colon = [(-0.55, 0.3), (-0.55, -0.35), (0.0, -0.3), (0.55, -0.4), (0.55, 0.3)];
    for w in colon.windows(2) {
        if rng.gen_bool(0.7) {
            p.tube(&[w[0], w[1]], rng.gen_range(0.05..0.09), -1.8);
        }
    }
    for _ in 0..rng.gen_range(5..14) {
        p.ellipsoid(
            rng.gen_range(-0.5..0.5),
            rng.gen_range(-0.3..0.5),
            rng.gen_range(0.03..0.07),
            rng.gen_range(0.03..0.06),
            0.0,
            0.06,
            -3.0,
        );
    }
}

fn knee_xray<R: Rng + ?Sized>(p: &mut Proj, h: &Hab, view: PlaneOrView, lat: f32, rng: &mut R) {
    if view == PlaneOrView::Lateral {
        let fl: f32 = rng.gen_range(0.0..0.15); // flexion
        p.tube(&[(0.05 - fl, -1.3), (0.02, -0.05)], 0.42 * h.d, 0.3);
        p.tube(&[(0.02, -0.05), (0.05 - fl, 1.3)], 0.35 * h.d, 0.3);
        p.long_bone(&[(0.06 - fl * 0.8, -1.3), (0.05, -0.3)], 0.12, 3.0);
        p.ellipsoid(0.07, -0.12, 0.21, 0.17, 0.0, 0.18, 2.2);
        p.ellipsoid(0.04, 0.14, 0.23, 0.08, -0.05, 0.2, 2.2);
        p.long_bone(&[(0.03, 0.15), (0.05 - fl * 0.8, 1.3)], 0.11, 3.0);
        p.ellipsoid(-0.34, -0.2, 0.055, 0.135, 0.25, 0.12, 3.0); // patella in profile
        p.tube(&[(0.16, 0.24), (0.14 - fl * 0.6, 1.3)], 0.04, 3.0); // fibula behind the tibia
        p.ellipsoid(0.15, 0.22, 0.06, 0.05, 0.0, 0.05, 3.0);
        p.ellipsoid(-0.19, 0.06, 0.1, 0.1, 0.0, 0.3, -0.4); // fat pad (lucent)
        return;
    }
    p.tube(&[(0.0, -1.3), (0.0, -0.05)], 0.42 * h.w, 0.3);
    p.tube(&[(0.0, -0.05), (0.0, 1.3)], 0.35 * h.w, 0.3);
    p.long_bone(&[(0.0, -1.3), (0.0, -0.35)], 0.12, 3.0);
    p.ellipsoid(0.0, -0.27, 0.22, 0.14, 0.0, 0.15, 2.2);
    p.ellipsoid(-0.14, -0.12, 0.13, 0.11, 0.0, 0.2, 2.2);
    p.ellipsoid(0.14, -0.12, 0.13, 0.11, 0.0, 0.2, 2.2);
    p.ellipsoid(0.0, 0.14, 0.28, 0.08, 0.0, 0.2, 2.2);
    p.long_bone(&[(0.0, 0.14), (0.0, 1.3)], 0.11, 3.0);
    p.ellipsoid(0.0, -0.2, 0.12, 0.14, 0.0, 0.05, 2.0); // patella seen through the femur
    p.ellipsoid(lat * 0.27, 0.25, 0.065, 0.055, 0.0, 0.05, 3.0); // fibular head (lateral)
    p.tube(&[(lat * 0.27, 0.25), (lat * 0.29, 1.3)], 0.045, 3.0);
}

fn head_xray<R: Rng + ?Sized>(p: &mut Proj, h: &Hab, view: PlaneOrView, rng: &mut R) {
    let _ = rng;
    if view == PlaneOrView::Lateral {
        let (cx, cy, rx, ry) = (0.08, -0.25, 0.7 * h.d.sqrt(), 0.57);
        p.ellipsoid(cx, cy, rx + 0.08, ry + 0.08, 0.0, 0.6, 0.6);
        p.ellipsoid(cx, cy, rx + 0.04, ry + 0.04, 0.0, 0.58, 3.0);
        p.ellipsoid(cx, cy, rx, ry, 0.0, 0.55, -3.0);
        p.ellipsoid(-0.45, 0.25, 0.3, 0.35, 0.15, 0.4, 1.0); // face
        p.ellipsoid(-0.45, 0.15, 0.15, 0.12, 0.0, 0.2, -1.0); // maxillary sinus
        p.ellipsoid(-0.55, -0.35, 0.08, 0.08, 0.0, 0.1, -1.0); // frontal sinus
        p.tube(&[(-0.6, 0.55), (-0.1, 0.5), (0.0, 0.1)], 0.04, 2.5); // mandible
        p.ellipsoid(0.05, -0.05, 0.05, 0.04, 0.0, 0.05, -2.0); // sella
        p.tube(&[(-0.2, -0.05), (0.25, 0.15)], 0.04, 3.0); // skull base
        for v in 0..5 {
            p.ellipsoid(0.15, 0.5 + v as f32 * 0.16, 0.08, 0.06, 0.0, 0.08, 3.0);
        }
        p.tube(&[(0.15, 0.35), (0.22, 1.3)], 0.3, 0.8); // neck
        return;
    }
    let (rx, ry) = (0.58 * h.w.sqrt(), 0.7);
    p.ellipsoid(0.0, -0.12, rx + 0.08, ry + 0.08, 0.0, 0.65, 0.6);
    p.ellipsoid(0.0, -0.12, rx + 0.04, ry + 0.04, 0.0, 0.62, 3.0);
    p.ellipsoid(0.0, -0.12, rx, ry, 0.0, 0.58, -3.0);
    for sx in [-1.0f32, 1.0] {
        p.ellipsoid(sx * 0.22, 0.05, 0.12, 0.1, 0.0, 0.1, -1.5); // orbits
        p.tube(&[(sx * 0.05, 0.25), (sx * 0.5, 0.15)], 0.035, 3.0); // petrous ridges
        p.ellipsoid(sx * 0.2, 0.35, 0.09, 0.1, 0.0, 0.08, -1.0); // maxillary sinuses
    }
    p.tube(&quad((-0.45, 0.45), (0.0, 1.0), (0.45, 0.45), 8), 0.045, 2.5); // mandible
    p.tube(&[(0.0, 0.1), (0.0, 0.5)], 0.015, 2.0); // septum
    p.tube(&[(0.0, 0.5), (0.0, 1.3)], 0.3, 0.8); // neck
}
