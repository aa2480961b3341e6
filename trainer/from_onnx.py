"""A training checkpoint from an exported ONNX model, to fine-tune the model that ships.

The export (``trainer.export``) folds each batch norm into the convolution before it and stores
some linear weights transposed under generated names. This reverses it for the ``column``
architecture: each convolution gets its folded weight, the batch norm after it becomes the
identity plus the folded bias (mean 0, variance 1 - eps, scale 1), and the unnamed matrices are
matched to the linear layers by the order the graph uses them and their (transposed) shapes.
The result must reproduce the ONNX model's outputs to ``trainer.export.PARITY_TOL`` or nothing
is written. Fine-tune it with ``--freeze_bn=true``: in training mode a batch norm would use the
batch's statistics, which the folded weights no longer expect.

    python -m trainer from-onnx --model exported/model.onnx --out runs/ft/init.pt
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from digitize.model_spec import KEY_ARCH, KEY_SPEC, KEY_TRAINING, StripSpec
from trainer.export import check_parity
from trainer.model import build_model
from trainer.train import TrainConfig, model_kwargs


def _matmul_weights(graph, init: dict) -> list[np.ndarray]:
    """The 2-D initializers without a state-dict name, in the order the graph consumes them."""
    seen, out = set(), []
    for node in graph.node:
        for name in node.input:
            if name in init and name not in seen and not name.startswith("model.") \
                    and init[name].ndim == 2:
                seen.add(name)
                out.append(init[name])
    return out


def checkpoint_from_onnx(onnx_path: str | Path, out: str | Path) -> dict:
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(onnx_path))
    meta = {p.key: p.value for p in m.metadata_props}
    if meta.get(KEY_ARCH) != "column":
        raise ValueError(f"{onnx_path}: only the 'column' architecture can be read back")
    spec = StripSpec.from_json(meta[KEY_SPEC])
    training = json.loads(meta.get(KEY_TRAINING, "{}"))
    cfg = TrainConfig(**{k: v for k, v in (training.get("config") or {}).items()
                         if k in {f.name for f in dataclasses.fields(TrainConfig)}})
    cfg.arch = "column"
    model, _ = build_model("column", spec, **model_kwargs(cfg))
    init = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    sd = model.state_dict()
    new: dict[str, np.ndarray] = {}
    # convolutions and the batch norm that follows each
    bns = {n: mod for n, mod in model.named_modules()
           if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm)}
    for name, mod in model.named_modules():
        if not isinstance(mod, torch.nn.Conv2d):
            continue
        prefix, _, idx = name.rpartition(".")
        bn = {"conv1": prefix + ".bn1", "conv2": prefix + ".bn2"}.get(idx) or \
            (f"{prefix}.{int(idx) + 1}" if idx.isdigit() else None)
        w, b = init.get(f"model.{name}.weight"), init.get(f"model.{name}.weight_bias")
        if bn not in bns or w is None or b is None:
            raise ValueError(f"{onnx_path}: no folded weights for {name}")
        eps = bns[bn].eps
        new[name + ".weight"] = w
        new.update({bn + ".weight": np.ones_like(b), bn + ".bias": b,
                    bn + ".running_mean": np.zeros_like(b),
                    bn + ".running_var": np.full_like(b, 1 - eps)})
    for k in sd:
        if k not in new and f"model.{k}" in init:
            new[k] = init[f"model.{k}"]
    # linear weights stored transposed under generated names, in the order they are used
    pending = [k for k in sd if k not in new and not k.endswith("num_batches_tracked")]
    mats = _matmul_weights(m.graph, init)
    for k in pending:
        want = tuple(sd[k].shape)
        j = next((i for i, a in enumerate(mats) if a.T.shape == want), None)
        if j is None:
            raise ValueError(f"{onnx_path}: no weight for {k} {want}")
        new[k] = mats.pop(j).T
    for k, v in new.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise ValueError(f"{onnx_path}: {k} has shape {v.shape}, expected {tuple(sd[k].shape)}")
        sd[k] = torch.from_numpy(np.array(v, np.float32))
    model.load_state_dict(sd)
    model.eval()
    worst = check_parity(model, Path(onnx_path), spec, (250, 1000))  # raises past the tolerance
    cfg.freeze_bn = True
    ck = dict(model=model.state_dict(), config=dataclasses.asdict(cfg),
              step=int(training.get("steps", 0)), best=float(training.get("best_val_snr_db", 0)),
              source=str(onnx_path), parity_max_abs_diff=worst)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ck, out)
    return dict(out=str(out), step=ck["step"], parity_max_abs_diff=worst)
