"""One page → 12-lead signal: geometry → layout → lead windows → model → signals → quality.

Layout: the number of trace rows decides (1 strip, 3 3x4, 4 3x4+1, 5 3x4+2, 12 12x1); six rows
are 6x2, 3x4+3 or 6x1, told apart by the leads' own relations (Einthoven: II = I + III and
aVR + aVL + aVF = 0 where those leads are drawn at the same time) — no text reading needed.
Rhythm strips: their lead is the 3x4 panel they match over the same 2.5 s (a rhythm strip
repeats a lead drawn above it); where none matches well, the standard order (II, V1, V5).
"""
from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from digitize.leads import CHEST_LEADS, LEADS
from digitize.geometry import grid_coordinate, refine_pitch
from digitize.page.ink import _brightest
from digitize.page import (FRAME, LAYOUT, READ, PageError, PageGeometry, analyse, baseline,
                           outline_inset, page_homography, size_scale, snap_gain, trace_width)
from digitize.evidence import (NotEcg, beats_cue, consensus_beats, describe, evidence,
                               failure_evidence, flag_heart_rates, page_heart_rate)
from digitize.notes import Code, Note, has
from digitize.labels import (glyph_mask, read_labels, separator_bridges, separator_mask,
                             unread_labels)
from digitize.orientation import (ORIENT, better_mirrored, better_turned, one_row,
                                  strip_turned_over, tall,
                                  mirror_suspect, oriented, rotated, sideways_suspect,
                                  turn_credible, turned_over_better, upside_down_suspect)
from digitize.orientation import score as orientation_score
from digitize.layouts import LAYOUTS, ROW_WIDTH_MM, row_leads
from digitize.printed import printed_gain
from digitize.quality import (calibrate, chest_gain_doubt, lead_quality,
                               misread_limb_leads, page_doubts, relation_power,
                               unconfirmed_layout)
from digitize.reconstruct import LeadWindow, assemble, reconstruct, relabel
from digitize.strips import SCAN_LIGHT, StripGeometry, even_light

_BY_ROWS = {1: ("strip",), 3: ("3x4",), 4: ("3x4+1",), 5: ("3x4+2",),
            6: ("6x2", "3x4+3", "6x1"), 7: ("6x2+1",), 12: ("12x1",)}
_RHYTHM_DEFAULT = ("II", "V1", "V5")
log = logging.getLogger(__name__)


@dataclass
class Options:
    layout: str = "auto"
    leads: tuple[str, ...] = ("II",)  # lead name(s) of a single-lead strip
    speed: float = 25.0  # mm/s
    gain: str = "auto"  # 'auto' or mm/mV as text
    fs: float = 500.0
    batch_size: int = 16
    px_per_mm: float | None = None  # force the scale (e.g. known scanner dpi)
    read_printed_gain: bool = True  # no pulse: OCR the footer's "N mm/mV" where installed

    def key(self) -> str:
        """The options that change a record (for 'already done' checks)."""
        return (f"layout={self.layout};leads={','.join(self.leads)};speed={self.speed:g};"
                f"gain={self.gain};fs={self.fs:g};px_per_mm={self.px_per_mm or 'auto'}"
                + ("" if self.read_printed_gain else ";printed_gain=off"))


@dataclass
class PageResult:
    signal: np.ndarray  # [n, 12] mV, NaN where no lead is drawn
    layout: str
    gain: float
    geometry: PageGeometry
    windows: list  # LeadResult
    quality: dict
    warnings: list[Note] = field(default_factory=list)
    chest_gain: float | None = None  # split gain: the chest leads' (stepped pulses), else None
    rotated: int = 0  # degrees clockwise the page was turned to be read upright
    mirrored: bool = False  # then mirrored left to right
    image: np.ndarray | None = None  # the page as read, where it was turned


def windows_for(geom: PageGeometry, layout: str, opts: Options,
                gain: float | list[float] | list[tuple[float, float]],
                grid_maps: list | None = None) -> list[LeadWindow]:
    """Lead windows of a layout on the measured rows (rhythm strips named II, V1, V5 and 6x1
    rows as limb leads until the pipeline reads them otherwise). ``grid_maps``: per row, the
    paper's millimetres along it from the grid (``row_grid_maps``), or None. ``gain``: the
    page's, or per row one gain or a (limb, chest) pair."""
    k = geom.px_per_mm
    row_s = min(ROW_WIDTH_MM / opts.speed, 10.0)
    out = []
    ys = [r.y for r in geom.rows]
    rows_leads = row_leads(layout, opts.leads[:1] if layout == "strip" else _RHYTHM_DEFAULT)
    for i, (row, leads) in enumerate(zip(geom.rows, rows_leads)):
        win = row_s / len(leads)
        near = _row_spacing(ys, i, k)
        x0 = row.x_start
        mm_at = grid_maps[i] if grid_maps else None
        for c, lead in enumerate(leads):
            if mm_at is not None:
                x1 = mm_at(x0, win * opts.speed)
                kc = (x1 - x0) / (win * opts.speed)
            else:
                kc = _local_pitch(geom, row.y, 0.45 * near, x0, win * opts.speed, k)
                x1 = x0 + win * opts.speed * kc
            # each panel's own isoelectric level: follows residual tilt and perspective
            y = baseline(geom.mask, row.y, x0, x1, kc, reach_mm=5.0) if geom.mask is not None \
                else row.y
            g = gain[i] if isinstance(gain, list) else gain
            if isinstance(g, tuple):
                own = single_gain(row, g) if len(leads) == 1 else None
                g = own if own is not None else g[1] if lead in CHEST_LEADS else g[0]
            # a printout's rows can be shorter than 10 s (245 mm on one real one): past the
            # ink's end there is only grid, which must not be read as trace
            t_end = float("inf")
            if c == len(leads) - 1 and np.isfinite(row.x_end) and \
                    row.x_end < x1 - READ.ink_end_margin_mm * kc:
                t_end = c * win + (row.x_end - x0) / kc / opts.speed
            out.append(LeadWindow(lead, c * win, (c + 1) * win, g, opts.speed,
                                  StripGeometry(x0 / kc, win * opts.speed, y / kc, kc,
                                                geom.to_image), t_end))
            x0 = x1
    return out


def _row_spacing(ys: list[float], i: int, k: float) -> float:
    """Distance from row i to its nearest neighbour (20 mm for a lone row)."""
    return min([abs(ys[i] - ys[j]) for j in range(len(ys)) if j != i] or [20 * k])


def row_grid_maps(geom: PageGeometry) -> list | None:
    """For a photographed page, per row: the paper's own millimetres along it from the grid
    (``_row_grid_mm``), or None per row where the grid is not clear; None for other pages
    (a scan's whole-page pitch is more precise)."""
    if not (geom.rectified or geom.on_background):
        return None
    ys = [r.y for r in geom.rows]
    return [_row_grid_mm(geom, row, 0.45 * _row_spacing(ys, i, geom.px_per_mm), geom.px_per_mm)
            for i, row in enumerate(geom.rows)]


def _row_grid_mm(geom: PageGeometry, row, half_band: float, k: float):
    """A function (x px, mm further along the paper) → x px for one row, from the grid's local
    phase in the row's band (trace ink left out); None where no grid is clear within ±12 % of
    the page's scale or the row would run off the image at the grid's scale."""
    if geom.grey is None or geom.mask is None:
        return None
    g, m = geom.grey, geom.mask
    y0, y1 = int(max(0, row.y - half_band)), int(min(g.shape[0], row.y + half_band))
    if y1 - y0 < 5:
        return None
    dark = 255.0 - g[y0:y1].astype(np.float32)
    paper = cv2.dilate(m[y0:y1], np.ones((5, 5), np.uint8)) == 0
    count = paper.sum(axis=0)
    ok = count > 0
    if ok.mean() < 0.8:
        return None
    prof = np.where(ok, (dark * paper).sum(axis=0) / np.maximum(count, 1), 0.0)
    prof = np.interp(np.arange(len(prof)), np.flatnonzero(ok), prof[ok])
    # the page's scale may come from the rows only (no grid seen over the whole page): look for
    # this band's own grid within ±12 % (the major lines' harmonics lie further off)
    mm = None
    for period in (1.0, 5.0):  # the 1-mm lines, else the 5-mm ones (blur erases thin lines)
        pitch, strength = refine_pitch(prof, period * k, span=0.12)
        if strength >= FRAME.grid_ratio_near_rows:
            mm = grid_coordinate(prof, pitch)
            if mm is not None:
                mm = mm * period
                break
    if mm is None:
        return None
    xs = np.arange(len(mm), dtype=np.float64)
    # x_start is in page-mm·k units (pixel centre + 0.5): shift into pixel indices and back
    m0 = np.interp(row.x_start - 0.5, xs, mm)
    if not m0 + ROW_WIDTH_MM <= mm[-1] + 2 * ROW_WIDTH_MM / len(mm):
        return None  # the row would run off the image at this scale

    def at(x0: float, d_mm: float) -> float:
        return float(np.interp(np.interp(x0 - 0.5, xs, mm) + d_mm, mm, xs)) + 0.5
    return at


