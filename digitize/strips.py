"""Strip pre- and post-processing shared by training, evaluation and the deployed tool.

pre:  page image + where a lead's window lies on the page → a calibrated, normalised strip
post: per-column model outputs (mm) checked against the strip's ink → millivolts → a signal at
      the output rate
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
from scipy.interpolate import CubicSpline
from scipy.ndimage import gaussian_filter1d, median_filter

from digitize.model_spec import StripSpec


@dataclass(frozen=True)
class StripGeometry:
    """Where a lead window lies on the flat page, in page millimetres.

    ``page_to_image`` maps flat-page pixels (at ``px_per_mm``, OpenCV centre convention) to
    image pixels — the identity for an unwarped page, a homography for a photo.
    """

    x0_mm: float  # left edge of the window (time t0)
    width_mm: float
    centre_mm: float  # the lead's baseline (0 mV)
    px_per_mm: float  # of the flat page
    page_to_image: np.ndarray  # 3×3


def strip_matrix(geom: StripGeometry, px_x: float, px_y: float, height_mm: float) -> np.ndarray:
    """3×3 matrix mapping strip pixels (at px_x, px_y per mm) to image pixels."""
    k = geom.px_per_mm
    # strip px (u, v) → page mm → flat page px
    s = np.array([[k / px_x, 0, (geom.x0_mm + 0.5 / px_x) * k - 0.5],
                  [0, k / px_y, (geom.centre_mm - height_mm / 2 + 0.5 / px_y) * k - 0.5],
                  [0, 0, 1]], np.float64)
    return np.asarray(geom.page_to_image, np.float64) @ s


def cut_strip(grey: np.ndarray, geom: StripGeometry, spec: StripSpec) -> np.ndarray:
    """Cut and normalise one lead's strip from a greyscale page → float32 [height_px, width_px].

    The window is first sampled at the page's own resolution (no detail lost to the warp), then
    area-averaged down to the model's px/mm, so a 1-px trace never falls between samples.
    """
    return normalise(_cut(grey, geom, spec, spec.height_mm, spec.height_px))


def _cut(grey: np.ndarray, geom: StripGeometry, spec: StripSpec, height_mm: float,
         h_out: int) -> np.ndarray:
    k = geom.px_per_mm
    w_hi = max(1, int(round(geom.width_mm * k)))
    h_hi = max(1, int(round(height_mm * k)))
    # output column c is centred on x0 + c / px_per_mm_x (time t0 + c / columns-per-second), so
    # columns fall on the sample instants of 100/500 Hz drawings: start half a column early
    shifted = replace(geom, x0_mm=geom.x0_mm - 0.5 / spec.px_per_mm_x)
    m = strip_matrix(shifted, w_hi / geom.width_mm, h_hi / height_mm, height_mm)
    hi = cv2.warpPerspective(grey, m, (w_hi, h_hi), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_REPLICATE)
    w_out = spec.fixed_width_px or max(1, int(round(geom.width_mm * spec.px_per_mm_x)))
    interp = cv2.INTER_AREA if (w_out <= w_hi and h_out <= h_hi) else cv2.INTER_LINEAR
    return cv2.resize(hi, (w_out, h_out), interpolation=interp)


def cut_strip_along(grey: np.ndarray, geom: StripGeometry, spec: StripSpec,
                    path_mm: np.ndarray) -> np.ndarray:
    """``cut_strip`` with each column's centre moved up by ``path_mm`` (per output column, mm
    above the baseline): a trace that wanders off its row is brought back to the strip's
    centre line, where the model expects it. Read values are then heights above the path."""
    path = np.asarray(path_mm, np.float32)
    reach = float(np.abs(path).max()) if len(path) else 0.0
    ky = spec.px_per_mm_y
    pad = int(np.ceil(reach * ky))
    if pad == 0:
        return cut_strip(grey, geom, spec)
    pad += 1  # (a row's slack for the linear interpolation)
    h = spec.height_px
    tall = _cut(grey, geom, spec, spec.height_mm + 2 * pad / ky, h + 2 * pad).astype(np.float32)
    if tall.shape[1] != len(path):
        raise ValueError(f"path of {len(path)} columns for a strip of {tall.shape[1]}")
    # output row r of column c shows tall row r + pad - path[c] * ky (up is fewer rows)
    rows = np.arange(h, dtype=np.float32)[:, None] + pad - path[None, :] * ky
    cols = np.broadcast_to(np.arange(tall.shape[1], dtype=np.float32)[None, :], rows.shape)
    out = cv2.remap(tall, np.ascontiguousarray(cols), np.ascontiguousarray(rows),
                    cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return normalise(np.clip(out, 0, 255).astype(np.uint8))


#: A window's slow path: the median of its confident columns' heights over this long (s: a
#: QRS complex is a tenth of that, so the path follows the baseline, not the beats), then
#: smoothed by a Gaussian of this width (s).
PATH_MEDIAN_S, PATH_SMOOTH_S = 0.3, 0.2


def slow_path(value_mm: np.ndarray, conf: np.ndarray, columns_per_s: float,
              min_conf: float = 0.5) -> np.ndarray | None:
    """The baseline a window's reading wanders along (mm above the strip's centre line, per
    column), from its columns read with confidence ``min_conf`` or more (interpolated across
    the others); None where under half the columns are."""
    v = np.asarray(value_mm, np.float64)
    idx = np.flatnonzero(np.asarray(conf) >= min_conf)
    if len(idx) < max(3, 0.5 * len(v)):
        return None
    med = median_filter(v[idx], size=max(3, int(PATH_MEDIAN_S * columns_per_s) | 1),
                        mode="nearest")
    full = np.interp(np.arange(len(v)), idx, med)
    return gaussian_filter1d(full, PATH_SMOOTH_S * columns_per_s, mode="nearest"
                             ).astype(np.float32)


#: Shading broader than this (mm) is lighting, not ink: a crease, a wrinkle, a shadow.
EVEN_LIGHT_MM = 3.0


#: How a noisy scan's paper level is read instead (``mm``, ``level_px_mm``, ``blur`` of
#: ``even_light``), twice: ecg-image-kit's crumpled scans cross the trace with creases and
#: facet edges narrower than EVEN_LIGHT_MM, which a finer level takes out, and the trace model
#: reads each levelled page with errors of its own; the two readings are averaged
#: (``reconstruct``). Chosen on eik val scans (shared 19 pages and the 75-page extra set's
#: 24 converted): one reading at EVEN_LIGHT_MM 12.00 / 11.26 dB; at the first of these alone
#: 12.14 / 11.36, the second alone 12.39 / 11.40, the two averaged 12.54 / 11.57. (The
#: closings come out at 1.75 and 2.3 mm: their kernels are an odd number of pixels.)
SCAN_LIGHT = ((1.5, 4.0, 3.0), (2.0, 3.0, 2.0))


def even_light(grey: np.ndarray, px_per_mm: float, mm: float = EVEN_LIGHT_MM,
               level_px_mm: float = 2.0, blur: float = 3.0) -> np.ndarray:
    """The page with its paper brought to one brightness: divided by the local paper level, a
    grey closing over ``mm`` (it takes out every stroke thinner than that — trace, grid,
    text — and keeps broad shading), read at ``level_px_mm`` and smoothed over 1/``blur`` of
    the closing. A dark crease across a trace then no longer reads as ink; on an evenly lit
    page this is a uniform scaling, which ``normalise`` ignores."""
    h, w = grey.shape[:2]
    f = min(1.0, level_px_mm / max(px_per_mm, 1e-3))  # the paper level at ~level_px_mm
    small = cv2.resize(grey, (max(1, int(w * f)), max(1, int(h * f))),
                       interpolation=cv2.INTER_AREA) if f < 1.0 else grey
    r = max(3, int(round(mm * px_per_mm * f)) | 1)
    paper = cv2.morphologyEx(small, cv2.MORPH_CLOSE, np.ones((r, r), np.uint8))
    paper = cv2.GaussianBlur(paper, (0, 0), r / blur)
    if paper.shape != grey.shape:
        paper = cv2.resize(paper, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.divide(grey, np.maximum(paper, 16), scale=255.0)  # saturates at 255


def normalise(grey: np.ndarray) -> np.ndarray:
    """NORMALISATION_V1: ink level relative to the strip's background, robust to lighting."""
    ink = 1.0 - grey.astype(np.float32) * (1 / 255)
    med = float(np.median(ink))
    hi = float(np.percentile(ink, 99.5))
    return np.clip((ink - med) / max(hi - med, 0.1), -1.0, 4.0).astype(np.float32)


