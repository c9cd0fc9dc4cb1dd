"""Where and how reproducibly a run executes: the device, the autocast dtype, seeds, deterministic
kernels, and the library versions recorded with every run and checkpoint."""

from __future__ import annotations

import hashlib
import os
import platform
import random
import sys

import numpy as np
import torch
import torchvision

from realtime.core.errors import UserInputError
from training.config import TrainConfig


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
