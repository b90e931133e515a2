//! Renders an [`Analysis`] as one self-contained HTML page (inline CSS, inline SVG plots,
//! thumbnails as `data:` URIs), a Markdown summary, `analysis.json` and the SVG plots.
//!
//! The page and the summary are minijinja templates (`src/report/templates/`, compiled into the
//! binary): the HTML one auto-escapes every value (only the plots from [`crate::report::plot`]
//! and the thumbnails' `data:` URIs are passed through as they are); the Markdown one escapes
//! `|` and line breaks in names with its `md` filter. [`ReportView`] is what both templates see.
//!
//! Files written by [`write_report`] into the output directory: `report.html`, `summary.md`,
//! `analysis.json`, `per_level_f1.svg`, `concept_f1_vs_frequency.svg`, `error_kinds.svg` and,
//! when a scores file was given, `threshold_curve.svg`.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

use crate::eval::metrics::{LevelScore, SkippedCounts};
use crate::ontology::Level;
use crate::report::analyse::{Analysis, AnalyseError, Confusion, ErrorKind, NamedConcept, ThresholdCurve, NONE, SEVERAL};
use crate::report::plot;

/// Confusion tables with more columns than this are shown as a list of their largest cells.
const MAX_MATRIX_COLS: usize = 25;
/// Concepts listed in the per-concept table (by support); the JSON has them all.
const TOP_CONCEPTS: usize = 30;

const HTML_TEMPLATE: &str = include_str!("templates/report.html");
const CSS: &str = include_str!("templates/report.css");
const MARKDOWN_TEMPLATE: &str = include_str!("templates/summary.md");

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

/// Markdown-safe text for a table cell: `|` escaped, line breaks as spaces.
fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn level_rank(l: &str) -> usize {
    Level::ALL.iter().position(|x| x.as_str() == l).unwrap_or(Level::ALL.len())
}

/// Per-level rows of the metrics in [`Level::ALL`] order.
fn level_rows(a: &Analysis) -> Vec<(&String, &LevelScore)> {
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

/// The tooltip of one concept in the F1-against-frequency plot.
fn concept_tooltip(cui: &str, name: &str, support: usize, f1: f64) -> String {
    let images = if support == 1 { "image" } else { "images" };
    format!("{cui} {name}: in {support} ground-truth {images}, F1 {f1:.3}")
}

/// The plots of the analysis (the threshold curve only with a scores file).
pub fn plots(a: &Analysis) -> Vec<Plot> {
    let mut out = Vec::new();
    let lv = level_rows(a);
    out.push(Plot {
        file: "per_level_f1.svg".into(),
        title: "F1 per ontology level".into(),
        svg: plot::bar_chart_scaled(
            "F1 per ontology level",
            "mean image F1",
            &lv.iter().map(|(l, s)| format!("{l} ({})", s.n_images)).collect::<Vec<_>>(),
            &lv.iter().map(|(_, s)| s.f1).collect::<Vec<_>>(),
            Some(1.0),
        ),
    });
    let pts: Vec<plot::Point> = a
        .metrics
        .per_concept
        .iter()
        .filter(|c| c.support > 0)
        .map(|c| plot::Point { x: c.support as f64, y: c.f1, label: concept_tooltip(&c.cui, name_of(a, &c.cui), c.support, c.f1) })
        .collect();
    out.push(Plot {
        file: "concept_f1_vs_frequency.svg".into(),
        title: "Per-concept F1 against frequency".into(),
        svg: plot::scatter("Per-concept F1 against frequency", "ground-truth images with the concept (log scale)", "F1", &pts, true, Some(1.0)),
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
            svg: plot::lines("F1 against the global threshold", "threshold", "F1", &series, Some(1.0)),
        });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// What the templates see

/// One input file named by the user.
#[derive(Debug, Serialize)]
pub(crate) struct InputView<'a> {
    pub name: &'a str,
    pub value: &'a str,
}

/// One row of the per-level table.
#[derive(Debug, Serialize)]
pub(crate) struct LevelView<'a> {
    pub level: &'a str,
    #[serde(flatten)]
    pub score: &'a LevelScore,
}

/// One row of the error-kind table.
#[derive(Debug, Serialize)]
pub(crate) struct KindView<'a> {
    pub kind: &'static str,
    pub title: &'a str,
    pub rule: &'a str,
    pub count: usize,
    pub share: f64,
}

/// A row or column key of a confusion table with its display name.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct KeyView {
    pub key: String,
    pub name: String,
    /// [`NONE`] or [`SEVERAL`] rather than a concept.
    pub special: bool,
}

