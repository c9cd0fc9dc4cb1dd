"""The classifier's inputs (realtime/core/motion.py): one implementation for training and streaming, head motion
removed from the flow, and a model of one input kind refused by a stream set up for another."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from export.untrained import make_tiny_model, model_metadata
from realtime.core.align import AlignmentSettings, align_face
from realtime.core.errors import UserInputError
from realtime.core.landmarks import LazyLandmarker
from realtime.core.motion import (
    INPUT_KINDS,
    build_classifier_input,
    dense_flow,
    flip_input,
    needs_onset,
    remove_head_motion,
)
from realtime.pipeline import Pipeline
from realtime.stages.capture import Frame
from realtime.stages.classify import Classifier, ClassifierOptions
from realtime.stages.faces import FaceFrame, TrackedFace
from realtime.stages.spotter import SpotSignal, SpottedEvent
from tests.test_stream_cli import assert_one_line_error, run_main
from training.datasets.base import DatasetIndex, Sample
from training.preprocess import build_crop_set

SIZE = 64
ONSET, APEX = 1, 4  # frame indices of the clip below
BORDER_PX = 6  # the crop's edge, where flow is poorly defined


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """An untrained exported model per input kind (the metadata says which input it takes)."""
    folder = tmp_path_factory.mktemp("kinds")
    return {
        kind: make_tiny_model(folder / f"{kind}.onnx", SIZE, {**model_metadata(SIZE), "input_kind": kind})
        for kind in INPUT_KINDS
    }


@pytest.fixture(scope="module")
def smile_frames(face_photo, expression_clip) -> list[np.ndarray]:
    """A short smile on a real face photo, with the head shifting a little between frames."""
    located = LazyLandmarker().get()
    box = located.detect(face_photo)[0]
    points = located.landmarks(face_photo, box)
    frames = expression_clip(face_photo, points[[48, 54]], n=7, apex=APEX, pixels=5.0)
    shifted = []
    for t, frame in enumerate(frames):  # a slow head drift: the flow input must not show it
        matrix = np.float32([[1, 0, 0.6 * t], [0, 1, 0.3 * t]])
        shifted.append(cv2.warpAffine(frame, matrix, frame.shape[1::-1], borderMode=cv2.BORDER_REPLICATE))
    return shifted


class OneFaceTracker:
    """The tracker's interface, with the landmarks that the training side's alignment fits on each frame."""

    def __init__(self) -> None:
        self.landmarker = LazyLandmarker()

    def process(self, image: np.ndarray, t_ms: float | None = None) -> FaceFrame:
        marker = self.landmarker.get()
        box = marker.detect(image)[0]
        face = TrackedFace(0, box, marker.landmarks(image, box), True, 0.0)
        return FaceFrame((face,), cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), True)


class ScriptedSpotter:
    """The spotter's interface (the contract): one micro-expression with its onset at ``ONSET`` and apex at
    ``APEX``, reported on the last frame."""

    def __init__(self, last_frame: int) -> None:
        self.last_frame = last_frame

    def update(self, face_id, frame_index, t_ms, gray, landmarks) -> SpotSignal:
        events = ()
        if frame_index == self.last_frame:
            events = (SpottedEvent(face_id, ONSET, APEX, frame_index, 0.0, 0.0, 0.0, 1.0, "micro"),)
        in_event = ONSET <= frame_index < self.last_frame
        return SpotSignal(
            face_id, frame_index, t_ms, float(frame_index == APEX), 0.5, in_event, frame_index == APEX, events
        )


@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_streaming_and_training_build_bit_identical_inputs(kind, models, smile_frames, tmp_path):
    paths = _write_frames(tmp_path, smile_frames)
    sample = Sample(
        "casme2", "sub01", "sub01/EP01", "happiness", "happiness", paths[APEX], ONSET, APEX, 6, paths[ONSET]
    )
    index = DatasetIndex("casme2", tmp_path, "5class", ("happiness", "disgust"), (sample,))
    trained, _ = build_crop_set(index, AlignmentSettings(output_size=SIZE), progress=False, input_kind=kind)

    classifier = Classifier(ClassifierOptions(models[kind], "cpu", input_kind=kind))
    pipeline = Pipeline(classifier=classifier, tracker=OneFaceTracker(), spotter=ScriptedSpotter(len(paths) - 1))
    events = []
    for t, path in enumerate(paths):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        events += pipeline.process(Frame(t, 40.0 * t, image)).events
    pipeline.close()

    assert len(events) == 1
    streamed = events[0].classifier_input
    assert streamed.dtype == trained.images.dtype == np.uint8
    assert streamed.shape == trained.images[0].shape == (SIZE, SIZE, 3)
    assert np.array_equal(streamed, trained.images[0])
    assert (events[0].onset_crop is not None) == needs_onset(kind)
    assert events[0].label  # the model answered on that input


def test_flow_removes_the_head_motion_and_keeps_the_face_movement(smile_frames):
    marker = LazyLandmarker().get()
    settings = AlignmentSettings(output_size=SIZE)
    onset = smile_frames[0]
    onset_points = marker.landmarks(onset, marker.detect(onset)[0])
    onset_crop = align_face(onset, onset_points, settings).image
    # the still face moved as a whole (rotation and scale) under the onset's alignment: no movement of its own
    moved = cv2.warpAffine(
        onset, cv2.getRotationMatrix2D((200.0, 200.0), 1.5, 1.02), onset.shape[1::-1], borderMode=cv2.BORDER_REPLICATE
    )
    moved_crop = align_face(moved, onset_points, settings).image
    grey = [cv2.cvtColor(c, cv2.COLOR_BGR2GRAY) for c in (onset_crop, moved_crop)]
    raw = dense_flow(*grey)
    assert np.abs(remove_head_motion(raw)).mean() < 0.3 * np.abs(raw).mean()

    apex = smile_frames[APEX]
    apex_crop = align_face(apex, marker.landmarks(apex, marker.detect(apex)[0]), settings).image
    still = build_classifier_input("flow", moved_crop, onset_crop)
    smile = build_classifier_input("flow", apex_crop, onset_crop)

    def peak_motion(flow_input: np.ndarray) -> float:  # the lower face, where the smile is, off the crop's edges
        inner = flow_input[SIZE // 2 : -BORDER_PX, BORDER_PX:-BORDER_PX, :2].astype(np.int16)
        return float(np.percentile(np.abs(inner - 128), 95))

    assert peak_motion(smile) > 2.0 * peak_motion(still)


def test_a_mirrored_flow_input_negates_the_horizontal_flow(smile_frames):
    crop_a = cv2.resize(smile_frames[0], (SIZE, SIZE))
    crop_b = cv2.resize(smile_frames[APEX], (SIZE, SIZE))
    flow = build_classifier_input("flow", crop_b, crop_a)
    mirrored = flip_input("flow", flow)
    assert np.array_equal(mirrored[..., 1:], flow[:, ::-1, 1:])
    assert np.array_equal(mirrored[..., 0].astype(np.int16), 256 - flow[:, ::-1, 0].astype(np.int16))


@pytest.mark.parametrize(("model_kind", "stream_kind"), [("flow", "apex"), ("apex", "flow"), ("onset-apex", "flow")])
def test_a_model_of_another_input_is_refused_with_one_line(
    capsys, models, model_kind, stream_kind, tmp_path, smile_frames
):
    _write_frames(tmp_path, smile_frames[:2])
    with pytest.raises(UserInputError, match=f"takes the '{model_kind}' input"):
        Classifier(ClassifierOptions(models[model_kind], "cpu", input_kind=stream_kind))
    code, _, err = run_main(
        capsys, "--source", tmp_path, "--model", models[model_kind], "--input", stream_kind, "--no-display"
    )
    assert_one_line_error(code, err, model_kind, f"--input {model_kind}")


def test_a_model_whose_input_cannot_be_built_is_refused(capsys, tmp_path, smile_frames):
    model = make_tiny_model(tmp_path / "depth.onnx", SIZE, {**model_metadata(SIZE), "input_kind": "depth"})
    _write_frames(tmp_path, smile_frames[:2])
    code, _, err = run_main(capsys, "--source", tmp_path, "--model", model, "--no-display")
    assert_one_line_error(code, err, "'depth'", "cannot build")


def _write_frames(folder: Path, frames: list[np.ndarray]) -> list[Path]:
    paths = []
    for t, frame in enumerate(frames):
        paths.append(folder / f"img{t}.png")
        cv2.imwrite(str(paths[-1]), frame)
    return paths
