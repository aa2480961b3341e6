"""The page segmentation net (``exported/seg.onnx``, trained by ``trainer/seg.py``): which
pixels of a page are the pen's strokes (traces and calibration pulses), at ``SEG_PX_PER_MM``.

A noisy scan's trace rows are those the net shows (``page.analyse``, where the page's grid is
filtered out); ``DIGITIZE_SEG_MODEL=none`` turns it off, ``=path.onnx`` runs another file.
The model file carries its contract in its metadata (``format``, ``px_per_mm``); a file that
does not match is refused.
"""
from __future__ import annotations

import os
import threading
from importlib.resources import files
from pathlib import Path

import cv2
import numpy as np

SEG_FORMAT = "ecg-stroke-seg/1"
SEG_PX_PER_MM = 4.0
# package data of ``exported``, as the trace model (works from a plain wheel)
DEFAULT_SEG_MODEL = Path(str(files("exported") / "seg.onnx"))
# the stroke probability a pixel needs to count as ink
THRESHOLD = 0.5


def seg_input(bgr: np.ndarray, px_per_mm: float) -> tuple[np.ndarray, float]:
    """The page at the net's scale (never enlarged): (BGR uint8, scale applied)."""
    scale = min(1.0, SEG_PX_PER_MM / px_per_mm)
    if bgr.ndim == 2:
        bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
    if scale == 1.0:
        return bgr, 1.0
    h, w = bgr.shape[:2]
    size = (max(8, int(round(w * scale))), max(8, int(round(h * scale))))
    return cv2.resize(bgr, size, interpolation=cv2.INTER_AREA), scale


class Segmenter:
    """The net loaded through the trace engine's session setup (``engine.open_session``):
    the same device choice and CUDA fallback, and threads."""

    def __init__(self, path: str | Path, device: str = "auto", threads: int = 0):
        from digitize.engine import open_session

        self.session = open_session(path, device, threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("format") != SEG_FORMAT:
            raise RuntimeError(f"{path}: not a stroke segmentation model ({SEG_FORMAT})")

    def probability(self, bgr: np.ndarray, px_per_mm: float) -> tuple[np.ndarray, float]:
        """Stroke probability [h, w] float32 at the net's scale, and that scale."""
        img, scale = seg_input(bgr, px_per_mm)
        h, w = img.shape[:2]
        pad = cv2.copyMakeBorder(img, 0, (-h) % 8, 0, (-w) % 8, cv2.BORDER_REPLICATE)
        x = pad.transpose(2, 0, 1)[None].astype(np.float32)
        logits = self.session.run(None, {"page": x})[0][0, 0, :h, :w]
        return 1.0 / (1.0 + np.exp(-logits)), scale

    def stroke_mask(self, bgr: np.ndarray, px_per_mm: float) -> np.ndarray:
        """uint8 mask (1 = the pen's strokes) at the page's own size."""
        p, scale = self.probability(bgr, px_per_mm)
        h, w = bgr.shape[:2]
        if scale != 1.0:
            p = cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR)
        return (p > THRESHOLD).astype(np.uint8)


_lock = threading.Lock()
_cache: dict = {}
_session = {"device": "auto", "threads": 0}


def configure(device: str = "auto", threads: int = 0) -> None:
    """The device and threads the net runs with (the CLI passes its ``--device`` and the trace
    engine's threads per page)."""
    _session.update(device=device, threads=threads)


def segmenter() -> Segmenter | None:
    """The segmentation net digitize runs: ``exported/seg.onnx`` (``DIGITIZE_SEG_MODEL`` unset
    or ``shipped``), another file (``=path.onnx``), or None (``=none``)."""
    path = os.environ.get("DIGITIZE_SEG_MODEL", "shipped")
    if path == "shipped":
        path = str(DEFAULT_SEG_MODEL)
    if path == "none":
        return None
    if not Path(path).is_file():
        raise RuntimeError(f"DIGITIZE_SEG_MODEL={path}: no such file")
    key = (path, _session["device"], _session["threads"])
    with _lock:
        if key not in _cache:
            _cache[key] = Segmenter(path, **_session)
        return _cache[key]
