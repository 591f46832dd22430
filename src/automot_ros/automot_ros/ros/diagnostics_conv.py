"""Runtime statistics -> diagnostic_msgs/DiagnosticArray."""

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

LEVELS = {"OK": DiagnosticStatus.OK, "WARN": DiagnosticStatus.WARN, "ERROR": DiagnosticStatus.ERROR}


def diagnostics_msg(stamp, name: str, hardware_id: str, level: str, message: str, values: dict) -> DiagnosticArray:
    status = DiagnosticStatus(
        level=LEVELS[level], name=name, message=message, hardware_id=hardware_id,
        values=[KeyValue(key=key, value=f"{value:.3f}" if isinstance(value, float) else str(value))
                for key, value in values.items()],
    )
    array = DiagnosticArray(status=[status])
    array.header.stamp = stamp
    return array
