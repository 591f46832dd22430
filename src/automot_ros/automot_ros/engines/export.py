"""The Action Expert to ONNX: fp32 and fp16 files, checked, with torch parity.

Graph interface (both variants; float32 at the boundary)::

    context_kv     float32 [layers, 2, ue_kv_heads, context, head_dim]   the shared-memory slot layout
    scene_input    uint8   [batch, 3, Hs, Ws]
    target_points  float32 [batch, K, 2]     m, ego frame (K: the config's action.route_lookahead_m)
    speed          float32 [batch]           m/s
    -> lateral_logits [batch, 3, 5], longitudinal_logits [batch, 3, 4], path [batch, 20, 2],
       waypoints [batch, 6, 2], speed_pred [batch, 3]

``batch`` and ``context`` are symbolic dimensions (torch.onnx dynamo exporter, opset 18).
Files are written to a temporary directory and moved into place only after
``onnx.checker`` (full check), strict shape inference (context stays symbolic) and the
parity check against torch pass; the parity report is written either way.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Dict, Iterable, Optional, Sequence, Union

import numpy as np

from automot_ros.engines.artifacts import (
    INPUT_NAMES, META_CONFIG, META_MODEL_ID, META_PRECISION, OUTPUT_NAMES, PRECISIONS, EngineProfile,
    engine_profile, file_sha256, nominal_context_tokens, onnx_path, parity_path,
)

OPSET = 18
# Parity tolerances (max abs diff vs torch fp32). Applied as tol * max(1, max|reference|)
# per output: for outputs of order 1 (logits) exactly the absolute bound; outputs in
# meters (path up to tens of m) get the same relative precision. fp16 stores each number
# with 11 significant bits (an 8 m coordinate has a 0.008 m step), so an absolute 1e-2 on
# meters is below what fp16 weights alone allow (see the report's within_absolute flag).
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2}
# Protobuf cannot hold more than 2 GiB: above this, weights go to an external data file.
EXTERNAL_DATA_BYTES = 1 << 30

Progress = Callable[[str], None]


class ExportError(RuntimeError):
    """The export, a check or the parity test failed; the message says which."""


@dataclass
class ExportResult:
    files: Dict[str, Path]  # precision -> ONNX file
    parity_file: Path
    report: dict
    seconds: Dict[str, float] = field(default_factory=dict)  # stage -> wall time

    @property
    def passed(self) -> bool:
        return all(v["passed"] for v in self.report["variants"].values())


def _graph_module(model):
    import torch

    class ActionExpertGraph(torch.nn.Module):
        """The AE with the export's argument names (context_kv, scene_input, ...)."""

        def __init__(self, ae):
            super().__init__()
            self.ae = ae

        def forward(self, context_kv, scene_input, target_points, speed):
            return self.ae(context_kv, scene_input, target_points, speed)

    return ActionExpertGraph(model.ae).eval()


def _example_inputs(cfg, tokens: int, batch: int, device="cpu", generator=None):
    import torch

    d, hs_ws = cfg.decoder, cfg.action.scene.image_size
    return (
        torch.randn(d.layers, 2, d.kv_heads, tokens, d.head_dim, generator=generator).to(device),
        torch.randint(0, 256, (batch, 3, *hs_ws), dtype=torch.uint8, generator=generator).to(device),
        (torch.randn(batch, cfg.action.target_points, 2, generator=generator) * 10.0).to(device),
        (torch.rand(batch, generator=generator) * 15.0).to(device),
    )


def _weights_bytes(proto) -> int:
    return sum(len(t.raw_data) or t.ByteSize() for t in proto.graph.initializer)


def save_onnx(proto, path: Path) -> None:
    """Save, with weights in ``<name>.data`` beside the file when they exceed 1 GiB."""
    import onnx

    if _weights_bytes(proto) > EXTERNAL_DATA_BYTES:
        onnx.save_model(proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=path.name + ".data", size_threshold=1024)
    else:
        onnx.save_model(proto, str(path))


