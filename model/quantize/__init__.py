"""Post-training quantization of a trained RT-DETR (``rtdetr quantize``).

- ``combinations``: which backend / mode / algorithm / dtype combinations exist (no torch import).
- ``plan``: which modules get which weight dtype, from ``quantize.layers`` and ``skip_names`` (torchao).
- ``torchao_backend``: weight-only int8 / fp8 with torchao's quantized tensors.
- ``modelopt_backend``: static PTQ (fake-quantized; max, awq_lite or awq_full calibration) with NVIDIA ModelOpt.
- ``modelopt_onnx_backend``: QDQ ONNX files (int8 / fp8 / int4 weight-only) with ModelOpt's ONNX quantization.
- ``quantized_file``: the quantized checkpoint: save, recognise, load (rebuild, then load the tensors).
"""
