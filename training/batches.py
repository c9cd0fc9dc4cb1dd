"""Images on the device: crops uploaded once as one uint8 tensor, then each batch turned into the model's
input (BGR → RGB, random augmentation, ImageNet normalisation) as batched tensor operations.

No per-sample Python, no DataLoader workers and no host↔device copy of images after the first upload.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from training.config import TrainConfig

# The model's input normalisation. Crops are stored BGR (OpenCV); the model sees RGB, normalised with
# ImageNet's statistics so that ImageNet ResNet18 weights a user supplies start from the right scale.
# These constants also go into checkpoints and the ONNX metadata, so inference normalises identically.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
CHANNEL_ORDER = "RGB"


def images_to_tensor(
    images: np.ndarray,
    device: torch.device | str,
    image_size: int | None = None,
    channels_last: bool = True,
) -> torch.Tensor:
    """(N, S, S, 3) uint8 BGR crops → one (N, 3, S', S') uint8 BGR tensor on ``device``.

    Moved once per run. Crops of another size are resized to ``image_size`` here, once, on the device
    (antialiased bilinear). The NHWC array viewed as NCHW already has channels_last strides.
    """
    array = np.ascontiguousarray(images)
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"expected uint8 images of shape (N, H, W, 3), got {array.dtype} {array.shape}")
    tensor = torch.from_numpy(array).to(device).permute(0, 3, 1, 2)
    if image_size is not None and tuple(tensor.shape[-2:]) != (image_size, image_size):
        tensor = (
            F.interpolate(tensor.float(), size=(image_size, image_size), mode="bilinear", antialias=True)
            .round_()
            .clamp_(0, 255)
            .to(torch.uint8)
        )
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return tensor.contiguous(memory_format=memory_format)


def to_unit_rgb(batch: torch.Tensor) -> torch.Tensor:
    """uint8 BGR (B, 3, S, S) → float RGB in [0, 1]."""
    return batch.flip(1).float().div_(255.0)


def normalize(batch: torch.Tensor, channels_last: bool = True) -> torch.Tensor:
    """Float RGB in [0, 1] → (x − ImageNet mean) / ImageNet std, in the requested memory format."""
    mean = torch.tensor(IMAGENET_MEAN, device=batch.device, dtype=batch.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=batch.device, dtype=batch.dtype).view(1, 3, 1, 1)
    out = (batch - mean) / std
    return out.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def augment_batch(batch: torch.Tensor, config: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """Random flip, shift, scale (one batched ``grid_sample``) and brightness, per sample, on the device.

    ``batch`` is float RGB in [0, 1]. Random numbers come from the CPU ``generator`` (a few per sample),
    so a seed gives the same augmentation on every device.
    """
    n = batch.shape[0]
    u = torch.rand(n, 5, generator=generator, dtype=torch.float32)
    flip = torch.where(u[:, 0] < config.flip_probability, -1.0, 1.0)
    scale = 1.0 + (2 * u[:, 1] - 1) * config.max_scale_change
    shift = (2 * u[:, 2:4] - 1) * (2 * config.max_shift_fraction)  # grid coordinates span 2 per image side
    brightness = 1.0 + (2 * u[:, 4] - 1) * config.max_brightness_change
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = flip / scale
    theta[:, 1, 1] = 1.0 / scale
    theta[:, :, 2] = shift
    theta = theta.to(device=batch.device, dtype=batch.dtype)
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    out = F.grid_sample(batch, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if config.input_kind == "flow":  # RGB channel 2 is the horizontal flow (BGR channel 0): a mirror negates it
        flipped = (flip < 0).to(device=batch.device).view(n, 1, 1)
        out[:, 2] = torch.where(flipped, 256.0 / 255.0 - out[:, 2], out[:, 2])
        out = scale_flow(out, flow_gains(n, config.min_flow_gain, generator))
    if config.input_kind == "apex":
        out = out * brightness.to(device=batch.device, dtype=batch.dtype).view(n, 1, 1, 1)
    return out.clamp_(0.0, 1.0)


def flow_gains(n: int, min_gain: float, generator: torch.Generator) -> torch.Tensor:
    """One random gain per sample in [``min_gain``, 1] (drawn after the geometric ones, so the other inputs'
    augmentation is unchanged by it)."""
    if min_gain >= 1.0:
        return torch.ones(n)
    return min_gain + (1.0 - min_gain) * torch.rand(n, generator=generator, dtype=torch.float32)


def scale_flow(batch: torch.Tensor, gains: torch.Tensor) -> torch.Tensor:
    """A ``flow`` batch (float RGB in [0, 1]: strain, vertical flow, horizontal flow) as if every movement were
    ``gains`` times as large: the signed flow channels scale about mid-grey (128 = still), the strain about 0.
    Flow and strain are linear in the displacement, so this is a smaller micro-expression of the same shape."""
    gains = gains.to(device=batch.device, dtype=batch.dtype).view(-1, 1, 1)
    still = 128.0 / 255.0
    out = batch.clone()
    out[:, 0] = batch[:, 0] * gains
    out[:, 1:] = still + (batch[:, 1:] - still) * gains.unsqueeze(1)
    return out


def prepare_batch(batch: torch.Tensor, config: TrainConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 BGR batch → the model's input: RGB, augmented when a ``generator`` is given, normalised."""
    x = to_unit_rgb(batch)
    if generator is not None:
        x = augment_batch(x, config, generator)
    return normalize(x, config.channels_last)
