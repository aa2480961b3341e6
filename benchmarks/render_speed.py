"""Renderer speed: pages/s for a 200-dpi letter 3×4+1 page, clean and fully distorted.

One process, file writing included (image + WFDB ground truth + JSON sidecar), test-split
records. Targets (issue #2): ≥ 10 pages/s clean, ≥ 2 pages/s fully distorted; ecg-image-kit,
the leading generator, takes 0.72 s and 7.75 s per page (Apple M2).

    python benchmarks/render_speed.py [--pages 40] [--data DIR]
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import cv2
import numpy as np

from trainer.data import bandpass, default_ptbxl_dir, load_record, records_for_split
from trainer.render import render_page, sample_spec, write_page


def full_distortions(spec):
    """Switch every effect on, at mid strength."""
    d = spec.distortions
    d.tint, d.wrinkles, d.creases, d.stains, d.handwriting = (0.9, 0.95, 1.0), 0.05, 2, 2, 3
    d.rotation_deg, d.perspective, d.page_scale = 2.0, 0.03, 0.9
    d.lighting, d.shadow, d.blur_sigma, d.noise_sigma, d.jpeg_quality = 0.4, 0.3, 1.0, 5.0, 80
    return spec


def run(kind: str, signals, n_pages: int, out: str) -> float:
    t = time.perf_counter()
    for i in range(n_pages):
        sig, fs = signals[i % len(signals)]
        rng = np.random.default_rng(i)
        spec = sample_spec(rng, "3x4+1", "clean" if kind == "clean" else "photo",
                           dpi=200.0, paper="letter", grid="lines")
        if kind != "clean":
            full_distortions(spec)
        write_page(render_page(sig, fs, spec, header_seed=i), out, f"{kind}{i:04d}")
    return n_pages / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=40)
    ap.add_argument("--data", default=str(default_ptbxl_dir()))
    args = ap.parse_args()
    cv2.setNumThreads(1)  # one process, one core: the number a worker pool multiplies
    recs = records_for_split(args.data, "test")[:10]
    signals = []
    for r in recs:
        sig, fs = load_record(args.data, r)
        signals.append((bandpass(sig, fs), fs))
    print(f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, "
          f"python {platform.python_version()}, opencv {cv2.__version__}, 1 thread")
    print(f"page: letter 3x4+1 @ 200 dpi (2200x1700 px), {len(signals)} test records, "
          f"{args.pages} pages each, files written")
    with tempfile.TemporaryDirectory() as out:
        run("clean", signals, 3, out)  # warm-up
        clean = run("clean", signals, args.pages, out)
        dist = run("distorted", signals, args.pages, out)
    print(f"clean:           {clean:6.2f} pages/s  ({1000 / clean:6.1f} ms/page; target >= 10)")
    print(f"fully distorted: {dist:6.2f} pages/s  ({1000 / dist:6.1f} ms/page; target >= 2)")
    print(f"vs ecg-image-kit (0.72 s / 7.75 s per page, M2): "
          f"{0.72 * clean:.1f}x / {7.75 * dist:.1f}x faster")


if __name__ == "__main__":
    main()
