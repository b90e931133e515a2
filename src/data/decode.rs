//! Decoding and resizing: image files to 8-bit planes of `size x size` pixels.
//!
//! The deterministic half of the image pipeline ([`super::augment`] does the random half):
//! JPEGs are decoded by zune-jpeg directly (other formats by the image crate), refused when larger
//! than [`MAX_PIXELS`] or truncated, then resized without cropping by a SIMD bilinear filter into
//! one plane (grey, also RGB files whose pixels all have R = G = B) or three. The image cache
//! ([`super::cache`]) stores exactly the output of [`resized_planes`].
use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::DynamicImage;

/// Images larger than this many pixels are refused (a decompression-bomb guard): 12,000 x 12,000.
pub const MAX_PIXELS: u64 = 144_000_000;

/// Decoding/augmentation failure of one image.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("cannot decode image {path}: {reason}")]
    Decode { path: PathBuf, reason: String },
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
    pub(crate) fn gray_plane(&self) -> Option<RawImage> {
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
pub(crate) fn resized_planes(raw: &RawImage, s: u32) -> Vec<Vec<u8>> {
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

/// Small generated images for the tests of the pipeline's parts.
#[cfg(test)]
pub(crate) mod test_images {
    use std::path::{Path, PathBuf};

    use super::RawImage;

    pub(crate) fn rgb_pattern(w: u32, h: u32) -> RawImage {
        let data = (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w, i / w);
                [(x * 255 / w.max(2)) as u8, (y * 255 / h.max(2)) as u8, ((x * 37 + y * 91) % 256) as u8]
            })
            .collect();
        RawImage { width: w, height: h, channels: 3, data }
    }

    pub(crate) fn max_abs_diff(a: &[Vec<u8>], b: &[Vec<u8>]) -> i32 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).flat_map(|(p, q)| p.iter().zip(q).map(|(&x, &y)| (x as i32 - y as i32).abs())).max().unwrap_or(0)
    }

    pub(crate) fn write_test_images(dir: &Path) -> Vec<PathBuf> {
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
}

#[cfg(test)]
mod tests {
    use super::test_images::*;
    use super::*;

    #[test]
    fn decode_error_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("broken.jpg");
        std::fs::write(&p, b"\xFF\xD8\xFF\xE0 not really a jpeg").unwrap();
        let e = decode(&p).unwrap_err().to_string();
        assert!(e.contains("broken.jpg"), "{e}");
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
}
