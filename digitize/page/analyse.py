"""The page stages wired together: ``analyse`` turns one page image into its
``PageGeometry`` (scale, skew, trace rows with their pulses and time origin)."""
from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from digitize.geometry import grid_pitch, refine_pitch
from digitize.layouts import ROW_WIDTH_MM
from digitize.notes import Code, Note
from digitize.page.calibration import _consensus, _ends, _time_origin, drop_unpulsed_ends
from digitize.page.core import (DEGRIDDED, DEGRIDDED_NET, GRID_NOT_MEASURED, NoTraceRows,
                                PageError, PageGeometry, TIME_ORIGIN_ASSUMED)
from digitize.page.frame import _deskew_matrix, estimate_skew, size_scale
from digitize.page.ink import degridded, drop_grid_lines, ink_mask
from digitize.page.params import FRAME, INK, ROWS, SCALE
from digitize.page.rows import find_rows
from digitize.page.sheet import _on_paper, paper_region
from digitize.segment import segmenter

# a row of the grid filter's mask stands for the net's row within this many mm of its baseline
SEG_MATCH_MM = 3.0
# the grid filter's page is not read where it keeps less than this share of the pen strokes the
# segmentation net sees (within half a millimetre): a pen wider than its black-hat, or printed
# as black as a scanner's border, is filtered out with the grid (own val 00523_6x2_scan, a
# binarised page with a thick pen: 0.11; the 44 val scans of set y: 0.68 or more)
SEG_KEPT_MIN = 0.35


