#!/usr/bin/env bash
# pddflow (keyframe, chain, hybrid) and OpenCV DIS medium (chain, keyframe; scripts/baselines.py,
# native size) on a dataset, all scored by pddflow-eval in one run, plus the vein's minimum-ratio
# readout (pddflow_train.vein_readout).
#
#   models/train/simus_eval.sh DATA WORK
#
# Settings (environment): BIN (pddflow-eval's directory, default target/release), PYTHON (numpy +
# opencv, default /work/venv-eval/bin/python when present, else python3), THREADS (ONNX Runtime and
# OpenCV threads, default 1), MODEL (model directory; default: the built-in model),
# ORT_DYLIB_PATH (default: this checkout's .ort/lib, then /work/main's).
set -euo pipefail
DATA="$1"
WORK="$2"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="${BIN:-$ROOT/target/release}"
THREADS="${THREADS:-1}"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x /work/venv-eval/bin/python ]]; then PYTHON=/work/venv-eval/bin/python; else PYTHON=python3; fi
fi
if [[ -z "${ORT_DYLIB_PATH:-}" ]]; then
  for c in "$ROOT/.ort/lib/libonnxruntime.so.1.31.1" /work/main/.ort/lib/libonnxruntime.so.1.31.1; do
    if [[ -f "$c" ]]; then export ORT_DYLIB_PATH="$c"; break; fi
  done
fi
MODEL_ARGS=()
if [[ -n "${MODEL:-}" ]]; then MODEL_ARGS=(--model "$MODEL"); fi
mkdir -p "$WORK/pred" "$WORK/reports"
START=$(date +%s)
for mode in keyframe chain hybrid; do
  echo "== pddflow $mode" >&2
  "$BIN/pddflow-eval" --dataset "$DATA" --predictions "$WORK/pred/pddflow_$mode" --mode "$mode" \
    "${MODEL_ARGS[@]}" --threads "$THREADS" --quiet --report "$WORK/reports/pddflow_$mode" >/dev/null
done
echo "== DIS medium (scripts/baselines.py, native size)" >&2
"$PYTHON" "$ROOT/scripts/baselines.py" run --dataset "$DATA" --out "$WORK/pred" \
  --methods dis_medium --modes chain,keyframe --threads "$THREADS" \
  --references "$WORK/pred/pddflow_chain/manifest.json" | tee "$WORK/dis_timing.jsonl" >&2
for mode in chain keyframe; do
  "$BIN/pddflow-eval" --dataset "$DATA" --score-predictions "$WORK/pred/dis_medium_$mode" \
    --report "$WORK/reports/dis_medium_$mode" >/dev/null
done
"$BIN/pddflow-eval" --compare "$WORK/reports/pddflow_keyframe.json" "$WORK/reports/pddflow_chain.json" \
  "$WORK/reports/pddflow_hybrid.json" "$WORK/reports/dis_medium_chain.json" \
  "$WORK/reports/dis_medium_keyframe.json" --output "$WORK/table.md"
PYTHONPATH="$ROOT/models/train${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m pddflow_train.vein_readout --dataset "$DATA" --json "$WORK/vein_readout.json" \
  "pddflow keyframe=$WORK/pred/pddflow_keyframe" "pddflow chain=$WORK/pred/pddflow_chain" \
  "pddflow hybrid=$WORK/pred/pddflow_hybrid" "DIS medium chain=$WORK/pred/dis_medium_chain" \
  "DIS medium keyframe=$WORK/pred/dis_medium_keyframe" > "$WORK/vein_readout.md"
echo "wall $(( $(date +%s) - START )) s" >&2
cat "$WORK/table.md" "$WORK/vein_readout.md"
