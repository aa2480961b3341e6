"""Grid pitch on clean rendered pages (scans/photos: not yet — see digitize/geometry.py)."""
import cv2
import numpy as np
import pytest

from digitize.geometry import grid_pitch
from trainer.render import render_page, sample_spec


@pytest.fixture(scope="module")
def signal():
    t = np.arange(5000) / 500.0
    return np.stack([0.8 * np.sin(2 * np.pi * 1.1 * t + j) for j in range(12)], 1).astype(
        np.float32)


@pytest.mark.parametrize("dpi", [72.0, 100.0, 200.0, 300.0])
@pytest.mark.parametrize("colour", ["red", "grey", "green"])
def test_pitch_of_clean_pages_within_3_percent(signal, dpi, colour):
    spec = sample_spec(np.random.default_rng(int(dpi)), "3x4+1", "clean", dpi=dpi, grid="lines",
                       grid_colour=colour, grid_minor_alpha=0.3, grid_major_alpha=0.6)
    grey = cv2.cvtColor(render_page(signal, 500.0, spec).image, cv2.COLOR_BGR2GRAY)
    p = grid_pitch(grey)
    assert abs(p.px_per_mm - dpi / 25.4) < 0.03 * dpi / 25.4, (p, dpi / 25.4)


def test_no_grid_no_pitch(signal):
    spec = sample_spec(np.random.default_rng(0), "3x4+1", "clean", dpi=150.0, grid="none")
    grey = cv2.cvtColor(render_page(signal, 500.0, spec).image, cv2.COLOR_BGR2GRAY)
    assert np.isnan(grid_pitch(grey).px_per_mm)


@pytest.mark.parametrize("dpi", [150.0, 200.0])
def test_pitch_under_a_texture_repeating_every_4_mm(signal, dpi):
    # a page under a strong pattern of period 4 mm (as an ecg-image-kit scan's crumple texture,
    # new eik val scans 00137 / 00408): the longest periodic comb is the pattern's, and only its
    # 4th harmonic, the grid's, stands out
    spec = sample_spec(np.random.default_rng(int(dpi)), "3x4+1", "clean", dpi=dpi, grid="lines",
                       grid_colour="red", grid_minor_alpha=0.3, grid_major_alpha=0.6)
    grey = cv2.cvtColor(render_page(signal, 500.0, spec).image, cv2.COLOR_BGR2GRAY)
    k = dpi / 25.4
    y, x = np.mgrid[:grey.shape[0], :grey.shape[1]]
    texture = 40 * (np.sin(2 * np.pi * x / (4 * k)) + np.sin(2 * np.pi * y / (4 * k)))
    grey = np.clip(grey - 60 + texture, 0, 255).astype(np.uint8)
    p = grid_pitch(grey)
    assert abs(p.px_per_mm - k) < 0.01 * k, (p, k)


def test_a_grid_buried_under_a_longer_pattern_is_told_by_its_harmonic():
    # comb harmonics (1st-6th, ratios to the spectrum's background): a 4-mm pattern over a
    # 150-dpi grid read as a 600-dpi grid (eik test scan 00023), the grid's harmonic 20x over
    # the pattern's fundamental. A 2-mm pattern (eik val scan 00265) keeps its long period,
    # the scale is read again on the page filtered at it; a line grid's own comb falls off
    # from its fundamental: no.
    from digitize.geometry import _buried_grid
    assert _buried_grid(np.array([2.9, 3.0, 2.5, 270.0, 3.1, 2.0]), 2.0)
    assert not _buried_grid(np.array([2.0, 112.6, 2.8, 51.8, 1.8, 4.6]), 2.0)
    assert not _buried_grid(np.array([60.0, 40.0, 25.0, 18.0, 30.0, 9.0]), 2.0)
    assert not _buried_grid(np.array([2.0, 30.0, 2.0, 20.0, 2.0, 3.0]), 2.0)  # too weak
