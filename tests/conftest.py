"""Shared fixtures. Tests that need the full data set skip without it (fail under CI=true)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from trainer.data import SAMPLE_DIR, data_root

REPO = Path(__file__).resolve().parent.parent


def _need(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def ptbxl_full() -> Path:
    """The full PTB-XL subset under $ECG_DATA_DIR/ptbxl."""
    root = data_root()
    if root is None:
        _need("ECG_DATA_DIR is not set (full PTB-XL data set needed)")
    path = root / "ptbxl"
    if not (path / "ptbxl_database.csv").is_file():
        _need(f"{path}/ptbxl_database.csv not found (full PTB-XL data set needed)")
    return path


@pytest.fixture(scope="session")
def ptbxl_sample() -> Path:
    """The committed 6-record sample (always present)."""
    assert (SAMPLE_DIR / "ptbxl_database.csv").is_file()
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def real_scans() -> Path:
    """The real scans and photos under $ECG_DATA_DIR/real-scans (no ground truth)."""
    root = data_root()
    if root is None or not (root / "real-scans").is_dir():
        _need("ECG_DATA_DIR/real-scans not found (real scans needed)")
    return root / "real-scans"
