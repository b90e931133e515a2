//! Augmentation and normalisation: the random half of the image pipeline.
//!
//! Images become `[3, S, S]` f32 planes (CHW), grayscale replicated to three channels, normalised
//! with the ImageNet mean/std that torchvision weights expect. Augmentation mirrors Keras'
//! `ImageDataGenerator(rotation_range, zoom_range, shear_range, horizontal_flip)`: one random
//! affine map per image (rotation, shear, independent x/y zoom about the centre), bilinear sampling,
//! `fill_mode="nearest"`, then an optional horizontal flip. Randomness is drawn from a ChaCha stream
//! keyed by (seed, epoch, image index), so a batch is the same whatever the thread schedule.
use std::path::Path;

use image::DynamicImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::decode::{decode_raw, resized_planes, PipelineError, RawImage};

/// ImageNet channel means (RGB), as used by torchvision.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Keras-style augmentation ranges. Defaults follow common radiology fine-tuning settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AugmentConfig {
    /// Rotation drawn uniformly from ±`rotation_deg` degrees.
    pub rotation_deg: f32,
    /// Zoom factors drawn independently for x and y from `[1 - zoom, 1 + zoom]`.
    pub zoom: f32,
    /// Shear angle drawn from ±`shear_deg` degrees.
    pub shear_deg: f32,
    /// Flip left-right with probability 1/2. Turned off automatically when laterality is predicted.
    pub hflip: bool,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self { rotation_deg: 10.0, zoom: 0.1, shear_deg: 5.0, hflip: true }
    }
}

/// Decode + resize (+ augment) + normalise, for one image size.
#[derive(Debug, Clone, Copy)]
pub struct Pipeline {
    pub size: u32,
    pub augment: Option<AugmentConfig>,
}

/// Deterministic per-image RNG for (seed, epoch, index).
pub fn image_rng(seed: u64, epoch: u64, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index);
    rng
}

impl Pipeline {
    /// Floats per image: `3 * size * size`.
    pub fn image_len(&self) -> usize {
        3 * (self.size as usize) * (self.size as usize)
    }

    /// Decode `path` and write the normalised CHW image into `out` (`image_len()` floats).
    ///
    /// The fast path: JPEGs are decoded by zune-jpeg directly (no `DynamicImage`), then resized
    /// with SIMD (fast_image_resize, bilinear = image's `Triangle`), then warped and normalised in
    /// one pass. See [`decode_raw`], [`resize_planes`] and BENCHMARKS.md for the measurements
    /// (DCT-scaled decoding was measured too and left out: no faster here, and less exact).
    pub fn load_into(&self, path: &Path, rng: &mut ChaCha8Rng, out: &mut [f32]) -> Result<(), PipelineError> {
        let raw = decode_raw(path, None)?;
        self.process_raw_into(&raw, rng, out);
        Ok(())
    }

    /// Resize, augment and normalise an already decoded image.
    pub fn process_into(&self, img: &DynamicImage, rng: &mut ChaCha8Rng, out: &mut [f32]) {
        self.process_raw_into(&RawImage::from_dynamic(img), rng, out);
    }

    /// Resize, augment and normalise a decoded [`RawImage`].
    ///
    /// An RGB image whose pixels all have R = G = B (most radiographs saved as colour JPEGs) is
    /// processed as one grey plane: a third of the resize and warp work, and the same output.
    pub fn process_raw_into(&self, raw: &RawImage, rng: &mut ChaCha8Rng, out: &mut [f32]) {
        self.finish_planes(&resized_planes(raw, self.size), rng, out);
    }

