"""The shipped model, as package data (found with importlib.resources).

The trained ONNX model lands here with the model issue; until then this package holds no model.
"""