def analyse(bgr: np.ndarray, px_per_mm_hint: float | None = None, flattened: bool = False,
            border: float = 0.0, dark_grid: bool = False, wide_lines: bool = False,
            thin_grid: bool = False, degrid: bool = False, close_gaps: bool = False,
            row_mask: np.ndarray | None = None, net: bool = True) -> PageGeometry:
    """Scale, skew and trace rows of one page image (a faint pen is tried when no trace
    rows stand out at the normal ink threshold). ``flattened``: the image is a photographed
    sheet already cut out along its outline (no background left to find). ``dark_grid``:
    grid lines as dark as the trace are removed from the levelled mask; ``wide_lines``: a
    dark grid's straight lines are removed with a pixel all round (both tried by the
    pipeline when the rows found fit no layout); ``thin_grid``: a grid as dark as the trace
    but thinner than its pen is opened away (``pen_opening``; PageError where none is seen).
    ``degrid``: the page's grid filtered out of its spectrum first (noisy scans); there the
    rows are those the segmentation net shows (``digitize.segment``; ``net=False``: not run),
    each taken as the filtered page's row at its height where it has one (``_find_rows``).
    ``row_mask``: that net's stroke mask, at the image's size. On any page, an unpulsed first
    or last row off the pulsed rows' pitch is dropped where the net sees no pen stroke in it
    (``drop_unpulsed_ends``; the net run for that only)."""
    kw = dict(flattened=flattened, border=border, dark_grid=dark_grid,
              wide_lines=wide_lines or dark_grid, thin_grid=thin_grid, close_gaps=close_gaps,
              row_mask=row_mask, net=net)
    if degrid:  # the grid's pitch from the page as it is, the rows from it made clean
        grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr
        k = px_per_mm_hint or grid_pitch(grey).px_per_mm
        if not np.isfinite(k) or k < SCALE.min_px_per_mm:
            raise PageError("no grid to filter out")
        seg = segmenter() if net else None
        clean = degridded(bgr, k)
        # the rows where the segmentation net sees the pen's strokes; their extents, pulses,
        # time origins and baselines from the grid filter's strokes (the net's masks lose
        # thin pulse edges: read from them alone, 3 of 44 val scans took the gain at 5 mm/mV
        # and the time origins' p95 was 196 ms; benchmarks/eik_val_seg.txt)
        rm = seg.stroke_mask(bgr, k) if seg is not None else None
        if rm is not None and rm.any():
            kept = _strokes_kept(clean, rm, k)
            if kept < SEG_KEPT_MIN:
                raise PageError(f"the grid filter took out the pen's strokes with the grid "
                                f"(kept {kept:.0%} of those the segmentation net sees)")
        kw = dict(flattened=flattened, border=border, close_gaps=True, row_mask=rm,
                  net=rm is not None)
        g = analyse(clean, k, **kw)
        if not px_per_mm_hint:
            g = replace(g, scale_source="grid")
            # (the longest row: stains and creases break rows into shorter pieces — new eik
            # val scan 00269 of set z, rows of 134-261 mm whose median had moved the pitch
            # of 8.0 px/mm to 6.4 — while a harmonic is off by a factor of 2)
            ext = float(max(r.x_right - r.x_left for r in g.rows)) if g.rows else k * 250
            k_rows = ext / ROW_WIDTH_MM  # (a pulse adds a few mm)
            if not 0.8 < k / k_rows < 1.25:
                # the noisy grid's spectrum picked a harmonic (rows of 127 or 500 mm): the
                # pitch is measured again near the rows' length (the profile of the page
                # turned upright), else the rows give it
                up = grey if abs(g.skew_deg) <= 0.02 else cv2.warpAffine(
                    grey, g.deskew[:2], g.size, flags=cv2.INTER_LINEAR, borderValue=255)
                k2, ratio = refine_pitch(255.0 - up.mean(axis=0), k_rows, span=0.06)
                source = "grid" if ratio >= FRAME.grid_ratio_near_rows else "rows"
                if source == "rows":
                    k2 = k_rows
                g = analyse(clean, k2, **kw)
                g = replace(g, scale_source=source, warnings=g.warnings + (
                    (GRID_NOT_MEASURED,) if source == "rows" else ()))
            if g.scale_source == "grid":
                # the 2-D spectrum's pitch is good to ~0.3 %, which over a 10-s row is 30 ms:
                # sharpen it over the whole width of the page turned upright, as for clean pages
                up = grey if abs(g.skew_deg) <= 0.02 else cv2.warpAffine(
                    grey, g.deskew[:2], g.size, flags=cv2.INTER_LINEAR, borderValue=255)
                k3, ratio = refine_pitch(255.0 - up.mean(axis=0), g.px_per_mm, span=0.03)
                if ratio >= FRAME.grid_ratio and abs(k3 / g.px_per_mm - 1) > 5e-4:
                    g = analyse(clean, k3, **kw)
                    g = replace(g, scale_source="grid")
        if abs(g.skew_deg) > 0.02:  # the page as it is (not degridded), deskewed
            grey = cv2.warpAffine(grey, g.deskew[:2], g.size, flags=cv2.INTER_LINEAR,
                                  borderValue=255)
        return replace(g, grey=grey,
                       warnings=g.warnings + (DEGRIDDED if rm is None else DEGRIDDED_NET,))
    try:
        return _analyse(bgr, px_per_mm_hint, faint=False, **kw)
    except NoTraceRows:
        return _analyse(bgr, px_per_mm_hint, faint=True, **kw)


