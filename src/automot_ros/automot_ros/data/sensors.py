"""The project's sensor model: images rendered from simulator ground truth (sim/state.py).

Both renderers are deterministic functions of a SimState (OpenCV rasterization without
anti-aliasing, fixed colors, no randomness) and take a few milliseconds at the model sizes.

render_bev(state) -> uint8 [3, H, W], the Action Expert's scene input: an ego-centric
bird's-eye raster, forward up, left on the left. Pixel of an ego-frame point (x forward,
y left): col = (W - 1) / 2 - y / res, row = ego_row - x / res. Default 128 x 256 at
0.5 m/px with the ego center at row 104: 52 m ahead, 12 m behind, 64 m to each side.
Channels (each an intensity code, so the raster also reads as an RGB picture):
  0 road:   0 off-road, 80 road surface, 160 broken lane line, 220 solid line, 255 road edge
  1 route:  255 on the route ahead of the ego (a band one lane wide: 3.5 m)
  2 agents: 255 front half / 180 rear half of every other vehicle's box (gives the
            heading), 100 the ego's own box
Lines are 1 px wide; draw order within a channel: surface, broken, solid, edge.

render_front(state) -> uint8 [H, W, 3] RGB, the Understanding Expert's camera frames: a
pinhole camera (90 deg horizontal FOV, focal W / 2 px, principal point at the center,
no pitch or roll) mounted ``mount_height_m`` above the ego's center, looking along +x.
Sky above the horizon, grass below, then the road surfaces, lane markings (broken lines as
3 m dashes with 3 m gaps), and every agent as a shaded 3-D box (height from the state).
Geometry behind the near plane (1 m) is clipped. Agents are drawn far to near (painter's
algorithm) with back faces culled and a dark outline, each in a color picked by its id.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import List, Tuple

import cv2
import numpy as np

from automot_ros.data.route import project_onto_route
from automot_ros.sim.state import LINE_BROKEN, LINE_EDGE, LINE_SOLID, EgoPose, RoadMap, SimState

_SHIFT = 2  # cv2 fixed-point sub-pixel bits
_SCALE = float(1 << _SHIFT)

ROAD_SURFACE, ROAD_BROKEN, ROAD_SOLID, ROAD_EDGE = 80, 160, 220, 255
ROUTE_VALUE = 255
AGENT_FRONT, AGENT_REAR, EGO_VALUE = 255, 180, 100
ROUTE_WIDTH_M = 3.5
DASH_M, GAP_M = 3.0, 3.0

SKY_RGB = (150, 190, 230)
GRASS_RGB = (86, 120, 70)
ROAD_RGB = (92, 92, 98)
LINE_RGB = {LINE_BROKEN: (235, 235, 235), LINE_SOLID: (240, 240, 240), LINE_EDGE: (250, 250, 250)}
AGENT_PALETTE = ((200, 40, 40), (40, 80, 200), (230, 200, 50), (240, 240, 240), (40, 150, 80),
                 (120, 60, 160), (240, 130, 30), (60, 60, 60))
OUTLINE_RGB = (25, 25, 25)


@dataclass(frozen=True)
class BevSpec:
    height: int = 128
    width: int = 256
    meters_per_px: float = 0.5
    ego_row: float = 104.0  # ego center row; forward is up

    @property
    def extent_m(self) -> Tuple[float, float, float]:
        """(ahead, behind, to each side) in meters."""
        r = self.meters_per_px
        return self.ego_row * r, (self.height - self.ego_row) * r, self.width / 2.0 * r


@dataclass(frozen=True)
class CameraSpec:
    height: int = 128
    width: int = 256
    hfov_deg: float = 90.0
    mount_height_m: float = 1.5
    mount_x_m: float = 0.0  # forward of the ego's center
    near_m: float = 1.0
    far_m: float = 150.0  # geometry beyond is not drawn (it lies within a pixel of the horizon)

    @property
    def focal_px(self) -> float:
        return (self.width / 2.0) / math.tan(math.radians(self.hfov_deg) / 2.0)


DEFAULT_BEV = BevSpec()
DEFAULT_CAMERA = CameraSpec()


# --------------------------------------------------------------------------- helpers


def _view_bounds_world(ego: EgoPose, ahead: float, behind: float, side: float) -> np.ndarray:
    """World AABB (xmin, ymin, xmax, ymax) of the ego-frame rectangle [-behind, ahead] x [-side, side]."""
    c, s = math.cos(ego.yaw), math.sin(ego.yaw)
    corners = np.array([[ahead, side], [ahead, -side], [-behind, side], [-behind, -side]])
    wx = ego.x + c * corners[:, 0] - s * corners[:, 1]
    wy = ego.y + s * corners[:, 0] + c * corners[:, 1]
    return np.array([wx.min(), wy.min(), wx.max(), wy.max()])


def _overlapping(bounds: np.ndarray, view: np.ndarray) -> np.ndarray:
    """Indices of the [L, 4] bounds that overlap the view box."""
    keep = (bounds[:, 0] <= view[2]) & (bounds[:, 2] >= view[0]) & (bounds[:, 1] <= view[3]) & (bounds[:, 3] >= view[1])
    return np.flatnonzero(keep)


def _gather(points: np.ndarray, offsets: np.ndarray, index: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Packed polylines restricted to ``index``: (points, split positions)."""
    if len(index) == 0:
        return np.zeros((0, 2)), np.zeros(0, dtype=np.int64)
    sizes = offsets[index + 1] - offsets[index]
    take = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in index])
    return points[take], np.cumsum(sizes)[:-1]


