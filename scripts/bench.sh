#!/usr/bin/env bash
# `make bench`: conceptree vs the PyTorch/torchvision reference (bench/torch_reference.py) on the
# same data in the same run. Results: target/bench/results.json (a list of
# {name, unit, conceptree, reference, ratio}; ratio > 1 = conceptree better), target/bench/table.md,
# the raw lines in target/bench/{conceptree,reference}.jsonl. See BENCHMARKS.md.
#
# Knobs (environment): BENCH_THREADS (all cores), BENCH_REALRAD (../shared/realrad/images),
# BENCH_REALRAD_LIMIT (2048 images), BENCH_SYNTH_N (96 images of 1024 px, each read 3 times),
# BENCH_REPEAT (3: runs per side of every row, the two sides alternating; the median counts and
# the spread is reported), BENCH_TRAIN_STEPS (3 timed) / BENCH_TRAIN_WARMUP (2), BENCH_INFER_STEPS (5),
# BENCH_SKIP_TRAIN=1, BENCH_PREDICT_N (1024 images predicted by the tiny run; the ResNet50 run
# predicts the first 128 of them), BENCH_TRUNKS (densenet121 efficientnet_b0 convnext_tiny: the
# trunks with training and inference rows besides ResNet50), BENCH_ONLY_TRUNKS=1 (only the rows
# of those trunks), BENCH_SKIP_PIPELINE=1 (no pipeline rows), BENCH_BIN_DIR (take conceptree and
# conceptree-bench from that folder instead of building them: another commit's binaries, to compare
# before and after a change on one machine), BENCH_OUT (target/bench).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${BENCH_OUT:-target/bench}
PY=.venv/bin/python
BIN_DIR=${BENCH_BIN_DIR:-target/release}
BENCH=$BIN_DIR/conceptree-bench
NPROC=$(nproc)
THREADS=${BENCH_THREADS:-$NPROC}
REALRAD=${BENCH_REALRAD:-../shared/realrad/images}
REALRAD_LIMIT=${BENCH_REALRAD_LIMIT:-2048}
SYNTH_N=${BENCH_SYNTH_N:-96}
REPEAT=${BENCH_REPEAT:-3}
TRAIN_STEPS=${BENCH_TRAIN_STEPS:-3}
TRAIN_WARMUP=${BENCH_TRAIN_WARMUP:-2}
INFER_STEPS=${BENCH_INFER_STEPS:-5}
PREDICT_N=${BENCH_PREDICT_N:-1024}
TRUNKS=${BENCH_TRUNKS:-densenet121 efficientnet_b0 convnext_tiny}

die() { echo "bench: $*" >&2; exit 1; }
[ -x "$PY" ] || die "$PY is missing: run 'make venv' (or 'make bench', which does) first"

# The reference needs torchvision (pinned to torch 2.11) and Pillow; only `make bench` installs them.
if ! "$PY" -c "import torchvision, PIL, numpy" 2>/dev/null; then
    echo ">> installing torchvision==0.26.0 and pillow into .venv (reference side of the benchmark)"
    "$PY" -m pip install --disable-pip-version-check -q torchvision==0.26.0 pillow \
        || die "could not install torchvision==0.26.0 pillow into .venv"
fi

if [ -z "${BENCH_BIN_DIR:-}" ]; then
    echo ">> building $BENCH and target/release/conceptree"
    cargo build --release -j "${CARGO_JOBS:-2}" --bin conceptree-bench --bin conceptree
else
    echo ">> binaries from $BIN_DIR (BENCH_BIN_DIR; not built here)"
fi

mkdir -p "$OUT"
C="$OUT/conceptree.jsonl"
R="$OUT/reference.jsonl"
: >"$C"
: >"$R"
: >"$OUT/stages.jsonl"
START=$(date +%s)
echo ">> $(date -u +%Y-%m-%dT%H:%M:%SZ) on $NPROC cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), load: $(cut -d' ' -f1-3 /proc/loadavg)"

