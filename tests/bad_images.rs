//! Awkward and broken image files: truncated JPEG, zero-byte file, PNG named .jpg, 16-bit
//! grayscale PNG, CMYK JPEG, palette PNG, huge dimensions, animated GIF. Each is decoded
//! correctly, or refused with an error naming the file and, under `skip_bad`, counted in the
//! skip report; never a panic, never silently lost.
//!
//! Every file is generated here: ordinary images with the `image` crate; the ones it cannot
//! write (palette PNG, CMYK JPEG, headers claiming huge sizes, animated GIF) byte by byte with
//! the small writers below (PNG chunks with CRC-32 and stored-deflate zlib; a baseline JPEG of
//! flat 8x8 blocks, whose DCT is just the DC term; GIF89a with the NETSCAPE looping extension).
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use conceptree::data::augment::{image_rng, Pipeline};
use conceptree::data::dataset::Dataset;
use conceptree::data::decode::{decode, MAX_PIXELS};
use conceptree::data::images::ImageDir;
use conceptree::data::labels::LabelRow;
use image::{DynamicImage, ImageBuffer, Luma, Rgb, RgbImage};

mod common;

use common::{bin, s};

// ---------------------------------------------------------------- PNG writer

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in bytes {
        a = (a + x as u32) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// zlib stream of stored (uncompressed) deflate blocks.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let chunks: Vec<&[u8]> = if data.is_empty() { vec![&[][..]] } else { data.chunks(65535).collect() };
    for (i, c) in chunks.iter().enumerate() {
        out.push((i + 1 == chunks.len()) as u8);
        out.extend_from_slice(&(c.len() as u16).to_le_bytes());
        out.extend_from_slice(&(!(c.len() as u16)).to_le_bytes());
        out.extend_from_slice(c);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
}

/// A PNG with the given IHDR fields, extra chunks before IDAT, and raw (filtered) scanlines.
fn png(width: u32, height: u32, bit_depth: u8, color_type: u8, extra: &[(&[u8; 4], Vec<u8>)], scanlines: &[u8]) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[bit_depth, color_type, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    for (kind, data) in extra {
        png_chunk(&mut out, kind, data);
    }
    png_chunk(&mut out, b"IDAT", &zlib_stored(scanlines));
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// 4-bit palette PNG, 5 x 2 (odd width: the last byte of a row is half padding).
const PALETTE: [[u8; 3]; 3] = [[255, 0, 0], [0, 255, 0], [10, 20, 30]];
const PALETTE_INDICES: [[u8; 5]; 2] = [[0, 1, 2, 1, 0], [2, 2, 1, 0, 1]];

fn palette_png() -> Vec<u8> {
    let mut scan = Vec::new();
    for row in PALETTE_INDICES {
        scan.push(0); // filter: none
        for pair in row.chunks(2) {
            scan.push(pair[0] << 4 | pair.get(1).copied().unwrap_or(0));
        }
    }
    png(5, 2, 4, 3, &[(b"PLTE", PALETTE.concat())], &scan)
}

/// A valid PNG header claiming `w x h` 8-bit gray pixels, followed by one row of data only.
fn huge_png(w: u32, h: u32) -> Vec<u8> {
    png(w, h, 8, 0, &[], &[0, 0, 0, 0])
}

// ---------------------------------------------------------------- JPEG writer

struct Bits {
    out: Vec<u8>,
    acc: u32,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u32, len: u32) {
        for i in (0..len).rev() {
            self.acc = self.acc << 1 | (value >> i) & 1;
            self.n += 1;
            if self.n == 8 {
                let byte = self.acc as u8;
                self.out.push(byte);
                if byte == 0xFF {
                    self.out.push(0); // byte stuffing
                }
                self.acc = 0;
                self.n = 0;
            }
        }
    }
    fn finish(mut self) -> Vec<u8> {
        while self.n != 0 {
            self.put(1, 1);
        }
        self.out
    }
}

fn marker(out: &mut Vec<u8>, m: u8, data: &[u8]) {
    out.extend_from_slice(&[0xFF, m]);
    out.extend_from_slice(&((data.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(data);
}

/// A baseline JPEG of `w x h` (both ≤ 8 for real data; larger only for header tests) whose
/// components are flat 8x8 blocks of the given sample values, quantisation 1 and one Huffman
/// table pair: DC categories 0..11 as 4-bit codes, AC only EOB (code `0`). With `adobe`, an
/// APP14 "Adobe" marker with transform 0 (CMYK, no colour transform) is written.
fn flat_jpeg(w: u16, h: u16, samples: &[u8], adobe: bool) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8];
    if adobe {
        marker(&mut out, 0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x00");
    }
    let mut dqt = vec![0u8];
    dqt.extend_from_slice(&[1u8; 64]);
    marker(&mut out, 0xDB, &dqt);
    let mut sof = vec![8];
    sof.extend_from_slice(&h.to_be_bytes());
    sof.extend_from_slice(&w.to_be_bytes());
    sof.push(samples.len() as u8);
    for c in 0..samples.len() {
        sof.extend_from_slice(&[c as u8 + 1, 0x11, 0]);
    }
    marker(&mut out, 0xC0, &sof);
    let mut dht_dc = vec![0x00];
    let mut counts = [0u8; 16];
    counts[3] = 12;
    dht_dc.extend_from_slice(&counts);
    dht_dc.extend(0u8..12);
    marker(&mut out, 0xC4, &dht_dc);
    let mut dht_ac = vec![0x10];
    let mut counts = [0u8; 16];
    counts[0] = 1;
    dht_ac.extend_from_slice(&counts);
    dht_ac.push(0x00);
    marker(&mut out, 0xC4, &dht_ac);
    let mut sos = vec![samples.len() as u8];
    for c in 0..samples.len() {
        sos.extend_from_slice(&[c as u8 + 1, 0x00]);
    }
    sos.extend_from_slice(&[0, 63, 0]);
    marker(&mut out, 0xDA, &sos);
    // one MCU per 8x8 block; every block flat, so each component's DC difference is 0 after the first
    let mcus = (w as usize).div_ceil(8) * (h as usize).div_ceil(8);
    let mut bits = Bits { out: vec![], acc: 0, n: 0 };
    for m in 0..mcus {
        for &s in samples {
            // flat block of value s: DC coefficient (s - 128) * 8 (IDCT of DC alone is F/8)
            let diff = if m == 0 { (s as i32 - 128) * 8 } else { 0 };
            let cat = 32 - diff.unsigned_abs().leading_zeros();
            bits.put(cat, 4);
            let v = if diff >= 0 { diff } else { diff + (1 << cat) - 1 };
            bits.put(v as u32, cat);
            bits.put(0, 1); // EOB
        }
    }
    out.extend(bits.finish());
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

// ---------------------------------------------------------------- GIF writer

/// A two-frame, looping 1 x 1 GIF89a (black, then white).
fn animated_gif() -> Vec<u8> {
    let mut g = b"GIF89a".to_vec();
    g.extend_from_slice(&[1, 0, 1, 0, 0x80, 0, 0]); // 1x1, global table of 2 colours
    g.extend_from_slice(&[0, 0, 0, 255, 255, 255]);
    g.extend_from_slice(b"\x21\xFF\x0BNETSCAPE2.0\x03\x01\x00\x00\x00");
    for lzw in [[0x44u8, 0x01], [0x4C, 0x01]] {
        g.extend_from_slice(&[0x21, 0xF9, 0x04, 0x00, 0x0A, 0x00, 0x00, 0x00]); // 0.1 s per frame
        g.extend_from_slice(&[0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0]);
        g.extend_from_slice(&[0x02, 0x02, lzw[0], lzw[1], 0x00]);
    }
    g.push(0x3B);
    g
}

// ---------------------------------------------------------------- fixtures

fn noise_rgb(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| Rgb([(x * 7 + y * 13) as u8, (x * y) as u8 ^ 0x5A, ((x + 3 * y) * 29) as u8]))
}

fn jpeg_bytes(img: &RgbImage) -> Vec<u8> {
    let mut buf = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, 90).encode_image(img).unwrap();
    buf
}

fn png_bytes(img: &DynamicImage) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png).unwrap();
    buf.into_inner()
}

