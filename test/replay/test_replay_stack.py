"""`automot replay` end to end, in real processes (tiny model): a generated bag is played into
the stack, its plans are recorded and scored into a report; a truncated bag gives a clear
error while everything before the cut is still played and scored."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from automot_ros.data.synthetic_bag import write_synthetic_bag

pytestmark = pytest.mark.slow
TIMEOUT_S = 150


def replay_command(bag, out, namespace, *extra):
    return [sys.executable, "-m", "automot_ros.cli", "replay", str(bag), "--out", str(out), "--model", "tiny",
            "--namespace", namespace, "--remap", f"/automot/:={namespace}/", "--drain", "3", *extra]


def segment_of(namespace: str) -> Path:
    return Path("/dev/shm") / f"automot_context{namespace.replace('/', '_')}"


def test_replay_starts_the_stack_records_plans_and_writes_the_report(tmp_path, start_process):
    namespace = f"/automot_replay_{os.getpid()}"
    bag = tmp_path / "synthetic"
    # 8 s: the last 3 s have no future to score, and the stack's first context can take a DDS
    # discovery round (up to ~3 s on a loaded machine) to reach the action node.
    write_synthetic_bag(bag, duration_s=8.0, image_size=(64, 128), storage="sqlite3")
    out = tmp_path / "out"
    replay = start_process(replay_command(bag, out, namespace))
    assert replay.popen.wait(timeout=TIMEOUT_S) == 0, replay.output()[-4000:]
    text = replay.output()
    assert "starting the stack" in text and "replay summary (SYNTHETIC bag)" in text and "L2 [m]" in text

    metrics = json.loads((out / "metrics.json").read_text())
    frames = metrics["frames"]
    assert frames["camera_frames_published"] == 161
    assert frames["coverage"] >= 0.9, frames  # a plan for (nearly) every synchronized frame
    assert frames["plans_with_trajectory"] >= 60 and metrics["l2_m"]["num_frames"] >= 30, frames
    for convention in ("stp3", "uniad"):
        assert all(metrics["l2_m"][convention][h] >= 0 for h in ("1s", "2s", "3s", "avg"))
    assert metrics["collision_pct"]["available"] and metrics["collision_pct"]["num_frames"] >= 30
    assert metrics["meta_actions"]["num_frames"] >= 30 and 0 <= metrics["meta_actions"]["joint"] <= 1
    runtime = metrics["runtime"]
    assert runtime["status_counts"]["OK"] >= 60 and runtime["context"]["count"] >= 3
    assert runtime["context"]["model_id"].startswith("tiny") and runtime["inference_ms"]["median"] > 0
    assert 15.0 <= runtime["plan_rate"]["bag_time"]["rate_hz"] <= 21.0
    assert metrics["replay"]["synthetic"] and metrics["replay"]["bag_error"] is None
    for name in ("report.md", "frames.csv", "replay.json", "plots/l2_over_time.png", "plots/latency_hist.png",
                 "plots/bev_overlay.png", "recorded/metadata.yaml"):
        assert (out / name).stat().st_size > 0, name
    assert not segment_of(namespace).exists()  # the started stack was stopped cleanly

    # Scoring needs only the output directory and the input bag: re-scoring gives the same numbers.
    (out / "metrics.json").unlink()
    rescore = start_process([sys.executable, "-m", "automot_ros.cli", "replay", "--score-only", str(out),
                             "--no-plots"])
    assert rescore.popen.wait(timeout=60) == 0, rescore.output()[-3000:]
    again = json.loads((out / "metrics.json").read_text())
    assert again["l2_m"] == metrics["l2_m"] and again["runtime"] == metrics["runtime"]


def test_replay_of_a_truncated_bag_into_a_running_stack_scores_what_was_read(tmp_path, start_process, rclpy_node):
    namespace = f"/automot_replay_cut_{os.getpid()}"
    drive = start_process([sys.executable, "-m", "automot_ros.cli", "drive", "--model", "tiny",
                           "--namespace", namespace])
    bag = tmp_path / "cut"
    write_synthetic_bag(bag, duration_s=10.0, image_size=(64, 128), storage="mcap")
    data_file = bag / "cut.mcap"
    os.truncate(data_file, int(data_file.stat().st_size * 0.6))  # as a killed recorder leaves it
    cameras = [f"{namespace}/camera/{name}/image_raw" for name in ("front", "bev")]  # the UE's and the AE's
    assert rclpy_node.spin_until(lambda: all(rclpy_node.count_subscribers(c) >= 1 for c in cameras), 90.0), \
        drive.output()[-3000:]

    out = tmp_path / "out"
    replay = start_process(replay_command(bag, out, namespace, "--no-start-stack"))
    assert replay.popen.wait(timeout=TIMEOUT_S) == 3, replay.output()[-4000:]
    text = replay.output()
    assert "attached to the running stack" in text
    assert f"ERROR: {data_file} is truncated or corrupt" in text, text[-3000:]
    assert "the messages before the damage were played and are scored" in text

    metrics = json.loads((out / "metrics.json").read_text())
    published = metrics["frames"]["camera_frames_published"]
    assert 60 <= published < 201, published  # a 10 s bag at 20 Hz has 201 frames; 60% of it was kept
    assert metrics["frames"]["coverage"] >= 0.9
    assert metrics["l2_m"]["num_frames"] >= 5 and metrics["meta_actions"]["num_frames"] >= 5
    assert "truncated or corrupt" in metrics["replay"]["bag_error"]
    assert "Bag error" in (out / "report.md").read_text()
    assert drive.alive()
    assert drive.stop() == 0
    assert not segment_of(namespace).exists()


def test_replay_into_no_running_stack_waits_the_startup_timeout_and_fails_clearly(tmp_path, start_process):
    namespace = f"/automot_replay_none_{os.getpid()}"
    bag = tmp_path / "bag"
    write_synthetic_bag(bag, duration_s=2.0, image_size=(64, 128), storage="mcap")
    replay = start_process(replay_command(bag, tmp_path / "out", namespace, "--no-start-stack",
                                          "--startup-timeout", "4"))
    assert replay.popen.wait(timeout=60) == 1, replay.output()[-3000:]
    text = replay.output()
    assert "looking for a running stack" in text and "(up to 4 s)" in text, text[-3000:]
    assert "no stack answered on" in text and "within 4 s (and --no-start-stack)" in text, text[-3000:]
    assert "starting the stack" not in text and not segment_of(namespace).exists()
