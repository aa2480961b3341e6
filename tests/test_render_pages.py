"""Every layout renders with ground-truth windows that match it; determinism; distortions."""
import dataclasses
import json

import numpy as np
import pytest
import wfdb

from digitize.leads import CHEST_LEADS, LEADS, LIMB_LEADS
from trainer.distort import Distortions, apply_capture
from trainer.layouts import LAYOUTS
from trainer.render import render_page, sample_spec, write_page

FS = 500.0


@pytest.fixture(scope="module")
def signal():
    t = np.arange(5000) / FS
    return np.stack([np.sin(2 * np.pi * (0.7 + 0.13 * j) * t) * 0.6 for j in range(12)],
                    1).astype(np.float32)


def _expected_windows(layout, speed, rhythm, group):
    """lead -> list of (t0, t1) the layout must plot."""
    row_s = 250.0 / speed
    out = {}
    def add(lead, t0, t1):
        out.setdefault(lead, []).append((t0, t1))
    if layout == "strip":
        add(rhythm[0], 0, 10)
    elif layout.startswith("3x4"):
        cols = [("I", "II", "III"), ("aVR", "aVL", "aVF"), ("V1", "V2", "V3"), ("V4", "V5", "V6")]
        w = row_s / 4
        for c, leads in enumerate(cols):
            for lead in leads:
                add(lead, c * w, (c + 1) * w)
        n_rhythm = int(layout[4:]) if "+" in layout else 0
        for lead in rhythm[:n_rhythm]:
            add(lead, 0, row_s)
    elif layout.startswith("6x2"):
        for lead in LIMB_LEADS:
            add(lead, 0, row_s / 2)
        for lead in CHEST_LEADS:
            add(lead, row_s / 2, row_s)
        if layout == "6x2+1":
            add(rhythm[0], 0, row_s)
    elif layout == "6x1":
        for lead in (LIMB_LEADS if group == "limb" else CHEST_LEADS):
            add(lead, 0, row_s)
    elif layout == "12x1":
        for lead in LEADS:
            add(lead, 0, row_s)
    return out


# the seed strip is 25 mm/s by definition; pages come at 25 and 50 mm/s
@pytest.mark.parametrize("layout,speed", [(lay, sp) for lay in LAYOUTS for sp in (25.0, 50.0)
                                          if not (lay == "strip" and sp == 50.0)])
def test_layout_windows_match_ground_truth(layout, speed, signal, tmp_path):
    rng = np.random.default_rng(7)
    spec = sample_spec(rng, layout, "clean", speed=speed, dpi=100.0)
    page = render_page(signal, FS, spec)
    want = _expected_windows(layout, speed, spec.rhythm_leads, spec.lead_group)
    got = {}
    for m in page.meta["leads"]:
        got.setdefault(m["lead"], []).append((m["t0"], m["t1"]))
    def rounded(d):
        return {k: sorted((round(a, 9), round(b, 9)) for a, b in v) for k, v in d.items()}
    assert rounded(got) == rounded(want)
    # the ground-truth record is NaN exactly outside the union of each lead's windows
    t = np.arange(len(signal)) / FS
    for j, lead in enumerate(LEADS):
        plotted = np.zeros(len(t), bool)
        for t0, t1 in want.get(lead, []):
            plotted |= (t >= t0 - 1e-9) & (t < t1 - 1e-9)
        assert np.array_equal(np.isfinite(page.truth[:, j]), plotted), lead
        assert np.array_equal(page.truth[plotted, j], signal[plotted, j])
    # boxes lie on the page, in reading order within a row
    w, h = page.meta["image_size"]
    for m in page.meta["leads"]:
        x0, y0, x1, y1 = m["bbox"]
        assert -1 <= x0 < x1 <= w and -1 <= y0 < y1 <= h + 1
        pts = np.asarray(m["polyline"])
        assert len(pts) == m["sample_range"][1] - m["sample_range"][0]
        assert np.all(np.diff(pts[:, 0]) > 0)  # time runs left to right
    # written ground truth reads back with wfdb, NaN preserved
    write_page(page, tmp_path, "p")
    rec = wfdb.rdrecord(str(tmp_path / "p"))
    assert rec.sig_name == list(LEADS) and rec.fs == FS
    assert np.array_equal(np.isnan(rec.p_signal), np.isnan(page.truth))
    meta = json.loads((tmp_path / "p.json").read_text())
    assert meta["layout"] == layout and meta["px_per_mm"] == pytest.approx(100 / 25.4)


