#!/usr/bin/env bash
# Regenerate the shipped default model (models/default/) from scratch on a CPU machine.
# Run from the repo root:  models/train/regen.sh [BUDGET_S=5400]
#  1. creates models/train/.venv with the pinned requirements (skipped if it exists),
#  2. writes phantom data with `cargo run --release --bin pddflow-phantom` (train seeds 1..,
#     test seed 9002, 16 sequences) under models/train/runs/data/ (git-ignored),
#  3. trains the CPU recipe in four runs, BUDGET_S seconds at most in all (18/40/30/12 %), batch 8,
#     checkpoints every 2 min; rerunning the command resumes where it stopped:
#     a. the PDD-Net: synthetic warm-up 120, pre-training 220, fine-tuning 160 steps
#        (models/train/runs/regen/),
#     b. the stride-4 refinement level added, the whole network trained on: pre-training 1000,
#        fine-tuning 500 steps (models/train/runs/regen_refine/),
#     c. pre-training continued for 1200 steps at half the learning rate with a stronger
#        ground-truth-flow term (models/train/runs/regen_long/),
#     d. 900 more pre-training steps at 128x128, the working size the element runs at by default
#        (models/train/runs/regen_128/),
#  4. exports models/default/{features,flow}.onnx + model.json with one Lucas-Kanade step and
#     the flat-region rule (no parameters, added at export), checks ONNX/PyTorch parity,
#     measures latency and evaluates on held-out data (carotid HOLDOUT; phantom test seed 9002).
# Env: CAROTID (default ../shared/data/carotid; skipped if missing), THREADS (default: nproc),
#      HOLDOUT (default 0035,0037: carotid recordings never trained on, validation only),
#      VERSION (default 0.6.2, written to model.json),
#      TRAIN_SEQ (default 24), FRAMES (default 90), NOKD=1 for the labels-only student (into models/labels-only),
#      MODEL_OUT (default models/default), RUNS (default models/train/runs), VENV (default models/train/.venv).
set -euo pipefail
BUDGET=${1:-5400}
ROOT=$(pwd)
TRAIN=models/train
VENV=${VENV:-$TRAIN/.venv}
RUNS=${RUNS:-$TRAIN/runs}
DATA=$RUNS/data
CAROTID=${CAROTID:-../shared/data/carotid}
THREADS=${THREADS:-$(nproc)}
TRAIN_SEQ=${TRAIN_SEQ:-24}
FRAMES=${FRAMES:-90}
HOLDOUT=${HOLDOUT:-0035,0037}
VERSION=${VERSION:-0.6.2}
MODEL_OUT=${MODEL_OUT:-$([ "${NOKD:-0}" = 1 ] && echo models/labels-only || echo models/default)}
export PYTHONUNBUFFERED=1 PYTHONHASHSEED=0

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -r "$TRAIN/requirements.txt"
fi
PY=$(cd "$VENV" && pwd)/bin/python
# the training package (models/train/pddflow_train), run as python -m pddflow_train.NAME
export PYTHONPATH="$ROOT/$TRAIN${PYTHONPATH:+:$PYTHONPATH}"

mkdir -p "$DATA"
if [ ! -d "$DATA/phantom_train" ]; then
  cargo run --release --bin pddflow-phantom -- --out "$DATA/phantom_train.tmp" --sequences "$TRAIN_SEQ" \
    --frames "$FRAMES" --size 256x256 --seed 1
  mv "$DATA/phantom_train.tmp" "$DATA/phantom_train"
fi
if [ ! -d "$DATA/phantom_test9002" ]; then
  cargo run --release --bin pddflow-phantom -- --out "$DATA/phantom_test9002.tmp" --sequences 16 \
    --frames "$FRAMES" --size 256x256 --seed 9002
  mv "$DATA/phantom_test9002.tmp" "$DATA/phantom_test9002"
fi

DATA_ARGS=(--data "$DATA/phantom_train")
VAL_ARGS=()
if [ -d "$CAROTID" ]; then
  DATA_ARGS+=(--data "$CAROTID")
  VAL_ARGS=(--val-data "$CAROTID" --val-seqs "$HOLDOUT")
