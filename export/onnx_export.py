"""Export a training checkpoint to the ONNX model the streaming recognizer runs, and prove it still agrees.

:func:`export_checkpoint` does, in order:

1. checks the output path (a writable ``.onnx`` file, not a folder) before any slow work;
2. loads the checkpoint with :func:`training.checkpoints.load_checkpoint` (bad files are a ``UserInputError``);
3. traces the attention ResNet18 with a softmax appended, with the TorchScript exporter (the dynamo exporter
   needs ``onnxscript``, which is not a dependency), to a temporary file beside the output. Input ``input``
   (N×3×S×S float32, N fixed at 1 unless ``dynamic_batch``), output ``probabilities``. With ``fp16`` the
   weights and compute are half precision but the graph casts its float32 input to half and its logits back
   to float32 before the softmax, so the recognizer feeds and reads float32 whatever the precision;
4. writes the contract :mod:`realtime.stages.classify` reads into ``metadata_props`` (classes, input size,
   normalisation, alignment, training, metrics, version) and runs ``onnx.checker.check_model`` (full check);
5. checks parity: real face photographs that pip packages ship, aligned by the project's one alignment with
   the checkpoint's settings, plus flipped and brightness-varied copies, go through the recognizer's own
   :class:`realtime.stages.classify.Classifier` (its preprocessing, ONNX Runtime on the CPU) and through PyTorch;
   the largest probability difference must be within the bound;
6. only then renames the temporary file to the output and writes the JSON report beside it. A failed
   export leaves nothing at the output path (and an existing file there untouched).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import importlib.metadata
import importlib.util
import json
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import torch
from torch import nn

from export.options import ExportOptions, ExportReport, ParityError, ParityResult
from realtime.core.align import AlignmentSettings, align_largest_face
from realtime.core.errors import UserInputError
from realtime.core.files import atomic_path
from realtime.core.landmarks import FaceLandmarker
from realtime.core.model_contract import INPUT_NAME, OUTPUT_NAME, ModelContract, apply_temperature
from realtime.core.motion import DEFAULT_INPUT_KIND, INPUT_KINDS, build_classifier_input, needs_onset
from training.checkpoints import ARCH_NAME, load_checkpoint
from training.model import ATTENTION_VARIANTS
from training.report import to_jsonable, write_json_atomic

PROJECT = "microexpr"
# brightness factors of the varied copies: a dim room and an over-exposed webcam
BRIGHTNESS_FACTORS = {"darker": 0.7, "brighter": 1.3}

Log = Callable[[str], None]


def project_version() -> str:
    """The installed project's version (``pyproject.toml``), or ``0+unknown`` when run from a bare checkout."""
    try:
        return importlib.metadata.version(PROJECT)
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


# --- the parity crops -----------------------------------------------------------------------------------------


def face_photo_paths() -> list[tuple[str, Path]]:
    """Face photographs that installed packages ship: matplotlib's ``grace_hopper.jpg`` (a dependency) and
    scikit-image's ``astronaut.png`` (a dev dependency: skipped when scikit-image is absent)."""
    import matplotlib.cbook

    photos = [("grace_hopper", Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))]
    spec = importlib.util.find_spec("skimage")
    if spec is not None and spec.submodule_search_locations:
        astronaut = Path(next(iter(spec.submodule_search_locations))) / "data" / "astronaut.png"
        if astronaut.is_file():
            photos.append(("astronaut", astronaut))
    return photos


@functools.cache
def _located_faces() -> tuple[tuple[str, np.ndarray, np.ndarray], ...]:
    """(name, BGR photo, 68 landmarks) of every shipped photo whose face dlib finds. Cached: the landmark
    model takes about a second to load and the landmarks do not depend on the alignment settings."""
    landmarker = FaceLandmarker(detect_width=4096)  # detect at full resolution: the astronaut's face is ~90 px
    found = []
    for name, path in face_photo_paths():
        image = cv2.imread(str(path))
        if image is None:
            continue
        located = align_largest_face(image, landmarker, whole_image_fallback=False)
        if located is not None:
            found.append((name, image, located.landmarks))
    return tuple(found)


