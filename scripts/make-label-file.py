#!/usr/bin/env python3
"""A large synthetic label file for the scale benchmark (BENCHMARKS.md, "Scale"): ImageCLEF 2019
format (id<TAB>CUI;CUI;...), 1-12 concepts per row drawn from N distinct CUIs with Zipf-like
frequencies, as in real ImageCLEF/ROCO label files. Deterministic for a given seed. Standard library only.

    python3 scripts/make-label-file.py --rows 1000000 --concepts 5000 --out /tmp/labels-1m.csv
"""
import argparse
import bisect
import itertools
import random


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--concepts", type=int, default=5000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    rng = random.Random(a.seed)
    cuis = [f"C{rng.randrange(10**7):07d}" for _ in range(a.concepts)]
    cum = list(itertools.accumulate(1.0 / (r + 1) for r in range(a.concepts)))
    with open(a.out, "w") as f:
        for i in range(a.rows):
            k = rng.randint(1, 12)
            picked = {cuis[bisect.bisect(cum, rng.random() * cum[-1])] for _ in range(k)}
            f.write(f"ROCO_{i:07d}\t{';'.join(sorted(picked))}\n")


if __name__ == "__main__":
    main()
