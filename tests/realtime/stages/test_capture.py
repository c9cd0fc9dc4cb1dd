"""The capture stage: indices and millisecond timestamps from files, folders, fakes and live sources."""

from __future__ import annotations

import itertools
import threading
import time

import cv2
import numpy as np
import pytest

from realtime.cli.arguments import flags_for_options
from realtime.core.errors import UserInputError
from realtime.stages.capture import (
    CaptureOptions,
    FolderSource,
    LiveSource,
    ReadAheadSource,
    RecordedSource,
    check_source,
    live_queue_frames,
    natural_key,
    open_source,
)
from training.synth.scripted import ClipSpec, write


class ArrayCapture:
    """A camera-free capture in OpenCV's style: ``read() → (ok, image)``; ``None`` entries are broken frames."""

    def __init__(self, frames, delay_s: float = 0.0):
        self.frames = list(frames)
        self.delay_s = delay_s
        self.released = False

    def read(self):
        if self.delay_s:
            time.sleep(self.delay_s)
        if not self.frames:
            return False, None
        image = self.frames.pop(0)
        return True, image

    def release(self):
        self.released = True


class StallingCapture:
    """Delivers ``n`` frames, then blocks until released (a stream that stalls)."""

    def __init__(self, n: int):
        self.n = n
        self.unblock = threading.Event()

    def read(self):
        if self.n > 0:
            self.n -= 1
            return True, np.zeros((8, 8, 3), np.uint8)
        self.unblock.wait()
        return False, None

    def release(self):
        self.unblock.set()


def frames_of(n: int, shape=(6, 8, 3)) -> list[np.ndarray]:
    return [np.full(shape, i, np.uint8) for i in range(n)]


@pytest.mark.parametrize("fps", [25.0, 30.0, 200.0])
def test_a_recorded_source_gives_every_frame_with_index_and_ms(fps):
    source = open_source(ArrayCapture(frames_of(7)), CaptureOptions(fps=fps))
    frames = list(source)
    assert [f.index for f in frames] == list(range(7))
    assert [f.t_ms for f in frames] == pytest.approx([i * 1000.0 / fps for i in range(7)])
    assert [int(f.image[0, 0, 0]) for f in frames] == list(range(7))
    assert source.dropped == 0 and source.corrupt == 0 and not source.live and source.size == (8, 6)


def test_grey_and_bgra_frames_become_bgr():
    source = RecordedSource(ArrayCapture([np.zeros((4, 5), np.uint8), np.zeros((4, 5, 4), np.uint8)]), fps=10)
    assert [f.image.shape for f in source] == [(4, 5, 3), (4, 5, 3)]


def test_broken_frames_are_skipped_counted_and_use_up_their_index():
    good = frames_of(5)
    broken = [good[0], good[1], None, np.zeros((3, 3, 3), np.uint8), good[4]]  # undecodable, then wrong size
    source = RecordedSource(ArrayCapture(broken), fps=10)
    assert [(f.index, f.t_ms) for f in source] == [(0, 0.0), (1, 100.0), (4, 400.0)]
    assert source.corrupt == 2


def test_a_video_file_uses_the_decoders_timestamps(tmp_path):
    path = write(ClipSpec(fps=25.0, duration_ms=400.0, size=(64, 48), noise_sigma=0.0), tmp_path / "clip.avi")
    source = open_source(str(path))
    assert source.fps == 25.0 and source.size == (64, 48)
    frames = list(source)
    assert [f.index for f in frames] == list(range(10))
    assert [f.t_ms for f in frames] == pytest.approx([40.0 * i for i in range(10)])
    source.close()


def test_folders_are_read_in_numeric_name_order(tmp_path):
    for number in (100, 9, 46, 10):
        cv2.imwrite(str(tmp_path / f"img{number}.png"), np.full((4, 4, 3), number, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    source = open_source(str(tmp_path), CaptureOptions(fps=200.0))
    assert isinstance(source, FolderSource)
    frames = list(source)
    assert [int(f.image[0, 0, 0]) for f in frames] == [9, 10, 46, 100]
    assert [f.t_ms for f in frames] == [0.0, 5.0, 10.0, 15.0]
    assert sorted(["img100.jpg", "img9.jpg", "IMG10.jpg"], key=lambda n: natural_key(tmp_path / n)) == [
        "img9.jpg",
        "IMG10.jpg",
        "img100.jpg",
    ]


def test_a_folder_without_fps_assumes_30_and_says_so(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((4, 4, 3), np.uint8))
    source = open_source(str(tmp_path))
    assert source.fps == 30.0 and source.fps_given is False


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.mp4", "no such file or folder"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "no images in folder"),
        (lambda p: (p / "junk.mp4").write_bytes(b"\x00junk" * 50) and p / "junk.mp4", "cannot decode"),
        (lambda p: "99", "camera 99 cannot be opened"),
    ],
)
def test_bad_sources_raise_one_clear_user_error(tmp_path, make, message):
    with pytest.raises(UserInputError, match=message):
        open_source(str(make(tmp_path)))


