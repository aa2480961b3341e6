"""Training data: strips cut from pages rendered on the fly, at their ground-truth geometry.

Batch ``b`` of a run is a pure function of (seed, b): worker processes each render every
n-th batch, the DataLoader hands them out in order, so a resumed run sees exactly the batches
it would have seen.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from digitize.leads import LEADS
from digitize.model_spec import StripSpec
from digitize.strips import StripGeometry, column_times, cut_strip, even_light
from trainer.data import (PackedSignals, baseline_wander, is_packed, prepared_signal,
                          records_for_split)
from trainer.render import RenderedPage, render_page, sample_spec

PAGE_LAYOUTS = ("3x4", "3x4+1", "3x4+2", "3x4+3", "6x2", "6x1", "12x1")


@dataclass
class Strip:
    x: np.ndarray  # [H, W] float32, normalised
    target_mm: np.ndarray  # [W] trace height above the centre line, mm
    gain: float  # mm/mV
    lead: str
    t0: float  # s, time of the strip's left edge
    t1: float
    speed: float  # mm/s
    width_mm: float


def page_strips(page: RenderedPage, sig: np.ndarray, fs: float, spec: StripSpec,
                leads: list[int] | None = None) -> list[Strip]:
    """Cut the strips of a rendered page at its ground-truth geometry, with targets."""
    meta = page.meta
    # what digitize feeds the model: the page with its paper brought to one brightness
    grey = even_light(cv2.cvtColor(page.image, cv2.COLOR_BGR2GRAY), meta["px_per_mm"])
    H = np.asarray(meta["homography"], np.float64)
    t_src = np.arange(len(sig)) / fs
    out = []
    entries = meta["leads"] if leads is None else [meta["leads"][i] for i in leads]
    for m in entries:
        geom = StripGeometry(m["x0_mm"], m["width_mm"], m["baseline_mm"], meta["px_per_mm"], H)
        x = cut_strip(grey, geom, spec)
        # one output per 1/px_per_mm_x mm — for a resized (seed) input too: its 1000 outputs
        # span the strip's 250 mm
        n_out = int(round(m["width_mm"] * spec.px_per_mm_x))
        tc = column_times(n_out, m["t0"], meta["speed_mm_s"], spec.px_per_mm_x)
        j = LEADS.index(m["lead"])
        target = np.interp(tc, t_src, sig[:, j]) * m["gain_mm_mv"]
        out.append(Strip(x, target.astype(np.float32), m["gain_mm_mv"], m["lead"], m["t0"],
                         m["t1"], meta["speed_mm_s"], m["width_mm"]))
    return out


@functools.lru_cache(maxsize=4)
def _packed(path: str) -> PackedSignals:
    return PackedSignals(path)


def _n_records(ptbxl_dir: str, split: str) -> int:
    if is_packed(ptbxl_dir):
        return _packed(ptbxl_dir).n_records(split)
    return len(_records(ptbxl_dir, split))


@functools.lru_cache(maxsize=None)
def _records(ptbxl_dir: str, split: str):
    return records_for_split(ptbxl_dir, split)


@functools.lru_cache(maxsize=1024)
def _signal(ptbxl_dir: str, split: str, i: int, prefer_hr: bool = True):
    """(prepared signal, fs, ecg_id); a packed file holds each record at its best rate."""
    if is_packed(ptbxl_dir):
        return _packed(ptbxl_dir).signal(split, i)
    info = _records(ptbxl_dir, split)[i]
    sig, fs = prepared_signal(ptbxl_dir, info, prefer_hr)
    return sig, fs, info.ecg_id


def make_batch(b: int, *, seed: int, ptbxl_dir: str, split: str, spec: StripSpec,
               batch_size: int, crop_cols: int, strips_per_page: int,
               strip_layout_share: float, styles: tuple[str, ...], strip_only: bool = False,
               page_layouts: tuple[str, ...] = PAGE_LAYOUTS, foreign: float = 0.0,
               foreign_bars: float = 0.7, wander: float = 0.0
               ) -> tuple[np.ndarray, np.ndarray]:
    """Batch b: (x [B, 1, H, W] float32, target_mm [B, W] float32). Page layouts are drawn
    uniformly from ``page_layouts`` (name one twice to draw it twice as often); ``foreign``:
    the share of pages in other printers' conventions (``render.sample_spec``); ``wander``:
    the share of pages whose record is drawn with baseline wander (``data.baseline_wander``;
    it leaves the pages' other draws as they were)."""
    rng = np.random.default_rng([seed, b])
    n_rec = _n_records(ptbxl_dir, split)
    xs, ys = [], []
    while len(xs) < batch_size:
        sig, fs, _ = _signal(ptbxl_dir, split, int(rng.integers(n_rec)))
        if wander > 0:  # its own generator: the pages drawn are those drawn without it
            wrng = np.random.default_rng([seed, b, 7, len(xs)])
            if wrng.random() < wander:
                sig = sig + baseline_wander(wrng, len(sig), fs, sig.shape[1], base=sig)
        style = styles[int(rng.integers(len(styles)))]
        if strip_only or rng.random() < strip_layout_share:
            layout = "strip"
        else:
            layout = page_layouts[int(rng.integers(len(page_layouts)))]
        pspec = sample_spec(rng, layout, style, foreign=foreign, foreign_bars=foreign_bars)
        page = render_page(sig, fs, pspec, header_seed=int(rng.integers(2**31)))
        n_leads = len(page.meta["leads"])
        pick = rng.permutation(n_leads)[:min(strips_per_page, batch_size - len(xs))]
        for s in page_strips(page, sig, fs, spec, [int(i) for i in pick]):
            w = s.x.shape[1]
            if spec.fixed_width_px is None and w > crop_cols:  # random window of crop_cols
                c0 = int(rng.integers(w - crop_cols + 1))
                s.x, s.target_mm = s.x[:, c0:c0 + crop_cols], s.target_mm[c0:c0 + crop_cols]
            elif spec.fixed_width_px is None and w < crop_cols:
                continue  # cannot happen with the layouts above (narrowest: 62.5 mm)
            xs.append(s.x)
            ys.append(s.target_mm)
    return np.stack(xs)[:, None], np.stack(ys)


def strip_set(n_pages: int, *, seed: int, ptbxl_dir: str, split: str, spec: StripSpec,
              layouts: tuple[str, ...], styles: tuple[str, ...], prefer_hr: bool = True,
              foreign: float = 0.0, foreign_bars: float = 0.7, wander: float = 0.0
              ) -> list[Strip]:
    """A fixed set of whole (uncropped) strips, e.g. for validation; ``wander``: the chance
    that a page is drawn with baseline wander (drawn from its own generator)."""
    n_rec = _n_records(ptbxl_dir, split)
    out = []
    for i in range(n_pages):
        rng = np.random.default_rng([seed, 10**6 + i])
        sig, fs, _ = _signal(ptbxl_dir, split, i % n_rec, prefer_hr)
        wrng = np.random.default_rng([seed, 2 * 10**6 + i])
        if wander > 0 and wrng.random() < wander:
            sig = sig + baseline_wander(wrng, len(sig), fs, sig.shape[1], base=sig)
        pspec = sample_spec(rng, layouts[i % len(layouts)], styles[(i // len(layouts)) % len(styles)],
                            foreign=foreign, foreign_bars=foreign_bars)
        page = render_page(sig, fs, pspec, header_seed=i)
        out += page_strips(page, sig, fs, spec)
    return out
