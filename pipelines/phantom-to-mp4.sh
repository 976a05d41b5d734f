#!/usr/bin/env bash
# Synthetic compression exam -> pddflow (built-in model, overlay) -> H.264 MP4.
# Usage: pipelines/phantom-to-mp4.sh [OUT.mp4] [FRAMES] [WIDTHxHEIGHT]
set -euo pipefail
source "$(dirname "$0")/env.sh"
out=${1:-phantom-exam.mp4}; frames=${2:-300}; size=${3:-640x480}
gst-launch-1.0 -q usphantomsrc num-buffers="$frames" \
  ! "video/x-raw,width=${size%x*},height=${size#*x},framerate=30/1" \
  ! videoconvert ! video/x-raw,format=I420 \
  ! pddflow overlay=true pixel-spacing=0.1 \
  ! x264enc speed-preset=veryfast ! mp4mux ! filesink location="$out"
echo "wrote $out"
