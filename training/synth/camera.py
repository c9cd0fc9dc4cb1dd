"""What a webcam does to a picture: exposure and white balance, motion blur, sensor noise, H.264 at webcam bitrates.

The realistic spotting clips (:mod:`training.synth.realistic`) pass every rendered frame through these, in
the order a camera does: the light and the camera's gains (:func:`tone_table`: a per-channel gain, so
auto-exposure and white-balance steps and flicker are one look-up), blur along the motion while the
shutter is open (:func:`motion_blur`), sensor noise (:class:`training.synth.faces.SensorNoise`), then the
encoder (:class:`H264Writer`: the ``ffmpeg`` program with libx264, constant frame rate, no B-frames, one
thread so that the same frames always give the same bytes).
"""

from __future__ import annotations

import contextlib
import math
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np

from realtime.core.errors import UserInputError

BITRATE_KBPS = (300.0, 1500.0)
"""The bitrates a webcam call runs at for 640×480 (smaller frames get proportionally fewer bits)."""


def tone_table(gains: np.ndarray) -> np.ndarray:
    """The 8-bit look-up table (256×1×3, for ``cv2.LUT`` on a BGR frame) of per-channel ``gains`` (B, G, R)."""
    x = np.arange(256, dtype=np.float64)[:, None] * np.asarray(gains, dtype=np.float64)[None, :]
    return np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(256, 1, 3)


def motion_blur(image: np.ndarray, velocity_px: np.ndarray, exposure: float, box: tuple[int, int, int, int]) -> bool:
    """In place: blur ``box`` (x0, y0, x1, y1) of ``image`` along ``velocity_px`` (pixels per frame) over the
    ``exposure`` share of the frame time. Returns whether anything was blurred (a streak under 1.5 px is
    left alone: the picture would not show it)."""
    length = float(np.hypot(*velocity_px)) * exposure
    if length < 1.5:
        return False
    size = math.ceil(length) | 1
    kernel = np.zeros((size, size), np.float32)
    centre = size // 2
    angle = math.atan2(float(velocity_px[1]), float(velocity_px[0]))
    dx, dy = math.cos(angle) * length / 2.0, math.sin(angle) * length / 2.0
    cv2.line(kernel, (round(centre - dx), round(centre - dy)), (round(centre + dx), round(centre + dy)), 1.0, 1)
    kernel /= max(float(kernel.sum()), 1e-6)
    x0, y0, x1, y1 = box
    height, width = image.shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    if x1 - x0 < size or y1 - y0 < size:
        return False
    image[y0:y1, x0:x1] = cv2.filter2D(image[y0:y1, x0:x1], -1, kernel, borderType=cv2.BORDER_REPLICATE)
    return True


def ffmpeg_path() -> str:
    """The ``ffmpeg`` program, or one clear :class:`UserInputError` when it is not installed."""
    found = shutil.which("ffmpeg")
    if found is None:
        raise UserInputError(
            "the realistic clips are H.264 like a webcam's and need the ffmpeg program, which is not installed "
            "(Debian/Ubuntu: apt-get install ffmpeg); or leave compression out with --without compression"
        )
    return found


def scaled_bitrate_kbps(kbps_at_vga: float, frame_size: tuple[int, int]) -> float:
    """A 640×480 bitrate scaled to another frame size (bits per pixel held, with a floor of 80 kbit/s)."""
    pixels = frame_size[0] * frame_size[1] / (640.0 * 480.0)
    return max(80.0, kbps_at_vga * pixels**0.8)


class H264Writer:
    """Frames (BGR uint8) → an H.264 .mp4 through ``ffmpeg`` (libx264, yuv420p, ``bitrate_kbps``, a key
    frame every 2 s, no B-frames). Use as a context manager; :meth:`write` one frame at a time."""

    def __init__(self, path: Path, fps: float, frame_size: tuple[int, int], bitrate_kbps: float) -> None:
        width, height = frame_size
        if width % 2 or height % 2:
            raise UserInputError(f"H.264 (yuv420p) needs an even frame size, got {width}x{height}")
        self.path = Path(path)
        rate = f"{bitrate_kbps:.0f}k"
        command = [
            ffmpeg_path(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "bgr24",
            "-s",
            f"{width}x{height}",
            "-r",
            f"{fps:g}",
            "-i",
            "-",
            "-an",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-b:v",
            rate,
            "-maxrate",
            rate,
            "-bufsize",
            f"{2 * bitrate_kbps:.0f}k",
            "-g",
            str(max(1, round(2 * fps))),
            "-bf",
            "0",
            "-threads",
            "1",
            "-x264-params",
            "threads=1:sliced-threads=0",
            "-pix_fmt",
            "yuv420p",
            "-fflags",
            "+bitexact",
            "-map_metadata",
            "-1",
            str(self.path),
        ]
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)

    def write(self, image: np.ndarray) -> None:
        try:
            self._process.stdin.write(np.ascontiguousarray(image).tobytes())
        except BrokenPipeError:
            self._finish()

    def _finish(self) -> None:
        if self._process.stdin and not self._process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self._process.stdin.close()
        error = self._process.stderr.read().decode(errors="replace").strip() if self._process.stderr else ""
        code = self._process.wait()
        if code != 0:
            first = error.splitlines()[0] if error else f"exit code {code}"
            raise UserInputError(f"ffmpeg could not write {self.path.name}: {first}")

    def __enter__(self) -> H264Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._finish()


__all__ = ["BITRATE_KBPS", "H264Writer", "ffmpeg_path", "motion_blur", "scaled_bitrate_kbps", "tone_table"]
