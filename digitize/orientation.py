"""Pages scanned sideways or upside down (no EXIF to say so): read them upright.

Nothing is rotated on a hunch. A page is first read as it lies; only a read that looks wrong
is tried again turned:

- **any turn**: the page could not be read, or was read without calibration pulses and
  without limb leads that check out (a sideways page can still yield rows that fit a layout).
  The three turns are read; the best replaces the first read only where its score
  (``score``: pulses, limb-lead relations, upward swing, a multi-column layout, confidence) is
  higher by ``sideways_margin``. A page that cannot be read and shows no ECG
  evidence as it lies is also tried turned (a photographed page's grid may not be measured).
- **a strip on its side**: an image over ``tall`` times taller than it is wide is no printed
  ECG page (portrait pages are at most ~1.5 times taller): it is tried turned, and a turned
  read of one row is credible (the final ECG-evidence check still applies to it).
- **upside down** (180 degrees), for a read whose limb leads do check out (but not so well,
  on a page of several columns, that it cannot be upside down: ``upright_rel``): it has fewer
  than two calibration pulses (a pulse is only recognised rising from its baseline at a row's
  start, so a page turned over shows none) and its traces swing further down than up
  (``asymmetry`` < 0: R waves point up in most leads). The turned read replaces it where it
  shows pulses, or where its traces swing up by ``flip_gain`` more without its limb leads
  checking out worse by more than ``flip_rel_slack``.
  A one-row read (a strip: no limb leads to check, no pulse to show) is turned over only
  where its beats' time direction also gains ``mirror_dir`` or more: turned over, time runs
  backwards and the trace swings the other way, so both cues must agree (a V1 strip's deep
  S waves swing down, but its beats still run forwards).

- **mirrored** (a scan of the sheet's back, a transparency turned over): a mirrored page reads
  as a time-reversed ECG that obeys every relation the other checks use. Beats say which way
  time runs: in each lead's average beat the T wave after the QRS outweighs the P wave before
  it (``time_direction`` > 0). A read without left-hand pulses (a mirrored page's pulses stand
  at the rows' right ends) whose beats run backwards (``time_direction`` < -``mirror_dir``) is
  read again mirrored, and the mirrored read is kept where its beats run forwards by as much
  and it scores no worse than ``mirror_slack`` below the first.
  On a page of several columns a mirror also swaps the columns: the first column read holds
  the chest leads the printer put last, so the limb leads stop checking out. A multi-column
  read without left-hand pulses whose limb leads miss by more than ``mirror_rel`` is read
  mirrored too, and the mirrored read is kept where ``mirror_gain`` — half the gain in beat
  direction plus the gain in limb-lead residual — exceeds ``mirror_gain`` (a page printed
  with its pulses on the right loses as much by mirroring as a mirrored page gains).

Thresholds (``ORIENT``, an ``OrientationParams``) were chosen on the ecg-image-kit val pages,
the real scans and our own val renders, read as they lie and turned (benchmarks/orientation.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

ROTATIONS = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180,
             270: cv2.ROTATE_90_COUNTERCLOCKWISE}
WEAK_LAYOUTS = ("strip", "6x1", "12x1")


@dataclass(frozen=True)
class OrientationParams:
    """When a read is tried turned, mirrored or flipped, and when that read is kept (the cues
    above); chosen on val reads (benchmarks/orientation.py)."""
    #: A turned read replaces a sideways-suspect one where its ``score`` is this much higher.
    sideways_margin: float = 1.0
    #: A read turned over (180) must swing up this much more (``asymmetry``), its limb leads
    #: checking out no worse than ``flip_rel_slack`` more.
    flip_gain: float = 0.4
    flip_rel_slack: float = 0.1
    #: What a turned read must show of its own (val: righted eik pages >= 4 pulses or limb leads
    #: <= 0.15; generated non-ECG images turned: <= 2 pulse-like marks, limbs >= 0.45).
    credible_pulses: int = 3
    credible_rel: float = 0.35
    #: Height over width past which an image is a strip lying on its side.
    tall: float = 2.5
    #: |time_direction| that counts. Val: upright reads of own renders, ecg-image-kit pages and
    #: real scans lie at most 0.23 below 0 (a pulse-less 12x1 render, wrongly mirrored at a
    #: threshold of 0.1); 75 % of the same reads time-reversed lie under -0.25.
    mirror_dir: float = 0.25
    #: The share of the beat interval either side of an R peak that ``time_direction`` looks at
    #: (at most 0.4 s). Val (189 upright reads: own fold-8 renders, ecg-image-kit val pages, real
    #: scans): with 0.4 s whatever the rate, 27.0 % lay under ORIENT.mirror_dir (lowest -0.21); with
    #: 0.45 RR, 14.3 % (lowest -0.22).
    rr_share: float = 0.45
    #: A mirrored read is kept only where it scores no worse than this below the first.
    mirror_slack: float = 0.5
    #: Multi-column reads. Val (ecg-image-kit clean+bw, own fold-8 renders, read as printed and
    #: mirrored): mirrored multi-column pages' limb leads miss by 0.34 or more (upright pages
    #: printed with right-hand pulses: 0.18 at most); their mirror_gain is 0.20 or more, that of
    #: pages read the right way round -0.03 or less.
    mirror_rel: float = 0.25
    mirror_gain: float = 0.1
    #: Limb-lead residual under which a multi-column read is not suspected upside down. Val
    #: (ecg-image-kit clean+bw and own fold-8 multi-column renders, read turned over): 0.30 or
    #: more; 100 own 3x4 test-split renders (benchmarks/digitize_speed.py): 2 pulse-less pages
    #: with limb leads at 0.05-0.12 were read a second time turned over for nothing.
    upright_rel: float = 0.2


ORIENT = OrientationParams()


def time_direction(sig: np.ndarray, fs: float) -> float:
    """Median over the leads of (after - before) / (after + before), where after and before
    are the average beat's absolute deviation 0.1-0.4 s after and before its R peak — but no
    further than 0.45 RR, so that the window before holds the P wave, not the previous
    beat's T wave (at 100 bpm it did): > 0 where time runs left to right (the T wave follows
    the QRS), < 0 where it runs backwards."""
    from digitize.metrics import r_peaks
    out = []
    a = int(0.1 * fs)
    for j in range(sig.shape[1]):
        idx = np.flatnonzero(np.isfinite(sig[:, j]))
        if len(idx) < 2 * fs:
            continue
        x = sig[idx[0]:idx[-1] + 1, j]
        if not np.isfinite(x).all():
            continue
        x = x - np.median(x)
        p = r_peaks(x, fs)
        if len(p) < 2:
            continue
        b = int(min(0.4 * fs, ORIENT.rr_share * np.median(np.diff(p))))
        if b <= a + 2:
            continue
        p = p[(p - b >= 0) & (p + b < len(x))]
        if len(p) < 2:
            continue
        t = np.mean([x[q - b:q + b + 1] for q in p], axis=0)
        t = np.abs(t - np.median(t))
        before, after = t[:b - a + 1].sum(), t[b + a:].sum()
        out.append((after - before) / (after + before + 1e-9))
    return float(np.median(out)) if out else 0.0


def _columns(res) -> bool:
    """A read of several columns whose limb leads can be checked."""
    return res.layout not in WEAK_LAYOUTS and _cues(res)[1] is not None


def mirror_suspect(res, fs: float) -> bool:
    if isinstance(res, Exception) or any(r.pulse == "left" for r in res.geometry.rows):
        return False
    if _columns(res) and _cues(res)[1] > ORIENT.mirror_rel:
        return True
    return time_direction(res.signal, fs) < -ORIENT.mirror_dir


def mirror_gain(alt, first, fs: float) -> float:
    """How much more the mirrored read ``alt`` looks read the right way round than ``first``:
    half the gain in beat direction plus the drop in limb-lead residual."""
    gain = (time_direction(alt.signal, fs) - time_direction(first.signal, fs)) / 2
    return gain + _cues(first)[1] - _cues(alt)[1]


def better_mirrored(alt, first, fs: float) -> bool:
    if isinstance(alt, Exception) or score(alt) < score(first) - ORIENT.mirror_slack:
        return False
    if _columns(alt) and _columns(first):
        return mirror_gain(alt, first, fs) > ORIENT.mirror_gain
    return time_direction(alt.signal, fs) > ORIENT.mirror_dir


def oriented(bgr: np.ndarray, deg: int, mirrored: bool = False) -> np.ndarray:
    """The page turned clockwise by ``deg``, then mirrored left to right where ``mirrored``."""
    out = rotated(bgr, deg)
    return cv2.flip(out, 1) if mirrored else out


def rotated(bgr: np.ndarray, deg: int) -> np.ndarray:
    """The page turned clockwise by ``deg`` (0, 90, 180, 270)."""
    return bgr if deg % 360 == 0 else cv2.rotate(bgr, ROTATIONS[deg % 360])


def asymmetry(sig: np.ndarray) -> float:
    """Median over the leads of how much further the trace swings up than down (-1..1)."""
    out = []
    for j in range(sig.shape[1]):
        x = sig[:, j]
        x = x[np.isfinite(x)]
        if len(x) < 200:
            continue
        m = float(np.median(x))
        up, down = np.percentile(x, 99.5) - m, m - np.percentile(x, 0.5)
        out.append((up - down) / (up + down + 1e-9))
    return float(np.median(out)) if out else 0.0


def _cues(res) -> tuple[int, float | None, float]:
    pulses = int(sum(r.pulse != "none" for r in res.geometry.rows))
    e = [v for v in (res.quality.get("einthoven") or {}).values()
         if v is not None and np.isfinite(v)]
    return pulses, (min(e) if e else None), asymmetry(res.signal)


def score(res) -> float:
    """How much a read looks like an ECG read the right way up (a failed read: -inf)."""
    if isinstance(res, Exception):
        return float("-inf")
    pulses, rel, asym = _cues(res)
    conf = np.mean([q["confidence"] for q in res.quality["leads"].values()]) \
        if res.quality["leads"] else 0.0
    return (3.0 * (pulses >= 2) + (2.0 * (1 - min(rel, 1.0)) if rel is not None else 0.0)
            + asym + (res.layout not in WEAK_LAYOUTS) + float(conf))


def turn_credible(res) -> bool:
    """A turned read is taken only where it shows strong ECG cues of its own —
    ``ORIENT.credible_pulses`` pulses or more, or limb leads within ``ORIENT.credible_rel``: a
    text page turned a quarter can yield a 'strip' with a pulse-like mark, a table a 12x1 whose limb
    leads agree to 0.45 by chance, a chart two pulse-like marks. (So a strip turned on its
    side, without pulses, is not righted.)"""
    if isinstance(res, Exception):
        return False
    pulses, rel, _ = _cues(res)
    return pulses >= ORIENT.credible_pulses or (rel is not None and rel <= ORIENT.credible_rel)


def _pulsed(res, pulses: int) -> bool:
    """Calibration pulses at the start of two rows, or of a one-row page's only row: a pulse
    is only recognised rising from its baseline at a row's left end, so the page lies as
    printed."""
    return pulses >= min(2, len(res.geometry.rows))


def _steady_strip(res, fs: float) -> bool:
    """A one-row read whose lead beats at a steady rate, read with confidence
    (``digitize.evidence.beats_cue``): a rhythm strip lying as printed. Turned a quarter, a
    page's ink does not read as one confident row of regular beats."""
    if len(res.geometry.rows) != 1:
        return False
    from digitize.evidence import beats_cue
    return bool(beats_cue(res.signal, res.quality, fs)["ecg"])


