"""The realistic spotting set (training/synth/realistic.py, mesh.py, camera.py): truth, nuisances, files."""

from __future__ import annotations

import argparse
import json
import re

import cv2
import numpy as np
import pytest

from realtime.core.errors import UserInputError
from training.synth import camera
from training.synth import cli as synth_cli
from training.synth.faces import load_face_photos
from training.synth.mesh import FaceMesh, barycentric
from training.synth.photos import HELD_OUT_PHOTOS, PHOTO_NAMES
from training.synth.realistic import (
    LOW_RESOLUTIONS,
    NUISANCES,
    TUNING_PHOTOS,
    RealisticRenderer,
    RealisticSettings,
    parse_nuisances,
    photo_files,
    plan_realistic_clips,
    resolve_photos,
    write_realistic_videos,
)
from training.synth.videos import INDEX_NAME, read_video

SMALL = (320, 240)
FPS = 15.0


@pytest.fixture(scope="module")
def photos():
    return load_face_photos(photo_files(("grace_hopper",)))


def renderer(photos, nuisances: str | frozenset, seed: int = 1, index: int = 0, **options) -> RealisticRenderer:
    chosen = parse_nuisances(nuisances) if isinstance(nuisances, str) else nuisances
    settings = RealisticSettings(
        fps=FPS,
        frame_size=SMALL,
        seconds=options.pop("seconds", 8.0),
        nuisances=chosen,
        sometimes=frozenset(),
        **options,
    )
    return RealisticRenderer(plan_realistic_clips(photos, settings, seed, index + 1)[index])


def own_motion(r: RealisticRenderer) -> np.ndarray:
    """Per frame, the largest movement of the face itself (head motion removed), in pixels."""
    return np.linalg.norm(r.landmarks - r.rest_landmarks, axis=2).max(axis=1)


# --- ground truth matches what was rendered ------------------------------------------------------------------------


def test_micro_expressions_move_the_landmarks_only_where_the_truth_says(photos):
    r = renderer(photos, "none", micro=2)
    truth = r.truth()
    moved = own_motion(r)
    inside = np.zeros(len(moved), bool)
    micro = [e for e in truth["events"] if e["kind"] == "micro"]
    assert len(micro) == 2 and all(not e["during_motion"] for e in micro)
    for event in micro:
        on, apex, off = event["onset_frame"], event["apex_frame"], event["offset_frame"]
        span = moved[on : off + 1]
        assert on + int(np.argmax(span)) == apex and span[0] < 1e-9 and span[-1] < 1e-9
        assert moved[apex] == pytest.approx(event["peak_shift_px"], rel=0.05)
        assert 0.5 <= event["peak_shift_px"] <= 8.0
        inside[on : off + 1] = True
    assert np.all(moved[~inside] < 1e-9)
    frames = list(r.frames())
    first = frames[0].astype(np.int16)
    change = np.array([np.abs(f.astype(np.int16) - first).mean() for f in frames])
    for event in micro:  # in the pixels too: the frame differs most from the neutral one at the apex
        on, off = event["onset_frame"], event["offset_frame"]
        assert on + int(np.argmax(change[on : off + 1])) == event["apex_frame"]
        assert change[on] == 0 and change[off] == 0


def test_micro_expressions_follow_the_head(photos):
    """During a head turn the micro-expression's movement is carried by the turned face: the landmarks move
    from where the head alone would put them, at the micro-expression's frames only."""
    r = renderer(photos, "head_turns", micro=2, during_share=1.0, seed=4)
    truth = r.truth()
    during = [e for e in truth["events"] if e["kind"] == "micro" and "head_turns" in e["during"]]
    assert during, truth["events"]
    yaw = np.array(truth["head_pose"]["yaw_deg"])
    moved = own_motion(r)
    for event in during:
        assert abs(yaw[event["apex_frame"]]) > 3.0
        assert moved[event["apex_frame"]] > 0.5 and moved[event["onset_frame"]] < 1e-9