    /// Augment and normalise `size x size` u8 planes (1 = grayscale, replicated; or 3 = RGB).
    pub(crate) fn finish_planes(&self, planes: &[Vec<u8>], rng: &mut ChaCha8Rng, out: &mut [f32]) {
        let s = self.size as usize;
        let n = s * s;
        let transform = self.augment.map(|a| RandomAffine::sample(&a, rng));
        // (v / 255 - mean) / std  ==  v * scale + bias
        let scale = |ch: usize| 1.0 / (255.0 * IMAGENET_STD[ch]);
        let bias = |ch: usize| -IMAGENET_MEAN[ch] / IMAGENET_STD[ch];
        match &transform {
            None => {
                for ch in 0..3 {
                    let src = &planes[if planes.len() == 1 { 0 } else { ch }];
                    let (a, b) = (scale(ch), bias(ch));
                    out[ch * n..(ch + 1) * n].iter_mut().zip(src).for_each(|(d, &v)| *d = v as f32 * a + b);
                }
            }
            Some(t) => {
                // One pass: sample positions computed once per pixel, each distinct plane
                // interpolated once (a grayscale plane serves all three channels), normalised on write.
                let (ab, bb) = ([scale(0), scale(1), scale(2)], [bias(0), bias(1), bias(2)]);
                let (o0, rest) = out.split_at_mut(n);
                let (o1, o2) = rest.split_at_mut(n);
                if planes.len() == 1 {
                    let src = planes[0].as_slice();
                    t.for_each_sample(s, |i, [i00, i10, i01, i11], fx, fy| {
                        let v = bilinear(src, i00, i10, i01, i11, fx, fy);
                        o0[i] = v * ab[0] + bb[0];
                        o1[i] = v * ab[1] + bb[1];
                        o2[i] = v * ab[2] + bb[2];
                    });
                } else {
                    let (p0, p1, p2) = (planes[0].as_slice(), planes[1].as_slice(), planes[2].as_slice());
                    t.for_each_sample(s, |i, [i00, i10, i01, i11], fx, fy| {
                        o0[i] = bilinear(p0, i00, i10, i01, i11, fx, fy) * ab[0] + bb[0];
                        o1[i] = bilinear(p1, i00, i10, i01, i11, fx, fy) * ab[1] + bb[1];
                        o2[i] = bilinear(p2, i00, i10, i01, i11, fx, fy) * ab[2] + bb[2];
                    });
                }
            }
        }
    }
}

/// Bilinear interpolation of `src` at the four neighbours with fractions `fx`, `fy`.
#[inline(always)]
fn bilinear(src: &[u8], i00: usize, i10: usize, i01: usize, i11: usize, fx: f32, fy: f32) -> f32 {
    let top = src[i00] as f32 * (1.0 - fx) + src[i10] as f32 * fx;
    let bot = src[i01] as f32 * (1.0 - fx) + src[i11] as f32 * fx;
    top * (1.0 - fy) + bot * fy
}

/// One sampled affine map from output to input coordinates (about the image centre).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomAffine {
    /// 2x2 matrix `[a, b; c, d]` mapping centred output coords to centred input coords.
    pub m: [f32; 4],
    pub flip: bool,
}

impl RandomAffine {
    /// The identity map (no augmentation).
    pub const IDENTITY: RandomAffine = RandomAffine { m: [1.0, 0.0, 0.0, 1.0], flip: false };

    /// Draw a map as Keras does: rotation, then shear, then zoom.
    pub fn sample(a: &AugmentConfig, rng: &mut ChaCha8Rng) -> RandomAffine {
        let mut u = |r: f32| if r > 0.0 { rng.gen_range(-r..=r) } else { 0.0 };
        let theta = u(a.rotation_deg).to_radians();
        let shear = u(a.shear_deg).to_radians();
        let zx = 1.0 + u(a.zoom);
        let zy = 1.0 + u(a.zoom);
        let flip = a.hflip && rng.gen_bool(0.5);
        Self::from_params(theta, shear, zx, zy, flip)
    }

    /// rotation(theta) · shear(shear) · zoom(zx, zy), as in keras `apply_affine_transform`.
    pub(crate) fn from_params(theta: f32, shear: f32, zx: f32, zy: f32, flip: bool) -> RandomAffine {
        let (s, c) = theta.sin_cos();
        // Keras works in (row, col) = (y, x) order; we use (x, y) and transpose accordingly.
        let rot = [c, s, -s, c];
        let sh = [1.0, 0.0, -shear.sin(), shear.cos()];
        let zo = [zx, 0.0, 0.0, zy];
        let mul = |p: [f32; 4], q: [f32; 4]| [p[0] * q[0] + p[1] * q[2], p[0] * q[1] + p[1] * q[3], p[2] * q[0] + p[3] * q[2], p[2] * q[1] + p[3] * q[3]];
        RandomAffine { m: mul(mul(rot, sh), zo), flip }
    }

    /// Warp one `s x s` u8 plane into `out` (f32, 0..255) with bilinear sampling and edge clamping.
    pub fn warp(&self, src: &[u8], s: usize, out: &mut [f32]) {
        self.warp_planes(&[src], s, &mut [out]);
    }

    /// [`warp`](Self::warp) several planes with one map (the sample positions are computed once).
    pub(crate) fn warp_planes(&self, srcs: &[&[u8]], s: usize, outs: &mut [&mut [f32]]) {
        assert_eq!(srcs.len(), outs.len(), "one output per plane");
        self.for_each_sample(s, |i, [i00, i10, i01, i11], fx, fy| {
            for (src, out) in srcs.iter().zip(outs.iter_mut()) {
                out[i] = bilinear(src, i00, i10, i01, i11, fx, fy);
            }
        });
    }

