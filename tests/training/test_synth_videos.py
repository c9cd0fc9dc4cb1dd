"""The spotting-video mode of the generator (training/synth/videos.py): truth, distractors, determinism, files."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime.core.errors import UserInputError
from training.synth import cli as synth_cli
from training.synth import load_face_photos
from training.synth.videos import (
    INDEX_NAME,
    VideoRenderer,
    VideoSettings,
    plan_clips,
    read_video,
    write_videos,
)

SMALL = (320, 240)


def movement(renderer: VideoRenderer) -> np.ndarray:
    """Per frame, the largest landmark movement of the face itself (head pose taken out), in IOD units."""
    inverse = np.linalg.inv(renderer.matrices[:, :, :2])  # undo each frame's head roll and scale
    moved = np.einsum("fij,fkj->fki", inverse, renderer.landmarks - renderer.rest_landmarks)
    shift = np.linalg.norm(moved, axis=2).max(axis=1)
    return shift / renderer.face.frame.iod


@pytest.fixture(scope="module")
def busy(tmp_path_factory):
    """Two 30 fps clips with every distractor, as long as their events need (about 6-10 s each)."""
    out = tmp_path_factory.mktemp("busy") / "videos"
    index = write_videos(out, seed=3, n_clips=2, frame_size=SMALL)
    return index


@pytest.fixture(scope="module")
def busy_renderers(busy):
    specs = plan_clips(load_face_photos(), VideoSettings(frame_size=SMALL), seed=3, n_clips=2)
    return [VideoRenderer(s) for s in specs]


@pytest.fixture(scope="module")
def many_specs():
    """Plans only (no pixels): 12 clips at 200 fps and 12 at 30 fps, to check timings and sizes broadly."""
    photos = load_face_photos()
    return [
        spec
        for fps in (30.0, 200.0)
        for spec in plan_clips(photos, VideoSettings(fps=fps, frame_size=(640, 480)), seed=9, n_clips=12)
    ]


# --- ground truth -----------------------------------------------------------------------------------------------------


def test_apex_is_the_frame_of_largest_movement_and_onset_offset_bound_it(busy_renderers):
    for renderer in busy_renderers:
        shift = movement(renderer)
        inside = np.zeros(len(shift), bool)
        for event in renderer.spec.events:
            on, apex, off = event.onset_frame, event.apex_frame, event.offset_frame
            span = shift[on : off + 1]
            largest = np.flatnonzero(span >= span.max() - 1e-9)  # a macro expression holds its apex
            assert on + int(largest[0]) == apex and len(largest) == event.hold_frames + 1, (event, span)
            assert span[0] < 1e-9 and span[-1] < 1e-9  # still at the onset and offset frames
            assert shift[on + 1] > 1e-6 and shift[off - 1] > 1e-6  # moving right after / before them
            inside[on : off + 1] = True
        assert np.all(shift[~inside] < 1e-9)  # nothing moves outside the labelled events


def test_apex_in_the_pixels_of_a_clean_clip():
    """Without drift, lighting or noise, each event's frame differs most from the neutral face at its apex,
    and the onset and offset frames are the neutral face exactly."""
    settings = VideoSettings(frame_size=SMALL, distractors=False, noise_sigma=0.0, micro=3)
    renderer = VideoRenderer(plan_clips(load_face_photos(), settings, seed=4, n_clips=1)[0])
    frames = list(renderer.frames())
    neutral = renderer.face.image.astype(np.int16)
    change = np.array([np.abs(f.astype(np.int16) - neutral).mean() for f in frames])
    for event in renderer.spec.events:
        on, off = event.onset_frame, event.offset_frame
        assert on + int(np.argmax(change[on : off + 1])) == event.apex_frame
        assert change[on] == 0 and change[off] == 0 and change[on + 1] > 0
    assert renderer.spec.drift is None and renderer.spec.lighting is None
    assert {e.kind for e in renderer.spec.events} == {"micro"}


def test_truth_json_matches_the_render(busy, busy_renderers):
    for clip, renderer in zip(busy.clips, busy_renderers, strict=True):
        truth = json.loads((busy.out / clip["truth"]).read_text())
        assert truth == {**renderer.truth(), "video": clip["video"]}
        assert truth["fps"] == 30.0 and truth["size"] == list(SMALL) and truth["seed"] == 3
        assert truth["frame_count"] == renderer.spec.n_frames and truth["photo"] == clip["photo"]
        shift = movement(renderer)
        for event in truth["events"]:
            for edge in ("onset", "apex", "offset"):
                assert event[f"{edge}_ms"] == pytest.approx(event[f"{edge}_frame"] / truth["fps"] * 1000.0, abs=1e-3)
            assert event["peak_shift_iod"] == pytest.approx(shift[event["apex_frame"]], rel=1e-3)
            assert re.fullmatch(r"\d+(\+\d+)*", event["action_units"])
        starts = [e["onset_frame"] for e in truth["events"]]
        assert starts == sorted(starts)


def test_distractors_are_present_and_labelled(busy):
    kinds, labels = set(), set()
    for clip in busy.clips:
        truth = json.loads((busy.out / clip["truth"]).read_text())
        assert truth["counts"] == {"blink": 2, "macro": 1, "micro": 3}
        kinds |= {e["kind"] for e in truth["events"]}
        labels |= {e["label"] for e in truth["events"] if e["kind"] == "micro"}
        for event in truth["events"]:
            if event["kind"] == "blink":
                assert event["label"] == "blink" and event["action_units"] == "45" and event["eye_closure"] > 0.4
        nuisances = truth["nuisances"]
        assert nuisances["head_drift"]["shift_px"] > 0 and nuisances["head_drift"]["roll_deg"] >= 0.5
        assert nuisances["lighting_drift"]["gain_end"] != 1.0 and nuisances["noise_sigma"] >= 1.0
    assert kinds == {"micro", "macro", "blink"}
    assert labels <= {"happiness", "disgust", "surprise", "repression", "others"}


def test_head_drift_and_lighting_move_the_whole_frame(busy_renderers):
    renderer = busy_renderers[0]
    rest = renderer.rest_landmarks.mean(axis=1)
    assert np.ptp(rest, axis=0).max() > 0.5  # the head wanders (pixels)
    frames = renderer.frames()
    first = next(frames)
    for _ in range(renderer.spec.n_frames - 2):
        next(frames)
    last = next(frames)
    lighting = renderer.spec.lighting
    expected = (lighting.gain - 1.0) * float(first.mean()) + lighting.offset  # the tone table at the last frame
    assert abs(float(last.mean()) - float(first.mean()) - expected) < 0.3 * abs(expected) + 1.0


# --- amplitudes and timings -------------------------------------------------------------------------------------------


def test_micro_and_macro_sizes_and_durations(many_specs):
    micro_peaks, macro_peaks = [], []
    for spec in many_specs:
        for event in spec.events:
            ms = (event.offset_frame - event.onset_frame) * 1000.0 / spec.fps
            if event.kind == "micro":
                assert 1000.0 / 25 - 1e-6 <= ms <= 500.0 + 1e-6 or (spec.fps < 50 and ms <= 2000.0 / spec.fps + 1e-6)
                assert event.onset_frame < event.apex_frame < event.offset_frame
                micro_peaks.append(event.peak_iod)
            elif event.kind == "macro":
                assert ms > 500.0 and event.hold_frames > 0
                macro_peaks.append(event.peak_iod)
            else:
                assert 100.0 <= ms <= 400.0
    assert min(micro_peaks) >= 0.01 and max(micro_peaks) <= 0.08
    assert min(macro_peaks) >= 2.0 * max(micro_peaks) and min(macro_peaks) >= 3.0 * np.median(micro_peaks)


def test_rendered_amplitudes(busy_renderers):
    """The measured movement (the warp's, on the rendered landmarks): micro 1-8 % IOD, macro several times more."""
    micro, macro = [], []
    for renderer in busy_renderers:
        shift = movement(renderer)
        for event in renderer.spec.events:
            (micro if event.kind == "micro" else macro if event.kind == "macro" else []).append(shift[event.apex_frame])
        pixels = np.array(micro) * renderer.face.frame.iod
        assert pixels.min() >= 0.4  # even at 320x240 a micro-expression moves some landmark half a pixel
    assert min(micro) >= 0.01 and max(micro) <= 0.08
    assert min(macro) >= 2.0 * max(micro)


# --- files, determinism ---------------------------------------------------------------------------------------------


def test_video_files_read_back(busy, busy_renderers):
    index = json.loads(busy.path.read_text())
    assert [c["truth"] for c in index["clips"]] == ["clip01.json", "clip02.json"]
    assert index["container"] == "mp4" and index["fourcc"] == "mp4v" and index["note"] == ""
    for clip, renderer in zip(busy.clips, busy_renderers, strict=True):
        capture = cv2.VideoCapture(str(busy.out / clip["video"]))
        assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(30.0)
        assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == SMALL
        capture.release()
        decoded = list(read_video(busy.out / clip["video"]))
        assert len(decoded) == clip["frame_count"] == renderer.spec.n_frames
        for k, rendered in zip(range(0, len(decoded), 40), list(renderer.frames())[::40], strict=True):
            assert decoded[k].shape == (SMALL[1], SMALL[0], 3)
            assert np.abs(decoded[k].astype(np.int16) - rendered).mean() < 4.0  # mp4v is lossy, but close


def test_same_seed_same_json_and_frames(tmp_path):
    options = {"n_clips": 2, "seconds": 3.0, "frame_size": SMALL}
    a = write_videos(tmp_path / "a", seed=21, **options)
    write_videos(tmp_path / "b", seed=21, **options)
    write_videos(tmp_path / "c", seed=22, **options)
    for name in (INDEX_NAME, "clip01.json", "clip02.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "clip01.json").read_bytes() != (tmp_path / "c" / "clip01.json").read_bytes()
    for clip in a.clips:
        first, second = read_video(tmp_path / "a" / clip["video"]), read_video(tmp_path / "b" / clip["video"])
        assert all(np.array_equal(x, y) for x, y in zip(first, second, strict=True))
    # the first clip does not depend on how many follow it
    one = write_videos(tmp_path / "d", seed=21, **{**options, "n_clips": 1})
    assert (one.out / "clip01.json").read_bytes() == (tmp_path / "a" / "clip01.json").read_bytes()


def test_frames_format_numbers_from_one(tmp_path):
    index = write_videos(tmp_path / "f", seed=2, n_clips=1, seconds=2.5, fps=10, frame_size=SMALL, fmt="frames")
    folder = tmp_path / "f" / index.clips[0]["video"]
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 25 and "img1.jpg" in names and "img25.jpg" in names and "img0.jpg" not in names
    assert len(list(read_video(folder))) == 25


# --- bad input and the command line -------------------------------------------------------------------------------


@pytest.fixture
def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training synth")
    synth_cli.configure_parser(parser)
    return parser


def test_bad_input_is_one_clear_error(tmp_path):
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((300, 300, 3), 128, np.uint8))
    cases = [
        ({"photos": [tmp_path / "nobody.jpg"]}, "not found"),
        ({"photos": [blank]}, "no face"),
        ({"frame_size": "320by240"}, "320by240"),
        ({"frame_size": (100, 80)}, "100x80"),
        ({"fps": 0}, "fps"),
        ({"fps": -30}, "fps"),
        ({"seconds": 0}, "seconds"),
        ({"seconds": 1.0}, "too short"),
        ({"n_clips": 0}, "clips"),
        ({"fmt": "gif"}, "format"),
        ({"amplitude": 0}, "amplitude"),
    ]
    for options, message in cases:
        with pytest.raises(UserInputError, match=re.escape(message)) as error:
            write_videos(tmp_path / "out", **options)
        assert "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()  # nothing is written before the input is known to be good
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(UserInputError, match="not empty"):
            write_videos(tmp_path / "mine", n_clips=1, seconds=3, frame_size=SMALL, overwrite=overwrite)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_cli_writes_summarises_and_refuses(parser, tmp_path, capsys):
    out = tmp_path / "v"
    argv = ["videos", "--out", str(out), "--clips", "1", "--seconds", "3", "--size", "320x240", "--fps", "25"]
    assert synth_cli.main(parser.parse_args(argv)) == 0
    line = capsys.readouterr().out.strip()
    assert "\n" not in line and line.startswith("wrote videos: 1 clips (75 frames, 320x240 at 25 fps, mp4v .mp4")
    assert (out / INDEX_NAME).is_file() and (out / "clip01.mp4").is_file()
    with pytest.raises(UserInputError, match="not empty"):
        synth_cli.main(parser.parse_args(argv))
    assert synth_cli.main(parser.parse_args([*argv, "--force"])) == 0
    for bad, message in (
        (["videos", "--fps", "0"], "fps"),
        (["videos", "--frames", "9"], "--frames"),
        (["casme2", "--fps", "30"], "--fps"),
        (["samm", "--no-distractors"], "--no-distractors"),
    ):
        with pytest.raises(UserInputError, match=re.escape(message)):
            synth_cli.main(parser.parse_args([*bad, "--out", str(tmp_path / "o")]))


def test_cli_help_teaches_videos(parser):
    text = parser.format_help()
    assert "python -m training synth videos --out" in text
    for option in ("--clips", "--fps", "--seconds", "--no-distractors", "--format", "--micro", "--noise"):
        assert option in text


def test_index_lists_clips_and_truth(busy):
    data = json.loads(Path(busy.path).read_text())
    assert data["settings"]["seed"] == 3 and data["settings"]["distractors"] is True
    for clip in data["clips"]:
        assert (busy.out / clip["video"]).is_file() and (busy.out / clip["truth"]).is_file()