@pytest.mark.parametrize("style", ["clean", "scan", "photo", "rough"])
def test_deterministic_for_a_seed(style, signal):
    def one(seed):
        spec = sample_spec(np.random.default_rng(seed), "3x4+1", style, dpi=80.0)
        return render_page(signal, FS, spec, header_seed=seed)
    a, b, c = one(5), one(5), one(6)
    assert np.array_equal(a.image, b.image)
    assert json.dumps(a.meta) == json.dumps(b.meta)
    assert not np.array_equal(a.image.shape, c.image.shape) or not np.array_equal(a.image, c.image)


_EFFECTS = dict(tint=(0.85, 0.92, 1.0), wrinkles=0.06, blotches=0.3, creases=2, stains=2, handwriting=3,
                rotation_deg=2.0, perspective=0.03, page_scale=0.9, lighting=0.4, shadow=0.4,
                blur_sigma=1.0, binarize=True, noise_sigma=5.0, jpeg_quality=70)


@pytest.mark.parametrize("effect", sorted(_EFFECTS))
def test_each_distortion_is_switchable_and_seeded(effect, signal):
    base = sample_spec(np.random.default_rng(1), "6x2", "clean", dpi=70.0)
    clean = render_page(signal, FS, base)
    on = dataclasses.replace(base, distortions=Distortions(seed=11, **{effect: _EFFECTS[effect]}))
    a, b = render_page(signal, FS, on), render_page(signal, FS, on)
    assert np.array_equal(a.image, b.image)  # seeded
    assert not np.array_equal(a.image, clean.image)  # it does something
    geometric = effect in ("rotation_deg", "perspective", "page_scale")
    moved = a.meta["leads"][0]["polyline"] != clean.meta["leads"][0]["polyline"]
    assert moved == geometric  # only geometric effects move the ground-truth polylines
    assert a.ext == (".jpg" if effect == "jpeg_quality" else ".png")
    other = dataclasses.replace(base, distortions=Distortions(seed=12, **{effect: _EFFECTS[effect]}))
    if effect not in ("tint", "blur_sigma", "binarize", "jpeg_quality", "rotation_deg", "page_scale"):
        assert not np.array_equal(render_page(signal, FS, other).image, a.image)  # seed matters


@pytest.mark.parametrize("colour", [False, True])
def test_sensor_noise_has_the_asked_sigma_in_every_channel(colour):
    """Grey noise is the same in the three channels; colour noise is independent per channel;
    either way each channel's spread is the asked sigma (measured on a flat mid-grey image)."""
    img = np.full((200, 300, 3), 128.0, np.float32)
    out = apply_capture(img.copy(), Distortions(seed=3, noise_sigma=20.0, noise_colour=colour),
                        np.eye(3))
    n = (out - 128.0).reshape(-1, 3)
    assert np.allclose(n.std(axis=0), 20.0, rtol=0.05)
    r = np.corrcoef(n.T)[0, 1]
    assert (abs(r) < 0.05) if colour else (r > 0.999)


def test_rough_pages_are_dark_noisy_and_only_on_request():
    """The 'rough' style (a hard scan) is drawn only when named: a random style never gives it."""
    rng = np.random.default_rng(0)
    assert all(sample_spec(rng, "3x4").style != "rough" for _ in range(200))
    d = sample_spec(np.random.default_rng(3), "3x4", "rough").distortions
    assert d.noise_sigma >= 8 and d.jpeg_quality and max(d.tint) <= 0.95 and abs(d.rotation_deg) <= 5


def test_switching_one_effect_off_keeps_the_others():
    """Each effect draws from its own generator: dropping the stains leaves the wrinkles alone."""
    sig = np.zeros((5000, 12), np.float32)
    base = sample_spec(np.random.default_rng(2), "3x4", "clean", dpi=60.0)
    both = dataclasses.replace(base, distortions=Distortions(seed=4, wrinkles=0.05, stains=2))
    only = dataclasses.replace(base, distortions=Distortions(seed=4, wrinkles=0.05))
    wr = dataclasses.replace(base, distortions=Distortions(seed=4, wrinkles=0.05))
    a, b = render_page(sig, FS, both).image, render_page(sig, FS, only).image
    assert np.array_equal(b, render_page(sig, FS, wr).image)
    diff = np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 0
    assert 0 < diff.mean() < 0.5  # stains touch a part of the page only


