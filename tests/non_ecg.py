"""Images that are not ECGs, made from a seed: what an archive's scanner also picks up.

Kinds: text documents (letters, reports), tables and spreadsheets, forms, noise textures,
smooth photograph-like scenes with shapes, near-blank pages (white, a shadowed blank scan,
empty ECG paper with no trace) and line charts. Used by the tests and by
benchmarks/non_ecg.py; nothing here comes from an ECG renderer.
"""
from __future__ import annotations

import cv2
import numpy as np

#: Blank ECG paper (``empty_grid``) is made but not in KINDS: with no trace it is no
#: recording, yet it is ECG paper — digitize reports it as an error where it measures the
#: grid's 1-mm pitch, as not an ECG where it does not; the corpus does not judge either.
KINDS = ("text", "table", "form", "noise", "photo", "blank", "chart")
_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
          cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_PLAIN)
_WORDS = ("the patient was seen in clinic today and reports no chest pain since the last "
          "visit blood pressure 128 over 82 heart rate regular medication unchanged follow "
          "up in six months laboratory results attached signature date ward invoice total "
          "amount due account number reference page of").split()


def _page(rng, dpi: float) -> tuple[np.ndarray, float]:
    k = dpi / 25.4
    w, h = (279.4, 215.9) if rng.random() < 0.5 else (215.9, 279.4)
    paper = rng.integers(225, 256)
    img = np.full((int(h * k), int(w * k), 3), paper, np.uint8)
    return img, k


def _text(img, rng, k, top=0.08, bottom=0.92, left=0.08, right=0.92, size_mm=None):
    h, w = img.shape[:2]
    font = _FONTS[rng.integers(len(_FONTS))]
    size_mm = size_mm or rng.uniform(2.2, 4.0)
    scale = cv2.getFontScaleFromHeight(font, max(6, int(size_mm * k)), 1)
    th = max(1, int(round(scale * 1.2)))
    y = int(top * h) + int(size_mm * k)
    colour = tuple(int(c) for c in rng.integers(0, 60, 3))
    while y < bottom * h:
        x = int(left * w)
        if rng.random() < 0.12:  # paragraph break
            y += int(size_mm * k * 1.6)
            continue
        while True:
            word = _WORDS[rng.integers(len(_WORDS))]
            (tw, _), _ = cv2.getTextSize(word, font, scale, th)
            if x + tw > right * w:
                break
            cv2.putText(img, word, (x, y), font, scale, colour, th, cv2.LINE_AA)
            x += tw + int(size_mm * k * 0.6)
        y += int(size_mm * k * rng.uniform(1.5, 2.1))


def text_document(rng, dpi):
    img, k = _page(rng, dpi)
    _text(img, rng, k, top=0.05, bottom=0.14, size_mm=6)  # a heading
    _text(img, rng, k, top=0.16)
    return img


