"""Is this page an ECG at all, and one heart rate for the page.

An archive's scanner also picks up cover sheets, letters, forms, tables and photographs. Such a
page must not become an ECG record. A page counts as an ECG when it shows at least one of the
things every ECG printout has and other documents do not:

- **grid**: ECG paper's grid, periodic at 1 mm (or 5 mm), seen in the page's 2-D spectrum with a
  comb at least ``grid_strength`` times its background;
- **pulse**: a calibration pulse at the start (or end) of a trace row;
- **relations**: limb leads that obey Einthoven's and Goldberger's laws (II = I + III,
  aVR + aVL + aVF = 0) to within ``relations_ok`` of their own size — which no drawing of text,
  shapes or noise does by chance;
- **beats** (only where no limb-lead relation can be checked: strips): one lead of 4 s or
  more read with confidence (>= ``beats_conf``) whose R peaks
  come at a steady rate (``beats_min`` beats or more, RR intervals varying by at most
  ``beats_cv``) — what a rhythm strip on plain paper still shows;
- **rhythm**: R peaks that several leads drawn at the same time agree on: at least
  ``rhythm_beats`` beats, the median one found in ``rhythm_leads`` leads or more and in
  ``rhythm_share`` of the leads drawn at its time.

A page with none of them is ``not_ecg``: no record, its evidence in results.jsonl. A page that
shows ECG evidence but cannot be read stays an error (exit 1), so an ECG that failed is never
passed off as a cover sheet. Blank ECG paper (a grid, nothing drawn) is such an error where
its 1-mm pitch is measured (ECG paper with no trace found: worth a look).

The thresholds (``EVIDENCE``, an ``EvidenceParams``) were chosen on validation pages only: the
ecg-image-kit val pages, the real scans and the bundled examples against a corpus of generated
non-ECG images (tests/non_ecg.py): ECG pages' grid combs score >= 5.0 wherever a grid is found,
the non-ECG images' at most 2.6.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from digitize.io import DigitizeError


@dataclass(frozen=True)
class EvidenceParams:
    """What counts as ECG evidence (the cues above), chosen on val pages against the
    generated non-ECG corpus (tests/non_ecg.py)."""
    #: The grid comb's peak-to-background ratio that counts as ECG paper (ECG val pages: >= 5.0
    #: where a pitch is found; generated non-ECG images: <= 2.6).
    grid_strength: float = 4.0
    #: ... and the same period must repeat along both axes (``geometry.crossed_comb``, the weaker
    #: axis's comb): ECG paper's grid is square. ECG val pages (eik val, real scans, examples):
    #: >= 3.36; generated text pages: <= 1.6; forms: <= 3.0 (two of 21 above 2.5); tables with
    #: evenly spaced columns and rows: up to 10.8 (rows and columns can share a period's
    #: harmonics). It separates lines of text, not every table or form.
    grid_crossed: float = 2.5
    #: Largest Einthoven / Goldberger residual (relative RMS) that counts as limb leads.
    relations_ok: float = 0.5
    #: Leads that must agree on the R peaks (the median beat), and beats, for a rhythm to count
    #: as evidence.
    rhythm_leads: int = 3
    rhythm_beats: int = 4
    #: ... and the share of the leads drawn at the time that must find the median beat.
    rhythm_share: float = 0.6
    #: A steady rhythm in one lead: beats, spread of the RR intervals (coefficient of variation)
    #: and the lead's mean model confidence. Our val strips: >= 6 beats, CV <= 0.04, confidence
    #: >= 0.985; the non-ECG images read as strips: CV >= 0.45 or confidence <= 0.88, and a
    #: form read as 6x2+1 with evenly spaced boxes: CV 0.12 (hence only where no limb-lead
    #: relation can be checked, and 0.1). An irregular rhythm (atrial fibrillation) on plain
    #: paper without a pulse is not recognised by this cue.
    beats_min: int = 4
    beats_cv: float = 0.1
    beats_conf: float = 0.95
    #: A page that failed shows a trace only where, once its straight lines (grid, table rules, form
    #: fields) are taken away, some stroke spans this share of its width (``trace_extent``): a
    #: trace row's ink is one long wiggly line, text and a table's entries are short words. ECG val
    #: pages (eik val, real scans, examples, own val renders): >= 0.40; generated tables and
    #: forms: <= 0.11, text <= 0.18 (line charts and noise reach 0.8-1.0, but show no grid pattern).
    trace_extent: float = 0.25
    #: Trace rows seen in the ink alone (``stacked_traces``): strokes a quarter of the page's width
    #: or more, thin (at most ``EVIDENCE.trace_ink`` px of ink per column at ~1000 px: a pen's line
    #: and its QRS spikes, not a shape's filled edge) and stacked one under another without
    #: overlapping. ECG val pages: own photographed pages whose grid is too faint to measure (00697,
    #: 00989) show 4; generated non-ECG images at most 2 (a shape's edge, a chart's series overlap).
    trace_rows: int = 4
    trace_ink: float = 16.0
    #: A page that failed with more rows than any ECG layout has (12x1 + a strip) and no pulses
    #: is lines of text or a table's rows, whatever its periodic pattern.
    max_ecg_rows: int = 14
    #: Share of the page darker than its local paper by a quarter (brightest colour channel: a
    #: coloured grid does not count) under which a page is near-blank: the generated blank pages
    #: <= 0.05 %, our photographed val pages that failed >= 8 %.
    near_blank: float = 0.002
    #: R peaks this close (s) to a window's ends are not counted.
    edge_s: float = 0.08
    #: R peaks of different leads closer than this (s) are one beat.
    beat_tol_s: float = 0.06
    #: A lead's heart rate this far (relative) from the page's is flagged (beats missed or extra).
    hr_disagree: float = 0.15


EVIDENCE = EvidenceParams()


class NotEcg(DigitizeError):
    """The page shows no ECG evidence: not an error of the batch, no record."""

    def __init__(self, reason: str, evidence: dict):
        super().__init__(reason)
        self.evidence = evidence


def page_grid(bgr: np.ndarray) -> dict:
    """The page's grid as the 2-D spectrum sees it (~50 ms on a 200-dpi page)."""
    from digitize.geometry import crossed_comb, grid_pitch
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr
    p = grid_pitch(grey)
    crossed = crossed_comb(grey) if p.strength >= EVIDENCE.grid_strength else 1.0
    found = bool(np.isfinite(p.px_per_mm) and p.strength >= EVIDENCE.grid_strength
                 and crossed >= EVIDENCE.grid_crossed)
    return dict(grid=found, grid_strength=round(float(p.strength), 2),
                grid_crossed=round(crossed, 2),
                grid_px_per_mm=None if not np.isfinite(p.px_per_mm) else round(p.px_per_mm, 3))