/// 16-bit gray, 4 x 3, values k * 257 (exactly k in 8 bits) and the extremes.
fn gray16() -> ImageBuffer<Luma<u16>, Vec<u16>> {
    ImageBuffer::from_fn(4, 3, |x, y| Luma([if (x, y) == (3, 2) { 65535 } else { (x + 4 * y) as u16 * 20 * 257 }]))
}

const CMYK: [u8; 4] = [200, 100, 50, 200];

/// How a bad file should come out of `Dataset::open(skip_bad = true)`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Kept,
    Skipped(&'static str),
}

struct Case {
    id: &'static str,
    file: &'static str,
    bytes: Vec<u8>,
    expect: Expect,
}

/// `Dataset::open` only reads image headers, so a JPEG cut short after its header passes it;
/// the pipeline then refuses it mid-run (see `truncated_jpeg_is_refused_naming_it`). Until
/// `Dataset::open` also calls `pipeline::jpeg_complete`, the Dataset and end-to-end tests leave
/// the truncated case out, and `dataset_skips_truncated_jpeg` is ignored.
const DATASET_CHECKS_TRUNCATION: bool = true;

fn dataset_cases() -> Vec<Case> {
    cases().into_iter().filter(|c| DATASET_CHECKS_TRUNCATION || c.id != "truncated").collect()
}

