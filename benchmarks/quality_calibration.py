"""Do the quality flags tell the truth? Per lead, digitize's status (ok / warn / fail, no
reference used) against the lead's SNR from --reference (DESIGN.md §5).

Issue #4 targets: <= 2 % of leads marked ok have SNR < 10 dB; >= 80 % of leads under 5 dB are
marked warn or fail. Reads a digitize output folder made with --reference, e.g. the one
benchmarks/digitize_e2e.py writes (thresholds are chosen on --split val, reported on test):

    ECG_DATA_DIR=../shared/data python benchmarks/digitize_e2e.py --split test --out runs/e2e
    python benchmarks/quality_calibration.py runs/e2e/records
"""
from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np

BINS = [(-np.inf, 5), (5, 10), (10, 15), (15, 20), (20, np.inf)]


def main() -> int:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/e2e/records")
    rows = []
    for qp in sorted(folder.glob("*.quality.json")):
        q = json.loads(qp.read_text())
        ref = (q.get("reference") or {}).get("leads") or {}
        for lead, lq in q["quality"]["leads"].items():
            s = ref.get(lead)
            if s and s.get("snr_db") is not None:
                rows.append((lq["status"], s["snr_db"], lq["reasons"]))
    if not rows:
        print(f"no scored leads under {folder} (run digitize with --reference)")
        return 1
    st = np.array([r[0] for r in rows])
    snr = np.array([r[1] for r in rows])
    print(f"{folder}: {len(rows)} leads with a reference")
    print(f"{'SNR (dB)':>12s} " + " ".join(f"{s:>6s}" for s in ("ok", "warn", "fail")))
    for lo, hi in BINS:
        sel = (snr >= lo) & (snr < hi)
        print(f"{f'[{lo:g}, {hi:g})':>12s} " + " ".join(f"{int((sel & (st == s)).sum()):6d}"
                                                      for s in ("ok", "warn", "fail")))
    ok = st == "ok"
    bad = snr < 5
    print(f"\nleads marked ok: {ok.sum()}; of them under 10 dB: "
          f"{100 * np.mean(snr[ok] < 10) if ok.any() else float('nan'):.1f} % (target <= 2 %)")
    print(f"leads under 5 dB: {bad.sum()}; marked warn/fail: "
          f"{100 * np.mean(st[bad] != 'ok') if bad.any() else float('nan'):.1f} % (target >= 80 %)")
    reasons = Counter(re.sub(r"^[\d.]+% ", "", r.split(" (")[0].split(":")[0])
                      for s, _, rs in rows if s != "ok" for r in rs)
    print("most frequent reasons:", ", ".join(f"{k} ({v})" for k, v in reasons.most_common(6)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
