"""Stage 4, rows: bands of the deskewed page where ink covers most of the width — ECG rows
span ~250 mm, text lines and labels do not. The baseline (0 mV) is the row's most frequent ink
height: the isoelectric line."""
from __future__ import annotations

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from digitize.layouts import ROW_WIDTH_MM
from digitize.page.core import Row
from digitize.page.ink import _drop_specks, _runs
from digitize.page.params import ROWS


def find_rows(mask: np.ndarray, px_per_mm: float, one_length: bool = True) -> list[Row]:
    """Trace rows of a deskewed ink mask, top to bottom.

    Grid dots and crossings left in the mask can bridge a row's end to the next dots (and
    stretch it past its pulse), so rows are first read from the mask without specks; a faint,
    broken pen is mostly specks, so where the full mask shows more rows, those are taken.
    ``one_length``: bands much longer or shorter than most are stains or handwriting (not
    for a mask of the pen's strokes alone, whose shorter bands are rows broken by a stain)."""
    clean = _rows(_drop_specks(mask, max(3, int(round(0.8 * px_per_mm)))), mask, px_per_mm,
                  one_length)
    full = _rows(mask, mask, px_per_mm, one_length)
    return full if len(full) > len(clean) else clean


def block_max(mask: np.ndarray, by: int, bx: int) -> np.ndarray:
    """Maximum over each whole ``by`` × ``bx`` block of a uint8 image (a partial last block
    is dropped): a dilation anchored at the block's corner, read at the corners."""
    hb, wb = mask.shape[0] // by, mask.shape[1] // bx
    return cv2.dilate(np.ascontiguousarray(mask[:hb * by, :wb * bx]), np.ones((by, bx), np.uint8),
                      anchor=(0, 0))[::by, ::bx]


