"""Strip cutting at ground-truth geometry puts the trace where the targets say."""
import cv2
import numpy as np
import pytest

from digitize.model_spec import StripSpec
from digitize.strips import StripGeometry, column_times, columns_to_signal, cut_strip
from trainer.distort import Distortions
from trainer.render import PageSpec, render_page

FS = 500.0


@pytest.mark.parametrize("dpi,geometric", [(100.0, False), (200.0, False), (150.0, True)])
def test_cut_strip_centres_the_trace(dpi, geometric):
    t = np.arange(5000) / FS
    sig = np.stack([0.8 * np.sin(2 * np.pi * 0.5 * t + j) for j in range(12)], 1)
    d = Distortions(seed=1, rotation_deg=3.0, perspective=0.03, page_scale=0.92) \
        if geometric else Distortions()
    spec = PageSpec(layout="3x4+1", paper="letter", dpi=dpi, grid="none", header_mm=30,
                    footer_mm=10, x_start_mm=20.0, trace_width_mm=0.3, distortions=d)
    page = render_page(sig.astype(np.float32), FS, spec)
    grey = cv2.cvtColor(page.image, cv2.COLOR_BGR2GRAY)
    sspec = StripSpec()
    H = np.asarray(page.meta["homography"])
    for m in page.meta["leads"]:
        geom = StripGeometry(m["x0_mm"], m["width_mm"], m["baseline_mm"], page.meta["px_per_mm"], H)
        x = cut_strip(grey, geom, sspec)
        assert x.shape == (120, int(round(m["width_mm"] * 4)))
        tc = column_times(x.shape[1], m["t0"], 25.0, 4.0)
        j = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"].index(
            m["lead"])
        target_mm = np.interp(tc, t, sig[:, j]) * m["gain_mm_mv"]
        # centroid of the ink within ±3 mm of where the target puts the trace (labels, text
        # and other rows elsewhere in the strip must not pull it); no ink there → NaN → fail
        ink = np.clip(x, 0, None)
        r = np.arange(x.shape[0])[:, None]
        expect_row = (30.0 - target_mm) * 2.0 - 0.5
        ink = np.where(np.abs(r - expect_row) <= 6, ink, 0)
        rows = (ink * r).sum(0) / ink.sum(0)
        measured_mm = 30.0 - (rows + 0.5) / 2.0  # row centre → mm above the centre line
        err = np.abs(measured_mm - target_mm)[5:-5]
        assert np.median(err) < 0.25 and np.percentile(err, 95) < 0.5, (m["lead"], err.max())


def test_columns_to_signal_round_trip():
    t0, t1, speed, kx = 2.5, 5.0, 25.0, 4.0
    n_cols = int((t1 - t0) * speed * kx)
    tc = column_times(n_cols, t0, speed, kx)
    assert tc[0] == pytest.approx(t0) and tc[1] - tc[0] == pytest.approx(1 / kx / speed)
    value_mm = 10.0 * np.sin(2 * np.pi * tc)  # 1 mV sine at 10 mm/mV
    idx, mv = columns_to_signal(value_mm, 10.0, tc, 500.0, t0, t1)
    assert idx[0] == 1250 and idx[-1] == 2499
    err = np.abs(mv - np.sin(2 * np.pi * idx / 500.0))
    assert np.max(err) < 0.002  # cubic spline between column centres, one column extrapolated


def test_even_light_takes_out_a_crease_and_keeps_the_trace():
    """A broad dark band (a crease's shadow, 8 mm wide) across a thin trace: after even_light
    the band is paper again and the trace as dark against it as elsewhere; an evenly lit page
    is only scaled, which the model's normalisation ignores. Oracle: the drawing itself."""
    from digitize.strips import even_light, normalise
    k = 8.0  # px/mm
    page = np.full((400, 800), 230, np.uint8)
    cv2.line(page, (0, 200), (799, 200), 40, 2)  # the trace
    shaded = page.astype(np.float32)
    shaded[:, 300:364] *= 0.45  # the crease: 8 mm of shadow
    shaded = shaded.astype(np.uint8)
    out = even_light(shaded, k)
    band, paper = out[50:150, 310:354], out[50:150, 100:200]
    assert abs(float(band.mean()) - float(paper.mean())) < 12, (band.mean(), paper.mean())
    assert out[200, 330] < 0.5 * float(band.mean())  # the trace in the crease stays ink
    even = even_light(page, k)
    assert np.allclose(normalise(even), normalise(page), atol=0.05)


