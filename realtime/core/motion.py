"""The classifier's input, built from the aligned onset and apex crops: the one implementation that training
(:mod:`training.preprocess`) and streaming (:mod:`realtime.pipeline`) both call, so that a pair of frames
gives a bit-identical input in either path.

Three kinds (``INPUT_KINDS``), each a ``S×S×3`` uint8 image, so that one network, one normalisation, one
crop cache and one ONNX contract serve them all:

- ``apex``: the aligned apex crop as it is (BGR): the paper's method (Xu, Zheng, Yang 2021). It mostly shows
  who the person is; what moved is a small part of it.
- ``onset-apex``: the apex's grey levels, the onset's grey levels and their difference (amplified about
  mid-grey) as the three channels: the network sees both frames and the change between them.
- ``flow``: the optical flow from the onset to the apex on the aligned face, as OFF-ApexNet (horizontal and
  vertical flow) and STSTNet (plus optical strain) feed it. Dense Farneback flow (OpenCV) on the grey crops;
  the head's own motion between the two frames (and the small misalignment of two separately aligned
  crops) is removed by subtracting a robust affine fit of the whole field, so what remains is the face's
  non-rigid movement. The channels are the horizontal flow, the vertical flow (both signed and linear,
  128 = still) and the optical strain magnitude.

Flow is measured as a fraction of the crop side, so the encoding means the same at every input size.
"""

from __future__ import annotations

import cv2
import numpy as np

from realtime.core.errors import UserInputError

INPUT_KINDS: tuple[str, ...] = ("apex", "onset-apex", "flow")
DEFAULT_INPUT_KIND = "apex"

FLOW_FULL_SCALE = 0.03  # flow of 3 % of the crop side (about 2 px at 64 px) saturates the flow channels
STRAIN_FULL_SCALE = 0.3  # optical strain magnitude that saturates the strain channel
DIFFERENCE_GAIN = 4.0  # onset-apex: grey-level difference × this, about 128
_FARNEBACK = {"pyr_scale": 0.5, "levels": 3, "winsize": 11, "iterations": 3, "poly_n": 7, "poly_sigma": 1.5}
_PRESMOOTH_SIGMA = 1.0  # a light blur of both crops first: sensor noise and JPEG blocks make no flow
_AFFINE_KEEP = 0.6  # the affine head-motion fit is refitted on this fraction of the field that fits it best


def check_input_kind(kind: str) -> str:
    """``kind`` when it is one of :data:`INPUT_KINDS`; otherwise one clear :class:`UserInputError`."""
    if kind not in INPUT_KINDS:
        raise UserInputError(f"unknown classifier input {kind!r}; choose one of: {', '.join(INPUT_KINDS)}")
    return kind


def needs_onset(kind: str) -> bool:
    """Whether an input of this kind is built from the onset crop as well as the apex crop."""
    return check_input_kind(kind) != "apex"


def _grey(crop: np.ndarray) -> np.ndarray:
    if crop.ndim == 2:
        return crop
    return cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)


def _as_bgr(crop: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR) if crop.ndim == 2 else crop


def dense_flow(onset_grey: np.ndarray, apex_grey: np.ndarray) -> np.ndarray:
    """Farneback optical flow (H×W×2 float32, pixels) from the onset to the apex (both lightly blurred)."""
    onset = cv2.GaussianBlur(onset_grey, (0, 0), _PRESMOOTH_SIGMA)
    apex = cv2.GaussianBlur(apex_grey, (0, 0), _PRESMOOTH_SIGMA)
    return cv2.calcOpticalFlowFarneback(onset, apex, None, flags=0, **_FARNEBACK)