fn cases() -> Vec<Case> {
    let ok = jpeg_bytes(&noise_rgb(40, 30));
    let mut truncated = jpeg_bytes(&noise_rgb(64, 64));
    truncated.truncate(truncated.len() / 2);
    vec![
        Case { id: "ok", file: "ok.jpg", bytes: ok, expect: Expect::Kept },
        Case { id: "zero", file: "zero.jpg", bytes: vec![], expect: Expect::Skipped("unreadable image") },
        Case { id: "truncated", file: "truncated.jpg", bytes: truncated, expect: Expect::Skipped("unreadable image") },
        Case {
            id: "png_as_jpg",
            file: "png_as_jpg.jpg",
            bytes: png_bytes(&DynamicImage::ImageRgb8(noise_rgb(9, 7))),
            expect: Expect::Kept,
        },
        Case { id: "gray16", file: "gray16.png", bytes: png_bytes(&DynamicImage::ImageLuma16(gray16())), expect: Expect::Kept },
        Case { id: "cmyk", file: "cmyk.jpg", bytes: flat_jpeg(8, 8, &CMYK, true), expect: Expect::Kept },
        Case { id: "palette", file: "palette.png", bytes: palette_png(), expect: Expect::Kept },
        Case { id: "huge", file: "huge.png", bytes: huge_png(50_000, 50_000), expect: Expect::Skipped("unreadable image") },
        Case { id: "huge_jpeg", file: "huge_jpeg.jpg", bytes: flat_jpeg(50_000, 50_000, &[128], false), expect: Expect::Skipped("unreadable image") },
        Case { id: "anim_as_jpg", file: "anim_as_jpg.jpg", bytes: animated_gif(), expect: Expect::Skipped("unreadable image") },
        // a .gif is not one of the extensions looked up: reported as missing, not lost
        Case { id: "anim", file: "anim.gif", bytes: animated_gif(), expect: Expect::Skipped("missing image") },
    ]
}

fn write_cases(dir: &Path) -> Vec<Case> {
    let cases = dataset_cases();
    for c in &cases {
        std::fs::write(dir.join(c.file), &c.bytes).unwrap();
    }
    cases
}

fn row(id: &str, line: usize) -> LabelRow {
    LabelRow::new(id, &["C0040405"], line)
}

fn decode_err(path: &Path) -> String {
    let e = match decode(path) {
        Ok(img) => panic!("{} decoded ({}x{} {:?}) but should be refused", path.display(), img.width(), img.height(), img.color()),
        Err(e) => e.to_string(),
    };
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(e.contains(name), "error does not name the file: {e}");
    e
}