def _local_pitch(geom: PageGeometry, y: float, half_band: float, x0: float, width_mm: float,
                 k: float) -> float:
    """The grid pitch under one panel (a photo's residual perspective changes it across the
    page); the page's pitch where the local grid is not clear."""
    if geom.grey is None or not geom.rectified:  # flat scans: the page pitch is more precise
        return k
    g = geom.grey
    y0, y1 = int(max(0, y - half_band)), int(min(g.shape[0], y + half_band))
    xa, xb = int(max(0, x0)), int(min(g.shape[1], x0 + width_mm * k))
    if y1 - y0 < 5 or xb - xa < 30 * k:
        return k
    kc, ratio = refine_pitch(255.0 - g[y0:y1, xa:xb].mean(axis=0), k, span=0.04)
    return kc if ratio >= FRAME.grid_ratio and abs(kc / k - 1) < 0.04 else k


def _rel_residual(sig: np.ndarray, relations: list[dict]) -> tuple[float, int]:
    """Σ residual² / Σ signal² pooled over the relations, and the samples checked."""
    parts = [relation_power(sig, r) for r in relations]
    num, den, n = (sum(p[i] for p in parts) for i in range(3))
    return (num / den if den > 0 else float("nan")), n


EINTHOVEN = [{"I": 1.0, "III": 1.0, "II": -1.0}, {"aVR": 1.0, "aVL": 1.0, "aVF": 1.0}]
#: All limb leads are two signals: the augmented leads from I and II (Goldberger), and I, II,
#: III from two augmented leads — which a 6x2 page's right column (aVR, aVL, aVF) and a
#: lead-II rhythm strip can check on their own: where the columns are read at the wrong
#: times, nothing else in the right column's time is drawn to check them against (eik val
#: scan 00207: its columns read 5 s apart fitted the rest better than read simultaneous).
LIMB_RELATIONS = EINTHOVEN + [{"aVR": 1.0, "I": 0.5, "II": 0.5},
                              {"aVL": 1.0, "I": -1.0, "II": 0.5},
                              {"aVF": 1.0, "II": -1.0, "I": 0.5},
                              {"aVL": 1.0, "aVR": -1.0, "I": -1.5},
                              {"aVF": 1.0, "aVR": -1.0, "II": -1.5},
                              {"aVF": 1.0, "aVL": -1.0, "III": -1.5}]
#: Lead names printed as roman numerals: read for one another where a bar is lost or added.
ROMAN = ("I", "II", "III")
#: 6x2 panel orders (row by row, left then right) of printers other than the standard one:
#: ecg-image-kit's V1|V4, I|aVR, V2|V5, II|aVL, V3|V6, III|aVF.
KNOWN_6X2_ORDERS = (("V1", "V4", "I", "aVR", "V2", "V5", "II", "aVL", "V3", "V6", "III", "aVF"),)
LABELS_NOT_READ = Note(Code.LABELS_NOT_READ, "6x2 lead labels not read: standard order assumed "
                       "(I-aVF left, V1-V6 right)")
LABELS_NOT_READ_KNOWN = Note(Code.LABELS_NOT_READ_KNOWN,
                             "6x2 lead labels not read: a known printer's order (V1|V4, I|aVR, "
                             "...) chosen by the limb leads' relations")


@dataclass(frozen=True)
class Reading:
    """One reading of a 6x2 page's panels: where its lead order comes from, and whether
    the right column is drawn at the same time as the left one (some generators) rather
    than 5 s after it (the standard)."""
    order: str  # STANDARD, LABELS, LABELS_KNOWN or UNREAD_ORDER (below)
    simultaneous: bool = False

    @property
    def name(self) -> str:
        return self.order + (", simultaneous" if self.simultaneous else "")


#: Where a 6x2 reading's lead order comes from: the standard order; the printed labels (those
#: not read filled in by elimination); a known printer's order the labels read agree with; a
#: known printer's order tried because no label tells.
STANDARD, LABELS, LABELS_KNOWN, UNREAD_ORDER = (
    "standard", "labels", "labels, a known printer's order", "a known printer's order, labels "
    "not read")


LAYOUT_AMBIGUOUS = "layout ambiguous"
GAIN_ASSUMED = Note(Code.GAIN_ASSUMED, "no calibration pulse found: gain 10 mm/mV assumed")
#: No pulse, but the page's printed text states the gain (read by OCR where available).
GAIN_PRINTED = "no calibration pulse found: gain read from the printed text"
DARK_GRID = Note(Code.DARK_GRID, "grid lines as dark as the trace: removed to find the rows")


def gain_from_pulses(geom: PageGeometry, gain_opt: str) -> tuple[float, list[Note]]:
    heights = [r.pulse_mm for r in geom.rows if np.isfinite(r.pulse_mm) and r.pulse_mm > 2]
    measured = snap_gain(float(np.median(heights))) if heights else None
    if gain_opt == "auto":
        if measured is None:
            return 10.0, [GAIN_ASSUMED]
        return measured, []
    g = float(gain_opt)
    if measured is not None and measured != g:
        return g, [Note(Code.GAIN_FORCED,
                        f"--gain {g:g} but the calibration pulse says {measured:g} mm/mV")]
    return g, []


def _stepped(r) -> bool:
    return bool(np.isfinite(r.step_mm) and abs(np.log(r.step_mm / r.pulse_mm)) > 0.3)


def single_gain(row, pair: tuple[float, float]) -> float | None:
    """A one-lead row's (rhythm strip's) gain on a split-gain page: its own plain pulse, at
    the limb or the chest gain, says which kind of lead it is; None where it does not."""
    if row.pulse == "none" or not np.isfinite(row.pulse_mm) or _stepped(row):
        return None
    g = snap_gain(row.pulse_mm) if row.pulse_mm > 2 else None
    return g if g in pair else None


def chest_gain_from_steps(geom: PageGeometry, page_gain: float) -> float | None:
    """Split gain (chest leads at half or double the limb leads' gain, as for tall chest
    complexes): electrocardiographs then print a stepped calibration pulse — the limb gain's
    height, then the chest gain's. The chest gain when two or more rows' steps agree, and they
    are at least half of the rows that show a pulse: such a printer steps the pulse of every
    row of limb and chest leads, only a rhythm strip's is plain (two 'steps' among seven
    plain pulses were a neighbouring row's trace above a pulse, on a noisy scan)."""
    ratios = [0.5 if r.step_mm < r.pulse_mm else 2.0 for r in geom.rows if _stepped(r)]
    pulsed = sum(r.pulse != "none" and np.isfinite(r.pulse_mm) for r in geom.rows)
    for f in (0.5, 2.0):
        if ratios.count(f) >= 2 and ratios.count(f) > len(ratios) / 2 \
                and 2 * ratios.count(f) >= pulsed:
            return page_gain * f
    return None


def fit_steps(candidates: tuple[str, ...], rows: list) -> tuple[str, ...]:
    """The layouts that hold limb and chest leads in every row with a stepped pulse (a 6x2
    page, whose limb-and-chest rows print it, had been read as 6x1 at 4.6 dB); all of them
    where none does."""
    stepped = [_stepped(r) for r in rows]
    fits = tuple(c for c in candidates
                 if all(len(leads) > 1 for leads, s in zip(row_leads(c, _RHYTHM_DEFAULT), stepped)
                        if s))
    return fits or candidates


def row_gains(geom: PageGeometry, page_gain: float, gain_opt: str,
              chest: float | None = None) -> list[float] | list[tuple[float, float]]:
    """Gain per row: the page's, except where two or more rows' own pulses agree on another
    standard value (a 12x1 or 6x1 page with the chest leads at half gain draws each row's
    pulse at that row's gain). With a split gain (``chest``), per row a (limb, chest) pair
    (``single_gain`` then reads a rhythm strip's own pulse)."""
    snapped = [snap_gain(r.pulse_mm) if np.isfinite(r.pulse_mm) and r.pulse_mm > 2 else None
               for r in geom.rows]
    if gain_opt != "auto":
        return [page_gain] * len(geom.rows)
    if chest is not None:
        return [(page_gain, chest)] * len(geom.rows)
    return [g if g is not None and g != page_gain and snapped.count(g) >= 2 else page_gain
            for g in snapped]


