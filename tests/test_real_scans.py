"""Every real scan or photo yields a record or a one-line reason — never a crash, never a
silent gap. Accuracy against the hand labels is a benchmark (benchmarks/real_scans.py)."""
import csv
import json

from click.testing import CliRunner

from conftest import REPO
from digitize.cli import main

LABELS = REPO / "tests" / "real_labels.csv"


def read_labels():
    lines = [x for x in LABELS.read_text().splitlines() if x and not x.startswith("#")]
    return list(csv.DictReader(lines))


def test_labels_cover_every_distinct_file(real_scans):
    labels = {r["file"] for r in read_labels()}
    files = {str(p.relative_to(real_scans)) for p in real_scans.rglob("*") if p.is_file()
             and p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp")}
    assert files - labels == {"ecg-image-kit/ecg00014.png"}  # the duplicate of ecg00010
    assert labels <= files
    for r in read_labels():
        assert r["layout"] in ("strip", "3x4", "3x4+1", "3x4+2", "3x4+3", "6x2", "6x1", "12x1",
                               "unsupported")
        assert 2.0 < float(r["px_per_mm"]) < 25


def test_every_real_file_gives_a_record_or_a_reason(real_scans, tmp_path):
    res = CliRunner().invoke(main, [str(real_scans), "--out", str(tmp_path), "-q"],
                             catch_exceptions=False)
    assert res.exit_code in (0, 1)
    assert "Traceback" not in res.output
    lines = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(lines) == 41
    for r in lines:
        if r["status"] == "error":
            assert r["reason"] and "\n" not in r["reason"]
            assert r["input"].split("/")[-1] in res.output
        else:
            assert (tmp_path / f"{r['record']}.hea").is_file()
