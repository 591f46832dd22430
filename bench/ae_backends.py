"""Action Expert latency per backend: median and p90 of one step, JSON out.

Each backend runs the same step the action node runs: ``ActionBackend.run`` on a context
snapshot (random K/V at the config's context length), one scene image, the route target points
and the speed. On the CPU: tiny (default) or smol, torch vs onnxruntime-cpu (fp32 by
default). On a GPU host the GPU backends join in (onnxruntime-cuda, tensorrt), and
``--ae-only`` benchmarks a config too large to build whole (automot-b2d: Qwen3-VL-4B-sized
UE) through its Action Expert alone, with random weights rounded to fp16.

    python bench/ae_backends.py                                  # tiny, CPU
    python bench/ae_backends.py --config smol --threads 2
    python bench/ae_backends.py --config automot-b2d --ae-only --precision fp16   # GPU host

The ONNX export (and a TensorRT build) happen first, in --engine-dir (default: a fresh
temporary directory, so the export time is part of the report).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from timing import timed  # bench/ is the script directory
from automot_ros.engines.artifacts import engine_profile, nominal_context_tokens
from automot_ros.engines.export import export_action_expert
from automot_ros.engines.gpu import probe_gpu
from automot_ros.runtime.backends.factory import AUTO_ORDER, BackendFactory, availability
from automot_ros.runtime.context_shm import ContextSnapshot
from automot_ros.train.synthetic import arc_points

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "ae_backends.json"


class AEOnly:
    """What export and the torch backend need of a model, without the UE: ``ae``, ``cfg``,
    ``model_id``, ``action_expert``. Random weights rounded to fp16 values, on ``device``."""

    def __init__(self, config: str, device: str):
        from automot_ros.engines.artifacts import model_identity
        from automot_ros.model.action_expert import ActionExpert

        self.cfg, self.model_id = model_identity(config)
        self.model_id += "-aeonly"
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.ae = ActionExpert(self.cfg.action, self.cfg.decoder).to(device).eval()
        with torch.no_grad():
            for p in self.ae.parameters():
                p.copy_(p.half().float())
        self.device = device

    def action_expert(self, *inputs):
        return self.ae(*inputs)


def bench_ae_only(args, engine_dir: Path, report: dict) -> None:
    """Raw batched calls (no Trajectory conversion): torch (autocast fp16 on a GPU),
    onnxruntime and TensorRT on the exported files."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AEOnly(args.config, device)
    profile = engine_profile(args.config, nominal_context_tokens(model.cfg))
    tokens = args.context or profile.context_tokens[1]
    start = time.perf_counter()
    export_action_expert(model, engine_dir, profile=profile, context_lengths=[profile.context_tokens[0], tokens],
                         progress=print, num_threads=args.threads)
    report["export_s"] = round(time.perf_counter() - start, 1)
    d, scene_hw = model.cfg.decoder, model.cfg.action.scene.image_size
    rng = np.random.default_rng(0)
    kv = rng.standard_normal((d.layers, 2, d.kv_heads, tokens, d.head_dim)).astype(np.float32)
    scene = rng.integers(0, 256, (1, 3, *scene_hw), dtype=np.uint8)
    targets = arc_points(np.asarray(model.cfg.action.route_lookahead_m), 0.01)[None].astype(np.float32)
    speed = np.array([6.0], np.float32)
    report["context_tokens"] = tokens
    results = report["backends"]

    inputs = [torch.from_numpy(a).to(device) for a in (kv, scene, targets, speed)]

    def torch_step():
        with torch.inference_mode(), torch.autocast(device, dtype=torch.float16, enabled=device == "cuda"):
            out = model.action_expert(*inputs)
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    results["torch"] = {**timed(torch_step, args.runs, args.warmup), "precision": "fp16-autocast" if device == "cuda"
                        else "fp32", "device": device}
    from automot_ros.engines.artifacts import onnx_path
    from automot_ros.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    for name in ("onnxruntime-cuda", "onnxruntime-cpu"):
        ok, reason = availability(name)
        if not ok or (name == "onnxruntime-cpu" and device == "cuda" and not args.cpu_too):
            results[name] = {"skipped": reason or "CPU skipped on a GPU host (--cpu-too to include)"}
            continue
        backend = OnnxRuntimeBackend(onnx_path(engine_dir, model.model_id, args.precision), model.model_id,
                                     name.split("-", 1)[1], args.threads)
        results[name] = {**timed(lambda: backend.run_raw(kv, scene, targets, speed), args.runs, args.warmup),
                         "precision": args.precision}
    ok, reason = availability("tensorrt")
    if ok:
        from automot_ros.runtime.backends.tensorrt_backend import TensorRTBackend

        start = time.perf_counter()
        backend = TensorRTBackend(onnx_path(engine_dir, model.model_id, args.precision), engine_dir, profile)
        build_s = time.perf_counter() - start
        same = timed(lambda: backend.run_raw(kv, scene, targets, speed, context_key="same"), args.runs, args.warmup)
        fresh = timed(lambda: backend.run_raw(kv, scene, targets, speed), args.runs, args.warmup)
        results["tensorrt"] = {**same, "precision": args.precision, "build_s": round(build_s, 1),
                               "context_upload_every_step": fresh}
        backend.close()
    else:
        results["tensorrt"] = {"skipped": reason}


