"""The drawn trace lies where mm/mV and mm/s put it, at several resolutions."""
import cv2
import numpy as np
import pytest

from digitize.leads import LEADS
from trainer.distort import Distortions
from trainer.render import PageSpec, render_page, strip_spec

FS = 500.0
N = 5000  # 10 s


def _signal(lead_values: np.ndarray, lead: str = "II") -> np.ndarray:
    sig = np.zeros((N, 12), np.float32)
    sig[:, LEADS.index(lead)] = lead_values
    return sig


def _darkness(img: np.ndarray) -> np.ndarray:
    return 255.0 - cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float64)


def _column_centre(dark: np.ndarray, x: int) -> float:
    col = dark[:, x]
    col = np.where(col > 8, col, 0)  # ignore faint antialiasing noise
    return float((col * np.arange(len(col))).sum() / col.sum())


def _plain(spec: PageSpec) -> PageSpec:
    spec.grid = "none"
    spec.trace_colour = (0, 0, 0)
    return spec


@pytest.mark.parametrize("dpi", [100.0, 200.0, 300.0])
def test_step_lies_where_mm_per_mv_and_mm_per_s_put_it(dpi):
    t = np.arange(N) / FS
    v = np.where(t < 5.0, 0.0, 1.0).astype(np.float32)  # a 1 mV step at 5 s
    spec = _plain(strip_spec(dpi=dpi))
    page = render_page(_signal(v), FS, spec)
    k = dpi / 25.4
    dark = _darkness(page.image)
    assert page.image.shape[:2] == (int(60 * k + 1e-6), int(250 * k + 1e-6))
    for t_s, mv in [(1.0, 0.0), (2.5, 0.0), (4.0, 0.0), (6.0, 1.0), (8.5, 1.0)]:
        x = int(round(t_s * 25 * k - 0.5))
        expect_y = (30.0 - mv * 10.0) * k - 0.5
        assert abs(_column_centre(dark, x) - expect_y) < 0.5, (dpi, t_s)
    # the vertical edge of the step is at 5 s * 25 mm/s
    y0, y1 = int((30 - 0.8 * 10) * k), int((30 - 0.2 * 10) * k)
    rows = dark[y0:y1]
    xs = np.arange(rows.shape[1])
    centre_x = (rows * xs).sum(axis=1) / rows.sum(axis=1)
    assert np.all(np.abs(centre_x - (5.0 * 25 * k - 0.5)) < 0.5)


@pytest.mark.parametrize("dpi", [100.0, 200.0, 300.0])
def test_sine_follows_the_scale(dpi):
    t = np.arange(N) / FS
    v = (1.0 * np.sin(2 * np.pi * 1.0 * t)).astype(np.float32)
    spec = _plain(strip_spec(dpi=dpi))
    page = render_page(_signal(v), FS, spec)
    k = dpi / 25.4
    dark = _darkness(page.image)
    errs = []
    for x in range(int(0.5 * 25 * k), int(9.5 * 25 * k), max(1, int(k))):
        t_x = (x + 0.5) / k / 25.0
        expect_y = (30.0 - np.sin(2 * np.pi * t_x) * 10.0) * k - 0.5
        errs.append(_column_centre(dark, x) - expect_y)
    assert np.max(np.abs(errs)) < 0.5, (dpi, np.max(np.abs(errs)))


@pytest.mark.parametrize("dpi,gain", [(100.0, 10.0), (200.0, 5.0), (300.0, 20.0)])
def test_calibration_pulse_matches_the_gain(dpi, gain):
    spec = _plain(PageSpec(layout="3x4", paper="letter", dpi=dpi, gain_limb=gain,
                           gain_chest=gain, pulse="left", header_mm=30, footer_mm=10,
                           x_start_mm=20.0))
    page = render_page(np.zeros((N, 12), np.float32), FS, spec)
    k = dpi / 25.4
    dark = _darkness(page.image)
    for pulse in page.meta["pulses"]:
        pts = np.asarray(pulse["polyline"])
        base_y, top_y = pts[0, 1], pts[2, 1]
        assert abs((base_y - top_y) - gain * k) < 0.02  # 1 mV in the sidecar (0.01 px rounding)
        x_mid = int(round((pts[2, 0] + pts[3, 0]) / 2))  # middle of the plateau
        band = dark[int(top_y - 3 * k):int(base_y - 2 * k), :]
        measured = _column_centre(band, x_mid) + int(top_y - 3 * k)
        assert abs(measured - top_y) < 0.5
        assert abs(pulse["width_s"] * 25 * k - (pts[3, 0] - pts[2, 0])) < 0.02


@pytest.mark.parametrize("dpi", [100.0, 200.0, 300.0])
def test_three_by_four_panel_positions(dpi):
    """Each lead of a 3x4 page is drawn at its row's baseline, scaled by its gain."""
    sig = np.zeros((N, 12), np.float32)
    for j in range(12):
        sig[:, j] = 0.1 * (j + 1)  # a distinct DC level per lead
    spec = _plain(PageSpec(layout="3x4+1", paper="a4", dpi=dpi, gain_limb=10.0, gain_chest=5.0,
                           header_mm=30, footer_mm=10, x_start_mm=30.0, rhythm_leads=("II",)))
    page = render_page(sig, FS, spec)
    k = dpi / 25.4
    dark = _darkness(page.image)
    for m in page.meta["leads"]:
        v = 0.1 * (LEADS.index(m["lead"]) + 1)
        expect_y = m["baseline_y"] - v * m["gain_mm_mv"] * k
        x = int(round((m["quad"][0][0] + m["quad"][1][0]) / 2))
        y0 = int(m["quad"][0][1])
        y1 = int(m["quad"][2][1])
        assert abs(_column_centre(dark[y0:y1], x) + y0 - expect_y) < 0.5, m["lead"]
        assert m["gain_mm_mv"] == (5.0 if m["lead"].startswith("V") else 10.0)


def _sample(grey: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Bilinear image values at (x, y) points."""
    pts = np.ascontiguousarray(pts, np.float32).reshape(-1, 1, 2)
    return cv2.remap(grey, pts, None, cv2.INTER_LINEAR)[:, 0]


def test_polyline_matches_image_after_rotation_and_perspective():
    t = np.arange(N) / FS
    sig = np.stack([0.8 * np.sin(2 * np.pi * (1 + 0.1 * j) * t) for j in range(12)], 1)
    d = Distortions(seed=3, rotation_deg=4.0, perspective=0.04, page_scale=0.9)
    spec = _plain(PageSpec(layout="3x4+1", paper="letter", dpi=150, header_mm=30,
                           footer_mm=10, x_start_mm=20.0, trace_width_mm=0.4, distortions=d))
    page = render_page(sig.astype(np.float32), FS, spec)
    assert not np.allclose(page.meta["homography"], np.eye(3))
    grey = cv2.cvtColor(page.image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    vals = []
    for m in page.meta["leads"]:
        pts = np.asarray(m["polyline"], np.float32)
        vals.append(_sample(grey, pts))
    vals = np.concatenate(vals)
    assert np.mean(vals < 128) > 0.97, np.mean(vals < 128)
    # and a polyline shifted by 1 mm misses the trace most of the time
    m = page.meta["leads"][0]
    pts = np.asarray(m["polyline"], np.float32) + [0, 150 / 25.4]
    off = _sample(grey, pts)
    assert np.mean(off < 128) < 0.5
