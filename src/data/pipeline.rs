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

use super::cache::{CacheError, ImageCache};

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
    pub fn finish_planes(&self, planes: &[Vec<u8>], rng: &mut ChaCha8Rng, out: &mut [f32]) {
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
    /// The image as one grey channel when it is RGB with R = G = B everywhere; `None` otherwise
    /// (also for images that are already one channel).
    pub fn gray_plane(&self) -> Option<RawImage> {
        if self.channels != 3 || !self.data.chunks_exact(3).all(|p| p[0] == p[1] && p[1] == p[2]) {
            return None;
        }
        let data = self.data.chunks_exact(3).map(|p| p[0]).collect();
        Some(RawImage { width: self.width, height: self.height, channels: 1, data })
    }

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
/// JPEGs take the fast path: zune-jpeg (the image crate's own JPEG decoder, without the
/// `DynamicImage` detour); with `min_size = Some(s)` and a file at least `2s` on both sides,
/// jpeg-decoder with DCT scaling instead, so the result may be smaller than the file but never
/// smaller than `s x s` (measured, not used by [`Pipeline::load_into`]: see BENCHMARKS.md).
/// A JPEG without its end-of-image marker is refused ([`jpeg_complete`]). Other formats, and
/// JPEGs the fast decoders refuse, go through [`decode`] (the image crate), whose error is the
/// one reported.
pub fn decode_raw(path: &Path, min_size: Option<u32>) -> Result<RawImage, PipelineError> {
    let err = |reason: String| PipelineError::Decode { path: path.to_path_buf(), reason };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        jpeg_complete(&bytes).map_err(err)?;
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

/// A JPEG cut short has no end-of-image marker (FF D9) after its last start-of-scan (FF DA); the
/// decoders would fill the missing part grey without an error. (Inside entropy-coded data an FF
/// byte is always followed by 00 or a restart marker, so FF D9 there is the real end.) Scans
/// back from the end, so a complete file costs a few bytes.
pub fn jpeg_complete(bytes: &[u8]) -> Result<(), String> {
    match bytes.windows(2).rev().find(|w| w[0] == 0xFF && (w[1] == 0xD9 || w[1] == 0xDA)) {
        Some(w) if w[1] == 0xDA => Err("truncated JPEG (no end-of-image marker after the last scan)".into()),
        _ => Ok(()),
    }
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

/// The deterministic half of the pipeline: resize to `s x s`, as one plane when the image is grey
/// (also an RGB image with R = G = B everywhere), else three. The image cache stores exactly this.
pub fn resized_planes(raw: &RawImage, s: u32) -> Vec<Vec<u8>> {
    match raw.gray_plane() {
        Some(gray) => resize_planes(&gray, s),
        None => resize_planes(raw, s),
    }
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
    let reader = || image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| err(e.to_string()));
    if let Some(e) = reader()?.into_dimensions().ok().and_then(|(w, h)| too_big(w as u64, h as u64)) {
        return Err(err(e)); // the same limit as the JPEG fast path and Dataset::open, stated
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        jpeg_complete(bytes).map_err(err)?;
    }
    let mut reader = reader()?;
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

/// A batch of images ready for the model.
#[derive(Debug)]
pub struct Batch {
    /// Dataset indices of the images, in batch order.
    pub indices: Vec<usize>,
    /// `[B, 3, S, S]` row-major.
    pub images: Vec<f32>,
}

/// Where a loader's images come from: their files, or an [`ImageCache`] of them already decoded
/// and resized (same output, bit for bit; only augmentation and normalisation are left to do).
#[derive(Debug, Clone)]
pub struct ImageSource {
    pub paths: Arc<Vec<PathBuf>>,
    /// The cache and each path's entry in it.
    cache: Option<(Arc<ImageCache>, Arc<Vec<usize>>)>,
}

impl From<Arc<Vec<PathBuf>>> for ImageSource {
    fn from(paths: Arc<Vec<PathBuf>>) -> ImageSource {
        ImageSource { paths, cache: None }
    }
}

impl ImageSource {
    /// Read `paths` from `cache`, which must hold every one of them, unchanged, at `size`.
    pub fn cached(paths: Arc<Vec<PathBuf>>, cache: Arc<ImageCache>, size: u32) -> Result<ImageSource, CacheError> {
        let entries = cache.resolve(&paths, size)?;
        Ok(ImageSource { paths, cache: Some((cache, Arc::new(entries))) })
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Image `i` through `pipe` into `out`.
    fn load_into(&self, pipe: &Pipeline, i: usize, rng: &mut ChaCha8Rng, out: &mut [f32]) -> Result<(), PipelineError> {
        match &self.cache {
            None => pipe.load_into(&self.paths[i], rng, out),
            Some((cache, entries)) => {
                let planes = cache.planes(entries[i]).map_err(|e| PipelineError::Decode { path: self.paths[i].clone(), reason: e.to_string() })?;
                pipe.finish_planes(&planes, rng, out);
                Ok(())
            }
        }
    }
}

/// Load the images at `indices` in parallel into one batch buffer.
pub fn load_batch(pipe: &Pipeline, source: &ImageSource, indices: &[usize], seed: u64, epoch: u64) -> Result<Batch, PipelineError> {
    let len = pipe.image_len();
    let mut images = vec![0f32; indices.len() * len];
    images.par_chunks_mut(len).zip(indices.par_iter()).try_for_each(|(out, &i)| {
        let mut rng = image_rng(seed, epoch, i as u64);
        source.load_into(pipe, i, &mut rng, out)
    })?;
    Ok(Batch { indices: indices.to_vec(), images })
}

/// Batches of one epoch produced on a background thread, at most `prefetch` ahead.
pub struct Loader {
    inner: Prefetch<Batch>,
    pub n_batches: usize,
}

/// The items of an iterator, produced on a background thread at most `prefetch` ahead; stops after
/// the first error, which is still delivered.
struct Prefetch<T> {
    rx: Receiver<Result<T, PipelineError>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl<T: Send + 'static> Prefetch<T> {
    fn spawn(iter: impl Iterator<Item = Result<T, PipelineError>> + Send + 'static, prefetch: usize) -> Prefetch<T> {
        let (tx, rx) = sync_channel(prefetch.max(1));
        let handle = std::thread::spawn(move || {
            for item in iter {
                let stop = item.is_err();
                if tx.send(item).is_err() || stop {
                    return;
                }
            }
        });
        Prefetch { rx, handle: Some(handle) }
    }

    fn next_item(&mut self) -> Option<Result<T, PipelineError>> {
        match self.rx.recv() {
            Ok(item) => Some(item),
            Err(_) => {
                if let Some(h) = self.handle.take() {
                    let _ = h.join();
                }
                None
            }
        }
    }
}

impl Loader {
    /// Start loading `order` in chunks of `batch_size`.
    pub fn start(pipe: Pipeline, source: impl Into<ImageSource>, order: Vec<usize>, batch_size: usize, seed: u64, epoch: u64, prefetch: usize) -> Loader {
        let source: ImageSource = source.into();
        let bs = batch_size.max(1);
        let n_batches = order.len().div_ceil(bs);
        let batches = (0..n_batches).map(move |k| load_batch(&pipe, &source, &order[k * bs..((k + 1) * bs).min(order.len())], seed, epoch));
        Loader { inner: Prefetch::spawn(batches, prefetch), n_batches }
    }
}

impl Iterator for Loader {
    type Item = Result<Batch, PipelineError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next_item()
    }
}

/// Batches as `[B, 3, S, S]` f32 host tensors, made on a staging thread from a [`Loader`]:
/// pinned (page-locked) when `device` is CUDA, so the training thread only issues a
/// non-blocking copy, `x.to_device_(device, Kind::Float, true, false)`, which is what
/// `DataLoader(pin_memory=True)` + `.to(device, non_blocking=True)` do in PyTorch.
///
/// On an H200 (ResNet50, 224 px, batch 128, fp32) building the tensor and copying it from
/// pageable memory on the training thread took ~40 ms of a ~115 ms step; with this, ~2 ms
/// (BENCHMARKS.md). On CPU devices the tensors are plain (no pinning) and nothing is gained.
pub struct TensorLoader {
    inner: Prefetch<(Vec<usize>, tch::Tensor)>,
    pub n_batches: usize,
}

impl TensorLoader {
    /// Stage `loader`'s batches of `size x size` images for `device`, at most `prefetch` ahead.
    pub fn start(loader: Loader, size: u32, device: tch::Device, prefetch: usize) -> TensorLoader {
        let n_batches = loader.n_batches;
        let s = size as i64;
        let tensors = loader.map(move |b| {
            b.map(|b| {
                let t = tch::Tensor::from_slice(&b.images).view([b.indices.len() as i64, 3, s, s]);
                let t = if device.is_cuda() { t.pin_memory(device) } else { t };
                (b.indices, t)
            })
        });
        TensorLoader { inner: Prefetch::spawn(tensors, prefetch), n_batches }
    }
}

impl Iterator for TensorLoader {
    type Item = Result<(Vec<usize>, tch::Tensor), PipelineError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next_item()
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

    fn rgb_pattern(w: u32, h: u32) -> RawImage {
        let data = (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w, i / w);
                [(x * 255 / w.max(2)) as u8, (y * 255 / h.max(2)) as u8, ((x * 37 + y * 91) % 256) as u8]
            })
            .collect();
        RawImage { width: w, height: h, channels: 3, data }
    }

    fn max_abs_diff(a: &[Vec<u8>], b: &[Vec<u8>]) -> i32 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).flat_map(|(p, q)| p.iter().zip(q).map(|(&x, &y)| (x as i32 - y as i32).abs())).max().unwrap_or(0)
    }

    #[test]
    fn fast_resize_matches_reference_triangle_within_one_level() {
        // Down- and up-scaling, non-square, RGB and grayscale.
        for (w, h, s) in [(37, 23, 7), (64, 64, 16), (13, 9, 20), (50, 31, 31), (8, 8, 8)] {
            let rgb = rgb_pattern(w, h);
            let d = max_abs_diff(&resize_planes(&rgb, s), &resize_planes_reference(&rgb, s));
            assert!(d <= 1, "rgb {w}x{h} -> {s}: max diff {d}");
            let gray = RawImage { channels: 1, data: rgb.data.iter().step_by(3).copied().collect(), ..rgb };
            let d = max_abs_diff(&resize_planes(&gray, s), &resize_planes_reference(&gray, s));
            assert!(d <= 1, "gray {w}x{h} -> {s}: max diff {d}");
        }
    }

    #[test]
    fn resize_of_a_hand_made_image() {
        // 4x1 -> 2x1 with a triangle filter widened to 2 px: output 0 sits at input x = 0.5 and
        // weighs x=0,1 at 0.75/2 each and x=2 at 0.25/2 (x=-1 clamps onto x=0 in a box of weights
        // that are renormalised): out0 = (0*0.75 + 40*0.75 + 80*0.25) / 1.75 = 28.57 -> 29.
        // Same for the right side by symmetry: out1 = (40*0.25 + 80*0.75 + 120*0.75) / 1.75 = 91.43 -> 91.
        // Vertically the single row is kept. Computed by hand, checked against image's Triangle.
        let raw = RawImage { width: 4, height: 2, channels: 1, data: vec![0, 40, 80, 120, 0, 40, 80, 120] };
        let want = vec![vec![29u8, 91, 29, 91]];
        assert_eq!(resize_planes_reference(&raw, 2), want);
        assert!(max_abs_diff(&resize_planes(&raw, 2), &want) <= 1);
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

    fn write_test_images(dir: &Path) -> Vec<PathBuf> {
        // Grayscale and RGB JPEGs, a PNG, and a large JPEG that takes the DCT-scaled path.
        let mut paths = Vec::new();
        for i in 0..6u32 {
            let (w, h) = (40 + 7 * i, 30 + 5 * i);
            let p = dir.join(format!("img{i}.{}", if i == 5 { "png" } else { "jpg" }));
            if i % 2 == 0 {
                image::GrayImage::from_fn(w, h, |x, y| image::Luma([((x * 5 + y * 3 + i) % 256) as u8])).save(&p).unwrap();
            } else {
                image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 6) as u8, (y * 7) as u8, ((x + y + i) * 3) as u8])).save(&p).unwrap();
            }
            paths.push(p);
        }
        let p = dir.join("big.jpg");
        image::GrayImage::from_fn(160, 130, |x, y| image::Luma([((x / 4 * 13 + y / 3 * 7) % 256) as u8])).save(&p).unwrap();
        paths.push(p);
        paths
    }

    #[test]
    fn load_batch_is_deterministic_across_runs_and_thread_counts() {
        let dir = tempfile::tempdir().unwrap();
        let paths = write_test_images(dir.path());
        let source = ImageSource::from(Arc::new(paths.clone()));
        let pipe = Pipeline { size: 16, augment: Some(AugmentConfig::default()) };
        let idx: Vec<usize> = vec![6, 0, 3, 1, 5, 2, 4];
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| load_batch(&pipe, &source, &idx, 7, 2).unwrap())
        };
        let a = run(1);
        let b = run(1);
        let c = run(3);
        assert_eq!(a.indices, idx);
        assert_eq!(a.images.len(), idx.len() * pipe.image_len());
        assert!(a.images.iter().all(|v| v.is_finite()));
        assert_eq!(a.images, b.images, "same seed, same thread count");
        assert_eq!(a.images, c.images, "same seed, other thread count");
        // another epoch draws other augmentations
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let d = pool.install(|| load_batch(&pipe, &source, &idx, 7, 3).unwrap());
        assert_ne!(a.images, d.images);
        // an image's slot holds exactly what load_into makes of it
        let len = pipe.image_len();
        let mut one = vec![0f32; len];
        pipe.load_into(&paths[3], &mut image_rng(7, 2, 3), &mut one).unwrap();
        assert_eq!(&a.images[2 * len..3 * len], &one[..]);
    }

    #[test]
    fn loader_yields_the_same_batches_as_load_batch() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Arc::new(write_test_images(dir.path()));
        let pipe = Pipeline { size: 12, augment: Some(AugmentConfig::default()) };
        let order: Vec<usize> = vec![3, 1, 4, 0, 6, 5, 2];
        let got: Vec<Batch> = Loader::start(pipe, paths.clone(), order.clone(), 3, 11, 1, 2).map(|b| b.unwrap()).collect();
        assert_eq!(got.len(), 3);
        for (b, chunk) in got.iter().zip(order.chunks(3)) {
            let want = load_batch(&pipe, &paths.clone().into(), chunk, 11, 1).unwrap();
            assert_eq!(b.indices, chunk);
            assert_eq!(b.images, want.images);
        }
    }

    #[test]
    fn fast_decode_matches_the_image_crate() {
        let dir = tempfile::tempdir().unwrap();
        let paths = write_test_images(dir.path());
        for p in &paths {
            let want = RawImage::from_dynamic(&decode(p).unwrap());
            let got = decode_raw(p, None).unwrap();
            assert_eq!((got.width, got.height, got.channels), (want.width, want.height, want.channels), "{}", p.display());
            // zune-jpeg is the image crate's own JPEG decoder: same bytes
            assert_eq!(got.data, want.data, "{}", p.display());
        }
    }

    #[test]
    fn dct_scaled_decode_covers_the_target_and_stays_roughly_close() {
        // 160x130 -> 32: decoded at 1/4 scale (40x33, >= 32 on both sides), then resized.
        // (Not used by load_into: it is a benchmark candidate. On this smooth-but-busy pattern
        // the 2x2 IDCT at 1/4 scale differs by ~2.5 grey levels on average.)
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.jpg");
        image::GrayImage::from_fn(160, 130, |x, y| image::Luma([(100.0 + 80.0 * ((x as f32 / 9.0).sin() * (y as f32 / 13.0).cos())) as u8]))
            .save(&p)
            .unwrap();
        let scaled = decode_raw(&p, Some(32)).unwrap();
        assert!(scaled.width >= 32 && scaled.height >= 32 && scaled.width < 160, "{}x{}", scaled.width, scaled.height);
        let full = RawImage::from_dynamic(&decode(&p).unwrap());
        let a = resize_planes(&scaled, 32);
        let b = resize_planes_reference(&full, 32);
        let mean = a[0].iter().zip(&b[0]).map(|(&x, &y)| (x as f64 - y as f64).abs()).sum::<f64>() / a[0].len() as f64;
        assert!(mean < 4.0, "mean abs difference {mean} grey levels");
    }

    #[test]
    fn oversized_images_are_refused_before_decoding() {
        assert!(too_big(12_000, 12_000).is_none());
        assert!(too_big(12_001, 12_000).is_some());
    }

    #[test]
    fn tensor_loader_yields_the_loader_batches_as_tensors() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Arc::new(write_test_images(dir.path()));
        let pipe = Pipeline { size: 8, augment: Some(AugmentConfig::default()) };
        let order: Vec<usize> = vec![2, 0, 5, 1, 6];
        let loader = Loader::start(pipe, paths.clone(), order.clone(), 2, 4, 0, 1);
        let got: Vec<(Vec<usize>, tch::Tensor)> = TensorLoader::start(loader, 8, tch::Device::Cpu, 1).map(|b| b.unwrap()).collect();
        assert_eq!(got.len(), 3);
        for ((idx, t), chunk) in got.iter().zip(order.chunks(2)) {
            assert_eq!(idx, chunk);
            assert_eq!(t.size(), vec![chunk.len() as i64, 3, 8, 8]);
            let want = load_batch(&pipe, &paths.clone().into(), chunk, 4, 0).unwrap().images;
            assert_eq!(Vec::<f32>::try_from(t.flatten(0, -1)).unwrap(), want);
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