def consensus_beats(sig: np.ndarray, fs: float) -> tuple[np.ndarray, int]:
    """Beat times (s) that the leads drawn at the time agree on, and how many leads agree on
    the median beat (0 with fewer than ``EVIDENCE.rhythm_beats`` beats). A beat needs half the leads
    drawn at its time (at least two where two or more are drawn): one lead's missed or extra
    peak does not count."""
    from digitize.metrics import r_peaks
    peaks = []  # (time s, lead)
    drawn = np.isfinite(sig)
    for j in range(sig.shape[1]):
        ok = drawn[:, j]
        if not ok.any():
            continue
        edges = np.flatnonzero(np.diff(np.r_[0, ok.astype(np.int8), 0]))
        for a, b in zip(edges[::2], edges[1::2]):
            if b - a >= 1.5 * fs:
                # a window's first and last samples are where separators, labels and the
                # model's edge effects make false peaks
                edge = EVIDENCE.edge_s * fs
                peaks += [((a + p) / fs, j) for p in r_peaks(sig[a:b, j], fs)
                          if edge <= p < b - a - edge]
    if not peaks:
        return np.array([]), 0
    peaks.sort()
    beats, support = [], []
    group = [peaks[0]]
    for t, j in peaks[1:] + [(np.inf, -1)]:
        if t - group[0][0] <= EVIDENCE.beat_tol_s:
            group.append((t, j))
            continue
        leads = {g[1] for g in group}
        when = float(np.median([g[0] for g in group]))
        n_drawn = int(drawn[min(len(sig) - 1, int(when * fs))].sum())
        if len(leads) >= max(1 if n_drawn <= 1 else 2, n_drawn / 2):
            beats.append(when)
            support.append((len(leads), len(leads) / max(1, n_drawn)))
        group = [(t, j)]
    if len(beats) < EVIDENCE.rhythm_beats:
        return np.array(beats), 0
    n, share = np.median(np.array(support), axis=0)
    # structure that lines up across rows (a form's boxes, a table's rules) is found in a
    # few of the leads drawn at once; a heartbeat in most of them
    return np.array(beats), int(n) if share >= EVIDENCE.rhythm_share else 0


