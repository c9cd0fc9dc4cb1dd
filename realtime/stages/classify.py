"""The classification stage: the apex frame's aligned face → emotion probabilities, with ONNX Runtime.

The model file carries everything needed to use it (:mod:`realtime.core.model_contract`: classes, input size,
normalisation, alignment, input kind, calibration), so nothing about the model is a constant here and a model
trained differently just works; a file without that contract, or one that is not an image classifier, or
one whose input this version cannot build, is refused with one clear line.

Providers: ``device="auto"`` asks for CUDA, then CPU. When CUDA cannot come up (no GPU, or CUDA/cuDNN
libraries missing) ONNX Runtime would print a stack of red library errors; they are silenced and replaced by
one line saying why, and the CPU provider runs. ``device="cuda"`` never falls back silently: if CUDA is not
the provider actually running, it is an error that says why. The model is loaded once.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from realtime.core.align import AlignmentSettings, align_face
from realtime.core.errors import OptionError, UserInputError
from realtime.core.model_contract import (
    EXPORT_HINT,
    INPUT_NAME,
    OUTPUT_NAME,
    apply_temperature,
    read_model_info,
)
from realtime.core.motion import INPUT_KINDS, build_classifier_input, flip_input, needs_onset

log = logging.getLogger("microexpr")

DEVICES = ("auto", "cuda", "cpu")


@dataclass(frozen=True)
class ClassifierOptions:
    """``model`` the .onnx file; ``device`` auto (CUDA, else CPU), cuda (no fallback) or cpu; ``threads``
    the CPU provider's intra-op threads (None: ONNX Runtime's choice); ``input_kind`` the input the stream
    is set up to build (``auto``: whatever the model says; otherwise a model needing another is refused);
    ``mirror`` averages each answer with the answer for the mirrored face (left and right halves of a face
    make the same emotion; the network is not quite symmetric, and the average is steadier): on video clips
    of the training photos it named 71 % of 80 micro-expressions right against 64 % without, for twice the
    network's time (about 7 ms an event on one CPU thread)."""

    model: Path
    device: str = "auto"
    threads: int | None = None
    input_kind: str = "auto"
    mirror: bool = True

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise OptionError("device", f"must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.input_kind != "auto" and self.input_kind not in INPUT_KINDS:
            raise OptionError("input_kind", f"must be auto or one of {', '.join(INPUT_KINDS)}, got {self.input_kind!r}")


@dataclass(frozen=True)
class Classification:
    """The classifier's answer for one face: the top ``label``, its ``confidence`` and every class's
    probability (in the model's class order)."""

    label: str
    confidence: float
    probabilities: dict[str, float]


def gpu_present() -> bool:
    """Whether an NVIDIA GPU's device nodes exist (Linux, or WSL's /dev/dxg); elsewhere assume one may."""
    if not os.path.isdir("/dev"):
        return True
    return any(Path(p).exists() for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg"))


def _cuda_failure_reason() -> str:
    """Why the CUDA provider did not come up, in words (the loader's own message where there is one)."""
    if not gpu_present():
        return "no NVIDIA GPU on this machine"
    import onnxruntime as ort

    capi = Path(ort.__file__).parent / "capi"
    try:
        ctypes.CDLL(str(capi / "libonnxruntime_providers_shared.so"), mode=ctypes.RTLD_GLOBAL)
        ctypes.CDLL(str(capi / "libonnxruntime_providers_cuda.so"))
    except OSError as error:
        return f"CUDA libraries missing ({str(error).split(':')[0]}; onnxruntime-gpu needs CUDA 13 and cuDNN 9)"
    return "the CUDA provider failed to start (driver too old for CUDA 13?)"


class Classifier:
    """ONNX Runtime session + the model's own preprocessing: ``classify(crops) → [Classification]``."""

    def __init__(self, options: ClassifierOptions) -> None:
        path = Path(options.model).expanduser()
        if not path.exists():
            raise UserInputError(f"model file not found: {path}")
        if not path.is_file():
            raise UserInputError(f"model path is not a file: {path}")
        import onnxruntime as ort  # imported here: the module stays cheap to import for tests

        self.options = options
        available = ort.get_available_providers()
        want_cuda = options.device in ("auto", "cuda")
        providers = ["CPUExecutionProvider"]
        # without a GPU, CUDA is not even tried: loading its libraries costs a second and 200 MB for nothing
        if want_cuda and "CUDAExecutionProvider" in available and gpu_present():
            providers.insert(0, "CUDAExecutionProvider")
            preload = getattr(ort, "preload_dlls", None)
            if preload is not None:  # CUDA/cuDNN from the nvidia-* wheels, when present
                with contextlib.suppress(Exception):  # missing wheels are normal: the provider check decides
                    preload()
        session_options = ort.SessionOptions()
        session_options.log_severity_level = 3
        if options.threads:
            session_options.intra_op_num_threads = int(options.threads)
        # ONNX Runtime's idle threads spin for a while after each run by default; here a run comes a few times
        # a minute, and spinning threads take the cores the face stage and the spotter need. Measured on 2
        # cores: the whole stream.py process 13 % faster without it; a run itself the same 20 ms for a 224 px
        # ResNet18, 3.4 → 4.1 ms for the 64 px default (its threads wake up first)
        session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        ort.set_default_logger_severity(4)  # the provider bridge's red errors: we say it in one line instead
        try:
            self.session = ort.InferenceSession(str(path), session_options, providers=providers)
        except Exception as error:  # any load failure is the file's fault, from the user's view
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise UserInputError(f"model {path} is not a valid ONNX model: {reason[:200]}") from None
        finally:
            ort.set_default_logger_severity(3)
        self.provider = self.session.get_providers()[0]
        self.fallback_reason = ""
        if want_cuda and self.provider != "CUDAExecutionProvider":
            reason = (
                "this onnxruntime build has no CUDA provider"
                if "CUDAExecutionProvider" not in available
                else _cuda_failure_reason()
            )
            if options.device == "cuda":
                raise UserInputError(f"--device cuda: CUDA is not available ({reason}); use --device auto or cpu")
            self.fallback_reason = reason
            log.info("CUDA unavailable (%s): running on the CPU", reason)

        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        self.info = read_model_info(path, meta)
        if options.input_kind not in ("auto", self.info.input_kind):
            raise UserInputError(
                f"model {path} takes the {self.info.input_kind!r} input but this stream is set up for "
                f"{options.input_kind!r} (--input); use --input {self.info.input_kind} or auto, or a model trained "
                f"with --input {options.input_kind}"
            )
        self._check_signature(path)
        size = self.info.input_size
        self._batch_of_one = self.session.get_inputs()[0].shape[0] == 1
        self._mean = np.array(self.info.mean, np.float32).reshape(1, 3, 1, 1)
        self._std = np.array(self.info.std, np.float32).reshape(1, 3, 1, 1)
        probe = self._run(np.zeros((1, size, size, 3), np.uint8))  # warms the session up, checks the output
        if probe.shape != (1, len(self.info.classes)):
            raise UserInputError(
                f"model {path} outputs shape {tuple(probe.shape)} for one image; "
                f"expected (1, {len(self.info.classes)}) for its classes"
            )
        if not (np.all(probe >= -1e-4) and abs(float(probe.sum()) - 1.0) < 1e-3):
            raise UserInputError(f"model {path}: output 'probabilities' is not a softmax (values do not sum to 1)")

    def _check_signature(self, path: Path) -> None:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        names_in, names_out = [i.name for i in inputs], [o.name for o in outputs]
        if names_in != [INPUT_NAME] or OUTPUT_NAME not in names_out:
            raise UserInputError(
                f"model {path} has inputs {names_in} and outputs {names_out}; a classifier exported by this "
                f"project has input {INPUT_NAME!r} and output {OUTPUT_NAME!r}"
            )
        shape = inputs[0].shape
        size = self.info.input_size
        if len(shape) != 4 or shape[1] != 3 or any(isinstance(d, int) and d != size for d in shape[2:]):
            raise UserInputError(f"model {path}: input shape {shape} does not match N×3×{size}×{size}")
        if inputs[0].type != "tensor(float)":
            raise UserInputError(f"model {path}: input type {inputs[0].type}; expected float32")

    @property
    def alignment(self) -> AlignmentSettings:
        """The alignment the model was trained with (its crop size is the model's input size)."""
        return self.info.alignment

    @property
    def input_kind(self) -> str:
        """What the model sees (:data:`realtime.core.motion.INPUT_KINDS`)."""
        return self.info.input_kind

    @property
    def needs_onset(self) -> bool:
        """Whether the model's input is built from the event's onset crop as well as its apex crop."""
        return needs_onset(self.info.input_kind)

    def crop(self, frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The aligned face the model expects (BGR uint8), made by the shared alignment."""
        return align_face(frame, landmarks, self.info.alignment).image

    def build_input(self, apex_crop: np.ndarray, onset_crop: np.ndarray | None = None) -> np.ndarray:
        """The model's input from aligned crops (:meth:`crop`), by :func:`realtime.core.motion.build_classifier_input`,
        the function training uses."""
        return build_classifier_input(self.info.input_kind, apex_crop, onset_crop)

    def _run(self, crops: np.ndarray) -> np.ndarray:
        batch = crops[..., ::-1] if self.info.channel_order == "RGB" else crops
        tensor = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
        tensor = ((tensor - self._mean) / self._std).astype(np.float32)
        if self._batch_of_one and len(tensor) > 1:  # exported for batch 1: one image a run
            return np.concatenate([self.session.run([OUTPUT_NAME], {INPUT_NAME: t[None]})[0] for t in tensor])
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: tensor})[0]

    def classify(self, crops: list[np.ndarray]) -> list[Classification]:
        """Classify model inputs (:meth:`build_input`; for ``apex`` the aligned crops themselves, BGR uint8, any
        size: resized to the model's input) in one batch, with the model's calibration applied and, with
        ``mirror``, averaged with the mirrored inputs' answers."""
        if not crops:
            return []
        size = self.info.input_size
        batch = np.stack(
            [
                c if c.shape[:2] == (size, size) else cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA)
                for c in (cv2.cvtColor(c, cv2.COLOR_GRAY2BGR) if c.ndim == 2 else c for c in crops)
            ]
        )
        if self.options.mirror:  # the faces and their mirror images in one run, then each pair averaged
            mirrored = np.stack([flip_input(self.info.input_kind, image) for image in batch])
            both = apply_temperature(self._run(np.concatenate([batch, mirrored])), self.info.temperature)
            probabilities = 0.5 * (both[: len(batch)] + both[len(batch) :])
        else:
            probabilities = apply_temperature(self._run(batch), self.info.temperature)
        results = []
        for row in probabilities:
            values = {name: float(p) for name, p in zip(self.info.classes, row, strict=True)}
            best = int(np.argmax(row))
            results.append(Classification(self.info.classes[best], float(row[best]), values))
        return results


def default_model(folder: Path) -> Path:
    """The model ``stream.py`` uses without ``--model``: the newest ``*.onnx`` in ``weights/``."""
    models = (
        sorted(Path(folder).glob("*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True)
        if Path(folder).is_dir()
        else []
    )
    if not models:
        raise UserInputError(
            f"no --model given and no .onnx model in {folder}/: {EXPORT_HINT}, or pass --model FILE.onnx"
        )
    return models[0]
