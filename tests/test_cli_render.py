"""python -m trainer render, end to end on the committed sample."""
import json
import subprocess
import sys

import numpy as np
import wfdb

from trainer.data import bandpass

from conftest import REPO


def _render(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "trainer", "render", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_render_cli_writes_pages_with_ground_truth(tmp_path, ptbxl_sample):
    out = tmp_path / "pages"
    r = _render("--data", str(ptbxl_sample), "--split", "test", "--layout", "random",
                "--style", "random", "--count", "4", "--seed", "1", "--out", str(out))
    assert r.returncode == 0, r.stderr
    metas = sorted(out.glob("*.json"))
    assert len(metas) == 4
    for path in metas:
        meta = json.loads(path.read_text())
        assert meta["source"]["split"] == "test"
        assert meta["source"]["ecg_id"] in (8, 10, 515)
        assert (out / meta["image"]).is_file()
        rec = wfdb.rdrecord(str(out / meta["record"]))
        assert rec.fs == meta["source"]["fs"]
        assert np.isfinite(rec.p_signal).any()
    assert not list(out.glob(".*"))  # no temporary files left behind
    # same seed, same pages
    again = tmp_path / "again"
    _render("--data", str(ptbxl_sample), "--split", "test", "--count", "4", "--seed", "1",
            "--out", str(again))
    for path in metas:
        assert (again / path.name).read_bytes() == path.read_bytes()


def test_render_cli_filter_switch(tmp_path, ptbxl_sample):
    base = ["--data", str(ptbxl_sample), "--split", "val", "--layout", "strip", "--style",
            "clean", "--count", "1", "--seed", "0"]
    assert _render(*base, "--out", str(tmp_path / "f")).returncode == 0
    assert _render(*base, "--no-filter", "--out", str(tmp_path / "n")).returncode == 0
    (f,), (n,) = list((tmp_path / "f").glob("*.hea")), list((tmp_path / "n").glob("*.hea"))
    a = wfdb.rdrecord(str(f.with_suffix(""))).p_signal[:, 1]
    b = wfdb.rdrecord(str(n.with_suffix(""))).p_signal[:, 1]
    assert not np.allclose(a, b)
    # the drawn (and recorded) signal is the band-passed source
    assert np.max(np.abs(bandpass(b[:, None], 500.0)[:, 0] - a)) < 0.002
    meta = json.loads(f.with_suffix(".json").read_text())
    assert meta["source"]["filter"]["low_hz"] == 0.5
    assert json.loads(n.with_suffix(".json").read_text())["source"]["filter"] is None


def test_render_cli_usage_errors(tmp_path):
    r = _render("--data", str(tmp_path), "--split", "test", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "ptbxl_database.csv" in r.stderr
    r = _render("--split", "nope", "--out", str(tmp_path))
    assert r.returncode == 2
