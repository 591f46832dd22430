"""`automot engines export|build`: the Action Expert as ONNX files and TensorRT engines.

Model, checkpoint, engine directory and precision default to the action_node section of
the parameter file (config/drive.yaml), so the engines built are the ones the node loads;
command-line options override them.

Exit codes: 0 done; 1 export, check, parity or build failed; 3 TensorRT or a GPU missing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import yaml

from automot_ros.paths import config_dir

EXIT_FAILED = 1
EXIT_NO_TENSORRT = 3


def add_engines_parser(commands) -> None:
    """Add ``engines`` with ``export`` and ``build`` to the ``automot`` subcommands."""
    engines = commands.add_parser("engines", help="export the Action Expert to ONNX, build TensorRT engines")
    sub = engines.add_subparsers(dest="engines_command", required=True)

    export = sub.add_parser(
        "export", help="Action Expert -> ONNX fp32 + fp16, checked, with torch parity (JSON)",
        description="Export the Action Expert (inputs: per-layer context K/V, scene, target points, speed; "
                    "dynamic batch and context length) to <model_id>.ae.fp32.onnx and .fp16.onnx, run "
                    "onnx.checker (full) and strict shape inference, and write the onnxruntime-vs-torch parity "
                    "at the profile's context lengths to <model_id>.ae.parity.json.")
    _common(export)
    export.add_argument("--precision", nargs="+", choices=("fp32", "fp16"), default=["fp32", "fp16"],
                        help="variants to write (default: both)")
    export.add_argument("--context-lengths", nargs="+", type=int, metavar="N",
                        help="parity context lengths (default: the config's engine.context_tokens min/opt/max)")
    export.add_argument("--threads", type=int, default=2, help="torch/onnxruntime threads (default: %(default)s)")
    export.set_defaults(func=cmd_export)

    build = sub.add_parser(
        "build", help="ONNX -> TensorRT engine (needs TensorRT and an NVIDIA GPU)",
        description="Build (or reuse) the TensorRT engine of the model's ONNX file, exporting the ONNX first "
                    "if it is missing. The engine is named by ONNX hash, profile, TensorRT version and GPU; "
                    "optimization profile from the model config's engine section; timing cache in the "
                    "engine directory. Without TensorRT or a GPU it exits with code 3 and the reason.")
    _common(build)
    build.add_argument("--precision", choices=("fp32", "fp16"), help="which ONNX to build (default: the file's)")
    build.add_argument("--workspace-mib", type=int, default=2048, help="builder workspace (default: %(default)s MiB)")
    build.add_argument("--device", type=int, help="CUDA device index (default: from the file's device, else 0)")
    build.add_argument("--force", action="store_true", help="rebuild even if a matching engine exists")
    build.set_defaults(func=cmd_build)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=str(config_dir() / "drive.yaml"),
                        help="parameter file whose action_node section gives the defaults (default: %(default)s)")
    parser.add_argument("--model", help="model config name or YAML path")
    parser.add_argument("--checkpoint", help="trained checkpoint (safetensors)")
    parser.add_argument("--engine-dir", "--out", dest="engine_dir",
                        help="output directory (default: the file's engine_dir, '' = the package's engines/)")


def _settings(args) -> dict:
    """action_node parameters from --config, overridden by the command line."""
    values = {"model": "smol", "checkpoint": "auto", "engine_dir": "", "precision": "fp32", "device": "cpu"}
    path = Path(args.config)
    if not path.is_file():
        raise SystemExit(f"automot engines: parameter file {path} does not exist")
    section = ((yaml.safe_load(path.read_text()) or {}).get("action_node") or {}).get("ros__parameters") or {}
    values.update({k: section[k] for k in values if k in section})
    for key in ("model", "checkpoint", "engine_dir"):
        if getattr(args, key, None) is not None:
            values[key] = getattr(args, key)
    return values


def _say(message: str) -> None:
    print(f"[automot engines {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _build_model(settings: dict, threads: int):
    import torch

    from automot_ros.model import build_model

    if threads > 0:
        torch.set_num_threads(threads)
    _say(f"building model {settings['model']}" + (f" from {settings['checkpoint']}" if settings["checkpoint"] else ""))
    return build_model(settings["model"], checkpoint=settings["checkpoint"] or None).eval()


def _export(settings: dict, precisions, context_lengths=None, threads: int = 2):
    from automot_ros.engines.artifacts import engine_profile, nominal_context_tokens, resolve_engine_dir
    from automot_ros.engines.export import export_action_expert

    model = _build_model(settings, threads)
    profile = engine_profile(settings["model"], nominal_context_tokens(model.cfg))
    engine_dir = resolve_engine_dir(settings["engine_dir"])
    return export_action_expert(model, engine_dir, precisions, context_lengths, profile, progress=_say,
                                num_threads=threads)


def cmd_export(args) -> int:
    from automot_ros.engines.export import ExportError

    settings = _settings(args)
    start = time.perf_counter()
    try:
        result = _export(settings, args.precision, args.context_lengths, args.threads)
    except ExportError as error:
        print(f"automot engines export: FAILED: {error}", file=sys.stderr)
        return EXIT_FAILED
    total = time.perf_counter() - start
    report = result.report
    print(f"\nexported {report['model_id']} in {total:.1f} s "
          f"(torch.onnx export {result.seconds.get('export_fp32', 0):.1f} s, "
          f"parity {result.seconds.get('parity', 0):.1f} s)")
    print(f"  inputs : context_kv {report['shapes']['context_kv']}, scene_input {report['shapes']['scene_input']}, "
          f"target_points {report['shapes']['target_points']}, speed {report['shapes']['speed']}")
    for precision, path in result.files.items():
        variant = report["variants"][precision]
        length, output, diff = variant["worst"]
        print(f"  {precision}: {path} ({path.stat().st_size / 1e6:.1f} MB); parity at context "
              f"{report['context_lengths']}: max abs diff {variant['max_abs_diff']:.2e} ({output} at {length}), "
              f"tolerance {variant['tolerance']:g} x max(1, |ref|): {'PASS' if variant['passed'] else 'FAIL'}")
    print(f"  parity report: {result.parity_file}")
    return 0 if result.passed else EXIT_FAILED


def cmd_build(args) -> int:
    from automot_ros.engines.artifacts import engine_profile, nominal_context_tokens, onnx_path, model_identity, \
        resolve_engine_dir
    from automot_ros.engines.export import ExportError
    from automot_ros.engines.tensorrt_build import EngineBuildError, TensorRTUnavailable, build_engine, \
        import_tensorrt
    from automot_ros.runtime.backends.factory import device_index

    settings = _settings(args)
    precision = args.precision or settings["precision"]
    device = args.device if args.device is not None else device_index(settings["device"])
    try:  # first: is there anything to build with? (before minutes of export)
        trt, gpu = import_tensorrt(device)
    except TensorRTUnavailable as error:
        print(f"automot engines build: cannot build a TensorRT engine here: {error}", file=sys.stderr)
        return EXIT_NO_TENSORRT
    _say(f"TensorRT {trt.__version__} on {gpu.name} (compute {gpu.compute_capability}, driver CUDA {gpu.driver_version})")
    cfg, model_id = model_identity(settings["model"], settings["checkpoint"] or None)
    engine_dir = resolve_engine_dir(settings["engine_dir"])
    onnx_file = onnx_path(engine_dir, model_id, precision)
    start = time.perf_counter()
    try:
        if not onnx_file.is_file():
            _say(f"no {onnx_file.name} in {engine_dir}: exporting it first")
            _export(settings, ("fp32", "fp16"))
        profile = engine_profile(settings["model"], nominal_context_tokens(cfg))
        path, built = build_engine(onnx_file, engine_dir, profile, args.workspace_mib, device, args.force, _say)
    except (ExportError, EngineBuildError) as error:
        print(f"automot engines build: FAILED: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(f"\n{'built' if built else 'reused'} {path} ({path.stat().st_size / 1e6:.1f} MB) in "
          f"{time.perf_counter() - start:.1f} s: {precision}, context {profile.context_tokens}, batch {profile.batch}, "
          f"TensorRT {trt.__version__}, {gpu.name}")
    return 0
