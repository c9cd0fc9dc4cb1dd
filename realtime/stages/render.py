"""The overlay: face boxes, optional landmarks, the spotting signal as a scrolling sparkline, the last
event's label and confidence (held for a moment), and the frame rate.

The sparkline shows the last ``sparkline_ms`` of each face's signal on a compressed scale (log), with the
threshold as a line and events under way shaded: what the spotter sees, at a glance. Drawing happens on a
copy; the source frame is never changed.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from realtime.pipeline import FrameResult

_GREEN, _CYAN, _WHITE, _GREY, _RED, _YELLOW = (
    (80, 200, 80),
    (220, 200, 40),
    (255, 255, 255),
    (150, 150, 150),
    (60, 60, 230),
    (40, 220, 240),
)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class RenderOptions:
    """``landmarks`` draws the 68 points; ``sparkline_ms`` is the span of the signal plot; ``hold_ms`` how
    long (stream time) an event's label stays up; ``show_rejected`` also names rejected rises (blink,
    macro…) briefly, in grey."""

    landmarks: bool = False
    sparkline_ms: float = 4000.0
    hold_ms: float = 2000.0
    show_rejected: bool = True


@dataclass
class _Label:
    text: str
    until_ms: float
    colour: tuple[int, int, int]


def _compress(value: float) -> float:
    return math.log1p(max(value, 0.0))


class Renderer:
    """``render(result, fps) → annotated BGR image`` (a new array)."""

    def __init__(self, options: RenderOptions | None = None) -> None:
        self.options = options or RenderOptions()
        self._history: dict[int, deque[tuple[float, float, float, bool]]] = {}
        self._labels: dict[int, _Label] = {}

    def render(self, result: FrameResult, fps: float | None = None) -> np.ndarray:
        image = result.frame.image.copy()
        now = result.frame.t_ms
        for signal in result.signals:
            history = self._history.setdefault(signal.face_id, deque())
            history.append((now, signal.signal, signal.threshold, signal.in_event))
            while history and now - history[0][0] > self.options.sparkline_ms:
                history.popleft()
        seen = {face.face_id for face in result.faces}
        for face_id in [f for f in self._history if f not in seen]:
            if now - self._history[face_id][-1][0] > self.options.sparkline_ms:
                del self._history[face_id]
        for event in result.events:
            text = f"{event.label} {event.confidence:.0%}" if event.label else "micro-expression"
            self._labels[event.face] = _Label(text, now + self.options.hold_ms, _YELLOW)
        if self.options.show_rejected:
            for rejected in result.rejected:
                current = self._labels.get(rejected.face_id)
                if current is None or current.colour == _GREY or current.until_ms < now:
                    self._labels[rejected.face_id] = _Label(
                        f"({rejected.kind})", now + 0.5 * self.options.hold_ms, _GREY
                    )

        scale = max(image.shape[1] / 640.0, 0.5)
        for slot, (face, signal) in enumerate(zip(result.faces, result.signals, strict=True)):
            box = face.box
            colour = _CYAN if face.detected else _GREEN
            cv2.rectangle(image, (box.left, box.top), (box.right - 1, box.bottom - 1), colour, max(1, round(scale)))
            cv2.putText(
                image,
                f"face {face.face_id}",
                (box.left, max(box.top - 6, 12)),
                _FONT,
                0.45 * scale,
                colour,
                1,
                cv2.LINE_AA,
            )
            if self.options.landmarks:
                for x, y in face.landmarks:
                    cv2.circle(image, (round(float(x)), round(float(y))), 1, _WHITE, -1, cv2.LINE_AA)
            label = self._labels.get(face.face_id)
            if label is not None and label.until_ms >= now:
                cv2.putText(
                    image,
                    label.text,
                    (box.left, min(box.bottom + round(20 * scale), image.shape[0] - 4)),
                    _FONT,
                    0.6 * scale,
                    label.colour,
                    2,
                    cv2.LINE_AA,
                )
            self._sparkline(image, slot, signal.face_id, now, scale)
        if fps is not None:
            cv2.putText(image, f"{fps:5.1f} fps", (8, round(22 * scale)), _FONT, 0.6 * scale, _WHITE, 2, cv2.LINE_AA)
        if not result.faces:
            cv2.putText(image, "no face", (8, round(44 * scale)), _FONT, 0.6 * scale, _GREY, 2, cv2.LINE_AA)
        return image

    def _sparkline(self, image: np.ndarray, slot: int, face_id: int, now: float, scale: float) -> None:
        history = self._history.get(face_id)
        if not history:
            return
        height, width = round(48 * scale), round(min(200 * scale, image.shape[1] - 16))
        x0 = 8
        y1 = image.shape[0] - 8 - slot * (height + 8)
        y0 = y1 - height
        if y0 < 0 or width < 20:
            return
        panel = image[y0:y1, x0 : x0 + width]
        panel[:] = (panel * 0.4).astype(np.uint8)
        top = max(_compress(max(v for _, v, _, _ in history)), _compress(max(t for _, _, t, _ in history)) * 1.5, 1.0)
        span = self.options.sparkline_ms

        def point(t_ms: float, value: float) -> tuple[int, int]:
            x = x0 + round((1.0 - (now - t_ms) / span) * (width - 1))
            y = y1 - 1 - round(_compress(value) / top * (height - 2))
            return x, y

        for t_ms, _, _, active in history:
            if active:
                x, _ = point(t_ms, 0.0)
                cv2.line(image, (x, y0), (x, y1 - 1), (40, 40, 120), 1)
        threshold = history[-1][2]
        _, ty = point(now, threshold)
        cv2.line(image, (x0, ty), (x0 + width - 1, ty), _RED, 1)
        points = np.array([point(t, v) for t, v, _, _ in history], np.int32)
        if len(points) > 1:
            cv2.polylines(image, [points], False, _GREEN, 1, cv2.LINE_AA)
        cv2.putText(image, f"{face_id}", (x0 + 3, y0 + 12), _FONT, 0.35 * scale, _WHITE, 1, cv2.LINE_AA)