def test_head_pose_is_recorded_and_rendered_with_parallax(photos):
    r = renderer(photos, "head_turns", micro=1, seed=2, seconds=14.0)
    truth = r.truth()
    pose = truth["head_pose"]
    n = truth["frame_count"]
    assert len(pose["yaw_deg"]) == len(pose["pitch_deg"]) == len(pose["roll_deg"]) == n
    yaw = np.array(pose["yaw_deg"])
    turns = [s for s in truth["nuisances"]["head_turns"]["spans"] if s["kind"] == "turn"]
    assert turns and np.abs(yaw).max() <= 15.0 + 1e-9
    for span in turns:
        inside = yaw[span["start_frame"] : span["end_frame"] + 1]
        assert np.abs(inside).max() == pytest.approx(abs(span["yaw_deg"]), abs=0.05)
    assert np.all(
        np.abs(np.delete(yaw, np.r_[[i for s in turns for i in range(s["start_frame"], s["end_frame"] + 1)]])) < 1e-9
    )
    # parallax: the nose tip (in front) swings further than the jaw's corners (behind) across the turn
    i = int(np.argmax(np.abs(yaw)))
    shift = r.landmarks[i] - r.landmarks[0]
    sign = np.sign(yaw[i])
    assert sign * shift[30, 0] - sign * 0.5 * (shift[0, 0] + shift[16, 0]) > 0.02 * r.iod
    assert min(r.mesh.min_triangle_area(v) for v in r.vertices) > 0.0  # the mesh never folds


@pytest.mark.parametrize("name", ["talking", "expressions", "occlusion", "leave_frame", "exposure", "white_balance"])
def test_each_nuisance_is_switchable_and_recorded_with_its_spans(photos, name):
    r = renderer(photos, name, micro=1, seconds=10.0, seed=3)
    truth = r.truth()
    for other, item in truth["nuisances"].items():
        assert item["on"] == (other == name), other
        if other != name and other != "motion_blur":
            assert item["spans"] == [], other
    spans = truth["nuisances"][name]["spans"]
    assert spans and all(0 <= s["start_frame"] <= s["end_frame"] < truth["frame_count"] for s in spans)
    for span in spans:
        assert span["start_ms"] == pytest.approx(span["start_frame"] * 1000.0 / FPS, abs=1e-3)
    if name in ("exposure", "white_balance"):
        gains = r.spec.gains
        assert np.ptp(gains, axis=0).max() > 0.02
    if name == "talking":  # the jaw and lips move inside the phrases and nowhere else
        moved = own_motion(r)
        phrase = np.zeros(len(moved), bool)
        for span in spans:
            phrase[span["start_frame"] : span["end_frame"] + 1] = True
        micro = np.zeros(len(moved), bool)
        for event in truth["events"]:
            micro[event["onset_frame"] : event["offset_frame"] + 1] = True
        assert moved[phrase].max() > 2.0 and np.all(moved[~phrase & ~micro] < 1e-9)
    if name == "expressions":
        assert any(e["kind"] == "macro" for e in truth["events"])
    if name == "occlusion":
        span = spans[0]
        middle = (span["start_frame"] + span["end_frame"]) // 2
        assert r.covered[middle, 62] and r.covered[middle, 66] and not r.covered[middle, 37]
        assert not r.covered[: span["start_frame"]].any()
        frames = list(r.frames())
        mouth = r.landmarks[middle, 48:68].astype(int)
        x0, y0 = mouth.min(axis=0)
        x1, y1 = mouth.max(axis=0) + 1
        hand = frames[middle][y0:y1, x0:x1].astype(int)
        bare = frames[span["start_frame"] - 1][y0:y1, x0:x1].astype(int)
        assert np.abs(hand - bare).mean() > 5.0  # the mouth is hidden under the hand
    if name == "leave_frame":
        visible = r.visible.mean(axis=1)
        assert visible.min() == 0.0 and visible[0] == 1.0 and visible[-1] == 1.0
        out = [s for s in spans if s["kind"] == "face out of the frame"]
        assert out and visible[out[0]["start_frame"]] < 0.5


def test_micro_expressions_during_motion_are_flagged_by_the_spans(photos):
    r = renderer(photos, "talking,expressions,head_turns", micro=4, during_share=0.5, seconds=20.0, seed=11)
    truth = r.truth()
    spans = {k: v["spans"] for k, v in truth["nuisances"].items()}
    micro = [e for e in truth["events"] if e["kind"] == "micro"]
    assert any(e["during_motion"] for e in micro) and any(not e["during_motion"] for e in micro)
    for event in micro:
        overlapping = sorted(
            name
            for name in ("talking", "head_turns", "expressions")
            for s in spans[name]
            if s["start_frame"] <= event["offset_frame"] and event["onset_frame"] <= s["end_frame"]
        )
        assert event["during"] == sorted(set(overlapping))
    assert truth["micro_during_motion"] == sum(e["during_motion"] for e in micro)


def test_the_face_never_stops_moving_a_little(photos):
    r = renderer(photos, "face_motion", micro=1)
    motion = r.truth()["face_motion"]
    assert 0.2 < motion["p50_px_per_100ms"] < motion["p95_px_per_100ms"] < 6.0
    assert own_motion(r).min() > 0.0


