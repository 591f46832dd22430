"""Templated question/answer pairs from simulator ground truth (LingoQA-style training text).

Every pair carries ``fields``: the facts its answer states, so an answer can be scored per
field (DESIGN.md section 5: the action, the reason, the count). Kinds and their fields:

| kind | question | fields |
| --- | --- | --- |
| action | "What should the car do next, and why?" | lateral, longitudinal (meta-action names, "now"), reason |
| lead | "Is there a vehicle ahead in our path?" | lead (bool), distance_m, speed_mps |
| nearby | "Which vehicles are near us, and on which side?" | count, ahead, behind, left, right |
| lane | "Which lane are we in?" | lane (1 = leftmost), lanes |
| route | "Where does the route go next?" | direction (straight/left/right/destination), distance_m |
| speed | "How fast are we going?" | speed_mps (0.1 m/s) |

Definitions (ego frame, x forward, y left):
- In our path: an agent whose center lies within PATH_HALF_WIDTH_M of the ego's driven path
  over the next CORRIDOR_M of arc length; the lead vehicle is the nearest such agent ahead.
- Near: within NEAR_M of the ego's center. Side: |y| < SAME_LANE_HALF_WIDTH_M is ahead
  (x > 0) or behind; otherwise left (y > 0) or right.
- Route direction: walking the route ahead of the ego, the first point where the route's
  heading differs from its heading at the ego by TURN_DEG or more is a turn to that side;
  its distance is where the heading change first reached BEND_START_DEG. Without a turn
  within ROUTE_LOOKAHEAD_M, "straight"; a route ending within it, "destination".
- Reason of the action (first rule that holds):
  stop: lead within STOP_LEAD_M -> "lead_vehicle", else "standstill";
  decelerate: lead within the following distance (max(FOLLOW_MIN_M, FOLLOW_S x speed)) ->
  "lead_vehicle"; a turn (lateral left/right now, or a route turn within TURN_NEAR_M) ->
  "turn"; else "other";
  accelerate: speed < START_SPEED_MPS -> "start"; lead within the following distance ->
  "lead_vehicle"; else "clear_road";
  keep: lead within the following distance -> "lead_vehicle", else "clear_road";
  and the lateral part: left/right -> "turn" (follows the route), slight -> "lane_change" when
  the ego changes lane within 1 s, else "bend".
"""

from __future__ import annotations

from typing import Dict, List

import numpy as np

from automot_ros.data.decisions import (
    LAT_LEFT,
    LAT_RIGHT,
    LAT_SLIGHT_LEFT,
    LAT_SLIGHT_RIGHT,
    LAT_STRAIGHT,
    LATERAL_NAMES,
    LON_ACCELERATE,
    LON_DECELERATE,
    LON_KEEP,
    LON_STOP,
    LONGITUDINAL_NAMES,
)
from automot_ros.data.sensors import route_ahead
from automot_ros.sim.state import EgoPose

QUESTIONS = {
    "action": "What should the car do next, and why?",
    "lead": "Is there a vehicle ahead in our path?",
    "nearby": "Which vehicles are near us, and on which side?",
    "lane": "Which lane are we in?",
    "route": "Where does the route go next?",
    "speed": "How fast are we going?",
}
REASONS = ("lead_vehicle", "standstill", "turn", "start", "clear_road", "lane_change", "bend", "other")

PATH_HALF_WIDTH_M = 1.8
CORRIDOR_M = 60.0
NEAR_M = 30.0
SAME_LANE_HALF_WIDTH_M = 1.75
STOP_LEAD_M = 15.0
FOLLOW_MIN_M = 20.0
FOLLOW_S = 3.0
START_SPEED_MPS = 1.0
TURN_NEAR_M = 30.0
TURN_DEG = 45.0
BEND_START_DEG = 10.0
ROUTE_LOOKAHEAD_M = 80.0


