#!/usr/bin/env bash
# Runs on a lent GPU machine (no network, no Rust toolchain), from the repo root, after
# ../shared/gpu/stage.sh and scripts/gpu-stage.sh staged .gpu/ here and the parts were carried
# over (see ../shared/gpu/README.md). Checks the CUDA execution provider through the real
# element and times CPU against CUDA. Output goes to $OUT (default ./out).
set -uo pipefail
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT" /tmp/ort /tmp/gst
log() { echo "== $*"; }
if [ ! -f /tmp/ort/libonnxruntime.so.1.31.1 ]; then
  cat .gpu/ort/part-* | xz -d | tar -x -C /tmp/ort || { echo "ORT parts incomplete"; ls -la .gpu/ort; exit 1; }
fi
for f in .gpu/deb/*.deb; do dpkg -x "$f" /tmp/gst; done
NV=$(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__file__))' 2>/dev/null || true)
NVLIBS=$(ls -d "$NV"/*/lib "$NV"/cu13/lib 2>/dev/null | tr '\n' :)
export LD_LIBRARY_PATH=/tmp/ort:${NVLIBS}/tmp/gst/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
export GST_PLUGIN_SYSTEM_PATH=/tmp/gst/usr/lib/x86_64-linux-gnu/gstreamer-1.0
export GST_PLUGIN_PATH=$PWD/.gpu/plugin
export GST_REGISTRY=/tmp/gst-registry.bin
export ORT_DYLIB_PATH=/tmp/ort/libonnxruntime.so.1.31.1
GST=/tmp/gst/usr/bin
log "GPU"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
log "glibc"; ldd --version | head -1
log "inspect"; $GST/gst-inspect-1.0 pddflow 2>&1 | grep -E "Version|active-provider" | head -3
for size in 640x480 1920x1080; do
  for provider in cpu cuda; do
    log "pipeline $size provider=$provider (strict), 600 frames"
    start=$(date +%s.%N)
    GST_DEBUG=pddflow:4 $GST/gst-launch-1.0 -q videotestsrc num-buffers=600 pattern=ball \
      ! "video/x-raw,format=GRAY8,width=${size%x*},height=${size#*x}" \
      ! pddflow execution-provider=$provider strict-provider=true ! fakesink sync=false 2>&1 \
      | grep -E "model|ERROR|WARN|error" | head -5
    end=$(date +%s.%N)
    python3 -c "print(f'   {600/($end-$start):.1f} frames/s end to end (incl. start-up)')"
  done
done
if [ -x .gpu/pddflow-bench ]; then
  log "pddflow-bench --execution-provider cuda"
  .gpu/pddflow-bench --execution-provider cuda 2>&1 | tail -40
fi
