"""Wall-clock timing shared by the benchmarks: median and p90 of repeated calls."""

import statistics
import time


def timed(fn, runs: int, warmup: int) -> dict:
    """Call ``fn`` ``warmup`` times untimed, then ``runs`` times: milliseconds per call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return {"median_ms": round(statistics.median(times), 3),
            "p90_ms": round(times[min(len(times) - 1, round(0.9 * (len(times) - 1)))], 3),
            "min_ms": round(times[0], 3), "runs": runs}
