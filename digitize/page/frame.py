"""Stage 3, the frame: the rotation that makes the ink's row profile sharpest (traces run
along the rows), and the first px/mm a page's size implies. (The grid's pitch, measured to
~0.01 % over the whole width, is ``digitize.geometry``'s; ``analyse`` weighs it against the
rows' length.)"""
from __future__ import annotations

import cv2
import numpy as np

from digitize.layouts import ROW_WIDTH_MM


def _profile_sharpness(x: np.ndarray, y: np.ndarray, angle_deg: float, bin_px: float) -> float:
    a = np.deg2rad(angle_deg)
    yr = y * np.cos(a) - x * np.sin(a)
    h = np.bincount(((yr - yr.min()) / bin_px).astype(np.int64))
    return float(np.dot(h, h))


def estimate_skew(mask: np.ndarray, px_per_mm: float, max_deg: float = 12.0) -> float:
    """Rotation (degrees, counter-clockwise in image terms) that levels the trace rows."""
    ys, xs = np.nonzero(mask)
    if len(xs) < 50:
        return 0.0
    if len(xs) > 200_000:  # a fixed subsample: the profile only needs a few points per bin
        sel = np.random.default_rng(0).choice(len(xs), 200_000, replace=False)
        xs, ys = xs[sel], ys[sel]
    xs = xs.astype(np.float64) - mask.shape[1] / 2
    ys = ys.astype(np.float64)
    bin_px = max(1.0, 0.5 * px_per_mm)
    coarse = np.arange(-max_deg, max_deg + 1e-9, 0.5)
    best = coarse[np.argmax([_profile_sharpness(xs, ys, a, bin_px) for a in coarse])]
    fine = np.arange(best - 0.5, best + 0.5 + 1e-9, 0.05)
    return float(fine[np.argmax([_profile_sharpness(xs, ys, a, bin_px) for a in fine])])


def _deskew_matrix(shape: tuple[int, int], angle_deg: float) -> tuple[np.ndarray, tuple[int, int]]:
    """3×3 image → deskewed canvas (rotated by -angle about the centre, enlarged to fit)."""
    h, w = shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle_deg, 1.0)
    # y' = y cos a - x sin a (about the centre): the rotation estimate_skew levels
    a = np.deg2rad(angle_deg)
    nw = int(np.ceil(abs(w * np.cos(a)) + abs(h * np.sin(a))))
    nh = int(np.ceil(abs(h * np.cos(a)) + abs(w * np.sin(a))))
    m[0, 2] += (nw - w) / 2
    m[1, 2] += (nh - h) / 2
    return np.vstack([m, [0, 0, 1]]), (nw, nh)


def size_scale(h: int, w: int) -> float:
    """px/mm from an image's size alone: a strip (over 2.5 times wider than tall) holds a
    250-mm row, a landscape letter or A4 page is ~280 mm wide."""
    return w / ROW_WIDTH_MM if w > 2.5 * h else max(w, h) / 280.0
