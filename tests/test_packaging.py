"""What each side may import, and what the package installs."""
import subprocess
import sys

from conftest import REPO


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_renderer_needs_no_torch_or_matplotlib():
    r = _run("import sys, trainer, trainer.render, trainer.distort, trainer.data, trainer.cli\n"
             "bad = [m for m in sys.modules if m.split('.')[0] in "
             "('torch', 'torchvision', 'matplotlib', 'onnx')]\n"
             "assert not bad, bad")
    assert r.returncode == 0, r.stderr


def test_digitize_never_imports_torch_or_trainer():
    r = _run("import sys\n"
             "from click.testing import CliRunner\n"
             "from digitize.cli import main\n"
             "res = CliRunner().invoke(main, ['--version'])\n"
             "assert res.exit_code == 0 and res.output.startswith('digitize'), res.output\n"
             "import digitize.leads, digitize.wfdb_writer\n"
             "bad = [m for m in sys.modules if m.split('.')[0] in "
             "('torch', 'torchvision', 'onnx', 'trainer', 'onnxruntime')]\n"
             "assert not bad, bad")
    assert r.returncode == 0, r.stderr


def test_digitize_module_entry_point(tmp_path):
    """`python -m digitize` runs the CLI: a missing --out is a usage error (exit 2)."""
    r = subprocess.run([sys.executable, "-m", "digitize", "examples"], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--out" in r.stderr
