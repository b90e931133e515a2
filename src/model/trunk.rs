//! The trunk: which network turns images into a feature map, and its layer groups.
//!
//! Every trunk keeps torchvision's parameter names, so a state dict written by
//! `scripts/export_torchvision_weights.py` loads without renaming, and stops before global
//! pooling: it returns the last feature map `[B, C, S/32, S/32]` (all trunks have stride 32).
//!
//! | trunk | torchvision | features returned | C |
//! | --- | --- | --- | --- |
//! | `tiny`, `resnet18/34/50` | `resnet*` | `layer4`'s output | 128, 512, 512, 2048 |
//! | `densenet121` | `densenet121` | `relu(features(x))`, as torchvision's `forward` pools it | 1024 |
//! | `efficientnet_b0` | `efficientnet_b0` | `features(x)` (ends with the 1x1 conv to 1280, BN, SiLU) | 1280 |
//! | `convnext_tiny` | `convnext_tiny` | `features(x)` (the classifier's LayerNorm, applied after pooling there, is not part of the trunk) | 768 |
//!
//! Layer groups (the units of `--strategy layerwise`, unfrozen from the output side down) follow
//! the resolution stages of torchvision's `features`, as ResNet's `layer4` .. `layer1`, stem do:
//!
//! | trunk | stride 32 | stride 16 | stride 8 | stride 4 | stem |
//! | --- | --- | --- | --- | --- | --- |
//! | ResNets | `layer4` | `layer3` | `layer2` | `layer1` | `conv1`, `bn1` |
//! | `densenet121` | `features.transition3`, `features.denseblock4`, `features.norm5` | `features.transition2`, `features.denseblock3` | `features.transition1`, `features.denseblock2` | `features.denseblock1` | `features.conv0`, `features.norm0` |
//! | `efficientnet_b0` | `features.6`, `features.7`, `features.8` | `features.4`, `features.5` | `features.3` | `features.2` | `features.0`, `features.1` |
//! | `convnext_tiny` | `features.6`, `features.7` | `features.4`, `features.5` | `features.2`, `features.3` | `features.1` | `features.0` |
use serde::{Deserialize, Serialize};
use std::fmt;
use tch::{nn, nn::ModuleT, Tensor};

use super::convnext::ConvNeXt;
use super::densenet::DenseNet;
use super::efficientnet::EfficientNet;
use super::resnet::{ResNet, ResNetSpec};

/// Which trunk to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TrunkKind {
    /// A narrow 4-stage ResNet (one basic block per stage, 16..128 channels) for tests and CPU demos.
    Tiny,
    Resnet18,
    Resnet34,
    Resnet50,
    /// DenseNet-121 (Huang et al. 2017), torchvision's `densenet121`.
    Densenet121,
    /// EfficientNet-B0 (Tan & Le 2019), torchvision's `efficientnet_b0`.
    #[serde(rename = "efficientnet_b0")]
    #[value(name = "efficientnet_b0", alias = "efficientnet-b0")]
    EfficientnetB0,
    /// ConvNeXt-Tiny (Liu et al. 2022), torchvision's `convnext_tiny`.
    #[serde(rename = "convnext_tiny")]
    #[value(name = "convnext_tiny", alias = "convnext-tiny")]
    ConvnextTiny,
}

impl TrunkKind {
    /// The trunk named `word` (as `--trunk` takes it); the error lists the known names.
    pub fn parse(word: &str) -> Result<TrunkKind, String> {
        <TrunkKind as clap::ValueEnum>::from_str(word, false).map_err(|_| {
            let known: Vec<String> = <TrunkKind as clap::ValueEnum>::value_variants().iter().map(|t| t.to_string()).collect();
            format!("unknown trunk '{word}' (known: {})", known.join(", "))
        })
    }
}

