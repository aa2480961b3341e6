"""Archive-grade batch runs (issue #17): each test recreates the condition for real — output
kept inside the input, a read-only or full disk (a real tmpfs, mounted in a private mount
namespace), Ctrl-C and SIGTERM sent to a running process, names that must stay put, reruns with
more options, bad arguments, resumed totals, huge images, --anonymize, models that break the
ONNX contract, CLI conventions and overlays.
"""
import ast
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import REPO
from digitize.cli import main

PAGES = REPO / "examples" / "pages"
CLEAN = PAGES / "00000_00008_3x4p1_clean.png"
STRIP = PAGES / "00000_00008_strip_clean.png"
TINY = REPO / "tests" / "fixtures" / "tiny_column.onnx"
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def cli(args):
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


def digitize_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "digitize", *[str(a) for a in args]]


def results(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]


def tmp_files(out: Path) -> list[Path]:
    return [p for p in (out / ".tmp").rglob("*")] if (out / ".tmp").exists() else []


def assert_nothing_partial(out: Path) -> None:
    assert not tmp_files(out)
    for q in out.glob("*.quality.json"):
        name = q.name[:-len(".quality.json")]
        assert (out / f"{name}.hea").is_file() and (out / f"{name}.dat").is_file(), name
    for d in out.glob("*.dat"):
        assert d.with_suffix(".hea").is_file(), d


def strips(folder: Path, n: int, image: Path = STRIP) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        shutil.copy(image, folder / f"s{i:02d}.png")
    return folder


# ---- a private mount namespace with a tmpfs we control (read-only, or nearly full)

def _namespace_works() -> str | None:
    if not shutil.which("unshare"):
        return "no unshare program"
    r = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k none /mnt"],
                       capture_output=True, text=True)
    return None if r.returncode == 0 else f"cannot mount a tmpfs here: {r.stderr.strip()}"


NS_REASON = _namespace_works()
needs_ns = pytest.mark.skipif(NS_REASON is not None, reason=f"{NS_REASON}")


def in_namespace(script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run a shell script in a private mount namespace (unprivileged where user namespaces
    are allowed); ``$MNT`` is an empty folder to mount on, ``$PY`` runs digitize."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    env = {**ENV, "MNT": str(mnt), "PY": sys.executable}
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True,
                          text=True, env=env, cwd=REPO)


# ---- 1. output inside the input

def test_output_inside_the_input_is_never_read_back(tmp_path):
    src = strips(tmp_path / "inplace", 2)
    out = src / "wfdb"
    for _ in range(3):
        code, _, err = cli([src, "--out", out, "--overlay", "--model", TINY, "-q"])
        assert code == 0, err
    assert sorted(p.name for p in out.glob("*.hea")) == ["s00.hea", "s01.hea"]
    assert len(list(out.glob("*.overlay.png"))) == 2
    lines = results(out)
    assert len(lines) == 6 and all(r["input"].endswith(("s00.png", "s01.png")) for r in lines)
    # another run's output folder inside the input, and a folder named as input that is an
    # output folder itself: neither is read as pages
    code, _, _ = cli([src, "--out", tmp_path / "elsewhere", "--model", TINY, "-q"])
    assert code == 0 and len(results(tmp_path / "elsewhere")) == 2
    code, _, _ = cli([out, "--out", tmp_path / "again", "--model", TINY, "-q"])
    assert code == 0 and not (tmp_path / "again" / "results.jsonl").exists()


# ---- 2. unwritable output

@needs_ns
def test_read_only_output_is_refused_before_any_work(tmp_path):
    strips(tmp_path / "in", 1)
    r = in_namespace(textwrap.dedent(f"""
        mount -t tmpfs -o size=1m none "$MNT" && mount -o remount,ro "$MNT" || exit 99
        "$PY" -m digitize {tmp_path / 'in'} --out "$MNT" --model {TINY}; echo "rc=$?"
        "$PY" -m digitize {tmp_path / 'in'} --out "$MNT/sub" --model {TINY}; echo "rc=$?"
        """), tmp_path)
    assert "rc=2\nrc=2" in r.stdout, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2 and all("cannot write to --out" in x for x in lines), r.stderr
    assert "Traceback" not in r.stderr and "terminate called" not in r.stderr


