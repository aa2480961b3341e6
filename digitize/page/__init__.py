"""Page analysis: sheet → ink → frame → rows → calibration, wired by ``analyse``.

Everything here works on the image alone (numpy/OpenCV); the model is not involved.

1. *Sheet* (``sheet``): a page photographed on a background is flattened along the paper's
   outline (four Hough lines), or, where no outline shows, its paper is marked so that the
   background holds no ink.
2. *Ink* (``ink``): the darkest strokes relative to the local paper level, measured on the
   brightest colour channel so that red/orange/green/blue grids (bright in their own channel)
   vanish; long straight horizontal and vertical lines (black grids, frames) are removed.
3. *Frame* (``frame``): the rotation that makes the ink's row profile sharpest (traces run along
   the rows). Scale: px/mm from the grid's pitch, measured to ~0.01 % from the whole-width
   darkness profile near the scale the rows' trace length implies (a full row is 250 mm on every
   standard printout) — which rules out the grid's harmonics; the row length itself where no
   grid shows.
4. *Rows* (``rows``): bands of the deskewed page where ink covers most of the width — ECG rows
   span ~250 mm, text lines and labels do not. The baseline (0 mV) is the row's most frequent
   ink height: the isoelectric line.
5. *Calibration* (``calibration``): a 1-mV calibration pulse is a flat-topped step at either end
   of a row: its height gives the gain (mm/mV), its position where the trace starts or ends.
   At 100 Hz a 0.1-mm error in where a panel starts is a third of a sample, so ends are found
   to a fraction of a pixel from pen-edge profiles.

``analyse`` (``analyse``) runs them in order and returns the page's ``PageGeometry``. Their
thresholds are grouped by stage in ``params`` (``SHEET``, ``INK``, ``FRAME``, ``SCALE``,
``PULSE``, ``TIMING``).
"""
from digitize.page.analyse import analyse
from digitize.page.calibration import find_pulse, snap_gain
from digitize.page.core import (DEGRIDDED, GRID_NOT_MEASURED, TIME_ORIGIN_ASSUMED, NoTraceRows,
                                PageError, PageGeometry, Row)
from digitize.page.frame import estimate_skew, size_scale
from digitize.page.ink import degridded, drop_grid_lines, ink_mask, open_lines, pen_opening
from digitize.page.params import FRAME, INK, LAYOUT, PULSE, READ, SCALE, SHEET, TIMING
from digitize.page.rows import baseline, block_max, find_rows, trace_width
from digitize.page.sheet import outline_inset, page_homography, paper_region

__all__ = ["analyse", "find_pulse", "snap_gain", "DEGRIDDED", "GRID_NOT_MEASURED",
           "TIME_ORIGIN_ASSUMED", "NoTraceRows", "PageError", "PageGeometry", "Row",
           "estimate_skew", "size_scale", "block_max", "degridded", "drop_grid_lines",
           "ink_mask", "open_lines", "pen_opening", "baseline", "find_rows", "trace_width",
           "outline_inset", "page_homography", "paper_region",
           "FRAME", "INK", "LAYOUT", "PULSE", "READ", "SCALE", "SHEET", "TIMING"]
