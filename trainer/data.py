"""Data layer: PTB-XL records, metadata, the patient-level split, filtering and resampling.

Where the data lives: ``$ECG_DATA_DIR`` names the folder holding ``ptbxl/`` and ``real-scans/``
(``../shared/data`` on the team's machines). A small CC BY 4.0 subset ships in
``examples/ptbxl-sample`` with the same layout, so tests and the demo run without it.
"""
from __future__ import annotations

import ast
import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import signal as sps

from digitize.leads import LEADS, normalize_lead_name

#: strat_fold → split, the patient-level rule of ../shared/data/README.md.
SPLIT_FOLDS: dict[str, tuple[int, ...]] = {
    "train": (1, 2, 3, 4, 5, 6, 7),
    "val": (8,),
    "test": (9, 10),
}

#: The committed subset (a few records per split) used when no data set is available.
SAMPLE_DIR = Path(__file__).resolve().parent.parent / "examples" / "ptbxl-sample"


def data_root() -> Path | None:
    """The folder named by ``$ECG_DATA_DIR`` (holding ``ptbxl/`` and ``real-scans/``), if set."""
    env = os.environ.get("ECG_DATA_DIR")
    return Path(env) if env else None


def default_ptbxl_dir() -> Path:
    """``$ECG_DATA_DIR/ptbxl`` when the variable is set, else the committed sample."""
    root = data_root()
    return root / "ptbxl" if root is not None else SAMPLE_DIR


@dataclass(frozen=True)
class RecordInfo:
    """One PTB-XL record's metadata row (paths are relative to the ptbxl folder)."""

    ecg_id: int
    patient_id: int
    strat_fold: int
    filename_lr: str  # records100/..., 100 Hz
    filename_hr: str  # records500/..., 500 Hz (may be missing on disk in the subset)
    scp_codes: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def split(self) -> str:
        return split_of_fold(self.strat_fold)


def split_of_fold(fold: int) -> str:
    for name, folds in SPLIT_FOLDS.items():
        if fold in folds:
            return name
    raise ValueError(f"strat_fold {fold} belongs to no split")


def load_metadata(ptbxl_dir: str | Path) -> list[RecordInfo]:
    """Read ``ptbxl_database.csv`` (only the rows whose 100 Hz record exists), sorted by ecg_id."""
    ptbxl_dir = Path(ptbxl_dir)
    csv_path = ptbxl_dir / "ptbxl_database.csv"
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path} not found: is --data / $ECG_DATA_DIR right?")
    out = []
    with open(csv_path, newline="") as fh:
        for row in csv.DictReader(fh):
            info = RecordInfo(
                ecg_id=int(row["ecg_id"]),
                patient_id=int(float(row["patient_id"])),
                strat_fold=int(row["strat_fold"]),
                filename_lr=row["filename_lr"],
                filename_hr=row["filename_hr"],
                scp_codes=ast.literal_eval(row["scp_codes"]) if row.get("scp_codes") else {},
            )
            if (ptbxl_dir / (info.filename_lr + ".hea")).is_file():
                out.append(info)
    return sorted(out, key=lambda r: r.ecg_id)


def records_for_split(ptbxl_dir: str | Path, split: str) -> list[RecordInfo]:
    """Records of one split ('train', 'val', 'test'), sorted by ecg_id."""
    if split not in SPLIT_FOLDS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLIT_FOLDS)}")
    return [r for r in load_metadata(ptbxl_dir) if r.split == split]


def record_path(ptbxl_dir: str | Path, info: RecordInfo, prefer_hr: bool = True) -> Path:
    """Path (without extension) of the 500 Hz record when present, else the 100 Hz one."""
    ptbxl_dir = Path(ptbxl_dir)
    if prefer_hr and info.filename_hr and (ptbxl_dir / (info.filename_hr + ".hea")).is_file():
        return ptbxl_dir / info.filename_hr
    return ptbxl_dir / info.filename_lr


def read_record(path: str | Path) -> tuple[np.ndarray, float]:
    """Read a WFDB record → (signal [n_samples, 12] float32 in mV, in LEADS order; fs in Hz).

    Lead names are matched case-insensitively ('AVR' → 'aVR'); a missing lead is all-NaN.
    """
    import wfdb  # local: wfdb pulls in pandas, which costs ~0.5 s at import

    rec = wfdb.rdrecord(str(path), physical=True)
    names = [normalize_lead_name(n) for n in rec.sig_name]
    sig = np.full((rec.sig_len, len(LEADS)), np.nan, dtype=np.float32)
    for j, name in enumerate(names):
        units = (rec.units[j] or "mV").lower()
        scale = {"mv": 1.0, "uv": 1e-3, "v": 1e3}.get(units, 1.0)
        sig[:, LEADS.index(name)] = rec.p_signal[:, j] * scale
    return sig, float(rec.fs)


def load_record(ptbxl_dir: str | Path, info: RecordInfo, prefer_hr: bool = True
                ) -> tuple[np.ndarray, float]:
    """Read one PTB-XL record at its best available rate (500 Hz, else 100 Hz)."""
    return read_record(record_path(ptbxl_dir, info, prefer_hr))


def bandpass(sig: np.ndarray, fs: float, low_hz: float = 0.5, high_hz: float = 40.0,
             order: int = 4) -> np.ndarray:
    """Zero-phase Butterworth band-pass along axis 0 (the seed's 0.5–40 Hz, 4th order).

    ``high_hz`` is capped just below Nyquist so 100 Hz records work; NaN-free input expected.
    """
    nyq = fs / 2.0
    high = min(high_hz, 0.95 * nyq)
    sos = sps.butter(order, [low_hz / nyq, high / nyq], btype="bandpass", output="sos")
    # float64: poles sit close to the unit circle at low cut-offs; float32 state goes unstable
    return sps.sosfiltfilt(sos, np.asarray(sig, np.float64), axis=0).astype(np.float32)


