//! The trunks against torchvision itself: a torchvision model with non-trivial weights and
//! BatchNorm statistics, exported by `scripts/export_torchvision_weights.py`, loaded into
//! conceptree's trunk, gives the features torchvision's own forward gives (eval mode, to 1e-5),
//! in both memory layouts (each against torchvision in the same layout). Needs the `.venv` with torchvision 0.26 and safetensors (`make test`
//! installs them); a venv without them is a failure, not a reason to skip.
use std::path::{Path, PathBuf};

use conceptree::model::weights::load_trunk_weights;
use conceptree::model::{to_channels_last, Trunk, TrunkKind};
use tch::{nn, Device, Tensor};

/// The Python of the `.venv` (the Makefile's `VIRTUAL_ENV`, else `./.venv`), if there is one (a
/// venv without torchvision fails in the harness, with the way to install it).
fn python() -> Option<PathBuf> {
    let venv = std::env::var_os("VIRTUAL_ENV").map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    let py = venv.join("bin/python");
    if !py.is_file() {
        return None;
    }
    Some(py)
}

/// Builds torchvision's `arch` (seeded), gives it non-trivial statistics and scales, writes its
/// state dict as a checkpoint (DenseNet's with the old `norm.1` key names, which the export script
/// renames), exports it with the script, and writes a batch of images and the features
/// torchvision's forward computes from it (eval mode). Arguments: arch, output folder, script.
///
/// Norm layers' affine parameters and ConvNeXt's layer scales (1e-6 at initialisation, which
/// would hide the blocks) are randomised, then BatchNorm statistics come from three train-mode
/// forwards with a cumulative average (so eval activations are normalised, as in a trained
/// network, yet every running mean and variance differs from 0 and 1).
const HARNESS: &str = r#"
import re, runpy, sys
import torch, torchvision
from safetensors.torch import save_file
arch, out, script = sys.argv[1:4]
torch.manual_seed(0)
m = getattr(torchvision.models, arch)(weights=None)
# a ResNet has no `features`: everything before its pooling and classifier
features = m.features if hasattr(m, "features") else torch.nn.Sequential(*list(m.children())[:-2])
bns = [x for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d)]
for bn in bns:
    bn.momentum = None
with torch.no_grad():
    for x in m.modules():
        if isinstance(x, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)):
            x.weight.uniform_(0.5, 1.5)
            x.bias.normal_(0.0, 0.2)
    for name, p in m.named_parameters():
        if name.endswith("layer_scale"):
            p.uniform_(0.2, 0.6)
    m.train()
    for _ in range(3):
        features(torch.randn(4, 3, 64, 64))
m.eval()
sd = m.state_dict()
if arch.startswith("densenet"):
    sd = {re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", k): v for k, v in sd.items()}
    assert any(".norm.1." in k for k in sd)
torch.save(sd, f"{out}/checkpoint.pt")
sys.argv = [script, "--arch", arch, "--checkpoint", f"{out}/checkpoint.pt", "--out", f"{out}/weights.safetensors"]
runpy.run_path(script, run_name="__main__")

def forward(x):
    with torch.no_grad():
        f = features(x)
        return torch.relu(f) if arch.startswith("densenet") else f  # densenet: what torchvision's forward pools

x = torch.randn(2, 3, 64, 64)
f = forward(x)
# the same in channels-last (conceptree's default on CPU): weights and input in NHWC
m.to(memory_format=torch.channels_last)
f_cl = forward(x.to(memory_format=torch.channels_last))
save_file({"input": x.contiguous(), "features": f.contiguous(), "features_channels_last": f_cl.contiguous()}, f"{out}/io.safetensors")
print(f"{arch}: features {tuple(f.shape)}, largest {f.abs().max().item():.3g}, mean |f| {f.abs().mean().item():.3g}; "
      f"torchvision's channels-last differs from its contiguous by {(f - f_cl).abs().max().item():.1e}")
"#;

/// Exports `arch` from torchvision and checks conceptree's `kind` trunk against its features;
/// returns the largest absolute difference (contiguous, channels-last).
fn parity(kind: TrunkKind, arch: &str) -> Option<(f64, f64)> {
    let Some(py) = python() else {
        // no silent pass: only an explicit choice skips the check
        assert!(
            std::env::var_os("CONCEPTREE_SKIP_TORCHVISION").is_some_and(|v| v == "1"),
            "no .venv with Python for the {arch} parity check (set VIRTUAL_ENV or run `make venv`; CONCEPTREE_SKIP_TORCHVISION=1 skips it knowingly)"
        );
        eprintln!("SKIPPED {arch} parity (CONCEPTREE_SKIP_TORCHVISION=1): the trunk was NOT checked against torchvision");
        return None;
    };
    let tmp = tempfile::tempdir().unwrap();
    let harness = tmp.path().join("harness.py");
    std::fs::write(&harness, HARNESS).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/export_torchvision_weights.py");
    let o = std::process::Command::new(&py).arg(&harness).args([arch, tmp.path().to_str().unwrap(), script.to_str().unwrap()]).output().unwrap();
    assert!(
        o.status.success(),
        "python failed (it needs torchvision 0.26 and safetensors: `make test` installs them, or `{} -m pip install torchvision==0.26.0 safetensors`):\n{}{}",
        py.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    eprint!("{}", String::from_utf8_lossy(&o.stdout));
    let io: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(tmp.path().join("io.safetensors")).unwrap().into_iter().collect();
    let (x, want) = (&io["input"], &io["features"]);
    let largest = f64::try_from(want.abs().max()).unwrap();
    assert!(largest > 0.1, "{arch}: torchvision's features are near zero ({largest}): the comparison would be trivial");

    let vs = nn::VarStore::new(Device::Cpu);
    let mut trunk = Trunk::new(&vs.root(), kind);
    let report = load_trunk_weights(&vs, &tmp.path().join("weights.safetensors")).unwrap();
    assert_eq!(report.loaded, vs.variables().len(), "{arch}: every trunk tensor comes from the file");
    let mut diffs = Vec::new();
    for (channels_last, want) in [(false, want), (true, &io["features_channels_last"])] {
        if channels_last {
            // as `Model::set_channels_last` does: convolution weights and input in NHWC (oneDNN
            // picks other kernels for that layout, in torchvision as here)
            tch::no_grad(|| vs.variables().into_values().filter(|v| v.dim() == 4).for_each(|mut v| v.set_data(&to_channels_last(&v))));
            trunk.channels_last = true;
        }
        let got = tch::no_grad(|| trunk.forward_t(x, false));
        assert_eq!(got.size(), want.size(), "{arch}");
        let d = f64::try_from((&got - want).abs().max()).unwrap();
        assert!(d <= 1e-5, "{arch} (channels-last {channels_last}): features differ from torchvision's by {d:e} (largest feature {largest})");
        diffs.push(d);
    }
    eprintln!("{arch}: largest difference from torchvision's features {:.1e} (contiguous), {:.1e} (channels-last)", diffs[0], diffs[1]);
    Some((diffs[0], diffs[1]))
}

#[test]
fn resnet18_features_equal_torchvisions() {
    parity(TrunkKind::Resnet18, "resnet18");
}

#[test]
fn densenet121_features_equal_torchvisions() {
    parity(TrunkKind::Densenet121, "densenet121");
}

#[test]
fn efficientnet_b0_features_equal_torchvisions() {
    parity(TrunkKind::EfficientnetB0, "efficientnet_b0");
}

#[test]
fn convnext_tiny_features_equal_torchvisions() {
    parity(TrunkKind::ConvnextTiny, "convnext_tiny");
}