def export_fp32(model, path: Path, example_tokens: int) -> None:
    """torch.onnx.export (dynamo, opset 18) of ``model.ae`` with dynamic batch and context."""
    import torch

    cfg = model.cfg
    device = next(model.ae.parameters()).device
    args = _example_inputs(cfg, example_tokens, batch=2, device=device)  # batch 2: 0/1 would be specialized
    batch = torch.export.Dim("batch", min=1, max=4096)
    context = torch.export.Dim("context", min=1, max=1 << 20)
    dynamic = {"context_kv": {3: context}, "scene_input": {0: batch}, "target_points": {0: batch},
               "speed": {0: batch}}
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "torchvision is not installed" and similar chatter
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                _graph_module(model), args, dynamo=True, opset_version=OPSET, input_names=list(INPUT_NAMES),
                output_names=list(OUTPUT_NAMES), dynamic_shapes=dynamic, verbose=False)
    finally:
        quiet.setLevel(level)
    proto = program.model_proto
    for i, node in enumerate(proto.graph.node):  # the fp16 pass and TensorRT logs want names
        if not node.name:
            node.name = f"node_{node.op_type}_{i}"
    _set_metadata(proto, model, "fp32")
    save_onnx(proto, path)


def _set_metadata(proto, model, precision: str) -> None:
    import torch

    values = {
        META_MODEL_ID: model.model_id,
        META_CONFIG: model.cfg.to_json(),
        META_PRECISION: precision,
        "automot.exporter": f"torch {torch.__version__} dynamo, opset {OPSET}",
        "automot.layout": "context_kv [layers, 2, kv_heads, context, head_dim] (shared-memory slot layout)",
    }
    kept = [p for p in proto.metadata_props if p.key not in values]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in values.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name, proto.doc_string = "automot", "AutoMoT Action Expert"


def convert_file_to_fp16(src: Path, dst: Path, model) -> None:
    import onnx

    from automot_ros.engines.fp16 import convert_to_fp16

    proto = convert_to_fp16(onnx.load(str(src)))
    _set_metadata(proto, model, "fp16")
    save_onnx(proto, dst)


def check_onnx(path: Path) -> dict:
    """onnx.checker full check, then strict shape inference: the context length must stay
    the symbolic ``context`` and every output keep the symbolic ``batch``."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
        proto = onnx.load(str(path), load_external_data=False)
        inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True, data_prop=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        raise ExportError(f"{path.name}: {error}") from error

    def dims(value):
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    shapes = {v.name: dims(v) for v in list(inferred.graph.input) + list(inferred.graph.output)}
    if shapes["context_kv"][3] != "context":
        raise ExportError(f"{path.name}: context length is not symbolic after shape inference: {shapes['context_kv']}")
    for name in OUTPUT_NAMES:
        if shapes[name][0] != "batch":
            raise ExportError(f"{path.name}: output {name} lost the symbolic batch: {shapes[name]}")
    return shapes


def parity(model, files: Dict[str, Path], context_lengths: Iterable[int], batch: int = 2, seed: int = 0,
           num_threads: int = 1) -> dict:
    """Max abs difference of each file's outputs (onnxruntime, CPU provider) from the torch
    model's, on random inputs at each context length."""
    import onnx
    import onnxruntime
    import torch

    from automot_ros.runtime.backends.onnxruntime_backend import create_session

    sessions = {p: create_session(f, "cpu", num_threads) for p, f in files.items()}
    variants = {p: {"file": f.name, "sha256": file_sha256(f), "tolerance": TOLERANCE[p], "lengths": {}}
                for p, f in files.items()}
    device = next(model.ae.parameters()).device
    for tokens in context_lengths:
        generator = torch.Generator().manual_seed(seed * 100003 + tokens)
        inputs = _example_inputs(model.cfg, tokens, batch, generator=generator)
        with torch.no_grad():
            reference = [o.float().cpu().numpy() for o in model.action_expert(*(x.to(device) for x in inputs))]
        feeds = dict(zip(INPUT_NAMES, (x.numpy() for x in inputs)))
        for precision, session in sessions.items():
            outputs = session.run(list(OUTPUT_NAMES), feeds)
            per_output = {}
            for name, out, ref in zip(OUTPUT_NAMES, outputs, reference):
                scale = float(np.abs(ref).max())
                per_output[name] = {"max_abs_diff": float(np.abs(out - ref).max()), "reference_scale": scale,
                                    "tolerance": TOLERANCE[precision] * max(1.0, scale)}
            variants[precision]["lengths"][str(tokens)] = per_output
    for precision, report in variants.items():
        entries = [e for per in report["lengths"].values() for e in per.values()]
        report["max_abs_diff"] = max(e["max_abs_diff"] for e in entries)
        report["passed"] = all(e["max_abs_diff"] <= e["tolerance"] for e in entries)
        report["within_absolute"] = report["max_abs_diff"] <= TOLERANCE[precision]
        report["worst"] = max(((length, name, e["max_abs_diff"]) for length, per in report["lengths"].items()
                               for name, e in per.items()), key=lambda t: t[2])
    return {
        "model_id": model.model_id,
        "config": model.cfg.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__},
        "provider": "CPUExecutionProvider",
        "batch": batch,
        "seed": seed,
        "context_lengths": [int(t) for t in context_lengths],
        "tolerance_rule": "max_abs_diff <= tolerance * max(1, max|torch output|), per output and context length",
        "variants": variants,
    }