def table(rng, dpi):
    img, k = _page(rng, dpi)
    h, w = img.shape[:2]
    cw, ch = rng.uniform(15, 35) * k, rng.uniform(5, 9) * k
    x0, y0 = int(0.06 * w), int(0.08 * h)
    cols, rows = int(0.88 * w // cw), int(0.84 * h // ch)
    grey = int(rng.integers(0, 160))
    for i in range(rows + 1):
        cv2.line(img, (x0, int(y0 + i * ch)), (int(x0 + cols * cw), int(y0 + i * ch)),
                 (grey,) * 3, 1)
    for j in range(cols + 1):
        cv2.line(img, (int(x0 + j * cw), y0), (int(x0 + j * cw), int(y0 + rows * ch)),
                 (grey,) * 3, 1)
    font = _FONTS[rng.integers(len(_FONTS))]
    scale = cv2.getFontScaleFromHeight(font, max(6, int(0.45 * ch)), 1)
    for i in range(rows):
        for j in range(cols):
            if rng.random() < 0.8:
                s = f"{rng.normal(100, 60):.1f}" if j else f"item {i}"
                cv2.putText(img, s, (int(x0 + j * cw + 0.1 * cw), int(y0 + (i + 0.75) * ch)),
                            font, scale, (20, 20, 20), 1, cv2.LINE_AA)
    return img


def form(rng, dpi):
    img, k = _page(rng, dpi)
    h, w = img.shape[:2]
    _text(img, rng, k, top=0.04, bottom=0.1, size_mm=5)
    y = int(0.14 * h)
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = cv2.getFontScaleFromHeight(font, int(3 * k), 1)
    while y < 0.9 * h:
        label = " ".join(_WORDS[i] for i in rng.integers(len(_WORDS), size=2)) + ":"
        cv2.putText(img, label, (int(0.08 * w), y), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
        if rng.random() < 0.5:
            cv2.line(img, (int(0.35 * w), y + 2), (int(0.9 * w), y + 2), (0, 0, 0), 1)
        else:
            for b in range(int(rng.integers(2, 8))):
                x = int(0.35 * w + b * 8 * k)
                cv2.rectangle(img, (x, y - int(4 * k)), (x + int(5 * k), y + int(1 * k)),
                              (0, 0, 0), 1)
        y += int(rng.uniform(9, 16) * k)
    return img


def noise(rng, dpi):
    img, k = _page(rng, dpi)
    h, w = img.shape[:2]
    kind = rng.integers(3)
    if kind == 0:
        n = rng.normal(128, 60, (h, w, 1))
    elif kind == 1:
        n = cv2.GaussianBlur(rng.normal(128, 90, (h, w)).astype(np.float32), (0, 0),
                             float(rng.uniform(1, 6)))[..., None] * 3 - 256
    else:
        n = np.where(rng.random((h, w, 1)) < rng.uniform(0.01, 0.2), 0, 255)
    return np.clip(np.repeat(n, 3, axis=2), 0, 255).astype(np.uint8)


def photo(rng, dpi):
    h, w = (int(rng.integers(1200, 2400)), int(rng.integers(1200, 2400)))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        a, b, c0 = rng.uniform(-1, 1, 2), rng.uniform(0, 1), rng.uniform(40, 200)
        img[..., c] = c0 + 60 * (a[0] * xx / w + a[1] * yy / h) + 20 * b
    for _ in range(int(rng.integers(5, 25))):
        colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
        cx, cy = int(rng.integers(w)), int(rng.integers(h))
        if rng.random() < 0.5:
            cv2.circle(img, (cx, cy), int(rng.integers(20, min(h, w) // 3)), colour, -1)
        else:
            pts = (rng.normal(0, min(h, w) / 6, (int(rng.integers(3, 7)), 2)) + [cx, cy])
            cv2.fillPoly(img, [pts.astype(np.int32)], colour)
    img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(1, 8)))
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def blank(rng, dpi):
    img, k = _page(rng, dpi)
    h, w = img.shape[:2]
    if rng.random() < 0.5:  # a scanned blank: a shadow and specks
        shade = np.linspace(0, rng.uniform(20, 70), w, dtype=np.float32)[None, :, None]
        img = np.clip(img - shade, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(0, 40))):
        cv2.circle(img, (int(rng.integers(w)), int(rng.integers(h))), int(rng.integers(1, 3)),
                   (int(rng.integers(0, 120)),) * 3, -1)
    return img


def empty_grid(rng, dpi):
    """ECG paper with nothing drawn on it: a blank form, not an ECG."""
    img, k = _page(rng, dpi)
    h, w = img.shape[:2]
    colour = [(180, 180, 255), (160, 160, 160), (170, 210, 170)][rng.integers(3)]
    major = tuple(int(c * 0.8) for c in colour)
    for mm in np.arange(0, max(h, w) / k, 1.0):
        c, t = (major, 2) if round(mm) % 5 == 0 else (colour, 1)
        x = int(round(mm * k))
        if x < w:
            cv2.line(img, (x, 0), (x, h - 1), c, t)
        if x < h:
            cv2.line(img, (0, x), (w - 1, x), c, t)
    return img


def chart(rng, dpi):
    """A line chart: axes, ticks, a legend and a few slow series."""
    img, k = _page(rng, dpi)
    h, w = img.shape[:2]
    x0, x1, y0, y1 = int(0.1 * w), int(0.9 * w), int(0.15 * h), int(0.8 * h)
    cv2.line(img, (x0, y1), (x1, y1), (0, 0, 0), 2)
    cv2.line(img, (x0, y0), (x0, y1), (0, 0, 0), 2)
    for i in range(int(rng.integers(1, 4))):
        t = np.linspace(0, 1, 60)
        y = np.cumsum(rng.normal(0, 1, 60))
        y = (y - y.min()) / (np.ptp(y) + 1e-6)
        pts = np.stack([x0 + t * (x1 - x0), y1 - (0.1 + 0.8 * y) * (y1 - y0)], axis=1)
        colour = tuple(int(c) for c in rng.integers(0, 200, 3))
        cv2.polylines(img, [pts.astype(np.int32)], False, colour, 2, cv2.LINE_AA)
    _text(img, rng, k, top=0.03, bottom=0.1, size_mm=5)
    return img


_MAKERS = dict(text=text_document, table=table, form=form, noise=noise, photo=photo,
               blank=blank, empty_grid=empty_grid, chart=chart)


def make(i: int) -> tuple[str, np.ndarray]:
    """The i-th image of the corpus: (kind, BGR image)."""
    rng = np.random.default_rng(1000 + i)
    kind = KINDS[i % len(KINDS)]
    dpi = float(rng.choice([100, 150, 200, 300]))
    return kind, _MAKERS[kind](rng, dpi)


def receipt(rng, dpi):
    """A till receipt or label: a text strip over ``orientation.ORIENT.tall`` times taller than
    wide, the shape of an ECG strip lying on its side (not in KINDS: the benchmark's corpus stays
    as it was)."""
    k = dpi / 25.4
    w, h = rng.uniform(55, 80), rng.uniform(240, 320)
    img = np.full((int(h * k), int(w * k), 3), int(rng.integers(225, 256)), np.uint8)
    _text(img, rng, k, top=0.03, bottom=0.97, left=0.06, right=0.94)
    return img
