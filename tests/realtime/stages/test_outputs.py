"""Outputs that survive: a SIGKILL leaves every file readable, SIGTERM and SIGHUP close them like Ctrl-C, and
the annotated video is H.264 that browsers play.

The killed runs are real processes (``stream.py``, the batch worker's ``process_job``, the writers alone)
killed with SIGKILL; what they leave is read back with OpenCV and PyAV.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from realtime.schema import FrameRecord
from realtime.stages.outputs import FrameCsvWriter, VideoWriter
from training.synth.scripted import ClipSpec, frames, micro

ROOT = Path(__file__).resolve().parents[3]
FPS = 30.0
SHORT = ClipSpec(
    fps=FPS,
    duration_ms=2000.0,
    size=(320, 240),
    face_width_px=110.0,
    motions=(micro("smile", 900.0, 300.0, 2.0),),
    noise_sigma=1.5,
    seed=11,
)
REPEATS = 40  # the long clip: the short one 40 times over, 80 s of video (a run is killed long before its end)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """80 s of a face at 30 fps (Motion JPEG: quick to write and to decode)."""
    path = tmp_path_factory.mktemp("long") / "long.avi"
    images = list(frames(SHORT))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SHORT.size)
    for _ in range(REPEATS):
        for image in images:
            writer.write(image)
    writer.release()
    return path


def count_frames(path: Path) -> tuple[int, int]:
    """(frames OpenCV decodes, frames PyAV decodes before the first undecodable data) of a video."""
    capture = cv2.VideoCapture(str(path))
    opencv = 0
    while capture.read()[0]:
        opencv += 1
    capture.release()
    pyav = 0
    with av.open(str(path)) as container:
        try:
            for _ in container.decode(video=0):
                pyav += 1
        except av.error.InvalidDataError:  # the torn tail a kill leaves (players stop there too)
            pass
    return opencv, pyav


def read_csv_rows(path: Path) -> list[dict]:
    """The CSV's complete rows: a torn last line (the kill hit mid-write) is the only thing left out."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]
    rows = list(csv.DictReader(lines))
    for row in rows:
        int(row["frame"]), float(row["time_ms"])  # every row parses
    return rows


def last_csv_time_ms(path: Path) -> float:
    if not path.exists():
        return -1.0
    rows = read_csv_rows(path)
    return float(rows[-1]["time_ms"]) if rows else -1.0


def wait_for(condition, process: subprocess.Popen, seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, process.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.05)


