"""Strips/s of the same model in PyTorch (inference_mode, 2 threads) vs ONNX Runtime (2
threads), same batch sizes, same process, same inputs.

    python benchmarks/onnx_vs_torch.py --checkpoint runs/column/best.pt --model exported/model.onnx
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from digitize.engine import Engine
from trainer.export import _parity_inputs
from trainer.model import ExportWrapper
from trainer.train import load_checkpoint


def rate(fn, x: np.ndarray, seconds: float = 4.0) -> float:
    fn(x)  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn(x)
        n += len(x)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="runs/column/best.pt")
    ap.add_argument("--model", default="exported/model.onnx")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model, spec, _, _ = load_checkpoint(args.checkpoint)
    wrapper = ExportWrapper(model).eval()
    eng = Engine(args.model, device="cpu", threads=2)
    sess = eng.session

    def run_torch(x):
        with torch.inference_mode():
            return wrapper(torch.from_numpy(x))

    def run_ort(x):
        return sess.run(None, {eng.input_name: x})

    print(f"machine: {platform.machine()} {os.cpu_count()} cores; torch {torch.__version__} "
          f"(2 threads, inference_mode) vs onnxruntime {eng.session.get_providers()[0]} "
          f"(2 threads); model {eng.version}")
    print(f"{'strip':>14s} {'batch':>5s} {'torch/s':>8s} {'ORT/s':>8s} {'ORT/torch':>9s}")
    for width, label in ((250, "3x4 cell 250"), (1000, "10 s 1000")):
        for batch in (1, 8, 32):
            x = _parity_inputs(spec, batch, width, seed=batch)
            t, o = rate(run_torch, x), rate(run_ort, x)
            print(f"{label:>14s} {batch:5d} {t:8.1f} {o:8.1f} {o / t:9.2f}x")


if __name__ == "__main__":
    main()
