"""The calibrated status (issue #16) and the ink that is not trace at a panel's start (#15)."""
from __future__ import annotations

import cv2
import numpy as np

from digitize.labels import separator_mask
from digitize.quality import (FEATURES, RULES, W0, W10, calibrate, lead_features, misread_limb_leads,
                              page_doubts, unconfirmed_layout)


def _lead(**kw) -> dict:
    q = dict(drawn_s=2.5, confidence=0.995, low_confidence_fraction=0.0, heart_rate_bpm=70.0,
             flat_fraction=0.1, clipped_fraction=0.0, amplitude_mv=1.5, stray_fraction=0.0,
             status="ok", reasons=[], rule_status="ok")
    q.update(kw)
    return q


def _page(leads: dict, e: float = 0.05) -> dict:
    return dict(status="ok", reasons=[], leads=leads, heart_rate_bpm=70.0,
                einthoven=dict(ii_minus_i_minus_iii=e, avr_plus_avl_plus_avf=e))


def test_the_model_and_its_features_agree_in_length():
    q = _page({"II": _lead()})
    x = lead_features("II", q["leads"]["II"], q, [], 8.0, "grid", 4, 4)
    assert len(x) == len(FEATURES) == len(W10) == len(W0)


def test_a_clean_lead_is_ok_and_a_doubtful_one_is_not():
    good = _page({"II": _lead(), "V2": _lead()})
    calibrate(good, [], 8.0, "grid", 4, 4)
    assert good["status"] == "ok" and good["leads"]["II"]["risk"]["p_under_10db"] < 0.05
    # the same lead on a page whose limb leads disagree, read without pulses from a noisy
    # scan, with unsure columns and a heart rate off the page's: looked at or not used
    bad = _page({"II": _lead(confidence=0.93, low_confidence_fraction=0.06,
                             heart_rate_bpm=110.0)}, e=1.1)
    calibrate(bad, ["no calibration pulse found: gain 10 mm/mV assumed",
                    "noisy scan: grid filtered out to find the rows"], 6.0, "grid", 4, 0)
    assert bad["leads"]["II"]["status"] in ("warn", "fail")
    assert bad["leads"]["II"]["reasons"]  # a flagged lead always says why


def test_the_model_never_lowers_what_the_rules_say():
    q = _page({"II": _lead(), "V1": _lead()})
    page_doubts(q, ["--gain 10 but the pulses say 5 mm/mV"], hard=True)
    q["leads"]["V1"]["rule_status"] = "fail"
    calibrate(q, [], 8.0, "grid", 4, 4)
    assert q["leads"]["II"]["status"] == "warn" and q["leads"]["V1"]["status"] == "fail"
    assert q["status"] == "fail"


def test_limb_leads_that_contradict_each_other_fail():
    """Rows misread (one missed, a layout mistaken) make limb leads that break Einthoven's
    relations: none of them is to be used; a chest lead keeps its own status."""
    fit = dict(layout="3x4+1", residual=RULES.fail_layout_fit + 0.03, checked=True, others={})
    q = _page({"I": _lead(), "aVF": _lead(), "V1": _lead()}, e=0.6)
    calibrate(q, [], 8.0, "grid", 4, 4)
    v1 = q["leads"]["V1"]["status"]
    misread_limb_leads(q, fit)
    assert q["status"] == "fail" and q["leads"]["V1"]["status"] == v1 != "fail"
    assert all(q["leads"][x]["status"] == "fail" and "misread" in q["leads"][x]["reasons"][-1]
               for x in ("I", "aVF"))
    # a fit under the bar, and a reading that cannot be checked (6x1 chest leads), are left
    for fit in (dict(fit, residual=RULES.fail_layout_fit - 0.1),
                dict(layout="6x1", residual=0.6, checked=False, others={})):
        q = _page({"I": _lead(), "V2": _lead()})
        calibrate(q, [], 8.0, "grid", 4, 4)
        misread_limb_leads(q, fit)
        assert q["status"] == "ok" and not q["leads"]["I"]["reasons"]