def _identify_rhythm(sig_panels: np.ndarray, rhythm_sigs: list[np.ndarray], fs: float,
                     groups: list[tuple[str, ...] | None] | None = None,
                     printed: list[str | None] | None = None) -> tuple[str, ...]:
    """Lead of each rhythm strip: the 3x4 panel it matches best over that panel's window
    (R² of the panel as the strip, offsets removed, best within ±LAYOUT.rhythm_lag_s: shape and
    amplitude, so leads of alike shape — aVR and V1 both negative — are told apart by their
    size, and a few ms of timing error between rows do not decide). The standard lead of the
    row stays unless another panel explains ≥ 80 % of the strip's variance and clearly more
    than the standard one does. ``groups``: per strip, the leads it can be (a split-gain page
    says by its pulse's height whether a strip is a limb or a chest lead), or None."""
    lag = int(round(LAYOUT.rhythm_lag_s * fs))
    # each panel without its first and last LAYOUT.rhythm_edge_s: a separator bar or a label
    # read as trace there (a 3-mV spike at the end of II's panel, new eik val clean 00447)
    # outweighed five seconds of agreement, and the strip printed "II" was named aVF
    edge = int(round(LAYOUT.rhythm_edge_s * fs))
    sig_panels = sig_panels.copy()
    for li in range(sig_panels.shape[1]):
        ok = np.flatnonzero(np.isfinite(sig_panels[:, li]))
        if len(ok) > 4 * edge:
            sig_panels[ok[:edge], li] = np.nan
            sig_panels[ok[-edge:], li] = np.nan
    trim = int(round(LAYOUT.rhythm_trim_s * fs))
    names = []
    for j, r in enumerate(rhythm_sigs):
        scores, full = {}, {}
        group = (groups[j] if groups else None) or LEADS
        for li, lead in enumerate(LEADS):
            if lead not in group:
                continue
            p = sig_panels[:, li]
            best_c = best_full = -np.inf
            n = len(r)
            for d in range(-lag, lag + 1):  # the panel delayed by d samples against the strip
                q, s = (p[:n - d], r[d:]) if d >= 0 else (p[-d:], r[:n + d])
                ok = np.isfinite(q) & np.isfinite(s)
                if ok.sum() < fs:
                    continue
                a, b = q[ok] - q[ok].mean(), s[ok] - s[ok].mean()
                best_c = max(best_c, _trimmed_r2(a, b, trim))
                best_full = max(best_full, _trimmed_r2(a, b, 0))
            if np.isfinite(best_c):
                scores[lead], full[lead] = best_c, best_full
        default = _RHYTHM_DEFAULT[j]
        if default not in group:  # the group's best, however poor
            default = max(scores, key=scores.get, default=group[0])
        best = max(scores, key=scores.get, default=default)
        # (the trim spares the standard lead, or a panel that contradicts a misread label,
        # one lost beat — new eik val scan 00246 of set y, its "II" read "I" — but another
        # lead must explain the strip in full to replace the standard one: with the trim, a
        # badly read III panel passed 0.8 and took new eik val scan 00207's II strip of set y)
        if full.get(best, 0.0) < LAYOUT.rhythm_min_r2 or (
                scores[best] < scores.get(default, -np.inf) + LAYOUT.rhythm_margin):
            best = default
        label = printed[j] if printed else None
        if label in group and (label not in scores or scores[label] >= scores.get(
                best, -np.inf) - LAYOUT.printed_margin
                or scores[best] < LAYOUT.rhythm_min_r2):
            best = label  # the printed label, unless the panels clearly contradict it
        names.append(best)
    return tuple(names)


def _trimmed_r2(a: np.ndarray, b: np.ndarray, trim: int) -> float:
    """R² of ``a`` as ``b`` without the ``trim`` consecutive samples where they differ most
    (one beat lost in either reading — a QRS under a crease, a label read as trace — does not
    decide which panel a strip is: new eik val scan 00394 of set y, its strip's third QRS
    lost, matched lead II's panel at 0.37 and aVF's at 0.96, and was stored as aVF)."""
    err = (a - b) ** 2
    var = b * b
    if 0 < trim < len(err) // 4:
        c = np.concatenate(([0.0], np.cumsum(err)))
        w = c[trim:] - c[:-trim]
        i = int(np.argmax(w))
        keep = np.ones(len(err), bool)
        keep[i:i + trim] = False
        err, var = err[keep], var[keep]
    den = float(var.sum())
    return 1.0 - float(err.sum()) / den if den > 0 else -np.inf


def retime(results, shifts_s: list[float], fs: float):
    """The same windows placed ``shift`` s earlier (a column read as simultaneous)."""
    out = []
    for r, d in zip(results, shifts_s):
        if d == 0:
            out.append(r)
            continue
        w, m = r.window, int(round(d * fs))
        keep = r.idx - m >= 0
        out.append(replace(r, window=replace(w, t0=w.t0 - d, t1=w.t1 - d,
                                             t_ink_end=w.t_ink_end - d),
                           idx=(r.idx - m)[keep], mv=r.mv[keep]))
    return out


def window_start(w: LeadWindow) -> tuple[float, float]:
    """A window's start on the deskewed page (px): where its label is printed."""
    return w.geom.x0_mm * w.geom.px_per_mm, w.geom.centre_mm * w.geom.px_per_mm


def model_grey(bgr: np.ndarray, geom: PageGeometry) -> np.ndarray:
    """The page in grey as the trace model reads it: each pixel's brightest channel, where the
    pen keeps READ.pen_kept of its contrast with the paper that way (a red, orange or green
    grid fades to near paper while a black pen stays black: new eik val clean 00305, whose
    orange grid lost V6 under a deep S wave, 6.4 -> 12.3 dB); else the luminance (a blue or
    red pen would fade with the grid)."""
    lum = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr
    if bgr.ndim != 3 or geom.mask is None:
        return lum
    ys, xs = np.nonzero(geom.mask[::3, ::3])  # a sample of the pen's pixels
    if len(xs) < 30:
        return lum
    xs, ys = 3 * xs, 3 * ys
    pick = np.linspace(0, len(xs) - 1, min(len(xs), 4000)).astype(int)
    pts = cv2.perspectiveTransform(np.stack([xs[pick], ys[pick]], 1)[None].astype(np.float32),
                                   geom.to_image)[0]
    h, w = lum.shape
    cs = np.clip(np.round(pts[:, 0]).astype(int), 0, w - 1)
    rs = np.clip(np.round(pts[:, 1]).astype(int), 0, h - 1)
    pen, paper = bgr[rs, cs].astype(np.float32), bgr[::16, ::16].reshape(-1, 3).astype(np.float32)

    def contrast(f) -> float:  # paper (the median pixel) less the pen, per conversion
        return float(np.median(f(paper)) - np.median(f(pen)))
    kept = contrast(lambda v: v.max(axis=1)) / max(
        contrast(lambda v: v @ np.float32([0.114, 0.587, 0.299])), 1.0)
    return _brightest(bgr) if kept >= READ.pen_kept else lum


def paper_fill(grey: np.ndarray, m: np.ndarray, k: float) -> None:
    """Paint each shape of ``m`` with the paper's brightness around it (in place): the 90th
    percentile of the grey within READ.paper_around_mm. (One value for the whole page left a dark
    silhouette of a label on a shaded scan, eik val scan 00074; inpainting from the edges
    drew the trace on into the separator bars it crosses, eik val clean 00098.)"""
    n, lab, st, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    d = max(2, int(round(READ.paper_around_mm * k)))
    h, w = grey.shape
    for j in range(1, n):
        x, y, bw, bh = (int(v) for v in st[j, :4])
        ya, yb, xa, xb = max(0, y - d), min(h, y + bh + d), max(0, x - d), min(w, x + bw + d)
        box, inside = grey[ya:yb, xa:xb], lab[ya:yb, xa:xb] == j
        around = box[m[ya:yb, xa:xb] == 0]
        if around.size:
            box[inside] = int(np.percentile(around, 90))


