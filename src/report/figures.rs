//! Figures shared by commands and experiments: the top-concepts frequency chart (the seed paper's
//! Figure 1), written as SVG and PNG.
use std::path::{Path, PathBuf};

use crate::data::stats::DatasetStats;
use crate::report::plot;

/// Errors writing a figure.
#[derive(Debug, thiserror::Error)]
pub enum FigureError {
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Png(#[from] plot::PngError),
}

/// The bar chart of `stats`' top concepts by number of images, as `<base>.svg` and `<base>.png`.
/// Returns both paths.
pub fn top_concepts(stats: &DatasetStats, title: &str, base: &Path) -> Result<(PathBuf, PathBuf), FigureError> {
    let names: Vec<String> = stats.top.iter().map(|t| format!("{} {}", t.cui, t.name.as_deref().unwrap_or(""))).collect();
    let values: Vec<f64> = stats.top.iter().map(|t| t.images as f64).collect();
    let svg = plot::bar_chart(title, "images", &names, &values);
    let (svg_path, png_path) = (base.with_extension("svg"), base.with_extension("png"));
    std::fs::write(&svg_path, &svg).map_err(|source| FigureError::Write { path: svg_path.clone(), source })?;
    plot::save_png(&svg, &png_path)?;
    Ok((svg_path, png_path))
}
