#!/usr/bin/env bash
# On a GPU machine with PyTorch 2.11 (python3 with torch; no Rust): the realrad comparison of
# flat vs hierarchical (joint, conditioned, stepwise) at one budget with the release binary built
# elsewhere. Usage: scripts/gpu-realrad.sh BIN REALRAD_DIR OUT_DIR [EPOCHS]
set -euo pipefail
BIN=${1:?binary}; RR=${2:?realrad dir}; OUT=${3:?out dir}; EPOCHS=${4:-10}
TORCH_LIB=$(python3 -c 'import torch,os;print(os.path.join(os.path.dirname(torch.__file__),"lib"))')
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
"$BIN" doctor
"$BIN" experiment paper --labels "$RR/concepts.csv" --images "$RR/images" --groups "$RR/meta.csv" --out "$OUT" \
  --runs flat_full,flat_layerwise,hier_joint,hier_joint_cond,hier_stepwise \
  --trunk resnet50 --image-size 224 --batch-size 32 --epochs "$EPOCHS" --lr 1e-3 --device cuda \
  --levels modality,anatomy,laterality,plane,view,technique,finding
