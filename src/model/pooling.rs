//! How a neck turns the trunk's feature map into a vector ([`Pooling`]), apart from the rest of
//! the model so that a head's spec ([`super::heads::HeadSpec`]) can name it from below.
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// How a neck turns its feature map `[B, C, h, w]` into a vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Pooling {
    /// Global average (the paper's head): `[B, C]`.
    #[default]
    Avg,
    /// Global average and global maximum side by side, `[B, 2C]`: evidence that sits in a few
    /// places (a burned-in arrow, a circled region) is not averaged away over the whole image.
    AvgMax,
}

impl Pooling {
    pub fn is_avg(&self) -> bool {
        *self == Pooling::Avg
    }

    /// Pooled width for `channels` input channels.
    pub fn width(self, channels: i64) -> i64 {
        match self {
            Pooling::Avg => channels,
            Pooling::AvgMax => 2 * channels,
        }
    }

    /// `[B, C, h, w]` -> `[B, width(C)]`.
    pub fn apply(self, y: &Tensor) -> Tensor {
        let avg = y.adaptive_avg_pool2d([1, 1]).flatten(1, -1);
        match self {
            Pooling::Avg => avg,
            Pooling::AvgMax => Tensor::cat(&[avg, y.amax([2, 3].as_slice(), false)], 1),
        }
    }
}