# Each side's JSON lines go to its file (and the terminal); their stderr stays on the terminal.
ours() { "$BENCH" "$@" | tee -a "$C"; }
# conceptree's training and prediction keep freed memory for reuse (src/alloc.rs: mallopt
# M_MMAP_MAX 0, M_TRIM_THRESHOLD i32::MAX); the `_same_malloc` rows give both sides that setting
# through glibc's environment (conceptree leaves an explicit GLIBC_TUNABLES alone)
SAME_MALLOC="glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647"
ref() { "$PY" bench/torch_reference.py "$@" | tee -a "$R"; }

# ---- data: synthetic 1024 px JPEGs (kept between runs), real radiographs when present
SYNTH="$OUT/synth1024"
"$BENCH" synth --out "$SYNTH" --n "$SYNTH_N" --size 1024
sets=("synth1024:$SYNTH/images:0:3")
if [ -d "$REALRAD" ]; then
    sets=("realrad:$REALRAD:$REALRAD_LIMIT:1" "${sets[@]}")
else
    echo ">> SKIPPED the realrad part: $REALRAD is absent (set BENCH_REALRAD to a folder of radiology JPEGs)"
fi

# ---- (1) pipeline: decode + resize to 224 + augment + normalise, 1 core and all cores
{ [ -n "${BENCH_ONLY_TRUNKS:-}" ] || [ -n "${BENCH_SKIP_PIPELINE:-}" ]; } && sets=()
for s in "${sets[@]}"; do
    IFS=: read -r tag dir limit rep <<<"$s"
    echo ">> pipeline on $tag ($dir)"
    # per-stage timings, one thread (conceptree only: decoders and resizers compared)
    "$BENCH" --threads 1 stages --images "$dir" --limit 300 --name "stages_$tag" | tee -a "$OUT/stages.jsonl" >/dev/null
    for _ in $(seq "$REPEAT"); do
        for t in 1 "$THREADS"; do
            ours --threads "$t" pipeline --images "$dir" --limit "$limit" --list-repeat "$rep" --name "pipeline_${tag}_${t}core"
            ref pipeline --images "$dir" --limit "$limit" --list-repeat "$rep" --workers "$t" --name "pipeline_${tag}_${t}core"
            # conceptree only: the same from an image cache (`conceptree data cache`; built untimed on first use)
            ours --threads "$t" pipeline --images "$dir" --limit "$limit" --list-repeat "$rep" --cache "$OUT/cache_$tag" --name "pipeline_${tag}_${t}core_cached"
        done
    done
done

# ---- (2) training ResNet50, 224 px, batch 32, Adam 1e-4, loader included
# conceptree: the trainer's own epoch loop (Trainer::train_epoch) on a flat top-25 run.
TRAIN_DIR="$SYNTH/images"
[ -d "$REALRAD" ] && TRAIN_DIR="$REALRAD"
# one pair = a conceptree run then a reference run, both with the given extra options; repeated
# REPEAT times, alternating, so the shared machine's load falls on both sides alike
pair() {
    local what=$1 name=$2 ours_opts=$3 ref_opts=$4
    for _ in $(seq "$REPEAT"); do
        # shellcheck disable=SC2086
        ours "$what" $ours_opts --name "$name"
        # shellcheck disable=SC2086
        ref "$what" $ref_opts --name "$name"
    done
}
if [ -z "${BENCH_SKIP_TRAIN:-}" ] && [ -z "${BENCH_ONLY_TRUNKS:-}" ]; then
    echo ">> training (ResNet50, 224, batch 32, $TRAIN_WARMUP warm-up + $TRAIN_STEPS timed steps, $REPEAT runs per side) on $TRAIN_DIR"
    t="--images $TRAIN_DIR --steps $TRAIN_STEPS --warmup $TRAIN_WARMUP"
    r="$t --workers $THREADS"
    # as each side runs by default (conceptree: channels-last on CPU; PyTorch eager: contiguous NCHW)
    pair train train_resnet50_224_b32 "$t" "$r"
    # like for like: both channels-last, then both contiguous
    pair train train_resnet50_224_b32_both_cl "$t --memory-format channels-last" "$r --channels-last"
    pair train train_resnet50_224_b32_both_nchw "$t --memory-format contiguous" "$r"
    # mixed precision: bf16 autocast on CPU (conceptree --amp; PyTorch autocast bf16), default layouts, then both channels-last
    pair train train_resnet50_224_b32_amp_bf16 "$t --amp" "$r --amp --amp-dtype bf16"
    pair train train_resnet50_224_b32_amp_bf16_both_cl "$t --amp --memory-format channels-last" "$r --amp --amp-dtype bf16 --channels-last"
