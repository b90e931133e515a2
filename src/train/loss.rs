//! Training targets and losses, per head.
//!
//! A multi-label head is trained with binary cross-entropy (per-concept positive weights with
//! `--class-weights balanced`), or with C-HMCNN's MCLoss when it has a max-constraint; a
//! single-label head with cross-entropy over its concepts plus "none" (scikit-learn "balanced"
//! class weights, unless `--calibration unweighted`). The total loss of a step is
//! `sum over the stage's heads of w_h * L_h`, each `L_h` a mean over the batch (and over the
//! concepts of a multi-label head), with `w_h` from `--head-weights`: `concepts` gives head h the
//! weight `K_h / K` (its concepts over the model's), so every concept weighs the same whatever
//! head it sits in and a flat model's loss is its head's; `equal` gives every head 1.
use std::collections::BTreeSet;

use tch::{Device, Kind, Reduction, Tensor};

use super::config::{Calibration, ClassWeights, HeadWeights, TrainConfig};
use crate::data::dataset::{balanced_pos_weights, LabelSpace};
use crate::model::{max_constraint, HeadKind, HeadSpec};

/// One head's targets for every image of a dataset.
pub enum HeadTargets {
    /// Multi-hot rows, `K` floats per image.
    Multi(Vec<f32>, usize),
    /// The class of each image: the index of its concept, or `K` for "none".
    Single(Vec<i64>),
}

impl HeadTargets {
    pub fn build(spec: &HeadSpec, labels: &[BTreeSet<String>]) -> HeadTargets {
        let space = LabelSpace { concepts: spec.concepts.clone(), counts: vec![0; spec.concepts.len()] };
        match spec.kind {
            HeadKind::MultiLabel => HeadTargets::Multi(space.multi_hot(labels), spec.concepts.len()),
            HeadKind::SingleLabel => {
                HeadTargets::Single(labels.iter().map(|set| spec.concepts.iter().position(|c| set.contains(c)).unwrap_or(spec.concepts.len()) as i64).collect())
            }
        }
    }

    /// The targets of the images at `idx`, as a tensor on `device`.
    pub fn batch(&self, idx: &[usize], device: Device) -> Tensor {
        match self {
            HeadTargets::Multi(v, k) => {
                let rows: Vec<f32> = idx.iter().flat_map(|&i| v[i * k..(i + 1) * k].iter().copied()).collect();
                Tensor::from_slice(&rows).view([idx.len() as i64, *k as i64]).to_device(device)
            }
            HeadTargets::Single(v) => {
                let rows: Vec<i64> = idx.iter().map(|&i| v[i]).collect();
                Tensor::from_slice(&rows).to_device(device)
            }
        }
    }

    /// Balanced class weights for this head's loss.
    pub fn weights(&self, spec: &HeadSpec) -> Vec<f32> {
        match self {
            HeadTargets::Multi(v, k) => {
                let counts: Vec<usize> = (0..*k).map(|j| v.iter().skip(j).step_by(*k).filter(|x| **x > 0.5).count()).collect();
                balanced_pos_weights(&counts)
            }
            HeadTargets::Single(v) => {
                let n = spec.concepts.len() + 1;
                let mut counts = vec![0usize; n];
                v.iter().for_each(|&c| counts[c as usize] += 1);
                // sklearn "balanced" over classes present: N / (C * n_c)
                let present = counts.iter().filter(|&&c| c > 0).count().max(1) as f64;
                let total = v.len() as f64;
                counts.iter().map(|&c| if c == 0 { 1.0 } else { (total / (present * c as f64)) as f32 }).collect()
            }
        }
    }
}

/// Whether head `spec` is trained with class weights under `cfg`.
pub fn uses_class_weights(spec: &HeadSpec, cfg: &TrainConfig) -> bool {
    cfg.class_weights == ClassWeights::Balanced && !(spec.kind == HeadKind::SingleLabel && cfg.calibration == Calibration::Unweighted)
}

/// The weight of each head in the total loss (see the module docs).
pub fn head_weights(specs: &[HeadSpec], rule: &HeadWeights) -> Vec<f64> {
    let total: usize = specs.iter().map(|s| s.concepts.len()).sum();
    specs
        .iter()
        .map(|s| match rule {
            HeadWeights::Concepts => s.concepts.len() as f64 / total.max(1) as f64,
            HeadWeights::Equal => 1.0,
            HeadWeights::Custom(m) => m.get(&s.name).copied().unwrap_or(1.0),
        })
        .collect()
}

