"""Page geometry measured from the image (no model): scale, rows, pulses, photos, quality rules."""
import json

import cv2
import numpy as np
import pytest

from conftest import REPO
from digitize.geometry import refine_pitch
from digitize.page import analyse, block_max, find_rows, open_lines, page_homography, pen_opening
from digitize.quality import chest_gain_doubt, page_doubts
from trainer.render import render_page, sample_spec

PAGE = REPO / "examples" / "pages" / "00000_00008_3x4p1_clean"


def test_refine_pitch_is_precise_and_says_when_there_is_no_grid():
    rng = np.random.default_rng(0)
    x = np.arange(2400)
    p = 7.123
    grid = (np.cos(2 * np.pi * x / p) > 0.9).astype(float) + 0.3 * rng.normal(size=len(x))
    est, ratio = refine_pitch(grid, p * 1.02, span=0.06)
    assert abs(est / p - 1) < 2e-4 and ratio > 8
    _, ratio = refine_pitch(rng.normal(size=len(x)), p, span=0.06)
    assert ratio < 4.5


def test_clean_page_geometry_matches_the_truth():
    meta = json.loads(PAGE.with_suffix(".json").read_text())
    g = analyse(cv2.imread(str(PAGE.with_suffix(".png"))))
    k = meta["px_per_mm"]
    assert abs(g.px_per_mm / k - 1) < 5e-4 and g.scale_source == "grid"
    assert abs(g.skew_deg) < 0.1
    firsts = [m for m in meta["leads"] if m["col"] == 0]
    assert len(g.rows) == len(firsts) == 4
    for row, m in zip(g.rows, firsts):
        assert abs(row.x_start - m["x0_mm"] * k) < 1.5  # px
        assert row.pulse == "left" and abs(row.pulse_mm - 10) < 1.5


def test_photographed_page_is_flattened():
    img = cv2.imread(str(PAGE.with_suffix(".png")))
    h, w = img.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = np.float32([[150, 120], [w + 60, 40], [w + 120, h + 150], [90, h + 80]])
    H = cv2.getPerspectiveTransform(src, dst)
    photo = cv2.warpPerspective(img, H, (w + 260, h + 260), borderValue=(60, 70, 60))
    found = page_homography(photo)
    assert found is not None
    hom, (pw, ph) = found
    assert abs(pw / ph - 279.4 / 215.9) < 0.01  # letter
    corners = cv2.perspectiveTransform(dst.reshape(-1, 1, 2), hom).reshape(-1, 2)
    expect = np.float32([[0, 0], [pw - 1, 0], [pw - 1, ph - 1], [0, ph - 1]])
    assert np.abs(corners - expect).max() < 0.01 * pw
    assert page_homography(img) is None  # a scan: paper to the edges
    # a softer photo: the sheet's edges to a pixel or two, cut SHEET.outline_inset inside them
    from digitize.page import SHEET
    soft = cv2.GaussianBlur(photo, (0, 0), 1.0)
    hom, (pw, ph) = page_homography(soft)
    corners = cv2.perspectiveTransform((dst - 0.5).reshape(-1, 1, 2), hom).reshape(-1, 2)
    expect = np.float32([[0, 0], [pw - 1, 0], [pw - 1, ph - 1], [0, ph - 1]])
    inset = SHEET.outline_inset * max(soft.shape[:2])
    assert np.abs(np.abs(corners - expect) - inset).max() < 1.5


def test_shaded_sheet_on_a_coloured_background_is_flattened():
    """A shadow over a third of the sheet makes its shaded paper darker than the lit
    background's threshold: the brightest region is no quadrilateral. The sheet is still
    the image's least saturated region (the background is coloured), and its outline is
    found from that."""
    from digitize.page.sheet import _homography_from_region
    img = cv2.imread(str(PAGE.with_suffix(".png")))
    h, w = img.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = np.float32([[150, 120], [w + 60, 40], [w + 120, h + 150], [90, h + 80]])
    H = cv2.getPerspectiveTransform(src, dst)
    photo = cv2.warpPerspective(img, H, (w + 260, h + 260),
                                borderValue=(200, 90, 180)).astype(np.float32)
    photo[:, int(0.6 * photo.shape[1]):] *= 0.45  # the shadow, on paper and background alike
    photo = np.clip(photo, 0, 255).astype(np.uint8)
    # the brightness alone does not find the sheet (the premise of this test)
    s = 800.0 / max(photo.shape[:2])
    small = cv2.resize(photo, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    v = cv2.GaussianBlur(small.max(axis=2), (0, 0), 2)
    _, bright = cv2.threshold(v, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    assert _homography_from_region(photo, bright, s) is None
    found = page_homography(photo)
    assert found is not None
    hom, (pw, ph) = found
    corners = cv2.perspectiveTransform(dst.reshape(-1, 1, 2), hom).reshape(-1, 2)
    expect = np.float32([[0, 0], [pw - 1, 0], [pw - 1, ph - 1], [0, ph - 1]])
    assert np.abs(corners - expect).max() < 0.01 * pw
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)  # a grey scan: still no sheet
    assert page_homography(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)) is None


def test_a_textured_background_holds_no_trace_row():
    """A strip photographed on a grainy cloth, its left end outside the frame (no outline to
    flatten it by): the cloth's grain beyond the strip's right end and its edges along the top
    and bottom are no ink of the trace, whose row is found at its height, within the sheet."""
    rng = np.random.default_rng(3)
    w, h = 1000, 240
    img = np.empty((h, w, 3), np.float32)
    img[:] = (80, 120, 85)  # green cloth
    img += rng.normal(0, 28, size=img.shape)  # ... and its grain
    sheet = np.array([[-60, 40], [w - 60, 20], [w - 20, h - 25], [-20, h - 10]], np.int32)
    cv2.fillPoly(img, [sheet], (222, 226, 230))
    x = np.arange(120, 945)
    y = 125 - 0.05 * (x - 120) + 30 * (np.sin(x / 60.0 * 2 * np.pi) ** 15)
    cv2.polylines(img, [np.stack([x, y], 1).astype(np.int32)], False, (30, 30, 30), 2,
                  cv2.LINE_AA)
    photo = np.clip(img, 0, 255).astype(np.uint8)
    assert page_homography(photo) is None  # no outline: corners outside the frame
    g = analyse(photo)
    assert len(g.rows) == 1
    r = g.rows[0]
    x0, x1 = cv2.perspectiveTransform(np.array([[[r.x_left, r.y]], [[r.x_right, r.y]]]),
                                      g.to_image).reshape(-1, 2)[:, 0]
    assert 100 < x0 < 140 and 925 < x1 < 965  # the trace's ends, not the cloth's


def _quality(amplitudes: dict) -> dict:
    leads = {lead: dict(status="ok", reasons=[], amplitude_mv=a) for lead, a in amplitudes.items()}
    return dict(status="ok", reasons=[], leads=leads,
                einthoven=dict(ii_minus_i_minus_iii=0.1, avr_plus_avl_plus_avf=0.1))


def test_page_doubts_lower_every_ok_lead_to_warn():
    q = _quality({"I": 1.0, "II": 1.2, "V1": 2.0})
    page_doubts(q, [])
    assert q["status"] == "ok"
    page_doubts(q, ["no calibration pulse found: gain 10 mm/mV assumed"])
    assert q["status"] == "warn" and all(x["status"] == "warn" for x in q["leads"].values())
    q = _quality({"I": 1.0})
    q["einthoven"]["ii_minus_i_minus_iii"] = 0.9
    page_doubts(q, [])
    assert q["leads"]["I"]["status"] == "warn"


def test_small_chest_leads_are_flagged():
    limb = {x: 1.2 for x in ("I", "II", "III", "aVR", "aVL", "aVF")}
    normal = _quality({**limb, **{f"V{i}": 2.0 for i in range(1, 7)}})
    chest_gain_doubt(normal)
    assert normal["status"] == "ok"
    half = _quality({**limb, **{f"V{i}": 0.9 for i in range(1, 7)}})
    chest_gain_doubt(half)
    assert half["leads"]["V3"]["status"] == "warn" and half["leads"]["II"]["status"] == "ok"


