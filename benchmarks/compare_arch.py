"""`seed` vs the default `column` model: same data, same wall-clock budget, same machine, same
evaluation code, on seed-format strips (lead II, 250 × 60 mm, clean), test split, 100 Hz truth.

Both train on seed-format strips only (train split, rendered on the fly, all styles), one after
the other in this process, then are exported to ONNX and scored by trainer.evaluate.

    python benchmarks/compare_arch.py --minutes 10 [--limit N] [--out runs/compare]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path

import torch

from digitize.engine import Engine
from trainer.data import default_ptbxl_dir
from trainer.evaluate import evaluate_case, summarise
from trainer.export import export
from trainer.train import TrainConfig, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="training budget per model")
    ap.add_argument("--limit", type=int, default=None, help="first N test records")
    ap.add_argument("--out", default="runs/compare")
    ap.add_argument("--data", default=str(default_ptbxl_dir()))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("onnx_ir", "onnxscript", "torch.onnx", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    out = Path(args.out)
    results = {}
    for arch in ("seed", "column"):
        run = out / arch
        cfg = TrainConfig(arch=arch, out=str(run), data=args.data, max_minutes=args.minutes,
                          max_steps=100000, strip_layout_share=1.0, eval_every=100,
                          patience=1000, val_pages=16, workers=1, warmup_steps=100)
        t = time.time()
        info = train(cfg)
        train_s = time.time() - t
        onnx_path = run / "model.onnx"
        export(run / "best.pt", onnx_path)
        rows = evaluate_case(Engine(onnx_path, device="cpu", threads=2), args.data, "strip",
                             "clean", prefer_hr=False, limit=args.limit)
        s = summarise(rows)
        results[arch] = dict(steps=info["step"], strips_seen=info["step"] * cfg.batch_size,
                             train_minutes=round(train_s / 60, 1),
                             params=sum(p.numel() for p in torch.load(
                                 run / "best.pt", weights_only=False)["model"].values()),
                             snr_mean=s["record_snr_db"]["mean"],
                             snr_median=s["record_snr_db"]["median"],
                             pearson_mean=s["pearson"]["mean"],
                             share_r_ge_099=s["share_r_ge_0.99"], n=s["n_records"])
    lines = [f"machine: {platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, "
             f"budget {args.minutes:g} min per model, seed-format strips only",
             "test split, seed strips (lead II, clean, 100 Hz truth), through ONNX Runtime:",
             f"{'arch':8s} {'params':>9s} {'steps':>6s} {'strips':>7s} {'SNR mean':>9s} "
             f"{'median':>7s} {'r mean':>7s} {'r>=.99':>7s}"]
    for arch, r in results.items():
        lines.append(f"{arch:8s} {r['params']:9d} {r['steps']:6d} {r['strips_seen']:7d} "
                     f"{r['snr_mean']:9.2f} {r['snr_median']:7.2f} {r['pearson_mean']:7.4f} "
                     f"{r['share_r_ge_099']:7.1%}")
    lead = results["column"]["snr_mean"] - results["seed"]["snr_mean"]
    lines.append(f"column leads seed by {lead:+.2f} dB mean SNR (target: >= +5 dB)")
    print("\n".join(lines))
    (out / "compare_arch.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
