#!/usr/bin/env bash
# Regenerates BENCHMARKS.md in one command: accuracy of pddflow (keyframe, chain) next to the
# classical baselines on the real carotid recordings and on a phantom test set (pddflow-eval,
# scripts/baselines.py), then speed and memory (pddflow-bench). Everything measured in this run.
#
#   scripts/benchmarks.sh                 # CPU, built-in model
#   EP=cuda scripts/benchmarks.sh         # GPU run (CUDA execution provider; GPU name reported)
#
# Settings (environment):
#   PYTHON          Python with numpy + opencv-python-headless (default: /work/venv-train/bin/python
#                   when present, else python3)
#   CAROTID         real recordings (default: ../shared/data/carotid; skipped when missing)
#   PHANTOM_ARGS    pddflow-phantom arguments of the test set (default below; seed 1000 is kept
#                   out of training)
#   LONG_CLIP_ARGS  pddflow-phantom arguments of the long clips for drift (default: 2 sequences of
#                   600 frames, seed 7001; "" leaves them out)
#   SIMUS           the SIMUS-simulated validation set (default: target/simus-val when present;
#                   generate it with `PYTHONPATH=models/train python -m pddflow_train.simus
#                   --out target/simus-val --seed 2027 --sequences 4 --frames 200
#                   --long-sequences 1 --long-frames 600`, ~1 h on 1 core)
#   WORKING_SIZES   extra working sizes (pddflow working-size) for keyframe and hybrid rows on every
#                   dataset, left out where the default rows already ran at that size (default:
#                   "128 256"; the built-in model runs frames of at most 256 px at 256, larger ones
#                   at 128; "" leaves them out)
#   LIVE_SECONDS    seconds of each live run (a live 1080p60 source faster than the model, with
#                   and without skip-late; default 60; 0 skips them)
#   MODEL           model directory for the accuracy runs (default: the built-in model)
#   LABELS_ONLY     the labels-only student (trained without KD) for the ablation rows
#                   (default: models/labels-only; "" leaves the rows out)
#   BENCH_MODELS    extra model directories for the model-only table (space separated)
#   BENCH_CHECKPOINT  a PDD-Net checkpoint (.pt): re-exported at 128², 256², 512² with
#                   pddflow_train.export (models/train, needs torch) for the model-only table
#   EP              execution provider: cpu (default), cuda, auto
#   BENCH_CONFIG    JSON overrides of parameter-free settings for that export (default: the default
#                   model's export_overrides, e.g. {"lk_iters": 2})
#   LONG_FRAMES     frames of the RSS run (default 600; the 100,000-frame check: LONG_FRAMES=100000)
#   LONG_SIZE       frame size of the RSS run (default 320x240)
#   SOAK_FRAMES     frames in all of the soak: 8 pipelines in one process with re-anchors, size
#                   changes, flushing seeks and property changes (default 100000; 0 skips it)
#   THREADS         ONNX Runtime threads of the accuracy runs (default 1)
#   WORK            scratch directory (default: target/benchmarks)
#   OUT             the Markdown written (default: BENCHMARKS.md)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
# the command line that reproduces this run, with the settings given in the environment
RUN_AS=""
for v in MODEL LABELS_ONLY BENCH_CHECKPOINT BENCH_CONFIG BENCH_MODELS EP LONG_FRAMES LONG_SIZE SOAK_FRAMES LIVE_SECONDS THREADS PHANTOM_ARGS CAROTID SIMUS WORKING_SIZES; do
  if [[ -n "${!v+x}" ]]; then RUN_AS+="$v='${!v}' "; fi
