"""The configuration of a training run: :class:`TrainConfig`, every choice it accepts, its checks.

A frozen dataclass that checks itself on construction, so a bad value is refused before any work starts,
and that round-trips through plain JSON (:meth:`TrainConfig.to_dict`, :meth:`TrainConfig.from_dict`): the
resolved configuration is saved beside every checkpoint and run.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from realtime.core.motion import DEFAULT_INPUT_KIND, INPUT_KINDS
from training.losses import LOSSES
from training.model import ATTENTION_VARIANTS
from training.report import to_jsonable

OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULES = ("cosine", "constant")
SELECTIONS = ("last", "inner-val")
DEVICES = ("auto", "cpu", "cuda")


def _parse_alpha(value: Any) -> str | tuple[float, ...]:
    """``'inverse'``, ``'none'``, a list of weights or a comma-separated string of weights."""
    if value is None:
        return "none"
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("inverse", "none"):
            return text
        try:
            weights = tuple(float(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise ValueError(
                f"focal loss alpha must be 'inverse', 'none' or weights separated by commas, got {value!r}"
            ) from None
    else:
        weights = tuple(float(v) for v in value)
    if not weights or any(not math.isfinite(w) or w <= 0 for w in weights):
        raise ValueError(f"focal loss alpha weights must be positive numbers, got {value!r}")
    return weights


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run. Defaults are for CASME II 5-class LOSO (~240 training
    images per fold, 26 folds), chosen as follows:

    * attention ``dual``, loss ``focal`` with γ = 2 and α = inverse class frequency of the fold's training
      labels: the paper's method (γ = 2 is Lin et al.'s default; α counters CASME II's 99 "others" vs 27
      "repression").
    * ``epochs`` 30 × ``batch_size`` 32 ≈ 240 optimiser steps per fold: enough to fit ~240 images without a
      validation set to stop on. ``selection`` ``last`` keeps the final model, so no epoch is ever chosen
      by looking at the held-out subject.
    * Adam, ``lr`` 3e-4 with a cosine decay to 0 over the run (the final epochs settle the weights, which
      is what ``selection="last"`` keeps), ``weight_decay`` 1e-4 (L2; small data over-fits quickly).
    * ``augment`` on: random horizontal flip, ±5 % shift, ±5 % scale, ±20 % brightness — mild, because a
      micro-expression IS a small local change that strong warps would drown.
    * ``image_size`` 224 (the paper's); ``amp`` (CUDA only), ``channels_last`` and ``deterministic`` on.
    * ``val_subjects`` 3: with ``selection="inner-val"``, three of a fold's 25 training subjects choose the
      epoch (by their macro F1, ties broken by loss); the test subject never does.
    * ``input_kind`` what the network sees (:mod:`realtime.core.motion`): ``apex`` (the paper's), ``onset-apex`` or
      ``flow``. For ``flow`` a flip also negates the horizontal flow; brightness changes apply to ``apex`` only
      (the other inputs are centred on mid-grey, which a gain would move).
    * ``min_flow_gain`` 0.3 (``flow`` only): each sample's flow and strain are scaled by a random gain in
      [``min_flow_gain``, 1]. Generated training clips move more than a real micro-expression (they must,
      to be learnable from 100 clips), and a model that has only seen big flows calls every small one by
      the same name; the gain teaches it that the pattern, not the size, names the emotion. 1 turns it off.
    * ``calibrate``: each LOSO fold holds ``val_subjects`` of its training subjects out of training and fits a
      softmax temperature on them (temperature scaling); the test subject never sees it.
    """

    attention: str = "dual"
    loss: str = "focal"
    gamma: float = 2.0
    alpha: str | tuple[float, ...] = "inverse"
    epochs: int = 30
    batch_size: int = 32
    lr: float = 3e-4
    weight_decay: float = 1e-4
    optimizer: str = "adam"
    momentum: float = 0.9  # SGD only
    lr_schedule: str = "cosine"
    image_size: int = 224
    device: str = "auto"
    seed: int = 0
    amp: bool = True
    channels_last: bool = True
    deterministic: bool = True
    augment: bool = True
    flip_probability: float = 0.5
    max_shift_fraction: float = 0.05
    max_scale_change: float = 0.05
    max_brightness_change: float = 0.2
    min_flow_gain: float = 0.3
    selection: str = "last"
    val_subjects: int = 3
    input_kind: str = DEFAULT_INPUT_KIND
    calibrate: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", _parse_alpha(self.alpha))
        choices = {
            "attention": ATTENTION_VARIANTS,
            "loss": LOSSES,
            "optimizer": OPTIMIZERS,
            "lr_schedule": LR_SCHEDULES,
            "device": DEVICES,
            "selection": SELECTIONS,
            "input_kind": INPUT_KINDS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; choose one of {', '.join(allowed)}")
        positive_ints = ("epochs", "image_size", "val_subjects")
        for name in positive_ints:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be at least 2 (batch normalisation), got {self.batch_size}")
        if self.image_size < 32:
            raise ValueError(f"image_size must be at least 32 px (ResNet18 downsamples 32×), got {self.image_size}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.weight_decay < 0 or self.gamma < 0:
            raise ValueError("weight_decay and gamma must be ≥ 0")
        if not 0 <= self.flip_probability <= 1:
            raise ValueError(f"flip_probability must be in [0, 1], got {self.flip_probability}")
        for name in ("max_shift_fraction", "max_scale_change", "max_brightness_change"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0 < self.min_flow_gain <= 1:
            raise ValueError(f"min_flow_gain must be in (0, 1], got {self.min_flow_gain}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (``alpha`` weights as a list)."""
        return to_jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """The inverse of :meth:`to_dict`; missing keys take their defaults, unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training configuration keys: {', '.join(unknown)}")
        return cls(**dict(values))
