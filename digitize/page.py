"""Page analysis: ink → skew → trace rows → calibration pulses → scale → lead windows.

Everything here works on the image alone (numpy/OpenCV); the model is not involved.

1. *Ink*: the darkest strokes relative to the local paper level, measured on the brightest
   colour channel so that red/orange/green/blue grids (bright in their own channel) vanish;
   long straight horizontal and vertical lines (black grids, frames) are removed.
2. *Skew*: the rotation that makes the ink's row profile sharpest (traces run along the rows).
3. *Rows*: bands of the deskewed page where ink covers most of the width — ECG rows span
   ~250 mm, text lines and labels do not. The baseline (0 mV) is the row's most frequent ink
   height: the isoelectric line.
4. *Pulses*: a 1-mV calibration pulse is a flat-topped step at either end of a row: its height
   gives the gain (mm/mV), its position where the trace starts or ends.
5. *Scale*: px/mm from the grid's pitch, measured to ~0.01 % from the whole-width darkness
   profile near the scale the rows' trace length implies (a full row is 250 mm on every standard
   printout) — which rules out the grid's harmonics; the row length itself where no grid shows.
   At 100 Hz a 0.1-mm error in where a panel starts is a third of a sample, so ends are found to
   a fraction of a pixel from pen-edge profiles.
6. *Photos*: ``page_homography`` flattens a page lying on a darker background (the paper's
   outline, four Hough lines) before all of the above.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from digitize.geometry import grid_pitch, refine_pitch
from digitize.layouts import GAINS, ROW_WIDTH_MM
from digitize.notes import Code, Note

#: Gains a calibration pulse may show, mm per mV (2.5: chest leads at half of 5 mm/mV).
MIN_PX_PER_MM = 2.3
#: Offsets (mm) from a calibration pulse's timing stroke to the trace's first sample (left
#: pulse) or from the last sample to the stroke (right pulse) that printers are known to use:
#: flush (ecg-image-kit), or after a foot and a gap (1 + 1 mm left, 0.5 + 1 mm right: our
#: renderer's, modelled on electrocardiographs that print the pulse apart). A page's own
#: measurement picks one where it agrees within CONVENTION_SNAP_MM, else is used as measured.
PULSE_TO_TRACE_MM = {"left": (0.0, 2.0), "right": (0.0, 1.5)}
CONVENTION_SNAP_MM = 0.6
#: Residual bias (px) of the stroke-centre estimators (their ink centroid; mostly OpenCV's
#: pixel-centre convention), measured on 160 rendered validation-split clean and scan pages:
#: median |error| 0.05 px after a left pulse, 0.13 px before a right one.
PULSE_BIAS_PX = {"left": 0.49, "right": 0.58}
#: A full row's last sample lies 1/fs before its 10 s: 0.25 mm at 100 Hz, 0.05 mm at 500 Hz
#: (25 mm/s). The source's rate is unknown, so the middle is taken (error at most 4 ms).
LAST_SAMPLE_MM = 0.15
#: How far above the trace's baseline a calibration pulse's vertical stroke may end: some
#: printers draw the pulse from its own zero while the trace's first sample lies off it
#: (ecg-image-kit pages: up to ~1.5 mm).
FOOT_OFF_MM = 3.0
#: Ink on a grid line is the pen's (not the line's) where its brightness ratio lies this far
#: under the darkest tenth of the line pixels (chosen on ecg-image-kit val pages, whose
#: pulses are drawn along grid lines: grids at 0.17-0.56, pens at 0.02-0.1).
PEN_UNDER_GRID = 0.25
#: ... or, on a grid printed nearly black, under this share of that level.
PEN_UNDER_DARK_GRID = 0.4
#: A Fourier peak of the page this far (log magnitude) above its 9x9 neighbourhood is the
#: grid's (``degridded``).
DEGRID_PEAK = 1.5
DEGRID_BLUR_MM = 0.1
DEGRID_WEAK = 3.0
DEGRID_STRONG = 4.5
DEGRIDDED = Note(Code.DEGRIDDED, "noisy scan: grid filtered out to find the rows")
GRID_NOT_MEASURED = Note(Code.GRID_NOT_MEASURED,
                         "grid not measurable: scale from the row length (250 mm)")
TIME_ORIGIN_ASSUMED = Note(Code.TIME_ORIGIN_ASSUMED,
                           "time origin not measured: no gap between pulse and trace seen, "
                           "a printer's convention assumed")
#: A gap between pulse and trace is blank this far (mm) above and below the baseline.
GAP_CLEAR_MM = 6.0
#: How far below the trace's baseline a pulse's edge stroke is followed to find its base.
BASE_BELOW_MM = 4.0
#: A grid is "seen" when its Fourier peak stands this far above the median nearby.
GRID_RATIO = 8.0
#: ... or this far when it lies where the rows' length says (a faint or dotted grid).
GRID_RATIO_NEAR_ROWS = 4.5
#: ... but one under GRID_RATIO that differs from agreeing rows' length by more than this is
#: not a grid (a page without grid had a peak of ratio 5.2 at +2.8 %; faint grids agree < 0.1 %
#: on rendered pages, but real printouts' rows are not always 250 mm: 1.8 % on one scanner's)
WEAK_GRID_ROWS_AGREE = 0.025
WARN_PX_PER_MM = 4.0
#: A photographed sheet is cut out this far (share of the image's long side) inside its
#: measured outline (the outline is found to ~0.2 % of the image in the median).
OUTLINE_INSET = 0.0025
#: How far outward (share of the image's long side) a side of the sheet is looked for past
#: its first estimate, and the least step in log-brightness (paper over background) taken
#: for its edge (a grid line or a soft shadow makes far smaller steps over 6 px).
OUTLINE_SEARCH = 0.08
OUTLINE_MIN_STEP = 0.2


class PageError(Exception):
    """The page cannot be analysed (no ECG found, unsupported layout...): a one-line reason.
    ``pulses``, ``rows``: calibration pulses and trace rows seen before it failed (ECG
    evidence), where rows were found."""

    def __init__(self, message: str, pulses: int | None = None, rows: int | None = None):
        super().__init__(message)
        self.pulses = pulses
        self.rows = rows


class NoTraceRows(PageError):
    """No trace row stands out on the page (``analyse`` looks again for a fainter pen)."""

    def __init__(self) -> None:
        super().__init__("no ECG trace rows found on the page")


@dataclass
class Row:
    y: float  # baseline, deskewed px
    x_left: float  # ink extent, deskewed px
    x_right: float
    x_start: float = float("nan")  # where the trace (time 0 of the row) starts
    x_end: float = float("nan")  # where it ends
    pulse: str = "none"  # 'left' | 'right' | 'none'
    pulse_mm: float = float("nan")  # pulse height in mm (gain for 1 mV)
    step_mm: float = float("nan")  # a stepped pulse's second height (chest leads' gain)
    x_stroke: float = float("nan")  # the pulse's timing stroke (fall of a left pulse, rise of
    # a right one): its centre, deskewed px
    x_resume: float = float("nan")  # trace cap across a blank gap from that stroke, or nan
    cap_end: float = float("nan")  # the trace's right pen cap where it ends on paper, or nan
    cap_start: float = float("nan")  # its left pen cap where it starts on blank paper, or nan

    def drop_pulse(self) -> None:
        self.pulse, self.pulse_mm, self.step_mm = "none", float("nan"), float("nan")


@dataclass
class PageGeometry:
    px_per_mm: float
    scale_source: str  # 'grid' | 'rows' | 'given'
    skew_deg: float
    rows: list[Row]
    deskew: np.ndarray  # 3×3: image px → deskewed px
    size: tuple[int, int]  # deskewed canvas (w, h)
    grid_px_per_mm: float = float("nan")
    mask: np.ndarray | None = None  # deskewed ink mask
    rectified: bool = False  # a page quadrilateral was found and flattened (photos)
    on_background: bool = False  # a sheet photographed on a darker background
    grey: np.ndarray | None = None  # deskewed grey page (for local grid measurements)
    warnings: list[Note] = field(default_factory=list)
    dark: np.ndarray | None = None  # deskewed: 1 where 40 % darker than the paper, lines and all

    @property
    def thin_grid(self) -> bool:
        """Whether a grid as dark as the trace but thinner than its pen is seen (~15 ms: asked
        only where it matters)."""
        return self.dark is not None and pen_opening(self.dark) is not None

    @property
    def to_image(self) -> np.ndarray:
        return np.linalg.inv(self.deskew)


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
    thr = 0.6
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
        keep = (ratio < max(level - PEN_UNDER_GRID, PEN_UNDER_DARK_GRID * level)
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


def _profile_sharpness(x: np.ndarray, y: np.ndarray, angle_deg: float, bin_px: float) -> float:
    a = np.deg2rad(angle_deg)
    yr = y * np.cos(a) - x * np.sin(a)
    h = np.bincount(((yr - yr.min()) / bin_px).astype(np.int64))
    return float(np.dot(h, h))


def estimate_skew(mask: np.ndarray, px_per_mm: float, max_deg: float = 12.0) -> float:
    """Rotation (degrees, counter-clockwise in image terms) that levels the trace rows."""
    ys, xs = np.nonzero(mask)
    if len(xs) < 50:
        return 0.0
    if len(xs) > 200_000:  # a fixed subsample: the profile only needs a few points per bin
        sel = np.random.default_rng(0).choice(len(xs), 200_000, replace=False)
        xs, ys = xs[sel], ys[sel]
    xs = xs.astype(np.float64) - mask.shape[1] / 2
    ys = ys.astype(np.float64)
    bin_px = max(1.0, 0.5 * px_per_mm)
    coarse = np.arange(-max_deg, max_deg + 1e-9, 0.5)
    best = coarse[np.argmax([_profile_sharpness(xs, ys, a, bin_px) for a in coarse])]
    fine = np.arange(best - 0.5, best + 0.5 + 1e-9, 0.05)
    return float(fine[np.argmax([_profile_sharpness(xs, ys, a, bin_px) for a in fine])])


def _deskew_matrix(shape: tuple[int, int], angle_deg: float) -> tuple[np.ndarray, tuple[int, int]]:
    """3×3 image → deskewed canvas (rotated by -angle about the centre, enlarged to fit)."""
    h, w = shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle_deg, 1.0)
    # y' = y cos a - x sin a (about the centre): the rotation estimate_skew levels
    a = np.deg2rad(angle_deg)
    nw = int(np.ceil(abs(w * np.cos(a)) + abs(h * np.sin(a))))
    nh = int(np.ceil(abs(h * np.cos(a)) + abs(w * np.sin(a))))
    m[0, 2] += (nw - w) / 2
    m[1, 2] += (nh - h) / 2
    return np.vstack([m, [0, 0, 1]]), (nw, nh)


def paper_region(bgr: np.ndarray, px_per_mm: float) -> np.ndarray | None:
    """uint8 mask (1 = on the paper, 2 mm in from its edge) of a photographed sheet on a darker
    background; None where the paper fills the image (a scan) or no clear sheet stands out."""
    h, w = bgr.shape[:2]
    s = min(1.0, 600.0 / max(h, w))
    small = cv2.resize(bgr, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
    small = _brightest(small)
    small = cv2.GaussianBlur(small, (0, 0), 2)
    _, bright = cv2.threshold(small, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    # a trace that runs to the sheet's edge must not cut the paper in two
    bright = cv2.morphologyEx(bright, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    n, lab, stats, _ = cv2.connectedComponentsWithStats(bright, 8)
    if n < 2:
        return None
    i = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    contours, _ = cv2.findContours((lab == i).astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    c = max(contours, key=cv2.contourArea)
    filled = np.zeros_like(bright)
    cv2.drawContours(filled, [c], -1, 1, -1)  # the sheet with its ink
    area = filled.mean()
    hull = cv2.contourArea(cv2.convexHull(c))
    if not 0.3 < area < 0.97 or cv2.contourArea(c) < 0.9 * hull:
        return None
    # a background, not just the other side of a trace or a shadow on the paper: clearly darker
    if np.median(small[filled == 0]) > 0.8 * np.median(small[filled == 1]):
        return None
    region = cv2.resize(filled, (w, h), interpolation=cv2.INTER_NEAREST)
    e = max(3, int(round(2 * px_per_mm)) | 1)
    return cv2.erode(region, np.ones((e, e), np.uint8))


def _on_paper(rows: list[Row], paper: np.ndarray | None, k: float,
              flat_height: int | None = None) -> list[Row]:
    """Rows whose centre line lies mostly on the paper (none left: no trace was seen, and
    ``analyse`` looks again for a fainter pen). A flattened photo (``flat_height`` given) is
    all paper, its edges at the image's: a "row" within 4 mm of its top or bottom is that
    edge, not a trace."""
    if flat_height is not None:
        rows = [r for r in rows if 4 * k < r.y < flat_height - 4 * k]
    if paper is None or not rows:
        return rows
    h, w = paper.shape
    keep = []
    for r in rows:
        xs = np.arange(int(max(0, r.x_left)), int(min(w, r.x_right)))
        y = int(min(h - 1, max(0, round(r.y))))
        if len(xs) and paper[y, xs].mean() >= 0.5:
            keep.append(r)
    return keep


def _runs(occupied: np.ndarray, max_gap: int) -> list[tuple[int, int]]:
    """[start, end] index pairs of runs of True, bridging gaps of up to max_gap."""
    idx = np.flatnonzero(occupied)
    if not len(idx):
        return []
    breaks = np.flatnonzero(np.diff(idx) > max_gap + 1)
    starts = np.r_[idx[0], idx[breaks + 1]]
    ends = np.r_[idx[breaks], idx[-1]]
    return list(zip(starts.tolist(), ends.tolist()))


def find_rows(mask: np.ndarray, px_per_mm: float) -> list[Row]:
    """Trace rows of a deskewed ink mask, top to bottom.

    Grid dots and crossings left in the mask can bridge a row's end to the next dots (and
    stretch it past its pulse), so rows are first read from the mask without specks; a faint,
    broken pen is mostly specks, so where the full mask shows more rows, those are taken."""
    clean = _rows(_drop_specks(mask, max(3, int(round(0.8 * px_per_mm)))), mask, px_per_mm)
    full = _rows(mask, mask, px_per_mm)
    return full if len(full) > len(clean) else clean


def block_max(mask: np.ndarray, by: int, bx: int) -> np.ndarray:
    """Maximum over each whole ``by`` × ``bx`` block of a uint8 image (a partial last block
    is dropped): a dilation anchored at the block's corner, read at the corners."""
    hb, wb = mask.shape[0] // by, mask.shape[1] // bx
    return cv2.dilate(np.ascontiguousarray(mask[:hb * by, :wb * bx]), np.ones((by, bx), np.uint8),
                      anchor=(0, 0))[::by, ::bx]


