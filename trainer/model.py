"""Trace models, selectable by name.

- ``column`` (default): column-wise trace localisation on calibrated strips. A CNN trunk of
  ResNet basic blocks halves the height four times but never the width, the height is folded
  into channels, a Transformer mixes information across columns, and a head gives per column a
  distribution over vertical bins, a sub-bin offset and a confidence. Any width, any batch.
- ``seed``: the seed project's design — ResNet-18 on the strip squashed to 224×448, flattened
  spatial tokens + learnable positions → 2 transformer blocks (4 heads) → temporal projection →
  1-D ConvTranspose decoder with residual skips → 1000 samples in mV. Fixed input size.

``forward(x)`` returns outputs only (losses live in train.py); shapes are in the docstrings.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock, resnet18

from digitize.model_spec import StripSpec

ARCHS = ("column", "seed")


def _block(cin: int, cout: int, stride: tuple[int, int]) -> BasicBlock:
    down = None
    if cin != cout or stride != (1, 1):
        down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                             nn.BatchNorm2d(cout))
    return BasicBlock(cin, cout, stride=stride, downsample=down)


class ColumnNet(nn.Module):
    """Strip [B, 1, H, W] → (value_mm [B, W], confidence [B, W], logits [B, W, n_bins])."""

    def __init__(self, spec: StripSpec, channels: tuple[int, ...] = (16, 32, 48, 64),
                 blocks_per_stage: int = 1, d_model: int = 128, n_layers: int = 2,
                 n_heads: int = 4, ff: int = 256, dropout: float = 0.1, soft_window: int = 3):
        super().__init__()
        self.spec = spec
        self.soft_window = soft_window
        c0 = channels[0]
        # stem keeps the width: strides are (2, 1) — height only
        self.stem = nn.Sequential(nn.Conv2d(1, c0, 3, stride=(2, 1), padding=1, bias=False),
                                  nn.BatchNorm2d(c0), nn.ReLU(inplace=True))
        blocks, cin, h = [], c0, (spec.height_px + 1) // 2
        for c in channels[1:]:
            blocks.append(_block(cin, c, (2, 1)))
            blocks += [_block(c, c, (1, 1)) for _ in range(blocks_per_stage - 1)]
            cin, h = c, (h + 1) // 2
        self.trunk = nn.Sequential(*blocks)
        self.fold = nn.Linear(cin * h, d_model)  # height folded into channels, per column
        # convolutional position encoding: works for any width (no learned table to outgrow)
        self.pos = nn.Conv1d(d_model, d_model, 15, padding=7, groups=d_model)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, ff, dropout, batch_first=True,
                                           norm_first=True)
        self.mixer = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, spec.n_bins + 2)  # bins, offset, confidence
        self.register_buffer("bin_centres", self._centres(spec), persistent=False)

    @staticmethod
    def _centres(spec: StripSpec) -> torch.Tensor:
        # bin b covers rows of height bin_mm; value = height ABOVE the centre line (y up)
        b = torch.arange(spec.n_bins, dtype=torch.float32)
        return spec.height_mm / 2 - (b + 0.5) * spec.bin_mm

    def forward(self, x: torch.Tensor):
        f = self.trunk(self.stem(x))  # [B, C, h, W]
        b, c, h, w = f.shape
        t = self.fold(f.permute(0, 3, 1, 2).reshape(b, w, c * h))  # [B, W, D]
        t = t + self.pos(t.transpose(1, 2)).transpose(1, 2)
        t = self.norm(self.mixer(t))
        out = self.head(t)  # [B, W, n_bins + 2]
        logits = out[..., :-2]
        offset = torch.tanh(out[..., -2]) * self.spec.bin_mm  # sub-bin refinement, ±1 bin
        confidence = torch.sigmoid(out[..., -1])
        # soft-argmax restricted to ±soft_window bins around the arg-max: neighbouring rows'
        # spikes make the distribution multi-modal, a global mean would land between modes
        idx = torch.arange(logits.shape[-1], device=x.device)
        peak = logits.argmax(-1, keepdim=True)
        near = (idx - peak).abs() <= self.soft_window
        p = torch.softmax(logits.masked_fill(~near, -1e4), dim=-1)
        value_mm = (p * self.bin_centres).sum(-1) + offset
        return value_mm, confidence, logits


class SeedNet(nn.Module):
    """The seed's design. Strip resized to [B, 1, 224, 448] → signal_mv [B, 1000]."""

    def __init__(self, n_out: int = 1000, d_model: int = 512, n_layers: int = 2,
                 n_heads: int = 4, t_tokens: int = 125):
        super().__init__()
        enc = resnet18(weights=None)  # random init: no weights can be downloaded here
        enc.conv1 = nn.Conv2d(1, 64, 7, stride=2, padding=3, bias=False)  # grey input
        self.encoder = nn.Sequential(*list(enc.children())[:-2])  # [B, 512, 7, 14]
        n_tok = 7 * 14
        self.pos = nn.Parameter(torch.zeros(1, n_tok, d_model))
        nn.init.trunc_normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, 4 * d_model, 0.1, batch_first=True)
        self.bridge = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.temporal = nn.Linear(n_tok, t_tokens)  # token axis → time axis
        self.reduce = nn.Conv1d(d_model, 128, 1)
        # ConvTranspose decoder: 125 → 250 → 500 → 1000, residual skips via upsampling
        self.ups = nn.ModuleList([nn.ConvTranspose1d(c_in, c_out, 4, stride=2, padding=1)
                                  for c_in, c_out in ((128, 64), (64, 32), (32, 16))])
        self.skips = nn.ModuleList([nn.Conv1d(c_in, c_out, 1)
                                    for c_in, c_out in ((128, 64), (64, 32), (32, 16))])
        self.out = nn.Conv1d(16, 1, 5, padding=2)
        self.n_out = n_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.encoder(x)  # [B, 512, 7, 14]
        t = f.flatten(2).transpose(1, 2) + self.pos  # [B, 98, 512]
        t = self.bridge(t)
        t = self.temporal(t.transpose(1, 2))  # [B, 512, 125]
        h = F.gelu(self.reduce(t))
        for up, skip in zip(self.ups, self.skips):
            h = F.gelu(up(h)) + F.interpolate(skip(h), scale_factor=2.0, mode="linear",
                                              align_corners=False)
        y = self.out(h)[:, 0]  # [B, 1000]
        return y[:, :self.n_out]


