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
# A file has no latency to keep: pipeline=true runs each frame's model beside the previous
# frame's mask work, and the queues put decoding and encoding on threads of their own.
gst-launch-1.0 -q filesrc location="$in" ! decodebin ! videoconvert ! video/x-raw,format=I420 \
  ! queue ! pddflow overlay=true pipeline=true "${props[@]}" \
  ! queue ! x264enc speed-preset=veryfast ! mp4mux ! filesink location="$out"
echo "wrote $out"
