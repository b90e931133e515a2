//! Models: a trunk (ResNet, DenseNet, EfficientNet, ConvNeXt; see [`trunk`]) shared by one or more heads.
//!
//! A flat model is one multi-label head over the top-K concepts (the paper's baseline); a
//! hierarchical model has one head per ontology level. Both are a [`Model`] with a list of
//! [`HeadSpec`]s, so training, prediction and evaluation are written once. A head's spec and
//! everything that differs between head kinds live in [`heads`] (one file per kind); this file
//! builds the layers (necks, output layers) and runs them.
pub mod autocast;
pub mod convnext;
pub mod densenet;
pub mod efficientnet;
pub mod heads;
pub mod layout;
pub mod pooling;
pub mod resnet;
pub mod stochastic_depth;
pub mod trunk;
pub mod weights;

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

pub use heads::multi_label::max_constraint;
pub use heads::{HeadBehaviour, HeadKind, HeadSpec, HeadTargets, SingleLabelDecoding};
pub use layout::{is_channels_last, to_channels_last, MemoryFormat};
pub use pooling::Pooling;
pub use trunk::{Trunk, TrunkKind};

/// The name of a hybrid model's residual head (and of its concepts' threshold group).
pub const REST: &str = "rest";

/// The layers between the trunk's feature map and a head's output layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum HeadLayers {
    /// The paper's head: auxiliary 1x1 convolution, BatchNorm, ReLU, pooling, dropout, a hidden
    /// dense layer, ReLU, dropout, then the output layer.
    #[default]
    Paper,
    /// Pooling, then the output layer (torchvision's classifier): nothing between the trunk's
    /// pooled features and the logits. Small marks the paper's head loses (a burned-in arrow or
    /// circle on annotated phantoms) reach the output through it; see BENCHMARKS.md.
    Linear,
}

/// Sizes of the paper's head: auxiliary 1x1 convolution, then two dense layers with dropout.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeadConfig {
    /// Output channels of the auxiliary convolution.
    pub aux_channels: i64,
    /// Width of the hidden dense layer.
    pub hidden: i64,
    /// Dropout probability before each dense layer.
    pub dropout: f64,
    /// The paper's layers, or none (pooling straight into the output layer). Models written
    /// before this option read back as the paper's.
    #[serde(default)]
    pub layers: HeadLayers,
}

impl HeadConfig {
    /// Defaults scaled to the trunk: 512 aux channels and 256 hidden units, less for `tiny`.
    pub fn for_trunk(kind: TrunkKind) -> HeadConfig {
        match kind {
            TrunkKind::Tiny => HeadConfig { aux_channels: 64, hidden: 64, dropout: 0.3, layers: HeadLayers::Paper },
            _ => HeadConfig { aux_channels: 512, hidden: 256, dropout: 0.5, layers: HeadLayers::Paper },
        }
    }
}

/// Where the layers between the trunk and the outputs sit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Neck {
    /// Each head has the paper's whole head (auxiliary convolution, dense layer, output layer).
    #[default]
    PerHead,
    /// One paper head (auxiliary convolution, dense layer) shared by all heads, then one output
    /// layer per head: a hierarchical model then differs from flat only in its outputs.
    Shared,
}

/// How a single-valued level is decided (a calibrated softmax head, a sigmoid level head, or a
/// flat model decoded with the ontology): which of its concepts keep their score for the thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SingleValuedRule {
    /// One winner: the most probable concept keeps its score, the others score 0.
    #[default]
    Argmax,
    /// On the plane and view levels the two most probable keep their scores, each against its
    /// own threshold: a second plane or view is named when it is nearly as likely (the ImageCLEF
    /// F1 is per image, so naming two plausible ones can pay). Other levels (modality,
    /// laterality, ...) keep one.
    Second,
}

impl SingleValuedRule {
    /// How many of a single-valued level's concepts keep their score.
    pub fn keep(self, level: Option<crate::ontology::Level>) -> usize {
        use crate::ontology::Level;
        match (self, level) {
            (SingleValuedRule::Second, Some(Level::Plane | Level::View)) => 2,
            _ => 1,
        }
    }
}

