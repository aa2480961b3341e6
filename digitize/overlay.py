"""Overlays a reviewer can read: the record as written, drawn over the page it came from.

Each lead's window is outlined and named; its trace, taken from the record (so what is drawn
is what was stored), is drawn thin and half-transparent in whichever of a few colours stands
furthest from the page's own ink and grid, so the ink stays visible beneath it and a trace off
its ink, or a wrong lead name, shows at a glance.

The windows are kept in ``<record>.quality.json`` (``windows``): an overlay can be drawn again
later from the record and the page alone, without converting the page again.
"""
from __future__ import annotations

import cv2
import numpy as np

#: Candidate trace colours (BGR): blue, green, magenta, orange.
PALETTE = ((220, 80, 0), (0, 160, 0), (200, 0, 200), (0, 130, 255))
#: Weight of the drawn trace over the page (the ink under it stays visible).
ALPHA = 0.7
#: Trace width (mm of paper): thinner than a printed trace (~0.3 mm).
TRACE_MM = 0.12
#: Outline half-height above and below a window's baseline (mm), at most.
BOX_HALF_MM = 12.0


def window_records(results, fs: float, speed: float) -> list[dict]:
    """What the overlay needs of each lead window (``LeadResult``), as JSON-able dicts."""
    out = []
    for r in results:
        w, g = r.window, r.window.geom
        t_kept = None
        if r.kept is not None:
            kx = len(r.value_mm) / g.width_mm  # model columns per mm
            ta, tb = (w.t0 + (np.asarray(r.kept, np.float64) + 0.5) / kx / w.speed).tolist()
            t_kept = [round(ta, 4), round(min(tb, w.t_ink_end), 4)]
        out.append(dict(lead=w.lead, t0=round(w.t0, 4), t1=round(w.t1, 4), gain=w.gain,
                        speed=w.speed, x0_mm=round(g.x0_mm, 4), width_mm=round(g.width_mm, 4),
                        centre_mm=round(g.centre_mm, 4), px_per_mm=round(g.px_per_mm, 5),
                        page_to_image=np.round(np.asarray(g.page_to_image, np.float64), 8
                                               ).tolist(),
                        t_kept=t_kept))
    return out


