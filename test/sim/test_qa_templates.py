"""Templated QA pairs (data/qa.py): answers and fields follow the ground truth."""

from __future__ import annotations

import numpy as np
from sim_scenes import straight_episode

from automot_ros.data import qa
from automot_ros.data.decisions import LAT_LEFT, LAT_STRAIGHT, LON_ACCELERATE, LON_DECELERATE, LON_KEEP, LON_STOP
from automot_ros.data.samples import build_samples
from automot_ros.sim.state import EgoPose

EGO = EgoPose(0.0, 0.0, 0.0, 8.0, lane_index=1, lane_count=3)
ROUTE = np.array([[-10.0, 0.0], [300.0, 0.0]])
CORRIDOR = np.column_stack([np.arange(2.0, 62.0, 2.0), np.zeros(30)])


def rows(*agents):
    """Agent rows (samples.AGENT_FIELDS) of 4.5 x 1.9 m cars at (x, y) with speed v."""
    return np.array([[i + 1, x, y, 4.5, 1.9, 0.0, v, 1.5] for i, (x, y, v) in enumerate(agents)]).reshape(-1, 8)


def by_kind(records):
    return {r["kind"]: r for r in records}


def labels(lat, lon):
    return np.array([[lat, lon]] * 3)


def test_every_record_has_the_fixed_question_of_its_kind():
    records = qa.qa_pairs(EGO, rows(), ROUTE, labels(LAT_STRAIGHT, LON_KEEP), CORRIDOR)
    assert [r["kind"] for r in records] == ["action", "lead", "nearby", "lane", "route", "speed"]
    for r in records:
        assert r["question"] == qa.QUESTIONS[r["kind"]] and r["answer"].endswith(".")


def test_slowing_for_a_lead_vehicle():
    records = by_kind(qa.qa_pairs(EGO, rows((17.0, 0.2, 3.0)), ROUTE, labels(LAT_STRAIGHT, LON_DECELERATE), CORRIDOR))
    action = records["action"]
    assert action["fields"] == {"lateral": "straight", "longitudinal": "decelerate", "reason": "lead_vehicle"}
    assert "slow down" in action["answer"] and "12 m ahead" in action["answer"]  # 17 m minus half of both cars
    assert records["lead"]["fields"] == {"lead": True, "distance_m": 12.5, "speed_mps": 3.0}
    # The demo's question is the action question: training text matches what the stack asks.
    from automot_ros.cli import DEFAULT_QUESTION
    assert action["question"] == DEFAULT_QUESTION


def test_clear_road_and_reasons():
    records = by_kind(qa.qa_pairs(EGO, rows((8.0, 3.5, 8.0)), ROUTE, labels(LAT_STRAIGHT, LON_KEEP), CORRIDOR))
    assert records["action"]["fields"]["reason"] == "clear_road"
    assert records["lead"]["fields"]["lead"] is False  # the car on the left lane is not in our path
    start = EgoPose(0.0, 0.0, 0.0, 0.2, lane_index=1, lane_count=3)
    assert by_kind(qa.qa_pairs(start, rows(), ROUTE, labels(LAT_STRAIGHT, LON_ACCELERATE), CORRIDOR)
                   )["action"]["fields"]["reason"] == "start"
    stopped = by_kind(qa.qa_pairs(start, rows((7.0, 0.0, 0.0)), ROUTE, labels(LAT_STRAIGHT, LON_STOP), CORRIDOR))
    assert stopped["action"]["fields"]["reason"] == "lead_vehicle" and "standing still" in stopped["lead"]["answer"]
    turn = by_kind(qa.qa_pairs(EGO, rows(), ROUTE, labels(LAT_LEFT, LON_KEEP), CORRIDOR))
    assert turn["action"]["fields"] == {"lateral": "left", "longitudinal": "keep", "reason": "turn"}


def test_nearby_vehicles_and_their_sides():
    agents = rows((10.0, 0.5, 5.0), (-8.0, -0.3, 5.0), (3.0, 3.6, 5.0), (-2.0, 3.4, 5.0), (5.0, -3.5, 5.0),
                  (45.0, 0.0, 5.0))  # the last one is beyond 30 m
    nearby = by_kind(qa.qa_pairs(EGO, agents, ROUTE, labels(LAT_STRAIGHT, LON_KEEP), CORRIDOR))["nearby"]
    assert nearby["fields"] == {"count": 5, "ahead": 1, "behind": 1, "left": 2, "right": 1}
    assert nearby["answer"] == "5 vehicles within 30 m: 1 ahead, 1 behind, 2 on the left, 1 on the right."
    none = by_kind(qa.qa_pairs(EGO, rows(), ROUTE, labels(LAT_STRAIGHT, LON_KEEP), CORRIDOR))["nearby"]
    assert none["fields"]["count"] == 0 and none["answer"] == "No vehicles within 30 m."


def test_lane_speed_and_route_direction():
    records = by_kind(qa.qa_pairs(EGO, rows(), ROUTE, labels(LAT_STRAIGHT, LON_KEEP), CORRIDOR))
    assert records["lane"]["answer"] == "Lane 2 of 3, counting from the left."
    assert records["speed"]["answer"] == "8.0 m/s (29 km/h)." and records["speed"]["fields"] == {"speed_mps": 8.0}
    assert records["route"]["fields"] == {"direction": "straight", "distance_m": None}
    # A right turn 40 m ahead (route heading changes by 90 deg there).
    right = np.array([[-10.0, 0.0], [40.0, 0.0], [40.0, -100.0]])
    route = by_kind(qa.qa_pairs(EGO, rows(), right, labels(LAT_STRAIGHT, LON_KEEP), CORRIDOR))["route"]
    assert route["fields"]["direction"] == "right" and abs(route["fields"]["distance_m"] - 40.0) <= 1.0
    assert route["answer"] == "It turns right in 40 m."
    short = np.array([[-10.0, 0.0], [25.0, 0.0]])
    end = by_kind(qa.qa_pairs(EGO, rows(), short, labels(LAT_STRAIGHT, LON_KEEP), CORRIDOR))["route"]
    assert end["fields"] == {"direction": "destination", "distance_m": 25.0}
    unknown = EgoPose(0.0, 0.0, 0.0, 8.0)
    assert "lane" not in by_kind(qa.qa_pairs(unknown, rows(), ROUTE, labels(LAT_STRAIGHT, LON_KEEP), CORRIDOR))


def test_samples_carry_qa_records():
    arrays, records = build_samples(straight_episode(seconds=5.0))
    assert len(records) == 6 * len(arrays["frame"])
    first = by_kind([r for r in records if r["sample"] == 0])
    assert first["action"]["fields"] == {"lateral": "straight", "longitudinal": "keep", "reason": "clear_road"}
    assert set(first) == set(qa.QUESTIONS)