def _rows(clean: np.ndarray, mask: np.ndarray, px_per_mm: float, one_length: bool = True
          ) -> list[Row]:
    h, w = mask.shape
    k = px_per_mm
    bx = max(1, int(round(2 * k)))  # 2-mm columns
    by = max(1, int(round(0.5 * k)))  # 0.5-mm rows
    hb, wb = h // by, w // bx
    if hb < 4 or wb < 4:
        return []
    cells = block_max(clean, by, bx)
    # a row's band: ink anywhere within ±3 mm of a height, per 2-mm column
    band = cv2.dilate(cells, np.ones((int(round(6 / 0.5)) | 1, 1), np.uint8))
    coverage = band.sum(axis=1).astype(np.float64) * 2.0  # mm of width covered
    smooth = gaussian_filter1d(coverage, 2.0)
    peaks, _ = find_peaks(smooth, height=0.45 * ROW_WIDTH_MM, distance=int(8 / 0.5))
    rows = []
    occupied = {}  # per row: which 2-mm columns of its band hold ink
    ink_per_y = cv2.reduce(mask, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel()
    ys = np.arange(h)
    for i, p in enumerate(peaks):
        yc = (p + 0.5) * by
        gaps = np.diff(peaks)
        near = min([gaps[i - 1] if i > 0 else 10 ** 6, gaps[i] if i < len(gaps) else 10 ** 6])
        reach = int(min(20, 0.45 * near))  # in 0.5-mm bins: ≤ 10 mm, inside the row pitch
        if ink_per_y[np.abs(ys - yc) < 4 * k].sum() < 20:
            continue
        # extent: the longest run of occupied 2-mm columns near the band centre
        occ = cells[max(0, p - reach):p + reach + 1].max(axis=0) > 0
        # (a mask of the pen's strokes alone: its rows broken by stains are joined over 20 mm)
        runs = _runs(occ, max_gap=int(round((6 if one_length else 20) / 2)))
        a, b = max(runs, key=lambda r: r[1] - r[0])
        if (b - a + 1) * 2.0 < 0.45 * ROW_WIDTH_MM:
            continue
        # a trace is continuous: ink in most pixel columns of its extent (a dotted grid line
        # or a line of text is not)
        band_px = clean[int(max(0, yc - reach * by)):int(yc + reach * by + 1), a * bx:(b + 1) * bx]
        if band_px.any(axis=0).mean() < 0.45:
            continue
        rows.append(Row(y=float(yc), x_left=a * bx, x_right=(b + 1) * bx))
        occupied[id(rows[-1])] = occ
    rows = _merge_close(rows, 8 * k)
    # rows of a printout have one length (250 mm): a band much longer or shorter than the
    # others is a page edge, a stain or handwriting; nor does a row sit on the image's edge
    rows = [r for r in rows if 2 * k < r.y < h - 2 * k]
    rows = _drop_stray_ends(rows, mask, k)
    trimmed = set()
    if len(rows) >= 3 and one_length:
        ext = np.median([r.x_right - r.x_left for r in rows])
        left, right = np.median([r.x_left for r in rows]), np.median([r.x_right for r in rows])
        # the others' extent is known where most rows share it, ends and all
        agree = sum(abs(r.x_left - left) <= 2 * bx and abs(r.x_right - right) <= 2 * bx
                    for r in rows) > len(rows) / 2
        keep = []
        for r in rows:
            rel = (r.x_right - r.x_left) / ext - 1
            if abs(rel) < 0.1:
                keep.append(r)
            elif not agree:
                continue
            elif rel > 0 and r.x_left <= left + bx and r.x_right >= right - bx:
                # spans the others' extent and more: a stain or handwriting joined to the
                # trace's band — the row is the others' length
                r.x_left, r.x_right = float(left), float(right)
                trimmed.add(id(r))
                keep.append(r)
            elif rel < 0 and r.x_left >= left - bx and r.x_right <= right + bx and \
                    occupied[id(r)][int(left // bx):int(right // bx)].mean() >= 0.6:
                # inside the others' extent, its ink broken by more than 6 mm (a stain, a
                # scribble, a fold): the row is the others' length
                r.x_left, r.x_right = float(left), float(right)
                trimmed.add(id(r))
                keep.append(r)
        rows = keep
    for r in rows:
        r.y = baseline(mask, r.y, r.x_left, r.x_right, k)
    # two bands of one trace (its QRS peaks above and its baseline, 10 mm apart on new eik
    # val scan 00328) come to one baseline
    rows = _merge_close(rows, 8 * k)
    for r in rows:
        # pixel-precise ends: first/last ink column within ±4 mm of the baseline
        band = clean[int(max(0, r.y - 8 * k)):int(r.y + 8 * k + 1)].any(axis=0)
        lo, hi = int(max(0, r.x_left - 2 * bx)), int(min(w, r.x_right + 2 * bx))
        cols = np.flatnonzero(band[lo:hi])
        if len(cols) and id(r) not in trimmed:
            if lo + cols[0] <= r.x_left + 2 * bx:
                r.x_left = float(lo + cols[0])
            if lo + cols[-1] + 1 >= r.x_right - 2 * bx:
                r.x_right = float(lo + cols[-1] + 1)
    return rows


def _longest_stroke_mm(mask: np.ndarray, r: Row, k: float, other: Row | None = None) -> float:
    """The widest connected piece of ink that crosses a band's centre (±2 mm), in mm; pieces
    are followed up to 12 mm above and below it (a trace's QRS complexes leave the band).
    A piece that also crosses the ``other`` row's centre (±2 mm) is that row's trace, whose
    QRS complexes reach into the band."""
    top = min(r.y, other.y) if other is not None else r.y
    bottom = max(r.y, other.y) if other is not None else r.y
    y0 = int(max(0, top - 12 * k))
    sub = np.ascontiguousarray(mask[y0:int(bottom + 12 * k + 1), int(r.x_left):int(r.x_right)])
    if not sub.any():
        return 0.0
    _, labels, stats, _ = cv2.connectedComponentsWithStats(sub, connectivity=8)

    def crossing(y: float) -> np.ndarray:
        c = labels[int(max(0, y - 2 * k)) - y0:int(y + 2 * k + 1) - y0]
        return np.unique(c[c > 0])

    found = crossing(r.y)
    if other is not None:
        found = np.setdiff1d(found, crossing(other.y))
    return float(stats[found, cv2.CC_STAT_WIDTH].max()) / k if len(found) else 0.0


def _drop_stray_ends(rows: list[Row], mask: np.ndarray, k: float) -> list[Row]:
    """Rows without the first or last band where it is off the rows' even pitch and holds no
    trace-long stroke (``params.ROWS``)."""
    for end in (0, -1):
        if len(rows) < 4:
            break
        ys = [r.y for r in rows]
        gaps = np.diff(ys)
        gap, inner = (gaps[0], gaps[1:]) if end == 0 else (gaps[-1], gaps[:-1])
        ratio = gap / float(np.median(inner))
        if (ratio < ROWS.edge_gap_low or ratio > ROWS.edge_gap_high) and _longest_stroke_mm(
                mask, rows[end], k, rows[1] if end == 0 else rows[-2]) < ROWS.edge_stroke_mm:
            rows = rows[1:] if end == 0 else rows[:-1]
    return rows


def _merge_close(rows: list[Row], min_dist: float) -> list[Row]:
    out: list[Row] = []
    for r in sorted(rows, key=lambda r: r.y):
        if out and r.y - out[-1].y < min_dist:
            if r.x_right - r.x_left > out[-1].x_right - out[-1].x_left:
                out[-1] = r
            continue
        out.append(r)
    return out


def baseline(mask: np.ndarray, y_guess: float, x0: float, x1: float, px_per_mm: float,
             reach_mm: float = 6.0) -> float:
    """The most frequent ink height near ``y_guess`` between x0 and x1: the isoelectric line."""
    h, w = mask.shape
    y0 = int(max(0, y_guess - reach_mm * px_per_mm))
    y1 = int(min(h, y_guess + reach_mm * px_per_mm + 1))
    sub = mask[y0:y1, int(max(0, x0)):int(min(w, x1))]
    if sub.size == 0 or not sub.any():
        return y_guess
    hist = gaussian_filter1d(sub.sum(axis=1).astype(np.float64), max(0.5, 0.3 * px_per_mm))
    i = int(np.argmax(hist))
    if 0 < i < len(hist) - 1:  # parabolic refinement
        a, b, c = hist[i - 1], hist[i], hist[i + 1]
        den = a - 2 * b + c
        if den < 0:
            return y0 + i + 0.5 * (a - c) / den
    return float(y0 + i)


def trace_width(mask: np.ndarray, r: Row, k: float) -> float:
    """Pen width in px: the typical vertical ink run where a column crosses the trace once."""
    band = mask[int(max(0, r.y - 6 * k)):int(r.y + 6 * k + 1), int(r.x_left):int(r.x_right)]
    if band.size == 0:
        return 1.0
    d = np.diff(np.pad(band.astype(np.int8), ((1, 1), (0, 0))), axis=0)
    starts = (d == 1).sum(axis=0)
    single = starts == 1
    if single.sum() < 10:
        return 1.0
    length = band[:, single].sum(axis=0)
    return float(max(1.0, np.percentile(length, 25)))