def default_profile(model, model_name: Optional[Union[str, Path]] = None) -> EngineProfile:
    return engine_profile(model_name or model.cfg.name, nominal_context_tokens(model.cfg))


def export_action_expert(model, engine_dir: Union[str, Path], precisions: Sequence[str] = PRECISIONS,
                         context_lengths: Optional[Sequence[int]] = None, profile: Optional[EngineProfile] = None,
                         progress: Optional[Progress] = None, num_threads: int = 1) -> ExportResult:
    """Export ``model.ae`` into ``engine_dir``; see the module doc. Raises ExportError
    (after writing the parity report) when a check or the parity test fails."""
    say = progress or (lambda message: None)
    precisions = list(dict.fromkeys(precisions))
    if not precisions or any(p not in PRECISIONS for p in precisions):
        raise ValueError(f"precisions must be a subset of {PRECISIONS}, got {precisions}")
    engine_dir = Path(engine_dir)
    engine_dir.mkdir(parents=True, exist_ok=True)
    profile = profile or default_profile(model)
    lengths = sorted(set(int(t) for t in (context_lengths or profile.context_tokens)))
    if len(lengths) < 1 or min(lengths) < 1:
        raise ValueError(f"context lengths must be >= 1, got {lengths}")
    model_id = model.model_id
    seconds: Dict[str, float] = {}
    staging = Path(tempfile.mkdtemp(prefix=f".{model_id}.export-", dir=engine_dir))
    try:
        fp32_file = staging / onnx_path(engine_dir, model_id, "fp32").name
        steps = 3 + ("fp16" in precisions)
        say(f"[1/{steps}] exporting the Action Expert of {model_id} (torch.onnx dynamo, opset {OPSET}, "
            f"dynamic batch and context)")
        start = time.perf_counter()
        export_fp32(model, fp32_file, example_tokens=profile.context_tokens[1])
        seconds["export_fp32"] = time.perf_counter() - start
        staged = {"fp32": fp32_file}
        step = 2
        if "fp16" in precisions:
            say(f"[{step}/{steps}] converting to fp16 (fp32 inputs/outputs; RoPE, norm statistics and heads in fp32)")
            start = time.perf_counter()
            staged["fp16"] = staging / onnx_path(engine_dir, model_id, "fp16").name
            convert_file_to_fp16(fp32_file, staged["fp16"], model)
            seconds["convert_fp16"] = time.perf_counter() - start
            step += 1
        say(f"[{step}/{steps}] onnx.checker full check and strict shape inference")
        start = time.perf_counter()
        shapes = {p: check_onnx(f) for p, f in staged.items()}
        seconds["check"] = time.perf_counter() - start
        step += 1
        say(f"[{step}/{steps}] parity against torch in onnxruntime at context lengths {lengths}")
        start = time.perf_counter()
        report = parity(model, {p: staged[p] for p in precisions}, lengths, num_threads=num_threads)
        seconds["parity"] = time.perf_counter() - start
        report["profile"] = profile.to_dict()
        report["shapes"] = shapes[precisions[0]]
        report["seconds"] = {k: round(v, 3) for k, v in seconds.items()}
        parity_file = parity_path(engine_dir, model_id)
        _write_json(parity_file, report)
        failed = [p for p in precisions if not report["variants"][p]["passed"]]
        if failed:
            rejected = engine_dir / f"{model_id}.ae.rejected"
            shutil.rmtree(rejected, ignore_errors=True)
            staging.rename(rejected)
            raise ExportError(
                f"parity failed for {failed} (see {parity_file}); the files were kept in {rejected}")
        files = {}
        for precision in precisions:
            final = onnx_path(engine_dir, model_id, precision)
            _move_onnx(staged[precision], final)
            files[precision] = final
        return ExportResult(files, parity_file, report, seconds)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_onnx(src: Path, dst: Path) -> None:
    data = src.with_name(src.name + ".data")
    if data.exists():
        os.replace(data, dst.with_name(dst.name + ".data"))
    os.replace(src, dst)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
