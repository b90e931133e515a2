#!/usr/bin/env python3
"""Pool `experiment compare` tables of several split seeds (each its own --out folder).

    python3 scripts/pool-compare.py cmp-s42 cmp-s7 [--baseline ROW]

For every row present in all folders: the test ImageCLEF F1 over every (split seed, seed) pair as
mean +- sd, the paired difference to the baseline row over those pairs (mean +- sd, wins), each
folder's case-resampled 95% interval of that difference (as compare.md gives it, against the
baseline that folder was run with), coherence and strict coherence. Standard library only.
"""
import json
import statistics
import sys


def main(argv):
    folders = [a for a in argv if not a.startswith("--")]
    baseline = argv[argv.index("--baseline") + 1] if "--baseline" in argv else None
    if baseline in folders:
        folders.remove(baseline)
    if not folders:
        sys.exit(__doc__)
    tables = []
    for f in folders:
        with open(f"{f}/compare.json") as fh:
            tables.append({r["run"]: r for r in json.load(fh)})
    rows = [r for r in tables[0] if all(r in t for t in tables)]
    baseline = baseline or rows[0]
    base = [x for t in tables for x in t[baseline]["imageclef_f1"]]
    print(f"pooled over {len(folders)} splits ({', '.join(folders)}); paired against {baseline}\n")
    print(f"| run | test F1 (mean ± sd, n) | vs {baseline} (mean ± sd) | wins | 95% CI per split (cases) | coherent | strictly coherent |")
    print("|---|---:|---:|---:|---|---:|---:|")
    for r in rows:
        f1 = [x for t in tables for x in t[r]["imageclef_f1"]]
        diffs = [a - b for a, b in zip(f1, base)]
        sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0
        cis = []
        for t in tables:
            v = t[r].get("versus_baseline")
            cis.append("-" if v is None else f"[{v['ci95'][0]:+.4f}, {v['ci95'][1]:+.4f}]")
        coh = statistics.mean(t[r]["coherence"]["mean"] for t in tables)
        strict = statistics.mean(t[r]["strict_coherence"]["mean"] for t in tables)
        vs = "-" if r == baseline else f"{statistics.mean(diffs):+.4f} ± {sd(diffs):.4f}"
        wins = "-" if r == baseline else f"{sum(d > 0 for d in diffs)}/{len(diffs)}"
        print(f"| {r} | {statistics.mean(f1):.4f} ± {sd(f1):.4f} ({len(f1)}) | {vs} | {wins} | {' / '.join(cis)} | {coh:.3f} | {strict:.3f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
