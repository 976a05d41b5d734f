#!/usr/bin/env bash
# Installs what pddflow needs to build and run, idempotently: GStreamer's Debian packages and the
# ONNX Runtime library (from the onnxruntime PyPI wheel) in .ort/lib, where the plugin finds it.
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_VERSION=1.31.1
packages=(pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-libav
  python3-gi python3-gst-1.0 gir1.2-gst-plugins-base-1.0 python3-pip unzip bc fonts-dejavu-core)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

lib=.ort/lib/libonnxruntime.so.$ORT_VERSION
if [ ! -f "$lib" ]; then
  echo "setup: fetching ONNX Runtime $ORT_VERSION (PyPI wheel) into .ort/lib"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp" "onnxruntime==$ORT_VERSION"
  mkdir -p .ort/lib
  unzip -q -j -o "$tmp"/onnxruntime-*.whl 'onnxruntime/capi/libonnxruntime.so*' -d .ort/lib
  ln -sf "libonnxruntime.so.$ORT_VERSION" .ort/lib/libonnxruntime.so
fi
echo "setup: ok (ONNX Runtime at $PWD/$lib)"