def test_small_face_and_low_resolution(photos):
    small = renderer(photos, "small_face", micro=1, seconds=4.0)
    truth = small.truth()
    assert 40.0 <= truth["face_width_px"] <= 80.0
    assert np.ptp(small.landmarks[0, :, 0]) == pytest.approx(truth["face_width_px"], rel=0.1)
    frame = next(small.frames())
    assert frame.shape == (SMALL[1], SMALL[0], 3)
    low = renderer(photos, "low_resolution", micro=1, seconds=4.0)
    assert tuple(low.truth()["size"]) in LOW_RESOLUTIONS
    assert next(low.frames()).shape[:2] == tuple(low.truth()["size"])[::-1]


def test_mesh_is_the_identity_at_rest(photos):
    r = renderer(photos, "none", micro=1, seconds=4.0)
    mesh = FaceMesh(r.neutral, SMALL)
    still = mesh.project(np.zeros((1, len(mesh.face_points), 2)), [0.0], [0.0], [0.0], [1.0], np.zeros((1, 2)))
    assert np.abs(still[0] - mesh.source).max() < 1e-9
    assert np.abs(mesh.warp(r.image, still[0]).astype(int) - r.image).mean() < 0.5


def test_barycentric_weights_rebuild_points_inside_the_mesh_and_clamp_outside(photos):
    r = renderer(photos, "none", micro=1, seconds=4.0)
    mesh = FaceMesh(r.neutral, SMALL)
    rng = np.random.default_rng(3)
    inside = rng.uniform([10.0, 10.0], [SMALL[0] - 10.0, SMALL[1] - 10.0], (200, 2))
    vertices, weights = barycentric(inside, mesh.source, mesh.triangles)
    assert np.allclose(weights.sum(axis=1), 1.0) and (weights >= 0.0).all()
    assert np.abs(np.einsum("pk,pkc->pc", weights, mesh.source[vertices]) - inside).max() < 1e-6
    corner, corner_weights = barycentric(mesh.source[:3], mesh.source, mesh.triangles)  # a vertex is all itself
    assert np.allclose(np.take_along_axis(corner_weights, np.argmax(corner_weights, axis=1)[:, None], 1), 1.0)
    assert (np.take_along_axis(corner, np.argmax(corner_weights, axis=1)[:, None], 1).ravel() == [0, 1, 2]).all()
    outside, outside_weights = barycentric(np.array([[-50.0, -50.0]]), mesh.source, mesh.triangles)
    assert (outside_weights >= 0.0).all() and outside_weights.sum() == pytest.approx(1.0)
    clamped = outside_weights[0] @ mesh.source[outside[0]]  # onto the nearest triangle, inside the frame's mesh
    assert (clamped >= -1e-6).all() and (clamped <= np.array(SMALL) - 1 + 1e-6).all()


# --- files, determinism, H.264 -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("realistic")
    settings = RealisticSettings(fps=FPS, frame_size=SMALL, seconds=5.0, micro=1)
    a = write_realistic_videos(
        out / "a", photos=photo_files(("grace_hopper", "lenna")), settings=settings, seed=5, n_clips=2
    )
    b = write_realistic_videos(
        out / "b", photos=photo_files(("grace_hopper", "lenna")), settings=settings, seed=5, n_clips=2
    )
    c = write_realistic_videos(
        out / "c", photos=photo_files(("grace_hopper", "lenna")), settings=settings, seed=6, n_clips=1
    )
    return a, b, c


def test_h264_clips_decode_with_opencv(written):
    index = written[0]
    data = json.loads(index.path.read_text())
    assert data["settings"]["set"] == "realistic"
    for clip in index.clips:
        truth = json.loads((index.out / clip["truth"]).read_text())
        if "compression" not in truth["nuisances"] or not truth["nuisances"]["compression"]["on"]:
            continue
        assert clip["video"].endswith(".mp4")
        capture = cv2.VideoCapture(str(index.out / clip["video"]))
        assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS)
        fourcc = int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode(errors="replace").lower()
        capture.release()
        assert fourcc in ("avc1", "h264")
        frames = list(read_video(index.out / clip["video"]))
        assert len(frames) == truth["frame_count"] and frames[0].shape[:2] == tuple(truth["size"])[::-1]
        stored = np.load(index.out / clip["landmarks"])
        assert stored["landmarks"].shape == (truth["frame_count"], 68, 2)


def test_same_seed_same_truth_and_frames(written):
    a, b, c = written
    for name in (INDEX_NAME, "clip01.json", "clip02.json"):
        assert (a.out / name).read_bytes() == (b.out / name).read_bytes()
    assert (a.out / "clip01.json").read_bytes() != (c.out / "clip01.json").read_bytes()
    for clip in a.clips:
        first, second = read_video(a.out / clip["video"]), read_video(b.out / clip["video"])
        assert all(np.array_equal(x, y) for x, y in zip(first, second, strict=True))


