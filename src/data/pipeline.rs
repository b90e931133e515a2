//! Image pipeline: decode, resize to `size x size` without cropping, Keras-style augmentation,
//! ImageNet normalisation, and a parallel batch loader with bounded prefetch.
//!
//! Images become `[3, S, S]` f32 planes (CHW), grayscale replicated to three channels, normalised
//! with the ImageNet mean/std that torchvision weights expect. Augmentation mirrors Keras'
//! `ImageDataGenerator(rotation_range, zoom_range, shear_range, horizontal_flip)`: one random
//! affine map per image (rotation, shear, independent x/y zoom about the centre), bilinear sampling,
//! `fill_mode="nearest"`, then an optional horizontal flip. Randomness is drawn from a ChaCha stream
//! keyed by (seed, epoch, image index), so a batch is the same whatever the thread schedule.
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use image::imageops::FilterType;
use image::DynamicImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Images larger than this many pixels are refused (a decompression-bomb guard): 12,000 x 12,000.
pub const MAX_PIXELS: u64 = 144_000_000;
/// ImageNet channel means (RGB), as used by torchvision.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Decoding/augmentation failure of one image.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("cannot decode image {path}: {reason}")]
    Decode { path: PathBuf, reason: String },
}

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
    pub fn load_into(&self, path: &Path, rng: &mut ChaCha8Rng, out: &mut [f32]) -> Result<(), PipelineError> {
        let img = decode(path)?;
        self.process_into(&img, rng, out);
        Ok(())
    }

    /// Resize, augment and normalise an already decoded image.
    pub fn process_into(&self, img: &DynamicImage, rng: &mut ChaCha8Rng, out: &mut [f32]) {
        let s = self.size;
        let gray = matches!(
            img.color(),
            image::ColorType::L8 | image::ColorType::La8 | image::ColorType::L16 | image::ColorType::La16
        );
        let planes: Vec<Vec<u8>> = if gray {
            let g = img.to_luma8();
            let r = image::imageops::resize(&g, s, s, FilterType::Triangle);
            vec![r.into_raw()]
        } else {
            let c = img.to_rgb8();
            let r = image::imageops::resize(&c, s, s, FilterType::Triangle);
            let raw = r.into_raw();
            (0..3).map(|ch| raw.iter().skip(ch).step_by(3).copied().collect()).collect()
        };
        let transform = self.augment.map(|a| RandomAffine::sample(&a, rng));
        let n = (s * s) as usize;
        let mut tmp = vec![0f32; n];
        for ch in 0..3 {
            let src = &planes[if planes.len() == 1 { 0 } else { ch }];
            match &transform {
                Some(t) => t.warp(src, s as usize, &mut tmp),
                None => tmp.iter_mut().zip(src).for_each(|(d, &v)| *d = v as f32),
            }
            let (m, sd) = (IMAGENET_MEAN[ch], IMAGENET_STD[ch]);
            let dst = &mut out[ch * n..(ch + 1) * n];
            for (d, &v) in dst.iter_mut().zip(&tmp) {
                *d = (v / 255.0 - m) / sd;
            }
        }
    }
}

/// Decode an image file, refusing absurd dimensions before allocating.
pub fn decode(path: &Path) -> Result<DynamicImage, PipelineError> {
    let err = |reason: String| PipelineError::Decode { path: path.to_path_buf(), reason };
    let reader = image::ImageReader::open(path).map_err(|e| err(e.to_string()))?;
    let mut reader = reader.with_guessed_format().map_err(|e| err(e.to_string()))?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_PIXELS * 4);
    reader.limits(limits);
    reader.decode().map_err(|e| err(e.to_string()))
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
    pub fn from_params(theta: f32, shear: f32, zx: f32, zy: f32, flip: bool) -> RandomAffine {
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
        let c = (s as f32 - 1.0) / 2.0;
        let max = (s - 1) as f32;
        let [a, b, cc, d] = self.m;
        for y in 0..s {
            let yo = y as f32 - c;
            for x in 0..s {
                let xo_pix = if self.flip { s - 1 - x } else { x };
                let xo = xo_pix as f32 - c;
                let xs = (a * xo + b * yo + c).clamp(0.0, max);
                let ys = (cc * xo + d * yo + c).clamp(0.0, max);
                let (x0, y0) = (xs.floor() as usize, ys.floor() as usize);
                let (x1, y1) = ((x0 + 1).min(s - 1), (y0 + 1).min(s - 1));
                let (fx, fy) = (xs - x0 as f32, ys - y0 as f32);
                let p = |xx: usize, yy: usize| src[yy * s + xx] as f32;
                let top = p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx;
                let bot = p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx;
                out[y * s + x] = top * (1.0 - fy) + bot * fy;
            }
        }
    }
}

/// A batch of images ready for the model.
#[derive(Debug)]
pub struct Batch {
    /// Dataset indices of the images, in batch order.
    pub indices: Vec<usize>,
    /// `[B, 3, S, S]` row-major.
    pub images: Vec<f32>,
}

/// Load the images at `indices` in parallel into one batch buffer.
pub fn load_batch(pipe: &Pipeline, paths: &[PathBuf], indices: &[usize], seed: u64, epoch: u64) -> Result<Batch, PipelineError> {
    let len = pipe.image_len();
    let mut images = vec![0f32; indices.len() * len];
    images.par_chunks_mut(len).zip(indices.par_iter()).try_for_each(|(out, &i)| {
        let mut rng = image_rng(seed, epoch, i as u64);
        pipe.load_into(&paths[i], &mut rng, out)
    })?;
    Ok(Batch { indices: indices.to_vec(), images })
}

/// Batches of one epoch produced on a background thread, at most `prefetch` ahead.
pub struct Loader {
    rx: Receiver<Result<Batch, PipelineError>>,
    handle: Option<std::thread::JoinHandle<()>>,
    pub n_batches: usize,
}

impl Loader {
    /// Start loading `order` in chunks of `batch_size`.
    pub fn start(pipe: Pipeline, paths: Arc<Vec<PathBuf>>, order: Vec<usize>, batch_size: usize, seed: u64, epoch: u64, prefetch: usize) -> Loader {
        let (tx, rx) = sync_channel(prefetch.max(1));
        let n_batches = order.len().div_ceil(batch_size.max(1));
        let handle = std::thread::spawn(move || {
            for chunk in order.chunks(batch_size.max(1)) {
                let b = load_batch(&pipe, &paths, chunk, seed, epoch);
                let stop = b.is_err();
                if tx.send(b).is_err() || stop {
                    return;
                }
            }
        });
        Loader { rx, handle: Some(handle), n_batches }
    }
}

impl Iterator for Loader {
    type Item = Result<Batch, PipelineError>;
    fn next(&mut self) -> Option<Self::Item> {
        match self.rx.recv() {
            Ok(b) => Some(b),
            Err(_) => {
                if let Some(h) = self.handle.take() {
                    let _ = h.join();
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn decode_error_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("broken.jpg");
        std::fs::write(&p, b"\xFF\xD8\xFF\xE0 not really a jpeg").unwrap();
        let e = decode(&p).unwrap_err().to_string();
        assert!(e.contains("broken.jpg"), "{e}");
    }
}
