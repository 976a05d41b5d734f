#!/usr/bin/env python3
"""Physics-based (SIMUS) validation set: linear-probe plane-wave B-mode exams of a neck-like phantom.

Writes pddflow's dataset layout (the files `pddflow-phantom` writes and `pddflow-eval` reads):

    OUT/<sequence>/frames/NNNNNN.png   8-bit B-mode frames
    OUT/<sequence>/masks/NNNNNN.png    label maps (0 background, 1 vein, 2 artery)
    OUT/<sequence>/flow/NNNNNN.flo     backward flow to frame 0 (p + flow(p) = where p was)
    OUT/<sequence>/meta.json           source, seed, spacing, frame rate, anatomy, motion, timing

Physics. Each frame is one 0-degree plane-wave transmit of a Verasonics L11-5v (pymust.getparam:
128 elements, 7.6 MHz, 0.3 mm pitch), simulated with SIMUS (Garcia 2022): the pressure field of
every (sub-)element at every scatterer, frequency by frequency, transmit and receive, in 2-D,
soft baffle, 0.5 dB/cm/MHz attenuation. `pymust.simus` computes it in about 2.5 ms per scatterer
on one core here; `simus_rf` below is the same computation (pymust.pfield's formulas: sub-element
splitting, obliquity, centre-frequency directivity, attenuation, the geometric progression over
frequencies) fused into one numba loop, and on pymust's frequency grid it reproduces
`pymust.simus` to 5e-5 relative RMS (`--check`). It uses half of pymust's frequency samples
(pymust doubles its time window and throws half of the signal away): same RF to 3e-3. Then
I/Q demodulation (`pymust.rf2iq`), delay-and-sum (`pymust.dasmtx`, linear interpolation, f-number
1.5, Hann receive apodization added to its matrix) on a grid twice as fine as the frames, envelope, a fixed depth gain, 2x2 area averaging, and log compression
over a fixed dynamic range.

Phantom (mm; x lateral, z depth, probe at z = 0). Random scatterers (Gaussian reflection
coefficients) whose amplitude maps subcutaneous fat, fascia (thin bright wavy layers), striated
muscle, a deep boundary and vessel walls; no scatterers in the lumens (blood is anechoic). A vein
(ellipse) and an artery (circle) sit in the carotid sheath.

Motion: a forward map from rest tissue to frame t, composed of three invertible pieces, applied to
the scatterers; its exact inverse gives the labels and the ground-truth flow at every pixel:
1. arterial pulsation: radial scaling (1 + d(t)) inside the artery (d a few %), fading to zero at
   twice its radius;
2. probe compression: per column, depth z -> z - U(x, z), U the integral of a strain density that
   is c_v(t) inside the vein (its lumen keeps 1 - c_v of its height: it flattens, and closes when
   c_v -> 1), 0 inside the (stiff) artery, k(x) exp(-z / lambda) in tissue (strongest near the
   skin) and 0 below the deep boundary, which moves up rigidly by the probe travel D(t);
3. lateral: Poisson bulge (1 + beta(t) exp(-z / lambda)) about the probe centre, a slow drift s(t)
   and a small shear with depth.
All motion is zero at frame 0 (the reference is at rest). Several press-hold-release compressions
per clip; in "closing" sequences the vein shuts (area under 5 % of its reference) at the peak of
at least one compression and reopens.

Reproducible: every sequence is drawn from (seed, index); meta.json records both.

Usage:
  python -m pddflow_train.simus --out DIR [--sequences 4] [--frames 200] [--long-sequences 1] [--long-frames 600]
           [--seed 2027] [--workers 1] [--density 12] [--check] [--time-only N]
"""

import argparse
import json
import math
import os
import sys
import time

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pymust  # noqa: E402
import scipy.sparse  # noqa: E402
from numba import njit  # noqa: E402
from pymust.getpulse import getpulse  # noqa: E402

VERSION = 1
PROBE = "L11-5v"
PX_MM = 0.2            # frame pixel spacing (isotropic)
WIDTH, HEIGHT = 128, 144
Z0_MM = 1.0            # depth of the frame's top edge
FPS = 30.0
DYN_RANGE_DB = 40.0
F_NUMBER = 1.5         # receive f-number (Hann-apodized aperture)
MARGIN_MM = 1.5        # scatterers simulated this far outside the frame
ATTENUATION = 0.5      # dB/cm/MHz

X_HALF = WIDTH * PX_MM / 2                   # 12.8 mm
Z_BOTTOM = Z0_MM + HEIGHT * PX_MM            # 29.8 mm
SIM_X = X_HALF + MARGIN_MM                   # scatterers simulated within |x| <= SIM_X
SIM_Z = (0.2, Z_BOTTOM + 1.0)


# --------------------------------------------------------------------------------------------
# SIMUS (2-D, linear array), pymust.pfield's formulas fused into one loop


def probe_param():
    param = pymust.getparam(PROBE)
    param.attenuation = ATTENUATION
    param.c = 1540.0
    param.fs = 4 * param.fc
    return param


