//! How `experiment compare` turns a trained run into a row of its table: decoded as trained, with
//! the ontology's rules (a flat model's sigmoids decoded as a hierarchical model's are:
//! `flat-coherent`), with two concepts allowed on a single-valued sigmoid level (`+second`), and
//! with kNN fusion over the run's own trunk (`+knn`). One trained run serves every row built on it.
//!
//! Every row is tuned the same way, on the validation images only: its thresholds (the run's
//! `--thresholds` mode, a concept's own threshold only where validation holds at least
//! `--threshold-min-cases` cases of it) and, with `+knn`, the fusion weight `a` of
//! `s = a * p + (1 - a) * votes` over the grid 1.0, 0.9, ..., 0.0 (the first best kept, so ties
//! favour the model). The votes are those of the kNN baseline (the `--knn-k` most similar training
//! images in the run's own trunk embedding, similarity-weighted); the training label sets hold
//! their ancestors, so the votes are coherent by construction.
use std::collections::{BTreeSet, HashMap};

use ndarray::Array2;
use tch::Tensor;

use crate::data::dataset::Dataset;
use crate::error::Error;
use crate::eval::metrics::LabelMap;
use crate::eval::thresholds::{enough_cases, tune_where, Thresholds, TuneMode};
use crate::infer::batch::rows;
use crate::infer::decoder::Decoder;
use crate::infer::knn::KnnIndex;
use crate::model::SingleValuedRule;
use crate::ontology::Level;
use crate::predict::LoadedRun;

/// A row's decoding of its trained run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Decoding {
    /// A flat model's sigmoids decoded with the ontology: parents lifted by their children
    /// (max-constraint), one concept per single-valued level, closure.
    pub coherent: bool,
    /// Single-valued sigmoid levels keep their two best concepts (each against its threshold).
    pub second: bool,
    /// kNN fusion over the run's own trunk, its weight tuned on validation.
    pub knn: bool,
}

impl Decoding {
    /// What the decoding adds to the run, for the table; empty when none.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.coherent {
            parts.push("decoded with the ontology (parents lifted by children, one concept per single-valued level, closure)");
        }
        if self.second {
            parts.push("a second concept allowed on single-valued levels above its own threshold");
        }
        if self.knn {
            parts.push("kNN fusion over its own trunk, weight tuned on validation");
        }
        parts.join("; ")
    }
}

/// A row name: a run of `experiment compare` (its list of variants), then `+coherent`, `+second` and `+knn` in
/// any order (`flat-coherent` is `flat+coherent`). Returns the run's name and the decoding.
pub(crate) fn parse_row(name: &str) -> Result<(String, Decoding), String> {
    let name = if let Some(rest) = name.strip_prefix("flat-coherent") { format!("flat+coherent{rest}") } else { name.to_string() };
    let mut parts = name.split('+');
    let base = parts.next().unwrap_or_default().to_string();
    let mut d = Decoding::default();
    for part in parts {
        let flag = match part {
            "coherent" => &mut d.coherent,
            "second" => &mut d.second,
            "knn" => &mut d.knn,
            other => return Err(format!("'{name}': unknown decoding '+{other}' (known: +coherent, +second, +knn)")),
        };
        if *flag {
            return Err(format!("'{name}': '+{part}' is named twice"));
        }
        *flag = true;
    }
    Ok((base, d))
}

/// Images of one part of the split, with their truth.
pub struct Part {
    pub ids: Vec<String>,
    pub truth: LabelMap,
    pub labels: Vec<BTreeSet<String>>,
    pub paths: Vec<std::path::PathBuf>,
}

impl From<Dataset> for Part {
    fn from(d: Dataset) -> Part {
        Part { truth: d.ids.iter().cloned().zip(d.labels.iter().cloned()).collect(), ids: d.ids, labels: d.labels, paths: d.paths }
    }
}

/// A run's outputs on the validation and test images (and the training images' embeddings when
/// a row fuses kNN votes).
pub struct Outputs {
    pub val: Array2<f32>,
    pub test: Array2<f32>,
    /// Validation, test and training embeddings, with `+knn` rows.
    pub embeddings: Option<(Tensor, Tensor, Tensor)>,
}

impl Outputs {
    /// Run the model once over the images the rows need.
    pub(crate) fn compute(run: &LoadedRun, val: &Part, test: &Part, train: &Part, with_embeddings: bool, batch: usize) -> Result<Outputs, Error> {
        if !with_embeddings {
            return Ok(Outputs { val: run.probabilities(&val.paths, batch)?, test: run.probabilities(&test.paths, batch)?, embeddings: None });
        }
        let (val_p, val_e) = run.probabilities_and_embeddings(&val.paths, batch)?;
        let (test_p, test_e) = run.probabilities_and_embeddings(&test.paths, batch)?;
        // the training images need only their embeddings (the kNN baseline's, on the host)
        let pipe = crate::data::augment::Pipeline { size: run.preprocessing.image_size, augment: None };
        let source = crate::data::loader::ImageSource::from(std::sync::Arc::new(train.paths.clone()));
        let train_e = crate::infer::knn::embeddings(&run.model, &pipe, &source, batch, run.vs.device()).map_err(crate::predict::PredictError::from)?.to_device(tch::Device::Cpu);
        Ok(Outputs { val: val_p, test: test_p, embeddings: Some((val_e, test_e, train_e)) })
    }
}