@pytest.mark.parametrize("pulse,tol_px", [("left", 0.5), ("right", 0.6), ("none", 1.0)])
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("split", [False, True])
def test_trace_start_to_a_fraction_of_a_pixel(pulse, tol_px, seed, split):
    """At 100 Hz a 0.1-mm error in a row's start costs several dB: the pulse's timing stroke
    gives it to a few tenths of a pixel whatever the pen width, antialiasing or paper speed,
    and whether the pulse is plain or stepped (split gain: its falling stroke is half as tall).
    (A 1-2 px pen drawn without antialiasing is itself placed only to about ±0.4 px: OpenCV
    offsets even-width strokes by half a pixel, one way going up and the other going down;
    a stroke half as tall can land on the other column, and a stepped pulse's second top can
    tip the skew search by 0.05°: 0.4 px more for stepped.)"""
    rng = np.random.default_rng(seed)
    t = np.arange(5000) / 500.0
    sig = np.stack([0.6 * np.sin(2 * np.pi * 1.3 * t + j) ** 9 for j in range(12)], 1)
    spec = sample_spec(rng, "3x4+1", "clean", pulse=pulse, dpi=float(rng.uniform(80, 250)),
                       speed=float(rng.choice([25.0, 50.0])),
                       trace_width_mm=float(rng.uniform(0.15, 0.5)),
                       antialias=bool(rng.random() < 0.5))
    spec.gain_chest = spec.gain_limb / 2 if split else spec.gain_limb
    tol_px += 0.4 if split else 0.0
    page = render_page(sig.astype(np.float32), 500.0, spec)
    g = analyse(page.image)
    k = page.meta["px_per_mm"]
    firsts = [m for m in page.meta["leads"] if m["col"] == 0]
    assert len(g.rows) == len(firsts)
    for row, m, p in zip(g.rows, firsts, page.meta["pulses"] or [None] * len(firsts)):
        assert row.pulse == pulse
        # back to image px (a rendered page is level, but the skew search may tilt it 0.05°)
        x = cv2.perspectiveTransform(np.array([[[row.x_start, row.y]]]), g.to_image)[0, 0, 0]
        assert abs(x - m["x0_mm"] * k) < tol_px, (x, m["x0_mm"] * k)
        if p is not None:  # the stepped pulse's two heights: limb, then chest (rhythm: plain)
            assert abs(row.pulse_mm - p["height_mm"]) < 0.5 and abs(row.step_mm - p["step_mm"]) < 0.5


@pytest.mark.parametrize("dpi", [150.0, 200.0])
def test_a_qrs_at_the_pulse_fall_does_not_move_the_time_origin(dpi):
    """A trace drawn flush with its pulse (ecg-image-kit's convention) whose first sample
    lies on a QRS: the R wave's upstroke merges with the pulse's falling stroke and pulled its
    ink centroid 0.3-0.6 mm late (eik val 00113, three rows of four). The stroke's edge inside
    the pulse places it. Oracle: the renderer's panel start, every row."""
    rng = np.random.default_rng(7)
    t = np.arange(5000) / 500.0
    phase = (t + 0.975) % 1.0  # an R peak 25 ms after each row's first sample
    beat = 1.6 * np.exp(-0.5 * ((phase - 1.0 + 1e-9) / 0.012) ** 2) + \
        1.6 * np.exp(-0.5 * (phase / 0.012) ** 2)
    sig = np.stack([beat * (1.0 if j % 3 else 0.8) for j in range(12)], 1)
    spec = sample_spec(rng, "3x4+1", "clean", pulse="left", dpi=dpi, speed=25.0,
                       trace_width_mm=0.3, antialias=True, pulse_tail_mm=0.0, pulse_gap_mm=0.0,
                       grid="lines")
    page = render_page(sig.astype(np.float32), 500.0, spec)
    g = analyse(page.image)
    k = page.meta["px_per_mm"]
    firsts = [m for m in page.meta["leads"] if m["col"] == 0]
    assert len(g.rows) == len(firsts)
    for row, m in zip(g.rows, firsts):
        assert row.pulse == "left"
        x = cv2.perspectiveTransform(np.array([[[row.x_start, row.y]]]), g.to_image)[0, 0, 0]
        assert abs(x - m["x0_mm"] * k) < 0.6, (x, m["x0_mm"] * k)


def test_rows_take_their_own_pulse_gain_only_when_several_agree():
    from digitize.page import PageGeometry, Row
    from digitize.pipeline import row_gains

    def geom(heights):
        rows = [Row(y=10.0 * i, x_left=0.0, x_right=1.0, pulse_mm=h) for i, h in enumerate(heights)]
        return PageGeometry(px_per_mm=8.0, scale_source="grid", skew_deg=0.0, rows=rows,
                            deskew=np.eye(3), size=(10, 10))
    twelve = [10.1, 9.8, 9.9, 10.2, 9.7, 10.0, 5.1, 4.9, 5.2, 5.0, 4.8, 5.1]  # 12x1, chest at half
    assert row_gains(geom(twelve), 10.0, "auto") == [10.0] * 6 + [5.0] * 6
    assert row_gains(geom(twelve), 10.0, "10") == [10.0] * 12  # an explicit --gain wins
    one_odd = [10.0, 10.1, 4.9, 9.9, float("nan"), 10.0]  # one misread pulse: the page's gain
    assert row_gains(geom(one_odd), 10.0, "auto") == [10.0] * 6


def test_split_gain_needs_two_agreeing_steps_and_names_rhythm_rows_by_their_pulse():
    from digitize.page import PageGeometry, Row
    from digitize.pipeline import chest_gain_from_steps, single_gain

    def geom(pairs):
        rows = [Row(y=10.0 * i, x_left=0.0, x_right=1.0, pulse="left", pulse_mm=h, step_mm=s)
                for i, (h, s) in enumerate(pairs)]
        return PageGeometry(px_per_mm=8.0, scale_source="grid", skew_deg=0.0, rows=rows,
                            deskew=np.eye(3), size=(10, 10))
    nan = float("nan")
    stepped = geom([(10.1, 4.9), (9.8, 5.2), (10.0, 5.0), (5.1, 5.1)])  # 3x4+1, V1 strip
    assert chest_gain_from_steps(stepped, 10.0) == 5.0
    assert single_gain(stepped.rows[3], (10.0, 5.0)) == 5.0  # the strip: a chest lead
    assert single_gain(stepped.rows[0], (10.0, 5.0)) is None  # stepped: by lead
    assert chest_gain_from_steps(geom([(10.1, 4.9), (9.8, 9.8), (10.0, 10.0)]), 10.0) is None
    assert chest_gain_from_steps(geom([(10.0, 10.0), (nan, nan), (9.9, 9.9)]), 10.0) is None
    assert chest_gain_from_steps(geom([(5.0, 2.6), (5.1, 2.4), (4.9, 2.5)]), 5.0) == 2.5
    # two 'steps' among seven pulses (eik val scan 00207: the row above read as a second top)
    assert chest_gain_from_steps(geom([(10.0, 24.1)] * 2 + [(10.0, 10.0)] * 5), 10.0) is None
    # 3x4+3: the three rhythm strips' pulses are plain
    assert chest_gain_from_steps(geom([(10.0, 5.0)] * 3 + [(10.0, 10.0)] * 3), 10.0) == 5.0


def test_grid_coordinate_follows_a_changing_pitch():
    """A photo's residual perspective stretches the grid along a row: the grid's local phase
    gives the paper's millimetres at every pixel, where one pitch for the row would drift."""
    from digitize.geometry import grid_coordinate
    x = np.arange(3000, dtype=np.float64)
    true_mm = x / 6.0 + 1.4e-6 * x ** 2  # 6 px/mm at the left, 5 % finer at the right
    rng = np.random.default_rng(1)
    profile = (np.cos(2 * np.pi * true_mm) > 0.8) * 40.0 + rng.normal(0, 5, len(x))
    mm = grid_coordinate(profile, 5.85)
    assert mm is not None
    err = (mm - mm[1500]) - (true_mm - true_mm[1500])
    assert np.abs(err[100:-100]).max() < 0.1  # mm (0.1 mm = 4 ms at 25 mm/s)
    one_pitch = (x - 1500) / 5.85 - (true_mm - true_mm[1500])
    assert np.abs(one_pitch[100:-100]).max() > 2  # mm
    assert grid_coordinate(rng.normal(0, 5, len(x)), 5.85) is None  # no grid: no answer


def test_paper_region_only_for_a_sheet_on_a_background():
    from digitize.page import paper_region
    page = np.full((400, 600, 3), 245, np.uint8)
    page[::6, :] = 200  # a grid
    page[:, ::6] = 200
    page[200:203, 40:560] = 30  # a trace
    assert paper_region(page, 6.0) is None  # a scan: paper to the edges
    photo = np.full((500, 700, 3), 70, np.uint8)
    photo[50:450, 50:650] = page
    region = paper_region(photo, 6.0)
    assert region is not None
    assert region[250, 350] == 1 and region[20, 20] == 0 and region[52, 350] == 0  # 2 mm in