def six_by_two_readings(geom: PageGeometry, results, fs: float, n: int):
    """Readings of a 6x2 page's panels, standard first: (``Reading``, results) for the lead order
    read from the printed labels (where it differs and is readable), each with the right
    column shifted by 5 s (standard) or simultaneous with the left one (some generators).
    Also the labels read: of the panels, and of the rhythm strips after them (one OCR call)."""
    panels = [r for r in results if (r.window.t1 - r.window.t0) <= 0.6 * n / fs]
    rest = results[len(panels):]
    orders = [(STANDARD, [r.window.lead for r in panels])]
    read_all = read_labels(geom.mask, [window_start(r.window) for r in results],
                           geom.px_per_mm) if geom.mask is not None else [None] * len(results)
    read = read_all[:len(panels)]
    # a label read twice is not read (a bar of III lost: read as I)
    sure = [lead if lead is not None and read.count(lead) == 1 else None for lead in read]
    missing = [i for i, lead in enumerate(sure) if lead is None]
    # printers' orders that every label read agrees with: the labels not read are that
    # printer's, and only such orders are read (the limb leads' relations cannot tell chest
    # leads apart, and a crowded limb panel can fit them worse than a chest panel does: eik
    # val 00200, whose V1, V2 and aVL went unread, took V1's panel for aVL)
    agreeing = [(source, list(names)) for source, names in
                [orders[0]] + [(LABELS_KNOWN, k) for k in KNOWN_6X2_ORDERS]
                if all(x is None or x == y for x, y in zip(sure, names))]
    if len(panels) == 12 and len(missing) <= LAYOUT.labels_may_miss and agreeing:
        orders = [(source if missing or source == STANDARD else LABELS, names)
                  for source, names in agreeing]
    elif len(panels) == 12 and len(missing) <= LAYOUT.labels_may_miss:
        # the leads not read, in every order: the limb leads' relations choose
        rest_leads = [lead for lead in LEADS if lead not in sure]
        for perm in itertools.permutations(rest_leads):
            names = list(sure)
            for i, lead in zip(missing, perm):
                names[i] = lead
            if names != orders[0][1]:
                orders.append((LABELS, names))
    elif len(panels) == 12:
        # too few labels read to fill in the rest (a noisy scan): an order printers use,
        # where the labels read agree with it better than with the standard one
        # roman numerals read for one another tell nothing: a bar lost in the trace or the
        # grid, or one added by a trace stroke beside the glyph (eik val scan 00305: II read
        # as I, III as II); nor does an "I" read where another lead's label is printed: a
        # trace's stroke beside the label reads so (new eik val scan 00246: V2 and V3)
        def agreement(names):
            return sum(0 if r is None or (r in ROMAN and x in ROMAN and r != x)
                       or (r == "I" and x != "I")
                       else 1 if r == x else -1 for r, x in zip(read, names))
        base = agreement(orders[0][1])
        for order in KNOWN_6X2_ORDERS:
            if list(order) != orders[0][1] and agreement(order) >= max(base + 2, 2):
                orders.append((LABELS_KNOWN, list(order)))
            elif list(order) != orders[0][1] and agreement(order) >= base:
                # no label tells (none read, or as many for either): the limb leads' relations
                # decide, by a clear margin (``LAYOUT.unread_margin``)
                orders.append((UNREAD_ORDER, list(order)))
    out = []
    for source, leads in orders:
        named = relabel(panels, leads) + rest
        out.append((Reading(source), named))
        shifted = retime(named, [r.window.t0 if i < len(panels) else 0.0
                                 for i, r in enumerate(named)], fs)
        out.append((Reading(source, simultaneous=True), shifted))
    return out, read, read_all[len(panels):]


def vertical_stretch(geom: PageGeometry) -> float | None:
    """Factor for a flattened photo's vertical axis that makes its 1-mm grid square (a wrong
    sheet shape scales every amplitude); None where the pitch is already square to
    READ.max_aspect_error or the horizontal lines do not clearly repeat."""
    if geom.grey is None:
        return None
    k = geom.px_per_mm
    py, ratio = refine_pitch(255.0 - geom.grey.mean(axis=1), k, span=0.12)
    if ratio < FRAME.grid_ratio or abs(py / k - 1) <= READ.max_aspect_error:
        return None
    return float(k / py)


def evenly_lit(bgr: np.ndarray) -> np.ndarray:
    """The page (each channel) divided by its local paper level (``strips.even_light``), at a
    scale from the image's size (``page.size_scale``)."""
    k = size_scale(*bgr.shape[:2])
    if bgr.ndim == 2:
        return even_light(bgr, k)
    return np.stack([even_light(np.ascontiguousarray(bgr[..., c]), k) for c in range(3)],
                    axis=2)


def even_pitch(geom: PageGeometry) -> bool:
    """Whether the rows are evenly pitched, as a printout's are: no gap between neighbours
    under ``LAYOUT.min_pitch_share`` of their median gap (fewer than three rows: yes)."""
    if len(geom.rows) < 3:
        return True
    gaps = np.diff(sorted(r.y for r in geom.rows))
    return bool(gaps.min() >= LAYOUT.min_pitch_share * np.median(gaps))


def _better(geom: PageGeometry | None, again, fits) -> PageGeometry | None:
    """``again()``'s reading of the page where ``fits`` it, else ``geom``."""
    try:
        other = again()
    except PageError:
        return geom
    return other if fits(other) else geom


def convert_page(bgr: np.ndarray, engine, opts: Options) -> PageResult:
    """One page → its 12-lead record and quality; ``NotEcg`` where the page shows no ECG
    evidence (``digitize.evidence``), ``PageError`` where an ECG page cannot be read. A page
    that reads wrong as it lies is also read turned (``digitize.orientation``)."""
    def attempt(img):
        try:
            return _convert_page(img, engine, opts)
        except PageError as exc:
            return exc

    best, deg = attempt(bgr), 0
    on_side = tall(bgr)  # a strip lying on its side: a turned one-row read is credible
    if on_side or sideways_suspect(best, opts.fs):
        first = best
        for d in (90, 180, 270):
            alt = attempt(rotated(bgr, d))
            over = d == 180 and one_row(first) and strip_turned_over(alt, first, opts.fs)
            if (over or turn_credible(alt) or (on_side and d != 180 and one_row(alt))) and \
                    orientation_score(alt) > max(orientation_score(best), orientation_score(
                        first) + (0.0 if over else ORIENT.sideways_margin)):
                best, deg = alt, d
    elif upside_down_suspect(best):
        d = (deg + 180) % 360
        alt = attempt(rotated(bgr, d))
        if (turn_credible(alt) and better_turned(alt, best)) or \
                strip_turned_over(alt, best, opts.fs):
            best, deg = alt, d
    mirrored = False
    if mirror_suspect(best, opts.fs):
        alt = attempt(oriented(bgr, deg, mirrored=True))
        # mirrored, a one-row read reads the same ink as one row: it need not show pulses
        # or limb leads of its own (the example strip has neither)
        if (turn_credible(alt) or (one_row(best) and one_row(alt))) \
                and better_mirrored(alt, best, opts.fs):
            best, mirrored = alt, True
        else:  # neither turned nor mirrored alone: flipped top to bottom (both)?
            alt = attempt(oriented(bgr, (deg + 180) % 360, mirrored=True))
            if turned_over_better(alt, best, opts.fs):
                best, deg, mirrored = alt, (deg + 180) % 360, True
    if isinstance(best, PageError):  # in no orientation: an ECG that failed, or no ECG
        ev = failure_evidence(bgr, best.pulses, best.rows)
        if not ev["ecg"]:
            raise NotEcg(describe(ev) + f" ({best})", ev)
        raise best
    res = best
    ev = res.quality["evidence"]
    if not ev["ecg"] and ev["relations"] is None:  # a strip's steady beats
        ev.update(beats_cue(res.signal, res.quality, opts.fs))
    if not ev["ecg"]:
        raise NotEcg(describe(ev), ev)
    if deg:
        res.rotated, res.image = deg, rotated(bgr, deg)
        res.warnings.append(Note(Code.TURNED,
                                 f"page turned {deg} degrees clockwise to read it upright"))
    if mirrored:
        res.mirrored, res.image = True, oriented(bgr, deg, mirrored=True)
        res.warnings.append(Note(Code.MIRRORED,
                                 "page mirrored left to right to read it (as it lay, its beats "
                                 "ran backwards or its limb leads did not check out)"))
    return res


def _convert_page(bgr: np.ndarray, engine, opts: Options) -> PageResult:
    """One page as it lies: its geometry, layout candidates and gains, the model's reading of
    each candidate's windows, the best-fitting reading, then its quality."""
    geom = read_geometry(bgr, opts)
    grid_maps = row_grid_maps(geom)
    if geom.on_background and not geom.rectified and not any(grid_maps):
        raise PageError("photographed page: neither the paper's outline nor its grid could be "
                        "measured, so its perspective cannot be undone (timing would be a guess)",
                        pulses=sum(r.pulse != "none" for r in geom.rows), rows=len(geom.rows))
    candidates = layout_candidates(geom, opts)
    gains = read_gains(geom, opts)
    if gains.stepped:
        candidates = fit_steps(candidates, geom.rows)
    grey = model_grey(bgr, geom)
    # what the model reads: creases out (a noisy scan levelled in two ways, both read)
    greys = tuple(even_light(grey, geom.px_per_mm, *how) for how in SCAN_LIGHT) \
        if has(geom.warnings, Code.DEGRIDDED) or geom.noisy \
        else (even_light(grey, geom.px_per_mm),)
    page = _Page(geom=geom, opts=opts, engine=engine, gains=gains, grid_maps=grid_maps,
                 greys=greys, n=int(round(min(ROW_WIDTH_MM / opts.speed, 10.0) * opts.fs)))
    choice = select_layout(page, candidates)
    warnings = list(geom.warnings) + list(gains.notes) + list(choice.notes)
    sig, results, gain, chest = choice.sig, choice.results, gains.page, gains.chest
    printed = _printed_gain(gains)
    if printed is not None:  # millivolts scale with 1/gain; the choices above do not depend on it
        gain, chest = printed
        results = [_at_gain(r, chest if chest is not None and r.window.lead in CHEST_LEADS
                            else gain) for r in results]
        sig = assemble(results, page.n)
        warnings[[w.code for w in warnings].index(Code.GAIN_ASSUMED)] = Note(
            Code.GAIN_PRINTED, f"{GAIN_PRINTED}: {gain:g}"
            + ("" if chest is None else f", chest {chest:g}") + " mm/mV")
    quality = page_quality(page, bgr, sig, results, choice, warnings, chest)
    return PageResult(sig, choice.layout, gain, geom, results, quality, warnings, chest)


