#!/usr/bin/env bash
# Live view over RTP/UDP on loopback: a live phantom exam annotated by pddflow, sent as H.264,
# received and shown. With --check: no window, a bounded number of frames, and a non-zero exit
# unless the receiver got them (used by the tests).
# Usage: pipelines/rtp-live-view.sh [--check] [PORT]
set -euo pipefail
source "$(dirname "$0")/env.sh"
check=0; [ "${1:-}" = "--check" ] && { check=1; shift; }
port=${1:-5004}
frames=$([ $check = 1 ] && echo 60 || echo -1)
rx=$(mktemp -d); trap 'rm -rf "$rx"' EXIT
sink=$([ $check = 1 ] && echo "pngenc ! multifilesink location=$rx/rx-%05d.png" || echo "autovideosink sync=false")
caps="application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96"
# Receiver first, so that it is listening when the sender starts.
gst-launch-1.0 -q udpsrc address=127.0.0.1 port="$port" caps="$caps" timeout=5000000000 \
  ! rtpjitterbuffer ! rtph264depay ! avdec_h264 ! videoconvert ! $sink &
receiver=$!
# Wait until it listens (at most 5 s).
for _ in $(seq 50); do
  ss -Hlun "sport = :$port" 2>/dev/null | grep -q . && break
  sleep 0.1
done
gst-launch-1.0 -q usphantomsrc is-live=true num-buffers="$frames" ! video/x-raw,width=320,height=320,framerate=30/1 \
  ! videoconvert ! video/x-raw,format=I420 ! pddflow overlay=true \
  ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 ! rtph264pay config-interval=1 pt=96 \
  ! udpsink host=127.0.0.1 port="$port" sync=false
if [ $check = 1 ]; then
  # UDP carries no EOS: stop the receiver once it has all frames or none came for a second.
  received=-1
  for _ in $(seq 20); do
    now=$(ls "$rx" | wc -l)
    [ "$now" -ge "$frames" ] || [ "$now" -eq "$received" ] && break
    received=$now; sleep 0.5
  done
  kill "$receiver" 2>/dev/null || true; wait "$receiver" 2>/dev/null || true
  received=$(ls "$rx" | wc -l)
  echo "rtp loopback: received $received of $frames frames"
  [ "$received" -gt $((frames / 2)) ]
else
  wait "$receiver"
fi
