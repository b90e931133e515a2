//! Training targets and losses, per head.
//!
//! A multi-label head is trained with binary cross-entropy (per-concept positive weights with
//! `--class-weights balanced`); a single-label head with cross-entropy over its concepts plus
//! "none" (scikit-learn "balanced" class weights). The total loss of a step sums the heads of the
//! current stage.
use std::collections::BTreeSet;

use tch::{Device, Kind, Reduction, Tensor};

use super::config::ClassWeights;
use crate::data::dataset::{balanced_pos_weights, LabelSpace};
use crate::model::{HeadKind, HeadSpec};

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

/// The losses of a model's heads, with their class weights (on the training device).
pub struct Losses {
    pub specs: Vec<HeadSpec>,
    pub weights: Vec<Option<Tensor>>,
}

impl Losses {
    /// Class weights from the training targets, as `--class-weights` asks.
    pub fn new(specs: &[HeadSpec], train_targets: &[HeadTargets], class_weights: ClassWeights, device: Device) -> Losses {
        let weights = specs
            .iter()
            .zip(train_targets)
            .map(|(s, t)| match class_weights {
                ClassWeights::Balanced => Some(Tensor::from_slice(&t.weights(s)).to_device(device)),
                ClassWeights::None => None,
            })
            .collect();
        Losses { specs: specs.to_vec(), weights }
    }

    /// The mean loss of head `h` over a batch.
    pub fn head(&self, h: usize, logits: &Tensor, target: &Tensor) -> Tensor {
        let w = self.weights[h].as_ref();
        match self.specs[h].kind {
            HeadKind::MultiLabel => logits.binary_cross_entropy_with_logits(target, None::<&Tensor>, w, Reduction::Mean),
            HeadKind::SingleLabel => logits.cross_entropy_loss(target, w, Reduction::Mean, -100, 0.0),
        }
    }

    /// The summed loss of `heads` for the images at `idx`.
    pub fn total(&self, logits: &[Tensor], targets: &[HeadTargets], idx: &[usize], heads: &[usize], device: Device) -> Tensor {
        let mut total = Tensor::zeros([], (Kind::Float, device));
        for &h in heads {
            total += self.head(h, &logits[h], &targets[h].batch(idx, device));
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, k: usize, kind: HeadKind) -> HeadSpec {
        HeadSpec { name: name.into(), concepts: (0..k).map(|i| format!("C{:07}", i)).collect(), kind }
    }

    #[test]
    fn multi_label_loss_matches_hand_computation() {
        // l = -[pw*y*log σ(x) + (1-y) log(1-σ(x))]: x=0,y=1,pw=2 -> 2 ln 2 = 1.386294; x=2,y=0 -> -ln(1-σ(2)) = 2.126928
        let l = Losses { specs: vec![spec("flat", 2, HeadKind::MultiLabel)], weights: vec![Some(Tensor::from_slice(&[2f32, 1.0]))] };
        let v = l.head(0, &Tensor::from_slice(&[0f32, 2.0]).view([1, 2]), &Tensor::from_slice(&[1f32, 0.0]).view([1, 2])).double_value(&[]);
        assert!((v - (1.386294 + 2.126928) / 2.0).abs() < 1e-5, "{v}");
    }

    #[test]
    fn single_label_loss_with_none_class_matches_hand_computation() {
        // CE([1,0,0], 0) = ln(1 + 2/e) = 0.551445; CE([0,0,0], 2 = none) = ln 3; weighted mean with w=[2,1,1]:
        // (2*0.551445 + 1*1.098612) / (2 + 1) = 0.733834
        let l = Losses { specs: vec![spec("modality", 2, HeadKind::SingleLabel)], weights: vec![Some(Tensor::from_slice(&[2f32, 1.0, 1.0]))] };
        let logits = Tensor::from_slice(&[1f32, 0.0, 0.0, 0.0, 0.0, 0.0]).view([2, 3]);
        let v = l.head(0, &logits, &Tensor::from_slice(&[0i64, 2])).double_value(&[]);
        assert!((v - 0.733834).abs() < 1e-5, "{v}");
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
