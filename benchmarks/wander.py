"""Does the reader follow a trace that wanders off its row? (issue #15, items 2 and 5)

Our renderer draws records band-passed from 0.5 Hz; ecg-image-kit draws PTB-XL as stored,
where a lead may start 2 mV off its row and drift back. This draws the same val-split pages
(fold 8) twice — as our renderer draws them, and with a baseline wander added to every lead
(``trainer.data.baseline_wander``) — and reads each at its true geometry (so the page reader
plays no part) with every model given, each with and without re-reading wandering windows
along their path (``digitize.reconstruct.RECENTRE``). Per-record pooled SNR (DESIGN.md §5).

    ECG_DATA_DIR=../shared/data python benchmarks/wander.py [--model A.onnx ...] [--pages 48]
"""
from __future__ import annotations

import argparse
import platform

import cv2
import numpy as np

from digitize.engine import Engine, default_model_path
from digitize.metrics import score_record
from digitize.reconstruct import reconstruct
from trainer.data import baseline_wander, default_ptbxl_dir, prepared_signal, records_for_split
from trainer.evaluate import page_windows
from trainer.render import render_page, sample_spec

LAYOUTS = ("3x4+1", "6x2", "3x4", "3x4+3", "6x1", "12x1")
STYLES = ("clean", "scan", "photo")


def drawn_page(ptbxl: str, records: list, i: int, wandering: bool):
    """Val page ``i`` of this benchmark (its record, layout and style cycle through the
    records, LAYOUTS and STYLES), drawn plain or with a baseline wander added to every lead:
    (record info, layout, style, fs, rendered page)."""
    info = records[i % len(records)]
    sig, fs = prepared_signal(ptbxl, info)
    layout, style = LAYOUTS[i % len(LAYOUTS)], STYLES[(i // len(LAYOUTS)) % len(STYLES)]
    if wandering:
        sig = sig + baseline_wander(np.random.default_rng([11, i]), len(sig), fs,
                                    sig.shape[1], base=sig)
    spec = sample_spec(np.random.default_rng([7, i]), layout, style)
    return info, layout, style, fs, render_page(sig.astype(np.float32), fs, spec, header_seed=i)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", help="ONNX model (repeat; default: shipped)")
    ap.add_argument("--pages", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    models = args.model or [str(default_model_path())]
    engines = [Engine(m, device="cpu", threads=args.threads) for m in models]
    ptbxl = str(default_ptbxl_dir())
    records = records_for_split(ptbxl, "val")
    print(f"machine: {platform.machine()}; {args.pages} val pages (fold 8) at their true "
          f"geometry, layouts {', '.join(LAYOUTS)} x styles {', '.join(STYLES)}; record SNR dB")
    cols = []
    for k, (m, e) in enumerate(zip(models, engines)):
        print(f"model {k}: {m} ({e.version}, sha256 {e.sha256[:12]})")
        cols += [(k, e, rc) for rc in (False, True)]
    head = "  ".join(f"m{k} {'re-read' if rc else 'as read'}" for k, _, rc in cols)
    print(f"{'record layout style':22s} page     {head}")
    rows = []
    for i in range(args.pages):
        for kind in ("plain", "wander"):
            info, layout, style, fs, page = drawn_page(ptbxl, records, i, kind == "wander")
            grey = cv2.cvtColor(page.image, cv2.COLOR_BGR2GRAY)
            snr = [score_record(page.truth, reconstruct(grey, page_windows(page.meta), e, fs,
                                                        len(page.truth), recentre=rc)[0],
                                         fs)[0]
                   for _, e, rc in cols]
            rows.append((kind, snr))
            print(f"{info.ecg_id:05d} {layout:5s} {style:5s}  {kind:7s}  "
                  + "  ".join(f"{v:12.2f}" for v in snr), flush=True)
    print("mean (median) record SNR, dB:")
    for kind in ("plain", "wander"):
        a = np.array([r for k, r in rows if k == kind])
        print(f"  {kind:7s} " + "  ".join(
            f"m{k} {'re-read' if rc else 'as read'} {a[:, j].mean():6.2f} "
            f"({np.median(a[:, j]):6.2f})" for j, (k, _, rc) in enumerate(cols)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
