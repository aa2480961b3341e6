"""The gain printed on a page ("10 mm/mV", "Limb 10 mm/mV  Chest 5 mm/mV"), for pages that carry
no calibration pulse.

Optional (``digitize --printed-gain auto|on|off``, auto by default): needs the ``pytesseract``
package and the Tesseract OCR program (``pip install .[ocr]`` and e.g. ``apt install
tesseract-ocr``); where they are missing (auto) or the text cannot be read, the caller falls
back to 10 mm/mV with a warning. Only a line of print below the last trace row (the footer,
where electrocardiographs print speed, gain and filter) is read, only on pages without a
pulse: ~0.1-0.5 s each.
"""
from __future__ import annotations

import functools
import logging
import re

import cv2
import numpy as np

from digitize.layouts import GAINS

log = logging.getLogger(__name__)

#: Attempts, in order, until one reads a gain: (text height in px given to Tesseract,
#: enlarged before binarising). On validation footers 30 px binarised-then-enlarged read
#: most; 24 px one more; enlarging first read six more (five of them under 4 px/mm, where
#: the characters are 8 px tall and the first way reads none: it is not tried there).
ATTEMPTS = ((30, False), (24, False), (30, True), (24, True))
TEXT_MM = 2.4
#: Straight runs longer than this (mm) are grid or frame lines, not characters.
LINE_MM = 6.0
#: Under this resolution only enlarging first reads anything.
MIN_PX_PER_MM = 4.0
#: Ink specks under this size squared are dropped (a full stop of 2.4-mm print is ~0.35 mm).
SPECK_MM = 0.2
#: "10 mm/mV" alone has 7 characters.
MIN_CHARACTERS = 6

# a number (OCR reads 5 as S, 0 as O, a slashed zero as @, Ø, ® or ©), then "mm/m..." (not
# "mm/s": the speed; "mm" misread as "mra" and the like is tolerated, and a slash read as a
# bar or an i before "mV": "20mmimV", own val 00131 at 3.4 px/mm); "Chest5mm" has no space
_VALUE = re.compile(r"(?:(limb|chest)\W{0,3}|\b)([0-9SO@Ø®©]{1,2}(?:[.,][0-9])?)"
                    r"[.,:;'`]?\s*m[a-z]{0,2}\s*(?:/|[|il1](?=mv))\s*m",
                    re.I)  # "5. mm/mV": a speck read
#: Something like "mm/m" or "mm/s": the line holds settings (a gain may be misread in it)
_UNIT = re.compile(r"m\s*/\s*[a-z]", re.I)
_DIGIT = str.maketrans({"S": "5", "O": "0", "@": "0", "Ø": "0", "®": "0", "©": "0", ",": "."})


@functools.lru_cache(maxsize=1)
def available() -> bool:
    try:
        import pytesseract
        pytesseract.get_tesseract_version()
    except Exception as exc:  # noqa: BLE001 - missing module, missing program, broken install
        log.info("printed gain not read on pages without a calibration pulse: %s",
                 str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return False
    return True


def parse_gain(text: str) -> tuple[float, float | None] | None:
    """(limb gain, chest gain or None) from OCR text; None where absent or ambiguous."""
    found: dict[str, set[float]] = {"limb": set(), "chest": set(), "": set()}
    for m in _VALUE.finditer(text):
        kind = (m.group(1) or "").lower()
        raw = m.group(2).upper().translate(_DIGIT)
        if raw == "18":  # "1Ø", a slashed zero read as 8 (not "28": "10" has read as that)
            raw = "10"
        try:
            v = float(raw)
        except ValueError:
            continue
        if v in GAINS:
            found[kind].add(v)
    limb, chest, plain = found["limb"], found["chest"], found[""]
    if len(limb) == 1 and len(chest) == 1:
        (lv,), (cv,) = limb, chest
        return lv, (cv if cv != lv else None)
    if len(plain) == 1 and not limb and not chest:
        return next(iter(plain)), None
    return None


def _level(band: np.ndarray) -> float:
    """The grey level halfway between the band's paper and its darkest ink."""
    return float(np.percentile(band, 50) + np.percentile(band, 0.2)) / 2


def _ink(band: np.ndarray, px_per_mm: float, level: float) -> np.ndarray:
    """Dark strokes (1) on 0 without the grid's and frame's straight lines."""
    bw = (band < level).astype(np.uint8)
    n = max(3, int(LINE_MM * px_per_mm))
    lines = (cv2.morphologyEx(bw, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (n, 1)))
             | cv2.morphologyEx(bw, cv2.MORPH_OPEN,
                                cv2.getStructuringElement(cv2.MORPH_RECT, (1, n))))
    bw &= ~lines
    # specks smaller than a printed full stop: a dotted grid's dots (Tesseract read nothing
    # at all from a clear line of print with a dotted grid line through it)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(bw, connectivity=8)
    small = stats[:, cv2.CC_STAT_AREA] < max(2.0, (SPECK_MM * px_per_mm) ** 2)
    small[0] = False
    if small.any():
        bw[small[labels]] = 0
    return bw