def route_ahead(route: np.ndarray, ego: EgoPose, behind_m: float = 0.0) -> np.ndarray:
    """The part of the route [R, 2] from ``behind_m`` before the ego's projection onwards."""
    route = np.asarray(route, dtype=np.float64)
    if len(route) < 2:
        return route
    _, s_ego, cumulative = project_onto_route(route, [ego.x, ego.y])
    s0 = max(s_ego[0] - behind_m, 0.0)
    start = np.array([np.interp(s0, cumulative, route[:, k]) for k in range(2)])
    j = int(np.searchsorted(cumulative, s0, side="right"))
    return np.concatenate([start[None], route[j:]])


# --------------------------------------------------------------------------- BEV


def _bev_pixels(ego_xy: np.ndarray, spec: BevSpec) -> np.ndarray:
    """Ego-frame points [..., 2] -> fixed-point pixel coords [..., 2] int32 (col, row)."""
    col = (spec.width - 1) / 2.0 - ego_xy[..., 1] / spec.meters_per_px
    row = spec.ego_row - ego_xy[..., 0] / spec.meters_per_px
    pix = np.stack([col, row], axis=-1) * _SCALE
    return np.clip(np.rint(pix), -(1 << 24), 1 << 24).astype(np.int32)


def _box_corners(boxes: np.ndarray) -> np.ndarray:
    """Corners [A, 4, 2] (front-left, rear-left, rear-right, front-right) of boxes [A, 5]."""
    c, s = np.cos(boxes[:, 4]), np.sin(boxes[:, 4])
    hl, hw = boxes[:, 2] / 2.0, boxes[:, 3] / 2.0
    lx = np.stack([hl, -hl, -hl, hl], axis=1)
    ly = np.stack([hw, hw, -hw, -hw], axis=1)
    return np.stack([boxes[:, :1] + c[:, None] * lx - s[:, None] * ly,
                     boxes[:, 1:2] + s[:, None] * lx + c[:, None] * ly], axis=-1)


