#!/usr/bin/env bash
# A USB/V4L2 capture device (e.g. an ultrasound scanner's video out through a capture dongle)
# -> pddflow -> screen. Needs hardware: not run in CI.
# Usage: pipelines/capture-v4l2.sh [/dev/video0] [MASK.png]
set -euo pipefail
source "$(dirname "$0")/env.sh"
dev=${1:-/dev/video0}; mask=${2:-}
gst-launch-1.0 v4l2src device="$dev" ! videoconvert ! video/x-raw,format=I420 \
  ! pddflow overlay=true ${mask:+reference-mask="$mask"} message-interval=30 \
  ! videoconvert ! autovideosink sync=false