/// How every row's thresholds are tuned.
pub struct Tuning<'a> {
    pub mode: TuneMode,
    /// A concept gets its own threshold only with at least this many validation cases.
    pub min_cases: usize,
    /// The cases (groups) of the images, when known.
    pub groups: Option<&'a HashMap<String, String>>,
    /// Neighbours that vote in kNN fusion.
    pub knn_k: usize,
}

/// A row decoded: its test predictions, and what was chosen on validation.
pub struct Decoded {
    pub predictions: LabelMap,
    /// The validation ImageCLEF F1 at the chosen thresholds (and fusion weight).
    pub val_f1: f64,
    /// The model's weight `a` in the kNN fusion, with `+knn`.
    pub knn_weight: Option<f64>,
    pub thresholds: Thresholds,
}

/// The fusion weights tried, the model's first (ties keep the model).
pub(crate) const FUSION_GRID: [f64; 11] = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0];

/// `a * p + (1 - a) * votes`.
pub(crate) fn fuse(p: &Array2<f32>, votes: &Array2<f32>, a: f64) -> Array2<f32> {
    let a = a as f32;
    p * a + votes * (1.0 - a)
}

/// The decoder of a row: the run's, with the ontology's rules (`+coherent`, `single_valued`: the
/// levels no training image holds two concepts of) and two concepts on plane and view (`+second`).
pub(crate) fn row_decoder(run: &LoadedRun, d: Decoding, single_valued: &[Level]) -> Decoder {
    let rule = if d.second { SingleValuedRule::Second } else { SingleValuedRule::Argmax };
    if d.coherent {
        run.decoder().with_ontology(&run.ontology, single_valued, rule)
    } else {
        run.decoder().with_single_valued_rule(rule)
    }
}

/// Decode a run's outputs with `decoder`, fusing kNN votes with `knn`: the fusion weight and the
/// thresholds are chosen on the validation images only, then applied to the test images.
pub fn decode(decoder: &Decoder, out: &Outputs, knn: bool, val: &Part, test: &Part, train: &Part, tuning: &Tuning) -> Result<Decoded, Error> {
    let votes = match (&out.embeddings, knn) {
        (Some((val_e, test_e, train_e)), true) => {
            let k = decoder.concepts.len();
            let multi_hot: Vec<f32> = train.labels.iter().flat_map(|set| decoder.concepts.iter().map(move |c| if set.contains(c) { 1.0 } else { 0.0 })).collect();
            let index = KnnIndex { embeddings: train_e.shallow_clone(), labels: Tensor::from_slice(&multi_hot).view([train.labels.len() as i64, k as i64]), k: tuning.knn_k };
            Some((rows(&tch::no_grad(|| index.scores(val_e)))?, rows(&tch::no_grad(|| index.scores(test_e)))?))
        }
        (None, true) => return Err(Error::usage("kNN fusion needs the run's embeddings (internal: computed without them)")),
        _ => None,
    };
    choose_on_validation(decoder, (&out.val, &out.test), votes.as_ref().map(|(v, t)| (v, t)), val, test, tuning)
}

