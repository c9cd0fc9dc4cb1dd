"""The rule spotter's event decisions (``--spotter rules``, the still-face spotter; the learned one, the default,
has its own tests): blinks rejected, very short and closely spaced micro-expressions found, on stand-in clips
(a real face photo warped with known timing, with head drift, lighting and noise)."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.stages.faces import FaceTracker
from realtime.stages.spotter import REGIONS, SpottedEvent, Spotter, SpotterOptions, event_kind, median_of
from training.synth.scripted import ClipSpec, TrueEvent, blink, frames, macro, micro

RULES = SpotterOptions(method="rules")


def spot(spec: ClipSpec) -> list[SpottedEvent]:
    """Every event (accepted and rejected) the face stage and the spotter report over the clip."""
    tracker, spotter = FaceTracker(), Spotter(RULES)
    events: list[SpottedEvent] = []
    for index, frame in enumerate(frames(spec)):
        faces = tracker.process(frame)
        for face in faces.faces[:1]:
            events += spotter.update(face.face_id, index, index * 1000.0 / spec.fps, faces.gray, face.landmarks).events
    return events


def iou(a: SpottedEvent, b: TrueEvent) -> float:
    inter = min(a.offset_frame, b.offset_frame) - max(a.onset_frame, b.onset_frame) + 1
    union = (a.offset_frame - a.onset_frame + 1) + (b.offset_frame - b.onset_frame + 1) - max(inter, 0)
    return max(inter, 0) / union


def clip(fps: float, duration_ms: float, *motions, seed: int = 5) -> ClipSpec:
    return ClipSpec(
        fps=fps,
        duration_ms=duration_ms,
        size=(320, 240),
        face_width_px=120.0,
        motions=motions,
        drift_px=2.0,
        drift_deg=0.5,
        light_ramp=12.0,
        noise_sigma=2.0,
        seed=seed,
    )


def assert_found(events: list[SpottedEvent], spec: ClipSpec) -> None:
    micros = [e for e in events if e.kind == "micro"]
    truth = spec.truth()
    assert len(micros) == len(truth), (micros, truth)
    for found, true in zip(micros, truth, strict=True):
        assert iou(found, true) >= 0.5, (found, true)  # the MEGC hit rule
        assert abs(found.apex_frame - true.apex_frame) <= 1, (found, true)


@pytest.mark.parametrize("fps", [30.0, 60.0])
def test_blinks_alone_give_no_micro_expression(fps):
    spec = clip(fps, 3600.0, blink(1400.0, 180.0), blink(2500.0, 260.0))
    events = spot(spec)
    assert not [e for e in events if e.kind == "micro"], events
    assert [e.kind for e in events].count("blink") == 2, events


def test_a_two_frame_micro_expression_at_30_fps_is_found():
    # 2 frame periods: still frame, one moved frame (the apex), still frame
    spec = clip(30.0, 2600.0, micro("smile", 1500.0, 2000.0 / 30.0, 2.5, apex_at=0.5))
    truth = spec.truth()[0]
    assert truth.offset_frame - truth.onset_frame == 2
    assert_found(spot(spec), spec)


@pytest.mark.parametrize("fps", [30.0, 60.0])
def test_two_close_micro_expressions_are_both_found(fps):
    # the second starts 250 ms after the first has ended: neither merged into one long event nor lost
    spec = clip(fps, 3200.0, micro("smile", 1400.0, 300.0, 2.0), micro("brow_raise", 1950.0, 260.0, 2.0))
    assert_found(spot(spec), spec)


def _kind(activity: dict[str, float], movement: float = 0.015, duration_ms: float = 200.0, fps: float = 30.0) -> str:
    excess = np.array([activity.get(name, 0.01) for name in REGIONS])
    moves = np.full(len(REGIONS), 0.002)
    moves[[list(REGIONS).index("eye_left"), list(REGIONS).index("eye_right")]] = movement
    return event_kind(RULES, tuple(REGIONS), duration_ms, excess, float(moves.max()), False, 1000.0 / fps, moves)


def test_blink_rule_allows_brows_that_follow_the_lids_but_not_brow_actions():
    blink_like = {"eye_left": 0.6, "eye_right": 0.55, "brow_left": 0.45, "brow_right": 0.5}
    assert _kind(blink_like) == "blink"  # brows dragged along by the lids, less than the eyes
    brow_lowerer = {"eye_left": 0.18, "eye_right": 0.15, "brow_left": 0.3, "brow_right": 0.25}
    assert _kind(brow_lowerer, movement=0.004) == "micro"  # brows lead: a brow action, not a blink
    assert _kind({**blink_like, "mouth_left": 0.5}) == "micro"  # something else moves as much: not a blink
    # the eyes alone but far less than a closing lid moves them (a lid tightener): not a blink
    assert _kind({"eye_left": 0.12, "eye_right": 0.11, "brow_left": 0.08, "brow_right": 0.1}, movement=0.003) == "micro"


def test_durations_allow_one_frame_period():
    activity = {"mouth_left": 0.3, "mouth_right": 0.25}
    assert _kind(activity, duration_ms=2000.0 / 30.0) == "micro"  # 2 frames at 30 fps
    assert _kind(activity, duration_ms=20.0, fps=200.0) == "short"  # 4 frames at 200 fps
    assert _kind(activity, duration_ms=35.0, fps=200.0) == "micro"  # 7 frames: 40 ms within a frame period
    assert _kind(activity, duration_ms=520.0) == "micro"  # 500 ms plus part of a frame period
    assert _kind(activity, duration_ms=700.0) == "macro"


def test_an_event_that_outlives_the_history_while_the_face_is_away_still_closes():
    # a face whose event is under way disappears for longer than the spotter's history reaches back, then
    # returns: the event closes on the frames that remain instead of failing (seen on a realistic clip)
    spec = clip(30.0, 4000.0, micro("smile", 1500.0, 600.0, 6.0))
    tracker, spotter = FaceTracker(), Spotter(RULES, forget_ms=10_000.0)
    images = list(frames(spec))
    events, started = [], None
    for index, image in enumerate(images):
        faces = tracker.process(image)
        signal = spotter.update(0, index, index * 1000.0 / spec.fps, faces.gray, faces.faces[0].landmarks)
        events += signal.events
        if signal.in_event:
            started = index
            break
    assert started is not None
    for later in range(started + 1, len(images)):  # the same face, 5 s later (its frames kept their numbers)
        faces = tracker.process(images[later])
        t_ms = 5000.0 + later * 1000.0 / spec.fps
        events += spotter.update(0, later, t_ms, faces.gray, faces.faces[0].landmarks).events
    assert events and events[-1].offset_frame >= events[-1].onset_frame


@pytest.mark.parametrize("method", ["rules", "learned"])
@pytest.mark.parametrize("fps", [30.0, 60.0])
def test_a_micro_expression_half_a_second_after_an_expression_is_still_found(method, fps):
    # an ordinary smile (1.5 s, 6 px) and, 0.5 s after it has ended, a 2 px micro-expression: the expression must
    # neither be reported as one nor leave the spotter deaf to what follows it
    spec = clip(fps, 5200.0, macro("smile", 1200.0, 1500.0, 6.0), micro("brow_raise", 3200.0, 260.0, 2.0))
    tracker, spotter = FaceTracker(), Spotter(SpotterOptions(method=method))
    events: list[SpottedEvent] = []
    for index, frame in enumerate(frames(spec)):
        faces = tracker.process(frame, index * 1000.0 / fps)
        for face in faces.faces[:1]:
            events += spotter.update(face.face_id, index, index * 1000.0 / fps, faces.gray, face.landmarks).events
    (found,) = [e for e in events if e.kind == "micro"]
    (true,) = spec.truth()
    assert iou(found, true) >= 0.5, (found, true)
    assert abs(found.apex_ms - true.apex_ms) <= 67.0, (found, true)
    (expression,) = spec.truth(("macro",))
    on_it = [e for e in events if e.onset_frame <= expression.offset_frame and e.offset_frame >= expression.onset_frame]
    assert {e.kind for e in on_it} <= {"macro"}, events  # never a micro-expression or a blink
    if method == "rules":
        # the rule spotter sees the expression, and rejects it; the learned spotter's "macro" is only a run it
        # took for a micro-expression and rejected (whether its model takes this smile for one is the model's
        # own business: tests/realtime/stages/test_learned_spotter.py forces such a run and checks the rejection)
        assert on_it, events


@pytest.mark.parametrize("shape", [(1,), (7,), (8,), (4, 61), (4, 60), (30, 4, 57)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_median_of_gives_numpys_median(shape, dtype):
    values = np.random.default_rng(len(shape)).standard_normal(shape).astype(dtype)
    for axis in (None, *range(len(shape))):
        got, want = median_of(values, axis), np.median(values, axis=axis)
        assert np.asarray(got).dtype == np.asarray(want).dtype
        assert np.array_equal(got, want), (shape, axis)
