"""What runs on the device: preprocessing, ONNX Runtime inference, decoding + NMS, the camera loop.

Importable without torch (numpy, OpenCV and ONNX Runtime only): a device may not have torch, and importing it
costs seconds.
"""
