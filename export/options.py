"""What an export is asked to do and what it reports: small frozen dataclasses that import neither torch nor onnx.

Kept apart from :mod:`export.onnx_export` so that ``python -m export --help`` and argument errors answer at
once, before the seconds it takes to import torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from realtime.core.errors import UserInputError

DEFAULT_OPSET = 17
# 13 is the first opset whose Softmax normalises one axis (not a flattened 2-D view); 20 is the newest the
# TorchScript exporter writes (torch.onnx._constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET; a test checks it).
MIN_OPSET = 13
MAX_OPSET = 20
# The network downsamples 32×, so a smaller input leaves no spatial map for attention; the upper bound only
# keeps a typo (2240) from tracing a graph nobody can run.
MIN_IMAGE_SIZE = 32
MAX_IMAGE_SIZE = 1024
# Largest |ONNX Runtime − PyTorch| allowed on any class probability of any parity crop. fp32 differs only by
# summation order (~1e-7); fp16 weights and activations carry ~3 significant digits, hence the looser bound.
FP32_PARITY_BOUND = 1e-4
FP16_PARITY_BOUND = 1e-2

EXIT_OK = 0
EXIT_PARITY_FAILED = 1
EXIT_USER_ERROR = 2


@dataclass(frozen=True)
class ExportOptions:
    """How to export.

    ``opset``: ONNX opset of the graph. ``fp16``: weights and compute in half precision, input and output
    kept float32 (casts inside the graph), so the recognizer feeds it exactly as it feeds an fp32 model.
    ``dynamic_batch``: a symbolic ``batch`` axis on input and output instead of a fixed 1. ``image_size``:
    the input side in pixels; None keeps the checkpoint's (accuracy is only known at the trained size).
    ``parity_bound``: the largest allowed probability difference; None means :data:`FP32_PARITY_BOUND` or
    :data:`FP16_PARITY_BOUND`, read when the export runs.
    """

    opset: int = DEFAULT_OPSET
    fp16: bool = False
    dynamic_batch: bool = False
    image_size: int | None = None
    parity_bound: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.opset, bool) or not isinstance(self.opset, int):
            raise UserInputError(f"--opset must be an integer, got {self.opset!r}")
        if not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise UserInputError(
                f"--opset {self.opset} is not supported: choose {MIN_OPSET} to {MAX_OPSET} (default {DEFAULT_OPSET})"
            )
        if self.image_size is not None:
            if isinstance(self.image_size, bool) or not isinstance(self.image_size, int):
                raise UserInputError(f"--image-size must be an integer, got {self.image_size!r}")
            if not MIN_IMAGE_SIZE <= self.image_size <= MAX_IMAGE_SIZE:
                raise UserInputError(
                    f"--image-size {self.image_size} is out of range: choose {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} "
                    "pixels (the network downsamples 32×)"
                )
        if self.parity_bound is not None and not self.parity_bound >= 0:
            raise UserInputError(f"the parity bound must be ≥ 0, got {self.parity_bound!r}")

    def resolved_bound(self) -> float:
        """The parity bound in force: the explicit one, else the precision's default (looked up now)."""
        if self.parity_bound is not None:
            return float(self.parity_bound)
        return FP16_PARITY_BOUND if self.fp16 else FP32_PARITY_BOUND


@dataclass(frozen=True)
class ParityResult:
    """ONNX Runtime (through the recognizer's own :class:`realtime.stages.classify.Classifier`) against PyTorch on
    real aligned face crops. ``max_abs_diff`` is over every class of every crop; ``top1_agreement`` the
    fraction of crops whose most probable class is the same; ``crops`` names what was compared."""

    max_abs_diff: float
    bound: float
    top1_agreement: float
    n_crops: int
    crops: tuple[str, ...]
    provider: str
    ort_ms_per_image: float

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.bound


@dataclass(frozen=True)
class ExportReport:
    """What one export did; :meth:`to_dict` is the JSON sidecar ``NAME.onnx.json``."""

    checkpoint: Path
    output: Path
    sidecar: Path | None
    attention: str
    classes: tuple[str, ...]
    image_size: int
    trained_image_size: int
    opset: int
    fp16: bool
    dynamic_batch: bool
    parity: ParityResult
    file_size_bytes: int
    export_seconds: float
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def file_size_mb(self) -> float:
        return self.file_size_bytes / 1e6

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (paths as strings, the parity result as a nested object)."""
        values = dataclasses.asdict(self)
        for key in ("checkpoint", "output", "sidecar"):
            values[key] = None if values[key] is None else str(values[key])
        values["classes"] = list(self.classes)
        values["parity"]["crops"] = list(self.parity.crops)
        values["parity"]["passed"] = self.parity.passed
        values["file_size_mb"] = round(self.file_size_mb, 3)
        return values


class ParityError(Exception):
    """The exported graph does not reproduce PyTorch within the bound; ``parity`` holds the figures.
    Nothing is left at the output path."""

    def __init__(self, message: str, parity: ParityResult) -> None:
        super().__init__(message)
        self.parity = parity
