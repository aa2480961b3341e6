"""End-to-end accuracy of `digitize` (--layout auto, --gain auto) on rendered test-split pages,
scored by --reference (DESIGN.md §5 per-record pooled SNR), plus layout detection accuracy and
the quality-flag calibration (issue #4: ≤ 2 % of leads marked ok have SNR < 10 dB; ≥ 80 % of
leads under 5 dB are marked warn or fail).

Pages: test split only, for each style × layout `--pages` pages (record i of a fixed shuffle,
page seed = ecg_id), at 25 mm/s (the CLI default; the paper speed is a user option, not
detected), every other drawn parameter random (gain 5/10/20, half-gain chest leads, pulses
left/right/none, 64-300 dpi...). The digitize command runs as a user runs it: a subprocess, the
shipped model, no ground-truth geometry.

    ECG_DATA_DIR=../shared/data python benchmarks/digitize_e2e.py --pages 8 --out runs/e2e
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from trainer.data import default_ptbxl_dir, prepared_signal, records_for_split  # noqa: E402
# the layouts of the committed sets A-F (6x2+1, added later, would shift their records)
LAYOUTS = ("strip", "3x4", "3x4+1", "3x4+2", "3x4+3", "6x2", "6x1", "12x1")
from trainer.render import render_page, sample_spec, write_page  # noqa: E402

STYLES = ("clean", "scan", "photo")


def render(out: Path, pages: int, ptbxl: str, split: str = "test", skip: int = 0
           ) -> list[dict]:
    recs = records_for_split(ptbxl, split)
    order = np.random.default_rng(0).permutation(len(recs))
    metas, i = [], skip
    for style in STYLES:
        for layout in LAYOUTS:
            for _ in range(pages):
                info = recs[int(order[i % len(recs)])]
                i += 1
                sig, fs = prepared_signal(ptbxl, info)
                rng = np.random.default_rng(info.ecg_id)
                pins = {} if layout == "strip" else {"speed": 25.0}
                spec = sample_spec(rng, layout, style, **pins)
                page = render_page(sig, fs, spec, header_seed=info.ecg_id)
                name = f"{info.ecg_id:05d}_{layout.replace('+', 'p')}_{style}"
                write_page(page, out, name, extra_meta=dict(ecg_id=info.ecg_id))
                metas.append(dict(name=name, style=style, layout=layout,
                                  gain=spec.gain_limb, half_chest=spec.gain_chest != spec.gain_limb,
                                  px_per_mm=page.meta["px_per_mm"]))
    return metas


def summarise(metas: list[dict], out: Path) -> dict:
    res = {}
    for line in (out / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        res[Path(r["input"]).stem] = r
    table, ok_snr, bad_flag = {}, [], []
    for style in STYLES + ("all",):
        for layout in tuple(LAYOUTS) + ("all",):
            sel = [m for m in metas if style in ("all", m["style"]) and layout in ("all", m["layout"])]
            if not sel:
                continue
            snrs, correct, failed = [], 0, 0
            for m in sel:
                r = res.get(m["name"])
                if r is None or r["status"] in ("error", "not_ecg"):  # (an ECG page taken for not_ecg failed)
                    failed += 1
                    continue
                correct += r["layout"] == m["layout"]
                if r.get("reference") and r["reference"]["snr_db"] is not None:
                    snrs.append(r["reference"]["snr_db"])
            a = np.array(snrs, float)
            # DESIGN.md §5: a missing estimate counts as 0 mV, so a failed page scores 0 dB
            with_failed = np.concatenate([a, np.zeros(failed)])
            table[f"{style}/{layout}"] = dict(
                pages=len(sel), failed=failed,
                snr_mean_failed_as_0db=float(np.mean(with_failed)) if len(with_failed) else None,
                snr_mean=float(np.mean(a)) if len(a) else None,
                snr_median=float(np.median(a)) if len(a) else None,
                layout_accuracy=correct / len(sel))
    # quality calibration, per lead
    for m in metas:
        qp = out / f"{m['name']}.quality.json"
        if not qp.is_file():
            continue
        q = json.loads(qp.read_text())
        leads = (q.get("reference") or {}).get("leads") or {}
        for lead, lq in q["quality"]["leads"].items():
            s = leads.get(lead)
            if not s or s.get("snr_db") is None:
                continue
            if lq["status"] == "ok":
                ok_snr.append(s["snr_db"])
            if s["snr_db"] < 5:
                bad_flag.append(lq["status"] != "ok")
    ok_snr = np.array(ok_snr)
    cal = dict(leads_ok=int(len(ok_snr)),
               ok_with_snr_below_10db=float(np.mean(ok_snr < 10)) if len(ok_snr) else None,
               leads_below_5db=len(bad_flag),
               below_5db_flagged=float(np.mean(bad_flag)) if bad_flag else None)
    return dict(table=table, quality_calibration=cal)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=8, help="pages per style x layout")
    ap.add_argument("--out", default="runs/e2e")
    ap.add_argument("--data", default=None)
    ap.add_argument("--summarise-only", action="store_true",
                    help="only re-read the records of an earlier run")
    ap.add_argument("--split", default="test", choices=("test", "val"),
                    help="val: for choosing thresholds; numbers are reported on test only")
    ap.add_argument("--skip", type=int, default=0,
                    help="start this far into the split's shuffled records (a second, disjoint "
                         "set of validation pages)")
    ap.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "digitize_e2e.json"))
    ap.add_argument("--digitize-args", default="",
                    help="extra digitize options, e.g. '--printed-gain off'")
    args = ap.parse_args()
    ptbxl = args.data or str(default_ptbxl_dir())
    out = Path(args.out)
    pages, rec = out / "pages", out / "records"
    if args.summarise_only:  # re-read a finished run (pages list from its JSON)
        metas = json.loads(Path(args.json).read_text())["pages"]
    else:
        import shutil
        for d in (pages, rec):  # a clean run: no pages or records from an earlier one
            shutil.rmtree(d, ignore_errors=True)
        t = time.time()
        metas = render(pages, args.pages, ptbxl, args.split, args.skip)
        print(f"rendered {len(metas)} {args.split}-split pages in {time.time() - t:.0f} s")
        t = time.time()
        cmd = [sys.executable, "-m", "digitize", str(pages), "--out", str(rec), "--reference",
               str(pages), "--overwrite", "-q"] + args.digitize_args.split()
        r = subprocess.run(cmd, cwd=REPO)
        dt = time.time() - t
        print(f"digitize exit code {r.returncode} in {dt:.0f} s ({len(metas) / dt:.2f} pages/s)")
    s = summarise(metas, rec)
    print("\nrecord SNR (dB): 'all' counts a failed page as 0 dB (DESIGN.md §5: missing = 0 mV);"
          " 'converted' leaves failed pages out")
    print(f"{'style/layout':22s} {'pages':>5s} {'failed':>6s} {'mean all':>9s} "
          f"{'mean conv':>9s} {'median conv':>11s} {'layout ok':>9s}")
    for k, v in s["table"].items():
        f = (lambda x: f"{x:9.2f}" if x is not None else f"{'-':>9s}")
        print(f"{k:22s} {v['pages']:5d} {v['failed']:6d} {f(v['snr_mean_failed_as_0db'])} "
              f"{f(v['snr_mean'])} {f(v['snr_median']):>11s} {100 * v['layout_accuracy']:8.0f}%")
    c = s["quality_calibration"]
    print(f"\nquality flags: {c['leads_ok']} leads marked ok, "
          f"{100 * (c['ok_with_snr_below_10db'] or 0):.1f} % of them under 10 dB (target <= 2 %); "
          f"{c['leads_below_5db']} leads under 5 dB, "
          f"{100 * (c['below_5db_flagged'] or 0):.1f} % flagged warn/fail (target >= 80 %)")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(dict(pages=metas, **s), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
