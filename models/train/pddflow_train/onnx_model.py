"""A pddflow model directory's two graphs of one input size in ONNX Runtime, as the element runs
them: features(image) once per frame, flow(reference features, current features).

Both forms of the contract (docs/contracts.md): one feature map `features`, the flow graph taking
`reference_features` and `current_features`; or several maps, which model.json lists in
`feature_maps` and the flow graph takes as `reference_<name>` and `current_<name>`. Features are
dicts of map name -> array, whatever the form.
"""
import json
import os

import numpy as np


def graph_paths(model_dir, size=None):
    """features / flow graph paths of an input size (square side; None: the default size)."""
    meta = json.load(open(os.path.join(model_dir, "model.json")))
    if size is None or size == meta["input_width"]:
        return os.path.join(model_dir, "features.onnx"), os.path.join(model_dir, "flow.onnx")
    return (os.path.join(model_dir, f"features-{size}x{size}.onnx"),
            os.path.join(model_dir, f"flow-{size}x{size}.onnx"))


def session_options(threads=1):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return so


class OnnxModel:
    """The two sessions of one size; `features_path`/`flow_path` from graph_paths()."""

    def __init__(self, features_path, flow_path, so=None):
        import onnxruntime as ort
        so = so or session_options()
        providers = ["CPUExecutionProvider"]
        self.features_session = ort.InferenceSession(features_path, so, providers=providers)
        self.flow_session = ort.InferenceSession(flow_path, so, providers=providers)
        self.maps = [o.name for o in self.features_session.get_outputs()]
        wanted = sorted(f"{role}_{m}" for m in self.maps for role in ("reference", "current"))
        found = sorted(i.name for i in self.flow_session.get_inputs())
        if wanted != found:
            raise ValueError(f"{flow_path}: inputs {found} do not match the feature maps {self.maps} "
                             f"of {features_path} (expected {wanted})")

    @classmethod
    def of_dir(cls, model_dir, size=None, so=None):
        return cls(*graph_paths(model_dir, size), so=so)

    def features(self, image):
        """image f32 [1,1,H,W] in [0,1] -> {map name: array}."""
        return dict(zip(self.maps, self.features_session.run(self.maps, {"image": image})))

    def flow(self, reference, current):
        """Feature dicts of the reference and the current frame -> backward flow [1,2,H,W]."""
        feeds = {f"reference_{m}": reference[m] for m in self.maps}
        feeds.update({f"current_{m}": current[m] for m in self.maps})
        return self.flow_session.run(["flow"], feeds)[0]


def max_difference(a, b):
    """Largest absolute difference of two feature dicts (nan when their maps differ)."""
    if sorted(a) != sorted(b) or any(a[k].shape != b[k].shape for k in a):
        return float("nan")
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)
