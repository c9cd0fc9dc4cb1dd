"""The face stage: dlib HOG detection now and then, landmark tracking in between, stable face ids.

(:mod:`realtime.stages.faces.process` runs this stage in a second process for a recorded video.)

Detection is the expensive part (about 5 ms on a 320 px copy of a 640×480 frame, 20 ms at full size), so it
runs every ``redetect_ms`` of video, when a face is lost, or while no face is known. In between, each face
is tracked from its own landmarks: the box the 68-point model is fitted in is the previous box moved and
scaled with the previous landmarks (the shape predictor wants a box shaped like the detector's, not the
landmarks' own extent). Fitting 68 landmarks costs under 2 ms, so a face costs about that per frame.

Small faces. HOG's window is 80 px, so the downscaled copy misses faces under about 160 px of a 640×480
frame. While no face is known and the usual search finds none, the frame is also searched upscaled so that
a ``min_face_px`` face fills the window: every time on a small frame (up to 320 px wide with the defaults,
e.g. a 176×144 car-phone clip, where it is cheap), every ``small_search_ms`` on a larger one
(tens of milliseconds at 640×480, paid only while no face is known; there each box it finds, down to a
HOG score a little under dlib's threshold, must be confirmed by dlib's CNN face detector in its own region,
about 50 ms, as an upscaled search can take an eye and its brow for a small face). A tracked face that the
whole-frame search does not see (small, or tilted past what the frontal detector takes) is checked in its own region
instead: the region around its box, rotated upright by its eye line and scaled so that the face is
``region_face_px`` wide, a search of about 1 ms. When HOG does not see it there either, the face is kept if
it still looks like itself (its appearance descriptor, below, against the one of its last confirmed
detection): HOG misses some faces on many frames — a grey photograph, a strong expression — while the
landmarks follow them well. A face that the check misses ``lost_after`` times and that no longer looks like
itself, or whose landmarks jump while the check fails, is lost.

Stable ids. A face keeps its id for as long as it is tracked; a detection that overlaps a tracked face (IoU)
refreshes that face instead of starting a new one. A lost face is remembered for ``remember_ms`` with a
cheap appearance descriptor (its aligned grey face at 32 px, normalised: a fraction of a millisecond,
computed when a face is new and refreshed at confirmed detections); a new face that looks like a remembered
one (normalised correlation ≥ ``same_face``), or is that person by dlib's face-recognition ResNet (asked only
when it looks like none of them: the same face out of focus, lit or sized otherwise; about 60 ms a face), or
appears where one was lost a moment ago, gets its id back.
While a face is remembered, a face that looks like none of them starts a new id only when HOG was sure of it
and the frame holds its whole box: a face coming back in at the frame's edge, cut by it, does not look like
itself (its id waits, unreported, until the box is inside: a few frames), and a face HOG is unsure of (the
upscaled search of a small frame) may only take back the id of a face it looks like.
Two faces that cross: while their boxes touch, descriptors are frozen; when they part, the ids are swapped
back if the faces came out the other way round, and a track that ended up on the other face (the two boxes
on one face) is the one given up, to be re-identified when its face shows again. At most ``max_faces`` are
tracked, largest first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from realtime.core.align import AlignmentSettings, align_face, eye_angle_deg
from realtime.core.errors import OptionError, UserInputError
from realtime.core.landmarks import FaceBox, FaceLandmarker, to_gray

HOG_WINDOW_PX = 80  # dlib's frontal detector finds faces down to about its window's width
DESCRIPTOR = AlignmentSettings(output_size=32, margin=0.0, forehead=0.0)
DUPLICATE_IOU = 0.5  # two tracks this much on top of each other follow one face
EDGE_SLACK = 0.05  # a box this much (fraction of its width) past the frame's edge still counts as inside
INTERVAL_SLACK_MS = 1.0  # frame times are fractions (33.333… ms): an interval is due this much early
CNN_CHECKS = 2  # boxes of one upscaled search of a large frame put to the CNN detector (about 50 ms each)
REJECTED_MS = 2000.0  # a box the CNN detector rejected is not put to it again for this long
RECOGNISED_FACES = 2  # remembered faces a new face is compared with by the face-recognition model (60 ms each)
RECOGNISE_MS = 1000.0  # the face-recognition model is asked at most once in this long


@dataclass(frozen=True)
class TrackingOptions:
    """How often the face stage detects and when it gives a face up.

    ``redetect_ms`` the video time between detections while faces are tracked (in time, not frames, so that
    a 200 fps camera costs no more detections a second than a 30 fps one); ``detect_width`` the width (px)
    of the downscaled copy HOG runs on; ``min_iou`` the overlap that makes a detection the same face;
    ``lost_after`` consecutive detections that miss a tracked face before it is dropped; ``max_jump`` the
    largest move of the landmarks between frames, as a fraction of the face width, before tracking is
    considered lost (the face is then re-detected on the same frame); ``keep_tolerance`` and
    ``rescale_tolerance`` how far (fraction of the width) a fresh detection's centre, and how much its
    width, must differ from a tracked box to replace it (HOG boxes jump between pyramid scales by about
    20 %, and a box that stays put gives steadier landmarks); ``box_tolerance`` how far (fraction of the
    width) the face must move before its box follows. ``min_face_px`` the smallest face width (px of the
    frame) to find, ``small_search_ms`` the time between upscaled whole-frame searches while nothing is
    found, ``weak_score`` the HOG score (dlib's own threshold is 0) down to which a face of a small frame's
    upscaled search counts once the previous frame's search found one there too (0: only dlib's), and
    down to which a box of a larger frame's upscaled search is put to dlib's CNN face detector, which must
    confirm it (``cnn_check``; off: only the boxes HOG is sure of count there, unchecked);
    ``region_face_px`` the width a tracked face is scaled to when its own region is checked;
    ``remember_ms`` how long a lost face's id waits for it to return, ``same_face`` the appearance
    correlation (0-1) that makes a new face a returning one, ``same_person`` the distance between dlib's
    face-recognition descriptors (0-2; about 0.6 separates people) under which a new face that does not look
    like a remembered one is still that person (0: not asked), ``reacquire_ms`` the time between detections
    while a face is missing and a place is free. At 30 fps the three intervals are 15, 10 and 5 frames.
    """

    max_faces: int = 1
    redetect_ms: float = 500.0
    detect_width: int = 320
    min_iou: float = 0.3
    lost_after: int = 2
    max_jump: float = 0.35
    keep_tolerance: float = 0.12
    rescale_tolerance: float = 0.3
    box_tolerance: float = 0.03
    min_face_px: int = 40
    small_search_ms: float = 320.0
    weak_score: float = -0.3
    region_face_px: int = 100
    cnn_check: bool = True
    remember_ms: float = 5000.0
    same_face: float = 0.7
    same_person: float = 0.5
    reacquire_ms: float = 150.0

    def __post_init__(self) -> None:
        if self.max_faces < 1:
            raise OptionError("max_faces", f"must be at least 1, got {self.max_faces}")
        if not 10 <= self.min_face_px <= HOG_WINDOW_PX:
            wanted = f"must be 10-{HOG_WINDOW_PX} px wide"
            raise OptionError("min_face_px", f"(the smallest face) {wanted}, got {self.min_face_px}")
        if not -3.0 <= self.weak_score <= 0.0:
            raise OptionError(
                "weak_score", f"(a HOG score under dlib's threshold 0) must be in [-3, 0], got {self.weak_score}"
            )
        for name in ("redetect_ms", "small_search_ms", "reacquire_ms"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise OptionError(name, f"(one of the search intervals) must be a time ≥ 0 ms, got {value}")
        if self.remember_ms < 0:
            raise OptionError("remember_ms", f"must be ≥ 0, got {self.remember_ms}")
        if not 0.0 < self.same_face <= 1.0:
            raise OptionError("same_face", f"must be in (0, 1], got {self.same_face}")
        if not 0.0 <= self.same_person <= 2.0:
            raise OptionError("same_person", f"(a face-recognition distance) must be in [0, 2], got {self.same_person}")


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


def appearance(gray: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
    """A face's cheap appearance descriptor: its aligned grey face at 32 px, blurred, zero mean, unit norm
    (the dot product of two is their normalised correlation). None when the landmarks cannot be aligned."""
    try:
        crop = align_face(gray, landmarks, DESCRIPTOR).image.astype(np.float32)
    except UserInputError:
        return None
    crop = cv2.GaussianBlur(crop, (3, 3), 0).ravel()
    crop -= crop.mean()
    norm = float(np.linalg.norm(crop))
    return crop / norm if norm > 1e-6 else None


def similarity(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Normalised correlation of two descriptors (-1 when either is missing)."""
    return float(np.dot(a, b)) if a is not None and b is not None else -1.0