done
RUN_AS+="scripts/benchmarks.sh"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x /work/venv-train/bin/python ]]; then PYTHON=/work/venv-train/bin/python; else PYTHON=python3; fi
fi
CAROTID="${CAROTID:-../shared/data/carotid}"
PHANTOM_ARGS="${PHANTOM_ARGS:---sequences 4 --frames 40 --size 256x256 --seed 1000}"
LONG_CLIP_ARGS="${LONG_CLIP_ARGS---sequences 2 --frames 600 --size 256x256 --seed 7001}"
EP="${EP:-cpu}"
LONG_FRAMES="${LONG_FRAMES:-600}"
LONG_SIZE="${LONG_SIZE:-320x240}"
SOAK_FRAMES="${SOAK_FRAMES:-100000}"
LIVE_SECONDS="${LIVE_SECONDS:-60}"
WORKING_SIZES="${WORKING_SIZES-128 256}"
SIMUS="${SIMUS:-target/simus-val}"
THREADS="${THREADS:-1}"
WORK="${WORK:-target/benchmarks}"
OUT="${OUT:-BENCHMARKS.md}"
START=$(date +%s)
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"

echo "== building (release)" >&2
cargo build --release --bins >&2
BIN=target/release
rm -rf "$WORK"
mkdir -p "$WORK/reports" "$WORK/pred"

MODEL_ARGS=()
MODEL_NAME="built-in model"
if [[ -n "${MODEL:-}" ]]; then
  MODEL_ARGS=(--model "$MODEL")
  MODEL_NAME="$MODEL"
fi
LABELS_ONLY="${LABELS_ONLY-models/labels-only}"
if [[ -n "$LABELS_ONLY" && ! -f "$LABELS_ONLY/model.json" ]]; then
  echo "note: no labels-only model in $LABELS_ONLY; its rows are left out" >&2
  LABELS_ONLY=""
fi
# the teacher of the accuracy model (model.json -> training.teacher, e.g. dis:medium -> dis_medium)
TEACHER="$("$PYTHON" - "${MODEL:-models/default}/model.json" <<'EOF'
import json, sys
try:
    t = (json.load(open(sys.argv[1])).get("training") or {}).get("teacher") or ""
except OSError:
    t = ""
print(t.replace(":", "_"))
EOF
)"

DATASETS=()
if [[ -d "$CAROTID" ]]; then DATASETS+=("carotid=$CAROTID"); fi
echo "== phantom test set: pddflow-phantom $PHANTOM_ARGS" >&2
# shellcheck disable=SC2086
"$BIN/pddflow-phantom" --out "$WORK/phantom-test" $PHANTOM_ARGS --quiet >&2
DATASETS+=("phantom=$WORK/phantom-test")
if [[ -d "$SIMUS" ]]; then DATASETS+=("simus=$SIMUS"); fi
if [[ -n "$LONG_CLIP_ARGS" ]]; then
  echo "== long phantom clips (drift): pddflow-phantom $LONG_CLIP_ARGS" >&2
  # shellcheck disable=SC2086
  "$BIN/pddflow-phantom" --out "$WORK/phantom-long" $LONG_CLIP_ARGS --quiet >&2
  DATASETS+=("phantom-long=$WORK/phantom-long")
fi

