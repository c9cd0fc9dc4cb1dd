"""Training engine: configuration, a fast on-device training loop, evaluation, checkpoints, CK+ pretraining.

Laid out like torchvision's ``references/classification/train.py``: :func:`train_one_epoch` and
:func:`evaluate` are separate, :func:`fit` ties them, and the resolved configuration is saved beside every
checkpoint.

Why it is fast. A CASME II fold is ~240 images of 224×224: the whole training set fits on any device as
ONE uint8 tensor (N×3×S×S, channels_last, ~36 MB). Each step gathers a batch by index on the device,
converts it to float, reorders BGR (OpenCV's order, in which crops are stored) to RGB, augments it and
normalises it with the ImageNet mean/std — all as batched tensor operations, with no per-sample Python,
no DataLoader workers and no host↔device copy of images after the first. On CUDA the forward pass runs
under autocast (bf16 where supported, else fp16 with a gradient scaler).

Honesty. Nothing here looks at a test set while training: :func:`fit` gets only training images, and with
``selection="inner-val"`` it holds out some of ITS OWN training subjects to choose the epoch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import platform
import random
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from tqdm import tqdm

from realtime.core.errors import UserInputError
from realtime.core.files import atomic_path, file_sha256
from realtime.core.motion import DEFAULT_INPUT_KIND, INPUT_KINDS
from training import metrics
from training.losses import LOSSES, build_loss, inverse_frequency_alpha
from training.model import ATTENTION_VARIANTS, attention_resnet18, load_backbone_weights
from training.report import to_jsonable, write_json_atomic

if TYPE_CHECKING:  # only for annotations: importing preprocess pulls in the alignment stack
    from training.preprocess import CropSet

# The model's input normalisation. Crops are stored BGR (OpenCV); the model sees RGB, normalised with
# ImageNet's statistics so that ImageNet ResNet18 weights a user supplies start from the right scale.
# These constants also go into checkpoints and the ONNX metadata, so inference normalises identically.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
CHANNEL_ORDER = "RGB"
ARCH_NAME = "attention_resnet18"
CHECKPOINT_FORMAT = 1

OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULES = ("cosine", "constant")
SELECTIONS = ("last", "inner-val")
DEVICES = ("auto", "cpu", "cuda")
SPLITS = ("random", "subject")


def _parse_alpha(value: Any) -> str | tuple[float, ...]:
    """``'inverse'``, ``'none'``, a list of weights or a comma-separated string of weights."""
    if value is None:
        return "none"
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("inverse", "none"):
            return text
        try:
            weights = tuple(float(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise ValueError(
                f"focal loss alpha must be 'inverse', 'none' or weights separated by commas, got {value!r}"
            ) from None
    else:
        weights = tuple(float(v) for v in value)
    if not weights or any(not math.isfinite(w) or w <= 0 for w in weights):
        raise ValueError(f"focal loss alpha weights must be positive numbers, got {value!r}")
    return weights


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run. Defaults are for CASME II 5-class LOSO (~240 training
    images per fold, 26 folds), chosen as follows:

    * attention ``dual``, loss ``focal`` with γ = 2 and α = inverse class frequency of the fold's training
      labels: the paper's method (γ = 2 is Lin et al.'s default; α counters CASME II's 99 "others" vs 27
      "repression").
    * ``epochs`` 30 × ``batch_size`` 32 ≈ 240 optimiser steps per fold: enough to fit ~240 images without a
      validation set to stop on. ``selection`` ``last`` keeps the final model, so no epoch is ever chosen
      by looking at the held-out subject.
    * Adam, ``lr`` 3e-4 with a cosine decay to 0 over the run (the final epochs settle the weights, which
      is what ``selection="last"`` keeps), ``weight_decay`` 1e-4 (L2; small data over-fits quickly).
    * ``augment`` on: random horizontal flip, ±5 % shift, ±5 % scale, ±20 % brightness — mild, because a
      micro-expression IS a small local change that strong warps would drown.
    * ``image_size`` 224 (the paper's); ``amp`` (CUDA only), ``channels_last`` and ``deterministic`` on.
    * ``val_subjects`` 3: with ``selection="inner-val"``, three of a fold's 25 training subjects choose the
      epoch (by their macro F1, ties broken by loss); the test subject never does.
    * ``input_kind`` what the network sees (:mod:`realtime.core.motion`): ``apex`` (the paper's), ``onset-apex`` or
      ``flow``. For ``flow`` a flip also negates the horizontal flow; brightness changes apply to ``apex`` only
      (the other inputs are centred on mid-grey, which a gain would move).
    * ``calibrate``: each LOSO fold holds ``val_subjects`` of its training subjects out of training and fits a
      softmax temperature on them (temperature scaling); the test subject never sees it.
    """

    attention: str = "dual"
    loss: str = "focal"
    gamma: float = 2.0
    alpha: str | tuple[float, ...] = "inverse"
    epochs: int = 30
    batch_size: int = 32
    lr: float = 3e-4
    weight_decay: float = 1e-4
    optimizer: str = "adam"
    momentum: float = 0.9  # SGD only
    lr_schedule: str = "cosine"
    image_size: int = 224
    device: str = "auto"
    seed: int = 0
    amp: bool = True
    channels_last: bool = True
    deterministic: bool = True
    augment: bool = True
    flip_probability: float = 0.5
    max_shift_fraction: float = 0.05
    max_scale_change: float = 0.05
    max_brightness_change: float = 0.2
    selection: str = "last"
    val_subjects: int = 3
    input_kind: str = DEFAULT_INPUT_KIND
    calibrate: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", _parse_alpha(self.alpha))
        choices = {
            "attention": ATTENTION_VARIANTS,
            "loss": LOSSES,
            "optimizer": OPTIMIZERS,
            "lr_schedule": LR_SCHEDULES,
            "device": DEVICES,
            "selection": SELECTIONS,
            "input_kind": INPUT_KINDS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; choose one of {', '.join(allowed)}")
        positive_ints = ("epochs", "image_size", "val_subjects")
        for name in positive_ints:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be at least 2 (batch normalisation), got {self.batch_size}")
        if self.image_size < 32:
            raise ValueError(f"image_size must be at least 32 px (ResNet18 downsamples 32×), got {self.image_size}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.weight_decay < 0 or self.gamma < 0:
            raise ValueError("weight_decay and gamma must be ≥ 0")
        if not 0 <= self.flip_probability <= 1:
            raise ValueError(f"flip_probability must be in [0, 1], got {self.flip_probability}")
        for name in ("max_shift_fraction", "max_scale_change", "max_brightness_change"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (``alpha`` weights as a list)."""
        return to_jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """The inverse of :meth:`to_dict`; missing keys take their defaults, unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training configuration keys: {', '.join(unknown)}")
        return cls(**dict(values))


# --- devices, seeds, determinism ---------------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is the user's error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserInputError("--device cuda was asked for, but PyTorch sees no CUDA GPU; use --device cpu")
    return torch.device(name)


def autocast_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: bf16 (or fp16 where bf16 is unsupported) on CUDA with ``amp``; None otherwise."""
    if not config.amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_determinism(deterministic: bool) -> None:
    """Ask torch for deterministic kernels (warning, not failing, where one has none) and turn cuDNN's
    benchmark autotuner off, which picks kernels by timing and so varies between runs. Process-wide."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS (CUDA ≥ 10.2)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic


def derive_seed(seed: int, key: str) -> int:
    """A seed for one unit of work (a LOSO fold: ``key`` = its subject), stable across runs and machines."""
    digest = hashlib.sha256(f"{int(seed)}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def environment_versions() -> dict[str, str | None]:
    """Versions that decide numerics, recorded with every run and checkpoint."""
    return {
        "python": platform.python_version(),
        "torch": str(torch.__version__),  # TorchVersion, a str subclass weights_only loading refuses
        "torchvision": str(torchvision.__version__),
        "numpy": str(np.__version__),
        "cuda": None if torch.version.cuda is None else str(torch.version.cuda),
        "platform": sys.platform,
    }


# --- images on the device ----------------------------------------------------------------------------------


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


def _as_image_tensor(images: np.ndarray | torch.Tensor, device: torch.device, config: TrainConfig) -> torch.Tensor:
    if isinstance(images, np.ndarray):
        return images_to_tensor(images, device, config.image_size, config.channels_last)
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected a uint8 (N, 3, S, S) tensor, got {images.dtype} {tuple(images.shape)}")
    return images.to(device)


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
    if config.input_kind == "apex":
        out = out * brightness.to(device=batch.device, dtype=batch.dtype).view(n, 1, 1, 1)
    return out.clamp_(0.0, 1.0)


def prepare_batch(batch: torch.Tensor, config: TrainConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 BGR batch → the model's input: RGB, augmented when a ``generator`` is given, normalised."""
    x = to_unit_rgb(batch)
    if generator is not None:
        x = augment_batch(x, config, generator)
    return normalize(x, config.channels_last)


# --- model, loss, optimiser --------------------------------------------------------------------------------


def read_pretrained(path: Path, classes: Sequence[str] | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """Weights to start from: a checkpoint of this project (``{"model": state_dict, ...}``) or a plain state
    dict such as torchvision's ImageNet ResNet18 ``.pth``. Loaded with ``weights_only=True``.

    A project checkpoint trained on OTHER classes (CK+'s 7 emotions → CASME II's 5) loses its ``fc``
    head here, since its outputs mean different things even when the counts match. Returns the state dict
    and a description (path, sha256, kind).
    """
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"pretrained weights {path} do not exist")
    raw = _torch_load(path)
    info: dict[str, Any] = {"path": str(path), "sha256": file_sha256(path)}
    if isinstance(raw, Mapping) and isinstance(raw.get("model"), Mapping):
        state = dict(raw["model"])
        info["kind"] = "checkpoint"
        info["source_classes"] = list(raw.get("classes") or [])
        if classes is not None and list(raw.get("classes") or []) != list(classes):
            state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    elif isinstance(raw, Mapping) and all(isinstance(v, torch.Tensor) for v in raw.values()):
        state = dict(raw)
        info["kind"] = "state_dict"
    else:
        raise UserInputError(f"{path} holds neither a checkpoint of this project nor a state dict of tensors")
    if not state:
        raise UserInputError(f"{path} holds no tensors")
    return state, info


def initial_weights(
    imagenet: Path | None, pretrained: Path | None, classes: Sequence[str]
) -> tuple[dict[str, torch.Tensor] | None, dict[str, Any]]:
    """ImageNet weights first, then a project checkpoint over them (its backbone wins where both have a
    tensor). Returns the merged state dict (None when neither) and their descriptions."""
    state: dict[str, torch.Tensor] = {}
    sources: dict[str, Any] = {"imagenet": None, "pretrained": None}
    if imagenet is not None:
        weights, sources["imagenet"] = read_pretrained(imagenet, classes)
        state.update(weights)
    if pretrained is not None:
        weights, sources["pretrained"] = read_pretrained(pretrained, classes)
        state.update(weights)
    return (state or None), sources


def build_model(
    config: TrainConfig, num_classes: int, pretrained: Mapping[str, torch.Tensor] | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """The attention ResNet18 of ``config.attention`` with ``num_classes`` outputs, initialised from
    ``pretrained`` where names and shapes match (:func:`training.model.load_backbone_weights`).

    Returns the model (on the CPU) and what was loaded: ``n_loaded``, ``n_skipped`` (in the source but not
    used: another head, attention the target lacks), ``n_missing`` (left at their initialisation).
    """
    model = attention_resnet18(num_classes=num_classes, attention=config.attention)
    info: dict[str, Any] = {"n_loaded": 0, "n_skipped": 0, "n_missing": len(model.state_dict()), "skipped": []}
    if pretrained:
        result = load_backbone_weights(model, dict(pretrained))
        info = {
            "n_loaded": len(result["loaded"]),
            "n_skipped": len(result["skipped"]),
            "n_missing": len(result["missing"]),
            "skipped": list(result["skipped"]),
        }
    return model, info


def describe_load(info: Mapping[str, Any], source: str) -> str:
    """One line for the user: how many tensors a pretrained source gave the model."""
    skipped = info.get("skipped") or []
    shown = ", ".join(skipped[:4]) + (", …" if len(skipped) > 4 else "")
    return (
        f"initial weights: {info['n_loaded']} tensors loaded from {source}"
        + (f"; {info['n_skipped']} not used ({shown})" if skipped else "")
        + f"; {info['n_missing']} left at initialisation"
    )


def class_counts(labels: np.ndarray | torch.Tensor, num_classes: int) -> list[int]:
    """How many samples of each class (0 for absent classes)."""
    values = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    return np.bincount(values.astype(np.int64), minlength=num_classes)[:num_classes].tolist()


def build_loss_fn(config: TrainConfig, train_labels: np.ndarray | torch.Tensor, num_classes: int) -> nn.Module:
    """Focal or cross-entropy loss; with ``alpha="inverse"`` α comes from the TRAINING labels given here."""
    alpha: torch.Tensor | None = None
    if config.loss == "focal":
        if config.alpha == "inverse":
            alpha = inverse_frequency_alpha(class_counts(train_labels, num_classes))
        elif isinstance(config.alpha, tuple):
            if len(config.alpha) != num_classes:
                raise UserInputError(
                    f"focal loss alpha has {len(config.alpha)} weights but the data has {num_classes} classes"
                )
            alpha = torch.tensor(config.alpha, dtype=torch.float32)
    return build_loss(config.loss, gamma=config.gamma, alpha=alpha)


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam (L2 weight decay), AdamW (decoupled) or SGD with Nesterov momentum."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, nesterov=True
    )


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per epoch: cosine from ``lr`` towards 0 over ``epochs``, or constant."""
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


# --- one epoch, evaluation, fit ------------------------------------------------------------------------------


def train_one_epoch(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    config: TrainConfig,
    generator: torch.Generator,
    *,
    amp_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, float]:
    """One pass over ``images`` (uint8 BGR N×3×S×S on the model's device) in a random order.

    Batches are gathered by index on the device; a trailing batch of one sample is left out (batch
    normalisation needs two; it is seen in another epoch's order). Loss and accuracy are accumulated on
    the device and read once at the end, so the loop never waits for the GPU. Returns the epoch's mean
    training loss, training accuracy (on augmented inputs) and counts.
    """
    n = int(images.shape[0])
    if n < 2:
        raise ValueError(f"training needs at least 2 images, got {n}")
    if labels.shape[0] != n:
        raise ValueError(f"{n} images but {labels.shape[0]} labels")
    device = images.device
    model.train()
    order = torch.randperm(n, generator=generator).to(device)
    batches = list(order.split(config.batch_size))
    if len(batches) > 1 and len(batches[-1]) < 2:
        batches.pop()
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    seen = 0
    for index in batches:
        x = prepare_batch(images[index], config, generator if config.augment else None)
        y = labels[index]
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            logits = model(x)
            loss = loss_fn(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None and scaler.is_enabled():
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        total_loss += loss.detach() * len(index)
        correct += (logits.detach().argmax(dim=1) == y).sum()
        seen += len(index)
    return {
        "loss": float(total_loss.item()) / seen,
        "accuracy": float(correct.item()) / seen,
        "n_samples": seen,
        "n_steps": len(batches),
    }


@torch.no_grad()
def evaluate(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    batch_size: int,
    *,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = True,
) -> np.ndarray:
    """Class probabilities (N × classes, float64 rows summing to 1) of the model in eval mode.

    ``images``: a uint8 BGR tensor (N×3×S×S) or numpy crops (N×S×S×3); moved to the model's device.
    """
    device = next(model.parameters()).device
    if isinstance(images, np.ndarray):
        images = images_to_tensor(images, device, channels_last=channels_last)
    images = images.to(device)
    model.eval()
    outputs = []
    for start in range(0, int(images.shape[0]), batch_size):
        x = normalize(to_unit_rgb(images[start : start + batch_size]), channels_last)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            logits = model(x)
        outputs.append(torch.softmax(logits.float(), dim=1))
    if not outputs:
        return np.zeros((0, _num_outputs(model)), dtype=np.float64)
    return torch.cat(outputs).cpu().numpy().astype(np.float64)


def _num_outputs(model: nn.Module) -> int:
    fc = getattr(model, "fc", None)
    return int(fc.out_features) if isinstance(fc, nn.Linear) else 0


def inner_validation_split(
    subjects: Sequence[str], n_val_subjects: int, seed: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Hold out ``n_val_subjects`` of the given (training) subjects, chosen by ``seed``: returns the indices
    to train on, the indices to validate on, and the validation subjects."""
    unique = sorted(set(subjects))
    if len(unique) < n_val_subjects + 1:
        raise UserInputError(
            f"selection inner-val needs more than {n_val_subjects} training subjects, got {len(unique)}"
        )
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(unique, size=n_val_subjects, replace=False).tolist())
    is_val = np.isin(np.asarray(subjects), chosen)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val), chosen


def fit(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    config: TrainConfig,
    *,
    num_classes: int | None = None,
    subjects: Sequence[str] | None = None,
    seed: int | None = None,
    progress: bool = True,
    desc: str = "train",
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Train ``model`` on these TRAINING images for ``config.epochs`` epochs; return it and the history.

    ``history`` holds one dict per epoch (``epoch``, ``train_loss``, ``train_accuracy``, ``lr``, ``seconds``,
    plus ``val_loss``/``val_accuracy``/``val_f1`` with inner validation); the epoch whose weights are
    returned has ``selected: True`` — the last one with ``selection="last"``; with ``"inner-val"`` the one
    with the best macro F1 (ties: lower loss) on ``config.val_subjects`` subjects held out of ``subjects``.
    """
    seed = config.seed if seed is None else int(seed)
    seed_everything(seed)
    configure_determinism(config.deterministic)
    device = resolve_device(config.device)
    model.to(device, memory_format=torch.channels_last if config.channels_last else torch.contiguous_format)
    images = _as_image_tensor(images, device, config)
    if isinstance(labels, torch.Tensor):
        labels = labels.to(device=device, dtype=torch.int64)
    else:
        labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64, device=device)
    num_classes = num_classes or _num_outputs(model)

    val_images = val_labels = None
    val_subject_names: list[str] = []
    if config.selection == "inner-val":
        if subjects is None or len(subjects) != len(labels):
            raise ValueError("selection inner-val needs one subject name per training image")
        train_idx, val_idx, val_subject_names = inner_validation_split(subjects, config.val_subjects, seed)
        index = torch.as_tensor(train_idx, device=device)
        val_index = torch.as_tensor(val_idx, device=device)
        val_images, val_labels = images[val_index], labels[val_index]
        images, labels = images[index], labels[index]

    loss_fn = build_loss_fn(config, labels, num_classes).to(device)
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config)
    amp_dtype = autocast_dtype(config, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    generator = torch.Generator().manual_seed(seed)

    history: list[dict[str, Any]] = []
    best: tuple[float, float] | None = None
    best_state: dict[str, torch.Tensor] | None = None
    epochs = tqdm(range(config.epochs), desc=desc, unit="epoch", disable=not progress, leave=False)
    for epoch in epochs:
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        stats = train_one_epoch(
            model, images, labels, optimizer, loss_fn, config, generator, amp_dtype=amp_dtype, scaler=scaler
        )
        scheduler.step()
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "train_loss": stats["loss"],
            "train_accuracy": stats["accuracy"],
            "lr": lr,
        }
        if val_images is not None and len(val_images):
            probs = evaluate(
                model, val_images, config.batch_size, amp_dtype=amp_dtype, channels_last=config.channels_last
            )
            truth = val_labels.cpu().numpy()
            predicted = probs.argmax(axis=1)
            cm = metrics.confusion_matrix(truth, predicted, num_classes)
            row["val_loss"] = float(-np.log(np.clip(probs[np.arange(len(truth)), truth], 1e-12, None)).mean())
            row["val_accuracy"] = metrics.accuracy(truth, predicted)
            row["val_f1"] = metrics.f1_macro(cm)
            score = (row["val_f1"], -row["val_loss"])
            if best is None or score > best:
                best = score
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                for earlier in history:
                    earlier["selected"] = False
                row["selected"] = True
            else:
                row["selected"] = False
        row["seconds"] = time.perf_counter() - started
        history.append(row)
        epochs.set_postfix(loss=f"{stats['loss']:.4f}", refresh=False)
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        for i, row in enumerate(history):
            row["selected"] = i == len(history) - 1
    if val_subject_names:
        for row in history:
            row["val_subjects"] = val_subject_names
    return model, history


# --- checkpoints -------------------------------------------------------------------------------------------


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # bytes that do not unpickle fail in any way; all mean "not weights of ours"
        # torch's own message goes on to suggest weights_only=False, which is unsafe for a file of unknown
        # origin: keep only what went wrong
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}" if str(exc).strip() else type(exc).__name__
        reason = reason.split(" Re-running `torch.load`")[0].split(". Re-running")[0]
        raise UserInputError(
            f"cannot read {path} as PyTorch weights of this project ({reason[:160]}); expected a checkpoint "
            "written by `python -m training pretrain|fit` or a state dict of tensors"
        ) from None


def save_checkpoint(
    path: Path,
    model: nn.Module,
    *,
    classes: Sequence[str],
    config: TrainConfig,
    image_size: int | None = None,
    dataset: str = "",
    protocol: str = "",
    metrics: Mapping[str, Any] | None = None,
    alignment: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Save a self-describing checkpoint, atomically; it loads with ``torch.load(weights_only=True)``.

    Holds only tensors, str, int, float, bool, None, lists and dicts: the weights (CPU, contiguous), the
    architecture, class names, input size and normalisation (mean/std/channel order), the training
    configuration, data set and protocol, metrics, alignment settings and library versions.
    """
    num_classes = _num_outputs(model)
    if num_classes != len(classes):
        raise ValueError(f"the model has {num_classes} outputs but {len(classes)} class names were given")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "arch": {"name": ARCH_NAME, "attention": config.attention, "num_classes": num_classes},
        "classes": [str(c) for c in classes],
        "image_size": int(image_size or config.image_size),
        "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "channel_order": CHANNEL_ORDER},
        "config": config.to_dict(),
        "dataset": dataset,
        "protocol": protocol,
        "metrics": to_jsonable(dict(metrics or {})),
        "alignment": to_jsonable(dict(alignment or {})),
        "versions": environment_versions(),
    }
    if extra:
        payload.update(to_jsonable(dict(extra)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The model of a checkpoint written by :func:`save_checkpoint` (eval mode, on ``device``) and its
    metadata (everything but the weights). A missing file, a file that is not a checkpoint of this
    project, or one of another architecture raises :class:`UserInputError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"checkpoint {path} does not exist")
    payload = _torch_load(path)
    if not isinstance(payload, Mapping) or not isinstance(payload.get("model"), Mapping):
        raise UserInputError(f"{path} is not a checkpoint of this project (no 'model' state dict)")
    arch = payload.get("arch")
    if not isinstance(arch, Mapping) or arch.get("name") != ARCH_NAME:
        name = arch.get("name") if isinstance(arch, Mapping) else None
        raise UserInputError(f"{path} holds a checkpoint of architecture {name!r}, not {ARCH_NAME!r}")
    try:
        model = attention_resnet18(num_classes=int(arch["num_classes"]), attention=str(arch["attention"]))
        model.load_state_dict(payload["model"])
    except (KeyError, ValueError, RuntimeError) as exc:
        raise UserInputError(f"{path} does not match the {ARCH_NAME} it declares: {exc}") from None
    meta = {k: v for k, v in payload.items() if k != "model"}
    return model.to(device).eval(), meta


# --- CK+ pretraining ----------------------------------------------------------------------------------------


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class, ``round(test_fraction × n_c)`` samples go to test (at most n_c − 1): the paper's 8:2 split."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    test: list[int] = []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        k = min(round(test_fraction * len(members)), len(members) - 1)
        test.extend(members[:k].tolist())
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[test] = True
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def subject_split(subjects: Sequence[str], test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Whole subjects, in a seeded random order, go to test until it holds ``test_fraction`` of the
    samples: no person on both sides."""
    names = np.asarray(subjects)
    unique = sorted(set(subjects))
    if len(unique) < 2:
        raise UserInputError("a split by subject needs at least two subjects")
    order = np.random.default_rng(seed).permutation(unique)
    target = test_fraction * len(names)
    chosen: list[str] = []
    count = 0
    for subject in order[:-1]:  # at least one subject stays for training
        if count >= target:
            break
        chosen.append(str(subject))
        count += int(np.sum(names == subject))
    is_test = np.isin(names, chosen)
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def pretrain(
    data: CropSet,
    config: TrainConfig,
    split: str = "random",
    test_fraction: float = 0.2,
    *,
    out: Path,
    imagenet: Path | None = None,
    pretrained: Path | None = None,
    alignment: Mapping[str, Any] | None = None,
    progress: bool = True,
    evaluation: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train on a whole data set (the paper's CK+ step) and save the checkpoint to transfer from.

    ``split="random"`` is the paper's stratified 8:2 split of images; ``"subject"`` keeps every person on
    one side (the honest figure: CK+'s three frames per sequence are near-duplicates). The held-out part
    is evaluated ONCE, after training, and only reported. Writes ``out`` (the checkpoint) and, beside it,
    ``<stem>.config.json`` (resolved configuration, split, versions) and ``<stem>.metrics.json``; returns
    the metrics summary.

    ``test_fraction=0`` trains on everything: the deployable model of ``python -m training fit``, whose
    honest figures come from a LOSO run of the same configuration, passed as ``evaluation`` (stored as the
    checkpoint's metrics). ``imagenet`` and ``pretrained`` (a project checkpoint, e.g. CK+) are the initial
    weights, merged as in LOSO (:func:`initial_weights`).
    """
    if split not in SPLITS:
        raise UserInputError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if not 0 <= test_fraction < 1:
        raise UserInputError(f"test fraction must be in [0, 1), got {test_fraction}")
    out = Path(out)
    if getattr(data, "input_kind", DEFAULT_INPUT_KIND) != config.input_kind:
        raise UserInputError(
            f"the data holds {data.input_kind!r} inputs but the configuration asks for {config.input_kind!r}"
        )
    classes = list(data.classes)
    labels = np.asarray(data.labels, dtype=np.int64)
    if test_fraction == 0:
        train_idx, test_idx = np.arange(len(labels)), np.zeros(0, dtype=np.int64)
    elif split == "random":
        train_idx, test_idx = stratified_split(labels, test_fraction, config.seed)
    else:
        train_idx, test_idx = subject_split(data.subjects, test_fraction, config.seed)

    pretrained_state, sources = initial_weights(imagenet, pretrained, classes)
    seed_everything(config.seed)
    model, load_info = build_model(config, len(classes), pretrained_state)
    named = [src["path"] for src in (sources["imagenet"], sources["pretrained"]) if src]
    if named:
        print(describe_load(load_info, " + ".join(named)), file=sys.stderr)

    device = resolve_device(config.device)
    all_images = images_to_tensor(data.images, device, config.image_size, config.channels_last)
    started = time.perf_counter()
    model, history = fit(
        model,
        all_images[torch.as_tensor(train_idx, device=device)],
        labels[train_idx],
        config,
        num_classes=len(classes),
        subjects=[data.subjects[i] for i in train_idx],
        seed=config.seed,
        progress=progress,
        desc=f"pretrain {data.dataset or 'data'}",
    )
    seconds = time.perf_counter() - started
    result: dict[str, Any] = {
        "checkpoint": str(out),
        "dataset": data.dataset,
        "protocol": data.protocol,
        "classes": classes,
        "split": split,
        "test_fraction": test_fraction,
        "n_train": len(train_idx),
        "n_test": len(test_idx),
        "n_train_subjects": len({data.subjects[i] for i in train_idx}),
        "n_test_subjects": len({data.subjects[i] for i in test_idx}),
        "final_train_loss": history[-1]["train_loss"],
        "selected_epoch": next(row["epoch"] for row in history if row.get("selected")),
        "train_seconds": seconds,
        "initial_weights": None,
    }
    if named:
        result["initial_weights"] = {**sources, **{k: v for k, v in load_info.items() if k != "skipped"}}
    if len(test_idx):
        probs = evaluate(
            model,
            all_images[torch.as_tensor(test_idx, device=device)],
            config.batch_size,
            amp_dtype=autocast_dtype(config, device),
            channels_last=config.channels_last,
        )
        result["test"] = metrics.summarize(labels[test_idx], probs.argmax(axis=1), classes)
    save_checkpoint(
        out,
        model,
        classes=classes,
        config=config,
        dataset=data.dataset,
        protocol=data.protocol,
        metrics=dict(evaluation) if evaluation is not None else result.get("test", {}),
        alignment=alignment,
        extra={
            "protocol_notes": {"split": split, "test_fraction": test_fraction, "n_train": len(train_idx)},
            "n_samples": len(labels),
            "n_subjects": len(set(data.subjects)),
            "initial_weights": sources,
        },
    )
    write_json_atomic(
        out.with_suffix(".config.json"),
        {
            "config": config.to_dict(),
            "dataset": data.dataset,
            "protocol": data.protocol,
            "classes": classes,
            "split": split,
            "test_fraction": test_fraction,
            "alignment": dict(alignment or {}),
            "imagenet": sources["imagenet"],
            "pretrained": sources["pretrained"],
            "versions": environment_versions(),
        },
    )
    write_json_atomic(out.with_suffix(".metrics.json"), {**result, "history": history})
    return result
