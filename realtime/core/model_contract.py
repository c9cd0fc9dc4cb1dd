"""The model contract: what an exported classifier says about itself, written once by ``python -m export`` and
read by the classification stage (:mod:`realtime.stages.classify`), so the two can never drift apart.

An ONNX file of this project has one input ``input`` (N×3×S×S float32, normalised) and an output
``probabilities`` (a softmax over ``classes``), and carries in its ``metadata_props``:

- ``classes`` (output order), ``input_size`` S, ``channel_order`` (RGB or BGR), ``mean``/``std`` (the
  normalisation, on 0-1 pixel values), ``alignment`` (the :class:`realtime.core.align.AlignmentSettings` it
  was trained with; its output size is S), ``training``, ``metrics`` and ``version`` — all required;
- ``input_kind`` (what the network sees, :mod:`realtime.core.motion`; ``apex`` when absent, as in files
  exported before it existed) and ``calibration`` (``{"temperature": T}``) — optional.

Values that are not plain strings are JSON. Every problem found reading them is a
:class:`~realtime.core.errors.UserInputError` naming the file.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from realtime.core.align import AlignmentSettings
from realtime.core.errors import UserInputError
from realtime.core.motion import DEFAULT_INPUT_KIND, INPUT_KINDS

INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"
CHANNEL_ORDERS = ("RGB", "BGR")
REQUIRED_METADATA = (
    "classes",
    "input_size",
    "channel_order",
    "mean",
    "std",
    "alignment",
    "training",
    "metrics",
    "version",
)
EXPORT_HINT = "export a trained checkpoint with `python -m export ...` (see `python -m export --help`)"


def dumps(value: Any) -> str:
    """A metadata value as compact JSON with sorted keys (files diff cleanly)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, kw_only=True)
class ModelContract:
    """What the classifier needs to turn an aligned face into the model's input and read its answer."""

    classes: tuple[str, ...]
    input_size: int
    channel_order: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    alignment: AlignmentSettings
    input_kind: str = DEFAULT_INPUT_KIND
    temperature: float = 1.0

    def resized(self, input_size: int) -> ModelContract:
        """The same contract at another input size (the alignment's crop follows)."""
        alignment = dataclasses.replace(self.alignment, output_size=int(input_size))
        return dataclasses.replace(self, input_size=int(input_size), alignment=alignment)

    def to_metadata(self) -> dict[str, str]:
        """The contract's own ``metadata_props`` (the export adds ``training``, ``metrics``, ``version``)."""
        return {
            "classes": dumps(list(self.classes)),
            "input_size": str(self.input_size),
            "channel_order": self.channel_order,
            "mean": dumps(list(self.mean)),
            "std": dumps(list(self.std)),
            "alignment": dumps(self.alignment.to_dict()),
            "input_kind": self.input_kind,
            "calibration": dumps({"temperature": self.temperature}),
        }


@dataclass(frozen=True, kw_only=True)
class ModelInfo(ModelContract):
    """What an exported model file says about itself: the contract, plus where it came from."""

    path: Path
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    version: str = ""

    def trained_on(self) -> str:
        """One line about the training data, for the start-up notice."""
        parts = [str(self.training.get(key)) for key in ("dataset", "protocol") if self.training.get(key)]
        description = self.training.get("description")
        if description:
            parts.append(str(description))
        return "; ".join(parts) or "training data not described"


def _json(meta: Mapping[str, str], key: str, path: Path) -> Any:
    try:
        return json.loads(meta[key])
    except (json.JSONDecodeError, TypeError):
        raise UserInputError(f"model {path}: metadata {key!r} is not valid JSON: {meta[key][:60]!r}") from None


def read_model_info(path: Path, meta: Mapping[str, str]) -> ModelInfo:
    """Validate and parse a model file's ``metadata_props``; every problem is a :class:`UserInputError`."""
    missing = [key for key in REQUIRED_METADATA if key not in meta]
    if missing:
        raise UserInputError(
            f"model {path} lacks the metadata {', '.join(missing)}: it was not written by this project's "
            f"export; {EXPORT_HINT}"
        )
    classes = _json(meta, "classes", path)
    if not (isinstance(classes, list) and len(classes) >= 2 and all(isinstance(c, str) and c for c in classes)):
        raise UserInputError(f"model {path}: 'classes' must be a JSON list of at least two names")
    try:
        input_size = int(meta["input_size"])
    except ValueError:
        raise UserInputError(f"model {path}: 'input_size' must be an integer, got {meta['input_size']!r}") from None
    order = meta["channel_order"].strip().upper()
    if order not in CHANNEL_ORDERS:
        raise UserInputError(f"model {path}: 'channel_order' must be RGB or BGR, got {meta['channel_order']!r}")
    mean, std = _json(meta, "mean", path), _json(meta, "std", path)
    for name, values in (("mean", mean), ("std", std)):
        if not (isinstance(values, list) and len(values) == 3 and all(isinstance(v, (int, float)) for v in values)):
            raise UserInputError(f"model {path}: {name!r} must be a JSON list of 3 numbers")
    if any(v <= 0 for v in std):
        raise UserInputError(f"model {path}: 'std' values must be positive")
    alignment = _json(meta, "alignment", path)
    known = {f.name for f in dataclasses.fields(AlignmentSettings)}
    if not isinstance(alignment, dict) or set(alignment) - known:
        raise UserInputError(f"model {path}: 'alignment' must be a JSON object with keys among {sorted(known)}")
    settings = AlignmentSettings(**{**alignment, "output_size": input_size})
    training, metrics = _json(meta, "training", path), _json(meta, "metrics", path)
    input_kind = meta.get("input_kind", DEFAULT_INPUT_KIND).strip()
    if input_kind not in INPUT_KINDS:
        raise UserInputError(
            f"model {path} needs classifier input {input_kind!r}, which this version cannot build "
            f"(it builds {', '.join(INPUT_KINDS)})"
        )
    temperature = 1.0
    if "calibration" in meta:
        calibration = _json(meta, "calibration", path)
        value = calibration.get("temperature") if isinstance(calibration, dict) else None
        if not isinstance(value, (int, float)) or not value > 0:
            raise UserInputError(f"model {path}: 'calibration' must be a JSON object with a positive 'temperature'")
        temperature = float(value)
    return ModelInfo(
        path=path,
        classes=tuple(classes),
        input_size=input_size,
        channel_order=order,
        mean=tuple(float(v) for v in mean),  # type: ignore[arg-type]
        std=tuple(float(v) for v in std),  # type: ignore[arg-type]
        alignment=settings,
        training=training if isinstance(training, dict) else {"description": str(training)},
        metrics=metrics if isinstance(metrics, dict) else {},
        version=meta["version"],
        input_kind=input_kind,
        temperature=temperature,
    )


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T) from the softmax probabilities: ``log p`` is the logits less a per-row constant,
    so this is exact. Rows stay in order; the top class never changes."""
    p = np.asarray(probabilities, dtype=np.float64)
    if temperature == 1.0:
        return p
    scaled = np.log(np.clip(p, 1e-30, None)) / float(temperature)
    scaled -= scaled.max(axis=-1, keepdims=True)
    out = np.exp(scaled)
    return out / out.sum(axis=-1, keepdims=True)
