#!/usr/bin/env python3
"""PyTorch/torchvision reference for `make bench`: the usual set-up conceptree is compared against.

Each measurement prints one JSON object per line: {"name", "unit", "value"}.
  pipeline: Pillow decode + torchvision Resize(224x224, no crop) + RandomAffine + flip + ToTensor +
            Normalize in a DataLoader with N workers (same work as conceptree's pipeline).
  train:    ResNet50 (or --arch), batch B, Adam 1e-4, BCE-with-logits, img/s end to end (loader included),
            optionally AMP (bf16 autocast) on CUDA and channels_last.
  infer:    img/s under no_grad, and peak memory (RSS; CUDA max allocated); with --weights, a trunk
            state dict loaded first (the one `weights` wrote, which conceptree-bench loads too).
  weights:  torchvision's random initialisation of --arch (seed 0), its trunk written to --out.
  predict:  end to end as the README tells a Python user to do it: its snippet (Pillow decode +
            BILINEAR resize, normalise, decode) with the module of `conceptree export`, images in a
            DataLoader with N workers, one submission row per image written (timed from outside by
            bench/e2e.py, like `conceptree predict`).
  eval:     ImageCLEF per-image F1 (and per-concept P/R/F1 + micro/macro) on --gt/--pred files
            (ImageCLEF 2019 format), vectorised with numpy; seconds for the computation after parsing.
`--name` overrides the measurement name so that conceptree-bench's lines pair with these.
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
            # bilinear like conceptree's warp (torchvision's default here is nearest)
            ops += [T.RandomAffine(degrees=10, scale=(0.9, 1.1), shear=5, interpolation=T.InterpolationMode.BILINEAR),
                    T.RandomHorizontalFlip()]
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
    """torchvision's `arch` with its last linear layer replaced by one over `n_labels` (ResNet's `fc`,
    DenseNet's `classifier`, EfficientNet's and ConvNeXt's last `classifier` layer)."""
    import torchvision
    m = getattr(torchvision.models, arch)(weights=None)
    if hasattr(m, "fc"):
        m.fc = nn.Linear(m.fc.in_features, n_labels)
    elif isinstance(m.classifier, nn.Linear):
        m.classifier = nn.Linear(m.classifier.in_features, n_labels)
    else:
        m.classifier[-1] = nn.Linear(m.classifier[-1].in_features, n_labels)
    return m


def bench_train(paths, size, workers, batch, arch, device, amp, steps, channels_last, amp_dtype=torch.bfloat16, warmup=2):
    m = model_for(arch, 25).to(device)
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(m.parameters(), lr=1e-4)
    # fp16 needs loss scaling (PyTorch's AMP recipe); bf16 does not
    scaler = torch.amp.GradScaler(device.type, enabled=amp and amp_dtype == torch.float16)
    lossf = nn.BCEWithLogitsLoss()
    dl = loader(paths, size, workers, batch, shuffle=True)
    m.train()
    done, t, n = 0, None, 0
    while done < steps + warmup:
        for x, y in dl:
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            if channels_last:
                x = x.to(memory_format=torch.channels_last)
            with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=amp):
                loss = lossf(m(x).float(), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            done += 1
            if done == warmup:  # warm-up excluded
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
            elif done > warmup:
                n += x.shape[0]
            if done >= steps + warmup:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t)


def load_trunk(m, path):
    """Copy a safetensors trunk state dict (torchvision names, no classifier) into `m`: every
    trunk tensor must be there, as `conceptree-bench --weights` requires too."""
    from safetensors.torch import load_file
    missing, unexpected = m.load_state_dict(load_file(path), strict=False)
    missing = [k for k in missing if not (k.startswith("fc.") or k.startswith("classifier."))]
    if missing or unexpected:
        sys.exit(f"{path}: missing {missing[:5]}, unexpected {unexpected[:5]}")


