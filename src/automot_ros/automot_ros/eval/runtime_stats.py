"""Runtime summaries of a recorded run: latency, achieved rate, context age, plan status.

Inputs are plain numbers pulled from recorded DrivingPlan messages (inference_ms,
context_age_ms, header stamps, status), so this module needs no ROS.
"""

from __future__ import annotations

import math
from typing import Dict, Iterable

import numpy as np

# DrivingPlan.STATUS_* value -> name (value = index).
STATUS_NAMES = ("OK", "STALE_CONTEXT", "NO_CONTEXT", "INPUT_ERROR")


def _as_array(values: Iterable[float]) -> np.ndarray:
    """Flat float array [M] from an array, a list or a generator (np.asarray cannot read one)."""
    return np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=float).ravel()


def summarize(values: Iterable[float]) -> Dict[str, float]:
    """count, mean, median, p90, p99, min, max of values [M] (e.g. latencies in ms).

    Percentiles interpolate linearly between order statistics (numpy's default), so p99 of
    fewer than 100 values lies between the two largest. All but count are NaN when empty.
    """
    values = _as_array(values)
    if values.size == 0:
        return {"count": 0, **{key: math.nan for key in ("mean", "median", "p90", "p99", "min", "max")}}
    p50, p90, p99 = np.percentile(values, [50.0, 90.0, 99.0])
    return {
        "count": int(values.size),
        "mean": float(values.mean()),
        "median": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "min": float(values.min()),
        "max": float(values.max()),
    }


def rate_summary(stamps_s: Iterable[float]) -> Dict[str, object]:
    """Achieved rate of a stream from its stamps [M] in seconds.

    Returns "rate_hz": (M - 1) / (last - first), the rate actually sustained over the run
    (a mean of per-interval 1/dt would overweight short intervals), and "period_ms": the
    summary of the intervals between consecutive stamps, whose p99 and max show the stalls.
    Stamps are sorted first: recording order can differ from stamp order.
    """
    stamps = np.sort(_as_array(stamps_s))
    span_s = stamps[-1] - stamps[0] if stamps.size >= 2 else 0.0
    return {
        "rate_hz": (stamps.size - 1) / span_s if span_s > 0.0 else math.nan,
        "period_ms": summarize(np.diff(stamps) * 1000.0),
    }


def status_counts(statuses: Iterable[int]) -> Dict[str, int]:
    """Number of plans per status name, every name present (0 when absent)."""
    counts = dict.fromkeys(STATUS_NAMES, 0)
    for status in statuses:
        if not 0 <= int(status) < len(STATUS_NAMES):
            raise ValueError(f"unknown plan status {status}; known: {dict(enumerate(STATUS_NAMES))}")
        counts[STATUS_NAMES[int(status)]] += 1
    return counts