def start_stream(clip: Path, model: Path, out: Path, video_name: str = "annotated.mp4") -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DISPLAY", None)
    return subprocess.Popen(
        [
            *(sys.executable, str(ROOT / "stream.py"), "--source", str(clip), "--model", str(model), "--no-display"),
            *("--events", str(out / "events.jsonl"), "--csv", str(out / "frames.csv")),
            *("--output", str(out / video_name)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )


def check_killed_outputs(events: Path, table: Path, video: Path, seen_ms: float) -> None:
    """What a killed run must leave: every event line whole, the CSV's rows parsing with no frame missing
    up to at least what was on disk before the kill, the video decoding to within a few seconds of it."""
    text = events.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n")
    for line in text.splitlines():
        json.loads(line)
    rows = read_csv_rows(table)
    indices = sorted({int(r["frame"]) for r in rows})
    assert indices == list(range(len(indices)))  # no frame missing before the last one written
    assert float(rows[-1]["time_ms"]) >= seen_ms
    last_frame = indices[-1]
    opencv, pyav = count_frames(video)
    for decoded in (opencv, pyav):
        assert decoded >= last_frame - 3 * FPS, (decoded, last_frame)  # playable to a few seconds before the kill
        assert decoded <= last_frame + 1 + FPS


@pytest.mark.slow
@pytest.mark.parametrize("video_name", ["annotated.mp4", "annotated.mkv"])
def test_a_sigkilled_stream_leaves_events_csv_and_video_readable(tmp_path, long_clip, tiny_onnx_model, video_name):
    process = start_stream(long_clip, tiny_onnx_model, tmp_path, video_name)
    table = tmp_path / "frames.csv"
    try:
        wait_for(lambda: last_csv_time_ms(table) >= 6000.0, process)
        seen_ms = last_csv_time_ms(table)
        assert process.poll() is None  # still running: the kill lands mid-run
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    assert process.returncode == -signal.SIGKILL
    check_killed_outputs(tmp_path / "events.jsonl", table, tmp_path / video_name, seen_ms)


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_close_every_output_and_say_so_once(tmp_path, long_clip, tiny_onnx_model, stop):
    process = start_stream(long_clip, tiny_onnx_model, tmp_path)
    table = tmp_path / "frames.csv"
    try:
        wait_for(lambda: last_csv_time_ms(table) >= 3000.0, process)
        process.send_signal(stop)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    said = [line for line in err.splitlines() if "flushed and closed" in line]
    assert said == [
        f"stopped by {signal.Signals(stop).name}: outputs flushed and closed, everything spotted so far is kept"
    ]
    summary = [line for line in out.splitlines() if line.startswith("frames ")]
    assert len(summary) == 1
    processed = int(summary[0].split()[1].rstrip(","))
    assert 0 < processed < REPEATS * SHORT.n_frames  # it stopped mid-way
    rows = read_csv_rows(table)
    assert table.read_text().endswith("\n")
    assert sorted({int(r["frame"]) for r in rows}) == list(range(processed))  # every processed frame, closed
    assert count_frames(tmp_path / "annotated.mp4") == (processed, processed)  # the whole video, finished


WRITER_SCRIPT = """
import sys
import numpy as np
from realtime.stages.outputs import FrameCsvWriter, VideoWriter
from realtime.schema import FrameRecord

path, frames, width, height = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
video = VideoWriter(path, 30.0)
table = FrameCsvWriter(path + ".csv")
for i in range(frames):
    image = np.zeros((height, width, 3), np.uint8)
    image[:, : (i * 7) % width] = (40, 160, 220)
    video.write(image)
    table.write(FrameRecord(i, i * 1000.0 / 30.0, ()))
print("written", flush=True)
sys.stdin.readline()  # killed here, nothing closed
"""


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov", ".m4v"])
def test_the_writers_killed_unclosed_leave_the_video_and_csv_readable(tmp_path, suffix):
    path = tmp_path / f"killed{suffix}"
    frames_written = 150  # 5 s at 30 fps
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WRITER_SCRIPT), str(path), str(frames_written), "321", "241"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert process.stdout.readline().strip() == "written"
    process.kill()
    process.wait(timeout=30)
    opencv, pyav = count_frames(path)
    assert frames_written - 2 * FPS <= opencv <= frames_written
    assert frames_written - 2 * FPS <= pyav <= frames_written
    rows = read_csv_rows(Path(f"{path}.csv"))
    assert float(rows[-1]["time_ms"]) >= (frames_written - 1) * 1000.0 / FPS - 1000.0  # up to the last second


def test_the_annotated_video_is_h264_yuv420p_at_even_size_and_the_source_rate(tmp_path):
    path = tmp_path / "odd.mp4"
    writer = VideoWriter(path, 29.97)
    for i in range(45):
        writer.write(np.full((241, 321, 3), 3 * i, np.uint8))
    writer.close()
    writer.close()  # twice is safe
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert (stream.codec_context.width, stream.codec_context.height) == (322, 242)
        assert float(stream.average_rate) == pytest.approx(29.97, abs=0.01)
        assert sum(1 for _ in container.decode(video=0)) == 45


def test_the_csv_is_on_disk_up_to_the_last_second_before_close(tmp_path):
    table = FrameCsvWriter(tmp_path / "frames.csv")
    for i in range(100):  # 3.3 s at 30 fps
        table.write(FrameRecord(i, i * 1000.0 / FPS, ()))
    on_disk = read_csv_rows(tmp_path / "frames.csv")  # read while the writer is still open
    assert float(on_disk[-1]["time_ms"]) >= 99 * 1000.0 / FPS - 1000.0
    table.close()
    assert len(read_csv_rows(tmp_path / "frames.csv")) == 100


BATCH_SCRIPT = """
import sys
from pathlib import Path
from realtime.stages.classify import Classifier, ClassifierOptions
from realtime.core.landmarks import FaceLandmarker
from realtime.batch.worker import BatchJob, process_job

clip, folder, model = sys.argv[1], sys.argv[2], sys.argv[3]
job = BatchJob(index=0, input=clip, name="long", folder=folder, key={}, key_digest="x",
               model={"path": model, "sha256": ""}, options={"max_faces": 1, "csv": True, "annotate": True}, size=0)
process_job(job, Classifier(ClassifierOptions(Path(model), "cpu")), FaceLandmarker(), "CPU")
"""


@pytest.mark.slow
def test_a_sigkilled_batch_video_leaves_its_partial_outputs_readable(tmp_path, long_clip, tiny_onnx_model):
    folder = tmp_path / "long"
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(BATCH_SCRIPT), str(long_clip), str(folder), str(tiny_onnx_model)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )

    def partial_csv() -> Path | None:
        found = sorted(folder.glob(".partial-*/frames.csv")) if folder.is_dir() else []
        return found[0] if found else None

    try:
        wait_for(lambda: partial_csv() is not None and last_csv_time_ms(partial_csv()) >= 6000.0, process)
        table = partial_csv()
        seen_ms = last_csv_time_ms(table)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    assert not (folder / "summary.json").exists()  # unfinished, and it does not look finished
    check_killed_outputs(table.parent / "events.jsonl", table, table.parent / "annotated.mp4", seen_ms)
