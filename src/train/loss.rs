//! Training losses: which heads are class-weighted, each head's loss, and the total of a step.
//!
//! A head's targets, class weights and loss are its kind's ([`crate::model::heads`], one file
//! per kind; [`HeadTargets`] is re-exported here): a multi-label head is trained with binary
//! cross-entropy (per-concept positive weights with `--class-weights balanced`, relative to its
//! head's concepts, or `balanced-model`, relative to the whole model's, as a flat model over the same concepts would weigh them), or with
//! C-HMCNN's MCLoss when it has a max-constraint; a single-label head with cross-entropy over its
//! concepts plus "none" (scikit-learn "balanced" class weights, unless `--calibration unweighted`).
//! The total loss of a step is `sum over the stage's heads of w_h * L_h`, each `L_h` a mean over
//! the batch (and over the concepts of a multi-label head), with `w_h` from `--head-weights`:
//! `concepts` gives head h the weight `K_h / K` (its concepts over the model's), so every concept
//! weighs the same whatever head it sits in and a flat model's loss is its head's; `equal` gives
//! every head 1.
use tch::{Device, Kind, Tensor};

use super::checked::CheckedConfig;
use super::config::{Calibration, ClassWeights, HeadWeights};
use crate::model::heads::local_per_parent::{ancestors as ancestor_matrix, conditional_bce};
use crate::model::HeadSpec;
pub use crate::model::heads::HeadTargets;

/// Whether head `spec` is trained with class weights under `cfg`.
pub fn uses_class_weights(spec: &HeadSpec, cfg: &CheckedConfig) -> bool {
    let unweighted_levels = cfg.levels().is_some_and(|l| l.calibration == Calibration::Unweighted);
    cfg.fit().is_some_and(|f| f.class_weights != ClassWeights::None) && !(spec.kind.behaviour().exclusive() && unweighted_levels)
}

/// The mean number of training images per concept over every head of a model.
pub fn mean_concept_count(specs: &[HeadSpec], targets: &[HeadTargets]) -> f64 {
    let total: usize = specs.iter().zip(targets).map(|(s, t)| t.counts(s).iter().sum::<usize>()).sum();
    let k: usize = specs.iter().map(|s| s.concepts.len()).sum();
    total as f64 / k.max(1) as f64
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
    /// Per head with a max-constraint, `A[a, p]` = "p is an ancestor of a within the head", and
    /// which concepts have one: for conditional training.
    ancestors: Vec<Option<(Tensor, Tensor)>>,
    /// Conditional training (`--conditional-epochs`, after Chen et al. 2019): a concept with an
    /// ancestor in its head learns only from the images where one of its ancestors is present
    /// (Heart against other Chest images, not against every image).
    pub conditional: bool,
}

impl Losses {
    /// Class weights from the training targets, as the configuration asks.
    pub fn new(specs: &[HeadSpec], train_targets: &[HeadTargets], cfg: &CheckedConfig, device: Device) -> Losses {
        let model_mean = cfg.fit().is_some_and(|f| f.class_weights == ClassWeights::BalancedModel).then(|| mean_concept_count(specs, train_targets));
        let weights = specs.iter().zip(train_targets).map(|(s, t)| uses_class_weights(s, cfg).then(|| Tensor::from_slice(&t.weights(s, model_mean)).to_device(device))).collect();
        let constraints: Vec<Option<Tensor>> = specs.iter().map(|s| s.constraint_matrix(device)).collect();
        let ancestors = constraints.iter().map(|r| r.as_ref().map(ancestor_matrix)).collect();
        Losses { specs: specs.to_vec(), weights, head_weights: head_weights(specs, cfg.levels().map_or(&HeadWeights::Concepts, |l| &l.head_weights)), constraints, ancestors, conditional: false }
    }

