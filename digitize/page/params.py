"""The page stages' thresholds, grouped by what they decide (issue #15, item 4).

Each group is a frozen dataclass; the stages read its one instance (``SHEET``, ``INK``,
``FRAME``, ``SCALE``, ``PULSE``, ``TIMING``; ``LAYOUT`` and ``READ`` for the layout hypotheses
and the windows, in ``digitize.pipeline``). A value's comment says what it bounds and on
which pages it was chosen. Constants that describe ECG printouts rather than this reader —
the lead order, the layouts, a row's 250 mm, the standard gains — live in
``digitize.layouts`` and ``digitize.leads``, shared with the renderer.

To try another value, build a changed copy (``dataclasses.replace(PULSE, low_mm=2.5)``) and
patch the module's instance; nothing else reads the numbers.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SheetParams:
    """Stage 1: a photographed sheet's outline (``sheet``)."""
    #: The sheet is cut out this far (share of the image's long side) inside its measured
    #: outline (the outline is found to ~0.2 % of the image in the median).
    outline_inset: float = 0.0025
    #: How far outward (share of the image's long side) a side of the sheet is looked for past
    #: its first estimate ...
    outline_search: float = 0.08
    #: ... and the least step in log-brightness (paper over background) taken for its edge (a
    #: grid line or a soft shadow makes far smaller steps over 6 px).
    outline_min_step: float = 0.2
    #: What looks like a background around the paper, but shows the paper's grid this
    #: strongly (``geometry.grid_pitch``'s comb strength, the paper blanked out), is paper
    #: under a stain or a crease's shadow: the page is a scan, not a photograph. Backgrounds
    #: of own val photos: at most 3.9; new eik val scans taken for photos: 7.2-21.9 (two
    #: darker ones 2.4 and 3.2 stay photos).
    background_grid: float = 6.0


@dataclass(frozen=True)
class InkParams:
    """Stage 2: which dark pixels are the pen's (``ink``)."""
    #: Ink is this much darker than the local paper (brightness ratio under it).
    threshold: float = 0.6
    #: Ink on a grid line is the pen's (not the line's) where its brightness ratio lies this
    #: far under the darkest tenth of the line pixels (chosen on ecg-image-kit val pages, whose
    #: pulses are drawn along grid lines: grids at 0.17-0.56, pens at 0.02-0.1) ...
    pen_under_grid: float = 0.25
    #: ... or, on a grid printed nearly black, under this share of that level.
    pen_under_dark_grid: float = 0.4
    #: A Fourier peak of the page this far (log magnitude) above its 9x9 neighbourhood is the
    #: grid's (``degridded``).
    degrid_peak: float = 1.5
    #: The filtered page's blur (mm), and the ink levels (in noise sigmas of the black-hat
    #: response) of weak and of full-strength ink.
    degrid_blur_mm: float = 0.1
    degrid_weak: float = 3.0
    degrid_strong: float = 4.5


@dataclass(frozen=True)
class FrameParams:
    """Stage 3: when the grid's pitch sets the scale (``frame``, ``analyse``)."""
    #: A grid is "seen" when its Fourier peak stands this far above the median nearby ...
    grid_ratio: float = 8.0
    #: ... or this far when it lies where the rows' length says (a faint or dotted grid) ...
    grid_ratio_near_rows: float = 4.5
    #: ... but one under ``grid_ratio`` that differs from agreeing rows' length by more than
    #: this is not a grid (a page without grid had a peak of ratio 5.2 at +2.8 %; faint grids
    #: agree < 0.1 % on rendered pages, but real printouts' rows are not always 250 mm: 1.8 %
    #: on one scanner's).
    weak_grid_rows_agree: float = 0.025


@dataclass(frozen=True)
class ScaleParams:
    """The resolutions a page is read at (``analyse``)."""
    #: Under this (px/mm) a page is refused ...
    min_px_per_mm: float = 2.3
    #: ... under this it is read with a warning.
    warn_px_per_mm: float = 4.0