/// One cell of a confusion matrix: its count and whether it is on the diagonal.
#[derive(Debug, Serialize)]
pub(crate) struct CellView {
    pub n: usize,
    pub diagonal: bool,
}

/// One row of a confusion matrix.
#[derive(Debug, Serialize)]
pub(crate) struct RowView {
    pub key: KeyView,
    pub cells: Vec<CellView>,
    pub total: usize,
}

/// One off-diagonal cell in the list form of a wide confusion table.
#[derive(Debug, Serialize)]
pub(crate) struct ConfusedView {
    pub n: usize,
    pub truth: KeyView,
    pub predicted: KeyView,
}

/// One confusion table, as a matrix or (when wider than [`MAX_MATRIX_COLS`]) as its largest
/// off-diagonal cells.
#[derive(Debug, Serialize)]
pub(crate) struct ConfusionView {
    pub level: String,
    pub n_images: usize,
    pub accuracy: f64,
    pub as_matrix: bool,
    pub n_cols: usize,
    pub max_listed: usize,
    pub cols: Vec<KeyView>,
    pub rows: Vec<RowView>,
    pub largest: Vec<ConfusedView>,
}

/// One sample image.
#[derive(Debug, Serialize)]
pub(crate) struct SampleView<'a> {
    pub id: &'a str,
    pub f1: f64,
    /// `data:image/jpeg;base64,...` (only base64 characters; emitted unescaped).
    pub thumbnail: Option<&'a str>,
    pub thumbnail_problem: Option<&'a str>,
    pub gt: &'a [NamedConcept],
    pub pred: &'a [NamedConcept],
}

/// The samples of one error kind.
#[derive(Debug, Serialize)]
pub(crate) struct KindSamplesView<'a> {
    pub kind: &'static str,
    pub title: &'static str,
    pub rule: &'static str,
    pub count: usize,
    pub samples: Vec<SampleView<'a>>,
}

/// One row of the most-frequent-concepts table.
#[derive(Debug, Serialize)]
pub(crate) struct ConceptView<'a> {
    pub cui: &'a str,
    pub name: &'a str,
    pub support: usize,
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
    pub f1: f64,
}

/// Everything the two templates show.
#[derive(Debug, Serialize)]
pub(crate) struct ReportView<'a> {
    pub inputs: Vec<InputView<'a>>,
    pub imageclef_f1: f64,
    pub n_images: usize,
    pub n_correct: usize,
    pub hierarchical_f1: Option<f64>,
    pub coherence_rate: Option<f64>,
    pub micro_f1: f64,
    pub macro_f1: f64,
    pub n_concepts_macro: usize,
    pub skipped: &'a SkippedCounts,
    pub missing_thumbnails: usize,
    pub notes: &'a [String],
    pub levels: Vec<LevelView<'a>>,
    pub kinds: Vec<KindView<'a>>,
    pub confusions: Vec<ConfusionView>,
    pub samples_per_kind: usize,
    pub samples: Vec<KindSamplesView<'a>>,
    /// The most frequent concepts that occur in the ground truth (support > 0).
    pub top_concepts: Vec<ConceptView<'a>>,
    /// Concepts of the ground truth not in `top_concepts`.
    pub more_concepts: usize,
    pub threshold: Option<&'a ThresholdCurve>,
    /// SVG text by plot file name without `.svg` (`per_level_f1`, ...).
    pub svg: BTreeMap<String, String>,
}

fn key_view(a: &Analysis, k: &str) -> KeyView {
    KeyView { key: k.to_string(), name: name_of(a, k).to_string(), special: k == NONE || k == SEVERAL }
}

fn confusion_view(a: &Analysis, c: &Confusion) -> ConfusionView {
    let as_matrix = c.cols.len() <= MAX_MATRIX_COLS;
    let mut largest = Vec::new();
    if !as_matrix {
        let mut cells: Vec<(usize, &str, &str)> = Vec::new();
        for (r, row) in c.rows.iter().enumerate() {
            for (k, col) in c.cols.iter().enumerate() {
                if row != col && c.counts[r][k] > 0 {
                    cells.push((c.counts[r][k], row, col));
                }
            }
        }
        cells.sort_by(|x, y| y.0.cmp(&x.0).then_with(|| x.1.cmp(y.1)).then_with(|| x.2.cmp(y.2)));
        largest = cells
            .into_iter()
            .take(MAX_MATRIX_COLS)
            .map(|(n, r, k)| ConfusedView { n, truth: key_view(a, r), predicted: key_view(a, k) })
            .collect();
    }
    ConfusionView {
        level: c.level.clone(),
        n_images: c.n_images,
        accuracy: c.accuracy(),
        as_matrix,
        n_cols: c.cols.len(),
        max_listed: MAX_MATRIX_COLS,
        cols: c.cols.iter().map(|k| key_view(a, k)).collect(),
        rows: c
            .rows
            .iter()
            .zip(&c.counts)
            .map(|(row, counts)| RowView {
                key: key_view(a, row),
                cells: counts.iter().zip(&c.cols).map(|(&n, col)| CellView { n, diagonal: col == row }).collect(),
                total: counts.iter().sum(),
            })
            .collect(),
        largest,
    }
}