@dataclass
class _Track:
    face_id: int  # -1 until its first fit decides whether it is a new face or a returning one
    box: FaceBox
    landmarks: np.ndarray
    misses: int = 0
    anchor: np.ndarray | None = None  # the rigid landmarks' centre when ``box`` was placed
    looked: bool = False  # kept at the last check by its appearance alone (HOG saw no face there)
    descriptor: np.ndarray | None = None
    unsure: bool = False  # HOG has never been sure of it: may take a lost face's id back, never start a new one
    # while a face is remembered, and gives its place to a face HOG is sure of
    cut: bool = False  # its descriptor was taken while the frame's edge cut its box (refreshed once inside)
    view: tuple[np.ndarray, np.ndarray] | None = None  # the face's surroundings and landmarks there (_view)


@dataclass
class _Lost:
    face_id: int
    box: FaceBox
    descriptor: np.ndarray | None
    lost_ms: float
    view: tuple[np.ndarray, np.ndarray] | None = None  # where its identity can be read, if it is ever asked
    identity: np.ndarray | None = None  # dlib's face-recognition descriptor of ``view``, once computed


def _view(gray: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A copy of the grey face and its surroundings (60 % of its size on each side), and its landmarks in that
    copy: what the face-recognition model may later be asked about (a copy, as a caller may reuse its frame
    buffer; up to a few hundred kilobytes, taken when the face's descriptor is)."""
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    margin = 0.6 * max(x1 - x0, y1 - y0)
    left, top = max(int(x0 - margin), 0), max(int(y0 - margin), 0)
    right, bottom = min(int(x1 + margin) + 1, gray.shape[1]), min(int(y1 + margin) + 1, gray.shape[0])
    return gray[top:bottom, left:right].copy(), points - np.float32([left, top])


def _centre(points: np.ndarray) -> np.ndarray:
    """Centre of the rigid landmarks: blinks, smiles and brow movements leave it alone."""
    return points[list(RIGID_POINTS)].mean(axis=0)


def _box_centre(box: FaceBox) -> tuple[float, float]:
    return (box.left + box.right) / 2.0, (box.top + box.bottom) / 2.0


def _touch(a: FaceBox, b: FaceBox) -> bool:
    return min(a.right, b.right) > max(a.left, b.left) and min(a.bottom, b.bottom) > max(a.top, b.top)


def _inside(box: FaceBox, width: int, height: int) -> bool:
    """Whether the frame holds the box (up to ``EDGE_SLACK`` of its width): a face the edge cuts more than
    that looks unlike itself."""
    slack = EDGE_SLACK * box.width
    return box.left >= -slack and box.top >= -slack and box.right <= width + slack and box.bottom <= height + slack


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
    """Detect, track and fit landmarks: ``process(frame, t_ms) → FaceFrame``, one call per frame in order."""

    def __init__(self, options: TrackingOptions | None = None, landmarker: FaceLandmarker | None = None) -> None:
        self.options = options or TrackingOptions()
        self.landmarker = landmarker or FaceLandmarker(detect_width=self.options.detect_width)
        self._tracks: list[_Track] = []
        self._lost: list[_Lost] = []
        self._contacts: set[tuple[int, int]] = set()
        self._next_id = 0
        self._last_detection_ms = -math.inf
        self._small_search_wait_ms = 0.0
        self._upscaled_before: list[FaceBox] = []  # the faces HOG was unsure of at the last upscaled search
        self._unsure: list[FaceBox] = []  # the faces of this search that count only at their second sighting
        self._rejected: list[tuple[FaceBox, float]] = []  # boxes the CNN did not confirm, and when
        self._recognised_ms = -math.inf  # when the face-recognition model was last asked
        self._previous_ms: float | None = None
        self._frame_ms = 0.0  # the time since the previous frame
        self._frames = 0
        self.detections = 0  # how many times HOG ran on the whole frame (benchmarks report it)
        self.region_checks = 0  # how many times a tracked face was checked in its own region
        self.returned = 0  # how many times a lost face got its id back
        self.cnn_checks = 0  # how many boxes dlib's CNN detector was asked about (about 50 ms each)
        self.identities = 0  # how many face-recognition descriptors were computed (about 60 ms each)

    def _fit(self, gray: np.ndarray, box: FaceBox) -> np.ndarray:
        return self.landmarker.landmarks(gray, box)

    # -- finding faces -------------------------------------------------------------------------------------
    def _find(self, gray: np.ndarray) -> list[FaceBox]:
        """The whole-frame search: on the downscaled copy; while no face is known and none is found there,
        also upscaled so that a ``min_face_px`` face fills HOG's window (every time on a small frame, where
        that is cheap; every ``small_search_ms`` on a large one)."""
        width = gray.shape[1]
        base = min(1.0, self.options.detect_width / width) if self.options.detect_width > 0 else 1.0
        fine = HOG_WINDOW_PX / self.options.min_face_px
        boxes = self.landmarker.detect(gray, base)
        if boxes or self._tracks or base >= fine:
            self._upscaled_before = []
            return boxes
        if width * fine <= 2 * max(self.options.detect_width, 1):
            return self._upscaled(gray, fine)
        # the wait counts only time spent searching for a face that is not there: frames with a face in
        # between do not shorten it (a face that has just gone is looked for as usual first)
        self._small_search_wait_ms -= self._frame_ms
        if self._small_search_wait_ms > INTERVAL_SLACK_MS:
            return boxes
        self._small_search_wait_ms = self.options.small_search_ms
        return self._second_opinion(gray, fine)

    def _second_opinion(self, gray: np.ndarray, scale: float) -> list[FaceBox]:
        """The upscaled search of a large frame (every ``small_search_ms`` while no face is known): HOG's boxes
        down to ``weak_score``, each kept only once dlib's CNN detector sees a face there too (``cnn_check``;
        a box HOG was unsure of is moved onto the CNN's face when it sits off it).
        A small face in a compressed frame often scores just under HOG's threshold; and on a large face that
        HOG misses (a grey photograph), the upscaled search can take an eye and its brow for a small face,
        sure of it or not, which then holds an id of its own. The check costs about 50 ms, so at most
        ``CNN_CHECKS`` boxes are checked a search, and a box it rejected is not checked again for
        ``REJECTED_MS``. With ``cnn_check`` off, only the boxes HOG is sure of count, unchecked."""
        if not self.options.cnn_check:
            return self.landmarker.detect(gray, scale)
        now_ms = self._previous_ms or 0.0
        self._rejected = [(box, t_ms) for box, t_ms in self._rejected if 0.0 <= now_ms - t_ms < REJECTED_MS]
        kept: list[FaceBox] = []
        checks = 0
        for box, score in self.landmarker.detect_scored(gray, scale, self.options.weak_score):  # largest first
            if len(kept) >= self.options.max_faces or checks >= CNN_CHECKS:
                break
            if any(_touch(box, k) for k in kept) or any(iou(box, r) >= DUPLICATE_IOU for r, _ in self._rejected):
                continue
            checks += 1
            self.cnn_checks += 1
            face = self.landmarker.cnn_face(gray, box)
            if face is None:
                self._rejected.append((box, now_ms))
                continue
            if score >= 0.0:
                kept.append(box)  # HOG's own box where it was sure: the landmark model fits best in it
            else:  # an unsure box can sit off the face; it follows the unsure rules for ids (see _identify)
                kept.append(face)
                self._unsure.append(face)
        return kept

    def _upscaled(self, gray: np.ndarray, scale: float) -> list[FaceBox]:
        """The upscaled search of a small frame (a car phone's, a cheap webcam's), run on every frame while no
        face is known: the faces HOG is sure of (score ≥ 0), and those it is less sure of (down to
        ``weak_score``) that the previous frame's search found there too. A small face in a small, compressed
        frame often scores just under dlib's threshold: on the training photos' 40–80 px faces in 320×240 and
        176×144 clips this took the frames with a face from 95 to 99.5 %, with no more ids. A second sighting
        a frame later keeps a chance texture from becoming a face at once. Larger frames search upscaled only
        every ``small_search_ms``, too far apart for a second sighting to say much: there dlib's CNN detector
        confirms each box instead (:meth:`_second_opinion`). The sure faces come first, and an unsure box that
        touches one is dropped: a larger box around a face must not take the face's place."""
        if self.options.weak_score >= 0.0:
            return self.landmarker.detect(gray, scale)
        found = self.landmarker.detect_scored(gray, scale, self.options.weak_score)
        weak = [box for box, score in found if score < 0.0]
        before, self._upscaled_before = self._upscaled_before, weak
        sure = [box for box, score in found if score >= 0.0]
        self._unsure = [
            box
            for box in weak
            if any(iou(box, seen) >= self.options.min_iou for seen in before) and not any(_touch(box, s) for s in sure)
        ]
        return sure + self._unsure  # an unsure box around or beside a sure face must not take its place

    def _region_face(self, gray: np.ndarray, track: _Track) -> FaceBox | None:
        """The face in ``track``'s own region, searched upright and at ``region_face_px``: its box in frame
        pixels (upright, the width found) or None."""
        self.region_checks += 1
        box = track.box
        side = max(box.width, box.height, 1)
        scale = float(np.clip(self.options.region_face_px / side, 0.25, HOG_WINDOW_PX / 10))
        out = max(round(2.2 * side * scale), HOG_WINDOW_PX + 8)
        cx, cy = _box_centre(box)
        angle = eye_angle_deg(track.landmarks) if len(track.landmarks) else 0.0
        matrix = cv2.getRotationMatrix2D((cx, cy), angle, scale)
        matrix[:, 2] += (out / 2.0 - cx, out / 2.0 - cy)
        patch = cv2.warpAffine(gray, matrix, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        back = cv2.invertAffineTransform(matrix)
        for found in self.landmarker.detect(patch, 1.0):
            fx, fy = _box_centre(found)
            near = max(abs(fx - out / 2.0), abs(fy - out / 2.0)) <= 0.35 * side * scale
            if near and 0.5 <= found.width / (side * scale) <= 2.0:
                x, y = back @ np.array([fx, fy, 1.0])
                half = found.width / scale / 2.0
                return FaceBox(round(x - half), round(y - half), round(x + half), round(y + half))
        return None

    def _confirm(self, gray: np.ndarray, tracks: list[_Track], t_ms: float, after_jump: bool = False) -> None:
        """Check tracks the whole-frame search did not see in their own regions; lose those that fail too
        often (at once after a landmark jump: a jump with no face there means the face is gone)."""
        for track in tracks:
            found = self._region_face(gray, track) if len(track.landmarks) else None
            track.looked = False
            if found is not None:
                track.misses, track.unsure = 0, False
                if _differs(track.box, found, self.options.keep_tolerance, self.options.rescale_tolerance):
                    track.box, track.anchor = found, None  # as with a whole-frame detection
            elif not after_jump and track.face_id >= 0 and self._looks_like_itself(gray, track):
                track.misses, track.looked = 0, True
            else:
                track.misses = self.options.lost_after if after_jump else track.misses + 1
        for track in [t for t in self._tracks if t.misses >= self.options.lost_after]:
            self._lose(track, t_ms)

    def _looks_like_itself(self, gray: np.ndarray, track: _Track) -> bool:
        """Whether the face where the track's landmarks are still looks like the face HOG last confirmed there
        (its descriptor, correlation ≥ ``same_face``). HOG misses some faces on many frames (a grey photo, a
        strong expression, a slight turn) while the landmarks follow them well; landmarks that slid off the
        face onto the background or a hand no longer look like it, and the face is lost as before."""
        if track.descriptor is None or not len(track.landmarks):
            return False
        return similarity(track.descriptor, appearance(gray, track.landmarks)) >= self.options.same_face

    def _lose(self, track: _Track, t_ms: float) -> None:
        self._tracks.remove(track)
        if track.face_id >= 0:
            self._lost.append(_Lost(track.face_id, track.box, track.descriptor, t_ms, track.view))
            self._contacts = {pair for pair in self._contacts if track.face_id not in pair}

    def _detect(self, gray: np.ndarray, t_ms: float, after_jump: bool = False) -> None:
        """Match fresh detections to the tracks (greedy by IoU), check the unmatched ones in their regions,
        start new tracks."""
        self.detections += 1
        self._last_detection_ms = t_ms
        self._unsure = []
        boxes = self._find(gray)
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
            track.misses, track.looked = 0, False
            track.unsure = track.unsure and boxes[bi] in self._unsure
            if _differs(track.box, boxes[bi], self.options.keep_tolerance, self.options.rescale_tolerance):
                # the face moved or changed size more than tracking followed: take the detection's box
                track.box, track.anchor = boxes[bi], None
        unmatched = [t for ti, t in enumerate(self._tracks) if ti not in used_tracks]
        self._confirm(gray, unmatched, t_ms, after_jump)
        for bi, box in enumerate(boxes):  # boxes come largest first
            if bi in used_boxes or any(iou(box, t.box) >= self.options.min_iou for t in self._tracks):
                continue
            unsure = box in self._unsure
            if len(self._tracks) >= self.options.max_faces:
                # no place left: a face HOG is sure of takes the place of one it has never been sure of (a
                # still texture taken at its second sighting looks like itself for ever and would keep it out)
                doubtful = [t for t in self._tracks if t.unsure]
                if unsure or not doubtful:
                    continue
                self._lose(min(doubtful, key=lambda t: t.box.area), t_ms)
            self._tracks.append(_Track(-1, box, np.zeros((0, 2), np.float32), unsure=unsure))

    # -- ids -----------------------------------------------------------------------------------------------
    def _identify(self, track: _Track, gray: np.ndarray, view: np.ndarray | None, inside: bool, t_ms: float) -> int:
        """A new track's id: a remembered face's that it looks like, or that it is (:meth:`_recognised`), or
        that was lost right there a moment ago; else a fresh one; -1 for "not yet". A returning face keeps the
        descriptor it was remembered by (this view may be cut by the frame's edge or turned). While a face is
        remembered, two kinds of track may not start a new id, as they are often that face coming back looking
        unlike itself: one whose box the frame's edge cuts (its id waits until the box is inside) and one HOG
        was ``unsure`` of (it returns a remembered face only by looking like it or being it). ``view`` is the
        track's descriptor on this frame."""
        active = {t.face_id for t in self._tracks}
        candidates = [lost for lost in self._lost if lost.face_id not in active]
        alike = [lost for lost in candidates if similarity(lost.descriptor, view) >= self.options.same_face]
        best = max(alike, key=lambda lost: similarity(lost.descriptor, view), default=None)
        if best is None and inside and candidates:
            best = self._recognised(track, gray, candidates, t_ms)
        if best is None and not track.unsure:
            nearby = [
                lost
                for lost in candidates
                if t_ms - lost.lost_ms <= 1000.0 and iou(lost.box, track.box) >= self.options.min_iou
            ]
            best = max(nearby, key=lambda lost: iou(lost.box, track.box), default=None)
        if best is not None:
            self._lost.remove(best)
            self.returned += 1
            track.descriptor, track.cut = (
                (best.descriptor, False) if best.descriptor is not None else (view, not inside)
            )
            track.view = best.view if best.view is not None else (_view(gray, track.landmarks) if inside else None)
            return best.face_id
        if self._lost and (track.unsure or not inside):
            return -1
        track.descriptor, track.cut = view, not inside
        track.view = _view(gray, track.landmarks) if inside else None
        self._next_id += 1
        return self._next_id - 1

    def _recognised(self, track: _Track, gray: np.ndarray, candidates: list[_Lost], t_ms: float) -> _Lost | None:
        """The remembered face that ``track``'s face is, by dlib's face-recognition model (descriptor distance
        at most ``same_person``), for a face that looks like none of them by its grey template: the same person
        out of focus, lit or sized otherwise. It costs about 60 ms a face, so it is asked only here, for at most
        ``RECOGNISED_FACES`` remembered faces (the latest lost), and at most once every ``RECOGNISE_MS``."""
        if self.options.same_person <= 0.0 or 0.0 <= t_ms - self._recognised_ms < RECOGNISE_MS:
            return None
        known = sorted((lost for lost in candidates if lost.view is not None), key=lambda lost: -lost.lost_ms)
        if not known:
            return None
        self._recognised_ms = t_ms
        self.identities += 1
        mine = self.landmarker.identity(gray, track.landmarks)
        best, nearest = None, self.options.same_person
        for lost in known[:RECOGNISED_FACES]:
            if lost.identity is None:
                self.identities += 1
                lost.identity = self.landmarker.identity(*lost.view)
            distance = float(np.linalg.norm(mine - lost.identity))
            if distance <= nearest:
                best, nearest = lost, distance
        return best

    def _untangle(self, gray: np.ndarray, t_ms: float) -> None:
        """Faces that cross: give up a track that sits on another's face, and swap ids back when two faces
        that touched part the other way round."""
        identified = [t for t in self._tracks if t.face_id >= 0]  # a track whose id waits has no pair yet
        for a in identified:
            for b in identified:
                if a is b or a.face_id > b.face_id or a not in self._tracks or b not in self._tracks:
                    continue
                pair = (a.face_id, b.face_id)
                if iou(a.box, b.box) >= DUPLICATE_IOU:
                    now = appearance(gray, a.landmarks)
                    worse = a if similarity(a.descriptor, now) < similarity(b.descriptor, now) else b
                    self._lose(worse, t_ms)
                elif _touch(a.box, b.box):
                    self._contacts.add(pair)
                elif pair in self._contacts:
                    self._contacts.discard(pair)
                    now_a, now_b = appearance(gray, a.landmarks), appearance(gray, b.landmarks)
                    kept = similarity(a.descriptor, now_a) + similarity(b.descriptor, now_b)
                    swapped = similarity(a.descriptor, now_b) + similarity(b.descriptor, now_a)
                    if swapped > kept + 0.1:
                        a.face_id, b.face_id = b.face_id, a.face_id
                        a.descriptor, b.descriptor = b.descriptor, a.descriptor
                        a.view, b.view = b.view, a.view

    # -- the frame -----------------------------------------------------------------------------------------
    def process(self, frame: np.ndarray, t_ms: float | None = None) -> FaceFrame:
        """Faces on this frame, each with 68 landmarks, largest first. ``t_ms`` is the frame's time (it says
        how long a lost face has been gone; without it frames are taken as 1/30 s apart)."""
        gray = to_gray(frame)
        self._frames += 1
        t_ms = (self._frames - 1) * 1000.0 / 30.0 if t_ms is None else float(t_ms)
        self._frame_ms = max(t_ms - self._previous_ms, 0.0) if self._previous_ms is not None else 0.0
        self._previous_ms = t_ms
        self._lost = [lost for lost in self._lost if t_ms - lost.lost_ms <= self.options.remember_ms]
        since_detection_ms = t_ms - self._last_detection_ms + INTERVAL_SLACK_MS
        if since_detection_ms < 0:  # the clock went back (a looped or restarted source): start afresh
            since_detection_ms = math.inf
        free = len(self._tracks) < self.options.max_faces
        waiting = any(t.face_id < 0 for t in self._tracks)  # a track whose id waits is checked as often
        detected_now = False
        if (
            not self._tracks
            or since_detection_ms >= self.options.redetect_ms
            or ((free or waiting) and self._lost and since_detection_ms >= self.options.reacquire_ms)
        ):
            self._detect(gray, t_ms)
            detected_now = True
        elif any(t.misses for t in self._tracks):  # missed at the last detection: check again at once
            self._confirm(gray, [t for t in self._tracks if t.misses], t_ms)
        faces = self._fit_all(gray, detected_now, t_ms)
        if faces is None:  # a track jumped: detect on this frame and fit again
            self._detect(gray, t_ms, after_jump=True)
            detected_now = True
            faces = self._fit_all(gray, True, t_ms) or []
        faces.sort(key=lambda f: f.box.area, reverse=True)
        return FaceFrame(tuple(faces), gray, detected_now)

    def _fit_all(self, gray: np.ndarray, detected_now: bool, t_ms: float) -> list[TrackedFace] | None:
        height, width = gray.shape[:2]
        for track in list(self._tracks):
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
                    self._lose(track, t_ms)
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
            inside = _inside(box, width, height)
            confirmed = detected_now and track.misses == 0 and not track.looked  # HOG saw it on this frame
            if track.face_id < 0 and confirmed:  # new: a face never seen, or one coming back?
                track.face_id = self._identify(track, gray, appearance(gray, points), inside, t_ms)
                if track.face_id < 0 and track.unsure:  # not a remembered face: not taken
                    self._tracks.remove(track)
            elif track.face_id >= 0 and confirmed and not any(track.face_id in p for p in self._contacts):
                now = appearance(gray, points)  # confirmed by HOG and alone: keep the descriptor current
                if (
                    similarity(track.descriptor, now) >= self.options.same_face
                    or track.descriptor is None
                    or (track.cut and inside)
                ):
                    track.descriptor, track.cut = now, not inside
                    track.view = _view(gray, points) if inside else track.view
        if len(self._tracks) > 1:
            self._untangle(gray, t_ms)
        # a track whose id waits (its box cut by the frame's edge while a lost face is remembered) is followed
        # but not reported
        return [
            TrackedFace(
                t.face_id,
                t.box,
                t.landmarks,
                detected_now and t.misses == 0 and not t.looked,
                eye_angle_deg(t.landmarks),
            )
            for t in self._tracks
            if t.face_id >= 0
        ]
