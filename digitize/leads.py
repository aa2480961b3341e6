"""Standard 12-lead names and their normalisation.

This module is the single source of lead names for both packages: `trainer` imports it,
so ground truth written by the renderer and records written by `digitize` agree.
"""
from __future__ import annotations

#: Standard order of the 12 leads (limb leads, augmented limb leads, chest leads).
LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF",
                          "V1", "V2", "V3", "V4", "V5", "V6")
LIMB_LEADS: tuple[str, ...] = LEADS[:6]
CHEST_LEADS: tuple[str, ...] = LEADS[6:]

_CANONICAL = {name.upper(): name for name in LEADS}


def normalize_lead_name(name: str) -> str:
    """Return the canonical spelling of a lead name ('AVR' -> 'aVR', ' v1 ' -> 'V1').

    Raises ValueError for names that are not one of the 12 standard leads.
    """
    key = name.strip().upper().replace("-", "")
    if key not in _CANONICAL:
        raise ValueError(f"unknown lead name {name!r}; expected one of {', '.join(LEADS)}")
    return _CANONICAL[key]