def _rows(clean: np.ndarray, mask: np.ndarray, px_per_mm: float) -> list[Row]:
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
        runs = _runs(occ, max_gap=int(round(6 / 2)))
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
    trimmed = set()
    if len(rows) >= 3:
        ext = np.median([r.x_right - r.x_left for r in rows])
        left, right = np.median([r.x_left for r in rows]), np.median([r.x_right for r in rows])
        # the others' extent is known where most rows share it, ends and all
        agree = sum(abs(r.x_left - left) < 2 * bx and abs(r.x_right - right) < 2 * bx
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


def find_pulse(mask: np.ndarray, row: Row, px_per_mm: float, side: str
               ) -> tuple[float, float, float, float] | None:
    """A flat-topped calibration pulse at one end of a row → (x_rise, x_fall, height_mm,
    step_mm): ``step_mm`` is the height of a stepped pulse's second half (split gain: limb
    leads at ``height_mm``, chest leads at ``step_mm``), else ``height_mm``.

    Per column the topmost ink above the baseline; a pulse is a run of 2.5–13 mm of columns
    at a constant height of 2+ mm (or two runs a factor 2 apart), joined to the baseline by a
    vertical edge at its row-end side (which rules out the pulse of the row above), at most
    3.5 mm from the row's end.
    """
    k = px_per_mm
    h, w = mask.shape
    # the row's ink extent may stop at the pulse's near edge (a tall pulse's top lies outside
    # the row band): the window reaches 14 mm past it (a 50-mm/s pulse is 12 mm long)
    span = int(round(28 * k))
    if side == "left":
        x0 = int(max(0, row.x_left - 14 * k))
        x1 = min(w, x0 + span)
    else:
        x1 = int(min(w, row.x_right + 14 * k))
        x0 = max(0, x1 - span)
    y0 = int(max(0, row.y - 24 * k))
    yb = int(round(row.y))
    sub = mask[y0:min(h, yb + 1), x0:x1]
    if sub.size == 0 or sub.shape[0] < 3 * k:
        return None
    sub = _drop_specks(sub, max(3, int(round(1.0 * k))))
    # two readings of "the pulse top" per column: the topmost ink (robust to specks under the
    # top), and the top of the stroke first met going up from 1.5 mm above the baseline (the
    # row above, its pulse included, may reach down into the window); the edge test decides
    lim = max(1, sub.shape[0] - int(round(1.5 * k)))
    upper = sub[:lim] > 0
    has = upper.any(axis=0)
    topmost = np.argmax(upper, axis=0)
    nearest = lim - 1 - np.argmax(upper[::-1], axis=0)
    for c in np.flatnonzero(has):
        t = nearest[c]
        while t > 0 and sub[t - 1, c]:
            t -= 1
        nearest[c] = t
    best = None
    gap = max(2, int(round(0.5 * k)))
    for top in (topmost, nearest):
        raw = np.where(has, (row.y - (top + y0)) / k, np.nan)
        height = _bridge(raw, gap)
        bridged = np.isfinite(height) & ~np.isfinite(raw)
        flat = np.zeros(len(height), bool)
        flat[1:] = np.abs(np.diff(height)) <= max(0.35, 1.01 / k)  # 1-px steps: raster
        # one flat run (2.5 mm high: chest leads at half of 5 mm/mV), or two adjacent ones a
        # factor 2 apart: the stepped pulse of split gain (limb leads at the first height,
        # chest leads at the second)
        runs = [(max(0, a - 1), b) for a, b in _runs(flat & (height >= 2.0), max_gap=0)]
        cands = [[ab] for ab in runs]
        runs = [(a, b) for a, b in runs if b - a + 1 >= 1.0 * k]
        for (a1, b1), (a2, b2) in zip(runs, runs[1:]):
            h1, h2 = (float(np.median(height[a:b + 1])) for a, b in ((a1, b1), (a2, b2)))
            if a2 - b1 <= max(2, 0.5 * k) and max(h1, h2) >= 3.0 \
                    and abs(abs(np.log(h1 / h2)) - np.log(2)) < 0.2 \
                    and 0.5 <= (b2 - a2 + 1) / (b1 - a1 + 1) <= 2 \
                    and _step_joined(sub, top, b1, a2, abs(h1 - h2) * k):
                cands.append([(a1, b1), (a2, b2)])
        for spans in cands:
            a, b = spans[0][0], spans[-1][1]
            width_mm = (b - a + 1) / k
            if not 2.5 <= width_mm <= 13.0:
                continue
            tops = [int(np.median(top[sa:sb + 1])) for sa, sb in spans]
            t = tops[0] if side == "left" else tops[-1]  # the stroke at the row-end side
            edge = range(max(0, a - int(1.5 * k)), min(len(height), a + int(0.6 * k) + 1)) \
                if side == "left" else \
                range(max(0, b - int(0.6 * k)), min(len(height), b + int(1.5 * k) + 1))
            # (a pair of columns: an edge left slanted by a residual tilt steps a pixel).
            # The stroke may stop short of the trace's baseline: a printer can draw the pulse
            # from its own zero while the trace starts off it (up to FOOT_OFF_MM above)
            feet = [_stroke_length(sub[t:, c:c + 2].max(axis=1), max(2, int(0.6 * k)))
                    for c in edge]
            need = max(0.6 * (sub.shape[0] - t), sub.shape[0] - t - FOOT_OFF_MM * k)
            reach = [c for c, f in zip(edge, feet) if f >= need]
            if not reach:
                continue  # no vertical edge down to the baseline: not this row's pulse
            # the pulse's own base: where its edge stroke ends, which may lie off the row's
            # baseline (a trace that starts or runs off its zero): followed below the window
            # (the longest of the edge's columns, across breaks of up to 1 mm where grid
            # lines were taken out of the mask)
            base_y = y0 + t + max(_stroke_length(
                mask[y0 + t:min(h, yb + int(BASE_BELOW_MM * k)), x0 + c:x0 + c + 2].max(axis=1),
                max(2, int(round(k)))) for c in reach)
            if bridged[a:b + 1].any() and any(
                    abs(np.log(h / snap_gain(h))) > 0.08 for h in
                    (float(np.median(height[sa:sb + 1])) for sa, sb in spans)):
                continue  # pieced together over gaps: only at a standard gain's height
            if best is None or width_mm > best[4] + 0.5 / k:
                hmm = []
                for (sa, sb), ts in zip(spans, tops):
                    c = (sa + sb) // 2
                    thick = int(np.argmin(sub[ts:, c] > 0)) if not sub[ts:, c].all() else 1
                    # the base: the stroke's end less half a pen, where it lies 0.5 mm or
                    # more off the row's baseline; else the baseline
                    base = base_y - thick / 2 if abs(base_y - thick / 2 - row.y) > 0.5 * k \
                        else row.y
                    hmm.append((base - (y0 + ts + thick / 2)) / k)
                # the timing edge (fall of a left pulse, rise of a right one) is the solid
                # column nearest the flat run's end: the run can stop short of it where a
                # label or a grid line touches the top
                t = tops[-1] if side == "left" else tops[0]
                near = range(max(0, b - int(0.6 * k)), min(len(height), b + int(1.5 * k) + 1)) \
                    if side == "left" else range(max(0, a - int(1.5 * k)), a + int(0.6 * k) + 1)
                need = max(0.6 * (sub.shape[0] - t), sub.shape[0] - t - FOOT_OFF_MM * k)
                solid = [c for c in near
                         if _stroke_length(sub[t:, c], max(2, int(0.6 * k))) >= need]
                if solid and side == "left":
                    b = max(solid)
                elif solid:
                    a = min(solid)
                best = (x0 + a, x0 + b + 1, float(hmm[0]), float(hmm[-1]), width_mm)
    if best is None:
        return None
    xa, xb, hmm, step, _ = best
    if side == "left" and (xa - row.x_left > 3.5 * k or row.x_left - xb > 3.5 * k):
        return None
    if side == "right" and (row.x_right - xb > 3.5 * k or xa - row.x_right > 3.5 * k):
        return None
    return float(xa), float(xb), hmm, step


def _step_joined(sub: np.ndarray, top: np.ndarray, b1: int, a2: int, rise_px: float) -> bool:
    """A stepped pulse's two tops are joined by a vertical stroke where one ends and the
    other begins (two flat runs side by side at heights a factor 2 apart can also be a
    label or a neighbouring row's trace above the pulse)."""
    for c in range(max(0, b1 - 1), min(sub.shape[1], a2 + 2)):
        t = int(min(top[max(0, c - 1):c + 2]))
        if _stroke_length(sub[t:, max(0, c - 1):c + 2].max(axis=1), 2) >= 0.7 * rise_px:
            return True
    return False


def _bridge(height: np.ndarray, max_gap: int, tol_mm: float = 0.35) -> np.ndarray:
    """Columns without ink (a thin, faint pen's antialiased top falls under the ink
    threshold in places) filled between two sides at the same height, up to ``max_gap``."""
    out = height.copy()
    missing = ~np.isfinite(height)
    for a, b in _runs(missing, 0):
        if b - a + 1 <= max_gap and a > 0 and b + 1 < len(height) \
                and abs(height[a - 1] - height[b + 1]) <= tol_mm:
            out[a:b + 1] = (height[a - 1] + height[b + 1]) / 2
    return out


def _drop_specks(mask: np.ndarray, min_extent: int) -> np.ndarray:
    """The mask without ink blobs smaller than ``min_extent`` px both ways (grid dots and
    crossings, scan noise): a speck above or under a pulse's top breaks its flat profile."""
    n, lab, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), 8)
    keep = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]) >= min_extent
    keep[0] = False
    return keep[lab].astype(mask.dtype)


