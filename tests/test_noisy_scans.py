"""Rules for noisy scans, from ecg-image-kit val scans drawn with new seeds (issue #15:
benchmarks/eik_val_reseed.txt). The rows are built here with the geometry those pages showed
(ecg-image-kit's conventions: a 5-mm pulse flush with its trace, rows 24-36 mm apart), not
with our renderer's."""
import numpy as np

from digitize.page import Row
from digitize.page.calibration import _consensus, _time_origin, drop_unpulsed_ends
from digitize.page.rows import find_rows

K = 7.87  # 200 dpi


def _row(y_mm, left_mm, start_mm, right_mm, pulse_mm=None, k=K):
    r = Row(y=y_mm * k, x_left=left_mm * k, x_right=right_mm * k, x_start=start_mm * k,
            x_end=(start_mm + 249.85) * k)
    if pulse_mm:
        r.pulse, r.pulse_mm, r.step_mm = "left", pulse_mm, pulse_mm
        r.x_stroke = start_mm * k
    return r


def test_a_pulse_taller_than_the_gap_above_is_not_a_pulse():
    """New eik val scan 00053: a sheet's edge with punch holes beside three rows' pulses read
    as 28-mm pulses on rows 24 mm apart, which set the page's gain to 20 mm/mV. Pulses that
    would cross the row above are dropped; those rows start with the others."""
    ys = [64, 89, 113, 137, 161, 185, 206]
    rows = [_row(y, 16.0, 21.0, 271.0, 10.3) for y in ys]
    for r in rows[4:]:
        r.pulse_mm = r.step_mm = 27.9
        r.x_left, r.x_start = 3.0 * K, 8.8 * K
    _consensus(rows, K)
    assert [r.pulse for r in rows] == ["left"] * 4 + ["none"] * 3
    assert all(abs(r.x_start / K - 21.0) < 0.01 for r in rows), [r.x_start / K for r in rows]


def test_rows_of_a_row_s_length_time_a_page_without_pulses():
    """New eik val scan 00312: pulses lost in the filtered grid; four rows' ink ran on into
    noise past their end and was timed from it, 9-14 mm late, which put the median start
    5 mm late. The rows whose ink is 250 mm long (and agree) time the page."""
    rows = [_row(68, 20.5, 34.7, 284.7), _row(92, 15.6, 34.7, 284.7),
            _row(117, 20.7, 20.8, 269.8), _row(140, 20.5, 20.7, 271.0),
            _row(165, 20.7, 29.9, 279.9), _row(189, 15.6, 21.0, 271.0),
            _row(210, 7.1, 26.2, 276.2)]
    _consensus(rows, K)
    # (rows within 2 mm keep their own start: a blurred edge is not evidence enough)
    assert all(abs(r.x_start / K - 20.75) <= 0.25 for r in rows), [r.x_start / K for r in rows]
    assert abs(rows[0].x_start / K - 20.75) < 0.01


def test_a_lone_wide_box_among_full_rows_is_no_pulse():
    """New eik val scan 00357: one 14-mm wide "pulse" among seven rows started 8.5 mm after
    the start of the rows whose ink is a row's length; it timed every row. Those rows win."""
    rows = [_row(68, 21.6, 21.2, 270.8), _row(91, 20.3, 20.4, 270.6),
            _row(116, 20.1, 29.7, 279.6), _row(139, 20.1, 20.3, 270.6),
            _row(163, 20.6, 20.4, 261.3), _row(187, 14.9, 28.75, 269.4, 10.1),
            _row(208, 5.7, 28.5, 278.6)]
    _consensus(rows, K)
    assert all(abs(r.x_start / K - 20.35) < 0.9 for r in rows), [r.x_start / K for r in rows]
    assert rows[5].pulse == "none" and abs(rows[5].x_start / K - 20.35) < 0.01
    # ... while pulses in most rows keep timing the page
    pulsed = [_row(y, 15.0, 20.4, 270.4, 10.0) for y in (68, 91, 116, 139)]
    pulsed[1].pulse = "none"
    pulsed[1].x_start = 25.0 * K
    _consensus(pulsed, K)
    assert all(r.x_start / K == 20.4 for r in pulsed)


def test_two_pulses_rising_together_start_at_the_earlier_fall():
    """New eik val scan 00394: two pulsed rows of four, their pulses rising together, the
    rhythm row's fall read 3.7 mm late (9.4 mm wide against 5.4): a fall is misread late, not
    early — the page is timed from the earlier one, not their mean."""
    rows = [_row(101, 18.1, 23.5, 285.6, 9.8), _row(137, 10.8, 25.4, 287.1),
            _row(173, 18.2, 25.4, 270.6), _row(206, 17.7, 27.25, 287.3, 8.1)]
    _consensus(rows, K)
    assert all(abs(r.x_start / K - 23.5) < 0.01 for r in rows), [r.x_start / K for r in rows]


def test_two_rows_of_four_are_no_majority_against_the_other_two():
    """New eik val scan 00376: two of four pulses had their falling stroke misread 1.5 mm
    late; which pair moved to the other depended on the rows' order. Neither moves now, in
    either order."""
    for order in ((0, 1, 2, 3), (1, 0, 3, 2)):
        starts = [15.9, 17.45, 15.9, 17.45]
        rows = [_row(91 + 36 * i, 10.6, starts[j], 265.8, 10.0) for i, j in enumerate(order)]
        _consensus(rows, K)
        assert sorted(round(r.x_start / K, 2) for r in rows) == [15.9, 15.9, 17.45, 17.45]


