"""Hand-timed clips with known action units, made with the lab generator (:mod:`training.synth.videos`).

Where :mod:`training.synth.scripted` moves a photo with hand-placed warps, these clips use the generator's own
FACS action-unit model, so a test or a benchmark can ask for "AU12, then AU1+2" and know every frame.

A clip is one subject from a shipped, not held-out photo (Grace Hopper) that sits still and then makes the
given micro-expressions, each an AU combination with a known onset/apex/offset; no distractors, mild sensor
noise. The renderer also knows each frame's true landmarks. Used by the output/API tests and the benchmarks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from training.synth.actions import AUCode
from training.synth.faces import load_face_photos, make_subjects
from training.synth.photos import photo_path
from training.synth.videos import VideoEvent, VideoRenderer, VideoSettings, plan_clip

LEAD_FRAMES = 60  # 2 s at 30 fps: the spotter learns the face's noise first
GAP_FRAMES = 24


def au_clip(
    action_units: Sequence[tuple[str, ...]],
    *,
    fps: float = 30.0,
    size: tuple[int, int] = (320, 240),
    peak_iod: float = 0.04,
    tail_frames: int = 20,
    seed: int = 1,
) -> VideoRenderer:
    """A renderer of one clip with a micro-expression per AU combination (``("1", "2")`` = AU1+2), 6 frames
    rising and 5 falling (a 370 ms micro-expression at 30 fps), ``GAP_FRAMES`` apart after a still lead."""
    photos = load_face_photos([photo_path("grace_hopper")])
    subject = make_subjects(photos, ["au"], np.random.default_rng(seed))[0]
    settings = VideoSettings(fps=fps, frame_size=size, distractors=False, noise_sigma=1.0)
    spec = plan_clip(subject, settings, seed, 0)
    events, start = [], LEAD_FRAMES
    for codes in action_units:
        aus = tuple(AUCode.parse(code) for code in codes)
        events.append(VideoEvent("micro", "+".join(codes), aus, start, start + 5, start + 11, 0, peak_iod))
        start += 11 + GAP_FRAMES
    spec = dataclasses.replace(spec, events=tuple(events), n_frames=start - GAP_FRAMES + tail_frames)
    return VideoRenderer(spec)


def write_frames(renderer: VideoRenderer, folder: Path) -> Path:
    """The clip as a lossless folder of ``img1.png`` … (every reader sees exactly the rendered frames)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(renderer.frames(), start=1):
        cv2.imwrite(str(folder / f"img{index}.png"), image)
    return folder