def _stroke_length(column: np.ndarray, max_gap: int) -> int:
    """Length (px) of the stroke running down from a column segment's top, bridging gaps of at
    most ``max_gap`` px; 0 where the top holds no ink."""
    idx = np.flatnonzero(column)
    if not len(idx) or idx[0] > max_gap:
        return 0
    d = np.diff(idx)
    brk = np.flatnonzero(d > max_gap + 1)
    last = idx[brk[0]] if len(brk) else idx[-1]
    return int(last + 1)


def snap_gain(height_mm: float) -> float:
    return min(GAINS, key=lambda g: abs(np.log(height_mm / g)))


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
    peak = (mag - cv2.blur(mag, (9, 9))) > DEGRID_PEAK
    fy, fx = np.fft.fftfreq(H)[:, None], np.fft.rfftfreq(W)[None, :]
    peak &= np.hypot(fx, fy) > 1.0 / (6.0 * px_per_mm)  # periods under 6 mm: the grid's
    f[cv2.dilate(peak.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0] = 0
    flat = np.clip(np.fft.irfft2(f, s=(H, W))[:h, :w], 0, 255).astype(np.float32)
    # the pixel noise averaged down over about a pen width (a 1-px pen at 150 dpi drowns in
    # noise pixel by pixel, not along its stroke)
    flat = cv2.GaussianBlur(flat, (0, 0), DEGRID_BLUR_MM * px_per_mm).astype(np.uint8)
    r = max(2, int(round(0.8 * px_per_mm))) | 1
    bh = cv2.morphologyEx(flat, cv2.MORPH_BLACKHAT,
                          cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (r, r))).astype(np.float32)
    noise = float(np.median(np.abs(bh - np.median(bh)))) * 1.4826 + 1.0
    ink = np.clip((bh - DEGRID_STRONG * noise) / max(3 * noise, 12.0), 0.0, 1.0)
    # hysteresis: fainter stretches of a stroke are kept where they join a clear one (the
    # filter took part of the strokes lying along grid lines: a pulse's edges, a baseline)
    weak = (bh > DEGRID_WEAK * noise).astype(np.uint8)
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


