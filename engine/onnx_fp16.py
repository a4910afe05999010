"""FP16 copy of an FP32 ONNX graph: weights and activations in float16, input and output float32.

TensorRT 11 has no FP16 builder flag: it builds a strongly typed network whose tensor types are
exactly those of the ONNX graph, so FP16 inference starts from an FP16 ONNX file. Input and
output stay float32, with one Cast after the input and one before the output, because
- every back end and the bridge then exchange the same float32 arrays: no dtype switch on the
  host, the same buffers for an FP32 and an FP16 engine; TensorRT fuses the casts into the first
  and last layers' reformatting, so they cost nothing measurable;
- MAED-CNN adds its input back at the end (global residual): that Add is kept in float32, so the
  scan passes through at full precision and only the network's correction, a small signal, is
  rounded to float16. Its error is then relative to the correction, not to the scan.

Only operators whose float inputs share one type are converted, plus those listed with inputs the
ONNX spec fixes to float32 (Resize's roi and scales); anything else is refused by name rather than
converted wrongly. It needs onnx and numpy, not torch, so an FP16 file can also be made from a
shipped FP32 one on the machine that builds the TensorRT engine.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# Inputs typed float32 by the ONNX spec whatever the op's data type T, by input index.
_FLOAT32_INPUTS: dict[str, tuple[int, ...]] = {"Resize": (1, 2)}
# Operators whose float inputs and outputs all have one type T: converting them is a type change.
_SAME_TYPE = frozenset(
    {
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Conv",
        "ConvTranspose",
        "Clip",
        "Relu",
        "LeakyRelu",
        "Sigmoid",
        "HardSigmoid",
        "HardSwish",
        "Tanh",
        "Concat",
        "Pad",
        "ReduceMean",
        "GlobalAveragePool",
        "MaxPool",
        "AveragePool",
        "BatchNormalization",
        "Identity",
        "Reshape",
        "Transpose",
        "Slice",
    }
)


def _to_fp16(tensor: TensorProto) -> TensorProto:
    array = numpy_helper.to_array(tensor)
    if np.abs(array).max(initial=0.0) > np.finfo(np.float16).max:
        raise ValueError(f"weight {tensor.name!r} overflows float16")
    return numpy_helper.from_array(array.astype(np.float16), tensor.name)


def _residual_add(nodes: list[onnx.NodeProto], x: str, y: str) -> int | None:
    """Index of the node computing ``y = x + correction``, if the graph ends with one."""
    for i, node in enumerate(nodes):
        if y in node.output and node.op_type == "Add" and x in node.input:
            return i
    return None


def convert_to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """An FP16 copy of the single-input, single-output FP32 ``model`` (see the module docstring)."""
    graph = model.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise ValueError("FP16 conversion expects one input and one output")
    unknown = {n.op_type for n in graph.node} - _SAME_TYPE - set(_FLOAT32_INPUTS) - {"Constant"}
    if unknown:
        raise ValueError(f"FP16 conversion does not know the operators {sorted(unknown)}")
    fp16 = onnx.ModelProto()
    fp16.CopyFrom(model)
    graph = fp16.graph
    keep32 = {node.input[i] for node in graph.node for i in _FLOAT32_INPUTS.get(node.op_type, ()) if i < len(node.input)}
    for tensor in graph.initializer:
        if tensor.data_type == TensorProto.FLOAT and tensor.name not in keep32:
            tensor.CopyFrom(_to_fp16(tensor))
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] not in keep32:
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type == TensorProto.FLOAT:
                    attr.t.CopyFrom(_to_fp16(attr.t))

    x, y = graph.input[0].name, graph.output[0].name
    x16 = f"{x}_fp16"
    old_nodes = [onnx.NodeProto() for _ in graph.node]
    for copy, node in zip(old_nodes, graph.node):
        copy.CopyFrom(node)
    residual = _residual_add(old_nodes, x, y)
    nodes = [helper.make_node("Cast", [x], [x16], to=TensorProto.FLOAT16, name="input_to_fp16")]
    for i, node in enumerate(old_nodes):
        if i == residual:
            correction = next(name for name in node.input if name != x)
            nodes.append(helper.make_node("Cast", [correction], [f"{correction}_fp32"], to=TensorProto.FLOAT, name="correction_to_fp32"))
            node.input[list(node.input).index(correction)] = f"{correction}_fp32"
        else:
            node.input[:] = [x16 if name == x else name for name in node.input]
        nodes.append(node)
    if residual is None:
        producer = next(node for node in nodes if y in node.output)
        producer.output[list(producer.output).index(y)] = f"{y}_fp16"
        nodes.append(helper.make_node("Cast", [f"{y}_fp16"], [y], to=TensorProto.FLOAT, name="output_to_fp32"))
    graph.ClearField("node")
    graph.node.extend(nodes)
    graph.ClearField("value_info")  # stale float32 annotations; inferred again below
    fp16 = onnx.shape_inference.infer_shapes(fp16, strict_mode=True)
    onnx.checker.check_model(fp16, full_check=True)
    return fp16
