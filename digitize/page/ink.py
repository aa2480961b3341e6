"""Stage 2, ink: the darkest strokes relative to the local paper level, measured on the
brightest colour channel so that red/orange/green/blue grids (bright in their own channel)
vanish; long straight horizontal and vertical lines (black grids, frames) are removed. A noisy
scan's grid is filtered out of its Fourier spectrum first (``degridded``)."""
from __future__ import annotations

import cv2
import numpy as np

from digitize.page.core import PageError
from digitize.page.params import INK


def _brightest(bgr: np.ndarray) -> np.ndarray:
    """Per pixel the brightest colour channel (a coloured grid is bright in one of them)."""
    if bgr.ndim == 2:
        return bgr
    b, g, r = cv2.split(bgr)[:3]
    return cv2.max(cv2.max(b, g), r)


def pen_opening(mask: np.ndarray) -> int | None:
    """The side of a square that fits in the pen's stroke but not in the grid's lines, where
    the grid is printed (or binarised) as dark as the trace: the vertical ink runs of such a
    page have two modes, the grid's lines (1-3 px, by far the most) and the pen's width
    (where the trace runs level); None where no second mode stands out."""
    cols = np.ascontiguousarray(mask[:, ::2].T, dtype=np.int8)  # every other column, as rows
    d = np.diff(cols, axis=1, prepend=0, append=0).ravel()
    # the padded rows keep each run's start and end in its own row: flat indices subtract
    hist = np.bincount(np.flatnonzero(d == -1) - np.flatnonzero(d == 1),
                       minlength=41)[:41].astype(np.float64)
    if hist.sum() < 1000:
        return None
    m1 = int(np.argmax(hist[1:5])) + 1  # the grid's lines
    m2 = m1 + 3 + int(np.argmax(hist[m1 + 3:]))  # the pen, at least 3 px wider
    dip = float(hist[m1:m2].min())
    if hist[m2] < 2 * max(dip, 1.0) or hist[m2] < 0.002 * hist.sum() or \
            hist[m1] < 5 * hist[m2]:  # the grid's lines are most of the ink
        return None
    return (m1 + m2 + 1) // 2


