"""Training engine: the model, loss and optimiser a run builds, and a fast on-device training loop.

Laid out like torchvision's ``references/classification/train.py``: :func:`train_one_epoch` and
:func:`evaluate` are separate and :func:`fit` ties them. The configuration is :mod:`training.config`, the
device and seeds :mod:`training.runtime`, the batches :mod:`training.batches`, checkpoint files
:mod:`training.checkpoints`, and training on a whole data set (CK+ pretraining, the deployable model)
:mod:`training.pretrain`.

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

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from realtime.core.errors import UserInputError
from training import metrics
from training.batches import images_to_tensor, normalize, prepare_batch, to_unit_rgb
from training.config import TrainConfig
from training.losses import build_loss, inverse_frequency_alpha
from training.model import attention_resnet18, load_backbone_weights, num_outputs
from training.runtime import autocast_dtype, configure_determinism, resolve_device, seed_everything

# --- model, loss, optimiser --------------------------------------------------------------------------------


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
        return np.zeros((0, num_outputs(model)), dtype=np.float64)
    return torch.cat(outputs).cpu().numpy().astype(np.float64)


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


def _as_image_tensor(images: np.ndarray | torch.Tensor, device: torch.device, config: TrainConfig) -> torch.Tensor:
    if isinstance(images, np.ndarray):
        return images_to_tensor(images, device, config.image_size, config.channels_last)
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected a uint8 (N, 3, S, S) tensor, got {images.dtype} {tuple(images.shape)}")
    return images.to(device)


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
    num_classes = num_classes or num_outputs(model)

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
