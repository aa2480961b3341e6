"""Pages that are not ECGs (issue #16): a corpus of generated documents, tables, forms, noise,
photograph-like scenes, near-blank pages and charts — made in the tests, nothing from an ECG
renderer — gets no record: `not_ecg` with its evidence, counted apart, exit 0 (1 with
--strict). A few show a periodic pattern that could be ECG paper (a table's rules, text at
300 dpi): those are errors to look at, never records. The example ECG pages keep theirs.
"""
import json
import shutil

import cv2
import pytest
from click.testing import CliRunner

import non_ecg
from conftest import REPO
from digitize.cli import main

PAGES = REPO / "examples" / "pages"
N = 42  # six of each kind


def cli(args):
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    src = tmp_path_factory.mktemp("not_ecg")
    kinds = {}
    for i in range(N):
        kind, img = non_ecg.make(i)
        name = f"{i:02d}_{kind}.png"
        cv2.imwrite(str(src / name), img)
        kinds[name] = kind
    return src, kinds


def test_non_ecg_images_get_no_record(corpus, tmp_path):
    src, kinds = corpus
    assert len(set(kinds.values())) == len(non_ecg.KINDS) and len(kinds) >= 40
    out = tmp_path / "out"
    code, stdout, err = cli([src, "--out", out, "--no-report"])
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    records = [(r["input"], r["status"]) for r in lines if r["status"] in ("ok", "warn", "fail")]
    assert not records, records  # never an ECG record
    assert not list(out.glob("*.hea"))
    not_ecg = [r for r in lines if r["status"] == "not_ecg"]
    errors = [r for r in lines if r["status"] == "error"]
    assert len(not_ecg) + len(errors) == N and len(not_ecg) >= 0.85 * N, errors
    assert code == (1 if errors else 0), err
    for r in not_ecg:
        assert r["reason"].startswith("not an ECG") and r["evidence"]["ecg"] is False
    n = len(not_ecg)
    s = json.loads((out / "summary.json").read_text())
    assert s["run"]["not_ecg"] == n and s["folder"]["not_ecg"] == n
    assert s["run"]["failed"] == len(errors) and s["folder"]["records"] == 0
    assert f"{n} not_ecg" in stdout
    # a rerun does not read them again; --strict makes them failures
    code, stdout, _ = cli([src, "--out", out, "--no-report"])
    assert f"{n} already done" in stdout
    code, _, err = cli([src, "--out", tmp_path / "strict", "--no-report", "--strict", "-q"])
    assert code == 1 and err.count("error:") == N


def test_ecg_pages_are_not_taken_for_not_ecg(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for p in sorted(PAGES.glob("*.png")) + sorted(PAGES.glob("*.jpg")):
        shutil.copy(p, src / p.name)
    out = tmp_path / "out"
    code, _, err = cli([src, "--out", out, "--no-report", "-q"])
    assert code == 0, err
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(lines) == 5 and all(r["status"] in ("ok", "warn", "fail") for r in lines)
    for q in out.glob("*.quality.json"):
        d = json.loads(q.read_text())["quality"]
        assert d["evidence"]["ecg"] is True
        assert d["heart_rate_bpm"] > 30  # one heart rate for the page


def test_a_pattern_that_repeats_one_way_is_no_grid():
    """Lines of text repeat down the page only; ECG paper's grid repeats both ways at one
    period. Oracle: the generator's own kinds (text pages, the bundled ECG pages)."""
    from digitize.evidence import EVIDENCE, failure_evidence
    for seed in range(42):
        kind, img = non_ecg.make(seed)
        if kind == "text":
            ev = failure_evidence(img, 0, 9)  # as if 9 rows had been found: no layout has 9
            assert not ev["ecg"], (seed, ev)
    for page in sorted(PAGES.glob("*.png")):
        ev = failure_evidence(cv2.imread(str(page)), 0, 9)
        assert ev["grid_crossed"] >= EVIDENCE.grid_crossed and ev["ecg"], (page.name, ev)


def test_a_table_with_even_cells_is_no_trace():
    """A table whose rows and columns share a period's harmonics looks like a grid to the
    spectrum; its entries are short words, where an ECG row is one long stroke. Oracle: the
    generator's own kinds (its tables, forms and text pages; the bundled ECG pages)."""
    from digitize.evidence import EVIDENCE, failure_evidence
    seen = 0
    for seed in range(42):
        kind, img = non_ecg.make(seed)
        if kind in ("table", "form", "text"):
            ev = failure_evidence(img, 0, 9)
            assert ev["trace_extent"] < EVIDENCE.trace_extent and not ev["ecg"], (seed, kind, ev)
            seen += kind == "table" and ev["grid_crossed"] >= 2.5  # a grid-like table
    assert seen, "no table with a crossed pattern among the seeds: the test shows nothing"
    for page in sorted(PAGES.glob("*.png")):
        ev = failure_evidence(cv2.imread(str(page)), 0, 9)
        assert ev["trace_extent"] >= EVIDENCE.trace_extent and ev["ecg"], (page.name, ev)


def test_the_grid_cue_is_read_on_the_page_as_read():
    """A read page's grid is measured where the reader deskewed and flattened it: a photo's
    slanted grid lines fall outside the spectrum's axis bands. Oracle: the bundled strip's
    grid, sheared by 12 degrees as photographed, and upright as read."""
    from types import SimpleNamespace

    import numpy as np

    from digitize.evidence import evidence
    page = cv2.imread(str(PAGES / "00000_00008_strip_clean.png"))
    h, w = page.shape[:2]
    shear = np.float32([[1, np.tan(np.radians(12)), 0], [np.tan(np.radians(12)), 1, 0]])
    slanted = cv2.warpAffine(page, shear, (w + h // 4, h + w // 4),
                             borderMode=cv2.BORDER_REPLICATE)
    geom = SimpleNamespace(rows=[SimpleNamespace(pulse="none")],
                           grey=cv2.cvtColor(page, cv2.COLOR_BGR2GRAY))
    assert evidence(geom, {}, 0, slanted)["grid"]
    assert not evidence(SimpleNamespace(rows=geom.rows, grey=None), {}, 0, slanted)["grid"]


def test_rows_of_trace_in_the_ink_are_ecg_evidence():
    """A photographed ECG whose grid is too faint to measure and whose perspective is not
    undone shows no grid, no pulses it can read and no checked limb leads, yet its ink holds
    rows of thin trace one under another, which no generated document, chart or scene does
    (a chart's series overlap, a shape's edge is filled). Oracles: thin wiggly strokes drawn
    here, five rows of them; the generator's own non-ECG kinds."""
    import numpy as np

    from digitize.evidence import EVIDENCE, _ink_mask, stacked_traces
    rng = np.random.default_rng(3)
    img = np.full((700, 1000, 3), 245, np.uint8)
    x = np.arange(80, 920)
    for i in range(5):
        y = 100 + 120 * i + 6 * np.sin(x / 17.0) + 30 * (np.abs((x % 90) - 45) < 2)
        y = y + rng.normal(0, 0.5, len(x))
        cv2.polylines(img, [np.stack([x, y], 1).astype(np.int32)], False, (30, 30, 30), 2)
    assert stacked_traces(_ink_mask(img)) == 5
    for seed in range(42):
        kind, other = non_ecg.make(seed)
        assert stacked_traces(_ink_mask(other)) < EVIDENCE.trace_rows, (seed, kind)
