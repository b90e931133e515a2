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
    ///
    /// The fast path: JPEGs are decoded by zune-jpeg, or, when the file is at least twice the
    /// target size on both sides, by jpeg-decoder with DCT scaling to the smallest of 1/2, 1/4,
    /// 1/8 that still covers `size x size` (as Pillow's `draft` does); then a SIMD resize
    /// (fast_image_resize, bilinear = image's `Triangle`). See [`decode_raw`] and [`resize_planes`].
    pub fn load_into(&self, path: &Path, rng: &mut ChaCha8Rng, out: &mut [f32]) -> Result<(), PipelineError> {
        let raw = decode_raw(path, Some(self.size))?;
        self.process_raw_into(&raw, rng, out);
        Ok(())
    }

    /// Resize, augment and normalise an already decoded image.
    pub fn process_into(&self, img: &DynamicImage, rng: &mut ChaCha8Rng, out: &mut [f32]) {
        self.process_raw_into(&RawImage::from_dynamic(img), rng, out);
    }

    /// Resize, augment and normalise a decoded [`RawImage`].
    pub fn process_raw_into(&self, raw: &RawImage, rng: &mut ChaCha8Rng, out: &mut [f32]) {
        let planes = resize_planes(raw, self.size);
        self.finish_planes(&planes, rng, out);
    }

    /// Augment and normalise `size x size` u8 planes (1 = grayscale, replicated; or 3 = RGB).
    fn finish_planes(&self, planes: &[Vec<u8>], rng: &mut ChaCha8Rng, out: &mut [f32]) {
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
                // Warp each distinct plane once (a grayscale plane serves all three channels).
                let srcs: Vec<&[u8]> = planes.iter().map(|p| p.as_slice()).collect();
                let (first, rest) = out.split_at_mut(n);
                let (second, third) = rest.split_at_mut(n);
                let mut dsts: [&mut [f32]; 3] = [first, second, &mut third[..n]];
                let k = srcs.len();
                t.warp_planes(&srcs, s, &mut dsts[..k]);
                if k == 1 {
                    let (head, tail) = dsts.split_at_mut(1);
                    tail[0].copy_from_slice(head[0]);
                    tail[1].copy_from_slice(head[0]);
                }
                for (ch, d) in dsts.iter_mut().enumerate() {
                    let (a, b) = (scale(ch), bias(ch));
                    d.iter_mut().for_each(|v| *v = *v * a + b);
                }
            }
        }
    }
}

/// A decoded image as interleaved 8-bit pixels: 1 channel (grayscale) or 3 (RGB).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawImage {
    pub width: u32,
    pub height: u32,
    /// 1 or 3.
    pub channels: u8,
    /// `height * width * channels` bytes, row-major.
    pub data: Vec<u8>,
}

impl RawImage {
    /// Grayscale images (with or without alpha, 8 or 16 bit) become 1 channel, everything else RGB.
    pub fn from_dynamic(img: &DynamicImage) -> RawImage {
        let gray = matches!(
            img.color(),
            image::ColorType::L8 | image::ColorType::La8 | image::ColorType::L16 | image::ColorType::La16
        );
        let (width, height) = (img.width(), img.height());
        if gray {
            let data = match img {
                DynamicImage::ImageLuma8(g) => g.as_raw().clone(),
                _ => img.to_luma8().into_raw(),
            };
            RawImage { width, height, channels: 1, data }
        } else {
            let data = match img {
                DynamicImage::ImageRgb8(c) => c.as_raw().clone(),
                _ => img.to_rgb8().into_raw(),
            };
            RawImage { width, height, channels: 3, data }
        }
    }
}

/// Decode an image file into a [`RawImage`], refusing absurd dimensions before allocating.
///
/// JPEGs take the fast path (zune-jpeg; with `min_size = Some(s)` and a file at least `2s` on
/// both sides, jpeg-decoder with DCT scaling, so the result may be smaller than the file but
/// never smaller than `s x s`). Other formats, and JPEGs the fast decoders refuse, go through
/// [`decode`] (the image crate), whose error is the one reported.
pub fn decode_raw(path: &Path, min_size: Option<u32>) -> Result<RawImage, PipelineError> {
    let err = |reason: String| PipelineError::Decode { path: path.to_path_buf(), reason };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        let fast = match min_size {
            Some(s) => decode_jpeg_scaled(&bytes, s),
            None => None,
        };
        if let Some(r) = fast.or_else(|| decode_jpeg_zune(&bytes)) {
            return r.map_err(err);
        }
    }
    Ok(RawImage::from_dynamic(&decode_bytes(path, &bytes)?))
}

fn too_big(w: u64, h: u64) -> Option<String> {
    (w * h > MAX_PIXELS).then(|| format!("{w}x{h} pixels is more than the {MAX_PIXELS} allowed"))
}

/// zune-jpeg decode to Luma or RGB. `None`: not handled here (fall back to the image crate).
pub fn decode_jpeg_zune(bytes: &[u8]) -> Option<Result<RawImage, String>> {
    use zune_core::colorspace::ColorSpace;
    let opts = zune_core::options::DecoderOptions::default().set_strict_mode(false).set_max_width(65535).set_max_height(65535);
    let mut d = zune_jpeg::JpegDecoder::new_with_options(zune_core::bytestream::ZCursor::new(bytes), opts);
    d.decode_headers().ok()?;
    let (w, h) = d.dimensions()?;
    if let Some(e) = too_big(w as u64, h as u64) {
        return Some(Err(e));
    }
    let (out, channels) = match d.input_colorspace()? {
        ColorSpace::Luma | ColorSpace::LumaA => (ColorSpace::Luma, 1),
        ColorSpace::RGB | ColorSpace::RGBA | ColorSpace::YCbCr => (ColorSpace::RGB, 3),
        _ => return None, // CMYK, YCCK, ...: let the image crate decide
    };
    d.set_options(d.options().jpeg_set_out_colorspace(out));
    let data = d.decode().ok()?;
    (data.len() == w * h * channels as usize).then_some(Ok(RawImage { width: w as u32, height: h as u32, channels, data }))
}

