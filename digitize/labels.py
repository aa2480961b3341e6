"""Printed lead labels ("I", "aVR", "V1"...) beside each panel's start, read from the page.

Printers disagree on the order of leads in some layouts (a 6x2 page may pair I with V1, or
V1 with V4 and I with aVR): the labels say which lead a panel holds. Each label is cut out of
the page as the small ink shapes near its panel's start that do not touch the trace (the trace
runs out of the window; a glyph lies inside it). Roman numerals (I, II, III) are counted as
upright bars; everything else is read in one Tesseract call for the page (optional, like the
printed gain: ``pip install .[ocr]`` and the tesseract program). Where a label cannot be read
the caller keeps the layout's standard order.
"""
from __future__ import annotations

import logging
import re

import cv2
import numpy as np

from digitize import printed
from digitize.leads import LEADS

log = logging.getLogger(__name__)

#: Window around a panel's start (mm): labels are printed beside it, above, below or just
#: before it.
BEFORE_MM, AFTER_MM, HALF_HEIGHT_MM = 3.0, 10.0, 12.0
#: A glyph: 0.8-6 mm tall (lower-case 'a' to capitals), at most 6 mm wide.
GLYPH_MM = (0.8, 6.0, 6.0)
#: Glyphs of one label lie this close (mm) side by side and at one height.
SPACING_MM, LINE_MM = 1.2, 1.5
#: A label to erase lies at least this far (mm) from any other ink (pieces of a trace broken
#: where it crosses grid lines lie closer to the rest of it); nearer, it is erased only where
#: it reads as a lead name.
CLEAR_MM = 0.5
#: Ink near a label that is smaller than this (mm²) is a speck of scan noise, not trace.
SPECK_MM2 = 0.1
#: Glyphs of a word of a label (aVR, V1, II) are at least this tall (mm): a lower-case 'a' of
#: 2.5-mm capitals.
WORD_MM = 1.2
#: Text height given to Tesseract (px).
TEXT_PX = 32

_TOKEN = re.compile(r"^(A?V[RLF]|V?[1-6])$")


def _clusters(sub: np.ndarray, k: float, loose: bool = False
              ) -> list[list[tuple[int, int, int, int]]]:
    """Glyph-like components of a mask window (not touching its border), grouped into labels.
    ``loose``: a shape wholly above or below a label's line does not part it either (eik val
    scan 00074: a QRS's broken-off tip between "V" and "6"; so loose, pieces of a QRS may
    group too: such a label is only taken where it reads as a lead name)."""
    n, _, st, _ = cv2.connectedComponentsWithStats(sub, 8)
    lo, hi, wide = (v * k for v in GLYPH_MM)
    boxes = []
    for j in range(1, n):
        x, y, w, h, _ = st[j]
        if x == 0 or y == 0 or x + w >= sub.shape[1] or y + h >= sub.shape[0]:
            continue  # runs out of the window: the trace (or a line), not a glyph
        if lo <= h <= hi and w <= wide:
            boxes.append((int(x), int(y), int(w), int(h)))
    boxes.sort()
    groups: list[list[tuple[int, int, int, int]]] = []
    for b in boxes:
        # the latest group, if this glyph continues it (side by side, on a shared baseline);
        # a speck of noise in between (under half this glyph's height) is a group of its own
        # and does not part two glyphs of one label (eik val scan 00207: "V", a speck, "2")
        g = None
        for prev in reversed(groups):
            if b[0] - (prev[-1][0] + prev[-1][2]) <= SPACING_MM * k and \
                    abs((b[1] + b[3]) - (prev[-1][1] + prev[-1][3])) <= LINE_MM * k:
                g = prev
                break
            if any(h >= 0.5 * b[3] and (not loose or (y < b[1] + b[3] and y + h > b[1]))
                   for _, y, _, h in prev):
                break
        if g is not None:
            g.append(b)
        else:
            groups.append([b])
    return groups


def _roman(group: list[tuple[int, int, int, int]], k: float) -> str | None:
    """'I', 'II' or 'III' where a label is one to three upright bars of one height."""
    if not 1 <= len(group) <= 3:
        return None
    hs = [h for _, _, _, h in group]
    if all(w <= max(0.35 * h, 2) for _, _, w, h in group) and max(hs) <= 1.25 * min(hs) \
            and min(hs) >= 1.5 * k:
        return "I" * len(group)
    return None


