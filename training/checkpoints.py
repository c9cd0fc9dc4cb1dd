"""Checkpoint files: saving a self-describing checkpoint, loading it back, and reading the weights a run
starts from (a project checkpoint or a plain state dict such as torchvision's ImageNet ResNet18).

Everything is read with ``torch.load(weights_only=True)``: a file of unknown origin is never unpickled as
code, and whatever goes wrong reading one is a :class:`UserInputError` naming the file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from realtime.core.errors import UserInputError
from realtime.core.files import atomic_path, file_sha256
from training.batches import CHANNEL_ORDER, IMAGENET_MEAN, IMAGENET_STD
from training.config import TrainConfig
from training.model import attention_resnet18, num_outputs
from training.report import to_jsonable
from training.runtime import environment_versions

ARCH_NAME = "attention_resnet18"
CHECKPOINT_FORMAT = 1


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
    num_classes = num_outputs(model)
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
