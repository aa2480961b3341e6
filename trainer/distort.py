"""Image distortions for rendered ECG pages: paper wear, scanner and phone-camera effects.

Every effect is switchable (its parameter at 0/None/False means off) and seeded: each effect
draws its randomness from its own generator ``default_rng([seed, k])``, so switching one effect
off does not change how the others look. Pure numpy/OpenCV, float32 images in 0..255 (BGR).

Order (see ``apply_paper`` and ``apply_capture``):
  paper:   tint → wrinkles → creases/folds → stains → handwriting   (on the flat page)
  capture: rotation + perspective (one homography) → lighting → shadow → blur → binarise →
           sensor noise → JPEG (at encoding time)
Only the homography moves pixels; ground-truth polylines are mapped by the same matrix.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np


@dataclass
class Distortions:
    seed: int = 0
    # paper
    tint: tuple[float, float, float] | None = None  # per-channel (B, G, R) multiplier
    wrinkles: float = 0.0  # shading amplitude, fraction of brightness (≈0.02–0.08)
    blotches: float = 0.0  # dark smudges a few mm to cm across (crumpled, photocopied paper), 0..1
    creases: int = 0  # number of straight creases/folds
    stains: int = 0
    handwriting: int = 0  # number of pen strokes/words
    # capture
    rotation_deg: float = 0.0
    perspective: float = 0.0  # max corner shift as a fraction of the page size
    page_scale: float = 1.0  # < 1: the page lies on a background (phone photo)
    background: tuple[int, int, int] = (235, 235, 235)
    lighting: float = 0.0  # strength of a smooth illumination gradient
    shadow: float = 0.0  # darkness of a soft-edged shadow (0..1)
    blur_sigma: float = 0.0  # px
    binarize: bool = False
    noise_sigma: float = 0.0  # grey levels
    noise_colour: bool = False  # independent noise per channel (else the same in all three)
    jpeg_quality: int = 0  # 0: lossless PNG

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def active(self) -> bool:
        """Whether any effect is on (a clean page skips the float pipeline entirely)."""
        return bool(self.tint is not None or self.wrinkles or self.blotches or self.creases
                    or self.stains
                    or self.handwriting or self.geometric or self.lighting or self.shadow
                    or self.blur_sigma or self.binarize or self.noise_sigma)

    @property
    def geometric(self) -> bool:
        return bool(self.rotation_deg or self.perspective or self.page_scale != 1.0)


def _rng(d: Distortions, k: int) -> np.random.Generator:
    return np.random.default_rng([d.seed & 0xFFFFFFFF, k])


# ----------------------------------------------------------------------------- paper effects

def _smooth_field(rng, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth random field in [-1, 1] of shape (h, w), ``cells`` knots along the long side."""
    gh = max(2, int(round(cells * h / max(h, w))) + 1)
    gw = max(2, int(round(cells * w / max(h, w))) + 1)
    knots = rng.uniform(-1, 1, size=(gh, gw)).astype(np.float32)
    return cv2.resize(knots, (w, h), interpolation=cv2.INTER_CUBIC)