fi
KD_ARGS=(--teacher dis:medium)
SUFFIX=""
NAME=pddflow-pddnet
[ "${NOKD:-0}" = 1 ] && KD_ARGS=(--no-kd) && SUFFIX=_nokd && NAME=pddflow-pddnet-labels-only
COMMON=(--exclude "$HOLDOUT" "${VAL_ARGS[@]}" --pretrain-epochs 100 --finetune-epochs 200
  --pretrain-lr 0.002 --finetune-lr 0.00025 --distances 1,2,4,6 --synth-prob 0.3 --max-shift 56 --aug 1
  "${KD_ARGS[@]}" --batch 8 --threads "$THREADS" --seed 0 --cache "$RUNS/teacher_cache" --resume
  --ckpt-every 120 --log-every 50)
# the PDD-Net (17x17 labels, 8 px apart): synthetic warm-up, pre-training, fine-tuning
"$PY" -m pddflow_train.train "${DATA_ARGS[@]}" "${COMMON[@]}" --stages synth,pretrain,finetune \
  --stage-steps 120,220,160 --budget "$(echo "$BUDGET * 0.18" | bc)" --budget-split 0.2,0.45,0.35 \
  --synth-epochs 100 --flow-weight 0.02 --out "$RUNS/regen$SUFFIX"
# the stride-4 refinement level on top (8 px labels cannot follow a vein reopening by 4-5 px per frame)
"$PY" -m pddflow_train.train "${DATA_ARGS[@]}" "${COMMON[@]}" --stages pretrain,finetune \
  --init "$RUNS/regen$SUFFIX/final.pt" --config '{"refine": 1}' \
  --stage-steps 1000,500 --budget "$(echo "$BUDGET * 0.40" | bc)" --budget-split 0.65,0.35 \
  --flow-weight 0.05 --out "$RUNS/regen_refine$SUFFIX"
# more pre-training (random pairs, distances 1-6) with the GT-flow term at 0.2: the chain mode's
# reopening vein gains from it; fine-tuning on task-shaped pairs after it did not help (0.5.0 card)
"$PY" -m pddflow_train.train "${DATA_ARGS[@]}" "${COMMON[@]}" --stages pretrain --pretrain-lr 0.001 \
  --init "$RUNS/regen_refine$SUFFIX/final.pt" --config '{"refine": 1}' \
  --stage-steps 1200 --budget "$(echo "$BUDGET * 0.30" | bc)" \
  --flow-weight 0.2 --out "$RUNS/regen_long$SUFFIX"
# the same at 128x128, the default working size (0.6.0): frames, masks, flows and the teacher at that
# size, lr 0.0005, the GT-flow weight doubled and the synthetic shifts halved so that both stay the
# same in physical terms
"$PY" -m pddflow_train.train "${DATA_ARGS[@]}" "${COMMON[@]}" --stages pretrain --pretrain-lr 0.0005 \
  --init "$RUNS/regen_long$SUFFIX/final.pt" --config '{"refine": 1}' --size 128 --max-shift 28 --seed 7 \
  --stage-steps 900 --budget "$(echo "$BUDGET * 0.12" | bc)" \
  --flow-weight 0.4 --out "$RUNS/regen_128$SUFFIX"

# export with the parameter-free Lucas-Kanade level (1 step at half resolution) after the refinement
# and the flat-region rule (no flow where nothing can be matched; models/README.md, 0.6.2)
EXPORT_CONFIG='{"lk_iters": 1, "input_size": 256, "flat_eps": 1e-6}'
"$PY" -m pddflow_train.export "$RUNS/regen_128$SUFFIX/final.pt" "$MODEL_OUT" --name "$NAME" --version "$VERSION" \
  --config "$EXPORT_CONFIG" --sizes 128,192,256,320,384 --default-working-size 128 \
  --small-frames 256:256  # working sizes; 128 when working-size is 0, 256 on frames of at most 256 px

PDDFLOW_EXPORT_CONFIG="$EXPORT_CONFIG" "$PY" -m pddflow_train.parity "$RUNS/regen_128$SUFFIX/final.pt"
"$PY" -m pddflow_train.bench_onnx "$MODEL_OUT"
if [ -d "$CAROTID" ]; then "$PY" -m pddflow_train.evaluate "$CAROTID" --seqs "$HOLDOUT" \
  --methods copy,dis:fast,dis:medium,model:"$MODEL_OUT" --json "$RUNS/regen_128$SUFFIX/eval_carotid.json"; fi
"$PY" -m pddflow_train.evaluate "$DATA/phantom_test9002" --methods copy,farneback,dis:fast,dis:medium,model:"$MODEL_OUT" \
  --json "$RUNS/regen_128$SUFFIX/eval_phantom.json"
echo "model regenerated in $MODEL_OUT (scores: $RUNS/regen_128$SUFFIX/eval_*.json)"
