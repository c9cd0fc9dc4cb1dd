"""Moved: the scripted clips are :mod:`training.synth.scripted`, the untrained test model :mod:`export.untrained`.

Kept only so that code written against the old place still imports while the branches merge; import from
the new modules (nothing in this branch imports this one but ``tests/realtime/test_spotter.py``, which the
spotter's rewrite owns).
"""

from export.untrained import UNTRAINED_CLASSES as TEST_CLASSES  # noqa: F401
from export.untrained import make_tiny_model, model_metadata  # noqa: F401
from training.synth.scripted import (  # noqa: F401
    MICRO_ACTIONS,
    ClipSpec,
    Motion,
    TrueEvent,
    Walker,
    blink,
    frames,
    landmarks_in_frame,
    macro,
    micro,
    photo_path,
    random_clip,
    walking_faces,
    with_distractors,
    write,
)
