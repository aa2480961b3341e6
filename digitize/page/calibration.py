"""Stage 5, calibration: each row's calibration pulse (a flat-topped step at either end: its
height gives the gain in mm/mV, its timing stroke where the trace starts or ends), the row's
ends to a fraction of a pixel from pen-edge profiles, and the time origin the page's rows
agree on. At 100 Hz a 0.1-mm error in where a panel starts is a third of a sample."""
from __future__ import annotations

import cv2
import numpy as np

from digitize.layouts import GAINS, ROW_WIDTH_MM
from digitize.page.core import Row
from digitize.page.ink import _drop_specks, _runs
from digitize.page.params import INK, PULSE, ROWS, TIMING
from digitize.page.rows import trace_width


def find_pulse(mask: np.ndarray, row: Row, px_per_mm: float, side: str
               ) -> tuple[float, float, float, float] | None:
    """A flat-topped calibration pulse at one end of a row (``_find_pulse``); where none is
    seen, looked for again with the mask's pieces a pixel apart taken as one stroke before
    specks are dropped: a pulse drawn along a fine grid's lines comes out of the grid's
    removal as dashes shorter than a millimetre (new eik val clean 00394: every row's pulse
    missed, read as trace, the page 164 ms late). Only as a second try: on a dotted grid
    the dots beside a pulse's corner join it and move its edge (real scan HB(106): 0.8 mm)."""
    found = _find_pulse(mask, row, px_per_mm, side)
    return found if found is not None else _find_pulse(mask, row, px_per_mm, side, join=True)


