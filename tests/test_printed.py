"""The gain printed in a page's footer (digitize --printed-gain, optional OCR)."""
import subprocess
import sys

import numpy as np
import pytest

from digitize import printed
from digitize.printed import parse_gain


@pytest.mark.parametrize("text,gain", [
    ("25mm/s 10mm/mV 0.5-40 Hz", (10.0, None)),
    ("25 mm/s  5 mm/mV  150 Hz", (5.0, None)),
    ("25mm/s Smm/myV 85-49 Hz", (5.0, None)),  # OCR reads 5 as S
    ("25mm/s Limb 5 mm/mvV Chest 2.5 mm/mV_ 0.5-40 Hz", (5.0, 2.5)),
    ("Limb 10 mm/mV  Chest 10 mm/mV", (10.0, None)),
    ("25 mm/s 20mm/mvV 05-40 Hz", (20.0, None)),
    ("25 mm/s 2.5 mra/my", (2.5, None)),  # "mm" misread
    ("25mm/s 20mmimV 05-40 Hz", (20.0, None)),  # the slash read as an i
    ("25mm/s 10mm|mV", (10.0, None)),  # ... or as a bar
    ("25 mm/s 10 mmis 0.5-40 Hz", None),  # an i, but not before "mV"
    (".25 mm/s. 5. mm/mV..0.5-40 Hz.", (5.0, None)),  # a speck read after the number
    ("25mm/s Limb 1@mm/mvV Chest5mm/mV @.5-40 Hz", (10.0, 5.0)),  # slashed zero, no space
    ("25mm/s Limb 1®mm/mvV Chest5mm/mV @.5-40 Hz", (10.0, 5.0)),
    ("25 mm/s 0.5-40 Hz", None),  # speed only: "mm/s" is not a gain
    ("25mm/s 18mm/mvV 0.5-49 Hz", (10.0, None)),  # a slashed zero read as 8
    ("28mm/s 28mm/mV 0.5-48 Hz", None),  # a validation page's "25mm/s 10mm/mV"
    ("25mm/s 15mm/mvV", None),  # not a gain electrocardiographs print
    ("10 mm/mV ... 20 mm/mV", None),  # two plain values: ambiguous
    ("Limb 10 mm/mV", None),  # a limb gain without the chest's
    ("", None),
])
def test_parse_gain(text, gain):
    assert parse_gain(text) == gain


def test_missing_ocr_is_reported_not_raised(monkeypatch):
    printed.available.cache_clear()
    monkeypatch.setitem(sys.modules, "pytesseract", None)  # import fails
    try:
        assert printed.available() is False
        grey = np.full((400, 600), 255, np.uint8)
        assert printed.printed_gain(grey, [100.0, 200.0], 8.0) is None
    finally:
        printed.available.cache_clear()


def test_the_option_without_ocr_is_a_usage_error(tmp_path):
    code = ("import sys; sys.modules['pytesseract'] = None; sys.argv = ['digitize'] + sys.argv[1:];"
            " from digitize.cli import main; main()")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path), "--out", str(tmp_path / "o"),
                        "--printed-gain", "on"], capture_output=True, text=True)
    assert r.returncode == 2 and "--printed-gain on needs pytesseract" in r.stderr


@pytest.mark.parametrize("layout,limb,chest,dpi", [
    ("12x1", 5.0, 5.0, 200.0), ("3x4+1", 10.0, 5.0, 200.0),
    ("3x4", 20.0, 20.0, 86.0),  # 3.4 px/mm: characters 8 px tall, enlarged before thresholding
])
def test_gain_read_from_the_footer_of_a_page_without_pulses(ptbxl_sample, layout, limb, chest,
                                                            dpi):
    """No calibration pulse: 10 mm/mV assumed (flagged) without the OCR; the footer's
    "5 mm/mV" / "Limb 10 mm/mV  Chest 5 mm/mV" with it (still flagged)."""
    printed.available.cache_clear()
    if not printed.available():
        pytest.skip("pytesseract or the tesseract program not installed (pip install '.[ocr]', "
                    "apt install tesseract-ocr)")
    pytest.importorskip("trainer.render", reason="the renderer draws the test page")
    from digitize.engine import Engine, default_model_path
    from digitize.metrics import score_record
    from digitize.notes import Code
    from digitize.pipeline import GAIN_ASSUMED, Options, convert_page
    from trainer.data import prepared_signal, records_for_split
    from trainer.render import render_page, sample_spec
    info = records_for_split(str(ptbxl_sample), "test")[0]
    sig, fs = prepared_signal(str(ptbxl_sample), info)
    spec = sample_spec(np.random.default_rng(3), layout, "clean", dpi=dpi, pulse="none",
                       gain_limb=limb, gain_chest=chest, speed=25.0, footer_mm=12.0,
                       grid="lines", rhythm_leads=("II",))
    page = render_page(sig, fs, spec)
    engine = Engine(default_model_path(), device="cpu", threads=2)
    plain = convert_page(page.image, engine, Options(fs=fs, read_printed_gain=False))
    assert plain.gain == 10.0 and GAIN_ASSUMED in plain.warnings
    read = convert_page(page.image, engine, Options(fs=fs))
    assert read.gain == limb, read.warnings
    assert read.chest_gain == (chest if chest != limb else None)
    said = [w.code for w in read.warnings]
    assert Code.GAIN_PRINTED in said and Code.GAIN_ASSUMED not in said
    assert all(q["status"] != "ok" for q in read.quality["leads"].values())  # still a doubt
    for j in range(12):  # every lead at its own gain: the amplitudes come out right
        truth, est = page.truth[:, j], read.signal[:, j]
        ok = np.isfinite(truth) & np.isfinite(est)
        ratio = np.std(est[ok]) / np.std(truth[ok])
        assert 0.8 < ratio < 1.25, (j, ratio)
    snr_plain = score_record(page.truth, plain.signal, fs)[0]
    snr_read = score_record(page.truth, read.signal, fs)[0]
    assert snr_read > snr_plain + 3, (snr_plain, snr_read)


