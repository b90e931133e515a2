//! Small dependency-free SVG charts (bar, scatter, line) for reports and dataset statistics.
//!
//! Plots are plain SVG 1.1 text, so they embed in HTML reports as is and open in any browser.
use std::fmt::Write;

const W: f64 = 720.0;
const H: f64 = 420.0;
const ML: f64 = 90.0; // left margin (room for rotated labels of the first bars)
const MR: f64 = 20.0;
const MT: f64 = 40.0;
const MB: f64 = 150.0; // room for rotated category labels

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn frame(title: &str, ylabel: &str, xlabel: &str) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">"#
    );
    let _ = write!(s, r##"<rect width="{W}" height="{H}" fill="#ffffff"/>"##);
    let _ = write!(s, r#"<text x="{}" y="24" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#, W / 2.0, esc(title));
    let _ = write!(
        s,
        r#"<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">{}</text>"#,
        MT + (H - MT - MB) / 2.0,
        MT + (H - MT - MB) / 2.0,
        esc(ylabel)
    );
    if !xlabel.is_empty() {
        let _ = write!(s, r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#, ML + (W - ML - MR) / 2.0, H - 10.0, esc(xlabel));
    }
    s
}

/// Axis maximum for data whose largest value is `max`: integer data gets a multiple of 4 so the
/// four grid steps fall on whole numbers.
fn nice_max(max: f64, integer: bool) -> f64 {
    let m = max.max(1e-9) * 1.05;
    if integer {
        ((m / 4.0).ceil() * 4.0).max(4.0)
    } else {
        m
    }
}

fn y_axis(s: &mut String, ymax: f64) {
    let ph = H - MT - MB;
    let integer = ymax.fract() == 0.0 && (ymax / 4.0).fract() == 0.0;
    for i in 0..=4 {
        let v = ymax * i as f64 / 4.0;
        let y = MT + ph - ph * i as f64 / 4.0;
        let _ = write!(s, r##"<line x1="{ML}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#dddddd"/>"##, W - MR);
        let label = if integer || ymax >= 100.0 { format!("{v:.0}") } else { format!("{v:.2}") };
        let _ = write!(s, r#"<text x="{}" y="{:.1}" text-anchor="end">{label}</text>"#, ML - 6.0, y + 4.0);
    }
    let _ = write!(s, r##"<line x1="{ML}" x2="{ML}" y1="{MT}" y2="{}" stroke="#333333"/>"##, H - MB);
}

/// A vertical bar chart: one bar per (label, value); labels are rotated under the axis.
pub fn bar_chart(title: &str, ylabel: &str, labels: &[String], values: &[f64]) -> String {
    let mut s = frame(title, ylabel, "");
    let integer = values.iter().all(|v| v.fract() == 0.0);
    let ymax = nice_max(values.iter().cloned().fold(0.0f64, f64::max), integer);
    y_axis(&mut s, ymax);
    let ph = H - MT - MB;
    let n = values.len().max(1) as f64;
    let slot = (W - ML - MR) / n;
    for (i, (l, &v)) in labels.iter().zip(values).enumerate() {
        let h = ph * v / ymax;
        let x = ML + slot * i as f64 + slot * 0.1;
        let _ = write!(
            s,
            r##"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="#3b6ea5"><title>{}: {v}</title></rect>"##,
            MT + ph - h,
            slot * 0.8,
            esc(l)
        );
        let cx = x + slot * 0.4;
        let ty = H - MB + 12.0;
        // long names are shortened so the rotated labels stay inside the picture (full name in the tooltip)
        let short: String = if l.chars().count() > 22 { l.chars().take(21).chain(std::iter::once('…')).collect() } else { l.clone() };
        let _ = write!(s, r#"<text x="{cx:.1}" y="{ty:.1}" text-anchor="end" font-size="10" transform="rotate(-60 {cx:.1} {ty:.1})">{}</text>"#, esc(&short));
    }
    s.push_str("</svg>\n");
    s
}

/// A scatter plot of (x, y) points, optionally with a log10 x axis.
pub fn scatter(title: &str, xlabel: &str, ylabel: &str, points: &[(f64, f64)], log_x: bool) -> String {
    let mut s = frame(title, ylabel, xlabel);
    let tx = |x: f64| if log_x { x.max(1e-9).log10() } else { x };
    let (xmin, xmax) = points.iter().map(|p| tx(p.0)).fold((f64::INFINITY, f64::NEG_INFINITY), |a, x| (a.0.min(x), a.1.max(x)));
    let (xmin, xmax) = if xmin.is_finite() && xmax > xmin { (xmin, xmax) } else { (0.0, 1.0) };
    let ymax = points.iter().map(|p| p.1).fold(0.0f64, f64::max).max(1e-9) * 1.05;
    y_axis(&mut s, ymax);
    let (pw, ph) = (W - ML - MR, H - MT - MB);
    for i in 0..=4 {
        let v = xmin + (xmax - xmin) * i as f64 / 4.0;
        let x = ML + pw * i as f64 / 4.0;
        let label = if log_x { format!("{:.0}", 10f64.powf(v)) } else { format!("{v:.2}") };
        let _ = write!(s, r#"<text x="{x:.1}" y="{}" text-anchor="middle">{label}</text>"#, H - MB + 16.0);
    }
    for &(x, y) in points {
        let px = ML + pw * (tx(x) - xmin) / (xmax - xmin);
        let py = MT + ph - ph * y / ymax;
        let _ = write!(s, r##"<circle cx="{px:.1}" cy="{py:.1}" r="3.5" fill="#c0504d" fill-opacity="0.7"/>"##);
    }
    s.push_str("</svg>\n");
    s
}

/// Line chart of one or more named series over a shared x range.
pub fn lines(title: &str, xlabel: &str, ylabel: &str, series: &[(String, Vec<(f64, f64)>)]) -> String {
    let mut s = frame(title, ylabel, xlabel);
    let all: Vec<(f64, f64)> = series.iter().flat_map(|(_, v)| v.iter().copied()).collect();
    let (xmin, xmax) = all.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, p| (a.0.min(p.0), a.1.max(p.0)));
    let (xmin, xmax) = if xmin.is_finite() && xmax > xmin { (xmin, xmax) } else { (0.0, 1.0) };
    let ymax = all.iter().map(|p| p.1).fold(0.0f64, f64::max).max(1e-9) * 1.05;
    y_axis(&mut s, ymax);
    let (pw, ph) = (W - ML - MR, H - MT - MB);
    for i in 0..=4 {
        let v = xmin + (xmax - xmin) * i as f64 / 4.0;
        let _ = write!(s, r#"<text x="{:.1}" y="{}" text-anchor="middle">{v:.2}</text>"#, ML + pw * i as f64 / 4.0, H - MB + 16.0);
    }
    const COLORS: [&str; 6] = ["#3b6ea5", "#c0504d", "#9bbb59", "#8064a2", "#f79646", "#4bacc6"];
    for (k, (name, pts)) in series.iter().enumerate() {
        let c = COLORS[k % COLORS.len()];
        let path: Vec<String> = pts
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", ML + pw * (x - xmin) / (xmax - xmin), MT + ph - ph * y / ymax))
            .collect();
        let _ = write!(s, r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"#, path.join(" "));
        let ly = MT + 14.0 * k as f64 + 10.0;
        let _ = write!(s, r#"<rect x="{}" y="{:.1}" width="10" height="10" fill="{c}"/><text x="{}" y="{:.1}">{}</text>"#, W - MR - 150.0, ly - 9.0, W - MR - 135.0, ly, esc(name));
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
        let svg = scatter("t", "x", "y", &[(1.0, 0.5), (100.0, 0.2), (1000.0, 0.9)], true);
        assert_eq!(svg.matches("<circle").count(), 3);
        let svg = lines("t", "x", "y", &[("a".into(), vec![(0.0, 0.1), (1.0, 0.3)])]);
        assert_eq!(svg.matches("<polyline").count(), 1);
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
}
