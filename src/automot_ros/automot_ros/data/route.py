"""Route target points: where the route goes next, as the model's navigation input."""

from __future__ import annotations

import numpy as np

from automot_ros.data.ego import EgoState
from automot_ros.errors import InputError

# Target points are taken at fixed arc lengths ahead of the ego's projection on the route,
# so they do not depend on how densely the route happens to be sampled. These two are the
# UE instruction's (model.prompt) and the collection's; the AE's come from its model config
# (action.route_lookahead_m).
DEFAULT_LOOKAHEAD_M = (10.0, 20.0)


def validate_route(route_xy: np.ndarray) -> np.ndarray:
    """A route polyline [N, 2] (N >= 2, finite), in the odometry frame."""
    route_xy = np.asarray(route_xy, dtype=np.float64)
    if route_xy.ndim != 2 or route_xy.shape[1] != 2 or route_xy.shape[0] < 2:
        raise InputError(f"route must be [N>=2, 2] points, got shape {route_xy.shape}")
    if not np.isfinite(route_xy).all():
        raise InputError("route has non-finite points")
    return route_xy


def project_onto_route(route_xy: np.ndarray, xy: np.ndarray):
    """Project points [T, 2] onto the route polyline [N, 2] (each onto its closest segment).

    Returns segment [T] (the segment's index), arc_m [T] (the projection's arc length from
    the route's start) and cumulative_m [N] (the arc length at each route point)."""
    route_xy, xy = np.asarray(route_xy, dtype=np.float64), np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    seg_vec = np.diff(route_xy, axis=0)  # [N-1, 2]
    seg_len = np.linalg.norm(seg_vec, axis=1)
    rel = xy[:, None, :] - route_xy[None, :-1, :]  # [T, N-1, 2]
    t = np.clip(np.einsum("tsk,sk->ts", rel, seg_vec) / np.maximum(seg_len**2, 1e-12), 0.0, 1.0)
    segment = np.argmin(np.linalg.norm(rel - t[..., None] * seg_vec, axis=2), axis=1)
    cumulative = np.concatenate([[0.0], np.cumsum(seg_len)])
    arc = cumulative[segment] + t[np.arange(len(xy)), segment] * seg_len[segment]
    return segment, arc, cumulative


def next_target_points(
    route_xy: np.ndarray, ego: EgoState, lookahead_m: tuple = DEFAULT_LOOKAHEAD_M
) -> np.ndarray:
    """The route points at ``lookahead_m`` arc lengths past the ego, in the ego frame [K, 2].

    The ego is projected onto the closest route segment; points past the route's end clamp
    to its last point (the destination).
    """
    route_xy = validate_route(route_xy)
    _, s_ego, cumulative = project_onto_route(route_xy, [ego.x, ego.y])
    s_targets = np.minimum(s_ego[0] + np.asarray(lookahead_m, dtype=np.float64), cumulative[-1])
    targets = np.stack([np.interp(s_targets, cumulative, route_xy[:, i]) for i in range(2)], axis=1)
    return ego.to_ego_frame(targets)