@dataclass(frozen=True)
class PulseParams:
    """Stage 5: what counts as a calibration pulse at a row's end (``calibration.find_pulse``)
    and which of a page's pulses it keeps (``calibration._consensus``). Heights and widths in
    mm of paper."""
    #: The search window reaches this far past the row's ink extent (the row's extent may stop
    #: at the pulse's near edge; a 50-mm/s pulse is 12 mm long), and this far above its
    #: baseline (a 20-mm/mV pulse).
    reach_mm: float = 14.0
    above_mm: float = 24.0
    #: A pulse's flat top: at least this high, this wide (2.5 mm: chest leads at half of
    #: 5 mm/mV), flat to this much from column to column (or to a pixel: raster steps).
    min_height_mm: float = 2.0
    width_mm: tuple[float, float] = (2.5, 13.0)
    flat_mm: float = 0.35
    #: The pulse's outer edge lies at most this far from the row's ink end — or further,
    #: where under half the columns between hold ink within ``alone_mm`` of the baseline
    #: (no trace runs into the pulse: grid residue or a stain stretched the row; eik val
    #: scan 00138, every pulse 3.5-9 mm inside).
    end_mm: float = 3.5
    alone_mm: float = 1.0
    #: How far above the trace's baseline a pulse's vertical stroke may end: some printers
    #: draw the pulse from its own zero while the trace's first sample lies off it
    #: (ecg-image-kit pages: up to ~1.5 mm).
    foot_off_mm: float = 3.0
    #: How far below the trace's baseline a pulse's edge stroke is followed to find its base.
    base_below_mm: float = 4.0
    #: A pulse's outer edge ends at its top: one whose stroke runs on this far (mm) above it
    #: is another, taller stroke.
    over_top_mm: float = 1.0
    #: A top pieced together over gaps counts only within this (|log|) of a standard gain.
    bridged_gain_tol: float = 0.08
    #: A stepped pulse (split gain): two tops a factor 2 apart, to within this (|log|).
    step_tol: float = 0.2
    #: Pulses lower than this (mm) count only where another row shows a pulse this high or
    #: higher (a 12x1 page's chest rows at half of 5 mm/mV, beside its limb rows at 5); one
    #: alone on its page is dropped (own val: a 2.8-mm box in one row of a page printed
    #: without pulses at 20 mm/mV; 1.7-2.4-mm steps at the ends of a page read turned over).
    low_mm: float = 3.0
    #: In few of many rows (under half of 4 or more), a pulse must stand within this (|log|)
    #: of a standard gain's height (a 4.2-mm box in one row of a page without pulses had set
    #: its gain to 5 mm/mV).
    lone_gain_tol: float = 0.1
    #: A pulse taller than this share of its row's gap to the row above would cross that
    #: row's trace: it is ink joined to the pulse (new eik val scan 00053: a sheet's edge with
    #: punch holes beside three rows' pulses, read as 28-mm pulses 24 mm apart, set the page's
    #: gain to 20 mm/mV).
    max_pitch_share: float = 1.1


@dataclass(frozen=True)
class TimingParams:
    """Stage 5: where a row's trace starts and ends (``calibration``)."""
    #: Offsets (mm) from a calibration pulse's timing stroke to the trace's first sample (left
    #: pulse) or from the last sample to the stroke (right pulse) that printers are known to
    #: use: flush (ecg-image-kit), or after a foot and a gap (1 + 1 mm left, 0.5 + 1 mm right:
    #: our renderer's, modelled on electrocardiographs that print the pulse apart). A page's
    #: own measurement picks one where it agrees within ``convention_snap_mm``, else is used
    #: as measured.
    pulse_to_trace_mm: dict = field(default_factory=lambda: {"left": (0.0, 2.0),
                                                             "right": (0.0, 1.5)})
    convention_snap_mm: float = 0.6
    #: How far apart (mm) the rows' end readings of the time origin may lie to count as one
    #: reading (the largest such set is used, where it holds half the pulsed rows).
    end_spread_mm: float = 1.0
    #: Residual bias (px) of the stroke-centre estimators (their ink centroid; mostly
    #: OpenCV's pixel-centre convention), measured on 160 rendered validation-split clean and
    #: scan pages: median |error| 0.05 px after a left pulse, 0.13 px before a right one.
    pulse_bias_px: dict = field(default_factory=lambda: {"left": 0.49, "right": 0.58})
    #: A full row's last sample lies 1/fs before its 10 s: 0.25 mm at 100 Hz, 0.05 mm at
    #: 500 Hz (25 mm/s). The source's rate is unknown, so the middle is taken (error at most
    #: 4 ms).
    last_sample_mm: float = 0.15
    #: A pulse's timing stroke is placed by its inner edge where its ink centroid lies this
    #: far (px) beyond that edge's estimate (``_clear_of_trace``).
    stroke_pull_px: float = 0.5
    #: A gap between pulse and trace (``_gap_edge``): up to ``gap_max_mm`` of columns without
    #: ink within ``gap_band_mm`` of the baseline (a label or a neighbour's wave lies further
    #: off), starting within ``gap_start_mm`` of the stroke (a foot's length), looked for up
    #: to ``gap_reach_mm`` from it, and blank paper ``gap_clear_mm`` above and below the
    #: baseline (not a trace passing above or below the band, its first samples off zero).
    gap_max_mm: float = 4.0
    gap_band_mm: float = 2.5
    gap_start_mm: float = 1.5
    gap_reach_mm: float = 7.0
    gap_clear_mm: float = 6.0
    #: A column inked (ratio under ``INK.threshold``) over this share of the gap's band is a
    #: dark grid line the pen crosses, not blank paper (horizontal lines cross a blank
    #: column's band over at most a third of it, at 150 dpi).
    gap_line_cover: float = 0.8
    #: Where four or more rows show a left pulse and most of the others' starts agree within
    #: ``blur_mm``, a row whose start lies further from theirs than that (and within 2 mm)
    #: takes theirs (``calibration._consensus``); closer, each row keeps its own.
    blur_mm: float = 0.5
    #: Rows of a printout share their start: where at least ``shared_share`` of the rows (and
    #: three) start within ``blur_mm`` of their median, a row that starts more than
    #: ``shared_off_mm`` (and less than ``shared_max_mm``) from them takes their start (the same
    #: bounds move a row of a page without pulses to the rows' median)
    #: (``calibration._shared_start``: a pulse misread under a shadow, 6.4 mm tall and its
    #: rise 7 mm off, had put new eik val scan 00305's first row 9 mm late).
    shared_share: float = 0.6
    shared_off_mm: float = 2.0
    shared_max_mm: float = 25.0
    #: On a page without pulses, a row whose ink is a row's length (250 mm) to within this
    #: starts at its first sample; two or more such rows that agree time the others.
    full_row_mm: float = 1.0


