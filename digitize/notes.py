"""A page's warnings, typed: a stable code that programs test, and the sentence a person reads.

The reader's choices never depend on a warning's wording: code looks at ``Note.code`` (what
was seen), and the text, which may name numbers, is for people. Both are written out —
``warnings`` (the texts) and ``warning_codes`` in results.jsonl and each record's
quality.json — so that an archive's pages can be sorted by what was seen without parsing
English.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Iterable


class Code(str, enum.Enum):
    """What a page warning says, as a stable identifier (its value is written out)."""
    GRID_NOT_MEASURED = "grid_not_measured"  # scale from the rows' length (250 mm)
    TIME_ORIGIN_ASSUMED = "time_origin_assumed"  # no gap between pulse and trace seen
    LOW_RESOLUTION = "low_resolution"
    DEGRIDDED = "degridded"  # a noisy scan: its grid filtered out to find the rows
    DARK_GRID = "dark_grid"  # grid lines as dark as the trace, removed to find the rows
    GAIN_ASSUMED = "gain_assumed"  # no calibration pulse: 10 mm/mV
    GAIN_PRINTED = "gain_printed"  # no calibration pulse: the gain read from the page's text
    GAIN_FORCED = "gain_forced"  # --gain given, and the page's pulses say otherwise
    SPLIT_GAIN = "split_gain"  # stepped pulses: limb and chest leads at different gains
    ROW_GAINS = "row_gains"  # rows at different gains (their pulses)
    LAYOUT_AMBIGUOUS = "layout_ambiguous"  # another layout fits about as well
    SIX_BY_TWO_READING = "six_by_two_reading"  # which 6x2 lead order and timing was read
    LABELS_NOT_READ = "labels_not_read"  # 6x2 labels not read: standard order assumed
    LABELS_NOT_READ_KNOWN = "labels_not_read_known_order"  # ... a known printer's order chosen
    TURNED = "turned"  # the page was read turned by 90, 180 or 270 degrees
    MIRRORED = "mirrored"  # the page was read mirrored


@dataclass(frozen=True)
class Note:
    """One page warning."""
    code: Code
    text: str

    def __str__(self) -> str:
        return self.text


def has(notes: Iterable[Note], *codes: Code) -> bool:
    """Whether any of ``notes`` says one of ``codes``."""
    return any(n.code in codes for n in notes)


def texts(notes: Iterable[Note]) -> list[str]:
    return [n.text for n in notes]


def codes(notes: Iterable[Note]) -> list[str]:
    return [n.code.value for n in notes]