def analyse(bgr: np.ndarray, px_per_mm_hint: float | None = None, flattened: bool = False,
            border: float = 0.0, dark_grid: bool = False, wide_lines: bool = False,
            thin_grid: bool = False, degrid: bool = False, close_gaps: bool = False
            ) -> PageGeometry:
    """Scale, skew and trace rows of one page image (a faint pen is tried when no trace
    rows stand out at the normal ink threshold). ``flattened``: the image is a photographed
    sheet already cut out along its outline (no background left to find). ``dark_grid``:
    grid lines as dark as the trace are removed from the levelled mask; ``wide_lines``: a
    dark grid's straight lines are removed with a pixel all round (both tried by the
    pipeline when the rows found fit no layout); ``thin_grid``: a grid as dark as the trace
    but thinner than its pen is opened away (``pen_opening``; PageError where none is seen)."""
    kw = dict(flattened=flattened, border=border, dark_grid=dark_grid,
              wide_lines=wide_lines or dark_grid, thin_grid=thin_grid, close_gaps=close_gaps)
    if degrid:  # the grid's pitch from the page as it is, the rows from it made clean
        grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr
        k = px_per_mm_hint or grid_pitch(grey).px_per_mm
        if not np.isfinite(k) or k < MIN_PX_PER_MM:
            raise PageError("no grid to filter out")
        clean = degridded(bgr, k)
        g = analyse(clean, k, flattened=flattened, border=border, close_gaps=True)
        if not px_per_mm_hint:
            g.scale_source = "grid"
            ext = float(np.median([r.x_right - r.x_left for r in g.rows])) if g.rows else k * 250
            k_rows = ext / ROW_WIDTH_MM  # (a pulse adds a few mm)
            if not 0.8 < k / k_rows < 1.25:
                # the noisy grid's spectrum picked a harmonic (rows of 127 or 500 mm): the
                # pitch is measured again near the rows' length (the profile of the page
                # turned upright), else the rows give it
                up = grey if abs(g.skew_deg) <= 0.02 else cv2.warpAffine(
                    grey, g.deskew[:2], g.size, flags=cv2.INTER_LINEAR, borderValue=255)
                k2, ratio = refine_pitch(255.0 - up.mean(axis=0), k_rows, span=0.06)
                source = "grid" if ratio >= GRID_RATIO_NEAR_ROWS else "rows"
                if source == "rows":
                    k2 = k_rows
                g = analyse(clean, k2, flattened=flattened, border=border, close_gaps=True)
                g.scale_source = source
                if source == "rows":
                    g.warnings.append(GRID_NOT_MEASURED)
            if g.scale_source == "grid":
                # the 2-D spectrum's pitch is good to ~0.3 %, which over a 10-s row is 30 ms:
                # sharpen it over the whole width of the page turned upright, as for clean pages
                up = grey if abs(g.skew_deg) <= 0.02 else cv2.warpAffine(
                    grey, g.deskew[:2], g.size, flags=cv2.INTER_LINEAR, borderValue=255)
                k3, ratio = refine_pitch(255.0 - up.mean(axis=0), g.px_per_mm, span=0.03)
                if ratio >= GRID_RATIO and abs(k3 / g.px_per_mm - 1) > 5e-4:
                    g = analyse(clean, k3, flattened=flattened, border=border, close_gaps=True)
                    g.scale_source = "grid"
        g.grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr
        if abs(g.skew_deg) > 0.02:
            g.grey = cv2.warpAffine(g.grey, g.deskew[:2], g.size, flags=cv2.INTER_LINEAR,
                                    borderValue=255)
        g.warnings.append(DEGRIDDED)
        return g
    try:
        return _analyse(bgr, px_per_mm_hint, faint=False, **kw)
    except NoTraceRows:
        return _analyse(bgr, px_per_mm_hint, faint=True, **kw)


def size_scale(h: int, w: int) -> float:
    """px/mm from an image's size alone: a strip (over 2.5 times wider than tall) holds a
    250-mm row, a landscape letter or A4 page is ~280 mm wide."""
    return w / ROW_WIDTH_MM if w > 2.5 * h else max(w, h) / 280.0


def _analyse(bgr: np.ndarray, px_per_mm_hint: float | None, faint: bool,
             flattened: bool = False, border: float = 0.0, dark_grid: bool = False,
             wide_lines: bool = False, thin_grid: bool = False, close_gaps: bool = False
             ) -> PageGeometry:
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr
    h, w = grey.shape
    warnings: list[Note] = []
    grid = grid_pitch(grey).px_per_mm
    # a first scale for the morphology: the grid where it agrees with the image size (a
    # landscape page is ~280 mm wide, a strip 250 mm), else the size — the grid spectrum can
    # pick a harmonic
    size_k = size_scale(h, w)
    k0 = px_per_mm_hint or (grid if np.isfinite(grid) and 0.65 < grid / size_k < 1.5
                            else size_k)
    mask, ratio = ink_mask(bgr, k0, return_ratio=True, faint=faint, wide_lines=wide_lines,
                           thin_grid=thin_grid)
    # a photo's background: the paper's edge against it is a long dark band, not a trace row
    paper = None if flattened else paper_region(bgr, k0)
    if paper is not None:
        # ... and the background itself (a textured cloth, a table's grain: specks that join
        # a row to the image's edges and tilt the skew estimate) holds no ink of the page's
        # (own val 00367, a strip photographed on green felt whose outline is not a clear
        # quadrilateral: its one row ran from edge to edge and was dropped)
        mask &= paper
    skew = estimate_skew(mask, k0)
    deskew, size = _deskew_matrix((h, w), skew)
    if abs(skew) > 0.02:
        mask = cv2.warpAffine(mask, deskew[:2], size, flags=cv2.INTER_NEAREST)
        ratio = cv2.warpAffine(ratio, deskew[:2], size, flags=cv2.INTER_LINEAR,
                               borderValue=1.0)
        if paper is not None:
            paper = cv2.warpAffine(paper, deskew[:2], size, flags=cv2.INTER_NEAREST)
    if dark_grid:
        mask = drop_grid_lines(mask, k0)
    rows = _on_paper(find_rows(mask, k0), paper, k0, mask.shape[0] if flattened else None)
    if not rows:
        raise NoTraceRows()
    # scale from the rows: trace length of full rows, with the pulse excluded
    for r in rows:
        _ends(mask, r, k0, ratio, border=border)
    _time_origin(rows, k0, scale_known=False)
    lengths = [(r.x_end - r.x_start) / ROW_WIDTH_MM for r in rows]
    k_rows = float(np.median(lengths))
    # rows agree with each other when their ends were found (pulses, or a shared start)
    rows_sure = len(lengths) >= 2 and float(np.std(lengths)) < 0.02 * k_rows
    # on a page (not a strip cut to its trace), rows running from border to border were
    # stretched by something else (grid remnants, a frame): their length says nothing
    wd = mask.shape[1]
    edge_to_edge = w < 2.5 * h and np.mean([r.x_left < 3 * k0 and r.x_right > wd - 3 * k0
                                            for r in rows]) > 0.5
    if edge_to_edge:
        rows_sure = False
    # the grid, measured to ~0.01 % over the whole width: first near the row-length scale
    # (which rules out the grid's harmonics), else near the 2-D spectrum's estimate
    grey_d = grey if abs(skew) <= 0.02 else cv2.warpAffine(
        grey, deskew[:2], size, flags=cv2.INTER_LINEAR, borderValue=255)
    profile = 255.0 - grey_d.mean(axis=0)
    near_rows = refine_pitch(profile, k_rows, span=0.06)
    near_grid = refine_pitch(profile, grid, span=0.03) if np.isfinite(grid) else (grid, 0.0)
    if px_per_mm_hint:
        k, source = px_per_mm_hint, "given"
    elif near_rows[1] >= GRID_RATIO_NEAR_ROWS and not edge_to_edge and (
            near_rows[1] >= GRID_RATIO or not rows_sure
            or abs(near_rows[0] / k_rows - 1) < WEAK_GRID_ROWS_AGREE):
        # a weak periodicity (a faint grid, or none: text, separators) counts only where it
        # does not contradict rows whose ends agree
        k, source = near_rows[0], "grid"
    elif near_grid[1] >= GRID_RATIO and not rows_sure:
        k, source = near_grid[0], "grid"
    else:
        k, source = k_rows, "rows"
        warnings.append(GRID_NOT_MEASURED)
    if abs(k / k0 - 1) > 0.15:  # the morphology scale was far off: redo the rows at this one
        rows = _on_paper(find_rows(mask, k), paper, k, mask.shape[0] if flattened else None)
        if not rows:
            raise NoTraceRows()
    # a filtered scan's strokes are broken where they lay along grid lines (a pulse's edges):
    # pulses are looked for with gaps of up to 1 mm closed
    n = max(3, int(round(1.0 * k)))
    pulse_mask = cv2.morphologyEx(cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((n, 1), np.uint8)),
                                  cv2.MORPH_CLOSE, np.ones((1, n), np.uint8)) if close_gaps else None
    for r in rows:
        _ends(mask, r, k, ratio, scale_known=source != "rows", border=border,
              pulse_mask=pulse_mask)
    if _time_origin(rows, k, scale_known=source != "rows"):
        warnings.append(TIME_ORIGIN_ASSUMED)
    _consensus(rows, k)
    if k < MIN_PX_PER_MM:
        raise PageError(f"resolution too low ({k:.2f} px/mm < {MIN_PX_PER_MM})")
    if k < WARN_PX_PER_MM:
        warnings.append(Note(Code.LOW_RESOLUTION, f"low resolution ({k:.2f} px/mm)"))
    return PageGeometry(px_per_mm=float(k), scale_source=source, skew_deg=skew, rows=rows,
                        deskew=deskew, size=size, grid_px_per_mm=float(grid), mask=mask,
                        grey=grey_d, on_background=paper is not None,
                        warnings=warnings, dark=(ratio < 0.6).astype(np.uint8))


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