def wrinkle_field(rng, h: int, w: int, strength: float) -> np.ndarray:
    """Multiplicative shading of crumpled paper: many soft ridges of random direction."""
    small = 4  # build at 1/4 resolution: wrinkles are smooth
    hs, ws = max(8, h // small), max(8, w // small)
    acc = np.zeros((hs, ws), np.float32)
    for _ in range(int(rng.integers(12, 30))):
        x0, y0 = rng.uniform(0, ws), rng.uniform(0, hs)
        ang = rng.uniform(0, np.pi)
        length = rng.uniform(0.2, 0.8) * max(hs, ws)
        dx, dy = np.cos(ang) * length / 2, np.sin(ang) * length / 2
        cv2.line(acc, (int(x0 - dx), int(y0 - dy)), (int(x0 + dx), int(y0 + dy)),
                 float(rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 1.0)),
                 thickness=int(rng.integers(1, 4)), lineType=cv2.LINE_AA)
    acc = cv2.GaussianBlur(acc, (0, 0), 2.0)
    # relief shading: the derivative along a light direction turns ridges into light/dark pairs
    gx = cv2.Sobel(acc, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(acc, cv2.CV_32F, 0, 1, ksize=3)
    la = rng.uniform(0, 2 * np.pi)
    shade = np.cos(la) * gx + np.sin(la) * gy
    shade /= max(1e-6, float(np.abs(shade).max()))
    shade += 0.5 * _smooth_field(rng, hs, ws, 4)
    return 1.0 + strength * cv2.resize(shade, (w, h), interpolation=cv2.INTER_LINEAR)


def blotch_field(rng, h: int, w: int, strength: float) -> np.ndarray:
    """Multiplicative darkening by soft smudges of two sizes (about 1/15 and 1/40 of the page's
    long side): the mottled look of crumpled or photocopied paper. Only darkens."""
    f = 0.6 * _smooth_field(rng, h, w, 15) + 0.4 * _smooth_field(rng, h, w, 40)
    return 1.0 - strength * np.clip(f, 0.0, 1.0) ** 0.7


def crease_field(rng, h: int, w: int, n: int) -> np.ndarray:
    """Multiplicative shading of n straight folds: a dark line with a lit flank.

    Each fold only touches a band a few dozen px wide, so only that band is computed.
    """
    field_ = np.ones((h, w), np.float32)
    for _ in range(n):
        vertical = rng.random() < 0.5
        length, across = (h, w) if vertical else (w, h)
        pos = rng.uniform(0.2, 0.8) * across
        tilt = rng.uniform(-0.03, 0.03)
        width = rng.uniform(1.0, 3.0) * max(h, w) / 2000
        dark = rng.uniform(0.08, 0.25)
        reach = 25 * width + 2
        lo = int(max(0, min(pos, pos + tilt * length) - reach))
        hi = int(min(across, max(pos, pos + tilt * length) + reach))
        if hi <= lo:
            continue
        along = np.arange(length, dtype=np.float32)[:, None]
        d = np.arange(lo, hi, dtype=np.float32)[None, :] - pos - tilt * along
        band = (1 - dark * np.exp(-0.5 * (d / width) ** 2)) * \
            (1 + 0.5 * dark * np.exp(-0.5 * ((d - 4 * width) / (6 * width)) ** 2))
        if vertical:
            field_[:, lo:hi] *= band
        else:
            field_[lo:hi, :] *= band.T
    return field_


def add_stains(img: np.ndarray, rng, n: int) -> None:
    """Translucent coffee-like stains, darker at the rim (in place)."""
    h, w = img.shape[:2]
    for _ in range(n):
        r = rng.uniform(0.03, 0.12) * min(h, w)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        x0, x1 = int(max(0, cx - 1.5 * r)), int(min(w, cx + 1.5 * r))
        y0, y1 = int(max(0, cy - 1.5 * r)), int(min(h, cy + 1.5 * r))
        if x1 <= x0 or y1 <= y0:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        ang = rng.uniform(0, np.pi)
        ex, ey = xx - cx, yy - cy
        u = (np.cos(ang) * ex + np.sin(ang) * ey) / r
        v = (-np.sin(ang) * ex + np.cos(ang) * ey) / (r * rng.uniform(0.6, 1.0))
        rho = np.sqrt(u * u + v * v)
        body = np.clip(1.0 - rho, 0, 1) ** 0.3
        rim = np.exp(-0.5 * ((rho - 1.0) / 0.04) ** 2)
        a = (rng.uniform(0.05, 0.2) * body + rng.uniform(0.1, 0.3) * rim)[..., None]
        colour = np.array([rng.uniform(60, 120), rng.uniform(110, 160), rng.uniform(160, 200)],
                          np.float32)  # brownish, BGR
        region = img[y0:y1, x0:x1]
        region += a * (colour - region) * 0.6


_SCRIBBLES = ("ok", "NSR", "?AF", "rpt", "see old", "Dr.", "LBBB?", "MI", "cf. 2/3", "x")


def add_handwriting(img: np.ndarray, rng, n: int, px_per_mm: float) -> None:
    """Pen strokes: smooth random curves and script-font notes in blue or black ink (in place)."""
    h, w = img.shape[:2]
    ink_colours = [(150, 60, 20), (40, 40, 40), (170, 40, 40), (40, 40, 150)]  # BGR
    for _ in range(n):
        colour = np.asarray(ink_colours[int(rng.integers(len(ink_colours)))], np.float32)
        thick = max(1, int(round(rng.uniform(0.2, 0.5) * px_per_mm)))
        mask = np.zeros((h, w), np.uint8)  # OpenCV draws text on 8-bit images only
        if rng.random() < 0.5:
            # smooth curve: integrate a random-walk heading
            k = int(rng.integers(20, 60))
            step = rng.uniform(0.8, 2.5) * px_per_mm
            heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.35, k))
            pts = np.stack([np.cos(heading), np.sin(heading)], 1).cumsum(0) * step
            pts += [rng.uniform(0, w), rng.uniform(0, h)]
            cv2.polylines(mask, [np.round(pts * 16).astype(np.int32)], False, 255, thick,
                          cv2.LINE_AA, shift=4)
            x0, y0 = pts.min(0) - thick - 2
            x1, y1 = pts.max(0) + thick + 2
        else:
            text = _SCRIBBLES[int(rng.integers(len(_SCRIBBLES)))]
            scale = rng.uniform(4, 9) * px_per_mm / 22
            org = (int(rng.uniform(0, w * 0.9)), int(rng.uniform(h * 0.05, h)))
            cv2.putText(mask, text, org, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, scale, 255,
                        thick, cv2.LINE_AA)
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, scale, thick)
            x0, y0 = org[0] - thick - 2, org[1] - th - thick - 2
            x1, y1 = org[0] + tw + thick + 2, org[1] + base + thick + 2
        x0, y0 = int(max(0, x0)), int(max(0, y0))
        ys, xs = np.nonzero(mask[y0:int(max(y0, y1)), x0:int(max(x0, x1))])
        ys += y0
        xs += x0
        if len(ys):
            a = mask[ys, xs].astype(np.float32)[:, None] * (0.9 / 255)
            img[ys, xs] += a * (colour - img[ys, xs])


