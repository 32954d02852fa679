"""Deployment: exporting networks to ONNX and running them outside PyTorch."""