def test_a_dark_stain_on_a_scan_is_no_background():
    """A scan whose left third lies under a dark stain (a crumpled sheet's shadow, new eik
    val scan 00305: read as a photograph that could not be flattened, and refused) shows the
    paper's grid under the stain; a photograph's background does not."""
    from digitize.page import paper_region
    page = np.full((600, 900, 3), 245, np.uint8)
    page[::6, :] = 200  # a grid
    page[:, ::6] = 200
    page[300:303, 40:860] = 30  # a trace
    stained = page.copy()
    stained[:, :300] = (stained[:, :300] * 0.3).astype(np.uint8)  # grid still under it
    assert paper_region(stained, 6.0) is None
    shaded = page.copy()
    shaded[:, :300] = 60  # a dark background beside the sheet: no grid
    assert paper_region(shaded, 6.0) is not None


def test_a_flat_lead_keeps_its_row():
    """A low-amplitude lead draws a nearly straight line for most of its 250 mm: it must not be
    taken for a grid line and removed (its row would be lost and the layout misread)."""
    t = np.arange(5000) / 500.0
    sig = np.stack([0.8 * np.sin(2 * np.pi * 1.2 * t + j) ** 15 for j in range(12)], 1)
    sig[:, 2] = 0.01 * np.sin(2 * np.pi * 0.3 * t)  # lead III: flat
    spec = sample_spec(np.random.default_rng(5), "6x1", "clean", dpi=110.0, pulse="left",
                       lead_group="limb", trace_width_mm=0.35)
    page = render_page(sig.astype(np.float32), 500.0, spec)
    assert len(analyse(page.image).rows) == 6


def test_a_faint_broken_pen_keeps_its_rows():
    """The committed 6x2 scan draws a thin pen that the ink mask breaks into specks: dropping
    specks (against grid dots) must not drop the rows with them."""
    g = analyse(cv2.imread(str(REPO / "examples" / "pages" / "00000_00010_6x2_scan.jpg")))
    assert len(g.rows) == 6


def test_rhythm_strip_lead_is_told_from_a_panel_of_like_shape_by_its_size():
    """A V1 rhythm strip and an aVR panel can both be negative spikes correlating at 0.97:
    the panel that explains the strip's amplitude too is the one it repeats."""
    from digitize.leads import LEADS
    from digitize.pipeline import _identify_rhythm
    fs, n = 100, 1000
    t = np.arange(n) / fs
    beat = -np.exp(-0.5 * ((t % 0.9 - 0.3) / 0.02) ** 2)
    panels = np.full((n, 12), np.nan)
    q = n // 4
    # the V1 panel as read: a little noise; the aVR panel: the same shape, a third the size
    panels[q:2 * q, LEADS.index("aVR")] = 0.5 * beat[q:2 * q]
    panels[2 * q:3 * q, LEADS.index("V1")] = 1.5 * beat[2 * q:3 * q] + 0.08 * np.sin(
        40 * t[2 * q:3 * q])
    panels[3 * q:, LEADS.index("V5")] = -beat[3 * q:]
    v1_strip = 1.5 * beat + 0.01 * np.cos(5 * t)
    assert _identify_rhythm(panels, [v1_strip], fs) == ("V1",)
    # a strip no panel explains keeps the standard lead of its row
    assert _identify_rhythm(panels, [np.sin(3 * t)], fs) == ("II",)


def test_a_weak_periodicity_does_not_overrule_rows_that_agree():
    """A page without grid can show a weak periodic profile 3 % off the 1-mm pitch (text,
    separators; here faint stripes in noise, peak ratio ~5): the rows, whose pulse-to-end
    lengths agree, give the scale."""
    t = np.arange(5000) / 500.0
    sig = np.stack([0.8 * np.sin(2 * np.pi * 1.2 * t + j) ** 15 for j in range(12)], 1)
    spec = sample_spec(np.random.default_rng(3), "12x1", "clean", dpi=200.0, pulse="right",
                       grid="none", labels=False)
    page = render_page(sig.astype(np.float32), 500.0, spec)
    k = page.meta["px_per_mm"]
    x = np.arange(page.image.shape[1])
    stripes = 0.5 * (np.cos(2 * np.pi * x / (1.03 * k)) > 0.8)
    noise = np.random.default_rng(1).normal(0, 3, page.image.shape[:2])
    img = np.clip(page.image - stripes[None, :, None] + noise[..., None], 0, 255).astype(np.uint8)
    g = analyse(img)
    assert g.scale_source == "rows" and abs(g.px_per_mm / k - 1) < 0.002


def test_a_lone_pulse_on_the_other_side_is_not_a_pulse():
    """All rows of a printout have their pulses on one side: a "left pulse" found in the last
    row (its label, the footer's text) while the others end in right pulses is demoted, and
    the row takes the others' start."""
    from digitize.page import Row
    from digitize.page.calibration import _consensus
    k = 4.0
    rows = [Row(y=100.0 * i, x_left=30.0, x_right=1010.0, x_start=31.0, x_end=1000.0,
                pulse="right", pulse_mm=10.0) for i in range(5)]
    rows.append(Row(y=600.0, x_left=20.0, x_right=1010.0, x_start=50.0, x_end=1012.0,
                    pulse="left", pulse_mm=4.0))
    _consensus(rows, k)
    assert rows[-1].pulse == "none" and not np.isfinite(rows[-1].pulse_mm)
    assert rows[-1].x_start == 31.0 and rows[-1].x_end == 1000.0


def _photo_of(page: np.ndarray, dst: np.ndarray, size: tuple[int, int], shade=None):
    h, w = page.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    H = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    photo = cv2.warpPerspective(page, H, size, borderValue=(60, 70, 60)).astype(np.float32)
    if shade is not None:
        photo *= shade[..., None]
    return cv2.GaussianBlur(np.clip(photo, 0, 255).astype(np.uint8), (0, 0), 1.0)


@pytest.mark.parametrize("case", ["dim top", "corner off the frame", "shadow across"])
def test_sheet_outline_past_a_dim_band_and_the_frame(case):
    """The sheet's sides are its sharp edges, not where a global brightness threshold cuts a
    dimly lit band off, and a side that leaves the image is still fitted along what shows."""
    from digitize.page import SHEET
    img = cv2.imread(str(PAGE.with_suffix(".png")))
    h, w = img.shape[:2]
    if case == "dim top":
        size = (w + 260, h + 260)
        dst = np.float32([[150, 120], [w + 60, 40], [w + 120, h + 150], [90, h + 80]])
        yy = np.arange(size[1], dtype=np.float32)[:, None] * np.ones((1, size[0]), np.float32)
        shade = np.clip(0.45 + 0.55 * (yy - 40) / 500, 0.45, 1.0)  # the top 500 px dimmed
    elif case == "shadow across":  # a dark band cuts the lit sheet in two pieces
        size = (w + 260, h + 260)
        dst = np.float32([[150, 120], [w + 60, 40], [w + 120, h + 150], [90, h + 80]])
        yy, xx = np.mgrid[:size[1], :size[0]].astype(np.float32)
        d = (xx - 0.25 * size[0]) - 0.6 * (yy - 0.5 * size[1])
        shade = np.where(np.abs(d) < 90, 0.3, 1.0).astype(np.float32)
        shade = cv2.GaussianBlur(shade, (0, 0), 15)
    else:
        size = (w + 100, h + 200)
        dst = np.float32([[60, 90], [w + 60, -12], [w + 90, h + 120], [30, h + 150]])
        shade = None
    photo = _photo_of(img, dst, size, shade)
    found = page_homography(photo)
    assert found is not None
    hom, (pw, ph) = found
    corners = cv2.perspectiveTransform((dst - 0.5).reshape(-1, 1, 2), hom).reshape(-1, 2)
    expect = np.float32([[0, 0], [pw - 1, 0], [pw - 1, ph - 1], [0, ph - 1]])
    inset = SHEET.outline_inset * max(photo.shape[:2])
    assert np.abs(np.abs(corners - expect) - inset).max() < 2.0


def test_a_misjudged_sheet_shape_is_made_square_by_the_grid():
    """A flattened photo stretched 9 % vertically (an A4 sheet taken for letter): the grid's
    vertical pitch gives the factor that makes its pixels square again."""
    from digitize.pipeline import vertical_stretch
    img = cv2.imread(str(PAGE.with_suffix(".png")))
    h, w = img.shape[:2]
    tall = cv2.resize(img, (w, int(round(h * 1.09))), interpolation=cv2.INTER_LINEAR)
    g = analyse(tall, flattened=True)
    stretch = vertical_stretch(g)
    assert stretch is not None and abs(stretch * 1.09 - 1) < 0.003
    assert vertical_stretch(analyse(img, flattened=True)) is None