def lead_vehicle(agent_rows: np.ndarray, pose: EgoPose, corridor_ego: np.ndarray):
    """(distance along the path m, speed m/s) of the nearest agent in the ego's path, or None.

    agent_rows [A, 8] (samples.AGENT_FIELDS, world); corridor_ego [P, 2]: the driven path
    ahead in the ego frame (starting near the origin).
    """
    if len(agent_rows) == 0 or len(corridor_ego) < 1:
        return None
    path = np.concatenate([np.zeros((1, 2)), corridor_ego])
    seg = np.diff(path, axis=0)
    seg_len = np.linalg.norm(seg, axis=1)
    cumulative = np.concatenate([[0.0], np.cumsum(seg_len)])
    centers = pose.to_ego_frame(agent_rows[:, 1:3])  # [A, 2]
    best = None
    for center, row in zip(centers, agent_rows):
        rel = center - path[:-1]
        t = np.clip(np.einsum("ij,ij->i", rel, seg) / np.maximum(seg_len**2, 1e-12), 0.0, 1.0)
        closest = path[:-1] + t[:, None] * seg
        dist = np.linalg.norm(closest - center, axis=1)
        i = int(np.argmin(dist))
        s = cumulative[i] + t[i] * seg_len[i]
        if dist[i] <= PATH_HALF_WIDTH_M and 0.0 < s <= CORRIDOR_M and center[0] > 0.0:
            gap = max(s - (pose.length + row[3]) / 2.0, 0.0)  # bumper to bumper
            if best is None or gap < best[0]:
                best = (float(gap), float(row[6]))
    return best


def nearby_sides(agent_rows: np.ndarray, pose: EgoPose) -> Dict[str, int]:
    counts = {"ahead": 0, "behind": 0, "left": 0, "right": 0}
    if len(agent_rows):
        local = pose.to_ego_frame(agent_rows[:, 1:3])
        for x, y in local[np.hypot(local[:, 0], local[:, 1]) <= NEAR_M]:
            if abs(y) < SAME_LANE_HALF_WIDTH_M:
                counts["ahead" if x > 0 else "behind"] += 1
            else:
                counts["left" if y > 0 else "right"] += 1
    return counts


def route_direction(route: np.ndarray, pose: EgoPose):
    """("straight" | "left" | "right" | "destination", distance m or None)."""
    ahead = route_ahead(route, pose)
    if len(ahead) < 2:
        return "destination", 0.0
    seg = np.linalg.norm(np.diff(ahead, axis=0), axis=1)
    cumulative = np.concatenate([[0.0], np.cumsum(seg)])
    total = cumulative[-1]
    s = np.arange(0.0, min(total, ROUTE_LOOKAHEAD_M) + 1e-9, 1.0)
    if len(s) < 3:
        return "destination", float(total)
    pts = np.stack([np.interp(s, cumulative, ahead[:, i]) for i in range(2)], axis=1)
    d = np.diff(pts, axis=0)
    heading = np.unwrap(np.arctan2(d[:, 1], d[:, 0]))
    change = np.degrees(heading - heading[0])
    turn = np.flatnonzero(np.abs(change) >= TURN_DEG)
    if len(turn):
        start = np.flatnonzero(np.abs(change[:turn[0] + 1]) >= BEND_START_DEG)[0]
        return ("left" if change[turn[0]] > 0 else "right"), float(s[start])
    if total <= ROUTE_LOOKAHEAD_M:
        return "destination", float(total)
    return "straight", None


def _action_reason(labels: np.ndarray, speed: float, lead, route_dir, lane_change: int) -> str:
    lateral, longitudinal = int(labels[0, 0]), int(labels[0, 1])
    follow = max(FOLLOW_MIN_M, FOLLOW_S * speed)
    has_lead = lead is not None and lead[0] <= follow
    turning = lateral in (LAT_LEFT, LAT_RIGHT) or (
        route_dir[0] in ("left", "right") and route_dir[1] is not None and route_dir[1] <= TURN_NEAR_M)
    if longitudinal == LON_STOP:
        return "lead_vehicle" if lead is not None and lead[0] <= STOP_LEAD_M else "standstill"
    if longitudinal == LON_DECELERATE:
        return "lead_vehicle" if has_lead else ("turn" if turning else "other")
    if longitudinal == LON_ACCELERATE:
        if speed < START_SPEED_MPS:
            return "start"
        return "lead_vehicle" if has_lead else "clear_road"
    if has_lead:
        return "lead_vehicle"
    if lateral in (LAT_LEFT, LAT_RIGHT):
        return "turn"
    if lateral in (LAT_SLIGHT_LEFT, LAT_SLIGHT_RIGHT):
        return "lane_change" if lane_change else "bend"
    return "clear_road"


_LATERAL_TEXT = {LAT_STRAIGHT: "go straight", LAT_SLIGHT_LEFT: "bear slightly left", LAT_LEFT: "turn left",
                 LAT_SLIGHT_RIGHT: "bear slightly right", LAT_RIGHT: "turn right"}
