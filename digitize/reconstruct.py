"""Lead windows on a page → model → a 12-lead signal in mV (NaN where no window is drawn)."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from digitize.leads import LEADS
from digitize.strips import (StripGeometry, column_times, columns_to_signal, cut_strip,
                             follow_ink)


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

    def samples(self, fs: float, n: int) -> np.ndarray:
        """This window alone as an [n] signal (NaN elsewhere)."""
        out = np.full(n, np.nan, np.float32)
        out[self.idx] = self.mv
        return out


def reconstruct(grey: np.ndarray, windows: list[LeadWindow], engine, fs: float, n_samples: int,
                batch_size: int = 16, trim_conf: float | None = None
                ) -> tuple[np.ndarray, list[LeadResult]]:
    """Run the model over every window of a page → (signal [n_samples, 12] mV, per-window results).

    The model's per-column reading is first checked against the strip's ink (``follow_ink``:
    short runs read off a printed label or a neighbour's stroke are replaced). Where a lead is
    drawn more than once (a rhythm strip repeats lead II), the longer window
    wins for the samples both cover. With ``trim_conf``, columns at either end of a window whose
    confidence stays under it (a window running past the end of a trace cut by the image edge)
    become NaN — not drawn — instead of whatever the model guessed there.
    """
    spec = engine.spec
    strips = [cut_strip(grey, w.geom, spec) for w in windows]
    outputs = engine.run(strips, batch_size=batch_size)
    results = []
    for w, strip, (value, conf) in zip(windows, strips, outputs):
        value, stray = follow_ink(value, strip, spec)
        tc = column_times(len(value), w.t0, w.speed, spec.px_per_mm_x)
        idx, mv = columns_to_signal(value, w.gain, tc, fs, w.t0, w.t1)
        keep = (idx >= 0) & (idx < n_samples)
        idx, mv = idx[keep], mv[keep]
        if np.isfinite(w.t_ink_end):
            mv = np.where(idx / fs > w.t_ink_end, np.nan, mv)
        if trim_conf is not None:
            good = np.flatnonzero(np.asarray(conf) >= trim_conf)
            dt = 1.0 / (spec.px_per_mm_x * w.speed)
            if len(good) == 0:
                mv = np.full_like(mv, np.nan)
            else:
                t = idx / fs
                mv = np.where((t < tc[good[0]] - dt) | (t > tc[good[-1]] + dt), np.nan, mv)
        results.append(LeadResult(w, value, conf, idx, mv, stray))
    return assemble(results, n_samples), results


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
