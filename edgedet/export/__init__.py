"""From torch to what runs on the device: ONNX export and ONNX Runtime INT8 quantization."""
