#!/usr/bin/env python3
"""Time a whole process from outside, the same way for both sides of `make bench`'s predict rows.

    python bench/e2e.py NAME N_IMAGES -- COMMAND...

Prints two JSON lines like the other benchmarks: NAME in img/s (N_IMAGES over the process's wall
time, start-up included: what a user waits for) and NAME_peak_rss in MiB (the process's peak
resident set, ru_maxrss). The command's own output goes to stderr; a failing command fails this.
"""
import json, resource, subprocess, sys, time

name, n = sys.argv[1], int(sys.argv[2])
cmd = sys.argv[sys.argv.index("--") + 1:]
t = time.perf_counter()
rc = subprocess.run(cmd, stdout=sys.stderr).returncode
secs = time.perf_counter() - t
if rc != 0:
    sys.exit(f"e2e: {' '.join(cmd)} failed with exit code {rc}")
print(json.dumps({"name": name, "unit": "img/s", "value": n / secs}), flush=True)
print(json.dumps({"name": f"{name}_peak_rss", "unit": "MiB", "value": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}), flush=True)
