"""Training on a whole data set and saving the checkpoint: the paper's CK+ step (split 8:2, the held-out
part evaluated once at the end) and, with nothing held out, the deployable model of ``python -m training fit``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from realtime.core.errors import UserInputError
from realtime.core.motion import DEFAULT_INPUT_KIND
from training import metrics
from training.batches import images_to_tensor
from training.checkpoints import initial_weights, save_checkpoint
from training.config import TrainConfig
from training.engine import build_model, describe_load, evaluate, fit
from training.report import write_json_atomic
from training.runtime import autocast_dtype, environment_versions, resolve_device, seed_everything

if TYPE_CHECKING:  # only for annotations: importing preprocess pulls in the alignment stack
    from training.preprocess import CropSet

SPLITS = ("random", "subject")  # what pretrain holds out: images stratified by class, or whole subjects


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
    weights, merged as in LOSO (:func:`training.checkpoints.initial_weights`).
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
