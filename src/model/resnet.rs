//! ResNet trunks with torchvision parameter names (`conv1.weight`, `layer1.0.bn1.running_mean`,
//! `layer2.0.downsample.0.weight`, ...), so torchvision state dicts load without renaming.
//!
//! He et al., "Deep Residual Learning for Image Recognition" (2016); torchvision's v1.5 variant
//! (stride on the 3x3 convolution of a bottleneck). The trunk stops before global pooling and
//! returns the last feature map, because the paper's head starts with an auxiliary convolution.
use tch::{nn, Tensor};

/// The shape of a ResNet: bottleneck or basic blocks, blocks per stage, stage widths, stem width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResNetSpec {
    pub bottleneck: bool,
    pub blocks: [i64; 4],
    pub widths: [i64; 4],
    pub stem: i64,
}

impl ResNetSpec {
    /// Channels of the last feature map.
    pub(crate) fn out_channels(&self) -> i64 {
        if self.bottleneck {
            self.widths[3] * 4
        } else {
            self.widths[3]
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
pub struct ResNet {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    layers: Vec<Vec<Block>>,
}

impl ResNet {
    /// Build under `p` (use the var store root so names match torchvision's).
    pub fn new(p: &nn::Path, spec: ResNetSpec) -> ResNet {
        let ResNetSpec { bottleneck, blocks, widths, stem } = spec;
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
        ResNet { conv1, bn1, layers }
    }

    /// `[B, 3, S, S]` -> `[B, C, S/32, S/32]` with `C = spec.out_channels()`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut y = x.apply(&self.conv1).apply_t(&self.bn1, train).relu_().max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        for layer in &self.layers {
            for b in layer {
                y = b.forward_t(&y, train);
            }
        }
        y
    }
}
