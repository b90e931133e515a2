//! Renders an [`Analysis`] as one self-contained HTML page (inline CSS, inline SVG plots,
//! thumbnails as `data:` URIs), a Markdown summary, `analysis.json` and the SVG plots.
//!
//! Files written by [`write_report`] into the output directory: `report.html`, `summary.md`,
//! `analysis.json`, `per_level_f1.svg`, `concept_f1_vs_frequency.svg`, `error_kinds.svg` and,
//! when a scores file was given, `threshold_curve.svg`.
use std::fmt::Write;
use std::path::{Path, PathBuf};

use crate::ontology::Level;
use crate::report::analyse::{Analysis, AnalyseError, Confusion, ErrorKind, Mark, NamedConcept, NONE, SEVERAL};
use crate::report::plot;

/// Confusion tables with more columns than this are shown as a list of their largest cells.
const MAX_MATRIX_COLS: usize = 25;
/// Concepts listed in the per-concept table (by support); the JSON has them all.
const TOP_CONCEPTS: usize = 30;

/// One SVG plot: its file name in the output directory, a title and the SVG text.
#[derive(Debug, Clone, PartialEq)]
pub struct Plot {
    pub file: String,
    pub title: String,
    pub svg: String,
}

/// Paths written by [`write_report`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReportFiles {
    pub html: PathBuf,
    pub markdown: PathBuf,
    pub json: PathBuf,
    pub plots: Vec<PathBuf>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn level_rank(l: &str) -> usize {
    Level::ALL.iter().position(|x| x.as_str() == l).unwrap_or(Level::ALL.len())
}

/// Per-level rows of the metrics in [`Level::ALL`] order.
fn level_rows(a: &Analysis) -> Vec<(&String, &crate::eval::metrics::LevelScore)> {
    let mut v: Vec<_> = a.metrics.per_level.iter().collect();
    v.sort_by_key(|(l, _)| (level_rank(l), l.to_string()));
    v
}

fn name_of<'a>(a: &'a Analysis, key: &'a str) -> &'a str {
    match key {
        NONE => "no concept on this level",
        SEVERAL => "more than one concept",
        k => a.names.get(k).map_or("", |s| s.as_str()),
    }
}

/// The plots of the analysis (the threshold curve only with a scores file).
pub fn plots(a: &Analysis) -> Vec<Plot> {
    let mut out = Vec::new();
    let lv = level_rows(a);
    out.push(Plot {
        file: "per_level_f1.svg".into(),
        title: "F1 per ontology level".into(),
        svg: plot::bar_chart(
            "F1 per ontology level",
            "mean image F1",
            &lv.iter().map(|(l, s)| format!("{l} ({})", s.n_images)).collect::<Vec<_>>(),
            &lv.iter().map(|(_, s)| s.f1).collect::<Vec<_>>(),
        ),
    });
    let pts: Vec<(f64, f64)> =
        a.metrics.per_concept.iter().filter(|c| c.support > 0).map(|c| (c.support as f64, c.f1)).collect();
    out.push(Plot {
        file: "concept_f1_vs_frequency.svg".into(),
        title: "Per-concept F1 against frequency".into(),
        svg: plot::scatter("Per-concept F1 against frequency", "ground-truth images (log scale)", "F1", &pts, true),
    });
    out.push(Plot {
        file: "error_kinds.svg".into(),
        title: "Images per error kind".into(),
        svg: plot::bar_chart(
            "Images per error kind",
            "images",
            &a.error_counts.iter().map(|k| k.title.clone()).collect::<Vec<_>>(),
            &a.error_counts.iter().map(|k| k.count as f64).collect::<Vec<_>>(),
        ),
    });
    if let Some(c) = &a.threshold_curve {
        let mut series = vec![(
            "ImageCLEF F1".to_string(),
            c.points.iter().map(|p| (f64::from(p.threshold), p.imageclef_f1)).collect::<Vec<_>>(),
        )];
        let mut levels: Vec<&String> = c.points.iter().flat_map(|p| p.per_level_f1.keys()).collect();
        levels.sort_by_key(|l| (level_rank(l), l.to_string()));
        levels.dedup();
        for l in levels {
            series.push((
                format!("{l} F1"),
                c.points.iter().map(|p| (f64::from(p.threshold), p.per_level_f1.get(l).copied().unwrap_or(0.0))).collect(),
            ));
        }
        out.push(Plot {
            file: "threshold_curve.svg".into(),
            title: "F1 against the global threshold".into(),
            svg: plot::lines("F1 against the global threshold", "threshold", "F1", &series),
        });
    }
    out
}

