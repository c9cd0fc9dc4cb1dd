"""realtime.process: a recorded video into a folder of outputs, through its public functions."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from realtime.core.errors import UserInputError
from realtime.process import (
    CSV_FILE,
    EVENTS_FILE,
    SIGNAL_FILE,
    VIDEO_FILE,
    RecordedOptions,
    decimate,
    process_recorded,
)
from training.synth.scripted import ClipSpec, blink, micro, write

SPEC = ClipSpec(fps=30.0, duration_ms=2600.0, motions=(micro("smile", 1100.0, 300.0, 2.0), blink(1900.0, 200.0)))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write(SPEC, tmp_path_factory.mktemp("clip") / "clip.avi")


@pytest.fixture(scope="module")
def classifier(tiny_onnx_model):
    from realtime.stages.classify import Classifier, ClassifierOptions

    return Classifier(ClassifierOptions(tiny_onnx_model, "cpu"))


@pytest.mark.parametrize(
    ("csv", "annotate"), [(False, False), (True, False), (False, True)], ids=["events", "csv", "annotated"]
)
def test_every_frame_is_processed_and_the_files_it_names_are_written(clip, classifier, tmp_path, csv, annotate):
    result = process_recorded(clip, tmp_path, classifier, RecordedOptions(csv=csv, annotate=annotate))
    expected = {EVENTS_FILE, SIGNAL_FILE} | ({CSV_FILE} if csv else set()) | ({VIDEO_FILE} if annotate else set())
    assert set(result.files) == expected == {p.name for p in tmp_path.iterdir()}
    assert result.stats.frames == SPEC.n_frames and result.corrupt_frames == 0 and not result.stats.interrupted
    assert result.fps == pytest.approx(SPEC.fps) and result.faces == 1
    assert result.duration_s == pytest.approx(SPEC.n_frames / SPEC.fps, abs=0.05)
    lines = [json.loads(line) for line in (tmp_path / EVENTS_FILE).read_text().splitlines() if line.strip()]
    assert len(lines) == result.events == sum(result.stats.labels.values())
    signal = json.loads((tmp_path / SIGNAL_FILE).read_text())
    assert isinstance(signal, dict) and "thumbnails" in signal
    if csv:
        rows = (tmp_path / CSV_FILE).read_text().splitlines()
        assert len(rows) == 1 + SPEC.n_frames  # a header, then one row per frame of the one face
    if annotate:
        video = cv2.VideoCapture(str(tmp_path / VIDEO_FILE))
        count = 0
        while video.read()[0]:
            count += 1
        video.release()
        assert count == SPEC.n_frames


def test_a_file_that_is_not_a_video_is_one_user_error(classifier, tmp_path):
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"not a video" * 100)
    with pytest.raises(UserInputError, match="cannot decode"):
        process_recorded(bad, tmp_path / "out", classifier, RecordedOptions())


@pytest.mark.parametrize("n", [0, 5, 200, 10_000])
def test_decimate_keeps_few_points_in_order_and_never_loses_a_spike(n):
    values = np.zeros(n)
    if n:
        values[n // 3] = 9.0  # a one-sample spike
    keep = decimate(values, points=100)
    assert len(keep) <= max(n, 0) and len(keep) <= 100 + 2
    assert np.all(np.diff(keep) > 0) and (n == 0 or n // 3 in keep)
    if n <= 100:
        assert list(keep) == list(range(n))


@pytest.mark.parametrize("spotter", ["rules", "learned"])
def test_either_spotter_finds_the_micro_expression_of_a_recorded_video(clip, classifier, tmp_path, spotter):
    """``RecordedOptions.spotter`` (the batch command's --spotter) reaches the pipeline: the micro-expression is
    found at its frames by either spotter, and a learned spotter whose decision file is missing is refused."""
    from training.metrics import interval_iou

    result = process_recorded(clip, tmp_path, classifier, RecordedOptions(spotter=spotter))
    lines = [json.loads(line) for line in (tmp_path / EVENTS_FILE).read_text().splitlines() if line.strip()]
    truth = SPEC.truth()[0]
    assert result.events == len(lines) >= 1
    assert any(
        interval_iou((e["onset_frame"], e["offset_frame"]), (truth.onset_frame, truth.offset_frame)) >= 0.5
        for e in lines
    )
    (tmp_path / "x").mkdir()
    with pytest.raises(UserInputError, match="no spotting model"):
        process_recorded(clip, tmp_path / "x", classifier, RecordedOptions(spotter="learned", spotter_model="/no.npz"))
