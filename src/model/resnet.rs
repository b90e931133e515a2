//! ResNet trunks with torchvision parameter names (`conv1.weight`, `layer1.0.bn1.running_mean`,
//! `layer2.0.downsample.0.weight`, ...), so torchvision state dicts load without renaming.
//!
//! He et al., "Deep Residual Learning for Image Recognition" (2016); torchvision's v1.5 variant
//! (stride on the 3x3 convolution of a bottleneck). The trunk stops before global pooling and
//! returns the last feature map, because the paper's head starts with an auxiliary convolution.
use serde::{Deserialize, Serialize};
use std::fmt;
use tch::{nn, nn::ModuleT, Tensor};

/// Which trunk to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TrunkKind {
    /// A narrow 4-stage ResNet (one basic block per stage, 16..128 channels) for tests and CPU demos.
    Tiny,
    Resnet18,
    Resnet34,
    Resnet50,
}

impl fmt::Display for TrunkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tiny => "tiny",
            Self::Resnet18 => "resnet18",
            Self::Resnet34 => "resnet34",
            Self::Resnet50 => "resnet50",
        })
    }
}

impl TrunkKind {
    fn spec(self) -> (bool, [i64; 4], [i64; 4], i64) {
        // (bottleneck, blocks per stage, widths, stem width)
        match self {
            Self::Tiny => (false, [1, 1, 1, 1], [16, 32, 64, 128], 16),
            Self::Resnet18 => (false, [2, 2, 2, 2], [64, 128, 256, 512], 64),
            Self::Resnet34 => (false, [3, 4, 6, 3], [64, 128, 256, 512], 64),
            Self::Resnet50 => (true, [3, 4, 6, 3], [64, 128, 256, 512], 64),
        }
    }
    /// Channels of the last feature map.
    pub fn out_channels(self) -> i64 {
        let (bottleneck, _, w, _) = self.spec();
        if bottleneck {
            w[3] * 4
        } else {
            w[3]
        }
    }
}

fn conv(p: nn::Path, cin: i64, cout: i64, k: i64, stride: i64, padding: i64) -> nn::Conv2D {
    let cfg = nn::ConvConfig { stride, padding, bias: false, ..Default::default() };
    nn::conv2d(p, cin, cout, k, cfg)
}

#[derive(Debug)]
struct Block {
    convs: Vec<(nn::Conv2D, nn::BatchNorm)>,
    downsample: Option<(nn::Conv2D, nn::BatchNorm)>,
}

impl Block {
    fn basic(p: &nn::Path, cin: i64, cout: i64, stride: i64) -> Block {
        let convs = vec![
            (conv(p / "conv1", cin, cout, 3, stride, 1), nn::batch_norm2d(p / "bn1", cout, Default::default())),
            (conv(p / "conv2", cout, cout, 3, 1, 1), nn::batch_norm2d(p / "bn2", cout, Default::default())),
        ];
        let downsample = (stride != 1 || cin != cout).then(|| {
            (conv(p / "downsample" / "0", cin, cout, 1, stride, 0), nn::batch_norm2d(p / "downsample" / "1", cout, Default::default()))
        });
        Block { convs, downsample }
    }

    fn bottleneck(p: &nn::Path, cin: i64, width: i64, stride: i64) -> Block {
        let cout = width * 4;
        let convs = vec![
            (conv(p / "conv1", cin, width, 1, 1, 0), nn::batch_norm2d(p / "bn1", width, Default::default())),
            (conv(p / "conv2", width, width, 3, stride, 1), nn::batch_norm2d(p / "bn2", width, Default::default())),
            (conv(p / "conv3", width, cout, 1, 1, 0), nn::batch_norm2d(p / "bn3", cout, Default::default())),
        ];
        let downsample = (stride != 1 || cin != cout).then(|| {
            (conv(p / "downsample" / "0", cin, cout, 1, stride, 0), nn::batch_norm2d(p / "downsample" / "1", cout, Default::default()))
        });
        Block { convs, downsample }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        // In place where torchvision is (ReLU(inplace=True), `out += identity`): BatchNorm's backward
        // needs its input, not its output, so its output can be overwritten; this saves one
        // activation-sized allocation and pass per ReLU and per residual sum.
        let mut y = x.shallow_clone();
        let last = self.convs.len() - 1;
        for (i, (c, bn)) in self.convs.iter().enumerate() {
            y = y.apply(c).apply_t(bn, train);
            if i != last {
                let _ = y.relu_();
            }
        }
        match &self.downsample {
            Some((c, bn)) => y += x.apply(c).apply_t(bn, train),
            None => y += x,
        }
        let _ = y.relu_();
        y
    }
}

/// A ResNet without its pooling and classifier.
#[derive(Debug)]
pub struct Trunk {
    pub kind: TrunkKind,
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    layers: Vec<Vec<Block>>,
    /// Convert input images to channels-last (set by [`crate::model::Model::set_channels_last`]).
    pub channels_last: bool,
}

/// Top-level parameter groups of a trunk, from the input side: the units of layerwise fine-tuning.
pub const TRUNK_GROUPS: [&str; 6] = ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4"];

impl Trunk {
    /// Build under `p` (use the var store root so names match torchvision's).
    pub fn new(p: &nn::Path, kind: TrunkKind) -> Trunk {
        let (bottleneck, blocks, widths, stem) = kind.spec();
        let conv1 = conv(p / "conv1", 3, stem, 7, 2, 3);
        let bn1 = nn::batch_norm2d(p / "bn1", stem, Default::default());
        let mut cin = stem;
        let mut layers = Vec::new();
        for (li, (&n, &w)) in blocks.iter().zip(&widths).enumerate() {
            let lp = p / format!("layer{}", li + 1);
            let mut layer = Vec::new();
            for bi in 0..n {
                let stride = if bi == 0 && li > 0 { 2 } else { 1 };
                let bp = &lp / bi.to_string();
                let b = if bottleneck { Block::bottleneck(&bp, cin, w, stride) } else { Block::basic(&bp, cin, w, stride) };
                cin = if bottleneck { w * 4 } else { w };
                layer.push(b);
            }
            layers.push(layer);
        }
        Trunk { kind, conv1, bn1, layers, channels_last: false }
    }

    /// `[B, 3, S, S]` -> `[B, C, S/32, S/32]` with `C = kind.out_channels()`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let x = if self.channels_last { super::layout::to_channels_last(x) } else { x.shallow_clone() };
        let mut y = x.apply(&self.conv1).apply_t(&self.bn1, train).relu_().max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        for layer in &self.layers {
            for b in layer {
                y = b.forward_t(&y, train);
            }
        }
        y
    }
}

impl ModuleT for Trunk {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        Trunk::forward_t(self, xs, train)
    }
}
