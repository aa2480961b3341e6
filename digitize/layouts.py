"""The supported page layouts and which leads each row shows — one definition for the renderer
(``trainer.layouts`` places them on paper) and the digitizer (``digitize.pipeline`` reads them
back)."""
from __future__ import annotations

from digitize.leads import CHEST_LEADS, LIMB_LEADS

LAYOUTS = ("strip", "3x4", "3x4+1", "3x4+2", "3x4+3", "6x2", "6x1", "12x1", "6x2+1")

#: The standard gains an electrocardiograph prints at, mm/mV.
GAINS = (2.5, 5.0, 10.0, 20.0)

#: Width of one full row of trace on a page (10 s at 25 mm/s, 5 s at 50 mm/s).
ROW_WIDTH_MM = 250.0

_3X4_ROWS = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))


def row_leads(layout: str, rhythm_leads: tuple[str, ...] = ("II",),
              lead_group: str = "limb") -> list[tuple[str, ...]]:
    """Lead names per row for a layout (rhythm strips are extra single-lead rows)."""
    if layout == "strip":
        return [(rhythm_leads[0],)]
    if layout.startswith("3x4"):
        n_rhythm = int(layout[4:]) if "+" in layout else 0
        if len(rhythm_leads) < n_rhythm:
            raise ValueError(f"{layout} needs {n_rhythm} rhythm leads, got {rhythm_leads}")
        return list(_3X4_ROWS) + [(lead,) for lead in rhythm_leads[:n_rhythm]]
    if layout in ("6x2", "6x2+1"):
        rows = [(a, b) for a, b in zip(LIMB_LEADS, CHEST_LEADS)]
        return rows + [(rhythm_leads[0],)] if layout == "6x2+1" else rows
    if layout == "6x1":
        group = {"limb": LIMB_LEADS, "chest": CHEST_LEADS}[lead_group]
        return [(lead,) for lead in group]
    if layout == "12x1":
        return [(lead,) for lead in LIMB_LEADS + CHEST_LEADS]
    raise ValueError(f"unsupported layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