    /// For every output pixel `i = y * s + x`: the indices of its four input neighbours
    /// `[(x0,y0), (x1,y0), (x0,y1), (x1,y1)]` and the fractions `fx`, `fy` (edge-clamped).
    #[inline(always)]
    fn for_each_sample(&self, s: usize, mut f: impl FnMut(usize, [usize; 4], f32, f32)) {
        let c = (s as f32 - 1.0) / 2.0;
        let max = (s - 1) as f32;
        let [a, b, cc, d] = self.m;
        for y in 0..s {
            let yo = y as f32 - c;
            let (byo, dyo) = (b * yo, d * yo);
            for x in 0..s {
                let xo_pix = if self.flip { s - 1 - x } else { x };
                let xo = xo_pix as f32 - c;
                let xs = (a * xo + byo + c).clamp(0.0, max);
                let ys = (cc * xo + dyo + c).clamp(0.0, max);
                let (x0, y0) = (xs as usize, ys as usize); // non-negative: truncation = floor
                let (x1, y1) = ((x0 + 1).min(s - 1), (y0 + 1).min(s - 1));
                let (fx, fy) = (xs - x0 as f32, ys - y0 as f32);
                f(y * s + x, [y0 * s + x0, y0 * s + x1, y1 * s + x0, y1 * s + x1], fx, fy);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::decode::test_images::rgb_pattern;
    use crate::data::decode::{resize_planes, resize_planes_reference};

    fn plane(s: usize) -> Vec<u8> {
        (0..s * s).map(|i| (i % s * 10 + i / s) as u8).collect()
    }

    #[test]
    fn identity_warp_is_exact() {
        let src = plane(8);
        let mut out = vec![0f32; 64];
        RandomAffine::IDENTITY.warp(&src, 8, &mut out);
        assert!(out.iter().zip(&src).all(|(a, &b)| (*a - b as f32).abs() < 1e-4));
    }

    #[test]
    fn flip_mirrors_columns() {
        let src = plane(6);
        let mut out = vec![0f32; 36];
        RandomAffine { flip: true, ..RandomAffine::IDENTITY }.warp(&src, 6, &mut out);
        for y in 0..6 {
            for x in 0..6 {
                assert_eq!(out[y * 6 + x], src[y * 6 + 5 - x] as f32);
            }
        }
    }

    #[test]
    fn rotation_by_90_degrees_moves_a_corner_pixel() {
        // With a 90° map, output (x, y) samples input at rot·(x - c, y - c) + c.
        let s = 5;
        let mut src = vec![0u8; s * s];
        src[0] = 200; // input (x=0, y=0)
        let t = RandomAffine::from_params(std::f32::consts::FRAC_PI_2, 0.0, 1.0, 1.0, false);
        let mut out = vec![0f32; s * s];
        t.warp(&src, s, &mut out);
        // cos=0, sin=1: xs = yo + c, ys = -xo + c -> input (0,0) is read at output x=4, y=0.
        let hot: Vec<usize> = out.iter().enumerate().filter(|(_, v)| **v > 100.0).map(|(i, _)| i).collect();
        assert_eq!(hot, vec![4], "{out:?}");
    }

    #[test]
    fn zoom_two_samples_twice_as_far_from_centre() {
        let s = 9;
        let src: Vec<u8> = (0..s * s).map(|i| (i % s) as u8 * 20).collect(); // value = 20 * x
        let t = RandomAffine::from_params(0.0, 0.0, 2.0, 2.0, false);
        let mut out = vec![0f32; s * s];
        t.warp(&src, s, &mut out);
        // centre column x=4 stays; output x=5 reads input x=6; output x=8 reads 12 -> clamped to 8.
        assert!((out[4 * s + 4] - 80.0).abs() < 1e-3);
        assert!((out[4 * s + 5] - 120.0).abs() < 1e-3);
        assert!((out[4 * s + 8] - 160.0).abs() < 1e-3);
    }

    #[test]
    fn grayscale_is_replicated_and_normalised_with_imagenet_stats() {
        let img = DynamicImage::ImageLuma8(image::GrayImage::from_pixel(4, 4, image::Luma([255])));
        let pipe = Pipeline { size: 4, augment: None };
        let mut out = vec![0f32; pipe.image_len()];
        pipe.process_into(&img, &mut image_rng(0, 0, 0), &mut out);
        for ch in 0..3 {
            let want = (1.0 - IMAGENET_MEAN[ch]) / IMAGENET_STD[ch];
            assert!(out[ch * 16..(ch + 1) * 16].iter().all(|v| (v - want).abs() < 1e-5));
        }
    }

    #[test]
    fn same_seed_same_augmentation_different_epoch_differs() {
        let a = AugmentConfig::default();
        let t1 = RandomAffine::sample(&a, &mut image_rng(3, 1, 17));
        let t2 = RandomAffine::sample(&a, &mut image_rng(3, 1, 17));
        let t3 = RandomAffine::sample(&a, &mut image_rng(3, 2, 17));
        assert_eq!(t1, t2);
        assert_ne!(t1, t3);
    }

    #[test]
    fn process_into_matches_reference_path_within_tolerance() {
        // The whole path (resize, augment, normalise) against the pre-SIMD reference:
        // image's Triangle resize, per-plane warp, (v / 255 - mean) / std.
        let pipe = Pipeline { size: 24, augment: Some(AugmentConfig::default()) };
        let raw = rgb_pattern(61, 45);
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_raw(61, 45, raw.data.clone()).unwrap());
        let mut fast = vec![0f32; pipe.image_len()];
        pipe.process_into(&img, &mut image_rng(1, 2, 3), &mut fast);
        let planes = resize_planes_reference(&raw, 24);
        let t = RandomAffine::sample(&AugmentConfig::default(), &mut image_rng(1, 2, 3));
        let n = 24 * 24;
        let mut tmp = vec![0f32; n];
        for ch in 0..3 {
            t.warp(&planes[ch], 24, &mut tmp);
            for i in 0..n {
                let want = (tmp[i] / 255.0 - IMAGENET_MEAN[ch]) / IMAGENET_STD[ch];
                // one grey level of resize difference is 1/(255*std) < 0.0175 after normalisation
                assert!((fast[ch * n + i] - want).abs() <= 0.0176, "ch {ch} px {i}: {} vs {want}", fast[ch * n + i]);
            }
        }
    }

    #[test]
    fn normalisation_uses_imagenet_statistics_per_channel() {
        // A uniform RGB image (r, g, b) = (124, 116, 104) ~ the ImageNet mean: output ~0 everywhere;
        // (255, 0, 51): (1 - m) / s, -m / s, (0.2 - m) / s.
        for (px, want) in [
            ([124u8, 116, 104], [(124.0 / 255.0 - 0.485) / 0.229, (116.0 / 255.0 - 0.456) / 0.224, (104.0 / 255.0 - 0.406) / 0.225]),
            ([255, 0, 51], [(1.0 - 0.485) / 0.229, -0.456 / 0.224, (0.2 - 0.406) / 0.225]),
        ] {
            let img = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(5, 5, image::Rgb(px)));
            for augment in [None, Some(AugmentConfig::default())] {
                let pipe = Pipeline { size: 3, augment };
                let mut out = vec![0f32; pipe.image_len()];
                pipe.process_into(&img, &mut image_rng(0, 0, 0), &mut out);
                for ch in 0..3 {
                    let plane = &out[ch * 9..(ch + 1) * 9];
                    assert!(plane.iter().all(|v| (v - want[ch] as f32).abs() < 1e-5), "{px:?} ch {ch}: {plane:?} vs {}", want[ch]);
                }
            }
        }
    }

    #[test]
    fn grey_rgb_images_take_the_one_plane_path_with_the_same_output() {
        let gray: Vec<u8> = (0..37 * 23).map(|i| ((i * 7) % 251) as u8).collect();
        let rgb = RawImage { width: 37, height: 23, channels: 3, data: gray.iter().flat_map(|&v| [v, v, v]).collect() };
        let one = rgb.gray_plane().expect("R = G = B");
        assert_eq!((one.channels, one.data.clone()), (1, gray));
        // the resize of one plane equals each plane of the RGB resize
        let three = resize_planes(&rgb, 16);
        let single = resize_planes(&one, 16);
        for p in &three {
            assert_eq!(p, &single[0]);
        }
        // a single coloured pixel keeps the RGB path
        let mut tinted = rgb.clone();
        tinted.data[40] = tinted.data[40].wrapping_add(1);
        assert!(tinted.gray_plane().is_none());
        // and the pipeline output is the same either way
        let pipe = Pipeline { size: 16, augment: Some(AugmentConfig::default()) };
        let (mut a, mut b) = (vec![0f32; pipe.image_len()], vec![0f32; pipe.image_len()]);
        pipe.process_raw_into(&rgb, &mut image_rng(1, 1, 1), &mut a);
        let planes: Vec<Vec<u8>> = three;
        pipe.finish_planes(&planes, &mut image_rng(1, 1, 1), &mut b);
        assert_eq!(a, b);
    }
}