@dataclass(frozen=True)
class RowParams:
    """Which ink bands are trace rows (``rows``)."""
    #: The rows of a printout are evenly pitched. A first or last band whose gap to its
    #: neighbour is under ``edge_gap_low`` or over ``edge_gap_high`` times the other rows'
    #: median pitch, and where no piece of ink crossing its centre is ``edge_stroke_mm`` long
    #: (grid rubble and the header's or footer's text under a shadow, not a trace), is no row.
    #: New eik val scans 00261 (top band 2.47 pitches off, bottom 0.42; pieces of 5 and 6 mm)
    #: and 00317 (bottom 0.38, 21 mm); no other end row of own, eik or new eik val pages lies
    #: outside 0.53-1.99 pitches (the nearest, shared eik scan 00138's, is a trace).
    edge_gap_low: float = 0.5
    edge_gap_high: float = 2.2
    edge_stroke_mm: float = 30.0
    #: After the pulses are read: a first or last row without a pulse beside three or more
    #: rows that all show one, whose gap to its neighbour is under ``stray_gap`` pitches and
    #: whose ink starts ``stray_start_mm`` or more after theirs, is the footer's text under
    #: noise (new eik val scan 00092: 0.6 pitches, 41 mm after), not a row.
    stray_gap: float = 0.75
    stray_start_mm: float = 10.0
    #: ... or, at any gap, where the page segmentation net sees a pen stroke within
    #: ``stray_band_mm`` of its baseline in under this share of its columns: the footer's text
    #: (new eik val scan 00500 of set z: 0.57 pitches, 7 mm after, none of its columns; the
    #: page's four trace rows 0.74-0.86), which had made a 3x4+1 page a 3x4+2 one; a dark
    #: top edge 2.5 pitches above the rows (eik test scan 00091: 0.15, its footer 0.003).
    stray_net_seen: float = 0.2
    stray_band_mm: float = 4.0


