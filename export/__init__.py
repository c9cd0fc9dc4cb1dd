"""ONNX export of the attention ResNet18 (``python -m export``)."""
