#!/usr/bin/env bash
# A folder of 8-bit PNG frames (sorted by name; gaps in numbering are fine) and the first
# frame's label map -> propagated label maps as PNG files (same names) in OUT.
# Usage: pipelines/png-sequence-to-labels.sh FRAMES_DIR FIRST_MASK.png OUT_DIR [keyframe|chain]
set -euo pipefail
source "$(dirname "$0")/env.sh"
frames=$1; mask=$2; out=$3; mode=${4:-keyframe}
mkdir -p "$out"
# multifilesrc reads a numbered sequence without gaps: link the frames in order.
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mapfile -t names < <(cd "$frames" && ls -1 | grep -i '\.png$' | sort)
[ ${#names[@]} -gt 0 ] || { echo "no PNG frames in $frames" >&2; exit 1; }
for i in "${!names[@]}"; do ln -s "$(cd "$frames" && pwd)/${names[$i]}" "$tmp/$(printf %06d "$i").png"; done
gst-launch-1.0 -q multifilesrc location="$tmp/%06d.png" index=0 stop-index=$((${#names[@]} - 1)) \
    caps=image/png,framerate=10/1 \
  ! pngdec ! videoconvert ! video/x-raw,format=GRAY8 \
  ! pddflow reference-mask="$mask" mode="$mode" ! pddflowmask \
  ! pngenc ! multifilesink location="$tmp/out-%06d.png"
for i in "${!names[@]}"; do mv "$tmp/out-$(printf %06d "$i").png" "$out/${names[$i]}"; done
echo "wrote ${#names[@]} label maps to $out"
