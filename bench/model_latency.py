"""Per-control-step latency of the model on this machine (CPU by default).

For each config: UE prefill (``understand``), AE step on a cached context (``act``), and
the synchronous step (the joint ``forward_sync`` pass: UE + AE every step). Prints median
and p90 over --runs timed runs (after --warmup) and the async speedup (sync / act).

    python bench/model_latency.py --configs tiny smol --runs 20 --out out/model_latency.json
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
import torch

from timing import timed  # bench/ is the script directory
from automot_ros.data.route import DEFAULT_LOOKAHEAD_M
from automot_ros.model import build_model, format_instruction
from automot_ros.train.synthetic import arc_points


def bench_config(name: str, runs: int, warmup: int) -> dict:
    model = build_model(name)
    v, s = model.cfg.vision, model.cfg.action.scene
    frames = torch.randint(0, 256, (v.frames, 3, *v.image_size), dtype=torch.uint8)
    scene = torch.randint(0, 256, (1, 3, *s.image_size), dtype=torch.uint8)
    targets = torch.from_numpy(arc_points(np.asarray(model.cfg.action.route_lookahead_m), 0.01)[None]).float()
    speed = torch.tensor([6.0])
    instruction = format_instruction(arc_points(np.asarray(DEFAULT_LOOKAHEAD_M), 0.01), float(speed[0]))
    context = model.understand(frames, instruction)

    def sync():
        with torch.inference_mode():
            model.forward_sync(frames, instruction, scene, targets, speed)

    result = {
        "understand": timed(lambda: model.understand(frames, instruction), runs, warmup),
        "act": timed(lambda: model.act(context, scene, targets, speed), runs, warmup),
        "sync": timed(sync, runs, warmup),
        "context_tokens": context.num_tokens,
        "ae_tokens": model.cfg.action.num_tokens,
        "params_m": {"ue_decoder": sum(p.numel() for p in model.decoder.parameters()) / 1e6,
                     "ae": sum(p.numel() for p in model.ae.parameters()) / 1e6},
    }
    result["async_speedup"] = result["sync"]["median_ms"] / result["act"]["median_ms"]
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["tiny", "smol"])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = {"device": "cpu", "torch": torch.__version__, "threads": torch.get_num_threads(),
              "machine": platform.processor() or platform.machine(), "configs": {}}
    for name in args.configs:
        r = bench_config(name, args.runs, args.warmup)
        report["configs"][name] = r
        print(f"{name}: context {r['context_tokens']} tokens, AE {r['ae_tokens']} tokens, "
              f"{torch.get_num_threads()} threads")
        for step in ("understand", "act", "sync"):
            print(f"  {step:>10}: median {r[step]['median_ms']:8.1f} ms   p90 {r[step]['p90_ms']:8.1f} ms")
        print(f"  async speedup (sync / act): {r['async_speedup']:.1f}x")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