def test_a_trace_cut_by_the_image_edge_starts_where_the_paper_was_cut():
    """A strip's trace runs the paper's whole width; a flattened photo is cut a few px inside
    the sheet's outline. The row's start and end are the cut-away paper's edges, not the
    image's (else every sample is late by the cut: ~25 ms on the val strip photos)."""
    t = np.arange(5000) / 500.0
    sig = np.stack([0.8 * np.sin(2 * np.pi * 1.2 * t + j) ** 15 for j in range(12)], 1)
    spec = sample_spec(np.random.default_rng(2), "strip", "clean", dpi=200.0)
    page = render_page(sig.astype(np.float32), 500.0, spec)
    full = analyse(page.image).rows[0]
    cut = 5
    g = analyse(page.image[:, cut:-cut], flattened=True, border=cut)
    r = g.rows[0]
    assert abs((r.x_start + cut) - full.x_start) < 0.6
    assert abs((r.x_end + cut) - full.x_end) < 0.6


def test_a_row_broken_by_a_stain_keeps_its_place():
    """A stain (or a fold, a scribble) breaks one row's trace for 30 mm: the row keeps the
    others' extent instead of being dropped (a 6x1 page would be read as 3x4+2)."""
    t = np.arange(5000) / 500.0
    sig = np.stack([0.8 * np.sin(2 * np.pi * 1.2 * t + j) ** 15 for j in range(12)], 1)
    spec = sample_spec(np.random.default_rng(5), "6x1", "clean", dpi=110.0, pulse="left",
                       lead_group="limb", trace_width_mm=0.35)
    page = render_page(sig.astype(np.float32), 500.0, spec)
    img = page.image.copy()
    k = page.meta["px_per_mm"]
    lead = page.meta["leads"][3]
    y = int(round(lead["baseline_y"]))
    x0 = int(round((lead["x0_mm"] + 60) * k))
    img[y - int(11 * k):y + int(11 * k), x0:x0 + int(30 * k)] = 255  # the trace there is gone
    rows = analyse(img).rows
    assert len(rows) == 6
    assert abs(rows[3].x_start - rows[2].x_start) < 1.0


def test_a_pulsed_row_whose_ink_starts_early_takes_the_others_start():
    """Rows end in right-hand pulses; one row's ink starts 5 mm early (a stroke at the image
    edge), too far from 250 mm before its end to be trusted: it takes the others' start, and a
    row whose pulse was missed takes their start and end."""
    from digitize.page import Row
    from digitize.page.calibration import _consensus
    k = 10.0
    rows = [Row(y=300.0 * i, x_left=130.0, x_right=2714.0, x_start=132.0, x_end=2631.8,
                pulse="right", pulse_mm=10.0) for i in range(5)]
    rows[0].x_start, rows[0].x_left = 84.4, 82.0
    rows.append(Row(y=1600.0, x_left=130.0, x_right=2810.0, x_start=140.0, x_end=2700.0))
    _consensus(rows, k)
    assert abs(rows[0].x_start - 132.0) < 0.5
    assert rows[-1].x_start == 132.0 and rows[-1].x_end == 2631.8


def test_a_12x1_page_at_5_mm_mv_with_chest_leads_at_half_reads_2_5():
    """12x1 pages are often printed at 5 mm/mV; with the chest leads at half that, their rows'
    pulses are 2.5 mm high (they were not pulses at all under a 3-mm floor, and V1-V6 came out
    at twice their size)."""
    from digitize.pipeline import gain_from_pulses, row_gains
    t = np.arange(5000) / 500.0
    sig = np.stack([0.6 * np.sin(2 * np.pi * 1.3 * t + j) ** 9 for j in range(12)], 1)
    spec = sample_spec(np.random.default_rng(4), "12x1", "clean", dpi=200.0, pulse="left",
                       gain_limb=5.0, gain_chest=2.5, grid="lines", grid_colour="red")
    g = analyse(render_page(sig.astype(np.float32), 500.0, spec).image)
    assert len(g.rows) == 12 and all(r.pulse == "left" for r in g.rows)
    gain, _ = gain_from_pulses(g, "auto")
    assert gain == 5.0 and row_gains(g, gain, "auto") == [5.0] * 6 + [2.5] * 6


def test_a_pulse_top_with_gaps_is_still_a_pulse():
    """A thin, faint pen's antialiased pulse top falls partly under the ink threshold: gaps
    of a pixel or two are bridged (the pulse was missed, its rectangle read as trace, and
    the whole row came out ~300 ms early)."""
    t = np.arange(5000) / 500.0
    sig = np.stack([0.6 * np.sin(2 * np.pi * 1.3 * t + j) ** 9 for j in range(12)], 1)
    spec = sample_spec(np.random.default_rng(7), "3x4", "clean", dpi=110.0, pulse="left",
                       gain_limb=10.0, gain_chest=10.0, grid="lines", grid_colour="red",
                       trace_width_mm=0.25, antialias=True)
    page = render_page(sig.astype(np.float32), 500.0, spec)
    img = page.image.copy()
    for p in page.meta["pulses"]:  # two 2-px holes in each pulse's top
        (x0, _), (x1, ytop) = p["polyline"][2], p["polyline"][3]
        for x in (x0 + (x1 - x0) / 3, x0 + 2 * (x1 - x0) / 3):
            img[int(ytop) - 4:int(ytop) + 5, int(x):int(x) + 2] = img[5, 5]
    g = analyse(img)
    assert len(g.rows) == 3
    assert all(r.pulse == "left" and abs(r.pulse_mm - 10) < 1 for r in g.rows), \
        [(r.pulse, r.pulse_mm) for r in g.rows]


def _pulse_mask(k: float, dots: bool = False) -> np.ndarray:
    """A row's ink mask: a 10-mm, 5-mm-wide pulse (2-px pen) from x=60 px, then the trace."""
    m = np.zeros((400, 1600), np.uint8)
    y, top, x0, x1 = 300, 300 - int(round(10 * k)), 60, 60 + int(round(5 * k))
    m[top:y + 1, x0:x0 + 2] = 1
    m[top:top + 2, x0:x1 + 2] = 1
    m[top:y + 1, x1:x1 + 2] = 1
    m[y - 1:y + 1, x1:1500] = 1
    if dots:  # a dotted grid: 2-px dots every millimetre, some a pixel off the pulse
        for yy in range(int(y - 20 * k), y + 20, int(round(k))):
            for xx in range(30, 1500, int(round(k))):
                if not m[max(0, yy - 1):yy + 3, max(0, xx - 1):xx + 3].any():
                    m[yy:yy + 2, xx:xx + 2] = 1
        m[top:top + 2, x1 + 3:x1 + 5] = 1  # level with the top, a pixel past its corner
    return m


def test_a_pulse_drawn_along_a_fine_grid_comes_back_as_dashes_and_is_found():
    """A pulse drawn along a fine grid's lines (new eik val clean 00394): the grid's removal
    leaves its strokes as dashes shorter than a millimetre, one pixel apart, which the speck
    filter dropped, so no row showed a pulse and the pages read 164 ms late. The dashes are
    taken as one stroke where no pulse is found otherwise. Oracle: the pulse drawn here."""
    from digitize.page import Row, find_pulse
    k = 5.9
    m = _pulse_mask(k)
    m[:, ::6] = 0  # the grid's lines taken out every millimetre, both ways
    m[::6, :] = 0
    row = Row(y=300.0, x_left=60.0, x_right=1500.0)
    found = find_pulse(m, row, k, "left")
    assert found is not None
    xa, xb, height, _ = found
    assert abs(xa - 60) <= 2 and abs(xb - (60 + 5 * k + 2)) <= 2 and abs(height - 10) < 0.6


def test_a_dot_beside_a_pulse_does_not_move_its_edge():
    """On a dotted grid a dot a pixel off the pulse's corner must not stretch its top (real
    scan HB(106): joined to it, the fall moved 0.8 mm). Oracle: the pulse drawn here."""
    from digitize.page import Row, find_pulse
    k = 5.9
    row = Row(y=300.0, x_left=60.0, x_right=1500.0)
    plain = find_pulse(_pulse_mask(k), row, k, "left")
    dotted = find_pulse(_pulse_mask(k, dots=True), row, k, "left")
    assert plain is not None and dotted is not None
    assert abs(dotted[1] - plain[1]) <= 1 and abs(dotted[0] - plain[0]) <= 1


