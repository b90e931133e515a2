//! Memory layout of images, activations and convolution weights: contiguous (NCHW) or
//! channels-last (NHWC), and the conversions between them.
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

/// Memory layout of images, activations and convolution weights.
///
/// Channels-last (NHWC) lets oneDNN on CPU and cuDNN's tensor-core kernels on CUDA skip layout
/// conversions inside every convolution; the model computes the same function either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum MemoryFormat {
    /// Channels-last on CPU (ResNet50 training 1.4x faster there, see BENCHMARKS.md) and with
    /// mixed precision on CUDA; contiguous for fp32 on CUDA.
    #[default]
    Auto,
    /// NHWC.
    #[value(alias = "channels_last", alias = "nhwc")]
    ChannelsLast,
    /// NCHW, PyTorch's default.
    #[value(alias = "nchw")]
    Contiguous,
}

impl MemoryFormat {
    /// Whether this choice means channels-last on `device` (with or without mixed precision).
    pub fn channels_last(self, device: Device, amp: bool) -> bool {
        match self {
            MemoryFormat::ChannelsLast => true,
            MemoryFormat::Contiguous => false,
            MemoryFormat::Auto => !device.is_cuda() || amp,
        }
    }
}

/// `[N, C, H, W]` stored as NHWC (PyTorch's `channels_last`); tensors of other ranks are returned as they are.
pub fn to_channels_last(t: &Tensor) -> Tensor {
    if t.dim() != 4 || is_channels_last(t) {
        return t.shallow_clone();
    }
    t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// Whether a 4-D tensor is stored densely as NHWC (strides `[HWC, 1, WC, C]`; as in PyTorch, the
/// stride of a dimension of size 1 does not matter, so a 1x1 kernel is both layouts at once).
pub fn is_channels_last(t: &Tensor) -> bool {
    let (size, stride) = (t.size(), t.stride());
    if size.len() != 4 {
        return false;
    }
    let mut expected = 1;
    for d in [1, 3, 2, 0] {
        if size[d] != 1 && stride[d] != expected {
            return false;
        }
        expected *= size[d];
    }
    true
}