def page_heart_rate(quality: dict) -> float:
    """The page's heart rate: the median of its leads' own rates (each from its R peaks).
    On the ecg-image-kit val pages it is within 5 % of the truth on 82 % of pages (10 %: 91 %);
    the rate of the beats the leads agree on (``consensus_beats``) did worse (75 %, 88 %):
    a beat missed by half the leads drawn at its time doubles an interval."""
    hr = [q["heart_rate_bpm"] for q in quality["leads"].values()
          if q.get("heart_rate_bpm") is not None and np.isfinite(q["heart_rate_bpm"])]
    return float(np.median(hr)) if hr else float("nan")


def flag_heart_rates(quality: dict, page_hr: float) -> None:
    """Warn on leads whose own heart rate disagrees with the page's (a lead whose beats were
    missed, or a label or pulse read as extra beats)."""
    if not np.isfinite(page_hr):
        return
    for lead, q in quality["leads"].items():
        hr = q.get("heart_rate_bpm")
        if hr is None or not np.isfinite(hr) or abs(hr / page_hr - 1) <= EVIDENCE.hr_disagree:
            continue
        reason = f"heart rate {hr:.0f} bpm, the page's {page_hr:.0f}: beats missed or extra"
        q["reasons"] = q["reasons"] + [reason]
        if q["status"] == "ok":
            q["status"] = "warn"
        quality["reasons"] = quality["reasons"] + [f"{lead}: {reason}"]
        if quality["status"] == "ok":
            quality["status"] = "warn"


def evidence(geom, quality: dict, support: int, bgr: np.ndarray | None = None) -> dict:
    """The ECG evidence of a page that was read. The grid spectrum is only computed where the
    other cues are missing (it costs ~50 ms)."""
    pulses = int(sum(r.pulse != "none" for r in geom.rows))
    e = [v for v in (quality.get("einthoven") or {}).values()
         if v is not None and np.isfinite(v)]
    rel = min(e) if e else None
    ev = dict(pulses=pulses, relations=None if rel is None else round(float(rel), 3),
              rhythm_leads=int(support))
    cues = _enough_pulses(pulses, len(geom.rows)) \
        or (rel is not None and rel <= EVIDENCE.relations_ok) \
        or support >= EVIDENCE.rhythm_leads
    if not cues and bgr is not None:
        # the page reader's own scale source is no cue: a weak periodicity near the row
        # length (text lines, table rules) can serve it as "grid". The spectrum is taken of
        # the page as read (deskewed, a photo's perspective undone): a photographed strip's
        # slanted grid lines fall outside the spectrum's axis bands (own val 00752: crossed
        # 2.44 as photographed, 2.52 as read; the generated non-ECG images that are read stay
        # far below, none with a grid)
        ev.update(page_grid(geom.grey if getattr(geom, "grey", None) is not None else bgr))
        # trace rows in the ink of the page as it lies (a photographed page whose grid is
        # too faint to measure and whose columns' timing misaligns its limb leads)
        ev["trace_rows"] = stacked_traces(_ink_mask(bgr))
        cues = ev["grid"] or ev["trace_rows"] >= EVIDENCE.trace_rows
    ev["ecg"] = bool(cues)
    return ev