def trace_colour(bgr: np.ndarray) -> tuple[int, int, int]:
    """The palette colour furthest (in Lab's a, b plane) from the page's own colour: the mean
    of its coloured pixels (a grid, mostly), or grey on a black-and-white page."""
    step = max(1, int(max(bgr.shape[:2]) // 800))  # every step-th pixel: thin lines stay
    ab = cv2.cvtColor(np.ascontiguousarray(bgr[::step, ::step]), cv2.COLOR_BGR2LAB
                      ).reshape(-1, 3)[:, 1:].astype(np.float32) - 128
    coloured = ab[np.hypot(ab[:, 0], ab[:, 1]) > 6]
    page = coloured.mean(axis=0) if len(coloured) > 0.002 * len(ab) else np.zeros(2, np.float32)
    best, far = PALETTE[0], -1.0
    for c in PALETTE:
        cl = cv2.cvtColor(np.uint8([[c]]), cv2.COLOR_BGR2LAB)[0, 0, 1:].astype(np.float32) - 128
        d = float(np.hypot(*(cl - page)))
        if d > far:
            best, far = c, d
    return best


def _to_image(page_to_image, x_mm, y_mm, k) -> np.ndarray:
    pts = np.stack([np.asarray(x_mm) * k, np.asarray(y_mm) * k, np.ones(len(x_mm))])
    q = np.asarray(page_to_image, np.float64) @ pts
    return (q[:2] / q[2]).T


def draw_overlay(bgr: np.ndarray, signal: np.ndarray, fs: float, windows: list[dict],
                 leads: tuple[str, ...] | list[str]) -> np.ndarray:
    """The record ``signal`` [n, leads] (mV) drawn over the page at its ``windows``."""
    img = bgr.copy()
    if not windows:
        return img
    k = float(windows[0]["px_per_mm"])
    colour = trace_colour(bgr)
    layer = img.copy()
    thick = max(1, int(round(k * TRACE_MM)))
    n = len(signal)
    for w in windows:
        j = list(leads).index(w["lead"]) if w["lead"] in leads else None
        if j is None or w["t_kept"] is None:
            continue
        s0 = max(0, int(np.ceil(w["t_kept"][0] * fs)))
        s1 = min(n - 1, int(np.floor(w["t_kept"][1] * fs)))
        if s1 <= s0:
            continue
        s = np.arange(s0, s1 + 1)
        v = signal[s, j]
        x_mm = w["x0_mm"] + (s / fs - w["t0"]) * w["speed"]
        y_mm = w["centre_mm"] - v * w["gain"]
        ok = np.isfinite(y_mm)
        # each run of drawn samples is one polyline (a gap in the record is a gap on the page)
        edges = np.flatnonzero(np.diff(np.r_[0, ok.astype(np.int8), 0]))
        for a, b in zip(edges[::2], edges[1::2]):
            if b - a < 2:
                continue
            xy = _to_image(w["page_to_image"], x_mm[a:b], y_mm[a:b], w["px_per_mm"])
            cv2.polylines(layer, [np.round(xy * 4).astype(np.int32)], False, colour, thick,
                          cv2.LINE_AA, shift=2)
    img = cv2.addWeighted(layer, ALPHA, img, 1 - ALPHA, 0)
    font_scale = max(0.4, k * 0.09)
    for w in windows:
        # the rows above and below (windows sharing some of its width; a panel beside it in
        # the same row sits a few mm higher or lower, which says nothing of the row pitch)
        x0, x1 = w["x0_mm"], w["x0_mm"] + w["width_mm"]
        others = [abs(o["centre_mm"] - w["centre_mm"]) for o in windows
                  if o["x0_mm"] < x1 - 1 and o["x0_mm"] + o["width_mm"] > x0 + 1
                  and abs(o["centre_mm"] - w["centre_mm"]) > 3]
        half = min(BOX_HALF_MM, 0.48 * min(others)) if others else BOX_HALF_MM
        x = [w["x0_mm"], w["x0_mm"] + w["width_mm"], w["x0_mm"] + w["width_mm"], w["x0_mm"]]
        y = [w["centre_mm"] - half] * 2 + [w["centre_mm"] + half] * 2
        box = _to_image(w["page_to_image"], x, y, w["px_per_mm"])
        cv2.polylines(img, [np.round(box).astype(np.int32)], True, colour, 1, cv2.LINE_AA)
        org = tuple(int(v) for v in np.round(box[0] + [3, 3]))
        (tw, th), _ = cv2.getTextSize(w["lead"], cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        cv2.rectangle(img, org, (org[0] + tw + 4, org[1] + th + 6), (255, 255, 255), -1)
        cv2.putText(img, w["lead"], (org[0] + 2, org[1] + th + 2), cv2.FONT_HERSHEY_SIMPLEX,
                    font_scale, colour, max(1, int(round(font_scale * 1.5))), cv2.LINE_AA)
    return img


def blur_outside(img: np.ndarray, windows: list[dict], margin_mm: float = 3.0) -> np.ndarray:
    """The page with everything outside its trace rows (header, footer: where a name or an
    ID is printed) blurred past reading (``--anonymize``)."""
    if not windows:
        return cv2.GaussianBlur(img, (0, 0), 12)
    pts = []
    for w in windows:
        m = margin_mm
        x = [w["x0_mm"] - m, w["x0_mm"] + w["width_mm"] + m]
        y = [w["centre_mm"] - BOX_HALF_MM - m, w["centre_mm"] + BOX_HALF_MM + m]
        pts.append(_to_image(w["page_to_image"], [x[0], x[1], x[1], x[0]],
                             [y[0], y[0], y[1], y[1]], w["px_per_mm"]))
    keep = np.zeros(img.shape[:2], np.uint8)
    for p in pts:
        cv2.fillConvexPoly(keep, np.round(p).astype(np.int32), 255)
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, w // 8), max(1, h // 8)), interpolation=cv2.INTER_AREA)
    blurred = cv2.resize(cv2.GaussianBlur(small, (0, 0), 3), (w, h),
                         interpolation=cv2.INTER_LINEAR)
    return np.where(keep[..., None] > 0, img, blurred)
