"""trainer: render realistic ECG paper from real signals, train the trace model, export ONNX.

Importing this package must stay cheap: no torch here (rendering needs only numpy/OpenCV).
"""
__version__ = "0.1.0"
