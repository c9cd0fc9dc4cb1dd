"""Facial action units as landmark displacements, emotions as AU combinations, and clip time profiles.

Every action unit (AU, Ekman & Friesen's FACS) is a set of displacements of dlib's 68 landmarks, written
in units of the inter-ocular distance (IOD: the distance between the two eye centres) and in the face's own
frame (x from the image-left eye to the image-right eye, y perpendicular to it, towards the chin), so a
rolled or scaled face moves the same way. Lateral components are written as *outward* (away from the
midline): each AU is written for the subject's right side (the image-left half) and mirrored to the other.

The magnitudes are those of a realistic micro-expression at its apex: landmarks move 1–8 % of the IOD
(``amplitude=1``). Macro expressions (CK+) are about three times larger (:data:`MACRO_SCALE`). The
displacements are turned into a smooth dense warp by :mod:`training.synth.warp`.

Emotions follow the CASME II coding criteria (Yan et al. 2014): happiness = AU6+AU12 or AU12; disgust =
AU9 or AU10, optionally with AU4; surprise = AU1+AU2, optionally with AU25/AU26 or AU5; repression = AU14,
AU15, AU17, AU24 and their combinations; others = movements outside those (AU7, AU1 or AU4 alone, …). Fear,
sadness, anger and contempt (CASME II 7-class, CK+, SAMM) use the EMFACS prototypes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from realtime.core.errors import UserInputError

N_LANDMARKS = 68
RIGHT_EYE = slice(36, 42)  # the subject's right eye: the image-left one in a frontal photo
LEFT_EYE = slice(42, 48)
MACRO_SCALE = 3.0  # macro (posed, CK+) expressions move landmarks about 10–25 % of the IOD


def _mirror_permutation() -> np.ndarray:
    """Index ``i`` of dlib's 68-point scheme ↔ its mirror image (a horizontally flipped face re-indexed)."""
    pairs = [(i, 16 - i) for i in range(8)]  # jaw
    pairs += [(17 + i, 26 - i) for i in range(5)]  # brows
    pairs += [(31, 35), (32, 34)]  # nostrils
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]  # outer lips
    pairs += [(60, 64), (61, 63), (65, 67)]  # inner lips
    permutation = np.arange(N_LANDMARKS)
    for a, b in pairs:
        permutation[a], permutation[b] = b, a
    return permutation


MIRROR = _mirror_permutation()
"""``points[MIRROR]`` re-indexes the landmarks of a horizontally flipped face so that index ``i`` keeps its
meaning (36–41 stay the image-left eye)."""

_RIGHT_SIDE = frozenset([*range(0, 8), *range(17, 22), 31, 32, *range(36, 42), 48, 49, 50, 58, 59, 60, 61, 67])
SIDE = np.array([-1 if i in _RIGHT_SIDE else (1 if MIRROR[i] in _RIGHT_SIDE else 0) for i in range(N_LANDMARKS)])
"""−1 for landmarks on the subject's right (image-left), +1 on the left, 0 on the midline."""

PINNED = (0, 8, 16, 27, 28, 36, 39, 42, 45)
"""Landmarks held still unless an action moves them: the jaw outline (so the head does not move), the nose
bridge and the eye corners (the alignment levels the eyes on 39 and 42, so they must not drift)."""


