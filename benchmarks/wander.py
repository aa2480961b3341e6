"""Does the model follow a trace that wanders off its row? (issue #15, items 2 and 5)

Our renderer draws records band-passed from 0.5 Hz; ecg-image-kit draws PTB-XL as stored,
where a lead may start 2 mV off its row and drift back. This draws the same val-split pages
(fold 8) twice — as our renderer draws them, and with a baseline wander added to every lead
(``trainer.data.baseline_wander``) — cuts each lead's strip at the page's true geometry, and
scores every model given on both: per-page pooled SNR over the strips' columns (mean removed
per strip, as DESIGN.md §5 removes a lead's offset), so the page reader plays no part.

    ECG_DATA_DIR=../shared/data python benchmarks/wander.py --model A.onnx --model B.onnx \\
        [--pages 48]
"""
from __future__ import annotations

import argparse
import platform

import numpy as np

from digitize.engine import Engine, default_model_path
from trainer.data import baseline_wander, default_ptbxl_dir, prepared_signal, records_for_split
from trainer.dataset import page_strips
from trainer.render import render_page, sample_spec

LAYOUTS = ("3x4+1", "6x2", "3x4", "3x4+3", "6x1", "12x1")
STYLES = ("clean", "scan", "photo")


def pages(n: int, ptbxl: str):
    """(name, [plain strips, wandering strips]) for the first ``n`` val pages."""
    records = records_for_split(ptbxl, "val")
    for i in range(n):
        info = records[i % len(records)]
        sig, fs = prepared_signal(ptbxl, info)
        ecg_id = info.ecg_id
        layout, style = LAYOUTS[i % len(LAYOUTS)], STYLES[(i // len(LAYOUTS)) % len(STYLES)]
        wander = baseline_wander(np.random.default_rng([11, i]), len(sig), fs, sig.shape[1],
                                 base=sig)
        cuts = []
        for s in (sig, sig + wander):
            spec = sample_spec(np.random.default_rng([7, i]), layout, style)
            cuts.append((render_page(s, fs, spec, header_seed=i), s, fs))
        yield f"{ecg_id:05d} {layout:5s} {style:5s}", cuts


def page_snr(engine: Engine, page, sig, fs) -> float:
    strips = page_strips(page, sig, fs, engine.spec)
    out = engine.run([s.x for s in strips])
    sp = npow = 0.0
    for s, (value, _) in zip(strips, out):
        t = s.target_mm - s.target_mm.mean()
        e = value - s.target_mm
        sp += float(np.dot(t, t))
        npow += float(np.sum((e - e.mean()) ** 2))
    return 10 * np.log10(sp / npow)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", help="ONNX model (repeat; default: shipped)")
    ap.add_argument("--pages", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    models = args.model or [str(default_model_path())]
    engines = [Engine(m, device="cpu", threads=args.threads) for m in models]
    ptbxl = str(default_ptbxl_dir())
    print(f"machine: {platform.machine()}, val pages (fold 8) at their true geometry; "
          f"SNR over strip columns, dB")
    for k, (m, e) in enumerate(zip(models, engines)):
        print(f"model {k}: {m} ({e.version}, sha256 {e.sha256[:12]})")
    rows = []
    for name, cuts in pages(args.pages, ptbxl):
        r = [page_snr(e, *c) for e in engines for c in cuts]
        rows.append(r)
        print(f"  {name}  " + "  ".join(f"m{k} plain {r[2 * k]:6.2f} wander {r[2 * k + 1]:6.2f}"
                                        for k in range(len(engines))), flush=True)
    a = np.array(rows)
    print(f"{len(a)} pages; mean (median) SNR:")
    for k in range(len(engines)):
        print(f"  model {k}: plain {a[:, 2 * k].mean():6.2f} ({np.median(a[:, 2 * k]):6.2f})"
              f"   wander {a[:, 2 * k + 1].mean():6.2f} ({np.median(a[:, 2 * k + 1]):6.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