# ---- 3. disk full

@needs_ns
def test_full_disk_stops_cleanly_and_a_rerun_resumes(tmp_path):
    src = strips(tmp_path / "in", 6)
    keep = tmp_path / "kept"
    # one page's files are ~130 kB: 400 kB holds two or three, not six
    r = in_namespace(textwrap.dedent(f"""
        mount -t tmpfs -o size=400k none "$MNT" || exit 99
        "$PY" -m digitize {src} --out "$MNT/o" --model {TINY} --workers 1; echo "rc1=$?"
        cp -a "$MNT/o" {keep}
        mount -o remount,size=4m "$MNT"
        "$PY" -m digitize {src} --out "$MNT/o" --model {TINY} --workers 1; echo "rc2=$?"
        cp -a "$MNT/o" {keep}2
        """), tmp_path)
    assert "rc1=1" in r.stdout and "rc2=0" in r.stdout, r.stdout + r.stderr
    first = r.stderr.split("rc2")[0]
    assert "Traceback" not in r.stderr
    full = [x for x in r.stderr.splitlines() if "disk is full" in x]
    assert len(full) == 1 and "rerun" in full[0], r.stderr  # one line, not one per page
    assert_nothing_partial(keep)
    n_first = len(list(keep.glob("*.hea")))
    assert 1 <= n_first < 6, first
    assert_nothing_partial(Path(f"{keep}2"))
    assert len(list(Path(f"{keep}2").glob("*.hea"))) == 6
    second = [json.loads(x) for x in (Path(f"{keep}2") / "results.jsonl").read_text()
              .splitlines()[-6:]]
    assert sum(r["status"] == "skipped" for r in second) == n_first  # resumed, not redone


# ---- 4. signals

