"""``python -m trainer <command>``: the training side's command line.

    python -m trainer render --split test --layout 3x4+1 --style scan --count 20 --out pages/
"""
from __future__ import annotations

import argparse
import functools
import json
import logging
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

from trainer.data import SPLIT_FOLDS, default_ptbxl_dir, prepared_signal, records_for_split
from trainer.layouts import LAYOUTS
from trainer.render import STYLES, render_page, sample_spec, write_page

log = logging.getLogger("trainer")


@functools.lru_cache(maxsize=64)
def _signal(ptbxl_dir: str, info, band: tuple | None, fs_out: float | None):
    return prepared_signal(ptbxl_dir, info, band=band, fs_out=fs_out)


def page_name(index: int, ecg_id: int, layout: str, style: str) -> str:
    """File stem of a rendered page; WFDB record names allow only [-A-Za-z0-9_]."""
    return f"{index:05d}_{ecg_id:05d}_{layout.replace('+', 'p')}_{style}"


def _render_one(job: tuple, args: argparse.Namespace) -> str:
    index, info = job
    filt = None if args.no_filter else (args.low_hz, args.high_hz)
    sig, fs = _signal(str(args.data), info, filt, args.fs)
    rng = np.random.default_rng([args.seed, index])
    pins = {"dpi": args.dpi} if args.dpi else {}
    spec = sample_spec(rng, args.layout, args.style, **pins)
    page = render_page(sig, fs, spec, header_seed=int(rng.integers(2**31)))
    name = page_name(index, info.ecg_id, spec.layout, spec.style)
    write_page(page, args.out, name, extra_meta=dict(
        source=dict(dataset="PTB-XL", ecg_id=info.ecg_id, split=info.split,
                    strat_fold=info.strat_fold, fs=fs,
                    filter=None if filt is None else dict(type="butterworth", order=4,
                                                          low_hz=filt[0], high_hz=filt[1])),
        seed=[args.seed, index]))
    return name


def _init_worker() -> None:
    import cv2
    cv2.setNumThreads(1)  # one core per worker process


def cmd_render(args: argparse.Namespace) -> int:
    try:
        records = records_for_split(args.data, args.split)
    except (FileNotFoundError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    if not records:
        log.error("no %s records under %s", args.split, args.data)
        return 2
    order = np.random.default_rng(args.seed).permutation(len(records))
    jobs = [(i, records[order[i % len(records)]]) for i in range(args.count)]
    Path(args.out).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    work = functools.partial(_render_one, args=args)
    if args.workers > 1:
        with mp.get_context("spawn").Pool(args.workers, initializer=_init_worker) as pool:
            for name in pool.imap_unordered(work, jobs, chunksize=4):
                log.debug("wrote %s", name)
    else:
        for job in jobs:
            log.debug("wrote %s", work(job))
    dt = time.perf_counter() - t0
    print(f"rendered {args.count} {args.split} pages to {args.out} in {dt:.1f} s "
          f"({args.count / max(dt, 1e-9):.1f} pages/s)")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from trainer.train import parse_overrides, train  # torch only for this command
    try:
        cfg = parse_overrides(args.overrides)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    train(cfg)
    return 0


def cmd_pack(args: argparse.Namespace) -> int:
    from trainer.data import pack_signals
    t0 = time.time()
    counts = pack_signals(args.data, args.out, tuple(args.splits.split(",")))
    mib = args.out.stat().st_size / 2**20
    print(f"packed {counts} to {args.out} ({mib:.1f} MiB) in {time.time() - t0:.0f} s")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from trainer.export import export
    lineage = json.loads(args.lineage.read_text()) if args.lineage else None
    info = export(args.checkpoint, args.out, lineage)
    print(json.dumps(info))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from trainer.evaluate import evaluate, write_model_card
    report = evaluate(args.model, str(args.data), args.out, limit=args.limit)
    if args.card:
        from digitize.engine import Engine
        cmd = ("ECG_DATA_DIR=../shared/data python -m trainer evaluate --model "
               f"{args.model} --card" + (f" --limit {args.limit}" if args.limit else ""))
        write_model_card(report, Engine(args.model, device="cpu").training, Path(args.model),
                         Path(args.model).parent, {"evaluate": cmd})
    print(json.dumps({k: {"record_snr_mean_db": round(v["record_snr_db"]["mean"], 2),
                          "record_snr_median_db": round(v["record_snr_db"]["median"], 2),
                          "share_r_ge_0.99": round(v["share_r_ge_0.99"], 3)}
                      for k, v in report["cases"].items()}, indent=1))
    return 0


def cmd_seg_train(args) -> int:
    from trainer.seg import SegConfig, train
    cfg = SegConfig(out=str(args.out), ptbxl_dir=str(args.data), seed=args.seed,
                    minutes=args.minutes, max_steps=args.max_steps, threads=args.threads,
                    workers=args.workers, batch_size=args.batch_size, crop=args.crop,
                    val_pages=args.val_pages, eval_every=args.eval_every)
    print(train(cfg))
    return 0


def cmd_seg_export(args) -> int:
    from trainer.seg import export
    print(export(args.checkpoint, args.out, int8=args.int8, ptbxl_dir=args.data,
                 calibration_pages=args.calibration_pages))
    return 0


def _add_data_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, default=default_ptbxl_dir(),
                   help="PTB-XL folder (default: $ECG_DATA_DIR/ptbxl, else the bundled sample)")


