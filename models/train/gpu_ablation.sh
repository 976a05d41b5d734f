#!/usr/bin/env bash
# Several training recipes side by side in one call of a lent GPU machine: they share the phantom
# data and the teacher cache, each trains with models/train/gpu_train.sh in the background (the
# small model leaves the GPU mostly idle, so the runs cost about what one does), and every run is
# evaluated beside the classical baselines on the same held-out data.
#
# Usage (repo root, carrying .gpu/pddflow-phantom and .gpu/carotid256 from prepare_gpu.sh):
#   models/train/gpu_ablation.sh [BUDGET_S=300]
# Results: $OUT/results.tgz (per run: model/, final.pt, train.log, eval_*.json) and
# $OUT/summary.txt (held-out overall Dice per run and method). Env as gpu_train.sh, plus
# VARIANTS (names below, comma-separated; default all).
set -euo pipefail
BUDGET=${1:-300}
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PY:-python3}
OUT_ROOT=${OUT:-$PWD/out/gpu}
WORK=${WORK:-/tmp/pddflow-gpu}
RESULTS=$WORK/results
PHANTOM=${PHANTOM:-.gpu/pddflow-phantom}
VARIANTS=${VARIANTS:-kd,kd_photo,kd_photo3,init_photo}
export PYTHONUNBUFFERED=1 WORK PY PHANTOM
mkdir -p "$OUT_ROOT" "$RESULTS"

# phantom data once, before the runs start (gpu_train.sh skips what exists)
"$PHANTOM" --out "$WORK/phantom_train" --sequences "${TRAIN_SEQ:-48}" --frames "${FRAMES:-90}" \
  --size 256x256 --seed 1 --quiet &
"$PHANTOM" --out "$WORK/phantom_val" --sequences "${VAL_SEQ:-8}" --frames "${FRAMES:-90}" \
  --size 256x256 --seed 9001 --quiet &
wait

n_runs=$(tr ',' '\n' <<<"$VARIANTS" | grep -c .)
per_run_workers=$(( ($(nproc) - n_runs) / n_runs ))
(( per_run_workers < 1 )) && per_run_workers=1

# variant name -> extra pddflow_train.train arguments (after gpu_train.sh's, so they override them)
args_for() {
  case "$1" in
    kd) ;;
    nokd) ;;
    # a stronger photometric weight
    kd_photo3) echo "--photo-weight 0.3 --smooth-weight ${SMOOTH_WEIGHT:-0}" ;;
    # self-supervised photometric loss on every pair, real frames included
    kd_photo) echo "--photo-weight ${PHOTO_WEIGHT:-0.1} --smooth-weight ${SMOOTH_WEIGHT:-0}" ;;
    # the shipped model, trained on with the photometric loss (no synthetic warm-up, gentler rates)
    init_photo) echo "--init models/default/pddnet.pt --stages pretrain,finetune --budget-split 0.5,0.5
      --pretrain-lr 0.0005 --finetune-lr 0.00025
      --photo-weight ${PHOTO_WEIGHT:-0.1} --smooth-weight ${SMOOTH_WEIGHT:-0}" ;;
    *) echo "unknown variant $1" >&2; exit 2 ;;
  esac
}

first=1
for v in ${VARIANTS//,/ }; do
  extra=$(args_for "$v")
  nokd=0; [ "$v" = nokd ] && nokd=1
  # the classical baselines are scored once, beside the first run
  baselines=""; [ $first = 1 ] && baselines=copy,dis:fast,dis:medium
  first=0
  # shellcheck disable=SC2086
  OUT=$RESULTS/$v RUN=$WORK/run_$v NOKD=$nokd WORKERS=$per_run_workers THREADS=1 BASELINES=$baselines \
    "$HERE/gpu_train.sh" "$BUDGET" $extra >"$RESULTS/$v.console.log" 2>&1 &
done
status=0
wait || status=$?

"$PY" - "$RESULTS" ${VARIANTS//,/ } >"$OUT_ROOT/summary.txt" <<'PYEOF'
import json, os, sys
root, names = sys.argv[1], sys.argv[2:]
for data in ("eval_carotid_heldout.json", "eval_phantom_val.json"):
    print(f"== {data}: overall Dice %, then Dice % / HD95 px per class")
    for n in names:
        path = os.path.join(root, n, data)
        if not os.path.exists(path):
            print(f"{n:>16}: missing")
            continue
        for method, res in json.load(open(path)).items():
            label = n if method.startswith("model:") else method
            for mode, r in res.items():
                classes = "  ".join(f"{c} {100 * v['dice'][0]:.1f} / {v['hd95'][0]:.1f}"
                                    for c, v in r.items() if c not in ("overall_dice", "per_sequence"))
                print(f"{label:>16} {mode:>8}: {100 * r['overall_dice'][0]:5.1f}   {classes}")
PYEOF
tar -czf "$OUT_ROOT/results.tgz" -C "$RESULTS" .
cat "$OUT_ROOT/summary.txt"
exit $status
