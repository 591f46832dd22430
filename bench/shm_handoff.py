"""Publish-to-read latency of the shared-memory context between two processes.

A writer child (``--role writer``) publishes one context per request from this process,
stamping each with CLOCK_MONOTONIC (system-wide, so comparable across processes) just
before ``ContextWriter.write``. This process busy-polls ``read_latest`` (zero-copy, cheap)
until the new context appears and reports, per read mode (the modes alternate from one
context to the next), the time from that stamp until the context is in hand: a
zero-copy view, or a private copy (``read_slot(..., copy=True)`` of the slot just seen).
Requests are paced ``--interval`` s apart and run in lockstep (the next write is requested
only after the previous context was read), so a read never races a write. The first
``slots`` writes fault in the segment's pages and are not counted.
Default geometry: Qwen3-VL-4B's K/V (36 layers, 8 KV heads, head_dim 128) in float16,
128 tokens = 18 MiB per context.

    python bench/shm_handoff.py [--tokens 128] [--count 100] [--dtype float16]

``measure_handoff`` is also used by bench/stack_latency.py.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src" / "automot_ros"))
from automot_ros.runtime.context_shm import ContextReader, ContextWriter, install_signal_cleanup  # noqa: E402

SLOTS = 3  # ContextWriter's default slot count
READY_TIMEOUT_S = 60.0
READ_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class KVGeometry:
    """Shape and dtype of one K/V context: [layers, 2, kv_heads, tokens, head_dim]."""

    layers: int = 36
    kv_heads: int = 8
    head_dim: int = 128
    tokens: int = 128
    dtype: str = "float16"

    @property
    def shape(self) -> tuple:
        return (self.layers, 2, self.kv_heads, self.tokens, self.head_dim)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize

    def describe(self) -> str:
        return f"{self.layers}x2x{self.kv_heads}x{self.tokens}x{self.head_dim} {self.dtype}"

    def cli_args(self) -> List[str]:
        return ["--layers", str(self.layers), "--kv-heads", str(self.kv_heads), "--head-dim", str(self.head_dim),
                "--tokens", str(self.tokens), "--dtype", self.dtype]


def run_writer(name: str, geometry: KVGeometry) -> None:
    """Child role: create the segment, print READY, then per stdin line write one context
    (stamped just before ``write``) and print the write time in ms; exit on EOF."""
    install_signal_cleanup()  # SIGTERM/SIGINT still unlink the segment
    kv = np.ones(geometry.shape, geometry.dtype)
    with ContextWriter(name, "bench", geometry.layers, geometry.kv_heads, geometry.head_dim,
                       geometry.tokens, geometry.dtype, slots=SLOTS) as writer:
        print("READY", flush=True)
        for _request in sys.stdin:
            start = time.perf_counter()
            writer.write(kv, time.monotonic_ns(), geometry.tokens)
            print(f"{(time.perf_counter() - start) * 1e3:.3f}", flush=True)


class WriterProcess:
    """A ``--role writer`` child of this file and a reader attached to its segment."""

    def __init__(self, name: str, geometry: KVGeometry):
        self.name = name
        self.child = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--role", "writer", "--name", name, *geometry.cli_args()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            line = self.child.stdout.readline().strip()  # blocks until READY or the child dies
            if line != "READY":
                raise RuntimeError(f"shm writer did not start (said {line!r}, exit code {self.child.poll()})")
            self.reader = ContextReader(name)
        except BaseException:
            self.close()
            raise

    def request_write(self) -> None:
        self.child.stdin.write("write\n")
        self.child.stdin.flush()

    def write_ms(self) -> float:
        """The writer's own ``write`` duration for the last request."""
        return float(self.child.stdout.readline())

    def close(self) -> None:
        """End the child (EOF, then SIGTERM, then SIGKILL); it unlinks its segment."""
        reader = getattr(self, "reader", None)
        if reader is not None:
            reader.close()
        if self.child.stdin and not self.child.stdin.closed:
            try:
                self.child.stdin.close()
            except BrokenPipeError:
                pass
        for stop in (None, self.child.terminate, self.child.kill):
            if stop is not None:
                stop()
            try:
                self.child.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                continue
        self.child.stdout.close()

    def __enter__(self) -> "WriterProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def measure_handoff(geometry: KVGeometry, count: int, interval_s: float = 0.05,
                    name: Optional[str] = None) -> Dict[str, List[float]]:
    """Publish ``count`` contexts (after ``SLOTS`` uncounted ones) through a writer child.

    Returns lists in ms: ``write_ms`` (the writer's ``write`` call, every counted
    context), ``view_ms`` and ``copy_ms`` (stamp to zero-copy view / private copy in this
    process; even-numbered contexts are read as views, odd ones copied) and ``torn``
    (views whose slot was overwritten before the check; expected 0).
    """
    name = name or f"automot_bench_{os.getpid()}"
    results: Dict[str, List[float]] = {"write_ms": [], "view_ms": [], "copy_ms": [], "torn": []}
    with WriterProcess(name, geometry) as writer:
        last_seq = 0
        for index in range(SLOTS + count):
            copy = (index - SLOTS) % 2 == 1
            writer.request_write()
            deadline = time.monotonic() + READ_TIMEOUT_S
            while True:
                snapshot = writer.reader.read_latest(copy=False)
                if snapshot is not None and snapshot.seq > last_seq:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no context {last_seq + 1} from the shm writer in {READ_TIMEOUT_S:.0f} s")
            if copy:
                snapshot = writer.reader.read_slot(snapshot.slot, snapshot.seq, copy=True)
            done_ns = time.monotonic_ns()
            if snapshot is None or not snapshot.still_valid():
                results["torn"].append(index)
            last_seq = snapshot.seq if snapshot is not None else last_seq + 1
            write_ms = writer.write_ms()
            if index >= SLOTS and snapshot is not None:
                results["write_ms"].append(write_ms)
                results["copy_ms" if copy else "view_ms"].append((done_ns - snapshot.stamp_ns) / 1e6)
            time.sleep(interval_s)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--role", choices=["reader", "writer"], default="reader",
                   help="reader (default) starts a writer child; writer is that child")
    p.add_argument("--name", default=f"automot_bench_{os.getpid()}", help="shared-memory segment name")
    p.add_argument("--layers", type=int, default=36)
    p.add_argument("--kv-heads", type=int, default=8)
    p.add_argument("--head-dim", type=int, default=128)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    p.add_argument("--count", type=int, default=100, help="contexts measured (half read each way)")
    p.add_argument("--interval", type=float, default=0.05, help="pause between contexts [s]")
    args = p.parse_args()
    geometry = KVGeometry(args.layers, args.kv_heads, args.head_dim, args.tokens, args.dtype)
    if args.role == "writer":
        return run_writer(args.name, geometry)

    results = measure_handoff(geometry, args.count, args.interval, args.name)
    print(f"context {geometry.nbytes / 2**20:.1f} MiB ({geometry.describe()})")
    rows = {"write:": results["write_ms"], "stamp->zero-copy:": results["view_ms"], "stamp->copy:": results["copy_ms"]}
    for label, values in rows.items():
        print(f"{label:18s} median {np.median(values):.2f} ms  p95 {np.percentile(values, 95):.2f} ms  (n={len(values)})")
    if results["torn"]:
        print(f"torn reads: {len(results['torn'])}")


if __name__ == "__main__":
    main()
