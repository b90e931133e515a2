//! DenseNet-121 with torchvision's parameter names (`features.conv0.weight`,
//! `features.denseblock1.denselayer1.norm1.running_mean`, `features.transition1.conv.weight`,
//! `features.norm5.bias`, ...), so torchvision's (and torchxrayvision's) state dicts load without
//! renaming.
//!
//! Huang et al., "Densely Connected Convolutional Networks" (2017), DenseNet-BC as torchvision's
//! `densenet121` builds it: growth rate 32, blocks of 6, 12, 24, 16 layers, 64 stem channels,
//! bottleneck width 4 x 32, no dropout. The trunk returns `relu(features(x))`, the map
//! torchvision's `forward` pools; the classifier is not part of it.
use tch::{nn, Tensor};

/// Channels of DenseNet-121's last feature map.
pub(crate) const OUT_CHANNELS: i64 = 1024;

const GROWTH: i64 = 32;
const BN_SIZE: i64 = 4;
const STEM: i64 = 64;
const BLOCKS: [i64; 4] = [6, 12, 24, 16];

fn conv(p: nn::Path, cin: i64, cout: i64, k: i64, stride: i64, padding: i64) -> nn::Conv2D {
    nn::conv2d(p, cin, cout, k, nn::ConvConfig { stride, padding, bias: false, ..Default::default() })
}

fn bn(p: nn::Path, c: i64) -> nn::BatchNorm {
    nn::batch_norm2d(p, c, Default::default())
}

/// One dense layer: BN, ReLU, 1x1 conv to `4 * 32`, BN, ReLU, 3x3 conv to 32 new channels.
#[derive(Debug)]
struct DenseLayer {
    norm1: nn::BatchNorm,
    conv1: nn::Conv2D,
    norm2: nn::BatchNorm,
    conv2: nn::Conv2D,
}

impl DenseLayer {
    fn new(p: &nn::Path, cin: i64) -> DenseLayer {
        let width = BN_SIZE * GROWTH;
        DenseLayer { norm1: bn(p / "norm1", cin), conv1: conv(p / "conv1", cin, width, 1, 1, 0), norm2: bn(p / "norm2", width), conv2: conv(p / "conv2", width, GROWTH, 3, 1, 1) }
    }

    /// All earlier features, concatenated, `[B, cin, h, w]` -> the new ones, `[B, 32, h, w]`.
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        // ReLU in place, as torchvision's: BatchNorm's backward needs its input, not its output
        let y = x.apply_t(&self.norm1, train).relu_().apply(&self.conv1);
        y.apply_t(&self.norm2, train).relu_().apply(&self.conv2)
    }
}

/// A dense block: each layer sees the concatenation of the block's input and every earlier layer's output.
#[derive(Debug)]
struct DenseBlock {
    layers: Vec<DenseLayer>,
}

impl DenseBlock {
    fn new(p: &nn::Path, n: i64, cin: i64) -> DenseBlock {
        DenseBlock { layers: (0..n).map(|i| DenseLayer::new(&(p / format!("denselayer{}", i + 1)), cin + i * GROWTH)).collect() }
    }

    /// `[B, cin, h, w]` -> `[B, cin + 32 n, h, w]`.
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut features = vec![x.shallow_clone()];
        for layer in &self.layers {
            let new = layer.forward_t(&Tensor::cat(&features, 1), train);
            features.push(new);
        }
        Tensor::cat(&features, 1)
    }
}

/// A transition: BN, ReLU, 1x1 conv halving the channels, 2x2 average pooling.
#[derive(Debug)]
struct Transition {
    norm: nn::BatchNorm,
    conv: nn::Conv2D,
}

impl Transition {
    fn new(p: &nn::Path, cin: i64, cout: i64) -> Transition {
        Transition { norm: bn(p / "norm", cin), conv: conv(p / "conv", cin, cout, 1, 1, 0) }
    }

    /// `[B, cin, h, w]` -> `[B, cout, h/2, w/2]`.
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        x.apply_t(&self.norm, train).relu_().apply(&self.conv).avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None::<i64>)
    }
}

/// DenseNet-121 without its classifier.
#[derive(Debug)]
pub struct DenseNet {
    conv0: nn::Conv2D,
    norm0: nn::BatchNorm,
    blocks: Vec<(DenseBlock, Option<Transition>)>,
    norm5: nn::BatchNorm,
}

impl DenseNet {
    /// Build under `p` (the var store root: its variables are `features.*`).
    pub fn densenet121(p: &nn::Path) -> DenseNet {
        let f = p / "features";
        let mut c = STEM;
        let mut blocks = Vec::new();
        for (i, &n) in BLOCKS.iter().enumerate() {
            let block = DenseBlock::new(&(&f / format!("denseblock{}", i + 1)), n, c);
            c += n * GROWTH;
            let transition = (i + 1 < BLOCKS.len()).then(|| {
                let t = Transition::new(&(&f / format!("transition{}", i + 1)), c, c / 2);
                c /= 2;
                t
            });
            blocks.push((block, transition));
        }
        debug_assert_eq!(c, OUT_CHANNELS);
        DenseNet { conv0: conv(&f / "conv0", 3, STEM, 7, 2, 3), norm0: bn(&f / "norm0", STEM), blocks, norm5: bn(&f / "norm5", c) }
    }

    /// `[B, 3, S, S]` -> `[B, 1024, S/32, S/32]`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut y = x.apply(&self.conv0).apply_t(&self.norm0, train).relu_().max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        for (block, transition) in &self.blocks {
            y = block.forward_t(&y, train);
            if let Some(t) = transition {
                y = t.forward_t(&y, train);
            }
        }
        y.apply_t(&self.norm5, train).relu_()
    }
}