def open_lines(mask: np.ndarray, length: int, axis: int) -> np.ndarray:
    """``cv2.morphologyEx(mask, MORPH_OPEN, line)`` with a line of ``length`` px along
    ``axis`` (1: horizontal), computed only on the pixel rows (columns) with enough ink to hold
    a run that long — the same result, several times faster where few lines are long.

    A pixel survives the erosion when its window is all ink within the image (outside counts
    as ink): that window holds at least min(length // 2, the row's length) pixels, so rows with
    fewer ink pixels come out empty."""
    m = mask if axis == 1 else mask.T
    count = cv2.reduce(m, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel()
    rows = np.flatnonzero(count >= min(length // 2, m.shape[1]))
    out = np.zeros_like(m)
    if len(rows):
        out[rows] = cv2.morphologyEx(np.ascontiguousarray(m[rows]), cv2.MORPH_OPEN,
                                     np.ones((1, length), np.uint8))
    return out if axis == 1 else np.ascontiguousarray(out.T)


def ink_mask(bgr: np.ndarray, px_per_mm: float, return_ratio: bool = False,
             faint: bool = False, wide_lines: bool = False, thin_grid: bool = False):
    """uint8 mask (1 = trace-like ink) of a BGR page [and the brightness / local-paper ratio].
    ``thin_grid``: a grid as dark as the trace but thinner than the pen is opened away."""
    v = _brightest(bgr)
    k = max(3, int(round(3 * px_per_mm)) | 1)
    # local paper level: dilation over ~3 mm removes every thin dark stroke; blur smooths it
    dil = cv2.dilate(v, np.ones((k, k), np.uint8))
    # the paper level is smooth: blur it at a quarter of the resolution (10× faster)
    h, w = v.shape
    small = cv2.resize(dil, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    paper = cv2.resize(cv2.GaussianBlur(small, (0, 0), max(1.0, k / 4)), (w, h),
                       interpolation=cv2.INTER_LINEAR)
    ratio = v.astype(np.float32) / np.maximum(paper.astype(np.float32), 16.0)
    # ink: 40 % darker than the paper; for a faint pen (``faint=True``, tried when no rows are
    # found), halfway between the darkest strokes and the paper
    thr = INK.threshold
    if faint:
        thr = min(0.85, max(0.6, (float(np.percentile(ratio[::4, ::4], 0.5)) + 1.0) / 2))
    mask = (ratio < thr).astype(np.uint8)
    if thin_grid:
        t = pen_opening(mask)
        if t is None:
            raise PageError("no pen wider than the grid's lines")
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((t, t), np.uint8))
    # straight lines over 40 mm are grid or frame, not trace: vertical ones always; horizontal
    # ones where such lines repeat at most 5 mm apart (a dark grid), else only those longer
    # than a row can be (260 mm: frames, rulers) — a flat, low-amplitude trace keeps one pixel
    # row inked for tens of mm, and removing those pieces would cut its row apart
    long_ = max(15, int(round(40 * px_per_mm)))
    # (dotted or dashed grid lines survive this; find_rows rejects them as discontinuous)
    # a line is looked for across 1-2 px breaks: where lighter minor lines are printed over
    # the darker major ones (a grey grid), the major lines are dashed at every crossing
    along_h = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((1, 3), np.uint8))
    along_v = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((3, 1), np.uint8))
    horiz = open_lines(along_h, long_, axis=1)
    centres = [(a + b) / 2 for a, b in _runs(horiz.any(axis=1), 0)]
    if not (len(centres) >= 5 and np.median(np.diff(centres)) <= 5.5 * px_per_mm):
        horiz = open_lines(along_h, int(round(260 * px_per_mm)), axis=1)
    vert = open_lines(along_v, long_, axis=0)
    # each line widened along itself only: a trace lying on a 1-px line (a flat lead whose
    # baseline falls on one) keeps its pixels beside it; ``wide_lines``: a pixel all round
    # (the ragged 2-3 px lines of a binarised grid)
    if wide_lines:
        lines = cv2.dilate(horiz | vert, np.ones((3, 3), np.uint8))
    else:
        lines = (cv2.dilate(horiz, np.ones((1, 3), np.uint8))
                 | cv2.dilate(vert, np.ones((3, 1), np.uint8)))
    # a pen stroke drawn along a grid line (a calibration pulse's edges and top often are)
    # stays where it is clearly darker than the darkest of the lines themselves
    on_line = ratio[((horiz | vert) & mask) > 0]
    if on_line.size:
        level = float(np.percentile(on_line, 10))
        keep = (ratio < max(level - INK.pen_under_grid, INK.pen_under_dark_grid * level)
                ).astype(np.uint8) & lines
        # ... but a long straight line of that darkness is a frame, not a stroke
        keep &= 1 - (open_lines(keep, long_, axis=1) | open_lines(keep, long_, axis=0))
        lines &= 1 - keep
    mask &= 1 - lines
    return (mask, ratio) if return_ratio else mask


def drop_grid_lines(mask: np.ndarray, px_per_mm: float) -> np.ndarray:
    """The deskewed mask without a grid printed as dark as the trace (a binarised scan): on a
    tilted scan ``ink_mask`` only takes the straight stretches of its 1-2 px lines; levelled,
    each line is a pixel row (column) inked across most of the page — which no trace is —
    and those are cleared (the trace is cut where it crosses them: rows are found all the
    same), then the grid's dots and remnants under 0.8 mm both ways."""
    out = mask.copy()
    for axis, share in ((1, 0.5), (0, 0.3)):
        cov = mask.mean(axis=axis)
        cov = np.maximum.reduce([cov, np.roll(cov, 1), np.roll(cov, -1)])  # a line's 2-3 px
        on = cov > share
        m = mask if axis == 1 else mask.T
        o = out if axis == 1 else out.T
        for a, b in _runs(on, 0):
            # a stroke crossing the line (inked both sides of it) keeps its pixels
            above = m[max(0, a - 2):a].any(axis=0) if a > 0 else np.zeros(m.shape[1], bool)
            below = m[b + 1:b + 3].any(axis=0) if b + 1 < m.shape[0] else np.zeros(m.shape[1], bool)
            o[a:b + 1] &= (above & below).astype(o.dtype)[None, :]
    return _drop_specks(out, max(3, int(round(0.8 * px_per_mm))))


def _runs(occupied: np.ndarray, max_gap: int) -> list[tuple[int, int]]:
    """[start, end] index pairs of runs of True, bridging gaps of up to max_gap."""
    idx = np.flatnonzero(occupied)
    if not len(idx):
        return []
    breaks = np.flatnonzero(np.diff(idx) > max_gap + 1)
    starts = np.r_[idx[0], idx[breaks + 1]]
    ends = np.r_[idx[breaks], idx[-1]]
    return list(zip(starts.tolist(), ends.tolist()))


def _drop_specks(mask: np.ndarray, min_extent: int, join: bool = False) -> np.ndarray:
    """The mask without ink blobs smaller than ``min_extent`` px both ways (grid dots and
    crossings, scan noise): a speck above or under a pulse's top breaks its flat profile.
    ``join``: blobs a pixel apart count as one (a stroke drawn along a fine grid comes out of
    the grid's removal as dashes shorter than a millimetre, one pixel apart); the mask's own
    pixels are kept."""
    m = (mask > 0).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(
        cv2.dilate(m, np.ones((3, 3), np.uint8)) if join else m, 8)
    keep = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]) >= min_extent
    keep[0] = False
    return (keep[lab] & (m > 0)).astype(mask.dtype)


