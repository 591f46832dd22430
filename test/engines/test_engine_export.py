"""`automot engines export`: ONNX fp32 + fp16 of the tiny Action Expert, checked, with
parity against torch at several context lengths."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from automot_testing import random_action_expert_inputs, tiny_model_with_action
from onnx import TensorProto

from automot_ros.engines.artifacts import INPUT_NAMES, META_MODEL_ID, META_PRECISION, OUTPUT_NAMES, engine_profile
from automot_ros.engines.export import TOLERANCE

PRECISIONS = ("fp32", "fp16")


def test_export_command_reports_progress_and_a_summary(tiny_export):
    out = tiny_export.output
    assert tiny_export.returncode == 0, out
    for step in ("[1/4] exporting", "[2/4] converting to fp16", "[3/4] onnx.checker", "[4/4] parity"):
        assert step in out, out
    assert f"exported {tiny_export.model_id}" in out and out.count("PASS") == 2, out
    for precision in PRECISIONS:
        assert tiny_export.onnx(precision).is_file()
    assert tiny_export.parity_file.is_file()
    # Nothing half-written is left in the directory.
    assert sorted(p.name for p in tiny_export.engine_dir.iterdir()) == sorted(
        [tiny_export.onnx("fp32").name, tiny_export.onnx("fp16").name, tiny_export.parity_file.name])


@pytest.mark.parametrize("precision", PRECISIONS)
def test_onnx_passes_the_full_checker_and_strict_inference_keeps_context_symbolic(tiny_export, precision):
    path = tiny_export.onnx(precision)
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path))
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)

    def shape(value):
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    d = tiny_export.cfg.decoder
    inputs = {v.name: v for v in inferred.graph.input}
    outputs = {v.name: v for v in inferred.graph.output}
    assert list(inputs) == list(INPUT_NAMES) and list(outputs) == list(OUTPUT_NAMES)
    # The shared-memory slot layout, with the context length symbolic.
    assert shape(inputs["context_kv"]) == [d.layers, 2, d.kv_heads, "context", d.head_dim]
    assert shape(inputs["scene_input"]) == ["batch", 3, *tiny_export.cfg.action.scene.image_size]
    assert shape(inputs["target_points"]) == ["batch", 2, 2] and shape(inputs["speed"]) == ["batch"]
    assert shape(outputs["path"]) == ["batch", 20, 2] and shape(outputs["lateral_logits"]) == ["batch", 3, 5]
    # Both variants keep float32 (and uint8 pixels) at the boundary.
    assert inputs["scene_input"].type.tensor_type.elem_type == TensorProto.UINT8
    for value in [inputs["context_kv"], inputs["target_points"], inputs["speed"], *outputs.values()]:
        assert value.type.tensor_type.elem_type == TensorProto.FLOAT
    # No intermediate shape got the example length (278) baked in.
    nominal = engine_profile("tiny").context_tokens[1]
    baked = [v.name for v in inferred.graph.value_info
             if any(dim.dim_value in (nominal, nominal + tiny_export.cfg.action.num_tokens)
                    for dim in v.type.tensor_type.shape.dim)]
    assert not baked, baked
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta[META_MODEL_ID] == tiny_export.model_id and meta[META_PRECISION] == precision
    assert model.opset_import[0].version == 18


def test_fp16_variant_stores_fp16_weights_and_keeps_rope_in_fp32(tiny_export):
    model = onnx.load(str(tiny_export.onnx("fp16")))
    elements = {}
    for t in model.graph.initializer:
        elements[t.data_type] = elements.get(t.data_type, 0) + int(np.prod(t.dims))
    # Only the output heads and the learned queries (expanded by shape alone) stay fp32.
    assert elements[TensorProto.FLOAT16] > 0.9 * (elements[TensorProto.FLOAT16] + elements.get(TensorProto.FLOAT, 0))
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    trig = [n for n in model.graph.node if n.op_type in ("Cos", "Sin")]
    assert trig and all(types[n.output[0]] == TensorProto.FLOAT for n in trig)


def test_parity_json_beside_the_model_covers_three_context_lengths(tiny_export):
    report = json.loads(tiny_export.parity_file.read_text())
    assert report["model_id"] == tiny_export.model_id
    assert len(report["context_lengths"]) >= 3
    for precision in PRECISIONS:
        variant = report["variants"][precision]
        assert variant["file"] == tiny_export.onnx(precision).name and variant["passed"]
        assert sorted(variant["lengths"], key=int) == [str(t) for t in report["context_lengths"]]
        for per_output in variant["lengths"].values():
            assert set(per_output) == set(OUTPUT_NAMES)
            for entry in per_output.values():
                assert entry["max_abs_diff"] <= TOLERANCE[precision] * max(1.0, entry["reference_scale"])
    assert report["variants"]["fp32"]["max_abs_diff"] <= 1e-4


@pytest.mark.parametrize("precision", PRECISIONS)
def test_onnxruntime_matches_torch_at_other_context_lengths_and_batches(tiny_export, tiny_model, precision):
    """Independent of the exporter's own report: fresh inputs, lengths and batch sizes
    the export never saw (the axes are dynamic)."""
    session = onnxruntime.InferenceSession(str(tiny_export.onnx(precision)), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(7)
    worst = {}
    for tokens, batch in ((7, 1), (150, 3), (333, 1)):
        inputs = random_action_expert_inputs(tiny_model, batch, tokens, generator)
        with torch.no_grad():
            reference = [o.numpy() for o in tiny_model.action_expert(*inputs)]
        outputs = session.run(None, dict(zip(INPUT_NAMES, (t.numpy() for t in inputs))))
        for name, out, ref in zip(OUTPUT_NAMES, outputs, reference):
            assert out.shape == ref.shape
            tolerance = TOLERANCE[precision] * max(1.0, float(np.abs(ref).max()))
            diff = float(np.abs(out - ref).max())
            assert diff <= tolerance, (precision, tokens, name, diff, tolerance)
            worst[name] = max(worst.get(name, 0.0), diff)
    if precision == "fp32":
        assert max(worst.values()) <= 1e-4, worst


def test_an_action_expert_with_more_route_targets_exports_them(tmp_path):
    """The target_points input takes the config's count (action.route_lookahead_m)."""
    from automot_ros.engines.export import export_action_expert

    model = tiny_model_with_action(route_lookahead_m=(10.0, 20.0, 40.0))
    result = export_action_expert(model, tmp_path, precisions=["fp32"], context_lengths=[40])
    proto = onnx.load(str(result.files["fp32"]))
    shape = [d.dim_value or d.dim_param for d in proto.graph.input[INPUT_NAMES.index("target_points")].type.tensor_type.shape.dim]
    assert shape[1:] == [3, 2]
    session = onnxruntime.InferenceSession(str(result.files["fp32"]), providers=["CPUExecutionProvider"])
    inputs = random_action_expert_inputs(model, 2, tokens=40, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        reference = model.action_expert(*inputs)
    outputs = session.run(None, dict(zip(INPUT_NAMES, (t.numpy() for t in inputs))))
    for out, ref in zip(outputs, reference):
        np.testing.assert_allclose(out, ref.numpy(), atol=1e-4 * max(1.0, float(ref.abs().max())))
