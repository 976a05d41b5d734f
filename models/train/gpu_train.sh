#!/usr/bin/env bash
# Full-length PDD-Net KD recipe on a GPU machine: no network, no Rust toolchain needed.
# Run from the repo root. Needs (git-ignored, staged by models/train/prepare_gpu.sh):
#   .gpu/pddflow-phantom   prebuilt phantom dataset writer
#   .gpu/carotid256/       carotid recordings at 256x256 (fine-tuning / validation; 0035,0037 held out)
# Python: python3 with torch, numpy, opencv-python-headless, onnx, onnxruntime (the device image has them).
#
# Usage: models/train/gpu_train.sh [BUDGET_S=300] [extra pddflow_train.train args...]
#   BUDGET_S is the wall-clock training budget (pre-training + fine-tuning), data generation and
#   evaluation come on top. Results: $OUT/model/{features,flow}.onnx + model.json, $OUT/final.pt,
#   $OUT/train.log, $OUT/eval_*.json.
# Env: OUT (default ./out/gpu), WORK (default /tmp/pddflow-gpu), PY (default python3),
#      TRAIN_SEQ (phantom training sequences, default 48), VAL_SEQ (held-out phantom, default 8),
#      FRAMES (frames per sequence, default 90), DEVICE (default cuda if available), NOKD=1 (labels only),
#      RUN (run directory, default $WORK/run), WORKERS (DataLoader workers, default nproc-2),
#      THREADS (torch/OpenCV threads, default 4), BASELINES (classical methods evaluated beside
#      the model, default copy,dis:fast,dis:medium; "" for none).
# Several runs can share one WORK (phantom data, teacher cache) when each has its own RUN and OUT.
set -euo pipefail
BUDGET=${1:-300}
shift || true
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PY:-python3}
OUT=${OUT:-$PWD/out/gpu}
WORK=${WORK:-/tmp/pddflow-gpu}
TRAIN_SEQ=${TRAIN_SEQ:-48}
VAL_SEQ=${VAL_SEQ:-8}
FRAMES=${FRAMES:-90}
NPROC=$(nproc)
DEVICE=${DEVICE:-$("$PY" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')}
PHANTOM=${PHANTOM:-.gpu/pddflow-phantom}
CAROTID=${CAROTID:-.gpu/carotid256}
mkdir -p "$OUT/model" "$WORK"
export PYTHONUNBUFFERED=1
# the training package (models/train/pddflow_train), run as python -m pddflow_train.NAME
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"
exec > >(tee -a "$OUT/train.log") 2>&1
echo "== gpu_train.sh budget ${BUDGET}s device $DEVICE nproc $NPROC $(date -u +%FT%TZ)"
[ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true

# ---- 1. phantom data (the binary is multi-threaded): training seed 1, held-out validation seed 9001
t0=$(date +%s)
TRAIN_ROOTS=()
if [ -x "$PHANTOM" ]; then
  TRAIN_ROOTS=("$WORK/phantom_train")
  VAL_ROOT="$WORK/phantom_val"
  [ -d "$WORK/phantom_train" ] || "$PHANTOM" --out "$WORK/phantom_train" --sequences "$TRAIN_SEQ" --frames "$FRAMES" \
      --size 256x256 --seed 1 --quiet
  [ -d "$VAL_ROOT" ] || "$PHANTOM" --out "$VAL_ROOT" --sequences "$VAL_SEQ" --frames "$FRAMES" --size 256x256 \
      --seed 9001 --quiet
  echo "== phantom data: $TRAIN_SEQ train sequences (seed 1) + $VAL_SEQ validation (seed 9001), $FRAMES frames, $(( $(date +%s) - t0 ))s"
else
  echo "!! $PHANTOM missing: training on carotid only"; VAL_ROOT=""
fi

# ---- 2. train (pre-training on random pairs at distances 2,4,6 + synthetic motion; fine-tuning on task pairs)
DATA_ARGS=()
for d in "${TRAIN_ROOTS[@]+"${TRAIN_ROOTS[@]}"}"; do DATA_ARGS+=(--data "$d"); done
DATA_ARGS+=(--data "$CAROTID")
KD_ARGS=(--teacher dis:medium)
[ "${NOKD:-0}" = 1 ] && KD_ARGS=(--no-kd)
WORKERS=${WORKERS:-$(( NPROC > 2 ? NPROC - 2 : 0 ))}
RUN=${RUN:-$WORK/run}
BASELINES=${BASELINES-copy,dis:fast,dis:medium}
"$PY" -m pddflow_train.train "${DATA_ARGS[@]}" --exclude 0035,0037 --val-data "$CAROTID" --val-seqs 0035,0037 \
  --stages synth,pretrain,finetune --budget "$BUDGET" --budget-split 0.2,0.45,0.35 --synth-epochs 100 \
  --pretrain-epochs 100 --finetune-epochs 200 --pretrain-lr 0.002 --finetune-lr 0.00025 \
  --distances 1,2,4,6 --synth-prob 0.3 --max-shift 56 --aug 1 --flow-weight 0.05 --smooth-weight 0 \
  --config '{"refine": 1}' \
  "${KD_ARGS[@]}" --batch 32 --workers "$WORKERS" --threads "${THREADS:-4}" --device "$DEVICE" \
  --cache "$WORK/teacher_cache" --out "$RUN" --resume --log-every 50 --ckpt-every 60 "$@"
cp "$RUN/final.pt" "$OUT/final.pt"

# ---- 3. export + parity + latency + evaluation
# the default model's architecture (0.4.0 to 0.6.2): refinement level trained, one Lucas-Kanade step and the flat-region rule added at export
"$PY" -m pddflow_train.export "$RUN/final.pt" "$OUT/model" --name pddflow-pddnet-gpu --version 0.5.0 \
  --config '{"lk_iters": 1, "flat_eps": 1e-6}' --sizes 128,192,256,320,384 --default-working-size 128  # working sizes; 128 when working-size is 0
PDDFLOW_EXPORT_CONFIG='{"lk_iters": 1, "flat_eps": 1e-6}' "$PY" -m pddflow_train.parity "$RUN/final.pt" || echo "!! parity check failed (evaluation goes on)"
"$PY" -m pddflow_train.bench_onnx "$OUT/model" --iters 100 || true
"$PY" -m pddflow_train.evaluate "$CAROTID" --seqs 0035,0037 --methods "${BASELINES:+$BASELINES,}model:$OUT/model" \
  --json "$OUT/eval_carotid_heldout.json"
if [ -n "$VAL_ROOT" ]; then
  "$PY" -m pddflow_train.evaluate "$VAL_ROOT" --methods "${BASELINES:+$BASELINES,}model:$OUT/model" --json "$OUT/eval_phantom_val.json"
fi
echo "== done $(date -u +%FT%TZ); model in $OUT/model"