def read_geometry(bgr: np.ndarray, opts: Options) -> PageGeometry:
    """The page's geometry (``digitize.page.analyse``), read again in other ways where the
    first reading's rows fit no layout: a photographed sheet flattened first; a dark or
    thin grid opened or filtered away; a noisy or shaded page evened out."""
    want = _BY_ROWS if opts.layout == "auto" else \
        [n for n, v in _BY_ROWS.items() if opts.layout in v]

    def fits(g: PageGeometry) -> bool:
        return len(g.rows) in want

    flat = page_homography(bgr)  # a photo: the page on a background, in perspective
    if flat is None:
        return _plain_geometry(bgr, opts, fits)
    geom = _flattened_geometry(bgr, opts, flat, fits)
    if geom.scale_source != "grid":
        # no grid measured on the sheet cut out and flattened (its grid's lines bent or
        # drowned in noise): the page as it lies is read where its rows fit a layout and it
        # measures the grid — a scanned sheet lying tilted on the scanner's black (new eik val
        # scan 00305 of set z: flattened, its scale taken from the rows' length, 12 % off)
        try:
            plain = _plain_geometry(bgr, opts, fits)
        except PageError:
            return geom
        if fits(plain) and plain.scale_source == "grid":
            return plain
    return geom


def _flattened_geometry(bgr: np.ndarray, opts: Options, flat, fits) -> PageGeometry:
    """A photographed sheet's geometry, read on the sheet warped flat."""
    hom, size = flat
    # the sheet is cut a little inside its outline: that much paper lies past the flat
    # image's edges (a strip's trace runs off them), in flat px (the local scale at the
    # image's centre, from 100 px across it)
    cx, cy = bgr.shape[1] / 2, bgr.shape[0] / 2
    fc = cv2.perspectiveTransform(np.array([[[cx - 50, cy]], [[cx + 50, cy]]]), hom)
    border = outline_inset(bgr.shape) * float(np.linalg.norm(fc[1] - fc[0])) / 100.0

    def flatten(hom, size, wide=False):
        return analyse(cv2.warpPerspective(bgr, hom, size, flags=cv2.INTER_LINEAR,
                                           borderMode=cv2.BORDER_REPLICATE),
                       opts.px_per_mm, flattened=True, border=border, wide_lines=wide)

    geom = flatten(hom, size)
    wide = False
    if not fits(geom):  # a dark grid's remnants read as rows?
        alt = _better(geom, lambda: flatten(hom, size, wide=True), fits)
        wide, geom = alt is not geom, alt
    stretch = vertical_stretch(geom)
    if stretch is not None:  # the sheet's shape was misjudged: make its pixels square
        hom = np.diag([1.0, stretch, 1.0]) @ hom
        size = (size[0], int(round(size[1] * stretch)))
        geom = flatten(hom, size, wide=wide)
    return replace(geom, deskew=geom.deskew @ hom,  # image → flat page → deskewed
                   rectified=True)


def _plain_geometry(bgr: np.ndarray, opts: Options, fits) -> PageGeometry:
    """A scanned (or rendered) page's geometry, with its retries."""
    def gridded(g: PageGeometry) -> bool:
        return fits(g) and g.scale_source == "grid"

    def anchored(g: PageGeometry) -> bool:
        # the grid's scale and most rows' pulses (rows found without their pulses are timed
        # from the pulse's ink: worse than nothing)
        return fits(g) and g.scale_source == "grid" \
            and sum(r.pulse != "none" for r in g.rows) >= len(g.rows) / 2

    def opened():  # a grid as dark as the trace but thinner than the pen, opened away
        g = analyse(bgr, opts.px_per_mm, thin_grid=True)
        return replace(g, warnings=g.warnings + (DARK_GRID,))

    try:
        geom = analyse(bgr, opts.px_per_mm)
    except PageError as exc:  # such a grid can hide the rows altogether
        geom = _better(None, opened, gridded)
        if geom is None:
            raise exc
    noisy = geom.mask is not None and float(geom.mask.mean()) > READ.noisy_ink
    memo: dict = {}

    def filtered(lit: bool):  # the page with its grid filtered out (evenly lit first)
        if lit not in memo:
            try:
                # (the segmentation net's rows on noisy scans only, where they were measured)
                memo[lit] = analyse(evenly_lit(bgr) if lit else bgr, opts.px_per_mm,
                                    degrid=True, net=noisy)
            except PageError as exc:
                memo[lit] = exc
        if isinstance(memo[lit], PageError):
            raise memo[lit]
        return memo[lit]
    if fits(geom) and not has(geom.warnings, Code.DARK_GRID) and \
            not all(r.pulse != "none" for r in geom.rows) and geom.thin_grid:
        # ... or add rows of its own (a 6x1 page read as 12 rows; rows that each show a
        # calibration pulse are the page's own)
        other = _better(geom, opened, gridded)
        if len(other.rows) != len(geom.rows):
            geom = other
    misfit = not fits(geom)
    if misfit:  # a dark grid's remnants read as rows?
        geom = _better(geom, lambda: analyse(bgr, opts.px_per_mm, wide_lines=True), fits)
    if not fits(geom):
        geom = _better(geom, opened, gridded)
    if not fits(geom):  # a grid as dark as the trace read as rows?
        dark = _better(geom, lambda: analyse(bgr, opts.px_per_mm, dark_grid=True), anchored)
        if dark is not geom:
            geom = replace(dark, warnings=dark.warnings + (DARK_GRID,))
    if noisy and fits(geom) and not even_pitch(geom):
        # stains and creases read as rows among the traces (new eik val scan 00305: 12
        # "rows" 30-150 px apart, read as 12x1 at -5 dB): the page with its grid filtered
        # out is read where its rows fit and are evenly pitched, as a printout's are
        geom = _better(geom, lambda: filtered(False), lambda g: fits(g) and even_pitch(g))
    if not fits(geom) or (noisy and (not anchored(geom) or len(geom.rows) == 1)):
        # ink everywhere (noise, shadows, a grid in them) and rows that fit no layout or
        # show no pulses, or one row (a band of noise across the page): the page with its
        # grid filtered out is read where its rows fit, no row lost between others
        geom = _better(geom, lambda: filtered(False), lambda g: fits(g) and regular_pitch(g))
    if noisy and not anchored(geom):
        # dark blotches (a crumpled sheet's shading, eik val scan 00265) read as ink rows:
        # the page brought to one paper brightness first, kept where it reads anchored
        geom = _better(geom, lambda: filtered(True), anchored)
    elif noisy and not all(r.pulse != "none" for r in geom.rows):
        # ... or hiding a whole row, pulse and all (new eik val scan 00328: 3 of 4 rows found,
        # 2 pulsed): the evenly lit page's reading is kept where every one of its rows shows
        # its pulse and it finds more rows, or as many where the first reading pulses at
        # most half of them (new eik val scan 00471). Where it only finds more pulses on the
        # same, mostly pulsed rows, its baselines and starts were no better (4 val pages
        # worse, 1 better).
        # Nor where the first reading's rows stop short: a quarter more trace along the same
        # number of rows, all pulsed, is kept (new eik val scan 00265, its grid filtered out at
        # its true pitch while a 2nd-harmonic pitch rule was tried: dark blotches hid half of
        # two rows; with the shipped pitch rule no val page reaches this, it guards pages read
        # at their true pitch under such blotches)
        even = _better(None, lambda: filtered(True), anchored)
        pulsed = sum(r.pulse != "none" for r in geom.rows)
        if even is not None and all(r.pulse != "none" for r in even.rows) and (
                len(even.rows) > len(geom.rows) or
                len(even.rows) == len(geom.rows) and (
                    2 * pulsed <= len(geom.rows) or
                    _row_extent(even) > READ.longer_rows * _row_extent(geom))):
            geom = even
    unpulsed = not any(r.pulse != "none" for r in geom.rows)
    filtered_pick = has(geom.warnings, Code.DEGRIDDED)
    if (not filtered_pick and (noisy or (
            misfit and not all(r.pulse != "none" for r in geom.rows)))) or (
            filtered_pick and unpulsed):
        # still read as it lies, its mask mostly noise (new eik val scans 00317, 00337: 3
        # "rows" of a 3x4+1 / 6x2+1 page; 00408: 7 of a 3x4+1 page, shadows read as rows;
        # 00305: a shadow read as the trace of a row's second half), or its first rows fitting
        # no layout and the rows found at last not all pulsed (00305 again: 6 of 7 rows, a dark
        # grid opened away, one gap twice the others): the filtered page's reading, as it is
        # or evenly lit, that fits and is evenly pitched is taken where its rows are as
        # regular — the one with regular rows and more pulses of the two. A filtered reading
        # without a single pulse gives way to the other one where that is as regular and
        # shows pulses (new eik val scan 00246: three of seven rows pulsed evenly lit, none
        # as it is; read without pulses, nor labels, in the wrong 6x2 order at -0.9 dB)
        def key(g: PageGeometry) -> tuple[bool, bool, int]:
            return fits(g), regular_pitch(g), sum(r.pulse != "none" for r in g.rows)

        alts = [g for g in (_better(None, lambda: filtered(lit), fits) for lit in (False, True))
                if g is not None and even_pitch(g)]
        best = max(alts, key=key, default=None)
        # (a page whose grid was found as dark as the trace and taken out is not noise: there
        # the filtered reading must do better — own binarised renders with a black or pink
        # grid, read right with their grid's lines opened away)
        loose = noisy and not filtered_pick and not has(geom.warnings, Code.DARK_GRID)
        # (where both fit and are as regular, the page as it lies where every row of it
        # shows its pulse: own val 00447, a dense clean 12x1 page, read with 12 pulses as it
        # lies and none filtered)
        if best is not None and (
                key(best)[:2] > key(geom)[:2] or key(best)[:2] == key(geom)[:2]
                and key(geom)[2] < len(geom.rows) if loose else key(best) > key(geom)):
            geom = best
        elif loose and not regular_pitch(geom) and unpulsed:
            # no reading tells rows from the noise (new eik val scan 00357 of the extra set:
            # 12 unevenly pitched bands of a 7-row page, none pulsed, read as 12x1 at -10 dB)
            raise PageError(f"noisy scan: its {len(geom.rows)} ink bands are unevenly pitched "
                            "and show no calibration pulse, with or without its grid filtered "
                            "out: no trace rows could be told from the noise",
                            pulses=0, rows=len(geom.rows))
    return replace(geom, noisy=noisy)