const CSS: &str = r#"
:root { --ok: #2e7d32; --miss: #c62828; --extra: #e65100; --ink: #1d2733; --mute: #5f6b7a; --line: #d8dee6; --bg: #f6f8fa; }
* { box-sizing: border-box; }
body { font-family: "DejaVu Sans", "Segoe UI", Arial, sans-serif; color: var(--ink); margin: 0; background: #fff; font-size: 14px; line-height: 1.45; }
main { max-width: 1180px; margin: 0 auto; padding: 20px 28px 60px; }
header { border-bottom: 3px solid #3b6ea5; margin-bottom: 18px; padding-bottom: 8px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 22px 0 6px; }
.inputs { color: var(--mute); font-size: 12px; margin: 0; }
.inputs code { background: var(--bg); padding: 1px 4px; border-radius: 3px; }
nav { font-size: 13px; margin: 8px 0 0; }
nav a { margin-right: 14px; color: #3b6ea5; text-decoration: none; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 14px 0; }
.card { background: var(--bg); border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; flex: 1 1 140px; }
.card .v { font-size: 24px; font-weight: bold; }
.card .k { color: var(--mute); font-size: 12px; }
.card.big { background: #e8f0f9; border-color: #9db7d6; flex: 2 1 280px; }
td.kind { white-space: nowrap; }
figure.wide { max-width: 760px; }
.card.big .v { font-size: 34px; color: #244c7a; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: var(--bg); font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.two { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.two > * { flex: 1 1 420px; }
figure { margin: 6px 0; }
figure svg { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
.confusion td.n { min-width: 38px; }
.confusion td.diag { background: #dcefdc; font-weight: bold; }
.confusion td.off { background: #fbe3e1; }
.confusion th small, .samples small { color: var(--mute); font-weight: normal; }
.samples td { padding: 6px 8px; }
.samples td.img { width: 150px; text-align: center; }
.samples img { display: block; margin: 0 auto 4px; max-width: 128px; max-height: 128px; border: 1px solid var(--line); image-rendering: auto; }
.ph { width: 128px; height: 96px; margin: 0 auto 4px; border: 1px dashed #b0b8c4; color: var(--mute); background: var(--bg); display: flex; flex-direction: column; justify-content: center; font-size: 11px; padding: 4px; word-break: break-word; }
.samples ul { list-style: none; margin: 0; padding: 0; }
.samples li { margin: 1px 0; white-space: nowrap; }
.samples li .cui { font-family: "DejaVu Sans Mono", monospace; font-size: 12px; }
.samples li .lvl { color: var(--mute); font-size: 11px; }
li.match .m { color: var(--ok); } li.missed { color: var(--miss); } li.extra { color: var(--extra); }
li.missed .cui, li.missed .nm { text-decoration: line-through; }
.m { display: inline-block; width: 14px; font-weight: bold; }
.legend span { margin-right: 16px; }
.kind .desc { color: var(--mute); margin: 0 0 4px; }
.none { color: var(--mute); font-style: italic; }
.note { background: #fff8e1; border-left: 4px solid #f0b429; padding: 6px 10px; margin: 6px 0; }
"#;

fn concept_li(c: &NamedConcept) -> String {
    let (class, mark, title) = match c.mark {
        Mark::Match => ("match", "&#10003;", "in both"),
        Mark::Missed => ("missed", "&#10007;", "missed: in the ground truth, not predicted"),
        Mark::Extra => ("extra", "+", "extra: predicted, not in the ground truth"),
    };
    format!(
        r#"<li class="{class}" title="{title}"><span class="m">{mark}</span><span class="cui">{}</span> <span class="nm">{}</span> <span class="lvl">{}</span></li>"#,
        esc(&c.cui),
        esc(&c.name),
        esc(c.level.as_deref().unwrap_or("no level"))
    )
}

fn concept_list(v: &[NamedConcept]) -> String {
    if v.is_empty() {
        return r#"<span class="none">(nothing)</span>"#.to_string();
    }
    format!("<ul>{}</ul>", v.iter().map(concept_li).collect::<String>())
}

fn confusion_html(a: &Analysis, c: &Confusion) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<h3>{} <small>({} images, {:.1}% on the diagonal)</small></h3>"#,
        esc(&c.level),
        c.n_images,
        100.0 * c.accuracy()
    );
    if c.cols.len() > MAX_MATRIX_COLS {
        let mut cells: Vec<(usize, &str, &str)> = Vec::new();
        for (r, row) in c.rows.iter().enumerate() {
            for (k, col) in c.cols.iter().enumerate() {
                if row != col && c.counts[r][k] > 0 {
                    cells.push((c.counts[r][k], row, col));
                }
            }
        }
        cells.sort_by(|x, y| y.0.cmp(&x.0).then_with(|| x.1.cmp(y.1)).then_with(|| x.2.cmp(y.2)));
        let _ = write!(s, r#"<p>{} columns: the {} largest confusions (full table in analysis.json).</p><table class="confusion"><tr><th>ground truth</th><th>predicted</th><th class="n">images</th></tr>"#, c.cols.len(), MAX_MATRIX_COLS);
        for (n, r, k) in cells.into_iter().take(MAX_MATRIX_COLS) {
            let _ = write!(s, "<tr><td>{} <small>{}</small></td><td>{} <small>{}</small></td><td class=\"n\">{n}</td></tr>", esc(r), esc(name_of(a, r)), esc(k), esc(name_of(a, k)));
        }
        s.push_str("</table>");
        return s;
    }
    s.push_str(r#"<table class="confusion"><tr><th>ground truth &#8595; / predicted &#8594;</th>"#);
    for k in &c.cols {
        let _ = write!(s, "<th>{}<br><small>{}</small></th>", esc(k), esc(name_of(a, k)));
    }
    s.push_str(r#"<th class="n">total</th></tr>"#);
    for (r, row) in c.rows.iter().enumerate() {
        let _ = write!(s, "<tr><th>{}<br><small>{}</small></th>", esc(row), esc(name_of(a, row)));
        for (k, col) in c.cols.iter().enumerate() {
            let n = c.counts[r][k];
            let class = if row == col { "n diag" } else if n > 0 { "n off" } else { "n" };
            let text = if n == 0 { String::new() } else { n.to_string() };
            let _ = write!(s, r#"<td class="{class}">{text}</td>"#);
        }
        let _ = write!(s, r#"<td class="n">{}</td></tr>"#, c.counts[r].iter().sum::<usize>());
    }
    s.push_str("</table>");
    s
}

/// The whole report as one self-contained HTML page.
pub fn render_html(a: &Analysis) -> String {
    let plots = plots(a);
    let svg_of = |file: &str| plots.iter().find(|p| p.file == file).map(|p| p.svg.clone()).unwrap_or_default();
    let m = &a.metrics;
    let mut s = String::new();
    s.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    s.push_str("<title>conceptree error analysis</title><style>");
    s.push_str(CSS);
    s.push_str("</style></head><body><main>\n<header><h1>Concept detection: error analysis</h1>");
    if !a.inputs.is_empty() {
        s.push_str(r#"<p class="inputs">"#);
        for (k, v) in &a.inputs {
            let _ = write!(s, "{} <code>{}</code> &nbsp; ", esc(k), esc(v));
        }
        s.push_str("</p>");
    }
    s.push_str(r##"<nav><a href="#headline">Headline</a><a href="#levels">Levels</a><a href="#errors">Error kinds</a><a href="#confusion">Confusion</a><a href="#samples">Samples</a><a href="#concepts">Concepts</a><a href="#thresholds">Thresholds</a></nav></header>"##);

    // Headline
    s.push_str(r#"<section id="headline"><div class="cards">"#);
    let _ = write!(s, r#"<div class="card big"><div class="v" id="imageclef-f1">{:.4}</div><div class="k">ImageCLEF F1 (official, mean over {} images)</div></div>"#, m.imageclef_f1, m.n_images);
    let correct = a.count(ErrorKind::Correct);
    let _ = write!(s, r#"<div class="card"><div class="v">{correct} / {}</div><div class="k">images exactly right</div></div>"#, m.n_images);
    if let Some(h) = &m.hierarchical {
        let _ = write!(s, r#"<div class="card"><div class="v">{:.4}</div><div class="k">hierarchical F1</div></div>"#, h.f1);
    }
    if let Some(c) = m.coherence_rate {
        let _ = write!(s, r#"<div class="card"><div class="v">{:.1}%</div><div class="k">coherent predictions</div></div>"#, 100.0 * c);
    }
    let _ = write!(s, r#"<div class="card"><div class="v">{:.4}</div><div class="k">micro F1 (concepts)</div></div><div class="card"><div class="v">{:.4}</div><div class="k">macro F1 ({} concepts)</div></div>"#, m.averages.micro_f1, m.averages.macro_f1, m.averages.n_concepts_macro);
    s.push_str("</div>");
    let sk = &m.skipped;
    let _ = write!(s, "<p>Missing predictions (scored 0): {}; empty ground truth (ignored): {}; predictions for unknown ids (ignored): {}; sample images without thumbnail: {}.</p>", sk.missing_predictions, sk.ignored_empty_gt, sk.extra_predictions, a.missing_thumbnails);
    for n in &a.notes {
        let _ = write!(s, r#"<p class="note">{}</p>"#, esc(n));
    }
    s.push_str("</section>\n");

    // Levels
    s.push_str(r#"<section id="levels"><h2>Per-level scores</h2><p>Both sets restricted to one ontology level; mean over the images whose ground truth has a concept on that level (ImageCLEF 2025 secondary-score style).</p><div class="two"><div><table><tr><th>level</th><th class="n">F1</th><th class="n">precision</th><th class="n">recall</th><th class="n">images</th></tr>"#);
    for (l, v) in level_rows(a) {
        let _ = write!(s, r#"<tr><td>{}</td><td class="n">{:.4}</td><td class="n">{:.4}</td><td class="n">{:.4}</td><td class="n">{}</td></tr>"#, esc(l), v.f1, v.precision, v.recall, v.n_images);
    }
    s.push_str("</table></div>");
    let _ = writeln!(s, "<figure>{}</figure></div></section>", svg_of("per_level_f1.svg"));

    // Error kinds
    s.push_str(r#"<section id="errors"><h2>Error kinds</h2><p>Each image counts once, under the first rule that holds, in this order (see <code>src/report/analyse.rs</code>).</p><div class="two"><div><table><tr><th>#</th><th>kind</th><th class="n">images</th><th class="n">share</th><th>rule</th></tr>"#);
    for (i, k) in a.error_counts.iter().enumerate() {
        let _ = write!(s, r##"<tr><td class="n">{}</td><td class="kind"><a href="#kind-{}">{}</a></td><td class="n">{}</td><td class="n">{:.1}%</td><td>{}</td></tr>"##, i + 1, k.kind.as_str(), esc(&k.title), k.count, 100.0 * k.share, esc(&k.description));
    }
    s.push_str("</table></div>");
    let _ = writeln!(s, "<figure>{}</figure></div></section>", svg_of("error_kinds.svg"));

    // Confusion
    s.push_str(r#"<section id="confusion"><h2>Confusion tables</h2><p>Levels where every ground-truth image names at most one concept (ancestors set aside). Rows: ground truth; columns: prediction.</p>"#);
    if a.confusions.is_empty() {
        s.push_str(r#"<p class="none">No single-label level in this ground truth.</p>"#);
    }
    for c in &a.confusions {
        s.push_str(&confusion_html(a, c));
    }
    s.push_str("</section>\n");

    // Samples
    let _ = write!(s, r#"<section id="samples"><h2>Sample images per error kind</h2><p class="legend">Up to {} images per kind, in id order. <span style="color:var(--ok)">&#10003; predicted and true</span><span style="color:var(--miss)">&#10007; missed</span><span style="color:var(--extra)">+ extra</span></p>"#, a.config.samples_per_kind);
    for ks in &a.samples {
        let count = a.count(ks.kind);
        let _ = write!(s, r#"<section class="kind" id="kind-{}"><h3>{} <small>({} images)</small></h3><p class="desc">{}</p>"#, ks.kind.as_str(), ks.kind.title(), count, esc(ks.kind.description()));
        if ks.samples.is_empty() {
            s.push_str(r#"<p class="none">No image of this kind.</p></section>"#);
            continue;
        }
        s.push_str(r#"<table class="samples"><tr><th>image</th><th>ground truth</th><th>prediction</th></tr>"#);
        for smp in &ks.samples {
            s.push_str(r#"<tr><td class="img">"#);
            match (&smp.thumbnail, &smp.thumbnail_problem) {
                (Some(uri), _) => {
                    let _ = write!(s, r#"<img src="{uri}" alt="{}">"#, esc(&smp.id));
                }
                (None, why) => {
                    let _ = write!(s, r#"<div class="ph">no thumbnail<br><small>{}</small></div>"#, esc(why.as_deref().unwrap_or("")));
                }
            }
            let _ = write!(s, "<b>{}</b><br><small>F1 {:.3}</small></td><td>{}</td><td>{}</td></tr>", esc(&smp.id), smp.f1, concept_list(&smp.gt), concept_list(&smp.pred));
        }
        s.push_str("</table></section>");
    }
    s.push_str("</section>\n");

    // Concepts
    let _ = write!(s, r#"<section id="concepts"><h2>Per-concept F1 against frequency</h2><figure class="wide">{}</figure><p>The {} most frequent concepts:</p><table><tr><th>concept</th><th>name</th><th class="n">images</th><th class="n">tp</th><th class="n">fp</th><th class="n">fn</th><th class="n">F1</th></tr>"#, svg_of("concept_f1_vs_frequency.svg"), TOP_CONCEPTS.min(m.per_concept.len()));
    let mut top: Vec<_> = m.per_concept.iter().collect();
    top.sort_by(|x, y| y.support.cmp(&x.support).then_with(|| x.cui.cmp(&y.cui)));
    for c in top.iter().take(TOP_CONCEPTS) {
        let _ = write!(s, r#"<tr><td>{}</td><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{:.3}</td></tr>"#, esc(&c.cui), esc(name_of(a, &c.cui)), c.support, c.tp, c.fp, c.fn_, c.f1);
    }
    s.push_str("</table>");
    if top.len() > TOP_CONCEPTS {
        let _ = write!(s, "<p>{} more concepts in analysis.json.</p>", top.len() - TOP_CONCEPTS);
    }
    s.push_str("</section>\n");

    // Thresholds
    s.push_str(r#"<section id="thresholds"><h2>Threshold curve</h2>"#);
    match &a.threshold_curve {
        Some(c) => {
            let _ = write!(s, "<p>Best global threshold {:.2}: ImageCLEF F1 {:.4}. Images without scores (scored as empty): {}; score lines for unknown ids (ignored): {}.</p>", c.best_threshold, c.best_f1, c.n_images_without_scores, c.n_scores_not_in_gt);
            let _ = write!(s, r#"<figure class="wide">{}</figure>"#, svg_of("threshold_curve.svg"));
        }
        None => s.push_str(r#"<p class="note">Skipped: no scores file given (<code>--scores</code>, one line per image: <code>id&lt;TAB&gt;CUI:p;CUI:p</code>).</p>"#),
    }
    s.push_str("</section>\n</main></body></html>\n");
    s
}

/// A Markdown summary: headline, per-level table, error-kind counts, confusion tables.
pub fn render_markdown(a: &Analysis) -> String {
    let m = &a.metrics;
    let mut s = String::new();
    let _ = writeln!(s, "# Concept detection: error analysis\n");
    for (k, v) in &a.inputs {
        let _ = writeln!(s, "- {k}: `{v}`");
    }
    if !a.inputs.is_empty() {
        s.push('\n');
    }
    let _ = writeln!(s, "**ImageCLEF F1: {:.4}** over {} images ({} exactly right).\n", m.imageclef_f1, m.n_images, a.count(ErrorKind::Correct));
    let _ = writeln!(s, "| figure | value |\n| --- | ---: |");
    let _ = writeln!(s, "| micro F1 | {:.4} |\n| macro F1 | {:.4} |", m.averages.micro_f1, m.averages.macro_f1);
    if let Some(h) = &m.hierarchical {
        let _ = writeln!(s, "| hierarchical F1 | {:.4} |", h.f1);
    }
    if let Some(c) = m.coherence_rate {
        let _ = writeln!(s, "| coherence rate | {:.4} |", c);
    }
    let sk = &m.skipped;
    let _ = writeln!(s, "| missing predictions (scored 0) | {} |\n| empty ground truth (ignored) | {} |\n| predictions for unknown ids (ignored) | {} |\n| sample images without thumbnail | {} |", sk.missing_predictions, sk.ignored_empty_gt, sk.extra_predictions, a.missing_thumbnails);
    if let Some(c) = &a.threshold_curve {
        let _ = writeln!(s, "| best global threshold (ImageCLEF F1) | {:.2} ({:.4}) |", c.best_threshold, c.best_f1);
    }

    let _ = writeln!(s, "\n## Per-level scores\n\n| level | F1 | precision | recall | images |\n| --- | ---: | ---: | ---: | ---: |");
    for (l, v) in level_rows(a) {
        let _ = writeln!(s, "| {l} | {:.4} | {:.4} | {:.4} | {} |", v.f1, v.precision, v.recall, v.n_images);
    }

    let _ = writeln!(s, "\n## Error kinds\n\nEach image counts once, under the first rule that holds (in this order).\n\n| # | kind | images | share | rule |\n| ---: | --- | ---: | ---: | --- |");
    for (i, k) in a.error_counts.iter().enumerate() {
        let _ = writeln!(s, "| {} | {} | {} | {:.1}% | {} |", i + 1, k.title, k.count, 100.0 * k.share, md(&k.description));
    }

    let _ = writeln!(s, "\n## Confusion tables\n\nRows: ground truth; columns: prediction.");
    if a.confusions.is_empty() {
        let _ = writeln!(s, "\nNo single-label level in this ground truth.");
    }
    for c in &a.confusions {
        let _ = writeln!(s, "\n### {} ({} images, {:.1}% on the diagonal)\n", c.level, c.n_images, 100.0 * c.accuracy());
        let label = |k: &str| if k == NONE || k == SEVERAL { k.to_string() } else { format!("{k} {}", md(name_of(a, k))) };
        let _ = writeln!(s, "| ground truth \\ predicted | {} |", c.cols.iter().map(|k| label(k)).collect::<Vec<_>>().join(" | "));
        let _ = writeln!(s, "| --- |{}", " ---: |".repeat(c.cols.len()));
        for (r, row) in c.rows.iter().enumerate() {
            let cells: Vec<String> = c.counts[r].iter().map(|n| n.to_string()).collect();
            let _ = writeln!(s, "| {} | {} |", label(row), cells.join(" | "));
        }
    }

    let _ = writeln!(s, "\n## Samples\n");
    for ks in &a.samples {
        for smp in &ks.samples {
            let fmt = |v: &[NamedConcept]| {
                v.iter()
                    .map(|c| {
                        let mark = match c.mark {
                            Mark::Match => "",
                            Mark::Missed => " (missed)",
                            Mark::Extra => " (extra)",
                        };
                        format!("{} {}{mark}", c.cui, md(&c.name))
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            let _ = writeln!(s, "- **{}** `{}`: GT: {} | predicted: {}", ks.kind.title(), smp.id, fmt(&smp.gt), fmt(&smp.pred));
        }
    }
    let _ = writeln!(s, "\nThumbnails and plots: `report.html`.");
    if !a.notes.is_empty() {
        let _ = writeln!(s, "\n## Notes\n");
        for n in &a.notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    s
}

fn write_file(path: PathBuf, text: &str) -> Result<PathBuf, AnalyseError> {
    std::fs::write(&path, text).map_err(|source| AnalyseError::Write { path: path.clone(), source })?;
    Ok(path)
}

/// Writes `report.html`, `summary.md`, `analysis.json` and the SVG plots into `out` (created if
/// missing; files of the same names are overwritten).
pub fn write_report(a: &Analysis, out: &Path) -> Result<ReportFiles, AnalyseError> {
    std::fs::create_dir_all(out).map_err(|source| AnalyseError::Write { path: out.to_path_buf(), source })?;
    let mut plot_paths = Vec::new();
    for p in plots(a) {
        plot_paths.push(write_file(out.join(&p.file), &p.svg)?);
    }
    let json = serde_json::to_string_pretty(a).map_err(|e| AnalyseError::Write {
        path: out.join("analysis.json"),
        source: std::io::Error::other(e),
    })?;
    Ok(ReportFiles {
        json: write_file(out.join("analysis.json"), &json)?,
        markdown: write_file(out.join("summary.md"), &render_markdown(a))?,
        html: write_file(out.join("report.html"), &render_html(a))?,
        plots: plot_paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::metrics::LabelMap;
    use crate::ontology::Ontology;
    use crate::report::analyse::{analyse, AnalyseConfig, ScoreMap};
    use std::collections::BTreeSet;

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn example(scores: bool) -> Analysis {
        let gt: LabelMap = [
            ("1".to_string(), set(&["C0040405", "C0817096"])),
            ("2".to_string(), set(&["C0040405", "C0817096"])),
            ("3".to_string(), set(&["C1306645", "C0022742", "C0205091"])),
        ]
        .into();
        let pred: LabelMap = [
            ("1".to_string(), set(&["C0040405", "C0817096"])),
            ("2".to_string(), set(&["C0024485", "C0817096"])),
            ("3".to_string(), set(&["C1306645", "C0022742", "C0205090"])),
        ]
        .into();
        let sc: ScoreMap = [("1".to_string(), [("C0040405".to_string(), 0.9f32), ("C0817096".to_string(), 0.7)].into())].into();
        analyse(&gt, &pred, &Ontology::builtin(), scores.then_some(&sc), &AnalyseConfig::default()).unwrap()
    }

    #[test]
    fn html_is_self_contained_and_has_every_section() {
        let a = example(false);
        let h = render_html(&a);
        assert!(h.starts_with("<!DOCTYPE html>") && h.trim_end().ends_with("</html>"));
        for k in ErrorKind::ALL {
            assert!(h.contains(&format!("id=\"kind-{}\"", k.as_str())), "{k:?}");
        }
        assert!(h.contains("ImageCLEF F1") && h.contains(&format!("{:.4}", a.metrics.imageclef_f1)));
        assert!(h.contains("X-Ray Computed Tomography") && h.contains("Magnetic Resonance Imaging"));
        assert!(h.contains("Skipped: no scores file given"));
        // Nothing is fetched from elsewhere.
        assert!(!h.contains("src=\"http") && !h.contains("<link") && !h.contains("<script"));
        assert_eq!(h.matches("<svg").count(), 3);
        let md = render_markdown(&a);
        assert!(md.contains("**ImageCLEF F1: ") && md.contains("| Laterality flipped | 1 |") && md.contains("### modality"));
    }

    #[test]
    fn write_report_writes_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = example(true);
        let f = write_report(&a, &dir.path().join("out")).unwrap();
        assert!(f.html.is_file() && f.markdown.is_file() && f.json.is_file());
        let names: Vec<String> = f.plots.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["per_level_f1.svg", "concept_f1_vs_frequency.svg", "error_kinds.svg", "threshold_curve.svg"]);
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&f.json).unwrap()).unwrap();
        assert_eq!(json["error_counts"][1]["kind"], "wrong_modality");
        assert_eq!(json["error_counts"][1]["count"], 1);
        assert!(json["threshold_curve"]["points"].as_array().unwrap().len() == 19);
        let h = std::fs::read_to_string(&f.html).unwrap();
        assert!(h.contains("Best global threshold"));
    }
}
