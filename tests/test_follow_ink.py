"""The model's per-column reading is checked against the strip's ink (strips.follow_ink).

Strips are drawn directly at the model's resolution (4 px/mm across, 2 px/mm down, 60 mm tall)
so these tests need neither the renderer nor a model.
"""
import cv2
import numpy as np
import pytest

from digitize.model_spec import StripSpec
from digitize.reconstruct import LeadWindow, reconstruct
from digitize.strips import StripGeometry, follow_ink, normalise

SPEC = StripSpec()
W = 400  # 100 mm, 4 s at 25 mm/s


def _truth() -> np.ndarray:
    """Per-column trace height (mm): a slow wave with two sharp QRS spikes (+12 / -6 mm)."""
    c = np.arange(W, dtype=np.float64)
    v = 1.5 * np.sin(2 * np.pi * c / 160)
    for at in (120, 300):
        v += 12 * np.exp(-0.5 * ((c - at) / 1.2) ** 2)
        v -= 6 * np.exp(-0.5 * ((c - at - 3) / 1.2) ** 2)
    return v


def _row(v_mm):
    return (SPEC.height_mm / 2 - np.asarray(v_mm)) * SPEC.px_per_mm_y - 0.5


def _strip(v_mm: np.ndarray, label: bool = True, second_line_mm: float | None = None
           ) -> np.ndarray:
    img = np.full((SPEC.height_px, W), 255, np.uint8)
    pts = np.stack([np.arange(W), _row(v_mm)], 1)
    cv2.polylines(img, [np.round(pts * 16).astype(np.int32)], False, 0, 1, cv2.LINE_AA, shift=4)
    if label:  # a lead label printed 5-9 mm above the baseline, at the window's start
        cv2.putText(img, "V3", (6, int(round(_row(5.0)))), cv2.FONT_HERSHEY_SIMPLEX, 0.3, 0, 1)
    if second_line_mm is not None:  # another lead's flat stroke, parallel to this one
        y = int(round(_row(second_line_mm)))
        img[y, :] = 0
    return normalise(img)


def test_a_run_read_off_the_label_is_put_back_on_the_trace():
    truth = _truth()
    strip = _strip(truth)
    above = np.arange(SPEC.height_px) < _row(truth[8:16]).min() - 4  # clear of the trace
    label_rows = np.flatnonzero((strip[:, 8:16] > 0.5).any(1) & above)
    assert len(label_rows) >= 3
    read = truth.copy()
    read[8:16] = SPEC.height_mm / 2 - (label_rows.mean() + 0.5) / SPEC.px_per_mm_y  # the glyph
    fixed, n = follow_ink(read.astype(np.float32), strip, SPEC)
    assert n == 8
    assert np.abs(fixed - truth).max() < 0.6
    assert np.array_equal(fixed[16:], read[16:].astype(np.float32))  # nothing else touched


def test_a_correct_reading_with_sharp_spikes_is_left_alone():
    truth = _truth()
    strip = _strip(truth)
    read = truth.astype(np.float32)
    fixed, n = follow_ink(read, strip, SPEC)
    assert n == 0 and fixed is read


def test_a_spike_tip_just_past_faint_ink_is_left_alone():
    truth = _truth()
    strip = _strip(truth)
    read = truth.copy()
    read[120] += 1.0  # the model reads the apex a mm (two rows) higher than the ink shows
    fixed, n = follow_ink(read.astype(np.float32), strip, SPEC)
    assert n == 0


def test_a_departure_with_no_trace_ink_on_the_straight_line_is_left_alone():
    # the model follows a parallel stroke 8 mm up for 10 columns; where the line across the run
    # would lie there is no ink either (the trace itself was read as the other stroke), so
    # nothing is known better than the model's reading
    truth = _truth()
    strip = _strip(truth, label=False, second_line_mm=8.0)
    strip[:, 200:210] = np.where(np.abs(np.arange(SPEC.height_px)[:, None] - _row(8.0)) < 1,
                                 strip[:, 200:210], 0.0)
    read = truth.copy()
    read[200:210] = 8.0
    fixed, n = follow_ink(read.astype(np.float32), strip, SPEC)
    assert n == 0


def test_uncalibrated_strips_are_not_checked():
    truth = _truth()
    strip = _strip(truth)
    read = truth.copy()
    read[8:16] = 7.0
    seed = StripSpec(fixed_height_px=SPEC.height_px)
    fixed, n = follow_ink(read.astype(np.float32), strip, seed)
    assert n == 0


