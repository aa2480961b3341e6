"""The page segmentation net (issue #15, item 3): a small U-Net that marks, on a page brought
to ``SEG_PX_PER_MM``, the pixels of the pen's strokes — traces and calibration pulses — and
nothing else (grid, text, lead labels, separators, shading, stains, noise are background).

digitize reads a noisy scan's rows from this mask instead of a hand-made grid filter
(``digitize/segment.py``). Targets come exactly from the renderer's polylines (warped with the
page), so every page style and foreign convention the renderer draws is training data; on top
of the renderer's own distortions each page gets the strong, smooth shading and heavy pixel
noise of a crumpled, badly scanned sheet.

    python -m trainer seg-train --out runs/seg --minutes 60
    python -m trainer seg-export --checkpoint runs/seg/last.pt --out exported/seg.onnx --int8

``--int8``: the weights and activations quantised to 8 bits (ONNX Runtime's static QDQ
quantisation, calibrated on pages of the train split): about twice as fast on a CPU, the same
strokes to within a fraction of a percent of the pixels (exported/SEG_MODEL_CARD.md).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from digitize.segment import SEG_FORMAT, SEG_PX_PER_MM
from trainer.seg_data import page_sample


# ------------------------------------------------------------------------------- model

def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class SegNet(nn.Module):
    """A U-Net: BGR page [B, 3, H, W] (uint8 values as float, H and W multiples of 8) →
    stroke logits [B, 1, H, W]. Three poolings: a receptive field of ~15 mm at 4 px/mm."""

    def __init__(self, channels: tuple[int, ...] = (16, 24, 32, 48)):
        super().__init__()
        self.channels = channels
        self.enc = nn.ModuleList()
        cin = 3
        for c in channels:
            self.enc.append(_conv(cin, c))
            cin = c
        self.dec = nn.ModuleList()
        for c_skip in reversed(channels[:-1]):
            self.dec.append(_conv(cin + c_skip, c_skip))
            cin = c_skip
        self.head = nn.Conv2d(cin, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x / 127.5 - 1.0
        skips = []
        for i, e in enumerate(self.enc):
            x = e(x)
            if i < len(self.enc) - 1:
                skips.append(x)
                x = F.max_pool2d(x, 2)
        for d in self.dec:
            s = skips.pop()
            x = F.interpolate(x, size=s.shape[-2:], mode="bilinear", align_corners=False)
            x = d(torch.cat([x, s], 1))
        return self.head(x)


# ------------------------------------------------------------------------------- training

@dataclass
class SegConfig:
    out: str = "runs/seg"
    ptbxl_dir: str = ""
    seed: int = 0
    minutes: float = 60.0
    max_steps: int = 100000
    batch_size: int = 12
    crop: int = 192
    crops_per_page: int = 6
    lr: float = 2e-3
    threads: int = 1
    workers: int = 1
    pos_weight: float = 3.0
    val_pages: int = 12
    eval_every: int = 200


class Crops(IterableDataset):
    """Batches of random crops, pages rendered in the worker (page p of worker i: seed
    (seed, start + p * n_workers + i))."""

    def __init__(self, cfg: SegConfig, start: int):
        self.cfg, self.start = cfg, start

    def __iter__(self):
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        if info:
            torch.set_num_threads(1)
        cfg = self.cfg
        pool_x, pool_y = [], []
        p = self.start + wid
        while True:
            rng = np.random.default_rng([cfg.seed, p])
            p += nw
            img, mask = page_sample(rng, cfg.ptbxl_dir, "train")
            h, w = mask.shape
            c = cfg.crop
            if h < c or w < c:
                img = cv2.copyMakeBorder(img, 0, max(0, c - h), 0, max(0, c - w),
                                         cv2.BORDER_REPLICATE)
                mask = cv2.copyMakeBorder(mask, 0, max(0, c - h), 0, max(0, c - w),
                                          cv2.BORDER_CONSTANT, value=0)
                h, w = mask.shape
            for _ in range(cfg.crops_per_page):
                y0, x0 = int(rng.integers(h - c + 1)), int(rng.integers(w - c + 1))
                pool_x.append(img[y0:y0 + c, x0:x0 + c].transpose(2, 0, 1))
                pool_y.append(mask[y0:y0 + c, x0:x0 + c][None])
            # crops of several pages mixed in each batch
            while len(pool_x) >= 3 * cfg.batch_size:
                idx = rng.permutation(len(pool_x))
                take = idx[:cfg.batch_size]
                x = np.stack([pool_x[i] for i in take]).astype(np.float32)
                y = np.stack([pool_y[i] for i in take]).astype(np.float32)
                keep = set(idx[cfg.batch_size:].tolist())
                pool_x = [v for i, v in enumerate(pool_x) if i in keep]
                pool_y = [v for i, v in enumerate(pool_y) if i in keep]
                yield torch.from_numpy(x), torch.from_numpy(y)


def seg_loss(logits: torch.Tensor, y: torch.Tensor, pos_weight: float) -> torch.Tensor:
    bce = F.binary_cross_entropy_with_logits(
        logits, y, pos_weight=torch.tensor(pos_weight, device=logits.device))
    p = torch.sigmoid(logits)
    dice = 1 - (2 * (p * y).sum() + 1) / (p.sum() + y.sum() + 1)
    return bce + dice


def _pad8(x: np.ndarray) -> np.ndarray:
    h, w = x.shape[:2]
    return cv2.copyMakeBorder(x, 0, (-h) % 8, 0, (-w) % 8, cv2.BORDER_REPLICATE)


def val_set(cfg: SegConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """Whole pages of the val split (fold 8): every style, half of them damaged."""
    out = []
    for i in range(cfg.val_pages):
        rng = np.random.default_rng([cfg.seed, 10**7 + i])
        out.append(page_sample(rng, cfg.ptbxl_dir, "val"))
    return out


@torch.no_grad()
def evaluate(model: SegNet, pages) -> dict:
    """Stroke F1 at 0.5 (one pixel of tolerance: a stroke found beside its drawn line counts)."""
    model.eval()
    tp_p = n_p = tp_t = n_t = 0
    for img, mask in pages:
        h, w = mask.shape
        x = torch.from_numpy(_pad8(img).transpose(2, 0, 1)[None].astype(np.float32))
        pred = (model(x)[0, 0, :h, :w] > 0).numpy().astype(np.uint8)
        near_t = cv2.dilate(mask, np.ones((3, 3), np.uint8))
        near_p = cv2.dilate(pred, np.ones((3, 3), np.uint8))
        tp_p += int((pred & near_t).sum())
        n_p += int(pred.sum())
        tp_t += int((mask & near_p).sum())
        n_t += int(mask.sum())
    model.train()
    prec, rec = tp_p / max(n_p, 1), tp_t / max(n_t, 1)
    return dict(precision=prec, recall=rec, f1=2 * prec * rec / max(prec + rec, 1e-9))


def train(cfg: SegConfig) -> Path:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    model = SegNet()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    step = 0
    last = out / "last.pt"
    if last.exists():  # resume
        ck = torch.load(last, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step = ck["step"]
    vals = val_set(cfg)
    log = (out / "log.jsonl").open("a")
    loader = DataLoader(Crops(cfg, start=step * 10), batch_size=None, num_workers=cfg.workers)
    t_end = time.time() + cfg.minutes * 60
    t0 = time.time()
    model.train()

    def save():
        torch.save(dict(model=model.state_dict(), opt=opt.state_dict(), step=step,
                        config=asdict(cfg), channels=list(model.channels)), last)

    for x, y in loader:
        frac = min(1.0, (time.time() - t0) / max(1.0, t_end - t0))
        for g in opt.param_groups:  # warm-up, then cosine over the time budget
            g["lr"] = cfg.lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + np.cos(np.pi * frac))
        loss = seg_loss(model(x), y, cfg.pos_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 20 == 0:
            log.write(json.dumps(dict(step=step, loss=float(loss), t=time.time() - t0)) + "\n")
            log.flush()
        if step % cfg.eval_every == 0 or time.time() > t_end or step >= cfg.max_steps:
            m = evaluate(model, vals)
            log.write(json.dumps(dict(step=step, val=m, t=time.time() - t0)) + "\n")
            log.flush()
            save()
            if time.time() > t_end or step >= cfg.max_steps:
                break
    return last


def export(checkpoint: str | Path, out: str | Path, int8: bool = False,
           ptbxl_dir: str | Path | None = None, calibration_pages: int = 8,
           seed: int = 0) -> Path:
    """The checkpoint as ONNX (any batch, height and width that are multiples of 8), with its
    metadata contract (format, scale, channels) in the model's metadata; ``int8``: quantised
    (``quantize``, calibrated on ``calibration_pages`` train-split pages of ``ptbxl_dir``)."""
    import onnx

    ck = torch.load(checkpoint, map_location="cpu", weights_only=False)
    model = SegNet(tuple(ck["channels"]))
    model.load_state_dict(ck["model"])
    model.eval()
    x = torch.zeros(1, 3, 256, 320)
    out = Path(out)
    torch.onnx.export(model, x, str(out), input_names=["page"], output_names=["logits"],
                      dynamic_axes={"page": {0: "b", 2: "h", 3: "w"},
                                    "logits": {0: "b", 2: "h", 3: "w"}},
                      opset_version=17, dynamo=False)
    m = onnx.load(str(out))
    for key, value in dict(format=SEG_FORMAT, px_per_mm=str(SEG_PX_PER_MM),
                           input="BGR uint8 values as float32, [B, 3, H, W], H, W % 8 == 0",
                           output="stroke logits [B, 1, H, W] (trace and pulse pen strokes)",
                           step=str(ck["step"])).items():
        p = m.metadata_props.add()
        p.key, p.value = key, value
    onnx.save(m, str(out))
    if int8:
        if ptbxl_dir is None:
            raise ValueError("int8 export needs ptbxl_dir (the calibration pages' records)")
        quantize(out, out, ptbxl_dir, calibration_pages, seed)
    return out


def quantize(model: str | Path, out: str | Path, ptbxl_dir: str | Path, pages: int = 8,
             seed: int = 0) -> Path:
    """``model`` (float ONNX) with 8-bit weights (per channel) and activations, as
    quantise/dequantise pairs around each operator (ONNX Runtime's static QDQ quantisation;
    the CPU provider fuses them into integer kernels). The activations' ranges come from
    ``pages`` whole pages of the train split rendered as for training (half of them with scan
    damage). The metadata contract is kept; ``quantized`` says how."""
    import tempfile

    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Pages(CalibrationDataReader):
        def __init__(self):
            self.i = 0

        def get_next(self):
            if self.i >= pages:
                return None
            rng = np.random.default_rng([seed, 2 * 10**7 + self.i])
            self.i += 1
            img, _ = page_sample(rng, str(ptbxl_dir), "train")
            return {"page": _pad8(img).transpose(2, 0, 1)[None].astype(np.float32)}

    src = onnx.load(str(model))
    meta = {p.key: p.value for p in src.metadata_props}
    with tempfile.TemporaryDirectory() as tmp:
        pre, q = Path(tmp) / "pre.onnx", Path(tmp) / "q.onnx"
        quant_pre_process(str(model), str(pre))
        quantize_static(str(pre), str(q), Pages(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8)
        m = onnx.load(str(q))
    del m.metadata_props[:]
    meta["quantized"] = (f"int8 QDQ, per-channel weights, activations calibrated on {pages} "
                         f"train-split pages (seed {seed})")
    for key, value in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = key, value
    onnx.save(m, str(out))
    return Path(out)
