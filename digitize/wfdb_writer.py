"""Write WFDB records (format 16) quickly and atomically.

wfdb-python reads what this writes (tests check it); it is used instead of ``wfdb.wrsamp``
because that spends ~50 ms per record in pandas bookkeeping, which dominates when a renderer
or an archive conversion writes thousands of records. Only the subset we need: one ``.dat``
with interleaved little-endian int16 samples, one ``.hea``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from digitize.files import tmp_path

#: WFDB's "no sample" value for format 16.
WFDB_NAN_16 = -32768
_MAX_16 = 32767


def to_digital(signal: np.ndarray, adc_gain: float) -> tuple[np.ndarray, int]:
    """Physical units → int16 at ``adc_gain`` units per physical unit.

    NaN becomes WFDB's missing value; values beyond the format's range are clipped.
    Returns (digital [n, c] int16, number of clipped samples).
    """
    scaled = np.asarray(signal, np.float64) * adc_gain
    nan = ~np.isfinite(scaled)
    clipped = int(np.count_nonzero(~nan & ((scaled > _MAX_16) | (scaled < -_MAX_16))))
    d = np.rint(np.clip(np.where(nan, 0.0, scaled), -_MAX_16, _MAX_16)).astype(np.int16)
    d[nan] = WFDB_NAN_16
    return d, clipped


def encode_record(name: str, signal: np.ndarray, fs: float,
                  sig_names: list[str] | tuple[str, ...], units: str = "mV",
                  adc_gain: float = 1000.0, comments: list[str] | tuple[str, ...] = ()
                  ) -> tuple[bytes, str, int]:
    """A record's ``.dat`` bytes and ``.hea`` text, and the number of clipped samples."""
    signal = np.asarray(signal)
    if signal.ndim != 2 or signal.shape[1] != len(sig_names):
        raise ValueError(f"signal shape {signal.shape} does not match {len(sig_names)} names")
    digital, n_clipped = to_digital(signal, adc_gain)
    n, c = digital.shape
    first = digital[0] if n else np.zeros(c, np.int16)
    checksum = digital.astype(np.int64).sum(axis=0) % 65536
    lines = [f"{name} {c} {fs:g} {n}"]
    for j, sig_name in enumerate(sig_names):
        lines.append(f"{name}.dat 16 {adc_gain:g}(0)/{units} 16 0 {int(first[j])} "
                     f"{int(checksum[j])} 0 {sig_name}")
    lines += [f"# {line}" for line in comments]
    return digital.astype("<i2").tobytes(), "\n".join(lines) + "\n", n_clipped


def write_record(out_dir: str | Path, name: str, signal: np.ndarray, fs: float,
                 sig_names: list[str] | tuple[str, ...], units: str = "mV",
                 adc_gain: float = 1000.0, comments: list[str] | tuple[str, ...] = (),
                 tmp_dir: str | Path | None = None) -> int:
    """Write ``<out_dir>/<name>.hea/.dat`` from ``signal`` [n_samples, n_signals] (physical units).

    Files are written under temporary names (in ``tmp_dir`` when given, which must be on the
    same file system) and renamed into place, the ``.dat`` first and the ``.hea`` last, so a
    record whose ``.hea`` exists is complete. Returns the number of clipped samples.
    """
    out_dir = Path(out_dir)
    dat, header, n_clipped = encode_record(name, signal, fs, sig_names, units, adc_gain,
                                           comments)
    tmp_dir = Path(tmp_dir) if tmp_dir is not None else out_dir
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp_dat, tmp_hea = tmp_path(tmp_dir, f"{name}.dat"), tmp_path(tmp_dir, f"{name}.hea")
    try:
        tmp_dat.write_bytes(dat)
        tmp_hea.write_text(header)
        os.replace(tmp_dat, out_dir / f"{name}.dat")
        os.replace(tmp_hea, out_dir / f"{name}.hea")
    finally:
        for f in (tmp_dat, tmp_hea):
            if f.exists():
                f.unlink()
    return n_clipped
