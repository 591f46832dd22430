"""Generic views of ROS messages: plain Python data for comparison, logging and reports."""

from __future__ import annotations

from typing import Any


def message_to_dict(msg: Any) -> Any:
    """Decode a ROS message into nested dicts/lists of Python scalars, field by field.

    Works for any rosidl-generated message (it walks ``get_fields_and_field_types``), so two
    messages can be compared by their decoded fields instead of their serialized bytes.
    """
    if hasattr(msg, "get_fields_and_field_types"):
        return {name: message_to_dict(getattr(msg, name)) for name in msg.get_fields_and_field_types()}
    if isinstance(msg, (bytes, bytearray)):
        return list(msg)
    if isinstance(msg, (list, tuple)) or type(msg).__name__ in ("array", "ndarray"):
        return [message_to_dict(item) for item in msg]
    if hasattr(msg, "item"):  # numpy scalar
        return msg.item()
    return msg