def _analyse(bgr: np.ndarray, px_per_mm_hint: float | None, faint: bool,
             flattened: bool = False, border: float = 0.0, dark_grid: bool = False,
             wide_lines: bool = False, thin_grid: bool = False, close_gaps: bool = False,
             row_mask: np.ndarray | None = None, net: bool = True) -> PageGeometry:
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
        if row_mask is not None:
            row_mask = row_mask & paper
    skew = estimate_skew(mask, k0)
    deskew, size = _deskew_matrix((h, w), skew)
    if abs(skew) > 0.02:
        mask = cv2.warpAffine(mask, deskew[:2], size, flags=cv2.INTER_NEAREST)
        ratio = cv2.warpAffine(ratio, deskew[:2], size, flags=cv2.INTER_LINEAR,
                               borderValue=1.0)
        if paper is not None:
            paper = cv2.warpAffine(paper, deskew[:2], size, flags=cv2.INTER_NEAREST)
        if row_mask is not None:
            row_mask = cv2.warpAffine(row_mask, deskew[:2], size, flags=cv2.INTER_NEAREST)
    if dark_grid:
        mask = drop_grid_lines(mask, k0)
    rows = _on_paper(_find_rows(mask, row_mask, k0), paper, k0,
                     mask.shape[0] if flattened else None)
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
    elif near_rows[1] >= FRAME.grid_ratio_near_rows and not edge_to_edge and (
            near_rows[1] >= FRAME.grid_ratio or not rows_sure
            or abs(near_rows[0] / k_rows - 1) < FRAME.weak_grid_rows_agree):
        # a weak periodicity (a faint grid, or none: text, separators) counts only where it
        # does not contradict rows whose ends agree
        k, source = near_rows[0], "grid"
    elif near_grid[1] >= FRAME.grid_ratio and not rows_sure:
        k, source = near_grid[0], "grid"
    else:
        k, source = k_rows, "rows"
        warnings.append(GRID_NOT_MEASURED)
    if abs(k / k0 - 1) > 0.15:  # the morphology scale was far off: redo the rows at this one
        rows = _on_paper(_find_rows(mask, row_mask, k), paper, k,
                         mask.shape[0] if flattened else None)
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
    if _time_origin(rows, k, scale_known=source != "rows", filtered=close_gaps):
        warnings.append(TIME_ORIGIN_ASSUMED)
    _consensus(rows, k)
    rows = drop_unpulsed_ends(rows, k, seen=_net_seen(bgr, row_mask, deskew, size, skew, k)
                              if net else None)
    if k < SCALE.min_px_per_mm:
        raise PageError(f"resolution too low ({k:.2f} px/mm < {SCALE.min_px_per_mm})")
    if k < SCALE.warn_px_per_mm:
        warnings.append(Note(Code.LOW_RESOLUTION, f"low resolution ({k:.2f} px/mm)"))
    return PageGeometry(px_per_mm=float(k), scale_source=source, skew_deg=skew, rows=rows,
                        deskew=deskew, size=size, grid_px_per_mm=float(grid), mask=mask,
                        grey=grey_d, on_background=paper is not None,
                        warnings=tuple(warnings), dark=(ratio < INK.threshold).astype(np.uint8))


def _net_seen(bgr: np.ndarray, row_mask: np.ndarray | None, deskew: np.ndarray,
              size: tuple[int, int], skew: float, k: float):
    """``row -> share`` of the row's columns in which the segmentation net sees a pen stroke
    within ``ROWS.stray_band_mm`` of its baseline (the page turned upright), the net run on the
    first call where ``row_mask`` (the net's mask, already upright) is not given; None where
    the net is off."""
    memo: dict = {}

    def seen(r) -> float | None:
        if "m" not in memo:
            m = row_mask
            if m is None:
                seg = segmenter()
                if seg is not None:
                    m = seg.stroke_mask(bgr, k)
                    if abs(skew) > 0.02:
                        m = cv2.warpAffine(m, deskew[:2], size, flags=cv2.INTER_NEAREST)
            memo["m"] = m
        m = memo["m"]
        if m is None:
            return None
        d = ROWS.stray_band_mm * k
        band = m[int(max(0, r.y - d)):int(r.y + d) + 1, int(r.x_left):int(r.x_right) + 1]
        return float(band.any(axis=0).mean()) if band.size else None
    return seen


def _strokes_kept(clean: np.ndarray, stroke_mask: np.ndarray, k: float) -> float:
    """The share of ``stroke_mask``'s pixels within half a millimetre of the ink the grid
    filter kept (``degridded``: kept strokes are drawn at least half black)."""
    ink = (clean[..., 0] if clean.ndim == 3 else clean) < 128
    d = 2 * max(1, int(round(0.5 * k))) + 1
    near = cv2.dilate(ink.astype(np.uint8), np.ones((d, d), np.uint8)) > 0
    return float(near[stroke_mask > 0].mean())


def _find_rows(mask: np.ndarray, row_mask: np.ndarray | None, k: float) -> list:
    """The trace rows of ``mask``; with the segmentation net's ``row_mask``, the rows it shows:
    each one the mask's row at its height (its extent and baseline), where the mask has one."""
    rows = find_rows(mask, k)
    if row_mask is None:
        return rows
    out = []
    for r in find_rows(row_mask, k, one_length=False):
        near = [m for m in rows if abs(m.y - r.y) < SEG_MATCH_MM * k]
        pick = min(near, key=lambda m: abs(m.y - r.y)) if near else r
        if all(pick is not o for o in out):
            out.append(pick)
    return out
