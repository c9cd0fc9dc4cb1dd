"""Generated micro-expression data from real face photos, in the published layouts of CASME II, CK+ and SAMM.

The pieces, each usable on its own (a later video mode reuses them):

- :mod:`training.synth.faces` — source photos with their dlib landmarks, and subjects made from them
  (mirror, size, position, roll, tone, colour or grey, a mild identity morph);
- :mod:`training.synth.actions` — FACS action units as landmark displacements in the face's own frame,
  emotions as AU combinations (CASME II's coding criteria), onset → apex → offset time profiles;
- :mod:`training.synth.warp` — the smooth, fold-free dense warp that moves the landmarks;
- :mod:`training.synth.layouts` — the writers, each returning a :class:`SynthManifest` of what a reader
  must find;
- :mod:`training.synth.videos` — spotting videos: micro-expressions among blinks, a macro expression, head and
  lighting drift and noise, with a ground-truth JSON per clip.

Command line: ``python -m training synth casme2|ckplus|samm|videos --out DIR`` (:mod:`training.synth.cli`).
"""

from training.synth.actions import (
    ACTION_UNITS,
    EMOTION_ACTION_UNITS,
    MACRO_SCALE,
    AUCode,
    FaceAxes,
    choose_action_units,
    clip_profile,
    expression_displacements,
)
from training.synth.faces import (
    Face,
    FacePhoto,
    Pose,
    SensorNoise,
    Subject,
    SubjectLook,
    default_photo_paths,
    expression_field,
    load_face_photo,
    load_face_photos,
    make_subjects,
    parse_frame_size,
)
from training.synth.layouts import (
    MANIFEST_NAME,
    WRITERS,
    SynthManifest,
    SynthSample,
    write_casme2,
    write_ckplus,
    write_samm,
)
from training.synth.videos import VideoClipSpec, VideoEvent, VideoIndex, VideoRenderer, VideoSettings, write_videos
from training.synth.warp import DisplacementField, WarpSettings, fit_field

__all__ = [
    "ACTION_UNITS",
    "EMOTION_ACTION_UNITS",
    "MACRO_SCALE",
    "MANIFEST_NAME",
    "WRITERS",
    "AUCode",
    "DisplacementField",
    "Face",
    "FaceAxes",
    "FacePhoto",
    "Pose",
    "SensorNoise",
    "Subject",
    "SubjectLook",
    "SynthManifest",
    "SynthSample",
    "VideoClipSpec",
    "VideoEvent",
    "VideoIndex",
    "VideoRenderer",
    "VideoSettings",
    "WarpSettings",
    "choose_action_units",
    "clip_profile",
    "default_photo_paths",
    "expression_displacements",
    "expression_field",
    "fit_field",
    "load_face_photo",
    "load_face_photos",
    "make_subjects",
    "parse_frame_size",
    "write_casme2",
    "write_ckplus",
    "write_samm",
    "write_videos",
]
