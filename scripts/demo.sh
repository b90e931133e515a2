#!/usr/bin/env bash
# The demo: synthesise phantoms, train the paper's flat baseline and the hierarchical model on CPU,
# predict held-out phantoms, and score both (ImageCLEF F1, per-level F1, coherence).
set -euo pipefail
DIR=${1:-demo}
BIN=${BIN:-target/release/conceptree}
N=${DEMO_N:-600}
SIZE=${DEMO_SIZE:-96}
EPOCHS=${DEMO_EPOCHS:-12}
TRUNK=${DEMO_TRUNK:-tiny}
rm -rf "$DIR"
mkdir -p "$DIR"
echo "== 1/5 synthesising $N training and 200 test phantoms ($SIZE px)"
"$BIN" data synth --out "$DIR/train" --n "$N" --size "$SIZE" --seed 1
"$BIN" data synth --out "$DIR/test" --n 200 --size "$SIZE" --seed 2
common=(--train-labels "$DIR/train/labels.csv" --images "$DIR/train/images" --groups "$DIR/train/meta.csv"
        --trunk "$TRUNK" --image-size "$SIZE" --epochs "$EPOCHS" --batch-size 32 --lr 1e-3 --device cpu)
echo "== 2/5 flat top-25 baseline (paper run 1: full fine-tuning)"
"$BIN" train --mode flat --top-k 25 --out "$DIR/flat" "${common[@]}"
echo "== 3/5 hierarchical model (one head per level, all seven trained together from the start)"
"$BIN" train --mode hierarchical --levels modality,anatomy,laterality,plane,view,technique,finding --out "$DIR/hier" "${common[@]}"
echo "== 4/5 predicting the test phantoms"
for run in flat hier; do
  "$BIN" predict --model "$DIR/$run" --images "$DIR/test/images" --out "$DIR/$run/test_submission.csv" --device cpu
done
echo "== 5/5 evaluation on the test phantoms"
for run in flat hier; do
  echo "--- $run"
  "$BIN" evaluate --gt "$DIR/test/labels.csv" --pred "$DIR/$run/test_submission.csv"
done
