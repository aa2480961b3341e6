"""Where the error on ecg-image-kit pages lies along each panel (issue #15): the noise power of
every lead (DESIGN.md §5: best lag within ±0.2 s, offset removed) split by where it falls.

Regions of a lead's drawn window: its first and last ``EDGE_S`` seconds, each called a row's
start / end (beside a calibration pulse or the row's end) or an inner start / end (at a panel
boundary inside the row, where ecg-image-kit draws a separator bar), and the middle. Reported per
set: each region's share of all noise, the mean per-page SNR with that region's error removed
(what reading it perfectly would give), and the least-squares gain of estimate on truth
(median over leads: an amplitude bias).

Reads the records that ``benchmarks/eik.py`` wrote (``--out``, default runs/eik) and the truth in
``$ECG_DATA_DIR/eik``; writes nothing but its report.

    ECG_DATA_DIR=../shared/data python benchmarks/eik_edges.py --split val
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import wfdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from digitize.metrics import resample_to, score_lead  # noqa: E402

EDGE_S = 0.1
REGIONS = ("row start", "inner start", "middle", "inner end", "row end")


def lead_regions(truth: Path, rec_dir: Path, stem: str):
    """Per lead of one page: (signal power, {region: noise power}, gain), or None if not read."""
    ref = wfdb.rdrecord(str(truth / stem))
    try:
        est = wfdb.rdrecord(str(rec_dir / f"{stem}-0"))
    except (FileNotFoundError, ValueError):
        return None
    cfg = json.loads((truth / f"{stem}-0.json").read_text())
    names = [n.upper() for n in est.sig_name]
    ncol = int(cfg.get("number_of_columns_in_image") or 4)
    k = int(round(EDGE_S * ref.fs))
    out = []
    longest = {}  # a lead drawn twice (a rhythm strip): its truth is the longer window
    for ld in cfg["leads"]:
        n = ld["end_sample"] - ld["start_sample"]
        if n > longest.get(ld["lead_name"], (0, None))[0]:
            longest[ld["lead_name"]] = (n, ld)
    for _, ld in longest.values():
        j = ref.sig_name.index(ld["lead_name"])
        r = ref.p_signal[:, j]
        if ld["lead_name"].upper() not in names:
            continue
        e = resample_to(est.p_signal[:, names.index(ld["lead_name"].upper())], est.fs, ref.fs,
                        len(r))
        s = score_lead(r, e, ref.fs)
        if s is None:
            continue
        idx = np.flatnonzero(np.isfinite(r))
        lag = int(round(s.lag_s * ref.fs))
        ee = np.nan_to_num(e)[np.clip(idx + lag, 0, len(e) - 1)]
        rr, ee = r[idx] - r[idx].mean(), ee - ee.mean()
        err = (rr - ee) ** 2
        whole_row = ld["end_sample"] - ld["start_sample"] > 0.8 * ref.sig_len
        col = 0 if whole_row else column(ld["lead_name"], ncol)
        first = "row start" if col == 0 else "inner start"
        last = "row end" if col == ncol - 1 else "inner end"
        noise = {first: float(err[:k].sum()), last: float(err[-k:].sum()),
                 "middle": float(err[k:-k].sum())}
        gain = float(np.dot(rr, ee) / max(np.dot(ee, ee), 1e-12))
        out.append((s.signal_power, noise, gain))
    return out


#: The panel column of each lead: ecg-image-kit's 3x4 (I-III | aVR-aVF | V1-V3 | V4-V6) and
#: 6x2 (V1, I, V2, II, V3, III | V4, aVR, V5, aVL, V6, aVF; its README).
COLUMNS = {4: {"I": 0, "II": 0, "III": 0, "aVR": 1, "aVL": 1, "aVF": 1,
               "V1": 2, "V2": 2, "V3": 2, "V4": 3, "V5": 3, "V6": 3},
           2: {"V1": 0, "I": 0, "V2": 0, "II": 0, "V3": 0, "III": 0,
               "V4": 1, "aVR": 1, "V5": 1, "aVL": 1, "V6": 1, "aVF": 1}}


def column(lead: str, ncol: int) -> int:
    return COLUMNS[ncol][lead]


def db(sig: float, noise: float) -> float:
    return float(10 * np.log10(sig / noise)) if noise > 0 else float("inf")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="val", choices=("val", "test"))
    ap.add_argument("--variants", default="clean,bw,scan")
    ap.add_argument("--out", default="runs/eik", help="benchmarks/eik.py's output folder")
    ap.add_argument("--data", default=None, help="folder holding eik/ (default $ECG_DATA_DIR)")
    args = ap.parse_args()
    data = Path(args.data or os.environ.get("ECG_DATA_DIR", "../shared/data"))
    print(f"noise by region of each panel (first / last {EDGE_S:g} s), split {args.split}")
    print(f"{'variant':8s} {'pages':>5s} {'SNR':>6s} " + " ".join(f"{r:>11s}" for r in REGIONS)
          + "  gain")
    for variant in args.variants.split(","):
        truth = data / "eik" / args.split / variant
        rec_dir = Path(args.out) / args.split / variant / "records"
        pages = []
        for hea in sorted(truth.glob("*.hea")):
            leads = lead_regions(truth, rec_dir, hea.stem)
            if leads:
                pages.append(leads)
        if not pages:
            print(f"{variant:8s} no records under {rec_dir}")
            continue
        total = {r: 0.0 for r in REGIONS}
        for page in pages:
            for _, noise, _ in page:
                for r, v in noise.items():
                    total[r] += v
        all_noise = sum(total.values())
        snr = np.mean([db(sum(s for s, _, _ in p), sum(sum(n.values()) for _, n, _ in p))
                       for p in pages])
        without = {r: np.mean([db(sum(s for s, _, _ in p),
                                  sum(sum(v for q, v in n.items() if q != r) for _, n, _ in p))
                               for p in pages]) for r in REGIONS}
        gains = [g for p in pages for _, _, g in p]
        print(f"{variant:8s} {len(pages):5d} {snr:6.2f} "
              + " ".join(f"{100 * total[r] / all_noise:4.1f}%{without[r]:6.2f}" for r in REGIONS)
              + f"  {np.median(gains):.3f}")
    print("(per region: share of all noise, and the mean page SNR if that region were read "
          "perfectly; gain: median least-squares gain of the estimate on the truth)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