/// The losses of a model's heads: class weights, head weights and max-constraints (on the training device).
pub struct Losses {
    pub specs: Vec<HeadSpec>,
    pub weights: Vec<Option<Tensor>>,
    pub head_weights: Vec<f64>,
    /// MCLoss matrices of the multi-label heads with a max-constraint.
    constraints: Vec<Option<Tensor>>,
}

impl Losses {
    /// Class weights from the training targets, as the configuration asks.
    pub fn new(specs: &[HeadSpec], train_targets: &[HeadTargets], cfg: &TrainConfig, device: Device) -> Losses {
        let weights = specs.iter().zip(train_targets).map(|(s, t)| uses_class_weights(s, cfg).then(|| Tensor::from_slice(&t.weights(s)).to_device(device))).collect();
        let constraints = specs.iter().map(|s| s.constraint_matrix(device)).collect();
        Losses { specs: specs.to_vec(), weights, head_weights: head_weights(specs, &cfg.head_weights), constraints }
    }

    /// The mean loss of head `h` over a batch.
    pub fn head(&self, h: usize, logits: &Tensor, target: &Tensor) -> Tensor {
        let w = self.weights[h].as_ref();
        match (self.specs[h].kind, &self.constraints[h]) {
            (HeadKind::MultiLabel, None) => logits.binary_cross_entropy_with_logits(target, None::<&Tensor>, w, Reduction::Mean),
            (HeadKind::MultiLabel, Some(r)) => mc_loss(logits, target, r, w),
            (HeadKind::SingleLabel, _) => logits.cross_entropy_loss(target, w, Reduction::Mean, -100, 0.0),
        }
    }

    /// The weighted loss of `heads` for the images at `idx`.
    pub fn total(&self, logits: &[Tensor], targets: &[HeadTargets], idx: &[usize], heads: &[usize], device: Device) -> Tensor {
        let mut total = Tensor::zeros([], (Kind::Float, device));
        for &h in heads {
            let l = self.head(h, &logits[h], &targets[h].batch(idx, device));
            total += if self.head_weights[h] == 1.0 { l } else { l * self.head_weights[h] };
        }
        total
    }
}

