//! Burned-in overlays: a 5×7 bitmap font, text placed in a corner (optionally boxed like a lead
//! marker), and [`overlay_annotations`], which adds L/R markers and annotation digits.
use rand::Rng;

use super::plan::{pick, Anatomy, Modality, PhantomSpec, Side};

fn glyph(c: char) -> [u8; 7] {
    match c {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        _ => [0; 7],
    }
}

/// Draw `text` with its top-left at pixel (x0, y0), `scale` pixels per font pixel.
fn draw_text(v: &mut [f32], n: usize, text: &str, x0: usize, y0: usize, scale: usize, val: f32) {
    for (ci, c) in text.chars().enumerate() {
        let g = glyph(c);
        for (row, bits) in g.iter().enumerate() {
            for col in 0..5 {
                if bits & (0x10 >> col) == 0 {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let x = x0 + (ci * 6 + col) * scale + dx;
                        let y = y0 + row * scale + dy;
                        if x < n && y < n {
                            v[y * n + x] = val;
                        }
                    }
                }
            }
        }
    }
}

/// Text size in pixels (width, height).
fn text_size(text: &str, scale: usize) -> (usize, usize) {
    ((text.chars().count() * 6).saturating_sub(1) * scale, 7 * scale)
}

/// Place `text` in a random corner (top corners more likely) with a margin.
fn draw_in_corner<R: Rng + ?Sized>(v: &mut [f32], n: usize, text: &str, scale: usize, val: f32, boxed: bool, rng: &mut R) {
    let (w, h) = text_size(text, scale);
    if w + 4 >= n || h + 4 >= n {
        return;
    }
    let m = rng.gen_range(2..=(n / 20).max(3));
    let corner = pick(rng, &[(0u8, 40), (1, 40), (2, 10), (3, 10)]);
    let x = if matches!(corner, 0 | 2) { m } else { n - w - m };
    let y = if corner < 2 { m } else { n - h - m };
    if boxed {
        // dark box with a thin light frame, as lead markers look
        for yy in y.saturating_sub(2)..(y + h + 2).min(n) {
            for xx in x.saturating_sub(2)..(x + w + 2).min(n) {
                let edge = yy + 2 == y || yy == y + h + 1 || xx + 2 == x || xx == x + w + 1;
                v[yy * n + xx] = if edge { val * 0.8 } else { 0.05 };
            }
        }
    }
    draw_text(v, n, text, x, y, scale, val);
}

/// Laterality markers on knees (and, unlabelled, on some chest x-rays) plus annotation digits.
pub(super) fn overlay_annotations<R: Rng + ?Sized>(spec: &PhantomSpec, v: &mut [f32], n: usize, rng: &mut R) {
    let base = (n / 128).max(1);
    // L/R marker: the knee's side; chest x-rays often carry one too, but laterality is not annotated there
    let marker = match spec.laterality {
        Some(s) => rng.gen_bool(0.85).then_some(s),
        None if spec.anatomy == Anatomy::Chest && spec.modality == Modality::XRay && rng.gen_bool(0.5) => {
            Some(if rng.gen_bool(0.8) { Side::Left } else { Side::Right })
        }
        None => None,
    };
    if let Some(s) = marker {
        let txt = if s == Side::Left { "L" } else { "R" };
        let scale = base * pick(rng, &[(1usize, 35), (2, 50), (3, 15)]);
        let val = rng.gen_range(0.45..1.0);
        draw_in_corner(v, n, txt, scale, val, rng.gen_bool(0.3), rng);
    }
    // annotation digits (slice numbers, window settings, probe), never L/R
    let p = match spec.modality {
        Modality::Ct | Modality::Mri => 0.5,
        Modality::Ultrasound => 0.8,
        Modality::XRay => 0.2,
    };
    if rng.gen_bool(p) {
        let len = rng.gen_range(2..5);
        let mut s = String::new();
        if spec.modality == Modality::Ultrasound && rng.gen_bool(0.5) {
            s.push('C');
        }
        if spec.modality == Modality::Ct && rng.gen_bool(0.3) {
            s.push('W');
        }
        for _ in 0..len {
            s.push(char::from(b'0' + rng.gen_range(0..10u8)));
        }
        draw_in_corner(v, n, &s, base, rng.gen_range(0.5..0.9), false, rng);
    }
}