def _binarise(band: np.ndarray, px_per_mm: float, level: float
              ) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """The line of print in a footer band: its characters (1 on 0) and its box (y0, y1, x0,
    x1) in the band — Tesseract's time grows with the area (a band full of a binarised grid's
    remnants took it 2-4 s); None where no line of print stands out."""
    text = _ink(band, px_per_mm, level)
    # characters: components 1.2-5 mm tall, under 6 mm wide; a line of print has several
    # (a strip's empty margin, grid dots and trace fragments do not: no OCR call for them)
    _, _, stats, _ = cv2.connectedComponentsWithStats(text, connectivity=8)
    x, y, w, h = (stats[1:, i] for i in (cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP, cv2.CC_STAT_WIDTH,
                                         cv2.CC_STAT_HEIGHT))
    char = (h >= 1.2 * px_per_mm) & (h <= 5.0 * px_per_mm) & (w <= 6.0 * px_per_mm)
    if np.count_nonzero(char) < MIN_CHARACTERS:
        return None
    x, y, w, h = x[char], y[char], w[char], h[char]
    # the line: the characters whose centres lie within half a text height of the centre
    # shared by the most of them
    cy = y + h / 2
    near = np.abs(cy[:, None] - cy[None, :]) <= 0.5 * TEXT_MM * px_per_mm
    line = near[int(np.argmax(near.sum(axis=1)))]
    if np.count_nonzero(line) < MIN_CHARACTERS:
        return None
    m = int(round(2 * px_per_mm))  # Tesseract wants a margin of paper
    y0, y1 = max(0, int(y[line].min()) - m), int((y + h)[line].max()) + m
    x0, x1 = max(0, int(x[line].min()) - m), int((x + w)[line].max()) + m
    return text[y0:y1, x0:x1], (y0, y1, x0, x1)


def _read(image: np.ndarray) -> str:
    """Tesseract's text of a line of print (dark on white)."""
    import pytesseract
    try:
        return pytesseract.image_to_string(image, config="--psm 6")
    except Exception as exc:  # noqa: BLE001 - a failed OCR call only loses this hint
        log.debug("OCR failed: %s", exc)
        return ""


def printed_gain(grey: np.ndarray, row_ys: list[float], px_per_mm: float
                 ) -> tuple[float, float | None] | None:
    """The page's printed gain (limb, chest or None) from the footer."""
    if not row_ys or not available():
        return None
    ys = sorted(row_ys)
    pitch = float(np.median(np.diff(ys))) if len(ys) > 1 else 20 * px_per_mm
    top = max(0, int(ys[-1] + 0.35 * pitch))
    if grey.shape[0] - top < 3 * px_per_mm:
        return None
    band = grey[top:]
    level = _level(band)
    found = _binarise(band, px_per_mm, level)
    if found is None:
        return None
    text, (y0, y1, x0, x1) = found
    for px, enlarge_first in ATTEMPTS:
        s = max(1.0, px / (TEXT_MM * px_per_mm))
        if enlarge_first:  # grey levels interpolated, then thresholded: smoother characters
            line = cv2.resize(band[y0:y1, x0:x1], None, fx=s, fy=s,
                              interpolation=cv2.INTER_CUBIC)
            read = _read(255 - 255 * _ink(line, px_per_mm * s, level))
        elif px_per_mm >= MIN_PX_PER_MM:
            read = _read(cv2.resize(255 - 255 * text, None, fx=s, fy=s,
                                    interpolation=cv2.INTER_CUBIC))
        else:
            continue
        got = parse_gain(read)
        if got is not None:
            return got
        if read.strip() and not _UNIT.search(read):  # text, but no line of settings
            return None
    return None
