"""Small generated data sets in the exact published layouts of CASME II, CK+ and SAMM.

Each writer makes subjects from real face photos (:mod:`training.synth.faces`), gives every clip an
emotion's action units (:mod:`training.synth.actions`) and renders its frames with the smooth warp
(:mod:`training.synth.warp`) following an onset → apex → offset profile, then writes frames, coding sheet
and label files where the real release keeps them, with the real quirks when ``quirks`` is on (see
``shared/datasets.md``). A :class:`SynthManifest` (also written as ``synth_manifest.json``, which readers
ignore) says what was written, which rows a reader must repair or skip and why, and the per-class counts a
reader must find under each label protocol.

Everything is deterministic for a seed: the same arguments write byte-identical files.

One module per layout (:mod:`~training.synth.layouts.casme2`, :mod:`~training.synth.layouts.ckplus`,
:mod:`~training.synth.layouts.samm`); what they share is :mod:`~training.synth.layouts.common`, and the
record of what was written :mod:`~training.synth.layouts.manifest`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from training.synth.layouts.casme2 import write_casme2
from training.synth.layouts.ckplus import write_ckplus
from training.synth.layouts.manifest import (
    MANIFEST_NAME,
    SUBJECT_PHOTOS_NAME,
    SynthManifest,
    SynthSample,
    expected_counts,
)
from training.synth.layouts.samm import write_samm

__all__ = [
    "MANIFEST_NAME",
    "SUBJECT_PHOTOS_NAME",
    "WRITERS",
    "SynthManifest",
    "SynthSample",
    "expected_counts",
    "write_casme2",
    "write_ckplus",
    "write_samm",
]

WRITERS: Mapping[str, Callable[..., SynthManifest]] = {
    "casme2": write_casme2,
    "ckplus": write_ckplus,
    "samm": write_samm,
}
"""Layout name → writer (the CLI's choices)."""
