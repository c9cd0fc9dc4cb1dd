"""The model contract: what the export writes is exactly what the classifier reads, and a broken file is one
clear line naming it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from realtime.core.align import AlignmentSettings
from realtime.core.errors import UserInputError
from realtime.core.model_contract import (
    REQUIRED_METADATA,
    ModelContract,
    apply_temperature,
    dumps,
    read_model_info,
)

PATH = Path("m.onnx")


def contract(**changes) -> ModelContract:
    values = {
        "classes": ("negative", "positive", "surprise"),
        "input_size": 112,
        "channel_order": "BGR",
        "mean": (0.4, 0.5, 0.6),
        "std": (0.2, 0.25, 0.3),
        "alignment": AlignmentSettings(output_size=112),
        "input_kind": "flow",
        "temperature": 1.7,
        **changes,
    }
    return ModelContract(**values)


def metadata(**changes: str) -> dict[str, str]:
    meta = {**contract().to_metadata(), "training": dumps({"dataset": "casme2"}), "metrics": "{}", "version": "1"}
    return {**meta, **changes}


def test_what_the_export_writes_is_what_the_classifier_reads():
    written = contract()
    info = read_model_info(PATH, metadata())
    assert ModelContract(**{name: getattr(info, name) for name in ModelContract.__dataclass_fields__}) == written
    assert (info.path, info.training, info.version) == (PATH, {"dataset": "casme2"}, "1")
    assert info.trained_on() == "casme2"


def test_resizing_moves_the_alignments_crop_with_the_input():
    resized = contract().resized(64)
    assert (resized.input_size, resized.alignment.output_size) == (64, 64)
    assert read_model_info(PATH, {**metadata(), **resized.to_metadata()}).alignment.output_size == 64


def test_a_file_from_before_input_kind_and_calibration_reads_as_apex_uncalibrated():
    meta = metadata()
    del meta["input_kind"], meta["calibration"]
    info = read_model_info(PATH, meta)
    assert (info.input_kind, info.temperature) == ("apex", 1.0)


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"classes": '["only"]'}, "'classes'"),
        ({"classes": "not json"}, "not valid JSON"),
        ({"input_size": "big"}, "'input_size' must be an integer"),
        ({"channel_order": "YUV"}, "RGB or BGR"),
        ({"std": "[1, 0, 1]"}, "'std' values must be positive"),
        ({"mean": "[1, 2]"}, "'mean' must be a JSON list of 3 numbers"),
        ({"alignment": '{"zoom": 2}'}, "'alignment'"),
        ({"input_kind": "depth"}, "cannot build"),
        ({"calibration": '{"temperature": 0}'}, "positive 'temperature'"),
    ],
)
def test_a_broken_field_is_one_line_naming_the_file(changes, needle):
    with pytest.raises(UserInputError) as raised:
        read_model_info(PATH, metadata(**changes))
    message = str(raised.value)
    assert needle in message and str(PATH) in message and "\n" not in message


@pytest.mark.parametrize("missing", REQUIRED_METADATA)
def test_each_required_key_is_required(missing):
    meta = metadata()
    del meta[missing]
    with pytest.raises(UserInputError, match=f"lacks the metadata {missing}"):
        read_model_info(PATH, meta)


def test_temperature_softens_without_changing_the_answer():
    p = np.array([[0.7, 0.2, 0.1], [0.05, 0.15, 0.8]])
    assert np.array_equal(apply_temperature(p, 1.0), p)
    soft, sharp = apply_temperature(p, 2.0), apply_temperature(p, 0.5)
    assert np.allclose(soft.sum(axis=1), 1.0) and np.allclose(sharp.sum(axis=1), 1.0)
    assert np.array_equal(soft.argmax(1), p.argmax(1)) and np.array_equal(sharp.argmax(1), p.argmax(1))
    assert (soft.max(1) < p.max(1)).all() and (sharp.max(1) > p.max(1)).all()