def degridded(bgr: np.ndarray, px_per_mm: float) -> np.ndarray:
    """A noisy, shadowed scan as a clean page: its grid taken out in the Fourier domain (the
    peaks of a periodic pattern under 6 mm, wherever its tilt puts them), then only thin dark
    strokes kept (a black-hat 0.8 mm wide: broad shadows and creases drop out) and drawn black
    on white, darker where they stand further above the noise."""
    v = _brightest(bgr).astype(np.float32)
    h, w = v.shape
    H, W = cv2.getOptimalDFTSize(h), cv2.getOptimalDFTSize(w)
    pad = np.full((H, W), float(np.median(v)), np.float32)
    pad[:h, :w] = v
    f = np.fft.rfft2(pad)
    mag = np.log1p(np.abs(f)).astype(np.float32)
    peak = (mag - cv2.blur(mag, (9, 9))) > INK.degrid_peak
    fy, fx = np.fft.fftfreq(H)[:, None], np.fft.rfftfreq(W)[None, :]
    peak &= np.hypot(fx, fy) > 1.0 / (6.0 * px_per_mm)  # periods under 6 mm: the grid's
    f[cv2.dilate(peak.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0] = 0
    flat = np.clip(np.fft.irfft2(f, s=(H, W))[:h, :w], 0, 255).astype(np.float32)
    # the pixel noise averaged down over about a pen width (a 1-px pen at 150 dpi drowns in
    # noise pixel by pixel, not along its stroke)
    flat = cv2.GaussianBlur(flat, (0, 0), INK.degrid_blur_mm * px_per_mm).astype(np.uint8)
    r = max(2, int(round(0.8 * px_per_mm))) | 1
    bh = cv2.morphologyEx(flat, cv2.MORPH_BLACKHAT,
                          cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (r, r))).astype(np.float32)
    noise = float(np.median(np.abs(bh - np.median(bh)))) * 1.4826 + 1.0
    ink = np.clip((bh - INK.degrid_strong * noise) / max(3 * noise, 12.0), 0.0, 1.0)
    # hysteresis: fainter stretches of a stroke are kept where they join a clear one (the
    # filter took part of the strokes lying along grid lines: a pulse's edges, a baseline)
    weak = (bh > INK.degrid_weak * noise).astype(np.uint8)
    n, lab = cv2.connectedComponents(weak, connectivity=8)
    strong = np.zeros(n, bool)
    strong[np.unique(lab[ink > 0])] = True
    strong[0] = False
    keep = strong[lab]
    ink = np.where(keep, np.maximum(ink, 0.5), 0.0).astype(np.float32)
    # off the sheet: a scanner's black beyond a tilted page, and the image's own border
    # (the filter rings there)
    off = cv2.morphologyEx((v < 40).astype(np.uint8), cv2.MORPH_OPEN, np.ones((r, r), np.uint8))
    off = cv2.dilate(off, np.ones((r, r), np.uint8))
    m = max(2, int(round(1.5 * px_per_mm)))
    off[:m], off[-m:], off[:, :m], off[:, -m:] = 1, 1, 1, 1
    ink[off > 0] = 0
    clean = (255 * (1 - ink)).astype(np.uint8)
    return cv2.cvtColor(clean, cv2.COLOR_GRAY2BGR)
