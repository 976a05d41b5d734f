#!/usr/bin/env bash
# A Blackmagic DeckLink capture card (SDI/HDMI from the scanner) -> pddflow -> screen and an MP4
# recording. Needs hardware and gstreamer1.0-plugins-bad (decklinksrc): not run in CI.
# Usage: pipelines/capture-decklink.sh [DEVICE_NUMBER] [OUT.mp4]
set -euo pipefail
source "$(dirname "$0")/env.sh"
device=${1:-0}; out=${2:-capture.mp4}
gst-launch-1.0 -e decklinksrc device-number="$device" mode=auto ! videoconvert ! video/x-raw,format=I420 \
  ! pddflow overlay=true execution-provider=auto ! tee name=t \
  t. ! queue ! videoconvert ! autovideosink sync=false \
  t. ! queue ! x264enc speed-preset=veryfast tune=zerolatency ! mp4mux ! filesink location="$out"