def baseline_wander(rng: np.random.Generator, n: int, fs: float, n_leads: int = 12,
                    limit_mv: float = 2.8, base: np.ndarray | None = None) -> np.ndarray:
    """A drawn record's baseline wander, [n, n_leads] mV, independent per lead: an offset, two
    slow sines (0.05-0.5 Hz) and, on 3 leads in 10, an exponential settling from the record's
    start or from a moment within it. Our records are band-passed from 0.5 Hz before they are
    drawn, but other generators draw the raw record (ecg-image-kit: PTB-XL as stored, leads
    starting 2 mV off their row and drifting back), and a model that never saw a trace wander
    loses it: the shipped one read its own renders at 23.5 dB plain and 13.0 dB with this
    wander. ``base`` (the record): each lead's wander scaled down where base + wander would
    pass ``limit_mv``."""
    t = np.arange(n) / fs
    w = np.zeros((n, n_leads), np.float32)
    for j in range(n_leads):
        x = np.full(n, rng.uniform(-0.5, 0.5))
        for _ in range(2):
            x += rng.uniform(0, 0.6) * np.sin(2 * np.pi * rng.uniform(0.05, 0.5) * t
                                              + rng.uniform(0, 2 * np.pi))
        if rng.random() < 0.3:
            ts = 0.0 if rng.random() < 0.5 else rng.uniform(0, t[-1])
            tau = rng.uniform(0.2, 2.0)
            x += np.where(t >= ts, rng.uniform(-2, 2) * np.exp(-(t - ts) / tau), 0.0)
        if base is not None:
            room = max(0.0, limit_mv - float(np.abs(base[:, j]).max()))
            peak = float(np.abs(x).max())
            if peak > room:
                x *= room / peak
        w[:, j] = x
    return w


def resample(sig: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Polyphase resampling along axis 0 from fs_in to fs_out (Hz)."""
    if fs_in == fs_out:
        return sig
    from fractions import Fraction
    ratio = Fraction(fs_out / fs_in).limit_denominator(1000)
    return sps.resample_poly(sig, ratio.numerator, ratio.denominator, axis=0).astype(np.float32)


def prepared_signal(ptbxl_dir: str | Path, info: RecordInfo, prefer_hr: bool = True,
                    band: tuple[float, float] | None = (0.5, 40.0), fs_out: float | None = None
                    ) -> tuple[np.ndarray, float]:
    """A record as it is drawn: best available rate, band-passed (``band=None``: raw),
    optionally resampled to ``fs_out`` Hz. The one recipe for render, training and evaluation."""
    sig, fs = load_record(ptbxl_dir, info, prefer_hr)
    if band is not None:
        sig = bandpass(sig, fs, *band)
    if fs_out and fs_out != fs:
        sig, fs = resample(sig, fs, fs_out), float(fs_out)
    return sig, fs


# ------------------------------------------------------------------- packed signals (.npz)
# A machine without the data set (a lent GPU server, which also lacks wfdb) trains from one
# file: the prepared (band-passed) signals of the chosen splits, int16 at 1 µV, each record at
# its own rate, concatenated. ``python -m trainer pack --out signals.npz``; then train with
# ``--data=signals.npz``. The test split is never packed.

PACK_SPLITS = ("train", "val")


def pack_signals(ptbxl_dir: str | Path, out: str | Path,
                 splits: tuple[str, ...] = PACK_SPLITS) -> dict:
    """Write the prepared signals of ``splits`` to a compressed .npz; returns a summary."""
    if "test" in splits:
        raise ValueError("the test split is never packed for training")
    arrays: dict[str, np.ndarray] = {}
    summary = {}
    for split in splits:
        chunks, offsets, fss, ids = [], [0], [], []
        for info in records_for_split(ptbxl_dir, split):
            sig, fs = prepared_signal(ptbxl_dir, info)
            q = np.clip(np.round(np.nan_to_num(sig) * 1000.0), -32767, 32767).astype(np.int16)
            chunks.append(q)
            offsets.append(offsets[-1] + len(q))
            fss.append(fs)
            ids.append(info.ecg_id)
        arrays[f"{split}_signal"] = np.concatenate(chunks) if chunks else \
            np.zeros((0, len(LEADS)), np.int16)
        arrays[f"{split}_offset"] = np.asarray(offsets, np.int64)
        arrays[f"{split}_fs"] = np.asarray(fss, np.float32)
        arrays[f"{split}_ecg_id"] = np.asarray(ids, np.int64)
        summary[split] = len(ids)
    np.savez_compressed(out, **arrays)
    return summary


class PackedSignals:
    """Read side of :func:`pack_signals`: ``n_records(split)``, ``signal(split, i)``."""

    def __init__(self, path: str | Path):
        with np.load(path) as z:
            self._z = {k: z[k] for k in z.files}

    def n_records(self, split: str) -> int:
        key = f"{split}_ecg_id"
        if key not in self._z:
            raise ValueError(f"split {split!r} is not in this packed file")
        return len(self._z[key])

    def signal(self, split: str, i: int) -> tuple[np.ndarray, float, int]:
        """(signal [n, 12] float32 mV, fs, ecg_id) of the split's i-th record."""
        a, b = self._z[f"{split}_offset"][i:i + 2]
        sig = self._z[f"{split}_signal"][a:b].astype(np.float32) / 1000.0
        return sig, float(self._z[f"{split}_fs"][i]), int(self._z[f"{split}_ecg_id"][i])


def is_packed(path: str | Path) -> bool:
    return str(path).endswith(".npz")
