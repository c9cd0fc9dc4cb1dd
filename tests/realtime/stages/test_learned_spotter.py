"""The learned spotter: its features are causal and scale-free, its model file is checked, and with the committed
model it finds micro-expressions on a still face at their frames, rejects blinks, and reports each event soon
after its offset."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from realtime.core.errors import OptionError, UserInputError
from realtime.stages.faces import FaceTracker
from realtime.stages.spotter import SpottedEvent, Spotter, SpotterOptions
from realtime.stages.spotter.learned import (
    FEATURE_NAMES,
    LAG_MS,
    SATURATED_P,
    SCALES_MS,
    Candidate,
    LearnedFaceSpotter,
    RunDecision,
    comes_back,
)
from realtime.stages.spotter.model import CLASSES, DEFAULT_SPOT_MODEL, SpotModel, load_spot_model
from tests.realtime.stages.test_spotter import clip  # the rule spotter's scripted clip, for both
from training.spotting import FaceMotion, replay_candidates
from training.synth.scripted import ClipSpec, blink, frames, macro, micro

LEARNED = SpotterOptions(method="learned")


def run(spec: ClipSpec, spotter: Spotter | None = None, last_frame: int | None = None) -> list[SpottedEvent]:
    """The events of ``spec``'s clip (up to and with ``last_frame``: a clip cut off there)."""
    tracker, spotter = FaceTracker(), spotter or Spotter(LEARNED)
    events: list[SpottedEvent] = []
    for index, frame in enumerate(frames(spec)):
        if last_frame is not None and index > last_frame:
            break
        faces = tracker.process(frame, index * 1000.0 / spec.fps)
        for face in faces.faces[:1]:
            t_ms = index * 1000.0 / spec.fps
            events += spotter.update(face.face_id, index, t_ms, faces.gray, face.landmarks).events
    return events


def candidates(images: list[np.ndarray], fps: float, model: SpotModel | None = None) -> dict[int, Candidate]:
    """Candidate frame → candidate, from a spotter without a model (as training collects them) or with one (its
    probabilities filled in)."""
    tracker, spotter, out = FaceTracker(), LearnedFaceSpotter(0, SpotterOptions(), model), {}
    for index, image in enumerate(images):
        faces = tracker.process(image, index * 1000.0 / fps)
        spotter.update(index, index * 1000.0 / fps, faces.gray, faces.faces[0].landmarks)
        if spotter.last_candidate is not None:
            out[spotter.last_candidate.frame_index] = spotter.last_candidate
    return out


def test_a_candidates_features_depend_only_on_frames_up_to_the_lag_after_it():
    fps = 30.0
    still = list(frames(clip(fps, 2400.0)))
    moved = list(frames(clip(fps, 2400.0, micro("smile", 1800.0, 300.0, 3.0))))
    first_moved = next(i for i, (a, b) in enumerate(zip(still, moved, strict=True)) if not np.array_equal(a, b))
    a, b = ({i: c.features for i, c in candidates(images, fps).items()} for images in (still, moved))
    lag = round(LAG_MS * fps / 1000.0)
    before = [c for c in a if c + lag < first_moved]
    assert before and all(np.array_equal(a[c], b[c]) for c in before)
    assert any(not np.array_equal(a[c], b[c]) for c in a if c >= first_moved)
    assert all(len(f) == len(FEATURE_NAMES) for f in a.values())