impl fmt::Display for TrunkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tiny => "tiny",
            Self::Resnet18 => "resnet18",
            Self::Resnet34 => "resnet34",
            Self::Resnet50 => "resnet50",
            Self::Densenet121 => "densenet121",
            Self::EfficientnetB0 => "efficientnet_b0",
            Self::ConvnextTiny => "convnext_tiny",
        })
    }
}

impl TrunkKind {
    /// The shape of a ResNet trunk; `None` for the others.
    fn resnet_spec(self) -> Option<ResNetSpec> {
        let (bottleneck, blocks, widths, stem) = match self {
            Self::Tiny => (false, [1, 1, 1, 1], [16, 32, 64, 128], 16),
            Self::Resnet18 => (false, [2, 2, 2, 2], [64, 128, 256, 512], 64),
            Self::Resnet34 => (false, [3, 4, 6, 3], [64, 128, 256, 512], 64),
            Self::Resnet50 => (true, [3, 4, 6, 3], [64, 128, 256, 512], 64),
            Self::Densenet121 | Self::EfficientnetB0 | Self::ConvnextTiny => return None,
        };
        Some(ResNetSpec { bottleneck, blocks, widths, stem })
    }

    /// Channels of the last feature map.
    pub(crate) fn out_channels(self) -> i64 {
        match self {
            Self::Densenet121 => super::densenet::OUT_CHANNELS,
            Self::EfficientnetB0 => super::efficientnet::OUT_CHANNELS,
            Self::ConvnextTiny => super::convnext::OUT_CHANNELS,
            _ => self.resnet_spec().expect("a ResNet").out_channels(),
        }
    }

    /// The trunk's layer groups from the output side down: what `--strategy layerwise` unfreezes
    /// at each step (see the module's table). Together they cover every trunk variable.
    pub(crate) fn layerwise_groups(self) -> Vec<Vec<&'static str>> {
        match self {
            Self::Tiny | Self::Resnet18 | Self::Resnet34 | Self::Resnet50 => vec![vec!["layer4"], vec!["layer3"], vec!["layer2"], vec!["layer1"], vec!["conv1", "bn1"]],
            Self::Densenet121 => vec![
                vec!["features.transition3", "features.denseblock4", "features.norm5"],
                vec!["features.transition2", "features.denseblock3"],
                vec!["features.transition1", "features.denseblock2"],
                vec!["features.denseblock1"],
                vec!["features.conv0", "features.norm0"],
            ],
            Self::EfficientnetB0 => vec![
                vec!["features.6", "features.7", "features.8"],
                vec!["features.4", "features.5"],
                vec!["features.3"],
                vec!["features.2"],
                vec!["features.0", "features.1"],
            ],
            Self::ConvnextTiny => vec![vec!["features.6", "features.7"], vec!["features.4", "features.5"], vec!["features.2", "features.3"], vec!["features.1"], vec!["features.0"]],
        }
    }

    /// All of the trunk's top-level parameter groups, from the input side (variable-name prefixes).
    pub fn groups(self) -> Vec<&'static str> {
        let mut groups: Vec<&'static str> = Vec::new();
        for step in self.layerwise_groups().into_iter().rev() {
            groups.extend(step);
        }
        groups
    }
}

#[derive(Debug)]
enum Net {
    ResNet(ResNet),
    DenseNet(DenseNet),
    EfficientNet(EfficientNet),
    ConvNeXt(ConvNeXt),
}

/// A trunk without its pooling and classifier.
#[derive(Debug)]
pub struct Trunk {
    pub kind: TrunkKind,
    net: Net,
    /// Convert input images to channels-last (set by [`crate::model::Model::set_channels_last`]).
    pub channels_last: bool,
}

impl Trunk {
    /// Build under `p` (use the var store root so names match torchvision's).
    pub fn new(p: &nn::Path, kind: TrunkKind) -> Trunk {
        let net = match kind {
            TrunkKind::Densenet121 => Net::DenseNet(DenseNet::densenet121(p)),
            TrunkKind::EfficientnetB0 => Net::EfficientNet(EfficientNet::b0(p)),
            TrunkKind::ConvnextTiny => Net::ConvNeXt(ConvNeXt::tiny(p)),
            _ => Net::ResNet(ResNet::new(p, kind.resnet_spec().expect("a ResNet"))),
        };
        Trunk { kind, net, channels_last: false }
    }

