"""Training loop: ``python -m trainer train [--key=value ...]``.

Data are rendered on the fly in worker processes (train split only); validation strips come
from the val split; the test split is never touched here. Checkpoints hold the resolved config,
model, optimiser, schedule, RNG state and history, so a run resumes exactly where it stopped.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from digitize.model_spec import StripSpec
from trainer import dataset
from trainer.data import default_ptbxl_dir
from trainer.model import build_model

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    # --- model
    arch: str = "column"  # 'column' (default) or 'seed'
    channels: str = "16,32,48,64"  # column: CNN widths, stem then one stage each
    blocks_per_stage: int = 1
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    # --- data (rendered on the fly from the train split)
    data: str = ""  # PTB-XL folder; '' = $ECG_DATA_DIR/ptbxl or the bundled sample
    batch_size: int = 32
    crop_cols: int = 250  # training window in columns (62.5 mm = one 3x4 cell)
    strips_per_page: int = 8
    strip_layout_share: float = 0.3  # share of seed-format single-lead strips
    # the other pages' layouts, drawn uniformly ('' = all page layouts; repeat one to weight it)
    page_layouts: str = ""
    styles: str = "clean,scan,photo"
    workers: int = 1  # render processes (0: render in the training process)
    val_pages: int = 24
    # --- optimisation
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 200
    max_steps: int = 20000  # cosine schedule length
    max_minutes: float = 85.0  # wall-clock budget of this invocation (resume to continue)
    # 'steps': the cosine runs over max_steps (reproducible); 'minutes': over max_minutes of
    # wall clock, for one budgeted run on a lent machine whose speed is not known beforehand
    schedule: str = "steps"
    grad_clip: float = 1.0
    eval_every: int = 250
    patience: int = 10  # evaluations without improvement before early stopping
    # --- loss
    sigma_bins: float = 1.0  # column: Gaussian soft target width
    value_weight: float = 0.5  # column: smooth-L1 on the value (mm)
    conf_weight: float = 0.1  # column: BCE of the confidence
    pearson_warmup_steps: int = 600  # seed: (1 - Pearson) joins after this many steps
    deriv_weight: float = 0.5  # seed: derivative loss
    # --- run
    out: str = "runs/column"
    init: str = ""  # start from this checkpoint's weights (fresh optimiser/schedule): fine-tuning
    # batch norm layers kept in inference mode (their statistics fixed): needed when the weights
    # come from an exported model, whose batch norms are folded into the convolutions
    # (``python -m trainer from-onnx``)
    freeze_bn: bool = False
    # share of pages drawn in other printers' conventions: separator bars, labels at a panel's
    # start touching the trace, a trace starting at the pulse's edge (``render.sample_spec``)
    foreign: float = 0.0
    foreign_bars: float = 0.7  # of those pages, the share with separator bars
    # share of pages whose record keeps a baseline wander (``data.baseline_wander``): other
    # generators draw the raw record, ours band-passes it
    wander: float = 0.0
    # also keep every evaluation's weights as step<N>.pt (weights only), to choose among them
    # afterwards on pages the run's validation strips do not cover (other generators' pages)
    keep_evals: bool = False
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 2


def parse_overrides(args: list[str], base: TrainConfig | None = None) -> TrainConfig:
    """Apply ``--key=value`` overrides; unknown keys and malformed values raise ValueError."""
    cfg = dataclasses.replace(base) if base else TrainConfig()
    types = {f.name: f.type for f in fields(TrainConfig)}
    for arg in args:
        if not arg.startswith("--") or "=" not in arg:
            raise ValueError(f"expected --key=value, got {arg!r}")
        key, value = arg[2:].split("=", 1)
        key = key.replace("-", "_")
        if key not in types:
            raise ValueError(f"unknown config key {key!r}; known: {', '.join(sorted(types))}")
        typ = types[key]
        try:
            if typ in ("bool", bool):
                v = {"true": True, "1": True, "false": False, "0": False}[value.lower()]
            elif typ in ("int", int):
                v = int(value)
            elif typ in ("float", float):
                v = float(value)
            else:
                v = value
        except (KeyError, ValueError):
            raise ValueError(f"bad value for {key}: {value!r} (expected {typ})") from None
        setattr(cfg, key, v)
    return cfg


def model_kwargs(cfg: TrainConfig) -> dict:
    if cfg.arch == "seed":
        return {}
    return dict(channels=tuple(int(c) for c in cfg.channels.split(",")),
                blocks_per_stage=cfg.blocks_per_stage, d_model=cfg.d_model,
                n_layers=cfg.n_layers, n_heads=cfg.n_heads)


def load_checkpoint(path: str | Path, map_location="cpu"):
    """(model in eval mode, StripSpec, TrainConfig, raw checkpoint dict) — shared by resume,
    export and evaluate."""
    ck = torch.load(path, map_location=map_location, weights_only=False)
    cfg = TrainConfig(**ck["config"])
    model, spec = build_model(cfg.arch, **model_kwargs(cfg))
    model.load_state_dict(ck["model"])
    model.eval()
    return model, spec, cfg, ck


class Batches(IterableDataset):
    def __init__(self, cfg: TrainConfig, spec: StripSpec, start: int):
        self.cfg, self.spec, self.start = cfg, spec, start
        self.layouts = tuple(cfg.page_layouts.split(",")) if cfg.page_layouts \
            else dataset.PAGE_LAYOUTS
        unknown = set(self.layouts) - set(dataset.PAGE_LAYOUTS)
        if unknown:
            raise ValueError(f"page_layouts: unknown {', '.join(sorted(unknown))}")

    def __iter__(self):
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        if info:
            import cv2
            cv2.setNumThreads(1)
            torch.set_num_threads(1)
        c = self.cfg
        b = self.start + wid
        while True:
            x, y = dataset.make_batch(
                b, seed=c.seed, ptbxl_dir=c.data, split="train", spec=self.spec,
                batch_size=c.batch_size, crop_cols=c.crop_cols,
                strips_per_page=c.strips_per_page, strip_layout_share=c.strip_layout_share,
                styles=tuple(c.styles.split(",")), strip_only=c.arch == "seed",
                page_layouts=self.layouts, foreign=c.foreign, foreign_bars=c.foreign_bars,
                wander=c.wander)
            yield torch.from_numpy(x), torch.from_numpy(y)
            b += nw


# ---------------------------------------------------------------------------------- losses

def column_loss(model_out, target_mm: torch.Tensor, spec: StripSpec, cfg: TrainConfig):
    value_mm, conf, logits = model_out
    half = spec.height_mm / 2
    # clip targets into the bin range, or the soft target would be all zeros
    t = target_mm.clamp(-half + spec.bin_mm / 2, half - spec.bin_mm / 2)
    centres = half - (torch.arange(spec.n_bins, device=t.device) + 0.5) * spec.bin_mm
    d = (centres - t.unsqueeze(-1)) / (cfg.sigma_bins * spec.bin_mm)
    soft = torch.exp(-0.5 * d * d)
    soft = soft / soft.sum(-1, keepdim=True)
    ce = -(soft * F.log_softmax(logits, -1)).sum(-1).mean()
    err = (value_mm - t).abs()
    l1 = F.smooth_l1_loss(value_mm / spec.bin_mm, t / spec.bin_mm)
    good = (err.detach() < 0.5).float()  # the confidence target: within 0.5 mm
    bce = F.binary_cross_entropy(conf.clamp(1e-6, 1 - 1e-6), good)
    total = ce + cfg.value_weight * l1 + cfg.conf_weight * bce
    return total, dict(ce=ce.item(), l1=l1.item(), bce=bce.item())


def seed_loss(pred_mv: torch.Tensor, target_mm: torch.Tensor, step: int, cfg: TrainConfig):
    """The seed's composite: SmoothL1 + MSE, (1 - Pearson) after the warm-up, derivative loss."""
    t = target_mm / 10.0  # seed strips are 10 mm/mV: targets in mV
    base = F.smooth_l1_loss(pred_mv, t) + F.mse_loss(pred_mv, t)
    deriv = F.l1_loss(pred_mv.diff(dim=-1), t.diff(dim=-1))
    total = base + cfg.deriv_weight * deriv
    parts = dict(base=base.item(), deriv=deriv.item())
    if step >= cfg.pearson_warmup_steps:
        pc, tc = pred_mv - pred_mv.mean(-1, keepdim=True), t - t.mean(-1, keepdim=True)
        r = (pc * tc).sum(-1) / (pc.norm(dim=-1) * tc.norm(dim=-1) + 1e-6)
        total = total + (1 - r).mean()
        parts["pearson"] = r.mean().item()
    return total, parts


