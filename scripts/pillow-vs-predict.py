#!/usr/bin/env python3
"""The README's export snippet with Pillow (its `load_pixels`) against `conceptree predict`: on
how many images the decided concepts agree, the largest probability difference, and how far
Pillow's pixels are from conceptree's. Needs torch and Pillow; the images are the ones an
`export --examples` folder holds (as .jpg, .jpeg or .png under IMAGES).

    conceptree export --model RUN --out EXP --examples IMAGES
    conceptree predict --model RUN --images IMAGES --out pred.csv --explain pred.jsonl
    python3 scripts/pillow-vs-predict.py EXP IMAGES pred.csv pred.jsonl [README.md]
"""
import json
import os
import re
import sys

import torch


def main() -> None:
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    export, images, pred_csv, explain = sys.argv[1:5]
    readme = sys.argv[5] if len(sys.argv) == 6 else os.path.join(os.path.dirname(__file__), "..", "README.md")
    block = re.search(r"<!-- export-snippet.*?```python\n(.*?)```", open(readme).read(), re.S).group(1)
    sys.argv = ["snippet", export]  # no image files: the block only defines its functions
    ns: dict = {}
    exec(block, ns)
    ex = json.load(open(f"{export}/examples.json"))
    ids, (n, _, s, _) = ex["ids"], ex["pixels"]["shape"]
    ours_all = torch.frombuffer(bytearray(open(f"{export}/{ex['pixels']['file']}", "rb").read()), dtype=torch.uint8).view(n, 3, s, s)
    want = {}
    for line in open(pred_csv):
        i, cuis = line.rstrip("\n").split("\t")
        want[i] = set(filter(None, cuis.split(";")))
    cli = {r["id"]: r["scores"] for r in map(json.loads, open(explain))}
    cuis = [c["cui"] for c in ns["meta"]["concepts"]]
    files = {os.path.splitext(f)[0]: os.path.join(images, f) for f in os.listdir(images)}
    same = same_ours = differ = 0
    dp = dp_ours = 0.0
    grey = 0
    with torch.no_grad():
        for at in range(0, n, 64):
            batch = ids[at:at + 64]
            pil = torch.stack([ns["load_pixels"](files[i]) for i in batch])
            ours = ours_all[at:at + 64]
            d = (pil.int() - ours.int()).abs()
            differ += int((d > 0).sum())
            grey = max(grey, int(d.max()))
            p_pil, p_ours = ns["model"](ns["normalise"](pil)), ns["model"](ns["normalise"](ours))
            for k, i in enumerate(batch):
                p_cli = torch.tensor([cli[i][c] for c in cuis])
                dp, dp_ours = max(dp, float((p_pil[k] - p_cli).abs().max())), max(dp_ours, float((p_ours[k] - p_cli).abs().max()))
                same += set(ns["decode"](p_pil[k])) == want[i]
                same_ours += set(ns["decode"](p_ours[k])) == want[i]
    print(f"{n} images")
    print(f"Pillow's pixels: the same concepts as predict on {same} ({100 * same / n:.1f}%), probabilities within {dp:.1e}")
    print(f"Pillow's pixels differ from conceptree's in {100 * differ / (n * 3 * s * s):.1f}% of values, by up to {grey} grey levels")
    print(f"conceptree's pixels (examples.pixels.u8): the same concepts on {same_ours} ({100 * same_ours / n:.1f}%), probabilities within {dp_ours:.1e}")


if __name__ == "__main__":
    main()
