"""Teachers for knowledge distillation, with an on-disk cache.

A teacher maps (reference, current) grey frames [H,W] f32 in [0,1] (model input size)
to the BACKWARD flow [H,W,2] (dx, dy) in pixels: p + flow(p) in the reference frame is
where pixel p of the current frame was.

Shipped teacher: OpenCV DIS (`dis:fast`, `dis:medium`, `dis:ultrafast`, and `dis:fine`: the
medium preset down to the full-resolution scale with 10 variational refinement iterations),
called as DIS.calc(current, reference), which returns exactly that backward flow.

Slower classical candidates from opencv-contrib-python(-headless) (`cv2.optflow`, not in the
pinned requirements: the contrib wheel replaces opencv-python-headless, so use a separate venv):
`deepflow` (DeepFlow), `tvl1` (dual TV-L1), called the same way.

Any ONNX flow model can be a teacher (`onnx:/path/model.onnx`), e.g. a PWC-Net or RAFT
export. Expected ONNX interface:
  * two image inputs, in graph order (image1, image2) = (CURRENT, REFERENCE) frame, i.e.
    the usual "flow from image1 to image2" convention, which for image1 = current is our
    backward flow. Shape [1,1,h,w] (grey) or [1,3,h,w] (grey replicated to RGB), f32;
    static or dynamic h, w (static sizes are honoured by resizing, vectors rescaled).
    Value range: [0,1] by default, `onnx:/path/model.onnx?scale=255` for [0,255].
  * first output: flow [1,2,h',w'] (dx, dy) or [1,h',w',2], in pixels of its input
    resolution; it is resized to the model size and the vectors rescaled.
  (`?swap=1` feeds (reference, current) instead, for models that output the flow
  from image2 to image1.)

Teacher flows are computed once per pair and cached as npz (float16) under
CACHE_DIR/<teacher-id>/<seq>/<ref>__<cur>.npz.
"""
import hashlib
import os
import sys
import tempfile
import urllib.parse
import zipfile

import cv2
import numpy as np


def to_u8(frame):
    """A [0,1] float frame as the 8-bit image OpenCV's flow methods take (rounded)."""
    return np.clip(frame * 255 + 0.5, 0, 255).astype(np.uint8)


class DISTeacher:
    PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
               "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}

    def __init__(self, preset="fast"):
        self.preset = preset
        if preset == "fine":
            # the medium preset, finished at full resolution with a longer variational refinement
            self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
            self.dis.setFinestScale(0)
            self.dis.setVariationalRefinementIterations(10)
        elif preset in self.PRESETS:
            self.dis = cv2.DISOpticalFlow_create(self.PRESETS[preset])
        else:
            raise ValueError(f"unknown DIS preset {preset!r} (ultrafast | fast | medium | fine)")
        self.id = f"dis-{preset}"

    def __call__(self, ref, cur):
        return self.dis.calc(to_u8(cur), to_u8(ref), None)


class ContribTeacher:
    """DeepFlow or dual TV-L1 from opencv-contrib's cv2.optflow, on 8-bit frames."""

    def __init__(self, name):
        try:
            import cv2.optflow as optflow
        except (ImportError, AttributeError):
            raise SystemExit(f"teacher {name!r} needs opencv-contrib-python-headless (cv2.optflow), "
                             f"installed instead of opencv-python-headless, in a separate venv")
        make = {"deepflow": optflow.createOptFlow_DeepFlow, "tvl1": optflow.createOptFlow_DualTVL1}
        self.flow = make[name]()
        self.id = name

    def __call__(self, ref, cur):
        return self.flow.calc(to_u8(cur), to_u8(ref), None)


class OnnxTeacher:
    def __init__(self, spec):
        import onnxruntime as ort
        u = urllib.parse.urlparse(spec)
        path = u.path
        q = dict(urllib.parse.parse_qsl(u.query))
        self.scale = float(q.get("scale", 1.0))
        self.swap = q.get("swap", "0") == "1"
        so = ort.SessionOptions()
        self.sess = ort.InferenceSession(path, so, providers=ort.get_available_providers())
        ins = self.sess.get_inputs()
        assert len(ins) >= 2, "teacher ONNX needs two image inputs"
        self.inputs = ins[:2]
        self.output = self.sess.get_outputs()[0].name
        h = hashlib.sha1(open(path, "rb").read()).hexdigest()[:10]
        self.id = f"onnx-{os.path.basename(path)}-{h}-s{self.scale}-w{int(self.swap)}"

    def __call__(self, ref, cur):
        H, W = ref.shape
        shp = self.inputs[0].shape
        ch = shp[1] if isinstance(shp[1], int) else 1
        h = shp[2] if isinstance(shp[2], int) else H
        w = shp[3] if isinstance(shp[3], int) else W
        feeds = {}
        a, b = (ref, cur) if self.swap else (cur, ref)
        for inp, im in zip(self.inputs, (a, b)):
            x = cv2.resize(im, (w, h), interpolation=cv2.INTER_LINEAR) * self.scale
            x = np.repeat(x[None, None], ch, 1).astype(np.float32)
            feeds[inp.name] = x
        out = self.sess.run([self.output], feeds)[0][0]
        if out.shape[0] != 2 and out.shape[-1] == 2:
            out = out.transpose(2, 0, 1)
        fl = out.transpose(1, 2, 0).astype(np.float32)
        fh, fw = fl.shape[:2]
        fl = cv2.resize(fl, (W, H), interpolation=cv2.INTER_LINEAR)
        fl[..., 0] *= W / fw
        fl[..., 1] *= H / fh
        return fl


def make_teacher(spec):
    if spec is None or spec == "none":
        return None
    if spec.startswith("dis:"):
        return DISTeacher(spec.split(":", 1)[1])
    if spec.startswith("onnx:"):
        return OnnxTeacher(spec[5:])
    if spec in ("deepflow", "tvl1"):
        return ContribTeacher(spec)
    raise ValueError(f"unknown teacher {spec!r} (dis:fast | dis:medium | dis:fine | deepflow | tvl1 | onnx:/path.onnx)")


class CachedTeacher:
    def __init__(self, teacher, cache_dir):
        self.t = teacher
        self.dir = os.path.join(cache_dir, teacher.id)

    def get(self, key, ref, cur, size):
        # no in-memory copy: 25k pairs x 256^2 x 2 floats is 13 GB per DataLoader worker; the
        # float16 files load in well under a millisecond
        seq, a, b = key
        p = os.path.join(self.dir, str(size), seq, f"{a[:-4]}__{b[:-4]}.npz")
        if os.path.exists(p):
            try:
                return np.load(p)["flow"].astype(np.float32)
            except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
                # a file cut short by a killed run: recompute it rather than stop the training
                print(f"teacher cache: {p} unreadable ({e}); recomputing", file=sys.stderr)
        fl = self.t(ref, cur).astype(np.float16)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        # write then rename, so that concurrent runs and DataLoader workers never read a partial file
        fd, tmp = tempfile.mkstemp(suffix=".npz.tmp", dir=os.path.dirname(p))
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, flow=fl)
        os.replace(tmp, p)
        fl = fl.astype(np.float32)
        return fl
