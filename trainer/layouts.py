"""Page layouts: where each lead's time window is drawn on the paper, in millimetres.

Coordinates are page millimetres, origin at the top-left corner of the page, y down.
A *panel* is one lead drawn over one time window; a *row* is one horizontal line of panels
sharing a baseline and a calibration pulse.
"""
from __future__ import annotations

from dataclasses import dataclass

from digitize.layouts import LAYOUTS, ROW_WIDTH_MM, row_leads  # noqa: F401 (re-exported)

#: Paper sizes in landscape orientation, (width, height) in mm.
PAPERS = {"letter": (279.4, 215.9), "a4": (297.0, 210.0)}

#: The seed's single-lead strip: 250 × 60 mm, ±3 mV at 10 mm/mV, 10 s at 25 mm/s.
STRIP_SIZE_MM = (250.0, 60.0)


@dataclass(frozen=True)
class Panel:
    lead: str
    row: int
    col: int
    t0: float  # s, start of the plotted window (inclusive)
    t1: float  # s, end of the plotted window (exclusive)
    x0_mm: float  # x of t0
    baseline_mm: float  # y of 0 mV
    band_top_mm: float  # vertical extent of the panel's row band
    band_bottom_mm: float


@dataclass(frozen=True)
class Row:
    index: int
    baseline_mm: float
    x_start_mm: float  # x where the first panel's trace starts
    leads: tuple[str, ...]


def plan_page(layout: str, page_w_mm: float, page_h_mm: float, speed_mm_s: float,
              header_mm: float, footer_mm: float, x_start_mm: float,
              rhythm_leads: tuple[str, ...] = ("II",), lead_group: str = "limb",
              duration_s: float = 10.0) -> tuple[list[Row], list[Panel]]:
    """Place rows and panels on a page.

    Each row holds ROW_WIDTH_MM of trace starting at ``x_start_mm``; a row with k panels shows
    k consecutive windows of ROW_WIDTH_MM / speed / k seconds (3×4 columns at 25 mm/s: 0–2.5,
    2.5–5, 5–7.5, 7.5–10 s). Rows are spread evenly between the header and the footer.
    """
    rows_l = row_leads(layout, rhythm_leads, lead_group)
    n_rows = len(rows_l)
    row_s = min(ROW_WIDTH_MM / speed_mm_s, duration_s)
    if layout == "strip":
        pitch = page_h_mm
        top = 0.0
    else:
        pitch = (page_h_mm - header_mm - footer_mm) / n_rows
        top = header_mm
    rows, panels = [], []
    for r, leads in enumerate(rows_l):
        base = top + pitch * (r + 0.5)
        rows.append(Row(r, base, x_start_mm, leads))
        win = row_s / len(leads)
        for c, lead in enumerate(leads):
            panels.append(Panel(lead=lead, row=r, col=c, t0=c * win, t1=(c + 1) * win,
                                x0_mm=x_start_mm + c * win * speed_mm_s, baseline_mm=base,
                                band_top_mm=base - pitch / 2, band_bottom_mm=base + pitch / 2))
    return rows, panels