def test_a_lone_pulse_off_every_standard_height_is_not_a_pulse():
    """One row of six with a 4.2-mm "pulse" on a page printed without pulses (gain 20) had
    set the page's gain to 5 mm/mV (-11 dB); in few of many rows, a pulse must stand at a
    standard gain's height (+-10 %)."""
    from digitize.page import Row
    from digitize.page.calibration import _consensus

    def rows(h):
        out = [Row(y=100.0 * i, x_left=50.0, x_right=1900.0, x_start=52.0) for i in range(6)]
        out[3].pulse, out[3].pulse_mm, out[3].x_start = "left", h, 110.0
        return out
    odd = rows(4.24)
    _consensus(odd, 8.0)
    assert all(r.pulse == "none" for r in odd) and odd[3].x_start < 60  # not timed by it
    five = rows(4.9)
    _consensus(five, 8.0)
    assert five[3].pulse == "left" and five[3].pulse_mm == 4.9


def test_pulses_under_3_mm_alone_on_a_page_are_not_pulses():
    """A page photographed upright without pulses, read turned over, showed 1.7-2.4-mm
    steps at three rows' ends (the traces' first millimetres): read as 2.5-mm/mV pulses,
    they made the turned read look printed and it was kept (-13 dB). Pulses under 3 mm
    count only beside a row whose pulse stands at 5 mm/mV or more (a 12x1 page's chest rows
    at half of 5, beside its limb rows at 5)."""
    from digitize.page import Row
    from digitize.page.calibration import _consensus

    def rows(heights):
        out = [Row(y=100.0 * i, x_left=50.0, x_right=1900.0, x_start=52.0) for i in range(4)]
        for r, h in zip(out, heights):
            if h:
                r.pulse, r.pulse_mm, r.x_start = "left", h, 110.0
        return out
    alone = rows([2.3, 0, 2.4, 1.7])
    _consensus(alone, 8.0)
    assert all(r.pulse == "none" for r in alone) and all(r.x_start < 60 for r in alone)
    beside = rows([5.0, 2.5, 5.0, 2.5])
    _consensus(beside, 8.0)
    assert [r.pulse_mm for r in beside] == [5.0, 2.5, 5.0, 2.5]


def test_a_row_timed_apart_from_the_others_takes_their_start():
    """Rows of a printout share their start. New eik val scan 00305 (5.92 px/mm): a pulse
    misread under a shadow (6.4 mm tall, its rise 7 mm right of the others') put the first
    row's start 9 mm late while the other six agreed; its V1 and V4 read 0.35 s late (3.5 and
    -2.8 dB). A row starting 1 mm apart keeps its own start (a blurred edge is not evidence
    enough), and where the rows do not mostly agree nothing is moved."""
    from digitize.page import Row
    from digitize.page.calibration import _consensus
    k = 5.92

    def rows(starts_mm, rises_mm, heights):
        out = []
        for i, (x, rise, h) in enumerate(zip(starts_mm, rises_mm, heights)):
            r = Row(y=140.0 * i, x_left=rise * k, x_right=280 * k, x_start=x * k,
                    x_end=(x + 249.85) * k)
            if h:
                r.pulse, r.pulse_mm = "left", h
            out.append(r)
        return out
    page = rows([27.3, 18.4, 18.4, 18.4, 18.4, 18.4, 18.4], [12.7, 5.7, 5.1, 4.4, 4.7, 9.1, 3.7],
                [6.4, 9.3, 10.4, 0, 0, 10.1, 0])
    _consensus(page, k)
    assert all(abs(r.x_start / k - 18.4) < 0.01 for r in page), [r.x_start / k for r in page]
    near = rows([19.4] + [18.4] * 6, [7.0] + [5.5] * 6, [10.0] * 3 + [0] * 4)
    _consensus(near, k)
    assert abs(near[0].x_start / k - 19.4) < 0.01
    split = rows([27.3, 27.3, 27.3, 18.4, 18.4, 18.4], [14.4] * 3 + [5.5] * 3, [10.0] * 6)
    _consensus(split, k)
    assert [round(r.x_start / k, 1) for r in split] == [27.3, 27.3, 27.3, 18.4, 18.4, 18.4]


@pytest.mark.parametrize("rotation", [1.7, -2.4, 3.3])
def test_pulses_of_a_tilted_low_resolution_scan(rotation):
    """At 2.66 px/mm with a few degrees of tilt, the levelled pulse's edges step a pixel
    sideways and its top a pixel up or down (0.38 mm: more than the 0.35-mm flatness
    allowed): pulses were missed or timed from half their top, rows ~2 mm apart in time
    and the page's limb reading failed its Einthoven check (0 dB)."""
    from trainer.distort import Distortions
    t = np.arange(5000) / 500.0
    sig = np.stack([0.6 * np.sin(2 * np.pi * 1.3 * t + j) ** 9 for j in range(12)], 1)
    for seed in range(4):
        spec = sample_spec(np.random.default_rng(seed), "6x1", "clean", dpi=67.5, pulse="left",
                           gain_limb=10.0, gain_chest=10.0, trace_width_mm=0.4,
                           grid_colour="pink",
                           distortions=Distortions(seed=seed, rotation_deg=rotation))
        page = render_page(sig.astype(np.float32), 500.0, spec)
        g = analyse(page.image)
        firsts = [m for m in page.meta["leads"] if m["col"] == 0]
        assert len(g.rows) == 6 and all(r.pulse == "left" for r in g.rows), seed
        for r, m in zip(g.rows, firsts):
            x = cv2.perspectiveTransform(np.array([[[r.x_start, r.y]]]), g.to_image)[0, 0, 0]
            assert abs(x - m["polyline"][0][0]) < 2.0, (seed, x, m["polyline"][0][0])


def test_stepped_pulses_rule_out_one_lead_rows_and_a_lone_low_pulse_is_not_a_pulse():
    from digitize.page import Row
    from digitize.page.calibration import _consensus
    from digitize.pipeline import fit_steps

    def rows(pairs):
        return [Row(y=80.0 * i, x_left=0.0, x_right=1.0, x_start=2.0,  # 10 mm apart
                    pulse="none" if h is None else "left",
                    pulse_mm=float("nan") if h is None else h,
                    step_mm=float("nan") if h is None else s) for i, (h, s) in enumerate(pairs)]
    six = ("6x2", "3x4+3", "6x1")
    assert fit_steps(six, rows([(10.0, 5.0)] * 6)) == ("6x2",)
    assert fit_steps(six, rows([(10.0, 5.0)] * 3 + [(10.0, 10.0)] * 3)) == ("6x2", "3x4+3")
    assert fit_steps(six, rows([(10.0, 10.0)] * 6)) == six
    # one 2.8-mm box in a page without pulses (20 mm/mV) is not a 2.5-mm/mV pulse ...
    lone = rows([(None, None)] * 2 + [(2.8, 2.8)] + [(None, None)] * 3)
    _consensus(lone, 8.0)
    assert all(r.pulse == "none" for r in lone)
    # ... six of them (a 12x1 page's chest rows at half of 5 mm/mV) are
    twelve = rows([(5.0, 5.0)] * 6 + [(2.5, 2.5)] * 6)
    _consensus(twelve, 8.0)
    assert [r.pulse_mm for r in twelve] == [5.0] * 6 + [2.5] * 6


def test_a_flat_lead_lying_on_a_dark_grid_line_is_still_a_row():
    """A dark grid's straight lines are removed from the ink; a nearly flat lead drawn with a
    1-px pen whose baseline falls on a 1-px major line was removed with it (the line was
    widened by a pixel all round, taking the trace's pixels beside it) and a 12x1 page read
    10-11 rows (a validation page's drawing: black grid, 0.18-mm pen, 181.6 dpi)."""
    t = np.arange(5000) / 500.0
    sig = np.stack([0.6 * np.sin(2 * np.pi * 0.8 * t + j) ** 31 for j in range(12)], 1)
    sig[:, 2] *= 0.15  # lead III: nearly flat (0.45 mm complexes at 5 mm/mV)
    kw = dict(dpi=181.6, pulse="left", gain_limb=5.0, gain_chest=5.0, grid="lines",
              grid_colour="black", grid_major_alpha=0.89, grid_minor_alpha=0.5,
              grid_major_width_mm=0.158, grid_minor_width_mm=0.101, trace_width_mm=0.176,
              trace_colour=(57, 57, 57), antialias=True)
    spec = sample_spec(np.random.default_rng(3), "12x1", "clean", **kw)
    row3 = [m for m in render_page(sig.astype(np.float32), 500.0, spec).meta["leads"]
            if m["lead"] == "III"][0]
    spec.grid_offset_mm = (spec.grid_offset_mm[0], row3["baseline_mm"] % 5.0)
    g = analyse(render_page(sig.astype(np.float32), 500.0, spec).image)
    assert len(g.rows) == 12