ACCURACY=""
for entry in "${DATASETS[@]}"; do
  name="${entry%%=*}"
  dir="${entry#*=}"
  for mode in keyframe chain hybrid; do
    echo "== $name: pddflow $mode" >&2
    "$BIN/pddflow-eval" --dataset "$dir" --predictions "$WORK/pred/$name/pddflow_$mode" \
      --mode "$mode" "${MODEL_ARGS[@]}" --execution-provider "$EP" --threads "$THREADS" \
      --report "$WORK/reports/$name-pddflow_$mode" --quiet > /dev/null
    if [[ -n "$LABELS_ONLY" && "$mode" != hybrid ]]; then
      echo "== $name: pddflow $mode, labels-only student ($LABELS_ONLY)" >&2
      "$BIN/pddflow-eval" --dataset "$dir" --predictions "$WORK/pred/$name/labels_only_$mode" \
        --mode "$mode" --model "$LABELS_ONLY" --name "pddflow $mode, labels only (no KD)" \
        --execution-provider "$EP" --threads "$THREADS" \
        --report "$WORK/reports/$name-labels_only_$mode" --quiet > /dev/null
    fi
  done
  # the input size the default rows ran at (pddflow-eval's report names it)
  default_at=$(grep -o -m1 'at [0-9]*x[0-9]*' "$WORK/reports/$name-pddflow_keyframe.md" | head -1 || true)
  for size in $WORKING_SIZES; do
    if [[ "$default_at" == "at ${size}x${size}" ]]; then
      rm -f "$WORK/reports/$name-pddflow_keyframe_$size.json" "$WORK/reports/$name-pddflow_hybrid_$size.json"
      continue
    fi
    for mode in keyframe hybrid; do
      echo "== $name: pddflow $mode, working-size $size" >&2
      "$BIN/pddflow-eval" --dataset "$dir" --predictions "$WORK/pred/$name/pddflow_${mode}_$size" \
        --mode "$mode" --working-size "$size" --name "pddflow $mode, working-size $size" "${MODEL_ARGS[@]}" \
        --execution-provider "$EP" --threads "$THREADS" \
        --report "$WORK/reports/$name-pddflow_${mode}_$size" --quiet > /dev/null
    done
  done
  echo "== $name: baselines" >&2
  "$PYTHON" scripts/baselines.py run --dataset "$dir" --out "$WORK/pred/$name" \
    --references "$WORK/pred/$name/pddflow_keyframe/manifest.json" > "$WORK/$name-baselines.jsonl"
  for m in copy farneback_keyframe farneback_chain dis_fast_keyframe dis_fast_chain \
           dis_medium_keyframe dis_medium_chain; do
    label="${m/_keyframe/ keyframe}"
    [[ "$m" == copy ]] && label="copy reference"
    label="${label/_chain/ chain}"
    [[ -n "$TEACHER" && "$m" == "$TEACHER"_* ]] && label+=" (teacher)"
    "$BIN/pddflow-eval" --dataset "$dir" --score-predictions "$WORK/pred/$name/$m" --name "$label" \
      --report "$WORK/reports/$name-$m" --quiet > /dev/null
  done
  reports=("$WORK/reports/$name-pddflow_keyframe.json" "$WORK/reports/$name-pddflow_chain.json"
           "$WORK/reports/$name-pddflow_hybrid.json")
  for size in $WORKING_SIZES; do
    for mode in keyframe hybrid; do
      # a size the default rows already ran at has no rows of its own (removed above)
      report="$WORK/reports/$name-pddflow_${mode}_$size.json"
      if [[ -f "$report" ]]; then reports+=("$report"); fi
    done
  done
  if [[ -n "$LABELS_ONLY" ]]; then
    reports+=("$WORK/reports/$name-labels_only_keyframe.json" "$WORK/reports/$name-labels_only_chain.json")
  fi
  for m in copy farneback_keyframe farneback_chain dis_fast_keyframe dis_fast_chain \
           dis_medium_keyframe dis_medium_chain; do
    reports+=("$WORK/reports/$name-$m.json")
  done
  "$BIN/pddflow-eval" --compare "${reports[@]}" --output "$WORK/$name-table.md"
  ACCURACY+=$'\n'"### $name ($dir)"$'\n\n'
  if [[ -n "$default_at" ]]; then
    ACCURACY+="pddflow rows without a working size ran $default_at, the default for these frames."$'\n\n'
  fi
  ACCURACY+="$(cat "$WORK/$name-table.md")"$'\n\n'
  ACCURACY+="OpenCV flow time per frame at native size, 1 thread, from scripts/baselines.py run:"$'\n\n'
  ACCURACY+="$("$PYTHON" - "$WORK/$name-baselines.jsonl" <<'EOF'
import json, sys
print("| method | ms/frame (flow only) |")
print("|---|---|")
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["flow_ms_per_frame"] is not None:
        print(f"| {r['method']} | {r['flow_ms_per_frame']:.1f} |")
EOF
)"$'\n\n'
  ACCURACY+="<details><summary>Per-sequence tables (pddflow keyframe and chain)</summary>"$'\n\n'
  for mode in keyframe chain; do
    ACCURACY+="$(cat "$WORK/reports/$name-pddflow_$mode.md")"$'\n\n'
  done
  ACCURACY+="</details>"$'\n'
done