/// Which burned-in annotations image `index` carries (`--annotations`): an arrow (35%), a circled
/// region (25%), independently. Drawn from a stream of its own, so the rest of the image is as
/// without annotations.
///
/// Marks are drawn in colour on the grey image, one colour per image (as authors draw them in
/// figures: yellow, red, green, cyan or white), so an annotated image is stored as RGB. Drawn in
/// grey on grey they were not learnable at 96 px by any model in `experiment compare` (test AUC of
/// the arrow 0.50-0.54 for every CNN head, BENCHMARKS.md); in colour, finding the mark is easy and
/// telling an arrow from a ring is the shape's job.
pub(super) fn annotation_plan(seed: u64, index: usize) -> (bool, bool, rand_chacha::ChaCha8Rng) {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0xA11_0757);
    rng.set_stream(index as u64 + 1);
    let arrow = rng.gen_bool(0.35);
    let ring = rng.gen_bool(0.25);
    (arrow, ring, rng)
}

/// The colours marks are drawn in, with their weights.
const MARK_COLOURS: [([u8; 3], u32); 5] = [([255, 230, 0], 30), ([230, 30, 30], 25), ([40, 220, 60], 15), ([0, 220, 255], 10), ([255, 255, 255], 20)];

/// The colour of an image's marks.
pub(super) fn mark_colour<R: Rng + ?Sized>(rng: &mut R) -> image::Rgb<u8> {
    image::Rgb(pick(rng, &MARK_COLOURS))
}

fn plot(img: &mut image::RgbImage, x: f32, y: f32, r: f32, val: image::Rgb<u8>) {
    let n = img.width() as i64;
    let (x0, x1, y0, y1) = ((x - r).floor() as i64, (x + r).ceil() as i64, (y - r).floor() as i64, (y + r).ceil() as i64);
    for yy in y0.max(0)..=y1.min(n - 1) {
        for xx in x0.max(0)..=x1.min(n - 1) {
            if ((xx as f32 - x).powi(2) + (yy as f32 - y).powi(2)).sqrt() <= r {
                img.put_pixel(xx as u32, yy as u32, val);
            }
        }
    }
}

fn line(img: &mut image::RgbImage, (ax, ay): (f32, f32), (bx, by): (f32, f32), r: f32, val: image::Rgb<u8>) {
    let steps = ((bx - ax).hypot(by - ay) * 2.0).ceil().max(1.0) as usize;
    for i in 0..=steps {
        let t = i as f32 / steps as f32;
        plot(img, ax + (bx - ax) * t, ay + (by - ay) * t, r, val);
    }
}

/// An arrow in colour `val` somewhere inside the image, pointing in a random direction.
pub(super) fn draw_arrow<R: Rng + ?Sized>(img: &mut image::RgbImage, val: image::Rgb<u8>, rng: &mut R) {
    let n = img.width() as f32;
    let len = rng.gen_range(0.15..0.28) * n;
    let ang = rng.gen_range(0.0..std::f32::consts::TAU);
    let (dx, dy) = (ang.cos(), ang.sin());
    let tip = (rng.gen_range(0.3..0.7) * n, rng.gen_range(0.3..0.7) * n);
    let tail = (tip.0 - dx * len, tip.1 - dy * len);
    let w = (n / 50.0).max(1.0); // strokes about 4% of the image wide: thick marks, as authors draw them for print
    line(img, tail, tip, w, val);
    let head = len * 0.35;
    for side in [-1.0f32, 1.0] {
        let a = ang + std::f32::consts::PI + side * 0.5;
        line(img, tip, (tip.0 + a.cos() * head, tip.1 + a.sin() * head), w, val);
    }
}

/// A ring in colour `val` around a random region.
pub(super) fn draw_ring<R: Rng + ?Sized>(img: &mut image::RgbImage, val: image::Rgb<u8>, rng: &mut R) {
    let n = img.width() as f32;
    let r = rng.gen_range(0.08..0.16) * n;
    let c = (rng.gen_range(0.3..0.7) * n, rng.gen_range(0.3..0.7) * n);
    let w = (n / 50.0).max(1.0); // strokes about 4% of the image wide: thick marks, as authors draw them for print
    let steps = (r * 8.0) as usize;
    for i in 0..steps {
        let t = i as f32 / steps as f32 * std::f32::consts::TAU;
        plot(img, c.0 + r * t.cos(), c.1 + r * t.sin(), w, val);
    }
}
