"""fp32 ONNX -> fp16 ONNX, with fp32 inputs/outputs and fp32 islands where fp16 breaks.

Why a converter of our own: onnxconverter-common is not a dependency, and exporting from a
``.half()`` torch model would also halve what must stay fp32 (RoPE angles: position x
frequency for positions in the hundreds is off by tenths of a radian in fp16).

Rules, applied per node of the (topologically sorted) graph:

- *Static* nodes (whose float inputs derive only from initializers, constants and tensor
  shapes, never from input values) stay fp32: RoPE cos/sin, masks, constant fills.
- Nodes in ``FP32_OPS`` stay fp32 (the RMSNorm statistics: x**2 and its mean overflow
  fp16 once activations reach a few hundred), and so do elementwise nodes in
  ``FOLLOW_OPS`` whose value inputs all come from fp32 nodes (the rest of that
  statistics chain: + eps, sqrt, reciprocal).
- The output heads stay fp32 (``output_heads``: from each graph output back to the
  nearest MatMul/Gemm/Conv): the path and waypoints are cumulative sums of offsets.
- Every other node computes in fp16: its float initializers are stored as fp16, its
  ``Cast(to=FLOAT)`` becomes ``Cast(to=FLOAT16)``.
- A Cast is inserted wherever a float tensor crosses between the two precisions (one per
  tensor and direction). Graph inputs and outputs keep float32 (like onnxconverter's
  ``keep_io_types``), so every backend binds the same buffers for both variants.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterable, Optional, Set

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FLOAT, FLOAT16 = TensorProto.FLOAT, TensorProto.FLOAT16
FP32_OPS = frozenset({"Pow", "ReduceMean"})
FOLLOW_OPS = frozenset({"Add", "Sub", "Mul", "Div", "Sqrt", "Reciprocal"})
# Ops whose outputs depend on input shapes only (not on values).
SHAPE_OPS = frozenset({"Shape", "Size"})
# Where the reverse walk from each graph output stops (the output heads' projections).
HEAD_OPS = frozenset({"MatMul", "Gemm", "Conv"})
# Ops that accept a float input of any precision without a cast.
ANY_TYPE_OPS = frozenset({"Shape", "Size"})


def _float_types(model: onnx.ModelProto) -> Dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    graph = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type
             for v in list(graph.input) + list(graph.output) + list(graph.value_info)}
    types.update({t.name: t.data_type for t in graph.initializer})
    return types


def output_heads(graph: onnx.GraphProto) -> Set[str]:
    """Names of the nodes from each graph output back to (and including) the nearest
    MatMul/Gemm/Conv on every path: the output heads (projection, bias, cumsum, split)."""
    producer = {out: node for node in graph.node for out in node.output}
    heads: Set[str] = set()
    stack = [o.name for o in graph.output]
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in heads:
            continue
        heads.add(node.name)
        if node.op_type not in HEAD_OPS:
            stack.extend(i for i in node.input if i)
    return heads


def convert_to_fp16(model: onnx.ModelProto, fp32_ops: Iterable[str] = FP32_OPS,
                    fp32_heads: bool = True,
                    keep_fp32: Optional[Callable[[onnx.NodeProto], bool]] = None) -> onnx.ModelProto:
    """A new fp16 model from an fp32 ``model`` (no subgraphs, no local functions).

    ``fp32_heads``: keep the output heads (``output_heads``) in fp32. ``keep_fp32``: a
    predicate for further nodes to keep in fp32.
    """
    fp32_ops = frozenset(fp32_ops)
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    if model.functions or any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                              for n in graph.node for a in n.attribute):
        raise ValueError("convert_to_fp16 handles flat graphs only (no functions or subgraphs)")
    types = _float_types(model)
    if any(not n.name for n in graph.node):
        raise ValueError("convert_to_fp16 needs named nodes")
    heads = output_heads(graph) if fp32_heads else set()
    del graph.value_info[:]

    # Which tensors carry input values (vs. constants and shapes).
    dynamic: Set[str] = {i.name for i in graph.input}
    precision: Dict[str, int] = {i.name: FLOAT for i in graph.input}  # producer precision
    fp32_node_outputs: Set[str] = set()  # value tensors computed by fp32 (blocked) nodes
    initializers = {t.name: t for t in graph.initializer}
    for name, init in initializers.items():
        if init.data_type == FLOAT:
            precision[name] = FLOAT

    new_nodes = []
    casts: Dict[tuple, str] = {}
    fp16_inits: Dict[str, str] = {}

    def as_precision(name: str, want: int) -> str:
        have = precision.get(name)
        if have is None or have == want or not name:
            return name
        if name in initializers and want == FLOAT16:
            if name not in fp16_inits:
                array = numpy_helper.to_array(initializers[name]).astype(np.float16)
                fp16_inits[name] = f"{name}__fp16"
                graph.initializer.append(numpy_helper.from_array(array, fp16_inits[name]))
            return fp16_inits[name]
        key = (name, want)
        if key not in casts:
            casts[key] = f"{name}__to_{'fp16' if want == FLOAT16 else 'fp32'}"
            new_nodes.append(helper.make_node("Cast", [name], [casts[key]], to=want,
                                              name=f"{casts[key]}__cast"))
        return casts[key]

    for node in graph.node:
        is_dynamic = node.op_type not in SHAPE_OPS and any(i in dynamic for i in node.input)
        float_inputs = [i for i in node.input if i and types.get(i) == FLOAT]
        value_inputs = [i for i in float_inputs if i in dynamic]
        if not is_dynamic:
            want = FLOAT
        elif node.op_type in fp32_ops or node.name in heads or (keep_fp32 is not None and keep_fp32(node)):
            want = FLOAT
        elif node.op_type in FOLLOW_OPS and value_inputs and all(i in fp32_node_outputs for i in value_inputs):
            want = FLOAT
        else:
            want = FLOAT16
        if node.op_type not in ANY_TYPE_OPS:
            for k, name in enumerate(node.input):
                if name in float_inputs:
                    node.input[k] = as_precision(name, want)
        if want == FLOAT16:
            for attr in node.attribute:
                if attr.name == "to" and node.op_type == "Cast" and attr.i == FLOAT:
                    attr.i = FLOAT16
                elif attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == FLOAT:
                    attr.t.CopyFrom(numpy_helper.from_array(
                        numpy_helper.to_array(attr.t).astype(np.float16), attr.t.name))
        new_nodes.append(node)
        for out in node.output:
            if is_dynamic:
                dynamic.add(out)
            if types.get(out) == FLOAT:
                precision[out] = want
                if want == FLOAT and is_dynamic:
                    fp32_node_outputs.add(out)

    # Graph outputs stay float32: rename fp16 producers' outputs and cast back.
    renames = {}
    for out in graph.output:
        if precision.get(out.name) == FLOAT16:
            renames[out.name] = f"{out.name}__fp16"
    for node in new_nodes:
        for k, name in enumerate(node.output):
            if name in renames:
                node.output[k] = renames[name]
        for k, name in enumerate(node.input):
            if name in renames:
                node.input[k] = renames[name]
    for name, inner in renames.items():
        new_nodes.append(helper.make_node("Cast", [inner], [name], to=FLOAT, name=f"{name}__cast_out"))

    # Drop fp32 initializers no node reads any more (replaced by their fp16 copies).
    used = {i for n in new_nodes for i in n.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.node[:]
    graph.node.extend(new_nodes)
    return model
