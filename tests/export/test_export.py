"""``python -m export``: parity for every attention variant, the metadata contract round trip through the
recognizer, fp16, dynamic batch, bad input and parity failure.

Checkpoints are tiny (64 px input, random weights with batch-norm statistics gathered on noise, so the
activations have the scale of a trained network) and written by the training engine's own save_checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from export.__main__ import main
from export.onnx_export import export_checkpoint, face_photo_paths, project_version
from export.options import (
    FP16_PARITY_BOUND,
    FP32_PARITY_BOUND,
    MAX_OPSET,
    ExportOptions,
    ParityError,
)
from realtime.core.align import AlignmentSettings, align_largest_face
from realtime.core.landmarks import FaceLandmarker
from realtime.core.motion import INPUT_KINDS, needs_onset
from realtime.stages.classify import Classifier, ClassifierOptions
from training.checkpoints import load_checkpoint, save_checkpoint
from training.config import TrainConfig
from training.model import ATTENTION_VARIANTS, attention_resnet18

SIZE = 64
CLASSES = ["negative", "positive", "surprise", "repression", "others"]
ALIGNMENT = {"output_size": SIZE, "margin": 0.1, "forehead": 0.15, "interpolation": "linear"}
METRICS = {"accuracy": 0.4497, "macro_f1": 0.3784}


def make_checkpoint(path: Path, attention: str, input_kind: str = "apex") -> Path:
    """A checkpoint of ``attention_resnet18`` as ``python -m training`` writes it, with batch-norm running
    statistics gathered on a few batches of noise (a network at its raw init has none)."""
    torch.manual_seed(0)
    model = attention_resnet18(num_classes=len(CLASSES), attention=attention)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 3, SIZE, SIZE))
    return save_checkpoint(
        path,
        model.eval(),
        classes=CLASSES,
        config=TrainConfig(attention=attention, image_size=SIZE, epochs=3, input_kind=input_kind),
        dataset="casme2",
        protocol="5class",
        metrics=METRICS,
        alignment=ALIGNMENT,
        extra={"protocol_notes": {"split": "random", "test_fraction": 0.2, "n_train": 40}, "n_subjects": 5},
    )


class _Checkpoints(dict):
    """variant → checkpoint path, each written on first use (bad-input tests need only one)."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder

    def __missing__(self, variant: str) -> Path:
        self[variant] = make_checkpoint(self.folder / f"{variant}.pt", variant)
        return self[variant]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    return _Checkpoints(tmp_path_factory.mktemp("checkpoints"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory, checkpoints):
    """Factory: the fp32 export of one variant (each made once per module)."""
    folder = tmp_path_factory.mktemp("onnx")
    done = {}

    def get(variant: str):
        if variant not in done:
            done[variant] = export_checkpoint(checkpoints[variant], folder / f"{variant}.onnx", ExportOptions())
        return done[variant]

    return get


@pytest.fixture(scope="module")
def own_crops(face_photo) -> np.ndarray:
    """The test's own aligned crops (grace_hopper and its mirror image, BGR uint8), made independently of
    the exporter's crop code with the checkpoint's alignment settings."""
    located = align_largest_face(face_photo, FaceLandmarker(detect_width=4096), AlignmentSettings(**ALIGNMENT), False)
    assert located is not None
    crop = located.aligned.image
    return np.stack([crop, crop[:, ::-1]])


def preprocess(crops: np.ndarray, meta: dict) -> np.ndarray:
    """What realtime/stages/classify.py's Classifier._run does: channel order, /255, (x − mean)/std, NCHW float32."""
    norm = meta["normalization"]
    batch = crops[..., ::-1] if norm["channel_order"] == "RGB" else crops
    x = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
    mean = np.array(norm["mean"], np.float32).reshape(1, 3, 1, 1)
    std = np.array(norm["std"], np.float32).reshape(1, 3, 1, 1)
    return ((x - mean) / std).astype(np.float32)


def torch_reference(checkpoint: Path, x: np.ndarray) -> np.ndarray:
    model, _ = load_checkpoint(checkpoint)
    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(x)), dim=1).numpy()


