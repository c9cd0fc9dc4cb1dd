"""Leave-one-subject-out (LOSO) evaluation: one fold per subject, every sample predicted exactly once.

In the fold of subject s, the model is built, trained by :func:`training.engine.fit` on the OTHER subjects'
images only, and then predicts s's images once. Nothing about s — images, labels or scores — reaches
training, the loss weights (α comes from the fold's training labels) or model selection (``selection``
``last`` keeps the final epoch; ``inner-val`` chooses the epoch on training subjects held out inside the
fold).

A run folder holds::

    config.json          what was run: resolved configuration, data set, classes, data fingerprint,
                         pretrained weights (path, sha256), library versions
    folds/<subject>.json one per finished fold: every prediction with its probabilities, sizes, seconds,
                         training history
    report.json / report.md / report.html / confusion.png / folds.png
                         pooled over the finished folds (training.report)

Running the same command again resumes: finished folds are read back, only missing ones are trained, and
the report is always rebuilt from the fold files, so a resumed run reports exactly what a run without
interruption reports. Folds run in this process or as Ray tasks (:mod:`training.distributed`), both through
:func:`train_fold`, and either way resumes the other's run. A folder that holds a run with a different
configuration is refused unless ``overwrite`` is given.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm import tqdm

from realtime.core.errors import UserInputError
from realtime.core.model_contract import apply_temperature
from training import metrics
from training.batches import images_to_tensor
from training.calibration import calibration_summary, fit_temperature
from training.checkpoints import initial_weights
from training.config import TrainConfig
from training.engine import build_model, describe_load, evaluate, fit, inner_validation_split
from training.report import write_json_atomic, write_report
from training.runtime import autocast_dtype, derive_seed, environment_versions, resolve_device, seed_everything

if TYPE_CHECKING:  # annotations only: importing preprocess pulls in the alignment stack (dlib)
    from training.preprocess import CropSet

CONFIG_FILE = "config.json"
FOLDS_DIR = "folds"
REPORT_FILES = ("report.json", "report.md", "report.html", "confusion.png", "folds.png")
# Configuration fields that say where a run executes, not what it computes: a run may resume elsewhere.
EXECUTION_ONLY_FIELDS = ("device",)
PROBABILITY_DIGITS = 6


def data_fingerprint(data: CropSet) -> str:
    """SHA-256 over the crops' pixels, labels, subjects, sample ids and class names: a resumed run must
    see exactly the data its finished folds saw."""
    digest = hashlib.sha256()
    images = np.ascontiguousarray(data.images)
    digest.update(str((images.shape, str(images.dtype))).encode())
    digest.update(images.tobytes())
    digest.update(np.asarray(data.labels, dtype=np.int64).tobytes())
    digest.update(json.dumps([list(data.subjects), list(data.sample_ids), list(data.classes)]).encode())
    return digest.hexdigest()


def fold_file(out_dir: Path, subject: str) -> Path:
    """``out_dir/folds/<subject>.json`` (characters outside letters, digits, ``._-`` become ``_``)."""
    return Path(out_dir) / FOLDS_DIR / (re.sub(r"[^A-Za-z0-9._-]", "_", subject) + ".json")


def _identity(run_config: Mapping[str, Any]) -> dict[str, Any]:
    """The part of ``config.json`` that must match for a folder to be resumed."""
    config = {k: v for k, v in run_config["config"].items() if k not in EXECUTION_ONLY_FIELDS}
    weights = {name: (run_config.get(name) or {}).get("sha256") for name in ("pretrained", "imagenet")}
    return {
        "config": config,
        "dataset": run_config.get("dataset"),
        "protocol": run_config.get("protocol"),
        "classes": run_config.get("classes"),
        "data_sha256": run_config.get("data_sha256"),
        "weights": weights,
    }


def _prepare_run_dir(out_dir: Path, run_config: Mapping[str, Any], overwrite: bool) -> None:
    """Create the run folder, or check that it holds this very run; with ``overwrite`` clear its old run."""
    path = out_dir / CONFIG_FILE
    if out_dir.exists() and not out_dir.is_dir():
        raise UserInputError(f"{out_dir} is a file, not a run folder; choose another --out")
    orphans = sorted((out_dir / FOLDS_DIR).glob("*.json")) if not path.is_file() else []
    if orphans and not overwrite:
        raise UserInputError(
            f"{out_dir} holds fold results without the {CONFIG_FILE} that says how they were made; choose "
            "another --out (or pass --overwrite to replace them)"
        )
    for old in orphans:
        old.unlink()
    if path.is_file():
        try:
            existing = json.loads(path.read_text())
            same = _identity(existing) == _identity(run_config)
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            same = False
        if same:
            return
        if not overwrite:
            raise UserInputError(
                f"{out_dir} holds a run with a different configuration; choose another --out "
                "(or pass --overwrite to replace it)"
            )
        for old in (out_dir / FOLDS_DIR).glob("*.json"):
            old.unlink()
        for name in REPORT_FILES:
            (out_dir / name).unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, run_config)


def _read_fold(out_dir: Path, subject: str, data: CropSet) -> dict[str, Any] | None:
    """A finished fold's record, or None when there is none or it does not fit this data (then retrained)."""
    path = fold_file(out_dir, subject)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        expected = {
            sample: data.classes[int(label)]
            for sample, subj, label in zip(data.sample_ids, data.subjects, data.labels, strict=True)
            if subj == subject
        }
        found = {p["sample"]: p["true"] for p in record["predictions"]}
        valid = (
            record["subject"] == subject
            and found == expected
            and len(record["predictions"]) == len(expected)
            and all(p["predicted"] in data.classes for p in record["predictions"])
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        valid = False
    if not valid:
        print(f"warning: {path} does not match this data set; that fold is trained again", file=sys.stderr)
        return None
    return record


def _check_data(data: CropSet) -> None:
    if len(data.labels) == 0:
        raise UserInputError("the data set has no samples")
    if len(data.classes) < 2:
        raise UserInputError(f"classification needs at least 2 classes, got {len(data.classes)}")
    labels = np.asarray(data.labels)
    if labels.min() < 0 or labels.max() >= len(data.classes):
        raise UserInputError("a label lies outside the class list")
    if len(set(data.subjects)) < 2:
        raise UserInputError("leave-one-subject-out needs at least two subjects")
    if len(set(data.sample_ids)) != len(data.sample_ids):
        raise UserInputError("sample ids are not unique: predictions could not be told apart")


def train_fold(
    data: CropSet,
    images: torch.Tensor,
    subject: str,
    config: TrainConfig,
    initial_state: Mapping[str, torch.Tensor] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train on every subject but ``subject`` and predict ``subject``'s samples once.

    ``images`` is the whole data set as one uint8 tensor on the training device (from
    :func:`training.batches.images_to_tensor`); only the training rows are handed to ``fit``, the test rows
    only to ``evaluate``. Returns the fold's record (what ``folds/<subject>.json`` holds).
    """
    subjects = np.asarray(data.subjects)
    labels = np.asarray(data.labels, dtype=np.int64)
    is_test = subjects == subject
    train_idx, test_idx = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    if len(test_idx) == 0:
        raise UserInputError(f"subject {subject!r} has no samples")
    device = images.device
    fold_seed = derive_seed(config.seed, subject)
    started = time.perf_counter()
    calibration_idx = np.zeros(0, dtype=np.int64)
    calibration_subjects: list[str] = []
    if config.calibrate:  # inner validation subjects for the temperature: out of training, never the test subject
        keep, held, calibration_subjects = inner_validation_split(
            [data.subjects[i] for i in train_idx], config.val_subjects, derive_seed(fold_seed, "calibration")
        )
        train_idx, calibration_idx = train_idx[keep], train_idx[held]
    seed_everything(fold_seed)  # the model's initialisation is part of the fold's randomness
    model, load_info = build_model(config, len(data.classes), initial_state)
    model, history = fit(
        model,
        images[torch.as_tensor(train_idx, device=device)],
        labels[train_idx],
        config,
        num_classes=len(data.classes),
        subjects=[data.subjects[i] for i in train_idx],
        seed=fold_seed,
        progress=progress,
        desc=f"fold {subject}",
    )
    probabilities = evaluate(
        model,
        images[torch.as_tensor(test_idx, device=device)],
        config.batch_size,
        amp_dtype=autocast_dtype(config, device),
        channels_last=config.channels_last,
    )
    temperature = 1.0
    raw_probabilities = probabilities
    if len(calibration_idx):
        held_out = evaluate(
            model,
            images[torch.as_tensor(calibration_idx, device=device)],
            config.batch_size,
            amp_dtype=autocast_dtype(config, device),
            channels_last=config.channels_last,
        )
        temperature = fit_temperature(held_out, labels[calibration_idx])
        probabilities = apply_temperature(probabilities, temperature)
    seconds = time.perf_counter() - started
    predicted = probabilities.argmax(axis=1)
    selected = next(row for row in history if row.get("selected"))
    return {
        "subject": subject,
        "fold_seed": fold_seed,
        "n_train": len(train_idx),
        "n_test": len(test_idx),
        "train_subjects": sorted(set(subjects[train_idx].tolist())),
        "val_subjects": list(history[0].get("val_subjects", [])),
        "selected_epoch": selected["epoch"],
        "final_train_loss": history[-1]["train_loss"],
        "initial_tensors_loaded": load_info["n_loaded"],
        "seconds": seconds,
        "device": str(device),
        "history": [{k: v for k, v in row.items() if k != "val_subjects"} for row in history],
        "calibration_subjects": calibration_subjects,
        "temperature": temperature,
        "predictions": [
            {
                "sample": data.sample_ids[i],
                "true": data.classes[labels[i]],
                "predicted": data.classes[int(p)],
                "probabilities": [round(float(v), PROBABILITY_DIGITS) for v in probs],
                **(
                    {"raw_probabilities": [round(float(v), PROBABILITY_DIGITS) for v in raw]}
                    if len(calibration_idx)
                    else {}
                ),
            }
            for i, p, probs, raw in zip(test_idx, predicted, probabilities, raw_probabilities, strict=True)
        ],
    }


# Trains the given folds (subjects) and yields (subject, fold record) as each one finishes, in any order:
# runner(data, subjects, config, initial_state, progress).
FoldRunner = Callable[
    ["CropSet", Sequence[str], TrainConfig, "Mapping[str, torch.Tensor] | None", bool],
    Iterable[tuple[str, dict[str, Any]]],
]


def run_folds_in_process(
    data: CropSet,
    subjects: Sequence[str],
    config: TrainConfig,
    initial_state: Mapping[str, torch.Tensor] | None = None,
    progress: bool = True,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The default :data:`FoldRunner`: :func:`train_fold` for each subject in turn, in this process, with the
    images moved to the training device once."""
    device = resolve_device(config.device)
    images = images_to_tensor(data.images, device, config.image_size, config.channels_last)
    folds = tqdm(subjects, desc="LOSO", unit="fold", disable=not progress)
    for subject in folds:
        folds.set_postfix(subject=subject, refresh=False)
        yield subject, train_fold(data, images, subject, config, initial_state, progress)


def build_report(
    data: CropSet,
    folds: Mapping[str, Mapping[str, Any]],
    run_config: Mapping[str, Any],
) -> dict[str, Any]:
    """The pooled report over the finished ``folds`` (subject → fold record), in subject order."""
    classes = list(data.classes)
    position = {name: i for i, name in enumerate(classes)}
    all_subjects = sorted(set(data.subjects))
    done = [s for s in all_subjects if s in folds]
    if not done:
        raise ValueError("no finished fold to report on")
    predictions, fold_rows = [], []
    for subject in done:
        record = folds[subject]
        truth = [position[p["true"]] for p in record["predictions"]]
        guess = [position[p["predicted"]] for p in record["predictions"]]
        cm = metrics.confusion_matrix(truth, guess, len(classes))
        fold_rows.append(
            {
                "subject": subject,
                "n_test": record["n_test"],
                "n_train": record["n_train"],
                "accuracy": metrics.accuracy(truth, guess),
                "f1": metrics.f1_macro(cm),
                "seconds": record.get("seconds"),
                "final_train_loss": record.get("final_train_loss"),
                "selected_epoch": record.get("selected_epoch"),
            }
        )
        predictions += [{"subject": subject, **p} for p in record["predictions"]]
    y_true = [position[p["true"]] for p in predictions]
    y_pred = [position[p["predicted"]] for p in predictions]
    summary = metrics.summarize(y_true, y_pred, classes)
    calibration = None
    if predictions and all("raw_probabilities" in p for p in predictions):
        calibration = {
            "temperatures": {s: folds[s].get("temperature", 1.0) for s in done},
            "temperature": float(np.median([folds[s].get("temperature", 1.0) for s in done])),
            **calibration_summary(
                np.array([p["raw_probabilities"] for p in predictions]),
                np.array([p["probabilities"] for p in predictions]),
                np.array(y_true),
            ),
        }
    pretrained = run_config.get("pretrained")
    return {
        "dataset": data.dataset,
        "protocol": data.protocol,
        "evaluation": "leave-one-subject-out",
        "classes": classes,
        "complete": len(done) == len(all_subjects),
        "missing_subjects": [s for s in all_subjects if s not in folds],
        "n_samples": summary["n_samples"],
        "n_subjects": len(done),
        "accuracy": summary["accuracy"],
        "f1_macro": summary["f1_macro"],
        "uf1": summary["uf1"],
        "uar": summary["uar"],
        "f1_weighted": summary["f1_weighted"],
        "per_class": summary["per_class"],
        "confusion_matrix": summary["confusion_matrix"],
        "calibration": calibration,
        "folds": fold_rows,
        "predictions": predictions,
        "config": dict(run_config["config"]),
        "pretrained": f"{pretrained['path']} (sha256 {pretrained['sha256'][:12]}…)" if pretrained else None,
        "versions": run_config.get("versions"),
    }


def run_loso(
    data: CropSet,
    config: TrainConfig,
    out_dir: Path,
    pretrained: Path | None = None,
    progress: bool = True,
    subjects: Sequence[str] | None = None,
    *,
    imagenet: Path | None = None,
    alignment: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    runner: FoldRunner | None = None,
    evaluation: str = "leave-one-subject-out",
) -> dict[str, Any]:
    """Leave-one-subject-out over ``data``; resumable; returns the report (also written to ``out_dir``).

    ``pretrained``: a checkpoint of this project to transfer from (CK+), ``imagenet``: a torchvision
    ResNet18 state dict; both optional, both recorded with their sha256. ``subjects`` limits this
    invocation to those folds (to split work between machines over one folder); the report then covers
    the folds finished so far and says which are missing.

    ``runner`` trains the missing folds (:data:`FoldRunner`): by default :func:`run_folds_in_process`, one
    after the other in this process; :class:`training.distributed.RayFoldRunner` runs them as Ray tasks.
    Either way each fold is :func:`train_fold`, and this function alone writes the fold files and the
    report, so a run started one way resumes the other way with the same result. ``evaluation`` names what
    the folds hold out, for the report (``leave-one-photo-out`` when the subjects are photo groups).
    """
    out_dir = Path(out_dir)
    _check_data(data)
    if data.input_kind != config.input_kind:
        raise UserInputError(
            f"the data holds {data.input_kind!r} inputs but the configuration asks for {config.input_kind!r}"
        )
    all_subjects = sorted(set(data.subjects))
    if subjects:
        unknown = sorted(set(subjects) - set(all_subjects))
        if unknown:
            raise UserInputError(f"unknown subjects {', '.join(unknown)}; the data holds {', '.join(all_subjects)}")
        requested = [s for s in all_subjects if s in set(subjects)]
    else:
        requested = all_subjects

    initial_state, sources = initial_weights(imagenet, pretrained, data.classes)
    run_config = {
        "config": config.to_dict(),
        "evaluation": "leave-one-subject-out",
        "dataset": data.dataset,
        "protocol": data.protocol,
        "classes": list(data.classes),
        "n_samples": len(data.labels),
        "subjects": all_subjects,
        "data_sha256": data_fingerprint(data),
        "alignment": dict(alignment or {}),
        "pretrained": sources["pretrained"],
        "imagenet": sources["imagenet"],
        "versions": environment_versions(),
    }
    _prepare_run_dir(out_dir, run_config, overwrite)
    run_config = json.loads((out_dir / CONFIG_FILE).read_text())  # the folder's own record, when resuming

    finished: dict[str, dict[str, Any]] = {}
    for subject in all_subjects:
        record = _read_fold(out_dir, subject, data)
        if record is not None:
            finished[subject] = record
    todo = [s for s in requested if s not in finished]
    if todo:
        if initial_state is not None:
            _, info = build_model(config, len(data.classes), initial_state)
            names = [src["path"] for src in (sources["imagenet"], sources["pretrained"]) if src]
            print(describe_load(info, " + ".join(names)), file=sys.stderr)
        for subject, record in (runner or run_folds_in_process)(data, todo, config, initial_state, progress):
            write_json_atomic(fold_file(out_dir, subject), record)  # as each fold ends: an interrupt keeps it
            finished[subject] = record
    report = build_report(data, finished, run_config)
    report["evaluation"] = evaluation  # folds by group (--groups): e.g. leave-one-photo-out
    write_report(report, out_dir)
    return report


# --- a finished run's figures, for a model's metadata -----------------------------------------------------------

MUST_MATCH = (
    "attention",
    "loss",
    "gamma",
    "alpha",
    "epochs",
    "image_size",
    "lr",
    "batch_size",
    "selection",
    "input_kind",
)
_EVALUATION_KEYS = ("accuracy", "f1_macro", "uf1", "uar", "f1_weighted", "n_samples", "n_subjects", "confusion_matrix")


def run_evaluation(
    run_dir: Path, config: Mapping[str, Any], dataset: str, protocol: str, allow_partial: bool = False
) -> dict[str, Any]:
    """The headline figures of a finished LOSO run folder, refused (one :class:`UserInputError`) when it is
    unfinished or measured another configuration than ``config`` (a :meth:`TrainConfig.to_dict`). A run whose
    folds were groups (``--groups``, e.g. photos) is a leave-one-group-out evaluation."""
    run_dir = Path(run_dir)
    report_path, config_path = run_dir / "report.json", run_dir / CONFIG_FILE
    for path in (report_path, config_path):
        if not path.is_file():
            raise UserInputError(f"--loso-run {run_dir}: {path.name} is missing (is the LOSO run finished?)")
    try:
        report, run = json.loads(report_path.read_text()), json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise UserInputError(f"--loso-run {run_dir}: unreadable JSON ({exc})") from None
    ran = run.get("config", {})
    differing = [k for k in MUST_MATCH if k in ran and k in config and ran[k] != config[k]]
    if differing:
        detail = ", ".join(f"{k} {ran[k]!r} vs {config[k]!r}" for k in differing)
        raise UserInputError(f"--loso-run {run_dir} measured another configuration: {detail}")
    if report.get("missing_subjects") and not allow_partial:
        missing = ", ".join(report["missing_subjects"])
        raise UserInputError(f"--loso-run {run_dir} is unfinished: folds {missing} are missing")
    calibration = report.get("calibration")
    return {
        "evaluation": report.get("evaluation", "leave-one-subject-out"),
        "run": str(run_dir),
        "dataset": run.get("dataset", dataset),
        "protocol": run.get("protocol", protocol),
        **{k: report[k] for k in _EVALUATION_KEYS if k in report},
        **({"missing_folds": report["missing_subjects"]} if report.get("missing_subjects") else {}),
        **(
            {"calibration": {k: calibration[k] for k in ("temperature", "ece_before", "ece_after")}}
            if calibration
            else {}
        ),
    }


def combined_evaluation(
    run_dirs: Sequence[Path], config: Mapping[str, Any], dataset: str, protocol: str, allow_partial: bool = False
) -> dict[str, Any]:
    """The model's ``metrics``: the first leave-one-subject-out run's figures at the top level (as before),
    each leave-one-group-out run's under ``by_photo``, and the calibration of the run that has one. With
    ``allow_partial`` an unfinished run counts over its finished folds and says which are missing."""
    found = [run_evaluation(d, config, dataset, protocol, allow_partial) for d in run_dirs]
    by_subject = [f for f in found if f["evaluation"] == "leave-one-subject-out"]
    by_group = [f for f in found if f["evaluation"] != "leave-one-subject-out"]
    combined = dict(by_subject[0] if by_subject else by_group[0])
    if by_group and by_subject:
        combined["by_photo"] = {k: v for k, v in by_group[0].items() if k != "calibration"}
    calibrated = [f["calibration"] for f in found if "calibration" in f]
    if calibrated:
        combined["calibration"] = calibrated[0]
    return combined