def test_an_evenly_lit_page_loses_its_blotches_and_keeps_its_rows():
    """pipeline.evenly_lit: a letter page (2200 x 1700 px, ~7.9 px/mm from its size) under
    large soft dark blotches (a crumpled sheet's shading, 60 % darker at their centres) with
    three thin trace rows: after it the blotches are paper again in every channel and the rows
    are still ink. Oracle: the drawing itself."""
    from digitize.pipeline import evenly_lit
    h, w = 1700, 2200
    page = np.full((h, w, 3), (200, 215, 235), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for cx, cy in ((500, 450), (1400, 900), (1900, 1400)):
        page *= (1 - 0.6 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 120.0 ** 2)))[..., None]
    page = page.astype(np.uint8)
    for y in (450, 900, 1400):
        cv2.line(page, (100, y), (2100, y), (30, 30, 30), 2)
    out = evenly_lit(page)
    assert out.shape == page.shape
    for cx, cy in ((500, 450), (1400, 900), (1900, 1400)):
        blot = out[cy - 60:cy - 10, cx - 40:cx + 40].reshape(-1, 3).mean(axis=0)
        assert (blot > 235).all(), blot  # paper again (before: ~40 % of the paper's level)
        assert out[cy, cx].max() < 0.5 * blot.min()  # the trace through it stays ink


@pytest.mark.parametrize("geometric", [False, True])
def test_cut_strip_along_a_path_brings_a_wandering_trace_to_the_centre(geometric):
    """A trace drawn 18 mm above its row at the start, drifting down to the row: cut along the
    path it takes, it runs along the strip's centre line; along a flat path the cut is the
    plain one."""
    from digitize.strips import cut_strip_along
    t = np.arange(5000) / FS
    drift = 1.8 * np.exp(-t / 1.5)  # mV above the row
    sig = np.stack([drift + 0.3 * np.sin(2 * np.pi * 1.1 * t)] * 12, 1)
    d = Distortions(seed=1, rotation_deg=2.0, perspective=0.02) if geometric else Distortions()
    spec = PageSpec(layout="6x2", paper="letter", dpi=150.0, grid="none", header_mm=30,
                    footer_mm=10, x_start_mm=20.0, trace_width_mm=0.3, distortions=d)
    page = render_page(sig.astype(np.float32), FS, spec)
    grey = cv2.cvtColor(page.image, cv2.COLOR_BGR2GRAY)
    sspec = StripSpec()
    m = page.meta["leads"][0]
    geom = StripGeometry(m["x0_mm"], m["width_mm"], m["baseline_mm"], page.meta["px_per_mm"],
                         np.asarray(page.meta["homography"]))
    plain = cut_strip(grey, geom, sspec)
    assert np.array_equal(plain, cut_strip_along(grey, geom, sspec, np.zeros(plain.shape[1])))
    tc = column_times(plain.shape[1], m["t0"], 25.0, 4.0)
    path = (np.interp(tc, t, drift) * m["gain_mm_mv"]).astype(np.float32)
    along = cut_strip_along(grey, geom, sspec, path)
    r = np.arange(plain.shape[0])[:, None]

    def centre_rows(x):  # the ink's centroid row per column, within 8 mm of the centre line
        ink = np.where(np.abs(r - 59.5) <= 16, np.clip(x, 0, None), 0)
        return (ink * r).sum(0) / np.maximum(ink.sum(0), 1e-6)
    # the start of the window: plain, the trace is off the middle; along its path, on it
    start = slice(5, 60)
    wave = (np.interp(tc, t, sig[:, 0] - drift) * m["gain_mm_mv"])[start]
    expect = 59.5 - wave * 2.0
    assert np.median(np.abs(centre_rows(along)[start] - expect)) < 0.75
    assert path[start].min() > 9  # (so the plain cut's middle band holds no trace there)
    assert (np.clip(plain, 0, None)[44:76, start].sum(0) < 0.5).mean() > 0.8


def test_slow_path_follows_the_baseline_not_the_beats():
    from digitize.strips import slow_path
    cps = 100.0  # columns per second (4 px/mm at 25 mm/s)
    c = np.arange(1000)
    base = 12.0 * np.exp(-c / 150.0)
    beats = np.where((c % 80) < 8, 15.0, 0.0)  # 0.08-s QRS spikes every 0.8 s
    conf = np.ones(1000)
    conf[::7] = 0.1  # unsure columns read off the trace: not followed
    value = base + beats + np.where(conf < 0.5, -20.0, 0.0)
    p = slow_path(value, conf, cps)
    assert np.abs(p - base)[50:-50].max() < 1.5
    assert slow_path(value, np.zeros(1000), cps) is None  # nothing read with confidence
