//! Dataset statistics (the paper's Table 3 and Figure 1) and ImageNet-style folder trees.
//!
//! The seed paper arranged its data as one folder per CUI (an image with several CUIs sits in
//! several folders); [`import_folders`] and [`export_folders`] convert between that and label files.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::images::ImageDir;
use super::labels::LabelRow;
use crate::cui::{is_cui, Cui};

/// One row of the top-N table.
#[derive(Debug, Clone, Serialize)]
pub struct TopConcept {
    pub rank: usize,
    pub cui: String,
    pub name: Option<String>,
    pub level: Option<String>,
    pub images: usize,
    /// Share of images carrying it.
    pub share: f64,
}

/// Dataset statistics.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetStats {
    pub n_images: usize,
    pub n_concepts: usize,
    pub labels_per_image_mean: f64,
    pub labels_per_image_max: usize,
    pub images_without_labels: usize,
    pub top: Vec<TopConcept>,
    /// Share of concepts on fewer than 100 images.
    pub share_concepts_under_100: f64,
    /// Share of concepts on exactly one image.
    pub share_concepts_once: f64,
    pub min_count: usize,
    /// Concepts with at least `min_count` images.
    pub concepts_at_min_count: usize,
}

/// A concept's (name, level) for the report, when known.
pub(crate) type Describe<'a> = &'a dyn Fn(&str) -> (Option<String>, Option<String>);

/// Compute statistics; `describe` gives a concept's name and level where known.
pub fn dataset_stats(rows: &[LabelRow], top: usize, min_count: usize, describe: Describe) -> DatasetStats {
    let mut counts: HashMap<Cui, usize> = HashMap::new();
    for r in rows {
        for &c in &r.cuis {
            *counts.entry(c).or_insert(0) += 1;
        }
    }
    let n = rows.len();
    let total: usize = rows.iter().map(|r| r.cuis.len()).sum();
    let mut sorted: Vec<(Cui, usize)> = counts.iter().map(|(c, n)| (*c, *n)).collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let nc = counts.len().max(1) as f64;
    DatasetStats {
        n_images: n,
        n_concepts: counts.len(),
        labels_per_image_mean: if n == 0 { 0.0 } else { total as f64 / n as f64 },
        labels_per_image_max: rows.iter().map(|r| r.cuis.len()).max().unwrap_or(0),
        images_without_labels: rows.iter().filter(|r| r.cuis.is_empty()).count(),
        top: sorted
            .iter()
            .take(top)
            .enumerate()
            .map(|(i, (c, k))| {
                let (name, level) = describe(&c.to_string());
                TopConcept { rank: i + 1, cui: c.to_string(), name, level, images: *k, share: *k as f64 / n.max(1) as f64 }
            })
            .collect(),
        share_concepts_under_100: counts.values().filter(|&&k| k < 100).count() as f64 / nc,
        share_concepts_once: counts.values().filter(|&&k| k == 1).count() as f64 / nc,
        min_count,
        concepts_at_min_count: counts.values().filter(|&&k| k >= min_count).count(),
    }
}

impl fmt::Display for DatasetStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "images                  {}", self.n_images)?;
        writeln!(f, "distinct concepts       {}", self.n_concepts)?;
        writeln!(f, "labels per image        mean {:.2}, max {}", self.labels_per_image_mean, self.labels_per_image_max)?;
        if self.images_without_labels > 0 {
            writeln!(f, "images without labels   {}", self.images_without_labels)?;
        }
        writeln!(f, "concepts on <100 images {:.1}%", 100.0 * self.share_concepts_under_100)?;
        writeln!(f, "concepts on 1 image     {:.1}%", 100.0 * self.share_concepts_once)?;
        writeln!(f, "concepts on >={} images {}", self.min_count, self.concepts_at_min_count)?;
        writeln!(f, "\n rank  CUI       images   share  level       name")?;
        for t in &self.top {
            writeln!(
                f,
                "{:>5}  {}  {:>6}  {:>5.1}%  {:<10}  {}",
                t.rank,
                t.cui,
                t.images,
                100.0 * t.share,
                t.level.as_deref().unwrap_or("-"),
                t.name.as_deref().unwrap_or("(not in ontology)")
            )?;
        }
        Ok(())
    }
}

/// Errors of the folder-tree conversions.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: folder name '{name}' is not a CUI (expected one folder per CUI)")]
    NotACui { path: PathBuf, name: String },
    #[error("{path}: image '{id}' exists with different contents or extensions in two folders ({a} and {b})")]
    Conflict { path: PathBuf, id: String, a: PathBuf, b: PathBuf },
    #[error("line {line}: no image for id '{id}' in {dir}")]
    MissingImage { id: String, line: usize, dir: PathBuf },
    #[error(transparent)]
    Images(#[from] super::dataset::DatasetError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FolderError + '_ {
    move |source| FolderError::Io { path: path.to_path_buf(), source }
}

fn link_or_copy(src: &Path, dst: &Path) -> Result<(), FolderError> {
    if dst.exists() {
        return Ok(());
    }
    std::fs::hard_link(src, dst).or_else(|_| std::fs::copy(src, dst).map(|_| ())).map_err(io(dst))
}