def predict_mm(model, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    return out * 10.0 if isinstance(out, torch.Tensor) else out[0]  # seed: mV → mm


# ------------------------------------------------------------------------------ validation

def column_snr(pred_mm: np.ndarray, target_mm: np.ndarray) -> float:
    """SNR (dB) of one strip after removing the offset (no lag search: geometry is exact)."""
    t = target_mm - target_mm.mean()
    p = pred_mm - pred_mm.mean()
    noise = float(np.sum((t - p) ** 2))
    return float(10 * np.log10(max(float(np.sum(t * t)), 1e-12) / max(noise, 1e-12)))


def train_mode(model, freeze_bn: bool = False) -> None:
    """``model.train()``, with the batch norms left in inference mode where ``freeze_bn``."""
    model.train()
    if freeze_bn:
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()


@torch.no_grad()
def validate(model, strips: list, device, freeze_bn: bool = False) -> dict:
    model.eval()
    snrs = []
    by_width: dict[int, list] = {}
    for s in strips:
        by_width.setdefault(s.x.shape[1], []).append(s)
    for group in by_width.values():
        for i in range(0, len(group), 16):
            chunk = group[i:i + 16]
            x = torch.from_numpy(np.stack([s.x for s in chunk])[:, None]).to(device)
            pred = predict_mm(model, x).float().cpu().numpy()
            snrs += [column_snr(p, s.target_mm) for p, s in zip(pred, chunk)]
    train_mode(model, freeze_bn)
    return dict(val_snr_mean=float(np.mean(snrs)), val_snr_median=float(np.median(snrs)),
                val_n=len(snrs))


# ------------------------------------------------------------------------------------ main

def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device=cuda requested but CUDA is not available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def lr_at(step: int, cfg: TrainConfig, minutes: float | None = None) -> float:
    """Warm-up, then cosine decay to 2 % of cfg.lr over the steps (or, with
    ``schedule='minutes'``, over the wall-clock budget; ``minutes`` = time spent)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "minutes" and minutes is not None:
        p = min(1.0, minutes / max(cfg.max_minutes, 1e-9))
    else:
        p = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * p)))


def train(cfg: TrainConfig, stop_at_step: int | None = None) -> dict:
    """Train (or resume from ``cfg.out``/last.pt). ``stop_at_step`` simulates an interruption
    after that step (a checkpoint is written there), as a wall-clock budget does."""
    cfg.data = cfg.data or str(default_ptbxl_dir())
    if cfg.schedule not in ("steps", "minutes"):
        raise ValueError(f"schedule must be 'steps' or 'minutes', not {cfg.schedule!r}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model, spec = build_model(cfg.arch, **model_kwargs(cfg))
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, best, bad_evals, history = 0, -float("inf"), 0, []
    last = out / "last.pt"
    if last.exists():
        ck = torch.load(last, map_location=device, weights_only=False)
        if ck["config"]["arch"] != cfg.arch:
            raise ValueError(f"{last} holds a {ck['config']['arch']} model, not {cfg.arch}")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        step, best, bad_evals, history = ck["step"], ck["best"], ck["bad_evals"], ck["history"]
        torch.set_rng_state(ck["torch_rng"])
        log.info("resumed %s at step %d (best val SNR %.2f dB)", last, step, best)
    elif cfg.init:
        ck = torch.load(cfg.init, map_location=device, weights_only=False)
        if ck["config"]["arch"] != cfg.arch or model_kwargs(TrainConfig(**ck["config"])) != model_kwargs(cfg):
            raise ValueError(f"{cfg.init} holds a different architecture than this config")
        model.load_state_dict(ck["model"])
        log.info("initialised weights from %s (its step %d)", cfg.init, ck["step"])
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=1))

    styles = tuple(cfg.styles.split(","))
    val_layouts = ("strip",) if cfg.arch == "seed" else ("strip", "3x4+1", "6x2", "12x1")
    val = dataset.strip_set(cfg.val_pages, seed=cfg.seed, ptbxl_dir=cfg.data, split="val",
                            spec=spec, layouts=val_layouts, styles=styles, foreign=cfg.foreign,
                            foreign_bars=cfg.foreign_bars, wander=cfg.wander)
    # spawn, not fork: a forked child inherits OpenCV's/OpenMP's thread pools mid-state and hangs
    if step == 0 and cfg.init:  # the starting point, on the same validation strips
        v0 = validate(model, val, device, cfg.freeze_bn)
        log.info("initial weights: val SNR mean %.2f dB median %.2f dB", v0["val_snr_mean"],
                 v0["val_snr_median"])
        history.append(dict(step=0, **v0))
        best = v0["val_snr_mean"]  # best.pt is written only by weights that beat these
    loader = DataLoader(Batches(cfg, spec, step), batch_size=None, num_workers=cfg.workers,
                        prefetch_factor=4 if cfg.workers else None,
                        multiprocessing_context="spawn" if cfg.workers else None,
                        # its own generator: creating the iterator must not consume the global
                        # RNG (dropout), or a resumed run would diverge
                        generator=torch.Generator().manual_seed(cfg.seed))
    use_amp = device.type == "cuda"
    t_start, t_log = time.time(), time.time()
    stop_reason = "max_steps"
    train_mode(model, cfg.freeze_bn)
    for x, y in loader:
        if step >= cfg.max_steps:
            break
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        lr = lr_at(step, cfg, (time.time() - t_start) / 60)
        for g in opt.param_groups:
            g["lr"] = lr
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            pred = model(x)
        pred = tuple(p.float() for p in pred) if isinstance(pred, tuple) else pred.float()
        if cfg.arch == "seed":
            loss, parts = seed_loss(pred, y, step, cfg)
        else:
            loss, parts = column_loss(pred, y, spec, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        history.append(dict(step=step, loss=loss.item(), lr=lr, **parts))
        if step % 25 == 0:
            dt = time.time() - t_log
            t_log = time.time()
            log.info("step %d loss %.4f lr %.2e (%.1f strips/s)", step, loss.item(), lr,
                     25 * cfg.batch_size / max(dt, 1e-9))
        done = (time.time() - t_start) / 60 >= cfg.max_minutes or step == stop_at_step
        if step % cfg.eval_every == 0 or done or step >= cfg.max_steps:
            v = validate(model, val, device, cfg.freeze_bn)
            history[-1].update(v)
            improved = v["val_snr_mean"] > best
            if improved:
                best, bad_evals = v["val_snr_mean"], 0
            else:
                bad_evals += 1
            ck = dict(model=model.state_dict(), optimizer=opt.state_dict(), step=step,
                      best=best, bad_evals=bad_evals, history=history,
                      config=dataclasses.asdict(cfg), spec=spec.to_json(),
                      torch_rng=torch.get_rng_state())
            tmp = out / "last.pt.tmp"
            torch.save(ck, tmp)
            tmp.replace(last)
            if cfg.keep_evals:
                torch.save({k: v for k, v in ck.items() if k != "optimizer"},
                           out / f"step{step}.pt")
            if improved:
                torch.save(ck, out / "best.pt.tmp")
                (out / "best.pt.tmp").replace(out / "best.pt")
            log.info("step %d val SNR mean %.2f dB median %.2f dB%s", step, v["val_snr_mean"],
                     v["val_snr_median"], " (best)" if improved else "")
            plot_curves(history, out / "curves.png")
            if bad_evals >= cfg.patience:
                stop_reason = "early stopping"
                break
            if done:
                stop_reason = "wall-clock budget (resume to continue)"
                break
    log.info("stopped at step %d: %s; best val SNR %.2f dB", step, stop_reason, best)
    return dict(step=step, best=best, stop_reason=stop_reason)


def plot_curves(history: list[dict], path: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the train extra brings matplotlib; without it, no picture
        return
    trained = [h for h in history if "loss" in h]  # step 0 holds only the initial validation
    steps = [h["step"] for h in trained]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    loss = np.array([h["loss"] for h in trained])
    k = max(1, len(loss) // 200)
    smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
    ax[0].plot(steps[k - 1:], smooth)
    ax[0].set(xlabel="step", ylabel="training loss", yscale="log", title="loss")
    vs = [(h["step"], h["val_snr_mean"], h["val_snr_median"]) for h in history
          if "val_snr_mean" in h]
    if vs:
        s, m, md = zip(*vs)
        ax[1].plot(s, m, "o-", label="mean")
        ax[1].plot(s, md, "s--", label="median")
        ax[1].legend()
    ax[1].set(xlabel="step", ylabel="val SNR (dB)", title="validation (val split)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
