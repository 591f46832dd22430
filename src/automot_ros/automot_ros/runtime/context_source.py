"""The reader side of the shared-memory context, as the action and language nodes use it.

ContextInfo announcements say which segment holds the newest context; this keeps one
reader attached to it, re-attaches when the writer restarted (a new segment generation),
and hands out the newest context as a zero-copy view with its validity check.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

from automot_ros.runtime.context_shm import ContextReader, ContextShmError, ContextSnapshot

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Announcement:
    """What a ContextInfo message says, without ROS types."""

    segment: str
    seq: int
    slot: int
    stamp_ns: int
    model_id: str


class ContextSource:
    """Newest context for one model; None until one has been announced and read."""

    def __init__(self, model_id: str):
        self.model_id = model_id
        self.announced: Optional[Announcement] = None
        self._reader: Optional[ContextReader] = None
        self.reattachments = 0

    def announce(self, announcement: Announcement) -> None:
        """Record an announcement; a context for another model is refused loudly."""
        if announcement.model_id != self.model_id:
            raise ValueError(
                f"context from model {announcement.model_id!r} announced on {announcement.segment!r}, "
                f"this node runs {self.model_id!r}"
            )
        self.announced = announcement

    def latest(self, copy: bool = False) -> Optional[ContextSnapshot]:
        """The newest context (zero-copy unless ``copy``); None if none can be read."""
        if self.announced is None:
            return None
        try:
            reader = self._attached_reader()
            return reader.read_latest(copy=copy)
        except (FileNotFoundError, ContextShmError) as error:
            # The writer is gone (or restarting): keep the last announcement, retry later.
            _log.debug("context unavailable: %s", error)
            self._drop_reader()
            return None

    def _attached_reader(self) -> ContextReader:
        segment = self.announced.segment
        if self._reader is not None and (self._reader.name != segment or not self._reader.is_current()):
            self._drop_reader()
            self.reattachments += 1
        if self._reader is None:
            self._reader = ContextReader(segment, expected_model_id=self.model_id)
        return self._reader

    def _drop_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def close(self) -> None:
        self._drop_reader()