/// Everything needed to rebuild a model (stored as `model.json` in a run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub trunk: TrunkKind,
    pub head: HeadConfig,
    pub heads: Vec<HeadSpec>,
    /// Feed each head the (detached) probabilities of the heads before it.
    pub condition_on_previous: bool,
    #[serde(default)]
    pub neck: Neck,
    #[serde(default)]
    pub single_label: SingleLabelDecoding,
    /// How the single-valued sigmoid heads are decided.
    #[serde(default)]
    pub single_valued: SingleValuedRule,
}

impl ModelConfig {
    /// A model with the trunk's default head sizes, per-head necks and arg-max decoding.
    pub fn new(trunk: TrunkKind, heads: Vec<HeadSpec>) -> ModelConfig {
        ModelConfig { trunk, head: HeadConfig::for_trunk(trunk), heads, condition_on_previous: false, neck: Neck::PerHead, single_label: SingleLabelDecoding::Argmax, single_valued: SingleValuedRule::Argmax }
    }

    /// All concepts, in the concatenated output order of [`Model::probabilities`].
    pub fn concepts(&self) -> Vec<String> {
        self.heads.iter().flat_map(|h| h.concepts.iter().cloned()).collect()
    }
}


/// The paper's head up to its hidden layer: auxiliary 1x1 convolution, BatchNorm, ReLU, global
/// pooling ([`Pooling`]), dropout, dense layer, ReLU, dropout. With [`HeadLayers::Linear`] only
/// the pooling.
#[derive(Debug)]
struct NeckLayers {
    /// The paper's layers (none with [`HeadLayers::Linear`]).
    layers: Option<(nn::Conv2D, nn::BatchNorm, nn::Linear)>,
    dropout: f64,
    pooling: Pooling,
    /// Width of the output `[B, width]`.
    width: i64,
}

impl NeckLayers {
    /// `in_channels` from the trunk, `extra` conditioning inputs after the pooling.
    fn new(p: &nn::Path, in_channels: i64, extra: i64, cfg: &HeadConfig, pooling: Pooling) -> NeckLayers {
        match cfg.layers {
            HeadLayers::Paper => {
                let conv = nn::conv2d(p / "conv", in_channels, cfg.aux_channels, 1, nn::ConvConfig { bias: false, ..Default::default() });
                let bn = nn::batch_norm2d(p / "bn", cfg.aux_channels, Default::default());
                let fc1 = nn::linear(p / "fc1", pooling.width(cfg.aux_channels) + extra, cfg.hidden, Default::default());
                NeckLayers { layers: Some((conv, bn, fc1)), dropout: cfg.dropout, pooling, width: cfg.hidden }
            }
            HeadLayers::Linear => NeckLayers { layers: None, dropout: 0.0, pooling, width: pooling.width(in_channels) + extra },
        }
    }

    /// features `[B, C, h, w]` (+ conditioning `[B, extra]`) -> hidden `[B, width]`.
    fn forward_t(&self, feats: &Tensor, cond: Option<&Tensor>, train: bool) -> Tensor {
        let cat = |y: Tensor| match cond {
            Some(c) => Tensor::cat(&[y, c.shallow_clone()], 1),
            None => y,
        };
        match &self.layers {
            Some((conv, bn, fc1)) => {
                let y = cat(self.pooling.apply(&feats.apply(conv).apply_t(bn, train).relu_()));
                y.dropout(self.dropout, train).apply(fc1).relu().dropout(self.dropout, train)
            }
            None => cat(self.pooling.apply(feats)),
        }
    }
}

/// One head's layers: its own neck (per-head necks) and its output layer.
#[derive(Debug)]
pub struct Head {
    neck: Option<NeckLayers>,
    fc2: nn::Linear,
}

/// Trunk + heads. Trunk variables live at the var-store root (torchvision names); heads under
/// `heads.<name>`, a shared neck under `neck`.
#[derive(Debug)]
pub struct Model {
    pub cfg: ModelConfig,
    pub trunk: Trunk,
    pub heads: Vec<Head>,
    shared_neck: Option<NeckLayers>,
    /// Max-constraint matrices of the heads that have one.
    constraints: Vec<Option<Tensor>>,
    /// Logit adjustments of the heads that have one, `[n_outputs]`.
    adjustments: Vec<Option<Tensor>>,
    /// Run the forward pass under autocast (mixed precision: fp16 on CUDA, bf16 on CPU); logits
    /// and features come back as f32 either way.
    pub amp: bool,
}

