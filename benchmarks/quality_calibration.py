"""Do the quality flags tell the truth? Per lead, digitize's status (ok / warn / fail, no
reference used) against the lead's SNR from --reference (DESIGN.md §5).

Issue #16 targets: <= 2 % of leads marked ok have SNR < 10 dB; >= 95 % of leads under 5 dB are
marked warn or fail; >= 80 % of leads under 0 dB fail; >= 60 % of the leads on clean pages
are ok. Reads digitize output folders made with --reference (per folder, then all together);
the status model is fitted on val folders (benchmarks/fit_status.py), so val figures are
in-sample and the test folders (eik test, own test renders) are the check:

    ECG_DATA_DIR=../shared/data python benchmarks/eik.py --split test --out runs/eik
    python benchmarks/quality_calibration.py runs/eik/test/{clean,bw,scan}/records
"""
from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np

BINS = [(-np.inf, 5), (5, 10), (10, 15), (15, 20), (20, np.inf)]


def rows_of(folder: Path) -> list[tuple[str, float, list[str], bool]]:
    """(status, SNR, reasons, clean page) per lead with a reference; a page is clean where its
    folder or name says so (ecg-image-kit's clean variant, our renders' _clean pages)."""
    rows = []
    for qp in sorted(folder.glob("*.quality.json")):
        q = json.loads(qp.read_text())
        ref = (q.get("reference") or {}).get("leads") or {}
        clean = "clean" in qp.name or "/clean/" in str(qp)
        for lead, lq in q["quality"]["leads"].items():
            s = ref.get(lead)
            if s and s.get("snr_db") is not None:
                rows.append((lq["status"], s["snr_db"], lq["reasons"], clean))
    return rows


def table(name: str, rows) -> None:
    st = np.array([r[0] for r in rows])
    snr = np.array([r[1] for r in rows])
    clean = np.array([r[3] for r in rows])
    print(f"{name}: {len(rows)} leads with a reference")
    print(f"{'SNR (dB)':>12s} " + " ".join(f"{s:>6s}" for s in ("ok", "warn", "fail")))
    for lo, hi in BINS:
        sel = (snr >= lo) & (snr < hi)
        print(f"{f'[{lo:g}, {hi:g})':>12s} " + " ".join(f"{int((sel & (st == s)).sum()):6d}"
                                                      for s in ("ok", "warn", "fail")))
    ok = st == "ok"

    def pct(a) -> str:
        return f"{100 * np.mean(a):.1f} %" if len(a) else "n/a"

    print(f"  leads ok: {ok.sum()}; of them under 10 dB: {pct(snr[ok] < 10)} (target <= 2 %)")
    print(f"  leads under 5 dB: {(snr < 5).sum()}; flagged warn/fail: {pct(st[snr < 5] != 'ok')}"
          " (target >= 95 %)")
    print(f"  leads under 0 dB: {(snr < 0).sum()}; fail: {pct(st[snr < 0] == 'fail')}"
          " (target >= 80 %)")
    print(f"  leads at 10 dB or more marked fail: {pct(st[snr >= 10] == 'fail')}")
    print(f"  leads on clean pages: {clean.sum()}; ok: {pct(ok[clean])} (target >= 60 %)")


def main() -> int:
    folders = [Path(f) for f in (sys.argv[1:] or ["runs/e2e/records"])]
    every = []
    for folder in folders:
        rows = rows_of(folder)
        if not rows:
            print(f"no scored leads under {folder} (run digitize with --reference)")
            return 1
        table(str(folder), rows)
        every += rows
    if len(folders) > 1:
        table("all", every)
    reasons = Counter(re.sub(r"^[\d.]+% ", "", r.split(" (")[0].split(":")[0])
                      for s, _, rs, _ in every if s != "ok" for r in rs)
    print("most frequent reasons on leads not ok:",
          ", ".join(f"{k} ({v})" for k, v in reasons.most_common(6)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
