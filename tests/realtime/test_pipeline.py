"""The stage chain on a generated clip with known micro-expressions: frame → faces → spotter → classifier,
one frame at a time, each micro-expression reported once, on the frame that decided it, and named."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.pipeline import STAGES, MicroExpression, Pipeline
from realtime.schema import EVENT_KEYS
from realtime.stages.capture import Frame
from realtime.stages.classify import Classifier, ClassifierOptions
from training.synth.au_clips import au_clip

FPS = 30.0
ACTIONS = [("12",), ("1", "2"), ("4",)]


@pytest.fixture(scope="module")
def clip():
    renderer = au_clip(ACTIONS, fps=FPS)
    return renderer.spec.events, list(renderer.frames())


def run(frames: list[np.ndarray], classifier: Classifier | None) -> tuple[list[MicroExpression], list]:
    pipeline = Pipeline(classifier=classifier)
    events, results = [], []
    try:
        for index, image in enumerate(frames):
            result = pipeline.process(Frame(index, index * 1000.0 / FPS, image))
            assert all(event.decided_frame == index for event in result.events), "reported on another frame"
            events += result.events
            results.append(result)
    finally:
        pipeline.close()
    return events, results


@pytest.fixture(scope="module")
def named(clip, tiny_onnx_model):
    return run(clip[1], Classifier(ClassifierOptions(tiny_onnx_model, "cpu", threads=1)))


def test_each_micro_expression_is_reported_once_with_its_apex_inside_it(clip, named):
    truth, _ = clip
    events, _ = named
    assert len(events) == len(truth), [(e.onset_frame, e.apex_frame, e.offset_frame) for e in events]
    for event, true in zip(sorted(events, key=lambda e: e.apex_frame), truth, strict=True):
        assert true.onset_frame <= event.apex_frame <= true.offset_frame, (event, true)
        assert event.onset_frame <= event.apex_frame <= event.offset_frame <= event.decided_frame
        assert event.onset_ms == pytest.approx(event.onset_frame * 1000.0 / FPS)


def test_an_event_is_the_spotters_event_named_by_the_classifier(named, tiny_onnx_model):
    events, _ = named
    classes = list(Classifier(ClassifierOptions(tiny_onnx_model, "cpu", threads=1)).info.classes)
    for event in events:
        assert event.kind == "micro" and event.face == event.face_id == 0
        assert event.label in classes and list(event.probabilities) == classes
        assert event.confidence == pytest.approx(max(event.probabilities.values()))
        assert event.apex_crop is not None and event.apex_crop.shape == (64, 64, 3)
        assert event.moved, "the regions that moved are named"
        assert list(event.to_json()) == list(EVENT_KEYS)


def test_without_a_classifier_events_are_spotted_but_not_named(clip, named):
    events, results = run(clip[1], None)
    assert [e.apex_frame for e in events] == [e.apex_frame for e in named[0]]
    assert all(e.label == "" and e.probabilities == {} and e.apex_crop is None for e in events)
    assert all(set(r.stage_ms) <= set(STAGES) for r in results)
    assert all(len(r.faces) == 1 and len(r.signals) == 1 for r in results)


def test_the_named_crop_is_the_classifiers_crop_of_the_apex_frame(clip, named, tiny_onnx_model):
    # the learned spotter decides an apex after the fact; its crop is made from the frame as it came (kept for a
    # moment, cropped only when asked for) and must be exactly the crop of that frame's face
    classifier = Classifier(ClassifierOptions(tiny_onnx_model, "cpu", threads=1))
    events, results = named
    assert events
    for event in events:
        apex = results[event.apex_frame]
        expected = classifier.crop(clip[1][event.apex_frame], apex.faces[0].landmarks)
        assert np.array_equal(event.apex_crop, expected), event.apex_frame


def test_what_is_kept_for_a_face_is_let_go_once_the_spotter_has_forgotten_it(clip, tiny_onnx_model):
    # a long video with many people must not grow: a face that left is forgotten by the spotter after its
    # forget_ms, and the pipeline then lets go of the frames and crops it kept for the classifier
    pipeline = Pipeline(classifier=Classifier(ClassifierOptions(tiny_onnx_model, "cpu", threads=1)))
    blank = np.zeros_like(clip[1][0])
    fed = 0

    def feed(images: list[np.ndarray]) -> None:
        nonlocal fed
        for image in images:
            pipeline.process(Frame(fed, fed * 1000.0 / FPS, image))
            fed += 1

    try:
        feed(clip[1][:45])
        assert pipeline.kept_faces == {0}
        feed([blank] * int(pipeline.spotter.forget_ms / 1000.0 * FPS))  # just under forget_ms without the face
        assert pipeline.kept_faces == {0}, "kept while the face may still come back"
        feed([blank] * 3)
        assert pipeline.kept_faces == set()
    finally:
        pipeline.close()
