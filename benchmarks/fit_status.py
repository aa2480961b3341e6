"""Fit the status model of ``digitize.quality`` on validation pages (issue #16).

Reads digitize output folders made with ``--reference`` (each lead's SNR is the label, never
an input), builds each lead's ``lead_features`` from its quality.json, fits two L2-regularised
logistic models — P(SNR < 10 dB) and P(SNR < 0 dB) — and chooses the thresholds:

* ``warn`` where P(< 10 dB) exceeds the largest threshold that keeps leads marked ok under
  10 dB at or below 1.5 % (target 2 %) and flags 97 % (target 95 %) of leads under 5 dB;
* ``fail`` where P(< 0 dB) exceeds the threshold that fails 85 % (target 80 %) of the
  leads under 0 dB.

Prints the coefficients and thresholds to paste into digitize/quality.py. Only validation
folders may be given (own renders of fold 8, ecg-image-kit val):

    python benchmarks/fit_status.py runs/own_ev runs/eik/val/{clean,bw,scan}/records

``--cv`` instead checks what a refit of the fail model would do on pages it was not fitted
on: the pages are split in two halves (by a hash of their path), the model is fitted and its
threshold chosen on one half for several shares of failed sub-0-dB leads, and the other half
is scored (which share of its sub-0-dB, 0-10 dB and >= 10 dB leads it fails).

``--warn-threshold`` keeps the fitted models (digitize/quality.py's W10, W0, T_FAIL) and
re-chooses only T_WARN against all three targets that depend on it: the smallest threshold
under which >= 61 % (target 60 %) of the leads on clean pages are ok, provided leads marked
ok under 10 dB stay <= 2 % and >= 95 % of the leads under 5 dB are flagged (the rules'
own verdicts, ``rule_status``, still apply). It prints the trade-off per threshold, the
choice, and a two-fold check by page (chosen on one half, scored on the other).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from digitize.quality import FEATURES, lead_features  # noqa: E402

L2 = 1.0
OK_UNDER_10 = 0.015
FLAG_UNDER_5 = 0.97
FAIL_UNDER_0 = 0.85


def dataset(folders: list[str], pages: list | None = None):
    """Features, SNR and folder of every lead with a reference; ``pages`` (a list) collects
    each lead's quality.json path."""
    xs, snr, group = [], [], []
    for folder in folders:
        for qp in sorted(Path(folder).glob("*.quality.json")):
            q = json.loads(qp.read_text())
            ref = (q.get("reference") or {}).get("leads") or {}
            ev = q["quality"].get("evidence") or {}
            for lead, lq in q["quality"]["leads"].items():
                s = ref.get(lead)
                if not s or s.get("snr_db") is None:
                    continue
                xs.append(lead_features(lead, lq, q["quality"], q["warning_codes"], q["px_per_mm"],
                                        q["scale_source"], q["rows"], ev.get("pulses", 0)))
                snr.append(s["snr_db"])
                group.append(folder)
                if pages is not None:
                    pages.append(str(qp))
    return np.array(xs), np.array(snr), np.array(group)


def fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    def loss(w):
        z = x @ w
        p = 1 / (1 + np.exp(-z))
        reg = L2 * np.sum(w[1:] ** 2) / 2
        return -np.sum(y * z - np.logaddexp(0, z)) + reg, x.T @ (p - y) + L2 * np.r_[0, w[1:]]

    return minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B").x


def cross_validate(x: np.ndarray, snr: np.ndarray, pages: list[str]) -> None:
    """Two-fold, by page: the fail model fitted on one half, scored on the other."""
    import zlib
    half = np.array([zlib.crc32(p.encode()) % 2 for p in pages])
    print("fail model refitted on half of the pages, scored on the other half "
          "(half 0 / half 1):")
    for share in (0.85, 0.7, 0.5):
        cols = []
        for h in (0, 1):
            tr, te = half != h, half == h
            w0 = fit(x[tr], (snr[tr] < 0).astype(float))
            p0 = 1 / (1 + np.exp(-x @ w0))
            t = float(np.quantile(p0[tr & (snr < 0)], 1 - share))
            fail = p0 > t
            cols.append([np.mean(fail[te & (snr < 0)]),
                         np.mean(fail[te & (snr >= 0) & (snr < 10)]),
                         np.mean(fail[te & (snr >= 10)]), int((te & (snr < 0)).sum())])
        a, b = cols
        print(f"  fitted to fail {share:.0%} of sub-0-dB leads: held out, sub-0-dB leads failed "
              f"{a[0]:.0%} / {b[0]:.0%} (of {a[3]} / {b[3]}), 0-10 dB {a[1]:.0%} / {b[1]:.0%}, "
              f">= 10 dB {a[2]:.1%} / {b[2]:.1%}")


CLEAN_OK = 0.61