def freq_plan(param, max_dist, db_thresh=-60.0, fstep=2.0, delays=None):
    """pymust.simus's frequency samples; fstep=2 takes every other one and keeps the whole
    (then just long enough) time window instead of pymust's first half of a doubled one."""
    c, fc = param.c, param.fc
    _, tp = getpulse(param, 2)
    maxd = max_dist + tp[-1] * c
    dmax = 0.0 if delays is None else float(np.nanmax(delays))
    df = 1 / 2 / (2 * maxd / c + dmax) * fstep
    nf_full = 2 * int(np.ceil(fc / df)) + 1
    f = np.linspace(0, 2 * fc, nf_full)
    df = f[1]
    pulse, probe = param.getPulseSpectrumFunction(None), param.getProbeFunction()
    s = np.abs(pulse(2 * np.pi * f) * probe(2 * np.pi * f))
    gain = 20 * np.log10(1e-200 + s / s.max())
    idx = np.where(gain > db_thresh)[0]
    sel = np.arange(idx[0], idx[-1] + 1)
    nt = int(np.ceil(param.fs / 2 / fc * (nf_full - 1)))
    return dict(fstep=fstep, f=f[sel], sel=sel, nf_full=nf_full, df=df, nt=nt,
                keep=(nt + 1) // 2 if fstep == 1 else nt,
                pulse=pulse(2 * np.pi * f[sel]), probe=probe(2 * np.pi * f[sel]))


@njit(fastmath=True, cache=True)
def _init_chunk(x, z, xe, xi, c, fc, kw, kwa, dkw, dkwa, kc, seg, er, ei, sr, si):
    eps = np.float32(1.1920929e-07)
    rmin = c / fc / 2
    for i in range(x.shape[0]):
        for m in range(xi.shape[0]):
            for e in range(xe.shape[0]):
                dx = x[i] - xi[m] - xe[e]
                d = math.sqrt(dx * dx + z[i] * z[i])
                r = max(d, rmin)
                th = math.asin((dx + eps) / (d + eps))
                obli = math.cos(th) if abs(th) < math.pi / 2 else eps
                a = abs(kc * seg / 2 * math.sin(th))
                dirf = math.sin(a + eps) / (a + eps)
                amp = math.exp(-kwa * r) * obli / math.sqrt(r) * dirf
                ph = (kw * r) % (2 * math.pi)
                er[i, m, e] = amp * math.cos(ph)
                ei[i, m, e] = amp * math.sin(ph)
                sa = math.exp(-dkwa * r)
                sr[i, m, e] = sa * math.cos(dkw * r)
                si[i, m, e] = sa * math.sin(dkw * r)


@njit(fastmath=True, cache=True)
def _sweep(er, ei, sr, si, rc, pp_r, pp_i, pr, dap_r, dap_i, out_r, out_i):
    n, nm, ne = er.shape
    rp_r = np.empty(ne, np.float32)
    rp_i = np.empty(ne, np.float32)
    inv_m = np.float32(1.0 / nm)
    for k in range(out_r.shape[0]):
        for i in range(n):
            for e in range(ne):
                rp_r[e] = er[i, 0, e]
                rp_i[e] = ei[i, 0, e]
            for m in range(1, nm):
                for e in range(ne):
                    rp_r[e] += er[i, m, e]
                    rp_i[e] += ei[i, m, e]
            tr = np.float32(0.0)
            ti = np.float32(0.0)
            for e in range(ne):
                a = rp_r[e] * inv_m
                b = rp_i[e] * inv_m
                rp_r[e] = a
                rp_i[e] = b
                tr += a * dap_r[k, e] - b * dap_i[k, e]
                ti += a * dap_i[k, e] + b * dap_r[k, e]
            w = rc[i] * pr[k]
            wr = (pp_r[k] * tr - pp_i[k] * ti) * w
            wi = (pp_r[k] * ti + pp_i[k] * tr) * w
            for e in range(ne):
                out_r[k, e] += wr * rp_r[e] - wi * rp_i[e]
                out_i[k, e] += wr * rp_i[e] + wi * rp_r[e]
            for m in range(nm):
                for e in range(ne):
                    a = er[i, m, e]
                    b = ei[i, m, e]
                    er[i, m, e] = a * sr[i, m, e] - b * si[i, m, e]
                    ei[i, m, e] = a * si[i, m, e] + b * sr[i, m, e]