def normalise(text: str) -> str | None:
    """A lead name from an OCR reading ('aVR', 'VR' with its 'a' lost, 'V1', a lone '1'...)."""
    t = re.sub(r"[^A-Za-z0-9]", "", text).upper()
    if not _TOKEN.match(t):
        return None
    if t[0].isdigit():
        t = "V" + t
    if t.startswith("V") and t[1] in "RLF":
        t = "A" + t
    return {lead.upper(): lead for lead in LEADS}.get(t)


def _window(mask: np.ndarray, x0: float, y0: float, k: float):
    h, w = mask.shape
    xa, xb = int(max(0, x0 - BEFORE_MM * k)), int(min(w, x0 + AFTER_MM * k))
    ya, yb = int(max(0, y0 - HALF_HEIGHT_MM * k)), int(min(h, y0 + HALF_HEIGHT_MM * k))
    return xa, ya, np.ascontiguousarray(mask[ya:yb, xa:xb])


def _words(groups, k: float, px: float, py: float):
    """Groups of two or three glyphs of alike height ("II", "V1", "aVR"; one shape alone may
    be a piece of trace, a spike cut off where it crosses a grid line), nearest (px, py)
    first."""
    words = [g for g in groups if 2 <= len(g) <= 3
             and max(b[3] for b in g) <= 2 * min(b[3] for b in g)]
    return sorted(words, key=lambda g: _distance(g, px, py))


def _distance(group, px: float, py: float) -> float:
    return float(np.hypot(max(0.0, group[0][0] - px, px - (group[-1][0] + group[-1][2])),
                          min(abs(b[1] + b[3] / 2 - py) for b in group)))


def _nearest(groups, px: float, py: float):
    return min(groups, key=lambda g: _distance(g, px, py))


def _labels_near(mask: np.ndarray, starts: list[tuple[float, float]], k: float):
    """Per panel start: (window origin x, y, window, its glyph groups), or None where the
    window holds no glyph."""
    for x0, y0 in starts:
        xa, ya, sub = _window(mask, x0, y0, k)
        groups = _clusters(sub, k) if sub.size else []
        yield (xa, ya, sub, groups) if groups else None


#: Labels printed against other ink, per panel start, that are read (nearest first).
AGAINST_INK_TRIES = 2


def glyph_mask(mask: np.ndarray, starts: list[tuple[float, float]], k: float,
               names: list[str | None] | None = None, boxes: dict | None = None
               ) -> np.ndarray:
    """uint8 mask (deskewed, like ``mask``) of the label glyphs nearest each panel start:
    ink that is not the trace, which the trace model must not follow. ``boxes``, where given,
    receives each taken label's box (x1, y1, x2, y2, number of glyphs) by start index.

    A label printed clear of other ink is taken as it is. One printed against the trace (a
    printer puts it under the baseline, where the panel's first S wave comes down to it) is
    taken only where it reads as a lead name (OCR, where installed): the panel's ``names[i]``,
    or any lead where that is None. Only the glyphs' own ink is taken, never the trace's."""
    out = np.zeros_like(mask)
    pending = []  # (start index, window origin, the glyphs' own ink, the glyphs as text, box)
    taken = boxes if boxes is not None else {}
    for i, ((x0, y0), near_start) in enumerate(zip(starts, _labels_near(mask, starts, k))):
        if near_start is None:
            continue
        xa, ya, sub, groups = near_start
        n, lab, st, _ = cv2.connectedComponentsWithStats(sub, connectivity=8)
        r = max(2, int(round(CLEAR_MM * k)))
        to_read = []  # labels against other ink, or grouped loosely: taken if read
        # nearest the panel's start first: pieces of a QRS broken on grid lines may lie
        # nearer than the label (eik val scan 00074, V6)
        for nth, g in enumerate(_words(groups, k, x0 - xa, y0 - ya)):
            mine = np.isin(lab, [j for j in range(1, n)
                                 if tuple(int(v) for v in st[j, :4]) in set(g)])
            # printed apart from the trace: pieces of a trace broken where it crosses grid
            # lines lie a pixel or two from the rest of it (specks of scan noise aside)
            near = cv2.dilate(mine.astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8))
            others = np.unique(lab[(near > 0) & (sub > 0) & ~mine])
            if not (st[others, cv2.CC_STAT_AREA] >= SPECK_MM2 * k * k).any() \
                    or (nth == 0 and _roman(g, k) is not None):
                # (upright bars of one height nearest the start, II or III, are a label
                # wherever they lie; further off, they are as likely pieces of a QRS)
                out[ya:ya + sub.shape[0], xa:xa + sub.shape[1]] |= mine.astype(np.uint8)
                taken[i] = _box(g, xa, ya)
                break
            to_read.append((g, mine))
        else:
            seen = {tuple(g) for g, _ in to_read}
            for g in _words(_clusters(sub, k, loose=True), k, x0 - xa, y0 - ya):
                if tuple(g) not in seen:
                    to_read.append((g, np.isin(lab, [j for j in range(1, n) if tuple(
                        int(v) for v in st[j, :4]) in set(g)])))
            to_read.sort(key=lambda gm: _distance(gm[0], x0 - xa, y0 - ya))
            for g, mine in to_read[:AGAINST_INK_TRIES]:
                x1, x2 = g[0][0], g[-1][0] + g[-1][2]
                y1, y2 = min(b[1] for b in g), max(b[1] + b[3] for b in g)
                text = np.full((y2 - y1, x2 - x1), 255, np.uint8)
                text[mine[y1:y2, x1:x2]] = 0
                pending.append((i, xa, ya, mine.astype(np.uint8), text, _box(g, xa, ya)))
    if pending and printed.available():
        done = set()
        for (i, xa, ya, mine, _, box), read in zip(pending, _ocr([p[4] for p in pending])):
            lead = normalise(read)
            if i not in done and lead is not None and (names is None
                                                       or names[i] in (None, lead)):
                out[ya:ya + mine.shape[0], xa:xa + mine.shape[1]] |= mine
                done.add(i)
                taken[i] = box
    return out


