//! Geometry and rasterisation in the normalised image frame (`[-1, 1]²`, y down): the pose
//! ([`Pose`]), ellipse / superellipse / tube rasterisers, the tissue classes ([`T`]), the label map
//! painted by the cross-sectional anatomy ([`Labels`]) and the attenuation accumulator of
//! projection radiographs ([`Proj`]).

/// Similarity transform anatomy frame -> image frame (both normalised to [-1, 1]).
#[derive(Clone, Copy)]
pub(super) struct Pose {
    pub(super) s: f32,
    cos: f32,
    sin: f32,
    pub(super) tx: f32,
    pub(super) ty: f32,
}

impl Pose {
    pub(super) fn new(s: f32, theta: f32, tx: f32, ty: f32) -> Pose {
        Pose { s, cos: theta.cos(), sin: theta.sin(), tx, ty }
    }
    pub(super) fn identity() -> Pose {
        Pose::new(1.0, 0.0, 0.0, 0.0)
    }
    fn apply(&self, x: f32, y: f32) -> (f32, f32) {
        (self.s * (self.cos * x - self.sin * y) + self.tx, self.s * (self.sin * x + self.cos * y) + self.ty)
    }
    fn angle(&self) -> f32 {
        self.sin.atan2(self.cos)
    }
}

#[inline]
pub(super) fn px_center(i: usize, n: usize) -> f32 {
    (i as f32 + 0.5) * 2.0 / n as f32 - 1.0
}

/// Pixel range [lo, hi) covering normalised [c - r, c + r].
fn px_range(c: f32, r: f32, n: usize) -> (usize, usize) {
    let nf = n as f32;
    let lo = ((c - r + 1.0) * 0.5 * nf).floor().clamp(0.0, nf) as usize;
    let hi = ((c + r + 1.0) * 0.5 * nf).ceil().clamp(0.0, nf) as usize;
    (lo, hi)
}

/// Calls `f(pixel index, q)` for pixels inside the ellipse, q = normalised radius² in [0, 1].
#[allow(clippy::too_many_arguments)]
fn for_ellipse(n: usize, pose: &Pose, cx: f32, cy: f32, rx: f32, ry: f32, ang: f32, f: impl FnMut(usize, f32)) {
    for_superellipse(n, pose, cx, cy, rx, ry, ang, 2.0, f)
}

/// Like [`for_ellipse`] for `|x/rx|^p + |y/ry|^p <= 1` (p > 2 is boxier, like a torso); q is that sum.
#[allow(clippy::too_many_arguments)]
fn for_superellipse(n: usize, pose: &Pose, cx: f32, cy: f32, rx: f32, ry: f32, ang: f32, p: f32, mut f: impl FnMut(usize, f32)) {
    let (x0, y0) = pose.apply(cx, cy);
    let (rx, ry) = ((rx * pose.s).max(1e-4), (ry * pose.s).max(1e-4));
    let a = ang + pose.angle();
    let (ca, sa) = (a.cos(), a.sin());
    let r = rx.max(ry) * if p > 2.0 { std::f32::consts::SQRT_2 } else { 1.0 };
    let (i0, i1) = px_range(x0, r, n);
    let (j0, j1) = px_range(y0, r, n);
    let (irx2, iry2) = (1.0 / (rx * rx), 1.0 / (ry * ry));
    for j in j0..j1 {
        let dy = px_center(j, n) - y0;
        for i in i0..i1 {
            let dx = px_center(i, n) - x0;
            let lx = dx * ca + dy * sa;
            let ly = -dx * sa + dy * ca;
            let q = if p == 2.0 { lx * lx * irx2 + ly * ly * iry2 } else { (lx.abs() / rx).powf(p) + (ly.abs() / ry).powf(p) };
            if q <= 1.0 {
                f(j * n + i, q);
            }
        }
    }
}