def test_rows_read_as_chest_leads_by_default_without_a_pulse_fail():
    """Six rows read as 6x1 chest leads — the reading no lead relation checks, which wins
    where every reading with limb leads fits poorly — on a page without a calibration pulse:
    nothing confirms which leads the rows hold (own val photo 00809, a 3x4+3 page). With its
    pulses, or for a one-row strip, or for a checked reading, the statuses stand."""
    unchecked = dict(layout="6x1", residual=0.6, checked=False, others={"3x4+3": 0.66})

    def page():
        q = _page({x: _lead() for x in ("V1", "V2", "V3")})
        calibrate(q, [], 8.0, "grid", 6, 6)
        return q

    q = page()
    unconfirmed_layout(q, unchecked, pulses=0, rows=6)
    assert q["status"] == "fail"
    assert all(v["status"] == "fail" and "unconfirmed" in v["reasons"][-1]
               for v in q["leads"].values())
    for fit, pulses, rows in ((unchecked, 6, 6), (unchecked, 0, 1),
                              (dict(unchecked, checked=True), 0, 6)):
        q = page()
        unconfirmed_layout(q, fit, pulses=pulses, rows=rows)
        assert q["status"] == "ok" and not any(v["reasons"] for v in q["leads"].values())


def _bar_page(k: float = 8.0, pen: int = 3, bar: int = 7):
    """A 40-mm strip of trace with a separator bar at x=20 mm and a QRS (pen-thin, slanted)
    1 mm after it."""
    h, w = int(30 * k), int(40 * k)
    m = np.zeros((h, w), np.uint8)
    y0, xs = int(15 * k), int(20 * k)
    cv2.line(m, (0, y0), (w - 1, y0), 1, pen)
    cv2.rectangle(m, (xs - bar // 2, y0 - int(5 * k)), (xs + bar // 2, y0 + int(5 * k)), 1, -1)
    xq = xs + int(1.5 * k)
    cv2.line(m, (xq, y0), (xq + 2, y0 - int(12 * k)), 1, pen)
    cv2.line(m, (xq + 2, y0 - int(12 * k)), (xq + 5, y0 + int(3 * k)), 1, pen)
    return m, (xs, y0), xq


def test_a_separator_bar_is_masked_and_the_qrs_beside_it_is_not():
    k = 8.0
    m, start, xq = _bar_page(k)
    sep = separator_mask(m, [start], k, pen_px=3.0)
    x, y = start
    assert sep[y - int(4 * k):y + int(4 * k), x].all()  # the bar, top to bottom
    assert not sep[:, xq:].any()  # not the QRS 1.5 mm on
    # a bar as thin as the pen is a stroke of the trace: kept
    thin, start, _ = _bar_page(k, bar=3)
    assert not separator_mask(thin, [start], k, pen_px=3.0).any()
    # nor is anything far from a panel's start taken
    assert not separator_mask(m, [(start[0] + int(10 * k), start[1])], k, pen_px=3.0).any()


def test_an_r_wave_drawn_against_a_separator_bar_is_kept_and_not_bridged():
    """A panel's first R drawn against its separator bar runs up past the bar: the bar is
    taken below the trace's line only (left, the model followed it down), the R's ink above
    the bar stays, and no bridge is drawn across (the model followed the bridge instead of
    the R). A bar alone is taken whole and bridged. Oracle: the drawing's own geometry."""
    from digitize.labels import separator_bridges
    k, pen = 8.0, 3
    h, w = int(40 * k), int(40 * k)
    y0, xs, bar = int(30 * k), int(20 * k), 7

    def page(with_r: bool) -> np.ndarray:
        m = np.zeros((h, w), np.uint8)
        cv2.line(m, (0, y0), (w - 1, y0), 1, pen)
        cv2.rectangle(m, (xs - bar // 2, y0 - int(5 * k)), (xs + bar // 2, y0 + int(4.5 * k)),
                      1, -1)
        if with_r:  # up from the line through the bar's right half, 25 mm tall
            cv2.line(m, (xs + 1, y0), (xs + 3, y0 - int(25 * k)), 1, pen)
            cv2.line(m, (xs + 3, y0 - int(25 * k)), (xs + 6, y0), 1, pen)
        return m

    m = page(with_r=True)
    sep = separator_mask(m, [(xs, y0)], k, pen_px=float(pen))
    assert sep[y0 + int(1 * k):y0 + int(4 * k), xs].all()  # the bar below the line
    assert not sep[:y0 - int(5 * k) - 2].any()  # not the R above the bar
    assert not separator_bridges(m, sep, [(xs, y0)], k, float(pen)).any()
    alone = page(with_r=False)
    sep = separator_mask(alone, [(xs, y0)], k, pen_px=float(pen))
    assert sep[y0 - int(4 * k):y0 + int(4 * k), xs].all()
    assert separator_bridges(alone, sep, [(xs, y0)], k, float(pen)).any()


def test_a_bar_centred_on_its_row_is_a_separator_where_the_panel_sits_off_the_row():
    """A printer centres its separator bars on the row's baseline; a panel's own level (its
    window's centre) may lie 2.5 mm off it (new eik val clean 00408, V2: its bar, read as a
    spike, was missed). Given the row's line the bar is taken; measured against the panel's
    level alone it does not reach 2 mm both ways. Oracle: the drawing's own geometry."""
    k, pen, bar = 6.0, 2, 5
    h, w = int(40 * k), int(40 * k)
    row, xs = int(20 * k), int(20 * k)
    m = np.zeros((h, w), np.uint8)
    cv2.line(m, (0, row), (w - 1, row), 1, pen)
    cv2.rectangle(m, (xs - bar // 2, row - int(2.8 * k)), (xs + bar // 2, row + int(2.8 * k)),
                  1, -1)
    off = row - 2.5 * k  # the panel's own level
    assert not separator_mask(m, [(xs, off)], k, pen_px=float(pen)).any()
    sep = separator_mask(m, [(xs, off)], k, pen_px=float(pen), lines=[float(row)])
    assert sep[row - int(2 * k):row + int(2 * k), xs].all()
    assert not sep[:, xs + bar:].any()


def test_the_calibration_pulse_is_taken_out_of_the_model_input_but_not_a_qrs_beside_it():
    """A trace starting at the pulse's falling stroke (ecg-image-kit) had its first columns
    read up that stroke: a 1-mV spike at each row's start (new eik val clean 00305). The
    pulse is masked; the trace from the stroke on is not, nor a QRS rising beside the stroke
    at the panel's first sample (new eik val scan 00113); a level stroke at the trace's first
    height takes the pulse's place (a trace starting abruptly had its first samples misread).
    Oracle: the drawing's geometry."""
    from digitize.page import PageGeometry, Row
    from digitize.pipeline import pulse_mask
    k, pen = 6.0, 2
    h, w = int(60 * k), int(80 * k)
    y, xr, xf = int(40 * k), int(10 * k), int(15 * k)
    top = y - int(10 * k)

    def page(qrs: bool) -> np.ndarray:
        m = np.zeros((h, w), np.uint8)
        cv2.line(m, (xr - int(2 * k), y), (xr, y), 1, pen)  # foot, rise, top, fall
        cv2.line(m, (xr, y), (xr, top), 1, pen)
        cv2.line(m, (xr, top), (xf, top), 1, pen)
        cv2.line(m, (xf, top), (xf, y), 1, pen)
        if qrs:  # an R from the stroke's foot, 14 mm tall, 1 mm on
            cv2.line(m, (xf, y), (xf + 2, y - int(14 * k)), 1, pen)
            cv2.line(m, (xf + 2, y - int(14 * k)), (xf + int(k), y), 1, pen)
        cv2.line(m, (xf + (int(k) if qrs else 0), y - int(1.5 * k)), (w - 1, y - int(1.5 * k)),
                 1, pen)  # the trace, 1.5 mm above the pulse's foot
        return m

    for qrs in (False, True):
        m = page(qrs)
        row = Row(y=float(y), x_left=float(xr - 2 * k), x_right=float(w - 1),
                  x_start=xf + 1.0, x_end=float(w - 1), pulse="left", pulse_mm=10.0,
                  x_stroke=float(xf) + 0.5)
        geom = PageGeometry(px_per_mm=k, scale_source="grid", skew_deg=0.0, rows=[row],
                            deskew=np.eye(3), size=(w, h), mask=m)
        pm, lead = pulse_mask(geom, float(pen))
        # a level stroke leads into the trace in the pulse's place, at the trace's first
        # height (1.5 mm above the foot); none beside a QRS (no one height to lead in at)
        ys = np.flatnonzero(lead[:, xr + 3:xf - 3].any(axis=1))
        assert not lead[:, xf + 7:].any()
        if qrs:
            assert not len(ys)
        else:
            assert len(ys) and abs(np.median(ys) - (y - int(1.5 * k))) <= pen, ys
        assert pm[top:y - int(2 * k), xr - 1:xr + 2].all()  # the rise
        assert pm[top - 1:top + 2, xr + 3:xf - 3].all()  # the top
        assert not pm[:, xf + 3:].any()  # nothing of the trace
        fall = pm[top + 2:y - int(2 * k), xf - 1:xf + 2].any(axis=1)
        # the fall where nothing runs on from it; beside a QRS it stays (the R's upstroke)
        assert fall.all() if not qrs else not fall[:int(5 * k)].any()
