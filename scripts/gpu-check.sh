#!/usr/bin/env bash
# GPU check: run the release binaries built on the development machine on a machine with an
# NVIDIA GPU and PyTorch 2.11 (python3 with torch and torchvision on its path; no Rust, no .venv
# needed), and compare CUDA training/inference throughput with the PyTorch reference on the same GPU.
#
#   scripts/gpu-check.sh [path/to/conceptree]      # conceptree-bench is taken from the same folder
#
# What it runs (about 2-3 minutes on an H200; every step has a time limit, the whole under 5 minutes):
#   conceptree doctor; 2048 synthetic 256 px phantoms; training ResNet50 224 px batch 128
#   (3 warm-up + GPU_STEPS timed steps, loader included) in fp32 and fp16 mixed precision
#   (autocast + loss scaling; tch 0.24 exposes no way to pick bfloat16), contiguous and
#   channels-last, on conceptree (its trainer's own epoch loop, Trainer::train_epoch) and on the
#   reference (the same, plus bf16 autocast); inference batch 128. Results: $GPU_CHECK_OUT
#   (target/gpu-check) results.json + table.md.
# GPU_CHECK_DRY=1 runs the same commands on the CPU with tiny sizes (to test the script without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "gpu-check: $*" >&2; exit 1; }

BIN=${1:-target/release/conceptree}
BENCH=${BENCH_BIN:-$(dirname "$BIN")/conceptree-bench}
OUT=${GPU_CHECK_OUT:-target/gpu-check}
STEPS=${GPU_STEPS:-10}
WARMUP=3
BATCH=${GPU_BATCH:-128}
DEVICE=cuda
NSYNTH=2048
if [ -n "${GPU_CHECK_DRY:-}" ]; then DEVICE=cpu; STEPS=1; WARMUP=1; BATCH=4; NSYNTH=64; fi
WORKERS=${GPU_WORKERS:-$(nproc)}
[ "$WORKERS" -gt 16 ] && WORKERS=16
LIMIT=150   # seconds per step of this script

[ -x "$BIN" ] || die "no executable at $BIN (build it on the development machine with 'make build', copy target/release/ here)"
[ -x "$BENCH" ] || die "no executable at $BENCH (build it with 'cargo build --release --bin conceptree-bench'; or set BENCH_BIN)"
command -v python3 >/dev/null || die "python3 is required (with torch 2.11)"
TORCH_LIB=$(python3 -c 'import torch,os;print(os.path.join(os.path.dirname(torch.__file__),"lib"))' 2>/dev/null) \
    || die "python3 cannot import torch"
python3 - <<'EOF' || die "this needs torch 2.11 with a CUDA device, and torchvision (see above)"
import os, sys, torch
v = torch.__version__.split("+")[0]
print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}", file=sys.stderr)
ok = v.startswith("2.11") and (torch.cuda.is_available() or bool(os.environ.get("GPU_CHECK_DRY")))
if ok and torch.cuda.is_available():
    print(f"GPU: {torch.cuda.get_device_name(0)}", file=sys.stderr)
try:
    import torchvision  # noqa: F401
except ImportError:
    print("torchvision is missing (pip install torchvision==0.26.0)", file=sys.stderr); ok = False
sys.exit(0 if ok else 1)
EOF
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# tch::autocast calls at::autocast::{is,set}_enabled and tch's pin_memory passes a device, which
# libtorch 2.11 deprecates with a warning on every call: those lines are filtered out of the log.
quiet() { grep -v -e 'autocast_mode.h:' -e 'Memory.cpp:' >&2 || true; }

mkdir -p "$OUT"
C="$OUT/conceptree.jsonl"
R="$OUT/reference.jsonl"
: >"$C"
: >"$R"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
START=$(date +%s)

step() { echo ">> $*" >&2; }
ours() { timeout "$LIMIT" "$BENCH" "$@" 2> >(quiet) | tee -a "$C"; }
ref() { timeout "$LIMIT" python3 bench/torch_reference.py "$@" | tee -a "$R"; }