def _row_extent(geom: PageGeometry) -> float:
    """The total length (px) of a reading's trace rows."""
    return float(sum(r.x_right - r.x_left for r in geom.rows))


def regular_pitch(geom: PageGeometry) -> bool:
    """Whether no gap between neighbouring rows is under ``LAYOUT.min_pitch_share`` or over
    ``LAYOUT.max_pitch_share`` of their median gap (no row lost or added between others)."""
    if len(geom.rows) < 3:
        return True
    gaps = np.diff(sorted(r.y for r in geom.rows))
    # (of two gaps the median is their mean, which one lost row between two others hides:
    # there the larger against the smaller; eik val scan 00265, rows 289 and 544 px apart)
    ref = gaps.min() if len(gaps) == 2 else np.median(gaps)
    return bool(even_pitch(geom) and gaps.max() <= LAYOUT.max_pitch_share * ref)


def layout_candidates(geom: PageGeometry, opts: Options) -> tuple[str, ...]:
    """The layouts the page's rows can be (``--layout``'s alone where given)."""
    n_rows = len(geom.rows)
    if opts.layout == "auto":
        candidates = _BY_ROWS.get(n_rows)
        if candidates is None:
            raise PageError(f"no supported layout has {n_rows} trace rows",
                            pulses=sum(r.pulse != "none" for r in geom.rows), rows=n_rows)
        return candidates
    if opts.layout not in LAYOUTS:
        raise PageError(f"unsupported layout {opts.layout!r}")
    want = {v: k for k, vs in _BY_ROWS.items() for v in vs}[opts.layout]
    if n_rows != want:
        raise PageError(f"--layout {opts.layout} needs {want} trace rows, found {n_rows}")
    return (opts.layout,)


@dataclass(frozen=True)
class Gains:
    """The page's gains (mm/mV): ``page`` (the limb leads'), ``chest`` where stepped pulses
    split it (else None), each row's, whether pulses were stepped, what was noted, and the
    printed gain's OCR where no pulse gives it (running while the model reads)."""
    page: float
    chest: float | None
    rows: tuple
    stepped: bool
    notes: tuple[Note, ...]
    printed: object = None  # a Future of ``printed_gain``, or None


def read_gains(geom: PageGeometry, opts: Options) -> Gains:
    gain, notes = gain_from_pulses(geom, opts.gain)
    notes = list(notes)
    ocr = None  # no pulse: the printed gain, read while the model runs (which needs no gain)
    if opts.read_printed_gain and has(notes, Code.GAIN_ASSUMED) and geom.grey is not None:
        ocr = _ocr_pool().submit(printed_gain, geom.grey, [r.y for r in geom.rows],
                                 geom.px_per_mm)
    chest = chest_gain_from_steps(geom, gain)
    stepped = chest is not None
    if chest is not None and opts.gain != "auto":
        notes.append(Note(Code.GAIN_FORCED,
                          f"--gain {opts.gain} but stepped calibration pulses say the chest "
                          f"leads are at {chest:g} mm/mV"))
        chest = None
    elif chest is not None:
        notes.append(Note(Code.SPLIT_GAIN,
                          f"split gain (stepped calibration pulses): limb {gain:g}, "
                          f"chest {chest:g} mm/mV"))
    rows = row_gains(geom, gain, opts.gain, chest)
    if chest is None and len(set(rows)) > 1:
        notes.append(Note(Code.ROW_GAINS, "rows at different gains (their pulses): "
                          + ", ".join(f"{g:g}" for g in rows) + " mm/mV"))
    return Gains(gain, chest, tuple(rows), stepped, tuple(notes), ocr)


def _printed_gain(gains: Gains):
    """(gain, chest gain) printed on the page, where its OCR ran and read one, else None."""
    if gains.printed is None:
        return None
    try:
        return gains.printed.result()
    except Exception as exc:  # noqa: BLE001 - the OCR is a hint: losing it loses no page
        log.debug("printed gain not read: %s", exc)
        return None


@dataclass(frozen=True)
class _Page:
    """What every layout hypothesis reads from: the page's geometry and gains, the image the
    model reads, and the samples of a row (``n``)."""
    geom: PageGeometry
    opts: Options
    engine: object
    gains: Gains
    grid_maps: list | None
    greys: tuple  # the page as the model reads it, once or levelled in more ways (averaged)
    n: int


def pulse_mask(geom: PageGeometry, pen: float) -> tuple[np.ndarray, np.ndarray]:
    """uint8 masks (deskewed) of the calibration pulses found — the pulse up to its timing
    stroke and READ.pulse_mm about it — and of a pen stroke leading into the trace in its
    place. A trace that starts at the pulse's falling stroke (as ecg-image-kit draws it) had
    its first columns read up that stroke: the pulse's height, a 1 mV spike at every row's
    start (new eik val clean 00305 V1: -1.7 dB). Taken out, the trace started abruptly and
    its first samples were read off it (eik val clean 00265, its rhythm strip's start at
    -0.75 mV): a level stroke at the trace's first height takes the pulse's place."""
    out, lead = np.zeros_like(geom.mask), np.zeros_like(geom.mask)
    k, (h, w) = geom.px_per_mm, geom.mask.shape
    for r in geom.rows:
        if r.pulse not in ("left", "right") or not np.isfinite(r.x_stroke) \
                or not np.isfinite(r.pulse_mm):
            continue
        # (not where the row was timed elsewhere: its trace may start before that stroke)
        if r.pulse == "left":
            if not r.x_stroke <= r.x_start + pen:
                continue
            xa, xb = r.x_left - pen, r.x_stroke + pen / 2
        else:
            if not r.x_stroke >= r.x_end - pen:
                continue
            xa, xb = r.x_stroke - pen / 2, r.x_right + pen
        ya = r.y - (r.pulse_mm + READ.pulse_mm) * k
        yb = r.y + READ.pulse_mm * k
        xa, xb = max(0, int(np.floor(xa))), min(w, int(np.ceil(xb)) + 1)
        ya, yb = max(0, int(ya)), min(h, int(np.ceil(yb)) + 1)
        if xb <= xa or yb <= ya:
            continue
        box = geom.mask[ya:yb, xa:xb] > 0
        # the timing stroke itself only where no trace runs on from it at that height (a QRS
        # at the panel's first sample rises beside it: new eik val scan 00113, I and II)
        sa, sb = int(np.floor(r.x_stroke - pen)), int(np.ceil(r.x_stroke + pen / 2)) + 1
        d = max(2, int(round(READ.pulse_beside_mm * k)))
        beside = geom.mask[ya:yb, sb:sb + d] if r.pulse == "left" else \
            geom.mask[ya:yb, max(0, sa - d):sa]
        on = beside.any(axis=1) if beside.size else np.zeros(yb - ya, bool)
        cols = np.arange(xa, xb)
        stroke = (cols >= sa) & (cols < sb)
        box[np.ix_(on, stroke)] = False
        out[ya:yb, xa:xb] = box
        rows = np.flatnonzero(on)
        if len(rows) and rows[-1] - rows[0] + 1 <= max(3.0, 2 * pen) \
                and len(rows) == rows[-1] - rows[0] + 1:
            # the trace leaves the stroke level, at one height (not a QRS rising or falling
            # beside it, nor a scan's specks): the stroke leads in at that height
            y = ya + int(round((rows[0] + rows[-1]) / 2))
            t = max(1, int(rows[-1] - rows[0] + 1))
            x0, x1 = (xa, sb) if r.pulse == "left" else (sa, xb - 1)
            cv2.line(lead, (x0, y), (x1, y), 1, t)
    return out, lead


