"""Stage 1, the sheet: a photographed page on a background. ``page_homography`` flattens a
sheet whose outline is a clear quadrilateral (rotation and perspective undone);
``paper_region`` marks the paper of one that cannot be flattened, so that the background
holds no ink."""
from __future__ import annotations

import functools

import cv2
import numpy as np

from digitize.geometry import grid_pitch
from digitize.page.core import Row
from digitize.page.ink import _brightest
from digitize.page.params import SHEET


def paper_region(bgr: np.ndarray, px_per_mm: float) -> np.ndarray | None:
    """uint8 mask (1 = on the paper, 2 mm in from its edge) of a photographed sheet on a darker
    background; None where the paper fills the image (a scan) or no clear sheet stands out."""
    h, w = bgr.shape[:2]
    s = min(1.0, 600.0 / max(h, w))
    small = cv2.resize(bgr, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
    small = _brightest(small)
    small = cv2.GaussianBlur(small, (0, 0), 2)
    _, bright = cv2.threshold(small, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    # a trace that runs to the sheet's edge must not cut the paper in two
    bright = cv2.morphologyEx(bright, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    n, lab, stats, _ = cv2.connectedComponentsWithStats(bright, 8)
    if n < 2:
        return None
    i = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    contours, _ = cv2.findContours((lab == i).astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    c = max(contours, key=cv2.contourArea)
    filled = np.zeros_like(bright)
    cv2.drawContours(filled, [c], -1, 1, -1)  # the sheet with its ink
    area = filled.mean()
    hull = cv2.contourArea(cv2.convexHull(c))
    if not 0.3 < area < 0.97 or cv2.contourArea(c) < 0.9 * hull:
        return None
    # a background, not just the other side of a trace or a shadow on the paper: clearly darker
    if np.median(small[filled == 0]) > 0.8 * np.median(small[filled == 1]):
        return None
    region = cv2.resize(filled, (w, h), interpolation=cv2.INTER_NEAREST)
    if _grid_outside(bgr, region) >= SHEET.background_grid:
        return None  # the paper's own grid under a stain: a scan
    e = max(3, int(round(2 * px_per_mm)) | 1)
    return cv2.erode(region, np.ones((e, e), np.uint8))


def _grid_outside(bgr: np.ndarray, region: np.ndarray) -> float:
    """The grid comb's strength (``geometry.grid_pitch``) outside ``region`` (the paper
    blanked out to the outside's median grey): a background shows none."""
    out = region == 0
    if not out.any():
        return 0.0
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr.copy()
    grey[~out] = int(np.median(grey[out]))
    return float(grid_pitch(grey).strength)


def _on_paper(rows: list[Row], paper: np.ndarray | None, k: float,
              flat_height: int | None = None) -> list[Row]:
    """Rows whose centre line lies mostly on the paper (none left: no trace was seen, and
    ``analyse`` looks again for a fainter pen). A flattened photo (``flat_height`` given) is
    all paper, its edges at the image's: a "row" within 4 mm of its top or bottom is that
    edge, not a trace."""
    if flat_height is not None:
        rows = [r for r in rows if 4 * k < r.y < flat_height - 4 * k]
    if paper is None or not rows:
        return rows
    h, w = paper.shape
    keep = []
    for r in rows:
        xs = np.arange(int(max(0, r.x_left)), int(min(w, r.x_right)))
        y = int(min(h - 1, max(0, round(r.y))))
        if len(xs) and paper[y, xs].mean() >= 0.5:
            keep.append(r)
    return keep


def page_homography(bgr: np.ndarray) -> tuple[np.ndarray, tuple[int, int]] | None:
    """A photographed page on a darker background → (3×3 image → flat page, (w, h)).

    The paper is the largest bright region; where it is a clear quadrilateral that leaves
    background around it, the homography to its rectangle undoes rotation and perspective.
    Scans (paper to the edges) and anything unclear return None: rotation is then corrected
    by ``analyse`` alone.
    """
    h, w = bgr.shape[:2]
    s = 800.0 / max(h, w)
    small = cv2.resize(bgr, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
    v = small if small.ndim == 2 else functools.reduce(cv2.max, cv2.split(small))  # brightest
    v = cv2.GaussianBlur(v, (0, 0), 2)
    _, bright = cv2.threshold(v, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    bright = cv2.morphologyEx(bright, cv2.MORPH_CLOSE, np.ones((15, 15), np.uint8))
    found = _homography_from_region(bgr, bright, s)
    if found is None:  # a shadow can cut the sheet's bright part in pieces: take them all
        found = _homography_from_region(bgr, bright, s, min_piece=0.01)
    if found is None and small.ndim == 3:
        # ... or take a bite out of it. Shading darkens paper and background alike but leaves
        # their colours: on a coloured background (a desk, a cloth) the sheet is its
        # least-saturated region, shadows and all (own val 00194, a strip photographed with a
        # shadow over its right end; on a grey background this finds no clear sheet)
        blur = cv2.GaussianBlur(small, (0, 0), 2)
        hi = functools.reduce(cv2.max, cv2.split(blur)).astype(np.float32)
        lo = functools.reduce(cv2.min, cv2.split(blur)).astype(np.float32)
        sat = ((hi - lo) / np.maximum(hi, 1.0) * 255).astype(np.uint8)
        _, bright = cv2.threshold(sat, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
        bright = cv2.morphologyEx(bright, cv2.MORPH_CLOSE, np.ones((15, 15), np.uint8))
        found = _homography_from_region(bgr, bright, s)
    return found


def _homography_from_region(bgr: np.ndarray, bright: np.ndarray, s: float,
                            min_piece: float | None = None
                            ) -> tuple[np.ndarray, tuple[int, int]] | None:
    """The sheet's homography from a mask of it on the reduced image (scale ``s``): the
    largest bright region, or with ``min_piece`` the hull of every region of at least that
    share of the image."""
    h, w = bgr.shape[:2]
    contours, _ = cv2.findContours(bright, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    total = bright.shape[0] * bright.shape[1]
    if min_piece is None:
        c = max(contours, key=cv2.contourArea)
    else:
        pieces = [p for p in contours if cv2.contourArea(p) >= min_piece * total]
        if len(pieces) < 2:
            return None
        c = cv2.convexHull(np.concatenate(pieces))
    area = cv2.contourArea(c) / total
    if not 0.3 < area < 0.97:
        return None
    hull = cv2.convexHull(c)
    hs, ws = bright.shape[:2]
    # the paper's sides: the strongest straight lines of the region's outline, ignoring the
    # image frame (a corner outside the frame cuts the outline along it)
    region = np.zeros((hs, ws), np.uint8)
    cv2.drawContours(region, [hull], -1, 255, -1)
    edge = cv2.Canny(region, 50, 150)
    edge[:4], edge[-4:], edge[:, :4], edge[:, -4:] = 0, 0, 0, 0
    lines = cv2.HoughLines(edge, 1, np.pi / 720, max(30, min(hs, ws) // 8))
    if lines is None:
        return None
    horiz, vert = [], []
    for rho, theta in lines[:, 0]:
        (horiz if abs(np.sin(theta)) > 0.7 else vert).append((float(rho), float(theta)))

    def two_sides(cands, span):  # strongest line, then the strongest far from it
        if not cands:
            return None
        first = cands[0]
        for rho, theta in cands[1:]:
            if abs(abs(rho) - abs(first[0])) > 0.3 * span and abs(np.sin(theta - first[1])) < 0.4:
                return first, (rho, theta)
        return None

    hv, vv = two_sides(horiz, hs), two_sides(vert, ws)
    if hv is None or vv is None:
        return None

    def meet(l1, l2):
        (r1, t1), (r2, t2) = l1, l2
        a_ = np.array([[np.cos(t1), np.sin(t1)], [np.cos(t2), np.sin(t2)]])
        return np.linalg.solve(a_, [r1, r2])

    corners = np.array([meet(hh, vv_) for hh in hv for vv_ in vv])
    mid = corners.mean(axis=0)
    corners = corners[np.argsort(np.arctan2(*(corners - mid).T[::-1]))]  # around the centre
    q = _refine_outline(bgr, corners / s, reach=max(8.0, 6.0 / s), inset=outline_inset(bgr.shape))
    if not cv2.isContourConvex(q.astype(np.float32).reshape(-1, 1, 2)):
        return None
    # the quad must hold the bright region closely (a torn or folded outline is not a page)
    if cv2.contourArea(q.astype(np.float32)) * s * s > 1.15 * cv2.contourArea(hull):
        return None
    margin = np.array([q[:, 0].min(), q[:, 1].min(), w - q[:, 0].max(), h - q[:, 1].max()])
    if (margin > 0.01 * max(w, h)).sum() < 1:
        return None  # paper to the edges: a scan
    sm, df = q.sum(axis=1), np.diff(q, axis=1).ravel()
    tl, br, tr, bl = q[np.argmin(sm)], q[np.argmax(sm)], q[np.argmin(df)], q[np.argmax(df)]
    src = np.array([tl, tr, br, bl], np.float32)
    pw = max(np.linalg.norm(tr - tl), np.linalg.norm(br - bl))
    ph = max(np.linalg.norm(bl - tl), np.linalg.norm(br - tr))
    # side lengths are foreshortened: give the flat page the nearest paper shape (letter, A4,
    # either orientation) so that its pixels are square
    aspect = min((279.4 / 215.9, 297.0 / 210.0, 215.9 / 279.4, 210.0 / 297.0),
                 key=lambda a: abs(np.log(a * ph / pw)))
    if abs(np.log(aspect * ph / pw)) < 0.12:
        ph = pw / aspect
    pw, ph = int(round(pw)), int(round(ph))
    if pw < 100 or ph < 100:
        return None
    dst = np.array([[0, 0], [pw - 1, 0], [pw - 1, ph - 1], [0, ph - 1]], np.float32)
    return cv2.getPerspectiveTransform(src, dst).astype(np.float64), (pw, ph)


def outline_inset(shape: tuple) -> float:
    """Px (of the photo) that a flattened sheet is cut inside its measured outline."""
    return max(2.0, SHEET.outline_inset * max(shape[:2]))


def _refine_outline(bgr: np.ndarray, quad: np.ndarray, reach: float, inset: float = 0.0
                    ) -> np.ndarray:
    """The paper's corners to a pixel or better: each side of ``quad`` (corners in order, full
    resolution, found on a reduced image) is moved to the largest sharp dark-to-bright step in
    log-brightness across it, sampled at points along the side and fitted robustly, then moved
    ``inset`` px onto the paper (a sliver of background along the flattened page's border
    would join the rows). Shading is smooth and multiplies paper and background alike, so the
    step stays sharp under a shadow; points outside the image or without a clear step (a side
    cut by the frame) are skipped, and a side with too few of them keeps its first estimate."""
    v = cv2.GaussianBlur(_brightest(bgr).astype(np.float32), (0, 0), 1.0)
    centre = quad.mean(axis=0)
    # inward a little (the first estimate may lie outside the sheet: a side that leaves the
    # image is extrapolated), outward further (a shadow or a dim band can cut the bright
    # region well inside the paper's edge)
    outward = max(reach, SHEET.outline_search * max(v.shape))
    inward = max(reach, 0.25 * SHEET.outline_search * max(v.shape))
    offs = np.arange(-int(outward), int(inward) + 1, dtype=np.float64)
    win = 6  # px each side of a step, past its blur
    sides = []
    for i in range(4):
        p0, p1 = quad[i], quad[(i + 1) % 4]
        length = float(np.linalg.norm(p1 - p0))
        u = (p1 - p0) / max(length, 1e-9)
        nrm = np.array([-u[1], u[0]])
        if np.dot(centre - p0, nrm) < 0:
            nrm = -nrm  # towards the paper
        t = np.linspace(0.08, 0.92, 48) * length
        at = p0 + t[:, None] * u
        pts = at[:, None, :] + offs[None, :, None] * nrm
        prof = cv2.remap(v, pts[..., 0].astype(np.float32), pts[..., 1].astype(np.float32),
                         cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=-1.0)
        inside_img = prof >= 0
        lp = np.log(np.maximum(prof, 1.0))
        # step at j (between samples j and j+1): mean log-brightness over `win` px on the
        # paper side minus that on the far side, 1 px of blur left out each side
        c = np.pad(np.cumsum(lp, axis=1), ((0, 0), (1, 0)))
        cv_ = np.pad(np.cumsum(inside_img, axis=1), ((0, 0), (1, 0)))
        n = lp.shape[1]
        j = np.arange(win + 1, n - win - 2)
        inner = (c[:, j + 2 + win] - c[:, j + 2]) / win
        outer = (c[:, j] - c[:, j - win]) / win
        valid = ((cv_[:, j + 2 + win] - cv_[:, j - win]) == 2 * win + 2)
        sharp = lp[:, j + 2] - lp[:, j - 1]
        step = np.where(valid & (sharp >= 0.5 * (inner - outer)), inner - outer, 0.0)
        best = np.argmax(step, axis=1)
        rows = np.arange(len(t))
        ok = step[rows, best] >= SHEET.outline_min_step
        jj = j[best]
        # sub-pixel: the steepest rise of the brightness within the step
        g = np.diff(prof, axis=1)
        near = np.clip(jj[:, None] + np.arange(-1, 2)[None, :], 0, g.shape[1] - 1)
        gm = g[rows[:, None], near]
        jm = near[rows, np.argmax(gm, axis=1)]
        a_, b_, c_ = (g[rows, np.clip(jm - 1, 0, g.shape[1] - 1)], g[rows, jm],
                      g[rows, np.clip(jm + 1, 0, g.shape[1] - 1)])
        den = a_ - 2 * b_ + c_
        sub = np.where(den < 0, 0.5 * (a_ - c_) / np.where(den < 0, den, -1.0), 0.0)
        e = offs[0] + jm + 0.5 + np.clip(sub, -0.5, 0.5)  # edge offset along the normal
        line = (p0 + inset * nrm, u)
        if ok.sum() >= 8:
            tt, ee = t[ok], e[ok]
            # robust: the line through two of the points that most others lie within 1.5 px
            # of (steps picked off the edge — text, a shadow's rim — can be many), refitted
            i1, i2 = np.triu_indices(len(tt), 1)
            slope = (ee[i2] - ee[i1]) / (tt[i2] - tt[i1])
            pred = ee[i1][:, None] + slope[:, None] * (tt[None, :] - tt[i1][:, None])
            inl = np.abs(pred - ee[None, :]) < 1.5
            keep = inl[int(np.argmax(inl.sum(axis=1)))]
            if keep.sum() >= 8:
                coef = np.polyfit(tt[keep], ee[keep] + inset, 1)
                q0 = p0 + coef[1] * nrm
                q1 = p0 + length * u + (coef[1] + coef[0] * length) * nrm
                line = (q0, (q1 - q0) / np.linalg.norm(q1 - q0))
        sides.append(line)
    out = []
    for i in range(4):  # corner i: where side i-1 meets side i
        (a0, da), (b0, db) = sides[i - 1], sides[i]
        m = np.array([da, -db]).T
        if abs(np.linalg.det(m)) < 1e-6:
            out.append(quad[i])
            continue
        ta = np.linalg.solve(m, b0 - a0)[0]
        out.append(a0 + ta * da)
    return np.array(out)
