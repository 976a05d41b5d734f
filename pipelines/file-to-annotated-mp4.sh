#!/usr/bin/env bash
# Any video file -> pddflow -> annotated H.264 MP4. With a reference mask (PNG label map of the
# first frame, frame-sized) the vessels are propagated and drawn; without, the flow is drawn.
# Usage: pipelines/file-to-annotated-mp4.sh IN OUT.mp4 [MASK.png]
set -euo pipefail
source "$(dirname "$0")/env.sh"
in=$1; out=$2; mask=${3:-}
if [ -n "$mask" ]; then
  props=(reference-mask="$mask" overlay-style=fill+contour+legend)
else
  props=(overlay-style=arrows)
fi
gst-launch-1.0 -q filesrc location="$in" ! decodebin ! videoconvert ! video/x-raw,format=I420 \
  ! pddflow overlay=true "${props[@]}" \
  ! x264enc speed-preset=veryfast ! mp4mux ! filesink location="$out"
echo "wrote $out"
