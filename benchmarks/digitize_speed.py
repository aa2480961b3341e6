"""Throughput and peak memory of the `digitize` command on this machine's CPU.

200-dpi clean 3x4 pages and seed-format strips from the test split, rendered once; then the
command runs as a user runs it (subprocess, shipped model, --device cpu) over 20 and over N
pages, so the peak RSS shows whether memory grows with the number of inputs.

``--large``: two 12000 x 9000 px JPEGs (a 200-dpi page enlarged: a phone or a 1000-dpi scanner
would give such files), converted at the default workers: time and peak RSS of a run over
large inputs (they are read at ``digitize.io.MAX_WORK_PIXELS``).

    ECG_DATA_DIR=../shared/data python benchmarks/digitize_speed.py --many 100
    ECG_DATA_DIR=../shared/data python benchmarks/digitize_speed.py --large --layouts ""
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from trainer.data import default_ptbxl_dir, prepared_signal, records_for_split  # noqa: E402
from trainer.render import render_page, sample_spec, write_page  # noqa: E402


def render(out: Path, layout: str, n: int, ptbxl: str, dpi: float = 200.0) -> None:
    recs = records_for_split(ptbxl, "test")
    for i in range(n):
        info = recs[i % len(recs)]
        sig, fs = prepared_signal(ptbxl, info)
        pins = dict(dpi=dpi) if layout == "strip" else dict(dpi=dpi, speed=25.0)
        spec = sample_spec(np.random.default_rng(i), layout, "clean", **pins)
        write_page(render_page(sig, fs, spec, header_seed=i), out, f"p{i:04d}")


def timed_run(pages: Path, out: Path, extra: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of one digitize subprocess."""
    code = ("import resource, sys, runpy; sys.argv = ['digitize'] + sys.argv[1:]\n"
            "try:\n    runpy.run_module('digitize', run_name='__main__')\n"
            "except SystemExit as e:\n    code = e.code\n"
            "print('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n")
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code, str(pages), "--out", str(out), "--device",
                        "cpu", "--overwrite", "-q"] + extra, cwd=REPO, capture_output=True,
                       text=True)
    dt = time.perf_counter() - t
    rss = [int(x.split()[1]) for x in r.stdout.splitlines() if x.startswith("RSS")]
    return dt, (rss[0] / 1024 if rss else float("nan"))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--few", type=int, default=20)
    ap.add_argument("--many", type=int, default=100)
    ap.add_argument("--out", default="runs/speed")
    ap.add_argument("--digitize-args", default="", help="extra digitize options")
    ap.add_argument("--layouts", default="3x4,strip")
    ap.add_argument("--large", action="store_true", help="also two 12000x9000 JPEGs")
    ap.add_argument("--dpi", type=float, default=200.0,
                    help="the pages' resolution (at 254 dpi and up digitize reads each window "
                    "twice: digitize.reconstruct.FINE_PX_PER_MM)")
    args = ap.parse_args()
    ptbxl = str(default_ptbxl_dir())
    out = Path(args.out)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}")
    from digitize.printed import available
    print(f"digitize options: {args.digitize_args or '(defaults)'}; printed-gain OCR "
          f"{'installed' if available() else 'not installed'}")
    for layout in filter(None, args.layouts.split(",")):
        for n in (args.few, args.many):
            tag = "" if args.dpi == 200.0 else f"-{args.dpi:g}dpi"
            pages = out / f"{layout}-{n}{tag}"
            if not pages.is_dir():
                render(pages, layout, n, ptbxl, args.dpi)
            dt, rss = timed_run(pages, out / f"rec-{layout}-{n}{tag}", args.digitize_args.split())
            print(f"{layout:6s} {args.dpi:3g} dpi x {n:4d} pages: {dt:6.1f} s  "
                  f"{n / dt:5.2f} pages/s  "
                  f"peak RSS {rss:6.0f} MiB  (incl. start-up and model load)")
    if args.large:
        large(out, ptbxl, args.digitize_args.split())
    return 0


def large(out: Path, ptbxl: str, extra: list[str]) -> None:
    import cv2
    pages = out / "large"
    if not pages.is_dir():
        small = out / "large-src"
        render(small, "3x4", 2, ptbxl)
        pages.mkdir(parents=True)
        for p in sorted(small.glob("*.png")):
            img = cv2.resize(cv2.imread(str(p)), (12000, 9000), interpolation=cv2.INTER_CUBIC)
            cv2.imwrite(str(pages / f"{p.stem}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    sizes = [p.stat().st_size / 2**20 for p in sorted(pages.glob("*.jpg"))]
    dt, rss = timed_run(pages, out / "rec-large", extra)
    print(f"large  12000x9000 JPEG x 2 ({', '.join(f'{s:.1f}' for s in sizes)} MiB): "
          f"{dt:6.1f} s  peak RSS {rss:6.0f} MiB  (default workers; incl. start-up and model "
          "load)")


if __name__ == "__main__":
    sys.exit(main())
