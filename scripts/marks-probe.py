#!/usr/bin/env python3
"""Can a small CNN learn the burned-in marks of annotated phantoms? A PyTorch probe, outside conceptree.

Trains conceptree's `tiny` ResNet (torchvision BasicBlocks, widths 16/32/64/128, 7x7 stem, ImageNet
normalisation, Adam 1e-3, batch 32, no augmentation, no class weights) on a phantom set made with
`conceptree data synth --annotations` (DIR/train and DIR/test), and prints the test AUC of the arrow
(C0376152) and the ring (C0221198) after every epoch.

  --labels marks   learn the two marks only
  --labels all     learn every concept of the set (as conceptree's flat model does)
  --head linear    average pooling, then one linear layer (torchvision's classifier)
  --head paper     the paper's head as conceptree builds it for `tiny`: 1x1 convolution to 64 channels,
                   BatchNorm, ReLU, average pooling, dropout 0.3, dense 64, ReLU, dropout 0.3, output

BENCHMARKS.md ("Why no model learned the marks") has what it showed. Run with the project's
virtualenv: .venv/bin/python scripts/marks-probe.py DIR --labels all --head paper
"""
import argparse

import numpy as np
import torch
import torch.nn as nn
from PIL import Image
from torchvision.models.resnet import BasicBlock

ARROW, RING = "C0376152", "C0221198"


def read(d, concepts):
    xs, ys = [], []
    for line in open(f"{d}/labels.csv"):
        i, c = line.rstrip("\n").split("\t")
        c = set(c.split(";"))
        im = np.asarray(Image.open(f"{d}/images/{i}.jpg").convert("RGB"), dtype=np.float32) / 255.0
        xs.append(im.transpose(2, 0, 1))
        ys.append([float(k in c) for k in concepts])
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (torch.tensor(np.stack(xs)) - mean) / std, torch.tensor(ys)


def auc(y, s):
    y, s = np.asarray(y), np.asarray(s)
    pos, neg = s[y == 1], s[y == 0]
    return float(((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / len(pos) / len(neg))


class Tiny(nn.Module):
    def __init__(self, n_out, head):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 7, 2, 3, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        layers, c = [], 16
        for w, stride in [(16, 1), (32, 2), (64, 2), (128, 2)]:
            down = None if (stride == 1 and c == w) else nn.Sequential(nn.Conv2d(c, w, 1, stride, bias=False), nn.BatchNorm2d(w))
            layers.append(BasicBlock(c, w, stride, down))
            c = w
        self.layers = nn.Sequential(*layers)
        if head == "linear":
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, n_out))
        else:
            self.head = nn.Sequential(
                nn.Conv2d(128, 64, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                nn.Dropout(0.3), nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.3), nn.Linear(64, n_out))

    def forward(self, x):
        return self.head(self.layers(self.stem(x)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--labels", choices=["marks", "all"], default="all")
    ap.add_argument("--head", choices=["linear", "paper"], default="paper")
    ap.add_argument("--epochs", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    concepts = [ARROW, RING]
    if a.labels == "all":
        seen = {c for line in open(f"{a.dir}/train/labels.csv") for c in line.rstrip("\n").split("\t")[1].split(";")}
        concepts += sorted(seen - {ARROW, RING})
    xtr, ytr = read(f"{a.dir}/train", concepts)
    xte, yte = read(f"{a.dir}/test", concepts)
    m = Tiny(len(concepts), a.head)
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    print(f"{len(concepts)} concepts, {len(xtr)} training images, head {a.head}")
    for epoch in range(1, a.epochs + 1):
        m.train()
        order = torch.randperm(len(xtr))
        for b in range(0, len(order), 32):
            idx = order[b:b + 32]
            loss = nn.functional.binary_cross_entropy_with_logits(m(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        m.eval()
        with torch.no_grad():
            s = torch.sigmoid(m(xte))
        print(f"epoch {epoch:2d}  loss {loss.item():.3f}  test AUC arrow {auc(yte[:, 0], s[:, 0]):.3f}  ring {auc(yte[:, 1], s[:, 1]):.3f}", flush=True)


if __name__ == "__main__":
    main()