/// Probabilities of one head's concepts from its logits `[B, n_outputs]` -> `[B, n_concepts]`:
/// the logit adjustment removed, then the kind's probabilities (sigmoid and the max-constraint, or
/// softmax without "none"; see [`heads`]).
pub fn head_probabilities(spec: &HeadSpec, logits: &Tensor, adjustment: Option<&Tensor>, constraint: Option<&Tensor>) -> Tensor {
    let logits = match adjustment {
        Some(a) => logits - a,
        None => logits.shallow_clone(),
    };
    spec.kind.behaviour().probabilities(&logits, spec.concepts.len(), constraint)
}

impl Model {
    pub fn new(root: &nn::Path, cfg: ModelConfig) -> Model {
        let trunk = Trunk::new(root, cfg.trunk);
        let c = cfg.trunk.out_channels();
        let shared = cfg.neck == Neck::Shared;
        let shared_neck = shared.then(|| NeckLayers::new(&(root / "neck"), c, 0, &cfg.head, Pooling::Avg));
        let mut extra = 0;
        let mut heads = Vec::new();
        for spec in &cfg.heads {
            let p = root / "heads" / spec.name.as_str();
            let e = if cfg.condition_on_previous { extra } else { 0 };
            let (neck, fc2_in) = match &shared_neck {
                Some(n) => (None, n.width + e),
                None => {
                    let n = NeckLayers::new(&p, c, e, &cfg.head, spec.pooling);
                    let w = n.width;
                    (Some(n), w)
                }
            };
            let fc2 = nn::linear(&p / "fc2", fc2_in, spec.n_outputs(), Default::default());
            heads.push(Head { neck, fc2 });
            extra += spec.concepts.len() as i64;
        }
        let device = root.device();
        let constraints = cfg.heads.iter().map(|h| h.constraint_matrix(device)).collect();
        let adjustments = cfg.heads.iter().map(|h| (!h.logit_adjustment.is_empty()).then(|| Tensor::from_slice(&h.logit_adjustment).to_device(device))).collect();
        Model { cfg, trunk, heads, shared_neck, constraints, adjustments, amp: false }
    }

    /// The max-constraint matrix of head `h`, if it has one.
    pub fn constraint(&self, h: usize) -> Option<&Tensor> {
        self.constraints[h].as_ref()
    }

    /// Store every 4-D variable of `vs` (convolution weights) channels-last, or back to contiguous,
    /// and feed the trunk images in the same layout. Values are unchanged; only the layout moves.
    pub fn set_channels_last(&mut self, vs: &nn::VarStore, on: bool) {
        tch::no_grad(|| {
            let layout = |t: &Tensor| if on { to_channels_last(t) } else { t.contiguous() };
            for (_, mut var) in vs.variables() {
                if var.dim() == 4 {
                    var.set_data(&layout(&var));
                    // an existing gradient follows, so accumulation keeps autograd's layout contract
                    let mut g = var.grad();
                    if g.defined() {
                        g.set_data(&layout(&g));
                    }
                }
            }
        });
        self.trunk.channels_last = on;
    }

    /// Images `[B, 3, S, S]` -> one logits tensor per head, `[B, n_outputs_h]`.
    pub fn forward_t(&self, x: &Tensor, train_trunk: bool, train_heads: bool) -> Vec<Tensor> {
        self.precision(x.device(), || {
            let feats = self.trunk.forward_t(x, train_trunk);
            self.heads_logits(&feats, train_heads)
        })
    }

    /// Images -> trunk features `[B, C, h, w]` (f32).
    pub fn features(&self, x: &Tensor, train: bool) -> Tensor {
        self.precision(x.device(), || vec![self.trunk.forward_t(x, train)]).remove(0)
    }

    /// Trunk features `[B, C, h, w]` -> logits per head.
    pub fn heads_forward(&self, feats: &Tensor, train: bool) -> Vec<Tensor> {
        self.precision(feats.device(), || self.heads_logits(feats, train))
    }

    /// Run `f` under autocast when [`Model::amp`] is set, and hand its outputs back as f32.
    fn precision(&self, device: Device, f: impl FnOnce() -> Vec<Tensor>) -> Vec<Tensor> {
        if !self.amp {
            return f();
        }
        autocast::autocast(device, true, f).into_iter().map(|t| t.to_kind(Kind::Float)).collect()
    }

