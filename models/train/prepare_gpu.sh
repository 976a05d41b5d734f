#!/usr/bin/env bash
# Stage what models/train/gpu_train.sh needs under .gpu/ (git-ignored), run HERE from the repo root:
#   .gpu/pddflow-phantom   the phantom binary (release build)
#   .gpu/carotid256/       the carotid recordings resized to 256x256 (frames bilinear/area, masks nearest)
# Usage: models/train/prepare_gpu.sh [CAROTID_DIR=../shared/data/carotid]
set -euo pipefail
CAROTID=${1:-../shared/data/carotid}
PY=${PY:-python3}
mkdir -p .gpu
# always refresh the binary (incremental build; the simulator changes as the project moves)
cargo build --release --bin pddflow-phantom
cp target/release/pddflow-phantom .gpu/pddflow-phantom
"$PY" - "$CAROTID" .gpu/carotid256 <<'PYEOF'
import os, sys, shutil, cv2
src, dst = sys.argv[1], sys.argv[2]
for seq in sorted(os.listdir(src)):
    if not os.path.isdir(os.path.join(src, seq, "frames")):
        continue
    for sub, interp in (("frames", cv2.INTER_AREA), ("masks", cv2.INTER_NEAREST)):
        os.makedirs(os.path.join(dst, seq, sub), exist_ok=True)
        for n in sorted(os.listdir(os.path.join(src, seq, sub))):
            im = cv2.imread(os.path.join(src, seq, sub, n), cv2.IMREAD_UNCHANGED)
            cv2.imwrite(os.path.join(dst, seq, sub, n), cv2.resize(im, (256, 256), interpolation=interp))
    if os.path.exists(os.path.join(src, seq, "meta.json")):
        shutil.copy(os.path.join(src, seq, "meta.json"), os.path.join(dst, seq, "meta.json"))
print("wrote", dst)
PYEOF
du -sh .gpu/carotid256 .gpu/pddflow-phantom