@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signals_stop_cleanly_with_their_exit_code(tmp_path, sig, code):
    n = 40
    src = strips(tmp_path / "in", n)
    out = tmp_path / "out"
    (out / ".tmp").mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    import socket
    host = socket.gethostname().replace(".", "-")
    stale = out / ".tmp" / f"x.hea.{host}.{dead.pid}.tmp"
    stale.write_text("left by a run that was killed")
    # (a job started in the background by a non-interactive shell inherits SIGINT ignored, as
    # Unix does for background jobs: the test restores the default so that its signal arrives)
    p = subprocess.Popen(digitize_cmd(src, "--out", out, "--model", TINY, "--workers", "1"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t0 = time.time()
    while time.time() - t0 < 120:
        if (out / "results.jsonl").exists() and (out / "results.jsonl").read_text().count("\n") >= 2:
            break
        time.sleep(0.05)
    p.send_signal(sig)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == code, stderr
    assert "rerun the same command to resume" in stderr and "Aborted" not in stderr
    assert "Traceback" not in stderr
    assert not stale.exists()
    assert_nothing_partial(out)
    done = len(list(out.glob("*.hea")))
    assert 2 <= done < n
    code2, _, _ = cli([src, "--out", out, "--model", TINY, "-q"])  # resumes
    assert code2 == 0 and len(list(out.glob("*.hea"))) == n
    assert sum(r["status"] == "skipped" for r in results(out)[-n:]) == done


# ---- 5. names that stay put

def test_names_depend_on_the_relative_path_alone(tmp_path):
    src = tmp_path / "a"
    src.mkdir()
    shutil.copy(STRIP, src / "x y.png")
    out = tmp_path / "out"
    assert cli([tmp_path, "--out", out, "--model", TINY, "-q"])[0] == 0
    first = {p.name for p in out.glob("*.hea")}
    mtime = {p.name: p.stat().st_mtime_ns for p in out.glob("*.hea")}
    shutil.copy(STRIP, src / "x_y.png")
    shutil.copy(STRIP, src / "ékg.png")
    shutil.copy(STRIP, src / "心電図.PNG")
    assert cli([tmp_path, "--out", out, "--model", TINY, "-q"])[0] == 0
    heas = {p.name: p.stat().st_mtime_ns for p in out.glob("*.hea")}
    assert all(heas[n] == mtime[n] for n in first)  # the old record kept, not redone
    assert len(heas) == 4
    names = sorted(n[:-4] for n in heas)
    assert "a__x_y" in names
    assert any(n.startswith("a__ekg_") for n in names)
    assert any(n.startswith("a__record_") for n in names)
    manifest = (out / "manifest.csv").read_text().splitlines()[1:]
    assert len(manifest) == 4  # one line per record, no orphan
    assert len({line.split(",")[1] for line in manifest}) == 4


def test_names_that_differ_in_extension_only_are_refused_by_name(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(STRIP, src / "p.png")
    out = tmp_path / "out"
    assert cli([src, "--out", out, "--model", TINY, "-q"])[0] == 0
    cv2.imwrite(str(src / "p.bmp"), cv2.imread(str(STRIP)))  # sorts before p.png
    code, _, err = cli([src, "--out", out, "--model", TINY, "-q"])
    assert code == 1 and "p.bmp" in err and "p.png" in err and "rename" in err
    assert "p.png" in json.loads((out / "p.quality.json").read_text())["source"]


# ---- 6. reruns with more options

def test_rerun_with_overlay_and_reference_adds_them_without_converting_again(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(CLEAN, src / CLEAN.name)
    out = tmp_path / "out"
    assert cli([src, "--out", out, "-q"])[0] == 0
    hea = out / f"{CLEAN.stem}.hea"
    before = hea.stat().st_mtime_ns, (out / f"{CLEAN.stem}.dat").read_bytes()
    code, stdout, _ = cli([src, "--out", out, "--overlay", "--reference", PAGES])
    assert code == 0 and "1 completed" in stdout
    assert (hea.stat().st_mtime_ns, (out / f"{CLEAN.stem}.dat").read_bytes()) == before
    assert (out / f"{CLEAN.stem}.overlay.png").is_file()
    q = json.loads((out / f"{CLEAN.stem}.quality.json").read_text())
    assert q["reference"]["snr_db"] > 10
    last = results(out)[-1]
    assert last["status"] == "completed" and set(last["added"]) == {"overlay", "reference"}
    # nothing more to add: plain skip
    assert cli([src, "--out", out, "--overlay", "-q"])[0] == 0
    assert results(out)[-1]["status"] == "skipped"


# ---- 7. exit codes and messages

def test_exit_codes_and_one_line_messages(tmp_path):
    code, _, err = cli([tmp_path / "nothere", "--out", tmp_path / "o"])
    assert code == 2 and "nothere: no such file or directory" in err
    (tmp_path / "empty").mkdir()
    code, _, err = cli([tmp_path / "empty", "--out", tmp_path / "o"])
    assert code == 0 and "nothing to convert" in err
    code, _, err = cli([STRIP, "--out", tmp_path / "o", "--model", STRIP])
    assert code == 2 and "cannot load model" in err and len(err.strip().splitlines()) == 1
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(TINY.read_bytes()[: len(TINY.read_bytes()) // 2])
    for device in ("auto", "cpu"):  # auto tries CUDA first where onnxruntime-gpu offers it
        code, _, err = cli([STRIP, "--out", tmp_path / "o", "--model", broken,
                            "--device", device])
        assert code == 2 and "cannot load model" in err, err
        assert "CUDA" not in err and len(err.strip().splitlines()) == 1


# ---- 8. totals after a resume

def test_summary_describes_the_whole_folder_after_a_resume(tmp_path):
    src = strips(tmp_path / "in", 3)
    (src / "bad.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    assert cli([src, "--out", out, "--model", TINY, "-q"])[0] == 1
    code, stdout, _ = cli([src, "--out", out, "--model", TINY])
    s = json.loads((out / "summary.json").read_text())
    assert s["run"]["converted"] == 0 and s["run"]["skipped"] == 3
    f = s["folder"]
    assert f["records"] == 3 and f["ok"] + f["warn"] + f["fail"] == 3
    assert f["failed_inputs"] == 1
    assert "the folder holds 3 records" in stdout
    assert len((out / "manifest.csv").read_text().splitlines()) == 4


# ---- 9. memory: large inputs are read at a working resolution

def test_huge_jpeg_is_read_at_the_working_resolution(tmp_path):
    from digitize.io import MAX_WORK_PIXELS, InputItem, load_pages
    page = cv2.imread(str(CLEAN))
    big = cv2.resize(page, (9000, int(9000 * page.shape[0] / page.shape[1])),
                     interpolation=cv2.INTER_CUBIC)
    path = tmp_path / "big.jpg"
    cv2.imwrite(str(path), big, [cv2.IMWRITE_JPEG_QUALITY, 92])
    del big
    (_, img, scale), = load_pages(InputItem(path, tmp_path))
    assert img.shape[0] * img.shape[1] <= MAX_WORK_PIXELS * 1.01
    assert scale == pytest.approx(img.shape[1] / 9000, rel=0.01)
    out = tmp_path / "out"
    # a forced scale is the file's: it is carried down to the working image
    k_file = 9000 / page.shape[1] * 200 / 25.4
    code, _, err = cli([path, "--out", out, "--px-per-mm", k_file, "-q"])
    assert code == 0, err
    q = json.loads((out / "big.quality.json").read_text())
    assert q["input_scale"] == pytest.approx(scale, rel=1e-3)
    assert q["px_per_mm"] == pytest.approx(k_file * scale, rel=0.01)
    assert q["layout"] == "3x4+1"


# ---- 10. --anonymize

def test_anonymize_names_failures_on_the_terminal_and_counts_duplicates(tmp_path):
    src = tmp_path / "Doe_John"
    strips(src, 2)  # byte-identical
    (src / "broken.png").write_bytes(b"garbage")
    out = tmp_path / "out"
    code, stdout, err = cli([src, "--out", out, "--model", TINY, "--anonymize"])
    assert code == 1
    assert "broken.png" in err  # the terminal names the file ...
    for p in out.rglob("*"):  # ... the files do not
        if p.is_file():
            assert "Doe_John" not in p.read_bytes().decode("latin-1"), p
    s = json.loads((out / "summary.json").read_text())
    assert s["run"]["converted"] == 1 and s["run"]["duplicates"] == 1
    assert s["folder"]["records"] == 1 == len(list(out.glob("*.hea")))


# ---- 11. the ONNX contract

def _edited_model(tmp_path, edit) -> Path:
    onnx = pytest.importorskip("onnx")
    from digitize.engine import default_model_path
    m = onnx.load(str(default_model_path()))
    edit(m)
    path = tmp_path / "edited.onnx"
    onnx.save(m, str(path))
    return path


def test_model_with_unknown_normalisation_or_outputs_is_refused(tmp_path):
    from digitize.engine import Engine, EngineError
    from digitize.model_spec import KEY_SPEC

    def other_norm(m):
        for p in m.metadata_props:
            if p.key == KEY_SPEC:
                spec = json.loads(p.value)
                spec["normalisation"] = "x = grey / 255"
                p.value = json.dumps(spec)
    with pytest.raises(EngineError, match="normalisation"):
        Engine(_edited_model(tmp_path, other_norm))

    def renamed(m):
        old = m.graph.output[1].name
        for node in m.graph.node:
            node.output[:] = ["conf_other" if o == old else o for o in node.output]
        m.graph.output[1].name = "conf_other"
    with pytest.raises(EngineError, match="outputs"):
        Engine(_edited_model(tmp_path, renamed))


def test_outputs_are_taken_by_name(tmp_path):
    from digitize.engine import Engine, default_model_path

    def swap(m):
        a, b = (type(m.graph.output[0])(), type(m.graph.output[0])())
        a.CopyFrom(m.graph.output[1])
        b.CopyFrom(m.graph.output[0])
        del m.graph.output[:]
        m.graph.output.extend([a, b])
    swapped = Engine(_edited_model(tmp_path, swap))
    assert [o.name for o in swapped.session.get_outputs()] == ["confidence", "value_mm"]
    x = np.random.default_rng(0).normal(size=(120, 400)).astype(np.float32)
    (v1, c1), = Engine(default_model_path()).run([x])
    (v2, c2), = swapped.run([x])
    np.testing.assert_allclose(v1, v2, atol=1e-5)
    np.testing.assert_allclose(c1, c2, atol=1e-5)


# ---- 12. CLI conventions

def test_summary_on_stdout_errors_on_stderr_and_help(tmp_path):
    src = strips(tmp_path / "in", 1)
    (src / "bad.png").write_bytes(b"x")
    code, stdout, err = cli([src, "--out", tmp_path / "o", "--model", TINY])
    assert code == 1
    assert stdout.strip().startswith("digitize: 1 converted") and len(stdout.splitlines()) == 1
    assert "bad.png" in err and "bad.png" not in stdout
    _, help_text, _ = cli(["--help"])
    flat = " ".join(help_text.split())
    assert "i % N == K" in flat and "%%" not in help_text
    assert "Lead strips per model call" in flat  # --batch-size has help
    code, _, err = cli([STRIP, "--out", tmp_path / "g", "--model", TINY, "--gain", "2.5", "-q"])
    assert code == 0, err
    assert "gain_mm_mv: 2.5" in (tmp_path / "g" / f"{STRIP.stem}.hea").read_text()


def test_internal_errors_show_their_traceback_at_verbose(tmp_path, monkeypatch):
    import digitize.run

    def broken(*a, **k):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr(digitize.run, "convert_page", broken)
    code, _, err = cli([STRIP, "--out", tmp_path / "a", "--model", TINY, "-q"])
    assert code == 1 and "internal error: ZeroDivisionError: a bug" in err
    assert "Traceback" not in err
    code, _, err = cli([STRIP, "--out", tmp_path / "b", "--model", TINY, "-v"])
    assert "Traceback" in err and "digitize.run" in err  # logged by the module's logger


def test_library_code_neither_prints_nor_sets_the_environment():
    for path in sorted((REPO / "digitize").glob("*.py")):
        if path.name in ("cli.py", "__main__.py"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                f = ast.unparse(node.func)
                assert f != "print" and not f.startswith("click."), f"{path.name}: {f}"
                assert "environ" not in f or f.endswith(".get"), f"{path.name}: {f}"
            if isinstance(node, (ast.Assign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                assert not any("environ" in ast.unparse(t) for t in targets), path.name
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "logging.getLogger":
                assert ast.unparse(node.args[0]) == "__name__", path.name


# ---- 13. overlays a reviewer can read

def test_overlay_outlines_windows_and_leaves_the_ink_visible(tmp_path):
    out = tmp_path / "o"
    assert cli([CLEAN, "--out", out, "--overlay", "-q"])[0] == 0
    page = cv2.imread(str(CLEAN))
    ov = cv2.imread(str(out / f"{CLEAN.stem}.overlay.png"))
    q = json.loads((out / f"{CLEAN.stem}.quality.json").read_text())
    assert [w["lead"] for w in q["windows"]][:4] == ["I", "aVR", "V1", "V4"]
    assert len(q["windows"]) == 13  # 3x4 panels + the rhythm strip
    from digitize.overlay import trace_colour
    colour = np.array(trace_colour(page), np.int32)
    # the page's ink under the drawn trace still darkens it: no pixel of the trace is the
    # pure, opaque colour over paper-white ink lines
    ink = cv2.cvtColor(page, cv2.COLOR_BGR2GRAY) < 80
    changed = np.abs(ov.astype(np.int32) - page).sum(axis=2) > 60
    assert changed[ink].mean() > 0.2  # the 1-px trace lies along the 3-px ink
    under = ov[ink & changed].astype(np.int32)
    assert np.median(np.abs(under - colour).sum(axis=1)) > 40  # blended, not opaque
    # each window is outlined: its left edge is drawn in the trace colour
    w = q["windows"][0]
    x = int(round(w["x0_mm"] * w["px_per_mm"]))
    y = int(round(w["centre_mm"] * w["px_per_mm"]))
    column = ov[y - 40:y + 40, x - 1:x + 2].astype(np.int32)
    assert (np.abs(column - colour).sum(axis=2) < 120).any(axis=1).mean() > 0.5