    fn heads_logits(&self, feats: &Tensor, train: bool) -> Vec<Tensor> {
        let mut out: Vec<Tensor> = Vec::with_capacity(self.heads.len());
        let mut probs: Vec<Tensor> = Vec::new();
        let shared = self.shared_neck.as_ref().map(|n| n.forward_t(feats, None, train));
        for (h, head) in self.heads.iter().enumerate() {
            let cond = (self.cfg.condition_on_previous && !probs.is_empty()).then(|| Tensor::cat(&probs, 1));
            let hidden = match (&head.neck, &shared) {
                (Some(neck), _) => neck.forward_t(feats, cond.as_ref(), train),
                (None, Some(hidden)) => match &cond {
                    Some(c) => Tensor::cat(&[hidden.shallow_clone(), c.shallow_clone()], 1),
                    None => hidden.shallow_clone(),
                },
                (None, None) => unreachable!("a head without a neck has the shared one"),
            };
            let logits = hidden.apply(&head.fc2);
            if self.cfg.condition_on_previous {
                probs.push(self.head_probabilities(h, &logits).detach());
            }
            out.push(logits);
        }
        out
    }

    /// Probabilities of head `h`'s concepts from its logits.
    pub fn head_probabilities(&self, h: usize, logits: &Tensor) -> Tensor {
        head_probabilities(&self.cfg.heads[h], logits, self.adjustments[h].as_ref(), self.constraints[h].as_ref())
    }

    /// Concept probabilities `[B, K]` in [`ModelConfig::concepts`] order.
    pub fn probabilities(&self, logits: &[Tensor]) -> Tensor {
        let parts: Vec<Tensor> = logits.iter().enumerate().map(|(h, l)| self.head_probabilities(h, l)).collect();
        Tensor::cat(&parts, 1)
    }
}

