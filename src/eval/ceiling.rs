//! Label-space ceilings: the best official ImageCLEF F1 a model restricted to a set of concepts can
//! reach on a label file, by predicting, for every image, exactly its ground-truth concepts inside
//! the set. An image whose truth has `g` concepts, `s` of them in the set, scores `2s / (g + s)`;
//! images with an empty truth are not scored, as in the official evaluator.
//!
//! Spaces: the top-K concepts by frequency in the file; the concepts of chosen ontology levels
//! (what a hierarchical model learns); and hybrid spaces, the level concepts plus the N most
//! frequent concepts on none of them (what `--mode hybrid` learns). Next to a model's F1, its
//! space's ceiling says how far the model is from what its labels allow.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::metrics::{imageclef_f1, LabelMap};
use crate::ontology::{Level, Ontology};

/// The best F1 any model predicting only concepts of `space` can reach on `gt`.
pub fn ceiling(gt: &LabelMap, space: &BTreeSet<String>) -> f64 {
    let best: LabelMap = gt.iter().map(|(id, g)| (id.clone(), g.iter().filter(|c| space.contains(&c.to_uppercase())).map(|c| c.to_uppercase()).collect())).collect();
    imageclef_f1(gt, &best).f1
}

/// Concepts of `gt` by the number of images they are on, most frequent first (ties by CUI).
pub(crate) fn by_frequency(gt: &LabelMap) -> Vec<(String, usize)> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for set in gt.values() {
        for c in set {
            *counts.entry(c.to_uppercase()).or_insert(0) += 1;
        }
    }
    let mut v: Vec<(String, usize)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// Which concepts may fill the residual part of a hybrid space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Noise {
    /// Noise-flagged concepts are learned like any other (they count in the official score).
    Keep,
    /// Noise-flagged concepts are left out (a clinical user may want them gone).
    Drop,
}

/// The N most frequent concepts of `frequency` that lie on none of `levels` (and are not
/// noise-flagged with [`Noise::Drop`]).
pub(crate) fn residual_top(frequency: &[(String, usize)], ontology: &Ontology, levels: &[Level], n: usize, noise: Noise) -> Vec<String> {
    frequency
        .iter()
        .filter(|(c, _)| !ontology.level_of(c).is_some_and(|l| levels.contains(&l)))
        .filter(|(c, _)| noise == Noise::Keep || !ontology.get(c).is_some_and(|x| x.noise))
        .take(n)
        .map(|(c, _)| c.clone())
        .collect()
}

/// Ceilings of the usual spaces (`data ceiling --json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ceilings {
    /// K -> ceiling of the top-K space.
    pub top_k: BTreeMap<String, f64>,
    /// Ceiling of the concepts on the chosen levels.
    pub levels: f64,
    /// N -> ceiling of the level concepts plus the N most frequent concepts on none of them.
    pub hybrid: BTreeMap<String, f64>,
    /// Images scored (non-empty ground truth).
    pub n_images: usize,
    /// Distinct concepts in the file.
    pub n_concepts: usize,
}

/// The ceilings of `gt` for top-K spaces (`ks`), the `levels`' concepts, and hybrid spaces with
/// `ks` residual concepts.
pub fn ceilings(gt: &LabelMap, ontology: &Ontology, levels: &[Level], ks: &[usize], noise: Noise) -> Ceilings {
    let frequency = by_frequency(gt);
    let top = |k: usize| frequency.iter().take(k).map(|(c, _)| c.clone()).collect::<BTreeSet<String>>();
    let level_space: BTreeSet<String> = frequency.iter().filter(|(c, _)| ontology.level_of(c).is_some_and(|l| levels.contains(&l))).map(|(c, _)| c.clone()).collect();
    Ceilings {
        top_k: ks.iter().map(|&k| (k.to_string(), ceiling(gt, &top(k)))).collect(),
        levels: ceiling(gt, &level_space),
        hybrid: ks
            .iter()
            .map(|&k| {
                let mut space = level_space.clone();
                space.extend(residual_top(&frequency, ontology, levels, k, noise));
                (k.to_string(), ceiling(gt, &space))
            })
            .collect(),
        n_images: gt.values().filter(|g| !g.is_empty()).count(),
        n_concepts: frequency.len(),
    }
}

