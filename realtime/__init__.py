"""Streaming side of the project: face detection, 68-landmark fitting, the paper's alignment, apex spotting.

Everything here runs on OpenCV, dlib, NumPy and ONNX Runtime alone; it never imports torch, so the live
recognizer starts fast and stays small. Training imports the alignment from here, so a face is cropped
the same way in both worlds.

The Python API (see :mod:`realtime.api`)::

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