/// `name` is `prefix` or lies under it (`layer4` matches `layer4.0.conv1.weight`, not `layer40`).
pub fn has_prefix(name: &str, prefix: &str) -> bool {
    name == prefix || (name.starts_with(prefix) && name.as_bytes().get(prefix.len()) == Some(&b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn cfg(trunk: TrunkKind, heads: Vec<HeadSpec>, condition: bool) -> ModelConfig {
        ModelConfig { condition_on_previous: condition, ..ModelConfig::new(trunk, heads) }
    }

    fn spec(name: &str, k: usize, kind: HeadKind) -> HeadSpec {
        HeadSpec::new(name, (0..k).map(|i| format!("C{:07}", i)).collect(), kind)
    }

    #[test]
    fn zeros_batch_gives_b_by_k_for_every_trunk_and_head() {
        for trunk in [TrunkKind::Tiny, TrunkKind::Resnet18, TrunkKind::Resnet50, TrunkKind::Densenet121, TrunkKind::EfficientnetB0, TrunkKind::ConvnextTiny] {
            let vs = nn::VarStore::new(Device::Cpu);
            let m = Model::new(&vs.root(), cfg(trunk, vec![spec("flat", 25, HeadKind::MultiLabel)], false));
            let x = Tensor::zeros([2, 3, 64, 64], (Kind::Float, Device::Cpu));
            let out = tch::no_grad(|| m.forward_t(&x, false, false));
            assert_eq!(out[0].size(), vec![2, 25], "{trunk}");
            assert_eq!(m.probabilities(&out).size(), vec![2, 25]);
        }
    }

    /// `--head-layers linear`: no auxiliary convolution, BatchNorm, hidden layer or dropout; the
    /// output layer reads the pooled trunk features (plus conditioning) directly, for per-head and
    /// shared necks; and a model.json without the field reads back as the paper's head.
    #[test]
    fn linear_heads_feed_pooled_features_straight_to_the_output_layer() {
        let heads = vec![spec("modality", 3, HeadKind::SingleLabel), HeadSpec { pooling: Pooling::AvgMax, ..spec("rest", 2, HeadKind::MultiLabel) }];
        let c = TrunkKind::Tiny.out_channels();
        for (neck, condition) in [(Neck::PerHead, false), (Neck::PerHead, true), (Neck::Shared, false), (Neck::Shared, true)] {
            let vs = nn::VarStore::new(Device::Cpu);
            let mut mc = ModelConfig { neck, ..cfg(TrunkKind::Tiny, heads.clone(), condition) };
            mc.head.layers = HeadLayers::Linear;
            let m = Model::new(&vs.root(), mc);
            let names: Vec<String> = vs.variables().into_keys().filter(|n| n.starts_with("heads.") || n.starts_with("neck.")).collect();
            assert!(names.iter().all(|n| n.contains(".fc2.")), "{neck:?}: {names:?}");
            let fc2 = |h: &str| vs.variables()[&format!("heads.{h}.fc2.weight")].size();
            // modality reads C pooled features; rest reads 2C (avg-max, per-head only) + modality's 3 when conditioned
            let rest_in = if neck == Neck::Shared { c } else { 2 * c } + if condition { 3 } else { 0 };
            assert_eq!((fc2("modality"), fc2("rest")), (vec![4, c], vec![2, rest_in]), "{neck:?} condition {condition}");
            // no dropout: training and evaluation give the same logits on the same BatchNorm statistics
            let x = Tensor::randn([3, 3, 32, 32], (Kind::Float, Device::Cpu));
            let feats = tch::no_grad(|| m.features(&x, false));
            let (a, b) = tch::no_grad(|| (m.heads_forward(&feats, true), m.heads_forward(&feats, false)));
            assert_eq!((a[0].size(), a[1].size()), (vec![3, 4], vec![3, 2]));
            assert!(a.iter().zip(&b).all(|(a, b)| a.allclose(b, 1e-6, 1e-6, false)));
        }
        let mut paper = HeadConfig::for_trunk(TrunkKind::Tiny);
        let mut json: serde_json::Value = serde_json::to_value(paper).unwrap();
        json.as_object_mut().unwrap().remove("layers");
        assert_eq!(serde_json::from_value::<HeadConfig>(json).unwrap(), paper);
        paper.layers = HeadLayers::Linear;
        assert_eq!(serde_json::from_str::<HeadConfig>(&serde_json::to_string(&paper).unwrap()).unwrap(), paper);
    }

    #[test]
    fn avg_max_pooling_is_the_mean_and_the_max_side_by_side() {
        // one channel is flat, the other has a single bright spot: averaging hides the spot, the max keeps it
        let y = Tensor::from_slice(&[1f32, 1., 1., 1., 0., 0., 0., 8.]).view([1, 2, 2, 2]);
        let v = |t: Tensor| Vec::<f32>::try_from(t.flatten(0, -1)).unwrap();
        assert_eq!(v(Pooling::Avg.apply(&y)), vec![1.0, 2.0]);
        assert_eq!(v(Pooling::AvgMax.apply(&y)), vec![1.0, 2.0, 1.0, 8.0]);
        assert_eq!((Pooling::Avg.width(64), Pooling::AvgMax.width(64)), (64, 128));
    }

    #[test]
    fn a_head_pools_as_its_spec_says_and_old_specs_read_as_average() {
        let vs = nn::VarStore::new(Device::Cpu);
        let rest = HeadSpec { pooling: Pooling::AvgMax, ..spec("rest", 2, HeadKind::MultiLabel) };
        let m = Model::new(&vs.root(), cfg(TrunkKind::Tiny, vec![spec("modality", 3, HeadKind::SingleLabel), rest.clone()], false));
        let fc1 = |h: &str| vs.variables()[&format!("heads.{h}.fc1.weight")].size();
        let aux = m.cfg.head.aux_channels;
        assert_eq!((fc1("modality")[1], fc1("rest")[1]), (aux, 2 * aux));
        let x = Tensor::randn([3, 3, 32, 32], (Kind::Float, Device::Cpu));
        assert_eq!(tch::no_grad(|| m.forward_t(&x, false, false))[1].size(), vec![3, 2]);
        // model.json: average pooling is not written, so runs from before the option read back unchanged
        let json = serde_json::to_string(&spec("flat", 2, HeadKind::MultiLabel)).unwrap();
        assert!(!json.contains("pooling"), "{json}");
        assert_eq!(serde_json::from_str::<HeadSpec>(&json).unwrap().pooling, Pooling::Avg);
        let back: HeadSpec = serde_json::from_str(&serde_json::to_string(&rest).unwrap()).unwrap();
        assert_eq!(back, rest);
    }

    #[test]
    fn hierarchical_heads_shapes_and_softmax_none_column() {
        let vs = nn::VarStore::new(Device::Cpu);
        let heads = vec![spec("modality", 3, HeadKind::SingleLabel), spec("anatomy", 5, HeadKind::MultiLabel)];
        let m = Model::new(&vs.root(), cfg(TrunkKind::Tiny, heads, true));
        let x = Tensor::randn([4, 3, 32, 32], (Kind::Float, Device::Cpu));
        let out = tch::no_grad(|| m.forward_t(&x, false, false));
        assert_eq!(out[0].size(), vec![4, 4]);
        assert_eq!(out[1].size(), vec![4, 5]);
        let p = m.probabilities(&out);
        assert_eq!(p.size(), vec![4, 8]);
        // modality probabilities exclude "none", so they sum to less than 1
        let s: Vec<f32> = Vec::try_from(p.narrow(1, 0, 3).sum_dim_intlist(1, false, Kind::Float)).unwrap();
        assert!(s.iter().all(|v| *v > 0.0 && *v < 1.0), "{s:?}");
    }

    #[test]
    fn resnet50_has_torchvision_names_and_parameter_count() {
        let vs = nn::VarStore::new(Device::Cpu);
        let _ = Trunk::new(&vs.root(), TrunkKind::Resnet50);
        let vars = vs.variables();
        for name in ["conv1.weight", "bn1.running_var", "layer1.0.downsample.0.weight", "layer4.2.conv3.weight", "layer3.5.bn2.bias"] {
            assert!(vars.contains_key(name), "missing {name}");
        }
        // torchvision resnet50 has 25,557,032 parameters; without fc (2048*1000 + 1000) 23,508,032.
        let trainable: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
        assert_eq!(trainable, 23_508_032);
    }

    #[test]
    fn channels_last_changes_the_layout_not_the_function() {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        let mut m = Model::new(&vs.root(), cfg(TrunkKind::Resnet18, vec![spec("flat", 5, HeadKind::MultiLabel)], false));
        let x = Tensor::randn([2, 3, 64, 64], (Kind::Float, Device::Cpu));
        let eval = |m: &Model| tch::no_grad(|| m.forward_t(&x, false, false)).remove(0);
        // one training step's gradient of the first convolution, in both layouts
        let grad = |m: &Model| {
            for (_, v) in vs.variables() {
                let mut g = v.grad();
                if g.defined() {
                    let _ = g.zero_();
                }
            }
            m.forward_t(&x, true, true)[0].sum(Kind::Float).backward();
            vs.variables()["conv1.weight"].grad().contiguous()
        };
        // (a training forward moves BatchNorm's running statistics, so each eval output is
        // compared with one taken after the same training steps)
        let g0 = grad(&m);
        let y0 = eval(&m);
        m.set_channels_last(&vs, true);
        let vars = vs.variables();
        assert!(is_channels_last(&vars["conv1.weight"]) && is_channels_last(&vars["layer4.1.conv2.weight"]) && is_channels_last(&vars["heads.flat.conv.weight"]));
        assert!(!vars["conv1.weight"].is_contiguous(), "a 7x7 kernel really moved to NHWC");
        let close = |a: &Tensor, b: &Tensor| f64::try_from((a - b).abs().max()).unwrap() / (1e-6 + f64::try_from(b.abs().max()).unwrap());
        let y1 = eval(&m);
        assert!(close(&y1, &y0) < 1e-4, "logits differ by {}", close(&y1, &y0));
        let g1 = grad(&m);
        assert!(vars["conv1.weight"].grad().stride() == vars["conv1.weight"].stride(), "gradients follow the weights' layout");
        assert!(close(&g1, &g0) < 1e-3, "gradients differ by {}", close(&g1, &g0));
        // and back: contiguous again, same function
        let y2 = eval(&m);
        m.set_channels_last(&vs, false);
        assert!(vs.variables()["conv1.weight"].is_contiguous());
        assert!(close(&eval(&m), &y2) < 1e-4);
    }

    #[test]
    fn to_channels_last_strides_and_values() {
        let t = Tensor::arange(24, (Kind::Float, Device::Cpu)).view([1, 2, 3, 4]);
        let c = to_channels_last(&t);
        assert_eq!(c.stride(), vec![24, 1, 8, 2]);
        assert!(is_channels_last(&c) && !is_channels_last(&t));
        assert_eq!(f64::try_from((&c - &t).abs().sum(Kind::Float)).unwrap(), 0.0);
        // memory order is now channel-fastest: element (h=0, w=0) of both channels first
        let raw: Vec<f32> = Vec::try_from(c.as_strided([24], [1], 0)).unwrap();
        assert_eq!(&raw[..4], &[0.0, 12.0, 1.0, 13.0]);
        assert_eq!(to_channels_last(&Tensor::zeros([3, 4], (Kind::Float, Device::Cpu))).stride(), vec![4, 1], "2-D tensors are left alone");
        use clap::ValueEnum;
        assert_eq!(MemoryFormat::from_str("nhwc", true).unwrap(), MemoryFormat::ChannelsLast);
        assert!(MemoryFormat::Auto.channels_last(Device::Cpu, false) && !MemoryFormat::Auto.channels_last(Device::Cuda(0), false));
        assert!(MemoryFormat::Auto.channels_last(Device::Cuda(0), true) && !MemoryFormat::Contiguous.channels_last(Device::Cpu, false));
    }

    #[test]
    fn logit_adjustment_removes_the_class_weight_prior_exactly() {
        // a single-label head (2 concepts + none) trained with class weights w: its softmax is
        // tilted by w; subtracting ln w from the logits leaves softmax(z) / w, renormalised
        let mut spec = spec("laterality", 2, HeadKind::SingleLabel);
        let w = [2.0f32, 4.0, 0.5];
        spec.logit_adjustment = w.iter().map(|x| x.ln()).collect();
        let z = Tensor::from_slice(&[0.3f32, -0.2, 1.1]).view([1, 3]);
        let adj = Tensor::from_slice(&spec.logit_adjustment);
        let got: Vec<f32> = Vec::try_from(head_probabilities(&spec, &z, Some(&adj), None).flatten(0, -1)).unwrap();
        let e: Vec<f32> = [0.3f32, -0.2, 1.1].iter().zip(&w).map(|(zi, wi)| zi.exp() / wi).collect();
        let total: f32 = e.iter().sum();
        for k in 0..2 {
            assert!((got[k] - e[k] / total).abs() < 1e-6, "{got:?}");
        }
    }

    #[test]
    fn max_constraint_takes_the_largest_descendant() {
        // head-and-neck > head > brain, and a sibling: R rows = descendants (self included)
        let h = Tensor::from_slice(&[0.2f32, 0.5, 0.9, 0.3]).view([1, 4]);
        let r = Tensor::from_slice(&[1f32, 1., 1., 0., 0., 1., 1., 0., 0., 0., 1., 0., 0., 0., 0., 1.]).view([4, 4]);
        let got: Vec<f32> = Vec::try_from(max_constraint(&h, &r).flatten(0, -1)).unwrap();
        assert_eq!(got, vec![0.9, 0.9, 0.9, 0.3]);
        let mut s = spec("anatomy", 4, HeadKind::MultiLabel);
        s.descendants = vec![vec![0, 1, 2], vec![1, 2], vec![2], vec![3]];
        assert_eq!(Vec::<f32>::try_from(s.constraint_matrix(Device::Cpu).unwrap().flatten(0, -1)).unwrap(), Vec::<f32>::try_from(r.flatten(0, -1)).unwrap());
    }

    #[test]
    fn a_shared_neck_has_one_neck_and_an_output_layer_per_head() {
        let vs = nn::VarStore::new(Device::Cpu);
        let heads = vec![spec("modality", 3, HeadKind::SingleLabel), spec("anatomy", 5, HeadKind::MultiLabel)];
        let m = Model::new(&vs.root(), ModelConfig { neck: Neck::Shared, ..cfg(TrunkKind::Tiny, heads, true) });
        let vars = vs.variables();
        assert!(vars.contains_key("neck.conv.weight") && vars.contains_key("heads.anatomy.fc2.weight"));
        assert!(!vars.contains_key("heads.anatomy.conv.weight") && !vars.contains_key("heads.anatomy.fc1.weight"));
        // conditioning reaches the output layer: anatomy's fc2 takes the hidden units and modality's 3 probabilities
        assert_eq!(vars["heads.anatomy.fc2.weight"].size(), vec![5, HeadConfig::for_trunk(TrunkKind::Tiny).hidden + 3]);
        let out = tch::no_grad(|| m.forward_t(&Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu)), false, false));
        assert_eq!((out[0].size(), out[1].size()), (vec![2, 4], vec![2, 5]));
    }

    #[test]
    fn prefix_matching_respects_dots() {
        assert!(has_prefix("layer4.0.conv1.weight", "layer4"));
        assert!(!has_prefix("layer40.weight", "layer4"));
        assert!(has_prefix("bn1", "bn1"));
    }
}
