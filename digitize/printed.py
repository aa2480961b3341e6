"""The gain printed on a page ("10 mm/mV", "Limb 10 mm/mV  Chest 5 mm/mV"), for pages that carry
no calibration pulse.

Optional (``digitize --printed-gain auto|on|off``, auto by default): needs the ``pytesseract``
package and the Tesseract OCR program (``pip install .[ocr]`` and e.g. ``apt install
tesseract-ocr``); where they are missing (auto) or the text cannot be read, the caller falls
back to 10 mm/mV with a warning. Only the band below the last trace row (the footer, where
electrocardiographs print speed, gain and filter) is read, only on pages without a pulse:
~0.1-0.3 s each.
"""
from __future__ import annotations

import functools
import logging
import os
import re

import cv2
import numpy as np

log = logging.getLogger("digitize")

GAINS = (2.5, 5.0, 10.0, 20.0)
#: Text heights (px) Tesseract is given, the second where the first reads no gain (on 7
#: validation footers 30 px read 6, 24 px the seventh); printed settings are ~2.4 mm tall.
TEXT_PX = (30, 24)
TEXT_MM = 2.4
#: Straight runs longer than this (mm) are grid or frame lines, not characters.
LINE_MM = 6.0
#: Under this resolution printed settings (~2.4 mm tall: 9 px) were not read on validation
#: pages; the attempt only costs time.
MIN_PX_PER_MM = 4.0
#: "10 mm/mV" alone has 7 characters.
MIN_CHARACTERS = 6

# a number (OCR reads 5 as S, 0 as O, a slashed zero as @ or Ø), then "mm/m..." (not "mm/s":
# the speed; "mm" misread as "mra" and the like is tolerated); "Chest5mm" has no space
_VALUE = re.compile(r"(?:(limb|chest)\W{0,3}|\b)([0-9SO@Ø]{1,2}(?:[.,][0-9])?)"
                    r"\s*m[a-z]{0,2}\s*/\s*m", re.I)
_DIGIT = str.maketrans({"S": "5", "O": "0", "@": "0", "Ø": "0", ",": "."})


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


def _binarise(band: np.ndarray, px_per_mm: float) -> np.ndarray | None:
    """Dark characters (1) on 0, grid and frame lines removed, cropped to the ink; None if
    there is none."""
    paper = np.percentile(band, 50)
    ink = np.percentile(band, 0.2)
    bw = (band < (paper + ink) / 2).astype(np.uint8)
    n = max(3, int(LINE_MM * px_per_mm))
    lines = (cv2.morphologyEx(bw, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (n, 1)))
             | cv2.morphologyEx(bw, cv2.MORPH_OPEN,
                                cv2.getStructuringElement(cv2.MORPH_RECT, (1, n))))
    text = bw & ~lines
    # characters: components 1.2-5 mm tall, under 6 mm wide; a line of print has several
    # (a strip's empty margin, grid dots and trace fragments do not: no OCR call for them)
    _, _, stats, _ = cv2.connectedComponentsWithStats(text, connectivity=8)
    h_mm = stats[1:, cv2.CC_STAT_HEIGHT] / px_per_mm
    w_mm = stats[1:, cv2.CC_STAT_WIDTH] / px_per_mm
    if np.count_nonzero((h_mm >= 1.2) & (h_mm <= 5.0) & (w_mm <= 6.0)) < MIN_CHARACTERS:
        return None
    ys, xs = np.nonzero(text)
    m = int(2 * px_per_mm)  # only the inked part (Tesseract's time grows with the area)
    return text[max(0, ys.min() - m):ys.max() + m + 1, max(0, xs.min() - m):xs.max() + m + 1]


def printed_gain(grey: np.ndarray, row_ys: list[float], px_per_mm: float
                 ) -> tuple[float, float | None] | None:
    """The page's printed gain (limb, chest or None) from the footer."""
    if not row_ys or px_per_mm < MIN_PX_PER_MM or not available():
        return None
    import pytesseract
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")  # one thread: ~0.12 s per call, not ~0.4
    ys = sorted(row_ys)
    pitch = float(np.median(np.diff(ys))) if len(ys) > 1 else 20 * px_per_mm
    top = max(0, int(ys[-1] + 0.35 * pitch))
    if grey.shape[0] - top < 3 * px_per_mm:
        return None
    text = _binarise(grey[top:], px_per_mm)
    if text is None:
        return None
    for px in TEXT_PX:
        s = max(1.0, px / (TEXT_MM * px_per_mm))
        img = cv2.resize(255 - 255 * text, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC)
        try:
            read = pytesseract.image_to_string(img, config="--psm 6")
        except Exception as exc:  # noqa: BLE001 - a failed OCR call only loses this hint
            log.debug("OCR failed: %s", exc)
            return None
        got = parse_gain(read)
        if got is not None:
            return got
    return None
