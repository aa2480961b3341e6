"""Old vs new strip post-processing on the VALIDATION split (why columns are interpolated with a
cubic spline and centred on sample instants). Run: python benchmarks/postprocess_val.py"""
import numpy as np
import digitize.strips as S
import digitize.reconstruct as R
from dataclasses import replace
from digitize.engine import Engine
from trainer.data import default_ptbxl_dir
from trainer.evaluate import evaluate_case, summarise
new_cut, new_times, new_c2s = S.cut_strip, S.column_times, S.columns_to_signal
def old_times(n, t0, speed, kx): return t0 + (np.arange(n) + 0.5) / kx / speed
def old_cut(grey, geom, spec): return new_cut(grey, replace(geom, x0_mm=geom.x0_mm + 0.5 / spec.px_per_mm_x), spec)
def old_c2s(v, g, tc, fs, t0, t1):
    n0 = int(np.ceil(t0 * fs - 1e-9)); n1 = int(np.ceil(t1 * fs - 1e-9)); idx = np.arange(n0, n1)
    return idx, np.interp(idx / fs, tc, np.asarray(v, np.float64) / g).astype(np.float32)
e = Engine('exported/model.onnx', device='cpu', threads=2)
for name, (cut, times, c2s) in {"old: linear, centre phase": (old_cut, old_times, old_c2s),
                                "new: spline, sample phase": (new_cut, new_times, new_c2s)}.items():
    R.cut_strip, R.column_times, R.columns_to_signal = cut, times, c2s
    for case, (lay, sty, hr) in {"seed-strip": ("strip", "clean", False), "clean 3x4+1": ("3x4+1", "clean", True)}.items():
        s = summarise(evaluate_case(e, str(default_ptbxl_dir()), lay, sty, hr, split='val'))
        print(f"val {case:12s} {name}: record SNR mean {s['record_snr_db']['mean']:.2f} dB (n={s['n_records']})")