/// Read a tree `root/<CUI>/<id>.<ext>` into label rows and write the images (hard links where
/// possible) to `out/images`, labels to `out/labels.csv`. Returns the rows.
pub fn import_folders(root: &Path, out: &Path) -> Result<Vec<LabelRow>, FolderError> {
    let mut labels: BTreeMap<String, (BTreeSet<String>, PathBuf)> = BTreeMap::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root).map_err(io(root))?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
    dirs.sort();
    for d in dirs {
        let name = d.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
        if !is_cui(&name) {
            return Err(FolderError::NotACui { path: d.clone(), name });
        }
        let cui = name.to_ascii_uppercase();
        for (id, p) in ImageDir::open(&d)?.all()? {
            let entry = labels.entry(id.clone()).or_insert_with(|| (BTreeSet::new(), p.clone()));
            if entry.1.extension() != p.extension() || std::fs::metadata(&entry.1).map(|m| m.len()).ok() != std::fs::metadata(&p).map(|m| m.len()).ok() {
                return Err(FolderError::Conflict { path: root.to_path_buf(), id, a: entry.1.clone(), b: p });
            }
            entry.0.insert(cui.clone());
        }
    }
    let img_dir = out.join("images");
    std::fs::create_dir_all(&img_dir).map_err(io(&img_dir))?;
    let mut rows = Vec::new();
    for (i, (id, (cuis, src))) in labels.into_iter().enumerate() {
        let dst = img_dir.join(src.file_name().expect("file"));
        link_or_copy(&src, &dst)?;
        rows.push(LabelRow { id, cuis: cuis.iter().filter_map(|c| Cui::parse(c)).collect(), line: i + 1 });
    }
    let lp = out.join("labels.csv");
    super::labels::write_clef2019(&lp, rows.iter().map(|r| (r.id.clone(), r.cui_strings()))).map_err(io(&lp))?;
    Ok(rows)
}

/// Write `out/<CUI>/<id>.<ext>` (hard links where possible) for every row and each of its CUIs
/// among the `top_k` most frequent ones (all CUIs when `top_k` is 0). Returns the number of files
/// written.
pub fn export_folders(rows: &[LabelRow], images: &Path, out: &Path, top_k: usize) -> Result<usize, FolderError> {
    let keep: Option<BTreeSet<String>> = (top_k > 0).then(|| {
        let mut counts = BTreeMap::new();
        rows.iter().flat_map(|r| r.cui_set()).for_each(|c| *counts.entry(c).or_insert(0usize) += 1);
        super::dataset::LabelSpace::top_k(&counts, top_k, 1).concepts.into_iter().collect()
    });
    let mut n = 0;
    let images = ImageDir::open(images)?;
    for r in rows {
        let Some(src) = images.find(&r.id)? else {
            return Err(FolderError::MissingImage { id: r.id.clone(), line: r.line, dir: images.dir.clone() });
        };
        for c in r.cui_strings() {
            if keep.as_ref().is_some_and(|k| !k.contains(&c)) {
                continue;
            }
            let d = out.join(&c);
            std::fs::create_dir_all(&d).map_err(io(&d))?;
            link_or_copy(&src, &d.join(src.file_name().expect("file")))?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, cuis: &[&str]) -> LabelRow {
        LabelRow::new(id, cuis, 0)
    }

    #[test]
    fn stats_by_hand() {
        let rows = vec![row("a", &["C0000001", "C0000002"]), row("b", &["C0000001"]), row("c", &["C0000001", "C0000003", "C0000002"]), row("d", &[])];
        let s = dataset_stats(&rows, 2, 2, &|c| (Some(format!("name of {c}")), None));
        assert_eq!(s.n_images, 4);
        assert_eq!(s.n_concepts, 3);
        assert!((s.labels_per_image_mean - 1.5).abs() < 1e-12);
        assert_eq!(s.labels_per_image_max, 3);
        assert_eq!(s.images_without_labels, 1);
        assert_eq!(s.top.iter().map(|t| (t.cui.as_str(), t.images)).collect::<Vec<_>>(), vec![("C0000001", 3), ("C0000002", 2)]);
        assert!((s.top[0].share - 0.75).abs() < 1e-12);
        assert!((s.share_concepts_once - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(s.share_concepts_under_100, 1.0);
        assert_eq!(s.concepts_at_min_count, 2);
    }

    #[test]
    fn folders_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let imgs = tmp.path().join("imgs");
        std::fs::create_dir_all(&imgs).unwrap();
        for id in ["x1", "x2"] {
            image::GrayImage::new(4, 4).save(imgs.join(format!("{id}.png"))).unwrap();
        }
        let rows = vec![row("x1", &["C0000001", "C0000002"]), row("x2", &["C0000002"])];
        let tree = tmp.path().join("tree");
        assert_eq!(export_folders(&rows, &imgs, &tree, 0).unwrap(), 3);
        assert!(tree.join("C0000002/x1.png").is_file());
        // top-1: only the most frequent concept (C0000002, on both images) gets a folder
        let top1 = tmp.path().join("top1");
        assert_eq!(export_folders(&rows, &imgs, &top1, 1).unwrap(), 2);
        assert!(!top1.join("C0000001").exists());
        let back = import_folders(&tree, &tmp.path().join("imported")).unwrap();
        assert_eq!(back.iter().map(|r| (r.id.clone(), r.cuis.clone())).collect::<Vec<_>>(), rows.iter().map(|r| (r.id.clone(), r.cuis.clone())).collect::<Vec<_>>());
        std::fs::create_dir_all(tree.join("notacui")).unwrap();
        assert!(matches!(import_folders(&tree, &tmp.path().join("i2")), Err(FolderError::NotACui { .. })));
    }
}