def _ink_columns(ratio: np.ndarray, mask: np.ndarray, x0: int, x1: int, y0: int, y1: int
                 ) -> np.ndarray:
    """Ink amount per column (px of full-strength trace) in a window: sub-pixel edges."""
    h, w = mask.shape
    x0, x1, y0, y1 = max(0, x0), min(w, x1), max(0, y0), min(h, y1)
    if x1 <= x0 or y1 <= y0:
        return np.zeros(0)
    m = cv2.dilate(mask[y0:y1, x0:x1], np.ones((3, 3), np.uint8)) > 0
    r = ratio[y0:y1, x0:x1]
    lo = float(np.percentile(r[m], 5)) if m.any() else 0.3
    ink = np.clip((0.85 - r) / max(0.85 - lo, 0.1), 0.0, 1.0) * m
    return ink.sum(axis=0)


def _stroke_centre(ratio: np.ndarray, mask: np.ndarray, x0: int, x1: int, y0: int, y1: int
                   ) -> float | None:
    """x of a vertical stroke's centre in a window holding only that stroke: the centroid of
    its ink, which does not depend on the pen width, antialiasing or blur."""
    col = _ink_columns(ratio, mask, x0, x1, y0, y1)
    if len(col) < 3 or col.sum() <= 0:
        return None
    return float(max(0, x0) + (np.arange(len(col)) * col).sum() / col.sum())


def _crossing(col: np.ndarray, level: float, rising: bool) -> float | None:
    """Sub-pixel index where ``col`` first rises through (last falls through) ``level``."""
    above = col >= level
    if rising:
        i = int(np.argmax(above))
        if not above[i] or i == 0:
            return None
        a, b = col[i - 1], col[i]
        return i - 1 + (level - a) / (b - a) if b != a else float(i)
    idx = np.flatnonzero(above)
    if not len(idx) or idx[-1] == len(col) - 1:
        return None
    i = int(idx[-1])
    a, b = col[i], col[i + 1]
    return i + (a - level) / (a - b) if a != b else float(i)


def _ends(mask: np.ndarray, r: Row, k: float, ratio: np.ndarray | None = None,
          scale_known: bool = False, border: float = 0.0,
          pulse_mask: np.ndarray | None = None) -> None:
    """Trace start/end of a row from its extent and calibration pulse, to a fraction of a
    pixel where the ink map allows: at 100 Hz a 0.1-mm error is a quarter sample.

    With ``scale_known`` (k measured independently of the row ends), a full row's start also
    comes from its end, 250 mm earlier: a right-hand pulse then times the row, and a row
    without pulses is timed by the middle of its two pen caps, which does not depend on the
    pen width. ``border``: px of paper cut away beyond the image's left and right edges (a
    flattened photo is cut inside its outline), where ink running off the image starts/ends."""
    half = trace_width(mask, r, k) / 2
    w = mask.shape[1]
    if pulse_mask is not None:
        # a filtered scan: the specks left around the grid's remnants stretch the ink extent
        # (a tilted page's edges); the row is the extent of its solid ink
        solid = _solid_extent(mask, r, k)
        if solid is not None and solid[1] - solid[0] > 0.5 * ROW_WIDTH_MM * k:
            r.x_left, r.x_right = solid
    yb = int(round(r.y))
    band = (yb - int(8 * k), yb + int(8 * k) + 1)
    # ink cut by the image border (a strip cropped at its first sample): the border is the start
    r.x_start = r.x_left - border if r.x_left < 1 else r.x_left + half - 0.5
    r.x_end = r.x_right + border if r.x_right > w - 1 else r.x_right - half + 0.5
    r.drop_pulse()
    r.x_stroke = r.x_resume = r.cap_end = r.cap_start = float("nan")
    pm = mask if pulse_mask is None else pulse_mask
    left = find_pulse(pm, r, k, "left")
    if left is None and pulse_mask is not None:
        left = find_pulse(mask, r, k, "left")
    right = find_pulse(pm, r, k, "right") if left is None else None
    if left is None and right is None:
        # scan noise or grid remnants (a tilted page's edge) beyond the pulse stretch the
        # row's ink extent so far that its pulse lies too deep inside to count: the ends of
        # the row's solid ink (blobs of 2 mm or more) are tried instead
        solid = _solid_extent(mask, r, k)
        if solid is not None:
            alt = Row(y=r.y, x_left=solid[0], x_right=solid[1])
            left = find_pulse(pm, alt, k, "left") if solid[0] > r.x_left + k else None
            right = find_pulse(pm, alt, k, "right") \
                if left is None and solid[1] < r.x_right - k else None
            if left is not None:
                r.x_left, r.x_start = alt.x_left, alt.x_left + half - 0.5
            elif right is not None:
                r.x_right, r.x_end = alt.x_right, alt.x_right - half + 0.5
    if ratio is not None and left is None and r.x_left >= 3:
        # round pen cap: the column ink reaches half the trace's (flat) width at 0.87 radius
        x0 = int(r.x_left) - 3
        col = _ink_columns(ratio, mask, x0, int(r.x_left + 3 * k), *band)
        if len(col) > 4:
            h2 = max(0.5, half)
            x50 = _crossing(col, h2, rising=True)  # half of the 2h-wide flat trace
            if x50 is not None and abs(x0 + x50 + 0.87 * h2 - r.x_start) < 1.5:
                r.x_start = x0 + x50 + 0.87 * h2
                r.cap_start = r.x_start
    cap_end = None
    if ratio is not None and right is None and r.x_right <= w - 3:
        x1 = int(r.x_right) + 3
        col = _ink_columns(ratio, mask, int(r.x_right - 3 * k), x1, *band)
        if len(col) > 4:
            h2 = max(0.5, half)
            x50 = _crossing(col, h2, rising=False)
            if x50 is not None:
                e = x1 - len(col) + x50 - 0.87 * h2
                if abs(e - r.x_end) < 1.5:
                    cap_end = e
                    r.cap_end = e
        if not np.isfinite(r.cap_end):  # the ink's own end (to about a pixel)
            r.cap_end = r.x_end
    if left is not None:
        r.pulse, r.pulse_mm, r.step_mm = "left", left[2], left[3]
        # the flat top's ink ends half a pen width after the falling edge; then a 1-mm foot
        # and a 1-mm gap before the trace (the usual layout: pulse, then the first sample)
        x_fall = left[1] - 0.5 - half
        if ratio is not None:  # the falling stroke's centre: its ink centroid, sub-pixel
            top = int(round(r.y - left[3] * k))  # the falling stroke: from the step
            c = _stroke_centre(ratio, mask, int(left[1] - 2 * half) - 4, int(left[1]) + 4,
                               top + int(half) + 2, yb - int(half) - 1)
            if c is not None and abs(c - x_fall) < 1.5:
                x_fall = c
        r.x_stroke = x_fall
        r.x_resume = _gap_edge(mask, r, x_fall, half, k, "left", ratio)
        # provisional: the trace begins where the ink resumes after a blank gap, else at the
        # falling stroke; _time_origin weighs this against the row's end
        r.x_start = r.x_resume if np.isfinite(r.x_resume) else x_fall
    elif right is not None:
        r.pulse, r.pulse_mm, r.step_mm = "right", right[2], right[3]
        x_rise = right[0] - 0.5 + half
        if ratio is not None:
            top = int(round(r.y - right[2] * k))
            c = _stroke_centre(ratio, mask, int(right[0]) - 4, int(right[0] + 2 * half) + 4,
                               top + int(half) + 2, yb - int(half) - 1)
            if c is not None and abs(c - x_rise) < 1.5:
                x_rise = c
        # the trace ends where its ink stops before a blank gap, else at the rising stroke
        stop = _gap_edge(mask, r, x_rise, half, k, "right", ratio)
        r.x_stroke, r.x_resume = x_rise, stop
        if np.isfinite(stop):
            r.x_end = stop
        elif scale_known and r.x_left >= 3:
            # the trace runs into the pulse's foot: where it ends is not seen, but where it
            # starts is (its left pen cap, on blank paper)
            r.x_end = r.x_start + (ROW_WIDTH_MM - LAST_SAMPLE_MM) * k
        else:
            r.x_end = x_rise
    full = r.x_left >= 1 and abs(r.x_end - r.x_start - ROW_WIDTH_MM * k) < 3 * k
    if scale_known and full and r.pulse == "right":
        r.x_start = r.x_end - (ROW_WIDTH_MM - LAST_SAMPLE_MM) * k
    elif scale_known and full and r.pulse == "none" and cap_end is not None and r.x_left >= 3:
        r.x_start = (r.x_start + cap_end - (ROW_WIDTH_MM - LAST_SAMPLE_MM) * k) / 2
    elif scale_known and r.pulse == "none" and cap_end is not None and \
            r.x_end - r.x_start > (ROW_WIDTH_MM + 1.0) * k:
        # ink before a full row's first sample that is not a recognised pulse (a pulse of
        # some other shape, a label): the row's end times it
        r.x_start = cap_end - (ROW_WIDTH_MM - LAST_SAMPLE_MM) * k