def bench_full(args, engine_dir: Path, report: dict) -> None:
    """Through ActionBackend.run, as the action node calls it."""
    from automot_ros.model import build_model

    model = build_model(args.config)
    factory = BackendFactory(args.config, engine_dir=str(engine_dir), precision=args.precision,
                             num_threads=args.threads, load_torch_model=lambda: model, log=print)
    tokens = args.context or nominal_context_tokens(model.cfg)
    start = time.perf_counter()
    factory.onnx_file()  # export (fp32 + fp16, checked, with parity) unless present
    report["export_s"] = round(time.perf_counter() - start, 1)
    d = model.cfg.decoder
    rng = np.random.default_rng(0)
    kv = rng.standard_normal((d.layers, 2, d.kv_heads, tokens, d.head_dim)).astype(np.float32)
    kv.setflags(write=False)  # like the shared-memory view
    snapshot = ContextSnapshot(1, 0, 0, tokens, tokens, 1, model.model_id, kv)
    scene = rng.integers(0, 256, (3, *model.cfg.action.scene.image_size), dtype=np.uint8)
    targets = arc_points(np.asarray(model.cfg.action.route_lookahead_m), 0.01)  # a gentle left bend
    report["context_tokens"] = tokens
    for name in args.backends or list(reversed(AUTO_ORDER)):
        ok, reason = availability(name)
        if not ok:
            report["backends"][name] = {"skipped": reason}
            print(f"{name}: skipped ({reason})")
            continue
        backend = factory.build(name)
        result = timed(lambda: backend.run(snapshot, scene, targets, 6.0), args.runs, args.warmup)
        result["precision"] = "fp32" if name == "torch" else args.precision
        report["backends"][name] = result
        backend.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny", help="model config (default: %(default)s)")
    parser.add_argument("--backends", nargs="+", choices=AUTO_ORDER, help="default: all available")
    parser.add_argument("--precision", choices=("fp32", "fp16"), default="fp32",
                        help="ONNX variant for onnxruntime/TensorRT (default: %(default)s)")
    parser.add_argument("--context", type=int, help="context tokens (default: the config's)")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads (default: %(default)s)")
    parser.add_argument("--ae-only", action="store_true",
                        help="build only the Action Expert (random fp16-rounded weights): for automot-b2d")
    parser.add_argument("--cpu-too", action="store_true", help="with --ae-only on a GPU host: also onnxruntime-cpu")
    parser.add_argument("--engine-dir", type=Path, help="ONNX/engine directory (default: a fresh temporary one)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output (default: %(default)s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    gpu = probe_gpu()
    import onnxruntime

    report = {"config": args.config, "precision": args.precision, "threads": args.threads,
              "machine": platform.processor() or platform.machine(), "python": platform.python_version(),
              "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
              "gpu": gpu.name if gpu.available else None, "ae_only": args.ae_only, "backends": {}}
    with tempfile.TemporaryDirectory(prefix="automot-bench-engines-") as tmp:
        engine_dir = args.engine_dir or Path(tmp)
        (bench_ae_only if args.ae_only else bench_full)(args, engine_dir, report)
    print(f"\n{args.config}: context {report['context_tokens']} tokens, {args.threads} thread(s), "
          f"export {report['export_s']} s")
    for name, r in report["backends"].items():
        if "skipped" in r:
            print(f"  {name:17s} skipped: {r['skipped']}")
        else:
            print(f"  {name:17s} median {r['median_ms']:8.2f} ms   p90 {r['p90_ms']:8.2f} ms   ({r['precision']})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
