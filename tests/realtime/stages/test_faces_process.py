"""The face stage in a second process: the same faces, ids and events as in the caller's own process, only for
sources that can be read twice, its failures as one line, and nothing left running after close."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from realtime.api import Recognizer
from realtime.core.errors import UserInputError
from realtime.pipeline import Pipeline, PipelineOptions
from realtime.stages.capture import CaptureOptions, is_recorded, open_source
from realtime.stages.faces import FaceTracker
from realtime.stages.faces.process import FaceProcess
from realtime.stages.spotter import SpotterOptions
from training.synth.scripted import ClipSpec, blink, micro, write

SPEC = ClipSpec(
    fps=30.0,
    duration_ms=3000.0,
    size=(320, 240),
    face_width_px=120.0,
    motions=(micro("smile", 1200.0, 300.0, 2.5), blink(2100.0, 200.0)),
    drift_px=2.0,
    seed=5,
)
CAPTURE = CaptureOptions(live=False, read_ahead=16)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write(SPEC, tmp_path_factory.mktemp("clip") / "clip.avi")


def _run(clip: Path, tracker, method: str) -> tuple[list, list]:
    pipeline = Pipeline(PipelineOptions(spotter=SpotterOptions(method=method)), tracker=tracker)
    faces, events = [], []
    try:
        with open_source(str(clip), CAPTURE) as frames:
            for frame in frames:
                result = pipeline.process(frame)
                faces.append([(f.face_id, f.box, f.landmarks, f.detected) for f in result.faces])
                ended = result.events + result.rejected
                events += [(e.kind, e.onset_frame, e.apex_frame, e.offset_frame) for e in ended]
    finally:
        pipeline.close()
    return faces, events


@pytest.mark.parametrize("method", ["rules", "learned"])
def test_the_second_process_gives_the_same_faces_and_events_as_the_callers_own(clip, method):
    here_faces, here_events = _run(clip, FaceTracker(), method)
    there_faces, there_events = _run(clip, FaceProcess(str(clip), CAPTURE), method)
    assert len(there_faces) == len(here_faces) == SPEC.n_frames
    for mine, theirs in zip(here_faces, there_faces, strict=True):
        assert [(i, box, detected) for i, box, _, detected in mine] == [(i, b, d) for i, b, _, d in theirs]
        assert all(np.array_equal(a[2], b[2]) for a, b in zip(mine, theirs, strict=True))
    assert there_events == here_events and any(kind == "micro" for kind, *_ in here_events)


def test_only_sources_that_can_be_read_twice_get_one(clip, tmp_path):
    recognizer = Recognizer(model=False)
    assert is_recorded(str(clip)) and is_recorded(str(tmp_path))  # a video file, an image folder
    for live in ("0", "rtsp://camera.local/stream", str(tmp_path / "missing.mp4")):
        assert not is_recorded(live) and recognizer.face_process(live) is None
    assert not is_recorded(str(clip), CaptureOptions(live=True))
    with recognizer.face_process(str(clip)) as process:
        assert isinstance(process, FaceProcess)


def test_a_file_the_face_process_cannot_read_is_one_line(tmp_path):
    bad = tmp_path / "not_a_video.mp4"
    bad.write_bytes(b"no video in here")
    with FaceProcess(str(bad), CAPTURE) as process, pytest.raises(UserInputError, match="the face stage failed: "):
        process.process(np.zeros((240, 320, 3), np.uint8), 0.0)


def test_frames_read_at_other_times_are_refused(clip):
    # the caller must open the source as the face process does: here its clock runs at another rate
    with FaceProcess(str(clip), CAPTURE) as process, open_source(str(clip), CaptureOptions(fps=25.0)) as frames:
        first, second = next(iter(frames)), next(iter(frames))
        process.process(first.image, first.t_ms)  # frame 0 is at 0 ms either way
        with pytest.raises(RuntimeError, match=r"33\.3.* 40\.0 ms"):
            process.process(second.image, second.t_ms)


def test_closing_stops_the_process_even_mid_way(clip):
    process = FaceProcess(str(clip), CAPTURE)
    with open_source(str(clip), CAPTURE) as frames:
        frame = next(iter(frames))
        assert process.process(frame.image, frame.t_ms).faces
    assert process.running
    process.close()
    assert not process.running  # nothing is left running


def test_a_face_process_that_dies_is_replaced_by_the_stage_in_this_process(clip, caplog):
    process = FaceProcess(str(clip), CAPTURE, batch=1)
    with open_source(str(clip), CAPTURE) as frames, caplog.at_level(logging.WARNING, logger="microexpr"):
        faces = []
        for frame in frames:
            if frame.index == 10:
                os.kill(process.pid, signal.SIGKILL)  # out of memory, killed by someone: the run goes on
            faces.append(process.process(frame.image, frame.t_ms).faces)
    process.close()
    assert len(faces) == SPEC.n_frames and all(faces)  # a face on every frame, before and after
    (line,) = [r.getMessage() for r in caplog.records if "face stage goes on in this process" in r.getMessage()]
    assert "stopped unexpectedly" in line