def simus_rf(x, z, rc, delays, param, plan, chunk=32, tx_apod=None):
    """RF signals [time, element] of scatterers at (x, z) (m) with reflection coefficients rc:
    pymust.simus(x, z, rc, delays, param) without elevation focusing."""
    c, fc = float(param.c), float(param.fc)
    width = param.width if param.get("width") is not None else param.pitch - param.kerf
    nm = int(np.ceil(width / (c / (fc * (1 + param.bandwidth / 200)))))
    ne = int(param.Nelements)
    xe = (np.arange(ne) - (ne - 1) / 2) * param.pitch
    seg = width / nm
    xi = -width / 2 + seg / 2 + np.arange(nm) * seg
    f0, df = float(plan["f"][0]), float(plan["df"])
    alpha = float(param.get("attenuation") or 0.0)
    kw, kwa = 2 * np.pi * f0 / c, alpha / 8.69 * f0 / 1e6 * 1e2
    dkw, dkwa = 2 * np.pi * df / c, alpha / 8.69 * df / 1e6 * 1e2
    kc = 2 * np.pi * fc / c
    fk = plan["f"]
    dap = np.exp(1j * 2 * np.pi * fk[:, None] * np.nan_to_num(np.asarray(delays, float)).reshape(1, -1))
    if tx_apod is not None:  # pymust: param.TXapodization
        dap = dap * np.asarray(tx_apod, float).reshape(1, -1)
    dap_r = np.ascontiguousarray(dap.real, np.float32)
    dap_i = np.ascontiguousarray(dap.imag, np.float32)
    pp = plan["pulse"] * plan["probe"]
    pp_r, pp_i = pp.real.astype(np.float32), pp.imag.astype(np.float32)
    pr = np.real(plan["probe"]).astype(np.float32)
    nk = len(fk)
    out_r = np.zeros((nk, ne), np.float32)
    out_i = np.zeros((nk, ne), np.float32)
    x = np.asarray(x, np.float64).ravel()
    z = np.asarray(z, np.float64).ravel()
    rc = np.asarray(rc, np.float32).ravel()
    keep = z >= 0  # pymust: scatterers behind the probe do not count
    x, z, rc = x[keep], z[keep], rc[keep]
    er = np.empty((chunk, nm, ne), np.float32)
    ei, sr, si = np.empty_like(er), np.empty_like(er), np.empty_like(er)
    for s in range(0, len(x), chunk):
        n = min(chunk, len(x) - s)
        _init_chunk(x[s:s + n], z[s:s + n], xe, xi, c, fc, kw, kwa, dkw, dkwa, kc, seg,
                    er[:n], ei[:n], sr[:n], si[:n])
        _sweep(er[:n], ei[:n], sr[:n], si[:n], rc[s:s + n], pp_r, pp_i, pr, dap_r, dap_i,
               out_r, out_i)
    spect = (out_r + 1j * out_i) * (df * width / plan["fstep"])
    full = np.zeros((plan["nf_full"], ne), np.complex64)
    full[plan["sel"]] = spect
    rf = np.fft.irfft(np.conj(full), plan["nt"], axis=0)[:plan["keep"]]
    return rf.astype(np.float32)


def check_against_pymust(n=600, seed=0):
    """Relative RMS difference between simus_rf and pymust.simus on random scatterers."""
    param = probe_param()
    rng = np.random.default_rng(seed)
    x = rng.uniform(-SIM_X, SIM_X, n) * 1e-3
    z = rng.uniform(*SIM_Z, n) * 1e-3
    rc = rng.standard_normal(n)
    delays = pymust.txdelay(param, 0)
    opt = pymust.utils.Options()
    opt.ParPool, opt.dBThresh, opt.WaitBar = False, -60, False
    t0 = time.perf_counter()
    ref, _ = pymust.simus(x, z, rc, delays, param.copy(), opt)
    t_ref = time.perf_counter() - t0
    xe = (np.arange(param.Nelements) - (param.Nelements - 1) / 2) * param.pitch
    maxd = float(np.sqrt(np.max((x[:, None] - xe) ** 2 + z[:, None] ** 2)))
    out = {"scatterers": n, "pymust_s": t_ref}
    for fstep in (1.0, 2.0):
        plan = freq_plan(param, maxd, -60, fstep, delays)
        simus_rf(x[:2], z[:2], rc[:2], delays, param, plan)  # compile
        t0 = time.perf_counter()
        rf = simus_rf(x, z, rc, delays, param, plan)
        n_t = min(len(rf), len(ref))
        err = float(np.linalg.norm(rf[:n_t] - ref[:n_t]) / np.linalg.norm(ref[:n_t]))
        out[f"fstep{int(fstep)}"] = {"seconds": time.perf_counter() - t0, "rel_rms": err,
                                     "frequencies": int(len(plan["f"]))}
    return out


# --------------------------------------------------------------------------------------------
# Anatomy and motion


def smoothstep(u):
    u = np.clip(u, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * u)


def pulse_waveform(phase):
    """Arterial distension over a heart cycle: 0 at end-diastole, 1 at peak systole."""
    phase = np.mod(phase, 1.0)
    sys_ = 0.15
    up = np.sin(0.5 * np.pi * phase / sys_) ** 2
    s = phase - sys_
    tail = math.exp(-(1 - sys_) / 0.22)
    down = np.exp(-s / 0.22) - tail * s / (1 - sys_)
    return np.where(phase < sys_, up, down)