def _face(motion: np.ndarray, fps: float, frames: np.ndarray | None = None) -> FaceMotion:
    """One face's recorded (frames × cells × 2) cell motion of ``frames`` (default: every frame from 0), four
    cells a face part."""
    parts = tuple(np.arange(4 * i, 4 * i + 4) for i in range(motion.shape[1] // 4))
    frames = np.arange(len(motion)) if frames is None else frames
    return FaceMotion(0, frames, frames * 1000.0 / fps, motion, parts, parts)


def _replayed(motion: np.ndarray, fps: float) -> dict[int, Candidate]:
    """Candidate frame → candidate, made from this cell motion of every frame."""
    return {c.frame_index: c for c in replay_candidates([_face(motion, fps)])}


@pytest.mark.parametrize("fps", [30.0, 60.0])
def test_a_steady_drift_stands_out_at_no_scale_and_a_movement_that_comes_and_goes_does(fps):
    # the largest scale looks further back than the lag lets it look ahead: its contrast is taken against the line
    # from before to after, so a cell that moves at a steady speed (a slowly building expression) gives nothing
    n, apex = round(2.0 * fps), round(1.5 * fps)
    speeds = np.random.default_rng(0).normal(0.0, 0.002, (20, 2))  # crop px a ms, each cell its own
    drift = np.arange(n)[:, None, None] * (1000.0 / fps) * speeds[None]
    strongest = [FEATURE_NAMES.index(f"top1@{round(ms)}ms") for ms in SCALES_MS]
    steady = _replayed(drift, fps)
    assert steady and max(float(c.features[strongest].max()) for c in steady.values()) < 1e-3
    bumped = drift.copy()  # one cell rises 2 px and falls back over 200 ms
    t_ms = (np.arange(n) - apex) * 1000.0 / fps
    bumped[:, 7, 1] += 2.0 * np.where(np.abs(t_ms) < 100.0, 0.5 + 0.5 * np.cos(np.pi * t_ms / 100.0), 0.0)
    at_apex = _replayed(bumped, fps)[apex]
    assert (at_apex.features[strongest] > 3.0).all(), at_apex.features[strongest]
    assert comes_back(at_apex.features)


@pytest.mark.parametrize(("pixels", "stands_out"), [(0.02, False), (2.0, True)])
def test_on_a_clean_still_face_only_a_movement_the_measurement_resolves_stands_out(pixels, stands_out):
    # no sensor noise, drift or light change: the cells' own level is next to nothing, and a movement of a few
    # hundredths of a pixel (below what the Lucas-Kanade step resolves) must not look like a large one
    spec = replace(
        clip(30.0, 2400.0, micro("brow_raise", 1500.0, 300.0, pixels)),
        noise_sigma=0.0,
        drift_px=0.0,
        drift_deg=0.0,
        light_ramp=0.0,
    )
    found = candidates(list(frames(spec)), spec.fps).values()
    strongest = max(c.features[FEATURE_NAMES.index("top1@67ms")] for c in found)
    z = float(np.expm1(strongest))  # the strongest cell's contrast over its level
    assert (z > 10.0) if stands_out else (z < 2.0), z


@pytest.mark.parametrize("fps", [15.0, 24.0, 25.0, 30.0, 60.0, 200.0])
def test_every_frame_is_a_candidate_once_at_any_frame_rate(fps):
    # the candidate trails the newest frame by the lag; where the lag is an odd number of half frames (15, 25 fps)
    # rounding to the nearest frame would alternate, and a micro-expression's apex could be skipped
    n = round(3.0 * fps)
    seen = list(_replayed(np.zeros((n, 20, 2)), fps))
    assert seen and seen == list(range(seen[0], seen[-1] + 1))
    lag_frames = n - 1 - seen[-1]  # the last candidate: as close to the newest frame as the lag allows
    assert LAG_MS * fps / 1000.0 - 1e-6 <= lag_frames < LAG_MS * fps / 1000.0 + 1.0


@pytest.mark.parametrize("fps", [15.0, 30.0, 60.0])
def test_a_frame_is_a_candidate_once_across_a_gap_in_the_faces_frames(fps):
    # the face missed for half a second (a hand, a turn): the candidates go on from where they were, once each
    n = round(4.0 * fps)
    kept = np.delete(np.arange(n), np.arange(round(2.0 * fps), round(2.5 * fps)))
    seen = [c.frame_index for c in replay_candidates([_face(np.zeros((len(kept), 20, 2)), fps, kept)])]
    assert seen and seen == sorted(set(seen)) and set(seen) <= set(kept.tolist())


def test_options_name_their_field():
    with pytest.raises(OptionError, match="method") as error:
        SpotterOptions(method="magic")
    assert error.value.option == "method"
    with pytest.raises(OptionError, match="grid"):
        SpotterOptions(grid=64)


def test_a_model_file_is_checked_in_one_line(tmp_path):
    with pytest.raises(UserInputError, match="python -m training spotter"):
        load_spot_model(tmp_path / "missing.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a model")
    with pytest.raises(UserInputError, match="not a spotting model"):
        load_spot_model(tmp_path / "bad.npz")
    rng = np.random.default_rng(0)
    members = tuple(((rng.normal(size=(2, 3)), np.zeros(3)),) for _ in range(2))
    model = SpotModel(("a", "b"), np.zeros(2, np.float32), np.ones(2, np.float32), members, 0.7)
    path = model.save(tmp_path / "other.npz")
    again = load_spot_model(path)
    assert again.threshold == 0.7 and again.classes == CLASSES
    assert np.allclose(again.predict(np.array([1.0, -1.0])), model.predict(np.array([1.0, -1.0])))
    with pytest.raises(UserInputError, match="other spotting features"):
        load_spot_model(path, FEATURE_NAMES)
    with pytest.raises(UserInputError, match=r"missing\.npz"):
        Spotter(replace(LEARNED, model=str(tmp_path / "missing.npz")))


def test_the_committed_model_matches_the_features_this_version_computes():
    model = load_spot_model(DEFAULT_SPOT_MODEL, FEATURE_NAMES)
    assert 0.0 < model.threshold < 1.0
    assert set(model.facts["photos"]).isdisjoint({"astronaut", "einstein"})  # never the benchmark's faces


def assert_found(events: list[SpottedEvent], spec: ClipSpec, apex_frames: int) -> None:
    micros = [e for e in events if e.kind == "micro"]
    truth = spec.truth()
    assert len(micros) == len(truth), (micros, truth)
    for found, true in zip(micros, truth, strict=True):
        inter = min(found.offset_frame, true.offset_frame) - max(found.onset_frame, true.onset_frame) + 1
        union = (found.offset_frame - found.onset_frame + 1) + (true.offset_frame - true.onset_frame + 1) - inter
        assert inter / union >= 0.5, (found, true)  # the MEGC hit rule
        assert abs(found.apex_frame - true.apex_frame) <= apex_frames, (found, true)


SCRIPTED = clip(
    30.0,
    6000.0,
    micro("smile", 1500.0, 300.0, 2.0),
    blink(2400.0, 200.0),
    micro("brow_raise", 3200.0, 260.0, 2.0),
    macro("smile", 4000.0, 1200.0, 6.0),
    seed=3,
)


def _on(events: list[SpottedEvent], spec: ClipSpec, kind: str) -> list[SpottedEvent]:
    """The events whose interval overlaps one of the clip's true events of ``kind``."""
    spans = [(t.onset_frame, t.offset_frame) for t in spec.truth((kind,))]
    return [e for e in events if any(e.onset_frame <= b and e.offset_frame >= a for a, b in spans)]


def test_micro_expressions_are_found_and_a_blink_and_an_expression_rejected():
    events = run(SCRIPTED)
    assert_found(events, SCRIPTED, apex_frames=1)
    assert [e.kind for e in events].count("blink") == 1, events
    # the expression is neither a micro-expression nor a blink: nothing on it, or a rejected expression (macro)
    assert {e.kind for e in _on(events, SCRIPTED, "macro")} <= {"macro"}, events
    assert {e.kind for e in events} <= {"micro", "blink", "macro"}, events
    assert all(e.moved and e.moved[0].share > 0 for e in events if e.kind == "micro")


def test_where_the_model_takes_an_expression_for_a_micro_expression_the_face_not_coming_back_rejects_it(tmp_path):
    # Whether the model's micro probability reaches its threshold on an expression is the model's own business: a
    # model trained on more, or better measured, clips stays under it (the committed one reached 0.8 on this smile's
    # rise, a retrained one 0.78). Where it does reach it, the run must be rejected as an expression that stays,
    # never reported as a micro-expression. So the threshold is set just under the highest probability this model
    # gives any candidate of the expression: a run opens there whatever the model, and the decision must reject it.
    model = load_spot_model(DEFAULT_SPOT_MODEL, FEATURE_NAMES)
    (expression,) = SCRIPTED.truth(("macro",))
    on_it = candidates(list(frames(SCRIPTED)), SCRIPTED.fps, model)
    highest = max(c.p_micro for i, c in on_it.items() if expression.onset_frame <= i <= expression.offset_frame)
    noticing = replace(model, threshold=0.95 * highest).save(tmp_path / "noticing.npz")
    events = _on(run(SCRIPTED, Spotter(replace(LEARNED, model=str(noticing)))), SCRIPTED, "macro")
    assert events and {e.kind for e in events} == {"macro"}, (highest, events)  # its start and end do not come back


@pytest.mark.parametrize("fps", [30.0, 60.0])
def test_blinks_alone_give_no_micro_expression(fps):
    events = run(clip(fps, 3600.0, blink(1400.0, 180.0), blink(2500.0, 260.0)))
    assert not [e for e in events if e.kind == "micro"], events
    assert [e.kind for e in events].count("blink") == 2, events


@pytest.mark.parametrize("fps", [30.0, 60.0])
def test_two_close_micro_expressions_are_both_found_once(fps):
    spec = clip(fps, 3200.0, micro("smile", 1400.0, 300.0, 2.0), micro("brow_raise", 1950.0, 260.0, 2.0))
    assert_found(run(spec), spec, apex_frames=round(60.0 * fps / 1000.0))


@pytest.mark.parametrize("fps", [30.0, 60.0])
@pytest.mark.parametrize("duration_ms", [200.0, 300.0])
def test_an_event_is_reported_within_100_ms_of_its_offset(fps, duration_ms):
    spec = clip(fps, 3000.0, micro("smile", 1500.0, duration_ms, 2.5))
    (true,) = spec.truth()
    (event,) = [e for e in run(spec) if e.kind == "micro"]
    assert event.decided_ms - true.offset_ms <= 100.0, (event, true)  # the live requirement
    assert event.decided_ms - event.offset_ms <= 100.0, event
    # causal: the clip cut off at the frame the event was reported on gives the same event there
    assert event in run(spec, last_frame=event.decided_frame), event
    # and not sooner than its apex candidate's features (the lag after it) allow: the reported apex lies within
    # the smallest scale of that candidate
    assert event.decided_ms >= event.apex_ms + LAG_MS - min(SCALES_MS), event


def _candidates(fps: float, p_micro: list[float], returns: bool = True) -> list[Candidate]:
    """Candidates with these micro probabilities, one a frame; ``returns``: whether the face comes back."""
    features = np.zeros(len(FEATURE_NAMES), np.float32)
    features[FEATURE_NAMES.index(f"net_top@{round(max(SCALES_MS))}ms")] = 0.0 if returns else 2.0
    features[FEATURE_NAMES.index(f"top1@{round(max(SCALES_MS))}ms")] = 1.0
    assert comes_back(features) == returns
    empty = np.zeros((0, 2))
    return [Candidate(i, i * 1000.0 / fps, features, p, 0.0, 67.0, empty, empty[:, 0]) for i, p in enumerate(p_micro)]


def _decide(candidates: list[Candidate], threshold: float = 0.8) -> list[tuple[int, int, str]]:
    """(frame reported on, apex frame, kind) of each event."""
    decision, out = RunDecision(threshold, LEARNED), []
    for candidate in candidates:
        decided = decision.update(candidate)
        if decided is not None:
            out.append((candidate.frame_index, decided.apex.frame_index, decided.kind))
    return out


def test_a_run_is_reported_once_its_apex_has_passed_and_the_rest_of_it_is_spent():
    p = [0.0, 0.0, 0.9, 1.0, 0.95, 0.9, 0.85, 0.0, 0.0, 0.0, 0.0, 0.9, 0.99, 0.9, 0.0, 0.0, 0.0]
    # reported on the candidate after the apex, not at the run's end; the second run is a new event
    assert _decide(_candidates(30.0, p)) == [(4, 3, "micro"), (13, 12, "micro")]
    # at 200 fps the hold is the same time (33 ms, 7 candidates), not one candidate
    slow = [0.0] * 5 + [0.9] * 3 + [1.0] + [0.95] * 10 + [0.0] * 20
    assert _decide(_candidates(200.0, slow)) == [(15, 8, "micro")]


@pytest.mark.parametrize(
    ("next_strength", "reported_on"),
    [
        (0.5, 3),  # the next frame already stands out less (seen at its smaller scales): reported at once
        (1.5, 4),  # it stands out more: wait for its candidate, which may become the apex
        (math.inf, 4),  # not seen yet (under 30 fps): wait
    ],
)
def test_a_sure_apex_is_reported_without_the_hold_once_the_next_frame_is_seen_to_move_less(next_strength, reported_on):
    p = [0.0, 0.0, 0.9, 1.0, 0.9, 0.0, 0.0, 0.0, 0.0]
    candidates = _candidates(30.0, p)
    features = candidates[3].features.copy()
    features[[FEATURE_NAMES.index(f"top1@{round(ms)}ms") for ms in SCALES_MS[:-1]]] = 1.0
    candidates[3] = replace(candidates[3], features=features, next_strength=next_strength)
    assert _decide(candidates) == [(reported_on, 3, "micro")]
    # an apex that is not sure keeps the hold: a more probable candidate may follow
    unsure = [replace(c, p_micro=min(c.p_micro, SATURATED_P - 0.01)) for c in candidates]
    assert _decide(unsure) == [(4, 3, "micro")]


def test_a_one_frame_dip_does_not_split_a_run_and_an_expression_that_stays_waits_for_its_end():
    # the probability dips below the threshold right after the apex, then rises again: one event, reported
    # when the run resumes below its apex (a higher peak there, the first one not sure, becomes the apex)
    assert _decide(_candidates(30.0, [0.0, 0.9, 1.0, 0.5, 0.9, 0.0, 0.0, 0.0, 0.0])) == [(4, 2, "micro")]
    assert _decide(_candidates(30.0, [0.0, 0.85, 0.9, 0.5, 1.0, 0.9, 0.0, 0.0, 0.0])) == [(5, 4, "micro")]
    # a face that does not come back is not reported early: the run ends, as an expression that stays, once the
    # probability has stayed below the threshold for gap_ms (40 ms: the second candidate below it at 30 fps)
    assert _decide(_candidates(30.0, [0.0, 0.9, 1.0, 0.95, 0.9, 0.0, 0.0, 0.0], returns=False)) == [(7, 2, "macro")]


@pytest.mark.parametrize(
    ("p_micro", "strongest", "apex"),
    [
        ([0.0, 0.99, 0.999, 0.995, 0.0, 0.0, 0.0, 0.0], 3, 3),  # saturated: the face that stands out most
        ([0.0, 0.99, 0.999, 0.995, 0.0, 0.0, 0.0, 0.0], 1, 1),
        ([0.0, 0.85, 0.999, 0.9, 0.0, 0.0, 0.0, 0.0], 1, 2),  # a clearly more probable candidate still wins
        ([0.0, 0.88, 0.9, 0.85, 0.0, 0.0, 0.0, 0.0], 1, 2),  # and, none sure, the most probable one
    ],
)
def test_a_saturated_runs_apex_is_its_strongest_movement_not_its_rounding(p_micro, strongest, apex):
    candidates = _candidates(30.0, p_micro)
    top = [FEATURE_NAMES.index(f"top1@{round(ms)}ms") for ms in SCALES_MS]
    for i, candidate in enumerate(candidates):
        features = candidate.features.copy()
        # each at another scale (the best one counts); no two equal
        features[top[i % len(top)]] = 1.5 if i == strongest else 1.2 + 0.05 * i
        candidates[i] = replace(candidate, features=features)
    assert [event[1] for event in _decide(candidates)] == [apex]


@pytest.mark.parametrize(
    ("p_micro", "returns", "strength", "expected"),
    [
        # sure on the rising flank (1), the face peaks and comes back later (2): a micro-expression, apex there
        ([0.0, 0.99, 0.9, 0.85], [False, False, True, False], [1.0, 1.2, 1.5, 1.1], [(2, "micro")]),
        # the later candidates rise and fall less clearly than one that does not come back: an expression starts
        ([0.0, 0.99, 0.9, 0.85], [False, False, True, False], [1.0, 1.2, 1.1, 1.5], [(1, "macro")]),
        # only an earlier candidate comes back (the knee of an expression's onset): still an expression
        ([0.0, 0.9, 0.99, 0.85], [False, True, False, False], [1.0, 1.6, 1.2, 1.1], [(2, "macro")]),
        # nothing comes back: an expression that stays
        ([0.0, 0.99, 0.9, 0.85], [False, False, False, False], [1.0, 1.2, 1.5, 1.1], [(1, "macro")]),
    ],
)
def test_a_run_sure_before_the_face_peaks_is_judged_again_where_it_rises_and_falls_most(
    p_micro, returns, strength, expected
):
    net, top = (FEATURE_NAMES.index(f"{name}@{round(max(SCALES_MS))}ms") for name in ("net_top", "top1"))
    candidates = _candidates(30.0, p_micro + [0.0] * 6)
    for i, (back, z) in enumerate(zip(returns, strength, strict=True)):
        features = candidates[i].features.copy()
        features[top] = z
        features[net] = 0.5 * z if back else 2.0 * z
        assert comes_back(features) == back
        candidates[i] = replace(candidates[i], features=features)
    assert [(event[1], event[2]) for event in _decide(candidates)] == expected