def pen_px(geom: PageGeometry) -> float:
    """The pen's width (px of the deskewed page): the median over the rows."""
    return float(np.median([trace_width(geom.mask, r, geom.px_per_mm) for r in geom.rows]))


def model_input(page: _Page, wins: list[LeadWindow], layout: str) -> list[np.ndarray]:
    """The page without the separator bars, calibration pulses and lead labels beside the
    windows' starts (each was read as trace), a pen stroke drawn on through the bars and in
    the pulses' place: one image per way the page was levelled (``_Page.greys``)."""
    geom, greys, n, fs = page.geom, page.greys, page.n, page.opts.fs
    if geom.mask is None:
        return list(greys)
    starts = [window_start(w) for w in wins]
    # the label each panel should carry: a 3x4 page's panels are in the standard order;
    # 6x2 orders and the rhythm strips' leads vary (any lead name)
    names = [w.lead if layout.startswith("3x4") and w.t1 - w.t0 <= 0.6 * n / fs else None
             for w in wins]
    # the separator bars at the panels' starts, then the labels (one may touch a bar)
    pen = pen_px(geom)
    lines = [min((r.y for r in geom.rows), key=lambda y: abs(y - y0)) for _, y0 in starts]
    seps = separator_mask(geom.mask, starts, geom.px_per_mm, pen, lines)
    # and the calibration pulses
    pulses, lead_in = pulse_mask(geom, pen)
    taken = seps | pulses
    boxes: dict = {}
    rest = geom.mask & ~taken if taken.any() else geom.mask
    gm = taken | glyph_mask(rest, starts, geom.px_per_mm, names, boxes)
    unread, lead_edge = unread_labels(rest, starts, geom.px_per_mm, boxes, lines, names)
    gm |= unread
    lead_in |= lead_edge
    if not gm.any():
        return list(greys)
    size = (greys[0].shape[1], greys[0].shape[0])
    m = cv2.warpPerspective(gm, geom.to_image, size, flags=cv2.INTER_NEAREST)
    m = cv2.dilate(m, np.ones((3, 3), np.uint8))
    if seps.any():  # the trace drawn on through the separators taken out
        lead_in |= separator_bridges(geom.mask, seps, starts, geom.px_per_mm, pen)
    pen_in = cv2.warpPerspective(lead_in, geom.to_image, size, flags=cv2.INTER_NEAREST) \
        if lead_in.any() else None
    ink_at = cv2.warpPerspective(geom.mask, geom.to_image, size,
                                 flags=cv2.INTER_NEAREST) > 0 if pen_in is not None else None
    outs = []
    for grey in greys:
        out = grey.copy()
        paper_fill(out, m, geom.px_per_mm)
        if pen_in is not None:
            out[pen_in > 0] = int(np.percentile(grey[ink_at], 10))
        outs.append(out)
    return outs


@dataclass(frozen=True)
class Hypothesis:
    """One reading of the page: its signal, the model's windows, how each rhythm strip's
    lead was chosen, and what the reading noted (a 6x2 page's lead order)."""
    sig: np.ndarray
    results: list
    how: list
    notes: tuple[Note, ...] = ()


def _six_by_two(page: _Page, results):
    """A 6x2 page's best reading of lead order and column timing: (results, notes, the
    rhythm strips' printed labels where read)."""
    n, fs = page.n, page.opts.fs
    readings, read, rhythm_read = six_by_two_readings(page.geom, results, fs, n)
    scored = []
    for reading, res in readings:
        r, checked = _rel_residual(assemble(res, n), LIMB_RELATIONS)
        scored.append((r if np.isfinite(r) else 1.0, -checked, reading, res))
    best6 = scored[0]
    for cand in scored[1:]:
        if cand[2].order == UNREAD_ORDER and best6[2].order != UNREAD_ORDER:
            # by a clear margin, well explained, and checked on nearly as many samples
            # (own val 00873, a 6x1 page, read so at 0.20 on a quarter of the samples)
            if cand[0] < min(best6[0] - LAYOUT.unread_margin, LAYOUT.unread_order_fit) \
                    and -cand[1] >= LAYOUT.unread_checked_share * -best6[1]:
                best6 = cand
        elif cand[0] < best6[0] - LAYOUT.six_by_two_margin or (
                cand[0] < best6[0] + LAYOUT.six_by_two_margin and cand[1] < best6[1]):
            best6 = cand
    notes = [Note(Code.SIX_BY_TWO_READING, f"6x2 read as: {best6[2].name}")]
    if best6[2].order == UNREAD_ORDER:
        notes.append(LABELS_NOT_READ_KNOWN)
    elif best6[2].order == STANDARD and any(lead is None for lead in read):
        notes.append(LABELS_NOT_READ)
    return best6[3], tuple(notes), rhythm_read


def hypotheses(page: _Page, layout: str):
    """``Hypothesis`` per reading of the rows in ``layout``; lead names that only relabel the
    same windows (6x1 limb/chest, the rhythm strips' leads) reuse the model's output. For a
    layout with rhythm strips, the first is the layout's usual leads for them."""
    geom, opts, n, gains = page.geom, page.opts, page.n, page.gains
    wins = windows_for(geom, layout, opts, list(gains.rows), page.grid_maps)
    pen_mm = pen_px(geom) / geom.px_per_mm if geom.mask is not None and geom.rows else None
    sig, results = reconstruct(model_input(page, wins, layout), wins, page.engine, opts.fs, n,
                               opts.batch_size, trim_conf=READ.trim_conf, pen_mm=pen_mm)
    rhythm_read, notes = None, ()  # the rhythm strips' printed labels, where already read
    if layout.startswith("6x2"):  # printers differ in lead order and column timing
        results, notes, rhythm_read = _six_by_two(page, results)
        sig = assemble(results, n)
    k = sum((r.window.t1 - r.window.t0) > 0.6 * n / opts.fs for r in results)
    yield Hypothesis(sig, results, ["layout's usual lead"] * k, notes)
    if layout == "6x1":
        as_chest = relabel(results, list(LEADS[6:]))
        yield Hypothesis(assemble(as_chest, n), as_chest, [], notes)
    elif "+" in layout:
        rows_sig = _rhythm_signals(results, opts.fs, n)
        groups = None
        if gains.chest is not None:  # a rhythm row's plain pulse at the limb or the chest gain
            own = [single_gain(r, (gains.page, gains.chest)) for r in geom.rows[-len(rows_sig):]]
            groups = [None if g is None else LEADS[:6] if g == gains.page else CHEST_LEADS
                      for g in own]
        # a strip's printed label, where it can be read, names it (the matching can take
        # a limb lead of alike shape for it)
        printed_names = rhythm_read
        if printed_names is None and geom.mask is not None:
            printed_names = read_labels(
                geom.mask, [window_start(r.window) for r in results[-len(rows_sig):]],
                geom.px_per_mm)
        panels = _panels_only(results, opts.fs, n)
        matched = _identify_rhythm(panels, rows_sig, opts.fs, groups)
        printed_as = _identify_rhythm(panels, rows_sig, opts.fs, groups, printed_names)
        k = len(rows_sig)  # the rhythm strips are the last windows
        # the identified rhythm leads replace the default guess; a printed label read
        # otherwise (a bar of "II" lost reads "I") competes with them by the limb leads'
        # relations (a strip named for a lead it is not overwrites that lead)
        for rhythm in dict.fromkeys((matched, printed_as)):
            named = relabel(results, [r.window.lead for r in results[:-k]] + list(rhythm))
            how = [" and ".join(x for x, ok in (
                ("printed label", printed_names is not None and printed_names[i] == lead),
                ("best-matching panel", matched[i] == lead)) if ok) or "layout's usual lead"
                for i, lead in enumerate(rhythm)]
            yield Hypothesis(assemble(named, n), named, how, notes)