@dataclass(frozen=True)
class LayoutParams:
    """Which layout and which lead names a page's rows are read as (``pipeline``: the
    hypotheses, each scored by how well its limb leads obey Einthoven's and Goldberger's
    relations — a relative RMS residual — and the selection)."""
    #: A printout's rows are evenly pitched: on a noisy page, rows with a gap under this share
    #: of their median gap (stains and creases read as rows among the traces) send the page to
    #: be read with its grid filtered out, kept where its rows are even (``even_pitch``).
    min_pitch_share: float = 0.5
    #: ... and no gap over this share of it (a row lost between others: new eik val scan
    #: 00305's 6 of 7 rows, one gap 2.1 times the others), in a reading preferred to another
    #: one of the same page (``regular_pitch``)
    max_pitch_share: float = 1.5
    #: Another layout whose reading explains the limb leads within ``margin`` of the chosen
    #: one's residual makes the layout a doubt, where the chosen one's is over ``clear``
    #: (val: see benchmarks/quality_calibration.txt).
    margin: float = 0.05
    clear: float = 0.1
    #: The 'residual' of a reading whose limb leads cannot be checked (6x1 chest leads): it
    #: wins only where every checked reading is worse.
    unchecked_fit: float = 0.6
    #: A 6x2 reading (lead order from the printed labels, columns simultaneous) replaces the
    #: standard one only where it explains the limb leads' relations clearly better.
    six_by_two_margin: float = 0.05
    #: Up to this many unread 6x2 labels are filled by elimination (every order tried).
    labels_may_miss: int = 3
    #: A 6x2 page whose labels tell nothing (none read on a noisy scan) is also read in the
    #: known printers' orders; such an order wins only where it explains the limb leads better
    #: than the standard one by ``unread_margin``, to under ``unread_order_fit`` (residuals on
    #: eik val scans: the right order simultaneous 0.006-0.6, the wrong 1.2-1.5; the cap gives
    #: up the worse-read right orders for safety).
    unread_margin: float = 0.5
    unread_order_fit: float = 0.3
    #: ... and only where its residual was checked on this share of the samples the standard
    #: reading's was (own val 00873, a 6x1 page, read so at 0.20 on a quarter of them; eik
    #: val scan 00305's right order, 0.02 against 1.18, on 19,970 of 20,000).
    unread_checked_share: float = 0.9
    #: A rhythm strip is named for its best-matching panel (R² of the panel as the strip, best
    #: within a lag of ``rhythm_lag_s``) where that explains at least ``rhythm_min_r2`` of its
    #: variance and ``rhythm_margin`` more than the layout's usual lead does; else the usual.
    rhythm_min_r2: float = 0.8
    rhythm_margin: float = 0.05
    rhythm_lag_s: float = 0.02
    #: ... without the ``rhythm_trim_s`` in which the two differ most (one lost beat).
    rhythm_trim_s: float = 0.3
    #: ... each panel compared without its first and last ``rhythm_edge_s`` (its edges).
    rhythm_edge_s: float = 0.1
    #: A rhythm strip's printed label names it unless its panel explains this much less of the
    #: strip's variance than the best-matching panel (a label misread: a bar of "II" lost).
    printed_margin: float = 0.3


@dataclass(frozen=True)
class ReadParams:
    """How the chosen layout's windows are cut and read (``pipeline``)."""
    #: A row whose ink ends this far (mm) before its 10 s has nothing drawn after its end (the
    #: printout's rows were shorter than 250 mm).
    ink_end_margin_mm: float = 1.0
    #: The model reads each pixel's brightest channel where the pen keeps this share of its
    #: contrast with the paper so (``pipeline.model_grey``): a black pen keeps ~all of it, a
    #: blue one a third.
    pen_kept: float = 0.8
    #: A page whose ink mask covers more than this share is noisy: its grid is filtered out
    #: first (ecg-image-kit val scans: 0.064-0.45; its clean and b/w pages at most 0.029, our
    #: rendered clean and scan pages at most 0.054).
    noisy_ink: float = 0.06
    #: A noisy page's evenly lit, degridded reading with all its rows pulsed is kept where its
    #: rows, as many, hold this many times the trace length of the first reading's
    #: (``pipeline._plain_geometry``; new eik val scan 00265 read at its true pitch: 1.5x; no
    #: val page reaches it with the shipped pitch rule).
    longer_rows: float = 1.25
    #: Window ends where the model's confidence stays under this are "not drawn" (NaN).
    trim_conf: float = 0.3
    #: Uncertainty (px) of a row's start: timed by a calibration pulse's stroke, or by the pen
    #: caps of a row without one (p75 of the errors on rendered validation pages).
    start_sigma_px: dict = field(default_factory=lambda: {"pulse": 0.3, "caps": 0.7})
    #: Above this timing uncertainty no lead is marked ok: at 100 Hz 4 ms is 0.4 of a sample,
    #: which alone can cost 10 dB.
    timing_warn_ms: float = 4.0
    #: A flattened photo's vertical grid pitch that differs from its horizontal one by more
    #: than this share is corrected (foreshortening leaves letter and A4 sheets — 9 % apart in
    #: shape — hard to tell by their outline; the grid is square).
    max_aspect_error: float = 0.003
    #: How far around a label or separator the paper's brightness is taken from (mm) to paint
    #: it out.
    paper_around_mm: float = 1.5
    #: A calibration pulse is taken out of the model's input with this much (mm) above its
    #: top and below its foot.
    pulse_mm: float = 1.5
    #: ... but not its timing stroke where ink runs on from it within this (mm): the trace.
    pulse_beside_mm: float = 0.3


SHEET = SheetParams()
INK = InkParams()
FRAME = FrameParams()
SCALE = ScaleParams()
PULSE = PulseParams()
TIMING = TimingParams()
ROWS = RowParams()
LAYOUT = LayoutParams()
READ = ReadParams()