def sideways_suspect(res, fs: float = 500.0) -> bool:
    """Worth reading turned a quarter (or a half): unreadable, or neither pulses nor limb
    leads that check out nor (a strip) steady confident beats. A pulse-less strip was read
    four times over for nothing."""
    if isinstance(res, Exception):
        return True
    pulses, rel, _ = _cues(res)
    return not _pulsed(res, pulses) and (rel is None or rel > 0.5) \
        and not _steady_strip(res, fs)


def upside_down_suspect(res) -> bool:
    """No pulses and traces that swing further down than up — unless the read has several
    columns whose limb leads check out to ``ORIENT.upright_rel``: turned over, a page's columns
    swap, so its limb leads would not."""
    if isinstance(res, Exception):
        return False
    pulses, rel, asym = _cues(res)
    if _columns(res) and rel <= ORIENT.upright_rel:
        return False
    return not _pulsed(res, pulses) and asym < 0


def better_turned(turned, first) -> bool:
    if isinstance(turned, Exception):
        return False
    p1, r1, a1 = _cues(first)
    p2, r2, a2 = _cues(turned)
    if p2 >= 2 > p1:
        return True
    rel_ok = r1 is None or r2 is None or r2 <= r1 + ORIENT.flip_rel_slack
    return a2 - a1 >= ORIENT.flip_gain and rel_ok


