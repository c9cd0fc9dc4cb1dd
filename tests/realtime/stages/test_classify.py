"""The classification stage on a real exported model (untrained, tiny): it reads the model's own contract,
answers with a softmax over the model's classes, and refuses what it cannot run with one clear line."""

from __future__ import annotations

import os

import numpy as np
import pytest

from realtime.core.errors import OptionError, UserInputError
from realtime.stages.classify import DEVICES, Classifier, ClassifierOptions, default_model


@pytest.fixture(scope="module")
def classifier(tiny_onnx_model) -> Classifier:
    return Classifier(ClassifierOptions(tiny_onnx_model, "cpu", threads=1))


def test_the_model_says_what_it_needs(classifier):
    info = classifier.info
    assert len(info.classes) == 5 and info.input_size == 64
    assert classifier.alignment.output_size == info.input_size
    assert classifier.input_kind == info.input_kind == "apex"
    assert classifier.provider == "CPUExecutionProvider"


def test_answers_are_a_softmax_over_the_models_classes_and_a_batch_answers_as_its_crops_do(classifier):
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(4)]
    one_by_one = [classifier.classify([crop])[0] for crop in crops]
    batch = classifier.classify(crops)
    for answer, batched in zip(one_by_one, batch, strict=True):
        assert list(answer.probabilities) == list(classifier.info.classes)
        assert sum(answer.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert answer.label == max(answer.probabilities, key=answer.probabilities.get)
        assert answer.confidence == pytest.approx(max(answer.probabilities.values()))
        assert batched.label == answer.label
        assert np.allclose(list(batched.probabilities.values()), list(answer.probabilities.values()), atol=1e-5)


@pytest.mark.parametrize("kind", ["apex", "flow"])
def test_the_mirror_average_is_the_mean_of_the_face_and_its_mirror_image(tiny_onnx_model, tmp_path, kind):
    """``mirror`` (on by default) answers with the mean of the model's answers for the input and for the mirrored
    face (for ``flow`` the horizontal flow changes sign too), so a face and its mirror image get one answer."""
    from export.untrained import make_tiny_model, model_metadata
    from realtime.core.motion import flip_input

    model = make_tiny_model(tmp_path / f"{kind}.onnx", 64, {**model_metadata(64), "input_kind": kind})
    plain = Classifier(ClassifierOptions(model, "cpu", threads=1, mirror=False))
    averaged = Classifier(ClassifierOptions(model, "cpu", threads=1))
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    mirrored = flip_input(kind, image)
    both = [plain.classify([x])[0].probabilities for x in (image, mirrored)]
    want = {name: (both[0][name] + both[1][name]) / 2.0 for name in plain.info.classes}
    got = averaged.classify([image])[0]
    assert got.probabilities == pytest.approx(want, abs=1e-6)
    assert got.probabilities == pytest.approx(averaged.classify([mirrored])[0].probabilities, abs=1e-6)
    assert got.probabilities != pytest.approx(both[0], abs=1e-6)  # the mirror changed something


@pytest.mark.parametrize(
    ("options", "field"),
    [({"device": "tpu"}, "device"), ({"input_kind": "depth"}, "input_kind")],
)
def test_bad_options_name_their_own_field(tmp_path, options, field):
    with pytest.raises(OptionError) as raised:
        ClassifierOptions(tmp_path / "m.onnx", **options)
    assert raised.value.option == field and field in str(raised.value)


def test_every_device_choice_is_accepted_by_the_options(tmp_path):
    for device in DEVICES:
        assert ClassifierOptions(tmp_path / "m.onnx", device).device == device


@pytest.mark.parametrize("make", ["missing", "folder", "not-onnx"])
def test_a_file_that_is_not_a_model_is_one_line(tmp_path, make):
    path = tmp_path / "m.onnx"
    if make == "folder":
        path.mkdir()
    elif make == "not-onnx":
        path.write_text("hello")
    with pytest.raises(UserInputError) as raised:
        Classifier(ClassifierOptions(path, "cpu"))
    assert str(path) in str(raised.value) and "\n" not in str(raised.value)


def test_the_default_model_is_the_newest_onnx_file_and_an_empty_folder_says_how_to_make_one(tmp_path):
    with pytest.raises(UserInputError, match="python -m export"):
        default_model(tmp_path)
    older, newer = tmp_path / "a.onnx", tmp_path / "b.onnx"
    older.write_bytes(b"")
    newer.write_bytes(b"")
    os.utime(older, ns=(1, 1))
    assert default_model(tmp_path) == newer
