//! EfficientNet-B0 with torchvision's parameter names (`features.0.0.weight`,
//! `features.2.0.block.1.0.weight`, `features.2.0.block.2.fc1.bias`, `features.8.1.running_var`,
//! ...), so torchvision's state dicts load without renaming.
//!
//! Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks" (2019), as
//! torchvision's `efficientnet_b0` builds it: a 3x3 stem (stride 2, 32 channels), seven stages of
//! MBConv blocks (1x1 expansion, depthwise convolution, squeeze-and-excitation, 1x1 projection;
//! SiLU; BatchNorm with eps 1e-5), a 1x1 convolution to 1280 channels. Stochastic depth on the
//! residual blocks: probability `0.2 * i / 16` for the `i`-th of the 16 blocks (torchvision's
//! rate), identity in evaluation. The trunk returns `features(x)`; the classifier (dropout,
//! linear) is not part of it.
use tch::{nn, Tensor};

use super::stochastic_depth::stochastic_depth;

/// Channels of EfficientNet-B0's last feature map.
pub(crate) const OUT_CHANNELS: i64 = 1280;

/// torchvision's `stochastic_depth_prob` for EfficientNet-B0.
const STOCHASTIC_DEPTH: f64 = 0.2;
const STEM: i64 = 32;
const LAST: i64 = 1280;

/// The stages (torchvision's `bneck_conf`): expansion ratio, kernel, stride, input and output channels, blocks.
const STAGES: [(i64, i64, i64, i64, i64, i64); 7] =
    [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3), (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)];

/// SiLU, in place when no gradient needs its input (its backward does, unlike ReLU's).
fn silu(x: Tensor) -> Tensor {
    if x.requires_grad() {
        x.silu()
    } else {
        let mut x = x;
        let _ = x.silu_();
        x
    }
}

/// torchvision's `Conv2dNormActivation`: a bias-free convolution (`<p>.0`), BatchNorm (`<p>.1`),
/// then SiLU unless it is a projection.
#[derive(Debug)]
struct ConvBn {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
    silu: bool,
}

impl ConvBn {
    fn new(p: &nn::Path, cin: i64, cout: i64, k: i64, stride: i64, groups: i64, silu: bool) -> ConvBn {
        let cfg = nn::ConvConfig { stride, padding: (k - 1) / 2, groups, bias: false, ..Default::default() };
        ConvBn { conv: nn::conv2d(p / "0", cin, cout, k, cfg), bn: nn::batch_norm2d(p / "1", cout, Default::default()), silu }
    }

    /// `[B, cin, h, w]` -> `[B, cout, h/stride, w/stride]`.
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let y = x.apply(&self.conv).apply_t(&self.bn, train);
        if self.silu {
            silu(y)
        } else {
            y
        }
    }
}

/// Squeeze-and-excitation: global average, 1x1 conv (`fc1`), SiLU, 1x1 conv (`fc2`), sigmoid, times the input.
#[derive(Debug)]
struct SqueezeExcitation {
    fc1: nn::Conv2D,
    fc2: nn::Conv2D,
}

impl SqueezeExcitation {
    fn new(p: &nn::Path, c: i64, squeeze: i64) -> SqueezeExcitation {
        SqueezeExcitation { fc1: nn::conv2d(p / "fc1", c, squeeze, 1, Default::default()), fc2: nn::conv2d(p / "fc2", squeeze, c, 1, Default::default()) }
    }

    /// `[B, c, h, w]` -> `[B, c, h, w]`.
    fn forward(&self, x: &Tensor) -> Tensor {
        let scale = x.adaptive_avg_pool2d([1, 1]).apply(&self.fc1).silu().apply(&self.fc2).sigmoid();
        scale * x
    }
}

/// An MBConv block; its layers are `block.0`, `block.1`, ... in torchvision's order (no expansion
/// layer when the ratio is 1, so the indices shift by one).
#[derive(Debug)]
struct MbConv {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    se: SqueezeExcitation,
    project: ConvBn,
    /// Stochastic depth probability when the block is residual; `None`: not residual.
    residual: Option<f64>,
}

impl MbConv {
    fn new(p: &nn::Path, expand_ratio: i64, k: i64, stride: i64, cin: i64, cout: i64, sd_prob: f64) -> MbConv {
        let b = p / "block";
        let wide = cin * expand_ratio;
        let mut i = 0;
        let mut next = || {
            i += 1;
            &b / (i - 1)
        };
        let expand = (wide != cin).then(|| ConvBn::new(&next(), cin, wide, 1, 1, 1, true));
        let depthwise = ConvBn::new(&next(), wide, wide, k, stride, wide, true);
        let se = SqueezeExcitation::new(&next(), wide, (cin / 4).max(1));
        let project = ConvBn::new(&next(), wide, cout, 1, 1, 1, false);
        MbConv { expand, depthwise, se, project, residual: (stride == 1 && cin == cout).then_some(sd_prob) }
    }

    /// `[B, cin, h, w]` -> `[B, cout, h/stride, w/stride]`.
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let y = match &self.expand {
            Some(e) => e.forward_t(x, train),
            None => x.shallow_clone(),
        };
        let y = self.project.forward_t(&self.se.forward(&self.depthwise.forward_t(&y, train)), train);
        match self.residual {
            Some(p) => stochastic_depth(y, p, train) + x,
            None => y,
        }
    }
}

/// EfficientNet-B0 without its pooling and classifier.
#[derive(Debug)]
pub(crate) struct EfficientNet {
    stem: ConvBn,
    stages: Vec<Vec<MbConv>>,
    last: ConvBn,
}

impl EfficientNet {
    /// Build under `p` (the var store root: its variables are `features.*`).
    pub(crate) fn b0(p: &nn::Path) -> EfficientNet {
        let f = p / "features";
        let total: i64 = STAGES.iter().map(|s| s.5).sum();
        let mut id = 0;
        let mut stages = Vec::new();
        for (si, &(e, k, stride, cin, cout, n)) in STAGES.iter().enumerate() {
            let sp = &f / (si + 1);
            let blocks = (0..n)
                .map(|bi| {
                    let sd = STOCHASTIC_DEPTH * id as f64 / total as f64;
                    id += 1;
                    let (cin, stride) = if bi == 0 { (cin, stride) } else { (cout, 1) };
                    MbConv::new(&(&sp / bi), e, k, stride, cin, cout, sd)
                })
                .collect();
            stages.push(blocks);
        }
        let last_in = STAGES[STAGES.len() - 1].4;
        EfficientNet { stem: ConvBn::new(&(&f / 0), 3, STEM, 3, 2, 1, true), stages, last: ConvBn::new(&(&f / (STAGES.len() + 1)), last_in, LAST, 1, 1, 1, true) }
    }

    /// `[B, 3, S, S]` -> `[B, 1280, S/32, S/32]`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut y = self.stem.forward_t(x, train);
        for stage in &self.stages {
            for b in stage {
                y = b.forward_t(&y, train);
            }
        }
        self.last.forward_t(&y, train)
    }
}