@dataclass(frozen=True)
class LayoutChoice:
    """The reading kept: its layout, signal and windows, how its rhythm strips were named,
    its fit against the other layouts' (``layout_fit``) and what it noted."""
    layout: str
    sig: np.ndarray
    results: list
    how: list
    layout_fit: dict
    notes: tuple[Note, ...]


def select_layout(page: _Page, candidates: tuple[str, ...]) -> LayoutChoice:
    """The hypothesis whose leads best obey Einthoven's relations, over every candidate
    layout; where another layout fits about as well and none clearly, that is noted."""
    best = None
    per_layout: dict[str, float] = {}  # each layout's best fit (limb-lead residual)
    for layout in candidates:
        found = list(hypotheses(page, layout))
        if "+" in layout:
            found = found[1:]  # the identified rhythm leads replace the default guess
        for hyp in found:
            res, checked = _rel_residual(hyp.sig, EINTHOVEN)
            # a hypothesis that cannot be checked (6x1 chest) wins only when all others are poor
            score = res if np.isfinite(res) else LAYOUT.unchecked_fit
            per_layout[layout] = min(per_layout.get(layout, np.inf), score)
            if best is None or score < best[0] - 1e-9 or (abs(score - best[0]) < 0.02
                                                         and checked > best[3]):
                best = (score, layout, hyp, checked)
    fit, layout, hyp, checked = best
    rivals = {k: v for k, v in per_layout.items() if k != layout}
    layout_fit = dict(layout=layout, residual=round(float(fit), 4), checked=bool(checked > 0),
                      others={k: round(float(v), 4) for k, v in rivals.items()})
    notes = []
    close = [k for k, v in rivals.items() if v < fit + LAYOUT.margin]
    if close and fit > LAYOUT.clear:
        # rows that fit more than one layout about as well, none clearly: a doubt, not a
        # silent pick (where readings explain the limb leads all but exactly — a 6x1 limb page
        # read as 6x2 names the same ink — the fit cannot tell and is no doubt)
        notes.append(Note(Code.LAYOUT_AMBIGUOUS,
                          f"{LAYOUT_AMBIGUOUS}: {', '.join(close)} fits about as well as "
                          f"{layout} (limb-lead residual "
                          f"{min(rivals[k] for k in close):.2f} vs {fit:.2f})"))
    return LayoutChoice(layout, hyp.sig, hyp.results, hyp.how, layout_fit,
                        tuple(notes) + hyp.notes)


def page_quality(page: _Page, bgr: np.ndarray, sig: np.ndarray, results, choice: LayoutChoice,
                 warnings: list[Note], chest: float | None) -> dict:
    """The record's quality: each lead's own, raised by the page's doubts, then weighed by
    the status model (``digitize.quality``); with the page's heart rate, ECG evidence,
    layout fit and rhythm strips' leads."""
    geom, opts, n = page.geom, page.opts, page.n
    quality = lead_quality(sig, results, opts.fs, page.engine.spec)
    # page-level doubts make every lead at least 'warn': a lead cannot be trusted more than the
    # page geometry it was read with
    # (hard: a gain the user forced, or read from the text rather than a pulse; a grid as dark
    # as the trace. The others are weighed by the status model, ``calibrate``)
    hard = [w.text for w in warnings if w.code in (Code.DARK_GRID, Code.GAIN_FORCED,
                                                    Code.GAIN_PRINTED, Code.LAYOUT_AMBIGUOUS)]
    doubts = [w.text for w in warnings if w.code == Code.GAIN_ASSUMED]
    if geom.scale_source == "rows":
        doubts.append("scale from the row length (grid not measured)")
    if geom.rectified:
        doubts.append("photographed page: perspective corrected")
    elif geom.on_background:
        doubts.append("photographed page: paper outline not found, perspective not corrected")
    timed = "pulse" if sum(r.pulse != "none" for r in geom.rows) >= len(geom.rows) / 2 \
        else "caps"
    timing_ms = READ.start_sigma_px[timed] / geom.px_per_mm / opts.speed * 1000
    if timing_ms > READ.timing_warn_ms:
        doubts.append(f"timing uncertain: ±{timing_ms:.1f} ms (start from the "
                      f"{'calibration pulse' if timed == 'pulse' else 'trace ends'} at "
                      f"{geom.px_per_mm:.2f} px/mm)")
    page_doubts(quality, hard, hard=True)
    page_doubts(quality, doubts)
    # low chest amplitudes are expected at a measured half chest gain; and where every row
    # shows its pulse, a half chest gain would have shown (a stepped pulse on a row of limb and
    # chest leads, a lower pulse on a row of chest leads): the amplitudes are the patient's
    if chest is None and not all(r.pulse != "none" for r in geom.rows):
        chest_gain_doubt(quality)
    hr = page_heart_rate(quality)
    quality["heart_rate_bpm"] = hr
    flag_heart_rates(quality, hr)
    quality["evidence"] = evidence(geom, quality, consensus_beats(sig, opts.fs)[1], bgr)
    quality["rhythm_agreement"] = rhythm_agreement(results, opts.fs, n)
    quality["layout_fit"] = choice.layout_fit
    strips = [r.window.lead for r in results if (r.window.t1 - r.window.t0) > 0.6 * n / opts.fs]
    if strips and "+" in choice.layout:  # which lead each rhythm strip holds, and why
        quality["rhythm_strips"] = [dict(lead=lead, source=src)
                                    for lead, src in zip(strips, choice.how)]
    quality["photographed"] = bool(geom.rectified or geom.on_background)
    calibrate(quality, [w.code for w in warnings], geom.px_per_mm, geom.scale_source,
              len(geom.rows), quality["evidence"]["pulses"])
    misread_limb_leads(quality, choice.layout_fit)
    unconfirmed_layout(quality, choice.layout_fit, quality["evidence"]["pulses"], len(geom.rows))
    return quality


_POOL = None
_POOL_LOCK = threading.Lock()


def _ocr_pool():
    """One worker for the printed-gain OCR (a Tesseract subprocess), shared by all pages."""
    global _POOL
    with _POOL_LOCK:  # pages convert on several threads
        if _POOL is None:
            from concurrent.futures import ThreadPoolExecutor
            _POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digitize-ocr")
    return _POOL


def _at_gain(r, g: float):
    """A window's result re-read at gain ``g`` (the model's output is in mm, not mV)."""
    w = r.window
    return replace(r, window=replace(w, gain=g),
                   mv=None if r.mv is None else (r.mv * (w.gain / g)).astype(np.float32))


def _rhythm_signals(results, fs: float, n: int) -> list[np.ndarray]:
    return [r.samples(fs, n) for r in results if (r.window.t1 - r.window.t0) > 0.6 * n / fs]


def rhythm_agreement(results, fs: float, n: int) -> float | None:
    """How far a lead read twice — in its panel and in a rhythm strip, the same samples —
    disagrees with itself: the RMS of the difference (offsets removed) over the strip's RMS
    where both are drawn, the median over such leads; None where no lead is drawn twice. The
    two readings are independent: their difference shows the page's reading error."""
    panels = _panels_only(results, fs, n)
    out = []
    for r in results:
        w = r.window
        if (w.t1 - w.t0) <= 0.6 * n / fs:
            continue
        strip = r.samples(fs, n)
        panel = panels[:, LEADS.index(w.lead)]
        ok = np.isfinite(strip) & np.isfinite(panel)
        if ok.sum() < fs:
            continue
        a = strip[ok] - np.median(strip[ok])
        d = panel[ok] - strip[ok]
        d = d - np.median(d)
        out.append(float(np.sqrt(np.mean(d ** 2) / max(np.mean(a ** 2), 1e-6))))
    return round(float(np.median(out)), 4) if out else None


def _panels_only(results, fs: float, n: int) -> np.ndarray:
    sig = np.full((n, len(LEADS)), np.nan, np.float32)
    for r in results:
        w = r.window
        if (w.t1 - w.t0) <= 0.6 * n / fs:
            s = r.samples(fs, n)
            ok = np.isfinite(s)
            sig[ok, LEADS.index(w.lead)] = s[ok]
    return sig
