import numpy as np
import pytest

from digitize.metrics import resample_to, rpeak_error, score_lead, score_record

FS = 500.0


def _ecgish(n=5000, fs=FS, hr=72):
    t = np.arange(n) / fs
    x = 0.1 * np.sin(2 * np.pi * 0.3 * t)
    for beat in np.arange(0.4, t[-1], 60 / hr):
        x += 1.2 * np.exp(-0.5 * ((t - beat) / 0.012) ** 2)  # R wave
        x += 0.25 * np.exp(-0.5 * ((t - beat - 0.25) / 0.05) ** 2)  # T wave
    return x


def test_perfect_and_known_noise():
    ref = _ecgish()
    s = score_lead(ref, ref + 3.0, FS)  # a constant offset is removed
    assert s.snr_db > 200 and s.pearson == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, len(ref))
    r = ref - ref.mean()
    noise *= np.sqrt(np.sum(r ** 2) / np.sum(noise ** 2)) / 10  # 20 dB by construction
    s = score_lead(ref, ref + noise, FS, max_lag_s=0.0)
    assert s.snr_db == pytest.approx(20.0, abs=0.3)
    assert s.r2 == pytest.approx(1 - 10 ** -2, abs=0.002)
    assert s.rmse_mv == pytest.approx(np.sqrt(np.mean((noise - noise.mean()) ** 2)), rel=1e-6)


def test_lag_search_within_0_2_s():
    ref = _ecgish()
    est = np.roll(ref, 40)  # 80 ms late
    s = score_lead(ref, est, FS)
    assert s.lag_s == pytest.approx(0.08) and s.snr_db > 25
    far = np.roll(ref, 150)  # 300 ms: outside the search window
    assert score_lead(ref, far, FS).snr_db < 5


def test_nan_in_estimate_counts_as_zero_and_reference_mask():
    ref = _ecgish()
    ref_masked = ref.copy()
    ref_masked[:2500] = np.nan  # only the second half plotted
    est = ref.copy()
    est[:2500] = 99.0  # unplotted part of the estimate is ignored
    assert score_lead(ref_masked, est, FS).snr_db > 60
    est[3000:3500] = np.nan  # missing output where plotted is an error
    assert score_lead(ref_masked, est, FS).snr_db < 10
    assert score_lead(np.full(10, np.nan), np.zeros(10), FS) is None


def test_record_snr_pools_power():
    ref = np.stack([_ecgish(), 0.1 * _ecgish()], 1)
    est = ref.copy()
    est[:, 1] = 0  # the small lead is missing entirely
    rec, leads = score_record(ref, est, FS)
    expected = 10 * np.log10((leads[0].signal_power + leads[1].signal_power)
                             / (leads[0].noise_power + leads[1].noise_power))
    assert rec == pytest.approx(expected)
    assert rec > 15  # dominated by the large, perfect lead


def test_rpeak_error_and_resampling():
    ref = _ecgish()
    ms, hit, n = rpeak_error(ref, np.roll(ref, 5), FS)  # 10 ms late
    assert n == 12 and hit == 1.0 and ms == pytest.approx(10.0)
    ms, hit, n = rpeak_error(ref, np.roll(ref, 50), FS)  # 100 ms late: no match
    assert hit == 0.0
    low = ref[::5]  # 100 Hz
    back = resample_to(low, 100.0, FS, len(ref))
    assert back.shape == ref.shape
    assert score_lead(ref, back, FS).snr_db > 15
