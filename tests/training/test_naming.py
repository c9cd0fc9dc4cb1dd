"""Naming: every classifier input learns a separable generated set, and temperature scaling calibrates."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.core.align import AlignmentSettings
from realtime.core.motion import INPUT_KINDS
from training.calibration import expected_calibration_error, fit_temperature
from training.config import TrainConfig
from training.datasets import read_dataset
from training.preprocess import build_crop_set
from training.pretrain import pretrain
from training.synth.layouts import write_casme2

SIZE = 32


@pytest.fixture(scope="module")
def separable_casme2(tmp_path_factory):
    """A small CASME II-layout set of large, clearly separable movements (amplitude 4)."""
    root = tmp_path_factory.mktemp("casme2")
    write_casme2(
        root,
        seed=3,
        n_subjects=2,
        samples_per_class=4,
        frame_size=(320, 240),
        frames_per_clip=5,
        amplitude=4.0,
        quirks=False,
    )
    return read_dataset("casme2", root), tmp_path_factory.mktemp("crops")


@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_each_input_kind_names_held_out_samples_well_above_chance(kind, separable_casme2, tmp_path):
    index, cache = separable_casme2
    crops, _ = build_crop_set(index, AlignmentSettings(output_size=SIZE), cache, progress=False, input_kind=kind)
    config = TrainConfig(image_size=SIZE, epochs=25, batch_size=8, lr=1e-3, device="cpu", input_kind=kind)
    result = pretrain(crops, config, split="random", test_fraction=0.3, out=tmp_path / "m.pt", progress=False)
    accuracy = result["test"]["accuracy"]
    chance = 1.0 / len(crops.classes)
    assert accuracy >= 2.5 * chance, f"{kind}: {accuracy:.2f} on held-out samples (chance {chance:.2f})"


def test_a_model_of_one_input_refuses_data_of_another(separable_casme2, tmp_path):
    index, cache = separable_casme2
    crops, _ = build_crop_set(index, AlignmentSettings(output_size=SIZE), cache, progress=False, input_kind="flow")
    with pytest.raises(Exception, match="'flow' inputs but the configuration asks for 'apex'"):
        pretrain(crops, TrainConfig(image_size=SIZE, epochs=1, device="cpu"), out=tmp_path / "m.pt", progress=False)


def _overconfident_set(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A generated classification set: true class probabilities from a 5-class softmax at temperature 1,
    reported by a model whose logits are 3× too large (over-confident), as small-data networks are."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.0, (n, 5))
    logits[np.arange(n), rng.integers(0, 5, n)] += 1.5
    true_p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(5, p=p) for p in true_p])
    shown = np.exp(3.0 * logits)
    return shown / shown.sum(axis=1, keepdims=True), labels


def test_a_validation_set_that_cannot_determine_the_temperature_leaves_it_at_one():
    """All correct: sharpening always lowers the NLL, so the fit would run to the grid's end (every answer at
    100 %); an empty set likewise says nothing."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 50)
    probabilities = np.full((50, 5), 0.1)
    probabilities[np.arange(50), labels] = 0.6
    assert fit_temperature(probabilities, labels) == 1.0
    assert fit_temperature(np.zeros((0, 5)), np.zeros(0, dtype=np.int64)) == 1.0


def test_temperature_fitted_on_validation_lowers_the_calibration_error_on_test():
    from realtime.core.model_contract import apply_temperature

    val_p, val_y = _overconfident_set(400, seed=1)
    test_p, test_y = _overconfident_set(400, seed=2)
    temperature = fit_temperature(val_p, val_y)
    assert 2.0 < temperature < 4.5  # the 3× over-confidence, recovered
    before = expected_calibration_error(test_p, test_y)
    after = expected_calibration_error(apply_temperature(test_p, temperature), test_y)
    assert after < 0.5 * before
    assert np.array_equal(apply_temperature(test_p, temperature).argmax(1), test_p.argmax(1))