def render_bev(state: SimState, spec: BevSpec = DEFAULT_BEV) -> np.ndarray:
    """The ego-centric bird's-eye raster uint8 [3, H, W] (see the module docstring)."""
    ego, road = state.ego, state.road
    h, w = spec.height, spec.width
    road_ch = np.zeros((h, w), np.uint8)
    route_ch = np.zeros((h, w), np.uint8)
    agent_ch = np.zeros((h, w), np.uint8)
    ahead, behind, side = spec.extent_m
    margin = 4.0
    view = _view_bounds_world(ego, ahead + margin, behind + margin, side + margin)

    idx = _overlapping(road.surface_bounds, view)
    if len(idx):
        pts, splits = _gather(road.surface_points, road.surface_offsets, idx)
        # One polygon per call: a multi-polygon fillPoly fills overlaps even-odd (holes).
        for poly in np.split(_bev_pixels(ego.to_ego_frame(pts), spec), splits):
            cv2.fillPoly(road_ch, [poly], ROAD_SURFACE, cv2.LINE_8, _SHIFT)
    idx = _overlapping(road.line_bounds, view)
    for kind, value in ((LINE_BROKEN, ROAD_BROKEN), (LINE_SOLID, ROAD_SOLID), (LINE_EDGE, ROAD_EDGE)):
        sel = idx[road.line_kinds[idx] == kind]
        if len(sel):
            pts, splits = _gather(road.line_points, road.line_offsets, sel)
            cv2.polylines(road_ch, np.split(_bev_pixels(ego.to_ego_frame(pts), spec), splits), False,
                          value, 1, cv2.LINE_8, _SHIFT)

    route = route_ahead(state.route, ego)
    if len(route) >= 2:
        thickness = max(1, int(round(ROUTE_WIDTH_M / spec.meters_per_px)))
        cv2.polylines(route_ch, [_bev_pixels(ego.to_ego_frame(route), spec)], False, ROUTE_VALUE,
                      thickness, cv2.LINE_8, _SHIFT)

    if state.num_agents:
        boxes = ego.boxes_to_ego_frame(state.agent_boxes)
        near = (boxes[:, 0] < ahead + 10) & (boxes[:, 0] > -behind - 10) & (np.abs(boxes[:, 1]) < side + 10)
        boxes = boxes[near]
        if len(boxes):
            corners = _box_corners(boxes)  # [A, 4, 2]
            mid_left, mid_right = corners[:, 0:2].mean(1), corners[:, 2:4].mean(1)
            rear = np.stack([mid_left, corners[:, 1], corners[:, 2], mid_right], axis=1)
            front = np.stack([corners[:, 0], mid_left, mid_right, corners[:, 3]], axis=1)
            for poly in _bev_pixels(rear, spec):
                cv2.fillPoly(agent_ch, [poly], AGENT_REAR, cv2.LINE_8, _SHIFT)
            for poly in _bev_pixels(front, spec):
                cv2.fillPoly(agent_ch, [poly], AGENT_FRONT, cv2.LINE_8, _SHIFT)
    ego_box = np.array([[0.0, 0.0, ego.length, ego.width, 0.0]])
    cv2.fillPoly(agent_ch, list(_bev_pixels(_box_corners(ego_box), spec)), EGO_VALUE, cv2.LINE_8, _SHIFT)
    return np.stack([road_ch, route_ch, agent_ch])


# --------------------------------------------------------------------------- front view


def _clip_polygon_depth(poly: np.ndarray, near: float) -> np.ndarray:
    """Sutherland-Hodgman clip of a polygon [N, D] (column 0 = depth) to depth >= near."""
    inside = poly[:, 0] >= near
    if inside.all():
        return poly
    if not inside.any():
        return poly[:0]
    out: List[np.ndarray] = []
    n = len(poly)
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        ina, inb = inside[i], inside[(i + 1) % n]
        if ina:
            out.append(a)
        if ina != inb:
            t = (near - a[0]) / (b[0] - a[0])
            out.append(a + t * (b - a))
    return np.array(out)


def _clip_segments_depth(seg: np.ndarray, near: float) -> np.ndarray:
    """Segments [K, 2, D] (column 0 = depth) clipped to depth >= near; fully hidden ones dropped."""
    d0, d1 = seg[:, 0, 0], seg[:, 1, 0]
    keep = (d0 >= near) | (d1 >= near)
    seg = seg[keep].copy()
    d0, d1 = seg[:, 0, 0], seg[:, 1, 0]
    for end, other, d_end, d_other in ((0, 1, d0, d1), (1, 0, d1, d0)):
        cut = d_end < near
        if cut.any():
            t = ((near - d_end[cut]) / (d_other[cut] - d_end[cut]))[:, None]
            seg[cut, end] = seg[cut, end] + t * (seg[cut, other] - seg[cut, end])
    return seg


