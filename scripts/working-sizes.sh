#!/usr/bin/env bash
# Accuracy and cost of pddflow per working size (the element's working-size property), in one
# run so that the rows compare: pddflow-eval on the real carotid recordings and on the phantom
# test set at each size and mode, OpenCV DIS medium chain (native size) on the same data, and
# pddflow-bench's model-only table per size with DIS medium at the same sizes. Writes a Markdown
# report; the default working size (model.json input_width) was chosen from it.
#
#   scripts/working-sizes.sh                      # built-in model, sizes 128..384
#   SIZES=192,256 MODES=chain scripts/working-sizes.sh
#
# Settings (environment):
#   SIZES         working sizes (default: 128,192,256,320,384, the built-in model's input_sizes)
#   MODES         pddflow modes (default: "keyframe chain")
#   MODEL         model directory (default: the built-in model)
#   CAROTID       real recordings (default: ../shared/data/carotid; skipped when missing)
#   PHANTOM_ARGS  pddflow-phantom arguments of the phantom test set (default: the model card's
#                 test set, --sequences 16 --frames 90 --size 256x256 --seed 9002)
#   THREADS       ONNX Runtime threads (default 1)
#   PYTHON        Python with numpy + opencv-python-headless ("" skips the DIS rows)
#   WORK          scratch directory (default: target/working-sizes)
#   OUT           the Markdown written (default: WORK/working-sizes.md)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
SIZES="${SIZES:-128,192,256,320,384}"
MODES="${MODES:-keyframe chain}"
CAROTID="${CAROTID:-../shared/data/carotid}"
PHANTOM_ARGS="${PHANTOM_ARGS:---sequences 16 --frames 90 --size 256x256 --seed 9002}"
THREADS="${THREADS:-1}"
WORK="${WORK:-target/working-sizes}"
OUT="${OUT:-$WORK/working-sizes.md}"
if [[ -z "${PYTHON+x}" ]]; then
  if [[ -x /work/venv-train/bin/python ]]; then PYTHON=/work/venv-train/bin/python; else PYTHON=python3; fi
fi
BIN="${CARGO_TARGET_DIR:-target}/release"
MODEL_ARGS=()
if [[ -n "${MODEL:-}" ]]; then MODEL_ARGS=(--model "$MODEL"); fi
START=$(date +%s)
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"

echo "== building (release)" >&2
cargo build --release --bins >&2
mkdir -p "$WORK/reports" "$WORK/pred"

DATASETS=()
if [[ -d "$CAROTID" ]]; then DATASETS+=("carotid=$CAROTID"); fi
if [[ ! -d "$WORK/phantom-test" ]]; then
  echo "== phantom test set: pddflow-phantom $PHANTOM_ARGS" >&2
  # shellcheck disable=SC2086
  "$BIN/pddflow-phantom" --out "$WORK/phantom-test" $PHANTOM_ARGS --quiet >&2
fi
DATASETS+=("phantom=$WORK/phantom-test")

for entry in "${DATASETS[@]}"; do
  name="${entry%%=*}"
  dir="${entry#*=}"
  for size in ${SIZES//,/ }; do
    for mode in $MODES; do
      echo "== $name: pddflow $mode, working-size $size" >&2
      "$BIN/pddflow-eval" --dataset "$dir" --predictions "$WORK/pred/$name/pddflow_${mode}_$size" \
        --mode "$mode" --working-size "$size" "${MODEL_ARGS[@]}" --threads "$THREADS" \
        --name "pddflow $mode $size" --report "$WORK/reports/$name-$mode-$size" --quiet > /dev/null
    done
  done
  if [[ -n "$PYTHON" ]]; then
    echo "== $name: DIS medium chain (native size)" >&2
    first_mode="${MODES%% *}"
    first_size="${SIZES%%,*}"
    "$PYTHON" scripts/baselines.py run --dataset "$dir" --out "$WORK/pred/$name" --methods dis_medium \
      --modes chain --references "$WORK/pred/$name/pddflow_${first_mode}_$first_size/manifest.json" > /dev/null
    "$BIN/pddflow-eval" --dataset "$dir" --score-predictions "$WORK/pred/$name/dis_medium_chain" \
      --name "DIS medium chain (native)" --report "$WORK/reports/$name-dis_medium_chain" --quiet > /dev/null
  fi
done

echo "== pddflow-bench, model only, per size" >&2
"$BIN/pddflow-bench" "${MODEL_ARGS[@]/--model/--models}" --working-sizes "$SIZES" --threads "$THREADS" \
  --skip e2e,stages,ratio,long --opencv-sizes "$(echo "$SIZES" | sed -E 's/([0-9]+)/\1x\1/g')" \
  --python "${PYTHON:-}" --markdown "$WORK/bench.md" >&2

END=$(date +%s)
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"
"${PYTHON:-python3}" - "$WORK" "$SIZES" "$MODES" "${DATASETS[@]}" > "$OUT" <<'EOF'
import json, os, sys
work, sizes, modes = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split()
datasets = [d.split("=", 1) for d in sys.argv[4:]]

def overall(path):
    if not os.path.exists(path):
        return None
    r = json.load(open(path))
    o = next(c for c in r["summary"] if c["name"] == "overall")
    return o, r

def cell(o):
    if o is None:
        return "–"
    d, h = o["dice"], o.get("hd95")
    hd = f"{h['mean']:.1f} ± {h['std']:.1f}" if h else "–"
    return f"{100 * d['mean']:.1f} ± {100 * d['std']:.1f} | {hd}"

for name, path in datasets:
    print(f"### {name} ({path})\n")
    print("Overall Dice % | HD95 px (frame pixels), mean ± std over sequences.\n")
    print("| working size | " + " | ".join(f"{m} Dice | {m} HD95" for m in modes) + " |")
    print("|---|" + "---|---|" * len(modes))
    for s in sizes:
        cells = []
        for m in modes:
            got = overall(f"{work}/reports/{name}-{m}-{s}.json")
            cells.append(cell(got[0] if got else None))
        print(f"| {s} | " + " | ".join(cells) + " |")
    dis = overall(f"{work}/reports/{name}-dis_medium_chain.json")
    if dis:
        print(f"\nOpenCV DIS medium chain at native size (same references): {cell(dis[0]).replace(' | ', ' %, HD95 ')} px\n")
    else:
        print()
EOF
{
  echo
  echo "### cost per size (pddflow-bench)"
  cat "$WORK/bench.md"
  echo
  echo "Run: \`SIZES=$SIZES MODES='$MODES' THREADS=$THREADS scripts/working-sizes.sh\` in $(( (END - START) / 60 )) min;"
  echo "load average at the start $LOAD_START, at the end $LOAD_END (2 cores shared with other work)."
} >> "$OUT"
echo "wrote $OUT" >&2
