"""Training, resume, export (tiny configs, CPU). Needs the [train] extra."""
import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs the [train] extra (torch)")
pytest.importorskip("onnx", reason="needs the [train] extra (onnx)")

from conftest import REPO  # noqa: E402
from digitize.engine import Engine  # noqa: E402
from digitize.model_spec import REQUIRED_KEYS, StripSpec  # noqa: E402
from trainer.export import ParityError, check_parity, export  # noqa: E402
from trainer.model import SeedNet, build_model  # noqa: E402
from trainer.train import (TrainConfig, column_loss, load_checkpoint, parse_overrides,  # noqa: E402
                           seed_loss, train)

TINY = dict(channels="8,8,12,16", d_model=16, n_layers=1, n_heads=2, batch_size=4,
            crop_cols=64, strips_per_page=4, workers=0, val_pages=1, eval_every=2,
            warmup_steps=2, threads=1)


def _cfg(tmp_path, name="run", **kw):
    from trainer.data import SAMPLE_DIR
    return TrainConfig(**{**TINY, **kw, "out": str(tmp_path / name), "data": str(SAMPLE_DIR)})


def test_overrides_are_typed_and_unknown_keys_rejected():
    cfg = parse_overrides(["--lr=0.01", "--arch=seed", "--batch-size=8"])
    assert cfg.lr == 0.01 and cfg.arch == "seed" and cfg.batch_size == 8
    with pytest.raises(ValueError, match="unknown config key 'lr_max'"):
        parse_overrides(["--lr_max=1"])
    with pytest.raises(ValueError, match="bad value"):
        parse_overrides(["--batch_size=many"])
    r = subprocess.run([sys.executable, "-m", "trainer", "train", "--nonsense=1"], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "unknown config key" in r.stderr


def test_a_few_steps_reduce_the_loss():
    torch.manual_seed(0)
    cfg = TrainConfig(**{k: v for k, v in TINY.items()})
    model, spec = build_model("column", channels=(8, 8, 12, 16), d_model=16, n_layers=1,
                              n_heads=2)
    # one fixed batch of synthetic strips: a bright line at a known height
    rng = np.random.default_rng(0)
    x = np.zeros((4, 1, spec.height_px, 64), np.float32)
    y = rng.uniform(-10, 10, (4, 64)).astype(np.float32)
    rows = np.clip(((30 - y) * 2 - 0.5).round().astype(int), 0, spec.height_px - 1)
    for b in range(4):
        x[b, 0, rows[b], np.arange(64)] = 3.0
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss, _ = column_loss(model(xt), yt, spec, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]


def test_seed_model_shapes_and_loss():
    torch.manual_seed(0)
    model = SeedNet()
    out = model(torch.zeros(2, 1, 224, 448))
    assert out.shape == (2, 1000)
    cfg = TrainConfig(pearson_warmup_steps=1)
    loss, parts = seed_loss(out, torch.randn(2, 1000), step=5, cfg=cfg)
    assert torch.isfinite(loss) and "pearson" in parts


def test_resume_continues_identically(tmp_path):
    straight = _cfg(tmp_path, "straight", max_steps=4)
    train(straight)
    resumed = _cfg(tmp_path, "resumed", max_steps=4)
    assert train(resumed, stop_at_step=2)["step"] == 2  # interrupted
    train(resumed)  # picks up resumed/last.pt
    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "resumed" / "last.pt", weights_only=False)
    assert a["step"] == b["step"] == 4
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert [h["loss"] for h in a["history"]] == pytest.approx([h["loss"] for h in b["history"]])
    assert (tmp_path / "straight" / "curves.png").is_file()
    model, spec, cfg, _ = load_checkpoint(tmp_path / "straight" / "best.pt")
    assert cfg.d_model == 16 and isinstance(spec, StripSpec)


def test_export_parity_and_metadata(tmp_path):
    cfg = _cfg(tmp_path, max_steps=2)
    train(cfg)
    stages = [{"steps": 1900, "batch_size": 32, "machine": "a CPU", "note": "from scratch"}]
    info = export(tmp_path / "run" / "best.pt", tmp_path / "m.onnx", lineage=stages)
    assert info["parity_max_abs_diff"] <= 1e-4
    import onnx
    m = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(m)
    assert m.opset_import[0].version >= 17
    meta = {p.key: p.value for p in m.metadata_props}
    assert set(REQUIRED_KEYS) <= set(meta)
    training = json.loads(meta["ecg.training_data"])
    assert training["steps"] == 2 and "strat_fold 1-7" in training["split"]
    assert training["lineage"] == stages  # earlier stages, for the model card
    from trainer.evaluate import write_model_card
    report = dict(model_sha256="x", model_version="v", split="test", geometry="gt", cases={})
    write_model_card(report, training, tmp_path / "m.onnx", tmp_path, {})
    card = (tmp_path / "MODEL_CARD.md").read_text()
    assert "1. 1900 steps × 32 strips on a CPU: from scratch" in card
    assert "2-core CPU machine" in card and "over the steps" in card  # device=auto, steps
    eng = Engine(tmp_path / "m.onnx", device="cpu")
    assert eng.spec == StripSpec.from_json(meta["ecg.strip_spec"]) and eng.arch == "column"
    # dynamic batch and width
    for batch, width in ((1, 37), (3, 400)):
        (v, c), *_ = eng.run([np.zeros((eng.spec.height_px, width), np.float32)] * batch)
        assert v.shape == (width,) and c.shape == (width,)
    # a model that is not the exported one fails the parity check
    other, spec = build_model("column", channels=(8, 8, 12, 16), d_model=16, n_layers=1,
                              n_heads=2)
    with pytest.raises(ParityError):
        check_parity(other.eval(), tmp_path / "m.onnx", spec, (64,))