def onnx_probabilities(path: Path, x: np.ndarray, one_at_a_time: bool = True) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    if one_at_a_time:
        return np.concatenate([session.run(["probabilities"], {"input": x[i : i + 1]})[0] for i in range(len(x))])
    return session.run(["probabilities"], {"input": x})[0]


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


# --- parity for every variant -------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ATTENTION_VARIANTS)
def test_export_parity_every_variant(variant, exported, checkpoints, own_crops):
    report = exported(variant)
    assert report.parity.passed and report.parity.bound == FP32_PARITY_BOUND
    assert report.parity.max_abs_diff <= 1e-4
    assert report.parity.top1_agreement == 1.0
    assert report.parity.n_crops >= 4 and "grace_hopper:flipped" in report.parity.crops
    assert report.output.is_file() and report.attention == variant

    model = onnx.load(str(report.output))
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["probabilities"]
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, SIZE, SIZE]  # batch fixed at 1 without --dynamic-batch
    assert {p.key: p.value for p in model.metadata_props}["attention"] == variant
    assert {op.version for op in model.opset_import if op.domain in ("", "ai.onnx")} == {17}

    # independently: our own crops and preprocessing, plain ONNX Runtime against plain PyTorch
    _, meta = load_checkpoint(checkpoints[variant])
    x = preprocess(own_crops, meta)
    got, want = onnx_probabilities(report.output, x), torch_reference(checkpoints[variant], x)
    assert np.allclose(got.sum(axis=1), 1.0, atol=1e-5)
    assert float(np.max(np.abs(got - want))) <= 1e-4

    sidecar = json.loads(report.sidecar.read_text())
    assert sidecar["parity"]["passed"] is True and sidecar["attention"] == variant
    assert sidecar["parity"]["max_abs_diff"] == pytest.approx(report.parity.max_abs_diff)


def test_metadata_round_trip_through_the_recognizer(exported, checkpoints, own_crops):
    report = exported("dual")
    _, meta = load_checkpoint(checkpoints["dual"])
    classifier = Classifier(ClassifierOptions(report.output, "cpu", mirror=False))  # the network alone
    info = classifier.info
    assert list(info.classes) == meta["classes"] == CLASSES
    assert info.input_size == meta["image_size"] == SIZE
    assert info.channel_order == meta["normalization"]["channel_order"]
    assert info.mean == pytest.approx(meta["normalization"]["mean"])
    assert info.std == pytest.approx(meta["normalization"]["std"])
    assert info.alignment == AlignmentSettings(**ALIGNMENT)
    assert info.metrics == METRICS
    assert info.version == project_version()
    assert info.training["dataset"] == "casme2" and info.training["protocol"] == "5class"
    assert info.training["n_samples"] == 40 and info.training["n_subjects"] == 5
    assert info.training["config"] == TrainConfig(attention="dual", image_size=SIZE, epochs=3).to_dict()
    assert "dual" in info.trained_on()

    answers = classifier.classify([own_crops[0]])
    got = np.array([[a.probabilities[c] for c in CLASSES] for a in answers])
    want = torch_reference(checkpoints["dual"], preprocess(own_crops[:1], meta))
    assert float(np.max(np.abs(got - want))) <= 1e-4
    assert answers[0].label == CLASSES[int(want.argmax())]
    # exported for batch 1 (the default), several crops are still answered, each as on its own
    several = classifier.classify(list(own_crops))
    alone = [classifier.classify([crop])[0] for crop in own_crops]
    assert len(several) == len(own_crops) >= 2
    for x, y in zip(several, alone, strict=True):
        assert x.probabilities == pytest.approx(y.probabilities, abs=1e-6)


@pytest.mark.parametrize("input_kind", INPUT_KINDS)
def test_parity_covers_every_input_kind_and_the_metadata_names_it(input_kind, tmp_path):
    checkpoint = make_checkpoint(tmp_path / f"{input_kind}.pt", "dual", input_kind)
    report = export_checkpoint(checkpoint, tmp_path / f"{input_kind}.onnx", ExportOptions())
    assert report.parity.n_crops >= 4
    assert report.parity.max_abs_diff <= report.parity.bound
    assert report.parity.top1_agreement == 1.0
    # the parity inputs are the kind's own: built from onset/apex pairs of real crops where it needs them
    assert all(("<-" in name) == needs_onset(input_kind) for name in report.parity.crops)
    classifier = Classifier(ClassifierOptions(report.output, "cpu"))
    assert classifier.input_kind == input_kind


