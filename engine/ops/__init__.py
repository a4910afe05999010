"""MAED-CNN's custom ops on the Python side (their kernels, host reference, TensorRT plugins and C++
tests are in ``cuda_kernels/ops/``): ``library``, the kernels' shared libraries through ctypes and
the layers' folded weights (numpy only); ``rewrite``, ``maed export onnx --plugins``'s graph surgery
(with onnx).
"""
