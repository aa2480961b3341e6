"""How much of what wander costs is the path? (issue #15, item 5)

The pages of benchmarks/wander.py (own val renders, fold 8, with a baseline wander added,
read at their true geometry), read twice: by ``digitize.reconstruct`` as it ships ('est'), and
with every wandering window (true slow path >= 3 mm off the centre line) cut again along its
*true* slow path and that second reading taken in full ('oracle'). The gap between the two is
what a better path could recover; the oracle's gap to the plain pages (benchmarks/wander.txt)
is what the trace model loses on a re-centred strip.

    ECG_DATA_DIR=../shared/data python benchmarks/wander_oracle.py [--pages 36]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

import digitize.reconstruct as R
from digitize.engine import Engine, default_model_path
from digitize.leads import LEADS
from digitize.metrics import score_record
from digitize.strips import column_times, cut_strip_along, follow_ink, slow_path
from trainer.data import default_ptbxl_dir, records_for_split
from trainer.evaluate import page_windows

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wander import drawn_page  # noqa: E402  (the same pages as benchmarks/wander.py)


def true_paths(truth: np.ndarray, fs: float):
    """A ``reconstruct._recentre`` stand-in that re-reads along the windows' true paths."""
    def recentre(grey, windows, strips, followed, engine, specs, batch_size):
        t = np.arange(truth.shape[0]) / fs
        redo = []
        for i, ((value, _, _), w, spec) in enumerate(zip(followed, windows, specs)):
            x = truth[:, LEADS.index(w.lead)]
            ok = np.isfinite(x)
            tc = column_times(len(value), w.t0, w.speed, spec.px_per_mm_x)
            mm = np.interp(tc, t[ok], x[ok]) * w.gain
            path = slow_path(mm, np.ones_like(mm), spec.px_per_mm_x * w.speed)
            if np.abs(path).max() >= R.RECENTRE.min_mm:
                redo.append((i, np.clip(path, -spec.height_mm / 2, spec.height_mm / 2)))
        out = list(followed)
        if not redo:
            return out
        again = [cut_strip_along(grey, windows[i].geom, specs[i], p) for i, p in redo]
        for (i, path), strip, (v2, c2) in zip(redo, again, engine.run(again, batch_size)):
            v2, _ = follow_ink(v2, strip, specs[i])
            out[i] = (np.asarray(v2, np.float32) + path, followed[i][1],
                      np.asarray(c2, np.float32))
        return out
    return recentre


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=36)
    args = ap.parse_args()
    engine = Engine(str(default_model_path()), device="cpu", threads=2)
    ptbxl = str(default_ptbxl_dir())
    records = records_for_split(ptbxl, "val")
    shipped = R._recentre
    est, orc = [], []
    for i in range(args.pages):
        info, layout, style, fs, page = drawn_page(ptbxl, records, i, wandering=True)
        grey = cv2.cvtColor(page.image, cv2.COLOR_BGR2GRAY)
        snr = []
        for stand_in in (shipped, true_paths(page.truth, fs)):
            R._recentre = stand_in
            try:
                got = R.reconstruct(grey, page_windows(page.meta), engine, fs,
                                    len(page.truth))[0]
            finally:
                R._recentre = shipped
            snr.append(score_record(page.truth, got, fs)[0])
        est.append(snr[0])
        orc.append(snr[1])
        print(f"{info.ecg_id:05d} {layout:5s} {style:5s} est {snr[0]:6.2f} oracle {snr[1]:6.2f}",
              flush=True)
    print(f"mean est {np.mean(est):.2f} oracle {np.mean(orc):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