def _box(g, xa: int, ya: int) -> tuple[int, int, int, int, int]:
    """A label's box on the page (x1, y1, x2, y2) and its number of glyphs."""
    return (xa + g[0][0], ya + min(b[1] for b in g), xa + g[-1][0] + g[-1][2],
            ya + max(b[1] + b[3] for b in g), len(g))


#: A page's labels sit alike where at least this many were taken with their boxes' corners
#: within LABEL_SPREAD_MM of one another, relative to their panels' starts and rows' baselines.
LABEL_MIN_TAKEN, LABEL_SPREAD_MM = 3, 1.0
#: A place with under this share of a taken label's ink holds no label (an S wave dipping in).
LABEL_INK_SHARE = 0.5
#: Labels are taken so only where they sit at least this far (mm) above or below the trace's
#: line (ecg-image-kit's: 3.4-5.7 mm under it).
LABEL_CLEAR_MM = 2.0


def unread_labels(mask: np.ndarray, starts: list[tuple[float, float]], k: float, boxes: dict,
                  lines: list[float], names: list[str | None] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(ink to take out, ink to add), uint8 masks like ``mask``: the labels that could not be
    taken (``glyph_mask``) where the page's labels sit alike beside their panels' starts.

    A label printed against the panel's first S wave, or a roman numeral hanging from the
    trace, is one shape with the trace: neither the glyph search nor OCR parts them, and the
    model followed the label (new eik val clean 00408 V4: its first R wave lost; 00305 I,
    II). Where the other labels of the page say where it lies (``boxes``, by start index:
    ``glyph_mask``'s), all ink in that place is taken out — not where ink runs on through its
    far side (a deep wave passing by) nor where it holds too little ink to be a label — and
    the trace is kept whole along the place's near side: where it ran into the place, it is
    drawn along the edge instead (a wave's tip reaching into a label is cut, not lost).
    Nothing is taken where the labels sit across or within LABEL_CLEAR_MM of the trace's
    line."""
    out, add = np.zeros_like(mask), np.zeros_like(mask)
    if len(boxes) < LABEL_MIN_TAKEN or len(boxes) == len(starts):
        return out, add
    idx = sorted(boxes)
    rel = np.array([(boxes[i][0] - starts[i][0], boxes[i][1] - lines[i],
                     boxes[i][3] - lines[i]) for i in idx], np.float64)
    med = np.median(rel, axis=0)
    alike = np.all(np.abs(rel - med) <= LABEL_SPREAD_MM * k, axis=1)
    if alike.sum() < LABEL_MIN_TAKEN:
        return out, add
    dx, top, bottom = np.median(rel[alike], axis=0)
    if min(abs(top), abs(bottom)) < LABEL_CLEAR_MM * k or top < 0 < bottom:
        # labels on or near the trace's line: the trace's own first samples may lie there
        # (real scan MI(106): labels 1-3.5 mm above the line, the trace's start cut)
        return out, add
    below = top > 0
    near = [boxes[i] for i, a in zip(idx, alike) if a]
    # (the widest per glyph: roman numerals' bars are narrower than a V or a digit)
    per_glyph = float(np.max([(b[2] - b[0]) / b[4] for b in near]))
    n_glyphs = int(round(np.median([b[4] for b in near])))
    ink_per_glyph = float(np.median([(mask[b[1]:b[3], b[0]:b[2]] > 0).sum() / b[4]
                                     for b in near]))
    h, w = mask.shape
    pad = max(1, int(round(0.15 * k)))
    for i, ((x0, _), line) in enumerate(zip(starts, lines)):
        if i in boxes:
            continue
        glyphs = len(names[i]) if names is not None and names[i] else n_glyphs
        xa, xb = int(x0 + dx) - pad, int(np.ceil(x0 + dx + glyphs * per_glyph)) + pad
        ya, yb = int(line + top) - pad, int(np.ceil(line + bottom)) + pad
        xa, xb, ya, yb = max(0, xa), min(w, xb), max(1, ya), min(h - 1, yb)
        if xb <= xa or yb <= ya or ya <= line <= yb:
            continue
        sub = mask[ya:yb, xa:xb] > 0
        if sub.sum() < LABEL_INK_SHARE * ink_per_glyph * glyphs:
            continue
        far = mask[yb, xa:xb] if below else mask[ya - 1, xa:xb]
        far_in = sub[-1] if below else sub[0]
        if (far & far_in).any():
            continue  # a wave runs on through the place: not a label alone
        out[ya:yb, xa:xb] = sub
        # the trace's ink coming in across the near side is drawn along it
        outside = ya - 1 if below else yb
        enter = (mask[outside, xa:xb] > 0) & (sub[0] if below else sub[-1])
        if enter.any():  # (a row either side of the edge: the erasure is widened by one)
            cols = np.flatnonzero(enter) + xa
            add[outside - 1:outside + 2, cols] = 1
    return out, add


def read_labels(mask: np.ndarray, starts: list[tuple[float, float]], k: float
                ) -> list[str | None]:
    """The lead label beside each panel start ``(x, y)`` (deskewed px of ``mask``), or None."""
    found: list[str | None] = [None] * len(starts)
    pending: list[tuple[int, np.ndarray]] = []
    for i, ((x0, y0), near_start) in enumerate(zip(starts, _labels_near(mask, starts, k))):
        if near_start is None:
            continue
        xa, ya, sub, groups = near_start
        # the label nearest the panel's start; a word of glyphs of alike height (aVR, V1)
        # before lone shapes (scan noise, a broken-off piece of trace read as a bar)
        words = [g for g in groups if 2 <= len(g) <= 3 and min(b[3] for b in g) >= WORD_MM * k
                 and max(b[3] for b in g) <= 2 * min(b[3] for b in g)]
        g = _nearest(words or groups, x0 - xa, y0 - ya)
        roman = _roman(g, k)
        if roman is not None:
            found[i] = roman
            continue
        x1, x2 = g[0][0], g[-1][0] + g[-1][2]
        y1, y2 = min(b[1] for b in g), max(b[1] + b[3] for b in g)
        glyph = np.full((y2 - y1, x2 - x1), 255, np.uint8)
        glyph[sub[y1:y2, x1:x2] > 0] = 0
        pending.append((i, glyph))
    if pending and printed.available():
        for i, text in zip((i for i, _ in pending), _ocr([g for _, g in pending])):
            found[i] = normalise(text)
    return found


def _ocr(glyphs: list[np.ndarray]) -> list[str]:
    """One Tesseract call for all labels: stacked as lines of text, read back by position."""
    import pytesseract
    scaled = [cv2.resize(g, None, fx=TEXT_PX / g.shape[0], fy=TEXT_PX / g.shape[0],
                         interpolation=cv2.INTER_CUBIC) for g in glyphs]
    pitch = 2 * TEXT_PX
    width = max(s.shape[1] for s in scaled) + 2 * TEXT_PX
    canvas = np.full((pitch * len(scaled) + TEXT_PX, width), 255, np.uint8)
    for j, s in enumerate(scaled):
        y = TEXT_PX // 2 + j * pitch
        canvas[y:y + s.shape[0], TEXT_PX:TEXT_PX + s.shape[1]] = s
    try:
        d = pytesseract.image_to_data(
            canvas, config="--psm 6 -c tessedit_char_whitelist=IVaRLF123456AVrlf",
            output_type=pytesseract.Output.DICT, timeout=10)
    except Exception as exc:  # noqa: BLE001 - a hint: losing it keeps the standard order
        log.debug("lead labels not read: %s", exc)
        return [""] * len(glyphs)
    out = [""] * len(glyphs)
    for text, top, height in zip(d["text"], d["top"], d["height"]):
        if text.strip():
            j = int((top + height / 2 - TEXT_PX // 2) // pitch)
            if 0 <= j < len(out):
                out[j] += text.strip()
    return out


#: Separator bars between panels (ecg-image-kit draws one at each panel's start, thicker
#: than the pen, ~10 mm tall, centred on the trace): looked for within SEP_REACH_MM of a
#: panel's start, at least SEP_MIN_MM tall, 1.6 pens (and 2 px more than one) wide, reaching
#: SEP_BOTH_MM above and below the trace's line.
SEP_REACH_MM, SEP_HALF_MM, SEP_MIN_MM, SEP_PENS, SEP_BOTH_MM = 1.5, 12.0, 4.0, 1.6, 2.0


def separator_mask(mask: np.ndarray, starts: list[tuple[float, float]], k: float,
                   pen_px: float, lines: list[float] | None = None) -> np.ndarray:
    """uint8 mask (like ``mask``) of straight vertical bars thicker than the pen at panel
    starts: a separator, which the trace model read as a spike at the panel's first samples.
    A QRS stroke is as thin as the pen (and slanted), so it is not taken; where one is drawn
    against the bar and runs past one of its ends, the bar is taken on the other side of the
    trace's line only. ``lines``: per start, its row's baseline (px), where a printer centres
    its bars; a panel's own level (the start's y) may lie mm off it."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    tall_k = np.ones((max(3, int(round(SEP_MIN_MM * k))), 1), np.uint8)
    thick_k = np.ones((1, int(round(max(pen_px + 2, SEP_PENS * pen_px)))), np.uint8)
    reach = int(round(SEP_BOTH_MM * k))
    for i, (x0, y0) in enumerate(starts):
        xa, xb = int(max(0, x0 - SEP_REACH_MM * k)), int(min(w, x0 + SEP_REACH_MM * k + 1))
        ya, yb = int(max(0, y0 - SEP_HALF_MM * k)), int(min(h, y0 + SEP_HALF_MM * k + 1))
        sub = np.ascontiguousarray(mask[ya:yb, xa:xb])
        if sub.size == 0:
            continue
        tall = cv2.morphologyEx(sub, cv2.MORPH_OPEN, tall_k)
        # thick over a bar's height, not just where strokes meet (an R wave's tip), and
        # reaching SEP_BOTH_MM above and below the trace's line (a pulse's edge, an R or a
        # QS wave reach one way)
        bars = cv2.morphologyEx(cv2.morphologyEx(tall, cv2.MORPH_OPEN, thick_k),
                                cv2.MORPH_OPEN, tall_k)
        yc = int(round(y0)) - ya
        if not bars.any() or yc - reach < 0 or yc + reach >= bars.shape[0]:
            continue
        ycs = {yc} | ({int(round(lines[i])) - ya} if lines is not None else set())
        n, lab, st, _ = cv2.connectedComponentsWithStats(bars, connectivity=8)
        for j in range(1, n):
            top, height = st[j, cv2.CC_STAT_TOP], st[j, cv2.CC_STAT_HEIGHT]
            across = [c for c in ycs if top <= c - reach and top + height >= c + reach]
            if across:
                yc = min(across, key=lambda c: abs(c - (top + height / 2)))
                # the bar's own columns: where the ink through its middle runs no further
                # than the bar (a QRS stroke merged with its side reaches past it, or stops
                # short of its ends), to 0.3 mm
                x, bw = st[j, cv2.CC_STAT_LEFT], st[j, cv2.CC_STAT_WIDTH]
                bottom, tol = top + height - 1, max(2, int(round(0.3 * k)))
                runs = []  # (column, first and last row of its ink through the middle)
                mid = top + height // 2
                for c in range(max(0, x - 1), min(sub.shape[1], x + bw + 1)):
                    col = sub[:, c]
                    if not col[mid]:
                        continue
                    a = mid - int(np.argmin(col[mid::-1] > 0)) + 1 if not col[:mid + 1].all() \
                        else 0
                    b = mid + int(np.argmin(col[mid:] > 0)) - 1 if not col[mid:].all() \
                        else len(col) - 1
                    runs.append((c, a, b))
                if top == 0 or bottom == sub.shape[0] - 1:
                    # a wave drawn against the bar runs on out of the window and the bar's
                    # shape with it: its ends from its own columns, those inside the window
                    inside = [(a, b) for _, a, b in runs if a > 0 and b < sub.shape[0] - 1]
                    if not inside:
                        continue
                    top = int(np.median([a for a, _ in inside]))
                    bottom = int(np.median([b for _, b in inside]))
                for c, a, b in runs:
                    top_ok, bottom_ok = abs(a - top) <= tol, abs(b - bottom) <= tol
                    if top_ok and bottom_ok:
                        out[ya + a:ya + b + 1, xa + c] = 1
                    elif bottom_ok and a < yc - tol:
                        # a wave drawn against the bar runs up through it (an R at the panel's
                        # first beat): only the bar below the trace's line is taken — left
                        # there, the model followed it down instead of the R (eik val clean
                        # 00098, V4-V6)
                        out[ya + yc + tol:ya + b + 1, xa + c] = 1
                    elif top_ok and b > yc + tol:  # ... or down through it (an S wave)
                        out[ya + a:ya + yc - tol + 1, xa + c] = 1
    return out


def separator_bridges(mask: np.ndarray, seps: np.ndarray, starts: list[tuple[float, float]],
                      k: float, pen_px: float) -> np.ndarray:
    """uint8 mask of pen strokes joining the trace across each separator bar taken out
    (``separator_mask``): the trace runs through the bar, and a blank gap there left the
    trace model to follow a label beside the panel's start. From the trace's ink nearest the
    panel's baseline on the bar's left to that on its right (the trace's level on either
    side), stepping just before the panel's first sample."""
    out = np.zeros_like(mask)
    n, lab, st, _ = cv2.connectedComponentsWithStats(seps, connectivity=8)
    h, w = mask.shape
    d = max(2, int(round(0.3 * k)))
    for j in range(1, n):
        x, y, bw, bh = (int(v) for v in st[j, :4])
        # a wave drawn against the bar (taken on one side of the line only) runs on past its
        # ends and joins the trace through it: no bridge, which the model would follow
        # instead of the wave
        ends = [r for r in (y - 2, y + bh + 1) if 0 <= r < h]
        if any((mask[r, x:x + bw] & (1 - seps[r, x:x + bw])).any() for r in ends):
            continue
        # the baseline of the panel starting at this bar
        yc = min(starts, key=lambda p: abs(p[0] - (x + bw / 2)) + abs(p[1] - (y + bh / 2)))[1]

        def level(col: int) -> float | None:
            if not 0 <= col < w:
                return None
            ys = np.flatnonzero(mask[y:y + bh, col] & ~seps[y:y + bh, col]) + y
            return float(ys[np.argmin(np.abs(ys - yc))]) if len(ys) else None

        def side(cols) -> float | None:
            ys = [v for v in (level(c) for c in cols) if v is not None]
            return float(np.median(ys)) if ys else None

        left = side(range(x - d - 2, x - d + 1))
        right = side(range(x + bw - 1 + d, x + bw + d + 2))
        if left is None and right is None:
            continue
        left = right if left is None else left
        right = left if right is None else right
        # a step a pen's width before the bar's middle (the panel's first sample, where the
        # model's first column must see the new level): each side keeps its own level
        mid, t = x + bw // 2 - int(round(pen_px)), max(1, int(round(pen_px)))
        cv2.line(out, (x - d, int(round(left))), (mid, int(round(left))), 1, t)
        cv2.line(out, (mid, int(round(left))), (mid, int(round(right))), 1, t)
        cv2.line(out, (mid, int(round(right))), (x + bw - 1 + d, int(round(right))), 1, t)
    return out
