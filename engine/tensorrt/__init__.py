"""The TensorRT back end and what builds its engines (``maed.engine.tensorrt``).

Nothing here imports TensorRT until an engine is built or run, so the modules import on any machine:

- ``available``: whether TensorRT, cuda-python and a GPU are here (without importing TensorRT);
- ``cuda``: pinned and device buffers and a stream through cuda-python;
- ``profiles``: optimisation profiles (the shapes an engine accepts);
- ``cache``: where engines and timing caches live, and when a built engine may be loaded;
- ``build``: an engine from a model's ONNX file; ``commands``: ``maed engine build``;
- ``backend``: ``TensorRTBackend`` and ``load_tensorrt``, which ``maed.engine.load_backend`` calls;
- ``plugins``: where the plugin library of our kernels is and how TensorRT loads it;
- ``onnx_ops``: whether TensorRT's ONNX parser would take a graph (a check of ``maed export onnx``,
  with onnx; not used by the back end).

Modules of this package import NVIDIA's ``tensorrt`` with absolute imports, which this package's
name does not shadow (``maed.engine.tensorrt`` is never a top-level module).
"""
