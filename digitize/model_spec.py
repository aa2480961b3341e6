"""The model's input/output conventions — the one place both packages take them from.

``trainer`` builds a model for a ``StripSpec`` and export writes it into the ONNX file's
``metadata_props`` under the keys below; ``digitize`` reads it back from the file. No constant
is copied between the two sides.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

# ONNX metadata_props keys (all values are strings; JSON where structured)
KEY_SPEC = "ecg.strip_spec"  # JSON of StripSpec
KEY_ARCH = "ecg.architecture"  # e.g. "column"
KEY_VERSION = "ecg.model_version"
KEY_OUTPUTS = "ecg.outputs"  # JSON: output name -> meaning
KEY_TRAINING = "ecg.training_data"  # JSON summary of what it was trained on
REQUIRED_KEYS = (KEY_SPEC, KEY_ARCH, KEY_VERSION, KEY_OUTPUTS, KEY_TRAINING)

NORMALISATION_V1 = ("ink = 1 - grey/255 (grey = BGR->GRAY of the strip); "
                    "x = (ink - median(ink)) / max(p99.5(ink) - median(ink), 0.1), clipped to "
                    "[-1, 4]; per strip")

#: Normalisations this digitize implements (``digitize.strips.normalise``); a model declaring
#: another is refused.
NORMALISATIONS = (NORMALISATION_V1,)
#: The outputs digitize reads, by name, in this order.
OUTPUTS = ("value_mm", "confidence")


@dataclass(frozen=True)
class StripSpec:
    """A calibrated strip: a lead's window resampled to fixed px/mm, centred on its baseline.

    Column c of a strip covers page x = x0 + (c + 0.5) / px_per_mm_x mm; row r covers
    y = centre - height_mm/2 + (r + 0.5) / px_per_mm_y mm (y down). The model returns per
    column the trace height above the centre line in mm (divide by the gain for mV).
    """

    px_per_mm_x: float = 4.0
    px_per_mm_y: float = 2.0
    height_mm: float = 60.0  # ±30 mm: ±3 mV at 10 mm/mV
    n_bins: int = 120  # vertical bins over height_mm (0.5 mm each)
    normalisation: str = NORMALISATION_V1
    input_name: str = "strip"  # [batch, 1, height_px, width_px] float32
    outputs: dict = field(default_factory=lambda: {
        "value_mm": "[batch, width] trace height above the strip centre line, mm",
        "confidence": "[batch, width] probability that value_mm is within 0.5 mm, 0..1",
    })
    fixed_width_px: int | None = None  # None: any width (dynamic axis)
    fixed_height_px: int | None = None  # seed model: resized input, not calibrated

    @property
    def height_px(self) -> int:
        return self.fixed_height_px or int(round(self.height_mm * self.px_per_mm_y))

    @property
    def bin_mm(self) -> float:
        return self.height_mm / self.n_bins

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "StripSpec":
        return cls(**json.loads(text))
