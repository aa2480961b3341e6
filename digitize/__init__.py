"""digitize: turn images of paper ECGs into WFDB records (ONNX Runtime, no PyTorch)."""
__version__ = "0.1.0"