def test_a_grid_as_dark_as_the_trace_but_thinner_is_opened_away():
    """A binarised scan of red grid paper (a validation page's drawing): the grid's 1-2 px
    lines come out as black as the 0.4-mm pen, and its rows — the trace's baselines among
    them — were read as 15-16 rows, or cut apart with the lines. The vertical ink runs have
    two modes, the lines' and the pen's; a square between the two opens the grid away and
    leaves the six rows whole."""
    from trainer.distort import Distortions
    from trainer.render import PageSpec
    t = np.arange(5000) / 500.0
    sig = np.stack([0.8 * np.sin(2 * np.pi * 1.1 * t + j) ** 21 + 0.1 * np.sin(2 * np.pi * t)
                    for j in range(12)], 1).astype(np.float32)
    spec = PageSpec(
        layout="6x2", style="scan", paper="letter", dpi=168.7, header=False,
        header_mm=6.09, footer_mm=7.95, x_start_mm=14.63, grid_colour="red",
        grid_minor_alpha=0.356, grid_major_alpha=0.509, grid_minor_width_mm=0.108,
        grid_major_width_mm=0.135, grid_offset_mm=(1.32, 2.53), paper_colour=(247, 249, 246),
        trace_colour=(6, 6, 6), trace_width_mm=0.38, text_colour=(6, 6, 6), font=4,
        label_height_mm=3.45, separators="full", pulse="none",
        distortions=Distortions(seed=1057306489, tint=(0.849, 0.923, 1.0), handwriting=2,
                                rotation_deg=0.019, background=(245, 245, 245), binarize=True,
                                noise_sigma=4.74, jpeg_quality=57))
    page = render_page(sig, 500.0, spec)
    k = page.meta["px_per_mm"]
    assert len(analyse(page.image).rows) != 6
    mask = (cv2.cvtColor(page.image, cv2.COLOR_BGR2GRAY) < 128).astype(np.uint8)
    side = pen_opening(mask)
    assert side is not None and 2 < side < 0.38 * k + 4
    g = analyse(page.image, thin_grid=True)
    assert len(g.rows) == 6 and g.scale_source == "grid" and abs(g.px_per_mm / k - 1) < 0.01
    firsts = [m for m in page.meta["leads"] if m["col"] == 0]
    for row, m in zip(g.rows, firsts):
        assert abs(row.x_start - m["x0_mm"] * k) < 0.5 * k
        assert abs((row.x_end - row.x_start) / k - 250) < 2
    # a page whose grid is fainter than its pen has no such second mode: nothing to open
    clean = render_page(sig, 500.0, sample_spec(np.random.default_rng(5), "6x2", "clean"))
    grey = cv2.cvtColor(clean.image, cv2.COLOR_BGR2GRAY)
    assert pen_opening((grey < 128).astype(np.uint8)) is None


def test_fast_morphology_equals_opencv():
    """open_lines (rows with too little ink skipped) and block_max (a corner-anchored dilation)
    give exactly what the plain computations give, borders, even lengths and narrow images
    included."""
    rng = np.random.default_rng(0)
    for _ in range(2000):
        h, w = rng.integers(1, 40, 2)
        m = (rng.random((h, w)) < rng.uniform(0.3, 0.98)).astype(np.uint8)
        if rng.random() < 0.3:
            m[rng.integers(0, h)] = 1  # a full line
        if rng.random() < 0.3:
            m[:, rng.integers(0, w)] = 1
        length, axis = int(rng.integers(1, 60)), int(rng.integers(0, 2))
        line = np.ones((1, length) if axis == 1 else (length, 1), np.uint8)
        assert np.array_equal(open_lines(m, length, axis),
                              cv2.morphologyEx(m, cv2.MORPH_OPEN, line)), (h, w, length, axis)
        by, bx = (int(v) for v in rng.integers(1, 9, 2))
        hb, wb = h // by, w // bx
        if hb and wb:
            plain = m[:hb * by, :wb * bx].reshape(hb, by, wb, bx).max(axis=(1, 3))
            assert np.array_equal(block_max(m, by, bx), plain), (h, w, by, bx)


def test_a_few_unsure_or_edge_columns_make_a_lead_warn():
    from types import SimpleNamespace

    from digitize.quality import lead_quality
    from digitize.reconstruct import LeadResult
    fs, n = 500, 5000
    t = np.arange(n) / fs
    x = sum(np.exp(-((t - b) / 0.015) ** 2) for b in np.arange(0.4, 10, 0.8)) \
        + 0.1 * np.sin(2 * np.pi * 0.7 * t)  # R waves at 75 bpm on a wandering baseline
    sig = np.full((n, 12), np.nan)
    sig[:, 0] = x
    spec = SimpleNamespace(height_mm=30.0)  # the strip the model sees: ±15 mm
    cols = x[::5] * 10  # mm at 10 mm/mV

    def status(value_mm, conf):
        r = LeadResult(window=SimpleNamespace(lead="I"), value_mm=value_mm, confidence=conf)
        q = lead_quality(sig, [r], fs, spec)["leads"]["I"]
        return q["status"] + "".join(f"; {x}" for x in q["reasons"] if "amplitude" in x)

    assert status(cols, np.ones(len(cols))) == "ok"
    unsure = np.ones(len(cols))
    unsure[:8] = 0.2  # 0.8 % of the columns
    assert status(cols, unsure) == "ok"
    unsure[:15] = 0.2  # 1.5 %
    assert status(cols, unsure) == "warn"
    edge = cols.copy()
    edge[500] = 14.5  # one column at the strip's edge: a cut peak
    assert status(edge, np.ones(len(cols))) == "warn"
    sig[:, 0] = x * 0.12  # a lead of ~0.13 mV peak to peak
    assert status(cols * 0.12, np.ones(len(cols))).startswith("warn; low amplitude")


def test_a_misplaced_pulse_edge_takes_the_others_start():
    """The rows of a printout share their start: a row whose pulse rises where the others'
    do but whose falling edge was read 5 mm late (a crease beside it) starts where they do;
    so does one whose whole pulse was read 5 mm off, where the other five agree (a pulse
    misread under a shadow: new eik val scan 00305, ``_shared_start``)."""
    from digitize.page import Row
    from digitize.page.calibration import _consensus
    k = 8.0

    def rows():
        out = [Row(y=100.0 * i, x_left=89.0, x_right=2104.0, x_start=132.0 + 0.1 * i,
                   x_end=2102.0, pulse="left", pulse_mm=10.0, x_stroke=131.5)
               for i in range(6)]
        out[4].x_start, out[4].x_stroke = 173.0, 172.5
        return out

    late = rows()
    _consensus(late, k)
    assert abs(late[4].x_start - 132.2) < 0.2, late[4]
    assert [r.x_start for r in late[:4]] == [132.0, 132.1, 132.2, 132.3]
    apart = rows()
    apart[4].x_left = 130.0  # its pulse rises 5 mm later too: the others still agree
    _consensus(apart, k)
    assert abs(apart[4].x_start - 132.2) < 0.2, apart[4]
    two = rows()  # two rows misread (a 'step' up to the row above): both take the start
    two[1].x_start, two[1].step_mm = 189.0, 24.1
    _consensus(two, k)
    assert abs(two[1].x_start - 132.2) < 0.2 and abs(two[4].x_start - 132.2) < 0.2, two
    assert two[1].step_mm == 10.0  # and its pulse was a plain one


def test_limb_relations_tell_a_6x2_pages_column_timing():
    """A 6x2 page whose right column (aVR, aVL, aVF) was drawn at the left column's time, and a
    lead-II rhythm strip: read with the right column 5 s later, no lead of the left column
    shares its time, but the rhythm strip does (II = (aVF - aVR) / 1.5). Oracle: leads derived
    from I and II by Goldberger's definitions, an irregular signal."""
    from digitize.leads import LEADS
    from digitize.page import LAYOUT
    from digitize.pipeline import LIMB_RELATIONS, _rel_residual
    rng = np.random.default_rng(3)
    n, half = 5000, 2500
    lead_i = np.cumsum(rng.normal(size=n)) * 0.01
    lead_ii = np.cumsum(rng.normal(size=n)) * 0.01
    true = {"I": lead_i, "II": lead_ii, "III": lead_ii - lead_i,
            "aVR": -(lead_i + lead_ii) / 2, "aVL": lead_i - lead_ii / 2,
            "aVF": lead_ii - lead_i / 2}

    def reading(right_at: int) -> np.ndarray:
        sig = np.full((n, 12), np.nan)
        for lead in ("I", "III"):
            sig[:half, LEADS.index(lead)] = true[lead][:half]
        sig[:, LEADS.index("II")] = true["II"]  # the rhythm strip
        for lead in ("aVR", "aVL", "aVF"):
            sig[right_at:right_at + half, LEADS.index(lead)] = true[lead][:half]
        return sig

    simultaneous, _ = _rel_residual(reading(0), LIMB_RELATIONS)
    shifted, _ = _rel_residual(reading(half), LIMB_RELATIONS)
    assert simultaneous < 0.02  # (each lead's median offset is removed first)
    assert shifted > simultaneous + LAYOUT.six_by_two_margin, shifted