@dataclass(frozen=True)
class FaceAxes:
    """The face frame, the face's own axes: origin between the eyes, ``ex`` towards the image-right eye,
    ``ey`` towards the chin, both unit vectors in image pixels, and the IOD in pixels."""

    origin: tuple[float, float]
    ex: tuple[float, float]
    ey: tuple[float, float]
    iod: float

    @classmethod
    def from_landmarks(cls, landmarks: np.ndarray) -> FaceAxes:
        points = np.asarray(landmarks, dtype=np.float64)
        right, left = points[RIGHT_EYE].mean(axis=0), points[LEFT_EYE].mean(axis=0)
        axis = left - right
        iod = float(np.hypot(*axis))
        if not math.isfinite(iod) or iod < 1.0:
            raise UserInputError("the eyes are less than a pixel apart; these are not a face's landmarks")
        ex = axis / iod
        centre = (left + right) / 2.0
        return cls(
            (float(centre[0]), float(centre[1])), (float(ex[0]), float(ex[1])), (-float(ex[1]), float(ex[0])), iod
        )

    def to_pixels(self, displacements: np.ndarray) -> np.ndarray:
        """Face-frame displacements in IOD units (N×2) → image-pixel displacements (N×2)."""
        d = np.asarray(displacements, dtype=np.float64)
        basis = np.array([self.ex, self.ey]) * self.iod  # rows: pixel vector of one IOD along x, along y
        return d @ basis

    def to_face(self, pixels: np.ndarray) -> np.ndarray:
        """Image-pixel displacements (N×2) → face-frame displacements in IOD units (N×2)."""
        basis = np.array([self.ex, self.ey])
        return np.asarray(pixels, dtype=np.float64) @ basis.T / self.iod


# --- action units ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionUnit:
    """One FACS action unit.

    ``moves`` lists ``(landmark, outward, down)`` displacements in IOD units at the apex of a realistic
    micro-expression, for the subject's right side and the midline; the left side is mirrored. ``closure``
    (eyelid AUs 43/45) instead closes the eyes by that fraction of their opening, whatever the amplitude.
    """

    number: int
    name: str
    moves: tuple[tuple[int, float, float], ...] = ()
    closure: float = 0.0

    def displacements(self, landmarks: np.ndarray, side: str | None = None) -> np.ndarray:
        """Face-frame displacements (68×2, IOD units) of this AU on a face: both sides, or only the
        subject's ``'R'`` or ``'L'`` side (midline points then move half as much)."""
        out = np.zeros((N_LANDMARKS, 2))
        for index, outward, down in self.moves:
            for i in {index, int(MIRROR[index])}:
                out[i] = (outward * SIDE[i], down)
        if self.closure:
            out += _eyelid_closure(landmarks, self.closure)
        if side is not None:
            keep = -1 if side == "R" else 1
            weight = np.where(np.equal(SIDE, keep), 1.0, np.where(SIDE == 0, 0.5, 0.0))
            out *= weight[:, None]
        return out


def _eyelid_closure(landmarks: np.ndarray, fraction: float) -> np.ndarray:
    """Upper lids move down (and lower lids a little up) to close each eye by ``fraction`` of its opening."""
    frame = FaceAxes.from_landmarks(landmarks)
    points = np.asarray(landmarks, dtype=np.float64)
    out = np.zeros((N_LANDMARKS, 2))
    for upper, lower in ((37, 41), (38, 40), (43, 47), (44, 46)):
        opening = float(frame.to_face(points[lower] - points[upper])[1])
        out[upper, 1] = 0.85 * fraction * max(opening, 0.0)
        out[lower, 1] = -0.15 * fraction * max(opening, 0.0)
    return out


def _au(number: int, name: str, *moves: tuple[int, float, float], closure: float = 0.0) -> ActionUnit:
    return ActionUnit(number, name, tuple(moves), closure)