def test_one_row_s_end_does_not_time_two_pulsed_rows():
    """New eik val scan 00098: of two pulsed rows, one's ink ran 1.2 mm into noise past its
    end; that one end put the page 46 ms late. Two rows' ends must agree (else the trace runs
    on from the stroke, as no gap is seen); three rows of four that agree still time it."""
    def rows(ends):
        out = []
        for i, e in enumerate(ends):
            r = _row(98 + 36 * i, 16.5, 21.7, e + 1, 10.0)
            r.cap_end, r.x_resume = e * K, float("nan")
            out.append(r)
        return out
    two = rows([272.75, 268.7])
    _time_origin(two, K)
    assert all(abs(r.x_start / K - 21.7) < 0.1 for r in two), [r.x_start / K for r in two]
    four = rows([272.75, 272.8, 272.7, 260.0])
    _time_origin(four, K)
    assert all(abs(r.x_start / K - 22.9) < 0.06 for r in four), [r.x_start / K for r in four]


def test_the_footer_read_as_a_last_row_is_dropped():
    """New eik val scan 00092: the footer's text under noise read as a fifth row 21 mm below
    four pulsed rows 35 mm apart, starting 41 mm after them (read as 3x4+2 at 0.4 dB)."""
    rows = [_row(y, 13.0, 18.0, 269.0, 10.0) for y in (95, 132, 168, 201)]
    footer = _row(222, 54.0, 54.0, 275.0)
    assert drop_unpulsed_ends(rows + [footer], K) == rows
    # a last row that starts with the others (an unpulsed rhythm strip) stays, as does one
    # on the rows' pitch
    strip = _row(222, 13.0, 18.0, 269.0)
    assert len(drop_unpulsed_ends(rows + [strip], K)) == 5
    far = _row(236, 54.0, 54.0, 275.0)
    assert len(drop_unpulsed_ends(rows + [far], K)) == 5


def test_two_bands_of_one_trace_make_one_row():
    """New eik val scan 00328: a trace's tall QRS complexes and its baseline made two bands
    10 mm apart whose baselines then met 4 mm apart: two rows of one trace. Rows closer than
    8 mm after their baselines are read are one."""
    k = 6.0
    h, w = int(120 * k), int(280 * k)
    mask = np.zeros((h, w), np.uint8)
    for y_mm in (30, 90):
        y = int(y_mm * k)
        mask[y - 1:y + 2, int(15 * k):int(265 * k)] = 1
    y = int(60 * k)  # a row whose QRS complexes rise 14 mm every 8 mm, with thick peaks
    mask[y - 1:y + 2, int(15 * k):int(265 * k)] = 1
    for x_mm in range(20, 262, 8):
        x = int(x_mm * k)
        mask[y - int(14 * k):y, x - 1:x + 2] = 1
        mask[y - int(14 * k):y - int(9 * k), x - int(2 * k):x + int(2 * k)] = 1
    rows = find_rows(mask, k)
    ys = [r.y / k for r in rows]
    assert len(rows) == 3 and abs(ys[1] - 60) < 1.5, ys


def test_a_footer_near_the_rows_start_goes_where_the_page_net_sees_no_stroke_in_it():
    """New eik val scan 00500 of set z: the footer's text read as a fifth row 0.57 pitches
    below four pulsed rows, starting only 7 mm after them (a 3x4+1 page read as 3x4+2 at
    6.7 dB). The page net, which sees the pen's strokes and not text, sees none in it: it goes;
    a row the net sees as a trace, or where the net is off, stays."""
    rows = [_row(y, 13.0, 18.0, 269.0, 10.0) for y in (95, 132, 168, 201)]
    footer = _row(222, 20.0, 20.0, 275.0)
    assert drop_unpulsed_ends(rows + [footer], K, seen=lambda r: 0.0) == rows
    assert len(drop_unpulsed_ends(rows + [footer], K, seen=lambda r: 0.8)) == 5
    assert len(drop_unpulsed_ends(rows + [footer], K, seen=lambda r: None)) == 5
    assert len(drop_unpulsed_ends(rows + [footer], K)) == 5


def test_an_unpulsed_row_at_each_end_both_go():
    """Eik test scan 00091 (looked at after that set's scoring): the page's dark top edge 2.5
    pitches above four pulsed rows and its footer 0.6 pitches below, each read as an unpulsed
    row (a 3x4+1 page read as 6x1 at -6 dB). The net sees no pen stroke in either: both go;
    where it sees one in the top row, that row stays and the footer still goes."""
    rows = [_row(y, 13.0, 18.0, 269.0, 10.0) for y in (95, 132, 168, 201)]
    top = _row(5, 0.0, 0.0, 280.0)
    footer = _row(222, 20.0, 20.0, 275.0)
    seen = {id(top): 0.15, id(footer): 0.0}
    assert drop_unpulsed_ends([top] + rows + [footer], K, seen=lambda r: seen.get(id(r), 0.8)) \
        == rows
    seen[id(top)] = 0.8
    assert drop_unpulsed_ends([top] + rows + [footer], K,
                              seen=lambda r: seen.get(id(r), 0.8)) == [top] + rows
