"""Child process for the context_shm tests (not a test module).

Usage: shm_proc.py MODE NAME [SECONDS]. Prints one line on stdout once set up.

- hold:   create a writer, publish one context, install the signal cleanup, print
          "READY <generation>", sleep until a signal arrives.
- exit:   create a writer and exit normally without close() (atexit must unlink).
- stress: create a writer and publish self-checking contexts as fast as possible for
          SECONDS (or until SIGTERM): seq s carries n = 1 + s % MAX_TOKENS tokens all
          equal to float(s), stamp_ns = 1000 * s, next_position = 7 * s.
- read:   attach a reader, read the latest context, print "READ <seq>", exit without
          close() (the segment must survive).
"""

import signal
import sys
import time

import numpy as np

from automot_ros.runtime.context_shm import ContextReader, ContextWriter, install_signal_cleanup

# Geometry shared with test_context_shm.py.
SMALL = dict(num_layers=2, kv_heads=2, head_dim=8, max_tokens=16)
STRESS = dict(num_layers=4, kv_heads=2, head_dim=64, max_tokens=128)


def stress_kv(seq: int) -> np.ndarray:
    n = 1 + seq % STRESS["max_tokens"]
    return np.full((STRESS["num_layers"], 2, STRESS["kv_heads"], n, STRESS["head_dim"]), seq, np.float32)


def main(mode: str, name: str, seconds: float = 10.0) -> None:
    if mode == "read":
        snap = ContextReader(name).read_latest()
        print("READ", snap.seq if snap else 0, flush=True)
        return
    if mode == "exit":
        ContextWriter(name, "test-model", **SMALL)
        print("CREATED", flush=True)
        return
    # A process started in the background (CI) may inherit SIGINT ignored, which the cleanup
    # rightly leaves alone; these modes test the default (KeyboardInterrupt) case.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    install_signal_cleanup()
    if mode == "hold":
        w = ContextWriter(name, "test-model", **SMALL)
        w.write(np.ones((2, 2, 2, 3, 8), np.float32), 42, 3)
        print("READY", w.generation, flush=True)
        while True:
            time.sleep(1)
    if mode == "stress":
        w = ContextWriter(name, "stress-model", dtype=np.float32, slots=3, **STRESS)
        print("READY", w.generation, flush=True)
        end = time.monotonic() + seconds
        seq = 0
        while time.monotonic() < end:
            seq += 1
            w.write(stress_kv(seq), 1000 * seq, 7 * seq)
        w.close()
        return
    raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *map(float, sys.argv[3:]))