def apply_paper(img: np.ndarray, d: Distortions, px_per_mm: float) -> np.ndarray:
    """Paper effects on the flat page (float32 BGR, modified and returned)."""
    h, w = img.shape[:2]
    if d.tint is not None:
        img *= np.asarray(d.tint, np.float32)
    shade = None
    if d.wrinkles:
        shade = wrinkle_field(_rng(d, 1), h, w, d.wrinkles)
    if d.blotches:
        b = blotch_field(_rng(d, 10), h, w, d.blotches)
        shade = b if shade is None else shade * b
    if d.creases:
        c = crease_field(_rng(d, 2), h, w, d.creases)
        shade = c if shade is None else shade * c
    if shade is not None:
        img *= shade[..., None]
    if d.stains:
        add_stains(img, _rng(d, 3), d.stains)
    if d.handwriting:
        add_handwriting(img, _rng(d, 4), d.handwriting, px_per_mm)
    return img


# --------------------------------------------------------------------------- capture effects

def homography(d: Distortions, w: int, h: int) -> np.ndarray:
    """3×3 matrix mapping flat-page pixels to output-image pixels (rotation, scale, perspective)."""
    rng = _rng(d, 5)
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    c = np.array([w / 2, h / 2], np.float32)
    a = np.deg2rad(d.rotation_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]], np.float32)
    dst = (src - c) @ rot.T * d.page_scale + c
    if d.perspective:
        dst += rng.uniform(-d.perspective, d.perspective, size=(4, 2)).astype(np.float32) * [w, h]
    return cv2.getPerspectiveTransform(src, dst.astype(np.float32)).astype(np.float64)


