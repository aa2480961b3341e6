"""Pages turned without EXIF (issue #16): read upright, as well as the upright page, and the
record and quality.json say what was done. The oracle is the turn the test applied."""
import json
import shutil

import cv2
import pytest
from click.testing import CliRunner

from conftest import REPO
from digitize.cli import main

PAGES = REPO / "examples" / "pages"
CLEAN = PAGES / "00000_00008_3x4p1_clean.png"
TURNS = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


@pytest.fixture(scope="module")
def turned(tmp_path_factory):
    src = tmp_path_factory.mktemp("turned")
    ref = tmp_path_factory.mktemp("ref")
    im = cv2.imread(str(CLEAN))
    lines = CLEAN.with_suffix(".hea").read_text().splitlines()
    shutil.copy(CLEAN.with_suffix(".dat"), ref / CLEAN.with_suffix(".dat").name)
    for deg in (0, 90, 180, 270):
        name = f"page_r{deg}"
        cv2.imwrite(str(src / f"{name}.png"), im if deg == 0 else cv2.rotate(im, TURNS[deg]))
        first = lines[0].split()
        first[0] = name
        (ref / f"{name}.hea").write_text("\n".join([" ".join(first)] + lines[1:]) + "\n")
    out = tmp_path_factory.mktemp("out")
    res = CliRunner().invoke(main, [str(src), "--out", str(out), "--reference", str(ref),
                                    "--overlay", "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.stderr
    return out


@pytest.mark.parametrize("deg", [0, 90, 180, 270])
def test_turned_pages_are_read_upright(turned, deg):
    q = json.loads((turned / f"page_r{deg}.quality.json").read_text())
    assert q.get("rotated_deg", 0) == (360 - deg) % 360
    assert q["layout"] == "3x4+1"
    base = json.loads((turned / "page_r0.quality.json").read_text())["reference"]["snr_db"]
    assert q["reference"]["snr_db"] > base - 0.5
    hea = (turned / f"page_r{deg}.hea").read_text()
    assert ("orientation: page turned" in hea) == (deg != 0)
    # the overlay shows the page as it was read: upright, landscape
    h, w = cv2.imread(str(turned / f"page_r{deg}.overlay.png")).shape[:2]
    assert w > h