def _trace_mask(k: float, rows_mm: list[float], h_mm: float = 200.0) -> np.ndarray:
    """An ink mask of continuous ECG-like traces, 250 mm long, at the given heights (mm)."""
    mask = np.zeros((int(h_mm * k), int(270 * k)), np.uint8)
    x = np.arange(int(10 * k), int(260 * k))
    for j, y_mm in enumerate(rows_mm):
        y = y_mm * k - 8 * k * np.sin(2 * np.pi * (x / k) / 20.0 + j) ** 21
        pts = np.stack([x, y], 1).round().astype(np.int32)
        cv2.polylines(mask, [pts], False, 1, 2)
    return mask


def test_a_band_of_text_and_grid_rubble_off_the_rows_pitch_is_no_row():
    """A footer's text and the rubble of a shadowed grid, 17 mm under the last of four rows
    40 mm apart, spans the rows' width in short pieces: it is no fifth row (a 3x4+1 page read
    as 3x4+2, new eik val scan 00317). A real trace there, whose QRS complexes leave the
    band, stays."""
    k = 8.0
    rows_mm = [30.0, 70.0, 110.0, 150.0]
    mask = _trace_mask(k, rows_mm)
    for x0 in range(int(10 * k), int(258 * k), int(4 * k)):  # 3-mm pieces, 1 mm apart
        mask[int(167 * k):int(167 * k) + 3, x0:x0 + int(3 * k)] = 1
        mask[int(165 * k):int(169 * k), x0 + int(k):x0 + int(k) + 2] = 1
    assert [round(r.y / k) for r in find_rows(mask, k)] == [30, 70, 110, 150]
    trace = _trace_mask(k, rows_mm + [167.0])
    assert [round(r.y / k) for r in find_rows(trace, k)] == [30, 70, 110, 150, 167]


def test_an_unpulsed_row_whose_first_beats_were_lost_starts_with_the_pulsed_rows():
    """One row shows its pulse; another's trace ink begins 12 mm after that row's start (its
    first beats under a shadow, new eik val scan 00455): it starts where the pulsed row does,
    not where its ink does."""
    from digitize.page import Row
    from digitize.page.calibration import _consensus
    k = 6.0
    rows = [Row(y=600.0, x_left=103.0, x_right=1622.0, x_start=135.0, x_end=1622.0,
                pulse="left", pulse_mm=10.0, x_stroke=134.0),
            Row(y=810.0, x_left=134.0, x_right=1622.0, x_start=134.0, x_end=1622.0),
            Row(y=1020.0, x_left=207.0, x_right=1622.0, x_start=207.0, x_end=1622.0),
            Row(y=1220.0, x_left=109.0, x_right=1701.0, x_start=109.0, x_end=1701.0)]
    _consensus(rows, k)
    assert rows[2].x_start == 135.0
    assert rows[1].x_start == 134.0  # 1 px from the pulsed row's start: its own


def test_a_pulse_edge_blurred_by_a_millimetre_takes_the_others_start():
    """Six rows' pulses agree on their start to 0.3 mm but one falling edge, blurred on a
    noisy scan, reads 0.9 mm late (eik val scan 00194): that row starts where the others do;
    the others keep their own starts. With three pulsed rows it is moved only where its rise
    or its end stands with the others' (both do here); where neither does, nothing is moved."""
    from digitize.page import Row
    from digitize.page.calibration import _consensus
    k = 8.0

    def rows(n):
        starts = [132.0, 139.2, 131.8, 132.1, 131.9, 132.2][:n]
        return [Row(y=100.0 * i, x_left=89.0, x_right=2104.0, x_start=x, x_end=2102.0,
                    pulse="left", pulse_mm=10.0, x_stroke=x - 0.5)
                for i, x in enumerate(starts)]

    six = rows(6)
    _consensus(six, k)
    assert abs(six[1].x_start - 132.0) < 0.2, six[1]
    assert [r.x_start for r in six[2:]] == [131.8, 132.1, 131.9, 132.2]
    three = rows(3)
    _consensus(three, k)
    assert three[1].x_start == 131.9
    three = rows(3)
    three[1].x_left, three[1].x_end = 60.0, 2140.0
    _consensus(three, k)
    assert three[1].x_start == 139.2


def test_a_pulse_past_grid_residue_at_the_rows_end_is_still_its_pulse():
    """Grid residue and a stain's specks left of a row's pulse stretch the row's ink 6 mm past
    the pulse's rise (eik val scan 00138: every row's pulse missed, the page read 200 ms
    late). Where no trace runs along the baseline between the row's end and the pulse, the
    pulse counts; a flat-topped shape inside a trace that runs from the row's end does not.
    Oracle: the pulse drawn here."""
    from digitize.page import Row, find_pulse
    k = 8.0
    m = _pulse_mask(k)
    x_left = 60 - int(6 * k)
    for x in range(x_left, 56, int(k)):  # the grid's crossings: ticks across the baseline
        m[300 - int(2 * k):300 + int(2 * k), x:x + 2] = 1
    row = Row(y=300.0, x_left=float(x_left), x_right=1500.0)
    found = find_pulse(m, row, k, "left")
    assert found is not None
    assert abs(found[0] - 60) <= 2 and abs(found[1] - (60 + 5 * k + 2)) <= 2
    m[299:301, x_left:60] = 1  # a trace along the baseline, running into the shape
    assert find_pulse(m, row, k, "left") is None


def test_rows_two_grid_cells_off_the_others_ends_still_agree_on_the_extent():
    """Four rows: the first ends 4 mm past the others (grid residue), the third is broken by
    a stain over 60 mm (eik val scan 00138). The rows still agree on their extent, so the
    broken one is kept at the others' length instead of dropped."""
    k = 8.0
    rows_mm = [30.0, 70.0, 110.0, 150.0]
    mask = _trace_mask(k, rows_mm)
    mask[int(28 * k):int(32 * k), int(262 * k):int(266 * k)] = 1
    mask[int(95 * k):int(125 * k), int(150 * k):int(210 * k)] = 0
    rows = find_rows(mask, k)
    assert [round(r.y / k) for r in rows] == [30, 70, 110, 150]
    assert abs(rows[2].x_right - rows[1].x_right) < 2 * k


def test_a_footer_band_reached_by_the_last_rows_waves_is_no_row():
    """A footer's text and grid rubble 10 mm under the last of four rows 40 mm apart, into
    which that row's deep S waves dip (new eik val scan 00305: read as a fifth row, the page
    refused): the trace crossing the band is the row's, not the band's own stroke."""
    k = 8.0
    mask = _trace_mask(k, [30.0, 70.0, 110.0])
    mask[int(150 * k):int(150 * k) + 2, int(10 * k):int(260 * k)] = 1  # the last row ...
    for x in range(int(12 * k), int(258 * k), int(20 * k)):  # ... with S waves 11 mm deep
        mask[int(150 * k):int(161 * k), x:x + 2] = 1
    for x0 in range(int(10 * k), int(258 * k), int(4 * k)):  # 3-mm pieces, 1 mm apart
        mask[int(160 * k):int(160 * k) + 3, x0:x0 + int(3 * k)] = 1
        mask[int(158 * k):int(162 * k), x0 + int(k):x0 + int(k) + 2] = 1
    assert [round(r.y / k) for r in find_rows(mask, k)] == [30, 70, 110, 150]


def test_rows_of_a_printout_are_evenly_pitched_stains_among_them_are_not():
    """Seven rows 24 mm apart are a printout's; twelve bands 5-25 mm apart (stains and creases
    read as rows among the traces, new eik val scan 00305) are not, and send a noisy page to
    be read with its grid filtered out."""
    from types import SimpleNamespace

    from digitize.page import Row
    from digitize.pipeline import even_pitch

    def geom(ys):
        return SimpleNamespace(rows=[Row(y=float(y), x_left=0.0, x_right=1500.0) for y in ys])

    assert even_pitch(geom([386, 520, 669, 806, 946, 1089, 1210]))
    assert not even_pitch(geom([328, 387, 528, 624, 665, 802, 949, 979, 1038, 1089, 1210,
                                1274]))
    assert even_pitch(geom([300, 500]))


