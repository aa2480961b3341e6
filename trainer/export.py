"""Export a checkpoint to ONNX with its input spec in the metadata, and prove parity.

``python -m trainer export --checkpoint runs/column/best.pt --out exported/model.onnx``
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from digitize.model_spec import (KEY_ARCH, KEY_OUTPUTS, KEY_SPEC, KEY_TRAINING, KEY_VERSION, OUTPUTS,
                                 StripSpec)
from trainer.model import ExportWrapper
from trainer.train import load_checkpoint

log = logging.getLogger(__name__)
OPSET = 18
PARITY_TOL = 1e-4


class ParityError(RuntimeError):
    pass


def _parity_inputs(spec: StripSpec, batch: int, width: int, seed: int) -> np.ndarray:
    """Realistic strips: a smooth trace on a faint background (random noise has argmax ties)."""
    rng = np.random.default_rng(seed)
    h = spec.height_px
    x = rng.normal(0, 0.05, (batch, 1, h, width)).astype(np.float32)
    cols = np.arange(width)
    for b in range(batch):
        y = h / 2 + 0.25 * h * np.sin(cols / rng.uniform(8, 40) + rng.uniform(0, 6))
        rows = np.clip(np.round(y).astype(int), 0, h - 1)
        x[b, 0, rows, cols] = 3.0
    return x


def check_parity(model: torch.nn.Module, onnx_path: Path, spec: StripSpec,
                 widths: tuple[int, ...]) -> float:
    """Max |ONNX Runtime − PyTorch| over batches 1 and 8 and the given widths (must be ≤ 1e-4)."""
    import onnxruntime as ort
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    wrapper = ExportWrapper(model).eval()
    worst = 0.0
    for batch in (1, 8):
        for width in widths:
            x = _parity_inputs(spec, batch, width, seed=batch * 1000 + width)
            with torch.inference_mode():
                ref = [t.numpy() for t in wrapper(torch.from_numpy(x))]
            got = sess.run(None, {spec.input_name: x})
            for r, g in zip(ref, got):
                if r.shape != g.shape:
                    raise ParityError(f"shape mismatch at batch {batch} width {width}: "
                                      f"{g.shape} vs {r.shape}")
                worst = max(worst, float(np.max(np.abs(r - g))))
    if worst > PARITY_TOL:
        raise ParityError(f"ONNX Runtime and PyTorch differ by {worst:.2e} > {PARITY_TOL:.0e}")
    return worst


def export(checkpoint: str | Path, out: str | Path, lineage: list[dict] | None = None) -> dict:
    """``lineage``: the training stages that made the weights this checkpoint started from
    (oldest first; each a dict such as steps, batch_size, machine, note), for the model card."""
    import onnx

    model, spec, cfg, ck = load_checkpoint(checkpoint)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    wrapper = ExportWrapper(model).eval()
    width = spec.fixed_width_px or 250
    x = torch.from_numpy(_parity_inputs(spec, 2, width, 0))
    tmp = out.with_suffix(".tmp.onnx")
    dynamic = None
    if spec.fixed_width_px is None:
        dynamic = {"x": {0: torch.export.Dim("batch", min=1, max=4096),
                         3: torch.export.Dim("width", min=16, max=100000)}}
    else:
        dynamic = {"x": {0: torch.export.Dim("batch", min=1, max=4096)}}
    torch.onnx.export(wrapper, (x,), str(tmp), input_names=[spec.input_name],
                      output_names=list(OUTPUTS), opset_version=OPSET,
                      dynamic_shapes=dynamic, dynamo=True, external_data=False)
    m = onnx.load(str(tmp))
    steps = ck["step"]
    training = dict(
        dataset="PTB-XL v1.0.3 subset (CC BY 4.0), records rendered to ECG paper on the fly",
        split="train = strat_fold 1-7 (patient-level); checkpoint chosen on val = fold 8",
        steps=steps, strips_seen=steps * cfg.batch_size, batch_size=cfg.batch_size,
        styles=cfg.styles, strip_layout_share=cfg.strip_layout_share,
        best_val_snr_db=round(float(ck["best"]), 3),
        config={k: v for k, v in ck["config"].items() if k not in ("data", "out")},
        lineage=list(lineage or []))
    version = f"{cfg.arch}-{datetime.now(timezone.utc):%Y%m%d}-step{steps}"
    meta = {KEY_SPEC: spec.to_json(), KEY_ARCH: cfg.arch, KEY_VERSION: version,
            KEY_OUTPUTS: json.dumps(spec.outputs), KEY_TRAINING: json.dumps(training)}
    del m.metadata_props[:]
    for k, v in meta.items():
        m.metadata_props.add(key=k, value=v)
    m.doc_string = ("ECG trace model: calibrated strip -> per-column trace height (mm) and "
                    "confidence. See metadata_props for the input spec.")
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, str(tmp))
    widths = (spec.fixed_width_px,) if spec.fixed_width_px else (250, 1000)
    try:
        worst = check_parity(model, tmp, spec, widths)
    except Exception:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(out)
    log.info("exported %s (%s, %.1f MB), parity max |diff| %.1e", out, version,
             out.stat().st_size / 1e6, worst)
    return dict(path=str(out), version=version, parity_max_abs_diff=worst,
                size_bytes=out.stat().st_size)