    /// The mean loss of head `h` over a batch.
    pub fn head(&self, h: usize, logits: &Tensor, target: &Tensor) -> Tensor {
        let w = self.weights[h].as_ref();
        if let (true, Some((a, has))) = (self.conditional, &self.ancestors[h]) {
            return conditional_bce(logits, target, a, has, w);
        }
        self.specs[h].kind.behaviour().loss(logits, target, w, self.constraints[h].as_ref())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::config::TrainConfig;
    use std::collections::BTreeSet;
    use crate::model::heads::multi_label::mc_loss;
    use crate::model::HeadKind;

    fn spec(name: &str, k: usize, kind: HeadKind) -> HeadSpec {
        HeadSpec::new(name, (0..k).map(|i| format!("C{:07}", i)).collect(), kind)
    }

    #[test]
    fn conditional_training_counts_a_child_only_where_its_parent_is() {
        // C0 > C1 and a root C2; image 0 has C0 and C1, image 1 only C2
        let s = HeadSpec { descendants: vec![vec![0, 1], vec![1], vec![2]], ..spec("anatomy", 3, HeadKind::MultiLabel) };
        let cfg = TrainConfig { class_weights: ClassWeights::None, ..TrainConfig::default() }.check().unwrap();
        let labels: Vec<BTreeSet<String>> = vec![["C0000000".to_string(), "C0000001".to_string()].into(), ["C0000002".to_string()].into()];
        let t = HeadTargets::build(&s, &labels);
        let mut l = Losses::new(std::slice::from_ref(&s), std::slice::from_ref(&t), &cfg, Device::Cpu);
        let logits = Tensor::from_slice(&[2f32, 1.0, -1.0, -2.0, 3.0, 0.5]).view([2, 3]);
        let y = t.batch(&[0, 1], Device::Cpu);
        l.conditional = true;
        let got = l.head(0, &logits, &y).double_value(&[]);
        // by hand: every entry but C1 on image 1 (its parent C0 is absent there), mean over all 6
        let bce = |x: f64, y: f64| -(y * (1.0 / (1.0 + (-x).exp())).ln() + (1.0 - y) * (1.0 - 1.0 / (1.0 + (-x).exp())).ln());
        let want = (bce(2.0, 1.0) + bce(1.0, 1.0) + bce(-1.0, 0.0) + bce(-2.0, 0.0) + bce(0.5, 1.0)) / 6.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn with_a_max_constraint_targets_hold_their_ancestors() {
        // C0 > C1 > C2 and a sibling C3; the label file lists only the leaf
        let s = HeadSpec { descendants: vec![vec![0, 1, 2], vec![1, 2], vec![2], vec![3]], ..spec("anatomy", 4, HeadKind::MultiLabel) };
        let labels: Vec<BTreeSet<String>> = vec![["C0000002".to_string()].into(), ["C0000003".to_string()].into()];
        let HeadTargets::Multi(rows, 4) = HeadTargets::build(&s, &labels) else { panic!("multi-label targets") };
        assert_eq!(rows, vec![1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        // without the constraint the targets are the labels as given
        let HeadTargets::Multi(rows, 4) = HeadTargets::build(&spec("anatomy", 4, HeadKind::MultiLabel), &labels) else { panic!("multi-label targets") };
        assert_eq!(rows, vec![0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn multi_label_loss_matches_hand_computation() {
        // l = -[pw*y*log σ(x) + (1-y) log(1-σ(x))]: x=0,y=1,pw=2 -> 2 ln 2 = 1.386294; x=2,y=0 -> -ln(1-σ(2)) = 2.126928
        let l = Losses { specs: vec![spec("flat", 2, HeadKind::MultiLabel)], weights: vec![Some(Tensor::from_slice(&[2f32, 1.0]))], head_weights: vec![1.0], constraints: vec![None], ancestors: vec![None], conditional: false };
        let v = l.head(0, &Tensor::from_slice(&[0f32, 2.0]).view([1, 2]), &Tensor::from_slice(&[1f32, 0.0]).view([1, 2])).double_value(&[]);
        assert!((v - (1.386294 + 2.126928) / 2.0).abs() < 1e-5, "{v}");
    }

    #[test]
    fn single_label_loss_with_none_class_matches_hand_computation() {
        // CE([1,0,0], 0) = ln(1 + 2/e) = 0.551445; CE([0,0,0], 2 = none) = ln 3; weighted mean with w=[2,1,1]:
        // (2*0.551445 + 1*1.098612) / (2 + 1) = 0.733834
        let l = Losses { specs: vec![spec("modality", 2, HeadKind::SingleLabel)], weights: vec![Some(Tensor::from_slice(&[2f32, 1.0, 1.0]))], head_weights: vec![1.0], constraints: vec![None], ancestors: vec![None], conditional: false };
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
        let l = Losses { specs: specs.clone(), weights: vec![None, None], head_weights: vec![0.25, 0.75], constraints: vec![None, None], ancestors: vec![None, None], conditional: false };
        let labels: Vec<BTreeSet<String>> = vec![["C0000001".to_string(), "C0000003".to_string()].into()];
        let targets: Vec<HeadTargets> = specs.iter().map(|s| HeadTargets::build(s, &labels)).collect();
        let logits = vec![Tensor::zeros([1, 5], (Kind::Float, Device::Cpu)), Tensor::zeros([1, 12], (Kind::Float, Device::Cpu))];
        let total = l.total(&logits, &targets, &[0], &[0, 1], Device::Cpu).double_value(&[]);
        // CE of a uniform 5-way softmax = ln 5; BCE at logit 0 = ln 2
        assert!((total - (0.25 * 5f64.ln() + 0.75 * 2f64.ln())).abs() < 1e-5, "{total}");
    }

    #[test]
    fn balanced_model_weights_a_concept_as_a_flat_model_would() {
        // five images, concepts C0..C3 (C0000000..C0000003): a single-label level {C0, C1} and a
        // multi-label level {C2, C3}. Counts: C0 2, C1 1, C2 4, C3 1.
        let labels: Vec<BTreeSet<String>> = [
            vec!["C0000000", "C0000002"],
            vec!["C0000000", "C0000002", "C0000003"],
            vec!["C0000001", "C0000002"],
            vec!["C0000002"],
            vec![],
        ]
        .iter()
        .map(|v| v.iter().map(|c| c.to_string()).collect())
        .collect();
        let level = spec("modality", 2, HeadKind::SingleLabel);
        let mut finding = spec("finding", 2, HeadKind::MultiLabel);
        finding.concepts = vec!["C0000002".into(), "C0000003".into()];
        let flat = HeadSpec::new("flat", (0..4).map(|i| format!("C000000{i}")).collect(), HeadKind::MultiLabel);
        let hier = [level, finding];
        let targets: Vec<HeadTargets> = hier.iter().map(|s| HeadTargets::build(s, &labels)).collect();
        let flat_targets = HeadTargets::build(&flat, &labels);
        assert_eq!(targets[0].counts(&hier[0]), vec![2, 1]);
        assert_eq!(targets[1].counts(&hier[1]), vec![4, 1]);
        // mean count over the model's four concepts: (2 + 1 + 4 + 1) / 4 = 2
        assert_eq!(mean_concept_count(&hier, &targets), 2.0);
        assert_eq!(mean_concept_count(std::slice::from_ref(&flat), std::slice::from_ref(&flat_targets)), 2.0);
        // per head ("balanced"): the finding head's mean is 2.5, so C2 0.625 and C3 2.5;
        // over the model ("balanced-model"): 2/4 and 2/1, the flat model's weights for C2 and C3
        assert_eq!(targets[1].weights(&hier[1], None), vec![0.625, 2.5]);
        assert_eq!(targets[1].weights(&hier[1], Some(2.0)), vec![0.5, 2.0]);
        let flat_w = flat_targets.weights(&flat, None);
        assert_eq!(flat_w, vec![1.0, 2.0, 0.5, 2.0]);
        assert_eq!(flat_targets.weights(&flat, Some(2.0)), flat_w, "a flat model's weights are the same either way");
        // single-label heads keep scikit-learn "balanced" over their classes (and "none") either way
        assert_eq!(targets[0].weights(&hier[0], Some(2.0)), targets[0].weights(&hier[0], None));
        // and the losses take them from the configuration
        let weights_of = |class_weights| {
            let cfg = TrainConfig { class_weights, ..TrainConfig::default() }.check().unwrap();
            let l = Losses::new(&hier, &targets, &cfg, Device::Cpu);
            Vec::<f32>::try_from(l.weights[1].as_ref().unwrap()).unwrap()
        };
        assert_eq!(weights_of(ClassWeights::BalancedModel), vec![0.5, 2.0]);
        assert_eq!(weights_of(ClassWeights::Balanced), vec![0.625, 2.5]);
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
