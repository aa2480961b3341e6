"""What the page stages share: the page's geometry (``PageGeometry``, its trace rows ``Row``),
the errors that refuse a page, and the page-level warnings the stages emit."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from digitize.notes import Code, Note


DEGRIDDED = Note(Code.DEGRIDDED, "noisy scan: grid filtered out to find the rows")
DEGRIDDED_NET = Note(Code.DEGRIDDED, "noisy scan: grid filtered out, rows from the "
                     "segmentation net")
GRID_NOT_MEASURED = Note(Code.GRID_NOT_MEASURED,
                         "grid not measurable: scale from the row length (250 mm)")
TIME_ORIGIN_ASSUMED = Note(Code.TIME_ORIGIN_ASSUMED,
                           "time origin not measured: no gap between pulse and trace seen, "
                           "a printer's convention assumed")


class PageError(Exception):
    """The page cannot be analysed (no ECG found, unsupported layout...): a one-line reason.
    ``pulses``, ``rows``: calibration pulses and trace rows seen before it failed (ECG
    evidence), where rows were found."""

    def __init__(self, message: str, pulses: int | None = None, rows: int | None = None):
        super().__init__(message)
        self.pulses = pulses
        self.rows = rows


class NoTraceRows(PageError):
    """No trace row stands out on the page (``analyse`` looks again for a fainter pen)."""

    def __init__(self) -> None:
        super().__init__("no ECG trace rows found on the page")


@dataclass
class Row:
    y: float  # baseline, deskewed px
    x_left: float  # ink extent, deskewed px
    x_right: float
    x_start: float = float("nan")  # where the trace (time 0 of the row) starts
    x_end: float = float("nan")  # where it ends
    pulse: str = "none"  # 'left' | 'right' | 'none'
    pulse_mm: float = float("nan")  # pulse height in mm (gain for 1 mV)
    step_mm: float = float("nan")  # a stepped pulse's second height (chest leads' gain)
    x_stroke: float = float("nan")  # the pulse's timing stroke (fall of a left pulse, rise of
    # a right one): its centre, deskewed px
    x_resume: float = float("nan")  # trace cap across a blank gap from that stroke, or nan
    cap_end: float = float("nan")  # the trace's right pen cap where it ends on paper, or nan
    cap_start: float = float("nan")  # its left pen cap where it starts on blank paper, or nan

    def drop_pulse(self) -> None:
        self.pulse, self.pulse_mm, self.step_mm = "none", float("nan"), float("nan")


@dataclass(frozen=True)
class PageGeometry:
    """What the page stages read from one page image. Frozen: a stage that reads the page
    another way returns a new one (``dataclasses.replace``); only its rows' timing is filled
    in, by the calibration stage, before it is built."""
    px_per_mm: float
    scale_source: str  # 'grid' | 'rows' | 'given'
    skew_deg: float
    rows: list[Row]
    deskew: np.ndarray  # 3×3: image px → deskewed px
    size: tuple[int, int]  # deskewed canvas (w, h)
    grid_px_per_mm: float = float("nan")
    mask: np.ndarray | None = None  # deskewed ink mask
    rectified: bool = False  # a page quadrilateral was found and flattened (photos)
    on_background: bool = False  # a sheet photographed on a darker background
    grey: np.ndarray | None = None  # deskewed grey page (for local grid measurements)
    warnings: tuple[Note, ...] = ()
    dark: np.ndarray | None = None  # deskewed: 1 where 40 % darker than the paper, lines and all
    noisy: bool = False  # a noisy scan (its ink mask as it lies mostly noise: ``READ.noisy_ink``)

    @property
    def thin_grid(self) -> bool:
        """Whether a grid as dark as the trace but thinner than its pen is seen (~15 ms: asked
        only where it matters)."""
        from digitize.page.ink import pen_opening
        return self.dark is not None and pen_opening(self.dark) is not None

    @property
    def to_image(self) -> np.ndarray:
        return np.linalg.inv(self.deskew)