/// The fusion weight (with `votes`: validation's, test's) and thresholds with the best validation
/// F1, and the test predictions they give. The test images play no part in any choice.
pub(crate) fn choose_on_validation(decoder: &Decoder, probs: (&Array2<f32>, &Array2<f32>), votes: Option<(&Array2<f32>, &Array2<f32>)>, val: &Part, test: &Part, tuning: &Tuning) -> Result<Decoded, Error> {
    let level_of = |c: &str| decoder.concepts.iter().position(|x| x == c).and_then(|k| decoder.levels[k].clone());
    let own = enough_cases(&decoder.concepts, &val.ids, &val.truth, tuning.groups, tuning.min_cases);
    let grid: Vec<f32> = (1..20).map(|i| i as f32 * 0.05).collect();
    let weights: &[f64] = if votes.is_some() { &FUSION_GRID } else { &[1.0] };
    let mixed = |p: &Array2<f32>, v: Option<&Array2<f32>>, a: f64| v.map_or_else(|| p.clone(), |v| fuse(p, v, a));
    let mut best: Option<(f64, Thresholds, f64)> = None;
    for &a in weights {
        let p = mixed(probs.0, votes.map(|v| v.0), a);
        let (th, f1) = tune_where(&decoder.decision_scores(&p), &decoder.concepts, &val.ids, &val.truth, &level_of, tuning.mode, &grid, &own)?;
        if best.as_ref().is_none_or(|b| f1 > b.2) {
            best = Some((a, th, f1));
        }
    }
    let (a, thresholds, val_f1) = best.expect("at least one fusion weight is tried");
    let p = mixed(probs.1, votes.map(|v| v.1), a);
    let predictions = test.ids.iter().cloned().zip(decoder.decide(&p, &thresholds)).collect();
    Ok(Decoded { predictions, val_f1, knn_weight: votes.is_some().then_some(a), thresholds })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_names_parse_into_a_run_and_its_decoding() {
        assert_eq!(parse_row("flat").unwrap(), ("flat".to_string(), Decoding::default()));
        assert_eq!(parse_row("flat-coherent").unwrap(), ("flat".to_string(), Decoding { coherent: true, ..Default::default() }));
        assert_eq!(parse_row("flat-coherent+knn").unwrap(), ("flat".to_string(), Decoding { coherent: true, knn: true, ..Default::default() }));
        assert_eq!(parse_row("hier+knn+second").unwrap(), ("hier".to_string(), Decoding { second: true, knn: true, ..Default::default() }));
        assert!(parse_row("hier+knn+knn").unwrap_err().contains("twice"));
        assert!(parse_row("hier+fast").unwrap_err().contains("unknown decoding '+fast'"));
    }

    #[test]
    fn fusion_mixes_the_model_and_the_votes() {
        let p = Array2::from_shape_vec((1, 2), vec![0.8f32, 0.2]).unwrap();
        let v = Array2::from_shape_vec((1, 2), vec![0.0f32, 1.0]).unwrap();
        let f = fuse(&p, &v, 0.75);
        assert!((f[[0, 0]] - 0.6).abs() < 1e-6 && (f[[0, 1]] - 0.4).abs() < 1e-6, "{f:?}");
        assert_eq!(fuse(&p, &v, 1.0), p);
        assert_eq!(fuse(&p, &v, 0.0), v);
    }

    fn part(rows: &[(&str, &[&str])]) -> Part {
        let labels: Vec<BTreeSet<String>> = rows.iter().map(|(_, c)| c.iter().map(|x| x.to_string()).collect()).collect();
        let ids: Vec<String> = rows.iter().map(|(id, _)| id.to_string()).collect();
        Part { truth: ids.iter().cloned().zip(labels.iter().cloned()).collect(), ids, labels, paths: Vec::new() }
    }

    #[test]
    fn the_fusion_weight_is_chosen_on_validation_only() {
        use crate::model::{HeadKind, HeadSpec, ModelConfig, TrunkKind};
        let cfg = ModelConfig::new(TrunkKind::Tiny, vec![HeadSpec::new("flat", vec!["A".into(), "B".into()], HeadKind::MultiLabel)]);
        let decoder = Decoder::new(&cfg, &crate::ontology::Ontology::builtin(), false);
        let (a, b): (&[&str], &[&str]) = (&["A"], &["B"]);
        let val = part(&[("v0", a), ("v1", b), ("v2", a), ("v3", b)]);
        let test = part(&[("t0", a), ("t1", b), ("t2", a), ("t3", b)]);
        let right = Array2::from_shape_vec((4, 2), vec![0.9f32, 0.1, 0.1, 0.9, 0.9, 0.1, 0.1, 0.9]).unwrap();
        let wrong = Array2::from_shape_vec((4, 2), vec![0.1f32, 0.9, 0.9, 0.1, 0.1, 0.9, 0.9, 0.1]).unwrap();
        let tuning = Tuning { mode: TuneMode::PerLevel, min_cases: 0, groups: None, knn_k: 1 };
        // on validation the votes are right and the model wrong; on test the other way round
        let d = choose_on_validation(&decoder, (&wrong, &right), Some((&right, &wrong)), &val, &test, &tuning).unwrap();
        assert!(d.knn_weight.is_some_and(|a| a < 0.5), "validation says: the votes, {:?}", d.knn_weight);
        assert!((d.val_f1 - 1.0).abs() < 1e-9, "{}", d.val_f1);
        let f1 = crate::eval::metrics::imageclef_f1(&test.truth, &d.predictions).f1;
        assert!(f1 < 0.01, "the test images, where the model is right, did not move the choice: test F1 {f1}");
        // and with a model right on validation, the model alone (ties keep it)
        let d = choose_on_validation(&decoder, (&right, &right), Some((&right, &wrong)), &val, &test, &tuning).unwrap();
        assert_eq!(d.knn_weight, Some(1.0));
        assert!((crate::eval::metrics::imageclef_f1(&test.truth, &d.predictions).f1 - 1.0).abs() < 1e-9);
    }
}