def test_three_rows_with_one_lost_between_two_are_not_regular():
    """Eik val scan 00265: rows 289 and 544 px apart (a 3x4+1 page's third row lost in a
    stain) are no 3x4 page; the median of two gaps (their mean) hid it."""
    from types import SimpleNamespace

    from digitize.page import Row
    from digitize.pipeline import regular_pitch

    def geom(ys):
        return SimpleNamespace(rows=[Row(y=float(y), x_left=0.0, x_right=1500.0) for y in ys])

    assert not regular_pitch(geom([764, 1053, 1597]))
    assert regular_pitch(geom([764, 1053, 1340]))
    assert regular_pitch(geom([764, 1053, 1340, 1597]))
    assert not regular_pitch(geom([764, 1053, 1340, 1900]))


def test_a_pulsed_row_starting_early_takes_the_others_start_where_its_rise_or_end_agrees():
    """New eik val scans 00292 and 00408: three rows pulsed, the second's falling stroke read
    1.8 mm early on a noisy scan, so its panels after the first were read 68 ms early. Where
    its pulse's rise, or its trace's end, stands with the other two rows' it takes their
    start; where neither does it keeps its own (that is a row of its own, timed by itself)."""
    from digitize.page import Row
    from digitize.page.calibration import _consensus
    k = 6.0

    def rows(rise, end):
        out = [Row(y=200.0 * i, x_left=18.5 * k, x_right=274 * k, x_start=24.0 * k,
                   x_end=274.0 * k, pulse="left", pulse_mm=10.0) for i in range(3)]
        out.append(Row(y=600.0, x_left=14.5 * k, x_right=280 * k, x_start=24.0 * k,
                       x_end=280.0 * k))  # unpulsed rhythm row
        out[1].x_left, out[1].x_start, out[1].x_end = rise * k, 22.2 * k, end * k
        return out
    for rise, end in ((18.6, 277.6), (15.0, 274.2)):  # the rise agrees; the end agrees
        rs = rows(rise, end)
        _consensus(rs, k)
        assert abs(rs[1].x_start / k - 24.0) < 1e-6, (rise, end)
    rs = rows(15.0, 277.6)  # neither
    _consensus(rs, k)
    assert abs(rs[1].x_start / k - 22.2) < 1e-6


def test_a_rhythm_strip_is_matched_to_the_panels_without_their_edges():
    """New eik val clean 00447: a separator read as trace put a 3-mV spike at the end of II's
    panel, the panel matched the strip printed "II" worse than aVF's did, and the strip was
    named aVF. Panels are compared without their first and last 0.1 s. Oracle: the strip is
    II's own signal; aVF's panel a weaker, noisier copy of another stretch."""
    from digitize.leads import LEADS
    from digitize.pipeline import _identify_rhythm
    fs, n = 500.0, 5000
    t = np.arange(n) / fs
    rng = np.random.default_rng(0)
    beats = np.arange(0.3, 10, 0.8)
    s = sum(1.2 * np.exp(-((t - b) / 0.012) ** 2) - 0.3 * np.exp(-((t - b - 0.03) / 0.015) ** 2)
            + 0.25 * np.exp(-((t - b - 0.3) / 0.06) ** 2) for b in beats)
    panels = np.full((n, len(LEADS)), np.nan)
    ii, avf = LEADS.index("II"), LEADS.index("aVF")
    panels[:n // 2, ii] = s[:n // 2]
    panels[n // 2 - 20:n // 2, ii] += 3.0  # the spike at the panel's end
    panels[n // 2:, avf] = 0.9 * s[n // 2:] + 0.02 * rng.standard_normal(n // 2)
    assert _identify_rhythm(panels, [s], fs, printed=["II"]) == ("II",)


def test_a_flat_stretch_of_trace_beside_the_pulse_fall_is_not_the_pulse():
    """ecg-image-kit starts the trace at the pulse's falling stroke, at the signal's first
    value: 2.5 mm above the pulse's foot, flat for 9 mm, it looked like a pulse top joined to
    the baseline by a vertical edge (the real pulse's fall), and being wider it won (new eik
    val clean 00305, V1: the row unpulsed, -1.7 dB). That edge runs on above the flat run: it
    is another stroke. Oracle: the pulse drawn here."""
    from digitize.page import Row, find_pulse
    k = 5.9
    m = _pulse_mask(k)
    y, x1 = 300, 60 + int(round(5 * k))
    m[y - 1:y + 1, x1 + 2:1500] = 0  # the trace starts 2.5 mm up, flat for 9 mm
    lift = int(round(2.5 * k))
    m[y - lift - 1:y - lift + 1, x1:x1 + int(9 * k)] = 1
    m[y - lift:y + 1, x1 + int(9 * k):x1 + int(9 * k) + 2] = 1
    m[y - 1:y + 1, x1 + int(9 * k):1500] = 1
    row = Row(y=300.0, x_left=60.0, x_right=1500.0)
    found = find_pulse(m, row, k, "left")
    assert found is not None
    xa, xb, height, _ = found
    assert abs(xa - 60) <= 2 and abs(xb - (x1 + 2)) <= 2 and abs(height - 10) < 0.6


def test_ink_running_on_above_the_search_window_is_no_pulse_top():
    """A noisy scan's dark border beside a row's pulse (new eik val scan 00292 of set z): solid
    ink from the page's top down past the baseline, 6 mm wide, reads as a flat "top" at the
    search window's own edge, wider than the pulse, and had won — the rows were timed from
    its edge, 180 ms off. Oracle: the pulse drawn here."""
    from digitize.page import Row, find_pulse
    k = 5.9
    m = np.roll(_pulse_mask(k), 50, axis=1)  # the pulse from x=110 px
    m[:, :int(round(6 * k))] = 1  # the border: 6 mm of ink, top to bottom
    row = Row(y=300.0, x_left=0.0, x_right=1550.0)
    found = find_pulse(m, row, k, "left")
    assert found is not None
    xa, xb, height, _ = found
    assert abs(xa - 110) <= 2 and abs(xb - (110 + 5 * k + 2)) <= 2 and abs(height - 10) < 0.6


def test_a_rhythm_strip_with_one_beat_lost_still_matches_its_panel():
    """New eik val scan 00394 of set y: its II strip's third QRS was lost under a crease; the
    strip matched II's panel at R² 0.37 and aVF's at 0.96 and was stored as aVF. A panel is
    compared without the 0.3 s where it and the strip differ most. Oracle: the strip is II's
    own signal less one QRS; aVF's panel a smaller copy of another stretch of it."""
    from digitize.leads import LEADS
    from digitize.pipeline import _identify_rhythm, _trimmed_r2
    fs, n = 100.0, 1000
    t = np.arange(n) / fs
    beats = np.arange(0.3, 10, 0.8)

    def qrs(b, w=0.02):
        return np.exp(-((t - b) / w) ** 2)
    s = sum(qrs(b) - 0.4 * qrs(b + 0.04) for b in beats)
    other = 0.92 * s + 0.01 * np.random.default_rng(0).standard_normal(n)
    panels = np.full((n, len(LEADS)), np.nan)
    ii, avf = LEADS.index("II"), LEADS.index("aVF")
    panels[:n // 2, ii] = s[:n // 2]
    panels[n // 2:, avf] = other[n // 2:]
    strip = s.copy()
    lost = (t > beats[2] - 0.1) & (t < beats[2] + 0.1)
    strip[lost] = 0.0
    assert _identify_rhythm(panels, [strip], fs) == ("II",)
    # the trim takes out one stretch, not the misfit everywhere
    a = np.sin(t)
    assert _trimmed_r2(a, a, 30) == pytest.approx(1.0)
    assert _trimmed_r2(a + 1.0, a, 30) < 0.0


def test_a_panel_matching_the_strip_but_for_one_stretch_does_not_replace_the_standard_lead():
    """New eik val scan 00207 of set y: II's panel badly read; III's panel matched its II
    strip at R² 0.83 only without its worst 0.3 s, and the strip was stored as III. Another
    lead than the row's standard one must explain the strip in full."""
    from digitize.leads import LEADS
    from digitize.pipeline import _identify_rhythm
    fs, n = 100.0, 1000
    t = np.arange(n) / fs
    s = sum(np.exp(-((t - b) / 0.02) ** 2) for b in np.arange(0.3, 10, 0.8))
    panels = np.full((n, len(LEADS)), np.nan)
    ii, iii = LEADS.index("II"), LEADS.index("III")
    panels[:n // 2, ii] = 0.3 * np.sin(7 * t[:n // 2])  # II's panel: misread
    panels[n // 2:, iii] = s[n // 2:]
    panels[700:725, iii] += 1.5  # III's panel: right but for a quarter second
    assert _identify_rhythm(panels, [s], fs) == ("II",)
