"""Which bag topics `automot replay` publishes where (--remap, --topics), and which hold the
ground truth."""

import pytest

from automot_ros.data.bag_io import TopicInfo
from automot_ros.replay import parse_remaps, plan_topics, remap_topic

TOPICS = {name: TopicInfo(name, msgtype, 10, latched) for name, msgtype, latched in [
    ("/automot/camera/front/image_raw", "sensor_msgs/msg/Image", False),
    ("/automot/camera/rear/image_raw", "sensor_msgs/msg/CompressedImage", False),
    ("/automot/ego/odom", "nav_msgs/msg/Odometry", False),
    ("/automot/route", "nav_msgs/msg/Path", True),
    ("/automot/path", "nav_msgs/msg/Path", False),  # the stack's own output, recorded earlier
    ("/automot/agents", "visualization_msgs/msg/MarkerArray", False),
    ("/vehicle/odom", "nav_msgs/msg/Odometry", False),
]}


def test_remap_rules_rename_topics_or_namespaces():
    rules = parse_remaps(["/vehicle/odom:=/car/ego/odom", "/automot/:=/car/"])
    assert remap_topic("/vehicle/odom", rules) == "/car/ego/odom"
    assert remap_topic("/automot/route", rules) == "/car/route"
    assert remap_topic("/automotive/x", rules) == "/automotive/x"
    for bad in ("/a", "a:=/b", "/a:=b", "/a/:=/b"):
        with pytest.raises(ValueError, match="remap rule"):
            parse_remaps([bad])


def test_default_plan_publishes_the_stack_inputs_only():
    plan = plan_topics(TOPICS, [], "/automot")
    assert [(b, o, latched) for b, o, _, latched in plan.publish] == [
        ("/automot/camera/front/image_raw", "/automot/camera/front/image_raw", False),
        ("/automot/camera/rear/image_raw", "/automot/camera/rear/image_raw", False),
        ("/automot/ego/odom", "/automot/ego/odom", False),
        ("/automot/route", "/automot/route", True),
    ]
    assert plan.camera == ("/automot/camera/front/image_raw", "/automot/camera/front/image_raw")
    assert (plan.odometry, plan.boxes) == ("/automot/ego/odom", "/automot/agents")
    assert "/automot/path" in plan.skipped and "/vehicle/odom" in plan.skipped


def test_remapping_into_another_namespace_and_another_odometry():
    rules = parse_remaps(["/automot/:=/car/", "/vehicle/odom:=/car/ego/odom", "/automot/ego/odom:=/old/odom"])
    plan = plan_topics(TOPICS, rules, "/car", boxes_topic=None)
    published = {b: o for b, o, _, _ in plan.publish}
    # The namespace rule comes first, so /automot/ego/odom is moved by it, not by the third rule.
    assert published["/automot/ego/odom"] == "/car/ego/odom" and published["/vehicle/odom"] == "/car/ego/odom"
    assert plan.odometry == "/automot/ego/odom" and plan.boxes is None


def test_explicit_topics_and_clear_errors():
    plan = plan_topics(TOPICS, [], "/automot", explicit=["/automot/camera/rear/image_raw", "/automot/route"],
                       odom_topic="/vehicle/odom")
    assert [b for b, *_ in plan.publish] == ["/automot/camera/rear/image_raw", "/automot/route"]
    assert plan.camera[0] == "/automot/camera/rear/image_raw" and plan.odometry == "/vehicle/odom"
    with pytest.raises(ValueError, match="no camera topic"):
        plan_topics(TOPICS, [], "/other")
    with pytest.raises(ValueError, match="does not have"):
        plan_topics(TOPICS, [], "/automot", explicit=["/nope"])
    with pytest.raises(ValueError, match="no odometry topic"):
        plan_topics(TOPICS, [], "/automot", explicit=["/automot/camera/front/image_raw"])