#: The seed's input conventions as a StripSpec: a whole 250 × 60 mm strip squashed to
#: 224 × 448; its 1000 outputs are 10 ms apart = 4 columns per mm at 25 mm/s.
SEED_SPEC = StripSpec(px_per_mm_x=4.0, px_per_mm_y=224 / 60, height_mm=60.0, n_bins=1,
                      fixed_width_px=448, fixed_height_px=224, outputs={
                          "value_mm": "[batch, 1000] trace height above the strip centre, mm "
                                      "(the seed's mV output x 10 mm/mV)",
                          "confidence": "[batch, 1000] constant 1 (the seed has no confidence)"})


class ExportWrapper(nn.Module):
    """What goes into the ONNX file: (value_mm, confidence) for either architecture."""

    def __init__(self, model: nn.Module, seed_gain_mm_mv: float = 10.0):
        super().__init__()
        self.model = model
        self.seed_gain = seed_gain_mm_mv

    def forward(self, x: torch.Tensor):
        if isinstance(self.model, SeedNet):
            mv = self.model(x)
            return mv * self.seed_gain, torch.ones_like(mv)
        value_mm, confidence, _ = self.model(x)
        return value_mm, confidence


def build_model(arch: str, spec: StripSpec | None = None, **kw) -> tuple[nn.Module, StripSpec]:
    """Model and its strip conventions for an architecture name."""
    if arch == "column":
        spec = spec or StripSpec()
        return ColumnNet(spec, **kw), spec
    if arch == "seed":
        return SeedNet(**kw), SEED_SPEC
    raise ValueError(f"unknown architecture {arch!r}; expected one of {', '.join(ARCHS)}")