ACTION_UNITS: Mapping[int, ActionUnit] = {
    au.number: au
    for au in (
        _au(1, "inner brow raiser", (21, 0, -0.06), (20, 0, -0.045), (19, 0, -0.025), (18, 0, -0.01)),
        _au(2, "outer brow raiser", (17, 0.005, -0.05), (18, 0, -0.055), (19, 0, -0.04), (20, 0, -0.02)),
        _au(
            4,
            "brow lowerer",
            (21, -0.02, 0.03),
            (20, -0.02, 0.04),
            (19, -0.01, 0.035),
            (18, 0, 0.02),
            (17, 0, 0.01),
            (37, 0, 0.008),
            (38, 0, 0.01),
        ),
        _au(5, "upper lid raiser", (37, 0, -0.025), (38, 0, -0.025)),
        _au(6, "cheek raiser", (40, 0, -0.02), (41, 0, -0.02), (17, 0, 0.008), (48, 0.005, -0.008)),
        _au(7, "lid tightener", (40, 0, -0.025), (41, 0, -0.025), (37, 0, 0.008), (38, 0, 0.008)),
        _au(
            9,
            "nose wrinkler",
            (31, 0.008, -0.03),
            (32, 0.004, -0.03),
            (33, 0, -0.03),
            (30, 0, -0.015),
            (29, 0, -0.006),
            (50, 0, -0.02),
            (51, 0, -0.02),
            (49, 0, -0.012),
            (61, 0, -0.015),
            (62, 0, -0.015),
            (21, 0, 0.015),
            (20, 0, 0.008),
        ),
        _au(
            10,
            "upper lip raiser",
            (50, 0, -0.05),
            (51, 0, -0.05),
            (49, 0, -0.04),
            (61, 0, -0.045),
            (62, 0, -0.045),
            (48, 0, -0.015),
            (60, 0, -0.02),
            (31, 0.004, -0.025),
            (32, 0, -0.025),
            (33, 0, -0.025),
            (30, 0, -0.01),
        ),
        _au(
            12,
            "lip corner puller",
            (48, 0.06, -0.04),
            (60, 0.05, -0.035),
            (49, 0.03, -0.025),
            (59, 0.03, -0.015),
            (61, 0.02, -0.015),
            (67, 0.02, -0.01),
            (50, 0.01, -0.01),
            (58, 0.01, -0.005),
        ),
        _au(14, "dimpler", (48, 0.03, 0), (60, 0.03, 0), (49, 0.012, 0), (59, 0.012, 0), (61, 0.01, 0), (67, 0.01, 0)),
        _au(
            15,
            "lip corner depressor",
            (48, 0.01, 0.05),
            (60, 0.008, 0.045),
            (59, 0.004, 0.025),
            (67, 0, 0.02),
            (49, 0, 0.015),
            (58, 0, 0.01),
        ),
        _au(
            17,
            "chin raiser",
            (57, 0, -0.03),
            (58, 0, -0.03),
            (59, 0, -0.025),
            (66, 0, -0.025),
            (67, 0, -0.022),
            (62, 0, -0.02),
            (61, 0, -0.018),
            (51, 0, -0.014),
            (50, 0, -0.012),
            (8, 0, -0.03),
            (7, 0, -0.025),
            (6, 0, -0.012),
        ),
        _au(
            20,
            "lip stretcher",
            (48, 0.05, 0.01),
            (60, 0.045, 0.01),
            (49, 0.02, 0.005),
            (59, 0.02, 0.005),
            (61, 0.015, 0),
            (67, 0.015, 0),
        ),
        _au(
            23,
            "lip tightener",
            (48, -0.025, 0),
            (60, -0.02, 0),
            (49, -0.01, 0.005),
            (59, -0.01, -0.005),
            (50, 0, 0.008),
            (51, 0, 0.008),
            (57, 0, -0.008),
            (58, 0, -0.008),
        ),
        _au(
            24,
            "lip pressor",
            (50, 0, 0.012),
            (51, 0, 0.012),
            (49, 0, 0.008),
            (57, 0, -0.012),
            (58, 0, -0.012),
            (59, 0, -0.008),
            (48, -0.008, 0),
            (60, -0.006, 0),
        ),
        _au(
            25,
            "lips part",
            (66, 0, 0.04),
            (67, 0, 0.035),
            (57, 0, 0.025),
            (58, 0, 0.022),
            (59, 0, 0.012),
            (62, 0, -0.01),
            (61, 0, -0.008),
        ),
        _au(
            26,
            "jaw drop",
            (57, 0, 0.06),
            (58, 0, 0.055),
            (59, 0, 0.04),
            (66, 0, 0.07),
            (67, 0, 0.06),
            (8, 0, 0.06),
            (7, 0, 0.055),
            (6, 0, 0.045),
            (5, 0, 0.03),
            (4, 0, 0.012),
            (48, 0, 0.015),
            (60, 0, 0.02),
        ),
        _au(43, "eyes closed", closure=1.0),
        _au(45, "blink", closure=1.0),
    )
}
"""The AUs the generator can produce, by number."""