else
    echo ">> SKIPPED training (BENCH_SKIP_TRAIN is set)"
fi

# ---- (2b) the trunks the field uses (issue 29): training and inference, each side as it runs by
# default and both channels-last, like for like against torchvision's own model of that name; conceptree's
# side with linear heads (pooling into the output layer), as torchvision's classifier is
for trunk in $TRUNKS; do
    if [ -z "${BENCH_SKIP_TRAIN:-}" ]; then
        echo ">> training ($trunk, 224, batch 32, $TRAIN_WARMUP warm-up + $TRAIN_STEPS timed steps, $REPEAT runs per side) on $TRAIN_DIR"
        t="--images $TRAIN_DIR --steps $TRAIN_STEPS --warmup $TRAIN_WARMUP"
        pair train "train_${trunk}_224_b32" "$t --trunk $trunk --head-layers linear" "$t --workers $THREADS --arch $trunk"
        pair train "train_${trunk}_224_b32_both_cl" "$t --trunk $trunk --head-layers linear --memory-format channels-last" "$t --workers $THREADS --arch $trunk --channels-last"
    fi
    # both sides run one set of weights: torchvision's own random initialisation (seed 0) of the trunk
    w="$OUT/weights_$trunk.safetensors"
    [ -f "$w" ] || "$PY" bench/torch_reference.py weights --arch "$trunk" --out "$w"
    echo ">> inference ($trunk, 224, batch 32, $INFER_STEPS steps, $REPEAT runs per side, the weights of $w on both sides)"
    i="--steps $INFER_STEPS --weights $w"
    pair infer "infer_${trunk}_224_b32" "$i --trunk $trunk --head-layers linear" "$i --arch $trunk"
    pair infer "infer_${trunk}_224_b32_both_cl" "$i --trunk $trunk --head-layers linear --memory-format channels-last" "$i --arch $trunk --channels-last"
    # and with one allocator setting for both (conceptree's, given through glibc, which conceptree then leaves alone)
    GLIBC_TUNABLES=$SAME_MALLOC pair infer "infer_${trunk}_224_b32_both_cl_same_malloc" "$i --trunk $trunk --head-layers linear --memory-format channels-last" "$i --arch $trunk --channels-last"
done
[ -n "${BENCH_ONLY_TRUNKS:-}" ] && { "$BENCH" report --conceptree "$C" --reference "$R" --out "$OUT"; exit 0; }

# ---- (3) inference img/s and peak RSS (separate processes, so RSS is inference's own)
echo ">> inference (ResNet50, 224, batch 32, $INFER_STEPS steps, $REPEAT runs per side)"
pair infer infer_resnet50_224_b32 "--steps $INFER_STEPS" "--steps $INFER_STEPS"
pair infer infer_resnet50_224_b32_both_cl "--steps $INFER_STEPS --memory-format channels-last" "--steps $INFER_STEPS --channels-last"
GLIBC_TUNABLES=$SAME_MALLOC pair infer infer_resnet50_224_b32_both_cl_same_malloc "--steps $INFER_STEPS --memory-format channels-last" "--steps $INFER_STEPS --channels-last"

