"""The learned spotter's decision: a small multilayer perceptron over the features of one candidate apex.

The learned spotter (:mod:`realtime.stages.spotter.learned`) describes each candidate apex by how the cells of
the aligned, stabilised face move around it: the rise-and-fall contrast of the strongest cells at four time
scales against each cell's own usual level, whether the rest of the face stayed still, which part of the face
moved, and what the face did in the half second before (:data:`realtime.stages.spotter.learned.FEATURE_NAMES`).
This model turns that vector into the probabilities of three classes: ``rest`` (nothing, or motion that is not
a micro-expression: talking, a head turn, an ordinary expression, the face's own small movements), ``micro``
(the candidate is near the apex of a micro-expression) and ``blink``.

It is trained by ``python -m training spotter`` on generated clips of the training faces only (never the
benchmark's held-out faces) and stored as ``weights/spotter.npz``: the feature names it was trained on
(checked against the spotter's at load time), the standardisation, the layers, the decision threshold chosen
on the training faces by leave-one-photo-out, and a JSON string of how it was made (its figures included).
Inference is three small matrix products in NumPy: a few microseconds a candidate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from realtime.core.errors import UserInputError
from realtime.core.files import atomic_open

CLASSES = ("rest", "micro", "blink")
DEFAULT_SPOT_MODEL = Path(__file__).resolve().parents[3] / "weights" / "spotter.npz"
TRAIN_HINT = "python -m training spotter --out weights/spotter.npz"


Layers = tuple[tuple[np.ndarray, np.ndarray], ...]


@dataclass(frozen=True)
class SpotModel:
    """A trained spotting decision: ``predict(features) → probabilities`` of :data:`CLASSES`.

    ``members`` are MLPs trained alike from different seeds (their probabilities are averaged: one MLP's
    answers vary with its seed more than the data justify); each is (weight, bias) pairs, ReLU between them,
    softmax at the end. ``mean``/``scale`` standardise the features; ``threshold`` is the micro (and blink)
    probability an event needs; ``facts`` says how the model was made (data, photos, figures)."""

    feature_names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    members: tuple[Layers, ...]
    threshold: float = 0.5
    classes: tuple[str, ...] = CLASSES
    facts: dict = field(default_factory=dict)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities for one feature vector (shape (F,)) or a batch (N, F)."""
        standard = (np.asarray(features, np.float32) - self.mean) / self.scale
        total = 0.0
        for layers in self.members:
            x = standard
            for number, (weight, bias) in enumerate(layers):
                x = x @ weight + bias
                if number < len(layers) - 1:
                    x = np.maximum(x, 0.0)
            x = x - x.max(axis=-1, keepdims=True)
            e = np.exp(x)
            total = total + e / e.sum(axis=-1, keepdims=True)
        return total / len(self.members)

    def save(self, path: str | Path) -> Path:
        """Write the model as one ``.npz`` (atomically: a reader never sees half a file)."""
        path = Path(path)
        arrays = {}
        for m, layers in enumerate(self.members):
            arrays.update({f"m{m}_weight{i}": w for i, (w, _) in enumerate(layers)})
            arrays.update({f"m{m}_bias{i}": b for i, (_, b) in enumerate(layers)})
        with atomic_open(path, "wb", encoding=None) as handle:
            np.savez(
                handle,
                feature_names=np.array(self.feature_names),
                classes=np.array(self.classes),
                mean=self.mean.astype(np.float32),
                scale=self.scale.astype(np.float32),
                threshold=np.float64(self.threshold),
                n_members=np.int32(len(self.members)),
                n_layers=np.int32(len(self.members[0])),
                facts=np.array(json.dumps(self.facts, sort_keys=True)),
                **{k: v.astype(np.float32) for k, v in arrays.items()},
            )
        return path


def load_spot_model(path: str | Path | None = None, feature_names: tuple[str, ...] | None = None) -> SpotModel:
    """Read a model written by :meth:`SpotModel.save` (default: ``weights/spotter.npz``). With
    ``feature_names``, a model trained on other features is refused with one clear message."""
    path = Path(path) if path is not None else DEFAULT_SPOT_MODEL
    if not path.is_file():
        raise UserInputError(f"no spotting model at {path}; train one with: {TRAIN_HINT}")
    try:
        with np.load(path, allow_pickle=False) as data:
            n = int(data["n_layers"])
            if "n_members" in data.files:
                members = tuple(
                    tuple((data[f"m{m}_weight{i}"], data[f"m{m}_bias{i}"]) for i in range(n))
                    for m in range(int(data["n_members"]))
                )
            else:  # a file of one MLP (the first format)
                members = (tuple((data[f"weight{i}"], data[f"bias{i}"]) for i in range(n)),)
            model = SpotModel(
                feature_names=tuple(str(s) for s in data["feature_names"]),
                mean=data["mean"].astype(np.float32),
                scale=data["scale"].astype(np.float32),
                members=members,
                threshold=float(data["threshold"]),
                classes=tuple(str(s) for s in data["classes"]),
                facts=json.loads(str(data["facts"])),
            )
    except (OSError, KeyError, ValueError) as error:
        raise UserInputError(f"{path} is not a spotting model ({error}); train one with: {TRAIN_HINT}") from error
    if model.classes != CLASSES:
        raise UserInputError(f"{path} predicts {model.classes}, the spotter needs {CLASSES}")
    if feature_names is not None and model.feature_names != tuple(feature_names):
        raise UserInputError(
            f"{path} was trained on other spotting features than this version computes; retrain it: {TRAIN_HINT}"
        )
    return model
