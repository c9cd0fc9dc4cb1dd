"""realtime.stages.render: the overlay drawn on results of the real pipeline (a scripted clip, no classifier)."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.pipeline import Pipeline
from realtime.stages.capture import Frame
from realtime.stages.render import Renderer, RenderOptions
from training.synth.scripted import ClipSpec, frames, micro

SPEC = ClipSpec(fps=30.0, duration_ms=1200.0, motions=(micro("smile", 600.0, 300.0, 2.0),))


@pytest.fixture(scope="module")
def results():
    """The pipeline's result for every frame of the clip, then (from a pipeline of its own: a tracker holds
    a face it lost for a while) for a frame with no face in it."""
    pipeline, empty = Pipeline(), Pipeline()
    try:
        out = [pipeline.process(Frame(i, i * 1000.0 / SPEC.fps, image)) for i, image in enumerate(frames(SPEC))]
        out.append(empty.process(Frame(0, 0.0, np.full_like(out[0].frame.image, 90))))
    finally:
        pipeline.close()
        empty.close()
    return out


def _draw(results, options=None, fps=None) -> list[np.ndarray]:
    renderer = Renderer(options)
    return [renderer.render(result, fps) for result in results]


def test_the_overlay_is_drawn_on_a_copy_and_marks_the_face(results):
    originals = [r.frame.image.copy() for r in results]
    drawn = _draw(results)
    for result, original, image in zip(results, originals, drawn, strict=True):
        assert image.shape == original.shape and image is not result.frame.image
        assert np.array_equal(result.frame.image, original)  # the source frame is never changed
        assert not np.array_equal(image, original)
    face = results[-2].faces[0].box
    changed = np.any(drawn[-2] != originals[-2], axis=2)
    assert changed[face.top, face.left : face.right].mean() > 0.5  # the box's top edge


def test_the_signal_panel_fills_as_the_history_grows(results):
    drawn = _draw(results[:-1])
    height = drawn[0].shape[0]
    corner = slice(height - 28, height - 10), slice(10, 60)  # the bottom left, where the face's panel goes
    first, last = (float((drawn[i][corner] < results[i].frame.image[corner]).mean()) for i in (0, -1))
    assert last > 0.5  # the panel is dimmed under the plot
    assert last >= first


@pytest.mark.parametrize(
    ("options", "fps", "region"),
    [
        (RenderOptions(landmarks=True), None, "face"),
        (None, 29.97, "top_left"),
    ],
    ids=["landmarks", "fps"],
)
def test_each_option_adds_its_own_marks(results, options, fps, region):
    result = results[-2]
    plain = _draw(results[:-1])[-1]
    extra = _draw(results[:-1], options, fps)[-1]
    points = result.faces[0].landmarks
    (left, top), (right, bottom) = points.min(axis=0).astype(int) - 3, points.max(axis=0).astype(int) + 4
    where = {
        "face": (slice(top, bottom), slice(left, right)),
        "top_left": (slice(0, 30), slice(0, 120)),
    }[region]
    assert np.any(extra[where] != plain[where])
    outside = np.ones(plain.shape[:2], bool)
    outside[where] = False
    assert np.array_equal(extra[outside], plain[outside])


def test_a_frame_without_a_face_says_so(results):
    blank = results[-1]
    assert not blank.faces
    image = _draw([blank])[0]
    changed = np.any(image != blank.frame.image, axis=2)
    assert changed[:40, :100].any() and not changed[40:].any()  # the "no face" line at the top left, only