def test_reconstruct_counts_and_replaces_stray_columns():
    truth = np.full(W, -2.0)  # a flat trace 2 mm below the centre line
    strip_img = np.full((SPEC.height_px, W), 255, np.uint8)
    y = int(round(_row(-2.0)))
    strip_img[y, :] = 0
    strip_img[int(round(_row(7.0))) - 2:int(round(_row(7.0))) + 1, 2:10] = 0  # a label's bar
    # the page at 4 px/mm both ways: the strip cut from it is strip_img again
    page = cv2.resize(strip_img, (W, SPEC.height_px * 2), interpolation=cv2.INTER_NEAREST)
    geom = StripGeometry(x0_mm=0.0, width_mm=W / 4.0, centre_mm=SPEC.height_mm / 2,
                         px_per_mm=4.0, page_to_image=np.eye(3))
    win = LeadWindow("II", 0.0, W / 4.0 / 25.0, 10.0, 25.0, geom)

    class Engine:  # reads the trace, but columns 2-9 off the label's bar
        spec = SPEC

        def run(self, strips, batch_size=16):
            v = np.full(strips[0].shape[1], -2.0, np.float32)
            v[2:10] = 7.0
            return [(v, np.ones_like(v))]

    sig, results = reconstruct(page, [win], Engine(), 500.0, 2000)
    assert results[0].stray_columns == 8
    assert np.nanmax(np.abs(sig[:, 1] - truth[0] / 10.0)) < 0.06
    assert np.isnan(sig[:, 0]).all()


@pytest.mark.parametrize("n", [0, 1, 2])
def test_too_short_to_check(n):
    v = np.zeros(n, np.float32)
    assert follow_ink(v, np.zeros((SPEC.height_px, n), np.float32), SPEC) == (v, 0)


def test_readings_at_the_strip_edge_over_blank_paper_at_a_window_end_are_not_written():
    """A window starting (ending) a little before (after) the trace's ink: over the blank
    columns the model, with nothing to follow, can read the strip's edge. Those columns, and
    nothing interpolated towards them, are left out of the record; a reading at the edge over
    ink (a tall wave, a photo's dark border) is kept as read."""
    top = SPEC.height_mm / 2 - 0.5  # the strip's top edge
    strip_img = np.full((SPEC.height_px, W), 255, np.uint8)
    strip_img[int(round(_row(-2.0))), 4:W - 3] = 0  # the trace: blank paper either side
    strip_img[:, 200] = 0  # a line across the strip mid-window
    strip_img[:, W - 10] = 0  # ... and near the end
    page = cv2.resize(strip_img, (W, SPEC.height_px * 2), interpolation=cv2.INTER_NEAREST)
    geom = StripGeometry(x0_mm=0.0, width_mm=W / 4.0, centre_mm=SPEC.height_mm / 2,
                         px_per_mm=4.0, page_to_image=np.eye(3))
    win = LeadWindow("II", 0.0, W / 4.0 / 25.0, 10.0, 25.0, geom)

    class Engine:
        spec = SPEC

        def run(self, strips, batch_size=16):
            v = np.full(strips[0].shape[1], -2.0, np.float32)
            v[1:3] = top  # over blank paper near the start: cut (column 3 with them)
            v[200] = top  # over ink, mid-window: kept
            v[W - 10] = -top  # over ink near the end: kept
            v[-2] = -top  # over blank paper near the end: cut, with the column after it
            return [(v, np.ones_like(v))]

    fs = 500.0
    sig, results = reconstruct(page, [win], Engine(), fs, 2000, trim_conf=0.3)
    x = sig[:, 1]
    assert results[0].kept == (3, W - 3)
    drawn = np.flatnonzero(np.isfinite(x))
    col = 1.0 / (4.0 * 25.0)  # s per column
    assert abs(drawn[0] / fs - 3 * col) <= 1 / fs and abs(drawn[-1] / fs - (W - 3) * col) <= 1 / fs
    assert np.nanmax(np.abs(x[drawn[0]:drawn[0] + 10] + 0.2)) < 0.01  # not pulled to the edge
    assert np.nanmax(x) > 2.5 and np.nanmin(x) < -2.5  # the readings over ink stay
    # without trimming (how the trainer's evaluation reads), every column is written
    sig, results = reconstruct(page, [win], Engine(), fs, 2000)
    assert results[0].kept is None and np.isfinite(sig[:, 1]).sum() > len(drawn)