def _background(rng, h: int, w: int, colour) -> np.ndarray:
    """A table/scanner-lid background with a little texture."""
    small = np.empty((max(2, h // 8), max(2, w // 8), 3), np.float32)
    small[:] = colour
    small *= (1 + 0.08 * _smooth_field(rng, *small.shape[:2], 6))[..., None]
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def apply_capture(img: np.ndarray, d: Distortions, H: np.ndarray) -> np.ndarray:
    """Scanner/camera effects; ``H`` from ``homography`` (identity when not geometric)."""
    h, w = img.shape[:2]
    if d.geometric:
        # warp onto the background: pixels outside the page keep the background
        out = _background(_rng(d, 6), h, w, d.background)
        cv2.warpPerspective(img, H, (w, h), dst=out, flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_TRANSPARENT)
        img = out
    # illumination and shadows are smooth: build them at 1/8 resolution, then upsample
    hs, ws = max(8, h // 8), max(8, w // 8)
    gain = None
    if d.lighting:
        rng = _rng(d, 7)
        yy = np.linspace(-1, 1, hs, dtype=np.float32)[:, None]
        xx = np.linspace(-1, 1, ws, dtype=np.float32)[None, :]
        ang = rng.uniform(0, 2 * np.pi)
        grad = np.cos(ang) * xx + np.sin(ang) * yy
        cx, cy = rng.uniform(-0.5, 0.5, 2)
        vignette = (xx - cx) ** 2 + (yy - cy) ** 2
        gain = np.clip(1 - d.lighting * (0.3 * (grad + 1) + 0.2 * vignette), 0.2, 1.2)
    if d.shadow:
        rng = _rng(d, 8)
        mask = np.zeros((hs, ws), np.float32)
        # a polygon entering from one edge, like a hand or phone shadow
        edge = int(rng.integers(4))
        depth = rng.uniform(0.15, 0.5)
        pts = [[rng.uniform(0, 1), 0], [rng.uniform(0, 1), 0]]
        pts += [[rng.uniform(0, 1), rng.uniform(0.3, 1) * depth] for _ in range(3)]
        pts = np.array(pts)
        pts = {0: pts, 1: pts[:, ::-1], 2: np.c_[pts[:, 0], 1 - pts[:, 1]],
               3: np.c_[1 - pts[:, 1], pts[:, 0]]}[edge]
        poly = (pts * [ws, hs]).astype(np.int32)
        cv2.fillPoly(mask, [cv2.convexHull(poly)], 1.0)
        mask = cv2.GaussianBlur(mask, (0, 0), 0.03 * max(hs, ws))
        shade = 1 - d.shadow * mask
        gain = shade if gain is None else gain * shade
    if gain is not None:
        img *= cv2.resize(gain, (w, h), interpolation=cv2.INTER_LINEAR)[..., None]
    if d.blur_sigma:
        img = cv2.GaussianBlur(img, (0, 0), d.blur_sigma)
    if d.binarize:
        grey = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY)
        block = max(3, (min(h, w) // 20) | 1)
        bw = cv2.adaptiveThreshold(grey, 255, cv2.ADAPTIVE_THRESH_MEAN_C,
                                   cv2.THRESH_BINARY, block, 12)
        img = np.repeat(bw[..., None].astype(np.float32), 3, axis=2)
    if d.noise_sigma:
        # cv2.randn is ~5x faster than numpy's normal; seed OpenCV's generator for determinism
        cv2.setRNGSeed(int(_rng(d, 9).integers(2**31)))
        # one channel of 3w columns: cv2.randn takes its sigma per channel
        n = np.empty((h, 3 * w) if d.noise_colour else (h, w), np.float32)
        cv2.randn(n, 0.0, float(d.noise_sigma))
        img += n.reshape(h, w, 3) if d.noise_colour else n[..., None]
    return img
