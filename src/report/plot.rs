//! Small dependency-free SVG charts (bar, scatter, line) for reports and dataset statistics.
//!
//! Plots are plain SVG 1.1 text, so they embed in HTML reports as is and open in any browser.
//! Axes are ticked at round values (1, 2 or 5 times a power of ten: [`nice_ticks`],
//! [`log_ticks`]) and span from the first tick at or below the data (zero for counts and F1) to
//! the first tick at or above it, so the two axes meet at the plot's lower-left corner. Bars,
//! points and shortened labels carry SVG `<title>` tooltips with the full text.
use std::fmt::Write;

const W: f64 = 720.0;
const H: f64 = 420.0;
/// Top margin (room for the title and the value label of a full-height bar).
const MT: f64 = 44.0;
/// Bar labels are rotated this many degrees (counter-clockwise) and end under their bar.
const LABEL_ANGLE_DEG: f64 = 60.0;
/// Largest and smallest font size of bar labels, px.
const LABEL_FONT_MAX: f64 = 11.0;
const LABEL_FONT_MIN: f64 = 7.0;
/// Width estimates are scaled by this, so that a label fits even in a slightly wider font.
const WIDTH_MARGIN: f64 = 1.04;
/// Distance between neighbouring rotated labels, in font sizes, so that they never touch.
const LABEL_SPACING_EM: f64 = 1.25;
/// At most this many tick intervals on a linear axis.
const MAX_INTERVALS: f64 = 6.0;

/// Margins of one kind of chart (the top margin is [`MT`]).
#[derive(Debug, Clone, Copy)]
struct Frame {
    ml: f64,
    mr: f64,
    mb: f64,
}

impl Frame {
    fn left(self) -> f64 {
        self.ml
    }
    fn right(self) -> f64 {
        W - self.mr
    }
    fn bottom(self) -> f64 {
        H - self.mb
    }
    fn pw(self) -> f64 {
        self.right() - self.left()
    }
    fn ph(self) -> f64 {
        self.bottom() - MT
    }
}

/// Bar charts: room under the axis for rotated labels.
const BAR_FRAME: Frame = Frame { ml: 72.0, mr: 20.0, mb: 150.0 };
/// Scatter plots: tick labels and the axis title under the axis, nothing more.
const XY_FRAME: Frame = Frame { ml: 72.0, mr: 24.0, mb: 52.0 };
/// Line charts: the legend sits right of the plot.
const LINES_FRAME: Frame = Frame { ml: 72.0, mr: 172.0, mb: 52.0 };

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Approximate advance of `c` in DejaVu Sans, in em (the fonts the page may fall back to, Arial
/// or Helvetica, are narrower). Characters not listed count as 0.8 em. A test lays labels out
/// with the real font and checks that they fit.
fn char_em(c: char) -> f64 {
    match c {
        ' ' | '.' | ',' => 0.32,
        'i' | 'j' | 'l' | '\'' | '|' | '!' => 0.278,
        'I' | 'J' => 0.295,
        'f' => 0.352,
        '-' | ':' | ';' | '/' => 0.361,
        '(' | ')' | '[' | ']' => 0.39,
        't' => 0.392,
        'r' => 0.411,
        'z' | 's' => 0.525,
        'c' => 0.55,
        'L' => 0.557,
        'F' => 0.575,
        'k' | 'v' | 'x' | 'y' => 0.592,
        'P' => 0.603,
        'T' | 'Y' => 0.611,
        'a' | 'e' | 'o' | 'E' => 0.632,
        '0'..='9' | 'b' | 'd' | 'g' | 'h' | 'n' | 'p' | 'q' | 'u' | 'S' | '_' => 0.636,
        'K' | 'A' | 'B' | 'V' | 'X' | 'Z' => 0.686,
        'R' | 'C' => 0.698,
        'U' => 0.732,
        'H' | 'N' => 0.752,
        'D' | 'G' | 'O' | 'Q' => 0.787,
        'w' => 0.818,
        '+' | '=' | '<' | '>' | '#' => 0.838,
        'M' => 0.863,
        'm' => 0.974,
        'W' | '%' | '@' | '…' => 1.0,
        _ => 0.8,
    }
}

/// Estimated width of `s` in px at font size `fs`, generous by [`WIDTH_MARGIN`].
pub(crate) fn text_width(s: &str, fs: f64) -> f64 {
    s.chars().map(char_em).sum::<f64>() * fs * WIDTH_MARGIN
}

/// `s` as it fits in `room` px at font size `fs`: whole, or cut and ended with `…`.
pub(crate) fn fit_width(s: &str, room: f64, fs: f64) -> String {
    if text_width(s, fs) <= room {
        return s.to_string();
    }
    let mut out = String::new();
    let mut used = text_width("…", fs);
    for c in s.chars() {
        let w = char_em(c) * fs * WIDTH_MARGIN;
        if used + w > room {
            break;
        }
        used += w;
        out.push(c);
    }
    out.trim_end().to_string() + "…"
}

/// Decimals needed to print multiples of `step` exactly.
fn decimals(step: f64) -> usize {
    if step <= 0.0 || !step.is_finite() {
        return 0;
    }
    (-(step.log10() + 1e-9).floor()).max(0.0) as usize
}

fn round_to(v: f64, d: usize) -> f64 {
    let f = 10f64.powi(d as i32);
    (v * f).round() / f
}

/// The smallest of 1, 2, 5 times a power of ten that is at least `raw` (> 0).
fn nice_step(raw: f64) -> f64 {
    let base = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| round_to(m * base, decimals(base))).find(|s| *s >= raw * (1.0 - 1e-9)).unwrap_or(10.0 * base)
}