/// The pipeline's own path (fast JPEG decoder, resize, normalise), as training uses it.
fn load(path: &Path, size: u32) -> Result<Vec<f32>, String> {
    let pipe = Pipeline { size, augment: None };
    let mut out = vec![0f32; pipe.image_len()];
    pipe.load_into(path, &mut image_rng(0, 0, 0), &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Undo the ImageNet normalisation of channel `ch`: back to 0..255.
fn denorm(v: f32, ch: usize) -> f32 {
    const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
    const STD: [f32; 3] = [0.229, 0.224, 0.225];
    (v * STD[ch] + MEAN[ch]) * 255.0
}

// ---------------------------------------------------------------- decode(), one case each

#[test]
fn zero_byte_file_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("zero.jpg");
    std::fs::write(&p, b"").unwrap();
    decode_err(&p);
    let e = load(&p, 8).unwrap_err();
    assert!(e.contains("zero.jpg"), "{e}");
}

#[test]
fn truncated_jpeg_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("truncated.jpg");
    let c = cases().into_iter().find(|c| c.id == "truncated").unwrap();
    std::fs::write(&p, &c.bytes).unwrap();
    decode_err(&p);
    let e = load(&p, 16).unwrap_err();
    assert!(e.contains("truncated.jpg"), "{e}");
}

#[test]
fn png_named_jpg_decodes_by_content() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("png_as_jpg.jpg");
    let img = noise_rgb(9, 7);
    std::fs::write(&p, png_bytes(&DynamicImage::ImageRgb8(img.clone()))).unwrap();
    let d = decode(&p).unwrap();
    assert_eq!(d.to_rgb8(), img, "lossless PNG must decode exactly");
    // the pipeline at the native size, no augmentation: exactly the pixels, normalised
    let (w, h) = (9, 7);
    let sq = tmp.path().join("sq.jpg");
    let img = noise_rgb(w, w);
    std::fs::write(&sq, png_bytes(&DynamicImage::ImageRgb8(img.clone()))).unwrap();
    let out = load(&sq, w).unwrap();
    let n = (w * w) as usize;
    for (i, px) in img.pixels().enumerate() {
        for ch in 0..3 {
            assert!((denorm(out[ch * n + i], ch) - px[ch] as f32).abs() < 0.01, "pixel {i} ch {ch}");
        }
    }
    let _ = h;
}

#[test]
fn gray16_png_keeps_its_values() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("gray16.png");
    let img = gray16();
    std::fs::write(&p, png_bytes(&DynamicImage::ImageLuma16(img.clone()))).unwrap();
    match decode(&p).unwrap() {
        DynamicImage::ImageLuma16(d) => assert_eq!(d, img),
        other => panic!("expected 16-bit gray, got {:?}", other.color()),
    }
    // pipeline: 8-bit gray replicated to 3 channels; k * 257 -> k exactly
    let sq = tmp.path().join("sq.png");
    let img: ImageBuffer<Luma<u16>, Vec<u16>> = ImageBuffer::from_fn(4, 4, |x, y| Luma([(x + 4 * y) as u16 * 17 * 257]));
    std::fs::write(&sq, png_bytes(&DynamicImage::ImageLuma16(img.clone()))).unwrap();
    let out = load(&sq, 4).unwrap();
    for (i, px) in img.pixels().enumerate() {
        for ch in 0..3 {
            let got = denorm(out[ch * 16 + i], ch);
            assert!((got - (px[0] / 257) as f32).abs() < 0.01, "pixel {i} ch {ch}: {got} vs {}", px[0] / 257);
        }
    }
}

#[test]
fn palette_png_is_expanded_to_rgb() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("palette.png");
    std::fs::write(&p, palette_png()).unwrap();
    let d = decode(&p).unwrap();
    assert_eq!((d.width(), d.height()), (5, 2));
    let rgb = d.to_rgb8();
    for (y, row) in PALETTE_INDICES.iter().enumerate() {
        for (x, &k) in row.iter().enumerate() {
            assert_eq!(rgb.get_pixel(x as u32, y as u32).0, PALETTE[k as usize], "pixel ({x}, {y})");
        }
    }
    load(&p, 8).unwrap();
}

#[test]
fn cmyk_jpeg_is_converted_to_rgb() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("cmyk.jpg");
    std::fs::write(&p, flat_jpeg(8, 8, &CMYK, true)).unwrap();
    let d = decode(&p).unwrap();
    assert_eq!((d.width(), d.height()), (8, 8));
    // Adobe CMYK JPEGs store inverted ink (Photoshop convention, as libjpeg readers assume):
    // R = C * K / 255 on the stored values, likewise G from M and B from Y.
    let [c, m, y, k] = CMYK.map(|v| v as f32);
    let want = [c * k / 255.0, m * k / 255.0, y * k / 255.0];
    for px in d.to_rgb8().pixels() {
        for ch in 0..3 {
            assert!((px[ch] as f32 - want[ch]).abs() <= 2.0, "got {:?}, want {want:?}", px.0);
        }
    }
    let out = load(&p, 8).unwrap();
    for ch in 0..3 {
        assert!((denorm(out[ch * 64], ch) - want[ch]).abs() <= 2.5, "pipeline ch {ch}: {}", denorm(out[ch * 64], ch));
    }
}

