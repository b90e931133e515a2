//! Noise and smoothing: approximately normal noise fields, smooth organ texture and the separable
//! Gaussian blur every renderer uses.
use rand::Rng;

/// `n`² approximately standard-normal values (Irwin-Hall: sum of four 16-bit uniforms from one
/// `u64`, rescaled; plenty for image noise and several times cheaper than Box-Muller).
pub(super) fn noise_field<R: Rng + ?Sized>(rng: &mut R, n: usize) -> Vec<f32> {
    const MEAN: f32 = 2.0 * 65535.0;
    const INV_SD: f32 = 1.0 / 37_837.2; // sqrt(4 * (65536² - 1) / 12)
    (0..n * n)
        .map(|_| {
            let u = rng.next_u64();
            let s = (u & 0xFFFF) + ((u >> 16) & 0xFFFF) + ((u >> 32) & 0xFFFF) + (u >> 48);
            (s as f32 - MEAN) * INV_SD
        })
        .collect()
}

/// Smooth unit-variance noise (correlation length ~`sigma` px): organ texture.
pub(super) fn texture<R: Rng + ?Sized>(rng: &mut R, n: usize, sigma: f32) -> Vec<f32> {
    let mut t = noise_field(rng, n);
    blur(&mut t, n, sigma, sigma);
    let sd = (t.iter().map(|x| x * x).sum::<f32>() / t.len().max(1) as f32).sqrt().max(1e-6);
    t.iter_mut().for_each(|x| *x /= sd);
    t
}

fn kernel(sigma: f32) -> Vec<f32> {
    let rad = (sigma * 2.5).ceil().max(1.0) as i32;
    let mut k: Vec<f32> = (-rad..=rad).map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let s: f32 = k.iter().sum();
    k.iter_mut().for_each(|x| *x /= s);
    k
}

/// Separable Gaussian blur with clamped borders; sigmas in pixels (<= 0.05 skips that axis).
pub(super) fn blur(v: &mut [f32], n: usize, sx: f32, sy: f32) {
    let mut tmp = vec![0.0f32; v.len()];
    if sx > 0.05 {
        let k = kernel(sx);
        let rad = (k.len() / 2) as isize;
        for j in 0..n {
            let row = &v[j * n..(j + 1) * n];
            for i in 0..n {
                let mut acc = 0.0;
                for (t, w) in k.iter().enumerate() {
                    let ii = (i as isize + t as isize - rad).clamp(0, n as isize - 1) as usize;
                    acc += w * row[ii];
                }
                tmp[j * n + i] = acc;
            }
        }
        v.copy_from_slice(&tmp);
    }
    if sy > 0.05 {
        let k = kernel(sy);
        let rad = (k.len() / 2) as isize;
        for j in 0..n {
            for i in 0..n {
                let mut acc = 0.0;
                for (t, w) in k.iter().enumerate() {
                    let jj = (j as isize + t as isize - rad).clamp(0, n as isize - 1) as usize;
                    acc += w * v[jj * n + i];
                }
                tmp[j * n + i] = acc;
            }
        }
        v.copy_from_slice(&tmp);
    }
}
