"""Pages that are not ECGs: how many become `not_ecg`, and how many ECG pages are taken for one.

1. A corpus of generated non-ECG images (tests/non_ecg.py: text documents, tables, forms,
   noise, photograph-like scenes, near-blank pages, charts) from seeds the tests do not use
   (the tests' 42 images were the ones the thresholds were looked at on), converted as a user
   would (subprocess, shipped model). Target: 100 % `not_ecg`.
2. ECG pages of the val sets taken for `not_ecg` (target <= 0.5 %), read from the output
   folders of the other benchmarks (their results.jsonl), e.g. runs/eik/val/*/records
   (benchmarks/eik.py) and runs/real (benchmarks/real_scans.py).

    python benchmarks/non_ecg.py --n 49 runs/eik/val/clean/records runs/eik/val/bw/records \
        runs/eik/val/scan/records runs/real
"""
from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import cv2  # noqa: E402

import non_ecg  # noqa: E402

FIRST_SEED = 1000  # the tests use make(0..41)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=49)
    ap.add_argument("--out", default="runs/non_ecg")
    ap.add_argument("ecg_outputs", nargs="*", help="digitize output folders of ECG pages")
    args = ap.parse_args()
    out = Path(args.out)
    src = out / "images"
    src.mkdir(parents=True, exist_ok=True)
    kinds = {}
    for i in range(FIRST_SEED, FIRST_SEED + args.n):
        kind, img = non_ecg.make(i)
        name = f"{i}_{kind}.png"
        kinds[name] = kind
        if not (src / name).exists():
            cv2.imwrite(str(src / name), img)
    rec = out / "records"
    subprocess.run([sys.executable, "-m", "digitize", str(src), "--out", str(rec), "--overwrite",
                    "--no-report", "-q"], cwd=REPO)
    by_kind = collections.defaultdict(collections.Counter)
    for line in (rec / "results.jsonl").read_text().splitlines()[-args.n:]:
        r = json.loads(line)
        by_kind[kinds[Path(r["input"]).name]][r["status"]] += 1
    print(f"generated non-ECG images (seeds {FIRST_SEED}..{FIRST_SEED + args.n - 1}):")
    total = collections.Counter()
    for kind in non_ecg.KINDS:
        c = by_kind[kind]
        total += c
        print(f"  {kind:8s} {sum(c.values()):3d} images: " +
              ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    n = sum(total.values())
    print(f"  all      {n:3d} images: not_ecg {total['not_ecg']} = "
          f"{100 * total['not_ecg'] / max(1, n):.1f} % (target 100 %)")
    if args.ecg_outputs:
        print("ECG pages (val sets) taken for not_ecg:")
        all_n = all_bad = 0
        for folder in args.ecg_outputs:
            lines = [json.loads(x) for x in (Path(folder) / "results.jsonl").read_text()
                     .splitlines()]
            last = {(r["input"], r.get("page")): r for r in lines
                    if r["status"] not in ("skipped", "duplicate", "completed")}
            bad = [k[0] for k, r in last.items() if r["status"] == "not_ecg"]
            all_n += len(last)
            all_bad += len(bad)
            print(f"  {folder}: {len(bad)} of {len(last)}" + (f" ({', '.join(bad)})" if bad else ""))
        print(f"  all: {all_bad} of {all_n} = {100 * all_bad / max(1, all_n):.2f} % "
              "(target <= 0.5 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
