"""MAED-CNN's custom ops on the Python side, one module each, as each has one folder in
``cuda_kernels/ops/`` (kernel, host reference, TensorRT plugin, C++ tests, README):

- ``ds_block``: the fused depthwise-separable residual block (``MaedDSResidualBlock``);
- ``se_fusion``: the SE fusion (``MaedSEFusion``).

Each gives its folded weights (the kernels' layout), its ONNX node's attributes (the plugin's
fields) and the ONNX pattern the node replaces. Beside them: ``common`` (what they share),
``rewrite`` (``maed export onnx --plugins``: the graph surgery, with onnx) and ``library`` (the
kernels' shared libraries through ctypes). Everything but ``rewrite`` is numpy only.
"""

from . import ds_block, se_fusion

OPS = (ds_block, se_fusion)
"""Every custom op's module; a new op is added here (and in ``cuda_kernels/CMakeLists.txt``)."""
PLUGIN_OPS = tuple(op.OP_TYPE for op in OPS)
"""The op types of the plugin nodes (and of the TensorRT plugins' creators)."""
