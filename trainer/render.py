"""Render clinical ECG paper from a 12-lead signal, with exact ground truth.

``sample_spec(rng, layout, style)`` draws every visual choice of a page into a ``PageSpec``;
``render_page(signal, fs, spec)`` draws it and returns the image, the NaN-masked ground-truth
signal and a JSON-able sidecar; ``write_page`` writes ``<name>.png|jpg``, ``<name>.hea/.dat`` and
``<name>.json``. Pure numpy/OpenCV; deterministic for a given seed.

Pixel convention (image and sidecar): OpenCV's — pixel (i, j) has its centre at x = i, y = j,
so a point at page millimetres (X, Y) lies at pixel (X·px_per_mm − 0.5, Y·px_per_mm − 0.5).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from digitize.leads import CHEST_LEADS, LEADS
from digitize.wfdb_writer import write_record
from trainer import distort
from trainer.distort import Distortions
from trainer.layouts import LAYOUTS, PAPERS, ROW_WIDTH_MM, STRIP_SIZE_MM, plan_page

#: 'rough': a hard scan or photocopy (a dark, colour-cast page, strong sensor noise, mottled and
#: creased paper, rotation up to ~5°): what other generators' "scan" pages look like
STYLES = ("clean", "scan", "photo", "rough")
FORMAT = "ecg-render/1"

#: Grid colours (major line, BGR). Minor lines use the same hue at a lower alpha.
GRID_COLOURS = {
    "red": (60, 60, 225), "pink": (170, 140, 245), "orange": (60, 140, 240),
    "green": (90, 160, 60), "blue": (220, 120, 70), "grey": (140, 140, 140),
    "black": (40, 40, 40),
}
FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
         cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_COMPLEX_SMALL)


@dataclass
class PageSpec:
    """Everything that decides how a page looks. Lengths in mm, speed mm/s, gain mm/mV."""

    layout: str = "strip"
    style: str = "clean"
    paper: str = "strip"  # 'strip', 'letter' or 'a4'
    dpi: float = 200.0
    speed: float = 25.0
    gain_limb: float = 10.0
    gain_chest: float = 10.0
    rhythm_leads: tuple[str, ...] = ("II",)
    lead_group: str = "limb"  # which six leads a 6x1 page shows
    # geometry
    header_mm: float = 0.0
    footer_mm: float = 0.0
    x_start_mm: float = 0.0
    # grid
    grid: str = "lines"  # 'lines', 'dotted', 'none'
    grid_colour: str = "red"
    grid_minor_alpha: float = 0.35
    grid_major_alpha: float = 0.7
    grid_minor_width_mm: float = 0.08
    grid_major_width_mm: float = 0.2
    grid_offset_mm: tuple[float, float] = (0.0, 0.0)
    paper_colour: tuple[int, int, int] = (255, 255, 255)  # BGR
    # ink
    trace_colour: tuple[int, int, int] = (0, 0, 0)
    trace_width_mm: float = 0.25
    antialias: bool = True
    text_colour: tuple[int, int, int] = (0, 0, 0)
    font: int = cv2.FONT_HERSHEY_SIMPLEX
    label_height_mm: float = 3.0
    labels: bool = False
    header: bool = False
    separators: str = "none"  # 'none', 'tick', 'full', 'bar'
    pulse: str = "none"  # 'none', 'left', 'right'
    pulse_width_s: float = 0.2
    # other printers' conventions (``sample_spec(foreign=...)``): a thick separator bar at each
    # later panel's start (width, half height; drawn over the trace or under it), the label
    # just after a panel's start below the trace ('start') instead of above it ('above'), and
    # the pulse's foot and the gap after it (mm) down to nothing, so the first QRS touches it
    bar_width_mm: float = 0.5
    bar_half_mm: float = 5.0
    bar_on_top: bool = True
    label_place: str = "above"
    pulse_tail_mm: float = 1.0
    pulse_gap_mm: float = 1.0
    distortions: Distortions = field(default_factory=Distortions)

    @property
    def px_per_mm(self) -> float:
        return self.dpi / 25.4

    @property
    def page_mm(self) -> tuple[float, float]:
        return STRIP_SIZE_MM if self.paper == "strip" else PAPERS[self.paper]

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) in px: floor of mm × px/mm (250 × 60 mm @ 200 dpi → 1968 × 472)."""
        w_mm, h_mm = self.page_mm
        return int(w_mm * self.px_per_mm + 1e-6), int(h_mm * self.px_per_mm + 1e-6)

    def gain(self, lead: str) -> float:
        return self.gain_chest if lead in CHEST_LEADS else self.gain_limb

    def to_json(self) -> dict:
        d = asdict(self)
        d["distortions"] = self.distortions.to_json()
        d["font"] = int(self.font)
        return d


