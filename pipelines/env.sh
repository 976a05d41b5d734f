# Sourced by the pipeline scripts: finds the plugin (release build unless GST_PLUGIN_PATH is set).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export GST_PLUGIN_PATH="${GST_PLUGIN_PATH:-$here/../target/release}"
if ! gst-inspect-1.0 pddflow >/dev/null 2>&1; then
  echo "pddflow not found in GST_PLUGIN_PATH=$GST_PLUGIN_PATH: run 'cargo build --release' first" >&2
  exit 1
fi