def _solid_extent(mask: np.ndarray, r: Row, k: float) -> tuple[float, float] | None:
    """First and last column of a row's band (±8 mm) holding ink of blobs 2 mm or more
    across, within the row's ink extent; None where there are none."""
    h, w = mask.shape
    y0, y1 = int(max(0, r.y - 8 * k)), int(min(h, r.y + 8 * k + 1))
    x0, x1 = int(max(0, r.x_left)), int(min(w, r.x_right + 1))
    if y1 <= y0 or x1 <= x0:
        return None
    cols = np.flatnonzero(_drop_specks(mask[y0:y1, x0:x1], max(3, int(round(2.0 * k))))
                          .any(axis=0))
    if not len(cols):
        return None
    return float(x0 + cols[0]), float(x0 + cols[-1] + 1)


def _gap_edge(mask: np.ndarray, r: Row, x_edge: float, half: float, k: float, side: str,
              ratio: np.ndarray | None = None) -> float:
    """Where the trace resumes (``side`` 'left': after a left pulse's falling stroke at
    ``x_edge``) or stops (before a right pulse's rising stroke) across a blank gap between
    pulse and trace, as the centre of its pen cap; nan where the ink runs on without a gap
    (the trace then starts or ends at the stroke itself, or after a foot: see _time_origin).

    A gap: up to 4 mm of columns (one at least) without ink within 2.5 mm of the baseline (a
    label or a neighbour's wave lies further off),
    starting within 1.5 mm of the stroke (a foot's length), with ink again after it."""
    h, w = mask.shape
    band = mask[max(0, int(r.y - 2.5 * k)):min(h, int(r.y + 2.5 * k) + 1)]
    step = 1 if side == "left" else -1
    x = int(np.floor(x_edge + half + 1)) if side == "left" else int(np.ceil(x_edge - half - 1))
    reach = int(round(7 * k))
    xs = [x + step * i for i in range(reach) if 0 <= x + step * i < w]
    if len(xs) < 3:
        return float("nan")
    ink = band[:, xs].any(axis=0)
    blank = np.flatnonzero(~ink)
    if not len(blank) or blank[0] > 1.5 * k:  # after at most a foot's length
        return float("nan")
    after = np.flatnonzero(ink[blank[0]:])
    if not len(after):
        return float("nan")
    gap = int(after[0])
    if not 1 <= gap <= 4 * k:
        return float("nan")
    # blank paper, not a trace passing above or below the band (its first samples off zero)
    wide = mask[max(0, int(r.y - GAP_CLEAR_MM * k)):min(h, int(r.y + GAP_CLEAR_MM * k) + 1)]
    if wide[:, xs[blank[0]:blank[0] + gap]].any():
        return float("nan")
    first = xs[blank[0] + gap]
    est = float(first + half - 0.5) if side == "left" else float(first - half + 0.5)
    if ratio is not None:  # sub-pixel: the pen cap's ink reaches half the pen width at 0.87 r
        h2 = max(0.5, half)
        y0, y1 = int(r.y - 2.5 * k), int(r.y + 2.5 * k) + 1
        back = min(3, gap)
        if side == "left":
            x0 = first - back
            col = _ink_columns(ratio, mask, x0, int(first + 3 * k), y0, y1)
            x50 = _crossing(col, h2, rising=True) if len(col) > 4 else None
            if x50 is not None and abs(x0 + x50 + 0.87 * h2 - est) < 1.5:
                est = x0 + x50 + 0.87 * h2
        else:
            x1 = first + back + 1
            col = _ink_columns(ratio, mask, int(first - 3 * k), x1, y0, y1)
            x50 = _crossing(col, h2, rising=False) if len(col) > 4 else None
            if x50 is not None:
                e = x1 - len(col) + x50 - 0.87 * h2
                if abs(e - est) < 1.5:
                    est = e
    return est


def _snap(off_px: float, k: float, side: str) -> float:
    """A measured stroke-to-sample offset (px), replaced by a known printer convention's exact
    value where the measurement agrees with it to within its uncertainty (a pen cap is read to
    ~0.5 px, the timing stroke to ~0.05 px)."""
    for h in PULSE_TO_TRACE_MM[side]:
        if abs(off_px / k - h) <= CONVENTION_SNAP_MM:
            return h * k + (PULSE_BIAS_PX[side] if side == "left" else -PULSE_BIAS_PX[side])
    return off_px


def _time_origin(rows: list[Row], k: float, scale_known: bool = True) -> bool:
    """Each pulsed row's time origin from the evidence on this page, not from one convention.

    Printers differ in what lies between the pulse and the trace: a blank gap (the trace
    starts where its ink resumes), nothing (it starts at the falling stroke), or a flat foot
    joined to the trace. Readings of the offset from the timing stroke to the first sample:
    the gap's far edge, and — where the scale was measured independently of the rows (``k``
    from the grid) and a row ends on paper — its end's pen cap 250 mm later. One convention
    per printout: the page's median is taken (within a foot's length, -0.5 to 4 mm), the two
    readings averaged where they agree within 1 mm (the gap wins where they do not: the rows
    are then not 250 mm long), and a known convention (``PULSE_TO_TRACE_MM``) replaces the
    measurement where they agree. Without any reading the trace starts at the stroke.

    Right pulses likewise from the gap before the pulse; where the trace runs into the
    pulse's foot, the rows' own starting pen caps (on blank paper) time them. Where nothing
    on the page shows the offset (no gap is seen and no row's end can be measured), a left
    pulse's trace is taken to start at its stroke (flush: no gap seen), a right pulse's
    convention is the last of ``PULSE_TO_TRACE_MM``, and True is returned (the page is
    flagged)."""
    left = [r for r in rows if r.pulse == "left" and np.isfinite(r.x_stroke)]
    gaps = [r.x_resume - r.x_stroke for r in left if np.isfinite(r.x_resume)]
    offs = [r.cap_end - (ROW_WIDTH_MM - LAST_SAMPLE_MM) * k - r.x_stroke for r in left
            if np.isfinite(r.cap_end) and scale_known]
    offs = [o for o in offs if -0.5 * k <= o <= 4 * k]
    # (a single row's gap edge is read to ~1 px at low resolution, the stroke to 0.1 px)
    by_gap = float(np.median(gaps)) if gaps and len(gaps) > len(left) / 2 else None
    by_end = float(np.median(offs)) if offs else None
    assumed = False
    if by_gap is not None and by_end is not None and abs(by_gap - by_end) <= 1.0 * k:
        off = (by_gap + by_end) / 2  # two independent readings of one offset
    elif by_gap is not None or by_end is not None:
        off = by_gap if by_gap is not None else by_end
    else:  # no gap seen and no end to measure from (a noisy scan): once the scale is known,
        # the trace is taken to run on from the stroke, as no gap is what the page shows (on
        # val pages this was only ever reached on ecg-image-kit scans, whose trace is flush:
        # the foot-and-gap convention put them 2 mm late, 80 ms). Before (rows measuring the
        # scale) the foot-and-gap convention stays: there it only sets the rows' length,
        # and changing it there swayed which rows a noisy val scan was read with (00137)
        conv = PULSE_TO_TRACE_MM["left"][0 if scale_known else -1]
        off, assumed = conv * k, bool(left)
    off = _snap(off, k, "left")
    for r in left:
        r.x_start = r.x_stroke + off
    right = [r for r in rows if r.pulse == "right" and np.isfinite(r.x_stroke)]
    gaps = [r.x_stroke - r.x_resume for r in right if np.isfinite(r.x_resume)]
    capped = [r for r in right if np.isfinite(r.cap_start)]
    if gaps and len(gaps) >= len(right) / 2:
        off = _snap(float(np.median(gaps)), k, "right")
    elif scale_known and (len(capped) >= 2 or (capped and len(rows) == 1)):
        x = float(np.median([r.cap_start for r in capped]))
        for r in right:
            r.x_start, r.x_end = x, x + (ROW_WIDTH_MM - LAST_SAMPLE_MM) * k
        return assumed
    else:
        off = _snap(PULSE_TO_TRACE_MM["right"][-1] * k, k, "right")
        assumed = assumed or bool(right)
    for r in right:
        r.x_end = r.x_stroke - off
        if scale_known or not np.isfinite(r.x_start):
            r.x_start = r.x_end - ROW_WIDTH_MM * k
    return assumed