class Sequence:
    """One exam: anatomy, scatterers at rest, motion schedule; all drawn from (seed, index)."""

    def __init__(self, seed, index, frames, density, closing):
        self.seed, self.index, self.frames = seed, index, frames
        rng = np.random.default_rng([seed, index])
        self.closing = closing
        # --- anatomy (mm)
        self.fat = rng.uniform(2.5, 4.0)            # subcutaneous fat / superficial fascia
        self.muscle = rng.uniform(7.0, 8.5)          # deep border of the sternocleidomastoid
        self.deep = rng.uniform(23.5, 26.0)          # deep boundary (prevertebral), rigid below
        self.lam = rng.uniform(16.0, 24.0)           # strain decay length
        for _ in range(1000):
            a_v, b_v = rng.uniform(3.8, 5.2), rng.uniform(1.9, 2.5)
            r_a = rng.uniform(2.8, 3.4)
            side = rng.choice([-1.0, 1.0])
            xv = side * rng.uniform(3.0, 6.0)
            zv = rng.uniform(self.muscle + b_v + 1.0, self.muscle + b_v + 3.0)
            xa = -side * rng.uniform(3.5, 6.5)
            za = rng.uniform(zv + 1.0, zv + 4.0)
            pulse = rng.uniform(0.03, 0.06)
            # the vein must stay outside the artery's pulsation zone (2 R (1 + d)) ...
            th = np.linspace(0, 2 * np.pi, 180)
            dist = np.hypot(xv + a_v * np.cos(th) - xa, zv + b_v * np.sin(th) - za).min()
            # ... and both inside the frame, above the deep boundary
            if (dist > 2 * r_a * (1 + pulse) + 0.4 and abs(xv) + a_v < X_HALF - 1.0
                    and abs(xa) + r_a < X_HALF - 1.0 and za + 2 * r_a < self.deep - 0.5):
                break
        else:
            raise RuntimeError("no anatomy fits")
        self.vein = dict(x=xv, z=zv, a=a_v, b=b_v)
        self.artery = dict(x=xa, z=za, r=r_a, pulse=pulse)
        self.heart_bpm = rng.uniform(55, 90)
        self.heart_phase = rng.uniform(0, 1)
        # --- compressions: press, hold, release, rest; the first after a short rest
        dur = frames / FPS
        t = rng.uniform(0.25, 0.5)
        self.d_close = 2 * b_v * rng.uniform(1.05, 1.2)   # probe travel that shuts the vein
        comps = []
        while True:
            tp, th_, tr, trest = (rng.uniform(0.7, 1.0), rng.uniform(0.2, 0.45),
                                  rng.uniform(0.7, 1.0), rng.uniform(0.3, 0.6))
            if t + tp + th_ + tr > dur - 0.1:
                break
            if closing:
                peak = self.d_close * rng.uniform(1.02, 1.15)
            else:
                peak = self.d_close * rng.uniform(0.55, 0.85)
            comps.append(dict(start=t, press=tp, hold=th_, release=tr, peak=peak))
            t += tp + th_ + tr + trest
        if not comps:
            raise RuntimeError("clip too short for one compression")
        if closing and len(comps) > 2:
            # not every compression of a closing exam shuts the vein
            comps[1]["peak"] = self.d_close * rng.uniform(0.7, 0.9)
        self.compressions = comps
        self.c_max = 0.995 if closing else rng.uniform(0.55, 0.8)
        self.poisson = rng.uniform(0.2, 0.4)
        self.drift_mm = rng.uniform(0.3, 0.8) * rng.choice([-1.0, 1.0])
        self.drift_period = rng.uniform(4.0, 9.0)
        self.shear = rng.uniform(-0.01, 0.01)
        # --- scatterers at rest: cover the frame at the strongest compression and drift
        dmax = max(c["peak"] for c in comps)
        x_lim = SIM_X + abs(self.drift_mm) + 0.03 * SIM_X * 2 + 0.5
        z_hi = SIM_Z[1] + dmax + 0.5
        area = 2 * x_lim * (z_hi - SIM_Z[0])
        n = int(density * area)
        xs = rng.uniform(-x_lim, x_lim, n)
        zs = rng.uniform(SIM_Z[0], z_hi, n)
        amp = self.echogenicity(xs, zs, rng)
        keep = amp > 0
        self.sx, self.sz = xs[keep], zs[keep]
        self.rc = (amp[keep] * rng.standard_normal(keep.sum())).astype(np.float32)
        self.density = density

    # ---------------------------------------------------------------- echogenicity at rest
    def echogenicity(self, x, z, rng):
        def wavy(z0, amp, period, phase):
            return z0 + amp * np.sin(2 * np.pi * x / period + phase)

        a = np.full(x.shape, 0.55)
        # skin (bright entry echo), fat with lobules, muscle with striations, deep tissue
        a[z < 0.6] = 1.6
        fat_line = wavy(self.fat, 0.4, rng.uniform(15, 30), rng.uniform(0, 6))
        mus_line = wavy(self.muscle, 0.5, rng.uniform(18, 35), rng.uniform(0, 6))
        deep_line = wavy(self.deep, 0.6, rng.uniform(20, 40), rng.uniform(0, 6))
        fat = (z >= 0.6) & (z < fat_line)
        lob = 0.35 + 0.25 * np.sin(x / 1.7 + rng.uniform(0, 6)) * np.sin(z / 0.9 + rng.uniform(0, 6))
        a[fat] = lob[fat]
        muscle = (z >= fat_line) & (z < mus_line)
        stri = 0.5 + 0.45 * (np.sin(2 * np.pi * (z - 0.08 * x) / rng.uniform(0.7, 1.1)) > 0.75)
        a[muscle] = stri[muscle]
        sheath = (z >= mus_line) & (z < deep_line)
        a[sheath] = (0.6 + 0.15 * np.sin(x / 2.3 + z / 3.1))[sheath]
        below = z >= deep_line
        a[below] = (0.9 + 0.4 * (np.sin(2 * np.pi * (z - 0.05 * x) / 1.3) > 0.6))[below]
        # fascia: thin bright layers at the borders, and one inside the sheath
        for line, thick, gain in ((fat_line, 0.35, 2.6), (mus_line, 0.45, 3.0),
                                  (deep_line, 0.6, 3.2),
                                  (wavy(self.deep - rng.uniform(3, 5), 0.3, 25, 1.0), 0.25, 1.8)):
            a = np.where(np.abs(z - line) < thick / 2, gain, a)
        # vessel walls, then lumens (no scatterers)
        v, r = self.vein, self.artery
        rho_v = np.hypot((x - v["x"]) / v["a"], (z - v["z"]) / v["b"])
        rho_a = np.hypot(x - r["x"], z - r["z"]) / r["r"]
        a = np.where((rho_v >= 1) & (rho_v < 1 + 0.3 / v["b"]), 2.2, a)
        a = np.where((rho_a >= 1) & (rho_a < 1 + 0.7 / r["r"]), 3.0, a)
        a = np.where((rho_v < 1) | (rho_a < 1), 0.0, a)
        return a

    # ---------------------------------------------------------------- motion
    def travel(self, t):
        """Probe travel D(t) (mm)."""
        d = 0.0
        for c in self.compressions:
            u = t - c["start"]
            up = smoothstep(u / c["press"])
            down = smoothstep((u - c["press"] - c["hold"]) / c["release"])
            d = d + c["peak"] * up * (1 - down)
        return float(d)

    def state(self, frame):
        t = frame / FPS
        dtr = self.travel(t)
        cv = self.c_max * min(1.0, dtr / self.d_close) ** 1.5
        p = self.artery["pulse"]
        hp = self.heart_bpm / 60.0
        pul = p * (pulse_waveform(t * hp + self.heart_phase) - pulse_waveform(self.heart_phase))
        drift = self.drift_mm * math.sin(math.pi * t / self.drift_period) ** 2 * (
            1 if frame else 0)
        beta = self.poisson * dtr / self.deep * 0.5
        return dict(t=t, travel=dtr, cv=float(cv), pulse=float(pul), drift=drift,
                    beta=beta, shear=self.shear * dtr / max(1e-9, self.d_close))

    # pulsation: radial map about the artery centre, r -> r (1 + d) inside, fading at 2R
    def _pulse_fwd(self, x, z, d):
        a = self.artery
        dx, dz = x - a["x"], z - a["z"]
        rr = np.hypot(dx, dz)
        R = a["r"]
        new = np.where(rr <= R, rr * (1 + d), np.where(rr < 2 * R, rr + d * (2 * R - rr), rr))
        s = np.where(rr > 1e-12, new / np.maximum(rr, 1e-12), 1 + d)
        return a["x"] + dx * s, a["z"] + dz * s

    def _pulse_bwd(self, x, z, d):
        a = self.artery
        dx, dz = x - a["x"], z - a["z"]
        rr = np.hypot(dx, dz)
        R = a["r"]
        old = np.where(rr <= R * (1 + d), rr / (1 + d),
                       np.where(rr < 2 * R, (rr - 2 * d * R) / (1 - d), rr))
        s = np.where(rr > 1e-12, old / np.maximum(rr, 1e-12), 1 / (1 + d))
        return a["x"] + dx * s, a["z"] + dz * s

    def _chords(self, x, st):
        """Vein and artery chords [top, bottom] per column x (intermediate coordinates)."""
        v, a = self.vein, self.artery
        hv = v["b"] * np.sqrt(np.clip(1 - ((x - v["x"]) / v["a"]) ** 2, 0, None))
        ra = a["r"] * (1 + st["pulse"])
        ha = np.sqrt(np.clip(ra ** 2 - (x - a["x"]) ** 2, 0, None))
        return (v["z"] - hv, v["z"] + hv), (a["z"] - ha, a["z"] + ha)

    def _w_int(self, lo, hi):
        """Integral of exp(-z / lambda) over [lo, hi] (0 where hi <= lo)."""
        lam = self.lam
        return np.where(hi > lo, lam * (np.exp(-lo / lam) - np.exp(-np.maximum(hi, lo) / lam)), 0.0)

    def _uplift(self, x, z, st):
        """U(x, z): upward displacement (mm) of depth z in column x."""
        (vt, vb), (at, ab) = self._chords(x, st)
        zd = self.deep
        cv = st["cv"]
        tissue_total = self._w_int(0.0, zd) - self._w_int(vt, vb) - self._w_int(at, ab)
        k = (st["travel"] - cv * (vb - vt)) / tissue_total
        zc = np.minimum(z, zd)
        tissue = (self._w_int(0.0, zc) - self._w_int(vt, np.minimum(vb, zc))
                  - self._w_int(at, np.minimum(ab, zc)))
        return k * tissue + cv * np.clip(np.minimum(vb, zc) - vt, 0, None)

    def forward(self, x, z, frame):
        """Rest tissue (mm) -> position in frame `frame` (mm)."""
        st = self.state(frame)
        x1, z1 = self._pulse_fwd(x, z, st["pulse"])
        z2 = z1 - self._uplift(x1, z1, st)
        ex = np.exp(-z2 / self.lam)
        x3 = x1 * (1 + st["beta"] * ex) + st["drift"] + st["shear"] * z2
        return x3, z2

    def backward(self, x, z, frame):
        """Position in frame `frame` (mm) -> rest tissue (mm): the exact inverse of forward."""
        st = self.state(frame)
        ex = np.exp(-z / self.lam)
        x1 = (x - st["drift"] - st["shear"] * z) / (1 + st["beta"] * ex)
        # z = z1 - U(x1, z1) is increasing in z1: bisection
        lo = np.full(z.shape, -5.0)
        hi = np.full(z.shape, 60.0)
        for _ in range(48):
            mid = 0.5 * (lo + hi)
            f = mid - self._uplift(x1, mid, st)
            big = f > z
            hi = np.where(big, mid, hi)
            lo = np.where(big, lo, mid)
        z1 = 0.5 * (lo + hi)
        return self._pulse_bwd(x1, z1, st["pulse"])

    def labels_at_rest(self, x, z):
        v, a = self.vein, self.artery
        lab = np.zeros(x.shape, np.uint8)
        lab[np.hypot((x - v["x"]) / v["a"], (z - v["z"]) / v["b"]) < 1] = 1
        lab[np.hypot(x - a["x"], z - a["z"]) < a["r"]] = 2
        return lab

    def meta(self):
        return {"vein": self.vein, "artery": self.artery, "fat_mm": self.fat,
                "muscle_mm": self.muscle, "deep_boundary_mm": self.deep,
                "strain_decay_mm": self.lam, "heart_rate_bpm": self.heart_bpm,
                "closing": self.closing, "vein_max_collapse": self.c_max,
                "vein_close_travel_mm": self.d_close, "compressions": self.compressions,
                "lateral_drift_mm": self.drift_mm, "drift_period_s": self.drift_period,
                "poisson": self.poisson, "shear": self.shear,
                "scatterers": int(len(self.rc)), "density_per_mm2": self.density}


