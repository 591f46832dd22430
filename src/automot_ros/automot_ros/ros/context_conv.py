"""automot_msgs/ContextInfo <-> the runtime's context records."""

from automot_msgs.msg import ContextInfo

from automot_ros.ros.time_conv import ns_to_stamp, stamp_to_ns
from automot_ros.runtime.context_source import Announcement
from automot_ros.runtime.understanding import PublishedContext


def context_info_msg(published: PublishedContext, segment: str) -> ContextInfo:
    msg = ContextInfo()
    msg.header.stamp = ns_to_stamp(published.stamp_ns)
    msg.header.frame_id = "base_link"
    msg.seq, msg.segment, msg.slot = published.seq, segment, published.slot
    msg.num_layers, msg.num_tokens, msg.dtype = published.num_layers, published.num_tokens, published.dtype
    msg.model_id, msg.compute_ms = published.model_id, float(published.compute_ms)
    return msg


def announcement_from_msg(msg: ContextInfo) -> Announcement:
    return Announcement(
        segment=msg.segment, seq=msg.seq, slot=msg.slot, stamp_ns=stamp_to_ns(msg.header.stamp), model_id=msg.model_id
    )