# ---- (4) prediction end to end: `conceptree predict` (decode, resize, model, decide concepts,
# write) against the README's Python (its snippet with Pillow in a DataLoader, the module of
# `conceptree export`: the same weights, fp32 both), each process timed from outside alike
# (bench/e2e.py: img/s over the whole run, start-up included, and peak RSS). Runs and exports are
# kept between runs of the benchmark.
CT=$BIN_DIR/conceptree
PRED="$OUT/predict"
mkdir -p "$PRED"
if [ -d "$REALRAD" ]; then PRED_IMAGES="$REALRAD"; else
    PRED_IMAGES="$PRED/images256/images"
    [ -d "$PRED_IMAGES" ] || "$CT" data synth --out "$PRED/images256" --n "$PREDICT_N" --image-size 256 --seed 3 >/dev/null
fi
ls "$PRED_IMAGES" | grep -iE '\.(jpe?g|png)$' | sed -E 's/\.[^.]+$//' | sort | sed -n "1,${PREDICT_N}p" >"$PRED/ids_all.txt" # sed reads to the end: no SIGPIPE under pipefail
head -n 128 "$PRED/ids_all.txt" >"$PRED/ids_128.txt"
[ -d "$PRED/train" ] || "$CT" data synth --out "$PRED/train" --n 200 --image-size 224 --seed 1 >/dev/null
for trunk in tiny resnet50; do
    if [ ! -f "$PRED/export_$trunk/model.json" ]; then
        rm -rf "$PRED/run_$trunk" "$PRED/export_$trunk"
        # resnet50: a frozen random trunk and one epoch of the head (its features computed once)
        "$CT" train --labels "$PRED/train/labels.csv" --images "$PRED/train/images" --out "$PRED/run_$trunk" --trunk "$trunk" \
            --image-size 224 --epochs 1 --strategy head --mode hierarchical --device cpu >/dev/null
        "$CT" export --model "$PRED/run_$trunk" --out "$PRED/export_$trunk" >/dev/null
    fi
done
echo ">> prediction end to end (224 px, batch 64, $REPEAT runs per side) on $PRED_IMAGES"
for trunk_ids in "tiny:ids_all" "resnet50:ids_128"; do
    IFS=: read -r trunk ids <<<"$trunk_ids"
    n=$(wc -l <"$PRED/$ids.txt")
    for _ in $(seq "$REPEAT"); do
        rm -f "$PRED/sub_$trunk.csv"
        "$PY" bench/e2e.py "predict_${trunk}_224" "$n" -- "$CT" predict --model "$PRED/run_$trunk" --images "$PRED_IMAGES" \
            --ids "$PRED/$ids.txt" --out "$PRED/sub_$trunk.csv" --device cpu | tee -a "$C"
        "$PY" bench/e2e.py "predict_${trunk}_224" "$n" -- "$PY" bench/torch_reference.py predict --export "$PRED/export_$trunk" \
            --images "$PRED_IMAGES" --ids "$PRED/$ids.txt" --out "$PRED/sub_${trunk}_reference.csv" --workers "$THREADS" --batch 64 | tee -a "$R"
    done
    same=$(paste "$PRED/sub_$trunk.csv" "$PRED/sub_${trunk}_reference.csv" | awk -F'\t' '$1 == $3 && $2 == $4' | wc -l)
    echo ">> predict_$trunk: the two submissions agree on $same of $n images (Pillow's pixels differ from conceptree's by a grey level here and there)"
done

# ---- (5) evaluation: 10,000 images x 5,000 concepts
echo ">> evaluation (10,000 images x 5,000 concepts)"
ours eval --out "$OUT/eval" --n-images 10000 --n-concepts 5000
ref eval --gt "$OUT/eval/gt.csv" --pred "$OUT/eval/pred.csv" --tag 10000x5000

echo ">> load at the end: $(cut -d' ' -f1-3 /proc/loadavg); $(($(date +%s) - START)) s"
echo
echo "per-stage timings (one thread, ms/img; conceptree's old path vs the new one):"
sed 's/^/  /' "$OUT/stages.jsonl"
echo
"$BENCH" report --conceptree "$C" --reference "$R" --out "$OUT"