#[test]
fn flat_jpeg_writer_is_sound() {
    // the hand-written JPEG encoder used for the CMYK case, checked on a plain grayscale file
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("flat.jpg");
    std::fs::write(&p, flat_jpeg(16, 8, &[77], false)).unwrap();
    let g = decode(&p).unwrap().to_luma8();
    assert_eq!(g.dimensions(), (16, 8));
    assert!(g.pixels().all(|px| (px[0] as i32 - 77).abs() <= 1), "{:?}", g.as_raw());
}

#[test]
fn huge_dimensions_are_refused_quickly_naming_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    // far above, and just above, the documented limit (MAX_PIXELS = 12,000 x 12,000)
    for (name, bytes) in [
        ("huge.png", huge_png(50_000, 50_000)),
        ("just_over.png", huge_png(12_001, 12_000)),
        ("huge_jpeg.jpg", flat_jpeg(50_000, 50_000, &[128], false)),
        ("just_over_jpeg.jpg", flat_jpeg(12_001, 12_000, &[128], false)),
    ] {
        let p = tmp.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let t = Instant::now();
        let e = decode_err(&p);
        assert!(e.contains(&MAX_PIXELS.to_string()), "{name}: message does not state the limit: {e}");
        let e = load(&p, 32).unwrap_err();
        assert!(e.contains(name) && e.contains(&MAX_PIXELS.to_string()), "{name}: {e}");
        assert!(t.elapsed() < Duration::from_secs(5), "{name}: took {:?}", t.elapsed());
    }
    // exactly at the limit is not refused for its size (it fails later for lack of pixel data)
    let p = tmp.path().join("at_limit.png");
    std::fs::write(&p, huge_png(12_000, 12_000)).unwrap();
    let e = decode_err(&p);
    assert!(!e.contains(&MAX_PIXELS.to_string()), "{e}");
}

#[test]
fn animated_gif_is_refused_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["anim.gif", "anim_as_jpg.jpg"] {
        let p = tmp.path().join(name);
        std::fs::write(&p, animated_gif()).unwrap();
        let e = decode_err(&p);
        assert!(e.to_lowercase().contains("gif"), "{e}");
        let e = load(&p, 8).unwrap_err();
        assert!(e.contains(name), "{e}");
    }
}

// ---------------------------------------------------------------- Dataset::open

#[test]
fn dataset_keeps_good_images_and_counts_every_bad_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cases = write_cases(dir);
    let rows: Vec<LabelRow> = cases.iter().enumerate().map(|(i, c)| row(c.id, i + 1)).collect();

    let (ds, report) = Dataset::open(&rows, "labels.csv", &ImageDir::open(dir).unwrap(), true).unwrap();
    let kept: Vec<&str> = ds.ids.iter().map(String::as_str).collect();
    let want_kept: Vec<&str> = cases.iter().filter(|c| c.expect == Expect::Kept).map(|c| c.id).collect();
    assert_eq!(kept, want_kept, "report:\n{report}");
    // nothing lost: every row is either kept or in the report, with its reason kind
    assert_eq!(ds.len() + report.skipped.len(), rows.len());
    for c in cases.iter() {
        if let Expect::Skipped(kind) = c.expect {
            let s = report.skipped.iter().find(|s| s.id.as_deref() == Some(c.id)).unwrap_or_else(|| panic!("{} not reported", c.id));
            assert!(s.reason.starts_with(kind), "{}: {}", c.id, s.reason);
            assert!(s.reason.contains(c.id), "{}: {}", c.id, s.reason);
        }
    }
    let counts = report.counts();
    assert_eq!(counts.get("missing image"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("unreadable image"), Some(&(report.skipped.len() - 1)), "{counts:?}");
    for c in cases.iter().filter(|c| c.id.starts_with("huge")) {
        let s = report.skipped.iter().find(|s| s.id.as_deref() == Some(c.id)).unwrap();
        assert!(s.reason.contains(&MAX_PIXELS.to_string()), "{}", s.reason);
    }
    // everything kept can actually be loaded by the training pipeline
    for p in &ds.paths {
        load(p, 16).unwrap_or_else(|e| panic!("kept by Dataset::open but the pipeline fails: {e}"));
    }
    let text = report.to_string();
    assert!(text.contains(&format!("skipped {}", report.skipped.len())), "{text}");
}

