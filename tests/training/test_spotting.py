"""Training the learned spotter: labels from the truth, events from probabilities as the stream makes them, the
MEGC scoring, the threshold choice under a false-alarm budget, the held-out faces refused, and the command end
to end on a few short generated clips."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.core.errors import UserInputError
from realtime.stages.spotter.learned import FEATURE_NAMES, LearnedFaceSpotter
from realtime.stages.spotter.model import CLASSES, load_spot_model
from training.cli import main as training_main
from training.spotting import (
    ClipFeatures,
    SpotTrainingSettings,
    choose_threshold,
    collect,
    collect_clip,
    events_from_probabilities,
    label_candidates,
    late_hits,
    leave_one_photo_out,
    load_recording,
    measurement_digest,
    plan_training_clips,
    record_clip,
    replay_clip,
    save_recording,
    score_events,
    threshold_table,
    train_spotter,
)

TRUTH = {
    "events": [
        {"kind": "micro", "onset_frame": 10, "apex_frame": 14, "offset_frame": 18},
        {"kind": "blink", "onset_frame": 30, "apex_frame": 32, "offset_frame": 35},
        {"kind": "macro", "onset_frame": 40, "apex_frame": 50, "offset_frame": 70},
    ]
}


def test_candidates_near_an_apex_take_its_kind_and_the_rest_of_a_micro_expression_is_left_out():
    frames = np.arange(0, 80)
    labels = label_candidates(frames, TRUTH)
    assert set(frames[labels == 1]) == {12, 13, 14, 15, 16}  # a quarter of the 8-frame duration each side
    assert set(frames[labels == -1]) == {10, 11, 17, 18}
    assert set(frames[labels == 2]) == {31, 32, 33}
    assert (labels[40:71] == 0).all()  # an ordinary expression is rest: the spotter must learn to ignore it


def _clip(probabilities: np.ndarray, halfwidth_ms: float = 100.0) -> ClipFeatures:
    n = len(probabilities)
    return ClipFeatures(
        "realistic/clip01",
        "realistic",
        "lenna.png",
        30.0,
        n,
        np.zeros((n, len(FEATURE_NAMES)), np.float32),
        np.zeros(n, np.int8),
        np.arange(n),
        np.full(n, halfwidth_ms, np.float32),
        TRUTH,
        np.full(n, np.inf, np.float32),
    )


def test_events_are_runs_above_the_threshold_with_the_apex_at_the_most_probable_candidate():
    p = np.tile([1.0, 0.0, 0.0], (80, 1))
    p[13:16] = [[0.2, 0.7, 0.1], [0.05, 0.9, 0.05], [0.3, 0.6, 0.1]]
    p[31:34] = [[0.2, 0.1, 0.7], [0.1, 0.1, 0.8], [0.2, 0.1, 0.7]]
    events = events_from_probabilities(_clip(p), p, threshold=0.5)
    # 100 ms at 30 fps: apex ± 3 frames; reported on the candidate after the apex, 100 ms (3 frames) later
    assert events == [(11, 14, 17, "micro", 18), (29, 32, 35, "blink", 36)]
    assert score_events(events, TRUTH) == (1, 1, 1)  # IoU 7/9 with the true micro; the blink is not a spot
    assert events_from_probabilities(_clip(p), p, threshold=0.95) == []
    assert score_events([(40, 50, 60, "micro")], TRUTH) == (0, 1, 1)


@pytest.mark.parametrize(
    ("decided_frame", "fps", "late"),
    [(19, 30.0, 0), (21, 30.0, 0), (22, 30.0, 1), (24, 60.0, 0), (25, 60.0, 1)],  # offset frame 18; 100 ms
)
def test_a_hit_is_late_when_reported_more_than_100_ms_after_its_true_offset(decided_frame, fps, late):
    assert late_hits([(11, 14, 17, "micro", decided_frame)], TRUTH, fps) == late
    # a spot that hits nothing is never a late hit, however late
    assert late_hits([(40, 50, 60, "micro", decided_frame + 100)], TRUTH, fps) == 0


def test_the_threshold_table_gives_each_f1_its_interval_over_the_clips():
    found = np.tile([1.0, 0.0, 0.0], (80, 1))
    found[13:16] = [[0.2, 0.7, 0.1], [0.05, 0.9, 0.05], [0.3, 0.6, 0.1]]  # the micro-expression, found
    missed = np.tile([1.0, 0.0, 0.0], (80, 1))
    clips = [_clip(found), _clip(missed), _clip(found)]
    row = next(r for r in threshold_table(clips, [found, missed, found]) if r["threshold"] == 0.5)
    realistic = row["realistic"]
    assert (realistic["hits"], realistic["spots"], realistic["true"]) == (2, 2, 3)
    low, high = realistic["f1_ci95"]
    assert low < realistic["f1"] < high  # resampling clips: all found (1.0) … none found (0.0)
    assert high == 1.0


def test_the_threshold_is_the_best_f1_that_keeps_the_false_alarm_budget():
    table = [
        {"threshold": 0.5, "realistic": {"f1": 0.6, "false_per_minute": 3.0}, "quiet": {"false_per_minute": 4.0}},
        {"threshold": 0.6, "realistic": {"f1": 0.55, "false_per_minute": 2.0}, "quiet": {"false_per_minute": 0.8}},
        {"threshold": 0.7, "realistic": {"f1": 0.5, "false_per_minute": 0.9}, "quiet": {"false_per_minute": 0.8}},
        {"threshold": 0.9, "realistic": {"f1": 0.3, "false_per_minute": 0.2}, "quiet": {"false_per_minute": 0.0}},
    ]
    assert choose_threshold(table, max_false_per_minute=1.0) == 0.7  # 0.6 keeps the quiet clips' budget only
    assert choose_threshold(table, max_false_per_minute=5.0) == 0.5
    assert choose_threshold(table, max_false_per_minute=0.1) == 0.5  # none keeps it: the best F1


def _labelled(photo: str, micro_at: float, n: int = 200) -> ClipFeatures:
    """A clip whose candidates at x = ``micro_at`` are micro-expressions and at -``micro_at`` rest."""
    x = np.repeat([[micro_at], [-micro_at]], n // 2, axis=0).astype(np.float32)
    labels = np.repeat([1, 0], n // 2).astype(np.int8)
    return ClipFeatures(
        "realistic/c", "realistic", photo, 30.0, n, x, labels, np.arange(n), np.zeros(n), TRUTH, np.zeros(n)
    )


def test_leave_one_photo_out_scores_other_clips_with_a_model_that_never_saw_their_photo():
    training = [_labelled("a.png", 1.0), _labelled("b.png", -1.0)]  # the two photos teach opposite rules
    scored = [_labelled("a.png", 1.0, 10), _labelled("b.png", -1.0, 10)]
    settings = SpotTrainingSettings(members=1, hidden=(8,), epochs=60)
    p_a, p_b = leave_one_photo_out(training, settings, scored)
    assert p_a.shape == (10, len(CLASSES))
    assert p_a[0, 1] < 0.5 and p_b[0, 1] < 0.5  # each scored by the other photo's rule, so each is wrong
    assert len(leave_one_photo_out(training, settings)) == 2  # without ``scored``: the training clips themselves
    with pytest.raises(UserInputError, match=r"c\.png"):
        leave_one_photo_out(training, settings, [_labelled("c.png", 1.0, 10)])


def test_planned_clips_leave_out_the_nuisances_asked_and_only_those():
    settings = SpotTrainingSettings(realistic_clips=4, quiet_clips=2, lab_clips=1)
    plain = plan_training_clips(settings, ["grace_hopper"])
    without = plan_training_clips(settings, ["grace_hopper"], frozenset({"talking", "noise", "occlusion"}))
    assert [kind for kind, _ in plain] == [kind for kind, _ in without] == ["realistic"] * 4 + ["quiet"] * 2 + ["lab"]
    realistic = [spec for kind, spec in without if kind != "lab"]
    assert all(not {"talking", "noise", "occlusion"} & spec.nuisances for spec in realistic)
    assert all({"face_motion", "sway", "compression"} <= spec.nuisances for spec in realistic)
    assert all({"talking", "noise"} <= spec.nuisances for kind, spec in plain if kind != "lab")
    assert repr(plain[-1][1]) == repr(without[-1][1])  # the lab clip is the lab set's, whatever is left out


def test_lab_clips_are_made_at_each_rate_asked_and_the_first_rates_are_a_one_rate_plans():
    one = plan_training_clips(SpotTrainingSettings(realistic_clips=0, quiet_clips=0, lab_clips=2), ["grace_hopper"])
    both = plan_training_clips(
        SpotTrainingSettings(realistic_clips=0, quiet_clips=0, lab_clips=2, lab_fps=(30.0, 60.0)), ["grace_hopper"]
    )
    assert [spec.fps for _, spec in both] == [30.0, 30.0, 60.0, 60.0]
    assert [repr(spec) for _, spec in both[:2]] == [repr(spec) for _, spec in one]  # the cache still serves them
    assert len({(spec.name, spec.seed) for _, spec in both}) == 4  # each clip its own cache file


def test_clips_of_one_name_and_seed_at_two_rates_are_cached_apart(tmp_path):
    # --lab-fps 25 30 gives its 25 fps clips the names and seeds of a 30 fps-only plan's: the cache must never hand
    # one rate's candidates to the other
    def lab(rates: tuple[float, ...]) -> tuple[str, object]:
        settings = SpotTrainingSettings(realistic_clips=0, quiet_clips=0, lab_clips=2, lab_fps=rates, seconds=2.0)
        return plan_training_clips(settings, ["lenna"])[0]

    at_25, at_30 = lab((25.0, 30.0)), lab((30.0,))
    assert (at_25[1].name, at_25[1].seed) == (at_30[1].name, at_30[1].seed) and at_25[1].fps == 25.0
    first = collect([at_25], 1, False, tmp_path, 2.0)[0]
    second = collect([at_30], 1, False, tmp_path, 2.0)[0]
    assert (first.fps, second.fps) == (25.0, 30.0) and len(list(tmp_path.glob("*.npz"))) == 2


def test_the_benchmarks_held_out_faces_are_refused():
    with pytest.raises(UserInputError, match="held-out"):
        train_spotter(SpotTrainingSettings(realistic_clips=2, quiet_clips=0, lab_clips=0), ["lenna", "astronaut"])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("realistic_clips", -1),
        ("seconds", 1.0),
        ("epochs", 0),
        ("lab_clips", 2.5),
        ("threshold", 1.0),
        ("threshold", 0.0),
        ("lab_fps", ()),
        ("lab_fps", (30.0, 10.0)),
    ],
)
def test_settings_refuse_bad_values(field, value):
    with pytest.raises(UserInputError):
        SpotTrainingSettings(**{field: value})


@pytest.mark.slow
@pytest.mark.parametrize("threshold", [None, 0.85])
def test_the_command_writes_a_model_the_spotter_loads(tmp_path, capsys, threshold):
    # without --threshold the rule chooses it on the clips; with it, the file takes it and keeps the rule's choice
    out = tmp_path / "spotter.npz"
    code = training_main(
        [
            "spotter",
            "--out",
            str(out),
            "--clips",
            "3",
            "--quiet-clips",
            "1",
            "--lab-clips",
            "1",
            "--seconds",
            "4",
            "--epochs",
            "2",
            "--photos",
            "lenna,takeo",
            "--no-progress",
            "--threads",
            "1",
            *([] if threshold is None else ["--threshold", str(threshold)]),
        ]
    )
    assert code == 0
    model = load_spot_model(out, FEATURE_NAMES)
    assert model.classes == CLASSES
    facts = model.facts
    assert facts["photos"] == ["lenna", "takeo"] and facts["clips"] == {"realistic": 3, "quiet": 1, "lab": 1}
    assert facts["threshold"] == model.threshold
    table = [row["threshold"] for row in facts["leave_one_photo_out"]]  # the table travels with the weights
    assert facts["threshold_by_the_rule_on_these_clips"] in table
    out_text = capsys.readouterr().out
    if threshold is None:
        assert model.threshold == facts["threshold_by_the_rule_on_these_clips"] and "chosen)" in out_text
    else:
        assert model.threshold == threshold and "set by --threshold" in out_text


def test_the_command_refuses_a_bad_argument_in_one_line(capsys):
    assert training_main(["spotter", "--workers", "0", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--workers" in err[0]


@pytest.mark.parametrize(
    "package, module",
    [("training.synth", "mesh.py"), ("realtime.stages.faces", "process.py"), ("realtime.core", "landmarks.py")],
)
def test_cached_candidates_are_not_reused_once_the_code_that_makes_them_changes(tmp_path, monkeypatch, package, module):
    # the clips' pixels come from training/synth, the faces from the face stage and the detection it calls: a
    # fix in any of their modules must collect the candidates again
    import importlib

    from training.spotting import _code_digest

    fake = tmp_path / package.replace(".", "_")
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / module).write_text("STEP = 1\n")
    monkeypatch.setattr(importlib.import_module(package), "__file__", str(fake / "__init__.py"))
    before = _code_digest()
    assert _code_digest() == before
    (fake / module).write_text("STEP = 2\n")
    assert _code_digest() != before


def test_replaying_a_clips_recorded_cell_motion_gives_the_streams_own_candidates(tmp_path):
    # benchmarks/spotting_replay_bench.py judges a feature change on recorded motion: through a save and a load,
    # the replay must give exactly the candidates the stream gave, and recording must not change them
    settings = SpotTrainingSettings(realistic_clips=2, quiet_clips=0, lab_clips=0, seconds=3.0)
    job = plan_training_clips(settings, ["lenna"])[0]
    clip, faces = record_clip(job)
    assert len(clip.features) > 10 and faces and faces[0].motion.shape[::2] == (len(faces[0].frames), 2)
    save_recording(clip, faces, tmp_path / "clip.npz")
    loaded, loaded_faces = load_recording(tmp_path / "clip.npz")
    replayed = replay_clip(loaded, loaded_faces)
    streamed = collect_clip(job)
    for name in ("features", "frames", "labels", "halfwidth_ms"):
        np.testing.assert_array_equal(getattr(replayed, name), getattr(clip, name))
        np.testing.assert_array_equal(getattr(streamed, name), getattr(clip, name))
    assert replayed.truth == clip.truth and replayed.name == clip.name


def test_lossless_reading_measures_the_rendered_frames_and_is_cached_apart(tmp_path):
    # without compression a clip is still written as Motion JPEG (lossy); the benches' --lossless hands the
    # spotter the rendered frames instead, and those candidates must never be mistaken for the others in the cache
    settings = SpotTrainingSettings(realistic_clips=2, quiet_clips=0, lab_clips=0, seconds=3.0)
    job = plan_training_clips(settings, ["lenna"], frozenset({"compression"}))[0]
    written = collect([job], 1, False, tmp_path, settings.seconds)[0]
    lossless = collect([job], 1, False, tmp_path, settings.seconds, lossless=True)[0]
    assert len(list(tmp_path.glob("*.npz"))) == 2
    np.testing.assert_array_equal(lossless.frames, written.frames)
    assert not np.array_equal(lossless.features, written.features)
    again = collect([job], 1, False, tmp_path, settings.seconds, lossless=True)[0]
    np.testing.assert_array_equal(again.features, lossless.features)


def test_recorded_motion_outlives_a_feature_change_but_not_a_measurement_change(monkeypatch):
    before = measurement_digest()

    def features_changed(self, t_c):
        return None

    monkeypatch.setattr(LearnedFaceSpotter, "_candidate", features_changed)
    assert measurement_digest() == before

    def measurement_changed(self, face):
        return face

    monkeypatch.setattr(LearnedFaceSpotter, "_cell_motion", measurement_changed)
    assert measurement_digest() != before