def _find_pulse(mask: np.ndarray, row: Row, px_per_mm: float, side: str, join: bool = False
                ) -> tuple[float, float, float, float] | None:
    """A flat-topped calibration pulse at one end of a row → (x_rise, x_fall, height_mm,
    step_mm): ``step_mm`` is the height of a stepped pulse's second half (split gain: limb
    leads at ``height_mm``, chest leads at ``step_mm``), else ``height_mm``.

    Per column the topmost ink above the baseline; a pulse is a run of columns
    (``PULSE.width_mm``) at a constant height (``PULSE.flat_mm``, ``PULSE.min_height_mm``;
    or two runs a factor 2 apart), joined to the baseline by a vertical edge at its row-end
    side (which rules out the pulse of the row above), at most ``PULSE.end_mm`` from the
    row's end.
    """
    k = px_per_mm
    h, w = mask.shape
    # the row's ink extent may stop at the pulse's near edge (a tall pulse's top lies outside
    # the row band): the window reaches past it either way
    span = int(round(2 * PULSE.reach_mm * k))
    if side == "left":
        x0 = int(max(0, row.x_left - PULSE.reach_mm * k))
        x1 = min(w, x0 + span)
    else:
        x1 = int(min(w, row.x_right + PULSE.reach_mm * k))
        x0 = max(0, x1 - span)
    y0 = int(max(0, row.y - PULSE.above_mm * k))
    yb = int(round(row.y))
    sub = mask[y0:min(h, yb + 1), x0:x1]
    if sub.size == 0 or sub.shape[0] < 3 * k:
        return None
    sub = _drop_specks(sub, max(3, int(round(1.0 * k))), join=join)
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
        flat[1:] = np.abs(np.diff(height)) <= max(PULSE.flat_mm, 1.01 / k)  # 1-px: raster
        # one flat run (2.5 mm high: chest leads at half of 5 mm/mV), or two adjacent ones a
        # factor 2 apart: the stepped pulse of split gain (limb leads at the first height,
        # chest leads at the second)
        runs = [(max(0, a - 1), b)
                for a, b in _runs(flat & (height >= PULSE.min_height_mm), max_gap=0)]
        cands = [[ab] for ab in runs]
        runs = [(a, b) for a, b in runs if b - a + 1 >= 1.0 * k]
        for (a1, b1), (a2, b2) in zip(runs, runs[1:]):
            h1, h2 = (float(np.median(height[a:b + 1])) for a, b in ((a1, b1), (a2, b2)))
            if a2 - b1 <= max(2, 0.5 * k) and max(h1, h2) >= PULSE.low_mm \
                    and abs(abs(np.log(h1 / h2)) - np.log(2)) < PULSE.step_tol \
                    and 0.5 <= (b2 - a2 + 1) / (b1 - a1 + 1) <= 2 \
                    and _step_joined(sub, top, b1, a2, abs(h1 - h2) * k):
                cands.append([(a1, b1), (a2, b2)])
        for spans in cands:
            a, b = spans[0][0], spans[-1][1]
            width_mm = (b - a + 1) / k
            if not PULSE.width_mm[0] <= width_mm <= PULSE.width_mm[1]:
                continue
            tops = [int(np.median(top[sa:sb + 1])) for sa, sb in spans]
            if y0 > 0 and min(tops) <= 1:
                # a "top" at the window's own top edge is ink running on above it (a noisy
                # scan's dark border: new eik val scan 00292 of set z, a 24-mm "pulse" beside
                # the real one), not a pulse: the tallest is 20 mm (2 mV at 10 mm/mV)
                continue
            t = tops[0] if side == "left" else tops[-1]  # the stroke at the row-end side
            edge = range(max(0, a - int(1.5 * k)), min(len(height), a + int(0.6 * k) + 1)) \
                if side == "left" else \
                range(max(0, b - int(0.6 * k)), min(len(height), b + int(1.5 * k) + 1))
            # (a pair of columns: an edge left slanted by a residual tilt steps a pixel).
            # The stroke may stop short of the trace's baseline: a printer can draw the pulse
            # from its own zero while the trace starts off it (up to PULSE.foot_off_mm above)
            feet = [_stroke_length(sub[t:, c:c + 2].max(axis=1), max(2, int(0.6 * k)))
                    for c in edge]
            need = max(0.6 * (sub.shape[0] - t), sub.shape[0] - t - PULSE.foot_off_mm * k)
            reach = [c for c, f in zip(edge, feet) if f >= need]
            if not reach:
                continue  # no vertical edge down to the baseline: not this row's pulse
            # nor where that edge runs on above the top: a taller stroke passing by, as the
            # pulse's own fall beside a flat stretch of trace that starts above the pulse's
            # foot (new eik val clean 00305, V1: a 9-mm "pulse" 2.5 mm high, wider than the
            # real one, had won)
            if all(_stroke_length(sub[:t, c:c + 2].max(axis=1)[::-1], 1)
                   >= PULSE.over_top_mm * k for c in reach):
                continue
            # the pulse's own base: where its edge stroke ends, which may lie off the row's
            # baseline (a trace that starts or runs off its zero): followed below the window
            # (the longest of the edge's columns, across breaks of up to 1 mm where grid
            # lines were taken out of the mask)
            below = min(h, yb + int(PULSE.base_below_mm * k))
            base_y = y0 + t + max(_stroke_length(
                mask[y0 + t:below, x0 + c:x0 + c + 2].max(axis=1),
                max(2, int(round(k)))) for c in reach)
            if bridged[a:b + 1].any() and any(
                    abs(np.log(h / snap_gain(h))) > PULSE.bridged_gain_tol for h in
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
                need = max(0.6 * (sub.shape[0] - t), sub.shape[0] - t - PULSE.foot_off_mm * k)
                solid = [c for c in near
                         if _stroke_length(sub[t:, c], max(2, int(0.6 * k))) >= need]
                if solid and side == "left":
                    b = max(solid)
                elif solid:
                    a = min(solid)
                best = (x0 + a, x0 + b + 1, float(hmm[0]), float(hmm[-1]), width_mm,
                        bool(solid))
    if best is None:
        return None
    xa, xb, hmm, step, _, timed = best
    end = PULSE.end_mm * k
    # further inside only where its timing edge was seen to reach the baseline and no trace
    # runs along the baseline between the row's ink end and the pulse: the row's end was
    # stretched by grid residue or a stain
    if side == "left" and (row.x_left - xb > end or xa - row.x_left > end and not (
            timed and _no_trace_between(mask, row, row.x_left, xa, k))):
        return None
    if side == "right" and (xa - row.x_right > end or row.x_right - xb > end and not (
            timed and _no_trace_between(mask, row, xb, row.x_right, k))):
        return None
    return float(xa), float(xb), hmm, step


def _no_trace_between(mask: np.ndarray, row: Row, x0: float, x1: float, k: float) -> bool:
    """Whether the ink between a row's end and its pulse is not a trace: under half of its
    columns hold ink within ``PULSE.alone_mm`` of the baseline (a trace's run along its
    baseline would; grid residue's ticks and a stain's specks do not)."""
    y0, y1 = int(max(0, row.y - PULSE.alone_mm * k)), int(row.y + PULSE.alone_mm * k + 1)
    band = mask[y0:y1, int(max(0, x0)):int(max(0, x1))]
    return band.shape[1] == 0 or float(band.any(axis=0).mean()) < 0.5


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


def _stroke_edges(ratio: np.ndarray, mask: np.ndarray, x0: int, x1: int, y0: int, y1: int
                  ) -> tuple[float, float] | None:
    """x of a vertical stroke's left and right edges in a window (where its column ink
    crosses half its peak; nan where ink runs on to the window's end), or None."""
    col = _ink_columns(ratio, mask, x0, x1, y0, y1)
    if len(col) < 3 or col.max() <= 0:
        return None
    a = _crossing(col, 0.5 * float(col.max()), rising=True)
    b = _crossing(col, 0.5 * float(col.max()), rising=False)
    return (float("nan") if a is None else max(0, x0) + a,
            float("nan") if b is None else max(0, x0) + b)


def _clear_of_trace(c: float, inner: tuple[float, float] | None,
                    outer: tuple[float, float] | None, side: str) -> float:
    """A pulse's timing stroke, ``c`` (its ink centroid), where the trace's first (last) QRS
    begins right at it: the ink beside the stroke pulls the centroid off it (eik val 00113:
    0.3-0.5 mm late on three rows of four). The stroke's edge inside the pulse (blank paper on
    that side) is not pulled: it plus half the pen's width, measured between the edges of the
    pulse's other, outer stroke (paper on both sides), places it instead — or, where both its
    edges show at the outer stroke's width (to a pixel: nothing joins it), their midpoint —
    where the centroid lies more than TIMING.stroke_pull_px off it that way."""
    if inner is None or outer is None:
        return c
    pen = outer[1] - outer[0]
    if np.isfinite(inner[0]) and np.isfinite(inner[1]) and abs(inner[1] - inner[0] - pen) <= 1.0:
        alt = (inner[0] + inner[1]) / 2
    else:  # the falling stroke's left edge is inside the pulse (the right's rising, its right)
        alt = inner[0] + pen / 2 if side == "left" else inner[1] - pen / 2
    if not np.isfinite(alt):
        return c
    pulled = c - alt if side == "left" else alt - c
    return alt if pulled > TIMING.stroke_pull_px else c


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
            win = (int(left[1] - 2 * half) - 4, int(left[1]) + 4, top + int(half) + 2,
                   yb - int(half) - 1)
            c = _stroke_centre(ratio, mask, *win)
            if c is not None and abs(c - x_fall) < 1.5:
                x_fall = c
            top0 = int(round(r.y - left[2] * k))  # the rising stroke: blank on both sides
            win0 = (int(left[0]) - 4, int(left[0] + 2 * half) + 4, top0 + int(half) + 2,
                    yb - int(half) - 1)
            # (the stroke's edges looked for from 1 mm further inside the pulse: a QRS merged
            # with the stroke moved the flat top's measured end onto it)
            inner = (win[0] - int(k),) + win[1:]
            x_fall = _clear_of_trace(x_fall, _stroke_edges(ratio, mask, *inner),
                                     _stroke_edges(ratio, mask, *win0), "left")
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
            win = (int(right[0]) - 4, int(right[0] + 2 * half) + 4, top + int(half) + 2,
                   yb - int(half) - 1)
            c = _stroke_centre(ratio, mask, *win)
            if c is not None and abs(c - x_rise) < 1.5:
                x_rise = c
            top1 = int(round(r.y - right[3] * k))  # the falling stroke, outside
            win1 = (int(right[1] - 2 * half) - 4, int(right[1]) + 4, top1 + int(half) + 2,
                    yb - int(half) - 1)
            inner = (win[0], win[1] + int(k)) + win[2:]
            x_rise = _clear_of_trace(x_rise, _stroke_edges(ratio, mask, *inner),
                                     _stroke_edges(ratio, mask, *win1), "right")
        # the trace ends where its ink stops before a blank gap, else at the rising stroke
        stop = _gap_edge(mask, r, x_rise, half, k, "right", ratio)
        r.x_stroke, r.x_resume = x_rise, stop
        if np.isfinite(stop):
            r.x_end = stop
        elif scale_known and r.x_left >= 3:
            # the trace runs into the pulse's foot: where it ends is not seen, but where it
            # starts is (its left pen cap, on blank paper)
            r.x_end = r.x_start + (ROW_WIDTH_MM - TIMING.last_sample_mm) * k
        else:
            r.x_end = x_rise
    full = r.x_left >= 1 and abs(r.x_end - r.x_start - ROW_WIDTH_MM * k) < 3 * k
    if scale_known and full and r.pulse == "right":
        r.x_start = r.x_end - (ROW_WIDTH_MM - TIMING.last_sample_mm) * k
    elif scale_known and full and r.pulse == "none" and cap_end is not None and r.x_left >= 3:
        r.x_start = (r.x_start + cap_end - (ROW_WIDTH_MM - TIMING.last_sample_mm) * k) / 2
    elif scale_known and r.pulse == "none" and cap_end is not None and \
            r.x_end - r.x_start > (ROW_WIDTH_MM + 1.0) * k:
        # ink before a full row's first sample that is not a recognised pulse (a pulse of
        # some other shape, a label): the row's end times it
        r.x_start = cap_end - (ROW_WIDTH_MM - TIMING.last_sample_mm) * k


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

    A gap (``TIMING.gap_*``): columns (one at least) without ink near the baseline, starting
    within a foot's length of the stroke, with ink again after it and blank paper above and
    below."""
    h, w = mask.shape
    bk = TIMING.gap_band_mm * k
    band = mask[max(0, int(r.y - bk)):min(h, int(r.y + bk) + 1)]
    step = 1 if side == "left" else -1
    x = int(np.floor(x_edge + half + 1)) if side == "left" else int(np.ceil(x_edge - half - 1))
    reach = int(round(TIMING.gap_reach_mm * k))
    xs = [x + step * i for i in range(reach) if 0 <= x + step * i < w]
    if len(xs) < 3:
        return float("nan")
    ink = band[:, xs].any(axis=0)
    if ratio is not None:
        # a column that a grid line as dark as the pen covers across the band is not blank
        # paper: the line was taken out of the mask with the pen that crosses it (fresh eik
        # test pages 00065, 00094: such a hole 1 mm after the stroke of a flush trace read
        # as the gap, 42 ms late)
        dark = ratio[max(0, int(r.y - bk)):min(h, int(r.y + bk) + 1)][:, xs] < INK.threshold
        ink |= dark.mean(axis=0) >= TIMING.gap_line_cover
    blank = np.flatnonzero(~ink)
    if not len(blank) or blank[0] > TIMING.gap_start_mm * k:  # after at most a foot
        return float("nan")
    after = np.flatnonzero(ink[blank[0]:])
    if not len(after):
        return float("nan")
    gap = int(after[0])
    if not 1 <= gap <= TIMING.gap_max_mm * k:
        return float("nan")
    # blank paper, not a trace passing above or below the band (its first samples off zero)
    ck = TIMING.gap_clear_mm * k
    wide = mask[max(0, int(r.y - ck)):min(h, int(r.y + ck) + 1)]
    if wide[:, xs[blank[0]:blank[0] + gap]].any():
        return float("nan")
    first = xs[blank[0] + gap]
    est = float(first + half - 0.5) if side == "left" else float(first - half + 0.5)
    if ratio is not None:  # sub-pixel: the pen cap's ink reaches half the pen width at 0.87 r
        h2 = max(0.5, half)
        y0, y1 = int(r.y - bk), int(r.y + bk) + 1
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
    for h in TIMING.pulse_to_trace_mm[side]:
        if abs(off_px / k - h) <= TIMING.convention_snap_mm:
            bias = TIMING.pulse_bias_px[side]
            return h * k + (bias if side == "left" else -bias)
    return off_px


def _agreeing(values: list[float], spread: float) -> list[float]:
    """The largest set of ``values`` that lie within ``spread`` of each other."""
    v = sorted(values)
    best: list[float] = []
    for i in range(len(v)):
        j = i
        while j + 1 < len(v) and v[j + 1] - v[i] <= spread:
            j += 1
        if j + 1 - i > len(best):
            best = v[i:j + 1]
    return best


def _time_origin(rows: list[Row], k: float, scale_known: bool = True,
                 filtered: bool = False) -> bool:
    """Each pulsed row's time origin from the evidence on this page, not from one convention.

    Printers differ in what lies between the pulse and the trace: a blank gap (the trace
    starts where its ink resumes), nothing (it starts at the falling stroke), or a flat foot
    joined to the trace. Readings of the offset from the timing stroke to the first sample:
    the gap's far edge, and — where the scale was measured independently of the rows (``k``
    from the grid) and a row ends on paper — its end's pen cap 250 mm later. One convention
    per printout: the page's median is taken (within a foot's length, -0.5 to 4 mm), the two
    readings averaged where they agree within 1 mm (the gap wins where they do not: the rows
    are then not 250 mm long), and a known convention (``TIMING.pulse_to_trace_mm``) replaces the
    measurement where they agree. Without any reading the trace starts at the stroke.
    ``filtered``: the mask is a noisy scan's grid-filtered strokes, whose pen is broken in
    places; there a gap is weak evidence, and the rows' ends win where the two disagree.

    Right pulses likewise from the gap before the pulse; where the trace runs into the
    pulse's foot, the rows' own starting pen caps (on blank paper) time them. Where nothing
    on the page shows the offset (no gap is seen and no row's end can be measured), a left
    pulse's trace is taken to start at its stroke (flush: no gap seen), a right pulse's
    convention is the last of ``TIMING.pulse_to_trace_mm``, and True is returned (the page is
    flagged)."""
    left = [r for r in rows if r.pulse == "left" and np.isfinite(r.x_stroke)]
    gaps = [r.x_resume - r.x_stroke for r in left if np.isfinite(r.x_resume)]
    offs = [r.cap_end - (ROW_WIDTH_MM - TIMING.last_sample_mm) * k - r.x_stroke for r in left
            if np.isfinite(r.cap_end) and scale_known]
    offs = [o for o in offs if -0.5 * k <= o <= 4 * k]
    # (a single row's gap edge is read to ~1 px at low resolution, the stroke to 0.1 px)
    by_gap = float(np.median(gaps)) if gaps and len(gaps) > len(left) / 2 else None
    # the rows' ends, where at least half the rows give ends that agree within TIMING.end_spread_mm
    # (eik val scan 00092: two rows ran on into noise, the other two ended 2.5 mm apart, and
    # their median put the page's trace 2 mm late; real scan HB(105): three rows agree to
    # 0.02 mm, the rhythm row's pulse edge was misplaced by 2 mm)
    ends = _agreeing(offs, TIMING.end_spread_mm * k)
    # — two of them at least, where two rows are pulsed (new eik val scan 00098: of two pulsed
    # rows, one ran on 1.2 mm into noise past its end and put the page 46 ms late)
    by_end = float(np.median(ends)) if ends and len(ends) >= max(len(left) / 2, min(
        2, len(left))) else None
    assumed = False
    if by_gap is not None and by_end is not None and abs(by_gap - by_end) <= 1.0 * k:
        off = (by_gap + by_end) / 2  # two independent readings of one offset
    elif by_end is not None and (by_gap is None or filtered):
        # (new eik val scan 00290 of set w: the filter broke the pen 0.2 mm after the
        # stroke, read as a 1.5-mm gap, while three rows' ends agreed to 0.13 mm on a flush
        # trace: the gap had put the page 82 ms late)
        off = by_end
    elif by_gap is not None:
        off = by_gap
    else:  # no gap seen and no end to measure from (a noisy scan): once the scale is known,
        # the trace is taken to run on from the stroke, as no gap is what the page shows (on
        # val pages this was only ever reached on ecg-image-kit scans, whose trace is flush:
        # the foot-and-gap convention put them 2 mm late, 80 ms). Before (rows measuring the
        # scale) the foot-and-gap convention stays: there it only sets the rows' length,
        # and changing it there swayed which rows a noisy val scan was read with (00137)
        conv = TIMING.pulse_to_trace_mm["left"][0 if scale_known else -1]
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
            r.x_start, r.x_end = x, x + (ROW_WIDTH_MM - TIMING.last_sample_mm) * k
        return assumed
    else:
        off = _snap(TIMING.pulse_to_trace_mm["right"][-1] * k, k, "right")
        assumed = assumed or bool(right)
    for r in right:
        r.x_end = r.x_stroke - off
        if scale_known or not np.isfinite(r.x_start):
            r.x_start = r.x_end - ROW_WIDTH_MM * k
    return assumed


def _consensus(rows: list[Row], k: float) -> None:
    """Rows of a printout share their start: rows whose pulse was missed (or whose ink starts
    early or late — a label, a stroke, a trace leaving its band) take the others'."""
    # a pulse that would cross the row above is ink joined to it (``PULSE.max_pitch_share``)
    for above, r in zip(rows, rows[1:]):
        if r.pulse != "none" and r.pulse_mm * k > PULSE.max_pitch_share * (r.y - above.y):
            r.drop_pulse()
            r.x_start = r.x_left
    # a 2-3 mm pulse (2.5 mm/mV: a 12x1 page's chest rows at half of 5) counts only where
    # another row shows one too (a 2.8-mm box in one row of a page printed without pulses at
    # 20 mm/mV had set its gain to 2.5)
    # — and only beside a row whose pulse stands at a standard height (3 mm or more): a page
    # photographed upright without pulses, read turned over, showed 1.7-2.4-mm steps at
    # three rows' ends (the traces' starts) and was taken turned at 2.5 mm/mV
    low = [r for r in rows if r.pulse != "none" and r.pulse_mm < PULSE.low_mm]
    if low and not any(r.pulse != "none" and r.pulse_mm >= PULSE.low_mm for r in rows):
        for r in low:
            r.drop_pulse()
            r.x_start = r.x_left
    elif len(low) == 1:
        low[0].drop_pulse()
        low[0].x_start = low[0].x_left
    pulsed = [r for r in rows if r.pulse != "none"]
    if len(rows) >= 4 and len(pulsed) < len(rows) / 2:
        # a pulse in few of many rows must at least stand at a standard gain's height (a
        # 4.2-mm box in one row of a page without pulses had set its gain to 5 mm/mV)
        for r in pulsed:
            if not r.pulse_mm >= PULSE.low_mm or \
                    abs(np.log(r.pulse_mm / snap_gain(r.pulse_mm))) > PULSE.lone_gain_tol:
                r.drop_pulse()
                r.x_start = r.x_left
    # rows whose ink is a row's length (250 mm) start at their first sample: where two or
    # more without a pulse agree, they time a page without pulses (new eik val scan 00312:
    # pulses lost in the filtered grid, the ink of four rows run on into noise past their
    # ends, timed from those ends 9-14 mm late; the median start 5 mm late) — or one where
    # few rows show a "pulse" and none starts with them (new eik val scan 00357: one 14-mm
    # wide box among seven rows, 8.5 mm after two full rows' start)
    full = [r for r in rows if r.pulse == "none"
            and abs(r.x_right - r.x_left - ROW_WIDTH_MM * k) <= TIMING.full_row_mm * k]
    agree = _agreeing([r.x_start for r in full], TIMING.blur_mm * k)
    xf = float(np.median(agree)) if len(agree) >= 2 and 2 * len(agree) > len(full) else None
    pulsed = [r for r in rows if r.pulse != "none"]
    if xf is not None and len(rows) >= 4 and 0 < len(pulsed) < len(rows) / 2 and \
            all(abs(r.x_start - xf) > 2 * k for r in pulsed):
        for r in pulsed:
            r.drop_pulse()
            r.x_start = r.x_left
    if all(r.pulse == "none" for r in rows) and len(rows) > 1:
        x = float(np.median([r.x_start for r in rows])) if xf is None else xf
        for r in rows:
            if TIMING.shared_off_mm * k < abs(r.x_start - x) < TIMING.shared_max_mm * k:
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
            # (against the starts as read, not as moved here, and only by a majority of the
            # rows: two rows of four that agree are no evidence against the other two — new
            # eik val scan 00376, whose two rows with a misread falling stroke moved the
            # two right ones, or not, by the order they came in)
            read = {id(f): f.x_start for f in found}
            for r in found:
                rest = [f for f in found if f is not r]
                x = float(np.median([read[id(f)] for f in rest]))
                agree = [f for f in rest if abs(read[id(f)] - x) <= 0.5 * k]
                if len(agree) < 2 or len(agree) < 0.6 * len(rest) or \
                        2 * len(agree) <= len(found):
                    continue
                x = float(np.median([read[id(f)] for f in agree]))
                x_rise = float(np.median([f.x_left for f in agree]))
                if abs(r.x_start - x) > 2 * k and abs(r.x_left - x_rise) <= k:
                    r.x_start = x
                    r.step_mm = r.pulse_mm
                elif TIMING.blur_mm * k < abs(r.x_start - x) <= 2 * k and (
                        len(found) >= 4 or abs(r.x_left - x_rise) <= TIMING.blur_mm * k
                        or abs(r.x_end - float(np.median([f.x_end for f in agree])))
                        <= TIMING.blur_mm * k):
                    # its falling edge blurred on a noisy scan (eik val scan 00194's second
                    # row 0.9 mm late, which broke its 6x2 limb leads' relations); with
                    # fewer rows, where its rise or its end stands with theirs (new eik val
                    # scans 00292 and 00408: the second row of three 1.8 mm early, its
                    # panels after the first 68 ms early)
                    r.x_start = x
        if side == "left" and len(found) == 2 and abs(found[0].x_left - found[1].x_left) <= k \
                and abs(found[0].x_start - found[1].x_start) > 2 * k:
            # two pulses that rise together and fall apart: a falling stroke is misread late
            # (a label or a QRS joined to it), not early — both start at the earlier (new eik
            # val scan 00394: the rhythm row's pulse 9.4 mm wide, the first row's 5.4 mm)
            x = min(f.x_start for f in found)
            for f in found:
                if f.x_start > x:
                    f.x_start, f.step_mm = x, f.pulse_mm
        if side == "left":
            x = float(np.median([r.x_start for r in found]))
            for r in rows:
                # its ink starting near where a pulse would, or after the pulsed rows' start
                # (the trace's first beats lost under a shadow: new eik val scan 00455)
                if r.pulse == "none" and (most or abs(r.x_left - (x - 8 * k)) < 6 * k
                                          or x + 2 * k < r.x_left < x + 25 * k):
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
    _shared_start(rows, k)


def _shared_start(rows: list[Row], k: float) -> None:
    """A row that starts apart from the rows that agree on their start (most of them) takes
    their start (``TIMING.shared_share``)."""
    if len(rows) < 3:
        return
    x = float(np.median([r.x_start for r in rows]))
    agree = [r for r in rows if abs(r.x_start - x) <= TIMING.blur_mm * k]
    if len(agree) < max(3, TIMING.shared_share * len(rows)):
        return
    x = float(np.median([r.x_start for r in agree]))
    for r in rows:
        if TIMING.shared_off_mm * k < abs(r.x_start - x) < TIMING.shared_max_mm * k:
            r.x_start = x


def drop_unpulsed_ends(rows: list[Row], k: float, seen=None) -> list[Row]:
    """Rows without a first or last one that shows no pulse among rows that all do (the other
    end aside where it shows none either), lies off their pitch and starts well after them
    (``ROWS.stray_gap``, ``ROWS.stray_start_mm``) — or, at any gap, where ``seen(row)``, the
    share of its columns in which the page segmentation net sees a pen stroke near its
    baseline, is under ``ROWS.stray_net_seen`` (None: not known). Both ends may go: a page's
    dark top edge and its footer's text, each read as an unpulsed row around four pulsed
    ones (eik test scan 00091, read 6x1 at -6 dB; looked at after its scoring)."""
    for end in (0, -1):
        if len(rows) < 4:
            break
        rest = rows[1:] if end == 0 else rows[:-1]
        other = rest[-1] if end == 0 else rest[0]
        core = [r for r in rest if r is not other or r.pulse != "none"]
        if rows[end].pulse != "none" or len(core) < 3 or any(r.pulse == "none" for r in core):
            continue
        ys = [r.y for r in rows]
        gaps = np.diff(ys)
        gap, inner = (gaps[0], gaps[1:]) if end == 0 else (gaps[-1], gaps[:-1])
        start = float(np.median([r.x_left for r in core]))
        near = gap < ROWS.stray_gap * float(np.median(inner))
        if near and rows[end].x_left - start >= ROWS.stray_start_mm * k:
            rows = rest
        elif seen is not None:
            share = seen(rows[end])
            if share is not None and share < ROWS.stray_net_seen:
                rows = rest
    return rows
