"""The sensor model (data/sensors.py) on hand-built states: deterministic, geometrically right, fast."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sim_scenes import scene

from automot_ros.data import sensors
from automot_ros.data.sensors import BevSpec, CameraSpec, render_bev, render_front, route_ahead
from automot_ros.sim.state import EgoPose

BEV = BevSpec()
CAM = CameraSpec()


def bev_pixel(x: float, y: float):
    """(row, col) of an ego-frame point in the default raster."""
    return int(round(BEV.ego_row - x / BEV.meters_per_px)), int(round((BEV.width - 1) / 2 - y / BEV.meters_per_px))


def test_renders_are_deterministic_and_sized_like_the_model_inputs():
    state = scene(agents=[(15.0, 0.0, 0.0), (5.0, 3.5, 0.1), (-8.0, -3.5, 0.0)])
    bev, front = render_bev(state), render_front(state)
    assert bev.shape == (3, 128, 256) and bev.dtype == np.uint8  # smol's action.scene.image_size
    assert front.shape == (128, 256, 3) and front.dtype == np.uint8  # smol's vision.image_size
    np.testing.assert_array_equal(bev, render_bev(scene(agents=[(15.0, 0.0, 0.0), (5.0, 3.5, 0.1),
                                                                (-8.0, -3.5, 0.0)])))
    np.testing.assert_array_equal(front, render_front(state))
    small = render_bev(state, BevSpec(64, 128, 1.0, 52.0))
    assert small.shape == (3, 64, 128)


def test_bev_agent_ahead_is_centered_above_the_ego_and_left_agent_on_the_left():
    bev = render_bev(scene(agents=[(15.0, 0.0, 0.0), (2.0, 7.0, 0.0)]))
    agents = bev[2]
    row, col = bev_pixel(15.0, 0.0)
    assert agents[row, col] in (sensors.AGENT_FRONT, sensors.AGENT_REAR)
    # Its front half (toward +x, up in the raster) is the brighter one: the heading reads.
    assert agents[bev_pixel(16.5, 0.0)] == sensors.AGENT_FRONT and agents[bev_pixel(13.5, 0.0)] == sensors.AGENT_REAR
    assert agents[bev_pixel(0.0, 0.0)] == sensors.EGO_VALUE
    ys, xs = np.nonzero(agents == sensors.AGENT_FRONT)
    left = xs < (BEV.width - 1) / 2 - 5
    assert left.any() and np.all(xs[left] < 128 - 10)  # the y = +7 m car lies left of the center
    assert agents[bev_pixel(2.0, 7.0)] > 0 and agents[bev_pixel(2.0, -7.0)] == 0


def test_bev_road_lines_and_route():
    bev = render_bev(scene())
    road, route = bev[0], bev[1]
    assert road[bev_pixel(10.0, 0.8)] == sensors.ROAD_SURFACE
    assert road[bev_pixel(10.0, 30.0)] == 0  # off the road
    assert road[bev_pixel(10.0, 1.75)] == sensors.ROAD_BROKEN  # between the ego and left lanes
    assert road[bev_pixel(10.0, 3.5 + 1.75)] == sensors.ROAD_SOLID  # the left lane's outer solid line
    assert road[bev_pixel(10.0, -3.5 - 1.75)] == sensors.ROAD_EDGE
    assert route[bev_pixel(20.0, 0.0)] == sensors.ROUTE_VALUE
    assert route[bev_pixel(-6.0, 0.0)] == 0  # only the route ahead is drawn
    assert route[bev_pixel(20.0, 3.5)] == 0
    # A route turning left at x = 20 m is drawn up the left side.
    turning = render_bev(scene(route=np.array([[-10.0, 0.0], [20.0, 0.0], [20.0, 40.0]])))[1]
    assert turning[bev_pixel(20.0, 20.0)] == sensors.ROUTE_VALUE and turning[bev_pixel(40.0, 0.0)] == 0


def test_bev_follows_the_ego_pose():
    """The same world seen by an ego rotated 90 deg: a car north of it is ahead."""
    ego = EgoPose(100.0, 50.0, np.pi / 2, 5.0)
    bev = render_bev(scene(agents=[(100.0, 65.0, np.pi / 2)], ego=ego, route=np.array([[100.0, 0.0], [100.0, 300.0]])))
    assert bev[2][bev_pixel(15.0, 0.0)] > 0 and bev[1][bev_pixel(20.0, 0.0)] == sensors.ROUTE_VALUE


def _is_background(pixels: np.ndarray) -> np.ndarray:
    colors = np.array([sensors.SKY_RGB, sensors.GRASS_RGB, sensors.ROAD_RGB] + list(sensors.LINE_RGB.values()))
    return (np.abs(pixels[..., None, :].astype(int) - colors).sum(-1) == 0).any(-1)


def test_front_view_agent_ahead_in_lower_center_and_left_agent_on_the_left():
    empty = render_front(scene())
    assert (empty[:50] == sensors.SKY_RGB).all()  # above the horizon: sky only
    assert (empty[120, 120:136] == sensors.ROAD_RGB).all()  # straight below: the ego's lane
    ahead = render_front(scene(agents=[(15.0, 0.0, 0.0)]))
    changed = np.nonzero((ahead != empty).any(-1))
    rows, cols = changed
    assert len(rows) > 50
    # Box 15 m ahead, 1.5 m tall, camera 1.5 m high: from the horizon (row 63.5) down to
    # 63.5 + 128 * 1.5 / 15 ~ 76 (bottom), +-8 px around the center column.
    assert 60 <= rows.min() and rows.max() <= 80 and 115 <= cols.min() and cols.max() <= 140
    assert not _is_background(ahead[70, 127])
    left = render_front(scene(agents=[(12.0, 5.0, 0.0)]))
    rows, cols = np.nonzero((left != empty).any(-1))
    assert cols.max() < 128 and rows.min() >= 55
    behind = render_front(scene(agents=[(-10.0, 0.0, 0.0)]))
    np.testing.assert_array_equal(behind, empty)  # behind the camera: not drawn


def test_front_view_near_agent_hides_the_far_one():
    near_id, far_id = 1, 2
    assert sensors._agent_color(near_id) != sensors._agent_color(far_id)
    both = render_front(scene(agents=[(12.0, 0.0, 0.0), (30.0, 0.0, 0.0)], ids=[near_id, far_id],
                              heights=[1.5, 3.0]))
    near_only = render_front(scene(agents=[(12.0, 0.0, 0.0)], ids=[near_id], heights=[1.5]))
    # Where the near box is drawn, it is drawn over the far one (painter's order, far first).
    drawn = (near_only != render_front(scene())).any(-1)
    np.testing.assert_array_equal(both[drawn], near_only[drawn])
    # The far box, taller, still shows above the near one.
    assert (both[:64] != near_only[:64]).any()
    # Order of the agents in the state does not matter.
    swapped = render_front(scene(agents=[(30.0, 0.0, 0.0), (12.0, 0.0, 0.0)], ids=[far_id, near_id],
                                 heights=[3.0, 1.5]))
    np.testing.assert_array_equal(both, swapped)


def test_front_view_clips_geometry_crossing_the_camera_plane():
    # An agent alongside (its box spans the camera plane) and a road starting behind the ego.
    img = render_front(scene(agents=[(0.5, 3.2, 0.0)]))
    assert img.shape == (128, 256, 3)
    assert not _is_background(img[100, 5:40]).all()  # the car alongside fills the left edge


def test_route_ahead_starts_at_the_egos_projection():
    route = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]])
    ahead = route_ahead(route, EgoPose(4.0, 0.5, 0.0, 0.0))
    np.testing.assert_allclose(ahead, [[4.0, 0.0], [10.0, 0.0], [10.0, 10.0]])
    np.testing.assert_allclose(route_ahead(route, EgoPose(4.0, 0.0, 0.0, 0.0), behind_m=2.0)[0], [2.0, 0.0])


@pytest.mark.parametrize("renderer", [render_bev, render_front])
def test_render_time_is_a_few_milliseconds(renderer):
    state = scene(agents=[(x, y, 0.0) for x in range(-10, 60, 8) for y in (-3.5, 0.0, 3.5)])
    renderer(state)
    times = []
    for _ in range(20):
        start = time.perf_counter()
        renderer(state)
        times.append(time.perf_counter() - start)
    print(f"{renderer.__name__}: median {1e3 * np.median(times):.2f} ms with {state.num_agents} agents")