BENCH_ARGS=()
if [[ -n "${BENCH_CHECKPOINT:-}" ]]; then
  BENCH_CHECKPOINT="$(realpath "$BENCH_CHECKPOINT")"
  echo "== exporting $BENCH_CHECKPOINT at 128, 256, 512" >&2
  (PYTHONPATH="$ROOT/models/train${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" - "$BENCH_CHECKPOINT" "$ROOT/$WORK/bench-models" <<'EOF'
import json, os, sys, torch
from pddflow_train.export import export
from pddflow_train.pddnet import PDDNet, upgrade_state_dict
ck = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
overrides = os.environ.get("BENCH_CONFIG")
if overrides is None:  # the default model's export-time settings
    overrides = json.dumps(json.load(open("models/default/model.json"))["training"].get("export_overrides") or {})
for size in (128, 256, 512):
    cfg = dict(ck["config"]); cfg.update(json.loads(overrides)); cfg["input_size"] = size
    net = PDDNet(**cfg)
    # Speed only: parameters that an older checkpoint lacks keep their initial values.
    missing = net.load_state_dict(upgrade_state_dict(ck["model"]), strict=False).missing_keys
    if missing:
        print(f"note: {sys.argv[1]} lacks {missing}; initial values kept (timing only)")
    net.eval()
    export(net, f"{sys.argv[2]}/{size}", f"pddnet-{size}", "bench", ck.get("training"), None)
EOF
  ) >&2
  BENCH_ARGS+=(--models "$WORK/bench-models/128" "$WORK/bench-models/256" "$WORK/bench-models/512")
fi
if [[ -n "${BENCH_MODELS:-}" ]]; then
  # shellcheck disable=SC2206
  BENCH_ARGS+=(--models $BENCH_MODELS)
fi
echo "== pddflow-bench" >&2
"$BIN/pddflow-bench" "${BENCH_ARGS[@]}" --execution-provider "$EP" --long-frames "$LONG_FRAMES" --long-size "$LONG_SIZE" \
  --soak-frames "$SOAK_FRAMES" --live-seconds "$LIVE_SECONDS" --python "$PYTHON" --markdown "$WORK/bench.md" >&2

# The model against DIS medium at the same size on one thread, interleaved run by run in one
# process (thread CPU time), so that load from elsewhere does not favour either side: the
# speed target's comparison. Tables timed minutes apart (model only above, OpenCV below) are not.
VS_DIS=""
VS_DIS_MODEL="${MODEL:-models/default}"
if [[ -d "$CAROTID" ]] && "$PYTHON" -c 'import onnxruntime, cv2' 2>/dev/null; then
  for size in 128 256; do
    echo "== $VS_DIS_MODEL against DIS medium at ${size}x${size}" >&2
    PYTHONPATH="$ROOT/models/train${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m pddflow_train.bench_ab "$VS_DIS_MODEL" \
      --size "$size" --runs 1000 --dis --dataset "$CAROTID" --json "$WORK/vs-dis-$size.json" >&2
  done
  VS_DIS="$("$PYTHON" - "$WORK" <<'EOF'
import json, sys
print("| input | features ms | flow ms | model ms/frame | DIS medium ms/frame | model / DIS medium |")
print("|---|---|---|---|---|---|")
for size in (128, 256):
    r = json.load(open(f"{sys.argv[1]}/vs-dis-{size}.json"))
    a = r["A"]
    print(f"| {size}x{size} | {a['features_ms']:.3f} | {a['flow_ms']:.3f} | {a['total_ms']:.3f} | "
          f"{r['dis_medium_ms']:.3f} | **{a['total_over_dis']:.2f}×** |")
EOF
)"
fi

END=$(date +%s)
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"
MODEL_JSON="${MODEL:-models/default}/model.json"
TRAINING="$("$PYTHON" - "$MODEL_JSON" <<'EOF'
import json, sys
try:
    m = json.load(open(sys.argv[1]))
except OSError:
    sys.exit(0)
