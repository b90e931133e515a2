#!/usr/bin/env python3
"""PyTorch/torchvision reference for `make bench`: the usual set-up conceptree is compared against.

Each measurement prints one JSON object per line: {"name", "unit", "value"}.
  pipeline: Pillow decode + torchvision Resize(224x224, no crop) + RandomAffine + flip + ToTensor +
            Normalize in a DataLoader with N workers (same work as conceptree's pipeline).
  train:    ResNet50 (or --arch), batch B, Adam 1e-4, BCE-with-logits, img/s end to end (loader included),
            optionally AMP (bf16 autocast) on CUDA and channels_last.
  infer:    img/s under no_grad, and peak memory (RSS; CUDA max allocated).
"""
import argparse, json, os, resource, sys, time, glob

import torch
import torch.nn as nn
from torch.utils.data import Dataset, DataLoader


def emit(name, unit, value):
    print(json.dumps({"name": name, "unit": unit, "value": value}), flush=True)


class Images(Dataset):
    def __init__(self, paths, size, augment, n_labels=25):
        from torchvision import transforms as T
        self.paths = paths
        ops = [T.Resize((size, size))]
        if augment:
            ops += [T.RandomAffine(degrees=10, scale=(0.9, 1.1), shear=5), T.RandomHorizontalFlip()]
        ops += [T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]
        self.tf = T.Compose(ops)
        self.n_labels = n_labels

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from PIL import Image
        img = Image.open(self.paths[i]).convert("RGB")
        y = torch.zeros(self.n_labels)
        y[i % self.n_labels] = 1.0
        return self.tf(img), y


def loader(paths, size, workers, batch, augment=True, shuffle=False):
    return DataLoader(Images(paths, size, augment), batch_size=batch, num_workers=workers, shuffle=shuffle,
                      pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0, drop_last=False)


def bench_pipeline(paths, size, workers, batch, epochs=1):
    dl = loader(paths, size, workers, batch)
    n = 0
    it = iter(dl)
    first = next(it)  # start-up (worker spawn) excluded
    t = time.perf_counter()
    for x, _ in it:
        n += x.shape[0]
    dt = time.perf_counter() - t
    return n / dt


def model_for(arch, n_labels):
    import torchvision
    m = getattr(torchvision.models, arch)(weights=None)
    m.fc = nn.Linear(m.fc.in_features, n_labels)
    return m


def bench_train(paths, size, workers, batch, arch, device, amp, steps, channels_last):
    m = model_for(arch, 25).to(device)
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(m.parameters(), lr=1e-4)
    lossf = nn.BCEWithLogitsLoss()
    dl = loader(paths, size, workers, batch, shuffle=True)
    m.train()
    done, t, n = 0, None, 0
    while done < steps + 2:
        for x, y in dl:
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            if channels_last:
                x = x.to(memory_format=torch.channels_last)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
                loss = lossf(m(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if done == 2:  # warm-up excluded
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
            elif done > 2:
                n += x.shape[0]
            if done >= steps + 2:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t)


def bench_infer(size, batch, arch, device, amp, steps):
    m = model_for(arch, 25).to(device).eval()
    x = torch.randn(batch, 3, size, size, device=device)
    with torch.no_grad(), torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
        for _ in range(2):
            m(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(steps):
            m(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["pipeline", "train", "infer"])
    ap.add_argument("--images", default=None)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", action="store_true")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    paths = sorted(glob.glob(os.path.join(a.images, "*.jpg")) + glob.glob(os.path.join(a.images, "*.png"))) if a.images else []
    if a.limit:
        paths = paths[: a.limit]
    if a.what == "pipeline":
        emit(f"pipeline_{a.workers}w", "img/s", bench_pipeline(paths, a.size, a.workers, a.batch))
    elif a.what == "train":
        emit(f"train_{a.arch}_{a.size}_b{a.batch}{'_amp' if a.amp else ''}", "img/s",
             bench_train(paths, a.size, a.workers, a.batch, a.arch, device, a.amp, a.steps, a.channels_last))
    else:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        emit(f"infer_{a.arch}_{a.size}_b{a.batch}{'_amp' if a.amp else ''}", "img/s", bench_infer(a.size, a.batch, a.arch, device, a.amp, a.steps))
        if device.type == "cuda":
            emit("infer_peak_gpu_mem", "MiB", torch.cuda.max_memory_allocated() / 2**20)
    emit(f"{a.what}_peak_rss", "MiB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


if __name__ == "__main__":
    main()
