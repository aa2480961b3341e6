import numpy as np
import wfdb

from digitize.leads import LEADS
from digitize.wfdb_writer import write_record


def test_round_trip_with_nan_and_clipping(tmp_path):
    rng = np.random.default_rng(0)
    sig = rng.normal(0, 1, (500, 12)).astype(np.float32)
    sig[:100, 3] = np.nan
    sig[10, 0] = 40.0  # beyond ±32.767 mV at 1 µV: clipped and counted
    n_clipped = write_record(tmp_path, "rec_1", sig, 500, LEADS, comments=["hello"])
    assert n_clipped == 1
    rec = wfdb.rdrecord(str(tmp_path / "rec_1"))
    assert rec.sig_name == list(LEADS) and rec.fs == 500 and rec.units == ["mV"] * 12
    assert rec.comments == ["hello"]
    got = rec.p_signal
    assert np.isnan(got[:100, 3]).all() and np.isfinite(got[100:, 3]).all()
    ok = np.isfinite(sig)
    ok[10, 0] = False
    assert np.max(np.abs(got[ok] - sig[ok])) <= 0.0005 + 1e-9  # 1 µV resolution
    assert abs(got[10, 0] - 32.767) < 1e-9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec_1.dat", "rec_1.hea"]