def _consensus(rows: list[Row], k: float) -> None:
    """Rows of a printout share their start: rows whose pulse was missed (or whose ink starts
    early or late — a label, a stroke, a trace leaving its band) take the others'."""
    # a 2-3 mm pulse (2.5 mm/mV: a 12x1 page's chest rows at half of 5) counts only where
    # another row shows one too (a 2.8-mm box in one row of a page printed without pulses at
    # 20 mm/mV had set its gain to 2.5)
    low = [r for r in rows if r.pulse != "none" and r.pulse_mm < 3.0]
    if len(low) == 1:
        low[0].drop_pulse()
        low[0].x_start = low[0].x_left
    pulsed = [r for r in rows if r.pulse != "none"]
    if len(rows) >= 4 and len(pulsed) < len(rows) / 2:
        # a pulse in few of many rows must at least stand at a standard gain's height (a
        # 4.2-mm box in one row of a page without pulses had set its gain to 5 mm/mV)
        for r in pulsed:
            if not r.pulse_mm >= 3.0 or abs(np.log(r.pulse_mm / snap_gain(r.pulse_mm))) > 0.1:
                r.drop_pulse()
                r.x_start = r.x_left
    if all(r.pulse == "none" for r in rows) and len(rows) > 1:
        x = float(np.median([r.x_start for r in rows]))
        for r in rows:
            if 2 * k < abs(r.x_start - x) < 25 * k:
                r.x_start = x
        return
    for side, other in (("left", "right"), ("right", "left")):
        # a printout's pulses are all on one side: a lone "pulse" on the other side of its
        # row is something else (a label, the footer's text) — the row is timed as the rest
        found = [r for r in rows if r.pulse == side]
        if len(found) >= 2 and len(found) > len(rows) / 2:
            for r in rows:
                if r.pulse == other:
                    r.drop_pulse()
                    if side == "right":  # its start: the others' (x_end is set below)
                        r.x_start = float(np.median([f.x_start for f in found]))
    for side in ("left", "right"):
        found = [r for r in rows if r.pulse == side]
        if not found:
            continue
        most = len(found) >= len(rows) / 2
        if side == "left" and len(found) >= 3:
            # a pulse whose falling stroke was misplaced (a shadow or a crease beside it read
            # as its edge: eik val scan 00053's fifth row 5 mm late) while its rise stands
            # where the others' do, and most of them agree with each other (eik val scan
            # 00207: two of seven rows read a stepped pulse from the row above): it starts
            # where they do, and its pulse was not stepped
            for r in found:
                rest = [f for f in found if f is not r]
                x = float(np.median([f.x_start for f in rest]))
                agree = [f for f in rest if abs(f.x_start - x) <= 0.5 * k]
                if len(agree) < 2 or len(agree) < 0.6 * len(rest):
                    continue
                x = float(np.median([f.x_start for f in agree]))
                x_rise = float(np.median([f.x_left for f in agree]))
                if abs(r.x_start - x) > 2 * k and abs(r.x_left - x_rise) <= k:
                    r.x_start = x
                    r.step_mm = r.pulse_mm
        if side == "left":
            x = float(np.median([r.x_start for r in found]))
            for r in rows:
                if r.pulse == "none" and (most or abs(r.x_left - (x - 8 * k)) < 6 * k):
                    r.x_start = x
        else:
            x = float(np.median([r.x_end for r in found]))
            x0 = float(np.median([r.x_start for r in found]))
            if len(found) >= 3:  # a pulsed row whose ink starts early (a stroke before it)
                for r in found:
                    if abs(r.x_start - x0) > 2 * k and abs(r.x_end - x) < k:
                        r.x_start = x0 + (r.x_end - x)
            for r in rows:
                if r.pulse == "none" and (most or abs(r.x_right - (x + 8 * k)) < 6 * k):
                    # its end, and its start too: the rows' own ink can run past it (a row
                    # cut by the image's edge, a stroke before the first sample)
                    r.x_end, r.x_start = x, x0