/// True for a `data:image/jpeg;base64,` URI of base64 characters only (safe unescaped).
fn is_plain_data_uri(uri: &str) -> bool {
    uri.strip_prefix("data:image/jpeg;base64,")
        .is_some_and(|b| b.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=')))
}

impl<'a> ReportView<'a> {
    /// The view of `a` (plots drawn from it).
    pub fn new(a: &'a Analysis) -> ReportView<'a> {
        let m = &a.metrics;
        let mut top: Vec<_> = m.per_concept.iter().filter(|c| c.support > 0).collect();
        top.sort_by(|x, y| y.support.cmp(&x.support).then_with(|| x.cui.cmp(&y.cui)));
        let more_concepts = top.len().saturating_sub(TOP_CONCEPTS);
        ReportView {
            inputs: a.inputs.iter().map(|(k, v)| InputView { name: k, value: v }).collect(),
            imageclef_f1: m.imageclef_f1,
            n_images: m.n_images,
            n_correct: a.count(ErrorKind::Correct),
            hierarchical_f1: m.hierarchical.as_ref().map(|h| h.f1),
            coherence_rate: m.coherence_rate,
            micro_f1: m.averages.micro_f1,
            macro_f1: m.averages.macro_f1,
            n_concepts_macro: m.averages.n_concepts_macro,
            skipped: &m.skipped,
            missing_thumbnails: a.missing_thumbnails,
            notes: &a.notes,
            levels: level_rows(a).into_iter().map(|(l, s)| LevelView { level: l, score: s }).collect(),
            kinds: a
                .error_counts
                .iter()
                .map(|k| KindView { kind: k.kind.as_str(), title: &k.title, rule: &k.description, count: k.count, share: k.share })
                .collect(),
            confusions: a.confusions.iter().map(|c| confusion_view(a, c)).collect(),
            samples_per_kind: a.config.samples_per_kind,
            samples: a
                .samples
                .iter()
                .map(|ks| KindSamplesView {
                    kind: ks.kind.as_str(),
                    title: ks.kind.title(),
                    rule: ks.kind.description(),
                    count: a.count(ks.kind),
                    samples: ks
                        .samples
                        .iter()
                        .map(|s| SampleView {
                            id: &s.id,
                            f1: s.f1,
                            thumbnail: s.thumbnail.as_deref().filter(|u| is_plain_data_uri(u)),
                            thumbnail_problem: s.thumbnail_problem.as_deref(),
                            gt: &s.gt,
                            pred: &s.pred,
                        })
                        .collect(),
                })
                .collect(),
            top_concepts: top
                .iter()
                .take(TOP_CONCEPTS)
                .map(|c| ConceptView { cui: &c.cui, name: name_of(a, &c.cui), support: c.support, tp: c.tp, fp: c.fp, fn_: c.fn_, f1: c.f1 })
                .collect(),
            more_concepts,
            threshold: a.threshold_curve.as_ref(),
            svg: plots(a).into_iter().map(|p| (p.file.trim_end_matches(".svg").to_string(), p.svg)).collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering

fn fixed(v: f64, digits: usize) -> String {
    format!("{v:.digits$}")
}

fn percent(v: f64) -> String {
    format!("{:.1}%", 100.0 * v)
}

/// The template environment: `report.html` (HTML auto-escaping, with `report.css`) and
/// `summary.md` (no auto-escaping; `md` filter), strict about undefined values.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|name| if name.ends_with(".html") { AutoEscape::Html } else { AutoEscape::None });
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()
            .expect("valid syntax settings"),
    );
    env.add_filter("fixed", fixed);
    env.add_filter("percent", percent);
    env.add_filter("md", |s: String| md(&s));
    env.add_template("report.html", HTML_TEMPLATE).expect("report.html template parses");
    env.add_template("report.css", CSS).expect("report.css parses");
    env.add_template("summary.md", MARKDOWN_TEMPLATE).expect("summary.md template parses");
    env
}

fn render(template: &str, a: &Analysis) -> String {
    let env = environment();
    let view = ReportView::new(a);
    env.get_template(template)
        .and_then(|t| t.render(minijinja::value::Serde(&view)))
        .unwrap_or_else(|e| panic!("the {template} template failed: {e:#}"))
}

/// The whole report as one self-contained HTML page.
pub(crate) fn render_html(a: &Analysis) -> String {
    render("report.html", a)
}

/// A Markdown summary: headline, per-level table, error-kind counts, confusion tables, samples.
pub(crate) fn render_markdown(a: &Analysis) -> String {
    render("summary.md", a)
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

    /// The rows of the per-concept table: (CUI, images).
    fn concept_rows(h: &str) -> Vec<(String, usize)> {
        let start = h.find("<th class=\"n\">true positives</th>").expect("concept table");
        let table = &h[start..start + h[start..].find("</table>").unwrap()];
        table
            .split("<tr><td>")
            .skip(1)
            .map(|r| {
                let cells: Vec<&str> = r.split("</td>").map(|c| c.rsplit('>').next().unwrap()).collect();
                (cells[0].to_string(), cells[2].parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn frequent_concepts_table_lists_only_concepts_that_occur() {
        let a = example(false);
        // MRI is predicted but in no ground truth: it has a per-concept score with support 0.
        assert!(a.metrics.per_concept.iter().any(|c| c.cui == "C0024485" && c.support == 0));
        let h = render_html(&a);
        let rows = concept_rows(&h);
        let cuis: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(cuis, ["C0040405", "C0817096", "C0022742", "C0205091", "C1306645"], "by support, then CUI");
        assert!(rows.iter().all(|r| r.1 > 0), "{rows:?}");
        assert!(h.contains("The 5 most frequent concepts of the ground truth:"));
        assert!(!h.contains("less frequent concepts"));
    }

    #[test]
    fn reader_facing_text_has_no_source_paths_or_developer_notation() {
        for scores in [false, true] {
            let mut a = example(scores);
            a.inputs.insert("ground truth".into(), "/data/test/labels.csv".into());
            let h = render_html(&a);
            let md = render_markdown(&a);
            for text in [&h, &md] {
                for bad in [".rs", "src/", "--scores", "<TAB>", "&lt;TAB&gt;", "id\t", "CUI:p", "stdout", "snake_case", "unleveled"] {
                    assert!(!text.contains(bad), "{bad:?} in the report (scores {scores})");
                }
            }
            // The user's own file names stay, in the inputs line.
            assert!(h.contains("ground truth <code>&#x2f;data&#x2f;test&#x2f;labels.csv</code>"), "{}", &h[..2000]);
            assert!(md.contains("- ground truth: `/data/test/labels.csv`"));
        }
    }

    #[test]
    fn templates_escape_values_for_their_format() {
        let mut a = example(false);
        a.inputs.insert("predictions".into(), "<script>alert(1)</script> a|b.csv".into());
        a.names.insert("C0817096".into(), "Chest <wall> | thorax".into());
        let h = render_html(&a);
        assert!(h.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt; a|b.csv"));
        assert!(!h.contains("<script>"));
        assert!(h.contains("Chest &lt;wall&gt; | thorax"));
        // The plots and thumbnails are the only unescaped values: the SVG stays markup.
        assert!(h.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        let md = render_markdown(&a);
        // In Markdown tables a | in a name is escaped; nothing is HTML-escaped.
        assert!(md.contains("C0817096 Chest <wall> \\| thorax"), "{md}");
        assert!(md.contains("- predictions: `<script>alert(1)</script> a|b.csv`"));
        // Every kind's rule is in both, in precedence order.
        let pos = |t: &str, k: ErrorKind| t.find(k.description()).unwrap_or_else(|| panic!("{k:?}"));
        for w in ErrorKind::ALL.windows(2) {
            assert!(pos(&md, w[0]) < pos(&md, w[1]));
            assert!(pos(&h, w[0]) < pos(&h, w[1]));
        }
    }

    #[test]
    fn concept_plot_points_carry_concept_name_support_and_f1() {
        let a = example(false);
        let h = render_html(&a);
        for c in a.metrics.per_concept.iter().filter(|c| c.support > 0) {
            let tip = concept_tooltip(&c.cui, name_of(&a, &c.cui), c.support, c.f1);
            assert!(tip.contains(&c.cui) && tip.contains(&format!("{:.3}", c.f1)) && tip.contains(&format!("in {} ground-truth", c.support)));
            // Points on the same spot share one mark whose tooltip lists them, one per line.
            let escaped = tip.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
            assert!(h.contains(&escaped), "{tip}");
        }
        assert!(h.contains("C0040405 X-Ray Computed Tomography: in 2 ground-truth images, F1 0.667"), "CT: tp 1, fp 0, fn 1");
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