/// Calls `f(pixel index, d / r)` for pixels within distance r of the polyline.
fn for_tube(n: usize, pose: &Pose, pts: &[(f32, f32)], r: f32, mut f: impl FnMut(usize, f32)) {
    if pts.is_empty() {
        return;
    }
    let p: Vec<(f32, f32)> = pts.iter().map(|&(x, y)| pose.apply(x, y)).collect();
    let r = (r * pose.s).max(1e-4);
    let (mut xmin, mut xmax, mut ymin, mut ymax) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    for &(x, y) in &p {
        xmin = xmin.min(x);
        xmax = xmax.max(x);
        ymin = ymin.min(y);
        ymax = ymax.max(y);
    }
    let (i0, i1) = px_range((xmin + xmax) * 0.5, (xmax - xmin) * 0.5 + r, n);
    let (j0, j1) = px_range((ymin + ymax) * 0.5, (ymax - ymin) * 0.5 + r, n);
    let r2 = r * r;
    for j in j0..j1 {
        let y = px_center(j, n);
        for i in i0..i1 {
            let x = px_center(i, n);
            let mut best = f32::MAX;
            for k in 0..p.len() {
                let (ax, ay) = p[k];
                let (bx, by) = if k + 1 < p.len() { p[k + 1] } else { p[k] };
                let (vx, vy) = (bx - ax, by - ay);
                let l2 = vx * vx + vy * vy;
                let t = if l2 > 0.0 { (((x - ax) * vx + (y - ay) * vy) / l2).clamp(0.0, 1.0) } else { 0.0 };
                let (dx, dy) = (x - ax - t * vx, y - ay - t * vy);
                best = best.min(dx * dx + dy * dy);
                if k + 2 >= p.len() {
                    break;
                }
            }
            if best <= r2 {
                f(j * n + i, best.sqrt() / r);
            }
        }
    }
}

/// Quadratic Bézier through control point `c`, as `k + 1` points.
pub(super) fn quad(a: (f32, f32), c: (f32, f32), b: (f32, f32), k: usize) -> Vec<(f32, f32)> {
    (0..=k)
        .map(|i| {
            let t = i as f32 / k as f32;
            let u = 1.0 - t;
            (u * u * a.0 + 2.0 * u * t * c.0 + t * t * b.0, u * u * a.1 + 2.0 * u * t * c.1 + t * t * b.1)
        })
        .collect()
}

/// Tissue classes of the label map.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(super) enum T {
    Air = 0,
    Fat,
    Muscle,
    Bone,
    Marrow,
    Lung,
    Csf,
    Gray,
    White,
    Liver,
    Kidney,
    Spleen,
    Artery,
    Vein,
    Heart,
    Fluid,
    Gas,
    Cartilage,
    Ligament,
    Table,
    Ggo,
    Bowel,
    Sinus,
    Plexus,
}
pub(super) const N_TISSUE: usize = 24;

/// Label map painter (cross-sectional modalities and ultrasound).
pub(super) struct Labels {
    n: usize,
    pub(super) t: Vec<u8>,
    pub(super) pose: Pose,
}