def test_first_clip_does_not_depend_on_how_many_follow(photos):
    settings = RealisticSettings(fps=FPS, frame_size=SMALL, seconds=6.0)
    one = plan_realistic_clips(photos, settings, 8, 1)[0]
    three = plan_realistic_clips(photos, settings, 8, 3)[0]
    assert RealisticRenderer(one).truth() == RealisticRenderer(three).truth()


def test_ffmpeg_missing_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(camera.shutil, "which", lambda name: None)
    with pytest.raises(UserInputError, match="ffmpeg") as error:
        write_realistic_videos(tmp_path / "x", photos=photo_files(("grace_hopper",)))
    assert "\n" not in str(error.value) and not (tmp_path / "x").exists()


# --- photos, options, the command line ----------------------------------------------------------------------------


def test_held_out_photos_are_never_in_the_tuning_set():
    assert set(TUNING_PHOTOS).isdisjoint(HELD_OUT_PHOTOS)
    assert set(TUNING_PHOTOS) | set(HELD_OUT_PHOTOS) == set(PHOTO_NAMES)
    assert set(resolve_photos("tuning")) == set(TUNING_PHOTOS)
    assert resolve_photos("held-out") == HELD_OUT_PHOTOS
    assert resolve_photos("lenna,tuning")[0] == "lenna" and len(resolve_photos("lenna,tuning")) == len(TUNING_PHOTOS)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: parse_nuisances("talking,dancing"), "dancing"),
        (lambda: resolve_photos("nobody"), "nobody"),
        (lambda: RealisticSettings(frame_size=(322, 240)), "322x240"),
        (lambda: RealisticSettings(micro=-1), "micro"),
        (lambda: RealisticSettings(fps=2), "fps"),
    ],
)
def test_bad_options_are_one_clear_error(call, message):
    with pytest.raises(UserInputError, match=re.escape(message)) as error:
        call()
    assert "\n" not in str(error.value)


def test_parse_nuisances_all_and_none():
    assert parse_nuisances("all") == frozenset(NUISANCES) and parse_nuisances("none") == frozenset()


@pytest.fixture
def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training synth")
    synth_cli.configure_parser(parser)
    return parser


def test_cli_realistic_defaults_to_the_tuning_photos(parser, tmp_path, capsys):
    out = tmp_path / "r"
    argv = ["videos", "--set", "realistic", "--out", str(out), "--clips", "2", "--seconds", "8", "--size", "176x144"]
    assert (
        synth_cli.main(parser.parse_args([*argv, "--micro", "0", "--fps", "10", "--nuisances", "talking,compression"]))
        == 0
    )
    line = capsys.readouterr().out.strip()
    assert line.startswith("wrote videos: 2 clips") and "realistic" in line
    index = json.loads((out / INDEX_NAME).read_text())
    stems = {name.split(".")[0] for name in index["settings"]["photos"]}
    assert stems and stems.isdisjoint(HELD_OUT_PHOTOS)
    assert index["settings"]["nuisances"] == ["compression", "talking"]
    for clip in index["clips"]:
        truth = json.loads((out / clip["truth"]).read_text())
        assert truth["counts"].get("micro", 0) == 0 and truth["nuisances"]["talking"]["spans"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "realistic", "--nuisances", "dancing"], "dancing"),
        (["--set", "realistic", "--noise", "2"], "--noise"),
        (["--micro", "0"], "--micro 0"),
        (["--without", "talking"], "--without"),
        (["--photos", "nobody"], "nobody"),
    ],
)
def test_cli_refuses_bad_realistic_options(parser, tmp_path, extra, message):
    with pytest.raises(UserInputError, match=re.escape(message)):
        synth_cli.main(parser.parse_args(["videos", "--out", str(tmp_path / "o"), *extra]))


def test_cli_lab_set_takes_photos_by_name(parser, tmp_path):
    out = tmp_path / "lab"
    argv = ["videos", "--out", str(out), "--clips", "1", "--seconds", "3", "--size", "320x240", "--photos", "lenna"]
    assert synth_cli.main(parser.parse_args(argv)) == 0
    index = json.loads((out / INDEX_NAME).read_text())
    assert index["settings"]["photos"] == ["lenna.png"] and index["container"] == "mp4"
    with pytest.raises(UserInputError, match="not both"):
        synth_cli.main(parser.parse_args([*argv, "--faces", "x.jpg", "--force"]))