_LONGITUDINAL_TEXT = {LON_STOP: "stop", LON_DECELERATE: "slow down", LON_KEEP: "keep its speed",
                      LON_ACCELERATE: "speed up"}


def _action_answer(labels: np.ndarray, reason: str, lead, lane_change: int) -> str:
    lateral, longitudinal = int(labels[0, 0]), int(labels[0, 1])
    lat_text = _LATERAL_TEXT[lateral]
    if lateral in (LAT_SLIGHT_LEFT, LAT_SLIGHT_RIGHT) and lane_change:
        lat_text = "change to the lane on the " + ("left" if lane_change > 0 else "right")
    action = f"The car should {_LONGITUDINAL_TEXT[longitudinal]} and {lat_text}"
    because = {
        "lead_vehicle": (f"there is a vehicle {lead[0]:.0f} m ahead in its path" if lead else "a vehicle is ahead"),
        "standstill": "it is standing still",
        "turn": "the route turns here",
        "start": "it is starting from a standstill and the way is free",
        "clear_road": "the road ahead is clear",
        "lane_change": "it is changing lanes",
        "bend": "the road bends",
        "other": "of the road ahead",
    }[reason]
    return f"{action}, because {because}."


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def qa_pairs(pose: EgoPose, agent_rows: np.ndarray, route: np.ndarray, labels: np.ndarray,
             corridor_ego: np.ndarray, lane_change: int = 0) -> List[dict]:
    """The QA records (kind, question, answer, fields) of one sample; see the module docstring."""
    speed = float(pose.speed_mps)
    lead = lead_vehicle(agent_rows, pose, corridor_ego)
    route_dir = route_direction(route, pose)
    reason = _action_reason(labels, speed, lead, route_dir, lane_change)
    records = [{
        "kind": "action",
        "answer": _action_answer(labels, reason, lead, lane_change),
        "fields": {"lateral": LATERAL_NAMES[int(labels[0, 0])], "longitudinal": LONGITUDINAL_NAMES[int(labels[0, 1])],
                   "reason": reason},
    }]
    if lead is None:
        records.append({"kind": "lead", "answer": f"No, the path ahead is clear for {CORRIDOR_M:.0f} m.",
                        "fields": {"lead": False, "distance_m": None, "speed_mps": None}})
    else:
        moving = f"moving at {lead[1]:.1f} m/s" if lead[1] >= 0.5 else "standing still"
        records.append({"kind": "lead", "answer": f"Yes, a vehicle {lead[0]:.0f} m ahead, {moving}.",
                        "fields": {"lead": True, "distance_m": round(lead[0], 1), "speed_mps": round(lead[1], 1)}})
    sides = nearby_sides(agent_rows, pose)
    count = sum(sides.values())
    if count == 0:
        nearby = f"No vehicles within {NEAR_M:.0f} m."
    else:
        parts = [f"{n} {where}" if where in ("ahead", "behind") else f"{n} on the {where}"
                 for where, n in sides.items() if n]
        nearby = f"{_plural(count, 'vehicle')} within {NEAR_M:.0f} m: " + ", ".join(parts) + "."
    records.append({"kind": "nearby", "answer": nearby, "fields": {"count": count, **sides}})
    if pose.lane_index >= 0 and pose.lane_count > 0:
        records.append({"kind": "lane",
                        "answer": f"Lane {pose.lane_index + 1} of {pose.lane_count}, counting from the left.",
                        "fields": {"lane": pose.lane_index + 1, "lanes": pose.lane_count}})
    direction, distance = route_dir
    if direction == "straight":
        route_text = f"Straight on for at least the next {ROUTE_LOOKAHEAD_M:.0f} m."
    elif direction == "destination":
        route_text = f"Straight on to the destination, {distance:.0f} m ahead."
    else:
        route_text = f"It turns {direction} in {distance:.0f} m."
    records.append({"kind": "route", "answer": route_text,
                    "fields": {"direction": direction, "distance_m": None if distance is None else round(distance, 1)}})
    records.append({"kind": "speed", "answer": f"{speed:.1f} m/s ({speed * 3.6:.0f} km/h).",
                    "fields": {"speed_mps": round(speed, 1)}})
    for record in records:
        record["question"] = QUESTIONS[record["kind"]]
    return [{"kind": r["kind"], "question": r["question"], "answer": r["answer"], "fields": r["fields"]}
            for r in records]


__all__ = ["QUESTIONS", "REASONS", "qa_pairs", "lead_vehicle", "nearby_sides", "route_direction"]
