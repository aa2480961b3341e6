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
#: A label to erase lies at least this far (mm) from any other ink.
CLEAR_MM = 0.5
#: Text height given to Tesseract (px).
TEXT_PX = 32

_TOKEN = re.compile(r"^(A?V[RLF]|V?[1-6])$")


def _clusters(sub: np.ndarray, k: float) -> list[list[tuple[int, int, int, int]]]:
    """Glyph-like components of a mask window (not touching its border), grouped into labels."""
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
        g = groups[-1] if groups else None
        if g is not None and b[0] - (g[-1][0] + g[-1][2]) <= SPACING_MM * k and \
                abs((b[1] + b[3]) - (g[-1][1] + g[-1][3])) <= LINE_MM * k:  # shared baseline
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


def _nearest(groups, px: float, py: float):
    return min(groups, key=lambda g: np.hypot(
        max(0.0, g[0][0] - px, px - (g[-1][0] + g[-1][2])),
        min(abs(b[1] + b[3] / 2 - py) for b in g)))


def _labels_near(mask: np.ndarray, starts: list[tuple[float, float]], k: float):
    """Per panel start: (window origin x, y, window, its glyph groups), or None where the
    window holds no glyph."""
    for x0, y0 in starts:
        xa, ya, sub = _window(mask, x0, y0, k)
        groups = _clusters(sub, k) if sub.size else []
        yield (xa, ya, sub, groups) if groups else None


def glyph_mask(mask: np.ndarray, starts: list[tuple[float, float]], k: float) -> np.ndarray:
    """uint8 mask (deskewed, like ``mask``) of the label glyphs nearest each panel start:
    ink that is not the trace, which the trace model must not follow."""
    out = np.zeros_like(mask)
    for (x0, y0), near_start in zip(starts, _labels_near(mask, starts, k)):
        if near_start is None:
            continue
        xa, ya, sub, groups = near_start
        # a label of two or three glyphs of alike height ("II", "V1", "aVR"): one shape
        # alone may be a piece of trace (a spike cut off where it crosses a grid line)
        groups = [g for g in groups if 2 <= len(g) <= 3
                  and max(b[3] for b in g) <= 2 * min(b[3] for b in g)]
        if not groups:
            continue
        g = _nearest(groups, x0 - xa, y0 - ya)
        n, lab = cv2.connectedComponents(sub, connectivity=8)
        mine = np.zeros(sub.shape, np.uint8)
        for x, y, w, h in g:
            ids = np.unique(lab[y:y + h, x:x + w])
            mine[y:y + h, x:x + w] |= np.isin(lab[y:y + h, x:x + w], ids[ids > 0]).astype(
                np.uint8)
        # printed apart from the trace: pieces of a trace broken where it crosses grid
        # lines lie a pixel or two from the rest of it
        r = max(2, int(round(CLEAR_MM * k)))
        near = cv2.dilate(mine, np.ones((2 * r + 1, 2 * r + 1), np.uint8))
        if ((near > 0) & (sub > 0) & (mine == 0)).any() and _roman(g, k) is None:
            continue  # (upright bars of one height, II or III, are a label wherever they lie)
        out[ya:ya + sub.shape[0], xa:xa + sub.shape[1]] |= mine
    return out


def read_labels(mask: np.ndarray, starts: list[tuple[float, float]], k: float
                ) -> list[str | None]:
    """The lead label beside each panel start ``(x, y)`` (deskewed px of ``mask``), or None."""
    found: list[str | None] = [None] * len(starts)
    pending: list[tuple[int, np.ndarray]] = []
    for i, ((x0, y0), near_start) in enumerate(zip(starts, _labels_near(mask, starts, k))):
        if near_start is None:
            continue
        xa, ya, sub, groups = near_start
        g = _nearest(groups, x0 - xa, y0 - ya)  # the label nearest the panel's start
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
