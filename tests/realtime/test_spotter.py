"""The streaming spotter's event decisions: blinks rejected, very short and closely spaced micro-expressions
found, talking and expressions not reported and not hiding the micro-expressions around them, the moved
regions and directions named, on stand-in clips (a real face photo warped with known timing, with head drift,
lighting and noise)."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.capture import Frame
from realtime.pipeline import Pipeline
from realtime.spotter import DIRECTIONS, REGIONS, FaceSpotter, SpottedEvent, Spotter
from realtime.tracking import FaceTracker
from training.synth.scripted import ClipSpec, Motion, TrueEvent, blink, frames, macro, micro


def spot(spec: ClipSpec) -> list[SpottedEvent]:
    """Every event (accepted and rejected) the face stage and the spotter report over the clip."""
    tracker, spotter = FaceTracker(), Spotter()
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
    spotter = FaceSpotter(0)
    spotter._region_names = tuple(REGIONS)
    excess = np.array([activity.get(name, 0.01) for name in REGIONS])
    moves = np.full(len(REGIONS), 0.002)
    moves[[list(REGIONS).index("eye_left"), list(REGIONS).index("eye_right")]] = movement
    return spotter._kind(duration_ms, excess, float(moves.max()), False, 1000.0 / fps, moves)


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


def pipeline_run(spec: ClipSpec) -> tuple[list[SpottedEvent], list]:
    """The pipeline (face stage, spotter; no classifier) over the clip: micro-expressions and rejected rises
    as the spotter reported them, and every frame's spotting signals."""
    pipeline = Pipeline()
    events: list[SpottedEvent] = []
    signals = []
    for index, image in enumerate(frames(spec)):
        result = pipeline.process(Frame(index, index * 1000.0 / spec.fps, image))
        signals += result.signals
        events += [e for s in result.signals for e in s.events]
    pipeline.close()
    return events, signals


def talking(onset_ms: float, offset_ms: float, pixels: float = 3.0) -> tuple[Motion, ...]:
    """Speech-like mouth cycles: chin raises and lip-corner pulls of 180–300 ms, back to back (about 4 Hz)."""
    cycles, t_ms, i = [], onset_ms, 0
    while t_ms < offset_ms:
        duration = 180.0 + 40.0 * (i % 4)
        action = ("chin_raise", "lip_corner_depressor")[i % 2]
        cycles.append(Motion(action, t_ms, t_ms + 0.5 * duration, t_ms + duration, pixels, 0.0, "talk"))
        t_ms += duration + 20.0
        i += 1
    return tuple(cycles)


@pytest.mark.parametrize(
    "fps",
    [
        30.0,
        pytest.param(
            60.0,
            marks=pytest.mark.xfail(
                strict=True, reason="known failure: at 60 fps the brow raise after the smile is rejected as motion"
            ),
        ),
    ],
)
def test_an_expression_does_not_hide_the_micro_expression_half_a_second_after_it(fps):
    # a smile (1.2 s, held) ends at 2.6 s; a brow raise starts 0.5 s later
    spec = clip(fps, 4000.0, macro("smile", 1400.0, 1200.0, 7.0), micro("brow_raise", 3100.0, 260.0, 2.0))
    events, _ = pipeline_run(spec)
    assert_found(events, spec)
    assert [e.kind for e in events if e.onset_ms < 2700.0] and all(
        e.kind != "micro" for e in events if e.onset_ms < 2700.0
    )


@pytest.mark.parametrize("fps", [30.0, 60.0])
def test_talking_is_not_reported_and_the_micro_expressions_around_it_are(fps):
    motions = (
        micro("brow_raise", 1600.0, 260.0, 2.0),
        *talking(2300.0, 4300.0),
        micro("smile", 4900.0, 300.0, 2.0),
    )
    spec = clip(fps, 5600.0, *motions)
    events, signals = pipeline_run(spec)
    assert_found(events, spec)
    during_talk = [e for e in events if 2300.0 <= e.apex_ms <= 4400.0]
    assert during_talk and all(e.kind != "micro" for e in during_talk), during_talk
    for event in events:  # every event has a real onset: before its apex, and in the stream's frames
        assert 0 <= event.onset_frame < event.apex_frame <= event.offset_frame <= event.decided_frame
        assert event.decided_ms - event.offset_ms <= 100.0 + 1e-6
    assert all(set(s.region_motion) == set(REGIONS) for s in signals[60:])


@pytest.mark.parametrize(
    ("action", "regions", "directions"),
    [
        ("brow_raise", {"brow_left", "brow_right"}, {"up"}),
        ("brow_lower", {"brow_left", "brow_right"}, {"down"}),
        ("smile", {"mouth_left", "mouth_right"}, {"outward", "up"}),
        ("lip_corner_depressor", {"mouth_left", "mouth_right", "upper_lip"}, {"down"}),
        ("chin_raise", {"chin", "lower_lip", "upper_lip"}, {"up"}),
    ],
)
def test_moved_names_the_regions_and_directions_of_the_action(action, regions, directions):
    spec = clip(30.0, 2600.0, micro(action, 1500.0, 300.0, 2.5))
    micros = [e for e in spot(spec) if e.kind == "micro"]
    assert len(micros) == 1, micros
    moved = micros[0].moved
    assert moved and moved[0].region in regions and moved[0].direction in directions, moved
    assert [m.share for m in moved] == sorted((m.share for m in moved), reverse=True)
    assert sum(m.share for m in moved) <= 1.0 + 1e-9
    assert all(m.region in REGIONS and m.direction in (*DIRECTIONS, "") for m in moved)
