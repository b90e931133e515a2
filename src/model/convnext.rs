//! ConvNeXt-Tiny with torchvision's parameter names (`features.0.0.weight`,
//! `features.1.0.block.0.weight`, `features.1.0.block.2.bias`, `features.1.0.layer_scale`,
//! `features.2.0.weight`, ...), so torchvision's state dicts load without renaming.
//!
//! Liu et al., "A ConvNet for the 2020s" (2022), as torchvision's `convnext_tiny` builds it: a 4x4
//! stride-4 stem with LayerNorm over channels, four stages of 3, 3, 9, 3 blocks (96, 192, 384, 768
//! channels) with LayerNorm + 2x2 stride-2 downsampling between them. A block: 7x7 depthwise
//! convolution, channels-last permute, LayerNorm (eps 1e-6), linear to 4x, GELU (exact), linear
//! back, permute, times the layer scale (1e-6 at initialisation), stochastic depth, plus the
//! input. Stochastic depth probability `0.1 * i / 17` for the `i`-th of the 18 blocks
//! (torchvision's rate), identity in evaluation. The trunk returns `features(x)`: the
//! classifier's LayerNorm (`classifier.0`, applied after pooling in torchvision) is not part of it.
use tch::{nn, Tensor};

use super::stochastic_depth::stochastic_depth;

/// Channels of ConvNeXt-Tiny's last feature map.
pub(crate) const OUT_CHANNELS: i64 = 768;

/// torchvision's `stochastic_depth_prob` for ConvNeXt-Tiny.
const STOCHASTIC_DEPTH: f64 = 0.1;
const LAYER_SCALE: f64 = 1e-6;
const EPS: f64 = 1e-6;
const DIMS: [i64; 4] = [96, 192, 384, 768];
const DEPTHS: [i64; 4] = [3, 3, 9, 3];

fn layer_norm(p: nn::Path, c: i64) -> nn::LayerNorm {
    nn::layer_norm(p, vec![c], nn::LayerNormConfig { eps: EPS, ..Default::default() })
}

/// torchvision's `LayerNorm2d`: LayerNorm over the channels of `[B, C, h, w]` (through NHWC).
fn layer_norm_2d(x: &Tensor, ln: &nn::LayerNorm) -> Tensor {
    x.permute([0, 2, 3, 1]).apply(ln).permute([0, 3, 1, 2])
}

/// One ConvNeXt block (`CNBlock`): layers `block.0` (depthwise), `block.2` (LayerNorm),
/// `block.3` and `block.5` (linear), and `layer_scale` `[C, 1, 1]`.
#[derive(Debug)]
struct Block {
    dwconv: nn::Conv2D,
    norm: nn::LayerNorm,
    fc1: nn::Linear,
    fc2: nn::Linear,
    layer_scale: Tensor,
    sd_prob: f64,
}

impl Block {
    fn new(p: &nn::Path, c: i64, sd_prob: f64) -> Block {
        let b = p / "block";
        let dw = nn::ConvConfig { padding: 3, groups: c, bias: true, ..Default::default() };
        Block {
            dwconv: nn::conv2d(&b / 0, c, c, 7, dw),
            norm: layer_norm(&b / 2, c),
            fc1: nn::linear(&b / 3, c, 4 * c, Default::default()),
            fc2: nn::linear(&b / 5, 4 * c, c, Default::default()),
            layer_scale: p.var("layer_scale", &[c, 1, 1], nn::Init::Const(LAYER_SCALE)),
            sd_prob,
        }
    }

    /// `[B, C, h, w]` -> `[B, C, h, w]`.
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let y = x.apply(&self.dwconv).permute([0, 2, 3, 1]).apply(&self.norm).apply(&self.fc1).gelu("none").apply(&self.fc2).permute([0, 3, 1, 2]);
        stochastic_depth(&self.layer_scale * y, self.sd_prob, train) + x
    }
}

/// ConvNeXt-Tiny without its pooling and classifier.
#[derive(Debug)]
pub struct ConvNeXt {
    stem: (nn::Conv2D, nn::LayerNorm),
    /// Per stage: the downsampling before it (none for the first), its blocks.
    stages: Vec<(Option<(nn::LayerNorm, nn::Conv2D)>, Vec<Block>)>,
}

impl ConvNeXt {
    /// Build under `p` (the var store root: its variables are `features.*`). The stages are
    /// `features.1`, `.3`, `.5`, `.7`; the downsampling layers `features.2`, `.4`, `.6`.
    pub fn tiny(p: &nn::Path) -> ConvNeXt {
        let f = p / "features";
        let stem = (nn::conv2d(&f / 0 / 0, 3, DIMS[0], 4, nn::ConvConfig { stride: 4, ..Default::default() }), layer_norm(&f / 0 / 1, DIMS[0]));
        let total: i64 = DEPTHS.iter().sum();
        let mut id = 0;
        let mut stages = Vec::new();
        for (s, (&c, &n)) in DIMS.iter().zip(&DEPTHS).enumerate() {
            let down = (s > 0).then(|| {
                let dp = &f / (2 * s);
                (layer_norm(&dp / 0, DIMS[s - 1]), nn::conv2d(&dp / 1, DIMS[s - 1], c, 2, nn::ConvConfig { stride: 2, ..Default::default() }))
            });
            let sp = &f / (2 * s + 1);
            let blocks = (0..n)
                .map(|i| {
                    let sd = STOCHASTIC_DEPTH * id as f64 / (total as f64 - 1.0);
                    id += 1;
                    Block::new(&(&sp / i), c, sd)
                })
                .collect();
            stages.push((down, blocks));
        }
        ConvNeXt { stem, stages }
    }

    /// `[B, 3, S, S]` -> `[B, 768, S/32, S/32]`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut y = layer_norm_2d(&x.apply(&self.stem.0), &self.stem.1);
        for (down, blocks) in &self.stages {
            if let Some((ln, conv)) = down {
                y = layer_norm_2d(&y, ln).apply(conv);
            }
            for b in blocks {
                y = b.forward_t(&y, train);
            }
        }
        y
    }
}