def column_times(n_columns: int, t0: float, speed_mm_s: float, px_per_mm_x: float
                 ) -> np.ndarray:
    """Time (s) at the centre of each output column: column c sits at t0 + c / (px/mm · mm/s)."""
    return t0 + np.arange(n_columns) / px_per_mm_x / speed_mm_s


def columns_to_signal(value_mm: np.ndarray, gain_mm_mv: float, t_columns: np.ndarray,
                      fs: float, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-column heights (mm) → (sample indices, mV) at ``fs`` for t0 <= n/fs < t1.

    Cubic-spline interpolation between column centres (linear interpolation is a [½, ½]
    low-pass wherever samples fall between columns: at 100 Hz output from 100 columns/s it
    halves the QRS band); extrapolated by at most one column at the ends.
    """
    n0 = int(np.ceil(t0 * fs - 1e-9))
    n1 = int(np.ceil(t1 * fs - 1e-9))
    idx = np.arange(n0, n1)
    # the window's last column starts one column before t1: extrapolate the spline up to one
    # column beyond the outermost centres, no further
    dt = (t_columns[-1] - t_columns[0]) / max(len(t_columns) - 1, 1)
    t = np.clip(idx / fs, t_columns[0] - dt, t_columns[-1] + dt)
    v = np.asarray(value_mm, np.float64) / gain_mm_mv
    if len(v) >= 4:
        mv = CubicSpline(t_columns, v, bc_type="natural")(t)
    else:  # too few columns for a spline: linear, held flat outside
        mv = np.interp(t, t_columns, v)
    return idx, mv.astype(np.float32)


#: Normalised strip values above this are ink (the trace is ~1, paper 0, grid lines mostly less).
INK_LEVEL = 0.35
#: Longest run of columns (at the model's 4 px/mm: 4 mm) that ``follow_ink`` may replace.
STRAY_MAX_COLUMNS = 16
#: A replaced run must lie this far (mm) from the trace around it: labels print a few mm away;
#: smaller departures are left to the model (a faint QRS tip looks like one).
STRAY_MIN_MM = 3.0


def _rows(value_mm: np.ndarray, spec: StripSpec, n_rows: int) -> np.ndarray:
    r = np.round((spec.height_mm / 2 - value_mm) * spec.px_per_mm_y - 0.5).astype(int)
    return np.clip(r, 0, n_rows - 1)


def follow_ink(value_mm: np.ndarray, strip: np.ndarray, spec: StripSpec
               ) -> tuple[np.ndarray, int]:
    """Replace short runs of columns where the model left the trace for other ink → (values, n).

    Next to a printed lead label (or a neighbour's stroke) the model sometimes reads the glyph
    for a few columns, confidently, then returns to the trace. A pen never jumps: between two
    adjacent columns the drawn stroke covers every height in between. So the per-column values
    are checked against the strip's ink: a step between columns not covered by ink (beyond two
    rows of slack: a faint tip) is broken. The longest chain of columns linked by unbroken
    steps — or by a skip of up to ``STRAY_MAX_COLUMNS`` columns to a value within 1 mm +
    0.5 mm per column — is kept; a skipped run is replaced by the straight line across it only
    where ink runs along that line (the trace is there) and the run departed from it by more
    than ``STRAY_MIN_MM``. Anything else is left as the model read it.
    """
    v = np.asarray(value_mm, np.float64)
    n = len(v)
    if strip.shape[1] != n or n < 3 or spec.fixed_height_px or spec.fixed_width_px:
        return value_mm, 0  # (a resized, uncalibrated strip: rows are not millimetres)
    ink = strip > INK_LEVEL
    h = ink.shape[0]
    r = _rows(v, spec, h)
    cols = np.arange(n - 1)
    lo, hi = np.minimum(r[:-1], r[1:]), np.maximum(r[:-1], r[1:])
    either = np.vstack([np.zeros((1, n - 1), np.int32),
                        np.cumsum(ink[:, :-1] | ink[:, 1:], axis=0, dtype=np.int32)])
    span = hi - lo + 1
    linked = (span - (either[hi + 1, cols] - either[lo, cols])) <= np.maximum(2, 0.2 * span)
    if linked.all():
        return value_mm, 0
    # longest chain: best[b] = columns kept up to b with b kept
    best = np.ones(n)
    prev = np.full(n, -1)
    for b in range(1, n):
        if linked[b - 1]:
            best[b], prev[b] = best[b - 1] + 1, b - 1
        a = np.arange(max(0, b - STRAY_MAX_COLUMNS - 1), b - 1)
        if len(a):
            ok = np.abs(v[b] - v[a]) <= 1.0 + 0.5 * (b - a)
            if ok.any():
                j = a[ok][np.argmax(best[a[ok]])]
                if best[j] + 1 > best[b]:
                    best[b], prev[b] = best[j] + 1, j
    keep = np.zeros(n, bool)
    b = int(np.argmax(best))
    keep[b + 1:] = True  # past the chain's end and before its start: as read
    while b >= 0:
        keep[b] = True
        if prev[b] < 0:
            keep[:b] = True
        b = prev[b]
    if keep.all():
        return value_mm, 0
    idx = np.arange(n)
    line = np.interp(idx, idx[keep], v[keep])
    rl = _rows(line, spec, h)
    on_ink = np.zeros(n, bool)
    for d in (-2, -1, 0, 1, 2):
        on_ink |= ink[np.clip(rl + d, 0, h - 1), idx]
    out = v.copy()
    edges = np.flatnonzero(np.diff(np.r_[0, (~keep).astype(np.int8), 0]))
    changed = 0
    for s0, s1 in zip(edges[::2], edges[1::2]):
        if on_ink[s0:s1].mean() >= 0.8 and np.abs(v[s0:s1] - line[s0:s1]).max() > STRAY_MIN_MM:
            out[s0:s1] = line[s0:s1]
            changed += s1 - s0
    if not changed:
        return value_mm, 0
    return out.astype(np.asarray(value_mm).dtype), changed
