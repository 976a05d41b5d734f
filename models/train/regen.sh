#!/usr/bin/env bash
# Regenerate the shipped default model (models/default/) from scratch on a CPU machine.
# Run from the repo root:  models/train/regen.sh [BUDGET_S=4500]
#  1. creates models/train/.venv with the pinned requirements (skipped if it exists),
#  2. writes phantom data with `cargo run --release --bin pddflow-phantom` (train seeds 1..,
#     validation seed 9001) under models/train/runs/data/ (git-ignored),
#  3. trains the CPU recipe within BUDGET_S seconds of training (default 75 min; checkpoints every
#     2 min in models/train/runs/regen/; rerunning the command resumes where it stopped),
#  4. exports models/default/{features,flow}.onnx + model.json, checks ONNX/PyTorch parity,
#     measures latency and evaluates on held-out data (carotid 0035,0037; phantom seed 9001).
# Env: CAROTID (default ../shared/data/carotid; skipped if missing), THREADS (default: nproc),
#      TRAIN_SEQ (default 24), FRAMES (default 90), NOKD=1 for the labels-only student,
#      MODEL_OUT (default models/default), RUNS (default models/train/runs), VENV (default models/train/.venv).
set -euo pipefail
BUDGET=${1:-4500}
ROOT=$(pwd)
TRAIN=models/train
VENV=${VENV:-$TRAIN/.venv}
RUNS=${RUNS:-$TRAIN/runs}
DATA=$RUNS/data
CAROTID=${CAROTID:-../shared/data/carotid}
THREADS=${THREADS:-$(nproc)}
TRAIN_SEQ=${TRAIN_SEQ:-24}
FRAMES=${FRAMES:-90}
MODEL_OUT=${MODEL_OUT:-models/default}
export PYTHONUNBUFFERED=1 PYTHONHASHSEED=0

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -r "$TRAIN/requirements.txt"
fi
PY=$(cd "$VENV" && pwd)/bin/python

mkdir -p "$DATA"
if [ ! -d "$DATA/phantom_train" ]; then
  cargo run --release --bin pddflow-phantom -- --out "$DATA/phantom_train.tmp" --sequences "$TRAIN_SEQ" \
    --frames "$FRAMES" --size 256x256 --seed 1
  mv "$DATA/phantom_train.tmp" "$DATA/phantom_train"
fi
if [ ! -d "$DATA/phantom_val" ]; then
  cargo run --release --bin pddflow-phantom -- --out "$DATA/phantom_val.tmp" --sequences 6 \
    --frames "$FRAMES" --size 256x256 --seed 9001
  mv "$DATA/phantom_val.tmp" "$DATA/phantom_val"
fi

DATA_ARGS=(--data "$DATA/phantom_train")
VAL_ARGS=()
if [ -d "$CAROTID" ]; then
  DATA_ARGS+=(--data "$CAROTID")
  VAL_ARGS=(--val-data "$CAROTID" --val-seqs 0035,0037)
fi
KD_ARGS=(--teacher dis:medium)
[ "${NOKD:-0}" = 1 ] && KD_ARGS=(--no-kd)
"$PY" "$TRAIN/train.py" "${DATA_ARGS[@]}" --exclude 0035,0037 "${VAL_ARGS[@]}" \
  --stages synth,pretrain,finetune --budget "$BUDGET" --budget-split 0.2,0.45,0.35 --synth-epochs 100 \
  --pretrain-epochs 100 --finetune-epochs 200 --pretrain-lr 0.002 --finetune-lr 0.00025 \
  --distances 1,2,4,6 --synth-prob 0.3 --max-shift 56 --aug 1 --flow-weight 0.02 \
  "${KD_ARGS[@]}" --batch 8 --threads "$THREADS" --seed 0 \
  --cache "$RUNS/teacher_cache" --out "$RUNS/regen" --resume --ckpt-every 120 --log-every 50

"$PY" "$TRAIN/export.py" "$RUNS/regen/final.pt" "$MODEL_OUT" --name pddflow-pddnet --version 0.2.0
"$PY" "$TRAIN/test_parity.py" "$RUNS/regen/final.pt"
"$PY" "$TRAIN/bench_onnx.py" "$MODEL_OUT"
if [ -d "$CAROTID" ]; then "$PY" "$TRAIN/evaluate.py" "$CAROTID" --seqs 0035,0037 \
  --methods copy,dis:fast,dis:medium,model:"$MODEL_OUT" --json "$RUNS/regen/eval_carotid.json"; fi
"$PY" "$TRAIN/evaluate.py" "$DATA/phantom_val" --methods copy,dis:fast,dis:medium,model:"$MODEL_OUT" \
  --json "$RUNS/regen/eval_phantom.json"
echo "model regenerated in $MODEL_OUT (scores: $RUNS/regen/eval_*.json)"
