"""The face stage: dlib HOG detection now and then, landmark tracking in between, stable face ids.

Detection is the expensive part (about 5 ms on a 320 px copy of a 640×480 frame, 20 ms at full size), so it
runs every ``redetect_every`` frames, when a face is lost, or while no face is known. In between, each face
is tracked from its own landmarks: the box the 68-point model is fitted in is the previous box moved and
scaled with the previous landmarks (the shape predictor wants a box shaped like the detector's, not the
landmarks' own extent). Fitting 68 landmarks costs under 2 ms, so a face costs about that per frame.

Faces keep an id for as long as they are tracked; a detection that overlaps a tracked face (IoU) refreshes
that face instead of starting a new one. At most ``max_faces`` are tracked, largest first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realtime.align import eye_angle_deg
from realtime.errors import UserInputError
from realtime.landmarks import FaceBox, FaceLandmarker, to_gray


@dataclass(frozen=True)
class TrackingOptions:
    """How often the face stage detects and when it gives a face up.

    ``redetect_every`` frames between detections while faces are tracked; ``detect_width`` the width (px)
    of the downscaled copy HOG runs on; ``min_iou`` the overlap that makes a detection the same face;
    ``lost_after`` consecutive detections that miss a tracked face before it is dropped; ``max_jump`` the
    largest move of the landmarks between frames, as a fraction of the face width, before tracking is
    considered lost (the face is then re-detected on the same frame); ``keep_tolerance`` and
    ``rescale_tolerance`` how far (fraction of the width) a fresh detection's centre, and how much its
    width, must differ from a tracked box to replace it (HOG boxes jump between pyramid scales by about
    20 %, and a box that stays put gives steadier landmarks); ``box_tolerance`` how far (fraction of the
    width) the face must move before its box follows.
    """

    max_faces: int = 1
    redetect_every: int = 15
    detect_width: int = 320
    min_iou: float = 0.3
    lost_after: int = 2
    max_jump: float = 0.35
    keep_tolerance: float = 0.12
    rescale_tolerance: float = 0.3
    box_tolerance: float = 0.03

    def __post_init__(self) -> None:
        if self.max_faces < 1:
            raise UserInputError(f"--max-faces must be at least 1, got {self.max_faces}")
        if self.redetect_every < 1:
            raise UserInputError(f"re-detection interval must be at least 1 frame, got {self.redetect_every}")


@dataclass(frozen=True)
class TrackedFace:
    """One face on one frame: its stable ``face_id``, the box its landmarks were fitted in (full-frame
    pixels), the 68 landmarks (float32, (68, 2)), whether the box came from a detection on this frame
    (``detected``) or from tracking, and the eye-line angle θ of the alignment (degrees)."""

    face_id: int
    box: FaceBox
    landmarks: np.ndarray
    detected: bool
    angle_deg: float


@dataclass(frozen=True)
class FaceFrame:
    """The face stage's result for one frame: the faces, largest first, and the grey frame they were
    found on (later stages align from it instead of converting the frame again)."""

    faces: tuple[TrackedFace, ...]
    gray: np.ndarray
    detection_ran: bool


def iou(a: FaceBox, b: FaceBox) -> float:
    """Intersection over union of two boxes (0 when they do not overlap)."""
    w = min(a.right, b.right) - max(a.left, b.left)
    h = min(a.bottom, b.bottom) - max(a.top, b.top)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / float(a.area + b.area - inter)


RIGID_POINTS = (27, 28, 29, 30, 31, 33, 35, 36, 39, 42, 45)  # nose and eye corners: expressions barely move them


@dataclass
class _Track:
    face_id: int
    box: FaceBox
    landmarks: np.ndarray
    misses: int = 0
    anchor: np.ndarray | None = None  # the rigid landmarks' centre when ``box`` was placed


def _centre(points: np.ndarray) -> np.ndarray:
    """Centre of the rigid landmarks: blinks, smiles and brow movements leave it alone."""
    return points[list(RIGID_POINTS)].mean(axis=0)


def _shifted(box: FaceBox, dx: float, dy: float) -> FaceBox:
    return FaceBox(round(box.left + dx), round(box.top + dy), round(box.right + dx), round(box.bottom + dy))


def _differs(a: FaceBox, b: FaceBox, centre_tolerance: float, size_tolerance: float) -> bool:
    """Whether ``b``'s centre is more than ``centre_tolerance`` of ``a``'s width away from ``a``'s, or its
    width differs by more than ``size_tolerance`` of it."""
    width = max(a.width, 1)
    return (
        abs((b.left + b.right) - (a.left + a.right)) / 2 > centre_tolerance * width
        or abs((b.top + b.bottom) - (a.top + a.bottom)) / 2 > centre_tolerance * width
        or abs(b.width - a.width) > size_tolerance * width
    )


class FaceTracker:
    """Detect, track and fit landmarks: ``process(frame) → FaceFrame``, one call per frame in order."""

    def __init__(self, options: TrackingOptions | None = None, landmarker: FaceLandmarker | None = None) -> None:
        self.options = options or TrackingOptions()
        self.landmarker = landmarker or FaceLandmarker(detect_width=self.options.detect_width)
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._since_detection = 0
        self.detections = 0  # how many times HOG ran (benchmarks report it)

    def _fit(self, gray: np.ndarray, box: FaceBox) -> np.ndarray:
        return self.landmarker.landmarks(gray, box)

    def _detect(self, gray: np.ndarray) -> None:
        """Match fresh detections to the tracks (greedy by IoU), start new tracks, age unmatched ones."""
        self.detections += 1
        self._since_detection = 0
        boxes = self.landmarker.detect(gray)
        pairs = sorted(
            ((iou(t.box, b), ti, bi) for ti, t in enumerate(self._tracks) for bi, b in enumerate(boxes)),
            reverse=True,
        )
        used_tracks: set[int] = set()
        used_boxes: set[int] = set()
        for overlap, ti, bi in pairs:
            if overlap < self.options.min_iou or ti in used_tracks or bi in used_boxes:
                continue
            used_tracks.add(ti)
            used_boxes.add(bi)
            track = self._tracks[ti]
            track.misses = 0
            if _differs(track.box, boxes[bi], self.options.keep_tolerance, self.options.rescale_tolerance):
                # the face moved or changed size more than tracking followed: take the detection's box
                track.box, track.anchor = boxes[bi], None
        for ti, track in enumerate(self._tracks):
            if ti not in used_tracks:
                track.misses += 1
        self._tracks = [t for t in self._tracks if t.misses < self.options.lost_after]
        for bi, box in enumerate(boxes):  # boxes come largest first
            if bi in used_boxes or len(self._tracks) >= self.options.max_faces:
                continue
            if any(iou(box, t.box) >= self.options.min_iou for t in self._tracks):
                continue
            self._tracks.append(_Track(self._next_id, box, np.zeros((0, 2), np.float32)))
            self._next_id += 1

    def process(self, frame: np.ndarray) -> FaceFrame:
        """Faces on this frame, each with 68 landmarks, largest first."""
        gray = to_gray(frame)
        self._since_detection += 1
        detected_now = False
        if not self._tracks or self._since_detection >= self.options.redetect_every:
            self._detect(gray)
            detected_now = True
        faces = self._fit_all(gray, detected_now)
        if faces is None:  # a track jumped: detect on this frame and fit again
            self._detect(gray)
            detected_now = True
            faces = self._fit_all(gray, True) or []
        faces.sort(key=lambda f: f.box.area, reverse=True)
        return FaceFrame(tuple(faces), gray, detected_now)

    def _fit_all(self, gray: np.ndarray, detected_now: bool) -> list[TrackedFace] | None:
        faces = []
        height, width = gray.shape[:2]
        for track in self._tracks:
            if track.anchor is not None:
                # follow the rigid landmarks' centre, only once the face has really moved: a box that stays
                # put gives landmarks that stay put (dlib's fit depends on the box). The box never scales
                # with the landmarks (that loop can run away); size changes come from detections.
                dx, dy = _centre(track.landmarks) - track.anchor
                if max(abs(dx), abs(dy)) > self.options.box_tolerance * track.box.width:
                    track.box = _shifted(track.box, dx, dy)
                    track.anchor = track.anchor + np.array([dx, dy])
            box = track.box
            if box.right <= 0 or box.bottom <= 0 or box.left >= width or box.top >= height or box.area < 16:
                if detected_now:
                    track.misses = self.options.lost_after  # gone from the frame
                    continue
                return None
            points = self._fit(gray, box)
            if track.anchor is not None:
                jump = float(np.abs(points.mean(axis=0) - track.landmarks.mean(axis=0)).max())
                if jump > self.options.max_jump * max(box.width, 1) and not detected_now:
                    return None
            else:
                track.anchor = _centre(points)
            track.landmarks = points
            faces.append(
                TrackedFace(track.face_id, box, points, detected_now and track.misses == 0, eye_angle_deg(points))
            )
        self._tracks = [t for t in self._tracks if t.misses < self.options.lost_after]
        return faces