impl Labels {
    pub(super) fn new(n: usize, pose: Pose) -> Labels {
        Labels { n, t: vec![T::Air as u8; n * n], pose }
    }
    pub(super) fn ell(&mut self, cx: f32, cy: f32, rx: f32, ry: f32, ang: f32, tis: T) {
        let t = &mut self.t;
        for_ellipse(self.n, &self.pose, cx, cy, rx, ry, ang, |i, _| t[i] = tis as u8);
    }
    pub(super) fn circ(&mut self, cx: f32, cy: f32, r: f32, tis: T) {
        self.ell(cx, cy, r, r, 0.0, tis);
    }
    /// Paint only where the map currently holds `over`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ell_over(&mut self, cx: f32, cy: f32, rx: f32, ry: f32, ang: f32, tis: T, over: T) {
        let t = &mut self.t;
        for_ellipse(self.n, &self.pose, cx, cy, rx, ry, ang, |i, _| {
            if t[i] == over as u8 {
                t[i] = tis as u8
            }
        });
    }
    pub(super) fn tube(&mut self, pts: &[(f32, f32)], r: f32, tis: T) {
        let t = &mut self.t;
        for_tube(self.n, &self.pose, pts, r, |i, _| t[i] = tis as u8);
    }
    pub(super) fn line(&mut self, a: (f32, f32), b: (f32, f32), r: f32, tis: T) {
        self.tube(&[a, b], r, tis);
    }
    /// A long bone / vertebra: cortex `r`, marrow inside.
    pub(super) fn bone_tube(&mut self, pts: &[(f32, f32)], r: f32, cortex: f32) {
        self.tube(pts, r, T::Bone);
        self.tube(pts, (r - cortex).max(0.002), T::Marrow);
    }
    pub(super) fn bone_ell(&mut self, cx: f32, cy: f32, rx: f32, ry: f32, ang: f32, cortex: f32) {
        self.ell(cx, cy, rx, ry, ang, T::Bone);
        self.ell(cx, cy, (rx - cortex).max(0.002), (ry - cortex).max(0.002), ang, T::Marrow);
    }
    pub(super) fn get(&self, x: f32, y: f32) -> u8 {
        let n = self.n as f32;
        let i = ((x + 1.0) * 0.5 * n).floor();
        let j = ((y + 1.0) * 0.5 * n).floor();
        if i < 0.0 || j < 0.0 || i >= n || j >= n {
            return T::Air as u8;
        }
        self.t[j as usize * self.n + i as usize]
    }
}

/// Attenuation accumulator (projection radiography).
pub(super) struct Proj {
    n: usize,
    pub(super) a: Vec<f32>,
    pose: Pose,
}

impl Proj {
    pub(super) fn new(n: usize, pose: Pose) -> Proj {
        Proj { n, a: vec![0.0; n * n], pose }
    }
    /// Ellipsoid with in-plane semi-axes rx, ry and depth semi-axis `d`: adds mu * chord length.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ellipsoid(&mut self, cx: f32, cy: f32, rx: f32, ry: f32, ang: f32, d: f32, mu: f32) {
        let a = &mut self.a;
        let k = 2.0 * d * mu * self.pose.s;
        for_ellipse(self.n, &self.pose, cx, cy, rx, ry, ang, |i, q| a[i] += k * (1.0 - q).sqrt());
    }
    /// Box-like body outline: superellipsoid footprint (exponent `p`), elliptic thickness profile.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn body(&mut self, cx: f32, cy: f32, rx: f32, ry: f32, p: f32, d: f32, mu: f32) {
        let a = &mut self.a;
        let k = 2.0 * d * mu * self.pose.s;
        for_superellipse(self.n, &self.pose, cx, cy, rx, ry, 0.0, p, |i, q| a[i] += k * (1.0 - q).max(0.0).powf(0.4));
    }
    /// Cylinder along a polyline: adds mu * chord length.
    pub(super) fn tube(&mut self, pts: &[(f32, f32)], r: f32, mu: f32) {
        let a = &mut self.a;
        let k = 2.0 * r * mu * self.pose.s;
        for_tube(self.n, &self.pose, pts, r, |i, t| a[i] += k * (1.0 - t * t).max(0.0).sqrt());
    }
    /// Hollow long bone: bright cortex edges, fainter medulla.
    pub(super) fn long_bone(&mut self, pts: &[(f32, f32)], r: f32, mu: f32) {
        self.tube(pts, r, mu);
        self.tube(pts, r * 0.62, -mu * 0.75);
    }
    /// Soft Gaussian blob of peak `amp` (hazy opacities).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn blob(&mut self, cx: f32, cy: f32, sx: f32, sy: f32, ang: f32, amp: f32) {
        let a = &mut self.a;
        let amp = amp * self.pose.s;
        for_ellipse(self.n, &self.pose, cx, cy, 3.0 * sx, 3.0 * sy, ang, |i, q| a[i] += amp * (-4.5 * q).exp());
    }
}