FIXED_SIZE_AUS = frozenset({43, 45})
"""AUs whose size is set by the face (eye opening), not by the expression amplitude."""

_AU_CODE = re.compile(r"^\s*([LR]?)\s*(\d+)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class AUCode:
    """One coded action: an AU number, optionally on one side (``'R'`` / ``'L'``: the subject's right or
    left, FACS's convention), at a relative ``intensity`` (1.0 = the table's apex)."""

    au: int
    side: str | None = None
    intensity: float = 1.0

    def __post_init__(self) -> None:
        if self.au not in ACTION_UNITS:
            known = ", ".join(str(n) for n in ACTION_UNITS)
            raise UserInputError(f"unknown action unit AU{self.au}; the generator knows AUs {known}")
        if self.side not in (None, "R", "L"):
            raise UserInputError(f"an AU side is 'R' or 'L', got {self.side!r}")

    @classmethod
    def parse(cls, text: str, intensity: float = 1.0) -> AUCode:
        """``'12'`` → AU12 on both sides; ``'R14'`` → AU14 on the subject's right."""
        match = _AU_CODE.match(str(text))
        if match is None:
            raise UserInputError(f"cannot read action unit {text!r}; write it like 12, R14 or L12")
        side = match.group(1).upper() or None
        return cls(int(match.group(2)), side, intensity)

    def __str__(self) -> str:
        return f"{self.side or ''}{self.au}"


def format_action_units(codes: Iterable[AUCode]) -> str:
    """The coding sheets' way of writing an AU combination: ``'6+12'``, ``'R12+R14'``."""
    return "+".join(str(c) for c in codes)


def expression_displacements(
    landmarks: np.ndarray, codes: Sequence[AUCode], amplitude: float = 1.0, max_closure: float = 0.7
) -> np.ndarray:
    """Image-pixel displacements (68×2) of the landmarks at the apex of an AU combination.

    The AUs' face-frame displacements add up, are scaled by ``amplitude`` (except the eyelid AUs 43/45) and
    turned into pixels with the face's own frame. Each eye's opening then shrinks by at most
    ``max_closure`` of itself, whatever the amplitude (a soft limit), so that a strong AU6/AU7 narrows the
    eye instead of pushing the lower lid through the upper one.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    frame = FaceAxes.from_landmarks(points)
    face = np.zeros((N_LANDMARKS, 2))
    for code in codes:
        unit = ACTION_UNITS[code.au]
        scale = code.intensity * (1.0 if code.au in FIXED_SIZE_AUS else amplitude)
        face += scale * unit.displacements(points, code.side)
    _limit_eye_closure(frame.to_face(points - np.array(frame.origin)), face, max_closure)
    return frame.to_pixels(face)


def _limit_eye_closure(points_face: np.ndarray, moves: np.ndarray, max_closure: float) -> None:
    """In place: soften the vertical approach of each upper/lower eyelid pair (face frame, IOD units) so
    that the pair closes by at most ``max_closure`` of its opening (linear up to 2/3 of it, then tanh)."""
    knee = 2.0 / 3.0 * max_closure
    for upper, lower in ((37, 41), (38, 40), (43, 47), (44, 46)):
        opening = points_face[lower, 1] - points_face[upper, 1]
        if opening <= 1e-6:
            continue
        closure = (moves[upper, 1] - moves[lower, 1]) / opening
        if closure <= knee:
            continue
        limited = knee + (max_closure - knee) * math.tanh((closure - knee) / (max_closure - knee))
        common = (moves[upper, 1] + moves[lower, 1]) / 2.0
        ratio = limited / closure
        half = (moves[upper, 1] - moves[lower, 1]) / 2.0 * ratio
        moves[upper, 1], moves[lower, 1] = common + half, common - half


# --- emotions --------------------------------------------------------------------------------------------------

EMOTION_ACTION_UNITS: Mapping[str, tuple[tuple[str, ...], ...]] = {
    # CASME II's criteria (Yan et al. 2014, table 3)
    "happiness": (("6", "12"), ("12",), ("6", "12", "25")),
    "disgust": (("9",), ("10",), ("4", "9"), ("4", "10")),
    "surprise": (("1", "2"), ("1", "2", "25"), ("1", "2", "25", "26"), ("1", "2", "5")),
    "repression": (("14",), ("15",), ("17",), ("24",), ("15", "17"), ("17", "24"), ("14", "24")),
    "others": (("7",), ("1",), ("4",), ("4", "7"), ("2",)),
    # EMFACS prototypes for the classes CASME II 7-class, CK+ and SAMM add
    "fear": (("1", "2", "4", "5", "20"), ("1", "2", "4", "20"), ("1", "4", "20", "25")),
    "sadness": (("1", "4", "15"), ("1", "4", "15", "17"), ("1", "15")),
    "anger": (("4", "5", "7", "23"), ("4", "5", "7", "24"), ("4", "7", "23")),
    "contempt": (("R14",), ("L14",), ("R12", "R14"), ("L12", "L14")),
}
"""Emotion → the AU combinations that express it; one is drawn per sample."""

EMOTIONS = tuple(EMOTION_ACTION_UNITS)


def choose_action_units(emotion: str, rng: np.random.Generator, intensity_jitter: float = 0.2) -> tuple[AUCode, ...]:
    """One of ``emotion``'s AU combinations, drawn with ``rng``; each AU's intensity varies by up to
    ``±intensity_jitter`` so that no two samples move identically."""
    combos = EMOTION_ACTION_UNITS.get(emotion)
    if combos is None:
        raise UserInputError(f"unknown emotion {emotion!r}; the generator knows {', '.join(EMOTIONS)}")
    combo = combos[int(rng.integers(len(combos)))]
    return tuple(
        AUCode.parse(code, float(rng.uniform(1.0 - intensity_jitter, 1.0 + intensity_jitter))) for code in combo
    )


# --- time profiles -----------------------------------------------------------------------------------------------


def clip_profile(n_frames: int, apex_index: int, hold: int = 0) -> np.ndarray:
    """Expression weight per frame of a clip: 0 at the onset (frame 0), a raised-cosine rise to exactly 1
    at ``apex_index`` (held for ``hold`` more frames), a raised-cosine fall to 0 at the last frame.

    With ``apex_index == n_frames - 1`` the clip ends at its peak (CK+'s neutral → peak sequences). Apart
    from a hold, the apex is the one frame of weight 1: every other frame moves less.
    """
    if n_frames < 1:
        raise UserInputError(f"a clip needs at least one frame, got {n_frames}")
    if not 0 <= apex_index < n_frames or hold < 0:
        raise UserInputError(f"apex index {apex_index} (hold {hold}) is outside a clip of {n_frames} frames")
    t = np.arange(n_frames, dtype=np.float64)
    apex_end = min(apex_index + hold, n_frames - 1)
    weights = np.ones(n_frames)
    if apex_index > 0:
        rise = t[: apex_index + 1] / apex_index
        weights[: apex_index + 1] = 0.5 - 0.5 * np.cos(np.pi * rise)
    if apex_end < n_frames - 1:
        fall = (t[apex_end:] - apex_end) / (n_frames - 1 - apex_end)
        weights[apex_end:] = 0.5 + 0.5 * np.cos(np.pi * fall)
    return weights
