"""digitize on the real scans and photos of ../shared/data/real-scans against the hand labels
in tests/real_labels.csv: layout detection and px/mm (issue #4 targets: layout >= 85 % correct,
px/mm within 3 %). No ground-truth signals exist for these images; look at the overlays.

    ECG_DATA_DIR=../shared/data python benchmarks/real_scans.py --out runs/real
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/real")
    args = ap.parse_args()
    scans = Path(os.environ.get("ECG_DATA_DIR", REPO.parent / "shared" / "data")) / "real-scans"
    out = Path(args.out)
    if (out / "results.jsonl").exists():
        (out / "results.jsonl").unlink()  # this run's lines only
    subprocess.run([sys.executable, "-m", "digitize", str(scans), "--out", str(out), "--overlay",
                    "--overwrite", "-q"], cwd=REPO)
    lines = [x for x in (REPO / "tests" / "real_labels.csv").read_text().splitlines()
             if x and not x.startswith("#")]
    labels = {r["file"]: r for r in csv.DictReader(lines)}
    results = {}
    for line in (out / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        results[str(Path(r["input"]).resolve().relative_to(scans.resolve()))] = r
    n_layout = ok_layout = n_px = ok_px = 0
    print(f"{'file':34s} {'label':12s} {'found':12s} {'px/mm label':>11s} {'found':>7s} {'err':>7s}  status")
    for f, lab in labels.items():
        r = results.get(f, {})
        found = r.get("layout", "-") if r.get("status") != "error" else "-"
        px = r.get("px_per_mm")
        err = (px / float(lab["px_per_mm"]) - 1) * 100 if px else None
        n_layout += 1
        ok_layout += (found == lab["layout"]) or (lab["layout"] == "unsupported"
                                                  and r.get("status") == "error")
        n_px += 1
        ok_px += err is not None and abs(err) <= 3
        reason = r.get("reason", "") if r.get("status") == "error" else r.get("status", "")
        print(f"{f:34s} {lab['layout']:12s} {found:12s} {float(lab['px_per_mm']):11.3f} "
              f"{px if px else float('nan'):7.3f} {err if err is not None else float('nan'):+6.1f}%  {reason}")
    print(f"\nlayout correct: {ok_layout}/{n_layout} = {100 * ok_layout / n_layout:.0f} % (target >= 85 %; "
          "a failed page counts as wrong, an 'unsupported' page as right when it fails)")
    print(f"px/mm within 3 %: {ok_px}/{n_px} = {100 * ok_px / n_px:.0f} % (failed pages count as wrong)")
    s = json.loads((out / "summary.json").read_text())["run"]
    print(f"converted {s['converted']} of {s['inputs']} files ({s['quality']}), failed {s['failed']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