    /// `[B, 3, S, S]` -> `[B, C, S/32, S/32]` with `C = kind.out_channels()`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let x = if self.channels_last { super::layout::to_channels_last(x) } else { x.shallow_clone() };
        match &self.net {
            Net::ResNet(n) => n.forward_t(&x, train),
            Net::DenseNet(n) => n.forward_t(&x, train),
            Net::EfficientNet(n) => n.forward_t(&x, train),
            Net::ConvNeXt(n) => n.forward_t(&x, train),
        }
    }
}

impl ModuleT for Trunk {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        Trunk::forward_t(self, xs, train)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::has_prefix;
    use tch::{Device, Kind};

    /// Parameters (without the classifier) and state-dict tensors (without the classifier and the
    /// `num_batches_tracked` counters) of torchvision 0.26's models:
    /// `sum(p.numel() for k, p in m.named_parameters() if not k.startswith("classifier"))`.
    #[test]
    fn new_trunks_have_torchvision_names_counts_and_groups() {
        let cases = [
            (TrunkKind::Densenet121, 6_953_856, 604, ["features.conv0.weight", "features.denseblock3.denselayer24.conv2.weight", "features.transition2.norm.running_var", "features.norm5.bias"]),
            (TrunkKind::EfficientnetB0, 4_007_548, 309, ["features.0.0.weight", "features.1.0.block.1.fc2.bias", "features.6.3.block.2.fc1.weight", "features.8.1.running_mean"]),
            (TrunkKind::ConvnextTiny, 27_818_592, 178, ["features.0.1.weight", "features.5.8.layer_scale", "features.6.1.bias", "features.7.2.block.5.weight"]),
        ];
        for (kind, params, tensors, names) in cases {
            let vs = nn::VarStore::new(Device::Cpu);
            let t = Trunk::new(&vs.root(), kind);
            let vars = vs.variables();
            for name in names {
                assert!(vars.contains_key(name), "{kind}: missing {name}");
            }
            let trainable: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
            assert_eq!((trainable, vars.len()), (params, tensors), "{kind}");
            // every variable lies in exactly one layer group
            let groups = kind.groups();
            for name in vars.keys() {
                assert_eq!(groups.iter().filter(|g| has_prefix(name, g)).count(), 1, "{kind}: {name} in {groups:?}");
            }
            let x = Tensor::zeros([2, 3, 64, 64], (Kind::Float, Device::Cpu));
            assert_eq!(tch::no_grad(|| t.forward_t(&x, false)).size(), vec![2, kind.out_channels(), 2, 2], "{kind}");
        }
        for kind in [TrunkKind::Tiny, TrunkKind::Resnet50] {
            let vs = nn::VarStore::new(Device::Cpu);
            let _ = Trunk::new(&vs.root(), kind);
            assert!(vs.variables().keys().all(|n| kind.groups().iter().filter(|g| has_prefix(n, g)).count() == 1));
            assert_eq!(kind.groups(), vec!["conv1", "bn1", "layer1", "layer2", "layer3", "layer4"]);
        }
    }

    #[test]
    fn trunk_names_read_as_torchvision_spells_them() {
        use clap::ValueEnum;
        for (name, kind) in [("densenet121", TrunkKind::Densenet121), ("efficientnet_b0", TrunkKind::EfficientnetB0), ("convnext_tiny", TrunkKind::ConvnextTiny)] {
            assert_eq!(TrunkKind::from_str(name, false).unwrap(), kind);
            assert_eq!(kind.to_string(), name);
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{name}\""));
        }
        assert_eq!(TrunkKind::from_str("efficientnet-b0", false).unwrap(), TrunkKind::EfficientnetB0);
    }
}