/// jpeg-decoder with DCT scaling when the image is at least `2 * min_size` on both sides.
/// `None`: not worth it, or not handled here.
pub fn decode_jpeg_scaled(bytes: &[u8], min_size: u32) -> Option<Result<RawImage, String>> {
    let mut d = jpeg_decoder::Decoder::new(std::io::Cursor::new(bytes));
    d.read_info().ok()?;
    let info = d.info()?;
    if let Some(e) = too_big(info.width as u64, info.height as u64) {
        return Some(Err(e));
    }
    let channels = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => 1,
        jpeg_decoder::PixelFormat::RGB24 => 3,
        _ => return None,
    };
    if (info.width as u32) < 2 * min_size || (info.height as u32) < 2 * min_size || min_size > u16::MAX as u32 {
        return None;
    }
    let (w, h) = d.scale(min_size as u16, min_size as u16).ok()?;
    let data = d.decode().ok()?;
    (data.len() == w as usize * h as usize * channels as usize)
        .then_some(Ok(RawImage { width: w as u32, height: h as u32, channels, data }))
}

thread_local! {
    static RESIZER: std::cell::RefCell<fast_image_resize::Resizer> = std::cell::RefCell::new(fast_image_resize::Resizer::new());
}

/// Resize to `s x s` (no crop) with a SIMD bilinear filter (fast_image_resize, `Convolution(Bilinear)`,
/// which is the image crate's `Triangle`: support 1 px, widened by the scale factor when
/// shrinking) and split into planes: one for grayscale, three for RGB. Within ±1 grey level of
/// [`resize_planes_reference`].
pub fn resize_planes(raw: &RawImage, s: u32) -> Vec<Vec<u8>> {
    use fast_image_resize::{images::Image, images::ImageRef, FilterType as F, PixelType, ResizeAlg, ResizeOptions};
    let pt = if raw.channels == 1 { PixelType::U8 } else { PixelType::U8x3 };
    let resized = if raw.width == s && raw.height == s {
        raw.data.clone()
    } else {
        let src = ImageRef::new(raw.width, raw.height, &raw.data, pt).expect("RawImage buffer matches its size");
        let mut dst = Image::new(s, s, pt);
        let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(F::Bilinear));
        RESIZER.with(|r| r.borrow_mut().resize(&src, &mut dst, &opts)).expect("same pixel type, non-empty sizes");
        dst.into_vec()
    };
    split_planes(resized, raw.channels)
}

/// The reference resize: `image::imageops::resize(.., FilterType::Triangle)`, split into planes.
/// Slower; kept for tests and benchmarks.
pub fn resize_planes_reference(raw: &RawImage, s: u32) -> Vec<Vec<u8>> {
    let resized = if raw.channels == 1 {
        let g = image::GrayImage::from_raw(raw.width, raw.height, raw.data.clone()).expect("size matches");
        image::imageops::resize(&g, s, s, FilterType::Triangle).into_raw()
    } else {
        let c = image::RgbImage::from_raw(raw.width, raw.height, raw.data.clone()).expect("size matches");
        image::imageops::resize(&c, s, s, FilterType::Triangle).into_raw()
    };
    split_planes(resized, raw.channels)
}

fn split_planes(interleaved: Vec<u8>, channels: u8) -> Vec<Vec<u8>> {
    if channels == 1 {
        return vec![interleaved];
    }
    let n = interleaved.len() / 3;
    let mut planes = vec![vec![0u8; n]; 3];
    for (i, px) in interleaved.chunks_exact(3).enumerate() {
        planes[0][i] = px[0];
        planes[1][i] = px[1];
        planes[2][i] = px[2];
    }
    planes
}

/// Decode an image file, refusing absurd dimensions before allocating.
pub fn decode(path: &Path) -> Result<DynamicImage, PipelineError> {
    let err = |reason: String| PipelineError::Decode { path: path.to_path_buf(), reason };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    decode_bytes(path, &bytes)
}

fn decode_bytes(path: &Path, bytes: &[u8]) -> Result<DynamicImage, PipelineError> {
    let err = |reason: String| PipelineError::Decode { path: path.to_path_buf(), reason };
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| err(e.to_string()))?;
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
        self.warp_planes(&[src], s, &mut [out]);
    }

    /// [`warp`](Self::warp) several planes with one map (the sample positions are computed once).
    pub fn warp_planes(&self, srcs: &[&[u8]], s: usize, outs: &mut [&mut [f32]]) {
        assert_eq!(srcs.len(), outs.len(), "one output per plane");
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
                let (i00, i10, i01, i11) = (y0 * s + x0, y0 * s + x1, y1 * s + x0, y1 * s + x1);
                for (src, out) in srcs.iter().zip(outs.iter_mut()) {
                    let top = src[i00] as f32 * (1.0 - fx) + src[i10] as f32 * fx;
                    let bot = src[i01] as f32 * (1.0 - fx) + src[i11] as f32 * fx;
                    out[y * s + x] = top * (1.0 - fy) + bot * fy;
                }
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