def test_only_a_band_with_a_line_of_print_goes_to_the_ocr():
    """A seed strip's margin holds grid lines and dots, no print: no Tesseract call (it cost
    a strip page ~0.1 s)."""
    k = 8.0  # px/mm
    band = np.full((int(12 * k), int(200 * k)), 245, np.uint8)
    band[:, ::int(5 * k)] = 150  # grid lines (removed as lines)
    band[::int(k), ::int(k)] = 100  # grid dots (too small for characters)
    assert printed._binarise(band, k, printed._level(band)) is None
    cv2 = pytest.importorskip("cv2")
    cv2.putText(band, "25mm/s  10mm/mV  0.5-40Hz", (int(10 * k), int(8 * k)),
                cv2.FONT_HERSHEY_SIMPLEX, 0.8, 0, 2)
    band[::int(k), ::int(k)] = 200  # (printed text is darker than the grid)
    found = printed._binarise(band, k, printed._level(band))
    assert found is not None
    text, (y0, y1, x0, x1) = found
    assert text.shape == (y1 - y0, x1 - x0)
    assert 3 * k < y1 - y0 < 8 * k and x1 - x0 < 150 * k  # cropped to the line of print


def test_a_line_that_holds_no_settings_is_read_once(monkeypatch):
    """The four ways of reading a line are tried in turn only while Tesseract reads a line of
    settings ("mm/s", "15mm/mV": a misread number); what reads as no such line at all (a
    binarised grid's remnants) costs one call, not four (1-2 s on a strip)."""
    import cv2
    monkeypatch.setattr(printed, "available", lambda: True)
    grey = np.full((int(60 * 8), int(200 * 8)), 245, np.uint8)
    cv2.putText(grey, "25mm/s  10mm/mV  0.5-40Hz", (80, int(52 * 8)),
                cv2.FONT_HERSHEY_SIMPLEX, 0.8, 0, 2)
    # (an empty read is no evidence either way: Tesseract gave up, the next way may not)
    for answer, calls in (("~ |i. ;'", 1), ("25mm/s 15mm/mV", 4), ("25mm/s 10mm/mV", 1),
                          (" \n", 4)):
        seen = []
        monkeypatch.setattr(printed, "_read", lambda img: seen.append(img.shape) or answer)
        got = printed.printed_gain(grey, [20 * 8.0], 8.0)
        assert len(seen) == calls and got == ((10.0, None) if "10mm" in answer else None)


def test_a_dotted_grid_line_through_the_print_is_cleared():
    """A dotted grid line along the print's baseline: its dots go, the characters and the
    decimal point stay (Tesseract read nothing of such a line on a validation page)."""
    cv2 = pytest.importorskip("cv2")
    k = 11.5  # px/mm
    band = np.full((int(12 * k), int(120 * k)), 245, np.uint8)
    cv2.putText(band, "25 mm/s  5 mm/mV  0.5-40 Hz", (int(5 * k), int(8 * k)),
                cv2.FONT_HERSHEY_SIMPLEX, 1.0, 0, 2)
    y = int(8 * k)
    band[y:y + 2, ::int(k)] = 60  # dots every 1 mm, 2 px: as dark as the print
    band[y:y + 2, 1::int(k)] = 60
    bw = printed._ink(band, k, printed._level(band))
    assert not bw[y:y + 2, int(100 * k):].any()  # the dots beyond the text are gone
    n, _, stats, _ = cv2.connectedComponentsWithStats(bw, connectivity=8)
    assert n - 1 >= 15  # the characters and the full stop of "0.5" are kept
    assert (stats[1:, cv2.CC_STAT_AREA] >= 4).all()
