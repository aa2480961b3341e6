"""The ONNX Runtime engine, on a tiny committed model (no torch needed)."""
import logging

import numpy as np
import pytest

from conftest import REPO
from digitize.engine import Engine, EngineError
from digitize.model_spec import StripSpec

TINY = REPO / "tests" / "fixtures" / "tiny_column.onnx"


def test_loads_spec_from_metadata():
    eng = Engine(TINY, device="cpu", threads=1)
    assert eng.provider == "CPUExecutionProvider"
    assert isinstance(eng.spec, StripSpec) and eng.spec.height_px == 120
    assert eng.arch == "column" and eng.version.startswith("column-")
    assert len(eng.sha256) == 64
    strips = [np.zeros((120, w), np.float32) for w in (250, 250, 1000, 61)]
    out = eng.run(strips, batch_size=2)
    assert [v.shape for v, _ in out] == [(250,), (250,), (1000,), (61,)]
    assert all(np.all((c >= 0) & (c <= 1)) for _, c in out)


def test_auto_falls_back_to_cpu_quietly(caplog):
    import onnxruntime as ort
    caplog.set_level(logging.INFO, logger="digitize.engine")
    eng = Engine(TINY, device="auto")
    if "CUDAExecutionProvider" in ort.get_available_providers() and \
            eng.provider == "CUDAExecutionProvider":
        pytest.skip("CUDA works on this machine: nothing to fall back from")
    assert eng.provider == "CPUExecutionProvider"
    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert any("running on the CPU" in r.message for r in caplog.records)


def test_explicit_cuda_that_cannot_be_honoured_is_an_error():
    try:
        eng = Engine(TINY, device="cuda")
    except EngineError as exc:
        assert "cuda" in str(exc).lower()
    else:
        assert eng.provider == "CUDAExecutionProvider"  # a GPU machine: honoured


def test_bad_model_files(tmp_path):
    with pytest.raises(EngineError, match="not found"):
        Engine(tmp_path / "nope.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(EngineError, match="cannot load"):
        Engine(junk, device="cpu")
    with pytest.raises(EngineError, match="unknown device"):
        Engine(TINY, device="tpu")


def test_model_without_metadata_is_refused(tmp_path):
    onnx = pytest.importorskip("onnx", reason="needs onnx to strip the metadata")
    m = onnx.load(str(TINY))
    del m.metadata_props[:]
    onnx.save(m, str(tmp_path / "bare.onnx"))
    with pytest.raises(EngineError, match="lacks model metadata"):
        Engine(tmp_path / "bare.onnx", device="cpu")


def test_cuda_fallback_prints_nothing_but_one_info_line():
    """onnxruntime's own error lines about a missing CUDA library must not reach the user."""
    import subprocess
    import sys
    code = ("import logging; logging.basicConfig(level=logging.INFO)\n"
            "from digitize.engine import Engine\n"
            f"e = Engine(r'{TINY}', device='auto'); print(e.provider)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    if r.stdout.strip() == "CUDAExecutionProvider":
        pytest.skip("CUDA works here")
    assert "onnxruntime" not in r.stderr.replace("digitize.engine", ""), r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) <= 1