t = m.get("training") or {}
keys = ("data", "finetune_data", "exclude", "val_seqs", "teacher", "stages")
print(f"{m.get('name')} {m.get('version')}; training: " +
      "; ".join(f"{k}={t[k]}" for k in keys if k in t))
EOF
)"
CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
{
  echo "# Benchmarks"
  echo
  echo "Generated by \`scripts/benchmarks.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') in $(( (END - START) / 60 )) min,"
  echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml models scripts 2>/dev/null || echo ' (with local changes)')."
  echo "Do not edit by hand: rerun the script (settings at its top). This file: \`$RUN_AS\`."
  echo
  echo "- machine: $CPU, nproc $(nproc), $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo); shared with other jobs, so timings vary by ±20% or more between runs"
  echo "- execution provider: $EP$([[ "$EP" != cpu ]] && echo "; GPU: $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || echo none)")"
  echo "- accuracy model: $MODEL_NAME ($TRAINING); ONNX Runtime threads: $THREADS."
  echo "  Rows on recordings the model was trained on are not a test of generalisation."
  echo "- load average (1, 5, 15 min) at the start: $LOAD_START; at the end: $LOAD_END (2 cores shared with other sessions)"
  echo "- OpenCV: $("$PYTHON" -c 'import cv2; print(cv2.__version__)')"
  echo
  echo "## Commands"
  echo
  echo '```sh'
  echo "pddflow-phantom --out $WORK/phantom-test $PHANTOM_ARGS"
  echo "pddflow-eval --dataset DATA --predictions $WORK/pred/NAME/pddflow_MODE --mode MODE ${MODEL_ARGS[*]} --execution-provider $EP --threads $THREADS --report $WORK/reports/NAME-pddflow_MODE"
  echo "$PYTHON scripts/baselines.py run --dataset DATA --out $WORK/pred/NAME --references $WORK/pred/NAME/pddflow_keyframe/manifest.json"
  echo "pddflow-eval --dataset DATA --score-predictions $WORK/pred/NAME/METHOD --report $WORK/reports/NAME-METHOD"
  echo "pddflow-eval --compare $WORK/reports/NAME-*.json"
  echo "pddflow-eval --dataset DATA --predictions $WORK/pred/NAME/pddflow_MODE_SIZE --mode MODE --working-size SIZE ...   # WORKING_SIZES rows"
  echo "pddflow-bench ${BENCH_ARGS[*]} --execution-provider $EP --long-frames $LONG_FRAMES --long-size $LONG_SIZE --soak-frames $SOAK_FRAMES --live-seconds $LIVE_SECONDS --python $PYTHON"
  echo '```'
  echo
  echo "## Accuracy (paper protocol: first frame's mask propagated, every later annotated frame scored)"
  echo
  echo "Mean ± standard deviation over sequences (n − 1) of the per-sequence means. Dice in %, HD95 and HD"
  echo "in pixels (mm where meta.json gives a spacing). All rows are scored by the same code (pddflow-eval);"
  echo "baselines warp exactly as the element does (backward flow, soft one-hot bilinear, argmax),"
  echo "chain = frame-to-frame flows composed back to the reference. frames/s of pddflow rows: whole"
  echo "pipeline incl. PNG decoding and writing. Dice-over-time plots: $WORK/reports/*-dice.png."
  echo "$ACCURACY"
  echo "## Speed and memory (pddflow-bench)"
  cat "$WORK/bench.md"
  if [[ -n "$VS_DIS" ]]; then
    echo
    echo "### The model against DIS medium, interleaved"
    echo
    echo "\`python -m pddflow_train.bench_ab $VS_DIS_MODEL --size S --runs 1000 --dis --dataset $CAROTID\`: the features of the"
    echo "current frame + the flow against cached reference features (as the element runs the graphs, in the same"
    echo "ONNX Runtime version) and OpenCV's DIS medium on the same carotid pair resized to S×S, one thread"
    echo "each, timed in turn in one process (thread CPU time, medians of 1000 runs, the order rotating)."
    echo
    echo "$VS_DIS"
  fi
} > "$OUT"
echo "wrote $OUT in $(( END - START )) s" >&2
