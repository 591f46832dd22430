"""Training throughput: seconds per optimizer step of each stage, and of the context cache.

Runs ``automot train`` (single process) for a few steps per stage on in-memory synthetic
data with the config's real shapes (frames, context length, vocabulary), so the numbers
are what a run on collected data costs per step; the first step of a stage is not counted.
Prints a table and writes JSON.

    python bench/train_step.py --config tiny
    python bench/train_step.py --config smol --batch 16 --text-batch 8 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from automot_ros.train.trainer import TrainOptions, read_log, train

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "train_step.json"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--batch", type=int, default=16, help="AE stage global batch (default: %(default)s)")
    parser.add_argument("--text-batch", "--projector-batch", dest="text_batch", type=int,
                        help="batch of the text stages, projector and answer (default: --batch)")
    parser.add_argument("--steps", type=int, default=6, help="steps per stage (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    samples = max(2 * args.batch, 2 * (args.text_batch or 0), 32)
    with tempfile.TemporaryDirectory(prefix="automot-bench-train-") as tmp:
        t0 = time.perf_counter()
        summary = train(TrainOptions(config=args.config, data=f"synthetic:{samples}", out=tmp, steps=args.steps,
                                     batch=args.batch, text_batch=args.text_batch, threads=args.threads,
                                     progress=False, release=False, eval_split=None, warmup_steps=0),
                        log=lambda *a, **k: None)
        wall = time.perf_counter() - t0
        rows = read_log(Path(tmp) / "train_log.csv")
    cache = summary["cache"]["train"][0]  # the one synthetic dataset's
    result = {
        "config": args.config, "threads": args.threads, "torch": torch.__version__, "python": platform.python_version(),
        "machine": platform.machine(), "cpus": os.cpu_count(), "load_avg_1min": os.getloadavg()[0],
        "steps_per_stage": args.steps, "wall_s": round(wall, 1),
        "stages": {stage: {"batch": info["batch"], "s_per_step_median": info["s_per_step_median"],
                           "s_per_sample": round(info["s_per_step_median"] / info["batch"], 4)}
                   for stage, info in summary["stages"].items()},
        "cache": {"s_per_context": round(cache["build_s"] / max(1, cache["contexts"]), 4),
                  "mb_per_context": round(cache["bytes"] / max(1, cache["contexts"]) / 1e6, 3),
                  "context_shape": cache["context_shape"]},
        "rows": len(rows),
    }
    print(f"{args.config} ({args.threads} threads, load avg {result['load_avg_1min']:.1f} on {os.cpu_count()} CPUs)")
    for stage, info in result["stages"].items():
        print(f"  {stage:>9}: {info['s_per_step_median']:.3f} s/step at batch {info['batch']} "
              f"({info['s_per_sample']:.3f} s/sample)")
    print(f"  context cache: {result['cache']['s_per_context']:.3f} s and "
          f"{result['cache']['mb_per_context']:.2f} MB per context (incl. loading its samples)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results[args.config] = result
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
