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


def next_target_points(
    route_xy: np.ndarray, ego: EgoState, lookahead_m: tuple = DEFAULT_LOOKAHEAD_M
) -> np.ndarray:
    """The route points at ``lookahead_m`` arc lengths past the ego, in the ego frame [K, 2].

    The ego is projected onto the closest route segment; points past the route's end clamp
    to its last point (the destination).
    """
    route_xy = validate_route(route_xy)
    seg_start, seg_vec = route_xy[:-1], np.diff(route_xy, axis=0)  # [N-1, 2]
    seg_len = np.linalg.norm(seg_vec, axis=1)
    ego_xy = np.array([ego.x, ego.y])
    t = np.clip(np.einsum("ij,ij->i", ego_xy - seg_start, seg_vec) / np.maximum(seg_len**2, 1e-12), 0.0, 1.0)
    closest = seg_start + t[:, None] * seg_vec
    seg = int(np.argmin(np.linalg.norm(closest - ego_xy, axis=1)))
    cumulative = np.concatenate([[0.0], np.cumsum(seg_len)])  # [N] arc length at each vertex
    s_ego = cumulative[seg] + t[seg] * seg_len[seg]
    s_targets = np.minimum(s_ego + np.asarray(lookahead_m, dtype=np.float64), cumulative[-1])
    targets = np.stack([np.interp(s_targets, cumulative, route_xy[:, i]) for i in range(2)], axis=1)
    return ego.to_ego_frame(targets)
