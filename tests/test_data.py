import numpy as np
import pytest

from digitize.leads import LEADS, normalize_lead_name
from trainer.data import (bandpass, load_metadata, load_record, record_path, records_for_split,
                          resample, split_of_fold)


@pytest.mark.parametrize("fold,split", [(1, "train"), (7, "train"), (8, "val"), (9, "test"),
                                        (10, "test")])
def test_split_rule(fold, split):
    assert split_of_fold(fold) == split


def _patients(records):
    return {r.patient_id for r in records}


def test_sample_splits_and_rates(ptbxl_sample):
    meta = load_metadata(ptbxl_sample)
    assert [r.ecg_id for r in meta] == [1, 2, 8, 10, 12, 515]
    assert [r.ecg_id for r in records_for_split(ptbxl_sample, "test")] == [8, 10, 515]
    # 500 Hz when present, else the 100 Hz record
    by_id = {r.ecg_id: r for r in meta}
    assert record_path(ptbxl_sample, by_id[8]).name == "00008_hr"
    assert record_path(ptbxl_sample, by_id[515]).name == "00515_lr"
    sig, fs = load_record(ptbxl_sample, by_id[8])
    assert fs == 500 and sig.shape == (5000, 12) and sig.dtype == np.float32
    sig, fs = load_record(ptbxl_sample, by_id[515])
    assert fs == 100 and sig.shape == (1000, 12)
    assert np.isfinite(sig).all()


def test_full_split_disjoint_by_patient(ptbxl_full):
    splits = {s: records_for_split(ptbxl_full, s) for s in ("train", "val", "test")}
    assert {s: len(r) for s, r in splits.items()} == {"train": 641, "val": 89, "test": 147}
    p = {s: _patients(r) for s, r in splits.items()}
    assert not p["train"] & p["val"]
    assert not p["train"] & p["test"]
    assert not p["val"] & p["test"]
    n500 = sum(record_path(ptbxl_full, r).name.endswith("_hr") for r in splits["test"])
    assert n500 == 89


def test_lead_names():
    assert normalize_lead_name("AVR") == "aVR"
    assert normalize_lead_name(" v1 ") == "V1"
    with pytest.raises(ValueError):
        normalize_lead_name("V7")
    assert len(LEADS) == 12


