"""Publish-to-read latency of the shared-memory context between two processes.

A writer child publishes ``--count`` contexts ``--interval`` s apart, stamping each
with CLOCK_MONOTONIC (system-wide, so comparable across processes) just before
``write``. This process polls ``read_latest`` and reports, per read mode, the time from
that stamp until the context is in hand (zero-copy view, or a private copy).
Default geometry: Qwen3-VL-4B's K/V (36 layers, 8 KV heads, head_dim 128) in float16,
128 tokens = 18 MiB per context.

    python bench/shm_handoff.py [--tokens 128] [--count 100] [--dtype float16]
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src" / "automot_ros"))
from automot_ros.runtime.context_shm import ContextReader, ContextWriter  # noqa: E402


def writer(args) -> None:
    kv = np.ones((args.layers, 2, args.kv_heads, args.tokens, args.head_dim), args.dtype)
    with ContextWriter(args.name, "bench", args.layers, args.kv_heads, args.head_dim,
                       args.tokens, args.dtype) as w:
        print("READY", flush=True)
        sys.stdin.readline()  # the reader is attached
        for _ in range(args.count):
            t0 = time.perf_counter()
            w.write(kv, time.monotonic_ns(), args.tokens)
            print(f"{(time.perf_counter() - t0) * 1e3:.3f}", flush=True)
            time.sleep(args.interval)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--role", choices=["reader", "writer"], default="reader")
    p.add_argument("--name", default=f"automot_bench_{os.getpid()}")
    p.add_argument("--layers", type=int, default=36)
    p.add_argument("--kv-heads", type=int, default=8)
    p.add_argument("--head-dim", type=int, default=128)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--interval", type=float, default=0.05)
    args = p.parse_args()
    if args.role == "writer":
        return writer(args)

    child = subprocess.Popen([sys.executable, __file__, "--role", "writer", *sys.argv[1:], "--name", args.name],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "READY"
        reader = ContextReader(args.name)
        child.stdin.write("go\n")
        child.stdin.flush()
        lat = {"zero-copy": [], "copy": []}
        seen = 0
        while seen < args.count and child.poll() is None:
            mode = "copy" if seen % 2 else "zero-copy"
            snap = reader.read_latest(copy=(mode == "copy"))
            if snap is None or snap.seq == seen:
                continue
            done = time.monotonic_ns()
            if snap.still_valid():
                lat[mode].append((done - snap.stamp_ns) / 1e6)
            seen = snap.seq
        writes = [float(x) for x in child.stdout.read().split()]
        child.wait(timeout=30)
        mib = reader.geometry.tokens_elems * args.tokens * np.dtype(args.dtype).itemsize / 2**20
        print(f"context {mib:.1f} MiB ({args.layers}x2x{args.kv_heads}x{args.tokens}x{args.head_dim} {args.dtype})")
        print(f"write:            median {np.median(writes):.2f} ms  p95 {np.percentile(writes, 95):.2f} ms")
        for mode, xs in lat.items():
            print(f"stamp->{mode + ':':11s} median {np.median(xs):.2f} ms  p95 {np.percentile(xs, 95):.2f} ms  (n={len(xs)})")
        reader.close()
    finally:
        if child.poll() is None:
            child.terminate()
            child.wait(timeout=10)


if __name__ == "__main__":
    main()