/// Round ticks covering `[lo, hi]` on a linear axis: equally spaced by 1, 2 or 5 times a power
/// of ten (at least 1 for `integer` data), at most six intervals, from the last multiple of the
/// step at or below `lo` to the first at or above `hi`. `hi <= lo` is widened to `lo + 1`.
pub(crate) fn nice_ticks(lo: f64, hi: f64, integer: bool) -> Vec<f64> {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() { (lo.min(hi), lo.max(hi)) } else { (0.0, 1.0) };
    let hi = if hi > lo { hi } else { lo + 1.0 };
    let mut step = nice_step((hi - lo) / MAX_INTERVALS);
    if integer {
        step = step.max(1.0);
    }
    let d = decimals(step);
    let first = (lo / step + 1e-9).floor() as i64;
    let last = ((hi / step - 1e-9).ceil() as i64).max(first + 1);
    (first..=last).map(|k| round_to(k as f64 * step, d)).collect()
}

/// Round ticks covering `[lo, hi]` (both > 0; others are taken as 1) on a log10 axis: the values
/// 1, 2 and 5 times a power of ten, or only the powers of ten when the data span more than three
/// decades, from the last at or below `lo` to the first at or above `hi` (at least two ticks).
pub(crate) fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let lo = if lo > 0.0 && lo.is_finite() { lo } else { 1.0 };
    let hi = if hi.is_finite() { hi.max(lo) } else { lo };
    let mults: &[f64] = if hi / lo > 1000.0 { &[1.0] } else { &[1.0, 2.0, 5.0] };
    let (e0, e1) = (lo.log10().floor() as i32 - 1, hi.log10().ceil() as i32 + 1);
    let cands: Vec<f64> = (e0..=e1)
        .flat_map(|e| mults.iter().map(move |m| round_to(m * 10f64.powi(e), (-e).max(0) as usize)))
        .collect();
    let start = cands.iter().rposition(|c| *c <= lo * (1.0 + 1e-9)).unwrap_or(0);
    let end = cands.iter().position(|c| *c >= hi * (1.0 - 1e-9)).unwrap_or(cands.len() - 1).max(start + 1);
    cands[start..=end].to_vec()
}

/// An axis over `[ticks[0], ticks[last]]`, linear or log10.
struct Axis {
    ticks: Vec<f64>,
    log: bool,
}

impl Axis {
    fn linear(lo: f64, hi: f64, integer: bool) -> Axis {
        Axis { ticks: nice_ticks(lo, hi, integer), log: false }
    }

    fn log(lo: f64, hi: f64) -> Axis {
        Axis { ticks: log_ticks(lo, hi), log: true }
    }

    /// Where `v` falls along the axis, 0 at the first tick and 1 at the last (clamped; NaN -> 0).
    fn frac(&self, v: f64) -> f64 {
        let t = |x: f64| if self.log { x.max(f64::MIN_POSITIVE).log10() } else { x };
        let (a, b) = (t(self.ticks[0]), t(*self.ticks.last().expect("an axis has ticks")));
        let f = (t(v) - a) / (b - a);
        if f.is_nan() {
            0.0
        } else {
            f.clamp(0.0, 1.0)
        }
    }

    fn label(&self, v: f64) -> String {
        let d = if self.log {
            decimals(v)
        } else {
            decimals(self.ticks.get(1).map_or(1.0, |t1| t1 - self.ticks[0]))
        };
        format!("{v:.d$}")
    }
}

