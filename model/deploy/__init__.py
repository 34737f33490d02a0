"""Deployed RT-DETR models: the ONNX export (``onnx_export``) and the runner that evaluates or infers
with an exported ``.onnx`` file (ONNX Runtime) or a TensorRT ``.engine`` (``deployed_model``)."""