# --------------------------------------------------------------------------------------------
# Imaging


def pixel_centres():
    xs = -X_HALF + (np.arange(WIDTH) + 0.5) * PX_MM
    zs = Z0_MM + (np.arange(HEIGHT) + 0.5) * PX_MM
    return np.meshgrid(xs, zs)


class Imager:
    """Fixed transmit, frequency plan and DAS matrix (the same for every frame and sequence)."""

    def __init__(self):
        self.param = probe_param()
        self.delays = pymust.txdelay(self.param, 0)
        ne = self.param.Nelements
        xe = (np.arange(ne) - (ne - 1) / 2) * self.param.pitch
        far = max(abs(SIM_X * 1e-3 - xe[0]), abs(SIM_X * 1e-3 + xe[0]))
        self.plan = freq_plan(self.param, math.hypot(far, SIM_Z[1] * 1e-3), -60.0, 2.0,
                              self.delays)
        nt = self.plan["keep"]
        # beamforming grid: twice as fine as the frame, averaged 2x2 afterwards
        fx = -X_HALF + (np.arange(2 * WIDTH) + 0.5) * PX_MM / 2
        fz = Z0_MM + (np.arange(2 * HEIGHT) + 0.5) * PX_MM / 2
        self.gx, self.gz = np.meshgrid(fx * 1e-3, fz * 1e-3)
        bf = self.param.copy()
        bf.fnumber = F_NUMBER
        das = pymust.dasmtx(1j * np.array([nt, ne]), self.gx, self.gz, self.delays, bf).tocoo()
        # receive apodization: a Hann window over each pixel's aperture (pymust's DAS matrix is
        # unweighted); it lowers the lateral side lobes that fill the lumens
        px, pz = self.gx.flatten(order="F"), self.gz.flatten(order="F")
        u = (xe[das.col // nt] - px[das.row]) / (pz[das.row] / F_NUMBER / 2)
        w = np.cos(np.pi / 2 * np.clip(u, -1, 1)) ** 2
        self.das = scipy.sparse.csr_matrix((das.data * w, (das.row, das.col)), shape=das.shape)
        # depth gain compensating the attenuation at the centre frequency (round trip, x0.8 for
        # the downshift of the spectrum with depth)
        zc = fz / 10.0
        self.tgc = 10 ** (0.8 * 2 * ATTENUATION * self.param.fc / 1e6 * zc / 20)

    def envelope(self, seq, frame):
        x, z = seq.forward(seq.sx, seq.sz, frame)
        inside = (np.abs(x) <= SIM_X) & (z >= SIM_Z[0]) & (z <= SIM_Z[1])
        rf = simus_rf(x[inside] * 1e-3, z[inside] * 1e-3, seq.rc[inside], self.delays,
                      self.param, self.plan)
        iq = pymust.rf2iq(rf, self.param)
        bf = (self.das @ iq.flatten(order="F")).reshape(self.gx.shape, order="F")
        env = np.abs(bf) * self.tgc[:, None]
        env = env.reshape(HEIGHT, 2, WIDTH, 2).mean(axis=(1, 3))
        return env.astype(np.float32), int(inside.sum())


def to_bmode(env, ref_level):
    db = 20 * np.log10(np.maximum(env, 1e-30) / ref_level)
    return np.clip(np.round((db + DYN_RANGE_DB) / DYN_RANGE_DB * 255), 0, 255).astype(np.uint8)


def truth(seq, frame):
    """Labels and backward flow to frame 0 (pixels) at the frame's pixel centres."""
    gx, gz = pixel_centres()
    if frame == 0:
        rx, rz = gx, gz
    else:
        rx, rz = seq.backward(gx, gz, frame)
    labels = seq.labels_at_rest(rx, rz)
    flow = np.stack([(rx - gx) / PX_MM, (rz - gz) / PX_MM], axis=-1).astype(np.float32)
    return labels, flow


def write_flo(path, flow):
    h, w = flow.shape[:2]
    with open(path, "wb") as fh:
        np.array([202021.25], "<f4").tofile(fh)
        np.array([w, h], "<i4").tofile(fh)
        flow.astype("<f4").tofile(fh)


# --------------------------------------------------------------------------------------------
# Dataset writer


_IMAGER = None
_SEQS = {}


def _imager():
    global _IMAGER
    if _IMAGER is None:
        _IMAGER = Imager()
    return _IMAGER


def _sequence(spec):
    key = (spec["seed"], spec["index"])
    if key not in _SEQS:
        _SEQS.clear()
        _SEQS[key] = Sequence(spec["seed"], spec["index"], spec["frames"], spec["density"],
                              spec["closing"])
    return _SEQS[key]


def render_frame(job):
    spec, frame, ref_level = job
    t0 = time.perf_counter()
    seq = _sequence(spec)
    env, n = _imager().envelope(seq, frame)
    if ref_level is None:
        # the sequence's fixed display level: frame 0's 99th percentile
        ref_level = float(np.percentile(env, 99.0))
    img = to_bmode(env, ref_level)
    labels, flow = truth(seq, frame)
    d = spec["dir"]
    name = f"{frame:06d}.png"
    cv2.imwrite(os.path.join(d, "frames", name), img)
    cv2.imwrite(os.path.join(d, "masks", name), labels)
    write_flo(os.path.join(d, "flow", f"{frame:06d}.flo"), flow)
    return spec["name"], frame, ref_level, n, time.perf_counter() - t0, int((labels == 1).sum())


def sequence_specs(args):
    specs = []
    kinds = [("simus", args.sequences, args.frames), ("simus-long", args.long_sequences,
                                                      args.long_frames)]
    index = 0
    for prefix, count, frames in kinds:
        for i in range(count):
            name = f"{prefix}-{i:04d}"
            specs.append(dict(name=name, index=index, seed=args.seed, frames=frames,
                              density=args.density,
                              # alternate closing / non-closing veins; long clips close
                              closing=(prefix == "simus-long") or (i % 2 == 0),
                              dir=os.path.join(args.out or ".", name)))
            index += 1
    return specs


def write_meta(spec, seq, ref_level, timing, vein_area):
    imager = _imager()
    p = imager.param
    meta = {
        "source": "simus",
        "generator": f"models/train/simus.py v{VERSION}",
        "simulator": f"SIMUS 2-D (pymust {getattr(pymust, '__version__', '0.1.9')} formulas, numba "
                     "kernel), one 0-degree plane wave per frame, DAS (pymust.dasmtx), envelope, "
                     f"log compression {DYN_RANGE_DB:.0f} dB",
        "sequence": spec["name"],
        "seed": spec["seed"],
        "index": spec["index"],
        "frames": spec["frames"],
        "width": WIDTH,
        "height": HEIGHT,
        "pixel_spacing_mm": [PX_MM, PX_MM],
        "top_depth_mm": Z0_MM,
        "frame_rate": FPS,
        "labels": {"1": "vein", "2": "artery"},
        "flow": "backward to frame 0: p + flow(p) is where p was in the first frame",
        "probe": {"name": PROBE, "fc_hz": p.fc, "pitch_m": p.pitch, "elements": int(p.Nelements),
                  "bandwidth_pct": p.bandwidth, "fs_hz": p.fs, "attenuation_db_cm_mhz": ATTENUATION,
                  "transmit": "plane wave 0 deg", "frequencies": int(len(imager.plan["f"]))},
        "display_reference_level": ref_level,
        "phantom": seq.meta(),
        "vein_area_px": vein_area,
        "seconds_per_frame": timing,
    }
    with open(os.path.join(spec["dir"], "meta.json"), "w") as fh:
        json.dump(meta, fh, indent=1, default=float)


def generate(args):
    specs = sequence_specs(args)
    for spec in specs:
        for sub in ("frames", "masks", "flow"):
            os.makedirs(os.path.join(spec["dir"], sub), exist_ok=True)
    t_start = time.perf_counter()
    total = sum(s["frames"] for s in specs)
    done = 0
    pool = None
    if args.workers > 1:
        import multiprocessing as mp
        pool = mp.get_context("fork").Pool(args.workers)
    _imager()
    print(f"simus.py: {len(specs)} sequences, {total} frames, seed {args.seed}, "
          f"{len(_imager().plan['f'])} frequencies, workers {args.workers}", flush=True)

    def report(name, frame, n, sec):
        nonlocal done
        done += 1
        el = time.perf_counter() - t_start
        eta = el / done * (total - done)
        print(f"[{done}/{total}] {name} frame {frame}: {n} scatterers, {sec:.2f} s "
              f"(elapsed {el / 60:.1f} min, eta {eta / 60:.1f} min)", flush=True)

    # frame 0 of every sequence first: it fixes the sequence's display level
    jobs0 = [(s, 0, None) for s in specs]
    res0 = pool.map(render_frame, jobs0) if pool else [render_frame(j) for j in jobs0]
    levels, timing, areas = {}, {}, {}
    for (name, frame, lvl, n, sec, area) in res0:
        levels[name] = lvl
        timing.setdefault(name, []).append(sec)
        areas.setdefault(name, {})[frame] = area
        report(name, frame, n, sec)
    jobs = [(s, f, levels[s["name"]]) for s in specs for f in range(1, s["frames"])]
    it = pool.imap(render_frame, jobs, chunksize=1) if pool else map(render_frame, jobs)
    for (name, frame, _, n, sec, area) in it:
        timing[name].append(sec)
        areas[name][frame] = area
        report(name, frame, n, sec)
    if pool:
        pool.close()
        pool.join()
    for spec in specs:
        seq = Sequence(spec["seed"], spec["index"], spec["frames"], spec["density"],
                       spec["closing"])
        a = areas[spec["name"]]
        write_meta(spec, seq, levels[spec["name"]],
                   {"mean": float(np.mean(timing[spec["name"]])),
                    "max": float(np.max(timing[spec["name"]]))},
                   [a[f] for f in sorted(a)])
    wall = time.perf_counter() - t_start
    summary = {"out": args.out, "seed": args.seed, "sequences": len(specs), "frames": total,
               "workers": args.workers, "wall_seconds": wall,
               "command": " ".join(sys.argv)}
    with open(os.path.join(args.out, "generation.json"), "w") as fh:
        json.dump(summary, fh, indent=1)
    print(json.dumps(summary), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="dataset directory to write")
    p.add_argument("--sequences", type=int, default=4)
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--long-sequences", type=int, default=1, help="long clips (drift check)")
    p.add_argument("--long-frames", type=int, default=600)
    p.add_argument("--seed", type=int, default=2027)
    p.add_argument("--density", type=float, default=12.0, help="scatterers per mm^2")
    p.add_argument("--workers", type=int, default=1, help="processes (one frame each at a time)")
    p.add_argument("--check", action="store_true",
                   help="compare the SIMUS kernel with pymust.simus and exit")
    p.add_argument("--time-only", type=int, metavar="N",
                   help="render N frames of sequence 0 without writing, print seconds per frame")
    args = p.parse_args()
    if args.check:
        print(json.dumps(check_against_pymust(), indent=1))
        return
    if args.time_only:
        spec = sequence_specs(args)[0]
        seq = _sequence(spec)
        im = _imager()
        im.envelope(seq, 0)  # compile
        for f in range(args.time_only):
            t0 = time.perf_counter()
            _, n = im.envelope(seq, f * 7)
            t1 = time.perf_counter()
            truth(seq, f * 7)
            print(f"frame {f * 7}: {n} scatterers, image {t1 - t0:.2f} s, "
                  f"truth {time.perf_counter() - t1:.2f} s", flush=True)
        return
    if not args.out:
        p.error("--out is required")
    generate(args)


if __name__ == "__main__":
    main()