def test_check_source_passes_cameras_and_urls_and_fails_missing_paths(tmp_path):
    check_source("0")
    check_source("rtsp://camera.local/stream")
    check_source(str(tmp_path))
    with pytest.raises(UserInputError, match="no such file"):
        check_source(str(tmp_path / "nope.mp4"))
    with pytest.raises(UserInputError, match="empty"):
        check_source("  ")
    with pytest.raises(UserInputError, match="--fps"), flags_for_options({"fps": "--fps"}):  # as stream.py builds it
        CaptureOptions(fps=0)


def test_a_live_source_drops_the_oldest_frames_when_processing_falls_behind():
    source = LiveSource(ArrayCapture(frames_of(60)), queue_size=4, stall_s=2.0, fps=1000)
    seen = []
    while (frame := source.read()) is not None:
        seen.append(frame.index)
        time.sleep(0.01)  # far slower than the source
    source.close()
    assert source.dropped > 0
    assert len(seen) + source.dropped == 60 == source.received
    assert seen == sorted(seen) and seen[-1] == 59  # the newest frames survive
    assert source.ended_because == "the source stopped delivering frames"


@pytest.mark.parametrize("fps, queued", [(30.0, 8), (60.0, 15), (200.0, 50)])
def test_a_live_queue_holds_a_quarter_second_of_frames_at_any_camera_rate(fps, queued):
    """A reader that stalls for a moment (a face detection, the garbage collector) must cost no frame at 200 fps
    any more than at 30: the queue is a time, not a frame count."""
    assert live_queue_frames(fps) == queued
    source = LiveSource(ArrayCapture(frames_of(queued + 10)), stall_s=2.0, fps=fps)
    source.start()
    deadline = time.monotonic() + 5.0
    while source.received < queued + 10 and time.monotonic() < deadline:
        time.sleep(0.01)  # the reader is away while the whole burst arrives
    frames = list(source)
    source.close()
    assert source.dropped == 10 and [f.index for f in frames] == list(range(10, queued + 10))


def test_a_live_source_that_is_kept_up_with_drops_nothing():
    source = LiveSource(ArrayCapture(frames_of(30), delay_s=0.005), queue_size=4, stall_s=2.0)
    frames = list(source)
    source.close()
    assert [f.index for f in frames] == list(range(30)) and source.dropped == 0
    times = [f.t_ms for f in frames]
    assert all(b > a for a, b in itertools.pairwise(times))


def test_a_live_source_that_stalls_ends_cleanly_and_quickly():
    capture = StallingCapture(3)
    source = open_source(capture, CaptureOptions(live=True, stall_s=0.3))
    frames = list(source)
    started = time.monotonic()
    source.close()
    assert len(frames) == 3 and "stalled" in source.ended_because
    assert time.monotonic() - started < 1.0


def test_nothing_is_read_before_the_first_read_call():
    capture = ArrayCapture(frames_of(5))
    source = LiveSource(capture, queue_size=2)
    time.sleep(0.05)
    assert len(capture.frames) == 5  # the reader thread starts with the first read(): no early drops
    assert [f.index for f in source] == [0, 1, 2, 3, 4] or source.dropped > 0
    source.close()
    assert capture.released


@pytest.mark.parametrize("depth", [1, 4, 64])
def test_read_ahead_gives_the_same_frames_in_order_and_counts_the_broken_ones(depth):
    images = [np.full((6, 8, 3), i, np.uint8) for i in range(40)]
    images[7] = None  # a broken frame inside the video
    plain = list(RecordedSource(ArrayCapture(list(images)), fps=25))

    def plain_source_corrupt(frames) -> int:
        source = RecordedSource(ArrayCapture(list(frames)), fps=25)
        list(source)
        return source.corrupt

    ahead = ReadAheadSource(RecordedSource(ArrayCapture(list(images)), fps=25), depth)
    frames = list(ahead)
    assert [(f.index, f.t_ms) for f in frames] == [(f.index, f.t_ms) for f in plain]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(frames, plain, strict=True))
    assert ahead.read() is None and ahead.fps == 25 and ahead.size == (8, 6)
    assert len(frames) == 39 and ahead.corrupt == plain_source_corrupt(images) == 1


