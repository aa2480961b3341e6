"""Scores of ../shared/DESIGN.md §5 — the same code for training-time evaluation and --reference.

Per lead: resample the estimate to the reference rate, search the lag within ±0.2 s by
cross-correlation, remove the vertical offset (least squares), then over the reference's plotted
(non-NaN) samples: SNR = 10·log10(Σ ref² / Σ (ref − est)²) with ref mean-removed; Pearson r;
RMSE, MAE (mV); R². Per record: signal and noise power pooled over leads → one SNR. A NaN in the
estimate where the reference is plotted counts as 0 mV.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import signal as sps


@dataclass
class LeadScore:
    snr_db: float
    pearson: float
    rmse_mv: float
    mae_mv: float
    r2: float
    lag_s: float  # delay of the estimate that best matches the reference
    signal_power: float  # Σ ref² (mean-removed), for pooling
    noise_power: float  # Σ (ref − est)²
    n: int

    def to_json(self) -> dict:
        return asdict(self)


def _db(sig: float, noise: float) -> float:
    if noise <= 0:
        return float("inf") if sig > 0 else float("nan")
    if sig <= 0:
        return float("-inf")
    return float(10 * np.log10(sig / noise))


def resample_to(est: np.ndarray, fs_est: float, fs_ref: float, n_ref: int) -> np.ndarray:
    """Linear resampling of an estimate onto the reference's sample grid (NaN kept as NaN)."""
    if fs_est == fs_ref and len(est) == n_ref:
        return np.asarray(est, np.float64)
    t_est = np.arange(len(est)) / fs_est
    t_ref = np.arange(n_ref) / fs_ref
    est = np.asarray(est, np.float64)
    ok = np.isfinite(est)
    out = np.interp(t_ref, t_est, np.where(ok, est, 0.0))
    nan_mask = np.interp(t_ref, t_est, (~ok).astype(np.float64)) > 0.5
    out[nan_mask] = np.nan
    return out


def score_lead(ref: np.ndarray, est: np.ndarray, fs: float, max_lag_s: float = 0.2
               ) -> LeadScore | None:
    """Scores of one lead (ref and est on the same grid, ref NaN where not plotted).

    None when the reference has fewer than 2 plotted samples.
    """
    ref = np.asarray(ref, np.float64)
    est = np.nan_to_num(np.asarray(est, np.float64), nan=0.0)  # missing output is error
    m = np.isfinite(ref)
    if m.sum() < 2:
        return None
    idx = np.flatnonzero(m)
    r = ref[idx] - ref[idx].mean()
    max_lag = int(round(max_lag_s * fs))
    # lag = the estimate's delay in samples: compare ref[n] with est[n + lag]
    best, best_lag = -np.inf, 0
    for lag in range(-max_lag, max_lag + 1):
        e = est[np.clip(idx + lag, 0, len(est) - 1)]
        c = float(np.dot(r, e - e.mean()))
        if c > best:
            best, best_lag = c, lag
    e = est[np.clip(idx + best_lag, 0, len(est) - 1)]
    e = e - e.mean()  # least-squares vertical offset against the mean-removed reference
    noise = r - e
    sig_p, noise_p = float(np.dot(r, r)), float(np.dot(noise, noise))
    denom = np.sqrt(np.dot(r, r) * np.dot(e, e))
    return LeadScore(
        snr_db=_db(sig_p, noise_p),
        pearson=float(np.dot(r, e) / denom) if denom > 0 else 0.0,
        rmse_mv=float(np.sqrt(np.mean(noise ** 2))),
        mae_mv=float(np.mean(np.abs(noise))),
        r2=float(1 - noise_p / sig_p) if sig_p > 0 else float("nan"),
        lag_s=best_lag / fs, signal_power=sig_p, noise_power=noise_p, n=len(idx))


def score_record(ref: np.ndarray, est: np.ndarray, fs: float
                 ) -> tuple[float, list[LeadScore | None]]:
    """Per-record pooled SNR (dB) and per-lead scores; ref/est are [n, leads] on one grid."""
    leads = [score_lead(ref[:, j], est[:, j], fs) for j in range(ref.shape[1])]
    sig = sum(s.signal_power for s in leads if s is not None)
    noise = sum(s.noise_power for s in leads if s is not None)
    return _db(sig, noise), leads


def r_peaks(x: np.ndarray, fs: float) -> np.ndarray:
    """R-peak sample indices of one lead (NaN-free), detected at the signal's own rate."""
    x = np.asarray(x, np.float64)
    x = x - np.median(x)
    # use the polarity with the larger excursions (QRS can be negative, e.g. aVR)
    if np.percentile(x, 0.5) < -np.percentile(x, 99.5):
        x = -x
    span = np.percentile(x, 99.5)
    if span <= 0:
        return np.array([], int)
    peaks, _ = sps.find_peaks(x, height=0.45 * span, distance=max(1, int(0.25 * fs)))
    return peaks


def rpeak_error(ref: np.ndarray, est: np.ndarray, fs: float, tol_s: float = 0.05
                ) -> tuple[float, float, int]:
    """(median |Δt| in ms over matched peaks, fraction of reference peaks matched within tol_s,
    number of reference peaks). Both signals on the same grid, over the reference's plotted span."""
    m = np.isfinite(ref)
    if m.sum() < fs:  # under a second: no rhythm to speak of
        return float("nan"), float("nan"), 0
    idx = np.flatnonzero(m)
    rp = r_peaks(ref[idx], fs)
    ep = r_peaks(np.nan_to_num(np.asarray(est, np.float64)[idx]), fs)
    if len(rp) == 0:
        return float("nan"), float("nan"), 0
    if len(ep) == 0:
        return float("nan"), 0.0, len(rp)
    d = np.abs(rp[:, None] - ep[None, :]).min(axis=1) / fs
    hit = d <= tol_s
    return (float(np.median(d[hit]) * 1000) if hit.any() else float("nan"),
            float(hit.mean()), len(rp))
