"""The calibrated status (issue #16) and the ink that is not trace at a panel's start (#15)."""
from __future__ import annotations

import cv2
import numpy as np

from digitize.labels import separator_mask
from digitize.quality import FEATURES, W0, W10, calibrate, lead_features, page_doubts


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