@lru_cache(maxsize=8)
def _line_segments(road: RoadMap) -> Tuple[np.ndarray, np.ndarray]:
    """All lane markings as ground segments [K, 2, 2] (world) with kinds [K]; broken lines
    cut into DASH_M dashes every DASH_M + GAP_M of arc length (cached per map)."""
    segs, kinds = [], []
    period = DASH_M + GAP_M
    for i in range(road.num_lines):
        line = road.line_points[road.line_offsets[i]:road.line_offsets[i + 1]]
        kind = int(road.line_kinds[i])
        if kind == LINE_BROKEN:
            seg_len = np.linalg.norm(np.diff(line, axis=0), axis=1)
            cumulative = np.concatenate([[0.0], np.cumsum(seg_len)])
            total = cumulative[-1]
            for start in np.arange(0.0, total, period):
                s = np.concatenate([[start], cumulative[(cumulative > start) & (cumulative < start + DASH_M)],
                                    [min(start + DASH_M, total)]])
                p = np.stack([np.interp(s, cumulative, line[:, k]) for k in range(2)], axis=1)
                segs.append(np.stack([p[:-1], p[1:]], axis=1))
                kinds.append(np.full(len(p) - 1, kind))
        else:
            segs.append(np.stack([line[:-1], line[1:]], axis=1))
            kinds.append(np.full(len(line) - 1, kind))
    if not segs:
        return np.zeros((0, 2, 2)), np.zeros(0, dtype=np.int64)
    return np.concatenate(segs), np.concatenate(kinds).astype(np.int64)


def _to_camera(ego_xy: np.ndarray, z: np.ndarray, cam: CameraSpec) -> np.ndarray:
    """Ego-frame points [..., 2] and heights [...] -> camera coordinates [..., 3] (depth, left, up)."""
    return np.stack([ego_xy[..., 0] - cam.mount_x_m, ego_xy[..., 1], z - cam.mount_height_m], axis=-1)


def _project(cam_pts: np.ndarray, cam: CameraSpec) -> np.ndarray:
    """Camera points [..., 3] (depth >= near) -> fixed-point pixels [..., 2] int32."""
    f = cam.focal_px
    depth = np.maximum(cam_pts[..., 0], 1e-6)
    u = (cam.width / 2.0 - 0.5) - f * cam_pts[..., 1] / depth
    v = (cam.height / 2.0 - 0.5) - f * cam_pts[..., 2] / depth
    pix = np.stack([u, v], axis=-1) * _SCALE
    return np.clip(np.rint(pix), -(1 << 24), 1 << 24).astype(np.int32)


def _agent_color(agent_id: int) -> Tuple[int, int, int]:
    return AGENT_PALETTE[(int(agent_id) * 2654435761 >> 8) % len(AGENT_PALETTE)]


def render_front(state: SimState, cam: CameraSpec = DEFAULT_CAMERA) -> np.ndarray:
    """The front camera image uint8 [H, W, 3] RGB (see the module docstring)."""
    ego, road = state.ego, state.road
    h, w = cam.height, cam.width
    img = np.empty((h, w, 3), np.uint8)
    horizon = int(round(h / 2.0))
    img[:horizon] = SKY_RGB
    img[horizon:] = GRASS_RGB
    near, far = cam.near_m, cam.far_m
    half_w = far * (cam.width / 2.0) / cam.focal_px
    view = _view_bounds_world(ego, far + cam.mount_x_m, -cam.mount_x_m - near + 0.5, half_w)

    # Road surfaces.
    idx = _overlapping(road.surface_bounds, view)
    if len(idx):
        pts, splits = _gather(road.surface_points, road.surface_offsets, idx)
        cam_pts = _to_camera(ego.to_ego_frame(pts), np.zeros(len(pts)), cam)
        inside = cam_pts[:, 0] >= near
        pix = _project(cam_pts, cam)
        for poly_cam, poly_in, poly_pix in zip(np.split(cam_pts, splits), np.split(inside, splits),
                                               np.split(pix, splits)):
            if not poly_in.all():
                if not poly_in.any():
                    continue
                poly_cam = _clip_polygon_depth(poly_cam, near)
                if len(poly_cam) < 3:
                    continue
                poly_pix = _project(poly_cam, cam)
            cv2.fillPoly(img, [poly_pix], ROAD_RGB, cv2.LINE_8, _SHIFT)  # one per call: overlaps must not cancel

    # Lane markings (ground segments), thicker within 15 m.
    segs, kinds = _line_segments(road)
    if len(segs):
        lo, hi = segs.min(axis=1), segs.max(axis=1)
        keep = (lo[:, 0] <= view[2]) & (hi[:, 0] >= view[0]) & (lo[:, 1] <= view[3]) & (hi[:, 1] >= view[1])
        segs, kinds = segs[keep], kinds[keep]
        cam_seg = _to_camera(ego.to_ego_frame(segs), np.zeros(segs.shape[:2]), cam)
        depth_ok = (cam_seg[:, :, 0] >= near).any(axis=1) & (cam_seg[:, :, 0].min(axis=1) <= far)
        cam_seg, kinds = cam_seg[depth_ok], kinds[depth_ok]
        keep = (cam_seg[:, :, 0] >= near).any(axis=1)
        clipped = _clip_segments_depth(cam_seg, near)
        kinds = kinds[keep]
        pix = _project(clipped, cam)
        close = clipped[:, :, 0].min(axis=1) < 15.0
        for kind, color in LINE_RGB.items():
            for sel, thickness in ((close, 2), (~close, 1)):
                chosen = pix[(kinds == kind) & sel]
                if len(chosen):
                    cv2.polylines(img, list(chosen), False, color, thickness, cv2.LINE_8, _SHIFT)

    # Agents: shaded 3-D boxes, far to near.
    if state.num_agents:
        boxes = ego.boxes_to_ego_frame(state.agent_boxes)
        depth = boxes[:, 0] - cam.mount_x_m
        reach = np.hypot(boxes[:, 2], boxes[:, 3]) / 2.0
        visible = (depth + reach >= near) & (depth - reach <= far) & \
                  (np.abs(boxes[:, 1]) - reach <= (depth + reach) * cam.width / 2.0 / cam.focal_px + 1.0)
        order = [i for i in np.argsort(-np.hypot(depth, boxes[:, 1]), kind="stable") if visible[i]]
        for i in order:
            _draw_box(img, boxes[i], float(state.agent_heights[i]), _agent_color(state.agent_ids[i]), cam)
    return img