def remove_head_motion(flow: np.ndarray) -> np.ndarray:
    """The flow less a robust affine fit of it: the rigid (and alignment) part goes, the face's own local
    movement stays. The fit is made twice, the second time on the part of the field the first fits best,
    so a moving mouth or brow does not pull it."""
    height, width = flow.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    design = np.stack([np.ones(xs.size), xs.ravel() / width, ys.ravel() / height], axis=1)
    target = flow.reshape(-1, 2).astype(np.float64)
    keep = np.ones(len(target), dtype=bool)
    for _ in range(2):
        coefficients, *_ = np.linalg.lstsq(design[keep], target[keep], rcond=None)
        residual = np.linalg.norm(target - design @ coefficients, axis=1)
        keep = residual <= np.quantile(residual, _AFFINE_KEEP)
    return (target - design @ coefficients).reshape(flow.shape).astype(np.float32)


def optical_strain(flow: np.ndarray) -> np.ndarray:
    """The optical strain magnitude sqrt(εxx² + εyy² + 2 εxy²), εxy = (∂u/∂y + ∂v/∂x) / 2 (dimensionless)."""
    u, v = flow[..., 0].astype(np.float64), flow[..., 1].astype(np.float64)
    du_dy, du_dx = np.gradient(u)
    dv_dy, dv_dx = np.gradient(v)
    shear = 0.5 * (du_dy + dv_dx)
    return np.sqrt(du_dx**2 + dv_dy**2 + 2.0 * shear**2)


def _signed_channel(values: np.ndarray, full_scale: float) -> np.ndarray:
    ratio = np.clip(values / full_scale, -1.0, 1.0)
    return np.rint(128.0 + 127.0 * ratio).astype(np.uint8)


def flow_image(onset_crop: np.ndarray, apex_crop: np.ndarray) -> np.ndarray:
    """The ``flow`` input: horizontal flow, vertical flow and optical strain as a uint8 S×S×3 image."""
    side = float(apex_crop.shape[1])
    flow = remove_head_motion(dense_flow(_grey(onset_crop), _grey(apex_crop))) / side
    strain = optical_strain(flow * side)
    strain_channel = np.rint(255.0 * np.clip(strain / STRAIN_FULL_SCALE, 0.0, 1.0)).astype(np.uint8)
    return np.dstack(
        [_signed_channel(flow[..., 0], FLOW_FULL_SCALE), _signed_channel(flow[..., 1], FLOW_FULL_SCALE), strain_channel]
    )


def onset_apex_image(onset_crop: np.ndarray, apex_crop: np.ndarray) -> np.ndarray:
    """The ``onset-apex`` input: apex grey, onset grey and their amplified difference as a uint8 S×S×3 image."""
    apex, onset = _grey(apex_crop), _grey(onset_crop)
    difference = apex.astype(np.float32) - onset.astype(np.float32)
    change = np.clip(np.rint(128.0 + DIFFERENCE_GAIN * difference), 0, 255).astype(np.uint8)
    return np.dstack([apex, onset, change])


def build_classifier_input(kind: str, apex_crop: np.ndarray, onset_crop: np.ndarray | None = None) -> np.ndarray:
    """The classifier's input of ``kind`` from aligned crops of the same size (BGR or grey uint8)."""
    if needs_onset(kind):
        if onset_crop is None:
            raise ValueError(f"a {kind!r} input needs the onset crop")
        if onset_crop.shape[:2] != apex_crop.shape[:2]:
            raise ValueError(f"onset crop {onset_crop.shape[:2]} and apex crop {apex_crop.shape[:2]} differ in size")
        if kind == "flow":
            return flow_image(onset_crop, apex_crop)
        return onset_apex_image(onset_crop, apex_crop)
    return np.ascontiguousarray(_as_bgr(apex_crop))


def flip_input(kind: str, image: np.ndarray) -> np.ndarray:
    """The input of the mirrored face (augmentation, parity): a horizontal flip, and for ``flow`` the
    horizontal flow changes sign."""
    mirrored = np.ascontiguousarray(image[:, ::-1])
    if check_input_kind(kind) == "flow":
        mirrored[..., 0] = 256 - mirrored[..., 0].astype(np.int16)
    return mirrored