/// C-HMCNN's MCLoss (Giunchiglia & Lukasiewicz, NeurIPS 2020) with optional positive weights:
/// binary cross-entropy of `y * MCM(y * h) + (1 - y) * MCM(h)` against `y`, `h = sigmoid(logits)`,
/// where `MCM(x)[a] = max over the descendants b of a (a included) of x[b]`. A positive concept is
/// pushed up through its positive descendants only; a negative one is held down by its largest
/// descendant, so the constrained output, not the raw one, is what is trained.
pub fn mc_loss(logits: &Tensor, y: &Tensor, r: &Tensor, pos_weight: Option<&Tensor>) -> Tensor {
    let h = logits.sigmoid();
    let constrained = max_constraint(&h, r);
    let positive = max_constraint(&(y * &h), r);
    let negative: Tensor = 1.0 - y;
    let out: Tensor = (y * positive + negative * constrained).clamp(1e-7, 1.0 - 1e-7);
    let weight = pos_weight.map(|pw| y * (pw - 1.0) + 1.0);
    out.binary_cross_entropy(y, weight.as_ref(), Reduction::Mean)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, k: usize, kind: HeadKind) -> HeadSpec {
        HeadSpec::new(name, (0..k).map(|i| format!("C{:07}", i)).collect(), kind)
    }

    #[test]
    fn multi_label_loss_matches_hand_computation() {
        // l = -[pw*y*log σ(x) + (1-y) log(1-σ(x))]: x=0,y=1,pw=2 -> 2 ln 2 = 1.386294; x=2,y=0 -> -ln(1-σ(2)) = 2.126928
        let l = Losses { specs: vec![spec("flat", 2, HeadKind::MultiLabel)], weights: vec![Some(Tensor::from_slice(&[2f32, 1.0]))], head_weights: vec![1.0], constraints: vec![None] };
        let v = l.head(0, &Tensor::from_slice(&[0f32, 2.0]).view([1, 2]), &Tensor::from_slice(&[1f32, 0.0]).view([1, 2])).double_value(&[]);
        assert!((v - (1.386294 + 2.126928) / 2.0).abs() < 1e-5, "{v}");
    }

    #[test]
    fn single_label_loss_with_none_class_matches_hand_computation() {
        // CE([1,0,0], 0) = ln(1 + 2/e) = 0.551445; CE([0,0,0], 2 = none) = ln 3; weighted mean with w=[2,1,1]:
        // (2*0.551445 + 1*1.098612) / (2 + 1) = 0.733834
        let l = Losses { specs: vec![spec("modality", 2, HeadKind::SingleLabel)], weights: vec![Some(Tensor::from_slice(&[2f32, 1.0, 1.0]))], head_weights: vec![1.0], constraints: vec![None] };
        let logits = Tensor::from_slice(&[1f32, 0.0, 0.0, 0.0, 0.0, 0.0]).view([2, 3]);
        let v = l.head(0, &logits, &Tensor::from_slice(&[0i64, 2])).double_value(&[]);
        assert!((v - 0.733834).abs() < 1e-5, "{v}");
    }

    #[test]
    fn mc_loss_matches_hand_computation() {
        // concepts [parent, child], R = [[1, 1], [0, 1]]; logits [0, ln 3] -> h = [0.5, 0.75]
        // image 1, y = [1, 0]: parent positive, through its positive descendants only: max(0.5, 0) = 0.5
        //   child negative, MCM(h)[child] = 0.75 -> -ln 0.5 - ln 0.25 = 0.693147 + 1.386294
        // image 2, y = [0, 0]: parent negative, MCM(h)[parent] = max(0.5, 0.75) = 0.75 -> -ln 0.25;
        //   child -> -ln 0.25
        // image 3, y = [1, 1]: parent max(0.5, 0.75) = 0.75 -> -ln 0.75; child -> -ln 0.75
        // mean over 6 terms: (0.693147 + 1.386294 * 3 + 0.287682 * 2) / 6 = 0.904566
        let logits = Tensor::from_slice(&[0f32, 3f32.ln()]).view([1, 2]).repeat([3, 1]);
        let y = Tensor::from_slice(&[1f32, 0.0, 0.0, 0.0, 1.0, 1.0]).view([3, 2]);
        let r = Tensor::from_slice(&[1f32, 1.0, 0.0, 1.0]).view([2, 2]);
        let v = mc_loss(&logits, &y, &r, None).double_value(&[]);
        assert!((v - 0.904566).abs() < 1e-5, "{v}");
        // a positive weight of 2 on the child doubles its one positive term (image 3), as BCE's
        // pos_weight does; the mean stays over the 6 terms
        let w = Tensor::from_slice(&[1f32, 2.0]);
        let v = mc_loss(&logits, &y, &r, Some(&w)).double_value(&[]);
        assert!((v - (0.904566 * 6.0 + 0.287682) / 6.0).abs() < 1e-5, "{v}");
    }

    #[test]
    fn every_concept_counts_the_same_with_concept_weights() {
        // a softmax level of 4 concepts and a multi-label level of 12: 4/16 and 12/16; a flat head 1
        let specs = vec![spec("modality", 4, HeadKind::SingleLabel), spec("anatomy", 12, HeadKind::MultiLabel)];
        assert_eq!(head_weights(&specs, &HeadWeights::Concepts), vec![0.25, 0.75]);
        assert_eq!(head_weights(&specs, &HeadWeights::Equal), vec![1.0, 1.0]);
        assert_eq!(head_weights(&[spec("flat", 25, HeadKind::MultiLabel)], &HeadWeights::Concepts), vec![1.0]);
        // the total is the weighted sum of the head losses
        let l = Losses { specs: specs.clone(), weights: vec![None, None], head_weights: vec![0.25, 0.75], constraints: vec![None, None] };
        let labels: Vec<BTreeSet<String>> = vec![["C0000001".to_string(), "C0000003".to_string()].into()];
        let targets: Vec<HeadTargets> = specs.iter().map(|s| HeadTargets::build(s, &labels)).collect();
        let logits = vec![Tensor::zeros([1, 5], (Kind::Float, Device::Cpu)), Tensor::zeros([1, 12], (Kind::Float, Device::Cpu))];
        let total = l.total(&logits, &targets, &[0], &[0, 1], Device::Cpu).double_value(&[]);
        // CE of a uniform 5-way softmax = ln 5; BCE at logit 0 = ln 2
        assert!((total - (0.25 * 5f64.ln() + 0.75 * 2f64.ln())).abs() < 1e-5, "{total}");
    }

    #[test]
    fn single_label_targets_use_none_index() {
        let s = spec("laterality", 2, HeadKind::SingleLabel);
        let labels: Vec<BTreeSet<String>> = vec![["C0000001".to_string()].into(), BTreeSet::new()];
        match HeadTargets::build(&s, &labels) {
            HeadTargets::Single(v) => assert_eq!(v, vec![1, 2]),
            _ => panic!("expected single-label targets"),
        }
    }
}