def _enough_pulses(pulses: int | None, rows: int | None) -> bool:
    """Calibration pulses as evidence: two at least (one on a one-row strip) — noise can make
    a single row's start look like one."""
    return bool(pulses) and pulses >= min(2, rows or 2)


def failure_evidence(bgr: np.ndarray, pulses: int | None, rows: int | None = None) -> dict:
    """The ECG evidence of a page that could not be read (rows not found, no layout fits).
    Taken for no ECG only where nothing periodic is seen at all (a comb under
    ``EVIDENCE.grid_strength``, pitch or not), where the pattern repeats one way only (lines of
    text: ``EVIDENCE.grid_crossed``), where no stroke is as long as a trace (a table's rules and
    entries: ``EVIDENCE.trace_extent``) or where it has more rows than any ECG — unless its ink
    shows rows of trace (``stacked_traces``): a photographed ECG whose grid pitch is not
    measured stays an error."""
    ev = dict(pulses=pulses, rows=rows)
    ev.update(page_grid(bgr))
    ink = _ink_mask(bgr)
    ev["ink"] = round(float(ink.mean()), 5)
    stats = _strokes(ink) if ink.size else None  # one pass for both cues
    ev["trace_extent"] = round(trace_extent(ink, stats), 3)
    ev["trace_rows"] = stacked_traces(ink, stats)
    pattern = ev["grid_strength"] >= EVIDENCE.grid_strength \
        and ev["grid_crossed"] >= EVIDENCE.grid_crossed \
        and ev["trace_extent"] >= EVIDENCE.trace_extent \
        and not (rows and rows > EVIDENCE.max_ecg_rows) and ev["ink"] >= EVIDENCE.near_blank
    ev["ecg"] = bool(ev["grid"] or pattern or _enough_pulses(pulses, None)
                     or ev["trace_rows"] >= EVIDENCE.trace_rows)
    return ev


def _ink_mask(bgr: np.ndarray) -> np.ndarray:
    """The page at ~1000 px: 1 where darker than its local paper by a quarter (brightest
    colour channel: a coloured grid is paper)."""
    h, w = bgr.shape[:2]
    s = min(1.0, 1000 / max(h, w))
    small = cv2.resize(bgr, (max(1, int(w * s)), max(1, int(h * s))),
                       interpolation=cv2.INTER_AREA)
    v = (small.max(axis=2) if small.ndim == 3 else small).astype(np.float32)
    paper = cv2.blur(cv2.dilate(v, np.ones((15, 15), np.uint8)), (31, 31))
    return (v < 0.75 * paper).astype(np.uint8)


def _strokes(ink: np.ndarray) -> np.ndarray:
    """Connected strokes of an ink mask (``_ink_mask``) once its straight lines are taken
    away (OpenCV component stats, one row per stroke). Lines: runs of ink an eighth of the
    page's longer side (grid lines, a table's rules; a trace's QRS or flat stretch is
    shorter); what is left is joined across gaps of 4 px (a trace cut where such a line
    crossed it)."""
    n = max(ink.shape) // 8
    lines = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((1, n), np.uint8)) | \
        cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((n, 1), np.uint8))
    rest = cv2.dilate(ink & (1 - lines), np.ones((3, 5), np.uint8))
    _, _, stats, _ = cv2.connectedComponentsWithStats(rest, connectivity=8)
    return stats[1:]


def trace_extent(ink: np.ndarray, stats: np.ndarray | None = None) -> float:
    """The widest stroke of an ink mask (``_strokes``, or its ``stats`` where already taken),
    as a share of its width."""
    if ink.size == 0:
        return 0.0
    stats = _strokes(ink) if stats is None else stats
    return float(stats[:, cv2.CC_STAT_WIDTH].max() / ink.shape[1]) if len(stats) else 0.0


