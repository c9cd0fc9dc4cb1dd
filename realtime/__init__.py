"""The recognizer: everything that runs without torch (the live recognizer starts fast and stays small).

- :mod:`realtime.core` — what the stream and training share (landmarks, the paper's alignment, the
  classifier's inputs, the model contract, errors, files), so a face is cropped the same way in both worlds;
- :mod:`realtime.stages` — the streaming stages, capture → faces → spotter → classify → render / outputs;
- :mod:`realtime.pipeline` (the stages for one frame), :mod:`realtime.process` (the loop over a source),
  :mod:`realtime.schema` (every event key and CSV column), :mod:`realtime.api` (the Python API);
- :mod:`realtime.cli` and :mod:`realtime.batch` — what the commands share, and ``python -m realtime.batch``.

The Python API::

    from realtime import Recognizer, to_dataframe
    events = list(Recognizer().process("clip.mp4"))

The names below are loaded on first use, so ``import realtime.core.align`` stays light.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Recognizer": "realtime.api",
    "to_dataframe": "realtime.api",
    "UserInputError": "realtime.core.errors",
    "MicroExpression": "realtime.pipeline",
    "FrameRecord": "realtime.schema",
    "FaceRecord": "realtime.schema",
    "HeadPose": "realtime.core.pose",
    "RegionMotion": "realtime.stages.spotter",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'realtime' has no attribute {name!r}")
