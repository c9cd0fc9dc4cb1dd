"""Streaming side of the project: face detection, 68-landmark fitting, the paper's alignment, apex spotting.

Everything here runs on OpenCV, dlib, NumPy and ONNX Runtime alone; it never imports torch, so the live
recognizer starts fast and stays small. Training imports the alignment from here, so a face is cropped
the same way in both worlds.
"""