# --- fp16, dynamic batch, options -------------------------------------------------------------------------------


def test_fp16_is_smaller_within_its_bound_and_keeps_float32_io(exported, checkpoints, own_crops, tmp_path):
    fp32 = exported("dual")
    report = export_checkpoint(checkpoints["dual"], tmp_path / "dual-fp16.onnx", ExportOptions(fp16=True))
    assert report.fp16 and report.parity.bound == FP16_PARITY_BOUND
    assert report.parity.passed and report.parity.max_abs_diff <= FP16_PARITY_BOUND
    assert report.file_size_bytes < 0.6 * fp32.file_size_bytes

    session = ort.InferenceSession(str(report.output), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(float)"
    assert session.get_outputs()[0].type == "tensor(float)"
    model = onnx.load(str(report.output))
    onnx.checker.check_model(model, full_check=True)
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    assert {p.key: p.value for p in model.metadata_props}["fp16"] == "true"

    _, meta = load_checkpoint(checkpoints["dual"])
    x = preprocess(own_crops, meta)
    got, want = onnx_probabilities(report.output, x), torch_reference(checkpoints["dual"], x)
    assert float(np.max(np.abs(got - want))) <= FP16_PARITY_BOUND
    Classifier(ClassifierOptions(report.output, "cpu"))  # the recognizer accepts it


def test_cli_dynamic_batch_other_size_and_opset(checkpoints, own_crops, tmp_path, capsys):
    output = tmp_path / "weights" / "spatial.onnx"
    code = main(
        [
            "--checkpoint",
            str(checkpoints["spatial"]),
            "--output",
            str(output),
            "--dynamic-batch",
            "--image-size",
            "96",
            "--opset",
            "13",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "max |ONNX Runtime − PyTorch|" in out and "MB" in out and "top-1 agreement" in out
    assert "accuracy is only known at the trained 64 px" in out

    model = onnx.load(str(output))
    assert {op.version for op in model.opset_import if op.domain in ("", "ai.onnx")} == {13}
    shape = model.graph.input[0].type.tensor_type.shape.dim
    assert shape[0].dim_param == "batch" and [d.dim_value for d in shape[1:]] == [3, 96, 96]
    assert model.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    meta_props = {p.key: p.value for p in model.metadata_props}
    assert meta_props["input_size"] == "96" and json.loads(meta_props["alignment"])["output_size"] == 96

    _, meta = load_checkpoint(checkpoints["spatial"])
    crops = np.stack([cv2.resize(c, (96, 96), interpolation=cv2.INTER_AREA) for c in own_crops])
    x = preprocess(np.concatenate([crops, crops[:1]]), meta)  # a batch of 3
    got = onnx_probabilities(output, x, one_at_a_time=False)
    assert got.shape == (3, len(CLASSES))
    assert float(np.max(np.abs(got - torch_reference(checkpoints["spatial"], x)))) <= 1e-4
    report = json.loads(output.with_name("spatial.onnx.json").read_text())
    assert report["dynamic_batch"] is True and report["image_size"] == 96 and report["trained_image_size"] == SIZE


# --- bad input ----------------------------------------------------------------------------------------------------


def _bad_inputs(tmp_path: Path, checkpoints: dict[str, Path]) -> dict[str, tuple[list[str], str]]:
    not_a_checkpoint = tmp_path / "notes.pt"
    not_a_checkpoint.write_text("these are not weights")
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "arch": {"name": "vit_b_16", "num_classes": 5}}, foreign)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    noise = tmp_path / "noise.pt"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    plain_file = tmp_path / "plain-file"
    plain_file.write_text("x")
    folder = tmp_path / "existing-folder.onnx"
    folder.mkdir()
    good = str(checkpoints["none"])
    out = str(tmp_path / "out" / "model.onnx")
    return {
        "missing checkpoint": (["--checkpoint", str(tmp_path / "nope.pt"), "--output", out], "does not exist"),
        "not a checkpoint": (["--checkpoint", str(not_a_checkpoint), "--output", out], "cannot read"),
        "empty file": (["--checkpoint", str(empty), "--output", out], "cannot read"),
        "random bytes": (["--checkpoint", str(noise), "--output", out], "cannot read"),
        "another architecture": (["--checkpoint", str(foreign), "--output", out], "vit_b_16"),
        "output is a folder": (["--checkpoint", good, "--output", str(folder)], "existing folder"),
        "folder cannot be created": (
            ["--checkpoint", good, "--output", str(plain_file / "sub" / "model.onnx")],
            "cannot create the output folder",
        ),
        "not .onnx": (["--checkpoint", good, "--output", str(tmp_path / "model.pt")], ".onnx"),
        "opset too new": (["--checkpoint", good, "--output", out, "--opset", "99"], "--opset 99"),
        "opset not a number": (["--checkpoint", good, "--output", out, "--opset", "new"], "--opset"),
        "image size too small": (["--checkpoint", good, "--output", out, "--image-size", "16"], "--image-size 16"),
        "no checkpoint given": (["--output", out], "--checkpoint"),
    }


CASES = [
    "missing checkpoint",
    "not a checkpoint",
    "empty file",
    "random bytes",
    "another architecture",
    "output is a folder",
    "folder cannot be created",
    "not .onnx",
    "opset too new",
    "opset not a number",
    "image size too small",
    "no checkpoint given",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_exit_code_2(case, checkpoints, tmp_path, capsys):
    argv, expected = _bad_inputs(tmp_path, checkpoints)[case]
    assert main(argv) == 2
    captured = capsys.readouterr()
    line = one_error_line(captured.err)
    assert expected in line, line
    assert not (tmp_path / "out" / "model.onnx").exists()


@pytest.fixture
def perturbed_reference(monkeypatch):
    """A PyTorch side that disagrees with the exported graph by 0.05 on the first class."""
    import export.onnx_export as module

    real = module.torch_probabilities

    def perturbed(*args, **kwargs):
        probabilities = real(*args, **kwargs)
        probabilities[:, 0] += 0.05
        return probabilities

    monkeypatch.setattr(module, "torch_probabilities", perturbed)


def test_parity_failure_exits_1_and_leaves_no_file(perturbed_reference, checkpoints, tmp_path, capsys):
    output = tmp_path / "weights" / "none.onnx"
    assert main(["--checkpoint", str(checkpoints["none"]), "--output", str(output)]) == 1
    captured = capsys.readouterr()
    line = one_error_line(captured.err)
    assert "parity failed" in line and "was not written" in line
    assert not output.exists() and not output.with_name("none.onnx.json").exists()
    assert list(output.parent.iterdir()) == []  # no temporary file left either


def test_parity_failure_keeps_an_existing_model_untouched(perturbed_reference, checkpoints, tmp_path):
    output = tmp_path / "model.onnx"
    output.write_bytes(b"the previous model")
    with pytest.raises(ParityError, match="parity failed") as failure:
        export_checkpoint(checkpoints["none"], output, ExportOptions(image_size=32))
    assert failure.value.parity.max_abs_diff > failure.value.parity.bound
    assert output.read_bytes() == b"the previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


# --- help, constants, photos ------------------------------------------------------------------------------------


def test_help_teaches(capsys):
    assert main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps option help to the terminal width
    for words in ("--checkpoint", "--fp16", "--dynamic-batch", "--image-size", "metadata_props", "examples:"):
        assert words in text
    assert f"{FP32_PARITY_BOUND:g}" in text and f"{FP16_PARITY_BOUND:g}" in text
    assert "exit codes" in text and "NAME.onnx.json" in text and "accuracy is only known" in text


def test_opset_range_matches_the_exporter():
    from torch.onnx import _constants

    assert MAX_OPSET <= _constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET


def test_photos_fall_back_to_grace_hopper_without_scikit_image(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "skimage" else real(name, *a))
    photos = face_photo_paths()
    assert [name for name, _ in photos] == ["grace_hopper"] and photos[0][1].is_file()
