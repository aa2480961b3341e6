"""Accuracy of `digitize` on pages someone else drew: ecg-image-kit pages with exact truth
(issue #15; ``$ECG_DATA_DIR/eik``, see its README).

For each split × variant (clean / bw / scan) the digitize command runs as a user runs it
(a subprocess, the shipped model, ``--layout auto --gain auto``) and is scored against the
generator's NaN-masked truth by ``--reference`` (DESIGN.md §5). Reported per set: pages
converted, failure reasons, per-record pooled SNR (mean counting a failed page as 0 dB, and mean
/ median over converted pages), layout read, and the time-origin error per lead in ms (the lag
that best aligns each lead, within the ±0.2 s the metric searches; a lead whose best lag sits at
the ±200 ms edge is counted as |200| ms, a lower bound of its error).

Choices are made on ``--split val`` only; ``--split test`` is scored once, when the work is done.

    ECG_DATA_DIR=../shared/data python benchmarks/eik.py --split val --out runs/eik
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("clean", "bw", "scan")


def eik_dir(data: str | None) -> Path:
    root = Path(data or os.environ.get("ECG_DATA_DIR") or REPO.parent / "shared" / "data")
    d = root / "eik"
    if not d.is_dir():
        sys.exit(f"no ecg-image-kit pages at {d} (set ECG_DATA_DIR or --data)")
    return d


def reference_dir(src: Path, dst: Path) -> None:
    """The truth renamed after the image stem (``00012_hr-0``), as --reference expects."""
    dst.mkdir(parents=True, exist_ok=True)
    for hea in src.glob("*.hea"):
        rec = hea.stem
        lines = hea.read_text().splitlines()
        first = lines[0].split()
        first[0] = f"{rec}-0"
        (dst / f"{rec}-0.hea").write_text("\n".join([" ".join(first)] + lines[1:]) + "\n")
        dat = dst / f"{rec}.dat"
        if not dat.exists():
            dat.symlink_to((src / f"{rec}.dat").resolve())


def page_rows(eik: Path, split: str, variant: str) -> list[dict]:
    with open(eik / "manifest.csv") as fh:
        return [r for r in csv.DictReader(fh) if r["split"] == split and r["variant"] == variant]


def layout_name(manifest_layout: str) -> str:
    """The manifest's '3x4+II' / '6x2+II' as digitize's layout names ('3x4+1', '6x2+1')."""
    base, _, rhythm = manifest_layout.partition("+")
    return f"{base}+1" if rhythm else base


def summarise(rows: list[dict], rec_dir: Path) -> dict:
    res = {}
    for line in (rec_dir / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        res[Path(r["input"]).stem] = r
    snrs, failed, reasons, layout_ok, lags, per_page = [], 0, Counter(), 0, [], []
    for m in rows:
        stem = Path(m["image"]).stem
        r = res.get(stem)
        if r is None or r["status"] not in ("ok", "warn", "fail"):  # error, not_ecg
            failed += 1
            reason = (r or {}).get("reason", "no result").split(":")[0][:70]
            reasons[reason if r is None or r["status"] == "error" else
                    f"{r['status']}: {reason}"] += 1
            per_page.append(dict(page=stem, layout=m["layout"], dpi=int(m["dpi"]),
                                 status="error", reason=(r or {}).get("reason")))
            continue
        layout_ok += r.get("layout") == layout_name(m["layout"])
        ref = r.get("reference") or {}
        snr = ref.get("snr_db")
        snrs.append(snr if snr is not None else 0.0)
        page_lags = []
        for lead, s in (ref.get("leads") or {}).items():
            if s is not None and s.get("lag_s") is not None:
                page_lags.append(1000 * s["lag_s"])
        lags += page_lags
        per_page.append(dict(page=stem, layout=m["layout"], read=r.get("layout"),
                             dpi=int(m["dpi"]), status=r["status"],
                             snr_db=None if snr is None else round(snr, 2),
                             median_lag_ms=round(float(np.median(page_lags)), 1)
                             if page_lags else None))
    a = np.array(snrs, float)
    lag = np.abs(np.array(lags, float))
    return dict(
        pages=len(rows), converted=len(rows) - failed, failed=failed,
        failure_reasons=dict(reasons),
        snr_mean_failed_as_0db=float(np.mean(np.concatenate([a, np.zeros(failed)])))
        if len(rows) else None,
        snr_mean=float(a.mean()) if len(a) else None,
        snr_median=float(np.median(a)) if len(a) else None,
        layout_read_right=layout_ok,
        lag_abs_median_ms=float(np.median(lag)) if len(lag) else None,
        lag_abs_p95_ms=float(np.percentile(lag, 95)) if len(lag) else None,
        leads_lag_over_40ms=float(np.mean(lag > 40)) if len(lag) else None,
        per_page=per_page)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="val", choices=("val", "test"))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out", default="runs/eik")
    ap.add_argument("--data", default=None, help="folder holding eik/ (default $ECG_DATA_DIR)")
    ap.add_argument("--summarise-only", action="store_true")
    ap.add_argument("--json", default=None,
                    help="default benchmarks/results/eik_<split>.json")
    ap.add_argument("--digitize-args", default="", help="extra digitize options")
    args = ap.parse_args()
    eik = eik_dir(args.data)
    out = Path(args.out)
    report = {}
    for variant in args.variants.split(","):
        rows = page_rows(eik, args.split, variant)
        src = eik / args.split / variant
        ref, rec = out / args.split / variant / "reference", out / args.split / variant / "records"
        if not args.summarise_only:
            shutil.rmtree(rec, ignore_errors=True)
            reference_dir(src, ref)
            images = [str(eik / m["image"]) for m in rows]
            t = time.time()
            cmd = [sys.executable, "-m", "digitize", *images, "--out", str(rec), "--reference",
                   str(ref), "--overwrite", "-q"] + args.digitize_args.split()
            r = subprocess.run(cmd, cwd=REPO)
            print(f"{args.split}/{variant}: digitize exit code {r.returncode}, {len(rows)} pages "
                  f"in {time.time() - t:.0f} s", flush=True)
        report[variant] = summarise(rows, rec)
    print(f"\necg-image-kit {args.split} pages. SNR: per-record pooled (DESIGN.md §5); "
          "'all' counts a failed page as 0 dB. lag: |time-origin error| per lead, ms")
    print(f"{'variant':8s} {'pages':>5s} {'conv':>5s} {'SNR all':>8s} {'SNR conv':>8s} "
          f"{'median':>7s} {'layout':>6s} {'lag med':>7s} {'lag p95':>7s} {'>40ms':>6s}")
    for v, s in report.items():
        f = (lambda x, w=8: f"{x:{w}.2f}" if x is not None else f"{'-':>{w}s}")
        print(f"{v:8s} {s['pages']:5d} {s['converted']:5d} {f(s['snr_mean_failed_as_0db'])} "
              f"{f(s['snr_mean'])} {f(s['snr_median'], 7)} {s['layout_read_right']:6d} "
              f"{f(s['lag_abs_median_ms'], 7)} {f(s['lag_abs_p95_ms'], 7)} "
              f"{100 * (s['leads_lag_over_40ms'] or 0):5.1f}%")
        for reason, n in s["failure_reasons"].items():
            print(f"    failed {n}: {reason}")
    print("\nper page:")
    for v, s in report.items():
        for p in s["per_page"]:
            print(f"  {v:6s} {p['page']:12s} {p['layout']:7s} {p['dpi']:4d} dpi  "
                  + (f"read {p['read']:6s} {p['status']:5s} SNR {p['snr_db']:7.2f}  "
                     f"median lag {p['median_lag_ms']} ms" if p["status"] != "error"
                     else f"FAILED {p['reason']}"))
    js = Path(args.json or REPO / "benchmarks" / "results" / f"eik_{args.split}.json")
    js.parent.mkdir(parents=True, exist_ok=True)
    js.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