def cmd_from_onnx(args) -> int:
    from trainer.from_onnx import checkpoint_from_onnx
    r = checkpoint_from_onnx(args.model, args.out)
    print(f"wrote {r['out']} (step {r['step']}; parity with the ONNX model "
          f"{r['parity_max_abs_diff']:.1e})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m trainer", description=__doc__.splitlines()[0])
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="command", required=True)

    r = sub.add_parser("render", help="render ECG paper pages with exact ground truth",
                       description="Render pages from one split's records: <name>.png|jpg, "
                                   "<name>.hea/.dat (ground truth, mV, NaN outside the "
                                   "plotted windows) and <name>.json (geometry, polylines).")
    _add_data_option(r)
    r.add_argument("--split", choices=list(SPLIT_FOLDS), default="train")
    r.add_argument("--layout", choices=list(LAYOUTS) + ["random"], default="random")
    r.add_argument("--style", choices=list(STYLES) + ["random"], default="random")
    r.add_argument("--count", type=int, default=10, help="number of pages")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--dpi", type=float, default=None,
                   help="pin the resolution (default: random, 64-300 dpi; strips 100-300)")
    r.add_argument("--workers", type=int, default=1, help="render in this many processes")
    r.add_argument("--fs", type=float, default=None,
                   help="resample the source to this rate (Hz) first (default: keep)")
    r.add_argument("--low-hz", type=float, default=0.5, help="band-pass low cut-off (Hz)")
    r.add_argument("--high-hz", type=float, default=40.0, help="band-pass high cut-off (Hz)")
    r.add_argument("--no-filter", action="store_true", help="draw the unfiltered signal")
    r.set_defaults(func=cmd_render)

    t = sub.add_parser("train", help="train a model (--key=value overrides of TrainConfig)",
                       description="Train on strips rendered on the fly from the train split. "
                                   "Any TrainConfig field can be set as --key=value; unknown "
                                   "keys are rejected. Re-running with the same --out resumes.")
    t.set_defaults(func=cmd_train)

    k = sub.add_parser("pack", help="pack prepared signals into one .npz (train elsewhere)",
                       description="Write the band-passed signals of the train and val splits "
                       "(int16, 1 uV) to one compressed .npz, for a machine without the data "
                       "set or wfdb: then train with --data=FILE.npz. Never the test split.")
    _add_data_option(k)
    k.add_argument("--splits", default="train,val")
    k.add_argument("--out", type=Path, required=True)
    k.set_defaults(func=cmd_pack)

    e = sub.add_parser("export", help="export a checkpoint to ONNX (metadata + parity check)")
    e.add_argument("--checkpoint", type=Path, required=True)
    e.add_argument("--lineage", type=Path, default=None,
                   help="JSON list of the earlier training stages (oldest first) that made the "
                   "starting weights of a fine-tune, written into the model card")
    e.add_argument("--out", type=Path, default=Path("exported/model.onnx"))
    e.set_defaults(func=cmd_export)

    o = sub.add_parser("from-onnx", help="a checkpoint from an exported ONNX model (fine-tune "
                       "the shipped model; train it with --freeze_bn=true)")
    o.add_argument("--model", type=Path, default=Path("exported/model.onnx"))
    o.add_argument("--out", type=Path, required=True)
    o.set_defaults(func=cmd_from_onnx)

    v = sub.add_parser("evaluate", help="score an exported ONNX model on the test split")
    v.add_argument("--model", type=Path, default=Path("exported/model.onnx"))
    _add_data_option(v)
    v.add_argument("--out", type=Path, default=Path("runs/eval"))
    v.add_argument("--limit", type=int, default=None, help="first N test records only")
    v.add_argument("--card", action="store_true",
                   help="also write metrics.json and MODEL_CARD.md next to the model")
    v.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("seg-train", help="train the page segmentation net (pen strokes)",
                       description="Train trainer/seg.py's U-Net on pages rendered on the fly "
                                   "from the train split (checkpoints --out/last.pt; re-running "
                                   "with the same --out resumes).")
    _add_data_option(s)
    s.add_argument("--out", type=Path, default=Path("runs/seg"))
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--minutes", type=float, default=60.0, help="wall-clock budget")
    s.add_argument("--max-steps", type=int, default=100000)
    s.add_argument("--threads", type=int, default=1, help="torch threads for training")
    s.add_argument("--workers", type=int, default=1, help="render processes")
    s.add_argument("--batch-size", type=int, default=12)
    s.add_argument("--crop", type=int, default=192, help="crop size, px at 4 px/mm")
    s.add_argument("--val-pages", type=int, default=12)
    s.add_argument("--eval-every", type=int, default=200)
    s.set_defaults(func=cmd_seg_train)

    x = sub.add_parser("seg-export", help="export a segmentation checkpoint to ONNX")
    x.add_argument("--checkpoint", type=Path, required=True)
    x.add_argument("--out", type=Path, default=Path("exported/seg.onnx"))
    x.add_argument("--int8", action="store_true",
                   help="quantise to 8 bits (ONNX Runtime static QDQ; ~2x faster on a CPU)")
    x.add_argument("--calibration-pages", type=int, default=8,
                   help="train-split pages rendered to calibrate the 8-bit ranges")
    _add_data_option(x)
    x.set_defaults(func=cmd_seg_export)
    return ap


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "train":
        args.overrides = extra  # --key=value pairs, checked against TrainConfig
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("onnx_ir", "onnxscript", "torch.onnx", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if getattr(args, "count", 1) < 1:
        log.error("--count must be >= 1")
        return 2
    return args.func(args)