#[test]
fn dataset_without_skip_bad_fails_naming_the_id() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cases = write_cases(dir);
    for c in cases.iter().filter(|c| c.expect != Expect::Kept) {
        let rows = vec![row("ok", 1), row(c.id, 2)];
        let e = Dataset::open(&rows, "labels.csv", &ImageDir::open(dir).unwrap(), false).expect_err(c.id).to_string();
        assert!(e.contains(&format!("'{}'", c.id)) && e.contains("labels.csv:2"), "{}: {e}", c.id);
    }
}

#[test]
fn dataset_skips_truncated_jpeg() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let c = cases().into_iter().find(|c| c.id == "truncated").unwrap();
    std::fs::write(dir.join(c.file), &c.bytes).unwrap();
    std::fs::write(dir.join("ok.jpg"), jpeg_bytes(&noise_rgb(8, 8))).unwrap();
    let rows = vec![row("ok", 1), row("truncated", 2)];
    let (ds, report) = Dataset::open(&rows, "labels.csv", &ImageDir::open(dir).unwrap(), true).unwrap();
    assert_eq!(ds.ids, ["ok"]);
    assert!(report.skipped[0].reason.starts_with("unreadable image") && report.skipped[0].reason.contains("truncated"), "{report}");
    let e = Dataset::open(&rows, "labels.csv", &ImageDir::open(dir).unwrap(), false).unwrap_err().to_string();
    assert!(e.contains("'truncated'") && e.contains("labels.csv:2"), "{e}");
}

// ---------------------------------------------------------------- end to end

#[test]
fn train_skip_bad_counts_bad_images_and_trains_on_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let out = bin().args(["data", "synth", "--out", s(&data), "--n", "40", "--size", "32", "--seed", "7"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let images = data.join("images");
    let labels = data.join("labels.csv");
    // replace some synthetic images with awkward ones, under the ids the labels expect
    let ids: Vec<String> = std::fs::read_to_string(&labels)
        .unwrap()
        .lines()
        .filter_map(|l| l.split(['\t', ',']).next().map(str::to_string))
        .filter(|id| find(&images, id).is_some())
        .collect();
    let cases = dataset_cases();
    let replaced: Vec<(&String, &Case)> = ids.iter().zip(cases.iter().filter(|c| c.id != "ok")).collect();
    for (id, c) in &replaced {
        std::fs::remove_file(find(&images, id).unwrap()).unwrap();
        let ext = Path::new(c.file).extension().unwrap().to_str().unwrap();
        std::fs::write(images.join(format!("{id}.{ext}")), &c.bytes).unwrap();
    }
    let bad: Vec<&String> = replaced.iter().filter(|(_, c)| c.expect != Expect::Kept).map(|(id, _)| *id).collect();

    let base = ["train", "--train-labels", s(&labels), "--images", s(&images), "--trunk", "tiny", "--image-size", "32", "--epochs", "1", "--device", "cpu"];
    let r1 = tmp.path().join("r1");
    let o = bin().args(base).args(["--out", s(&r1)]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(bad.iter().any(|id| err.contains(id.as_str())), "{err}");

    let r2 = tmp.path().join("r2");
    let o = bin().args(base).args(["--out", s(&r2), "--skip-bad"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains(&format!("skipped {}", bad.len())), "{err}");
    let skipped: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(r2.join("skipped.json")).unwrap()).unwrap();
    let listed: Vec<&str> = skipped["skipped"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    for id in &bad {
        assert!(listed.contains(&id.as_str()), "{id} not in skipped.json: {listed:?}");
    }
    assert_eq!(listed.len(), bad.len(), "{listed:?}");
    assert!(r2.join("model.safetensors").is_file());
}


fn find(dir: &Path, id: &str) -> Option<PathBuf> {
    ImageDir::open(dir).unwrap().find(id).unwrap()
}
