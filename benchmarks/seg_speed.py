"""Speed of the page segmentation net (issue #15's budget: <= 0.3 s per 200-dpi page on 2
cores) and how far two model files' stroke masks differ.

Each model file runs through digitize's own ``Segmenter`` (ONNX Runtime CPU provider) on the
given pages at each thread count: the median of ``--repeat`` timed calls per page (after one
untimed call), the mean over pages. With two files, the stroke masks of the second against
the first's (IoU per page).

    python benchmarks/seg_speed.py exported/seg.onnx runs/seg_fp32.onnx \\
        --pages "runs/eiky/eik/val/scan/*.jpg" --n 12 --dpi 200
"""
from __future__ import annotations

import argparse
import glob
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from digitize.segment import Segmenter  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="segmentation ONNX files")
    ap.add_argument("--pages", required=True, help="glob of page images")
    ap.add_argument("--n", type=int, default=12, help="pages taken (sorted by name)")
    ap.add_argument("--dpi", type=float, default=200.0, help="only pages at this resolution "
                    "(from a manifest.csv beside the pages' split folder, if any; else all)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    paths = sorted(glob.glob(args.pages))
    dpi = _dpis(paths)
    if dpi:
        paths = [p for p in paths if dpi.get(os.path.basename(p)) == args.dpi]
    paths = paths[:args.n]
    if not paths:
        print("no pages", file=sys.stderr)
        return 1
    k = args.dpi / 25.4
    pages = [cv2.imread(p) for p in paths]
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"{len(pages)} pages at {args.dpi:g} dpi ({pages[0].shape[1]} x {pages[0].shape[0]} px"
          f" first), {args.pages}")
    masks = {}
    for m in args.models:
        for t in (int(x) for x in args.threads.split(",")):
            seg = Segmenter(m, "cpu", t)
            per = []
            for img in pages:
                seg.stroke_mask(img, k)
                ts = []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    seg.stroke_mask(img, k)
                    ts.append(time.perf_counter() - t0)
                per.append(float(np.median(ts)))
            print(f"{m}  threads {t}: {np.mean(per):.3f} s per page "
                  f"(min {np.min(per):.3f}, max {np.max(per):.3f}); "
                  f"{os.path.getsize(m) / 1e6:.2f} MB")
        masks[m] = [seg.stroke_mask(img, k) > 0 for img in pages]
    if len(args.models) > 1:
        a, b = (masks[m] for m in args.models[:2])
        iou = [float((x & y).sum() / max((x | y).sum(), 1)) for x, y in zip(a, b)]
        print(f"stroke masks, {args.models[1]} against {args.models[0]}: IoU mean "
              f"{np.mean(iou):.4f}, min {np.min(iou):.4f}")
    return 0


def _dpis(paths: list[str]) -> dict[str, float]:
    """Page file name -> dpi, from the eik manifest two folders above the pages."""
    import csv
    out: dict[str, float] = {}
    for root in {Path(p).parents[2] for p in paths if len(Path(p).parents) > 2}:
        man = root / "manifest.csv"
        if man.is_file():
            with open(man) as fh:
                for row in csv.DictReader(fh):
                    out[os.path.basename(row["image"])] = float(row["dpi"])
    return out


if __name__ == "__main__":
    raise SystemExit(main())
