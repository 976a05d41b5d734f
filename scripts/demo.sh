#!/usr/bin/env bash
# The demo: a synthetic compression exam from usphantomsrc through pddflow (built-in model,
# overlay on) into an H.264 MP4, then the same run into fakesink to print pddflow's frame rate.
# Usage: scripts/demo.sh [OUTPUT.mp4] [FRAMES]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-pddflow-demo.mp4}
frames=${2:-300}

./scripts/setup.sh
cargo build --release --quiet
export GST_PLUGIN_PATH="$PWD/target/release${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"

source_caps="usphantomsrc num-buffers=$frames ! video/x-raw,width=640,height=480,framerate=30/1"
timed() { local t0; t0=$(date +%s.%N); "$@"; echo "$(date +%s.%N) - $t0" | bc -l; }

echo "demo: writing $out ($frames frames, 640x480)"
secs=$(timed gst-launch-1.0 -q $source_caps ! videoconvert ! video/x-raw,format=I420 \
  ! pddflow overlay=true ! x264enc speed-preset=veryfast ! mp4mux ! filesink location="$out")
printf 'demo: wrote %s in %.2f s (%.1f frames/s including phantom and H.264 encoding)\n' \
  "$out" "$secs" "$(echo "$frames / $secs" | bc -l)"

src_secs=$(timed gst-launch-1.0 -q $source_caps ! fakesink sync=false)
all_secs=$(timed gst-launch-1.0 -q $source_caps ! pddflow ! fakesink sync=false)
printf 'demo: pddflow alone: %.1f frames/s (%.2f ms/frame on top of the source)\n' \
  "$(echo "$frames / ($all_secs - $src_secs)" | bc -l)" "$(echo "1000 * ($all_secs - $src_secs) / $frames" | bc -l)"