def test_minutes_schedule_follows_the_clock():
    from trainer.train import lr_at
    cfg = TrainConfig(lr=1e-3, warmup_steps=10, max_steps=10**6, schedule="minutes",
                      max_minutes=4.0)
    assert lr_at(4, cfg, 0.0) == pytest.approx(5e-4)  # warm-up is still counted in steps
    assert lr_at(50, cfg, 0.0) == pytest.approx(1e-3)
    assert lr_at(50, cfg, 2.0) == pytest.approx(0.51e-3)  # half the budget: half the cosine
    assert lr_at(50, cfg, 4.0) == pytest.approx(2e-5) == lr_at(50, cfg, 9.0)
    steps = TrainConfig(lr=1e-3, warmup_steps=10, max_steps=110)
    assert lr_at(60, steps, 3.9) == pytest.approx(0.51e-3)  # 'steps' ignores the clock
    with pytest.raises(ValueError, match="schedule"):
        train(TrainConfig(schedule="hours"))
    with pytest.raises(ValueError, match="page_layouts: unknown 5x5"):
        from trainer.train import Batches
        Batches(TrainConfig(page_layouts="12x1,5x5"), StripSpec(), 0)


def test_fine_tune_from_packed_signals_validates_its_start(tmp_path):
    """A budgeted fine-tune as on a lent GPU: packed signals, weights from a checkpoint, the
    starting weights validated first so that best.pt means 'better than the start'."""
    from trainer.data import SAMPLE_DIR, pack_signals
    pack_signals(SAMPLE_DIR, tmp_path / "s.npz")
    train(_cfg(tmp_path, "base", max_steps=2))
    cfg = _cfg(tmp_path, "ft", max_steps=2, init=str(tmp_path / "base" / "best.pt"),
               page_layouts="12x1,6x1", schedule="minutes", max_minutes=5.0, eval_every=1,
               keep_evals=True)
    cfg.data = str(tmp_path / "s.npz")
    res = train(cfg)
    kept = torch.load(tmp_path / "ft" / "step1.pt", weights_only=False)  # every evaluation's
    assert kept["step"] == 1 and "optimizer" not in kept and (tmp_path / "ft" / "step2.pt").exists()
    ck = torch.load(tmp_path / "ft" / "last.pt", weights_only=False)
    first = ck["history"][0]
    assert first["step"] == 0 and "val_snr_mean" in first and "loss" not in first
    assert res["step"] == 2 and res["best"] >= first["val_snr_mean"]
    assert [h["step"] for h in ck["history"][1:]] == [1, 2]


def test_the_shipped_model_reads_back_as_a_checkpoint(tmp_path):
    """``from-onnx``: the exported model's folded batch norms and transposed weights become a
    checkpoint that reproduces it (parity checked) and fine-tunes with the batch norms frozen."""
    from trainer.from_onnx import checkpoint_from_onnx
    from trainer.train import train_mode
    r = checkpoint_from_onnx(REPO / "exported" / "model.onnx", tmp_path / "init.pt")
    assert r["parity_max_abs_diff"] <= 1e-4
    model, spec, cfg, ck = load_checkpoint(tmp_path / "init.pt")
    assert cfg.freeze_bn and ck["step"] > 0
    sess = Engine(REPO / "exported" / "model.onnx", device="cpu")
    x = np.zeros((1, 1, spec.height_px, 120), np.float32)
    x[0, 0, spec.height_px // 2 - 6, :] = 3.0  # a flat trace 3 mm above the centre
    (value, _), = sess.run([x[0, 0]])
    with torch.inference_mode():
        ref = model(torch.from_numpy(x))[0][0].numpy()
    assert np.max(np.abs(ref - value)) < 1e-3
    assert abs(float(np.median(ref)) - 3.0) < 0.5
    train_mode(model, freeze_bn=True)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns) and model.training