def test_chest_leads_at_half_gain(signal):
    spec = sample_spec(np.random.default_rng(3), "3x4", "clean", dpi=100.0, gain_limb=10.0,
                       gain_chest=5.0)
    page = render_page(signal, FS, spec)
    k = 100 / 25.4
    for m in page.meta["leads"]:
        pts = np.asarray(m["polyline"])
        i0, i1 = m["sample_range"]
        j = LEADS.index(m["lead"])
        amp_px = m["baseline_y"] - pts[:, 1]
        assert np.allclose(amp_px, signal[i0:i1, j] * m["gain_mm_mv"] * k, atol=0.01)
        assert m["gain_mm_mv"] == (5.0 if m["lead"] in CHEST_LEADS else 10.0)


def test_sample_spec_rejects_unknown_things():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unsupported layout"):
        sample_spec(rng, "5x5", "clean")
    with pytest.raises(ValueError, match="unknown style"):
        sample_spec(rng, "3x4", "fancy")
    with pytest.raises(TypeError, match="no field"):
        sample_spec(rng, "3x4", "clean", colour="red")


@pytest.mark.parametrize("seed", range(12))
def test_random_pages_are_sane(seed, signal):
    """Random specs (any layout, style, dpi, paper) render; traces stay on the page."""
    spec = sample_spec(np.random.default_rng(seed), "random", "random",
                       dpi=float(np.random.default_rng(seed).uniform(60, 120)))
    page = render_page(signal, FS, spec)
    h, w = page.image.shape[:2]
    assert page.meta["image_size"] == [w, h]
    for m in page.meta["leads"]:
        pts = np.asarray(m["polyline"])
        assert pts[:, 0].min() > -2 and pts[:, 0].max() < w + 2
    for p in page.meta["pulses"]:
        pts = np.asarray(p["polyline"])
        assert pts[:, 0].min() > 0 and pts[:, 0].max() < w


def test_foreign_conventions_draw_nothing_unless_asked(signal):
    """``foreign=0`` (the default) makes no extra draw: every earlier seed's page is unchanged;
    ``foreign=1`` draws other printers' separator bars, start labels and pulse gaps."""
    for seed in range(6):
        a = sample_spec(np.random.default_rng(seed), "3x4+1", "clean")
        b = sample_spec(np.random.default_rng(seed), "3x4+1", "clean", foreign=0.0)
        assert a == b
    drawn = [sample_spec(np.random.default_rng(seed), "3x4+1", "clean", foreign=1.0)
             for seed in range(12)]
    assert any(s.separators == "bar" for s in drawn)
    assert any(s.label_place == "start" for s in drawn)
    assert any(s.pulse == "left" and s.pulse_gap_mm < 1.0 for s in drawn)
    assert all(s.separators != "bar" for s in (sample_spec(np.random.default_rng(i), "strip",
                                                           "clean", foreign=1.0)
                                               for i in range(6)))
    no_bars = [sample_spec(np.random.default_rng(seed), "3x4+1", "clean", foreign=1.0,
                           foreign_bars=0.0) for seed in range(12)]
    assert all(s.separators != "bar" for s in no_bars)
    assert any(s.label_place == "start" for s in no_bars)


def test_separator_bars_and_start_labels_leave_the_truth_alone(signal):
    """A bar at each later panel's start, over the trace, and labels beside the trace: the
    image changes there, the ground truth does not."""
    base = sample_spec(np.random.default_rng(3), "3x4", "clean", dpi=200.0, grid="none")
    plain = dataclasses.replace(base, separators="none", labels=False)
    foreign = dataclasses.replace(base, separators="bar", bar_width_mm=0.8, bar_half_mm=5.0,
                                  bar_on_top=True, labels=True, label_place="start",
                                  pulse="left", pulse_tail_mm=0.0, pulse_gap_mm=0.0)
    p0, p1 = render_page(signal, FS, plain), render_page(signal, FS, foreign)
    np.testing.assert_array_equal(p0.truth, p1.truth)
    k = base.px_per_mm
    for m in p1.meta["leads"]:
        if m["col"] == 0:
            continue
        x = int(round(m["x0_mm"] * k - 0.5))
        y0, y1 = (int(round((m["baseline_mm"] + d) * k)) for d in (-4.0, 4.0))
        bar = p1.image[y0:y1, x - 1:x + 2].max(axis=2)  # the bar covers its whole height
        assert (bar < 100).all(), m["lead"]
    # the pulse's falling edge ends where the row's trace starts
    for pulse, row0 in zip(p1.meta["pulses"], [m for m in p1.meta["leads"] if m["col"] == 0]):
        assert abs(pulse["polyline"][-1][0] - row0["polyline"][0][0]) < 1.0
