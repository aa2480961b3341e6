"""ONNX Runtime engine: one session per run, numpy in, numpy out.

The model file carries its own input spec (``digitize.model_spec`` keys in metadata_props);
nothing about the model is assumed here. ``device='auto'`` tries CUDA and falls back to the CPU
with one INFO line; an explicit ``'cuda'`` that cannot be honoured is an error.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from digitize.model_spec import (KEY_ARCH, KEY_SPEC, KEY_TRAINING, KEY_VERSION, NORMALISATIONS,
                                 OUTPUTS, REQUIRED_KEYS, StripSpec)

log = logging.getLogger(__name__)


class EngineError(RuntimeError):
    """The model cannot be loaded or the requested device cannot be used."""


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Engine:
    """A loaded model: ``run(strips)`` → per-strip (value_mm, confidence)."""

    def __init__(self, model_path: str | Path, device: str = "auto", threads: int = 0):
        self.path = Path(model_path)
        if not self.path.is_file():
            raise EngineError(f"model file not found: {self.path}")
        self.sha256 = file_sha256(self.path)
        self.session = open_session(self.path, device, threads)
        self.provider = self.session.get_providers()[0]
        meta = self.session.get_modelmeta().custom_metadata_map
        missing = [k for k in REQUIRED_KEYS if k not in meta]
        if missing:
            raise EngineError(f"{self.path} lacks model metadata {', '.join(missing)}: "
                              "not a model exported by `python -m trainer export`")
        try:
            self.spec = StripSpec.from_json(meta[KEY_SPEC])
        except (ValueError, TypeError) as exc:
            raise EngineError(f"{self.path}: unreadable strip spec ({exc})") from None
        self.arch = meta[KEY_ARCH]
        self.version = meta[KEY_VERSION]
        self.training = json.loads(meta[KEY_TRAINING])
        self._check_contract()

    def _check_contract(self) -> None:
        """The model's declared conventions must be ones this digitize implements: a model
        expecting another normalisation, or giving other outputs, would be read wrongly."""
        spec = self.spec
        if spec.normalisation not in NORMALISATIONS:
            raise EngineError(f"{self.path}: strip normalisation not known to digitize "
                              f"{_version()} ({spec.normalisation[:60]!r}...): a newer model?")
        inputs = [i.name for i in self.session.get_inputs()]
        if spec.input_name not in inputs:
            raise EngineError(f"{self.path}: declares input {spec.input_name!r}, "
                              f"has {', '.join(inputs)}")
        self.input_name = spec.input_name
        outputs = {o.name for o in self.session.get_outputs()}
        unknown = set(spec.outputs) - set(OUTPUTS)
        missing = [o for o in OUTPUTS if o not in spec.outputs or o not in outputs]
        if unknown or missing:
            raise EngineError(f"{self.path}: outputs {sorted(spec.outputs)} (graph: "
                              f"{sorted(outputs)}); digitize {_version()} reads "
                              f"{', '.join(OUTPUTS)}")
        self.output_names = list(OUTPUTS)  # taken by name, never by position

    def run(self, strips: list[np.ndarray], batch_size: int = 16
            ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Strips [H, W_i] (normalised) → list of (value_mm [W_i], confidence [W_i]).

        Strips of equal width are batched together; order is preserved.
        """
        out: list = [None] * len(strips)
        by_width: dict[int, list[int]] = {}
        for i, s in enumerate(strips):
            by_width.setdefault(s.shape[1], []).append(i)
        for idx in by_width.values():
            for k in range(0, len(idx), batch_size):
                chunk = idx[k:k + batch_size]
                x = np.stack([strips[i] for i in chunk])[:, None].astype(np.float32)
                value, conf = self.session.run(self.output_names, {self.input_name: x})
                for j, i in enumerate(chunk):
                    out[i] = (value[j], conf[j])
        return out


def open_session(path: str | Path, device: str = "auto", threads: int = 0):
    """An ONNX Runtime session for one model file: on CUDA where asked for (``device='cuda'``)
    or available (``'auto'``), else on the CPU with one INFO line saying why; ``threads``: intra-op
    threads (0: onnxruntime's default). Every model digitize runs is opened here."""
    import onnxruntime as ort  # lazy: `digitize --version` must not pay for it

    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # quiet: a failed CUDA load is reported by us, once
    # the CPU arena keeps the largest batch of every strip shape it has seen: peak memory
    # then creeps up over a long run (403 -> 432 MiB from 20 to 200 pages); without it
    # memory stays flat (334 -> 340 MiB) at the same speed
    opts.enable_cpu_mem_arena = False
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    available = ort.get_available_providers()
    if device not in ("auto", "cpu", "cuda"):
        raise EngineError(f"unknown device {device!r}; expected auto, cpu or cuda")
    want_cuda = device in ("auto", "cuda") and "CUDAExecutionProvider" in available
    if device == "cuda" and not want_cuda:
        raise EngineError("--device cuda: this onnxruntime has no CUDA provider "
                          f"(available: {', '.join(available)})")
    providers = (["CUDAExecutionProvider"] if want_cuda else []) + ["CPUExecutionProvider"]
    if want_cuda:
        # a CUDA provider that cannot load logs through the process-wide logger, before
        # session options apply: silence it for the attempt; we report the outcome once
        ort.set_default_logger_severity(4)
    try:
        session = ort.InferenceSession(str(path), opts, providers=providers)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own zoo of types
        if not want_cuda:
            raise EngineError(f"cannot load model {path}: {_first_line(exc)}") from None
        session = None
        cuda_error = _first_line(exc)
    else:
        cuda_error = "the CUDA provider did not load"
    finally:
        if want_cuda:
            ort.set_default_logger_severity(2)  # back to onnxruntime's default (warnings)
    if want_cuda and (session is None
                      or "CUDAExecutionProvider" not in session.get_providers()):
        # only a provider failure means "CUDA not usable": a file the CPU cannot load
        # either is a broken model, whatever the device
        try:
            cpu = ort.InferenceSession(str(path), opts,
                                       providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001
            raise EngineError(f"cannot load model {path}: {_first_line(exc)}") from None
        if device == "cuda":
            raise EngineError(f"--device cuda: {cuda_error}")
        log.info("CUDA not usable (%s); running on the CPU", cuda_error)
        session = cpu
    return session


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _version() -> str:
    from digitize import __version__
    return __version__


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask: a Slurm or container limit)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_model_path() -> Path:
    """The shipped model, found as package data of ``exported`` (works from a plain wheel)."""
    from importlib.resources import files
    return Path(str(files("exported") / "model.onnx"))