def parity_crops(settings: AlignmentSettings) -> tuple[np.ndarray, tuple[str, ...]]:
    """Aligned face crops (N×S×S×3 BGR uint8, S = ``settings.output_size``) and their names: each shipped
    photo aligned with ``settings``, its mirror image and two brightness-varied copies."""
    from realtime.core.align import align_face

    crops, names = [], []
    for name, image, landmarks in _located_faces():
        crop = align_face(image, landmarks, settings).image
        crops += [crop, np.ascontiguousarray(crop[:, ::-1])]
        names += [name, f"{name}:flipped"]
        for label, factor in BRIGHTNESS_FACTORS.items():
            crops.append(np.clip(crop.astype(np.float32) * factor, 0, 255).round().astype(np.uint8))
            names.append(f"{name}:{label}")
    if not crops:
        raise UserInputError(
            "no face found in the photographs matplotlib ships (grace_hopper.jpg); the parity check needs one"
        )
    return np.stack(crops), tuple(names)


def parity_inputs(settings: AlignmentSettings, input_kind: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """The classifier inputs of ``input_kind`` the parity check feeds both runtimes: for ``apex`` the parity
    crops; for the kinds that need an onset, each crop as the apex with the next crop as its onset (real face
    pairs that differ in brightness, mirroring or identity, so the inputs are far from trivial), built by
    :func:`realtime.core.motion.build_classifier_input`."""
    crops, names = parity_crops(settings)
    if not needs_onset(input_kind):
        return crops, names
    onsets = np.roll(crops, 1, axis=0)
    inputs = [build_classifier_input(input_kind, apex, onset) for apex, onset in zip(crops, onsets, strict=True)]
    previous = names[-1:] + names[:-1]
    return np.stack(inputs), tuple(f"{n}<-{p}" for n, p in zip(names, previous, strict=True))


def torch_probabilities(
    model: nn.Module, crops: np.ndarray, channel_order: str, mean: Sequence[float], std: Sequence[float]
) -> np.ndarray:
    """PyTorch's class probabilities (float64 N×C) for BGR uint8 crops, preprocessed from the checkpoint's
    normalisation the way the recognizer does: channel order, /255, (x − mean)/std."""
    batch = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2)
    if channel_order.upper() == "RGB":
        batch = batch.flip(1)
    x = batch.float().contiguous() / 255.0  # NCHW-contiguous: the permuted view runs convolutions 2× slower
    x = (x - torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.inference_mode():
        return torch.softmax(model.eval()(x), dim=1).double().numpy()


# --- the checkpoint ---------------------------------------------------------------------------------------------


def _load(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """:func:`training.checkpoints.load_checkpoint`, with whatever else torch's unpickler throws at a file that
    is not a checkpoint (an ``IndexError`` for a short text file) also turned into a ``UserInputError``."""
    try:
        return load_checkpoint(path, "cpu")
    except UserInputError:
        raise
    except Exception as exc:
        raise UserInputError(
            f"cannot read {path} as PyTorch weights ({type(exc).__name__}): not a checkpoint of this project"
        ) from None


def _checkpoint_contract(path: Path, meta: Mapping[str, Any]) -> tuple[str, ModelContract]:
    """The attention variant and the model contract (at the trained input size) from the checkpoint's
    metadata, validated; a gap is a ``UserInputError``."""
    arch = meta.get("arch") or {}
    attention = str(arch.get("attention"))
    if attention not in ATTENTION_VARIANTS:
        raise UserInputError(f"{path}: unknown attention variant {attention!r}")
    classes = meta.get("classes")
    if not (isinstance(classes, list) and len(classes) == int(arch.get("num_classes", -1)) and len(classes) >= 2):
        raise UserInputError(f"{path}: its class names do not match the model's {arch.get('num_classes')} outputs")
    norm = meta.get("normalization")
    try:
        order = str(norm["channel_order"]).upper()
        mean = tuple(float(v) for v in norm["mean"])
        std = tuple(float(v) for v in norm["std"])
        image_size = int(meta["image_size"])
    except (KeyError, TypeError, ValueError):
        raise UserInputError(f"{path}: the checkpoint lacks its input size or normalisation (mean, std)") from None
    if order not in ("RGB", "BGR") or len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise UserInputError(f"{path}: invalid normalisation {norm!r}")
    alignment = dict(meta.get("alignment") or {})
    known = {f.name for f in dataclasses.fields(AlignmentSettings)}
    unknown = sorted(set(alignment) - known)
    if unknown:
        raise UserInputError(f"{path}: unknown alignment settings {', '.join(unknown)}")
    input_kind = str((meta.get("config") or {}).get("input_kind", DEFAULT_INPUT_KIND))
    if input_kind not in INPUT_KINDS:
        raise UserInputError(f"{path}: unknown classifier input {input_kind!r}")
    calibration = meta.get("calibration") or (meta.get("metrics") or {}).get("calibration") or {}
    temperature = float(calibration.get("temperature", 1.0))
    if not temperature > 0:
        raise UserInputError(f"{path}: calibration temperature must be positive, got {temperature}")
    contract = ModelContract(
        classes=tuple(str(c) for c in classes),
        input_size=image_size,
        channel_order=order,
        mean=mean,  # type: ignore[arg-type]
        std=std,  # type: ignore[arg-type]
        alignment=AlignmentSettings(**{**alignment, "output_size": image_size}),
        input_kind=input_kind,
        temperature=temperature,
    )
    return attention, contract


def _training_description(meta: Mapping[str, Any], attention: str, trained_size: int) -> dict[str, Any]:
    """The ``training`` metadata object: data set, protocol, a one-line description, the configuration."""
    config = dict(meta.get("config") or {})
    notes = meta.get("protocol_notes") if isinstance(meta.get("protocol_notes"), Mapping) else {}
    words = [f"attention {attention}"]
    if config.get("loss"):
        words.append(f"{config['loss']} loss")
    if config.get("epochs"):
        words.append(f"{config['epochs']} epochs")
    words.append(f"trained at {trained_size} px")
    training: dict[str, Any] = {
        "dataset": meta.get("dataset") or "",
        "protocol": meta.get("protocol") or "",
        "description": ", ".join(words),
        "config": config,
        "trained_image_size": trained_size,
    }
    n_samples = meta.get("n_samples", notes.get("n_train"))
    if n_samples is not None:
        training["n_samples"] = n_samples
    for key in ("n_subjects", "initial_weights"):
        if meta.get(key) is not None:
            training[key] = meta[key]
    if notes:
        training["protocol_notes"] = dict(notes)
    if meta.get("versions"):
        training["versions"] = meta["versions"]
    return to_jsonable(training)


# --- output path --------------------------------------------------------------------------------------------------


def prepare_output(output: Path) -> Path:
    """Check that ``output`` can receive the model: an ``.onnx`` file name, not an existing folder, in a
    folder that exists (created if needed) and is writable. Every problem is a ``UserInputError``."""
    output = Path(output).expanduser()
    if output.suffix.lower() != ".onnx":
        raise UserInputError(f"output {output} must end in .onnx (the recognizer looks for weights/*.onnx)")
    if output.is_dir():
        raise UserInputError(f"output {output} is an existing folder; give a file name such as {output}/model.onnx")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserInputError(f"cannot create the output folder {output.parent}: {exc.strerror or exc}") from None
    if not os.access(output.parent, os.W_OK | os.X_OK):
        raise UserInputError(f"cannot write into the output folder {output.parent}: permission denied")
    return output


# --- tracing --------------------------------------------------------------------------------------------------------


class _WithSoftmax(nn.Module):
    """The classifier with a softmax appended; with ``half`` its weights are float16 and the graph casts
    the float32 input to float16 and the logits back to float32 (the softmax runs in float32)."""

    def __init__(self, net: nn.Module, half: bool) -> None:
        super().__init__()
        self.half_precision = half
        self.net = copy.deepcopy(net).half() if half else net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.half_precision:
            return torch.softmax(self.net(x.half()).float(), dim=1)
        return torch.softmax(self.net(x), dim=1)


def _trace(model: nn.Module, path: Path, image_size: int, options: ExportOptions) -> None:
    """TorchScript-export ``model`` + softmax to ``path``, with the exporter's deprecation notices silenced."""
    wrapper = _WithSoftmax(model.eval(), options.fp16).eval()
    dummy = torch.zeros(1, 3, image_size, image_size)
    dynamic_axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if options.dynamic_batch else None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (dummy,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes=dynamic_axes,
            opset_version=options.opset,
            do_constant_folding=True,
            training=torch.onnx.TrainingMode.EVAL,
            dynamo=False,
        )


def _set_metadata(model: onnx.ModelProto, values: Mapping[str, str]) -> None:
    """Replace ``metadata_props`` with ``values`` (keys sorted, so files diff cleanly)."""
    del model.metadata_props[:]
    for key in sorted(values):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, values[key]


def _dumps(value: Any) -> str:
    return json.dumps(to_jsonable(value), sort_keys=True, separators=(",", ":"))


def build_metadata(
    checkpoint: Path,
    meta: Mapping[str, Any],
    attention: str,
    contract: ModelContract,
    trained_size: int,
    options: ExportOptions,
) -> dict[str, str]:
    """``metadata_props``: the contract (:mod:`realtime.core.model_contract`) plus provenance."""
    import onnxruntime

    return {
        # the recognizer's contract
        **contract.to_metadata(),
        "training": _dumps(_training_description(meta, attention, trained_size)),
        "metrics": _dumps(dict(meta.get("metrics") or {})),
        "version": project_version(),
        # provenance
        "arch": ARCH_NAME,
        "attention": attention,
        "opset": str(options.opset),
        "fp16": "true" if options.fp16 else "false",
        "dynamic_batch": "true" if options.dynamic_batch else "false",
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "checkpoint": checkpoint.name,
        "torch_version": str(torch.__version__),
        "onnx_version": onnx.__version__,
        "onnxruntime_version": onnxruntime.__version__,
    }


# --- parity -----------------------------------------------------------------------------------------------------------


def _check_parity(path: Path, model: nn.Module, contract: ModelContract, options: ExportOptions) -> ParityResult:
    """Run the exported file through the recognizer's Classifier (one crop per call, as ``stream.py`` does,
    and with ``dynamic_batch`` also all crops in one batch) and compare with PyTorch in float32."""
    from realtime.stages.classify import Classifier, ClassifierOptions

    crops, names = parity_inputs(contract.alignment, contract.input_kind)
    expected = apply_temperature(
        torch_probabilities(model, crops, contract.channel_order, contract.mean, contract.std), contract.temperature
    )
    classifier = Classifier(ClassifierOptions(path, "cpu", input_kind=contract.input_kind, mirror=False))

    def as_array(answers) -> np.ndarray:
        return np.array([[a.probabilities[c] for c in contract.classes] for a in answers], dtype=np.float64)

    started = time.perf_counter()
    single = as_array([classifier.classify([crop])[0] for crop in crops])
    ms_per_image = 1000.0 * (time.perf_counter() - started) / len(crops)
    runs = [single]
    if options.dynamic_batch:
        runs.append(as_array(classifier.classify(list(crops))))
    max_diff = max(float(np.max(np.abs(run - expected))) for run in runs)
    agreement = min(float(np.mean(run.argmax(1) == expected.argmax(1))) for run in runs)
    return ParityResult(
        max_abs_diff=max_diff,
        bound=options.resolved_bound(),
        top1_agreement=agreement,
        n_crops=len(crops),
        crops=names,
        provider=classifier.provider,
        ort_ms_per_image=ms_per_image,
    )


# --- the export -------------------------------------------------------------------------------------------------------


def export_checkpoint(
    checkpoint: Path,
    output: Path,
    options: ExportOptions | None = None,
    log: Log | None = None,
    evaluations: Sequence[Path] = (),
) -> ExportReport:
    """Export ``checkpoint`` to ``output`` (see the module docstring for the steps) and return the report,
    also written as JSON to ``output`` + ``.json``. ``log`` receives one line per step (progress).

    Raises ``UserInputError`` for bad input (nothing written) and :class:`ParityError` when ONNX Runtime
    does not reproduce PyTorch within the bound (nothing left at ``output``). ``evaluations``: finished LOSO
    run folders of the checkpoint's configuration whose figures replace the checkpoint's ``metrics``.
    """
    options = options or ExportOptions()
    say = log or (lambda _line: None)
    started = time.perf_counter()
    checkpoint = Path(checkpoint).expanduser()
    output = prepare_output(output)
    model, meta = _load(checkpoint)
    if evaluations:
        from training.loso import combined_evaluation

        metrics = combined_evaluation(  # a run may still be going: its finished folds count, the rest is named
            evaluations,
            meta.get("config") or {},
            str(meta.get("dataset", "")),
            str(meta.get("protocol", "")),
            allow_partial=True,
        )
        meta = {**meta, "metrics": metrics}
    attention, trained = _checkpoint_contract(checkpoint, meta)
    size = options.image_size or trained.input_size
    contract = trained.resized(size)
    say(
        f"checkpoint {checkpoint}: {ARCH_NAME}, attention {attention}, {len(contract.classes)} classes "
        f"({', '.join(contract.classes)}), trained at {trained.input_size} px"
    )
    if size != trained.input_size:
        say(f"warning: exporting at {size} px; accuracy is only known at the trained {trained.input_size} px")

    with atomic_path(output) as tmp:  # output appears only once it has passed every check below
        precision = "fp16 (float32 input/output)" if options.fp16 else "fp32"
        batch = "dynamic batch" if options.dynamic_batch else "batch 1"
        say(f"exporting: opset {options.opset}, {precision}, {batch}, input 3×{size}×{size}")
        try:
            _trace(model, tmp, size, options)
        except OSError as exc:
            raise UserInputError(f"cannot write {tmp}: {exc.strerror or exc}") from None
        proto = onnx.load(str(tmp))
        metadata = build_metadata(checkpoint, meta, attention, contract, trained.input_size, options)
        _set_metadata(proto, metadata)
        proto.doc_string = (
            f"{ARCH_NAME} ({attention} attention) + softmax: micro-expression probabilities over "
            f"{', '.join(contract.classes)} for an aligned {size}×{size} face crop. Exported by `python -m export`."
        )
        onnx.save(proto, str(tmp))
        onnx.checker.check_model(str(tmp), full_check=True)
        say("onnx.checker: ok")

        parity = _check_parity(tmp, model, contract, options)
        say(
            f"parity on {parity.n_crops} aligned crops ({parity.provider}): max |ONNX Runtime − PyTorch| = "
            f"{parity.max_abs_diff:.3g} (bound {parity.bound:g}), top-1 agreement {parity.top1_agreement:.0%}, "
            f"{parity.ort_ms_per_image:.1f} ms/image"
        )
        if not parity.passed:
            raise ParityError(
                f"parity failed: max |ONNX Runtime − PyTorch| = {parity.max_abs_diff:.3g} exceeds the bound "
                f"{parity.bound:g}; {output} was not written",
                parity,
            )
        metadata["parity"] = _dumps(
            {
                "max_abs_diff": parity.max_abs_diff,
                "bound": parity.bound,
                "top1_agreement": parity.top1_agreement,
                "n_crops": parity.n_crops,
            }
        )
        _set_metadata(proto, metadata)
        onnx.save(proto, str(tmp))

    sidecar = output.with_name(output.name + ".json")
    report = ExportReport(
        checkpoint=checkpoint,
        output=output,
        sidecar=sidecar,
        attention=attention,
        classes=contract.classes,
        image_size=size,
        trained_image_size=trained.input_size,
        opset=options.opset,
        fp16=options.fp16,
        dynamic_batch=options.dynamic_batch,
        parity=parity,
        file_size_bytes=output.stat().st_size,
        export_seconds=time.perf_counter() - started,
        metadata=metadata,
    )
    write_json_atomic(sidecar, report.to_dict())
    return report
