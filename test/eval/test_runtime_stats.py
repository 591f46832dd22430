"""Runtime summaries (latency, rate, context age, status) on hand-computed cases."""

import math

import pytest

from automot_ros.eval.runtime_stats import STATUS_NAMES, rate_summary, status_counts, summarize


def test_summary_of_a_distribution():
    # Linear percentiles over 4 values: p90 at position 2.7 -> 30 + 0.7 * 10, p99 at 2.97.
    expected = {"count": 4, "mean": 25.0, "median": 25.0, "p90": 37.0, "p99": 39.7, "min": 10.0, "max": 40.0}
    assert summarize([40.0, 10.0, 30.0, 20.0]) == pytest.approx(expected)
    assert summarize(v for v in (40.0, 10.0, 30.0, 20.0)) == pytest.approx(expected)


def test_summary_of_nothing_has_count_zero_and_nan_values():
    result = summarize([])
    assert result["count"] == 0
    assert all(math.isnan(result[key]) for key in ("mean", "median", "p90", "p99", "min", "max"))


def test_rate_from_unsorted_stamps():
    # Sorted: 0, 0.1, 0.2, 0.4 s -> 3 intervals over 0.4 s = 7.5 Hz; periods 100, 100, 200 ms.
    result = rate_summary([0.2, 0.0, 0.4, 0.1])
    assert result["rate_hz"] == pytest.approx(7.5)
    assert result["period_ms"] == pytest.approx(
        {"count": 3, "mean": 400.0 / 3, "median": 100.0, "p90": 180.0, "p99": 198.0, "min": 100.0, "max": 200.0}
    )
    single = rate_summary([1.0])
    assert math.isnan(single["rate_hz"]) and single["period_ms"]["count"] == 0


def test_status_counts_by_name():
    assert status_counts([0, 0, 1, 3]) == {"OK": 2, "STALE_CONTEXT": 1, "NO_CONTEXT": 0, "INPUT_ERROR": 1}
    with pytest.raises(ValueError, match="unknown plan status 7"):
        status_counts([0, 7])
    plan = pytest.importorskip("automot_msgs.msg").DrivingPlan
    assert [getattr(plan, f"STATUS_{name}") for name in STATUS_NAMES] == list(range(len(STATUS_NAMES)))