impl std::fmt::Display for Ceilings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "best ImageCLEF F1 a model can reach when it predicts only concepts of a label space")?;
        writeln!(f, "({} images with concepts, {} distinct concepts)", self.n_images, self.n_concepts)?;
        writeln!(f, "{:<40} {:>8}", "label space", "ceiling")?;
        let mut ks: Vec<(&String, &f64)> = self.top_k.iter().collect();
        ks.sort_by_key(|(k, _)| k.parse::<usize>().unwrap_or(0));
        for (k, v) in &ks {
            writeln!(f, "{:<40} {:>8.4}", format!("top-{k} concepts"), v)?;
        }
        writeln!(f, "{:<40} {:>8.4}", "concepts of the levels", self.levels)?;
        for (k, _) in &ks {
            writeln!(f, "{:<40} {:>8.4}", format!("levels + top-{k} of the rest (hybrid)"), self.hybrid[*k])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(rows: &[(&str, &[&str])]) -> LabelMap {
        rows.iter().map(|(id, c)| (id.to_string(), c.iter().map(|s| s.to_string()).collect())).collect()
    }

    #[test]
    fn ceilings_by_hand() {
        // img1 {A, B, C}, img2 {A}, img3 {} (not scored), img4 {B, D}
        let gt = map(&[("1", &["C0000001", "C0000002", "C0000003"]), ("2", &["C0000001"]), ("3", &[]), ("4", &["C0000002", "C0000004"])]);
        let space: BTreeSet<String> = ["C0000001".to_string()].into();
        // img1: s=1, g=3: 2/4; img2: 1; img4: 0 -> (0.5 + 1 + 0) / 3
        assert!((ceiling(&gt, &space) - 0.5).abs() < 1e-12);
        let all: BTreeSet<String> = gt.values().flatten().cloned().collect();
        assert_eq!(ceiling(&gt, &all), 1.0);
        assert_eq!(by_frequency(&gt)[..2], [("C0000001".to_string(), 2), ("C0000002".to_string(), 2)]);
    }

    #[test]
    fn level_and_hybrid_spaces() {
        let onto = Ontology::builtin();
        // CT (modality), brain (anatomy), Marrow (noise, no level), an unknown CUI
        let gt = map(&[("1", &["C0040405", "C0006104", "C0376152"]), ("2", &["C0040405", "C0009999"]), ("3", &["C0376152"])]);
        let c = ceilings(&gt, &onto, &[Level::Modality, Level::Anatomy], &[1, 2], Noise::Keep);
        // levels {CT, brain}: img1 2*2/(3+2) = 0.8, img2 2/3, img3 0
        assert!((c.levels - (0.8 + 2.0 / 3.0) / 3.0).abs() < 1e-12, "{c:?}");
        // hybrid with the top-1 rest: Marrow (on 2 images) -> img1 1, img2 2/3, img3 1
        assert!((c.hybrid["1"] - (1.0 + 2.0 / 3.0 + 1.0) / 3.0).abs() < 1e-12, "{c:?}");
        assert_eq!(c.hybrid["2"], 1.0);
        // dropping noise: the rest is the unknown CUI
        let d = ceilings(&gt, &onto, &[Level::Modality, Level::Anatomy], &[1], Noise::Drop);
        assert!((d.hybrid["1"] - (0.8 + 1.0 + 0.0) / 3.0).abs() < 1e-12, "{d:?}");
        // top-1 is CT (2 images; ties broken by CUI)
        assert!((c.top_k["1"] - (0.5 + 2.0 / 3.0 + 0.0) / 3.0).abs() < 1e-12, "{c:?}");
    }

    #[test]
    fn top_k_ceilings_of_a_generated_file_equal_an_independent_count() {
        use rand::{Rng, SeedableRng};
        // a label file with skewed concept frequencies, ties included, and images without labels
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut text = String::new();
        for i in 0..3000 {
            let n = rng.gen_range(0..=6usize);
            let set: BTreeSet<String> = (0..n).map(|_| format!("C{:07}", (rng.gen_range(1.0f64..60.0).powi(2) as u32) / 9)).collect();
            text += &format!("IMG{i}\t{}\n", set.into_iter().collect::<Vec<_>>().join(";"));
        }
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("labels.csv");
        std::fs::write(&path, &text).unwrap();
        let (rows, _) = crate::data::labels::read_labels(&path, crate::data::labels::ParseOptions { allow_empty: true, ..Default::default() }).unwrap();
        let gt: LabelMap = rows.iter().map(|r| (r.id.clone(), r.cui_set())).collect();
        let ks = [1, 5, 25, 100];
        let c = ceilings(&gt, &Ontology::builtin(), &[Level::Modality], &ks, Noise::Keep);
        // independently, from the text: count images per concept, rank (count desc, CUI asc), and
        // average 2s / (g + s) over the images with labels
        let sets: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').nth(1).unwrap().split(';').filter(|c| !c.is_empty()).collect()).collect();
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for c in sets.iter().flatten() {
            *count.entry(c).or_default() += 1;
        }
        let mut ranked: Vec<(&str, usize)> = count.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        for k in ks {
            let top: BTreeSet<&str> = ranked.iter().take(k).map(|(c, _)| *c).collect();
            let scored: Vec<f64> = sets.iter().filter(|s| !s.is_empty()).map(|s| {
                let (g, hit) = (s.len() as f64, s.iter().filter(|c| top.contains(*c)).count() as f64);
                2.0 * hit / (g + hit)
            }).collect();
            let want = scored.iter().sum::<f64>() / scored.len() as f64;
            assert!((c.top_k[&k.to_string()] - want).abs() < 1e-12, "top-{k}: {} vs {want}", c.top_k[&k.to_string()]);
        }
        assert_eq!(c.n_images, sets.iter().filter(|s| !s.is_empty()).count());
        assert_eq!(c.n_concepts, ranked.len());
    }
}