def page_homography(bgr: np.ndarray) -> tuple[np.ndarray, tuple[int, int]] | None:
    """A photographed page on a darker background → (3×3 image → flat page, (w, h)).

    The paper is the largest bright region; where it is a clear quadrilateral that leaves
    background around it, the homography to its rectangle undoes rotation and perspective.
    Scans (paper to the edges) and anything unclear return None: rotation is then corrected
    by ``analyse`` alone.
    """
    h, w = bgr.shape[:2]
    s = 800.0 / max(h, w)
    small = cv2.resize(bgr, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
    v = small if small.ndim == 2 else functools.reduce(cv2.max, cv2.split(small))  # brightest
    v = cv2.GaussianBlur(v, (0, 0), 2)
    _, bright = cv2.threshold(v, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    bright = cv2.morphologyEx(bright, cv2.MORPH_CLOSE, np.ones((15, 15), np.uint8))
    found = _homography_from_region(bgr, bright, s)
    if found is None:  # a shadow can cut the sheet's bright part in pieces: take them all
        found = _homography_from_region(bgr, bright, s, min_piece=0.01)
    if found is None and small.ndim == 3:
        # ... or take a bite out of it. Shading darkens paper and background alike but leaves
        # their colours: on a coloured background (a desk, a cloth) the sheet is its
        # least-saturated region, shadows and all (own val 00194, a strip photographed with a
        # shadow over its right end; on a grey background this finds no clear sheet)
        blur = cv2.GaussianBlur(small, (0, 0), 2)
        hi = functools.reduce(cv2.max, cv2.split(blur)).astype(np.float32)
        lo = functools.reduce(cv2.min, cv2.split(blur)).astype(np.float32)
        sat = ((hi - lo) / np.maximum(hi, 1.0) * 255).astype(np.uint8)
        _, bright = cv2.threshold(sat, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
        bright = cv2.morphologyEx(bright, cv2.MORPH_CLOSE, np.ones((15, 15), np.uint8))
        found = _homography_from_region(bgr, bright, s)
    return found


def _homography_from_region(bgr: np.ndarray, bright: np.ndarray, s: float,
                            min_piece: float | None = None
                            ) -> tuple[np.ndarray, tuple[int, int]] | None:
    """The sheet's homography from a mask of it on the reduced image (scale ``s``): the
    largest bright region, or with ``min_piece`` the hull of every region of at least that
    share of the image."""
    h, w = bgr.shape[:2]
    contours, _ = cv2.findContours(bright, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    total = bright.shape[0] * bright.shape[1]
    if min_piece is None:
        c = max(contours, key=cv2.contourArea)
    else:
        pieces = [p for p in contours if cv2.contourArea(p) >= min_piece * total]
        if len(pieces) < 2:
            return None
        c = cv2.convexHull(np.concatenate(pieces))
    area = cv2.contourArea(c) / total
    if not 0.3 < area < 0.97:
        return None
    hull = cv2.convexHull(c)
    hs, ws = bright.shape[:2]
    # the paper's sides: the strongest straight lines of the region's outline, ignoring the
    # image frame (a corner outside the frame cuts the outline along it)
    region = np.zeros((hs, ws), np.uint8)
    cv2.drawContours(region, [hull], -1, 255, -1)
    edge = cv2.Canny(region, 50, 150)
    edge[:4], edge[-4:], edge[:, :4], edge[:, -4:] = 0, 0, 0, 0
    lines = cv2.HoughLines(edge, 1, np.pi / 720, max(30, min(hs, ws) // 8))
    if lines is None:
        return None
    horiz, vert = [], []
    for rho, theta in lines[:, 0]:
        (horiz if abs(np.sin(theta)) > 0.7 else vert).append((float(rho), float(theta)))

    def two_sides(cands, span):  # strongest line, then the strongest far from it
        if not cands:
            return None
        first = cands[0]
        for rho, theta in cands[1:]:
            if abs(abs(rho) - abs(first[0])) > 0.3 * span and abs(np.sin(theta - first[1])) < 0.4:
                return first, (rho, theta)
        return None

    hv, vv = two_sides(horiz, hs), two_sides(vert, ws)
    if hv is None or vv is None:
        return None

    def meet(l1, l2):
        (r1, t1), (r2, t2) = l1, l2
        a_ = np.array([[np.cos(t1), np.sin(t1)], [np.cos(t2), np.sin(t2)]])
        return np.linalg.solve(a_, [r1, r2])

    corners = np.array([meet(hh, vv_) for hh in hv for vv_ in vv])
    mid = corners.mean(axis=0)
    corners = corners[np.argsort(np.arctan2(*(corners - mid).T[::-1]))]  # around the centre
    q = _refine_outline(bgr, corners / s, reach=max(8.0, 6.0 / s), inset=outline_inset(bgr.shape))
    if not cv2.isContourConvex(q.astype(np.float32).reshape(-1, 1, 2)):
        return None
    # the quad must hold the bright region closely (a torn or folded outline is not a page)
    if cv2.contourArea(q.astype(np.float32)) * s * s > 1.15 * cv2.contourArea(hull):
        return None
    margin = np.array([q[:, 0].min(), q[:, 1].min(), w - q[:, 0].max(), h - q[:, 1].max()])
    if (margin > 0.01 * max(w, h)).sum() < 1:
        return None  # paper to the edges: a scan
    sm, df = q.sum(axis=1), np.diff(q, axis=1).ravel()
    tl, br, tr, bl = q[np.argmin(sm)], q[np.argmax(sm)], q[np.argmin(df)], q[np.argmax(df)]
    src = np.array([tl, tr, br, bl], np.float32)
    pw = max(np.linalg.norm(tr - tl), np.linalg.norm(br - bl))
    ph = max(np.linalg.norm(bl - tl), np.linalg.norm(br - tr))
    # side lengths are foreshortened: give the flat page the nearest paper shape (letter, A4,
    # either orientation) so that its pixels are square
    aspect = min((279.4 / 215.9, 297.0 / 210.0, 215.9 / 279.4, 210.0 / 297.0),
                 key=lambda a: abs(np.log(a * ph / pw)))
    if abs(np.log(aspect * ph / pw)) < 0.12:
        ph = pw / aspect
    pw, ph = int(round(pw)), int(round(ph))
    if pw < 100 or ph < 100:
        return None
    dst = np.array([[0, 0], [pw - 1, 0], [pw - 1, ph - 1], [0, ph - 1]], np.float32)
    return cv2.getPerspectiveTransform(src, dst).astype(np.float64), (pw, ph)


def outline_inset(shape: tuple) -> float:
    """Px (of the photo) that a flattened sheet is cut inside its measured outline."""
    return max(2.0, OUTLINE_INSET * max(shape[:2]))


def _refine_outline(bgr: np.ndarray, quad: np.ndarray, reach: float, inset: float = 0.0
                    ) -> np.ndarray:
    """The paper's corners to a pixel or better: each side of ``quad`` (corners in order, full
    resolution, found on a reduced image) is moved to the largest sharp dark-to-bright step in
    log-brightness across it, sampled at points along the side and fitted robustly, then moved
    ``inset`` px onto the paper (a sliver of background along the flattened page's border
    would join the rows). Shading is smooth and multiplies paper and background alike, so the
    step stays sharp under a shadow; points outside the image or without a clear step (a side
    cut by the frame) are skipped, and a side with too few of them keeps its first estimate."""
    v = cv2.GaussianBlur(_brightest(bgr).astype(np.float32), (0, 0), 1.0)
    centre = quad.mean(axis=0)
    # inward a little (the first estimate may lie outside the sheet: a side that leaves the
    # image is extrapolated), outward further (a shadow or a dim band can cut the bright
    # region well inside the paper's edge)
    outward = max(reach, OUTLINE_SEARCH * max(v.shape))
    inward = max(reach, 0.25 * OUTLINE_SEARCH * max(v.shape))
    offs = np.arange(-int(outward), int(inward) + 1, dtype=np.float64)
    win = 6  # px each side of a step, past its blur
    sides = []
    for i in range(4):
        p0, p1 = quad[i], quad[(i + 1) % 4]
        length = float(np.linalg.norm(p1 - p0))
        u = (p1 - p0) / max(length, 1e-9)
        nrm = np.array([-u[1], u[0]])
        if np.dot(centre - p0, nrm) < 0:
            nrm = -nrm  # towards the paper
        t = np.linspace(0.08, 0.92, 48) * length
        at = p0 + t[:, None] * u
        pts = at[:, None, :] + offs[None, :, None] * nrm
        prof = cv2.remap(v, pts[..., 0].astype(np.float32), pts[..., 1].astype(np.float32),
                         cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=-1.0)
        inside_img = prof >= 0
        lp = np.log(np.maximum(prof, 1.0))
        # step at j (between samples j and j+1): mean log-brightness over `win` px on the
        # paper side minus that on the far side, 1 px of blur left out each side
        c = np.pad(np.cumsum(lp, axis=1), ((0, 0), (1, 0)))
        cv_ = np.pad(np.cumsum(inside_img, axis=1), ((0, 0), (1, 0)))
        n = lp.shape[1]
        j = np.arange(win + 1, n - win - 2)
        inner = (c[:, j + 2 + win] - c[:, j + 2]) / win
        outer = (c[:, j] - c[:, j - win]) / win
        valid = ((cv_[:, j + 2 + win] - cv_[:, j - win]) == 2 * win + 2)
        sharp = lp[:, j + 2] - lp[:, j - 1]
        step = np.where(valid & (sharp >= 0.5 * (inner - outer)), inner - outer, 0.0)
        best = np.argmax(step, axis=1)
        rows = np.arange(len(t))
        ok = step[rows, best] >= OUTLINE_MIN_STEP
        jj = j[best]
        # sub-pixel: the steepest rise of the brightness within the step
        g = np.diff(prof, axis=1)
        near = np.clip(jj[:, None] + np.arange(-1, 2)[None, :], 0, g.shape[1] - 1)
        gm = g[rows[:, None], near]
        jm = near[rows, np.argmax(gm, axis=1)]
        a_, b_, c_ = (g[rows, np.clip(jm - 1, 0, g.shape[1] - 1)], g[rows, jm],
                      g[rows, np.clip(jm + 1, 0, g.shape[1] - 1)])
        den = a_ - 2 * b_ + c_
        sub = np.where(den < 0, 0.5 * (a_ - c_) / np.where(den < 0, den, -1.0), 0.0)
        e = offs[0] + jm + 0.5 + np.clip(sub, -0.5, 0.5)  # edge offset along the normal
        line = (p0 + inset * nrm, u)
        if ok.sum() >= 8:
            tt, ee = t[ok], e[ok]
            # robust: the line through two of the points that most others lie within 1.5 px
            # of (steps picked off the edge — text, a shadow's rim — can be many), refitted
            i1, i2 = np.triu_indices(len(tt), 1)
            slope = (ee[i2] - ee[i1]) / (tt[i2] - tt[i1])
            pred = ee[i1][:, None] + slope[:, None] * (tt[None, :] - tt[i1][:, None])
            inl = np.abs(pred - ee[None, :]) < 1.5
            keep = inl[int(np.argmax(inl.sum(axis=1)))]
            if keep.sum() >= 8:
                coef = np.polyfit(tt[keep], ee[keep] + inset, 1)
                q0 = p0 + coef[1] * nrm
                q1 = p0 + length * u + (coef[1] + coef[0] * length) * nrm
                line = (q0, (q1 - q0) / np.linalg.norm(q1 - q0))
        sides.append(line)
    out = []
    for i in range(4):  # corner i: where side i-1 meets side i
        (a0, da), (b0, db) = sides[i - 1], sides[i]
        m = np.array([da, -db]).T
        if abs(np.linalg.det(m)) < 1e-6:
            out.append(quad[i])
            continue
        ta = np.linalg.solve(m, b0 - a0)[0]
        out.append(a0 + ta * da)
    return np.array(out)