def stacked_traces(ink: np.ndarray, stats: np.ndarray | None = None) -> int:
    """How many trace-like strokes (``EVIDENCE.trace_extent`` of the width or more, at most
    ``EVIDENCE.trace_ink`` px of ink per column) stand one under another, none overlapping
    the next: an ECG's rows, seen without reading the page."""
    if ink.size == 0:
        return 0
    stats = _strokes(ink) if stats is None else stats
    thin = [s for s in stats if s[cv2.CC_STAT_WIDTH] >= EVIDENCE.trace_extent * ink.shape[1]
            and s[cv2.CC_STAT_AREA] / s[cv2.CC_STAT_WIDTH] <= EVIDENCE.trace_ink]
    taken: list[tuple[int, int]] = []
    for s in sorted(thin, key=lambda s: -s[cv2.CC_STAT_WIDTH]):
        y0, y1 = s[cv2.CC_STAT_TOP], s[cv2.CC_STAT_TOP] + s[cv2.CC_STAT_HEIGHT]
        if all(y1 <= a or y0 >= b for a, b in taken):
            taken.append((y0, y1))
    return len(taken)


def beats_cue(sig: np.ndarray, quality: dict, fs: float) -> dict:
    """``beats`` evidence: a lead read with confidence whose R peaks come at a steady rate."""
    from digitize.metrics import r_peaks
    from digitize.leads import LEADS
    best = None
    for lead, q in quality["leads"].items():
        x = sig[:, LEADS.index(lead)]
        x = x[np.isfinite(x)]
        if len(x) < 4 * fs or q["confidence"] < EVIDENCE.beats_conf:
            continue
        p = r_peaks(x, fs)
        if len(p) < EVIDENCE.beats_min:
            continue
        rr = np.diff(p) / fs
        cv = float(rr.std() / rr.mean())
        if best is None or cv < best:
            best = cv
    ok = best is not None and best <= EVIDENCE.beats_cv
    return dict(beats_rr_cv=None if best is None else round(best, 3), ecg=bool(ok))


def describe(ev: dict) -> str:
    """One line: why a page is taken for no ECG."""
    if "grid_strength" not in ev:
        parts = ["no ECG grid"]
    elif ev["grid_strength"] < EVIDENCE.grid_strength:
        parts = [f"no ECG grid (grid comb {ev['grid_strength']:g} < {EVIDENCE.grid_strength:g})"]
    elif ev.get("grid_crossed", EVIDENCE.grid_crossed) < EVIDENCE.grid_crossed:
        parts = [f"no ECG grid (a pattern that repeats one way only, as lines of text do: "
                 f"comb {ev['grid_strength']:g} down or across, {ev['grid_crossed']:g} both ways)"]
    else:
        parts = [f"no 1-mm grid (a periodic pattern, comb {ev['grid_strength']:g}, of no ECG "
                 "paper's pitch)"]
    if ev.get("trace_extent") is not None and ev["trace_extent"] < EVIDENCE.trace_extent:
        parts.append(f"no trace-long stroke (straight lines aside, the longest spans "
                     f"{100 * ev['trace_extent']:.0f} % of the page's width)")
    if ev.get("trace_rows") is not None:
        parts.append(f"{ev['trace_rows']} trace-like rows in the ink (< {EVIDENCE.trace_rows})")
    if ev.get("ink") is not None and ev["ink"] < EVIDENCE.near_blank:
        parts.insert(0, f"near-blank ({100 * ev['ink']:.2f} % ink)")
    if ev.get("rows") and ev["rows"] > EVIDENCE.max_ecg_rows:
        parts.append(f"{ev['rows']} rows: more than any ECG layout")
    parts.append("no calibration pulses" if not ev.get("pulses") else
                 f"{ev['pulses']} calibration pulse-like mark only")
    if ev.get("relations") is not None:
        parts.append(f"limb leads unrelated (Einthoven residual {ev['relations']:.2f})")
    if "rhythm_leads" in ev:
        parts.append(f"no beats shared by {EVIDENCE.rhythm_leads} leads")
        parts.append("no steady beats in a confident lead")
    return "not an ECG: " + ", ".join(parts)
