"""The `digitize` command end to end, with only `.[test]` installed (no torch).

Uses the shipped model on committed example pages (a few seconds each) and the tiny fixture
model where only the plumbing matters.
"""
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import wfdb
from click.testing import CliRunner

from conftest import REPO
from digitize.cli import main
from digitize.io import InputItem
from digitize.leads import LEADS
from digitize.run import record_names

PAGES = REPO / "examples" / "pages"
CLEAN = PAGES / "00000_00008_3x4p1_clean.png"
STRIP = PAGES / "00000_00008_strip_clean.png"
TINY = REPO / "tests" / "fixtures" / "tiny_column.onnx"


def run(args, **kw):
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, **kw)
    return res.exit_code, res.output


def make_pdf(path: Path, image: Path, pages: int = 2) -> None:
    import pypdfium2 as pdfium
    im = cv2.imread(str(image))
    ok, buf = cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, 90])
    h, w = im.shape[:2]
    pdf = pdfium.PdfDocument.new()
    for _ in range(pages):  # the image at 200 dpi: the PDF page is the paper
        page = pdf.new_page(w / 200 * 72, h / 200 * 72)
        obj = pdfium.PdfImage.new(pdf)
        obj.load_jpeg(io.BytesIO(buf.tobytes()), inline=True)
        obj.set_matrix(pdfium.PdfMatrix().scale(w / 200 * 72, h / 200 * 72))
        page.insert_obj(obj)
        page.gen_content()
    out = io.BytesIO()
    pdf.save(out)
    path.write_bytes(out.getvalue())


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """One run over a clean 3x4+1 page, a seed strip and a set of bad inputs."""
    src = tmp_path_factory.mktemp("in")
    for p in (CLEAN, STRIP):
        (src / p.name).write_bytes(p.read_bytes())
    (src / "empty.png").write_bytes(b"")
    (src / "text.jpg").write_text("not an image")
    cv2.imwrite(str(src / "tiny.png"), np.zeros((1, 1), np.uint8))
    (src / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    blank = np.full((800, 1100, 3), 255, np.uint8)
    cv2.imwrite(str(src / "blank.png"), blank)  # a page with no ECG
    (src / "sub").mkdir()
    (src / "sub" / "clean.png").write_bytes(CLEAN.read_bytes())
    out = tmp_path_factory.mktemp("out")
    code, output = run([src, "--out", out, "--reference", PAGES, "--overlay", "-q"])
    return src, out, code, output


def test_converts_pages_and_reports_bad_inputs(converted):
    src, out, code, output = converted
    assert code == 1  # some inputs failed
    results = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    by_input = {Path(r["input"]).name: r for r in results}
    for bad in ("empty.png", "text.jpg", "tiny.png", "broken.pdf"):
        assert by_input[bad]["status"] == "error" and by_input[bad]["reason"]
        assert bad in output  # one line naming the file
        assert "Traceback" not in output
    # a blank page is no ECG: no record, not an error
    assert by_input["blank.png"]["status"] == "not_ecg"
    assert by_input["blank.png"]["reason"].startswith("not an ECG")
    for good in (CLEAN.name, STRIP.name, "clean.png"):
        assert by_input[good]["status"] in ("ok", "warn")
    # nothing partial: only converted records have files; the temp folder is empty
    stems = {p.name.split(".")[0] for p in out.iterdir() if p.is_file()}
    assert not any(s.startswith(("empty", "text", "tiny", "broken", "blank")) for s in stems)
    assert not (out / ".tmp").exists() or not any((out / ".tmp").iterdir())


def test_record_contents(converted):
    src, out, _, _ = converted
    name = CLEAN.stem
    rec = wfdb.rdrecord(str(out / name))
    assert rec.sig_name == list(LEADS) and rec.units == ["mV"] * 12 and rec.fs == 500
    assert rec.fmt == ["16"] * 12 and rec.sig_len == 5000
    comments = "\n".join(rec.comments)
    assert "model_sha256:" in comments and str(src / CLEAN.name) in comments and "layout: 3x4+1" in comments
    # 3x4+1: lead I drawn 0-2.5 s only, lead II (rhythm) over all 10 s
    sig = rec.p_signal
    assert np.isfinite(sig[:1250, 0]).all() and np.isnan(sig[1300:, 0]).all()
    assert np.isfinite(sig[:, 1]).all()
    def strict(c):
        raise ValueError(f"non-standard JSON constant {c}")
    q = json.loads((out / f"{name}.quality.json").read_text(), parse_constant=strict)
    for line in (out / "results.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=strict)
    assert q["layout"] == "3x4+1" and set(q["quality"]["leads"]) == set(LEADS)
    assert q["reference"]["snr_db"] > 10  # scored against examples/pages ground truth
    assert (out / f"{name}.overlay.png").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["converted"] == 3 and summary["run"]["failed"] == 4
    assert summary["run"]["not_ecg"] == 1 and summary["folder"]["not_ecg"] == 1
    assert summary["folder"]["records"] == 3 and summary["folder"]["failed_inputs"] == 4
    assert summary["provider"] == "CPUExecutionProvider" and summary["workers"] >= 1
    manifest = (out / "manifest.csv").read_text().splitlines()
    assert manifest[0].startswith("record,source") and len(manifest) == 4
    assert (out / "quality.csv").read_text().count("\n") >= 1 + 12 + 1 + 12


def test_seed_strip_is_one_lead(converted):
    _, out, _, _ = converted
    rec = wfdb.rdrecord(str(out / STRIP.stem))
    finite = np.isfinite(rec.p_signal).all(axis=0)
    assert finite.tolist() == [name == "II" for name in LEADS]


def test_rerun_skips_done_and_overwrite_redoes(tmp_path):
    out = tmp_path / "out"
    assert run([STRIP, "--out", out, "-q"])[0] == 0
    mtime = (out / f"{STRIP.stem}.hea").stat().st_mtime_ns
    assert run([STRIP, "--out", out, "-q"])[0] == 0
    last = json.loads((out / "results.jsonl").read_text().splitlines()[-1])
    assert last["status"] == "skipped"
    assert (out / f"{STRIP.stem}.hea").stat().st_mtime_ns == mtime
    # another option set is not "done"
    assert run([STRIP, "--out", out, "--fs", "250", "-q"])[0] == 0
    assert wfdb.rdheader(str(out / STRIP.stem)).fs == 250
    assert run([STRIP, "--out", out, "--fs", "250", "--overwrite", "-q"])[0] == 0
    assert json.loads((out / "results.jsonl").read_text().splitlines()[-1])["status"] != "skipped"


def test_pdf_pages_become_records(tmp_path):
    pdf = tmp_path / "scan.pdf"
    make_pdf(pdf, STRIP, pages=2)
    out = tmp_path / "out"
    code, _ = run([pdf, "--out", out, "--model", TINY, "-q"])
    assert code == 0
    assert (out / "scan_p1.hea").is_file() and (out / "scan_p2.hea").is_file()


def test_shards_partition_and_agree_on_names(tmp_path):
    src = tmp_path / "in"
    (src / "a").mkdir(parents=True)
    (src / "b").mkdir()
    for d in ("a", "b"):  # same file name in two folders: a collision, resolved by path hash
        (src / d / "page.png").write_bytes(STRIP.read_bytes())
    (src / "z.png").write_bytes(STRIP.read_bytes())
    out = tmp_path / "out"
    for k in range(2):
        assert run([src, "--out", out, "--model", TINY, "--shard", f"{k}/2", "-q"])[0] == 0
    heas = sorted(p.stem for p in out.glob("*.hea"))
    assert len(heas) == 3 and "z" in heas
    assert all(h.startswith("a__page") or h.startswith("b__page") or h == "z" for h in heas)
    assert (out / "summary-0-of-2.json").is_file() and (out / "summary-1-of-2.json").is_file()
    assert len((out / "manifest.csv").read_text().splitlines()) == 4


def _results(out: Path) -> list[dict]:
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    for r in lines:  # timings differ from run to run
        r.pop("seconds", None)
        r.pop("model_seconds", None)
    return lines


def test_workers_change_nothing_but_the_speed(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(4):
        (src / f"s{i}.png").write_bytes(STRIP.read_bytes())
    (src / "s1x.jpg").write_text("not an image")  # a failure among them
    (src / "c.png").write_bytes(CLEAN.read_bytes())
    runs = {}
    for workers in (1, 3):
        out = tmp_path / f"out{workers}"
        code, _ = run([src, "--out", out, "--model", TINY, "--workers", workers, "-q"])
        assert code == 1
        runs[workers] = (_results(out), {p.name: p.read_bytes() for p in out.glob("*.dat")})
    lines, records = runs[3]
    assert runs[1] == runs[3]  # the same records, the same results in the same order
    assert [Path(r["input"]).name for r in lines] == sorted(p.name for p in src.iterdir())
    assert len(records) == 5


@pytest.mark.parametrize("workers", [1, 2])
def test_fail_fast_stops_and_reports_every_record_it_wrote(tmp_path, workers):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.png").write_bytes(STRIP.read_bytes())
    (src / "b.jpg").write_text("not an image")
    for name in ("c.png", "d.png", "e.png", "f.png"):
        (src / name).write_bytes(STRIP.read_bytes())
    out = tmp_path / "out"
    code, _ = run([src, "--out", out, "--model", TINY, "--workers", workers, "--fail-fast",
                   "-q"])
    assert code == 1
    lines = _results(out)
    assert lines[0]["status"] in ("ok", "warn") and lines[1]["status"] == "error"
    reported = {r["record"] for r in lines if r.get("record")}
    assert {p.stem for p in out.glob("*.hea")} == reported  # nothing written unreported
    assert len(reported) <= 1 + workers  # the pages already converting, no more


def test_record_names_are_sanitised_and_unique(tmp_path):
    items = [InputItem(tmp_path / "x" / "ECG 1.2.png", tmp_path),
             InputItem(tmp_path / "x" / "ECG 1_2.png", tmp_path),
             InputItem(tmp_path / "y.v2" / "p.tif", tmp_path),
             InputItem(tmp_path / "w" / "page_3.png", tmp_path)]
    names = record_names(items)
    vals = list(names.values())
    assert len(set(vals)) == 4
    assert all(c.isalnum() or c in "_-" for v in vals for c in v)
    assert names[items[3].path] == "w__page_3"  # nothing replaced: the path itself
    assert names[items[2].path].startswith("y_v2__p_")  # '.' replaced: a path hash follows
    # a hash of the path, never a counter: stable across runs
    assert record_names(items) == names


def test_anonymize_keeps_paths_out(tmp_path):
    src = tmp_path / "Doe_John_1950"
    src.mkdir()
    (src / "scan.png").write_bytes(STRIP.read_bytes())
    out = tmp_path / "out"
    assert run([src, "--out", out, "--model", TINY, "--anonymize", "-q"])[0] == 0
    for p in out.rglob("*"):
        if p.is_file():
            assert "Doe_John" not in p.read_bytes().decode("latin-1"), p
            assert "scan" not in p.name


def test_usage_errors_exit_2(tmp_path):
    assert run([STRIP, "--out", tmp_path, "--layout", "5x5"])[0] == 2
    assert run([STRIP, "--out", tmp_path, "--shard", "3/2"])[0] == 2
    assert run([STRIP, "--out", tmp_path, "--gain", "7"])[0] == 2
    assert run([STRIP, "--out", tmp_path, "--model", tmp_path / "none.onnx"])[0] == 2
    import onnxruntime as ort
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        code, output = run([STRIP, "--out", tmp_path, "--device", "cuda"])
        assert code == 2 and "cuda" in output.lower()


def test_help_ends_with_an_example():
    code, output = run(["--help"])
    assert code == 0 and "Example:" in output and output.rstrip().splitlines()[-1].strip()


def test_never_imports_torch_or_trainer(tmp_path):
    code = f"""
import sys
from digitize.cli import main
try:
    main([{str(STRIP)!r}, '--out', {str(tmp_path / 'o')!r}, '--model', {str(TINY)!r}, '-q'])
except SystemExit as e:
    assert e.code == 0, e.code
bad = [m for m in ('torch', 'torchvision', 'onnx', 'trainer') if m in sys.modules]
assert not bad, bad
print('clean')
"""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=300)
    assert r.returncode == 0 and "clean" in r.stdout, r.stderr