def save_trunk(arch, path, seed=0):
    """torchvision's own random initialisation of `arch` (seed `seed`), its trunk written as a
    safetensors state dict: the weights both sides of an inference row load."""
    from safetensors.torch import save_file
    torch.manual_seed(seed)
    sd = model_for(arch, 25).state_dict()
    save_file({k: v.contiguous() for k, v in sd.items()
               if not (k.startswith("fc.") or k.startswith("classifier.") or k.endswith("num_batches_tracked"))}, path)


def bench_infer(size, batch, arch, device, amp, steps, channels_last, amp_dtype=torch.bfloat16, weights=None):
    m = model_for(arch, 25)
    if weights:
        load_trunk(m, weights)
    m = m.to(device).eval()
    x = torch.randn(batch, 3, size, size, device=device)
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=amp):
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


def predict(export, images, ids_file, out, workers, batch):
    """`conceptree predict` in Python: the README's export snippet (tests/export.rs checks it against
    conceptree) runs the images of `ids_file` through the exported module in a DataLoader and writes
    a submission (ImageCLEF 2019 format) to `out`."""
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read()
    block = readme[readme.index("<!-- export-snippet"):]
    block = block[block.index("```python\n") + len("```python\n"):]
    snippet = block[: block.index("```")]
    ns = {}
    sys.argv = ["use_export.py", export]  # the snippet's own argument handling: no image files
    exec(snippet, ns)
    by_id = {os.path.splitext(f)[0]: os.path.join(images, f) for f in os.listdir(images)}
    ids = []
    for line in open(ids_file):
        i = line.replace(",", "\t").split("\t")[0].strip()
        if i and not (not ids and i.lower() == "id"):
            ids.append(i)

    class Pixels(Dataset):
        def __len__(self):
            return len(ids)

        def __getitem__(self, k):
            return ns["load_pixels"](by_id[ids[k]])

    dl = DataLoader(Pixels(), batch_size=batch, num_workers=workers, persistent_workers=False)
    k = 0
    with open(out, "w") as f, torch.no_grad():
        for pixels in dl:
            for p in ns["model"](ns["normalise"](pixels)):
                f.write(f"{ids[k]}\t{';'.join(ns['decode'](p))}\n")
                k += 1
    print(f"predict: wrote {k} rows to {out}", file=sys.stderr)


def read_labels(path):
    out = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            k, _, v = line.partition("\t")
            out[k] = {c.strip().upper() for c in v.split(";") if c.strip()}
    return out