step "conceptree doctor"
DOCTOR=$(timeout 60 "$BIN" doctor 2>&1) || { echo "$DOCTOR" >&2; die "'conceptree doctor' failed: is $TORCH_LIB the lib folder of torch 2.11?"; }
echo "$DOCTOR"
[ "$DEVICE" = cpu ] || grep -q "^CUDA available *true" <<<"$DOCTOR" || die "conceptree's libtorch sees no CUDA device (see doctor above: its libtorch_cuda line must say 'loaded on demand')"

step "$NSYNTH synthetic 256 px phantoms"
timeout 120 "$BIN" data synth --out "$WORK/synth" --n "$NSYNTH" --size 256 >/dev/null
IMG="$WORK/synth/images"

common=(--device "$DEVICE" --batch "$BATCH" --images "$IMG")
N="resnet50_224_b${BATCH}"
step "training, $WARMUP warm-up + $STEPS timed steps each, $WORKERS loader threads / workers"
# conceptree's trainer itself (Trainer::train_epoch: TensorLoader's pinned batches and non-blocking
# copies; --amp = fp16 autocast + its GradScaler; memory format auto = contiguous in fp32, channels-last with --amp)
ours train "${common[@]}" --steps "$STEPS" --warmup "$WARMUP" --name "train_${N}_fp32"
ours train "${common[@]}" --steps "$STEPS" --warmup "$WARMUP" --memory-format channels-last --name "train_${N}_fp32_cl"
if [ "$DEVICE" = cuda ]; then  # (--amp is CUDA-only: skipped in a dry run)
    ours train "${common[@]}" --steps "$STEPS" --warmup "$WARMUP" --amp --name "train_${N}_amp_fp16"
    ours train "${common[@]}" --steps "$STEPS" --warmup "$WARMUP" --amp --memory-format contiguous --name "train_${N}_amp_fp16_nchw"
fi
# the reference: PyTorch eager, DataLoader(pin_memory=True); AMP = autocast + torch.amp.GradScaler for fp16
ref train "${common[@]}" --steps "$STEPS" --warmup "$WARMUP" --workers "$WORKERS" --name "train_${N}_fp32"
ref train "${common[@]}" --steps "$STEPS" --warmup "$WARMUP" --workers "$WORKERS" --channels-last --name "train_${N}_fp32_cl"
if [ "$DEVICE" = cuda ]; then  # (CPU autocast is very slow: skipped in a dry run)
    ref train "${common[@]}" --steps "$STEPS" --warmup "$WARMUP" --workers "$WORKERS" --amp --amp-dtype fp16 --name "train_${N}_amp_fp16"
    ref train "${common[@]}" --steps "$STEPS" --warmup "$WARMUP" --workers "$WORKERS" --amp --amp-dtype fp16 --channels-last --name "train_${N}_amp_fp16_cl"
    ref train "${common[@]}" --steps "$STEPS" --warmup "$WARMUP" --workers "$WORKERS" --amp --amp-dtype bf16 --name "train_${N}_amp_bf16"
fi

step "inference, batch $BATCH"
ours infer --device "$DEVICE" --batch "$BATCH" --steps "$((STEPS * 2))" --name "infer_${N}_fp32"
ref infer --device "$DEVICE" --batch "$BATCH" --steps "$((STEPS * 2))" --name "infer_${N}_fp32"
if [ "$DEVICE" = cuda ]; then
    ours infer --device "$DEVICE" --batch "$BATCH" --steps "$((STEPS * 2))" --amp --name "infer_${N}_amp_fp16"
    ref infer --device "$DEVICE" --batch "$BATCH" --steps "$((STEPS * 2))" --amp --amp-dtype fp16 --name "infer_${N}_amp_fp16"
fi

echo ">> $(($(date +%s) - START)) s" >&2
"$BENCH" report --conceptree "$C" --reference "$R" --out "$OUT"