def _gain(fs, f_hz, **kw):
    t = np.arange(int(20 * fs)) / fs
    x = np.sin(2 * np.pi * f_hz * t)[:, None].astype(np.float32)
    y = bandpass(x, fs, **kw)[:, 0]
    mid = slice(len(t) // 4, 3 * len(t) // 4)  # away from the edges
    # lock-in amplitude at f_hz: edge transients at other frequencies do not count
    ref = np.exp(-2j * np.pi * f_hz * t[mid])
    return 2 * np.abs(np.mean(y[mid] * ref))


@pytest.mark.parametrize("fs", [100.0, 500.0])
def test_bandpass_response(fs):
    assert 0.95 < _gain(fs, 10.0) < 1.05  # pass band
    assert _gain(fs, 0.05) < 0.05  # baseline wander removed
    if fs == 500.0:
        assert _gain(fs, 100.0) < 0.01  # EMG / mains harmonics removed
    assert _gain(fs, 2.0, low_hz=0.05, high_hz=20.0) > 0.95  # cut-offs are configurable
    assert _gain(fs, 45.0, low_hz=0.05, high_hz=20.0) < 0.1


@pytest.mark.parametrize("fs", [100.0, 500.0])
def test_bandpass_is_zero_phase(fs):
    """filtfilt: the impulse response is symmetric about the impulse, so nothing moves in time."""
    n = int(20 * fs)
    x = np.zeros((n, 1), np.float32)
    x[n // 2] = 1.0
    y = bandpass(x, fs)[:, 0]
    assert int(np.argmax(np.abs(y))) == n // 2
    half = int(2 * fs)
    left, right = y[n // 2 - half:n // 2][::-1], y[n // 2 + 1:n // 2 + 1 + half]
    assert np.max(np.abs(left - right)) < 1e-3 * np.max(np.abs(y))


def test_resample_keeps_a_sine():
    t100 = np.arange(1000) / 100
    x = np.sin(2 * np.pi * 3 * t100)[:, None].astype(np.float32)
    y = resample(x, 100, 500)
    assert y.shape == (5000, 1)
    t500 = np.arange(5000) / 500
    ref = np.sin(2 * np.pi * 3 * t500)
    assert np.max(np.abs(y[250:-250, 0] - ref[250:-250])) < 0.01


def test_packed_signals_round_trip(ptbxl_sample, tmp_path):
    """`trainer pack`: the prepared signals at 1 uV, each at its own rate; never the test split."""
    from trainer.data import PackedSignals, pack_signals, prepared_signal
    out = tmp_path / "s.npz"
    assert pack_signals(ptbxl_sample, out) == {"train": 2, "val": 1}
    packed = PackedSignals(out)
    assert packed.n_records("train") == 2 and packed.n_records("val") == 1
    for split in ("train", "val"):
        for i, info in enumerate(records_for_split(ptbxl_sample, split)):
            sig, fs, ecg_id = packed.signal(split, i)
            ref, ref_fs = prepared_signal(ptbxl_sample, info)
            assert ecg_id == info.ecg_id and fs == ref_fs and sig.shape == ref.shape
            assert np.abs(sig - ref).max() <= 0.0005 + 1e-6  # rounded to 1 uV
    with pytest.raises(ValueError, match="not in this packed file"):
        packed.n_records("test")
    with pytest.raises(ValueError, match="never packed"):
        pack_signals(ptbxl_sample, tmp_path / "t.npz", ("train", "test"))


def test_batches_from_a_packed_file_match_the_data_set(ptbxl_sample, tmp_path):
    from digitize.model_spec import StripSpec
    from trainer import dataset
    from trainer.data import pack_signals
    out = tmp_path / "s.npz"
    pack_signals(ptbxl_sample, out)
    kw = dict(seed=0, split="train", spec=StripSpec(), batch_size=6, crop_cols=250,
              strips_per_page=3, strip_layout_share=0.0, styles=("clean",),
              page_layouts=("12x1",))
    xa, ya = dataset.make_batch(1, ptbxl_dir=str(ptbxl_sample), **kw)
    xb, yb = dataset.make_batch(1, ptbxl_dir=str(out), **kw)
    assert xa.shape == xb.shape == (6, 1, StripSpec().height_px, 250)
    # the same pages and strips: targets differ only by the 1 uV rounding
    assert np.abs(ya - yb).max() < 0.01
    assert np.mean(np.abs(xa - xb)) < 0.01


def test_baseline_wander_is_slow_bounded_and_reproducible():
    from trainer.data import baseline_wander
    fs, n = 500.0, 5000
    t = np.arange(n) / fs
    base = (1.2 * np.sin(2 * np.pi * 1.1 * t))[:, None].repeat(12, 1).astype(np.float32)
    w = baseline_wander(np.random.default_rng(3), n, fs, 12, limit_mv=2.8, base=base)
    assert w.shape == (n, 12) and np.isfinite(w).all()
    assert np.abs(base + w).max() <= 2.8 + 1e-4  # the record with its wander stays drawable
    assert np.array_equal(w, baseline_wander(np.random.default_rng(3), n, fs, 12, 2.8, base))
    # it wanders: leads drift by tenths of a millivolt and differ from one another
    assert np.ptp(w, axis=0).max() > 0.3 and not np.allclose(w[:, 0], w[:, 1])
    # and it is slow: nothing above 1 Hz except where a settling starts
    spec = np.abs(np.fft.rfft(w - w.mean(0), axis=0)) ** 2
    f = np.fft.rfftfreq(n, 1 / fs)
    assert np.median(spec[f > 5].sum(0) / spec.sum(0)) < 0.01


def test_wander_off_leaves_batches_as_they_were_and_on_moves_the_targets(ptbxl_sample):
    from digitize.model_spec import StripSpec
    from trainer import dataset
    kw = dict(seed=0, ptbxl_dir=str(ptbxl_sample), split="train", spec=StripSpec(),
              batch_size=6, crop_cols=250, strips_per_page=3, strip_layout_share=0.0,
              styles=("clean",), page_layouts=("12x1",))
    xa, ya = dataset.make_batch(1, **kw)
    xb, yb = dataset.make_batch(1, wander=0.0, **kw)
    assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
    xc, yc = dataset.make_batch(1, wander=1.0, **kw)
    # the same pages drawn with wander: the targets' means move by millimetres
    assert yc.shape == ya.shape
    assert np.abs(yc.mean(1) - ya.mean(1)).max() > 1.0