fn open_svg(title: &str) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">"#
    );
    let _ = write!(s, r##"<rect width="{W}" height="{H}" fill="#ffffff"/>"##);
    let _ = write!(s, r#"<text x="{}" y="24" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#, W / 2.0, esc(title));
    s
}

/// The y axis: grid lines and labels at the ticks, the axis line, the rotated axis title.
fn draw_y_axis(s: &mut String, f: Frame, axis: &Axis, ylabel: &str) {
    for &v in &axis.ticks {
        let y = f.bottom() - f.ph() * axis.frac(v);
        let _ = write!(s, r##"<line x1="{:.1}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#e2e2e2"/>"##, f.left(), f.right());
        let _ = write!(s, r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#, f.left() - 6.0, y + 4.0, axis.label(v));
    }
    let _ = write!(s, r##"<line x1="{l:.1}" x2="{l:.1}" y1="{MT}" y2="{b:.1}" stroke="#333333"/>"##, l = f.left(), b = f.bottom());
    let mid = MT + f.ph() / 2.0;
    let _ = write!(s, r#"<text x="18" y="{mid:.1}" text-anchor="middle" transform="rotate(-90 18 {mid:.1})">{}</text>"#, esc(ylabel));
}

/// The x axis line along the bottom of the plot (at the y axis' first tick).
fn draw_x_baseline(s: &mut String, f: Frame) {
    let _ = write!(s, r##"<line x1="{:.1}" x2="{:.1}" y1="{b:.1}" y2="{b:.1}" stroke="#333333"/>"##, f.left(), f.right(), b = f.bottom());
}

/// A numeric x axis: tick marks, light grid lines, labels, the axis title under them.
fn draw_x_axis(s: &mut String, f: Frame, axis: &Axis, xlabel: &str) {
    for &v in &axis.ticks {
        let x = f.left() + f.pw() * axis.frac(v);
        let b = f.bottom();
        let _ = write!(s, r##"<line x1="{x:.1}" x2="{x:.1}" y1="{MT}" y2="{b:.1}" stroke="#f0f0f0"/>"##);
        let _ = write!(s, r##"<line x1="{x:.1}" x2="{x:.1}" y1="{b:.1}" y2="{:.1}" stroke="#333333"/>"##, b + 4.0);
        let _ = write!(s, r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#, b + 17.0, axis.label(v));
    }
    let _ = write!(s, r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#, f.left() + f.pw() / 2.0, f.bottom() + 38.0, esc(xlabel));
}

/// How the category labels of a bar chart are set: font size, every `stride`-th label shown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LabelLayout {
    pub font: f64,
    pub stride: usize,
}

/// Font and stride for `n` rotated bar labels: neighbouring labels (parallel lines `slot *
/// sin(angle)` apart) keep [`LABEL_SPACING_EM`] font sizes between their baselines.
pub(crate) fn bar_label_layout(n: usize) -> LabelLayout {
    let slot = BAR_FRAME.pw() / n.max(1) as f64;
    let gap = slot * LABEL_ANGLE_DEG.to_radians().sin();
    let font = (gap / LABEL_SPACING_EM).min(LABEL_FONT_MAX);
    if font >= LABEL_FONT_MIN {
        LabelLayout { font: (font * 10.0).floor() / 10.0, stride: 1 }
    } else {
        LabelLayout { font: LABEL_FONT_MIN, stride: (LABEL_FONT_MIN * LABEL_SPACING_EM / gap).ceil() as usize }
    }
}

/// A vertical bar chart: one bar per (label, value), its value above it; labels are rotated under
/// the axis and shortened with `…` where they would leave the picture (the full label and the
/// value are the bar's tooltip). The y axis starts at zero and is ticked at round values.
pub(crate) fn bar_chart(title: &str, ylabel: &str, labels: &[String], values: &[f64]) -> String {
    bar_chart_scaled(title, ylabel, labels, values, None)
}

/// [`bar_chart`] with the y axis reaching at least `y_top` (e.g. `Some(1.0)` for F1); without
/// it, 5 % above the largest value.
pub(crate) fn bar_chart_scaled(title: &str, ylabel: &str, labels: &[String], values: &[f64], y_top: Option<f64>) -> String {
    let n = values.len().max(1);
    let slot = BAR_FRAME.pw() / n as f64;
    let layout = bar_label_layout(n);
    let fs = layout.font;
    let (sin, cos) = (LABEL_ANGLE_DEG.to_radians().sin(), LABEL_ANGLE_DEG.to_radians().cos());
    // Each shown label ends under its bar's centre (its glyphs centred on it) and runs down-left;
    // it is shortened where it would leave the picture at the bottom (with the largest bottom
    // margin) or on the left. Then the bottom margin shrinks to the longest label, so short
    // labels leave no blank band under the chart.
    let drop = 8.0 + 0.35 * fs * cos; // anchor below the axis
    let shown: Vec<Option<(f64, String)>> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            (i % layout.stride == 0).then(|| {
                let ax = BAR_FRAME.left() + slot * (i as f64 + 0.5) + 0.35 * fs * sin;
                let room = ((BAR_FRAME.mb - drop - 6.0) / sin).min((ax - 4.0 - fs * sin) / cos);
                let short = fit_width(l, room, fs);
                (ax, short)
            })
        })
        .collect();
    let longest = shown.iter().flatten().map(|(_, t)| text_width(t, fs)).fold(0.0f64, f64::max);
    let f = Frame { mb: (drop + longest * sin + 0.5 * fs + 6.0).clamp(40.0, BAR_FRAME.mb).ceil(), ..BAR_FRAME };

    let mut s = open_svg(title);
    let integer = values.iter().all(|v| v.fract() == 0.0);
    let vmax = values.iter().copied().filter(|v| v.is_finite()).fold(0.0f64, f64::max);
    let hi = match y_top {
        Some(t) => t.max(vmax),
        None => vmax * 1.05,
    };
    let axis = Axis::linear(0.0, hi, integer);
    draw_y_axis(&mut s, f, &axis, ylabel);
    for (i, ((l, &v), label)) in labels.iter().zip(values).zip(&shown).enumerate() {
        let h = f.ph() * axis.frac(v);
        let x = f.left() + slot * i as f64 + slot * 0.1;
        let cx = f.left() + slot * (i as f64 + 0.5);
        let value = if integer { format!("{v:.0}") } else { format!("{v:.2}") };
        let _ = write!(s, "<g><title>{}: {value}</title>", esc(l));
        let _ = write!(s, r##"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="#3b6ea5"/>"##, f.bottom() - h, slot * 0.8);
        if slot >= 18.0 {
            let _ = write!(s, r##"<text x="{cx:.1}" y="{:.1}" text-anchor="middle" font-size="10" fill="#333333">{value}</text>"##, f.bottom() - h - 4.0);
        }
        if let Some((ax, short)) = label {
            let ay = f.bottom() + drop;
            let _ = write!(
                s,
                r#"<text x="{ax:.1}" y="{ay:.1}" text-anchor="end" font-size="{fs}" transform="rotate(-{LABEL_ANGLE_DEG} {ax:.1} {ay:.1})">{}</text>"#,
                esc(short)
            );
        }
        s.push_str("</g>");
    }
    draw_x_baseline(&mut s, f);
    s.push_str("</svg>\n");
    s
}

/// One point of a [`scatter`] plot; `label` is its tooltip (e.g. concept, name, support, F1).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Point {
    pub x: f64,
    pub y: f64,
    pub label: String,
}

/// A scatter plot of points, optionally with a log10 x axis; each point's label is its
/// tooltip (points drawn on the same spot share one mark whose tooltip lists them all). The
/// x axis runs from the round value at or below the smallest x, the y axis from zero (to at
/// least `y_top`).
pub(crate) fn scatter(title: &str, xlabel: &str, ylabel: &str, points: &[Point], log_x: bool, y_top: Option<f64>) -> String {
    let f = XY_FRAME;
    let mut s = open_svg(title);
    let finite: Vec<&Point> = points.iter().filter(|p| p.x.is_finite() && p.y.is_finite() && (!log_x || p.x > 0.0)).collect();
    let (xmin, xmax) = finite.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, p| (a.0.min(p.x), a.1.max(p.x)));
    let x_axis = match (log_x, xmin.is_finite()) {
        (true, true) => Axis::log(xmin, xmax),
        (true, false) => Axis::log(1.0, 10.0),
        (false, true) => Axis::linear(xmin.min(0.0), xmax, false),
        (false, false) => Axis::linear(0.0, 1.0, false),
    };
    let ymax = finite.iter().map(|p| p.y).fold(0.0f64, f64::max);
    let y_axis = Axis::linear(0.0, y_top.map_or(ymax, |t| t.max(ymax)), false);
    draw_x_axis(&mut s, f, &x_axis, xlabel);
    draw_y_axis(&mut s, f, &y_axis, ylabel);
    draw_x_baseline(&mut s, f);
    // Group points that land on the same spot (to a tenth of a pixel).
    let mut spots: Vec<((i64, i64), Vec<&Point>)> = Vec::new();
    for p in finite {
        let px = f.left() + f.pw() * x_axis.frac(p.x);
        let py = f.bottom() - f.ph() * y_axis.frac(p.y);
        let key = ((px * 10.0).round() as i64, (py * 10.0).round() as i64);
        match spots.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(p),
            None => spots.push((key, vec![p])),
        }
    }
    for ((kx, ky), pts) in &spots {
        let tip: Vec<String> = pts.iter().map(|p| esc(&p.label)).collect();
        let r = if pts.len() > 1 { 4.5 } else { 3.5 };
        let _ = write!(
            s,
            r##"<circle cx="{:.1}" cy="{:.1}" r="{r}" fill="#c0504d" fill-opacity="0.7"><title>{}</title></circle>"##,
            *kx as f64 / 10.0,
            *ky as f64 / 10.0,
            tip.join("\n")
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Line chart of one or more named series over a shared x range, the legend right of the plot;
/// every point has a tooltip (series, x, y). The y axis starts at zero (and reaches at least
/// `y_top`).
pub fn lines(title: &str, xlabel: &str, ylabel: &str, series: &[(String, Vec<(f64, f64)>)], y_top: Option<f64>) -> String {
    let f = LINES_FRAME;
    let mut s = open_svg(title);
    let all: Vec<(f64, f64)> = series.iter().flat_map(|(_, v)| v.iter().copied()).filter(|p| p.0.is_finite() && p.1.is_finite()).collect();
    let (xmin, xmax) = all.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, p| (a.0.min(p.0), a.1.max(p.0)));
    let x_axis = if xmin.is_finite() { Axis::linear(xmin.min(0.0), xmax, false) } else { Axis::linear(0.0, 1.0, false) };
    let ymax = all.iter().map(|p| p.1).fold(0.0f64, f64::max);
    let y_axis = Axis::linear(0.0, y_top.map_or(ymax, |t| t.max(ymax)), false);
    draw_x_axis(&mut s, f, &x_axis, xlabel);
    draw_y_axis(&mut s, f, &y_axis, ylabel);
    draw_x_baseline(&mut s, f);
    const COLORS: [&str; 8] = ["#3b6ea5", "#c0504d", "#9bbb59", "#8064a2", "#f79646", "#4bacc6", "#7f7f7f", "#b8860b"];
    let xd = decimals(x_axis.ticks.get(1).map_or(1.0, |t| t - x_axis.ticks[0])) + 1;
    for (k, (name, pts)) in series.iter().enumerate() {
        let c = COLORS[k % COLORS.len()];
        let xy: Vec<(f64, f64, f64, f64)> = pts
            .iter()
            .map(|&(x, y)| (x, y, f.left() + f.pw() * x_axis.frac(x), f.bottom() - f.ph() * y_axis.frac(y)))
            .collect();
        let path: Vec<String> = xy.iter().map(|p| format!("{:.1},{:.1}", p.2, p.3)).collect();
        let _ = write!(s, r#"<g><title>{}</title><polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/></g>"#, esc(name), path.join(" "));
        for (x, y, px, py) in &xy {
            let _ = write!(s, r#"<circle cx="{px:.1}" cy="{py:.1}" r="2.5" fill="{c}"><title>{}: {y:.3} at {xlabel} {x:.xd$}</title></circle>"#, esc(name), xlabel = esc(xlabel));
        }
        let (lx, ly) = (f.right() + 14.0, MT + 16.0 * k as f64 + 10.0);
        let _ = write!(
            s,
            r#"<g><title>{}</title><rect x="{lx:.1}" y="{:.1}" width="10" height="10" fill="{c}"/><text x="{:.1}" y="{ly:.1}">{}</text></g>"#,
            esc(name),
            ly - 9.0,
            lx + 15.0,
            esc(&fit_width(name, f.mr - 32.0, 12.0))
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_chart_has_one_rect_per_bar_and_escapes_labels() {
        let svg = bar_chart("t", "n", &["a<b".into(), "c".into()], &[3.0, 1.0]);
        assert_eq!(svg.matches("<rect x=").count(), 2);
        assert!(svg.contains("a&lt;b") && !svg.contains("a<b"));
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        // counts get whole-number ticks: max 3 -> axis 0..4 in steps of 1
        assert!(svg.contains(">4</text>") && svg.contains(">1</text>") && !svg.contains(">3.15<"), "{svg}");
    }

    #[test]
    fn scatter_and_lines_draw_every_point() {
        let pts: Vec<Point> =
            [(1.0, 0.5), (100.0, 0.2), (1000.0, 0.9)].iter().map(|&(x, y)| Point { x, y, label: format!("p{x}") }).collect();
        let svg = scatter("t", "x", "y", &pts, true, None);
        assert_eq!(svg.matches("<circle").count(), 3);
        let svg = lines("t", "x", "y", &[("a".into(), vec![(0.0, 0.1), (1.0, 0.3)])], None);
        assert_eq!(svg.matches("<polyline").count(), 1);
    }

    fn is_round(v: f64) -> bool {
        if v == 0.0 {
            return true;
        }
        let e = v.abs().log10().floor();
        let m = v.abs() / 10f64.powf(e);
        [1.0, 2.0, 5.0, 10.0].iter().any(|r| (m - r).abs() < 1e-6)
    }

    #[test]
    fn linear_ticks_are_round_and_cover_the_data() {
        assert_eq!(nice_ticks(0.0, 1.0, false), [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(nice_ticks(0.0, 3.15, true), [0.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(nice_ticks(0.0, 0.37, false), [0.0, 0.1, 0.2, 0.3, 0.4]);
        assert_eq!(nice_ticks(0.0, 730.0, true), [0.0, 200.0, 400.0, 600.0, 800.0]);
        assert_eq!(nice_ticks(0.05, 0.95, false), [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(nice_ticks(0.0, 12.6, true), [0.0, 5.0, 10.0, 15.0]);
        assert_eq!(nice_ticks(0.0, 0.0, true), [0.0, 1.0]);
        assert_eq!(nice_ticks(0.0, 0.042, false), [0.0, 0.01, 0.02, 0.03, 0.04, 0.05]);
        // Counts never get fractional ticks.
        assert_eq!(nice_ticks(0.0, 2.1, true), [0.0, 1.0, 2.0, 3.0]);
        for hi in [0.013, 0.2, 0.99, 1.0, 1.05, 2.5, 7.0, 19.95, 64.0, 101.0, 999.0, 12345.0] {
            for integer in [false, true] {
                let t = nice_ticks(0.0, hi, integer);
                let step = t[1] - t[0];
                assert_eq!(t[0], 0.0, "{hi}");
                assert!(*t.last().unwrap() >= hi && t[t.len() - 2] < hi, "{hi}: {t:?}");
                assert!((2..=7).contains(&(t.len() - 1)) || integer, "{hi}: {t:?}");
                assert!(is_round(step), "{hi}: step {step}");
                for (k, v) in t.iter().enumerate() {
                    assert!(is_round(*v) || ((v / step) - (v / step).round()).abs() < 1e-9, "{hi}: {v}");
                    assert!((v - k as f64 * step).abs() < 1e-9, "{hi}: {t:?}");
                    if integer {
                        assert_eq!(v.fract(), 0.0);
                    }
                }
            }
        }
    }

    #[test]
    fn log_ticks_are_one_two_five() {
        assert_eq!(log_ticks(1.0, 80.0), [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]);
        assert_eq!(log_ticks(3.0, 9.0), [2.0, 5.0, 10.0]);
        assert_eq!(log_ticks(12.0, 12.0), [10.0, 20.0]);
        assert_eq!(log_ticks(1.0, 1.0), [1.0, 2.0]);
        // More than three decades: powers of ten only.
        assert_eq!(log_ticks(2.0, 41000.0), [1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0]);
        assert_eq!(log_ticks(0.3, 4.0), [0.2, 0.5, 1.0, 2.0, 5.0]);
        for (lo, hi) in [(1.0, 3.0), (1.0, 730.0), (7.0, 7000.0), (4.0, 5.0)] {
            let t = log_ticks(lo, hi);
            assert!(t.iter().all(|v| is_round(*v)), "{t:?}");
            assert!(t[0] <= lo && t[1] > lo && *t.last().unwrap() >= hi && t[t.len() - 2] < hi, "{lo}..{hi}: {t:?}");
        }
    }

    /// The numbers printed as axis labels (text-anchor end: y; middle under the axis: x).
    fn tick_labels(svg: &str, anchor: &str) -> Vec<String> {
        svg.split("<text ")
            .skip(1)
            .filter(|t| t.contains(&format!("text-anchor=\"{anchor}\"")) && !t.contains("rotate(") && !t.contains("font-size"))
            .map(|t| t[t.find('>').unwrap() + 1..t.find("</text>").unwrap()].to_string())
            .filter(|l| l.parse::<f64>().is_ok())
            .collect()
    }

    #[test]
    fn axes_are_ticked_at_round_values_from_zero() {
        let bars = bar_chart_scaled("F1", "F1", &["a".into(), "b".into()], &[0.81, 0.33], Some(1.0));
        assert_eq!(tick_labels(&bars, "end"), ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let counts = bar_chart("n", "images", &["a".into(), "b".into()], &[29.0, 7.0]);
        assert_eq!(tick_labels(&counts, "end"), ["0", "10", "20", "30", "40"]);
        let pts: Vec<Point> = [(3.0, 0.0), (17.0, 0.5), (80.0, 1.0)].iter().map(|&(x, y)| Point { x, y, label: String::new() }).collect();
        let sc = scatter("t", "images", "F1", &pts, true, Some(1.0));
        assert_eq!(tick_labels(&sc, "middle"), ["2", "5", "10", "20", "50", "100"]);
        assert_eq!(tick_labels(&sc, "end"), ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let ln = lines("t", "threshold", "F1", &[("a".into(), vec![(0.05, 0.2), (0.5, 0.8), (0.95, 0.1)])], Some(1.0));
        assert_eq!(tick_labels(&ln, "middle"), ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
    }

    fn attr(tag: &str, name: &str) -> f64 {
        let k = format!(" {name}=\"");
        let i = tag.find(&k).unwrap_or_else(|| panic!("{name} in {tag}")) + k.len();
        tag[i..i + tag[i..].find('"').unwrap()].parse().unwrap()
    }

    #[test]
    fn scatter_axes_meet_at_the_lowest_point_without_a_blank_band() {
        let pts: Vec<Point> = [(3.0, 0.0), (80.0, 1.0)].iter().map(|&(x, y)| Point { x, y, label: String::new() }).collect();
        let svg = scatter("t", "images", "F1", &pts, true, Some(1.0));
        let f = XY_FRAME;
        // The x axis line is the plot's bottom edge, and the F1 = 0 point lies on it.
        assert!(svg.contains(&format!(r##"y1="{b:.1}" y2="{b:.1}" stroke="#333333""##, b = f.bottom())), "{svg}");
        let circles: Vec<&str> = svg.split("<circle").skip(1).collect();
        let lowest = circles.iter().map(|c| attr(c, "cy")).fold(0.0, f64::max);
        assert!((lowest - f.bottom()).abs() < 0.05, "{lowest} vs {}", f.bottom());
        // Under the axis only its tick labels and title: the picture ends 14 px below the title.
        assert!(H - (f.bottom() + 38.0) <= 16.0);
        // The smallest point sits right of the y axis, at most one tick step (2 -> 5) away.
        let leftmost = circles.iter().map(|c| attr(c, "cx")).fold(f64::INFINITY, f64::min);
        assert!(leftmost > f.left() && leftmost - f.left() < f.pw() / 3.0, "{leftmost}");
    }

    #[test]
    fn scatter_points_have_tooltips() {
        let pts = vec![
            Point { x: 12.0, y: 0.5, label: "C0040405 X-Ray Computed Tomography — 12 images, F1 0.500".into() },
            Point { x: 3.0, y: 0.25, label: "C0009924 <Contrast> & Media — 3 images, F1 0.250".into() },
            Point { x: 3.0, y: 0.25, label: "C0205131 Axial — 3 images, F1 0.250".into() },
        ];
        let svg = scatter("t", "x", "y", &pts, true, Some(1.0));
        // One mark per spot; the shared spot lists both concepts; labels are escaped.
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains("<title>C0040405 X-Ray Computed Tomography — 12 images, F1 0.500</title></circle>"), "{svg}");
        assert!(svg.contains("<title>C0009924 &lt;Contrast&gt; &amp; Media — 3 images, F1 0.250\nC0205131 Axial — 3 images, F1 0.250</title>"), "{svg}");
    }

    #[test]
    fn long_bar_labels_are_shortened_with_the_full_name_as_tooltip() {
        let long = "C0040405 X-Ray Computed Tomography of the whole body with contrast".to_string();
        let svg = bar_chart("t", "n", &[long.clone(), "short".into()], &[3.0, 1.0]);
        assert!(svg.contains(&format!("<title>{long}: 3</title>")), "{svg}");
        let texts: Vec<&str> = svg.split("<text ").filter(|t| t.contains("rotate(-60")).collect();
        assert_eq!(texts.len(), 2);
        let shown = |t: &str| t[t.find('>').unwrap() + 1..t.find("</text>").unwrap()].to_string();
        assert!(shown(texts[0]).ends_with('…') && long.starts_with(shown(texts[0]).trim_end_matches('…')), "{}", shown(texts[0]));
        assert_eq!(shown(texts[1]), "short");
        assert_eq!(fit_width("abc", 100.0, 10.0), "abc");
        let cut = fit_width("WWWWWWWWWW", 50.0, 10.0);
        assert!(cut.ends_with('…') && text_width(&cut, 10.0) <= 50.0, "{cut}");
    }

    #[test]
    fn label_layout_keeps_neighbours_apart() {
        let sin = LABEL_ANGLE_DEG.to_radians().sin();
        for n in [1, 3, 8, 25, 40, 60, 100, 300] {
            let l = bar_label_layout(n);
            let slot = BAR_FRAME.pw() / n as f64;
            assert!(l.font <= LABEL_FONT_MAX && l.font >= LABEL_FONT_MIN, "{n}: {l:?}");
            // Parallel rotated labels: baselines of shown neighbours at least 1.25 font sizes apart.
            assert!(slot * l.stride as f64 * sin >= LABEL_SPACING_EM * l.font - 1e-9, "{n}: {l:?}");
        }
        assert_eq!(bar_label_layout(8), LabelLayout { font: LABEL_FONT_MAX, stride: 1 });
    }
}

/// Errors of [`save_png`].
#[derive(Debug, thiserror::Error)]
pub enum PngError {
    #[error("cannot render SVG: {0}")]
    Svg(String),
    #[error("cannot write {path}: {message}")]
    Write { path: std::path::PathBuf, message: String },
}

/// Rasterise an SVG chart to a PNG file (system fonts for the text; DejaVu Sans preferred).
pub fn save_png(svg: &str, path: &std::path::Path) -> Result<(), PngError> {
    use resvg::{tiny_skia, usvg};
    let mut opt = usvg::Options::default();
    opt.fontdb_mut().load_system_fonts();
    opt.font_family = "DejaVu Sans".into();
    let tree = usvg::Tree::from_str(svg, &opt).map_err(|e| PngError::Svg(e.to_string()))?;
    let size = tree.size().to_int_size();
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height()).ok_or_else(|| PngError::Svg("empty image".into()))?;
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap.save_png(path).map_err(|e| PngError::Write { path: path.to_path_buf(), message: e.to_string() })
}

#[cfg(test)]
mod png_tests {
    #[test]
    fn png_has_the_svg_size_and_drawn_bars() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bars.png");
        let svg = super::bar_chart("t", "n", &["a".into(), "b".into()], &[3.0, 1.0]);
        super::save_png(&svg, &p).unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        assert_eq!((img.width(), img.height()), (720, 420));
        // the bar colour #3b6ea5 is present, the page is not blank
        assert!(img.pixels().any(|px| px.0 == [0x3b, 0x6e, 0xa5]));
    }

    /// The corners of every rotated text (the bar labels) in picture coordinates, as laid out by
    /// usvg with the system fonts, with its text.
    fn rotated_text_boxes(group: &resvg::usvg::Group, out: &mut Vec<([(f64, f64); 4], String)>) {
        use resvg::usvg::{tiny_skia_path::Point, Node};
        for node in group.children() {
            match node {
                Node::Group(g) => rotated_text_boxes(g, out),
                Node::Text(t) => {
                    let tr = t.abs_transform();
                    if tr.kx.abs() < 1e-3 || (tr.kx.abs() - 1.0).abs() < 1e-3 {
                        continue; // horizontal, or the y axis title (90 degrees)
                    }
                    let b = t.bounding_box();
                    let mut pts = [
                        Point::from_xy(b.left(), b.top()),
                        Point::from_xy(b.right(), b.top()),
                        Point::from_xy(b.right(), b.bottom()),
                        Point::from_xy(b.left(), b.bottom()),
                    ];
                    tr.map_points(&mut pts);
                    let text: String = t.chunks().iter().map(|c| c.text()).collect();
                    out.push((pts.map(|p| (f64::from(p.x), f64::from(p.y))), text));
                }
                _ => {}
            }
        }
    }

    /// Separating-axis test for two convex quadrilaterals.
    fn quads_overlap(a: &[(f64, f64); 4], b: &[(f64, f64); 4]) -> bool {
        for q in [a, b] {
            for i in 0..4 {
                let (p0, p1) = (q[i], q[(i + 1) % 4]);
                let n = (p0.1 - p1.1, p1.0 - p0.0);
                let proj = |r: &[(f64, f64); 4]| {
                    r.iter().map(|p| p.0 * n.0 + p.1 * n.1).fold((f64::INFINITY, f64::NEG_INFINITY), |m, v| (m.0.min(v), m.1.max(v)))
                };
                let (pa, pb) = (proj(a), proj(b));
                if pa.1 <= pb.0 || pb.1 <= pa.0 {
                    return false;
                }
            }
        }
        true
    }

    #[test]
    fn rotated_bar_labels_stay_inside_and_apart_when_laid_out() {
        let mut opt = resvg::usvg::Options::default();
        opt.fontdb_mut().load_system_fonts();
        if opt.fontdb.is_empty() {
            println!("skipped: no system fonts to lay the labels out with");
            return;
        }
        opt.font_family = "DejaVu Sans".into();
        for n in [2usize, 8, 25, 60, 120] {
            // Wide characters (capitals, W, digits) and names far too long for the room.
            let labels: Vec<String> =
                (0..n).map(|i| format!("C{i:07} WIDE MAGNETIC RESONANCE WWWW IMAGING OF THE WHOLE BODY {i}")).collect();
            let values: Vec<f64> = (0..n).map(|i| (i % 7) as f64).collect();
            let svg = super::bar_chart("labels", "images", &labels, &values);
            let tree = resvg::usvg::Tree::from_str(&svg, &opt).unwrap();
            let mut boxes = Vec::new();
            rotated_text_boxes(tree.root(), &mut boxes);
            let layout = super::bar_label_layout(n);
            // The x axis is the last line drawn.
            let last_line = &svg[svg.rfind("<line").unwrap()..];
            let axis_y: f64 = last_line.split("y1=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
            assert_eq!(boxes.len(), n.div_ceil(layout.stride), "{n} bars: one label per shown bar");
            for (q, text) in &boxes {
                assert!(text.ends_with('…'), "{n}: {text} not shortened");
                for &(x, y) in q {
                    assert!((0.0..=720.0).contains(&x) && (0.0..=420.0).contains(&y), "{n} bars: '{text}' leaves the picture at ({x:.1}, {y:.1})");
                    assert!(y > axis_y, "{n} bars: '{text}' reaches above the axis at {axis_y}");
                }
            }
            for (i, a) in boxes.iter().enumerate() {
                for b in &boxes[i + 1..] {
                    assert!(!quads_overlap(&a.0, &b.0), "{n} bars: '{}' overlaps '{}'", a.1, b.1);
                }
            }
        }
        // Short labels stay whole.
        let svg = super::bar_chart("t", "n", &["modality (80)".into(), "Laterality flipped".into()], &[1.0, 2.0]);
        let tree = resvg::usvg::Tree::from_str(&svg, &opt).unwrap();
        let mut boxes = Vec::new();
        rotated_text_boxes(tree.root(), &mut boxes);
        let texts: Vec<&str> = boxes.iter().map(|b| b.1.as_str()).collect();
        assert_eq!(texts, ["modality (80)", "Laterality flipped"]);
        // ... and the chart has no blank band under them: the bottom margin is sized to the
        // longest label (by a generous width estimate), so it ends near the bottom edge.
        let lowest = boxes.iter().flat_map(|b| b.0.iter().map(|p| p.1)).fold(0.0f64, f64::max);
        assert!(lowest <= 420.0 && lowest > 420.0 - 24.0, "lowest label point {lowest}");
    }
}
