"""Held-out evaluation (eval/held_out.py, eval/hvi.py) on a hand-built collection: the
constant-velocity baseline is exact on a constant-speed straight drive, a plan into the
lead car scores as a collision, and the QA scoring reads every template."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sim_scenes import write_straight_store

from automot_ros.data.qa import QUESTIONS
from automot_ros.eval.held_out import OpenLoopOptions, constant_velocity_waypoints, run_open_loop, score_waypoints
from automot_ros.eval.open_loop import collision_hits
from automot_ros.eval.hvi import HviOptions, answer_key, is_correct, majority_accuracy, run_hvi


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_straight_store(tmp_path_factory.mktemp("store"))


def test_open_loop_scores_the_model_and_an_exact_constant_velocity_baseline(store, tmp_path):
    metrics = run_open_loop(OpenLoopOptions(data=[str(store)], out=str(tmp_path), model="tiny", checkpoint="none",
                                            threads=1), log=lambda line: None)
    assert metrics["samples"] == 10 and metrics["episodes"] == 1
    cv = metrics["policies"]["constant-velocity"]
    # The held-out episode drives straight at a constant 9 m/s: constant velocity is its future.
    for convention in ("stp3", "uniad"):
        assert cv["l2_m"][convention]["3s"] == pytest.approx(0.0, abs=1e-3)
        assert cv["collision_pct"][convention]["avg"] == 0.0  # the lead car keeps 20 m ahead
    # ... and its path straight ahead is the driven one; nothing turns.
    assert cv["path"]["l2_m"]["avg"] == pytest.approx(0.0, abs=1e-3) and cv["path"]["turn_frames"] == 0
    model = metrics["policies"]["model"]
    assert np.isfinite(model["l2_m"]["stp3"]["avg"]) and model["l2_m"]["stp3"]["avg"] > 0.0  # untrained
    assert set(model["path"]["l2_m"]) == {"5m", "10m", "20m", "avg"} and model["path"]["l2_m"]["20m"] > 0.0
    assert 0.0 <= metrics["meta_action_accuracy_now"]["lateral"] <= 1.0
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["policies"]["constant-velocity"]["l2_m"]["uniad"]["1s"] == pytest.approx(0.0, abs=1e-3)
    report = (tmp_path / "report.md").read_text()
    assert "| constant-velocity | stp3 |" in report and "- constant-velocity: L2 0.00 / 0.00 / 0.00 / 0.00 m" in report
    difference = metrics["collision_model_minus_cv_pct"]["stp3"]
    assert difference["episodes"] == metrics["episodes"]
    assert difference["ci95_low"] <= difference["difference"] <= difference["ci95_high"]
    by_horizon = metrics["collision_model_minus_cv_pct_by_horizon"]
    assert set(by_horizon) == {"1s", "2s", "3s"} and by_horizon["3s"]["uniad"]["episodes"] == metrics["episodes"]
    assert "- uniad: 1s " in report
    assert (tmp_path / "l2_collision.png").stat().st_size > 1000


def test_open_loop_scores_several_collections_as_one_pool(store, tmp_path):
    def run(data, out):
        return run_open_loop(OpenLoopOptions(data=data, out=str(tmp_path / out), model="tiny", checkpoint="none",
                                             threads=1, plots=False), log=lambda line: None)

    one, pooled = run([str(store)], "one"), run([str(store), str(store)], "pooled")
    assert pooled["samples"] == 2 * one["samples"] and pooled["episodes"] == 2
    assert pooled["data"] == [str(store), str(store)]
    # The same collection twice: the same rates, over twice the frames and two episodes.
    for convention in ("stp3", "uniad"):
        assert pooled["policies"]["model"]["l2_m"][convention]["avg"] == pytest.approx(
            one["policies"]["model"]["l2_m"][convention]["avg"])
        assert pooled["policies"]["model"]["collision_pct"][convention]["num_frames"] == \
            2 * one["policies"]["model"]["collision_pct"][convention]["num_frames"]
        assert pooled["collision_model_minus_cv_pct"][convention]["episodes"] == 2


def test_a_plan_into_the_lead_car_is_a_collision():
    gt = constant_velocity_waypoints(np.array([8.0]))
    lead = [np.array([[20.0 + 8.0 * t, 0.0, 4.5, 1.9, 0.0]]) for t in (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)]
    fast = constant_velocity_waypoints(np.array([16.0]))  # catches up with the car 20 m ahead by 2.5 s
    scores = score_waypoints(fast, gt, collision_hits(fast, [lead], gt))
    assert scores["collision_pct"]["uniad"]["1s"] == 0.0 and scores["collision_pct"]["uniad"]["3s"] == 100.0
    assert scores["l2_m"]["uniad"]["3s"] == pytest.approx(24.0)


def test_every_templated_answer_has_a_key_and_scores_itself_correct(store):
    from automot_ros.data.dataset import DrivingDataset

    data = DrivingDataset(store, "all")
    kinds = set()
    for i in range(0, len(data), 7):
        for qa in data[i]["qa"]:
            assert answer_key(qa["kind"], qa["answer"]) is not None, qa
            assert is_correct(qa["kind"], qa["answer"], qa["answer"])
            kinds.add(qa["kind"])
    assert kinds >= {"action", "lead", "nearby", "route", "speed"}
    assert set(QUESTIONS) >= kinds
    assert not is_correct("lead", "No, the path ahead is clear for 60 m.", "Yes, a vehicle 20 m ahead, moving at 9.0 m/s.")
    assert is_correct("speed", "9.6 m/s (35 km/h).", "9.0 m/s (32 km/h).")
    assert not is_correct("speed", "10.5 m/s (38 km/h).", "9.0 m/s (32 km/h).")
    assert not is_correct("action", "The car", "The car should keep its speed and go straight, because the road ahead is clear.")
    assert answer_key("action", "The car should slow down and change to the lane on the left, because it is "
                                "changing lanes.") == ("slow down", "lane change left")


def test_hvi_run_answers_every_question_of_the_picked_samples(store, tmp_path):
    metrics = run_hvi(HviOptions(data=str(store), out=str(tmp_path), model="tiny", checkpoint="none", samples=2,
                                 max_new_tokens=3, threads=1), log=lambda line: None)
    answers = [json.loads(line) for line in (tmp_path / "answers.jsonl").read_text().splitlines()]
    assert metrics["samples"] == 2 and metrics["questions"] == len(answers) >= 10
    assert {a["kind"] for a in answers} == set(metrics["by_kind"])
    assert 0.0 <= metrics["accuracy"] <= 1.0 and json.loads((tmp_path / "hvi.json").read_text())["questions"] == len(answers)


def test_the_most_common_answer_baseline():
    lead = ["Yes, a vehicle 20 m ahead, moving at 9.0 m/s.", "No, the path ahead is clear for 60 m.",
            "No, the path ahead is clear for 60 m."]
    assert majority_accuracy("lead", lead) == pytest.approx(2 / 3)
    speeds = ["9.0 m/s (32 km/h).", "9.5 m/s (34 km/h).", "20.0 m/s (72 km/h)."]
    assert majority_accuracy("speed", speeds) == pytest.approx(2 / 3)  # the median, 9.5, is within 1 m/s of two
