"""Lead windows on a page → model → a 12-lead signal in mV (NaN where no window is drawn)."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.ndimage import median_filter

from digitize.leads import LEADS
from digitize.strips import (INK_LEVEL, StripGeometry, column_times, columns_to_signal,
                             cut_strip, cut_strip_along, follow_ink, slow_path)


@dataclass
class LeadWindow:
    """One lead drawn over [t0, t1) s, at ``gain`` mm/mV and ``speed`` mm/s, at ``geom``."""

    lead: str
    t0: float
    t1: float
    gain: float
    speed: float
    geom: StripGeometry
    #: past this time (s) the row's ink has ended on the page: nothing is drawn there
    t_ink_end: float = float("inf")


@dataclass
class LeadResult:
    window: LeadWindow
    value_mm: np.ndarray  # per column
    confidence: np.ndarray  # per column
    idx: np.ndarray | None = None  # output sample indices this window covers
    mv: np.ndarray | None = None  # its signal there
    stray_columns: int = 0  # columns where the model left the trace for other ink (replaced)
    #: first and last column written to the record (``reconstruct(trim_conf=...)``)
    kept: tuple[int, int] | None = None

    def samples(self, fs: float, n: int) -> np.ndarray:
        """This window alone as an [n] signal (NaN elsewhere)."""
        out = np.full(n, np.nan, np.float32)
        out[self.idx] = self.mv
        return out


def reconstruct(grey: np.ndarray | list[np.ndarray], windows: list[LeadWindow], engine,
                fs: float, n_samples: int, batch_size: int = 16, trim_conf: float | None = None,
                pen_mm: float | None = None, recentre: bool = True
                ) -> tuple[np.ndarray, list[LeadResult]]:
    """Run the model over every window of a page → (signal [n_samples, 12] mV, per-window results).

    The model's per-column reading is first checked against the strip's ink (``follow_ink``:
    short runs read off a printed label or a neighbour's stroke are replaced). Where a lead is
    drawn more than once (a rhythm strip repeats lead II), the longer window
    wins for the samples both cover. With ``trim_conf``, columns at either end of a window whose
    confidence stays under it (a window running past the end of a trace cut by the image edge)
    become NaN — not drawn — instead of whatever the model guessed there; so do a window's
    first (last) columns up to the last (from the first) one within ``EDGE_TRIM_MM`` of its
    start (end) that is read at the strip's edge where the strip holds no ink at all: the
    window starts (ends) on blank paper, and the model, with nothing to follow, ran off it.

    With ``pen_mm`` (the page's pen width), windows drawn finely enough with a pen at most
    FINE_PEN_MM wide are read a second time at more columns (``_finer``).

    With ``recentre``, a window whose trace wanders off its centre line is read again along the
    path it takes (``RECENTRE``), where the first reading was unsure.

    ``grey`` may be a list: the same page levelled in several ways (``strips.SCAN_LIGHT``),
    each read; a sample's value is the mean of the readings that drew it (the first reading's
    columns and confidences stand for the window).
    """
    greys = grey if isinstance(grey, (list, tuple)) else [grey]
    runs = []
    for g in greys:
        results = _read(g, windows, engine, fs, n_samples, batch_size, trim_conf,
                        [engine.spec] * len(windows), recentre)
        if pen_mm is not None and pen_mm <= FINE_PEN_MM:
            results = _finer(g, results, engine, fs, n_samples, batch_size, trim_conf,
                             recentre)
        runs.append(results)
    results = runs[0] if len(runs) == 1 else [_mean_reading(rs) for rs in zip(*runs)]
    return assemble(results, n_samples), results


def _mean_reading(readings: tuple[LeadResult, ...]) -> LeadResult:
    """One window read from several images: its samples' mean over the readings that drew
    them (NaN where none did)."""
    first = readings[0]
    if first.mv is None or any(r.mv is None or not np.array_equal(r.idx, first.idx)
                               for r in readings[1:]):
        return first
    mv = np.stack([np.asarray(r.mv, np.float64) for r in readings])
    drawn = np.isfinite(mv)
    n = drawn.sum(axis=0)
    mean = np.where(n > 0, np.where(drawn, mv, 0.0).sum(axis=0) / np.maximum(n, 1), np.nan)
    return replace(first, mv=mean.astype(np.asarray(first.mv).dtype))


#: A window on a page drawn at this many px/mm or more, at 25 mm/s or slower, is read again at
#: FINE_FACTOR times the model's columns per mm: 200 a second instead of 100, which sharp,
#: noisy waves need (PTB-XL at 500 Hz sampled at 100 Hz and splined back scores only ~21 dB
#: on the new eik val pages). As the model has seen it on 50-mm/s pages. New eik val pages
#: at 300 dpi (11.8 px/mm): +0.8 dB clean, +1.1 dB b/w, 12 pages of 13 better; at 150 and
#: 200 dpi (5.9, 7.9 px/mm) the finer reading lost 0.6-1.6 dB: the page holds no finer
#: detail than the model's columns already do.
FINE_PX_PER_MM, FINE_FACTOR = 10.0, 2.0
#: ... where the pen (as measured on the page's rows: ``page.trace_width``) is at most this
#: wide (mm): at twice the columns a broader pen is broader than any the model was trained on
#: (0.6 mm nominal: 2.4 columns) and its strokes were read early and doubled. Own val renders
#: at 10+ px/mm with pens of 0.49-0.83 mm lost 2-9 dB (0.25 and 0.40 mm: unchanged); the eik
#: val pages that gained had pens of 0.25-0.42 mm. Chosen between those.
FINE_PEN_MM = 0.45
#: The finer reading is kept in each window's middle only: not within this (s) of its ends
#: (its first and last samples spiked off the trace's ends), nor where it departs from the
#: plain reading by more than FINE_AGREE_MV (a few columns read off another stroke).
FINE_EDGE_S, FINE_AGREE_MV = 0.1, 0.6


def _finer(grey, results: list[LeadResult], engine, fs: float, n_samples: int,
           batch_size: int, trim_conf: float | None, recentre: bool = True
           ) -> list[LeadResult]:
    base = engine.spec
    which = [i for i, r in enumerate(results)
             if r.window.geom.px_per_mm >= FINE_PX_PER_MM and r.window.speed <= 25.0
             and r.mv is not None and len(r.mv)]
    if not which:
        return results
    fine_spec = replace(base, px_per_mm_x=base.px_per_mm_x * FINE_FACTOR)
    again = _read(grey, [results[i].window for i in which], engine, fs, n_samples, batch_size,
                  trim_conf, [fine_spec] * len(which), recentre)
    out = list(results)
    for i, b in zip(which, again):
        a, w = results[i], results[i].window
        mv = np.asarray(a.mv, np.float64).copy()
        _, ia, ib = np.intersect1d(a.idx, b.idx, return_indices=True)
        t = a.idx[ia] / fs
        x, y = mv[ia], np.asarray(b.mv, np.float64)[ib]
        with np.errstate(invalid="ignore"):
            use = (t >= w.t0 + FINE_EDGE_S) & (t < w.t1 - FINE_EDGE_S) & np.isfinite(x) \
                & np.isfinite(y) & (np.abs(y - x) <= FINE_AGREE_MV)
        mv[ia[use]] = y[use]
        out[i] = replace(a, mv=mv.astype(np.asarray(a.mv).dtype))
    return out


def _read(grey, windows: list[LeadWindow], engine, fs: float, n_samples: int, batch_size: int,
          trim_conf: float | None, specs, recentre: bool = True) -> list[LeadResult]:
    """The model's reading of each window, its strip cut at ``specs[i]``'s columns per mm
    (``recentre``: windows whose trace wanders off the centre line read again along it)."""
    strips = [cut_strip(grey, w.geom, spec) for w, spec in zip(windows, specs)]
    outputs = engine.run(strips, batch_size=batch_size)
    followed = [follow_ink(v, strip, spec) + (c,)
                for (v, c), strip, spec in zip(outputs, strips, specs)]
    if recentre:
        followed = _recentre(grey, windows, strips, followed, engine, specs, batch_size)
    results = []
    for w, strip, (value, stray, conf), spec in zip(windows, strips, followed, specs):
        tc = column_times(len(value), w.t0, w.speed, spec.px_per_mm_x)
        ends = (kept_columns(value, conf, trim_conf, spec, strip) if trim_conf is not None
                else None)
        drawn = value
        if ends is not None and (ends[2] or ends[3]):
            # columns cut at an edge reading: the trace is not interpolated towards it
            first, last = ends[:2]
            drawn = np.asarray(value).copy()
            drawn[:first], drawn[last + 1:] = drawn[first], drawn[last]
        idx, mv = columns_to_signal(drawn, w.gain, tc, fs, w.t0, w.t1)
        keep = (idx >= 0) & (idx < n_samples)
        idx, mv = idx[keep], mv[keep]
        if np.isfinite(w.t_ink_end):
            mv = np.where(idx / fs > w.t_ink_end, np.nan, mv)
        if trim_conf is not None:
            dt = 1.0 / (spec.px_per_mm_x * w.speed)
            if ends is None:
                mv = np.full_like(mv, np.nan)
            else:  # a column's slack past confidence-trimmed ends; none past an edge reading
                first, last, cut_first, cut_last = ends
                t = idx / fs
                mv = np.where((t < tc[first] - (0.0 if cut_first else dt))
                              | (t > tc[last] + (0.0 if cut_last else dt)), np.nan, mv)
        results.append(LeadResult(w, value, conf, idx, mv, stray,
                                  None if ends is None else ends[:2]))
    return results


#: Re-reading a trace that wanders off its row (ecg-image-kit draws the record as stored: a
#: lead may start 2 mV off its row and drift back; our model learned band-passed records, whose
#: traces keep to the centre line, and loses such a trace to its neighbour's). A window whose
#: reading's slow path (``strips.slow_path``) strays RECENTRE.min_mm or more from the centre
#: line is cut again along that path (``strips.cut_strip_along``) and read again; a column
#: takes the second reading where it is the more confident and the first was unsure
#: (confidence under ``unsure``) or agrees with it within ``agree_mm`` — a confident first
#: reading is never overruled (on a page where two rows' traces cross, the path can follow
#: the wrong one). A decision is smoothed over ``switch_columns`` columns. Within ``edge_s`` of
#: a window's ends (where separators, labels and pulses stand) the first reading is kept: a
#: real scan's second reading climbed a separator bar there (3.1 mV at a panel's start).
@dataclass(frozen=True)
class Recentre:
    min_mm: float = 3.0
    unsure: float = 0.5
    agree_mm: float = 2.0
    switch_columns: int = 9
    edge_s: float = 0.1


RECENTRE = Recentre()


def _recentre(grey, windows: list[LeadWindow], strips: list[np.ndarray], followed: list,
              engine, specs, batch_size: int) -> list:
    """``followed`` ((value_mm, stray columns, confidence) per window, checked against the
    ink) with the windows whose trace wanders read again along its path (``RECENTRE``)."""
    redo = []
    for i, ((value, _, conf), w, spec) in enumerate(zip(followed, windows, specs)):
        if strips[i].shape[1] != len(value) or spec.fixed_height_px or spec.fixed_width_px:
            continue  # (a resized strip: its rows and columns are not millimetres)
        path = slow_path(value, conf, spec.px_per_mm_x * w.speed, RECENTRE.unsure)
        if path is not None and np.abs(path).max() >= RECENTRE.min_mm:
            redo.append((i, np.clip(path, -spec.height_mm / 2, spec.height_mm / 2)))
    if not redo:
        return followed
    again = [cut_strip_along(grey, windows[i].geom, specs[i], p) for i, p in redo]
    out = list(followed)
    for (i, path), strip, (v2, c2) in zip(redo, again, engine.run(again, batch_size)):
        v1, stray, c1 = followed[i]
        v1, c1 = np.asarray(v1, np.float32), np.asarray(c1, np.float32)
        v2, _ = follow_ink(v2, strip, specs[i])
        v2 = np.asarray(v2, np.float32) + path
        c2 = np.asarray(c2, np.float32)
        better = (c2 > c1) & ((c1 < RECENTRE.unsure) | (np.abs(v2 - v1) <= RECENTRE.agree_mm))
        take = median_filter(better.astype(np.uint8), size=RECENTRE.switch_columns,
                             mode="nearest").astype(bool)
        edge = int(round(RECENTRE.edge_s * specs[i].px_per_mm_x * windows[i].speed))
        take[:edge] = take[len(take) - edge:] = False
        if take.any():
            out[i] = (np.where(take, v2, v1), stray, np.where(take, c2, c1))
    return out


#: Reach (mm along the strip) from a window's ends within which readings at the strip's edge
#: over blank paper are trimmed, with every column between them and the end. (Readings at the
#: edge over ink are kept: on validation pages they are mostly a tall wave or a photo's dark
#: border, and a sample left out scores as 0 mV.)
EDGE_TRIM_MM = 2.0
#: A reading at or beyond this share of the strip's half height is "at the edge".
EDGE_SHARE = 0.95
#: A strip column with ink in under this share of its rows is blank paper (a speck or two).
BLANK_SHARE = 0.02


def kept_columns(value_mm: np.ndarray, conf: np.ndarray, trim_conf: float, spec,
                 strip: np.ndarray) -> tuple[int, int, bool, bool] | None:
    """(first, last, first cut at an edge reading, last cut at one) columns of a window worth
    writing, or None: the ends whose confidence stays under ``trim_conf`` are dropped, and the
    columns up to a reading at the strip's edge over blank paper near either end (see
    ``reconstruct``; ``strip``: the normalised strip the model read)."""
    good = np.flatnonzero(np.asarray(conf) >= trim_conf)
    if not len(good):
        return None
    first, last = int(good[0]), int(good[-1])
    n = len(value_mm)
    if strip.shape[1] != n:  # a resized strip: its columns are not the model's
        return first, last, False, False
    reach = max(1, int(round(EDGE_TRIM_MM * spec.px_per_mm_x)))
    blank = (strip > INK_LEVEL).mean(axis=0) < BLANK_SHARE
    edge = (np.abs(np.asarray(value_mm, np.float64)) >= EDGE_SHARE * spec.height_mm / 2) & blank
    head = np.flatnonzero(edge[:reach])
    cut_first = len(head) > 0 and int(head[-1]) + 1 > first
    if cut_first:
        first = int(head[-1]) + 1
    tail = np.flatnonzero(edge[max(0, n - reach):])
    cut_last = len(tail) > 0 and max(0, n - reach) + int(tail[0]) - 1 < last
    if cut_last:
        last = max(0, n - reach) + int(tail[0]) - 1
    return (first, last, cut_first, cut_last) if first <= last else None


def assemble(results: list[LeadResult], n_samples: int) -> np.ndarray:
    """Per-window signals → [n_samples, 12] mV; the longer window wins where two overlap."""
    sig = np.full((n_samples, len(LEADS)), np.nan, np.float32)
    span = np.zeros((n_samples, len(LEADS)), np.float32)  # window length that wrote the sample
    for r in results:
        w, idx, mv = r.window, r.idx, r.mv
        j = LEADS.index(w.lead)
        longer = span[idx, j] < (w.t1 - w.t0)
        sig[idx[longer], j] = mv[longer]
        span[idx[longer], j] = w.t1 - w.t0
    return sig


def relabel(results: list[LeadResult], leads: list[str]) -> list[LeadResult]:
    """The same windows read as other leads (the model's output does not depend on the name)."""
    return [replace(r, window=replace(r.window, lead=lead)) for r, lead in zip(results, leads)]
