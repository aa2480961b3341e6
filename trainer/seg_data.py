"""Training pages for the page segmentation net (``trainer/seg.py``), without torch: a
rendered page brought to the net's scale, its exact stroke mask (traces and calibration pulses,
from the renderer's polylines), and the damage of a crumpled, badly scanned sheet."""
from __future__ import annotations

import cv2
import numpy as np

from digitize.segment import seg_input
from trainer.dataset import _n_records, _signal
from trainer.render import RenderedPage, render_page, sample_spec

SEG_LAYOUTS = ("3x4", "3x4+1", "3x4+1", "3x4+2", "3x4+3", "6x2", "6x2", "6x1", "12x1", "strip")
SEG_STYLES = ("clean", "scan", "scan", "photo", "rough", "rough", "rough")


# ------------------------------------------------------------------------------- targets

def stroke_mask(page: RenderedPage, scale: float, shape: tuple[int, int]) -> np.ndarray:
    """uint8 [h, w] mask (1: pen stroke) of ``page`` drawn at ``scale`` times its pixels: every
    lead's trace and every calibration pulse, as wide as the pen (one pixel at least)."""
    meta = page.meta
    k = meta["px_per_mm"] * scale
    width = float(meta["spec"]["trace_width_mm"]) * k
    thick = max(1, int(round(width)))
    m = np.zeros(shape, np.uint8)
    shift = 4
    for item in list(meta["leads"]) + list(meta["pulses"]):
        # pixel centres: the renderer's points are OpenCV pixel coordinates at full size;
        # resizing by ``scale`` maps x to (x + 0.5) * scale - 0.5
        pts = (np.asarray(item["polyline"], np.float64) + 0.5) * scale - 0.5
        p = np.round(pts * (1 << shift)).astype(np.int32)[None]
        cv2.polylines(m, p, False, 1, thick, cv2.LINE_8, shift)
    return m


def _smooth(rng, h: int, w: int, cells: int) -> np.ndarray:
    g = rng.random((cells, max(2, int(cells * w / h)))).astype(np.float32)
    return cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)


def scan_damage(img: np.ndarray, rng) -> np.ndarray:
    """A crumpled sheet badly scanned, at the net's scale: smooth dark shading (blotches and
    folds up to 60 % darker), a colour cast, heavy pixel noise and JPEG."""
    h, w = img.shape[:2]
    x = img.astype(np.float32)
    if rng.random() < 0.7:
        f = _smooth(rng, h, w, int(rng.integers(3, 10)))
        f = np.clip((f - rng.uniform(0.2, 0.6)) * rng.uniform(1.0, 3.0), 0, 1)
        x *= (1.0 - rng.uniform(0.2, 0.6) * f)[..., None]
    if rng.random() < 0.5:
        x *= rng.uniform(0.6, 1.0, 3).astype(np.float32)
    if rng.random() < 0.7:
        sigma = rng.uniform(3, 30)
        n = rng.normal(0, sigma, (h, w, 1) if rng.random() < 0.5 else (h, w, 3))
        x += n.astype(np.float32)
    x = np.clip(x + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        ok, buf = cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 90))])
        x = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return x


def page_sample(rng, ptbxl_dir: str, split: str, damage: float = 0.5
                ) -> tuple[np.ndarray, np.ndarray]:
    """One rendered page at the net's scale: (BGR uint8 [h, w, 3], stroke mask uint8 [h, w])."""
    n_rec = _n_records(ptbxl_dir, split)
    sig, fs, _ = _signal(ptbxl_dir, split, int(rng.integers(n_rec)))
    layout = SEG_LAYOUTS[int(rng.integers(len(SEG_LAYOUTS)))]
    style = SEG_STYLES[int(rng.integers(len(SEG_STYLES)))]
    # resolution does not matter much at the net's scale: fewer big pages to render
    spec = sample_spec(rng, layout, style, foreign=0.5,
                       dpi=float(rng.choice([rng.uniform(64, 100), rng.uniform(100, 220)],
                                            p=[0.15, 0.85])))
    page = render_page(sig, fs, spec, header_seed=int(rng.integers(2**31)))
    img, scale = seg_input(page.image, page.meta["px_per_mm"])
    mask = stroke_mask(page, scale, img.shape[:2])
    if rng.random() < damage:
        img = scan_damage(img, rng)
    return img, mask
