"""An untrained classifier that honours the ONNX export contract: the model the tests and benchmarks run the
realtime stages with when the measured quantity is not accuracy (speed, outputs, failures, resume).

:func:`make_tiny_model` exports ``attention_resnet18`` with random (seeded) weights and a softmax, with the
contract's input/output names and the metadata :func:`model_metadata` writes (what ``python -m export``
writes for a trained model). It imports torch: tests and benchmarks only, never ``realtime/``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

UNTRAINED_CLASSES = ("happiness", "disgust", "surprise", "repression", "others")


def model_metadata(input_size: int = 64, classes: tuple[str, ...] = UNTRAINED_CLASSES) -> dict[str, str]:
    """The ``metadata_props`` of the export contract, for an untrained test model."""
    import json

    from realtime.core.align import AlignmentSettings

    alignment = {k: v for k, v in AlignmentSettings().to_dict().items() if k != "output_size"}
    return {
        "classes": json.dumps(list(classes)),
        "input_size": str(input_size),
        "channel_order": "RGB",
        "mean": json.dumps([0.485, 0.456, 0.406]),
        "std": json.dumps([0.229, 0.224, 0.225]),
        "alignment": json.dumps(alignment),
        "training": json.dumps(
            {"dataset": "none", "protocol": "untrained", "description": "random weights, a test fixture"}
        ),
        "metrics": json.dumps({}),
        "version": "test-0",
    }


def make_tiny_model(path: Path | str, input_size: int = 64, metadata: dict[str, str] | None = None) -> Path:
    """Export ``attention_resnet18(5 classes, dual attention)`` with a softmax appended, at ``input_size``,
    to ONNX with the contract's input/output names and ``metadata`` (default :func:`model_metadata`).
    Imports torch."""
    import onnx
    import torch

    from training.model import attention_resnet18

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        attention_resnet18(num_classes=len(UNTRAINED_CLASSES), attention="dual"), torch.nn.Softmax(1)
    )
    net.eval()
    path = Path(path)
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notices
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            torch.zeros(1, 3, input_size, input_size),
            str(path),
            input_names=["input"],
            output_names=["probabilities"],
            dynamic_axes={"input": {0: "batch"}, "probabilities": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in (model_metadata(input_size) if metadata is None else metadata).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path