def bench_eval(gt_path, pred_path, repeats=3):
    """Official ImageCLEF F1 (mean over GT images with a non-empty GT of 2|G&P|/(|G|+|P|), a missing
    prediction scores 0) and per-concept P/R/F1 with micro/macro averages, vectorised with numpy."""
    import numpy as np
    gt, pred = read_labels(gt_path), read_labels(pred_path)

    def f1_only():
        ids = [k for k, v in gt.items() if v]
        vocab = {}
        def rows(sets):
            r, c = [], []
            for i, s in enumerate(sets):
                for x in s:
                    r.append(i); c.append(vocab.setdefault(x, len(vocab)))
            return np.asarray(r, dtype=np.int64), np.asarray(c, dtype=np.int64)
        gr, gc = rows(gt[k] for k in ids)
        pr, pc = rows(pred.get(k, ()) for k in ids)
        n, k = len(ids), len(vocab)
        G = np.zeros((n, k), dtype=bool); G[gr, gc] = True
        P = np.zeros((n, k), dtype=bool); P[pr, pc] = True
        return ids, G, P

    def image_f1(G, P):
        inter = np.count_nonzero(G & P, axis=1)
        denom = G.sum(axis=1) + P.sum(axis=1)
        return np.where(denom > 0, 2.0 * inter / np.maximum(denom, 1), 0.0)

    def report():
        ids, G, P = f1_only()
        f1 = image_f1(G, P).mean() if ids else 0.0
        tp = np.count_nonzero(G & P, axis=0).astype(np.float64)
        fp = np.count_nonzero(~G & P, axis=0).astype(np.float64)
        fn = np.count_nonzero(G & ~P, axis=0).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            prec = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
            rec = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
            cf1 = np.where(prec + rec > 0, 2 * prec * rec / (prec + rec), 0.0)
        micro = 2 * tp.sum() / max(2 * tp.sum() + fp.sum() + fn.sum(), 1)
        return f1, (cf1.mean(), micro)

    def best(fn):
        ts = []
        for _ in range(repeats):
            t = time.perf_counter(); v = fn(); ts.append(time.perf_counter() - t)
        return min(ts), v

    t_f1_total, f1 = best(lambda: (lambda r: image_f1(r[1], r[2]).mean())(f1_only()))
    t_rep, (f1r, _) = best(report)
    print(f"eval: ImageCLEF F1 {f1:.6f} ({f1r:.6f} from the report)", file=sys.stderr)
    return t_f1_total, t_rep


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["pipeline", "train", "infer", "predict", "eval", "weights"])
    ap.add_argument("--name", default=None, help="measurement name (default: derived from the options)")
    ap.add_argument("--amp-dtype", default="bf16", choices=["bf16", "fp16"])
    ap.add_argument("--gt", default=None)
    ap.add_argument("--pred", default=None)
    ap.add_argument("--tag", default="10000x5000", help="eval: suffix of the measurement names")
    ap.add_argument("--images", default=None)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", action="store_true")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--list-repeat", type=int, default=1, help="go through the (limited) image list this many times")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--export", default=None, help="predict: the folder `conceptree export` wrote")
    ap.add_argument("--ids", default=None, help="predict: the ids to predict (first column)")
    ap.add_argument("--out", default=None, help="predict: the submission to write; weights: the safetensors file")
    ap.add_argument("--weights", default=None, help="infer: load this trunk state dict (safetensors) instead of a random one")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    paths = sorted(glob.glob(os.path.join(a.images, "*.jpg")) + glob.glob(os.path.join(a.images, "*.png"))) if a.images else []
    if a.limit:
        paths = paths[: a.limit]
    paths = paths * max(a.list_repeat, 1)
    amp_dtype = torch.bfloat16 if a.amp_dtype == "bf16" else torch.float16
    amp_tag = ("_amp" if a.amp_dtype == "bf16" else "_amp_fp16") if a.amp else ""
    if a.what == "pipeline":
        emit(a.name or f"pipeline_{a.workers}w", "img/s", bench_pipeline(paths, a.size, a.workers, a.batch))
    elif a.what == "train":
        name = a.name or f"train_{a.arch}_{a.size}_b{a.batch}{amp_tag}"
        emit(name, "img/s", bench_train(paths, a.size, a.workers, a.batch, a.arch, device, a.amp, a.steps, a.channels_last, amp_dtype, a.warmup))
    elif a.what == "weights":
        if not a.out:
            ap.error("weights needs --out")
        save_trunk(a.arch, a.out)
    elif a.what == "predict":
        if not (a.export and a.ids and a.out and a.images):
            ap.error("predict needs --export, --images, --ids and --out")
        predict(a.export, a.images, a.ids, a.out, a.workers, a.batch)
    elif a.what == "infer":
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        name = a.name or f"infer_{a.arch}_{a.size}_b{a.batch}{amp_tag}"
        emit(name, "img/s", bench_infer(a.size, a.batch, a.arch, device, a.amp, a.steps, a.channels_last, amp_dtype, a.weights))
        emit(f"{name}_peak_rss", "MiB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        if device.type == "cuda":
            emit(f"{name}_peak_gpu_mem", "MiB", torch.cuda.max_memory_allocated() / 2**20)
    else:
        if not (a.gt and a.pred):
            ap.error("eval needs --gt and --pred")
        t_f1, t_rep = bench_eval(a.gt, a.pred)
        emit(f"eval_f1_{a.tag}", "s", t_f1)
        emit(f"eval_report_{a.tag}", "s", t_rep)


if __name__ == "__main__":
    main()
