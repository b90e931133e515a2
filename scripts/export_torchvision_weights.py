#!/usr/bin/env python3
"""Export torchvision ImageNet weights (or a converted medical checkpoint) as a safetensors state dict
that `conceptree train --weights FILE` loads into its trunk (torchvision parameter names).

  # ImageNet ResNet50 (needs internet once, for torchvision's download):
  python3 scripts/export_torchvision_weights.py --arch resnet50 --out resnet50_imagenet.safetensors
  # a local torchvision-style checkpoint, e.g. RadImageNet's ResNet50 converted to PyTorch:
  python3 scripts/export_torchvision_weights.py --arch resnet50 --checkpoint RadImageNet-ResNet50.pt --out resnet50_radimagenet.safetensors
  # DenseNet-121 (or efficientnet_b0, convnext_tiny) from a local checkpoint with torchvision's names
  # (a DenseNet's old-style 'norm.1'/'conv.2' keys are renamed to 'norm1'/'conv2', as torchvision does):
  python3 scripts/export_torchvision_weights.py --arch densenet121 --checkpoint densenet121-medical.pt --out densenet121_medical.safetensors

Keys are checked against torchvision's architecture: a missing or mis-shaped tensor stops the export
with its name (conceptree checks again when loading). The classifier (fc.*, classifier.*) is dropped.
"""
import argparse
import re
import sys

import torch


def strip_prefixes(sd):
    """Remove wrappers' prefixes (DataParallel 'module.', Lightning 'model.', timm-style 'backbone.')."""
    out = {}
    for k, v in sd.items():
        for p in ("module.", "model.", "backbone.", "encoder."):
            if k.startswith(p):
                k = k[len(p):]
        out[k] = v
    return out


# torchvision's ImageNet weights per architecture
IMAGENET = {
    "resnet18": "IMAGENET1K_V1",
    "resnet34": "IMAGENET1K_V1",
    "resnet50": "IMAGENET1K_V2",
    "densenet121": "IMAGENET1K_V1",
    "efficientnet_b0": "IMAGENET1K_V1",
    "convnext_tiny": "IMAGENET1K_V1",
}

# DenseNet checkpoints from before torchvision 0.3 (and CheXNet-style ones) name a dense layer's
# parts 'norm.1', 'conv.2', ...; torchvision renames them to 'norm1', 'conv2' when loading.
LEGACY_DENSE = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def rename_legacy_densenet(sd):
    out = {}
    for k, v in sd.items():
        m = LEGACY_DENSE.match(k)
        out[m.group(1) + m.group(2) if m else k] = v
    return out


def is_classifier(k):
    return k.startswith("fc.") or k.startswith("classifier.")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="resnet50", choices=sorted(IMAGENET))
    ap.add_argument("--checkpoint", help="a local state dict (.pt/.pth/.safetensors) instead of ImageNet weights")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    import torchvision
    from safetensors.torch import save_file

    model = getattr(torchvision.models, a.arch)(weights=None)
    if a.checkpoint:
        if a.checkpoint.endswith(".safetensors"):
            from safetensors.torch import load_file
            sd = load_file(a.checkpoint)
        else:
            sd = torch.load(a.checkpoint, map_location="cpu", weights_only=True)
            sd = sd.get("state_dict", sd) if isinstance(sd, dict) else sd
        sd = strip_prefixes(sd)
        if a.arch.startswith("densenet"):
            sd = rename_legacy_densenet(sd)
    else:
        sd = getattr(torchvision.models, a.arch)(weights=IMAGENET[a.arch]).state_dict()
    want = {k: v for k, v in model.state_dict().items() if not is_classifier(k) and not k.endswith("num_batches_tracked")}
    missing = [k for k in want if k not in sd]
    shape = [f"{k}: {tuple(sd[k].shape)} != {tuple(v.shape)}" for k, v in want.items() if k in sd and sd[k].shape != v.shape]
    if missing or shape:
        print("cannot export:", file=sys.stderr)
        for k in missing[:20]:
            print(f"  missing {k}", file=sys.stderr)
        for s in shape[:20]:
            print(f"  mis-shaped {s}", file=sys.stderr)
        sys.exit(2)
    save_file({k: sd[k].float().contiguous() for k in want}, a.out)
    print(f"wrote {len(want)} tensors to {a.out}")


if __name__ == "__main__":
    main()