def test_read_ahead_stops_early_without_hanging_and_raises_the_decoders_error():
    source = ReadAheadSource(RecordedSource(ArrayCapture([np.zeros((4, 4, 3), np.uint8)] * 500), fps=30), 4)
    assert source.read() is not None
    started = time.perf_counter()
    source.close()  # the thread is blocked on a full queue: close must wake and end it
    assert time.perf_counter() - started < 2.0 and not source._thread.is_alive()

    class Failing(ArrayCapture):
        def read(self):
            raise RuntimeError("decoder exploded")

    with pytest.raises(RuntimeError, match="decoder exploded"):
        ReadAheadSource(RecordedSource(Failing([]), fps=30)).read()


def test_stream_opens_recorded_files_with_read_ahead(tmp_path):
    clip = write(ClipSpec(fps=30.0, duration_ms=300.0), tmp_path / "c.avi")
    source = open_source(str(clip), CaptureOptions(read_ahead=8))
    assert isinstance(source, ReadAheadSource) and not source.live
    assert [f.index for f in source] == list(range(9)) and source.description == str(clip)
    source.close()


@pytest.mark.parametrize("max_bad_frames", [0, 3, 7])
def test_a_live_source_ends_after_max_bad_frames_undecodable_frames_in_a_row(max_bad_frames):
    good = np.zeros((8, 8, 3), np.uint8)
    capture = ArrayCapture([good] + [None] * 20 + [good])
    source = open_source(capture, CaptureOptions(live=True, max_bad_frames=max_bad_frames, stall_s=2.0))
    assert isinstance(source, LiveSource)
    frames = list(source)
    source.close()
    assert [f.index for f in frames] == [0]
    assert source.corrupt == max_bad_frames + 1 and "undecodable" in source.ended_because


def test_every_kind_of_source_says_whether_its_rate_was_given(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"{i}.png"), np.zeros((8, 8, 3), np.uint8))
    sources = {
        "folder without fps": (open_source(str(folder)), False),
        "folder with fps": (open_source(str(folder), CaptureOptions(fps=12)), True),
        "folder read ahead": (open_source(str(folder), CaptureOptions(read_ahead=2)), False),
        "recorded": (open_source(ArrayCapture(frames_of(2))), True),
        "live": (open_source(ArrayCapture(frames_of(2)), CaptureOptions(live=True)), True),
    }
    for name, (source, given) in sources.items():
        with source:
            assert source.fps_given is given, name
            assert (source.dropped, source.ended_because) == (0, ""), name


def test_read_ahead_reports_what_its_source_reports_and_nothing_it_does_not():
    inner = RecordedSource(ArrayCapture([None, np.zeros((4, 6, 3), np.uint8)]), fps=20, description="fake")
    with ReadAheadSource(inner, 2) as ahead:
        assert [f.index for f in ahead] == [1]
        assert (ahead.fps, ahead.fps_given, ahead.size, ahead.description) == (20, True, (6, 4), "fake")
        assert ahead.corrupt == inner.corrupt == 1
        assert not hasattr(ahead, "peek")  # the inner source's other methods are not forwarded


@pytest.mark.parametrize(
    ("changes", "option"),
    [
        ({"fps": 0.0}, "fps"),
        ({"fps": float("inf")}, "fps"),
        ({"read_ahead": -1}, "read_ahead"),
        ({"queue_size": 0}, "queue_size"),
        ({"stall_s": 0.0}, "stall_s"),
        ({"max_bad_frames": -1}, "max_bad_frames"),
    ],
)
def test_capture_options_name_their_own_field_and_a_command_names_its_flag(changes, option):
    from realtime.cli.arguments import flags_for_options
    from realtime.core.errors import OptionError

    with pytest.raises(OptionError, match=rf"^{option} must be") as raised:
        CaptureOptions(**changes)
    assert raised.value.option == option and isinstance(raised.value, UserInputError)
    with pytest.raises(OptionError, match=r"^--the-flag must be"), flags_for_options({option: "--the-flag"}):
        CaptureOptions(**changes)
    with pytest.raises(OptionError, match=rf"^{option} must be"), flags_for_options({"other": "--other"}):
        CaptureOptions(**changes)
