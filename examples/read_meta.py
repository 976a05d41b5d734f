#!/usr/bin/env python3
"""Reads pddflow's results in Python at an appsink: vessel boxes, areas, the vein compression
ratio and the flow, using only GStreamer's own API (PyGObject), not pddflow's Rust crate.

    GST_PLUGIN_PATH=target/release /usr/bin/python3 examples/read_meta.py [--frames N]

Debian packages: python3-gi gir1.2-gst-plugins-base-1.0 (scripts/setup.sh installs them).
"""
import argparse
import struct
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


def read_result(buffer):
    """The PddFlowMeta of a buffer as a dict, or None."""
    meta = buffer.get_custom_meta("PddFlowMeta")
    if meta is None:
        return None
    s = meta.get_structure()
    flow_w, flow_h = s.get_value("flow-width"), s.get_value("flow-height")
    flow = s.get_value("flow").get_data()  # f32 LE, interleaved dx, dy, row-major
    centre = (flow_h // 2 * flow_w + flow_w // 2) * 8
    dx, dy = struct.unpack_from("<ff", flow, centre)
    result = {
        "frame": s.get_value("frame"),
        "reference_frame": s.get_value("reference-frame"),
        "flow_size": (flow_w, flow_h),
        "flow_scale": (s.get_value("flow-scale-x"), s.get_value("flow-scale-y")),
        "centre_flow_px": (dx * s.get_value("flow-scale-x"), dy * s.get_value("flow-scale-y")),
        "class_names": list(s.get_value("class-names")),
        "areas": list(s.get_value("areas")),
        "vein_compression_ratio": s.get_value("vein-compression-ratio")
        if s.has_field("vein-compression-ratio")
        else None,
        "vessels": [],
    }
    for v in s.get_value("vessels"):
        result["vessels"].append(
            {
                "class": v.get_value("class"),
                "box": (v.get_value("x"), v.get_value("y"), v.get_value("width"), v.get_value("height")),
                "area": v.get_value("area"),
                "motion": (v.get_value("mean-motion-x"), v.get_value("mean-motion-y")),
            }
        )
    if s.has_field("labels"):
        result["labels_size"] = (s.get_value("labels-width"), s.get_value("labels-height"))
    return result


def report_errors(bus):
    """Prints the pipeline's error, if one was posted; returns whether there was one."""
    msg = bus.pop_filtered(Gst.MessageType.ERROR)
    if msg is None:
        return False
    err, debug = msg.parse_error()
    print(f"error: {err.message}\n{debug}", file=sys.stderr)
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--source", default="usphantomsrc seed=7", help="a source element description")
    parser.add_argument("--check", action="store_true", help="exit 1 unless every frame had vessels")
    args = parser.parse_args()

    Gst.init(None)
    pipeline = Gst.parse_launch(
        f"{args.source} num-buffers={args.frames} ! video/x-raw,width=320,height=320 "
        "! pddflow pixel-spacing=0.15 message-interval=30 ! appsink name=sink emit-signals=false sync=false"
    )
    sink = pipeline.get_by_name("sink")
    bus = pipeline.get_bus()
    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        return report_errors(bus) or 1
    frames_with_vessels = 0
    seen = 0
    while True:
        sample = sink.emit("try-pull-sample", Gst.SECOND)
        if sample is None:
            if sink.get_property("eos"):
                break
            if report_errors(bus):
                return 1
            continue
        seen += 1
        r = read_result(sample.get_buffer())
        if r is None:
            print("frame without PddFlowMeta", file=sys.stderr)
            return 1
        if r["vessels"]:
            frames_with_vessels += 1
        if r["frame"] % 15 == 0:
            ratio = r["vein_compression_ratio"]
            boxes = ", ".join(f"{v['class']} {v['box']} {v['area']} px" for v in r["vessels"])
            print(
                f"frame {r['frame']:4d} ref {r['reference_frame']} "
                f"vein ratio {'-' if ratio is None else f'{ratio:.2f}'} | {boxes}"
            )
    while True:
        msg = bus.pop()
        if msg is None:
            break
        if msg.type == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            print(f"error: {err.message} ({debug})", file=sys.stderr)
            return 1
        if msg.type == Gst.MessageType.ELEMENT and msg.get_structure().get_name() == "pddflow-summary":
            print("summary:", msg.get_structure().to_string())
    pipeline.set_state(Gst.State.NULL)
    print(f"{seen} frames, {frames_with_vessels} with vessels")
    if args.check and (seen != args.frames or frames_with_vessels != seen):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