def strip_spec(dpi: float = 200.0, lead: str = "II", **kw) -> PageSpec:
    """The seed's single-lead strip: 250 × 60 mm, lead II, 25 mm/s, 10 mm/mV, red grid."""
    return PageSpec(layout="strip", paper="strip", dpi=dpi, rhythm_leads=(lead,), **kw)


# ------------------------------------------------------------------------------ sampling

def _choice(rng, options, p=None):
    return options[int(rng.choice(len(options), p=p))]


def sample_spec(rng: np.random.Generator, layout: str = "random", style: str = "random",
                foreign: float = 0.0, foreign_bars: float = 0.7, **overrides) -> PageSpec:
    """Draw a random page specification. ``overrides`` pin any PageSpec field (e.g. dpi=200).
    ``foreign``: the share of pages drawn with other printers' conventions (separator bars,
    labels at a panel's start below the trace, the trace starting at the pulse's edge); at 0
    no draw is made for them, so every earlier seed gives the same page as before.
    ``foreign_bars``: the chance that such a page has separator bars (digitize paints bars out
    before the model reads a page, so a model may be trained without them)."""
    if layout == "random":
        layout = _choice(rng, LAYOUTS, p=[0.15, 0.1, 0.25, 0.05, 0.1, 0.12, 0.08, 0.1, 0.05])
    if layout not in LAYOUTS:
        raise ValueError(f"unsupported layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    if style == "random":
        style = _choice(rng, STYLES[:3], p=[0.3, 0.4, 0.3])  # "rough" only when asked for
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; expected one of {', '.join(STYLES)}")

    unknown = set(overrides) - {f for f in PageSpec.__dataclass_fields__}
    if unknown:
        raise TypeError(f"PageSpec has no field(s) {', '.join(sorted(unknown))}")
    # pinned fields are set first and ignored by the draws below, so later choices
    # (pulse room, x start) see the pinned speed, paper, ...
    s = _Pinned(PageSpec(layout=layout, style=style, **overrides), set(overrides))
    if layout == "strip":
        s.paper = "strip"
        s.dpi = float(_choice(rng, [200.0, 200.0, 150.0, 100.0, 300.0]))
        s.rhythm_leads = ("II",)
    else:
        s.paper = _choice(rng, ["letter", "a4"])
        # archives go down to ~2.5 px/mm (64 dpi); most scans are 100–300 dpi
        s.dpi = float(rng.choice([rng.uniform(64, 100), rng.uniform(100, 300)], p=[0.15, 0.85]))
        s.speed = float(_choice(rng, [25.0, 50.0], p=[0.92, 0.08]))
        s.gain_limb = float(_choice(rng, [5.0, 10.0, 20.0], p=[0.12, 0.8, 0.08]))
        if layout == "12x1" and rng.random() < 0.6:
            s.gain_limb = 5.0
        s.gain_chest = s.gain_limb / 2 if rng.random() < 0.1 else s.gain_limb
        n_rhythm = int(layout[4:]) if layout.startswith("3x4+") else 0
        if n_rhythm == 1:
            s.rhythm_leads = (_choice(rng, ["II", "II", "II", "V1", "V5"]),)
        elif n_rhythm > 1:
            s.rhythm_leads = ("II", "V1", "V5")[:n_rhythm]
        s.lead_group = _choice(rng, ["limb", "chest"])
        s.header = rng.random() < 0.8
        s.header_mm = float(rng.uniform(22, 40) if s.header else rng.uniform(5, 15))
        s.footer_mm = float(rng.uniform(5, 14))
        w_mm = s.page_mm[0]
        s.pulse = _choice(rng, ["left", "left", "left", "right", "none"])
        s.pulse_width_s = float(rng.uniform(0.16, 0.24) if rng.random() < 0.3 else 0.2)
        pulse_room = 0.0 if s.pulse == "none" else s.pulse_width_s * s.speed + 5.0
        room = w_mm - ROW_WIDTH_MM - pulse_room
        s.x_start_mm = float((pulse_room if s.pulse == "left" else 0.0)
                             + rng.uniform(0.3, 0.7) * room)
        s.labels = rng.random() < 0.9
        s.separators = _choice(rng, ["tick", "tick", "full", "none"])

    # grid and ink: randomise everything about the drawing (a model learns its renderer's quirks)
    s.grid = _choice(rng, ["lines", "dotted", "none"], p=[0.82, 0.1, 0.08])
    s.grid_colour = _choice(rng, list(GRID_COLOURS), p=[0.3, 0.25, 0.1, 0.07, 0.05, 0.15, 0.08])
    s.grid_minor_alpha = float(rng.uniform(0.15, 0.55))
    s.grid_major_alpha = float(min(1.0, s.grid_minor_alpha * rng.uniform(1.3, 2.5)))
    s.grid_minor_width_mm = float(rng.uniform(0.05, 0.15))
    s.grid_major_width_mm = float(s.grid_minor_width_mm * rng.uniform(1.2, 2.5))
    s.grid_offset_mm = (float(rng.uniform(0, 5)), float(rng.uniform(0, 5)))
    s.paper_colour = tuple(int(v) for v in 255 - rng.integers(0, 12, 3))
    dark = int(rng.integers(0, 70))
    s.trace_colour = (dark, dark, dark) if rng.random() < 0.85 else \
        _choice(rng, [(120, 40, 20), (30, 30, 140), (20, 90, 20)])
    s.trace_width_mm = float(np.exp(rng.uniform(np.log(0.15), np.log(0.6))))
    s.antialias = rng.random() < 0.8
    s.text_colour = (dark, dark, dark)
    s.font = int(_choice(rng, FONTS))
    s.label_height_mm = float(rng.uniform(2.2, 4.0))
    s.distortions = sample_distortions(rng, style)
    if foreign > 0 and layout != "strip" and rng.random() < foreign:
        _foreign(rng, s, foreign_bars)
    return s.spec


def _foreign(rng: np.random.Generator, s, bars: float = 0.7) -> None:
    """Other printers' conventions (ecg-image-kit's among them), each drawn on its own."""
    if rng.random() < bars:
        s.separators = "bar"
        s.bar_width_mm = float(max(0.3, s.trace_width_mm * rng.uniform(1.5, 3.5)))
        s.bar_half_mm = float(rng.uniform(3.0, 6.0))
        s.bar_on_top = bool(rng.random() < 0.7)
    if rng.random() < 0.7:
        s.labels = True
        s.label_place = "start"
    if s.pulse == "left" and rng.random() < 0.7:
        s.pulse_tail_mm = float(rng.uniform(0.0, 1.0))
        s.pulse_gap_mm = float(rng.choice([0.0, rng.uniform(0.0, 1.0)]))


class _Pinned:
    """Write-through view of a PageSpec that ignores writes to pinned fields."""

    def __init__(self, spec: PageSpec, pinned: set[str]):
        object.__setattr__(self, "spec", spec)
        object.__setattr__(self, "pinned", pinned)

    def __getattr__(self, name):
        return getattr(self.spec, name)

    def __setattr__(self, name, value):
        if name not in self.pinned:
            setattr(self.spec, name, value)


def sample_distortions(rng: np.random.Generator, style: str) -> Distortions:
    """Distortion parameters for a style ('clean': none; 'scan'; 'photo'; 'rough')."""
    d = Distortions(seed=int(rng.integers(2**31)))
    if style == "clean":
        return d
    on = lambda p: rng.random() < p  # noqa: E731
    if style == "rough":
        return _rough(rng, d)
    if on(0.6):
        d.tint = tuple(float(v) for v in (rng.uniform(0.82, 0.97), rng.uniform(0.9, 1.0), 1.0))
    d.wrinkles = float(rng.uniform(0.02, 0.08)) if on(0.25 if style == "scan" else 0.5) else 0.0
    d.creases = int(rng.integers(1, 3)) if on(0.3) else 0
    d.stains = int(rng.integers(1, 3)) if on(0.12) else 0
    d.handwriting = int(rng.integers(1, 5)) if on(0.3) else 0
    if style == "scan":
        d.rotation_deg = float(rng.normal(0, 1.2))
        d.background = (245, 245, 245)
        d.lighting = float(rng.uniform(0.05, 0.25)) if on(0.4) else 0.0
        d.blur_sigma = float(rng.uniform(0.3, 1.0)) if on(0.5) else 0.0
        d.binarize = on(0.12)
        d.noise_sigma = float(rng.uniform(1, 6))
        d.jpeg_quality = int(rng.integers(55, 96))
    else:  # photo
        d.rotation_deg = float(rng.normal(0, 3.0))
        d.perspective = float(rng.uniform(0.01, 0.05))
        d.page_scale = float(rng.uniform(0.82, 0.97))
        grey = rng.uniform(40, 140)
        d.background = tuple(int(grey * f) for f in rng.uniform(0.7, 1.1, 3))
        d.lighting = float(rng.uniform(0.2, 0.6))
        d.shadow = float(rng.uniform(0.2, 0.5)) if on(0.5) else 0.0
        d.blur_sigma = float(rng.uniform(0.4, 1.4))
        d.noise_sigma = float(rng.uniform(2, 8))
        d.jpeg_quality = int(rng.integers(50, 92))
    return d


def _rough(rng: np.random.Generator, d: Distortions) -> Distortions:
    """A hard scan: colour temperature far from white, the whole page darker, grey or colour
    noise of 8–40 grey levels, mottled and creased paper, JPEG."""
    light = rng.uniform(0.55, 0.95)
    if rng.random() < 0.5:  # warm: blue and green dimmed
        cast = (rng.uniform(0.3, 0.8), rng.uniform(0.6, 0.95), 1.0)
    else:  # cool: red dimmed
        cast = (1.0, rng.uniform(0.8, 1.0), rng.uniform(0.55, 0.9))
    if rng.random() < 0.25:
        cast = (1.0, 1.0, 1.0)
    d.tint = tuple(float(light * c) for c in cast)
    d.wrinkles = float(rng.uniform(0.03, 0.15)) if rng.random() < 0.6 else 0.0
    d.blotches = float(rng.uniform(0.1, 0.4)) if rng.random() < 0.8 else 0.0
    d.creases = int(rng.integers(0, 9))
    d.handwriting = int(rng.integers(1, 4)) if rng.random() < 0.15 else 0
    d.rotation_deg = float(np.clip(rng.normal(0, 2.0), -5, 5))
    d.background = (245, 245, 245)
    d.blur_sigma = float(rng.uniform(0.3, 0.9)) if rng.random() < 0.4 else 0.0
    d.noise_sigma = float(rng.uniform(8, 40))
    d.noise_colour = bool(rng.random() < 0.5)
    d.jpeg_quality = int(rng.integers(60, 92))
    return d


# ------------------------------------------------------------------------------- drawing

def _line_coverage(n_px: int, px_per_mm: float, offset_mm: float, period_mm: float,
                   width_px: float) -> np.ndarray:
    """Fraction of each pixel (0..n_px-1 along one axis) covered by periodic lines."""
    centre_mm = (np.arange(n_px, dtype=np.float64) + 0.5) / px_per_mm - offset_mm
    d = np.abs((centre_mm / period_mm + 0.5) % 1.0 - 0.5) * period_mm * px_per_mm
    cov = np.minimum(d + 0.5, width_px / 2) - np.maximum(d - 0.5, -width_px / 2)
    return np.clip(cov, 0.0, 1.0).astype(np.float32)


def grid_alpha(spec: PageSpec, w: int, h: int) -> np.ndarray | None:
    """Per-pixel grid opacity (h × w uint8, 255 = opaque), or None when the page has no grid."""
    if spec.grid == "none":
        return None
    k = spec.px_per_mm
    ox, oy = spec.grid_offset_mm
    wmin = max(spec.grid_minor_width_mm * k, 0.35)  # thinner than ~1/3 px vanishes in scans
    wmaj = max(spec.grid_major_width_mm * k, 0.5)
    if spec.grid == "lines":
        # max of row and column profiles, in uint8 (a float page-sized array costs 4x more)
        def q(v, alpha):
            return (v * (255 * alpha) + 0.5).astype(np.uint8)
        minor = np.maximum(q(_line_coverage(w, k, ox, 1.0, wmin), spec.grid_minor_alpha)[None, :],
                           q(_line_coverage(h, k, oy, 1.0, wmin), spec.grid_minor_alpha)[:, None])
        major = np.maximum(q(_line_coverage(w, k, ox, 5.0, wmaj), spec.grid_major_alpha)[None, :],
                           q(_line_coverage(h, k, oy, 5.0, wmaj), spec.grid_major_alpha)[:, None])
        return np.maximum(minor, major)
    # dotted: dots at the 1 mm intersections, finely dotted 5 mm lines
    Mx, My = _line_coverage(w, k, ox, 5.0, wmaj), _line_coverage(h, k, oy, 5.0, wmaj)
    dot = max(0.15 * k, 1.0)
    dx, dy = _line_coverage(w, k, ox, 1.0, dot), _line_coverage(h, k, oy, 1.0, dot)
    minor = dx[None, :] * dy[:, None]
    fx, fy = _line_coverage(w, k, ox, 0.5, dot), _line_coverage(h, k, oy, 0.5, dot)
    major = np.maximum(Mx[None, :] * fy[:, None], My[:, None] * fx[None, :])
    a = np.maximum(minor * (255 * spec.grid_minor_alpha), major * (255 * spec.grid_major_alpha))
    return (a + 0.5).astype(np.uint8)


def _to_px(xy_mm: np.ndarray, k: float) -> np.ndarray:
    return xy_mm * k - 0.5


def _poly(img: np.ndarray, pts_px: np.ndarray, colour, thickness: int, aa: bool) -> None:
    # 1/16 px precision; OpenCV's antialiased lines blend into the image by coverage
    cv2.polylines(img, [np.round(pts_px * 16).astype(np.int32)], False, colour, thickness,
                  cv2.LINE_AA if aa else cv2.LINE_8, shift=4)


def _fill(img: np.ndarray, pts_px: np.ndarray, colour) -> None:
    """A filled polygon at sub-pixel precision (4 fractional bits), anti-aliased."""
    cv2.fillPoly(img, [np.round(np.asarray(pts_px) * 16).astype(np.int32)], colour,
                 cv2.LINE_AA, shift=4)


def _text(img, text, org_px, spec: PageSpec, height_mm: float) -> None:
    k = spec.px_per_mm
    (_, th), _ = cv2.getTextSize("Hg", spec.font, 1.0, 1)
    scale = height_mm * k / max(th, 1)
    thick = max(1, int(round(scale * 1.2)))
    cv2.putText(img, text, (int(org_px[0]), int(org_px[1])), spec.font, scale,
                spec.text_colour, thick, cv2.LINE_AA)


def _header_lines(rng) -> list[str]:
    hr = int(rng.integers(45, 130))
    return [
        f"ID: {int(rng.integers(10**7, 10**8))}    Name: ********    "
        f"Age: {int(rng.integers(18, 95))}  Sex: {'MF'[int(rng.integers(2))]}",
        f"Vent. rate {hr} BPM   PR {int(rng.integers(120, 220))} ms   "
        f"QRS {int(rng.integers(70, 140))} ms   QT/QTc {int(rng.integers(320, 460))}/"
        f"{int(rng.integers(380, 480))} ms",
        f"P-R-T axes {int(rng.integers(-30, 90))} {int(rng.integers(-30, 90))} "
        f"{int(rng.integers(-30, 90))}    Unconfirmed report",
    ]


def window_indices(t0: float, t1: float, fs: float, n: int) -> tuple[int, int]:
    """Sample range [i0, i1) with t0 <= i/fs < t1, clipped to [0, n)."""
    i0 = int(np.ceil(t0 * fs - 1e-9))
    i1 = int(np.ceil(t1 * fs - 1e-9))
    return max(0, i0), min(n, i1)


@dataclass
class RenderedPage:
    image: np.ndarray  # uint8 BGR (after JPEG round trip when the page is written as JPEG)
    truth: np.ndarray  # [n, 12] float32 mV, NaN outside each lead's plotted windows
    fs: float
    meta: dict
    ext: str  # '.png' or '.jpg'
    encoded: bytes | None  # the JPEG file's bytes; None for PNG pages (encoded when written)

    def encode(self) -> bytes:
        if self.encoded is None:
            # no PNG filter + zlib level 1: ~3x faster than libpng's adaptive default, for
            # ~15 % larger files (a rendered page is mostly flat paper and thin lines)
            ok, buf = cv2.imencode(".png", self.image, [
                cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE])
            if not ok:
                raise RuntimeError("PNG encoding failed")
            self.encoded = buf.tobytes()
        return self.encoded


def render_page(signal: np.ndarray, fs: float, spec: PageSpec, header_seed: int = 0
                ) -> RenderedPage:
    """Draw ``signal`` ([n, 12] mV in LEADS order, sampled at ``fs`` Hz) as ``spec`` says."""
    signal = np.asarray(signal, np.float32)
    n = signal.shape[0]
    k = spec.px_per_mm
    w, h = spec.image_size
    w_mm, h_mm = spec.page_mm
    rows, panels = plan_page(spec.layout, w_mm, h_mm, spec.speed, spec.header_mm,
                             spec.footer_mm, spec.x_start_mm, spec.rhythm_leads,
                             spec.lead_group, duration_s=n / fs)

    # paper + grid, in uint8: a clean page never leaves 8 bits
    a = grid_alpha(spec, w, h)
    if a is None:
        img = np.empty((h, w, 3), np.uint8)
        img[:] = spec.paper_colour
    else:
        ramp = np.arange(256, dtype=np.float32) / 255
        img = cv2.merge([
            cv2.LUT(a, np.clip(p + ramp * (g - p) + 0.5, 0, 255).astype(np.uint8))
            for p, g in zip(spec.paper_colour, GRID_COLOURS[spec.grid_colour])])

    # annotations first, traces on top (as a pen crosses printed labels)
    thick = max(1, int(round(spec.trace_width_mm * k)))
    lrng = np.random.default_rng(header_seed + 1)  # label offsets: the page's own draws
    bars = []
    for p in panels:
        if spec.labels and spec.label_place == "start":
            _text(img, p.lead, ((p.x0_mm + lrng.uniform(0.2, 1.0)) * k,
                                (p.baseline_mm + lrng.uniform(1.5, 5.0)) * k),
                  spec, spec.label_height_mm)
        elif spec.labels:
            _text(img, p.lead, ((p.x0_mm + 1.0) * k, (p.baseline_mm - 0.3 *
                  (p.band_bottom_mm - p.band_top_mm)) * k), spec, spec.label_height_mm)
        if p.col > 0 and spec.separators == "bar":
            bars.append(_to_px(np.array([
                [p.x0_mm - spec.bar_width_mm / 2, p.baseline_mm - spec.bar_half_mm],
                [p.x0_mm + spec.bar_width_mm / 2, p.baseline_mm - spec.bar_half_mm],
                [p.x0_mm + spec.bar_width_mm / 2, p.baseline_mm + spec.bar_half_mm],
                [p.x0_mm - spec.bar_width_mm / 2, p.baseline_mm + spec.bar_half_mm]]), k))
        elif p.col > 0 and spec.separators != "none":
            half = 3.0 if spec.separators == "tick" else 0.4 * (p.band_bottom_mm - p.band_top_mm)
            sep = _to_px(np.array([[p.x0_mm, p.baseline_mm - half],
                                   [p.x0_mm, p.baseline_mm + half]]), k)
            _poly(img, sep, spec.text_colour, max(1, thick - 1), True)
    for b in bars if not spec.bar_on_top else []:
        _fill(img, b, spec.text_colour)
    if spec.header:
        hrng = np.random.default_rng(header_seed)
        for i, line in enumerate(_header_lines(hrng)):
            _text(img, line, (spec.x_start_mm * k * 0.5, (6.0 + 5.0 * i) * k), spec, 2.6)
    if spec.layout != "strip" and spec.footer_mm > 6:
        gains = f"{spec.gain_limb:g} mm/mV" if spec.gain_chest == spec.gain_limb else \
            f"Limb {spec.gain_limb:g} mm/mV  Chest {spec.gain_chest:g} mm/mV"
        _text(img, f"{spec.speed:g} mm/s   {gains}   0.5-40 Hz",
              (spec.x_start_mm * k, (h_mm - spec.footer_mm / 2 + 1) * k), spec, 2.4)

    pulses = []
    if spec.pulse != "none":
        pw = spec.pulse_width_s * spec.speed
        for r in rows:
            g = spec.gain(r.leads[0])
            # a row holding limb and chest leads at different gains gets the stepped pulse
            # electrocardiographs print for split gain: limb height, then chest height
            g2 = next((spec.gain(lead) for lead in r.leads if spec.gain(lead) != g), g)
            # left: rise 1 mm after xs, fall pw later, then the foot and the gap to the trace
            xs = r.x_start_mm - spec.pulse_gap_mm - spec.pulse_tail_mm - pw - 1.0 \
                if spec.pulse == "left" else r.x_start_mm + ROW_WIDTH_MM + 0.5
            tail = spec.pulse_tail_mm if spec.pulse == "left" else 1.0
            b = r.baseline_mm
            xm = xs + 1 + pw / 2
            shape = np.array([[xs, b], [xs + 1, b], [xs + 1, b - g], [xm, b - g], [xm, b - g2],
                              [xs + 1 + pw, b - g2], [xs + 1 + pw, b], [xs + 1 + pw + tail, b]])
            if g2 == g:
                shape = np.delete(shape, [3, 4], axis=0)
            pts = _to_px(shape, k)
            _poly(img, pts, spec.trace_colour, thick, spec.antialias)
            pulses.append(dict(row=r.index, height_mm=g, step_mm=g2, width_s=spec.pulse_width_s,
                               polyline=pts))

    truth = np.full((n, len(LEADS)), np.nan, np.float32)
    lead_meta = []
    for p in panels:
        j = LEADS.index(p.lead)
        i0, i1 = window_indices(p.t0, p.t1, fs, n)
        gain = spec.gain(p.lead)
        t = np.arange(i0, i1) / fs
        xy_mm = np.stack([p.x0_mm + (t - p.t0) * spec.speed,
                          p.baseline_mm - signal[i0:i1, j] * gain], axis=1)
        pts = _to_px(xy_mm, k)
        _poly(img, pts, spec.trace_colour, thick, spec.antialias)
        truth[i0:i1, j] = signal[i0:i1, j]
        x1_mm = p.x0_mm + (p.t1 - p.t0) * spec.speed
        cell = _to_px(np.array([[p.x0_mm, p.band_top_mm], [x1_mm, p.band_top_mm],
                                [x1_mm, p.band_bottom_mm], [p.x0_mm, p.band_bottom_mm]]), k)
        lead_meta.append(dict(lead=p.lead, row=p.row, col=p.col, t0=p.t0, t1=p.t1,
                              sample_range=[i0, i1], gain_mm_mv=gain, x0_mm=p.x0_mm,
                              width_mm=x1_mm - p.x0_mm, baseline_mm=p.baseline_mm,
                              baseline_y=float(p.baseline_mm * k - 0.5), quad=cell,
                              polyline=pts))

    for b in bars if spec.bar_on_top else []:  # over the trace, as some printers draw them
        _fill(img, b, spec.text_colour)

    d = spec.distortions
    H = distort.homography(d, w, h) if d.geometric else np.eye(3)
    if d.active:
        img = distort.apply_paper(img.astype(np.float32), d, k)
        img = distort.apply_capture(img, d, H)
        img8 = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    else:
        img8 = img

    encoded = None
    if d.jpeg_quality:  # JPEG artefacts are part of the picture: round-trip now
        ok, buf = cv2.imencode(".jpg", img8, [cv2.IMWRITE_JPEG_QUALITY, d.jpeg_quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        encoded = buf.tobytes()
        img8 = cv2.imdecode(buf, cv2.IMREAD_COLOR)

    def warp(pts: np.ndarray) -> list:
        if d.geometric:
            pts = cv2.perspectiveTransform(np.asarray(pts, np.float64)[None], H)[0]
        return np.round(np.asarray(pts), 2).tolist()

    for m in lead_meta:
        m["polyline"] = warp(m["polyline"])
        m["quad"] = warp(m["quad"])
        q = np.asarray(m["quad"])
        m["bbox"] = [round(float(q[:, 0].min()), 2), round(float(q[:, 1].min()), 2),
                     round(float(q[:, 0].max()), 2), round(float(q[:, 1].max()), 2)]
    for m in pulses:
        m["polyline"] = warp(m["polyline"])
    meta = dict(
        format=FORMAT, layout=spec.layout, style=spec.style, paper=spec.paper,
        page_mm=list(spec.page_mm), dpi=spec.dpi, px_per_mm=k, speed_mm_s=spec.speed,
        image_size=[w, h], fs=fs, n_samples=n,
        pixel_convention="OpenCV: pixel (i, j) centred at x=i, y=j; "
                         "page mm (X, Y) -> (X*px_per_mm - 0.5, Y*px_per_mm - 0.5) before warp",
        gain_mm_mv={lead: spec.gain(lead) for lead in LEADS},
        rhythm_leads=list(spec.rhythm_leads), homography=np.asarray(H).tolist(),
        leads=lead_meta, pulses=pulses, spec=spec.to_json(),
    )
    return RenderedPage(img8, truth, fs, meta, ".jpg" if encoded else ".png", encoded)


# ------------------------------------------------------------------------------- writing

def write_page(page: RenderedPage, out_dir: str | Path, name: str, extra_meta: dict | None = None
               ) -> Path:
    """Write ``<name><ext>``, ``<name>.hea/.dat`` (12 leads, mV, fmt 16 at 1 µV) and
    ``<name>.json`` into ``out_dir``; returns the image path. Each file is written to a
    temporary name and renamed, so an interrupted run leaves no half-written file."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    img_path = out_dir / f"{name}{page.ext}"
    _atomic_write(img_path, page.encode())
    write_record(out_dir, name, page.truth, page.fs, LEADS, units="mV", adc_gain=1000.0,
                 comments=[f"rendered ground truth: layout {page.meta['layout']}, "
                           f"style {page.meta['style']}; NaN outside the plotted windows"])
    meta = dict(page.meta, name=name, image=img_path.name, record=name, **(extra_meta or {}))
    _atomic_write(out_dir / f"{name}.json", json.dumps(meta, separators=(",", ":")).encode())
    return img_path


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