def test_a_finely_drawn_window_is_read_again_at_more_columns_in_its_middle():
    """On a page drawn at 10 px/mm or more with a pen at most 0.45 mm wide, each window is read
    a second time at twice the model's columns per mm; that reading is kept in the window's
    middle where it agrees with the first to 0.6 mV, the first one at the ends (0.1 s) and
    where they part. A page drawn coarser, or with a broader pen, is read once. Oracle: an engine that reads 2 mm at the model's columns and 3 mm
    at twice as many (one column 20 mm off, a stray), so each sample says which it came
    from."""
    from digitize.reconstruct import FINE_EDGE_S, FINE_PX_PER_MM

    class Engine:
        spec = SPEC
        calls = []

        def run(self, strips, batch_size=16):
            self.calls.append(strips[0].shape[1])
            fine = strips[0].shape[1] > W
            v = np.full(strips[0].shape[1], 3.0 if fine else 2.0, np.float32)
            if fine:
                v[len(v) // 3] = 20.0
            return [(v, np.ones_like(v))]

    fs = 500.0
    for k, finer in ((FINE_PX_PER_MM, True), (FINE_PX_PER_MM * 0.8, False)):
        page = np.full((int(SPEC.height_mm * k), int(W / 4.0 * k)), 255, np.uint8)
        geom = StripGeometry(x0_mm=0.0, width_mm=W / 4.0, centre_mm=SPEC.height_mm / 2,
                             px_per_mm=k, page_to_image=np.eye(3))
        win = LeadWindow("II", 0.0, W / 4.0 / 25.0, 10.0, 25.0, geom)
        engine = Engine()
        engine.calls = []
        # (recentre off: this oracle's trace runs 3 mm off the centre line, which would also
        # have it read again along its path; that reading is tested in test_shipped_model)
        sig, _ = reconstruct(page, [win], engine, fs, 2000, pen_mm=0.3, recentre=False)
        x = sig[:, 1]
        t = np.arange(len(x)) / fs
        drawn = np.isfinite(x)
        ends = drawn & ((t < FINE_EDGE_S) | (t >= win.t1 - FINE_EDGE_S))
        middle = drawn & ~ends
        assert np.allclose(x[ends], 0.2, atol=1e-3)
        if finer:
            assert engine.calls == [W, 2 * W]
            assert np.isclose(x[middle], 0.3, atol=1e-3).mean() > 0.95
            assert np.nanmax(x) < 1.0  # the stray column is not taken
        else:
            assert engine.calls == [W]
            assert np.allclose(x[middle], 0.2, atol=1e-3)
    # a broad pen (or none measured) is read once whatever the resolution
    for pen in (0.6, None):
        engine = Engine()
        engine.calls = []
        k = FINE_PX_PER_MM
        page = np.full((int(SPEC.height_mm * k), int(W / 4.0 * k)), 255, np.uint8)
        geom = StripGeometry(x0_mm=0.0, width_mm=W / 4.0, centre_mm=SPEC.height_mm / 2,
                             px_per_mm=k, page_to_image=np.eye(3))
        reconstruct(page, [LeadWindow("II", 0.0, W / 100.0, 10.0, 25.0, geom)], engine, fs,
                    2000, pen_mm=pen)
        assert engine.calls == [W]


def test_a_page_levelled_two_ways_is_read_twice_and_averaged():
    """A noisy scan is read from two levelled images (``strips.SCAN_LIGHT``); each sample is
    the mean of the readings that drew it. Oracle: an engine that reads 1 mm on the image
    with a line and 3 mm on the blank one, and drops the blank one's last columns
    (confidence 0)."""
    class Engine:
        spec = SPEC

        def run(self, strips, batch_size=16):
            light = strips[0].max() <= 0  # blank paper
            v = np.full(strips[0].shape[1], 3.0 if light else 1.0, np.float32)
            c = np.ones_like(v)
            if light:
                c[-20:] = 0.0
            return [(v, c)]

    k, fs = 4.0, 500.0
    dark = np.full((int(SPEC.height_mm * k), W), 255, np.uint8)
    dark[dark.shape[0] // 2 - 4, :] = 0  # a line 1 mm above the centre
    light = np.full_like(dark, 255)
    geom = StripGeometry(x0_mm=0.0, width_mm=W / k, centre_mm=SPEC.height_mm / 2,
                         px_per_mm=k, page_to_image=np.eye(3))
    win = LeadWindow("II", 0.0, W / k / 25.0, 10.0, 25.0, geom)
    one, _ = reconstruct(dark, [win], Engine(), fs, 2000, trim_conf=0.3)
    two, res = reconstruct([dark, light], [win], Engine(), fs, 2000, trim_conf=0.3)
    x, t = two[:, 1], np.arange(2000) / fs
    drawn = np.isfinite(one[:, 1])
    assert np.allclose(one[drawn, 1], 0.1, atol=1e-4)
    cols = k * 25.0  # columns a second
    end = (W - 20 - 0.5) / cols + 1 / cols  # the blank reading's last kept column and its slack
    assert np.allclose(x[drawn & (t < end - 0.005)], 0.2, atol=1e-4)  # (0.1 + 0.3) / 2 mV
    assert np.allclose(x[drawn & (t > end + 0.005)], 0.1, atol=1e-4)  # the line's alone
    assert np.array_equal(np.isfinite(x), drawn)
    assert res[0].value_mm.max() == 1.0  # the first reading's columns stand for the window