def _draw_box(img: np.ndarray, box: np.ndarray, height: float, color, cam: CameraSpec) -> None:
    corners = _box_corners(box[None])[0]  # FL, RL, RR, FR (ground)
    bottom = _to_camera(corners, np.zeros(4), cam)
    top = _to_camera(corners, np.full(4, height), cam)
    camera = np.zeros(3)
    center = np.concatenate([bottom, top]).mean(axis=0)
    # Faces as 3-D polygons with their shading (top brightest, sides by orientation).
    faces = [
        (top, 1.0),
        (np.stack([bottom[0], bottom[3], top[3], top[0]]), 0.8),  # front
        (np.stack([bottom[1], bottom[2], top[2], top[1]]), 0.8),  # rear
        (np.stack([bottom[0], bottom[1], top[1], top[0]]), 0.62),  # left
        (np.stack([bottom[3], bottom[2], top[2], top[3]]), 0.62),  # right
    ]
    for face, shade in faces:
        face_center = face.mean(axis=0)
        outward = face_center - center
        if np.dot(outward, camera - face_center) <= 0.0:  # back face
            continue
        clipped = _clip_polygon_depth(face, cam.near_m)
        if len(clipped) < 3:
            continue
        pix = _project(clipped, cam)
        cv2.fillPoly(img, [pix], tuple(int(c * shade) for c in color), cv2.LINE_8, _SHIFT)
        cv2.polylines(img, [pix], True, OUTLINE_RGB, 1, cv2.LINE_8, _SHIFT)


def bev_to_rgb(bev: np.ndarray) -> np.ndarray:
    """A BEV raster [3, H, W] as an RGB picture [H, W, 3] (road grey, route green, agents blue)."""
    road, route, agents = bev.astype(np.float32)
    rgb = np.stack([road, road, road], axis=-1) * 0.7
    rgb[..., 1] = np.maximum(rgb[..., 1], route * 0.6)
    rgb[..., 2] = np.maximum(rgb[..., 2], agents)
    rgb[agents > 0, :2] *= 0.3
    return np.clip(rgb, 0, 255).astype(np.uint8)


def render_all(state: SimState, bev: BevSpec = DEFAULT_BEV, cam: CameraSpec = DEFAULT_CAMERA,
               ) -> Tuple[np.ndarray, np.ndarray]:
    """(front [H, W, 3], bev [3, H, W]) for one state."""
    return render_front(state, cam), render_bev(state, bev)


__all__ = ["BevSpec", "CameraSpec", "DEFAULT_BEV", "DEFAULT_CAMERA", "render_bev", "render_front",
           "render_all", "bev_to_rgb", "route_ahead"]