def warn_inputs(folders: list[str]):
    """Per lead with a reference: P(< 10 dB) and P(< 0 dB) of the shipped status model, the
    rules' own status (0 ok, 1 warn, 2 fail), SNR, clean page, and its page's path."""
    from digitize.quality import W0, W10
    order = {"ok": 0, "warn": 1, "fail": 2}
    out = []
    for folder in folders:
        for qp in sorted(Path(folder).glob("*.quality.json")):
            q = json.loads(qp.read_text())
            ref = (q.get("reference") or {}).get("leads") or {}
            ev = q["quality"].get("evidence") or {}
            clean = "clean" in qp.name or "/clean/" in str(qp)
            for lead, lq in q["quality"]["leads"].items():
                s = ref.get(lead)
                if not s or s.get("snr_db") is None:
                    continue
                x = lead_features(lead, lq, q["quality"], q["warning_codes"], q["px_per_mm"],
                                  q["scale_source"], q["rows"], ev.get("pulses", 0))
                out.append((1 / (1 + np.exp(-x @ W10)), 1 / (1 + np.exp(-x @ W0)),
                            order[lq.get("rule_status", "ok")], s["snr_db"], clean, str(qp)))
    return out


def warn_scores(rows, t_warn: float, t_fail: float) -> dict:
    p10, p0, rule, snr, clean = (np.array([r[i] for r in rows]) for i in range(5))
    st = np.maximum(np.where(p0 > t_fail, 2, np.where(p10 > t_warn, 1, 0)), rule)
    ok = st == 0
    return dict(ok_under_10=float(np.mean(snr[ok] < 10)) if ok.any() else 0.0,
                flagged_under_5=float(np.mean(st[snr < 5] > 0)),
                clean_ok=float(np.mean(ok[clean.astype(bool)])))


def choose_warn(rows, t_fail: float, grid: np.ndarray) -> float | None:
    for t in grid:
        s = warn_scores(rows, t, t_fail)
        if s["clean_ok"] >= CLEAN_OK and s["ok_under_10"] <= 0.02 \
                and s["flagged_under_5"] >= 0.95:
            return float(t)
    return None


def warn_threshold(folders: list[str]) -> int:
    import zlib

    from digitize.quality import T_FAIL, T_WARN
    rows = warn_inputs(folders)
    grid = np.round(np.arange(0.05, 0.1001, 0.0025), 4)
    print(f"{len(rows)} leads; shipped T_WARN = {T_WARN}, T_FAIL = {T_FAIL}")
    print("  T_WARN  ok<10dB  flagged<5dB  clean ok")
    for t in grid:
        s = warn_scores(rows, t, T_FAIL)
        print(f"  {t:.4f}  {s['ok_under_10']:6.2%}  {s['flagged_under_5']:8.1%}  "
              f"{s['clean_ok']:7.1%}")
    t = choose_warn(rows, T_FAIL, grid)
    print(f"chosen: T_WARN = {t}")
    # by page: its file name and variant folder (not the run folder, so the halves stay the
    # same from run to run)
    def key(path: str) -> str:
        return Path(path).name + next((f"/{v}" for v in ("clean", "bw", "scan")
                                       if f"/{v}/" in path), "")
    half = np.array([zlib.crc32(key(r[5]).encode()) % 2 for r in rows])
    for h in (0, 1):
        fit_rows = [r for r, g in zip(rows, half) if g != h]
        test_rows = [r for r, g in zip(rows, half) if g == h]
        th = choose_warn(fit_rows, T_FAIL, grid)
        if th is None:
            print(f"  half {h} held out: no threshold meets the targets on the other half")
            continue
        s = warn_scores(test_rows, th, T_FAIL)
        print(f"  half {h} held out ({len(test_rows)} leads): T_WARN {th} chosen on the other "
              f"half; ok<10 dB {s['ok_under_10']:.2%}, flagged<5 dB "
              f"{s['flagged_under_5']:.1%}, clean ok {s['clean_ok']:.1%}")
    return 0


def main() -> int:
    args = sys.argv[1:]
    if "--warn-threshold" in args:
        return warn_threshold([a for a in args if a != "--warn-threshold"])
    cv = "--cv" in args
    folders = [a for a in args if a != "--cv"]
    if not folders:
        print(__doc__)
        return 2
    pages: list[str] = []
    x, snr, group = dataset(folders, pages)
    print(f"{len(snr)} leads from {len(folders)} folders; under 10 dB: {np.mean(snr < 10):.1%}, "
          f"under 0 dB: {np.mean(snr < 0):.1%}")
    if cv:
        cross_validate(x, snr, pages)
        return 0
    w10, w0 = fit(x, (snr < 10).astype(float)), fit(x, (snr < 0).astype(float))
    p10, p0 = 1 / (1 + np.exp(-x @ w10)), 1 / (1 + np.exp(-x @ w0))
    # warn threshold: the largest that meets both flag targets
    t_warn = None
    for t in np.sort(np.unique(np.round(p10, 4)))[::-1]:
        ok = p10 <= t
        if np.mean(snr[ok] < 10) <= OK_UNDER_10 and np.mean(~ok[snr < 5]) >= FLAG_UNDER_5:
            t_warn = float(t)
            break
    bad0 = snr < 0
    t_fail = float(np.quantile(p0[bad0], 1 - FAIL_UNDER_0)) if bad0.any() else 0.5
    print("W10 =", dict(zip(FEATURES, np.round(w10, 3).tolist())))
    print("W0 =", dict(zip(FEATURES, np.round(w0, 3).tolist())))
    print(f"T_WARN = {t_warn}  T_FAIL = {t_fail:.4f}")
    if t_warn is not None:
        ok = p10 <= t_warn
        fail = p0 > t_fail
        for g in folders:
            m = group == g
            print(f"  {g}: {m.sum()} leads, ok {np.mean(ok[m] & ~fail[m]):.0%}, "
                  f"fail {np.mean(fail[m]):.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