def strip_turned_over(turned, first, fs: float) -> bool:
    """A one-row read turned over (180) that swings up by ``ORIENT.flip_gain`` more and whose beats
    run forwards by ``ORIENT.mirror_dir`` more: both cues that a strip was upside down."""
    if isinstance(turned, Exception) or len(first.geometry.rows) != 1 \
            or len(turned.geometry.rows) != 1:
        return False
    gain = time_direction(turned.signal, fs) - time_direction(first.signal, fs)
    return asymmetry(turned.signal) - asymmetry(first.signal) >= ORIENT.flip_gain \
        and gain >= ORIENT.mirror_dir


def turned_over_better(flipped, first, fs: float) -> bool:
    """A sheet scanned from its back the other way up is flipped top to bottom (turned 180
    and mirrored): read as it lies its pulses hang down from their rows and are not seen,
    while its beats still run forwards and its columns keep their place, so neither the
    turn nor the mirror alone rights it. Flipped back (``flipped``) it is taken where that
    read is credible, shows pulses at its rows' starts that ``first`` did not, its beats run
    forwards and it scores higher."""
    if isinstance(flipped, Exception) or isinstance(first, Exception):
        return False
    return turn_credible(flipped) and _pulsed(flipped, _cues(flipped)[0]) \
        and not _pulsed(first, _cues(first)[0]) and time_direction(flipped.signal, fs) > 0 \
        and score(flipped) > score(first)


def tall(bgr: np.ndarray) -> bool:
    """An image over ``ORIENT.tall`` times taller than wide: a strip lying on its side."""
    return bgr.shape[0] > ORIENT.tall * bgr.shape[1]


def one_row(res) -> bool:
    return not isinstance(res, Exception) and len(res.geometry.rows) == 1
